/* model.c — model lifetime: load (dispatch by format), shared validation, describe, free. */
#define _POSIX_C_SOURCE 200809L
#include "model/model.h"
#include "format/format.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lfm_model_params lfm_model_default_params(void) {
    lfm_model_params p = {LFM_FTYPE_NONE, 0};
    return p;
}

lfm_status lfm_model_own(struct lfm_model *m, void *ptr) {
    if (m->n_owned == m->cap_owned) {
        int32_t nc = m->cap_owned ? m->cap_owned * 2 : 64;
        void **no = realloc(m->owned, (size_t)nc * sizeof *no);
        if (!no) return lfm_fail(LFM_ERR_OOM, "out of memory");
        m->owned = no;
        m->cap_owned = nc;
    }
    m->owned[m->n_owned++] = ptr;
    return LFM_OK;
}

size_t lfm_tensor_row_bytes(const lfm_tensor *t) {
    int64_t be = lfm_type_block_elems(t->type);
    if (be <= 0) return 0;
    return (size_t)(t->ne[0] / be) * lfm_type_block_bytes(t->type);
}

void lfm_model_free(lfm_model *m) {
    if (!m) return;
    for (int32_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (int32_t i = 0; i < m->n_maps; i++) lfm_unmap_file(&m->maps[i]);
    free(m->maps);
    free(m->layers);
    free(m);
}

const lfm_config *lfm_model_config(const lfm_model *m) { return m ? &m->cfg : NULL; }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

lfm_status lfm_model_load(const char *path, const lfm_model_params *p, lfm_model **out) {
    if (!out) return lfm_fail(LFM_ERR_ARG, "lfm_model_load: out is NULL");
    *out = NULL;
    if (!path || !*path) return lfm_fail(LFM_ERR_ARG, "lfm_model_load: empty path");
    lfm_model_params dp = lfm_model_default_params();
    if (!p) p = &dp;
    struct lfm_model *m = calloc(1, sizeof *m);
    if (!m) return lfm_fail(LFM_ERR_OOM, "out of memory");
    m->gguf = ends_with(path, ".gguf");
    lfm_status st = m->gguf ? lfm_model_load_gguf(m, path) : lfm_model_load_safetensors(m, path);
    if (st == LFM_OK) st = lfm_model_validate(m);
    m->llama_routing = m->gguf || p->quantize != LFM_FTYPE_NONE;
    if (st == LFM_OK && p->quantize != LFM_FTYPE_NONE) {
        st = lfm_model_requantize(m, p->quantize, p->n_threads);
        if (st == LFM_OK) st = lfm_model_validate(m);
    }
    if (st == LFM_OK) st = lfm_model_repack(m); /* model/repack.c: kernel-friendly weight layout */
    if (st != LFM_OK) {
        lfm_model_free(m);
        return st;
    }
    *out = m;
    return LFM_OK;
}

/* ---- validation shared by every loader ---- */

/* The hyper-parameters against what the kernels and the forward pass can run (model/model.h,
 * "limits"). Called after the basic consistency check, so every value is positive here. */
static lfm_status check_limits(const lfm_config *c) {
    bool has_attn = false;
    for (int32_t l = 0; l < c->n_layer; l++) has_attn |= c->is_attn[l] != 0;
    if (has_attn && c->head_dim > LFM_MAX_HEAD_DIM)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "head_dim %d (hidden size %d, %d attention heads) is larger than %d, the largest head "
                        "the attention kernels support (LFM_MAX_HEAD_DIM)", c->head_dim, c->n_embd, c->n_head, LFM_MAX_HEAD_DIM);
    if (c->conv_l_cache > LFM_MAX_CONV_K)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "conv_l_cache %d (short-conv kernel size) is larger than %d, the largest supported (LFM_MAX_CONV_K)",
                        c->conv_l_cache, LFM_MAX_CONV_K);
    if (c->n_expert < 0 || c->n_expert > LFM_MAX_EXPERTS ||
        (c->n_expert > 0 && (c->n_expert_used < 1 || c->n_expert_used > c->n_expert || c->n_expert_used > LFM_MAX_EXPERTS_USED ||
                             c->n_ff_exp < 1 || c->n_layer_dense < 0 || !(c->expert_scale > 0) || !isfinite(c->expert_scale))))
        return lfm_fail(LFM_ERR_UNSUPPORTED, "mixture of experts with %d experts, %d per token, width %d, scale %g: expected 1..%d "
                        "experts, 1..min(experts, %d) per token, a positive width and scale", c->n_expert, c->n_expert_used,
                        c->n_ff_exp, (double)c->expert_scale, LFM_MAX_EXPERTS, LFM_MAX_EXPERTS_USED);
    if (c->n_vocab > LFM_MAX_VOCAB)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "n_vocab %d is larger than %d, the largest supported vocabulary (LFM_MAX_VOCAB)", c->n_vocab,
                        LFM_MAX_VOCAB);
    const struct { const char *what; int64_t v; } widths[] = {
        {"n_embd (hidden size)", c->n_embd},
        {"n_ff (FFN width)", c->n_ff},
        {"n_ff_exp (expert FFN width)", c->n_ff_exp},
        {"n_head * head_dim", (int64_t)c->n_head * c->head_dim},
        {"n_head_kv * head_dim", (int64_t)c->n_head_kv * c->head_dim},
    };
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        if (widths[i].v > LFM_MAX_WIDTH)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "%s = %lld is larger than %d, the widest activation row supported (LFM_MAX_WIDTH)",
                            widths[i].what, (long long)widths[i].v, LFM_MAX_WIDTH);
    return LFM_OK;
}

