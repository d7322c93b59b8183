/* blas_py.c — OpenBLAS in _core: loading it (liquidlfm/_blas.py finds the library), the blas=
 * argument of Model.forward and Ctx, and a float matmul hook for the tests and bench_blas.py.
 *
 *   blas_load(path) -> info str          OSError if the library cannot be loaded or is not OpenBLAS
 *   blas_info() -> str or None           what lfm_blas_load loaded
 *   blas_mode(value=None) -> str         'auto' / 'on' / 'off': value, or LFM_BLAS for None
 *   _float_matmul(W, X, wtype, n_threads=1, blas='off', iters=1)
 *       -> (Y, seconds per call, CPU seconds of the calling thread per call, used OpenBLAS)
 */
#include "pycommon.h"

#include "runtime/runtime.h"

#include <stdlib.h>
#include <string.h>

int lfm_py_blas_mode(PyObject *obj, void *out) {
    int32_t *mode = out;
    if (obj == Py_None) {
        *mode = LFM_BLAS_DEFAULT;
        return 1;
    }
    const char *s = PyUnicode_Check(obj) ? PyUnicode_AsUTF8(obj) : NULL;
    if (s && strcmp(s, "auto") == 0) *mode = LFM_BLAS_AUTO;
    else if (s && strcmp(s, "on") == 0) *mode = LFM_BLAS_ON;
    else if (s && strcmp(s, "off") == 0) *mode = LFM_BLAS_OFF;
    else {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "blas must be 'auto', 'on', 'off' or None, got %R", obj);
        return 0;
    }
    return 1;
}

static PyObject *py_blas_load(PyObject *self, PyObject *arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    lfm_status st;
    char err[1024];
    Py_BEGIN_ALLOW_THREADS /* loading runs the library's initialisers (its thread pool) */
    st = lfm_blas_load(PyBytes_AS_STRING(path));
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (st != LFM_OK) {
        /* one exception for every way it can fail: the caller treats them alike (fall back) */
        PyErr_SetString(st == LFM_ERR_OOM ? PyExc_MemoryError : PyExc_OSError, err);
        return NULL;
    }
    return PyUnicode_FromString(lfm_blas_info());
}

static PyObject *py_blas_info(PyObject *self, PyObject *noargs) {
    const char *info = lfm_blas_info();
    if (!info) Py_RETURN_NONE;
    return PyUnicode_FromString(info);
}

static const char *mode_name(lfm_blas_mode m) { return m == LFM_BLAS_ON ? "on" : m == LFM_BLAS_OFF ? "off" : "auto"; }

static PyObject *py_blas_mode(PyObject *self, PyObject *args) {
    int32_t requested = LFM_BLAS_DEFAULT;
    if (!PyArg_ParseTuple(args, "|O&", lfm_py_blas_mode, &requested)) return NULL;
    lfm_blas_mode m;
    lfm_status st = lfm_blas_resolve_mode(requested, &m);
    if (st != LFM_OK) return lfm_py_raise(st);
    return PyUnicode_FromString(mode_name(m));
}

typedef struct {
    const lfm_tensor *W;
    const float *X;
    int64_t T;
    float *Y;
    void *scratch;
    const lfm_blas_use *use;
} bench_job;

