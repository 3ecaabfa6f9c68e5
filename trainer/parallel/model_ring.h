// model_ring: ring attention (ring_attn.h) behind the model's attention hook,
// so a model whose rows are this rank's zig-zag slice computes exactly what
// the 1-rank model computes on the whole sequence.
// Tested by tests/mpi/test_model_grid.c (gradients and 20 AdamW steps on
// every dp x sp grid against the 1-rank model).
#pragma once

#include "model.h"
#include "ring_attn.h"

// The hook for model_set_attention; r must outlive its use (causal attention).
model_attention model_ring_attention(ring_attn *r);
