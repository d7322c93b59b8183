/* model/model.h — weights: tensor views, the model struct, loaders, validation,
 * requantize and repack passes. */
#ifndef LFM_MODEL_H
#define LFM_MODEL_H

#include "base/base.h"

/* ---- tensors ---- */

/* A view of one weight. ne is in ggml order: ne[0] is the fastest dimension, i.e. the row length
 * (input features) of a matrix, ne[1] the number of rows. Rows are contiguous, each
 * ne[0] / block_elems blocks of block_bytes. */
typedef struct {
    char name[96];
    lfm_type type;
    int32_t n_dims;
    int64_t ne[4];
    const void *data;
    size_t nbytes;
    int32_t layout; /* LFM_LAYOUT_ROWS (0, what loaders produce) or a repacked layout (model/repack.c) */
    /* A 3-D tensor (the experts of a MoE layer, ne[2] of them) is ne[2] matrices of ne[1] rows. NULL:
     * they are contiguous, matrix i at data + i * ne[1] rows (GGUF stacks them so); else slices[i]
     * is where matrix i starts (a safetensors checkpoint keeps every expert as its own tensor, and
     * the loader points at them where they lie instead of copying). Owned by the model. */
    const void *const *slices;
} lfm_tensor;

/* How a quantized matrix's blocks are laid out in memory. Loaders always produce ROWS (ggml's);
 * lfm_model_repack may switch matmul weights to X8: groups of 8 rows whose blocks are interleaved
 * (block i of rows 8g..8g+7 together), read only by lfm_matmul_quant_rows. */
enum { LFM_LAYOUT_ROWS = 0, LFM_LAYOUT_X8 = 1 };

size_t lfm_tensor_row_bytes(const lfm_tensor *t); /* bytes of one row of ne[0] elements */
/* Matrix i (< ne[2]) of a 3-D tensor as a 2-D view: ne[0] x ne[1], same type and layout. */
lfm_tensor lfm_tensor_slice(const lfm_tensor *t, int64_t i);
/* Row r (of ne[1]*ne[2]*ne[3]) as ne[0] floats: F32/F16/BF16 converted, block types dequantized
 * (model/requantize.c). */
lfm_status lfm_tensor_row_to_f32(const lfm_tensor *t, int64_t r, float *dst);

/* ---- model ---- */

typedef struct {
    lfm_tensor attn_norm;     /* operator_norm [H], F32 */
    lfm_tensor ffn_norm;      /* [H], F32 */
    lfm_tensor ffn_gate;      /* w1 [F, H] */
    lfm_tensor ffn_up;        /* w3 [F, H] */
    lfm_tensor ffn_down;      /* w2 [H, F] */
    /* short-conv layers */
    lfm_tensor conv_in_proj;  /* [3H, H], rows B, C, X */
    lfm_tensor conv_kernel;   /* [H, K] F32, element (c, k) at c*K + k; k = K-1 is the current token */
    lfm_tensor conv_out_proj; /* [H, H] */
    /* attention layers */
    lfm_tensor wq;            /* [nh*hd, H] */
    lfm_tensor wk;            /* [nkv*hd, H] */
    lfm_tensor wv;            /* [nkv*hd, H] */
    lfm_tensor wo;            /* [H, nh*hd] */
    lfm_tensor q_norm;        /* [hd], F32 */
    lfm_tensor k_norm;        /* [hd], F32 */
    /* MoE layers (lfm_layer_is_moe) have these instead of ffn_gate / ffn_up / ffn_down */
    lfm_tensor ffn_gate_inp;  /* router [E, H]: one score per expert; never quantized (llama.cpp keeps it F32) */
    lfm_tensor exp_probs_b;   /* [E] F32, expert bias: added to the scores for ranking only; absent
                               * when the config has no expert bias */
    lfm_tensor ffn_gate_exps; /* w1 of every expert [E, F_exp, H] (3-D: lfm_tensor_slice gives one) */
    lfm_tensor ffn_up_exps;   /* w3 [E, F_exp, H] */
    lfm_tensor ffn_down_exps; /* w2 [E, H, F_exp] */
    /* LFM3 */
    lfm_tensor attn_gate;     /* g_proj [nh, H]: one gate logit per query head (attention layers, attn_gate) */
    lfm_tensor post_attn_norm; /* post_operator_norm [H], F32 (every layer, sandwich_norm) */
    lfm_tensor post_ffn_norm; /* post_ffn_norm [H], F32 (every layer, sandwich_norm) */
} lfm_layer;

