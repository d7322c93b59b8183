/* kernels_oracle.c — the AVX2 kernels' float order in scalar C (tests only: _core._kernel("avx2_order", ...)).
 *
 * x86/float_avx2.c reproduces llama.cpp's CPU rounding (its exp polynomial, its softmax sums, its
 * attention product orders), so its contract is identical bits, not closeness to ref.c. This table
 * spells each of those orders out one scalar operation per SIMD lane operation: fmaf where the
 * kernel fuses, plain float operations where it does not, and its horizontal-sum trees. Kernels whose
 * AVX2 order is ref.c's (rmsnorm, rope, conv, mul, add, the conversions) forward to ref.c.
 *
 *   hsum8(a) = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))   (hsum, and the 8-accumulator trees) */
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

/* ---- helpers ---- */

static float hsum8(const float a[8]) { return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])); }

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float w_f32(const void *w, int64_t k) { return ((const float *)w)[k]; }
static float w_f16(const void *w, int64_t k) { return lfm_f16_to_f32(((const uint16_t *)w)[k]); }
static float w_bf16(const void *w, int64_t k) { return lfm_bf16_to_f32(((const uint16_t *)w)[k]); }

typedef float (*ld_fn)(const void *, int64_t);

/* ---- matmul ---- */

/* tile_4x1/4x2/4x3: one 8-lane accumulator per (row, token), fma per step of 8, hsum, then the
 * tail k >= K/8*8 as plain multiply and add */
static float dot_tile4(ld_fn ld, const void *w, const float *x, int64_t K) {
    float a[8] = {0};
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) a[l] = fmaf(ld(w, k + l), x[k + l], a[l]);
    float s = hsum8(a);
    for (; k < K; k++) s = s + ld(w, k) * x[k];
    return s;
}

/* tile_1x1 (the rows after the last whole group of 4): two accumulators over steps of 16, one more
 * step of 8 into the first, their lane sums, hsum, the tail */
static float dot_tile1(ld_fn ld, const void *w, const float *x, int64_t K) {
    float a0[8] = {0}, a1[8] = {0}, a[8];
    int64_t k = 0;
    for (; k + 16 <= K; k += 16)
        for (int l = 0; l < 8; l++) {
            a0[l] = fmaf(ld(w, k + l), x[k + l], a0[l]);
            a1[l] = fmaf(ld(w, k + 8 + l), x[k + 8 + l], a1[l]);
        }
    for (; k + 8 <= K; k += 8)
        for (int l = 0; l < 8; l++) a0[l] = fmaf(ld(w, k + l), x[k + l], a0[l]);
    for (int l = 0; l < 8; l++) a[l] = a0[l] + a1[l];
    float s = hsum8(a);
    for (; k < K; k++) s = s + ld(w, k) * x[k];
    return s;
}

static void gemm(ld_fn ld, size_t esz, const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y,
                 int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t r4 = r0 + (r1 - r0) / 4 * 4; /* rows in whole groups of 4 from r0 */
    for (int64_t r = r0; r < r1; r++) {
        const void *w = (const char *)W + (size_t)r * (size_t)K * esz;
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = (r < r4 ? dot_tile4 : dot_tile1)(ld, w, X + t * ldx, K);
    }
}

static void gemm_f32(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    gemm(w_f32, 4, W, K, X, ldx, T, Y, ldy, r0, r1);
}
static void gemm_f16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    gemm(w_f16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}
static void gemm_bf16(const void *W, int64_t K, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    gemm(w_bf16, 2, W, K, X, ldx, T, Y, ldy, r0, r1);
}

/* ---- exp (exp8, one lane) ---- */

static float exp1(float x) {
    const float shift = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, shift);
    const float n = z - shift;
    const float r = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f2u(z) << 23;
    const float two_n = u2f(e + f2u(1.0f));
    const float r2 = r * r;
    const float hi = fmaf(fmaf(0x1.0e4020p-7f, r, 0x1.573e2ep-5f), r2, fmaf(0x1.555e66p-3f, r, 0x1.fffdb6p-2f));
    const float poly = fmaf(hi, r2, 0x1.ffffecp-1f * r); /* e^r - 1 */
    const float abs_n = fabsf(n);
    if (!(abs_n > 126.0f)) return fmaf(poly, two_n, two_n);
    const uint32_t bias = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = u2f(bias + 0x7f000000u), s2 = u2f(e - bias);
    if (abs_n > 192.0f) return s1 * s1;
    return fmaf(s2, poly, s2) * s1;
}

/* ---- softmax, SiLU ---- */

/* chunks of 8 exps from index 0, each chunk's hsum8 added in double; the last chunk zero-padded */
static void softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int64_t i = 0; i < n; i += 8) {
        float e[8];
        for (int l = 0; l < 8; l++) e[l] = i + l < n ? exp1(x[i + l] - mx) : 0.0f;
        for (int l = 0; l < 8 && i + l < n; l++) x[i + l] = e[l];
        sum += hsum8(e);
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* 8 at a time with exp1, libm's expf for the last n % 8 */
static void silu_mul(float *out, const float *gate, const float *up, int64_t n) {
    const int64_t n8 = n / 8 * 8;
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        const float silu = g / (1.0f + (i < n8 ? exp1(0.0f - g) : expf(-g)));
        out[i] = silu * up[i];
    }
}

