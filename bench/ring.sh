#!/usr/bin/env bash
# ring.sh: the distributed benchmarks of sequence parallelism (issue 5), all
# parts of bench/bench_ring.c under mpirun at 1, 2 and 4 ranks, then one
# summary table of the ratios. About 1.5 minutes on 2 cores.
#
#   bench/ring.sh [build_dir]          (default: build)
#
# Ranks share the machine's cores: each rank gets max(1, cores / ranks)
# OpenMP threads, OMP_WAIT_POLICY=passive (spinning threads starve the rank
# everybody waits for), --oversubscribe --bind-to none. In a container where
# Open MPI's single-copy shared-memory transfers fail (process_vm_readv not
# permitted), export OMPI_MCA_btl_vader_single_copy_mechanism=none first.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build}/bench_ring
if [ ! -x "$bin" ]; then
    echo "ring.sh: $bin not found; build first: cmake --build build -j2" >&2
    exit 2
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=1
cores=$(nproc)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run RANKS ARGS...: one bench_ring run; its "ring ..." lines, tagged with the
# thread count, go to the log.
run() {
    local n=$1 t
    shift
    t=$((cores / n))
    ((t >= 1)) || t=1
    echo "  mpirun -n $n bench_ring $* (OMP_NUM_THREADS=$t)" >&2
    OMP_NUM_THREADS=$t mpirun -n "$n" --oversubscribe --bind-to none "$bin" "$@" |
        grep '^ring ' | sed "s/\$/ threads=$t/" >>"$log"
}

load() { cut -d' ' -f1-3 /proc/loadavg; }
load0=$(load)
start=$(date +%s)
echo "running (load average before: $load0) ..." >&2
for n in 1 2 4; do run "$n" mem; done
for n in 2 4; do run "$n" overlap; done
OMP_NUM_THREADS=$cores "$bin" balance | sed "s/\$/ threads=$cores/" >>"$log"
run 1 speed --dp 1 --sp 1
run 2 speed --dp 2 --sp 1
run 2 speed --dp 1 --sp 2

