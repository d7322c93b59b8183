/* ctx.c — a decoding context of n_seq sequences: per sequence a KV cache (F32, or F16 with kv_f16),
 * conv state and position; scratch and thread pool shared. All allocated once in lfm_ctx_init
 * (fields and shapes: struct lfm_ctx in runtime.h). lfm_ctx_decode runs a prompt of sequence 0 in
 * chunks of n_batch tokens through lfm2_forward; lfm_ctx_decode_seqs runs chunks of several
 * sequences together, n_batch tokens per forward pass. */
#include "runtime/runtime.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

lfm_ctx_params lfm_ctx_default_params(void) {
    lfm_ctx_params p = {0, 0, 0, 0, LFM_BLAS_DEFAULT, 0};
    return p;
}

void lfm_ctx_free(lfm_ctx *c) {
    if (!c) return;
    lfm_threadpool_free(c->tp);
    free(c->slot);
    free(c->kv_row0);
    free(c->kv_ring);
    for (int32_t s = 0; c->seqs && s < c->n_seq; s++) {
        free(c->seqs[s].k_cache);
        free(c->seqs[s].v_cache);
        free(c->seqs[s].conv_state);
    }
    free(c->seqs);
    free(c->x);
    free(c->xb);   /* also block_out */
    free(c->proj); /* also conv_bcx, qkv, ffn_gate */
    free(c->ffn_up);
    free(c->mix);  /* also conv_out, attn_out */
    free(c->rope_cs);
    free(c->rope_cs_swa);
    free(c->scores);
    free(c->tok);
    free(c->seg);
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
    if (p->n_seq < 0) return lfm_fail(LFM_ERR_ARG, "n_seq must be >= 0 (0: one sequence), got %d", (int)p->n_seq);
    const int32_t n_seq = p->n_seq > 0 ? p->n_seq : 1;
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
    c->n_seq = n_seq;
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
    /* per attention layer its rows: n_ctx, or a mirrored ring of a sliding window (runtime.h, lfm_seq) */
    c->kv_row0 = calloc((size_t)c->n_layer_attn + 1, sizeof *c->kv_row0);
    c->kv_ring = calloc((size_t)c->n_layer_attn + 1, sizeof *c->kv_ring);
    if (!c->kv_row0 || !c->kv_ring) goto oom;
    bool any_swa = false;
    for (int32_t l = 0; l < cfg->n_layer; l++) {
        if (!cfg->is_attn[l]) continue;
        const int32_t a = c->slot[l];
        const int64_t ring = (int64_t)cfg->n_swa + n_batch - 1;
        any_swa |= cfg->is_swa[l] != 0;
        c->kv_ring[a] = cfg->is_swa[l] && 2 * ring < n_ctx ? (int32_t)ring : 0;
        c->kv_row0[a] = c->kv_rows;
        c->kv_rows += c->kv_ring[a] ? 2 * (size_t)ring : (size_t)n_ctx;
    }
    /* large buffers come from calloc → fresh zero pages: KV rows cost memory only once written, so
     * n_seq sequences of n_ctx positions cost what their tokens use. One allocation per sequence and
     * cache: each stays within what the OS lets a single mapping reserve. */
    c->seqs = calloc((size_t)n_seq, sizeof *c->seqs);
    if (!c->seqs) goto oom;
    for (int32_t s = 0; s < n_seq; s++) {
        lfm_seq *q = &c->seqs[s];
        if (c->n_layer_attn) {
            q->k_cache = calloc(c->kv_rows, lfm_kv_row_bytes(c));
            q->v_cache = calloc(c->kv_rows, lfm_kv_row_bytes(c));
            if (!q->k_cache || !q->v_cache) goto oom;
        }
        if (c->n_layer_conv && K > 1) {
            q->conv_state = calloc((size_t)c->n_layer_conv, lfm_conv_state_bytes(c));
            if (!q->conv_state) goto oom;
        }
    }
    /* scratch: roles whose lives do not overlap share an allocation (see struct lfm_ctx) */
    const int64_t n_gate = cfg->attn_gate ? cfg->n_head : 0; /* g_proj's columns follow q | k | v */
    const int64_t n_proj = lfm_max64(lfm_max64(3 * H, nq + 2 * nkv + n_gate), F), n_mix = lfm_max64(H, nq);
    c->x = malloc(B * (size_t)H * sizeof(float));
    c->xb = malloc(B * (size_t)H * sizeof(float));
    c->block_out = c->xb;
    c->proj = malloc(B * (size_t)n_proj * sizeof(float));
    c->conv_bcx = c->qkv = c->ffn_gate = c->proj;
    c->ffn_up = malloc(B * (size_t)F * sizeof(float));
    c->mix = malloc(B * (size_t)n_mix * sizeof(float));
    c->conv_out = c->attn_out = c->mix;
    c->rope_cs = malloc(B * (size_t)hd * sizeof(float));
    if (any_swa && !(c->rope_cs_swa = malloc(B * (size_t)hd * sizeof(float)))) goto oom;
    c->scores = malloc((size_t)lfm_threadpool_n_threads(c->tp) * (size_t)n_ctx * sizeof(float));
    c->tok = malloc(B * sizeof *c->tok);
    c->seg = malloc((size_t)n_seq * sizeof *c->seg);
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
    if (!c->x || !c->xb || !c->proj || !c->ffn_up || !c->mix || !c->rope_cs || !c->scores || !c->tok || !c->seg || (mm && !c->mm_scratch) || !c->logits)
        goto oom;
    *out = c;
    return LFM_OK;
oom:
    st = lfm_fail(LFM_ERR_OOM, "out of memory allocating a context of %d sequences of %d positions", (int)n_seq, (int)n_ctx);
fail:
    lfm_ctx_free(c);
    return st;
}

