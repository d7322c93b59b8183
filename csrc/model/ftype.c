/* ftype.c — llama.cpp's file types (lfm_ftype): which storage type each LFM2 / LFM2-MoE tensor gets.
 *
 * One rule for both writers of quantized weights: liquidlfm/quantize.py (the GGUF converter, through
 * _core.ftype_tensor_types) and quantize on load (model/requantize.c). It is the decision
 * llama-quantize makes for an LFM2 model without an importance matrix or overrides
 * (llama_tensor_get_type in src/llama-quant.cpp of llama.cpp 0c1e57098, the one
 * llama-cpp-python 0.3.36 vendors), read for the tensors an LFM2 model has:
 *
 *   - norms, the short-conv kernel, the MoE router (ffn_gate_inp) and the expert bias are never
 *     quantized (1-D, or excluded by name);
 *   - the output head, and the token embedding when the head is tied to it, get Q6_K, or Q8_0 when
 *     the mix's type is Q8_0 or its block does not divide the row length (an untied embedding gets
 *     the mix's type);
 *   - attention V: Q4_K_M and Q5_K_M use Q6_K for the attention layers i (counted over attention
 *     layers only, in layer order, n of them) with i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2;
 *     Q4_K_S uses Q5_K for the first 4;
 *   - FFN down, by layer index over all n layers (every LFM2 layer has one; in a MoE layer it is the
 *     experts' stack ffn_down_exps, which llama.cpp's name test counts as FFN down): the same test
 *     gives Q6_K in Q4_K_M and Q5_K_M; Q4_K_S uses Q5_K below n/8;
 *   - a model with exactly 8 experts (llama.cpp's Mixtral rule): attention V and K in Q8_0 (after
 *     the rules above), attention output in Q5_K for Q4_K_S / Q4_K_M;
 *   - every other matrix gets the mix's type (LFM3's attention gate g_proj too: llama.cpp has no rule
 *     for qwen3next's attn_gate, the same tensor, so it gets the mix's type as q_proj does; LFM3's
 *     sandwich norms are norms);
 *   - then a row length the chosen block does not divide falls back: Q4_K to Q5_0, Q5_K to Q5_1,
 *     Q6_K to Q8_0, and to F16 when even that block does not divide it.
 * The float file types (F32, F16, BF16) give every quantizable tensor that type. */
#include "model/model.h"
#include "kernels/kernels.h"

#include <ctype.h>
#include <stdio.h>

typedef struct {
    const char *name;
    lfm_ftype ftype;
    lfm_type base; /* the mix's type: what a tensor gets when no rule says otherwise */
} ftype_row;

/* Names as llama-quantize spells them (lower case); the aliases after their targets. */
static const ftype_row ftypes[] = {
    {"f32", LFM_FTYPE_F32, LFM_TYPE_F32},           {"f16", LFM_FTYPE_F16, LFM_TYPE_F16},
    {"bf16", LFM_FTYPE_BF16, LFM_TYPE_BF16},        {"q8_0", LFM_FTYPE_Q8_0, LFM_TYPE_Q8_0},
    {"q4_0", LFM_FTYPE_Q4_0, LFM_TYPE_Q4_0},        {"q4_1", LFM_FTYPE_Q4_1, LFM_TYPE_Q4_1},
    {"q5_0", LFM_FTYPE_Q5_0, LFM_TYPE_Q5_0},        {"q5_1", LFM_FTYPE_Q5_1, LFM_TYPE_Q5_1},
    {"q4_k_s", LFM_FTYPE_Q4_K_S, LFM_TYPE_Q4_K},    {"q4_k_m", LFM_FTYPE_Q4_K_M, LFM_TYPE_Q4_K},
    {"q5_k_s", LFM_FTYPE_Q5_K_S, LFM_TYPE_Q5_K},    {"q5_k_m", LFM_FTYPE_Q5_K_M, LFM_TYPE_Q5_K},
    {"q6_k", LFM_FTYPE_Q6_K, LFM_TYPE_Q6_K},        {"q4_k", LFM_FTYPE_Q4_K_M, LFM_TYPE_Q4_K},
    {"q5_k", LFM_FTYPE_Q5_K_M, LFM_TYPE_Q5_K},
};

