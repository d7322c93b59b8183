/* requantize.c — quantize-on-load (owned by the GGUF/quantize work; placeholder until it lands). */
#include "internal.h"

lfm_status lfm_model_requantize(struct lfm_model *m, lfm_type type, int n_threads) {
    (void)m;
    (void)n_threads;
    return lfm_fail(LFM_ERR_UNSUPPORTED, "quantize on load to %d is not built yet", (int)type);
}
