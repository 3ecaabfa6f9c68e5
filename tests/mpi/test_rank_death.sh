#!/usr/bin/env bash
# Runs test_rank_death under mpirun once per way of dying: mpirun must exit
# non-zero within 10 s each time (a hang is killed by timeout at 20 s and
# fails the test); die() must have printed its "[rank r] file:line:" line.
# Usage: test_rank_death.sh PROGRAM RANKS MPIEXEC NUMPROC_FLAG
set -u
prog=$1 np=$2 mpiexec=$3 npflag=$4
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail=0
for how in kill abort exit die; do
    start=$(date +%s.%N)
    timeout 20 "$mpiexec" "$npflag" "$np" --oversubscribe --bind-to none "$prog" "$how" >"$out" 2>&1
    rc=$?
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    ok=1
    [ "$rc" -ne 0 ] || { echo "FAIL ($how): mpirun exited 0"; ok=0; }
    [ "$rc" -ne 124 ] || { echo "FAIL ($how): job still running after 20 s (hang)"; ok=0; }
    (( $(echo "$elapsed < 10" | bc) )) || { echo "FAIL ($how): took ${elapsed}s (want < 10 s)"; ok=0; }
    grep -qxF "[rank dying] going down by $how" "$out" \
        || { echo "FAIL ($how): the victim never reached the point of dying"; ok=0; }
    if grep -q "still running after" "$out"; then echo "FAIL ($how): a rank went on"; ok=0; fi
    if [ "$how" = die ]; then
        grep -qE "^\[rank $((np - 1))\] .*test_rank_death\.c:[0-9]+: simulated failure \(die\)$" "$out" \
            || { echo "FAIL (die): no '[rank $((np - 1))] file:line: message' line"; ok=0; }
    fi
    [ $ok -eq 1 ] || { cat "$out"; fail=1; }
    echo "rank_death np=$np $how: mpirun exit $rc after ${elapsed}s: $([ $ok -eq 1 ] && echo PASS || echo FAIL)"
done
exit $fail
