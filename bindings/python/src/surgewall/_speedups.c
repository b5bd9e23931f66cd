/*
 * surgewall._speedups: the guarded call in C, over the C ABI of libsurgewall.
 *
 * cffi (surgewall._ffi) binds the whole ABI, but every cffi call releases and re-takes the GIL
 * (~100 ns). The guarded call is the hot path, so this module does acquire + call + record
 * while holding the GIL, calling libsurgewall's functions directly. No policy lives here: the
 * admit step reads the breaker's published state word exactly as
 * `surgewall_breaker_fast_path` documents (CLOSED / DISABLED / METRICS_ONLY without call
 * timing: the permit is {generation ^ salt, 0}); every other case, and every
 * record, goes through the library.
 */
#include "_speedups.h"

/* Python-side factory: make_error(status, retry_after_ns, name, key) -> exception instance. A
 * status of -1 means "this breaker was closed". */
static PyObject *make_error = NULL;

typedef struct {
    PyObject_HEAD
    const surgewall_breaker *b; /* our own clone; NULL once closed */
    const uint64_t *word;
    uint64_t salt;
    int times_calls;
    sw_policy policy;
    PyObject *name; /* the breaker's name, for error messages */
} Core;

static PyTypeObject CoreType;

int sw_raise(int status, uint64_t retry_after_ns, PyObject *name, PyObject *key) {
    if (make_error == NULL) {
        PyErr_Format(PyExc_RuntimeError, "surgewall status %d", status);
        return -1;
    }
    PyObject *exc = PyObject_CallFunction(make_error, "iKOO", status,
                                          (unsigned long long)retry_after_ns,
                                          name ? name : Py_None, key ? key : Py_None);
    if (exc == NULL) return -1;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return -1;
}

static int raise_status(int status, uint64_t retry_after_ns, PyObject *name) {
    return sw_raise(status, retry_after_ns, name, NULL);
}

int sw_u64(PyObject *o, uint64_t *out) {
    *out = PyLong_AsUnsignedLongLong(o);
    return PyErr_Occurred() ? -1 : 0;
}

/* ---- the failure policy ---- */

int sw_policy_set(sw_policy *p, PyObject *include, PyObject *exclude, PyObject *predicate) {
    if (predicate != Py_None && !PyCallable_Check(predicate)) {
        PyErr_SetString(PyExc_TypeError, "predicate must be callable or None");
        return -1;
    }
    Py_INCREF(include);
    Py_XSETREF(p->include, include);
    Py_INCREF(exclude);
    Py_XSETREF(p->exclude, exclude);
    Py_INCREF(predicate);
    Py_XSETREF(p->predicate, predicate);
    return 0;
}

int sw_core_args(PyObject *args, PyObject *kwds, uint64_t *h, sw_policy *policy,
                 PyObject **name) {
    static char *kwlist[] = {"handle", "include", "exclude", "predicate", "name", NULL};
    unsigned long long handle;
    PyObject *include, *exclude, *predicate, *n = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KO!O!O|O", kwlist, &handle, &PyTuple_Type,
                                     &include, &PyTuple_Type, &exclude, &predicate, &n))
        return -1;
    if (sw_policy_set(policy, include, exclude, predicate) < 0) return -1;
    Py_INCREF(n);
    Py_XSETREF(*name, n);
    *h = handle;
    return 0;
}

int sw_policy_traverse(sw_policy *p, visitproc visit, void *arg) {
    Py_VISIT(p->include);
    Py_VISIT(p->exclude);
    Py_VISIT(p->predicate);
    return 0;
}

void sw_policy_clear(sw_policy *p) {
    Py_CLEAR(p->include);
    Py_CLEAR(p->exclude);
    Py_CLEAR(p->predicate);
}