/* Why the engine cannot compute with type t in role r, or NULL when it can: a matrix or the head is
 * multiplied (a matmul kernel on this CPU), the embedding's rows are looked up (a row decoder); a
 * tied head is both rows (checked once as the embedding, once as the head). */
static const char *role_type_problem(lfm_tensor_role r, lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    const bool activation = tt && tt->is_quantized && tt->vec_dot_type == t; /* Q8_1, Q8_K */
    if ((r == LFM_ROLE_MATRIX || r == LFM_ROLE_HEAD || r == LFM_ROLE_ROUTER) && !lfm_type_has_matmul(t))
        return activation ? "has no matmul kernel (it is an activation format, not a weight type)" : "has no matmul kernel";
    if (r == LFM_ROLE_EMBEDDING && !(tt && tt->to_float))
        return activation ? "has no row decoder for embedding lookups (it is an activation format, not a weight type)"
                          : "has no row decoder for embedding lookups";
    return NULL;
}

static lfm_status check(const lfm_tensor *t, const char *role, int32_t layer, int64_t ne0, int64_t ne1, int64_t ne2,
                        lfm_tensor_role r, bool want_f32, bool tied) {
    char where[96];
    if (layer >= 0) snprintf(where, sizeof where, "layer %d %s", (int)layer, role);
    else if (tied) snprintf(where, sizeof where, "%s (tied to the token embedding)", role);
    else snprintf(where, sizeof where, "%s", role);
    if (!t->data) return lfm_fail(LFM_ERR_FORMAT, "%s: tensor missing", where);
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
        return lfm_fail(LFM_ERR_FORMAT, "%s ('%s'): expected ne [%lld, %lld, %lld], got [%lld, %lld, %lld, %lld]", where, t->name,
                        (long long)ne0, (long long)ne1, (long long)ne2, (long long)t->ne[0], (long long)t->ne[1],
                        (long long)t->ne[2], (long long)t->ne[3]);
    if (want_f32 && t->type != LFM_TYPE_F32)
        return lfm_fail(LFM_ERR_FORMAT, "%s ('%s'): expected an F32 vector (loaders convert norms and conv kernels)", where, t->name);
    int64_t be = lfm_type_block_elems(t->type);
    if (!lfm_type_is_supported(t->type))
        return lfm_fail(LFM_ERR_UNSUPPORTED, "%s ('%s'): tensor type %d is not supported", where, t->name, (int)t->type);
    const char *why = role_type_problem(r, t->type);
    if (why)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "%s ('%s'): type %s %s", where, t->name, lfm_type_name(t->type), why);
    if (ne0 % be != 0)
        return lfm_fail(LFM_ERR_FORMAT, "%s ('%s'): row length %lld is not a multiple of the %s block size %lld", where, t->name,
                        (long long)ne0, lfm_type_name(t->type), (long long)be);
    size_t need = lfm_tensor_row_bytes(t) * (size_t)ne1 * (size_t)ne2;
    if (t->nbytes < need)
        return lfm_fail(LFM_ERR_FORMAT, "%s ('%s'): %zu bytes of data, %zu needed", where, t->name, t->nbytes, need);
    return LFM_OK;
}

