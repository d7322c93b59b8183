/* sampler_py.c — Python bindings for the sampler part of the C API. */
#include "pycommon.h"

int lfm_py_init_sampler(PyObject *module) {
    (void)module;
    return 0;
}
