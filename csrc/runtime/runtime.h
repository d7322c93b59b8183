/* runtime/runtime.h — running a model: matmul dispatch, the context (KV cache, conv state,
 * scratch), the forward pass entry.
 *
 * Shapes in comments here, in runtime/ and in arch/ are (rows, cols), row-major, last index
 * fastest: a (T, H) activation is T rows (one per token) of H floats. lfm_tensor.ne[] is ggml's
 * order, the reverse: ne[0] is the length of a row (cols), ne[1] the number of rows, so a weight
 * with ne = [H, F] is the (F, H) matrix W of y = W·x. */
#ifndef LFM_RUNTIME_H
#define LFM_RUNTIME_H

#include "kernels/kernels.h"
#include "model/model.h"
#include <stdatomic.h>

/* ---- OpenBLAS (runtime/blas.c; the public half is in lfm.h) ---- */

typedef struct lfm_blas lfm_blas;

/* The library lfm_blas_load loaded, or NULL. */
const lfm_blas *lfm_blas_get(void);
/* requested (an lfm_blas_mode; LFM_BLAS_DEFAULT reads LFM_BLAS) -> AUTO, OFF or ON; LFM_ERR_ARG
 * for an unknown value or a bad LFM_BLAS. */
lfm_status lfm_blas_resolve_mode(int32_t requested, lfm_blas_mode *out);

/* How one context runs its float matmuls. */
typedef struct {
    const lfm_blas *blas; /* NULL: the kernel table's GEMM only */
    bool always;          /* LFM_BLAS_ON: OpenBLAS whatever the batch size */
    bool keep_f32;        /* F32 matrices stay on our GEMM (LFM_BLAS_AUTO on a GGUF model) */
} lfm_blas_use;

/* The use of OpenBLAS by a context of m under mode (AUTO, OFF or ON; the library lfm_blas_load
 * loaded, if any): .blas is NULL when none of m's matrices would go to it (OFF, LFM_KERNELS=ref,
 * no library, quantized weights). */
lfm_blas_use lfm_blas_use_for(const lfm_model *m, lfm_blas_mode mode);
/* Whether the float matmul of W with a batch of T tokens goes to OpenBLAS. */
bool lfm_blas_takes(const lfm_blas_use *u, const lfm_tensor *W, int64_t T);
/* Scratch lfm_blas_matmul_rows needs for W with n_threads workers (F16/BF16 rows converted). */
size_t lfm_blas_scratch_bytes(const lfm_tensor *W, int n_threads);
/* Worker ith of nth: its share of Y = X · Wᵀ (W F32, F16 or BF16), in fixed blocks of rows. */
void lfm_blas_matmul_rows(const lfm_blas *b, const lfm_kernels *k, const lfm_tensor *W, const float *X, int64_t ldx,
                          int64_t T, float *Y, int64_t ldy, float *scratch, int ith, int nth);

/* ---- matmul ---- */

/* Y[t, r] = sum_k W[r, k] * X[t, k] for t < T, r < W->ne[1], k < W->ne[0].
 * X: T rows of W->ne[0] floats (row stride ldx); Y: row stride ldy.
 * blas: whether and when float weights go to OpenBLAS (NULL: never).
 * scratch: at least lfm_matmul_scratch_bytes(W, T, n_threads, blas) bytes (quantized activations,
 * or F16/BF16 rows converted for OpenBLAS), which covers every batch of up to T tokens. */
size_t lfm_matmul_scratch_bytes(const lfm_tensor *W, int64_t T, int n_threads, const lfm_blas_use *blas);
void lfm_matmul(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T,
                float *Y, int64_t ldy, void *scratch, const lfm_blas_use *blas);
/* n (<= LFM_MATMUL_GROUP_MAX) matmuls of the same X: Y[i] = X · W[i]ᵀ, row stride ldy[i]. When the
 * weights are quantized, share an input width and an activation format, X is quantized once and all
 * their rows go out to the threads as one job (one pool round trip instead of n); each output is the
 * one lfm_matmul gives, bit for bit. Otherwise (float weights, which may go to OpenBLAS) they run one
 * by one. scratch: the largest lfm_matmul_scratch_bytes of the group. Up to 16: a MoE step's gate
 * and up matrices of 8 experts. */
