/* futurekit.core._speedups: DeviceState.prepare and DeviceState.sync_current, in C.
 * Part of one translation unit: included by _speedups.c, in order.
 *
 * A device future's set_result() calls ``prepare`` and its wait() calls ``sync_current``
 * (_device_state.py, the reference). Their common case, one buffer on the plan's first
 * device, is done here without the Python frame: the same backend calls, in the same
 * order, and the same DeviceState built by storing its four __slots__ fields directly.
 * Everything else goes to the Python methods: another device, a list, a walk, a
 * backend with order_buffer (``_prepare_other``, as the Python ``prepare`` does), a
 * subclass, a DeviceState whose methods were replaced (tests patch them), a field
 * deleted. configure_states(DeviceState, DevicePlan) arms it; _device_plan calls it
 * when it first makes a DeviceState. */
#ifndef FUTUREKIT_SPEEDUPS_STATES_H
#define FUTUREKIT_SPEEDUPS_STATES_H

static PyTypeObject *state_type = NULL; /* _device_state.DeviceState */
static PyTypeObject *plan_type = NULL;  /* _device_plan.DevicePlan */
static PyObject *orig_prepare = NULL;   /* DeviceState.prepare as configured */
static PyObject *orig_sync = NULL;      /* DeviceState.sync_current as configured */
static PyObject *str_prepare_other = NULL;

/* The byte offsets of the __slots__ fields read or written here. */
enum { ST_PLAN, ST_EVENTS, ST_BUFFERS, ST_COMPLETED, ST_N };
static const char *const st_names[ST_N] = {"plan", "events", "buffers", "completed_on"};
static Py_ssize_t st_off[ST_N];
enum {
    PL_CURRENT_DEVICE,
    PL_DEVICE_OF,
    PL_FIRST,
    PL_ORDER_BUFFER,
    PL_CURRENT_STREAM,
    PL_RECORD_EVENT,
    PL_RECORD_VALUES,
    PL_WAIT_EVENT,
    PL_N
};
static const char *const pl_names[PL_N] = {"current_device", "device_of",     "first",
                                           "order_buffer",   "current_stream", "record_event",
                                           "record_values",  "wait_event"};
static Py_ssize_t pl_off[PL_N];

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* The offset of the __slots__ field ``name`` of ``tp`` (a member descriptor). */
static int
slot_offset(PyTypeObject *tp, const char *name, Py_ssize_t *off)
{
    PyObject *d = PyDict_GetItemString(tp->tp_dict, name); /* borrowed */
    if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)d)->d_member->type != T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "configure_states(): %s.%s is not a __slots__ field",
                     tp->tp_name, name);
        return -1;
    }
    *off = ((PyMemberDescrObject *)d)->d_member->offset;
    return 0;
}

/* The plan of ``state`` (borrowed) if the C paths may serve it, else NULL: a
 * DeviceState itself (not a subclass) whose method ``name`` is still ``orig``, with a
 * DevicePlan whose fields are all set. */
static PyObject *
served_plan(PyObject *state, PyObject *name, PyObject *orig)
{
    if (state_type == NULL || Py_TYPE(state) != state_type ||
        _PyType_Lookup(state_type, name) != orig)
        return NULL;
    for (int i = 0; i < ST_N; i++)
        if (SLOT(state, st_off[i]) == NULL)
            return NULL;
    PyObject *plan = SLOT(state, st_off[ST_PLAN]);
    if (Py_TYPE(plan) != plan_type)
        return NULL;
    for (int i = 0; i < PL_N; i++)
        if (SLOT(plan, pl_off[i]) == NULL)
            return NULL;
    return plan;
}

/* A new DeviceState(plan, events, buffers, completed_on): its __init__'s four stores. */
static PyObject *
new_state(PyObject *plan, PyObject *events, PyObject *buffers, PyObject *completed_on)
{
    PyObject *st = state_type->tp_alloc(state_type, 0);
    if (st == NULL)
        return NULL;
    SLOT(st, st_off[ST_PLAN]) = Py_NewRef(plan);
    SLOT(st, st_off[ST_EVENTS]) = Py_NewRef(events);
    SLOT(st, st_off[ST_BUFFERS]) = Py_NewRef(buffers);
    SLOT(st, st_off[ST_COMPLETED]) = Py_NewRef(completed_on);
    return st;
}

