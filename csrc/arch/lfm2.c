/* lfm2.c — the LFM2 / LFM2.5 / LFM2-MoE / LFM3 forward pass for a chunk of tokens (docs/architecture.md §1–3).
 *
 *   x = E[token]
 *   for each layer:  x += Op(RMSNorm(x))      Op = gated short conv  or  GQA attention
 *                    x += FFN(RMSNorm(x))     FFN = w2 · (silu(w1·u) ⊙ w3·u), or in a MoE layer
 *                                             the weighted sum of the k experts the router picks
 *   logits = head · RMSNorm(x)
 *
 * LFM3 (cfg->arch) on the same path: attention layers are full or sliding-window (each kind with its
 * own RoPE), an optional sigmoid gate per head scales the attention output, and with sandwich norms
 * each block's output is RMSNormed before it is added: x += RMSNorm(Op(RMSNorm(x))), same for the FFN.
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

/* ---- per-token work over the pool ----
 * The norms, SwiGLU, gating and the KV writes treat each token's row on its own, so a chunk's rows
 * are split between the threads (same calls, same bits); a step's single row stays on this thread,
 * where a pool round trip would cost more than the row. */

typedef void (*token_fn)(struct lfm_ctx *c, const void *arg, int32_t t);

typedef struct {
    struct lfm_ctx *c;
    token_fn fn;
    const void *arg;
    int32_t T;
} tokens_job;

static void tokens_worker(void *p, int ith, int nth) {
    const tokens_job *j = p;
    const int32_t per = j->T / nth, extra = j->T % nth;
    const int32_t t0 = ith * per + (ith < extra ? ith : extra), t1 = t0 + per + (ith < extra ? 1 : 0);
    for (int32_t t = t0; t < t1; t++) j->fn(j->c, j->arg, t);
}

enum { TOKENS_PARALLEL_MIN = 4 };

static void for_each_token(struct lfm_ctx *c, int32_t T, token_fn fn, const void *arg) {
    if (T < TOKENS_PARALLEL_MIN) {
        for (int32_t t = 0; t < T; t++) fn(c, arg, t);
        return;
    }
    tokens_job j = {c, fn, arg, T};
    lfm_threadpool_run(c->tp, tokens_worker, &j);
}

typedef struct {
    float *out;
    const float *x, *w;
    int64_t n;
} rows_norm;

static void norm_row(struct lfm_ctx *c, const void *arg, int32_t t) {
    const rows_norm *a = arg;
    c->k->rmsnorm(a->out + t * a->n, a->x + t * a->n, a->w, a->n, c->model->cfg.norm_eps);
}

/* out (T, n) = RMSNorm(x (T, n)) · w, row by row; out may be x */
static void norm_rows(struct lfm_ctx *c, float *out, const float *x, const float *w, int64_t n, int32_t T) {
    const rows_norm a = {out, x, w, n};
    for_each_token(c, T, norm_row, &a);
}

/* dst (T, hd): cos/sin of pos·θ^(-2i/hd) for each token's own position, for the first `pairs` pairs;
 * the others get cos 1, sin 0, so the rotation leaves them exactly as they are (LFM3's proportional
 * RoPE, whose zero frequencies do the same). For LFM2 the angle is built by repeated float
 * multiplication by θ^(-2/hd), as llama.cpp does: within float rounding of transformers'
 * pos·inv_freq, and identical to llama.cpp's, which GGUF models are checked against bit for bit. */
