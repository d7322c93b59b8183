/* load_safetensors.c — Hugging Face checkpoints: config.json + mmapped *.safetensors (single file or
 * sharded with model.safetensors.index.json) → struct lfm_model.
 *
 * Every header is validated against its file before use: 8-byte length, JSON, dtype, shape and
 * data_offsets (in bounds, consistent with shape × dtype size, overflow-safe). Which tensors a
 * checkpoint must have, and their shapes, come from the tensor table (model/tensors.c); any other
 * tensor is an error. Weight matrices stay zero-copy views of the mapping in their file dtype
 * (F32/F16/BF16); norms and conv kernels are converted to F32 buffers owned by the model. */
#define _POSIX_C_SOURCE 200809L
#include "model/model.h"
#include "format/format.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one tensor entry of a header ---- */

typedef struct {
    char *name;
    const char *file;     /* for messages (points into the shard path list) */
    lfm_type type;        /* LFM_TYPE_NONE: a valid safetensors dtype we cannot run */
    char dtype[12];
    int32_t n_dims;
    int64_t shape[8];     /* PyTorch order */
    const void *data;
    size_t nbytes;
    bool used;
} st_entry;

typedef struct {
    st_entry *e;
    int64_t n, cap;
    char **files;         /* shard paths */
    int32_t n_files;
} st_index;

static void index_free(st_index *ix) {
    for (int64_t i = 0; i < ix->n; i++) free(ix->e[i].name);
    free(ix->e);
    for (int32_t i = 0; i < ix->n_files; i++) free(ix->files[i]);
    free(ix->files);
}

static st_entry *index_find(st_index *ix, const char *name) {
    for (int64_t i = 0; i < ix->n; i++)
        if (strcmp(ix->e[i].name, name) == 0) return &ix->e[i];
    return NULL;
}

static const struct {
    const char *name;
    size_t size;
    lfm_type type;
} st_dtypes[] = {
    {"F32", 4, LFM_TYPE_F32}, {"F16", 2, LFM_TYPE_F16}, {"BF16", 2, LFM_TYPE_BF16},
    {"F64", 8, LFM_TYPE_NONE}, {"I64", 8, LFM_TYPE_NONE}, {"U64", 8, LFM_TYPE_NONE},
    {"I32", 4, LFM_TYPE_NONE}, {"U32", 4, LFM_TYPE_NONE}, {"I16", 2, LFM_TYPE_NONE},
    {"U16", 2, LFM_TYPE_NONE}, {"I8", 1, LFM_TYPE_NONE}, {"U8", 1, LFM_TYPE_NONE},
    {"BOOL", 1, LFM_TYPE_NONE}, {"F8_E4M3", 1, LFM_TYPE_NONE}, {"F8_E5M2", 1, LFM_TYPE_NONE},
    {"F8_E8M0", 1, LFM_TYPE_NONE},
};

static lfm_status add_map(struct lfm_model *m, const char *path, lfm_mapping *out) {
    lfm_mapping *nm = realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof *nm);
    if (!nm) return lfm_fail(LFM_ERR_OOM, "out of memory");
    m->maps = nm;
    lfm_status st = lfm_map_file(path, &m->maps[m->n_maps]);
    if (st != LFM_OK) return st;
    *out = m->maps[m->n_maps++];
    return LFM_OK;
}

