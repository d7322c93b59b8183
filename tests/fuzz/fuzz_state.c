/* fuzz_state — lfm_ctx_state_load on arbitrary blobs, for a model loaded once from $FUZZ_MODEL
 * (make_seeds.py writes it next to the seeds; contexts of 16 positions with F32 and F16 caches).
 * Input: byte 0 = mode (bit 0: pick the F16-cache context; bit 1: recompute the blob's payload
 * checksum first, so mutations get past it into the payload/shape checks), then the blob.
 * After a successful load: the logits row is read and one more token is decoded. */
#include "fuzz_common.h"

static lfm_model *g_model;
static lfm_ctx *g_ctx[2];

/* Mirrors the header in csrc/runtime/state.c (the checksum field is its last 8 bytes). */
#define STATE_HEADER_BYTES (2 * 4 + 6 * 4 + 2 * LFM_MAX_LAYERS + 2 * 4 + 4 * 4 + 2 * 8)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *path = getenv("FUZZ_MODEL");
    if (!path) {
        fprintf(stderr, "fuzz_state: set FUZZ_MODEL to a small model (tests/fuzz/make_seeds.py writes one)\n");
        exit(2);
    }
    lfm_model_params mp = lfm_model_default_params();
    mp.n_threads = 1;
    if (lfm_model_load(path, &mp, &g_model) != LFM_OK) {
        fprintf(stderr, "fuzz_state: %s: %s\n", path, lfm_last_error());
        exit(2);
    }
    for (int i = 0; i < 2; i++) {
        lfm_ctx_params cp = lfm_ctx_default_params();
        cp.n_ctx = 16, cp.n_batch = 8, cp.n_threads = 1, cp.kv_f16 = i;
        if (lfm_ctx_init(g_model, &cp, &g_ctx[i]) != LFM_OK) {
            fprintf(stderr, "fuzz_state: ctx: %s\n", lfm_last_error());
            exit(2);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t mode = data[0];
    lfm_ctx *c = g_ctx[mode & 1];
    size_t n = size - 1;
    uint8_t *blob = malloc(n ? n : 1);
    memcpy(blob, data + 1, n);
    if ((mode & 2) && n >= STATE_HEADER_BYTES) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (size_t i = STATE_HEADER_BYTES; i < n; i++) h = (h ^ blob[i]) * 0x100000001b3ull;
        memcpy(blob + STATE_HEADER_BYTES - 8, &h, 8);
    }
    lfm_ctx_reset(c);
    lfm_status st = lfm_ctx_state_load(c, blob, n);
    fuzz_check_error(st);
    if (st != LFM_OK) {
        if (lfm_ctx_pos(c) != 0) abort(); /* on failure the context is unchanged */
    } else {
        int32_t rows = 0;
        const float *lg = lfm_ctx_logits(c, &rows);
        const lfm_config *cfg = lfm_model_config(g_model);
        volatile float acc = 0;
        if (lg)
            for (int64_t i = 0; i < (int64_t)rows * cfg->n_vocab; i++) acc += lg[i];
        size_t need = lfm_ctx_state_size(c), written = 0;
        if (need != n) abort(); /* the state just loaded has exactly the blob's size */
        uint8_t *again = malloc(need);
        if (lfm_ctx_state_save(c, again, need, &written) != LFM_OK || written != need) abort();
        free(again);
        lfm_token t = 1;
        fuzz_check_error(lfm_ctx_decode(c, &t, 1, LFM_LOGITS_LAST));
    }
    free(blob);
    return 0;
}
