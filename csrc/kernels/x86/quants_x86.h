/* quants_x86.h — the x86 quantized kernels, one source compiled once per level:
 *   quants_avx2.c    AVX2 + FMA + F16C
 *   quants_avxvnni.c + AVX-VNNI (VEX vpdpbusd / vpdpwssd on 256 bits: Alder Lake and later clients, Zen 5)
 *   quants_avx512.c  + AVX-512 F/BW/VL/VNNI (the same instructions EVEX-encoded, 32 registers)
 *   quants_avx512zmm.c  the same, with the X8 prefill kernels on 512-bit registers (QX86_ZMM)
 * Each .c defines QX86_INIT (its init function's name) and, for the VNNI levels, QX86_VNNI_VEX or
 * QX86_VNNI_EVEX before including this file.
 *
 * Dot products are int8: weights are unpacked to bytes (unsigned where the format allows, the
 * offset taken back with the activation block sums), multiplied with the 8-bit activations by
 * vpmaddubsw, widened with vpmaddwd, and every block's int32 sums are scaled in float. The VNNI
 * levels fuse those steps (vpdpbusd: u8 x s8 summed 4 at a time into int32; vpdpwssd: int16 pairs
 * into int32) but keep every int32 lane the AVX2 code forms: the integer parts are exact in any
 * grouping, so all levels give the same floats bit for bit (and the AVX2 level's are llama.cpp's,
 * kernels/ROUNDING.md).
 *
 * Each kernel works on a tile of NR weight rows x NT activation rows so a loaded, unpacked weight
 * block is used NT times and an activation block NR times: decode (T = 1) runs 4x1 tiles, prefill
 * larger ones (see mm_tiled). Activation quantization gives the same bytes as the scalar oracle. */
#ifndef QX86_INIT
#error "quants_x86.h is included by quants_avx2.c, quants_avxvnni.c, quants_avx512.c and quants_avx512zmm.c"
#endif
#include "kernels/kernels.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

/* vpdpbusd(acc, u, s): acc + the sums of 4 products u8 x s8 per int32 lane; vpdpwssd(acc, a, b): acc + the
 * sums of the int16 products a x b per pair. Without VNNI the code below takes its AVX2 steps instead. */
#if defined(QX86_VNNI_EVEX)
#define QX86_VNNI 1
#define DPBUSD(acc, u, s) _mm256_dpbusd_epi32(acc, u, s)
#define DPWSSD(acc, a, b) _mm256_dpwssd_epi32(acc, a, b)
#elif defined(QX86_VNNI_VEX)
#define QX86_VNNI 1
#define DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32(acc, u, s)
#define DPWSSD(acc, a, b) _mm256_dpwssd_avx_epi32(acc, a, b)
#else
#define QX86_VNNI 0
#endif

/* ---- helpers ---- */

INLINE float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE int hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

INLINE float h2f(lfm_half h) { return _cvtsh_ss(h); }

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles (elements 0..15), then high (16..31). */
INLINE __m256i unpack_nibbles(const uint8_t *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m256i w = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(w, _mm256_set1_epi8(0x0f));
}

/* 32 bits -> 32 bytes, byte i = 0xff when bit i is set. */
INLINE __m256i bits_to_bytes(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* ---- activation quantization (same bytes as quants_ref.c) ---- */

INLINE float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* max |x| over 8*n8 floats, or NaN when one of them is NaN or +-inf (the block then takes the
 * non-finite encoding of quants.h, as in quants_ref.c). max_ps alone would drop a NaN lane, so the
 * non-finite lanes are collected apart: one compare and one OR per 8 floats. */
INLINE float absmax8(const float *x, int n8) {
    const __m256 sign = _mm256_set1_ps(-0.0f), inf = _mm256_set1_ps(INFINITY);
    __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    for (int k = 0; k < n8; k++) {
        const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * k));
        m = _mm256_max_ps(m, a);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ)); /* NaN or inf */
    }
    return _mm256_movemask_ps(bad) ? NAN : hmax_ps(m);
}

/* Quantize 32 floats with multiplier id to int8 (round to nearest even, as lrintf), store them,
 * return the 4 int32 vectors' sum. */
INLINE __m256i quant32(const float *x, __m256 id, int8_t *dst) {
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)dst, p);
    return _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
}

/* The same, returning the sums of elements 0..15 and 16..31 separately. */
INLINE void quant32_halves(const float *x, __m256 id, int8_t *dst, __m256i *lo, __m256i *hi) {
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id));
    __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id));
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)dst, p);
    *lo = _mm256_add_epi32(i0, i1);
    *hi = _mm256_add_epi32(i2, i3);
}

static void act_q8_0(const float *x, void *dst, int64_t n) {
    lfm_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / LFM_QK; i++, x += LFM_QK) {
        float amax = absmax8(x, 4);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_0(&y[i]);
            continue;
        }
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = lfm_float_to_half(amax / 127.0f);
        quant32(x, _mm256_set1_ps(id), y[i].qs);
    }
}

static void act_q8_1(const float *x, void *dst, int64_t n) {
    lfm_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / LFM_QK; i++, x += LFM_QK) {
        float amax = absmax8(x, 4);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_1(&y[i]);
            continue;
        }
        float id = amax != 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        int sum = hsum_epi32(quant32(x, _mm256_set1_ps(id), y[i].qs));
        y[i].d = lfm_float_to_half(d);
        y[i].s = lfm_float_to_half(d * (float)sum);
    }
}

/* Q8_K as llama.cpp forms it (see quants_ref.c): scale from the signed largest element. */
static void act_q8_K(const float *x, void *dst, int64_t n) {
    lfm_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / LFM_QK_K; i++, x += LFM_QK_K) {
        const float amax = absmax8(x, 32);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_K(&y[i]);
            continue;
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        /* amax is finite here and is |x[j]| for some j; the bound keeps the search in the block
         * whatever the comparison does */
        int j = 0;
        while (j < LFM_QK_K - 1 && fabsf(x[j]) != amax) j++;
        const float iscale = -127.0f / x[j];
        __m256 vid = _mm256_set1_ps(iscale);
        for (int k = 0; k < 8; k++) {
            __m256i lo, hi;
            quant32_halves(x + 32 * k, vid, y[i].qs + 32 * k, &lo, &hi);
            y[i].bsums[2 * k] = (int16_t)hsum_epi32(lo);
            y[i].bsums[2 * k + 1] = (int16_t)hsum_epi32(hi);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- 32-element block types ---- */

#define MAXR 4
#define MAXT 4

/* Q4_0 / Q5_0 against Q8_0: d*(q - z) with z = 8 or 16  ->  dw*dy*(sum(q*y) - z*sum(y)). */
INLINE void tile_qx_0(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                      const int NR, const int NT, const int five) {
    __m256 acc[MAXR][MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1), zero_point = _mm256_set1_epi8(five ? 16 : 8);
    (void)ones;
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i qy[MAXT], cy[MAXT]; /* cy: z * the activations, int16 pairs (AVX2) or int32 quads (VNNI) */
        float dy[MAXT];
        for (int t = 0; t < NT; t++) {
            const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
            qy[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
#if QX86_VNNI
            cy[t] = DPBUSD(_mm256_setzero_si256(), zero_point, qy[t]);
#else
            cy[t] = _mm256_maddubs_epi16(zero_point, qy[t]);
#endif
            dy[t] = h2f(xb->d);
        }
        for (int r = 0; r < NR; r++) {
            __m256i q;
            float dw;
            if (five) {
                const lfm_block_q5_0 *wb = (const lfm_block_q5_0 *)(const void *)(w + r * bw) + ib;
                q = _mm256_or_si256(unpack_nibbles(wb->qs), _mm256_and_si256(bits_to_bytes(wb->qh), zero_point));
                dw = h2f(wb->d);
            } else {
                const lfm_block_q4_0 *wb = (const lfm_block_q4_0 *)(const void *)(w + r * bw) + ib;
                q = unpack_nibbles(wb->qs);
                dw = h2f(wb->d);
            }
            for (int t = 0; t < NT; t++) {
#if QX86_VNNI
                __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(DPBUSD(_mm256_setzero_si256(), q, qy[t]), cy[t]));
#else
                __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy[t]), cy[t]);
                __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
#endif
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * dy[t]), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = hsum_ps(acc[r][t]);
}

INLINE void tile_q8_0(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                      const int NR, const int NT, const int unused_mode) {
    (void)unused_mode;
    __m256 acc[MAXR][MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    (void)ones;
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i qy[MAXT];
        float dy[MAXT];
        for (int t = 0; t < NT; t++) {
            const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
            qy[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
            dy[t] = h2f(xb->d);
        }
        for (int r = 0; r < NR; r++) {
            const lfm_block_q8_0 *wb = (const lfm_block_q8_0 *)(const void *)(w + r * bw) + ib;
            __m256i q = _mm256_loadu_si256((const __m256i *)wb->qs);
            __m256i aq = _mm256_sign_epi8(q, q);
            float dw = h2f(wb->d);
            for (int t = 0; t < NT; t++) {
#if QX86_VNNI
                __m256 f = _mm256_cvtepi32_ps(DPBUSD(_mm256_setzero_si256(), aq, _mm256_sign_epi8(qy[t], q)));
#else
                __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(qy[t], q));
                __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
#endif
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * dy[t]), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = hsum_ps(acc[r][t]);
}

/* Q4_1 / Q5_1 against Q8_1: d*q + m  ->  dw*dy*sum(q*y) + mw*sy. */
INLINE void tile_qx_1(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                      const int NR, const int NT, const int five) {
    __m256 acc[MAXR][MAXT];
    float accm[MAXR][MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps(), accm[r][t] = 0.0f;
    const __m256i ones = _mm256_set1_epi16(1), sixteen = _mm256_set1_epi8(16);
    (void)ones;
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i qy[MAXT];
        float dy[MAXT], sy[MAXT];
        for (int t = 0; t < NT; t++) {
            const lfm_block_q8_1 *xb = (const lfm_block_q8_1 *)(const void *)(x + t * bx) + ib;
            qy[t] = _mm256_loadu_si256((const __m256i *)xb->qs);
            dy[t] = h2f(xb->d);
            sy[t] = h2f(xb->s);
        }
        for (int r = 0; r < NR; r++) {
            __m256i q;
            float dw, mw;
            if (five) {
                const lfm_block_q5_1 *wb = (const lfm_block_q5_1 *)(const void *)(w + r * bw) + ib;
                q = _mm256_or_si256(unpack_nibbles(wb->qs), _mm256_and_si256(bits_to_bytes(wb->qh), sixteen));
                dw = h2f(wb->d), mw = h2f(wb->m);
            } else {
                const lfm_block_q4_1 *wb = (const lfm_block_q4_1 *)(const void *)(w + r * bw) + ib;
                q = unpack_nibbles(wb->qs);
                dw = h2f(wb->d), mw = h2f(wb->m);
            }
            for (int t = 0; t < NT; t++) {
#if QX86_VNNI
                __m256 f = _mm256_cvtepi32_ps(DPBUSD(_mm256_setzero_si256(), q, qy[t]));
#else
                __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(q, qy[t]), ones));
#endif
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * dy[t]), acc[r][t]);
                accm[r][t] += mw * sy[t];
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = hsum_ps(acc[r][t]) + accm[r][t];
}

/* ---- K-quants against Q8_K ---- */

/* vpshufb index broadcasting int16 element j of each 128-bit lane */
INLINE __m256i bcast16_idx(int j) { return _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j)); }

/* The 8 scales and 8 mins of a Q4_K/Q5_K block as int16 vectors: scales in both 128-bit lanes
 * (s0..s7), mins duplicated per 16-element half (m0 m0 m1 m1 ... m7 m7) to meet the 16 bsums. */
