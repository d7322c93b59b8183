/* internal.h — types and helpers shared inside csrc/ (not part of the public API). */
#ifndef LFM_INTERNAL_H
#define LFM_INTERNAL_H

#include "lfm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---- */

/* Record a printf-style message for lfm_last_error() on this thread and return status, so call
 * sites read `return lfm_fail(LFM_ERR_FORMAT, "tensor '%s': expected ...", name);`. */
lfm_status lfm_fail(lfm_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- CPU features (detected once) ---- */

typedef struct {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avxvnni, neon, dotprod;
    bool force_ref; /* LFM_KERNELS=ref in the environment */
} lfm_cpu_features;

const lfm_cpu_features *lfm_cpu(void);
int lfm_n_cores(void);

/* ---- files ---- */

typedef struct {
    void *addr;   /* read-only mapping of the whole file (NULL for an empty file) */
    size_t size;
} lfm_mapping;

lfm_status lfm_map_file(const char *path, lfm_mapping *out);
void lfm_unmap_file(lfm_mapping *m);

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
    int32_t layout; /* LFM_LAYOUT_ROWS (0, what loaders produce) or a repacked layout (csrc/quants) */
} lfm_tensor;

/* How a quantized matrix's blocks are laid out in memory. Loaders always produce ROWS (ggml's);
 * lfm_model_repack may switch matmul weights to X8: groups of 8 rows whose blocks are interleaved
 * (block i of rows 8g..8g+7 together), read only by lfm_matmul_quant_rows. */
enum { LFM_LAYOUT_ROWS = 0, LFM_LAYOUT_X8 = 1 };

size_t lfm_tensor_row_bytes(const lfm_tensor *t); /* bytes of one row of ne[0] elements */
/* Row r (of ne[1]*ne[2]*ne[3]) as ne[0] floats: F32/F16/BF16 converted, block types dequantized
 * (csrc/requantize.c). */
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

/* ---- GGUF internals (csrc/gguf.c) ---- */

/* Size of one scalar of value type t, 0 for string/array/unknown. */
uint64_t lfm_gguf_scalar_size(uint32_t t);
uint64_t lfm_gguf_alignment(const lfm_gguf *g);
uint64_t lfm_gguf_data_offset(const lfm_gguf *g);                /* file offset of the data section */
uint64_t lfm_gguf_tensor_offset(const lfm_gguf *g, int64_t i);   /* relative to the data section */
/* Raw bytes of metadata value i inside the mapping (already validated; arrays include their
 * 12-byte header), e.g. to decode nested arrays. */
lfm_status lfm_gguf_kv_data(const lfm_gguf *g, int64_t i, const void **data, size_t *size);
/* Move the file mapping out of g (the caller unmaps it); metadata accessors stay valid as long
 * as the caller keeps the mapping alive. */
void lfm_gguf_take_mapping(lfm_gguf *g, lfm_mapping *out);

/* ---- threads ---- */

typedef struct lfm_threadpool lfm_threadpool;

/* Workers are created once and sleep between jobs. n_threads counts the calling thread. */
lfm_status lfm_threadpool_create(int n_threads, lfm_threadpool **out);
void lfm_threadpool_free(lfm_threadpool *tp);
int lfm_threadpool_n_threads(const lfm_threadpool *tp);
/* Run fn(arg, ith, nth) on every thread (ith = 0 is the caller) and wait for all. */
void lfm_threadpool_run(lfm_threadpool *tp, void (*fn)(void *arg, int ith, int nth), void *arg);

/* ---- matmul ---- */

/* Y[t, r] = sum_k W[r, k] * X[t, k] for t < T, r < W->ne[1], k < W->ne[0].
 * X: T rows of W->ne[0] floats (row stride ldx); Y: row stride ldy.
 * scratch: at least lfm_matmul_scratch_bytes(W, T) bytes (quantized activations). */
size_t lfm_matmul_scratch_bytes(const lfm_tensor *W, int64_t T);
void lfm_matmul(lfm_threadpool *tp, const lfm_tensor *W, const float *X, int64_t ldx, int64_t T,
                float *Y, int64_t ldy, void *scratch);

/* ---- quantized kernels (csrc/quants/) ---- */

/* The activation format a weight type's dot product wants (Q8_0, Q8_K, ...; F32 for float types). */
lfm_type lfm_type_vec_dot_type(lfm_type t);
bool lfm_type_is_quantized(lfm_type t);
/* Quantize one activation row of n floats into the vec_dot type. */
void lfm_quantize_act_row(lfm_type vec_dot_type, const float *x, void *dst, int64_t n);
/* Y[t*ldy + r] for r in [r0, r1), t < T: dot of weight row r with quantized activation row t
 * (rows of xq_row_bytes bytes each). */
void lfm_matmul_quant_rows(const lfm_tensor *W, const void *Xq, size_t xq_row_bytes, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1);

/* Re-lay out the model's matmul weights for the running CPU's kernels (today: Q4_0, Q8_0, Q4_K and
 * Q6_K matrices with a multiple of 8 rows -> LFM_LAYOUT_X8 on AVX2). Copies are owned by the model;
 * the file pages they replace are released from the process. Call once after
 * lfm_model_validate/requantize; a no-op with LFM_KERNELS=ref, LFM_REPACK=0 or when nothing
 * qualifies. tok_embd is never repacked (rows are looked up). */
lfm_status lfm_model_repack(struct lfm_model *m);

/* ---- profiling (csrc/quants/profile.c) ---- */

/* Off unless LFM_PROFILE=1 in the environment or lfm_profile_enable(true): then lfm_matmul adds its
 * wall time per weight name, so a decode step can be split into matmuls per weight and the rest. */
bool lfm_profile_on(void);
void lfm_profile_enable(bool on);
double lfm_profile_now(void); /* seconds, monotonic */
void lfm_profile_add(const char *name, double seconds, int64_t T);
/* Copy up to cap entries (name, calls, rows, seconds) out; returns the number of entries. */
typedef struct {
    char name[96];
    int64_t calls, rows;
    double seconds;
} lfm_profile_entry;
int lfm_profile_get(lfm_profile_entry *out, int cap, bool reset);

/* ---- misc ---- */

static inline int64_t lfm_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t lfm_max64(int64_t a, int64_t b) { return a > b ? a : b; }

#endif /* LFM_INTERNAL_H */
