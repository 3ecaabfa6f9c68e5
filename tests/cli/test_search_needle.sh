#!/usr/bin/env bash
# stretch search, the LongRoPE2 / LongRoPE options: the needle-driven
# objective (--objective needle), the critical dimension rule (--critical
# on, --max-factor), the short factors at the original length (--part
# short|both, --from), on a tiny model trained briefly at 64 tokens: the
# critical dimension printed as computed by hand, the factors within their
# bounds, the needle fitness the same for the same seed and on a 2-rank ring,
# the short + long factors file read by a longrope stage, `stretch eval
# --rope longrope:F:FILE` and the HF export, and every bad value: exit 2,
# one line.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# --- a tiny model (dim 32, 4 heads: head_dim 8, 4 rotary pairs, theta 1e4) at 64 tokens
make_text_shard text.shard
write_tiny_run run text.shard
"$STRETCH" train run.yaml --stages.0.steps 30 --eval.passkey_trials 0 --train.ckpt_every 1000 --max-steps 30 > train.log
CKPT=run/ckpt-00000030.h5
[ -f $CKPT ] || fail "no checkpoint $CKPT: $(ls run)"
list() { grep "^$1:" "$2" | sed 's/.*\[\(.*\)\]/\1/' | tr -d ' ' | tr ',' '\n'; }
# in_bounds FILE KEY LO_BELOW_C C LO_FROM_C HI: non-decreasing, pairs < C in [LO_BELOW_C, s], >= C in [LO_FROM_C, HI]
in_bounds() {
  list "$2" "$1" | awk -v c="$4" -v lo="$3" -v loc="$5" -v hi="$6" -v s=4 \
    '{ i = NR - 1; v = $1 + 0 } NR > 1 && v < prev { bad = 1 } i < c && (v < lo || v > s) { bad = 1 }
     i >= c && (v < loc || v > hi) { bad = 1 } { prev = v } END { exit bad || NR != 4 }' \
    || fail "$2 of $1 out of bounds: $(grep "^$2:" "$1")"
}
S=(search --ckpt $CKPT --target-len 256 --population 5 --generations 2 --topk 2 --seed 3 --nhat 0,4)

# --- the needle objective: answer tokens of 2 passkey samples at 256 (4x)
"$STRETCH" "${S[@]}" --objective needle --needles 2 --out a/factors.yaml > a.log
# Periods 2 pi 1e4^(i/4) = 6.3, 62.8, 628, 6283 tokens: pairs 2 and 3 exceed 64 (critical dimension 4).
grep -q "^critical dimension 4 (LongRoPE2): rotary pairs 2..3 of 4 (dims 4..7 of 8) have periods above the original context 64 (pair 2: 628.3 tokens; pair 1: 62.8)" a.log \
  || fail "critical dimension: $(grep critical a.log)"
grep -q "fitness: the answer tokens of 2 needle samples (passkey x2, 10 tokens)" a.log || fail "needle set: $(grep fitness a.log)"
line=$(grep '^answer perplexity (passkey x2) @ 256 tokens: ' a.log) || fail "no needle line: $(cat a.log)"
read -r pi ntk yarn best <<< "$(echo "$line" | sed 's/.*PI \([0-9.]*\), NTK \([0-9.]*\), YaRN \([0-9.]*\), searched \([0-9.]*\).*/\1 \2 \3 \4/')"
awk -v p="$pi" -v n="$ntk" -v y="$yarn" -v b="$best" 'BEGIN { m = p; if (n < m) m = n; if (y < m) m = y; exit !(b <= m && b > 1) }' \
  || fail "searched answer perplexity $best is worse than the best of PI $pi, NTK $ntk, YaRN $yarn"
in_bounds a/factors.yaml long_factor 1 4 1 4
[ "$(list short_factor a/factors.yaml | sort -u)" = "1.0" ] || fail "a long search wrote short factors"
[ "$(wc -l < a/factors.csv)" -eq 3 ] || fail "factors.csv: want 2 rows"
# The same seed: the same needles, the same search.
"$STRETCH" "${S[@]}" --objective needle --needles 2 --generations 1 --out b/factors.yaml > b.log
[ "$(grep '^generation 1: ' a.log)" = "$(grep '^generation 1: ' b.log)" ] || fail "generation 1 differs for the same seed"
# A 2-rank ring (sp 2) scores the same needles.
mpirun -n 2 --oversubscribe --bind-to none "$STRETCH" "${S[@]}" --objective needle --needles 2 --generations 1 --sp 2 \
  --out r/factors.yaml > r.log
