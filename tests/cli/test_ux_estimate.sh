#!/usr/bin/env bash
# `stretch train RUN.yaml --dry-run --estimate` (issue 26, item 7): the full
# start of the run (preflight included), then a few measured steps per stage
# and the run's ETA (trainer/train_estimate.h). Checked: the table's steps,
# gate steps and tokens are the run file's; its s/step and tokens/s agree
# with each other; nothing is left in out_dir; under mpirun rank 0 prints
# once; misuse is one line, exit 2. How close the estimate comes to a real
# run's speed is timing, so it is not asserted here: bench/estimate.sh
# prints both side by side.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
write_tiny_run est text.shard
# stage 1 gated: max_extra_tokens 2048 = 4 steps of 512 (extensions of 1)
GATE=(--stages.1.gate.passkey_acc 0.5 --stages.1.gate.max_extra_tokens 2048)

# --- misuse: one line, exit 2
expect_exit 2 "$STRETCH" train est.yaml --estimate
[ "$ERR" = "stretch: error: train: --estimate times steps of a dry run; use it with --dry-run" ] ||
  fail "--estimate alone: $ERR"
"$STRETCH" train --help | has -- "--estimate" || fail "train --help does not name --estimate"
# the full preflight: a missing shard of the last stage is found (plain --dry-run reads no shard)
expect_exit 2 "$STRETCH" train est.yaml --dry-run --estimate --stages.1.data '[nope.shard]'
[ "$(echo "$ERR" | wc -l)" -eq 1 ] && echo "$ERR" | has "stages.1 (long) data: nope.shard: cannot open" ||
  fail "missing shard under --estimate: $ERR"
[ ! -e est ] || fail "a refused dry run left out_dir est: $(ls -A est)"

# --- the table: the run file's steps and tokens
"$STRETCH" train est.yaml --dry-run --estimate "${GATE[@]}" > est.log
row() { grep -E "^  $1 +$2 +$3 " "${4:-est.log}" || fail "no estimate row for stage $1: $(cat "${4:-est.log}")"; }
r0=$(row 0 short 64); r1=$(row 1 long 128)
# columns: stage name seq_len s/step tokens/s steps +gate tokens train eval
read -r _ _ _ s0 tps0 n0 g0 tok0 _ _ <<<"$r0"
read -r _ _ _ s1 tps1 n1 g1 tok1 _ _ <<<"$r1"
[ "$n0 $g0 $tok0" = "24 0 12288" ] || fail "stage 0 steps/gate/tokens: $r0"
[ "$n1 $g1 $tok1" = "12 4 6144" ] || fail "stage 1 steps/gate/tokens: $r1"
grep -q "^estimate total: 36 steps, 18432 tokens, ETA " est.log || fail "total: $(tail -1 est.log)"
grep -q "^curriculum: " est.log && grep -q "^peak memory estimate per rank" est.log ||
  fail "the plan is not printed before the estimate: $(cat est.log)"
# tokens/s = batch_tokens / s/step (the printed values, rounded)
awk -v s="$s0" -v t="$tps0" -v u="$s1" -v w="$tps1" 'BEGIN {
  if (s <= 0 || u <= 0) exit 1
  a = 512 / s / t; b = 512 / u / w; exit !(a > 0.98 && a < 1.02 && b > 0.98 && b < 1.02) }' ||
  fail "tokens/s does not match s/step: $r0 / $r1"
# nothing left: no out_dir (it did not exist), and an existing one stays empty
[ ! -e est ] || fail "the dry run left out_dir: $(ls -A est)"
mkdir keep
"$STRETCH" train est.yaml --dry-run --estimate --train.out_dir keep --stages.0.steps 2 > /dev/null
[ -z "$(ls -A keep)" ] || fail "the dry run wrote in out_dir: $(ls -A keep)"

# a corpus the run would tokenize into out_dir/data: made for the estimate, removed after it
if [ -d /usr/share/games/fortunes ]; then
  sed 's/train: \[text.shard\]/corpus: fortunes/' est.yaml > corpus.yaml
  mkdir cdir
  "$STRETCH" train corpus.yaml --dry-run --estimate --train.out_dir cdir > corpus.log
  grep -q "^estimate total: 36 steps" corpus.log || fail "corpus estimate: $(tail -2 corpus.log)"
  [ -z "$(ls -A cdir)" ] || fail "the corpus estimate left files in out_dir: $(ls -A cdir)"
fi

# --- from the checkpoint the run would resume from: its changes checked, the rest estimated
"$STRETCH" train est.yaml --train.out_dir rs --max-steps 30 --eval.passkey_trials 0 > /dev/null 2>&1
before=$(cd rs && ls -l --time-style=+%s.%N && md5sum metrics.jsonl latest heartbeat.json)
"$STRETCH" train est.yaml --train.out_dir rs --dry-run --estimate > rs.log 2> rs.err
grep -q "^would resume from rs/ckpt-00000030.h5: stage 1 (2 of 2), step 30" rs.log || fail "no resume line: $(cat rs.log)"
grep -qE "^  0 " rs.log && fail "a finished stage estimated: $(cat rs.log)"
row 1 long 128 rs.log | awk '{exit !($6 == 6 && $8 == 3072)}' || fail "resumed stage 1 row: $(cat rs.log)"
grep -q "^estimate total from step 30 (stage 1, its step 6): 6 steps, 3072 tokens, ETA " rs.log ||
  fail "resumed total: $(tail -1 rs.log)"
[ "$(cd rs && ls -l --time-style=+%s.%N && md5sum metrics.jsonl latest heartbeat.json)" = "$before" ] ||
  fail "the dry run changed the run directory"
expect_exit 2 "$STRETCH" train est.yaml --train.out_dir rs --dry-run --estimate --stages.0.seq_len 32
echo "$ERR" | has "stages.0.seq_len: 64 -> 32 cannot change on resume" || fail "resume refusal in the dry run: $ERR"

# --- two ranks (dp 2): every rank steps, rank 0 prints once
set +e
timeout 120 mpirun -n 2 --oversubscribe --bind-to none "$STRETCH" train est.yaml --dry-run --estimate \
  --parallel.dp 2 --train.out_dir mp > mp.log 2> mp.err
rc=$?
set -e
[ $rc -eq 0 ] || fail "mpirun -n 2: exit $rc: $(cat mp.err)"
[ "$(grep -c '^estimate total: 36 steps, 18432 tokens' mp.log)" -eq 1 ] || fail "mpirun -n 2 output: $(cat mp.log)"
grep -q "2 rank(s) = dp 2 x sp 1" mp.log || fail "mpirun -n 2: not on the grid: $(cat mp.log)"
[ ! -e mp ] || fail "mpirun dry run left out_dir: $(ls -A mp)"
echo "test_ux_estimate: all passed"
