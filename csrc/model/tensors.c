/* tensors.c — the LFM2 tensor table: one row per weight (docs/architecture.md §5.2, §5.4).
 *
 * The only place tensor names are written. A row says which field of struct lfm_model / lfm_layer
 * it fills, its GGUF name (llama.cpp's converter; ollama's alias for the final norm), its Hugging
 * Face name, which layers have it, its shape in ggml order over symbolic sizes, and its role, which
 * decides the F32 conversion (norms, conv kernel), requantization and repacking (matmul weights)
 * and the tied head. The order is the order llama.cpp's converter writes a GGUF in: globals, then
 * each layer's rows. */
#include "model/model.h"

#include <stddef.h>
#include <stdio.h>

#define G(f) #f, offsetof(struct lfm_model, f)
#define L(f) #f, offsetof(lfm_layer, f)

const lfm_tensor_desc lfm_tensors[LFM_TENSOR_COUNT] = {
    /* id, what, GGUF name, GGUF alias, HF name, scope, role, field (+ offset), ne (ggml order)[, HF name in LFM3] */
    [LFM_TENSOR_TOKEN_EMBD] = {"token_embd", "token embedding", "token_embd.weight", NULL, "model.embed_tokens.weight",
                               LFM_SCOPE_GLOBAL, LFM_ROLE_EMBEDDING, G(tok_embd), {LFM_DIM_H, LFM_DIM_V}},
    /* the FINAL norm, applied after the last layer despite its names (§2.5, §9 trap 1) */
    [LFM_TENSOR_OUTPUT_NORM] = {"output_norm", "final norm", "token_embd_norm.weight", "output_norm.weight",
                                "model.embedding_norm.weight", LFM_SCOPE_GLOBAL, LFM_ROLE_NORM, G(output_norm),
                                {LFM_DIM_H, LFM_DIM_NONE}},
    [LFM_TENSOR_OUTPUT] = {"output", "output head", "output.weight", NULL, "lm_head.weight", LFM_SCOPE_GLOBAL,
                           LFM_ROLE_HEAD, G(output), {LFM_DIM_H, LFM_DIM_V}},

    [LFM_TENSOR_ATTN_NORM] = {"attn_norm", "operator norm", "blk.%d.attn_norm.weight", NULL,
                              "model.layers.%d.operator_norm.weight", LFM_SCOPE_LAYER, LFM_ROLE_NORM, L(attn_norm),
                              {LFM_DIM_H, LFM_DIM_NONE}},
    [LFM_TENSOR_FFN_NORM] = {"ffn_norm", "ffn norm", "blk.%d.ffn_norm.weight", NULL, "model.layers.%d.ffn_norm.weight",
                             LFM_SCOPE_LAYER, LFM_ROLE_NORM, L(ffn_norm), {LFM_DIM_H, LFM_DIM_NONE}},
    [LFM_TENSOR_FFN_GATE] = {"ffn_gate", "ffn gate (w1)", "blk.%d.ffn_gate.weight", NULL,
                             "model.layers.%d.feed_forward.w1.weight", LFM_SCOPE_FFN, LFM_ROLE_MATRIX, L(ffn_gate),
                             {LFM_DIM_H, LFM_DIM_F}},
    [LFM_TENSOR_FFN_UP] = {"ffn_up", "ffn up (w3)", "blk.%d.ffn_up.weight", NULL, "model.layers.%d.feed_forward.w3.weight",
                           LFM_SCOPE_FFN, LFM_ROLE_MATRIX, L(ffn_up), {LFM_DIM_H, LFM_DIM_F}},
    [LFM_TENSOR_FFN_DOWN] = {"ffn_down", "ffn down (w2)", "blk.%d.ffn_down.weight", NULL,
                             "model.layers.%d.feed_forward.w2.weight", LFM_SCOPE_FFN, LFM_ROLE_MATRIX, L(ffn_down),
                             {LFM_DIM_F, LFM_DIM_H}},

    [LFM_TENSOR_SHORTCONV_IN_PROJ] = {"shortconv_in_proj", "conv in_proj", "blk.%d.shortconv.in_proj.weight", NULL,
                                      "model.layers.%d.conv.in_proj.weight", LFM_SCOPE_CONV, LFM_ROLE_MATRIX,
                                      L(conv_in_proj), {LFM_DIM_H, LFM_DIM_3H}},
    /* ggml [K, H] = row-major [H, K]: tap k of channel c at c*K + k */
    [LFM_TENSOR_SHORTCONV_CONV] = {"shortconv_conv", "conv kernel", "blk.%d.shortconv.conv.weight", NULL,
                                   "model.layers.%d.conv.conv.weight", LFM_SCOPE_CONV, LFM_ROLE_CONV_KERNEL,
                                   L(conv_kernel), {LFM_DIM_K, LFM_DIM_H}},
    [LFM_TENSOR_SHORTCONV_OUT_PROJ] = {"shortconv_out_proj", "conv out_proj", "blk.%d.shortconv.out_proj.weight", NULL,
                                       "model.layers.%d.conv.out_proj.weight", LFM_SCOPE_CONV, LFM_ROLE_MATRIX,
                                       L(conv_out_proj), {LFM_DIM_H, LFM_DIM_H}},

    [LFM_TENSOR_ATTN_Q] = {"attn_q", "q_proj", "blk.%d.attn_q.weight", NULL, "model.layers.%d.self_attn.q_proj.weight",
                           LFM_SCOPE_ATTN, LFM_ROLE_MATRIX, L(wq), {LFM_DIM_H, LFM_DIM_Q}},
    [LFM_TENSOR_ATTN_K] = {"attn_k", "k_proj", "blk.%d.attn_k.weight", NULL, "model.layers.%d.self_attn.k_proj.weight",
                           LFM_SCOPE_ATTN, LFM_ROLE_MATRIX, L(wk), {LFM_DIM_H, LFM_DIM_KV}},
    [LFM_TENSOR_ATTN_V] = {"attn_v", "v_proj", "blk.%d.attn_v.weight", NULL, "model.layers.%d.self_attn.v_proj.weight",
                           LFM_SCOPE_ATTN, LFM_ROLE_MATRIX, L(wv), {LFM_DIM_H, LFM_DIM_KV}},
    [LFM_TENSOR_ATTN_OUT] = {"attn_output", "out_proj", "blk.%d.attn_output.weight", NULL,
                             "model.layers.%d.self_attn.out_proj.weight", LFM_SCOPE_ATTN, LFM_ROLE_MATRIX, L(wo),
                             {LFM_DIM_Q, LFM_DIM_H}, "model.layers.%d.self_attn.o_proj.weight"},
    [LFM_TENSOR_ATTN_Q_NORM] = {"attn_q_norm", "q_layernorm", "blk.%d.attn_q_norm.weight", NULL,
                                "model.layers.%d.self_attn.q_layernorm.weight", LFM_SCOPE_ATTN, LFM_ROLE_NORM,
                                L(q_norm), {LFM_DIM_HD, LFM_DIM_NONE}, "model.layers.%d.self_attn.q_norm.weight"},
    [LFM_TENSOR_ATTN_K_NORM] = {"attn_k_norm", "k_layernorm", "blk.%d.attn_k_norm.weight", NULL,
                                "model.layers.%d.self_attn.k_layernorm.weight", LFM_SCOPE_ATTN, LFM_ROLE_NORM,
                                L(k_norm), {LFM_DIM_HD, LFM_DIM_NONE}, "model.layers.%d.self_attn.k_norm.weight"},

    /* LFM2-MoE's sparse FFN (transformers' Lfm2MoeSparseMoeBlock, llama.cpp's lfm2moe). The HF
     * checkpoint keeps one w1/w3/w2 per expert (transformers fuses them into gate_up_proj /
     * down_proj only in memory and splits them again in save_pretrained); GGUF stacks them into one
     * 3-D tensor per kind, expert-major. llama.cpp's converter names the expert bias
     * "exp_probs_b.bias". */
    [LFM_TENSOR_FFN_GATE_INP] = {"ffn_gate_inp", "router", "blk.%d.ffn_gate_inp.weight", NULL,
                                 "model.layers.%d.feed_forward.gate.weight", LFM_SCOPE_MOE, LFM_ROLE_ROUTER,
                                 L(ffn_gate_inp), {LFM_DIM_H, LFM_DIM_E}},
    [LFM_TENSOR_FFN_EXP_PROBS_B] = {"exp_probs_b", "expert bias", "blk.%d.exp_probs_b.bias", NULL,
                                    "model.layers.%d.feed_forward.expert_bias", LFM_SCOPE_MOE_BIAS, LFM_ROLE_BIAS,
                                    L(exp_probs_b), {LFM_DIM_E, LFM_DIM_NONE}},
    [LFM_TENSOR_FFN_GATE_EXPS] = {"ffn_gate_exps", "experts' gate (w1)", "blk.%d.ffn_gate_exps.weight", NULL,
                                  "model.layers.%d.feed_forward.experts.%d.w1.weight", LFM_SCOPE_MOE, LFM_ROLE_MATRIX,
                                  L(ffn_gate_exps), {LFM_DIM_H, LFM_DIM_FE, LFM_DIM_E}},
    [LFM_TENSOR_FFN_UP_EXPS] = {"ffn_up_exps", "experts' up (w3)", "blk.%d.ffn_up_exps.weight", NULL,
                                "model.layers.%d.feed_forward.experts.%d.w3.weight", LFM_SCOPE_MOE, LFM_ROLE_MATRIX,
                                L(ffn_up_exps), {LFM_DIM_H, LFM_DIM_FE, LFM_DIM_E}},
    [LFM_TENSOR_FFN_DOWN_EXPS] = {"ffn_down_exps", "experts' down (w2)", "blk.%d.ffn_down_exps.weight", NULL,
                                  "model.layers.%d.feed_forward.experts.%d.w2.weight", LFM_SCOPE_MOE, LFM_ROLE_MATRIX,
                                  L(ffn_down_exps), {LFM_DIM_FE, LFM_DIM_H, LFM_DIM_E}},

    /* LFM3 (transformers' Lfm3ForCausalLM). llama.cpp has no lfm3 architecture; the GGUF names are
     * its existing ones for the same concepts: qwen3next's per-head output gate "attn_gate", gemma's
     * sandwich norms "post_attention_norm" / "post_ffw_norm" (here on conv layers too, as lfm2's
     * "attn_norm" is the operator norm of either kind). The checkpoint names g_proj "gate_proj"
     * (transformers renames it on load, conversion_mapping.py). */
    [LFM_TENSOR_ATTN_GATE] = {"attn_gate", "g_proj (attention gate)", "blk.%d.attn_gate.weight", NULL,
                              "model.layers.%d.self_attn.gate_proj.weight", LFM_SCOPE_ATTN_GATE, LFM_ROLE_MATRIX,
                              L(attn_gate), {LFM_DIM_H, LFM_DIM_NH}},
    [LFM_TENSOR_POST_ATTN_NORM] = {"post_attention_norm", "post-operator norm", "blk.%d.post_attention_norm.weight", NULL,
                                   "model.layers.%d.post_operator_norm.weight", LFM_SCOPE_SANDWICH, LFM_ROLE_NORM,
                                   L(post_attn_norm), {LFM_DIM_H, LFM_DIM_NONE}},
    [LFM_TENSOR_POST_FFN_NORM] = {"post_ffw_norm", "post-ffn norm", "blk.%d.post_ffw_norm.weight", NULL,
                                  "model.layers.%d.post_ffn_norm.weight", LFM_SCOPE_SANDWICH, LFM_ROLE_NORM,
                                  L(post_ffn_norm), {LFM_DIM_H, LFM_DIM_NONE}},
};

