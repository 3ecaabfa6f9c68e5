#!/usr/bin/env bash
# `stretch train --backend cuda` end to end on emulated GPUs (gpuemu_stretch:
# trainer, cuda backend, gpu_comm, GPU ring attention, one emulated GPU per
# rank), a tiny Llama (dim 64, head dim 64, 2 layers), fp32, 4 AdamW steps
# of 2 rows x 32 tokens. Checked with compare_runs.py: the loss of every
# step (relative) and every parameter tensor after the steps (max |a - b| /
# max |b|) against the reference run, to 1e-4.
#   sp:     2 ranks sp 2 over the NCCL shim, and 2 ranks sharing one
#           emulated GPU over the host-staged MPI transport, and 2 ranks
#           dp 2 with ZeRO-2 (shard gradients) over the NCCL shim, vs 1 rank;
#           an asynchronous NCCL error stops the run through the watchdog.
#   ulysses: `--parallel.ulysses 2` (2 ranks) and ring 2 x ulysses 2 (4
#           ranks) over the NCCL shim, a GQA model whose one kv head is
#           replicated on the u ranks, vs 1 rank.
#   resume: a checkpoint of step 2 written on the emulated GPU resumes on
#           the cpu backend, and one written on the cpu resumes on the
#           emulated GPU; both runs to step 4 vs the cpu backend's run.
#   zero3:  `--parallel.shard parameters` (ZeRO-3: weights gathered per unit
#           into device buffers, gradients reduce-scattered per unit) over
#           the NCCL shim, 2 ranks sp 2 with tied embeddings (fp32), against
#           `shard none` on the same grid: losses, parameters and AdamW
#           moments bit-identical (tolerance 0); with evaluations (validation
#           loss every 2 steps, passkey and perplexity after the stage,
#           gathered unit by unit: the passkey's argmax reads the LM head
#           the forward left held) whose numbers are bit-identical too, and
#           whose device memory (metrics.jsonl device_peak_bytes) adds to the
#           training's peak exactly what it adds under `shard none` (its
#           scratch): whole weights for the evaluation would add 4n + b n.
#   zero3_dp: the same on dp 2 in bf16 with a validation loss every 2
#           steps (the validation losses identical too).
#           One checkpoint per run (the last step's).
#   zero3_resume: a dp 2 ZeRO-3 checkpoint (bf16) resumes on 1 rank
#           unsharded, bit-identical to the same hand-over from dp 2
#           unsharded.
#   zero3_mpi: dp 2 ZeRO-3 over the host-staged MPI transport (2 ranks
#           sharing one emulated GPU) == dp 2 unsharded, bitwise.
#   offload, offload_resume, offload_dp (parallel.offload, 3 layers,
#           recompute): BITWISE equal to the same run without offload (the
#           same kernels; the host AdamW is the CUDA kernel's expression, and
#           the emulator compiles both without FMA contraction, as the real
#           build does: docs/distributed.md). EMU_COPY_ORDER=late runs every
#           host<->device copy as late as the events allow, so a missing wait
#           on a copy reads stale data and fails the comparison.
#           offload: activations (fp32), optimizer (fp32: the upload straight
#           into the working weights), both (bf16: the upload cast on the
#           device; EMU_COPY_ORDER=early: copies as soon as allowed, so a
#           gradient chunk queued down before the backward finished it fails),
#           vs 1 rank without; and more pinned memory than the node has: exit
#           2 on both ranks, one line, before allocation.
#           offload_resume: a checkpoint of step 2 written with offload both
#           resumes without offload, and one written without resumes with it.
#           offload_dp: 2 ranks dp 2, offload optimizer under shard none,
#           optimizer and gradients with EMU_COPY_ORDER early and late (the
#           gradient chunks go down chained to their reduction bucket's
#           event: EMU_COPY_TRACE counts them, >= 1 a step on each rank),
#           shard gradients + offload both (sharded checkpoint), vs dp 2
#           without offload; and over host-staged mpi (ranks sharing a GPU:
#           chunks go down after the host reduction, none chained).
# usage: test_emu_stretch.sh MODE GPUEMU_STRETCH SOURCE_DIR MPIEXEC [NP_FLAG]
mode=$1; STRETCH=$2; SRC=$3; MPIEXEC=${4:-mpirun}; NP=${5:--n}
source "$SRC/tests/cli/lib.sh"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
MPIRUN=("$MPIEXEC" "$NP" 2 --oversubscribe --bind-to none)
CMP="python3 $SRC/tests/gpu/emu/compare_runs.py"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
"$STRETCH" tokenize --out text.shard /usr/share/common-licenses/GPL-3 >/dev/null

