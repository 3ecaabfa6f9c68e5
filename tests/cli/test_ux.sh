#!/usr/bin/env bash
# The run as a user lives it (issue 26): CLI conventions (--key=value,
# "did you mean" for a mistyped option, --version, export creating its
# directories and writing the tokenizer, train --help said once, inspect's
# summary first), one stage numbering (0-based) in everything train prints,
# `stretch status`.
STRETCH=$1; SRC=$2
source "$SRC/tests/cli/lib.sh"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cd "$T"
SHORT=(--eval.passkey_trials 0 --stages.0.steps 6 --stages.1.steps 4)
make_text_shard text.shard

# --- (9) --version
"$STRETCH" --version | has -x "stretch [0-9][0-9.]*" || fail "--version: $("$STRETCH" --version)"
"$STRETCH" version | has -x "stretch [0-9][0-9.]*" || fail "stretch version"

# --- (9) a mistyped option is named with the nearest one, not asked for a value
write_tiny_run cli text.shard
expect_exit 2 "$STRETCH" train cli.yaml --dryrun
echo "$ERR" | has "unknown option --dryrun (did you mean --dry-run?)" || fail "--dryrun: $ERR"
expect_exit 2 "$STRETCH" train cli.yaml --max-step 3
echo "$ERR" | has "did you mean --max-steps?" || fail "--max-step: $ERR"
expect_exit 2 "$STRETCH" export --ckpt x.h5 --fromat hf --out d
echo "$ERR" | has "unknown option --fromat (did you mean --format?)" || fail "export --fromat: $ERR"
expect_exit 2 "$STRETCH" eval passkey --ckpt x.h5 --trial 3
echo "$ERR" | has "did you mean --trials?" || fail "eval --trial: $ERR"
expect_exit 2 "$STRETCH" search --ckpt x.h5 --target-length 3
echo "$ERR" | has "did you mean --target-len?" || fail "search --target-length: $ERR"
expect_exit 2 "$STRETCH" tokenize --outt x.shard text.shard
echo "$ERR" | has "did you mean --out?" || fail "tokenize --outt: $ERR"
expect_exit 2 "$STRETCH" import --gguff x.gguf --out y.h5
echo "$ERR" | has "did you mean --gguf?" || fail "import --gguff: $ERR"
expect_exit 2 "$STRETCH" inspect x.h5 --tensor
echo "$ERR" | has "did you mean --tensors?" || fail "inspect --tensor: $ERR"

# --- (9) --key=value everywhere --key value works
"$STRETCH" train cli.yaml --dry-run --optimizer.lr=1e-3 --stages.1.seq_len=256 > dry.log
grep -q "lr 1.00e-03" dry.log || fail "--optimizer.lr=1e-3 not applied: $(cat dry.log)"
grep -qE "stage +1 .*seq_len +256" dry.log || fail "--stages.1.seq_len=256 not applied: $(cat dry.log)"
expect_exit 2 "$STRETCH" train cli.yaml --dry-run --optimizer.lr=abc
echo "$ERR" | has "optimizer.lr" || fail "bad --key=value not named: $ERR"
"$STRETCH" train cli.yaml "${SHORT[@]}" --max-steps=3 --train.out_dir=eqrun > eq.log
grep -q "stopped at step 3" eq.log || fail "--max-steps=3 / --train.out_dir=eqrun: $(tail -3 eq.log)"
[ -d eqrun ] || fail "--train.out_dir=eqrun not applied"

# --- (7, the part of this issue) a warmup longer than its stage is warned about
"$STRETCH" train cli.yaml --dry-run --optimizer.warmup_steps 30 --stages.1.warmup_steps 3 > /dev/null 2> warn.err
grep -q "^stretch: warning: stages.0 (short): warmup_steps 30 exceeds the stage's 24 steps" warn.err ||
  fail "no warmup warning: $(cat warn.err)"
[ "$(wc -l < warn.err)" -eq 1 ] || fail "stage 1 (warmup 3 of 12) warned too: $(cat warn.err)"
"$STRETCH" train cli.yaml --dry-run > /dev/null 2> nowarn.err
[ ! -s nowarn.err ] || fail "warnings for a sane run file: $(cat nowarn.err)"

# --- (9) train --help says its intro once
n=$("$STRETCH" train --help | grep -c "can be overridden on the command line")
[ "$n" -eq 1 ] || fail "train --help says its intro $n times"

# --- a short run shared by the checks below
write_tiny_run run text.shard
"$STRETCH" train run.yaml "${SHORT[@]}" > run.log
CK=$(latest_ckpt run)