#define LFM_MATMUL_GROUP_MAX 16
void lfm_matmul_group(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *X, int64_t ldx, int64_t T,
                      float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas);
/* lfm_matmul_group for the experts of a MoE layer: quantized weights round every token as in a
 * one-token batch, as llama.cpp's MUL_MAT_ID does (lfm_qkernels.mm_x8_tok); otherwise the same. */
void lfm_matmul_group_per_token(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *X, int64_t ldx, int64_t T,
                                float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas);
/* n matmuls with an input each: Y[i] = X[i] · W[i]ᵀ (T rows of row stride ldx per input), in the
 * per-token order of lfm_matmul_group_per_token, as one job when the weights group (one pool round
 * trip for a decode step's k expert down projections). scratch: n * T rows' worth of the largest
 * lfm_matmul_scratch_bytes. */
void lfm_matmul_multi_per_token(lfm_threadpool *tp, const lfm_tensor *const *W, int n, const float *const *X, int64_t ldx,
                                int64_t T, float *const *Y, const int64_t *ldy, void *scratch, const lfm_blas_use *blas);

/* ---- context ---- */

/* Names: H = n_embd, F = n_ff, hd = head_dim, nq = n_head*hd, kv_dim = n_head_kv*hd,
 * K = conv_l_cache, n_batch = the most tokens lfm2_forward runs at once.
 *
 * A context holds n_seq sequences (lfm_ctx_params.n_seq), each an lfm_seq: its own KV rows, conv
 * state and position. The single-sequence API (lfm_ctx_decode, lfm_ctx_pos, lfm_ctx_reset, the state
 * blob, lfm_generate_step) acts on sequence 0; lfm_ctx_decode_seqs runs several in one forward pass.
 *
 * Lifetimes. Everything is allocated once by lfm_ctx_init (runtime/ctx.c) and freed by lfm_ctx_free;
 * a decode allocates nothing except growing `logits` when more rows are asked for than ever before.
 *   state    seqs[s]: the sequence so far. Written by lfm2_forward (arch/lfm2.c), cleared by
 *            lfm_ctx_reset / lfm_ctx_seq_reset (ctx.c: conv_state and pos only, KV rows >= pos are
 *            never read), copied by lfm_ctx_seq_copy, saved and restored (sequence 0) by runtime/state.c.
 *   scratch  x .. mm_scratch: live only inside one lfm2_forward call; nothing carries over between
 *            calls. Several roles share one allocation when their lives do not overlap: each role
 *            has its own pointer and shape below, and the comment says which allocation it views.
 *   logits   written by the decodes (through lfm2_forward's dst), read by lfm_ctx_logits,
 *            lfm_generate_step and the state blob. */

/* One sequence's recurrent state. The KV caches are allocated with calloc (fresh zero pages), so a
 * sequence costs memory only for the positions it has written.
 *
 * KV layout: the attention layers' rows one layer after the other. A full-attention layer keeps
 * n_ctx rows, position p in row p. A sliding-window layer (LFM3) keeps a ring of R = n_swa + n_batch - 1
 * positions (when its 2R rows are fewer than n_ctx; else it is laid out as a full layer): a forward pass
 * writes up to n_batch positions of a sequence before its tokens attend, and the oldest of them still
 * looks n_swa - 1 positions back. Each position is written twice, at p mod R and at R + p mod R, so
 * every window (at most n_swa <= R consecutive positions) is one contiguous run of rows from
 * (first position) mod R, in position order, as in a full layer: the attention kernel is the same. */
typedef struct {
    void *k_cache;               /* (kv_rows, kv_dim) after QK-norm and RoPE; F32, or F16 if kv_f16 */
    void *v_cache;               /* (kv_rows, kv_dim); address rows with lfm_kv_row */
    float *conv_state;           /* (n_layer_conv, K-1, H) the last K-1 inputs B⊙X, oldest first; lfm_conv_state */
    int32_t pos;                 /* tokens decoded so far = the next token's position */
} lfm_seq;

