/* quants_neon_32.h — arm64 kernels of the 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, their
 * X8 layouts) and the activation quantizers, at the level of the including file (quants_neon*.c).
 *
 * Each kernel gives the bits of its x86 twin in kernels/x86/quants_avx2.c (and of the scalar order
 * oracle, quants/quants_oracle.c): the integer lanes hold the same elements (int32 lane j of a
 * 32-byte chunk = its bytes 4j..4j+3; lanes 0..3 from the first 16 bytes, 4..7 from the second),
 * the floats go through the same operations in the same order (one vfmaq_f32 where AVX2 fuses,
 * neon_hsum8 where it sums horizontally). The int8 products come from neon_dot4: SDOT with dotprod,
 * widening multiplies and pairwise adds on plain NEON, exact either way. SMMLA (i8mm) serves only
 * Q4_0's X8 layout, whose order reduces a whole block of each row to one exact int32: the row
 * kernels keep 8 lanes per row, which 2x2 tiles of 8-byte dots cannot give.
 *
 * Tiles follow the AVX2 drivers: up to 4 weight rows x 3 tokens per row-layout tile (decode runs
 * 4x1 tiles), 8-row groups x up to 4 tokens for the X8 layouts, token chunks that stay in cache.
 * All names start with q32_ (quants_neon_k.h is included in the same translation unit). */

#include <float.h>
#include <math.h>

/* ---- activation quantization (the bytes of quants_ref.c and the AVX2 level) ---- */

/* max |x| over 4*n4 floats, or NaN when one of them is NaN or +-inf (the block then takes the
 * non-finite encoding of quants.h). FMAX would carry a NaN along anyway, but not an infinity: the
 * finite lanes are tracked apart. */
NEON_INLINE float q32_absmax(const float *x, int n4) {
    const float32x4_t inf = vdupq_n_f32(INFINITY);
    float32x4_t m0 = vdupq_n_f32(0.0f), m1 = m0;
    uint32x4_t finite = vdupq_n_u32(~0u);
    for (int k = 0; k < n4; k += 2) {
        const float32x4_t a0 = vabsq_f32(vld1q_f32(x + 4 * k)), a1 = vabsq_f32(vld1q_f32(x + 4 * k + 4));
        m0 = vmaxq_f32(m0, a0);
        m1 = vmaxq_f32(m1, a1);
        finite = vandq_u32(finite, vandq_u32(vcltq_f32(a0, inf), vcltq_f32(a1, inf))); /* false for NaN too */
    }
    return vminvq_u32(finite) ? vmaxvq_f32(vmaxq_f32(m0, m1)) : NAN;
}

/* 16 floats times id, rounded to nearest even (FCVTNS, as cvtps_epi32 in the default mode), stored
 * as int8 with the saturation of packs_epi32 / packs_epi16; returns the unsaturated int32 values'
 * 4-lane sum, as the AVX2 quantizer sums before packing. */
NEON_INLINE int32x4_t q32_quant16(const float *x, float32x4_t id, int8_t *dst) {
    const int32x4_t i0 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x), id));
    const int32x4_t i1 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 4), id));
    const int32x4_t i2 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 8), id));
    const int32x4_t i3 = vcvtnq_s32_f32(vmulq_f32(vld1q_f32(x + 12), id));
    const int16x8_t h0 = vqmovn_high_s32(vqmovn_s32(i0), i1), h1 = vqmovn_high_s32(vqmovn_s32(i2), i3);
    vst1q_s8(dst, vqmovn_high_s16(vqmovn_s16(h0), h1));
    return vaddq_s32(vaddq_s32(i0, i1), vaddq_s32(i2, i3));
}

/* A finite block too small for its multiplier (max |x| < 127/FLT_MAX: 127/amax is inf) is the one
 * case where the float->int conversions differ: x86's gives INT32_MIN for +-inf and NaN (every
 * quant -128, the int32 sums wrapping to 0), FCVTNS saturates. quants_ref.c stores x86's bytes
 * (its OVERFLOWED_SCALE), and so do these; the block adds exactly 0 to any dot product. */
#define Q32_OVERFLOWED_SCALE_Q 0x80

