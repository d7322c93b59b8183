/* gguf.c — GGUF reader: mmap the file, validate the whole header once, then hand out views.
 *
 * Layout (little-endian, versions 2 and 3):
 *   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 type | value }
 *   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   padding to general.alignment (default 32) | tensor data (offsets relative to here)
 * A string is u64 length + bytes (no NUL); an array is u32 element type + u64 count + elements.
 *
 * Every count and length is checked against the bytes left in the file before it is used, so a
 * lying header can make us fail but never read outside the mapping or allocate absurd amounts. */
#include "format/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8  /* arrays of arrays nested deeper than this are rejected */
#define GGUF_MAX_DIMS 4

typedef struct {
    char *key;                 /* NUL-terminated copy (validated UTF-8, no NUL inside) */
    lfm_gguf_value_type type;
    const uint8_t *value;      /* first byte of the value in the mapping */
    size_t value_size;         /* bytes the value occupies */
    /* arrays */
    lfm_gguf_value_type elem;
    uint64_t n;
    uint64_t *str_off;         /* string arrays: offset of element j's u64 length from value */
} gguf_kv;

typedef struct {
    char *name;
    lfm_type type;
    int32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t offset;           /* relative to the data section */
    size_t nbytes;
} gguf_tensor;

struct lfm_gguf {
    lfm_mapping map;           /* owned until lfm_gguf_take_mapping */
    const uint8_t *base;       /* the mapping's bytes (stay valid while whoever owns it keeps it) */
    char *path;
    uint32_t version;
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_start;       /* file offset of the data section */
};

/* ---- bounded cursor ---- */

typedef struct {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *path;
} cursor;

static uint64_t left(const cursor *c) { return c->size - c->pos; }

static lfm_status need(const cursor *c, uint64_t n, const char *what) {
    if (n > left(c))
        return lfm_fail(LFM_ERR_FORMAT,
                        "'%s': truncated GGUF: %s needs %llu bytes at offset %llu, file has %llu left",
                        c->path, what, (unsigned long long)n, (unsigned long long)c->pos,
                        (unsigned long long)left(c));
    return LFM_OK;
}

static uint32_t rd_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static lfm_status take_u32(cursor *c, uint32_t *v, const char *what) {
    lfm_status s = need(c, 4, what);
    if (s) return s;
    *v = rd_u32(c->base + c->pos);
    c->pos += 4;
    return LFM_OK;
}

static lfm_status take_u64(cursor *c, uint64_t *v, const char *what) {
    lfm_status s = need(c, 8, what);
    if (s) return s;
    *v = rd_u64(c->base + c->pos);
    c->pos += 8;
    return LFM_OK;
}

/* A string: sets *p and *len to the bytes in the mapping and advances. */
static lfm_status take_str(cursor *c, const uint8_t **p, uint64_t *len, const char *what) {
    lfm_status s = take_u64(c, len, what);
    if (s) return s;
    if (*len > left(c))
        return lfm_fail(LFM_ERR_FORMAT,
                        "'%s': %s at offset %llu claims %llu bytes but only %llu are left in the file",
                        c->path, what, (unsigned long long)(c->pos - 8), (unsigned long long)*len,
                        (unsigned long long)left(c));
    *p = c->base + c->pos;
    c->pos += *len;
    return LFM_OK;
}

/* ---- helpers ---- */

static bool utf8_valid(const uint8_t *s, uint64_t n) { return lfm_utf8_valid_prefix(s, (size_t)n) == n; }

