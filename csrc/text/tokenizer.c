/* tokenizer.c — LFM2's tokenizer: byte-level BPE (GPT-2 byte alphabet) behind the LLaMA-3 pre-tokenizer.
 *
 * Pipeline of lfm_tokenizer_encode, matching Hugging Face `tokenizers` on LFM2's tokenizer.json
 * (Sequence[Split(R, Isolated), ByteLevel(use_regex=false)] + BPE(ignore_merges)) and llama.cpp's
 * "lfm2" pre-type:
 *   1. strict UTF-8 validation (error names the byte offset);
 *   2. added tokens: CONTROL tokens (HF "special") are split out only when parse_special, then
 *      USER_DEFINED tokens (HF non-special added tokens) always — each pass leftmost-longest, as the
 *      Aho-Corasick matcher in HF's AddedVocabulary;
 *   3. every remaining span is cut into pre-tokens by a hand-written scanner equivalent to
 *        R = (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *            | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *      (first alternative that matches wins, with the regex's backtracking worked out per rule);
 *      character classes come from text/unicode_tables.c (Unicode 16.0, = HF's Oniguruma);
 *   4. each pre-token: with ignore_merges a pre-token that is itself a vocab entry is one token;
 *      otherwise BPE over its bytes: repeatedly merge the adjacent pair of lowest merge rank (ties:
 *      leftmost), using a binary heap and a linked list of symbols, O(n log n) per pre-token.
 * Everything works on raw bytes: token strings are mapped back from the byte-level alphabet at init.
 */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

extern const uint16_t lfm_unicode_stage1[0x1100];
extern const uint8_t lfm_unicode_stage2[];

enum { CLS_L = 1, CLS_N = 2, CLS_S = 4 };

/* ---- tokenizer object ---- */

typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    int32_t rank;
    int32_t id;
} merge_slot;

typedef struct {
    const lfm_token *ids; /* added tokens whose text starts with one byte value, longest first */
    int32_t n;
} added_bucket;

typedef struct {
    lfm_token *ids; /* all tokens of one kind, bucketed by first byte */
    added_bucket first[256];
    int32_t n;
} added_set;

struct lfm_tokenizer {
    int32_t n_tokens;
    char *pool;         /* raw bytes of every token, concatenated */
    size_t *off;        /* [n_tokens + 1] offsets into pool */
    uint8_t *kind;      /* [n_tokens] lfm_token_kind */
    int32_t *vmap;      /* open-addressing table of ids keyed by raw bytes; -1 empty */
    uint32_t vmap_mask;
    merge_slot *merges; /* open-addressing table keyed by the id pair */
    uint32_t merge_mask;
    lfm_token byte_token[256]; /* the token of each single byte, -1 if none */
    added_set control, user;
    int ignore_merges;
    lfm_token bos_id, eos_id;
};

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint32_t table_size(int64_t n) {
    uint32_t cap = 16;
    while ((int64_t)cap < 2 * n) cap <<= 1;
    return cap;
}

static lfm_token vocab_find(const lfm_tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vmap_mask;
    for (;;) {
        int32_t id = t->vmap[i];
        if (id < 0) return -1;
        size_t len = t->off[id + 1] - t->off[id];
        if (len == n && memcmp(t->pool + t->off[id], s, n) == 0) return id;
        i = (i + 1) & t->vmap_mask;
    }
}

static const merge_slot *merge_find(const lfm_tokenizer *t, lfm_token a, lfm_token b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t i = (uint32_t)hash_u64(key) & t->merge_mask;
    for (;;) {
        const merge_slot *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
        i = (i + 1) & t->merge_mask;
    }
}

/* ---- UTF-8 ---- */

/* One code point of s[i..n): lfm_utf8_decode (base/), indexed from i. */
static inline size_t utf8_decode(const uint8_t *s, size_t n, size_t i, uint32_t *cp) {
    return lfm_utf8_decode(s + i, n - i, cp);
}