static inline int core_acquire(Core *c, surgewall_permit *p) {
    if (c->b == NULL) return raise_status(-1, 0, c->name);
    if (!c->times_calls) {
        uint64_t w = __atomic_load_n(c->word, __ATOMIC_ACQUIRE);
        uint64_t s = w & 7;
        if (s == SURGEWALL_STATE_CLOSED || s == SURGEWALL_STATE_DISABLED ||
            s == SURGEWALL_STATE_METRICS_ONLY) {
            p->token = (w >> 24) ^ c->salt; /* generation ^ salt */
            p->start_ns = 0;
            return 0;
        }
    }
    uint64_t ra = 0;
    int st = surgewall_breaker_acquire(c->b, p, &ra);
    if (st == SURGEWALL_OK) return 0;
    return raise_status(st, ra, c->name);
}

static inline int core_record(Core *c, surgewall_permit p, int outcome) {
    if (c->b == NULL) return SURGEWALL_INVALID_HANDLE;
    return surgewall_breaker_record(c->b, p, outcome);
}

int sw_outcome_of(const sw_policy *c, PyObject *exc) {
    if (exc == NULL || !PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
        /* CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit: nothing about the
         * dependency. */
        return SURGEWALL_OUTCOME_IGNORED;
    }
    if (PyTuple_GET_SIZE(c->exclude) > 0 && PyErr_GivenExceptionMatches(exc, c->exclude))
        return SURGEWALL_OUTCOME_IGNORED;
    if (!PyErr_GivenExceptionMatches(exc, c->include)) return SURGEWALL_OUTCOME_IGNORED;
    if (c->predicate != Py_None) {
        PyObject *r = PyObject_CallOneArg(c->predicate, exc);
        if (r == NULL) {
            /* A predicate that raises cannot vouch for the call: count a failure. */
            PyErr_WriteUnraisable(c->predicate);
            return SURGEWALL_OUTCOME_FAILURE;
        }
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (t < 0) {
            PyErr_WriteUnraisable(c->predicate);
            return SURGEWALL_OUTCOME_FAILURE;
        }
        return t ? SURGEWALL_OUTCOME_FAILURE : SURGEWALL_OUTCOME_IGNORED;
    }
    return SURGEWALL_OUTCOME_FAILURE;
}

static PyObject *guarded_call(Core *c, PyObject *fn, PyObject *const *args, size_t nargsf,
                              PyObject *kwnames) {
    surgewall_permit p;
    if (core_acquire(c, &p) < 0) return NULL;
    PyObject *r = PyObject_Vectorcall(fn, args, nargsf, kwnames);
    if (r != NULL) {
        (void)core_record(c, p, SURGEWALL_OUTCOME_SUCCESS);
        return r;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    int outcome = sw_outcome_of(&c->policy, value);
    (void)core_record(c, p, outcome);
    PyErr_Restore(type, value, tb);
    return NULL;
}

/* ---- Core ---- */

static int Core_init(Core *self, PyObject *args, PyObject *kwds) {
    if (self->b != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Core already initialised");
        return -1;
    }
    uint64_t h;
    if (sw_core_args(args, kwds, &h, &self->policy, &self->name) < 0) return -1;
    surgewall_breaker *clone = NULL;
    int st = surgewall_breaker_clone((const surgewall_breaker *)(uintptr_t)h, &clone);
    if (st != SURGEWALL_OK) return raise_status(st, 0, NULL);
    surgewall_breaker_fast_path fp;
    st = surgewall_breaker_get_fast_path(clone, &fp);
    if (st != SURGEWALL_OK) {
        surgewall_breaker_free(clone);
        return raise_status(st, 0, NULL);
    }
    self->b = clone;
    self->word = fp.state_word;
    self->salt = fp.salt;
    self->times_calls = fp.times_calls;
    return 0;
}

static void core_free_handle(Core *self) {
    if (self->b != NULL) {
        surgewall_breaker_free((surgewall_breaker *)self->b);
        self->b = NULL;
        self->word = NULL;
    }
}

static int Core_traverse(Core *self, visitproc visit, void *arg) {
    int r = sw_policy_traverse(&self->policy, visit, arg);
    if (r) return r;
    Py_VISIT(self->name);
    return 0;
}

static int Core_clear(Core *self) {
    sw_policy_clear(&self->policy);
    Py_CLEAR(self->name);
    return 0;
}

static void Core_dealloc(Core *self) {
    PyObject_GC_UnTrack(self);
    core_free_handle(self);
    Core_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Core_call(Core *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call() needs the function to call");
        return NULL;
    }
    return guarded_call(self, args[0], args + 1, (size_t)(nargs - 1), kwnames);
}

static PyObject *Core_acquire(Core *self, PyObject *Py_UNUSED(ignored)) {
    surgewall_permit p;
    if (core_acquire(self, &p) < 0) return NULL;
    return Py_BuildValue("(KK)", (unsigned long long)p.token, (unsigned long long)p.start_ns);
}

static int parse_permit(PyObject *const *args, surgewall_permit *p) {
    uint64_t t, s;
    if (sw_u64(args[0], &t) < 0 || sw_u64(args[1], &s) < 0) return -1;
    p->token = t;
    p->start_ns = s;
    return 0;
}

/* record(token, start_ns, outcome) -> status */
static PyObject *Core_record(Core *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "record(token, start_ns, outcome)");
        return NULL;
    }
    surgewall_permit p;
    if (parse_permit(args, &p) < 0) return NULL;
    long outcome = PyLong_AsLong(args[2]);
    if (outcome == -1 && PyErr_Occurred()) return NULL;
    if (self->b == NULL) {
        raise_status(-1, 0, self->name);
        return NULL;
    }
    return PyLong_FromLong(core_record(self, p, (int)outcome));
}

