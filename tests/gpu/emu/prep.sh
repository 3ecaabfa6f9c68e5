#!/bin/sh
# Generates the emulated sources of kernels/cuda for emu_gpu.cpp (CMake
# target stretch_gpuemu): every .cu file whole, host launchers included,
# with `k<<<g, b, s, st>>>(args);` turned into an emulated launch ENQUEUED
# on stream st (arguments evaluated at the launch, as CUDA does), dynamic
# smem mapped onto the emulator's, load_vec/store_vec bounds-checked, and
# the PTX wrappers of cu_attn_tile.cuh replaced by emu.cpp's.
#   prep.sh SRC_DIR(kernels/cuda) OUT_DIR
set -e
src=$1
out=$2
mkdir -p "$out"
prep() {
    grep -v '^#include\|^#pragma once' "$1" | perl -0pe '
        s/(\w+<D, M>)<<<(.*?)>>>\(([^;]*?\*s)\)/emu_launch($2, emu_bind([=](auto... emu_a) { $1(emu_a...); }, $3))/sg;
        s/extern __shared__ __align__\(16\) unsigned char smem_raw\[\];//g;
        s/(\w+(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);/emu_launch($2, emu_bind([=](auto... emu_a) { $1(emu_a...); }, $3));/sg;
        s/extern __shared__ (\w+) (\w+)\[\];/$1 *const $2 = ($1 *)smem_raw;/g;
        s/(R r = reinterpret_cast<const R \*>\(p\)\[c\];)/check_global(p + c * PER, CHUNK, CHUNK); $1/g;
        s/(reinterpret_cast<R \*>\(p\)\[c\] = r;)/check_global(p + c * PER, CHUNK, CHUNK); $1/g;'
}
prep "$src/cu_internal.cuh" > "$out/cu_internal.inc.tmp"
grep -q 'check_global(p + c \* PER' "$out/cu_internal.inc.tmp" || { echo "prep.sh: load_vec/store_vec not found" >&2; exit 1; }
mv "$out/cu_internal.inc.tmp" "$out/cu_internal.inc"
awk '/^\/\/ Tile loads/ {p=1} p' "$src/cu_attn_tile.cuh" > "$out/tile.cuh.tmp"
prep "$out/tile.cuh.tmp" > "$out/cu_attn_tile.inc"
rm -f "$out/tile.cuh.tmp"
# cu_attn_f32.cu has its own warp_sum (another translation unit on nvcc).
prep "$src/cu_attn_f32.cu" | sed 's/\bwarp_sum\b/f32_warp_sum/g' > "$out/cu_attn_f32.inc"
for f in common matmul rope rmsnorm swiglu elementwise adamw xent embedding attn_docs attn_fwd attn_bwd; do
    prep "$src/cu_$f.cu" > "$out/cu_$f.inc"
done
