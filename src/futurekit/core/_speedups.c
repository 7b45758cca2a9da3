/* futurekit.core._speedups: the optional compiled accelerator of the core.
 *
 * The pure-Python core (_completion.py, _registration.py, _future.py) is the
 * reference; this module only makes its common paths shorter and falls back to
 * the Python functions for everything else. See docs/design.md, "The compiled
 * accelerator".
 *
 * It provides
 *   - Lock: the core's one lock (with/acquire/release/locked), used by the Python
 *     critical sections and by the fast paths below;
 *   - FutureBase: the future's fields as a C struct (same names as the Python
 *     FutureBase's slots, so the Python core reads and writes them unchanged);
 *   - fast paths of Future.__init__, set_result, wait, value, done and
 *     add_done_callback, and of the core's complete() for futures whose
 *     registrations are plain callables.
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
Lock_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!g_held) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    unlock();
    Py_RETURN_NONE;
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

/* -- ThreadState: the trampoline's per-thread state (see _trampoline.py) ------------ */

typedef struct {
    PyObject_HEAD
    PyObject *depth;   /* draining frames of this thread (an int) */
    PyObject *pending; /* stack (list) of batches handed to this thread */
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

/* -- Waiter: one blocked wait() (Linux: a futex word) --------------------------------
 *
 * Why not a threading.Lock: its release() posts the semaphore with the GIL held, so on
 * the same CPU the woken thread wakes, finds the GIL taken and sleeps again (two
 * wake-ups per hand-off); across CPUs every blocking wake-up costs an inter-processor
 * interrupt. This waiter is woken with the GIL released around the syscall (torch's
 * order), and the waiting thread first spins (GIL released, a sched_yield() every 32
 * polls, so a waker on the same CPU is never starved) for up to ``spin_ns``, then
 * sleeps on the futex. Measurements: benchmarks/crossthread/REPORT.md.
 *
 * The word: 0 idle, 1 woken, 2 a sleeper announced itself (the waker then calls
 * FUTEX_WAKE). Python's complete() wakes waiters with ``release()``, which this type
 * provides too. */

#ifdef FK_FUTEX
typedef struct {
    PyObject_HEAD
    _Atomic uint32_t word;
} WaiterObject;

static int64_t spin_ns = 20000; /* configure(spin_us=...) */
static int many_cpus = 0;

static inline int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wake a waiter (with or without the GIL: the syscall is made without it). */
static void
waiter_wake(WaiterObject *w)
{
    uint32_t old = atomic_exchange_explicit(&w->word, 1, memory_order_acq_rel);
    if (old == 2) {
        Py_BEGIN_ALLOW_THREADS
        syscall(SYS_futex, (uint32_t *)&w->word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
        Py_END_ALLOW_THREADS
    }
}

static PyObject *
Waiter_release(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    waiter_wake((WaiterObject *)self);
    Py_RETURN_NONE;
}

static PyMethodDef Waiter_methods[] = {
    {"release", Waiter_release, METH_NOARGS, "Wake the waiting thread (idempotent)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "futurekit.core._speedups.Waiter",
    .tp_basicsize = sizeof(WaiterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One blocked wait(): a futex word, woken without the GIL.",
    .tp_methods = Waiter_methods,
    .tp_new = PyType_GenericNew,
};

/* Sleep until woken, ``*state_word`` (a future's state pointer) leaves ``pending``,
 * ``deadline`` (monotonic ns, -1: none) passes, or a signal arrives; in slices of at
 * most one second. Returns 1 woken, 0 timed out, -1 with the signal handler's
 * exception set (KeyboardInterrupt). Called with the GIL; releases it. */
static int
waiter_block(WaiterObject *w, PyObject *volatile *state_word, PyObject *pending,
             int64_t deadline)
{
    int first = 1;
    for (;;) {
        int woken = 0, interrupted = 0;
        int64_t slice_end = now_ns() + 1000000000LL;
        if (deadline >= 0 && deadline < slice_end)
            slice_end = deadline;
        Py_BEGIN_ALLOW_THREADS
        if (first && spin_ns > 0 && many_cpus) {
            int64_t spin_end = now_ns() + spin_ns;
            if (spin_end > slice_end)
                spin_end = slice_end;
            for (unsigned i = 1;; i++) {
                if (atomic_load_explicit(&w->word, memory_order_acquire) == 1) {
                    woken = 1;
                    break;
                }
                CPU_RELAX();
                if ((i & 31) == 0) {
                    sched_yield(); /* a runnable waker on this CPU goes first */
                    if (now_ns() >= spin_end)
                        break;
                }
            }
        }
        while (!woken) {
            uint32_t expected = 0;
            if (!atomic_compare_exchange_strong(&w->word, &expected, 2) && expected == 1) {
                woken = 1;
                break;
            }
            struct timespec ts = {(time_t)(slice_end / 1000000000LL),
                                  (long)(slice_end % 1000000000LL)};
            long rc = syscall(SYS_futex, (uint32_t *)&w->word, FUTEX_WAIT_BITSET_PRIVATE, 2,
                              &ts, NULL, FUTEX_BITSET_MATCH_ANY);
            if (atomic_load_explicit(&w->word, memory_order_acquire) == 1) {
                woken = 1;
                break;
            }
            if (rc == -1 && errno == EINTR) {
                interrupted = 1;
                break;
            }
            if (rc == -1 && errno == ETIMEDOUT)
                break;
            if (now_ns() >= slice_end)
                break;
        }
        Py_END_ALLOW_THREADS
        first = 0;
        if (woken)
            return 1;
        if (interrupted && PyErr_CheckSignals() < 0)
            return -1;
        if (*state_word != pending) /* completed, and not woken: re-checked every slice */
            return 1;
        if (deadline >= 0 && now_ns() >= deadline)
            return 0;
        if (!interrupted && PyErr_CheckSignals() < 0) /* a signal another thread took */
            return -1;
    }
}
#endif /* FK_FUTEX */

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
    if (s == STATES[PENDING] || s == NULL)
        return PENDING;
    if (s == STATES[DONE])
        return DONE;
    if (s == STATES[FAILED])
        return FAILED;
    if (s == STATES[CANCELLED])
        return CANCELLED;
    return -1; /* not one of the four: only the Python path deals with it */
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

/* Future(): a fresh future is all zeros (NULL reads as None); anything else,
 * devices= or backend= included, goes to the Python __init__. */
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

/* Recursion budget left on this thread (Python frames and C calls alike). */
static inline int
recursion_left(void)
{
    PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030E0000
    return ts->py_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030C0000
    return ts->py_recursion_remaining < ts->c_recursion_remaining ? ts->py_recursion_remaining
                                                                  : ts->c_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030B0000
    return ts->recursion_remaining;
#else /* 3.10 */
    return Py_GetRecursionLimit() - ts->recursion_depth;
#endif
}

/* A fast path that falls back adds a C call to the Python one: near the limit the
 * fallback gets this much more limit, so the accelerator never takes head-room a
 * callback would have had with the pure-Python core (which grants the same). */
#define FALLBACK_HEADROOM 64

static inline int
bump_if_near_limit(void)
{
    if (recursion_left() >= FALLBACK_HEADROOM / 2)
        return 0;
    Py_SetRecursionLimit(Py_GetRecursionLimit() + FALLBACK_HEADROOM);
    return FALLBACK_HEADROOM;
}

static inline void
unbump(int extra)
{
    if (extra)
        Py_SetRecursionLimit(Py_GetRecursionLimit() - extra);
}

/* Call a Python function of the core (a fallback) with a vectorcall argument vector.
 * ``completes``: the call completes a future, and the Python path under a compiled
 * method is three calls deeper than the pure core's: near the recursion limit it gets
 * the head-room (a registration or a read fails at its entry, before any effect, as
 * in the pure core). */
static PyObject *
call_python(PyObject *fn, PyObject *const *stack, Py_ssize_t nargs, PyObject *kwnames,
            int completes)
{
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "futurekit._speedups is not configured");
        return NULL;
    }
    int extra = completes ? bump_if_near_limit() : 0;
    PyObject *res = PyObject_Vectorcall(fn, stack, (size_t)nargs, kwnames);
    unbump(extra);
    return res;
}

/* fn(self) or fn(self, arg) (arg may be NULL). */
static PyObject *
fallback1(PyObject *fn, PyObject *self, PyObject *arg, int completes)
{
    PyObject *stack[2] = {self, arg};
    return call_python(fn, stack, arg == NULL ? 1 : 2, NULL, completes);
}

/* fn(self, *args, **kwnames): a method's own arguments, passed on to its Python form. */
static PyObject *
fallback(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
         PyObject *kwnames)
{
    PyObject *small[8];
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    if (total + 1 > 8) {
        PyErr_SetString(PyExc_TypeError, "too many arguments");
        return NULL;
    }
    small[0] = self;
    for (Py_ssize_t i = 0; i < total; i++)
        small[i + 1] = args[i];
    return call_python(fn, small, nargs + 1, kwnames, 0);
}

/* Release every waiter of a completed future (each is a threading.Lock held by
 * its wait()); one released already (a retry) raises RuntimeError: ignored. */
static int
wake(PyObject *waiters)
{
    Py_ssize_t pos = 0;
    PyObject *key, *waiter;
    int failed = 0;
    if (!PyDict_Check(waiters))
        return 0;
    while (PyDict_Next(waiters, &pos, &key, &waiter)) {
#ifdef FK_FUTEX
        if (Py_TYPE(waiter) == &WaiterType) {
            waiter_wake((WaiterObject *)waiter); /* the dict is ours: detached from the future */
            continue;
        }
#endif
        Py_INCREF(waiter);
        PyObject *res = PyObject_CallMethodNoArgs(waiter, str_release);
        Py_DECREF(waiter);
        if (res != NULL) {
            Py_DECREF(res);
        }
        else if (PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            PyErr_Clear();
        }
        else {
            failed = 1; /* cannot happen with threading.Lock; keep waking the rest */
            PyErr_Clear();
        }
    }
    return failed ? -1 : 0;
}

/* -- running callbacks ---------------------------------------------------------------- */

/* The raised exception, normalized, its traceback attached; the error indicator is
 * cleared. NULL if none was set. */
static PyObject *
take_exception(void)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    if (val != NULL && tb != NULL)
        PyException_SetTraceback(val, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return val;
}

/* Raise ``exc`` again (a reference is stolen), with its own traceback. */
static void
raise_again(PyObject *exc)
{
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
}

/* Run one plain registration of a completed CPU future. Returns 0, or -1 with an
 * interrupt (a non-Exception BaseException) stored in *interrupt (the first one). */
static void
run_one(PyObject *fut, PyObject *reg, PyObject **interrupt)
{
    PyObject *res = PyObject_CallOneArg(reg, fut);
    if (res != NULL) {
        Py_DECREF(res);
        return;
    }
    PyObject *val = take_exception();
    if (val != NULL && PyObject_TypeCheck(val, (PyTypeObject *)PyExc_Exception)) {
        /* torch swallows and logs callback errors: so does futurekit */
        PyObject *r = PyObject_CallOneArg(py_report, val);
        if (r == NULL)
            PyErr_Clear(); /* reporting failed: nothing more can be done here */
        else
            Py_DECREF(r);
    }
    else if (val != NULL) {
        /* KeyboardInterrupt, SystemExit: the rest still run; raised at the end.
         * An internal callback hit by one is run again (they are idempotent). */
        if (py_internal != NULL && PyObject_TypeCheck(reg, (PyTypeObject *)py_internal)) {
            PyObject *rerun = PyObject_GetAttr(reg, str_rerun);
            int again = rerun != NULL && PyObject_IsTrue(rerun) == 1;
            Py_XDECREF(rerun);
            PyErr_Clear();
            if (again) {
                PyObject *r = PyObject_CallOneArg(reg, fut);
                if (r == NULL)
                    PyErr_Clear();
                else
                    Py_DECREF(r);
            }
        }
        if (*interrupt == NULL) {
            *interrupt = val;
            val = NULL;
        }
    }
    Py_XDECREF(val);
}

/* This thread's ThreadState (_trampoline.state()), cached in the thread-state dict;
 * NULL, with no error set, if it does not exist yet. */
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
        PyErr_Clear();
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

/* Run, with the Python drain, what callbacks deferred on this thread's stack above
 * ``mark``, at the depth the Python drain loop of this completion would have. */
static void
run_deferred(PyObject *st, long depth, Py_ssize_t mark, PyObject **interrupt)
{
    set_depth(st, depth);
    PyObject *m = PyLong_FromSsize_t(mark);
    PyObject *res = m == NULL ? NULL : PyObject_CallFunctionObjArgs(py_drain, st, m, NULL);
    Py_XDECREF(m);
    if (res != NULL) {
        Py_DECREF(res);
    }
    else {
        PyObject *val = take_exception(); /* the Python drain raises only interrupts */
        if (*interrupt == NULL)
            *interrupt = val;
        else
            Py_XDECREF(val);
    }
    set_depth(st, depth + 1);
}

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

/* complete() for a CPU future: publish state/value, wake waiters, run plain
 * callbacks here. Returns 1 (completed), 0 (already complete), -1 (an exception:
 * an interrupt a callback raised, after every registration ran), or 2: not
 * handled, the caller must take the Python path (nothing was changed). */
/* complete(..., run=False) of a future with registrations (a then-child completed by
 * the Python drain): publish, and push the registrations as one batch
 * ``[fut, -1, first, rest, 0, removable]`` on this thread's pending stack, inside the
 * same critical section, exactly as the Python complete() does; the caller's drain
 * takes them next. Same results as fast_complete. */
static int
fast_hand_over(FutureObject *self, int state, PyObject *value)
{
    PyObject *st = thread_state();
    if (st == NULL)
        return 2;
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
    PyObject *old_value = NULL, *waiters = NULL;
    if (try_lock()) {
        if (get_state(self) != PENDING) {
            result = 0;
        }
        else if (!ISNONE(self->cb1) || !ISNONE(self->rm)) {
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
    if (!ISNONE(waiters))
        wake(waiters);
    Py_XDECREF(waiters);
    return result;
}

/* Run one registration of a completed CPU future from fast_complete's loop, then the
 * work it deferred on this thread's stack. A then-link (a tuple) goes to the Python
 * drain as a batch of its own, exactly as the Python loop would run it next (its
 * child's registrations are pushed above it and drained in the same call). */
static void
dispatch(PyObject *st, long depth, Py_ssize_t mark, PyObject *fut, PyObject *reg,
         PyObject **interrupt)
{
    if (!PyTuple_CheckExact(reg)) {
        run_one(fut, reg, interrupt);
    }
    else {
        PyObject *pending = ((ThreadStateObject *)st)->pending;
        PyObject *batch = Py_BuildValue("[OiOOiO]", fut, -1, reg, Py_None, 0, Py_None);
        if (batch == NULL || PyList_Append(pending, batch) < 0) {
            /* out of memory: the link cannot be handed over; say so loudly, never
             * silently (its child stays pending) */
            Py_XDECREF(batch);
            PyObject *err = take_exception();
            if (*interrupt == NULL)
                *interrupt = err;
            else
                Py_XDECREF(err);
            return;
        }
        Py_DECREF(batch);
    }
    if (PyList_GET_SIZE(((ThreadStateObject *)st)->pending) > mark)
        run_deferred(st, depth, mark, interrupt);
}

/* complete() for a CPU future: publish state/value, wake waiters, run the
 * registrations here, in order (FIFO, then the removable ones). Returns 1 (completed),
 * 0 (already complete), -1 (an exception: an interrupt a callback raised, after every
 * registration ran), or 2: not handled, the caller must take the Python path
 * (nothing was changed). */
static int
fast_complete(FutureObject *self, int state, PyObject *value, int run)
{
    PyObject *st = NULL, *pending = NULL;
    long depth = 0;
    if (!ISNONE(self->dev))
        return 2;
    int has_regs = !ISNONE(self->cb1) || !ISNONE(self->rm);
    if (has_regs && !run)
        return fast_hand_over(self, state, value);
    if (has_regs) {
        if (!headroom_ok(PyThreadState_Get()))
            return 2;
        st = thread_state();
        if (st == NULL)
            return 2; /* the Python path makes it (and raises what it raises) */
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
    if (!ISNONE(waiters))
        wake(waiters);
    Py_XDECREF(waiters);
    if (st == NULL)
        return 1;
    PyObject *interrupt = NULL;
    PyObject *fut = (PyObject *)self;
    set_depth(st, depth + 1);
    Py_ssize_t mark = PyList_GET_SIZE(pending);
    if (!ISNONE(cb1))
        dispatch(st, depth, mark, fut, cb1, &interrupt);
    if (PyList_CheckExact(cbs)) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
            PyObject *reg = PyList_GET_ITEM(cbs, i);
            Py_INCREF(reg);
            dispatch(st, depth, mark, fut, reg, &interrupt);
            Py_DECREF(reg);
        }
    }
    if (PyDict_CheckExact(rm)) { /* the any-of combinators' and await's, after the FIFO */
        PyObject *regs = PyDict_Values(rm);
        if (regs == NULL) {
            PyObject *err = take_exception();
            if (interrupt == NULL)
                interrupt = err;
            else
                Py_XDECREF(err);
        }
        else {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(regs); i++)
                dispatch(st, depth, mark, fut, PyList_GET_ITEM(regs, i), &interrupt);
            Py_DECREF(regs);
        }
    }
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

/* -- fast paths of the public methods ----------------------------------------------- */

static PyObject *
Future_c_set_result(FutureObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    if (nargs != 1 || kwnames != NULL) /* set_result(result=...), or a wrong call */
        return fallback(py_set_result, (PyObject *)self, args, nargs, kwnames);
    PyObject *result = args[0];
    if (get_state(self) == PENDING && ISNONE(self->dev)) {
        int r = fast_complete(self, DONE, result, 1);
        if (r == 1)
            Py_RETURN_NONE;
        if (r == -1)
            return NULL;
        /* 0 (already complete) and 2 (not handled): the Python method raises or runs */
    }
    return fallback1(py_set_result, (PyObject *)self, result, 1);
}

#ifdef FK_FUTEX
static int not_handled_marker;
#define NOT_HANDLED ((PyObject *)&not_handled_marker)

/* wait() on a pending CPU future, blocking on a Waiter. Returns the value, NULL with
 * an error (the future's, a timeout, an interrupt), or NOT_HANDLED: the Python wait()
 * (a timeout to validate, a poll, leftovers on this thread's stack, ...). */
static PyObject *
block_wait(FutureObject *self, PyObject *timeout)
{
    int64_t deadline = -1;
    double seconds = 0;
    if (timeout != NULL && timeout != Py_None) {
        if (PyFloat_CheckExact(timeout)) {
            seconds = PyFloat_AS_DOUBLE(timeout);
        }
        else if (PyLong_CheckExact(timeout)) {
            seconds = PyLong_AsDouble(timeout);
            if (seconds == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return NOT_HANDLED;
            }
        }
        else {
            return NOT_HANDLED;
        }
        if (!(seconds > 0) || seconds > 1e9) /* a poll, NaN, negative, huge: Python */
            return NOT_HANDLED;
        deadline = now_ns() + (int64_t)(seconds * 1e9);
    }
    PyObject *st = thread_state();
    if (st == NULL)
        return NOT_HANDLED;
    PyObject *pending = ((ThreadStateObject *)st)->pending;
    int leftovers = pending == NULL || !PyList_CheckExact(pending) || PyList_GET_SIZE(pending);
    Py_DECREF(st);
    if (leftovers) /* work an interrupt left on this thread runs first: Python */
        return NOT_HANDLED;
    /* allocate before the lock: the waiter, its key, a dict for it */
    WaiterObject *w = PyObject_New(WaiterObject, &WaiterType);
    if (w == NULL)
        return NULL;
    atomic_init(&w->word, 0);
    PyObject *key = PyLong_FromVoidPtr(w);
    PyObject *fresh = PyDict_New();
    if (key == NULL || fresh == NULL || PyDict_SetItem(fresh, key, (PyObject *)w) < 0) {
        Py_XDECREF(key);
        Py_XDECREF(fresh);
        Py_DECREF(w);
        return NULL;
    }
    int registered = 0, complete_now = 0;
    PyObject *old = NULL;
    lock_blocking();
    if (get_state(self) != PENDING) {
        complete_now = 1;
    }
    else if (ISNONE(self->waiters)) {
        old = self->waiters;
        self->waiters = fresh;
        fresh = NULL;
        registered = 1;
    }
    else if (PyDict_CheckExact(self->waiters)) {
        /* an int key: no Python code; growing the table allocates no GC object */
        registered = PyDict_SetItem(self->waiters, key, (PyObject *)w) == 0;
    }
    unlock();
    Py_XDECREF(old);
    Py_XDECREF(fresh);
    int r = 1;
    if (registered) {
        r = waiter_block(w, &self->state, STATES[PENDING], deadline);
        if (r != 1) { /* timed out or interrupted: take the waiter back */
            PyObject *type, *val, *tb;
            PyErr_Fetch(&type, &val, &tb);
            lock_blocking();
            if (PyDict_CheckExact(self->waiters) && PyDict_Contains(self->waiters, key) == 1)
                PyDict_DelItem(self->waiters, key); /* we hold both: nothing dies here */
            unlock();
            PyErr_Restore(type, val, tb);
            if (r == 0 && get_state(self) != PENDING)
                r = 1; /* completed as the time ran out: the outcome, as the Python wait */
        }
    }
    Py_DECREF(key);
    Py_DECREF(w);
    if (!registered && !complete_now) {
        PyErr_Clear();
        return NOT_HANDLED;
    }
    if (r < 0)
        return NULL;
    if (r == 0) {
        PyObject *secs = PyFloat_FromDouble(seconds);
        if (secs != NULL) {
            PyObject *res = PyObject_CallOneArg(py_timed_out, secs); /* raises */
            Py_XDECREF(res);
            Py_DECREF(secs);
        }
        return NULL;
    }
    /* recursion limit a frame at the limit could not take back (see _trampoline) */
    if (late_limit != NULL && PyList_GET_SIZE(late_limit) == 2 &&
        PyList_GET_ITEM(late_limit, 1) != STATES[0]) {
        PyObject *r = PyObject_CallNoArgs(py_fix_limit);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    if (self->state == STATES[DONE] && ISNONE(self->dev))
        return Py_NewRef(self->value);
    return NOT_HANDLED; /* failed or cancelled: the Python wait() raises the error */
}
#endif

static PyObject *
Future_c_wait(FutureObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && nargs <= 1 && ISNONE(self->dev)) {
        PyObject *timeout = nargs ? args[0] : Py_None;
        if (self->state == STATES[DONE] && timeout == Py_None)
            return Py_NewRef(self->value);
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
    if (self->state == STATES[DONE]) {
        PyObject *v = self->value == NULL ? Py_None : self->value;
        Py_INCREF(v);
        return v;
    }
    return fallback1(py_value, (PyObject *)self, NULL, 0);
}

static PyObject *
Future_c_done(FutureObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(get_state(self) != PENDING);
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
    if (nargs == 1 && kwnames == NULL && self->state == STATES[PENDING] &&
        PyCallable_Check(args[0]) && append_reg(self, args[0]))
        Py_RETURN_NONE;
    return fallback(py_add_done_callback, (PyObject *)self, args, nargs, kwnames);
}

/* then(callback) on a pending CPU future with no executor and no unwrap: a blank
 * child and the link ``(callback, child, None, None)`` appended to the FIFO. */
static PyObject *
Future_c_then(FutureObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs == 1 && kwnames == NULL && self->state == STATES[PENDING] && ISNONE(self->dev) &&
        future_type != NULL && PyCallable_Check(args[0])) {
        PyObject *child = future_type->tp_alloc(future_type, 0);
        if (child == NULL)
            return NULL;
        init_fields((FutureObject *)child);
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
             ISNONE(self->dev) && future_type != NULL && PyCallable_Check(args[0])) {
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
            ((FutureObject *)f)->state == STATES[PENDING]) {
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

/* complete(fut, state, value, prepared=None, run=True) with the Python signature:
 * the fast path for CPU futures with plain callbacks, the Python one otherwise. */
static PyObject *
mod_complete(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL &&
        (nargs == 3 || (nargs == 4 && args[3] == Py_None) ||
         (nargs == 5 && args[3] == Py_None && (args[4] == Py_True || args[4] == Py_False))) &&
        PyObject_TypeCheck(args[0], &FutureType) && PyLong_CheckExact(args[1])) {
        FutureObject *fut = (FutureObject *)args[0];
        long state = PyLong_AsLong(args[1]);
        if (state == DONE && fut->state == STATES[PENDING]) { /* failures arm a guard: Python */
            int r = fast_complete(fut, (int)state, args[2], nargs < 5 || args[4] == Py_True);
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

static PyObject *
mod_configure(PyObject *mod, PyObject *args, PyObject *kwds)
{
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
    {"after_fork_in_child", mod_after_fork_in_child, METH_NOARGS,
     "Replace the lock in a forked child (registered with os.register_at_fork)."},
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