awk -v cores="$cores" -v load0="$load0" -v load1="$(load)" -v secs="$(($(date +%s) - start))" '
# use(line): f[key] = value for every key=value of a "ring <part> ..." line.
function use(line,   i, p) {
    $0 = line
    delete f
    for (i = 3; i <= NF; i++) { p = index($i, "="); f[substr($i, 1, p - 1)] = substr($i, p + 1) }
}
$2 == "mem"     { use($0); m[f["sp"]] = $0 }
$2 == "overlap" { use($0); o[f["sp"] "/" f["pass"]] = $0 }
$2 == "balance" { use($0); b[f["sp"] "/" f["split"]] = $0 }
$2 == "speed"   { use($0); s[f["dp"] "x" f["sp"]] = $0 }
END {
    printf "\nbench/ring.sh: %d cores, load average %s before, %s after, %d s in all\n",
        cores, load0, load1, secs
    printf "(a machine shared with other jobs: timings are noisy, compare within one run only)\n"

    use(m[1]); base_a = f["act_alloc_mib"]; base_p = f["peak_mib"] - f["params_grads_mib"]
    printf "\n(a) per-rank memory of one training step (forward + backward + grad all-reduce), dp 1 x sp\n"
    printf "    model %s (layers-dim-heads/kv-head dim-ffn-vocab), one sequence of T tokens\n", f["model"]
    printf "%4s %6s %8s | %12s %6s | %9s | %10s %12s %6s | %7s\n", "sp", "T", "T_local",
        "model acts", "/sp=1", "ring bufs", "peak RSS", "minus p+g", "/sp=1", "step s"
    for (sp = 1; sp <= 4; sp *= 2) {
        if (!(sp in m)) continue
        use(m[sp]); a = f["act_alloc_mib"]; pg = f["params_grads_mib"]; pk = f["peak_mib"] - pg
        printf "%4d %6d %8d | %8.1f MiB %6.3f | %5.1f MiB | %6.1f MiB %8.1f MiB %6.3f | %7.2f\n",
            sp, f["T"], f["T_local"], a, a / base_a, f["ring_alloc_mib"], f["peak_mib"], pk,
            pk / base_p, f["step_s"]
    }
    printf "    model acts: bytes the model allocates for activations (T_local rows); ring bufs: K/V\n"
    printf "    and dK/dV blocks in flight; peak RSS: VmHWM growth from model creation through the\n"
    printf "    step; minus p+g: without parameters and gradients (%.1f MiB on every rank)\n", pg
    if (f["peak_reset"] != 1)
        printf "    WARNING: /proc/self/clear_refs not writable: peaks include MPI start-up\n"

    use(o["2/all"])
    printf "\n(b) ring attention: communication hidden behind compute (one sequence, causal)\n"
    printf "    per run the slowest rank, best of %d runs; hidden = 1 - (overlap - compute) / comm\n",
        f["reps"]
    printf "%4s %5s %22s %10s | %10s %10s %10s %6s | %6s\n", "sp", "pass", "shape", "K or V blk",
        "overlap", "compute", "comm", "/comp", "hidden"
    split("fwd bwd all", passes, " ")
    for (sp = 2; sp <= 4; sp *= 2) {
        for (i = 1; i <= 3; i++) {
            if (!((sp "/" passes[i]) in o)) continue
            use(o[sp "/" passes[i]])
            printf "%4d %5s %22s %6.2f MiB | %7.1f ms %7.1f ms %7.1f ms %6.3f | %6.2f\n", sp,
                passes[i], sprintf("T=%d H=%d Hkv=%d D=%d", f["T"], f["H"], f["Hkv"], f["D"]),
                f["block_mib"], f["overlap_ms"], f["compute_ms"], f["comm_ms"],
                f["comm_ms"] / f["compute_ms"], f["hidden"]
        }
        if (!((sp "/stats") in o)) continue
        use(o[sp "/stats"])
        printf "%4d %5s ring_attn_stats of the overlapped run: kernels %.1f ms, waits %.1f ms,\n",
            sp, "", f["kernel_ms"], f["wait_ms"]
        printf "%4s %5s hidden by the waits = 1 - waits / comm(all) = %.2f; the last dK/dV shift\n",
            "", "", f["hidden_wait"]
        printf "%4s %5s of bwd (posted after the last block, never hidden): %.1f ms\n", "", "",
            f["last_hop_ms"]
    }

    use(b["2/zigzag"])
    printf "\n(c) load balance, causal: per-rank attention time (forward + backward block calls),\n"
    printf "    each rank'"'"'s share run alone on all cores, best of %d; exact: ratio of the\n", f["reps"]
    printf "    visible (query, key) entries\n"
    printf "%4s %11s %14s | %8s %8s %8s | %6s | %s\n", "sp", "split", "shape", "max", "min",
        "max/min", "exact", "per rank ms"
    split("contiguous zigzag", splits, " ")
    for (sp = 2; sp <= 4; sp *= 2) {
        for (i = 1; i <= 2; i++) {
            if (!((sp "/" splits[i]) in b)) continue
            use(b[sp "/" splits[i]])
            printf "%4d %11s %14s | %5.0f ms %5.0f ms %8.2f | %6.2f | %s\n", sp, splits[i],
                sprintf("T=%d H=%d D=%d", f["T"], f["H"], f["D"]), f["max_ms"], f["min_ms"],
                f["ratio"], f["work_ratio"], f["ranks_ms"]
        }
    }

    use(s["1x1"]); base_t = f["tokens_per_s"]
    printf "\n(d) training-step throughput, the same global batch on every grid, model %s\n", f["model"]
    printf "%5s %3s %3s %7s | %9s %10s %9s | %9s | %s\n", "ranks", "dp", "sp", "threads", "step",
        "tokens/s", "vs 1 rank", "attention", "loss (step 0)"
    split("1x1 2x1 1x2", grids, " ")
    for (i = 1; i <= 3; i++) {
        if (!(grids[i] in s)) continue
        use(s[grids[i]])
        printf "%5d %3d %3d %7d | %6.0f ms %10.0f %9.2f | %6.0f ms | %s\n", f["ranks"], f["dp"],
            f["sp"], f["threads"], f["step_ms"], f["tokens_per_s"], f["tokens_per_s"] / base_t,
            f["attn_ms"], f["loss0"]
    }
    printf "    B=%d sequences x T=%d tokens per step, median of %d steps after a warm-up (zero\n",
        f["B"], f["T"], f["steps"]
    printf "    grads, forward + backward, all-reduces, AdamW); equal losses: every grid computes\n"
    printf "    the same step\n"
}' "$log"
