/* quants.h — ggml-compatible block layouts, the type-traits table and the per-level kernel tables
 * shared by csrc/kernels/quants and the ISA files in csrc/kernels/x86.
 *
 * Every struct below is byte-for-byte the block a GGUF file stores (little-endian, no padding:
 * all members are byte arrays or 16-bit halves, except Q8_K which is only an activation format).
 * Sizes are checked with _Static_assert. */
#ifndef LFM_QUANTS_H
#define LFM_QUANTS_H

#include "model/model.h"

#include <math.h>
#include <string.h>

#define LFM_QK 32   /* elements per block of the 32-block types */
#define LFM_QK_K 256 /* elements per super-block of the K-quants */

typedef uint16_t lfm_half; /* IEEE binary16 bits */

typedef struct { lfm_half d; uint8_t qs[16]; } lfm_block_q4_0;                     /* x = d*(q-8) */
typedef struct { lfm_half d, m; uint8_t qs[16]; } lfm_block_q4_1;                  /* x = d*q + m */
typedef struct { lfm_half d; uint8_t qh[4]; uint8_t qs[16]; } lfm_block_q5_0;      /* x = d*(q-16) */
typedef struct { lfm_half d, m; uint8_t qh[4]; uint8_t qs[16]; } lfm_block_q5_1;   /* x = d*q + m */
typedef struct { lfm_half d; int8_t qs[32]; } lfm_block_q8_0;                      /* x = d*q */
typedef struct { lfm_half d, s; int8_t qs[32]; } lfm_block_q8_1;                   /* s = d*sum(q) */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; lfm_half d, dmin; } lfm_block_q2_K;
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; lfm_half d; } lfm_block_q3_K;
typedef struct { lfm_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; } lfm_block_q4_K;
typedef struct { lfm_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } lfm_block_q5_K;
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; lfm_half d; } lfm_block_q6_K;
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } lfm_block_q8_K; /* activations only */

/* LFM_LAYOUT_X8 of Q4_0: block i of 8 consecutive rows. qs[32k + 4r + j] is byte 4k + j of row r's
 * ggml block (k < 4, j < 4): a 4-byte interleave, so one 32-byte load holds 4 bytes of each row. */
typedef struct { lfm_half d[8]; uint8_t qs[128]; } lfm_block_q4_0x8;
/* The same for Q8_0: qs[32k + 4r + j] is byte 4k + j of row r's block (k < 8). */
typedef struct { lfm_half d[8]; int8_t qs[256]; } lfm_block_q8_0x8;
/* Q4_K in LFM_LAYOUT_X8, in the order tile_q4_Kx8 reads it (model/repack.c): d[r], dmin[r] of row r;
 * scales[32k + 4r + b] = byte 4k + b of row r's 12 scale bytes (k < 3); qs[128j + 32c + 4r + b] =
 * byte 32c + 4j + b of row r's qs (j < 8, c < 4): one 32-byte load holds, for each row, the 4 bytes
 * the row kernel reduces into int32 lane j of chunk c. */
typedef struct { lfm_half d[8], dmin[8]; uint8_t scales[96]; uint8_t qs[1024]; } lfm_block_q4_Kx8;
/* Q5_K in LFM_LAYOUT_X8: lfm_block_q4_Kx8 with the high bits between scales and quants, in the order
 * tile_q5_Kx8 reads them: qh[32j + 4r + b] = byte 4j + b of row r's qh (j < 8), the fifth bits of
 * the bytes of lane j in all four chunks (bits 2c and 2c + 1 for chunk c's low and high nibbles),
 * so one 32-byte load of qh serves the four qs loads of lane j. */
typedef struct { lfm_half d[8], dmin[8]; uint8_t scales[96]; uint8_t qh[256]; uint8_t qs[1024]; } lfm_block_q5_Kx8;
/* Q6_K in LFM_LAYOUT_X8, in the order tile_q6_Kx8 reads it: d[r]; scales[16k + 2r + b] = scale
 * 2k + b of row r (one 16-byte load sign-extends to the int16 pairs (s[2k], s[2k+1]) of the 8
 * rows); q[192j + 96h + 32m + 4r + b] = byte 4j + b of row r's ql[64h..] (m = 0), ql[64h + 32..]
 * (m = 1) or qh[32h..] (m = 2), for lane j < 8 and half h < 2. */
