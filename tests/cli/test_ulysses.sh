#!/usr/bin/env bash
# stretch train / eval with ulysses (all-to-all) sequence parallelism and the
# ring x ulysses hybrid under mpirun: every grid of 2 and 4 ranks trains the
# tiny curriculum (n_heads 4, n_kv_heads 2: ulysses 4 replicates kv heads) to
# the parameters of 1 rank; checkpoints resume across grids (hybrid -> ulysses
# 4 -> 1 rank, 1 rank -> ulysses 2); distributed eval (passkey, perplexity,
# RULER tasks) with --ulysses equals 1 rank; bad grids exit 2 with one line on
# every rank.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
TOL=2e-5   # absolute, on parameters of magnitude ~0.1-1 after 36 AdamW steps (as test_mpi_train)

write_tiny_run ref text.shard
"$STRETCH" train ref.yaml > ref.log

# dp ring ulysses
for grid in "1 1 2" "1 2 2" "2 1 2" "1 1 4"; do
  set -- $grid; dp=$1; ring=$2; uly=$3; n=$((dp * ring * uly)); name=g${dp}x${ring}x${uly}
  write_tiny_run $name text.shard
  "${MPIRUN[@]}" -n $n "$STRETCH" train $name.yaml --parallel.dp $dp --parallel.ring $ring \
    --parallel.ulysses $uly > $name.log 2>&1 || { tail -20 $name.log; fail "grid $grid failed"; }
  grep -q "dp $dp x sp $((ring * uly)) (ring $ring x ulysses $uly)" $name.log || fail "grid $grid: $(grep 'rank(s)' $name.log)"
  h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt $name)" /params /params > /dev/null \
    || { h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt $name)" /params /params | tail -5; fail "dp $dp x ring $ring x ulysses $uly differs from 1 rank"; }
  echo "dp $dp x ring $ring x ulysses $uly: parameters match the 1-rank run within $TOL"
done
# parallel.sp keeps meaning the ring degree: sp 2 + ulysses 2 is the 4-rank hybrid.
write_tiny_run alias text.shard
"${MPIRUN[@]}" -n 4 "$STRETCH" train alias.yaml --parallel.sp 2 --parallel.ulysses 2 --max-steps 2 > alias.log 2>&1 \
  || { tail -5 alias.log; fail "parallel.sp 2 x parallel.ulysses 2 failed"; }
grep -q "(ring 2 x ulysses 2)" alias.log || fail "parallel.sp is not the ring degree: $(grep 'rank(s)' alias.log)"

# Elastic: hybrid (ring 2 x ulysses 2) 12 steps -> ulysses 4 to step 24 -> 1 rank to the end.
write_tiny_run e1 text.shard
"${MPIRUN[@]}" -n 4 "$STRETCH" train e1.yaml --parallel.ring 2 --parallel.ulysses 2 --max-steps 12 > e1a.log 2>&1 || fail "hybrid part failed"
"${MPIRUN[@]}" -n 4 "$STRETCH" train e1.yaml --parallel.ulysses 4 --max-steps 24 > e1b.log 2>&1 || fail "ulysses 4 resume failed"
grep -q "resumed from" e1b.log || fail "ulysses 4 run did not resume"
"$STRETCH" train e1.yaml > e1c.log 2>&1 || fail "1-rank resume failed"
grep -q "resumed from" e1c.log || fail "1-rank run did not resume"
h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt e1)" /params /params > /dev/null || fail "hybrid -> ulysses 4 -> 1 rank differs"
echo "elastic ring 2 x ulysses 2 -> ulysses 4 -> 1 rank: match"
write_tiny_run e2 text.shard
"$STRETCH" train e2.yaml --max-steps 20 > e2a.log 2>&1 || fail "1-rank part failed"
"${MPIRUN[@]}" -n 2 "$STRETCH" train e2.yaml --parallel.ulysses 2 > e2b.log 2>&1 || fail "ulysses 2 resume failed"
h5diff -d $TOL "$(latest_ckpt ref)" "$(latest_ckpt e2)" /params /params > /dev/null || fail "1 rank -> ulysses 2 differs"
echo "elastic 1 rank -> ulysses 2: match"

