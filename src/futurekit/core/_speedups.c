/* futurekit.core._speedups: the optional compiled accelerator of the core.
 *
 * The pure-Python core (_completion.py, _registration.py, _future.py) is the
 * reference; this module only makes its common paths shorter and falls back to
 * the Python functions for everything else. See docs/design.md, "The compiled
 * accelerator".
 *
 * The parts (each in _speedups_src/, included below in dependency order):
 *   lock.h, thread_state.h, waiter.h, future.h, calls.h, callbacks.h, dispatch.h,
 *   complete.h, wait.h, methods.h.
 *
 * It provides
 *   - Lock: the core's one lock (with/acquire/release/locked), used by the Python
 *     critical sections and by the fast paths below;
 *   - FutureBase: the future's fields as a C struct (same names as the Python
 *     FutureBase's slots, so the Python core reads and writes them unchanged);
 *   - ThreadState and Waiter: the trampoline's per-thread state; a blocked wait()
 *     on a futex word (Linux), woken with the GIL released;
 *   - fast paths of Future.__init__, set_result, wait, value, done,
 *     add_done_callback and then, of collect_all's registration loop, and of the
 *     core's complete() for CPU futures;
 *   - spill() and drain(): a wait inside a callback finds the registrations of the
 *     running compiled completions on the pending stack; the Python drain is called
 *     again until nothing is left (docs/design.md, "One semantics, two cores").
 *
 * The main interpreter only: its C globals (the core's functions, the lock, the
 * types) are shared by every interpreter, so a sub-interpreter gets the pure core.
 *
 * Why it is signal- and GC-safe: code here runs no eval loop, so no signal
 * handler and no other thread runs between two C statements unless a Python
 * object is called or a garbage-collected object is allocated. The lock is taken
 * only with a non-blocking try, held across loads and stores only (no call, no
 * allocation, no last reference dropped), and released before anything is
 * called. A fast path that cannot take the lock at once (another thread is in a
 * critical section) takes the Python path, which blocks.
 *
 * GIL builds only: on free-threaded CPython the build fails on purpose and the
 * pure-Python core is used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>

#ifdef __linux__
#define FK_FUTEX 1
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif
#endif

#ifdef Py_GIL_DISABLED
#error "futurekit's accelerator supports GIL builds only; the pure-Python core is used"
#endif

#define PENDING 0
#define DONE 1
#define FAILED 2
#define CANCELLED 3

#define ISNONE(p) ((p) == NULL || (p) == Py_None)

/* The parts, in dependency order (one translation unit; each is a few hundred lines). */
#include "_speedups_src/lock.h"
#include "_speedups_src/thread_state.h"
#include "_speedups_src/waiter.h"
#include "_speedups_src/future.h"
#include "_speedups_src/calls.h"
#include "_speedups_src/device.h"
#include "_speedups_src/states.h"
#include "_speedups_src/callbacks.h"
#include "_speedups_src/dispatch.h"
#include "_speedups_src/complete.h"
#include "_speedups_src/wait.h"
#include "_speedups_src/methods.h"

/* -- the module's functions ---------------------------------------------------------- */

/* complete(fut, state, value, prepared=None, run=True) with the Python signature:
 * the fast path for CPU futures, the Python one otherwise. */
static PyObject *
mod_complete(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && nargs >= 3 && nargs <= 5 &&
        (nargs < 5 || args[4] == Py_True || args[4] == Py_False) &&
        PyObject_TypeCheck(args[0], &FutureType) && PyLong_CheckExact(args[1])) {
        FutureObject *fut = (FutureObject *)args[0];
        long state = PyLong_AsLong(args[1]);
        /* prepared: a device future's DeviceState (its type is checked by the caller,
         * resolve(), which made it with prepare()) */
        PyObject *prepared = nargs < 4 || args[3] == Py_None ? NULL : args[3];
        if (state == DONE && fut->state == STATES[PENDING]) { /* failures arm a guard: Python */
            int r = fast_complete(fut, (int)state, args[2], prepared,
                                  nargs < 5 || args[4] == Py_True);
            if (r == 1)
                Py_RETURN_TRUE;
            if (r == 0)
                Py_RETURN_FALSE;
            if (r == -1)
                return NULL;
        }
    }
    return call_python(py_complete, args, nargs, kwnames, 1);
}

