/* quants_ref.c — scalar oracle for activation quantization and quantized dot products.
 *
 * Activations are quantized to 8 bits per block as llama.cpp does on x86:
 *   Q8_0 (for Q4_0/Q5_0/Q8_0), 32 per block: d = F16(amax/127), q = nearest-even(x * 127/amax);
 *   Q8_1 (for Q4_1/Q5_1): as Q8_0, plus s = F16(d * sum(q));
 *   Q8_K (for the K-quants), 256 per block: from the signed element of largest magnitude (first on
 *   ties), iscale = -127/max, q = min(127, nearest-even(iscale * x)), d = 1/iscale as a float, and
 *   per-16 sums of q.
 * The ISA kernels give the same activation bytes. Their dot products sum in the orders of the
 * llama.cpp functions they follow (kernels/ROUNDING.md), deliberately; this file sums plainly in
 * index order, so it is the scalar reference that differs from them in the last bits (within
 * float rounding), not the other way round. */
#include "kernels/kernels.h"

#include <float.h>
#include <math.h>

/* ---- activation quantization ---- */

/* OVERFLOWED_SCALE: a finite block so small (max |x| < 127/FLT_MAX, denormals) that 127/amax
 * overflows to inf. x * inf is +-inf or NaN, which C cannot convert to int; the AVX2 level (like
 * llama.cpp's) converts it to INT32_MIN and packs that to -128. Every quant is then -128 and the
 * scale is 0 (or -0), so the block adds exactly 0 to any dot product; we store the AVX2 bytes. */
#define OVERFLOWED_SCALE_Q 0x80

/* max |x|, or NaN when an element is NaN or +-inf (quants.h: the block is then non-finite) */
static float absmax(const float *x, int n) {
    float m = 0.0f;
    int bad = 0;
    for (int j = 0; j < n; j++) {
        const float a = fabsf(x[j]);
        m = a > m ? a : m;
        bad |= !(a < INFINITY);
    }
    return bad ? NAN : m;
}

static void act_q8_0(const float *x, void *dst, int64_t n) {
    lfm_block_q8_0 *y = dst;
    for (int64_t i = 0; i < n / LFM_QK; i++, x += LFM_QK) {
        float amax = absmax(x, LFM_QK);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_0(&y[i]);
            continue;
        }
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        y[i].d = lfm_float_to_half(amax / 127.0f);
        if (id > FLT_MAX) { /* amax < 127/FLT_MAX: see OVERFLOWED_SCALE */
            memset(y[i].qs, OVERFLOWED_SCALE_Q, sizeof y[i].qs);
            continue;
        }
        for (int j = 0; j < LFM_QK; j++) y[i].qs[j] = (int8_t)lfm_round_even(x[j] * id);
    }
}

static void act_q8_1(const float *x, void *dst, int64_t n) {
    lfm_block_q8_1 *y = dst;
    for (int64_t i = 0; i < n / LFM_QK; i++, x += LFM_QK) {
        float amax = absmax(x, LFM_QK);
        if (isnan(amax)) {
            lfm_act_nonfinite_q8_1(&y[i]);
            continue;
        }
        float id = amax != 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        int sum = 0;
        if (id > FLT_MAX) /* OVERFLOWED_SCALE; the AVX2 level's int32 sum wraps to 0 */
            memset(y[i].qs, OVERFLOWED_SCALE_Q, sizeof y[i].qs);
        else
            for (int j = 0; j < LFM_QK; j++) {
                y[i].qs[j] = (int8_t)lfm_round_even(x[j] * id);
                sum += y[i].qs[j];
            }
        y[i].d = lfm_float_to_half(d);
        y[i].s = lfm_float_to_half(d * (float)sum);
    }
}

/* Q8_K as llama.cpp forms it: the scale comes from the signed element of largest magnitude (the
 * first one on ties), so the quants are negated, d = 1/(-127/max). */