INLINE void k4_scales(const uint8_t *s, __m256i *sc, __m256i *mn2) {
    uint32_t a[3];
    memcpy(a, s, 12);
    uint32_t s0 = a[0] & 0x3f3f3f3fu, m0 = a[1] & 0x3f3f3f3fu;
    uint32_t s1 = (a[2] & 0x0f0f0f0fu) | ((a[0] >> 6) & 0x03030303u) << 4;
    uint32_t m1 = ((a[2] >> 4) & 0x0f0f0f0fu) | ((a[1] >> 6) & 0x03030303u) << 4;
    __m128i v = _mm_setr_epi32((int)s0, (int)s1, (int)m0, (int)m1); /* s0..s7 m0..m7 bytes */
    *sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
    __m128i md = _mm_shuffle_epi8(v, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
    *mn2 = _mm256_cvtepu8_epi16(md);
}

/* The float rounding follows llama.cpp, whose exact results GGUF models are checked against:
 * Q5_K as its dot product (scale products in 8 lanes, the mins as one float per row, added last);
 * Q4_K as its 8-row interleaved kernels (a row's dot and min terms as exact integers, each folded
 * into its own float with one FMA, subtracted at the end): one FMA per 256-element block in its
 * one-token kernel, one per 64 elements in its 4-token GEMM (mode K4_GEMM4). */
enum { K4_BLOCK = 0, K5 = 1, K4_GEMM4 = 2, K5_TILED = 3 };

INLINE void tile_q45_K(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                       const int NR, const int NT, const int mode) {
    const int five = mode == K5 || mode == K5_TILED;
    __m256 acc[MAXR][MAXT];
    float sacc[MAXR][MAXT], macc[MAXR][MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps(), sacc[r][t] = 0.0f, macc[r][t] = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_K *yb[MAXT];
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        for (int r = 0; r < NR; r++) {
            const uint8_t *wq, *wqh = NULL, *wsc;
            lfm_half wd, wdmin;
            if (five) {
                const lfm_block_q5_K *wb = (const lfm_block_q5_K *)(const void *)(w + r * bw) + ib;
                wq = wb->qs, wqh = wb->qh, wsc = wb->scales, wd = wb->d, wdmin = wb->dmin;
            } else {
                const lfm_block_q4_K *wb = (const lfm_block_q4_K *)(const void *)(w + r * bw) + ib;
                wq = wb->qs, wsc = wb->scales, wd = wb->d, wdmin = wb->dmin;
            }
            __m256i sc, mn2;
            k4_scales(wsc, &sc, &mn2);
            __m256i hb = five ? _mm256_loadu_si256((const __m256i *)wqh) : _mm256_setzero_si256();
            __m256i isum[MAXT];
            for (int t = 0; t < NT; t++) isum[t] = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(wq + 32 * c));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (five) {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
                    hi = _mm256_or_si256(hi,
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
                }
                __m256i s_lo = _mm256_shuffle_epi8(sc, bcast16_idx(2 * c));
                __m256i s_hi = _mm256_shuffle_epi8(sc, bcast16_idx(2 * c + 1));
                uint8_t unused_sc, mn_lo = 0, mn_hi = 0; /* this chunk's two mins (K4_GEMM4) */
                if (mode == K4_GEMM4) {
                    lfm_k4_scale_min(2 * c, wsc, &unused_sc, &mn_lo);
                    lfm_k4_scale_min(2 * c + 1, wsc, &unused_sc, &mn_hi);
                }
                for (int t = 0; t < NT; t++) {
                    __m256i y0 = _mm256_loadu_si256((const __m256i *)(yb[t]->qs + 64 * c));
                    __m256i y1 = _mm256_loadu_si256((const __m256i *)(yb[t]->qs + 64 * c + 32));
#if QX86_VNNI
                    const __m256i p01 = DPWSSD(DPWSSD(_mm256_setzero_si256(), _mm256_maddubs_epi16(lo, y0), s_lo),
                                               _mm256_maddubs_epi16(hi, y1), s_hi);
#else
                    const __m256i p01 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s_lo),
                                                         _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s_hi));
#endif
                    if (mode == K4_GEMM4) {
                        const float dd = h2f(wd) * yb[t]->d, ddmin = h2f(wdmin) * yb[t]->d;
                        const int16_t *bs = yb[t]->bsums + 4 * c;
                        const int mins = mn_lo * (bs[0] + bs[1]) + mn_hi * (bs[2] + bs[3]);
                        sacc[r][t] = fmaf((float)hsum_epi32(p01), dd, sacc[r][t]);
                        macc[r][t] = fmaf((float)mins, ddmin, macc[r][t]);
                    } else {
                        isum[t] = _mm256_add_epi32(isum[t], p01);
                    }
                }
            }
            if (mode == K4_GEMM4) continue;
            const float d = h2f(wd), dmin = h2f(wdmin);
            for (int t = 0; t < NT; t++) {
                __m256i bs = _mm256_loadu_si256((const __m256i *)yb[t]->bsums);
                const float mins = (float)hsum_epi32(_mm256_madd_epi16(bs, mn2));
                if (mode == K5_TILED) {
                    const float res = fmaf(-dmin, mins, d * (float)hsum_epi32(isum[t]));
                    sacc[r][t] = fmaf(res, yb[t]->d, sacc[r][t]);
                } else if (five) {
                    acc[r][t] = _mm256_fmadd_ps(_mm256_set1_ps(yb[t]->d * d), _mm256_cvtepi32_ps(isum[t]), acc[r][t]);
                    macc[r][t] = fmaf(-yb[t]->d * dmin, mins, macc[r][t]);
                } else {
                    sacc[r][t] = fmaf((float)hsum_epi32(isum[t]), d * yb[t]->d, sacc[r][t]);
                    macc[r][t] = fmaf(mins, dmin * yb[t]->d, macc[r][t]);
                }
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            y[t * ldy + r] = mode == K5         ? hsum_ps(acc[r][t]) + macc[r][t]
                             : mode == K5_TILED ? sacc[r][t]
                                                : sacc[r][t] - macc[r][t];
}

/* Q6_K's 6-bit quants (0..63) of four 32-byte chunks from 64 bytes of low nibbles and 32 of high bit
 * pairs: the 2 high bits of each element moved straight to bits 4..5 (16-bit shifts are fine: what
 * crosses into a neighbouring byte is masked off). */
INLINE void q6_unpack(__m256i ql0, __m256i ql1, __m256i qh, __m256i q[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
}

/* Rounding as llama.cpp's Q6_K dot product (8 lanes, summed at the end), or with tiled = 1 as its
 * tiled kernel for batches of 8 or more tokens (per block: weight scale times the exact integer
 * total, then one FMA with the activation scale). */
INLINE void tile_q6_Kx(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy,
                       const int NR, const int NT, const int tiled) {
    __m256 acc[MAXR][MAXT];
    float sacc[MAXR][MAXT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps(), sacc[r][t] = 0.0f;
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_K *yb[MAXT];
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        for (int r = 0; r < NR; r++) {
            const lfm_block_q6_K *wb = (const lfm_block_q6_K *)(const void *)(w + r * bw) + ib;
            __m128i s8 = _mm_loadu_si128((const __m128i *)wb->scales);
            __m256i snat = _mm256_cvtepi8_epi16(s8);                         /* s0..s15 */
            __m256i spair = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, even_odd)); /* evens | odds */
            __m256i isum[MAXT];
            for (int t = 0; t < NT; t++) {
                __m256i bs = _mm256_loadu_si256((const __m256i *)yb[t]->bsums);
                /* the -32 offset: 32 * sum_g s_g * bsum_g, taken off up front */
                isum[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(snat, bs), 5));
            }
            for (int h = 0; h < 2; h++) {
                __m256i ql0 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h));
                __m256i ql1 = _mm256_loadu_si256((const __m256i *)(wb->ql + 64 * h + 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(wb->qh + 32 * h));
                __m256i q[4];
                q6_unpack(ql0, ql1, qh, q);
                for (int k = 0; k < 4; k++) {
                    /* groups g = 8h + 2k (bytes 0..15) and g + 1 (bytes 16..31) */
                    __m256i s = _mm256_shuffle_epi8(spair, bcast16_idx(4 * h + k));
                    for (int t = 0; t < NT; t++) {
                        __m256i yv = _mm256_loadu_si256((const __m256i *)(yb[t]->qs + 128 * h + 32 * k));
#if QX86_VNNI
                        isum[t] = DPWSSD(isum[t], _mm256_maddubs_epi16(q[k], yv), s);
#else
                        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), s));
#endif
                    }
                }
            }
            float d = h2f(wb->d);
            for (int t = 0; t < NT; t++) {
                if (tiled) sacc[r][t] = fmaf(d * (float)hsum_epi32(isum[t]), yb[t]->d, sacc[r][t]);
                else acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * yb[t]->d), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++) y[t * ldy + r] = tiled ? sacc[r][t] : hsum_ps(acc[r][t]);
}

/* ---- tiling ---- */

typedef void (*tile_fn)(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy);

/* T##_RN: BASE(..., R rows, N tokens, MODE); mm_##T runs TYPE's matmul through them. */
#define TILE_FNS(T, BASE, MODE, TYPE)                                                                                \
    static void T##_11(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 1, 1, MODE); } \
    static void T##_21(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 2, 1, MODE); } \
    static void T##_31(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 3, 1, MODE); } \
    static void T##_41(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 4, 1, MODE); } \
    static void T##_12(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 1, 2, MODE); } \
    static void T##_22(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 2, 2, MODE); } \
    static void T##_32(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 3, 2, MODE); } \
    static void T##_42(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 4, 2, MODE); } \
    static void T##_13(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 1, 3, MODE); } \
    static void T##_23(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 2, 3, MODE); } \
    static void T##_33(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 3, 3, MODE); } \
    static void T##_43(int64_t nb, const uint8_t *w, size_t bw, const uint8_t *x, size_t bx, float *y, int64_t ldy) { BASE(nb, w, bw, x, bx, y, ldy, 4, 3, MODE); } \
    static const tile_fn T##_tiles[4][3] = {{T##_11, T##_12, T##_13}, {T##_21, T##_22, T##_23},             \
                                            {T##_31, T##_32, T##_33}, {T##_41, T##_42, T##_43}};            \
    static void mm_##T(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx,      \
                       int64_t nt, float *y, int64_t ldy) {                                                  \
        mm_tiled(T##_tiles, n / (int64_t)(lfm_type_block_elems(TYPE)), w, bw, nr, x, bx, nt, y, ldy);       \
    }

/* Decode: 4x1 tiles down the rows. Prefill: the tokens in chunks that stay in L2, and inside a
 * chunk 4-row x 3-token tiles so each weight tile is read from memory once per chunk. */
static void mm_tiled(const tile_fn tiles[4][3], int64_t nb, const uint8_t *w, size_t bw, int64_t nr,
                     const uint8_t *x, size_t bx, int64_t nt, float *y, int64_t ldy) {
    const int64_t TR = 4, TT = 3, CHUNK = 48;
    for (int64_t t0 = 0; t0 < nt; t0 += CHUNK) {
        int64_t t1 = lfm_min64(nt, t0 + CHUNK);
        for (int64_t r = 0; r < nr; r += TR) {
            int64_t rr = lfm_min64(TR, nr - r);
            for (int64_t t = t0; t < t1; t += TT) {
                int64_t tt = lfm_min64(TT, t1 - t);
                tiles[rr - 1][tt - 1](nb, w + (size_t)r * bw, bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
        }
    }
}

TILE_FNS(q4_0, tile_qx_0, 0, LFM_TYPE_Q4_0)
TILE_FNS(q5_0, tile_qx_0, 1, LFM_TYPE_Q5_0)
TILE_FNS(q4_1, tile_qx_1, 0, LFM_TYPE_Q4_1)
TILE_FNS(q5_1, tile_qx_1, 1, LFM_TYPE_Q5_1)
TILE_FNS(q8_0, tile_q8_0, 0, LFM_TYPE_Q8_0)
TILE_FNS(q4_K, tile_q45_K, K4_BLOCK, LFM_TYPE_Q4_K)
TILE_FNS(q4_K4, tile_q45_K, K4_GEMM4, LFM_TYPE_Q4_K)
TILE_FNS(q5_K, tile_q45_K, K5, LFM_TYPE_Q5_K)
TILE_FNS(q5_K8, tile_q45_K, K5_TILED, LFM_TYPE_Q5_K)
TILE_FNS(q6_K, tile_q6_Kx, 0, LFM_TYPE_Q6_K)
TILE_FNS(q6_K8, tile_q6_Kx, 1, LFM_TYPE_Q6_K)

/* Q4_K: llama.cpp runs the tokens of a batch in groups of 4 through its GEMM and the rest (the last
 * T % 4, or all of them when T < 4) through its one-token kernel; rounding follows suit. */
static void mm_q4_K_llama(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                          float *y, int64_t ldy) {
    const int64_t grouped = nt > 3 ? nt - nt % 4 : 0;
    if (grouped) mm_q4_K4(n, w, bw, nr, x, bx, grouped, y, ldy);
    if (nt > grouped) mm_q4_K(n, w, bw, nr, x + (size_t)grouped * bx, bx, nt - grouped, y + grouped * ldy, ldy);
}

/* ---- Q4_0 in LFM_LAYOUT_X8: 8 rows per register ---- */

/* Sum of the 32 int8 of every activation block (the -8 offset of Q4_0 is taken back with it). */
static void q8_0_block_sums(const uint8_t *x, size_t bx, int64_t nt, int64_t nb, int32_t *out) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    (void)ones16;
    for (int64_t t = 0; t < nt; t++) {
        const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + (size_t)t * bx);
        for (int64_t i = 0; i < nb; i++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)xb[i].qs);
#if QX86_VNNI
            out[t * nb + i] = hsum_epi32(DPBUSD(_mm256_setzero_si256(), ones8, q));
#else
            out[t * nb + i] = hsum_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q), ones16));
#endif
        }
    }
}

INLINE int32_t load_i32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* 8 rows (one group) x NT tokens. Lane r of every accumulator is row r. */
/* Tokens per Q4_0 X8 tile: 8 with AVX-512's 32 registers (8 weight vectors stay loaded for 8 token
 * accumulators), else 4. */
#if defined(QX86_VNNI_EVEX)
#define Q4_0X8_MAXT 8
#else
#define Q4_0X8_MAXT 4
#endif

INLINE void tile_q4_0x8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y,
                        int64_t ldy, const int NT) {
    __m256 acc[Q4_0X8_MAXT];
    for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    (void)ones;
    const lfm_block_q4_0x8 *g = (const lfm_block_q4_0x8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i lo[4], hi[4];
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(g[ib].qs + 32 * k));
            lo[k] = _mm256_and_si256(v, m4);
            hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].d));
        for (int t = 0; t < NT; t++) {
            const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
#if QX86_VNNI
            /* two accumulation chains: vpdpbusd's latency, not its throughput, would bound one */
            __m256i s0 = _mm256_set1_epi32(-8 * xs[t * nb + ib]), s1 = _mm256_setzero_si256();
            for (int k = 0; k < 4; k++) {
                s0 = DPBUSD(s0, lo[k], _mm256_set1_epi32(load_i32(xb->qs + 4 * k)));
                s1 = DPBUSD(s1, hi[k], _mm256_set1_epi32(load_i32(xb->qs + 16 + 4 * k)));
            }
            const __m256i i32 = _mm256_add_epi32(s0, s1);
#else
            __m256i s = _mm256_maddubs_epi16(lo[0], _mm256_set1_epi32(load_i32(xb->qs)));
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi[0], _mm256_set1_epi32(load_i32(xb->qs + 16))));
            for (int k = 1; k < 4; k++) {
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo[k], _mm256_set1_epi32(load_i32(xb->qs + 4 * k))));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi[k], _mm256_set1_epi32(load_i32(xb->qs + 16 + 4 * k))));
            }
            /* |pair| <= 2*15*127, 8 pairs per lane: fits int16 */
            __m256i i32 = _mm256_sub_epi32(_mm256_madd_epi16(s, ones), _mm256_set1_epi32(8 * xs[t * nb + ib]));
