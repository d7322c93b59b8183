/* fuzz_gguf — a GGUF file from the fuzzer: the header reader (every key, array element and tensor
 * info through the public lfm_gguf_* API), then lfm_model_load and one forward of a few tokens with
 * an F32 or F16 KV cache. Seeds: tests/fuzz/make_seeds.py (tiny random-weight LFM2 GGUFs). */
#include "fuzz_common.h"

static void walk_header(const char *path) {
    lfm_gguf *g = NULL;
    lfm_status st = lfm_gguf_open(path, &g);
    fuzz_check_error(st);
    if (st != LFM_OK) return;
    (void)lfm_gguf_version(g);
    int64_t n_kv = lfm_gguf_n_kv(g);
    volatile size_t acc = 0;
    for (int64_t i = 0; i < n_kv; i++) {
        const char *key = lfm_gguf_key(g, i);
        if (key) acc += strlen(key), (void)lfm_gguf_find_key(g, key);
        int64_t iv;
        double dv;
        const char *s;
        uint64_t len, n;
        lfm_gguf_value_type et;
        switch (lfm_gguf_kv_type(g, i)) {
        case LFM_GGUF_STRING:
            if (lfm_gguf_get_str(g, i, &s, &len) == LFM_OK && len) acc += (uint8_t)s[len - 1];
            break;
        case LFM_GGUF_ARRAY:
            if (lfm_gguf_get_arr_info(g, i, &et, &n) != LFM_OK) break;
            for (uint64_t j = 0; j < n && j < 4096; j++) {
                if (et == LFM_GGUF_STRING) {
                    if (lfm_gguf_get_arr_str(g, i, j, &s, &len) == LFM_OK && len) acc += (uint8_t)s[len - 1];
                } else if (et == LFM_GGUF_FLOAT32 || et == LFM_GGUF_FLOAT64) {
                    (void)lfm_gguf_get_arr_float(g, i, j, &dv);
                } else {
                    (void)lfm_gguf_get_arr_int(g, i, j, &iv);
                }
            }
            (void)lfm_gguf_get_arr_int(g, i, n, &iv); /* one past the end: must be refused */
            break;
        default:
            (void)lfm_gguf_get_int(g, i, &iv);
            (void)lfm_gguf_get_float(g, i, &dv);
        }
    }
    int64_t nt = lfm_gguf_n_tensors(g);
    for (int64_t i = 0; i < nt; i++) {
        const char *name;
        lfm_type type;
        int32_t nd;
        int64_t ne[4];
        const void *data;
        size_t nbytes;
        if (lfm_gguf_tensor_info(g, i, &name, &type, &nd, ne, &data, &nbytes) != LFM_OK) continue;
        (void)lfm_gguf_find_tensor(g, name);
        if (nbytes) acc += ((const uint8_t *)data)[0] + ((const uint8_t *)data)[nbytes - 1];
    }
    lfm_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    snprintf(path, sizeof path, "%s/in.gguf", fuzz_tmpdir());
    fuzz_write(path, data, size);
    walk_header(path);

    /* the last byte picks the cache type, so both the F32 and F16 attention paths are reached */
    fuzz_load_and_run(path, size ? data[size - 1] & 1 : 0);
    unlink(path);
    return 0;
}