static void act_q8_K(const float *x, void *dst, int64_t n) {
    lfm_block_q8_K *y = dst;
    for (int64_t i = 0; i < n / LFM_QK_K; i++, x += LFM_QK_K) {
        if (isnan(absmax(x, LFM_QK_K))) {
            lfm_act_nonfinite_q8_K(&y[i]);
            continue;
        }
        float max = lfm_signed_absmax(x, LFM_QK_K);
        if (max == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        if (!(fabsf(iscale) <= FLT_MAX)) { /* OVERFLOWED_SCALE; the AVX2 level's int32 sums wrap to 0 */
            memset(y[i].qs, OVERFLOWED_SCALE_Q, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            y[i].d = 1.0f / iscale;
            continue;
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) {
                int q = lfm_round_even(iscale * x[g * 16 + j]);
                q = q > 127 ? 127 : q;
                y[i].qs[g * 16 + j] = (int8_t)q;
                sum += q;
            }
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- dot products of one weight row with one activation row ---- */

static float dot_q4_0(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q4_0 *w = wv;
    const lfm_block_q8_0 *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((w[i].qs[j] & 0x0f) - 8) * x[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + 16];
        sum += lfm_half_to_float(w[i].d) * lfm_half_to_float(x[i].d) * (float)s;
    }
    return sum;
}

static float dot_q4_1(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q4_1 *w = wv;
    const lfm_block_q8_1 *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += (w[i].qs[j] & 0x0f) * x[i].qs[j] + (w[i].qs[j] >> 4) * x[i].qs[j + 16];
        sum += lfm_half_to_float(w[i].d) * lfm_half_to_float(x[i].d) * (float)s +
               lfm_half_to_float(w[i].m) * lfm_half_to_float(x[i].s);
    }
    return sum;
}

static uint32_t qh32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float dot_q5_0(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q5_0 *w = wv;
    const lfm_block_q8_0 *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK; i++) {
        uint32_t qh = qh32(w[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = ((w[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4) - 16;
            int q1 = ((w[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - 16;
            s += q0 * x[i].qs[j] + q1 * x[i].qs[j + 16];
        }
        sum += lfm_half_to_float(w[i].d) * lfm_half_to_float(x[i].d) * (float)s;
    }
    return sum;
}

static float dot_q5_1(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q5_1 *w = wv;
    const lfm_block_q8_1 *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK; i++) {
        uint32_t qh = qh32(w[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = (w[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int q1 = (w[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            s += q0 * x[i].qs[j] + q1 * x[i].qs[j + 16];
        }
        sum += lfm_half_to_float(w[i].d) * lfm_half_to_float(x[i].d) * (float)s +
               lfm_half_to_float(w[i].m) * lfm_half_to_float(x[i].s);
    }
    return sum;
}

static float dot_q8_0(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q8_0 *w = wv;
    const lfm_block_q8_0 *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK; i++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += w[i].qs[j] * x[i].qs[j];
        sum += lfm_half_to_float(w[i].d) * lfm_half_to_float(x[i].d) * (float)s;
    }
    return sum;
}

static float dot_q2_K(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q2_K *w = wv;
    const lfm_block_q8_K *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK_K; i++) {
        int isum = 0, summ = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int k = 0; k < 16; k++) {
                int e = g * 16 + k, h = e / 128, sh = (e / 32) % 4, l = e % 32;
                s += ((w[i].qs[h * 32 + l] >> (2 * sh)) & 3) * x[i].qs[e];
            }
            isum += (w[i].scales[g] & 0x0f) * s;
            summ += (w[i].scales[g] >> 4) * x[i].bsums[g];
        }
        sum += x[i].d * lfm_half_to_float(w[i].d) * (float)isum - x[i].d * lfm_half_to_float(w[i].dmin) * (float)summ;
    }
    return sum;
}

static float dot_q3_K(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q3_K *w = wv;
    const lfm_block_q8_K *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK_K; i++) {
        const uint8_t *sc = w[i].scales;
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int lo = g < 8 ? (sc[g] & 0x0f) : (sc[g - 8] >> 4);
            int hi = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
            int scale = (lo | hi << 4) - 32;
            int s = 0;
            for (int k = 0; k < 16; k++) {
                int e = g * 16 + k, h = e / 128, sh = (e / 32) % 4, l = e % 32;
                int q = ((w[i].qs[h * 32 + l] >> (2 * sh)) & 3) - ((((w[i].hmask[l] >> (e / 32)) & 1) ^ 1) << 2);
                s += q * x[i].qs[e];
            }
            isum += scale * s;
        }
        sum += x[i].d * lfm_half_to_float(w[i].d) * (float)isum;
    }
    return sum;
}

/* One Q4_K block, or a Q5_K block when qh supplies each element's fifth bit (NULL for Q4_K),
 * against a Q8_K block */
static float dot_k4_block(lfm_half d, lfm_half dmin, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                          const lfm_block_q8_K *x) {
    int isum = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        lfm_k4_scale_min(j, scales, &sc, &mn);
        const uint8_t *q = qs + (j / 2) * 32;
        int shift = (j % 2) * 4, s = 0;
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            s += v * x->qs[j * 32 + l];
        }
        isum += sc * s;
        summ += mn * (x->bsums[2 * j] + x->bsums[2 * j + 1]);
    }
    return x->d * lfm_half_to_float(d) * (float)isum - x->d * lfm_half_to_float(dmin) * (float)summ;
}

static float dot_q4_K(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q4_K *w = wv;
    const lfm_block_q8_K *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK_K; i++) sum += dot_k4_block(w[i].d, w[i].dmin, w[i].scales, w[i].qs, NULL, &x[i]);
    return sum;
}

static float dot_q5_K(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q5_K *w = wv;
    const lfm_block_q8_K *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK_K; i++) sum += dot_k4_block(w[i].d, w[i].dmin, w[i].scales, w[i].qs, w[i].qh, &x[i]);
    return sum;
}

static float dot_q6_K(int64_t n, const void *wv, const void *xv) {
    const lfm_block_q6_K *w = wv;
    const lfm_block_q8_K *x = xv;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / LFM_QK_K; i++) {
        int isum = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int k = 0; k < 16; k++) {
                int e = g * 16 + k, h = e / 128, r = e % 128;
                int ql = (w[i].ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0f;
                int qh = (w[i].qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
                s += ((ql | qh << 4) - 32) * x[i].qs[e];
            }
            isum += w[i].scales[g] * s;
        }
        sum += x[i].d * lfm_half_to_float(w[i].d) * (float)isum;
    }
    return sum;
}