/* ``fn(*args)`` with ``fn`` held during the call (a field may be replaced meanwhile);
 * a field deleted by a backend call made before (NULL) raises the AttributeError that
 * reading it from Python raises. */
static PyObject *
call_slot(PyObject *fn, PyObject *const *args, size_t nargs)
{
    if (fn == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a DevicePlan field was deleted");
        return NULL;
    }
    Py_INCREF(fn);
    PyObject *r = PyObject_Vectorcall(fn, args, nargs, NULL);
    Py_DECREF(fn);
    return r;
}

/* The common case of DeviceState.prepare (the Python method's body, line for line). */
static PyObject *
prepare_one(PyObject *state, PyObject *plan, PyObject *value)
{
    PyObject *completed_on = NULL, *device = NULL, *stream = NULL, *event = NULL;
    PyObject *events = NULL, *buffers = NULL, *result = NULL;
    Py_INCREF(plan);
    PyObject *current_device = SLOT(plan, pl_off[PL_CURRENT_DEVICE]);
    completed_on = current_device == Py_None ? Py_NewRef(Py_None)
                                             : call_slot(current_device, NULL, 0);
    if (completed_on == NULL)
        goto done;
    device = call_slot(SLOT(plan, pl_off[PL_DEVICE_OF]), &value, 1);
    if (device == NULL)
        goto done;
    if (device != SLOT(plan, pl_off[PL_FIRST]) || SLOT(plan, pl_off[PL_ORDER_BUFFER]) != Py_None) {
        result = PyObject_CallMethodObjArgs(state, str_prepare_other, value, completed_on,
                                            device, NULL);
        goto done;
    }
    stream = call_slot(SLOT(plan, pl_off[PL_CURRENT_STREAM]), &device, 1);
    if (stream == NULL)
        goto done;
    event = call_slot(SLOT(plan, pl_off[PL_RECORD_EVENT]), &stream, 1);
    if (event == NULL)
        goto done;
    events = Py_BuildValue("((OO))", device, event);
    if (events == NULL)
        goto done;
    if (SLOT(plan, pl_off[PL_RECORD_VALUES]) == NULL)
        PyErr_SetString(PyExc_AttributeError, "a DevicePlan field was deleted");
    else if (SLOT(plan, pl_off[PL_RECORD_VALUES]) == Py_None)
        buffers = PyTuple_New(0);
    else
        buffers = Py_BuildValue("((O(O)O))", device, value, Py_False);
    if (buffers == NULL)
        goto done;
    result = new_state(plan, events, buffers, completed_on);
done:
    Py_XDECREF(completed_on);
    Py_XDECREF(device);
    Py_XDECREF(stream);
    Py_XDECREF(event);
    Py_XDECREF(events);
    Py_XDECREF(buffers);
    Py_DECREF(plan);
    return result;
}

/* state.prepare(value): in C when it may be, else the method. */
static PyObject *
state_prepare(PyObject *state, PyObject *value)
{
    PyObject *plan = served_plan(state, str_prepare, orig_prepare);
    if (plan == NULL)
        return PyObject_CallMethodOneArg(state, str_prepare, value);
    return prepare_one(state, plan, value);
}

/* state.sync_current(), one event (the Python method's single-device branch); the
 * method for more events or an unexpected shape (checked before any call is made). */
