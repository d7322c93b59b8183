/* quants_k.c — the weight quantizers of the K-quants (Q4_K, Q5_K, Q6_K): from_float entries of the
 * type-traits table, used by the GGUF writer (liquidlfm/quantize.py) and quantize on load.
 *
 * The bytes are the ones llama.cpp's llama-quantize writes without an importance matrix: its
 * quantize_q4_K / q5_K / q6_K then run quantize_row_q4_K_ref / q5_K / q6_K (ggml-quants.c), which
 * fit each sub-block's scale (and min) by a small least-squares search. Byte identity needs every
 * float operation of that search in the same order with the same operand types, because a
 * last-bit difference in an error sum can pick another trial grid: so the code below is plain
 * float C, one operation per source operation, built with -ffp-contract=off (llama.cpp's
 * ggml-base, which holds those functions, is compiled for baseline x86-64: no FMA either). Pinned
 * reference: llama-cpp-python 0.3.36 (llama.cpp 0c1e57098); tests/engine/test_quants.py compares
 * rows with its libggml, tests/formats/test_quantize_mixes.py whole files with llama-quantize.
 *
 * Non-finite input (kernels/ROUNDING.md, "Non-finite values"): a super-block holding a NaN or +-inf
 * is stored with NaN scales and zero quants (it dequantizes to NaN); llama.cpp has no rule for it.
 * Finite input of any magnitude gets llama.cpp's bytes, including where its search degenerates
 * (sums that overflow, scales that round to zero in F16): no float is ever converted to an integer
 * (see round_half_even_bits), so no input is undefined behaviour. */
#include "kernels/kernels.h"

#include <math.h>

/* The nearest integer to v (ties to even) by llama.cpp's trick: v + 1.5*2^23 is rounded to an
 * integer by the float addition itself, which then sits in the low 22 mantissa bits. Exact for
 * |v| < 2^22; outside that (only degenerate scales get there) it gives the same wrapped value
 * llama.cpp's nearest_int gives, which the callers' clamps then turn into the same bytes. Reads
 * bits, so NaN and inf are as defined as any float. */
static inline int32_t round_half_even_bits(float v) {
    float shifted = v + 12582912.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (int32_t)(bits & 0x7fffffu) - 0x400000;
}

static inline int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Any NaN or +-inf among n floats. */
static bool has_nonfinite(const float *x, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) bad |= !(fabsf(x[i]) < INFINITY);
    return bad != 0;
}

/* ---- Q4_K / Q5_K: 8 sub-blocks of 32 with a 6-bit scale and a 6-bit min each ---- */

/* Scale s and offset m (x ~ s*level + m, m <= 0, level in 0..nmax) of one 32-element sub-block,
 * by weighted least squares (weights w): first the grid through [min(x,0), max x] split into
 * nmax steps, then nstep+1 grids of nmax + rmin + rdelta*k steps, each refitted in closed form;
 * the one with the smallest weighted squared error wins (the first on ties). The levels go to
 * level[], -m to *neg_offset, s is returned. llama.cpp: make_qkx2_quants(..., use_mad = false). */
static float fit_scale_offset32(const float *x, const float *w, int nmax, float rmin, float rdelta, int nstep,
                                uint8_t *level, float *neg_offset) {
    float lo = x[0], hi = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < 32; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(level, 0, 32);
        *neg_offset = -lo;
        return 0.0f;
    }
    float inv_step = (float)nmax / (hi - lo);
    float scale = 1 / inv_step;
    float best_err = 0;
    for (int i = 0; i < 32; i++) {
        level[i] = (uint8_t)clamp_i32(round_half_even_bits(inv_step * (x[i] - lo)), 0, nmax);
        float diff = scale * (float)level[i] + lo - x[i];
        best_err += w[i] * (diff * diff);
    }
    uint8_t trial[32];
    for (int k = 0; k <= nstep; k++) {
        inv_step = (rmin + rdelta * (float)k + (float)nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < 32; i++) {
            int32_t l = clamp_i32(round_half_even_bits(inv_step * (x[i] - lo)), 0, nmax);
            trial[i] = (uint8_t)l;
            float wl = w[i] * (float)l;
            sum_l += wl;
            sum_l2 += wl * (float)l;
            sum_xl += wl * x[i];
        }
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0)) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0) { /* the offset may only lower the grid: refit the scale alone through 0 */
            m = 0;
            s = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < 32; i++) {
            float diff = s * (float)trial[i] + m - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best_err) {
            memcpy(level, trial, 32);
            best_err = err;
            scale = s;
            lo = m;
        }
    }
    *neg_offset = -lo;
    return scale;
}

