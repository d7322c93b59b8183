/*
 * lfm.h — the whole public C API of liquidlfm, an inference engine for Liquid AI's LFM2 / LFM2.5
 * hybrid (gated short-convolution + grouped-query attention) language models.
 *
 * Usage:
 *
 *     lfm_model *model;
 *     lfm_model_params mp = lfm_model_default_params();
 *     if (lfm_model_load("LFM2-350M-Q4_0.gguf", &mp, &model) != LFM_OK) {
 *         fprintf(stderr, "%s\n", lfm_last_error());
 *         return 1;
 *     }
 *     lfm_ctx *ctx;
 *     lfm_ctx_params cp = lfm_ctx_default_params();
 *     lfm_ctx_init(model, &cp, &ctx);
 *     lfm_token prompt[] = {1, 6, 1495};
 *     lfm_ctx_decode(ctx, prompt, 3, LFM_LOGITS_LAST);
 *     const float *logits = lfm_ctx_logits(ctx, NULL);    // n_vocab floats
 *     ...
 *     lfm_ctx_free(ctx);
 *     lfm_model_free(model);
 *
 * Conventions:
 * - Every function that can fail returns an lfm_status; on failure lfm_last_error() holds a
 *   thread-local message saying what, where and what was expected. Nothing here calls exit/abort.
 * - Handles are opaque. free(NULL) functions are no-ops.
 * - A model is read-only after load and may be shared by threads; a context is single-owner.
 * - Shapes are written PyTorch-style [rows, cols] unless said otherwise.
 */
#ifndef LFM_H
#define LFM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ---- */

typedef enum {
    LFM_OK = 0,
    LFM_ERR_IO = -1,          /* file missing / unreadable / mmap failed */
    LFM_ERR_FORMAT = -2,      /* corrupt or inconsistent file, wrong shape, missing field */
    LFM_ERR_UNSUPPORTED = -3, /* valid file, but a variant/type we do not run (MoE, vision, unknown quant) */
    LFM_ERR_OOM = -4,
    LFM_ERR_ARG = -5,         /* bad argument from the caller (token out of range, empty input, ...) */
    LFM_ERR_CTX_FULL = -6,    /* not enough room left in the context */
    LFM_ERR_ABORTED = -7,     /* the abort callback asked to stop */
    LFM_ERR_BUSY = -8,        /* a context used by two threads at once */
} lfm_status;

const char *lfm_status_str(lfm_status s);
const char *lfm_last_error(void); /* thread-local detail of the last failure on this thread */
/* errno of the OS call behind the last failure on this thread (an LFM_ERR_IO: ENOENT for a missing
 * file, EACCES, ...), 0 if that failure did not come from an OS call. */
int lfm_last_errno(void);

typedef int32_t lfm_token;

/* ---- tensor types (values are ggml's, so GGUF type fields map directly) ---- */

typedef enum {
    LFM_TYPE_F32 = 0,
    LFM_TYPE_F16 = 1,
    LFM_TYPE_Q4_0 = 2,
    LFM_TYPE_Q4_1 = 3,
    LFM_TYPE_Q5_0 = 6,
    LFM_TYPE_Q5_1 = 7,
    LFM_TYPE_Q8_0 = 8,
    LFM_TYPE_Q8_1 = 9,
    LFM_TYPE_Q2_K = 10,
    LFM_TYPE_Q3_K = 11,
    LFM_TYPE_Q4_K = 12,
    LFM_TYPE_Q5_K = 13,
    LFM_TYPE_Q6_K = 14,
    LFM_TYPE_Q8_K = 15,
    /* ids liquidlfm can name and size but not decode (a GGUF using them is refused) */
    LFM_TYPE_IQ2_XXS = 16,
    LFM_TYPE_IQ2_XS = 17,
    LFM_TYPE_IQ3_XXS = 18,
    LFM_TYPE_IQ1_S = 19,
    LFM_TYPE_IQ4_NL = 20,
    LFM_TYPE_IQ3_S = 21,
    LFM_TYPE_IQ2_S = 22,
    LFM_TYPE_IQ4_XS = 23,
    LFM_TYPE_I8 = 24,
    LFM_TYPE_I16 = 25,
    LFM_TYPE_I32 = 26,
    LFM_TYPE_I64 = 27,
    LFM_TYPE_F64 = 28,
    LFM_TYPE_IQ1_M = 29,
    LFM_TYPE_BF16 = 30,
    LFM_TYPE_TQ1_0 = 34,
    LFM_TYPE_TQ2_0 = 35,
    LFM_TYPE_MXFP4 = 39,
    LFM_TYPE_NVFP4 = 40,
    LFM_TYPE_Q1_0 = 41,
    LFM_TYPE_NONE = -1,
} lfm_type;

