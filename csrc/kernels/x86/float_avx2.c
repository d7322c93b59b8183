/* float_avx2.c — AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c only; chosen at
 * run time by lfm_kernels_get when the CPU has all three). Same contracts as ref.c.
 *
 * The matmul is a blocked GEMM: a chunk of tokens small enough to stay in L2 is multiplied by
 * 4 weight rows × 3 tokens per inner loop, so every weight vector loaded (and converted from
 * F16/BF16) is used three times and every activation vector four times; for prefill each weight row
 * is streamed from memory once per token chunk instead of once per token. */
/* x86 only: in a macOS universal2 build every file is compiled for arm64 too */
#if defined(__x86_64__) || defined(__i386__)
#include "kernels/kernels.h"

#include <immintrin.h>
#include <math.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE float hsum(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* ---- weight loaders: 8 consecutive weights of row w as floats, and one as a scalar ---- */

static ALWAYS_INLINE __m256 ld8_f32(const void *w, int64_t k) { return _mm256_loadu_ps((const float *)w + k); }
static ALWAYS_INLINE __m256 ld8_f16(const void *w, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + k)));
}
static ALWAYS_INLINE __m256 ld8_bf16(const void *w, int64_t k) {
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static ALWAYS_INLINE float ld1_f32(const void *w, int64_t k) { return ((const float *)w)[k]; }
static ALWAYS_INLINE float ld1_f16(const void *w, int64_t k) { return _cvtsh_ss(((const uint16_t *)w)[k]); }
static ALWAYS_INLINE float ld1_bf16(const void *w, int64_t k) { return lfm_bf16_to_f32(((const uint16_t *)w)[k]); }

typedef __m256 (*ld8_fn)(const void *, int64_t);
typedef float (*ld1_fn)(const void *, int64_t);

/* 4 rows x 3 tokens: 12 accumulators + 3 activations + 1 weight = 16 registers */
static ALWAYS_INLINE void tile_4x3(ld8_fn ld8, ld1_fn ld1, const void *w0, const void *w1, const void *w2, const void *w3,
                                   const float *x0, const float *x1, const float *x2, int64_t K, float *y0, float *y1,
                                   float *y2) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xa = _mm256_loadu_ps(x0 + k), xb = _mm256_loadu_ps(x1 + k), xc = _mm256_loadu_ps(x2 + k), w;
        w = ld8(w0, k), a00 = _mm256_fmadd_ps(w, xa, a00), a01 = _mm256_fmadd_ps(w, xb, a01), a02 = _mm256_fmadd_ps(w, xc, a02);
        w = ld8(w1, k), a10 = _mm256_fmadd_ps(w, xa, a10), a11 = _mm256_fmadd_ps(w, xb, a11), a12 = _mm256_fmadd_ps(w, xc, a12);
        w = ld8(w2, k), a20 = _mm256_fmadd_ps(w, xa, a20), a21 = _mm256_fmadd_ps(w, xb, a21), a22 = _mm256_fmadd_ps(w, xc, a22);
        w = ld8(w3, k), a30 = _mm256_fmadd_ps(w, xa, a30), a31 = _mm256_fmadd_ps(w, xb, a31), a32 = _mm256_fmadd_ps(w, xc, a32);
    }
    float s[4][3] = {{hsum(a00), hsum(a01), hsum(a02)}, {hsum(a10), hsum(a11), hsum(a12)},
                     {hsum(a20), hsum(a21), hsum(a22)}, {hsum(a30), hsum(a31), hsum(a32)}};
    const void *w[4] = {w0, w1, w2, w3};
    for (; k < K; k++)
        for (int r = 0; r < 4; r++) {
            float f = ld1(w[r], k);
            s[r][0] += f * x0[k], s[r][1] += f * x1[k], s[r][2] += f * x2[k];
        }
    for (int r = 0; r < 4; r++) y0[r] = s[r][0], y1[r] = s[r][1], y2[r] = s[r][2];
}

