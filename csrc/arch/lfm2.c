/* lfm2.c — the LFM2 / LFM2.5 forward pass for a chunk of tokens (docs/architecture.md §1–3).
 *
 *   x = E[token]
 *   for each layer:  x += Op(RMSNorm(x))      Op = gated short conv  or  GQA attention
 *                    x += FFN(RMSNorm(x))     FFN = w2 · (silu(w1·u) ⊙ w3·u)
 *   logits = head · RMSNorm(x)
 *
 * A batch is one or more segments, each a run of tokens of one sequence of the context (a prompt
 * chunk, or one decode token). Activations are F32 (T, width) matrices, one row per token of the whole
 * batch (shapes are (rows, cols), row-major; see struct lfm_ctx in runtime/runtime.h for every buffer
 * used here). Every projection is one lfm_matmul over all T rows, so a batch reads each weight once
 * whatever the number of sequences in it; the matrices that share an input (q/k/v, gate/up) go as one
 * lfm_matmul_group: one activation quantization, one pool round trip. Only the conv (per segment, with
 * its sequence's state) and the attention (per token, with its sequence's KV rows) look at sequences. */
#include "runtime/runtime.h"

#include <math.h>
#include <string.h>

/* ---- helpers ---- */

/* dst (H) = row tok of the embedding, dequantized as ggml's get_rows does. */
static void embed_row(const struct lfm_ctx *c, lfm_token tok, float *dst) {
    const lfm_tensor *E = &c->model->tok_embd;
    const int64_t H = E->ne[0];
    const char *row = (const char *)E->data + (size_t)tok * lfm_tensor_row_bytes(E);
    switch (E->type) {
    case LFM_TYPE_F32: memcpy(dst, row, (size_t)H * sizeof(float)); break;
    case LFM_TYPE_F16: c->k->f16_to_f32(dst, (const uint16_t *)row, H); break;
    case LFM_TYPE_BF16: c->k->bf16_to_f32(dst, (const uint16_t *)row, H); break;
    default: lfm_dequantize_row(E->type, row, dst, H); break; /* type checked by lfm_model_validate */
    }
}

/* Y (T, W->ne[1]), row stride ldy = X (T, W->ne[0]), row stride ldx, times Wᵀ. */
static void matmul(struct lfm_ctx *c, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy) {
    lfm_matmul(c->tp, W, X, ldx, T, Y, ldy, c->mm_scratch, &c->blas);
}

/* rope_cs (T, hd): cos/sin of pos·θ^(-2i/hd) for each token's own position. The angle is built by
 * repeated float multiplication by θ^(-2/hd), as llama.cpp does: within float rounding of
 * transformers' pos·inv_freq, and identical to llama.cpp's, which GGUF models are checked against
 * bit for bit. */
static void rope_tables(struct lfm_ctx *c, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t hd = cfg->head_dim, half = hd / 2;
    const float step = powf(cfg->rope_theta, -2.0f / (float)hd);
    for (int32_t t = 0; t < T; t++) {
        float *cs = c->rope_cs + t * hd;
        float ang = (float)c->tok[t].pos;
        for (int64_t i = 0; i < half; i++) {
            cs[i] = cosf(ang);
            cs[half + i] = sinf(ang);
            ang *= step;
        }
    }
}

/* ---- gated short-conv block (§2.2) ---- */

/* xb (T, H) -> block_out (T, H). Reads and updates this layer's conv state of each segment's sequence. */
static void conv_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t l, const lfm_segment *seg, int32_t n_seg, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, K = cfg->conv_l_cache, ld = 3 * H;
    float *B = c->conv_bcx, *C = c->conv_bcx + H, *X = c->conv_bcx + 2 * H; /* columns of conv_bcx */
    matmul(c, &ly->conv_in_proj, c->xb, H, T, c->conv_bcx, ld);
    for (int32_t t = 0; t < T; t++) c->k->mul(B + t * ld, B + t * ld, X + t * ld, H); /* v = B ⊙ X, into B */
    for (int32_t i = 0, t0 = 0; i < n_seg; t0 += seg[i].n_tokens, i++) /* z, into X */
        c->k->conv(X + t0 * ld, ld, B + t0 * ld, ld, seg[i].n_tokens, H, ly->conv_kernel.data, K,
                   lfm_conv_state(c, &c->seqs[seg[i].seq], c->slot[l]));
    for (int32_t t = 0; t < T; t++) c->k->mul(c->conv_out + t * H, C + t * ld, X + t * ld, H); /* C ⊙ z */
    matmul(c, &ly->conv_out_proj, c->conv_out, H, T, c->block_out, H);
}