const char *lfm_type_name(lfm_type t); /* "q4_0", ...; NULL for an id we do not know */

/* The kernels this process runs, fixed at first use from the CPU's features and LFM_KERNELS: the
 * quantized level ("avx2", "neon", "dotprod", "i8mm", or "ref": the scalar reference) and the float
 * table ("avx2", "neon", "ref"). */
const char *lfm_kernel_level(void);
const char *lfm_float_kernels(void);

/* ---- OpenBLAS for float prefill (optional) ---- */

/* F32/F16/BF16 weight matrices multiply a batch of tokens with the engine's own blocked GEMM, or,
 * from the batch size where it measured faster (README, "OpenBLAS"), with OpenBLAS's sgemm (F16
 * and BF16 rows converted to F32 a block at a time). The engine does not link OpenBLAS: the
 * library is loaded at run time by lfm_blas_load, and until then (or if that fails) everything
 * runs on the engine's kernels. Results with OpenBLAS are within float rounding of the engine's
 * own, not bit-identical, and differ between batch sizes; LFM_BLAS_OFF (or LFM_KERNELS=ref) keeps
 * the engine's float order. */
typedef enum {
    LFM_BLAS_DEFAULT = 0, /* the LFM_BLAS environment variable ("0", "1" or "auto"), else auto */
    LFM_BLAS_AUTO = 1,    /* OpenBLAS where it measured faster: F32 and BF16 matrices, batches of enough
                             tokens; never F16 (the engine's GEMM was as fast), nor the F32 matrices of a
                             GGUF file (the engine's GEMM reproduces llama.cpp's sums bit for bit) */
    LFM_BLAS_OFF = 2,     /* the engine's kernels only */
    LFM_BLAS_ON = 3,      /* OpenBLAS for every float matmul, whatever its batch (tests, measurements) */
} lfm_blas_mode;

/* Load OpenBLAS from path: the scipy-openblas32 wheel's library (symbols prefixed scipy_, 32-bit
 * integers). Once per process; later calls return LFM_OK and change nothing. Contexts created
 * afterwards use it. LFM_ERR_IO if the library cannot be loaded, LFM_ERR_UNSUPPORTED if it lacks
 * the functions needed; nothing changes then. Sets OpenBLAS's own thread count to 1: contexts
 * call it from each worker of their thread pool. */
lfm_status lfm_blas_load(const char *path);
/* The loaded library's configuration string ("OpenBLAS 0.3.34.481.3 DYNAMIC_ARCH ... SkylakeX ..."),
 * else NULL. */
const char *lfm_blas_info(void);

/* ---- model ---- */

#define LFM_MAX_LAYERS 256
#define LFM_MAX_EXPERTS 1024     /* experts per MoE layer */
#define LFM_MAX_EXPERTS_USED 64  /* experts per token */

