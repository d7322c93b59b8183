/* quants.c — ggml-compatible block formats: the row codecs of the type-traits table (dequantize,
 * quantize), activation quantization and the quantized matmul entry point.
 *
 * Dequantization follows the `gguf` package's reference (gguf.quants) operation by operation, so the
 * floats are bit-identical; quantization of the 32-block types matches gguf.quants.quantize bit for
 * bit (same float32 operations, same rounding). */
#include "kernels/kernels.h"

#include <stdlib.h>

#include <math.h>

/* ---- dequantize (one operation at a time as gguf.quants does it: bit-identical floats) ---- */

static void dq_q4_0(const lfm_block_q4_0 *b, float *y) {
    float d = lfm_half_to_float(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b->qs[j] & 0x0f) - 8);
        y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
    }
}

static void dq_q4_1(const lfm_block_q4_1 *b, float *y) {
    float d = lfm_half_to_float(b->d), m = lfm_half_to_float(b->m);
    for (int j = 0; j < 16; j++) {
        float p0 = d * (float)(b->qs[j] & 0x0f), p1 = d * (float)(b->qs[j] >> 4);
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

static uint32_t load_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dq_q5_0(const lfm_block_q5_0 *b, float *y) {
    float d = lfm_half_to_float(b->d);
    uint32_t qh = load_u32(b->qh);
    for (int j = 0; j < 16; j++) {
        int q0 = (b->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int q1 = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(q0 - 16);
        y[j + 16] = d * (float)(q1 - 16);
    }
}

static void dq_q5_1(const lfm_block_q5_1 *b, float *y) {
    float d = lfm_half_to_float(b->d), m = lfm_half_to_float(b->m);
    uint32_t qh = load_u32(b->qh);
    for (int j = 0; j < 16; j++) {
        int q0 = (b->qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
        int q1 = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        float p0 = d * (float)q0, p1 = d * (float)q1;
        y[j] = p0 + m;
        y[j + 16] = p1 + m;
    }
}

static void dq_q8_0(const lfm_block_q8_0 *b, float *y) {
    float d = lfm_half_to_float(b->d);
    for (int j = 0; j < 32; j++) y[j] = (float)b->qs[j] * d;
}

static void dq_q2_K(const lfm_block_q2_K *b, float *y) {
    float d = lfm_half_to_float(b->d), dmin = lfm_half_to_float(b->dmin);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, s = (i / 32) % 4, l = i % 32;
        int q = (b->qs[h * 32 + l] >> (2 * s)) & 3;
        uint8_t sc = b->scales[i / 16];
        float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
        float p = dl * (float)q;
        y[i] = p - ml;
    }
}

static int q3_K_scale(const uint8_t *s, int i) {
    int lo = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
    int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (int)(int8_t)(uint8_t)(lo | hi << 4) - 32;
}

static void dq_q3_K(const lfm_block_q3_K *b, float *y) {
    float d = lfm_half_to_float(b->d);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, s = (i / 32) % 4, l = i % 32;
        int ql = (b->qs[h * 32 + l] >> (2 * s)) & 3;
        int hb = (b->hmask[l] >> (i / 32)) & 1;
        int q = ql - ((hb ^ 1) << 2);
        float dl = d * (float)q3_K_scale(b->scales, i / 16);
        y[i] = dl * (float)q;
    }
}

/* Q4_K, and Q5_K when qh supplies each element's fifth bit (NULL for Q4_K) */
static void dq_k4(lfm_half dh, lfm_half dminh, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh, float *y) {
    float d = lfm_half_to_float(dh), dmin = lfm_half_to_float(dminh);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        lfm_k4_scale_min(j, scales, &sc, &mn);
        float dj = d * (float)sc, mj = dmin * (float)mn;
        const uint8_t *q = qs + (j / 2) * 32;
        int shift = (j % 2) * 4;
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh) v |= ((qh[l] >> j) & 1) << 4;
            float p = dj * (float)v;
            y[j * 32 + l] = p - mj;
        }
    }
}

static void dq_q4_K(const lfm_block_q4_K *b, float *y) { dq_k4(b->d, b->dmin, b->scales, b->qs, NULL, y); }
static void dq_q5_K(const lfm_block_q5_K *b, float *y) { dq_k4(b->d, b->dmin, b->scales, b->qs, b->qh, y); }

