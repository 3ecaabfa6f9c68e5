#!/usr/bin/env bash
# A resume reads the checkpoint on one rank (train_ckpt.h): under mpirun with
# 2 ranks (unsharded) and 4 ranks (parallel.shard parameters, moments
# scattered), the "resume" event's bytes_read is exactly what rank 0 must
# read (once, the load being the check: params, moments, cursor, seed;
# summed from h5ls's logical bytes) and 0 on every other rank, and the
# resumed run ends bit-identical (params and moments) to an uninterrupted
# run on the same grid. A checkpoint that fails on rank 0 (torn file; a
# config it refuses) gives every rank the same one line and exit 2.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
SHORT=(--eval.passkey_trials 0 --stages.0.steps 8 --stages.1.steps 4 --train.ckpt_every 4)

# Bytes rank 0 reads resuming from $1 with --resume auto: every dataset
# but /rope (the stage's RoPE is recomputed), once: the load is the check
# (a separate verify pass read the file twice).
expected_bytes() {
  h5ls -r -v "$1" | awk '/^\//{name=$1} /Storage:/{if (name !~ /^\/rope\//) load+=$2} END{print load}'
}

for case in "2 none" "4 parameters"; do
  set -- $case; n=$1; mode=$2; args=(--parallel.dp $n --parallel.shard $mode)
  write_tiny_run ref$n text.shard; write_tiny_run cut$n text.shard
  "${MPIRUN[@]}" -n $n "$STRETCH" train ref$n.yaml "${SHORT[@]}" "${args[@]}" > ref$n.log 2>&1 \
    || { tail -20 ref$n.log; fail "$n ranks: the uninterrupted run failed"; }
  "${MPIRUN[@]}" -n $n "$STRETCH" train cut$n.yaml "${SHORT[@]}" "${args[@]}" --max-steps 6 > cut$n.log 2>&1 \
    || { tail -20 cut$n.log; fail "$n ranks: the first part failed"; }
  from=$(latest_ckpt cut$n)
  want=$(expected_bytes "$from")
  "${MPIRUN[@]}" -n $n "$STRETCH" train cut$n.yaml "${SHORT[@]}" "${args[@]}" >> cut$n.log 2>&1 \
    || { tail -20 cut$n.log; fail "$n ranks: the resume failed"; }
  got=$(grep '"event":"resume"' cut$n/metrics.jsonl | grep -o '"bytes_read":\[[0-9,]*\]' | grep -o '\[.*\]')
  zeros=$(printf ',0%.0s' $(seq 2 $n))
  [ "$got" = "[$want$zeros]" ] || fail "$n ranks: bytes_read $got, expected [$want$zeros] (rank 0 only)"
  grep -q "resumed from $from: .*; read $want bytes on 1 rank(s) of $n in [0-9.]* s" cut$n.log \
    || fail "$n ranks: no resume line with the bytes read: $(grep resumed cut$n.log)"
  same_params "$(latest_ckpt ref$n)" "$(latest_ckpt cut$n)"
  h5diff "$(latest_ckpt ref$n)" "$(latest_ckpt cut$n)" /optim /optim > /dev/null || fail "$n ranks: moments differ"
  echo "$n ranks (shard $mode): resume read $want bytes on rank 0 only; bit-identical to the uninterrupted run"
done

# Failures on the reader reach every rank as one line, exit 2.
one_line_each() {  # one_line_each N LOG PATTERN
  local lines; lines=$(grep '^stretch: error:' "$2" || true)
  [ "$(grep -c . <<<"$lines")" -eq "$1" ] || fail "expected $1 error lines in $2: $(cat "$2")"
  [ "$(sort -u <<<"$lines" | wc -l)" -eq 1 ] || fail "ranks disagree: $lines"
  grep -q "$3" <<<"$lines" || fail "the error does not say '$3': $lines"
}
cp "$(latest_ckpt cut4)" torn.h5
truncate -s $(( $(stat -c %s torn.h5) / 2 )) torn.h5
for n in 2 4; do
  write_tiny_run bad$n text.shard
  set +e
  timeout 60 "${MPIRUN[@]}" -n $n "$STRETCH" train bad$n.yaml "${SHORT[@]}" --parallel.dp $n --resume torn.h5 > torn$n.log 2>&1
  rc=$?
  timeout 60 "${MPIRUN[@]}" -n $n "$STRETCH" train bad$n.yaml "${SHORT[@]}" --parallel.dp $n --train.seed 8 \
    --resume "$(latest_ckpt cut4)" > seed$n.log 2>&1
  rc2=$?
  set -e
  [ $rc -eq 2 ] || fail "$n ranks, torn checkpoint: exit $rc, expected 2: $(cat torn$n.log)"
  one_line_each $n torn$n.log "torn.h5"
  [ $rc2 -eq 2 ] || fail "$n ranks, refused config: exit $rc2, expected 2: $(cat seed$n.log)"
  one_line_each $n seed$n.log "train.seed: 7 -> 8 cannot change on resume"
  echo "$n ranks: a torn checkpoint and a refused one: one line on every rank, exit 2"
done
echo "test_resume_reads: all checks passed"
