#!/usr/bin/env bash
# Preemption on a real one-node Slurm cluster (slurm/local-cluster.sh), with
# slurm/stretch-cpu.sbatch and 2 MPI ranks (dp 2) under srun:
#  (a) SIGUSR1 to the batch shell mid-stage (`scancel -s USR1 -b`, what
#      --signal=B:USR1@120 does before the time limit): the trainer
#      checkpoints, exits 99, Slurm requeues the job (RequeueExit=99), it
#      resumes and ends with parameters identical to an uninterrupted run of
#      the same run file executed directly with mpirun;
#  (b) the same, checkpointing every step, with the signal delivered while
#      rank 0 is inside a checkpoint write (the ranks are frozen there with
#      SIGSTOP, preempted, continued); requeued with `scontrol requeue` from
#      the script this time;
#  (c) a plain `scancel` (SIGTERM to the job) is not requeued and leaves a
#      checkpoint of the stop step that `stretch inspect` verifies.
# Skips (77) without Slurm/munge, as non-root, or when the cluster does not
# come up. 30 s on 2 idle cores, up to about 55 s on a busy machine.
#
# All runs use one run file; out_dir (and the checkpoint interval) come from
# the command line, which the batch script passes on to `stretch train`.
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

# Ranks: 2 on 2 cores, one OpenMP thread each (as the job runs them; the
# parameters do not depend on it, the speed does: spinning threads stall).
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export STRETCH OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if ! "$CLUSTER" start "$T/cluster" >/dev/null 2>cluster.err; then
  cat cluster.err
  echo "skipped: the one-node Slurm cluster did not start"
  exit 77
fi
export SLURM_CONF=$T/cluster/slurm.conf
elapsed "cluster up"

# The run: tiny model, 60 + 40 steps of 2048 tokens (about 65 ms a step).
make_text_shard text.shard
cat > run.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [text.shard], passkey_ratio: 0.25, passkey_compact: true}
optimizer: {lr: 3.0e-3, warmup_steps: 5}
parallel: {dp: 2, sp: 1}
train: {seed: 7, out_dir: out, log_every: 1, ckpt_every: 10, keep_last: 4}
eval: {passkey_trials: 2, passkey_depths: [0.5]}
stages:
  - {name: short, seq_len: 64, steps: 60, batch_tokens: 2048}
  - {name: long, seq_len: 128, steps: 40, batch_tokens: 2048, rope: {type: yarn}}
YAML

job_state() { squeue -h -j "$1" -t all -o %T 2>/dev/null | sed -n 1p; }
job_log() { tr '\r' '\n' < "$1.out" | grep -v '^.\[K\|step .* loss' | tail -40; }
# Waits (up to $3 s) until job $1 is RUNNING and out_dir $2 logged step $4.
wait_running_at() {
  local j=$1 dir=$2 max=$3 step=$4
  for _ in $(seq 1 $((max * 20))); do
    [ "$(job_state "$j")" = RUNNING ] && grep -q "\"step\":$step," "$dir/metrics.jsonl" 2>/dev/null && return 0
    sleep 0.05
  done
  job_log "$dir"
  fail "job $j ($dir) not RUNNING at step $step within $max s (state $(job_state "$j"))"
}
# Waits (up to $2 s) until job $1 is in a final state; prints it.
wait_final() {
  local j=$1 max=$2 s=""
  for _ in $(seq 1 $((max * 10))); do
    s=$(job_state "$j")
    case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) echo "$s"; return 0 ;; esac
    sleep 0.1
  done
  echo "${s:-gone}"
}
submit() {  # NAME [stretch train options]: the job id; out_dir NAME, log NAME.out
  local name=$1; shift
  sbatch --parsable -D "$T" -o "$T/$name.out" -J "$name" "$SRC/slurm/stretch-cpu.sbatch" \
    run.yaml --train.out_dir "$name" "$@"
}
stop_step() { sed -n 's/.*checkpointing at step \([0-9]*\).*/\1/p' "$1.out" | sed -n 1p; }

# --- the reference: the same run, uninterrupted, directly under mpirun
mpirun -n 2 --oversubscribe --bind-to none "$STRETCH" train run.yaml --train.out_dir ref > ref.log 2>&1 ||
  { tail ref.log; fail "reference run failed"; }
elapsed "reference run done"

# --- (a) preempted mid-stage, requeued by RequeueExit=99
ja=$(submit a)
wait_running_at "$ja" a 60 20
scancel -s USR1 -b "$ja"
elapsed "(a) job $ja signalled at step $(grep -c '"event":"step"' a/metrics.jsonl)"
st=$(wait_final "$ja" 120)
[ "$st" = COMPLETED ] || { job_log a; fail "(a) job $ja ended $st"; }
grep -q "SLURM_RESTART_COUNT=1" a.out || { job_log a; fail "(a) not requeued (no SLURM_RESTART_COUNT=1 in its log)"; }
grep -q "trainer exit status 99" a.out || fail "(a) the trainer did not exit 99"
grep -q "requeue: exit 99 (RequeueExit" a.out || fail "(a) not requeued through RequeueExit"
grep -q "resumed from" a.out || fail "(a) the requeued job did not resume"
n=$(stop_step a)
if [ -z "$n" ] || [ "$n" -lt 20 ] || [ "$n" -ge 60 ]; then fail "(a) stopped at step '$n', not inside stage 1 (steps 20-59)"; fi
grep -q "done: 100 steps" a.out || fail "(a) did not finish"
same_params "$(latest_ckpt ref)" "$(latest_ckpt a)"
elapsed "(a) stopped at step $n, requeued, resumed, parameters identical"

