// backend: choosing a backend. The ONE place that knows whether CUDA was
// built (STRETCH_HAVE_CUDA, in the table below); everything else calls
// through backend.h.
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "die.h"

int backend_kind_parse(const char *s, backend_kind *out) {
    if (!strcmp(s, "cpu")) *out = BACKEND_CPU;
    else if (!strcmp(s, "cuda")) *out = BACKEND_CUDA;
    else return -1;
    return 0;
}

const char *backend_kind_name(backend_kind k) { return k == BACKEND_CUDA ? "cuda" : "cpu"; }

// ---------------------------------------------------------------------------
// The backends built into this stretch, as a table: the only #ifdef is the
// table's entry, so the functions below read the same in every build.

#ifdef STRETCH_HAVE_CUDA
static const backend_impl *const cuda_impl = &backend_cuda_impl;
#else
static const backend_impl *const cuda_impl = NULL;
#endif

int backend_gpu_count(void) { return cuda_impl ? cuda_impl->gpu_count() : 0; }

int backend_gpu_describe(int device, char *desc, size_t desc_len, char *bus_id, size_t bus_len) {
    desc[0] = bus_id[0] = '\0';
    return cuda_impl ? cuda_impl->describe(device, desc, desc_len, bus_id, bus_len) : -1;
}

backend *backend_create(backend_kind kind, bk_dtype dt, int device, char *err, size_t errlen) {
    if (kind == BACKEND_CPU) {
        CHECK(dt == BK_F32);  // the run config refuses train.dtype bf16 on the cpu
        return backend_cpu();
    }
    if (!cuda_impl) {
        snprintf(err, errlen, "cuda requested but this stretch was built without "
                              "CUDA (rebuild with nvcc on the PATH and -DSTRETCH_CUDA=ON)");
        return NULL;
    }
    return cuda_impl->create(dt, device, err, errlen);
}

void backend_free(backend *b) {
    if (!b || b == backend_cpu()) return;
    CHECK(b->kind == BACKEND_CUDA && cuda_impl);
    cuda_impl->free(b);
}

void backend_mem_stats(backend *b, size_t *now, size_t *peak) {
    *now = *peak = 0;
    if (b->kind == BACKEND_CUDA && cuda_impl) cuda_impl->mem_stats(b, now, peak);
}

size_t backend_host_bytes(backend *b) {
    return b->kind == BACKEND_CUDA && cuda_impl ? cuda_impl->host_bytes(b) : 0;
}