# 3 layers: the offload cases keep 2 residual checkpoints on the device, 2 on the host.
m3='model: {dim: 64, n_layers: 3, n_heads: 1, n_kv_heads: 1, ffn_dim: 96}'
run_file() {  # $1 = out_dir, $2 = backend, [$3 = the model line, $4 = dtype, $5 = more train keys]
  cat > "$1.yaml" <<YAML
${3:-model: {dim: 64, n_layers: 2, n_heads: 1, n_kv_heads: 1, ffn_dim: 96\}}
data: {tokenizer: byte, train: [text.shard], passkey_ratio: 0}
optimizer: {lr: 3.0e-3, warmup_steps: 2}
train: {seed: 7, out_dir: $1, log_every: 1, ckpt_every: 2, keep_last: 0, backend: $2, dtype: ${4:-fp32}${5:-}}
eval: {passkey_trials: 0}
stages:
  - {name: s, seq_len: 32, steps: 4, batch_tokens: 64}
YAML
}
timed() {  # $1 = log, then the command
  local log=$1 t0=$SECONDS; shift
  "$@" > "$log" 2>&1 || { tail -20 "$log"; fail "$* failed"; }
  echo "  ($((SECONDS - t0)) s: $*)"
}

# A run (2 ranks, sp 2, $2.. = its options) whose pinned host memory exceeds
# the node's (32 layers of 4096 at 16M tokens) is refused before any
# allocation: exit 2, one line on each rank. $1 = what, for the messages.
refused_pinned() {
  local what=$1 rc; shift
  run_file big cuda 'model: {dim: 4096, n_layers: 32, n_heads: 32, n_kv_heads: 8, ffn_dim: 11008}' bf16 ", recompute: true"
  sed -i 's/seq_len: 32, steps: 4, batch_tokens: 64/seq_len: 16777216, steps: 1, batch_tokens: 16777216/' big.yaml
  set +e
  "${MPIRUN[@]}" "$STRETCH" train big.yaml --parallel.sp 2 "$@" > big.log 2>&1; rc=$?
  set -e
  [ $rc -eq 2 ] || { tail -5 big.log; fail "$what beyond the host's memory: exit $rc, want 2"; }
  [ "$(grep -c 'stretch: error: parallel.offload: both needs .* GB of pinned host memory per rank (2 rank(s) on this node: .* GB) but the node has .* GB available (MemAvailable)' big.log)" -eq 2 ] \
    || { cat big.log; fail "$what beyond the host's memory: not one line per rank"; }
  ! grep -q "out of\|cudaMalloc" big.log || fail "$what beyond the host's memory: allocated first"
}

case $mode in
sp)
  run_file r1 cuda
  timed r1.log "$STRETCH" train r1.yaml
  has "backend cuda (fp32, comm nccl" < r1.log || fail "1 rank: not on the emulated GPU"
  run_file n2 cuda
  timed n2.log "${MPIRUN[@]}" "$STRETCH" train n2.yaml --parallel.sp 2 --parallel.transport nccl
  has "backend cuda (fp32, comm nccl 2.21.5)" < n2.log || fail "sp 2: not over the NCCL shim"
  $CMP n2 r1 1e-4 || fail "sp 2 over nccl differs from 1 rank"
  run_file m2 cuda
  timed m2.log env EMU_GPU_COUNT=1 "${MPIRUN[@]}" "$STRETCH" train m2.yaml --parallel.sp 2
  has "backend cuda (fp32, comm mpi)" < m2.log || fail "sp 2 sharing a GPU: not over mpi"
  $CMP m2 r1 1e-4 || fail "sp 2 over host-staged mpi differs from 1 rank"
  # Data parallel with ZeRO-2 over the NCCL shim: the bucketed gradient
  # reduce-scatter (grouped ncclReduce), the parameter all-gather (grouped
  # ncclBroadcast) and the sharded checkpoint, through the trainer.
  run_file z2 cuda
  timed z2.log "${MPIRUN[@]}" "$STRETCH" train z2.yaml --parallel.dp 2 --parallel.shard gradients
  has "shard gradients over 2 ranks" < z2.log || fail "dp 2: not sharded"
  $CMP z2 r1 1e-4 || fail "dp 2 with shard gradients over nccl differs from 1 rank"
  # An asynchronous NCCL failure (ncclCommGetAsyncError, faked by
  # EMU_NCCL_ASYNC_ERROR=6: ncclRemoteError) ends the run through the
  # watchdog's poll hook (dist_abort.h): exit 97, the NCCL message.
  run_file w1 cuda
  set +e
  EMU_NCCL_ASYNC_ERROR=6 "$STRETCH" train w1.yaml --train.watchdog_minutes 5 > w1.log 2>&1; rc=$?
  set -e
  [ $rc -eq 97 ] || { tail -5 w1.log; fail "an NCCL async error: exit $rc, want 97"; }
  has "NCCL asynchronous error (ring communicator): remote process exited or there was a network error" < w1.log \
    || fail "an NCCL async error: no message"
  echo "an asynchronous NCCL error: the watchdog aborts (exit 97)"
  echo "gpuemu_stretch_sp: 2 ranks sp 2 over nccl and over mpi, dp 2 + ZeRO-2 over nccl match 1 rank"
  ;;
