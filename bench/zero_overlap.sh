#!/usr/bin/env bash
# zero_overlap.sh: how much of ZeRO-3's parameter all-gather time the
# one-unit-ahead prefetch hides behind compute, measured by the trainer
# itself. `stretch train --parallel.shard parameters` on the cpu backend, 4
# ranks (dp 4), a few steps; each step event of metrics.jsonl carries rank
# 0's gather timers (train_step.h: train_zero3_log):
#   zero3_wait_s         blocked waiting for prefetched gathers (exposed)
#   zero3_prefetched_s   prefetched gathers from their start until an
#                        MPI_Test saw them complete (else the wait's end)
#   zero3_on_the_spot_s  the gathers that cannot be prefetched (the first
#                        unit of each pass), whole: their cost per byte is
#                        what a gather costs when nothing hides it
#   hidden1 = 1 - wait / (prefetched bytes x on-the-spot seconds per byte)
#   hidden2 = 1 - wait / zero3_prefetched_s
# Run twice: with MPI_Test between the ops (the default) and without
# (STRETCH_ZERO3_PROGRESS=0), because an MPI library without an
# asynchronous progress thread moves a non-blocking collective only inside
# MPI calls. Timing on a shared machine is noisy: the load is printed.
#
#   bench/zero_overlap.sh [build_dir] [steps]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
steps=${2:-8}
STRETCH=$build/stretch
[ -x "$STRETCH" ] || { echo "zero_overlap.sh: $STRETCH not found; build first" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
"$STRETCH" tokenize --out text.shard /usr/share/common-licenses/GPL-3 >/dev/null
run() {  # $1 = out_dir, then env assignments
  local out=$1; shift
  cat > "$out.yaml" <<YAML
model: {dim: 512, n_layers: 6, n_heads: 8, n_kv_heads: 4, ffn_dim: 1536}
data: {tokenizer: byte, train: [text.shard], passkey_ratio: 0}
optimizer: {lr: 1.0e-3, warmup_steps: 2}
train: {seed: 1, out_dir: $out, log_every: 1, ckpt_every: 0, keep_last: 0, backend: cpu}
parallel: {dp: 4, shard: parameters}
eval: {passkey_trials: 0}
stages:
  - {name: s, seq_len: 512, steps: $steps, batch_tokens: 4096}
YAML
  env "$@" mpirun -n 4 --oversubscribe --bind-to none "$STRETCH" train "$out.yaml" > "$out.log" 2>&1 \
    || { tail -20 "$out.log"; exit 1; }
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
run prog STRETCH_ZERO3_PROGRESS=1
run noprog STRETCH_ZERO3_PROGRESS=0
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$steps" <<'PY'
import json, sys
def load(run):
    rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
    return [r for r in rows if r.get("event") == "step" and "zero3_wait_s" in r][1:]  # step 1: warm-up
print("4 ranks dp 4, dim 512, 6 layers, 512 tokens x 2 rows per rank, fp32 cpu; rank 0, steps 2..%s" % sys.argv[1])
print("%-22s %8s %8s %9s %8s %9s %8s %6s %8s %8s" % ("", "step s", "wait s", "flight s", "spot s",
      "spot MB/s", "pref MB", "tests", "hidden1", "hidden2"))
for run, name in (("prog", "MPI_Test between ops"), ("noprog", "no MPI_Test")):
    s = load(run)
    n = len(s)
    avg = lambda k: sum(r[k] for r in s) / n
    wait, flight, spot = avg("zero3_wait_s"), avg("zero3_prefetched_s"), avg("zero3_on_the_spot_s")
    spot_b, pref_b = avg("zero3_on_the_spot_bytes"), avg("zero3_prefetched_bytes")
    would = pref_b * spot / spot_b
    print("%-22s %8.3f %8.4f %9.4f %8.4f %9.1f %8.1f %6.0f %7.1f%% %7.1f%%" % (
        name, 4096 / avg("tokens_per_s"), wait, flight, spot, spot_b / spot / 1e6, pref_b / 1e6,
        avg("zero3_mpi_tests"), 100 * (1 - wait / would), 100 * (1 - wait / flight)))
print("per step: wait = blocked on prefetched gathers; flight = prefetched gathers from start to")
print("seen complete (by an MPI_Test, else at the wait's end); spot = the gathers done on the spot.")
print("hidden1 = 1 - wait / (prefetched bytes at the on-the-spot rate); hidden2 = 1 - wait / flight")
print("(meaningful with MPI_Test only: without it a gather is seen complete only inside the wait)")
PY
