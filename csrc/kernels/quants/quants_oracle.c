/* quants_oracle.c — scalar oracles of the SIMD quantized kernels' float order (tests only).
 *
 * quants_ref.c is the plain scalar definition (one float product per block, summed in order); the
 * AVX2 kernels round differently on purpose, because they reproduce llama.cpp's kernels bit for
 * bit. Their contract is identical bits to llama.cpp, so a test needs an oracle with exactly their
 * float order: this file, written one scalar operation per SIMD lane operation, with fmaf where the
 * kernel fuses a multiply-add and plain float products and sums where it does not.
 *
 * The integer parts (int8 products summed into int16 pairs and int32 lanes) are exact in any order
 * (the kernels' pairs never saturate for activation quants in [-127, 127]), so only two things are
 * spelled out: which elements feed which of the 8 int32 lanes, and the float operations after.
 *
 *   lane(j) of a 32-byte chunk = its bytes 4j..4j+3 (what vpmaddwd leaves in int32 lane j)
 *   hsum8(a) = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))   (hsum_ps / hsum_rows8)
 *
 * Batch-size rules follow the kernels' drivers (mm_*_llama, mm_*_x8): Q4_K runs the first
 * T - T % 4 tokens (T >= 4) in the 4-token GEMM order and the rest one by one; Q5_K and Q6_K switch
 * to the tiled order for T >= 8. */
#include "kernels/kernels.h"

#include <math.h>

/* ---- helpers ---- */

static float hsum8(const float a[8]) { return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])); }

static float h2f(lfm_half h) { return lfm_half_to_float(h); }

/* Element e (< 32) of a Q4_0/Q4_1 block's nibbles: bytes 0..15 low nibbles, then high nibbles. */
static int nib32(const uint8_t *qs, int e) { return e < 16 ? qs[e] & 0x0f : qs[e - 16] >> 4; }

static int bit32(const uint8_t *qh, int e) { return (qh[e / 8] >> (e % 8)) & 1; }

/* Element e (< 256) of a Q4_K / Q5_K super-block (qh NULL for Q4_K), 0..15 / 0..31. */
static int q45_K_elem(const uint8_t *qs, const uint8_t *qh, int e) {
    int c = e / 64, b = e % 32, hi = (e / 32) % 2;
    int v = (qs[32 * c + b] >> (4 * hi)) & 0x0f;
    if (qh) v |= ((qh[b] >> (2 * c + hi)) & 1) << 4;
    return v;
}

/* Element e (< 256) of a Q6_K super-block, unsigned 0..63 (the -32 is taken with the bsums). */
static int q6_K_elem(const lfm_block_q6_K *b, int e) {
    int h = e / 128, r = e % 128;
    int ql = (b->ql[64 * h + r % 64] >> (4 * (r / 64))) & 0x0f;
    int qh = (b->qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    return ql | qh << 4;
}

/* ---- 32-element block types: 8 float lanes per row, one fma per lane and block ---- */

/* Q8_0 (row and X8 layouts), Q4_0 / Q5_0 (row layout): lane j = sum over bytes 4j..4j+3 of
 * (q - z) * y, then acc_j = fma(lane_j, dw*dy, acc_j); hsum8 at the end. */
static float dot_x_0(lfm_type t, int64_t nb, const uint8_t *wrow, const lfm_block_q8_0 *x) {
    float acc[8] = {0};
    for (int64_t ib = 0; ib < nb; ib++) {
        int q[32];
        float dw;
        if (t == LFM_TYPE_Q8_0) {
            const lfm_block_q8_0 *b = (const lfm_block_q8_0 *)(const void *)wrow + ib;
            for (int e = 0; e < 32; e++) q[e] = b->qs[e];
            dw = h2f(b->d);
        } else if (t == LFM_TYPE_Q4_0) {
            const lfm_block_q4_0 *b = (const lfm_block_q4_0 *)(const void *)wrow + ib;
            for (int e = 0; e < 32; e++) q[e] = nib32(b->qs, e) - 8;
            dw = h2f(b->d);
        } else {
            const lfm_block_q5_0 *b = (const lfm_block_q5_0 *)(const void *)wrow + ib;
            for (int e = 0; e < 32; e++) q[e] = (nib32(b->qs, e) | bit32(b->qh, e) << 4) - 16;
            dw = h2f(b->d);
        }
        const float dd = dw * h2f(x[ib].d);
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int e = 4 * j; e < 4 * j + 4; e++) s += q[e] * x[ib].qs[e];
            acc[j] = fmaf((float)s, dd, acc[j]);
        }
    }
    return hsum8(acc);
}