/* Sequence s back to position 0 with an empty conv state (its KV rows >= pos are never read, so the
 * cache itself needs no clearing). */
static void seq_clear(lfm_ctx *c, int32_t s) {
    lfm_seq *q = &c->seqs[s];
    q->pos = 0;
    if (q->conv_state) memset(q->conv_state, 0, (size_t)c->n_layer_conv * lfm_conv_state_bytes(c));
    if (s == 0) c->has_last_logits = false;
}

void lfm_ctx_reset(lfm_ctx *c) {
    if (!c) return;
    c->n_logits = 0;
    seq_clear(c, 0);
}

int32_t lfm_ctx_pos(const lfm_ctx *c) { return c ? c->seqs[0].pos : 0; }
int32_t lfm_ctx_n_ctx(const lfm_ctx *c) { return c ? c->n_ctx : 0; }
int32_t lfm_ctx_n_seq(const lfm_ctx *c) { return c ? c->n_seq : 0; }

int32_t lfm_ctx_seq_pos(const lfm_ctx *c, int32_t seq) {
    return c && seq >= 0 && seq < c->n_seq ? c->seqs[seq].pos : -1;
}

const float *lfm_ctx_logits(const lfm_ctx *c, int32_t *n_rows) {
    if (n_rows) *n_rows = c ? c->n_logits : 0;
    return c && c->n_logits ? c->logits : NULL;
}

void lfm_ctx_set_abort_callback(lfm_ctx *c, int (*cb)(void *user), void *user) {
    if (!c) return;
    c->abort_cb = cb;
    c->abort_user = user;
}

static bool acquire(lfm_ctx *c) {
    int expected = 0;
    return atomic_compare_exchange_strong(&c->busy, &expected, 1);
}

static void release(lfm_ctx *c) { atomic_store(&c->busy, 0); }

/* Room for rows logits rows; a failed grow changes nothing. */
static lfm_status reserve_logits(lfm_ctx *c, int32_t rows) {
    if (rows <= c->logits_cap) return LFM_OK;
    float *nl = realloc(c->logits, (size_t)rows * (size_t)c->model->cfg.n_vocab * sizeof(float));
    if (!nl) return lfm_fail(LFM_ERR_OOM, "out of memory for %d rows of logits", (int)rows);
    c->logits = nl;
    c->logits_cap = rows;
    return LFM_OK;
}

/* The first token of tokens[0..n) outside [0, n_vocab), as an LFM_ERR_ARG naming where (what:
 * "" or "chunk 3 (sequence 1): "); LFM_OK if none. */
static lfm_status check_tokens(const lfm_ctx *c, const lfm_token *tokens, int32_t n, const char *what) {
    const int32_t V = c->model->cfg.n_vocab;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lfm_fail(LFM_ERR_ARG, "%stoken id %d at index %d is out of range [0, %d)", what, (int)tokens[i], (int)i, (int)V);
    return LFM_OK;
}

