/* lfm2.c — the LFM2 / LFM2.5 forward pass for a chunk of tokens (lfm2-reference.md §1–3).
 *
 *   x = E[token]
 *   for each layer:  x += Op(RMSNorm(x))      Op = gated short conv  or  GQA attention
 *                    x += FFN(RMSNorm(x))     FFN = w2 · (silu(w1·u) ⊙ w3·u)
 *   logits = head · RMSNorm(x)
 *
 * Activations are F32 rows of a (T, width) matrix; every projection is one lfm_matmul over the
 * whole chunk, so prefill reads each weight once per chunk. */
#include "runtime/runtime.h"

#include <math.h>
#include <string.h>

/* ---- helpers ---- */

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

static void matmul(struct lfm_ctx *c, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy) {
    lfm_matmul(c->tp, W, X, ldx, T, Y, ldy, c->mm_scratch);
}

/* cos/sin of pos·θ^(-2i/hd) for the chunk's positions. The angle is built by repeated float
 * multiplication by θ^(-2/hd), as llama.cpp does: within float rounding of transformers' pos·inv_freq,
 * and identical to llama.cpp's, which GGUF models are checked against bit for bit. */
static void rope_tables(struct lfm_ctx *c, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t hd = cfg->head_dim, half = hd / 2;
    const float step = powf(cfg->rope_theta, -2.0f / (float)hd);
    for (int32_t t = 0; t < T; t++) {
        float *cs = c->rope_cs + t * hd;
        float ang = (float)(c->pos + t);
        for (int64_t i = 0; i < half; i++) {
            cs[i] = cosf(ang);
            cs[half + i] = sinf(ang);
            ang *= step;
        }
    }
}

/* ---- gated short-conv block (§2.2) ---- */

static void conv_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t l, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, K = cfg->conv_l_cache, ld = 3 * H;
    float *B = c->big, *C = c->big + H, *X = c->big + 2 * H;
    matmul(c, &ly->conv_in_proj, c->xn, H, T, c->big, ld);               /* [B | C | X] */
    for (int32_t t = 0; t < T; t++) c->k->mul(B + t * ld, B + t * ld, X + t * ld, H); /* v = B ⊙ X (into B) */
    float *state = c->conv_state + (size_t)c->slot[l] * (size_t)(K - 1) * (size_t)H;
    c->k->conv(X, ld, B, ld, T, H, ly->conv_kernel.data, K, state);      /* z (into X) */
    for (int32_t t = 0; t < T; t++) c->k->mul(c->y + t * H, C + t * ld, X + t * ld, H); /* y = C ⊙ z */
    matmul(c, &ly->conv_out_proj, c->y, H, T, c->xn, H);
}

/* ---- GQA attention block with QK-norm (§2.3) ---- */

typedef struct {
    struct lfm_ctx *c;
    const float *q;     /* (T, ldq) */
    int64_t ldq;
    const char *kc, *vc; /* this layer's cache rows */
    int32_t T;
} attn_job;

static void attn_worker(void *arg, int ith, int nth) {
    attn_job *j = arg;
    struct lfm_ctx *c = j->c;
    const lfm_config *cfg = &c->model->cfg;
    const int64_t hd = cfg->head_dim, nh = cfg->n_head, group = nh / cfg->n_head_kv, ldkv = (int64_t)cfg->n_head_kv * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scores = c->scores + (size_t)ith * (size_t)c->n_ctx;
    for (int64_t i = ith; i < (int64_t)j->T * nh; i += nth) {
        int64_t t = i / nh, h = i % nh, g = h / group;
        c->k->attn(c->y + t * nh * hd + h * hd, j->q + t * j->ldq + h * hd, j->kc + (size_t)(g * hd) * c->kv_elem,
                   j->vc + (size_t)(g * hd) * c->kv_elem, ldkv, c->pos + t + 1, hd, scale, scores, j->T == 1, c->kv_f16);
    }
}