static lfm_status utf8_validate(const uint8_t *s, size_t n) {
    size_t i = lfm_utf8_valid_prefix(s, n);
    if (i < n)
        return lfm_fail(LFM_ERR_ARG, "invalid UTF-8 at byte offset %zu (byte 0x%02X): text must be valid UTF-8",
                        i, s[i]);
    return LFM_OK;
}

/* GPT-2 byte alphabet: bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF stand for themselves, the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD) for U+0100.. in byte order. Returns the byte for a stand-in code
 * point, -1 if none. */
static int byte_of_unicode(uint32_t cp) {
    if (cp < 256) return (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || cp >= 0xAE ? (int)cp : -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    return k == 67 ? 0xAD : -1;
}

static inline uint8_t cls_of(uint32_t cp) {
    return lfm_unicode_stage2[(size_t)lfm_unicode_stage1[cp >> 8] * 256 + (cp & 255)];
}

/* ---- init / free ---- */

void lfm_tokenizer_free(lfm_tokenizer *t) {
    if (!t) return;
    free(t->pool);
    free(t->off);
    free(t->kind);
    free(t->vmap);
    free(t->merges);
    free(t->control.ids);
    free(t->user.ids);
    free(t);
}

static size_t tok_len(const lfm_tokenizer *t, lfm_token id) { return t->off[id + 1] - t->off[id]; }

typedef struct {
    uint8_t first;
    size_t len;
    lfm_token id;
} added_key;

static int cmp_added(const void *a, const void *b) {
    const added_key *x = a, *y = b;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Collect the tokens of one kind, sorted by first byte, longest first within a first byte. */
static lfm_status build_added(lfm_tokenizer *t, added_set *set, int kind) {
    int32_t n = 0;
    for (int32_t i = 0; i < t->n_tokens; i++)
        if (t->kind[i] == kind && tok_len(t, i) > 0) n++;
    set->n = n;
    if (!n) return LFM_OK;
    set->ids = malloc((size_t)n * sizeof *set->ids);
    added_key *keys = malloc((size_t)n * sizeof *keys);
    if (!set->ids || !keys) {
        free(keys);
        return lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory for %d added tokens", n);
    }
    n = 0;
    for (int32_t i = 0; i < t->n_tokens; i++)
        if (t->kind[i] == kind && tok_len(t, i) > 0)
            keys[n++] = (added_key){(uint8_t)t->pool[t->off[i]], tok_len(t, i), i};
    qsort(keys, (size_t)n, sizeof *keys, cmp_added);
    for (int32_t i = 0; i < n; i++) set->ids[i] = keys[i].id;
    for (int32_t i = 0; i < n;) {
        int32_t j = i;
        while (j < n && keys[j].first == keys[i].first) j++;
        set->first[keys[i].first].ids = set->ids + i;
        set->first[keys[i].first].n = j - i;
        i = j;
    }
    free(keys);
    return LFM_OK;
}

/* Byte-level string (UTF-8 of stand-in code points) -> raw bytes, written to dst (room for len). */
static lfm_status unbyte(const char *s, size_t len, char *dst, size_t *n_out, int32_t id) {
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_decode((const uint8_t *)s, len, i, &cp);
        int b = k ? byte_of_unicode(cp) : -1;
        if (b < 0)
            return lfm_fail(LFM_ERR_FORMAT,
                            "token %d '%s': character at byte %zu is not in the byte-level (GPT-2) alphabet", id,
                            s, i);
        dst[n++] = (char)b;
        i += k;
    }
    *n_out = n;
    return LFM_OK;
}

lfm_status lfm_tokenizer_init(const lfm_tokenizer_params *p, lfm_tokenizer **out) {
    if (!out) return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_init: out is NULL");
    *out = NULL;
    if (!p || p->n_tokens <= 0 || !p->tokens)
        return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_init: need at least one token");
    if (p->n_merges < 0 || (p->n_merges > 0 && !p->merges))
        return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_init: n_merges %d without merges", p->n_merges);
    int32_t n = p->n_tokens;
    if (p->bos_id < -1 || p->bos_id >= n || p->eos_id < -1 || p->eos_id >= n)
        return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_init: bos_id %d / eos_id %d outside [-1, %d)", p->bos_id,
                        p->eos_id, n);
    lfm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory");
    lfm_status st = LFM_OK;
    t->n_tokens = n;
    t->ignore_merges = p->ignore_merges != 0;
    t->bos_id = p->bos_id;
    t->eos_id = p->eos_id;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!p->tokens[i]) {
            st = lfm_fail(LFM_ERR_FORMAT, "tokenizer: token %d is NULL", i);
            goto fail;
        }
        size_t len = strlen(p->tokens[i]);
        /* encode() splits the text at added-token matches: a token that is not UTF-8 could match
         * inside a character and leave a span that is not UTF-8 either */
        size_t valid = lfm_utf8_valid_prefix((const uint8_t *)p->tokens[i], len);
        if (valid != len) {
            st = lfm_fail(LFM_ERR_FORMAT, "tokenizer: token %d is not valid UTF-8 (byte %zu of %zu)", i, valid, len);
            goto fail;
        }
        total += len;
    }
    t->pool = malloc(total + 1);
    t->off = malloc(((size_t)n + 1) * sizeof *t->off);
    t->kind = malloc((size_t)n);
    t->vmap_mask = table_size(n) - 1;
    t->vmap = malloc(((size_t)t->vmap_mask + 1) * sizeof *t->vmap);
    if (!t->pool || !t->off || !t->kind || !t->vmap) {
        st = lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory for %d tokens", n);
        goto fail;
    }
    memset(t->vmap, 0xff, ((size_t)t->vmap_mask + 1) * sizeof *t->vmap);
    for (int i = 0; i < 256; i++) t->byte_token[i] = -1;
    size_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        int kind = p->token_types ? p->token_types[i] : LFM_TOKEN_NORMAL;
        if (kind < LFM_TOKEN_NORMAL || kind > LFM_TOKEN_BYTE) {
            st = lfm_fail(LFM_ERR_FORMAT, "tokenizer: token %d has type %d, expected 1..6", i, kind);
            goto fail;
        }
        t->kind[i] = (uint8_t)kind;
        const char *s = p->tokens[i];
        size_t len = strlen(s), raw;
        t->off[i] = pos;
        if (kind == LFM_TOKEN_NORMAL || kind == LFM_TOKEN_UNKNOWN) {
            if ((st = unbyte(s, len, t->pool + pos, &raw, i)) != LFM_OK) goto fail;
        } else { /* control / user-defined / unused / byte tokens: the text itself */
            memcpy(t->pool + pos, s, len);
            raw = len;
        }
        pos += raw;
    }
    t->off[n] = pos;
    /* vocab map: normal tokens first so they win a (pathological) clash with added-token text */
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t i = 0; i < n; i++) {
            int normal = t->kind[i] == LFM_TOKEN_NORMAL;
            if (normal != (pass == 0) || t->kind[i] == LFM_TOKEN_UNUSED) continue;
            const char *s = t->pool + t->off[i];
            size_t len = tok_len(t, i);
            if (len == 0 || vocab_find(t, s, len) >= 0) continue; /* keep the first of duplicates */
            uint32_t h = (uint32_t)hash_bytes(s, len) & t->vmap_mask;
            while (t->vmap[h] >= 0) h = (h + 1) & t->vmap_mask;
            t->vmap[h] = i;
            if (normal && len == 1 && t->byte_token[(uint8_t)s[0]] < 0) t->byte_token[(uint8_t)s[0]] = i;
        }
    }
    /* merges "left right" in rank order; keep the lowest rank of a repeated pair */
    t->merge_mask = table_size(p->n_merges) - 1;
    t->merges = malloc(((size_t)t->merge_mask + 1) * sizeof *t->merges);
    if (!t->merges) {
        st = lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory for %d merges", p->n_merges);
        goto fail;
    }
    for (uint32_t i = 0; i <= t->merge_mask; i++) t->merges[i].key = UINT64_MAX;
    char *buf = NULL;
    size_t buf_cap = 0;
    for (int32_t r = 0; r < p->n_merges; r++) {
        const char *m = p->merges[r];
        const char *sp = m ? strchr(m, ' ') : NULL;
        if (!sp || sp == m || !sp[1]) {
            free(buf);
            st = lfm_fail(LFM_ERR_FORMAT, "tokenizer: merge %d '%s' is not \"left right\"", r, m ? m : "(null)");
            goto fail;
        }
        size_t la = (size_t)(sp - m), lb = strlen(sp + 1);
        if (la + lb > buf_cap) {
            free(buf);
            buf_cap = 2 * (la + lb);
            buf = malloc(buf_cap);
            if (!buf) {
                st = lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory");
                goto fail;
            }
        }
        size_t ra, rb;
        if ((st = unbyte(m, la, buf, &ra, -1)) != LFM_OK || (st = unbyte(sp + 1, lb, buf + ra, &rb, -1)) != LFM_OK) {
            free(buf);
            st = lfm_fail(LFM_ERR_FORMAT, "tokenizer: merge %d '%s' is not in the byte-level alphabet", r, m);
            goto fail;
        }
        lfm_token a = vocab_find(t, buf, ra), b = vocab_find(t, buf + ra, rb), ab = vocab_find(t, buf, ra + rb);
        if (a < 0 || b < 0 || ab < 0) {
            free(buf);
            st = lfm_fail(LFM_ERR_FORMAT, "tokenizer: merge %d '%s': %s is not in the vocabulary", r, m,
                          a < 0 ? "the left part" : b < 0 ? "the right part" : "the merged token");
            goto fail;
        }
        uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        uint32_t h = (uint32_t)hash_u64(key) & t->merge_mask;
        while (t->merges[h].key != UINT64_MAX && t->merges[h].key != key) h = (h + 1) & t->merge_mask;
        if (t->merges[h].key == key) continue;
        t->merges[h].key = key;
        t->merges[h].rank = r;
        t->merges[h].id = ab;
    }
    free(buf);
    if ((st = build_added(t, &t->control, LFM_TOKEN_CONTROL)) != LFM_OK) goto fail;
    if ((st = build_added(t, &t->user, LFM_TOKEN_USER_DEFINED)) != LFM_OK) goto fail;
    *out = t;
    return LFM_OK;
