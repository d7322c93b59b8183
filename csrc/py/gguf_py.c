/* gguf_py.c — Python bindings for the gguf part of the C API. */
#include "pycommon.h"

int lfm_py_init_gguf(PyObject *module) {
    (void)module;
    return 0;
}