static void rope_table(struct lfm_ctx *c, int32_t T, float *dst, float theta, int32_t pairs) {
    const int64_t hd = c->model->cfg.head_dim, half = hd / 2;
    const float step = powf(theta, -2.0f / (float)hd);
    /* LFM3 has no llama.cpp to follow: its angles are transformers' own, pos · (1 / θ^(2i/hd)) in float
     * (Lfm3RotaryEmbedding), which stays exact far into a long prompt where the repeated product drifts */
    const bool hf_angles = c->model->cfg.arch == LFM_ARCH_LFM3;
    float inv_freq[LFM_MAX_HEAD_DIM / 2];
    for (int64_t i = 0; hf_angles && i < half; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
    for (int32_t t = 0; t < T; t++) {
        float *cs = dst + t * hd;
        const float pos = (float)c->tok[t].pos;
        float ang = pos;
        for (int64_t i = 0; i < half; i++) {
            const float a = hf_angles ? pos * inv_freq[i] : ang;
            cs[i] = i < pairs ? cosf(a) : 1.0f;
            cs[half + i] = i < pairs ? sinf(a) : 0.0f;
            ang *= step;
        }
    }
}

static void rope_tables(struct lfm_ctx *c, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    if (!c->n_layer_attn) return; /* nothing reads them; head_dim is then not bounded by LFM_MAX_HEAD_DIM */
    rope_table(c, T, c->rope_cs, cfg->rope_theta, cfg->rope_pairs);
    if (c->rope_cs_swa) rope_table(c, T, c->rope_cs_swa, cfg->rope_theta_swa, cfg->rope_pairs_swa);
}

/* ---- gated short-conv block (§2.2) ---- */

/* xb (T, H) -> block_out (T, H). Reads and updates this layer's conv state of each segment's sequence. */
/* conv_bcx's columns are B, C, X (each H wide) */
static void conv_gate_in(struct lfm_ctx *c, const void *arg, int32_t t) {
    const int64_t H = c->model->cfg.n_embd;
    float *row = c->conv_bcx + t * 3 * H;
    c->k->mul(row, row, row + 2 * H, H);
}

static void conv_gate_out(struct lfm_ctx *c, const void *arg, int32_t t) {
    const int64_t H = c->model->cfg.n_embd;
    const float *row = c->conv_bcx + t * 3 * H;
    c->k->mul(c->conv_out + t * H, row + H, row + 2 * H, H);
}

static void conv_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t l, const lfm_segment *seg, int32_t n_seg, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, K = cfg->conv_l_cache, ld = 3 * H;
    float *B = c->conv_bcx, *X = c->conv_bcx + 2 * H; /* columns of conv_bcx (B, C, X) */
    matmul(c, &ly->conv_in_proj, c->xb, H, T, c->conv_bcx, ld);
    for_each_token(c, T, conv_gate_in, NULL); /* v = B ⊙ X, into B */
    for (int32_t i = 0, t0 = 0; i < n_seg; t0 += seg[i].n_tokens, i++) /* z, into X */
        c->k->conv(X + t0 * ld, ld, B + t0 * ld, ld, seg[i].n_tokens, H, ly->conv_kernel.data, K,
                   lfm_conv_state(c, &c->seqs[seg[i].seq], c->slot[l]));
    for_each_token(c, T, conv_gate_out, NULL); /* C ⊙ z */
    matmul(c, &ly->conv_out_proj, c->conv_out, H, T, c->block_out, H);
}

/* ---- GQA attention block with QK-norm (§2.3) ---- */

typedef struct {
    struct lfm_ctx *c;
    const float *q;     /* (T, ldq): the q columns of qkv */
    int64_t ldq;
    int32_t l, a, T;    /* layer, attention layer (c->slot[l]), tokens in the batch */
} attn_job;

/* attn_out (T, nq): one (token, query head) pair at a time, split over the pool's threads. A token
 * attends to its own sequence's KV rows for positions lfm_attn_first..its position (0.. in a full
 * layer, its window in a sliding one): one contiguous run of rows either way (runtime.h, lfm_seq).
 * Query head h reads KV head h / (nh/nkv) (§2.3, GQA). */
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
        const int32_t first = lfm_attn_first(cfg, j->l, ti->pos), row = lfm_kv_slot(c, j->a, first);
        const char *kc = lfm_kv_row(c, s->k_cache, j->a, row), *vc = lfm_kv_row(c, s->v_cache, j->a, row);
        c->k->attn(c->attn_out + t * nh * hd + h * hd, j->q + t * j->ldq + h * hd, kc + head, vc + head, c->kv_dim,
                   ti->pos - first + 1, hd, scale, scores, ti->one_token, c->kv_f16);
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

/* one attention layer's columns of qkv and where its K/V rows go */
typedef struct {
    const lfm_layer *ly;
    float *q, *k, *v, *gate;
    int64_t ld;
    int32_t a, ring;
    const float *rope;
} attn_rows;

