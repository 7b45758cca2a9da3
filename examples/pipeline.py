"""A multi-stage pipeline with errors, timeouts and cancellation.

Records flow through three stages (parse -> enrich -> store). Each stage is a
``then`` callback run on a thread pool (``executor=``), so a slow stage never runs
in the thread that completed the previous one. One record is malformed, one
enrichment never answers: the pipeline reports the error, gives up on the hung
record after a timeout, and still delivers every other result.

Run: python examples/pipeline.py
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import futurekit as fk

RAW = ["1,alice", "2,bob", "three,carol", "4,dave", "5,erin"]
HUNG_ID = 4  # the enrichment service never answers for this record


def parse(f: fk.Future[str]) -> tuple[int, str]:
    ident, name = f.value().split(",")
    return int(ident), name  # int("three") raises ValueError


def enrich(f: fk.Future[tuple[int, str]], lookups: dict[int, fk.Future[str]]) -> fk.Future[str]:
    ident, name = f.value()
    answer: fk.Future[str] = fk.Future()
    lookups[ident] = answer
    if ident != HUNG_ID:
        answer.set_result(f"{name.title()} (id {ident})")
    return answer  # a future: then(..., unwrap=True) completes the stage with its value


def store(f: fk.Future[str], sink: list[str]) -> str:
    sink.append(f.value())
    return f"stored {f.value()!r}"


def main() -> None:
    sink: list[str] = []
    lookups: dict[int, fk.Future[str]] = {}
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="stage") as pool:
        sources: list[fk.Future[str]] = [fk.Future() for _ in RAW]
        outputs = [
            src.then(parse, executor=pool)
            .then(lambda f: enrich(f, lookups), executor=pool, unwrap=True)
            .then(lambda f: store(f, sink), executor=pool)
            for src in sources
        ]
        for src, line in zip(sources, RAW, strict=True):  # feed the pipeline
            src.set_result(line)

        deadline = time.monotonic() + 2.0
        for line, out in zip(RAW, outputs, strict=True):
            remaining = max(0.0, deadline - time.monotonic())
            try:
                print(f"{line!r:15} -> {out.wait(timeout=min(remaining, 0.5))}")
            except fk.TimeoutError:
                # wait(timeout=...) raises futurekit.TimeoutError (a built-in
                # TimeoutError); the future is unaffected, so give up explicitly.
                print(f"{line!r:15} -> timed out; cancelling the lookup")
                lookups[HUNG_ID].cancel()
            except fk.CallbackError as exc:
                # A stage raised: every later stage sees the failed parent and fails
                # too; the root cause is kept as __cause__ along the chain.
                root: BaseException = exc
                while isinstance(root, fk.CallbackError) and root.__cause__ is not None:
                    root = root.__cause__
                print(f"{line!r:15} -> failed: {type(root).__name__}: {root}")

        # The cancelled lookup makes its stage fail with CancelledError.
        hung = outputs[RAW.index(f"{HUNG_ID},dave")]
        try:
            hung.wait(timeout=2.0)
        except fk.CallbackError as exc:
            print("after cancel, the hung record failed with", type(exc.__cause__).__name__)
        except fk.CancelledError:
            print("after cancel, the hung record was cancelled")

        # collect_any / as_completed go beyond torch: results in completion order.
        done = [f for f in fk.as_completed(outputs, timeout=2.0) if f.exception() is None]
        print(f"{len(done)} of {len(RAW)} records stored: {sorted(sink)}")


if __name__ == "__main__":
    main()
