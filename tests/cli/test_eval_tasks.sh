#!/usr/bin/env bash
# The RULER-style task suite end to end: a tiny model trained on
# data.task_mix niah_single rows at 128 tokens with a task gate and the task
# table after the stage (metrics rows); `stretch eval tasks` on it (CSV
# schema and values, the trained task above chance, the heatmap), the same
# CSV from a 2-rank ring (mpirun -n 2 --sp 2), and user errors (exit 2, one
# line, before compute).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -n 2 --oversubscribe --bind-to none)
one_line() {
  [ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] || fail "want one line, got: $ERR"
  [ -z "${1:-}" ] || has -- "$1" <<<"$ERR" || fail "message does not name '$1': $ERR"
}

# --- training: niah_single rows only (answer-only loss), a task gate, the table
make_text_shard text.shard
cat > tk.yaml <<YAML
model: {dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 128}
data: {tokenizer: byte, train: [text.shard], passkey_answer_only: true, task_mix: {niah_single: 1.0}}
optimizer: {lr: 3.0e-3, warmup_steps: 10}
train: {seed: 7, out_dir: tk, log_every: 50, ckpt_every: 1000, keep_last: 0}
eval: {passkey_trials: 0, tasks: [niah_single, cwe], task_lengths: [128, 256], task_trials: 4, passkey_depths: [0.5]}
stages:
  - {name: short, seq_len: 128, steps: 300, batch_tokens: 1024, gate: {task: niah_single, accuracy: 0.25, max_extra_tokens: 0}}
YAML
"$STRETCH" train tk.yaml > train.log || fail "training failed: $(tail -3 train.log)"
CK=tk/ckpt-00000300.h5
[ -f $CK ] || fail "no $CK: $(ls tk)"
grep -q "gate of stage 'short': niah_single" train.log || fail "no task gate line"
grep -q '"event":"gate".*"task":"niah_single","task_acc":' tk/metrics.jsonl || fail "no task gate row"
[ "$(grep -c '"event":"eval_tasks"' tk/metrics.jsonl)" -eq 2 ] || fail "want 2 eval_tasks rows (one per length)"
grep '"event":"eval_tasks"' tk/metrics.jsonl | has '"accuracy":{"niah_single":[0-9.e-]*,"cwe":[0-9.e-]*},"average":' \
  || fail "eval_tasks row: $(grep eval_tasks tk/metrics.jsonl | sed -n 1p)"
grep -q '^niah_single ' train.log && grep -q '^average ' train.log && grep -q '^effective length' train.log \
  || fail "no task table after the stage"

# --- eval tasks: 3 tasks (one on real text, one without depth) x 2 lengths x 2 depths
"$STRETCH" tokenize --out hay.shard /usr/share/common-licenses/GPL-3 > /dev/null
TK=(--tasks niah_single,niah_single_text,cwe --lengths 96,128 --depths 2 --trials 4 --haystack hay.shard)
"$STRETCH" eval tasks --ckpt $CK "${TK[@]}" --threshold 0.2 --out t1 > t1.log
[ "$(head -1 t1/tasks.csv)" = "task,length,depth,trials,correct,accuracy" ] || fail "tasks.csv header: $(head -1 t1/tasks.csv)"
[ "$(wc -l < t1/tasks.csv)" -eq 11 ] || fail "tasks.csv: want 10 rows, got $(($(wc -l < t1/tasks.csv) - 1))"
awk -F, 'NR > 1 && NF != 6 { exit 1 }' t1/tasks.csv || fail "tasks.csv: not 6 columns"
[ "$(cut -d, -f1 t1/tasks.csv | sed 1d | uniq | tr '\n' ' ')" = "niah_single niah_single_text cwe " ] || fail "tasks.csv task order"
[ "$(grep -c '^cwe,[0-9]*,-,' t1/tasks.csv)" -eq 2 ] || fail "cwe: one row per length, depth '-'"
[ "$(grep -c '^niah_single,128,' t1/tasks.csv)" -eq 2 ] || fail "niah_single: one row per depth"
awk -F, 'NR > 1 && ($4 != 4 || $5 < 0 || $5 > 4 || $6 - $5 / $4 > 1e-4 || $5 / $4 - $6 > 1e-4) { exit 1 }' t1/tasks.csv \
  || fail "trials / correct / accuracy inconsistent"
