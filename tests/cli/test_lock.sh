#!/usr/bin/env bash
# One run per out_dir, and HDF5 file locking (trainer/train_outdir.h):
#  (a) a second run on the out_dir of a running one exits 2 with one line
#      naming the holder; the first is unharmed (stopped with SIGUSR1: 99);
#  (b) a stale lock (same host, a dead pid) is taken over with a warning;
#  (c) a lock of this very Slurm job (requeued) is taken over;
#  (d) a lock of another host and job is refused (exit 2);
#  (e) train.hdf5_file_locking: with another process holding an exclusive
#      flock on the checkpoint, a resume with locking on cannot open it and
#      fails (exit 2, before any step); with it off it resumes; auto follows
#      HDF5_USE_FILE_LOCKING=FALSE;
#  (f) a bad value is one line naming the key, exit 2;
#  (g) a leftover ckpt-*.h5.tmp of an earlier run is removed at start under
#      the lock (publishing never deletes another writer's .tmp: test_ckpt).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d)
PIDS=()
cleanup() { local p; for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
make_text_shard text.shard
cat > run.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [text.shard]}
optimizer: {lr: 3.0e-3, warmup_steps: 5}
train: {seed: 7, out_dir: out, log_every: 1, ckpt_every: 0, keep_last: 0}
eval: {passkey_trials: 0}
stages:
  - {name: short, seq_len: 64, steps: 100000, batch_tokens: 512}
YAML
host=$(hostname)

# --- (a) a second run on a running run's out_dir
"$STRETCH" train run.yaml > a1.log 2>&1 &
p1=$!; PIDS+=("$p1")
for _ in $(seq 1 1200); do grep -q '"event":"step"' out/metrics.jsonl 2>/dev/null && break; sleep 0.1; done
grep -q "^host $host pid $p1 job -\$" out/stretch.lock || fail "(a) lock: '$(cat out/stretch.lock)'"
expect_exit 2 "$STRETCH" train run.yaml --max-steps 1
[ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] || fail "(a) want one line, got: $ERR"
case $ERR in *"train.out_dir out is in use by another run (host $host pid $p1 job -"*) ;; *) fail "(a) message: $ERR" ;; esac
kill -USR1 "$p1"
set +e; wait "$p1"; rc=$?; set -e
[ "$rc" -eq 99 ] || fail "(a) the first run exited $rc, want 99"
[ ! -e out/stretch.lock ] || fail "(a) the lock was not released at exit"
echo "(a) refused: $ERR"

# --- (b) stale: same host, dead pid
sed -i 's/steps: 100000/steps: 100/' run.yaml
rm -rf out; mkdir out
sh -c 'exit 0' & dead=$!; wait "$dead"
echo "host $host pid $dead job -" > out/stretch.lock
"$STRETCH" train run.yaml --max-steps 2 > b.log 2>&1 || { tail b.log; fail "(b) a stale lock was not taken over"; }
grep -q "warning: taking over the stale lock out/stretch.lock (host $host pid $dead job -: its process is gone)" b.log ||
  fail "(b) no takeover warning"
echo "(b) stale lock taken over"

# --- (b2) stale: the owner died but is an unreaped zombie (a container whose
# pid 1 never reaps; kill(pid, 0) still succeeds on it). The parent execs into
# sleep, so nobody waits for the child when it exits.
rm -rf out; mkdir out
sh -c 'sleep 0.2 & echo $! > zpid; exec sleep 30' &
zparent=$!; PIDS+=("$zparent")
for _ in $(seq 1 200); do [ -s zpid ] && grep -q '^State:.Z' "/proc/$(cat zpid)/status" 2>/dev/null && break; sleep 0.05; done
zombie=$(cat zpid)
grep -q '^State:.Z' "/proc/$zombie/status" || fail "(b2) no zombie to test with"
echo "host $host pid $zombie job -" > out/stretch.lock
"$STRETCH" train run.yaml --max-steps 2 > b2.log 2>&1 || { tail b2.log; fail "(b2) a zombie's lock was not taken over"; }
grep -q "taking over the stale lock out/stretch.lock (host $host pid $zombie job -: its process is gone)" b2.log ||
  fail "(b2) no takeover warning"
