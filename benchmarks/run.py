"""Run the benchmark suite from a checkout: the table, the JSON results, the docs plot.

    python benchmarks/run.py                 # full run (a few minutes)
    python benchmarks/run.py --quick         # the quick version (under a minute)
    python benchmarks/run.py --update-docs   # also rewrite the table of docs/benchmarks.md

A thin wrapper over the package's harness (``futurekit bench`` runs the same code):
it writes ``benchmarks/results/latest.json`` and ``docs/img/benchmarks.png`` by default
(``--json`` / ``--plot`` choose other paths, ``--no-plot`` skips matplotlib).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from futurekit._cli.bench.harness import checkout_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(checkout_main(ROOT))
