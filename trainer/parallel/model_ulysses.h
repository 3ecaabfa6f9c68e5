// model_ulysses: ulysses / ring x ulysses attention (ulysses.h) behind the
// model's attention hook, so a model whose rows are this rank's slice
// (zigzag_layout_init2) computes exactly what the 1-rank model computes on
// the whole sequence. The model's lse buffer then holds the head-sharded lse.
// Tested by tests/mpi/test_model_grid.c (every dp x ring x ulysses grid).
#pragma once

#include "model.h"
#include "ulysses.h"

// The hook for model_set_attention; u must outlive its use (causal attention).
model_attention model_ulysses_attention(ulysses_attn *u);