#undef G
#undef L

const char *lfm_dim_name(lfm_dim d) {
    static const char *const names[LFM_DIM_COUNT] = {
        [LFM_DIM_NONE] = "", [LFM_DIM_V] = "V",       [LFM_DIM_H] = "H",        [LFM_DIM_3H] = "3H", [LFM_DIM_F] = "F",
        [LFM_DIM_Q] = "nh*hd", [LFM_DIM_KV] = "nkv*hd", [LFM_DIM_HD] = "hd", [LFM_DIM_K] = "K",
        [LFM_DIM_E] = "E",     [LFM_DIM_FE] = "FE",   [LFM_DIM_NH] = "nh",
    };
    return (unsigned)d < LFM_DIM_COUNT ? names[d] : "?";
}

int64_t lfm_dim_value(const lfm_config *c, lfm_dim d) {
    switch (d) {
    case LFM_DIM_V: return c->n_vocab;
    case LFM_DIM_H: return c->n_embd;
    case LFM_DIM_3H: return 3 * (int64_t)c->n_embd;
    case LFM_DIM_F: return c->n_ff;
    case LFM_DIM_Q: return (int64_t)c->n_head * c->head_dim;
    case LFM_DIM_KV: return (int64_t)c->n_head_kv * c->head_dim;
    case LFM_DIM_HD: return c->head_dim;
    case LFM_DIM_K: return c->conv_l_cache;
    case LFM_DIM_E: return c->n_expert;
    case LFM_DIM_FE: return c->n_ff_exp;
    case LFM_DIM_NH: return c->n_head;
    default: return 1;
    }
}

