/* sampler_py.c — _core.Sampler: the C sampler (csrc/text/sampler.c) as a Python object.
 *
 *     s = _core.Sampler(n_vocab, temperature=0.3, top_k=0, top_p=1.0, min_p=0.15,
 *                       repetition_penalty=1.05, presence_penalty=0.0, frequency_penalty=0.0,
 *                       penalty_last_n=-1, seed=0, logit_bias=None)
 *     tok = s.sample(logits)        # any C-contiguous float32 buffer, [n_vocab] or [T, n_vocab] (last row)
 *     s.accept(tok) / s.accept([ids...])
 *     ids, probs = s.dist(logits)   # the distribution sample() draws from
 *     s.set_allowed(bits)           # uint32 [(n_vocab + 31) // 32]: only these tokens (None: all)
 *
 * The GIL is released while the C code runs. Objects in use (pycommon.h): a second call on the same
 * sampler while one runs (another thread, or Python code run by the first call's argument
 * conversions) gets RuntimeError, as do close() and __init__ (a re-init): the C sampler is never
 * freed or replaced under a running call.
 */
#include "pycommon.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    lfm_sampler *s;
    int busy; /* pycommon.h rule (a); read and written with the GIL held */
} SamplerObject;

static int sampler_enter(SamplerObject *self) {
    if (self->busy) {
        lfm_py_in_use("sampler");
        return -1;
    }
    if (!self->s) {
        PyErr_SetString(PyExc_ValueError, "sampler is closed");
        return -1;
    }
    self->busy = 1;
    return 0;
}

static void sampler_leave(SamplerObject *self) { self->busy = 0; }

/* ---- logit bias from a mapping {token: bias} ---- */

static int set_bias_from_mapping(lfm_sampler *s, PyObject *bias) {
    if (bias == NULL || bias == Py_None) {
        lfm_status st = lfm_sampler_set_logit_bias(s, NULL, NULL, 0);
        if (st != LFM_OK) {
            lfm_py_raise(st);
            return -1;
        }
        return 0;
    }
    if (!PyDict_Check(bias)) {
        PyErr_SetString(PyExc_TypeError, "logit_bias must be a dict {token_id: bias} or None");
        return -1;
    }
    /* a list of (key, value) pairs that owns its items: __float__ of a value may change the dict */
    PyObject *items = PyDict_Items(bias);
    if (!items) return -1;
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (n > INT32_MAX) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "logit_bias: too many entries");
        return -1;
    }
    lfm_token *ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *ids);
    float *vals = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *vals);
    if (!ids || !vals) {
        Py_DECREF(items);
        PyMem_Free(ids);
        PyMem_Free(vals);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t i = 0;
    int rc = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *k = PyTuple_GET_ITEM(PyList_GET_ITEM(items, j), 0), *v = PyTuple_GET_ITEM(PyList_GET_ITEM(items, j), 1);
        if (!PyLong_Check(k)) {
            PyErr_SetString(PyExc_TypeError, "logit_bias keys must be int token ids");
            rc = -1;
            break;
        }
        long long id = PyLong_AsLongLong(k);
        if (id == -1 && PyErr_Occurred()) {
            rc = -1;
            break;
        }
        if (id < 0 || id > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "logit_bias: token id %lld out of range", id);
            rc = -1;
            break;
        }
        double d = PyFloat_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            rc = -1;
            break;
        }
        ids[i] = (lfm_token)id;
        vals[i] = (float)d;
        i++;
    }
    if (rc == 0) {
        lfm_status st = lfm_sampler_set_logit_bias(s, ids, vals, (int32_t)i);
        if (st != LFM_OK) {
            lfm_py_raise(st);
            rc = -1;
        }
    }
    Py_DECREF(items);
    PyMem_Free(ids);
    PyMem_Free(vals);
    return rc;
}

/* ---- construction ---- */

static int sampler_create(SamplerObject *self, PyObject *args, PyObject *kw);

/* A re-init replaces the C sampler: refused while a call runs (rule (b)); busy itself while its
 * argument converters (Python code) run, so a nested __init__ or close() is refused too. */
