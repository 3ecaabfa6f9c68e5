#!/usr/bin/env bash
# A training run as a user lives it (issue 26): log lines follow log_every and
# are plain when nobody watches; stage numbers are 0-based in all train
# prints; validation loss at every stage end; after a resume the summary
# shows the stages finished before it with their real numbers, metrics.jsonl
# keeps its clock and records resume / end events, a finished run started
# again evaluates nothing twice; the summary has the final loss, val loss and
# wall time; stdout and stderr lines come in order; eval defaults to the
# run's eval settings; `stretch status`.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
M=r/metrics.jsonl
count() { grep -c "$1" "$2" || true; }

# --- first session: stops at step 26 (inside stage 1), eval_every 0
write_tiny_run r text.shard
RUN=(--data.val text.shard --eval.val_tokens 512 --train.log_every 5 --train.eval_every 0)
"$STRETCH" train r.yaml "${RUN[@]}" --max-steps 26 > r1.log 2> r1.err
# (5) a line every log_every steps (and at the stage's end), plain: no \r, no escapes
n=$(grep -cE "^stage 0 \(1 of 2\) short +step" r1.log || true)
[ "$n" -eq 5 ] || fail "stage 0 printed $n progress lines (want steps 5, 10, 15, 20, 24): $(cat r1.log)"
grep -q $'[\r\033]' r1.log && fail "carriage returns or escapes in a log that is not a terminal"
grep -q "run ETA" r1.log || fail "no ETA of the whole run"
# (6) stage numbers: 0-based, with the count for people
grep -q "^stage 0 'short' (1 of 2): seq_len 64" r1.log || fail "stage start not 0-based: $(grep "seq_len" r1.log)"
grep -q "^stage 1 'long' (2 of 2): seq_len 128" r1.log || fail "stage 1 start: $(grep "seq_len" r1.log)"
grep -q "after stage 0 'short'" r1.log || fail "after-stage eval not 0-based"
grep -qE "stage [0-9]/[0-9]|after stage 2" r1.log && fail "1-based stage numbers left: $(grep -E "stage [0-9]/" r1.log | head -2)"
"$STRETCH" train r.yaml --dry-run > dry.log
grep -qE "^  stage 0 short +seq_len +64" dry.log && grep -qE "^  stage 1 long +seq_len +128" dry.log ||
  fail "dry run not 0-based: $(cat dry.log)"
# (4) validation loss at the stage end although eval_every is 0
grep -q '"event":"eval_val","step":24,' $M || fail "no validation loss at the end of stage 0 (step 24)"
[ "$(count '"event":"eval_val"' $M)" -eq 1 ] || fail "eval_every 0: validation loss besides the stage end"
grep -q '"event":"run_start"' $M || fail "no run_start event"
grep -q '"event":"run_end","how":"max_steps","step":26' $M || fail "no run_end event for the max-steps stop"
grep -q "stopped at step 26 (13312 tokens), final loss [0-9.]* (step 26), val loss [0-9.]* (step 24); wall time" r1.log ||
  fail "stop summary: $(tail -1 r1.log)"

# --- (3) an earlier session's numbers are the summary's: pretend stage 0
# scored 50% (the tiny model scores 0%, which a summary of zeros would match)
sed -i '/"event":"eval_passkey","when":"after stage 0/s/"accuracy":[0-9.e-]*,/"accuracy":0.5,/' $M
t_before=$(tail -1 $M | sed 's/.*"time":\([0-9.e+-]*\).*/\1/')
"$STRETCH" train r.yaml "${RUN[@]}" --train.eval_every 10 > r2.log
grep -q "resumed from r/ckpt-00000026.h5: stage 1 (2 of 2), step 26" r2.log || fail "resume line: $(head -1 r2.log)"
grep -qE "^0 short \(before ext.\) +50.0% +50.0%" r2.log || fail "stage 0 row after the resume: $(grep -A3 "after stage  " r2.log)"
grep -q '"event":"resume","step":26,"stage":1,"checkpoint":"r/ckpt-00000026.h5"' $M || fail "no resume event"
t_resume=$(grep '"event":"resume"' $M | sed 's/.*"time":\([0-9.e+-]*\).*/\1/')
awk -v a="$t_before" -v b="$t_resume" 'BEGIN { exit !(b >= a) }' || fail "time restarted: $t_before -> $t_resume"
# (4) eval_every 10: steps 30 and the stage end 36 (not a multiple of 10)
grep -q '"event":"eval_val","step":30,' $M || fail "no validation loss at step 30"
grep -q '"event":"eval_val","step":36,' $M || fail "no validation loss at the end of stage 1 (step 36)"
grep -q '"event":"run_end","how":"finished","step":36' $M || fail "no run_end event at the end"
grep -q "^done: 36 steps, 18432 tokens, final loss [0-9.]* (step 36), val loss [0-9.]* (step 36); wall time" r2.log ||
  fail "end summary: $(tail -1 r2.log)"

