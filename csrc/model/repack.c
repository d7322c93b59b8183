/* repack.c — load-time re-layout of quantized matmul weights for the running CPU's kernels.
 *
 * Q4_0 / Q8_0 / Q4_K / Q5_K / Q6_K -> LFM_LAYOUT_X8 (see lfm_block_q4_0x8 ... lfm_block_q6_Kx8): block i of
 * 8 consecutive rows stored together, each field of the ggml block interleaved a few bytes at a
 * time, so the AVX2 kernel reads one 32-byte vector holding the same bytes of 8 rows and gets the 8
 * rows' partial sums in the 8 lanes of one register, with the 8 scales converted by one vcvtph2ps.
 * For short rows (the 65536 x 1024 tied output head) this also turns 4 short interleaved streams per
 * tile into one long sequential one, which the hardware prefetcher follows. Same bytes: only the
 * order changes.
 *
 * LFM_REPACK=0 in the environment keeps ggml's row layout (A/B timing). */
#include "model/model.h"
#include "kernels/kernels.h"

#include <stdlib.h>

#define X8_MAX_BLOCKS 8192 /* the Q4_0 kernel keeps per-block activation sums on the stack */

/* An X8 group block is built in two steps: each row's ggml block is first put in the order the
 * kernel reads it (order[i] = source byte of byte i; NULL: ggml's), then the fields [off, off+len)
 * of that are stored for the 8 rows `unit` bytes at a time: unit k of row r at (8k + r) * unit from
 * the start of the field. The kernels then read every group block front to back, one sequential
 * stream, which the hardware prefetcher follows. */
typedef struct { uint8_t off, len, unit; } x8_field;
typedef struct {
    int n;
    x8_field f[5];
    const uint16_t *order;
} x8_format;

/* Q4_K: d, dmin, the 12 scale bytes, then per lane j (< 8) the 4 quant bytes 4j..4j+3 of each
 * 32-byte chunk c (< 4): what tile_q4_Kx8 reads for one lane. */
static void order_q4_K(uint16_t *o) {
    int p = 0;
    for (int i = 0; i < 16; i++) o[p++] = (uint16_t)i;
    for (int j = 0; j < 8; j++)
        for (int c = 0; c < 4; c++)
            for (int b = 0; b < 4; b++) o[p++] = (uint16_t)(16 + 32 * c + 4 * j + b);
}

/* Q5_K: Q4_K's order with the 32 high-bit bytes (kept in ggml's order) between the scales and the
 * quants: the 4 qh bytes 4j..4j+3 hold the fifth bits of lane j in all four chunks. */
static void order_q5_K(uint16_t *o) {
    int p = 0;
    for (int i = 0; i < 48; i++) o[p++] = (uint16_t)i;
    for (int j = 0; j < 8; j++)
        for (int c = 0; c < 4; c++)
            for (int b = 0; b < 4; b++) o[p++] = (uint16_t)(48 + 32 * c + 4 * j + b);
}

/* Q6_K: d, the 16 scales, then per lane j (< 8) and half h (< 2) the 4 bytes at 4j of the ql rows
 * 64h and 64h + 32 and of the qh row 32h: what tile_q6_Kx8 reads for one lane. */
static void order_q6_K(uint16_t *o) {
    int p = 0;
    o[p++] = 208, o[p++] = 209;
    for (int i = 0; i < 16; i++) o[p++] = (uint16_t)(192 + i);
    for (int j = 0; j < 8; j++)
        for (int h = 0; h < 2; h++) {
            const int src[3] = {64 * h + 4 * j, 64 * h + 32 + 4 * j, 128 + 32 * h + 4 * j};
            for (int m = 0; m < 3; m++)
                for (int b = 0; b < 4; b++) o[p++] = (uint16_t)(src[m] + b);
        }
}

/* Where each 2-byte pair p of a group block comes from: row row[p] (< 8) of the group, bytes off[p]
 * and off[p] + 1 of that row's ggml block (every field unit and every order run is 2 or 4 bytes
 * from an even offset). Built once per type from the format; repacking is one gather loop. */
typedef struct {
    uint8_t row[4 * sizeof(lfm_block_q6_K)];
    uint16_t off[4 * sizeof(lfm_block_q6_K)];
} x8_map;

