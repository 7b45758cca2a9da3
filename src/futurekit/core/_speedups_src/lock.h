/* futurekit.core._speedups: The core's one lock, shared by the Python critical sections and the fast paths.
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_LOCK_H
#define FUTUREKIT_SPEEDUPS_LOCK_H

/* -- the lock --------------------------------------------------------------------- */

static PyThread_type_lock g_lock = NULL;
static int g_held = 0;

static inline int
try_lock(void)
{
    if (PyThread_acquire_lock(g_lock, NOWAIT_LOCK)) {
        g_held = 1;
        return 1;
    }
    return 0;
}

static inline void
unlock(void)
{
    g_held = 0;
    PyThread_release_lock(g_lock);
}

static void
lock_blocking(void)
{
    if (try_lock())
        return;
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(g_lock, WAIT_LOCK);
    Py_END_ALLOW_THREADS
    g_held = 1;
}

typedef struct {
    PyObject_HEAD
} LockObject;

static PyObject *
Lock_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    lock_blocking();
    Py_RETURN_TRUE;
}

static PyObject *
Lock_acquire(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"blocking", NULL};
    int blocking = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:acquire", kwlist, &blocking))
        return NULL;
    if (blocking) {
        lock_blocking();
        Py_RETURN_TRUE;
    }
    return PyBool_FromLong(try_lock());
}

static PyObject *
Lock_release(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!g_held) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    unlock();
    Py_RETURN_NONE;
}

/* ``with lock:`` leaves through release(), whatever happened in the block. */
static PyObject *
Lock_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return Lock_release(self, NULL);
}

static PyObject *
Lock_locked(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(g_held);
}

static PyMethodDef Lock_methods[] = {
    {"__enter__", Lock_enter, METH_NOARGS, "Acquire the lock (blocking, GIL released)."},
    {"__exit__", (PyCFunction)(void (*)(void))Lock_exit, METH_FASTCALL, "Release the lock."},
    {"acquire", (PyCFunction)(void (*)(void))Lock_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True) -> bool"},
    {"release", Lock_release, METH_NOARGS, "Release the lock."},
    {"locked", Lock_locked, METH_NOARGS, "Whether the lock is held."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "futurekit.core._speedups.Lock",
    .tp_basicsize = sizeof(LockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The core's one lock: guards every future's transitions.",
    .tp_methods = Lock_methods,
};

#endif /* FUTUREKIT_SPEEDUPS_LOCK_H */
