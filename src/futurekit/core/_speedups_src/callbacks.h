/* futurekit.core._speedups: Running one callback: its errors, interrupts and re-runs.
 * Part of one translation unit: included by _speedups.c, in order.
 *
 * A callback's Exception is reported (torch logs it too); a KeyboardInterrupt or
 * SystemExit is recorded, never swallowed, and raised once every registration ran; an
 * internal callback (idempotent) hit by one is run again until a run returns, so that
 * its effect happens exactly once whatever the number of interrupts (docs/design.md,
 * "One semantics, two cores"). */
#ifndef FUTUREKIT_SPEEDUPS_CALLBACKS_H
#define FUTUREKIT_SPEEDUPS_CALLBACKS_H

/* -- errors ------------------------------------------------------------------------------ */

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

static inline int
is_exception(PyObject *val)
{
    return PyObject_TypeCheck(val, (PyTypeObject *)PyExc_Exception);
}

/* Keep the first interrupt (a reference to ``val`` is stolen); later ones are dropped,
 * as the Python drain does: the first is raised when every registration ran. */
static inline void
record(PyObject **interrupt, PyObject *val)
{
    if (val == NULL)
        return;
    if (*interrupt == NULL)
        *interrupt = val;
    else
        Py_DECREF(val);
}

/* Take the raised exception: an interrupt (not an Exception) is recorded, an Exception
 * dropped (the callers report what must be reported before calling this). */
static void
record_if_interrupt(PyObject **interrupt)
{
    PyObject *val = take_exception();
    if (val != NULL && !is_exception(val))
        record(interrupt, val);
    else
        Py_XDECREF(val);
}

/* Log a callback's Exception (torch swallows and logs them: so does futurekit). An
 * interrupt raised while reporting (a logging handler, an __str__ raising SystemExit)
 * is recorded, never swallowed. */
static void
report(PyObject *exc, PyObject **interrupt)
{
    PyObject *r = PyObject_CallOneArg(py_report, exc);
    if (r != NULL)
        Py_DECREF(r);
    else
        record_if_interrupt(interrupt);
}

/* -- running callbacks ------------------------------------------------------------------- */

/* Whether ``reg`` is an internal callback that is run again after an interrupt. */
static int
reruns(PyObject *reg)
{
    if (py_internal == NULL || !PyObject_TypeCheck(reg, (PyTypeObject *)py_internal))
        return 0;
    PyObject *rerun = PyObject_GetAttr(reg, str_rerun); /* a class attribute: no code runs */
    int again = rerun != NULL && PyObject_IsTrue(rerun) == 1;
    Py_XDECREF(rerun);
    if (!again)
        PyErr_Clear();
    return again;
}

/* Run one plain registration of a completed CPU future. A callback's Exception is
 * reported; an interrupt is recorded in *interrupt (the first one) and the rest still
 * run. An internal callback (idempotent) is run again until one run returns without
 * an interrupt, and with more recursion limit if it ran short of stack inside, as the
 * Python drain does (REDO): its effect happens exactly once. */
static void
run_one(PyObject *fut, PyObject *reg, PyObject **interrupt)
{
    int internal = -1, bumped = 0;
    for (;;) {
        PyObject *res = PyObject_CallOneArg(reg, fut);
        if (res != NULL) {
            Py_DECREF(res);
            break;
        }
        PyObject *val = take_exception();
        if (val == NULL)
            break;
        if (internal < 0)
            internal = reruns(reg);
        if (is_exception(val)) {
            if (internal && Py_IS_TYPE(val, (PyTypeObject *)PyExc_RecursionError) &&
                bumped < MAX_BUMP) {
                Py_DECREF(val);
                Py_SetRecursionLimit(Py_GetRecursionLimit() + FALLBACK_HEADROOM);
                bumped += FALLBACK_HEADROOM;
                continue;
            }
            report(val, interrupt);
            Py_DECREF(val);
            break;
        }
        record(interrupt, val); /* KeyboardInterrupt, SystemExit: raised at the end */
        if (!internal)
            break; /* a user callback counts as run */
    }
    unbump(bumped);
}

#endif /* FUTUREKIT_SPEEDUPS_CALLBACKS_H */