uint64_t lfm_gguf_scalar_size(uint32_t t) {
    switch (t) {
    case LFM_GGUF_UINT8: case LFM_GGUF_INT8: case LFM_GGUF_BOOL: return 1;
    case LFM_GGUF_UINT16: case LFM_GGUF_INT16: return 2;
    case LFM_GGUF_UINT32: case LFM_GGUF_INT32: case LFM_GGUF_FLOAT32: return 4;
    case LFM_GGUF_UINT64: case LFM_GGUF_INT64: case LFM_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

static bool valid_value_type(uint32_t t) { return t <= LFM_GGUF_FLOAT64; }

static char *dup_bytes(const uint8_t *p, uint64_t n) {
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

/* Skip (and validate) one value of type t; depth counts enclosing arrays. */
static lfm_status skip_value(cursor *c, uint32_t t, int depth, const char *key) {
    uint64_t sz = lfm_gguf_scalar_size(t);
    if (sz) {
        lfm_status s = need(c, sz, key);
        if (s) return s;
        if (t == LFM_GGUF_BOOL && c->base[c->pos] > 1)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': bool value %u at offset %llu is not 0 or 1",
                            c->path, key, c->base[c->pos], (unsigned long long)c->pos);
        c->pos += sz;
        return LFM_OK;
    }
    if (t == LFM_GGUF_STRING) {
        const uint8_t *p = NULL;
        uint64_t n;
        return take_str(c, &p, &n, key);
    }
    if (t == LFM_GGUF_ARRAY) {
        if (depth >= GGUF_MAX_ARRAY_DEPTH)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': arrays nested deeper than %d levels", c->path,
                            key, GGUF_MAX_ARRAY_DEPTH);
        uint32_t et;
        uint64_t n;
        lfm_status s = take_u32(c, &et, key);
        if (s || (s = take_u64(c, &n, key))) return s;
        if (!valid_value_type(et))
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': unknown array element type %u", c->path, key, et);
        uint64_t esz = lfm_gguf_scalar_size(et);
        if (esz) {
            if (n > left(c) / esz)
                return lfm_fail(LFM_ERR_FORMAT,
                                "'%s': key '%s': array of %llu elements of %llu bytes exceeds the %llu bytes left",
                                c->path, key, (unsigned long long)n, (unsigned long long)esz,
                                (unsigned long long)left(c));
            if (et == LFM_GGUF_BOOL) {
                for (uint64_t j = 0; j < n; j++)
                    if (c->base[c->pos + j] > 1)
                        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': bool element %llu is not 0 or 1",
                                        c->path, key, (unsigned long long)j);
            }
            c->pos += n * esz;
            return LFM_OK;
        }
        /* strings and arrays take at least 8 bytes each: a cheap bound before looping */
        if (n > left(c) / 8)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': array claims %llu elements, more than the file holds",
                            c->path, key, (unsigned long long)n);
        for (uint64_t j = 0; j < n; j++) {
            s = skip_value(c, et, depth + 1, key);
            if (s) return s;
        }
        return LFM_OK;
    }
    return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': unknown value type %u", c->path, key, t);
}

/* ---- open ---- */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names must be unique: sort pointers and compare neighbours. */
static const char *find_duplicate(char **names, int64_t n, lfm_status *st) {
    *st = LFM_OK;
    if (n < 2) return NULL;
    char **tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp) {
        *st = lfm_fail(LFM_ERR_OOM, "out of memory checking %lld names", (long long)n);
        return NULL;
    }
    memcpy(tmp, names, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_str_ptr);
    const char *dup = NULL;
    for (int64_t i = 1; i < n && !dup; i++)
        if (strcmp(tmp[i - 1], tmp[i]) == 0) dup = tmp[i];
    free(tmp);
    return dup;
}

