/*
 * surgewall._speedups.KeyedCore: the hot path of one keyed breaker, over the C ABI.
 *
 * A key is an int (0 .. 2**64 - 1, passed as is), a str (its UTF-8 bytes) or bytes; the
 * library hashes byte strings to 64 bits. Every admit and record goes through the library
 * with the GIL held, as the named breaker's Core does.
 *
 * Holding the GIL while the library may wait on one of its shard locks is safe only because
 * no library lock is ever held while Python runs: the iteration (`snapshot`) collects into a
 * C buffer with the GIL released and builds Python objects after the library let go. (A
 * cffi callback from `surgewall_keyed_breaker_for_each` would take the GIL under a shard's
 * read lock, and deadlock with a thread creating a key in that shard.)
 */
#include "_speedups.h"

#include <stdlib.h>

typedef struct {
    PyObject_HEAD
    const surgewall_keyed_breaker *kb; /* our own clone; NULL once closed */
    /* The iteration runs without the GIL: `busy` counts those in flight, and a close()
     * meanwhile parks the handle in `pending` for the last of them to free. */
    const surgewall_keyed_breaker *pending;
    Py_ssize_t busy;
    sw_policy policy;
    PyObject *name; /* the keyed breaker's name, for error messages */
} KeyedCore;

/* An int key as the library's uint64_t: ValueError names the key when it does not fit. */
static int key_u64(PyObject *key, uint64_t *out) {
    unsigned long long k = PyLong_AsUnsignedLongLong(key);
    if (k == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "key %R: int keys are in [0, 2**64 - 1]", key);
        return -1;
    }
    *out = k;
    return 0;
}

/* A byte-string key's bytes (a str's UTF-8, borrowed from the object); 0 when `key` is an
 * int (then *k64 holds it), -1 with TypeError / ValueError / UnicodeEncodeError set. */
static int key_parts(PyObject *key, const uint8_t **bytes, size_t *len, uint64_t *k64) {
    if (PyUnicode_Check(key)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(key, &n); /* cached on the str */
        if (s == NULL) return -1;
        *bytes = (const uint8_t *)s;
        *len = (size_t)n;
        return 1;
    }
    if (PyBytes_Check(key)) {
        *bytes = (const uint8_t *)PyBytes_AS_STRING(key);
        *len = (size_t)PyBytes_GET_SIZE(key);
        return 1;
    }
    if (PyLong_Check(key) && !PyBool_Check(key)) return key_u64(key, k64) < 0 ? -1 : 0;
    PyErr_Format(PyExc_TypeError, "keys are str, bytes or int, got %.100s",
                 Py_TYPE(key)->tp_name);
    return -1;
}

/* The exception for `status` (-1: this core was closed) about `key` (NULL: none), as NULL. */
static PyObject *keyed_error(KeyedCore *c, int status, PyObject *key) {
    sw_raise(status, 0, c->name, key);
    return NULL;
}

/* `key` as the library's 64-bit key (a byte string hashed by the library): 0, or -1 with an
 * exception set. */
static int resolve_key(KeyedCore *c, PyObject *key, uint64_t *out) {
    if (c->kb == NULL) return sw_raise(-1, 0, c->name, key);
    const uint8_t *bytes = NULL;
    size_t len = 0;
    int kind = key_parts(key, &bytes, &len, out);
    if (kind <= 0) return kind;
    int st = surgewall_keyed_breaker_key_of(c->kb, bytes, len, out);
    return st == SURGEWALL_OK ? 0 : sw_raise(st, 0, c->name, key);
}

/* Records for a permit; the call may have closed this core meanwhile (the permit then has
 * nowhere to go, and the status says so). */
static int keyed_record(KeyedCore *c, surgewall_keyed_breaker_permit p, int outcome) {
    if (c->kb == NULL) return SURGEWALL_INVALID_HANDLE;
    return surgewall_keyed_breaker_record(c->kb, p, outcome);
}

static int keyed_acquire(KeyedCore *c, PyObject *key, surgewall_keyed_breaker_permit *p) {
    if (c->kb == NULL) return sw_raise(-1, 0, c->name, key);
    const uint8_t *bytes = NULL;
    size_t len = 0;
    uint64_t k = 0, ra = 0;
    int kind = key_parts(key, &bytes, &len, &k);
    if (kind < 0) return -1;
    int st = kind ? surgewall_keyed_breaker_acquire_str(c->kb, bytes, len, p, &ra)
                  : surgewall_keyed_breaker_acquire(c->kb, k, p, &ra);
    if (st == SURGEWALL_OK) return 0;
    return sw_raise(st, ra, c->name, key);
}