static void store_kv_row(const struct lfm_ctx *c, char *dst, const float *src, int64_t n) {
    if (!c->kv_f16) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    uint16_t *h = (uint16_t *)(void *)dst;
    for (int64_t i = 0; i < n; i++) h[i] = lfm_float_to_half(src[i]);
}

static void attn_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t l, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, hd = cfg->head_dim, nh = cfg->n_head, nkvh = cfg->n_head_kv;
    const int64_t nq = nh * hd, nkv = nkvh * hd, ld = c->n_big;
    float *q = c->big, *k = c->big + nq, *v = c->big + nq + nkv;
    matmul(c, &ly->wq, c->xn, H, T, q, ld);
    matmul(c, &ly->wk, c->xn, H, T, k, ld);
    matmul(c, &ly->wv, c->xn, H, T, v, ld);
    char *kc = (char *)c->k_cache + (size_t)c->slot[l] * (size_t)c->n_ctx * (size_t)nkv * c->kv_elem;
    char *vc = (char *)c->v_cache + (size_t)c->slot[l] * (size_t)c->n_ctx * (size_t)nkv * c->kv_elem;
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
        store_kv_row(c, kc + (size_t)(c->pos + t) * nkv * c->kv_elem, k + t * ld, nkv);
        store_kv_row(c, vc + (size_t)(c->pos + t) * nkv * c->kv_elem, v + t * ld, nkv);
    }
    attn_job j = {c, q, ld, kc, vc, T};
    lfm_threadpool_run(c->tp, attn_worker, &j); /* y (T, nh*hd) */
    matmul(c, &ly->wo, c->y, nq, T, c->xn, H);
}

/* ---- SwiGLU FFN (§2.4) ---- */

static void ffn_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t T) {
    const int64_t H = c->model->cfg.n_embd, F = c->model->cfg.n_ff;
    matmul(c, &ly->ffn_gate, c->xn, H, T, c->big, F);
    matmul(c, &ly->ffn_up, c->xn, H, T, c->big2, F);
    for (int32_t t = 0; t < T; t++) c->k->silu_mul(c->big + t * F, c->big + t * F, c->big2 + t * F, F);
    matmul(c, &ly->ffn_down, c->big, F, T, c->xn, H);
}

/* ---- the whole stack ---- */

lfm_status lfm2_forward(struct lfm_ctx *c, const lfm_token *tokens, int32_t T, int logits_rows, float *dst) {
    const lfm_model *m = c->model;
    const lfm_config *cfg = &m->cfg;
    const int64_t H = cfg->n_embd;

    for (int32_t t = 0; t < T; t++) embed_row(c, tokens[t], c->x + t * H);
    rope_tables(c, T);

    for (int32_t l = 0; l < cfg->n_layer; l++) {
        const lfm_layer *ly = &m->layers[l];
        for (int32_t t = 0; t < T; t++) c->k->rmsnorm(c->xn + t * H, c->x + t * H, ly->attn_norm.data, H, cfg->norm_eps);
        if (cfg->is_attn[l]) attn_block(c, ly, l, T);
        else conv_block(c, ly, l, T);
        c->k->add(c->x, c->xn, (int64_t)T * H);

        for (int32_t t = 0; t < T; t++) c->k->rmsnorm(c->xn + t * H, c->x + t * H, ly->ffn_norm.data, H, cfg->norm_eps);
        ffn_block(c, ly, T);
        c->k->add(c->x, c->xn, (int64_t)T * H);

        if (c->abort_cb && c->abort_cb(c->abort_user))
            return lfm_fail(LFM_ERR_ABORTED, "decode aborted by the callback after layer %d", (int)l);
    }

    if (logits_rows) {
        int32_t first = logits_rows == 1 ? T - 1 : 0, n = T - first;
        for (int32_t t = 0; t < n; t++)
            c->k->rmsnorm(c->xn + t * H, c->x + (first + t) * H, m->output_norm.data, H, cfg->norm_eps);
        matmul(c, &m->output, c->xn, H, n, dst, cfg->n_vocab);
    }
    c->pos += T;
    return LFM_OK;
}