static lfm_status read_kvs(lfm_gguf *g, cursor *c) {
    for (int64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        const uint8_t *kp = NULL;
        uint64_t klen;
        char what[64];
        snprintf(what, sizeof what, "key %lld", (long long)i);
        lfm_status s = take_str(c, &kp, &klen, what);
        if (s) return s;
        if (klen == 0 || klen > 65535)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key %lld has length %llu (expected 1..65535)", g->path,
                            (long long)i, (unsigned long long)klen);
        if (memchr(kp, 0, (size_t)klen) || !utf8_valid(kp, klen))
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key %lld at offset %llu is not valid UTF-8 text", g->path,
                            (long long)i, (unsigned long long)(c->pos - klen));
        if (!(kv->key = dup_bytes(kp, klen))) return lfm_fail(LFM_ERR_OOM, "out of memory reading keys");
        uint32_t t;
        if ((s = take_u32(c, &t, kv->key))) return s;
        if (!valid_value_type(t))
            return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': unknown value type %u", g->path, kv->key, t);
        kv->type = (lfm_gguf_value_type)t;
        kv->value = c->base + c->pos;
        uint64_t start = c->pos;
        if (t == LFM_GGUF_ARRAY) {
            /* peek the header, then index string arrays for random access */
            cursor h = *c;
            uint32_t et;
            if ((s = take_u32(&h, &et, kv->key)) || (s = take_u64(&h, &kv->n, kv->key))) return s;
            kv->elem = (lfm_gguf_value_type)et;
            if ((s = skip_value(c, t, 0, kv->key))) return s;
            if (et == LFM_GGUF_STRING && kv->n > 0) {
                kv->str_off = malloc((size_t)kv->n * sizeof *kv->str_off);
                if (!kv->str_off) return lfm_fail(LFM_ERR_OOM, "out of memory indexing '%s'", kv->key);
                uint64_t p = 12;
                for (uint64_t j = 0; j < kv->n; j++) {
                    kv->str_off[j] = p;
                    p += 8 + rd_u64(kv->value + p); /* bounds were checked by skip_value */
                }
            }
        } else if ((s = skip_value(c, t, 0, kv->key))) {
            return s;
        }
        kv->value_size = (size_t)(c->pos - start);
    }
    lfm_status st;
    char **names = malloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof *names);
    if (!names) return lfm_fail(LFM_ERR_OOM, "out of memory");
    for (int64_t i = 0; i < g->n_kv; i++) names[i] = g->kv[i].key;
    const char *dup = find_duplicate(names, g->n_kv, &st);
    free(names);
    if (st) return st;
    if (dup) return lfm_fail(LFM_ERR_FORMAT, "'%s': duplicated metadata key '%s'", g->path, dup);
    return LFM_OK;
}

static lfm_status read_tensor_infos(lfm_gguf *g, cursor *c) {
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        const uint8_t *np = NULL;
        uint64_t nlen;
        char what[64];
        snprintf(what, sizeof what, "name of tensor %lld", (long long)i);
        lfm_status s = take_str(c, &np, &nlen, what);
        if (s) return s;
        if (nlen == 0 || nlen > 255 || memchr(np, 0, (size_t)nlen) || !utf8_valid(np, nlen))
            return lfm_fail(LFM_ERR_FORMAT,
                            "'%s': tensor %lld: name of %llu bytes is not 1..255 bytes of UTF-8 text", g->path,
                            (long long)i, (unsigned long long)nlen);
        if (!(t->name = dup_bytes(np, nlen))) return lfm_fail(LFM_ERR_OOM, "out of memory reading tensor names");
        uint32_t nd;
        if ((s = take_u32(c, &nd, t->name))) return s;
        if (nd < 1 || nd > GGUF_MAX_DIMS)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': %u dimensions (expected 1..%d)", g->path,
                            t->name, nd, GGUF_MAX_DIMS);
        t->n_dims = (int32_t)nd;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t ne;
            if ((s = take_u64(c, &ne, t->name))) return s;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': dimension %u is %llu (expected > 0)", g->path,
                                t->name, d, (unsigned long long)ne);
            t->ne[d] = (int64_t)ne;
        }
        uint32_t ty;
        if ((s = take_u32(c, &ty, t->name)) || (s = take_u64(c, &t->offset, t->name))) return s;
        t->type = (lfm_type)ty;
        if (ty > 1023 || !lfm_type_name(t->type))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': tensor '%s' has type id %u, which liquidlfm does not support",
                            g->path, t->name, ty);
        if (!lfm_type_is_supported(t->type))
            return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': tensor '%s' has type %s (id %u), which liquidlfm does not support",
                            g->path, t->name, lfm_type_name(t->type), ty);
        int64_t be = lfm_type_block_elems(t->type);
        size_t bb = lfm_type_block_bytes(t->type);
        if (t->ne[0] % be != 0)
            return lfm_fail(LFM_ERR_FORMAT,
                            "'%s': tensor '%s': row length %lld is not a multiple of the %s block size %lld",
                            g->path, t->name, (long long)t->ne[0], lfm_type_name(t->type), (long long)be);
        /* nbytes = ne0/be*bb * ne1 * ne2 * ne3, overflow-checked, and bounded by the file size */
        uint64_t nb = (uint64_t)(t->ne[0] / be);
        bool ovf = __builtin_mul_overflow(nb, (uint64_t)bb, &nb);
        for (int d = 1; d < GGUF_MAX_DIMS && !ovf; d++) ovf = __builtin_mul_overflow(nb, (uint64_t)t->ne[d], &nb);
        if (ovf || nb > c->size)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': shape [%lld, %lld, %lld, %lld] is larger than the file",
                            g->path, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                            (long long)t->ne[3]);
        t->nbytes = (size_t)nb;
    }
    lfm_status st;
    char **names = malloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof *names);
    if (!names) return lfm_fail(LFM_ERR_OOM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++) names[i] = g->tensors[i].name;
    const char *dup = find_duplicate(names, g->n_tensors, &st);
    free(names);
    if (st) return st;
    if (dup) return lfm_fail(LFM_ERR_FORMAT, "'%s': duplicated tensor name '%s'", g->path, dup);
    return LFM_OK;
}

