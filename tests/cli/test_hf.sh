#!/usr/bin/env bash
# stretch export / import: a tiny trained model leaves as a Hugging Face
# directory (model.safetensors + config.json with the final stage's
# rope_scaling) and comes back through import with bit-identical parameters;
# an interleaved-layout model is exported with q/k permuted to HF's half
# layout (its logits are checked in tests/unit/test_hfio.c) and its export
# round-trips byte for byte; training starts from an imported checkpoint
# (model.init); bad input exits 2 naming the file and the tensor.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
SHORT=(--eval.passkey_trials 0 --stages.0.steps 6 --stages.1.steps 4)

make_text_shard text.shard

# --- a half-layout run (yarn in its last stage): export, import, compare
write_tiny_run half text.shard
"$STRETCH" train half.yaml "${SHORT[@]}" > half.log
CK=$(latest_ckpt half)
"$STRETCH" export --ckpt "$CK" --format hf --out hf1 > export1.log
for f in model.safetensors config.json generation_config.json; do [ -s hf1/$f ] || fail "hf1/$f missing"; done
grep -q '"rope_type":[[:space:]]*"yarn"' hf1/config.json || fail "no yarn rope_scaling: $(cat hf1/config.json)"
grep -q '"max_position_embeddings":[[:space:]]*128,' hf1/config.json || fail "max_position_embeddings is not the last stage's"
grep -q '"original_max_position_embeddings":[[:space:]]*64' hf1/config.json || fail "original context not 64"
grep -q '"architectures":[[:space:]]*\["LlamaForCausalLM"\]' hf1/config.json || fail "architectures missing"
ls hf1 | has tmp && fail "temporary files left in hf1"
"$STRETCH" import --hf hf1 --out imported.h5 > import1.log
grep -q "model: {init: imported.h5, dim: 32, n_layers: 2" import1.log || fail "no run-file keys printed: $(cat import1.log)"
same_params "$CK" imported.h5
"$STRETCH" inspect imported.h5 --all | has "model_config" || fail "inspect does not show model_config"
# an imported checkpoint (no run config) evaluates with the RoPE of its
# config.json: the same perplexity as the run's own checkpoint
expect_exit 2 "$STRETCH" eval ppl --ckpt imported.h5 --data text.shard --lengths 128 --out ev_imp
echo "$ERR" | has -- "--tokenizer" || fail "eval of an imported checkpoint without --tokenizer: $ERR"
"$STRETCH" eval ppl --ckpt "$CK" --data text.shard --lengths 128 --windows 2 --out ev_run > /dev/null
"$STRETCH" eval ppl --ckpt imported.h5 --tokenizer byte --data text.shard --lengths 128 --windows 2 \
  --out ev_imp > /dev/null
[ "$(cut -d, -f2- ev_run/ppl.csv)" = "$(cut -d, -f2- ev_imp/ppl.csv)" ] ||
  fail "imported checkpoint evaluates differently: $(cat ev_run/ppl.csv ev_imp/ppl.csv)"
# the import exports to the same bytes
"$STRETCH" export --ckpt imported.h5 --format hf --out hf2 > /dev/null
cmp hf1/model.safetensors hf2/model.safetensors || fail "re-export of the import differs"
cmp hf1/config.json hf2/config.json || fail "re-exported config.json differs"

# --- --yarn-v4: the form transformers 4.4x reads too (max = the original context)
"$STRETCH" export --ckpt "$CK" --format hf --out hf4 --yarn-v4 > /dev/null
grep -q '"max_position_embeddings":[[:space:]]*64,' hf4/config.json || fail "--yarn-v4: max_position_embeddings not 64"
grep -q original_max_position_embeddings hf4/config.json && fail "--yarn-v4: original_max_position_embeddings written"
grep -q '"factor":[[:space:]]*2.0' hf4/config.json || fail "--yarn-v4: factor not 2.0"
cmp hf1/model.safetensors hf4/model.safetensors || fail "--yarn-v4 changed the tensors"

# --- bf16 export: half the bytes, parameters within bf16 rounding
"$STRETCH" export --ckpt "$CK" --format hf --out hf16 --dtype bfloat16 > /dev/null
grep -q '"torch_dtype":[[:space:]]*"bfloat16"' hf16/config.json || fail "torch_dtype not bfloat16"
s32=$(stat -c %s hf1/model.safetensors); s16=$(stat -c %s hf16/model.safetensors)
[ $((s16 * 2)) -lt $((s32 + 4096)) ] || fail "bf16 file is not half the size ($s16 vs $s32)"
"$STRETCH" import --hf hf16 --out imported16.h5 > /dev/null
same_params "$CK" imported16.h5 0.004
h5diff "$CK" imported16.h5 /params /params > /dev/null && fail "bf16 import is bit-identical to fp32 (not rounded?)"