#endif
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32), _mm256_mul_ps(d8, _mm256_set1_ps(h2f(xb->d))), acc[t]);
        }
    }
    for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

static void q4_0x8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 1); }
static void q4_0x8_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 2); }
static void q4_0x8_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 3); }
static void q4_0x8_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 4); }
#if Q4_0X8_MAXT == 8
static void q4_0x8_5(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 5); }
static void q4_0x8_6(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 6); }
static void q4_0x8_7(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 7); }
static void q4_0x8_8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, const int32_t *xs, float *y, int64_t ldy) { tile_q4_0x8(nb, w, x, bx, xs, y, ldy, 8); }
#endif

static void mm_q4_0_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    typedef void (*fn_t)(int64_t, const uint8_t *, const uint8_t *, size_t, const int32_t *, float *, int64_t);
#if Q4_0X8_MAXT == 8
    static const fn_t tiles[8] = {q4_0x8_1, q4_0x8_2, q4_0x8_3, q4_0x8_4, q4_0x8_5, q4_0x8_6, q4_0x8_7, q4_0x8_8};
#else
    static const fn_t tiles[4] = {q4_0x8_1, q4_0x8_2, q4_0x8_3, q4_0x8_4};
#endif
    enum { XS_CAP = 8192 }; /* model/repack.c only repacks rows of at most 8192 blocks */
    int32_t xs[XS_CAP];
    int64_t nb = n / LFM_QK;
    int64_t chunk = lfm_max64(1, lfm_min64(64, XS_CAP / nb));
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        int64_t t1 = lfm_min64(nt, t0 + chunk);
        q8_0_block_sums(x + (size_t)t0 * bx, bx, t1 - t0, nb, xs);
        for (int64_t r = 0; r < nr; r += 8)
            for (int64_t t = t0; t < t1; t += Q4_0X8_MAXT) {
                int64_t tt = lfm_min64(Q4_0X8_MAXT, t1 - t);
                tiles[tt - 1](nb, w + (size_t)r * bw, x + (size_t)t * bx, bx, xs + (t - t0) * nb, y + t * ldy + r, ldy);
            }
    }
}

#if defined(QX86_ZMM)
/* ---- Q4_0 in LFM_LAYOUT_X8 on 512-bit registers: two 8-row groups per register ----
 * tile_q4_0x8's arithmetic with lanes 0-7 = rows of group w0, 8-15 = rows of group w1: every lane's
 * int32 and its cvt / mul / fma are the 256-bit tile's, so the floats are the same bits. */

/* 32 bytes of a (lanes 0-7) and 32 of b (lanes 8-15) */
INLINE __m512i load_2x256(const void *a, const void *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* the 8 scales of group a (lanes 0-7) and of group b (lanes 8-15) */
INLINE __m512 load_2x8_half(const lfm_half *a, const lfm_half *b) {
    return _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)b), _mm_loadu_si128((const __m128i *)a)));
}

/* GCC keeps an array of accumulators in memory too (a store per update) unless its loops are
 * unrolled before scalar replacement; the loops run NT (a constant) or 4 / 8 times */
#define ZMM_UNROLL _Pragma("GCC unroll 16")

/* vpdpbusd(acc, u, the s8 dword at p broadcast by the instruction, {1to16}): only the signed operand
 * can be broadcast. GCC 12 keeps a separate vpbroadcastd for _mm512_dpbusd_epi32(acc, u,
 * _mm512_set1_epi32(..)), hence the asm. */
INLINE __m512i dpbusd_bcst(__m512i acc, __m512i u, const void *p) {
#if defined(__GNUC__) && !defined(__clang__) && !defined(QX86_NO_ASM_BCST)
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*(const char(*)[4])p));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, u, _mm512_set1_epi32(load_i32(p)));
#endif
}

/* The two groups' blocks are two streams the hardware prefetcher follows less well than the 256-bit
 * tiles' one: software prefetch ZMM_PREFETCH_AHEAD bytes ahead in both (measured: Q8_0 at 1-3 tokens
 * ~2x faster, which was slower than the 256-bit tiles without it; prefill tiles the same or better) */
#ifndef ZMM_PREFETCH_AHEAD
#define ZMM_PREFETCH_AHEAD 2048
#endif
INLINE void prefetch_2x(const void *a, const void *b, int bytes) {
    if (ZMM_PREFETCH_AHEAD <= 0) return; /* -DZMM_PREFETCH_AHEAD=0: hardware prefetch only */
    for (int o = 0; o < bytes; o += 64) {
        _mm_prefetch((const char *)a + ZMM_PREFETCH_AHEAD + o, _MM_HINT_T0);
        _mm_prefetch((const char *)b + ZMM_PREFETCH_AHEAD + o, _MM_HINT_T0);
    }
}

/* Tokens per 512-bit Q4_0 tile (8, 12 or 16): 8 weight vectors + NT accumulators + the dot-product
 * temporaries fit the 32 registers at 16, measured a little faster than 8 and 12 */
#ifndef Q4_0X16_MAXT
#define Q4_0X16_MAXT 16
#endif

INLINE void tile_q4_0x16(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx,
                         const int32_t *xs, float *y, int64_t ldy, const int NT) {
    __m512 acc[Q4_0X16_MAXT];
    ZMM_UNROLL for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const lfm_block_q4_0x8 *g0 = (const lfm_block_q4_0x8 *)(const void *)w0;
    const lfm_block_q4_0x8 *g1 = (const lfm_block_q4_0x8 *)(const void *)w1;
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i lo[4], hi[4];
        ZMM_UNROLL for (int k = 0; k < 4; k++) {
            __m512i v = load_2x256(g0[ib].qs + 32 * k, g1[ib].qs + 32 * k);
            lo[k] = _mm512_and_si512(v, m4);
            hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const __m512 d16 = load_2x8_half(g0[ib].d, g1[ib].d);
        prefetch_2x(&g0[ib], &g1[ib], (int)sizeof(lfm_block_q4_0x8));
        ZMM_UNROLL for (int t = 0; t < NT; t++) {
            const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
            /* the activation bytes go in by the instructions' embedded broadcast ({1to16}) */
            __m512i s0 = _mm512_set1_epi32(-8 * xs[t * nb + ib]), s1 = _mm512_setzero_si512();
            ZMM_UNROLL for (int k = 0; k < 4; k++) {
                s0 = dpbusd_bcst(s0, lo[k], xb->qs + 4 * k);
                s1 = dpbusd_bcst(s1, hi[k], xb->qs + 16 + 4 * k);
            }
            const __m512i i32 = _mm512_add_epi32(s0, s1);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i32), _mm512_mul_ps(d16, _mm512_set1_ps(h2f(xb->d))), acc[t]);
        }
    }
    ZMM_UNROLL for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ldy, acc[t]);
}

typedef void (*q4_0x8_fn)(int64_t, const uint8_t *, const uint8_t *, size_t, const int32_t *, float *, int64_t);
typedef void (*q4_0x16_fn)(int64_t, const uint8_t *, const uint8_t *, const uint8_t *, size_t, const int32_t *, float *,
                           int64_t);
#define Q4_0X16_TILE(N)                                                                                              \
    static void q4_0x16_##N(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx,            \
                            const int32_t *xs, float *y, int64_t ldy) {                                              \
        tile_q4_0x16(nb, w0, w1, x, bx, xs, y, ldy, N);                                                              \
    }
Q4_0X16_TILE(1)
Q4_0X16_TILE(2)
Q4_0X16_TILE(3)
Q4_0X16_TILE(4)
Q4_0X16_TILE(5)
Q4_0X16_TILE(6)
Q4_0X16_TILE(7)
Q4_0X16_TILE(8)
#if Q4_0X16_MAXT > 8
Q4_0X16_TILE(9)
Q4_0X16_TILE(10)
Q4_0X16_TILE(11)
Q4_0X16_TILE(12)
#endif
#if Q4_0X16_MAXT > 12
Q4_0X16_TILE(13)
Q4_0X16_TILE(14)
Q4_0X16_TILE(15)
Q4_0X16_TILE(16)
#endif
#undef Q4_0X16_TILE

/* mm_q4_0_x8 with pairs of groups through tile_q4_0x16; an odd last group takes the 256-bit tiles */
static void mm_q4_0_x16(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                        float *y, int64_t ldy) {
    static const q4_0x16_fn tiles16[Q4_0X16_MAXT] = {
        q4_0x16_1, q4_0x16_2, q4_0x16_3, q4_0x16_4, q4_0x16_5, q4_0x16_6, q4_0x16_7, q4_0x16_8,
#if Q4_0X16_MAXT > 8
        q4_0x16_9, q4_0x16_10, q4_0x16_11, q4_0x16_12,
#endif
#if Q4_0X16_MAXT > 12
        q4_0x16_13, q4_0x16_14, q4_0x16_15, q4_0x16_16,
#endif
    };
    static const q4_0x8_fn tiles8[Q4_0X8_MAXT] = {q4_0x8_1, q4_0x8_2, q4_0x8_3, q4_0x8_4,
                                                  q4_0x8_5, q4_0x8_6, q4_0x8_7, q4_0x8_8};
    /* 1-2 tokens read weights from memory faster one group (one stream) at a time: the 256-bit tiles
     * (same bits; measured 32768x4096 at 1 token ~45-50 vs ~36-40 GMAC/s, 2 tokens ~88 vs ~70) */
    if (nt < 3) {
        mm_q4_0_x8(n, w, bw, nr, x, bx, nt, y, ldy);
        return;
    }
    enum { XS_CAP = 8192 }; /* as mm_q4_0_x8 */
    int32_t xs[XS_CAP];
    const int64_t nb = n / LFM_QK, nr16 = nr - nr % 16;
    const int64_t chunk = lfm_max64(1, lfm_min64(64, XS_CAP / nb));
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        int64_t t1 = lfm_min64(nt, t0 + chunk);
        q8_0_block_sums(x + (size_t)t0 * bx, bx, t1 - t0, nb, xs);
        for (int64_t r = 0; r < nr16; r += 16)
            for (int64_t t = t0; t < t1; t += Q4_0X16_MAXT) {
                int64_t tt = lfm_min64(Q4_0X16_MAXT, t1 - t);
                tiles16[tt - 1](nb, w + (size_t)r * bw, w + (size_t)(r + 8) * bw, x + (size_t)t * bx, bx,
                                xs + (t - t0) * nb, y + t * ldy + r, ldy);
            }
        if (nr16 < nr)
            for (int64_t t = t0; t < t1; t += Q4_0X8_MAXT) {
                int64_t tt = lfm_min64(Q4_0X8_MAXT, t1 - t);
                tiles8[tt - 1](nb, w + (size_t)nr16 * bw, x + (size_t)t * bx, bx, xs + (t - t0) * nb, y + t * ldy + nr16,
                               ldy);
            }
    }
}
#endif

/* ---- X8 drivers ---- */

/* an X8 tile: one 8-row group against nt tokens (nt fixed per function) */
typedef void (*tile_x8_fn)(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy);

/* 8-row groups x tiles of up to max_nt tokens (tiles[k] takes k + 1), tokens in chunks of `chunk` */
static void x8_drive(const tile_x8_fn *tiles, int64_t max_nt, int64_t nb, int64_t chunk, const uint8_t *w, size_t bw,
                     int64_t nr, const uint8_t *x, size_t bx, int64_t nt, float *y, int64_t ldy) {
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        int64_t t1 = lfm_min64(nt, t0 + chunk);
        for (int64_t r = 0; r < nr; r += 8)
            for (int64_t t = t0; t < t1; t += max_nt) {
                int64_t tt = lfm_min64(max_nt, t1 - t);
                tiles[tt - 1](nb, w + (size_t)r * bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
    }
}

#if defined(QX86_ZMM)
/* a 512-bit X8 tile: two 8-row groups side by side (register lane r = row r of the 16; w1 holds the
 * second group's blocks) against nt tokens (nt fixed per function) */
typedef void (*tile_x16_fn)(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y,
                            int64_t ldy);

/* x8_drive with pairs of groups through the 512-bit tiles (tiles16[k] takes k + 1 tokens, up to
 * max_nt16); a share of rows with an odd number of groups runs its last group through the 256-bit
 * tiles, which give the same bits */
static void x16_drive(const tile_x16_fn *tiles16, int64_t max_nt16, const tile_x8_fn *tiles8, int64_t max_nt8,
                      int64_t nb, int64_t chunk, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx,
                      int64_t nt, float *y, int64_t ldy) {
    const int64_t nr16 = nr - nr % 16;
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        int64_t t1 = lfm_min64(nt, t0 + chunk);
        for (int64_t r = 0; r < nr16; r += 16)
            for (int64_t t = t0; t < t1; t += max_nt16) {
                int64_t tt = lfm_min64(max_nt16, t1 - t);
                tiles16[tt - 1](nb, w + (size_t)r * bw, w + (size_t)(r + 8) * bw, x + (size_t)t * bx, bx, y + t * ldy + r, ldy);
            }
        if (nr16 < nr) x8_drive(tiles8, max_nt8, nb, t1 - t0, w + (size_t)nr16 * bw, bw, nr - nr16, x + (size_t)t0 * bx, bx,
                                t1 - t0, y + t0 * ldy + nr16, ldy);
    }
}
#endif

