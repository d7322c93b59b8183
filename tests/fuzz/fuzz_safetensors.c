/* fuzz_safetensors — a Hugging Face folder from the fuzzer: the input is config.json, the separator
 * line FUZZ_SEP, then model.safetensors (no separator: the whole input is config.json and the
 * weights file is empty). lfm_model_load on the folder, then one forward of a few tokens.
 * Seeds: tests/fuzz/make_seeds.py (tiny random-weight LFM2 checkpoints). */
#include "fuzz_common.h"

#define FUZZ_SEP "\n--model.safetensors--\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_tmpdir();
    char cfg_path[320], st_path[320];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);

    const uint8_t *sep = memmem(data, size, FUZZ_SEP, strlen(FUZZ_SEP));
    size_t n_cfg = sep ? (size_t)(sep - data) : size;
    const uint8_t *st_data = sep ? sep + strlen(FUZZ_SEP) : data + size;
    fuzz_write(cfg_path, data, n_cfg);
    fuzz_write(st_path, st_data, (size_t)(data + size - st_data));

    fuzz_load_and_run(dir, n_cfg & 1);
    return 0;
}