static void q32_act_q8_0(const float *x, void *dst, int64_t n) {
    lfm_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / LFM_QK; i++, x += LFM_QK) {
        const float amax = q32_absmax(x, 8);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_0(&y[i]);
            continue;
        }
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = lfm_float_to_half(amax / 127.0f);
        if (id > FLT_MAX) {
            memset(y[i].qs, Q32_OVERFLOWED_SCALE_Q, sizeof y[i].qs);
            continue;
        }
        const float32x4_t vid = vdupq_n_f32(id);
        q32_quant16(x, vid, y[i].qs);
        q32_quant16(x + 16, vid, y[i].qs + 16);
    }
}

static void q32_act_q8_1(const float *x, void *dst, int64_t n) {
    lfm_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / LFM_QK; i++, x += LFM_QK) {
        const float amax = q32_absmax(x, 8);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_1(&y[i]);
            continue;
        }
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        int sum = 0;
        if (id > FLT_MAX) {
            memset(y[i].qs, Q32_OVERFLOWED_SCALE_Q, sizeof y[i].qs);
        } else {
            const float32x4_t vid = vdupq_n_f32(id);
            sum = vaddvq_s32(vaddq_s32(q32_quant16(x, vid, y[i].qs), q32_quant16(x + 16, vid, y[i].qs + 16)));
        }
        y[i].d = lfm_float_to_half(d);
        y[i].s = lfm_float_to_half(d * (float)sum);
    }
}

/* Q8_K as llama.cpp forms it (see quants_ref.c): scale from the signed largest element. */
static void q32_act_q8_K(const float *x, void *dst, int64_t n) {
    lfm_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / LFM_QK_K; i++, x += LFM_QK_K) {
        const float amax = q32_absmax(x, 64);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_K(&y[i]);
            continue;
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* amax is finite here and is |x[j]| for some j; the bound keeps the search in the block */
        int j = 0;
        while (j < LFM_QK_K - 1 && fabsf(x[j]) != amax) j++;
        const float iscale = -127.0f / x[j];
        y[i].d = 1.0f / iscale;
        if (!(fabsf(iscale) <= FLT_MAX)) {
            memset(y[i].qs, Q32_OVERFLOWED_SCALE_Q, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float32x4_t vid = vdupq_n_f32(iscale);
        for (int g = 0; g < LFM_QK_K / 16; g++)
            y[i].bsums[g] = (int16_t)vaddvq_s32(q32_quant16(x + 16 * g, vid, y[i].qs + 16 * g));
    }
}

/* ---- row layout: tiles of NR weight rows x NT activation rows ---- */

#define Q32_MAXR 4
#define Q32_MAXT 3

/* the 16 packed bytes of a Q4/Q5 block: low nibbles (elements 0..15) and high ones (16..31) */
NEON_INLINE void q32_nibbles(const uint8_t *qs, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(qs);
    *lo = vandq_u8(v, vdupq_n_u8(0x0f));
    *hi = vshrq_n_u8(v, 4);
}

/* Q5's fifth bits: bit e of the 32 at qh as 0x10 in byte e (lo: e < 16, hi: 16 <= e < 32) */
NEON_INLINE void q32_fifth_bits(const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi) {
    const uint8x16_t bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040201008040201ULL)), b4 = vdupq_n_u8(0x10);
    *lo = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1])), bit), b4);
    *hi = vandq_u8(vtstq_u8(vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3])), bit), b4);
}

enum { Q32_Q4 = 0, Q32_Q5 = 1, Q32_Q8 = 2 };

/* Q4_0 / Q5_0 / Q8_0 against Q8_0: the weights as signed int8 (q - 8, q - 16, q), so each lane is
 * the exact sum of (q - z) * y over its 4 bytes, as in tile_qx_0 / tile_q8_0; then per lane one FMA
 * by dw*dy per block, hsum8 at the end. */