/* Map one .safetensors file and append its tensors to ix. */
static lfm_status read_shard(struct lfm_model *m, st_index *ix, const char *path) {
    lfm_mapping map = {0};
    lfm_status st = add_map(m, path, &map);
    if (st != LFM_OK) return st;
    const unsigned char *b = map.addr;
    if (map.size < 8) return lfm_fail(LFM_ERR_FORMAT, "'%s': file of %zu bytes is too short for a safetensors header", path, map.size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen < 2 || hlen > map.size - 8)
        return lfm_fail(LFM_ERR_FORMAT, "'%s': header length %llu does not fit in a file of %zu bytes (truncated or not safetensors)",
                        path, (unsigned long long)hlen, map.size);
    size_t data_size = map.size - 8 - (size_t)hlen;
    const unsigned char *data = b + 8 + hlen;
    lfm_json *root = NULL;
    st = lfm_json_parse((const char *)b + 8, (size_t)hlen, path, &root);
    if (st != LFM_OK) return st;
    if (root->type != LFM_JSON_OBJECT) {
        lfm_json_free(root);
        return lfm_fail(LFM_ERR_FORMAT, "'%s': safetensors header is not a JSON object", path);
    }
    for (int64_t t = 0; t < root->n; t++) {
        const char *name = root->keys[t];
        const lfm_json *v = root->items[t];
        if (strcmp(name, "__metadata__") == 0) {
            if (v->type != LFM_JSON_OBJECT) { st = lfm_fail(LFM_ERR_FORMAT, "'%s': __metadata__ must be an object", path); goto out; }
            continue;
        }
        if (strlen(name) >= sizeof(((lfm_tensor *)0)->name)) {
            st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor name '%.60s...' is too long", path, name);
            goto out;
        }
        if (index_find(ix, name)) { st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s' appears in two shards", path, name); goto out; }
        const lfm_json *dt = lfm_json_get(v, "dtype"), *sh = lfm_json_get(v, "shape"), *off = lfm_json_get(v, "data_offsets");
        if (v->type != LFM_JSON_OBJECT || !dt || dt->type != LFM_JSON_STRING || !sh || sh->type != LFM_JSON_ARRAY || !off ||
            off->type != LFM_JSON_ARRAY) {
            st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': expected an object with dtype, shape, data_offsets", path, name);
            goto out;
        }
        st_entry e = {0};
        size_t esize = 0;
        for (size_t k = 0; k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
            if (strcmp(dt->str, st_dtypes[k].name) == 0) {
                esize = st_dtypes[k].size;
                e.type = st_dtypes[k].type;
                snprintf(e.dtype, sizeof e.dtype, "%s", st_dtypes[k].name);
            }
        if (!esize) { st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': unknown dtype \"%.20s\"", path, name, dt->str); goto out; }
        if (sh->n > 8) { st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': %lld dimensions (at most 8)", path, name, (long long)sh->n); goto out; }
        e.n_dims = (int32_t)sh->n;
        uint64_t count = 1;
        for (int64_t d = 0; d < sh->n; d++) {
            const lfm_json *x = sh->items[d];
            if (x->type != LFM_JSON_NUMBER || !x->is_int || x->i < 0) {
                st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': shape entries must be non-negative integers", path, name);
                goto out;
            }
            e.shape[d] = x->i;
            if (x->i != 0 && count > UINT64_MAX / (uint64_t)x->i) {
                st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': shape overflows", path, name);
                goto out;
            }
            count *= (uint64_t)x->i;
        }
        if (off->n != 2 || off->items[0]->type != LFM_JSON_NUMBER || !off->items[0]->is_int || off->items[1]->type != LFM_JSON_NUMBER ||
            !off->items[1]->is_int || off->items[0]->i < 0 || off->items[1]->i < off->items[0]->i) {
            st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': data_offsets must be [begin, end] with 0 <= begin <= end", path, name);
            goto out;
        }
        uint64_t begin = (uint64_t)off->items[0]->i, end = (uint64_t)off->items[1]->i;
        if (end > data_size) {
            st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': data_offsets [%llu, %llu] run past the %zu data bytes of the file (truncated?)",
                          path, name, (unsigned long long)begin, (unsigned long long)end, data_size);
            goto out;
        }
        if (count > UINT64_MAX / esize || count * esize != end - begin) {
            st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s': %llu bytes between data_offsets, but shape x %s needs %llu", path, name,
                          (unsigned long long)(end - begin), dt->str, (unsigned long long)(count * esize));
            goto out;
        }
        e.data = data + begin;
        e.nbytes = (size_t)(end - begin);
        e.file = path;
        e.name = strdup(name);
        if (!e.name) { st = lfm_fail(LFM_ERR_OOM, "out of memory"); goto out; }
        if (ix->n == ix->cap) {
            int64_t nc = ix->cap ? ix->cap * 2 : 64;
            st_entry *ne = realloc(ix->e, (size_t)nc * sizeof *ne);
            if (!ne) { free(e.name); st = lfm_fail(LFM_ERR_OOM, "out of memory"); goto out; }
            ix->e = ne;
            ix->cap = nc;
        }
        ix->e[ix->n++] = e;
    }
out:
    lfm_json_free(root);
    return st;
}

/* ---- paths ---- */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static lfm_status read_json_file(const char *path, lfm_json **out) {
    lfm_mapping map;
    lfm_status st = lfm_map_file(path, &map);
    if (st != LFM_OK) return st;
    st = lfm_json_parse(map.addr ? map.addr : "", map.size, path, out);
    lfm_unmap_file(&map);
    return st;
}

static lfm_status add_file(st_index *ix, char *path) {
    if (!path) return lfm_fail(LFM_ERR_OOM, "out of memory");
    for (int32_t i = 0; i < ix->n_files; i++)
        if (strcmp(ix->files[i], path) == 0) { free(path); return LFM_OK; }
    char **nf = realloc(ix->files, (size_t)(ix->n_files + 1) * sizeof *nf);
    if (!nf) { free(path); return lfm_fail(LFM_ERR_OOM, "out of memory"); }
    ix->files = nf;
    ix->files[ix->n_files++] = path;
    return LFM_OK;
}

/* Shard list from model.safetensors.index.json ("weight_map": {tensor: file}). */
static lfm_status read_index(const char *dir, const char *index_path, st_index *ix, lfm_json **wm_root) {
    lfm_json *root;
    lfm_status st = read_json_file(index_path, &root);
    if (st != LFM_OK) return st;
    const lfm_json *wm = lfm_json_get(root, "weight_map");
    if (!wm || wm->type != LFM_JSON_OBJECT || wm->n == 0) {
        lfm_json_free(root);
        return lfm_fail(LFM_ERR_FORMAT, "'%s': expected a non-empty \"weight_map\" object", index_path);
    }
    for (int64_t i = 0; i < wm->n; i++) {
        const lfm_json *f = wm->items[i];
        if (f->type != LFM_JSON_STRING || f->len == 0 || strlen(f->str) != f->len || strchr(f->str, '/') || strcmp(f->str, "..") == 0) {
            st = lfm_fail(LFM_ERR_FORMAT, "'%s': weight_map[\"%.80s\"] must be a file name in the same folder", index_path, wm->keys[i]);
            lfm_json_free(root);
            return st;
        }
        if ((st = add_file(ix, join(dir, f->str))) != LFM_OK) { lfm_json_free(root); return st; }
    }
    *wm_root = root;
    return LFM_OK;
}

/* ---- tensors → model ---- */

typedef struct {
    struct lfm_model *m;
    st_index *ix;
} loader;

/* Find name with exactly the given PyTorch shape (n dims); fill t as a view (matrices) */
static lfm_status take(loader *L, const char *name, int n, const int64_t *shape, lfm_tensor *t) {
    st_entry *e = index_find(L->ix, name);
    if (!e) return lfm_fail(LFM_ERR_FORMAT, "missing tensor '%s'", name);
    bool ok = e->n_dims == n;
    for (int d = 0; ok && d < n; d++) ok = e->shape[d] == shape[d];
    if (!ok) {
        char want[96] = "", got[96] = "";
        for (int d = 0; d < n; d++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)shape[d]);
        for (int d = 0; d < e->n_dims; d++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)e->shape[d]);
        return lfm_fail(LFM_ERR_FORMAT, "tensor '%s': expected shape [%s], got [%s]", name, want, got);
    }
    if (e->type == LFM_TYPE_NONE)
        return lfm_fail(LFM_ERR_UNSUPPORTED, "tensor '%s': dtype %s is not supported (expected F32, F16 or BF16)", name, e->dtype);
    e->used = true;
    memset(t, 0, sizeof *t);
    memcpy(t->name, e->name, strlen(e->name) + 1); /* < sizeof t->name, checked when the header was read */
    t->type = e->type;
    t->n_dims = n;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (int d = 0; d < n; d++) t->ne[d] = shape[n - 1 - d];
    t->data = e->data;
    t->nbytes = e->nbytes;
    /* weights are read as float/uint16 arrays: copy the rare misaligned tensor */
    size_t align = e->type == LFM_TYPE_F32 ? 4 : 2;
    if ((uintptr_t)t->data % align != 0) {
        void *copy = malloc(e->nbytes ? e->nbytes : 1);
        if (!copy) return lfm_fail(LFM_ERR_OOM, "out of memory copying tensor '%s'", name);
        memcpy(copy, e->data, e->nbytes);
        lfm_status st = lfm_model_own(L->m, copy);
        if (st != LFM_OK) { free(copy); return st; }
        t->data = copy;
    }
    return LFM_OK;
}