enum { X8_Q4_0, X8_Q8_0, X8_Q4_K, X8_Q5_K, X8_Q6_K, X8_N };
static uint16_t ord_q4_K[sizeof(lfm_block_q4_K)], ord_q5_K[sizeof(lfm_block_q5_K)], ord_q6_K[sizeof(lfm_block_q6_K)];
static const x8_format formats[X8_N] = {
    [X8_Q4_0] = {2, {{0, 2, 2}, {2, 16, 4}}, NULL},
    [X8_Q8_0] = {2, {{0, 2, 2}, {2, 32, 4}}, NULL},
    [X8_Q4_K] = {4, {{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 128, 4}}, ord_q4_K},
    [X8_Q5_K] = {5, {{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 32, 4}, {48, 128, 4}}, ord_q5_K},
    [X8_Q6_K] = {3, {{0, 2, 2}, {2, 16, 2}, {18, 192, 4}}, ord_q6_K},
};
static const lfm_type format_types[X8_N] = {LFM_TYPE_Q4_0, LFM_TYPE_Q8_0, LFM_TYPE_Q4_K, LFM_TYPE_Q5_K,
                                            LFM_TYPE_Q6_K};
static x8_map maps[X8_N];

static void maps_init(void) {
    order_q4_K(ord_q4_K);
    order_q5_K(ord_q5_K);
    order_q6_K(ord_q6_K);
    for (int t = 0; t < X8_N; t++) {
        const x8_format *fmt = &formats[t];
        for (int r = 0; r < 8; r++) {
            size_t pos = 0;
            for (int i = 0; i < fmt->n; i++) {
                const x8_field *f = &fmt->f[i];
                for (int k = 0; k < f->len / f->unit; k++)
                    for (int b = 0; b < f->unit; b += 2) {
                        size_t gp = pos + (size_t)(8 * k + r) * f->unit + b, pp = f->off + k * f->unit + b;
                        maps[t].row[gp / 2] = (uint8_t)r;
                        maps[t].off[gp / 2] = fmt->order ? fmt->order[pp] : (uint16_t)pp;
                    }
                pos += 8 * (size_t)f->len;
            }
        }
    }
}

static const x8_map *x8_map_of(lfm_type t) {
    static lfm_once_flag once = LFM_ONCE_INIT;
    for (int i = 0; i < X8_N; i++)
        if (format_types[i] == t) {
            lfm_once(&once, maps_init);
            return &maps[i];
        }
    return NULL;
}

bool lfm_type_has_x8(lfm_type t) { return x8_map_of(t) != NULL; }

static bool repack_enabled(void) {
    const char *e = lfm_env("LFM_REPACK");
    return !(e && strcmp(e, "0") == 0);
}

static bool can_repack(const lfm_tensor *t) {
    if (t->layout != LFM_LAYOUT_ROWS || !t->data || !lfm_type_has_x8(t->type)) return false;
    if (!lfm_qkernels_get()->mm_x8[t->type]) return false;
    if (t->ne[3] > 1) return false;
    /* an expert stack (ne[2] matrices) repacks matrix by matrix: 8-row groups never straddle two
     * experts, so the stack stays ne[2] X8 matrices one after the other (lfm_tensor_slice) */
    int64_t be = lfm_type_block_elems(t->type);
    return t->ne[1] >= 8 && t->ne[1] % 8 == 0 && t->ne[0] % be == 0 && t->ne[0] / be <= X8_MAX_BLOCKS;
}

void lfm_repack_x8(lfm_type t, const void *src, void *dst, int64_t rows, int64_t cols) {
    const x8_map *mp = x8_map_of(t);
    int64_t nb = cols / lfm_type_block_elems(t);
    size_t bs = lfm_type_block_bytes(t), gs = 8 * bs;
    for (int64_t g = 0; g < rows / 8; g++)
        for (int64_t i = 0; i < nb; i++) {
            const uint8_t *rb[8];
            for (int r = 0; r < 8; r++) rb[r] = (const uint8_t *)src + (size_t)((g * 8 + r) * nb + i) * bs;
            uint8_t *o = (uint8_t *)dst + (size_t)(g * nb + i) * gs;
            for (size_t p = 0; p < gs / 2; p++) memcpy(o + 2 * p, rb[mp->row[p]] + mp->off[p], 2);
        }
}