/* token t: QK-norm, then RoPE, on its q and k heads; its K and V rows into its sequence's caches */
static void attn_qk_kv_row(struct lfm_ctx *c, const void *arg, int32_t t) {
    const attn_rows *r = arg;
    const lfm_config *cfg = &c->model->cfg;
    const int64_t hd = cfg->head_dim, nkv = c->kv_dim;
    const float *cs = r->rope + t * hd;
    for (int64_t h = 0; h < cfg->n_head; h++) {
        float *qh = r->q + t * r->ld + h * hd;
        c->k->rmsnorm(qh, qh, r->ly->q_norm.data, hd, cfg->norm_eps); /* QK-norm before RoPE */
        c->k->rope(qh, cs, hd);
    }
    for (int64_t h = 0; h < cfg->n_head_kv; h++) {
        float *kh = r->k + t * r->ld + h * hd;
        c->k->rmsnorm(kh, kh, r->ly->k_norm.data, hd, cfg->norm_eps);
        c->k->rope(kh, cs, hd);
    }
    const lfm_seq *s = &c->seqs[c->tok[t].seq];
    const int32_t row = lfm_kv_slot(c, r->a, c->tok[t].pos);
    store_kv_row(c, lfm_kv_row(c, s->k_cache, r->a, row), r->k + t * r->ld, nkv);
    store_kv_row(c, lfm_kv_row(c, s->v_cache, r->a, row), r->v + t * r->ld, nkv);
    if (r->ring) { /* the mirror row, so that every window is contiguous */
        store_kv_row(c, lfm_kv_row(c, s->k_cache, r->a, row + r->ring), r->k + t * r->ld, nkv);
        store_kv_row(c, lfm_kv_row(c, s->v_cache, r->a, row + r->ring), r->v + t * r->ld, nkv);
    }
}

/* LFM3's gate: token t's head outputs scaled by sigmoid(g_proj · u) */
static void attn_gate_row(struct lfm_ctx *c, const void *arg, int32_t t) {
    const attn_rows *r = arg;
    const int64_t hd = c->model->cfg.head_dim, nh = c->model->cfg.n_head;
    for (int64_t h = 0; h < nh; h++) {
        const float g = 1.0f / (1.0f + expf(-r->gate[t * r->ld + h]));
        float *o = c->attn_out + t * nh * hd + h * hd;
        for (int64_t i = 0; i < hd; i++) o[i] *= g;
    }
}

/* xb (T, H) -> block_out (T, H). Writes each token's K and V row at its position in its sequence's
 * caches (twice in a ring). LFM3: a sliding layer has its own RoPE and window; with attn_gate each
 * head's output is scaled by sigmoid(g_proj · u)[head] before the output projection. */
static void attn_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t l, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, hd = cfg->head_dim, nh = cfg->n_head;
    const int64_t nq = nh * hd, nkv = c->kv_dim, ld = nq + 2 * nkv + (cfg->attn_gate ? nh : 0);
    const int32_t a = c->slot[l], ring = c->kv_ring[a];
    const float *rope = cfg->is_swa[l] ? c->rope_cs_swa : c->rope_cs;
    float *q = c->qkv, *k = c->qkv + nq, *v = c->qkv + nq + nkv, *gate = c->qkv + nq + 2 * nkv; /* columns of qkv */
    const lfm_tensor *const qkv_w[4] = {&ly->wq, &ly->wk, &ly->wv, &ly->attn_gate};
    float *const qkv_y[4] = {q, k, v, gate};
    const int64_t qkv_ld[4] = {ld, ld, ld, ld};
    lfm_matmul_group(c->tp, qkv_w, cfg->attn_gate ? 4 : 3, c->xb, H, T, qkv_y, qkv_ld, c->mm_scratch, &c->blas);
    const attn_rows r = {ly, q, k, v, gate, ld, a, ring, rope};
    for_each_token(c, T, attn_qk_kv_row, &r);
    attn_job j = {c, q, ld, l, a, T};
    lfm_threadpool_run(c->tp, attn_worker, &j);
    if (cfg->attn_gate) for_each_token(c, T, attn_gate_row, &r);
    matmul(c, &ly->wo, c->attn_out, nq, T, c->block_out, H);
}