# The model learned niah_single at its training length (the gate said >= 0.25 at depth 0.5).
acc=$(awk -F, '$1 == "niah_single" && $2 == 128 { s += $5; n += $4 } END { print s / n }' t1/tasks.csv)
awk -v a="$acc" 'BEGIN { exit !(a >= 0.25) }' || fail "niah_single at 128: accuracy $acc"
grep -q '^effective length' t1.log || fail "no effective length line"
[ -s t1/tasks.svg ] && grep -q '</svg>' t1/tasks.svg || fail "tasks.svg missing"
[ "$(grep -o 'class="cell"' t1/tasks.svg | wc -l)" -eq 8 ] || fail "tasks.svg: want 8 cells (3 tasks + average, 2 lengths)"
grep -q 'effective length' t1/tasks.svg || fail "tasks.svg: no effective length in the title"
if command -v python3 >/dev/null; then python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' t1/tasks.svg || fail "tasks.svg not XML"; fi
# The effective length follows the averages and the threshold.
avg96=$(awk -F, 'NR > 1 && $2 == 96 { a[$1] += $6; n[$1]++ } END { for (t in a) { s += a[t] / n[t]; k++ } print s / k }' t1/tasks.csv)
avg128=$(awk -F, 'NR > 1 && $2 == 128 { a[$1] += $6; n[$1]++ } END { for (t in a) { s += a[t] / n[t]; k++ } print s / k }' t1/tasks.csv)
eff=$(awk -v a="$avg96" -v b="$avg128" 'BEGIN { e = "below"; if (a >= 0.2) { e = 96; if (b >= 0.2) e = 128 } print e }')
if [ "$eff" = below ]; then pat="^effective length below"; else pat="^effective length $eff "; fi
grep -q "$pat" t1.log || fail "effective length: want $eff (averages $avg96, $avg128): $(grep '^effective' t1.log)"

# --- the same grid on a 2-rank ring: the same CSV
"${MPIRUN[@]}" "$STRETCH" eval tasks --ckpt $CK "${TK[@]}" --threshold 0.2 --sp 2 --out t2 > t2.log
grep -q "2 rank(s) = sp 2" t2.log || fail "not a 2-rank ring: $(head -1 t2.log)"
cmp t1/tasks.csv t2/tasks.csv || fail "tasks.csv differs between 1 and 2 ranks"

# --- user errors: exit 2, one line, nothing computed
E=(--ckpt $CK --lengths 256 --out e)
expect_exit 2 "$STRETCH" eval tasks "${E[@]}" --tasks niah_nope; one_line "unknown task 'niah_nope'"
expect_exit 2 "$STRETCH" eval tasks --ckpt $CK --lengths 96 --tasks niah_multiquery --out e; one_line "needs at least"
expect_exit 2 "$STRETCH" eval tasks "${E[@]}" --tasks niah_single_text; one_line "needs --haystack"
printf 'A few words only.\n' > tiny.txt
"$STRETCH" tokenize --out tiny.shard tiny.txt > /dev/null
expect_exit 2 "$STRETCH" eval tasks "${E[@]}" --tasks niah_single_text --haystack tiny.shard; one_line "too few"
expect_exit 2 "$STRETCH" eval tasks "${E[@]}" --haystack missing.shard; one_line missing.shard
expect_exit 2 "$STRETCH" eval tasks "${E[@]}" --threshold 85.6; one_line "--threshold"
expect_exit 2 "$STRETCH" eval tasks "${E[@]}" --tasks vt,vt; one_line "twice"
expect_exit 2 "$STRETCH" eval tasks --ckpt $CK --lengths 256; one_line "--out"
[ ! -e e ] || fail "an error run created --out"
expect_exit 2 "$STRETCH" train tk.yaml --eval.tasks '[niah_nope]'; one_line "eval.tasks: unknown task 'niah_nope'"
expect_exit 2 "$STRETCH" train tk.yaml --eval.tasks '[niah_single_text]'; one_line "real-text"
expect_exit 2 "$STRETCH" train tk.yaml --stages.0.gate.accuracy 0; one_line "gate.task"
expect_exit 2 "$STRETCH" train tk.yaml --data.task_mix.vt 0.5; one_line "at most 1"
expect_exit 2 "$STRETCH" train tk.yaml --data.task_mix.niah_multiquery 0.0 --eval.task_lengths '[64]'; one_line "eval.task_lengths"
echo "ok"
