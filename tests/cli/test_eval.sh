#!/usr/bin/env bash
# stretch eval end to end: a tiny model trained to retrieve passkeys at 64
# tokens (then extended to 128 with YaRN) and a 1-step one; passkey grid
# (CSV schema, values, right vs wrong model, heatmap), the same CSV from a
# 2-rank ring (mpirun -n 2 --sp 2), perplexity vs length for two checkpoints
# (non-overlapping and sliding, 1 and 2 ranks), the short-context check,
# and user errors (exit 2, one line).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -n 2 --oversubscribe --bind-to none)

# The SVG parses as XML (xmllint or python when present; always: it ends).
well_formed() {
  [ -s "$1" ] || fail "$1 is missing or empty"
  grep -q '</svg>' "$1" || fail "$1 has no </svg>"
  if command -v xmllint >/dev/null; then xmllint --noout "$1" || fail "$1 is not well-formed XML"
  elif command -v python3 >/dev/null; then python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$1" || fail "$1 is not well-formed XML"; fi
}
# Column $2 of CSV $1 (header skipped) is a number in [$3, $4] on every row.
column_in() {
  awk -F, -v c="$2" -v lo="$3" -v hi="$4" 'NR > 1 && !($c + 0 >= lo && $c + 0 <= hi && $c ~ /^[-+0-9.eE]+$/) { print "row " NR ": " $0; bad = 1 } END { exit bad }' "$1" \
    || fail "$1: column $2 outside [$3, $4]"
}

# --- models: 300 steps of passkey rows at 64 tokens, 12 more at 128 (YaRN); a 1-step one
make_text_shard text.shard
write_tiny_run run text.shard
"$STRETCH" train run.yaml --model.dim 64 --model.ffn_dim 128 --data.passkey_ratio 1.0 \
  --stages.0.steps 300 --stages.0.batch_tokens 1024 --train.ckpt_every 1000 --eval.passkey_trials 0 > train.log
BEFORE=run/ckpt-00000300.h5; AFTER=run/ckpt-00000312.h5
[ -f $BEFORE ] && [ -f $AFTER ] || fail "expected checkpoints $BEFORE and $AFTER: $(ls run)"
write_tiny_run untrained text.shard
"$STRETCH" train untrained.yaml --max-steps 1 > /dev/null
UNTRAINED=untrained/ckpt-00000001.h5

# --- passkey: 4 lengths x 3 depths, 4 trials per cell
PK=(--lengths 48,64,96,128 --depths 3 --trials 4)
"$STRETCH" eval passkey --ckpt $BEFORE "${PK[@]}" --out pk1 > pk1.log
[ "$(head -1 pk1/passkey.csv)" = "length,depth,trials,correct,accuracy" ] || fail "passkey.csv header: $(head -1 pk1/passkey.csv)"
[ "$(wc -l < pk1/passkey.csv)" -eq 13 ] || fail "passkey.csv: want 12 rows"
awk -F, 'NR > 1 && NF != 5 { exit 1 }' pk1/passkey.csv || fail "passkey.csv: not 5 columns"
[ "$(cut -d, -f1 pk1/passkey.csv | sed 1d | sort -un | tr '\n' ' ')" = "48 64 96 128 " ] || fail "passkey.csv lengths"
[ "$(cut -d, -f2 pk1/passkey.csv | sed 1d | sort -u | tr '\n' ' ')" = "0 0.5 1 " ] || fail "passkey.csv depths"
column_in pk1/passkey.csv 3 4 4
column_in pk1/passkey.csv 4 0 4
column_in pk1/passkey.csv 5 0 1
awk -F, 'NR > 1 && ($5 - $4 / $3 > 1e-4 || $4 / $3 - $5 > 1e-4) { exit 1 }' pk1/passkey.csv || fail "accuracy != correct / trials"
# The model was trained to retrieve at 64 tokens (the checkpoint of the
# stage switch is evaluated with the RoPE it was trained with).
grep -q "rope of stage 0 'short': default" pk1.log || fail "not the trained stage's RoPE: $(grep rope pk1.log)"
acc64=$(awk -F, '$1 == 64 { s += $5; n++ } END { print s / n }' pk1/passkey.csv)
awk -v a="$acc64" 'BEGIN { exit !(a >= 0.5) }' || fail "trained model retrieves only $acc64 at 64 tokens"
well_formed pk1/passkey.svg
[ "$(grep -o 'class="cell"' pk1/passkey.svg | wc -l)" -eq 12 ] || fail "passkey.svg: want 12 cells"
grep -q 'accuracy (%)' pk1/passkey.svg || fail "passkey.svg: no colour bar label"
# ... and the 1-step model never does.
"$STRETCH" eval passkey --ckpt $UNTRAINED --lengths 64 --depths 3 --trials 4 --out pk0 > /dev/null
column_in pk0/passkey.csv 4 0 0

# --- the same grid on a 2-rank ring: the same CSV
"${MPIRUN[@]}" "$STRETCH" eval passkey --ckpt $BEFORE "${PK[@]}" --sp 2 --out pk2 > pk2.log
grep -q "2 rank(s) = sp 2" pk2.log || fail "not a 2-rank ring: $(head -1 pk2.log)"
cmp pk1/passkey.csv pk2/passkey.csv || fail "passkey.csv differs between 1 and 2 ranks"
# --rope-stage picks another stage's RoPE.
"$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --depths 1 --trials 2 --rope-stage 1 --out pk3 > pk3.log
grep -q "rope of stage 1 'long': yarn, factor 2" pk3.log || fail "--rope-stage 1: $(grep rope pk3.log)"
"$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --depths 1 --trials 2 --rope linear:2 --out pk3 > pk3.log
grep -q "rope of --rope linear, factor 2" pk3.log || fail "--rope linear:2: $(grep rope pk3.log)"