/* ---- SwiGLU FFN (§2.4) ---- */

static void swiglu_row(struct lfm_ctx *c, const void *arg, int32_t t) {
    const int64_t F = c->model->cfg.n_ff;
    c->k->silu_mul(c->ffn_gate + t * F, c->ffn_gate + t * F, c->ffn_up + t * F, F);
}

/* xb (T, H) -> block_out (T, H). */
static void ffn_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t T) {
    const int64_t H = c->model->cfg.n_embd, F = c->model->cfg.n_ff;
    const lfm_tensor *const gate_up_w[2] = {&ly->ffn_gate, &ly->ffn_up};
    float *const gate_up_y[2] = {c->ffn_gate, c->ffn_up};
    const int64_t gate_up_ld[2] = {F, F};
    lfm_matmul_group(c->tp, gate_up_w, 2, c->xb, H, T, gate_up_y, gate_up_ld, c->mm_scratch, &c->blas);
    for_each_token(c, T, swiglu_row, NULL);
    matmul(c, &ly->ffn_down, c->ffn_gate, F, T, c->block_out, H);
}

/* ---- mixture of experts (LFM2-MoE) ---- */

/* Route T tokens (transformers' Lfm2MoeTopKRouter; llama.cpp's build_moe_ffn, whose rounding is
 * followed for a GGUF model or one quantized on load: lfm_model.llama_routing): moe_sel (T, k) gets
 * each token's k experts, moe_w (T, k) their weights.
 *   s = sigmoid(router · u)                 one score per expert
 *   the k largest of s + expert_bias        the bias ranks, it never weighs
 *   w = s of those, / their sum, · scale    transformers: / (sum + 1e-6); llama.cpp: / max(sum, 2^-14),
 *                                           the sum taken in double as ggml_sum_rows does
 * Experts come best first (llama.cpp sums them in that order); for transformers' order they are then
 * put in expert order, the order it adds them in. */
static void moe_route(struct lfm_ctx *c, const lfm_layer *ly, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, E = cfg->n_expert, k = cfg->n_expert_used;
    const bool llama = c->model->llama_routing;
    const lfm_tensor *R = &ly->ffn_gate_inp;
    if (T == 1 && R->type == LFM_TYPE_F32) /* llama.cpp's lone-token F32 matmul is ggml_vec_dot_f32 */
        for (int64_t e = 0; e < E; e++) c->moe_logits[e] = c->k->dot_f32(c->xb, (const float *)R->data + e * H, H);
    else
        matmul(c, R, c->xb, H, T, c->moe_logits, E);
    const float *bias = ly->exp_probs_b.data; /* NULL: no expert bias */
    for (int32_t t = 0; t < T; t++) {
        float *s = c->moe_logits + t * E, *w = c->moe_w + t * k;
        int32_t *sel = c->moe_sel + t * k;
        for (int64_t e = 0; e < E; e++) s[e] = 1.0f / (1.0f + expf(-s[e]));
        /* top-k by repeated arg-max over what is left; on a tie the lower expert wins */
        uint8_t taken[LFM_MAX_EXPERTS] = {0};
        for (int64_t j = 0; j < k; j++) {
            int64_t best = -1;
            float best_v = 0;
            for (int64_t e = 0; e < E; e++) {
                float v = bias ? s[e] + bias[e] : s[e];
                if (!taken[e] && (best < 0 || v > best_v || (isnan(best_v) && !isnan(v)))) best = e, best_v = v;
            }
            taken[best] = 1;
            sel[j] = (int32_t)best;
            w[j] = s[best];
        }
        if (cfg->expert_norm) {
            if (llama) {
                double sum = 0;
                for (int64_t j = 0; j < k; j++) sum += (double)w[j];
                float d = (float)sum;
                if (!(d >= 6.103515625e-5f)) d = isnan(d) ? d : 6.103515625e-5f; /* ggml_clamp keeps a NaN */
                for (int64_t j = 0; j < k; j++) w[j] = w[j] / d;
            } else {
                float sum = 0;
                for (int64_t j = 0; j < k; j++) sum += w[j];
                for (int64_t j = 0; j < k; j++) w[j] = w[j] / (sum + 1e-6f);
            }
        }
        if (cfg->expert_scale != 1.0f)
            for (int64_t j = 0; j < k; j++) w[j] *= cfg->expert_scale;
        if (!llama) /* expert order: insertion sort of k pairs */
            for (int64_t j = 1; j < k; j++)
                for (int64_t i = j; i > 0 && sel[i - 1] > sel[i]; i--) {
                    int32_t ts = sel[i];
                    float tw = w[i];
                    sel[i] = sel[i - 1], w[i] = w[i - 1];
                    sel[i - 1] = ts, w[i - 1] = tw;
                }
    }
}

