/* engine_py.c — Python bindings for the engine: _core.Model, _core.Ctx and kernel test hooks.
 *
 * Ownership and threads (the rule for objects in use is in pycommon.h):
 * - Model owns an lfm_model. Every open Ctx holds a strong reference to its Model and counts as a
 *   user, as does every running Model call; Model.close() frees the native model only once no Ctx
 *   and no running call uses it (the Python object reports closed immediately).
 * - The GIL is released around load, context creation, decode and state copies. A Ctx is
 *   single-owner: a second call entering (another thread, or Python code run by the argument
 *   conversions of the first) while a call runs gets RuntimeError, as do close() and __init__.
 * - Logits: Model.forward returns a read-only NumPy array that is a zero-copy view of the C
 *   buffer the engine wrote; the buffer is detached from its (freed) context and owned by the
 *   array's base object, so nothing can overwrite it. Ctx.decode returns copies (a step's logits
 *   must stay valid after the next step), which costs one vocab row per token.
 * - A Ctx holds n_seq sequences (default 1); decode, pos, reset, save and load act on sequence 0,
 *   decode_seqs runs chunks of several sequences in one forward pass (lfm_ctx_decode_seqs).
 */
#include "pycommon.h"

#include "runtime/runtime.h"

#include <string.h>
#include <strings.h>

/* ---- errors ---- */

/* Raise for status with msg made valid UTF-8 (a message may quote file bytes cut mid-character). */
static PyObject *raise_err(lfm_status st, char *msg) {
    uint8_t *p = (uint8_t *)msg, *end = p + strlen(msg);
    while (p < end) {
        uint32_t cp;
        size_t len = lfm_utf8_decode(p, (size_t)(end - p), &cp);
        if (!len) *p++ = '?';
        else p += len;
    }
    return lfm_py_raise_msg(st, msg);
}

/* ---- token lists ---- */

/* ids (any sequence of ints / integer array) → a flat C int64 array. This is where Python code of the
 * argument runs (__len__, __getitem__, __index__, __array__): callers mark their object busy first and
 * read n_vocab only afterwards (pycommon.h, rule (c)). */
static PyArrayObject *convert_tokens(PyObject *ids) {
    if (PyUnicode_Check(ids) || PyBytes_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "token ids must be a sequence of ints, not str/bytes");
        return NULL;
    }
    PyArrayObject *raw = (PyArrayObject *)PyArray_FromAny(ids, NULL, 0, 0, 0, NULL);
    if (!raw) {
        if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_ValueError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "token ids must be a sequence of ints");
        }
        return NULL;
    }
    char kind = PyArray_DESCR(raw)->kind;
    if (PyArray_SIZE(raw) > 0 && kind != 'i' && kind != 'u') {
        Py_DECREF(raw);
        if (kind == 'O') PyErr_SetString(PyExc_ValueError, "token id out of range (a value too large for int64, or not an int)");
        else PyErr_SetString(PyExc_TypeError, "token ids must be ints (got floats, bools or strings)");
        return NULL;
    }
    PyArrayObject *arr = (PyArrayObject *)PyArray_FromAny((PyObject *)raw, PyArray_DescrFromType(NPY_INT64), 0, 0,
                                                          NPY_ARRAY_CARRAY | NPY_ARRAY_FORCECAST, NULL);
    Py_DECREF(raw);
    if (!arr) return NULL;
    if (PyArray_NDIM(arr) != 1) {
        Py_DECREF(arr);
        PyErr_SetString(PyExc_ValueError, "token ids must be a flat (1-D) sequence of ints");
        return NULL;
    }
    npy_intp n = PyArray_DIM(arr, 0);
    if (n == 0) {
        Py_DECREF(arr);
        PyErr_SetString(PyExc_ValueError, "empty token list");
        return NULL;
    }
    if (n > INT32_MAX) {
        Py_DECREF(arr);
        PyErr_SetString(PyExc_ValueError, "too many tokens");
        return NULL;
    }
    return arr;
}

/* A converted ids array → int32 buffer checked against n_vocab (runs no Python code). */
static int check_tokens(PyArrayObject *arr, int32_t n_vocab, lfm_token **out, int32_t *n_out) {
    *out = NULL;
    *n_out = 0;
    npy_intp n = PyArray_DIM(arr, 0);
    const int64_t *src = PyArray_DATA(arr);
    lfm_token *buf = PyMem_Malloc((size_t)n * sizeof *buf);
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
    for (npy_intp i = 0; i < n; i++) {
        if (src[i] < 0 || src[i] >= n_vocab) {
            PyErr_Format(PyExc_ValueError, "token id %lld at index %zd is out of range [0, %d)", (long long)src[i], (Py_ssize_t)i,
                         (int)n_vocab);
            PyMem_Free(buf);
            return -1;
        }
        buf[i] = (lfm_token)src[i];
    }
    *out = buf;
    *n_out = (int32_t)n;
    return 0;
}

/* ---- Model ---- */

typedef struct {
    PyObject_HEAD
    lfm_model *m;
    int closed;
    int users;   /* live Ctx objects + running calls (GIL-protected; pycommon.h rule (d)) */
    int loading; /* __init__ is loading with the GIL released */
} PyModel;

static PyTypeObject PyModel_Type;

static void model_release(PyModel *self) {
    if (self->closed && self->users == 0 && self->m) {
        lfm_model *m = self->m;
        self->m = NULL;
        lfm_model_free(m);
    }
}

static int model_check(PyModel *self) {
    if (self->closed || !self->m) {
        PyErr_SetString(PyExc_ValueError, "model is closed");
        return -1;
    }
    return 0;
}

/* Any type the traits table names (the kernel test hooks). */
static lfm_type type_by_name(const char *name) {
    for (int t = 0; t < LFM_TYPE_COUNT; t++) {
        const char *n = lfm_type_name((lfm_type)t);
        if (n && strcasecmp(n, name) == 0) return (lfm_type)t;
    }
    return LFM_TYPE_NONE;
}

static int model_load(PyModel *self, PyObject *args, PyObject *kw);

static int model_init(PyModel *self, PyObject *args, PyObject *kw) {
    if (self->loading || self->users) {
        lfm_py_in_use("model");
        return -1;
    }
    if (self->m) {
        PyErr_SetString(PyExc_RuntimeError, "Model already initialised");
        return -1;
    }
    /* busy from here: the converters below run Python code (__fspath__, __index__) */
    self->loading = 1;
    int rc = model_load(self, args, kw);
    self->loading = 0;
    return rc;
}

