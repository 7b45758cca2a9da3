"""Stream ordering on the simulated device: what wait() buys you, without a GPU.

A producer stream runs a slow "kernel" and then writes a buffer; the future is
completed right after launching (as torch's docs allow), with the producer stream
current. A consumer stream that skips wait() reads stale data; one that calls
wait() is ordered after the producer, and the host never blocked on the device.

The slow kernel here runs until the script releases it (a threading.Event), so
what the script prints does not depend on timing.

Run: python examples/sim_streams.py
"""

from __future__ import annotations

import threading

from futurekit import Future
from futurekit.testing import sim


def read_on(stream, buffer):
    """Launch a read of ``buffer`` on ``stream`` and bring the result to the host."""
    seen = []
    sim.launch(stream, lambda: seen.append(buffer.value))
    stream.synchronize()
    return seen[0]


def main() -> None:
    buffer = sim.Buffer("sim:0", 0)
    producer = sim.Stream("sim:0", "producer")
    consumer = sim.Stream("sim:0", "consumer")
    kernel_may_finish = threading.Event()

    with sim.use_stream(producer):
        fut = Future(devices=["sim:0"])
        sim.launch(producer, kernel_may_finish.wait)  # a slow kernel ...
        sim.launch(producer, setattr, buffer, "value", 42)  # ... that writes 42
        fut.set_result(buffer)  # records an event on the producer stream
    print(f"set_result returned: done()={fut.done()}, is_ready()={fut.is_ready()}")

    stale = read_on(consumer, fut.value())  # value(): no synchronization at all
    print(f"consumer without wait() read {stale}: stale, the producer is still running")

    with sim.use_stream(consumer):
        fut.wait()  # the consumer stream now waits on the producer's event
        print(f"wait() returned to the host at once: is_ready()={fut.is_ready()}")
        seen = []
        sim.launch(consumer, lambda: seen.append(buffer.value))  # queued behind the event

    kernel_may_finish.set()
    consumer.synchronize()
    print(f"consumer after wait() read {seen[0]}: ordered after the producer")

    def on_pool_stream(f):
        stream = sim.current_stream("sim:0")  # a fresh pool stream, already synchronized
        return f"a callback ran with {stream!r} current and read {read_on(stream, f.value())}"

    print(fut.then(on_pool_stream).wait())
    fut.synchronize()
    print(f"after synchronize(): is_ready()={fut.is_ready()}")
    assert (stale, seen[0]) == (0, 42)


if __name__ == "__main__":
    main()
