/* float_neon.c — arm64 float kernels (plain ARMv8.0 ASIMD; compiled with -march=armv8-a, chosen by
 * lfm_kernels_get on every arm64 CPU). Same contracts as ref.c, and the same bits as
 * x86/float_avx2.c: an arm64 machine must give exactly the x86 logits, so every kernel here repeats
 * the AVX2 kernel's float operations in the AVX2 kernel's order (kernels_oracle.c spells that order
 * out; tests/engine/test_kernels.py checks it bit for bit).
 *
 * An AVX2 vector of 8 floats is emulated by two float32x4_t (lanes 0-3 and 4-7): lane l of an
 * accumulator sums the same elements in the same order as AVX2 lane l, and the horizontal sums
 * follow the AVX2 trees. vfmaq_f32 is a fused multiply-add like _mm256_fmadd_ps; the file is
 * compiled with -ffp-contract=off, so every other multiply and add is rounded on its own, as in the
 * AVX2 source.
 *
 * The matmul keeps the AVX2 blocking: a chunk of tokens small enough to stay in L2 is multiplied by
 * 4 weight rows x 3 tokens per inner loop (24 accumulator registers of the 32), so every weight vector
 * loaded (and converted from F16/BF16) is used three times and every activation vector four times. */
#if defined(__aarch64__)
#include "kernels/kernels.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* one AVX2 register: lanes 0-3 in lo, 4-7 in hi */
typedef struct {
    float32x4_t lo, hi;
} f32x8;

static ALWAYS_INLINE f32x8 f8_zero(void) { return (f32x8){vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)}; }
static ALWAYS_INLINE f32x8 f8_load(const float *p) { return (f32x8){vld1q_f32(p), vld1q_f32(p + 4)}; }
static ALWAYS_INLINE void f8_store(float *p, f32x8 v) { vst1q_f32(p, v.lo), vst1q_f32(p + 4, v.hi); }
static ALWAYS_INLINE f32x8 f8_add(f32x8 a, f32x8 b) { return (f32x8){vaddq_f32(a.lo, b.lo), vaddq_f32(a.hi, b.hi)}; }
/* acc + a*b, one rounding (_mm256_fmadd_ps(a, b, acc)) */
static ALWAYS_INLINE f32x8 f8_fma(f32x8 acc, f32x8 a, f32x8 b) {
    return (f32x8){vfmaq_f32(acc.lo, a.lo, b.lo), vfmaq_f32(acc.hi, a.hi, b.hi)};
}
/* acc + s*b, one rounding (_mm256_fmadd_ps(_mm256_set1_ps(s), b, acc)) */
static ALWAYS_INLINE f32x8 f8_fma_n(f32x8 acc, f32x8 b, float s) {
    return (f32x8){vfmaq_n_f32(acc.lo, b.lo, s), vfmaq_n_f32(acc.hi, b.hi, s)};
}

/* AVX2's hsum: the halves added (lanes l and l+4), then movehl (pairs 0+2, 1+3), then movehdup:
 * ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
static ALWAYS_INLINE float hsum(f32x8 v) {
    const float32x4_t s = vaddq_f32(v.lo, v.hi);
    const float32x2_t t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

/* ---- weight loaders: 8 consecutive weights of row w as floats, and one as a scalar ---- */

static ALWAYS_INLINE float32x4_t bf16x4_to_f32(uint16x4_t h) { return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); }

