#!/usr/bin/env bash
# Sharded training state (parallel.shard) and gradient accumulation
# (train.micro_batch_tokens) in whole runs of the tiny curriculum:
#  - accumulation: micro-batches of 1-2 rows == the whole batch, on 1 and 4
#    ranks (float tolerance: the same sums in another order);
#  - shard optimizer / gradients / parameters on dp 2 x sp 2 and dp 4:
#    parameters and AdamW moments bit-identical to the unsharded run on the
#    same grid; under shard parameters the evaluations (validation loss,
#    passkey, tasks, perplexity) bit-identical too;
#  - checkpoints written without gathering (every rank its slices, parallel
#    HDF5): checksummed, `stretch export` the same model as unsharded;
#    a ZeRO-3 4-rank checkpoint resumes on 1 rank unsharded,
#    an unsharded 1-rank one on 4 ranks under ZeRO-3, each bit-identical to
#    the same hand-over without sharding;
#  - SIGKILL of the writing rank during sharded checkpoint writes and at step
#    boundaries, restarted each time: final parameters bit-identical;
#  - bad modes exit 2 with one line on every rank, before any compute.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
make_text_shard text.shard
TOL=2e-5   # absolute, as test_mpi_train (parameters ~0.1-1 after 36 AdamW steps)
QUICK=(--eval.passkey_trials 0)

run() {  # run NAME RANKS ARGS...: the tiny run NAME on RANKS ranks
  local name=$1 n=$2; shift 2
  [ -f $name.yaml ] || write_tiny_run $name text.shard
  if [ "$n" -eq 1 ]; then "$STRETCH" train $name.yaml "${QUICK[@]}" "$@" >> $name.log 2>&1
  else "${MPIRUN[@]}" -n $n "$STRETCH" train $name.yaml "${QUICK[@]}" "$@" >> $name.log 2>&1; fi \
    || { tail -20 $name.log; fail "run $name failed"; }
}
same_state() {  # params and AdamW moments bit-identical
  same_params "$1" "$2"
  h5diff "$1" "$2" /optim /optim > /dev/null || fail "AdamW moments of $1 and $2 differ"
}
close_params() {
  h5diff -d $TOL "$1" "$2" /params /params > /dev/null \
    || { h5diff -d $TOL "$1" "$2" /params /params | tail -5; fail "$3"; }
}

# Accumulation. Stage 1: 8 rows of 64 a step, stage 2: 4 rows of 128.
run ref 1
run acc1 1 --train.micro_batch_tokens 128
close_params "$(latest_ckpt ref)" "$(latest_ckpt acc1)" "1 rank: micro-batches differ from the whole batch"
[ "$(grep -c '"event":"step"' acc1/metrics.jsonl)" -eq 36 ] || fail "accumulation changed the step count"
echo "1 rank: micro-batches of 128 tokens == whole batch within $TOL"
run ref4 4 --parallel.dp 4
run acc4 4 --parallel.dp 4 --train.micro_batch_tokens 64
close_params "$(latest_ckpt ref4)" "$(latest_ckpt acc4)" "4 ranks: micro-batches differ from the whole batch"
echo "4 ranks (dp 4): micro-batches of 1 row == whole batch within $TOL"

# Shard modes on two grids: bit-identical to shard none on the same grid.
run none22 4 --parallel.dp 2 --parallel.sp 2
for mode in optimizer gradients parameters; do
  run ${mode}22 4 --parallel.dp 2 --parallel.sp 2 --parallel.shard $mode
  same_state "$(latest_ckpt none22)" "$(latest_ckpt ${mode}22)"
  run ${mode}41 4 --parallel.dp 4 --parallel.shard $mode
  same_state "$(latest_ckpt ref4)" "$(latest_ckpt ${mode}41)"
  echo "shard $mode: dp 2 x sp 2 and dp 4 bit-identical to shard none"
done
# The sharded checkpoint (each rank wrote its slices): checksummed as any,
# and `stretch export` gives the same model as from the unsharded one.
h5ls -v "$(latest_ckpt parameters22)/params/lm_head.weight" | grep -q fletcher32 || fail "sharded checkpoint without checksums"
[ -z "$(find parameters22 -name '*.tmp')" ] || fail "a sharded write left a .tmp behind"
"$STRETCH" export --ckpt "$(latest_ckpt parameters22)" --format hf --out ex3 > /dev/null
"$STRETCH" export --ckpt "$(latest_ckpt none22)" --format hf --out ex0 > /dev/null
cmp -s ex3/model.safetensors ex0/model.safetensors || fail "export of the sharded checkpoint differs"
echo "sharded checkpoint: checksummed, exports the same model"

grep -q "shard gradients" gradients22.log || fail "the run did not report its shard mode"
# ZeRO-3 with evaluations (validation loss every 10 steps; passkey, tasks
# and perplexity after stage 1), gathered unit by unit as the training's
# forwards (nothing made whole): every evaluation's numbers bit-identical
# to shard none (metrics.jsonl, full precision), the same parameters.
for mode in none parameters; do
  write_tiny_run ev$mode text.shard
  "${MPIRUN[@]}" -n 2 "$STRETCH" train ev$mode.yaml --parallel.sp 2 --parallel.shard $mode --max-steps 25 \
    --data.val [text.shard] --train.eval_every 10 --eval.val_tokens 512 \
    --eval.ppl_data [text.shard] --eval.ppl_lengths [64,128] --eval.ppl_tokens 256 \
    --eval.tasks [niah_single] --eval.task_lengths [128] --eval.task_trials 2 > ev$mode.log 2>&1 \
    || { tail -20 ev$mode.log; fail "eval run ($mode) failed"; }
  grep '"event":"eval' ev$mode/metrics.jsonl | sed 's/,"time":[^,}]*//' > e$mode.txt