static int model_load(PyModel *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "quantize", "n_threads", NULL};
    PyObject *path_obj, *quant = Py_None;
    int n_threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|Oi", kwlist, PyUnicode_FSConverter, &path_obj, &quant, &n_threads)) return -1;
    lfm_model_params p = lfm_model_default_params();
    p.n_threads = n_threads;
    if (quant != Py_None) {
        const char *qs = PyUnicode_Check(quant) ? PyUnicode_AsUTF8(quant) : NULL;
        if (!qs) {
            Py_DECREF(path_obj);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "quantize must be a file type name such as 'q4_k_m' or None");
            return -1;
        }
        bool unsupported;
        p.quantize = lfm_ftype_by_name(qs, &unsupported);
        if (p.quantize == LFM_FTYPE_NONE) {
            char names[512];
            lfm_ftype_names(names, sizeof names);
            char msg[768];
            snprintf(msg, sizeof msg, "quantize: %s '%s' (one of %s)",
                     unsupported ? "liquidlfm has no quantizer for llama.cpp's file type" : "unknown file type", qs, names);
            lfm_py_raise_msg(unsupported ? LFM_ERR_UNSUPPORTED : LFM_ERR_ARG, msg);
            Py_DECREF(path_obj);
            return -1;
        }
    }
    const char *path = PyBytes_AS_STRING(path_obj);
    lfm_model *m = NULL;
    lfm_status st;
    char err[1024];
    Py_BEGIN_ALLOW_THREADS
    st = lfm_model_load(path, &p, &m);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (st != LFM_OK) {
        raise_err(st, err);
        return -1;
    }
    self->m = m;
    self->closed = 0;
    return 0;
}

static void model_dealloc(PyModel *self) {
    /* users > 0 is impossible here: every Ctx holds a reference */
    if (self->m) lfm_model_free(self->m);
    self->m = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *model_close(PyModel *self, PyObject *noargs) {
    if (self->loading) return lfm_py_in_use("model");
    self->closed = 1;
    model_release(self);
    Py_RETURN_NONE;
}

static PyObject *model_get_closed(PyModel *self, void *closure) { return PyBool_FromLong(self->closed); }

static PyObject *model_config_dict(PyModel *self);

static PyObject *model_get_config(PyModel *self, void *closure) {
    if (model_check(self) < 0) return NULL;
    self->users++; /* building the dict can start the GC, whose __del__s may close the model */
    PyObject *d = model_config_dict(self);
    self->users--;
    model_release(self);
    return d;
}


static PyObject *model_config_dict(PyModel *self) {
    const lfm_config *c = lfm_model_config(self->m);
    PyObject *types = PyList_New(c->n_layer);
    if (!types) return NULL;
    for (int32_t l = 0; l < c->n_layer; l++)
        PyList_SET_ITEM(types, l, PyUnicode_FromString(c->is_swa[l] ? "sliding_attention" : c->is_attn[l] ? "full_attention" : "conv"));
    /* the type of layer 0's FFN: its dense gate, or its experts' gates in a MoE layer */
    const lfm_layer *l0 = &self->m->layers[0];
    const char *wt = lfm_type_name(lfm_layer_is_moe(c, 0) ? l0->ffn_gate_exps.type : l0->ffn_gate.type);
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:i,s:i,s:i,s:O,s:N,s:s,s:i,s:i,s:i,s:i,s:O,"
                         "s:s,s:i,s:O,s:O,s:i,s:f,s:i}", "n_vocab",
                         c->n_vocab, "n_embd", c->n_embd, "n_layer", c->n_layer, "n_head", c->n_head, "n_head_kv", c->n_head_kv,
                         "head_dim", c->head_dim, "n_ff", c->n_ff, "conv_l_cache", c->conv_l_cache, "n_ctx_train", c->n_ctx_train,
                         "norm_eps", (double)c->norm_eps, "rope_theta", (double)c->rope_theta, "bos_id", c->bos_id, "eos_id",
                         c->eos_id, "pad_id", c->pad_id, "tied_output", c->tied_output ? Py_True : Py_False, "layer_types", types,
                         "weight_type", wt ? wt : "?", "n_expert", c->n_expert, "n_expert_used", c->n_expert_used, "n_ff_exp",
                         c->n_ff_exp, "n_layer_dense", c->n_expert ? c->n_layer_dense : c->n_layer, "expert_bias",
                         c->expert_bias ? Py_True : Py_False, "arch", c->arch == LFM_ARCH_LFM3 ? "lfm3" : "lfm2",
                         "sliding_window", c->n_swa, "sandwich_norm", c->sandwich_norm ? Py_True : Py_False, "attn_gate",
                         c->attn_gate ? Py_True : Py_False, "rope_pairs", c->rope_pairs, "rope_theta_swa",
                         (double)c->rope_theta_swa, "rope_pairs_swa", c->rope_pairs_swa);
}

static PyObject *model_describe(PyModel *self, PyObject *noargs) {
    if (model_check(self) < 0) return NULL;
    size_t n = lfm_model_describe(self->m, NULL, 0);
    char *buf = PyMem_Malloc(n + 1);
    if (!buf) return PyErr_NoMemory();
    lfm_model_describe(self->m, buf, n + 1);
    PyObject *s = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n); /* after the last use of self->m */
    PyMem_Free(buf);
    return s;
}

/* A capsule owning a float buffer: the base object of zero-copy logits arrays. */
static void free_buffer_capsule(PyObject *cap) { free(PyCapsule_GetPointer(cap, "liquidlfm.logits")); }

static PyObject *model_forward_in_use(PyModel *self, PyObject *args, PyObject *kw);

static PyObject *model_forward(PyModel *self, PyObject *args, PyObject *kw) {
    if (model_check(self) < 0) return NULL;
    self->users++; /* rule (d): a close() from the conversions below is deferred */
    PyObject *r = model_forward_in_use(self, args, kw);
    self->users--;
    model_release(self);
    return r;
}