void lfm_unpack_x8_row(lfm_type t, const void *src, int64_t r, int64_t cols, int64_t i0, int64_t nb, void *dst) {
    const x8_map *mp = x8_map_of(t);
    int64_t nbr = cols / lfm_type_block_elems(t);
    size_t bs = lfm_type_block_bytes(t), gs = 8 * bs;
    const uint8_t *g = (const uint8_t *)src + (size_t)((r / 8) * nbr) * gs;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = g + (size_t)(i0 + i) * gs;
        uint8_t *o = (uint8_t *)dst + (size_t)i * bs;
        for (size_t p = 0; p < gs / 2; p++)
            if (mp->row[p] == r % 8) memcpy(o + mp->off[p], b + 2 * p, 2);
    }
}

static bool in_mapping(const struct lfm_model *m, const void *p) {
    for (int32_t i = 0; i < m->n_maps; i++) {
        const char *a = m->maps[i].addr;
        if (a && (const char *)p >= a && (const char *)p < a + m->maps[i].size) return true;
    }
    return false;
}

/* Repack rows [0, rows) of src (a mapped file's pages when mapped) into dst. */
static void repack_rows(lfm_type type, const uint8_t *src, uint8_t *dst, int64_t rows, int64_t cols, size_t bw, bool mapped) {
    /* A slice of rows at a time, dropping the file pages already copied from this process as we
     * go (they stay in the page cache), so the peak RSS holds the copy plus one slice, not both
     * matrices. A tied head shares tok_embd's bytes: embedding lookups then fault back in only
     * the rows they read. */
    const int64_t slice = 4096; /* rows, a multiple of 8 */
    for (int64_t r0 = 0; r0 < rows; r0 += slice) {
        int64_t n = lfm_min64(slice, rows - r0);
        lfm_repack_x8(type, src + (size_t)r0 * bw, dst + (size_t)r0 * bw, n, cols);
        if (mapped) lfm_release_pages(src, (size_t)(r0 + n) * bw);
    }
}

static lfm_status repack_one(struct lfm_model *m, lfm_tensor *t) {
    if (!can_repack(t)) return LFM_OK;
    const size_t bw = lfm_tensor_row_bytes(t), matrix = bw * (size_t)t->ne[1];
    size_t bytes = matrix * (size_t)t->ne[2];
    void *buf = lfm_aligned_alloc(64, bytes);
    if (!buf)
        return lfm_fail(LFM_ERR_OOM, "repack '%s': cannot allocate %zu bytes", t->name, bytes);
    lfm_status st = lfm_model_own(m, buf);
    if (st != LFM_OK) {
        free(buf);
        return st;
    }
    for (int64_t i = 0; i < t->ne[2]; i++) { /* one matrix, or each expert's */
        const uint8_t *src = lfm_tensor_slice(t, i).data;
        repack_rows(t->type, src, (uint8_t *)buf + (size_t)i * matrix, t->ne[1], t->ne[0], bw, in_mapping(m, src));
    }
    t->data = buf;
    t->slices = NULL;
    t->layout = LFM_LAYOUT_X8;
    return LFM_OK;
}

lfm_status lfm_model_repack(struct lfm_model *m) {
    if (lfm_cpu()->force_ref || !repack_enabled()) return LFM_OK;
    lfm_status st = LFM_OK;
    for (int32_t l = -1; st == LFM_OK && l < m->cfg.n_layer; l++) /* -1: the global tensors (the head) */
        for (int id = 0; st == LFM_OK && id < LFM_TENSOR_COUNT; id++)
            if (lfm_tensor_is_matmul(id) && lfm_tensor_applies(id, &m->cfg, l)) st = repack_one(m, lfm_model_tensor(m, id, l));
    /* Embedding lookups read one row per token at random: without this the kernel reads ahead
     * 64 KiB around each, and the file pages of a tied head released above come back. */
    const lfm_tensor *E = &m->tok_embd;
    if (st == LFM_OK && E->layout == LFM_LAYOUT_ROWS && in_mapping(m, E->data))
        lfm_advise_random(E->data, lfm_tensor_row_bytes(E) * (size_t)E->ne[1]);
    return st;
}