/* 4 rows x 2 tokens */
static ALWAYS_INLINE void tile_4x2(ld8_fn ld8, ld1_fn ld1, const void *w0, const void *w1, const void *w2, const void *w3,
                                   const float *x0, const float *x1, int64_t K, float *y0, float *y1) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xa = _mm256_loadu_ps(x0 + k), xb = _mm256_loadu_ps(x1 + k), w;
        w = ld8(w0, k), a00 = _mm256_fmadd_ps(w, xa, a00), a01 = _mm256_fmadd_ps(w, xb, a01);
        w = ld8(w1, k), a10 = _mm256_fmadd_ps(w, xa, a10), a11 = _mm256_fmadd_ps(w, xb, a11);
        w = ld8(w2, k), a20 = _mm256_fmadd_ps(w, xa, a20), a21 = _mm256_fmadd_ps(w, xb, a21);
        w = ld8(w3, k), a30 = _mm256_fmadd_ps(w, xa, a30), a31 = _mm256_fmadd_ps(w, xb, a31);
    }
    float s00 = hsum(a00), s01 = hsum(a01), s10 = hsum(a10), s11 = hsum(a11);
    float s20 = hsum(a20), s21 = hsum(a21), s30 = hsum(a30), s31 = hsum(a31);
    for (; k < K; k++) {
        float f0 = ld1(w0, k), f1 = ld1(w1, k), f2 = ld1(w2, k), f3 = ld1(w3, k);
        s00 += f0 * x0[k], s01 += f0 * x1[k], s10 += f1 * x0[k], s11 += f1 * x1[k];
        s20 += f2 * x0[k], s21 += f2 * x1[k], s30 += f3 * x0[k], s31 += f3 * x1[k];
    }
    y0[0] = s00, y0[1] = s10, y0[2] = s20, y0[3] = s30;
    y1[0] = s01, y1[1] = s11, y1[2] = s21, y1[3] = s31;
}

/* 4 rows x 1 token */
static ALWAYS_INLINE void tile_4x1(ld8_fn ld8, ld1_fn ld1, const void *w0, const void *w1, const void *w2, const void *w3,
                                   const float *x0, int64_t K, float *y0) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xa = _mm256_loadu_ps(x0 + k);
        a0 = _mm256_fmadd_ps(ld8(w0, k), xa, a0);
        a1 = _mm256_fmadd_ps(ld8(w1, k), xa, a1);
        a2 = _mm256_fmadd_ps(ld8(w2, k), xa, a2);
        a3 = _mm256_fmadd_ps(ld8(w3, k), xa, a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; k < K; k++) {
        s0 += ld1(w0, k) * x0[k], s1 += ld1(w1, k) * x0[k];
        s2 += ld1(w2, k) * x0[k], s3 += ld1(w3, k) * x0[k];
    }
    y0[0] = s0, y0[1] = s1, y0[2] = s2, y0[3] = s3;
}

/* 1 row x 1 token */
static ALWAYS_INLINE float tile_1x1(ld8_fn ld8, ld1_fn ld1, const void *w0, const float *x0, int64_t K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        a0 = _mm256_fmadd_ps(ld8(w0, k), _mm256_loadu_ps(x0 + k), a0);
        a1 = _mm256_fmadd_ps(ld8(w0, k + 8), _mm256_loadu_ps(x0 + k + 8), a1);
    }
    for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(ld8(w0, k), _mm256_loadu_ps(x0 + k), a0);
    float s = hsum(_mm256_add_ps(a0, a1));
    for (; k < K; k++) s += ld1(w0, k) * x0[k];
    return s;
}

static ALWAYS_INLINE void gemm_generic(ld8_fn ld8, ld1_fn ld1, size_t esz, const void *W, int64_t K, const float *X, int64_t ldx,
                                       int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const char *Wb = W;
    const size_t row = (size_t)K * esz;
    /* tokens per chunk: keep the chunk's activations (TB*K floats) within ~384 KiB (L2) */
    int64_t TB = (96 * 1024) / (K > 0 ? K : 1);
    TB = TB < 2 ? 2 : TB > 64 ? 64 : TB;
    TB -= TB % 3 ? TB % 3 : 0; /* whole 4x3 tiles */
    TB = TB < 3 ? 3 : TB;
    for (int64_t t0 = 0; t0 < T; t0 += TB) {
        int64_t t1 = t0 + TB < T ? t0 + TB : T;
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const void *w0 = Wb + (size_t)r * row, *w1 = Wb + (size_t)(r + 1) * row;
            const void *w2 = Wb + (size_t)(r + 2) * row, *w3 = Wb + (size_t)(r + 3) * row;
            int64_t t = t0;
            for (; t + 3 <= t1; t += 3)
                tile_4x3(ld8, ld1, w0, w1, w2, w3, X + t * ldx, X + (t + 1) * ldx, X + (t + 2) * ldx, K, Y + t * ldy + r,
                         Y + (t + 1) * ldy + r, Y + (t + 2) * ldy + r);
            for (; t + 2 <= t1; t += 2)
                tile_4x2(ld8, ld1, w0, w1, w2, w3, X + t * ldx, X + (t + 1) * ldx, K, Y + t * ldy + r, Y + (t + 1) * ldy + r);
            for (; t < t1; t++) tile_4x1(ld8, ld1, w0, w1, w2, w3, X + t * ldx, K, Y + t * ldy + r);
        }
        for (; r < r1; r++)
            for (int64_t t = t0; t < t1; t++) Y[t * ldy + r] = tile_1x1(ld8, ld1, Wb + (size_t)r * row, X + t * ldx, K);
    }
}

