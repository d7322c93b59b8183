/* engine_py.c — Python bindings for the engine part of the C API. */
#include "pycommon.h"

int lfm_py_init_engine(PyObject *module) {
    (void)module;
    return 0;
}