static ALWAYS_INLINE float32x4_t ld4_f32(const void *w, int64_t k) { return vld1q_f32((const float *)w + k); }
static ALWAYS_INLINE float32x4_t ld4_f16(const void *w, int64_t k) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)w + k)));
}
static ALWAYS_INLINE float32x4_t ld4_bf16(const void *w, int64_t k) { return bf16x4_to_f32(vld1_u16((const uint16_t *)w + k)); }
static ALWAYS_INLINE f32x8 ld8_f32(const void *w, int64_t k) { return f8_load((const float *)w + k); }
static ALWAYS_INLINE f32x8 ld8_f16(const void *w, int64_t k) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16((const uint16_t *)w + k));
    return (f32x8){vcvt_f32_f16(vget_low_f16(h)), vcvt_high_f32_f16(h)};
}
static ALWAYS_INLINE f32x8 ld8_bf16(const void *w, int64_t k) {
    const uint16x8_t h = vld1q_u16((const uint16_t *)w + k);
    return (f32x8){bf16x4_to_f32(vget_low_u16(h)), bf16x4_to_f32(vget_high_u16(h))};
}
/* the hardware conversion, as _cvtsh_ss (exact for every non-NaN half) */
static ALWAYS_INLINE float half_to_float(uint16_t bits) {
    __fp16 h;
    memcpy(&h, &bits, 2);
    return (float)h;
}
static ALWAYS_INLINE float ld1_f32(const void *w, int64_t k) { return ((const float *)w)[k]; }
static ALWAYS_INLINE float ld1_f16(const void *w, int64_t k) { return half_to_float(((const uint16_t *)w)[k]); }
static ALWAYS_INLINE float ld1_bf16(const void *w, int64_t k) { return lfm_bf16_to_f32(((const uint16_t *)w)[k]); }

typedef f32x8 (*ld8_fn)(const void *, int64_t);
typedef float32x4_t (*ld4_fn)(const void *, int64_t);
typedef float (*ld1_fn)(const void *, int64_t);

/* 4 rows x 3 tokens. Lanes 0-3 and lanes 4-7 of an AVX2 accumulator are independent sums, so each
 * step of 8 runs the low halves of all twelve accumulators, then the high halves: 24 accumulators +
 * 3 activations + 4 weights stay within the 32 registers (loading both halves at once spills). */
