"""``futurekit doctor``'s round trip: a device future used as a program uses it.

On one device of one backend, from threads the backend has never seen: a
``Future(devices=[...], backend=...)``, an ``add_done_callback`` and a ``then``
registered while it is pending, ``set_result`` with a buffer of the backend when
one can be made, ``wait``, ``synchronize`` and ``is_ready`` on the future and on
the ``then`` child. It runs once in a new ``threading.Thread``, and once in a
``concurrent.futures`` worker thread with ``set_result`` called from yet another
thread (so the callbacks run there). Each run is bounded in time.

A failure names the function the program called, what it raised, the backend
method it came from (found in the traceback) and that method's contract: the fix.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from futurekit.backends._contract import blame, contract
from futurekit.core._devices import Device
from futurekit.core._future import Future

__all__ = ["THREAD_PREFIX", "RoundTripError", "buffer_maker", "round_trips"]

logger = logging.getLogger("futurekit")

#: The names of the threads the round trips run in start with this.
THREAD_PREFIX = "futurekit-doctor"
#: The two kinds of thread a round trip runs in, as a message names them.
NEW_THREAD = "a new threading.Thread"
EXECUTOR = "a concurrent.futures worker thread (set_result from another new thread)"


class RoundTripError(Exception):
    """A step of the round trip gave a wrong answer or raised (the message says which)."""


def _torch_tensor(device: Device) -> Any:
    torch = importlib.import_module("torch")
    tensor = torch.zeros(4, device=str(device))
    tensor.add_(1)  # queued on the current stream: set_result must record after it
    return tensor


def _sim_buffer(device: Device) -> Any:
    sim = importlib.import_module("futurekit.testing.sim")
    return sim.Buffer(device, 1)


def _cuda_core_buffer(device: Device) -> Any:
    core = importlib.import_module("cuda.core")
    return core.Device(device.index).allocate(64)


#: Buffers futurekit knows how to make for a device type, tried in order; the first
#: one the backend recognises (``device_of``) is used.
_SAMPLES: dict[str, tuple[Callable[[Device], Any], ...]] = {
    "sim": (_sim_buffer,),
    "cuda": (_torch_tensor, _cuda_core_buffer),
}


def buffer_maker(spec: Any, backend: Any, device: Device) -> Callable[[Device], Any] | None:
    """How to make a buffer of ``backend``: its spec's ``make_buffer``, else a known one.

    A known maker is used only if the backend recognises its buffer on ``device``;
    ``None`` when there is neither (the round trip then uses a plain value).
    """
    own = getattr(spec, "make_buffer", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    makers = _SAMPLES.get(device.type)
    if makers is None and device.type != "cpu":
        makers = (_torch_tensor,) if "torch" in sys.modules else ()
    for make in makers or ():
        try:
            if backend.device_of(make(device)) == device:
                return make
        except Exception as exc:
            logger.debug("doctor: %s could not make a %s buffer: %r", make.__name__, device, exc)
    return None


class _Trip:
    """One round trip's state: the step running now, and what the callbacks saw."""

    def __init__(self, name: str, backend: Any, device: Device, make: Any, timeout: float):
        self.name = name
        self.backend = backend
        self.device = device
        self.make = make
        self.timeout = timeout
        self.step = "nothing yet"
        self.seen: dict[str, Any] = {}
        self.value: Any = None
        #: The type of the buffer the value holds (None: a plain value).
        self.buffer: str | None = None
        #: The futures made, so that their errors count as seen (the report has them).
        self.futures: list[Future[Any]] = []

    def callback(self, tag: str) -> Callable[[Future[Any]], str]:
        """A callback that reads the value and the current stream, as user code does."""

        def run(fut: Future[Any]) -> str:
            try:
                self.seen[tag] = (fut.value(), self.backend.current_stream(self.device))
            except BaseException as exc:
                self.seen[tag] = exc
                raise
            return f"{tag} ran"

        return run

    def start(self) -> tuple[Future[Any], Future[Any]]:
        """Make the future and register the callbacks (before it completes)."""
        self.step = "BackendSpec.make_buffer()"
        if self.make is not None:
            buffer = self.make(self.device)
            self.buffer = type(buffer).__name__
            self.value = {"buffer": buffer}
        else:
            self.value = {"tag": "doctor"}
        self.step = f"Future(devices=[{str(self.device)!r}], backend={self.name!r})"
        fut: Future[Any] = Future(devices=[str(self.device)], backend=self.name)
        self.step = "Future.add_done_callback()"
        fut.add_done_callback(self.callback("add_done_callback"))
        self.step = "Future.then()"
        child = fut.then(self.callback("then"))
        self.futures += (fut, child)
        _expect(not fut.done() and not child.done(), "a new future is already done")
        return fut, child

    def complete(self, fut: Future[Any]) -> None:
        self.step = "Future.set_result()"
        fut.set_result(self.value)

    def finish(self, fut: Future[Any], child: Future[Any]) -> None:
        """Wait for both futures and check what the program would rely on."""
        self.step = "Future.wait()"
        _expect(fut.wait(self.timeout) is self.value, "wait() did not return set_result's value")
        self.step = "Future.synchronize()"
        fut.synchronize()
        self.step = "Future.is_ready()"
        _expect(fut.is_ready(), "is_ready() is False after synchronize()")
        self.step = "Future.wait() on the then() child"
        _expect(child.wait(self.timeout) == "then ran", "the then() child has the wrong value")
        self.step = "Future.synchronize() on the then() child"
        child.synchronize()
        _expect(child.is_ready(), "the then() child is not ready after synchronize()")
        for tag in ("add_done_callback", "then"):
            self.step = f"the {tag}() callback"
            seen = self.seen.get(tag)
            if isinstance(seen, BaseException):
                raise seen
            if seen is None:
                raise RoundTripError(f"the {tag}() callback did not run")
            _expect(seen[0] is self.value, f"the {tag}() callback did not see the value")

    def retrieve(self) -> None:
        """Mark the failed futures' errors as retrieved: the report says what they were."""
        for fut in self.futures:
            if fut.done():
                fut.exception(0)


