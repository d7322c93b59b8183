/* format/format.h — file formats: GGUF internals and the Hugging Face config.json (bytes in,
 * validated descriptions out). */
#ifndef LFM_FORMAT_H
#define LFM_FORMAT_H

#include "base/base.h"
#include "format/json.h"

/* ---- GGUF internals (format/gguf.c) ---- */

/* Size of one scalar of value type t, 0 for string/array/unknown. */
uint64_t lfm_gguf_scalar_size(uint32_t t);
uint64_t lfm_gguf_alignment(const lfm_gguf *g);
uint64_t lfm_gguf_data_offset(const lfm_gguf *g);                /* file offset of the data section */
uint64_t lfm_gguf_tensor_offset(const lfm_gguf *g, int64_t i);   /* relative to the data section */
/* Raw bytes of metadata value i inside the mapping (already validated; arrays include their
 * 12-byte header), e.g. to decode nested arrays. */
lfm_status lfm_gguf_kv_data(const lfm_gguf *g, int64_t i, const void **data, size_t *size);
/* Move the file mapping out of g (the caller unmaps it); metadata accessors stay valid as long
 * as the caller keeps the mapping alive. */
void lfm_gguf_take_mapping(lfm_gguf *g, lfm_mapping *out);

/* ---- config.json ---- */

/* The FFN widths a config may mean (docs/architecture.md §2.4): ff_hf is what transformers builds
 * (the one we expect), ff_alt are the other readings seen in converters (always-rounded, raw);
 * the loader accepts w1's shape if it matches one of them. */
typedef struct {
    int64_t ff_hf;
    int64_t ff_alt[2];
} lfm_ff_candidates;

/* Fill cfg from a parsed config.json (n_ff = the transformers reading). LFM_ERR_UNSUPPORTED for
 * MoE / vision / other architectures, LFM_ERR_FORMAT for missing or invalid fields. */
lfm_status lfm_config_from_json(const lfm_json *root, const char *what, lfm_config *cfg, lfm_ff_candidates *ff);

#endif /* LFM_FORMAT_H */
