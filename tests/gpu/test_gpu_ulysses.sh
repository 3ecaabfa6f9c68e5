#!/usr/bin/env bash
# The GPU ulysses attention against 1 rank (tests/gpu/test_gpu_ulysses.c):
# 1 rank over nccl (the plain path; exit 77 without a GPU), 2 ranks sharing
# the GPU over mpi (ulysses 2), 4 ranks over mpi (ring 2 x ulysses 2 at T
# 128 and at T 122 padded to 128, and ulysses 4), and 2 ranks over nccl when
# there is a GPU per rank.
# usage: test_gpu_ulysses.sh PROGRAM MPIEXEC [NP_FLAG]
set -u
prog=$1 mpiexec=${2:-mpirun} npflag=${3:--n}
"$prog" nccl; rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -ne 0 ] && { echo "FAIL: 1 rank over nccl (rc $rc)"; exit 1; }
"$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" mpi 1 || { echo "FAIL: ulysses 2 over mpi"; exit 1; }
"$mpiexec" $npflag 4 --oversubscribe --bind-to none "$prog" mpi 2 || { echo "FAIL: ring 2 x ulysses 2 over mpi"; exit 1; }
"$mpiexec" $npflag 4 --oversubscribe --bind-to none "$prog" mpi 2 6 || { echo "FAIL: ring 2 x ulysses 2 over mpi, T 122"; exit 1; }
"$mpiexec" $npflag 4 --oversubscribe --bind-to none "$prog" mpi 1 || { echo "FAIL: ulysses 4 over mpi"; exit 1; }
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
if [ "${gpus:-0}" -ge 2 ]; then
    "$mpiexec" $npflag 2 --oversubscribe --bind-to none "$prog" nccl 1 || { echo "FAIL: ulysses 2 over nccl"; exit 1; }
fi
echo "test_gpu_ulysses: ulysses 2, ulysses 4 and ring 2 x ulysses 2 agree with 1 rank"
