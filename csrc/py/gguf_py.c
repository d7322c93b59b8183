/* gguf_py.c — Python bindings for the GGUF reader and the block (de)quantizers:
 *   _core.gguf_read(path) -> dict(version, alignment, data_offset, metadata, tensors)
 *   _core.type_info(type_id) -> (name, block_elems, block_bytes) or None
 *   _core.type_traits() -> tuple of dicts, one per type id the C core knows (its traits table)
 *   _core.quantize(type_id, float32 array [rows, n]) -> uint8 array [rows, row_bytes]
 *   _core.dequantize(type_id, buffer, n) -> float32 array [n]
 * liquidlfm/gguf.py and liquidlfm/quantize.py are the Python faces of these. */
#include "pycommon.h"
#include "format/format.h"
#include "kernels/kernels.h"

#include <string.h>

/* ---- metadata values ---- */

static PyObject *decode_str(const uint8_t *p, uint64_t len) {
    if (len > (uint64_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    /* keys are validated UTF-8; values may not be (token pieces of other tokenizers) */
    return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)len, "surrogateescape");
}

/* Decode one value of type t at *p (the C reader validated all lengths) and advance *p. */
static PyObject *decode_value(uint32_t t, const uint8_t **pp) {
    const uint8_t *p = *pp;
    uint64_t sz = lfm_gguf_scalar_size(t);
    if (sz) {
        *pp = p + sz;
        switch (t) {
        case LFM_GGUF_UINT8: return PyLong_FromUnsignedLong(p[0]);
        case LFM_GGUF_INT8: return PyLong_FromLong((int8_t)p[0]);
        case LFM_GGUF_BOOL: return PyBool_FromLong(p[0]);
        case LFM_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); return PyLong_FromUnsignedLong(v); }
        case LFM_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); return PyLong_FromLong(v); }
        case LFM_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); return PyLong_FromUnsignedLong(v); }
        case LFM_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); return PyLong_FromLong(v); }
        case LFM_GGUF_FLOAT32: { float v; memcpy(&v, p, 4); return PyFloat_FromDouble(v); }
        case LFM_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); return PyLong_FromUnsignedLongLong(v); }
        case LFM_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); return PyLong_FromLongLong(v); }
        case LFM_GGUF_FLOAT64: { double v; memcpy(&v, p, 8); return PyFloat_FromDouble(v); }
        }
    }
    if (t == LFM_GGUF_STRING) {
        uint64_t len;
        memcpy(&len, p, 8);
        *pp = p + 8 + len;
        return decode_str(p + 8, len);
    }
    if (t == LFM_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        memcpy(&et, p, 4);
        memcpy(&n, p + 4, 8);
        *pp = p + 12;
        if (n > (uint64_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
        PyObject *list = PyList_New((Py_ssize_t)n);
        if (!list) return NULL;
        for (uint64_t j = 0; j < n; j++) {
            PyObject *v = decode_value(et, pp);
            if (!v) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)j, v);
        }
        return list;
    }
    PyErr_Format(PyExc_RuntimeError, "GGUF value type %u", t);
    return NULL;
}

static PyObject *py_gguf_read(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *path_obj;
    if (!PyArg_ParseTuple(args, "O&:gguf_read", PyUnicode_FSConverter, &path_obj)) return NULL;
    const char *path = PyBytes_AS_STRING(path_obj);
    lfm_gguf *g = NULL;
    lfm_status s;
    Py_BEGIN_ALLOW_THREADS
    s = lfm_gguf_open(path, &g);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (s) return lfm_py_raise(s);

    PyObject *result = NULL, *meta = NULL, *types = NULL, *tensors = NULL;
    if (!(meta = PyDict_New()) || !(types = PyDict_New()) || !(tensors = PyList_New(0))) goto done;
    for (int64_t i = 0; i < lfm_gguf_n_kv(g); i++) {
        const void *data;
        size_t size;
        lfm_gguf_kv_data(g, i, &data, &size);
        const uint8_t *p = data;
        uint32_t t = (uint32_t)lfm_gguf_kv_type(g, i);
        PyObject *v = decode_value(t, &p);
        if (!v) goto done;
        int rc = PyDict_SetItemString(meta, lfm_gguf_key(g, i), v);
        Py_DECREF(v);
        if (rc < 0) goto done;
        PyObject *tv;
        if (t == LFM_GGUF_ARRAY) {
            lfm_gguf_value_type et;
            uint64_t n;
            lfm_gguf_get_arr_info(g, i, &et, &n);
            tv = Py_BuildValue("(ii)", (int)t, (int)et);
        } else {
            tv = PyLong_FromLong((long)t);
        }
        if (!tv) goto done;
        rc = PyDict_SetItemString(types, lfm_gguf_key(g, i), tv);
        Py_DECREF(tv);
        if (rc < 0) goto done;
    }
    for (int64_t i = 0; i < lfm_gguf_n_tensors(g); i++) {
        const char *name;
        lfm_type type;
        int32_t nd;
        int64_t ne[4];
        size_t nbytes;
        lfm_gguf_tensor_info(g, i, &name, &type, &nd, ne, NULL, &nbytes);
        PyObject *shape = PyTuple_New(nd);
        if (!shape) goto done;
        for (int d = 0; d < nd; d++) PyTuple_SET_ITEM(shape, d, PyLong_FromLongLong(ne[d]));
        const char *tn = lfm_type_name(type);
        PyObject *td = Py_BuildValue("{s:s,s:i,s:s,s:N,s:K,s:K}", "name", name, "type", (int)type, "type_name",
                                     tn ? tn : "?", "ne", shape, "offset",
                                     (unsigned long long)(lfm_gguf_data_offset(g) + lfm_gguf_tensor_offset(g, i)),
                                     "nbytes", (unsigned long long)nbytes);
        if (!td) goto done;
        int rc = PyList_Append(tensors, td);
        Py_DECREF(td);
        if (rc < 0) goto done;
    }
    result = Py_BuildValue("{s:I,s:K,s:K,s:O,s:O,s:O}", "version", (unsigned)lfm_gguf_version(g), "alignment",
                           (unsigned long long)lfm_gguf_alignment(g), "data_offset",
                           (unsigned long long)lfm_gguf_data_offset(g), "metadata", meta, "types", types, "tensors",
                           tensors);
done:
    Py_XDECREF(meta);
    Py_XDECREF(types);
    Py_XDECREF(tensors);
    lfm_gguf_close(g);
    return result;
}

