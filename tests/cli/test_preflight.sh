#!/usr/bin/env bash
# Errors the run file and the data allow to see are found before the first
# step (trainer/train_preflight.h), on every rank: one line, exit 2, no step
# trained, no checkpoint. Also a full disk and a read-only train.out_dir
# (a small tmpfs; needs root to mount, else that part is skipped with a line
# saying so).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d)
MNT=$T/mnt
cleanup() { mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
make_text_shard text.shard
write_tiny_run pf text.shard

# $1: out_dir, then the expected message (grep -E); the rest: arguments
late() {
  local dir=$1 want=$2; shift 2
  expect_exit 2 "$STRETCH" train pf.yaml --train.out_dir "$dir" "$@"
  [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "$dir: more than one line: $ERR"
  echo "$ERR" | grep -qE "^stretch: error: $want" || fail "$dir: message: $ERR"
  if [ -f "$dir/metrics.jsonl" ] && grep -q '"event":"step"' "$dir/metrics.jsonl"; then
    fail "$dir: a step was trained before the error"
  fi
  ! ls "$dir"/ckpt-* >/dev/null 2>&1 || fail "$dir: a checkpoint was written"
}

# the issue's run: 64-token stage, default eval lengths, full-size passkey prompt
late a "eval.passkey_lengths: passkey: length 64 is too short" --data.passkey_compact false --data.passkey_ratio 0
late b "stages.0.gate.passkey_acc: passkey: length 64 is too short" --data.passkey_compact false \
  --data.passkey_ratio 0 --eval.passkey_trials 0 --stages.0.gate.passkey_acc 0.5
late c "stages.1 \(long\) data: nope.shard: cannot open" --stages.1.data '[nope.shard]'
printf 'junk' > cut.shard
late d "stages.1 \(long\) data: cut.shard: truncated" --stages.1.data '[cut.shard]'
head -c 100 text.shard > short.shard
late e "stages.1 \(long\) data: short.shard" --stages.1.data '[short.shard]'
cp text.shard flip.shard
printf '\xff' | dd of=flip.shard bs=1 seek=300 conv=notrunc 2>/dev/null
late e2 "stages.1 \(long\) data: flip.shard: .*checksum" --stages.1.data '[flip.shard]'
late f "stages.1.gate.val_loss needs validation data" --stages.1.gate.val_loss 2.0
late g "stages.0 \(short\) validation data \(data.val\): nope-val.shard: cannot open" --data.val '[nope-val.shard]' \
  --train.eval_every 5

# two ranks: the same line once, exit 2, no hang
set +e
timeout 120 mpirun -n 2 --oversubscribe --bind-to none "$STRETCH" train pf.yaml --train.out_dir h \
  --parallel.dp 2 --stages.1.data '[nope.shard]' > h.log 2> h.err
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "2 ranks: exit $rc: $(cat h.err)"
[ "$(grep -c 'stretch: error: stages.1 (long) data: nope.shard: cannot open' h.err)" -eq 1 ] || fail "2 ranks: $(cat h.err)"
! grep -q '"event":"step"' h/metrics.jsonl || fail "2 ranks trained a step"

# a disk too small for the checkpoints, and a read-only out_dir (root: tmpfs)
mkdir -p "$MNT"
if mount -t tmpfs -o size=256k tmpfs "$MNT" 2>/dev/null; then
  late "$MNT/run" "train.out_dir: $MNT/run has 0.[0-9] MB free, checkpoints of this model need [0-9.]+ MB"
  umount "$MNT"
  mount -t tmpfs -o size=8m tmpfs "$MNT"
  mkdir -p "$MNT/run"
  mount -o remount,ro "$MNT"
  expect_exit 2 "$STRETCH" train pf.yaml --train.out_dir "$MNT/run"
  [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "read-only: more than one line: $ERR"
  echo "$ERR" | grep -q "Read-only file system" || fail "read-only: $ERR"
  umount "$MNT"
else
  echo "SKIPPED PART: disk-space and read-only checks need root to mount a tmpfs"
fi
echo "test_preflight: all checks passed"
