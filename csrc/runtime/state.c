/* state.c — save / restore the whole recurrent state of a context's sequence 0 as one blob (the layout
 * depends on the model and the position only, never on the context's n_seq, n_ctx or n_batch, so
 * blobs move between contexts).
 *
 * Layout (little-endian host order, all fields 4 or 8 bytes):
 *   header: magic "LFMS", version, model shape (n_layer, n_embd, n_head_kv, head_dim, conv_l_cache,
 *           n_vocab, layer-type bitmaps: attention, sliding window; the window), pos, has_logits,
 *           bytes per KV value (4: F32, 2: F16), payload size, FNV-1a checksum of the payload
 *   payload: conv states (n_layer_conv, K-1, H) f32; per attention layer its K rows then its V rows
 *           (kv_dim values each) for the positions a later token can still see, in position order:
 *           0..pos-1 in a full layer, the last n_swa-1 of them in a sliding-window layer (whatever
 *           ring the context keeps them in); the last logits row (n_vocab f32) if has_logits.
 * Version 3 added the sliding-window layers (LFM3); version 2 blobs (LFM2 only) are refused by
 * version, not misread. */
#include "runtime/runtime.h"

#include <string.h>

#define STATE_MAGIC 0x534D464Cu /* "LFMS" */
#define STATE_VERSION 3u