typedef struct {
    int32_t n_vocab;
    int32_t n_embd;        /* H */
    int32_t n_layer;
    int32_t n_head;        /* query heads */
    int32_t n_head_kv;
    int32_t head_dim;      /* H / n_head */
    int32_t n_ff;          /* FFN width actually used (checked against w1's shape) */
    int32_t conv_l_cache;  /* conv kernel size K (3) */
    int32_t n_ctx_train;   /* max_position_embeddings / lfm2.context_length */
    float norm_eps;
    float rope_theta;
    lfm_token bos_id, eos_id, pad_id; /* -1 when unknown */
    int32_t tied_output;   /* 1: the output head is the token embedding */
    uint8_t is_attn[LFM_MAX_LAYERS]; /* 1: attention layer, 0: short-conv layer */
    /* mixture of experts (LFM2-MoE; all 0 for a dense model): layers from n_layer_dense on replace
     * the dense FFN by n_expert experts of width n_ff_exp, of which a router picks n_expert_used
     * per token (lfm_layer_is_moe) */
    int32_t n_expert;       /* experts per MoE layer (num_experts); 0: dense model */
    int32_t n_expert_used;  /* experts per token, top-k (num_experts_per_tok) */
    int32_t n_ff_exp;       /* one expert's FFN width (moe_intermediate_size) */
    int32_t n_layer_dense;  /* leading layers that keep a dense FFN (num_dense_layers) */
    int32_t expert_bias;    /* 1: the router adds a per-expert bias to the scores it ranks (not to
                               the weights it returns) */
    int32_t expert_norm;    /* 1: the chosen experts' weights are divided by their sum (norm_topk_prob) */
    float expert_scale;     /* then multiplied by this (routed_scaling_factor, 1) */
    /* LFM3 (transformers' Lfm3ForCausalLM; for LFM2 arch is LFM_ARCH_LFM2, rope_pairs is head_dim/2 and
     * the rest 0). Its attention layers are full or sliding-window; each kind has its own RoPE. */
    int32_t arch;           /* lfm_arch */
    uint8_t is_swa[LFM_MAX_LAYERS]; /* 1: a sliding-window attention layer (is_attn is 1 too) */
    int32_t n_swa;          /* sliding_window: a token of a sliding layer sees itself and the n_swa-1
                               positions before it (transformers' kv > q - window) */
    int32_t rope_pairs;     /* full attention layers: frequency pairs i (dims i and i + head_dim/2, angle
                               pos·rope_theta^(-2i/head_dim)) that rotate, from i = 0; the others pass
                               through. head_dim/2 for plain RoPE; transformers' "proportional" RoPE
                               rotates int(partial_rotary_factor·head_dim // 2) */
    float rope_theta_swa;   /* sliding layers' RoPE base */
    int32_t rope_pairs_swa; /* and their rotating pairs, as rope_pairs */
    int32_t sandwich_norm;  /* 1: RMSNorm (post_operator_norm / post_ffn_norm) on each block's output
                               before the residual add (use_sandwich_norm) */
    int32_t attn_gate;      /* 1: each attention head's output times sigmoid(g_proj · u)[head]
                               (use_attention_gate) */
} lfm_config;

/* Which model family a config describes (lfm_config.arch). */
typedef enum {
    LFM_ARCH_LFM2 = 0, /* LFM2, LFM2.5 and LFM2-MoE (n_expert > 0) */
    LFM_ARCH_LFM3 = 1,
} lfm_arch;

/* llama.cpp's file types (llama_ftype, the GGUF key general.file_type): a rule giving each tensor
 * of a model its storage type, as llama-quantize applies it (lfm_ftype_tensor_type in
 * model/model.h). The K-quant mixes keep some tensors in more bits: the embedding / output head in
 * Q6_K, and in the _M mixes some attention V and FFN down matrices in Q6_K (in Q4_K_S some in
 * Q5_K). Values are llama.cpp's. */
typedef enum {
    LFM_FTYPE_NONE = -1,
    LFM_FTYPE_F32 = 0,
    LFM_FTYPE_F16 = 1,
    LFM_FTYPE_Q4_0 = 2,
    LFM_FTYPE_Q4_1 = 3,
    LFM_FTYPE_Q8_0 = 7,
    LFM_FTYPE_Q5_0 = 8,
    LFM_FTYPE_Q5_1 = 9,
    LFM_FTYPE_Q4_K_S = 14,
    LFM_FTYPE_Q4_K_M = 15,
    LFM_FTYPE_Q5_K_S = 16,
    LFM_FTYPE_Q5_K_M = 17,
    LFM_FTYPE_Q6_K = 18,
    LFM_FTYPE_BF16 = 32,
} lfm_ftype;

