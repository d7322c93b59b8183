/* pycommon.h — shared by the csrc/py files that make up the liquidlfm._core module. */
#ifndef LFM_PYCOMMON_H
#define LFM_PYCOMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL liquidlfm_ARRAY_API
#ifndef LFM_PY_MODULE_MAIN
#define NO_IMPORT_ARRAY /* only module.c calls import_array() */
#endif
#include <numpy/arrayobject.h>

#include "base/base.h"
#include "model/model.h"

/* Raise the Python exception for status (message from lfm_last_error()) and return NULL. */
PyObject *lfm_py_raise(lfm_status status);
/* Same, with the message given. */
PyObject *lfm_py_raise_msg(lfm_status status, const char *msg);

/* Objects in use: one rule for every _core type that owns a C object (Model, Ctx, Sampler, Tokenizer).
 * (a) A method that releases the GIL or may run Python code (converting an argument runs __index__,
 *     __len__, __getitem__, __float__, a buffer export; a new Python object can start the GC and its
 *     __del__s) marks the object busy before anything else and until it returns: a flag or counter
 *     that is only read and written with the GIL held (the module does not declare free-threading
 *     support, so the GIL makes it atomic).
 * (b) close(), a second __init__ and anything else that frees or replaces the C object raise
 *     lfm_py_in_use() while the object is busy; they never wait (the busy call may be further up the
 *     same thread, and waiting with the GIL held would deadlock). Dealloc cannot run while busy: a
 *     running call holds a reference to its object.
 * (c) A method converts all its Python arguments first, then checks the object is open and only
 *     then reads C-side sizes (n_vocab, n_ctx, logits pointers); nothing read from C is kept across a
 *     call into Python.
 * (d) A Ctx holds a strong reference to its Model and counts as one of its users, as does every
 *     running Model call. Model.close() with users marks it closed at once (new calls and contexts
 *     on it raise ValueError) and frees the weights when the last user leaves: the weights are never
 *     freed under a running call, and close() fails only while __init__ is still loading. */

/* Set RuntimeError("<what> is in use by another call ...") for rule (b); returns NULL. */
static inline PyObject *lfm_py_in_use(const char *what) {
    PyErr_Format(PyExc_RuntimeError,
                 "%s is in use by another call (another thread, or Python code run by that call)", what);
    return NULL;
}

/* Each part of the module adds its types and functions here; 0 on success, -1 with an exception. */
int lfm_py_init_engine(PyObject *module);
int lfm_py_init_gguf(PyObject *module);
int lfm_py_init_tokenizer(PyObject *module);
int lfm_py_init_sampler(PyObject *module);
int lfm_py_init_quants(PyObject *module);
int lfm_py_init_tensors(PyObject *module);
int lfm_py_init_blas(PyObject *module);

/* blas_py.c: PyArg "O&" converter of a blas= argument (None, "auto", "on", "off") into an
 * lfm_blas_mode stored in an int32_t; None is LFM_BLAS_DEFAULT (the LFM_BLAS variable, else auto). */
int lfm_py_blas_mode(PyObject *obj, void *out);

/* engine_py.c: the lfm_ctx of a _core.Ctx, marked in use until lfm_py_ctx_release (call both with
 * the GIL held, after every argument is converted). NULL with TypeError / ValueError (closed) /
 * RuntimeError (in use). */
lfm_ctx *lfm_py_ctx_acquire(PyObject *obj);
void lfm_py_ctx_release(PyObject *obj);

#endif
