// model: a Llama-family decoder (embeddings, n x [RMSNorm -> GQA attention
// with RoPE -> residual -> RMSNorm -> SwiGLU MLP -> residual], final RMSNorm,
// LM head), forward and backward through a backend (backend.h): the CPU
// reference kernels (fp32, the default) or CUDA (bf16 or fp32 activations,
// fp32 master weights and gradients). One code path for both.
//
// Where the numbers live: params / grads below are HOST fp32 buffers (what
// checkpoints, import/export and tests read and write). On the cpu backend
// they are also what the ops use (dparams == params, dgrads == grads, work ==
// params). On cuda, dparams / dgrads are the device master copies and work
// the device weights in the activation dtype: call model_push_params after
// writing params on the host, model_pull_params / model_pull_grads before
// reading them there (all no-ops on the cpu).
//
// Parameters, gradients and AdamW moments are each ONE contiguous buffer with
// a table of named views whose names follow HF Llama
// ("model.layers.3.self_attn.q_proj.weight"), so import and export are
// rename-free copies. Sizes come from one function, model_param_layout().
//
// Tested by tests/unit/test_model.c: finite-difference gradient check on a
// tiny config, recomputation gives identical gradients, 200 AdamW steps on
// one batch drive the loss near zero.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "model_config.h"  // model_config, model_config_validate
#include "rope_scaling.h"

// One named tensor inside the flat parameter buffer (backend.h: the
// optimizer ops walk these views).
typedef param_tensor model_tensor;

// Per-layer pointers into a flat buffer (params or grads). Shapes in comments.
typedef struct {
    float *input_norm;   // (C)          model.layers.L.input_layernorm.weight
    float *wq;           // (H*D, C)     self_attn.q_proj.weight
    float *wk;           // (Hkv*D, C)   self_attn.k_proj.weight
    float *wv;           // (Hkv*D, C)   self_attn.v_proj.weight
    float *wo;           // (C, H*D)     self_attn.o_proj.weight
    float *post_norm;    // (C)          post_attention_layernorm.weight
    float *w_gate;       // (F, C)       mlp.gate_proj.weight
    float *w_up;         // (F, C)       mlp.up_proj.weight
    float *w_down;       // (C, F)       mlp.down_proj.weight
} model_layer_views;

typedef struct {
    float *embed;        // (V, C)  model.embed_tokens.weight
    model_layer_views *layers;  // (n_layers)
    float *final_norm;   // (C)     model.norm.weight
    float *lm_head;      // (V, C)  lm_head.weight (== embed when tied)
} model_views;

typedef struct model model;

// Table of named tensors and the total count of floats; *n_tensors set.
// The caller frees the returned array.
model_tensor *model_param_layout(const model_config *cfg, int *n_tensors, int64_t *n_params);

// Resolves views over any flat buffer laid out by model_param_layout.
void model_views_init(model_views *views, float *flat, const model_config *cfg);
void model_views_free(model_views *views);

// ---------------------------------------------------------------------------
// The model object: config, flat parameter/gradient buffers, activations for
// up to max_tokens tokens per call.

// One batch of B sequences of T tokens, all (B, T) row-major.
typedef struct {
    int64_t B, T;
    const int32_t *tokens;   // (B, T) input ids
    const int32_t *targets;  // (B, T) next-token ids, < 0 = no loss here
    const int32_t *pos;      // (B, T) RoPE position ids (restart per document)
    const int32_t *seg;      // (B, T) document ids for attention masking, or NULL
    const uint8_t *win;      // (B, T) RoPE window flags (rope_windows), required when the
                             // model's rope is a mixed table, else NULL
} model_batch;

// Where the time goes (seconds, accumulated; zero them to start a window).
typedef struct {
    double matmul;     // projections, MLP, LM head + loss
    double attention;  // attention forward/backward
    double other;      // norms, RoPE, SwiGLU, embeddings, residual adds
} model_timers;

// Attention over the rows of a batch: (B, T, H, D) q and (B, T, Hkv, D) k, v
// as the attention kernels take them, seg (B, T) or NULL; tensors in the
// backend's memory and activation dtype (lse fp32). The default (all
// NULL) is the single-rank attn_forward / attn_backward over whole
// sequences; sequence parallelism installs ring attention, where the T rows
// are this rank's zig-zag slice of longer sequences.
typedef struct {
    void (*forward)(void *ctx, void *out, float *lse, const void *q, const void *k,
                    const void *v, const int32_t *seg, int64_t B, int64_t T, int H, int Hkv,
                    int D);
    void (*backward)(void *ctx, void *dq, void *dk, void *dv, const void *dout,
                     const void *q, const void *k, const void *v, const void *out,
                     const float *lse, const int32_t *seg, int64_t B, int64_t T, int H,
                     int Hkv, int D);
    void *ctx;
} model_attention;

// Called during backward each time the gradients grads[lo, n_params) are
// final (after the LM head, after each layer, from the last layer down), so
// their all-reduce can start while the lower layers are still computing.
typedef struct {
    void (*ready)(void *ctx, int64_t lo);
    void *ctx;
} model_grad_hook;