resume)
  run_file c1 cpu
  timed c1.log "$STRETCH" train c1.yaml
  # emulated GPU -> cpu
  run_file x1 cuda
  timed x1a.log "$STRETCH" train x1.yaml --max-steps 2
  timed x1b.log "$STRETCH" train x1.yaml --backend cpu
  has "resumed from x1/ckpt-00000002.h5" < x1b.log || fail "x1 did not resume"
  has "train.backend: cuda -> cpu" < x1b.log || fail "x1 did not resume on the cpu"
  $CMP x1 c1 1e-4 || fail "emulated GPU -> cpu resume differs from the cpu run"
  # cpu -> emulated GPU
  run_file y1 cpu
  timed y1a.log "$STRETCH" train y1.yaml --max-steps 2
  timed y1b.log "$STRETCH" train y1.yaml --backend cuda
  has "train.backend: cpu -> cuda" < y1b.log || fail "y1 did not resume on the emulated GPU"
  $CMP y1 c1 1e-4 || fail "cpu -> emulated GPU resume differs from the cpu run"
  echo "gpuemu_stretch_resume: checkpoints cross between the emulated GPU and the cpu"
  ;;
ulysses)
  # 2 query heads, 1 kv head (head dim 64): ulysses 2 replicates the kv head
  # on both u ranks and sums its dK/dV.
  gqa='model: {dim: 128, n_layers: 2, n_heads: 2, n_kv_heads: 1, ffn_dim: 96}'
  run_file u1 cuda "$gqa"
  timed u1.log "$STRETCH" train u1.yaml
  run_file u2 cuda "$gqa"
  timed u2.log "${MPIRUN[@]}" "$STRETCH" train u2.yaml --parallel.ulysses 2 --parallel.transport nccl
  has "backend cuda (fp32, comm nccl 2.21.5)" < u2.log || fail "ulysses 2: not over the NCCL shim"
  has "ring 1 x ulysses 2" < u2.log || fail "ulysses 2: not on a ulysses grid"
  $CMP u2 u1 1e-4 || fail "ulysses 2 over nccl differs from 1 rank"
  run_file h4 cuda "$gqa"
  timed h4.log "$MPIEXEC" "$NP" 4 --oversubscribe --bind-to none "$STRETCH" train h4.yaml \
    --parallel.ring 2 --parallel.ulysses 2 --parallel.transport nccl
  has "ring 2 x ulysses 2" < h4.log || fail "hybrid: not on a ring 2 x ulysses 2 grid"
  $CMP h4 u1 1e-4 || fail "ring 2 x ulysses 2 over nccl differs from 1 rank"
  echo "gpuemu_stretch_ulysses: ulysses 2 and ring 2 x ulysses 2 over nccl match 1 rank"
  ;;
