/* futurekit.core._speedups: The fast paths of Future's public methods, and the FutureBase type.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_METHODS_H
#define FUTUREKIT_SPEEDUPS_METHODS_H

/* -- fast paths of the public methods ----------------------------------------------- */

static PyObject *
Future_c_set_result(FutureObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL) /* set_result(result=...), or a wrong call */
        return fallback(py_set_result, (PyObject *)self, args, nargs, kwnames);
    PyObject *result = args[0];
    if (get_state(self) == PENDING && self->dev == Py_None) {
        int r = fast_complete(self, DONE, result, NULL, 1);
        if (r == 1)
            Py_RETURN_NONE;
        if (r == -1)
            return NULL;
        /* 0 (already complete) and 2 (not handled): the Python method raises or runs */
    }
    else if (get_state(self) == PENDING && intact(self) && str_prepare != NULL)
        return device_set_result(self, result); /* a device future (device.h) */
    return fallback1(py_set_result, (PyObject *)self, result, 1);
}

static PyObject *
Future_c_wait(FutureObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *timeout = timeout_arg(args, nargs, kwnames);
    /* the hot path first: a done CPU future (its value field set) */
    if (timeout == Py_None && self->state == STATES[DONE] && self->dev == Py_None &&
        self->value != NULL)
        return Py_NewRef(self->value);
    if (timeout == Py_None && self->state == STATES[DONE] && !ISNONE(self->dev) &&
        intact(self) && str_sync != NULL) {
        PyObject *res = device_wait_done(self); /* a done device future (device.h) */
        if (res != NOT_HANDLED_DEV)
            return res;
    }
    if (timeout != NULL && intact(self) && ISNONE(self->dev)) {
#ifdef FK_FUTEX
        if (self->state == STATES[PENDING] && py_timed_out != NULL) {
            PyObject *res = block_wait(self, timeout);
            if (res != NOT_HANDLED)
                return res;
            if (self->state != STATES[PENDING]) /* completed: no timeout applies now */
                return fallback(py_wait, (PyObject *)self, args, 0, NULL);
        }
#endif
    }
    return fallback(py_wait, (PyObject *)self, args, nargs, kwnames);
}

static PyObject *
Future_c_value(FutureObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state == STATES[DONE] && self->value != NULL)
        return Py_NewRef(self->value);
    return fallback1(py_value, (PyObject *)self, NULL, 0);
}

static PyObject *
Future_c_done(FutureObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state == NULL) /* deleted: the AttributeError Python's done() raises */
        return PyObject_GetAttrString((PyObject *)self, "_state");
    return PyBool_FromLong(self->state != STATES[PENDING]);
}

/* Append ``reg`` to a pending future's FIFO, as _registration.register does (and
 * mark it observed). 1: done; 0: not done, nothing changed (complete, contended,
 * out of memory): the caller takes the Python path. */
static int
append_reg(FutureObject *self, PyObject *reg)
{
    PyObject *fresh = NULL;
    if (!ISNONE(self->cb1) && ISNONE(self->cbs)) {
        fresh = PyList_New(1); /* allocated before the lock: no GC under it */
        if (fresh == NULL) {
            PyErr_Clear();
            return 0;
        }
        Py_INCREF(reg);
        PyList_SET_ITEM(fresh, 0, reg);
    }
    if (!try_lock()) {
        Py_XDECREF(fresh);
        return 0;
    }
    PyObject *old = NULL;
    int done = 0;
    if (self->state == STATES[PENDING]) {
        if (ISNONE(self->cb1)) {
            old = self->cb1;
            Py_INCREF(reg);
            self->cb1 = reg;
            done = 1;
        }
        else if (ISNONE(self->cbs)) {
            if (fresh != NULL) {
                old = self->cbs;
                self->cbs = fresh;
                fresh = NULL;
                done = 1;
            }
        }
        else if (PyList_CheckExact(self->cbs)) {
            /* may grow the item array (no GC object); MemoryError: Python path */
            done = PyList_Append(self->cbs, reg) == 0;
            if (!done)
                PyErr_Clear();
        }
        if (done)
            set_observed(self);
    }
    unlock();
    Py_XDECREF(old); /* None, or NULL */
    Py_XDECREF(fresh);
    return done;
}

