"""``python -m futurekit``: the ``futurekit`` command line (see :mod:`futurekit.cli`)."""

from futurekit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
