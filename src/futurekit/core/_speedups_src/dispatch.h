/* futurekit.core._speedups: The thread's dispatch state: running completions, spill(), drains.
 * Part of one translation unit: included by _speedups.c, in order.
 *
 * The registrations a compiled completion detached are held by its DispatchFrame, in C,
 * from the moment they leave the future until each has been called: C code runs no
 * eval loop, so no interrupt can arrive between two of its statements, and nothing is
 * lost. A blocking wait inside one of the callbacks first runs everything queued on its
 * thread, these registrations included: spill() moves them onto the pending stack,
 * where the Python drain of that wait finds them. drain() is the Python drain, called
 * again in C until nothing is left: an interrupt cannot leave work behind. */
#ifndef FUTUREKIT_SPEEDUPS_DISPATCH_H
#define FUTUREKIT_SPEEDUPS_DISPATCH_H

/* This thread's ThreadState (_trampoline.state()), cached in the thread-state dict.
 * NULL with no error set: the Python path decides (it does not exist yet and cannot be
 * made here). NULL with an error set: an interrupt raised while it was being made
 * (never swallowed: the caller raises it, nothing done). */
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
        PyObject *val = take_exception();
        if (val != NULL && !is_exception(val)) {
            raise_again(val); /* Ctrl-C at the thread's first use of the core */
            return NULL;
        }
        Py_XDECREF(val);
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


/* -- the dispatch frame and spill() ------------------------------------------------------- */

struct dispatch_frame {
    DispatchFrame *outer; /* the next running compiled completion further out, or NULL */
    PyObject *fut;        /* the completed future (borrowed: fast_complete holds it) */
    PyObject *cb1;        /* the detached registrations (owned by fast_complete) */
    PyObject *cbs;
    PyObject *rm;
    PyObject *rm_values; /* list(rm.values()) once they run (owned here) */
    Py_ssize_t next;     /* the next index in cbs (phase 1) or rm_values (phase 2) */
    Py_ssize_t mark;     /* where this completion's batch stands on the pending stack */
    int phase;           /* 0: cb1 next, 1: cbs, 2: rm_values, 3: nothing left here */
    Py_ssize_t flushes;  /* the thread's flushes when it started */
};

/* The frame's mark: 0 (all of the stack) once a wait inside ran the whole stack, as
 * the Python drain's (everything on the stack since is this completion's work). */
static inline Py_ssize_t
frame_mark(PyObject *st, DispatchFrame *fr)
{
    if (fr->mark != 0 && ((ThreadStateObject *)st)->flushes != fr->flushes)
        fr->mark = 0;
    return fr->mark;
}

/* Take the next registration (a new reference), or NULL when none is left. Each is
 * claimed (the position moves past it) before it is called, as in the Python drain. */
static PyObject *
next_registration(DispatchFrame *fr, PyObject **interrupt)
{
    for (;;) {
        switch (fr->phase) {
        case 0:
            /* most futures have one registration: nothing after it, no more visits */
            fr->phase = PyList_CheckExact(fr->cbs) ? 1 : PyDict_CheckExact(fr->rm) ? 2 : 3;
            if (!ISNONE(fr->cb1))
                return Py_NewRef(fr->cb1);
            break;
        case 1:
            if (PyList_CheckExact(fr->cbs) && fr->next < PyList_GET_SIZE(fr->cbs))
                return Py_NewRef(PyList_GET_ITEM(fr->cbs, fr->next++));
            fr->phase = 2; /* the any-of combinators' and await's, after the FIFO */
            fr->next = 0;
            break;
        case 2:
            if (fr->rm_values == NULL) {
                if (!PyDict_CheckExact(fr->rm)) {
                    fr->phase = 3;
                    break;
                }
                fr->rm_values = PyDict_Values(fr->rm);
                if (fr->rm_values == NULL) { /* out of memory: said loudly, at the end */
                    record(interrupt, take_exception());
                    fr->phase = 3;
                    break;
                }
            }
            if (fr->next < PyList_GET_SIZE(fr->rm_values))
                return Py_NewRef(PyList_GET_ITEM(fr->rm_values, fr->next++));
            fr->phase = 3;
            break;
        default:
            return NULL;
        }
    }
}

/* The registrations ``fr`` has not run yet, as a batch of the pending stack
 * ``[fut, -1, first, rest, index, removable]``; None if there are none. */
