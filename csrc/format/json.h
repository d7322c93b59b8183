/* json.h — a small strict JSON reader (RFC 8259) for config.json and safetensors headers. */
#ifndef LFM_JSON_H
#define LFM_JSON_H

#include "base/base.h"

typedef enum {
    LFM_JSON_NULL, LFM_JSON_BOOL, LFM_JSON_NUMBER, LFM_JSON_STRING, LFM_JSON_ARRAY, LFM_JSON_OBJECT,
} lfm_json_type;

typedef struct lfm_json {
    lfm_json_type type;
    bool b;                 /* BOOL */
    double num;             /* NUMBER */
    bool is_int;            /* NUMBER written without fraction/exponent and fits int64 */
    int64_t i;              /* NUMBER when is_int */
    char *str;              /* STRING: decoded UTF-8, NUL-terminated (may contain NULs: use len) */
    size_t len;
    int64_t n;              /* ARRAY / OBJECT: number of items */
    struct lfm_json **items;
    char **keys;            /* OBJECT: decoded keys (NUL-terminated), unique */
} lfm_json;

/* Parse text[0..len). what names the source in error messages ("config.json"). Rejects invalid
 * UTF-8, bad escapes, unpaired surrogates, duplicate keys, trailing garbage, nesting > 64. */
lfm_status lfm_json_parse(const char *text, size_t len, const char *what, lfm_json **out);
void lfm_json_free(lfm_json *j);
/* Member of an object by key, NULL if absent (or j is not an object). */
const lfm_json *lfm_json_get(const lfm_json *j, const char *key);

#endif
