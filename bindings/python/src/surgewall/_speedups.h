/*
 * What the two halves of surgewall._speedups share: the failure policy (which exceptions
 * count as failures) and the way a status becomes a Python exception.
 *
 * _speedups.c holds the module, the named breaker's Core and Guarded; _keyed_core.c the
 * keyed breaker's KeyedCore. Both call libsurgewall with the GIL held (a cffi call would drop
 * and re-take it, ~100 ns); neither holds policy of its own.
 */
#ifndef SURGEWALL_SPEEDUPS_H
#define SURGEWALL_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "surgewall.h"

/* Which exceptions are failures: those matching `include`, not matching `exclude`, for which
 * `predicate(exc)` (None: always) is true. Anything not an Exception (CancelledError,
 * KeyboardInterrupt, SystemExit) is ignored. */
typedef struct {
    PyObject *include;   /* tuple of exception types */
    PyObject *exclude;   /* tuple of exception types */
    PyObject *predicate; /* None or callable(exc) -> bool */
} sw_policy;

/* Takes references to the three; -1 with TypeError when predicate is neither None nor
 * callable. */
int sw_policy_set(sw_policy *p, PyObject *include, PyObject *exclude, PyObject *predicate);
int sw_policy_traverse(sw_policy *p, visitproc visit, void *arg);
void sw_policy_clear(sw_policy *p);

/* Parses a core's constructor arguments (handle, include, exclude, predicate[, name]): sets
 * the policy and *name (a new reference, released first) and returns the handle in *h;
 * -1 with an exception set. */
int sw_core_args(PyObject *args, PyObject *kwds, uint64_t *h, sw_policy *policy,
                 PyObject **name);

/* The surgewall_outcome an exception stands for (NULL: no exception, ignored). Called with no
 * exception set; a predicate that raises is reported as unraisable and counts a failure. */
int sw_outcome_of(const sw_policy *p, PyObject *exc);

/* Sets the exception the Python factory makes for `status` (-1: the handle was freed) and
 * returns -1. `name` names the breaker, `key` the key of a keyed one (NULL: none). */
int sw_raise(int status, uint64_t retry_after_ns, PyObject *name, PyObject *key);

/* A Python int as a uint64_t: 0, or -1 with OverflowError / TypeError set. */
int sw_u64(PyObject *o, uint64_t *out);

extern PyTypeObject sw_KeyedCoreType;
extern PyTypeObject sw_LeaseType;

#endif