static ALWAYS_INLINE void tile_4x3(ld4_fn ld4, ld1_fn ld1, const void *w0, const void *w1, const void *w2, const void *w3,
                                   const float *x0, const float *x1, const float *x2, int64_t K, float *y0, float *y1,
                                   float *y2) {
    f32x8 a00 = f8_zero(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    f32x8 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    int64_t k = 0;
#define HALF(h, o)                                                                                                 \
    do {                                                                                                           \
        const float32x4_t xa = vld1q_f32(x0 + k + o), xb = vld1q_f32(x1 + k + o), xc = vld1q_f32(x2 + k + o);     \
        float32x4_t w;                                                                                             \
        w = ld4(w0, k + o), a00.h = vfmaq_f32(a00.h, w, xa), a01.h = vfmaq_f32(a01.h, w, xb), a02.h = vfmaq_f32(a02.h, w, xc); \
        w = ld4(w1, k + o), a10.h = vfmaq_f32(a10.h, w, xa), a11.h = vfmaq_f32(a11.h, w, xb), a12.h = vfmaq_f32(a12.h, w, xc); \
        w = ld4(w2, k + o), a20.h = vfmaq_f32(a20.h, w, xa), a21.h = vfmaq_f32(a21.h, w, xb), a22.h = vfmaq_f32(a22.h, w, xc); \
        w = ld4(w3, k + o), a30.h = vfmaq_f32(a30.h, w, xa), a31.h = vfmaq_f32(a31.h, w, xb), a32.h = vfmaq_f32(a32.h, w, xc); \
    } while (0)
    for (; k + 8 <= K; k += 8) {
        HALF(lo, 0);
        /* keeps the compiler from hoisting the high half's loads above the low half's FMAs */
        __asm__ volatile("" ::: "memory");
        HALF(hi, 4);
    }
#undef HALF
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
    f32x8 a00 = f8_zero(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const f32x8 xa = f8_load(x0 + k), xb = f8_load(x1 + k);
        f32x8 w;
        w = ld8(w0, k), a00 = f8_fma(a00, w, xa), a01 = f8_fma(a01, w, xb);
        w = ld8(w1, k), a10 = f8_fma(a10, w, xa), a11 = f8_fma(a11, w, xb);
        w = ld8(w2, k), a20 = f8_fma(a20, w, xa), a21 = f8_fma(a21, w, xb);
        w = ld8(w3, k), a30 = f8_fma(a30, w, xa), a31 = f8_fma(a31, w, xb);
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
    f32x8 a0 = f8_zero(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        const f32x8 xa = f8_load(x0 + k);
        a0 = f8_fma(a0, ld8(w0, k), xa);
        a1 = f8_fma(a1, ld8(w1, k), xa);
        a2 = f8_fma(a2, ld8(w2, k), xa);
        a3 = f8_fma(a3, ld8(w3, k), xa);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; k < K; k++) {
        s0 += ld1(w0, k) * x0[k], s1 += ld1(w1, k) * x0[k];
        s2 += ld1(w2, k) * x0[k], s3 += ld1(w3, k) * x0[k];
    }
    y0[0] = s0, y0[1] = s1, y0[2] = s2, y0[3] = s3;
}

/* 1 row x 1 token: two accumulators over steps of 16, as the AVX2 tile */
static ALWAYS_INLINE float tile_1x1(ld8_fn ld8, ld1_fn ld1, const void *w0, const float *x0, int64_t K) {
    f32x8 a0 = f8_zero(), a1 = a0;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        a0 = f8_fma(a0, ld8(w0, k), f8_load(x0 + k));
        a1 = f8_fma(a1, ld8(w0, k + 8), f8_load(x0 + k + 8));
    }
    for (; k + 8 <= K; k += 8) a0 = f8_fma(a0, ld8(w0, k), f8_load(x0 + k));
    float s = hsum(f8_add(a0, a1));
    for (; k < K; k++) s += ld1(w0, k) * x0[k];
    return s;
}

static ALWAYS_INLINE void gemm_generic(ld4_fn ld4, ld8_fn ld8, ld1_fn ld1, size_t esz, const void *W, int64_t K, const float *X, int64_t ldx,
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
                tile_4x3(ld4, ld1, w0, w1, w2, w3, X + t * ldx, X + (t + 1) * ldx, X + (t + 2) * ldx, K, Y + t * ldy + r,
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
    gemm_generic(ld4_f32, ld8_f32, ld1_f32, 4, W, K, X, ldx, T, Y, ldy, r0, r1);
}
static void gemm_f16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    gemm_generic(ld4_f16, ld8_f16, ld1_f16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}
static void gemm_bf16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    gemm_generic(ld4_bf16, ld8_bf16, ld1_bf16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}

/* ---- element-wise ---- */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    const float scale = lfm_rms_scale(x, n, eps);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vmulq_f32(vld1q_f32(w + i), vmulq_n_f32(vld1q_f32(x + i), scale)));
    for (; i < n; i++) out[i] = w[i] * (x[i] * scale);
}

static void rope(float *x, const float *cs, int64_t hd) {
    int64_t half = hd / 2, i = 0;
    const float *cos_ = cs, *sin_ = cs + half;
    for (; i + 4 <= half; i += 4) {
        const float32x4_t a = vld1q_f32(x + i), b = vld1q_f32(x + half + i);
        const float32x4_t c = vld1q_f32(cos_ + i), s = vld1q_f32(sin_ + i);
        /* a*c - b*s with one rounding of the product a*c (_mm256_fmsub_ps) */
        vst1q_f32(x + i, vfmaq_f32(vnegq_f32(vmulq_f32(b, s)), a, c));
        vst1q_f32(x + half + i, vfmaq_f32(vmulq_f32(b, c), a, s));
    }
    for (; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = fmaf(a, cos_[i], -(b * sin_[i]));
        x[i + half] = fmaf(a, sin_[i], b * cos_[i]);
    }
}

