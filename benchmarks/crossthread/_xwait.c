/*
 * _xwait: research prototype of a one-shot cross-thread waiter for futurekit.
 *
 * Not installed, not imported by futurekit. Built by build.sh into
 * benchmarks/crossthread/build/ and used by pingpong.py / waiter.py.
 *
 * Two types, same interface as waiter.Waiter (wait(timeout=None) -> bool, wake()):
 *
 *   FutexWaiter(spin_ns=0, wake_nogil=False, spin_yield=False)
 *       state word: 0 idle, 1 woken, 2 a waiter is (about to be) asleep in the kernel.
 *       wait(): fast path if woken; else release the GIL, optionally spin up to
 *       spin_ns polling the word (no syscall; with spin_yield a sched_yield() every 32
 *       polls), then FUTEX_WAIT; re-take the GIL.
 *       A signal makes FUTEX_WAIT return EINTR: the GIL is re-taken,
 *       PyErr_CheckSignals() runs the Python handler (KeyboardInterrupt on SIGINT in
 *       the main thread), and the wait resumes if the handler did not raise.
 *       wake(): exchange the word to 1; FUTEX_WAKE only if a sleeper announced itself
 *       (old == 2). wake_nogil=True releases the GIL around that syscall.
 *
 *   CondWaiter(wake_nogil=False)
 *       torch's scheme (c10::ivalue::Future): std::mutex + std::condition_variable.
 *       wait() releases the GIL, locks, cond-waits until completed, unlocks, re-takes the
 *       GIL. NOT interruptible: pthread_cond_wait never returns EINTR, so a Ctrl-C is
 *       only seen once the waiter is woken (same as torch.futures.Future.wait()).
 *       wake() = lock; completed = 1; unlock; notify_all. wake_nogil=True does all of
 *       it with the GIL released, exactly like PythonFutureWrapper::markCompleted.
 *
 * Linux only (futex). Lock-free fast paths use C11 atomics.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
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

static inline int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Parse timeout: None -> -1 (forever); float/int seconds >= 0 -> ns. */
static int
parse_timeout(PyObject *arg, int64_t *out_ns)
{
    if (arg == NULL || arg == Py_None) {
        *out_ns = -1;
        return 0;
    }
    double t = PyFloat_AsDouble(arg);
    if (t == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (t != t) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    if (t < 0) {
        t = 0;  /* like Future.wait: a negative timeout is an immediate poll */
    }
    if (t > 9e9) {
        *out_ns = -1;  /* ~285 years: treat as forever */
        return 0;
    }
    *out_ns = (int64_t)(t * 1e9);
    return 0;
}

/* ------------------------------------------------------------------ FutexWaiter */

typedef struct {
    PyObject_HEAD
    _Atomic uint32_t state;
    int64_t spin_ns;
    int wake_nogil;
    int spin_yield;
} FutexWaiter;

static int
FutexWaiter_init(FutexWaiter *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"spin_ns", "wake_nogil", "spin_yield", NULL};
    long long spin_ns = 0;
    int wake_nogil = 0, spin_yield = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Lpp", kwlist, &spin_ns, &wake_nogil,
                                     &spin_yield)) {
        return -1;
    }
    self->spin_yield = spin_yield;
    atomic_store(&self->state, 0);
    self->spin_ns = spin_ns < 0 ? 0 : spin_ns;
    self->wake_nogil = wake_nogil;
    return 0;
}

/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline (NULL = forever). */
static long
futex_wait_abs(_Atomic uint32_t *addr, uint32_t expected, int64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = deadline_ns / 1000000000LL;
        ts.tv_nsec = deadline_ns % 1000000000LL;
        tsp = &ts;
    }
    return syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET_PRIVATE, expected, tsp,
                   NULL, FUTEX_BITSET_MATCH_ANY);
}

static PyObject *
FutexWaiter_wait(FutexWaiter *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t timeout_ns;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "wait(timeout=None)");
        return NULL;
    }
    if (parse_timeout(nargs ? args[0] : NULL, &timeout_ns) < 0) {
        return NULL;
    }
    if (atomic_load_explicit(&self->state, memory_order_acquire) == 1) {
        Py_RETURN_TRUE;
    }
    if (timeout_ns == 0) {
        Py_RETURN_FALSE;
    }
    int64_t deadline = timeout_ns < 0 ? -1 : now_ns() + timeout_ns;
    int woken = 0, interrupted = 0;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        if (self->spin_ns > 0) {
            int64_t spin_end = now_ns() + self->spin_ns;
            if (deadline >= 0 && spin_end > deadline) {
                spin_end = deadline;
            }
            for (unsigned i = 1;; i++) {
                if (atomic_load_explicit(&self->state, memory_order_acquire) == 1) {
                    woken = 1;
                    break;
                }
                CPU_RELAX();
                if ((i & 31) == 0) {
                    /* spin_yield: give the CPU to a runnable waker sharing it (one CPU, or
                     * an oversubscribed machine); returns at once when nobody else is
                     * runnable, so the cross-CPU case keeps spinning. */
                    if (self->spin_yield) {
                        sched_yield();
                    }
                    if (now_ns() >= spin_end) {
                        break;
                    }
                }
            }
        }
        while (!woken) {
            uint32_t expected = 0;
            /* announce a sleeper: 0 -> 2 (or it is already 2 from an interrupted wait) */
            if (!atomic_compare_exchange_strong(&self->state, &expected, 2) && expected == 1) {
                woken = 1;
                break;
            }
            long rc = futex_wait_abs(&self->state, 2, deadline);
            if (atomic_load_explicit(&self->state, memory_order_acquire) == 1) {
                woken = 1;
                break;
            }
            if (rc == -1 && errno == EINTR) {
                interrupted = 1;
                break;
            }
            if (rc == -1 && errno == ETIMEDOUT) {
                break;
            }
            if (deadline >= 0 && now_ns() >= deadline) {
                break;
            }
            /* EAGAIN (word changed) or spurious: loop */
        }
        Py_END_ALLOW_THREADS
        if (woken) {
            Py_RETURN_TRUE;
        }
        if (!interrupted) {
            Py_RETURN_FALSE;  /* timed out */
        }
        interrupted = 0;
        if (PyErr_CheckSignals() < 0) {
            return NULL;  /* e.g. KeyboardInterrupt; state stays 2, a later wake is harmless */
        }
        if (deadline >= 0 && now_ns() >= deadline) {
            Py_RETURN_FALSE;
        }
    }
}

