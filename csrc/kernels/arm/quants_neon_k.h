/* quants_neon_k.h — arm64 kernels of the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K activations, in
 * the row layout and in LFM_LAYOUT_X8. Included once by each of quants_neon.c,
 * quants_neon_dotprod.c and quants_neon_i8mm.c; everything here is static and prefixed kq_.
 *
 * The floats are those of csrc/kernels/x86/quants_avx2.c bit for bit (its scalar statement is
 * quants_oracle.c): the integer work may be grouped in any way (it is exact), but what ends up in
 * each of the 8 int32 lanes of a row before conversion, and every float operation after, follow
 * the AVX2 kernels. An AVX2 8-float vector is two float32x4 here (lanes 0-3, 4-7).
 *
 * Integer primitive per level (chosen by the -march the including file is compiled with):
 * - plain NEON: vmull_s8 products, pairwise widened (vpaddlq_s16) and pairwise added (vpaddq_s32)
 *   so int32 lane j holds bytes 4j..4j+3, the grouping of AVX2's maddubs + madd;
 * - dotprod: SDOT (vdotq_s32), whose lane j is bytes 4j..4j+3 as well;
 * - i8mm: where the float order needs only a whole block's (or 64-element chunk's) exact integer
 *   per row and token (Q4_K always; Q5_K / Q6_K in their tiled order for 8+ tokens), SMMLA
 *   (vmmlaq_s32) computes 2 rows x 2 tokens of 8-byte dots per instruction. The lane-exact orders
 *   (Q5_K / Q6_K below 8 tokens) stay on SDOT.
 *
 * Weights are unpacked to unsigned bytes (Q4_K 0..15, Q5_K 0..31, Q6_K 0..63, all valid int8) and
 * the offsets / minimums taken with the activation block sums, as in the AVX2 kernels. */
#if defined(__aarch64__)

#include <stdint.h>
#include <string.h>

#define KQ_INLINE static inline __attribute__((always_inline))

#if defined(__ARM_FEATURE_MATMUL_INT8)
#define KQ_SMMLA 1
#else
#define KQ_SMMLA 0
#endif

/* ---- helpers ---- */

/* 8 halves -> two float32x4 (exact) */
KQ_INLINE void kq_h2f8(const lfm_half *p, float32x4_t out[2]) {
    uint16x8_t v = vld1q_u16(p);
    out[0] = vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(v)));
    out[1] = vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(v)));
}

/* The 8 scales and 8 mins of a Q4_K/Q5_K block: sm[0..7] scales, sm[8..15] mins (6 bits each). */
KQ_INLINE void kq_k4_scales(const uint8_t *s, uint8_t sm[16]) {
    uint32_t a[3];
    memcpy(a, s, 12);
    uint32_t v[4];
    v[0] = a[0] & 0x3f3f3f3fu;
    v[1] = (a[2] & 0x0f0f0f0fu) | ((a[0] >> 6) & 0x03030303u) << 4;
    v[2] = a[1] & 0x3f3f3f3fu;
    v[3] = ((a[2] >> 4) & 0x0f0f0f0fu) | ((a[1] >> 6) & 0x03030303u) << 4;
    memcpy(sm, v, 16);
}

/* sum_j mins[j] * (bsums[2j] + bsums[2j+1]) of one block: the exact integer min term */
KQ_INLINE int32_t kq_mins_dot(const uint8_t sm[16], const int16_t *bsums) {
    int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm + 8)));
    int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    /* bsum pairs summed first: 2*|bsum| <= 2*16*127 fits int16 */
    int16x8_t pairs = vpaddq_s16(b0, b1);
    int32x4_t p = vmull_s16(vget_low_s16(pairs), vget_low_s16(m));
    p = vmlal_high_s16(p, pairs, m);
    return vaddvq_s32(p);
}

#define KQ_MAXR 4
#define KQ_MAXT 4

/* ---- Q4_K / Q5_K in the row layout ----
 *
 * Modes (as tile_q45_K in quants_avx2.c): K4_BLOCK, Q4_K one block at a time (exact dot and min
 * terms per block, one fma each into two floats, subtracted at the end); K4_GEMM4, the same per
 * 64-element chunk (llama.cpp's 4-token GEMM); K5, Q5_K's 8 lanes per row (fma per lane and block,
 * the mins as one float added after hsum8); K5_TILED, Q5_K for 8+ tokens (per block
 * fma(-dmin, mins, d*dot), then one fma with y.d). */
enum { KQ_K4_BLOCK = 0, KQ_K5 = 1, KQ_K4_GEMM4 = 2, KQ_K5_TILED = 3 };

/* 64 weights of chunk c as 4 x 16 bytes: q[0], q[1] sub-block 2c (elements 0..15, 16..31 of the
 * chunk), q[2], q[3] sub-block 2c+1. hb: the Q5_K high-bit bytes, shifted right 2c already. */
