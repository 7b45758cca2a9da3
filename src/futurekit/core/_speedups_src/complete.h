/* futurekit.core._speedups: complete(): publish an outcome and run the registrations.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_COMPLETE_H
#define FUTUREKIT_SPEEDUPS_COMPLETE_H

/* -- complete() --------------------------------------------------------------------------- */

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

/* Every field is set (``del fut._value`` and the like empty a field: the Python path
 * then raises the AttributeError the pure-Python core raises). The hot paths check
 * only the fields they read (REGS_SET, COMPLETE_FIELDS_SET), the others all of them. */
static inline int
intact(FutureObject *f)
{
    return f->state != NULL && f->observed != NULL && f->value != NULL && f->cb1 != NULL &&
           f->cbs != NULL && f->rm != NULL && f->waiters != NULL && f->dev != NULL &&
           f->guard != NULL;
}

/* The fields a registration reads (state and dev are compared to non-NULL objects). */
#define REGS_SET(f) ((f)->cb1 != NULL && (f)->cbs != NULL)
/* The fields complete() reads, as the Python complete() reads them. */
#define COMPLETE_FIELDS_SET(f) (REGS_SET(f) && (f)->rm != NULL && (f)->waiters != NULL)

/* Publish a device future's DeviceState with its outcome (under the lock, as the Python
 * complete() does); returns the state it replaces (the plan's shared pending one), to be
 * released after the lock. NULL for a CPU future or no new state. */
static inline PyObject *
publish_dev(FutureObject *self, PyObject *prepared)
{
    if (prepared == NULL)
        return NULL;
    PyObject *old = self->dev;
    self->dev = Py_NewRef(prepared);
    return old;
}

/* complete(..., run=False) of a future with registrations (a then-child completed by
 * the Python drain): publish, and push the registrations as one batch
 * ``[fut, -1, first, rest, 0, removable]`` on this thread's pending stack, inside the
 * same critical section, exactly as the Python complete() does; the caller's drain
 * takes them next. Same results as fast_complete. */
static int
fast_hand_over(FutureObject *self, int state, PyObject *value, PyObject *prepared)
{
    PyObject *st = thread_state();
    if (st == NULL)
        return PyErr_Occurred() ? -1 : 2;
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
    PyObject *old_value = NULL, *waiters = NULL, *old_dev = NULL;
    if (try_lock()) {
        if (get_state(self) != PENDING) {
            result = 0;
        }
        else if (!ISNONE(self->cb1) || !ISNONE(self->rm)) {
            old_dev = publish_dev(self, prepared);
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
    Py_XDECREF(old_dev);
    if (!ISNONE(waiters))
        wake(waiters);
    Py_XDECREF(waiters);
    return result;
}

/* complete(): publish state/value (and, for a device future, ``prepared``: the
 * DeviceState with its events, or NULL to keep the pending one), wake waiters, run the
 * registrations here, in order (FIFO, then the removable ones). Returns 1 (completed),
 * 0 (already complete), -1 (an exception: an interrupt a callback raised, after every
 * registration ran; or one raised before anything was done), or 2: not handled, the
 * caller must take the Python path (nothing was changed). */
static int
fast_complete(FutureObject *self, int state, PyObject *value, PyObject *prepared, int run)
{
    PyObject *st = NULL, *pending = NULL;
    long depth = 0;
    if (self->dev == NULL || !COMPLETE_FIELDS_SET(self))
        return 2;
    if (self->dev == Py_None && prepared != NULL)
        return 2; /* a DeviceState for a CPU future: the Python path */
    int has_regs = !ISNONE(self->cb1) || !ISNONE(self->rm);
    if (has_regs && !run)
        return fast_hand_over(self, state, value, prepared);
    if (has_regs) {
        if (!headroom_ok(PyThreadState_Get()))
            return 2;
        st = thread_state();
        if (st == NULL) /* the Python path makes it (and raises what it raises) */
            return PyErr_Occurred() ? -1 : 2;
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
    PyObject *old_dev = publish_dev(self, prepared);
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
    Py_XDECREF(old_dev);
    if (!ISNONE(waiters))
        wake(waiters);
    Py_XDECREF(waiters);
    if (st == NULL) { /* no registrations: the three fields held None */
        Py_XDECREF(cb1);
        Py_XDECREF(cbs);
        Py_XDECREF(rm);
        return 1;
    }
    PyObject *interrupt = NULL;
    ThreadStateObject *ts = (ThreadStateObject *)st;
    DispatchFrame fr = {ts->frames, (PyObject *)self, cb1, cbs, rm, NULL, 0,
                        PyList_GET_SIZE(pending), 0, ts->flushes};
    ts->frames = &fr;
    set_depth(st, depth + 1);
    PyObject *reg;
    while ((reg = next_registration(&fr, &interrupt)) != NULL) {
        dispatch(st, depth, &fr, reg, &interrupt);
        Py_DECREF(reg);
    }
    /* a wait inside a callback may have spilled the rest onto the stack */
    if (PyList_GET_SIZE(pending) > frame_mark(st, &fr))
        drain_above(st, depth, &fr, &interrupt);
    ts->frames = fr.outer;
    Py_XDECREF(fr.rm_values);
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