NEON_INLINE void q32_tile_x0(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                             int64_t ldy, const int NR, const int NT, const int kind) {
    float32x4_t acc[Q32_MAXR][Q32_MAXT][2];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = vdupq_n_f32(0.0f);
    const int32x4_t zero = vdupq_n_s32(0);
    for (int64_t ib = 0; ib < nb; ib++) {
        int8x16_t ylo[Q32_MAXT], yhi[Q32_MAXT];
        float dy[Q32_MAXT];
        for (int t = 0; t < NT; t++) {
            const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
            ylo[t] = vld1q_s8(xb->qs);
            yhi[t] = vld1q_s8(xb->qs + 16);
            dy[t] = neon_h2f(xb->d);
        }
        for (int r = 0; r < NR; r++) {
            int8x16_t qlo, qhi;
            float dw;
            if (kind == Q32_Q8) {
                const lfm_block_q8_0 *wb = (const lfm_block_q8_0 *)(const void *)(w + r * bw) + ib;
                qlo = vld1q_s8(wb->qs), qhi = vld1q_s8(wb->qs + 16);
                dw = neon_h2f(wb->d);
            } else if (kind == Q32_Q5) {
                const lfm_block_q5_0 *wb = (const lfm_block_q5_0 *)(const void *)(w + r * bw) + ib;
                uint8x16_t lo, hi, blo, bhi;
                q32_nibbles(wb->qs, &lo, &hi);
                q32_fifth_bits(wb->qh, &blo, &bhi);
                qlo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, blo)), vdupq_n_s8(16));
                qhi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, bhi)), vdupq_n_s8(16));
                dw = neon_h2f(wb->d);
            } else {
                const lfm_block_q4_0 *wb = (const lfm_block_q4_0 *)(const void *)(w + r * bw) + ib;
                uint8x16_t lo, hi;
                q32_nibbles(wb->qs, &lo, &hi);
                qlo = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(8));
                qhi = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(8));
                dw = neon_h2f(wb->d);
            }
            for (int t = 0; t < NT; t++) {
                const float32x4_t dd = vdupq_n_f32(dw * dy[t]);
                /* Q8_0 weights (and the activations of an overflowed block) may be -128 */
                const int32x4_t s0 = kind == Q32_Q8 ? neon_dot4(zero, qlo, ylo[t]) : neon_dot4_a127(zero, qlo, ylo[t]);
                const int32x4_t s1 = kind == Q32_Q8 ? neon_dot4(zero, qhi, yhi[t]) : neon_dot4_a127(zero, qhi, yhi[t]);
                acc[r][t][0] = vfmaq_f32(acc[r][t][0], vcvtq_f32_s32(s0), dd);
                acc[r][t][1] = vfmaq_f32(acc[r][t][1], vcvtq_f32_s32(s1), dd);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = neon_hsum8(acc[r][t][0], acc[r][t][1]);
}

/* Q4_1 / Q5_1 against Q8_1: d*q + m  ->  dw*dy*sum(q*y) in the 8 lanes (q unsigned, < 32, so it
 * is also a valid int8), mw*sy as one float per row and token, product then sum (tile_qx_1). */
