"""``python -m futurekit``: the ``futurekit`` command line (see :mod:`futurekit._cli`)."""

from futurekit._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