typedef struct { lfm_half d[8]; int8_t scales[128]; uint8_t q[1536]; } lfm_block_q6_Kx8;

_Static_assert(sizeof(lfm_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(lfm_block_q4_0x8) == 8 * 18, "q4_0x8 block");
_Static_assert(sizeof(lfm_block_q8_0x8) == 8 * 34, "q8_0x8 block");
_Static_assert(sizeof(lfm_block_q4_Kx8) == 8 * 144, "q4_Kx8 block");
_Static_assert(sizeof(lfm_block_q5_Kx8) == 8 * 176, "q5_Kx8 block");
_Static_assert(sizeof(lfm_block_q6_Kx8) == 8 * 210, "q6_Kx8 block");
_Static_assert(sizeof(lfm_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(lfm_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(lfm_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(lfm_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(lfm_block_q8_1) == 36, "q8_1 block");
_Static_assert(sizeof(lfm_block_q2_K) == 84, "q2_K block");
_Static_assert(sizeof(lfm_block_q3_K) == 110, "q3_K block");
_Static_assert(sizeof(lfm_block_q4_K) == 144, "q4_K block");
_Static_assert(sizeof(lfm_block_q5_K) == 176, "q5_K block");
_Static_assert(sizeof(lfm_block_q6_K) == 210, "q6_K block");
_Static_assert(sizeof(lfm_block_q8_K) == 292, "q8_K block");

/* ---- half precision (exact conversions, round to nearest even) ---- */

static inline float lfm_half_to_float(lfm_half h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
    if (e == 0) {
        float v = (float)m * 0x1p-24f; /* zero or subnormal: exact */
        return sign ? -v : v;
    }
    if (e == 31) bits = sign | 0x7f800000u | (m << 13);
    else bits = sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline lfm_half lfm_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (lfm_half)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN stays NaN */
    if (ax == 0x7f800000u) return (lfm_half)(sign | 0x7c00u);
    int32_t e = (int32_t)(ax >> 23) - 112; /* binary16 biased exponent */
    uint32_t m = ax & 0x7fffffu;
    if (e >= 31) return (lfm_half)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal result: units of 2^-24 */
        if (e < -10) return (lfm_half)sign;
        m |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (lfm_half)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry may reach the exponent/inf: right */
    return (lfm_half)(sign | h);
}

static inline float lfm_bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* The element of largest magnitude, with its sign (the first one on ties); 0 for all zeros. */
static inline float lfm_signed_absmax(const float *x, int64_t n) {
    float amax = 0.0f, max = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) amax = ax, max = x[j];
    }
    return max;
}

/* ---- non-finite activations ----
 * The one rule for NaN and +-inf (kernels/ROUNDING.md, "Non-finite values"): an activation block
 * holding a NaN or an infinity is stored, at every kernel level, with a NaN scale (and NaN sum) and
 * zero quants, so every dot product with it is NaN and the NaN reaches the logits, where the
 * sampler refuses it. The quantizers never convert a non-finite float to an integer. Finite blocks
 * are untouched (same bytes as llama.cpp). */
#define LFM_HALF_NAN ((lfm_half)0x7e00u)
static inline void lfm_act_nonfinite_q8_0(lfm_block_q8_0 *b) {
    memset(b, 0, sizeof *b);
    b->d = LFM_HALF_NAN;
}
static inline void lfm_act_nonfinite_q8_1(lfm_block_q8_1 *b) {
    memset(b, 0, sizeof *b);
    b->d = b->s = LFM_HALF_NAN;
}
static inline void lfm_act_nonfinite_q8_K(lfm_block_q8_K *b) {
    memset(b, 0, sizeof *b);
    b->d = NAN;
}

/* Round to nearest, ties to even (rintf in the default rounding mode), as llama.cpp's quantizers
 * do (nearbyint / the 1.5*2^23 trick); not roundf, which rounds ties away from zero. */
static inline int lfm_round_even(float x) { return (int)__builtin_rintf(x); }

/* 6-bit scale j and min j of a Q4_K/Q5_K super-block (8 of each packed in 12 bytes). */
static inline void lfm_k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* ---- type traits (type_traits.c): one row per lfm_type, as ggml's type_traits ---- */

#define LFM_TYPE_COUNT 42 /* lfm_type ids are < LFM_TYPE_COUNT */

/* n elements of one row (a multiple of the type's block_elems), to or from float. */
typedef void (*lfm_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*lfm_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct {
    const char *name;             /* ggml's spelling: "q4_0", "q4_K", "bf16" */
    int64_t block_elems;          /* elements per block (1 for the float and integer types) */
    size_t block_bytes;
    bool is_quantized;            /* a block type */
    lfm_type vec_dot_type;        /* what the activations become for a matmul with this weight type (F32:
                                   * they stay float, the float GEMMs run it); NONE: never a matmul weight */
    lfm_to_float_fn to_float;     /* NULL: activation format, or an id we only name */
    lfm_from_float_fn from_float; /* NULL: no quantizer */
} lfm_type_traits;

/* The row of t; NULL for an id we do not know. */
const lfm_type_traits *lfm_type_traits_get(lfm_type t);
/* lfm_type_is_supported (lfm.h): a to_float or a from_float. */
/* A weight matrix of type t can be multiplied on this CPU: the float kernel table in use has a GEMM
 * for it (F32, F16, BF16), or the quantized level in use a row kernel (not Q8_1 / Q8_K, activation
 * formats). */
bool lfm_type_has_matmul(lfm_type t);

/* ---- kernels per level (filled by each level's init, chosen once in type_traits.c) ---- */

/* Y[t*ldy + r] = dot(weight row r, activation row t) for r < nr, t < nt. Weight rows are bw bytes
 * apart starting at w; activation rows (in the type's vec_dot format) bx bytes apart starting at x.
 * n = elements per row. */
typedef void (*lfm_qmm_fn)(int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x, size_t bx,
                           int64_t nt, float *y, int64_t ldy);
/* Quantize n floats into activation blocks. */
typedef void (*lfm_qact_fn)(const float *x, void *dst, int64_t n);

/* One level's kernels, indexed by type. NULL: this level has none for that type. */
typedef struct {
    lfm_qmm_fn mm[LFM_TYPE_COUNT];
    /* LFM_LAYOUT_X8 kernels: w points at a group of 8 rows, nr is a multiple of 8, bw is still the
     * bytes of one (logical) row so a group spans 8*bw bytes. NULL: the layout is not used.
     * The Q8_0 / Q4_K / Q5_K / Q6_K ones give the floats of mm[] bit for bit (same int32 lanes, same float
     * operations in the same order); Q4_0's sums in the order of llama.cpp's repacked Q4_0 kernel,
     * which its row kernel (llama.cpp's unrepacked one) does not. */
    lfm_qmm_fn mm_x8[LFM_TYPE_COUNT];
    /* X8 kernels that round every token as the one-token kernel does, for the experts of a MoE
     * layer: llama.cpp runs its repacked MUL_MAT_ID one token at a time (gemv), whatever the
     * batch. NULL: mm_x8 already rounds so (today all but Q4_K, whose batched kernel folds the
     * scales per 64 elements instead of per block). */
    lfm_qmm_fn mm_x8_tok[LFM_TYPE_COUNT];
    lfm_qact_fn act[LFM_TYPE_COUNT]; /* indexed by the activation type (Q8_0, Q8_1, Q8_K) */
    const char *name;
} lfm_qkernels;

/* Scalar oracle (quants_ref.c) and the ISA tables, which fill in what they speed up on top of the
 * level below: ref, then avx2, then avxvnni, then avx512, then avx512zmm on x86 (kernels/x86/quants_x86.h, compiled once per level); ref, then neon, then dotprod, then i8mm on arm64
 * (kernels/arm/quants_neon*.c: one source, kernels/arm/quants_neon_32.h and quants_neon_k.h,
 * compiled once per level with that level's -march). */
void lfm_qkernels_init_ref(lfm_qkernels *k);
#if defined(LFM_IS_X86)
void lfm_qkernels_init_avx2(lfm_qkernels *k);
void lfm_qkernels_init_avxvnni(lfm_qkernels *k);
void lfm_qkernels_init_avx512(lfm_qkernels *k);
void lfm_qkernels_init_avx512zmm(lfm_qkernels *k);
#endif
#if defined(LFM_IS_ARM64)
void lfm_qkernels_init_neon(lfm_qkernels *k);
void lfm_qkernels_init_neon_dotprod(lfm_qkernels *k);
void lfm_qkernels_init_neon_i8mm(lfm_qkernels *k);
#endif

typedef enum {
    LFM_QLEVEL_REF,
    LFM_QLEVEL_AVX2,
    LFM_QLEVEL_AVX512,
    LFM_QLEVEL_NEON,
    LFM_QLEVEL_DOTPROD,
    LFM_QLEVEL_I8MM,
    LFM_QLEVEL_AVXVNNI,
    LFM_QLEVEL_AVX512ZMM,
    LFM_QLEVEL_COUNT
} lfm_qlevel;
const char *lfm_qlevel_name(lfm_qlevel level); /* "ref", "avx2", "avx512", "neon", "dotprod", "i8mm", "avxvnni",
                                               "avx512zmm" */
/* The table of one level; NULL when this CPU or build lacks it. */
const lfm_qkernels *lfm_qkernels_level(lfm_qlevel level);
/* The level in use: the best this CPU has, or the one LFM_KERNELS names (ref, or a SIMD level: the
 * best level this CPU has at or below it). */
lfm_qlevel lfm_qkernels_level_in_use(void);

/* The table in use and the scalar one. */
const lfm_qkernels *lfm_qkernels_get(void);
const lfm_qkernels *lfm_qkernels_ref(void);

/* LFM_LAYOUT_X8 of Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K (model/repack.c): rows % 8 == 0. */
bool lfm_type_has_x8(lfm_type t);
void lfm_repack_x8(lfm_type t, const void *src, void *dst, int64_t rows, int64_t cols);
/* Blocks [i0, i0+nb) of row r of an X8 matrix (cols wide) back in ggml's layout. */
void lfm_unpack_x8_row(lfm_type t, const void *src, int64_t r, int64_t cols, int64_t i0, int64_t nb, void *dst);

/* ---- row codecs (quants.c): the to_float / from_float entries of the traits table ---- */

/* lfm_quantize_row_NAME: a row of n floats through q_NAME(src, block), one block of ELEMS at a time */
#define LFM_QUANTIZE_ROW_BY_BLOCK(name, blk, elems)                                                \
    void lfm_quantize_row_##name(const float *src, void *dst, int64_t n) {                         \
        blk *b = dst;                                                                              \
        for (int64_t i = 0; i < n / (elems); i++) q_##name(src + (elems) * i, &b[i]);              \
    }

void lfm_dequantize_row_f32(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_f16(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_bf16(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q2_K(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q3_K(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q4_K(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q5_K(const void *src, float *dst, int64_t n);
void lfm_dequantize_row_q6_K(const void *src, float *dst, int64_t n);

void lfm_quantize_row_f32(const float *src, void *dst, int64_t n);
void lfm_quantize_row_f16(const float *src, void *dst, int64_t n);
void lfm_quantize_row_bf16(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q4_0(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q4_1(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q5_0(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q5_1(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q8_0(const float *src, void *dst, int64_t n);
/* the K-quants (quants_k.c): llama-quantize's bytes without an importance matrix */
void lfm_quantize_row_q4_K(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q5_K(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q6_K(const float *src, void *dst, int64_t n);
/* the activation formats through the level in use (the bytes the matmul quantizes to) */
void lfm_quantize_row_q8_1(const float *src, void *dst, int64_t n);
void lfm_quantize_row_q8_K(const float *src, void *dst, int64_t n);

/* Test oracle (quants_oracle.c): the SIMD kernels' float order in scalar code, on ggml-layout rows
 * (x8: the order of the LFM_LAYOUT_X8 kernel); LFM_ERR_UNSUPPORTED for a type without one. */
lfm_status lfm_qmm_oracle(lfm_type t, bool x8, int64_t n, const uint8_t *w, size_t bw, int64_t nr, const uint8_t *x,
                          size_t bx, int64_t nt, float *y, int64_t ldy);

#endif /* LFM_QUANTS_H */
