/* tokenizer_py.c — Python bindings for the tokenizer part of the C API: liquidlfm._core.Tokenizer.
 * The friendly API (from_dir / from_gguf / decode / streaming) is liquidlfm/tokenizer.py. */
#include "pycommon.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    lfm_tokenizer *tok;
    int n_users; /* running calls (pycommon.h rule (a)); guarded by the GIL */
} TokObject;

static int tok_check(TokObject *self) {
    if (!self->tok) {
        PyErr_SetString(PyExc_ValueError, "tokenizer is closed");
        return -1;
    }
    return 0;
}

static void tok_dealloc(TokObject *self) {
    lfm_tokenizer_free(self->tok);
    self->tok = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Sequence of str -> malloc'd array of UTF-8 pointers (borrowed from the str objects kept in *keep). */
static const char **utf8_array(PyObject *seq_obj, const char *what, Py_ssize_t *n, PyObject **keep) {
    PyObject *seq = PySequence_Fast(seq_obj, "expected a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    const char **arr = malloc((size_t)(len ? len : 1) * sizeof *arr);
    if (!arr) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(it)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be str, not %.80s", what, i, Py_TYPE(it)->tp_name);
            goto fail;
        }
        Py_ssize_t sz;
        arr[i] = PyUnicode_AsUTF8AndSize(it, &sz);
        if (!arr[i]) {
            /* a lone surrogate: what a GGUF string with invalid UTF-8 decodes to (surrogateescape) */
            if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s[%zd] is not valid UTF-8 text (it holds a lone surrogate: %.80R)",
                             what, i, it);
            }
            goto fail;
        }
        if ((Py_ssize_t)strlen(arr[i]) != sz) {
            PyErr_Format(PyExc_ValueError, "%s[%zd] contains a NUL character", what, i);
            goto fail;
        }
    }
    *n = len;
    *keep = seq;
    return arr;
fail:
    free(arr);
    Py_DECREF(seq);
    return NULL;
}

static int tok_create(TokObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"tokens", "token_types", "merges", "ignore_merges", "bos_id", "eos_id", NULL};
    PyObject *tokens, *types = Py_None, *merges;
    int ignore_merges = 1, bos = -1, eos = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|pii", kwlist, &tokens, &types, &merges, &ignore_merges, &bos,
                                     &eos))
        return -1;
    Py_ssize_t n_tok = 0, n_merge = 0;
    PyObject *keep_tok = NULL, *keep_merge = NULL;
    int32_t *kinds = NULL;
    int rc = -1;
    const char **merge_arr = NULL, **tok_arr = utf8_array(tokens, "tokens", &n_tok, &keep_tok);
    if (!tok_arr) return -1;
    merge_arr = utf8_array(merges, "merges", &n_merge, &keep_merge);
    if (!merge_arr) goto done;
    if (n_tok > INT32_MAX || n_merge > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many tokens or merges");
        goto done;
    }
    if (types != Py_None) {
        PyObject *seq = PySequence_Fast(types, "token_types must be a sequence of int");
        if (!seq) goto done;
        if (PySequence_Fast_GET_SIZE(seq) != n_tok) {
            PyErr_Format(PyExc_ValueError, "token_types has %zd entries, tokens has %zd", PySequence_Fast_GET_SIZE(seq),
                         n_tok);
            Py_DECREF(seq);
            goto done;
        }
        kinds = malloc((size_t)(n_tok ? n_tok : 1) * sizeof *kinds);
        if (!kinds) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < n_tok; i++) {
            long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
            if (v == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                goto done;
            }
            kinds[i] = (int32_t)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v);
        }
        Py_DECREF(seq);
    }
    lfm_tokenizer_params p = {
        .n_tokens = (int32_t)n_tok,
        .tokens = tok_arr,
        .token_types = kinds,
        .n_merges = (int32_t)n_merge,
        .merges = merge_arr,
        .ignore_merges = ignore_merges,
        .bos_id = bos,
        .eos_id = eos,
    };
    lfm_status st;
    lfm_tokenizer *t = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_tokenizer_init(&p, &t);
    Py_END_ALLOW_THREADS
    if (st != LFM_OK) {
        lfm_py_raise(st);
        goto done;
    }
    self->tok = t;
    rc = 0;
done:
    free(kinds);
    free(tok_arr);
    free(merge_arr);
    Py_XDECREF(keep_tok);
    Py_XDECREF(keep_merge);
    return rc;
}

/* Busy while the converters (Python code) and the build run: a nested or concurrent __init__ or
 * close() is refused. */
static int tok_init(TokObject *self, PyObject *args, PyObject *kw) {
    if (self->n_users) {
        lfm_py_in_use("tokenizer");
        return -1;
    }
    if (self->tok) {
        PyErr_SetString(PyExc_RuntimeError, "Tokenizer is already initialised");
        return -1;
    }
    self->n_users++;
    int rc = tok_create(self, args, kw);
    self->n_users--;
    return rc;
}

