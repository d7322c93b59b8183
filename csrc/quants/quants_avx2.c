/* quants_avx2.c — AVX2 + FMA + F16C quantized kernels. */
#include "quants.h"

#include <immintrin.h>

void lfm_qkernels_init_avx2(lfm_qkernels *k) { k->name = "avx2"; }
