# Helpers for the whole-program tests (sourced). $STRETCH is the binary.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

# CMD | has [GREP OPTIONS] PATTERN: grep -q that reads ALL its input first. A
# plain `CMD | grep -q P` (or `| head -1`) stops reading at the first match,
# CMD then dies of SIGPIPE on its next write, and pipefail fails the test at
# random (seen under load: exit 141 with no message).
has() { local all; all=$(cat); grep -q "$@" <<<"$all"; }

# expect_exit CODE CMD...: runs CMD, checks its exit status, keeps its stderr in $ERR.
expect_exit() {
  local want=$1; shift
  set +e
  ERR=$("$@" 2>&1 >/dev/null)
  local got=$?
  set -e
  [ "$got" -eq "$want" ] || fail "expected exit $want, got $got from: $* ($ERR)"
}

# The loss of the first and the last "step" rows of a metrics.jsonl.
first_loss() { grep '"event":"step"' "$1" | sed -n '1s/.*"loss":\([^,]*\).*/\1/p'; }
last_loss() { grep '"event":"step"' "$1" | tail -1 | sed 's/.*"loss":\([^,]*\).*/\1/'; }

# Compares the /params of two checkpoints: exactly, or to a relative tolerance.
same_params() {
  local a=$1 b=$2 rel=${3:-}
  if [ -n "$rel" ]; then
    h5diff -p "$rel" "$a" "$b" /params /params >/dev/null || { h5diff -p "$rel" "$a" "$b" /params /params | head -20; fail "params of $a and $b differ beyond $rel"; }
  else
    h5diff "$a" "$b" /params /params >/dev/null || { h5diff "$a" "$b" /params /params | head -20; fail "params of $a and $b differ"; }
  fi
}

latest_ckpt() { echo "$1/$(cat "$1/latest")"; }

# A small text corpus as a token shard: the license texts every Debian has.
make_text_shard() {
  local out=$1
  "$STRETCH" tokenize --out "$out" /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0 \
    /usr/share/common-licenses/LGPL-2.1 /usr/share/common-licenses/MPL-2.0 >/dev/null
}

# A tiny run file: $1 = out_dir, $2 = shard; stages 64 -> 128 tokens.
write_tiny_run() {
  cat > "$1.yaml" <<YAML
model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}
data: {tokenizer: byte, train: [$2], passkey_ratio: 0.25, passkey_compact: true}
optimizer: {lr: 3.0e-3, warmup_steps: 5}
train: {seed: 7, out_dir: $1, log_every: 1, ckpt_every: 10, keep_last: 0}
eval: {passkey_trials: 2, passkey_depths: [0.5]}
stages:
  - {name: short, seq_len: 64, steps: 24, batch_tokens: 512}
  - {name: long, seq_len: 128, steps: 12, batch_tokens: 512, rope: {type: yarn}}
YAML
}