/* Q4_1 / Q5_1: the lanes as above without offset; the minimum as mw*sy added in float (not fused). */
static float dot_x_1(lfm_type t, int64_t nb, const uint8_t *wrow, const lfm_block_q8_1 *x) {
    float acc[8] = {0}, accm = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int q[32];
        float dw, mw;
        if (t == LFM_TYPE_Q4_1) {
            const lfm_block_q4_1 *b = (const lfm_block_q4_1 *)(const void *)wrow + ib;
            for (int e = 0; e < 32; e++) q[e] = nib32(b->qs, e);
            dw = h2f(b->d), mw = h2f(b->m);
        } else {
            const lfm_block_q5_1 *b = (const lfm_block_q5_1 *)(const void *)wrow + ib;
            for (int e = 0; e < 32; e++) q[e] = nib32(b->qs, e) | bit32(b->qh, e) << 4;
            dw = h2f(b->d), mw = h2f(b->m);
        }
        const float dd = dw * h2f(x[ib].d);
        for (int j = 0; j < 8; j++) {
            int32_t s = 0;
            for (int e = 4 * j; e < 4 * j + 4; e++) s += q[e] * x[ib].qs[e];
            acc[j] = fmaf((float)s, dd, acc[j]);
        }
        const float m = mw * h2f(x[ib].s);
        accm = accm + m;
    }
    return hsum8(acc) + accm;
}

/* Q4_0 in LFM_LAYOUT_X8 (llama.cpp's repacked order): one float per row, one fma per block with the
 * block's exact integer dot. */
static float dot_q4_0_x8(int64_t nb, const uint8_t *wrow, const lfm_block_q8_0 *x) {
    const lfm_block_q4_0 *b = (const lfm_block_q4_0 *)(const void *)wrow;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int32_t s = 0;
        for (int e = 0; e < 32; e++) s += (nib32(b[ib].qs, e) - 8) * x[ib].qs[e];
        acc = fmaf((float)s, h2f(b[ib].d) * h2f(x[ib].d), acc);
    }
    return acc;
}

/* ---- K-quants against Q8_K ---- */

static void k4_scales_mins(const uint8_t *scales, int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) {
        uint8_t s, m;
        lfm_k4_scale_min(j, scales, &s, &m);
        sc[j] = s, mn[j] = m;
    }
}

enum { ORDER_ONE = 0, ORDER_GEMM4 = 1, ORDER_TILED = 2 };

/* Q4_K: per block the exact integer dot and min terms, each folded into its own float with one fma
 * (ORDER_ONE), or per 64-element chunk (ORDER_GEMM4); the two floats subtracted at the end. */
static float dot_q4_K(int64_t nb, const uint8_t *wrow, const lfm_block_q8_K *x, int order) {
    const lfm_block_q4_K *b = (const lfm_block_q4_K *)(const void *)wrow;
    float sacc = 0.0f, macc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int sc[8], mn[8];
        k4_scales_mins(b[ib].scales, sc, mn);
        const float dd = h2f(b[ib].d) * x[ib].d, dm = h2f(b[ib].dmin) * x[ib].d;
        const int16_t *bs = x[ib].bsums;
        int32_t dot = 0, mins = 0;
        for (int c = 0; c < 4; c++) {
            int32_t dc = 0;
            for (int e = 64 * c; e < 64 * c + 64; e++) dc += sc[e / 32] * q45_K_elem(b[ib].qs, NULL, e) * x[ib].qs[e];
            int32_t mc = mn[2 * c] * (bs[4 * c] + bs[4 * c + 1]) + mn[2 * c + 1] * (bs[4 * c + 2] + bs[4 * c + 3]);
            if (order == ORDER_GEMM4) {
                sacc = fmaf((float)dc, dd, sacc);
                macc = fmaf((float)mc, dm, macc);
            }
            dot += dc, mins += mc;
        }
        if (order != ORDER_GEMM4) {
            sacc = fmaf((float)dot, dd, sacc);
            macc = fmaf((float)mins, dm, macc);
        }
    }
    return sacc - macc;
}

/* Q5_K: llama.cpp's dot product (lane j: bytes 4j..4j+3 of each 32-byte chunk times the chunk's
 * scale, one fma per lane and block with y.d*d; the mins as one float per row with -y.d*dmin,
 * added after hsum8), or its tiled kernel (T >= 8: per block fma(-dmin, mins, d*dot), then one fma
 * with y.d). */
static float dot_q5_K(int64_t nb, const uint8_t *wrow, const lfm_block_q8_K *x, int order) {
    const lfm_block_q5_K *b = (const lfm_block_q5_K *)(const void *)wrow;
    float acc[8] = {0}, macc = 0.0f, sacc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        int sc[8], mn[8];
        k4_scales_mins(b[ib].scales, sc, mn);
        int32_t lane[8] = {0}, mins = 0;
        for (int e = 0; e < 256; e++) lane[(e % 32) / 4] += sc[e / 32] * q45_K_elem(b[ib].qs, b[ib].qh, e) * x[ib].qs[e];
        for (int g = 0; g < 16; g++) mins += x[ib].bsums[g] * mn[g / 2];
        const float d = h2f(b[ib].d), dmin = h2f(b[ib].dmin);
        if (order == ORDER_TILED) {
            int32_t dot = 0;
            for (int j = 0; j < 8; j++) dot += lane[j];
            const float res = fmaf(-dmin, (float)mins, d * (float)dot);
            sacc = fmaf(res, x[ib].d, sacc);
        } else {
            const float dd = x[ib].d * d;
            for (int j = 0; j < 8; j++) acc[j] = fmaf(dd, (float)lane[j], acc[j]);
            macc = fmaf(-x[ib].d * dmin, (float)mins, macc);
        }
    }
    return order == ORDER_TILED ? sacc : hsum8(acc) + macc;
}