typedef struct {
    uint64_t offset, nbytes;
    int64_t idx;
} span;

static int cmp_span(const void *a, const void *b) {
    uint64_t x = ((const span *)a)->offset, y = ((const span *)b)->offset;
    return x < y ? -1 : x > y;
}

static lfm_status check_data(lfm_gguf *g) {
    uint64_t data_size = g->map.size - g->data_start;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                            g->path, t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return lfm_fail(LFM_ERR_FORMAT,
                            "'%s': tensor '%s': data [%llu, +%llu) lies outside the %llu-byte data section "
                            "(file truncated or offset wrong)",
                            g->path, t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                            (unsigned long long)data_size);
    }
    if (g->n_tensors < 2) return LFM_OK;
    /* no two tensors may share bytes */
    span *sp = malloc((size_t)g->n_tensors * sizeof *sp);
    if (!sp) return lfm_fail(LFM_ERR_OOM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++) sp[i] = (span){g->tensors[i].offset, g->tensors[i].nbytes, i};
    qsort(sp, (size_t)g->n_tensors, sizeof *sp, cmp_span);
    lfm_status s = LFM_OK;
    for (int64_t k = 1; k < g->n_tensors; k++) {
        if (sp[k - 1].offset + sp[k - 1].nbytes > sp[k].offset) {
            s = lfm_fail(LFM_ERR_FORMAT, "'%s': tensors '%s' and '%s' overlap in the data section", g->path,
                         g->tensors[sp[k - 1].idx].name, g->tensors[sp[k].idx].name);
            break;
        }
    }
    free(sp);
    return s;
}