/* A one-token step's experts: all k gates and ups as one matmul job, then all k downs as another
 * (two pool round trips instead of 2k); rows in slot order. Each product is the one the per-expert
 * calls of moe_block give, bit for bit. */
static void moe_step_experts(struct lfm_ctx *c, const lfm_layer *ly) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, k = cfg->n_expert_used, FE = cfg->n_ff_exp;
    enum { G = LFM_MATMUL_GROUP_MAX / 2 }; /* experts per job */
    for (int64_t j0 = 0; j0 < k; j0 += G) {
        const int n = (int)lfm_min64(G, k - j0);
        lfm_tensor gate_up[2 * G], down[G];
        const lfm_tensor *gate_up_w[2 * G], *down_w[G];
        float *gate_up_y[2 * G], *down_y[G];
        const float *down_x[G];
        int64_t gate_up_ld[2 * G], down_ld[G];
        for (int i = 0; i < n; i++) {
            const int64_t e = c->moe_sel[j0 + i], row = j0 + i;
            gate_up[2 * i] = lfm_tensor_slice(&ly->ffn_gate_exps, e);
            gate_up[2 * i + 1] = lfm_tensor_slice(&ly->ffn_up_exps, e);
            down[i] = lfm_tensor_slice(&ly->ffn_down_exps, e);
            gate_up_w[2 * i] = &gate_up[2 * i], gate_up_w[2 * i + 1] = &gate_up[2 * i + 1], down_w[i] = &down[i];
            gate_up_y[2 * i] = c->moe_gate + row * FE, gate_up_y[2 * i + 1] = c->moe_up + row * FE;
            gate_up_ld[2 * i] = gate_up_ld[2 * i + 1] = FE;
            down_x[i] = c->moe_gate + row * FE;
            down_y[i] = c->moe_xo + row * H;
            down_ld[i] = H;
        }
        lfm_matmul_group_per_token(c->tp, gate_up_w, 2 * n, c->xb, H, 1, gate_up_y, gate_up_ld, c->mm_scratch, &c->blas);
        for (int i = 0; i < n; i++)
            c->k->silu_mul(c->moe_gate + (j0 + i) * FE, c->moe_gate + (j0 + i) * FE, c->moe_up + (j0 + i) * FE, FE);
        lfm_matmul_multi_per_token(c->tp, down_w, n, down_x, FE, 1, down_y, down_ld, c->mm_scratch, &c->blas);
    }
    for (int64_t j = 0; j < k; j++) c->moe_row[j] = (int32_t)j;
}

/* A chunk's experts (T > 1): the T*k (token, slot) pairs grouped by expert, so each chosen expert
 * runs one matmul over all its tokens and the experts nobody chose are never read. Rows in expert
 * order: moe_row[t*k + j] is the row of slot j of token t. */
