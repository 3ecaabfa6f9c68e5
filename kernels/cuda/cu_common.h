// cu_common: what every CUDA op shares: the activation dtype, error checks,
// and extern "C" so the host C code (gcc) and the .cu files (nvcc) link.
//
// Conventions for every op in kernels/cuda/ (mirroring kernels/cpu/):
// - Pointers are device pointers; shapes and layouts are those of the CPU op
//   of the same name (see kernels/cpu/*.h), so the CPU op is the reference.
// - Activations are bf16 or fp32 (cu_dtype); weights passed to an op are in
//   the same dtype as its activations (the bf16 working copy of the fp32
//   master weights); parameter gradients are ALWAYS fp32.
// - Backward ops ACCUMULATE (+=) into their gradient outputs, like the CPU.
// - Every op is enqueued on the given stream and never synchronizes; none
//   allocates memory: scratch space, where needed, is passed in and its size
//   comes from a *_scratch_bytes() function.
// - Results are deterministic (no float atomics) unless the op says otherwise.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
#define CU_EXTERN_C_BEGIN extern "C" {
#define CU_EXTERN_C_END }
#else
#define CU_EXTERN_C_BEGIN
#define CU_EXTERN_C_END
#endif

CU_EXTERN_C_BEGIN

typedef enum {
    CU_F32 = 0,
    CU_BF16 = 1,
} cu_dtype;

static inline size_t cu_dtype_size(cu_dtype dt) { return dt == CU_BF16 ? 2 : 4; }

// Dies with file:line and the CUDA error string (an internal error, exit 1,
// and MPI_Abort when running under MPI via die()).
void cu_check_fail(cudaError_t err, const char *expr, const char *file, int line);
#define CU_CHECK(expr)                                                   \
    do {                                                                 \
        cudaError_t cu_err_ = (expr);                                    \
        if (cu_err_ != cudaSuccess)                                      \
            cu_check_fail(cu_err_, #expr, __FILE__, __LINE__);           \
    } while (0)

// After a kernel launch: reports launch-configuration errors immediately.
#define CU_CHECK_LAUNCH() CU_CHECK(cudaGetLastError())

// Number of CUDA devices; 0 only when there is none (no device, or no NVIDIA
// driver installed). Any other failure (a driver too old for the runtime, a
// driver/library mismatch, an initialization error) dies with the driver's
// message (exit 1): a broken GPU must not look like a machine without one
// (the GPU tests would report "skipped").
int cu_device_count(void);

CU_EXTERN_C_END