static void dq_q6_K(const lfm_block_q6_K *b, float *y) {
    float d = lfm_half_to_float(b->d);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, r = i % 128;
        int ql = (b->ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0f;
        int qh = (b->qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
        float dl = d * (float)b->scales[i / 16];
        y[i] = dl * (float)((ql | qh << 4) - 32);
    }
}

/* Row wrappers: the blocks of a row one after the other (n is a multiple of the block size,
 * checked by lfm_dequantize_row / lfm_quantize_row in type_traits.c). */
#define DQ_ROW(name, blk, qk)                                                                      \
    void lfm_dequantize_row_##name(const void *src, float *dst, int64_t n) {                       \
        const blk *b = src;                                                                        \
        for (int64_t i = 0; i < n / (qk); i++) dq_##name(&b[i], dst + i * (qk));                   \
    }
DQ_ROW(q4_0, lfm_block_q4_0, LFM_QK)
DQ_ROW(q4_1, lfm_block_q4_1, LFM_QK)
DQ_ROW(q5_0, lfm_block_q5_0, LFM_QK)
DQ_ROW(q5_1, lfm_block_q5_1, LFM_QK)
DQ_ROW(q8_0, lfm_block_q8_0, LFM_QK)
DQ_ROW(q2_K, lfm_block_q2_K, LFM_QK_K)
DQ_ROW(q3_K, lfm_block_q3_K, LFM_QK_K)
DQ_ROW(q4_K, lfm_block_q4_K, LFM_QK_K)
DQ_ROW(q5_K, lfm_block_q5_K, LFM_QK_K)
DQ_ROW(q6_K, lfm_block_q6_K, LFM_QK_K)
#undef DQ_ROW

void lfm_dequantize_row_f32(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

/* 16-bit float rows may sit at any even or odd offset of a file: read them bytewise (inlined per
 * type, so each row loop calls its converter directly). */
static inline void decode_16bit_row(const void *src, float *dst, int64_t n, float (*to_float)(uint16_t)) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = to_float(h);
    }
}

