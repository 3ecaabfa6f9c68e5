#!/usr/bin/env bash
# Sharded state on the GPU (tests/gpu/test_gpu_shard.c): 1 rank over nccl,
# 2 ranks sharing the GPU over the mpi transport. Exit 77 without a GPU.
# usage: test_gpu_shard.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
"$prog" nccl; rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -ne 0 ] && { echo "FAIL: 1 rank over nccl (rc $rc)"; exit 1; }
"$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" mpi; rc=$?
[ $rc -ne 0 ] && { echo "FAIL: 2 ranks over mpi (rc $rc)"; exit 1; }
echo "test_gpu_shard: 1 rank nccl and 2 ranks mpi agree with shard none"