/* The file type named name (case-insensitive): "q4_k_m", "q6_k", "q8_0", "f16", ...; "q4_k" and
 * "q5_k" are llama-quantize's aliases of q4_k_m and q5_k_m. LFM_FTYPE_NONE for any other name;
 * *known_unsupported (may be NULL) then says whether it is a llama.cpp file type liquidlfm cannot
 * write (q2_k, q3_k_m, iq4_xs, ...: it has no quantizer for their types). */
lfm_ftype lfm_ftype_by_name(const char *name, bool *known_unsupported);
const char *lfm_ftype_name(lfm_ftype f); /* "q4_k_m", ...; NULL for a value not listed above */

typedef struct {
    lfm_ftype quantize;  /* LFM_FTYPE_NONE: keep the file's types; else requantize the weight matrices
                          * and the embedding on load by that file type's rule (a quantized one) */
    int32_t n_threads;   /* threads for load-time work (quantize); <= 0: all cores */
} lfm_model_params;

typedef struct lfm_model lfm_model;

lfm_model_params lfm_model_default_params(void);

/* path: a Hugging Face folder (config.json + model.safetensors or sharded *.safetensors with
 * model.safetensors.index.json) or a .gguf file. On failure *out is NULL and nothing leaks. */
lfm_status lfm_model_load(const char *path, const lfm_model_params *p, lfm_model **out);
void lfm_model_free(lfm_model *m);
const lfm_config *lfm_model_config(const lfm_model *m);
/* Describe the weights actually used: one line per tensor "name type [dims]" into buf. */
size_t lfm_model_describe(const lfm_model *m, char *buf, size_t cap);

/* ---- context: KV cache + conv state + scratch ---- */

typedef enum {
    LFM_LOGITS_NONE = 0,
    LFM_LOGITS_LAST = 1, /* one row: the last token of the batch */
    LFM_LOGITS_ALL = 2,  /* n_tokens rows */
} lfm_logits_mode;

typedef struct {
    int32_t n_ctx;     /* positions the KV cache holds; <= 0: min(n_ctx_train, 32768). An LFM3 sliding-window
                          layer keeps only its last n_swa + n_batch - 1 of them (a ring) */
    int32_t n_batch;   /* max tokens per internal forward chunk; <= 0: 512 */
    int32_t n_threads; /* <= 0: all cores */
    int32_t kv_f16;    /* nonzero: K and V kept in F16 (half the memory; llama.cpp's default cache,
                          whose rounding of q, k, v and the attention weights it then reproduces) */
    int32_t blas;      /* lfm_blas_mode: whether float matmuls may run on OpenBLAS (below) */
    int32_t n_seq;     /* sequences the context holds (0: one), each with its own conv state and n_ctx
                          KV positions (memory is taken only as positions are written). The functions
                          below without a sequence argument (decode, pos, reset, logits mode ALL,
                          state save/load, lfm_generate_step) act on sequence 0. */
} lfm_ctx_params;

typedef struct lfm_ctx lfm_ctx;

lfm_ctx_params lfm_ctx_default_params(void);
lfm_status lfm_ctx_init(const lfm_model *m, const lfm_ctx_params *p, lfm_ctx **out);
void lfm_ctx_free(lfm_ctx *c);

/* Run tokens[0..n) of sequence 0 at positions pos..pos+n-1 and advance pos. Prompts longer than
 * n_batch are processed in chunks; the result does not depend on the chunking.
 * On LFM_ERR_CTX_FULL / LFM_ERR_ARG nothing was changed. On LFM_ERR_ABORTED sequence 0 is reset. */