/* Same, converted to an owned F32 buffer (norms, conv kernel) reshaped to ggml ne[0..1]. */
static lfm_status take_f32(loader *L, const char *name, int n, const int64_t *shape, int64_t ne0, int64_t ne1, lfm_tensor *t) {
    lfm_status st = take(L, name, n, shape, t);
    if (st != LFM_OK) return st;
    int64_t count = ne0 * ne1;
    float *buf = malloc((size_t)count * sizeof(float));
    if (!buf) return lfm_fail(LFM_ERR_OOM, "out of memory converting tensor '%s'", name);
    const unsigned char *src = t->data;
    for (int64_t i = 0; i < count; i++) {
        if (t->type == LFM_TYPE_F32) memcpy(&buf[i], src + 4 * i, 4);
        else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            buf[i] = t->type == LFM_TYPE_F16 ? lfm_f16_to_f32(h) : lfm_bf16_to_f32(h);
        }
    }
    if ((st = lfm_model_own(L->m, buf)) != LFM_OK) { free(buf); return st; }
    t->type = LFM_TYPE_F32;
    t->data = buf;
    t->nbytes = (size_t)count * sizeof(float);
    t->n_dims = ne1 > 1 ? 2 : 1;
    t->ne[0] = ne0, t->ne[1] = ne1, t->ne[2] = t->ne[3] = 1;
    return LFM_OK;
}