zero3)
  # A tied head gathers the embedding again as a unit of its own, and its
  # gradient unit (the embedding's) stays open from the head to the
  # embedding backward.
  tied='model: {dim: 64, n_layers: 2, n_heads: 1, n_kv_heads: 1, ffn_dim: 96, tie_embeddings: true}'
  EV=(--data.val [text.shard] --train.eval_every 2 --eval.val_tokens 128 --data.passkey_compact true
      --eval.passkey_trials 2 --eval.passkey_lengths [64] --eval.ppl_data [text.shard] --eval.ppl_lengths [64]
      --eval.ppl_tokens 128)
  run_file s0 cuda "$tied"
  timed s0.log "${MPIRUN[@]}" "$STRETCH" train s0.yaml --parallel.sp 2 --parallel.transport nccl --train.ckpt_every 4 "${EV[@]}"
  run_file s3 cuda "$tied"
  timed s3.log "${MPIRUN[@]}" "$STRETCH" train s3.yaml --parallel.sp 2 --parallel.shard parameters --parallel.transport nccl --train.ckpt_every 4 "${EV[@]}"
  has "shard parameters over 2 ranks" < s3.log || fail "sp 2: not sharded"
  $CMP s3 s0 0 --moments || fail "sp 2 tied: ZeRO-3 differs from shard none"
  evals() { grep '"event":"eval' "$1/metrics.jsonl" | sed 's/,"time":[^,}]*//'; }
  for ev in eval_val eval_passkey eval_ppl; do
    evals s0 | grep -q "\"event\":\"$ev\"" || fail "no $ev event in s0"
  done
  [ "$(evals s0)" = "$(evals s3)" ] || fail "evaluations under ZeRO-3 differ: $(evals s3) vs $(evals s0)"
  # Device bytes (rank 0): the plan, the first step's peak, the run's peak
  # (after every evaluation); what the evaluations add must be what they
  # add without sharding.
  mem() {  # $1 = run: plan, first step's peak, peak at the end
    echo "$(grep -o '"device_plan_bytes":[0-9]*' $1/metrics.jsonl | head -1 | cut -d: -f2)" \
      "$(grep '"event":"step"' $1/metrics.jsonl | head -1 | grep -o '"device_peak_bytes":[0-9]*' | cut -d: -f2)" \
      "$(grep '"event":"run_end"' $1/metrics.jsonl | grep -o '"device_peak_bytes":[0-9]*' | cut -d: -f2)"
  }
  read p0 a0 b0 <<< "$(mem s0)"; read p3 a3 b3 <<< "$(mem s3)"
  [ -n "$b0" ] && [ -n "$b3" ] && [ -n "$p3" ] || fail "no device memory in metrics.jsonl: $(mem s3)"
  [ $((b3 - a3)) -eq $((b0 - a0)) ] \
    || fail "ZeRO-3 evaluations raise the device peak by $((b3 - a3)) bytes, unsharded ones by $((b0 - a0))"
  echo "device bytes, rank 0: ZeRO-3 plan $p3, training peak $a3, with evaluations $b3 (+$((b3 - a3))); shard none plan $p0, training $a0, with evaluations $b0 (+$((b0 - a0)))"
  echo "evaluations (val, passkey, ppl) under ZeRO-3 == shard none, bitwise"
  # Gradient accumulation, 2 micro-batches a rank: ZeRO-3 on a device
  # reduce-scatters each unit's gradients after every micro-batch (it keeps
  # no whole gradient buffer), shard none once per step: the same sums in
  # another order, so within test_shard's 1e-4 (4 AdamW steps here).
  for r in a0 a3; do run_file $r cuda "$tied"; done
  timed a0.log "${MPIRUN[@]}" "$STRETCH" train a0.yaml --parallel.sp 2 --parallel.transport nccl --train.ckpt_every 4 --train.micro_batch_tokens 16
  timed a3.log "${MPIRUN[@]}" "$STRETCH" train a3.yaml --parallel.sp 2 --parallel.shard parameters --parallel.transport nccl --train.ckpt_every 4 --train.micro_batch_tokens 16
  # (accumulating sums in another order than the whole batch: not bitwise s0)
  ! $CMP a0 s0 0 > /dev/null || fail "micro_batch_tokens 16 changed nothing: not accumulating"
  $CMP a3 a0 1e-4 --moments || fail "sp 2 tied, 2 micro-batches: ZeRO-3 differs from shard none"
  echo "gpuemu_stretch_zero3: ZeRO-3 on sp 2 (tied embeddings) over nccl == shard none, bitwise; with 2 micro-batches within 1e-4"
  ;;