static PyObject *
state_sync(PyObject *state)
{
    PyObject *plan = served_plan(state, str_sync, orig_sync);
    PyObject *events = plan == NULL ? NULL : SLOT(state, st_off[ST_EVENTS]);
    if (events != NULL && PyTuple_CheckExact(events) && PyTuple_GET_SIZE(events) == 0)
        Py_RETURN_NONE;
    PyObject *buffers = plan == NULL ? NULL : SLOT(state, st_off[ST_BUFFERS]);
    PyObject *pair = NULL, *group = NULL;
    if (events != NULL && PyTuple_CheckExact(events) && PyTuple_GET_SIZE(events) == 1 &&
        PyTuple_CheckExact(buffers)) {
        pair = PyTuple_GET_ITEM(events, 0);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            pair = NULL;
        if (PyTuple_GET_SIZE(buffers) != 0) {
            group = PyTuple_GET_ITEM(buffers, 0);
            if (!PyTuple_CheckExact(group) || PyTuple_GET_SIZE(group) != 3 ||
                (PyTuple_GET_ITEM(group, 2) != Py_False &&
                 (PyTuple_GET_ITEM(group, 2) != Py_True ||
                  !PyList_CheckExact(PyTuple_GET_ITEM(group, 1)))))
                pair = NULL;
        }
    }
    if (pair == NULL)
        return PyObject_CallMethodNoArgs(state, str_sync);
    PyObject *result = NULL, *stream = NULL, *items = NULL;
    Py_INCREF(plan);
    Py_INCREF(pair);
    Py_XINCREF(group);
    PyObject *device = PyTuple_GET_ITEM(pair, 0);
    stream = call_slot(SLOT(plan, pl_off[PL_CURRENT_STREAM]), &device, 1);
    if (stream == NULL)
        goto done;
    PyObject *wait_event = SLOT(plan, pl_off[PL_WAIT_EVENT]);
    PyObject *args[2] = {stream, PyTuple_GET_ITEM(pair, 1)};
    PyObject *r = call_slot(wait_event, args, 2);
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    if (group != NULL) { /* the allocator hint on the buffers still alive */
        items = PyTuple_GET_ITEM(group, 2) == Py_True
                    ? mod_alive(NULL, PyTuple_GET_ITEM(group, 1))
                    : Py_NewRef(PyTuple_GET_ITEM(group, 1));
        if (items == NULL)
            goto done;
        PyObject *rargs[2] = {items, stream};
        r = call_slot(SLOT(plan, pl_off[PL_RECORD_VALUES]), rargs, 2);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
    }
    result = Py_NewRef(Py_None);
done:
    Py_XDECREF(items);
    Py_XDECREF(stream);
    Py_XDECREF(group);
    Py_DECREF(pair);
    Py_DECREF(plan);
    return result;
}

/* prepare(state, value): ``state.prepare(value)``, in C when it may be. For the Python
 * core's own callers (resolve() of a then-child). */
static PyObject *
mod_prepare(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "prepare(state, value)");
        return NULL;
    }
    return state_prepare(args[0], args[1]);
}

/* sync_current(state): ``state.sync_current()``, in C when it may be (the compiled
 * wait() calls it directly; this is for tests that compare it with the method). */
static PyObject *
mod_sync_current(PyObject *mod, PyObject *state)
{
    return state_sync(state);
}

/* configure_states(DeviceState, DevicePlan): arm the C paths of both methods. */
static PyObject *
mod_configure_states(PyObject *mod, PyObject *args)
{
    PyTypeObject *st, *pl;
    if (!PyArg_ParseTuple(args, "O!O!:configure_states", &PyType_Type, &st, &PyType_Type, &pl))
        return NULL;
    if (str_prepare == NULL || str_sync == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "configure_states(): configure_devices() first");
        return NULL;
    }
    if (str_prepare_other == NULL &&
        (str_prepare_other = PyUnicode_InternFromString("_prepare_other")) == NULL)
        return NULL;
    for (int i = 0; i < ST_N; i++)
        if (slot_offset(st, st_names[i], &st_off[i]) < 0)
            return NULL;
    for (int i = 0; i < PL_N; i++)
        if (slot_offset(pl, pl_names[i], &pl_off[i]) < 0)
            return NULL;
    PyObject *prepare = _PyType_Lookup(st, str_prepare), *sync = _PyType_Lookup(st, str_sync);
    if (prepare == NULL || sync == NULL) {
        PyErr_SetString(PyExc_TypeError, "configure_states(): DeviceState lacks its methods");
        return NULL;
    }
    Py_XSETREF(orig_prepare, Py_NewRef(prepare));
    Py_XSETREF(orig_sync, Py_NewRef(sync));
    Py_XSETREF(plan_type, (PyTypeObject *)Py_NewRef(pl));
    Py_XSETREF(state_type, (PyTypeObject *)Py_NewRef(st)); /* last: arms the C paths */
    Py_RETURN_NONE;
}

#endif /* FUTUREKIT_SPEEDUPS_STATES_H */