NEON_INLINE void q32_tile_x1(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                             int64_t ldy, const int NR, const int NT, const int kind) {
    float32x4_t acc[Q32_MAXR][Q32_MAXT][2];
    float accm[Q32_MAXR][Q32_MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t][0] = acc[r][t][1] = vdupq_n_f32(0.0f), accm[r][t] = 0.0f;
    const int32x4_t zero = vdupq_n_s32(0);
    for (int64_t ib = 0; ib < nb; ib++) {
        int8x16_t ylo[Q32_MAXT], yhi[Q32_MAXT];
        float dy[Q32_MAXT], sy[Q32_MAXT];
        for (int t = 0; t < NT; t++) {
            const lfm_block_q8_1 *xb = (const lfm_block_q8_1 *)(const void *)(x + t * bx) + ib;
            ylo[t] = vld1q_s8(xb->qs);
            yhi[t] = vld1q_s8(xb->qs + 16);
            dy[t] = neon_h2f(xb->d);
            sy[t] = neon_h2f(xb->s);
        }
        for (int r = 0; r < NR; r++) {
            uint8x16_t lo, hi;
            float dw, mw;
            if (kind == Q32_Q5) {
                const lfm_block_q5_1 *wb = (const lfm_block_q5_1 *)(const void *)(w + r * bw) + ib;
                uint8x16_t blo, bhi;
                q32_nibbles(wb->qs, &lo, &hi);
                q32_fifth_bits(wb->qh, &blo, &bhi);
                lo = vorrq_u8(lo, blo), hi = vorrq_u8(hi, bhi);
                dw = neon_h2f(wb->d), mw = neon_h2f(wb->m);
            } else {
                const lfm_block_q4_1 *wb = (const lfm_block_q4_1 *)(const void *)(w + r * bw) + ib;
                q32_nibbles(wb->qs, &lo, &hi);
                dw = neon_h2f(wb->d), mw = neon_h2f(wb->m);
            }
            const int8x16_t qlo = vreinterpretq_s8_u8(lo), qhi = vreinterpretq_s8_u8(hi);
            for (int t = 0; t < NT; t++) {
                const float32x4_t dd = vdupq_n_f32(dw * dy[t]);
                acc[r][t][0] = vfmaq_f32(acc[r][t][0], vcvtq_f32_s32(neon_dot4_a127(zero, qlo, ylo[t])), dd);
                acc[r][t][1] = vfmaq_f32(acc[r][t][1], vcvtq_f32_s32(neon_dot4_a127(zero, qhi, yhi[t])), dd);
                const float m = mw * sy[t];
                accm[r][t] = accm[r][t] + m;
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = neon_hsum8(acc[r][t][0], acc[r][t][1]) + accm[r][t];
}

typedef void (*q32_tile_fn)(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y,
                            int64_t ldy);

/* Decode: 4x1 tiles down the rows. Prefill: the tokens in chunks that stay in L2, and inside a
 * chunk 4-row x 3-token tiles so each weight tile is read from memory once per chunk. */
static void q32_mm_tiled(const q32_tile_fn tiles[Q32_MAXR][Q32_MAXT], int64_t nb, const uint8_t *w, size_t bw,
                         int64_t nr, const uint8_t *x, size_t bx, int64_t nt, float *y, int64_t ldy) {
    const int64_t CHUNK = 48;
    for (int64_t t0 = 0; t0 < nt; t0 += CHUNK) {
        const int64_t t1 = lfm_min64(nt, t0 + CHUNK);
        for (int64_t r = 0; r < nr; r += Q32_MAXR) {
            const int64_t rr = lfm_min64(Q32_MAXR, nr - r);
            for (int64_t t = t0; t < t1; t += Q32_MAXT) {
                const int64_t tt = lfm_min64(Q32_MAXT, t1 - t);
                tiles[rr - 1][tt - 1](nb, w + (size_t)r * bw, bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
        }
    }
}

/* q32_T_RN: BASE(..., R rows, N tokens, KIND); q32_mm_T runs the matmul through them. */
#define Q32_TILE(T, BASE, KIND, R, N)                                                                          \
    static void q32_##T##_##R##N(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, \
                                 int64_t ldy) {                                                                \
        BASE(nb, w, bw, x, bx, y, ldy, R, N, KIND);                                                            \
    }
#define Q32_TILE_FNS(T, BASE, KIND)                                                                            \
    Q32_TILE(T, BASE, KIND, 1, 1) Q32_TILE(T, BASE, KIND, 1, 2) Q32_TILE(T, BASE, KIND, 1, 3)                  \
    Q32_TILE(T, BASE, KIND, 2, 1) Q32_TILE(T, BASE, KIND, 2, 2) Q32_TILE(T, BASE, KIND, 2, 3)                  \
    Q32_TILE(T, BASE, KIND, 3, 1) Q32_TILE(T, BASE, KIND, 3, 2) Q32_TILE(T, BASE, KIND, 3, 3)                  \
    Q32_TILE(T, BASE, KIND, 4, 1) Q32_TILE(T, BASE, KIND, 4, 2) Q32_TILE(T, BASE, KIND, 4, 3)                  \
    static void q32_mm_##T(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx,     \
                           int64_t nt, float *y, int64_t ldy) {                                                \
        static const q32_tile_fn tiles[Q32_MAXR][Q32_MAXT] = {{q32_##T##_11, q32_##T##_12, q32_##T##_13},     \
                                                              {q32_##T##_21, q32_##T##_22, q32_##T##_23},     \
                                                              {q32_##T##_31, q32_##T##_32, q32_##T##_33},     \
                                                              {q32_##T##_41, q32_##T##_42, q32_##T##_43}};    \
        q32_mm_tiled(tiles, n / LFM_QK, w, bw, nr, x, bx, nt, y, ldy);                                         \
    }

Q32_TILE_FNS(q4_0, q32_tile_x0, Q32_Q4)
Q32_TILE_FNS(q5_0, q32_tile_x0, Q32_Q5)
Q32_TILE_FNS(q8_0, q32_tile_x0, Q32_Q8)
Q32_TILE_FNS(q4_1, q32_tile_x1, Q32_Q4)
Q32_TILE_FNS(q5_1, q32_tile_x1, Q32_Q5)

/* ---- X8 layouts: 8 rows per group, row r of a 4-row half in int32 lane r ---- */

/* Ask for the cache lines `ahead` bytes past p: the group blocks are one front-to-back stream, and
 * for short rows the hardware prefetcher alone does not run far enough ahead (as on x86). */
#ifndef Q32_PREFETCH_AHEAD
#define Q32_PREFETCH_AHEAD 2048
#endif
NEON_INLINE void q32_prefetch(const void *p, int bytes) {
    if (Q32_PREFETCH_AHEAD <= 0) return;
    for (int o = 0; o < bytes; o += 64) __builtin_prefetch((const uint8_t *)p + Q32_PREFETCH_AHEAD + o, 0, 3);
}

/* an X8 tile: one 8-row group against nt tokens (nt fixed per function) */
typedef void (*q32_tile_x8_fn)(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy);

/* 8-row groups x tiles of up to max_nt tokens (tiles[k] takes k + 1), tokens in chunks of `chunk` */
static void q32_x8_drive(const q32_tile_x8_fn *tiles, int64_t max_nt, int64_t nb, int64_t chunk, const uint8_t *w,
                         size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt, float *y, int64_t ldy) {
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        const int64_t t1 = lfm_min64(nt, t0 + chunk);
        for (int64_t r = 0; r < nr; r += 8)
            for (int64_t t = t0; t < t1; t += max_nt) {
                const int64_t tt = lfm_min64(max_nt, t1 - t);
                tiles[tt - 1](nb, w + (size_t)r * bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
    }
}

/* ---- Q4_0 in LFM_LAYOUT_X8 (llama.cpp's repacked order) ----
 *
 * Per row and block one exact int32, sum of (q - 8) * y over the 32 elements, then one FMA by
 * dw*dy. The integer may be formed in any grouping: here the unsigned nibbles' dot minus 8 times the
 * activation block's sum. Vector k of half h (16 bytes at qs + 32k + 16h) holds bytes 4k..4k+3 of
 * rows 4h..4h+3: their low nibbles are elements 4k..4k+3 (against activation group k of bytes
 * 0..15), their high nibbles elements 16+4k.. (group k of bytes 16..31). */

/* sum of the 32 int8 of an activation block */
NEON_INLINE int32_t q32_block_sum(int8x16_t lo, int8x16_t hi) {
    return (int32_t)vaddlvq_s8(lo) + (int32_t)vaddlvq_s8(hi);
}

/* One token into the 8 rows' float lanes: SDOT by 4-byte groups, or plain NEON's int16 sums. */
NEON_INLINE void q32_q4_0x8_token(const uint8x16_t raw[4][2], float32x4_t d0, float32x4_t d1, const lfm_block_q8_0 *xb,
                                  float32x4_t acc[2]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int8x16_t yl = vld1q_s8(xb->qs), yh = vld1q_s8(xb->qs + 16);
    const int32x4_t offset = vdupq_n_s32(8 * q32_block_sum(yl, yh));
    int32x4_t s[2];
#if defined(__ARM_FEATURE_DOTPROD)
    for (int h = 0; h < 2; h++) {
        int32x4_t v = vnegq_s32(offset);
#define Q32_Q4X8_STEP(k)                                                                           \
    v = vdotq_laneq_s32(v, vreinterpretq_s8_u8(vandq_u8(raw[k][h], m4)), yl, k);                    \
    v = vdotq_laneq_s32(v, vreinterpretq_s8_u8(vshrq_n_u8(raw[k][h], 4)), yh, k);
        Q32_Q4X8_STEP(0) Q32_Q4X8_STEP(1) Q32_Q4X8_STEP(2) Q32_Q4X8_STEP(3)
#undef Q32_Q4X8_STEP
        s[h] = v;
    }
#else
    /* A row's 8 products per lane (nibble < 16 times int8) add up within int16 (8 * 15 * 128 < 2^15):
     * multiply-accumulate in int16 (rows 4h, 4h+1 in the low 8 bytes, 4h+2, 4h+3 in the high ones),
     * widen once. */
    int8x8_t yb[8]; /* activation group k of bytes 0..15 (k < 4) or 16..31 (k >= 4), in both halves */
    yb[0] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yl), 0));
    yb[1] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yl), 1));
    yb[2] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yl), 2));
    yb[3] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yl), 3));
    yb[4] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yh), 0));
    yb[5] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yh), 1));
    yb[6] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yh), 2));
    yb[7] = vreinterpret_s8_s32(vdup_laneq_s32(vreinterpretq_s32_s8(yh), 3));
    for (int h = 0; h < 2; h++) {
        int16x8_t a01 = vdupq_n_s16(0), a23 = vdupq_n_s16(0);
        for (int k = 0; k < 4; k++) {
            const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(raw[k][h], m4));
            const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(raw[k][h], 4));
            a01 = vmlal_s8(a01, vget_low_s8(lo), yb[k]);
            a23 = vmlal_s8(a23, vget_high_s8(lo), yb[k]);
            a01 = vmlal_s8(a01, vget_low_s8(hi), yb[4 + k]);
            a23 = vmlal_s8(a23, vget_high_s8(hi), yb[4 + k]);
        }
        s[h] = vsubq_s32(vpaddq_s32(vpaddlq_s16(a01), vpaddlq_s16(a23)), offset);
    }
