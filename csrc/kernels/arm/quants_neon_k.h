/* quants_neon_k.h — arm64 kernels of the K-quants (placeholder until written). */
static void neon_init_k(lfm_qkernels *k) { (void)k; }