done
for ev in eval_val eval_passkey eval_ppl eval_tasks; do
  grep -q "\"event\":\"$ev\"" enone.txt || fail "no $ev events: $(cat enone.txt)"
done
[ "$(grep -c '"event":"eval_val"' enone.txt)" -ge 2 ] || fail "fewer than 2 validation losses"
cmp -s enone.txt eparameters.txt || fail "evaluations differ under ZeRO-3: $(diff enone.txt eparameters.txt)"
same_state "$(latest_ckpt evnone)" "$(latest_ckpt evparameters)"
echo "shard parameters: validation loss, passkey, tasks and perplexity and the steps after them == shard none, bitwise"
# Tied embeddings: the LM head is the embedding unit, gathered again for it.
run tie0 2 --parallel.sp 2 --max-steps 12 --model.tie_embeddings true
run tie3 2 --parallel.sp 2 --max-steps 12 --model.tie_embeddings true --parallel.shard parameters
same_state "$(latest_ckpt tie0)" "$(latest_ckpt tie3)"
echo "shard parameters with tied embeddings == shard none"

# Elastic: sharded 4 ranks -> 1 rank unsharded, and 1 rank -> 4 ranks sharded.
run ha 4 --parallel.dp 2 --parallel.sp 2 --max-steps 20
run ha 1
run hb 4 --parallel.dp 2 --parallel.sp 2 --parallel.shard parameters --max-steps 20
run hb 1
grep -q "resumed from" hb.log || fail "the 1-rank run did not resume"
same_state "$(latest_ckpt ha)" "$(latest_ckpt hb)"
echo "shard parameters (ZeRO-3) 4 ranks -> 1 rank unsharded: bit-identical to the unsharded hand-over"
run hc 1 --max-steps 20
run hc 4 --parallel.dp 2 --parallel.sp 2
run hd 1 --max-steps 20
run hd 4 --parallel.dp 2 --parallel.sp 2 --parallel.shard parameters
same_state "$(latest_ckpt hc)" "$(latest_ckpt hd)"
echo "1 rank -> shard parameters (ZeRO-3) 4 ranks: bit-identical to the unsharded hand-over"

# SIGKILL of rank 0 (the writer) mid-run, 2 ranks, shard parameters,
# checkpoint every step; restarted each time.
run kref 2 --parallel.sp 2 --parallel.shard parameters
write_tiny_run kill text.shard
sed -i 's/ckpt_every: 10/ckpt_every: 1/' kill.yaml
last_step() { grep -o '"event":"step","step":[0-9]*' kill/metrics.jsonl 2>/dev/null | tail -1 | grep -o '[0-9]*$' || echo 0; }
RANDOM=4242; kills=0
for target in 5 13 24 30; do
  "${MPIRUN[@]}" -n 2 "$STRETCH" train kill.yaml "${QUICK[@]}" --parallel.sp 2 --parallel.shard parameters >> kill.log 2>&1 &
  pid=$!
  for i in $(seq 1 3000); do
    [ "$(last_step)" -ge $target ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  sleep "0.0$((RANDOM % 5))"
  kill -0 $pid 2>/dev/null || fail "the run ended before kill point $target"
  rank0=$(pgrep -P $pid | head -1)
  kill -KILL $rank0 2>/dev/null || true
  wait $pid || true
  kills=$((kills + 1))
  echo "kill $kills (rank 0) after step $(last_step)$([ "$(find kill -name '*.tmp' | wc -l)" -gt 0 ] && echo ' (during a checkpoint write)')"
done
"${MPIRUN[@]}" -n 2 "$STRETCH" train kill.yaml "${QUICK[@]}" --parallel.sp 2 --parallel.shard parameters >> kill.log 2>&1 \
  || { tail -20 kill.log; fail "the final restart failed"; }
same_state "$(latest_ckpt kref)" "$(latest_ckpt kill)"
echo "bit-identical after $kills SIGKILLs of the writing rank"

# Bad input: one line, exit 2, on every rank, before any compute.
set +e
"${MPIRUN[@]}" -n 2 "$STRETCH" train ref.yaml --parallel.sp 2 --parallel.shard zero9 > bad1.log 2>&1; rc1=$?
"${MPIRUN[@]}" -n 2 "$STRETCH" train ref.yaml --parallel.sp 2 --parallel.offload activations --backend cuda > bad2.log 2>&1; rc2=$?
"$STRETCH" train ref.yaml --parallel.offload optimizer > bad3.log 2>&1; rc3=$?
"$STRETCH" train ref.yaml --train.micro_batch_tokens -5 > bad4.log 2>&1; rc4=$?
set -e
[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] && [ $rc4 -eq 2 ] || fail "bad modes: exits $rc1 $rc2 $rc3 $rc4, want 2"
[ "$(grep -c 'stretch: error: .*parallel.shard.*zero9' bad1.log)" -eq 2 ] || fail "unknown mode not refused on both ranks: $(cat bad1.log)"
[ "$(grep -c 'stretch: error: parallel.offload: activations .*needs train.recompute: true' bad2.log)" -eq 2 ] || fail "impossible offload not refused on both ranks: $(cat bad2.log)"
grep -q "stretch: error: parallel.offload: optimizer needs train.backend cuda" bad3.log || fail "offload on cpu: $(cat bad3.log)"
grep -q "stretch: error: .*train.micro_batch_tokens" bad4.log || fail "negative micro_batch_tokens: $(cat bad4.log)"
echo "test_zero: all checks passed"