static PyObject *
Future_c_add_done_callback(FutureObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL && self->state == STATES[PENDING] && REGS_SET(self) &&
        PyCallable_Check(args[0]) && append_reg(self, args[0]))
        Py_RETURN_NONE;
    return fallback(py_add_done_callback, (PyObject *)self, args, nargs, kwnames);
}

/* then(callback) on a pending future with no executor and no unwrap: a blank child
 * (a device future's child gets ``dev.child()``, its plan's pending state) and the
 * link ``(callback, child, None, None)`` appended to the FIFO. */
static PyObject *
Future_c_then(FutureObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL && self->state == STATES[PENDING] && self->dev != NULL &&
        (self->dev == Py_None || str_child != NULL) && REGS_SET(self) && future_type != NULL &&
        PyCallable_Check(args[0])) {
        PyObject *child_dev = NULL;
        if (self->dev != Py_None) {
            PyObject *dev = Py_NewRef(self->dev);
            child_dev = PyObject_CallMethodNoArgs(dev, str_child);
            Py_DECREF(dev);
            if (child_dev == NULL)
                return NULL;
        }
        PyObject *child = future_type->tp_alloc(future_type, 0);
        if (child == NULL) {
            Py_XDECREF(child_dev);
            return NULL;
        }
        init_fields((FutureObject *)child);
        if (child_dev != NULL)
            Py_SETREF(((FutureObject *)child)->dev, child_dev);
        PyObject *link = PyTuple_Pack(4, args[0], child, Py_None, Py_None);
        if (link == NULL) {
            Py_DECREF(child);
            return NULL;
        }
        int done = append_reg(self, link);
        Py_DECREF(link);
        if (done)
            return child;
        Py_DECREF(child);
    }
    else if (nargs == 1 && kwnames == NULL && self->state == STATES[DONE] &&
             self->dev == Py_None && future_type != NULL && PyCallable_Check(args[0])) {
        /* a completed CPU parent, an inline callback: nobody else can see the child
         * yet, so it is filled in directly (as the Python then() does) */
        PyObject *child = future_type->tp_alloc(future_type, 0);
        if (child == NULL)
            return NULL;
        init_fields((FutureObject *)child);
        set_observed(self);
        PyObject *v = PyObject_CallOneArg(args[0], (PyObject *)self);
        if (v != NULL) {
            FutureObject *c = (FutureObject *)child;
            Py_SETREF(c->value, v);
            set_state(c, DONE);
            return child;
        }
        PyObject *val = take_exception();
        PyObject *stack[3] = {(PyObject *)self, child, val};
        PyObject *r = val == NULL ? NULL : call_python(py_fail_inline_child, stack, 3, NULL, 1);
        if (r == NULL) { /* failing the child failed: that error wins, as in Python */
            Py_XDECREF(val);
            Py_DECREF(child);
            return NULL;
        }
        Py_DECREF(r);
        if (!PyObject_TypeCheck(val, (PyTypeObject *)PyExc_Exception)) {
            raise_again(val); /* Ctrl-C and SystemExit are not swallowed */
            Py_DECREF(child);
            return NULL;
        }
        Py_DECREF(val);
        return child;
    }
    return fallback(py_then, (PyObject *)self, args, nargs, kwnames);
}

/* register_each(futures, reg): append ``reg`` to every pending input (one short lock
 * hold each, as collect_all does); returns the inputs left to the Python register()
 * (complete ones, contended ones, anything not a compiled future). */
static PyObject *
mod_register_each(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "register_each(futures: list, reg)");
        return NULL;
    }
    PyObject *futs = args[0], *reg = args[1];
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(futs); i++) {
        PyObject *f = PyList_GET_ITEM(futs, i);
        if (PyObject_TypeCheck(f, &FutureType) &&
            ((FutureObject *)f)->state == STATES[PENDING] && REGS_SET((FutureObject *)f)) {
            Py_INCREF(f);
            int done = append_reg((FutureObject *)f, reg);
            Py_DECREF(f);
            if (done)
                continue;
        }
        if (PyList_Append(rest, f) < 0) {
            Py_DECREF(rest);
            return NULL;
        }
    }
    return rest;
}

