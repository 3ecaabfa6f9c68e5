#!/usr/bin/env bash
# stretch train end to end on a tiny model: the loss falls over a two-stage
# curriculum, a stopped run resumes to bit-identical parameters, and user
# errors exit 2 with one line naming the file, line and key.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"

# --- user errors: exit 2, one clear line
expect_exit 2 "$STRETCH" train
expect_exit 2 "$STRETCH" train missing.yaml
echo "$ERR" | has "missing.yaml" || fail "missing file not named: $ERR"
printf 'model:\n  dim: abc\n' > bad.yaml
expect_exit 2 "$STRETCH" train bad.yaml
echo "$ERR" | has "bad.yaml:2" || fail "bad value not located: $ERR"
echo "$ERR" | has "model.dim" || fail "bad key not named: $ERR"
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"
printf 'modell: {}\n' > unknown.yaml
expect_exit 2 "$STRETCH" train unknown.yaml
echo "$ERR" | has "modell" || fail "unknown key not named: $ERR"
expect_exit 2 "$STRETCH" train bad.yaml --no-such-option 1
expect_exit 2 "$STRETCH" frobnicate

# --- tokenize
make_text_shard text.shard
expect_exit 2 "$STRETCH" tokenize --out x.shard does-not-exist.txt
printf '{"text": "hello"}\nnot json\n' > bad.jsonl
expect_exit 2 "$STRETCH" tokenize --jsonl --out x.shard bad.jsonl
echo "$ERR" | has "bad.jsonl:2" || fail "bad JSONL line not located: $ERR"
[ ! -e x.shard ] || fail "a failed tokenize left x.shard behind"

# --- invalid model configs: one line naming the key, exit 2, before any allocation
write_tiny_run badmodel text.shard
expect_exit 2 "$STRETCH" train badmodel.yaml --model.n_kv_heads 3
echo "$ERR" | has "n_kv_heads" || fail "kv heads error not named: $ERR"
expect_exit 2 "$STRETCH" train badmodel.yaml --stages.1.rope.type warp
echo "$ERR" | has "stages.1.rope.type" || fail "rope type error not named: $ERR"
expect_exit 2 "$STRETCH" train badmodel.yaml --stages.1.rope.factor -2
echo "$ERR" | has "factor" || fail "rope factor error not named: $ERR"

