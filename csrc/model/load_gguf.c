/* load_gguf.c — GGUF (arch "lfm2", or "lfm2moe" for LFM2-MoE) → struct lfm_model.
 *
 * Metadata (docs/architecture.md §5.3) becomes lfm_config; tensors (§5.4), named and shaped by the tensor
 * table (model/tensors.c), become views into the mapping, which the model owns. Shapes are checked
 * here against the config; norms and the short-conv kernel are converted to F32 owned buffers when
 * the file stores them otherwise.
 * Quantized matrices stay as they are (the matmul's quant hooks run them). */
#include "model/model.h"
#include "format/format.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct lfm_model *m;
    lfm_gguf *g;
    const char *path;
    char arch[16]; /* "lfm2" or "lfm2moe": the prefix of the model's metadata keys */
} loader;

/* "<arch>.<suffix>" into buf: the model keys carry the architecture's name. */
static const char *arch_key(const loader *L, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", L->arch, suffix);
    return buf;
}

/* ---- metadata ---- */

static lfm_status meta_str(loader *L, const char *key, char *buf, size_t cap, bool required) {
    int64_t i = lfm_gguf_find_key(L->g, key);
    buf[0] = '\0';
    if (i < 0)
        return required ? lfm_fail(LFM_ERR_FORMAT, "'%s': missing metadata key '%s'", L->path, key) : LFM_OK;
    const char *s;
    uint64_t n;
    lfm_status st = lfm_gguf_get_str(L->g, i, &s, &n);
    if (st) return st;
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, (size_t)n);
    buf[n] = '\0';
    return LFM_OK;
}

/* An integer in [lo, hi]; *out keeps def when the key is absent and not required. */
static lfm_status meta_int(loader *L, const char *key, int64_t lo, int64_t hi, bool required, int64_t *out) {
    int64_t i = lfm_gguf_find_key(L->g, key);
    if (i < 0)
        return required ? lfm_fail(LFM_ERR_FORMAT, "'%s': missing metadata key '%s'", L->path, key) : LFM_OK;
    int64_t v;
    lfm_status st = lfm_gguf_get_int(L->g, i, &v);
    if (st) return st;
    if (v < lo || v > hi)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': %s = %lld (expected %lld..%lld)", L->path, key, (long long)v,
                        (long long)lo, (long long)hi);
    *out = v;
    return LFM_OK;
}

static lfm_status meta_float(loader *L, const char *key, double lo, double hi, double *out) {
    int64_t i = lfm_gguf_find_key(L->g, key);
    if (i < 0) return LFM_OK;
    double v;
    lfm_status st = lfm_gguf_get_float(L->g, i, &v);
    if (st) return st;
    if (!(v >= lo && v <= hi))
        return lfm_fail(LFM_ERR_FORMAT, "'%s': %s = %g (expected %g..%g)", L->path, key, v, lo, hi);
    *out = v;
    return LFM_OK;
}

/* A per-layer integer that may be stored as one scalar or as an array of n_layer entries.
 * *is_array tells which; vals gets n_layer values. */
static lfm_status meta_layer_ints(loader *L, const char *key, int32_t n_layer, int64_t lo, int64_t hi,
                                  int64_t *vals, bool *is_array) {
    int64_t i = lfm_gguf_find_key(L->g, key);
    if (i < 0) return lfm_fail(LFM_ERR_FORMAT, "'%s': missing metadata key '%s'", L->path, key);
    *is_array = lfm_gguf_kv_type(L->g, i) == LFM_GGUF_ARRAY;
    if (!*is_array) {
        int64_t v = 0;
        lfm_status st = meta_int(L, key, lo, hi, true, &v);
        if (st) return st;
        for (int32_t l = 0; l < n_layer; l++) vals[l] = v;
        return LFM_OK;
    }
    lfm_gguf_value_type et;
    uint64_t n;
    lfm_status st = lfm_gguf_get_arr_info(L->g, i, &et, &n);
    if (st) return st;
    if (n != (uint64_t)n_layer)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': %s has %llu entries, expected one per layer (%d)", L->path, key,
                        (unsigned long long)n, n_layer);
    for (int32_t l = 0; l < n_layer; l++) {
        if ((st = lfm_gguf_get_arr_int(L->g, i, (uint64_t)l, &vals[l]))) return st;
        if (vals[l] < lo || vals[l] > hi)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': %s[%d] = %lld (expected %lld..%lld)", L->path, key, l,
                            (long long)vals[l], (long long)lo, (long long)hi);
    }
    return LFM_OK;
}

