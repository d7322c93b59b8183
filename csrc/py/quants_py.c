/* quants_py.c — test/benchmark bindings for the quantized kernels (private: names start with '_').
 *
 *   _dequantize(type, data, n) -> float32 [n]
 *   _quantize(type, x float32 [n]) -> bytes            (lfm_quantize_row; activation types too)
 *   _quantize_act(type, x, ref=False) -> bytes         (one row, with the scalar or the best kernels)
 *   _quant_matmul(type, w, rows, cols, x [T, cols], ref=False, x8=False, r0=0, r1=rows) -> float32 [T, rows]
 *       (x8: repacked to LFM_LAYOUT_X8 first, for the types that have it; rows outside [r0, r1) stay 0)
 *   _quant_bench(type, w, rows, cols, x [T, cols], iters, n_threads, x8=False) -> (wall, thread-0 CPU) seconds per matmul
 *   _quant_matmul_oracle(type, w, rows, cols, x [T, cols], x8=False) -> float32 [T, rows]
 *       (quants_oracle.c: the SIMD kernels' float order in scalar code; activations by the scalar kernels)
 *   _quant_kernels() -> name of the kernel set lfm_cpu() chose
 */
#include "pycommon.h"

#include "kernels/kernels.h"


static int parse_type(int t, lfm_type *out) {
    if (!lfm_type_name((lfm_type)t)) {
        PyErr_Format(PyExc_ValueError, "unknown tensor type %d", t);
        return -1;
    }
    *out = (lfm_type)t;
    return 0;
}

static PyArrayObject *as_f32(PyObject *obj) {
    return (PyArrayObject *)PyArray_FROMANY(obj, NPY_FLOAT32, 1, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
}

static size_t row_bytes_of(lfm_type t, int64_t n) {
    return (size_t)(n / lfm_type_block_elems(t)) * lfm_type_block_bytes(t);
}

static PyObject *py_dequantize(PyObject *self, PyObject *args) {
    int ti;
    Py_buffer buf;
    long long n;
    lfm_type t;
    if (!PyArg_ParseTuple(args, "iy*L", &ti, &buf, &n)) return NULL;
    PyObject *res = NULL;
    if (parse_type(ti, &t) < 0) goto done;
    if (n < 0 || lfm_type_block_elems(t) == 0 || n % lfm_type_block_elems(t) != 0) {
        PyErr_Format(PyExc_ValueError, "n=%lld is not a multiple of the %s block size", n, lfm_type_name(t));
        goto done;
    }
    if ((size_t)buf.len < row_bytes_of(t, n)) {
        PyErr_Format(PyExc_ValueError, "%zd bytes is too short for %lld %s values", buf.len, n, lfm_type_name(t));
        goto done;
    }
    npy_intp dims[1] = {(npy_intp)n};
    res = PyArray_SimpleNew(1, dims, NPY_FLOAT32);
    if (!res) goto done;
    lfm_status st = lfm_dequantize_row(t, buf.buf, PyArray_DATA((PyArrayObject *)res), n);
    if (st != LFM_OK) {
        Py_CLEAR(res);
        lfm_py_raise(st);
    }
done:
    PyBuffer_Release(&buf);
    return res;
}

/* x as contiguous float32 and an uninitialized bytes object for n of them in type t; NULL (with an
 * exception set) when x is not floats or n is not a whole number of t's blocks. */
static PyObject *new_block_row(lfm_type t, PyObject *xo, PyArrayObject **x, int64_t *n) {
    *x = as_f32(xo);
    if (!*x) return NULL;
    *n = (int64_t)PyArray_SIZE(*x);
    PyObject *res = *n % lfm_type_block_elems(t) != 0
                        ? PyErr_Format(PyExc_ValueError, "%lld values is not a multiple of the %s block size",
                                       (long long)*n, lfm_type_name(t))
                        : PyBytes_FromStringAndSize(NULL, (Py_ssize_t)row_bytes_of(t, *n));
    if (!res) Py_CLEAR(*x);
    return res;
}

static PyObject *py_quantize(PyObject *self, PyObject *args) {
    int ti;
    PyObject *xo;
    lfm_type t;
    if (!PyArg_ParseTuple(args, "iO", &ti, &xo) || parse_type(ti, &t) < 0) return NULL;
    PyArrayObject *x;
    int64_t n;
    PyObject *res = new_block_row(t, xo, &x, &n);
    if (!res) return NULL;
    lfm_status st = lfm_quantize_row(t, PyArray_DATA(x), PyBytes_AS_STRING(res), n);
    if (st != LFM_OK) {
        Py_CLEAR(res);
        lfm_py_raise(st);
    }
    Py_DECREF(x);
    return res;
}

static PyObject *py_quantize_act(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"type", "x", "ref", NULL};
    int ti, ref = 0;
    PyObject *xo;
    lfm_type t;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iO|p", kwlist, &ti, &xo, &ref) || parse_type(ti, &t) < 0) return NULL;
    const lfm_qkernels *k = ref ? lfm_qkernels_ref() : lfm_qkernels_get();
    if (!lfm_type_is_quantized(t) || lfm_type_vec_dot_type(t) != t || !k->act[t]) /* Q8_0, Q8_1, Q8_K */
        return PyErr_Format(PyExc_ValueError, "%s is not an activation format", lfm_type_name(t));
    PyArrayObject *x;
    int64_t n;
    PyObject *res = new_block_row(t, xo, &x, &n);
    if (!res) return NULL;
    k->act[t](PyArray_DATA(x), PyBytes_AS_STRING(res), n);
    Py_DECREF(x);
    return res;
}

