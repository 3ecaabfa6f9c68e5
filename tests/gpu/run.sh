#!/usr/bin/env bash
# Builds stretch (Release, CUDA) and runs every GPU check: the CTest tests
# labelled gpu (tests/gpu/test_*.c) and every tests/gpu/*.py with python3.
# Usage: bash tests/gpu/run.sh [build-dir]   (default: build-gpu)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build-gpu}"
jobs="${JOBS:-$(nproc)}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"

status=0
ctest --test-dir "$build" -L gpu --output-on-failure || status=1

shopt -s nullglob
for py in "$root"/tests/gpu/*.py; do
    echo "== python3 $py"
    STRETCH_BUILD_DIR="$build" python3 "$py" || status=1
done
exit "$status"