static PyObject *model_forward_in_use(PyModel *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "n_threads", "n_batch", "kv_f16", "blas", NULL};
    PyObject *ids;
    int n_threads = 0, n_batch = 0, kv_f16 = 0;
    int32_t blas = LFM_BLAS_DEFAULT;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|iipO&", kwlist, &ids, &n_threads, &n_batch, &kv_f16, lfm_py_blas_mode,
                                     &blas))
        return NULL;
    PyArrayObject *ids_arr = convert_tokens(ids);
    if (!ids_arr) return NULL;
    if (model_check(self) < 0) { /* closed by the conversions */
        Py_DECREF(ids_arr);
        return NULL;
    }
    const int32_t V = self->m->cfg.n_vocab;
    lfm_token *toks;
    int32_t n;
    int rc = check_tokens(ids_arr, V, &toks, &n);
    Py_DECREF(ids_arr);
    if (rc < 0) return NULL;
    lfm_ctx_params cp = lfm_ctx_default_params();
    cp.n_ctx = n;
    cp.n_batch = n_batch;
    cp.n_threads = n_threads;
    cp.kv_f16 = kv_f16;
    cp.blas = blas;
    lfm_ctx *c = NULL;
    float *logits = NULL;
    lfm_status st;
    char err[1024];
    Py_BEGIN_ALLOW_THREADS
    st = lfm_ctx_init(self->m, &cp, &c);
    if (st == LFM_OK) st = lfm_ctx_decode(c, toks, n, LFM_LOGITS_ALL);
    if (st == LFM_OK) { /* detach the logits buffer from the context */
        logits = c->logits;
        c->logits = NULL;
    }
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    lfm_ctx_free(c);
    Py_END_ALLOW_THREADS
    PyMem_Free(toks);
    if (st != LFM_OK) return raise_err(st, err);
    PyObject *cap = PyCapsule_New(logits, "liquidlfm.logits", free_buffer_capsule);
    if (!cap) {
        free(logits);
        return NULL;
    }
    npy_intp dims[2] = {n, V};
    PyObject *arr = PyArray_New(&PyArray_Type, 2, dims, NPY_FLOAT32, NULL, logits, 0, NPY_ARRAY_CARRAY_RO, NULL);
    if (!arr || PyArray_SetBaseObject((PyArrayObject *)arr, cap) < 0) { /* SetBaseObject steals cap even on failure */
        Py_XDECREF(arr);
        if (!arr) Py_DECREF(cap);
        return NULL;
    }
    return arr;
}

static const char *blas_use_name(const lfm_blas_use *u) { return !u->blas ? NULL : u->always ? "on" : "auto"; }

static PyObject *model_blas_use(PyModel *self, PyObject *args) {
    int32_t requested = LFM_BLAS_DEFAULT;
    if (!PyArg_ParseTuple(args, "|O&", lfm_py_blas_mode, &requested)) return NULL;
    if (model_check(self) < 0) return NULL;
    lfm_blas_mode mode;
    lfm_status st = lfm_blas_resolve_mode(requested, &mode);
    if (st != LFM_OK) return lfm_py_raise(st);
    lfm_blas_use u = lfm_blas_use_for(self->m, mode);
    const char *name = blas_use_name(&u);
    if (!name) Py_RETURN_NONE;
    return PyUnicode_FromString(name);
}

static PyObject *model_enter(PyObject *self, PyObject *noargs) {
    if (model_check((PyModel *)self) < 0) return NULL;
    Py_INCREF(self);
    return self;
}

static PyObject *model_exit(PyModel *self, PyObject *args) { return model_close(self, NULL); }

static PyMethodDef model_methods[] = {
    {"close", (PyCFunction)model_close, METH_NOARGS, "Release the weights (deferred while a context still uses them)."},
    {"describe", (PyCFunction)model_describe, METH_NOARGS, "One line per weight: name type [rows, cols]."},
    {"forward", (PyCFunction)(void (*)(void))model_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(ids, n_threads=0, n_batch=0, kv_f16=False, blas=None) -> float32 array [T, n_vocab] (read-only, zero-copy). "
     "blas: 'auto', 'on', 'off' or None (LFM_BLAS, else auto)."},
    {"blas_use", (PyCFunction)model_blas_use, METH_VARARGS,
     "blas_use(mode=None) -> 'auto' | 'on' | None: how a context of this model would use OpenBLAS under mode "
     "(None: never; see Ctx.blas)."},
    {"__enter__", model_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)model_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef model_getset[] = {
    {"config", (getter)model_get_config, NULL, "hyper-parameters as a dict", NULL},
    {"closed", (getter)model_get_closed, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PyModel_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "liquidlfm._core.Model",
    .tp_basicsize = sizeof(PyModel),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Model(path, quantize=None, n_threads=0): an LFM2 model loaded from a HF folder or .gguf file.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)model_init,
    .tp_dealloc = (destructor)model_dealloc,
    .tp_methods = model_methods,
    .tp_getset = model_getset,
};

/* ---- Ctx ---- */

typedef struct {
    PyObject_HEAD
    PyModel *model;      /* strong reference while open, NULL once closed (pycommon.h rule (d)) */
    lfm_ctx *c;          /* non-NULL: open (then model is non-NULL) */
    int in_call;         /* busy (rule (a)): __init__, a method or generate_step is running */
    int check_signals;   /* this decode runs on the main thread: poll for Ctrl-C between layers */
    long abort_after;    /* test hook: abort after this many layer checks; < 0: off */
} PyCtx;

static unsigned long main_thread_id;

/* Abort callback (called between layers without the GIL): Ctrl-C on the main thread stops a
 * long prefill with KeyboardInterrupt (the exception stays set); the test hook counts down. */
static int ctx_abort_cb(void *user) {
    PyCtx *self = user;
    if (self->abort_after >= 0 && self->abort_after-- == 0) return 1;
    if (!self->check_signals) return 0;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() < 0;
    PyGILState_Release(g);
    return stop;
}

static int ctx_open(PyCtx *self) {
    if (!self->c) {
        PyErr_SetString(PyExc_ValueError, "session is closed");
        return -1;
    }
    if (self->model->closed) {
        PyErr_SetString(PyExc_ValueError, "model is closed");
        return -1;
    }
    return 0;
}

/* Open and not busy: for the getters, which run no Python code between this check and their use
 * of the context. */
static int ctx_check(PyCtx *self) {
    if (ctx_open(self) < 0) return -1;
    if (self->in_call) {
        lfm_py_in_use("session");
        return -1;
    }
    return 0;
}

/* Rule (a): open, not busy, then busy until ctx_end. Methods that convert arguments call ctx_open
 * again after the conversions (the model may have been closed by them). */
static int ctx_begin(PyCtx *self) {
    if (ctx_check(self) < 0) return -1;
    self->in_call = 1;
    return 0;
}

static void ctx_end(PyCtx *self) { self->in_call = 0; }

static int ctx_create(PyCtx *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"model", "n_ctx", "n_batch", "n_threads", "kv_f16", "blas", "n_seq", NULL};
    PyObject *model;
    int n_ctx = 0, n_batch = 0, n_threads = 0, kv_f16 = 0, n_seq = 1;
    int32_t blas = LFM_BLAS_DEFAULT;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|iiipO&i", kwlist, &PyModel_Type, &model, &n_ctx, &n_batch, &n_threads,
                                     &kv_f16, lfm_py_blas_mode, &blas, &n_seq))
        return -1;
    PyModel *pm = (PyModel *)model;
    if (model_check(pm) < 0) return -1;
    if (n_ctx < 0 || n_batch < 0) {
        PyErr_SetString(PyExc_ValueError, "n_ctx and n_batch must be >= 0 (0: default)");
        return -1;
    }
    if (n_seq < 1) {
        PyErr_Format(PyExc_ValueError, "n_seq must be >= 1, got %d", n_seq);
        return -1;
    }
    lfm_ctx_params cp = lfm_ctx_default_params();
    cp.n_ctx = n_ctx, cp.n_batch = n_batch, cp.n_threads = n_threads, cp.kv_f16 = kv_f16, cp.blas = blas;
    cp.n_seq = n_seq;
    lfm_ctx *c = NULL;
    lfm_status st;
    char err[1024];
    pm->users++;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_ctx_init(pm->m, &cp, &c);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    if (st != LFM_OK) {
        pm->users--;
        model_release(pm);
        raise_err(st, err);
        return -1;
    }
    Py_INCREF(pm);
    Py_XSETREF(self->model, pm); /* NULL after close(); never keep a second reference */
    self->c = c;
    self->abort_after = -1;
    lfm_ctx_set_abort_callback(c, ctx_abort_cb, self);
    return 0;
}