/* Validate (type, w, rows, cols, x) and quantize x's rows with kernel set k into a new buffer. */
typedef struct {
    lfm_type t, vt;
    int64_t rows, cols, T;
    size_t bw, bx;
    Py_buffer w;
    PyArrayObject *x;
    void *xq;
    lfm_qmm_fn fn;
    lfm_tensor W;   /* view of w (or of its X8 repack) for lfm_matmul_quant_rows */
    void *packed;   /* X8 copy of w */
} mm_args;

static void mm_args_free(mm_args *a) {
    if (a->w.obj) PyBuffer_Release(&a->w);
    Py_XDECREF(a->x);
    free(a->xq);
    free(a->packed);
}

static int mm_args_parse(mm_args *a, int ti, long long rows, long long cols, PyObject *xo, const lfm_qkernels *k,
                         int x8) {
    if (parse_type(ti, &a->t) < 0) return -1;
    a->fn = k->mm[a->t];
    if (!a->fn) {
        PyErr_Format(PyExc_ValueError, "no quantized matmul for %s", lfm_type_name(a->t));
        return -1;
    }
    if (rows <= 0 || cols <= 0 || cols % lfm_type_block_elems(a->t) != 0) {
        PyErr_Format(PyExc_ValueError, "bad shape [%lld, %lld] for %s", rows, cols, lfm_type_name(a->t));
        return -1;
    }
    a->rows = rows;
    a->cols = cols;
    a->vt = lfm_type_vec_dot_type(a->t);
    a->bw = row_bytes_of(a->t, cols);
    if ((size_t)a->w.len < a->bw * (size_t)rows) {
        PyErr_Format(PyExc_ValueError, "weight buffer has %zd bytes, need %zu", a->w.len, a->bw * (size_t)rows);
        return -1;
    }
    a->W = (lfm_tensor){.type = a->t, .n_dims = 2, .ne = {cols, rows, 1, 1}, .data = a->w.buf,
                        .nbytes = a->bw * (size_t)rows, .layout = LFM_LAYOUT_ROWS};
    if (x8) {
        if (!lfm_type_has_x8(a->t) || rows % 8 != 0 || !lfm_qkernels_get()->mm_x8[a->t]) {
            PyErr_Format(PyExc_ValueError, "no X8 layout for %s with %lld rows on this CPU", lfm_type_name(a->t), rows);
            return -1;
        }
        a->packed = malloc(a->bw * (size_t)rows);
        if (!a->packed) {
            PyErr_NoMemory();
            return -1;
        }
        lfm_repack_x8(a->t, a->w.buf, a->packed, rows, cols);
        a->W.data = a->packed;
        a->W.layout = LFM_LAYOUT_X8;
    }
    a->x = as_f32(xo);
    if (!a->x) return -1;
    if (PyArray_SIZE(a->x) % cols != 0 || PyArray_SIZE(a->x) == 0) {
        PyErr_SetString(PyExc_ValueError, "x must hold T rows of cols floats");
        return -1;
    }
    a->T = (int64_t)PyArray_SIZE(a->x) / cols;
    a->bx = row_bytes_of(a->vt, cols);
    a->xq = malloc(a->bx * (size_t)a->T + 64);
    if (!a->xq) {
        PyErr_NoMemory();
        return -1;
    }
    for (int64_t t = 0; t < a->T; t++)
        k->act[a->vt]((const float *)PyArray_DATA(a->x) + t * cols, (uint8_t *)a->xq + (size_t)t * a->bx, cols);
    return 0;
}