/* call(key, fn, *args, **kwargs): acquire, call, record, as the named guarded call does. */
static PyObject *KeyedCore_call(KeyedCore *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call() needs the key and the function to call");
        return NULL;
    }
    surgewall_keyed_breaker_permit p;
    if (keyed_acquire(self, args[0], &p) < 0) return NULL;
    PyObject *r = PyObject_Vectorcall(args[1], args + 2, (size_t)(nargs - 2), kwnames);
    if (r != NULL) {
        (void)keyed_record(self, p, SURGEWALL_OUTCOME_SUCCESS);
        return r;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    int outcome = sw_outcome_of(&self->policy, value);
    (void)keyed_record(self, p, outcome);
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* acquire(key) -> (token, start_ns, slot), or raises the rejection */
static PyObject *KeyedCore_acquire(KeyedCore *self, PyObject *key) {
    surgewall_keyed_breaker_permit p;
    if (keyed_acquire(self, key, &p) < 0) return NULL;
    return Py_BuildValue("(KKI)", (unsigned long long)p.token, (unsigned long long)p.start_ns,
                         (unsigned int)p.slot);
}

static int parse_keyed_permit(PyObject *const *args, surgewall_keyed_breaker_permit *p) {
    uint64_t t, s;
    if (sw_u64(args[0], &t) < 0 || sw_u64(args[1], &s) < 0) return -1;
    unsigned long slot = PyLong_AsUnsignedLong(args[2]);
    if (PyErr_Occurred()) return -1;
    if (slot > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "slot does not fit 32 bits");
        return -1;
    }
    p->token = t;
    p->start_ns = s;
    p->slot = (uint32_t)slot;
    return 0;
}

/* record(token, start_ns, slot, outcome[, duration_ns]) -> status */
static PyObject *KeyedCore_record(KeyedCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 && nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "record(token, start_ns, slot, outcome[, duration_ns])");
        return NULL;
    }
    surgewall_keyed_breaker_permit p;
    if (parse_keyed_permit(args, &p) < 0) return NULL;
    long outcome = PyLong_AsLong(args[3]);
    if (outcome == -1 && PyErr_Occurred()) return NULL;
    long long d = -1;
    if (nargs == 5) {
        d = PyLong_AsLongLong(args[4]);
        if (d == -1 && PyErr_Occurred()) return NULL;
    }
    if (self->kb == NULL) return keyed_error(self, -1, NULL);
    int st = nargs == 5 ? surgewall_keyed_breaker_record_timed(self->kb, p, (int)outcome, d)
                        : surgewall_keyed_breaker_record(self->kb, p, (int)outcome);
    return PyLong_FromLong(st);
}

/* ---- iteration ---- */

typedef struct {
    uint64_t key;
    surgewall_keyed_breaker_key_stats stats;
} key_row;

typedef struct {
    key_row *rows;
    size_t len, cap;
    int oom;
} row_buf;

/* Runs without the GIL, under the library's shard lock: C memory only. */
static void collect_row(void *user, uint64_t key, const surgewall_keyed_breaker_key_stats *s) {
    row_buf *b = user;
    if (b->oom) return;
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        key_row *rows = realloc(b->rows, cap * sizeof *rows);
        if (rows == NULL) {
            b->oom = 1;
            return;
        }
        b->rows = rows;
        b->cap = cap;
    }
    b->rows[b->len].key = key;
    b->rows[b->len].stats = *s;
    b->len++;
}

/* One key's stats as the tuple KeyedBreaker builds its KeySnapshot from. */
static PyObject *stats_tuple(uint64_t key, const surgewall_keyed_breaker_key_stats *s) {
    return Py_BuildValue("(KiKKKKddKKKK)", (unsigned long long)key, (int)s->state,
                         (unsigned long long)s->generation, (unsigned long long)s->window.calls,
                         (unsigned long long)s->window.failures,
                         (unsigned long long)s->window.slow, s->window.failure_rate,
                         s->window.slow_rate, (unsigned long long)s->minimum_calls,
                         (unsigned long long)s->consecutive_failures,
                         (unsigned long long)s->consecutive_opens,
                         (unsigned long long)s->retry_after_ns);
}

