#!/usr/bin/env bash
# stretch report: a tiny two-stage run with passkey evals and a ppl.csv gives
# one self-contained HTML page (no scripts, nothing fetched) with the step
# charts, their stage marks and the heatmaps; re-running it while a line is
# half-written works; a directory that is not a run, a missing directory and
# a bad option exit 2 with one line. (Rendering in Chromium:
# tests/render/report_screenshot.sh.)
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"

make_text_shard text.shard
write_tiny_run run text.shard
"$STRETCH" train run.yaml --eval.passkey_trials 1 --stages.0.steps 4 --stages.1.steps 3 > train.log
CK=$(latest_ckpt run)
"$STRETCH" eval ppl --ckpt "$CK" --data text.shard --lengths 64,128 --windows 1 --out run/eval > /dev/null

"$STRETCH" report run > report.log
grep -q "wrote run/report.html" report.log || fail "$(cat report.log)"
H=run/report.html
grep -q "<!DOCTYPE html>" $H || fail "not HTML"
grep -q "<script" $H && fail "the page holds a script"
grep -Eq "(src|href)=" $H && fail "the page links something"
[ "$(grep -o 'class="mark"' $H | wc -l)" -eq 8 ] || fail "expected 2 stage marks on 4 charts"
grep -q "long: yarn x2" $H || fail "no yarn mark"
# passkey: 2 evaluations x 2 lengths (64, 128) in the summary, + 2 x (1 depth x 2 lengths)
[ "$(grep -o 'class="cell"' $H | wc -l)" -eq 8 ] || fail "passkey cells: $(grep -o 'class="cell"' $H | wc -l)"
grep -q "Perplexity vs length (eval/ppl.csv)" $H || fail "no ppl chart"
grep -q "Memory per rank" $H || fail "no memory table"
ls run | has tmp && fail "temporary file left"

# a run in progress: a half-written last line is skipped and said so
printf '{"event":"step","step":99,"sta' >> run/metrics.jsonl
"$STRETCH" report run --out live.html > /dev/null
grep -q "partial last line" live.html || fail "partial line not reported"

# not a run
mkdir empty
expect_exit 2 "$STRETCH" report empty
echo "$ERR" | has "report: empty is not a run directory (no metrics.jsonl or config.yaml)" || fail "$ERR"
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "expected one line: $ERR"
[ -e empty/report.html ] && fail "report written for a non-run"
expect_exit 2 "$STRETCH" report missing
echo "$ERR" | has "missing is not a directory" || fail "$ERR"
expect_exit 2 "$STRETCH" report run --bogus
expect_exit 2 "$STRETCH" report
echo OK