static void gemm_f32(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    gemm_generic(ld8_f32, ld1_f32, 4, W, K, X, ldx, T, Y, ldy, r0, r1);
}
static void gemm_f16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    gemm_generic(ld8_f16, ld1_f16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}
static void gemm_bf16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    gemm_generic(ld8_bf16, ld1_bf16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}

/* ---- element-wise ---- */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    const float scale = lfm_rms_scale(x, n, eps);
    const __m256 s = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), s)));
    for (; i < n; i++) out[i] = w[i] * (x[i] * scale);
}

static void rope(float *x, const float *cs, int64_t hd) {
    int64_t half = hd / 2, i = 0;
    const float *cos_ = cs, *sin_ = cs + half;
    for (; i + 8 <= half; i += 8) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + half + i);
        __m256 c = _mm256_loadu_ps(cos_ + i), s = _mm256_loadu_ps(sin_ + i);
        _mm256_storeu_ps(x + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        _mm256_storeu_ps(x + half + i, _mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
    }
    for (; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = fmaf(a, cos_[i], -(b * sin_[i]));
        x[i + half] = fmaf(a, sin_[i], b * cos_[i]);
    }
}

/* ---- exp for softmax and SiLU ----
 *
 * e^x = 2^n (1 + p(r)): n = round(x log2 e) by the 1.5*2^23 shift, r = x - n ln2 with ln2 split in a
 * high and a low part, p a degree-5 minimax polynomial (the Arm Optimized Routines expf, max error
 * about 1.5 ulp). llama.cpp's CPU backend evaluates exactly this, operation for operation, and GGUF
 * models are checked against it bit for bit, so the rounding steps below must stay as they are. */
static ALWAYS_INLINE __m256 exp8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 two_n = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
    const __m256 r2 = _mm256_mul_ps(r, r);
    const __m256 hi = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), r, _mm256_set1_ps(0x1.573e2ep-5f)), r2,
                                      _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), r, _mm256_set1_ps(0x1.fffdb6p-2f)));
    const __m256 poly = _mm256_fmadd_ps(hi, r2, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), r)); /* e^r - 1 */
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    if (!_mm256_movemask_ps(big)) return _mm256_fmadd_ps(poly, two_n, two_n);
    /* |n| > 126: 2^n is not a normal float; scale by two factors. |n| > 192: overflow to inf or
     * underflow to 0. */
    const __m256i bias = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                          _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(bias, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, bias));
    const __m256 huge = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, poly, s2), s1);
    const __m256 normal = _mm256_fmadd_ps(two_n, poly, two_n);
    return _mm256_blendv_ps(_mm256_blendv_ps(normal, scaled, big), _mm256_mul_ps(s1, s1), huge);
}

/* Sums chunks of 8 exps (each reduced in float, the chunks in double) from index 0, as llama.cpp
 * does over its padded KV rows; the padding lanes here are exact zeros. */
static void softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const __m256 vmx = _mm256_set1_ps(mx);
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
        _mm256_storeu_ps(x + i, e);
        sum += hsum(e);
    }
    if (i < n) {
        float tail[8] = {0};
        for (int64_t j = i; j < n; j++) tail[j - i] = x[j] - mx;
        __m256 e = exp8(_mm256_loadu_ps(tail));
        __m256 live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
        e = _mm256_and_ps(e, live);
        _mm256_storeu_ps(tail, e);
        for (int64_t j = i; j < n; j++) x[j] = tail[j - i];
        sum += hsum(e);
    }
    const float inv = (float)(1.0 / sum);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    for (; i < n; i++) x[i] *= inv;
}