grep -q "2 rank(s) = dp 1 x sp 2" r.log || fail "not sp 2: $(grep rank r.log)"
gen() { grep '^generation 1: ' "$1" | sed 's/ (exp.*//'; }
python3 - "$(gen a.log)" "$(gen r.log)" <<'PY' || fail "ring: '$(gen r.log)' vs 1 rank '$(gen a.log)'"
import re, sys
a, b = (list(map(float, re.findall(r"[0-9]+\.[0-9]+", s))) for s in sys.argv[1:])
assert len(a) == 3 and len(b) == 3 and all(abs(x - y) <= 1e-3 * x for x, y in zip(a, b)), (a, b)
PY
# RULER-style tasks beside the passkey; niah_single_text hides its needles in the --data documents.
"$STRETCH" "${S[@]}" --objective needle --needles 2 --needle-tasks niah_single_text,passkey,cwe --data text.shard \
  --population 3 --generations 1 --out t/factors.yaml > t.log
grep -q "fitness: the answer tokens of 6 needle samples (niah_single_text,passkey,cwe x2, " t.log || fail "tasks: $(grep fitness t.log)"
grep -q "^perplexity @ 256 tokens on --data (4 windows): PI " t.log || fail "no perplexity on --data: $(cat t.log)"

# --- the critical rule: pairs 2..3 in [4, 6], and the short factors (both) at 64 by perplexity
"$STRETCH" "${S[@]}" --critical on --max-factor 6 --part both --data text.shard --windows 2 --out c/factors.yaml \
  --state sc > c.log
grep -q "critical dimension 4 .*; --critical on: they get factors >= s" c.log || fail "critical on: $(grep critical c.log)"
in_bounds c/factors.yaml long_factor 1 2 4 6
in_bounds c/factors.yaml short_factor 1 4 1 4
grep -q "^perplexity @ 64 tokens: original RoPE [0-9.]*; longrope with short 1 " c.log || fail "short line: $(cat c.log)"
python3 - "$(grep "^perplexity @ 64 tokens: original RoPE" c.log)" <<'PY' || fail "searched short factors worse than the baselines"
import re, sys
m = re.search(r"short 1 ([0-9.]+), short = long ([0-9.]+), short = sqrt\(long\) ([0-9.]+), searched ([0-9.]+)", sys.argv[1])
assert m and float(m.group(4)) <= min(float(m.group(i)) for i in (1, 2, 3)), sys.argv[1]
PY
[ -f c/factors-short.csv ] && [ -f c/factors-short.svg ] && [ -f sc/search-short.state ] || fail "short outputs: $(ls c sc)"
# --part short keeps --from's long factors and n_hat; the same search as the short half of both.
"$STRETCH" "${S[@]}" --part short --from c/factors.yaml --data text.shard --windows 2 --out d/factors.yaml > d.log
[ "$(grep ^long_factor d/factors.yaml)" = "$(grep ^long_factor c/factors.yaml)" ] || fail "--part short changed the long factors"
[ "$(grep ^n_hat: d/factors.yaml)" = "$(grep ^n_hat: c/factors.yaml)" ] || fail "--part short changed n_hat"
[ "$(grep ^short_factor d/factors.yaml)" = "$(grep ^short_factor c/factors.yaml)" ] || fail "--part short differs from both"
# A resumed both: the states hold both searches; the result is reported again, the same.
"$STRETCH" "${S[@]}" --critical on --max-factor 6 --part both --data text.shard --windows 2 --out e/factors.yaml \
  --state sc > e.log
grep -q "resuming from sc/search-short.state: 2 generation(s) done" e.log || fail "short not resumed: $(cat e.log)"
cmp c/factors.yaml e/factors.yaml || fail "a resumed both gives another file"

# --- the factors file with short and long factors: a longrope stage trains, eval and export read it
cat > long.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64, max_position_embeddings: 64, init: $CKPT}
data: {tokenizer: byte, train: [text.shard], passkey_compact: true}
optimizer: {lr: 1.0e-3, warmup_steps: 0}
train: {seed: 7, out_dir: long, log_every: 1, ckpt_every: 1000, keep_last: 0}
eval: {passkey_trials: 0}
stages:
  - {name: long, seq_len: 256, steps: 1, batch_tokens: 512, rope: {type: longrope, factors_file: c/factors.yaml}}
