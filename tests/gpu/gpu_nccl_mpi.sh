#!/usr/bin/env bash
# A multi-rank GPU test program (tests/gpu/test_gpu_{alltoall,ring,shard,
# offload}.c; CMakeLists.txt registers it as gpu_<name>_mpi): 1 rank over
# nccl, then 2 ranks sharing the GPU over the mpi transport. Each run checks
# itself against its 1-rank computation (see the program's header). Exit 77
# without a GPU.
# usage: gpu_nccl_mpi.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
"$prog" nccl; rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -ne 0 ] && { echo "FAIL: 1 rank over nccl (rc $rc)"; exit 1; }
"$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" mpi; rc=$?
[ $rc -ne 0 ] && { echo "FAIL: 2 ranks over mpi (rc $rc)"; exit 1; }
echo "$(basename "$prog"): 1 rank over nccl and 2 ranks over mpi passed"