lfm_status lfm_ctx_decode(lfm_ctx *c, const lfm_token *tokens, int32_t n_tokens, lfm_logits_mode mode) {
    if (!c) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: context is NULL");
    if (n_tokens <= 0) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: empty token list");
    if (!tokens) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: tokens is NULL");
    if (mode != LFM_LOGITS_NONE && mode != LFM_LOGITS_LAST && mode != LFM_LOGITS_ALL)
        return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode: unknown logits mode %d", (int)mode);
    if (!acquire(c)) return lfm_fail(LFM_ERR_BUSY, "context is in use by another thread");
    lfm_status st = check_tokens(c, tokens, n_tokens, "");
    if (st != LFM_OK) goto out;
    const int32_t pos = c->seqs[0].pos;
    if ((int64_t)pos + n_tokens > c->n_ctx) {
        st = lfm_fail(LFM_ERR_CTX_FULL, "context full: %d tokens do not fit (position %d of %d)", (int)n_tokens, (int)pos,
                      (int)c->n_ctx);
        goto out;
    }
    const int32_t V = c->model->cfg.n_vocab;
    int32_t rows = mode == LFM_LOGITS_ALL ? n_tokens : 1;
    if ((st = reserve_logits(c, rows)) != LFM_OK) goto out;
    c->n_logits = 0;
    c->has_last_logits = false;
    for (int32_t s = 0; s < n_tokens; s += c->n_batch) {
        int32_t nb = n_tokens - s < c->n_batch ? n_tokens - s : c->n_batch;
        bool last = s + nb == n_tokens;
        lfm_segment seg = {0, tokens + s, nb, mode == LFM_LOGITS_ALL ? LFM_LOGITS_ALL : last ? mode : LFM_LOGITS_NONE};
        float *dst = mode == LFM_LOGITS_ALL ? c->logits + (size_t)s * V : c->logits;
        st = lfm2_forward(c, &seg, 1, dst);
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
    release(c);
    return st;
}

/* ---- many sequences ---- */

/* Everything lfm_ctx_decode_seqs can refuse, checked before anything changes. */
static lfm_status check_chunks(const lfm_ctx *c, const lfm_seq_chunk *chunks, int32_t n_chunks) {
    for (int32_t i = 0; i < n_chunks; i++) {
        const lfm_seq_chunk *ch = &chunks[i];
        if (ch->seq < 0 || ch->seq >= c->n_seq)
            return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode_seqs: chunk %d: sequence %d is out of range [0, %d)", (int)i, (int)ch->seq,
                            (int)c->n_seq);
        for (int32_t j = 0; j < i; j++) /* at most n_seq chunks get here: quadratic in a small number */
            if (chunks[j].seq == ch->seq)
                return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode_seqs: chunk %d: sequence %d already has chunk %d in this call",
                                (int)i, (int)ch->seq, (int)j);
        if (ch->n_tokens <= 0)
            return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode_seqs: chunk %d (sequence %d): empty token list", (int)i, (int)ch->seq);
        if (!ch->tokens)
            return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode_seqs: chunk %d (sequence %d): tokens is NULL", (int)i, (int)ch->seq);
        char what[80];
        snprintf(what, sizeof what, "lfm_ctx_decode_seqs: chunk %d (sequence %d): ", (int)i, (int)ch->seq);
        lfm_status st = check_tokens(c, ch->tokens, ch->n_tokens, what);
        if (st != LFM_OK) return st;
    }
    for (int32_t i = 0; i < n_chunks; i++) {
        const lfm_seq_chunk *ch = &chunks[i];
        const int32_t pos = c->seqs[ch->seq].pos;
        if ((int64_t)pos + ch->n_tokens > c->n_ctx)
            return lfm_fail(LFM_ERR_CTX_FULL, "sequence %d is full: %d tokens do not fit (position %d of %d)", (int)ch->seq,
                            (int)ch->n_tokens, (int)pos, (int)c->n_ctx);
    }
    return LFM_OK;
}

