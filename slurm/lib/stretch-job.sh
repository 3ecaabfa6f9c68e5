# stretch-job.sh: the stop and requeue policy of the batch templates
# (slurm/stretch.sbatch, slurm/stretch-cpu.sbatch source it; docs/slurm.md).
#
#   stretch_job_run LAUNCHER... -- STRETCH train RUN.yaml [options]
#
# runs the trainer in the background, forwards stop signals to it, and when
# it is gone decides the job's fate from the trainer's committed-stop marker
# (out_dir/stop.json, copied to $STRETCH_STOP_MARKER), never from the
# launcher's exit status (srun reports 137 when a rank is killed in its
# teardown after a good save):
#   SIGUSR1 (--signal=B:USR1@LEAD before the time limit, preemption by hand:
#     `scancel -b -s USR1 JOB`), or the trainer's own stop by time:
#     requeue, if the marker exists, its checkpoint step moved since this
#     start (progress) and SLURM_RESTART_COUNT < STRETCH_MAX_RESTARTS;
#   SIGTERM (`scancel -b -s TERM JOB`: stop for good; or a plain `scancel`,
#     which also cancels the job): checkpoint, exit 0, never requeued;
#   no marker (a crash, the watchdog's 97): the trainer's status, no requeue.
# Requeue: exit 99 where slurm.conf's RequeueExit lists 99 (ranges too),
# else `scontrol requeue`; STRETCH_REQUEUE=auto|exit|scontrol|no.
# The script's own exit status: 0 stopped for good or finished, 99 requeue
# (RequeueExit), 1 a stop that must not be requeued (no progress, restart
# limit), else the trainer's.

STRETCH_MAX_RESTARTS=${STRETCH_MAX_RESTARTS:-20}

stretch_log() { printf '=== %s %s\n' "$(date '+%F %T.%3N')" "$*"; }

# True when slurm.conf's RequeueExit (e.g. "90-99,120") contains code $1.
stretch_requeue_exit_has() {
  local want=$1 list item lo hi
  list=$(scontrol show config 2>/dev/null | sed -n 's/^RequeueExit *= *//p')
  IFS=, read -ra items <<< "$list"
  for item in "${items[@]}"; do
    item=${item// /}
    case $item in
      *-*) lo=${item%-*}; hi=${item#*-} ;;
      *) lo=$item; hi=$item ;;
    esac
    [[ $lo =~ ^[0-9]+$ && $hi =~ ^[0-9]+$ ]] || continue
    [ "$want" -ge "$lo" ] && [ "$want" -le "$hi" ] && return 0
  done
  return 1
}

# A field of the one-line JSON marker (numbers, strings, booleans).
stretch_marker_field() { sed -n "s/.*\"$2\": *\"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p" "$1"; }

stretch_job_run() {
  local launch=() pid="" stop="" rc
  while [ $# -gt 0 ] && [ "$1" != -- ]; do launch+=("$1"); shift; done
  shift
  # The trainer stops itself before the end of the job (measured save time
  # + train.stop_margin_s); Slurm sets SLURM_JOB_END_TIME since 21.08, else
  # ask squeue.
  if [ -z "${SLURM_JOB_END_TIME:-}" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    local end
    end=$(squeue -h -j "$SLURM_JOB_ID" -o %e 2>/dev/null | head -1)
    end=$(date -d "$end" +%s 2>/dev/null) && export SLURM_JOB_END_TIME=$end
  fi
  export STRETCH_STOP_MARKER=${STRETCH_STOP_MARKER:-${SLURM_SUBMIT_DIR:-$PWD}/.stretch-stop-${SLURM_JOB_ID:-$$}.json}
  rm -f "$STRETCH_STOP_MARKER"
  # shellcheck disable=SC2317  # called by the traps
  _stretch_on_signal() {
    # USR1 = preempt (requeue); TERM = stop for good. A TERM wins.
    [ "$stop" = TERM ] || stop=$1
    printf '\n'  # the trainer's progress line may not have ended
    stretch_log "SIG$1: asking the trainer to checkpoint and stop ($([ "$1" = TERM ] && echo "for good" || echo "requeue"))"
    [ -n "$pid" ] && kill -USR1 "$pid" 2>/dev/null
  }
  trap '_stretch_on_signal USR1' USR1
  trap '_stretch_on_signal TERM' TERM
  # In the background: bash runs a trap only between commands, and `wait`
  # is the one builtin a signal interrupts.
  "${launch[@]}" "$@" &
  pid=$!
  [ -n "$stop" ] && kill -USR1 "$pid" 2>/dev/null  # a signal before the launch
  # A trapped signal makes `wait` return early (status > 128) while the
  # trainer still runs; wait again until it is gone, then once more for its
  # own status (bash keeps it).
  while wait "$pid"; kill -0 "$pid" 2>/dev/null; do :; done
  wait "$pid"
  rc=$?
  stretch_log "trainer exit status $rc"
  local m=$STRETCH_STOP_MARKER
  if [ ! -s "$m" ]; then
    # No committed stop: nothing to requeue on (a 99 without a marker is not
    # trusted: the save may not be on disk).
    [ "$rc" -eq 99 ] && rc=1
    [ -n "$stop" ] && stretch_log "no stop marker: the trainer saved nothing; not requeued"
    return "$rc"
  fi
  local step progress reason restarts
  step=$(stretch_marker_field "$m" step)
  progress=$(stretch_marker_field "$m" progress)
  reason=$(stretch_marker_field "$m" reason)
  restarts=${SLURM_RESTART_COUNT:-0}
  stretch_log "stop marker: step $step, checkpoint $(stretch_marker_field "$m" checkpoint), reason $reason, progress $progress, restart $restarts"
  if [ "$stop" = TERM ]; then
    stretch_log "stopped for good by SIGTERM at step $step; not requeued"
    return 0
  fi
  if [ "$progress" != true ]; then
    stretch_log "no progress since this start (step $step): not requeued (the time limit is too short for resume + a step + a save)"
    return 1
  fi
  if [ "$restarts" -ge "$STRETCH_MAX_RESTARTS" ]; then
    stretch_log "restart limit reached ($restarts of STRETCH_MAX_RESTARTS=$STRETCH_MAX_RESTARTS): not requeued"
    return 1
  fi
  local how=${STRETCH_REQUEUE:-auto}
  if [ "$how" = auto ]; then
    how=scontrol
    stretch_requeue_exit_has 99 && how=exit
  fi
  case $how in
    exit)
      stretch_log "requeue: exit 99 (RequeueExit)"
      return 99 ;;
    scontrol)
      stretch_log "requeue: scontrol requeue $SLURM_JOB_ID"
      scontrol requeue "$SLURM_JOB_ID"  # ends this script when it works
      stretch_log "scontrol requeue failed (status $?)"
      return 1 ;;
    *)
      stretch_log "not requeued (STRETCH_REQUEUE=$how)"
      return 0 ;;
  esac
}
