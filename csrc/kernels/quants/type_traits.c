/* type_traits.c — what each tensor type is and what it can do on this CPU: one row per lfm_type
 * (as ggml's type_traits), the kernel table of every level, and the choice among the levels.
 *
 * Everything that needs a per-type fact reads it here: the GGUF reader (sizes, supported), the
 * loaders and requantize (has a quantizer, has a matmul), the matmul dispatch, and Python through
 * _core.type_traits() (liquidlfm/gguf.py, liquidlfm/quantize.py). */
#include "kernels/kernels.h"

#include <stdio.h>

/* ---- the table ---- */

/* Sizes of the ids we only name are ggml's (tests/test_quants.py checks every row against the
 * `gguf` package's GGML_QUANT_SIZES). */
#define B(blk) sizeof(blk)
#define NONE LFM_TYPE_NONE
static const lfm_type_traits traits[LFM_TYPE_COUNT] = {
    /*                    name        elems      bytes               quant   vec_dot         to_float                  from_float */
    [LFM_TYPE_F32]     = {"f32",      1,         4,                  false,  LFM_TYPE_F32,   lfm_dequantize_row_f32,   lfm_quantize_row_f32},
    [LFM_TYPE_F16]     = {"f16",      1,         2,                  false,  LFM_TYPE_F32,   lfm_dequantize_row_f16,   lfm_quantize_row_f16},
    [LFM_TYPE_BF16]    = {"bf16",     1,         2,                  false,  LFM_TYPE_F32,   lfm_dequantize_row_bf16,  lfm_quantize_row_bf16},
    [LFM_TYPE_Q4_0]    = {"q4_0",     LFM_QK,    B(lfm_block_q4_0),  true,   LFM_TYPE_Q8_0,  lfm_dequantize_row_q4_0,  lfm_quantize_row_q4_0},
    [LFM_TYPE_Q4_1]    = {"q4_1",     LFM_QK,    B(lfm_block_q4_1),  true,   LFM_TYPE_Q8_1,  lfm_dequantize_row_q4_1,  lfm_quantize_row_q4_1},
    [LFM_TYPE_Q5_0]    = {"q5_0",     LFM_QK,    B(lfm_block_q5_0),  true,   LFM_TYPE_Q8_0,  lfm_dequantize_row_q5_0,  lfm_quantize_row_q5_0},
    [LFM_TYPE_Q5_1]    = {"q5_1",     LFM_QK,    B(lfm_block_q5_1),  true,   LFM_TYPE_Q8_1,  lfm_dequantize_row_q5_1,  lfm_quantize_row_q5_1},
    [LFM_TYPE_Q8_0]    = {"q8_0",     LFM_QK,    B(lfm_block_q8_0),  true,   LFM_TYPE_Q8_0,  lfm_dequantize_row_q8_0,  lfm_quantize_row_q8_0},
    [LFM_TYPE_Q8_1]    = {"q8_1",     LFM_QK,    B(lfm_block_q8_1),  true,   LFM_TYPE_Q8_1,  NULL,                     lfm_quantize_row_q8_1},
    [LFM_TYPE_Q2_K]    = {"q2_K",     LFM_QK_K,  B(lfm_block_q2_K),  true,   LFM_TYPE_Q8_K,  lfm_dequantize_row_q2_K,  NULL},
    [LFM_TYPE_Q3_K]    = {"q3_K",     LFM_QK_K,  B(lfm_block_q3_K),  true,   LFM_TYPE_Q8_K,  lfm_dequantize_row_q3_K,  NULL},
    [LFM_TYPE_Q4_K]    = {"q4_K",     LFM_QK_K,  B(lfm_block_q4_K),  true,   LFM_TYPE_Q8_K,  lfm_dequantize_row_q4_K,  lfm_quantize_row_q4_K},
    [LFM_TYPE_Q5_K]    = {"q5_K",     LFM_QK_K,  B(lfm_block_q5_K),  true,   LFM_TYPE_Q8_K,  lfm_dequantize_row_q5_K,  lfm_quantize_row_q5_K},
    [LFM_TYPE_Q6_K]    = {"q6_K",     LFM_QK_K,  B(lfm_block_q6_K),  true,   LFM_TYPE_Q8_K,  lfm_dequantize_row_q6_K,  lfm_quantize_row_q6_K},
    [LFM_TYPE_Q8_K]    = {"q8_K",     LFM_QK_K,  B(lfm_block_q8_K),  true,   LFM_TYPE_Q8_K,  NULL,                     lfm_quantize_row_q8_K},
    /* named only */
    [LFM_TYPE_IQ2_XXS] = {"iq2_xxs",  256,       66,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ2_XS]  = {"iq2_xs",   256,       74,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ3_XXS] = {"iq3_xxs",  256,       98,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ1_S]   = {"iq1_s",    256,       50,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ4_NL]  = {"iq4_nl",   32,        18,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ3_S]   = {"iq3_s",    256,       110,                true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ2_S]   = {"iq2_s",    256,       82,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ4_XS]  = {"iq4_xs",   256,       136,                true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_I8]      = {"i8",       1,         1,                  false,  NONE,           NULL,                     NULL},
    [LFM_TYPE_I16]     = {"i16",      1,         2,                  false,  NONE,           NULL,                     NULL},
    [LFM_TYPE_I32]     = {"i32",      1,         4,                  false,  NONE,           NULL,                     NULL},
    [LFM_TYPE_I64]     = {"i64",      1,         8,                  false,  NONE,           NULL,                     NULL},
    [LFM_TYPE_F64]     = {"f64",      1,         8,                  false,  NONE,           NULL,                     NULL},
    [LFM_TYPE_IQ1_M]   = {"iq1_m",    256,       56,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_TQ1_0]   = {"tq1_0",    256,       54,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_TQ2_0]   = {"tq2_0",    256,       66,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_MXFP4]   = {"mxfp4",    32,        17,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_NVFP4]   = {"nvfp4",    64,        36,                 true,   NONE,           NULL,                     NULL},
    [LFM_TYPE_Q1_0]    = {"q1_0",     128,       18,                 true,   NONE,           NULL,                     NULL},
};
#undef B
#undef NONE