/* ---- Q8_0 in LFM_LAYOUT_X8 ----
 *
 * Vector k of a group block holds bytes 4k..4k+3 of the 8 rows, so its per-lane products are, row
 * by row, lane k of the row-layout kernel (and of llama.cpp's Q8_0 dot). Keeping one float
 * accumulator per k and summing the 8 at the end in the row kernel's horizontal order gives the
 * same bits as the row layout, 8 rows at a time without a horizontal sum per block. */

/* Tokens per Q8_0 X8 tile: each needs 8 float accumulators; AVX-512's 32 registers hold 3 tokens' */
#if defined(QX86_VNNI_EVEX)
#define Q8_0X8_MAXT 3
#else
#define Q8_0X8_MAXT 2
#endif

INLINE void tile_q8_0x8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy, const int NT) {
    __m256 acc[Q8_0X8_MAXT][8];
    for (int t = 0; t < NT; t++)
        for (int k = 0; k < 8; k++) acc[t][k] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1), bias = _mm256_set1_epi8((char)0x80);
    (void)ones, (void)bias;
    const lfm_block_q8_0x8 *g = (const lfm_block_q8_0x8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_0 *xb[Q8_0X8_MAXT];
        __m256 d[Q8_0X8_MAXT];
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].d));
        for (int t = 0; t < NT; t++) {
            xb[t] = (const lfm_block_q8_0 *)(const void *)(x + t * bx) + ib;
            d[t] = _mm256_mul_ps(d8, _mm256_set1_ps(h2f(xb[t]->d)));
        }
        for (int k = 0; k < 8; k++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(g[ib].qs + 32 * k));
#if QX86_VNNI
            /* vpdpbusd wants one unsigned side: the activations biased by 128 (x ^ 0x80 = x + 128), the
             * bias taken back with -128 * (the 4 weight bytes of lane k). That term is one vector for all
             * tokens; biasing the weights instead made it per token and lane, a broadcast each (~15% slower). */
            const __m256i neg_bias = _mm256_sub_epi32(_mm256_setzero_si256(), DPBUSD(_mm256_setzero_si256(), bias, v));
            for (int t = 0; t < NT; t++) {
                const __m256i xk = _mm256_xor_si256(_mm256_set1_epi32(load_i32(xb[t]->qs + 4 * k)), bias);
                __m256i p = DPBUSD(neg_bias, xk, v);
                acc[t][k] = _mm256_fmadd_ps(d[t], _mm256_cvtepi32_ps(p), acc[t][k]);
            }
#else
            __m256i a = _mm256_sign_epi8(v, v);
            for (int t = 0; t < NT; t++) {
                __m256i xv = _mm256_set1_epi32(load_i32(xb[t]->qs + 4 * k));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(xv, v)), ones);
                acc[t][k] = _mm256_fmadd_ps(d[t], _mm256_cvtepi32_ps(p), acc[t][k]);
            }
#endif
        }
    }
    for (int t = 0; t < NT; t++) {
        __m256 *a = acc[t];
        __m256 even = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
        __m256 odd = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
        _mm256_storeu_ps(y + t * ldy, _mm256_add_ps(even, odd));
    }
}

static void q8_0x8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q8_0x8(nb, w, x, bx, y, ldy, 1); }
static void q8_0x8_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q8_0x8(nb, w, x, bx, y, ldy, 2); }
#if Q8_0X8_MAXT == 3
static void q8_0x8_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q8_0x8(nb, w, x, bx, y, ldy, 3); }
#endif

static void mm_q8_0_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
#if Q8_0X8_MAXT == 3
    static const tile_x8_fn tiles[3] = {q8_0x8_1, q8_0x8_2, q8_0x8_3};
#else
    static const tile_x8_fn tiles[2] = {q8_0x8_1, q8_0x8_2};
#endif
    /* 256-token chunks, not 64: the weights stream from memory once per chunk, and Q8_0's are twice
     * Q4_0's bytes; the activations of a chunk fall out of L2 for wide rows, but L3 feeds the tiles
     * well enough (measured +3-5% at 256 tokens for 8192x2048 and 2048x8192, even at 512 tokens) */
    x8_drive(tiles, Q8_0X8_MAXT, n / LFM_QK, 256, w, bw, nr, x, bx, nt, y, ldy);
}

#if defined(QX86_ZMM)
/* ---- Q8_0 in LFM_LAYOUT_X8 on 512-bit registers: two 8-row groups per register ----
 * tile_q8_0x8's arithmetic with lanes 0-7 = rows of group w0, 8-15 = rows of group w1 (the same int32
 * per lane, the same fma chain per k and final sum: the same bits). The activations come pre-biased
 * (x ^ 0x80, once per chunk for all rows), so a token's step per k is a broadcast load of its 4
 * bytes, one vpdpbusd, one cvt and one fma (3-8% faster than an xor per token and k). */

#include <stdlib.h> /* malloc: the biased activations */

/* Tokens per 512-bit Q8_0 tile: 8 accumulators per token, 3 tokens' in the 32 registers */
#ifndef Q8_0X16_MAXT
#define Q8_0X16_MAXT 3
#endif

INLINE void tile_q8_0x16(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *xbias, size_t bx, float *y,
                         int64_t ldy, const int NT) {
    __m512 acc[Q8_0X16_MAXT][8];
    ZMM_UNROLL for (int t = 0; t < NT; t++)
        ZMM_UNROLL for (int k = 0; k < 8; k++) acc[t][k] = _mm512_setzero_ps();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const lfm_block_q8_0x8 *g0 = (const lfm_block_q8_0x8 *)(const void *)w0;
    const lfm_block_q8_0x8 *g1 = (const lfm_block_q8_0x8 *)(const void *)w1;
    for (int64_t ib = 0; ib < nb; ib++) {
        const lfm_block_q8_0 *xb[Q8_0X16_MAXT];
        __m512 d[Q8_0X16_MAXT];
        const __m512 d16 = load_2x8_half(g0[ib].d, g1[ib].d);
        prefetch_2x(&g0[ib], &g1[ib], (int)sizeof(lfm_block_q8_0x8));
        ZMM_UNROLL for (int t = 0; t < NT; t++) {
            xb[t] = (const lfm_block_q8_0 *)(const void *)(xbias + t * bx) + ib;
            d[t] = _mm512_mul_ps(d16, _mm512_set1_ps(h2f(xb[t]->d)));
        }
        ZMM_UNROLL for (int k = 0; k < 8; k++) {
            const __m512i v = load_2x256(g0[ib].qs + 32 * k, g1[ib].qs + 32 * k);
            /* -128 * (the 4 weight bytes of lane k): takes the activations' bias back */
            const __m512i neg_bias = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, v));
            ZMM_UNROLL for (int t = 0; t < NT; t++) {
                /* the biased bytes are the unsigned operand, so not the one vpdpbusd can broadcast: a
                 * vpbroadcastd from memory (a load, no vector ALU operation) */
                const __m512i p = _mm512_dpbusd_epi32(neg_bias, _mm512_set1_epi32(load_i32(xb[t]->qs + 4 * k)), v);
                acc[t][k] = _mm512_fmadd_ps(d[t], _mm512_cvtepi32_ps(p), acc[t][k]);
            }
        }
    }
    ZMM_UNROLL for (int t = 0; t < NT; t++) {
        __m512 *a = acc[t];
        __m512 even = _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6]));
        __m512 odd = _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7]));
        _mm512_storeu_ps(y + t * ldy, _mm512_add_ps(even, odd));
    }
}

typedef void (*q8_0x16_fn)(int64_t, const uint8_t *, const uint8_t *, const uint8_t *, size_t, float *, int64_t);
static void q8_0x16_1(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q8_0x16(nb, w0, w1, x, bx, y, ldy, 1); }
static void q8_0x16_2(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q8_0x16(nb, w0, w1, x, bx, y, ldy, 2); }
#if Q8_0X16_MAXT >= 3
static void q8_0x16_3(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q8_0x16(nb, w0, w1, x, bx, y, ldy, 3); }
#endif

/* nt activation rows of nb Q8_0 blocks, bytes ^ 0x80 (= + 128, unsigned for vpdpbusd), to rows of nb blocks */
static void q8_0_bias_rows(const uint8_t *x, size_t bx, int64_t nt, int64_t nb, uint8_t *out) {
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int64_t t = 0; t < nt; t++) {
        const lfm_block_q8_0 *xb = (const lfm_block_q8_0 *)(const void *)(x + (size_t)t * bx);
        lfm_block_q8_0 *ob = (lfm_block_q8_0 *)(void *)(out + (size_t)t * nb * sizeof(lfm_block_q8_0));
        for (int64_t i = 0; i < nb; i++) {
            ob[i].d = xb[i].d;
            _mm256_storeu_si256((__m256i *)(void *)ob[i].qs,
                                _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)xb[i].qs), bias));
        }
    }
}

/* mm_q8_0_x8 with pairs of groups through tile_q8_0x16 (an odd last group through the 256-bit tiles) */
static void mm_q8_0_x16(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                        float *y, int64_t ldy) {
    static const q8_0x16_fn tiles16[Q8_0X16_MAXT] = {q8_0x16_1, q8_0x16_2,
#if Q8_0X16_MAXT >= 3
                                                     q8_0x16_3
#endif
    };
    static const tile_x8_fn tiles8[Q8_0X8_MAXT] = {q8_0x8_1, q8_0x8_2, q8_0x8_3};
    const int64_t nb = n / LFM_QK, nr16 = nr - nr % 16, chunk = 256; /* mm_q8_0_x8's chunks */
    const size_t bxb = (size_t)nb * sizeof(lfm_block_q8_0);
    /* decode (1 token) reads weights from memory faster one group (one stream) at a time: the 256-bit
     * tiles, as without memory for the biased activations or with fewer than 16 rows (same bits) */
    uint8_t *xbias = nr16 && nt > 1 ? malloc((size_t)lfm_min64(nt, chunk) * bxb) : NULL;
    if (!xbias) {
        mm_q8_0_x8(n, w, bw, nr, x, bx, nt, y, ldy);
        return;
    }
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        int64_t t1 = lfm_min64(nt, t0 + chunk);
        q8_0_bias_rows(x + (size_t)t0 * bx, bx, t1 - t0, nb, xbias);
        for (int64_t r = 0; r < nr16; r += 16)
            for (int64_t t = t0; t < t1; t += Q8_0X16_MAXT) {
                int64_t tt = lfm_min64(Q8_0X16_MAXT, t1 - t);
                tiles16[tt - 1](nb, w + (size_t)r * bw, w + (size_t)(r + 8) * bw, xbias + (size_t)(t - t0) * bxb, bxb,
                                y + t * ldy + r, ldy);
            }
        if (nr16 < nr)
            x8_drive(tiles8, Q8_0X8_MAXT, nb, t1 - t0, w + (size_t)nr16 * bw, bw, nr - nr16, x + (size_t)t0 * bx, bx,
                     t1 - t0, y + t0 * ldy + nr16, ldy);
    }
    free(xbias);
}
#endif

/* Q5_K / Q6_K: llama.cpp switches to its tiled kernel for batches of 8 or more tokens */
static void mm_q5_K_llama(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                          float *y, int64_t ldy) {
    (nt >= 8 ? mm_q5_K8 : mm_q5_K)(n, w, bw, nr, x, bx, nt, y, ldy);
}

static void mm_q6_K_llama(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                          float *y, int64_t ldy) {
    (nt >= 8 ? mm_q6_K8 : mm_q6_K)(n, w, bw, nr, x, bx, nt, y, ldy);
}

/* ---- Q4_K / Q5_K / Q6_K in LFM_LAYOUT_X8: 8 rows per register (register lane r = row r of the group) ----
 *
 * Each X8 kernel gives, bit for bit, the floats of the row-layout kernel it replaces:
 * - Q4_K, tile_q4_Kx8 (= mm_q4_K_llama's order, llama.cpp's repacked 8-row kernels): per row, the
 *   exact integer dot (quants x activations x 6-bit scales) and the exact integer min term (mins x
 *   bsums) are summed over a whole block (K4_BLOCK) or over each 64-element chunk (K4_GEMM4), then
 *   each is folded by one FMA (x d*d_x, x dmin*d_x) into its own float; the result is the first
 *   minus the second. No lanes are added up: with rows in register lanes it is vertical arithmetic.
 * - Q6_K, tile_q6_Kx8 with tiled = 0 (= tile_q6_Kx, llama.cpp's dot product): the row kernel keeps
 *   8 int32 lanes per row (lane j: bytes 4j..4j+3 of each 32-byte chunk of quants, times the chunk's
 *   scale), folds lane j into float lane j with one FMA by d*d_x per block and adds the 8 lanes at
 *   the end (hsum_ps). Here register acc[t][j] holds lane j for the 8 rows, and hsum_rows8 repeats
 *   hsum_ps's addition tree across registers. With tiled = 1 (8+ tokens, llama.cpp's tiled kernel):
 *   per row and block, d times the exact integer total, then one FMA by d_x.
 * - Q5_K, tile_q5_Kx8 (= tile_q45_K's K5 / K5_TILED): Q6_K's lane scheme plus a per-row float for the
 *   mins, added after the lanes' tree; for 8+ tokens vertical arithmetic again (see there). */