/* An expert stack (3-D row of the table): one [ne1, ne0] matrix per expert, each its own HF tensor
 * ("%d" twice in the name: layer, expert), all of one dtype. t views them where they lie
 * (lfm_tensor.slices); nothing is copied. */
static lfm_status take_experts(loader *L, const lfm_tensor_desc *d, int32_t layer, int64_t ne0, int64_t ne1, int64_t n_expert,
                               lfm_tensor *t) {
    const void **slices = malloc((size_t)n_expert * sizeof *slices);
    if (!slices) return lfm_fail(LFM_ERR_OOM, "out of memory");
    lfm_status st = lfm_model_own(L->m, (void *)slices);
    if (st != LFM_OK) {
        free((void *)slices);
        return st;
    }
    const int64_t shape[2] = {ne1, ne0};
    size_t total = 0;
    for (int64_t e = 0; e < n_expert; e++) {
        char name[160];
        lfm_tensor one;
        lfm_tensor_name_expert(d->hf, layer, (int32_t)e, name, sizeof name);
        if ((st = take(L, name, 2, shape, &one)) != LFM_OK) return st;
        if (e == 0) *t = one;
        else if (one.type != t->type)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "tensor '%s': dtype %s, but expert 0's is %s (an expert stack needs one dtype)", name,
                            lfm_type_name(one.type), lfm_type_name(t->type));
        slices[e] = one.data;
        total += one.nbytes;
    }
    lfm_tensor_name_expert(d->hf, layer, -1, t->name, sizeof t->name); /* "experts.*." */
    t->data = slices[0];
    t->nbytes = total;
    t->n_dims = 3;
    t->ne[2] = n_expert;
    t->slices = slices;
    return LFM_OK;
}

static lfm_status build_model(loader *L, const lfm_ff_candidates *ffc) {
    struct lfm_model *m = L->m;
    lfm_config *c = &m->cfg;
    lfm_status st = LFM_OK;
    const int64_t H = c->n_embd;
    char name[160];

    /* FFN width: trust layer 0's w1 if it matches one reading of the config (§2.4, §9 trap 2) */
    lfm_tensor_name(lfm_tensors[LFM_TENSOR_FFN_GATE].hf, 0, name, sizeof name);
    st_entry *w1 = index_find(L->ix, name);
    if (w1 && w1->n_dims == 2 && w1->shape[1] == H) {
        int64_t F = w1->shape[0];
        if (F != ffc->ff_hf && F != ffc->ff_alt[0] && F != ffc->ff_alt[1])
            return lfm_fail(LFM_ERR_FORMAT, "tensor '%s': %lld rows, but config.json gives an FFN width of %lld", name, (long long)F,
                            (long long)ffc->ff_hf);
        c->n_ff = (int32_t)F;
    }

    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return lfm_fail(LFM_ERR_OOM, "out of memory");
    for (int32_t l = -1; l < c->n_layer; l++) /* -1: the global tensors */
        for (int id = 0; id < LFM_TENSOR_COUNT; id++) {
            if (!lfm_tensor_applies(id, c, l)) continue;
            const lfm_tensor_desc *d = &lfm_tensors[id];
            lfm_tensor *t = lfm_model_tensor(m, id, l);
            lfm_tensor_name(lfm_tensor_hf(id, c), l, name, sizeof name);
            if (d->role == LFM_ROLE_HEAD && c->tied_output) {
                *t = m->tok_embd;
                st_entry *lm = index_find(L->ix, name);
                if (lm) lm->used = true; /* a tied head saved anyway: the embedding is used */
                continue;
            }
            /* PyTorch's shape is ggml's ne reversed */
            const int64_t ne0 = lfm_dim_value(c, d->ne[0]), ne1 = lfm_dim_value(c, d->ne[1]);
            int n = d->ne[1] == LFM_DIM_NONE ? 1 : 2;
            int64_t shape[3] = {n == 1 ? ne0 : ne1, ne0, 0};
            if (d->role == LFM_ROLE_CONV_KERNEL) { /* [H, 1, K] as saved by PyTorch, or squeezed [H, K] */
                st_entry *cw = index_find(L->ix, name);
                if (!(cw && cw->n_dims == 2)) n = 3, shape[1] = 1, shape[2] = ne0;
            }
            if (lfm_tensor_is_experts(id)) st = take_experts(L, d, l, ne0, ne1, lfm_dim_value(c, d->ne[2]), t);
            else st = lfm_tensor_wants_f32(id) ? take_f32(L, name, n, shape, ne0, ne1, t) : take(L, name, n, shape, t);
            if (st != LFM_OK) return st;
        }
    for (int64_t i = 0; i < L->ix->n; i++)
        if (!L->ix->e[i].used)
            return lfm_fail(LFM_ERR_UNSUPPORTED, "unexpected tensor '%s' in '%s' (not part of an LFM2/LFM3 model with this config)",
                            L->ix->e[i].name, L->ix->e[i].file);
    return LFM_OK;
}

