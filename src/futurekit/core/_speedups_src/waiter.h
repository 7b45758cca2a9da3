/* futurekit.core._speedups: Waiter: one blocked wait() on a futex word (Linux).
 * Part of one translation unit: included by _speedups.c, in order. */
#ifndef FUTUREKIT_SPEEDUPS_WAITER_H
#define FUTUREKIT_SPEEDUPS_WAITER_H

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

#endif /* FUTUREKIT_SPEEDUPS_WAITER_H */
