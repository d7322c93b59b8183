/* ref.c — scalar reference kernels: the oracle every ISA version is tested against, and the
 * kernel table used when LFM_KERNELS=ref or the CPU lacks AVX2/FMA/F16C. */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* ---- matmul rows ---- */

/* weight k of row w as a float */
static float w_f32(const void *w, int64_t k) { return ((const float *)w)[k]; }
static float w_f16(const void *w, int64_t k) { return lfm_f16_to_f32(((const uint16_t *)w)[k]); }
static float w_bf16(const void *w, int64_t k) { return lfm_bf16_to_f32(((const uint16_t *)w)[k]); }

/* always inlined, so each caller gets its weight reader inlined (this is also the kernel of CPUs
 * without AVX2) */
static inline __attribute__((always_inline)) void gemm_rows(float (*weight)(const void *, int64_t), size_t wbytes, const void *W, int64_t K, const float *X,
                      int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const void *w = (const char *)W + (size_t)(r * K) * wbytes;
        for (int64_t t = 0; t < T; t++) {
            const float *x = X + t * ldx;
            float s = 0;
            for (int64_t k = 0; k < K; k++) s += weight(w, k) * x[k];
            Y[t * ldy + r] = s;
        }
    }
}

static void gemm_f32(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    gemm_rows(w_f32, 4, W, K, X, ldx, T, Y, ldy, r0, r1);
}

static void gemm_f16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    gemm_rows(w_f16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}

static void gemm_bf16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    gemm_rows(w_bf16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}

/* ---- element-wise ---- */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    float scale = lfm_rms_scale(x, n, eps);
    for (int64_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * scale);
}

static void rope(float *x, const float *cs, int64_t hd) {
    int64_t half = hd / 2;
    const float *cos_ = cs, *sin_ = cs + half;
    for (int64_t i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = fmaf(a, cos_[i], -(b * sin_[i]));
        x[i + half] = fmaf(a, sin_[i], b * cos_[i]);
    }
}

static void softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static void silu_mul(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void mul(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

static void add(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* ---- depthwise causal conv with rolling state ---- */

static void conv(float *out, int64_t ld_out, const float *v, int64_t ld_v, int64_t T, int64_t H, const float *w, int64_t K,
                 float *state) {
    /* input j of the virtual sequence concat(state[0..K-2], v[0..T-1]) */
#define INPUT(j, c) ((j) < K - 1 ? state[(j) * H + (c)] : v[((j) - (K - 1)) * ld_v + (c)])
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < H; c++) {
            float s = 0;
            for (int64_t k = 0; k < K; k++) s = fmaf(w[c * K + k], INPUT(t + k, c), s);
            out[t * ld_out + c] = s;
        }
    /* new state: the last K-1 inputs; shift through a temporary row when T < K-1 */
    for (int64_t j = 0; j < K - 1; j++) {
        int64_t src = T + j; /* index in the virtual sequence */
        for (int64_t c = 0; c < H; c++) {
            float val = INPUT(src, c);
            state[j * H + c] = val; /* src >= j + 1 > j, so state rows not yet read are not overwritten */
        }
    }
#undef INPUT
}

/* ---- attention for one head ---- */

static float ref_round_f16(float x) { return lfm_half_to_float(lfm_float_to_half(x)); }

static void attn(float *out, const float *q, const void *k, const void *v, int64_t ld, int64_t n, int64_t hd, float scale,
                 float *scores, int one_token, int f16) {
    (void)one_token; /* the reference sums in plain order either way */
    const float *kf = k, *vf = v;
    const uint16_t *kh = k, *vh = v;
    for (int64_t j = 0; j < n; j++) {
        float s = 0;
        for (int64_t i = 0; i < hd; i++)
            s += f16 ? ref_round_f16(q[i]) * lfm_half_to_float(kh[j * ld + i]) : q[i] * kf[j * ld + i];
        scores[j] = s * scale;
    }
    softmax(scores, n);
    for (int64_t i = 0; i < hd; i++) out[i] = 0;
    for (int64_t j = 0; j < n; j++) {
        float p = f16 ? ref_round_f16(scores[j]) : scores[j];
        for (int64_t i = 0; i < hd; i++) out[i] += p * (f16 ? lfm_half_to_float(vh[j * ld + i]) : vf[j * ld + i]);
    }
}

static void f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lfm_f16_to_f32(src[i]);
}

static void bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = lfm_bf16_to_f32(src[i]);
}

/* in-order float sum, as gemm_f32 */
static float dot_f32(const float *x, const float *y, int64_t n) {
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

const lfm_kernels lfm_kernels_ref = LFM_KERNELS_TABLE("ref");

/* ---- dispatch ---- */

const lfm_kernels *lfm_kernels_by_name(const char *name) {
    if (!name || strcmp(name, "ref") == 0) return &lfm_kernels_ref;
#if defined(LFM_IS_X86)
    if (strcmp(name, "avx2") == 0) {
        const lfm_cpu_features *f = lfm_cpu();
        return f->avx2 && f->fma && f->f16c ? &lfm_kernels_avx2 : NULL;
    }
#endif
#if defined(LFM_IS_ARM64)
    if (strcmp(name, "neon") == 0) return &lfm_kernels_neon; /* ASIMD and its F16 conversions: every arm64 CPU */
#endif
    return NULL;
}

const lfm_kernels *lfm_kernels_get(void) {
    const lfm_cpu_features *f = lfm_cpu();
    if (f->force_ref) return &lfm_kernels_ref;
#if defined(LFM_IS_X86)
    if (f->avx2 && f->fma && f->f16c) return &lfm_kernels_avx2;
#endif
#if defined(LFM_IS_ARM64)
    return &lfm_kernels_neon; /* ASIMD is mandatory in AArch64 */
#else
    return &lfm_kernels_ref;
#endif
}

const char *lfm_float_kernels(void) { return lfm_kernels_get()->name; }
