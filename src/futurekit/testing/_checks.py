"""The conformance checks, in the order ``check_backend`` runs them.

Each takes the shared :class:`~futurekit.testing._kit.Ctx` and raises
``AssertionError`` (or any error) when the backend or the core misbehaves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from futurekit.backends._spec import protocol_problems
from futurekit.core._devices import Device
from futurekit.core._errors import CallbackError
from futurekit.core._future import Future

from ._kit import Ctx, Probe, bounded, events_of, future_on, parse_devices, retry_async
from ._spy import FailingRecordSpy, Marker, Spy

__all__ = ["CHECKS", "Check"]


def _check_protocol(ctx: Ctx) -> None:
    # The same shape check the registry runs when it loads a backend.
    problems = protocol_problems(ctx.backend)
    assert not problems, "; ".join(problems)


def _check_availability(ctx: Ctx) -> None:
    backend = ctx.backend
    ok = backend.is_available()
    assert isinstance(ok, bool), f"is_available() must return a bool, got {ok!r}"
    if not ok:
        reason = getattr(backend, "unavailable_reason", lambda: None)()
        raise AssertionError(f"is_available() is False ({reason or 'no reason given'})")
    count = backend.device_count()
    assert isinstance(count, int) and count >= 1, (
        f"device_count() must be an int >= 1 on an available backend, got {count!r}"
    )
    ctx.devices = parse_devices(ctx)


def _check_device_of(ctx: Ctx) -> None:
    backend = ctx.backend
    foreign = [None, 0, 1.5, "x", b"x", [], {}, (), object(), threading.Lock(), ctx.devices[0]]
    for obj in foreign:
        got = backend.device_of(obj)
        assert got is None, f"device_of({obj!r}) returned {got!r}; it must be None for non-buffers"
    if ctx.make_buffer is None and ctx.ops is None:
        return
    for device in ctx.devices:
        buffer = ctx.buffer(device)
        got = backend.device_of(buffer)
        assert got == device, f"device_of() of a buffer made on {device} returned {got!r}"


def _check_streams(ctx: Ctx) -> None:
    backend = ctx.backend
    for device in ctx.devices:
        first, second = backend.current_stream(device), backend.current_stream(device)
        assert first == second, (
            f"current_stream({device}) changed between two calls: {first!r} then {second!r}"
        )
        backend.stream_from_pool(device)


def _check_use_streams(ctx: Ctx) -> None:
    backend = ctx.backend
    before = ctx.current()
    other_before = ctx.in_thread(ctx.current)
    pools = ctx.pools()
    with backend.use_streams(list(pools.values())):
        for device, stream in pools.items():
            got = backend.current_stream(device)
            assert got == stream, (
                f"inside use_streams() current_stream({device}) is {got!r}, not {stream!r}"
            )
        other = ctx.in_thread(ctx.current)
        assert other == other_before, "use_streams() changed the current streams of another thread"
        first = ctx.devices[0]
        nested = backend.stream_from_pool(first)
        with backend.use_streams([nested]):
            assert backend.current_stream(first) == nested, "nested use_streams() had no effect"
        got = backend.current_stream(first)
        assert got == pools[first], f"a nested use_streams() left {got!r} current on {first}"
    assert ctx.current() == before, "use_streams() did not restore the previous current streams"
    try:
        with backend.use_streams(list(pools.values())):
            raise Probe
    except Probe:
        pass
    assert ctx.current() == before, "use_streams() did not restore the streams after an error"


def _check_events(ctx: Ctx) -> None:
    backend = ctx.backend
    for device in ctx.devices:
        producer, consumer = backend.stream_from_pool(device), backend.stream_from_pool(device)
        event = backend.record_event(producer)
        bounded(partial(backend.synchronize_event, event), ctx.timeout, "synchronize_event()")
        done = backend.query_event(event)
        assert done is True, f"query_event() after synchronize_event() returned {done!r}, not True"
        backend.wait_event(consumer, event)
        later = backend.record_event(consumer)
        bounded(partial(backend.synchronize_event, later), ctx.timeout, "synchronize_event()")
        assert backend.query_event(later) is True, (
            "an event recorded after wait_event() never completed"
        )


def _check_event_ordering(ctx: Ctx) -> None:
    backend, ops = ctx.backend, ctx.ops
    assert ops is not None

    def once(device: Device) -> str | None:
        producer, consumer = backend.stream_from_pool(device), backend.stream_from_pool(device)
        buffer = ops.make_buffer(device)
        start = time.monotonic()
        ops.write(producer, buffer, 1, ops.delay)
        early = ctx.early(start)
        event = backend.record_event(producer)
        complaint = None
        if early and backend.query_event(event):
            complaint = (
                f"query_event() is True right after recording behind {ops.delay} s of work: "
                "record_event() blocks the host or the work is not asynchronous"
            )
        early = ctx.early(start)
        backend.wait_event(consumer, event)
        if complaint is None and early and backend.query_event(event):
            complaint = "wait_event() blocked the host until the event completed"
        got = ops.read(consumer, buffer)
        assert got == 1, (
            f"a stream that waited on the producer's event read {got!r}, not 1: wait_event() "
            "does not order the waiting stream after the event"
        )
        return complaint

    for device in ctx.devices:
        retry_async(partial(once, device), ctx)


def _check_set_result_and_wait(ctx: Ctx) -> None:
    backend, devices = ctx.backend, ctx.devices
    spy = Spy(backend)
    fut = future_on(spy, devices)
    value = [ctx.buffer(d) for d in devices]
    producers = ctx.pools()
    with backend.use_streams(list(producers.values())):
        fut.set_result(value)
    records = spy.entries("record")
    assert len(records) == len(devices), (
        f"set_result() recorded {len(records)} events for buffers on {len(devices)} devices "
        "(one per used device expected)"
    )
    for device, event in events_of(fut):
        stream = next(s for _, s, e in records if e is event)
        assert stream == producers[device], (
            f"the event for {device} was recorded on {stream!r}, not on the current stream "
            f"{producers[device]!r}"
        )
    consumers = ctx.pools()
    mark = len(spy.log)
    with backend.use_streams(list(consumers.values())):
        got = fut.wait(ctx.timeout)
    assert got is value, "wait() did not return the very object given to set_result()"
    waits = spy.entries("wait", mark)
    for device, event in events_of(fut):
        assert any(s == consumers[device] and e is event for _, s, e in waits), (
            f"wait() did not make the current stream on {device} wait on the future's event"
        )


def _check_callback_streams(ctx: Ctx) -> None:
    backend, devices = ctx.backend, ctx.devices
    spy = Spy(backend)
    fut = future_on(spy, devices)
    seen: dict[str, tuple[dict[Device, Any], int]] = {}

    def observe(tag: str) -> None:
        seen[tag] = (ctx.current(), len(spy.log))

    def then_callback(f: Future[Any]) -> Any:
        observe("then")
        return [ctx.buffer(d) for d in devices]  # the child uses every device

    fut.add_done_callback(lambda f: observe("add_done_callback"))
    child = fut.then(then_callback)
    before = ctx.current()
    first = devices[0]
    with backend.use_streams([backend.stream_from_pool(first)]):
        fut.set_result([ctx.buffer(first)])
    assert ctx.current() == before, "the current streams were not restored after the callbacks"
    for tag in ("add_done_callback", "then"):
        assert tag in seen, f"the {tag} callback did not run"
        streams, pos = seen[tag]
        log = spy.log[:pos]
        pools = {d: s for kind, d, s in log if kind == "pool"}
        for device in devices:
            assert device in pools, f"no pool stream was taken on {device} for the {tag} callback"
            assert streams[device] == pools[device], (
                f"inside the {tag} callback the current stream on {device} is "
                f"{streams[device]!r}, not the fresh pool stream {pools[device]!r}"
            )
        for device, event in events_of(fut):
            assert any(k == "wait" and s == pools[device] and e is event for k, s, e in log), (
                f"the pool stream on {device} did not wait on the event before the {tag} callback"
            )
    child.wait(ctx.timeout)
    then_pools = {d: s for kind, d, s in spy.log[: seen["then"][1]] if kind == "pool"}
    child_events = events_of(child)
    assert {d for d, _ in child_events} == set(devices), (
        f"the then() child recorded events on {[str(d) for d, _ in child_events]}, "
        f"expected one per device {[str(d) for d in devices]}"
    )
    records = spy.entries("record")
    for device, event in child_events:
        stream = next(s for _, s, e in records if e is event)
        assert stream == then_pools[device], (
            f"the then() child recorded its event on {device} on {stream!r}, not on the "
            f"callback's pool stream {then_pools[device]!r}"
        )


def _check_bad_device(ctx: Ctx) -> None:
    devices = ctx.devices
    if len(devices) >= 2:
        good, bad = devices[-1], devices[0]
        buffer = ctx.buffer(bad)
    else:
        good = devices[0]
        bad = Device(good.type, good.index + 1)
        buffer = Marker(bad)
    spy = Spy(ctx.backend)
    fut = future_on(spy, [good])
    ran: list[str] = []
    fut.add_done_callback(lambda f: ran.append("add_done_callback"))

    def then_callback(f: Future[Any]) -> str:
        ran.append("then")
        return "child ok"

    child = fut.then(then_callback)
    fut.set_result(buffer)  # must return normally
    assert fut.done(), "the future is not done after set_result() with a buffer on a bad device"
    expected = (
        f"The result contained tensors residing on device(s) {bad} which are not among "
        f"the expected device(s) {good}"
    )
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("wait()", partial(fut.wait, ctx.timeout)),
        ("value()", fut.value),
    ]
    for name, call in calls:
        try:
            call()
        except ValueError as exc:
            assert str(exc) == expected, f"{name} raised {str(exc)!r}, expected {expected!r}"
        else:
            raise AssertionError(f"{name} did not raise ValueError for a buffer on {bad}")
    assert ran == ["add_done_callback", "then"], f"callbacks that ran: {ran}"
    assert child.wait(ctx.timeout) == "child ok", "the then() child did not complete"
    assert not spy.entries("record"), "events were recorded for a value on a bad device"


def _check_failure_injection(ctx: Ctx) -> None:
    devices = ctx.devices
    spy = FailingRecordSpy(ctx.backend)
    fut = future_on(spy, devices)
    ran: list[str] = []
    fut.add_done_callback(lambda f: ran.append("add_done_callback"))
    child_ok = fut.then(lambda f: "ok")
    child_err = fut.then(lambda f: f.value())
    fut.set_result([ctx.buffer(d) for d in devices])  # must return normally
    assert fut.done(), "the future is not done after record_event() failed"
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("wait()", partial(fut.wait, ctx.timeout)),
        ("value()", fut.value),
    ]
    for name, call in calls:
        try:
            call()
        except BaseException as exc:
            assert exc is spy.error, f"{name} raised {exc!r}, not the backend's error object"
        else:
            raise AssertionError(f"{name} did not raise the error record_event() raised")
    assert ran == ["add_done_callback"], "the add_done_callback callback did not run"
    assert child_ok.wait(ctx.timeout) == "ok", "a then() child ignoring the error did not complete"
    err = child_err.exception(ctx.timeout)
    assert isinstance(err, CallbackError) and err.__cause__ is spy.error, (
        f"a then() child reading the value failed with {err!r}, not a CallbackError caused "
        "by the backend's error"
    )
    late: list[int] = []
    fut.add_done_callback(lambda f: late.append(1))
    assert late == [1], "a callback added after the failure did not run"


def _check_ready_and_synchronize(ctx: Ctx) -> None:
    backend, devices, ops = ctx.backend, ctx.devices, ctx.ops

    def once() -> str | None:
        fut = future_on(backend, devices)
        assert not fut.is_ready(), "is_ready() is True on a pending future"
        value = [ctx.buffer(d) for d in devices]
        producers = ctx.pools()
        complaint = None
        start = time.monotonic()
        with backend.use_streams(list(producers.values())):
            if ops is not None:
                for device, buffer in zip(devices, value, strict=True):
                    ops.write(producers[device], buffer, 7, ops.delay)
            early = ctx.early(start)
            fut.set_result(value)
        if early and fut.is_ready():
            complaint = "is_ready() is True while the producer's work still runs"
        early = ctx.early(start)
        with backend.use_streams(list(ctx.pools().values())):
            fut.wait(ctx.timeout)
        if complaint is None and early and fut.is_ready():
            complaint = (
                "wait() blocked the host until the device work finished; it must only make "
                "the current streams wait"
            )
        bounded(fut.synchronize, ctx.timeout, "Future.synchronize()")
        assert fut.is_ready(), "is_ready() is False after synchronize()"
        for device, event in events_of(fut):
            assert backend.query_event(event), (
                f"the event on {device} is pending after synchronize()"
            )
        return complaint

    retry_async(once, ctx)


def _check_data_ordering(ctx: Ctx) -> None:
    backend, devices, ops = ctx.backend, ctx.devices, ctx.ops
    assert ops is not None
    first, last = devices[0], devices[-1]
    fut = future_on(backend, devices)
    buffer = ops.make_buffer(first)
    in_callback: list[Any] = []

    def callback(f: Future[Any]) -> Any:
        in_callback.append(ops.read(backend.current_stream(first), f.value()[0]))
        out = ops.make_buffer(last)  # the callback moves the data to another device
        ops.write(backend.current_stream(last), out, 2, ops.delay)
        return out

    child = fut.then(callback)
    producer = backend.stream_from_pool(first)
    with backend.use_streams([producer]):
        ops.write(producer, buffer, 1, ops.delay)
        fut.set_result([buffer])
    assert in_callback == [1], (
        f"a callback reading the value on its pool stream saw {in_callback}, not [1]"
    )
    consumer = backend.stream_from_pool(first)
    with backend.use_streams([consumer]):
        fut.wait(ctx.timeout)
        got = ops.read(consumer, buffer)
    assert got == 1, f"a consumer stream read {got!r} after wait(), not the producer's 1"
    consumer = backend.stream_from_pool(last)
    with backend.use_streams([consumer]):
        out = child.wait(ctx.timeout)
        got = ops.read(consumer, out)
    assert got == 2, f"a consumer read {got!r} after the child's wait(), not the callback's 2"


class Check(NamedTuple):
    """One conformance check: its name, its function, and the backend methods it tests."""

    name: str
    run: Callable[[Ctx], None]
    #: Whether it needs real buffers and buffer operations (``ops``).
    needs_ops: bool
    #: The protocol methods whose contract (the fix) a failed assertion quotes.
    methods: tuple[str, ...]


_STREAMS = ("current_stream", "stream_from_pool", "use_streams")
_EVENTS = ("record_event", "wait_event", "query_event", "synchronize_event")

CHECKS: tuple[Check, ...] = (
    Check("protocol", _check_protocol, False, ()),  # its problems carry their fixes
    Check("availability", _check_availability, False, ("is_available", "device_count")),
    Check("device_of", _check_device_of, False, ("device_of",)),
    Check("streams", _check_streams, False, ("current_stream", "stream_from_pool")),
    Check("use_streams", _check_use_streams, False, ("use_streams",)),
    Check("events", _check_events, False, _EVENTS),
    Check("event ordering", _check_event_ordering, True, ("record_event", "wait_event")),
    Check("set_result and wait", _check_set_result_and_wait, False, (*_STREAMS, *_EVENTS)),
    Check("callback streams", _check_callback_streams, False, _STREAMS),
    Check("bad device", _check_bad_device, False, ("device_of",)),
    Check("failure injection", _check_failure_injection, False, ()),  # the core's part
    Check("is_ready and synchronize", _check_ready_and_synchronize, False, _EVENTS),
    Check("data ordering", _check_data_ordering, True, ("wait_event", "use_streams")),
)