static int ctx_init(PyCtx *self, PyObject *args, PyObject *kw) {
    if (self->in_call) {
        lfm_py_in_use("session");
        return -1;
    }
    if (self->c) {
        PyErr_SetString(PyExc_RuntimeError, "Ctx already initialised");
        return -1;
    }
    self->in_call = 1; /* the argument converters run Python code; the context is made without the GIL */
    int rc = ctx_create(self, args, kw);
    self->in_call = 0;
    return rc;
}

/* Free the context and drop the model (the last reference may free the weights); runs no Python
 * code before the object is consistent again. */
static void ctx_release(PyCtx *self) {
    if (self->c) {
        lfm_ctx_free(self->c);
        self->c = NULL;
        self->model->users--;
        model_release(self->model);
    }
    Py_CLEAR(self->model);
}

static void ctx_dealloc(PyCtx *self) {
    ctx_release(self); /* never busy here: a running call holds a reference */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ctx_close(PyCtx *self, PyObject *noargs) {
    if (self->in_call) return lfm_py_in_use("session");
    ctx_release(self);
    Py_RETURN_NONE;
}

static PyObject *copy_rows(const float *src, int32_t rows, int32_t V, int two_d) {
    npy_intp dims[2] = {rows, V};
    PyObject *arr = two_d ? PyArray_SimpleNew(2, dims, NPY_FLOAT32) : PyArray_SimpleNew(1, dims + 1, NPY_FLOAT32);
    if (!arr) return NULL;
    memcpy(PyArray_DATA((PyArrayObject *)arr), src, (size_t)rows * (size_t)V * sizeof(float));
    return arr;
}

static PyObject *ctx_decode_in_use(PyCtx *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "logits", NULL};
    PyObject *ids;
    const char *mode_s = "last";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|s", kwlist, &ids, &mode_s)) return NULL;
    lfm_logits_mode mode;
    if (strcmp(mode_s, "last") == 0) mode = LFM_LOGITS_LAST;
    else if (strcmp(mode_s, "all") == 0) mode = LFM_LOGITS_ALL;
    else if (strcmp(mode_s, "none") == 0) mode = LFM_LOGITS_NONE;
    else return PyErr_Format(PyExc_ValueError, "logits must be 'last', 'all' or 'none', got '%s'", mode_s);
    PyArrayObject *ids_arr = convert_tokens(ids);
    if (!ids_arr) return NULL;
    if (ctx_open(self) < 0) { /* the model was closed by the conversion */
        Py_DECREF(ids_arr);
        return NULL;
    }
    lfm_token *toks;
    int32_t n;
    int rc = check_tokens(ids_arr, self->model->m->cfg.n_vocab, &toks, &n);
    Py_DECREF(ids_arr);
    if (rc < 0) return NULL;
    lfm_status st;
    char err[1024];
    self->check_signals = PyThread_get_thread_ident() == main_thread_id;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_ctx_decode(self->c, toks, n, mode);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    self->check_signals = 0; /* other users of this context (the C generate loop) poll signals themselves */
    PyMem_Free(toks);
    if (st == LFM_ERR_ABORTED && PyErr_Occurred()) return NULL; /* KeyboardInterrupt from Ctrl-C */
    if (st != LFM_OK) return raise_err(st, err);
    if (mode == LFM_LOGITS_NONE) Py_RETURN_NONE;
    int32_t rows;
    const float *lg = lfm_ctx_logits(self->c, &rows);
    return copy_rows(lg, rows, self->model->m->cfg.n_vocab, mode == LFM_LOGITS_ALL);
}

static PyObject *ctx_decode(PyCtx *self, PyObject *args, PyObject *kw) {
    if (ctx_begin(self) < 0) return NULL;
    PyObject *r = ctx_decode_in_use(self, args, kw);
    ctx_end(self);
    return r;
}

/* ---- many sequences ---- */

/* A sequence number argument → int32 (ValueError beyond int32, TypeError for a non-integer; the
 * range check against n_seq is the C core's). Runs Python code (__index__). */
static int seq_arg(PyObject *o, const char *what, int32_t *out) {
    PyObject *idx = PyNumber_Index(o);
    if (!idx) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        }
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow || v < INT32_MIN || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s is out of range", what);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* Re-raise the pending TypeError / ValueError with "decode_seqs: chunk i: " in front (others, such
 * as MemoryError or KeyboardInterrupt, pass unchanged). */