static PyMethodDef Future_methods[] = {
    /* the public names: _future._accelerate() puts these on Future in front of the
     * Python methods (the reference, documented in _future.py), which they fall back to */
    {"set_result", (PyCFunction)(void (*)(void))Future_c_set_result,
     METH_FASTCALL | METH_KEYWORDS,
     "set_result($self, /, result)\n--\n\n"
     "Complete the future with ``result``; waiters wake, then callbacks run here.\n"
     "Raises InvalidStateError if already complete. (Compiled fast path of\n"
     "futurekit.Future.set_result.)"},
    {"wait", (PyCFunction)(void (*)(void))Future_c_wait, METH_FASTCALL | METH_KEYWORDS,
     "wait($self, /, timeout=None)\n--\n\n"
     "Block until complete (GIL released), synchronize device streams, return the\n"
     "value or raise the error; TimeoutError after ``timeout`` seconds. (Compiled fast\n"
     "path of futurekit.Future.wait.)"},
    {"value", (PyCFunction)Future_c_value, METH_NOARGS,
     "value($self, /)\n--\n\n"
     "The result without blocking; raises the error, or InvalidStateError if pending.\n"
     "(Compiled fast path of futurekit.Future.value.)"},
    {"done", (PyCFunction)Future_c_done, METH_NOARGS,
     "done($self, /)\n--\n\nWhether the future has completed (value, error or cancellation)."},
    {"add_done_callback", (PyCFunction)(void (*)(void))Future_c_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS,
     "add_done_callback($self, /, callback)\n--\n\n"
     "Run ``callback(self)`` on completion, or at once if complete; its errors are\n"
     "logged. (Compiled fast path of futurekit.Future.add_done_callback.)"},
    {"then", (PyCFunction)(void (*)(void))Future_c_then, METH_FASTCALL | METH_KEYWORDS,
     "then($self, /, callback, *, executor=None, unwrap=False)\n--\n\n"
     "A child future completed with ``callback(self)``. (Compiled fast path of\n"
     "futurekit.Future.then.)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Future_members[] = {
    {"_state", T_OBJECT_EX, offsetof(FutureObject, state), 0, NULL},
    {"_observed", T_OBJECT_EX, offsetof(FutureObject, observed), 0, NULL},
    {"_value", T_OBJECT_EX, offsetof(FutureObject, value), 0, NULL},
    {"_cb1", T_OBJECT_EX, offsetof(FutureObject, cb1), 0, NULL},
    {"_cbs", T_OBJECT_EX, offsetof(FutureObject, cbs), 0, NULL},
    {"_rm", T_OBJECT_EX, offsetof(FutureObject, rm), 0, NULL},
    {"_waiters", T_OBJECT_EX, offsetof(FutureObject, waiters), 0, NULL},
    {"_dev", T_OBJECT_EX, offsetof(FutureObject, dev), 0, NULL},
    {"_guard", T_OBJECT_EX, offsetof(FutureObject, guard), 0, NULL},
    {"__weakref__", T_OBJECT, offsetof(FutureObject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject FutureType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "futurekit.core._speedups.FutureBase",
    .tp_basicsize = sizeof(FutureObject),
    .tp_dealloc = (destructor)Future_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The state every future carries (compiled); see futurekit.Future.",
    .tp_traverse = (traverseproc)Future_traverse,
    .tp_clear = (inquiry)Future_clear,
    .tp_weaklistoffset = offsetof(FutureObject, weakreflist),
    .tp_methods = Future_methods,
    .tp_members = Future_members,
    .tp_init = (initproc)Future_init,
    .tp_new = Future_new,
};

#endif /* FUTUREKIT_SPEEDUPS_METHODS_H */
