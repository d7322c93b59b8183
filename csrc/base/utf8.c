/* utf8.c — validation of whole buffers; lfm_utf8_decode / lfm_utf8_encode are inline in base.h. */
#include "base/base.h"

size_t lfm_utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { /* ASCII fast path */
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = lfm_utf8_decode(s + i, n - i, &cp);
        if (!len) return i;
        i += len;
    }
    return n;
}