/* ---- attention ---- */

/* dot_steps32: four 8-lane accumulators over steps of 32, (acc0 + acc2) + (acc1 + acc3) lane-wise,
 * the two 128-bit halves added, two horizontal adds, then the tail with fmaf */
static float dot_steps32(ld_fn ld, const float *x, const void *y, int64_t n) {
    float acc[4][8] = {{0}};
    const int64_t n32 = n / 32 * 32;
    for (int64_t i = 0; i < n32; i += 32)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++) acc[j][l] = fmaf(x[i + 8 * j + l], ld(y, i + 8 * j + l), acc[j][l]);
    float a[8], h[4];
    for (int l = 0; l < 8; l++) a[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    for (int m = 0; m < 4; m++) h[m] = a[m] + a[m + 4];
    float s = (h[0] + h[1]) + (h[2] + h[3]);
    for (int64_t i = n32; i < n; i++) s = fmaf(x[i], ld(y, i), s);
    return s;
}

/* dot_steps8 (n % 8 == 0): one 8-lane accumulator, hsum */
static float dot_steps8(ld_fn ld, const float *x, const void *y, int64_t n) {
    float a[8] = {0};
    for (int64_t i = 0; i < n; i += 8)
        for (int l = 0; l < 8; l++) a[l] = fmaf(x[i + l], ld(y, i + l), a[l]);
    return hsum8(a);
}

/* p . V, column by column: a batch sends position j to accumulator j % 8 (hsum8's tree); a lone
 * token to accumulator j % 32, folded (a[l] + a[16+l]) + (a[8+l] + a[24+l]) to 8, then
 * ((b0 + b4) + (b1 + b5)) + ((b2 + b6) + (b3 + b7)) */
static void pv(ld_fn ld, float *out, const float *p, const void *v, int64_t ld_v, int64_t n, int64_t hd, int one) {
    for (int64_t c = 0; c < hd; c++) {
        float a[32] = {0}, b[8];
        const int mask = one ? 31 : 7;
        for (int64_t j = 0; j < n; j++) a[j & mask] = fmaf(p[j], ld(v, j * ld_v + c), a[j & mask]);
        if (!one) {
            out[c] = hsum8(a);
            continue;
        }
        for (int l = 0; l < 8; l++) b[l] = (a[l] + a[16 + l]) + (a[8 + l] + a[24 + l]);
        out[c] = ((b[0] + b[4]) + (b[1] + b[5])) + ((b[2] + b[6]) + (b[3] + b[7]));
    }
}

static float round_f16(float x) { return lfm_half_to_float(lfm_float_to_half(x)); }

static void attn(float *out, const float *q, const void *k, const void *v, int64_t ld, int64_t n, int64_t hd, float scale,
                 float *scores, int one_token, int f16) {
    if (!f16) {
        for (int64_t j = 0; j < n; j++) scores[j] = dot_steps32(w_f32, q, (const float *)k + j * ld, hd) * scale;
        softmax(scores, n);
        pv(w_f32, out, scores, v, ld, n, hd, one_token);
        return;
    }
    float qh[LFM_MAX_HEAD_DIM];
    for (int64_t i = 0; i < hd; i++) qh[i] = round_f16(q[i]);
    for (int64_t j = 0; j < n; j++) {
        const uint16_t *kj = (const uint16_t *)k + j * ld;
        scores[j] = (one_token || hd % 8 ? dot_steps32(w_f16, qh, kj, hd) : dot_steps8(w_f16, qh, kj, hd)) * scale;
    }
    softmax(scores, n);
    for (int64_t j = 0; j < n; j++) scores[j] = round_f16(scores[j]);
    pv(w_f16, out, scores, v, ld, n, hd, one_token);
}

/* ---- the AVX2 orders that are ref.c's ---- */

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) { lfm_kernels_ref.rmsnorm(out, x, w, n, eps); }
static void rope(float *x, const float *cs, int64_t hd) { lfm_kernels_ref.rope(x, cs, hd); }
static void mul(float *out, const float *a, const float *b, int64_t n) { lfm_kernels_ref.mul(out, a, b, n); }
static void add(float *y, const float *x, int64_t n) { lfm_kernels_ref.add(y, x, n); }
static void conv(float *out, int64_t ld_out, const float *v, int64_t ld_v, int64_t T, int64_t H, const float *w, int64_t K,
                 float *state) {
    lfm_kernels_ref.conv(out, ld_out, v, ld_v, T, H, w, K, state);
}
static void f16_to_f32(float *dst, const uint16_t *src, int64_t n) { lfm_kernels_ref.f16_to_f32(dst, src, n); }
static void bf16_to_f32(float *dst, const uint16_t *src, int64_t n) { lfm_kernels_ref.bf16_to_f32(dst, src, n); }

static float dot_f32(const float *x, const float *y, int64_t n) { return dot_steps32(w_f32, x, y, n); }

const lfm_kernels lfm_kernels_avx2_order = LFM_KERNELS_TABLE("avx2_order");