/* hsum_ps of row r's 8 lanes for the 8 rows: ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)) */
INLINE __m256 hsum_rows8(const __m256 a[8]) {
    __m256 s0 = _mm256_add_ps(a[0], a[4]), s1 = _mm256_add_ps(a[1], a[5]);
    __m256 s2 = _mm256_add_ps(a[2], a[6]), s3 = _mm256_add_ps(a[3], a[7]);
    return _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
}

/* Byte i (< 4) of every row's 4 bytes (row r at bytes 4r..4r+3) as the int16 pair (b, b), b
 * zero-extended: the multiplier vpmaddwd needs to scale both halves of a row's lane. */
INLINE __m256i row_byte_pairs(__m256i v, int i) {
    const char z = (char)0x80;
    __m128i m = _mm_setr_epi8((char)i, z, (char)i, z, (char)(4 + i), z, (char)(4 + i), z, (char)(8 + i), z,
                              (char)(8 + i), z, (char)(12 + i), z, (char)(12 + i), z);
    return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(m));
}

/* Ask for the cache lines `ahead` bytes past p: the group blocks are one front-to-back stream (the
 * next group's blocks follow this one's), and for short rows the hardware prefetcher alone does not
 * run far enough ahead of the 4..8 blocks per group. Prefetching past the matrix is harmless. */
#ifndef X8_PREFETCH_AHEAD
#define X8_PREFETCH_AHEAD 2048
#endif
INLINE void prefetch_lines(const uint8_t *p, int bytes) {
    if (X8_PREFETCH_AHEAD <= 0) return; /* -DX8_PREFETCH_AHEAD=0: hardware prefetch only */
    for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)p + X8_PREFETCH_AHEAD + o, _MM_HINT_T0);
}

/* bsums[2j], bsums[2j+1] of an activation block as the int16 pair of every int32 lane */
INLINE __m256i bsum_pair(const lfm_block_q8_K *b, int j) { return _mm256_set1_epi32(load_i32(b->bsums + 2 * j)); }

/* k4_scales for the 8 rows of a Q4_K / Q5_K group block (scales: the 96 interleaved bytes): row r's
 * scales / mins 0..3 (sc[0], mn[0]) and 4..7 (sc[1], mn[1]) in bytes 4r..4r+3 */
INLINE void k4_scales_x8(const uint8_t *scales, __m256i sc[2], __m256i mn[2]) {
    const __m256i m4 = _mm256_set1_epi8(0x0f), m6 = _mm256_set1_epi8(0x3f), m2 = _mm256_set1_epi8(0x03);
    const __m256i a0 = _mm256_loadu_si256((const __m256i *)scales);
    const __m256i a1 = _mm256_loadu_si256((const __m256i *)(scales + 32));
    const __m256i a2 = _mm256_loadu_si256((const __m256i *)(scales + 64));
    sc[0] = _mm256_and_si256(a0, m6);
    mn[0] = _mm256_and_si256(a1, m6);
    sc[1] = _mm256_or_si256(_mm256_and_si256(a2, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(a0, 6), m2), 4));
    mn[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a2, 4), m4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(a1, 6), m2), 4));
}

/* Q4_K's float order is llama.cpp's 8-row kernels' (see tile_q45_K): per row, the exact integer dot
 * and min terms of a whole block (K4_BLOCK) or of each 64-element chunk (K4_GEMM4) go through one
 * FMA each into two floats, subtracted at the end. With rows in register lanes that is plain
 * vertical arithmetic. */
INLINE void tile_q4_Kx8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy, const int NT,
                        const int mode) {
    __m256 sacc[MAXT], macc[MAXT];
    for (int t = 0; t < NT; t++) sacc[t] = _mm256_setzero_ps(), macc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const lfm_block_q4_Kx8 *g = (const lfm_block_q4_Kx8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        prefetch_lines((const uint8_t *)(g + ib), (int)sizeof *g);
        const lfm_block_q8_K *yb[MAXT];
        __m256 dd[MAXT], dm[MAXT];
        __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].d));
        __m256 m8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].dmin));
        for (int t = 0; t < NT; t++) {
            yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
            dd[t] = _mm256_mul_ps(d8, _mm256_set1_ps(yb[t]->d)); /* d * y.d */
            dm[t] = _mm256_mul_ps(m8, _mm256_set1_ps(yb[t]->d)); /* dmin * y.d */
        }
        __m256i sc[2], mn[2];
        k4_scales_x8(g[ib].scales, sc, mn);
        __m256i s[8], m[8];
        for (int i = 0; i < 8; i++) {
#if QX86_VNNI
            /* scale i of each row as an int32 lane: it multiplies a whole sub-block's exact dot */
            s[i] = _mm256_and_si256(_mm256_srli_epi32(sc[i / 4], 8 * (i % 4)), _mm256_set1_epi32(0xff));
#else
            s[i] = row_byte_pairs(sc[i / 4], i % 4);
#endif
            m[i] = row_byte_pairs(mn[i / 4], i % 4);
        }
        __m256i vb[MAXT], mb[MAXT];
        for (int t = 0; t < NT; t++) vb[t] = _mm256_setzero_si256(), mb[t] = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i v[MAXT];
#if QX86_VNNI
            /* Each sub-block's quants x activations summed first (<= 32*15*127 per row), then times its
             * scale: one vpdpbusd per 4 bytes instead of vpmaddubsw + vpdpwssd. */
            __m256i v_lo[MAXT], v_hi[MAXT];
            for (int t = 0; t < NT; t++) v_lo[t] = _mm256_setzero_si256(), v_hi[t] = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(g[ib].qs + 128 * j + 32 * c));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                for (int t = 0; t < NT; t++) {
                    v_lo[t] = DPBUSD(v_lo[t], lo, _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 4 * j)));
                    v_hi[t] = DPBUSD(v_hi[t], hi, _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 32 + 4 * j)));
                }
            }
            for (int t = 0; t < NT; t++)
                v[t] = _mm256_add_epi32(_mm256_mullo_epi32(v_lo[t], s[2 * c]), _mm256_mullo_epi32(v_hi[t], s[2 * c + 1]));
#else
            for (int t = 0; t < NT; t++) v[t] = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(g[ib].qs + 128 * j + 32 * c));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                for (int t = 0; t < NT; t++) {
                    __m256i y0 = _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 4 * j));
                    __m256i y1 = _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 32 + 4 * j));
                    __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s[2 * c]);
                    __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s[2 * c + 1]);
                    v[t] = _mm256_add_epi32(v[t], _mm256_add_epi32(p0, p1));
                }
            }
#endif
            for (int t = 0; t < NT; t++) {
                /* mins of sub-blocks 2c and 2c+1 against their bsum pairs */
                __m256i mc = _mm256_add_epi32(_mm256_madd_epi16(m[2 * c], bsum_pair(yb[t], 2 * c)),
                                              _mm256_madd_epi16(m[2 * c + 1], bsum_pair(yb[t], 2 * c + 1)));
                if (mode == K4_GEMM4) {
                    sacc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v[t]), dd[t], sacc[t]);
                    macc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mc), dm[t], macc[t]);
                } else {
                    vb[t] = _mm256_add_epi32(vb[t], v[t]);
                    mb[t] = _mm256_add_epi32(mb[t], mc);
                }
            }
        }
        if (mode != K4_GEMM4)
            for (int t = 0; t < NT; t++) {
                sacc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(vb[t]), dd[t], sacc[t]);
                macc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mb[t]), dm[t], macc[t]);
            }
    }
    for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ldy, _mm256_sub_ps(sacc[t], macc[t]));
}

/* tiled = 0: the row kernel's 8 lanes per row (llama.cpp's dot product); tiled = 1: per row and
 * block, weight scale times the exact integer total, then one FMA with the activation scale
 * (llama.cpp's tiled kernel, 8+ token batches). */
INLINE void tile_q6_Kx8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy, const int NT,
                        const int tiled) {
    __m256 acc[MAXT][8], tacc[MAXT];
    for (int t = 0; t < NT; t++) {
        tacc[t] = _mm256_setzero_ps();
        for (int j = 0; j < 8; j++) acc[t][j] = _mm256_setzero_ps();
    }
    /* int16 pairs (s[2k], s[2k+1]) of each row -> (s[2k], s[2k]) and (s[2k+1], s[2k+1]) */
    const __m256i dup_even = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
    const __m256i dup_odd = _mm256_broadcastsi128_si256(_mm_setr_epi8(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
    const lfm_block_q6_Kx8 *g = (const lfm_block_q6_Kx8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        prefetch_lines((const uint8_t *)(g + ib), (int)sizeof *g);
        const lfm_block_q8_K *yb[MAXT];
        __m256 dd[MAXT];
        __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].d));
        __m256i tot[MAXT];
        for (int t = 0; t < NT; t++) {
            yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
            dd[t] = _mm256_mul_ps(d8, _mm256_set1_ps(yb[t]->d));
            tot[t] = _mm256_setzero_si256();
        }
        __m256i sp[8], s[16]; /* sp[k]: pairs (s[2k], s[2k+1]); s[g]: scale g of each row, twice */
        for (int k = 0; k < 8; k++)
            sp[k] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(g[ib].scales + 16 * k)));
#if QX86_VNNI
        if (tiled) {
            /* Only each row's block total counts here, so the 4-byte dots of one scale group (lanes j < 4
             * or j >= 4 of chunk (h, k)) are summed by vpdpbusd first and multiplied by the group's
             * scale once: exact int32 throughout (|sum| <= 16*64*63*128 per group and row). */
            for (int t = 0; t < NT; t++)
                for (int k = 0; k < 8; k++) /* the -32 offset, as below */
                    tot[t] = _mm256_sub_epi32(tot[t], _mm256_slli_epi32(_mm256_madd_epi16(sp[k], bsum_pair(yb[t], k)), 5));
            for (int half = 0; half < 2; half++)
                for (int h = 0; h < 2; h++) {
                    __m256i a[4][MAXT];
                    for (int k = 0; k < 4; k++)
                        for (int t = 0; t < NT; t++) a[k][t] = _mm256_setzero_si256();
                    for (int j = 4 * half; j < 4 * half + 4; j++) {
                        const uint8_t *p = g[ib].q + 192 * j + 96 * h;
                        __m256i q[4];
                        q6_unpack(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)(p + 32)),
                                  _mm256_loadu_si256((const __m256i *)(p + 64)), q);
                        for (int k = 0; k < 4; k++)
                            for (int t = 0; t < NT; t++)
                                a[k][t] = DPBUSD(a[k][t], q[k],
                                                 _mm256_set1_epi32(load_i32(yb[t]->qs + 128 * h + 32 * k + 4 * j)));
                    }
                    for (int k = 0; k < 4; k++) {
                        /* group 8h + 2k + half: its scale as an int32 lane, from the pair (s[2(4h+k)], s[2(4h+k)+1]) */
                        const __m256i pair = sp[4 * h + k];
                        const __m256i s32 = half ? _mm256_srai_epi32(pair, 16) : _mm256_srai_epi32(_mm256_slli_epi32(pair, 16), 16);
                        for (int t = 0; t < NT; t++) tot[t] = _mm256_add_epi32(tot[t], _mm256_mullo_epi32(a[k][t], s32));
                    }
                }
            for (int t = 0; t < NT; t++)
                tacc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d8, _mm256_cvtepi32_ps(tot[t])), _mm256_set1_ps(yb[t]->d), tacc[t]);
            continue;
        }
#endif
        for (int k = 0; k < 8; k++) {
            s[2 * k] = _mm256_shuffle_epi8(sp[k], dup_even);
            s[2 * k + 1] = _mm256_shuffle_epi8(sp[k], dup_odd);
        }
        for (int j = 0; j < 8; j++) {
            __m256i v[MAXT];
            for (int t = 0; t < NT; t++) /* the -32 offset: 32 * (s[2j] bsum[2j] + s[2j+1] bsum[2j+1]) */
                v[t] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sp[j], bsum_pair(yb[t], j)), 5));
            for (int h = 0; h < 2; h++) {
                const uint8_t *p = g[ib].q + 192 * j + 96 * h;
                __m256i ql0 = _mm256_loadu_si256((const __m256i *)p);
                __m256i ql1 = _mm256_loadu_si256((const __m256i *)(p + 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 64));
                __m256i q[4];
                q6_unpack(ql0, ql1, qh, q);
                for (int k = 0; k < 4; k++) {
                    /* chunk (h, k): lanes 0..3 are group 8h + 2k, lanes 4..7 group 8h + 2k + 1 */
                    __m256i sk = s[8 * h + 2 * k + (j >= 4)];
                    for (int t = 0; t < NT; t++) {
                        __m256i yv = _mm256_set1_epi32(load_i32(yb[t]->qs + 128 * h + 32 * k + 4 * j));
#if QX86_VNNI
                        v[t] = DPWSSD(v[t], _mm256_maddubs_epi16(q[k], yv), sk);
#else
                        v[t] = _mm256_add_epi32(v[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], yv), sk));
#endif
                    }
                }
            }
            for (int t = 0; t < NT; t++) {
                if (tiled) tot[t] = _mm256_add_epi32(tot[t], v[t]);
                else acc[t][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v[t]), dd[t], acc[t][j]);
            }
        }
        if (tiled)
            for (int t = 0; t < NT; t++)
                tacc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d8, _mm256_cvtepi32_ps(tot[t])), _mm256_set1_ps(yb[t]->d), tacc[t]);
    }
    for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ldy, tiled ? tacc[t] : hsum_rows8(acc[t]));
}

/* Bit k (a constant < 8) of every byte of hb moved to bit 4: the fifth bit of a Q5_K quant. The
 * 16-bit shifts cannot carry a neighbour's bit in: the other bits are masked off first. */