/* snapshot() -> [stats tuple, ...] for every key held (the overflow entry excluded) */
static PyObject *KeyedCore_snapshot(KeyedCore *self, PyObject *Py_UNUSED(ignored)) {
    if (self->kb == NULL) return keyed_error(self, -1, NULL);
    row_buf b = {NULL, 0, 0, 0};
    int st;
    const surgewall_keyed_breaker *kb = self->kb;
    self->busy++;
    Py_BEGIN_ALLOW_THREADS
    st = surgewall_keyed_breaker_for_each(kb, collect_row, &b);
    Py_END_ALLOW_THREADS
    if (--self->busy == 0 && self->pending != NULL) {
        surgewall_keyed_breaker_free((surgewall_keyed_breaker *)self->pending);
        self->pending = NULL;
    }
    if (st != SURGEWALL_OK || b.oom) {
        free(b.rows);
        if (b.oom) return PyErr_NoMemory();
        return keyed_error(self, st, NULL);
    }
    PyObject *list = PyList_New((Py_ssize_t)b.len);
    for (size_t i = 0; list != NULL && i < b.len; i++) {
        PyObject *t = stats_tuple(b.rows[i].key, &b.rows[i].stats);
        if (t == NULL) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    free(b.rows);
    return list;
}

/* get(key) -> stats tuple, or None when the key is not held (never creates it) */
static PyObject *KeyedCore_get(KeyedCore *self, PyObject *key) {
    uint64_t k;
    if (resolve_key(self, key, &k) < 0) return NULL;
    surgewall_keyed_breaker_key_stats s;
    int st = surgewall_keyed_breaker_get(self->kb, k, &s);
    if (st == SURGEWALL_NOT_FOUND) Py_RETURN_NONE;
    if (st != SURGEWALL_OK) return keyed_error(self, st, key);
    return stats_tuple(k, &s);
}

/* key_of(key) -> the 64-bit key (an int key is itself) */
static PyObject *KeyedCore_key_of(KeyedCore *self, PyObject *key) {
    uint64_t k;
    if (resolve_key(self, key, &k) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(k);
}

static PyObject *KeyedCore_outcome_of(KeyedCore *self, PyObject *exc) {
    return PyLong_FromLong(sw_outcome_of(&self->policy, exc == Py_None ? NULL : exc));
}

/* ---- lifetime ---- */

static void keyed_free_handle(KeyedCore *self) {
    if (self->kb == NULL) return;
    if (self->busy > 0) {
        self->pending = self->kb; /* an iteration is inside it: its end frees it */
    } else {
        surgewall_keyed_breaker_free((surgewall_keyed_breaker *)self->kb);
    }
    self->kb = NULL;
}

static int KeyedCore_init(KeyedCore *self, PyObject *args, PyObject *kwds) {
    if (self->kb != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "KeyedCore already initialised");
        return -1;
    }
    uint64_t h;
    if (sw_core_args(args, kwds, &h, &self->policy, &self->name) < 0) return -1;
    surgewall_keyed_breaker *clone = NULL;
    int st = surgewall_keyed_breaker_clone((const surgewall_keyed_breaker *)(uintptr_t)h, &clone);
    if (st != SURGEWALL_OK) return sw_raise(st, 0, NULL, NULL);
    self->kb = clone;
    return 0;
}

static int KeyedCore_traverse(KeyedCore *self, visitproc visit, void *arg) {
    int r = sw_policy_traverse(&self->policy, visit, arg);
    if (r) return r;
    Py_VISIT(self->name);
    return 0;
}

static int KeyedCore_clear(KeyedCore *self) {
    sw_policy_clear(&self->policy);
    Py_CLEAR(self->name);
    return 0;
}

static void KeyedCore_dealloc(KeyedCore *self) {
    PyObject_GC_UnTrack(self);
    keyed_free_handle(self);
    KeyedCore_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *KeyedCore_close(KeyedCore *self, PyObject *Py_UNUSED(ignored)) {
    keyed_free_handle(self);
    Py_RETURN_NONE;
}

static PyObject *KeyedCore_get_closed(KeyedCore *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->kb == NULL);
}

static PyMethodDef KeyedCore_methods[] = {
    {"call", (PyCFunction)(void (*)(void))KeyedCore_call, METH_FASTCALL | METH_KEYWORDS,
     "call(key, fn, *args, **kwargs): the guarded call on key's breaker"},
    {"acquire", (PyCFunction)KeyedCore_acquire, METH_O,
     "acquire(key) -> (token, start_ns, slot), or raises the rejection"},
    {"record", (PyCFunction)(void (*)(void))KeyedCore_record, METH_FASTCALL,
     "record(token, start_ns, slot, outcome[, duration_ns]) -> status"},
    {"get", (PyCFunction)KeyedCore_get, METH_O,
     "get(key) -> the key's stats tuple, or None when it is not held"},
    {"key_of", (PyCFunction)KeyedCore_key_of, METH_O, "key_of(key) -> the 64-bit key"},
    {"snapshot", (PyCFunction)KeyedCore_snapshot, METH_NOARGS,
     "snapshot() -> a stats tuple for every key held"},
    {"outcome_of", (PyCFunction)KeyedCore_outcome_of, METH_O,
     "outcome_of(exc) -> the outcome an exception counts as"},
    {"close", (PyCFunction)KeyedCore_close, METH_NOARGS, "frees this core's handle"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef KeyedCore_getset[] = {
    {"closed", (getter)KeyedCore_get_closed, NULL, "whether close() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sw_KeyedCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surgewall._speedups.KeyedCore",
    .tp_basicsize = sizeof(KeyedCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The hot path of one keyed breaker (owns one keyed breaker handle).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)KeyedCore_init,
    .tp_dealloc = (destructor)KeyedCore_dealloc,
    .tp_traverse = (traverseproc)KeyedCore_traverse,
    .tp_clear = (inquiry)KeyedCore_clear,
    .tp_methods = KeyedCore_methods,
    .tp_getset = KeyedCore_getset,
};