/* Rule (a) of pycommon.h for the methods: in use from entry, so Python code run by an argument's
 * conversion cannot close the tokenizer under the call. */
#define TOK_IN_USE(call)        \
    do {                        \
        self->n_users++;        \
        PyObject *r_ = (call);  \
        self->n_users--;        \
        return r_;              \
    } while (0)

/* str or bytes-like -> (pointer, length, owner). */
static int text_arg(PyObject *text, const char **s, Py_ssize_t *n, PyObject **owner) {
    if (PyUnicode_Check(text)) {
        *s = PyUnicode_AsUTF8AndSize(text, n); /* UnicodeEncodeError for lone surrogates */
        if (!*s) return -1;
        Py_INCREF(text);
        *owner = text;
        return 0;
    }
    PyObject *b = PyBytes_Check(text) ? (Py_INCREF(text), text) : PyBytes_FromObject(text);
    if (!b) {
        PyErr_Format(PyExc_TypeError, "text must be str or bytes, not %.80s", Py_TYPE(text)->tp_name);
        return -1;
    }
    *s = PyBytes_AS_STRING(b);
    *n = PyBytes_GET_SIZE(b);
    *owner = b; /* an immutable bytes object: safe to read without the GIL */
    return 0;
}

static PyObject *tok_encode_in_use(TokObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"text", "add_bos", "parse_special", NULL};
    PyObject *text;
    int add_bos = 0, parse_special = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pp", kwlist, &text, &add_bos, &parse_special)) return NULL;
    if (tok_check(self) < 0) return NULL;
    const char *s;
    Py_ssize_t n;
    PyObject *owner;
    if (text_arg(text, &s, &n, &owner) < 0) return NULL;
    if (n >= INT32_MAX - 2) {
        Py_DECREF(owner);
        PyErr_SetString(PyExc_ValueError, "text longer than 2 GiB");
        return NULL;
    }
    int32_t cap = (int32_t)n + 2, count = 0;
    lfm_token *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) {
        Py_DECREF(owner);
        return PyErr_NoMemory();
    }
    lfm_status st;
    self->n_users++;
    Py_BEGIN_ALLOW_THREADS
    st = lfm_tokenizer_encode(self->tok, s, (size_t)n, add_bos, parse_special, ids, cap, &count);
    Py_END_ALLOW_THREADS
    self->n_users--;
    Py_DECREF(owner);
    if (st != LFM_OK) {
        free(ids);
        return lfm_py_raise(st);
    }
    PyObject *list = PyList_New(count);
    for (int32_t i = 0; list && i < count; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    free(ids);
    return list;
}

/* Sequence of ints (list, tuple, array) -> malloc'd lfm_token array. */
static lfm_token *ids_arg(PyObject *obj, Py_ssize_t *n) {
    PyObject *seq = PySequence_Fast(obj, "ids must be a sequence of int");
    if (!seq) return NULL;
    Py_ssize_t len = PySequence_Fast_GET_SIZE(seq);
    lfm_token *ids = malloc((size_t)(len ? len : 1) * sizeof *ids);
    if (!ids) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *idx = PyNumber_Index(it);
        long long v = idx ? PyLong_AsLongLong(idx) : -1;
        Py_XDECREF(idx);
        if (v == -1 && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
                PyErr_Clear();
                v = (long long)INT32_MIN - 1;
            } else {
                free(ids);
                Py_DECREF(seq);
                return NULL;
            }
        }
        if (v < INT32_MIN || v > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "token id at position %zd is out of range", i);
            free(ids);
            Py_DECREF(seq);
            return NULL;
        }
        ids[i] = (lfm_token)v;
    }
    Py_DECREF(seq);
    *n = len;
    return ids;
}

static PyObject *tok_encode(TokObject *self, PyObject *args, PyObject *kw) { TOK_IN_USE(tok_encode_in_use(self, args, kw)); }

static PyObject *tok_decode_bytes_in_use(TokObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"ids", "skip_special_tokens", NULL};
    PyObject *obj;
    int skip = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p", kwlist, &obj, &skip)) return NULL;
    if (tok_check(self) < 0) return NULL;
    Py_ssize_t n;
    lfm_token *ids = ids_arg(obj, &n);
    if (!ids) return NULL;
    if (n > INT32_MAX) {
        free(ids);
        PyErr_SetString(PyExc_ValueError, "too many ids");
        return NULL;
    }
    size_t total = 0;
    lfm_status st = lfm_tokenizer_decode(self->tok, ids, (int32_t)n, skip, NULL, 0, &total);
    if (st != LFM_OK) {
        free(ids);
        return lfm_py_raise(st);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out) lfm_tokenizer_decode(self->tok, ids, (int32_t)n, skip, PyBytes_AS_STRING(out), total, &total);
    free(ids);
    return out;
}

static PyObject *tok_decode_bytes(TokObject *self, PyObject *args, PyObject *kw) {
    TOK_IN_USE(tok_decode_bytes_in_use(self, args, kw));
}