YAML
"$STRETCH" train long.yaml > long.log
grep -q "rope longrope (factor 4, original 64" long.log || fail "longrope stage: $(grep rope long.log)"
"$STRETCH" eval passkey --ckpt $CKPT --rope longrope:4:c/factors.yaml --lengths 64,256 --depths 0.5 --trials 2 \
  --out ev > ev.log || fail "eval --rope longrope: $(cat ev.log)"
grep -q "rope of --rope longrope, factor 4" ev.log || fail "eval rope: $(grep rope ev.log)"
"$STRETCH" export --ckpt long/ckpt-00000001.h5 --format hf --out hf > export.log 2>&1 || fail "export: $(cat export.log)"
python3 - c/factors.yaml hf/config.json <<'PY' || fail "config.json short/long factors differ from the factors file"
import json, re, sys
text = open(sys.argv[1]).read()
want = {k: [float(v) for v in re.search(k + r": \[(.*)\]", text).group(1).split(",")] for k in ("short_factor", "long_factor")}
c = json.load(open(sys.argv[2])); rs = c.get("rope_scaling") or c.get("rope_parameters")
for k, v in want.items():
    assert all(abs(a - b) <= 1e-6 * b for a, b in zip(rs[k], v)) and len(rs[k]) == len(v), (k, rs[k], v)
PY

# --- bad values: exit 2, one line, before any work
one_line() { [ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"; echo "$ERR" | has -F -- "$1" || fail "'$1' not in: $ERR"; }
B=(search --ckpt $CKPT --target-len 256 --out z/factors.yaml)
expect_exit 2 "$STRETCH" "${B[@]}" --objective nll; one_line "--objective: expected ppl or needle, got 'nll'"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --needle-tasks passkey,haystack; one_line "unknown task 'haystack'"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --needle-tasks passkey,passkey; one_line "'passkey' is listed twice"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --needles 0; one_line "--needles 0 must be in 1..4096"
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --needles 4; one_line "--needles applies to --objective needle only"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --needle-tasks niah_single_text; one_line "--data is required by the needle task niah_single_text"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --target-len 256 --needles 2 --part short --from c/factors.yaml --needle-tasks vt
one_line "search: --needle-tasks at the original context 64: needle task vt: 64 tokens cannot hold a sample"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --critical yes; one_line "--critical: expected off or on, got 'yes'"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --critical on --max-factor 3; one_line "--max-factor 3 must be >= the extension ratio s = 4"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --max-factor 8; one_line "--max-factor applies to --critical on only"
expect_exit 2 "$STRETCH" "${B[@]}" --objective needle --critical on --max-factor x; one_line "--max-factor: expected a number >= 1, got 'x'"
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --part middle; one_line "--part: expected long, short or both, got 'middle'"
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --part short; one_line "--part short needs --from FILE"
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --from c/factors.yaml; one_line "--from applies to --part short only"
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --part short --from c/factors.yaml --critical on; one_line "--critical applies to the long factors"
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --part short --from missing.yaml; one_line "missing.yaml"
printf 'short_factor: [1, 1]\nlong_factor: [1, 2]\n' > two.yaml
expect_exit 2 "$STRETCH" "${B[@]}" --data text.shard --part short --from two.yaml; one_line "--from two.yaml: 2 long factors; the model has 4 rotary pairs"
expect_exit 2 "$STRETCH" "${S[@]}" --critical on --max-factor 6 --data text.shard --windows 2 --objective needle --needles 2 \
  --out z/factors.yaml --state sc; one_line "objective: ppl (saved) vs needle passkey x2 (now)"
expect_exit 2 "$STRETCH" eval passkey --ckpt $CKPT --rope longrope:4 --lengths 256 --out ev2; one_line "longrope:FACTOR:FILE"
expect_exit 2 "$STRETCH" eval passkey --ckpt $CKPT --rope longrope:4:missing.yaml --lengths 256 --out ev2; one_line "missing.yaml"
expect_exit 2 "$STRETCH" eval passkey --ckpt $CKPT --rope longrope:4:two.yaml --lengths 256 --out ev2; one_line "must have rotary_dim/2 = 4 entries"
[ ! -e z ] && [ ! -e ev2 ] || fail "a refused command created its output directory"
"$STRETCH" search --help | has -- "--objective OBJ" || fail "no --objective in search --help"
echo "test_search_needle: ok"
