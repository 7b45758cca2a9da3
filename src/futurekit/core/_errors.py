"""Exception types raised by futurekit."""

from __future__ import annotations

import builtins
import concurrent.futures

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CallbackError",
    "CancelledError",
    "InvalidDeviceError",
    "InvalidFutureError",
    "InvalidStateError",
    "NotAnExceptionError",
    "TimeoutError",
    "UnwrapCycleError",
]

ALREADY_COMPLETED = (
    "Attempting to mark a completed Future as complete again. "
    "Note that a Future can only be marked completed once."
)
CALLBACK_ERROR_PREFIX = "Got the following error when running the callback: "


class InvalidStateError(RuntimeError, concurrent.futures.InvalidStateError):
    """The future is in the wrong state for the operation.

    Raised when a completed future is completed again (torch's ``RuntimeError``
    and message) and when ``value()`` is called before completion. It is both a
    ``RuntimeError`` (as in torch) and a ``concurrent.futures.InvalidStateError``.
    """


class NotAnExceptionError(TypeError, AssertionError):
    """``set_exception`` was given something that is not an ``Exception`` instance.

    torch raises ``AssertionError`` here; this class is both a ``TypeError`` and an
    ``AssertionError`` so code written for either keeps working.
    """


class CallbackError(RuntimeError):
    """A ``then`` callback raised; the child future holds this error.

    The message starts with torch's ``"Got the following error when running the
    callback: <ExcName>: <msg>"``. Unlike torch, the original exception is kept as
    ``__cause__`` (and as :attr:`original`), so its type is not lost.
    """

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original

    @classmethod
    def from_exception(cls, exc: BaseException) -> CallbackError:
        """Build the error for a callback that raised ``exc``."""
        # torch names the exception as Python sees it; futurekit's own errors are
        # torch's RuntimeError / AssertionError, and pybind11 shows "" this way.
        name = _TORCH_NAMES.get(type(exc), type(exc).__name__)
        text = str(exc) or "<EMPTY MESSAGE>"
        err = cls(f"{CALLBACK_ERROR_PREFIX}{name}: {text}", exc)
        err.__cause__ = exc
        return err


#: futurekit error types whose torch counterpart has another name.
_TORCH_NAMES: dict[type[BaseException], str] = {
    CallbackError: "RuntimeError",
    InvalidStateError: "RuntimeError",
    NotAnExceptionError: "AssertionError",
}


class UnwrapCycleError(RuntimeError):
    """``then(unwrap=True)`` met the same future twice while following results.

    ``a.set_result(a)``, or a chain a -> b -> a, can never complete: the child fails
    with this error instead of looping forever.
    """


class TimeoutError(builtins.TimeoutError):
    """A wait with a timeout ran out of time; the future is unaffected."""


class CancelledError(concurrent.futures.CancelledError):
    """The future was cancelled with :meth:`futurekit.Future.cancel`."""


class InvalidDeviceError(ValueError, RuntimeError):
    """A ``devices=`` entry is malformed (negative index, no index, mixed types ...).

    torch raises ``ValueError`` for some of these and ``RuntimeError`` for others;
    this class is both.
    """


class BackendError(RuntimeError):
    """Base class of errors about device backends."""


class BackendUnavailableError(BackendError):
    """No installed backend can serve the requested device type.

    The message says which backends exist for the type, why each is
    unavailable, and which ``pip install futurekit[...]`` extra provides one.
    """


class InvalidFutureError(TypeError, RuntimeError):
    """A combinator was given ``None`` or something that is not a futurekit Future.

    torch raises ``RuntimeError("Future can't be None")`` for ``None``; this class
    is both that and a ``TypeError``.
    """
