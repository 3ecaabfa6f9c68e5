#!/bin/sh
# How a GPU program (gpuemu_attn: tests/gpu/test_gpu_attn.c on the emulated
# GPU) reports device-count failures: no device -> 77 (skipped), no NVIDIA
# driver installed -> 77, a driver too old / mismatched -> exit 1 with the
# driver's message naming the error. Usage: test_device_errors.sh PROGRAM
prog=$1
fail=0
expect() {  # expected-exit expected-text env...
    want=$1 text=$2
    shift 2
    out=$(env "$@" "$prog" 0 2>&1)
    rc=$?
    if [ "$rc" -ne "$want" ] || ! printf '%s' "$out" | grep -q "$text"; then
        echo "FAIL: $* -> exit $rc (want $want, text '$text'):"
        printf '%s\n' "$out" | tail -3
        fail=1
    else
        echo "ok: $* -> exit $rc: $(printf '%s' "$out" | grep "$text" | head -1)"
    fi
}
expect 77 "no CUDA device" EMU_GPU_COUNT=0
expect 77 "no CUDA device" EMU_DEVICE_ERROR=35 EMU_DRIVER_VERSION=0
expect 1 "CUDA driver version is insufficient.*cudaErrorInsufficientDriver, driver version 12020" \
    EMU_DEVICE_ERROR=35 EMU_DRIVER_VERSION=12020
expect 1 "cudaErrorSystemDriverMismatch" EMU_DEVICE_ERROR=803
expect 0 "PASS" EMU_GPU_COUNT=1
exit $fail