/* ---- row × token loops ---- */

#define REF_MM(name, dot)                                                                                    \
    static void name(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx,     \
                     int64_t nt, float *y, int64_t ldy) {                                                 \
        for (int64_t t = 0; t < nt; t++)                                                                  \
            for (int64_t r = 0; r < nr; r++) y[t * ldy + r] = dot(n, w + (size_t)r * bw, x + (size_t)t * bx); \
    }

REF_MM(mm_q4_0, dot_q4_0)
REF_MM(mm_q4_1, dot_q4_1)
REF_MM(mm_q5_0, dot_q5_0)
REF_MM(mm_q5_1, dot_q5_1)
REF_MM(mm_q8_0, dot_q8_0)
REF_MM(mm_q2_K, dot_q2_K)
REF_MM(mm_q3_K, dot_q3_K)
REF_MM(mm_q4_K, dot_q4_K)
REF_MM(mm_q5_K, dot_q5_K)
REF_MM(mm_q6_K, dot_q6_K)

void lfm_qkernels_init_ref(lfm_qkernels *k) {
    memset(k, 0, sizeof *k);
    k->name = "ref";
    k->act[LFM_TYPE_Q8_0] = act_q8_0;
    k->act[LFM_TYPE_Q8_1] = act_q8_1;
    k->act[LFM_TYPE_Q8_K] = act_q8_K;
    k->mm[LFM_TYPE_Q4_0] = mm_q4_0;
    k->mm[LFM_TYPE_Q4_1] = mm_q4_1;
    k->mm[LFM_TYPE_Q5_0] = mm_q5_0;
    k->mm[LFM_TYPE_Q5_1] = mm_q5_1;
    k->mm[LFM_TYPE_Q8_0] = mm_q8_0;
    k->mm[LFM_TYPE_Q2_K] = mm_q2_K;
    k->mm[LFM_TYPE_Q3_K] = mm_q3_K;
    k->mm[LFM_TYPE_Q4_K] = mm_q4_K;
    k->mm[LFM_TYPE_Q5_K] = mm_q5_K;
    k->mm[LFM_TYPE_Q6_K] = mm_q6_K;
}
