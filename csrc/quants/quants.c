/* quants.c — ggml-compatible block formats (owned by the quants work; placeholder until it lands:
 * only the float types are known here). */
#include "../internal.h"

#include <string.h>

const char *lfm_type_name(lfm_type t) {
    switch (t) {
    case LFM_TYPE_F32: return "f32";
    case LFM_TYPE_F16: return "f16";
    case LFM_TYPE_BF16: return "bf16";
    default: return NULL;
    }
}

int64_t lfm_type_block_elems(lfm_type t) { return lfm_type_name(t) ? 1 : 0; }

size_t lfm_type_block_bytes(lfm_type t) {
    return t == LFM_TYPE_F32 ? 4 : (t == LFM_TYPE_F16 || t == LFM_TYPE_BF16) ? 2 : 0;
}

bool lfm_type_is_quantized(lfm_type t) { return lfm_type_block_elems(t) > 1; }
lfm_type lfm_type_vec_dot_type(lfm_type t) { return LFM_TYPE_F32; }

void lfm_quantize_act_row(lfm_type vec_dot_type, const float *x, void *dst, int64_t n) {
    memcpy(dst, x, (size_t)n * sizeof(float));
}

void lfm_matmul_quant_rows(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T, float *Y,
                           int64_t ldy, int64_t r0, int64_t r1) {
    (void)W, (void)Xq, (void)xq_row_bytes, (void)T, (void)Y, (void)ldy, (void)r0, (void)r1;
}

lfm_status lfm_dequantize_row(lfm_type t, const void *src, float *dst, int64_t n) {
    return lfm_fail(LFM_ERR_UNSUPPORTED, "dequantize %d: not built yet", (int)t);
}

lfm_status lfm_quantize_row(lfm_type t, const float *src, void *dst, int64_t n) {
    return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize %d: not built yet", (int)t);
}
