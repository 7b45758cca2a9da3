/* futurekit.core._speedups: FutureBase: the future's fields, and the Python functions the fast paths call.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_FUTURE_H
#define FUTUREKIT_SPEEDUPS_FUTURE_H

/* -- the Python side: fallbacks and helpers, set by configure() ------------------- */

static PyObject *py_init = NULL;        /* Future.__init__ (pure Python) */
static PyObject *py_set_result = NULL;  /* Future.set_result (pure Python) */
static PyObject *py_wait = NULL;        /* Future.wait (pure Python) */
static PyObject *py_value = NULL;       /* Future.value (pure Python) */
static PyObject *py_add_done_callback = NULL;
static PyObject *py_then = NULL;        /* Future.then (pure Python) */
static PyObject *py_fail_inline_child = NULL; /* _future._fail_inline_child */
static PyObject *py_timed_out = NULL;   /* raises futurekit.TimeoutError for wait() */
static PyObject *late_limit = NULL;     /* _trampoline.late_limit */
static PyObject *py_fix_limit = NULL;   /* _trampoline.fix_limit */
static PyTypeObject *future_type = NULL; /* futurekit.Future */
static PyObject *py_complete = NULL;    /* _completion.complete (pure Python) */
static PyObject *py_drain = NULL;      /* _completion.drain (pure Python) */
static PyObject *py_report = NULL;      /* _reporting.report_callback_error */
static PyObject *py_state = NULL;       /* _trampoline.state: this thread's ThreadState */
static PyObject *py_internal = NULL;    /* _completion.InternalCallback */
static PyObject *str_release = NULL;
static PyObject *str_rerun = NULL;
static PyObject *key_state = NULL;  /* key of the ThreadState in the thread-state dict */
static int max_depth = 24;

/* -- FutureBase --------------------------------------------------------------------- */

/* Every field is an object, never NULL while the future is alive (None when empty):
 * stored as T_OBJECT_EX members they get the interpreter's specialized slot access,
 * like the pure-Python core's __slots__. ``state`` holds one of the ints 0..3, which
 * CPython caches: it is compared by identity. */
typedef struct {
    PyObject_HEAD
    PyObject *state;
    PyObject *observed;
    PyObject *value;
    PyObject *cb1;
    PyObject *cbs;
    PyObject *rm;
    PyObject *waiters;
    PyObject *dev;
    PyObject *guard;
    PyObject *weakreflist;
} FutureObject;

static PyObject *STATES[4]; /* the ints PENDING, DONE, FAILED, CANCELLED */
static PyTypeObject FutureType;

static inline int
get_state(FutureObject *f)
{
    PyObject *s = f->state;
    if (s == STATES[PENDING])
        return PENDING;
    if (s == STATES[DONE])
        return DONE;
    if (s == STATES[FAILED])
        return FAILED;
    if (s == STATES[CANCELLED])
        return CANCELLED;
    return -1; /* not one of the four (or deleted): only the Python path deals with it */
}

/* Store a state (under the lock): the old one is a cached int, so no object dies. */
static inline void
set_state(FutureObject *f, int state)
{
    PyObject *old = f->state;
    f->state = Py_NewRef(STATES[state]);
    Py_XDECREF(old);
}

static inline void
set_observed(FutureObject *f)
{
    PyObject *old = f->observed;
    f->observed = Py_NewRef(Py_True);
    Py_XDECREF(old);
}

/* The fields of a blank future (on a fresh, zeroed object). */
static void
init_fields(FutureObject *f)
{
    f->state = Py_NewRef(STATES[PENDING]);
    f->observed = Py_NewRef(Py_False);
    f->value = Py_NewRef(Py_None);
    f->cb1 = Py_NewRef(Py_None);
    f->cbs = Py_NewRef(Py_None);
    f->rm = Py_NewRef(Py_None);
    f->waiters = Py_NewRef(Py_None);
    f->dev = Py_NewRef(Py_None);
    f->guard = Py_NewRef(Py_None);
}

static PyObject *
Future_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    FutureObject *self = (FutureObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        init_fields(self);
    return (PyObject *)self;
}

static int
Future_traverse(FutureObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value);
    Py_VISIT(self->cb1);
    Py_VISIT(self->cbs);
    Py_VISIT(self->rm);
    Py_VISIT(self->waiters);
    Py_VISIT(self->dev);
    Py_VISIT(self->guard);
    return 0;
}

static int
Future_clear(FutureObject *self)
{
    Py_CLEAR(self->state);
    Py_CLEAR(self->observed);
    Py_CLEAR(self->value);
    Py_CLEAR(self->cb1);
    Py_CLEAR(self->cbs);
    Py_CLEAR(self->rm);
    Py_CLEAR(self->waiters);
    Py_CLEAR(self->dev);
    Py_CLEAR(self->guard);
    return 0;
}

static void
Future_dealloc(FutureObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Future_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int device_init(FutureObject *self, PyObject *args, PyObject *kwds); /* device.h */

/* Future(): a fresh future is all zeros (NULL reads as None); Future(devices=X) on a
 * fresh future asks plan_for (device.h); anything else, backend= included, goes to
 * the Python __init__. */
static int
Future_init(FutureObject *self, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) == 0 && (kwds == NULL || PyDict_GET_SIZE(kwds) == 0)) {
        if (self->state != STATES[PENDING] || self->observed != Py_False ||
            self->value != Py_None || self->cb1 != Py_None || self->cbs != Py_None ||
            self->rm != Py_None || self->waiters != Py_None || self->dev != Py_None ||
            self->guard != Py_None) {
            /* __init__ called again: reset every field, as the Python one does */
            Future_clear(self);
            init_fields(self);
        }
        return 0;
    }
    int handled = device_init(self, args, kwds);
    if (handled)
        return handled < 0 ? -1 : 0;
    if (py_init == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "futurekit._speedups is not configured");
        return -1;
    }
    PyObject *bound_args = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (bound_args == NULL)
        return -1;
    Py_INCREF(self);
    PyTuple_SET_ITEM(bound_args, 0, (PyObject *)self);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++) {
        PyObject *item = PyTuple_GET_ITEM(args, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(bound_args, i + 1, item);
    }
    PyObject *res = PyObject_Call(py_init, bound_args, kwds);
    Py_DECREF(bound_args);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

#endif /* FUTUREKIT_SPEEDUPS_FUTURE_H */
