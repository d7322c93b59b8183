/* model_gguf.c — GGUF → struct lfm_model (owned by the GGUF work; placeholder until it lands). */
#include "internal.h"

lfm_status lfm_model_load_gguf(struct lfm_model *m, const char *path) {
    (void)m;
    return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': GGUF loading is not built yet", path);
}
