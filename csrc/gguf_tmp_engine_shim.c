/* TEMPORARY (gguf branch only, removed once the engine's model.c is merged): weak stand-ins so
 * the extension imports before the engine lands. The engine's strong definitions win at link. */
#include "internal.h"

#include <stdlib.h>

__attribute__((weak)) lfm_status lfm_model_own(struct lfm_model *m, void *ptr) {
    if (m->n_owned == m->cap_owned) {
        int32_t cap = m->cap_owned ? 2 * m->cap_owned : 16;
        void **p = realloc(m->owned, (size_t)cap * sizeof *p);
        if (!p) return lfm_fail(LFM_ERR_OOM, "out of memory");
        m->owned = p;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = ptr;
    return LFM_OK;
}