/* One Q4_K (nmax 15) or Q5_K (nmax 31) super-block: its d, dmin, packed scales and each element's
 * level in level[256]. rmin / nstep: the search range of fit_scale_offset32 (llama.cpp's). */
static void k45_levels(const float *x, int nmax, float rmin, int nstep, lfm_half *d_out, lfm_half *dmin_out,
                       uint8_t scales_out[12], uint8_t level[256]) {
    float scale[8], neg_offset[8], w[32];
    float max_scale = 0, max_offset = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        /* weights: the element's magnitude plus the sub-block's RMS */
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float rms = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = rms + fabsf(xs[l]);
        scale[j] = fit_scale_offset32(xs, w, nmax, rmin, 0.1f, nstep, level + 32 * j, &neg_offset[j]);
        if (scale[j] > max_scale) max_scale = scale[j];
        if (neg_offset[j] > max_offset) max_offset = neg_offset[j];
    }
    /* the 8 scales and offsets as 6-bit multiples of d = max/63 and dmin = max offset/63 */
    float to_scale6 = max_scale > 0 ? 63.f / max_scale : 0.f;
    float to_offset6 = max_offset > 0 ? 63.f / max_offset : 0.f;
    uint8_t s6[8], m6[8];
    for (int j = 0; j < 8; j++) {
        uint8_t s = (uint8_t)round_half_even_bits(to_scale6 * scale[j]); /* wraps mod 256, as llama.cpp's */
        uint8_t m = (uint8_t)round_half_even_bits(to_offset6 * neg_offset[j]);
        s6[j] = s < 63 ? s : 63;
        m6[j] = m < 63 ? m : 63;
    }
    /* the layout lfm_k4_scale_min reads: sub-blocks 0-3 in the low 6 bits of bytes 0-7, sub-blocks
     * 4-7 as nibbles in bytes 8-11 with their top 2 bits in the spare bits of bytes 0-7 */
    for (int j = 0; j < 4; j++) {
        scales_out[j] = (uint8_t)(s6[j] | (s6[j + 4] >> 4) << 6);
        scales_out[j + 4] = (uint8_t)(m6[j] | (m6[j + 4] >> 4) << 6);
        scales_out[j + 8] = (uint8_t)((s6[j + 4] & 0x0f) | (m6[j + 4] & 0x0f) << 4);
    }
    *d_out = lfm_float_to_half(max_scale / 63.f);
    *dmin_out = lfm_float_to_half(max_offset / 63.f);
    /* requantize each element against the scales as stored (6-bit, F16-rounded d); a sub-block
     * whose stored scale is zero keeps the levels of its fit */
    const float d = lfm_half_to_float(*d_out), dmin = lfm_half_to_float(*dmin_out);
    for (int j = 0; j < 8; j++) {
        const float dj = d * (float)s6[j];
        if (dj == 0) continue;
        const float mj = dmin * (float)m6[j];
        for (int l = 0; l < 32; l++)
            level[32 * j + l] = (uint8_t)clamp_i32(round_half_even_bits((x[32 * j + l] + mj) / dj), 0, nmax);
    }
}

static void q_q4_K(const float *x, lfm_block_q4_K *b) {
    if (has_nonfinite(x, LFM_QK_K)) {
        memset(b, 0, sizeof *b);
        b->d = b->dmin = LFM_HALF_NAN;
        return;
    }
    uint8_t level[256];
    k45_levels(x, 15, -1.0f, 20, &b->d, &b->dmin, b->scales, level);
    /* 64 elements per 32 bytes: the first 32 in the low nibbles, the next 32 in the high ones */
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b->qs[32 * c + l] = (uint8_t)(level[64 * c + l] | level[64 * c + 32 + l] << 4);
}

static void q_q5_K(const float *x, lfm_block_q5_K *b) {
    if (has_nonfinite(x, LFM_QK_K)) {
        memset(b, 0, sizeof *b);
        b->d = b->dmin = LFM_HALF_NAN;
        return;
    }
    uint8_t level[256];
    k45_levels(x, 31, -0.5f, 15, &b->d, &b->dmin, b->scales, level);
    /* Q4_K's nibble layout for the low 4 bits; bit 4 of element 32*j + l is bit j of qh[l] */
    memset(b->qh, 0, sizeof b->qh);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = level[64 * c + l], hi = level[64 * c + 32 + l];
            b->qs[32 * c + l] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
            b->qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
        }
}

/* ---- Q6_K: 16 sub-blocks of 16 with a signed 8-bit scale each ---- */

