#!/usr/bin/env bash
# stretch export --format gguf: a tiny trained model leaves as a llama.cpp
# GGUF with the exported stage's RoPE and comes back through import --gguf
# with bit-identical parameters (F32) or within BF16 rounding; Q8_0 is a
# quarter-size file that imports; a stage whose RoPE llama.cpp cannot
# express (LongRoPE n_hat) and bad options exit 2 with one line, writing
# nothing. (llama.cpp's own logits: bench/gguf_llamacpp_check.py.)
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"

make_text_shard text.shard
write_tiny_run run text.shard
# a third stage with LongRoPE + n_hat: exportable to HF (with a warning), not to GGUF
cat >> run.yaml <<YAML
  - {name: longer, seq_len: 128, steps: 4, batch_tokens: 512, rope: {type: longrope, short_factor: [1, 1, 1, 1],
     long_factor: [1, 2, 4, 8], n_hat: 16, max_position_embeddings: 256, original_max_position_embeddings: 64}}
YAML
"$STRETCH" train run.yaml --eval.passkey_trials 0 --stages.0.steps 6 --stages.1.steps 4 --max-steps 10 > train.log
CK=$(latest_ckpt run)

# --- F32, the yarn stage: import gives the same parameters and RoPE
"$STRETCH" export --ckpt "$CK" --format gguf --stage 1 --out m.gguf > export.log
grep -q "rope yarn, context_length 128, tokenizer byte, q/k rows permuted" export.log || fail "$(cat export.log)"
grep -qa "llama.rope.scaling.original_context_length" m.gguf || fail "no original_context_length key"
grep -qa "tokenizer.ggml.tokens" m.gguf || fail "no tokenizer"
ls | has tmp && fail "temporary file left: $(ls)"
"$STRETCH" import --gguf m.gguf --out imp.h5 > import.log
grep -q "yarn" import.log || fail "import did not read yarn: $(cat import.log)"
same_params "$CK" imp.h5
# an imported GGUF checkpoint re-exports with the tokenizer of the file it came from
"$STRETCH" export --ckpt imp.h5 --format gguf --out m2.gguf > export2.log
grep -q "tokenizer m.gguf" export2.log || fail "re-export tokenizer: $(cat export2.log)"
"$STRETCH" import --gguf m2.gguf --out imp2.h5 > /dev/null
same_params "$CK" imp2.h5

# --- stage 0 (no scaling) and BF16 / Q8_0
"$STRETCH" export --ckpt "$CK" --format gguf --stage 0 --type bf16 --out b.gguf > /dev/null
"$STRETCH" import --gguf b.gguf --out impb.h5 > /dev/null
same_params "$CK" impb.h5 0.004
h5diff "$CK" impb.h5 /params /params > /dev/null && fail "bf16 import is bit-identical (not rounded?)"
"$STRETCH" export --ckpt "$CK" --format gguf --stage 1 --type q8_0 --out q.gguf > /dev/null
"$STRETCH" import --gguf q.gguf --out impq.h5 > /dev/null
s32=$(stat -c %s m.gguf); s8=$(stat -c %s q.gguf)
[ $((s8 * 3)) -lt "$s32" ] || fail "q8_0 file is not about a quarter of f32 ($s8 vs $s32)"

# --- refusals: one line, exit 2, nothing written
expect_exit 2 "$STRETCH" export --ckpt "$CK" --format gguf --stage 2 --out bad.gguf
echo "$ERR" | has "n_hat (16) cannot be expressed in GGUF" || fail "n_hat refusal: $ERR"
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "expected one line: $ERR"
[ -e bad.gguf ] && fail "bad.gguf written"
expect_exit 2 "$STRETCH" export --ckpt "$CK" --format gguf --type q4_0 --out bad.gguf
echo "$ERR" | has -- "--type must be f32, f16, bf16 or q8_0" || fail "bad type: $ERR"
expect_exit 2 "$STRETCH" export --ckpt "$CK" --format gguf --dtype bfloat16 --out bad.gguf
expect_exit 2 "$STRETCH" export --ckpt "$CK" --format gguf --tokenizer nope.json --out bad.gguf
echo "$ERR" | has "nope.json" || fail "bad tokenizer: $ERR"
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "expected one line: $ERR"
[ -e bad.gguf ] && fail "bad.gguf written"
ls | has tmp && fail "temporary file left: $(ls)"
echo OK
