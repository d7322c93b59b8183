/* json.c — strict recursive-descent JSON parser producing a small tree (see json.h). */
#include "format/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    const char *what;
} parser;

static lfm_status perr(parser *p, const char *msg) {
    return lfm_fail(LFM_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", p->what, p->i, msg);
}

static void skip_ws(parser *p) {
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

void lfm_json_free(lfm_json *j) {
    if (!j) return;
    free(j->str);
    for (int64_t k = 0; k < j->n; k++) {
        lfm_json_free(j->items[k]);
        if (j->keys) free(j->keys[k]);
    }
    free(j->items);
    free(j->keys);
    free(j);
}

/* ---- strings ---- */

static int hex4(parser *p, uint32_t *out) {
    if (p->n - p->i < 4) return 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    p->i += 4;
    *out = v;
    return 1;
}

static lfm_status parse_string(parser *p, char **out, size_t *out_len) {
    p->i++; /* opening quote */
    /* The decoded string is never longer than the raw text up to the closing quote. */
    size_t start = p->i, end = start;
    while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->n) return perr(p, "unterminated string");
    char *buf = malloc(end - start + 1);
    if (!buf) return lfm_fail(LFM_ERR_OOM, "%s: out of memory reading JSON", p->what);
    size_t k = 0;
    while (1) {
        if (p->i >= p->n) { free(buf); return perr(p, "unterminated string"); }
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) { free(buf); return perr(p, "control character in string"); }
        if (c == '\\') {
            p->i++;
            if (p->i >= p->n) { free(buf); return perr(p, "unterminated escape"); }
            char e = p->s[p->i++];
            switch (e) {
            case '"': buf[k++] = '"'; break;
            case '\\': buf[k++] = '\\'; break;
            case '/': buf[k++] = '/'; break;
            case 'b': buf[k++] = '\b'; break;
            case 'f': buf[k++] = '\f'; break;
            case 'n': buf[k++] = '\n'; break;
            case 'r': buf[k++] = '\r'; break;
            case 't': buf[k++] = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!hex4(p, &cp)) { free(buf); return perr(p, "bad \\u escape"); }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                        free(buf);
                        return perr(p, "unpaired surrogate");
                    }
                    p->i += 2;
                    if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) { free(buf); return perr(p, "unpaired surrogate"); }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    free(buf);
                    return perr(p, "unpaired surrogate");
                }
                /* 6 raw bytes (or 12 for a pair) always cover the <= 4 UTF-8 bytes written */
                k += lfm_utf8_encode(buf + k, cp);
                break;
            }
            default: free(buf); return perr(p, "bad escape");
            }
            continue;
        }
        uint32_t ch;
        size_t l = lfm_utf8_decode((const uint8_t *)p->s + p->i, p->n - p->i, &ch); /* copied as is */
        if (!l) { free(buf); return perr(p, "invalid UTF-8 in string"); }
        memcpy(buf + k, p->s + p->i, l);
        k += l;
        p->i += l;
    }
    buf[k] = 0;
    *out = buf;
    *out_len = k;
    return LFM_OK;
}

/* ---- numbers ---- */

static lfm_status parse_number(parser *p, lfm_json *j) {
    size_t start = p->i;
    bool is_int = true;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i >= p->n) return perr(p, "bad number");
    if (p->s[p->i] == '0') {
        p->i++;
    } else if (p->s[p->i] >= '1' && p->s[p->i] <= '9') {
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    } else {
        return perr(p, "bad number");
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        is_int = false;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number: digit expected after '.'");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_int = false;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return perr(p, "bad number: exponent digits expected");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    size_t len = p->i - start;
    char tmp[64];
    if (len >= sizeof tmp) {
        if (is_int) return perr(p, "integer too long");
        /* long decimal: strtod on a heap copy */
        char *h = malloc(len + 1);
        if (!h) return lfm_fail(LFM_ERR_OOM, "out of memory");
        memcpy(h, p->s + start, len);
        h[len] = 0;
        j->num = strtod(h, NULL);
        free(h);
    } else {
        memcpy(tmp, p->s + start, len);
        tmp[len] = 0;
        j->num = strtod(tmp, NULL);
        if (is_int) {
            errno = 0;
            long long v = strtoll(tmp, NULL, 10);
            if (errno == ERANGE) is_int = false;
            else j->i = (int64_t)v;
        }
    }
    j->type = LFM_JSON_NUMBER;
    j->is_int = is_int;
    return LFM_OK;
}

/* ---- values ---- */

static lfm_status parse_value(parser *p, lfm_json **out, int depth);