/* ---- block formats ---- */

static int parse_type(PyObject *obj, lfm_type *out) {
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return 0;
    if (v < 0 || v > 1023 || lfm_type_block_elems((lfm_type)v) <= 0) {
        PyErr_Format(PyExc_ValueError, "unknown or unsupported tensor type id %ld", v);
        return 0;
    }
    *out = (lfm_type)v;
    return 1;
}

static PyObject *py_type_info(PyObject *self, PyObject *arg) {
    (void)self;
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    const lfm_type_traits *tt = v >= 0 && v < LFM_TYPE_COUNT ? lfm_type_traits_get((lfm_type)v) : NULL;
    if (!tt) Py_RETURN_NONE;
    return Py_BuildValue("(sLn)", tt->name, (long long)tt->block_elems, (Py_ssize_t)tt->block_bytes);
}

/* The level whose kernel fn is (levels build on the ones below, so the lowest one holding the same
 * pointer wrote it); None for NULL. */
static PyObject *kernel_level(lfm_qmm_fn fn, int x8, lfm_type t) {
    if (!fn) Py_RETURN_NONE;
    for (int l = 0; l < LFM_QLEVEL_COUNT; l++) {
        const lfm_qkernels *k = lfm_qkernels_level((lfm_qlevel)l);
        if (k && (x8 ? k->mm_x8[t] : k->mm[t]) == fn) return PyUnicode_FromString(lfm_qlevel_name((lfm_qlevel)l));
    }
    Py_RETURN_NONE;
}

/* {level: {"matmul": level or None, "x8": level or None}} over the kernel levels this CPU has: the
 * quantized ones for block types, the float ones (their GEMMs) for the others */
static PyObject *type_kernels(lfm_type t) {
    PyObject *d = PyDict_New();
    for (int l = 0; d && l < LFM_QLEVEL_COUNT; l++) {
        const char *name = lfm_qlevel_name((lfm_qlevel)l);
        PyObject *e = NULL;
        if (lfm_type_is_quantized(t)) {
            const lfm_qkernels *k = lfm_qkernels_level((lfm_qlevel)l);
            if (!k) continue;
            e = Py_BuildValue("{s:N,s:N}", "matmul", kernel_level(k->mm[t], 0, t), "x8", kernel_level(k->mm_x8[t], 1, t));
        } else {
            const lfm_kernels *k = lfm_kernels_by_name(name);
            if (!k) continue;
            e = Py_BuildValue("{s:s,s:O}", "matmul", k->gemm[t] ? name : NULL, "x8", Py_None);
        }
        if (!e || PyDict_SetItemString(d, name, e) < 0) Py_CLEAR(d);
        Py_XDECREF(e);
    }
    return d;
}

static PyObject *py_type_traits(PyObject *self, PyObject *noargs) {
    (void)self;
    PyObject *rows = PyList_New(0);
    for (int i = 0; rows && i < LFM_TYPE_COUNT; i++) {
        const lfm_type_traits *tt = lfm_type_traits_get((lfm_type)i);
        if (!tt) continue;
        PyObject *vdt = tt->vec_dot_type == LFM_TYPE_NONE ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(tt->vec_dot_type);
        PyObject *row = Py_BuildValue(
            "{s:i,s:s,s:L,s:n,s:O,s:N,s:O,s:O,s:O,s:N}", "id", i, "name", tt->name, "block_elems",
            (long long)tt->block_elems, "block_bytes", (Py_ssize_t)tt->block_bytes, "is_quantized",
            tt->is_quantized ? Py_True : Py_False, "vec_dot_type", vdt, "dequantizable",
            tt->to_float ? Py_True : Py_False, "quantizable", tt->from_float ? Py_True : Py_False, "matmul",
            lfm_type_has_matmul((lfm_type)i) ? Py_True : Py_False, "kernels", type_kernels((lfm_type)i));
        if (!row || PyList_Append(rows, row) < 0) Py_CLEAR(rows);
        Py_XDECREF(row);
    }
    PyObject *res = rows ? PyList_AsTuple(rows) : NULL;
    Py_XDECREF(rows);
    return res;
}

