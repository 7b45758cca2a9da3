#!/bin/sh
# Build the research prototype _xwait into benchmarks/crossthread/build/ (never installed).
# Usage: sh benchmarks/crossthread/build.sh [python]   (default: python3 on PATH)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=${1:-python3}
out="$here/build"
mkdir -p "$out"
inc=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
suffix=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
${CC:-gcc} -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
    -fPIC -shared -I"$inc" "$here/_xwait.c" -o "$out/_xwait$suffix" -lpthread
echo "built $out/_xwait$suffix"
