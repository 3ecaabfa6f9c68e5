#!/bin/sh
# CPU emulation of the bf16 / fp32 attention kernels (no GPU needed): the
# kernel bodies of kernels/cuda/cu_attn_*.cu are cut out of the sources and
# compiled with g++ against emu.cpp, which runs every CUDA thread as a fiber
# with PTX-defined ldmatrix / mma.m16n8k16 / cp.async semantics, poisoned
# (NaN) shared memory, bounds and alignment checks, and guard pages after
# every global buffer; test.cpp compares against a float64 reference.
# Slow (minutes): a review tool, not a ctest.
#   tests/gpu/emu/run.sh [copy_at_issue 0|1] [random_sched 0|1] [case]  (EMU_BF16_ONLY=1: skip fp32)
# copy_at_issue=1 completes cp.async at issue (exposes write-after-read
# races on the double buffers), 0 at wait_group (exposes missing waits).
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../../..
src=$root/kernels/cuda
out=${EMU_OUT:-/tmp/stretch_attn_emu}
mkdir -p "$out"
cut_kernel() {  # file, start regex, name of the last kernel: print through its closing brace
    awk -v s="$2" -v k="$3" '$0 ~ s {p=1} p {print} p && seen && /^}/ {exit} p && index($0, k "(") {seen=1}' "$1"
}
awk '/^\/\/ Tile loads/ {p=1} p' "$src/cu_attn_tile.cuh" > "$out/tile_body.inc"
cut_kernel "$src/cu_attn_fwd.cu" '^enum \\{ FWD_BR' attn_fwd_bf16_kernel > "$out/fwd_body.inc"
cut_kernel "$src/cu_attn_bwd.cu" '^enum \\{ BWD_WARPS' attn_bwd_dq_bf16_kernel > "$out/bwd_body.inc"
cut_kernel "$src/cu_attn_bwd.cu" '^static __device__ __forceinline__ float to_f32' attn_delta_kernel \
    | sed '1i template <typename T>' > "$out/delta_body.inc"
cut_kernel "$src/cu_attn_f32.cu" '^enum \\{ F32_WARPS' attn_bwd_dkdv_f32_kernel > "$out/f32_body.inc"
cp "$here/emu.cpp" "$here/test.cpp" "$out/"
g++ -std=c++17 -O2 -w -I"$root/kernels/cpu" -o "$out/test" "$out/test.cpp"
exec "$out/test" "$@"
