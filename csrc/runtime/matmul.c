/* matmul.c — Y = X · Wᵀ for every weight type, output rows split across the context's threads.
 * Float weights (F32/F16/BF16) go to the kernel table's blocked GEMM, or to OpenBLAS for batches
 * where it is faster (runtime/blas.c decides); quantized weights first quantize the activations
 * into the weight type's vec_dot format (kernels/quants/), then run the quantized row dot products. */
#include "runtime/runtime.h"

#include <string.h>

static const lfm_kernels *kernels(void) {
    static const lfm_kernels *k; /* benign race: every thread picks the same table */
    if (!k) k = lfm_kernels_get();
    return k;
}

static size_t act_row_bytes(const lfm_tensor *W) {
    lfm_type vt = lfm_type_vec_dot_type(W->type);
    int64_t be = lfm_type_block_elems(vt);
    if (be <= 0) return 0;
    return (size_t)(W->ne[0] / be) * lfm_type_block_bytes(vt);
}

size_t lfm_matmul_scratch_bytes(const lfm_tensor *W, int64_t T, int n_threads, const lfm_blas_use *blas) {
    /* a batch of T tokens or fewer: OpenBLAS takes more tokens, never fewer, so T is the largest */
    if (!lfm_type_is_quantized(W->type)) return blas && lfm_blas_takes(blas, W, T) ? lfm_blas_scratch_bytes(W, n_threads) : 0;
    return act_row_bytes(W) * (size_t)T;
}

typedef struct {
    const lfm_tensor *W;
    const float *X;
    int64_t ldx, T;
    float *Y;
    int64_t ldy;
    void *xq;
    size_t xq_row;
    lfm_gemm_fn gemm;
    const lfm_blas *blas;
    const lfm_kernels *k;
} mm_job;

/* [r0, r1) of this thread: rows in multiples of g so kernel tiles stay whole */
static void split_rows_g(int64_t R, int64_t g, int ith, int nth, int64_t *r0, int64_t *r1) {
    int64_t blocks = (R + g - 1) / g;
    int64_t per = blocks / nth, extra = blocks % nth;
    int64_t b0 = ith * per + (ith < extra ? ith : extra);
    int64_t b1 = b0 + per + (ith < extra ? 1 : 0);
    *r0 = lfm_min64(b0 * g, R);
    *r1 = lfm_min64(b1 * g, R);
}

static void split_rows(int64_t R, int ith, int nth, int64_t *r0, int64_t *r1) { split_rows_g(R, 4, ith, nth, r0, r1); }

static void mm_float(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t r0, r1;
    split_rows(j->W->ne[1], ith, nth, &r0, &r1);
    if (r0 < r1) j->gemm(j->W->data, j->W->ne[0], j->X, j->ldx, j->T, j->Y, j->ldy, r0, r1);
}

static void mm_blas(void *arg, int ith, int nth) {
    mm_job *j = arg;
    lfm_blas_matmul_rows(j->blas, j->k, j->W, j->X, j->ldx, j->T, j->Y, j->ldy, j->xq, ith, nth);
}

static void mm_quantize_act(void *arg, int ith, int nth) {
    mm_job *j = arg;
    lfm_type vt = lfm_type_vec_dot_type(j->W->type);
    for (int64_t t = ith; t < j->T; t += nth)
        lfm_quantize_act_row(vt, j->X + t * j->ldx, (char *)j->xq + (size_t)t * j->xq_row, j->W->ne[0]);
}

static void mm_quant(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t r0, r1;
    /* repacked weights come in groups of 8 rows (model/repack.c) */
    split_rows_g(j->W->ne[1], j->W->layout == LFM_LAYOUT_X8 ? 8 : 4, ith, nth, &r0, &r1);
    if (r0 < r1) lfm_matmul_quant_rows(j->W, j->xq, j->xq_row, j->T, j->Y, j->ldy, r0, r1);
}

static void matmul_run(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy, void *scratch, const lfm_blas_use *blas) {
    const lfm_kernels *k = kernels();
    mm_job j = {W, X, ldx, T, Y, ldy, scratch, 0, NULL, NULL, k};
    if (blas && lfm_blas_takes(blas, W, T)) {
        j.blas = blas->blas;
        lfm_threadpool_run(tp, mm_blas, &j);
        return;
    }
    if ((int)W->type >= 0 && (int)W->type < LFM_TYPE_COUNT) j.gemm = k->gemm[W->type]; /* float types */
    if (j.gemm) {
        lfm_threadpool_run(tp, mm_float, &j);
        return;
    }
    /* quantized: lfm_model_validate guaranteed a known block type */
    j.xq_row = act_row_bytes(W);
    if (T <= 2) mm_quantize_act(&j, 0, 1); /* a few rows: cheaper here than a round trip to the pool */
    else lfm_threadpool_run(tp, mm_quantize_act, &j);
    lfm_threadpool_run(tp, mm_quant, &j);
}

void lfm_matmul(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy,
                void *scratch, const lfm_blas_use *blas) {
    if (T <= 0) return;
    if (!lfm_profile_on()) {
        matmul_run(tp, W, X, ldx, T, Y, ldy, scratch, blas);
        return;
    }
    double t0 = lfm_profile_now();
    matmul_run(tp, W, X, ldx, T, Y, ldy, scratch, blas);
    lfm_profile_add(W->name, lfm_profile_now() - t0, T);
}
