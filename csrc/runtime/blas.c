/* blas.c — OpenBLAS's sgemm for the float matmuls of large batches (prefill).
 *
 * The library is the scipy-openblas32 wheel's (symbols prefixed scipy_, 32-bit integers). The
 * Python layer finds it in the installed wheel and hands its path to lfm_blas_load, which loads
 * it at run time (base/: lfm_library_open): the engine builds, installs and runs without it, and
 * uses its own kernels until it is loaded.
 *
 * Threads. OpenBLAS is set to one thread, and every worker of the context's pool calls it on its
 * own blocks of weight rows. Its own thread pool would be a second set of threads competing for
 * the same cores as ours (they spin while they wait: with other processes running, one sgemm on
 * OpenBLAS's two threads was slower than this split in 53 of 56 measured cells, median 27 against
 * 46 GFLOP/s, at worst 0.9), and its thread count is one process-wide setting that two contexts
 * with different n_threads would fight over.
 *
 * Blocks. The rows are cut into blocks of BLAS_BLOCK_ROWS, and each block is one sgemm call, so
 * every call has the same shape whatever the thread count: OpenBLAS picks its kernel (and so its
 * summation order) by shape, and this keeps results identical for 1 and n threads. F16 and BF16
 * blocks are converted to F32 into the worker's scratch first (OpenBLAS has no 16-bit GEMM in this
 * build); the block's conversion is paid once for every token of the batch. */