static inline void encode_16bit_row(const float *src, void *dst, int64_t n, uint16_t (*from_float)(float)) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = from_float(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

void lfm_dequantize_row_f16(const void *src, float *dst, int64_t n) { decode_16bit_row(src, dst, n, lfm_half_to_float); }
void lfm_dequantize_row_bf16(const void *src, float *dst, int64_t n) { decode_16bit_row(src, dst, n, lfm_bf16_to_float); }

/* ---- quantize weights (the reference rounding of ggml / gguf.quants) ---- */

/* (int)v clipped to [0, hi]; NaN (a block of denormals, whose 1/d overflows) gives 0, and no
 * out-of-range float is converted to int. The same as before for every v in int range. */
static int trunc_clip(float v, int hi) {
    if (!(v >= 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* A weight block holding a NaN or +-inf is stored with NaN scale (and min) and zero quants, as the
 * activation blocks are (quants.h, ROUNDING.md "Non-finite values"): it dequantizes to NaN. Returns
 * true when it stored such a block (bytes of block b; m NULL for the types without a min). */
static bool store_nonfinite_block(const float *x, void *b, size_t bytes, lfm_half *d, lfm_half *m) {
    int bad = 0;
    for (int j = 0; j < 32; j++) bad |= !(fabsf(x[j]) < INFINITY);
    if (!bad) return false;
    memset(b, 0, bytes);
    *d = LFM_HALF_NAN;
    if (m) *m = LFM_HALF_NAN;
    return true;
}

/* The min and 1/scale of a block of the types with a min (q4_1, q5_1: levels 15 or 31), with the
 * block's d and m stored. */
static float min_scale(const float *x, float levels, lfm_half *d_out, lfm_half *m_out, float *mn_out) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; j++) {
        mn = x[j] < mn ? x[j] : mn;
        mx = x[j] > mx ? x[j] : mx;
    }
    float d = (mx - mn) / levels, id = d != 0.0f ? 1.0f / d : 0.0f;
    *d_out = lfm_float_to_half(d);
    *m_out = lfm_float_to_half(mn);
    *mn_out = mn;
    return id;
}

/* Value of largest magnitude (first one on ties), as numpy's argmax(abs) picks it. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    return max;
}

static void q_q4_0(const float *x, lfm_block_q4_0 *b) {
    if (store_nonfinite_block(x, b, sizeof *b, &b->d, NULL)) return;
    float max = signed_absmax(x, 32);
    float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = lfm_float_to_half(d);
    for (int j = 0; j < 16; j++) {
        float a = x[j] * id, c = x[j + 16] * id;
        int q0 = trunc_clip(a + 8.5f, 15), q1 = trunc_clip(c + 8.5f, 15);
        b->qs[j] = (uint8_t)(q0 | q1 << 4);
    }
}

static void q_q4_1(const float *x, lfm_block_q4_1 *b) {
    if (store_nonfinite_block(x, b, sizeof *b, &b->d, &b->m)) return;
    float mn;
    float id = min_scale(x, 15.0f, &b->d, &b->m, &mn);
    for (int j = 0; j < 16; j++) {
        float a = (x[j] - mn) * id, c = (x[j + 16] - mn) * id;
        int q0 = trunc_clip(a + 0.5f, 15), q1 = trunc_clip(c + 0.5f, 15);
        b->qs[j] = (uint8_t)(q0 | q1 << 4);
    }
}

static void q_q5_0(const float *x, lfm_block_q5_0 *b) {
    if (store_nonfinite_block(x, b, sizeof *b, &b->d, NULL)) return;
    float max = signed_absmax(x, 32);
    float d = max / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = lfm_float_to_half(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        float a = x[j] * id, c = x[j + 16] * id;
        int q0 = trunc_clip(a + 16.5f, 31), q1 = trunc_clip(c + 16.5f, 31);
        b->qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
}

static void q_q5_1(const float *x, lfm_block_q5_1 *b) {
    if (store_nonfinite_block(x, b, sizeof *b, &b->d, &b->m)) return;
    float mn;
    float id = min_scale(x, 31.0f, &b->d, &b->m, &mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        float a = (x[j] - mn) * id, c = (x[j + 16] - mn) * id;
        int q0 = trunc_clip(a + 0.5f, 31), q1 = trunc_clip(c + 0.5f, 31);
        b->qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) b->qh[k] = (uint8_t)(qh >> (8 * k));
}

static void q_q8_0(const float *x, lfm_block_q8_0 *b) {
    if (store_nonfinite_block(x, b, sizeof *b, &b->d, NULL)) return;
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = lfm_float_to_half(d);
    for (int j = 0; j < 32; j++) { /* half away from zero; clamped only when 1/d overflowed (denormals) */
        float q = roundf(x[j] * id);
        b->qs[j] = (int8_t)(q != q ? 0.0f : fminf(fmaxf(q, -127.0f), 127.0f));
    }
}

static uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

LFM_QUANTIZE_ROW_BY_BLOCK(q4_0, lfm_block_q4_0, LFM_QK)
LFM_QUANTIZE_ROW_BY_BLOCK(q4_1, lfm_block_q4_1, LFM_QK)
LFM_QUANTIZE_ROW_BY_BLOCK(q5_0, lfm_block_q5_0, LFM_QK)
LFM_QUANTIZE_ROW_BY_BLOCK(q5_1, lfm_block_q5_1, LFM_QK)
LFM_QUANTIZE_ROW_BY_BLOCK(q8_0, lfm_block_q8_0, LFM_QK)

void lfm_quantize_row_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

void lfm_quantize_row_f16(const float *src, void *dst, int64_t n) { encode_16bit_row(src, dst, n, lfm_float_to_half); }
void lfm_quantize_row_bf16(const float *src, void *dst, int64_t n) { encode_16bit_row(src, dst, n, float_to_bf16); }

/* activation formats: the same encoding the matmul uses */
void lfm_quantize_row_q8_1(const float *src, void *dst, int64_t n) { lfm_quantize_act_row(LFM_TYPE_Q8_1, src, dst, n); }
void lfm_quantize_row_q8_K(const float *src, void *dst, int64_t n) { lfm_quantize_act_row(LFM_TYPE_Q8_K, src, dst, n); }

