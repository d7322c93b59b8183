/* quants_avx512zmm.c — the AVX-512 level with 512-bit vectors where they pay: the avx512 level's
 * kernels, except the 8-row interleaved (X8) prefill kernels, which here take two 8-row groups per
 * 512-bit register (lane r = row r of 16; Q4_0, Q8_0, Q4_K, Q5_K and Q6_K: quants_x86.h under QX86_ZMM). Every
 * int32 lane and float operation of a row is the 256-bit kernel's, so the floats are the same bits.
 * The default only where 512-bit operations run at full width (base/cpu.c: Intel, AMD Zen 5 servers
 * and desktops); LFM_KERNELS=avx512zmm forces it. */
#if defined(__x86_64__) || defined(__i386__)
#define QX86_INIT lfm_qkernels_init_avx512zmm
#define QX86_VNNI_EVEX
#define QX86_ZMM
#include "quants_x86.h"
#endif
