/* ctx.c — a decoding context: KV cache (F32, or F16 with kv_f16), conv state, scratch and thread
 * pool, all allocated once in lfm_ctx_init (fields and shapes: struct lfm_ctx in runtime.h);
 * lfm_ctx_decode runs a prompt in chunks of n_batch tokens through lfm2_forward. */
#include "runtime/runtime.h"

#include <stdlib.h>
#include <string.h>

lfm_ctx_params lfm_ctx_default_params(void) {
    lfm_ctx_params p = {0, 0, 0, 0, LFM_BLAS_DEFAULT};
    return p;
}

void lfm_ctx_free(lfm_ctx *c) {
    if (!c) return;
    lfm_threadpool_free(c->tp);
    free(c->slot);
    free(c->k_cache);
    free(c->v_cache);
    free(c->conv_state);
    free(c->x);
    free(c->xb);   /* also block_out */
    free(c->proj); /* also conv_bcx, qkv, ffn_gate */
    free(c->ffn_up);
    free(c->mix);  /* also conv_out, attn_out */
    free(c->rope_cs);
    free(c->scores);
    free(c->mm_scratch);
    free(c->moe_logits);
    free(c->moe_sel);
    free(c->moe_w);
    free(c->moe_start);
    free(c->moe_slot);
    free(c->moe_row);
    free(c->moe_xo);
    free(c->moe_gate);
    free(c->moe_up);
    free(c->logits);
    free(c);
}

/* The largest matmul scratch any weight needs for T tokens on n_threads workers. An expert stack is
 * multiplied one expert at a time by at most T rows (a token picks an expert once), or in a step
 * by k inputs of one row each (lfm_matmul_multi_per_token). */
static size_t max_scratch(const lfm_model *m, int64_t T, int n_threads, const lfm_blas_use *blas) {
    size_t s = 0;
    for (int32_t l = -1; l < m->cfg.n_layer; l++) /* -1: the global tensors (the head) */
        for (int id = 0; id < LFM_TENSOR_COUNT; id++)
            if (lfm_tensor_is_matmul(id) && lfm_tensor_applies(id, &m->cfg, l)) {
                lfm_tensor W = *lfm_model_tensor_c(m, id, l);
                if (lfm_tensor_is_experts(id)) W = lfm_tensor_slice(&W, 0);
                const int64_t rows = lfm_tensor_is_experts(id) ? lfm_max64(T, m->cfg.n_expert_used) : T;
                size_t b = lfm_matmul_scratch_bytes(&W, rows, n_threads, blas);
                s = b > s ? b : s;
            }
    return s;
}

