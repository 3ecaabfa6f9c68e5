// model_sp_attn: sequence-parallel attention behind the model's attention
// hook (model_set_attention), so a model whose rows are this rank's slice
// (zig-zag, zigzag_layout_init2) computes exactly what the 1-rank model
// computes on the whole sequence. Two kinds, one adapter file:
//  - ring (ring_attn.h): K/V blocks travel around the sp ranks;
//  - ulysses (ulysses.h): ulysses / ring x ulysses; the model's lse buffer
//    then holds the head-sharded lse.
// Tested by tests/mpi/test_model_grid.c (gradients and 20 AdamW steps on
// every dp x ring x ulysses grid against the 1-rank model).
#pragma once

#include "model.h"
#include "ring_attn.h"
#include "ulysses.h"

// The hooks; r / u must outlive their use (causal attention).
model_attention model_ring_attention(ring_attn *r);
model_attention model_ulysses_attention(ulysses_attn *u);