static lfm_token meta_token(loader *L, const char *key) {
    int64_t v = -1;
    if (meta_int(L, key, 0, INT32_MAX, false, &v) != LFM_OK) return -1; /* a bad special id is not fatal */
    return (lfm_token)v;
}

/* ---- tensors ---- */

/* The kernels read weights as floats, halves and block structs (whose widest fields are 4-byte
 * floats or pairs of halves). GGUF's general.alignment may be anything down to 1, which puts tensors
 * at odd addresses: copy such a tensor into an aligned buffer the model owns (one memcpy at load;
 * files with the default alignment of 32 never need it). Rows keep the alignment of the start,
 * since the row size is a whole number of blocks. */
static size_t type_alignment(lfm_type t) {
    size_t bb = lfm_type_block_bytes(t), a = 1;
    while (a < 4 && bb % (2 * a) == 0) a *= 2; /* 4 for F32 and 4-byte multiples, 2 for F16/BF16/Q4_0/Q8_0/Q6_K... */
    return a;
}

static lfm_status align_tensor(loader *L, lfm_tensor *t) {
    if ((uintptr_t)t->data % type_alignment(t->type) == 0) return LFM_OK;
    void *copy = lfm_aligned_alloc(64, t->nbytes ? t->nbytes : 1);
    if (!copy) return lfm_fail(LFM_ERR_OOM, "out of memory copying misaligned tensor '%s' (%zu bytes)", t->name, t->nbytes);
    lfm_status st = lfm_model_own(L->m, copy);
    if (st) {
        free(copy);
        return st;
    }
    memcpy(copy, t->data, t->nbytes);
    t->data = copy;
    return LFM_OK;
}

/* Fill *t from the GGUF tensor `name`. nd/ne0/ne1/ne2: the expected ggml shape (ne1 ignored for 1-D,
 * ne2 unless 3-D). Missing and not required: *t stays zeroed and *found is false. */
static lfm_status get_tensor(loader *L, const char *name, int32_t nd, int64_t ne0, int64_t ne1, int64_t ne2, bool required,
                             lfm_tensor *t, bool *found) {
    memset(t, 0, sizeof *t);
    if (found) *found = false;
    int64_t i = lfm_gguf_find_tensor(L->g, name);
    if (i < 0) {
        if (!required) return LFM_OK;
        return lfm_fail(LFM_ERR_FORMAT, "'%s': missing tensor '%s'", L->path, name);
    }
    const char *tn;
    int32_t n_dims;
    lfm_status st = lfm_gguf_tensor_info(L->g, i, &tn, &t->type, &n_dims, t->ne, &t->data, &t->nbytes);
    if (st) return st;
    snprintf(t->name, sizeof t->name, "%s", name);
    /* trailing 1s do not count: a [H] norm stored as [H, 1] is still 1-D */
    int32_t eff = n_dims;
    while (eff > 1 && t->ne[eff - 1] == 1) eff--;
    bool ok = eff <= nd && t->ne[0] == ne0 && (nd < 2 || t->ne[1] == ne1) && t->ne[2] == (nd < 3 ? 1 : ne2) && t->ne[3] == 1;
    if (!ok) {
        if (nd == 3)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': expected ne [%lld, %lld, %lld], got [%lld, %lld, %lld, %lld]",
                            L->path, name, (long long)ne0, (long long)ne1, (long long)ne2, (long long)t->ne[0],
                            (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        if (nd == 1)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': expected ne [%lld], got [%lld, %lld, %lld, %lld]",
                            L->path, name, (long long)ne0, (long long)t->ne[0], (long long)t->ne[1],
                            (long long)t->ne[2], (long long)t->ne[3]);
        return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': expected ne [%lld, %lld], got [%lld, %lld, %lld, %lld]",
                        L->path, name, (long long)ne0, (long long)ne1, (long long)t->ne[0], (long long)t->ne[1],
                        (long long)t->ne[2], (long long)t->ne[3]);
    }
    t->n_dims = nd;
    if (found) *found = true;
    return align_tensor(L, t);
}

