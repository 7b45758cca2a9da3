/* futurekit.core._speedups: complete(): publish an outcome and run the registrations.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_COMPLETE_H
#define FUTUREKIT_SPEEDUPS_COMPLETE_H

/* -- running callbacks ---------------------------------------------------------------- */

/* The raised exception, normalized, its traceback attached; the error indicator is
 * cleared. NULL if none was set. */
static PyObject *
take_exception(void)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if (val != NULL && tb != NULL)
        PyException_SetTraceback(val, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return val;
}

/* Raise ``exc`` again (a reference is stolen), with its own traceback. */
static void
raise_again(PyObject *exc)
{
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}

/* Run one plain registration of a completed CPU future. Returns 0, or -1 with an
 * interrupt (a non-Exception BaseException) stored in *interrupt (the first one). */
static void
run_one(PyObject *fut, PyObject *reg, PyObject **interrupt)
{
    PyObject *res = PyObject_CallOneArg(reg, fut);
    if (res != NULL) {
        Py_DECREF(res);
        return;
    }
    PyObject *val = take_exception();
    if (val != NULL && PyObject_TypeCheck(val, (PyTypeObject *)PyExc_Exception)) {
        /* torch swallows and logs callback errors: so does futurekit */
        PyObject *r = PyObject_CallOneArg(py_report, val);
        if (r == NULL)
            PyErr_Clear(); /* reporting failed: nothing more can be done here */
        else
            Py_DECREF(r);
    }
    else if (val != NULL) {
        /* KeyboardInterrupt, SystemExit: the rest still run; raised at the end.
         * An internal callback hit by one is run again (they are idempotent). */
        if (py_internal != NULL && PyObject_TypeCheck(reg, (PyTypeObject *)py_internal)) {
            PyObject *rerun = PyObject_GetAttr(reg, str_rerun);
            int again = rerun != NULL && PyObject_IsTrue(rerun) == 1;
            Py_XDECREF(rerun);
            PyErr_Clear();
            if (again) {
                PyObject *r = PyObject_CallOneArg(reg, fut);
                if (r == NULL)
                    PyErr_Clear();
                else
                    Py_DECREF(r);
            }
        }
        if (*interrupt == NULL) {
            *interrupt = val;
            val = NULL;
        }
    }
    Py_XDECREF(val);
}

/* This thread's ThreadState (_trampoline.state()), cached in the thread-state dict;
 * NULL, with no error set, if it does not exist yet. */
static PyObject *
thread_state(void)
{
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL)
        return NULL;
    PyObject *st = PyDict_GetItemWithError(dict, key_state);
    if (st != NULL)
        return Py_NewRef(st);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return NULL;
    }
    st = PyObject_CallNoArgs(py_state);
    if (st == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (Py_TYPE(st) != &ThreadStateType) { /* not the compiled one: the Python path */
        Py_DECREF(st);
        return NULL;
    }
    if (PyDict_SetItem(dict, key_state, st) < 0)
        PyErr_Clear();
    return st;
}

/* st.depth = depth (the nesting count is only a limit: a failure to store it is
 * ignored, the callbacks run anyway). */
static inline void
set_depth(PyObject *st, long depth)
{
    ThreadStateObject *ts = (ThreadStateObject *)st;
    PyObject *d = PyLong_FromLong(depth); /* a cached small int: no allocation */
    if (d == NULL) {
        PyErr_Clear(); /* the depth is only a limit: the callbacks run anyway */
        return;
    }
    Py_XSETREF(ts->depth, d);
}

static inline long
get_depth(PyObject *st)
{
    PyObject *d = ((ThreadStateObject *)st)->depth;
    if (d == NULL || !PyLong_CheckExact(d))
        return -1;
    long v = PyLong_AsLong(d);
    if (v == -1 && PyErr_Occurred())
        PyErr_Clear();
    return v;
}

/* Run, with the Python drain, what callbacks deferred on this thread's stack above
 * ``mark``, at the depth the Python drain loop of this completion would have. */
static void
run_deferred(PyObject *st, long depth, Py_ssize_t mark, PyObject **interrupt)
{
    set_depth(st, depth);
    PyObject *m = PyLong_FromSsize_t(mark);
    PyObject *res = m == NULL ? NULL : PyObject_CallFunctionObjArgs(py_drain, st, m, NULL);
    Py_XDECREF(m);
    if (res != NULL) {
        Py_DECREF(res);
    }
    else {
        PyObject *val = take_exception(); /* the Python drain raises only interrupts */
        if (*interrupt == NULL)
            *interrupt = val;
        else
            Py_XDECREF(val);
    }
    set_depth(st, depth + 1);
}

/* Enough C stack and recursion budget to run callbacks here without the Python
 * path's retry-at-the-limit machinery. */
