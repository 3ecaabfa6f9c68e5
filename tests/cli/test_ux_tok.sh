#!/usr/bin/env bash
# Tokenizer / shard mismatch (issue 26, item 2): a shard records the size of
# the vocabulary it was tokenized with; a run or an evaluation with another
# tokenizer stops before any compute with one line naming the key, the
# shard and both tokenizers (exit 2), instead of training on ids that mean
# other text.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
BPE=$SRC/tests/data/bpe_tiny/tokenizer.json
make_text_shard byte.shard
"$STRETCH" tokenize --tokenizer "$BPE" --out bpe.shard /usr/share/common-licenses/GPL-3 > /dev/null
Q=(--eval.passkey_trials 0 --stages.0.steps 2 --stages.1.steps 1)
one_line() { [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"; }

# a BPE run on byte-tokenized shards
write_tiny_run a byte.shard
expect_exit 2 "$STRETCH" train a.yaml "${Q[@]}" --data.tokenizer "$BPE" --data.passkey_ratio 0
echo "$ERR" | has -F "data.train: byte.shard was tokenized with a 259-token vocabulary (the byte tokenizer); the run uses tokenizer '$BPE' (1201 tokens)" ||
  fail "data.train mismatch: $ERR"
one_line
[ -e a/metrics.jsonl ] && grep -q '"event":"step"' a/metrics.jsonl && fail "trained on mismatched shards"
# a stage's own shards, and the validation shards
expect_exit 2 "$STRETCH" train a.yaml "${Q[@]}" --stages.1.data bpe.shard
echo "$ERR" | has -F "stages.1.data: bpe.shard was tokenized with a 1201-token vocabulary; the run uses tokenizer 'byte' (259 tokens)" ||
  fail "stages.1.data mismatch: $ERR"
one_line
expect_exit 2 "$STRETCH" train a.yaml "${Q[@]}" --data.val bpe.shard
echo "$ERR" | has -F "data.val: bpe.shard was tokenized with a 1201-token vocabulary" || fail "data.val mismatch: $ERR"
# matching shards train
"$STRETCH" train a.yaml "${Q[@]}" > a.log
grep -q "^done: 3 steps" a.log || fail "matching run: $(tail -2 a.log)"

# eval: a wrong --tokenizer names both vocabularies, not a tensor shape
expect_exit 2 "$STRETCH" eval ppl --ckpt "$(latest_ckpt a)" --tokenizer "$BPE" --data bpe.shard --lengths 64 --out e1
echo "$ERR" | has -F "was trained with a 259-token vocabulary (tokenizer 'byte'); --tokenizer '$BPE' has 1201 tokens" ||
  fail "eval --tokenizer mismatch: $ERR"
one_line
# eval data tokenized with another tokenizer than the checkpoint's
expect_exit 2 "$STRETCH" eval ppl --ckpt "$(latest_ckpt a)" --data bpe.shard --lengths 64 --out e2
echo "$ERR" | has -F -- "--data: bpe.shard was tokenized with a 1201-token vocabulary; the evaluation uses tokenizer 'byte' (259 tokens)" ||
  fail "eval --data mismatch: $ERR"
one_line
# corpus shards left in out_dir by a run with another tokenizer are not reused silently
if [ -d /usr/share/games/fortunes ]; then
  write_tiny_run c byte.shard
  sed -i 's/train: \[byte.shard\]/corpus: fortunes/' c.yaml
  "$STRETCH" train c.yaml "${Q[@]}" --max-steps 1 > c1.log
  expect_exit 2 "$STRETCH" train c.yaml "${Q[@]}" --resume never --data.tokenizer "$BPE" --data.passkey_ratio 0
  echo "$ERR" | has -F "data.corpus: c/data/fortunes-train.shard was tokenized with a 259-token vocabulary (the byte tokenizer); the run uses tokenizer '$BPE'" ||
    fail "stale corpus shards: $ERR"
  one_line
fi

# --- the tokenizer's fingerprint (shards of format version 2): the same
# vocabulary size, other tokens. other.json is bpe_tiny with the ids of two
# tokens swapped (1201 tokens still); a shard tokenized with one is refused
# by a run and an evaluation with the other.
mkdir other
python3 - "$BPE" other/tokenizer.json <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
v = t["model"]["vocab"]
a, b = [k for k, i in v.items() if i in (301, 302)]
v[a], v[b] = v[b], v[a]
json.dump(t, open(sys.argv[2], "w"), ensure_ascii=False)
PY
OTHER=$PWD/other/tokenizer.json
"$STRETCH" tokenize --tokenizer "$OTHER" --out other.shard /usr/share/common-licenses/GPL-3 > /dev/null
cmp -s bpe.shard other.shard && fail "the two tokenizers made the same shard: the test tells nothing"
write_tiny_run f bpe.shard
expect_exit 2 "$STRETCH" train f.yaml "${Q[@]}" --data.tokenizer "$OTHER" --data.passkey_ratio 0
echo "$ERR" | has -F "data.train: bpe.shard was tokenized with tokenizer '$BPE' (fingerprint " || fail "fingerprint: $ERR"
echo "$ERR" | has -F "the run uses tokenizer '$OTHER' (fingerprint " || fail "fingerprint, the run's: $ERR"
echo "$ERR" | has -F "the same vocabulary size (1201), other tokens or merges" || fail "fingerprint, why: $ERR"
one_line
[ -e f/metrics.jsonl ] && grep -q '"event":"step"' f/metrics.jsonl && fail "trained on another tokenizer's shards"
# the shard's own tokenizer trains
"$STRETCH" train f.yaml "${Q[@]}" --data.tokenizer "$BPE" --data.passkey_ratio 0 > f.log
grep -q "^done: 3 steps" f.log || fail "matching BPE run: $(tail -2 f.log)"
# eval: --data of the other tokenizer, and --tokenizer other than the checkpoint's
expect_exit 2 "$STRETCH" eval ppl --ckpt "$(latest_ckpt f)" --data other.shard --lengths 64 --out e3
echo "$ERR" | has -F -- "--data: other.shard was tokenized with tokenizer '$OTHER' (fingerprint " || fail "eval --data fingerprint: $ERR"
one_line
expect_exit 2 "$STRETCH" eval ppl --ckpt "$(latest_ckpt f)" --tokenizer "$OTHER" --data other.shard --lengths 64 --out e4
echo "$ERR" | has -F "was trained with tokenizer '$BPE'; --tokenizer '$OTHER' has the same vocabulary size (1201) but other tokens or merges" ||
  fail "eval --tokenizer fingerprint: $ERR"
one_line
echo "test_ux_tok: all passed"