# --- training starts from the imported checkpoint (model.init): its first
# loss is far below a fresh model's
write_tiny_run init text.shard
sed -i "s|^model: {|model: {init: imported.h5, |" init.yaml
"$STRETCH" train init.yaml "${SHORT[@]}" --max-steps 1 > init.log
a=$(first_loss half/metrics.jsonl); b=$(first_loss init/metrics.jsonl)
awk -v a="$a" -v b="$b" 'BEGIN { exit !(b < a - 0.3) }' || fail "model.init did not load the import: $a vs $b"

# --- interleaved layout with longrope + n_hat in the last stage
write_tiny_run inter text.shard
"$STRETCH" train inter.yaml "${SHORT[@]}" --model.rope_layout interleaved --stages.1.rope.type longrope \
  --stages.1.rope.short_factor 1,1,1,1 --stages.1.rope.long_factor 1,2,4,8 --stages.1.rope.n_hat 16 > inter.log
CKI=$(latest_ckpt inter)
"$STRETCH" export --ckpt "$CKI" --format hf --out hfi > exporti.log 2> exporti.err
grep -q "n_hat (16)" exporti.err || fail "no n_hat warning: $(cat exporti.err)"
[ "$(wc -l < exporti.err)" -eq 1 ] || fail "expected one warning line: $(cat exporti.err)"
grep -q "permuted to the half layout" exporti.log || fail "permutation not reported"
grep -q '"rope_type":[[:space:]]*"longrope"' hfi/config.json || fail "no longrope rope_scaling"
grep -q '^  "original_max_position_embeddings": 64,' hfi/config.json || fail "no top-level original"
grep -q n_hat hfi/config.json && fail "n_hat written to config.json"
"$STRETCH" import --hf hfi --out importedi.h5 > /dev/null
P=/params/model.layers.1.self_attn
h5diff "$CKI" importedi.h5 $P.v_proj.weight $P.v_proj.weight > /dev/null || fail "v_proj changed"
h5diff "$CKI" importedi.h5 $P.q_proj.weight $P.q_proj.weight > /dev/null && fail "q_proj not permuted"
h5diff "$CKI" importedi.h5 $P.k_proj.weight $P.k_proj.weight > /dev/null && fail "k_proj not permuted"
"$STRETCH" export --ckpt importedi.h5 --format hf --out hfi2 > /dev/null
cmp hfi/model.safetensors hfi2/model.safetensors || fail "interleaved export does not round-trip"

# --- stage boundary: a checkpoint at step 0 of stage 1 exports stage 0's rope
"$STRETCH" export --ckpt half/ckpt-00000006.h5 --format hf --out hfb > hfb.log
grep -q "(stage 0)" hfb.log || fail "boundary checkpoint not exported with stage 0: $(cat hfb.log)"
grep -q '"rope_scaling":[[:space:]]*null' hfb/config.json || fail "stage 0 has no rope scaling"
"$STRETCH" export --ckpt half/ckpt-00000006.h5 --format hf --out hfb1 --stage 1 > /dev/null
grep -q '"rope_type":[[:space:]]*"yarn"' hfb1/config.json || fail "--stage 1 not honoured"

# --- user errors: exit 2, one line naming the file / tensor
expect_exit 2 "$STRETCH" export --ckpt "$CK" --format onnx --out x
echo "$ERR" | has "format must be hf" || fail "bad format not named: $ERR"
expect_exit 2 "$STRETCH" export --ckpt missing.h5 --format hf --out x
echo "$ERR" | has "missing.h5" || fail "missing checkpoint not named: $ERR"
expect_exit 2 "$STRETCH" export --ckpt "$CK" --format hf --out x --stage 5
echo "$ERR" | has "stage 5 does not exist" || fail "bad stage not named: $ERR"
expect_exit 2 "$STRETCH" import --hf nowhere --out x.h5
echo "$ERR" | has "nowhere/config.json" || fail "missing config.json not named: $ERR"
expect_exit 2 "$STRETCH" import --hf hf1
cp -r hf1 bad
truncate -s -100 bad/model.safetensors
expect_exit 2 "$STRETCH" import --hf bad --out bad.h5
echo "$ERR" | has "bad/model.safetensors: tensor lm_head.weight" || fail "truncated tensor not named: $ERR"
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"
[ ! -e bad.h5 ] || fail "a failed import left bad.h5"
cp hf1/model.safetensors bad/
sed -i 's/"hidden_size":[[:space:]]*32/"hidden_size": 48/' bad/config.json
expect_exit 2 "$STRETCH" import --hf bad --out bad.h5
echo "$ERR" | has "tensor model.embed_tokens.weight has shape \[259, 32\], expected \[259, 48\]" \
  || fail "wrong shape not named: $ERR"
echo "test_hf: all checks passed"
