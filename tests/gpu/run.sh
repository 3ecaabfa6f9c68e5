#!/usr/bin/env bash
# Builds stretch (Release, CUDA) and runs every GPU check: the CTest tests
# labelled gpu (tests/gpu/test_*.c), the op harness on the cuda backend
# (ops_check -b cuda) and every tests/gpu/*.py with python3.
# Usage: bash tests/gpu/run.sh [build-dir]   (default: build-gpu)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build-gpu}"
jobs="${JOBS:-$(nproc)}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"

# The GPU tests skip (77) without a GPU; here that would be a silent pass.
if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "tests/gpu/run.sh: no GPU visible (nvidia-smi -L failed): nothing to test" >&2
    exit 1
fi

status=0
ctest --test-dir "$build" -L gpu --output-on-failure || status=1
# The op harness (tests/ops) on the cuda columns alone (ctest ops_check runs
# them too, with the cpu column); 77 = no GPU visible.
rc=0
"$build/ops_check" -b cuda || rc=$?
if [ "$rc" -eq 77 ]; then echo "(ops_check -b cuda skipped: no GPU)"; elif [ "$rc" -ne 0 ]; then status=1; fi

shopt -s nullglob
for py in "$root"/tests/gpu/*.py; do
    echo "== python3 $py"
    STRETCH_BUILD_DIR="$build" python3 "$py" || status=1
done
exit "$status"