static PyObject *
leftover_batch(DispatchFrame *fr)
{
    PyObject *first = Py_None, *rest = Py_None, *removable = Py_None;
    Py_ssize_t index = 0;
    if (fr->phase == 0) {
        first = ISNONE(fr->cb1) ? Py_None : fr->cb1;
        rest = PyList_CheckExact(fr->cbs) ? fr->cbs : Py_None;
        removable = PyDict_CheckExact(fr->rm) ? fr->rm : Py_None;
    }
    else if (fr->phase == 1) {
        rest = PyList_CheckExact(fr->cbs) ? fr->cbs : Py_None;
        index = fr->next;
        removable = PyDict_CheckExact(fr->rm) ? fr->rm : Py_None;
    }
    else if (fr->phase == 2) {
        if (fr->rm_values != NULL) {
            rest = fr->rm_values;
            index = fr->next;
        }
        else {
            removable = PyDict_CheckExact(fr->rm) ? fr->rm : Py_None;
        }
    }
    if (first == Py_None && rest == Py_None && removable == Py_None)
        return Py_NewRef(Py_None);
    return Py_BuildValue("[OnOOnO]", fr->fut, (Py_ssize_t)-1, first, rest, index, removable);
}

/* spill(st): a blocking wait is about to run everything queued on this thread; the
 * registrations that compiled completions running on it still hold go onto the
 * pending stack first, each where its completion's batch stands (the Python drain's
 * order: the innermost on top). Their frames then leave the rest to the Python drain.
 * Returns whether anything was moved. */
static PyObject *
mod_spill(PyObject *mod, PyObject *arg)
{
    if (Py_TYPE(arg) != &ThreadStateType)
        Py_RETURN_FALSE;
    ThreadStateObject *ts = (ThreadStateObject *)arg;
    PyObject *pending = ts->pending;
    if (ts->frames == NULL || pending == NULL || !PyList_CheckExact(pending))
        Py_RETURN_FALSE;
    Py_ssize_t count = 0;
    for (DispatchFrame *fr = ts->frames; fr != NULL; fr = fr->outer)
        count++;
    DispatchFrame **frames = PyMem_Malloc(count * sizeof(DispatchFrame *));
    if (frames == NULL)
        return PyErr_NoMemory();
    Py_ssize_t i = count;
    for (DispatchFrame *fr = ts->frames; fr != NULL; fr = fr->outer)
        frames[--i] = fr; /* outermost first */
    Py_ssize_t inserted = 0;
    int moved = 0;
    for (i = 0; i < count; i++) {
        DispatchFrame *fr = frames[i];
        Py_ssize_t at = fr->mark + inserted;
        if (at > PyList_GET_SIZE(pending))
            at = PyList_GET_SIZE(pending);
        fr->mark = at; /* a batch inserted further down moved this one up */
        if (fr->phase == 3)
            continue;
        PyObject *batch = leftover_batch(fr);
        if (batch == NULL) {
            PyMem_Free(frames);
            return NULL;
        }
        if (batch != Py_None) {
            if (PyList_Insert(pending, at, batch) < 0) {
                Py_DECREF(batch);
                PyMem_Free(frames);
                return NULL;
            }
            inserted++;
            moved = 1;
        }
        Py_DECREF(batch);
        fr->phase = 3; /* from now on the Python drain runs them, from fr->mark up */
    }
    PyMem_Free(frames);
    return PyBool_FromLong(moved);
}

/* -- draining what callbacks deferred --------------------------------------------------- */

/* Run, with the Python drain, what is queued on this thread's stack above ``fr->mark``
 * (then-links, deferred nesting, a spilled batch), at the depth the Python drain loop of
 * this completion would have; again until it is all done (an interrupt at the drain's
 * entry leaves it there). A RecursionError of the drain itself (out of stack even with
 * its extra limit) gets more limit, then ends it, raised at the end. */
static void
drain_above(PyObject *st, long depth, DispatchFrame *fr, PyObject **interrupt)
{
    PyObject *pending = ((ThreadStateObject *)st)->pending;
    int bumped = 0;
    while (PyList_GET_SIZE(pending) > frame_mark(st, fr)) {
        set_depth(st, depth);
        PyObject *m = PyLong_FromSsize_t(fr->mark);
        PyObject *res = m == NULL ? NULL : PyObject_CallFunctionObjArgs(py_drain, st, m, NULL);
        Py_XDECREF(m);
        set_depth(st, depth + 1);
        if (res != NULL) {
            Py_DECREF(res);
            continue;
        }
        PyObject *val = take_exception(); /* the Python drain raises only interrupts */
        if (val == NULL || !is_exception(val)) {
            record(interrupt, val);
            continue;
        }
        if (Py_IS_TYPE(val, (PyTypeObject *)PyExc_RecursionError) && bumped < MAX_BUMP) {
            Py_DECREF(val);
            Py_SetRecursionLimit(Py_GetRecursionLimit() + FALLBACK_HEADROOM);
            bumped += FALLBACK_HEADROOM;
            continue;
        }
        record(interrupt, val); /* cannot happen but out of memory: said loudly */
        break;
    }
    unbump(bumped);
}