static PyObject *py_quant_matmul(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"type", "w", "rows", "cols", "x", "ref", "x8", "r0", "r1", NULL};
    int ti, ref = 0, x8 = 0;
    long long rows, cols, r0 = 0, r1 = -1;
    PyObject *xo;
    mm_args a = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iy*LLO|ppLL", kwlist, &ti, &a.w, &rows, &cols, &xo, &ref, &x8, &r0,
                                     &r1))
        return NULL;
    if (r1 < 0) r1 = rows;
    const lfm_qkernels *k = ref ? lfm_qkernels_ref() : lfm_qkernels_get();
    PyObject *res = NULL;
    if (ref && x8) {
        PyErr_SetString(PyExc_ValueError, "the X8 layout has no scalar kernel");
    } else if (r0 < 0 || r0 > r1 || r1 > rows) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= r0 <= r1 <= rows");
    } else if (mm_args_parse(&a, ti, rows, cols, xo, k, x8) == 0) {
        npy_intp dims[2] = {(npy_intp)a.T, (npy_intp)rows};
        res = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
        if (res) {
            float *y = PyArray_DATA((PyArrayObject *)res);
            Py_BEGIN_ALLOW_THREADS
            if (ref) a.fn(cols, (const uint8_t *)a.w.buf + (size_t)r0 * a.bw, a.bw, r1 - r0, a.xq, a.bx, a.T, y + r0, rows);
            else lfm_matmul_quant_rows(&a.W, a.xq, a.bx, a.T, y, rows, r0, r1);
            Py_END_ALLOW_THREADS
        }
    }
    mm_args_free(&a);
    return res;
}

static PyObject *py_quant_matmul_oracle(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"type", "w", "rows", "cols", "x", "x8", NULL};
    int ti, x8 = 0;
    long long rows, cols;
    PyObject *xo;
    mm_args a = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iy*LLO|p", kwlist, &ti, &a.w, &rows, &cols, &xo, &x8)) return NULL;
    PyObject *res = NULL;
    if (mm_args_parse(&a, ti, rows, cols, xo, lfm_qkernels_ref(), 0) == 0) {
        npy_intp dims[2] = {(npy_intp)a.T, (npy_intp)rows};
        res = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
        if (res) {
            lfm_status st = lfm_qmm_oracle(a.t, x8, cols, a.w.buf, a.bw, rows, a.xq, a.bx, a.T,
                                           PyArray_DATA((PyArrayObject *)res), rows);
            if (st != LFM_OK) {
                Py_CLEAR(res);
                lfm_py_raise(st);
            }
        }
    }
    mm_args_free(&a);
    return res;
}

typedef struct {
    mm_args *a;
    float *y;
    int64_t r0, r1, iters;
} bench_job;

static void *bench_worker(void *p) {
    bench_job *j = p;
    mm_args *a = j->a;
    for (int64_t it = 0; it < j->iters; it++) lfm_matmul_quant_rows(&a->W, a->xq, a->bx, a->T, j->y, a->rows, j->r0, j->r1);
    return NULL;
}