static int
headroom_ok(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030E0000 /* 3.14: the C stack is guarded by address, not count */
    return ts->py_recursion_remaining > 100;
#elif PY_VERSION_HEX >= 0x030C0000
    return ts->py_recursion_remaining > 100 && ts->c_recursion_remaining > 100;
#elif PY_VERSION_HEX >= 0x030B0000
    return ts->recursion_remaining > 100;
#else /* 3.10 */
    return Py_GetRecursionLimit() - ts->recursion_depth > 100;
#endif
}

/* complete() for a CPU future: publish state/value, wake waiters, run plain
 * callbacks here. Returns 1 (completed), 0 (already complete), -1 (an exception:
 * an interrupt a callback raised, after every registration ran), or 2: not
 * handled, the caller must take the Python path (nothing was changed). */
/* complete(..., run=False) of a future with registrations (a then-child completed by
 * the Python drain): publish, and push the registrations as one batch
 * ``[fut, -1, first, rest, 0, removable]`` on this thread's pending stack, inside the
 * same critical section, exactly as the Python complete() does; the caller's drain
 * takes them next. Same results as fast_complete. */
static int
fast_hand_over(FutureObject *self, int state, PyObject *value)
{
    PyObject *st = thread_state();
    if (st == NULL)
        return 2;
    PyObject *pending = ((ThreadStateObject *)st)->pending;
    Py_XINCREF(pending);
    Py_DECREF(st);
    if (pending == NULL || !PyList_CheckExact(pending)) {
        Py_XDECREF(pending);
        return 2;
    }
    PyObject *batch = PyList_New(6); /* allocated, and pushed, before the lock */
    PyObject *minus_one = PyLong_FromLong(-1), *zero = PyLong_FromLong(0);
    if (batch == NULL || minus_one == NULL || zero == NULL) {
        Py_XDECREF(batch);
        Py_XDECREF(minus_one);
        Py_XDECREF(zero);
        Py_DECREF(pending);
        PyErr_Clear();
        return 2;
    }
    Py_INCREF(self);
    PyList_SET_ITEM(batch, 0, (PyObject *)self);
    PyList_SET_ITEM(batch, 1, minus_one);
    PyList_SET_ITEM(batch, 2, Py_NewRef(Py_None));
    PyList_SET_ITEM(batch, 3, Py_NewRef(Py_None));
    PyList_SET_ITEM(batch, 4, zero);
    PyList_SET_ITEM(batch, 5, Py_NewRef(Py_None));
    /* an empty batch on the stack is harmless (a drain drops it), and nothing runs
     * on this thread before it is filled in or taken off again below */
    if (PyList_Append(pending, batch) < 0) {
        Py_DECREF(batch);
        Py_DECREF(pending);
        PyErr_Clear();
        return 2;
    }
    int result = 2;
    PyObject *old_value = NULL, *waiters = NULL;
    if (try_lock()) {
        if (get_state(self) != PENDING) {
            result = 0;
        }
        else if (!ISNONE(self->cb1) || !ISNONE(self->rm)) {
            old_value = self->value;
            Py_INCREF(value);
            self->value = value;
            set_state(self, state);
            waiters = self->waiters;
            self->waiters = Py_NewRef(Py_None);
            /* the batch's None items are immortal in effect: dropping them is no free */
            Py_DECREF(Py_None);
            PyList_SET_ITEM(batch, 2, self->cb1 == NULL ? Py_NewRef(Py_None) : self->cb1);
            Py_DECREF(Py_None);
            PyList_SET_ITEM(batch, 3, self->cbs == NULL ? Py_NewRef(Py_None) : self->cbs);
            Py_DECREF(Py_None);
            PyList_SET_ITEM(batch, 5, self->rm == NULL ? Py_NewRef(Py_None) : self->rm);
            self->cb1 = Py_NewRef(Py_None);
            self->cbs = Py_NewRef(Py_None);
            self->rm = Py_NewRef(Py_None);
            result = 1;
        }
        unlock();
    }
    if (result != 1) { /* not ours to hand over: take the empty batch back off */
        Py_ssize_t n = PyList_GET_SIZE(pending);
        if (n > 0 && PyList_GET_ITEM(pending, n - 1) == batch)
            PyList_SetSlice(pending, n - 1, n, NULL);
    }
    Py_DECREF(batch);
    Py_DECREF(pending);
    Py_XDECREF(old_value);
    if (!ISNONE(waiters))
        wake(waiters);
    Py_XDECREF(waiters);
    return result;
}

/* Run one registration of a completed CPU future from fast_complete's loop, then the
 * work it deferred on this thread's stack. A then-link (a tuple) goes to the Python
 * drain as a batch of its own, exactly as the Python loop would run it next (its
 * child's registrations are pushed above it and drained in the same call). */