static int Sampler_init(SamplerObject *self, PyObject *args, PyObject *kw) {
    if (self->busy) {
        lfm_py_in_use("sampler");
        return -1;
    }
    self->busy = 1;
    int rc = sampler_create(self, args, kw);
    self->busy = 0;
    return rc;
}

static int sampler_create(SamplerObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"n_vocab", "temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                             "presence_penalty", "frequency_penalty", "penalty_last_n", "seed", "logit_bias",
                             NULL};
    lfm_sampler_params p = lfm_sampler_default_params();
    int n_vocab = 0;
    double temperature = p.temperature, top_p = p.top_p, min_p = p.min_p, rep = p.repetition_penalty;
    double pres = p.presence_penalty, freq = p.frequency_penalty;
    int top_k = p.top_k, last_n = p.penalty_last_n;
    PyObject *seed = NULL, *bias = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|$didddddiOO", kwlist, &n_vocab, &temperature, &top_k, &top_p,
                                     &min_p, &rep, &pres, &freq, &last_n, &seed, &bias))
        return -1;
    p.temperature = (float)temperature;
    p.top_k = top_k;
    p.top_p = (float)top_p;
    p.min_p = (float)min_p;
    p.repetition_penalty = (float)rep;
    p.presence_penalty = (float)pres;
    p.frequency_penalty = (float)freq;
    p.penalty_last_n = last_n;
    if (seed && seed != Py_None) {
        if (!PyLong_Check(seed)) {
            PyErr_SetString(PyExc_TypeError, "seed must be an int or None");
            return -1;
        }
        p.seed = (uint64_t)PyLong_AsUnsignedLongLongMask(seed); /* any int, taken modulo 2**64 */
        if (PyErr_Occurred()) return -1;
    }
    lfm_sampler *s = NULL;
    lfm_status st = lfm_sampler_init(&p, n_vocab, &s);
    if (st != LFM_OK) {
        lfm_py_raise(st);
        return -1;
    }
    if (set_bias_from_mapping(s, bias) < 0) {
        lfm_sampler_free(s);
        return -1;
    }
    lfm_sampler_free(self->s);
    self->s = s;
    return 0;
}

static void Sampler_dealloc(SamplerObject *self) {
    /* never busy here: a running call holds a reference */
    lfm_sampler_free(self->s);
    self->s = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- helpers ---- */

/* Get a view of one row of n_vocab float32 logits (1-D, or the last row of a 2-D buffer). */
static int get_logits_row(SamplerObject *self, PyObject *obj, Py_buffer *view, const float **row) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    int32_t V = lfm_sampler_n_vocab(self->s);
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    if (view->itemsize != 4 || strcmp(fmt, "f") != 0) {
        PyErr_Format(PyExc_TypeError, "logits must be float32 (format 'f'), got format '%s' itemsize %zd",
                     view->format ? view->format : "B", view->itemsize);
        goto fail;
    }
    if (view->ndim == 1 && view->shape[0] == V) {
        *row = (const float *)view->buf;
        return 0;
    }
    if (view->ndim == 2 && view->shape[1] == V && view->shape[0] >= 1) {
        *row = (const float *)view->buf + (size_t)(view->shape[0] - 1) * (size_t)V;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "logits must have shape [%d] or [T, %d] (n_vocab = %d)", (int)V, (int)V, (int)V);
fail:
    PyBuffer_Release(view);
    return -1;
}

static int check_token(SamplerObject *self, PyObject *o, lfm_token *out) {
    long long t = PyLong_AsLongLong(o);
    if (t == -1 && PyErr_Occurred()) return -1;
    int32_t V = lfm_sampler_n_vocab(self->s);
    if (t < 0 || t >= V) {
        PyErr_Format(PyExc_ValueError, "token id %lld out of range [0, %d)", t, (int)V);
        return -1;
    }
    *out = (lfm_token)t;
    return 0;
}

/* Any iterable -> a tuple (which owns its items, unlike a list that Python code may change). */
static PyObject *owned_items(PyObject *obj, const char *msg) {
    PyObject *fast = PySequence_Fast(obj, msg);
    if (!fast || PyTuple_CheckExact(fast)) return fast;
    PyObject *t = PyList_AsTuple(fast);
    Py_DECREF(fast);
    return t;
}

