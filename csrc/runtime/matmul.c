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

/* The float GEMM for W's type, or NULL for a quantized (or unknown) type. */
static lfm_gemm_fn float_gemm(const lfm_kernels *k, const lfm_tensor *W) {
    return (int)W->type >= 0 && (int)W->type < LFM_TYPE_COUNT ? k->gemm[W->type] : NULL;
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
    int n;                                /* weights in the group, all of input width ne[0] */
    const lfm_tensor *W[LFM_MATMUL_GROUP_MAX];
    float *Y[LFM_MATMUL_GROUP_MAX];
    int64_t ldy[LFM_MATMUL_GROUP_MAX];
    int64_t row0[LFM_MATMUL_GROUP_MAX + 1]; /* W[i]'s rows are [row0[i], row0[i+1]) of the group's */
    const float *X[LFM_MATMUL_GROUP_MAX]; /* W[i]'s input (the same for all, or one each: lfm_matmul_multi) */
    int n_inputs;                         /* 1 (a shared input, X[0]) or n */
    int64_t ldx, T;
    void *xq;                             /* input k's T quantized rows from k * T * xq_row on */
    size_t xq_row;
    lfm_type vec_dot_type;
    int64_t granule;                      /* row_granule() */
    bool per_token;                       /* quantized rows in the one-token order (MoE experts) */
    lfm_gemm_fn gemm[LFM_MATMUL_GROUP_MAX];
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

/* The group's rows go out to the threads in multiples of this: 8 when a weight is repacked in
 * 8-row groups (model/repack.c), else 4, the row kernels' tile. groupable() makes every weight's
 * row count a multiple of it, so each share starts on a group boundary of each weight. */
static int64_t row_granule(const lfm_tensor *const *W, int n) {
    for (int i = 0; i < n; i++)
        if (W[i]->layout == LFM_LAYOUT_X8) return 8;
    return 4;
}

/* Run this thread's share [r0, r1) of the group's rows, matrix by matrix. */
static void mm_rows(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t r0, r1;
    split_rows_g(j->row0[j->n], j->granule, ith, nth, &r0, &r1);
    for (int i = 0; i < j->n && r0 < r1; i++) {
        int64_t a = lfm_max64(r0, j->row0[i]) - j->row0[i], b = lfm_min64(r1, j->row0[i + 1]) - j->row0[i];
        if (a >= b) continue;
        const int in = j->n_inputs > 1 ? i : 0;
        if (j->gemm[i]) { /* float weights: no quantized activations (xq may be NULL) */
            j->gemm[i](j->W[i]->data, j->W[i]->ne[0], j->X[in], j->ldx, j->T, j->Y[i], j->ldy[i], a, b);
            continue;
        }
        const void *xq = (const char *)j->xq + (size_t)in * (size_t)j->T * j->xq_row;
        if (j->per_token) lfm_matmul_quant_rows_per_token(j->W[i], xq, j->xq_row, j->T, j->Y[i], j->ldy[i], a, b);
        else lfm_matmul_quant_rows(j->W[i], xq, j->xq_row, j->T, j->Y[i], j->ldy[i], a, b);
    }
}

/* every input's T rows, one after the other in xq */
static void mm_quantize_act(void *arg, int ith, int nth) {
    mm_job *j = arg;
    for (int64_t u = ith; u < j->n_inputs * j->T; u += nth) {
        const int64_t in = u / j->T, t = u % j->T;
        lfm_quantize_act_row(j->vec_dot_type, j->X[in] + t * j->ldx, (char *)j->xq + (size_t)u * j->xq_row, j->W[0]->ne[0]);
    }
}

/* Whether W[0..n) can run as one job: all quantized into the same activation format (so one
 * quantization of X serves all; float weights each choose between our GEMM and OpenBLAS), with the
 * same input width and row counts on the row granule. */
static bool groupable(const lfm_tensor *const *W, int n, const lfm_kernels *k) {
    const int64_t granule = row_granule(W, n);
    for (int i = 0; i < n; i++) {
        if (float_gemm(k, W[i]) || W[i]->ne[1] % granule != 0 || W[i]->ne[0] != W[0]->ne[0]) return false;
        if (lfm_type_vec_dot_type(W[i]->type) != lfm_type_vec_dot_type(W[0]->type)) return false;
    }
    return true;
}

typedef struct {
    const lfm_blas *blas;
    const lfm_kernels *k;
    const lfm_tensor *W;
    const float *X;
    int64_t ldx, T;
    float *Y;
    int64_t ldy;
    void *scratch;
} blas_job;

static void mm_blas(void *arg, int ith, int nth) {
    blas_job *j = arg;
    lfm_blas_matmul_rows(j->blas, j->k, j->W, j->X, j->ldx, j->T, j->Y, j->ldy, j->scratch, ith, nth);
}

/* X: one input shared by the n weights (n_inputs 1) or one each (n_inputs n). */
static void matmul_run(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *const *X, int n_inputs,
                       int64_t ldx, int64_t T, float *const *Y, const int64_t *ldy, void *scratch, bool per_token) {
    mm_job j = {.n = n, .n_inputs = n_inputs, .ldx = ldx, .T = T, .xq = scratch, .granule = row_granule(W, n),
                .per_token = per_token};
    const lfm_kernels *k = kernels();
    for (int i = 0; i < n_inputs; i++) j.X[i] = X[i];
    for (int i = 0; i < n; i++) {
        j.W[i] = W[i];
        j.Y[i] = Y[i];
        j.ldy[i] = ldy[i];
        j.row0[i + 1] = j.row0[i] + W[i]->ne[1];
        /* float types have a GEMM; quantized ones were checked by lfm_model_validate */
        j.gemm[i] = float_gemm(k, W[i]);
    }
    if (!j.gemm[0]) {
        j.vec_dot_type = lfm_type_vec_dot_type(W[0]->type);
        j.xq_row = act_row_bytes(W[0]);
        /* a few rows (a step's token, or its k experts' rows): cheaper here than a round trip to the pool */
        if (T <= 2 && n_inputs * T <= LFM_MATMUL_GROUP_MAX) mm_quantize_act(&j, 0, 1);
        else lfm_threadpool_run(tp, mm_quantize_act, &j);
    }
    lfm_threadpool_run(tp, mm_rows, &j);
}

static void matmul_one(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y,
                       int64_t ldy, void *scratch, const lfm_blas_use *blas, bool per_token) {
    if (blas && lfm_blas_takes(blas, W, T)) {
        blas_job j = {blas->blas, kernels(), W, X, ldx, T, Y, ldy, scratch};
        lfm_threadpool_run(tp, mm_blas, &j);
        return;
    }
    matmul_run(tp, &W, 1, &X, 1, ldx, T, &Y, &ldy, scratch, per_token);
}

static void matmul_timed(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy,
                         void *scratch, const lfm_blas_use *blas, bool per_token) {
    if (T <= 0) return;
    if (!lfm_profile_on()) {
        matmul_one(tp, W, X, ldx, T, Y, ldy, scratch, blas, per_token);
        return;
    }
    double t0 = lfm_profile_now();
    matmul_one(tp, W, X, ldx, T, Y, ldy, scratch, blas, per_token);
    lfm_profile_add(W->name, lfm_profile_now() - t0, T);
}

void lfm_matmul(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy,
                void *scratch, const lfm_blas_use *blas) {
    matmul_timed(tp, W, X, ldx, T, Y, ldy, scratch, blas, false);
}

static void matmul_group(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *X, int64_t ldx, int64_t T,
                         float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas, bool per_token) {
    if (T <= 0 || n <= 0) return;
    /* the profile times each weight on its own, so it sees them one by one */
    if (n > LFM_MATMUL_GROUP_MAX || lfm_profile_on() || !groupable(W, n, kernels())) {
        for (int i = 0; i < n; i++) matmul_timed(tp, W[i], X, ldx, T, Y[i], ldy[i], scratch, blas, per_token);
        return;
    }
    matmul_run(tp, W, n, &X, 1, ldx, T, Y, ldy, scratch, per_token);
}

void lfm_matmul_group(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *X, int64_t ldx, int64_t T,
                      float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas) {
    matmul_group(tp, W, n, X, ldx, T, Y, ldy, scratch, blas, false);
}

void lfm_matmul_group_per_token(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *X, int64_t ldx, int64_t T,
                                float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas) {
    matmul_group(tp, W, n, X, ldx, T, Y, ldy, scratch, blas, true);
}

void lfm_matmul_multi_per_token(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *const *X, int64_t ldx,
                                int64_t T, float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas) {
    if (T <= 0 || n <= 0) return;
    if (n > LFM_MATMUL_GROUP_MAX || lfm_profile_on() || !groupable(W, n, kernels())) {
        for (int i = 0; i < n; i++) matmul_timed(tp, W[i], X[i], ldx, T, Y[i], ldy[i], scratch, blas, true);
        return;
    }
    matmul_run(tp, W, n, X, n, ldx, T, Y, ldy, scratch, true);
}