lfm_status lfm_ctx_init(const lfm_model *m, const lfm_ctx_params *p, lfm_ctx **out) {
    if (!out) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_init: out is NULL");
    *out = NULL;
    if (!m) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_init: model is NULL");
    lfm_ctx_params dp = lfm_ctx_default_params();
    if (!p) p = &dp;
    const lfm_config *cfg = &m->cfg;
    int32_t n_ctx = p->n_ctx > 0 ? p->n_ctx : (cfg->n_ctx_train < 32768 ? cfg->n_ctx_train : 32768);
    int32_t n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (n_ctx < 1) return lfm_fail(LFM_ERR_ARG, "n_ctx must be positive");
    if (n_batch > n_ctx) n_batch = n_ctx;
    lfm_blas_mode blas_mode;
    lfm_status st = lfm_blas_resolve_mode(p->blas, &blas_mode);
    if (st != LFM_OK) return st;

    struct lfm_ctx *c = calloc(1, sizeof *c);
    if (!c) return lfm_fail(LFM_ERR_OOM, "out of memory");
    c->model = m;
    c->k = lfm_kernels_get();
    c->blas = lfm_blas_use_for(m, blas_mode);
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->kv_f16 = p->kv_f16 != 0;
    c->kv_elem = c->kv_f16 ? 2 : 4;
    atomic_init(&c->busy, 0);
    st = lfm_threadpool_create(p->n_threads, &c->tp);
    if (st != LFM_OK) goto fail;

    const int64_t H = cfg->n_embd, F = cfg->n_ff, hd = cfg->head_dim, K = cfg->conv_l_cache;
    const int64_t nq = (int64_t)cfg->n_head * hd, nkv = (int64_t)cfg->n_head_kv * hd;
    c->slot = calloc((size_t)cfg->n_layer, sizeof *c->slot);
    if (!c->slot) goto oom;
    for (int32_t l = 0; l < cfg->n_layer; l++) c->slot[l] = cfg->is_attn[l] ? c->n_layer_attn++ : c->n_layer_conv++;

    c->kv_dim = nkv;
    const size_t B = (size_t)n_batch;
    /* large buffers come from calloc → fresh zero pages: KV rows cost memory only once written */
    if (c->n_layer_attn) {
        c->k_cache = calloc((size_t)c->n_layer_attn * (size_t)n_ctx, lfm_kv_row_bytes(c));
        c->v_cache = calloc((size_t)c->n_layer_attn * (size_t)n_ctx, lfm_kv_row_bytes(c));
        if (!c->k_cache || !c->v_cache) goto oom;
    }
    if (c->n_layer_conv && K > 1) {
        c->conv_state = calloc((size_t)c->n_layer_conv, lfm_conv_state_bytes(c));
        if (!c->conv_state) goto oom;
    }
    /* scratch: roles whose lives do not overlap share an allocation (see struct lfm_ctx) */
    const int64_t n_proj = lfm_max64(lfm_max64(3 * H, nq + 2 * nkv), F), n_mix = lfm_max64(H, nq);
    c->x = malloc(B * (size_t)H * sizeof(float));
    c->xb = malloc(B * (size_t)H * sizeof(float));
    c->block_out = c->xb;
    c->proj = malloc(B * (size_t)n_proj * sizeof(float));
    c->conv_bcx = c->qkv = c->ffn_gate = c->proj;
    c->ffn_up = malloc(B * (size_t)F * sizeof(float));
    c->mix = malloc(B * (size_t)n_mix * sizeof(float));
    c->conv_out = c->attn_out = c->mix;
    c->rope_cs = malloc(B * (size_t)hd * sizeof(float));
    c->scores = malloc((size_t)lfm_threadpool_n_threads(c->tp) * (size_t)n_ctx * sizeof(float));
    size_t mm = max_scratch(m, n_batch, lfm_threadpool_n_threads(c->tp), &c->blas);
    c->mm_scratch = mm ? malloc(mm) : NULL;
    c->logits = malloc((size_t)cfg->n_vocab * sizeof(float));
    c->logits_cap = 1;
    if (cfg->n_expert > 0) {
        const size_t E = (size_t)cfg->n_expert, k = (size_t)cfg->n_expert_used, FE = (size_t)cfg->n_ff_exp;
        c->moe_logits = malloc(B * E * sizeof(float));
        c->moe_sel = malloc(B * k * sizeof(int32_t));
        c->moe_w = malloc(B * k * sizeof(float));
        c->moe_start = malloc((E + 1) * sizeof(int32_t));
        c->moe_slot = malloc(B * k * sizeof(int32_t));
        c->moe_row = malloc(B * k * sizeof(int32_t));
        c->moe_xo = malloc(B * k * (size_t)H * sizeof(float));
        c->moe_gate = malloc(B * k * FE * sizeof(float));
        c->moe_up = malloc(B * k * FE * sizeof(float));
        if (!c->moe_logits || !c->moe_sel || !c->moe_w || !c->moe_start || !c->moe_slot || !c->moe_row || !c->moe_xo ||
            !c->moe_gate || !c->moe_up)
            goto oom;
    }
    if (!c->x || !c->xb || !c->proj || !c->ffn_up || !c->mix || !c->rope_cs || !c->scores || (mm && !c->mm_scratch) || !c->logits)
        goto oom;
    *out = c;
    return LFM_OK;
oom:
    st = lfm_fail(LFM_ERR_OOM, "out of memory allocating a context of %d positions", (int)n_ctx);
fail:
    lfm_ctx_free(c);
    return st;
}