/* Q6_K: lane j holds the elements at bytes 4j..4j+3 of every 32-byte chunk, times their group's
 * scale, and minus 32 * (s[2j] bsums[2j] + s[2j+1] bsums[2j+1]) (the -32 offset, taken up front in
 * the kernel's lane j); one fma per lane and block with d*y.d, hsum8 at the end. Tiled (T >= 8):
 * per block fma(d * dot, y.d, acc). */
static float dot_q6_K(int64_t nb, const uint8_t *wrow, const lfm_block_q8_K *x, int order) {
    const lfm_block_q6_K *b = (const lfm_block_q6_K *)(const void *)wrow;
    float acc[8] = {0}, sacc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++) {
        const int8_t *s = b[ib].scales;
        const int16_t *bs = x[ib].bsums;
        int32_t lane[8];
        for (int j = 0; j < 8; j++) lane[j] = -32 * (s[2 * j] * bs[2 * j] + s[2 * j + 1] * bs[2 * j + 1]);
        for (int e = 0; e < 256; e++) lane[(e % 32) / 4] += s[e / 16] * q6_K_elem(&b[ib], e) * x[ib].qs[e];
        const float d = h2f(b[ib].d);
        if (order == ORDER_TILED) {
            int32_t dot = 0;
            for (int j = 0; j < 8; j++) dot += lane[j];
            sacc = fmaf(d * (float)dot, x[ib].d, sacc);
        } else {
            const float dd = d * x[ib].d;
            for (int j = 0; j < 8; j++) acc[j] = fmaf((float)lane[j], dd, acc[j]);
        }
    }
    return order == ORDER_TILED ? sacc : hsum8(acc);
}

/* ---- entry point ---- */

lfm_status lfm_qmm_oracle(lfm_type t, bool x8, int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x,
                          size_t bx, int64_t nt, float *y, int64_t ldy) {
    const int64_t nb32 = n / LFM_QK, nbk = n / LFM_QK_K;
    if (x8 && t != LFM_TYPE_Q4_0 && t != LFM_TYPE_Q8_0 && t != LFM_TYPE_Q4_K && t != LFM_TYPE_Q5_K && t != LFM_TYPE_Q6_K)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "no X8 oracle for type %d", (int)t);
    const int64_t grouped = nt > 3 ? nt - nt % 4 : 0; /* Q4_K: tokens run in the 4-token GEMM order */
    for (int64_t tk = 0; tk < nt; tk++) {
        const uint8_t *xr = x + (size_t)tk * bx;
        for (int64_t r = 0; r < nr; r++) {
            const uint8_t *wr = w + (size_t)r * bw;
            float v;
            switch (t) {
            case LFM_TYPE_Q4_0:
                v = x8 ? dot_q4_0_x8(nb32, wr, (const lfm_block_q8_0 *)(const void *)xr)
                       : dot_x_0(t, nb32, wr, (const lfm_block_q8_0 *)(const void *)xr);
                break;
            case LFM_TYPE_Q5_0:
            case LFM_TYPE_Q8_0: v = dot_x_0(t, nb32, wr, (const lfm_block_q8_0 *)(const void *)xr); break;
            case LFM_TYPE_Q4_1:
            case LFM_TYPE_Q5_1: v = dot_x_1(t, nb32, wr, (const lfm_block_q8_1 *)(const void *)xr); break;
            case LFM_TYPE_Q4_K:
                v = dot_q4_K(nbk, wr, (const lfm_block_q8_K *)(const void *)xr, tk < grouped ? ORDER_GEMM4 : ORDER_ONE);
                break;
            case LFM_TYPE_Q5_K:
                v = dot_q5_K(nbk, wr, (const lfm_block_q8_K *)(const void *)xr, nt >= 8 ? ORDER_TILED : ORDER_ONE);
                break;
            case LFM_TYPE_Q6_K:
                v = dot_q6_K(nbk, wr, (const lfm_block_q8_K *)(const void *)xr, nt >= 8 ? ORDER_TILED : ORDER_ONE);
                break;
            default: return lfm_fail(LFM_ERR_UNSUPPORTED, "no SIMD-order oracle for type %d", (int)t);
            }
            y[tk * ldy + r] = v;
        }
    }
    return LFM_OK;
}
