#!/usr/bin/env bash
# 8 ranks, oversubscribed (ctest runs the MPI tests with 1, 2 and 4): the
# attention parity (tests/mpi/test_ulysses_attn.c) and the whole-model parity
# (tests/mpi/test_model_grid.c: loss and gradients 1e-5, parameters after 20
# AdamW steps 1e-4, against the 1-rank model) on every dp x ring x ulysses
# grid of 8 ranks, among them ring 2 x ulysses 4 (T = 24 padded to 32) and
# ring 4 x ulysses 2, ulysses 8 for the attention (the model's 4 heads skip it).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
BIN=$(dirname "$STRETCH")
MPIRUN=(mpirun -n 8 --oversubscribe --bind-to none)
for t in ulysses_attn model_grid; do
  [ -x "$BIN/mpi_$t" ] || fail "$BIN/mpi_$t not built"
  out=$("${MPIRUN[@]}" "$BIN/mpi_$t" 2>&1) || { echo "$out" | tail -30; fail "mpi_$t on 8 ranks"; }
  echo "$out" | grep -E "ring 2 x ulysses 4|ring=2 ulysses=4 packed MQA|PASS|skipped"
  echo "$out" | grep -q "PASS" || fail "mpi_$t: no PASS line"
done
echo "test_sp8: all checks passed"
