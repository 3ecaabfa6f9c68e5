#!/usr/bin/env bash
# The GPU ulysses all-to-all: 1 rank over NCCL (to itself) and 2 MPI ranks
# sharing one GPU over the mpi transport (tests/gpu/test_gpu_alltoall.c).
# Exit 77 without a GPU. usage: test_gpu_alltoall.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
"$prog" nccl; rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -ne 0 ] && { echo "FAIL: 1 rank over nccl (rc $rc)"; exit 1; }
"$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" mpi; rc=$?
[ $rc -ne 0 ] && { echo "FAIL: 2 ranks over mpi (rc $rc)"; exit 1; }
echo "test_gpu_alltoall: 1 rank nccl and 2 ranks mpi exchange the right blocks"