lfm_status lfm_ctx_decode(lfm_ctx *c, const lfm_token *tokens, int32_t n_tokens, lfm_logits_mode mode);
/* Borrowed pointer, valid until the next decode/reset/free; *n_rows gets the row count. */
const float *lfm_ctx_logits(const lfm_ctx *c, int32_t *n_rows);
int32_t lfm_ctx_pos(const lfm_ctx *c);
int32_t lfm_ctx_n_ctx(const lfm_ctx *c);
void lfm_ctx_reset(lfm_ctx *c); /* sequence 0 back to position 0, empty state; no logits rows */
/* Called between layers/chunks; returning nonzero aborts the decode with LFM_ERR_ABORTED. */
void lfm_ctx_set_abort_callback(lfm_ctx *c, int (*cb)(void *user), void *user);

/* Whole recurrent state of sequence 0 (position, conv state, KV rows 0..pos, or a sliding-window layer's
 * last n_swa-1, last logits row) as a blob; it depends on the model and position only, not on n_ctx,
 * n_batch or n_seq. */
size_t lfm_ctx_state_size(const lfm_ctx *c);
lfm_status lfm_ctx_state_save(const lfm_ctx *c, void *dst, size_t cap, size_t *written);
/* Rejects blobs of another model shape or a corrupt blob; on failure the context is unchanged. */
lfm_status lfm_ctx_state_load(lfm_ctx *c, const void *src, size_t n);

/* ---- many sequences in one context ---- */

/* A run of tokens of one sequence, for lfm_ctx_decode_seqs: a prompt chunk or one decode step. */
typedef struct {
    int32_t seq;              /* 0 .. n_seq-1, at most once per call */
    const lfm_token *tokens;
    int32_t n_tokens;         /* >= 1 */
    int32_t logits;           /* nonzero: return the logits row of this chunk's last token */
} lfm_seq_chunk;

/* Run every chunk at its sequence's position and advance that position, all chunks together: each
 * forward pass takes up to n_batch tokens across the chunks (in chunk order; a longer call runs in
 * several passes and may cut a chunk between two), so every weight is read once per pass for all the
 * sequences in it. The logits rows are then lfm_ctx_logits' rows, one per chunk with logits != 0, in
 * chunk order.
 * Each sequence's results are those of decoding it alone with the same chunks, up to the order of the
 * float sums of the kernels that depend on how many rows a matmul has (README, "Many sequences").
 * Errors, checked before anything changes (nothing changed then): LFM_ERR_ARG for an empty list, a
 * sequence out of range or named twice, an empty chunk or a token out of range (the message names the
 * chunk); LFM_ERR_CTX_FULL naming the first sequence whose chunk does not fit its n_ctx; LFM_ERR_BUSY.
 * On LFM_ERR_ABORTED (the abort callback) every sequence named in the call is reset to position 0,
 * the others are untouched, and there are no logits rows. */
lfm_status lfm_ctx_decode_seqs(lfm_ctx *c, const lfm_seq_chunk *chunks, int32_t n_chunks);
int32_t lfm_ctx_n_seq(const lfm_ctx *c);
int32_t lfm_ctx_seq_pos(const lfm_ctx *c, int32_t seq); /* tokens in sequence seq; -1 if seq is out of range */
/* Sequence seq back to position 0 with an empty state (to reuse it for another prompt). LFM_ERR_ARG
 * for a sequence out of range, LFM_ERR_BUSY while a decode runs. */
lfm_status lfm_ctx_seq_reset(lfm_ctx *c, int32_t seq);
/* dst := src's state (conv state, KV rows below its position, position), e.g. to prefill a prompt
 * shared by several sequences once. src == dst does nothing. Errors as lfm_ctx_seq_reset. */
lfm_status lfm_ctx_seq_copy(lfm_ctx *c, int32_t src, int32_t dst);

/* ---- sampling ---- */

#define LFM_SAMPLER_MAX_LAST_N (1 << 20) /* tokens; far beyond any context, 4 MiB of window */