static void
dispatch(PyObject *st, long depth, Py_ssize_t mark, PyObject *fut, PyObject *reg,
         PyObject **interrupt)
{
    if (!PyTuple_CheckExact(reg)) {
        run_one(fut, reg, interrupt);
    }
    else {
        PyObject *pending = ((ThreadStateObject *)st)->pending;
        PyObject *batch = Py_BuildValue("[OiOOiO]", fut, -1, reg, Py_None, 0, Py_None);
        if (batch == NULL || PyList_Append(pending, batch) < 0) {
            /* out of memory: the link cannot be handed over; say so loudly, never
             * silently (its child stays pending) */
            Py_XDECREF(batch);
            PyObject *err = take_exception();
            if (*interrupt == NULL)
                *interrupt = err;
            else
                Py_XDECREF(err);
            return;
        }
        Py_DECREF(batch);
    }
    if (PyList_GET_SIZE(((ThreadStateObject *)st)->pending) > mark)
        run_deferred(st, depth, mark, interrupt);
}

/* complete() for a CPU future: publish state/value, wake waiters, run the
 * registrations here, in order (FIFO, then the removable ones). Returns 1 (completed),
 * 0 (already complete), -1 (an exception: an interrupt a callback raised, after every
 * registration ran), or 2: not handled, the caller must take the Python path
 * (nothing was changed). */
static int
fast_complete(FutureObject *self, int state, PyObject *value, int run)
{
    PyObject *st = NULL, *pending = NULL;
    long depth = 0;
    if (!ISNONE(self->dev))
        return 2;
    int has_regs = !ISNONE(self->cb1) || !ISNONE(self->rm);
    if (has_regs && !run)
        return fast_hand_over(self, state, value);
    if (has_regs) {
        if (!headroom_ok(PyThreadState_Get()))
            return 2;
        st = thread_state();
        if (st == NULL)
            return 2; /* the Python path makes it (and raises what it raises) */
        pending = ((ThreadStateObject *)st)->pending;
        if (pending == NULL || !PyList_CheckExact(pending)) {
            Py_DECREF(st);
            return 2;
        }
        Py_INCREF(pending);
        depth = get_depth(st);
        /* deep nesting, or leftovers an outermost drain would run first: the
         * trampoline decides the order */
        if (depth < 0 || depth >= max_depth || (depth == 0 && PyList_GET_SIZE(pending) != 0)) {
            Py_DECREF(pending);
            Py_DECREF(st);
            return 2;
        }
    }
    if (!try_lock()) {
        Py_XDECREF(pending);
        Py_XDECREF(st);
        return 2;
    }
    if (get_state(self) != PENDING || (!has_regs && (!ISNONE(self->cb1) || !ISNONE(self->rm)))) {
        /* complete already, or registrations arrived since the peek (no thread state) */
        int done = get_state(self) != PENDING;
        unlock();
        Py_XDECREF(pending);
        Py_XDECREF(st);
        return done ? 0 : 2;
    }
    PyObject *old_value = self->value;
    Py_INCREF(value);
    self->value = value;
    set_state(self, state);
    PyObject *waiters = self->waiters;
    self->waiters = Py_NewRef(Py_None);
    PyObject *cb1 = self->cb1, *cbs = self->cbs, *rm = self->rm;
    self->cb1 = Py_NewRef(Py_None);
    self->cbs = Py_NewRef(Py_None);
    self->rm = Py_NewRef(Py_None);
    unlock();
    /* from here on nothing can be lost: the registrations are held here and this
     * code runs no eval loop of its own, so only the callbacks' own code can raise */
    Py_XDECREF(old_value);
    if (!ISNONE(waiters))
        wake(waiters);
    Py_XDECREF(waiters);
    if (st == NULL)
        return 1;
    PyObject *interrupt = NULL;
    PyObject *fut = (PyObject *)self;
    set_depth(st, depth + 1);
    Py_ssize_t mark = PyList_GET_SIZE(pending);
    if (!ISNONE(cb1))
        dispatch(st, depth, mark, fut, cb1, &interrupt);
    if (PyList_CheckExact(cbs)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
            PyObject *reg = PyList_GET_ITEM(cbs, i);
            Py_INCREF(reg);
            dispatch(st, depth, mark, fut, reg, &interrupt);
            Py_DECREF(reg);
        }
    }
    if (PyDict_CheckExact(rm)) { /* the any-of combinators' and await's, after the FIFO */
        PyObject *regs = PyDict_Values(rm);
        if (regs == NULL) {
            PyObject *err = take_exception();
            if (interrupt == NULL)
                interrupt = err;
            else
                Py_XDECREF(err);
        }
        else {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(regs); i++)
                dispatch(st, depth, mark, fut, PyList_GET_ITEM(regs, i), &interrupt);
            Py_DECREF(regs);
        }
    }
    Py_XDECREF(cb1);
    Py_XDECREF(cbs);
    Py_XDECREF(rm);
    Py_DECREF(pending);
    set_depth(st, depth);
    Py_DECREF(st);
    if (interrupt != NULL) {
        raise_again(interrupt);
        return -1;
    }
    return 1;
}

#endif /* FUTUREKIT_SPEEDUPS_COMPLETE_H */