/* Norms and the conv kernel must be F32: convert F16/BF16/quantized ones into an owned buffer. */
static lfm_status make_f32(loader *L, lfm_tensor *t) {
    /* norms, the conv kernel and the expert bias: 1-D or 2-D */
    if (!t->data || t->type == LFM_TYPE_F32) return LFM_OK;
    int64_t n = t->ne[0] * t->ne[1];
    float *buf = malloc((size_t)n * sizeof(float));
    if (!buf) return lfm_fail(LFM_ERR_OOM, "out of memory converting '%s' to F32", t->name);
    lfm_status st = lfm_model_own(L->m, buf);
    if (st) {
        free(buf);
        return st;
    }
    for (int64_t r = 0; r < t->ne[1]; r++)
        if ((st = lfm_tensor_row_to_f32(t, r, buf + r * t->ne[0]))) return st;
    t->type = LFM_TYPE_F32;
    t->data = buf;
    t->nbytes = (size_t)n * sizeof(float);
    return LFM_OK;
}

/* ---- loader ---- */

/* The rows of the first tensor named by table row id (layer `layer`): -1 when absent. */
static int64_t tensor_ne(loader *L, lfm_tensor_id id, int32_t layer, int dim) {
    char name[96];
    lfm_tensor_name(lfm_tensors[id].gguf, layer, name, sizeof name);
    int64_t it = lfm_gguf_find_tensor(L->g, name);
    if (it < 0) return -1;
    int64_t ne[4];
    lfm_gguf_tensor_info(L->g, it, NULL, NULL, NULL, ne, NULL, NULL);
    return ne[dim];
}

/* LFM2-MoE's router and experts (llama.cpp's lfm2moe hyper-parameters). llama.cpp always
 * normalizes the chosen experts' weights and scales them by nothing for this architecture; the
 * optional expert_weights_norm / expert_weights_scale keys (which its converter does not write for
 * LFM2-MoE, and liquidlfm's writes only when a config departs from those defaults) are honoured. */