static lfm_status parse(lfm_gguf *g) {
    cursor c = {g->map.addr, g->map.size, 0, g->path};
    lfm_status s = need(&c, 4, "magic");
    if (s) return lfm_fail(LFM_ERR_FORMAT, "'%s' is not a GGUF file (%llu bytes, too short for the magic)", g->path,
                           (unsigned long long)g->map.size);
    if (memcmp(c.base, "GGUF", 4) != 0)
        return lfm_fail(LFM_ERR_FORMAT, "'%s' is not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                        g->path, c.base[0], c.base[1], c.base[2], c.base[3]);
    c.pos = 4;
    if ((s = take_u32(&c, &g->version, "version"))) return s;
    if (g->version == 1)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': GGUF version 1 is not supported (expected 2 or 3; "
                        "re-convert the model with a current converter)", g->path);
    if (g->version != 2 && g->version != 3) {
        if (g->version == 0x02000000u || g->version == 0x03000000u)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': big-endian GGUF files are not supported", g->path);
        return lfm_fail(LFM_ERR_FORMAT, "'%s': unknown GGUF version %u (expected 2 or 3)", g->path, g->version);
    }
    uint64_t nt, nkv;
    if ((s = take_u64(&c, &nt, "tensor count")) || (s = take_u64(&c, &nkv, "metadata count"))) return s;
    /* each kv needs >= 13 bytes (8 length + 1 key byte + 4 type), each tensor info >= 29 */
    if (nkv > left(&c) / 13)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': header claims %llu metadata entries, more than the file can hold",
                        g->path, (unsigned long long)nkv);
    if (nt > left(&c) / 29)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': header claims %llu tensors, more than the file can hold", g->path,
                        (unsigned long long)nt);
    g->n_kv = (int64_t)nkv;
    g->n_tensors = (int64_t)nt;
    g->kv = calloc(nkv ? nkv : 1, sizeof *g->kv);
    g->tensors = calloc(nt ? nt : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return lfm_fail(LFM_ERR_OOM, "out of memory reading '%s'", g->path);
    if ((s = read_kvs(g, &c))) return s;

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ia = lfm_gguf_find_key(g, "general.alignment");
    if (ia >= 0) {
        if (g->kv[ia].type != LFM_GGUF_UINT32)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': general.alignment has value type %d (expected uint32)", g->path,
                            (int)g->kv[ia].type);
        uint32_t a = rd_u32(g->kv[ia].value);
        if (a == 0 || (a & (a - 1)) != 0)
            return lfm_fail(LFM_ERR_FORMAT, "'%s': general.alignment is %u (expected a power of two)", g->path, a);
        g->alignment = a;
    }
    if ((s = read_tensor_infos(g, &c))) return s;
    uint64_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (g->n_tensors > 0 && pad > left(&c))
        return lfm_fail(LFM_ERR_FORMAT, "'%s': truncated GGUF: the data section would start past the end of the file",
                        g->path);
    g->data_start = c.pos + (pad <= left(&c) ? pad : left(&c));
    return check_data(g);
}

lfm_status lfm_gguf_open(const char *path, lfm_gguf **out) {
    *out = NULL;
    lfm_gguf *g = calloc(1, sizeof *g);
    if (!g) return lfm_fail(LFM_ERR_OOM, "out of memory opening '%s'", path);
    g->path = dup_bytes((const uint8_t *)path, strlen(path));
    if (!g->path) {
        free(g);
        return lfm_fail(LFM_ERR_OOM, "out of memory opening '%s'", path);
    }
    lfm_status s = lfm_map_file(path, &g->map);
    g->base = g->map.addr;
    if (!s) s = parse(g);
    if (s) {
        lfm_gguf_close(g);
        return s;
    }
    *out = g;
    return LFM_OK;
}

void lfm_gguf_close(lfm_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].str_off);
        }
    if (g->tensors)
        for (int64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    lfm_unmap_file(&g->map);
    free(g->path);
    free(g);
}

/* ---- accessors ---- */

uint32_t lfm_gguf_version(const lfm_gguf *g) { return g->version; }
int64_t lfm_gguf_n_kv(const lfm_gguf *g) { return g->n_kv; }
int64_t lfm_gguf_n_tensors(const lfm_gguf *g) { return g->n_tensors; }
uint64_t lfm_gguf_alignment(const lfm_gguf *g) { return g->alignment; }
uint64_t lfm_gguf_data_offset(const lfm_gguf *g) { return g->data_start; }

