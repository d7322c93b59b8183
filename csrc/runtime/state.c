/* state.c — save / restore the whole recurrent state of a context's sequence 0 as one blob (the layout
 * is the one single-sequence contexts always had, so blobs move between contexts of any n_seq).
 *
 * Layout (little-endian host order, all fields 4 or 8 bytes):
 *   header: magic "LFMS", version, model shape (n_layer, n_embd, n_head_kv, head_dim, conv_l_cache,
 *           n_vocab, layer-type bitmap), pos, has_logits, bytes per KV value (4: F32, 2: F16),
 *           payload size, FNV-1a checksum of the payload
 *   payload: conv states (n_layer_conv, K-1, H) f32; per attention layer its K rows 0..pos-1 then
 *           its V rows 0..pos-1 (kv_dim values each, lfm_kv_row); the last logits row (n_vocab f32)
 *           if has_logits. */
#include "runtime/runtime.h"

#include <string.h>

#define STATE_MAGIC 0x534D464Cu /* "LFMS" */
#define STATE_VERSION 2u

typedef struct {
    uint32_t magic, version;
    int32_t n_layer, n_embd, n_head_kv, head_dim, conv_l_cache, n_vocab;
    uint8_t is_attn[LFM_MAX_LAYERS];
    int32_t pos, has_logits, kv_elem, reserved;
    uint64_t payload_bytes, checksum;
} state_header;

static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static size_t payload_bytes(const lfm_ctx *c, int32_t pos, bool has_logits) {
    size_t n = (size_t)c->n_layer_conv * lfm_conv_state_bytes(c);
    if (has_logits) n += (size_t)c->model->cfg.n_vocab * sizeof(float);
    return n + (size_t)c->n_layer_attn * 2 * (size_t)pos * lfm_kv_row_bytes(c);
}

static void fill_header(const lfm_ctx *c, state_header *h) {
    const lfm_config *cfg = &c->model->cfg;
    memset(h, 0, sizeof *h);
    h->magic = STATE_MAGIC;
    h->version = STATE_VERSION;
    h->n_layer = cfg->n_layer, h->n_embd = cfg->n_embd, h->n_head_kv = cfg->n_head_kv;
    h->head_dim = cfg->head_dim, h->conv_l_cache = cfg->conv_l_cache, h->n_vocab = cfg->n_vocab;
    memcpy(h->is_attn, cfg->is_attn, sizeof h->is_attn);
    h->kv_elem = (int32_t)c->kv_elem;
}

size_t lfm_ctx_state_size(const lfm_ctx *c) {
    if (!c) return 0;
    return sizeof(state_header) + payload_bytes(c, c->seqs[0].pos, c->has_last_logits);
}

/* visit the payload's pieces in order, running STMT with `ptr` and `bytes` set to each */
#define FOR_EACH_PIECE(c, pos, has_logits, STMT)                                                                      \
    do {                                                                                                               \
        {                                                                                                              \
            float *ptr = (c)->seqs[0].conv_state;                                                                      \
            size_t bytes = (size_t)(c)->n_layer_conv * lfm_conv_state_bytes(c);                                       \
            if (bytes) STMT;                                                                                           \
        }                                                                                                              \
        for (int32_t a_ = 0; a_ < (c)->n_layer_attn; a_++) {                                                           \
            size_t bytes = (size_t)(pos) * lfm_kv_row_bytes(c); /* rows 0..pos-1 of layer a_ */                      \
            void *ptr = lfm_kv_row((c), (c)->seqs[0].k_cache, a_, 0);                                                  \
            if (bytes) STMT;                                                                                           \
            ptr = lfm_kv_row((c), (c)->seqs[0].v_cache, a_, 0);                                                        \
            if (bytes) STMT;                                                                                           \
        }                                                                                                              \
        if (has_logits) {                                                                                              \
            size_t n_vocab_ = (size_t)(c)->model->cfg.n_vocab;                                                         \
            float *ptr = (c)->logits + (size_t)((c)->n_logits - 1) * n_vocab_;                                         \
            size_t bytes = n_vocab_ * sizeof(float);                                                                   \
            STMT;                                                                                                      \
        }                                                                                                              \
    } while (0)

