/* runtime/runtime.h — running a model: matmul dispatch, the context (KV cache, conv state,
 * scratch), the forward pass entry. */
#ifndef LFM_RUNTIME_H
#define LFM_RUNTIME_H

#include "kernels/kernels.h"
#include "model/model.h"
#include <stdatomic.h>

/* ---- matmul ---- */

/* Y[t, r] = sum_k W[r, k] * X[t, k] for t < T, r < W->ne[1], k < W->ne[0].
 * X: T rows of W->ne[0] floats (row stride ldx); Y: row stride ldy.
 * scratch: at least lfm_matmul_scratch_bytes(W, T) bytes (quantized activations). */
size_t lfm_matmul_scratch_bytes(const lfm_tensor *W, int64_t T);
void lfm_matmul(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T,
                float *Y, int64_t ldy, void *scratch);

/* ---- context ---- */

struct lfm_ctx {
    const lfm_model *model;
    const lfm_kernels *k;
    lfm_threadpool *tp;
    int32_t n_ctx, n_batch, pos;
    int32_t n_layer_attn, n_layer_conv;
    int32_t *slot;           /* n_layer: index among attention layers or among conv layers */
    void *k_cache;           /* (n_layer_attn, n_ctx, n_head_kv*head_dim) of F32, or F16 if kv_f16 */
    void *v_cache;           /* (n_layer_attn, n_ctx, n_head_kv*head_dim) of F32, or F16 if kv_f16 */
    int kv_f16;
    size_t kv_elem;          /* bytes per cached value: 4 or 2 */
    float *conv_state;       /* (n_layer_conv, K-1, H) oldest first */
    /* scratch, sized for n_batch tokens */
    float *x;                /* (n_batch, H) residual stream */
    float *xn;               /* (n_batch, H) normed input of a block */
    float *big;              /* (n_batch, n_big) projections: 3H conv in_proj, q|k|v, gate */
    float *big2;             /* (n_batch, F) up */
    float *y;                /* (n_batch, max(H, nh*hd)) block output before the out projection */
    float *rope_cs;          /* (n_batch, head_dim) cos then sin per token */
    float *scores;           /* (n_threads, n_ctx) attention scores */
    void *mm_scratch;        /* quantized activations for lfm_matmul */
    int64_t n_big;
    /* logits */
    float *logits;           /* (logits_cap, n_vocab) */
    int32_t logits_cap, n_logits;
    bool has_last_logits;    /* logits row n_logits-1 belongs to token pos-1 */
    int (*abort_cb)(void *);
    void *abort_user;
    atomic_int busy;
};

/* Run T tokens (T <= n_batch) at positions c->pos.. and advance pos. logits_rows: 0 none,
 * 1 the last token's row into dst, 2 every token's row into dst (T rows). Checks the abort
 * callback between layers (LFM_ERR_ABORTED; the caller resets the context). */
lfm_status lfm2_forward(struct lfm_ctx *c, const lfm_token *tokens, int32_t T, int logits_rows, float *dst);

#endif /* LFM_RUNTIME_H */