int64_t lfm_gguf_find_key(const lfm_gguf *g, const char *key) {
    for (int64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return i;
    return -1;
}

static bool kv_ok(const lfm_gguf *g, int64_t i) { return g && i >= 0 && i < g->n_kv; }

const char *lfm_gguf_key(const lfm_gguf *g, int64_t i) { return kv_ok(g, i) ? g->kv[i].key : NULL; }

lfm_gguf_value_type lfm_gguf_kv_type(const lfm_gguf *g, int64_t i) {
    return kv_ok(g, i) ? g->kv[i].type : (lfm_gguf_value_type)-1;
}

lfm_status lfm_gguf_kv_data(const lfm_gguf *g, int64_t i, const void **data, size_t *size) {
    if (!kv_ok(g, i)) return lfm_fail(LFM_ERR_ARG, "metadata index %lld out of range", (long long)i);
    *data = g->kv[i].value;
    *size = g->kv[i].value_size;
    return LFM_OK;
}

/* Widen a scalar at p of type t. */
static bool scalar_int(uint32_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case LFM_GGUF_UINT8: case LFM_GGUF_BOOL: *out = p[0]; return true;
    case LFM_GGUF_INT8: *out = (int8_t)p[0]; return true;
    case LFM_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case LFM_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case LFM_GGUF_UINT32: *out = rd_u32(p); return true;
    case LFM_GGUF_INT32: *out = (int32_t)rd_u32(p); return true;
    case LFM_GGUF_UINT64: {
        uint64_t v = rd_u64(p);
        if (v > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v;
        return true;
    }
    case LFM_GGUF_INT64: *out = (int64_t)rd_u64(p); return true;
    default: return false;
    }
}

static bool scalar_float(uint32_t t, const uint8_t *p, double *out) {
    if (t == LFM_GGUF_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        *out = f;
        return true;
    }
    if (t == LFM_GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    int64_t v;
    if (scalar_int(t, p, &v)) {
        *out = (double)v;
        return true;
    }
    return false;
}

lfm_status lfm_gguf_get_int(const lfm_gguf *g, int64_t i, int64_t *out) {
    if (!kv_ok(g, i)) return lfm_fail(LFM_ERR_ARG, "metadata index %lld out of range", (long long)i);
    if (!scalar_int(g->kv[i].type, g->kv[i].value, out))
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s' has value type %d, expected an integer that fits int64",
                        g->path, g->kv[i].key, (int)g->kv[i].type);
    return LFM_OK;
}

lfm_status lfm_gguf_get_float(const lfm_gguf *g, int64_t i, double *out) {
    if (!kv_ok(g, i)) return lfm_fail(LFM_ERR_ARG, "metadata index %lld out of range", (long long)i);
    if (!scalar_float(g->kv[i].type, g->kv[i].value, out))
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s' has value type %d, expected a number", g->path,
                        g->kv[i].key, (int)g->kv[i].type);
    return LFM_OK;
}

lfm_status lfm_gguf_get_str(const lfm_gguf *g, int64_t i, const char **s, uint64_t *len) {
    if (!kv_ok(g, i)) return lfm_fail(LFM_ERR_ARG, "metadata index %lld out of range", (long long)i);
    if (g->kv[i].type != LFM_GGUF_STRING)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s' has value type %d, expected a string", g->path,
                        g->kv[i].key, (int)g->kv[i].type);
    *len = rd_u64(g->kv[i].value);
    *s = (const char *)g->kv[i].value + 8;
    return LFM_OK;
}

lfm_status lfm_gguf_get_arr_info(const lfm_gguf *g, int64_t i, lfm_gguf_value_type *elem, uint64_t *n) {
    if (!kv_ok(g, i)) return lfm_fail(LFM_ERR_ARG, "metadata index %lld out of range", (long long)i);
    if (g->kv[i].type != LFM_GGUF_ARRAY)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s' has value type %d, expected an array", g->path,
                        g->kv[i].key, (int)g->kv[i].type);
    *elem = g->kv[i].elem;
    *n = g->kv[i].n;
    return LFM_OK;
}

