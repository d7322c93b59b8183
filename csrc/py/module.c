/* module.c — liquidlfm._core: module init and the one place C statuses become Python exceptions. */
#define LFM_PY_MODULE_MAIN
#include "pycommon.h"

static PyObject *errors_module; /* liquidlfm.errors, imported once */

static PyObject *exception_for(lfm_status status) {
    const char *name = NULL;
    switch (status) {
    case LFM_ERR_IO: return PyExc_OSError;
    case LFM_ERR_OOM: return PyExc_MemoryError;
    case LFM_ERR_ARG: return PyExc_ValueError;
    case LFM_ERR_BUSY: return PyExc_RuntimeError;
    case LFM_ERR_FORMAT: name = "ModelFormatError"; break;
    case LFM_ERR_UNSUPPORTED: name = "UnsupportedModelError"; break;
    case LFM_ERR_CTX_FULL: name = "ContextFullError"; break;
    case LFM_ERR_ABORTED: name = "Cancelled"; break;
    default: return PyExc_RuntimeError;
    }
    PyObject *cls = errors_module ? PyObject_GetAttrString(errors_module, name) : NULL;
    if (!cls) {
        PyErr_Clear();
        return PyExc_RuntimeError;
    }
    Py_DECREF(cls); /* the module keeps it alive */
    return cls;
}

PyObject *lfm_py_raise_msg(lfm_status status, const char *msg) {
    if (!msg || !*msg) msg = lfm_status_str(status);
    int err = status == LFM_ERR_IO ? lfm_last_errno() : 0;
    if (err) { /* OSError(errno, msg) is FileNotFoundError for ENOENT, PermissionError for EACCES, ... */
        PyObject *args = Py_BuildValue("(is)", err, msg);
        if (args) {
            PyErr_SetObject(PyExc_OSError, args);
            Py_DECREF(args);
        }
        return NULL;
    }
    PyErr_SetString(exception_for(status), msg);
    return NULL;
}

PyObject *lfm_py_raise(lfm_status status) { return lfm_py_raise_msg(status, lfm_last_error()); }

static PyObject *py_cpu_features(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
    const lfm_cpu_features *f = lfm_cpu();
#define B(x) ((x) ? Py_True : Py_False)
    return Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:s,s:i}", "avx2", B(f->avx2), "fma", B(f->fma),
                         "f16c", B(f->f16c), "avx512f", B(f->avx512f), "avx512bw", B(f->avx512bw), "avx512vl",
                         B(f->avx512vl), "avx512vnni", B(f->avx512vnni), "avxvnni", B(f->avxvnni),
                         "avx512_full_width", B(f->avx512_full_width), "neon", B(f->neon),
                         "dotprod", B(f->dotprod), "i8mm", B(f->i8mm), "force_ref", B(f->force_ref), "kernels_env",
                         f->kernels_env, "usable_cores", lfm_n_cores());
#undef B
}

static PyMethodDef module_methods[] = {
    {"cpu_features", py_cpu_features, METH_NOARGS, "CPU features the kernels were chosen by."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_core", "liquidlfm's C engine (see csrc/lfm.h).", -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    import_array();
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    errors_module = PyImport_ImportModule("liquidlfm.errors");
    if (!errors_module) goto fail;
    if (lfm_py_init_engine(m) < 0 || lfm_py_init_gguf(m) < 0 || lfm_py_init_tokenizer(m) < 0 ||
        lfm_py_init_sampler(m) < 0 || lfm_py_init_quants(m) < 0 || lfm_py_init_tensors(m) < 0 || lfm_py_init_blas(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
