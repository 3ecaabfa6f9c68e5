#!/usr/bin/env bash
# tests/gpu/test_gpu_ulysses.c on emulated GPUs (one per rank), against the
# 1-rank model, 4 ranks each: ulysses 4 (the kv head replicated 4 ways)
# and ring 2 x ulysses 2 over the NCCL shim, and ring 2 x ulysses 2 with the
# ranks sharing one emulated GPU over the host-staged mpi transport
# (EMU_GPU_COUNT=1, transport auto) on sequences of 42 tokens (padded to 48).
# Ulysses 2 with kv heads split one per rank: the layout test
# gpuemu_ulysses_layout and the GPU run.
# usage: test_emu_ulysses.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
run() {
    local what=$1; shift
    local t0=$SECONDS
    "$@"; local rc=$?
    [ $rc -ne 0 ] && { echo "FAIL: $what (rc $rc)"; exit 1; }
    echo "-- $what: passed in $((SECONDS - t0)) s"
}
mpi() { "$mpiexec" $npflag "$1" --oversubscribe --bind-to none "${@:2}"; }
run "ulysses 4 over nccl" mpi 4 "$prog" nccl 1
run "ring 2 x ulysses 2 over nccl" mpi 4 "$prog" nccl 2
run "ring 2 x ulysses 2 sharing one GPU over mpi (auto), T 42 padded to 48" env EMU_GPU_COUNT=1 "$mpiexec" $npflag 4 \
    --oversubscribe --bind-to none "$prog" auto 2 6
echo "$(basename "$prog"): ulysses 4 and ring 2 x ulysses 2 agree with 1 rank"
