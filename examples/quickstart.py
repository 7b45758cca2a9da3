"""Quickstart: futures, callbacks, then-chains, collect_all and wait_all.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import threading

import futurekit as fk


def main() -> None:
    # 1. A future is completed once, by whoever holds it; wait() returns the value.
    fut: fk.Future[int] = fk.Future()
    print("new future, done():", fut.done())
    fut.set_result(21)
    print("after set_result(21), done():", fut.done(), "wait():", fut.wait())

    # 2. then() returns a child future completed with the callback's return value.
    #    Callbacks registered before completion run in the completing thread, in order.
    order: list[str] = []
    source: fk.Future[int] = fk.Future()
    source.add_done_callback(lambda f: order.append(f"add_done_callback saw {f.value()}"))
    doubled = source.then(lambda f: f.value() * 2)
    plus_one = doubled.then(lambda f: f.value() + 1)
    source.add_done_callback(lambda f: order.append("second callback"))
    source.set_result(20)  # every callback above runs here, before set_result returns
    print("then chain: 20 -> doubled", doubled.wait(), "-> plus one", plus_one.wait())
    print("callback order:", order)

    # 3. A callback's error fails only its child, as a CallbackError (a RuntimeError
    #    with torch's message); the original exception is kept as __cause__.
    bad = source.then(lambda f: 1 / 0)
    try:
        bad.wait()
    except fk.CallbackError as exc:
        print("child failed:", str(exc).splitlines()[0], "| cause:", type(exc.__cause__).__name__)

    # 4. Futures completed from other threads; wait() blocks without holding the GIL.
    futures: list[fk.Future[int]] = [fk.Future() for _ in range(4)]
    threads = [threading.Thread(target=f.set_result, args=(i * i,)) for i, f in enumerate(futures)]
    for t in threads:
        t.start()

    # collect_all: a future of the list of the same futures, once all are done.
    all_done = fk.collect_all(futures)
    print("collect_all ->", [f.wait() for f in all_done.wait()])
    # wait_all: the values directly, in input order.
    print("wait_all    ->", fk.wait_all(futures))
    for t in threads:
        t.join()

    # 5. set_exception: wait() raises the very exception object.
    failing: fk.Future[int] = fk.Future()
    failing.set_exception(ValueError("no data"))
    try:
        fk.wait_all([futures[0], failing])
    except ValueError as exc:
        print("wait_all raised the input's error:", repr(exc))


if __name__ == "__main__":
    main()