/* ---- exp for softmax and SiLU ----
 *
 * float_avx2.c's exp8, four lanes at a time (its lanes are independent: a lane takes the two-factor
 * path only when its own |n| > 126, and the fast path's result equals the blend's "normal" value).
 * e^x = 2^n (1 + p(r)): n = round(x log2 e) by the 1.5*2^23 shift, r = x - n ln2 with ln2 split in a
 * high and a low part, p the degree-5 polynomial llama.cpp evaluates. The rounding steps must stay as
 * they are. The comparisons are ordered ones (false for NaN) like _CMP_GT_OQ / _CMP_LE_OQ, and the
 * blends select whole lanes by all-ones masks, so NaN and infinities take the AVX2 branch. */
static ALWAYS_INLINE float32x4_t exp4(float32x4_t x) {
    const float32x4_t shift = vdupq_n_f32(0x1.8p23f);
    const float32x4_t z = vfmaq_f32(shift, x, vdupq_n_f32(0x1.715476p+0f));
    const float32x4_t n = vsubq_f32(z, shift);
    /* _mm256_fnmadd_ps(n, c, x) = x - n*c with one rounding = vfmsq_f32(x, n, c) */
    const float32x4_t r = vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
    const uint32x4_t e = vshlq_n_u32(vreinterpretq_u32_f32(z), 23);
    const float32x4_t two_n = vreinterpretq_f32_u32(vaddq_u32(e, vreinterpretq_u32_f32(vdupq_n_f32(1.0f))));
    const float32x4_t r2 = vmulq_f32(r, r);
    const float32x4_t hi = vfmaq_f32(vfmaq_f32(vdupq_n_f32(0x1.fffdb6p-2f), vdupq_n_f32(0x1.555e66p-3f), r), r2,
                                     vfmaq_f32(vdupq_n_f32(0x1.573e2ep-5f), vdupq_n_f32(0x1.0e4020p-7f), r));
    const float32x4_t poly = vfmaq_f32(vmulq_f32(vdupq_n_f32(0x1.ffffecp-1f), r), hi, r2); /* e^r - 1 */
    const float32x4_t abs_n = vabsq_f32(n);
    const uint32x4_t big = vcgtq_f32(abs_n, vdupq_n_f32(126.0f));
    if (!vmaxvq_u32(big)) return vfmaq_f32(two_n, poly, two_n);
    /* |n| > 126: 2^n is not a normal float; scale by two factors. |n| > 192: overflow to inf or
     * underflow to 0. */
    const uint32x4_t bias = vandq_u32(vclezq_f32(n), vdupq_n_u32(0x82000000u));
    const float32x4_t s1 = vreinterpretq_f32_u32(vaddq_u32(bias, vdupq_n_u32(0x7f000000u)));
    const float32x4_t s2 = vreinterpretq_f32_u32(vsubq_u32(e, bias));
    const uint32x4_t huge = vcgtq_f32(abs_n, vdupq_n_f32(192.0f));
    const float32x4_t scaled = vmulq_f32(vfmaq_f32(s2, s2, poly), s1);
    const float32x4_t normal = vfmaq_f32(two_n, two_n, poly);
    return vbslq_f32(huge, vmulq_f32(s1, s1), vbslq_f32(big, scaled, normal));
}

static ALWAYS_INLINE f32x8 exp8(f32x8 x) { return (f32x8){exp4(x.lo), exp4(x.hi)}; }

/* Sums chunks of 8 exps (each reduced in float by AVX2's hsum, the chunks in double) from index 0,
 * as llama.cpp does over its padded KV rows; the padding lanes here are exact zeros. */