/* ---- activation rows and the matmul entry point ---- */

void lfm_quantize_act_row(lfm_type vec_dot_type, const float *x, void *dst, int64_t n) {
    const lfm_qkernels *k = lfm_qkernels_get();
    if ((int)vec_dot_type >= 0 && (int)vec_dot_type < LFM_TYPE_COUNT && k->act[vec_dot_type]) {
        k->act[vec_dot_type](x, dst, n);
        return;
    }
    memcpy(dst, x, (size_t)n * sizeof(float)); /* float types: activations stay F32 */
}

/* Rows [r0, r1) of an X8 matrix inside one 8-row group (a thread's range need not start or end at
 * a multiple of 8): the whole group through the X8 kernel with all T tokens at once (the kernels'
 * rounding depends on the batch size, as llama.cpp's does), keeping the rows asked for, so every row
 * of the matrix comes out of the same kernel whatever the split. */
static void x8_group_part(lfm_qmm_fn fn, const lfm_tensor *W, size_t bw, const uint8_t *x, size_t bx, int64_t T,
                          float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    int64_t g = r0 / 8 * 8;
    float small[8 * 64];
    float *y8 = T <= 64 ? small : malloc((size_t)T * 8 * sizeof(float));
    if (!y8) { /* no memory for the buffer: one token at a time, rounded as one-token batches */
        for (int64_t t = 0; t < T; t++) {
            fn(W->ne[0], (const uint8_t *)W->data + (size_t)g * bw, bw, 8, x + (size_t)t * bx, bx, 1, small, 8);
            for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = small[r - g];
        }
        return;
    }
    fn(W->ne[0], (const uint8_t *)W->data + (size_t)g * bw, bw, 8, x, bx, T, y8, 8);
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = y8[t * 8 + r - g];
    if (y8 != small) free(y8);
}

static void matmul_quant_rows(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T, float *Y, int64_t ldy,
                              int64_t r0, int64_t r1, bool per_token);

void lfm_matmul_quant_rows(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T, float *Y,
                           int64_t ldy, int64_t r0, int64_t r1) {
    matmul_quant_rows(W, Xq, xq_row_bytes, T, Y, ldy, r0, r1, false);
}

void lfm_matmul_quant_rows_per_token(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T, float *Y,
                                     int64_t ldy, int64_t r0, int64_t r1) {
    matmul_quant_rows(W, Xq, xq_row_bytes, T, Y, ldy, r0, r1, true);
}

static void matmul_quant_rows(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T, float *Y, int64_t ldy,
                              int64_t r0, int64_t r1, bool per_token) {
    if (r1 <= r0 || T <= 0) return;
    const lfm_qkernels *k = lfm_qkernels_get();
    if ((int)W->type < 0 || (int)W->type >= LFM_TYPE_COUNT) return;
    lfm_qmm_fn fn = k->mm[W->type];
    if (!fn) return; /* lfm_model_validate rejects weight types without a kernel before we get here */
    size_t bw = (size_t)(W->ne[0] / lfm_type_block_elems(W->type)) * lfm_type_block_bytes(W->type);
    const uint8_t *w = W->data, *x = Xq;
    if (W->layout == LFM_LAYOUT_X8) {
        /* only repacked when the table has the kernel (model/repack.c), and the table never changes */
        lfm_qmm_fn fx = per_token && k->mm_x8_tok[W->type] ? k->mm_x8_tok[W->type] : k->mm_x8[W->type];
        if (!fx) return;
        int64_t a = lfm_min64((r0 + 7) / 8 * 8, r1), b = lfm_max64(r1 / 8 * 8, a);
        if (r0 < a) x8_group_part(fx, W, bw, x, xq_row_bytes, T, Y, ldy, r0, a);
        if (a < b) fx(W->ne[0], w + (size_t)a * bw, bw, b - a, x, xq_row_bytes, T, Y + a, ldy);
        if (b < r1) x8_group_part(fx, W, bw, x, xq_row_bytes, T, Y, ldy, b, r1);
        return;
    }
    fn(W->ne[0], w + (size_t)r0 * bw, bw, r1 - r0, x, xq_row_bytes, T, Y + r0, ldy);
}
