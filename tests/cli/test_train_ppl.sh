#!/usr/bin/env bash
# Perplexity vs length on held-out text during training (eval.ppl_*,
# trainer/train_ppl.h): the NLL a run prints and logs after each stage equals
# `stretch eval ppl` of that stage's checkpoint on the same windows; the
# summary's table and short-context change follow from those numbers; a
# resumed run keeps the earlier stages' rows; the kjv corpus (Debian
# bible-kjv-text) is tokenized once into out_dir/data; user errors exit 2
# before any compute.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

make_text_shard text.shard
# held-out text: licenses the training shard does not hold
"$STRETCH" tokenize --out held.shard /usr/share/common-licenses/GPL-2 /usr/share/common-licenses/Artistic \
  /usr/share/common-licenses/BSD > /dev/null
write_tiny_run run text.shard
PPL=(--eval.ppl_data '[held.shard]' --eval.ppl_lengths '[32, 64, 128]' --eval.ppl_tokens 2048)
"$STRETCH" train run.yaml "${PPL[@]}" --eval.passkey_trials 0 > train.log

# --- every (stage, length) row against stretch eval ppl of the stage's checkpoint
# (ckpt 24: the stage switch, evaluated with stage 0's RoPE; ckpt 36: the end)
for stage_ckpt in "0 run/ckpt-00000024.h5" "1 run/ckpt-00000036.h5"; do
  set -- $stage_ckpt
  for L in 32 64 128; do
    W=$(( (2048 + L - 1) / L ))
    "$STRETCH" eval ppl --ckpt "$2" --data held.shard --lengths $L --windows $W --out e$1_$L > /dev/null
    want=$(sed -n 2p e$1_$L/ppl.csv | cut -d, -f4)
    got=$(grep '"event":"eval_ppl"' run/metrics.jsonl | grep "\"stage\":$1," | grep "\"length\":$L," |
      sed 's/.*"nll":\([^,}]*\).*/\1/')
    [ -n "$got" ] || fail "no eval_ppl row for stage $1 length $L"
    awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; exit !(d < 2e-6 && d > -2e-6) }' ||
      fail "stage $1 @ $L: run logged nll $got, stretch eval ppl gives $want"
    grep -q "ppl @ *$L tokens (after stage $1 .*$W windows)" train.log || fail "no printed line for stage $1 @ $L"
  done
done

# --- the summary: a row per stage, and the short-context change at the
# original context (64 = stages.0.seq_len) from the two stages' NLLs
grep -q "^held-out perplexity (eval.ppl_data; ~2048 predictions per length)" train.log ||
  fail "no ppl summary: $(tail -5 train.log)"
nll() { grep '"event":"eval_ppl"' run/metrics.jsonl | grep "\"stage\":$1," | grep "\"length\":$2," |
  sed 's/.*"nll":\([^,}]*\).*/\1/'; }
b=$(nll 0 64); a=$(nll 1 64)
want=$(awk -v a="$a" -v b="$b" -v q="'" 'BEGIN { printf "%.3f after stage 0 %sshort%s (before extension), %.3f after stage 1 %slong%s: %+.2f%%", exp(b), q, q, exp(a), q, q, 100 * (exp(a - b) - 1) }')
grep -qF "short-context perplexity @ 64 tokens: $want" train.log ||
  fail "short-context line: want '$want', got '$(grep short-context train.log)'"
row1=$(grep "^1 long " train.log | awk '{ print NF }')
[ "$row1" = 5 ] || fail "summary row of stage 1: $(grep '^1 long ' train.log)"

# --- resumed in stage 1: the summary still has stage 0's row (from metrics.jsonl)
write_tiny_run res text.shard
"$STRETCH" train res.yaml "${PPL[@]}" --eval.passkey_trials 0 --max-steps 30 > res1.log
"$STRETCH" train res.yaml "${PPL[@]}" --eval.passkey_trials 0 > res2.log
grep -q "resumed from" res2.log || fail "second session did not resume"
grep -q "ppl @ .*after stage 0" res2.log && fail "stage 0 evaluated again after the resume"
[ "$(grep '^0 short' res2.log)" = "$(grep '^0 short' train.log | head -1)" ] ||
  fail "resumed summary row of stage 0: '$(grep '^0 short' res2.log)' vs '$(grep '^0 short' train.log | head -1)'"

# --- the packaged corpus: kjv tokenized once into out_dir/data, 66 books
if [ -r /usr/lib/bible.data ]; then
  write_tiny_run kjv text.shard
  KJV=(--eval.ppl_corpus kjv --eval.ppl_lengths '[128, 4096]' --eval.ppl_tokens 8192 --eval.passkey_trials 0)
  "$STRETCH" train kjv.yaml "${KJV[@]}" --stages.1.steps 1 > kjv1.log
  grep -q "tokenizing held-out corpus 'kjv' into kjv/data" kjv1.log || fail "kjv not tokenized: $(head -3 kjv1.log)"
  [ -s kjv/data/kjv-eval.shard ] || fail "no kjv/data/kjv-eval.shard"
  grep -q "ppl @   4096 tokens (after stage 1 'long'): .*(nll .*, 2 windows)" kjv1.log || fail "no kjv ppl at 4096"
  "$STRETCH" train kjv.yaml "${KJV[@]}" --stages.1.steps 1 > kjv2.log
  grep -q "tokenizing held-out" kjv2.log && fail "kjv tokenized twice"
  # the shard is one stretch eval reads too
  "$STRETCH" eval ppl --ckpt kjv/ckpt-00000025.h5 --data kjv/data/kjv-eval.shard --lengths 2048 --windows 1 --out ek > ek.log
  grep -q "@   2048 tokens:   1 windows" ek.log || fail "stretch eval ppl on the kjv shard: $(cat ek.log)"
else
  echo "test_train_ppl: bible-kjv-text not installed, kjv part skipped"
fi

# --- user errors: exit 2, one line naming the key, before any compute
expect_exit 2 "$STRETCH" train run.yaml --resume never --eval.ppl_lengths '[64]'
echo "$ERR" | has "eval.ppl_lengths needs held-out text: set eval.ppl_corpus (e.g. kjv) or eval.ppl_data" || fail "no text: $ERR"
expect_exit 2 "$STRETCH" train run.yaml --resume never --eval.ppl_lengths '[64]' --eval.ppl_corpus bible
echo "$ERR" | has "eval.ppl_corpus: unknown corpus 'bible' (known: fortunes, fortunes-files, kjv)" || fail "bad corpus: $ERR"
expect_exit 2 "$STRETCH" train run.yaml --resume never "${PPL[@]}" --eval.ppl_lengths '[64, 1000000]'
echo "$ERR" | has "eval.ppl_lengths: no held-out document holds 1000001 tokens" || fail "too long: $ERR"
expect_exit 2 "$STRETCH" train run.yaml --resume never --eval.ppl_lengths '[64]' --eval.ppl_data '[nothere.shard]'
echo "$ERR" | has "nothere.shard" || fail "missing shard: $ERR"
expect_exit 2 "$STRETCH" train run.yaml --resume never "${PPL[@]}" --eval.ppl_tokens 0
echo "$ERR" | has "eval.ppl_tokens (0) must be >= 1" || fail "ppl_tokens 0: $ERR"
echo "test_train_ppl: all checks passed"