bool lfm_tensor_is_matmul(lfm_tensor_id id) {
    lfm_tensor_role r = lfm_tensors[id].role;
    return r == LFM_ROLE_MATRIX || r == LFM_ROLE_HEAD || r == LFM_ROLE_ROUTER;
}

bool lfm_tensor_wants_f32(lfm_tensor_id id) {
    lfm_tensor_role r = lfm_tensors[id].role;
    return r == LFM_ROLE_NORM || r == LFM_ROLE_CONV_KERNEL || r == LFM_ROLE_BIAS;
}

bool lfm_tensor_is_experts(lfm_tensor_id id) { return lfm_tensors[id].ne[2] == LFM_DIM_E; }

int lfm_tensor_n_dims(lfm_tensor_id id) {
    const lfm_tensor_desc *d = &lfm_tensors[id];
    return d->ne[2] != LFM_DIM_NONE ? 3 : d->ne[1] != LFM_DIM_NONE ? 2 : 1;
}

lfm_tensor lfm_tensor_slice(const lfm_tensor *t, int64_t i) {
    lfm_tensor v = *t;
    const size_t bytes = lfm_tensor_row_bytes(t) * (size_t)t->ne[1];
    v.data = t->slices ? t->slices[i] : (const char *)t->data + (size_t)i * bytes;
    v.nbytes = bytes;
    v.n_dims = 2;
    v.ne[2] = v.ne[3] = 1;
    v.slices = NULL;
    return v;
}

