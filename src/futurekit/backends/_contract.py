"""What a backend must do, method by method, and how to say which method broke it.

One table (:data:`CONTRACTS`) says what each method of the
:class:`~futurekit.backends.Backend` protocol must do; the registry's load-time
validation, the conformance kit (:func:`futurekit.testing.check_backend`) and
``futurekit doctor`` quote it as the fix when a backend breaks it.
:func:`protocol_problems` checks the shape of a backend object and
:func:`blame` finds the protocol method an exception came from.
"""

from __future__ import annotations

from typing import Any

from ._protocol import BackendBase

__all__ = [
    "CONTRACTS",
    "REQUIRED_METHODS",
    "SIGNATURES",
    "blame",
    "contract",
    "protocol_problems",
]

#: The methods of :class:`~futurekit.backends.Backend` that every backend object must
#: have (``BackendBase`` supplies ``device_count``, ``stream_from_pool`` and
#: ``use_streams``). The registry checks them when it loads a backend, and the
#: conformance kit's ``protocol`` check uses the same list.
REQUIRED_METHODS: tuple[str, ...] = (
    "is_available",
    "device_count",
    "current_stream",
    "stream_from_pool",
    "use_streams",
    "record_event",
    "wait_event",
    "query_event",
    "synchronize_event",
    "device_of",
)

#: Optional members the core calls when a backend has them (BackendBase has them all).
OPTIONAL_METHODS: tuple[str, ...] = (
    "unavailable_reason",
    "record_value_on_stream",
    "record_values_on_stream",
    "enter_streams",
    "exit_streams",
    "enter_device",
    "exit_device",
    "current_device",
    "use_device",
    "order_buffer",
    "from_torch_streams",
)

#: How each required method is called and what it returns, for messages.
SIGNATURES: dict[str, str] = {
    "is_available": "is_available() -> bool",
    "device_count": "device_count() -> int",
    "current_stream": "current_stream(device) -> stream",
    "stream_from_pool": "stream_from_pool(device) -> stream",
    "use_streams": "use_streams(streams) -> context manager",
    "record_event": "record_event(stream) -> event",
    "wait_event": "wait_event(stream, event) -> None",
    "query_event": "query_event(event) -> bool",
    "synchronize_event": "synchronize_event(event) -> None",
    "device_of": "device_of(obj) -> Device | None",
}

#: What each method must do: the fix quoted when a backend breaks it.
CONTRACTS: dict[str, str] = {
    "load": (
        "BackendSpec.load() must return the backend object without raising: a backend "
        "whose library or driver is missing still loads, and says so from is_available() "
        "and unavailable_reason()"
    ),
    "is_available": (
        "is_available() must return a bool and never raise: return False and say why from "
        "unavailable_reason()"
    ),
    "unavailable_reason": "unavailable_reason() must return a str or None and never raise",
    "device_count": (
        "device_count() must return the number of devices as an int (at least 1 when the "
        "backend is available), in any thread"
    ),
    "current_stream": (
        "current_stream(device) must return the calling thread's current stream on device "
        "in any thread, including one the backend has never seen (futurekit waits and runs "
        "callbacks in whichever thread the program uses): set up per-thread state on first "
        "use, not at load or import"
    ),
    "stream_from_pool": (
        "stream_from_pool(device) must return a stream on device from the backend's pool "
        "(BackendBase's default returns the current stream), in any thread"
    ),
    "use_streams": (
        "use_streams(streams) must return a context manager that makes the streams current "
        "in the calling thread only, and restores the previous ones on exit, also after an "
        "error"
    ),
    "record_event": (
        "record_event(stream) must enqueue a new event on stream and return it without "
        "blocking the host, in any thread"
    ),
    "wait_event": (
        "wait_event(stream, event) must make stream wait for event without blocking the host"
    ),
    "query_event": (
        "query_event(event) must return True once the work before event has completed and "
        "False before, without blocking"
    ),
    "synchronize_event": "synchronize_event(event) must block the host until event has completed",
    "device_of": (
        "device_of(obj) must return a futurekit.Device (such as Device('cuda', 0)) for the "
        "backend's own buffers and None for any other object, without raising"
    ),
}

#: The required methods that BackendBase gives a working default.
_BASE_DEFAULTS = ("device_count", "stream_from_pool", "use_streams", "is_available")
#: The required methods that BackendBase defines only to raise NotImplementedError.
_PLACEHOLDERS = ("current_stream",)