static PyObject *py_float_matmul(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"W", "X", "wtype", "n_threads", "blas", "iters", NULL};
    PyObject *wo, *xo;
    const char *wtype;
    int n_threads = 1, iters = 1;
    int32_t requested = LFM_BLAS_OFF;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOs|iO&i", kwlist, &wo, &xo, &wtype, &n_threads, lfm_py_blas_mode,
                                     &requested, &iters))
        return NULL;
    lfm_type t = strcmp(wtype, "f32") == 0 ? LFM_TYPE_F32 : strcmp(wtype, "f16") == 0 ? LFM_TYPE_F16
               : strcmp(wtype, "bf16") == 0 ? LFM_TYPE_BF16 : LFM_TYPE_NONE;
    if (t == LFM_TYPE_NONE) return PyErr_Format(PyExc_ValueError, "wtype must be 'f32', 'f16' or 'bf16', got '%s'", wtype);
    if (n_threads < 1 || n_threads > 256 || iters < 1)
        return PyErr_Format(PyExc_ValueError, "need 1 <= n_threads <= 256 and iters >= 1");
    lfm_blas_mode mode;
    lfm_status st = lfm_blas_resolve_mode(requested, &mode);
    if (st != LFM_OK) return lfm_py_raise(st);
    PyArrayObject *W = (PyArrayObject *)PyArray_FromAny(
        wo, PyArray_DescrFromType(t == LFM_TYPE_F32 ? NPY_FLOAT32 : NPY_UINT16), 2, 2, NPY_ARRAY_IN_ARRAY, NULL);
    PyArrayObject *X = W ? (PyArrayObject *)PyArray_FromAny(xo, PyArray_DescrFromType(NPY_FLOAT32), 2, 2, NPY_ARRAY_IN_ARRAY, NULL)
                         : NULL;
    PyObject *Y = NULL, *res = NULL;
    lfm_threadpool *tp = NULL;
    void *scratch = NULL;
    if (!W || !X) goto done;
    const int64_t R = PyArray_DIM(W, 0), K = PyArray_DIM(W, 1), T = PyArray_DIM(X, 0);
    if (PyArray_DIM(X, 1) != K || R < 1 || K < 1 || T < 1) {
        PyErr_Format(PyExc_ValueError, "_float_matmul: W is [%lld, %lld] and X [%lld, %lld]: need W [R, K], X [T, K], all >= 1",
                     (long long)R, (long long)K, (long long)T, (long long)PyArray_DIM(X, 1));
        goto done;
    }
    lfm_tensor wt = {.type = t, .n_dims = 2, .ne = {K, R, 1, 1}, .data = PyArray_DATA(W), .nbytes = (size_t)PyArray_NBYTES(W)};
    snprintf(wt.name, sizeof wt.name, "bench.weight");
    lfm_blas_use use = {mode == LFM_BLAS_OFF ? NULL : lfm_blas_get(), mode == LFM_BLAS_ON, false};
    npy_intp dims[2] = {(npy_intp)T, (npy_intp)R};
    if (!(Y = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0))) goto done;
    if ((st = lfm_threadpool_create(n_threads, &tp)) != LFM_OK) {
        lfm_py_raise(st);
        goto done;
    }
    size_t sb = lfm_matmul_scratch_bytes(&wt, T, n_threads, &use);
    if (sb && !(scratch = malloc(sb))) {
        PyErr_NoMemory();
        goto done;
    }
    const bool used = lfm_blas_takes(&use, &wt, T);
    double t0, t1, c0, c1;
    Py_BEGIN_ALLOW_THREADS
    t0 = lfm_time_now();
    c0 = lfm_thread_cpu_time();
    for (int i = 0; i < iters; i++)
        lfm_matmul(tp, &wt, PyArray_DATA(X), K, T, PyArray_DATA((PyArrayObject *)Y), R, scratch, &use);
    c1 = lfm_thread_cpu_time();
    t1 = lfm_time_now();
    Py_END_ALLOW_THREADS
    res = Py_BuildValue("(OddO)", Y, (t1 - t0) / iters, (c1 - c0) / iters, used ? Py_True : Py_False);
done:
    free(scratch);
    lfm_threadpool_free(tp);
    Py_XDECREF(Y);
    Py_XDECREF(W);
    Py_XDECREF(X);
    return res;
}

static PyMethodDef blas_methods[] = {
    {"blas_load", py_blas_load, METH_O, "blas_load(path) -> info: load OpenBLAS (scipy-openblas32's library) for float prefill."},
    {"blas_info", py_blas_info, METH_NOARGS, "blas_info() -> the loaded OpenBLAS's configuration string, or None."},
    {"blas_mode", py_blas_mode, METH_VARARGS,
     "blas_mode(value=None) -> 'auto' | 'on' | 'off': value checked, or the LFM_BLAS variable's for None."},
    {"_float_matmul", (PyCFunction)(void (*)(void))py_float_matmul, METH_VARARGS | METH_KEYWORDS,
     "_float_matmul(W, X, wtype, n_threads=1, blas='off', iters=1) -> (Y [T, R], seconds per call, CPU seconds of "
     "the calling thread per call, used OpenBLAS): "
     "the engine's float matmul on its own thread pool (tests and benchmarks/bench_blas.py)."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_blas(PyObject *module) { return PyModule_AddFunctions(module, blas_methods); }
