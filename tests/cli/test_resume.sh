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
# Ten kill points spread over the 36 steps (2 stages of 24 + 12): the run is
# killed with SIGKILL right after it logs the target step (then often while it
# writes that step's checkpoint), or a few ms later; restarted each time.
last_step() { grep -o '"event":"step","step":[0-9]*' kill/metrics.jsonl 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0; }
kills=0; RANDOM=12345
for target in 3 7 11 15 19 23 24 27 31 34; do
  "$STRETCH" train kill.yaml >> kill.log 2>&1 &
  pid=$!
  for i in $(seq 1 3000); do
    [ "$(last_step)" -ge $target ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 5))"
  kill -0 $pid 2>/dev/null || fail "the run ended before kill point $target"
  kill -KILL $pid; wait $pid || true
  kills=$((kills + 1))
  tmp=$(find kill -name "*.tmp" | wc -l)
  echo "kill $kills after step $(last_step)$([ "$tmp" -gt 0 ] && echo ' (during a checkpoint write)')"
done
"$STRETCH" train kill.yaml >> kill.log 2>&1 || fail "the final restart failed"
same_params "$(latest_ckpt ref)" "$(latest_ckpt kill)"
echo "bit-identical after $kills SIGKILLs"

# A corrupt latest checkpoint: resume falls back to the previous good one.
write_tiny_run corrupt text.shard
"$STRETCH" train corrupt.yaml --max-steps 30 > /dev/null
bad=$(latest_ckpt corrupt)
good=$(ls corrupt/ckpt-*.h5 | sort | tail -2 | sed -n 1p)   # the one published before it
[ "$good" != "$bad" ] || fail "no older checkpoint"
size=$(stat -c %s "$bad")
truncate -s $((size / 2)) "$bad"
"$STRETCH" train corrupt.yaml > corrupt.log 2> corrupt.err
grep -q "$(basename "$bad")" corrupt.err || fail "the torn checkpoint was not named: $(cat corrupt.err)"
grep -q "resumed from .*$(basename "$good")" corrupt.log || fail "did not fall back to $good"
same_params "$(latest_ckpt ref)" "$(latest_ckpt corrupt)"

# A latest checkpoint that opens but holds a corrupt chunk (one byte of the
# data flipped, found by Fletcher32 only while reading it): the resume reads
# each file once (no separate verify pass), so the failing read itself must
# fall back, and the older file's state, read whole, must win.
write_tiny_run flip text.shard
"$STRETCH" train flip.yaml --max-steps 30 > /dev/null
bad=$(latest_ckpt flip)
good=$(ls flip/ckpt-*.h5 | sort | tail -2 | sed -n 1p)
# The byte at 3/4 of the file lies in the AdamW second moments (optim/v),
# read after the parameters and first moments; inspect (ckpt_verify) says so.
size=$(stat -c %s "$bad")
printf '\x5a' | dd of="$bad" bs=1 seek=$((size * 3 / 4)) conv=notrunc 2>/dev/null
why=$("$STRETCH" inspect "$bad" 2>&1) && fail "inspect accepted the flipped checkpoint"
grep -q "dataset optim/v/.* failed its checksum" <<<"$why" \
  || fail "the flipped byte did not corrupt a chunk of optim/v: $why"
"$STRETCH" train flip.yaml > flip.log 2> flip.err || fail "resume after a corrupt chunk failed: $(cat flip.err)"
grep -q "skipping .*$(basename "$bad")" flip.err || fail "the corrupt checkpoint was not named: $(cat flip.err)"
grep -q "resumed from .*$(basename "$good")" flip.log || fail "did not fall back to $good"
same_params "$(latest_ckpt ref)" "$(latest_ckpt flip)"
echo "test_resume: all checks passed"
