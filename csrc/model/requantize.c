/* requantize.c — quantize on load: re-encode a loaded model's 2-D weight matrices into one block
 * type (lfm_model_params.quantize), into buffers the model owns.
 *
 * Targets: block types with both a quantizer and a matmul kernel in the type-traits table
 * (q4_0, q4_1, q5_0, q5_1, q8_0 today). A float type is refused (LFM_ERR_ARG); a block type without
 * a quantizer (the K-quants) or without a matmul kernel (q8_1, q8_K) is LFM_ERR_UNSUPPORTED.
 *
 * Policy (close to llama.cpp's for its plain ftypes), by the tensor table's roles (model/tensors.c):
 *   - every weight matrix (LFM_ROLE_MATRIX: FFN, short-conv in/out projections, attention q/k/v/o)
 *     gets `type`;
 *   - the token embedding (also the output head when tied, and an untied head likewise) gets Q8_0
 *     unless the target is Q8_0 itself. pick() would prefer Q6_K for the other targets, as llama.cpp
 *     does, when a Q6_K quantizer exists and the row length is a multiple of 256; with none in this
 *     build that branch always falls back to Q8_0;
 *   - a matrix whose row length is not a multiple of the type's block size falls back to Q8_0
 *     (rows multiple of 32) or stays as it is;
 *   - norms and the conv kernel (F32) are never touched; a tensor already in its target type is kept.
 * Rows are split over n_threads load-time threads (lfm_thread_start). */
#include "model/model.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- float rows ---- */

lfm_status lfm_tensor_row_to_f32(const lfm_tensor *t, int64_t r, float *dst) {
    if (t->layout == LFM_LAYOUT_X8) { /* repacked (model/repack.c): one block at a time */
        int64_t be = lfm_type_block_elems(t->type);
        uint8_t blk[sizeof(lfm_block_q8_K)]; /* the largest block */
        if (be <= 1 || lfm_type_block_bytes(t->type) > sizeof blk || !lfm_type_has_x8(t->type))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': no X8 layout for %s", t->name, lfm_type_name(t->type));
        for (int64_t i = 0; i < t->ne[0] / be; i++) {
            lfm_unpack_x8_row(t->type, t->data, r, t->ne[0], i, 1, blk);
            lfm_status st = lfm_dequantize_row(t->type, blk, dst + i * be, be);
            if (st != LFM_OK) return st;
        }
        return LFM_OK;
    }
    const uint8_t *src = (const uint8_t *)t->data + (size_t)r * lfm_tensor_row_bytes(t);
    return lfm_dequantize_row(t->type, src, dst, t->ne[0]); /* float types included */
}

/* ---- policy ---- */

/* A weight type quantize-on-load can produce and then run: a quantizer and a matmul kernel in the
 * traits table (Q8_1 / Q8_K have the first, as activation formats, not the second). */
static bool can_quantize(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt && tt->from_float && lfm_type_has_matmul(t);
}

static bool fits(lfm_type t, int64_t n) {
    int64_t be = lfm_type_block_elems(t);
    return be > 0 && n % be == 0;
}

static lfm_type pick(const lfm_tensor *w, lfm_type target, bool is_embedding) {
    lfm_type t = target;
    if (is_embedding && target != LFM_TYPE_Q8_0 && target != LFM_TYPE_Q6_K && lfm_type_is_quantized(target))
        t = can_quantize(LFM_TYPE_Q6_K) && fits(LFM_TYPE_Q6_K, w->ne[0]) ? LFM_TYPE_Q6_K : LFM_TYPE_Q8_0;
    if (!fits(t, w->ne[0])) t = fits(LFM_TYPE_Q8_0, w->ne[0]) ? LFM_TYPE_Q8_0 : LFM_TYPE_NONE;
    return t;
}

/* ---- threaded re-encode ---- */

typedef struct {
    const lfm_tensor *src;
    lfm_type type;
    uint8_t *dst;
    size_t dst_row;
    int64_t r0, r1;
    lfm_status status;
    char error[256];
} job;