#endif
    const float dx = neon_h2f(xb->d);
    acc[0] = vfmaq_f32(acc[0], vcvtq_f32_s32(s[0]), vmulq_n_f32(d0, dx));
    acc[1] = vfmaq_f32(acc[1], vcvtq_f32_s32(s[1]), vmulq_n_f32(d1, dx));
}

#if defined(__ARM_FEATURE_MATMUL_INT8)
/* Two tokens by SMMLA: a = 8 contiguous bytes of two rows (vzip of vectors k, k+1 of a half; low
 * nibbles: elements 8m..8m+7 for the pair m = k/2, high nibbles 16 + 8m..), b = the same 8
 * elements of the two tokens; each tile is [row i tok 0, row i tok 1, row i+1 tok 0, row i+1 tok 1].
 * Tokens xa and xb may be the same block (an odd last token). */
NEON_INLINE void q32_q4_0x8_token_pair(const uint8x16_t raw[4][2], float32x4_t d0, float32x4_t d1,
                                       const lfm_block_q8_0 *xa, const lfm_block_q8_0 *xb, float32x4_t acc_a[2],
                                       float32x4_t acc_b[2]) {
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int8x16_t al = vld1q_s8(xa->qs), ah = vld1q_s8(xa->qs + 16);
    const int8x16_t bl = vld1q_s8(xb->qs), bh = vld1q_s8(xb->qs + 16);
    /* elements 8m..8m+7 of token a, then of token b */
    int8x16_t yy[4];
    yy[0] = vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(al), vreinterpretq_s64_s8(bl)));
    yy[1] = vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(al), vreinterpretq_s64_s8(bl)));
    yy[2] = vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(ah), vreinterpretq_s64_s8(bh)));
    yy[3] = vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(ah), vreinterpretq_s64_s8(bh)));
    const int32_t sa = 8 * q32_block_sum(al, ah), sb = 8 * q32_block_sum(bl, bh);
    int32x4_t p[4]; /* row pairs (0,1), (2,3), (4,5), (6,7) */
    for (int rp = 0; rp < 4; rp++) p[rp] = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++)
        for (int m = 0; m < 2; m++) {
            const uint32x4_t v0 = vreinterpretq_u32_u8(raw[2 * m][h]), v1 = vreinterpretq_u32_u8(raw[2 * m + 1][h]);
            const uint8x16_t rows01 = vreinterpretq_u8_u32(vzip1q_u32(v0, v1)); /* rows 4h, 4h+1 */
            const uint8x16_t rows23 = vreinterpretq_u8_u32(vzip2q_u32(v0, v1)); /* rows 4h+2, 4h+3 */
            p[2 * h] = vmmlaq_s32(p[2 * h], vreinterpretq_s8_u8(vandq_u8(rows01, m4)), yy[m]);
            p[2 * h] = vmmlaq_s32(p[2 * h], vreinterpretq_s8_u8(vshrq_n_u8(rows01, 4)), yy[2 + m]);
            p[2 * h + 1] = vmmlaq_s32(p[2 * h + 1], vreinterpretq_s8_u8(vandq_u8(rows23, m4)), yy[m]);
            p[2 * h + 1] = vmmlaq_s32(p[2 * h + 1], vreinterpretq_s8_u8(vshrq_n_u8(rows23, 4)), yy[2 + m]);
        }
    /* per token, rows 0..3 and 4..7 in lane order, minus 8 times the token's block sum */
    const int32x4_t a0 = vsubq_s32(vuzp1q_s32(p[0], p[1]), vdupq_n_s32(sa));
    const int32x4_t a1 = vsubq_s32(vuzp1q_s32(p[2], p[3]), vdupq_n_s32(sa));
    const int32x4_t b0 = vsubq_s32(vuzp2q_s32(p[0], p[1]), vdupq_n_s32(sb));
    const int32x4_t b1 = vsubq_s32(vuzp2q_s32(p[2], p[3]), vdupq_n_s32(sb));
    const float dxa = neon_h2f(xa->d), dxb = neon_h2f(xb->d);
    acc_a[0] = vfmaq_f32(acc_a[0], vcvtq_f32_s32(a0), vmulq_n_f32(d0, dxa));
    acc_a[1] = vfmaq_f32(acc_a[1], vcvtq_f32_s32(a1), vmulq_n_f32(d1, dxa));
    acc_b[0] = vfmaq_f32(acc_b[0], vcvtq_f32_s32(b0), vmulq_n_f32(d0, dxb));
    acc_b[1] = vfmaq_f32(acc_b[1], vcvtq_f32_s32(b1), vmulq_n_f32(d1, dxb));
}
#endif