static void prefix_chunk_error(Py_ssize_t i) {
    if (!PyErr_ExceptionMatches(PyExc_TypeError) && !PyErr_ExceptionMatches(PyExc_ValueError)) return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyErr_Format(type, "decode_seqs: chunk %zd: %S", i, value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* chunks[i] = (seq, ids, want_logits) → seq, the converted ids array, want_logits. */
static int convert_chunk(PyObject *item, Py_ssize_t i, int32_t *seq, PyArrayObject **ids, int *want) {
    PyObject *t = PyTuple_Check(item) || PyList_Check(item) ? PySequence_Tuple(item) : NULL;
    if (!t || PyTuple_GET_SIZE(t) != 3) {
        Py_XDECREF(t);
        PyErr_Format(PyExc_TypeError, "decode_seqs: chunk %zd must be a (seq, ids, want_logits) tuple, got %.100s", i,
                     Py_TYPE(item)->tp_name);
        return -1;
    }
    int rc = seq_arg(PyTuple_GET_ITEM(t, 0), "the sequence number", seq);
    if (rc == 0 && !(*ids = convert_tokens(PyTuple_GET_ITEM(t, 1)))) rc = -1;
    if (rc == 0 && (*want = PyObject_IsTrue(PyTuple_GET_ITEM(t, 2))) < 0) rc = -1;
    Py_DECREF(t);
    if (rc < 0) prefix_chunk_error(i);
    return rc;
}

static PyObject *ctx_decode_seqs_in_use(PyCtx *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"chunks", NULL};
    PyObject *chunks_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &chunks_obj)) return NULL;
    if (!PyList_Check(chunks_obj) && !PyTuple_Check(chunks_obj))
        return PyErr_Format(PyExc_TypeError, "decode_seqs: chunks must be a list of (seq, ids, want_logits) tuples, got %.100s",
                            Py_TYPE(chunks_obj)->tp_name);
    PyObject *items = PySequence_Tuple(chunks_obj); /* a snapshot: the conversions may run code that mutates the list */
    if (!items) return NULL;
    const Py_ssize_t n = PyTuple_GET_SIZE(items);
    if (n == 0 || n > INT32_MAX) {
        Py_DECREF(items);
        return PyErr_Format(PyExc_ValueError, n ? "decode_seqs: too many chunks" : "decode_seqs: empty chunk list");
    }
    PyObject *result = NULL;
    PyArrayObject **arrs = PyMem_Calloc((size_t)n, sizeof *arrs);
    lfm_seq_chunk *chunks = PyMem_Calloc((size_t)n, sizeof *chunks);
    lfm_token **toks = PyMem_Calloc((size_t)n, sizeof *toks);
    if (!arrs || !chunks || !toks) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int want = 0;
        if (convert_chunk(PyTuple_GET_ITEM(items, i), i, &chunks[i].seq, &arrs[i], &want) < 0) goto done;
        chunks[i].logits = want;
    }
    if (ctx_open(self) < 0) goto done; /* the model was closed by the conversions */
    const int32_t V = self->model->m->cfg.n_vocab;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (check_tokens(arrs[i], V, &toks[i], &chunks[i].n_tokens) < 0) {
            prefix_chunk_error(i);
            goto done;
        }
        chunks[i].tokens = toks[i];
    }
    lfm_status st;
    char err[1024];
    self->check_signals = PyThread_get_thread_ident() == main_thread_id;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_ctx_decode_seqs(self->c, chunks, (int32_t)n);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    self->check_signals = 0;
    if (st == LFM_ERR_ABORTED && PyErr_Occurred()) goto done; /* KeyboardInterrupt from Ctrl-C */
    if (st != LFM_OK) {
        raise_err(st, err);
        goto done;
    }
    int32_t rows;
    const float *lg = lfm_ctx_logits(self->c, &rows);
    npy_intp dims[2] = {rows, V};
    result = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (result && rows) memcpy(PyArray_DATA((PyArrayObject *)result), lg, (size_t)rows * (size_t)V * sizeof(float));
done:
    for (Py_ssize_t i = 0; arrs && i < n; i++) Py_XDECREF(arrs[i]);
    for (Py_ssize_t i = 0; toks && i < n; i++) PyMem_Free(toks[i]);
    PyMem_Free(arrs);
    PyMem_Free(chunks);
    PyMem_Free(toks);
    Py_DECREF(items);
    return result;
}

static PyObject *ctx_decode_seqs(PyCtx *self, PyObject *args, PyObject *kw) {
    if (ctx_begin(self) < 0) return NULL;
    PyObject *r = ctx_decode_seqs_in_use(self, args, kw);
    ctx_end(self);
    return r;
}

static PyObject *ctx_seq_pos(PyCtx *self, PyObject *arg) {
    int32_t seq;
    if (seq_arg(arg, "seq", &seq) < 0) return NULL;
    if (ctx_check(self) < 0) return NULL;
    int32_t pos = lfm_ctx_seq_pos(self->c, seq);
    if (pos < 0) return PyErr_Format(PyExc_ValueError, "sequence %d is out of range [0, %d)", (int)seq, (int)lfm_ctx_n_seq(self->c));
    return PyLong_FromLong(pos);
}

static PyObject *ctx_seq_reset(PyCtx *self, PyObject *arg) {
    int32_t seq;
    if (seq_arg(arg, "seq", &seq) < 0) return NULL;
    if (ctx_check(self) < 0) return NULL;
    lfm_status st = lfm_ctx_seq_reset(self->c, seq);
    if (st != LFM_OK) return lfm_py_raise(st);
    Py_RETURN_NONE;
}

static PyObject *ctx_seq_copy(PyCtx *self, PyObject *args) {
    PyObject *src_obj, *dst_obj;
    int32_t src, dst;
    if (!PyArg_ParseTuple(args, "OO:seq_copy", &src_obj, &dst_obj)) return NULL;
    if (seq_arg(src_obj, "src", &src) < 0 || seq_arg(dst_obj, "dst", &dst) < 0) return NULL;
    if (ctx_begin(self) < 0) return NULL;
    lfm_status st;
    char err[1024];
    Py_BEGIN_ALLOW_THREADS /* up to n_ctx KV rows per attention layer */
    st = lfm_ctx_seq_copy(self->c, src, dst);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    ctx_end(self);
    if (st != LFM_OK) return raise_err(st, err);
    Py_RETURN_NONE;
}

static PyObject *ctx_get_n_seq(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    return PyLong_FromLong(lfm_ctx_n_seq(self->c));
}

static PyObject *ctx_last_logits(PyCtx *self, PyObject *noargs) {
    if (ctx_begin(self) < 0) return NULL; /* the copy's allocation may run Python code (GC) */
    int32_t rows;
    const float *lg = lfm_ctx_logits(self->c, &rows);
    PyObject *r;
    if (!lg || !self->c->has_last_logits) {
        Py_INCREF(Py_None);
        r = Py_None;
    } else {
        const int32_t V = self->model->m->cfg.n_vocab;
        r = copy_rows(lg + (size_t)(rows - 1) * V, 1, V, 0);
    }
    ctx_end(self);
    return r;
}

static PyObject *ctx_set_abort_after(PyCtx *self, PyObject *arg) {
    long n = PyLong_AsLong(arg); /* first: __index__ may run Python code */
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (ctx_check(self) < 0) return NULL;
    self->abort_after = n;
    Py_RETURN_NONE;
}