def _expect(cond: bool, what: str) -> None:
    if not cond:
        raise RoundTripError(what)


def _in_new_thread(trip: _Trip) -> None:
    try:
        fut, child = trip.start()
        trip.complete(fut)
        trip.finish(fut, child)
    finally:
        trip.retrieve()


def _in_executor_worker(trip: _Trip) -> None:
    try:
        fut, child = trip.start()
        completer = _bounded(lambda: trip.complete(fut), trip.timeout, f"{THREAD_PREFIX}-complete")
        if completer is not None:
            raise completer
        trip.finish(fut, child)
    finally:
        trip.retrieve()


def _bounded(fn: Callable[[], None], timeout: float, name: str) -> BaseException | None:
    """Run ``fn`` in a new daemon thread; its exception, or a timeout, else ``None``."""
    box: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            box.append(exc)
        else:
            box.append(None)

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if not box:
        return TimeoutError(f"did not finish within {timeout:g} s (a hung stream or event?)")
    return box[0]


def _describe(trip: _Trip, where: str, exc: BaseException) -> str:
    """What failed, in words: where, the function called, the error, the method, the fix."""
    if isinstance(exc, TimeoutError):
        return f"in {where}, {trip.step} timed out after {trip.timeout:g} s (a hung stream?)"
    if isinstance(exc, RoundTripError):
        return f"in {where}, after {trip.step}: {exc}"
    text = f"in {where}, {trip.step} raised {type(exc).__name__}: {exc}"
    cause: BaseException | None = exc
    for _ in range(4):  # a callback's error reaches the program as a CallbackError
        if cause is None:
            break
        method = blame(cause, trip.backend)
        if method is not None:
            return f"{text} (from the backend's {method}()); {contract(method)}"
        cause = cause.__cause__ or cause.__context__
    return text


def round_trips(
    name: str, backend: Any, device: Device, make: Any, timeout: float
) -> tuple[bool, str, str | None]:
    """Run the round trip on ``device`` in both kinds of thread.

    Returns:
        Whether both passed; what ran, or what failed, in words; and the type of
        the buffer the value held (``None`` for a plain value).
    """
    trip = _Trip(name, backend, device, make, timeout)
    error = _bounded(lambda: _in_new_thread(trip), timeout, f"{THREAD_PREFIX}-{device}")
    if error is not None:
        return False, _describe(trip, NEW_THREAD, error), trip.buffer
    # Only after the new thread passed: a worker thread that hangs keeps the process
    # alive until it returns (concurrent.futures joins its workers at exit).
    trip = _Trip(name, backend, device, make, timeout)
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=THREAD_PREFIX)
    try:
        job = executor.submit(_in_executor_worker, trip)
        try:
            job.result(timeout)
        except concurrent.futures.TimeoutError:
            return False, _describe(trip, EXECUTOR, TimeoutError()), trip.buffer
        except Exception as exc:
            return False, _describe(trip, EXECUTOR, exc), trip.buffer
    finally:
        executor.shutdown(wait=False)
    steps = "Future(), add_done_callback, then, set_result, wait, synchronize, is_ready"
    return True, f"{steps} in {NEW_THREAD} and in {EXECUTOR}", trip.buffer