INLINE __m256i q5_fifth_bit(__m256i hb, const int k) {
    const __m256i b = _mm256_and_si256(hb, _mm256_set1_epi8((char)(1 << k)));
    return k < 4 ? _mm256_slli_epi16(b, 4 - k) : k > 4 ? _mm256_srli_epi16(b, k - 4) : b;
}

/* The 32 low (lo) and high (hi) 5-bit quants of chunk c from 32 bytes of nibbles q and the high-bit
 * bytes hb. */
INLINE void q5_unpack(__m256i q, __m256i hb, const int c, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    *lo = _mm256_or_si256(_mm256_and_si256(q, m4), q5_fifth_bit(hb, 2 * c));
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), q5_fifth_bit(hb, 2 * c + 1));
}

/* Q5_K, one 8-row group x NT tokens, with tile_q45_K's floats bit for bit (register lane r = row r):
 * - tiled = 0 (mode K5, fewer than 8 tokens): the row kernel keeps 8 int32 lanes per row (lane j:
 *   bytes 4j..4j+3 of each 32-byte chunk of quants times the chunk's scale), folds lane j into
 *   float lane j with one FMA by y.d*d per block, and the mins (exact integer per block) into one
 *   float with fma(-y.d*dmin, mins, .); the result is hsum_ps of the 8 lanes plus that float. Here
 *   acc[t][j] holds lane j of the 8 rows (one qh load and four qs loads of the group block are
 *   exactly lane j's bytes), macc[t] the rows' min floats, and hsum_rows8 repeats hsum_ps's tree.
 * - tiled = 1 (K5_TILED, 8+ tokens): per row and block r = fma(-dmin, mins, d*total), then
 *   acc = fma(r, y.d, acc): vertical arithmetic on the exact integer totals. */
INLINE void tile_q5_Kx8(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy, const int NT,
                        const int tiled) {
    __m256 acc[MAXT][8], macc[MAXT], tacc[MAXT];
    for (int t = 0; t < NT; t++) {
        macc[t] = tacc[t] = _mm256_setzero_ps();
        for (int j = 0; j < 8; j++) acc[t][j] = _mm256_setzero_ps();
    }
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const lfm_block_q5_Kx8 *g = (const lfm_block_q5_Kx8 *)(const void *)w;
    for (int64_t ib = 0; ib < nb; ib++) {
        prefetch_lines((const uint8_t *)(g + ib), (int)sizeof *g);
        const lfm_block_q8_K *yb[MAXT];
        const __m256 d8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].d));
        const __m256 m8 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)g[ib].dmin));
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        __m256i sc[2], mn[2];
        k4_scales_x8(g[ib].scales, sc, mn);
        __m256i mins[MAXT], tot[MAXT]; /* per row: the exact min term and (tiled) the exact dot total */
        for (int t = 0; t < NT; t++) {
            mins[t] = tot[t] = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++)
                mins[t] = _mm256_add_epi32(mins[t], _mm256_madd_epi16(row_byte_pairs(mn[i / 4], i % 4), bsum_pair(yb[t], i)));
        }
#if QX86_VNNI
        if (tiled) {
            /* Only each row's block total counts here: a sub-block's 4-byte dots summed by vpdpbusd first
             * (<= 32*31*127 per row), then one multiply by its scale. */
            for (int c = 0; c < 4; c++) {
                __m256i a_lo[MAXT], a_hi[MAXT];
                for (int t = 0; t < NT; t++) a_lo[t] = a_hi[t] = _mm256_setzero_si256();
                for (int j = 0; j < 8; j++) {
                    const __m256i hb = _mm256_loadu_si256((const __m256i *)(g[ib].qh + 32 * j));
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(g[ib].qs + 128 * j + 32 * c));
                    __m256i lo, hi;
                    q5_unpack(q, hb, c, &lo, &hi);
                    for (int t = 0; t < NT; t++) {
                        a_lo[t] = DPBUSD(a_lo[t], lo, _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 4 * j)));
                        a_hi[t] = DPBUSD(a_hi[t], hi, _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 32 + 4 * j)));
                    }
                }
                /* scales 2c and 2c + 1 of each row as int32 lanes */
                const __m256i s_lo = _mm256_and_si256(_mm256_srli_epi32(sc[c / 2], 8 * ((2 * c) % 4)), _mm256_set1_epi32(0xff));
                const __m256i s_hi = _mm256_and_si256(_mm256_srli_epi32(sc[c / 2], 8 * ((2 * c + 1) % 4)), _mm256_set1_epi32(0xff));
                for (int t = 0; t < NT; t++)
                    tot[t] = _mm256_add_epi32(tot[t], _mm256_add_epi32(_mm256_mullo_epi32(a_lo[t], s_lo), _mm256_mullo_epi32(a_hi[t], s_hi)));
            }
        } else
#endif
        {
            __m256i s[8]; /* scale i of each row as the int16 pair (s, s) */
            for (int i = 0; i < 8; i++) s[i] = row_byte_pairs(sc[i / 4], i % 4);
            __m256 dd[MAXT]; /* y.d * d, as the row kernel forms it */
            for (int t = 0; t < NT; t++) dd[t] = _mm256_mul_ps(_mm256_set1_ps(yb[t]->d), d8);
            for (int j = 0; j < 8; j++) {
                const __m256i hb = _mm256_loadu_si256((const __m256i *)(g[ib].qh + 32 * j));
                /* lane j of the low and of the high sub-blocks: two chains, as one chain of vpdpwssd would be
                 * bound by its latency */
                __m256i v[MAXT], v2[MAXT];
                for (int t = 0; t < NT; t++) v[t] = v2[t] = _mm256_setzero_si256();
                for (int c = 0; c < 4; c++) {
                    const __m256i q = _mm256_loadu_si256((const __m256i *)(g[ib].qs + 128 * j + 32 * c));
                    __m256i lo, hi;
                    q5_unpack(q, hb, c, &lo, &hi);
                    for (int t = 0; t < NT; t++) {
                        const __m256i y0 = _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 4 * j));
                        const __m256i y1 = _mm256_set1_epi32(load_i32(yb[t]->qs + 64 * c + 32 + 4 * j));
#if QX86_VNNI
                        v[t] = DPWSSD(v[t], _mm256_maddubs_epi16(lo, y0), s[2 * c]);
                        v2[t] = DPWSSD(v2[t], _mm256_maddubs_epi16(hi, y1), s[2 * c + 1]);
#else
                        v[t] = _mm256_add_epi32(v[t], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y0), s[2 * c]));
                        v2[t] = _mm256_add_epi32(v2[t], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y1), s[2 * c + 1]));
#endif
                    }
                }
                for (int t = 0; t < NT; t++) {
                    v[t] = _mm256_add_epi32(v[t], v2[t]);
                    if (tiled) tot[t] = _mm256_add_epi32(tot[t], v[t]);
                    else acc[t][j] = _mm256_fmadd_ps(dd[t], _mm256_cvtepi32_ps(v[t]), acc[t][j]);
                }
            }
        }
        for (int t = 0; t < NT; t++) {
            const __m256 fmins = _mm256_cvtepi32_ps(mins[t]);
            if (tiled) {
                const __m256 r = _mm256_fmadd_ps(_mm256_xor_ps(m8, sign), fmins, _mm256_mul_ps(d8, _mm256_cvtepi32_ps(tot[t])));
                tacc[t] = _mm256_fmadd_ps(r, _mm256_set1_ps(yb[t]->d), tacc[t]);
            } else {
                macc[t] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(-yb[t]->d), m8), fmins, macc[t]);
            }
        }
    }
    for (int t = 0; t < NT; t++) _mm256_storeu_ps(y + t * ldy, tiled ? tacc[t] : _mm256_add_ps(hsum_rows8(acc[t]), macc[t]));
}

static void q4_Kx8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 1, K4_BLOCK); }
static void q4_Kx8_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 2, K4_BLOCK); }
static void q4_Kx8_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 3, K4_BLOCK); }
static void q4_Kx8_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 4, K4_BLOCK); }
static void q4_Kx8g_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 1, K4_GEMM4); }
static void q4_Kx8g_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 2, K4_GEMM4); }
static void q4_Kx8g_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 3, K4_GEMM4); }
static void q4_Kx8g_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q4_Kx8(nb, w, x, bx, y, ldy, 4, K4_GEMM4); }
static void q6_Kx8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 1, 0); }
static void q6_Kx8_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 2, 0); }
static void q6_Kx8_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 3, 0); }
static void q6_Kx8_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 4, 0); }
static void q6_Kx8t_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 1, 1); }
static void q6_Kx8t_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 2, 1); }
static void q6_Kx8t_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 3, 1); }
static void q6_Kx8t_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q6_Kx8(nb, w, x, bx, y, ldy, 4, 1); }

static void q5_Kx8_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 1, 0); }
static void q5_Kx8_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 2, 0); }
static void q5_Kx8_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 3, 0); }
static void q5_Kx8_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 4, 0); }
static void q5_Kx8t_1(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 1, 1); }
static void q5_Kx8t_2(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 2, 1); }
static void q5_Kx8t_3(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 3, 1); }
static void q5_Kx8t_4(int64_t nb, const uint8_t *w, const uint8_t *x, size_t bx, float *y, int64_t ldy) { tile_q5_Kx8(nb, w, x, bx, y, ldy, 4, 1); }

/* 8-row groups x 4-token tiles, the tokens in chunks whose activations stay in L2 */
static int64_t k_chunk_tokens(size_t bx) { return lfm_max64(4, lfm_min64(64, (int64_t)((256 << 10) / bx))); }

static void mm_k_x8(const tile_x8_fn tiles[4], int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x,
                    size_t bx, int64_t nt, float *y, int64_t ldy) {
    x8_drive(tiles, 4, n / LFM_QK_K, k_chunk_tokens(bx), w, bw, nr, x, bx, nt, y, ldy);
}

/* the token split of mm_q4_K_llama: groups of 4 through the GEMM order, the rest one by one */
static void mm_q4_K_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    static const tile_x8_fn block[4] = {q4_Kx8_1, q4_Kx8_2, q4_Kx8_3, q4_Kx8_4};
    static const tile_x8_fn gemm4[4] = {q4_Kx8g_1, q4_Kx8g_2, q4_Kx8g_3, q4_Kx8g_4};
    const int64_t grouped = nt > 3 ? nt - nt % 4 : 0;
    if (grouped) mm_k_x8(gemm4, n, w, bw, nr, x, bx, grouped, y, ldy);
    if (nt > grouped) mm_k_x8(block, n, w, bw, nr, x + (size_t)grouped * bx, bx, nt - grouped, y + grouped * ldy, ldy);
}

/* every token in the one-token order (llama.cpp's repacked MUL_MAT_ID), still 4 tokens per pass */
static void mm_q4_K_x8_tok(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                           float *y, int64_t ldy) {
    static const tile_x8_fn block[4] = {q4_Kx8_1, q4_Kx8_2, q4_Kx8_3, q4_Kx8_4};
    mm_k_x8(block, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void mm_q5_K_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    static const tile_x8_fn dot[4] = {q5_Kx8_1, q5_Kx8_2, q5_Kx8_3, q5_Kx8_4};
    static const tile_x8_fn tiled[4] = {q5_Kx8t_1, q5_Kx8t_2, q5_Kx8t_3, q5_Kx8t_4};
    mm_k_x8(nt >= 8 ? tiled : dot, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void mm_q6_K_x8(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                       float *y, int64_t ldy) {
    static const tile_x8_fn dot[4] = {q6_Kx8_1, q6_Kx8_2, q6_Kx8_3, q6_Kx8_4};
    static const tile_x8_fn tiled[4] = {q6_Kx8t_1, q6_Kx8t_2, q6_Kx8t_3, q6_Kx8t_4};
    mm_k_x8(nt >= 8 ? tiled : dot, n, w, bw, nr, x, bx, nt, y, ldy);
}

#if defined(QX86_ZMM)
/* ---- Q4_K / Q5_K / Q6_K in LFM_LAYOUT_X8 on 512-bit registers: two 8-row groups per register ----
 *
 * Register lane r (< 16) is row r of two groups side by side: lanes 0..7 the first group's rows
 * (blocks at w0), 8..15 the second's (w1). Each 256-bit half of every vector holds what the 256-bit
 * kernel's vector holds for its group, and every operation here works lane by lane or inside 128-bit
 * lanes (vpshufb), so each row's int32 lanes and float operations are tile_q4_Kx8's / tile_q5_Kx8's /
 * tile_q6_Kx8's (their VNNI paths: this level has EVEX VNNI), bit for bit. The drivers keep mm_*_K_x8's
 * token split (which decides the rounding order) and token chunks. */

/* Tokens per 512-bit K-quant tile: 4, as the 256-bit tiles (6 or 8 measured slower: the accumulators
 * and per-token scales no longer fit the 32 registers) */
#define K16_MAXT 4

/* 32 bytes at a (lanes 0..7) and 32 at b (lanes 8..15) */
INLINE __m512i ld_x16(const uint8_t *a, const uint8_t *b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                              _mm256_loadu_si256((const __m256i *)b), 1);
}

/* 16 bytes at a and 16 at b */
INLINE __m256i ld_x16_half(const void *a, const void *b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                   _mm_loadu_si128((const __m128i *)b), 1);
}

/* the 8 halves at a and the 8 at b as 16 floats */
INLINE __m512 ph_x16(const lfm_half *a, const lfm_half *b) { return _mm512_cvtph_ps(ld_x16_half(a, b)); }

INLINE __m512i bcast_i32_x16(const void *p) { return _mm512_set1_epi32(load_i32(p)); }

/* vpdpbusd(acc, u, the 4 bytes at p in every lane), the broadcast embedded in the instruction (GCC
 * keeps a separate vpbroadcastd otherwise). Measured on Zen 5: +15-25% for the Q5_K / Q6_K tiles, but
 * slower for Q4_K's, which keeps the intrinsics (and GCC's vpbroadcastd). */
INLINE __m512i dpbusd_bcast_x16(__m512i acc, __m512i u, const void *p) {
#if defined(K16_NO_ASM) /* -DK16_NO_ASM: the intrinsics, for comparison */
    return _mm512_dpbusd_epi32(acc, u, bcast_i32_x16(p));
#else
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*(const char(*)[4])p));
    return acc;