/* Where token t of a forward batch goes (lfm2_forward fills one per token). */
typedef struct {
    int32_t seq, pos;            /* its sequence and position */
    int32_t one_token;           /* it is its sequence's only token in the batch: the attention kernel's
                                  * one-token order, as when that token is decoded alone */
} lfm_tok_info;

/* One sequence's part of a forward batch: n_tokens tokens of sequence seq at positions
 * seqs[seq].pos.. */
typedef struct {
    int32_t seq;
    const lfm_token *tokens;
    int32_t n_tokens;            /* >= 1 */
    lfm_logits_mode logits;      /* rows into dst: none, the last token's, or every token's */
} lfm_segment;

struct lfm_ctx {
    const lfm_model *model;
    const lfm_kernels *k;
    lfm_blas_use blas;           /* whether float matmuls may go to OpenBLAS (lfm_ctx_params.blas) */
    lfm_threadpool *tp;
    int32_t n_ctx, n_batch;      /* n_ctx: positions per sequence */
    int32_t n_seq;
    int32_t n_layer_attn, n_layer_conv;
    int32_t *slot;               /* (n_layer) index of layer l among the attention or among the conv layers */

    /* ---- state ---- */
    lfm_seq *seqs;               /* (n_seq) */
    int64_t kv_dim;              /* n_head_kv * head_dim: values per cached position */
    size_t *kv_row0;             /* (n_layer_attn) first row of attention layer a in a sequence's cache */
    int32_t *kv_ring;            /* (n_layer_attn) 0: n_ctx rows, position p in row p; R > 0: a mirrored ring of 2R rows */
    size_t kv_rows;              /* rows of one sequence's cache, all attention layers */
    int kv_f16;
    size_t kv_elem;              /* bytes per cached value: 4 (F32) or 2 (F16) */

    /* ---- scratch, for n_batch tokens ---- */
    float *x;                    /* (n_batch, H) the residual stream */
    float *xb;                   /* (n_batch, H) RMSNorm(x): input of the block being run, or of the head */
    float *block_out;            /* (n_batch, H) a block's output projection, added to x; views xb's
                                  * allocation (xb is read by the block's first projections, before) */
    float *proj;                 /* allocation of (n_batch, max(3H, nq + 2*kv_dim, F)) floats, viewed as: */
    float *conv_bcx;             /*   (n_batch, 3H) conv in_proj output B | C | X; v = B⊙X goes into B, z into X */
    float *qkv;                  /*   (n_batch, nq + 2*kv_dim) q | k | v, q and k QK-normed and roped in place */
    float *ffn_gate;             /*   (n_batch, F) w1·u, then silu(w1·u) ⊙ w3·u in place */
    float *ffn_up;               /* (n_batch, F) w3·u */
    float *mix;                  /* allocation of (n_batch, max(H, nq)) floats, the input of an out_proj, viewed as: */
    float *conv_out;             /*   (n_batch, H) C ⊙ z */
    float *attn_out;             /*   (n_batch, nq) softmax(q·kᵀ/√hd)·v, the heads side by side */
    float *rope_cs;              /* (n_batch, hd) per token hd/2 cosines then hd/2 sines (full attention layers) */
    float *rope_cs_swa;          /* (n_batch, hd) the same for the sliding-window layers' RoPE; NULL without them */
    float *scores;               /* (n_threads, n_ctx) attention scores, one row per worker */
    lfm_tok_info *tok;           /* (n_batch) each token's sequence and position */
    lfm_segment *seg;            /* (n_seq) the segments of one lfm2_forward call of lfm_ctx_decode_seqs */
    void *mm_scratch;            /* lfm_matmul's quantized activations or OpenBLAS's F32 rows: max over weights
                                  * of lfm_matmul_scratch_bytes */
    /* MoE layers (NULL for a dense model); k = n_expert_used, E = n_expert, FE = n_ff_exp. A chunk's
     * T*k (token, slot) pairs, slot t*k + j, are grouped by expert into rows: expert e's rows are
     * moe_start[e]..moe_start[e+1], its tokens in order. */
    float *moe_logits;           /* (n_batch, E) router logits, then sigmoid scores */
    int32_t *moe_sel;            /* (n_batch, k) each token's experts */
    float *moe_w;                /* (n_batch, k) their weights */
    int32_t *moe_start;          /* (E + 1) */
    int32_t *moe_slot;           /* (n_batch*k) row -> slot */
    int32_t *moe_row;            /* (n_batch*k) slot -> row */
    float *moe_xo;               /* (n_batch*k, H) per row the token's FFN input, then the expert's output */
    float *moe_gate;             /* (n_batch*k, FE) gate, then silu(gate) ⊙ up */
    float *moe_up;               /* (n_batch*k, FE) */