const lfm_type_traits *lfm_type_traits_get(lfm_type t) {
    if ((int)t < 0 || (int)t >= LFM_TYPE_COUNT || !traits[t].name) return NULL;
    return &traits[t];
}

const char *lfm_type_name(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt ? tt->name : NULL;
}

int64_t lfm_type_block_elems(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt ? tt->block_elems : 0;
}

size_t lfm_type_block_bytes(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt ? tt->block_bytes : 0;
}

bool lfm_type_is_quantized(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt && tt->is_quantized;
}

lfm_type lfm_type_vec_dot_type(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt ? tt->vec_dot_type : LFM_TYPE_NONE;
}

bool lfm_type_is_supported(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    return tt && (tt->to_float || tt->from_float);
}

bool lfm_type_has_matmul(lfm_type t) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    if (!tt || tt->vec_dot_type == LFM_TYPE_NONE) return false;
    if (!tt->is_quantized) return lfm_kernels_get()->gemm[t] != NULL; /* F32, F16, BF16 */
    return lfm_qkernels_get()->mm[t] != NULL;
}

/* ---- rows to and from float ---- */

static lfm_status check_row(const lfm_type_traits *tt, lfm_type t, int64_t n, const char *what) {
    if (!tt) return lfm_fail(LFM_ERR_UNSUPPORTED, "%s: unknown tensor type %d", what, (int)t);
    if (n < 0 || n % tt->block_elems != 0)
        return lfm_fail(LFM_ERR_ARG, "%s %s: %lld elements is not a multiple of the block size %lld", what,
                        tt->name, (long long)n, (long long)tt->block_elems);
    return LFM_OK;
}

lfm_status lfm_dequantize_row(lfm_type t, const void *src, float *dst, int64_t n) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    lfm_status st = check_row(tt, t, n, "dequantize");
    if (st != LFM_OK) return st;
    if (!tt->to_float) {
        if (tt->vec_dot_type == t)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "dequantize: type %s is an activation format, not a weight type",
                            tt->name);
        return lfm_fail(LFM_ERR_UNSUPPORTED, "dequantize: liquidlfm has no decoder for type %s", tt->name);
    }
    tt->to_float(src, dst, n);
    return LFM_OK;
}

lfm_status lfm_quantize_row(lfm_type t, const float *src, void *dst, int64_t n) {
    const lfm_type_traits *tt = lfm_type_traits_get(t);
    lfm_status st = check_row(tt, t, n, "quantize");
    if (st != LFM_OK) return st;
    if (!tt->from_float) { /* name the weight types that have one, from the table */
        char list[256] = "";
        size_t len = 0;
        for (int i = 0; i < LFM_TYPE_COUNT; i++)
            if (traits[i].from_float && traits[i].to_float && len < sizeof list)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", traits[i].name);
        return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize: no quantizer for type %s (supported: %s)", tt->name, list);
    }
    tt->from_float(src, dst, n);
    return LFM_OK;
}

/* ---- kernel levels: each builds on the one below; the best this CPU has is used ---- */

static lfm_qkernels levels[LFM_QLEVEL_COUNT];
static bool level_ok[LFM_QLEVEL_COUNT];
static lfm_qlevel level_used = LFM_QLEVEL_REF;
static lfm_once_flag levels_once = LFM_ONCE_INIT;