lfm_status lfm_ctx_decode_seqs(lfm_ctx *c, const lfm_seq_chunk *chunks, int32_t n_chunks) {
    if (!c) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode_seqs: context is NULL");
    if (n_chunks <= 0 || !chunks) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_decode_seqs: empty chunk list");
    if (!acquire(c)) return lfm_fail(LFM_ERR_BUSY, "context is in use by another thread");
    lfm_status st = check_chunks(c, chunks, n_chunks);
    if (st != LFM_OK) goto out;
    int32_t rows = 0;
    for (int32_t i = 0; i < n_chunks; i++) rows += chunks[i].logits != 0;
    if ((st = reserve_logits(c, rows)) != LFM_OK) goto out;
    c->n_logits = 0;
    c->has_last_logits = false; /* the rows are the batch's, not sequence 0's last token's */

    /* forward passes of up to n_batch tokens, filled in chunk order; a chunk that does not fit goes
     * on in the next pass, whose first segment it is. Its logits row comes from the pass holding
     * its last token. */
    const size_t V = (size_t)c->model->cfg.n_vocab;
    int32_t ci = 0, done = 0, row = 0; /* chunk ci's first `done` tokens have run; row: next logits row */
    while (ci < n_chunks) {
        int32_t n_seg = 0, room = c->n_batch, first_row = row;
        while (ci < n_chunks && room > 0) {
            const lfm_seq_chunk *ch = &chunks[ci];
            const int32_t take = ch->n_tokens - done < room ? ch->n_tokens - done : room;
            const bool ends = done + take == ch->n_tokens;
            c->seg[n_seg++] = (lfm_segment){ch->seq, ch->tokens + done, take, ends && ch->logits ? LFM_LOGITS_LAST : LFM_LOGITS_NONE};
            row += ends && ch->logits;
            room -= take;
            if (ends) ci++, done = 0;
            else done += take;
        }
        st = lfm2_forward(c, c->seg, n_seg, c->logits + (size_t)first_row * V);
        if (st != LFM_OK) { /* aborted: the sequences of the call may be half-written */
            for (int32_t i = 0; i < n_chunks; i++) seq_clear(c, chunks[i].seq);
            goto out;
        }
    }
    c->n_logits = rows;
out:
    release(c);
    return st;
}

lfm_status lfm_ctx_seq_reset(lfm_ctx *c, int32_t seq) {
    if (!c) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_seq_reset: context is NULL");
    if (seq < 0 || seq >= c->n_seq)
        return lfm_fail(LFM_ERR_ARG, "lfm_ctx_seq_reset: sequence %d is out of range [0, %d)", (int)seq, (int)c->n_seq);
    if (!acquire(c)) return lfm_fail(LFM_ERR_BUSY, "context is in use by another thread");
    seq_clear(c, seq);
    release(c);
    return LFM_OK;
}

lfm_status lfm_ctx_seq_copy(lfm_ctx *c, int32_t src, int32_t dst) {
    if (!c) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_seq_copy: context is NULL");
    if (src < 0 || src >= c->n_seq || dst < 0 || dst >= c->n_seq)
        return lfm_fail(LFM_ERR_ARG, "lfm_ctx_seq_copy: sequence %d -> %d: both must be in [0, %d)", (int)src, (int)dst, (int)c->n_seq);
    if (!acquire(c)) return lfm_fail(LFM_ERR_BUSY, "context is in use by another thread");
    if (src != dst) {
        const lfm_seq *a = &c->seqs[src];
        lfm_seq *b = &c->seqs[dst];
        if (a->conv_state) memcpy(b->conv_state, a->conv_state, (size_t)c->n_layer_conv * lfm_conv_state_bytes(c));
        for (int32_t l = 0; l < c->n_layer_attn; l++) {
            /* rows >= pos are never read; a ring is copied whole */
            const size_t rows = c->kv_ring[l] ? 2 * (size_t)c->kv_ring[l] : (size_t)a->pos;
            const size_t bytes = rows * lfm_kv_row_bytes(c);
            memcpy(lfm_kv_row(c, b->k_cache, l, 0), lfm_kv_row(c, a->k_cache, l, 0), bytes);
            memcpy(lfm_kv_row(c, b->v_cache, l, 0), lfm_kv_row(c, a->v_cache, l, 0), bytes);
        }
        b->pos = a->pos;
        if (dst == 0) c->has_last_logits = false;
    }
    release(c);
    return LFM_OK;
}
