/*
 * surgewall._speedups.Lease: a library handle that is freed only when no call is inside it.
 *
 * The C ABI catches a handle used after it was freed, but not one freed while another thread
 * is still inside a call on it (a cffi call releases the GIL; a bulkhead waiter sits in the
 * library for up to max_wait): that is a use after free. A Lease counts the calls in flight.
 * `close()` marks it closed (later calls raise ClosedError), optionally wakes what waits in
 * the library (`wake(handle)`, e.g. surgewall_bulkhead_close) and frees the handle when the
 * count is zero; otherwise the last call to come out frees it. Dropping the Lease frees it
 * too: a call in flight holds a reference, so that never happens under a call.
 *
 * Every step runs with the GIL held (the count, the flag, the free), so they need no lock of
 * their own; the GIL is released only inside the library call, with the count already taken.
 * (A free-threaded build would need a critical section here.)
 */
#include "_speedups.h"

#ifdef Py_GIL_DISABLED
#error "surgewall._speedups.Lease relies on the GIL; free-threaded builds are not supported"
#endif

typedef struct {
    PyObject_HEAD
    PyObject *ptr;      /* the cffi handle; NULL once freed */
    PyObject *free_fn;  /* free_fn(ptr) frees it */
    PyObject *exc_type; /* raised (with `message`) by calls after close */
    PyObject *message;
    Py_ssize_t busy; /* calls inside the library now */
    unsigned long long drops; /* permits finalised unreported (note_drop) */
    int closed;
} Lease;

static int lease_closed_error(Lease *self) {
    PyErr_SetObject(self->exc_type, self->message);
    return -1;
}

/* Frees the handle now (with the GIL; nobody is inside it). An error from the free function
 * is reported as unraisable: a free has nothing to give back to its caller. */
static void lease_free_now(Lease *self) {
    PyObject *ptr = self->ptr;
    if (ptr == NULL) return;
    self->ptr = NULL;
    PyObject *r = PyObject_CallOneArg(self->free_fn, ptr);
    if (r == NULL) PyErr_WriteUnraisable(self->free_fn);
    Py_XDECREF(r);
    Py_DECREF(ptr);
}

static int lease_enter(Lease *self) {
    if (self->closed || self->ptr == NULL) return lease_closed_error(self);
    self->busy++;
    return 0;
}

static void lease_leave(Lease *self) {
    self->busy--;
    if (self->closed && self->busy == 0) {
        /* The free runs Python code (cffi); keep the caller's exception, if any, intact. */
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        lease_free_now(self);
        PyErr_Restore(t, v, tb);
    }
}

static int Lease_init(Lease *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"handle", "free", "exc_type", "message", NULL};
    PyObject *ptr, *free_fn, *exc_type, *message;
    if (self->ptr != NULL || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "Lease already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOU", kwlist, &ptr, &free_fn, &exc_type,
                                     &message))
        return -1;
    if (!PyCallable_Check(free_fn) || !PyExceptionClass_Check(exc_type)) {
        PyErr_SetString(PyExc_TypeError, "Lease(handle, free: callable, exc_type, message: str)");
        return -1;
    }
    Py_INCREF(ptr);
    self->ptr = ptr;
    Py_INCREF(free_fn);
    Py_XSETREF(self->free_fn, free_fn);
    Py_INCREF(exc_type);
    Py_XSETREF(self->exc_type, exc_type);
    Py_INCREF(message);
    Py_XSETREF(self->message, message);
    return 0;
}

static int Lease_traverse(Lease *self, visitproc visit, void *arg) {
    Py_VISIT(self->free_fn);
    Py_VISIT(self->exc_type);
    Py_VISIT(self->message);
    return 0;
}

static void Lease_dealloc(Lease *self) {
    PyObject_GC_UnTrack(self);
    /* Nobody can be inside a call: each holds a reference. */
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    lease_free_now(self);
    PyErr_Restore(t, v, tb);
    Py_CLEAR(self->free_fn);
    Py_CLEAR(self->exc_type);
    Py_CLEAR(self->message);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* call(fn, *args) -> fn(handle, *args), with the handle kept alive while fn runs */
static PyObject *Lease_call(Lease *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call(fn, *args)");
        return NULL;
    }
    if (lease_enter(self) < 0) return NULL;
    PyObject *small[8];
    PyObject **argv = small;
    if (nargs > 8) {
        argv = PyMem_Malloc((size_t)nargs * sizeof(PyObject *));
        if (argv == NULL) {
            lease_leave(self);
            return PyErr_NoMemory();
        }
    }
    argv[0] = self->ptr;
    for (Py_ssize_t i = 1; i < nargs; i++) argv[i] = args[i];
    Py_INCREF(self); /* the free in lease_leave must not drop the last reference mid-call */
    PyObject *r = PyObject_Vectorcall(args[0], argv, (size_t)nargs, NULL);
    if (argv != small) PyMem_Free(argv);
    lease_leave(self);
    Py_DECREF(self);
    return r;
}