/* 8 rows (one group) x NT tokens; at the i8mm level 2+ tokens go in pairs through SMMLA (an odd
 * last one paired with itself, its second result dropped), one token through SDOT. */
NEON_INLINE void q32_tile_q4_0x8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                                 const int NT) {
    float32x4_t acc[4][2];
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
    const lfm_block_q4_0x8 *g = (const lfm_block_q4_0x8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        q32_prefetch(g + ib, (int)sizeof *g);
        uint8x16_t raw[4][2];
        for (int k = 0; k < 4; k++) {
            raw[k][0] = vld1q_u8(g[ib].qs + 32 * k);
            raw[k][1] = vld1q_u8(g[ib].qs + 32 * k + 16);
        }
        const float32x4_t d0 = neon_h2f4(g[ib].d), d1 = neon_h2f4(g[ib].d + 4);
#if defined(__ARM_FEATURE_MATMUL_INT8)
        if (NT >= 2) {
            for (int t = 0; t < NT; t += 2) {
                const lfm_block_q8_0 *xa = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
                if (t + 1 < NT) {
                    const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + (t + 1) * bx) + ib;
                    q32_q4_0x8_token_pair(raw, d0, d1, xa, xb, acc[t], acc[t + 1]);
                } else {
                    float32x4_t unused[2] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
                    q32_q4_0x8_token_pair(raw, d0, d1, xa, xa, acc[t], unused);
                }
            }
            continue;
        }
#endif
        for (int t = 0; t < NT; t++)
            q32_q4_0x8_token(raw, d0, d1, (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib, acc[t]);
    }
    for (int t = 0; t < NT; t++) {
        vst1q_f32(y + t * ldy, acc[t][0]);
        vst1q_f32(y + t * ldy + 4, acc[t][1]);
    }
}

