#!/usr/bin/env bash
# The whole test suite, as CI runs it (README command 2):
#  1. install missing Debian dependencies (as root; also the SmolLM2 GGUF of
#     cli_test_gguf_import, scripts/setup-debian.sh),
#  2. Release build + every CTest test (unit, CLI, MPI, resume, faults, Slurm),
#  3. AddressSanitizer + UndefinedBehaviorSanitizer build + the unit, CLI and
#     MPI tests, with tests/sanitize/*.supp (third-party leaks only),
#  4. the libFuzzer harnesses (clang), a few seconds each from their seeds.
# Then a summary: the time of each part, and every skipped test with the
# reason it printed. CUDA sources are compiled whenever nvcc is found; GPU
# tests skip without a GPU (and are listed).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
summary=()
t0=$(date +%s)
part() { local now; now=$(date +%s); summary+=("$(printf '%-44s %5ds' "$1" $((now - t0)))"); t0=$now; }

# Runs ctest in build dir $1 (more args: ctest's); keeps the log for the summary.
run_ctest() {
  local dir=$1; shift
  set +e
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -j"$jobs" "$@" 2>&1 | tee "$dir/ctest.log"
  local rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

# The skipped tests of a ctest log, each with the SKIPPED line it printed.
skipped() {
  local dir=$1 t
  for t in $(grep -oE '[a-z0-9_]+ \(Skipped\)' "$dir/ctest.log" | awk '{print $1}' | sort -u); do
    local why
    why=$(ctest --test-dir "$dir" -R "^$t\$" -V 2>&1 | grep -m1 -iE 'SKIPPED|skip' | sed 's/^[0-9]*: //' || true)
    echo "  SKIPPED $t ($dir): ${why:-no reason printed}"
  done
}

bash scripts/setup-debian.sh
part "setup"

status=0
echo "== Release build and all tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
run_ctest build || status=1
part "release build + ctest"

# The emulated GPU (tests/gpu/emu: the CUDA host path and kernels on CPU
# shims, label gpuemu) is configured only without nvcc; when the Release
# build above compiled CUDA, its tests run from a second, CUDA-less build of
# just their targets.
if [ -f build/gpu_test_gpu_attn ]; then  # built only with CUDA
  echo "== emulated GPU tests (build-emu, -DSTRETCH_CUDA=OFF)"
  cmake -S . -B build-emu -DCMAKE_BUILD_TYPE=Release -DSTRETCH_CUDA=OFF >/dev/null
  cmake --build build-emu -j"$jobs" --target gpuemu_train gpuemu_ops_check gpuemu_attn \
    gpuemu_attn_tiles gpuemu_model gpuemu_nccl_check gpuemu_alltoall gpuemu_ring gpuemu_shard gpuemu_offload \
    gpuemu_stretch gpuemu_ulysses_layout gpuemu_ulysses
  run_ctest build-emu -L gpuemu || status=1
  part "emulated GPU build + ctest -L gpuemu"
fi

echo "== ASan + UBSan build: unit, CLI and MPI tests"
# -O1: the sanitizers need no -O0, and -O0 made this part the longest of the
# suite (CI, 2 cores: 1063 s). Left to the Release part:
#  - mpi_rank_death, mpi_grid_error, cli_test_watchdog: they assert
#    wall-clock limits that an ASan build's MPI start-up does not meet;
#  - cli_test_slurm, cli_test_slurm_policy, cli_test_sp8, cli_test_ulysses:
#    shell orchestration of requeues and of 4-8-rank grids (ulysses alone
#    took 570 s under ASan on 2 cores); the C paths they reach (stop signal,
#    checkpoint, exit 99, every grid shape) run here in cli_test_stop,
#    cli_test_train and the mpi_* tests;
#  - cli_test_faults: a tmpfs filled up, ulimit -f, killed ranks (610 s under
#    ASan on 2 cores); the write-error paths it reaches run here in
#    test_fsutil (ENOSPC / EFBIG mid-write) and test_ckpt;
#  - cli_test_zero: every shard mode on 1-4 ranks (630 s under ASan on 2
#    loaded cores, the long pole); the shard math runs here in mpi_shard_*,
#    the sharded checkpoint write and read in cli_test_resume_reads (4
#    ranks, shard parameters);
#  - test_gguf_fuzz (mutation loop): fuzz_gguf covers it under ASan + UBSan;
#  - layers: compile probes, nothing runs.
# fast_unwind_on_malloc=0: full stacks, so that OpenMPI's leaks match their
# suppressions; OpenMPI keeps its plugins loaded (disable_dlclose) so their
# frames have names.
# No emulated GPU here (STRETCH_GPU_EMU=OFF): its tests run in the part
# above, and its one-translation-unit emulator is the slowest compile.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DSTRETCH_SANITIZE=ON \
  -DSTRETCH_CUDA=OFF -DSTRETCH_GPU_EMU=OFF >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS=suppressions=$SRC/tests/sanitize/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$SRC/tests/sanitize/ubsan.supp \
OMPI_MCA_mca_base_component_disable_dlclose=1 \
  run_ctest build-asan -L 'unit|cli|mpi' \
    -E '^(mpi_(rank_death|grid_error)_|cli_test_(watchdog|slurm|slurm_policy|sp8|ulysses|faults|zero)$|test_gguf_fuzz$|layers$)' ||
  status=1
part "asan+ubsan build + unit/cli/mpi"

echo "== libFuzzer harnesses (clang), a few seconds each"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSTRETCH_FUZZ=ON -DSTRETCH_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_all
run_ctest build-fuzz -L fuzz || status=1
part "fuzz build + ctest -L fuzz"

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
skipped build
skipped build-asan
[ "$status" -eq 0 ] && echo "all parts passed" || echo "FAILED (see above)"
exit "$status"
