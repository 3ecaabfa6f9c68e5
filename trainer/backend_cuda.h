// backend_cuda: the backend interface over kernels/cuda (cu_ops.h,
// cu_attn.h, cuBLAS), one compute stream per backend. Declared without any
// CUDA header so backend.c (the one dispatch point) compiles in every build;
// defined in backend_cuda.c, which exists only in CUDA builds.
#pragma once

#include <stddef.h>

#include "backend.h"

// NULL with one line in err when no GPU is visible or `device` is out of range.
backend *backend_cuda_create(bk_dtype dt, int device, char *err, size_t errlen);
void backend_cuda_free(backend *b);
void backend_cuda_mem_stats(backend *b, size_t *now, size_t *peak);
int backend_cuda_gpu_count(void);