static void q32_q4_0x8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { q32_tile_q4_0x8(nb, w, x, bx, y, ldy, 1); }
static void q32_q4_0x8_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { q32_tile_q4_0x8(nb, w, x, bx, y, ldy, 2); }
static void q32_q4_0x8_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { q32_tile_q4_0x8(nb, w, x, bx, y, ldy, 3); }
static void q32_q4_0x8_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { q32_tile_q4_0x8(nb, w, x, bx, y, ldy, 4); }

static void q32_mm_q4_0_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                           float *y, int64_t ldy) {
    static const q32_tile_x8_fn tiles[4] = {q32_q4_0x8_1, q32_q4_0x8_2, q32_q4_0x8_3, q32_q4_0x8_4};
    q32_x8_drive(tiles, 4, n / LFM_QK, 64, w, bw, nr, x, bx, nt, y, ldy);
}

/* ---- Q8_0 in LFM_LAYOUT_X8 ----
 *
 * Vector k of a group block (32 bytes at qs + 32k) holds bytes 4k..4k+3 of the 8 rows: row by row,
 * lane k of the row kernel. One float accumulator pair per k, summed at the end in the row kernel's
 * horizontal order, gives the row layout's bits, 8 rows at a time. The 16 accumulators fill half
 * the register file, so a tile is one token (x86 takes two in its 16 registers, spilling); the
 * group's weights are re-read from cache for the next token. */