/* ---- methods ---- */

/* Mark the sampler busy and borrow obj's logits row; on failure nothing is held (busy released). */
static int sampler_enter_with_row(SamplerObject *self, PyObject *obj, Py_buffer *view, const float **row) {
    if (sampler_enter(self) < 0) return -1;
    if (get_logits_row(self, obj, view, row) < 0) {
        sampler_leave(self);
        return -1;
    }
    return 0;
}

static PyObject *Sampler_sample(SamplerObject *self, PyObject *obj) {
    Py_buffer view;
    const float *row;
    if (sampler_enter_with_row(self, obj, &view, &row) < 0) return NULL;
    lfm_token t = -1;
    lfm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_sampler_sample(self->s, row, &t);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    sampler_leave(self);
    if (st != LFM_OK) return lfm_py_raise(st);
    return PyLong_FromLong(t);
}

static PyObject *Sampler_dist(SamplerObject *self, PyObject *obj) {
    Py_buffer view;
    const float *row;
    if (sampler_enter_with_row(self, obj, &view, &row) < 0) return NULL;
    npy_intp V = lfm_sampler_n_vocab(self->s);
    PyArrayObject *ids = (PyArrayObject *)PyArray_SimpleNew(1, &V, NPY_INT32);
    PyArrayObject *probs = (PyArrayObject *)PyArray_SimpleNew(1, &V, NPY_FLOAT32);
    if (!ids || !probs) {
        Py_XDECREF(ids);
        Py_XDECREF(probs);
        PyBuffer_Release(&view);
        sampler_leave(self);
        return NULL;
    }
    int32_t n = 0;
    lfm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_sampler_dist(self->s, row, (lfm_token *)PyArray_DATA(ids), (float *)PyArray_DATA(probs), (int32_t)V,
                          &n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    sampler_leave(self);
    if (st != LFM_OK) {
        Py_DECREF(ids);
        Py_DECREF(probs);
        return lfm_py_raise(st);
    }
    PyObject *r = Py_BuildValue("(NN)", PySequence_GetSlice((PyObject *)ids, 0, n),
                                PySequence_GetSlice((PyObject *)probs, 0, n));
    Py_DECREF(ids);
    Py_DECREF(probs);
    return r;
}

static PyObject *Sampler_processed_logits(SamplerObject *self, PyObject *obj) {
    Py_buffer view;
    const float *row;
    if (sampler_enter_with_row(self, obj, &view, &row) < 0) return NULL;
    npy_intp V = lfm_sampler_n_vocab(self->s);
    PyArrayObject *out = (PyArrayObject *)PyArray_SimpleNew(1, &V, NPY_FLOAT32);
    if (!out) {
        PyBuffer_Release(&view);
        sampler_leave(self);
        return NULL;
    }
    lfm_status st;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_sampler_processed_logits(self->s, row, (float *)PyArray_DATA(out));
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    sampler_leave(self);
    if (st != LFM_OK) {
        Py_DECREF(out);
        return lfm_py_raise(st);
    }
    return (PyObject *)out;
}

static PyObject *Sampler_accept(SamplerObject *self, PyObject *obj) {
    if (sampler_enter(self) < 0) return NULL;
    lfm_token t;
    if (PyLong_Check(obj)) {
        if (check_token(self, obj, &t) < 0) goto fail;
        lfm_sampler_accept(self->s, t);
    } else {
        /* a tuple owns its items (the __index__ of one may change a list); each id is converted
         * once, all before the first is accepted, so a bad id leaves the history unchanged */
        PyObject *seq = owned_items(obj, "accept() takes a token id or a sequence of token ids");
        if (!seq) goto fail;
        Py_ssize_t n = PyTuple_GET_SIZE(seq);
        lfm_token *ids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *ids);
        if (!ids) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto fail;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (check_token(self, PyTuple_GET_ITEM(seq, i), &ids[i]) < 0) {
                PyMem_Free(ids);
                Py_DECREF(seq);
                goto fail;
            }
        }
        for (Py_ssize_t i = 0; i < n; i++) lfm_sampler_accept(self->s, ids[i]);
        PyMem_Free(ids);
        Py_DECREF(seq);
    }
    sampler_leave(self);
    Py_RETURN_NONE;