void lfm_ctx_reset(lfm_ctx *c) {
    if (!c) return;
    c->pos = 0;
    c->n_logits = 0;
    c->has_last_logits = false;
    if (c->conv_state) memset(c->conv_state, 0, (size_t)c->n_layer_conv * lfm_conv_state_bytes(c));
    /* KV rows >= pos are never read, so the cache itself needs no clearing */
}

int32_t lfm_ctx_pos(const lfm_ctx *c) { return c ? c->pos : 0; }
int32_t lfm_ctx_n_ctx(const lfm_ctx *c) { return c ? c->n_ctx : 0; }

const float *lfm_ctx_logits(const lfm_ctx *c, int32_t *n_rows) {
    if (n_rows) *n_rows = c ? c->n_logits : 0;
    return c && c->n_logits ? c->logits : NULL;
}

void lfm_ctx_set_abort_callback(lfm_ctx *c, int (*cb)(void *user), void *user) {
    if (!c) return;
    c->abort_cb = cb;
    c->abort_user = user;
}

lfm_status lfm_ctx_decode(lfm_ctx *c, const lfm_token *tokens, int32_t n_tokens, lfm_logits_mode mode) {
    if (!c) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: context is NULL");
    if (n_tokens <= 0) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: empty token list");
    if (!tokens) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: tokens is NULL");
    if (mode != LFM_LOGITS_NONE && mode != LFM_LOGITS_LAST && mode != LFM_LOGITS_ALL)
        return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: unknown logits mode %d", (int)mode);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->busy, &expected, 1))
        return lfm_fail(LFM_ERR_BUSY, "context is in use by another thread");
    lfm_status st = LFM_OK;
    const int32_t V = c->model->cfg.n_vocab;
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= V) {
            st = lfm_fail(LFM_ERR_ARG, "token id %d at index %d is out of range [0, %d)", (int)tokens[i], (int)i, (int)V);
            goto out;
        }
    if ((int64_t)c->pos + n_tokens > c->n_ctx) {
        st = lfm_fail(LFM_ERR_CTX_FULL, "context full: %d tokens do not fit (position %d of %d)", (int)n_tokens, (int)c->pos,
                      (int)c->n_ctx);
        goto out;
    }
    int32_t rows = mode == LFM_LOGITS_ALL ? n_tokens : 1;
    if (rows > c->logits_cap) { /* grow only for LOGITS_ALL; a failed grow changes nothing */
        float *nl = realloc(c->logits, (size_t)rows * (size_t)V * sizeof(float));
        if (!nl) {
            st = lfm_fail(LFM_ERR_OOM, "out of memory for %d rows of logits", (int)rows);
            goto out;
        }
        c->logits = nl;
        c->logits_cap = rows;
    }
    c->n_logits = 0;
    c->has_last_logits = false;
    for (int32_t s = 0; s < n_tokens; s += c->n_batch) {
        int32_t nb = n_tokens - s < c->n_batch ? n_tokens - s : c->n_batch;
        bool last = s + nb == n_tokens;
        int how = mode == LFM_LOGITS_ALL ? 2 : (mode == LFM_LOGITS_LAST && last) ? 1 : 0;
        float *dst = mode == LFM_LOGITS_ALL ? c->logits + (size_t)s * V : c->logits;
        st = lfm2_forward(c, tokens + s, nb, how, dst);
        if (st != LFM_OK) {
            lfm_ctx_reset(c);
            goto out;
        }
    }
    if (mode != LFM_LOGITS_NONE) {
        c->n_logits = rows;
        c->has_last_logits = true;
    }
out:
    atomic_store(&c->busy, 0);
    return st;
}