static void q32_q8_0x8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) {
    (void)bx, (void)ldy;
    float32x4_t acc[8][2];
    for (int k = 0; k < 8; k++) acc[k][0] = acc[k][1] = vdupq_n_f32(0.0f);
    const int32x4_t zero = vdupq_n_s32(0);
    const lfm_block_q8_0x8 *g = (const lfm_block_q8_0x8 *)(const void *)w;
    const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)x;
    for (int64_t ib = 0; ib < nb; ib++) {
        q32_prefetch(g + ib, (int)sizeof *g);
        const float dx = neon_h2f(xb[ib].d);
        const float32x4_t d0 = vmulq_n_f32(neon_h2f4(g[ib].d), dx), d1 = vmulq_n_f32(neon_h2f4(g[ib].d + 4), dx);
        const int8x16_t yl = vld1q_s8(xb[ib].qs), yh = vld1q_s8(xb[ib].qs + 16);
        const int8_t *q = g[ib].qs;
#define Q32_Q8X8_STEP(k, yv, lane)                                                                                    \
    acc[k][0] = vfmaq_f32(acc[k][0], vcvtq_f32_s32(NEON_DOT4_LANE(zero, vld1q_s8(q + 32 * (k)), yv, lane)), d0);      \
    acc[k][1] = vfmaq_f32(acc[k][1], vcvtq_f32_s32(NEON_DOT4_LANE(zero, vld1q_s8(q + 32 * (k) + 16), yv, lane)), d1);
        Q32_Q8X8_STEP(0, yl, 0) Q32_Q8X8_STEP(1, yl, 1) Q32_Q8X8_STEP(2, yl, 2) Q32_Q8X8_STEP(3, yl, 3)
        Q32_Q8X8_STEP(4, yh, 0) Q32_Q8X8_STEP(5, yh, 1) Q32_Q8X8_STEP(6, yh, 2) Q32_Q8X8_STEP(7, yh, 3)
#undef Q32_Q8X8_STEP
    }
    for (int h = 0; h < 2; h++) {
        const float32x4_t even = vaddq_f32(vaddq_f32(acc[0][h], acc[4][h]), vaddq_f32(acc[2][h], acc[6][h]));
        const float32x4_t odd = vaddq_f32(vaddq_f32(acc[1][h], acc[5][h]), vaddq_f32(acc[3][h], acc[7][h]));
        vst1q_f32(y + 4 * h, vaddq_f32(even, odd));
    }
}

static void q32_mm_q8_0_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                           float *y, int64_t ldy) {
    static const q32_tile_x8_fn tiles[1] = {q32_q8_0x8_1};
    q32_x8_drive(tiles, 1, n / LFM_QK, 64, w, bw, nr, x, bx, nt, y, ldy);
}

static void neon_init_32(lfm_qkernels *k) {
    k->act[LFM_TYPE_Q8_0] = q32_act_q8_0;
    k->act[LFM_TYPE_Q8_1] = q32_act_q8_1;
    k->act[LFM_TYPE_Q8_K] = q32_act_q8_K;
    k->mm[LFM_TYPE_Q4_0] = q32_mm_q4_0;
    k->mm[LFM_TYPE_Q4_1] = q32_mm_q4_1;
    k->mm[LFM_TYPE_Q5_0] = q32_mm_q5_0;
    k->mm[LFM_TYPE_Q5_1] = q32_mm_q5_1;
    k->mm[LFM_TYPE_Q8_0] = q32_mm_q8_0;
    k->mm_x8[LFM_TYPE_Q4_0] = q32_mm_q4_0_x8;
    k->mm_x8[LFM_TYPE_Q8_0] = q32_mm_q8_0_x8;
}