# --- backends: bf16 is cuda-only; cuda without a GPU (or a CUDA build) is one
# line, exit 2; the dry run prints the memory plan for either backend
expect_exit 2 "$STRETCH" train badmodel.yaml --train.dtype bf16
echo "$ERR" | has "train.dtype" || fail "bf16 on cpu not named: $ERR"
expect_exit 2 "$STRETCH" train badmodel.yaml --backend gpu
echo "$ERR" | has "train.backend" || fail "bad backend not named: $ERR"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_exit 2 "$STRETCH" train badmodel.yaml --backend cuda --train.out_dir "$T/nogpu"
  echo "$ERR" | has "train.backend: cuda" || fail "cuda without a GPU not explained: $ERR"
  [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"
fi
"$STRETCH" train badmodel.yaml --backend cuda --dry-run | has "peak memory estimate per rank (cuda, bf16" \
  || fail "dry run prints no cuda memory estimate"
expect_exit 2 "$STRETCH" train badmodel.yaml --stages.1.rope.type longrope
echo "$ERR" | has "factor" || fail "missing longrope factors not named: $ERR"
[ ! -d badmodel ] || fail "a rejected config still created its output directory"

# --- a run whose loss falls
write_tiny_run full text.shard
"$STRETCH" train full.yaml > full.log
a=$(first_loss full/metrics.jsonl); b=$(last_loss full/metrics.jsonl)
awk -v a="$a" -v b="$b" 'BEGIN { exit !(b < a - 1.0) }' || fail "loss did not fall: $a -> $b"
grep -q '"event":"stage_start".*"rope_type":"yarn"' full/metrics.jsonl || fail "no yarn stage start"
grep -q "passkey @" full.log || fail "no passkey evaluation printed"

# --- stop after 17 steps, resume: identical parameters at the end
write_tiny_run split text.shard
"$STRETCH" train split.yaml --max-steps 17 > split1.log
grep -q "stopped at step 17" split1.log || fail "max-steps stop not reported"
"$STRETCH" train split.yaml > split2.log
grep -q "resumed from" split2.log || fail "did not resume"
same_params "$(latest_ckpt full)" "$(latest_ckpt split)"

# --- resuming with a config change that may not happen is refused, naming the key
# (what may change: tests/cli/test_ux_resume.sh)
expect_exit 2 "$STRETCH" train split.yaml --train.seed 8
echo "$ERR" | has "train.seed" || fail "config change not named: $ERR"

# --- a gate that cannot be met: the stage is extended up to its cap, then the run stops (exit 3)
write_tiny_run gate text.shard
expect_exit 3 "$STRETCH" train gate.yaml --stages.0.gate.passkey_acc 1.0 --stages.0.gate.max_extra_tokens 1024
echo "$ERR" | has "gate was not met" || fail "gate failure not reported: $ERR"
[ "$(grep -c '"event":"gate"' gate/metrics.jsonl)" -eq 3 ] || fail "expected 3 gate checks (budget + 2 extensions)"
grep -q '"stage":0,"passkey_acc"' gate/metrics.jsonl || true

# --- SIGTERM mid-run: checkpoint, exit 99 (requeue), resume to the same end
write_tiny_run sig text.shard
set +e
"$STRETCH" train sig.yaml > sig1.log 2>&1 &
pid=$!
# (up to 2 minutes: a loaded machine may be slow to reach step 8)
for i in $(seq 1 1200); do grep -q '"step":8,' sig/metrics.jsonl 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid
wait $pid; rc=$?
set -e
if [ "$rc" -eq 99 ]; then
  "$STRETCH" train sig.yaml > sig2.log
  same_params "$(latest_ckpt full)" "$(latest_ckpt sig)"
elif [ "$rc" -ne 0 ]; then
  fail "SIGTERM: exit $rc (want 99, or 0 if it finished first)"
fi
# --- SIGUSR1 during start-up (while the corpus is tokenized): honoured at the
# first step boundary (checkpoint of step 0, exit 99), not death by the signal
if [ -d /usr/share/games/fortunes ]; then
  write_tiny_run early text.shard
  sed -i 's/train: \[text.shard\]/corpus: fortunes/' early.yaml
  set +e
  "$STRETCH" train early.yaml > early1.log 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do grep -q "tokenizing corpus" early1.log && break; sleep 0.01; done
  kill -USR1 $pid
  wait $pid; rc=$?
  set -e
  [ "$rc" -eq 99 ] || fail "SIGUSR1 during start-up: exit $rc (want 99)"
  grep -q "stopped at step 0 " early1.log || fail "SIGUSR1 during start-up: not stopped at step 0"
  "$STRETCH" train early.yaml > early2.log
  grep -q "resumed from" early2.log || fail "did not resume after a stop at step 0"
fi
# --- a stop signal that reaches one rank of two: every rank checkpoints and
# exits 99, also the one whose own signal never came
if command -v mpirun >/dev/null; then
  write_tiny_run one text.shard
  set +e
  # shellcheck disable=SC2016  # expanded by each rank's sh
  mpirun -n 2 --oversubscribe --bind-to none sh -c 'r=$OMPI_COMM_WORLD_RANK
    "$0" train one.yaml --parallel.dp 2 --stages.0.steps 400 > one.$r.log 2>&1 &
    echo $! > one.pid.$r; wait $!; echo "rank $r exit $?"' "$STRETCH" > one.log 2>&1 &
  pid=$!
  # up to 2 minutes: a loaded machine (CI neighbours) starts slowly
  for _ in $(seq 1 2400); do [ -s one.pid.1 ] && grep -q '"step":8,' one/metrics.jsonl 2>/dev/null && break; sleep 0.05; done
  [ -s one.pid.1 ] || fail "SIGUSR1 to rank 1 only: rank 1 never started ($(cat one.log))"
  kill -USR1 "$(cat one.pid.1)"
  wait $pid
  set -e
  if ! grep -q "rank 0 exit 99" one.log || ! grep -q "rank 1 exit 99" one.log; then
    fail "SIGUSR1 to rank 1 only: $(grep exit one.log | tr '\n' ' ')(want 99 from both)"
  fi
fi
echo "test_train: all checks passed"
