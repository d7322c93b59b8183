/* quants_avxvnni.c — the AVX-VNNI level of quants_x86.h: AVX2 plus the VEX-encoded 256-bit
 * vpdpbusd / vpdpwssd (Intel Alder Lake and later client cores, AMD Zen 5). */
#if defined(__x86_64__) || defined(__i386__)
#define QX86_INIT lfm_qkernels_init_avxvnni
#define QX86_VNNI_VEX
#include "quants_x86.h"
#endif