lfm_status lfm_ctx_state_save(const lfm_ctx *c, void *dst, size_t cap, size_t *written) {
    if (!c || !dst) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_state_save: NULL argument");
    size_t need = lfm_ctx_state_size(c);
    if (written) *written = 0;
    if (cap < need) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_state_save: buffer of %zu bytes, %zu needed", cap, need);
    state_header h;
    fill_header(c, &h);
    h.pos = c->seqs[0].pos;
    h.has_logits = c->has_last_logits ? 1 : 0;
    h.payload_bytes = payload_bytes(c, c->seqs[0].pos, c->has_last_logits);
    unsigned char *out = (unsigned char *)dst + sizeof h;
    uint64_t sum = 0xcbf29ce484222325ull;
    FOR_EACH_PIECE(c, c->seqs[0].pos, c->has_last_logits, (memcpy(out, ptr, bytes), sum = fnv1a(out, bytes, sum), out += bytes));
    h.checksum = sum;
    memcpy(dst, &h, sizeof h);
    if (written) *written = need;
    return LFM_OK;
}

lfm_status lfm_ctx_state_load(lfm_ctx *c, const void *src, size_t n) {
    if (!c || !src) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_state_load: NULL argument");
    state_header h, want;
    if (n < sizeof h) return lfm_fail(LFM_ERR_FORMAT, "state blob of %zu bytes is too short (header is %zu)", n, sizeof h);
    memcpy(&h, src, sizeof h);
    if (h.magic != STATE_MAGIC) return lfm_fail(LFM_ERR_FORMAT, "not a liquidlfm state blob (bad magic)");
    if (h.version != STATE_VERSION)
        return lfm_fail(LFM_ERR_FORMAT, "state blob version %u, this build reads version %u", h.version, STATE_VERSION);
    fill_header(c, &want);
    if (h.n_layer != want.n_layer || h.n_embd != want.n_embd || h.n_head_kv != want.n_head_kv || h.head_dim != want.head_dim ||
        h.conv_l_cache != want.conv_l_cache || h.n_vocab != want.n_vocab || memcmp(h.is_attn, want.is_attn, sizeof h.is_attn) != 0)
        return lfm_fail(LFM_ERR_ARG, "state blob was saved from a model of another shape (layers %d, embd %d, vocab %d; this model: %d, %d, %d)",
                        h.n_layer, h.n_embd, h.n_vocab, want.n_layer, want.n_embd, want.n_vocab);
    if (h.kv_elem != want.kv_elem)
        return lfm_fail(LFM_ERR_ARG, "state blob holds an %s KV cache, this context keeps %s",
                        h.kv_elem == 2 ? "F16" : "F32", want.kv_elem == 2 ? "F16" : "F32");
    if (h.pos < 0 || h.pos > c->n_ctx)
        return lfm_fail(LFM_ERR_CTX_FULL, "state blob holds %d positions, this context has room for %d", h.pos, c->n_ctx);
    if (h.has_logits != 0 && h.has_logits != 1) return lfm_fail(LFM_ERR_FORMAT, "corrupt state blob (has_logits)");
    size_t pb = payload_bytes(c, h.pos, h.has_logits);
    if (h.payload_bytes != pb || n != sizeof h + pb)
        return lfm_fail(LFM_ERR_FORMAT, "state blob of %zu bytes, %zu expected for %d positions (truncated?)", n, sizeof h + pb, h.pos);
    const unsigned char *in = (const unsigned char *)src + sizeof h;
    if (fnv1a(in, pb, 0xcbf29ce484222325ull) != h.checksum) return lfm_fail(LFM_ERR_FORMAT, "state blob checksum mismatch (corrupt)");
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->busy, &expected, 1))
        return lfm_fail(LFM_ERR_BUSY, "context is in use by another thread");
    c->seqs[0].pos = h.pos;
    c->n_logits = h.has_logits ? 1 : 0; /* the logits piece is written to row 0 */
    c->has_last_logits = h.has_logits != 0;
    FOR_EACH_PIECE(c, h.pos, h.has_logits, (memcpy(ptr, in, bytes), in += bytes));
    atomic_store(&c->busy, 0);
    return LFM_OK;
}