static PyObject *ctx_reset(PyCtx *self, PyObject *noargs) {
    if (ctx_check(self) < 0) return NULL;
    lfm_ctx_reset(self->c);
    Py_RETURN_NONE;
}

static PyObject *ctx_save(PyCtx *self, PyObject *noargs) {
    if (ctx_begin(self) < 0) return NULL;
    size_t n = lfm_ctx_state_size(self->c);
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!b) {
        ctx_end(self);
        return NULL;
    }
    lfm_status st;
    char err[1024];
    char *dst = PyBytes_AS_STRING(b);
    Py_BEGIN_ALLOW_THREADS
    st = lfm_ctx_state_save(self->c, dst, n, NULL);
    if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
    Py_END_ALLOW_THREADS
    ctx_end(self);
    if (st != LFM_OK) {
        Py_DECREF(b);
        return raise_err(st, err);
    }
    return b;
}

static PyObject *ctx_load(PyCtx *self, PyObject *arg) {
    if (ctx_begin(self) < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0) {
        ctx_end(self);
        return NULL;
    }
    lfm_status st = LFM_OK;
    char err[1024];
    int open = ctx_open(self) == 0; /* the export may have run Python code that closed the model */
    if (open) {
        Py_BEGIN_ALLOW_THREADS
        st = lfm_ctx_state_load(self->c, view.buf, (size_t)view.len);
        if (st != LFM_OK) snprintf(err, sizeof err, "%s", lfm_last_error());
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    ctx_end(self);
    if (!open) return NULL;
    if (st != LFM_OK) return raise_err(st, err);
    Py_RETURN_NONE;
}

static PyObject *ctx_get_pos(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    return PyLong_FromLong(lfm_ctx_pos(self->c));
}
static PyObject *ctx_get_n_ctx(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    return PyLong_FromLong(lfm_ctx_n_ctx(self->c));
}
static PyObject *ctx_get_n_batch(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    return PyLong_FromLong(self->c->n_batch);
}
static PyObject *ctx_get_n_threads(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    return PyLong_FromLong(lfm_threadpool_n_threads(self->c->tp));
}
static PyObject *ctx_get_closed(PyCtx *self, void *cl) { return PyBool_FromLong(self->c == NULL); }
static PyObject *ctx_get_kernels(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    return PyUnicode_FromString(self->c->k->name);
}

static PyObject *ctx_get_blas(PyCtx *self, void *cl) {
    if (ctx_check(self) < 0) return NULL;
    const char *name = blas_use_name(&self->c->blas);
    if (!name) Py_RETURN_NONE;
    return PyUnicode_FromString(name);
}

static PyObject *ctx_enter(PyObject *self, PyObject *noargs) {
    if (ctx_check((PyCtx *)self) < 0) return NULL;
    Py_INCREF(self);
    return self;
}
static PyObject *ctx_exit(PyCtx *self, PyObject *args) { return ctx_close(self, NULL); }

static PyMethodDef ctx_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))ctx_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(ids, logits='last'|'all'|'none') -> copy of the last row [n_vocab], all rows [T, n_vocab], or None."},
    {"decode_seqs", (PyCFunction)(void (*)(void))ctx_decode_seqs, METH_VARARGS | METH_KEYWORDS,
     "decode_seqs(chunks) -> float32 array [n_rows, n_vocab] (a copy). chunks: a list of (seq, ids, want_logits), "
     "each sequence at most once; all run in one forward pass per n_batch tokens (a weight read once for all). "
     "One row per chunk with want_logits, in chunk order: the logits after its last token. Nothing changes on "
     "ValueError / ContextFullError; on Ctrl-C or Cancelled the sequences named are reset to position 0."},
    {"seq_pos", (PyCFunction)ctx_seq_pos, METH_O, "seq_pos(seq) -> tokens decoded so far in sequence seq."},
    {"seq_reset", (PyCFunction)ctx_seq_reset, METH_O, "seq_reset(seq): sequence seq back to position 0 with an empty state."},
    {"seq_copy", (PyCFunction)ctx_seq_copy, METH_VARARGS,
     "seq_copy(src, dst): sequence dst becomes a copy of sequence src (state and position), e.g. a prompt prefilled once."},
    {"last_logits", (PyCFunction)ctx_last_logits, METH_NOARGS, "Copy of the logits of the last decoded token, or None."},
    {"reset", (PyCFunction)ctx_reset, METH_NOARGS, "Sequence 0 back to position 0 with an empty state."},
    {"_set_abort_after", (PyCFunction)ctx_set_abort_after, METH_O, "Test hook: abort decode after n layer checks (< 0: off)."},
    {"save", (PyCFunction)ctx_save, METH_NOARGS, "The whole state as bytes."},
    {"load", (PyCFunction)ctx_load, METH_O, "Restore a state saved from a context of the same model shape."},
    {"close", (PyCFunction)ctx_close, METH_NOARGS, "Free the KV cache and scratch."},
    {"__enter__", ctx_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)ctx_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ctx_getset[] = {
    {"pos", (getter)ctx_get_pos, NULL, "tokens decoded so far (sequence 0)", NULL},
    {"n_seq", (getter)ctx_get_n_seq, NULL, "sequences this context holds", NULL},
    {"n_ctx", (getter)ctx_get_n_ctx, NULL, "capacity in positions (of each sequence)", NULL},
    {"n_batch", (getter)ctx_get_n_batch, NULL, "tokens per internal chunk", NULL},
    {"n_threads", (getter)ctx_get_n_threads, NULL, "threads of this context's pool", NULL},
    {"kernels", (getter)ctx_get_kernels, NULL, "kernel set in use ('avx2', 'ref')", NULL},
    {"blas", (getter)ctx_get_blas, NULL,
     "how float matmuls use OpenBLAS: 'auto' (large batches), 'on' (every batch) or None (never)", NULL},
    {"closed", (getter)ctx_get_closed, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PyCtx_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "liquidlfm._core.Ctx",
    .tp_basicsize = sizeof(PyCtx),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Ctx(model, n_ctx=0, n_batch=0, n_threads=0, kv_f16=False, blas=None, n_seq=1): KV cache + conv state "
              "for n_seq sequences of n_ctx positions each, and scratch; decode/pos/reset/save/load act on sequence 0.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ctx_init,
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
};

/* ---- kernel test hooks: _core._kernel(impl, name, *arrays) ---- */

static PyArrayObject *f32_arg(PyObject *o) {
    return (PyArrayObject *)PyArray_FromAny(o, PyArray_DescrFromType(NPY_FLOAT32), 0, 0, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST, NULL);
}

static PyObject *py_kernel(PyObject *mod, PyObject *args) {
    Py_ssize_t na = PyTuple_GET_SIZE(args);
    if (na < 2) return PyErr_Format(PyExc_TypeError, "_kernel(impl, name, *arrays)");
    const char *impl = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 0));
    const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(args, 1));
    if (!impl || !name) return NULL;
    /* "avx2_order": the scalar oracle of the AVX2 kernels' float order (kernels_oracle.c) */
    const lfm_kernels *k = strcmp(impl, "avx2_order") == 0 ? &lfm_kernels_avx2_order : lfm_kernels_by_name(impl);
    if (!k) return PyErr_Format(PyExc_ValueError, "kernel set '%s' is not available on this CPU/build", impl);