static void softmax(float *x, int64_t n) {
    /* scalar, as in float_avx2.c: a NaN never wins (fmax / vmaxq would propagate it), and the first
     * of equal values (+0 before -0) stays */
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    const float32x4_t vmx = vdupq_n_f32(mx);
    double sum = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f32x8 e = exp8((f32x8){vsubq_f32(vld1q_f32(x + i), vmx), vsubq_f32(vld1q_f32(x + i + 4), vmx)});
        f8_store(x + i, e);
        sum += hsum(e);
    }
    if (i < n) {
        float tail[8] = {0};
        for (int64_t j = i; j < n; j++) tail[j - i] = x[j] - mx;
        f8_store(tail, exp8(f8_load(tail)));
        /* the padding lanes' exp(0) = 1 replaced by +0 (AVX2: an and with the live-lane mask) */
        for (int64_t j = n - i; j < 8; j++) tail[j] = 0.0f;
        for (int64_t j = i; j < n; j++) x[j] = tail[j - i];
        sum += hsum(f8_load(tail));
    }
    const float inv = (float)(1.0 / sum);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
    for (; i < n; i++) x[i] *= inv;
}

/* silu(g) * up = g / (1 + e^-g) * up, 8 at a time with exp8 and libm's expf for the tail, like
 * float_avx2.c (callers pass one row at a time so the tail falls where llama.cpp's does). */
