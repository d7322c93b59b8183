/* quants_avx2.c — the AVX2 + FMA + F16C level of quants_x86.h. */
/* x86 only: in a macOS universal2 build every file is compiled for arm64 too */
#if defined(__x86_64__) || defined(__i386__)
#define QX86_INIT lfm_qkernels_init_avx2
#include "quants_x86.h"
#endif
