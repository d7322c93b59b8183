/* quants_avx512.c — AVX-512 (+VNNI) quantized kernels. Nothing is specialised for AVX-512 yet: the
 * AVX2 kernels (already chosen when this runs) stay in place. Kept so the dispatch has its slot. */
#include "kernels/kernels.h"

void lfm_qkernels_init_avx512(lfm_qkernels *k) { (void)k; }