KQ_INLINE void kq_q45_chunk(const uint8_t *wq, int c, const int five, const uint8x16_t hb[2], int8x16_t q[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    uint8x16_t a = vld1q_u8(wq + 32 * c), b = vld1q_u8(wq + 32 * c + 16);
    uint8x16_t l0 = vandq_u8(a, m4), l1 = vandq_u8(b, m4), h0 = vshrq_n_u8(a, 4), h1 = vshrq_n_u8(b, 4);
    if (five) {
        const uint8x16_t one = vdupq_n_u8(1), two = vdupq_n_u8(2);
        l0 = vorrq_u8(l0, vshlq_n_u8(vandq_u8(hb[0], one), 4));
        l1 = vorrq_u8(l1, vshlq_n_u8(vandq_u8(hb[1], one), 4));
        h0 = vorrq_u8(h0, vshlq_n_u8(vandq_u8(hb[0], two), 3));
        h1 = vorrq_u8(h1, vshlq_n_u8(vandq_u8(hb[1], two), 3));
    }
    q[0] = vreinterpretq_s8_u8(l0), q[1] = vreinterpretq_s8_u8(l1);
    q[2] = vreinterpretq_s8_u8(h0), q[3] = vreinterpretq_s8_u8(h1);
}

KQ_INLINE void kq_q45_row(const uint8_t *w, size_t bw, int r, int64_t ib, const int five, const uint8_t **wq,
                          const uint8_t **wqh, const uint8_t **wsc, lfm_half *wd, lfm_half *wdmin) {
    if (five) {
        const lfm_block_q5_K *wb = (const lfm_block_q5_K *)(const void *)(w + r * bw) + ib;
        *wq = wb->qs, *wqh = wb->qh, *wsc = wb->scales, *wd = wb->d, *wdmin = wb->dmin;
    } else {
        const lfm_block_q4_K *wb = (const lfm_block_q4_K *)(const void *)(w + r * bw) + ib;
        *wq = wb->qs, *wqh = NULL, *wsc = wb->scales, *wd = wb->d, *wdmin = wb->dmin;
    }
}

/* NR rows x NT tokens, lane-exact integer sums (plain NEON / SDOT): every mode. */
KQ_INLINE void kq_tile_q45_K(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                             int64_t ldy, const int NR, const int NT, const int mode) {
    const int five = mode == KQ_K5 || mode == KQ_K5_TILED;
    float32x4_t acc[KQ_MAXR][KQ_MAXT][2];
    float sacc[KQ_MAXR][KQ_MAXT], macc[KQ_MAXR][KQ_MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            acc[r][t][0] = acc[r][t][1] = vdupq_n_f32(0.0f), sacc[r][t] = 0.0f, macc[r][t] = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_K *yb[KQ_MAXT];
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        for (int r = 0; r < NR; r++) {
            const uint8_t *wq, *wqh, *wsc;
            lfm_half wd, wdmin;
            kq_q45_row(w, bw, r, ib, five, &wq, &wqh, &wsc, &wd, &wdmin);
            __builtin_prefetch(wq + (five ? 176 : 144)); /* the next block's quants */
            __builtin_prefetch(wq + (five ? 176 : 144) + 64);
            uint8_t sm[16];
            kq_k4_scales(wsc, sm);
            uint8x16_t hb[2] = {vdupq_n_u8(0), vdupq_n_u8(0)};
            if (five) hb[0] = vld1q_u8(wqh), hb[1] = vld1q_u8(wqh + 16);
            const float d = neon_h2f(wd), dmin = neon_h2f(wdmin);
            int32x4_t isum[KQ_MAXT][2]; /* lanes 0..3 and 4..7 */
            for (int t = 0; t < NT; t++) isum[t][0] = isum[t][1] = vdupq_n_s32(0);
            for (int c = 0; c < 4; c++) {
                int8x16_t q[4];
                kq_q45_chunk(wq, c, five, hb, q);
                if (five) hb[0] = vshrq_n_u8(hb[0], 2), hb[1] = vshrq_n_u8(hb[1], 2);
                const int32_t s_lo = sm[2 * c], s_hi = sm[2 * c + 1];
                for (int t = 0; t < NT; t++) {
                    const int8_t *yq = yb[t]->qs + 64 * c;
                    const int32x4_t z = vdupq_n_s32(0);
                    int32x4_t d0 = neon_dot4(z, q[0], vld1q_s8(yq)), d1 = neon_dot4(z, q[1], vld1q_s8(yq + 16));
                    int32x4_t d2 = neon_dot4(z, q[2], vld1q_s8(yq + 32)), d3 = neon_dot4(z, q[3], vld1q_s8(yq + 48));
                    int32x4_t p0 = vmlaq_n_s32(vmulq_n_s32(d0, s_lo), d2, s_hi); /* lanes 0..3 */
                    int32x4_t p1 = vmlaq_n_s32(vmulq_n_s32(d1, s_lo), d3, s_hi); /* lanes 4..7 */
                    if (mode == KQ_K4_GEMM4) {
                        const float dd = d * yb[t]->d, ddmin = dmin * yb[t]->d;
                        const int16_t *bs = yb[t]->bsums + 4 * c;
                        const int32_t mins = sm[8 + 2 * c] * (bs[0] + bs[1]) + sm[9 + 2 * c] * (bs[2] + bs[3]);
                        sacc[r][t] = fmaf((float)vaddvq_s32(vaddq_s32(p0, p1)), dd, sacc[r][t]);
                        macc[r][t] = fmaf((float)mins, ddmin, macc[r][t]);
                    } else {
                        isum[t][0] = vaddq_s32(isum[t][0], p0);
                        isum[t][1] = vaddq_s32(isum[t][1], p1);
                    }
                }
            }
            if (mode == KQ_K4_GEMM4) continue;
            for (int t = 0; t < NT; t++) {
                const float yd = yb[t]->d, mins = (float)kq_mins_dot(sm, yb[t]->bsums);
                if (mode == KQ_K5_TILED) {
                    const float res = fmaf(-dmin, mins, d * (float)vaddvq_s32(vaddq_s32(isum[t][0], isum[t][1])));
                    sacc[r][t] = fmaf(res, yd, sacc[r][t]);
                } else if (five) {
                    const float32x4_t dd = vdupq_n_f32(yd * d);
                    acc[r][t][0] = vfmaq_f32(acc[r][t][0], dd, vcvtq_f32_s32(isum[t][0]));
                    acc[r][t][1] = vfmaq_f32(acc[r][t][1], dd, vcvtq_f32_s32(isum[t][1]));
                    macc[r][t] = fmaf(-yd * dmin, mins, macc[r][t]);
                } else {
                    sacc[r][t] = fmaf((float)vaddvq_s32(vaddq_s32(isum[t][0], isum[t][1])), d * yd, sacc[r][t]);
                    macc[r][t] = fmaf(mins, dmin * yd, macc[r][t]);
                }
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            y[t * ldy + r] = mode == KQ_K5         ? neon_hsum8(acc[r][t][0], acc[r][t][1]) + macc[r][t]
                             : mode == KQ_K5_TILED ? sacc[r][t]
                                                   : sacc[r][t] - macc[r][t];
}

#if KQ_SMMLA
/* 8-byte groups of two operands side by side, as SMMLA reads them: (a[8k..8k+7], b[8k..8k+7]) */
KQ_INLINE int8x16_t kq_zip_lo(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}
KQ_INLINE int8x16_t kq_zip_hi(int8x16_t a, int8x16_t b) {
    return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

/* The whole-block / whole-chunk orders (K4_BLOCK, K4_GEMM4, K5_TILED) with SMMLA: rows and tokens
 * in pairs (an odd last one paired with itself, its results dropped), each 2x2 tile of exact int32
 * dots [ra.ta, ra.tb, rb.ta, rb.tb] scaled per row; then the same scalar float operations per row
 * and token as kq_tile_q45_K. */
KQ_INLINE void kq_tile_q45_K_mm(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                                int64_t ldy, const int NR, const int NT, const int mode) {
    const int five = mode == KQ_K5_TILED;
    const int NRP = (NR + 1) / 2, NTP = (NT + 1) / 2;
    float sacc[KQ_MAXR][KQ_MAXT], macc[KQ_MAXR][KQ_MAXT];
    for (int r = 0; r < KQ_MAXR; r++)
        for (int t = 0; t < KQ_MAXT; t++) sacc[r][t] = 0.0f, macc[r][t] = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_K *yb[KQ_MAXT];
        for (int t = 0; t < 2 * NTP; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + (t < NT ? t : NT - 1) * bx) + ib;
        for (int rp = 0; rp < NRP; rp++) {
            const uint8_t *wq[2], *wqh[2], *wsc[2];
            lfm_half wd[2], wdmin[2];
            uint8_t sm[2][16];
            uint8x16_t hb[2][2];
            for (int i = 0; i < 2; i++) {
                const int r = 2 * rp + i < NR ? 2 * rp + i : NR - 1;
                kq_q45_row(w, bw, r, ib, five, &wq[i], &wqh[i], &wsc[i], &wd[i], &wdmin[i]);
                __builtin_prefetch(wq[i] + (five ? 176 : 144));
                __builtin_prefetch(wq[i] + (five ? 176 : 144) + 64);
                kq_k4_scales(wsc[i], sm[i]);
                hb[i][0] = five ? vld1q_u8(wqh[i]) : vdupq_n_u8(0);
                hb[i][1] = five ? vld1q_u8(wqh[i] + 16) : vdupq_n_u8(0);
            }
            int32x4_t isum[KQ_MAXT / 2];
            for (int tp = 0; tp < NTP; tp++) isum[tp] = vdupq_n_s32(0);
            for (int c = 0; c < 4; c++) {
                int8x16_t qa[4], qb[4], wz[8]; /* wz[0..3]: sub-block 2c, wz[4..7]: 2c+1 */
                kq_q45_chunk(wq[0], c, five, hb[0], qa);
                kq_q45_chunk(wq[1], c, five, hb[1], qb);
                if (five)
                    for (int i = 0; i < 2; i++) hb[i][0] = vshrq_n_u8(hb[i][0], 2), hb[i][1] = vshrq_n_u8(hb[i][1], 2);
                for (int k = 0; k < 4; k++) {
                    wz[2 * k] = kq_zip_lo(qa[k], qb[k]);
                    wz[2 * k + 1] = kq_zip_hi(qa[k], qb[k]);
                }
                const int32_t sa_lo = sm[0][2 * c], sa_hi = sm[0][2 * c + 1], sb_lo = sm[1][2 * c], sb_hi = sm[1][2 * c + 1];
                const int32x4_t s_lo = vcombine_s32(vdup_n_s32(sa_lo), vdup_n_s32(sb_lo));
                const int32x4_t s_hi = vcombine_s32(vdup_n_s32(sa_hi), vdup_n_s32(sb_hi));
                for (int tp = 0; tp < NTP; tp++) {
                    const int8_t *ya = yb[2 * tp]->qs + 64 * c, *yc = yb[2 * tp + 1]->qs + 64 * c;
                    int32x4_t m_lo = vdupq_n_s32(0), m_hi = vdupq_n_s32(0);
                    for (int k = 0; k < 4; k++) {
                        const int8x16_t yz = vcombine_s8(vld1_s8(ya + 8 * k), vld1_s8(yc + 8 * k));
                        const int8x16_t yz2 = vcombine_s8(vld1_s8(ya + 32 + 8 * k), vld1_s8(yc + 32 + 8 * k));
                        m_lo = vmmlaq_s32(m_lo, wz[k], yz);
                        m_hi = vmmlaq_s32(m_hi, wz[4 + k], yz2);
                    }
                    const int32x4_t p = vmlaq_s32(vmulq_s32(m_lo, s_lo), m_hi, s_hi);
                    if (mode == KQ_K4_GEMM4) {
                        int32_t pv[4];
                        vst1q_s32(pv, p);
                        for (int i = 0; i < 4; i++) {
                            const int r = 2 * rp + i / 2, t = 2 * tp + i % 2;
                            if (r >= NR || t >= NT) continue;
                            const float yd = yb[t]->d;
                            const int16_t *bs = yb[t]->bsums + 4 * c;
                            const int32_t mins = sm[i / 2][8 + 2 * c] * (bs[0] + bs[1]) + sm[i / 2][9 + 2 * c] * (bs[2] + bs[3]);
                            sacc[r][t] = fmaf((float)pv[i], neon_h2f(wd[i / 2]) * yd, sacc[r][t]);
                            macc[r][t] = fmaf((float)mins, neon_h2f(wdmin[i / 2]) * yd, macc[r][t]);
                        }
                    } else {
                        isum[tp] = vaddq_s32(isum[tp], p);
                    }
                }
            }
            if (mode == KQ_K4_GEMM4) continue;
            for (int tp = 0; tp < NTP; tp++) {
                int32_t pv[4];
                vst1q_s32(pv, isum[tp]);
                for (int i = 0; i < 4; i++) {
                    const int r = 2 * rp + i / 2, t = 2 * tp + i % 2;
                    if (r >= NR || t >= NT) continue;
                    const float yd = yb[t]->d, d = neon_h2f(wd[i / 2]), dmin = neon_h2f(wdmin[i / 2]);
                    const float mins = (float)kq_mins_dot(sm[i / 2], yb[t]->bsums);
                    if (mode == KQ_K5_TILED) {
                        sacc[r][t] = fmaf(fmaf(-dmin, mins, d * (float)pv[i]), yd, sacc[r][t]);
                    } else {
                        sacc[r][t] = fmaf((float)pv[i], d * yd, sacc[r][t]);
                        macc[r][t] = fmaf(mins, dmin * yd, macc[r][t]);
                    }
                }
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = mode == KQ_K5_TILED ? sacc[r][t] : sacc[r][t] - macc[r][t];
}
#endif

/* ---- Q6_K in the row layout ---- */

/* Q6_K's 6-bit quants (0..63) of 16 elements of each of four 32-element chunks, from 16 bytes of
 * low nibbles at ql0 and at ql0 + 32 (ql1) and 16 bytes of high bit pairs. */
KQ_INLINE void kq_q6_unpack(uint8x16_t ql0, uint8x16_t ql1, uint8x16_t qh, int8x16_t q[4]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m30 = vdupq_n_u8(0x30);
    q[0] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(ql0, m4), vandq_u8(vshlq_n_u8(qh, 4), m30)));
    q[1] = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(ql1, m4), vandq_u8(vshlq_n_u8(qh, 2), m30)));
    q[2] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(ql0, 4), vandq_u8(qh, m30)));
    q[3] = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(ql1, 4), vandq_u8(vshrq_n_u8(qh, 2), m30)));
}

