/* tokenizer_py.c — Python bindings for the tokenizer part of the C API. */
#include "pycommon.h"

int lfm_py_init_tokenizer(PyObject *module) {
    (void)module;
    return 0;
}
