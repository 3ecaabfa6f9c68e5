#!/usr/bin/env bash
# Renders `stretch report` of a run directory in headless Chromium and saves
# a PNG, to look at (not a ctest: scripts/setup-debian.sh does not install
# Chromium; apt-get install chromium). Checks that Chromium rendered a page
# of the expected height without network access, then prints the PNG path.
#
#   tests/render/report_screenshot.sh build/stretch RUN_DIR OUT.png [WIDTH HEIGHT]
set -euo pipefail
STRETCH=$1; RUN=$2; PNG=$3; W=${4:-1280}; H=${5:-4200}
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 77; }
HTML=$(mktemp --suffix=.html)
trap 'rm -f "$HTML"' EXIT
"$STRETCH" report "$RUN" --out "$HTML" > /dev/null
grep -q "<script" "$HTML" && { echo "FAIL: the report holds a script" >&2; exit 1; }
# --no-sandbox: root in a container; no proxy and no network: the page must need nothing outside itself
timeout 300 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --proxy-server="http://127.0.0.1:9" --window-size="$W,$H" --screenshot="$PNG" "file://$HTML" 2>/dev/null
[ -s "$PNG" ] || { echo "FAIL: no screenshot" >&2; exit 1; }
[ "$(head -c 8 "$PNG" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || { echo "FAIL: not a PNG" >&2; exit 1; }
# the PNG's size from its IHDR chunk
w=$((16#$(od -An -tx1 -j16 -N4 "$PNG" | tr -d ' \n'))); h=$((16#$(od -An -tx1 -j20 -N4 "$PNG" | tr -d ' \n')))
[ "$w" -eq "$W" ] && [ "$h" -eq "$H" ] || { echo "FAIL: screenshot is ${w}x${h}, expected ${W}x${H}" >&2; exit 1; }
echo "$PNG (${w}x${h}, $(stat -c %s "$PNG") bytes)"
