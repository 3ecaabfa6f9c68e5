#!/usr/bin/env bash
# Resume that allows sane changes (issue 26, item 1; rules in
# trainer/train_resume.h): stages not yet started, the LR from now on, eval,
# logging and checkpoint cadence may change and are shown; the model, the
# tokenizer, the seed, finished stages and the data of the stage under way
# may not, each refused with one line naming the key, exit 2, before any step.
# A run whose later stage's data path was wrong is mended and finishes.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
cp text.shard other.shard
Q=(--eval.passkey_trials 0 --train.log_every 1)

# a run stopped inside stage 0 (step 8 of 24): stage 1 not started
write_tiny_run r text.shard
"$STRETCH" train r.yaml "${Q[@]}" --max-steps 8 > r1.log
refused() {  # refused KEY ARGS...: exit 2, one line naming KEY, nothing trained
  local key=$1; shift
  local n; n=$(grep -c '"event":"step"' r/metrics.jsonl)
  expect_exit 2 "$STRETCH" train r.yaml "${Q[@]}" "$@"
  echo "$ERR" | has "$key: .* cannot change on resume" || fail "change of $key: $ERR"
  [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line for $key: $ERR"
  [ "$(grep -c '"event":"step"' r/metrics.jsonl)" -eq "$n" ] || fail "trained despite a refused $key"
}
refused model.ffn_dim --model.ffn_dim 48
"$STRETCH" tokenize --tokenizer "$SRC/tests/data/bpe_tiny/tokenizer.json" --out bpe.shard /usr/share/common-licenses/GPL-3 > /dev/null
refused data.tokenizer --data.tokenizer "$SRC/tests/data/bpe_tiny/tokenizer.json" --data.train bpe.shard
refused train.seed --train.seed 8
refused stages.0.seq_len --stages.0.seq_len 32
refused stages.0.data --stages.0.data other.shard
refused data.train --data.train other.shard
refused data.passkey_ratio --data.passkey_ratio 0.5
refused stages.0.steps --stages.0.steps 4
# allowed: LR from now on, stage 1 (not started) reshaped, eval and cadence; shown
"$STRETCH" train r.yaml "${Q[@]}" --max-steps 12 --optimizer.lr 2e-3 --stages.1.seq_len 256 \
  --stages.1.steps 6 --train.ckpt_every 4 --eval.passkey_trials 1 \
  --stages.1.passkey_pack_min 200 --stages.1.passkey_pack_long 0.5 > r2.log
line=$(grep "^resume: changed since r/ckpt-00000008.h5 (allowed): " r2.log) || fail "allowed changes not shown: $(cat r2.log)"
for c in "optimizer.lr: 0.003 -> 0.002" "train.ckpt_every: 10 -> 4" "eval.passkey_trials: 0 -> 1" \
         "stages.1.seq_len: 128 -> 256" "stages.1.steps: 12 -> 6" "stages.1.passkey_pack_min: 0 -> 200" \
         "stages.1.passkey_pack_long: 0.0 -> 0.5"; do
  echo "$line" | has -F "$c" || fail "allowed change '$c' not shown: $line"
done
lr9=$(grep '"event":"step","step":9,' r/metrics.jsonl | sed 's/.*"lr":\([^,]*\).*/\1/')
awk -v x="$lr9" 'BEGIN { exit !(x > 0.0015 && x < 0.0021) }' || fail "lr at step 9 is $lr9, not from 2e-3"
[ -e r/ckpt-00000012.h5 ] || fail "new ckpt_every 4 not applied"
# stage 0 is now under way at step 12; finish it with the new config and reach stage 1
"$STRETCH" train r.yaml "${Q[@]}" --optimizer.lr 2e-3 --stages.1.seq_len 256 --stages.1.steps 6 \
  --train.ckpt_every 4 --max-steps 24 > r3.log
# at the boundary stage 1 has not begun: its data may change now
"$STRETCH" train r.yaml "${Q[@]}" --optimizer.lr 2e-3 --stages.1.seq_len 256 --stages.1.steps 6 \
  --train.ckpt_every 4 --stages.1.data other.shard > r4.log
grep -qF "stages.1.data: [] -> [\"other.shard\"]" r4.log || fail "stage 1 data change not shown: $(grep resume r4.log)"
grep -q "^done: 30 steps" r4.log || fail "run did not finish: $(tail -2 r4.log)"
# now stage 0 is finished: changing it is refused
refused stages.0.batch_tokens --optimizer.lr 2e-3 --stages.1.seq_len 256 --stages.1.steps 6 --train.ckpt_every 4 \
  --stages.1.data other.shard --stages.0.batch_tokens 256

# --- a missing shard of a later stage is refused before any step (preflight),
# and the data of a stage not yet started may change on resume: stage 0 runs
# (stopped at its end by --max-steps), then stage 1 takes other data
write_tiny_run m text.shard
expect_exit 2 "$STRETCH" train m.yaml "${Q[@]}" --stages.0.steps 4 --stages.1.steps 2 --stages.1.data missing.shard
has "missing.shard" <<<"$ERR" || fail "missing shard not named: $ERR"
[ ! -e m/latest ] || fail "a run refused by preflight left a checkpoint"
"$STRETCH" train m.yaml "${Q[@]}" --stages.0.steps 4 --stages.1.steps 2 --stages.1.data other.shard --max-steps 4 > m1.log
"$STRETCH" train m.yaml "${Q[@]}" --stages.0.steps 4 --stages.1.steps 2 --stages.1.data text.shard > m2.log
grep -q "resumed from m/ckpt-00000004.h5" m2.log || fail "not resumed at the boundary: $(sed -n 1,3p m2.log)"
grep -q "^done: 6 steps" m2.log || fail "mended run did not finish: $(tail -2 m2.log)"
echo "test_ux_resume: all passed"
