#!/usr/bin/env bash
# The build enforces the layers of docs/architecture.md: a library sees only
# the headers of the libraries it links. For each probe (a one-line C file
# that includes HEADER, compiled with the include path of LIB's own sources; see
# STRETCH_LAYER_PROBES in CMakeLists.txt) this builds the probe's target and
# checks the outcome: "yes" must compile, "no" must fail because HEADER is
# not found (any other failure is a failure of this test).
# Usage: check.sh BUILD_DIR LIB:HEADER:yes|no ...
set -uo pipefail
build=$1; shift
bad=0
for probe in "$@"; do
  IFS=: read -r lib header want <<<"$probe"
  target="layer_probe_${lib}__${header%.h}"
  out=$(cmake --build "$build" --target "$target" 2>&1); rc=$?
  if [ "$want" = yes ]; then
    if [ $rc -ne 0 ]; then echo "FAIL: $lib should see $header but does not:"; echo "$out" | grep -m3 error; bad=1
    else echo "ok: $lib may include $header"; fi
  else
    if [ $rc -eq 0 ]; then echo "FAIL: $lib can include $header (a layer violation compiles)"; bad=1
    elif ! grep -q "$header: No such file" <<<"$out"; then echo "FAIL: $lib/$header probe failed for another reason:"; echo "$out" | grep -m3 error; bad=1
    else echo "ok: $lib cannot include $header"; fi
  fi
done
exit $bad