# --- (3) a finished run started again: nothing evaluated or logged twice
evals=$(count '"event":"eval_' $M)
"$STRETCH" train r.yaml "${RUN[@]}" --train.eval_every 10 > r3.log
[ "$(count '"event":"eval_' $M)" -eq "$evals" ] || fail "a finished run started again evaluated again"
grep -qE "^0 short \(before ext.\) +50.0% +50.0%" r3.log || fail "re-run summary lost stage 0's numbers"
grep -q "^done: 36 steps" r3.log || fail "re-run: $(tail -1 r3.log)"

# --- (8) eval of a run's checkpoint defaults to the run's eval settings
# (tiny run: trials 2, depths [0.5], lengths [64, 128]); options override
"$STRETCH" eval passkey --ckpt "$(latest_ckpt r)" --out ev > ev.log
grep -q "settings of the run's eval (options override): 2 trials, depths 0.5, lengths 64,128" ev.log ||
  fail "eval passkey defaults not the run's: $(head -3 ev.log)"
[ "$(tail -n +2 ev/passkey.csv | cut -d, -f1-3 | tr '\n' ' ')" = "64,0.5,2 128,0.5,2 " ] ||
  fail "passkey.csv cells: $(cat ev/passkey.csv)"
"$STRETCH" eval passkey --ckpt "$(latest_ckpt r)" --trials 1 --depths 0.25,0.75 --lengths 64 --out ev2 > ev2.log
[ "$(tail -n +2 ev2/passkey.csv | cut -d, -f1-3 | tr '\n' ' ')" = "64,0.25,1 64,0.75,1 " ] ||
  fail "options did not override: $(cat ev2/passkey.csv)"

# --- (10) status: one line per run
"$STRETCH" status r > st.log
[ "$(wc -l < st.log)" -eq 1 ] || fail "status: more than one line: $(cat st.log)"
grep -q "^r: stage 1 'long' (2 of 2), step 36, 18432 tokens, loss [0-9.]*, val loss [0-9.]*, passkey@128 [0-9.]*%, checkpoint ckpt-00000036.h5, finished$" st.log ||
  fail "status of a finished run: $(cat st.log)"
grep -q '"state": "finished"' r/heartbeat.json || fail "heartbeat not finished: $(cat r/heartbeat.json)"
# a run whose process is gone, and one that is alive (this shell)
cp -r r dead && cp -r r live
sleep 0 & gone=$!; wait $gone
host=$(hostname)
printf '{"state": "running", "step": 36, "stage": 1, "tokens": 1, "time": %s, "pid": %d, "host": "%s"}\n' "$(date +%s)" "$gone" "$host" > dead/heartbeat.json
printf '{"state": "running", "step": 36, "stage": 1, "tokens": 1, "time": %s, "pid": %d, "host": "%s"}\n' "$(date +%s)" "$$" "$host" > live/heartbeat.json
"$STRETCH" status dead live > st2.log
grep -q "^dead: .*not running (pid $gone is gone" st2.log || fail "status of a dead run: $(cat st2.log)"
grep -q "^live: .*running (pid $$, heartbeat" st2.log || fail "status of a live run: $(cat st2.log)"
expect_exit 2 "$STRETCH" status nowhere
echo "$ERR" | has "nowhere" || fail "status of a missing dir: $ERR"

# --- (5) stdout and stderr in order in one file: the gate's summary line
# comes after the lines it summarises
write_tiny_run gate text.shard
set +e
"$STRETCH" train gate.yaml --eval.passkey_trials 0 --stages.0.steps 4 --stages.0.gate.passkey_acc 1.0 \
  --stages.0.gate.max_extra_tokens 512 > gate.log 2>&1
set -e
a=$(grep -n "gate of stage 'short'" gate.log | tail -1 | cut -d: -f1)
b=$(grep -n "gate was not met within" gate.log | cut -d: -f1)
[ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ] || fail "stderr out of order: $(cat gate.log)"
# the pty case: a terminal redraws; log_format plain or mpirun's ranks do not
if command -v script >/dev/null; then
  script -qfec "$STRETCH train gate.yaml --resume never --eval.passkey_trials 0 --max-steps 3 --train.log_every 1" /dev/null > pty1.log || true
  grep -q $'\r\033\[K' pty1.log || fail "no redraw on a terminal"
  script -qfec "$STRETCH train gate.yaml --resume never --eval.passkey_trials 0 --max-steps 3 --train.log_every 1 --train.log_format plain" /dev/null > pty2.log || true
  grep -q $'\033' pty2.log && fail "log_format plain still redraws"
  script -qfec "env OMPI_COMM_WORLD_SIZE=1 $STRETCH train gate.yaml --resume never --eval.passkey_trials 0 --max-steps 3 --train.log_every 1" /dev/null > pty3.log || true
  grep -q $'\033' pty3.log && fail "a rank under mpirun redraws"
fi
echo "test_ux_run: all passed"
