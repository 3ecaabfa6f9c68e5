#!/usr/bin/env bash
# Every shipped run file validates, and --dry-run prints the RoPE factors the
# curriculum promises (8 and 32 for 4K -> 32K -> 128K; 8 and 32 for the demo).
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
for f in "$SRC"/schedules/*.yaml; do
  "$STRETCH" train "$f" --dry-run > /dev/null || fail "$f does not validate"
done
out=$("$STRETCH" train "$SRC/schedules/llama-4k-32k-128k.yaml" --dry-run)
echo "$out" | has "seq_len   32768 .*yarn *factor *8 " || fail "32K stage is not YaRN x8: $out"
echo "$out" | has "seq_len  131072 .*yarn *factor *32 " || fail "128K stage is not YaRN x32: $out"
echo "$out" | has "tokens/rank/step 16384" || fail "128K tokens per rank: $out"
# The flagship fits an 80 GB GPU as shipped (issue 17's target: <= 40 GB per rank).
gb=$(echo "$out" | sed -n 's/^  shard parameters, offload none: \([0-9.]*\) GB device.*/\1/p')
[ -n "$gb" ] && awk -v g="$gb" 'BEGIN { exit !(g <= 40) }' ||
  fail "llama-4k-32k-128k.yaml does not plan shard parameters within 40 GB per rank: $out"
out=$("$STRETCH" train "$SRC/schedules/demo-cpu.yaml" --dry-run)
echo "$out" | has "seq_len    4096 .*factor *32 " || fail "demo's last stage is not x32: $out"
echo "test_schedules: all checks passed"