zero3_dp)
  # dp 2, bf16, a validation loss every 2 steps: the evaluation gathers the
  # weights unit by unit, as the training's forward.
  for r in d0 d3; do
    run_file $r cuda "" bf16
    sed -i -e 's/train: \[text.shard\]/train: [text.shard], val: [text.shard]/' \
      -e 's/ckpt_every: 2,/ckpt_every: 4, eval_every: 2,/' -e 's/passkey_trials: 0/passkey_trials: 0, val_tokens: 128/' $r.yaml
  done
  timed d0.log "${MPIRUN[@]}" "$STRETCH" train d0.yaml --parallel.dp 2 --parallel.transport nccl
  timed d3.log "${MPIRUN[@]}" "$STRETCH" train d3.yaml --parallel.dp 2 --parallel.shard parameters --parallel.transport nccl
  has "backend cuda (bf16, comm nccl 2.21.5)" < d3.log || fail "dp 2: not bf16 over the NCCL shim"
  $CMP d3 d0 0 --moments || fail "dp 2 bf16: ZeRO-3 differs from shard none"
  vals() { grep '"event":"eval_val"' "$1/metrics.jsonl" | grep -o '"val_loss":[^,}]*'; }
  v0=$(vals d0); v3=$(vals d3)
  [ "$(echo "$v0" | wc -l)" -eq 2 ] && [ "$v0" = "$v3" ] || fail "validation losses under ZeRO-3: $v3, unsharded: $v0"
  echo "validation losses (steps 2, 4) identical:" $v3
  echo "gpuemu_stretch_zero3_dp: ZeRO-3 on dp 2 (bf16, with evaluations) over nccl == shard none, bitwise"
  ;;
zero3_resume)
  run_file h0 cuda "" bf16
  timed h0.log "${MPIRUN[@]}" "$STRETCH" train h0.yaml --parallel.dp 2 --parallel.transport nccl --max-steps 2
  run_file h3 cuda "" bf16
  timed h3.log "${MPIRUN[@]}" "$STRETCH" train h3.yaml --parallel.dp 2 --parallel.shard parameters --parallel.transport nccl --max-steps 2
  $CMP h3 h0 0 --moments || fail "the ZeRO-3 checkpoint of step 2 differs from the unsharded one"
  timed h0b.log "$STRETCH" train h0.yaml
  timed h3b.log "$STRETCH" train h3.yaml
  has "resumed from h3/ckpt-00000002.h5" < h3b.log || fail "h3 did not resume"
  $CMP h3 h0 0 --moments || fail "ZeRO-3 dp 2 -> 1 rank unsharded differs from the unsharded hand-over"
  echo "gpuemu_stretch_zero3_resume: a dp 2 ZeRO-3 checkpoint resumes on 1 rank unsharded, bit-identical to the unsharded hand-over"
  ;;
zero3_mpi)
  # Ranks sharing a GPU: the unit gathers and reductions staged through the host.
  run_file m0 cuda
  timed m0.log env EMU_GPU_COUNT=1 "${MPIRUN[@]}" "$STRETCH" train m0.yaml --parallel.dp 2 --train.ckpt_every 4
  run_file m3 cuda
  timed m3.log env EMU_GPU_COUNT=1 "${MPIRUN[@]}" "$STRETCH" train m3.yaml --parallel.dp 2 --parallel.shard parameters --train.ckpt_every 4
  has "backend cuda (fp32, comm mpi)" < m3.log || fail "dp 2 sharing a GPU: not over mpi"
  $CMP m3 m0 0 --moments || fail "dp 2 over host-staged mpi: ZeRO-3 differs from shard none"
  echo "gpuemu_stretch_zero3_mpi: ZeRO-3 over host-staged mpi == unsharded, bitwise"
  ;;