/* In a child made by fork(): the lock may have been held by a thread that does not
 * exist here; a fresh one replaces it (the old one is leaked on purpose: freeing a
 * lock another thread held is undefined). */
static PyObject *
mod_after_fork_in_child(PyObject *mod, PyObject *Py_UNUSED(ignored))
{
    PyThread_type_lock fresh = PyThread_allocate_lock();
    if (fresh == NULL)
        return PyErr_NoMemory();
    g_lock = fresh;
    g_held = 0;
    Py_RETURN_NONE;
}

/* The accelerator keeps the core's functions, its lock and its types in C globals
 * shared by every interpreter of the process, so it serves the main interpreter only:
 * a sub-interpreter importing futurekit gets the pure-Python core (_accelerator.py);
 * configure() from it would rewire the main interpreter's core to objects of an
 * interpreter that may be destroyed. */
static int
in_main_interpreter(void)
{
    return PyInterpreterState_Get() == PyInterpreterState_Main();
}

static PyObject *
mod_usable(PyObject *mod, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(in_main_interpreter());
}

static PyObject *
mod_configure(PyObject *mod, PyObject *args, PyObject *kwds)
{
    if (!in_main_interpreter()) {
        PyErr_SetString(PyExc_ImportError,
                        "futurekit's compiled accelerator serves the main interpreter only; "
                        "a sub-interpreter uses the pure-Python core");
        return NULL;
    }
    static char *kwlist[] = {"future", "init", "set_result", "wait", "value",
                             "add_done_callback", "then", "fail_inline_child", "complete",
                             "drain", "report", "state", "internal", "timed_out",
                             "late_limit", "fix_limit", "max_depth", "spin_us", NULL};
    PyObject *a, *b, *c, *d, *e, *f, *g, *h, *i, *j, *k, *l, *m, *n, *o, *t;
    int depth;
    double spin_us;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "$O!OOOOOOOOOOOOOO!Oid:configure", kwlist,
                                     &PyType_Type, &t, &a, &b, &c, &d, &e, &k, &l, &f, &j, &g,
                                     &h, &i, &m, &PyList_Type, &n, &o, &depth, &spin_us))
        return NULL;
    Py_XSETREF(late_limit, Py_NewRef(n));
    Py_XSETREF(py_fix_limit, Py_NewRef(o));
    Py_XSETREF(py_timed_out, Py_NewRef(m));
#ifdef FK_FUTEX
    spin_ns = spin_us > 0 ? (int64_t)(spin_us * 1000) : 0;