static lfm_status arr_elem(const lfm_gguf *g, int64_t i, uint64_t j, const uint8_t **p) {
    if (!kv_ok(g, i)) return lfm_fail(LFM_ERR_ARG, "metadata index %lld out of range", (long long)i);
    const gguf_kv *kv = &g->kv[i];
    if (kv->type != LFM_GGUF_ARRAY)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s' is not an array", g->path, kv->key);
    if (j >= kv->n)
        return lfm_fail(LFM_ERR_ARG, "'%s': key '%s': index %llu out of range (%llu elements)", g->path, kv->key,
                        (unsigned long long)j, (unsigned long long)kv->n);
    uint64_t esz = lfm_gguf_scalar_size(kv->elem);
    if (esz) *p = kv->value + 12 + j * esz;
    else if (kv->elem == LFM_GGUF_STRING) *p = kv->value + kv->str_off[j];
    else
        return lfm_fail(LFM_ERR_UNSUPPORTED, "'%s': key '%s' is an array of arrays; element access is not supported",
                        g->path, kv->key);
    return LFM_OK;
}

lfm_status lfm_gguf_get_arr_int(const lfm_gguf *g, int64_t i, uint64_t j, int64_t *out) {
    const uint8_t *p = NULL;
    lfm_status s = arr_elem(g, i, j, &p);
    if (s) return s;
    if (!scalar_int(g->kv[i].elem, p, out))
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': element %llu is not an integer that fits int64", g->path,
                        g->kv[i].key, (unsigned long long)j);
    return LFM_OK;
}

lfm_status lfm_gguf_get_arr_float(const lfm_gguf *g, int64_t i, uint64_t j, double *out) {
    const uint8_t *p = NULL;
    lfm_status s = arr_elem(g, i, j, &p);
    if (s) return s;
    if (!scalar_float(g->kv[i].elem, p, out))
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s': element %llu is not a number", g->path, g->kv[i].key,
                        (unsigned long long)j);
    return LFM_OK;
}

lfm_status lfm_gguf_get_arr_str(const lfm_gguf *g, int64_t i, uint64_t j, const char **s, uint64_t *len) {
    const uint8_t *p = NULL;
    lfm_status st = arr_elem(g, i, j, &p);
    if (st) return st;
    if (g->kv[i].elem != LFM_GGUF_STRING)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': key '%s' is not an array of strings", g->path, g->kv[i].key);
    *len = rd_u64(p);
    *s = (const char *)p + 8;
    return LFM_OK;
}

int64_t lfm_gguf_find_tensor(const lfm_gguf *g, const char *name) {
    for (int64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return i;
    return -1;
}

lfm_status lfm_gguf_tensor_info(const lfm_gguf *g, int64_t i, const char **name, lfm_type *type, int32_t *n_dims,
                                int64_t ne[4], const void **data, size_t *nbytes) {
    if (!g || i < 0 || i >= g->n_tensors)
        return lfm_fail(LFM_ERR_ARG, "tensor index %lld out of range", (long long)i);
    const gguf_tensor *t = &g->tensors[i];
    if (name) *name = t->name;
    if (type) *type = t->type;
    if (n_dims) *n_dims = t->n_dims;
    if (ne) memcpy(ne, t->ne, sizeof t->ne);
    if (data) *data = g->base + g->data_start + t->offset;
    if (nbytes) *nbytes = t->nbytes;
    return LFM_OK;
}

uint64_t lfm_gguf_tensor_offset(const lfm_gguf *g, int64_t i) {
    return (g && i >= 0 && i < g->n_tensors) ? g->tensors[i].offset : 0;
}

/* Hand the mapping over to a model (which unmaps it when freed); g keeps working until closed
 * but must not be used for tensor data afterwards. */
void lfm_gguf_take_mapping(lfm_gguf *g, lfm_mapping *out) {
    *out = g->map;
    g->map.addr = NULL;
    g->map.size = 0;
}