/* lanes 0..3 and 4..7 of 32 * (s[2j] bsums[2j] + s[2j+1] bsums[2j+1]): the -32 offset of lane j */
KQ_INLINE void kq_q6_offsets(int8x16_t s8, const int16_t *bsums, int32x4_t off[2]) {
    int16x8_t s0 = vmovl_s8(vget_low_s8(s8)), s1 = vmovl_high_s8(s8);
    int16x8_t b0 = vld1q_s16(bsums), b1 = vld1q_s16(bsums + 8);
    int32x4_t p0 = vmull_s16(vget_low_s16(s0), vget_low_s16(b0)), p1 = vmull_high_s16(s0, b0);
    int32x4_t p2 = vmull_s16(vget_low_s16(s1), vget_low_s16(b1)), p3 = vmull_high_s16(s1, b1);
    off[0] = vshlq_n_s32(vpaddq_s32(p0, p1), 5);
    off[1] = vshlq_n_s32(vpaddq_s32(p2, p3), 5);
}

/* tiled = 0: llama.cpp's dot product (8 lanes per row, fma per lane and block with d*y.d, hsum8);
 * tiled = 1: its tiled kernel for 8+ tokens (per block fma(d * total, y.d, acc)). */
KQ_INLINE void kq_tile_q6_K(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                            int64_t ldy, const int NR, const int NT, const int tiled) {
    float32x4_t acc[KQ_MAXR][KQ_MAXT][2];
    float sacc[KQ_MAXR][KQ_MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = vdupq_n_f32(0.0f), sacc[r][t] = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_K *yb[KQ_MAXT];
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        for (int r = 0; r < NR; r++) {
            const lfm_block_q6_K *wb = (const lfm_block_q6_K *)(const void *)(w + r * bw) + ib;
            __builtin_prefetch((const uint8_t *)(wb + 1));
            __builtin_prefetch((const uint8_t *)(wb + 1) + 64);
            __builtin_prefetch((const uint8_t *)(wb + 1) + 128);
            const int8x16_t s8 = vld1q_s8(wb->scales);
            int8_t s[16];
            vst1q_s8(s, s8);
            int32x4_t isum[KQ_MAXT][2];
            for (int t = 0; t < NT; t++) {
                int32x4_t off[2];
                kq_q6_offsets(s8, yb[t]->bsums, off);
                isum[t][0] = vnegq_s32(off[0]), isum[t][1] = vnegq_s32(off[1]);
            }
            for (int h = 0; h < 2; h++) {
                for (int half = 0; half < 2; half++) { /* bytes 0..15 (lanes 0..3) / 16..31 (4..7) of each chunk */
                    int8x16_t q[4];
                    kq_q6_unpack(vld1q_u8(wb->ql + 64 * h + 16 * half), vld1q_u8(wb->ql + 64 * h + 32 + 16 * half),
                                 vld1q_u8(wb->qh + 32 * h + 16 * half), q);
                    for (int t = 0; t < NT; t++) {
                        const int8_t *yq = yb[t]->qs + 128 * h + 16 * half;
                        int32x4_t v = isum[t][half];
                        for (int k = 0; k < 4; k++) /* chunk k: group 8h + 2k + half */
                            v = vmlaq_n_s32(v, neon_dot4(vdupq_n_s32(0), q[k], vld1q_s8(yq + 32 * k)), s[8 * h + 2 * k + half]);
                        isum[t][half] = v;
                    }
                }
            }
            const float d = neon_h2f(wb->d);
            for (int t = 0; t < NT; t++) {
                if (tiled) {
                    sacc[r][t] = fmaf(d * (float)vaddvq_s32(vaddq_s32(isum[t][0], isum[t][1])), yb[t]->d, sacc[r][t]);
                } else {
                    const float32x4_t dd = vdupq_n_f32(d * yb[t]->d);
                    acc[r][t][0] = vfmaq_f32(acc[r][t][0], vcvtq_f32_s32(isum[t][0]), dd);
                    acc[r][t][1] = vfmaq_f32(acc[r][t][1], vcvtq_f32_s32(isum[t][1]), dd);
                }
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = tiled ? sacc[r][t] : neon_hsum8(acc[r][t][0], acc[r][t][1]);
}

#if KQ_SMMLA
/* Q6_K's tiled order (8+ tokens) with SMMLA: 2 rows x 2 tokens per instruction, per 16-element
 * group the exact dot times the row's scale; the -32 offset with the bsums; then the scalar
 * fma(d * total, y.d, acc) of kq_tile_q6_K. */
KQ_INLINE void kq_tile_q6_K_mm(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                               int64_t ldy, const int NR, const int NT) {
    const int NRP = (NR + 1) / 2, NTP = (NT + 1) / 2;
    float sacc[KQ_MAXR][KQ_MAXT];
    for (int r = 0; r < KQ_MAXR; r++)
        for (int t = 0; t < KQ_MAXT; t++) sacc[r][t] = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_K *yb[KQ_MAXT];
        for (int t = 0; t < 2 * NTP; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + (t < NT ? t : NT - 1) * bx) + ib;
        for (int rp = 0; rp < NRP; rp++) {
            const lfm_block_q6_K *wb[2];
            int32_t off[2][KQ_MAXT];
            int8_t s[2][16];
            for (int i = 0; i < 2; i++) {
                const int r = 2 * rp + i < NR ? 2 * rp + i : NR - 1;
                wb[i] = (const lfm_block_q6_K *)(const void *)(w + r * bw) + ib;
                __builtin_prefetch((const uint8_t *)(wb[i] + 1));
                __builtin_prefetch((const uint8_t *)(wb[i] + 1) + 64);
                __builtin_prefetch((const uint8_t *)(wb[i] + 1) + 128);
                const int8x16_t s8 = vld1q_s8(wb[i]->scales);
                vst1q_s8(s[i], s8);
                for (int t = 0; t < NT; t++) {
                    int32x4_t o[2];
                    kq_q6_offsets(s8, yb[t]->bsums, o);
                    off[i][t] = vaddvq_s32(vaddq_s32(o[0], o[1]));
                }
            }
            int32x4_t isum[KQ_MAXT / 2];
            for (int tp = 0; tp < NTP; tp++) isum[tp] = vdupq_n_s32(0);
            for (int h = 0; h < 2; h++) {
                for (int half = 0; half < 2; half++) {
                    int8x16_t qa[4], qb[4];
                    kq_q6_unpack(vld1q_u8(wb[0]->ql + 64 * h + 16 * half), vld1q_u8(wb[0]->ql + 64 * h + 32 + 16 * half),
                                 vld1q_u8(wb[0]->qh + 32 * h + 16 * half), qa);
                    kq_q6_unpack(vld1q_u8(wb[1]->ql + 64 * h + 16 * half), vld1q_u8(wb[1]->ql + 64 * h + 32 + 16 * half),
                                 vld1q_u8(wb[1]->qh + 32 * h + 16 * half), qb);
                    for (int k = 0; k < 4; k++) {
                        const int g = 8 * h + 2 * k + half; /* these 16 elements' group */
                        const int8x16_t w0 = kq_zip_lo(qa[k], qb[k]), w1 = kq_zip_hi(qa[k], qb[k]);
                        const int32x4_t sv = vcombine_s32(vdup_n_s32(s[0][g]), vdup_n_s32(s[1][g]));
                        for (int tp = 0; tp < NTP; tp++) {
                            const int8_t *ya = yb[2 * tp]->qs + 16 * g, *yc = yb[2 * tp + 1]->qs + 16 * g;
                            int32x4_t m = vmmlaq_s32(vdupq_n_s32(0), w0, vcombine_s8(vld1_s8(ya), vld1_s8(yc)));
                            m = vmmlaq_s32(m, w1, vcombine_s8(vld1_s8(ya + 8), vld1_s8(yc + 8)));
                            isum[tp] = vmlaq_s32(isum[tp], m, sv);
                        }
                    }
                }
            }
            for (int tp = 0; tp < NTP; tp++) {
                int32_t pv[4];
                vst1q_s32(pv, isum[tp]);
                for (int i = 0; i < 4; i++) {
                    const int r = 2 * rp + i / 2, t = 2 * tp + i % 2;
                    if (r >= NR || t >= NT) continue;
                    const float d = neon_h2f(wb[i / 2]->d);
                    sacc[r][t] = fmaf(d * (float)(pv[i] - off[i / 2][t]), yb[t]->d, sacc[r][t]);
                }
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = sacc[r][t];
}
#endif

/* ---- row-layout tiling ---- */

typedef void (*kq_tile_fn)(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy);

#define KQ_TILE_FN(T, R, N, CALL)                                                                                  \
    static void T##_##R##N(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,      \
                           int64_t ldy) {                                                                          \
        CALL(nb, w, bw, x, bx, y, ldy, R, N);                                                                      \
    }
/* T##_tiles[R-1][N-1] for R < 5 rows and N < 5 tokens; CALL(nb, w, bw, x, bx, y, ldy, R, N) */
#define KQ_TILE_FNS(T, CALL)                                                                                       \
    KQ_TILE_FN(T, 1, 1, CALL) KQ_TILE_FN(T, 2, 1, CALL) KQ_TILE_FN(T, 3, 1, CALL) KQ_TILE_FN(T, 4, 1, CALL)      \
    KQ_TILE_FN(T, 1, 2, CALL) KQ_TILE_FN(T, 2, 2, CALL) KQ_TILE_FN(T, 3, 2, CALL) KQ_TILE_FN(T, 4, 2, CALL)      \
    KQ_TILE_FN(T, 1, 3, CALL) KQ_TILE_FN(T, 2, 3, CALL) KQ_TILE_FN(T, 3, 3, CALL) KQ_TILE_FN(T, 4, 3, CALL)      \
    KQ_TILE_FN(T, 1, 4, CALL) KQ_TILE_FN(T, 2, 4, CALL) KQ_TILE_FN(T, 3, 4, CALL) KQ_TILE_FN(T, 4, 4, CALL)      \
    static const kq_tile_fn T##_tiles[4][4] = {{T##_11, T##_12, T##_13, T##_14}, {T##_21, T##_22, T##_23, T##_24}, \
                                               {T##_31, T##_32, T##_33, T##_34}, {T##_41, T##_42, T##_43, T##_44}};

/* Which tile function does the work is free: the float order does not depend on the tile shape. */
#define KQ_CALL_Q4_K(nb, w, bw, x, bx, y, ldy, R, N) kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K4_BLOCK)
#define KQ_CALL_Q4_K4(nb, w, bw, x, bx, y, ldy, R, N) kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K4_GEMM4)
#define KQ_CALL_Q5_K(nb, w, bw, x, bx, y, ldy, R, N) kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K5)
#define KQ_CALL_Q5_K8(nb, w, bw, x, bx, y, ldy, R, N) kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K5_TILED)
#define KQ_CALL_Q6_K(nb, w, bw, x, bx, y, ldy, R, N) kq_tile_q6_K(nb, w, bw, x, bx, y, ldy, R, N, 0)
#if KQ_SMMLA
/* SMMLA pays off once two tokens share the weights; one token stays on SDOT */
#define KQ_CALL_Q4_K_MM(nb, w, bw, x, bx, y, ldy, R, N)                                                            \
    ((N) >= 2 ? kq_tile_q45_K_mm(nb, w, bw, x, bx, y, ldy, R, N, KQ_K4_BLOCK)                                      \
              : kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K4_BLOCK))
#define KQ_CALL_Q4_K4_MM(nb, w, bw, x, bx, y, ldy, R, N)                                                           \
    ((N) >= 2 ? kq_tile_q45_K_mm(nb, w, bw, x, bx, y, ldy, R, N, KQ_K4_GEMM4)                                      \
              : kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K4_GEMM4))
#define KQ_CALL_Q5_K8_MM(nb, w, bw, x, bx, y, ldy, R, N)                                                           \
    ((N) >= 2 ? kq_tile_q45_K_mm(nb, w, bw, x, bx, y, ldy, R, N, KQ_K5_TILED)                                      \
              : kq_tile_q45_K(nb, w, bw, x, bx, y, ldy, R, N, KQ_K5_TILED))
#define KQ_CALL_Q6_K8_MM(nb, w, bw, x, bx, y, ldy, R, N)                                                           \
    ((N) >= 2 ? kq_tile_q6_K_mm(nb, w, bw, x, bx, y, ldy, R, N) : kq_tile_q6_K(nb, w, bw, x, bx, y, ldy, R, N, 1))
KQ_TILE_FNS(kq_q4_K, KQ_CALL_Q4_K_MM)
KQ_TILE_FNS(kq_q4_K4, KQ_CALL_Q4_K4_MM)
KQ_TILE_FNS(kq_q5_K8, KQ_CALL_Q5_K8_MM)
KQ_TILE_FNS(kq_q6_K8, KQ_CALL_Q6_K8_MM)
/* 4 x 4 tiles: two SMMLA row pairs x two token pairs */
enum { KQ_TILE_TOKENS = 4 };
#else
#define KQ_CALL_Q6_K8(nb, w, bw, x, bx, y, ldy, R, N) kq_tile_q6_K(nb, w, bw, x, bx, y, ldy, R, N, 1)
KQ_TILE_FNS(kq_q4_K, KQ_CALL_Q4_K)
KQ_TILE_FNS(kq_q4_K4, KQ_CALL_Q4_K4)
KQ_TILE_FNS(kq_q5_K8, KQ_CALL_Q5_K8)
KQ_TILE_FNS(kq_q6_K8, KQ_CALL_Q6_K8)
enum { KQ_TILE_TOKENS = 3 };
#endif
KQ_TILE_FNS(kq_q5_K, KQ_CALL_Q5_K)
KQ_TILE_FNS(kq_q6_K, KQ_CALL_Q6_K)

/* Decode: 4x1 tiles down the rows. Prefill: the tokens in chunks that stay in L2 and, inside a
 * chunk, tiles of 4 rows x up to `tt_max` tokens, so a weight tile is read from memory once per
 * chunk and an unpacked weight block serves several tokens. */
static void kq_mm_tiled(const kq_tile_fn tiles[4][4], int tt_max, int64_t nb, const uint8_t *w, size_t bw, int64_t nr,
                        const uint8_t *x, size_t bx, int64_t nt, float *y, int64_t ldy) {
    const int64_t TR = 4, CHUNK = 48;
    for (int64_t t0 = 0; t0 < nt; t0 += CHUNK) {
        int64_t t1 = lfm_min64(nt, t0 + CHUNK);
        for (int64_t r = 0; r < nr; r += TR) {
            int64_t rr = lfm_min64(TR, nr - r);
            for (int64_t t = t0; t < t1; t += tt_max) {
                int64_t tt = lfm_min64(tt_max, t1 - t);
                tiles[rr - 1][tt - 1](nb, w + (size_t)r * bw, bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
        }
    }
}

/* Q4_K: llama.cpp runs the tokens of a batch in groups of 4 through its GEMM and the rest (the last
 * T % 4, or all of them when T < 4) through its one-token kernel; rounding follows suit. */
static void kq_mm_q4_K(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    const int64_t nb = n / LFM_QK_K, grouped = nt > 3 ? nt - nt % 4 : 0;
    if (grouped) kq_mm_tiled(kq_q4_K4_tiles, KQ_TILE_TOKENS, nb, w, bw, nr, x, bx, grouped, y, ldy);
    if (nt > grouped)
        kq_mm_tiled(kq_q4_K_tiles, KQ_TILE_TOKENS, nb, w, bw, nr, x + (size_t)grouped * bx, bx, nt - grouped,
                    y + grouped * ldy, ldy);
}

/* Q5_K / Q6_K: llama.cpp switches to its tiled kernel for batches of 8 or more tokens */
static void kq_mm_q5_K(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    if (nt >= 8) kq_mm_tiled(kq_q5_K8_tiles, KQ_TILE_TOKENS, n / LFM_QK_K, w, bw, nr, x, bx, nt, y, ldy);
    else kq_mm_tiled(kq_q5_K_tiles, 3, n / LFM_QK_K, w, bw, nr, x, bx, nt, y, ldy);
}

static void kq_mm_q6_K(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    if (nt >= 8) kq_mm_tiled(kq_q6_K8_tiles, KQ_TILE_TOKENS, n / LFM_QK_K, w, bw, nr, x, bx, nt, y, ldy);
    else kq_mm_tiled(kq_q6_K_tiles, 3, n / LFM_QK_K, w, bw, nr, x, bx, nt, y, ldy);
}

/* ---- Q4_K / Q5_K / Q6_K in LFM_LAYOUT_X8: 8 rows per group, row r of the group in lane r % 4 of vector
 * r / 4 (see quants_avx2.c for why these give the row kernels' floats bit for bit) ---- */

/* Ask for the cache lines `ahead` bytes past p: the group blocks are one front-to-back stream. */
#define KQ_X8_PREFETCH_AHEAD 2048
KQ_INLINE void kq_prefetch_lines(const uint8_t *p, int bytes) {
    for (int o = 0; o < bytes; o += 64) __builtin_prefetch(p + KQ_X8_PREFETCH_AHEAD + o);
}

/* byte i (< 4) of each 32-bit lane, zero-extended: one 6-bit scale of 4 rows */
KQ_INLINE int32x4_t kq_lane_byte(uint8x16_t v, int i) {
    uint32x4_t u = vshlq_u32(vreinterpretq_u32_u8(v), vdupq_n_s32(-8 * i));
    return vreinterpretq_s32_u32(vandq_u32(u, vdupq_n_u32(0xff)));
}

/* acc + sum over l < 4 of neon_dot4(a_l, 32-bit lane l of y broadcast): four rows' 4-byte groups
 * against four consecutive 4-byte groups of one activation load (lane indices must be literals).
 * Weights |a| <= 63, activations |y| <= 127. */
KQ_INLINE int32x4_t kq_dot_lanes(int32x4_t acc, int8x16_t a0, int8x16_t a1, int8x16_t a2, int8x16_t a3, int8x16_t y) {
#if defined(__ARM_FEATURE_DOTPROD)
    acc = vdotq_laneq_s32(acc, a0, y, 0);
    acc = vdotq_laneq_s32(acc, a1, y, 1);
    acc = vdotq_laneq_s32(acc, a2, y, 2);
    return vdotq_laneq_s32(acc, a3, y, 3);
#else
    /* the four products of a byte position summed in int16 first (|4 * 63 * 127| < 2^15), then
     * widened in pairs and the pairs added: lane j still holds exactly bytes 4j..4j+3 */
    const int32x4_t y32 = vreinterpretq_s32_s8(y);
    const int8x16_t b0 = vreinterpretq_s8_s32(vdupq_laneq_s32(y32, 0)), b1 = vreinterpretq_s8_s32(vdupq_laneq_s32(y32, 1));
    const int8x16_t b2 = vreinterpretq_s8_s32(vdupq_laneq_s32(y32, 2)), b3 = vreinterpretq_s8_s32(vdupq_laneq_s32(y32, 3));
    int16x8_t lo = vmull_s8(vget_low_s8(a0), vget_low_s8(b0)), hi = vmull_high_s8(a0, b0);
    lo = vmlal_s8(lo, vget_low_s8(a1), vget_low_s8(b1)), hi = vmlal_high_s8(hi, a1, b1);
    lo = vmlal_s8(lo, vget_low_s8(a2), vget_low_s8(b2)), hi = vmlal_high_s8(hi, a2, b2);
    lo = vmlal_s8(lo, vget_low_s8(a3), vget_low_s8(b3)), hi = vmlal_high_s8(hi, a3, b3);
    return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

/* 4 bytes of p broadcast to the four 32-bit lanes */
KQ_INLINE int8x16_t kq_bcast4(const int8_t *p) { return vreinterpretq_s8_s32(vdupq_n_s32(neon_load_i32(p))); }

/* Scales / mins 0..3 (sc[0], mn[0]) and 4..7 (sc[1], mn[1]) of rows 4h..4h+3 (index [h]), one row per
 * 32-bit lane, from the 96 interleaved scale bytes of a Q4_K / Q5_K group block. */
KQ_INLINE void kq_k4_scales_x8(const uint8_t *scales, uint8x16_t sc[2][2], uint8x16_t mn[2][2]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m6 = vdupq_n_u8(0x3f);
    for (int h = 0; h < 2; h++) {
        uint8x16_t a0 = vld1q_u8(scales + 16 * h), a1 = vld1q_u8(scales + 32 + 16 * h);
        uint8x16_t a2 = vld1q_u8(scales + 64 + 16 * h);
        sc[0][h] = vandq_u8(a0, m6);
        mn[0][h] = vandq_u8(a1, m6);
        sc[1][h] = vorrq_u8(vandq_u8(a2, m4), vshlq_n_u8(vshrq_n_u8(a0, 6), 4));
        mn[1][h] = vorrq_u8(vshrq_n_u8(a2, 4), vshlq_n_u8(vshrq_n_u8(a1, 6), 4));
    }
}

/* Bit k (a constant < 8) of every byte of hb as 16 or 0: the fifth bit of a Q5_K quant. */
KQ_INLINE uint8x16_t kq_q5_fifth_bit(uint8x16_t hb, const int k) {
    return vandq_u8(vtstq_u8(hb, vdupq_n_u8((uint8_t)(1u << k))), vdupq_n_u8(0x10));
}

/* 16 quant bytes of a Q4_K / Q5_K group block as the low (lo) and high (hi) elements; Q5_K (qh not
 * NULL): with the fifth bits of chunk c from the matching 16 qh bytes. */
KQ_INLINE void kq_q45_x8_unpack(const uint8_t *qs, const uint8_t *qh, const int c, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t q = vld1q_u8(qs);
    uint8x16_t l = vandq_u8(q, vdupq_n_u8(0x0f)), u = vshrq_n_u8(q, 4);
    if (qh) {
        const uint8x16_t hb = vld1q_u8(qh);
        l = vorrq_u8(l, kq_q5_fifth_bit(hb, 2 * c));
        u = vorrq_u8(u, kq_q5_fifth_bit(hb, 2 * c + 1));
    }
    *lo = vreinterpretq_s8_u8(l), *hi = vreinterpretq_s8_u8(u);
}

/* Q4_K, one 8-row group x NT tokens: per row the exact dot and min terms of a block (K4_BLOCK) or of
 * each 64-element chunk (K4_GEMM4), one fma each, subtracted at the end. Q5_K for 8+ tokens
 * (K5_TILED): per row and block r = fma(-dmin, mins, d * dot), then acc = fma(r, y.d, acc). */
KQ_INLINE void kq_tile_q45_Kx8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                               const int NT, const int mode) {
    const int five = mode == KQ_K5_TILED;
    float32x4_t sacc[KQ_MAXT][2], macc[KQ_MAXT][2];
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < 2; h++) sacc[t][h] = macc[t][h] = vdupq_n_f32(0.0f);
    /* the two group blocks share d, dmin and scales; Q5_K's has the high bits before the quants */
    const size_t gsize = five ? sizeof(lfm_block_q5_Kx8) : sizeof(lfm_block_q4_Kx8);
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q4_Kx8 *g4 = (const lfm_block_q4_Kx8 *)(const void *)(w + (size_t)ib * gsize);
        const lfm_block_q5_Kx8 *g5 = (const lfm_block_q5_Kx8 *)(const void *)(w + (size_t)ib * gsize);
        const uint8_t *gqs = five ? g5->qs : g4->qs, *gqh = five ? g5->qh : NULL;
        kq_prefetch_lines((const uint8_t *)g4, (int)gsize);
        const lfm_block_q8_K *yb[KQ_MAXT];
        float32x4_t d8[2], m8[2], dd[KQ_MAXT][2], dm[KQ_MAXT][2];
        kq_h2f8(g4->d, d8);
        kq_h2f8(g4->dmin, m8);
        for (int t = 0; t < NT; t++) {
            yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
            for (int h = 0; h < 2; h++) {
                dd[t][h] = vmulq_n_f32(d8[h], yb[t]->d); /* d * y.d */
                dm[t][h] = vmulq_n_f32(m8[h], yb[t]->d); /* dmin * y.d */
            }
        }
        uint8x16_t sc[2][2], mn[2][2];
        kq_k4_scales_x8(g4->scales, sc, mn);
        int32x4_t vb[KQ_MAXT][2], mb[KQ_MAXT][2];
        for (int t = 0; t < NT; t++)
            for (int h = 0; h < 2; h++) vb[t][h] = mb[t][h] = vdupq_n_s32(0);
        for (int c = 0; c < 4; c++) {
            int32x4_t s_lo[2], s_hi[2], mn_lo[2], mn_hi[2]; /* sub-blocks 2c and 2c + 1 */
            for (int h = 0; h < 2; h++) {
                s_lo[h] = kq_lane_byte(sc[c / 2][h], (2 * c) % 4);
                s_hi[h] = kq_lane_byte(sc[c / 2][h], (2 * c + 1) % 4);
                mn_lo[h] = kq_lane_byte(mn[c / 2][h], (2 * c) % 4);
                mn_hi[h] = kq_lane_byte(mn[c / 2][h], (2 * c + 1) % 4);
            }
            int32x4_t dlo[KQ_MAXT][2], dhi[KQ_MAXT][2]; /* unscaled dots of the two sub-blocks */
            for (int t = 0; t < NT; t++)
                for (int h = 0; h < 2; h++) dlo[t][h] = dhi[t][h] = vdupq_n_s32(0);
#if KQ_SMMLA
            if (NT >= 2) {
                /* rows (0,1) (2,3) (4,5) (6,7) x token pairs: 8 bytes 4j..4j+7 of a row next to each other */
                for (int jp = 0; jp < 4; jp++) {
                    int8x16_t lo[2][2], hi[2][2]; /* [j - 2jp][h] */
                    for (int i = 0; i < 2; i++)
                        for (int h = 0; h < 2; h++) {
                            const int j = 2 * jp + i;
                            kq_q45_x8_unpack(gqs + 128 * j + 32 * c + 16 * h, gqh ? gqh + 32 * j + 16 * h : NULL, c,
                                             &lo[i][h], &hi[i][h]);
                        }
                    int8x16_t wl[4], wh[4]; /* row pairs 01, 23, 45, 67 */
                    for (int h = 0; h < 2; h++) {
                        wl[2 * h] = vreinterpretq_s8_s32(vzip1q_s32(vreinterpretq_s32_s8(lo[0][h]), vreinterpretq_s32_s8(lo[1][h])));
                        wl[2 * h + 1] = vreinterpretq_s8_s32(vzip2q_s32(vreinterpretq_s32_s8(lo[0][h]), vreinterpretq_s32_s8(lo[1][h])));
                        wh[2 * h] = vreinterpretq_s8_s32(vzip1q_s32(vreinterpretq_s32_s8(hi[0][h]), vreinterpretq_s32_s8(hi[1][h])));
                        wh[2 * h + 1] = vreinterpretq_s8_s32(vzip2q_s32(vreinterpretq_s32_s8(hi[0][h]), vreinterpretq_s32_s8(hi[1][h])));
                    }
                    for (int tp = 0; tp < NT; tp += 2) {
                        const int tb = tp + 1 < NT ? tp + 1 : tp;
                        const int8_t *ya = yb[tp]->qs + 64 * c + 8 * jp, *yc = yb[tb]->qs + 64 * c + 8 * jp;
                        const int8x16_t yl = vcombine_s8(vld1_s8(ya), vld1_s8(yc));
                        const int8x16_t yh = vcombine_s8(vld1_s8(ya + 32), vld1_s8(yc + 32));
                        int32x4_t ml[4], mh[4]; /* [ra.ta, ra.tb, rb.ta, rb.tb] of row pair p */
                        for (int p = 0; p < 4; p++) {
                            ml[p] = vmmlaq_s32(vdupq_n_s32(0), wl[p], yl);
                            mh[p] = vmmlaq_s32(vdupq_n_s32(0), wh[p], yh);
                        }
                        for (int h = 0; h < 2; h++) { /* back to rows in lanes: token a, token b */
                            dlo[tp][h] = vaddq_s32(dlo[tp][h], vuzp1q_s32(ml[2 * h], ml[2 * h + 1]));
                            dhi[tp][h] = vaddq_s32(dhi[tp][h], vuzp1q_s32(mh[2 * h], mh[2 * h + 1]));
                            if (tb != tp) {
                                dlo[tb][h] = vaddq_s32(dlo[tb][h], vuzp2q_s32(ml[2 * h], ml[2 * h + 1]));
                                dhi[tb][h] = vaddq_s32(dhi[tb][h], vuzp2q_s32(mh[2 * h], mh[2 * h + 1]));
                            }
                        }
                    }
                }
            } else
#endif
            {
                for (int jq = 0; jq < 2; jq++) { /* vectors j = 4jq..4jq+3 against one 16-byte load of y */
                    int8x16_t lo[4][2], hi[4][2];
                    for (int l = 0; l < 4; l++)
                        for (int h = 0; h < 2; h++) {
                            const int j = 4 * jq + l;
                            kq_q45_x8_unpack(gqs + 128 * j + 32 * c + 16 * h, gqh ? gqh + 32 * j + 16 * h : NULL, c,
                                             &lo[l][h], &hi[l][h]);
                        }
                    for (int t = 0; t < NT; t++) {
                        const int8x16_t y0 = vld1q_s8(yb[t]->qs + 64 * c + 16 * jq);
                        const int8x16_t y1 = vld1q_s8(yb[t]->qs + 64 * c + 32 + 16 * jq);
                        for (int h = 0; h < 2; h++) {
                            dlo[t][h] = kq_dot_lanes(dlo[t][h], lo[0][h], lo[1][h], lo[2][h], lo[3][h], y0);
                            dhi[t][h] = kq_dot_lanes(dhi[t][h], hi[0][h], hi[1][h], hi[2][h], hi[3][h], y1);
                        }
                    }
                }
            }
            for (int t = 0; t < NT; t++) {
                const int16_t *bs = yb[t]->bsums + 4 * c;
                const int32_t b_lo = bs[0] + bs[1], b_hi = bs[2] + bs[3];
                for (int h = 0; h < 2; h++) {
                    int32x4_t v = vmlaq_s32(vmulq_s32(dlo[t][h], s_lo[h]), dhi[t][h], s_hi[h]);
                    int32x4_t mc = vmlaq_n_s32(vmulq_n_s32(mn_lo[h], b_lo), mn_hi[h], b_hi);
                    if (mode == KQ_K4_GEMM4) {
                        sacc[t][h] = vfmaq_f32(sacc[t][h], vcvtq_f32_s32(v), dd[t][h]);
                        macc[t][h] = vfmaq_f32(macc[t][h], vcvtq_f32_s32(mc), dm[t][h]);
                    } else {
                        vb[t][h] = vaddq_s32(vb[t][h], v);
                        mb[t][h] = vaddq_s32(mb[t][h], mc);
                    }
                }
            }
        }
        if (five)
            for (int t = 0; t < NT; t++)
                for (int h = 0; h < 2; h++) {
                    const float32x4_t r = vfmaq_f32(vmulq_f32(d8[h], vcvtq_f32_s32(vb[t][h])), vnegq_f32(m8[h]),
                                                    vcvtq_f32_s32(mb[t][h]));
                    sacc[t][h] = vfmaq_f32(sacc[t][h], r, vdupq_n_f32(yb[t]->d));
                }
        else if (mode != KQ_K4_GEMM4)
            for (int t = 0; t < NT; t++)
                for (int h = 0; h < 2; h++) {
                    sacc[t][h] = vfmaq_f32(sacc[t][h], vcvtq_f32_s32(vb[t][h]), dd[t][h]);
                    macc[t][h] = vfmaq_f32(macc[t][h], vcvtq_f32_s32(mb[t][h]), dm[t][h]);
                }
    }
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < 2; h++) vst1q_f32(y + t * ldy + 4 * h, five ? sacc[t][h] : vsubq_f32(sacc[t][h], macc[t][h]));
}

#if KQ_SMMLA
/* The tiled order's per-row block totals of one Q6_K group block for NT >= 2 tokens with SMMLA:
 * lanes j and j + 1 (same group) of rows (4h, 4h+1) and (4h+2, 4h+3) side by side, 2 rows x 2 tokens
 * per instruction, each tile scaled by its rows' scales; the -32 offset with the bsums at the end.
 * tot[t][h] += the exact totals of rows 4h..4h+3 for token t. */
KQ_INLINE void kq_q6_Kx8_totals_mm(const lfm_block_q6_Kx8 *gb, const lfm_block_q8_K *const *yb, const int NT,
                                   const int32x4_t s[16][2], int32x4_t tot[KQ_MAXT][2]) {
    int32x4_t m[KQ_MAXT / 2][4]; /* [token pair][row pair 2h + i]: [ra.ta, ra.tb, rb.ta, rb.tb] */
    for (int tp = 0; tp < (NT + 1) / 2; tp++)
        for (int p = 0; p < 4; p++) m[tp][p] = vdupq_n_s32(0);
    for (int jp = 0; jp < 4; jp++)
        for (int hh = 0; hh < 2; hh++) {
            int8x16_t q[2][2][4]; /* [j - 2jp][h][k] */
            for (int i = 0; i < 2; i++) {
                const uint8_t *p = gb->q + 192 * (2 * jp + i) + 96 * hh;
                for (int h = 0; h < 2; h++)
                    kq_q6_unpack(vld1q_u8(p + 16 * h), vld1q_u8(p + 32 + 16 * h), vld1q_u8(p + 64 + 16 * h), q[i][h]);
            }
            for (int k = 0; k < 4; k++) {
                const int gi = 8 * hh + 2 * k + (jp >= 2);
                for (int h = 0; h < 2; h++) {
                    const int32x4_t q0 = vreinterpretq_s32_s8(q[0][h][k]), q1 = vreinterpretq_s32_s8(q[1][h][k]);
                    const int8x16_t w0 = vreinterpretq_s8_s32(vzip1q_s32(q0, q1)); /* rows 4h, 4h+1 */
                    const int8x16_t w1 = vreinterpretq_s8_s32(vzip2q_s32(q0, q1)); /* rows 4h+2, 4h+3 */
                    const int32x4_t sv0 = vzip1q_s32(s[gi][h], s[gi][h]), sv1 = vzip2q_s32(s[gi][h], s[gi][h]);
                    for (int ta = 0; ta < NT; ta += 2) {
                        const int tb = ta + 1 < NT ? ta + 1 : ta, o = 128 * hh + 32 * k + 8 * jp;
                        const int8x16_t yz = vcombine_s8(vld1_s8(yb[ta]->qs + o), vld1_s8(yb[tb]->qs + o));
                        m[ta / 2][2 * h] = vmlaq_s32(m[ta / 2][2 * h], vmmlaq_s32(vdupq_n_s32(0), w0, yz), sv0);
                        m[ta / 2][2 * h + 1] = vmlaq_s32(m[ta / 2][2 * h + 1], vmmlaq_s32(vdupq_n_s32(0), w1, yz), sv1);
                    }
                }
            }
        }
    for (int ta = 0; ta < NT; ta += 2) {
        const int tb = ta + 1 < NT ? ta + 1 : ta;
        for (int h = 0; h < 2; h++) {
            tot[ta][h] = vaddq_s32(tot[ta][h], vuzp1q_s32(m[ta / 2][2 * h], m[ta / 2][2 * h + 1]));
            if (tb != ta) tot[tb][h] = vaddq_s32(tot[tb][h], vuzp2q_s32(m[ta / 2][2 * h], m[ta / 2][2 * h + 1]));
        }
    }
    for (int t = 0; t < NT; t++) /* the -32 offset: 32 * sum_g s[g] bsums[g] */
        for (int h = 0; h < 2; h++) {
            int32x4_t off = vdupq_n_s32(0);
            for (int g = 0; g < 16; g++) off = vmlaq_n_s32(off, s[g][h], yb[t]->bsums[g]);
            tot[t][h] = vsubq_s32(tot[t][h], vshlq_n_s32(off, 5));
        }
}
#endif

/* Q6_K, one 8-row group x NT tokens. tiled = 0: the row kernel's 8 lanes per row, lane j of the 8
 * rows in acc[t][j] (two vectors), hsum8 across them at the end; tiled = 1: per row and block d
 * times the exact integer total, then one fma with y.d. */
KQ_INLINE void kq_tile_q6_Kx8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                              const int NT, const int tiled) {
    float32x4_t acc[KQ_MAXT][8][2], tacc[KQ_MAXT][2];
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < 2; h++) {
            tacc[t][h] = vdupq_n_f32(0.0f);
            for (int j = 0; j < 8; j++) acc[t][j][h] = vdupq_n_f32(0.0f);
        }
    const lfm_block_q6_Kx8 *g = (const lfm_block_q6_Kx8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        kq_prefetch_lines((const uint8_t *)(g + ib), (int)sizeof *g);
        const lfm_block_q8_K *yb[KQ_MAXT];
        float32x4_t d8[2], dd[KQ_MAXT][2];
        kq_h2f8(g[ib].d, d8);
        int32x4_t tot[KQ_MAXT][2];
        for (int t = 0; t < NT; t++) {
            yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
            for (int h = 0; h < 2; h++) dd[t][h] = vmulq_n_f32(d8[h], yb[t]->d), tot[t][h] = vdupq_n_s32(0);
        }
        int32x4_t s[16][2]; /* s[g][h]: scale g of rows 4h..4h+3 */
        for (int k = 0; k < 8; k++) {
            const int8x16_t sp = vld1q_s8(g[ib].scales + 16 * k); /* (s[2k], s[2k+1]) of rows 0..7 */
            const int16x8_t ev = vmovl_s8(vget_low_s8(vuzp1q_s8(sp, sp))), od = vmovl_s8(vget_low_s8(vuzp2q_s8(sp, sp)));
            s[2 * k][0] = vmovl_s16(vget_low_s16(ev)), s[2 * k][1] = vmovl_high_s16(ev);
            s[2 * k + 1][0] = vmovl_s16(vget_low_s16(od)), s[2 * k + 1][1] = vmovl_high_s16(od);
        }
#if KQ_SMMLA
        if (tiled && NT >= 2)
            kq_q6_Kx8_totals_mm(&g[ib], yb, NT, s, tot);
        else
#endif
        for (int j = 0; j < 8; j++) {
            int32x4_t v[KQ_MAXT][2];
            for (int t = 0; t < NT; t++) { /* the -32 offset: 32 * (s[2j] bsum[2j] + s[2j+1] bsum[2j+1]) */
                const int16_t *bs = yb[t]->bsums + 2 * j;
                for (int h = 0; h < 2; h++)
                    v[t][h] = vnegq_s32(vshlq_n_s32(vmlaq_n_s32(vmulq_n_s32(s[2 * j][h], bs[0]), s[2 * j + 1][h], bs[1]), 5));
            }
            for (int hh = 0; hh < 2; hh++) {
                const uint8_t *p = g[ib].q + 192 * j + 96 * hh;
                int8x16_t q[2][4];
                for (int h = 0; h < 2; h++)
                    kq_q6_unpack(vld1q_u8(p + 16 * h), vld1q_u8(p + 32 + 16 * h), vld1q_u8(p + 64 + 16 * h), q[h]);
                for (int k = 0; k < 4; k++) {
                    const int gi = 8 * hh + 2 * k + (j >= 4); /* lanes 0..3: group 8hh + 2k, 4..7: + 1 */
                    for (int t = 0; t < NT; t++) {
                        const int8x16_t yv = kq_bcast4(yb[t]->qs + 128 * hh + 32 * k + 4 * j);
                        for (int h = 0; h < 2; h++)
                            v[t][h] = vmlaq_s32(v[t][h], neon_dot4(vdupq_n_s32(0), q[h][k], yv), s[gi][h]);
                    }
                }
            }
            for (int t = 0; t < NT; t++)
                for (int h = 0; h < 2; h++) {
                    if (tiled) tot[t][h] = vaddq_s32(tot[t][h], v[t][h]);
                    else acc[t][j][h] = vfmaq_f32(acc[t][j][h], vcvtq_f32_s32(v[t][h]), dd[t][h]);
                }
        }
        if (tiled)
            for (int t = 0; t < NT; t++)
                for (int h = 0; h < 2; h++)
                    tacc[t][h] = vfmaq_f32(tacc[t][h], vmulq_f32(d8[h], vcvtq_f32_s32(tot[t][h])), vdupq_n_f32(yb[t]->d));
    }
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < 2; h++) {
            float32x4_t out = tacc[t][h];
            if (!tiled) { /* hsum8 of each row's lanes: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
                float32x4_t(*a)[2] = acc[t];
                out = vaddq_f32(vaddq_f32(vaddq_f32(a[0][h], a[4][h]), vaddq_f32(a[2][h], a[6][h])),
                                vaddq_f32(vaddq_f32(a[1][h], a[5][h]), vaddq_f32(a[3][h], a[7][h])));
            }
            vst1q_f32(y + t * ldy + 4 * h, out);
        }
}

/* Q5_K, one 8-row group x NT tokens, below 8 tokens (mode K5): the row kernel's 8 lanes per row, lane
 * j of the 8 rows in acc[t][j] (two vectors) with one fma by y.d*d per block, the rows' min floats
 * in macc[t] (fma with -y.d*dmin), and hsum8 across the lanes plus macc at the end (tile_q5_Kx8 of
 * quants_x86.h). The qh vector and the four qs vectors of lane j hold exactly that lane's bytes. */
KQ_INLINE void kq_tile_q5_Kx8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                              const int NT, const int unused_mode) {
    (void)unused_mode;
    float32x4_t acc[KQ_MAXT][8][2], macc[KQ_MAXT][2];
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < 2; h++) {
            macc[t][h] = vdupq_n_f32(0.0f);
            for (int j = 0; j < 8; j++) acc[t][j][h] = vdupq_n_f32(0.0f);
        }
    const lfm_block_q5_Kx8 *g = (const lfm_block_q5_Kx8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        kq_prefetch_lines((const uint8_t *)(g + ib), (int)sizeof *g);
        const lfm_block_q8_K *yb[KQ_MAXT];
        float32x4_t d8[2], m8[2], dd[KQ_MAXT][2], ndm[KQ_MAXT][2];
        kq_h2f8(g[ib].d, d8);
        kq_h2f8(g[ib].dmin, m8);
        for (int t = 0; t < NT; t++) {
            yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
            for (int h = 0; h < 2; h++) {
                dd[t][h] = vmulq_n_f32(d8[h], yb[t]->d);   /* y.d * d */
                ndm[t][h] = vmulq_n_f32(m8[h], -yb[t]->d); /* -y.d * dmin */
            }
        }
        uint8x16_t sc[2][2], mn[2][2];
        kq_k4_scales_x8(g[ib].scales, sc, mn);
        int32x4_t s[8][2]; /* s[i][h]: scale i of rows 4h..4h+3 */
        for (int i = 0; i < 8; i++)
            for (int h = 0; h < 2; h++) s[i][h] = kq_lane_byte(sc[i / 4][h], i % 4);
        for (int t = 0; t < NT; t++) /* the exact min term of each row */
            for (int h = 0; h < 2; h++) {
                int32x4_t mins = vdupq_n_s32(0);
                for (int i = 0; i < 8; i++)
                    mins = vmlaq_n_s32(mins, kq_lane_byte(mn[i / 4][h], i % 4), yb[t]->bsums[2 * i] + yb[t]->bsums[2 * i + 1]);
                macc[t][h] = vfmaq_f32(macc[t][h], ndm[t][h], vcvtq_f32_s32(mins));
            }
        for (int j = 0; j < 8; j++) {
            int32x4_t v[KQ_MAXT][2];
            for (int t = 0; t < NT; t++) v[t][0] = v[t][1] = vdupq_n_s32(0);
            for (int c = 0; c < 4; c++) {
                int8x16_t lo[2], hi[2];
                for (int h = 0; h < 2; h++)
                    kq_q45_x8_unpack(g[ib].qs + 128 * j + 32 * c + 16 * h, g[ib].qh + 32 * j + 16 * h, c, &lo[h], &hi[h]);
                for (int t = 0; t < NT; t++) {
                    const int8x16_t y0 = kq_bcast4(yb[t]->qs + 64 * c + 4 * j), y1 = kq_bcast4(yb[t]->qs + 64 * c + 32 + 4 * j);
                    for (int h = 0; h < 2; h++) {
                        v[t][h] = vmlaq_s32(v[t][h], neon_dot4_a127(vdupq_n_s32(0), lo[h], y0), s[2 * c][h]);
                        v[t][h] = vmlaq_s32(v[t][h], neon_dot4_a127(vdupq_n_s32(0), hi[h], y1), s[2 * c + 1][h]);
                    }
                }
            }
            for (int t = 0; t < NT; t++)
                for (int h = 0; h < 2; h++) acc[t][j][h] = vfmaq_f32(acc[t][j][h], dd[t][h], vcvtq_f32_s32(v[t][h]));
        }
    }
    for (int t = 0; t < NT; t++)
        for (int h = 0; h < 2; h++) { /* hsum8 of each row's lanes, then its min float */
            float32x4_t(*a)[2] = acc[t];
            const float32x4_t sum = vaddq_f32(vaddq_f32(vaddq_f32(a[0][h], a[4][h]), vaddq_f32(a[2][h], a[6][h])),
                                              vaddq_f32(vaddq_f32(a[1][h], a[5][h]), vaddq_f32(a[3][h], a[7][h])));
            vst1q_f32(y + t * ldy + 4 * h, vaddq_f32(sum, macc[t][h]));
        }
}