static void moe_chunk_experts(struct lfm_ctx *c, const lfm_layer *ly, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, E = cfg->n_expert, k = cfg->n_expert_used, FE = cfg->n_ff_exp;

    /* moe_start[e]..moe_start[e+1]: expert e's rows, tokens in order; moe_slot[row] = t*k + j */
    int32_t *start = c->moe_start;
    for (int64_t e = 0; e <= E; e++) start[e] = 0;
    for (int64_t i = 0; i < (int64_t)T * k; i++) start[c->moe_sel[i] + 1]++;
    for (int64_t e = 0; e < E; e++) start[e + 1] += start[e];
    for (int64_t i = 0; i < (int64_t)T * k; i++) {
        int32_t row = start[c->moe_sel[i]]++;
        c->moe_slot[row] = (int32_t)i;
        c->moe_row[i] = row;
    }
    for (int64_t e = E; e > 0; e--) start[e] = start[e - 1]; /* the fill moved each start to the next one's */
    start[0] = 0;

    for (int64_t e = 0; e < E; e++) {
        const int32_t r0 = start[e], n = start[e + 1] - r0;
        if (n == 0) continue;
        float *x = c->moe_xo + (int64_t)r0 * H; /* the expert's tokens, gathered */
        for (int32_t i = 0; i < n; i++)
            memcpy(x + (int64_t)i * H, c->xb + (int64_t)(c->moe_slot[r0 + i] / k) * H, (size_t)H * sizeof(float));
        const lfm_tensor gate = lfm_tensor_slice(&ly->ffn_gate_exps, e), up = lfm_tensor_slice(&ly->ffn_up_exps, e);
        const lfm_tensor down = lfm_tensor_slice(&ly->ffn_down_exps, e);
        const lfm_tensor *const gate_up_w[2] = {&gate, &up};
        float *g = c->moe_gate + (int64_t)r0 * FE, *u = c->moe_up + (int64_t)r0 * FE;
        float *const gate_up_y[2] = {g, u};
        const int64_t gate_up_ld[2] = {FE, FE};
        lfm_matmul_group_per_token(c->tp, gate_up_w, 2, x, H, n, gate_up_y, gate_up_ld, c->mm_scratch, &c->blas);
        for (int32_t i = 0; i < n; i++) c->k->silu_mul(g + i * FE, g + i * FE, u + i * FE, FE);
        /* the output overwrites this expert's gathered inputs, already used */
        const lfm_tensor *const down_w[1] = {&down};
        float *const down_y[1] = {x};
        const int64_t down_ld[1] = {H};
        lfm_matmul_group_per_token(c->tp, down_w, 1, g, FE, n, down_y, down_ld, c->mm_scratch, &c->blas);
    }
}

/* xb (T, H) -> block_out (T, H): each token through its k experts' SwiGLU FFNs, weighted and summed. */
static void moe_block(struct lfm_ctx *c, const lfm_layer *ly, int32_t T) {
    const lfm_config *cfg = &c->model->cfg;
    const int64_t H = cfg->n_embd, k = cfg->n_expert_used;
    moe_route(c, ly, T);
    if (T == 1) moe_step_experts(c, ly);
    else moe_chunk_experts(c, ly, T);
    /* out = Σ_j w_j · y_j: each product rounded, then added in slot order (ggml_mul, then ggml_add) */
    for (int32_t t = 0; t < T; t++) {
        float *out = c->block_out + (int64_t)t * H;
        for (int64_t j = 0; j < k; j++) {
            const float *y = c->moe_xo + (int64_t)c->moe_row[t * k + j] * H;
            const float w = c->moe_w[t * k + j];
            if (j == 0)
                for (int64_t i = 0; i < H; i++) out[i] = y[i] * w;
            else
                for (int64_t i = 0; i < H; i++) out[i] += y[i] * w;
        }
    }
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
        norm_rows(c, c->xb, c->x, ly->attn_norm.data, H, T);
        if (cfg->is_attn[l]) attn_block(c, ly, l, T);
        else conv_block(c, ly, l, seg, n_seg, T);
        if (cfg->sandwich_norm) /* LFM3: the block's output normed before it joins the residual */
            norm_rows(c, c->block_out, c->block_out, ly->post_attn_norm.data, H, T);
        c->k->add(c->x, c->block_out, (int64_t)T * H);

        norm_rows(c, c->xb, c->x, ly->ffn_norm.data, H, T);
        if (lfm_layer_is_moe(cfg, l)) moe_block(c, ly, T);
        else ffn_block(c, ly, T);
        if (cfg->sandwich_norm) norm_rows(c, c->block_out, c->block_out, ly->post_ffn_norm.data, H, T);
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