typedef struct {
    float temperature;         /* <= 0: greedy */
    int32_t top_k;             /* <= 0: off */
    float top_p;               /* >= 1: off */
    float min_p;               /* <= 0: off */
    float repetition_penalty;  /* 1: off (transformers semantics: divide positive, multiply negative) */
    float presence_penalty;    /* 0: off (OpenAI semantics) */
    float frequency_penalty;   /* 0: off */
    int32_t penalty_last_n;    /* how many recent tokens the penalties look at; < 0: all; at most
                                  LFM_SAMPLER_MAX_LAST_N */
    uint64_t seed;
} lfm_sampler_params;

typedef struct lfm_sampler lfm_sampler;

lfm_sampler_params lfm_sampler_default_params(void);
lfm_status lfm_sampler_init(const lfm_sampler_params *p, int32_t n_vocab, lfm_sampler **out);
void lfm_sampler_free(lfm_sampler *s);
/* Added to the logits before any other step; -INFINITY bans a token. */
lfm_status lfm_sampler_set_logit_bias(lfm_sampler *s, const lfm_token *ids, const float *bias, int32_t n);
/* Constrained decoding: only tokens whose bit is set may be sampled (bit i % 32 of bits[i / 32] for
 * token i; n_words must be (n_vocab + 31) / 32, else LFM_ERR_ARG; bits past n_vocab are ignored).
 * The mask is copied and applies to every later sample / dist / processed_logits (and so
 * lfm_generate_step) until replaced; bits == NULL removes it. A disallowed token's logit is -inf
 * before bias, penalties and every filter; greedy picks the best allowed token. A mask that allows
 * no token makes sampling fail with LFM_ERR_ARG. On failure the previous mask is kept. */
lfm_status lfm_sampler_set_allowed(lfm_sampler *s, const uint32_t *bits, int32_t n_words);
void lfm_sampler_accept(lfm_sampler *s, lfm_token t); /* append to the penalty history */
void lfm_sampler_reset(lfm_sampler *s);               /* clear history, reseed (the mask stays) */
/* Pick a token from one row of n_vocab logits (the row is not modified). Does not accept it.
 * The logits must be finite or -INFINITY (LFM_ERR_ARG naming the first NaN / +inf); if the
 * allowed-token mask, logit bias and penalties leave no finite logit, LFM_ERR_ARG ("no token can be
 * sampled") and *out untouched. On LFM_OK, *out is in [0, n_vocab), allowed and not banned. */
lfm_status lfm_sampler_sample(lfm_sampler *s, const float *logits, lfm_token *out);
/* The distribution lfm_sampler_sample draws from: the kept tokens (in no particular order) and
 * their normalised probabilities. Writes at most cap entries; *n_out is the full count. Greedy
 * gives the argmax with probability 1. Does not consume randomness. */
lfm_status lfm_sampler_dist(lfm_sampler *s, const float *logits, lfm_token *ids, float *probs, int32_t cap,
                            int32_t *n_out);
/* The logits after bias and penalties (before temperature), n_vocab floats into out. */
lfm_status lfm_sampler_processed_logits(lfm_sampler *s, const float *logits, float *out);
const lfm_sampler_params *lfm_sampler_get_params(const lfm_sampler *s);
int32_t lfm_sampler_n_vocab(const lfm_sampler *s);
int32_t lfm_sampler_token_count(const lfm_sampler *s, lfm_token t); /* occurrences in the penalty window */

/* ---- generation loop ---- */

typedef enum {
    LFM_FINISH_NONE = 0,
    LFM_FINISH_STOP = 1,   /* a stop token was sampled (not decoded, not counted in the context) */
    LFM_FINISH_LENGTH = 2, /* max_tokens reached or the context is full */
} lfm_finish_reason;