    /* ---- output ---- */
    float *logits;               /* (logits_cap, n_vocab); n_logits rows valid */
    int32_t logits_cap, n_logits;
    bool has_last_logits;        /* logits row n_logits-1 belongs to token pos-1 of sequence 0 */
    int (*abort_cb)(void *);
    void *abort_user;
    atomic_int busy;             /* 1 while a decode, state load or sequence copy runs (LFM_ERR_BUSY for a second caller) */
};

/* Bytes of one cached position (kv_dim values). */
static inline size_t lfm_kv_row_bytes(const struct lfm_ctx *c) { return (size_t)c->kv_dim * c->kv_elem; }

/* Row `row` of attention layer `attn_layer` (c->slot[l]) in cache (a sequence's k_cache or v_cache):
 * kv_dim values, F32 or F16. Rows of one layer are consecutive, so its rows r..r+n-1 are
 * n * lfm_kv_row_bytes(c) contiguous bytes. */
static inline void *lfm_kv_row(const struct lfm_ctx *c, void *cache, int32_t attn_layer, int32_t row) {
    return (char *)cache + (c->kv_row0[attn_layer] + (size_t)row) * lfm_kv_row_bytes(c);
}

/* The row holding position pos in attention layer attn_layer (the first of its two rows in a ring). */
static inline int32_t lfm_kv_slot(const struct lfm_ctx *c, int32_t attn_layer, int32_t pos) {
    return c->kv_ring[attn_layer] ? pos % c->kv_ring[attn_layer] : pos;
}

/* The first position a token at pos attends to in layer l: pos - n_swa + 1 (not below 0) in a
 * sliding-window layer (transformers' mask: kv > q - window), else 0. */
static inline int32_t lfm_attn_first(const lfm_config *cfg, int32_t l, int32_t pos) {
    return cfg->is_swa[l] && pos >= cfg->n_swa ? pos - cfg->n_swa + 1 : 0;
}

/* Bytes of one conv layer's state: (K-1, H) floats. */
static inline size_t lfm_conv_state_bytes(const struct lfm_ctx *c) {
    const lfm_config *cfg = &c->model->cfg;
    return (size_t)(cfg->conv_l_cache - 1) * (size_t)cfg->n_embd * sizeof(float);
}

/* The (K-1, H) state of conv layer `conv_layer` (c->slot[l]) of sequence s. */
static inline float *lfm_conv_state(const struct lfm_ctx *c, const lfm_seq *s, int32_t conv_layer) {
    return (float *)(void *)((char *)s->conv_state + (size_t)conv_layer * lfm_conv_state_bytes(c));
}

/* Run a batch of segments (n_seg >= 1, each sequence at most once, n_batch tokens in all, room
 * checked by the caller) in one pass: every matmul over all their tokens, the conv and attention of
 * each token with its own sequence's state. Advances each segment's sequence by its n_tokens. The
 * logits rows asked for go to dst one after the other, in segment order. Checks the abort callback
 * between layers (LFM_ERR_ABORTED; the states of the batch's sequences are then half-written and the
 * caller resets them). */
lfm_status lfm2_forward(struct lfm_ctx *c, const lfm_segment *seg, int32_t n_seg, float *dst);

#endif /* LFM_RUNTIME_H */