lfm_status lfm_model_load_safetensors(struct lfm_model *m, const char *path) {
    st_index ix = {0};
    lfm_json *cfg_json = NULL, *wm_root = NULL;
    char *dir = NULL, *cfg_path = NULL, *index_path = NULL;
    lfm_status st = LFM_OK;

    if (lfm_path_is_dir(path)) {
        dir = strdup(path);
    } else {
        if (!lfm_path_exists(path)) { st = lfm_fail_io(ENOENT, "cannot open '%s': %s", path, strerror(ENOENT)); goto out; }
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path)) : strdup(".");
    }
    if (!dir) { st = lfm_fail(LFM_ERR_OOM, "out of memory"); goto out; }
    cfg_path = join(dir, "config.json");
    index_path = join(dir, "model.safetensors.index.json");
    if (!cfg_path || !index_path) { st = lfm_fail(LFM_ERR_OOM, "out of memory"); goto out; }
    if (!lfm_path_exists(cfg_path)) { st = lfm_fail_io(ENOENT, "cannot open '%s': %s (a model folder needs config.json)", cfg_path, strerror(ENOENT)); goto out; }
    if ((st = read_json_file(cfg_path, &cfg_json)) != LFM_OK) goto out;
    lfm_ff_candidates ffc;
    if ((st = lfm_config_from_json(cfg_json, cfg_path, &m->cfg, &ffc)) != LFM_OK) goto out;

    if (!lfm_path_is_dir(path)) {
        st = add_file(&ix, strdup(path));
    } else if (lfm_path_exists(index_path)) {
        st = read_index(dir, index_path, &ix, &wm_root);
    } else {
        char *single = join(dir, "model.safetensors");
        if (single && !lfm_path_exists(single)) {
            st = lfm_fail_io(ENOENT, "cannot open '%s': %s (and no model.safetensors.index.json)", single, strerror(ENOENT));
            free(single);
            goto out;
        }
        st = add_file(&ix, single);
    }
    if (st != LFM_OK) goto out;
    for (int32_t i = 0; i < ix.n_files; i++)
        if ((st = read_shard(m, &ix, ix.files[i])) != LFM_OK) goto out;
    if (wm_root) { /* every tensor the index names must be in the file it names */
        const lfm_json *wm = lfm_json_get(wm_root, "weight_map");
        for (int64_t i = 0; i < wm->n; i++) {
            st_entry *e = index_find(&ix, wm->keys[i]);
            const char *f = strrchr(e ? e->file : "", '/');
            if (!e || strcmp(f ? f + 1 : e->file, wm->items[i]->str) != 0) {
                st = lfm_fail(LFM_ERR_FORMAT, "'%s': tensor '%s' is not in '%s'", index_path, wm->keys[i], wm->items[i]->str);
                goto out;
            }
        }
    }
    loader L = {m, &ix};
    st = build_model(&L, &ffc);
out:
    lfm_json_free(cfg_json);
    lfm_json_free(wm_root);
    index_free(&ix);
    free(dir);
    free(cfg_path);
    free(index_path);
    return st;
}