static PyObject *py_quantize(PyObject *self, PyObject *args) {
    (void)self;
    lfm_type type;
    PyObject *src_obj;
    if (!PyArg_ParseTuple(args, "O&O:quantize", parse_type, &type, &src_obj)) return NULL;
    PyArrayObject *src = (PyArrayObject *)PyArray_FROMANY(src_obj, NPY_FLOAT32, 1, 2, NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED);
    if (!src) return NULL;
    int nd = PyArray_NDIM(src);
    npy_intp rows = nd == 2 ? PyArray_DIM(src, 0) : 1, n = PyArray_DIM(src, nd - 1);
    int64_t be = lfm_type_block_elems(type);
    size_t bb = lfm_type_block_bytes(type);
    if (n <= 0 || n % be != 0) {
        Py_DECREF(src);
        return PyErr_Format(PyExc_ValueError, "row length %zd is not a positive multiple of the %s block size %lld",
                            (Py_ssize_t)n, lfm_type_name(type), (long long)be);
    }
    npy_intp dims[2] = {rows, (npy_intp)((size_t)(n / be) * bb)};
    PyArrayObject *dst = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_UINT8);
    if (!dst) {
        Py_DECREF(src);
        return NULL;
    }
    const float *x = PyArray_DATA(src);
    uint8_t *y = PyArray_DATA(dst);
    lfm_status s = LFM_OK;
    Py_BEGIN_ALLOW_THREADS
    for (npy_intp r = 0; r < rows && !s; r++) s = lfm_quantize_row(type, x + r * n, y + r * dims[1], n);
    Py_END_ALLOW_THREADS
    Py_DECREF(src);
    if (s) {
        Py_DECREF(dst);
        return lfm_py_raise(s);
    }
    return (PyObject *)dst;
}

static PyObject *py_dequantize(PyObject *self, PyObject *args) {
    (void)self;
    lfm_type type;
    Py_buffer buf;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O&y*n:dequantize", parse_type, &type, &buf, &n)) return NULL;
    int64_t be = lfm_type_block_elems(type);
    size_t bb = lfm_type_block_bytes(type);
    PyObject *res = NULL;
    if (n <= 0 || n % be != 0) {
        PyErr_Format(PyExc_ValueError, "n=%zd is not a positive multiple of the %s block size %lld", n,
                     lfm_type_name(type), (long long)be);
    } else if ((size_t)buf.len != (size_t)(n / be) * bb) {
        PyErr_Format(PyExc_ValueError, "%s data for %zd values is %zu bytes, got %zd", lfm_type_name(type), n,
                     (size_t)(n / be) * bb, buf.len);
    } else {
        npy_intp dims[1] = {n};
        PyArrayObject *dst = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_FLOAT32);
        if (dst) {
            lfm_status s;
            Py_BEGIN_ALLOW_THREADS
            s = lfm_dequantize_row(type, buf.buf, PyArray_DATA(dst), n);
            Py_END_ALLOW_THREADS
            if (s) {
                Py_DECREF(dst);
                lfm_py_raise(s);
            } else {
                res = (PyObject *)dst;
            }
        }
    }
    PyBuffer_Release(&buf);
    return res;
}

static PyMethodDef gguf_methods[] = {
    {"gguf_read", py_gguf_read, METH_VARARGS,
     "gguf_read(path) -> dict: validate a GGUF file and return its version, alignment, data_offset, "
     "metadata {key: value}, types {key: type or (ARRAY, elem)}, tensors [{name, type, type_name, ne, "
     "offset (absolute), nbytes}]."},
    {"type_info", py_type_info, METH_O, "type_info(type_id) -> (name, block_elems, block_bytes) or None."},
    {"type_traits", py_type_traits, METH_NOARGS,
     "type_traits() -> tuple of dicts, one per type id the C core knows, in id order: id, name, block_elems, "
     "block_bytes, is_quantized, vec_dot_type (id of the activation format, None: never a matmul weight), "
     "dequantizable, quantizable, matmul (a weight of this type runs on this CPU), kernels {level: {matmul, "
     "x8}: for each kernel level this CPU has, the level whose kernel it runs, None: none}."},
    {"quantize", py_quantize, METH_VARARGS,
     "quantize(type_id, x) -> uint8 [rows, row_bytes]: encode float32 rows (1-D or 2-D C array)."},
    {"dequantize", py_dequantize, METH_VARARGS, "dequantize(type_id, data, n) -> float32 [n]."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_gguf(PyObject *module) { return PyModule_AddFunctions(module, gguf_methods); }