/* Does layer l run the mixture of experts (else the dense FFN)? transformers: layers from
 * num_dense_layers on; llama.cpp: from leading_dense_block_count on. */
static inline bool lfm_layer_is_moe(const lfm_config *c, int32_t l) { return c->n_expert > 0 && l >= c->n_layer_dense; }

struct lfm_model {
    lfm_config cfg;
    lfm_tensor tok_embd;      /* [V, H] */
    lfm_tensor output_norm;   /* final norm (HF embedding_norm, GGUF token_embd_norm) [H], F32 */
    lfm_tensor output;        /* [V, H]; a copy of tok_embd's view when tied */
    lfm_layer *layers;        /* n_layer */
    bool gguf;                /* loaded from a GGUF file: llama.cpp is its reference, bit for bit where the
                               * kernels follow llama.cpp's order (csrc/kernels/ROUNDING.md) */
    bool llama_routing;       /* MoE: weigh and sum the experts as llama.cpp does (a GGUF file, or weights
                               * quantized on load, which are those of the file liquidlfm.quantize
                               * writes); else as transformers does (arch/lfm2.c, moe_route) */

    /* ownership: files mapped and buffers allocated for this model (converted norms,
     * requantized weights); all released by lfm_model_free */
    lfm_mapping *maps;
    int32_t n_maps;
    void **owned;
    int32_t n_owned, cap_owned;
};

/* ---- the tensor table (model/tensors.c) ----
 *
 * Every LFM2 weight is one row of lfm_tensors[]: the field it fills, its GGUF and HF names, which
 * layers have it, its shape and its role. The loaders, lfm_model_validate, requantize, repack,
 * describe, the context's scratch sizing and the Python quantizer (through _core.tensor_table())
 * all iterate this table; nothing else lists tensor names. */

typedef enum {
    LFM_TENSOR_TOKEN_EMBD,
    LFM_TENSOR_OUTPUT_NORM,
    LFM_TENSOR_OUTPUT,
    LFM_TENSOR_ATTN_NORM,
    LFM_TENSOR_FFN_NORM,
    LFM_TENSOR_FFN_GATE,
    LFM_TENSOR_FFN_UP,
    LFM_TENSOR_FFN_DOWN,
    LFM_TENSOR_SHORTCONV_IN_PROJ,
    LFM_TENSOR_SHORTCONV_CONV,
    LFM_TENSOR_SHORTCONV_OUT_PROJ,
    LFM_TENSOR_ATTN_Q,
    LFM_TENSOR_ATTN_K,
    LFM_TENSOR_ATTN_V,
    LFM_TENSOR_ATTN_OUT,
    LFM_TENSOR_ATTN_Q_NORM,
    LFM_TENSOR_ATTN_K_NORM,
    LFM_TENSOR_FFN_GATE_INP,
    LFM_TENSOR_FFN_EXP_PROBS_B,
    LFM_TENSOR_FFN_GATE_EXPS,
    LFM_TENSOR_FFN_UP_EXPS,
    LFM_TENSOR_FFN_DOWN_EXPS,
    LFM_TENSOR_ATTN_GATE,
    LFM_TENSOR_POST_ATTN_NORM,
    LFM_TENSOR_POST_FFN_NORM,
    LFM_TENSOR_COUNT
} lfm_tensor_id;

typedef enum {
    LFM_SCOPE_GLOBAL, /* once per model: a field of struct lfm_model */
    LFM_SCOPE_LAYER,  /* every layer: a field of lfm_layer */
    LFM_SCOPE_CONV,   /* short-conv layers only */
    LFM_SCOPE_ATTN,   /* attention layers only */
    LFM_SCOPE_FFN,    /* layers with a dense FFN: all of a dense model, the leading n_layer_dense of a MoE one */
    LFM_SCOPE_MOE,    /* MoE layers (lfm_layer_is_moe) */
    LFM_SCOPE_MOE_BIAS, /* MoE layers of a model whose router has an expert bias */
    LFM_SCOPE_ATTN_GATE, /* attention layers of a model with an attention output gate (LFM3) */
    LFM_SCOPE_SANDWICH, /* every layer of a model with sandwich norms (LFM3) */
} lfm_tensor_scope;