#endif
}

/* hsum_rows8 on 16 rows */
INLINE __m512 hsum_rows16(const __m512 a[8]) {
    __m512 s0 = _mm512_add_ps(a[0], a[4]), s1 = _mm512_add_ps(a[1], a[5]);
    __m512 s2 = _mm512_add_ps(a[2], a[6]), s3 = _mm512_add_ps(a[3], a[7]);
    return _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3));
}

/* row_byte_pairs on 16 rows */
INLINE __m512i row_byte_pairs_x16(__m512i v, int i) {
    const char z = (char)0x80;
    __m128i m = _mm_setr_epi8((char)i, z, (char)i, z, (char)(4 + i), z, (char)(4 + i), z, (char)(8 + i), z,
                              (char)(8 + i), z, (char)(12 + i), z, (char)(12 + i), z);
    return _mm512_shuffle_epi8(v, _mm512_broadcast_i32x4(m));
}

INLINE __m512i bsum_pair_x16(const lfm_block_q8_K *b, int j) { return bcast_i32_x16(b->bsums + 2 * j); }

/* k4_scales_x8 on two group blocks' scales */
INLINE void k4_scales_x16(const uint8_t *s0, const uint8_t *s1, __m512i sc[2], __m512i mn[2]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m6 = _mm512_set1_epi8(0x3f), m2 = _mm512_set1_epi8(0x03);
    const __m512i a0 = ld_x16(s0, s1), a1 = ld_x16(s0 + 32, s1 + 32), a2 = ld_x16(s0 + 64, s1 + 64);
    sc[0] = _mm512_and_si512(a0, m6);
    mn[0] = _mm512_and_si512(a1, m6);
    sc[1] = _mm512_or_si512(_mm512_and_si512(a2, m4), _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(a0, 6), m2), 4));
    mn[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(a2, 4), m4),
                            _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi16(a1, 6), m2), 4));
}

/* tile_q4_Kx8 (its VNNI path) on two groups */
INLINE void tile_q4_Kx16(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y,
                         int64_t ldy, const int NT, const int mode) {
    __m512 sacc[K16_MAXT], macc[K16_MAXT];
    for (int t = 0; t < NT; t++) sacc[t] = _mm512_setzero_ps(), macc[t] = _mm512_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f), lo8 = _mm512_set1_epi32(0xff);
    const lfm_block_q4_Kx8 *g0 = (const lfm_block_q4_Kx8 *)(const void *)w0;
    const lfm_block_q4_Kx8 *g1 = (const lfm_block_q4_Kx8 *)(const void *)w1;
    for (int64_t ib = 0; ib < nb; ib++) {
        prefetch_lines((const uint8_t *)(g0 + ib), (int)sizeof *g0);
        prefetch_lines((const uint8_t *)(g1 + ib), (int)sizeof *g1);
        const lfm_block_q8_K *yb[K16_MAXT];
        const __m512 d16 = ph_x16(g0[ib].d, g1[ib].d), m16 = ph_x16(g0[ib].dmin, g1[ib].dmin);
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        __m512i sc[2], mn[2];
        k4_scales_x16(g0[ib].scales, g1[ib].scales, sc, mn);
        __m512i vb[K16_MAXT], mb[K16_MAXT];
        for (int t = 0; t < NT; t++) vb[t] = _mm512_setzero_si512(), mb[t] = _mm512_setzero_si512();
#pragma GCC unroll 4 /* GCC leaves this loop rolled (shift counts in registers): ~10% slower */
        for (int c = 0; c < 4; c++) {
            __m512i v_lo[K16_MAXT], v_hi[K16_MAXT];
            for (int t = 0; t < NT; t++) v_lo[t] = _mm512_setzero_si512(), v_hi[t] = _mm512_setzero_si512();
            for (int j = 0; j < 8; j++) {
                const __m512i q = ld_x16(g0[ib].qs + 128 * j + 32 * c, g1[ib].qs + 128 * j + 32 * c);
                const __m512i lo = _mm512_and_si512(q, m4), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
                for (int t = 0; t < NT; t++) {
                    v_lo[t] = _mm512_dpbusd_epi32(v_lo[t], lo, bcast_i32_x16(yb[t]->qs + 64 * c + 4 * j));
                    v_hi[t] = _mm512_dpbusd_epi32(v_hi[t], hi, bcast_i32_x16(yb[t]->qs + 64 * c + 32 + 4 * j));
                }
            }
            /* scales and mins 2c and 2c + 1 of each row */
            const __m512i s_lo = _mm512_and_si512(_mm512_srli_epi32(sc[c / 2], 8 * ((2 * c) % 4)), lo8);
            const __m512i s_hi = _mm512_and_si512(_mm512_srli_epi32(sc[c / 2], 8 * ((2 * c + 1) % 4)), lo8);
            const __m512i n_lo = row_byte_pairs_x16(mn[c / 2], (2 * c) % 4);
            const __m512i n_hi = row_byte_pairs_x16(mn[c / 2], (2 * c + 1) % 4);
            for (int t = 0; t < NT; t++) {
                const __m512i v = _mm512_add_epi32(_mm512_mullo_epi32(v_lo[t], s_lo), _mm512_mullo_epi32(v_hi[t], s_hi));
                const __m512i mc = _mm512_add_epi32(_mm512_madd_epi16(n_lo, bsum_pair_x16(yb[t], 2 * c)),
                                                    _mm512_madd_epi16(n_hi, bsum_pair_x16(yb[t], 2 * c + 1)));
                if (mode == K4_GEMM4) {
                    const __m512 yd = _mm512_set1_ps(yb[t]->d);
                    sacc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(d16, yd), sacc[t]);
                    macc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mc), _mm512_mul_ps(m16, yd), macc[t]);
                } else {
                    vb[t] = _mm512_add_epi32(vb[t], v);
                    mb[t] = _mm512_add_epi32(mb[t], mc);
                }
            }
        }
        if (mode != K4_GEMM4)
            for (int t = 0; t < NT; t++) {
                const __m512 yd = _mm512_set1_ps(yb[t]->d);
                sacc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(vb[t]), _mm512_mul_ps(d16, yd), sacc[t]);
                macc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mb[t]), _mm512_mul_ps(m16, yd), macc[t]);
            }
    }
    for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ldy, _mm512_sub_ps(sacc[t], macc[t]));
}

/* q6_unpack on 16 rows */
INLINE void q6_unpack_x16(__m512i ql0, __m512i ql1, __m512i qh, __m512i q[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    q[0] = _mm512_or_si512(_mm512_and_si512(ql0, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
    q[1] = _mm512_or_si512(_mm512_and_si512(ql1, m4), _mm512_and_si512(_mm512_slli_epi16(qh, 2), m30));
    q[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql0, 4), m4), _mm512_and_si512(qh, m30));
    q[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql1, 4), m4), _mm512_and_si512(_mm512_srli_epi16(qh, 2), m30));
}

/* tile_q6_Kx8 (its VNNI paths) on two groups */
INLINE void tile_q6_Kx16(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y,
                         int64_t ldy, const int NT, const int tiled) {
    __m512 acc[K16_MAXT][8], tacc[K16_MAXT];
    for (int t = 0; t < NT; t++) {
        tacc[t] = _mm512_setzero_ps();
        if (!tiled)
            for (int j = 0; j < 8; j++) acc[t][j] = _mm512_setzero_ps();
    }
    const __m512i dup_even = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
    const __m512i dup_odd = _mm512_broadcast_i32x4(_mm_setr_epi8(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
    const lfm_block_q6_Kx8 *g0 = (const lfm_block_q6_Kx8 *)(const void *)w0;
    const lfm_block_q6_Kx8 *g1 = (const lfm_block_q6_Kx8 *)(const void *)w1;
    for (int64_t ib = 0; ib < nb; ib++) {
        prefetch_lines((const uint8_t *)(g0 + ib), (int)sizeof *g0);
        prefetch_lines((const uint8_t *)(g1 + ib), (int)sizeof *g1);
        const lfm_block_q8_K *yb[K16_MAXT];
        const __m512 d16 = ph_x16(g0[ib].d, g1[ib].d);
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        __m512i sp[8]; /* sp[k]: the int16 pairs (s[2k], s[2k+1]) of each row */
        for (int k = 0; k < 8; k++) sp[k] = _mm512_cvtepi8_epi16(ld_x16_half(g0[ib].scales + 16 * k, g1[ib].scales + 16 * k));
        if (tiled) {
            __m512i tot[K16_MAXT];
            for (int t = 0; t < NT; t++) {
                tot[t] = _mm512_setzero_si512();
                for (int k = 0; k < 8; k++) /* the -32 offset */
                    tot[t] = _mm512_sub_epi32(tot[t], _mm512_slli_epi32(_mm512_madd_epi16(sp[k], bsum_pair_x16(yb[t], k)), 5));
            }
            for (int half = 0; half < 2; half++)
#pragma GCC unroll 2 /* measured a little faster unrolled */
                for (int h = 0; h < 2; h++) {
                    __m512i a[4][K16_MAXT];
                    for (int k = 0; k < 4; k++)
                        for (int t = 0; t < NT; t++) a[k][t] = _mm512_setzero_si512();
                    for (int j = 4 * half; j < 4 * half + 4; j++) {
                        const uint8_t *p0 = g0[ib].q + 192 * j + 96 * h, *p1 = g1[ib].q + 192 * j + 96 * h;
                        __m512i q[4];
                        q6_unpack_x16(ld_x16(p0, p1), ld_x16(p0 + 32, p1 + 32), ld_x16(p0 + 64, p1 + 64), q);
                        for (int k = 0; k < 4; k++)
                            for (int t = 0; t < NT; t++)
                                a[k][t] = dpbusd_bcast_x16(a[k][t], q[k], yb[t]->qs + 128 * h + 32 * k + 4 * j);
                    }
                    for (int k = 0; k < 4; k++) {
                        const __m512i pair = sp[4 * h + k];
                        const __m512i s32 = half ? _mm512_srai_epi32(pair, 16) : _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16);
                        for (int t = 0; t < NT; t++) tot[t] = _mm512_add_epi32(tot[t], _mm512_mullo_epi32(a[k][t], s32));
                    }
                }
            for (int t = 0; t < NT; t++)
                tacc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d16, _mm512_cvtepi32_ps(tot[t])), _mm512_set1_ps(yb[t]->d), tacc[t]);
            continue;
        }
        __m512i s[16]; /* s[g]: scale g of each row, twice */
        for (int k = 0; k < 8; k++) {
            s[2 * k] = _mm512_shuffle_epi8(sp[k], dup_even);
            s[2 * k + 1] = _mm512_shuffle_epi8(sp[k], dup_odd);
        }
        for (int j = 0; j < 8; j++) {
            __m512i v[K16_MAXT];
            for (int t = 0; t < NT; t++)
                v[t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_madd_epi16(sp[j], bsum_pair_x16(yb[t], j)), 5));
            for (int h = 0; h < 2; h++) {
                const uint8_t *p0 = g0[ib].q + 192 * j + 96 * h, *p1 = g1[ib].q + 192 * j + 96 * h;
                __m512i q[4];
                q6_unpack_x16(ld_x16(p0, p1), ld_x16(p0 + 32, p1 + 32), ld_x16(p0 + 64, p1 + 64), q);
                for (int k = 0; k < 4; k++) {
                    const __m512i sk = s[8 * h + 2 * k + (j >= 4)];
                    for (int t = 0; t < NT; t++) {
                        const __m512i yv = bcast_i32_x16(yb[t]->qs + 128 * h + 32 * k + 4 * j);
                        v[t] = _mm512_dpwssd_epi32(v[t], _mm512_maddubs_epi16(q[k], yv), sk);
                    }
                }
            }
            for (int t = 0; t < NT; t++)
                acc[t][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v[t]), _mm512_mul_ps(d16, _mm512_set1_ps(yb[t]->d)), acc[t][j]);
        }
    }
    for (int t = 0; t < NT; t++) _mm512_storeu_ps(y + t * ldy, tiled ? tacc[t] : hsum_rows16(acc[t]));
}

/* q5_fifth_bit / q5_unpack on 16 rows */
INLINE __m512i q5_fifth_bit_x16(__m512i hb, const int k) {
    const __m512i b = _mm512_and_si512(hb, _mm512_set1_epi8((char)(1 << k)));
    return k < 4 ? _mm512_slli_epi16(b, 4 - k) : k > 4 ? _mm512_srli_epi16(b, k - 4) : b;
}

INLINE void q5_unpack_x16(__m512i q, __m512i hb, const int c, __m512i *lo, __m512i *hi) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    *lo = _mm512_or_si512(_mm512_and_si512(q, m4), q5_fifth_bit_x16(hb, 2 * c));
    *hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4), m4), q5_fifth_bit_x16(hb, 2 * c + 1));
}

