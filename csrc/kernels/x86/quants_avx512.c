/* quants_avx512.c — the AVX-512 level of quants_x86.h: F/BW/VL + VNNI, the 256-bit VNNI
 * instructions EVEX-encoded (Intel Ice Lake / Sapphire Rapids and later servers, AMD Zen 4/5).
 * 256-bit vectors on purpose: Zen 4 splits 512-bit operations in two, and the 8-row interleaved
 * layouts are 256 bits wide; the gain is VNNI's fused multiply-sum and 32 registers. */
#if defined(__x86_64__) || defined(__i386__)
#define QX86_INIT lfm_qkernels_init_avx512
#define QX86_VNNI_EVEX
#include "quants_x86.h"
#endif
