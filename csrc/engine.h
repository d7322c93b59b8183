/* engine.h — declarations shared by the engine's own files (config, kernels, context, forward). */
#ifndef LFM_ENGINE_H
#define LFM_ENGINE_H

#include "internal.h"
#include "json.h"
#include "quants/quants.h"

#include <math.h>
#include <stdatomic.h>

/* ---- config.json ---- */

/* The FFN widths a config may mean (lfm2-reference.md §2.4): ff_hf is what transformers builds
 * (the one we expect), ff_alt are the other readings seen in converters (always-rounded, raw);
 * the loader accepts w1's shape if it matches one of them. */
typedef struct {
    int64_t ff_hf;
    int64_t ff_alt[2];
} lfm_ff_candidates;

/* Fill cfg from a parsed config.json (n_ff = the transformers reading). LFM_ERR_UNSUPPORTED for
 * MoE / vision / other architectures, LFM_ERR_FORMAT for missing or invalid fields. */
lfm_status lfm_config_from_json(const lfm_json *root, const char *what, lfm_config *cfg, lfm_ff_candidates *ff);

/* ---- kernels (csrc/kernels/) ---- */

/* Y[t*ldy + r] = dot(W row r, X row t) for t < T, r in [r0, r1). W rows have K elements, stored
 * contiguously (row r at W + r*K). */
typedef void (*lfm_gemm_fn)(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y,
                            int64_t ldy, int64_t r0, int64_t r1);

typedef struct {
    const char *name;                    /* "ref", "avx2" */
    lfm_gemm_fn gemm_f32, gemm_f16, gemm_bf16;
    void (*rmsnorm)(float *out, const float *x, const float *w, int64_t n, float eps);
    /* NeoX rotate-half RoPE on one head of hd values; cs = hd/2 cosines then hd/2 sines */
    void (*rope)(float *x, const float *cs, int64_t hd);
    void (*softmax)(float *x, int64_t n);
    void (*silu_mul)(float *out, const float *gate, const float *up, int64_t n);
    void (*mul)(float *out, const float *a, const float *b, int64_t n);
    void (*add)(float *y, const float *x, int64_t n); /* y += x */
    /* depthwise causal conv: v [T, ld_v] (H channels used), w [H, K], state [(K-1), H] holds the
     * previous K-1 inputs (oldest first) and is updated; out [T, ld_out] */
    void (*conv)(float *out, int64_t ld_out, const float *v, int64_t ld_v, int64_t T, int64_t H,
                 const float *w, int64_t K, float *state);
    /* one query head against n cached positions: out[hd] = softmax(q.k_j * scale) . v_j;
     * k_j at k + j*ld, v_j at v + j*ld (elements, F32 or with f16 F16); scores: n floats of scratch.
     * one_token: the query is the only token of its batch (llama.cpp sums in another order then; we
     * follow it). f16: the cache is F16, and q and the attention weights are rounded to F16 too, as
     * llama.cpp does with its F16 cache. hd <= LFM_MAX_HEAD_DIM. */
    void (*attn)(float *out, const float *q, const void *k, const void *v, int64_t ld, int64_t n, int64_t hd,
                 float scale, float *scores, int one_token, int f16);
    void (*f16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, int64_t n);
} lfm_kernels;

extern const lfm_kernels lfm_kernels_ref;
/* Test oracle (kernels/kernels_oracle.c): kernels_avx2.c's float order in scalar code. */
extern const lfm_kernels lfm_kernels_avx2_order;
#if defined(LFM_IS_X86)
extern const lfm_kernels lfm_kernels_avx2;
#endif
/* The table for this CPU (AVX2+FMA+F16C when present, unless LFM_KERNELS=ref). */
const lfm_kernels *lfm_kernels_get(void);
/* By name ("ref", "avx2"); NULL if not available on this CPU/build. */
const lfm_kernels *lfm_kernels_by_name(const char *name);

/* scalar conversions: the exact ones the block formats use (quants/quants.h) */
static inline float lfm_bf16_to_f32(uint16_t h) { return lfm_bf16_to_float(h); }
static inline float lfm_f16_to_f32(uint16_t h) { return lfm_half_to_float(h); }

#define LFM_MAX_HEAD_DIM 1024 /* config.c accepts head_dim up to 1024 */

/* RMSNorm's 1/sqrt(mean(x^2) + eps), rounded the way llama.cpp's CPU backend rounds it: float
 * squares summed in order in double, the mean and the root in float. Both kernel sets share it so
 * that GGUF models reproduce llama.cpp's activations bit for bit (the 8-bit activation quantization
 * of the next matmul turns any last-bit difference into a visible one). */
static inline float lfm_rms_scale(const float *x, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)(x[i] * x[i]);
    const float mean = (float)(ss / (double)n);
    return 1.0f / sqrtf(mean + eps);
}

/* ---- context ---- */

struct lfm_ctx {
    const lfm_model *model;
    const lfm_kernels *k;
    lfm_threadpool *tp;
    int32_t n_ctx, n_batch, pos;
    int32_t n_layer_attn, n_layer_conv;
    int32_t *slot;           /* n_layer: index among attention layers or among conv layers */
    void *k_cache;           /* (n_layer_attn, n_ctx, n_head_kv*head_dim) of F32, or F16 if kv_f16 */
    void *v_cache;           /* (n_layer_attn, n_ctx, n_head_kv*head_dim) of F32, or F16 if kv_f16 */
    int kv_f16;
    size_t kv_elem;          /* bytes per cached value: 4 or 2 */
    float *conv_state;       /* (n_layer_conv, K-1, H) oldest first */
    /* scratch, sized for n_batch tokens */
    float *x;                /* (n_batch, H) residual stream */
    float *xn;               /* (n_batch, H) normed input of a block */
    float *big;              /* (n_batch, n_big) projections: 3H conv in_proj, q|k|v, gate */
    float *big2;             /* (n_batch, F) up */
    float *y;                /* (n_batch, max(H, nh*hd)) block output before the out projection */
    float *rope_cs;          /* (n_batch, head_dim) cos then sin per token */
    float *scores;           /* (n_threads, n_ctx) attention scores */
    void *mm_scratch;        /* quantized activations for lfm_matmul */
    int64_t n_big;
    /* logits */
    float *logits;           /* (logits_cap, n_vocab) */
    int32_t logits_cap, n_logits;
    bool has_last_logits;    /* logits row n_logits-1 belongs to token pos-1 */
    int (*abort_cb)(void *);
    void *abort_user;
    atomic_int busy;
};

/* Run T tokens (T <= n_batch) at positions c->pos.. and advance pos. logits_rows: 0 none,
 * 1 the last token's row into dst, 2 every token's row into dst (T rows). Checks the abort
 * callback between layers (LFM_ERR_ABORTED; the caller resets the context). */
lfm_status lfm2_forward(struct lfm_ctx *c, const lfm_token *tokens, int32_t T, int logits_rows, float *dst);

#endif