# --- (9) inspect: the summary first and short; config and tensors on request
"$STRETCH" inspect "$CK" > insp.log
head -3 insp.log | has "step 10, stage 1 'long' (2 of 2)" || fail "inspect summary: $(head -5 insp.log)"
grep -q "rope: yarn, factor 2" insp.log || fail "inspect: no stage rope: $(cat insp.log)"
grep -q "model: dim 32, 2 layers" insp.log || fail "inspect: no model shape: $(cat insp.log)"
grep -qE "parameters; [0-9]+ tensors, [0-9.]+ MiB" insp.log || fail "inspect: no tensor count/bytes: $(cat insp.log)"
[ "$(wc -l < insp.log)" -le 8 ] || fail "inspect without options prints $(wc -l < insp.log) lines"
grep -q "optimizer:" insp.log && fail "inspect prints the config unasked"
"$STRETCH" inspect "$CK" --config > insp_c.log
grep -q "^optimizer:" insp_c.log || fail "inspect --config: no run config"
"$STRETCH" inspect "$CK" --tensors > insp_t.log
grep -q "/params/model.embed_tokens.weight  float32 (259, 32)" insp_t.log || fail "inspect --tensors: no tensor list"
"$STRETCH" inspect "$CK" --all > insp_a.log
grep -q "@step = 10" insp_a.log || fail "inspect --all: no full dump"

# --- (9) export creates its parent directories and writes the tokenizer
"$STRETCH" export --ckpt "$CK" --format=hf --out=deep/er/hf > exp.log
for f in model.safetensors config.json tokenizer.json tokenizer_config.json; do
  [ -s deep/er/hf/$f ] || fail "export: deep/er/hf/$f missing ($(cat exp.log))"
done
grep -q '"id":[[:space:]]*257' deep/er/hf/tokenizer.json || fail "byte tokenizer.json has no <eos> = 257"
grep -q '"eos_token":[[:space:]]*"<eos>"' deep/er/hf/tokenizer_config.json || fail "tokenizer_config: no eos_token"
if command -v python3 >/dev/null; then
  # Reference: GPT-2's bytes_to_unicode; every byte b must be vocab id b.
  python3 - deep/er/hf/tokenizer.json <<'PY' || fail "byte tokenizer.json does not map bytes to their ids"
import json, sys
tj = json.load(open(sys.argv[1]))
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
ref = {chr(c): b for b, c in zip(bs, cs)}
assert tj["model"]["vocab"] == ref, "vocab differs"
assert [(a["id"], a["content"]) for a in tj["added_tokens"]] == [(256, "<bos>"), (257, "<eos>"), (258, "<pad>")]
try:
    from tokenizers import Tokenizer
except ImportError:
    sys.exit(0)
t = Tokenizer.from_file(sys.argv[1])
text = "héllo wörld\n\t~"
assert t.encode(text).ids == list(text.encode()), t.encode(text).ids
PY
fi
# a tokenizer.json run: the file is copied as is
cat > bpe.yaml <<YAML
model: {dim: 32, n_layers: 1, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: $SRC/tests/data/bpe_tiny/tokenizer.json, train: [bpe.shard]}
train: {out_dir: bpe, log_every: 1, ckpt_every: 0}
eval: {passkey_trials: 0}
stages:
  - {name: s, seq_len: 64, steps: 1, batch_tokens: 128}
YAML
"$STRETCH" tokenize --tokenizer "$SRC/tests/data/bpe_tiny/tokenizer.json" --out bpe.shard /usr/share/common-licenses/GPL-3 > /dev/null
"$STRETCH" train bpe.yaml > bpe.log
"$STRETCH" export --ckpt "$(latest_ckpt bpe)" --format hf --out hfbpe > /dev/null
cmp "$SRC/tests/data/bpe_tiny/tokenizer.json" hfbpe/tokenizer.json || fail "tokenizer.json not copied"
[ -s hfbpe/tokenizer_config.json ] || fail "no tokenizer_config.json for a tokenizer.json run"
# an imported checkpoint has no run tokenizer: one line says so
"$STRETCH" import --hf deep/er/hf --out imp.h5 > /dev/null
"$STRETCH" export --ckpt imp.h5 --format hf --out hfimp > expimp.log
grep -q "no tokenizer files written: the checkpoint records no run config" expimp.log ||
  fail "export of an import: no reason for the missing tokenizer: $(cat expimp.log)"

echo "test_ux: all passed"
