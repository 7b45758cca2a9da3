#!/usr/bin/env bash
# Release check: build the sdist and the wheel, check them with twine, install the
# wheel in a fresh virtual environment and run the quickstart and the command line
# from there (away from the checkout, so that nothing is imported from src/).
#
#   scripts/release-check.sh [OUT]     # OUT: where dist/ and the venv go (a temp dir)
#
# Offline-safe: the build runs without isolation (hatchling, build and twine come
# with the release extra: pip install -e '.[release]'), the wheel is installed with
# --no-deps --no-index, and the fresh environment gets the pluggy installed here.
# CI runs it through tests/test_release.py; .github/workflows/release.yml runs it
# before publishing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python}"
OUT="${1:-$(mktemp -d -t futurekit-release-XXXXXX)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
DIST="$OUT/dist"
rm -rf "$DIST" "$OUT/venv"

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

echo "== twine check =="
"$PYTHON" -m twine check --strict "${sdists[0]}" "${wheels[0]}"

echo "== install the wheel in a fresh venv =="
"$PYTHON" -m venv "$OUT/venv"
VPY="$OUT/venv/bin/python"
"$VPY" -m pip install --quiet --no-deps --no-index "${wheels[0]}"
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
echo "release check passed: ${sdists[0]##*/} ${wheels[0]##*/}"
