#!/usr/bin/env bash
# The dry-run estimate against the run it estimates, side by side in one
# go: `stretch train RUN --dry-run --estimate`, then the run itself, and per
# stage the estimated tokens/s, the median tokens/s the run logged, and
# their ratio. Timing on a shared machine is noisy; read the ratio, not a
# verdict.
#   bash bench/estimate.sh [build/stretch] [RUN.yaml]   (default: a tiny 2-stage run)
set -euo pipefail
STRETCH=$(realpath "${1:-build/stretch}")
RUN=${2:-}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
if [ -z "$RUN" ]; then
  RUN=$T/est.yaml
  cat > "$RUN" <<YAML
model: {dim: 32, n_layers: 2, n_heads: 2, n_kv_heads: 2, ffn_dim: 64, rope_theta: 100.0, max_position_embeddings: 64}
data: {tokenizer: byte, corpus: fortunes, passkey_ratio: 0.5, passkey_compact: true}
optimizer: {lr: 1.0e-3, warmup_steps: 2}
train: {seed: 1, out_dir: $T/real, log_every: 2, ckpt_every: 0}
eval: {passkey_trials: 0}
stages:
  - {name: short, seq_len: 64, steps: 40, batch_tokens: 1024, rope: {type: default}}
  - {name: long, seq_len: 256, steps: 20, batch_tokens: 2048, rope: {type: yarn, factor: 4.0}}
YAML
fi
cd "$T"
"$STRETCH" train "$RUN" --dry-run --estimate > est.log
"$STRETCH" train "$RUN" --train.out_dir real --train.log_every 2 --train.ckpt_every 0 > run.log 2>&1
out=real
printf '%-6s %14s %14s %8s\n' stage est_tok/s run_tok/s ratio
for s in $(grep -E '^  [0-9]+ ' est.log | awk '{print $1}'); do
  e=$(grep -E "^  $s " est.log | awk '{print $5}')
  r=$(grep '"event":"step"' "$out/metrics.jsonl" | grep "\"stage\":$s," |
      sed 's/.*"tokens_per_s":\([0-9.e+]*\).*/\1/' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  awk -v s="$s" -v e="$e" -v r="$r" 'BEGIN { printf "%-6s %14.0f %14.0f %8.2f\n", s, e, r, (r > 0 ? e / r : 0) }'
done