typedef enum {
    LFM_ROLE_NORM,        /* RMSNorm weight: F32 vector (loaders convert) */
    LFM_ROLE_CONV_KERNEL, /* depthwise conv taps: F32 [H, K]; HF stores [H, 1, K] or [H, K] */
    LFM_ROLE_MATRIX,      /* a matmul weight: requantized to the target type, repacked */
    LFM_ROLE_EMBEDDING,   /* token embedding: rows looked up, never repacked; Q6_K/Q8_0 rule */
    LFM_ROLE_HEAD,        /* output head: a matmul with the embedding's type rule; absent from a
                           * GGUF means tied, in HF present only when config.json unties it */
    LFM_ROLE_ROUTER,      /* MoE router: a matmul kept in its type (never quantized: llama.cpp's
                           * converter writes it F32 and llama-quantize skips ffn_gate_inp) */
    LFM_ROLE_BIAS,        /* a bias vector: F32 (loaders convert), never quantized */
} lfm_tensor_role;

/* Symbolic sizes a shape is written in, resolved against an lfm_config by lfm_dim_value. */
typedef enum {
    LFM_DIM_NONE, /* no such dimension: the tensor is 1-D */
    LFM_DIM_V,    /* vocabulary rows */
    LFM_DIM_H,    /* hidden size */
    LFM_DIM_3H,   /* conv in_proj rows: B, C, X */
    LFM_DIM_F,    /* FFN width */
    LFM_DIM_Q,    /* n_head * head_dim */
    LFM_DIM_KV,   /* n_head_kv * head_dim */
    LFM_DIM_HD,   /* head_dim */
    LFM_DIM_K,    /* conv kernel length (conv_l_cache) */
    LFM_DIM_E,    /* experts per MoE layer */
    LFM_DIM_FE,   /* one expert's FFN width */
    LFM_DIM_NH,   /* query heads */
    LFM_DIM_COUNT
} lfm_dim;

typedef struct {
    const char *id;         /* short stable name, e.g. "attn_q" (Python's key) */
    const char *what;       /* words for messages, e.g. "q_proj" ("layer 3 q_proj: ...") */
    const char *gguf;       /* GGUF name; "%d" stands for the layer in per-layer scopes */
    const char *gguf_alias; /* another GGUF name accepted for the same tensor, or NULL */
    const char *hf;         /* Hugging Face (safetensors) name, same convention; for a 3-D expert
                             * stack, one matrix per expert: "%d" twice, the layer then the expert */
    lfm_tensor_scope scope;
    lfm_tensor_role role;
    const char *field;      /* the lfm_tensor it fills: a field of struct lfm_model (GLOBAL) or lfm_layer */
    size_t offset;          /* offsetof that field */
    lfm_dim ne[3];          /* ggml order: ne[0] is the row length; PyTorch's shape is the reverse.
                             * ne[2] = LFM_DIM_E for the experts' stacks (3-D), else NONE */
    const char *hf_lfm3;    /* the HF name in an LFM3 checkpoint where it differs (its attention is
                             * Qwen3's: o_proj, q_norm, k_norm), else NULL */
} lfm_tensor_desc;

extern const lfm_tensor_desc lfm_tensors[LFM_TENSOR_COUNT];

const char *lfm_dim_name(lfm_dim d);                       /* "H", "3H", "nh*hd", ... */
int64_t lfm_dim_value(const lfm_config *c, lfm_dim d);    /* 1 for LFM_DIM_NONE */
bool lfm_tensor_is_matmul(lfm_tensor_id id);               /* MATRIX or HEAD */
bool lfm_tensor_wants_f32(lfm_tensor_id id);               /* NORM, CONV_KERNEL or BIAS */
bool lfm_tensor_is_experts(lfm_tensor_id id);              /* a 3-D stack of one matrix per expert */
/* Dimensions of a row's shape: 1, 2, or 3 for the experts' stacks. */
int lfm_tensor_n_dims(lfm_tensor_id id);
/* Does layer (-1: the model's global tensors) of a model with config c have this tensor? */
bool lfm_tensor_applies(lfm_tensor_id id, const lfm_config *c, int32_t layer);
/* The HF name of row id in a checkpoint of a model with config c (hf, or hf_lfm3 for LFM3). */
const char *lfm_tensor_hf(lfm_tensor_id id, const lfm_config *c);
/* The row's GGUF / alias / HF name for layer into buf ("" when the row has no such name). */
void lfm_tensor_name(const char *pattern, int32_t layer, char *buf, size_t cap);
/* The same for a name with the expert's number too (the HF names of an expert stack's matrices);
 * expert < 0 writes "*" (the whole stack, for messages). */
