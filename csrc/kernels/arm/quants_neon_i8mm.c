/* quants_neon_i8mm.c — the arm64 quantized kernels at one level: NEON + SDOT + SMMLA (i8mm: Cortex-A510/A710/X2 and later, Neoverse V1/N2, Apple M2+).
 *
 * One source for the three levels: quants_neon_32.h and quants_neon_k.h, compiled here with this
 * level's flags (-march=armv8.2-a+dotprod+i8mm, setup.py), choose their integer dot products from
 * __ARM_FEATURE_DOTPROD and __ARM_FEATURE_MATMUL_INT8. */
#if defined(__aarch64__)
#include "kernels/kernels.h"

#include <arm_neon.h>

#include "kernels/arm/neon_common.h"
#include "kernels/arm/quants_neon_32.h"
#include "kernels/arm/quants_neon_k.h"

void lfm_qkernels_init_neon_i8mm(lfm_qkernels *k) {
    neon_init_32(k);
    neon_init_k(k);
}
#endif