/* ---- GQA attention block with QK-norm (§2.3) ---- */

typedef struct {
    struct lfm_ctx *c;
    const float *q;     /* (T, ldq): the q columns of qkv */
    int64_t ldq;
    int32_t a, T;       /* attention layer (c->slot[l]), tokens in the batch */
} attn_job;

/* attn_out (T, nq): one (token, query head) pair at a time, split over the pool's threads. A token
 * attends to its own sequence's KV rows 0..its position. Query head h reads KV head h / (nh/nkv)
 * (§2.3, GQA). */
static void attn_worker(void *arg, int ith, int nth) {
    attn_job *j = arg;
    struct lfm_ctx *c = j->c;
    const lfm_config *cfg = &c->model->cfg;
    const int64_t hd = cfg->head_dim, nh = cfg->n_head, group = nh / cfg->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = c->scores + (size_t)ith * (size_t)c->n_ctx;
    for (int64_t i = ith; i < (int64_t)j->T * nh; i += nth) {
        int64_t t = i / nh, h = i % nh, g = h / group;
        const lfm_tok_info *ti = &c->tok[t];
        const lfm_seq *s = &c->seqs[ti->seq];
        size_t head = (size_t)(g * hd) * c->kv_elem; /* byte offset of KV head g within a cache row */
        const char *kc = lfm_kv_row(c, s->k_cache, j->a, 0), *vc = lfm_kv_row(c, s->v_cache, j->a, 0);
        c->k->attn(c->attn_out + t * nh * hd + h * hd, j->q + t * j->ldq + h * hd, kc + head, vc + head, c->kv_dim,
                   ti->pos + 1, hd, scale, scores, ti->one_token, c->kv_f16);
    }
}

/* One cache row (kv_dim values) from F32, rounded to F16 (nearest even) for an F16 cache. */
static void store_kv_row(const struct lfm_ctx *c, void *dst, const float *src, int64_t n) {
    if (!c->kv_f16) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = lfm_float_to_half(src[i]);
}

/* xb (T, H) -> block_out (T, H). Writes each token's K and V row at its position in its sequence's caches. */
static void attn_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t l, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, hd = cfg->head_dim, nh = cfg->n_head, nkvh = cfg->n_head_kv;
    const int64_t nq = nh * hd, nkv = c->kv_dim, ld = nq + 2 * nkv;
    const int32_t a = c->slot[l];
    float *q = c->qkv, *k = c->qkv + nq, *v = c->qkv + nq + nkv; /* columns of qkv */
    const lfm_tensor *const qkv_w[3] = {&ly->wq, &ly->wk, &ly->wv};
    float *const qkv_y[3] = {q, k, v};
    const int64_t qkv_ld[3] = {ld, ld, ld};
    lfm_matmul_group(c->tp, qkv_w, 3, c->xb, H, T, qkv_y, qkv_ld, c->mm_scratch, &c->blas);
    for (int32_t t = 0; t < T; t++) {
        const float *cs = c->rope_cs + t * hd;
        for (int64_t h = 0; h < nh; h++) {
            float *qh = q + t * ld + h * hd;
            c->k->rmsnorm(qh, qh, ly->q_norm.data, hd, cfg->norm_eps); /* QK-norm before RoPE */
            c->k->rope(qh, cs, hd);
        }
        for (int64_t h = 0; h < nkvh; h++) {
            float *kh = k + t * ld + h * hd;
            c->k->rmsnorm(kh, kh, ly->k_norm.data, hd, cfg->norm_eps);
            c->k->rope(kh, cs, hd);
        }
        const lfm_seq *s = &c->seqs[c->tok[t].seq];
        store_kv_row(c, lfm_kv_row(c, s->k_cache, a, c->tok[t].pos), k + t * ld, nkv);
        store_kv_row(c, lfm_kv_row(c, s->v_cache, a, c->tok[t].pos), v + t * ld, nkv);
    }
    attn_job j = {c, q, ld, a, T};
    lfm_threadpool_run(c->tp, attn_worker, &j);
    matmul(c, &ly->wo, c->attn_out, nq, T, c->block_out, H);
}