/* __enter__() -> the handle (ClosedError once closed); pair with __exit__ */
static PyObject *Lease_enter(Lease *self, PyObject *Py_UNUSED(ignored)) {
    if (lease_enter(self) < 0) return NULL;
    Py_INCREF(self->ptr);
    return self->ptr;
}

static PyObject *Lease_exit(Lease *self, PyObject *const *Py_UNUSED(args),
                            Py_ssize_t Py_UNUSED(nargs)) {
    if (self->busy <= 0) {
        PyErr_SetString(PyExc_RuntimeError, "Lease.__exit__ without __enter__");
        return NULL;
    }
    lease_leave(self);
    Py_RETURN_FALSE;
}

/* close(wake=None): no new calls; wake(handle) first when given (it runs as a call); frees
 * now when no call is inside, else when the last one leaves. Idempotent. */
static PyObject *Lease_close(Lease *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "close(wake=None)");
        return NULL;
    }
    if (self->closed || self->ptr == NULL) Py_RETURN_NONE;
    PyObject *wake = nargs == 1 ? args[0] : Py_None;
    PyObject *r = NULL;
    self->busy++; /* the wake call is a call on the handle like any other */
    self->closed = 1;
    Py_INCREF(self);
    if (wake != Py_None) {
        r = PyObject_CallOneArg(wake, self->ptr);
    } else {
        r = Py_None;
        Py_INCREF(r);
    }
    lease_leave(self);
    Py_DECREF(self);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *Lease_note_drop(Lease *self, PyObject *Py_UNUSED(ignored)) {
    self->drops++;
    Py_RETURN_NONE;
}

static PyObject *Lease_get_drops(Lease *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLongLong(self->drops);
}

static PyObject *Lease_get_closed(Lease *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->closed || self->ptr == NULL);
}

static PyObject *Lease_get_busy(Lease *self, void *Py_UNUSED(c)) {
    return PyLong_FromSsize_t(self->busy);
}

static PyObject *Lease_get_freed(Lease *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->ptr == NULL);
}

static PyObject *Lease_get_handle(Lease *self, void *Py_UNUSED(c)) {
    if (self->closed || self->ptr == NULL) {
        lease_closed_error(self);
        return NULL;
    }
    Py_INCREF(self->ptr);
    return self->ptr;
}

static PyMethodDef Lease_methods[] = {
    {"call", (PyCFunction)(void (*)(void))Lease_call, METH_FASTCALL,
     "call(fn, *args) -> fn(handle, *args), the handle kept alive meanwhile"},
    {"__enter__", (PyCFunction)Lease_enter, METH_NOARGS, "-> the handle, held until __exit__"},
    {"__exit__", (PyCFunction)(void (*)(void))Lease_exit, METH_FASTCALL, "releases the hold"},
    {"close", (PyCFunction)(void (*)(void))Lease_close, METH_FASTCALL,
     "close(wake=None): refuse new calls, wake waiters, free when the last call is out"},
    {"note_drop", (PyCFunction)Lease_note_drop, METH_NOARGS,
     "counts a permit of this object finalised without a report"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Lease_getset[] = {
    {"closed", (getter)Lease_get_closed, NULL, "whether close() was called", NULL},
    {"drops", (getter)Lease_get_drops, NULL, "permits finalised without a report", NULL},
    {"busy", (getter)Lease_get_busy, NULL, "calls inside the library now", NULL},
    {"freed", (getter)Lease_get_freed, NULL, "whether the handle was freed", NULL},
    {"handle", (getter)Lease_get_handle, NULL,
     "the handle (ClosedError once closed), for a call made while holding the lease", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject sw_LeaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "surgewall._speedups.Lease",
    .tp_basicsize = sizeof(Lease),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A library handle freed only when no call is inside it.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lease_init,
    .tp_dealloc = (destructor)Lease_dealloc,
    .tp_traverse = (traverseproc)Lease_traverse,
    .tp_methods = Lease_methods,
    .tp_getset = Lease_getset,
};
