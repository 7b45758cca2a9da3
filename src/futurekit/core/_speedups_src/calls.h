/* futurekit.core._speedups: Calling back into the Python core (fallbacks, head-room) and waking waiters.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_CALLS_H
#define FUTUREKIT_SPEEDUPS_CALLS_H

/* Recursion budget left on this thread (Python frames and C calls alike). */
static inline int
recursion_left(void)
{
    PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030E0000
    return ts->py_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030C0000
    return ts->py_recursion_remaining < ts->c_recursion_remaining ? ts->py_recursion_remaining
                                                                  : ts->c_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030B0000
    return ts->recursion_remaining;
#else /* 3.10 */
    return Py_GetRecursionLimit() - ts->recursion_depth;
#endif
}

/* A fast path that falls back adds a C call to the Python one: near the limit the
 * fallback gets this much more limit, so the accelerator never takes head-room a
 * callback would have had with the pure-Python core (which grants the same). */
#define FALLBACK_HEADROOM 64
/* At most this much extra limit for one run (as _trampoline.MAX_BUMP): beyond it a
 * RecursionError is an error. */
#define MAX_BUMP (4 * FALLBACK_HEADROOM)

static inline int
bump_if_near_limit(void)
{
    if (recursion_left() >= FALLBACK_HEADROOM / 2)
        return 0;
    Py_SetRecursionLimit(Py_GetRecursionLimit() + FALLBACK_HEADROOM);
    return FALLBACK_HEADROOM;
}

static inline void
unbump(int extra)
{
    if (extra)
        Py_SetRecursionLimit(Py_GetRecursionLimit() - extra);
}

/* Call a Python function of the core (a fallback) with a vectorcall argument vector.
 * ``completes``: the call completes a future, and the Python path under a compiled
 * method is three calls deeper than the pure core's: near the recursion limit it gets
 * the head-room (a registration or a read fails at its entry, before any effect, as
 * in the pure core). */
static PyObject *
call_python(PyObject *fn, PyObject *const *stack, Py_ssize_t nargs, PyObject *kwnames,
            int completes)
{
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "futurekit._speedups is not configured");
        return NULL;
    }
    int extra = completes ? bump_if_near_limit() : 0;
    PyObject *res = PyObject_Vectorcall(fn, stack, (size_t)nargs, kwnames);
    unbump(extra);
    return res;
}

/* fn(self) or fn(self, arg) (arg may be NULL). */
static PyObject *
fallback1(PyObject *fn, PyObject *self, PyObject *arg, int completes)
{
    PyObject *stack[2] = {self, arg};
    return call_python(fn, stack, arg == NULL ? 1 : 2, NULL, completes);
}

/* fn(self, *args, **kwnames): a method's own arguments, passed on to its Python form
 * (which raises the pure-Python core's TypeError for a wrong call, however long). */
static PyObject *
fallback(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    PyObject *small[8];
    PyObject **stack = small;
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    if (total + 1 > 8) {
        stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    stack[0] = self;
    for (Py_ssize_t i = 0; i < total; i++)
        stack[i + 1] = args[i];
    PyObject *res = call_python(fn, stack, nargs + 1, kwnames, 0);
    if (stack != small)
        PyMem_Free(stack);
    return res;
}

/* Release every waiter of a completed future (each is a threading.Lock held by
 * its wait()); one released already (a retry) raises RuntimeError: ignored. */
static int
wake(PyObject *waiters)
{
    Py_ssize_t pos = 0;
    PyObject *key, *waiter;
    int failed = 0;
    if (!PyDict_Check(waiters))
        return 0;
    while (PyDict_Next(waiters, &pos, &key, &waiter)) {
#ifdef FK_FUTEX
        if (Py_TYPE(waiter) == &WaiterType) {
            waiter_wake((WaiterObject *)waiter); /* the dict is ours: detached from the future */
            continue;
        }
#endif
        Py_INCREF(waiter);
        PyObject *res = PyObject_CallMethodNoArgs(waiter, str_release);
        Py_DECREF(waiter);
        if (res != NULL) {
            Py_DECREF(res);
        }
        else if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            PyErr_Clear();
        }
        else {
            failed = 1; /* cannot happen with threading.Lock; keep waking the rest */
            PyErr_Clear();
        }
    }
    return failed ? -1 : 0;
}

#endif /* FUTUREKIT_SPEEDUPS_CALLS_H */