typedef void (*kq_tile_x8_fn)(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy);

#define KQ_X8_FNS(T, CALL, MODE)                                                                                   \
    static void T##_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { CALL(nb, w, x, bx, y, ldy, 1, MODE); } \
    static void T##_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { CALL(nb, w, x, bx, y, ldy, 2, MODE); } \
    static void T##_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { CALL(nb, w, x, bx, y, ldy, 3, MODE); } \
    static void T##_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { CALL(nb, w, x, bx, y, ldy, 4, MODE); } \
    static const kq_tile_x8_fn T##_tiles[4] = {T##_1, T##_2, T##_3, T##_4};

KQ_X8_FNS(kq_q4_Kx8, kq_tile_q45_Kx8, KQ_K4_BLOCK)
KQ_X8_FNS(kq_q4_Kx8g, kq_tile_q45_Kx8, KQ_K4_GEMM4)
KQ_X8_FNS(kq_q5_Kx8, kq_tile_q5_Kx8, 0)
KQ_X8_FNS(kq_q5_Kx8t, kq_tile_q45_Kx8, KQ_K5_TILED)
KQ_X8_FNS(kq_q6_Kx8, kq_tile_q6_Kx8, 0)
KQ_X8_FNS(kq_q6_Kx8t, kq_tile_q6_Kx8, 1)

