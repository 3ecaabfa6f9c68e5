#!/usr/bin/env bash
# The offloaded optimizer's gradient chunks chained to their reduction
# buckets (tests/gpu/test_gpu_offload.c): 1 rank over nccl, 2 ranks sharing
# the GPU over the mpi transport. Exit 77 without a GPU.
# usage: test_gpu_offload.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
"$prog" nccl; rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -ne 0 ] && { echo "FAIL: 1 rank over nccl (rc $rc)"; exit 1; }
"$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" mpi; rc=$?
[ $rc -ne 0 ] && { echo "FAIL: 2 ranks over mpi (rc $rc)"; exit 1; }
echo "test_gpu_offload: 1 rank over nccl and 2 ranks over mpi: chunks chained as planned, AdamW bit-identical"