/* silu(g) * up = g / (1 + e^-g) * up, 8 at a time with exp8 and libm's expf for the tail, like
 * llama.cpp (callers pass one row at a time so the tail falls where llama.cpp's does). */
static void silu_mul(float *out, const float *gate, const float *up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void mul(float *out, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) out[i] = a[i] * b[i];
}

static void add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

/* ---- depthwise causal conv: 8 channels at a time, taps as vectors ---- */

#define CONV_MAX_K 16

static void conv(float *out, int64_t ld_out, const float *v, int64_t ld_v, int64_t T, int64_t H, const float *w, int64_t K,
                 float *state) {
    if (K > CONV_MAX_K) {
        lfm_kernels_ref.conv(out, ld_out, v, ld_v, T, H, w, K, state);
        return;
    }
#define INPUT_PTR(j) ((j) < K - 1 ? state + (j) * H : v + ((j) - (K - 1)) * ld_v)
    int64_t c = 0;
    for (; c + 8 <= H; c += 8) {
        __m256 wk[CONV_MAX_K];
        for (int64_t k = 0; k < K; k++)
            wk[k] = _mm256_setr_ps(w[(c + 0) * K + k], w[(c + 1) * K + k], w[(c + 2) * K + k], w[(c + 3) * K + k],
                                   w[(c + 4) * K + k], w[(c + 5) * K + k], w[(c + 6) * K + k], w[(c + 7) * K + k]);
        for (int64_t t = 0; t < T; t++) {
            /* same order and rounding as ref: s = fma(w_k, in_k, s) for k = 0.. */
            __m256 s = _mm256_setzero_ps();
            for (int64_t k = 0; k < K; k++) s = _mm256_fmadd_ps(wk[k], _mm256_loadu_ps(INPUT_PTR(t + k) + c), s);
            _mm256_storeu_ps(out + t * ld_out + c, s);
        }
    }
    for (; c < H; c++)
        for (int64_t t = 0; t < T; t++) {
            float s = 0;
            for (int64_t k = 0; k < K; k++) s = fmaf(w[c * K + k], INPUT_PTR(t + k)[c], s);
            out[t * ld_out + c] = s;
        }
    for (int64_t j = 0; j < K - 1; j++) {
        const float *src = INPUT_PTR(T + j);
        float *dst = state + j * H;
        for (int64_t i = 0; i < H; i++) dst[i] = src[i];
    }
#undef INPUT_PTR
}

/* ---- attention for one head ---- */

/* The attention products in llama.cpp's orders. x is a float vector; y is read through ld8/ld1
 * (F32 or F16 cache). */

/* four 8-lane accumulators over steps of 32, then pairwise: llama.cpp's F32 / F16 dot */
static ALWAYS_INLINE float dot_steps32(ld8_fn ld8, ld1_fn ld1, const float *x, const void *y, int64_t n) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const int64_t n32 = n & ~(int64_t)31;
    for (int64_t i = 0; i < n32; i += 32)
        for (int j = 0; j < 4; j++) acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j), ld8(y, i + 8 * j), acc[j]);
    __m256 a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_hadd_ps(h, h);
    float s = _mm_cvtss_f32(_mm_hadd_ps(h, h));
    for (int64_t i = n32; i < n; i++) s = fmaf(x[i], ld1(y, i), s);
    return s;
}

/* one 8-lane accumulator over steps of 8, one horizontal sum: llama.cpp's batched F16 product */
static ALWAYS_INLINE float dot_steps8(ld8_fn ld8, const float *x, const void *y, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), ld8(y, i), acc);
    return hsum(acc);
}

/* p . V for a batch of tokens: position j goes to accumulator j % 8 (positions in aligned groups
 * of 8 from 0), the 8 accumulators then summed as one 8-lane horizontal sum. */