static void *run_job(void *arg) {
    job *j = arg;
    float *row = malloc((size_t)j->src->ne[0] * sizeof(float));
    if (!row) {
        j->status = lfm_fail(LFM_ERR_OOM, "out of memory quantizing '%s'", j->src->name);
    } else {
        for (int64_t r = j->r0; r < j->r1 && !j->status; r++) {
            j->status = lfm_tensor_row_to_f32(j->src, r, row);
            if (!j->status) j->status = lfm_quantize_row(j->type, row, j->dst + (size_t)r * j->dst_row, j->src->ne[0]);
        }
        free(row);
    }
    if (j->status) snprintf(j->error, sizeof j->error, "%s", lfm_last_error()); /* thread-local: carry it back */
    return NULL;
}

static lfm_status requant(struct lfm_model *m, lfm_tensor *w, lfm_type target, bool is_embedding, int n_threads) {
    if (!w->data) return LFM_OK;
    lfm_type t = pick(w, target, is_embedding);
    if (t == LFM_TYPE_NONE || t == w->type) return LFM_OK;
    if (!can_quantize(t))
        return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize on load: no quantizer for %s (tensor '%s')",
                        lfm_type_name(t) ? lfm_type_name(t) : "?", w->name);
    const int64_t rows = w->ne[1] * w->ne[2] * w->ne[3];
    const size_t rb = (size_t)(w->ne[0] / lfm_type_block_elems(t)) * lfm_type_block_bytes(t);
    uint8_t *dst = malloc(rb * (size_t)rows);
    if (!dst) return lfm_fail(LFM_ERR_OOM, "out of memory quantizing '%s' (%zu bytes)", w->name, rb * (size_t)rows);
    lfm_status st = lfm_model_own(m, dst);
    if (st) {
        free(dst);
        return st;
    }
    int nt = (int)lfm_min64(lfm_max64(n_threads, 1), lfm_max64(rows / 16, 1));
    if (nt > 64) nt = 64;
    job jobs[64];
    lfm_thread *tids[64];
    bool started[64] = {0};
    for (int i = 0; i < nt; i++) {
        jobs[i] = (job){w, t, dst, rb, rows * i / nt, rows * (i + 1) / nt, LFM_OK, {0}};
        if (i > 0) started[i] = (tids[i] = lfm_thread_start(run_job, &jobs[i])) != NULL;
        if (i > 0 && !started[i]) run_job(&jobs[i]);
    }
    run_job(&jobs[0]);
    for (int i = 1; i < nt; i++)
        if (started[i]) lfm_thread_join(tids[i]);
    for (int i = 0; i < nt; i++)
        if (jobs[i].status) return lfm_fail(jobs[i].status, "%s", jobs[i].error);
    w->type = t;
    w->data = dst;
    w->nbytes = rb * (size_t)rows;
    return LFM_OK;
}

lfm_status lfm_model_requantize(struct lfm_model *m, lfm_type type, int n_threads) {
    if (type == LFM_TYPE_NONE) return LFM_OK;
    const lfm_type_traits *tt = lfm_type_traits_get(type);
    if (!tt) return lfm_fail(LFM_ERR_ARG, "quantize on load: unknown type id %d", (int)type);
    if (!tt->is_quantized)
        return lfm_fail(LFM_ERR_ARG, "quantize on load: %s is not a block type (use q8_0, q4_0, ...)", tt->name);
    if (!tt->from_float)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize on load: no quantizer for %s in this build", tt->name);
    if (!lfm_type_has_matmul(type))
        return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize on load: %s has no matmul kernel for weight matrices", tt->name);
    if (n_threads <= 0) n_threads = lfm_n_cores();
    for (int32_t l = -1; l < m->cfg.n_layer; l++) /* -1: the global tensors */
        for (int id = 0; id < LFM_TENSOR_COUNT; id++) {
            lfm_tensor_role role = lfm_tensors[id].role;
            if (!lfm_tensor_applies(id, &m->cfg, l) || (role != LFM_ROLE_MATRIX && role != LFM_ROLE_EMBEDDING && role != LFM_ROLE_HEAD))
                continue;
            lfm_tensor *w = lfm_model_tensor(m, id, l);
            if (role == LFM_ROLE_HEAD && m->cfg.tied_output) { /* the embedding, requantized above */
                *w = m->tok_embd;
                continue;
            }
            lfm_status st = requant(m, w, type, role != LFM_ROLE_MATRIX, n_threads);
            if (st != LFM_OK) return st;
        }
    return LFM_OK;
}