/* record_timed(token, start_ns, outcome, duration_ns) -> status */
static PyObject *Core_record_timed(Core *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "record_timed(token, start_ns, outcome, duration_ns)");
        return NULL;
    }
    surgewall_permit p;
    if (parse_permit(args, &p) < 0) return NULL;
    long outcome = PyLong_AsLong(args[2]);
    if (outcome == -1 && PyErr_Occurred()) return NULL;
    long long d = PyLong_AsLongLong(args[3]);
    if (d == -1 && PyErr_Occurred()) return NULL;
    if (self->b == NULL) {
        raise_status(-1, 0, self->name);
        return NULL;
    }
    return PyLong_FromLong(surgewall_breaker_record_timed(self->b, p, (int)outcome, d));
}

static PyObject *Core_outcome_of(Core *self, PyObject *exc) {
    return PyLong_FromLong(sw_outcome_of(&self->policy, exc == Py_None ? NULL : exc));
}

static PyObject *Core_close(Core *self, PyObject *Py_UNUSED(ignored)) {
    core_free_handle(self);
    Py_RETURN_NONE;
}

static PyObject *Core_wrap(Core *self, PyObject *fn);

static PyObject *Core_get_closed(Core *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->b == NULL);
}

static PyObject *Core_get_times_calls(Core *self, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(self->times_calls);
}

