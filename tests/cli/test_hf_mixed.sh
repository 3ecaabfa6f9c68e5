#!/usr/bin/env bash
# LongRoPE2 mixed context windows end to end: a tiny run trains a yarn stage
# and a longrope stage with stages.N.rope.mixed; each exports (stretch export
# --format hf) as rope_type longrope with short_factor, long_factor and
# original_max_position_embeddings; and stretch's own forward of the
# checkpoint (bench_logits: the table evaluation uses at that length) matches
# an independent float64 numpy forward of the exported safetensors + config.json
# under transformers' longrope rules (tests/cli/hf_forward.py) at a length
# within the original context (short factors) and one beyond it (long
# factors), and does NOT match the other window's.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
BIN=$(dirname "$STRETCH")
PY=/usr/bin/python3
$PY -c 'import numpy' 2>/dev/null || fail "$PY cannot import numpy (scripts/setup-debian.sh installs python3-numpy)"
[ -x "$BIN/bench_logits" ] || fail "$BIN/bench_logits is not built"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"

make_text_shard text.shard
cat > mixed.yaml <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [text.shard]}
optimizer: {lr: 1.0e-2, warmup_steps: 2}   # a model whose logits depend on position
train: {seed: 7, out_dir: mixed, log_every: 1, ckpt_every: 100, keep_last: 0}
eval: {passkey_trials: 0}
stages:
  - {name: short, seq_len: 64, steps: 30, batch_tokens: 512}
  - {name: yarn, seq_len: 256, steps: 2, batch_tokens: 512, rope: {type: yarn, mixed: true}}
  - name: longrope
    seq_len: 256
    steps: 2
    batch_tokens: 512
    rope: {type: longrope, mixed: true, short_factor: [1.0, 1.1, 1.3, 1.6], long_factor: [1.0, 2.0, 4.0, 8.0]}
YAML
"$STRETCH" train mixed.yaml --dry-run > dry.log
grep -q "stage 1 yarn .*rope longrope .*mixed windows (<= 64: short, beyond: yarn)" dry.log ||
  fail "dry run does not show the mixed yarn stage: $(cat dry.log)"
"$STRETCH" train mixed.yaml > train.log
grep -q "stage 2 'longrope' (3 of 3): .*mixed windows: documents up to 64 tokens short, longrope beyond" train.log ||
  fail "training does not announce mixed windows: $(grep stage train.log)"
CK=$(latest_ckpt mixed)
"$STRETCH" inspect "$CK" | has "mixed context windows: documents up to 64 tokens" || fail "inspect does not show mixed windows"

# Exports: stage 2 (longrope, the checkpoint's own) and stage 1 (yarn, --stage 1)
"$STRETCH" export --ckpt "$CK" --format hf --out hf2 > /dev/null
"$STRETCH" export --ckpt "$CK" --format hf --out hf1 --stage 1 > /dev/null
$PY - hf1/config.json hf2/config.json <<'PY' || fail "config.json is not the longrope form transformers reads"
import json, math, sys
yarn, lr = (json.load(open(p)) for p in sys.argv[1:])
for c in (yarn, lr):
    r = c["rope_scaling"]
    assert r["rope_type"] == "longrope", r
    assert r["original_max_position_embeddings"] == 64 and c["original_max_position_embeddings"] == 64, c
    assert c["max_position_embeddings"] == 256 and r["factor"] == 4.0, c
    assert len(r["short_factor"]) == len(r["long_factor"]) == 4, r
# yarn: the original RoPE up to 64 tokens, yarn's attention factor 0.1 ln 4 + 1 for both windows
assert yarn["rope_scaling"]["short_factor"] == [1.0] * 4, yarn
assert abs(yarn["rope_scaling"]["attention_factor"] - (0.1 * math.log(4) + 1)) < 1e-12, yarn
assert yarn["rope_scaling"]["long_factor"][0] == 1.0 and yarn["rope_scaling"]["long_factor"][3] > 3.0, yarn
# longrope: the run file's factors; attention factor derived by transformers (not written)
assert lr["rope_scaling"]["short_factor"] == [1.0, 1.1, 1.3, 1.6], lr
assert lr["rope_scaling"]["long_factor"] == [1.0, 2.0, 4.0, 8.0], lr
assert "attention_factor" not in lr["rope_scaling"], lr
PY

# Token ids of the text shard (its header: STRSHARD, width at byte 12, token offset at 40)
ids() {
  $PY - text.shard "$1" "$2" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"STRSHARD"
width = int.from_bytes(b[12:16], "little")
vocab, n_tokens, n_docs, tokens_at = struct.unpack_from("<4Q", b, 16)
n = int(sys.argv[2])
assert 1000 + n <= n_tokens
fmt = {2: "<H", 4: "<I"}[width]
ids = [struct.unpack_from(fmt, b, tokens_at + width * (1000 + i))[0] for i in range(n)]
open(sys.argv[3], "wb").write(struct.pack(f"<{n}i", *ids))
PY
}
for n in 48 200; do
  ids $n ids$n.bin
  for s in 1 2; do
    "$BIN/bench_logits" --ckpt "$CK" --stage $s --tokens ids$n.bin --out logits$s-$n.bin > bench$s-$n.log
    out=$($PY "$SRC/tests/cli/hf_forward.py" hf$s ids$n.bin logits$s-$n.bin) || fail "stage $s, $n tokens: $out"
    echo "stage $s: $out"
  done
done
echo "test_hf_mixed: all checks passed"