/* Scale s of one 16-element sub-block (x ~ s*(level - 32), level in 0..63): the grid through the
 * element of largest magnitude, then 18 grids of 32 + 0.1*k steps (k = -9..9, not 0), keeping the
 * one whose x²-weighted least-squares fit explains most (the first on ties). Levels go to level[].
 * llama.cpp: make_qx_quants(16, 32, x, L, rmse_type = 1, NULL). */
static float fit_scale16(const float *x, int8_t *level) {
    float amax = 0, max = 0;
    for (int i = 0; i < 16; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) { /* all zero, as far as the format can tell */
        memset(level, 0, 16);
        return 0.f;
    }
    float inv = (float)-32 / max;
    float sum_lx = 0, sum_l2 = 0;
    for (int i = 0; i < 16; i++) {
        int32_t l = clamp_i32(round_half_even_bits(inv * x[i]), -32, 31);
        level[i] = (int8_t)(l + 32);
        float w = x[i] * x[i];
        sum_lx += w * x[i] * (float)l;
        sum_l2 += w * (float)l * (float)l;
    }
    float scale = sum_l2 != 0 ? sum_lx / sum_l2 : 0.0f;
    float best = scale * sum_lx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        inv = -((float)32 + 0.1f * (float)k) / max;
        sum_lx = sum_l2 = 0;
        for (int i = 0; i < 16; i++) {
            int32_t l = clamp_i32(round_half_even_bits(inv * x[i]), -32, 31);
            float w = x[i] * x[i];
            sum_lx += w * x[i] * (float)l;
            sum_l2 += w * (float)l * (float)l;
        }
        if (sum_l2 > 0 && sum_lx * sum_lx > best * sum_l2) {
            for (int i = 0; i < 16; i++)
                level[i] = (int8_t)(clamp_i32(round_half_even_bits(inv * x[i]), -32, 31) + 32);
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

static void q_q6_K(const float *x, lfm_block_q6_K *b) {
    if (has_nonfinite(x, LFM_QK_K)) {
        memset(b, 0, sizeof *b);
        b->d = LFM_HALF_NAN;
        return;
    }
    int8_t level[256];
    float scale[16];
    float max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        scale[j] = fit_scale16(x + 16 * j, level + 16 * j);
        if (fabsf(scale[j]) > max_abs) {
            max_abs = fabsf(scale[j]);
            max_scale = scale[j];
        }
    }
    if (max_abs < 1e-15f) {
        memset(b, 0, sizeof *b); /* d = +0 */
        return;
    }
    /* the 16 scales as signed 8-bit multiples of d, the largest one at -128 */
    float to_scale8 = -128.f / max_scale;
    b->d = lfm_float_to_half(1 / to_scale8);
    uint8_t *scale_bytes = (uint8_t *)b->scales; /* written as bytes: a wrapped value stays defined */
    for (int j = 0; j < 16; j++) {
        int32_t s = round_half_even_bits(to_scale8 * scale[j]);
        scale_bytes[j] = (uint8_t)(s < 127 ? s : 127);
    }
    const float d = lfm_half_to_float(b->d);
    for (int j = 0; j < 16; j++) {
        const float dj = d * (float)b->scales[j];
        if (dj == 0) continue; /* keeps the levels of the fit */
        for (int l = 0; l < 16; l++)
            level[16 * j + l] = (int8_t)(clamp_i32(round_half_even_bits(x[16 * j + l] / dj), -32, 31) + 32);
    }
    /* per 128 elements: low nibbles of elements l and l+64 share ql[l], of l+32 and l+96 ql[l+32];
     * the four 2-bit high parts of l, l+32, l+64, l+96 are qh[l] */
    for (int h = 0; h < 2; h++) {
        const int8_t *q = level + 128 * h;
        for (int l = 0; l < 32; l++) {
            b->ql[64 * h + l] = (uint8_t)((q[l] & 0x0f) | (q[l + 64] & 0x0f) << 4);
            b->ql[64 * h + l + 32] = (uint8_t)((q[l + 32] & 0x0f) | (q[l + 96] & 0x0f) << 4);
            b->qh[32 * h + l] = (uint8_t)((q[l] >> 4) | (q[l + 32] >> 4) << 2 | (q[l + 64] >> 4) << 4 | (q[l + 96] >> 4) << 6);
        }
    }
}

LFM_QUANTIZE_ROW_BY_BLOCK(q4_K, lfm_block_q4_K, LFM_QK_K)
LFM_QUANTIZE_ROW_BY_BLOCK(q5_K, lfm_block_q5_K, LFM_QK_K)
LFM_QUANTIZE_ROW_BY_BLOCK(q6_K, lfm_block_q6_K, LFM_QK_K)