/* tile_q5_Kx8 (its VNNI paths) on two groups */
INLINE void tile_q5_Kx16(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y,
                         int64_t ldy, const int NT, const int tiled) {
    __m512 acc[K16_MAXT][8], macc[K16_MAXT], tacc[K16_MAXT];
    for (int t = 0; t < NT; t++) {
        macc[t] = tacc[t] = _mm512_setzero_ps();
        if (!tiled)
            for (int j = 0; j < 8; j++) acc[t][j] = _mm512_setzero_ps();
    }
    const __m512 sign = _mm512_set1_ps(-0.0f);
    const __m512i lo8 = _mm512_set1_epi32(0xff);
    const lfm_block_q5_Kx8 *g0 = (const lfm_block_q5_Kx8 *)(const void *)w0;
    const lfm_block_q5_Kx8 *g1 = (const lfm_block_q5_Kx8 *)(const void *)w1;
    for (int64_t ib = 0; ib < nb; ib++) {
        prefetch_lines((const uint8_t *)(g0 + ib), (int)sizeof *g0);
        prefetch_lines((const uint8_t *)(g1 + ib), (int)sizeof *g1);
        const lfm_block_q8_K *yb[K16_MAXT];
        const __m512 d16 = ph_x16(g0[ib].d, g1[ib].d), m16 = ph_x16(g0[ib].dmin, g1[ib].dmin);
        for (int t = 0; t < NT; t++) yb[t] = (const lfm_block_q8_K *)(const void *)(x + t * bx) + ib;
        __m512i sc[2], mn[2];
        k4_scales_x16(g0[ib].scales, g1[ib].scales, sc, mn);
        __m512i mins[K16_MAXT], tot[K16_MAXT];
        for (int t = 0; t < NT; t++) {
            mins[t] = tot[t] = _mm512_setzero_si512();
            for (int i = 0; i < 8; i++)
                mins[t] = _mm512_add_epi32(mins[t], _mm512_madd_epi16(row_byte_pairs_x16(mn[i / 4], i % 4), bsum_pair_x16(yb[t], i)));
        }
        if (tiled) {
            for (int c = 0; c < 4; c++) {
                __m512i a_lo[K16_MAXT], a_hi[K16_MAXT];
                for (int t = 0; t < NT; t++) a_lo[t] = a_hi[t] = _mm512_setzero_si512();
                for (int j = 0; j < 8; j++) {
                    const __m512i hb = ld_x16(g0[ib].qh + 32 * j, g1[ib].qh + 32 * j);
                    const __m512i q = ld_x16(g0[ib].qs + 128 * j + 32 * c, g1[ib].qs + 128 * j + 32 * c);
                    __m512i lo, hi;
                    q5_unpack_x16(q, hb, c, &lo, &hi);
                    for (int t = 0; t < NT; t++) {
                        a_lo[t] = dpbusd_bcast_x16(a_lo[t], lo, yb[t]->qs + 64 * c + 4 * j);
                        a_hi[t] = dpbusd_bcast_x16(a_hi[t], hi, yb[t]->qs + 64 * c + 32 + 4 * j);
                    }
                }
                const __m512i s_lo = _mm512_and_si512(_mm512_srli_epi32(sc[c / 2], 8 * ((2 * c) % 4)), lo8);
                const __m512i s_hi = _mm512_and_si512(_mm512_srli_epi32(sc[c / 2], 8 * ((2 * c + 1) % 4)), lo8);
                for (int t = 0; t < NT; t++)
                    tot[t] = _mm512_add_epi32(tot[t], _mm512_add_epi32(_mm512_mullo_epi32(a_lo[t], s_lo), _mm512_mullo_epi32(a_hi[t], s_hi)));
            }
        } else {
            __m512i s[8]; /* scale i of each row as the int16 pair (s, s) */
            for (int i = 0; i < 8; i++) s[i] = row_byte_pairs_x16(sc[i / 4], i % 4);
            __m512 dd[K16_MAXT]; /* y.d * d */
            for (int t = 0; t < NT; t++) dd[t] = _mm512_mul_ps(_mm512_set1_ps(yb[t]->d), d16);
            for (int j = 0; j < 8; j++) {
                const __m512i hb = ld_x16(g0[ib].qh + 32 * j, g1[ib].qh + 32 * j);
                __m512i v[K16_MAXT], v2[K16_MAXT];
                for (int t = 0; t < NT; t++) v[t] = v2[t] = _mm512_setzero_si512();
                for (int c = 0; c < 4; c++) {
                    const __m512i q = ld_x16(g0[ib].qs + 128 * j + 32 * c, g1[ib].qs + 128 * j + 32 * c);
                    __m512i lo, hi;
                    q5_unpack_x16(q, hb, c, &lo, &hi);
                    for (int t = 0; t < NT; t++) {
                        const __m512i y0 = bcast_i32_x16(yb[t]->qs + 64 * c + 4 * j);
                        const __m512i y1 = bcast_i32_x16(yb[t]->qs + 64 * c + 32 + 4 * j);
                        v[t] = _mm512_dpwssd_epi32(v[t], _mm512_maddubs_epi16(lo, y0), s[2 * c]);
                        v2[t] = _mm512_dpwssd_epi32(v2[t], _mm512_maddubs_epi16(hi, y1), s[2 * c + 1]);
                    }
                }
                for (int t = 0; t < NT; t++)
                    acc[t][j] = _mm512_fmadd_ps(dd[t], _mm512_cvtepi32_ps(_mm512_add_epi32(v[t], v2[t])), acc[t][j]);
            }
        }
        for (int t = 0; t < NT; t++) {
            const __m512 fmins = _mm512_cvtepi32_ps(mins[t]);
            if (tiled) {
                /* -dmin (AVX-512 F has no vxorps on zmm: the integer xor of the sign bit) */
                const __m512 neg_m16 = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(m16), _mm512_castps_si512(sign)));
                const __m512 r = _mm512_fmadd_ps(neg_m16, fmins, _mm512_mul_ps(d16, _mm512_cvtepi32_ps(tot[t])));
                tacc[t] = _mm512_fmadd_ps(r, _mm512_set1_ps(yb[t]->d), tacc[t]);
            } else {
                macc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(-yb[t]->d), m16), fmins, macc[t]);
            }
        }
    }
    for (int t = 0; t < NT; t++)
        _mm512_storeu_ps(y + t * ldy, tiled ? tacc[t] : _mm512_add_ps(hsum_rows16(acc[t]), macc[t]));
}

/* NAME##_1 .. NAME##_4: BASE(..., N tokens, MODE) as tile_x16_fn; NAME##_tiles lists them */
#define X16_FN(NAME, BASE, MODE, N)                                                                                   \
    static void NAME##_##N(int64_t nb, const uint8_t *w0, const uint8_t *w1, const uint8_t *x, size_t bx, float *y,   \
                           int64_t ldy) {                                                                             \
        BASE(nb, w0, w1, x, bx, y, ldy, N, MODE);                                                                     \
    }
#define X16_FNS(NAME, BASE, MODE)                                                                                     \
    X16_FN(NAME, BASE, MODE, 1) X16_FN(NAME, BASE, MODE, 2) X16_FN(NAME, BASE, MODE, 3) X16_FN(NAME, BASE, MODE, 4)   \
    static const tile_x16_fn NAME##_tiles[K16_MAXT] = {NAME##_1, NAME##_2, NAME##_3, NAME##_4};

X16_FNS(q4_Kx16, tile_q4_Kx16, K4_BLOCK)
X16_FNS(q4_Kx16g, tile_q4_Kx16, K4_GEMM4)
X16_FNS(q6_Kx16, tile_q6_Kx16, 0)
X16_FNS(q6_Kx16t, tile_q6_Kx16, 1)
X16_FNS(q5_Kx16, tile_q5_Kx16, 0)
X16_FNS(q5_Kx16t, tile_q5_Kx16, 1)

/* Decode-sized batches (1-2 tokens) stream the weights from memory, which one 8-row group at a time
 * does faster than two (measured on Zen 5, 65536x1024 at 1 token, 2 threads: Q6_K 53 vs 35 GB/s,
 * Q4_K 59 vs 33): they take the 256-bit tiles, which give the same bits. */
enum { K16_MIN_TOKENS = 3 };

/* mm_k_x8 with pairs of groups in the 512-bit tiles (the same token chunks; an odd last group, and
 * batches under K16_MIN_TOKENS, run the 256-bit tiles8) */
static void mm_k_x16(const tile_x16_fn *tiles16, int64_t max_nt16, const tile_x8_fn tiles8[4], int64_t n,
                     const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt, float *y,
                     int64_t ldy) {
    if (nt < K16_MIN_TOKENS) mm_k_x8(tiles8, n, w, bw, nr, x, bx, nt, y, ldy);
    else x16_drive(tiles16, max_nt16, tiles8, 4, n / LFM_QK_K, k_chunk_tokens(bx), w, bw, nr, x, bx, nt, y, ldy);
}

/* mm_q4_K_x8's token split: groups of 4 through the GEMM order, the rest one by one */

static void mm_q4_K_x16(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                        float *y, int64_t ldy) {
    static const tile_x8_fn block[4] = {q4_Kx8_1, q4_Kx8_2, q4_Kx8_3, q4_Kx8_4};
    static const tile_x8_fn gemm4[4] = {q4_Kx8g_1, q4_Kx8g_2, q4_Kx8g_3, q4_Kx8g_4};
    const int64_t grouped = nt > 3 ? nt - nt % 4 : 0;
    if (grouped) mm_k_x16(q4_Kx16g_tiles, K16_MAXT, gemm4, n, w, bw, nr, x, bx, grouped, y, ldy);
    if (nt > grouped)
        mm_k_x16(q4_Kx16_tiles, K16_MAXT, block, n, w, bw, nr, x + (size_t)grouped * bx, bx, nt - grouped,
                 y + grouped * ldy, ldy);
}

static void mm_q4_K_x16_tok(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                            float *y, int64_t ldy) {
    static const tile_x8_fn block[4] = {q4_Kx8_1, q4_Kx8_2, q4_Kx8_3, q4_Kx8_4};
    mm_k_x16(q4_Kx16_tiles, K16_MAXT, block, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void mm_q5_K_x16(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                        float *y, int64_t ldy) {
    static const tile_x8_fn dot[4] = {q5_Kx8_1, q5_Kx8_2, q5_Kx8_3, q5_Kx8_4};
    static const tile_x8_fn tiled[4] = {q5_Kx8t_1, q5_Kx8t_2, q5_Kx8t_3, q5_Kx8t_4};
    if (nt >= 8) mm_k_x16(q5_Kx16t_tiles, K16_MAXT, tiled, n, w, bw, nr, x, bx, nt, y, ldy);
    else mm_k_x16(q5_Kx16_tiles, 4, dot, n, w, bw, nr, x, bx, nt, y, ldy);
}

static void mm_q6_K_x16(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx, int64_t nt,
                        float *y, int64_t ldy) {
    static const tile_x8_fn dot[4] = {q6_Kx8_1, q6_Kx8_2, q6_Kx8_3, q6_Kx8_4};
    static const tile_x8_fn tiled[4] = {q6_Kx8t_1, q6_Kx8t_2, q6_Kx8t_3, q6_Kx8t_4};
    if (nt >= 8) mm_k_x16(q6_Kx16t_tiles, K16_MAXT, tiled, n, w, bw, nr, x, bx, nt, y, ldy);
    else mm_k_x16(q6_Kx16_tiles, 4, dot, n, w, bw, nr, x, bx, nt, y, ldy);
}
#endif

void QX86_INIT(lfm_qkernels *k) {
    k->mm_x8[LFM_TYPE_Q4_0] = mm_q4_0_x8;
    k->mm_x8[LFM_TYPE_Q8_0] = mm_q8_0_x8;
    k->mm_x8[LFM_TYPE_Q4_K] = mm_q4_K_x8;
    k->mm_x8_tok[LFM_TYPE_Q4_K] = mm_q4_K_x8_tok;
    k->mm_x8[LFM_TYPE_Q5_K] = mm_q5_K_x8;
    k->mm_x8[LFM_TYPE_Q6_K] = mm_q6_K_x8;
    k->act[LFM_TYPE_Q8_0] = act_q8_0;
    k->act[LFM_TYPE_Q8_1] = act_q8_1;
    k->act[LFM_TYPE_Q8_K] = act_q8_K;
    k->mm[LFM_TYPE_Q4_0] = mm_q4_0;
    k->mm[LFM_TYPE_Q4_1] = mm_q4_1;
    k->mm[LFM_TYPE_Q5_0] = mm_q5_0;
    k->mm[LFM_TYPE_Q5_1] = mm_q5_1;
    k->mm[LFM_TYPE_Q8_0] = mm_q8_0;
    k->mm[LFM_TYPE_Q4_K] = mm_q4_K_llama;
    k->mm[LFM_TYPE_Q5_K] = mm_q5_K_llama;
    k->mm[LFM_TYPE_Q6_K] = mm_q6_K_llama;
#if defined(QX86_ZMM)
    k->mm_x8[LFM_TYPE_Q4_0] = mm_q4_0_x16;
    k->mm_x8[LFM_TYPE_Q8_0] = mm_q8_0_x16;
    k->mm_x8[LFM_TYPE_Q4_K] = mm_q4_K_x16;
    k->mm_x8_tok[LFM_TYPE_Q4_K] = mm_q4_K_x16_tok;
    k->mm_x8[LFM_TYPE_Q5_K] = mm_q5_K_x16;
    k->mm_x8[LFM_TYPE_Q6_K] = mm_q6_K_x16;
#endif
}
