/* fuzz_quants — lfm_quantize_row / lfm_dequantize_row for every supported type on arbitrary floats
 * (NaN, ±inf, denormals, huge values) and arbitrary blocks. Input: byte 0 picks the type, the rest
 * is raw float32 data (quantize) and, reused, raw block bytes (dequantize). Must not crash or read
 * past the row; dequantizing a block gives a row of the same length. */
#include "fuzz_common.h"

static const lfm_type TYPES[] = {
    LFM_TYPE_F32, LFM_TYPE_F16, LFM_TYPE_BF16, LFM_TYPE_Q4_0, LFM_TYPE_Q4_1, LFM_TYPE_Q5_0, LFM_TYPE_Q5_1,
    LFM_TYPE_Q8_0, LFM_TYPE_Q8_1, LFM_TYPE_Q2_K, LFM_TYPE_Q3_K, LFM_TYPE_Q4_K, LFM_TYPE_Q5_K, LFM_TYPE_Q6_K,
    LFM_TYPE_Q8_K,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    lfm_type t = TYPES[data[0] % (sizeof TYPES / sizeof TYPES[0])];
    int64_t be = lfm_type_block_elems(t);
    size_t bb = lfm_type_block_bytes(t);
    if (be <= 0 || bb == 0) abort();
    data++, size--;
    int64_t n_blocks = (int64_t)(size / sizeof(float)) / be;
    if (n_blocks < 1) n_blocks = 1;
    if (n_blocks > 16) n_blocks = 16;
    int64_t n = n_blocks * be;
    float *x = calloc((size_t)n, sizeof *x), *y = malloc((size_t)n * sizeof *y);
    size_t nx = size < (size_t)n * sizeof(float) ? size : (size_t)n * sizeof(float);
    memcpy(x, data, nx);
    uint8_t *q = malloc((size_t)n_blocks * bb);
    lfm_status st = lfm_quantize_row(t, x, q, n);
    fuzz_check_error(st);
    if (st == LFM_OK) fuzz_check_error(lfm_dequantize_row(t, q, y, n));
    /* arbitrary block bytes */
    size_t nq = size < (size_t)n_blocks * bb ? size : (size_t)n_blocks * bb;
    memset(q, 0, (size_t)n_blocks * bb);
    memcpy(q, data, nq);
    fuzz_check_error(lfm_dequantize_row(t, q, y, n));
    /* a length that is not a multiple of the block must be refused */
    if (be > 1 && lfm_quantize_row(t, x, q, be - 1) == LFM_OK) abort();
    free(x), free(y), free(q);
    return 0;
}
