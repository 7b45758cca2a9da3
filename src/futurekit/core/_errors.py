"""Exception types raised by futurekit."""

from __future__ import annotations

import builtins
import sys

TYPE_CHECKING = False  # importing typing costs ~10 ms at import futurekit
if TYPE_CHECKING:
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


def is_concurrent_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``concurrent.futures.CancelledError`` (futurekit's included).

    Does not import concurrent.futures: if it is not imported, nothing can be one.
    """
    cf = sys.modules.get("concurrent.futures")
    return cf is not None and isinstance(exc, cf.CancelledError)


#: futurekit error types whose torch counterpart has another name (InvalidStateError
#: joins when it is made).
_TORCH_NAMES: dict[type[BaseException], str] = {
    CallbackError: "RuntimeError",
    NotAnExceptionError: "AssertionError",
}


class UnwrapCycleError(RuntimeError):
    """``then(unwrap=True)`` met the same future twice while following results.

    ``a.set_result(a)``, or a chain a -> b -> a, can never complete: the child fails
    with this error instead of looping forever.
    """


class TimeoutError(builtins.TimeoutError):
    """A wait with a timeout ran out of time; the future is unaffected."""


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


# CancelledError and InvalidStateError subclass concurrent.futures' classes, and
# importing concurrent.futures (with logging, threading, re, traceback ...) is three
# quarters of ``import futurekit``. So the two classes are made on first use, through
# this module's ``__getattr__`` (PEP 562): the core raises them as ``_errors.X``, and
# a program that never meets one never imports concurrent.futures for them.
if TYPE_CHECKING:

    class InvalidStateError(RuntimeError, concurrent.futures.InvalidStateError):
        """The future is in the wrong state for the operation.

        Raised when a completed future is completed again (torch's ``RuntimeError``
        and message) and when ``value()`` is called before completion. It is both a
        ``RuntimeError`` (as in torch) and a ``concurrent.futures.InvalidStateError``.
        """

    class CancelledError(concurrent.futures.CancelledError):
        """The future was cancelled with :meth:`futurekit.Future.cancel`."""

else:
    _LAZY_ERRORS = ("CancelledError", "InvalidStateError")
    _INVALID_STATE_DOC = """The future is in the wrong state for the operation.

    Raised when a completed future is completed again (torch's ``RuntimeError``
    and message) and when ``value()`` is called before completion. It is both a
    ``RuntimeError`` (as in torch) and a ``concurrent.futures.InvalidStateError``.
    """

    def _make_lazy_errors() -> None:
        import concurrent.futures

        class InvalidStateError(RuntimeError, concurrent.futures.InvalidStateError):
            pass

        class CancelledError(concurrent.futures.CancelledError):
            pass

        InvalidStateError.__doc__ = _INVALID_STATE_DOC
        CancelledError.__doc__ = "The future was cancelled with :meth:`futurekit.Future.cancel`."
        for cls in (InvalidStateError, CancelledError):
            cls.__module__ = "futurekit"  # as for every public name (futurekit/__init__)
            cls.__qualname__ = cls.__name__
        if "CancelledError" not in globals():  # else a signal handler made them meanwhile
            _TORCH_NAMES[InvalidStateError] = "RuntimeError"
            globals().update(InvalidStateError=InvalidStateError, CancelledError=CancelledError)

    def __getattr__(name: str) -> object:
        if name in _LAZY_ERRORS:
            with _MAKING:  # two threads at once still get one class
                if name not in globals():
                    _make_lazy_errors()
            return globals()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(_LAZY_ERRORS))

    import _thread

    _MAKING = _thread.RLock()  # reentrant: a signal handler may meet one while we make them
