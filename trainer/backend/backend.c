// backend: choosing a backend. The ONE place that knows whether CUDA was
// built (STRETCH_HAVE_CUDA); everything else calls through backend.h.
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"

#ifdef STRETCH_HAVE_CUDA
#include "backend_cuda.h"
#endif

int backend_kind_parse(const char *s, backend_kind *out) {
    if (!strcmp(s, "cpu")) *out = BACKEND_CPU;
    else if (!strcmp(s, "cuda")) *out = BACKEND_CUDA;
    else return -1;
    return 0;
}

const char *backend_kind_name(backend_kind k) { return k == BACKEND_CUDA ? "cuda" : "cpu"; }

int backend_gpu_count(void) {
#ifdef STRETCH_HAVE_CUDA
    return backend_cuda_gpu_count();
#else
    return 0;
#endif
}

backend *backend_create(backend_kind kind, bk_dtype dt, int device, char *err, size_t errlen) {
    if (kind == BACKEND_CPU) {
        CHECK(dt == BK_F32);  // the run config refuses train.dtype bf16 on the cpu
        return backend_cpu();
    }
#ifdef STRETCH_HAVE_CUDA
    return backend_cuda_create(dt, device, err, errlen);
#else
    snprintf(err, errlen, "cuda requested but this stretch was built without "
                          "CUDA (rebuild with nvcc on the PATH and -DSTRETCH_CUDA=ON)");
    return NULL;
#endif
}

void backend_free(backend *b) {
    if (!b || b == backend_cpu()) return;
#ifdef STRETCH_HAVE_CUDA
    if (b->kind == BACKEND_CUDA) backend_cuda_free(b);
#endif
}

void backend_mem_stats(backend *b, size_t *now, size_t *peak) {
    *now = *peak = 0;
#ifdef STRETCH_HAVE_CUDA
    if (b->kind == BACKEND_CUDA) backend_cuda_mem_stats(b, now, peak);
#endif
}