#define ARG(i) PyTuple_GET_ITEM(args, (i) + 2)
    if (strncmp(name, "gemm_", 5) == 0) { /* W (R,K) float32 or uint16 bits, X (T,K) float32, r0, r1 -> Y (T,R) */
        if (na != 6) return PyErr_Format(PyExc_TypeError, "gemm: W, X, r0, r1");
        lfm_type t = type_by_name(name + 5);
        int f32 = t == LFM_TYPE_F32;
        lfm_gemm_fn fn = t != LFM_TYPE_NONE ? k->gemm[t] : NULL;
        if (!fn) return PyErr_Format(PyExc_ValueError, "unknown kernel '%s'", name);
        PyArrayObject *W = (PyArrayObject *)PyArray_FromAny(ARG(0), PyArray_DescrFromType(f32 ? NPY_FLOAT32 : NPY_UINT16), 2, 2, NPY_ARRAY_IN_ARRAY, NULL);
        PyArrayObject *X = W ? (PyArrayObject *)PyArray_FromAny(ARG(1), PyArray_DescrFromType(NPY_FLOAT32), 2, 2, NPY_ARRAY_IN_ARRAY, NULL) : NULL;
        long r0 = PyLong_AsLong(ARG(2)), r1 = PyLong_AsLong(ARG(3));
        if (!W || !X || PyErr_Occurred() || PyArray_DIM(W, 1) != PyArray_DIM(X, 1) || r0 < 0 || r1 > PyArray_DIM(W, 0) || r0 > r1) {
            Py_XDECREF(W);
            Py_XDECREF(X);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "gemm: bad shapes or row range");
            return NULL;
        }
        npy_intp dims[2] = {PyArray_DIM(X, 0), PyArray_DIM(W, 0)};
        PyObject *Y = PyArray_ZEROS(2, dims, NPY_FLOAT32, 0);
        if (Y)
            fn(PyArray_DATA(W), PyArray_DIM(W, 1), PyArray_DATA(X), PyArray_DIM(X, 1), dims[0], PyArray_DATA((PyArrayObject *)Y), dims[1], r0, r1);
        Py_DECREF(W);
        Py_DECREF(X);
        return Y;
    }
    if (strcmp(name, "f16_to_f32") == 0 || strcmp(name, "bf16_to_f32") == 0) {
        PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(ARG(0), PyArray_DescrFromType(NPY_UINT16), 1, 1, NPY_ARRAY_IN_ARRAY, NULL);
        if (!a) return NULL;
        npy_intp n = PyArray_DIM(a, 0);
        PyObject *out = PyArray_SimpleNew(1, &n, NPY_FLOAT32);
        if (out) (name[0] == 'f' ? k->f16_to_f32 : k->bf16_to_f32)(PyArray_DATA((PyArrayObject *)out), PyArray_DATA(a), n);
        Py_DECREF(a);
        return out;
    }
    /* the rest take float32 arrays (+ scalars) */
    PyArrayObject *A[4] = {NULL, NULL, NULL, NULL};
    PyObject *res = NULL;
    int n_arr = 0;
    for (Py_ssize_t i = 2; i < na && n_arr < 4; i++) {
        PyObject *o = PyTuple_GET_ITEM(args, i);
        if (PyFloat_Check(o) || PyLong_Check(o)) break;
        if (!(A[n_arr++] = f32_arg(o))) goto done;
    }
    Py_ssize_t n_sc = na - 2 - n_arr;
    double sc = n_sc > 0 ? PyFloat_AsDouble(PyTuple_GET_ITEM(args, 2 + n_arr)) : 0;
    if (PyErr_Occurred()) goto done;
