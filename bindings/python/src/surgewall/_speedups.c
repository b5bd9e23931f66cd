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
    unsigned long long drops; /* permits finalised without a report (released as ignored) */
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

static PyObject *Core_get_drops(Core *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLongLong(self->drops);
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
    {"drops", (getter)Core_get_drops, NULL, "permits finalised without a report", NULL},
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

/* ---- Permit: one admission of a named breaker ----
 *
 * The state of surgewall.Permit (a Python subclass adds the reporting API). A permit is a
 * one-shot capability: copies and pickles are refused, and one finalised without a report is
 * recorded as ignored (I5: a dropped half-open probe gives its slot back) and counted in the
 * core's `drops`. */

typedef struct {
    PyObject_HEAD
    Core *core; /* the issuer; NULL only while a Python __init__ has not set it */
    unsigned long long token, start_ns;
    char done;
    PyThreadState *owner; /* the thread whose `with` block holds it (NULL: not a with permit) */
} PermitObj;

static PyTypeObject PermitType;

static int Permit_traverse(PermitObj *self, visitproc visit, void *arg) {
    Py_VISIT(self->core);
    return 0;
}

static int Permit_clear(PermitObj *self) {
    Py_CLEAR(self->core);
    return 0;
}

static void Permit_finalize(PermitObj *self) {
    if (self->done || self->core == NULL) return;
    self->done = 1;
    self->core->drops++;
    surgewall_permit p = {self->token, self->start_ns};
    (void)core_record(self->core, p, SURGEWALL_OUTCOME_IGNORED); /* freed breaker: a status */
}

static void Permit_dealloc(PermitObj *self) {
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0) return; /* resurrected */
    PyObject_GC_UnTrack(self);
    Permit_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Permit_refuse_copy(PyObject *self, PyObject *Py_UNUSED(args)) {
    PyErr_Format(PyExc_TypeError,
                 "%.100s cannot be copied: a permit reports one admission once",
                 Py_TYPE(self)->tp_name);
    return NULL;
}

static PyObject *Permit_refuse_pickle(PyObject *self, PyObject *Py_UNUSED(args)) {
    PyErr_Format(PyExc_TypeError,
                 "%.100s cannot be pickled: a permit is valid only in the process and for the "
                 "breaker that issued it",
                 Py_TYPE(self)->tp_name);
    return NULL;
}

static PyObject *Permit_get_core(PermitObj *self, void *Py_UNUSED(c)) {
    if (self->core == NULL) Py_RETURN_NONE;
    Py_INCREF(self->core);
    return (PyObject *)self->core;
}

static int Permit_set_core(PermitObj *self, PyObject *v, void *Py_UNUSED(c)) {
    if (v == NULL || !PyObject_TypeCheck(v, &CoreType)) {
        PyErr_SetString(PyExc_TypeError, "_core must be a surgewall._speedups.Core");
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(self->core, (Core *)v);
    return 0;
}

static PyObject *Permit_get_done(PermitObj *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->done);
}

static int Permit_set_done(PermitObj *self, PyObject *v, void *Py_UNUSED(c)) {
    int t = v == NULL ? 0 : PyObject_IsTrue(v);
    if (t < 0) return -1;
    self->done = (char)t;
    return 0;
}

static PyObject *Permit_get_u64(PermitObj *self, void *which) {
    return PyLong_FromUnsignedLongLong(which ? self->start_ns : self->token);
}

static int Permit_set_u64(PermitObj *self, PyObject *v, void *which) {
    uint64_t x;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a permit field");
        return -1;
    }
    if (sw_u64(v, &x) < 0) return -1;
    if (which) self->start_ns = x;
    else self->token = x;
    return 0;
}