void lfm_tensor_name_expert(const char *pattern, int32_t layer, int32_t expert, char *buf, size_t cap);
/* The lfm_tensor a row fills in m (layer ignored for GLOBAL rows). */
lfm_tensor *lfm_model_tensor(struct lfm_model *m, lfm_tensor_id id, int32_t layer);
const lfm_tensor *lfm_model_tensor_c(const struct lfm_model *m, lfm_tensor_id id, int32_t layer);

/* Keep ptr alive as long as the model (freed with free() by lfm_model_free). */
lfm_status lfm_model_own(struct lfm_model *m, void *ptr);

/* Loaders: fill *m (zeroed by the caller) or return an error; lfm_model_free cleans up either way. */
lfm_status lfm_model_load_safetensors(struct lfm_model *m, const char *path);
lfm_status lfm_model_load_gguf(struct lfm_model *m, const char *path);
/* ---- limits ----
 *
 * The sizes the kernels and the forward pass can run, checked once by lfm_model_validate whatever
 * the loader (GGUF metadata, config.json with or without head_dim, quantize on load):
 *   head_dim <= LFM_MAX_HEAD_DIM (kernels/kernels.h): the AVX2 attention rounds a query head into a
 *     stack buffer of that size (only checked when the model has attention layers);
 *   conv_l_cache <= LFM_MAX_CONV_K: the conv state holds K-1 rows per layer (the AVX2 conv keeps up
 *     to 16 taps in registers and runs the scalar kernel above that);
 *   n_expert <= LFM_MAX_EXPERTS, 1 <= n_expert_used <= min(n_expert, LFM_MAX_EXPERTS_USED) for a MoE model;
 *   n_embd, n_ff, n_head*head_dim, n_head_kv*head_dim <= LFM_MAX_WIDTH and n_vocab <=
 *     LFM_MAX_VOCAB: every scratch size (n_batch x width floats, n_rows x n_vocab logits) is then far
 *     from overflowing size_t, and every width fits the int32 fields of lfm_config. */
#define LFM_MAX_CONV_K 64
#define LFM_MAX_WIDTH (1 << 22)
#define LFM_MAX_VOCAB (1 << 24)

/* Shared checks once tensors are in place: hyper-parameters against the limits above, shapes
 * against cfg, every tensor's type computable in its role (a matmul kernel for matrices and the
 * head, a row decoder for the embedding; a tied head needs both), F32 for norms. */
lfm_status lfm_model_validate(struct lfm_model *m);
/* Re-encode the weight matrices and the embedding by file type f's rule (quantize on load). */
lfm_status lfm_model_requantize(struct lfm_model *m, lfm_ftype f, int n_threads);

/* ---- file types (model/ftype.c) ---- */

/* The storage type llama-quantize gives tensor id of layer (-1: the global tensors) of a model with
 * config c when writing file type f from a float file (llama_tensor_get_type for LFM2, llama.cpp
 * 0c1e57098); LFM_TYPE_NONE for the tensors it never quantizes (norms, the conv kernel), which keep
 * their type. A tied head gets the embedding's type. */
lfm_type lfm_ftype_tensor_type(lfm_ftype f, const lfm_config *c, lfm_tensor_id id, int32_t layer);
/* The i-th file type name liquidlfm writes, aliases included ("q4_k" after "q4_k_m"); NULL past the
 * last. */
const char *lfm_ftype_name_at(size_t i, lfm_ftype *f);
/* The type most weight matrices of file type f get (q4_k_m: Q4_K); LFM_TYPE_NONE for an unknown f. */
lfm_type lfm_ftype_base_type(lfm_ftype f);
/* Those names, comma-separated, into buf (for messages). */
void lfm_ftype_names(char *buf, size_t cap);

/* ---- repack (model/repack.c) ---- */

/* Re-lay out the model's matmul weights for the running CPU's kernels (today: Q4_0, Q8_0, Q4_K, Q5_K
 * and Q6_K matrices with a multiple of 8 rows -> LFM_LAYOUT_X8 at every SIMD level). Copies are owned by the model;
 * the file pages they replace are released from the process. Call once after
 * lfm_model_validate/requantize; a no-op with LFM_KERNELS=ref, LFM_REPACK=0 or when nothing
 * qualifies. tok_embd is never repacked (rows are looked up). */
lfm_status lfm_model_repack(struct lfm_model *m);

#endif /* LFM_MODEL_H */