/* 8-row groups x tiles of up to 4 tokens, the tokens in chunks whose activations stay in L2 */
static void kq_mm_k_x8(const kq_tile_x8_fn tiles[4], int64_t n, const uint8_t *w, size_t bw, int64_t nr,
                       const uint8_t *x, size_t bx, int64_t nt, float *y, int64_t ldy) {
    const int64_t nb = n / LFM_QK_K, chunk = lfm_max64(4, lfm_min64(64, (int64_t)((256 << 10) / bx)));
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        int64_t t1 = lfm_min64(nt, t0 + chunk);
        for (int64_t r = 0; r < nr; r += 8)
            for (int64_t t = t0; t < t1; t += 4) {
                int64_t tt = lfm_min64(4, t1 - t);
                tiles[tt - 1](nb, w + (size_t)r * bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
    }
}

/* the token split of kq_mm_q4_K: groups of 4 through the GEMM order, the rest one by one */
static void kq_mm_q4_K_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                          float *y, int64_t ldy) {
    const int64_t grouped = nt > 3 ? nt - nt % 4 : 0;
    if (grouped) kq_mm_k_x8(kq_q4_Kx8g_tiles, n, w, bw, nr, x, bx, grouped, y, ldy);
    if (nt > grouped)
        kq_mm_k_x8(kq_q4_Kx8_tiles, n, w, bw, nr, x + (size_t)grouped * bx, bx, nt - grouped, y + grouped * ldy, ldy);
}

