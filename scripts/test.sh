#!/usr/bin/env bash
# The whole test suite, as CI runs it (README command 2):
#  1. install missing Debian dependencies (as root),
#  2. Release build + every CTest test (unit, CLI, MPI, resume, Slurm),
#  3. AddressSanitizer + UndefinedBehaviorSanitizer build + the unit tests.
# CUDA sources are compiled whenever nvcc is found; GPU tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash scripts/setup-debian.sh

echo "== Release build and all tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --timeout 900

echo "== ASan + UBSan build and unit tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSTRETCH_SANITIZE=ON -DSTRETCH_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit --output-on-failure --timeout 900