static PyObject *
FutexWaiter_wake(FutexWaiter *self, PyObject *Py_UNUSED(ignored))
{
    uint32_t old = atomic_exchange_explicit(&self->state, 1, memory_order_acq_rel);
    if (old == 2) {
        if (self->wake_nogil) {
            Py_BEGIN_ALLOW_THREADS
            syscall(SYS_futex, (uint32_t *)&self->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
            Py_END_ALLOW_THREADS
        }
        else {
            syscall(SYS_futex, (uint32_t *)&self->state, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        }
    }
    return PyBool_FromLong(old != 1);
}

static PyObject *
FutexWaiter_is_set(FutexWaiter *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(atomic_load(&self->state) == 1);
}

static PyMethodDef FutexWaiter_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))FutexWaiter_wait, METH_FASTCALL,
     "wait(timeout=None) -> bool: block until wake() or timeout (GIL released)."},
    {"wake", (PyCFunction)FutexWaiter_wake, METH_NOARGS,
     "wake() -> bool: mark woken and wake a sleeper. False if already woken."},
    {"is_set", (PyCFunction)FutexWaiter_is_set, METH_NOARGS, "True once wake() ran."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FutexWaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_xwait.FutexWaiter",
    .tp_basicsize = sizeof(FutexWaiter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FutexWaiter_init,
    .tp_methods = FutexWaiter_methods,
    .tp_doc = "One-shot futex waiter (see module docstring).",
};

/* ------------------------------------------------------------------ CondWaiter */

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int completed;
    int wake_nogil;
    int initialized;
} CondWaiter;

static int
CondWaiter_init(CondWaiter *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wake_nogil", NULL};
    int wake_nogil = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p", kwlist, &wake_nogil)) {
        return -1;
    }
    if (!self->initialized) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_mutex_init(&self->mutex, NULL);
        pthread_cond_init(&self->cond, &attr);
        pthread_condattr_destroy(&attr);
        self->initialized = 1;
    }
    self->completed = 0;
    self->wake_nogil = wake_nogil;
    return 0;
}

static void
CondWaiter_dealloc(CondWaiter *self)
{
    if (self->initialized) {
        pthread_cond_destroy(&self->cond);
        pthread_mutex_destroy(&self->mutex);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
CondWaiter_wait(CondWaiter *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t timeout_ns;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "wait(timeout=None)");
        return NULL;
    }
    if (parse_timeout(nargs ? args[0] : NULL, &timeout_ns) < 0) {
        return NULL;
    }
    int done;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mutex);
    if (timeout_ns < 0) {
        while (!self->completed) {
            pthread_cond_wait(&self->cond, &self->mutex);
        }
    }
    else {
        int64_t deadline = now_ns() + timeout_ns;
        struct timespec ts = {deadline / 1000000000LL, deadline % 1000000000LL};
        while (!self->completed) {
            if (pthread_cond_timedwait(&self->cond, &self->mutex, &ts) == ETIMEDOUT) {
                break;
            }
        }
    }
    done = self->completed;
    pthread_mutex_unlock(&self->mutex);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(done);
}

static PyObject *
CondWaiter_wake(CondWaiter *self, PyObject *Py_UNUSED(ignored))
{
    int was;
    if (self->wake_nogil) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->mutex);
        was = self->completed;
        self->completed = 1;
        pthread_mutex_unlock(&self->mutex);
        pthread_cond_broadcast(&self->cond);
        Py_END_ALLOW_THREADS
    }
    else {
        pthread_mutex_lock(&self->mutex);
        was = self->completed;
        self->completed = 1;
        pthread_mutex_unlock(&self->mutex);
        pthread_cond_broadcast(&self->cond);
    }
    return PyBool_FromLong(!was);
}

static PyMethodDef CondWaiter_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))CondWaiter_wait, METH_FASTCALL,
     "wait(timeout=None) -> bool (GIL released; not interruptible by signals)."},
    {"wake", (PyCFunction)CondWaiter_wake, METH_NOARGS, "wake() -> bool"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CondWaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_xwait.CondWaiter",
    .tp_basicsize = sizeof(CondWaiter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)CondWaiter_init,
    .tp_dealloc = (destructor)CondWaiter_dealloc,
    .tp_methods = CondWaiter_methods,
    .tp_doc = "torch-style mutex + condition variable waiter.",
};

/* ------------------------------------------------------------------ module */

static struct PyModuleDef xwait_module = {
    PyModuleDef_HEAD_INIT, "_xwait",
    "Research prototype waiters for benchmarks/crossthread (not part of futurekit).", -1, NULL,
};

PyMODINIT_FUNC
PyInit__xwait(void)
{
    if (PyType_Ready(&FutexWaiterType) < 0 || PyType_Ready(&CondWaiterType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&xwait_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&FutexWaiterType);
    Py_INCREF(&CondWaiterType);
    if (PyModule_AddObject(m, "FutexWaiter", (PyObject *)&FutexWaiterType) < 0 ||
        PyModule_AddObject(m, "CondWaiter", (PyObject *)&CondWaiterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
