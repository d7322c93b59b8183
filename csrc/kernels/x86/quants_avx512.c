/* quants_avx512.c — AVX-512 (+VNNI) quantized kernels. Nothing is specialised for AVX-512 yet: the
 * AVX2 kernels (already chosen when this runs) stay in place. Kept so the dispatch has its slot. */
/* x86 only: in a macOS universal2 build every file is compiled for arm64 too */
#if defined(__x86_64__) || defined(__i386__)
#include "kernels/kernels.h"

void lfm_qkernels_init_avx512(lfm_qkernels *k) { (void)k; }

#endif /* x86 */