# --- (b) preempted inside a checkpoint write, requeued by scontrol
# Deterministic: the moment a checkpoint's temporary file shows up, freeze the
# ranks (SIGSTOP to the PIDs `scontrol listpids` gives); if the file is still
# there once they are stopped, rank 0 is inside that write: preempt the job,
# wait until the USR1 is pending on both ranks, let them continue. Else let
# them continue and try the next checkpoint.
jb=$(STRETCH_REQUEUE=scontrol submit b --train.ckpt_every 1)
wait_running_at "$jb" b 60 20
mapfile -t ranks < <(scontrol listpids "$jb" | awk '$3 == "0" { print $1 }')
[ "${#ranks[@]}" -eq 2 ] || fail "(b) scontrol listpids: ${#ranks[@]} ranks, want 2"
rank_stopped() { grep -q '^State:[[:space:]]*T' "/proc/$1/status"; }
rank_usr1_pending() {  # bit SIGUSR1 - 1 of the thread's or the process's pending set
  local key mask
  while read -r key mask; do
    case $key in SigPnd: | ShdPnd:) [ $((0x$mask & (1 << 9))) -ne 0 ] && return 0 ;; esac
  done < "/proc/$1/status"
  return 1
}
all_ranks() { local p; for p in "${ranks[@]}"; do "$1" "$p" || return 1; done; }
until_all() { for _ in $(seq 1 300); do all_ranks "$1" && return 0; sleep 0.01; done; return 1; }
exec {nap}<> <(:)  # read -t on it: a 1 ms sleep without a fork
inside=""
for attempt in $(seq 1 20); do
  tmp=()
  deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    tmp=(b/ckpt-*.h5.tmp)
    [ -e "${tmp[0]}" ] && break
    read -rt 0.001 -u "$nap" || true
  done
  [ -e "${tmp[0]}" ] || fail "(b) saw no checkpoint being written in 30 s"
  kill -STOP "${ranks[@]}"
  until_all rank_stopped || fail "(b) SIGSTOP did not stop the ranks"
  if [ -e "${tmp[0]}" ]; then
    inside=${tmp[0]}
    scancel -s USR1 -b "$jb"
    until_all rank_usr1_pending || fail "(b) the forwarded SIGUSR1 did not reach the stopped ranks"
    kill -CONT "${ranks[@]}"
    break
  fi
  kill -CONT "${ranks[@]}"
done
[ -n "$inside" ] || fail "(b) could not catch rank 0 inside a checkpoint write in 20 attempts"
w=${inside##*ckpt-}; w=$((10#${w%.h5.tmp}))
st=$(wait_final "$jb" 120)
[ "$st" = COMPLETED ] || { job_log b; fail "(b) job $jb ended $st"; }
grep -q "SLURM_RESTART_COUNT=1" b.out || { job_log b; fail "(b) not requeued"; }
grep -q "requeue: scontrol requeue" b.out || fail "(b) not requeued through scontrol"
grep -q "resumed from" b.out || fail "(b) the requeued job did not resume"
grep -q "done: 100 steps" b.out || fail "(b) did not finish"
[ "$(stop_step b)" = "$w" ] || fail "(b) signalled inside the write of checkpoint $w but stopped at step $(stop_step b)"
same_params "$(latest_ckpt ref)" "$(latest_ckpt b)"
elapsed "(b) signalled inside the write of checkpoint $w (attempt $attempt), stopped there, requeued, parameters identical"

# --- (c) scancel: SIGTERM to the job; not requeued; a loadable checkpoint
jc=$(submit c --train.ckpt_every 25)
wait_running_at "$jc" c 60 10
scancel "$jc"
st=$(wait_final "$jc" 60)
[ "$st" = CANCELLED ] || { job_log c; fail "(c) job $jc ended $st after scancel"; }
sleep 2
[ "$(job_state "$jc")" = CANCELLED ] || fail "(c) a cancelled job was requeued"
grep -q "SLURM_RESTART_COUNT=1" c.out && fail "(c) a cancelled job ran again"
n=$(stop_step c)
[ -n "$n" ] || { job_log c; fail "(c) the trainer did not checkpoint on SIGTERM"; }
[ "$(cat c/latest)" = "$(printf 'ckpt-%08d.h5' "$n")" ] || fail "(c) latest is $(cat c/latest), the stop was at step $n"
"$STRETCH" inspect "$(latest_ckpt c)" --all > inspect.txt || fail "(c) stretch inspect $(latest_ckpt c) failed"
grep -q "@step = $n\$" inspect.txt || fail "(c) the checkpoint is not of step $n"
elapsed "(c) scancel at step $n: cancelled, checkpoint $(cat c/latest) verified"
echo "test_slurm: all checks passed"