typedef struct {
    uint32_t magic, version;
    int32_t n_layer, n_embd, n_head_kv, head_dim, conv_l_cache, n_vocab;
    uint8_t is_attn[LFM_MAX_LAYERS];
    uint8_t is_swa[LFM_MAX_LAYERS];
    int32_t n_swa, arch;
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

/* The first position attention layer l (a = c->slot[l]) keeps in a blob of pos positions. */
static int32_t first_kept(const lfm_ctx *c, int32_t l, int32_t pos) {
    const lfm_config *cfg = &c->model->cfg;
    return cfg->is_swa[l] && pos > cfg->n_swa - 1 ? pos - (cfg->n_swa - 1) : 0;
}

static size_t payload_bytes(const lfm_ctx *c, int32_t pos, bool has_logits) {
    const lfm_config *cfg = &c->model->cfg;
    size_t n = (size_t)c->n_layer_conv * lfm_conv_state_bytes(c);
    if (has_logits) n += (size_t)cfg->n_vocab * sizeof(float);
    for (int32_t l = 0; l < cfg->n_layer; l++)
        if (cfg->is_attn[l]) n += 2 * (size_t)(pos - first_kept(c, l, pos)) * lfm_kv_row_bytes(c);
    return n;
}

static void fill_header(const lfm_ctx *c, state_header *h) {
    const lfm_config *cfg = &c->model->cfg;
    memset(h, 0, sizeof *h);
    h->magic = STATE_MAGIC;
    h->version = STATE_VERSION;
    h->n_layer = cfg->n_layer, h->n_embd = cfg->n_embd, h->n_head_kv = cfg->n_head_kv;
    h->head_dim = cfg->head_dim, h->conv_l_cache = cfg->conv_l_cache, h->n_vocab = cfg->n_vocab;
    memcpy(h->is_attn, cfg->is_attn, sizeof h->is_attn);
    memcpy(h->is_swa, cfg->is_swa, sizeof h->is_swa);
    h->n_swa = cfg->n_swa, h->arch = cfg->arch;
    h->kv_elem = (int32_t)c->kv_elem;
}

size_t lfm_ctx_state_size(const lfm_ctx *c) {
    if (!c) return 0;
    return sizeof(state_header) + payload_bytes(c, c->seqs[0].pos, c->has_last_logits);
}

/* Visit the payload's pieces in order, running STMT with `ptr` and `bytes` set to each, and `mirror`
 * to the ring's second copy of a KV row (NULL elsewhere): a full layer's rows are one piece, a
 * sliding layer's one piece per position (its rows are in ring order). */
#define FOR_EACH_PIECE(c, pos, has_logits, STMT)                                                                      \
    do {                                                                                                               \
        const lfm_config *cfg_ = &(c)->model->cfg;                                                                     \
        {                                                                                                              \
            float *ptr = (c)->seqs[0].conv_state;                                                                      \
            void *mirror = NULL;                                                                                       \
            size_t bytes = (size_t)(c)->n_layer_conv * lfm_conv_state_bytes(c);                                       \
            if (bytes) STMT;                                                                                           \
        }                                                                                                              \
        for (int32_t l_ = 0; l_ < cfg_->n_layer; l_++) {                                                               \
            if (!cfg_->is_attn[l_]) continue;                                                                          \
            const int32_t a_ = (c)->slot[l_], p0_ = first_kept((c), l_, (pos)), ring_ = (c)->kv_ring[a_];              \
            for (int kv_ = 0; kv_ < 2; kv_++) {                                                                        \
                void *cache_ = kv_ ? (c)->seqs[0].v_cache : (c)->seqs[0].k_cache;                                     \
                if (!ring_) {                                                                                          \
                    void *ptr = lfm_kv_row((c), cache_, a_, p0_), *mirror = NULL;                                      \
                    size_t bytes = (size_t)((pos) - p0_) * lfm_kv_row_bytes(c);                                        \
                    if (bytes) STMT;                                                                                   \
                } else {                                                                                               \
                    for (int32_t p_ = p0_; p_ < (pos); p_++) {                                                         \
                        const int32_t r_ = lfm_kv_slot((c), a_, p_);                                                   \
                        void *ptr = lfm_kv_row((c), cache_, a_, r_), *mirror = lfm_kv_row((c), cache_, a_, r_ + ring_); \
                        size_t bytes = lfm_kv_row_bytes(c);                                                            \
                        STMT;                                                                                          \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        if (has_logits) {                                                                                              \
            size_t n_vocab_ = (size_t)(c)->model->cfg.n_vocab;                                                         \
            float *ptr = (c)->logits + (size_t)((c)->n_logits - 1) * n_vocab_;                                         \
            void *mirror = NULL;                                                                                       \
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
    FOR_EACH_PIECE(c, c->seqs[0].pos, c->has_last_logits, ((void)mirror, memcpy(out, ptr, bytes), sum = fnv1a(out, bytes, sum), out += bytes));
    h.checksum = sum;
    memcpy(dst, &h, sizeof h);
    if (written) *written = need;
    return LFM_OK;
}

lfm_status lfm_ctx_state_load(lfm_ctx *c, const void *src, size_t n) {
    if (!c || !src) return lfm_fail(LFM_ERR_ARG, "lfm_ctx_state_load: NULL argument");
    state_header h, want;
    uint32_t magic_version[2];
    if (n >= sizeof magic_version) { /* an older, shorter header is named by its version, not its size */
        memcpy(magic_version, src, sizeof magic_version);
        if (magic_version[0] != STATE_MAGIC) return lfm_fail(LFM_ERR_FORMAT, "not a liquidlfm state blob (bad magic)");
        if (magic_version[1] != STATE_VERSION)
            return lfm_fail(LFM_ERR_FORMAT, "state blob version %u, this build reads version %u (save it again with this build)",
                            magic_version[1], STATE_VERSION);
    }
    if (n < sizeof h) return lfm_fail(LFM_ERR_FORMAT, "state blob of %zu bytes is too short (header is %zu)", n, sizeof h);
    memcpy(&h, src, sizeof h);
    fill_header(c, &want);
    if (h.n_layer != want.n_layer || h.n_embd != want.n_embd || h.n_head_kv != want.n_head_kv || h.head_dim != want.head_dim ||
        h.conv_l_cache != want.conv_l_cache || h.n_vocab != want.n_vocab || memcmp(h.is_attn, want.is_attn, sizeof h.is_attn) != 0 ||
        memcmp(h.is_swa, want.is_swa, sizeof h.is_swa) != 0 || h.n_swa != want.n_swa || h.arch != want.arch)
        return lfm_fail(LFM_ERR_ARG, "state blob was saved from a model of another shape (layers %d, embd %d, vocab %d, conv kernel %d, "
                        "sliding window %d; this model: %d, %d, %d, %d, %d)", h.n_layer, h.n_embd, h.n_vocab, h.conv_l_cache, h.n_swa,
                        want.n_layer, want.n_embd, want.n_vocab, want.conv_l_cache, want.n_swa);
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
    FOR_EACH_PIECE(c, h.pos, h.has_logits, (memcpy(ptr, in, bytes), mirror ? memcpy(mirror, in, bytes) : NULL, in += bytes));
    atomic_store(&c->busy, 0);
    return LFM_OK;
}