static lfm_status load_moe(loader *L, lfm_config *c) {
    char key[96];
    int64_t v = 0;
    lfm_status st;
    if ((st = meta_int(L, arch_key(L, "expert_count", key, sizeof key), 1, LFM_MAX_EXPERTS, true, &v))) return st;
    c->n_expert = (int32_t)v;
    if ((st = meta_int(L, arch_key(L, "expert_used_count", key, sizeof key), 1, LFM_MAX_EXPERTS_USED, true, &v))) return st;
    c->n_expert_used = (int32_t)v;
    if (c->n_expert_used > c->n_expert)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': %d experts used per token out of %d", L->path, c->n_expert_used, c->n_expert);
    v = 0;
    if ((st = meta_int(L, arch_key(L, "leading_dense_block_count", key, sizeof key), 0, c->n_layer, false, &v))) return st;
    c->n_layer_dense = (int32_t)v;
    v = 2; /* llama.cpp requires the key; its converter writes sigmoid (2) */
    if ((st = meta_int(L, arch_key(L, "expert_gating_func", key, sizeof key), 0, 1 << 16, false, &v))) return st;
    if (v != 2)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': %s = %lld: only the sigmoid router (2) of LFM2-MoE is supported", L->path, key,
                        (long long)v);
    v = 1;
    if ((st = meta_int(L, arch_key(L, "expert_weights_norm", key, sizeof key), 0, 1, false, &v))) return st;
    c->expert_norm = (int32_t)v;
    double scale = 1.0;
    if ((st = meta_float(L, arch_key(L, "expert_weights_scale", key, sizeof key), 0.0, 1e6, &scale))) return st;
    c->expert_scale = scale == 0 ? 1.0f : (float)scale; /* llama.cpp: 0 means no scaling */
    c->expert_bias = c->n_layer_dense < c->n_layer && tensor_ne(L, LFM_TENSOR_FFN_EXP_PROBS_B, c->n_layer_dense, 0) >= 0;
    /* the experts' width from the first MoE layer's stack (the key, if any, must agree) */
    c->n_ff_exp = 1;
    if (c->n_layer_dense < c->n_layer) {
        int64_t fe = tensor_ne(L, LFM_TENSOR_FFN_GATE_EXPS, c->n_layer_dense, 1);
        if (fe <= 0 || fe > LFM_MAX_WIDTH) {
            char name[96];
            lfm_tensor_name(lfm_tensors[LFM_TENSOR_FFN_GATE_EXPS].gguf, c->n_layer_dense, name, sizeof name);
            return fe < 0 ? lfm_fail(LFM_ERR_FORMAT, "'%s': missing tensor '%s'", L->path, name)
                          : lfm_fail(LFM_ERR_FORMAT, "'%s': %s has %lld rows", L->path, name, (long long)fe);
        }
        c->n_ff_exp = (int32_t)fe;
        v = fe;
        if ((st = meta_int(L, arch_key(L, "expert_feed_forward_length", key, sizeof key), 1, LFM_MAX_WIDTH, false, &v))) return st;
        if (v != fe)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': %s = %lld, but the experts' matrices are %lld wide", L->path, key, (long long)v,
                            (long long)fe);
    }
    return LFM_OK;
}

/* LFM3 (arch "lfm3": liquidlfm's own, llama.cpp has none; README, "GGUF for LFM3"): which attention
 * layers slide (attention.sliding_window_pattern, one bool per layer), the window, each kind's RoPE
 * (rope.freq_base / rope.dimension_count for full layers, the _swa keys for sliding ones; a
 * dimension count is twice the rotating pairs, transformers' proportional layout, see lfm_config),
 * and the optional parts, told by their tensors: sandwich norms (layer 0's post_attention_norm) and
 * the attention gate (the first attention layer's attn_gate). */
static lfm_status load_lfm3(loader *L, lfm_config *c) {
    char key[96];
    int64_t v = 0, swa[LFM_MAX_LAYERS] = {0};
    bool any_swa = false, is_array = true;
    lfm_status st;
    c->arch = LFM_ARCH_LFM3;
    arch_key(L, "attention.sliding_window_pattern", key, sizeof key);
    if (lfm_gguf_find_key(L->g, key) >= 0) {
        if ((st = meta_layer_ints(L, key, c->n_layer, 0, 1, swa, &is_array))) return st;
        if (!is_array) return lfm_fail(LFM_ERR_FORMAT, "'%s': %s must be a list of one bool per layer", L->path, key);
    }
    for (int32_t l = 0; l < c->n_layer; l++) {
        if (swa[l] && !c->is_attn[l])
            return lfm_fail(LFM_ERR_FORMAT, "'%s': %s marks layer %d, a short-conv layer, as sliding-window attention", L->path, key, l);
        c->is_swa[l] = (uint8_t)swa[l];
        any_swa |= swa[l] != 0;
    }
    v = c->head_dim;
    if ((st = meta_int(L, arch_key(L, "rope.dimension_count", key, sizeof key), 0, c->head_dim, false, &v))) return st;
    if (v % 2) return lfm_fail(LFM_ERR_FORMAT, "'%s': %s = %lld must be even (pairs of dimensions rotate)", L->path, key, (long long)v);
    c->rope_pairs = (int32_t)(v / 2);
    if (any_swa) {
        if ((st = meta_int(L, arch_key(L, "attention.sliding_window", key, sizeof key), 1, INT32_MAX, true, &v))) return st;
        c->n_swa = (int32_t)v;
        double theta = 0;
        if ((st = meta_float(L, arch_key(L, "rope.freq_base_swa", key, sizeof key), 1e-3, 1e12, &theta))) return st;
        if (!(theta > 1)) return lfm_fail(LFM_ERR_FORMAT, "'%s': missing or invalid %s (sliding layers' RoPE base)", L->path, key);
        c->rope_theta_swa = (float)theta;
        v = c->head_dim;
        if ((st = meta_int(L, arch_key(L, "rope.dimension_count_swa", key, sizeof key), 0, c->head_dim, false, &v))) return st;
        if (v % 2) return lfm_fail(LFM_ERR_FORMAT, "'%s': %s = %lld must be even", L->path, key, (long long)v);
        c->rope_pairs_swa = (int32_t)(v / 2);
    }
    c->sandwich_norm = tensor_ne(L, LFM_TENSOR_POST_ATTN_NORM, 0, 0) >= 0;
    for (int32_t l = 0; l < c->n_layer; l++)
        if (c->is_attn[l]) {
            c->attn_gate = tensor_ne(L, LFM_TENSOR_ATTN_GATE, l, 0) >= 0;
            break;
        }
    return LFM_OK;
}

