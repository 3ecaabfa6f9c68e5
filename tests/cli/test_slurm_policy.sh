#!/usr/bin/env bash
# The stop and requeue policy (slurm/lib/stretch-job.sh) on the one-node
# Slurm cluster (slurm/local-cluster.sh, RequeueExit=99), with
# slurm/stretch-cpu.sbatch and 2 ranks under srun:
#  (a) requeue decided by the marker even when srun reports a signal death:
#      rank 1 kills itself (SIGKILL) after the stop checkpoint and marker;
#      the job is requeued once, resumes, COMPLETED;
#  (b) `scancel -b -s TERM` stops for good: checkpoint, exit 0, COMPLETED,
#      never requeued;
#  (c) a second run (another job id) on the out_dir of a running job:
#      refused (exit 2, one line naming the job), the first unharmed;
#  (d) a time limit too short to progress (train.stop_margin_s beyond it):
#      stopped by time at once, no progress, not requeued (FAILED, restart 0);
#  (e) each start progresses but the restarts are capped
#      (STRETCH_MAX_RESTARTS=2, stop by time every ~4 s): FAILED after
#      restart 2;
#  (f) a rank frozen with SIGSTOP: the watchdog ends the job (no requeue)
#      within the limit + 60 s.
# Skips (77) without Slurm/munge, as non-root, or when the cluster does not
# come up. Polls with generous timeouts; no fixed sleeps.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
for t in slurmctld slurmd sbatch squeue scancel scontrol munged; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "skipped: $t not installed"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "skipped: the test cluster needs root"; exit 77; }
T=$(mktemp -d)
CLUSTER=$SRC/slurm/local-cluster.sh
cleanup() { "$CLUSTER" stop "$T/cluster" || true; rm -rf "$T"; }
trap cleanup EXIT
cd "$T" || exit 1
t0=$SECONDS
elapsed() { echo "[$((SECONDS - t0)) s] $*"; }
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export STRETCH OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export STRETCH_SLURM_LIB=$SRC/slurm/lib/stretch-job.sh
if ! "$CLUSTER" start "$T/cluster" >/dev/null 2>cluster.err; then
  cat cluster.err; echo "skipped: the one-node Slurm cluster did not start"; exit 77
fi
export SLURM_CONF=$T/cluster/slurm.conf
elapsed "cluster up"

make_text_shard text.shard
cat > run.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [text.shard]}
optimizer: {lr: 3.0e-3, warmup_steps: 5}
parallel: {dp: 2, sp: 1}
train: {seed: 7, out_dir: out, log_every: 1, ckpt_every: 0, keep_last: 2}
eval: {passkey_trials: 0}
stages:
  - {name: short, seq_len: 64, steps: 60, batch_tokens: 2048}