/* Levels in the order each builds on the one before; a level absent from this CPU or build is
 * skipped, so the next one builds on the last present. */
static const lfm_qlevel level_chain[] = {
    LFM_QLEVEL_REF,
#if defined(LFM_IS_X86)
    LFM_QLEVEL_AVX2, LFM_QLEVEL_AVXVNNI, LFM_QLEVEL_AVX512, LFM_QLEVEL_AVX512ZMM,
#endif
#if defined(LFM_IS_ARM64)
    LFM_QLEVEL_NEON, LFM_QLEVEL_DOTPROD, LFM_QLEVEL_I8MM,
#endif
};

static const char *const level_names[LFM_QLEVEL_COUNT] = {"ref", "avx2", "avx512", "neon", "dotprod", "i8mm", "avxvnni", "avx512zmm"};

static bool level_present(lfm_qlevel l, const lfm_cpu_features *f) {
    switch (l) {
    case LFM_QLEVEL_REF: return true;
    case LFM_QLEVEL_AVX2: return f->avx2 && f->fma && f->f16c;
    case LFM_QLEVEL_AVXVNNI: return f->avx2 && f->fma && f->f16c && f->avxvnni;
    case LFM_QLEVEL_AVX512:
    case LFM_QLEVEL_AVX512ZMM: return f->avx2 && f->fma && f->f16c && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
    case LFM_QLEVEL_NEON: return f->neon;
    case LFM_QLEVEL_DOTPROD: return f->neon && f->dotprod;
    case LFM_QLEVEL_I8MM: return f->neon && f->dotprod && f->i8mm;
    default: return false;
    }
}

static void level_init(lfm_qlevel l, lfm_qkernels *k) {
    switch (l) {
    case LFM_QLEVEL_REF: lfm_qkernels_init_ref(k); break;
#if defined(LFM_IS_X86)
    case LFM_QLEVEL_AVX2: lfm_qkernels_init_avx2(k); break;
    case LFM_QLEVEL_AVXVNNI: lfm_qkernels_init_avxvnni(k); break;
    case LFM_QLEVEL_AVX512: lfm_qkernels_init_avx512(k); break;
    case LFM_QLEVEL_AVX512ZMM: lfm_qkernels_init_avx512zmm(k); break;
#endif
#if defined(LFM_IS_ARM64)
    case LFM_QLEVEL_NEON: lfm_qkernels_init_neon(k); break;
    case LFM_QLEVEL_DOTPROD: lfm_qkernels_init_neon_dotprod(k); break;
    case LFM_QLEVEL_I8MM: lfm_qkernels_init_neon_i8mm(k); break;
#endif
    default: break;
    }
    k->name = level_names[l];
}

static void levels_init(void) {
    const lfm_cpu_features *f = lfm_cpu();
    /* LFM_KERNELS names a level to stop at (the best present one at or below it in the chain) */
    int stop = -1;
    for (size_t i = 0; i < sizeof level_chain / sizeof level_chain[0]; i++)
        if (f->kernels_env[0] && strcmp(f->kernels_env, level_names[level_chain[i]]) == 0) stop = (int)i;
    lfm_qlevel below = LFM_QLEVEL_REF;
    for (size_t i = 0; i < sizeof level_chain / sizeof level_chain[0]; i++) {
        lfm_qlevel l = level_chain[i];
        if (!level_present(l, f)) continue;
        if (l != LFM_QLEVEL_REF) levels[l] = levels[below];
        level_init(l, &levels[l]);
        level_ok[l] = true;
        below = l;
        /* unforced, the 512-bit kernels only where 512-bit operations run at full width (cpu.c) */
        const bool preferred = l != LFM_QLEVEL_AVX512ZMM || f->avx512_full_width;
        if (stop < 0 ? preferred : (int)i <= stop) level_used = l;
    }
}

const char *lfm_qlevel_name(lfm_qlevel level) {
    return (int)level >= 0 && level < LFM_QLEVEL_COUNT ? level_names[level] : NULL;
}

const lfm_qkernels *lfm_qkernels_level(lfm_qlevel level) {
    lfm_once(&levels_once, levels_init);
    return (int)level >= 0 && level < LFM_QLEVEL_COUNT && level_ok[level] ? &levels[level] : NULL;
}

lfm_qlevel lfm_qkernels_level_in_use(void) {
    lfm_once(&levels_once, levels_init);
    return level_used;
}

const lfm_qkernels *lfm_qkernels_get(void) {
    lfm_once(&levels_once, levels_init);
    return &levels[level_used];
}

const char *lfm_kernel_level(void) { return lfm_qkernels_get()->name; }

const lfm_qkernels *lfm_qkernels_ref(void) { return lfm_qkernels_level(LFM_QLEVEL_REF); }