/* drain(st, mark) for the Python core's own callers (complete, run_now, a wait's
 * leftovers): the Python drain, called again until nothing is left above ``mark`` (the
 * whole stack for 0). An interrupt escaping the Python drain at its one unguarded point
 * (the back edge of its retry loop, or its entry) leaves work on the stack; this loop,
 * in C, has no such point, so with the accelerator nothing is ever left behind. The
 * first interrupt is raised once the work is done; a RecursionError gets more limit. */
static PyObject *
mod_drain(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || Py_TYPE(args[0]) != &ThreadStateType || !PyLong_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "drain(thread_state: ThreadState, mark: int)");
        return NULL;
    }
    PyObject *st = args[0];
    Py_ssize_t mark = PyLong_AsSsize_t(args[1]);
    if (mark == -1 && PyErr_Occurred())
        return NULL;
    PyObject *pending = ((ThreadStateObject *)st)->pending;
    if (pending == NULL || !PyList_CheckExact(pending) || py_drain == NULL)
        return call_python(py_drain, args, nargs, NULL, 0);
    Py_INCREF(pending);
    PyObject *interrupt = NULL;
    int bumped = 0;
    Py_ssize_t flushes = ((ThreadStateObject *)st)->flushes;
    PyObject *call[2] = {st, args[1]};
    do {
        if (mark != 0 && ((ThreadStateObject *)st)->flushes != flushes) {
            mark = 0; /* a wait ran the whole stack: all on it is ours (as in drain) */
            call[1] = STATES[PENDING]; /* the int 0 */
        }
        PyObject *res = PyObject_Vectorcall(py_drain, call, 2, NULL);
        if (res != NULL) {
            Py_DECREF(res);
            continue;
        }
        PyObject *val = take_exception();
        if (val != NULL && Py_IS_TYPE(val, (PyTypeObject *)PyExc_RecursionError) &&
            bumped < MAX_BUMP) {
            Py_DECREF(val);
            Py_SetRecursionLimit(Py_GetRecursionLimit() + FALLBACK_HEADROOM);
            bumped += FALLBACK_HEADROOM;
            continue;
        }
        if (val == NULL || !is_exception(val)) {
            record(&interrupt, val);
            continue;
        }
        record(&interrupt, val); /* out of stack even so (or memory): raised, work kept */
        break;
    } while (PyList_GET_SIZE(pending) > mark);
    unbump(bumped);
    Py_DECREF(pending);
    if (interrupt != NULL) {
        raise_again(interrupt);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Run one registration of a completed future from fast_complete's loop, then the
 * work it deferred on this thread's stack. A then-link (a tuple), and a device
 * future's user callback (run under the callback streams), go to the Python drain as
 * a batch of their own, exactly as the Python loop would run them next (a child's
 * registrations are pushed above it and drained in the same call). */
static void
dispatch(PyObject *st, long depth, DispatchFrame *fr, PyObject *reg, PyObject **interrupt)
{
    PyObject *dev = ((FutureObject *)fr->fut)->dev; /* read per registration, as in Python */
    if (!PyTuple_CheckExact(reg) &&
        (ISNONE(dev) ||
         (py_internal != NULL && PyObject_TypeCheck(reg, (PyTypeObject *)py_internal)))) {
        run_one(fr->fut, reg, interrupt);
    }
    else {
        PyObject *pending = ((ThreadStateObject *)st)->pending;
        PyObject *batch = Py_BuildValue("[OiOOiO]", fr->fut, -1, reg, Py_None, 0, Py_None);
        if (batch == NULL || PyList_Append(pending, batch) < 0) {
            /* out of memory: the link cannot be handed over; say so loudly, never
             * silently (its child stays pending) */
            Py_XDECREF(batch);
            record(interrupt, take_exception());
            return;
        }
        Py_DECREF(batch);
    }
    if (PyList_GET_SIZE(((ThreadStateObject *)st)->pending) > frame_mark(st, fr))
        drain_above(st, depth, fr, interrupt);
}


#endif /* FUTUREKIT_SPEEDUPS_DISPATCH_H */
