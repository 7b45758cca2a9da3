"""Reporting what would otherwise be lost: callback errors and never-retrieved failures.

Everything here runs outside the core's lock and may run foreign code (``repr`` of a
user exception, logging handlers), so every function guards itself: a failure to
report is itself reported on ``sys.stderr`` and never stops the completion path.
"""

from __future__ import annotations

import sys

from ._errors import CALLBACK_ERROR_PREFIX, is_concurrent_cancellation

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ErrorGuard",
    "from_cancellation",
    "logger",
    "report_callback_error",
    "report_stream_error",
]

_ERROR = 40  # logging.ERROR and logging.WARNING: importing logging costs 5-15 ms,
_WARNING = 30  # so it waits for the first failed future or callback error (logger())

_logger: Any = None


def logger() -> Any:
    """The ``futurekit`` logger (``logging`` is imported on the first call).

    Called when a future first fails (by :class:`ErrorGuard`), so that a warning given
    later from a finalizer, possibly during a garbage collection or at shutdown, never
    has to import a module.
    """
    global _logger
    if _logger is None:
        import logging

        _logger = logging.getLogger("futurekit")
    return _logger


def _last_resort(what: str, exc: BaseException) -> None:
    """Logging itself failed: say so on stderr, naming types only (never raises)."""
    try:
        sys.stderr.write("futurekit: " + what + " (logging failed: " + type(exc).__name__ + ")\n")
    except Exception:  # pragma: no cover - stderr closed, or no stack left at all
        pass


def _plain_traceback(exc: BaseException) -> str:
    """``traceback.format_exception`` text without the ``^^^^`` markers under each line.

    On CPython 3.11 placing the markers runs ``ast.parse`` on the source line, and
    ``ast`` keeps one recursion counter per interpreter: a report made by a garbage-
    collector finalizer (a never-retrieved failure), which can run in the middle of
    another ``ast.parse``, would make that one fail with ``SystemError: AST
    constructor recursion depth mismatch`` (CPython gh-106905). Without markers no
    ``ast`` runs here.
    """
    import traceback

    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    seen: set[int] = set()
    todo = [te]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        for frame in one.stack:
            if hasattr(frame, "colno"):  # 3.11+ (3.10 has no markers)
                frame.colno = None  # no markers: no ast
        todo += [t for t in (one.__cause__, one.__context__) if t is not None]
    return "".join(te.format()).rstrip("\n")


def _log(level: int, msg: str, args: tuple[Any, ...], exc: BaseException) -> None:
    """``logger.log(level, msg, *args, exc_info=exc)``, with the traceback pre-formatted.

    The record carries ``exc_info`` as usual; its ``exc_text`` is set here, so the
    standard formatters print it instead of formatting the traceback themselves.
    """
    log = logger()
    if not log.isEnabledFor(level):
        return
    record = log.makeRecord(
        log.name, level, __file__, 0, msg, args, (type(exc), exc, exc.__traceback__)
    )
    record.exc_text = _plain_traceback(exc)
    log.handle(record)


def report_callback_error(exc: BaseException) -> None:
    """Log an ``add_done_callback`` error (torch swallows and logs them too)."""
    try:
        _log(_ERROR, "%s%s: %s", (CALLBACK_ERROR_PREFIX, type(exc).__name__, exc), exc)
    except Exception as log_exc:  # e.g. no stack left for the logging machinery
        try:
            _last_resort("a callback raised " + type(exc).__name__, log_exc)
        except Exception:  # pragma: no cover - not even that
            pass


def report_stream_error(callback: object, exc: BaseException) -> None:
    """Log that a backend could not set up the streams a callback must run under."""
    try:
        _log(
            _ERROR,
            "the device backend could not set up streams for callback %r, which was "
            "therefore not run: %s: %s",
            (callback, type(exc).__name__, exc),
            exc,
        )
    except Exception as log_exc:
        try:
            _last_resort("a backend could not set up streams: " + type(exc).__name__, log_exc)
        except Exception:  # pragma: no cover - not even that
            pass


def from_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation or was caused by one (those are not warned about)."""
    for _ in range(32):
        if is_concurrent_cancellation(exc):
            return True
        cause = exc.__cause__
        if cause is None:
            return False
        exc = cause
    return False


class ErrorGuard:
    """Logs a failure nobody retrieved from its future, when that future is collected.

    One guard per failed future. Retrieving the error from the future disarms its
    guard only; the warning is given at most once per exception object, so one
    exception shared by several unretrieved futures is reported once.
    """

    __slots__ = ("exc", "where")

    def __init__(self, exc: BaseException, where: int) -> None:
        self.exc: BaseException | None = exc
        self.where = where
        if _logger is None:  # now, not in the finalizer
            logger()

    def __del__(self) -> None:
        exc = getattr(self, "exc", None)  # unset if __init__ was interrupted
        if exc is None:
            return
        self.exc = None
        try:
            if getattr(exc, "_futurekit_reported", False):
                return
            try:
                exc._futurekit_reported = True
            except Exception:  # pragma: no cover - exotic exception types
                pass
            _log(
                _WARNING,
                "Future exception was never retrieved: <futurekit.Future failed %s at %#x>",
                (_safe_repr(exc), self.where),
                exc,
            )
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:
        return f"<{type(obj).__name__} (repr failed: {type(exc).__name__})>"