def contract(method: str) -> str:
    """What ``method`` (a protocol method name, or ``"load"``) must do, in words."""
    return CONTRACTS.get(method, f"{method}() must follow the Backend protocol")


def _implemented(backend: object, name: str) -> bool:
    try:
        return callable(getattr(backend, name, None))
    except Exception:  # an attribute whose lookup raises counts as missing
        return False


def _placeholder(backend: object, name: str) -> bool:
    """Whether ``name`` is BackendBase's placeholder that only raises NotImplementedError."""
    try:
        method = getattr(type(backend), name, None)
    except Exception:
        return False
    return name in _PLACEHOLDERS and method is BackendBase.__dict__[name]


def protocol_problems(backend: object, device_type: str | None = None) -> list[str]:
    """What ``backend`` lacks to implement the :class:`~futurekit.backends.Backend` protocol.

    Only the shape is checked (a non-empty ``device_type``, equal to
    ``device_type`` when given, and every method of :data:`REQUIRED_METHODS`
    callable and not ``BackendBase``'s placeholder); behaviour is the conformance
    kit's job (:func:`futurekit.testing.check_backend`). Never raises: an attribute
    whose lookup raises counts as missing.

    Args:
        backend: the object a ``BackendSpec.load`` returned.
        device_type: the device type its spec declares, if any.

    Returns:
        One sentence per problem, each with its fix; empty when the shape is right.
    """
    problems: list[str] = []
    try:
        kind = getattr(backend, "device_type", None)
    except Exception as exc:
        kind = None
        problems.append(f"reading device_type raised {type(exc).__name__}: {exc}")
    if not problems and (not isinstance(kind, str) or not kind):
        problems.append(
            f"device_type must be a non-empty str such as 'mydev', got {kind!r}: set it as a "
            "class attribute"
        )
    elif device_type is not None and kind != device_type:
        problems.append(
            f"it reports device_type {kind!r}, its BackendSpec says {device_type!r}: make them "
            "the same"
        )
    missing = [name for name in REQUIRED_METHODS if not _implemented(backend, name)]
    placeholders = [name for name in _PLACEHOLDERS if _placeholder(backend, name)]
    cls = type(backend).__qualname__
    based = isinstance(backend, BackendBase)
    if missing:
        own = [name for name in missing if based or name not in _BASE_DEFAULTS]
        text = "it lacks these methods of the Backend protocol: " + ", ".join(missing)
        fixes = []
        if own:
            fixes.append(f"implement {'; '.join(SIGNATURES[n] for n in own)} in {cls}")
        inherited = [name for name in missing if name not in own]
        if inherited:
            fixes.append(
                "subclass futurekit.backends.BackendBase for the defaults of "
                + ", ".join(inherited)
            )
        problems.append(f"{text} ({'; and '.join(fixes)})")
    if placeholders:
        needed = "; ".join(SIGNATURES[n] for n in placeholders)
        problems.append(
            f"{cls} does not override BackendBase's {', '.join(placeholders)}, which only "
            f"raises NotImplementedError (implement {needed} in {cls})"
        )
    return problems


def _code_of(member: Any) -> Any:
    """The code object of a method, through bound methods and decorators."""
    for _ in range(8):
        func = getattr(member, "__func__", None)
        if func is not None:
            member = func
            continue
        wrapped = getattr(member, "__wrapped__", None)
        if wrapped is None:
            break
        member = wrapped
    return getattr(member, "__code__", None)


def blame(exc: BaseException, backend: object) -> str | None:
    """The protocol method of ``backend`` that ``exc`` was raised in, if any.

    Walks the traceback and returns the name of the innermost frame that runs one
    of the backend's protocol methods (``BackendBase``'s defaults included);
    ``None`` when the exception did not come from inside one (a method written in
    C, or an error of futurekit's own).
    """
    codes: dict[Any, str] = {}
    for name in (*REQUIRED_METHODS, *OPTIONAL_METHODS):
        try:
            member = getattr(backend, name, None)
        except Exception:
            continue
        code = _code_of(member)
        if code is not None:
            codes.setdefault(code, name)
    found: str | None = None
    tb = exc.__traceback__
    while tb is not None:
        method = codes.get(tb.tb_frame.f_code)
        if method is not None:
            found = method
        tb = tb.tb_next
    return found