/* One step of the C generate loop: sample from the context's current last logits (through the
 * sampler, so its allowed-token mask applies: set it before each step when constraining), accept the
 * token into the sampler; if it is one of stop_ids report LFM_FINISH_STOP, else decode it so the
 * context holds the logits for the next step (LFM_FINISH_LENGTH when no room is left). */
/* Details: the sampler's n_vocab must be the model's. *out_token is always the sampled token.
 * LFM_FINISH_LENGTH is reported once the token's decode fills the context (it is in the context),
 * or when the context was already full on entry (the token is returned but not decoded).
 * A decode failure is returned as is (LFM_ERR_ABORTED: the context was reset by the decode). */
lfm_status lfm_generate_step(lfm_ctx *c, lfm_sampler *s, const lfm_token *stop_ids, int32_t n_stop,
                             lfm_token *out_token, lfm_finish_reason *finish);

/* ---- tokenizer: byte-level BPE (GPT-2 byte alphabet) with LFM2's LLaMA-3-style pre-tokenizer ---- */

typedef enum {
    LFM_TOKEN_NORMAL = 1,
    LFM_TOKEN_UNKNOWN = 2,
    LFM_TOKEN_CONTROL = 3,
    LFM_TOKEN_USER_DEFINED = 4,
    LFM_TOKEN_UNUSED = 5,
    LFM_TOKEN_BYTE = 6,
} lfm_token_kind; /* GGUF tokenizer.ggml.token_type values */

typedef struct {
    int32_t n_tokens;
    /* NUL-terminated UTF-8. NORMAL/UNKNOWN tokens are in the byte-level alphabet (as in tokenizer.json
     * and GGUF); CONTROL/USER_DEFINED/UNUSED/BYTE tokens are their literal text (as llama.cpp). */
    const char *const *tokens;
    const int32_t *token_types; /* lfm_token_kind per token; NULL: all normal */
    int32_t n_merges;
    const char *const *merges;  /* "left right" in rank order */
    int32_t ignore_merges;      /* a pre-token that is itself in the vocab is emitted whole */
    lfm_token bos_id;           /* -1: none */
    lfm_token eos_id;
} lfm_tokenizer_params;

typedef struct lfm_tokenizer lfm_tokenizer;

lfm_status lfm_tokenizer_init(const lfm_tokenizer_params *p, lfm_tokenizer **out);
void lfm_tokenizer_free(lfm_tokenizer *t);
/* Encode UTF-8 text (invalid UTF-8 is LFM_ERR_ARG naming the byte offset). add_bos: prepend bos_id.
 * parse_special: CONTROL token strings in the text become their ids, otherwise they are ordinary
 * text. USER_DEFINED tokens (HF non-special added tokens) are always split out, as HF tokenizers and
 * llama.cpp do. Each kind is matched leftmost-longest. Writes at most cap ids; *n_out is the full
 * count (call again with more room when *n_out > cap; len + 1 is always enough). Thread-safe. */
lfm_status lfm_tokenizer_encode(const lfm_tokenizer *t, const char *text, size_t len, int add_bos,
                                int parse_special, lfm_token *out, int32_t cap, int32_t *n_out);
/* The raw bytes a token stands for (byte-level alphabet undone); control tokens give their text. */
lfm_status lfm_tokenizer_token_bytes(const lfm_tokenizer *t, lfm_token id, const char **bytes, size_t *len);
int32_t lfm_tokenizer_n_tokens(const lfm_tokenizer *t);
int32_t lfm_tokenizer_token_kind(const lfm_tokenizer *t, lfm_token id); /* lfm_token_kind; 0 if out of range */
/* Concatenate the bytes of ids (skip_control: leave CONTROL tokens out). Writes at most cap bytes
 * to out (may be NULL with cap 0); *n_out is the full length. The bytes may end inside a UTF-8
 * character or contain invalid sequences (a stream of ids cut anywhere). Id out of range: LFM_ERR_ARG. */
lfm_status lfm_tokenizer_decode(const lfm_tokenizer *t, const lfm_token *ids, int32_t n, int skip_control,
                                char *out, size_t cap, size_t *n_out);