bool lfm_tensor_applies(lfm_tensor_id id, const lfm_config *c, int32_t layer) {
    switch (lfm_tensors[id].scope) {
    case LFM_SCOPE_GLOBAL: return layer < 0;
    case LFM_SCOPE_LAYER: return layer >= 0;
    case LFM_SCOPE_CONV: return layer >= 0 && !c->is_attn[layer];
    case LFM_SCOPE_ATTN: return layer >= 0 && c->is_attn[layer];
    case LFM_SCOPE_FFN: return layer >= 0 && !lfm_layer_is_moe(c, layer);
    case LFM_SCOPE_MOE: return layer >= 0 && lfm_layer_is_moe(c, layer);
    case LFM_SCOPE_MOE_BIAS: return layer >= 0 && lfm_layer_is_moe(c, layer) && c->expert_bias;
    case LFM_SCOPE_ATTN_GATE: return layer >= 0 && c->is_attn[layer] && c->attn_gate;
    case LFM_SCOPE_SANDWICH: return layer >= 0 && c->sandwich_norm;
    }
    return false;
}

const char *lfm_tensor_hf(lfm_tensor_id id, const lfm_config *c) {
    const lfm_tensor_desc *d = &lfm_tensors[id];
    return c->arch == LFM_ARCH_LFM3 && d->hf_lfm3 ? d->hf_lfm3 : d->hf;
}

void lfm_tensor_name(const char *pattern, int32_t layer, char *buf, size_t cap) {
    lfm_tensor_name_expert(pattern, layer, 0, buf, cap);
}

void lfm_tensor_name_expert(const char *pattern, int32_t layer, int32_t expert, char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = '\0';
    if (!pattern) return;
    /* the first "%d" is the layer, the second the expert ("*" for all of them); names are ours, so
     * no other conversion appears */
    size_t n = 0;
    int arg = 0;
    for (const char *p = pattern; *p && n + 1 < cap; p++) {
        if (p[0] == '%' && p[1] == 'd') {
            char num[16];
            if (arg == 1 && expert < 0) snprintf(num, sizeof num, "*");
            else snprintf(num, sizeof num, "%d", arg == 0 ? (int)layer : (int)expert);
            for (const char *q = num; *q && n + 1 < cap; q++) buf[n++] = *q;
            arg++, p++;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
}

lfm_tensor *lfm_model_tensor(struct lfm_model *m, lfm_tensor_id id, int32_t layer) {
    const lfm_tensor_desc *d = &lfm_tensors[id];
    char *base = d->scope == LFM_SCOPE_GLOBAL ? (char *)m : (char *)&m->layers[layer];
    return (lfm_tensor *)(base + d->offset);
}

const lfm_tensor *lfm_model_tensor_c(const struct lfm_model *m, lfm_tensor_id id, int32_t layer) {
    return lfm_model_tensor((struct lfm_model *)m, id, layer);
}
