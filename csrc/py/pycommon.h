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

/* Each part of the module adds its types and functions here; 0 on success, -1 with an exception. */
int lfm_py_init_engine(PyObject *module);
int lfm_py_init_gguf(PyObject *module);
int lfm_py_init_tokenizer(PyObject *module);
int lfm_py_init_sampler(PyObject *module);
int lfm_py_init_quants(PyObject *module);
int lfm_py_init_tensors(PyObject *module);

/* engine_py.c: the lfm_ctx of a _core.Ctx, marked in use until lfm_py_ctx_release (call both with
 * the GIL held). NULL with TypeError / ValueError (closed) / RuntimeError (in use by another thread). */
lfm_ctx *lfm_py_ctx_acquire(PyObject *obj);
void lfm_py_ctx_release(PyObject *obj);

#endif
