/* repack.c — load-time re-layout of quantized matmul weights for the running CPU's kernels.
 *
 * Q4_0 / Q8_0 -> LFM_LAYOUT_X8 (see lfm_block_q4_0x8): the AVX2 kernel then reads one 32-byte vector holding
 * 4 bytes of each of 8 rows and gets the 8 rows' dot products in the 8 lanes of one register, with
 * the 8 scales converted by one vcvtph2ps, instead of a horizontal reduction and a scalar scale
 * conversion per row and block. Same bytes, same rounding: only the order changes. */
#define _GNU_SOURCE
#include "quants.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define X8_MAX_BLOCKS 8192 /* the AVX2 kernel keeps per-block activation sums on the stack */

bool lfm_type_has_x8(lfm_type t) { return t == LFM_TYPE_Q4_0 || t == LFM_TYPE_Q8_0; }

static bool can_repack(const lfm_tensor *t) {
    if (t->layout != LFM_LAYOUT_ROWS || !t->data || !lfm_type_has_x8(t->type)) return false;
    if (!lfm_qkernels_get()->mm_x8[t->type]) return false;
    if (t->ne[2] > 1 || t->ne[3] > 1) return false;
    return t->ne[1] >= 8 && t->ne[1] % 8 == 0 && t->ne[0] % LFM_QK == 0 && t->ne[0] / LFM_QK <= X8_MAX_BLOCKS;
}

/* Both X8 types are (fp16 d, qsz bytes of quants) per block; the group block is the 8 d's then the
 * quants interleaved 4 bytes at a time. */
static size_t qs_bytes(lfm_type t) { return t == LFM_TYPE_Q4_0 ? 16 : 32; }

void lfm_repack_x8(lfm_type t, const void *src, void *dst, int64_t rows, int64_t cols) {
    int64_t nb = cols / LFM_QK;
    size_t qsz = qs_bytes(t), bs = 2 + qsz, gs = 8 * bs;
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t g = 0; g < rows / 8; g++)
        for (int64_t i = 0; i < nb; i++) {
            uint8_t *o = d + (size_t)(g * nb + i) * gs;
            for (int r = 0; r < 8; r++) {
                const uint8_t *b = s + (size_t)((g * 8 + r) * nb + i) * bs;
                memcpy(o + 2 * r, b, 2);
                for (size_t k = 0; k < qsz / 4; k++) memcpy(o + 16 + 32 * k + 4 * r, b + 2 + 4 * k, 4);
            }
        }
}

void lfm_unpack_x8_row(lfm_type t, const void *src, int64_t r, int64_t cols, int64_t i0, int64_t nb, void *dst) {
    int64_t nbr = cols / LFM_QK;
    size_t qsz = qs_bytes(t), bs = 2 + qsz, gs = 8 * bs;
    const uint8_t *g = (const uint8_t *)src + (size_t)((r / 8) * nbr) * gs;
    uint8_t *o = dst;
    int rr = (int)(r % 8);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = g + (size_t)(i0 + i) * gs;
        memcpy(o + i * bs, b + 2 * rr, 2);
        for (size_t k = 0; k < qsz / 4; k++) memcpy(o + i * bs + 2 + 4 * k, b + 16 + 32 * k + 4 * rr, 4);
    }
}

/* Let the kernel forget file pages no longer read (they stay in the page cache). */
static void release_pages(const void *p, size_t n) {
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~(uintptr_t)(ps - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(ps - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static bool in_mapping(const struct lfm_model *m, const void *p) {
    for (int32_t i = 0; i < m->n_maps; i++) {
        const char *a = m->maps[i].addr;
        if (a && (const char *)p >= a && (const char *)p < a + m->maps[i].size) return true;
    }
    return false;
}

static lfm_status repack_one(struct lfm_model *m, lfm_tensor *t) {
    if (!can_repack(t)) return LFM_OK;
    size_t bytes = (size_t)(t->ne[0] / LFM_QK) * lfm_type_block_bytes(t->type) * (size_t)t->ne[1];
    void *buf = NULL;
    if (posix_memalign(&buf, 64, bytes) != 0 || !buf)
        return lfm_fail(LFM_ERR_OOM, "repack '%s': cannot allocate %zu bytes", t->name, bytes);
    lfm_repack_x8(t->type, t->data, buf, t->ne[1], t->ne[0]);
    lfm_status st = lfm_model_own(m, buf);
    if (st != LFM_OK) {
        free(buf);
        return st;
    }
    const void *old = t->data;
    t->data = buf;
    t->layout = LFM_LAYOUT_X8;
    /* Drop the file pages from this process (they stay in the page cache). A tied head shares
     * tok_embd's bytes: embedding lookups then fault back in only the rows they read. */
    if (in_mapping(m, old)) release_pages(old, bytes);
    return LFM_OK;
}

lfm_status lfm_model_repack(struct lfm_model *m) {
    if (lfm_cpu()->force_ref) return LFM_OK;
    lfm_status st = repack_one(m, &m->output);
    for (int32_t i = 0; st == LFM_OK && i < m->cfg.n_layer; i++) {
        lfm_layer *l = &m->layers[i];
        lfm_tensor *ts[] = {&l->ffn_gate, &l->ffn_up, &l->ffn_down, &l->conv_in_proj, &l->conv_out_proj,
                            &l->wq, &l->wk, &l->wv, &l->wo};
        for (size_t k = 0; st == LFM_OK && k < sizeof ts / sizeof ts[0]; k++) st = repack_one(m, ts[k]);
    }
    return st;
}