fail:
    lfm_tokenizer_free(t);
    return st;
}

int32_t lfm_tokenizer_n_tokens(const lfm_tokenizer *t) { return t ? t->n_tokens : 0; }

lfm_status lfm_tokenizer_token_bytes(const lfm_tokenizer *t, lfm_token id, const char **bytes, size_t *len) {
    if (!t) return lfm_fail(LFM_ERR_ARG, "tokenizer is NULL");
    if (id < 0 || id >= t->n_tokens)
        return lfm_fail(LFM_ERR_ARG, "token id %d out of range [0, %d)", id, t->n_tokens);
    *bytes = t->pool + t->off[id];
    *len = tok_len(t, id);
    return LFM_OK;
}

int32_t lfm_tokenizer_token_kind(const lfm_tokenizer *t, lfm_token id) {
    if (!t || id < 0 || id >= t->n_tokens) return 0;
    return t->kind[id];
}

lfm_status lfm_tokenizer_decode(const lfm_tokenizer *t, const lfm_token *ids, int32_t n, int skip_control,
                                char *out, size_t cap, size_t *n_out) {
    if (!t) return lfm_fail(LFM_ERR_ARG, "tokenizer is NULL");
    if (n < 0 || (n > 0 && !ids)) return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_decode: bad id array");
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        lfm_token id = ids[i];
        if (id < 0 || id >= t->n_tokens)
            return lfm_fail(LFM_ERR_ARG, "token id %d at position %d out of range [0, %d)", id, i, t->n_tokens);
        if (skip_control && t->kind[id] == LFM_TOKEN_CONTROL) continue;
        size_t len = tok_len(t, id);
        if (out && total + len <= cap) memcpy(out + total, t->pool + t->off[id], len);
        total += len;
    }
    if (n_out) *n_out = total;
    return LFM_OK;
}

