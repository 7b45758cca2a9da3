/* futurekit.core._speedups: wait() on a pending CPU future, blocked on a futex Waiter.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_WAIT_H
#define FUTUREKIT_SPEEDUPS_WAIT_H

#ifdef FK_FUTEX
static int not_handled_marker;
#define NOT_HANDLED ((PyObject *)&not_handled_marker)

/* wait() on a pending CPU future, blocking on a Waiter. Returns the value, NULL with
 * an error (the future's, a timeout, an interrupt), or NOT_HANDLED: the Python wait()
 * (a timeout to validate, a poll, leftovers on this thread's stack, ...). */
static PyObject *
block_wait(FutureObject *self, PyObject *timeout)
{
    int64_t deadline = -1;
    double seconds = 0;
    if (timeout != NULL && timeout != Py_None) {
        if (PyFloat_CheckExact(timeout)) {
            seconds = PyFloat_AS_DOUBLE(timeout);
        }
        else if (PyLong_CheckExact(timeout)) {
            seconds = PyLong_AsDouble(timeout);
            if (seconds == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return NOT_HANDLED;
            }
        }
        else {
            return NOT_HANDLED;
        }
        if (!(seconds > 0) || seconds > 1e9) /* a poll, NaN, negative, huge: Python */
            return NOT_HANDLED;
        deadline = now_ns() + (int64_t)(seconds * 1e9);
    }
    PyObject *st = thread_state();
    if (st == NULL) /* an interrupt at the thread's first use is raised, never swallowed */
        return PyErr_Occurred() ? NULL : NOT_HANDLED;
    PyObject *pending = ((ThreadStateObject *)st)->pending;
    int leftovers = pending == NULL || !PyList_CheckExact(pending) ||
                    PyList_GET_SIZE(pending) || ((ThreadStateObject *)st)->frames != NULL;
    Py_DECREF(st);
    if (leftovers) /* work queued on this thread runs first (it may complete this future),
                    * registrations held by a running completion included: Python */
        return NOT_HANDLED;
    /* allocate before the lock: the waiter, its key, a dict for it */
    WaiterObject *w = PyObject_New(WaiterObject, &WaiterType);
    if (w == NULL)
        return NULL;
    atomic_init(&w->word, 0);
    PyObject *key = PyLong_FromVoidPtr(w);
    PyObject *fresh = PyDict_New();
    if (key == NULL || fresh == NULL || PyDict_SetItem(fresh, key, (PyObject *)w) < 0) {
        Py_XDECREF(key);
        Py_XDECREF(fresh);
        Py_DECREF(w);
        return NULL;
    }
    int registered = 0, complete_now = 0;
    PyObject *old = NULL;
    lock_blocking();
    if (get_state(self) != PENDING) {
        complete_now = 1;
    }
    else if (ISNONE(self->waiters)) {
        old = self->waiters;
        self->waiters = fresh;
        fresh = NULL;
        registered = 1;
    }
    else if (PyDict_CheckExact(self->waiters)) {
        /* an int key: no Python code; growing the table allocates no GC object */
        registered = PyDict_SetItem(self->waiters, key, (PyObject *)w) == 0;
    }
    unlock();
    Py_XDECREF(old);
    Py_XDECREF(fresh);
    int r = 1;
    if (registered) {
        r = waiter_block(w, &self->state, STATES[PENDING], deadline);
        if (r != 1) { /* timed out or interrupted: take the waiter back */
            PyObject *type, *val, *tb;
            PyErr_Fetch(&type, &val, &tb);
            lock_blocking();
            if (PyDict_CheckExact(self->waiters) && PyDict_Contains(self->waiters, key) == 1)
                PyDict_DelItem(self->waiters, key); /* we hold both: nothing dies here */
            unlock();
            PyErr_Restore(type, val, tb);
            if (r == 0 && get_state(self) != PENDING)
                r = 1; /* completed as the time ran out: the outcome, as the Python wait */
        }
    }
    Py_DECREF(key);
    Py_DECREF(w);
    if (!registered && !complete_now) {
        PyErr_Clear();
        return NOT_HANDLED;
    }
    if (r < 0)
        return NULL;
    if (r == 0) {
        PyObject *secs = PyFloat_FromDouble(seconds);
        if (secs != NULL) {
            PyObject *res = PyObject_CallOneArg(py_timed_out, secs); /* raises */
            Py_XDECREF(res);
            Py_DECREF(secs);
        }
        return NULL;
    }
    /* recursion limit a frame at the limit could not take back (see _trampoline) */
    if (late_limit != NULL && PyList_GET_SIZE(late_limit) == 2 &&
        PyList_GET_ITEM(late_limit, 1) != STATES[0]) {
        PyObject *r = PyObject_CallNoArgs(py_fix_limit);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    if (self->state == STATES[DONE] && ISNONE(self->dev))
        return Py_NewRef(self->value);
    return NOT_HANDLED; /* failed or cancelled: the Python wait() raises the error */
}
#endif

/* wait()'s ``timeout`` given positionally or by keyword; NULL: another call (Python). */
static inline PyObject *
timeout_arg(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL)
        return nargs == 0 ? Py_None : nargs == 1 ? args[0] : NULL;
    if (nargs == 0 && PyTuple_GET_SIZE(kwnames) == 1 &&
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout") == 0)
        return args[0];
    return NULL;
}

#endif /* FUTUREKIT_SPEEDUPS_WAIT_H */
