/* tensors_py.c — _core.tensor_table(): the tensor table of model/tensors.c for Python (the
 * quantizer's HF -> GGUF names and type decisions read it; nothing in Python lists tensors). */
#include "pycommon.h"

#include <string.h>

static const char *const scope_names[] = {
    [LFM_SCOPE_GLOBAL] = "global", [LFM_SCOPE_LAYER] = "layer", [LFM_SCOPE_CONV] = "conv", [LFM_SCOPE_ATTN] = "attn",
    [LFM_SCOPE_FFN] = "ffn",       [LFM_SCOPE_MOE] = "moe",     [LFM_SCOPE_MOE_BIAS] = "moe_bias",
    [LFM_SCOPE_ATTN_GATE] = "attn_gate", [LFM_SCOPE_SANDWICH] = "sandwich"};
static const char *const role_names[] = {[LFM_ROLE_NORM] = "norm",     [LFM_ROLE_CONV_KERNEL] = "conv_kernel",
                                         [LFM_ROLE_MATRIX] = "matrix", [LFM_ROLE_EMBEDDING] = "embedding",
                                         [LFM_ROLE_HEAD] = "head",     [LFM_ROLE_ROUTER] = "router",
                                         [LFM_ROLE_BIAS] = "bias"};

static PyObject *row_dict(lfm_tensor_id id) {
    const lfm_tensor_desc *d = &lfm_tensors[id];
    const int nd = lfm_tensor_n_dims(id);
    PyObject *ne = PyTuple_New(nd), *shape = PyTuple_New(nd);
    for (int i = 0; ne && shape && i < nd; i++) {
        PyObject *a = PyUnicode_FromString(lfm_dim_name(d->ne[i])), *b = PyUnicode_FromString(lfm_dim_name(d->ne[nd - 1 - i]));
        if (!a || !b) {
            Py_XDECREF(a), Py_XDECREF(b);
            Py_CLEAR(ne);
            break;
        }
        PyTuple_SET_ITEM(ne, i, a);
        PyTuple_SET_ITEM(shape, i, b);
    }
    PyObject *row = NULL;
    if (ne && shape)
        row = Py_BuildValue("{s:s,s:s,s:s,s:z,s:s,s:s,s:s,s:s,s:O,s:O,s:O,s:O,s:s}", "id", d->id, "what", d->what,
                            "gguf", d->gguf, "gguf_alias", d->gguf_alias, "hf", d->hf, "scope", scope_names[d->scope],
                            "role", role_names[d->role], "field", d->field, "ne", ne, "shape", shape, "is_matmul",
                            lfm_tensor_is_matmul(id) ? Py_True : Py_False, "want_f32",
                            lfm_tensor_wants_f32(id) ? Py_True : Py_False, "hf_lfm3", d->hf_lfm3 ? d->hf_lfm3 : d->hf);
    Py_XDECREF(ne);
    Py_XDECREF(shape);
    return row;
}

static PyObject *py_tensor_table(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    PyObject *out = PyTuple_New(LFM_TENSOR_COUNT);
    if (!out) return NULL;
    for (int id = 0; id < LFM_TENSOR_COUNT; id++) {
        PyObject *row = row_dict(id);
        if (!row) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, id, row);
    }
    return out;
}

/* ---- file types (model/ftype.c) ---- */

static PyObject *py_ftypes(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    PyObject *out = PyDict_New();
    lfm_ftype f;
    const char *name;
    for (size_t i = 0; out && (name = lfm_ftype_name_at(i, &f)) != NULL; i++) {
        PyObject *v = Py_BuildValue("{s:i,s:s}", "id", (int)f, "type", lfm_type_name(lfm_ftype_base_type(f)));
        if (!v || PyDict_SetItemString(out, name, v) < 0) Py_CLEAR(out);
        Py_XDECREF(v);
    }
    return out;
}

/* An int field of the config dict (lfm_config's names), in [lo, hi]. */
static int config_int(PyObject *cfg, const char *key, long lo, long hi, int32_t *out) {
    PyObject *v = PyDict_GetItemString(cfg, key); /* borrowed */
    if (!v) {
        PyErr_Format(PyExc_KeyError, "config has no '%s'", key);
        return -1;
    }
    long x = PyLong_AsLong(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "config '%s' = %ld is outside [%ld, %ld]", key, x, lo, hi);
        return -1;
    }
    *out = (int32_t)x;
    return 0;
}

