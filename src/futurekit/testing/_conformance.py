"""``check_backend``: a conformance kit for device backends.

It drives a backend through the protocol and through the future core's device
semantics (those of ``torch.futures`` on CUDA) and raises ``AssertionError`` naming
the first check that failed. Each check runs in a fresh thread, so current
streams never leak between checks, and is bounded in time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from futurekit.backends._contract import blame, contract
from futurekit.backends._registry import backend_spec, describe_backend
from futurekit.core._devices import Device, DeviceLike

from ._checks import CHECKS, Check
from ._kit import Ctx, bounded
from ._ops import BufferOps, default_ops

__all__ = ["check_backend", "explain"]


def _resolve(backend: Any) -> Any:
    if not isinstance(backend, str):
        if backend is None:
            raise TypeError("check_backend() needs a backend object or a backend name, got None")
        return backend
    from futurekit.backends import _registry  # the registry's table of names

    spec = _registry.get_spec(backend.lower())
    if spec is not None:
        return _registry.get_backend(spec.device_type, spec.name)
    if backend in _registry.known_device_types():
        return _registry.get_backend(backend)
    names = ", ".join(sorted(_registry._REGISTRY.entries)) or "(none)"
    raise ValueError(
        f"check_backend(): no backend or device type is called {backend!r}; "
        f"registered backends: {names}"
    )


def check_backend(
    backend: Any,
    devices: Sequence[DeviceLike] | DeviceLike | None = None,
    *,
    make_buffer: Callable[[Device], Any] | None = None,
    ops: BufferOps | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Check that ``backend`` implements the protocol and the core's device semantics.

    The checks, in order: ``protocol`` (the methods exist), ``availability``,
    ``device_of`` (``None`` for foreign objects; the right device for buffers),
    ``streams``, ``use_streams`` (current in this thread only, nested, restored,
    also after an error), ``events`` (record, synchronize, query, wait),
    ``event ordering``, ``set_result and wait`` (one event per used device on its
    current stream; ``wait()`` makes the current streams wait), ``callback streams``
    (callbacks run with a fresh pool stream per device made current, already
    waiting on the events; a ``then`` child records on those streams), ``bad device``
    (torch's deferred ``ValueError``, callbacks still run), ``failure injection``
    (a ``record_event`` that raises completes the future with that very error, every
    callback runs), ``is_ready and synchronize`` and ``data ordering`` (a slow
    producer on one stream, consumers on others and in callbacks see its write).

    The core semantics are checked through a wrapper around ``backend`` that records
    its calls; where the kit has no real buffers it uses stand-in objects that the
    wrapper places on a device. The two checks marked *data* (``event ordering``
    and ``data ordering``) need real buffers and run only when ``ops`` is given or
    known: built in for ``sim``, and for CUDA backends that torch can drive (torch's
    own, or one whose streams expose ``__cuda_stream__`` and whose ``device_of``
    recognises torch tensors).

    Args:
        backend: a backend object, or the name of a registered backend (``"sim"``,
            ``"torch"``, ``"cuda-python"``) or of a device type.
        devices: the devices to use (``"sim:0"``, ``Device`` objects, or ``int``
            indices of the backend's type); default the first two devices (or one).
        make_buffer: ``make_buffer(device)`` returns a buffer of the backend on
            ``device``; used instead of stand-ins so that ``device_of`` is exercised
            through the core. Not needed when ``ops`` is given; by default the
            ``make_buffer`` of the backend's ``BackendSpec``, if it has one.
        ops: how to make, write and read buffers on streams (see
            :class:`~futurekit.testing.BufferOps`); enables the data checks.
        timeout: seconds a blocking step of a check (a synchronize, a wait) may
            take before it counts as a hang; a whole check may take half as long
            again, so that a hang is blamed on the step that hung.

    Returns:
        The names of the checks that ran, in order.

    Raises:
        AssertionError: a check failed; the message starts with
            ``check_backend(<backend>): check '<name>' failed`` and ends with the fix.
        TypeError: ``backend`` is None.
        ValueError: an unknown backend name, or ``devices`` that are not the
            backend's or do not exist.
        BackendUnavailableError: a backend given by name cannot be loaded.
    """
    if ops is not None and not isinstance(ops, BufferOps):
        raise TypeError(f"ops must be a futurekit.testing.BufferOps, got {ops!r}")
    if make_buffer is not None and not callable(make_buffer):
        raise TypeError(f"make_buffer must be callable, got {make_buffer!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    resolved = _resolve(backend)
    if make_buffer is None and ops is None:
        spec = backend_spec(resolved)
        make_buffer = spec.make_buffer if spec is not None else None
    ctx = Ctx(resolved, devices, make_buffer, ops, float(timeout))
    who = describe_backend(resolved)
    ran: list[str] = []
    for check in CHECKS:
        if check.needs_ops and ctx.ops is None:
            continue
        try:
            bounded(partial(check.run, ctx), ctx.timeout * 1.5, f"check {check.name!r}")
        except Exception as exc:
            if isinstance(exc, ValueError) and str(exc).startswith("check_backend"):
                raise  # bad devices argument: the caller's mistake, not the backend's
            why = explain(check, exc, resolved)
            raise AssertionError(
                f"check_backend({who}): check {check.name!r} failed: {why}"
            ) from exc
        ran.append(check.name)
        if check.name == "availability" and ctx.ops is None:
            ctx.ops = default_ops(resolved, ctx.devices[0])
    return ran


def explain(check: Check, exc: BaseException, backend: Any) -> str:
    """What went wrong in ``check`` and its fix: the backend method's contract.

    An exception raised inside one of the backend's methods names that method; a
    failed assertion quotes the contracts of the methods it names, or else of the
    methods the check tests.
    """
    method = blame(exc, backend)
    if method is not None:
        return f"{method}() raised {type(exc).__name__}: {exc}; {contract(method)}"
    text = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
    named = [m for m in check.methods if f"{m}(" in text]
    fixes = [contract(m) for m in named or check.methods]
    return "; ".join([text, *fixes])
