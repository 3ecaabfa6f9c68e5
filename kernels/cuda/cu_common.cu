// cu_common: the error path and the device probe shared by every CUDA op.
#include "cu_common.h"

#include "die.h"

void cu_check_fail(cudaError_t err, const char *expr, const char *file, int line)
{
    die("CUDA error at %s:%d: %s: %s", file, line, expr, cudaGetErrorString(err));
}

int cu_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no driver" error
        return 0;
    }
    return n;
}