static PyMethodDef Core_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Core_call, METH_FASTCALL | METH_KEYWORDS,
     "call(fn, *args, **kwargs): the guarded call"},
    {"wrap", (PyCFunction)Core_wrap, METH_O, "wrap(fn) -> a guarded callable"},
    {"acquire", (PyCFunction)Core_acquire, METH_NOARGS,
     "acquire() -> (token, start_ns), or raises the rejection"},
    {"record", (PyCFunction)(void (*)(void))Core_record, METH_FASTCALL,
     "record(token, start_ns, outcome) -> status"},
    {"record_timed", (PyCFunction)(void (*)(void))Core_record_timed, METH_FASTCALL,
     "record_timed(token, start_ns, outcome, duration_ns) -> status"},
    {"outcome_of", (PyCFunction)Core_outcome_of, METH_O,
     "outcome_of(exc) -> the outcome an exception counts as"},
    {"close", (PyCFunction)Core_close, METH_NOARGS, "frees this core's breaker handle"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"closed", (getter)Core_get_closed, NULL, "whether close() was called", NULL},
    {"times_calls", (getter)Core_get_times_calls, NULL, "whether the breaker times calls", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surgewall._speedups.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The hot path of one breaker (owns one breaker handle).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_traverse = (traverseproc)Core_traverse,
    .tp_clear = (inquiry)Core_clear,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

/* ---- Guarded: a function wrapped by a breaker (vectorcall, binds as a method) ---- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Core *core;
    PyObject *fn;
    PyObject *dict;
    PyObject *weakrefs;
} Guarded;

static PyTypeObject GuardedType;

static PyObject *Guarded_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    Guarded *g = (Guarded *)self;
    return guarded_call(g->core, g->fn, args, nargsf, kwnames);
}

static PyObject *Core_wrap(Core *self, PyObject *fn) {
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "wrap() needs a callable");
        return NULL;
    }
    Guarded *g = PyObject_GC_New(Guarded, &GuardedType);
    if (g == NULL) return NULL;
    g->vectorcall = Guarded_vectorcall;
    Py_INCREF(self);
    g->core = self;
    Py_INCREF(fn);
    g->fn = fn;
    g->dict = NULL;
    g->weakrefs = NULL;
    PyObject_GC_Track(g);
    return (PyObject *)g;
}

static int Guarded_traverse(Guarded *self, visitproc visit, void *arg) {
    Py_VISIT(self->core);
    Py_VISIT(self->fn);
    Py_VISIT(self->dict);
    return 0;
}

static int Guarded_clear(Guarded *self) {
    Py_CLEAR(self->core);
    Py_CLEAR(self->fn);
    Py_CLEAR(self->dict);
    return 0;
}

static void Guarded_dealloc(Guarded *self) {
    PyObject_GC_UnTrack(self);
    if (self->weakrefs != NULL) PyObject_ClearWeakRefs((PyObject *)self);
    Guarded_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *Guarded_descr_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type)) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *Guarded_repr(Guarded *self) {
    return PyUnicode_FromFormat("<surgewall guarded %R>", self->fn);
}


static PyGetSetDef Guarded_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject GuardedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surgewall._speedups.Guarded",
    .tp_basicsize = sizeof(Guarded),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "A function guarded by a circuit breaker.",
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Guarded, vectorcall),
    .tp_dictoffset = offsetof(Guarded, dict),
    .tp_weaklistoffset = offsetof(Guarded, weakrefs),
    .tp_dealloc = (destructor)Guarded_dealloc,
    .tp_traverse = (traverseproc)Guarded_traverse,
    .tp_clear = (inquiry)Guarded_clear,
    .tp_descr_get = Guarded_descr_get,
    .tp_repr = (reprfunc)Guarded_repr,
    .tp_getset = Guarded_getset,
};

/* ---- module ---- */

static PyObject *set_error_factory(PyObject *Py_UNUSED(m), PyObject *fn) {
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "the error factory must be callable");
        return NULL;
    }
    Py_INCREF(fn);
    Py_XSETREF(make_error, fn);
    Py_RETURN_NONE;
}

static PyObject *noop(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(a)) { Py_RETURN_NONE; }

static PyMethodDef module_methods[] = {
    {"set_error_factory", set_error_factory, METH_O,
     "set_error_factory(fn): fn(status, retry_after_ns, name, key) -> exception"},
    {"noop", noop, METH_NOARGS, "a no-op C function (benchmark baseline)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "surgewall._speedups", "The guarded call in C.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    if (PyType_Ready(&GuardedType) < 0) return NULL;
    if (PyType_Ready(&sw_KeyedCoreType) < 0) return NULL;
    if (PyType_Ready(&sw_LeaseType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) goto fail;
    Py_INCREF(&GuardedType);
    if (PyModule_AddObject(m, "Guarded", (PyObject *)&GuardedType) < 0) goto fail;
    Py_INCREF(&sw_KeyedCoreType);
    if (PyModule_AddObject(m, "KeyedCore", (PyObject *)&sw_KeyedCoreType) < 0) goto fail;
    Py_INCREF(&sw_LeaseType);
    if (PyModule_AddObject(m, "Lease", (PyObject *)&sw_LeaseType) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
