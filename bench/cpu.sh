#!/usr/bin/env bash
# Every CPU benchmark of stretch in one run (build first: cmake --build build).
# Prints ratios measured side by side; nothing here is a pass/fail test.
set -euo pipefail
B=${1:-build}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OPENBLAS_NUM_THREADS=1
echo "== model step (6 layers, dim 384, 6 heads / 2 kv, seq 1024)"; "$B/bench_model"
echo; echo "== attention growth with length"; "$B/bench_attn"
echo; echo "== fused RoPE vs memcpy"; "$B/bench_rope"
echo; echo "== matmul and loss"; "$B/bench_ops"
echo; echo "== every op of the backend interface (tests/ops harness, --perf)"; "$B/ops_check" --perf -b cpu
echo; echo "== tokenizers"; "$B/bench_tok"
if python3 -c "import torch, transformers" 2>/dev/null; then
  echo; echo "== against transformers (same weights, same batch)"; python3 bench/torch_compare.py --build "$B"
fi