/* The first tensor of the file no table row of this config names (an LFM_ERR_FORMAT naming it). */
static lfm_status unused_tensor(loader *L, const lfm_config *c) {
    for (int64_t i = 0; i < lfm_gguf_n_tensors(L->g); i++) {
        const char *tn = NULL;
        lfm_gguf_tensor_info(L->g, i, &tn, NULL, NULL, NULL, NULL, NULL);
        bool known = false;
        for (int32_t l = -1; l < c->n_layer && !known; l++)
            for (int id = 0; id < LFM_TENSOR_COUNT && !known; id++) {
                char name[96];
                lfm_tensor_name(lfm_tensors[id].gguf, l, name, sizeof name);
                known = lfm_tensor_applies(id, c, l) && tn && strcmp(name, tn) == 0;
            }
        if (!known)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': unexpected tensor '%s' (not part of an LFM3 model with this file's layers "
                            "and options: the optional tensors must be in every layer of their kind)", L->path, tn ? tn : "?");
    }
    return lfm_fail(LFM_ERR_FORMAT, "'%s': a tensor appears twice", L->path);
}

static lfm_status load(loader *L) {
    struct lfm_model *m = L->m;
    lfm_config *c = &m->cfg;
    char arch[64], key[96];
    lfm_status st = meta_str(L, "general.architecture", arch, sizeof arch, true);
    if (st) return st;
    if (strcmp(arch, "lfm2") != 0 && strcmp(arch, "lfm2moe") != 0 && strcmp(arch, "lfm3") != 0)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': architecture '%s' is not supported (expected 'lfm2', 'lfm2moe' or 'lfm3')",
                        L->path, arch);
    snprintf(L->arch, sizeof L->arch, "%s", arch);
    const bool moe = strcmp(arch, "lfm2moe") == 0, lfm3 = strcmp(arch, "lfm3") == 0;

    int64_t v = 0;
    if ((st = meta_int(L, arch_key(L, "block_count", key, sizeof key), 1, LFM_MAX_LAYERS, true, &v))) return st;
    c->n_layer = (int32_t)v;
    if ((st = meta_int(L, arch_key(L, "embedding_length", key, sizeof key), 1, 1 << 20, true, &v))) return st;
    c->n_embd = (int32_t)v;
    int64_t nh[LFM_MAX_LAYERS], nkv[LFM_MAX_LAYERS];
    bool nh_arr, nkv_arr;
    if ((st = meta_layer_ints(L, arch_key(L, "attention.head_count", key, sizeof key), c->n_layer, 0, 1 << 16, nh, &nh_arr))) return st;
    if ((st = meta_layer_ints(L, arch_key(L, "attention.head_count_kv", key, sizeof key), c->n_layer, 0, 1 << 16, nkv, &nkv_arr)))
        return st;
    v = 128000;
    if ((st = meta_int(L, arch_key(L, "context_length", key, sizeof key), 1, INT32_MAX, false, &v))) return st;
    c->n_ctx_train = (int32_t)v;
    v = 3;
    if ((st = meta_int(L, arch_key(L, "shortconv.l_cache", key, sizeof key), 1, 64, false, &v))) return st;
    c->conv_l_cache = (int32_t)v;
    double eps = 1e-5, theta = 1e6;
    if ((st = meta_float(L, arch_key(L, "attention.layer_norm_rms_epsilon", key, sizeof key), 0.0, 1.0, &eps))) return st;
    if ((st = meta_float(L, arch_key(L, "rope.freq_base", key, sizeof key), 1e-3, 1e12, &theta))) return st;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    c->bos_id = meta_token(L, "tokenizer.ggml.bos_token_id");
    c->eos_id = meta_token(L, "tokenizer.ggml.eos_token_id");
    c->pad_id = meta_token(L, "tokenizer.ggml.padding_token_id");

    /* layer kinds: head_count_kv[l] == 0 marks a conv layer; a scalar head_count_kv (some
     * converters) says nothing, so the tensors decide. Both must agree when both speak. */
    const int32_t H = c->n_embd;
    c->n_head = 0;
    c->n_head_kv = 0;
    for (int32_t l = 0; l < c->n_layer; l++) {
        bool has_attn = tensor_ne(L, LFM_TENSOR_ATTN_Q, l, 0) >= 0;
        bool has_conv = tensor_ne(L, LFM_TENSOR_SHORTCONV_IN_PROJ, l, 0) >= 0;
        if (has_attn == has_conv)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': layer %d has %s", L->path, l,
                            has_attn ? "both attention and short-conv tensors" : "neither attention nor short-conv tensors");
        if (nkv_arr && (nkv[l] > 0) != has_attn)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': layer %d: head_count_kv = %lld but the layer has %s tensors",
                            L->path, l, (long long)nkv[l], has_attn ? "attention" : "short-conv");
        c->is_attn[l] = has_attn;
        if (!has_attn) continue;
        if (nh[l] <= 0 || nkv[l] <= 0 || nh[l] % nkv[l] != 0)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': layer %d: %lld query heads and %lld KV heads (expected > 0, "
                            "query heads a multiple of KV heads)", L->path, l, (long long)nh[l], (long long)nkv[l]);
        if ((c->n_head && c->n_head != nh[l]) || (c->n_head_kv && c->n_head_kv != nkv[l]))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': attention layers with different head counts are not supported",
                            L->path);
        c->n_head = (int32_t)nh[l];
        c->n_head_kv = (int32_t)nkv[l];
    }
    if (c->n_head == 0) { /* conv-only model: keep a consistent head split for the config */
        c->n_head = nh[0] > 0 ? (int32_t)nh[0] : 1;
        c->n_head_kv = c->n_head;
    }
    c->head_dim = H / c->n_head;
    v = c->head_dim;
    if ((st = meta_int(L, arch_key(L, "attention.key_length", key, sizeof key), 1, 1 << 16, lfm3, &v))) return st;
    if (lfm3) { /* LFM3 gives head_dim, independent of the embedding (Lfm3Config.head_dim) */
        int64_t vl = v;
        c->head_dim = (int32_t)v;
        if ((st = meta_int(L, arch_key(L, "attention.value_length", key, sizeof key), 1, 1 << 16, false, &vl))) return st;
        if (vl != v) return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': key length %lld and value length %lld differ", L->path, (long long)v, (long long)vl);
    } else if (v != c->head_dim || H % c->n_head != 0)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': head dim %lld with %d heads and embedding %d (expected "
                        "embedding = heads x head dim)", L->path, (long long)v, c->n_head, H);
    c->rope_pairs = c->head_dim / 2; /* plain RoPE over the whole head */
    if (moe && (st = load_moe(L, c))) return st;
    if (lfm3 && (st = load_lfm3(L, c))) return st;

    /* the token embedding decides the vocabulary, the first dense layer's ffn_gate the FFN width
     * (§9, trap 2); a MoE model whose layers are all MoE has no dense FFN and keeps the key's */
    int64_t vocab = tensor_ne(L, LFM_TENSOR_TOKEN_EMBD, -1, 1);
    int64_t ff = lfm_layer_is_moe(c, 0) ? 1 : tensor_ne(L, LFM_TENSOR_FFN_GATE, 0, 1);
    if (lfm_layer_is_moe(c, 0) && (st = meta_int(L, arch_key(L, "feed_forward_length", key, sizeof key), 1, LFM_MAX_WIDTH, false, &ff)))
        return st;
    const lfm_tensor_id sizer[2] = {LFM_TENSOR_TOKEN_EMBD, LFM_TENSOR_FFN_GATE};
    const int64_t sizes[2] = {vocab, ff};
    for (int i = 0; i < 2; i++) {
        char name[96];
        lfm_tensor_name(lfm_tensors[sizer[i]].gguf, 0, name, sizeof name);
        if (sizes[i] < 0) return lfm_fail(LFM_ERR_FORMAT, "'%s': missing tensor '%s'", L->path, name);
        if (sizes[i] <= 0 || sizes[i] > INT32_MAX)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': %s has %lld rows", L->path, name, (long long)sizes[i]);
    }
    c->n_vocab = (int32_t)vocab;
    c->n_ff = (int32_t)ff;

    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return lfm_fail(LFM_ERR_OOM, "out of memory for %d layers", c->n_layer);
    c->tied_output = false;
    int64_t n_used = 0;
    for (int32_t l = -1; l < c->n_layer; l++) /* -1: the global tensors */
        for (int id = 0; id < LFM_TENSOR_COUNT; id++) {
            if (!lfm_tensor_applies(id, c, l)) continue;
            const lfm_tensor_desc *d = &lfm_tensors[id];
            lfm_tensor *t = lfm_model_tensor(m, id, l);
            const int32_t nd = lfm_tensor_n_dims(id);
            const int64_t ne0 = lfm_dim_value(c, d->ne[0]), ne1 = lfm_dim_value(c, d->ne[1]), ne2 = lfm_dim_value(c, d->ne[2]);
            /* the alias (ollama's output_norm) and the head (absent: tied to the embedding) may be missing */
            bool optional = d->gguf_alias || d->role == LFM_ROLE_HEAD, found;
            char name[96];
            lfm_tensor_name(d->gguf, l, name, sizeof name);
            if ((st = get_tensor(L, name, nd, ne0, ne1, ne2, !optional, t, &found))) return st;
            if (!found && d->gguf_alias) {
                lfm_tensor_name(d->gguf_alias, l, name, sizeof name);
                if ((st = get_tensor(L, name, nd, ne0, ne1, ne2, true, t, NULL))) return st;
            } else if (!found && d->role == LFM_ROLE_HEAD) {
                c->tied_output = true;
                *t = m->tok_embd;
            }
            if (lfm_tensor_wants_f32(id) && (st = make_f32(L, t))) return st;
            n_used += t->data != NULL && !(d->role == LFM_ROLE_HEAD && c->tied_output);
        }
    /* LFM3's optional parts are told by their tensors (load_lfm3): a file with them in some layers
     * but not where we looked would otherwise lose them silently, so every tensor must be used */
    if (lfm3 && n_used != lfm_gguf_n_tensors(L->g))
        return unused_tensor(L, c);
    return LFM_OK;
}

lfm_status lfm_model_load_gguf(struct lfm_model *m, const char *path) {
    lfm_gguf *g;
    lfm_status st = lfm_gguf_open(path, &g);
    if (st) return st;
    loader L = {m, g, path, ""};
    st = load(&L);
    if (st == LFM_OK) {
        /* the tensors point into the mapping: the model owns it from here on (after load, since
         * taking it clears g's base address that lfm_gguf_tensor_info computes views from) */
        lfm_mapping *maps = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *maps);
        if (!maps) {
            st = lfm_fail(LFM_ERR_OOM, "out of memory loading '%s'", path);
        } else {
            m->maps = maps;
            lfm_gguf_take_mapping(g, &m->maps[m->n_maps++]);
        }
    }
    lfm_gguf_close(g);
    return st;
}
