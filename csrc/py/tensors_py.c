/* tensors_py.c — _core.tensor_table(): the tensor table of model/tensors.c for Python (the
 * quantizer's HF -> GGUF names and type decisions read it; nothing in Python lists tensors). */
#include "pycommon.h"

static const char *const scope_names[] = {
    [LFM_SCOPE_GLOBAL] = "global", [LFM_SCOPE_LAYER] = "layer", [LFM_SCOPE_CONV] = "conv", [LFM_SCOPE_ATTN] = "attn"};
static const char *const role_names[] = {[LFM_ROLE_NORM] = "norm", [LFM_ROLE_CONV_KERNEL] = "conv_kernel",
                                         [LFM_ROLE_MATRIX] = "matrix", [LFM_ROLE_EMBEDDING] = "embedding",
                                         [LFM_ROLE_HEAD] = "head"};

static PyObject *row_dict(lfm_tensor_id id) {
    const lfm_tensor_desc *d = &lfm_tensors[id];
    int nd = d->ne[1] == LFM_DIM_NONE ? 1 : 2;
    PyObject *ne = nd == 1 ? Py_BuildValue("(s)", lfm_dim_name(d->ne[0]))
                           : Py_BuildValue("(ss)", lfm_dim_name(d->ne[0]), lfm_dim_name(d->ne[1]));
    PyObject *shape = nd == 1 ? Py_BuildValue("(s)", lfm_dim_name(d->ne[0]))
                              : Py_BuildValue("(ss)", lfm_dim_name(d->ne[1]), lfm_dim_name(d->ne[0]));
    PyObject *row = NULL;
    if (ne && shape)
        row = Py_BuildValue("{s:s,s:s,s:s,s:z,s:s,s:s,s:s,s:s,s:O,s:O,s:O,s:O}", "id", d->id, "what", d->what,
                            "gguf", d->gguf, "gguf_alias", d->gguf_alias, "hf", d->hf, "scope", scope_names[d->scope],
                            "role", role_names[d->role], "field", d->field, "ne", ne, "shape", shape, "is_matmul",
                            lfm_tensor_is_matmul(id) ? Py_True : Py_False, "want_f32",
                            lfm_tensor_wants_f32(id) ? Py_True : Py_False);
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

static PyMethodDef tensors_methods[] = {
    {"tensor_table", py_tensor_table, METH_NOARGS,
     "tensor_table() -> tuple of dicts, one per LFM2 weight in GGUF writing order: id, what, gguf / gguf_alias / hf "
     "(printf patterns, %d = layer), scope (global / layer / conv / attn), role (norm / conv_kernel / matrix / "
     "embedding / head), field, ne (ggml order) and shape (PyTorch order) over the symbols V, H, 3H, F, nh*hd, "
     "nkv*hd, hd, K, is_matmul, want_f32."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_tensors(PyObject *module) { return PyModule_AddFunctions(module, tensors_methods); }