/* ---- SwiGLU FFN (§2.4) ---- */

/* xb (T, H) -> block_out (T, H). */
static void ffn_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t T) {
    const int64_t H = c->model->cfg.n_embd, F = c->model->cfg.n_ff;
    const lfm_tensor *const gate_up_w[2] = {&ly->ffn_gate, &ly->ffn_up};
    float *const gate_up_y[2] = {c->ffn_gate, c->ffn_up};
    const int64_t gate_up_ld[2] = {F, F};
    lfm_matmul_group(c->tp, gate_up_w, 2, c->xb, H, T, gate_up_y, gate_up_ld, c->mm_scratch, &c->blas);
    for (int32_t t = 0; t < T; t++) c->k->silu_mul(c->ffn_gate + t * F, c->ffn_gate + t * F, c->ffn_up + t * F, F);
    matmul(c, &ly->ffn_down, c->ffn_gate, F, T, c->block_out, H);
}

/* ---- the whole stack ---- */

lfm_status lfm2_forward(struct lfm_ctx *c, const lfm_segment *seg, int32_t n_seg, float *dst) {
    const lfm_model *m = c->model;
    const lfm_config *cfg = &m->cfg;
    const int64_t H = cfg->n_embd;

    int32_t T = 0;
    for (int32_t i = 0; i < n_seg; i++) {
        const int32_t pos0 = c->seqs[seg[i].seq].pos;
        for (int32_t t = 0; t < seg[i].n_tokens; t++, T++) {
            c->tok[T] = (lfm_tok_info){seg[i].seq, pos0 + t, seg[i].n_tokens == 1};
            embed_row(c, seg[i].tokens[t], c->x + T * H);
        }
    }
    rope_tables(c, T);

    for (int32_t l = 0; l < cfg->n_layer; l++) {
        const lfm_layer *ly = &m->layers[l];
        for (int32_t t = 0; t < T; t++) c->k->rmsnorm(c->xb + t * H, c->x + t * H, ly->attn_norm.data, H, cfg->norm_eps);
        if (cfg->is_attn[l]) attn_block(c, ly, l, T);
        else conv_block(c, ly, l, seg, n_seg, T);
        c->k->add(c->x, c->block_out, (int64_t)T * H);

        for (int32_t t = 0; t < T; t++) c->k->rmsnorm(c->xb + t * H, c->x + t * H, ly->ffn_norm.data, H, cfg->norm_eps);
        ffn_block(c, ly, T);
        c->k->add(c->x, c->block_out, (int64_t)T * H);

        if (c->abort_cb && c->abort_cb(c->abort_user))
            return lfm_fail(LFM_ERR_ABORTED, "decode aborted by the callback after layer %d", (int)l);
    }

    /* final norm (§2.5) and head, only for the rows asked for: gathered into xb, one matmul */
    int32_t n_out = 0;
    for (int32_t i = 0, t0 = 0; i < n_seg; t0 += seg[i].n_tokens, i++) {
        if (seg[i].logits == LFM_LOGITS_NONE) continue;
        int32_t first = seg[i].logits == LFM_LOGITS_ALL ? t0 : t0 + seg[i].n_tokens - 1;
        for (int32_t t = first; t < t0 + seg[i].n_tokens; t++, n_out++)
            c->k->rmsnorm(c->xb + n_out * H, c->x + t * H, m->output_norm.data, H, cfg->norm_eps);
    }
    if (n_out) matmul(c, &m->output, c->xb, H, n_out, dst, cfg->n_vocab);
    for (int32_t i = 0; i < n_seg; i++) c->seqs[seg[i].seq].pos += seg[i].n_tokens;
    return LFM_OK;
}
