#!/usr/bin/env bash
# The watchdog (trainer/train_watchdog.h) under mpirun, 2 ranks (dp 2):
#  (a) with train.watchdog_minutes set, a healthy run ends normally (no false
#      alarm), prints one placement line per rank, and leaves
#      out_dir/heartbeat.json with the last step, the job id, the restart
#      count and the host list;
#  (b) rank 1 frozen with SIGSTOP mid-run: rank 0 blocks in the next
#      collective, its watchdog aborts the job: mpirun exits 97
#      (TRAIN_EXIT_WATCHDOG), not before the limit and well within limit +
#      60 s, naming the rank and the cause; the heartbeat stopped at a step
#      before the freeze's end.
# Polls with generous timeouts (a loaded machine); no fixed sleeps.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
command -v mpirun >/dev/null || { echo "skipped: no mpirun"; exit 77; }
T=$(mktemp -d)
MPI_PID=""
R1=""
cleanup() {
  [ -n "$R1" ] && kill -KILL "$R1" 2>/dev/null
  [ -n "$MPI_PID" ] && kill -KILL "$MPI_PID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
make_text_shard text.shard
cat > run.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [text.shard]}
optimizer: {lr: 3.0e-3, warmup_steps: 5}
parallel: {dp: 2, sp: 1}
train: {seed: 7, out_dir: out, log_every: 1, ckpt_every: 0, keep_last: 0, watchdog_minutes: 0.1}
eval: {passkey_trials: 0}
stages:
  - {name: short, seq_len: 64, steps: 8, batch_tokens: 512}
YAML
field() { sed -n "s/.*\"$2\": *\"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p" "$1"; }
run() { mpirun -n 2 --oversubscribe --bind-to none -x SLURM_JOB_ID -x SLURM_RESTART_COUNT "$STRETCH" train run.yaml "$@"; }
export SLURM_JOB_ID=777 SLURM_RESTART_COUNT=2

# --- (a) healthy
run > a.log 2>&1 || { tail a.log; fail "(a) a healthy run with the watchdog failed"; }
grep -q "done: 8 steps" a.log || fail "(a) did not finish"
[ "$(grep -c '^placement: rank [01]/2 host ' a.log)" -eq 2 ] || fail "(a) want one placement line per rank"
[ "$(field out/heartbeat.json step)" = 8 ] || fail "(a) heartbeat step $(field out/heartbeat.json step), want 8"
[ "$(field out/heartbeat.json job_id)" = 777 ] || fail "(a) heartbeat job_id"
[ "$(field out/heartbeat.json restart_count)" = 2 ] || fail "(a) heartbeat restart_count"
[ "$(field out/heartbeat.json hosts)" = "$(hostname)" ] || fail "(a) heartbeat hosts '$(field out/heartbeat.json hosts)', want $(hostname)"
echo "(a) healthy: $(cat out/heartbeat.json)"

# --- (b) rank 1 frozen
rm -rf out
sed -i 's/steps: 8,/steps: 100000,/' run.yaml
run > b.log 2>&1 &
MPI_PID=$!
for _ in $(seq 1 1200); do
  [ -f out/heartbeat.json ] && [ "$(field out/heartbeat.json step)" -ge 3 ] 2>/dev/null && break
  kill -0 "$MPI_PID" 2>/dev/null || { tail b.log; fail "(b) the run ended early"; }
  sleep 0.1
done
r0=$(field out/heartbeat.json pid)
r1=""
for p in $(pgrep -f "$STRETCH train run.yaml"); do
  # (only this test's ranks: their working directory is $T)
  [ "$p" != "$r0" ] && [ "$(readlink "/proc/$p/cwd")" = "$T" ] && [ "$(ps -o comm= -p "$p")" = stretch ] && r1=$p
done
[ -n "$r0" ] && [ -n "$r1" ] || fail "(b) cannot find the two ranks (rank 0 pid '$r0', other '$r1')"
R1=$r1
kill -STOP "$r1"
t0=$(date +%s.%N)
set +e; wait "$MPI_PID"; rc=$?; set -e
t1=$(date +%s.%N)
MPI_PID=""
kill -KILL "$r1" 2>/dev/null || true
took=$(echo "$t1 - $t0" | bc)
[ "$rc" -eq 97 ] || { tail b.log; fail "(b) mpirun exit $rc after a rank froze, want 97"; }
grep -q "stretch: watchdog: rank 0 on .*: no progress for" b.log || { tail b.log; fail "(b) no watchdog message from rank 0"; }
# Limit 6 s: not before it (minus the step in flight), within it + 60 s.
echo "$took >= 5 && $took < 66" | bc | grep -q 1 || fail "(b) the job ended $took s after the freeze (limit 6 s)"
echo "(b) rank 1 (pid $r1) frozen: exit 97 after $took s; $(grep 'watchdog: rank' b.log)"
echo "test_watchdog: all checks passed"