/* every token in the one-token order (llama.cpp's repacked MUL_MAT_ID) */
static void kq_mm_q4_K_x8_tok(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                              float *y, int64_t ldy) {
    kq_mm_k_x8(kq_q4_Kx8_tiles, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void kq_mm_q5_K_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                          float *y, int64_t ldy) {
    kq_mm_k_x8(nt >= 8 ? kq_q5_Kx8t_tiles : kq_q5_Kx8_tiles, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void kq_mm_q6_K_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                          float *y, int64_t ldy) {
    kq_mm_k_x8(nt >= 8 ? kq_q6_Kx8t_tiles : kq_q6_Kx8_tiles, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void neon_init_k(lfm_qkernels *k) {
    k->mm[LFM_TYPE_Q4_K] = kq_mm_q4_K;
    k->mm[LFM_TYPE_Q5_K] = kq_mm_q5_K;
    k->mm[LFM_TYPE_Q6_K] = kq_mm_q6_K;
    k->mm_x8[LFM_TYPE_Q4_K] = kq_mm_q4_K_x8;
    k->mm_x8_tok[LFM_TYPE_Q4_K] = kq_mm_q4_K_x8_tok;
    k->mm_x8[LFM_TYPE_Q5_K] = kq_mm_q5_K_x8;
    k->mm_x8[LFM_TYPE_Q6_K] = kq_mm_q6_K_x8;
}

#endif /* __aarch64__ */
