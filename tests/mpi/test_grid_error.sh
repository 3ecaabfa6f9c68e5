#!/usr/bin/env bash
# Runs test_grid_error under mpirun: expects exit status 2, the one-line error
# printed once by every rank, and all of it within a few seconds.
# Usage: test_grid_error.sh PROGRAM RANKS MPIEXEC NUMPROC_FLAG
set -u
prog=$1 np=$2 mpiexec=$3 npflag=$4
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
timeout 25 "$mpiexec" "$npflag" "$np" --oversubscribe --bind-to none "$prog" >"$out" 2>&1
rc=$?
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
cat "$out"
want="stretch: error: parallel.dp (2) x parallel.sp (3) = 6 but mpirun started $np rank"
[ "$np" -eq 1 ] || want="${want}s"
lines=$(grep -cxF "$want" "$out")
fail=0
[ "$rc" -eq 2 ] || { echo "FAIL: exit status $rc, want 2"; fail=1; }
[ "$lines" -eq "$np" ] || { echo "FAIL: '$want' printed $lines times, want $np (once per rank)"; fail=1; }
(( $(echo "$elapsed < 15" | bc) )) || { echo "FAIL: took ${elapsed}s (want < 15 s)"; fail=1; }
echo "grid_error np=$np: exit $rc, $lines error lines, ${elapsed}s: $([ $fail -eq 0 ] && echo PASS || echo FAIL)"
exit $fail
