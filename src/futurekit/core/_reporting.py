"""Reporting what would otherwise be lost: callback errors and never-retrieved failures.

Everything here runs outside the core's lock and may run foreign code (``repr`` of a
user exception, logging handlers), so every function guards itself: a failure to
report is itself reported on ``sys.stderr`` and never stops the completion path.
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import CancelledError as _AnyCancelledError

from ._errors import CALLBACK_ERROR_PREFIX

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

logger = logging.getLogger("futurekit")


def _last_resort(what: str, exc: BaseException) -> None:
    """Logging itself failed: say so on stderr, naming types only (never raises)."""
    try:
        sys.stderr.write("futurekit: " + what + " (logging failed: " + type(exc).__name__ + ")\n")
    except Exception:  # pragma: no cover - stderr closed, or no stack left at all
        pass


def report_callback_error(exc: BaseException) -> None:
    """Log an ``add_done_callback`` error (torch swallows and logs them too)."""
    try:
        logger.error(
            "%s%s: %s",
            CALLBACK_ERROR_PREFIX,
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    except Exception as log_exc:  # e.g. no stack left for the logging machinery
        try:
            _last_resort("a callback raised " + type(exc).__name__, log_exc)
        except Exception:  # pragma: no cover - not even that
            pass


def report_stream_error(callback: object, exc: BaseException) -> None:
    """Log that a backend could not set up the streams a callback must run under."""
    try:
        logger.error(
            "the device backend could not set up streams for callback %r, which was "
            "therefore not run: %s: %s",
            callback,
            type(exc).__name__,
            exc,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    except Exception as log_exc:
        try:
            _last_resort("a backend could not set up streams: " + type(exc).__name__, log_exc)
        except Exception:  # pragma: no cover - not even that
            pass


def from_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation or was caused by one (those are not warned about)."""
    for _ in range(32):
        if isinstance(exc, _AnyCancelledError):
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
            logger.warning(
                "Future exception was never retrieved: <futurekit.Future failed %s at %#x>",
                _safe_repr(exc),
                self.where,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:
        return f"<{type(obj).__name__} (repr failed: {type(exc).__name__})>"