offload)
  export EMU_COPY_ORDER=late
  run_file r1 cuda "$m3" fp32 ", recompute: true"
  timed r1.log "$STRETCH" train r1.yaml
  run_file a1 cuda "$m3" fp32 ", recompute: true"
  timed a1.log "$STRETCH" train a1.yaml --parallel.offload activations
  has "offload activations: 2 of 4 residual checkpoints on the device" < a1.log || fail "a1: not offloaded"
  $CMP a1 r1 0 || fail "offload activations differs from no offload"
  run_file o1 cuda "$m3" fp32 ", recompute: true"
  timed o1.log "$STRETCH" train o1.yaml --parallel.offload optimizer
  has "offload optimizer: fp32 master, AdamW moments" < o1.log || fail "o1: not offloaded"
  $CMP o1 r1 0 || fail "offload optimizer (fp32) differs from no offload"
  run_file rb cuda "$m3" bf16 ", recompute: true"
  timed rb.log "$STRETCH" train rb.yaml
  run_file bb cuda "$m3" bf16 ", recompute: true"
  # early: copies run as soon as their events allow, so a gradient chunk
  # queued down before the backward finished it reads partial sums.
  timed bb.log env EMU_COPY_ORDER=early "$STRETCH" train bb.yaml --parallel.offload both
  $CMP bb rb 0 || fail "offload both (bf16) differs from no offload"
  # 32 layers of 4096 at 16M tokens: terabytes of pinned checkpoints.
  refused_pinned "offload" --parallel.offload both
  echo "gpuemu_stretch_offload: offload activations / optimizer / both == no offload, bitwise; too little host memory: exit 2"
  ;;
offload_resume)
  export EMU_COPY_ORDER=late
  run_file r1 cuda "$m3" bf16 ", recompute: true"
  timed r1.log "$STRETCH" train r1.yaml
  run_file x1 cuda "$m3" bf16 ", recompute: true"
  timed x1a.log "$STRETCH" train x1.yaml --max-steps 2 --parallel.offload both
  timed x1b.log "$STRETCH" train x1.yaml
  has "resumed from x1/ckpt-00000002.h5" < x1b.log || fail "x1 did not resume"
  $CMP x1 r1 0 || fail "offload -> no offload resume differs from the plain run"
  run_file y1 cuda "$m3" bf16 ", recompute: true"
  timed y1a.log "$STRETCH" train y1.yaml --max-steps 2
  timed y1b.log "$STRETCH" train y1.yaml --parallel.offload both
  has "resumed from y1/ckpt-00000002.h5" < y1b.log || fail "y1 did not resume"
  $CMP y1 r1 0 || fail "no offload -> offload resume differs from the plain run"
  echo "gpuemu_stretch_offload_resume: checkpoints cross between offload both and none, bitwise"
  ;;
offload_dp)
  # The reference: dp 2 without offload (shard none; the sharded modes give
  # the same bits).
  run_file d2 cuda "$m3" bf16 ", recompute: true"
  timed d2.log "${MPIRUN[@]}" "$STRETCH" train d2.yaml --parallel.dp 2 --parallel.transport nccl
  # Offload optimizer under every shard mode it takes, copies as early and
  # as late as their events allow: a gradient chunk goes down chained to the
  # event of its reduction bucket (gpu_comm_grad_copy_after), so without
  # that wait it reads the unreduced gradients, early or late (the emulated
  # collective completes as late as it may). EMU_COPY_TRACE: each rank counts
  # the device-to-host copies queued while the collective writing their
  # source was still pending; the chunks queued only after the whole
  # reduction (backend_comm_grad_end: the host path) count 0.
  for shard in none optimizer gradients; do
    for order in early late; do
      r=o_${shard}_$order
      run_file $r cuda "$m3" bf16 ", recompute: true"
      timed $r.log env EMU_COPY_ORDER=$order EMU_COPY_TRACE=1 "${MPIRUN[@]}" "$STRETCH" train $r.yaml \
        --parallel.dp 2 --parallel.transport nccl --parallel.shard $shard --parallel.offload optimizer
      $CMP $r d2 0 || fail "dp 2 shard $shard, offload optimizer (copies $order) differs from dp 2 without"
      chained=$(sed -n 's/^EMU copy trace: .* copies, \([0-9]*\) queued before the collective.*/\1/p' $r.log)
      [ "$(echo $chained | wc -w)" -eq 2 ] || { cat $r.log; fail "$r: no copy trace from each rank"; }
      for k in $chained; do
        [ "$k" -ge 4 ] || fail "$r: $k gradient chunks went down chained to their bucket in 4 steps (want >= 1 a step)"
      done
      echo "  shard $shard, copies $order: chunks queued behind their bucket (per rank):" $chained
    done
  done
  # shard gradients + offload both (sharded checkpoint), late copies.
  run_file z2 cuda "$m3" bf16 ", recompute: true"
  timed z2.log env EMU_COPY_ORDER=late "${MPIRUN[@]}" "$STRETCH" train z2.yaml --parallel.dp 2 --parallel.transport nccl \
    --parallel.shard gradients --parallel.offload both
  has "shard gradients over 2 ranks" < z2.log || fail "z2: not sharded"
  $CMP z2 d2 0 || fail "dp 2 shard gradients + offload both differs from dp 2 without"
  # Ranks sharing a GPU (host-staged mpi, which sums in the same rank order
  # as the NCCL shim): the reduction is a host round trip in grad_end, so
  # every chunk goes down after it, none chained.
  run_file mo cuda "$m3" bf16 ", recompute: true"
  timed mo.log env EMU_GPU_COUNT=1 EMU_COPY_ORDER=early EMU_COPY_TRACE=1 "${MPIRUN[@]}" "$STRETCH" train mo.yaml \
    --parallel.dp 2 --parallel.shard gradients --parallel.offload optimizer
  has "backend cuda (bf16, comm mpi)" < mo.log || fail "mo: not over mpi"
  $CMP mo d2 0 || fail "dp 2 over mpi, offload optimizer differs from dp 2 without"
  [ "$(grep -c '^EMU copy trace: .* copies, 0 queued before' mo.log)" -eq 2 ] || { grep 'EMU copy' mo.log; fail "mo: copies chained over mpi?"; }
  echo "gpuemu_stretch_offload_dp: dp 2 with offload optimizer (shard none / optimizer / gradients, copies early and late, chunks chained to their buckets), offload both + ZeRO-2, and over mpi == dp 2 without, bitwise"
  ;;