static PyObject *py_quant_bench(PyObject *self, PyObject *args) {
    int ti, nth, x8 = 0;
    long long rows, cols, iters;
    PyObject *xo;
    mm_args a = {0};
    if (!PyArg_ParseTuple(args, "iy*LLOLi|p", &ti, &a.w, &rows, &cols, &xo, &iters, &nth, &x8)) return NULL;
    PyObject *res = NULL;
    if (nth < 1 || nth > 64 || iters < 1) {
        PyErr_SetString(PyExc_ValueError, "need 1 <= n_threads <= 64 and iters >= 1");
        goto done;
    }
    if (mm_args_parse(&a, ti, rows, cols, xo, lfm_qkernels_get(), x8) < 0) goto done;
    float *y = malloc(sizeof(float) * (size_t)(a.T * rows));
    if (!y) {
        PyErr_NoMemory();
        goto done;
    }
    bench_job jobs[64];
    lfm_thread *th[64];
    double t0, t1, c0, c1;
    Py_BEGIN_ALLOW_THREADS
    t0 = lfm_time_now();
    c0 = lfm_thread_cpu_time();
    for (int i = 0; i < nth; i++) {
        jobs[i] = (bench_job){&a, y, rows * i / nth / 8 * 8, i + 1 == nth ? rows : rows * (i + 1) / nth / 8 * 8, iters};
        if (i > 0 && !(th[i] = lfm_thread_start(bench_worker, &jobs[i]))) bench_worker(&jobs[i]);
    }
    bench_worker(&jobs[0]);
    c1 = lfm_thread_cpu_time();
    for (int i = 1; i < nth; i++) lfm_thread_join(th[i]);
    t1 = lfm_time_now();
    Py_END_ALLOW_THREADS
    free(y);
    res = Py_BuildValue("(dd)", (t1 - t0) / (double)iters, (c1 - c0) / (double)iters);
done:
    mm_args_free(&a);
    return res;
}

static PyObject *py_quant_kernels(PyObject *self, PyObject *noargs) {
    return PyUnicode_FromString(lfm_kernel_level());
}

static PyObject *py_profile_enable(PyObject *self, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
    lfm_profile_enable(on);
    Py_RETURN_NONE;
}

static PyObject *py_profile_get(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"reset", NULL};
    int reset = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p", kwlist, &reset)) return NULL;
    enum { CAP = 1024 };
    lfm_profile_entry *e = malloc(CAP * sizeof *e);
    if (!e) return PyErr_NoMemory();
    int n = lfm_profile_get(e, CAP, reset);
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyObject *t = Py_BuildValue("(sLLd)", e[i].name, (long long)e[i].calls, (long long)e[i].rows, e[i].seconds);
        if (!t) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, t);
    }
    free(e);
    return list;
}

static PyMethodDef quants_methods[] = {
    {"_profile_enable", py_profile_enable, METH_O, "_profile_enable(on): time every matmul per weight (LFM_PROFILE=1)"},
    {"_profile_get", (PyCFunction)(void (*)(void))py_profile_get, METH_VARARGS | METH_KEYWORDS,
     "_profile_get(reset=True) -> [(weight name, calls, activation rows, seconds)]"},
    {"_dequantize", py_dequantize, METH_VARARGS, "_dequantize(type, data, n) -> float32 array (test hook)"},
    {"_quantize", py_quantize, METH_VARARGS, "_quantize(type, x) -> bytes (test hook)"},
    {"_quantize_act", (PyCFunction)(void (*)(void))py_quantize_act, METH_VARARGS | METH_KEYWORDS,
     "_quantize_act(type, x, ref=False) -> bytes (test hook)"},
    {"_quant_matmul", (PyCFunction)(void (*)(void))py_quant_matmul, METH_VARARGS | METH_KEYWORDS,
     "_quant_matmul(type, w, rows, cols, x, ref=False) -> float32 [T, rows] (test hook)"},
    {"_quant_matmul_oracle", (PyCFunction)(void (*)(void))py_quant_matmul_oracle, METH_VARARGS | METH_KEYWORDS,
     "_quant_matmul_oracle(type, w, rows, cols, x, x8=False) -> float32 [T, rows] (test hook)"},
    {"_quant_bench", py_quant_bench, METH_VARARGS,
     "_quant_bench(type, w, rows, cols, x, iters, n_threads) -> (wall, thread-0 CPU) seconds per matmul (benchmark hook)"},
    {"_quant_kernels", py_quant_kernels, METH_NOARGS, "name of the quantized kernel set in use"},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_quants(PyObject *module) { return PyModule_AddFunctions(module, quants_methods); }