fail:
    sampler_leave(self);
    return NULL;
}

static PyObject *Sampler_reset(SamplerObject *self, PyObject *noargs) {
    if (sampler_enter(self) < 0) return NULL;
    lfm_sampler_reset(self->s);
    sampler_leave(self);
    Py_RETURN_NONE;
}

static PyObject *Sampler_set_logit_bias(SamplerObject *self, PyObject *bias) {
    if (sampler_enter(self) < 0) return NULL;
    int rc = set_bias_from_mapping(self->s, bias);
    sampler_leave(self);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* set_allowed(bits | None): bits is any C-contiguous 1-D buffer of (n_vocab + 31) // 32 uint32 words
 * (numpy uint32); the C sampler copies it, so the caller may reuse the array for the next step. */
static PyObject *Sampler_set_allowed(SamplerObject *self, PyObject *obj) {
    if (sampler_enter(self) < 0) return NULL;
    lfm_status st;
    if (obj == Py_None) {
        st = lfm_sampler_set_allowed(self->s, NULL, 0);
        sampler_leave(self);
        if (st != LFM_OK) return lfm_py_raise(st);
        Py_RETURN_NONE;
    }
    Py_buffer view;
    if (!PyObject_CheckBuffer(obj)) {
        sampler_leave(self);
        PyErr_Format(PyExc_TypeError, "set_allowed() takes a numpy.uint32 array or None, not %s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        sampler_leave(self);
        return NULL;
    }
    int32_t V = lfm_sampler_n_vocab(self->s);
    Py_ssize_t want = ((Py_ssize_t)V + 31) / 32;
    const char *fmt = view.format ? view.format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    if (view.itemsize != 4 || (strcmp(fmt, "I") != 0 && strcmp(fmt, "L") != 0)) {
        PyErr_Format(PyExc_TypeError, "allowed-token mask must be uint32 (numpy.uint32), got format '%s' itemsize %zd",
                     view.format ? view.format : "B", view.itemsize);
        goto fail;
    }
    if (view.ndim != 1) {
        PyErr_Format(PyExc_ValueError, "allowed-token mask must be 1-D ((n_vocab + 31) // 32 = %zd words), got %d-D",
                     want, view.ndim);
        goto fail;
    }
    if (view.shape[0] != want) {
        PyErr_Format(PyExc_ValueError,
                     "allowed-token mask must have (n_vocab + 31) // 32 = %zd words for n_vocab = %d, got %zd", want,
                     (int)V, view.shape[0]);
        goto fail;
    }
    st = lfm_sampler_set_allowed(self->s, (const uint32_t *)view.buf, (int32_t)want);
    PyBuffer_Release(&view);
    sampler_leave(self);
    if (st != LFM_OK) return lfm_py_raise(st);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&view);
    sampler_leave(self);
    return NULL;
}

static PyObject *Sampler_count(SamplerObject *self, PyObject *obj) {
    if (sampler_enter(self) < 0) return NULL; /* the id's __index__ is Python code */
    lfm_token t;
    int rc = check_token(self, obj, &t);
    long count = rc == 0 ? (long)lfm_sampler_token_count(self->s, t) : 0;
    sampler_leave(self);
    if (rc < 0) return NULL;
    return PyLong_FromLong(count);
}

static PyObject *Sampler_close(SamplerObject *self, PyObject *noargs) {
    if (self->busy) return lfm_py_in_use("sampler");
    lfm_sampler_free(self->s);
    self->s = NULL;
    Py_RETURN_NONE;
}

static PyObject *Sampler_enter_ctx(SamplerObject *self, PyObject *noargs) {
    if (!self->s) {
        PyErr_SetString(PyExc_ValueError, "sampler is closed");
        return NULL;
    }
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *Sampler_exit_ctx(SamplerObject *self, PyObject *args) { return Sampler_close(self, NULL); }

static PyObject *Sampler_get_param(SamplerObject *self, void *which) {
    if (!self->s) {
        PyErr_SetString(PyExc_ValueError, "sampler is closed");
        return NULL;
    }
    const lfm_sampler_params *p = lfm_sampler_get_params(self->s);
    switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromLong(lfm_sampler_n_vocab(self->s));
    case 1: return PyFloat_FromDouble(p->temperature);
    case 2: return PyLong_FromLong(p->top_k);
    case 3: return PyFloat_FromDouble(p->top_p);
    case 4: return PyFloat_FromDouble(p->min_p);
    case 5: return PyFloat_FromDouble(p->repetition_penalty);
    case 6: return PyFloat_FromDouble(p->presence_penalty);
    case 7: return PyFloat_FromDouble(p->frequency_penalty);
    case 8: return PyLong_FromLong(p->penalty_last_n);
    case 9: return PyLong_FromUnsignedLongLong(p->seed);
    }
    Py_RETURN_NONE;
}

static PyObject *Sampler_closed(SamplerObject *self, void *unused) { return PyBool_FromLong(self->s == NULL); }

static PyGetSetDef Sampler_getset[] = {
    {"n_vocab", (getter)Sampler_get_param, NULL, "vocabulary size", (void *)0},
    {"temperature", (getter)Sampler_get_param, NULL, "temperature (<= 0: greedy)", (void *)1},
    {"top_k", (getter)Sampler_get_param, NULL, "top-k (0: off)", (void *)2},
    {"top_p", (getter)Sampler_get_param, NULL, "top-p (1: off)", (void *)3},
    {"min_p", (getter)Sampler_get_param, NULL, "min-p (0: off)", (void *)4},
    {"repetition_penalty", (getter)Sampler_get_param, NULL, "repetition penalty (1: off)", (void *)5},
    {"presence_penalty", (getter)Sampler_get_param, NULL, "presence penalty (0: off)", (void *)6},
    {"frequency_penalty", (getter)Sampler_get_param, NULL, "frequency penalty (0: off)", (void *)7},
    {"penalty_last_n", (getter)Sampler_get_param, NULL, "penalty window (< 0: all)", (void *)8},
    {"seed", (getter)Sampler_get_param, NULL, "seed (mod 2**64)", (void *)9},
    {"closed", (getter)Sampler_closed, NULL, "True after close()", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Sampler_methods[] = {
    {"sample", (PyCFunction)Sampler_sample, METH_O,
     "sample(logits) -> int: pick a token from float32 logits [n_vocab] (or the last row of [T, n_vocab]); "
     "does not accept it."},
    {"dist", (PyCFunction)Sampler_dist, METH_O,
     "dist(logits) -> (ids int32[m], probs float32[m]): the distribution sample() draws from."},
    {"processed_logits", (PyCFunction)Sampler_processed_logits, METH_O,
     "processed_logits(logits) -> float32[n_vocab]: logits after bias and penalties."},
    {"accept", (PyCFunction)Sampler_accept, METH_O,
     "accept(token | sequence of tokens): append to the penalty history."},
    {"reset", (PyCFunction)Sampler_reset, METH_NOARGS, "Clear the penalty history and reseed."},
    {"set_logit_bias", (PyCFunction)Sampler_set_logit_bias, METH_O,
     "set_logit_bias({token: bias} | None): replace the logit bias (-inf bans a token)."},
    {"set_allowed", (PyCFunction)Sampler_set_allowed, METH_O,
     "set_allowed(bits | None): only tokens whose bit is set may be sampled (bit i % 32 of bits[i // 32]); "
     "bits is a uint32 array of (n_vocab + 31) // 32 words, copied; None removes the mask. Applies to every "
     "later sample / dist / processed_logits / generate_step; a mask allowing no token makes sampling raise "
     "ValueError."},
    {"count", (PyCFunction)Sampler_count, METH_O, "count(token) -> occurrences in the penalty window."},
    {"close", (PyCFunction)Sampler_close, METH_NOARGS, "Free the native sampler."},
    {"__enter__", (PyCFunction)Sampler_enter_ctx, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)Sampler_exit_ctx, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SamplerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "liquidlfm._core.Sampler",
    .tp_basicsize = sizeof(SamplerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Sampler(n_vocab, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repetition_penalty=1.0, "
              "presence_penalty=0.0, frequency_penalty=0.0, penalty_last_n=-1, seed=0, logit_bias=None)\n\n"
              "Bias, penalties, then temperature -> top-k -> top-p -> min-p (transformers order); "
              "temperature <= 0 is greedy.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sampler_init,
    .tp_dealloc = (destructor)Sampler_dealloc,
    .tp_methods = Sampler_methods,
    .tp_getset = Sampler_getset,
};

/* ---- generate_step(ctx, sampler, stop_ids) ---- */

static PyObject *py_generate_step(PyObject *mod, PyObject *args) {
    PyObject *ctx_obj, *stops = NULL;
    SamplerObject *sp;
    if (!PyArg_ParseTuple(args, "OO!|O", &ctx_obj, &SamplerType, (PyObject **)&sp, &stops)) return NULL;
    /* stop ids */
    lfm_token stop_buf[16];
    lfm_token *stop_ids = stop_buf;
    Py_ssize_t n_stop = 0;
    PyObject *seq = NULL;
    if (stops && stops != Py_None) {
        seq = owned_items(stops, "stop_ids must be a sequence of ints"); /* an __index__ below may change a list */
        if (!seq) return NULL;
        n_stop = PyTuple_GET_SIZE(seq);
        if (n_stop > (Py_ssize_t)(sizeof stop_buf / sizeof stop_buf[0])) {
            stop_ids = PyMem_Malloc((size_t)n_stop * sizeof *stop_ids);
            if (!stop_ids) {
                Py_DECREF(seq);
                return PyErr_NoMemory();
            }
        }
        for (Py_ssize_t i = 0; i < n_stop; i++) {
            long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(seq, i));
            if (v == -1 && PyErr_Occurred()) goto fail_stops;
            if (v < INT32_MIN || v > INT32_MAX) {
                PyErr_Format(PyExc_ValueError, "stop id %lld out of range", v);
                goto fail_stops;
            }
            stop_ids[i] = (lfm_token)v;
        }
        Py_CLEAR(seq);
    }
    if (sampler_enter(sp) < 0) goto fail_stops;
    lfm_ctx *c = lfm_py_ctx_acquire(ctx_obj);
    if (!c) {
        sampler_leave(sp);
        goto fail_stops;
    }
    lfm_token tok = -1;
    lfm_finish_reason fin = LFM_FINISH_NONE;
    lfm_status st;
    char err[1024];
    Py_BEGIN_ALLOW_THREADS
    st = lfm_generate_step(c, sp->s, stop_ids, (int32_t)n_stop, &tok, &fin);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    lfm_py_ctx_release(ctx_obj);
    sampler_leave(sp);
    if (stop_ids != stop_buf) PyMem_Free(stop_ids);
    if (st != LFM_OK) return lfm_py_raise_msg(st, err);
    return Py_BuildValue("(ii)", (int)tok, (int)fin);
fail_stops:
    Py_XDECREF(seq);
    if (stop_ids != stop_buf) PyMem_Free(stop_ids);
    return NULL;
}

static PyMethodDef sampler_functions[] = {
    {"generate_step", py_generate_step, METH_VARARGS,
     "generate_step(ctx, sampler, stop_ids=()) -> (token, finish): sample from the context's last logits, "
     "accept the token, and decode it unless it is a stop id (finish 1) or the context is full (finish 2 once "
     "the context fills). The GIL is released."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_sampler(PyObject *module) {
    if (PyType_Ready(&SamplerType) < 0) return -1;
    Py_INCREF(&SamplerType);
    if (PyModule_AddObject(module, "Sampler", (PyObject *)&SamplerType) < 0) {
        Py_DECREF(&SamplerType);
        return -1;
    }
    if (PyModule_AddIntConstant(module, "FINISH_NONE", LFM_FINISH_NONE) < 0 ||
        PyModule_AddIntConstant(module, "FINISH_STOP", LFM_FINISH_STOP) < 0 ||
        PyModule_AddIntConstant(module, "FINISH_LENGTH", LFM_FINISH_LENGTH) < 0)
        return -1;
    return PyModule_AddFunctions(module, sampler_functions);
}
