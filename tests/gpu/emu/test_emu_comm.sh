#!/usr/bin/env bash
# A tests/gpu comm program on emulated GPUs (one per rank): 1 rank over the
# NCCL shim, 2 ranks over the NCCL shim (NCCL over MPI), 2 ranks over the
# host-staged mpi transport with the ranks sharing one emulated GPU
# (EMU_GPU_COUNT=1). Each run checks itself against the
# 1-rank computation (see the program's header).
# usage: test_emu_comm.sh PROGRAM MPIEXEC [NP_FLAG [no1]]  (no1: skip the 1-rank run)
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n} one=${4:-}
run() {
    local what=$1; shift
    local t0=$SECONDS
    "$@"; local rc=$?
    [ $rc -ne 0 ] && { echo "FAIL: $what (rc $rc)"; exit 1; }
    echo "-- $what: passed in $((SECONDS - t0)) s"
}
[ "$one" = no1 ] || run "1 rank over nccl" "$prog" nccl
run "2 ranks over nccl" "$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" nccl
run "2 ranks sharing one GPU over mpi" \
    env EMU_GPU_COUNT=1 "$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" mpi
echo "$(basename "$prog"): 1 and 2 ranks over nccl, 2 ranks over mpi agree"
