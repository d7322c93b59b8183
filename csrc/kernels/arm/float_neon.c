/* float_neon.c — arm64 float kernels (placeholder until written: the table is empty). */
#if defined(__aarch64__)
#include "kernels/kernels.h"
const lfm_kernels lfm_kernels_neon = {.name = "neon"};
#endif