static PyMethodDef Permit_methods[] = {
    {"__copy__", (PyCFunction)Permit_refuse_copy, METH_NOARGS, "refused: a permit counts once"},
    {"__deepcopy__", (PyCFunction)Permit_refuse_copy, METH_O, "refused: a permit counts once"},
    {"__reduce_ex__", (PyCFunction)Permit_refuse_pickle, METH_O, "refused"},
    {"__reduce__", (PyCFunction)Permit_refuse_pickle, METH_NOARGS, "refused"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Permit_getset[] = {
    {"_core", (getter)Permit_get_core, (setter)Permit_set_core, "the issuing core", NULL},
    {"_done", (getter)Permit_get_done, (setter)Permit_set_done, "whether it was reported", NULL},
    {"token", (getter)Permit_get_u64, (setter)Permit_set_u64, "generation ^ salt", NULL},
    {"start_ns", (getter)Permit_get_u64, (setter)Permit_set_u64, "when the call started",
     (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PermitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surgewall._speedups.Permit",
    .tp_basicsize = sizeof(PermitObj),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The state of one admitted call of a named breaker.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Permit_dealloc,
    .tp_traverse = (traverseproc)Permit_traverse,
    .tp_clear = (inquiry)Permit_clear,
    .tp_finalize = (destructor)Permit_finalize,
    .tp_methods = Permit_methods,
    .tp_getset = Permit_getset,
};

/* ---- WithBase: `with breaker as p:` in C ----
 *
 * The base of surgewall.Breaker. Each `with` block gets a fresh permit, remembered by the
 * frame that runs the block: that frame is the current one at __enter__ and at __exit__ (C
 * methods push no frame), and two blocks that interleave on one thread (generators,
 * coroutines) never share one. Only the frame's address is used, as an identity, so no frame
 * object is made for it (CPython 3.11/3.12 keep the running frame in tstate->cframe).
 *
 * The common case, one block open at a time, lives in `one` (no dict, no allocation); blocks
 * open beside it go to `held` ({address: permit or [permit, ...]}, innermost last), which
 * only ever holds blocks newer than `one`. When __exit__ comes from another frame than
 * __enter__ (contextlib.ExitStack enters and exits from its own methods), the latest block
 * this thread entered is the one that ends, as a stack would have it. A permit nobody else
 * references when its block ends is kept for the next block (`cache`), so the usual `with`
 * allocates nothing. */

#define WITH_CACHE 4

typedef struct {
    PyObject_HEAD
    Core *core;           /* set by _bind */
    PyTypeObject *ptype;  /* the Python Permit class (a subclass of PermitType) */
    const void *one_key;  /* the frame of `one` */
    PermitObj *one;       /* the oldest open block's permit, or NULL */
    PyObject *held;       /* NULL or {int(frame address): permit or [permit, ...]} */
    PermitObj *cache[WITH_CACHE];
    int ncache;
} WithBase;

/* The address of the running frame: an identity for the block's lifetime. */
static const void *frame_key(void) {
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
    PyThreadState *ts = PyThreadState_Get();
    return ts->cframe->current_frame;
#else
    return PyEval_GetFrame();
#endif
}

static PermitObj *with_new_permit(WithBase *self, surgewall_permit raw) {
    PermitObj *p;
    if (self->ncache > 0) {
        p = self->cache[--self->ncache];
    } else {
        p = (PermitObj *)self->ptype->tp_alloc(self->ptype, 0);
        if (p == NULL) return NULL;
    }
    if (p->core != self->core) {
        Py_INCREF(self->core);
        Py_XSETREF(p->core, self->core);
    }
    p->token = raw.token;
    p->start_ns = raw.start_ns;
    p->done = 0;
    p->owner = PyThreadState_Get();
    return p;
}

/* A reported permit: kept for reuse when nobody else holds it, else released. Steals `p`. */
static void with_recycle(WithBase *self, PermitObj *p) {
    if (Py_REFCNT(p) == 1 && self->ncache < WITH_CACHE && Py_TYPE(p) == self->ptype) {
        p->owner = NULL;
        self->cache[self->ncache++] = p;
        return;
    }
    Py_DECREF(p);
}

static PyObject *with_push(WithBase *self, const void *key) {
    if (self->core == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "breaker not initialised");
        return NULL;
    }
    surgewall_permit raw;
    if (core_acquire(self->core, &raw) < 0) return NULL;
    PermitObj *p = with_new_permit(self, raw);
    if (p == NULL) {
        (void)core_record(self->core, raw, SURGEWALL_OUTCOME_IGNORED);
        return NULL;
    }
    if (self->one == NULL && (self->held == NULL || PyDict_GET_SIZE(self->held) == 0)) {
        Py_INCREF(p);
        self->one = p;
        self->one_key = key;
        return (PyObject *)p;
    }
    int st = -1;
    if (self->held == NULL) self->held = PyDict_New();
    PyObject *k = self->held == NULL ? NULL : PyLong_FromVoidPtr((void *)key);
    if (k != NULL) {
        PyObject *prev = PyDict_GetItemWithError(self->held, k); /* borrowed */
        if (prev == NULL) {
            st = PyErr_Occurred() ? -1 : PyDict_SetItem(self->held, k, (PyObject *)p);
        } else if (PyList_CheckExact(prev)) {
            st = PyList_Append(prev, (PyObject *)p);
        } else {
            PyObject *list = PyList_New(2);
            if (list != NULL) {
                Py_INCREF(prev);
                PyList_SET_ITEM(list, 0, prev);
                Py_INCREF(p);
                PyList_SET_ITEM(list, 1, (PyObject *)p);
                st = PyDict_SetItem(self->held, k, list);
                Py_DECREF(list);
            }
        }
        Py_DECREF(k);
    }
    if (st < 0) {
        Py_DECREF(p); /* its finaliser releases it */
        return NULL;
    }
    return (PyObject *)p;
}

/* Takes the innermost permit of `entry` (held under `key`) out of `held`: a new reference. */
static PermitObj *with_take(WithBase *self, PyObject *key, PyObject *entry) {
    if (!PyList_CheckExact(entry)) {
        Py_INCREF(entry);
        if (PyDict_DelItem(self->held, key) < 0) {
            Py_DECREF(entry);
            return NULL;
        }
        return (PermitObj *)entry;
    }
    Py_ssize_t n = PyList_GET_SIZE(entry);
    PyObject *p = PyList_GET_ITEM(entry, n - 1);
    Py_INCREF(p);
    if (PyList_SetSlice(entry, n - 1, n, NULL) < 0) {
        Py_DECREF(p);
        return NULL;
    }
    if (n == 1 && PyDict_DelItem(self->held, key) < 0) {
        Py_DECREF(p);
        return NULL;
    }
    return (PermitObj *)p;
}

static PermitObj *with_take_one(WithBase *self) {
    PermitObj *p = self->one;
    self->one = NULL;
    self->one_key = NULL;
    return p;
}

/* The permit whose block ends now: the frame's own, or else (an exit from another frame) the
 * latest one this thread entered. A new reference; NULL with PermitError when none. */
static PermitObj *with_find(WithBase *self, const void *key) {
    if (self->held != NULL && PyDict_GET_SIZE(self->held) > 0) {
        PyObject *k = PyLong_FromVoidPtr((void *)key);
        if (k == NULL) return NULL;
        PyObject *entry = PyDict_GetItemWithError(self->held, k);
        PermitObj *p = entry != NULL ? with_take(self, k, entry) : NULL;
        Py_DECREF(k);
        if (p != NULL || PyErr_Occurred()) return p;
    }
    if (self->one != NULL && self->one_key == key) return with_take_one(self);
    PyThreadState *me = PyThreadState_Get();
    if (self->held != NULL) {
        PyObject *k, *value, *found_key = NULL, *found = NULL;
        Py_ssize_t pos = 0;
        while (PyDict_Next(self->held, &pos, &k, &value)) { /* insertion order: latest last */
            PyObject *last = PyList_CheckExact(value)
                                 ? PyList_GET_ITEM(value, PyList_GET_SIZE(value) - 1)
                                 : value;
            if (((PermitObj *)last)->owner == me) {
                found_key = k;
                found = value;
            }
        }
        if (found != NULL) {
            Py_INCREF(found_key);
            PermitObj *p = with_take(self, found_key, found);
            Py_DECREF(found_key);
            return p;
        }
    }
    if (self->one != NULL && self->one->owner == me) return with_take_one(self);
    sw_raise(106, 0, self->core ? self->core->name : NULL, NULL);
    return NULL;
}

static PyObject *with_pop(WithBase *self, const void *key, PyObject *exc) {
    PermitObj *p = with_find(self, key);
    if (p == NULL) return NULL;
    if (!p->done) {
        p->done = 1;
        Core *c = p->core;
        if (c->b == NULL) {
            Py_DECREF(p);
            raise_status(-1, 0, c->name);
            return NULL;
        }
        surgewall_permit raw = {p->token, p->start_ns};
        int outcome = exc == Py_None ? SURGEWALL_OUTCOME_SUCCESS : sw_outcome_of(&c->policy, exc);
        (void)core_record(c, raw, outcome);
    }
    with_recycle(self, p);
    Py_RETURN_NONE;
}

static PyObject *WithBase_enter(WithBase *self, PyObject *Py_UNUSED(ignored)) {
    return with_push(self, frame_key());
}

static PyObject *WithBase_exit(WithBase *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__(type, value, traceback)");
        return NULL;
    }
    PyObject *r = with_pop(self, frame_key(), args[1]);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE;
}

/* _push(frame) / _pop(frame, exc): the same for `async with`, whose __aenter__ / __aexit__
 * coroutines pass the frame of the block (a frame object: its address is the key). */
static PyObject *WithBase_push(WithBase *self, PyObject *frame) {
    return with_push(self, frame);
}

static PyObject *WithBase_pop(WithBase *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_pop(frame, exc)");
        return NULL;
    }
    return with_pop(self, args[0], args[1]);
}

/* _bind(core, permit_type) */
static PyObject *WithBase_bind(WithBase *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyObject_TypeCheck(args[0], &CoreType) || !PyType_Check(args[1]) ||
        !PyType_IsSubtype((PyTypeObject *)args[1], &PermitType)) {
        PyErr_SetString(PyExc_TypeError, "_bind(core: Core, permit_type: type[Permit])");
        return NULL;
    }
    Py_INCREF(args[0]);
    Py_XSETREF(self->core, (Core *)args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(self->ptype, (PyTypeObject *)args[1]);
    Py_RETURN_NONE;
}

static PyObject *WithBase_get_held(WithBase *self, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t((self->one != NULL) +
                              (self->held == NULL ? 0 : PyDict_GET_SIZE(self->held)));
}

static int WithBase_traverse(WithBase *self, visitproc visit, void *arg) {
    Py_VISIT(self->core);
    Py_VISIT(self->held);
    Py_VISIT(self->ptype);
    Py_VISIT(self->one);
    for (int i = 0; i < self->ncache; i++) Py_VISIT(self->cache[i]);
    return 0;
}

static int WithBase_clear(WithBase *self) {
    Py_CLEAR(self->core);
    Py_CLEAR(self->held);
    Py_CLEAR(self->ptype);
    Py_CLEAR(self->one);
    while (self->ncache > 0) Py_CLEAR(self->cache[--self->ncache]);
    return 0;
}

static void WithBase_dealloc(WithBase *self) {
    PyObject_GC_UnTrack(self);
    WithBase_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef WithBase_methods[] = {
    {"__enter__", (PyCFunction)WithBase_enter, METH_NOARGS,
     "a fresh permit for this block, reported when it ends"},
    {"__exit__", (PyCFunction)(void (*)(void))WithBase_exit, METH_FASTCALL,
     "reports the block's permit (an exception is classified by the failure policy)"},
    {"_push", (PyCFunction)WithBase_push, METH_O, "_push(frame) -> a permit held for frame"},
    {"_pop", (PyCFunction)(void (*)(void))WithBase_pop, METH_FASTCALL,
     "_pop(frame, exc): reports frame's innermost permit"},
    {"_bind", (PyCFunction)(void (*)(void))WithBase_bind, METH_FASTCALL,
     "_bind(core, permit_type)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef WithBase_getset[] = {
    {"_held_frames", (getter)WithBase_get_held, NULL, "frames with a block open now", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WithBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surgewall._speedups.WithBase",
    .tp_basicsize = sizeof(WithBase),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "`with breaker as permit:` for surgewall.Breaker.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)WithBase_dealloc,
    .tp_traverse = (traverseproc)WithBase_traverse,
    .tp_clear = (inquiry)WithBase_clear,
    .tp_methods = WithBase_methods,
    .tp_getset = WithBase_getset,
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
    if (PyType_Ready(&PermitType) < 0) return NULL;
    if (PyType_Ready(&WithBaseType) < 0) return NULL;
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
    Py_INCREF(&PermitType);
    if (PyModule_AddObject(m, "Permit", (PyObject *)&PermitType) < 0) goto fail;
    Py_INCREF(&WithBaseType);
    if (PyModule_AddObject(m, "WithBase", (PyObject *)&WithBaseType) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