#include "runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cblas_sgemm: C (m x n) = alpha * op(A) op(B) + beta * C */
typedef void (*sgemm_fn)(int layout, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

struct lfm_blas {
    lfm_library *lib;
    sgemm_fn sgemm;
    char info[256];
};

static _Atomic(const lfm_blas *) loaded;

lfm_status lfm_blas_load(const char *path) {
    if (!path) return lfm_fail(LFM_ERR_ARG, "lfm_blas_load: path is NULL");
    if (atomic_load_explicit(&loaded, memory_order_acquire)) return LFM_OK;
    lfm_blas *b = calloc(1, sizeof *b);
    if (!b) return lfm_fail(LFM_ERR_OOM, "out of memory");
    lfm_status st = lfm_library_open(path, &b->lib);
    if (st != LFM_OK) {
        free(b);
        return st;
    }
    b->sgemm = (sgemm_fn)lfm_library_symbol(b->lib, "scipy_cblas_sgemm");
    void (*set_threads)(int) = (void (*)(int))lfm_library_symbol(b->lib, "scipy_openblas_set_num_threads");
    char *(*config)(void) = (char *(*)(void))lfm_library_symbol(b->lib, "scipy_openblas_get_config");
    if (!b->sgemm || !set_threads || !config) {
        lfm_library_close(b->lib);
        free(b);
        return lfm_fail(LFM_ERR_UNSUPPORTED,
                        "'%s' is not the scipy-openblas32 library: it lacks scipy_cblas_sgemm, "
                        "scipy_openblas_set_num_threads or scipy_openblas_get_config", path);
    }
    set_threads(1);
    const char *cfg = config();
    snprintf(b->info, sizeof b->info, "%s", cfg ? cfg : "OpenBLAS");
    const lfm_blas *none = NULL;
    if (!atomic_compare_exchange_strong(&loaded, &none, b)) { /* another thread loaded it first */
        lfm_library_close(b->lib); /* a second reference to the same library: the first stays */
        free(b);
    }
    return LFM_OK;
}

const lfm_blas *lfm_blas_get(void) { return atomic_load_explicit(&loaded, memory_order_acquire); }

const char *lfm_blas_info(void) {
    const lfm_blas *b = lfm_blas_get();
    return b ? b->info : NULL;
}

lfm_status lfm_blas_resolve_mode(int32_t requested, lfm_blas_mode *out) {
    *out = LFM_BLAS_AUTO;
    if (requested == LFM_BLAS_AUTO || requested == LFM_BLAS_OFF || requested == LFM_BLAS_ON) {
        *out = (lfm_blas_mode)requested;
        return LFM_OK;
    }
    if (requested != LFM_BLAS_DEFAULT) return lfm_fail(LFM_ERR_ARG, "blas: unknown mode %d", (int)requested);
    const char *env = lfm_env("LFM_BLAS");
    if (!env || !*env || strcmp(env, "auto") == 0) return LFM_OK;
    if (strcmp(env, "0") == 0) *out = LFM_BLAS_OFF;
    else if (strcmp(env, "1") == 0) *out = LFM_BLAS_ON;
    else return lfm_fail(LFM_ERR_ARG, "LFM_BLAS='%.32s': expected 0 (off), 1 (every float matmul) or auto", env);
    return LFM_OK;
}

/* ---- when ---- */

/* The smallest batch (tokens) OpenBLAS takes under LFM_BLAS_AUTO, measured by
 * benchmarks/bench_blas.py (README, "OpenBLAS"; AMD EPYC Zen 4, the LFM2-350M and LFM2.5-1.2B
 * matrices, one thread, CPU time). sgemm packs the weight block on every call, which the batch
 * must pay for: below these sizes our GEMM, which reads the weights in place, was as fast or faster.
 * - F32: OpenBLAS from 128 tokens (up to 1.3x at 512), from 64 when rows are long (K >= 4096,
 *   FFN down: up to 1.6x), where our GEMM's token chunks are short and it rereads the weights most.
 * - BF16: from 192 tokens (up to 1.25x at 512, the conversion to F32 included).
 * - F16: never: our GEMM converts with F16C as it reads and kept up with sgemm plus the conversion
 *   (0.94-1.16x at 512 tokens, slower on half the matrices; our GEMM faster below 256 tokens). */
static int64_t auto_min_tokens(const lfm_tensor *W) { /* 0: never */
    switch (W->type) {
    case LFM_TYPE_F32: return W->ne[0] >= 4096 ? 64 : 128;
    case LFM_TYPE_BF16: return 192;
    default: return 0;
    }
}

bool lfm_blas_takes(const lfm_blas_use *u, const lfm_tensor *W, int64_t T) {
    if (!u->blas || (W->type != LFM_TYPE_F32 && W->type != LFM_TYPE_F16 && W->type != LFM_TYPE_BF16)) return false;
    if (u->always) return true;
    const int64_t min_tokens = auto_min_tokens(W);
    return !(u->keep_f32 && W->type == LFM_TYPE_F32) && min_tokens > 0 && T >= min_tokens;
}

lfm_blas_use lfm_blas_use_for(const lfm_model *m, lfm_blas_mode mode) {
    /* GGUF F32 matrices: our GEMM sums in llama.cpp's order, and an F32 GGUF's logits equal
     * llama.cpp's bit for bit (tests/formats/test_gguf_model.py); sgemm's order would give that up
     * (measured 2.7e-5 off over 256 tokens), so auto leaves them alone. Its F16/BF16 matrices have
     * no such parity to keep: llama.cpp rounds their activations to 16 bits, we do not. */
    lfm_blas_use u = {lfm_blas_get(), mode == LFM_BLAS_ON, mode == LFM_BLAS_AUTO && m->gguf};
    /* LFM_KERNELS=ref asks for the scalar reference: no matmul goes to OpenBLAS then */
    if (!u.blas || mode == LFM_BLAS_OFF || lfm_cpu()->force_ref) {
        u.blas = NULL;
        return u;
    }
    for (int32_t l = -1; l < m->cfg.n_layer; l++) /* -1: the global tensors (the head) */
        for (int id = 0; id < LFM_TENSOR_COUNT; id++)
            if (lfm_tensor_is_matmul(id) && lfm_tensor_applies(id, &m->cfg, l) &&
                lfm_blas_takes(&u, lfm_model_tensor_c(m, id, l), INT64_MAX))
                return u;
    u.blas = NULL;
    return u;
}

/* ---- the matmul ---- */

/* Rows per sgemm call: every call packs the batch's activations again, so blocks are long enough
 * for that to be small (256 rows measured within noise of 512 and 1024, and 128 up to 8% slower),
 * and short enough to keep 2..16 threads busy on LFM2's matrices and an F16/BF16 block's F32 copy
 * (8 MiB for K = 8192) small. */
#define BLAS_BLOCK_ROWS 256

size_t lfm_blas_scratch_bytes(const lfm_tensor *W, int n_threads) {
    if (W->type != LFM_TYPE_F16 && W->type != LFM_TYPE_BF16) return 0;
    return (size_t)n_threads * (size_t)lfm_min64(BLAS_BLOCK_ROWS, W->ne[1]) * (size_t)W->ne[0] * sizeof(float);
}

void lfm_blas_matmul_rows(const lfm_blas *b, const lfm_kernels *k, const lfm_tensor *W, const float *X, int64_t ldx,
                          int64_t T, float *Y, int64_t ldy, float *scratch, int ith, int nth) {
    const int64_t K = W->ne[0], R = W->ne[1], B = BLAS_BLOCK_ROWS;
    const int64_t n_blocks = (R + B - 1) / B;
    const int64_t b0 = n_blocks * ith / nth, b1 = n_blocks * (ith + 1) / nth;
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t r0 = blk * B, n = lfm_min64(B, R - r0);
        const float *w;
        if (W->type == LFM_TYPE_F32) {
            w = (const float *)W->data + r0 * K;
        } else {
            const uint16_t *src = (const uint16_t *)W->data + r0 * K;
            float *dst = scratch + (size_t)ith * (size_t)lfm_min64(B, R) * (size_t)K;
            if (W->type == LFM_TYPE_F16) k->f16_to_f32(dst, src, n * K);
            else k->bf16_to_f32(dst, src, n * K);
            w = dst;
        }
        /* Y[:, r0:r0+n] = X · w^T */
        b->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)T, (int)n, (int)K, 1.0f, X, (int)ldx, w, (int)K, 0.0f,
                 Y + r0, (int)ldy);
    }
}