# Distributed eval: the same passkey CSV and perplexities as 1 rank.
CK=$(latest_ckpt ref)
PK=(--lengths 64,128 --depths 3 --trials 3)
"$STRETCH" eval passkey --ckpt $CK "${PK[@]}" --out pk1 > /dev/null
"${MPIRUN[@]}" -n 2 "$STRETCH" eval passkey --ckpt $CK "${PK[@]}" --ulysses 2 --out pku2 > pku2.log
grep -q "2 rank(s) = sp 2 (ring 1 x ulysses 2)" pku2.log || fail "eval --ulysses 2: $(head -1 pku2.log)"
cmp pk1/passkey.csv pku2/passkey.csv || fail "passkey.csv differs between 1 rank and ulysses 2"
"${MPIRUN[@]}" -n 4 "$STRETCH" eval passkey --ckpt $CK "${PK[@]}" --ulysses 2 --out pkh > pkh.log
grep -q "4 rank(s) = sp 4 (ring 2 x ulysses 2)" pkh.log || fail "eval hybrid: $(head -1 pkh.log)"
cmp pk1/passkey.csv pkh/passkey.csv || fail "passkey.csv differs between 1 rank and ring 2 x ulysses 2"
"$STRETCH" eval ppl --ckpt $CK --data text.shard --lengths 64,190 --windows 3 --out ppl1 > /dev/null
"${MPIRUN[@]}" -n 4 "$STRETCH" eval ppl --ckpt $CK --data text.shard --lengths 64,190 --windows 3 --ulysses 4 --out ppl4 > /dev/null
paste -d, ppl1/ppl.csv ppl4/ppl.csv | awk -F, 'NR > 1 { d = $4 - $9; if ($3 != $8 || d > 1e-4 || d < -1e-4) exit 1 }' \
  || fail "ppl differs between 1 rank and ulysses 4: $(paste -d' ' ppl1/ppl.csv ppl4/ppl.csv)"
TK=(--tasks niah_single,cwe --lengths 102,128 --depths 2 --trials 2)
"$STRETCH" eval tasks --ckpt $CK "${TK[@]}" --out tk1 > /dev/null
"${MPIRUN[@]}" -n 2 "$STRETCH" eval tasks --ckpt $CK "${TK[@]}" --ulysses 2 --out tku2 > /dev/null
cmp tk1/tasks.csv tku2/tasks.csv || fail "tasks.csv differs between 1 rank and ulysses 2"
echo "eval tasks (ulysses 2, length 102 padded to 104): match 1 rank"
echo "eval passkey (ulysses 2, ring 2 x ulysses 2) and ppl (ulysses 4, length 190 padded to 192): match 1 rank"

# Bad input: one line, exit 2, on every rank (each rank prints it).
bad() {  # bad N WANT ARGS...: mpirun -n N stretch ARGS... must exit 2 with WANT on N lines
  local n=$1 want=$2; shift 2
  set +e
  "${MPIRUN[@]}" -n $n "$STRETCH" "$@" > bad.log 2>&1; local rc=$?
  set -e
  [ $rc -eq 2 ] || fail "$*: exit $rc, want 2 ($(tail -3 bad.log))"
  [ "$(grep -cF -- "$want" bad.log)" -eq $n ] || fail "$*: want '$want' from all $n ranks: $(cat bad.log)"
  [ "$(grep -c 'stretch: error' bad.log)" -eq $n ] || fail "$*: more than one error line per rank: $(cat bad.log)"
}
bad 2 "parallel.ulysses (2) must divide model.n_heads (3)" train ref.yaml --model.n_heads 3 --model.n_kv_heads 1 --model.dim 48 --parallel.ulysses 2
bad 4 "parallel.ulysses (4) and model.n_kv_heads (3)" train ref.yaml --model.n_heads 12 --model.n_kv_heads 3 --model.dim 48 --parallel.ulysses 4
bad 2 "parallel.dp (1) x parallel.ring (2) x parallel.ulysses (2) = 4 but mpirun started 2 ranks" train ref.yaml --parallel.ring 2 --parallel.ulysses 2
bad 2 "parallel.sp (2) is the ring degree (the old name of parallel.ring) but parallel.ring is 4" train ref.yaml --parallel.sp 2 --parallel.ring 4 --parallel.ulysses 2
bad 2 "must be a multiple of 2 * parallel.ring (1) * parallel.ulysses (3)" train ref.yaml --parallel.ulysses 3
bad 2 "parallel.ulysses (0) must be >= 1" train ref.yaml --parallel.ulysses 0
bad 4 "--ulysses 3 does not divide the 4 sequence-parallel rank(s)" eval passkey --ckpt $CK --lengths 64 --ulysses 3 --out e
echo "test_ulysses: all checks passed"
