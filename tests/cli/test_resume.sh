#!/usr/bin/env bash
# Exact resume under SIGKILL: a tiny two-stage run, checkpointing every step,
# is killed with SIGKILL at random moments (during steps, during checkpoint
# writes, around the stage boundary) and restarted each time until it
# finishes; its final parameters must be bitwise identical to an
# uninterrupted run's. Also: a corrupt latest checkpoint makes the resume
# fall back to the previous one, with a warning naming the bad file.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard

write_tiny_run ref text.shard
"$STRETCH" train ref.yaml > ref.log

write_tiny_run kill text.shard
sed -i 's/ckpt_every: 10/ckpt_every: 1/' kill.yaml
kills=0; restarts=0; RANDOM=12345
while :; do
  "$STRETCH" train kill.yaml >> kill.log 2>&1 &
  pid=$!
  # 0.2 .. 2.2 s: the whole run takes a few seconds, so kills land everywhere.
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + 2.0 * r / 32767 }')"
  if kill -0 $pid 2>/dev/null && [ $kills -lt 10 ]; then
    kill -KILL $pid; wait $pid || true
    kills=$((kills + 1))
    step=$(grep -o '"event":"step","step":[0-9]*' kill/metrics.jsonl 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0)
    tmp=$(find kill -name "*.tmp" | wc -l)
    echo "kill $kills after step ${step:-0}$([ "$tmp" -gt 0 ] && echo ' (during a checkpoint write)')"
  else
    wait $pid || fail "run exited non-zero after $kills kills"
    break
  fi
  restarts=$((restarts + 1))
  [ $restarts -lt 40 ] || fail "no completion after 40 restarts"
done
[ $kills -ge 10 ] || echo "note: the run finished after $kills kills"
same_params "$(latest_ckpt ref)" "$(latest_ckpt kill)"
echo "bit-identical after $kills SIGKILLs"

# A corrupt latest checkpoint: resume falls back to the previous good one.
write_tiny_run corrupt text.shard
"$STRETCH" train corrupt.yaml --max-steps 30 > /dev/null
bad=$(latest_ckpt corrupt)
good=$(ls corrupt/ckpt-*.h5 | sort | tail -2 | head -1)   # the one published before it
[ "$good" != "$bad" ] || fail "no older checkpoint"
size=$(stat -c %s "$bad")
truncate -s $((size / 2)) "$bad"
"$STRETCH" train corrupt.yaml > corrupt.log 2> corrupt.err
grep -q "$(basename "$bad")" corrupt.err || fail "the torn checkpoint was not named: $(cat corrupt.err)"
grep -q "resumed from .*$(basename "$good")" corrupt.log || fail "did not fall back to $good"
same_params "$(latest_ckpt ref)" "$(latest_ckpt corrupt)"
echo "test_resume: all checks passed"