lfm_status lfm_model_validate(struct lfm_model *m) {
    const lfm_config *c = &m->cfg;
    if (c->n_vocab < 1 || c->n_embd < 1 || c->n_layer < 1 || c->n_layer > LFM_MAX_LAYERS || c->n_head < 1 || c->n_head_kv < 1 ||
        c->n_head % c->n_head_kv != 0 || c->head_dim < 2 || c->head_dim % 2 || c->n_ff < 1 || c->conv_l_cache < 1 ||
        !(c->norm_eps > 0) || !(c->rope_theta > 0))
        return lfm_fail(LFM_ERR_FORMAT, "inconsistent model hyper-parameters (vocab %d, embd %d, layers %d, heads %d/%d, head_dim %d, ff %d, L_cache %d)",
                        c->n_vocab, c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->conv_l_cache);
    lfm_status st = check_limits(c);
    if (st != LFM_OK) return st;
    if (c->arch != LFM_ARCH_LFM2 && c->arch != LFM_ARCH_LFM3) return lfm_fail(LFM_ERR_FORMAT, "unknown architecture %d", (int)c->arch);
    if (c->rope_pairs < 0 || c->rope_pairs > c->head_dim / 2 || c->rope_pairs_swa < 0 || c->rope_pairs_swa > c->head_dim / 2)
        return lfm_fail(LFM_ERR_FORMAT, "RoPE rotates %d (full layers) and %d (sliding layers) frequency pairs of a head of %d: "
                        "expected 0..%d", c->rope_pairs, c->rope_pairs_swa, c->head_dim, c->head_dim / 2);
    for (int32_t l = 0; l < c->n_layer; l++)
        if (c->is_swa[l] && (!c->is_attn[l] || c->arch != LFM_ARCH_LFM3 || c->n_swa < 1 || !(c->rope_theta_swa > 0)))
            return lfm_fail(LFM_ERR_FORMAT, "layer %d: a sliding-window layer needs an LFM3 attention layer, a window >= 1 (got %d) "
                            "and a RoPE base > 0", (int)l, c->n_swa);
    if (c->arch == LFM_ARCH_LFM3 && c->n_expert > 0)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "LFM3 with a mixture of experts is not supported");
    /* a special id outside the vocabulary (GGUF metadata is not checked against it) is unknown */
    lfm_token *special[] = {&m->cfg.bos_id, &m->cfg.eos_id, &m->cfg.pad_id};
    for (int i = 0; i < 3; i++)
        if (*special[i] >= c->n_vocab) *special[i] = -1;
    if (!m->layers) return lfm_fail(LFM_ERR_FORMAT, "model has no layers");
    for (int32_t l = -1; l < c->n_layer; l++) /* -1: the global tensors */
        for (int id = 0; id < LFM_TENSOR_COUNT; id++) {
            if (!lfm_tensor_applies(id, c, l)) continue;
            const lfm_tensor_desc *d = &lfm_tensors[id];
            st = check(lfm_model_tensor_c(m, id, l), d->what, l, lfm_dim_value(c, d->ne[0]), lfm_dim_value(c, d->ne[1]),
                       lfm_dim_value(c, d->ne[2]), d->role, lfm_tensor_wants_f32(id), d->role == LFM_ROLE_HEAD && c->tied_output);
            if (st != LFM_OK) return st;
        }
    return LFM_OK;
}

/* ---- describe ---- */

static void describe_one(const lfm_tensor *t, char *buf, size_t cap, size_t *len) {
    if (!t->data) return;
    char line[200];
    const char *type = lfm_type_name(t->type) ? lfm_type_name(t->type) : "?";
    int n = t->ne[2] > 1 ? snprintf(line, sizeof line, "%s %s [%lld, %lld, %lld]\n", t->name, type, (long long)t->ne[2],
                                    (long long)t->ne[1], (long long)t->ne[0])
                         : snprintf(line, sizeof line, "%s %s [%lld, %lld]\n", t->name, type, (long long)t->ne[1], (long long)t->ne[0]);
    if (n < 0) return;
    if (*len + (size_t)n < cap) memcpy(buf + *len, line, (size_t)n + 1);
    *len += (size_t)n;
}

size_t lfm_model_describe(const lfm_model *m, char *buf, size_t cap) {
    size_t len = 0;
    if (buf && cap) buf[0] = 0;
    if (!m) return 0;
    if (!buf) cap = 0;
    for (int32_t l = -1; l < m->cfg.n_layer; l++)
        for (int id = 0; id < LFM_TENSOR_COUNT; id++)
            if (lfm_tensor_applies(id, &m->cfg, l) && !(id == LFM_TENSOR_OUTPUT && m->cfg.tied_output))
                describe_one(lfm_model_tensor_c(m, id, l), buf, cap, &len);
    return len;
}
