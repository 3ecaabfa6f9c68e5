#!/usr/bin/env bash
# A diverging run (train_guard.h): steps with a non-finite loss or gradient
# norm are skipped (line, metrics.jsonl, progress count), 3 in a row stop
# the run with exit 4 and one line naming the step, no checkpoint is
# written from that state, the earlier ones stay intact and resumable; the
# same on 2 ranks (dp 2 and sp 2: all ranks agree, no hang).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
write_tiny_run div text.shard
args=(--optimizer.lr 1e3 --optimizer.warmup_steps 20 --train.ckpt_every 2 --train.keep_last 2
      --eval.passkey_trials 0 --max-steps 30)

# finite checks of every tensor of a checkpoint (params and AdamW moments)
all_finite() {
  local n
  n=$(h5dump "$1" | grep -ciE '(^|[ ,(])-?(nan|inf)' || true)
  [ "$n" -eq 0 ] || fail "$1 holds $n non-finite values"
}

set +e
"$STRETCH" train div.yaml "${args[@]}" > out.log 2> err.log
rc=$?
set -e
[ "$rc" -eq 4 ] || fail "diverged run: exit $rc, want 4: $(cat err.log)"
[ "$(wc -l < err.log)" -eq 1 ] || fail "more than one line: $(cat err.log)"
grep -q "stretch: error: step 5: loss or gradient norm not finite for 3 steps in a row (train.max_skipped_steps); stopped without writing a checkpoint; the latest checkpoint, div/ckpt-00000004.h5, is from before" err.log \
  || fail "message: $(cat err.log)"
grep -q "step 3 skipped: loss .*, gradient norm .*nan (1 in a row, 1 in all)" out.log || fail "no skip line: $(cat out.log)"
[ "$(grep -c '"skipped":true' div/metrics.jsonl)" -eq 3 ] || fail "3 skipped steps not in metrics.jsonl"
grep -q '"step":5,.*"skipped":true,"skipped_total":3' div/metrics.jsonl || fail "skipped_total: $(tail -2 div/metrics.jsonl)"
[ "$(cat div/latest)" = ckpt-00000004.h5 ] || fail "latest moved: $(cat div/latest)"
[ ! -e div/ckpt-00000006.h5 ] || fail "a checkpoint was written after the stop"
all_finite div/ckpt-00000002.h5
all_finite div/ckpt-00000004.h5
# skipped steps changed nothing: ckpt-4 holds the parameters after step 2 (3 and 4 skipped)
same_params div/ckpt-00000002.h5 div/ckpt-00000004.h5
# resumable: the checkpoint loads and the run stops at its step cap
"$STRETCH" train div.yaml "${args[@]}" --max-steps 4 > resume.log
grep -q "resumed from div/ckpt-00000004.h5: stage 1, step 4" resume.log || fail "resume: $(cat resume.log)"

# max_skipped_steps 0: skipped, never stopped (the run reaches its cap)
"$STRETCH" train div.yaml "${args[@]}" --resume never --train.out_dir div0 --train.max_skipped_steps 0 \
  --max-steps 12 > out0.log 2>&1 || fail "max_skipped_steps 0 stopped: $(tail -3 out0.log)"
grep -q "step 12 skipped" out0.log || fail "step 12 not skipped: $(tail -3 out0.log)"
for f in div0/ckpt-*.h5; do all_finite "$f"; done
expect_exit 2 "$STRETCH" train div.yaml --train.max_skipped_steps -1
echo "$ERR" | grep -q "train.max_skipped_steps" || fail "negative max_skipped_steps: $ERR"

# two ranks, both grids: the same stop, no hang
MPIRUN=(mpirun -n 2 --oversubscribe --bind-to none)
for grid in "--parallel.dp 2" "--parallel.sp 2"; do
  set +e
  # shellcheck disable=SC2086
  timeout 120 "${MPIRUN[@]}" "$STRETCH" train div.yaml "${args[@]}" --resume never --train.out_dir div2 $grid \
    > out2.log 2> err2.log
  rc=$?
  set -e
  [ "$rc" -eq 4 ] || fail "2 ranks ($grid): exit $rc, want 4: $(cat err2.log)"
  grep -q "stretch: error: step [0-9]*: loss or gradient norm not finite for 3 steps in a row" err2.log \
    || fail "2 ranks ($grid): $(cat err2.log)"
  [ "$(grep -c 'stretch: error' err2.log)" -eq 1 ] || fail "2 ranks ($grid): not one line: $(cat err2.log)"
  for f in div2/ckpt-*.h5; do all_finite "$f"; done
  rm -rf div2
done
echo "test_diverge: all checks passed"
