#!/usr/bin/env bash
# stretch train under mpirun: every (dp, sp) grid of 2 and 4 ranks trains the
# tiny curriculum to the same parameters as 1 rank (float tolerance), and a
# checkpoint written by one grid resumes on another (elastic resume):
# 4 ranks (dp 2 x sp 2) -> 1 rank, and 1 rank -> 2 ranks (sp 2). Also with
# mixed context windows (LongRoPE2) under ring and ulysses sp 2.
# A grid that does not match the rank count exits 2 on every rank.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
TOL=2e-5   # absolute, on parameters of magnitude ~0.1-1 after 36 AdamW steps

write_tiny_run ref text.shard
"$STRETCH" train ref.yaml > ref.log

for grid in "2 1" "1 2" "4 1" "2 2" "1 4"; do
  set -- $grid; dp=$1; sp=$2; n=$((dp * sp)); name=g${dp}x${sp}
  write_tiny_run $name text.shard
  "${MPIRUN[@]}" -n $n "$STRETCH" train $name.yaml --parallel.dp $dp --parallel.sp $sp > $name.log 2>&1 \
    || { tail -20 $name.log; fail "grid dp $dp x sp $sp failed"; }
  h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt $name)" /params /params > /dev/null \
    || { h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt $name)" /params /params | tail -5; fail "dp $dp x sp $sp differs from 1 rank"; }
  echo "dp $dp x sp $sp: parameters match the 1-rank run within $TOL"
done

# Mixed context windows (stages.1.rope.mixed: the packed documents of up to
# 64 tokens with the original RoPE, longer ones with yarn; stage 1's rows
# pack passkey samples of 61..128 tokens, so both kinds occur) under
# sequence parallelism: the window flags are made on whole rows, so sp 2
# (ring, and ulysses) trains to the 1-rank parameters; and mixed matters.
PACK=(--stages.1.passkey_ratio 1.0 --stages.1.passkey_pack_min 61)
write_tiny_run pref text.shard
"$STRETCH" train pref.yaml "${PACK[@]}" > pref.log
write_tiny_run mref text.shard
"$STRETCH" train mref.yaml "${PACK[@]}" --stages.1.rope.mixed true > mref.log
grep -q "mixed windows: documents up to 64 tokens short, yarn beyond" mref.log || fail "mixed stage not announced"
h5diff -d $TOL "$(latest_ckpt pref)" "$(latest_ckpt mref)" /params /params > /dev/null &&
  fail "mixed windows changed nothing (within $TOL)"
for u in 1 2; do
  write_tiny_run msp$u text.shard
  "${MPIRUN[@]}" -n 2 "$STRETCH" train msp$u.yaml "${PACK[@]}" --stages.1.rope.mixed true \
    --parallel.ring $((2 / u)) --parallel.ulysses $u > msp$u.log 2>&1 || { tail -20 msp$u.log; fail "mixed windows, sp 2 (ulysses $u) failed"; }
  h5diff -d $TOL "$(latest_ckpt mref)" "$(latest_ckpt msp$u)" /params /params > /dev/null \
    || fail "mixed windows: sp 2 (ulysses $u) differs from 1 rank"
  echo "mixed windows, sp 2 (ulysses $u): parameters match the 1-rank run within $TOL"
done

# Elastic: 4 ranks (2 x 2) for 20 steps, then 1 rank to the end.
write_tiny_run e1 text.shard
"${MPIRUN[@]}" -n 4 "$STRETCH" train e1.yaml --parallel.dp 2 --parallel.sp 2 --max-steps 20 > e1a.log 2>&1 || fail "4-rank part failed"
"$STRETCH" train e1.yaml > e1b.log 2>&1 || fail "1-rank resume failed"
grep -q "resumed from" e1b.log || fail "1-rank run did not resume"
h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt e1)" /params /params > /dev/null || fail "4 -> 1 ranks differs"
echo "elastic 4 ranks -> 1 rank: match"

# Elastic: 1 rank for 20 steps, then 2 ranks (sp 2) to the end.
write_tiny_run e2 text.shard
"$STRETCH" train e2.yaml --max-steps 20 > e2a.log 2>&1 || fail "1-rank part failed"
"${MPIRUN[@]}" -n 2 "$STRETCH" train e2.yaml --parallel.sp 2 > e2b.log 2>&1 || fail "2-rank resume failed"
h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt e2)" /params /params > /dev/null || fail "1 -> 2 ranks differs"
echo "elastic 1 rank -> 2 ranks: match"

# A grid that does not match: exit 2 on every rank, quickly.
set +e
"${MPIRUN[@]}" -n 2 "$STRETCH" train ref.yaml --parallel.dp 4 > bad.log 2>&1; rc=$?
set -e
[ $rc -eq 2 ] || fail "bad grid: exit $rc, want 2"
grep -q "parallel.dp (4) x parallel.sp (1) = 4 but mpirun started 2 ranks" bad.log || fail "bad grid message: $(cat bad.log)"
echo "test_mpi_train: all checks passed"
