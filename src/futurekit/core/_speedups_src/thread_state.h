/* futurekit.core._speedups: ThreadState: the trampoline's per-thread depth and pending stack.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_THREAD_STATE_H
#define FUTUREKIT_SPEEDUPS_THREAD_STATE_H

/* -- ThreadState: the trampoline's per-thread state (see _trampoline.py) ------------ */

/* One compiled completion running its registrations on this thread (complete.h): they
 * are held here, in C, not on the pending stack, until a blocking wait inside one of
 * the callbacks needs them there (spill(), complete.h). Lives on fast_complete's stack. */
typedef struct dispatch_frame DispatchFrame;

typedef struct {
    PyObject_HEAD
    PyObject *depth;      /* draining frames of this thread (an int) */
    PyObject *pending;    /* stack (list) of batches handed to this thread */
    DispatchFrame *frames; /* the innermost running compiled completion, or NULL */
    Py_ssize_t flushes;    /* waits that ran the whole stack (drain_leftovers) */
} ThreadStateObject;

static PyObject *
ThreadState_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "ThreadState() takes no arguments");
        return NULL;
    }
    ThreadStateObject *self = (ThreadStateObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->depth = PyLong_FromLong(0);
    self->pending = PyList_New(0);
    if (self->pending == NULL || self->depth == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
ThreadState_traverse(ThreadStateObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pending);
    return 0;
}

static int
ThreadState_clear(ThreadStateObject *self)
{
    Py_CLEAR(self->pending);
    Py_CLEAR(self->depth);
    return 0;
}

static void
ThreadState_dealloc(ThreadStateObject *self)
{
    PyObject_GC_UnTrack(self);
    ThreadState_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef ThreadState_members[] = {
    {"depth", T_OBJECT_EX, offsetof(ThreadStateObject, depth), 0,
     "Draining frames of this thread."},
    {"pending", T_OBJECT_EX, offsetof(ThreadStateObject, pending), 0,
     "Stack of batches handed to this thread."},
    {"flushes", T_PYSSIZET, offsetof(ThreadStateObject, flushes), 0,
     "Waits that ran the whole stack (drain_leftovers)."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ThreadStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "futurekit.core._speedups.ThreadState",
    .tp_basicsize = sizeof(ThreadStateObject),
    .tp_dealloc = (destructor)ThreadState_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Per-thread dispatch state of the trampoline (compiled).",
    .tp_traverse = (traverseproc)ThreadState_traverse,
    .tp_clear = (inquiry)ThreadState_clear,
    .tp_members = ThreadState_members,
    .tp_new = ThreadState_new,
};

#endif /* FUTUREKIT_SPEEDUPS_THREAD_STATE_H */