/* llama.cpp's other file types: named so a request for one is told it is unsupported, not unknown */
static const char *const unsupported_ftypes[] = {
    "q2_k",  "q2_k_s", "q3_k",  "q3_k_s", "q3_k_m", "q3_k_l", "iq1_s", "iq1_m",  "iq2_xxs", "iq2_xs", "iq2_s",
    "iq2_m", "iq3_xxs", "iq3_xs", "iq3_s", "iq3_m",  "iq4_nl", "iq4_xs", "tq1_0", "tq2_0",   "mxfp4_moe",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool same_name(const char *a, const char *b) { /* ASCII, case-insensitive */
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

lfm_ftype lfm_ftype_by_name(const char *name, bool *known_unsupported) {
    if (known_unsupported) *known_unsupported = false;
    if (!name) return LFM_FTYPE_NONE;
    for (size_t i = 0; i < COUNT(ftypes); i++)
        if (same_name(name, ftypes[i].name)) return ftypes[i].ftype;
    for (size_t i = 0; i < COUNT(unsupported_ftypes); i++)
        if (same_name(name, unsupported_ftypes[i]) && known_unsupported) *known_unsupported = true;
    return LFM_FTYPE_NONE;
}

const char *lfm_ftype_name(lfm_ftype f) {
    for (size_t i = 0; i < COUNT(ftypes); i++)
        if (ftypes[i].ftype == f) return ftypes[i].name; /* the first row: the canonical name */
    return NULL;
}

const char *lfm_ftype_name_at(size_t i, lfm_ftype *f) {
    if (i >= COUNT(ftypes)) return NULL;
    if (f) *f = ftypes[i].ftype;
    return ftypes[i].name;
}

void lfm_ftype_names(char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (size_t i = 0; i < COUNT(ftypes) && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", ftypes[i].name);
}

lfm_type lfm_ftype_base_type(lfm_ftype f) {
    for (size_t i = 0; i < COUNT(ftypes); i++)
        if (ftypes[i].ftype == f) return ftypes[i].base;
    return LFM_TYPE_NONE;
}

/* llama.cpp's use_more_bits: the first and last eighth, and every third one in between */
static bool more_bits(int32_t i, int32_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool divides(lfm_type t, int64_t n) {
    int64_t be = lfm_type_block_elems(t);
    return be > 0 && n % be == 0;
}

/* llama.cpp's fallback for a row length the block does not divide */
static lfm_type fallback(lfm_type t, int64_t ne0) {
    if (divides(t, ne0)) return t;
    switch (t) {
    case LFM_TYPE_Q4_K: t = LFM_TYPE_Q5_0; break;
    case LFM_TYPE_Q5_K: t = LFM_TYPE_Q5_1; break;
    case LFM_TYPE_Q6_K: t = LFM_TYPE_Q8_0; break;
    default: break; /* a 32-element type: no smaller block to go to */
    }
    return divides(t, ne0) ? t : LFM_TYPE_F16;
}

lfm_type lfm_ftype_tensor_type(lfm_ftype f, const lfm_config *c, lfm_tensor_id id, int32_t layer) {
    lfm_type base = lfm_ftype_base_type(f);
    if (base == LFM_TYPE_NONE || (int)id < 0 || id >= LFM_TENSOR_COUNT) return LFM_TYPE_NONE;
    const lfm_tensor_desc *d = &lfm_tensors[id];
    if (d->role == LFM_ROLE_NORM || d->role == LFM_ROLE_CONV_KERNEL || d->role == LFM_ROLE_ROUTER || d->role == LFM_ROLE_BIAS)
        return LFM_TYPE_NONE;
    if (!lfm_type_is_quantized(base)) return base;
    const int64_t ne0 = lfm_dim_value(c, d->ne[0]);
    lfm_type t = base;
    if (d->role == LFM_ROLE_HEAD || (d->role == LFM_ROLE_EMBEDDING && c->tied_output)) {
        if (!divides(base, ne0)) t = LFM_TYPE_Q8_0;
        else if (base != LFM_TYPE_Q8_0) t = LFM_TYPE_Q6_K;
    } else if (id == LFM_TENSOR_ATTN_V) {
        int32_t i = 0, n = 0; /* this layer's place among the attention layers, and their number */
        for (int32_t l = 0; l < c->n_layer; l++) {
            if (!c->is_attn[l]) continue;
            i += l < layer;
            n++;
        }
        if ((f == LFM_FTYPE_Q4_K_M || f == LFM_FTYPE_Q5_K_M) && more_bits(i, n)) t = LFM_TYPE_Q6_K;
        else if (f == LFM_FTYPE_Q4_K_S && i < 4) t = LFM_TYPE_Q5_K;
        if (c->n_expert == 8) t = LFM_TYPE_Q8_0;
    } else if (id == LFM_TENSOR_ATTN_K) {
        if (c->n_expert == 8) t = LFM_TYPE_Q8_0;
    } else if (id == LFM_TENSOR_ATTN_OUT) {
        if (c->n_expert == 8 && (f == LFM_FTYPE_Q4_K_S || f == LFM_FTYPE_Q4_K_M)) t = LFM_TYPE_Q5_K;
    } else if (id == LFM_TENSOR_FFN_DOWN || id == LFM_TENSOR_FFN_DOWN_EXPS) {
        if ((f == LFM_FTYPE_Q4_K_M || f == LFM_FTYPE_Q5_K_M) && more_bits(layer, c->n_layer)) t = LFM_TYPE_Q6_K;
        else if (f == LFM_FTYPE_Q4_K_S && layer < c->n_layer / 8) t = LFM_TYPE_Q5_K;
    }
    return fallback(t, ne0);
}
