#!/usr/bin/env bash
# Every command that takes a checkpoint path (inspect, eval, export, search,
# model.init) also takes a run directory or its "latest" file, and uses the
# checkpoint "latest" names (ckpt_dir_resolve); a directory with no
# checkpoint, a latest that names nothing usable: exit 2, one line naming it.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"

make_text_shard text.shard
write_tiny_run run text.shard
"$STRETCH" train run.yaml --eval.passkey_trials 0 --stages.0.steps 6 --stages.1.steps 4 > train.log
CK=$(latest_ckpt run)
[ "$CK" = run/ckpt-00000010.h5 ] || fail "unexpected latest checkpoint $CK"

# inspect: the same summary for the file, the directory (with or without /) and latest
"$STRETCH" inspect "$CK" > want.txt
head -1 want.txt | has "checkpoint run/ckpt-00000010.h5" || fail "inspect header: $(head -1 want.txt)"
for p in run run/ "$PWD/run" run/latest; do
  "$STRETCH" inspect "$p" > got.txt || fail "inspect $p failed"
  sed 1d want.txt > a.txt; sed 1d got.txt > b.txt
  cmp -s a.txt b.txt || fail "inspect $p differs from inspect $CK: $(diff a.txt b.txt)"
  head -1 got.txt | has "ckpt-00000010.h5" || fail "inspect $p does not name the checkpoint: $(head -1 got.txt)"
done
(cd run && "$STRETCH" inspect latest | has "checkpoint ./ckpt-00000010.h5") || fail "inspect latest (bare) failed"

# export: the same files from the directory as from the checkpoint
"$STRETCH" export --ckpt "$CK" --format hf --out hf_file > /dev/null
"$STRETCH" export --ckpt run --format hf --out hf_dir > export.log
grep -q "exported run/ckpt-00000010.h5 (stage 1)" export.log || fail "export does not name the checkpoint: $(cat export.log)"
cmp hf_file/model.safetensors hf_dir/model.safetensors || fail "export of the directory differs"
cmp hf_file/config.json hf_dir/config.json || fail "export config of the directory differs"
"$STRETCH" export --ckpt run/latest --format gguf --out m.gguf > /dev/null || fail "gguf export of latest failed"

# eval: the same perplexity from latest as from the file
"$STRETCH" eval ppl --ckpt "$CK" --data text.shard --lengths 64 --windows 2 --out ev_file > /dev/null
"$STRETCH" eval ppl --ckpt run/latest --data text.shard --lengths 64 --windows 2 --out ev_latest > /dev/null
[ "$(cat ev_file/ppl.csv)" = "$(cat ev_latest/ppl.csv)" ] ||
  fail "eval ppl of latest differs: $(cat ev_file/ppl.csv ev_latest/ppl.csv)"
"$STRETCH" eval passkey --ckpt run --lengths 64 --trials 1 --depths 0.5 --out ev_pk > /dev/null ||
  fail "eval passkey of the run directory failed"

# model.init: a run directory
write_tiny_run init text.shard
sed -i "s|^model: {|model: {init: run, |" init.yaml
"$STRETCH" train init.yaml --eval.passkey_trials 0 --max-steps 1 > init.log || fail "model.init: run failed"
a=$(first_loss run/metrics.jsonl); b=$(first_loss init/metrics.jsonl)
awk -v a="$a" -v b="$b" 'BEGIN { exit !(b < a - 0.3) }' || fail "model.init: run did not load its weights: $a vs $b"

# A directory without latest: its newest checkpoint
mkdir nolatest && cp run/ckpt-00000006.h5 run/ckpt-00000010.h5 nolatest/
"$STRETCH" inspect nolatest | head -1 | has "nolatest/ckpt-00000010.h5" || fail "no latest: not the newest checkpoint"

# Errors: exit 2, one line naming the directory or pointer
mkdir empty
expect_exit 2 "$STRETCH" inspect empty
echo "$ERR" | has "inspect: empty: no checkpoint in this directory (no 'latest' file, no ckpt-\*.h5)" ||
  fail "inspect of an empty directory: $ERR"
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"
expect_exit 2 "$STRETCH" export --ckpt empty --format hf --out x
echo "$ERR" | has "export: --ckpt empty: no checkpoint in this directory" || fail "export of an empty directory: $ERR"
expect_exit 2 "$STRETCH" eval ppl --ckpt empty --data text.shard --lengths 64 --out x
echo "$ERR" | has "eval ppl: --ckpt empty: no checkpoint in this directory" || fail "eval of an empty directory: $ERR"
expect_exit 2 "$STRETCH" search --ckpt empty --target-len 128 --data text.shard --out f.yaml
echo "$ERR" | has "search: --ckpt empty: no checkpoint in this directory" || fail "search of an empty directory: $ERR"
mkdir stale && echo ckpt-00000099.h5 > stale/latest
expect_exit 2 "$STRETCH" inspect stale/latest
echo "$ERR" | has "stale/latest names ckpt-00000099.h5, which cannot be opened" || fail "stale latest: $ERR"
echo "hello" > stale/latest
expect_exit 2 "$STRETCH" eval ppl --ckpt stale --data text.shard --lengths 64 --out x
echo "$ERR" | has "stale/latest does not name a checkpoint" || fail "bad latest: $ERR"
write_tiny_run bad text.shard
sed -i "s|^model: {|model: {init: empty, |" bad.yaml
expect_exit 2 "$STRETCH" train bad.yaml --max-steps 1
echo "$ERR" | has "empty: no checkpoint in this directory" || fail "model.init of an empty directory: $ERR"
# a missing path keeps the open's own message
expect_exit 2 "$STRETCH" inspect nowhere.h5
echo "$ERR" | has "nowhere.h5" || fail "missing checkpoint not named: $ERR"
echo "test_ckpt_paths: all checks passed"