// ZeRO-3 (trainer/parallel/zero_shard.h): the weights params[lo, hi) are
// not resident between uses. need() is called before the model reads a unit
// (the embedding, one decoder layer, the final norm + LM head) and names the
// unit it will need next (next_lo == next_hi: none) so its gather can be
// prefetched; done() after the unit's last read in this pass (then its
// memory may be released). Units in the order of use: forward embedding,
// layers 0 .. L-1, head (tied: the embedding as the LM head, then the final
// norm); backward head, layers L-1 .. 0 (recompute and
// backward of a layer under one need). NULL need: all weights resident.
// A unit may be needed again before its done() (it is held): the hook
// gathers nothing then and only starts the named prefetch. So at the
// forward -> backward turn the last layer stays held through the head and
// its backward needs no gather; at most three units are held at once
// (that layer, the final norm and, tied, the embedding as the LM head).
// model_forward (evaluation) leaves the head held for model_argmax_row
// until the next forward or model_release_units.
// need() returns where the unit's working weights (bk->dt) now are: a
// buffer of hi - lo elements (the device path gathers into one), or NULL
// when they are in place in m->work (the cpu path). progress(), if set, is
// called between the ops of a unit (an MPI library that progresses
// non-blocking collectives only inside MPI calls gets them there).
// grad_need(), if set, gives the fp32 buffer (hi - lo floats, zero) that a
// unit's weight gradients accumulate into in backward, and grad_done() is
// called once they are final for this pass (the device path reduce-scatters
// the buffer into the rank's slice there); a tied head's gradient unit is
// the embedding, final after the embedding backward. NULL: in m->dgrads.
typedef struct {
    const void *(*need)(void *ctx, int64_t lo, int64_t hi, int64_t next_lo, int64_t next_hi);
    void (*done)(void *ctx, int64_t lo, int64_t hi);
    void (*progress)(void *ctx);
    float *(*grad_need)(void *ctx, int64_t lo, int64_t hi);
    void (*grad_done)(void *ctx, int64_t lo, int64_t hi);
    void *ctx;
    // Another model_forward_backward follows this one (gradient
    // accumulation): the last unit of the backward prefetches the
    // embedding, the next pass's first unit.
    bool another_pass;
} model_param_hook;

// The most units a pass holds at once (model_param_hook): the last layer,
// the final norm and, tied, the embedding as the LM head.
enum { MODEL_MAX_HELD_UNITS = 3 };

// The range [lo, hi) of unit u (0 .. n_layers + 1; others: empty).
void model_unit_range(const model *m, int u, int64_t *lo, int64_t *hi);

struct model {
    model_config cfg;
    int n_tensors;
    model_tensor *tensors;   // (n_tensors) named views, HF names
    int64_t n_params;
    float *params;           // (n_params) one allocation, host
    float *grads;            // (n_params) one allocation, host
    model_views p, g;        // views into params and grads
    backend *bk;             // where the ops run (backend_cpu() unless model_create_on)
    float *dparams, *dgrads; // the backend's fp32 master params / grads (cpu: params, grads)
    void *work;              // weights in bk->dt for the ops (== dparams when fp32)
    // dparams and work hold the elements [dlo, dhi) of the flat buffer, and
    // dgrads [glo, ghi): all of it, but for ZeRO-3 on a device backend
    // (model_opts.resident_lo / hi, model_set_resident).
    int64_t dlo, dhi, glo, ghi;
    struct { int64_t lo, hi; const void *base; } unit[MODEL_MAX_HELD_UNITS];  // held (param_hook; hi > lo: in use)
    bool head_held;          // model_forward left the head unit held (param_hook)
    struct { int64_t lo, hi; float *base; } gunit[2];      // their gradient buffers
    rope_table rope;         // the current stage's frequencies
    bool recompute;          // keep only layer inputs; recompute the rest in backward
    bool offload_acts;       // those layer inputs live in host memory (model_opts)
    bool host_master;        // the fp32 master is on the host (hmaster); no dparams on a bf16 device
    float *hmaster;          // host_master: the pinned fp32 master of [glo, ghi): params
                             // itself when that is all of it, else (ZeRO-3) a slice apart
    int64_t max_tokens;      // capacity of the activation buffers (B*T)
    model_timers timers;     // wall time by op family, accumulated over calls
    model_attention attention;  // all NULL: single-rank attention
    model_grad_hook grad_hook;  // NULL ready: none
    model_param_hook param_hook;  // NULL need: every weight resident (the default)
    struct model_acts *acts; // activation and scratch buffers (model.c)
};

// Allocates a model for batches of up to max_tokens tokens; parameters are
// zero until model_init_weights or a checkpoint load. cfg must be valid.
model *model_create(const model_config *cfg, int64_t max_tokens, bool recompute);
// The same on a given backend (not owned by the model).
model *model_create_on(const model_config *cfg, int64_t max_tokens, bool recompute, backend *bk);

