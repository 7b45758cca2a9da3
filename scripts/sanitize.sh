#!/usr/bin/env bash
# Build the compiled accelerator with AddressSanitizer and UndefinedBehaviorSanitizer, then
# run the core's tests (tests/core) against it.
#
#   scripts/sanitize.sh                 # all of tests/core
#   scripts/sanitize.sh -k fuzz -x      # extra arguments go to pytest
#   tox -e sanitize                     # the same through tox
#
# Linux with gcc or clang (CC picks one; default gcc). The checkout is left as it is: the
# sources and tests are copied to a temporary directory, where the sanitized module is
# built; Python itself is not instrumented, so the sanitizer runtimes are preloaded
# (LD_PRELOAD, inherited by the tests' subprocesses) and PYTHONMALLOC=malloc hands every
# Python allocation to ASan. Leak detection is off (the interpreter does not free
# everything at exit); any other report aborts the run with a non-zero status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
CC="${CC:-gcc}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/futurekit-sanitize.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if [ "$(uname -s)" != Linux ]; then
    echo "sanitize.sh: Linux only (LD_PRELOAD of the sanitizer runtimes)" >&2
    exit 2
fi
asan="$("$CC" -print-file-name=libasan.so)"
ubsan="$("$CC" -print-file-name=libubsan.so)"
for lib in "$asan" "$ubsan"; do
    if [ ! -e "$lib" ]; then
        echo "sanitize.sh: $CC has no $(basename "$lib") (install its sanitizer runtime)" >&2
        exit 2
    fi
done

cp -r "$ROOT/src" "$ROOT/tests" "$ROOT/pyproject.toml" "$WORK/"
find "$WORK/src" -name '_speedups*.so' -delete
include="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
suffix="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
target="$WORK/src/futurekit/core/_speedups$suffix"
"$CC" -shared -fPIC -O1 -g -fno-omit-frame-pointer \
    -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-cast-function-type \
    -I "$include" "$WORK/src/futurekit/core/_speedups.c" -o "$target"
echo "sanitize.sh: built $(basename "$target") with ASan and UBSan ($CC)"

export LD_PRELOAD="$asan $ubsan${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONMALLOC=malloc
export PYTHONPATH="$WORK/src"
unset FUTUREKIT_PURE_PYTHON
cd "$WORK"
# the module in use is the sanitized one (a report would abort the interpreter here)
"$PYTHON" -c 'from futurekit.core import _accelerator as a; assert a.status == "compiled accelerator", a.status; print("sanitize.sh:", a.speedups.__file__)'
"$PYTHON" -m pytest tests/core -p no:cacheprovider -q "$@"
