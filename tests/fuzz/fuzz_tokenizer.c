/* fuzz_tokenizer — the byte-level BPE tokenizer from an arbitrary vocabulary: encode, decode,
 * token_bytes and the pre-tokenizer. Input layout (make_seeds.py writes seeds in it):
 *   byte 0: flags (1 ignore_merges, 2 add_bos, 4 parse_special, 8 skip_control on decode)
 *   byte 1, 2: bos_id, eos_id (0xff: -1; else taken modulo the vocabulary size)
 *   then three '\0'-separated sections: tokens ('\n'-separated; a leading byte 0x01..0x06 is the
 *   token's lfm_token_kind), merges ('\n'-separated "left right"), the text to encode. */
#include "fuzz_common.h"

#define MAX_ITEMS 4096

static int split(char *s, size_t n, char sep, char **items, int cap) {
    int k = 0;
    char *start = s;
    for (size_t i = 0; i <= n && k < cap; i++) {
        if (i == n || s[i] == sep) {
            s[i] = '\0';
            items[k++] = start;
            start = s + i + 1;
        }
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint8_t flags = data[0], bos = data[1], eos = data[2];
    const uint8_t *p = data + 3, *end = data + size;
    const uint8_t *z1 = memchr(p, 0, (size_t)(end - p));
    if (!z1) return 0;
    const uint8_t *z2 = memchr(z1 + 1, 0, (size_t)(end - z1 - 1));
    if (!z2) return 0;
    const uint8_t *text = z2 + 1;
    size_t text_len = (size_t)(end - text);

    char *tok_buf = malloc((size_t)(z1 - p) + 1), *merge_buf = malloc((size_t)(z2 - z1));
    memcpy(tok_buf, p, (size_t)(z1 - p));
    memcpy(merge_buf, z1 + 1, (size_t)(z2 - z1 - 1));
    char **tokens = malloc(MAX_ITEMS * sizeof *tokens), **merges = malloc(MAX_ITEMS * sizeof *merges);
    int32_t *types = malloc(MAX_ITEMS * sizeof *types);
    int n_tok = split(tok_buf, (size_t)(z1 - p), '\n', tokens, MAX_ITEMS);
    int n_merge = (z2 - z1 - 1) ? split(merge_buf, (size_t)(z2 - z1 - 1), '\n', merges, MAX_ITEMS) : 0;
    for (int i = 0; i < n_tok; i++) {
        uint8_t c = (uint8_t)tokens[i][0];
        if (c >= 1 && c <= 6) types[i] = c, tokens[i]++;
        else types[i] = LFM_TOKEN_NORMAL;
    }

    lfm_tokenizer_params tp = {
        .n_tokens = n_tok, .tokens = (const char *const *)tokens, .token_types = types,
        .n_merges = n_merge, .merges = (const char *const *)merges, .ignore_merges = flags & 1,
        .bos_id = bos == 0xff ? -1 : bos % n_tok, .eos_id = eos == 0xff ? -1 : eos % n_tok,
    };
    lfm_tokenizer *t = NULL;
    lfm_status st = lfm_tokenizer_init(&tp, &t);
    fuzz_check_error(st);
    if (st == LFM_OK) {
        int32_t n = lfm_tokenizer_n_tokens(t);
        if (n != n_tok) abort();
        int32_t cap = 16, n_out = 0;
        lfm_token *ids = malloc((size_t)cap * sizeof *ids);
        st = lfm_tokenizer_encode(t, (const char *)text, text_len, flags & 2, flags & 4, ids, cap, &n_out);
        fuzz_check_error(st);
        if (st == LFM_OK && n_out > cap) {
            if ((size_t)n_out > text_len + 1) abort(); /* "len + 1 is always enough" */
            cap = n_out;
            ids = realloc(ids, (size_t)cap * sizeof *ids);
            st = lfm_tokenizer_encode(t, (const char *)text, text_len, flags & 2, flags & 4, ids, cap, &n_out);
            if (st != LFM_OK || n_out != cap) abort();
        }
        if (st == LFM_OK) {
            for (int32_t i = 0; i < n_out; i++)
                if (ids[i] < 0 || ids[i] >= n) abort();
            size_t len = 0;
            st = lfm_tokenizer_decode(t, ids, n_out, flags & 8, NULL, 0, &len);
            fuzz_check_error(st);
            if (st == LFM_OK) {
                char *buf = malloc(len + 1);
                size_t len2 = 0;
                if (lfm_tokenizer_decode(t, ids, n_out, flags & 8, buf, len, &len2) != LFM_OK || len2 != len) abort();
                free(buf);
            }
        }
        free(ids);
        /* every token's bytes and kind, plus ids just outside the range */
        for (int32_t id = -1; id <= n; id++) {
            const char *b;
            size_t bl;
            if (lfm_tokenizer_token_bytes(t, id, &b, &bl) == LFM_OK) {
                if (id < 0 || id >= n) abort();
                volatile uint8_t x = bl ? (uint8_t)b[bl - 1] : 0;
                (void)x;
            }
            (void)lfm_tokenizer_token_kind(t, id);
        }
        lfm_token bad[2] = {n, -1};
        size_t bl;
        if (lfm_tokenizer_decode(t, bad, 1, 0, NULL, 0, &bl) == LFM_OK) abort();
        if (lfm_tokenizer_decode(t, bad + 1, 1, 0, NULL, 0, &bl) == LFM_OK) abort();
        lfm_tokenizer_free(t);
    }
    size_t ends[64], n_pre = 0;
    st = lfm_tokenizer_pretokenize((const char *)text, text_len, ends, 64, &n_pre);
    fuzz_check_error(st);
    if (st == LFM_OK)
        for (size_t i = 0; i < n_pre && i < 64; i++)
            if (ends[i] > text_len || (i && ends[i] <= ends[i - 1])) abort();

    free(tok_buf), free(merge_buf), free(tokens), free(merges), free(types);
    return 0;
}
