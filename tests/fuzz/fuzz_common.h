/* fuzz_common.h — helpers shared by the libFuzzer targets in tests/fuzz/ (not part of the engine). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lfm.h"

/* A per-process scratch directory (libFuzzer -jobs/-fork runs several processes). */
static const char *fuzz_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/lfm_fuzz_%d", base && *base ? base : "/tmp", (int)getpid());
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
        if (system(cmd) != 0) abort();
    }
    return dir;
}

static void fuzz_write(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
}

/* A failure must leave a message: every lfm_status != OK comes with lfm_last_error(). */
static void fuzz_check_error(lfm_status st) {
    if (st == LFM_OK) return;
    const char *e = lfm_last_error();
    if (!e || !*e) {
        fprintf(stderr, "status %d (%s) without an error message\n", (int)st, lfm_status_str(st));
        abort();
    }
}

/* One decode of a couple of tokens on a loaded model, with a small context: the model must run or
 * refuse cleanly; logits are read (so ASan sees an uninitialised/short buffer). */
static void fuzz_run_model(const lfm_model *m, int kv_f16) {
    const lfm_config *cfg = lfm_model_config(m);
    if (!cfg || cfg->n_vocab <= 0) abort();
    lfm_ctx_params cp = lfm_ctx_default_params();
    cp.n_ctx = 8;
    cp.n_batch = 4;
    cp.n_threads = 1;
    cp.kv_f16 = kv_f16;
    lfm_ctx *c = NULL;
    lfm_status st = lfm_ctx_init(m, &cp, &c);
    fuzz_check_error(st);
    if (st != LFM_OK) return;
    lfm_token toks[3] = {0, cfg->n_vocab > 1 ? 1 : 0, cfg->n_vocab - 1};
    st = lfm_ctx_decode(c, toks, 3, LFM_LOGITS_ALL);
    fuzz_check_error(st);
    if (st == LFM_OK) {
        int32_t rows = 0;
        const float *lg = lfm_ctx_logits(c, &rows);
        if (!lg || rows != 3) abort();
        volatile float acc = 0;
        for (int64_t i = 0; i < (int64_t)rows * cfg->n_vocab; i++) acc += lg[i];
        (void)acc;
        st = lfm_ctx_decode(c, toks, 1, LFM_LOGITS_LAST);  /* one more step on the cache */
        fuzz_check_error(st);
    }
    lfm_ctx_free(c);
}

/* Load path (a GGUF file or an HF folder) with one thread; if it loads, describe it and run it. A
 * failure must leave *out NULL. */
static void fuzz_load_and_run(const char *path, int kv_f16) {
    lfm_model_params mp = lfm_model_default_params();
    mp.n_threads = 1;
    lfm_model *m = NULL;
    lfm_status st = lfm_model_load(path, &mp, &m);
    fuzz_check_error(st);
    if (st == LFM_OK) {
        char desc[4096];
        (void)lfm_model_describe(m, desc, sizeof desc);
        fuzz_run_model(m, kv_f16);
        lfm_model_free(m);
    } else if (m) {
        abort();
    }
}

#endif
