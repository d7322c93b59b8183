/* kernels/kernels.h — the kernel tables: float kernels per ISA (ref.c, x86/float_avx2.c) and
 * the quantized dot products (kernels/quants/).
 *
 * Every kernel here is memory-safe and deterministic on any float input: NaN and +-inf propagate
 * or give a defined result, never an out-of-bounds access or a float-to-int conversion of a
 * non-finite value (the rule: kernels/ROUNDING.md, "Non-finite values"). */
#ifndef LFM_KERNELS_H
#define LFM_KERNELS_H

#include "model/model.h"
#include "kernels/quants/quants.h"
#include <math.h>

/* ---- float kernels ---- */

/* Y[t*ldy + r] = dot(W row r, X row t) for t < T, r in [r0, r1). W rows have K elements, stored
 * contiguously (row r at W + r*K). */
typedef void (*lfm_gemm_fn)(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y,
                            int64_t ldy, int64_t r0, int64_t r1);

typedef struct {
    const char *name;                    /* "ref", "avx2", "neon" */
    lfm_gemm_fn gemm[LFM_TYPE_COUNT];    /* by weight type: F32, F16, BF16; NULL for the rest */
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
    /* x . y over n floats in ggml_vec_dot_f32's order (four 8-lane accumulators over steps of 32):
     * what llama.cpp's F32 matmul does for a lone token, where our GEMM follows its batched order.
     * The MoE router (F32 in every GGUF) uses it for one-token steps. */
    float (*dot_f32)(const float *x, const float *y, int64_t n);
} lfm_kernels;

/* The table of one kernel level, from the static functions of that level's file, which all carry
 * the same names (gemm_f32, rmsnorm, ...): each ISA file ends with
 * `const lfm_kernels lfm_kernels_avx2 = LFM_KERNELS_TABLE("avx2");`. */
#define LFM_KERNELS_TABLE(level_name)                                                                \
    {                                                                                                \
        .name = level_name,                                                                          \
        .gemm = {[LFM_TYPE_F32] = gemm_f32, [LFM_TYPE_F16] = gemm_f16, [LFM_TYPE_BF16] = gemm_bf16}, \
        .rmsnorm = rmsnorm, .rope = rope, .softmax = softmax, .silu_mul = silu_mul, .mul = mul,      \
        .add = add, .conv = conv, .attn = attn, .f16_to_f32 = f16_to_f32, .bf16_to_f32 = bf16_to_f32, \
        .dot_f32 = dot_f32,                                                                          \
    }

extern const lfm_kernels lfm_kernels_ref;
/* Test oracle (kernels/kernels_oracle.c): x86/float_avx2.c's float order in scalar code. */
extern const lfm_kernels lfm_kernels_avx2_order;
#if defined(LFM_IS_X86)
extern const lfm_kernels lfm_kernels_avx2;
#endif
#if defined(LFM_IS_ARM64)
extern const lfm_kernels lfm_kernels_neon; /* kernels/arm/float_neon.c: the AVX2 file's float order */
#endif
/* The table for this CPU (AVX2+FMA+F16C on x86, NEON on arm64), or ref with LFM_KERNELS=ref. */
const lfm_kernels *lfm_kernels_get(void);
/* By name ("ref", "avx2"); NULL if not available on this CPU/build. */
const lfm_kernels *lfm_kernels_by_name(const char *name);

/* scalar conversions: the exact ones the block formats use (kernels/quants/quants.h) */
static inline float lfm_bf16_to_f32(uint16_t h) { return lfm_bf16_to_float(h); }
static inline float lfm_f16_to_f32(uint16_t h) { return lfm_half_to_float(h); }

#define LFM_MAX_HEAD_DIM 1024 /* lfm_model_validate (model/model.c) refuses a larger head_dim for every loader */

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

/* ---- quantized kernels (kernels/quants/) ---- */

/* The activation format a weight type's dot product wants (Q8_0, Q8_K, ...; F32 for float types). */
lfm_type lfm_type_vec_dot_type(lfm_type t);
bool lfm_type_is_quantized(lfm_type t);
/* Quantize one activation row of n floats into the vec_dot type. */
void lfm_quantize_act_row(lfm_type vec_dot_type, const float *x, void *dst, int64_t n);
/* Y[t*ldy + r] for r in [r0, r1), t < T: dot of weight row r with quantized activation row t
 * (rows of xq_row_bytes bytes each). */
void lfm_matmul_quant_rows(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1);
/* The same, every token rounded as in a one-token batch (lfm_qkernels.mm_x8_tok): the MoE experts'
 * order, llama.cpp's MUL_MAT_ID. */
void lfm_matmul_quant_rows_per_token(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T,
                                     float *Y, int64_t ldy, int64_t r0, int64_t r1);

#endif /* LFM_KERNELS_H */