static ALWAYS_INLINE void pv_batch(ld8_fn ld8, ld1_fn ld1, float *out, const float *p, const void *v, int64_t ld, int64_t n,
                                   int64_t hd) {
    int64_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        __m256 a[8];
        for (int l = 0; l < 8; l++) a[l] = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++) a[l] = _mm256_fmadd_ps(_mm256_set1_ps(p[j + l]), ld8(v, (j + l) * ld + i), a[l]);
        for (int l = 0; j + l < n; l++) a[l] = _mm256_fmadd_ps(_mm256_set1_ps(p[j + l]), ld8(v, (j + l) * ld + i), a[l]);
        __m256 even = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
        __m256 odd = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
        _mm256_storeu_ps(out + i, _mm256_add_ps(even, odd));
    }
    for (; i < hd; i++) {
        float a[8] = {0};
        for (int64_t j = 0; j < n; j++) a[j & 7] = fmaf(p[j], ld1(v, j * ld + i), a[j & 7]);
        out[i] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
    }
}

/* p . V for a lone token: dot_steps32's order over the positions (residue j % 32 picks one of 32
 * accumulators), which is what llama.cpp runs for one-token batches. */
static ALWAYS_INLINE void pv_one(ld8_fn ld8, ld1_fn ld1, float *out, const float *p, const void *v, int64_t ld, int64_t n,
                                 int64_t hd) {
    int64_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        __m256 a[32];
        for (int l = 0; l < 32; l++) a[l] = _mm256_setzero_ps();
        for (int64_t j = 0; j < n; j++) a[j & 31] = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), ld8(v, j * ld + i), a[j & 31]);
        __m256 b[8];
        for (int l = 0; l < 8; l++) b[l] = _mm256_add_ps(_mm256_add_ps(a[l], a[16 + l]), _mm256_add_ps(a[8 + l], a[24 + l]));
        __m256 lo = _mm256_add_ps(_mm256_add_ps(b[0], b[4]), _mm256_add_ps(b[1], b[5]));
        __m256 hi = _mm256_add_ps(_mm256_add_ps(b[2], b[6]), _mm256_add_ps(b[3], b[7]));
        _mm256_storeu_ps(out + i, _mm256_add_ps(lo, hi));
    }
    for (; i < hd; i++) {
        float a[32] = {0}, b[8];
        for (int64_t j = 0; j < n; j++) a[j & 31] = fmaf(p[j], ld1(v, j * ld + i), a[j & 31]);
        for (int l = 0; l < 8; l++) b[l] = (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]);
        out[i] = ((b[0] + b[4]) + (b[1] + b[5])) + ((b[2] + b[6]) + (b[3] + b[7]));
    }
}

/* float -> nearest F16 -> float, 8 at a time */
static void round_to_f16(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) dst[i] = _cvtsh_ss(_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT));
}

static void attn(float *out, const float *q, const void *k, const void *v, int64_t ld, int64_t n, int64_t hd, float scale,
                 float *scores, int one_token, int f16) {
    if (!f16) {
        for (int64_t j = 0; j < n; j++) scores[j] = dot_steps32(ld8_f32, ld1_f32, q, (const float *)k + j * ld, hd) * scale;
        softmax(scores, n);
        if (one_token) pv_one(ld8_f32, ld1_f32, out, scores, v, ld, n, hd);
        else pv_batch(ld8_f32, ld1_f32, out, scores, v, ld, n, hd);
        return;
    }
    /* llama.cpp's F16 cache: q and the weights are converted to F16 for the F16 products */
    float qh[LFM_MAX_HEAD_DIM];
    round_to_f16(qh, q, hd);
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *kj = (const uint16_t *)k + j * ld;
        scores[j] = (one_token || hd % 8 ? dot_steps32(ld8_f16, ld1_f16, qh, kj, hd) : dot_steps8(ld8_f16, qh, kj, hd)) * scale;
    }
    softmax(scores, n);
    round_to_f16(scores, scores, n);
    if (one_token) pv_one(ld8_f16, ld1_f16, out, scores, v, ld, n, hd);
    else pv_batch(ld8_f16, ld1_f16, out, scores, v, ld, n, hd);
}

static void f16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld8_f16(src, i));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static void bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, ld8_bf16(src, i));
    for (; i < n; i++) dst[i] = lfm_bf16_to_f32(src[i]);
}

static float dot_f32(const float *x, const float *y, int64_t n) { return dot_steps32(ld8_f32, ld1_f32, x, y, n); }

const lfm_kernels lfm_kernels_avx2 = LFM_KERNELS_TABLE("avx2");

#endif /* x86 */
