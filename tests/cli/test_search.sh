#!/usr/bin/env bash
# stretch search end to end: a tiny model trained on text at 64 tokens, a
# small LongRoPE search at 4x (population 6, 3 generations): the factors
# file (constraints, read by the curriculum in a longrope stage that trains
# a step, exported to an HF config), the searched perplexity no worse than
# PI, NTK and YaRN printed in the same run, the CSV and plot, determinism
# for a seed, a resume after generation 1 equal to the uninterrupted search,
# 2 ranks (dp 2: candidates split) equal to 1 rank, a 2-rank ring (sp 2),
# and user errors (exit 2, one line).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -n 2 --oversubscribe --bind-to none)

# --- a model trained on text only at 64 tokens (stage 0 of the tiny run)
make_text_shard text.shard
write_tiny_run run text.shard
"$STRETCH" train run.yaml --model.dim 64 --model.ffn_dim 128 --data.passkey_ratio 0 --stages.0.steps 200 \
  --eval.passkey_trials 0 --train.ckpt_every 1000 --max-steps 200 > train.log
CKPT=run/ckpt-00000200.h5
[ -f $CKPT ] || fail "no checkpoint $CKPT: $(ls run)"

SEARCH=(search --ckpt $CKPT --target-len 256 --data text.shard --population 6 --generations 3 --topk 2
        --windows 3 --seed 1 --nhat 0,4,16)

# --- the search
"$STRETCH" "${SEARCH[@]}" --out a/factors.yaml --state sa > a.log
line=$(grep '^perplexity @ 256 tokens: ' a.log) || fail "no perplexity line: $(cat a.log)"
read -r pi ntk yarn best <<< "$(echo "$line" | sed 's/.*PI \([0-9.]*\), NTK \([0-9.]*\), YaRN \([0-9.]*\), searched \([0-9.]*\).*/\1 \2 \3 \4/')"
echo "perplexity @ 256: PI $pi NTK $ntk YaRN $yarn searched $best"
# The population holds the three baselines and keeps its best: never worse.
awk -v p="$pi" -v n="$ntk" -v y="$yarn" -v b="$best" 'BEGIN { m = p; if (n < m) m = n; if (y < m) m = y; exit !(b <= m && b > 1) }' \
  || fail "searched perplexity $best is worse than the best of PI $pi, NTK $ntk, YaRN $yarn"
# The factors file: 8 pairs (head_dim 16), short all 1, long in [1, 4] and non-decreasing, n_hat in the set.
F=a/factors.yaml
list() { grep "^$1:" "$F" | sed 's/.*\[\(.*\)\]/\1/' | tr -d ' ' | tr ',' '\n'; }
[ "$(list short_factor | sort -u)" = "1.0" ] || fail "short_factor is not all 1: $(grep short_factor $F)"
[ "$(list long_factor | wc -l)" -eq 8 ] || fail "long_factor: want 8 values: $(grep long_factor $F)"
list long_factor | awk 'NR > 1 && $1 + 0 < prev { exit 1 } $1 + 0 < 1 || $1 + 0 > 4 { exit 1 } { prev = $1 + 0 }' \
  || fail "long_factor breaks 1 <= lambda_0 <= ... <= 4: $(grep long_factor $F)"
grep -qE '^n_hat: (0|4|16)$' $F || fail "n_hat not from the set: $(grep n_hat $F)"
# CSV: 3 generations, the best never worse; the plot has the search and three baselines.
[ "$(head -1 a/factors.csv)" = "generation,evaluated,best_nll,best_ppl,mean_nll,best_n_hat" ] || fail "csv header"
[ "$(wc -l < a/factors.csv)" -eq 4 ] || fail "factors.csv: want 3 rows"
awk -F, 'NR > 2 && $3 > prev { exit 1 } NR > 1 { prev = $3 }' a/factors.csv || fail "best nll rose: $(cat a/factors.csv)"
awk -F, 'NR == 2 && $2 != 6 || NR == 4 && $2 != 14 { exit 1 }' a/factors.csv || fail "evaluated column: want 6 then +4"
grep -q '</svg>' a/factors.svg || fail "factors.svg incomplete"
[ "$(grep -o 'class="series"' a/factors.svg | wc -l)" -eq 4 ] || fail "factors.svg: want 4 lines"

# --- determinism: the same seed gives the same file, another seed runs its own search
"$STRETCH" "${SEARCH[@]}" --out b/factors.yaml > b.log
cmp a/factors.yaml b/factors.yaml || fail "two runs with seed 1 differ"
cmp a/factors.csv b/factors.csv || fail "two runs with seed 1 have different histories"

