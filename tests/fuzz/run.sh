#!/usr/bin/env bash
# Runs the libFuzzer harnesses (tests/fuzz/fuzz_*.c) for SECONDS each and
# reports, per harness, executions, executions/s, corpus size and crashes.
#
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSTRETCH_FUZZ=ON -DSTRETCH_CUDA=OFF
#   cmake --build build-fuzz -j2 --target fuzz_all
#   bash tests/fuzz/run.sh [--build build-fuzz] [--only NAME] [--jobs N] [SECONDS]   # default 60
#
# Seeds: the text files of tests/fuzz/corpus/NAME/ (hand-written and
# regression inputs of fixed crashes) plus binary seeds made here by the
# instrumented build (a token shard, a checkpoint, an HF export, a GGUF), in
# BUILD/fuzz/seeds/NAME. New inputs libFuzzer finds go to BUILD/fuzz/corpus/NAME,
# crashes to BUILD/fuzz/crashes/NAME-*. Exit status 1 if any harness crashed.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$SRC/build-fuzz
ONLY=""
SECONDS_EACH=60
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$(cd "$2" && pwd); shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) SECONDS_EACH=$1; shift ;;
  esac
done
HARNESSES=(yaml factors shard tokenizer gguf safetensors hf ckpt)
[ -n "$ONLY" ] && HARNESSES=("$ONLY")
W=$BUILD/fuzz
mkdir -p "$W/seeds" "$W/corpus" "$W/crashes" "$W/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/sanitize/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$SRC/tests/sanitize/ubsan.supp}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

# Binary seeds, made once per build directory (lock: ctest runs harnesses in parallel).
make_seeds() {
  local S=$W/seeds T
  [ -f "$S/.done" ] && return 0
  T=$(mktemp -d)
  local STRETCH=$BUILD/stretch
  mkdir -p "$S"/{yaml,factors,shard,tokenizer,gguf,safetensors,hf,ckpt}
  cp "$SRC"/schedules/*.yaml "$S/yaml/"
  printf 'The quick brown fox jumps over the lazy dog.\n' > "$T/a.txt"
  printf 'caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac 123\n\nsecond paragraph\n' > "$T/b.txt"
  "$STRETCH" tokenize --out "$S/shard/byte.shard" "$T/a.txt" "$T/b.txt" > /dev/null
  "$STRETCH" tokenize --tokenizer "$SRC/tests/data/bpe_tiny/tokenizer.json" --out "$S/shard/bpe.shard" \
    "$T/a.txt" "$T/b.txt" > /dev/null
  cp "$SRC/tests/data/bpe_tiny/tokenizer.json" "$S/tokenizer/bpe_tiny.json"
  cp "$SRC/tests/data/bpe_tiny_llama3/tokenizer.json" "$S/tokenizer/bpe_tiny_llama3.json"
  cp "$SRC/tests/data/gguf_quant_vectors.gguf" "$S/gguf/"
  "$BUILD/fuzz_seed_gguf" "$S/gguf/tiny.gguf"
  # a tiny checkpoint (2 steps) and its HF export
  cat > "$T/run.yaml" <<YAML
model: {dim: 8, n_layers: 1, n_heads: 2, n_kv_heads: 1, ffn_dim: 16}
data: {tokenizer: byte, train: [$S/shard/byte.shard]}
train: {out_dir: $T/run, log_every: 1, ckpt_every: 0}
eval: {passkey_trials: 0}
stages: [{name: a, seq_len: 16, steps: 2, batch_tokens: 32}]
YAML
  "$STRETCH" train "$T/run.yaml" > /dev/null
  cp "$T/run/$(cat "$T/run/latest")" "$S/ckpt/tiny.h5"
  "$STRETCH" export --ckpt "$S/ckpt/tiny.h5" --format hf --out "$T/hf" > /dev/null
  cp "$T/hf/model.safetensors" "$S/safetensors/tiny.safetensors"
  cp "$T/hf/config.json" "$S/yaml/../hf/config.json.txt" 2>/dev/null || true
  # fuzz_hf's input: 2 bytes of config.json length, config.json, model.safetensors
  local n
  n=$(stat -c %s "$T/hf/config.json")
  { printf "\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))"; cat "$T/hf/config.json" "$T/hf/model.safetensors"; } \
    > "$S/hf/tiny.bin"
  rm -f "$S/hf/config.json.txt"
  rm -rf "$T"
  touch "$S/.done"
}
(
  flock 9
  # the seeds come from `stretch` runs (MPI): full stacks for the
  # suppressions of OpenMPI's leaks (scripts/test.sh explains)
  export LSAN_OPTIONS=$LSAN_OPTIONS:fast_unwind_on_malloc=0 OMPI_MCA_mca_base_component_disable_dlclose=1
  make_seeds
) 9> "$W/.seeds.lock"

status=0
printf '%-12s %12s %10s %8s %8s\n' harness executions exec/s corpus crashes
for h in "${HARNESSES[@]}"; do
  bin=$BUILD/fuzz_$h
  [ -x "$bin" ] || { echo "run.sh: $bin not built (cmake --build $BUILD --target fuzz_all)" >&2; exit 2; }
  mkdir -p "$W/corpus/$h"
  dirs=("$W/corpus/$h" "$W/seeds/$h")
  [ -d "$SRC/tests/fuzz/corpus/$h" ] && dirs+=("$SRC/tests/fuzz/corpus/$h")
  log=$W/logs/$h.log
  set +e
  (cd "$W" && "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=20 -rss_limit_mb=2048 \
     -max_len=262144 -artifact_prefix="$W/crashes/$h-" "${dirs[@]}") > "$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | awk '{print $2}' | tail -1)
  rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | awk '{print $2}' | tail -1)
  corpus=$(find "$W/corpus/$h" -type f | wc -l)
  crashes=0
  if [ "$rc" -ne 0 ]; then
    crashes=$(grep -cE '^==[0-9]+==ERROR|deadly signal|runtime error|bad error message|SUMMARY: libFuzzer' "$log" || true)
    [ "$crashes" -gt 0 ] || crashes=1
    status=1
  fi
  printf '%-12s %12s %10s %8s %8s\n' "$h" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
  if [ "$rc" -ne 0 ]; then
    echo "  fuzz_$h exited $rc; the log: $log; crash inputs: $(ls "$W/crashes/$h-"* 2>/dev/null | tr '\n' ' ')"
    grep -m5 -E 'ERROR|runtime error|bad error message|#[0-9] 0x' "$log" | sed 's/^/  /'
  fi
done
exit $status
