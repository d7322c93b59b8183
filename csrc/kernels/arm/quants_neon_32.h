/* quants_neon_32.h — arm64 kernels of the 32-element block types (placeholder until written). */
static void neon_init_32(lfm_qkernels *k) { (void)k; }