static lfm_status push_item(parser *p, lfm_json *j, int64_t *cap, lfm_json *item, char *key) {
    if (j->n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 8;
        lfm_json **ni = realloc(j->items, (size_t)nc * sizeof *ni);
        if (!ni) return lfm_fail(LFM_ERR_OOM, "%s: out of memory reading JSON", p->what);
        j->items = ni;
        if (j->type == LFM_JSON_OBJECT) {
            char **nk = realloc(j->keys, (size_t)nc * sizeof *nk);
            if (!nk) return lfm_fail(LFM_ERR_OOM, "%s: out of memory reading JSON", p->what);
            j->keys = nk;
        }
        *cap = nc;
    }
    j->items[j->n] = item;
    if (j->type == LFM_JSON_OBJECT) j->keys[j->n] = key;
    j->n++;
    return LFM_OK;
}

static lfm_status parse_container(parser *p, lfm_json *j, int depth) {
    bool obj = j->type == LFM_JSON_OBJECT;
    char close = obj ? '}' : ']';
    int64_t cap = 0;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) { p->i++; return LFM_OK; }
    while (1) {
        char *key = NULL;
        size_t klen;
        lfm_status st;
        skip_ws(p);
        if (obj) {
            if (p->i >= p->n || p->s[p->i] != '"') return perr(p, "object key expected");
            if ((st = parse_string(p, &key, &klen)) != LFM_OK) return st;
            if (strlen(key) != klen) { free(key); return perr(p, "NUL character in object key"); }
            for (int64_t k = 0; k < j->n; k++)
                if (strcmp(j->keys[k], key) == 0) {
                    lfm_status e = lfm_fail(LFM_ERR_FORMAT, "%s: invalid JSON at byte %zu: duplicate key \"%.80s\"", p->what, p->i, key);
                    free(key);
                    return e;
                }
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { free(key); return perr(p, "':' expected"); }
            p->i++;
        }
        lfm_json *item = NULL;
        if ((st = parse_value(p, &item, depth + 1)) != LFM_OK) { free(key); return st; }
        if ((st = push_item(p, j, &cap, item, key)) != LFM_OK) { free(key); lfm_json_free(item); return st; }
        skip_ws(p);
        if (p->i >= p->n) return perr(p, "unterminated container");
        char c = p->s[p->i++];
        if (c == close) return LFM_OK;
        if (c != ',') { p->i--; return perr(p, obj ? "',' or '}' expected" : "',' or ']' expected"); }
    }
}

static lfm_status parse_value(parser *p, lfm_json **out, int depth) {
    if (depth > JSON_MAX_DEPTH) return perr(p, "nesting too deep");
    skip_ws(p);
    if (p->i >= p->n) return perr(p, "value expected");
    lfm_json *j = calloc(1, sizeof *j);
    if (!j) return lfm_fail(LFM_ERR_OOM, "%s: out of memory reading JSON", p->what);
    lfm_status st = LFM_OK;
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        j->type = c == '{' ? LFM_JSON_OBJECT : LFM_JSON_ARRAY;
        st = parse_container(p, j, depth);
    } else if (c == '"') {
        j->type = LFM_JSON_STRING;
        st = parse_string(p, &j->str, &j->len);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        st = parse_number(p, j);
    } else if (p->n - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0) {
        j->type = LFM_JSON_BOOL, j->b = true, p->i += 4;
    } else if (p->n - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0) {
        j->type = LFM_JSON_BOOL, j->b = false, p->i += 5;
    } else if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
        j->type = LFM_JSON_NULL, p->i += 4;
    } else {
        st = perr(p, "unexpected character");
    }
    if (st != LFM_OK) {
        lfm_json_free(j);
        return st;
    }
    *out = j;
    return LFM_OK;
}

lfm_status lfm_json_parse(const char *text, size_t len, const char *what, lfm_json **out) {
    *out = NULL;
    parser p = {text, len, 0, what ? what : "JSON"};
    lfm_json *j = NULL;
    lfm_status st = parse_value(&p, &j, 0);
    if (st != LFM_OK) return st;
    skip_ws(&p);
    if (p.i != p.n) {
        lfm_json_free(j);
        return perr(&p, "trailing characters after the value");
    }
    *out = j;
    return LFM_OK;
}

const lfm_json *lfm_json_get(const lfm_json *j, const char *key) {
    if (!j || j->type != LFM_JSON_OBJECT) return NULL;
    for (int64_t k = 0; k < j->n; k++)
        if (strcmp(j->keys[k], key) == 0) return j->items[k];
    return NULL;
}