static void silu_mul(float *out, const float *gate, const float *up, int64_t n) {
    const float32x4_t zero = vdupq_n_f32(0.0f), one = vdupq_n_f32(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int h = 0; h < 8; h += 4) {
            const float32x4_t g = vld1q_f32(gate + i + h);
            const float32x4_t e = exp4(vsubq_f32(zero, g)); /* 0 - g, not -g: +0 for g = 0, as AVX2 */
            const float32x4_t silu = vdivq_f32(g, vaddq_f32(one, e));
            vst1q_f32(out + i + h, vmulq_f32(silu, vld1q_f32(up + i + h)));
        }
    for (; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void mul(float *out, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(out + i, vmulq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
    for (; i < n; i++) out[i] = a[i] * b[i];
}

static void add(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
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
        f32x8 wk[CONV_MAX_K];
        for (int64_t k = 0; k < K; k++) {
            float tap[8];
            for (int l = 0; l < 8; l++) tap[l] = w[(c + l) * K + k];
            wk[k] = f8_load(tap);
        }
        for (int64_t t = 0; t < T; t++) {
            /* same order and rounding as ref: s = fma(w_k, in_k, s) for k = 0.. */
            f32x8 s = f8_zero();
            for (int64_t k = 0; k < K; k++) s = f8_fma(s, wk[k], f8_load(INPUT_PTR(t + k) + c));
            f8_store(out + t * ld_out + c, s);
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

/* The attention products in float_avx2.c's (llama.cpp's) orders. x is a float vector; y is read
 * through ld8/ld1 (F32 or F16 cache). */

/* four 8-lane accumulators over steps of 32, (acc0 + acc2) + (acc1 + acc3), the halves added, then
 * two horizontal pair adds (_mm_hadd_ps twice): (h0 + h1) + (h2 + h3) */
static ALWAYS_INLINE float dot_steps32(ld8_fn ld8, ld1_fn ld1, const float *x, const void *y, int64_t n) {
    f32x8 acc0 = f8_zero(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    const int64_t n32 = n & ~(int64_t)31;
    for (int64_t i = 0; i < n32; i += 32) {
        acc0 = f8_fma(acc0, f8_load(x + i), ld8(y, i));
        acc1 = f8_fma(acc1, f8_load(x + i + 8), ld8(y, i + 8));
        acc2 = f8_fma(acc2, f8_load(x + i + 16), ld8(y, i + 16));
        acc3 = f8_fma(acc3, f8_load(x + i + 24), ld8(y, i + 24));
    }
    const f32x8 a = f8_add(f8_add(acc0, acc2), f8_add(acc1, acc3));
    const float32x4_t h = vaddq_f32(a.lo, a.hi);
    const float32x4_t p = vpaddq_f32(h, h); /* h0 + h1, h2 + h3 */
    float s = vgetq_lane_f32(p, 0) + vgetq_lane_f32(p, 1);
    for (int64_t i = n32; i < n; i++) s = fmaf(x[i], ld1(y, i), s);
    return s;
}

/* one 8-lane accumulator over steps of 8, one horizontal sum: llama.cpp's batched F16 product */
static ALWAYS_INLINE float dot_steps8(ld8_fn ld8, const float *x, const void *y, int64_t n) {
    f32x8 acc = f8_zero();
    for (int64_t i = 0; i < n; i += 8) acc = f8_fma(acc, f8_load(x + i), ld8(y, i));
    return hsum(acc);
}

/* p . V for a batch of tokens: position j goes to accumulator j % 8 (positions in aligned groups
 * of 8 from 0), the 8 accumulators then summed as one 8-lane horizontal sum. */
static ALWAYS_INLINE void pv_batch(ld8_fn ld8, ld1_fn ld1, float *out, const float *p, const void *v, int64_t ld, int64_t n,
                                   int64_t hd) {
    int64_t i = 0;
    for (; i + 8 <= hd; i += 8) {
        f32x8 a[8];
        for (int l = 0; l < 8; l++) a[l] = f8_zero();
        int64_t j = 0;
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++) a[l] = f8_fma_n(a[l], ld8(v, (j + l) * ld + i), p[j + l]);
        for (int l = 0; j + l < n; l++) a[l] = f8_fma_n(a[l], ld8(v, (j + l) * ld + i), p[j + l]);
        const f32x8 even = f8_add(f8_add(a[0], a[4]), f8_add(a[2], a[6]));
        const f32x8 odd = f8_add(f8_add(a[1], a[5]), f8_add(a[3], a[7]));
        f8_store(out + i, f8_add(even, odd));
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
        f32x8 a[32];
        for (int l = 0; l < 32; l++) a[l] = f8_zero();
        for (int64_t j = 0; j < n; j++) a[j & 31] = f8_fma_n(a[j & 31], ld8(v, j * ld + i), p[j]);
        f32x8 b[8];
        for (int l = 0; l < 8; l++) b[l] = f8_add(f8_add(a[l], a[16 + l]), f8_add(a[8 + l], a[24 + l]));
        const f32x8 lo = f8_add(f8_add(b[0], b[4]), f8_add(b[1], b[5]));
        const f32x8 hi = f8_add(f8_add(b[2], b[6]), f8_add(b[3], b[7]));
        f8_store(out + i, f8_add(lo, hi));
    }
    for (; i < hd; i++) {
        float a[32] = {0}, b[8];
        for (int64_t j = 0; j < n; j++) a[j & 31] = fmaf(p[j], ld1(v, j * ld + i), a[j & 31]);
        for (int l = 0; l < 8; l++) b[l] = (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]);
        out[i] = ((b[0] + b[4]) + (b[1] + b[5])) + ((b[2] + b[6]) + (b[3] + b[7]));
    }
}

/* float -> nearest-even F16 -> float, 4 at a time (FPCR's default rounding, as _MM_FROUND_TO_NEAREST_INT) */
static void round_to_f16(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(src + i))));
    for (; i < n; i++) dst[i] = (float)(__fp16)src[i];
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
    for (; i + 8 <= n; i += 8) f8_store(dst + i, ld8_f16(src, i));
    for (; i < n; i++) dst[i] = half_to_float(src[i]);
}

static void bf16_to_f32(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) f8_store(dst + i, ld8_bf16(src, i));
    for (; i < n; i++) dst[i] = lfm_bf16_to_f32(src[i]);
}

static float dot_f32(const float *x, const float *y, int64_t n) { return dot_steps32(ld8_f32, ld1_f32, x, y, n); }

const lfm_kernels lfm_kernels_neon = LFM_KERNELS_TABLE("neon");

#endif /* __aarch64__ */
