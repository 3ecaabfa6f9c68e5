#!/bin/sh
# CPU emulation of the cu_ops kernels that need neither cuBLAS nor CUB (no GPU
# needed): rope, rmsnorm (incl. the two-pass dweight), swiglu, cast / axpy,
# adamw + grad norm, and the xent row kernel. The WHOLE .cu files (kernels
# and their host launchers: vector-width and alignment dispatch, grid sizes)
# are compiled with g++ against emu.cpp; `k<<<g, b, s, st>>>(args);` becomes
# an emulated launch (one fiber per CUDA thread, shuffles and __syncthreads
# as barriers, dynamic smem NaN-poisoned, guard pages after every buffer,
# alignment + bounds checks on every load_vec / store_vec access).
# test_ops.cpp compares with the CPU ops of kernels/cpu/*.c (linked in).
# A review tool, not a ctest.   tests/gpu/emu/run_ops.sh [filter substring]
# EMU_TABLES=1 runs the shapes of the op harness's tables (tests/ops/ops_cases_*.h)
# instead of this emulator's own cases.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../../..
src=$root/kernels/cuda
out=${EMU_OUT:-/tmp/stretch_ops_emu}
mkdir -p "$out"
prep() {  # drop includes; launches -> emu_launch; dynamic smem -> smem_raw
    grep -v '^#include\|^#pragma once' "$1" | perl -0pe '
        s/(\w+(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);/emu_launch($2, [&] { $1($3); });/sg;
        s/extern __shared__ (\w+) (\w+)\[\];/$1 *const $2 = ($1 *)smem_raw;/g;
        s/(R r = reinterpret_cast<const R \*>\(p\)\[c\];)/check_global(p + c * PER, CHUNK, CHUNK); $1/g;
        s/(reinterpret_cast<R \*>\(p\)\[c\] = r;)/check_global(p + c * PER, CHUNK, CHUNK); $1/g;'
}
prep "$src/cu_internal.cuh" > "$out/cu_internal.inc"
grep -q 'check_global(p + c \* PER' "$out/cu_internal.inc" || { echo "load_vec/store_vec not found"; exit 1; }
for f in rope rmsnorm swiglu elementwise adamw; do prep "$src/cu_$f.cu" > "$out/cu_$f.inc"; done
# cu_xent.cu: the row kernel and softmax_rows only (the rest is cuBLAS).
prep "$src/cu_xent.cu" | awk '/^size_t cu_xent_scratch_bytes/ {exit} {print}' > "$out/cu_xent.inc"
cp "$here/emu.cpp" "$here/test_ops.cpp" "$out/"
cpu="rope rmsnorm swiglu adamw xent matmul"
objs=""
for f in $cpu; do
    gcc -std=gnu11 -O2 -w -c -I"$root/common" -I"$root/kernels/cpu" "$root/kernels/cpu/$f.c" -o "$out/$f.o"
    objs="$objs $out/$f.o"
done
g++ -std=c++17 -O2 -w -ffp-contract=off -fno-strict-aliasing -I"$root/common" -I"$root/kernels/cpu" -I"$root/tests/ops" -I"$out" \
    -o "$out/test_ops" "$out/test_ops.cpp" $objs $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) -lm
exec "$out/test_ops" "$@"
