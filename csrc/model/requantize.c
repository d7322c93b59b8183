/* requantize.c — quantize on load: re-encode a loaded model's weight matrices and embedding by a
 * file type's rule (lfm_model_params.quantize), into buffers the model owns.
 *
 * The type of each tensor is the one llama-quantize would give it for that file type
 * (lfm_ftype_tensor_type, model/ftype.c): q4_k_m keeps the embedding in Q6_K and some attention V
 * and FFN down matrices in Q6_K, q4_0 puts every matrix in Q4_0 and a tied embedding in Q6_K, and
 * so on. From a float checkpoint the weights are then the bytes a GGUF written by
 * liquidlfm.quantize (or llama-quantize) holds. Only the quantized file types are accepted (a float
 * one is LFM_ERR_ARG); norms and the conv kernel (F32) are never touched, and a tensor already in
 * its type is kept as it is (not requantized). Rows are split over n_threads load-time threads
 * (lfm_thread_start). */
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
    if (t->slices) src = (const uint8_t *)t->slices[r / t->ne[1]] + (size_t)(r % t->ne[1]) * lfm_tensor_row_bytes(t);
    return lfm_dequantize_row(t->type, src, dst, t->ne[0]); /* float types included */
}

/* ---- policy ---- */

/* A type quantize on load can produce for a tensor of this role and then use: a quantizer, and a
 * matmul kernel (matrices, the head) or a row decoder (the embedding's lookups). */
static bool can_produce(lfm_type t, lfm_tensor_role role) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    if (!tt || !tt->from_float) return false;
    return role == LFM_ROLE_EMBEDDING ? tt->to_float != NULL : lfm_type_has_matmul(t);
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

static lfm_status requant(struct lfm_model *m, lfm_tensor *w, lfm_type t, lfm_tensor_role role, int n_threads) {
    if (!w->data || t == LFM_TYPE_NONE || t == w->type) return LFM_OK;
    if (!can_produce(t, role))
        return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize on load: no quantizer or kernel for %s (tensor '%s')",
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
    w->slices = NULL; /* an expert stack is now one contiguous buffer */
    return LFM_OK;
}

lfm_status lfm_model_requantize(struct lfm_model *m, lfm_ftype f, int n_threads) {
    if (f == LFM_FTYPE_NONE) return LFM_OK;
    const char *name = lfm_ftype_name(f);
    if (!name) return lfm_fail(LFM_ERR_ARG, "quantize on load: unknown file type %d", (int)f);
    if (f == LFM_FTYPE_F32 || f == LFM_FTYPE_F16 || f == LFM_FTYPE_BF16)
        return lfm_fail(LFM_ERR_ARG, "quantize on load: %s is not a quantized file type (use q8_0, q4_k_m, ...)", name);
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
            lfm_status st = requant(m, w, lfm_ftype_tensor_type(f, &m->cfg, id, l), role, n_threads);
            if (st != LFM_OK) return st;
        }
    return LFM_OK;
}
