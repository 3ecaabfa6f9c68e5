#!/usr/bin/env bash
# The stop path without Slurm (trainer/train_stop.h):
#  (a) SIGUSR1 mid-stage: exit 99, the checkpoint of the stop step, and
#      out_dir/stop.json (written after it) naming that step and checkpoint,
#      reason "signal", progress true, the job id and restart count of the
#      environment; the same copy at $STRETCH_STOP_MARKER;
#  (b) resumed with a time limit too short to take a step: stops at once by
#      time, exit 99, writes no second checkpoint of the same step (the file
#      is untouched), stop.json says progress false;
#  (c) a time limit of a few seconds with time-based checkpoints
#      (train.ckpt_every_minutes, train.ckpt_every 0): stops itself by time
#      long before its steps are done, after at least two timed saves, each
#      save logged with its duration;
#  (d) a normal end leaves no stop.json (a stale one is removed at start).
# Polls with generous timeouts (a loaded machine); no fixed sleeps.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT; cd "$T"
make_text_shard text.shard
cat > run.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [text.shard]}
optimizer: {lr: 3.0e-3, warmup_steps: 5}
train: {seed: 7, out_dir: out, log_every: 1, ckpt_every: 0, keep_last: 0}
eval: {passkey_trials: 0}
stages:
  - {name: short, seq_len: 64, steps: 100000, batch_tokens: 512}
YAML
field() { sed -n "s/.*\"$2\": *\"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p" "$1"; }
wait_step() {  # DIR STEP PID: until DIR/metrics.jsonl has a step row >= STEP
  for _ in $(seq 1 1200); do
    local k
    k=$(grep -c '"event":"step"' "$1/metrics.jsonl" 2>/dev/null || true)
    [ "${k:-0}" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || fail "the run ended before step $2"
    sleep 0.1
  done
  fail "no step $2 within 120 s"
}

# --- (a) SIGUSR1
SLURM_JOB_ID=4242 SLURM_RESTART_COUNT=3 STRETCH_STOP_MARKER=$T/copy.json "$STRETCH" train run.yaml > a.log 2>&1 &
pid=$!
wait_step out 5 "$pid"
kill -USR1 "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" -eq 99 ] || { tail a.log; fail "(a) exit $rc after SIGUSR1, want 99"; }
[ -f out/stop.json ] || fail "(a) no out/stop.json"
n=$(field out/stop.json step)
ck=$(printf 'ckpt-%08d.h5' "$n")
[ "$(field out/stop.json checkpoint)" = "$ck" ] || fail "(a) stop.json names $(field out/stop.json checkpoint), want $ck"
[ "$(cat out/latest)" = "$ck" ] || fail "(a) latest is $(cat out/latest), the stop step is $n"
[ "$(field out/stop.json reason)" = signal ] || fail "(a) reason $(field out/stop.json reason)"
[ "$(field out/stop.json progress)" = true ] || fail "(a) progress $(field out/stop.json progress)"
[ "$(field out/stop.json job_id)" = 4242 ] || fail "(a) job_id $(field out/stop.json job_id)"
[ "$(field out/stop.json restart_count)" = 3 ] || fail "(a) restart_count $(field out/stop.json restart_count)"
[ "$(field out/stop.json status)" = 99 ] || fail "(a) status $(field out/stop.json status)"
cmp -s out/stop.json copy.json || fail "(a) \$STRETCH_STOP_MARKER differs from out/stop.json"
grep -q "checkpoint $ck written in [0-9.]* s" a.log || fail "(a) the save's duration is not logged"
"$STRETCH" inspect "out/$ck" > inspect.txt || fail "(a) stretch inspect out/$ck failed"
grep -q "^  step $n, " inspect.txt || fail "(a) $ck is not a checkpoint of step $n"
echo "(a) SIGUSR1 at step $n: exit 99, $ck, stop.json $(cat out/stop.json)"

# --- (b) a time limit too short for one step: no progress, no second save
before=$(stat -c %Y.%s "out/$ck")
nfiles=$(ls out/ckpt-*.h5 | wc -l)
set +e; "$STRETCH" train run.yaml --train.time_limit_minutes 0.0001 > b.log 2>&1; rc=$?; set -e
[ "$rc" -eq 99 ] || { tail b.log; fail "(b) exit $rc, want 99"; }
grep -q "resumed from out/$ck" b.log || fail "(b) did not resume from $ck"
grep -q "checkpoint of step $n already on disk" b.log || { tail b.log; fail "(b) no 'already on disk'"; }
[ "$(stat -c %Y.%s "out/$ck")" = "$before" ] || fail "(b) $ck was written again"
[ "$(ls out/ckpt-*.h5 | wc -l)" -eq "$nfiles" ] || fail "(b) a new checkpoint file appeared"
[ "$(field out/stop.json reason)" = time ] || fail "(b) reason $(field out/stop.json reason)"
[ "$(field out/stop.json progress)" = false ] || fail "(b) progress $(field out/stop.json progress)"
[ "$(field out/stop.json step)" = "$n" ] || fail "(b) step $(field out/stop.json step)"
echo "(b) too short a limit: stopped at step $n again, no new save, progress false"

# --- (c) stop by time, timed checkpoints
rm -rf out
set +e
"$STRETCH" train run.yaml --train.time_limit_minutes 0.1 --train.stop_margin_s 1 \
  --train.ckpt_every_minutes 0.02 > c.log 2>&1
rc=$?; set -e
[ "$rc" -eq 99 ] || { tail c.log; fail "(c) exit $rc, want 99"; }
grep -q "^stop: the time limit is" c.log || { tail c.log; fail "(c) no stop by time"; }
[ "$(field out/stop.json reason)" = time ] || fail "(c) reason $(field out/stop.json reason)"
m=$(field out/stop.json step)
[ "$m" -gt 0 ] && [ "$m" -lt 100000 ] || fail "(c) stopped at step $m"
saves=$(grep -c '"event":"ckpt"' out/metrics.jsonl)
# Timed saves during the run (every 1.2 s of a 6 s budget) plus the stop's.
[ "$saves" -ge 3 ] || fail "(c) $saves saves logged, want >= 2 timed + the stop's"
[ "$(cat out/latest)" = "$(printf 'ckpt-%08d.h5' "$m")" ] || fail "(c) latest $(cat out/latest), stop step $m"
echo "(c) stopped by time at step $m after $((saves - 1)) timed saves; $(grep '^stop:' c.log)"

# --- (d) a run that ends normally removes a stale stop.json and leaves none
sed -i 's/steps: 100000/steps: 3/' run.yaml
rm -rf out; mkdir out; echo '{"stale":true}' > out/stop.json
"$STRETCH" train run.yaml > d.log 2>&1 || { tail d.log; fail "(d) a 3-step run failed"; }
[ ! -e out/stop.json ] || fail "(d) stop.json left after a normal end"
echo "test_stop: all checks passed"