YAML
job_state() {  # (squeue may time out on a loaded machine: retried)
  local s="" i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    s=$(squeue -h -j "$1" -t all -o %T 2>/dev/null | head -1 || true)
    [ -n "$s" ] && break
    sleep 0.5
  done
  echo "$s"
}
job_log() { tr '\r' '\n' < "$1.out" | grep -v 'step .* loss' | tail -30; }
wait_running_at() {  # JOB DIR MAX_S STEP
  local j=$1 dir=$2 max=$3 step=$4
  for _ in $(seq 1 $((max * 10))); do
    [ "$(job_state "$j")" = RUNNING ] && grep -q "\"step\":$step," "$dir/metrics.jsonl" 2>/dev/null && return 0
    sleep 0.1
  done
  job_log "$dir"; fail "job $j not RUNNING at step $step within $max s (state $(job_state "$j"))"
}
wait_final() {  # JOB MAX_S: prints the final state
  local j=$1 max=$2 s=""
  for _ in $(seq 1 $((max * 10))); do
    s=$(job_state "$j")
    case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) echo "$s"; return 0 ;; esac
    sleep 0.1
  done
  echo "${s:-gone}"
}
# What sacct's State/ExitCode would show (the test cluster has no accounting
# database): scontrol's JobState, ExitCode, Restarts.
sacct_row() { scontrol show job -o "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*\|Restarts=[0-9]*\|ExitCode=[0-9:]*' | tr '\n' ' '; }
submit() {  # NAME [stretch train options]
  local name=$1; shift
  sbatch --parsable -D "$T" -o "$T/$name.out" -J "$name" "$SRC/slurm/stretch-cpu.sbatch" \
    run.yaml --train.out_dir "$name" "$@"
}
restarts() { grep -o "SLURM_RESTART_COUNT=[0-9]*" "$1.out" | tail -1 | cut -d= -f2; }
TABLE=$T/table.txt
row() { echo "$*" >> "$TABLE"; }

# --- (a) rank 1 killed by a signal after the marker; requeued on the marker
cat > die-after-marker.sh <<SH
#!/bin/bash
"$STRETCH" "\$@"; rc=\$?
[ "\${SLURM_PROCID:-0}" = 1 ] && [ -s "\$STRETCH_STOP_MARKER" ] && [ "\${SLURM_RESTART_COUNT:-0}" = 0 ] && kill -KILL \$\$
exit \$rc
SH
chmod +x die-after-marker.sh
ja=$(STRETCH=$T/die-after-marker.sh submit a)
wait_running_at "$ja" a 120 10
scancel -s USR1 -b "$ja"
st=$(wait_final "$ja" 240)
[ "$st" = COMPLETED ] || { job_log a; fail "(a) job $ja ended $st"; }
grep -q "trainer exit status 99" a.out && fail "(a) srun reported 99: the signal death was not simulated"
grep -q "requeue: exit 99 (RequeueExit)" a.out || { job_log a; fail "(a) not requeued on the marker"; }
[ "$(restarts a)" = 1 ] || fail "(a) restart count $(restarts a)"
grep -q "done: 60 steps" a.out || fail "(a) did not finish"
row "(a) | USR1, rank killed after marker | $(sacct_row "$ja") | restarts $(restarts a) | srun: $(grep -m1 -o 'trainer exit status [0-9]*' a.out)"
elapsed "(a) $(grep -m1 -o 'trainer exit status [0-9]*' a.out) after the marker: requeued, resumed, completed"

# --- (b) scancel -b -s TERM: for good
jb=$(submit b)
wait_running_at "$jb" b 120 10
scancel -s TERM -b "$jb"
st=$(wait_final "$jb" 120)
[ "$st" = COMPLETED ] || { job_log b; fail "(b) job $jb ended $st"; }
grep -q "stopped for good by SIGTERM" b.out || { job_log b; fail "(b) not stopped for good"; }
grep -q "SLURM_RESTART_COUNT=1" b.out && fail "(b) requeued after TERM"
n=$(sed -n 's/.*"step":\([0-9]*\),"checkpoint".*/\1/p' b/stop.json)
[ "$(cat b/latest)" = "$(printf 'ckpt-%08d.h5' "$n")" ] || fail "(b) latest $(cat b/latest), stop step $n"
row "(b) | scancel -b -s TERM | $(sacct_row "$jb") | restarts 0 | stop step $n = latest"
elapsed "(b) TERM: stopped for good at step $n"

# --- (c) second job on the same out_dir
sed -i 's/steps: 60,/steps: 100000,/' run.yaml
jc=$(submit c)
wait_running_at "$jc" c 120 5
# (the node is full: the second one runs where it could, beside the job, as
# a second `stretch train` of another job id would)
grep -q "^host .* job $jc\$" c/stretch.lock || fail "(c) lock: '$(cat c/stretch.lock)', want job $jc"
set +e
SLURM_JOB_ID=$((jc + 1)) "$STRETCH" train run.yaml --train.out_dir c --parallel.dp 1 > c2.log 2>&1
rc2=$?
set -e
[ "$rc2" -eq 2 ] || { cat c2.log; fail "(c) the second run exited $rc2, want 2"; }
[ "$(wc -l < c2.log)" -eq 1 ] || { cat c2.log; fail "(c) want one line"; }
grep -q "stretch: error: train.out_dir c is in use by another run (host .* job $jc," c2.log || { cat c2.log; fail "(c) refusal: $(cat c2.log)"; }
[ "$(job_state "$jc")" = RUNNING ] || fail "(c) the first job is $(job_state "$jc")"
scancel -s TERM -b "$jc"
st=$(wait_final "$jc" 120)
[ "$st" = COMPLETED ] || fail "(c) the first job ended $st after TERM"
row "(c) | second run, same out_dir | exit $rc2: $(cat c2.log) | first job: $(sacct_row "$jc") | unharmed"
elapsed "(c) second job refused"

# --- (d) too short to progress
jd=$(submit d --train.time_limit_minutes 1 --train.stop_margin_s 100)
st=$(wait_final "$jd" 120)
[ "$st" = FAILED ] || { job_log d; fail "(d) job $jd ended $st"; }
grep -q "no progress since this start" d.out || { job_log d; fail "(d) no 'no progress'"; }
grep -q "SLURM_RESTART_COUNT=1" d.out && fail "(d) requeued without progress"
row "(d) | limit < save + margin | $(sacct_row "$jd") | restarts 0 | no progress, not requeued"
elapsed "(d) no progress: not requeued"

# --- (e) progress each start, restarts capped at 2
je=$(STRETCH_MAX_RESTARTS=2 sbatch --parsable --export=ALL -D "$T" -o "$T/e.out" -J e "$SRC/slurm/stretch-cpu.sbatch" \
  run.yaml --train.out_dir e --train.time_limit_minutes 0.07 --train.stop_margin_s 0)
st=$(wait_final "$je" 400)
[ "$st" = FAILED ] || { job_log e; fail "(e) job $je ended $st"; }
grep -q "restart limit reached (2 of STRETCH_MAX_RESTARTS=2)" e.out || { job_log e; fail "(e) no restart limit"; }
[ "$(grep -c 'requeue: exit 99' e.out)" -eq 2 ] || fail "(e) want 2 requeues"
row "(e) | progress, STRETCH_MAX_RESTARTS=2 | $(sacct_row "$je") | restarts $(restarts e) | capped"
elapsed "(e) capped after $(restarts e) restarts"

# --- (f) a frozen rank: the watchdog
# 15 s: short, yet longer than a step of this tiny model takes on a loaded
# 2-core machine (a 6 s watchdog once fired before the freeze there).
jf=$(submit f --train.watchdog_minutes 0.25)
wait_running_at "$jf" f 120 5
mapfile -t ranks < <(scontrol listpids "$jf" | awk '$3 == "0" { print $1 }')
[ "${#ranks[@]}" -eq 2 ] || fail "(f) scontrol listpids: ${#ranks[@]} ranks"
kill -STOP "${ranks[1]}"
s0=$SECONDS
st=$(wait_final "$jf" 120)
took=$((SECONDS - s0))
kill -KILL "${ranks[1]}" 2>/dev/null || true
[ "$st" = FAILED ] || { job_log f; fail "(f) job $jf ended $st"; }
grep -q "stretch: watchdog: rank" f.out || { job_log f; fail "(f) no watchdog message"; }
grep -q "SLURM_RESTART_COUNT=1" f.out && fail "(f) requeued after the watchdog"
[ "$took" -lt 75 ] || fail "(f) ended $took s after the freeze (limit 15 s)"
row "(f) | rank SIGSTOP, watchdog 15 s | $(sacct_row "$jf") | restarts 0 | ended after ${took} s, $(grep -m1 -o 'trainer exit status [0-9]*' f.out)"
elapsed "(f) watchdog after $took s"
cat "$TABLE"
echo "test_slurm_policy: all checks passed"