# --- resume: stop after generation 1 (the state as a kill would leave it), then go on
"$STRETCH" "${SEARCH[@]}" --out c/factors.yaml --state sc --stop-after 1 > c1.log
grep -q "stopped after generation 1 of 3" c1.log || fail "no stop message: $(cat c1.log)"
[ -f sc/search.state ] && [ ! -e c/factors.yaml ] || fail "after --stop-after: want a state and no factors file"
"$STRETCH" "${SEARCH[@]}" --out c/factors.yaml --state sc > c2.log
grep -q "resuming from sc/search.state: 1 generation(s) done" c2.log || fail "not resumed: $(head -3 c2.log)"
cmp a/factors.yaml c/factors.yaml || fail "resumed search differs from the uninterrupted one"
cmp a/factors.csv c/factors.csv || fail "resumed history differs"
# A finished state only reports again; other settings are refused.
"$STRETCH" "${SEARCH[@]}" --out d/factors.yaml --state sc > d.log
cmp a/factors.yaml d/factors.yaml || fail "a finished state gives another result"
expect_exit 2 "$STRETCH" "${SEARCH[@]}" --seed 2 --out e/factors.yaml --state sc
echo "$ERR" | has "seed: 1 (saved) vs 2 (now)" || fail "other settings: $ERR"

# --- 2 ranks: dp 2 splits the candidates and finds the same; sp 2 shares each window
"${MPIRUN[@]}" "$STRETCH" "${SEARCH[@]}" --out m/factors.yaml > m.log
grep -q "2 rank(s) = dp 2 x sp 1" m.log || fail "not dp 2: $(grep rank m.log)"
cmp a/factors.yaml m/factors.yaml || fail "2 ranks (dp 2) differ from 1 rank"
"${MPIRUN[@]}" "$STRETCH" "${SEARCH[@]}" --generations 1 --sp 2 --out r/factors.yaml > r.log
grep -q "2 rank(s) = dp 1 x sp 2" r.log || fail "not sp 2: $(grep rank r.log)"
ring=$(grep '^generation 1: ' r.log | sed 's/,.*//'); one=$(grep '^generation 1: ' a.log | sed 's/,.*//')
[ "$ring" = "$one" ] || fail "ring attention over 2 ranks: '$ring' vs 1 rank '$one'"

# --- the curriculum reads the factors: one step of a longrope stage at 256 from the checkpoint
cat > long.yaml <<YAML
model: {dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 128, max_position_embeddings: 64, init: $CKPT}
data: {tokenizer: byte, train: [text.shard]}
optimizer: {lr: 1.0e-3, warmup_steps: 0}
train: {seed: 7, out_dir: long, log_every: 1, ckpt_every: 1000, keep_last: 0}
eval: {passkey_trials: 0}
stages:
  - {name: long, seq_len: 256, steps: 1, batch_tokens: 512, rope: {type: longrope, factors_file: a/factors.yaml}}
YAML
"$STRETCH" train long.yaml > long.log
grep -q "rope longrope (factor 4, original 64" long.log || fail "longrope stage: $(grep rope long.log)"
grep -q '"event":"step"' long/metrics.jsonl || fail "the longrope stage took no step"
# ... and its HF config carries the factors (n_hat has no key).
"$STRETCH" export --ckpt long/ckpt-00000001.h5 --format hf --out hf > export.log 2>&1 || fail "export: $(cat export.log)"
grep -q '"rope_type": *"longrope"' hf/config.json || fail "config.json: no longrope: $(cat hf/config.json)"
first=$(list long_factor | sed -n 1p)
python3 - "$first" hf/config.json <<'PY' || fail "config.json long_factor[0] differs from the factors file"
import json, sys
c = json.load(open(sys.argv[2])); rs = c.get("rope_scaling") or c.get("rope_parameters")
assert abs(rs["long_factor"][0] - float(sys.argv[1])) <= 1e-6 * float(sys.argv[1]), rs["long_factor"]
PY

# --- user errors: exit 2, one line
one_line() { [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"; echo "$ERR" | has -F -- "$1" || fail "'$1' not in: $ERR"; }
BASE=(search --ckpt $CKPT --data text.shard --out e/factors.yaml)
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 32; one_line "must be longer than the original context (64)"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 64; one_line "must be longer than the original context (64)"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 256 --population 0; one_line "--population 0"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 256 --population 6 --topk 7; one_line "--topk 7"
: > empty.txt; "$STRETCH" tokenize --out empty.shard empty.txt > /dev/null
expect_exit 2 "$STRETCH" search --ckpt $CKPT --data empty.shard --out e/factors.yaml --target-len 256; one_line "no document holds 257 tokens"
expect_exit 2 "$STRETCH" search --ckpt $CKPT --data missing.shard --out e/factors.yaml --target-len 256; one_line "missing.shard"
expect_exit 2 "$STRETCH" search --ckpt missing.h5 --data text.shard --out e/factors.yaml --target-len 256; one_line "missing.h5"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 256 --nhat 4,16; one_line "must hold 0"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 256 --stop-after 1; one_line "--state"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 256 --sp 2; one_line "--sp 2"
expect_exit 2 "$STRETCH" "${BASE[@]}" --target-len 256 --frobnicate 1; one_line "frobnicate"
expect_exit 2 "$STRETCH" search --ckpt $CKPT --target-len 256 --out e/factors.yaml; one_line "--data is required"
[ ! -e e ] || fail "a refused search created its output directory"
"$STRETCH" search --help | has "stretch search --ckpt" || fail "no search --help"
"$STRETCH" help | has "search --ckpt" || fail "search missing from stretch help"
echo "test_search: ok"