zero3_offload)
  # ZeRO-3 + offload (the ALST recipe): the host AdamW updates the rank's
  # slice of the master; a unit's gradient slice goes down as soon as its
  # reduction is added into the slice (last micro-batch only). Against
  # ZeRO-3 without offload on the same grid, bitwise, moments included.
  export EMU_COPY_ORDER=late
  m3t='model: {dim: 64, n_layers: 3, n_heads: 1, n_kv_heads: 1, ffn_dim: 96, tie_embeddings: true}'
  z3=(--parallel.shard parameters --parallel.transport nccl --train.ckpt_every 4)
  # sp 2, fp32, tied head, 2 micro-batches a rank: activations; optimizer
  # (early copies: a chunk queued before its units' sums are in the slice,
  # or in the first micro-batch, reads partial sums).
  for r in a0 a1 a2; do run_file $r cuda "$m3t" fp32 ", recompute: true"; done
  mb=(--parallel.sp 2 "${z3[@]}" --train.micro_batch_tokens 16)
  timed a0.log "${MPIRUN[@]}" "$STRETCH" train a0.yaml "${mb[@]}"
  timed a1.log "${MPIRUN[@]}" "$STRETCH" train a1.yaml "${mb[@]}" --parallel.offload activations
  has "offload activations: 2 of 4 residual checkpoints on the device" < a1.log || fail "a1: not offloaded"
  $CMP a1 a0 0 --moments || fail "sp 2 fp32, 2 micro-batches: ZeRO-3 + offload activations differs from ZeRO-3"
  timed a2.log env EMU_COPY_ORDER=early "${MPIRUN[@]}" "$STRETCH" train a2.yaml "${mb[@]}" --parallel.offload optimizer
  has "offload optimizer: fp32 master slice, AdamW moments" < a2.log || fail "a2: not offloaded"
  $CMP a2 a0 0 --moments || fail "sp 2 fp32, 2 micro-batches: ZeRO-3 + offload optimizer differs from ZeRO-3"
  # dp 2, bf16, untied, validation every 2 steps (the weights made whole on
  # the device from the host master, then the slice again): both (early
  # copies), optimizer (late).
  for r in d0 d1 d2; do
    run_file $r cuda "$m3" bf16 ", recompute: true"
    sed -i -e 's/train: \[text.shard\]/train: [text.shard], val: [text.shard]/' \
      -e 's/ckpt_every: 2,/ckpt_every: 4, eval_every: 2,/' -e 's/passkey_trials: 0/passkey_trials: 0, val_tokens: 128/' $r.yaml
  done
  timed d0.log "${MPIRUN[@]}" "$STRETCH" train d0.yaml --parallel.dp 2 "${z3[@]}"
  timed d1.log env EMU_COPY_ORDER=early "${MPIRUN[@]}" "$STRETCH" train d1.yaml --parallel.dp 2 "${z3[@]}" --parallel.offload both
  timed d2.log "${MPIRUN[@]}" "$STRETCH" train d2.yaml --parallel.dp 2 "${z3[@]}" --parallel.offload optimizer
  has "backend cuda (bf16, comm nccl 2.21.5)" < d1.log || fail "dp 2: not bf16 over the NCCL shim"
  $CMP d1 d0 0 --moments || fail "dp 2 bf16: ZeRO-3 + offload both differs from ZeRO-3"
  $CMP d2 d0 0 --moments || fail "dp 2 bf16: ZeRO-3 + offload optimizer differs from ZeRO-3"
  vals() { grep '"event":"eval_val"' "$1/metrics.jsonl" | grep -o '"val_loss":[^,}]*'; }
  v0=$(vals d0); v1=$(vals d1); v2=$(vals d2)
  [ "$(echo "$v0" | wc -l)" -eq 2 ] && [ "$v0" = "$v1" ] && [ "$v0" = "$v2" ] \
    || fail "validation losses under ZeRO-3 + offload: $v1 / $v2, without offload: $v0"
  echo "validation losses (steps 2, 4) identical:" $v1
  # The pinned total of ZeRO-3 (the master slice, not the whole model):
  # still terabytes of checkpoints here, refused on every rank.
  refused_pinned "ZeRO-3 + offload" --parallel.shard parameters --parallel.offload both
  echo "gpuemu_stretch_zero3_offload: ZeRO-3 + offload activations / optimizer / both (sp 2 fp32, dp 2 bf16, 2 micro-batches) == ZeRO-3, bitwise; too little host memory: exit 2"
  ;;
