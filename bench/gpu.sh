#!/usr/bin/env bash
# Builds stretch (Release, CUDA) and runs every GPU benchmark: each
# bench/gpu/bench_* executable of the build, the op harness's perf mode on the
# cuda backend (ops_check --perf -b cuda) and every bench/gpu/*.py.
# Usage: bash bench/gpu.sh [build-dir]   (default: build-gpu)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build-gpu}"
jobs="${JOBS:-$(nproc)}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j "$jobs"

status=0
shopt -s nullglob
for src in "$root"/bench/gpu/bench_*.c; do
    exe="$build/$(basename "$src" .c)"
    echo "== $exe"
    rc=0
    "$exe" || rc=$?
    if [ "$rc" -eq 77 ]; then echo "(skipped: no GPU)"; elif [ "$rc" -ne 0 ]; then status=1; fi
done
echo "== $build/ops_check --perf -b cuda (every op of the backend interface)"
"$build/ops_check" --perf -b cuda || status=1
for py in "$root"/bench/gpu/*.py; do
    echo "== python3 $py"
    STRETCH_BUILD_DIR="$build" python3 "$py" || status=1
done
exit "$status"
