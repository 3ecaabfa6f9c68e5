// ops_ops: the ops of the harness, one table of cases each (tests/ops/ops_*.c).
#pragma once

#include "ops_harness.h"

extern const ops_op ops_cast, ops_add, ops_swiglu;  // ops_elementwise.c
extern const ops_op ops_rmsnorm;                    // ops_rmsnorm.c
extern const ops_op ops_embedding;                  // ops_embedding.c
extern const ops_op ops_matmul;                     // ops_matmul.c
extern const ops_op ops_rope;                       // ops_rope.c
extern const ops_op ops_xent, ops_logits_row;       // ops_xent.c
extern const ops_op ops_grad_norm, ops_adamw;       // ops_adamw.c
extern const ops_op ops_attn;                       // ops_attn.c
#ifdef STRETCH_HAVE_CUDA
// kernels/cuda entry points the backend does not expose with these arguments
// (axpy with alpha != 1 and mixed dtypes, xent chunk sizes):
// cuda columns only, ops_cu_kernels.c.
extern const ops_op ops_cu_axpy, ops_cu_xent_chunked;
#endif
