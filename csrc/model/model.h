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
} lfm_tensor;

/* How a quantized matrix's blocks are laid out in memory. Loaders always produce ROWS (ggml's);
 * lfm_model_repack may switch matmul weights to X8: groups of 8 rows whose blocks are interleaved
 * (block i of rows 8g..8g+7 together), read only by lfm_matmul_quant_rows. */
enum { LFM_LAYOUT_ROWS = 0, LFM_LAYOUT_X8 = 1 };

size_t lfm_tensor_row_bytes(const lfm_tensor *t); /* bytes of one row of ne[0] elements */
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
} lfm_layer;

struct lfm_model {
    lfm_config cfg;
    lfm_tensor tok_embd;      /* [V, H] */
    lfm_tensor output_norm;   /* final norm (HF embedding_norm, GGUF token_embd_norm) [H], F32 */
    lfm_tensor output;        /* [V, H]; a copy of tok_embd's view when tied */
    lfm_layer *layers;        /* n_layer */

    /* ownership: files mapped and buffers allocated for this model (converted norms,
     * requantized weights); all released by lfm_model_free */
    lfm_mapping *maps;
    int32_t n_maps;
    void **owned;
    int32_t n_owned, cap_owned;
};

/* Keep ptr alive as long as the model (freed with free() by lfm_model_free). */
lfm_status lfm_model_own(struct lfm_model *m, void *ptr);

/* Loaders: fill *m (zeroed by the caller) or return an error; lfm_model_free cleans up either way. */
lfm_status lfm_model_load_safetensors(struct lfm_model *m, const char *path);
lfm_status lfm_model_load_gguf(struct lfm_model *m, const char *path);
/* Shared checks once tensors are in place: shapes against cfg, types runnable, F32 for norms. */
lfm_status lfm_model_validate(struct lfm_model *m);
/* Re-encode every 2-D weight matrix into type (quantize on load). */
lfm_status lfm_model_requantize(struct lfm_model *m, lfm_type type, int n_threads);

/* ---- repack (model/repack.c) ---- */

/* Re-lay out the model's matmul weights for the running CPU's kernels (today: Q4_0, Q8_0, Q4_K and
 * Q6_K matrices with a multiple of 8 rows -> LFM_LAYOUT_X8 on AVX2). Copies are owned by the model;
 * the file pages they replace are released from the process. Call once after
 * lfm_model_validate/requantize; a no-op with LFM_KERNELS=ref, LFM_REPACK=0 or when nothing
 * qualifies. tok_embd is never repacked (rows are looked up). */
lfm_status lfm_model_repack(struct lfm_model *m);

#endif /* LFM_MODEL_H */