static PyObject *py_ftype_tensor_types(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    PyObject *cfg;
    if (!PyArg_ParseTuple(args, "sO!:ftype_tensor_types", &name, &PyDict_Type, &cfg)) return NULL;
    bool unsupported;
    lfm_ftype f = lfm_ftype_by_name(name, &unsupported);
    if (f == LFM_FTYPE_NONE) {
        char names[512];
        lfm_ftype_names(names, sizeof names);
        return PyErr_Format(PyExc_ValueError, "%s '%s' (one of %s)",
                            unsupported ? "liquidlfm has no quantizer for llama.cpp's file type" : "unknown file type",
                            name, names);
    }
    lfm_config c;
    memset(&c, 0, sizeof c);
    const long big = LFM_MAX_WIDTH;
    if (config_int(cfg, "n_vocab", 1, LFM_MAX_VOCAB, &c.n_vocab) || config_int(cfg, "n_embd", 1, big, &c.n_embd) ||
        config_int(cfg, "n_head", 1, big, &c.n_head) || config_int(cfg, "n_head_kv", 1, big, &c.n_head_kv) ||
        config_int(cfg, "head_dim", 1, big, &c.head_dim) || config_int(cfg, "n_ff", 1, big, &c.n_ff) ||
        config_int(cfg, "conv_l_cache", 1, LFM_MAX_CONV_K, &c.conv_l_cache) ||
        config_int(cfg, "tied_output", 0, 1, &c.tied_output))
        return NULL;
    /* MoE fields: optional (a dense model's are 0) */
    static const char *const moe_keys[] = {"n_expert", "n_expert_used", "n_ff_exp", "n_layer_dense", "expert_bias"};
    int32_t *const moe_vals[] = {&c.n_expert, &c.n_expert_used, &c.n_ff_exp, &c.n_layer_dense, &c.expert_bias};
    const long moe_hi[] = {LFM_MAX_EXPERTS, LFM_MAX_EXPERTS_USED, big, LFM_MAX_LAYERS, 1};
    for (int i = 0; i < 5; i++)
        if (PyDict_GetItemString(cfg, moe_keys[i]) && config_int(cfg, moe_keys[i], 0, moe_hi[i], moe_vals[i])) return NULL;
    /* LFM3 fields: optional (an LFM2 model has neither a gate nor sandwich norms) */
    static const char *const lfm3_keys[] = {"attn_gate", "sandwich_norm"};
    int32_t *const lfm3_vals[] = {&c.attn_gate, &c.sandwich_norm};
    for (int i = 0; i < 2; i++)
        if (PyDict_GetItemString(cfg, lfm3_keys[i]) && config_int(cfg, lfm3_keys[i], 0, 1, lfm3_vals[i])) return NULL;
    PyObject *attn = PyDict_GetItemString(cfg, "is_attn");
    if (!attn) return PyErr_Format(PyExc_KeyError, "config has no 'is_attn'");
    PyObject *seq = PySequence_Fast(attn, "config 'is_attn' must be a sequence of bools");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > LFM_MAX_LAYERS) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "config 'is_attn' has %zd layers, expected 1..%d", n, LFM_MAX_LAYERS);
    }
    c.n_layer = (int32_t)n;
    for (Py_ssize_t l = 0; l < n; l++) {
        int b = PyObject_IsTrue(PySequence_Fast_GET_ITEM(seq, l));
        if (b < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        c.is_attn[l] = (uint8_t)b;
    }
    Py_DECREF(seq);
    PyObject *out = PyDict_New();
    for (int32_t l = -1; out && l < c.n_layer; l++)
        for (int id = 0; out && id < LFM_TENSOR_COUNT; id++) {
            if (!lfm_tensor_applies(id, &c, l) || (id == LFM_TENSOR_OUTPUT && c.tied_output)) continue;
            lfm_type t = lfm_ftype_tensor_type(f, &c, id, l);
            PyObject *key = Py_BuildValue("(si)", lfm_tensors[id].id, (int)l);
            PyObject *val = t == LFM_TYPE_NONE ? (Py_INCREF(Py_None), Py_None) : PyUnicode_FromString(lfm_type_name(t));
            if (!key || !val || PyDict_SetItem(out, key, val) < 0) Py_CLEAR(out);
            Py_XDECREF(key);
            Py_XDECREF(val);
        }
    return out;
}

static PyMethodDef tensors_methods[] = {
    {"ftypes", py_ftypes, METH_NOARGS,
     "ftypes() -> {name: {id: llama_ftype, type: the type of most matrices}} of the file types liquidlfm writes "
     "(llama-quantize's names, aliases included)."},
    {"ftype_tensor_types", py_ftype_tensor_types, METH_VARARGS,
     "ftype_tensor_types(ftype, config) -> {(tensor id, layer): type name, or None for a tensor never quantized}: "
     "llama-quantize's choice for every tensor of a model (layer -1: the global ones). config: lfm_config's "
     "fields n_vocab, n_embd, n_head, n_head_kv, head_dim, n_ff, conv_l_cache, tied_output, is_attn (one bool per "
     "layer), for LFM2-MoE n_expert, n_expert_used, n_ff_exp, n_layer_dense, expert_bias, for LFM3 attn_gate and "
     "sandwich_norm (0/1)."},
    {"tensor_table", py_tensor_table, METH_NOARGS,
     "tensor_table() -> tuple of dicts, one per LFM2 weight in GGUF writing order: id, what, gguf / gguf_alias / hf "
     "(printf patterns, %d = layer; an expert stack's HF pattern has a second %d, the expert), scope (global / "
     "layer / conv / attn / ffn / moe / moe_bias), role (norm / conv_kernel / matrix / embedding / head / router / "
     "bias), field, ne (ggml order) and shape (PyTorch order) over the symbols V, H, 3H, F, nh*hd, nkv*hd, hd, K, "
     "E, FE (3 of them for an expert stack), is_matmul, want_f32."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_tensors(PyObject *module) { return PyModule_AddFunctions(module, tensors_methods); }