# --- perplexity vs length, two checkpoints; 2 ranks agree
"$STRETCH" eval ppl --ckpt $BEFORE --ckpt $AFTER --data text.shard --lengths 64,256,1k --windows 4 --out ppl1 > /dev/null
[ "$(head -1 ppl1/ppl.csv)" = "ckpt,length,tokens,nll,ppl" ] || fail "ppl.csv header"
[ "$(wc -l < ppl1/ppl.csv)" -eq 7 ] || fail "ppl.csv: want 6 rows"
[ "$(grep -c "^$BEFORE," ppl1/ppl.csv)" -eq 3 ] && [ "$(grep -c "^$AFTER," ppl1/ppl.csv)" -eq 3 ] || fail "ppl.csv ckpt column"
awk -F, 'NR > 1 && $3 != 4 * $2 { exit 1 }' ppl1/ppl.csv || fail "ppl.csv: tokens != windows x length"
column_in ppl1/ppl.csv 4 0.01 30
awk -F, 'NR > 1 { r = exp($4) / $5; if (r < 0.9999 || r > 1.0001) exit 1 }' ppl1/ppl.csv || fail "ppl != exp(nll)"
well_formed ppl1/ppl.svg
[ "$(grep -o 'class="series"' ppl1/ppl.svg | wc -l)" -eq 2 ] || fail "ppl.svg: want 2 lines"
[ "$(grep -o 'class="point"' ppl1/ppl.svg | wc -l)" -eq 6 ] || fail "ppl.svg: want 6 points"
"${MPIRUN[@]}" "$STRETCH" eval ppl --ckpt $BEFORE --ckpt $AFTER --data text.shard --lengths 64,256,1k --windows 4 --out ppl2 > /dev/null
paste -d, ppl1/ppl.csv ppl2/ppl.csv | awk -F, 'NR > 1 { d = $4 - $9; if ($3 != $8 || d > 1e-4 || d < -1e-4) exit 1 }' \
  || fail "ppl differs between 1 and 2 ranks: $(paste -d' ' ppl1/ppl.csv ppl2/ppl.csv)"
# Sliding windows: 5 windows scoring their last 16 predictions each.
"$STRETCH" eval ppl --ckpt $AFTER --data text.shard --lengths 64,128 --windows 5 --sliding 16 --out ppl3 > /dev/null
awk -F, 'NR > 1 && $3 != 80 { exit 1 }' ppl3/ppl.csv || fail "sliding: want 80 scored tokens per length"

# --- short-context check at the original context (64)
"$STRETCH" eval short --ckpt $BEFORE --ckpt $AFTER --data text.shard --out short > short.log
grep -q "short-context perplexity @ 64 tokens" short.log || fail "short: not at the original context: $(cat short.log)"
for w in before after change; do grep -q "^$w " short.log || fail "short: no '$w' line"; done
[ "$(wc -l < short/short.csv)" -eq 3 ] || fail "short.csv: want 2 rows"
a=$(grep "^$BEFORE,64," ppl1/ppl.csv | cut -d, -f4); b=$(sed -n 2p short/short.csv | cut -d, -f4)
[ -n "$a" ] && [ -n "$b" ] || fail "short.csv or ppl.csv lacks the before checkpoint at 64"

# --- user errors: exit 2, one line
one_line() { [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"; echo "$ERR" | has -F -- "$1" || fail "'$1' not in: $ERR"; }
expect_exit 2 "$STRETCH" eval
expect_exit 2 "$STRETCH" eval frobnicate; one_line frobnicate
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --backend gpu --out e; one_line "'gpu'"
# the GPU path on a machine without one (or without CUDA): one line, exit 2
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
  expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --backend cuda --out e
  one_line "--backend cuda"
fi
expect_exit 2 "$STRETCH" eval passkey --ckpt missing.h5 --lengths 64 --out e; one_line missing.h5
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64,1x --out e; one_line "'1x'"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths "" --out e; one_line "empty"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --depths 1.5 --out e; one_line "1.5"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --out e --frobnicate 1; one_line "frobnicate"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --data text.shard --out e; one_line "unknown option --data"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64; one_line "--out is required"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 16,64 --out e; one_line "16 tokens cannot hold a passkey"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --rope yarn --out e; one_line "needs a factor"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --rope-stage 5 --out e; one_line "stages 0..1"
expect_exit 2 "$STRETCH" eval passkey --ckpt $BEFORE --lengths 64 --sp 2 --out e; one_line "--sp 2"
expect_exit 2 "$STRETCH" eval passkey --ckpt text.shard --lengths 64 --out e; one_line "text.shard"
expect_exit 2 "$STRETCH" eval ppl --ckpt $BEFORE --data text.shard --lengths 1M --out e; one_line "no document"
expect_exit 2 "$STRETCH" eval ppl --ckpt $BEFORE --data missing.shard --lengths 64 --out e; one_line "missing.shard"
expect_exit 2 "$STRETCH" eval ppl --ckpt $BEFORE --data text.shard --lengths 64 --sliding 128 --out e; one_line "--sliding 128"
expect_exit 2 "$STRETCH" eval short --ckpt $BEFORE --data text.shard; one_line "two checkpoints"
[ ! -e e ] || fail "a refused run created its output directory"
"$STRETCH" eval --help | has "stretch eval passkey" || fail "no eval --help"
"$STRETCH" help | has "eval passkey" || fail "eval missing from stretch help"
echo "test_eval: all checks passed"