/* ---- encoding ---- */

typedef struct {
    const lfm_tokenizer *t;
    lfm_token *out;
    int32_t cap;
    int64_t n; /* ids produced so far (may exceed cap) */
    /* scratch, grown as needed */
    uint32_t *cp;    /* code points of the current span */
    uint8_t *cls;    /* their classes */
    uint32_t *boff;  /* byte offset of each code point (+ end) */
    size_t cp_cap;
    struct sym { lfm_token id; int32_t prev, next; } *sym;
    struct cand { int32_t rank, left; lfm_token a, b; } *heap;
    size_t sym_cap, heap_cap;
} enc_state;

static inline void emit(enc_state *e, lfm_token id) {
    if (e->n < e->cap) e->out[e->n] = id;
    e->n++;
}

static inline int cand_less(const struct cand *x, const struct cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->left < y->left);
}

static void heap_push(struct cand *h, size_t *n, struct cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(&c, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = c;
}

static struct cand heap_pop(struct cand *h, size_t *n) {
    struct cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) m = l, best = &h[l];
        if (r < *n && cand_less(&h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(enc_state *e, size_t *nh, int32_t left) {
    int32_t right = e->sym[left].next;
    if (right < 0) return;
    const merge_slot *m = merge_find(e->t, e->sym[left].id, e->sym[right].id);
    if (!m) return;
    struct cand c = {m->rank, left, e->sym[left].id, e->sym[right].id};
    heap_push(e->heap, nh, c);
}

/* BPE over the raw bytes of one pre-token. */
static lfm_status bpe_word(enc_state *e, const uint8_t *s, size_t n) {
    const lfm_tokenizer *t = e->t;
    if (n == 1 && t->byte_token[s[0]] >= 0) {
        emit(e, t->byte_token[s[0]]);
        return LFM_OK;
    }
    if (t->ignore_merges) {
        lfm_token id = vocab_find(t, (const char *)s, n);
        if (id >= 0) {
            emit(e, id);
            return LFM_OK;
        }
    }
    if (n > e->sym_cap) {
        size_t cap = n < 64 ? 64 : 2 * n;
        void *a = realloc(e->sym, cap * sizeof *e->sym), *b = a ? realloc(e->heap, 3 * cap * sizeof *e->heap) : NULL;
        if (a) e->sym = a;
        if (b) e->heap = b;
        if (!a || !b) return lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory for a %zu-byte word", n);
        e->sym_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        lfm_token id = t->byte_token[s[i]];
        if (id < 0)
            return lfm_fail(LFM_ERR_FORMAT, "tokenizer: byte 0x%02X has no token in the vocabulary", s[i]);
        e->sym[i].id = id;
        e->sym[i].prev = (int32_t)i - 1;
        e->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t nh = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(e, &nh, (int32_t)i);
    while (nh) {
        struct cand c = heap_pop(e->heap, &nh);
        struct sym *l = &e->sym[c.left];
        if (l->id != c.a || l->next < 0) continue; /* stale: left was merged away or changed */
        struct sym *r = &e->sym[l->next];
        if (r->id != c.b) continue;
        const merge_slot *m = merge_find(t, c.a, c.b);
        l->id = m->id;
        l->next = r->next;
        if (r->next >= 0) e->sym[r->next].prev = c.left;
        r->id = -1; /* dead */
        if (l->prev >= 0) push_pair(e, &nh, l->prev);
        push_pair(e, &nh, c.left);
    }
    for (int32_t i = 0; i >= 0; i = e->sym[i].next) emit(e, e->sym[i].id);
    return LFM_OK;
}

static inline int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

static inline uint32_t fold(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x017F) return 's'; /* LATIN SMALL LETTER LONG S case-folds to 's' (Oniguruma (?i)) */
    return c;
}

/* End (exclusive, in code points) of the pre-token starting at i; see the pattern R above. */
static size_t pretoken_end(const uint32_t *cp, const uint8_t *cls, size_t i, size_t n) {
    uint32_t c = cp[i];
    size_t j;
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c == '\'' && i + 1 < n) {
        uint32_t a = fold(cp[i + 1]);
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (i + 2 < n) {
            uint32_t b = fold(cp[i + 2]);
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
        }
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (cls[i] & CLS_L) {
        for (j = i + 1; j < n && (cls[j] & CLS_L); j++) {
        }
        return j;
    }
    if (!is_crlf(c) && !(cls[i] & CLS_N) && i + 1 < n && (cls[i + 1] & CLS_L)) {
        for (j = i + 2; j < n && (cls[j] & CLS_L); j++) {
        }
        return j;
    }
    /* \p{N}{1,3} */
    if (cls[i] & CLS_N) {
        for (j = i + 1; j < n && j < i + 3 && (cls[j] & CLS_N); j++) {
        }
        return j;
    }
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' — "punct" = none of the three classes */
    size_t k = (c == ' ' && i + 1 < n && !cls[i + 1]) ? i + 1 : i;
    if (!cls[k]) {
        for (j = k + 1; j < n && !cls[j]; j++) {
        }
        while (j < n && is_crlf(cp[j])) j++;
        return j;
    }
    /* c is whitespace here: j = end of the whitespace run */
    for (j = i + 1; j < n && (cls[j] & CLS_S); j++) {
    }
    /* \s*[\r\n]+ : up to and including the last \r or \n of the run */
    for (k = j; k > i; k--)
        if (is_crlf(cp[k - 1])) return k;
    /* \s+(?!\S) : the run, minus its last character unless it ends the text */
    if (j == n) return j;
    if (j - 1 > i) return j - 1;
    /* \s+ */
    return j;
}

/* Pre-tokenize and BPE the plain-text span s[0..n) (valid UTF-8, no added tokens inside). */
static lfm_status encode_plain(enc_state *e, const uint8_t *s, size_t n) {
    if (!n) return LFM_OK;
    if (n > UINT32_MAX - 1) return lfm_fail(LFM_ERR_ARG, "tokenizer: text span of %zu bytes is too long", n);
    if (n + 1 > e->cp_cap) {
        size_t cap = n + 1 < 256 ? 256 : 2 * (n + 1);
        void *a = realloc(e->cp, cap * sizeof *e->cp);
        if (a) e->cp = a;
        void *b = a ? realloc(e->cls, cap) : NULL;
        if (b) e->cls = b;
        void *c = b ? realloc(e->boff, cap * sizeof *e->boff) : NULL;
        if (c) e->boff = c;
        if (!a || !b || !c) return lfm_fail(LFM_ERR_OOM, "tokenizer: out of memory for %zu bytes of text", n);
        e->cp_cap = cap;
    }
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c = 0;
        size_t len = utf8_decode(s, n, i, &c); /* validated before */
        e->cp[m] = c;
        e->cls[m] = cls_of(c);
        e->boff[m] = (uint32_t)i;
        m++;
        i += len;
    }
    e->boff[m] = (uint32_t)n;
    for (size_t i = 0; i < m;) {
        size_t j = pretoken_end(e->cp, e->cls, i, m);
        lfm_status st = bpe_word(e, s + e->boff[i], e->boff[j] - e->boff[i]);
        if (st != LFM_OK) return st;
        i = j;
    }
    return LFM_OK;
}

/* Leftmost-longest occurrence of a token of set in s[from..n); returns 0 if none. */
static int find_added(const lfm_tokenizer *t, const added_set *set, const uint8_t *s, size_t from, size_t n,
                      size_t *at, lfm_token *id) {
    if (!set->n) return 0;
    for (size_t i = from; i < n; i++) {
        const added_bucket *b = &set->first[s[i]];
        for (int32_t k = 0; k < b->n; k++) {
            lfm_token cand = b->ids[k];
            size_t len = tok_len(t, cand);
            if (len <= n - i && memcmp(t->pool + t->off[cand], s + i, len) == 0) {
                *at = i;
                *id = cand;
                return 1;
            }
        }
    }
    return 0;
}

/* User-defined tokens are always split out (HF and llama.cpp both do); the rest is plain text. */
static lfm_status encode_user(enc_state *e, const uint8_t *s, size_t n) {
    size_t pos = 0, at;
    lfm_token id;
    lfm_status st;
    while (find_added(e->t, &e->t->user, s, pos, n, &at, &id)) {
        if ((st = encode_plain(e, s + pos, at - pos)) != LFM_OK) return st;
        emit(e, id);
        pos = at + tok_len(e->t, id);
    }
    return encode_plain(e, s + pos, n - pos);
}

lfm_status lfm_tokenizer_encode(const lfm_tokenizer *t, const char *text, size_t len, int add_bos,
                                int parse_special, lfm_token *out, int32_t cap, int32_t *n_out) {
    if (!t) return lfm_fail(LFM_ERR_ARG, "tokenizer is NULL");
    if (!text && len) return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_encode: text is NULL");
    if (cap < 0 || (cap > 0 && !out)) return lfm_fail(LFM_ERR_ARG, "lfm_tokenizer_encode: bad output buffer");
    const uint8_t *s = (const uint8_t *)text;
    lfm_status st = utf8_validate(s, len);
    if (st != LFM_OK) return st;
    if (add_bos && t->bos_id < 0) return lfm_fail(LFM_ERR_ARG, "add_bos requested but the tokenizer has no BOS token");
    enc_state e = {.t = t, .out = out, .cap = cap};
    if (add_bos) emit(&e, t->bos_id);
    size_t pos = 0, at;
    lfm_token id;
    while (parse_special && find_added(t, &t->control, s, pos, len, &at, &id)) {
        if ((st = encode_user(&e, s + pos, at - pos)) != LFM_OK) goto done;
        emit(&e, id);
        pos = at + tok_len(t, id);
    }
    st = encode_user(&e, s + pos, len - pos);
done:
    free(e.cp);
    free(e.cls);
    free(e.boff);
    free(e.sym);
    free(e.heap);
    if (st != LFM_OK) return st;
    if (e.n > INT32_MAX) return lfm_fail(LFM_ERR_ARG, "tokenizer: text gives more than 2^31 tokens");
    if (n_out) *n_out = (int32_t)e.n;
    return LFM_OK;
}

/* Pre-token boundaries of plain text (no added-token handling), for tests and debugging: writes
 * byte end offsets of each pre-token; *n_out is the full count. */
lfm_status lfm_tokenizer_pretokenize(const char *text, size_t len, size_t *ends, size_t cap, size_t *n_out) {
    const uint8_t *s = (const uint8_t *)text;
    lfm_status st = utf8_validate(s, len);
    if (st != LFM_OK) return st;
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    uint8_t *cls = malloc(len + 1);
    size_t *boff = malloc((len + 1) * sizeof *boff);
    if (!cp || !cls || !boff) {
        free(cp);
        free(cls);
        free(boff);
        return lfm_fail(LFM_ERR_OOM, "pretokenize: out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = 0;
        size_t l = utf8_decode(s, len, i, &c); /* validated before */
        cp[m] = c;
        cls[m] = cls_of(c);
        boff[m++] = i;
        i += l;
    }
    boff[m] = len;
    size_t k = 0;
    for (size_t i = 0; i < m;) {
        size_t j = pretoken_end(cp, cls, i, m);
        if (k < cap) ends[k] = boff[j];
        k++;
        i = j;
    }
    *n_out = k;
    free(cp);
    free(cls);
    free(boff);
    return LFM_OK;
}
