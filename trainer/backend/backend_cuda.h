// backend_cuda: the backend interface over kernels/cuda (cu_ops.h,
// cu_attn.h, cuBLAS), one compute stream per backend. Declared without any
// CUDA header so backend.c (the one dispatch point) compiles in every build;
// defined in backend_cuda.c, which exists only in CUDA builds.
#pragma once

#include <stddef.h>

#include "backend.h"

// What backend.c needs of a backend besides its ops: how many devices,
// create (NULL with one line in err when no GPU is visible or `device` is out
// of range), free, memory statistics.
typedef struct {
    int (*gpu_count)(void);
    backend *(*create)(bk_dtype dt, int device, char *err, size_t errlen);
    void (*free)(backend *b);
    void (*mem_stats)(backend *b, size_t *now, size_t *peak);
    int (*describe)(int device, char *desc, size_t desc_len, char *bus_id, size_t bus_len);
    size_t (*host_bytes)(backend *b);  // pinned host memory held (host_alloc)
} backend_impl;

extern const backend_impl backend_cuda_impl;  // defined only in CUDA builds

// The backend's compute stream (a cudaStream_t), its device, for the
// CUDA-side helpers (ring attention, NCCL) that enqueue on it.
void *backend_cuda_stream(backend *b);
// The stream of copy_async with event ev (its lane, BK_COPY_LANE; a
// cudaStream_t, made on first use), for a module that orders offload copies
// after work of its own streams: the gradient reduction's buckets
// (gpu_comm_grad_copy_after) make the optimizer's lane wait for their
// events, and every copy queued on it after that waits for them too.
void *backend_cuda_copy_stream(backend *b, int ev);
int backend_cuda_device(backend *b);
// Grow-only device scratch owned by the backend, for other CUDA modules
// (counted in backend_mem_stats). slot < BACKEND_CUDA_USER_SLOTS.
enum { BACKEND_CUDA_USER_SLOTS = 8 };
void *backend_cuda_user_scratch(backend *b, int slot, size_t bytes);