kill "$zparent" 2>/dev/null || true
echo "(b2) a zombie owner's lock taken over"

# --- (c) the same Slurm job (requeued), from another host
rm -rf out; mkdir out
echo "host node-17 pid 1 job 9001" > out/stretch.lock
SLURM_JOB_ID=9001 "$STRETCH" train run.yaml --max-steps 2 > c.log 2>&1 || { tail c.log; fail "(c) the requeued job's own lock was refused"; }
grep -q "an earlier run of this Slurm job (requeued)" c.log || fail "(c) no takeover warning"
echo "(c) the job's own lock taken over"

# --- (d) another host, another job
rm -rf out; mkdir out
echo "host node-17 pid 1 job 9001" > out/stretch.lock
SLURM_JOB_ID=9002 expect_exit 2 "$STRETCH" train run.yaml --max-steps 2
case $ERR in *"in use by another run (host node-17 pid 1 job 9001"*) ;; *) fail "(d) message: $ERR" ;; esac
echo "(d) refused: $ERR"

# --- (e) HDF5 file locking
rm -rf out
"$STRETCH" train run.yaml --max-steps 2 > e0.log 2>&1 || fail "(e) the first run failed"
ck=$(latest_ckpt out)
# (the holder execs into sleep: its pid is the one to kill)
( flock -x 9 && exec sleep 300 ) 9<"$ck" &
PIDS+=($!)
for _ in $(seq 1 300); do flock -n -x "$ck" true 2>/dev/null || break; sleep 0.1; done
! flock -n -x "$ck" true || fail "(e) the helper did not take the flock"
set +e; "$STRETCH" train run.yaml --max-steps 3 --train.hdf5_file_locking on > e1.log 2>&1; rc=$?; set -e
[ "$rc" -ne 0 ] || fail "(e) resume with locking on opened an flock-ed file"
grep -q "HDF5 file locking on (train.hdf5_file_locking)" e1.log || fail "(e) locking on not reported"
grep -q '"step":3' out/metrics.jsonl && fail "(e) a step ran although the resume failed"
"$STRETCH" train run.yaml --max-steps 3 --train.hdf5_file_locking off > e2.log 2>&1 || { tail e2.log; fail "(e) resume with locking off failed"; }
grep -q "resumed from $ck" e2.log || fail "(e) did not resume from $ck"
grep -q "HDF5 file locking off (train.hdf5_file_locking)" e2.log || fail "(e) locking off not reported"
HDF5_USE_FILE_LOCKING=FALSE "$STRETCH" train run.yaml --max-steps 4 > e3.log 2>&1 || fail "(e) auto with HDF5_USE_FILE_LOCKING=FALSE failed"
grep -q "HDF5 file locking off (HDF5_USE_FILE_LOCKING=FALSE)" e3.log || fail "(e) the environment was not honoured"
echo "(e) locking on: $(grep "error" e1.log | head -1)"
echo "(e) flock-ed checkpoint: locking on fails (exit $rc), off resumes, auto honours HDF5_USE_FILE_LOCKING"

# --- (f) a bad value
expect_exit 2 "$STRETCH" train run.yaml --train.hdf5_file_locking maybe
[ "$(printf '%s\n' "$ERR" | wc -l)" -eq 1 ] || fail "(f) want one line, got: $ERR"
case $ERR in *train.hdf5_file_locking*maybe*) ;; *) fail "(f) message: $ERR" ;; esac

# --- (g) an earlier run's leftover .tmp goes at start
echo torn > out/ckpt-00000099.h5.tmp
"$STRETCH" train run.yaml --max-steps 5 > g.log 2>&1 || fail "(g) run failed"
[ ! -e out/ckpt-00000099.h5.tmp ] || fail "(g) the leftover .tmp stayed"
echo "test_lock: all checks passed"
