// cu_common: the error path and the device probe shared by every CUDA op.
#include "cu_common.h"

#include "die.h"

void cu_check_fail(cudaError_t err, const char *expr, const char *file, int line)
{
    die("CUDA error at %s:%d: %s: %s", file, line, expr, cudaGetErrorString(err));
}

int cu_device_count(void)
{
    int n = 0, driver = -1;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess) return n;
    (void)cudaGetLastError();  // the error is sticky for the next call otherwise
    if (e == cudaErrorNoDevice) return 0;
    // Without an NVIDIA driver the runtime says "insufficient driver" too;
    // the driver version 0 tells that case apart from a driver too old.
    if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = -1;
    if (e == cudaErrorInsufficientDriver && driver == 0) return 0;
    die("CUDA cannot count the GPUs: %s (%s, driver version %d); fix the NVIDIA driver or the "
        "CUDA installation (nvidia-smi shows the driver's state), or run without a GPU",
        cudaGetErrorString(e), cudaGetErrorName(e), driver);
    return 0;
}