#define OUT_LIKE(a) PyArray_NewLikeArray((a), NPY_CORDER, NULL, 0)
#define D(a) ((float *)PyArray_DATA(a))
#define SIZE(a) ((int64_t)PyArray_SIZE(a))
    if (strcmp(name, "rmsnorm") == 0 && n_arr == 2 && n_sc == 1 && SIZE(A[0]) == SIZE(A[1])) {
        if ((res = OUT_LIKE(A[0]))) k->rmsnorm(D((PyArrayObject *)res), D(A[0]), D(A[1]), SIZE(A[0]), (float)sc);
    } else if (strcmp(name, "rope") == 0 && n_arr == 2 && SIZE(A[0]) == SIZE(A[1]) && SIZE(A[0]) % 2 == 0) {
        if ((res = (PyObject *)PyArray_NewCopy(A[0], NPY_CORDER))) k->rope(D((PyArrayObject *)res), D(A[1]), SIZE(A[0]));
    } else if (strcmp(name, "softmax") == 0 && n_arr == 1 && SIZE(A[0]) > 0) {
        if ((res = (PyObject *)PyArray_NewCopy(A[0], NPY_CORDER))) k->softmax(D((PyArrayObject *)res), SIZE(A[0]));
    } else if ((strcmp(name, "silu_mul") == 0 || strcmp(name, "mul") == 0) && n_arr == 2 && SIZE(A[0]) == SIZE(A[1])) {
        if ((res = OUT_LIKE(A[0]))) (name[0] == 's' ? k->silu_mul : k->mul)(D((PyArrayObject *)res), D(A[0]), D(A[1]), SIZE(A[0]));
    } else if (strcmp(name, "dot_f32") == 0 && n_arr == 2 && SIZE(A[0]) == SIZE(A[1])) {
        res = PyFloat_FromDouble((double)k->dot_f32(D(A[0]), D(A[1]), SIZE(A[0])));
    } else if (strcmp(name, "add") == 0 && n_arr == 2 && SIZE(A[0]) == SIZE(A[1])) {
        if ((res = (PyObject *)PyArray_NewCopy(A[0], NPY_CORDER))) k->add(D((PyArrayObject *)res), D(A[1]), SIZE(A[0]));
    } else if (strcmp(name, "conv") == 0 && n_arr == 3 && PyArray_NDIM(A[0]) == 2 && PyArray_NDIM(A[1]) == 2 && PyArray_NDIM(A[2]) == 2 &&
               PyArray_DIM(A[1], 0) == PyArray_DIM(A[0], 1) && PyArray_DIM(A[2], 0) == PyArray_DIM(A[1], 1) - 1 &&
               PyArray_DIM(A[2], 1) == PyArray_DIM(A[0], 1)) {
        /* v (T,H), w (H,K), state (K-1,H) -> (out (T,H), new state) */
        PyObject *out = OUT_LIKE(A[0]);
        PyObject *st = (PyObject *)PyArray_NewCopy(A[2], NPY_CORDER);
        if (out && st) {
            k->conv(D((PyArrayObject *)out), PyArray_DIM(A[0], 1), D(A[0]), PyArray_DIM(A[0], 1), PyArray_DIM(A[0], 0), PyArray_DIM(A[0], 1),
                    D(A[1]), PyArray_DIM(A[1], 1), D((PyArrayObject *)st));
            res = Py_BuildValue("(NN)", out, st);
        } else {
            Py_XDECREF(out);
            Py_XDECREF(st);
        }
    } else if (strncmp(name, "attn", 4) == 0 && (!name[4] || !strcmp(name + 4, "1") || !strcmp(name + 4, "_f16") ||
                                                 !strcmp(name + 4, "1_f16")) &&
               n_arr == 3 && n_sc == 1 && PyArray_NDIM(A[1]) == 2 && PyArray_NDIM(A[2]) == 2 &&
               PyArray_DIM(A[1], 0) == PyArray_DIM(A[2], 0) && PyArray_DIM(A[1], 1) == PyArray_DIM(A[2], 1) &&
               SIZE(A[0]) <= PyArray_DIM(A[1], 1) && SIZE(A[0]) <= LFM_MAX_HEAD_DIM && PyArray_DIM(A[1], 0) > 0) {
        /* q (hd), K (n, ld), V (n, ld), scale: head at columns [0, hd). "1": a one-token batch;
         * "_f16": K and V stored as F16 first */
        int64_t n = PyArray_DIM(A[1], 0), hd = SIZE(A[0]), ld = PyArray_DIM(A[1], 1);
        int one = name[4] == '1', f16 = strstr(name, "_f16") != NULL;
        float *scores = PyMem_Malloc((size_t)n * sizeof(float));
        uint16_t *kh = f16 ? PyMem_Malloc((size_t)(n * ld) * 2) : NULL, *vh = f16 ? PyMem_Malloc((size_t)(n * ld) * 2) : NULL;
        if (!scores || (f16 && (!kh || !vh))) {
            PyMem_Free(scores), PyMem_Free(kh), PyMem_Free(vh);
            PyErr_NoMemory();
            goto done;
        }
        if (f16)
            for (int64_t i = 0; i < n * ld; i++) {
                kh[i] = lfm_float_to_half(D(A[1])[i]);
                vh[i] = lfm_float_to_half(D(A[2])[i]);
            }
        if ((res = OUT_LIKE(A[0])))
            k->attn(D((PyArrayObject *)res), D(A[0]), f16 ? (const void *)kh : D(A[1]), f16 ? (const void *)vh : D(A[2]), ld, n,
                    hd, (float)sc, scores, one, f16);
        PyMem_Free(scores), PyMem_Free(kh), PyMem_Free(vh);
    } else {
        PyErr_Format(PyExc_ValueError, "unknown kernel '%s' or bad arguments", name);
    }
done:
    for (int i = 0; i < 4; i++) Py_XDECREF(A[i]);
    return res;
#undef ARG
#undef OUT_LIKE
#undef D
#undef SIZE
}

static PyObject *py_kernel_sets(PyObject *mod, PyObject *noargs) {
    PyObject *l = PyList_New(0);
    if (!l) return NULL;
    static const char *names[] = {"ref", "avx2", "neon"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (lfm_kernels_by_name(names[i])) {
            PyObject *s = PyUnicode_FromString(names[i]);
            if (!s || PyList_Append(l, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(l);
                return NULL;
            }
            Py_DECREF(s);
        }
    return l;
}

static PyObject *py_kernels_default(PyObject *mod, PyObject *noargs) { return PyUnicode_FromString(lfm_kernels_get()->name); }

static PyMethodDef engine_functions[] = {
    {"_kernel", py_kernel, METH_VARARGS, "_kernel(impl, name, *arrays): run one kernel (tests)."},
    {"kernel_sets", py_kernel_sets, METH_NOARGS, "Kernel sets available on this CPU/build."},
    {"kernels_default", py_kernels_default, METH_NOARGS, "The kernel set contexts use (LFM_KERNELS=ref forces 'ref')."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_engine(PyObject *module) {
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *mt = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = mt ? PyObject_GetAttrString(mt, "ident") : NULL;
    main_thread_id = ident ? PyLong_AsUnsignedLong(ident) : 0;
    Py_XDECREF(ident);
    Py_XDECREF(mt);
    Py_XDECREF(threading);
    if (PyErr_Occurred()) return -1;
    if (PyType_Ready(&PyModel_Type) < 0 || PyType_Ready(&PyCtx_Type) < 0) return -1;
    Py_INCREF(&PyModel_Type);
    if (PyModule_AddObject(module, "Model", (PyObject *)&PyModel_Type) < 0) {
        Py_DECREF(&PyModel_Type);
        return -1;
    }
    Py_INCREF(&PyCtx_Type);
    if (PyModule_AddObject(module, "Ctx", (PyObject *)&PyCtx_Type) < 0) {
        Py_DECREF(&PyCtx_Type);
        return -1;
    }
    return PyModule_AddFunctions(module, engine_functions);
}

/* ---- for other parts of the module (sampler_py.c's generate_step) ---- */

lfm_ctx *lfm_py_ctx_acquire(PyObject *obj) {
    if (!PyObject_TypeCheck(obj, &PyCtx_Type)) {
        PyErr_Format(PyExc_TypeError, "expected a liquidlfm._core.Ctx, got %s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyCtx *self = (PyCtx *)obj;
    if (ctx_begin(self) < 0) return NULL;
    self->check_signals = 0; /* the caller's own loop handles Ctrl-C between steps */
    return self->c;
}

void lfm_py_ctx_release(PyObject *obj) { ctx_end((PyCtx *)obj); }