/* The pre-tokenizer alone on plain text (no added tokens): byte end offset of each pre-token into
 * ends (at most cap); *n_out is the full count. For tests and debugging. */
lfm_status lfm_tokenizer_pretokenize(const char *text, size_t len, size_t *ends, size_t cap, size_t *n_out);

/* ---- GGUF files ---- */

typedef enum {
    LFM_GGUF_UINT8 = 0, LFM_GGUF_INT8 = 1, LFM_GGUF_UINT16 = 2, LFM_GGUF_INT16 = 3,
    LFM_GGUF_UINT32 = 4, LFM_GGUF_INT32 = 5, LFM_GGUF_FLOAT32 = 6, LFM_GGUF_BOOL = 7,
    LFM_GGUF_STRING = 8, LFM_GGUF_ARRAY = 9, LFM_GGUF_UINT64 = 10, LFM_GGUF_INT64 = 11,
    LFM_GGUF_FLOAT64 = 12,
} lfm_gguf_value_type;

typedef struct lfm_gguf lfm_gguf;

/* mmap + validate the whole header (versions 2 and 3): every count, length, offset and shape is
 * checked against the file size before use. */
lfm_status lfm_gguf_open(const char *path, lfm_gguf **out);
void lfm_gguf_close(lfm_gguf *g);
uint32_t lfm_gguf_version(const lfm_gguf *g);
int64_t lfm_gguf_n_kv(const lfm_gguf *g);
int64_t lfm_gguf_find_key(const lfm_gguf *g, const char *key); /* -1 if absent */
const char *lfm_gguf_key(const lfm_gguf *g, int64_t i);
lfm_gguf_value_type lfm_gguf_kv_type(const lfm_gguf *g, int64_t i);
/* Scalars are widened: integers/bools to int64, floats to double. */
lfm_status lfm_gguf_get_int(const lfm_gguf *g, int64_t i, int64_t *out);
lfm_status lfm_gguf_get_float(const lfm_gguf *g, int64_t i, double *out);
lfm_status lfm_gguf_get_str(const lfm_gguf *g, int64_t i, const char **s, uint64_t *len); /* not NUL-terminated */
lfm_status lfm_gguf_get_arr_info(const lfm_gguf *g, int64_t i, lfm_gguf_value_type *elem, uint64_t *n);
lfm_status lfm_gguf_get_arr_int(const lfm_gguf *g, int64_t i, uint64_t j, int64_t *out);
lfm_status lfm_gguf_get_arr_float(const lfm_gguf *g, int64_t i, uint64_t j, double *out);
lfm_status lfm_gguf_get_arr_str(const lfm_gguf *g, int64_t i, uint64_t j, const char **s, uint64_t *len);
int64_t lfm_gguf_n_tensors(const lfm_gguf *g);
int64_t lfm_gguf_find_tensor(const lfm_gguf *g, const char *name); /* -1 if absent */
/* ne in ggml order (fastest dimension first); data points into the mapping. */
lfm_status lfm_gguf_tensor_info(const lfm_gguf *g, int64_t i, const char **name, lfm_type *type,
                                int32_t *n_dims, int64_t ne[4], const void **data, size_t *nbytes);

/* ---- quantized formats (ggml-compatible blocks) ---- */

int64_t lfm_type_block_elems(lfm_type t);  /* elements per block (32, 256, 1); 0 if unknown */
size_t lfm_type_block_bytes(lfm_type t);   /* bytes per block; 0 if unknown */
bool lfm_type_is_supported(lfm_type t);    /* decoded or encoded by liquidlfm; false for the ids it only names */
/* n must be a multiple of the block size. LFM_ERR_UNSUPPORTED for a type without a decoder
 * (activation formats, the ids liquidlfm only names) or without a quantizer. */
lfm_status lfm_dequantize_row(lfm_type t, const void *src, float *dst, int64_t n);
lfm_status lfm_quantize_row(lfm_type t, const float *src, void *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif /* LFM_H */
