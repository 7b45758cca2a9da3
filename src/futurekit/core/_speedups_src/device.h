/* futurekit.core._speedups: the device future's fast paths (issue 17).
 * Part of one translation unit: included by _speedups.c, in order (after calls.h).
 *
 * A device future (one with a DeviceState in ``dev``) used to take every method to
 * the Python core. The device work itself stays in Python (DeviceState.prepare and
 * sync_current call the backend's bound methods); these paths only drop the Python
 * frames around it, and mirror the Python methods statement for statement:
 *
 *   Future(devices=X)   -> dev = plan_for(X, None)          (Future.__init__)
 *   set_result(v)       -> dev.prepare(v), then complete()   (Future.set_result)
 *   wait() when done    -> dev.sync_current(), the value      (Future.wait)
 *
 * Anything else (backend=, positional arguments, a re-used future, a timeout, an
 * error, a recursion limit raised late) goes to the Python method, as before. */
#ifndef FUTUREKIT_SPEEDUPS_DEVICE_H
#define FUTUREKIT_SPEEDUPS_DEVICE_H

static PyObject *py_plan_for = NULL;   /* _device_plan.plan_for (configure_devices) */
static PyObject *generation = NULL;    /* _resolver.generation: [n], bumped when plugins change */
static PyObject *by_name = NULL;       /* {"cuda:0": (n, pending state or None)}: devices=["cuda:0"] */
#define BY_NAME_MAX 256
static PyObject *str_devices = NULL;   /* interned "devices" */
static PyObject *str_prepare = NULL;   /* interned "prepare" */
static PyObject *str_sync = NULL;      /* interned "sync_current" */
static PyObject *str_child = NULL;     /* interned "child" */

/* A future nobody has used: what a fresh Future() holds. */
static inline int
is_fresh(FutureObject *self)
{
    return self->state == STATES[PENDING] && self->observed == Py_False &&
           self->value == Py_None && self->cb1 == Py_None && self->cbs == Py_None &&
           self->rm == Py_None && self->waiters == Py_None && self->dev == Py_None &&
           self->guard == Py_None;
}

/* Future(devices=X): 1 done, 0 not handled (the Python __init__ runs), -1 error. */
static int
device_init(FutureObject *self, PyObject *args, PyObject *kwds)
{
    if (py_plan_for == NULL || PyTuple_GET_SIZE(args) != 0 || kwds == NULL ||
        PyDict_GET_SIZE(kwds) != 1 || !is_fresh(self))
        return 0;
    PyObject *devices = PyDict_GetItemWithError(kwds, str_devices); /* borrowed */
    if (devices == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (devices == Py_None)
        return 1; /* a CPU future: nothing to store */
    /* devices=["cuda:0"] (one str, the common spelling): a dict lookup, valid while the
     * resolver's generation is the one it was made in (plan_for's own cache rule) */
    PyObject *name = NULL;
    if ((PyList_CheckExact(devices) || PyTuple_CheckExact(devices)) &&
        PySequence_Fast_GET_SIZE(devices) == 1 && by_name != NULL && generation != NULL &&
        PyList_CheckExact(generation) && PyList_GET_SIZE(generation) == 1) {
        PyObject *item = PySequence_Fast_GET_ITEM(devices, 0);
        if (PyUnicode_CheckExact(item)) {
            name = item;
            PyObject *hit = PyDict_GetItemWithError(by_name, name); /* borrowed */
            if (hit != NULL) {
                int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(hit, 0),
                                                    PyList_GET_ITEM(generation, 0), Py_EQ);
                if (same < 0)
                    return -1;
                if (same) {
                    PyObject *state = PyTuple_GET_ITEM(hit, 1);
                    if (state != Py_None)
                        Py_SETREF(self->dev, Py_NewRef(state));
                    return 1;
                }
            }
            else if (PyErr_Occurred()) {
                return -1;
            }
        }
    }
    PyObject *made_in = name == NULL ? NULL : Py_NewRef(PyList_GET_ITEM(generation, 0));
    PyObject *dev = PyObject_CallFunctionObjArgs(py_plan_for, devices, Py_None, NULL);
    if (dev == NULL) {
        Py_XDECREF(made_in);
        return -1;
    }
    if (name != NULL) { /* remember it, made in the generation read before the call */
        if (PyDict_GET_SIZE(by_name) >= BY_NAME_MAX)
            PyDict_Clear(by_name);
        PyObject *entry = PyTuple_Pack(2, made_in, dev);
        if (entry == NULL || PyDict_SetItem(by_name, name, entry) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(made_in);
            Py_DECREF(dev);
            return -1;
        }
        Py_DECREF(entry);
        Py_DECREF(made_in);
    }
    if (dev != Py_None)
        Py_SETREF(self->dev, dev);
    else
        Py_DECREF(dev);
    return 1;
}

static int fast_complete(FutureObject *self, int state, PyObject *value, PyObject *prepared,
                         int run);                              /* complete.h */
static PyObject *state_prepare(PyObject *state, PyObject *value); /* states.h */
static PyObject *state_sync(PyObject *state);                     /* states.h */

/* set_result(v) of a pending device future: the Python method's body, without its
 * frame; complete() in C unless it failed. Returns a new reference (None), or NULL
 * with an error. */