zero3_offload_resume)
  # dp 2 ZeRO-3 + offload both (bf16) -> 1 rank, shard none, no offload,
  # bit-identical to the same hand-over from dp 2 unsharded; and a dp 2
  # unsharded checkpoint resumed under ZeRO-3 + offload both, bit-identical
  # to the uninterrupted dp 2 run.
  export EMU_COPY_ORDER=late
  for r in h0 h3 u0; do run_file $r cuda "$m3" bf16 ", recompute: true"; done
  dp2=(--parallel.dp 2 --parallel.transport nccl)
  timed h0a.log "${MPIRUN[@]}" "$STRETCH" train h0.yaml "${dp2[@]}" --max-steps 2
  timed h3a.log "${MPIRUN[@]}" "$STRETCH" train h3.yaml "${dp2[@]}" --max-steps 2 --parallel.shard parameters --parallel.offload both
  has "shard parameters over 2 ranks" < h3a.log || fail "h3: not sharded"
  $CMP h3 h0 0 --moments || fail "the ZeRO-3 + offload checkpoint of step 2 differs from the unsharded one"
  cp -r h0 y3; sed 's/out_dir: h0/out_dir: y3/' h0.yaml > y3.yaml
  timed h0b.log "$STRETCH" train h0.yaml
  timed h3b.log "$STRETCH" train h3.yaml
  has "resumed from h3/ckpt-00000002.h5" < h3b.log || fail "h3 did not resume"
  $CMP h3 h0 0 --moments || fail "ZeRO-3 + offload dp 2 -> 1 rank unsharded differs from the unsharded hand-over"
  timed u0.log "${MPIRUN[@]}" "$STRETCH" train u0.yaml "${dp2[@]}"
  timed y3b.log "${MPIRUN[@]}" "$STRETCH" train y3.yaml "${dp2[@]}" --parallel.shard parameters --parallel.offload both
  has "resumed from y3/ckpt-00000002.h5" < y3b.log || fail "y3 did not resume"
  $CMP y3 u0 0 --moments || fail "dp 2 unsharded -> ZeRO-3 + offload both differs from the uninterrupted run"
  echo "gpuemu_stretch_zero3_offload_resume: checkpoints cross between ZeRO-3 + offload both and shard none without offload, bitwise"
  ;;
*) fail "usage: test_emu_stretch.sh sp|resume|ulysses|zero3|zero3_dp|zero3_resume|zero3_mpi|offload|offload_resume|offload_dp|zero3_offload|zero3_offload_resume ..." ;;
esac