#endif
    Py_XSETREF(py_fail_inline_child, Py_NewRef(l));
    if (!PyType_IsSubtype((PyTypeObject *)t, &FutureType)) {
        PyErr_SetString(PyExc_TypeError, "configure(): future must subclass FutureBase");
        return NULL;
    }
    Py_XSETREF(future_type, (PyTypeObject *)Py_NewRef(t));
    Py_XSETREF(py_then, Py_NewRef(k));
    Py_XSETREF(py_init, Py_NewRef(a));
    Py_XSETREF(py_set_result, Py_NewRef(b));
    Py_XSETREF(py_wait, Py_NewRef(c));
    Py_XSETREF(py_value, Py_NewRef(d));
    Py_XSETREF(py_add_done_callback, Py_NewRef(e));
    Py_XSETREF(py_complete, Py_NewRef(f));
    Py_XSETREF(py_drain, Py_NewRef(j));
    Py_XSETREF(py_report, Py_NewRef(g));
    Py_XSETREF(py_state, Py_NewRef(h));
    Py_XSETREF(py_internal, Py_NewRef(i));
    max_depth = depth;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"complete", (PyCFunction)(void (*)(void))mod_complete, METH_FASTCALL | METH_KEYWORDS,
     "complete(fut, state, value, prepared=None, run=True) -> bool (compiled fast path)."},
    {"register_each", (PyCFunction)(void (*)(void))mod_register_each, METH_FASTCALL,
     "register_each(futures, reg) -> list of the inputs left to register()."},
    {"drain", (PyCFunction)(void (*)(void))mod_drain, METH_FASTCALL,
     "drain(thread_state, mark): the Python drain, again until nothing is left above mark\n"
     "(an interrupt cannot leave work behind); the first interrupt is raised after."},
    {"spill", mod_spill, METH_O,
     "spill(thread_state) -> bool: put the registrations that running compiled completions\n"
     "of this thread hold onto its pending stack (a blocking wait runs them first)."},
    {"usable", mod_usable, METH_NOARGS,
     "Whether this interpreter may use the accelerator (the main interpreter only)."},
    {"after_fork_in_child", mod_after_fork_in_child, METH_NOARGS,
     "Replace the lock in a forked child (registered with os.register_at_fork)."},
    {"prepare", (PyCFunction)(void (*)(void))mod_prepare, METH_FASTCALL,
     "prepare(state, value) -> state.prepare(value) (compiled for one buffer)."},
    {"sync_current", (PyCFunction)mod_sync_current, METH_O,
     "sync_current(state) -> state.sync_current() (compiled for one event)."},
    {"configure_states", (PyCFunction)mod_configure_states, METH_VARARGS,
     "configure_states(DeviceState, DevicePlan): DeviceState's hot methods in C."},
    {"weak_refs", (PyCFunction)mod_weak_refs, METH_O,
     "weak_refs(seq) -> [weakref.ref(b) for b in seq] (a device value's buffers)."},
    {"alive", (PyCFunction)mod_alive, METH_O,
     "alive(refs) -> the referents still alive, in order."},
    {"configure_devices", (PyCFunction)mod_configure_devices, METH_VARARGS,
     "configure_devices(plan_for, generation): Future(devices=...) in C."},
    {"configure", (PyCFunction)(void (*)(void))mod_configure, METH_VARARGS | METH_KEYWORDS,
     "Give the accelerator the pure-Python functions it falls back to."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "futurekit.core._speedups",
    .m_doc = "The optional compiled accelerator of futurekit's core (GIL builds).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (!in_main_interpreter()) { /* see mod_configure */
        PyErr_SetString(PyExc_ImportError,
                        "futurekit's compiled accelerator serves the main interpreter only");
        return NULL;
    }
    if (g_lock == NULL) {
        g_lock = PyThread_allocate_lock();
        if (g_lock == NULL)
            return PyErr_NoMemory();
    }
    for (int i = 0; i < 4; i++) {
        STATES[i] = PyLong_FromLong(i);
        if (STATES[i] == NULL)
            return NULL;
    }
#ifdef FK_FUTEX
    if (PyType_Ready(&WaiterType) < 0)
        return NULL;
    many_cpus = sysconf(_SC_NPROCESSORS_ONLN) > 1;
#endif
    if (PyType_Ready(&LockType) < 0 || PyType_Ready(&FutureType) < 0 ||
        PyType_Ready(&ThreadStateType) < 0)
        return NULL;
    str_release = PyUnicode_InternFromString("release");
    str_rerun = PyUnicode_InternFromString("rerun");
    key_state = PyUnicode_InternFromString("futurekit.core._speedups.ThreadState");
    if (!str_release || !str_rerun || !key_state)
        return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    PyObject *lock = PyType_GenericNew(&LockType, NULL, NULL);
    if (lock == NULL || PyModule_AddObject(m, "lock", lock) < 0 ||
        PyModule_AddObjectRef(m, "FutureBase", (PyObject *)&FutureType) < 0 ||
        PyModule_AddObjectRef(m, "Lock", (PyObject *)&LockType) < 0 ||
        PyModule_AddObjectRef(m, "ThreadState", (PyObject *)&ThreadStateType) < 0) {
        Py_XDECREF(lock);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