static PyObject *tok_token_bytes_in_use(TokObject *self, PyObject *arg) {
    if (tok_check(self) < 0) return NULL;
    long long id = PyLong_AsLongLong(arg);
    if (id == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear();
    }
    if (id < 0 || id >= lfm_tokenizer_n_tokens(self->tok))
        return PyErr_Format(PyExc_ValueError, "token id %lld out of range [0, %d)", id,
                            lfm_tokenizer_n_tokens(self->tok));
    const char *b;
    size_t len;
    lfm_status st = lfm_tokenizer_token_bytes(self->tok, (lfm_token)id, &b, &len);
    if (st != LFM_OK) return lfm_py_raise(st);
    return PyBytes_FromStringAndSize(b, (Py_ssize_t)len);
}

static PyObject *tok_token_bytes(TokObject *self, PyObject *arg) { TOK_IN_USE(tok_token_bytes_in_use(self, arg)); }

static PyObject *tok_close(TokObject *self, PyObject *noargs) {
    if (self->n_users > 0) return lfm_py_in_use("tokenizer");
    lfm_tokenizer_free(self->tok);
    self->tok = NULL;
    Py_RETURN_NONE;
}

static PyObject *tok_enter(TokObject *self, PyObject *noargs) {
    if (tok_check(self) < 0) return NULL;
    Py_INCREF(self);
    return (PyObject *)self;
}

static PyObject *tok_exit(TokObject *self, PyObject *args) { return tok_close(self, NULL); }

static PyObject *tok_get_n_tokens(TokObject *self, void *closure) {
    if (tok_check(self) < 0) return NULL;
    return PyLong_FromLong(lfm_tokenizer_n_tokens(self->tok));
}

static PyObject *tok_get_closed(TokObject *self, void *closure) { return PyBool_FromLong(self->tok == NULL); }

static PyMethodDef tok_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))tok_encode, METH_VARARGS | METH_KEYWORDS,
     "encode(text: str | bytes, add_bos=False, parse_special=False) -> list[int]"},
    {"decode_bytes", (PyCFunction)(void (*)(void))tok_decode_bytes, METH_VARARGS | METH_KEYWORDS,
     "decode_bytes(ids, skip_special_tokens=False) -> bytes (control tokens skipped when asked)"},
    {"token_bytes", (PyCFunction)tok_token_bytes, METH_O, "token_bytes(id) -> bytes"},
    {"close", (PyCFunction)tok_close, METH_NOARGS, "Free the native tokenizer."},
    {"__enter__", (PyCFunction)tok_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)tok_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tok_getset[] = {
    {"n_tokens", (getter)tok_get_n_tokens, NULL, "number of token ids", NULL},
    {"closed", (getter)tok_get_closed, NULL, "True after close()", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TokType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "liquidlfm._core.Tokenizer",
    .tp_basicsize = sizeof(TokObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Tokenizer(tokens, token_types, merges, ignore_merges=True, bos_id=-1, eos_id=-1): the C "
              "byte-level BPE tokenizer (see csrc/lfm.h). Use liquidlfm.tokenizer.Tokenizer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)tok_init,
    .tp_dealloc = (destructor)tok_dealloc,
    .tp_methods = tok_methods,
    .tp_getset = tok_getset,
};

static PyObject *py_pretokenize(PyObject *self, PyObject *text) {
    const char *s;
    Py_ssize_t n;
    PyObject *owner;
    if (text_arg(text, &s, &n, &owner) < 0) return NULL;
    size_t count = 0;
    size_t *ends = malloc(((size_t)n + 1) * sizeof *ends);
    if (!ends) {
        Py_DECREF(owner);
        return PyErr_NoMemory();
    }
    lfm_status st = lfm_tokenizer_pretokenize(s, (size_t)n, ends, (size_t)n + 1, &count);
    if (st != LFM_OK) {
        free(ends);
        Py_DECREF(owner);
        return lfm_py_raise(st);
    }
    PyObject *list = PyList_New((Py_ssize_t)count);
    size_t start = 0;
    for (size_t i = 0; list && i < count; i++) {
        PyObject *piece = PyBytes_FromStringAndSize(s + start, (Py_ssize_t)(ends[i] - start));
        if (!piece) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, piece);
        start = ends[i];
    }
    free(ends);
    Py_DECREF(owner);
    return list;
}

static PyMethodDef tok_module_methods[] = {
    {"pretokenize", py_pretokenize, METH_O,
     "pretokenize(text: str | bytes) -> list[bytes]: LFM2's pre-tokenizer split alone (no added tokens)."},
    {NULL, NULL, 0, NULL},
};

int lfm_py_init_tokenizer(PyObject *module) {
    if (PyType_Ready(&TokType) < 0) return -1;
    Py_INCREF(&TokType);
    if (PyModule_AddObject(module, "Tokenizer", (PyObject *)&TokType) < 0) {
        Py_DECREF(&TokType);
        return -1;
    }
    return PyModule_AddFunctions(module, tok_module_methods);
}
