/* repack.c — load-time re-layout of quantized matmul weights for the running CPU's kernels.
 *
 * Q4_0 -> LFM_LAYOUT_X8 (see lfm_block_q4_0x8): the AVX2 kernel then reads one 32-byte vector holding
 * 4 bytes of each of 8 rows and gets the 8 rows' dot products in the 8 lanes of one register, with
 * the 8 scales converted by one vcvtph2ps, instead of a horizontal reduction and a scalar scale
 * conversion per row and block. Same bytes, same rounding: only the order changes. */
#define _GNU_SOURCE
#include "quants.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define X8_MAX_BLOCKS 8192 /* the AVX2 kernel keeps per-block activation sums on the stack */

static bool can_repack(const lfm_tensor *t) {
    if (t->layout != LFM_LAYOUT_ROWS || !t->data || t->type != LFM_TYPE_Q4_0) return false;
    if (!lfm_qkernels_get()->mm_x8[t->type]) return false;
    if (t->ne[2] > 1 || t->ne[3] > 1) return false;
    return t->ne[1] >= 8 && t->ne[1] % 8 == 0 && t->ne[0] % LFM_QK == 0 && t->ne[0] / LFM_QK <= X8_MAX_BLOCKS;
}

void lfm_repack_q4_0_x8(const void *src, void *dst, int64_t rows, int64_t cols) {
    int64_t nb = cols / LFM_QK;
    const lfm_block_q4_0 *s = src;
    lfm_block_q4_0x8 *d = dst;
    for (int64_t g = 0; g < rows / 8; g++)
        for (int64_t i = 0; i < nb; i++) {
            lfm_block_q4_0x8 *o = d + g * nb + i;
            for (int r = 0; r < 8; r++) {
                const lfm_block_q4_0 *b = s + (g * 8 + r) * nb + i;
                o->d[r] = b->d;
                for (int k = 0; k < 4; k++) memcpy(o->qs + 32 * k + 4 * r, b->qs + 4 * k, 4);
            }
        }
}

void lfm_unpack_q4_0_x8_row(const void *src, int64_t r, int64_t cols, void *dst) {
    int64_t nb = cols / LFM_QK;
    const lfm_block_q4_0x8 *g = (const lfm_block_q4_0x8 *)src + (r / 8) * nb;
    lfm_block_q4_0 *o = dst;
    int rr = (int)(r % 8);
    for (int64_t i = 0; i < nb; i++) {
        o[i].d = g[i].d[rr];
        for (int k = 0; k < 4; k++) memcpy(o[i].qs + 4 * k, g[i].qs + 32 * k + 4 * rr, 4);
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
    size_t bytes = (size_t)(t->ne[0] / LFM_QK) * sizeof(lfm_block_q4_0) * (size_t)t->ne[1];
    void *buf = NULL;
    if (posix_memalign(&buf, 64, bytes) != 0 || !buf)
        return lfm_fail(LFM_ERR_OOM, "repack '%s': cannot allocate %zu bytes", t->name, bytes);
    lfm_repack_q4_0_x8(t->data, buf, t->ne[1], t->ne[0]);
    lfm_status st = lfm_model_own(m, buf);
    if (st != LFM_OK) {
        free(buf);
        return st;
    }
    const void *old = t->data;
    t->data = buf;
    t->layout = LFM_LAYOUT_X8;
    /* the tied head shares tok_embd's bytes, which embedding lookups still read */
    if (old != m->tok_embd.data && in_mapping(m, old)) release_pages(old, bytes);
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