// parallel.offload (docs/distributed.md):
//  offload_activations (needs recompute): of the L + 1 residual checkpoints
//    (L, N, C) the backend holds two (the layer computing and the next one),
//    the other L - 1 go to host memory (backend host_alloc) on the copy
//    stream as the forward produces them and come back one layer ahead of
//    the backward. Bit-identical to keeping them (the same kernels).
//  host_master: the optimizer runs on the host (zero_offload.h): the fp32
//    master is hmaster, pinned (backend host_alloc), dparams is not
//    allocated on a bf16 backend (NULL; on fp32 it is the working copy,
//    work). With all weights resident hmaster is params itself and
//    model_pull_params is a no-op; with a resident slice (ZeRO-3) hmaster
//    is the slice alone and params stays a pageable whole-size array:
//    model_pull_params copies the slice of hmaster into params,
//    model_push_params the reverse. Either way model_push_params stages the
//    fp32 weights through dgrads to cast them (in pieces of its size).
//  resident_lo, resident_hi: only the elements [lo, hi) of the weights and
//    gradients are resident on a device backend (ZeRO-3: the rank's slice;
//    the weights can change range later, model_set_resident, the gradients
//    and a host master cannot); host params and grads stay whole.
//    Host-memory backends: all. {0, 0} = all.
typedef struct {
    bool recompute, offload_activations, host_master;
    int64_t resident_lo, resident_hi;
} model_opts;
model *model_create_opts(const model_config *cfg, int64_t max_tokens, const model_opts *o,
                         backend *bk);
void model_free(model *m);

// Host params -> backend master copy and working copy; backend -> host
// (the resident range [dlo, dhi) only; the rest of params is left alone).
void model_push_params(model *m);
void model_pull_params(model *m);
void model_pull_grads(model *m);

// ZeRO-3 on a device backend: the backend's fp32 master and working weights
// shrink to (or grow back from) the elements [lo, hi) of the flat buffer.
// The resident part goes to the host params first, the new range comes
// from there. No-op on host-memory backends (their buffers stay whole).
void model_set_resident(model *m, int64_t lo, int64_t hi);
// The backend's fp32 master weight / working weight of flat element i
// (inside [dlo, dhi)); its fp32 gradient (inside [glo, ghi)).
float *model_dparam_at(const model *m, int64_t i);
void *model_work_at(const model *m, int64_t i);
float *model_dgrad_at(const model *m, int64_t i);
// The host master of flat element i (host_master; inside [glo, ghi)).
float *model_hmaster_at(const model *m, int64_t i);

// The memory of a training step, from the same buffer plan model_create_on
// allocates (plus AdamW moments and the backend's scratch), in bytes.
typedef struct {
    size_t params;       // fp32 master parameters
    size_t grads;        // fp32 gradients
    size_t moments;      // AdamW m and v (fp32)
    size_t work;         // weights in the activation dtype (0 when fp32)
    size_t activations;  // saved activations + backward buffers of max_tokens tokens
    size_t scratch;      // backend scratch: fp32 attention grads, one xent chunk of logits
    size_t total;
} model_mem;
void model_mem_plan(model_mem *out, const model_config *cfg, int64_t max_tokens, bool recompute,
                    bk_dtype dt, bool device);

// Llama-style initialisation: N(0, 0.02) matrices (residual projections
// scaled by 1/sqrt(2 n_layers)), norm weights 1. Deterministic for a seed.
// Pushes the weights to the backend.
void model_init_weights(model *m, uint64_t seed);

// Replaces the attention (e.g. ring attention under sequence parallelism).
void model_set_attention(model *m, const model_attention *attention);

// Sets the RoPE frequencies used by the following calls (a stage switch).
// With a mixed table (rope->short_len > 0) every batch must carry win.
void model_set_rope(model *m, const rope_table *rope);

// Forward only. batch->targets may be NULL (no loss, returns 0).
// Returns the SUM of token losses over targets >= 0;
// losses (B*T), if not NULL, gets each token's loss. Afterwards
// model_final_hidden() holds the final-norm hidden states (B*T, C) (a host
// pointer on the cpu backend only).
double model_forward(model *m, const model_batch *batch, float *losses);
const float *model_final_hidden(const model *m);

// Under a param hook (ZeRO-3) the head unit stays gathered after
// model_forward so that model_argmax_row can read the LM head (a per-row
// gather would also be a collective the ranks do not all make); the next
// forward or this releases it. No-op without a hook or a held head.
void model_release_units(model *m);

// Greedy next-token prediction at row n of the last forward: argmax of logits.
int32_t model_argmax_row(const model *m, int64_t n);

// Forward + backward: returns the loss sum and ACCUMULATES grad_scale *
// d(loss sum)/d(params) into m->dgrads (== m->grads on the cpu; usually
// grad_scale = 1 / valid tokens).
double model_forward_backward(model *m, const model_batch *batch, float grad_scale);

void model_zero_grads(model *m);