static PyObject *
device_set_result(FutureObject *self, PyObject *result)
{
    PyObject *dev = Py_NewRef(self->dev);
    PyObject *prepared = state_prepare(dev, result); /* dev.prepare(result) */
    Py_DECREF(dev);
    PyObject *state = STATES[DONE], *value = result;
    PyObject *exc = NULL;
    if (prepared == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return NULL; /* Ctrl-C, SystemExit: raised, as by the Python method */
        PyObject *type, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        if (tb != NULL && exc != NULL)
            PyException_SetTraceback(exc, tb); /* as ``except Exception as exc`` sees it */
        Py_XDECREF(type);
        Py_XDECREF(tb);
        if (exc == NULL)
            return NULL;
        state = STATES[FAILED];
        value = exc;
        prepared = Py_NewRef(Py_None);
    }
    if (state == STATES[DONE]) { /* failures arm a guard: the Python complete() */
        int r = fast_complete(self, DONE, value, prepared, 1);
        if (r != 2) {
            Py_DECREF(prepared);
            if (r == 1)
                Py_RETURN_NONE;
            if (r == -1)
                return NULL;
            /* another thread completed it meanwhile: the Python method raises */
            return fallback1(py_set_result, (PyObject *)self, result, 1);
        }
    }
    PyObject *stack[4] = {(PyObject *)self, state, value, prepared};
    PyObject *ok = call_python(py_complete, stack, 4, NULL, 1);
    Py_DECREF(prepared);
    Py_XDECREF(exc);
    if (ok == NULL)
        return NULL;
    int completed = PyObject_IsTrue(ok);
    Py_DECREF(ok);
    if (completed < 0)
        return NULL;
    if (!completed) /* another thread completed it meanwhile: the Python method raises */
        return fallback1(py_set_result, (PyObject *)self, result, 1);
    Py_RETURN_NONE;
}

/* wait() of a done device future with no timeout: the value, after the calling
 * thread's current streams wait on the events. NOT_HANDLED_DEV: the Python wait(). */
static int device_not_handled;
#define NOT_HANDLED_DEV ((PyObject *)&device_not_handled)

static PyObject *
device_wait_done(FutureObject *self)
{
    if (late_limit == NULL || !PyList_CheckExact(late_limit) || PyList_GET_SIZE(late_limit) != 2 ||
        PyList_GET_ITEM(late_limit, 1) != STATES[0])
        return NOT_HANDLED_DEV; /* a recursion limit to take back first: Python */
    PyObject *dev = Py_NewRef(self->dev);
    PyObject *r = state_sync(dev); /* dev.sync_current() */
    Py_DECREF(dev);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    return Py_NewRef(self->value);
}

static PyObject *
mod_configure_devices(PyObject *mod, PyObject *args)
{
    PyObject *plan_for, *gen;
    if (!PyArg_ParseTuple(args, "OO!:configure_devices", &plan_for, &PyList_Type, &gen))
        return NULL;
    if (!PyCallable_Check(plan_for)) {
        PyErr_SetString(PyExc_TypeError, "configure_devices(): plan_for must be callable");
        return NULL;
    }
    if (by_name == NULL && (by_name = PyDict_New()) == NULL)
        return NULL;
    Py_XSETREF(generation, Py_NewRef(gen));
    if (str_devices == NULL) {
        str_devices = PyUnicode_InternFromString("devices");
        str_prepare = PyUnicode_InternFromString("prepare");
        str_sync = PyUnicode_InternFromString("sync_current");
        str_child = PyUnicode_InternFromString("child");
        if (str_devices == NULL || str_prepare == NULL || str_sync == NULL || str_child == NULL)
            return NULL;
    }
    Py_XSETREF(py_plan_for, Py_NewRef(plan_for));
    Py_RETURN_NONE;
}

#endif /* FUTUREKIT_SPEEDUPS_DEVICE_H */

/* -- weak references to a value's buffers (DeviceState._weak / _alive in C) ---------- */
#ifndef FUTUREKIT_SPEEDUPS_DEVICE_WEAK_H
#define FUTUREKIT_SPEEDUPS_DEVICE_WEAK_H

/* weak_refs(seq) -> [weakref.ref(b) for b in seq]; TypeError if one cannot be. */
static PyObject *
mod_weak_refs(PyObject *mod, PyObject *seq)
{
    PyObject *fast = PySequence_Fast(seq, "weak_refs() needs a sequence");
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(fast);
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ref = PyWeakref_NewRef(items[i], NULL);
        if (ref == NULL) {
            Py_DECREF(out);
            Py_DECREF(fast);
            return NULL;
        }
        PyList_SET_ITEM(out, i, ref);
    }
    Py_DECREF(fast);
    return out;
}

/* alive(refs) -> the referents still alive, in order (freed ones skipped). */
static PyObject *
mod_alive(PyObject *mod, PyObject *refs)
{
    if (!PyList_CheckExact(refs)) {
        PyErr_SetString(PyExc_TypeError, "alive() needs a list of weak references");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(refs);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ref = PyList_GET_ITEM(refs, i);
        if (!PyWeakref_Check(ref)) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_TypeError, "alive() needs a list of weak references");
            return NULL;
        }
#if PY_VERSION_HEX >= 0x030D0000
        PyObject *obj;
        if (PyWeakref_GetRef(ref, &obj) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (obj == NULL)
            continue;
        int err = PyList_Append(out, obj);
        Py_DECREF(obj);
#else
        PyObject *obj = PyWeakref_GET_OBJECT(ref); /* borrowed */
        if (obj == Py_None)
            continue;
        int err = PyList_Append(out, obj);
#endif
        if (err < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

#endif /* FUTUREKIT_SPEEDUPS_DEVICE_WEAK_H */
