// zero_shard: ZeRO-style sharding of the training state over the whole dp x sp
// world (parallel.shard, docs/distributed.md). Rank r owns the contiguous
// slice [r * shard, min((r + 1) * shard, n)) of the flat parameter buffer,
// shard = ceil(n / world) (the last slices are short or empty: the buffer is
// padded to world * shard in the arithmetic, not in memory). The named views
// stay: a tensor cut by a slice boundary is split into its two pieces.
//
//   none        every rank holds and updates everything (all-reduce);
//   optimizer   ZeRO-1: gradients all-reduced as before, AdamW moments only
//               for the owned slice, AdamW on the slice, the updated slices
//               all-gathered;
//   gradients   ZeRO-2: gradients reduce-scattered per bucket from the
//               model's grad-ready hook (each rank receives only the sum of
//               its slice), then as optimizer;
//   parameters  ZeRO-3: between steps a rank holds only its slice of the
//               weights; each unit (embedding, decoder layer, head; a tied
//               head gathers the embedding again) is all-gathered just
//               before its forward and again for its recompute + backward
//               (model_param_hook; the last layer is kept from its forward
//               into its backward), the next unit's gather started before
//               this one computes; gradients as in `gradients`; no gather
//               after AdamW. Evaluations gather the same way
//               (shard_eval_begin).
//               cpu: in place in the whole-size host buffer (MPI_Iallgatherv,
//               driven by MPI_Test between the ops), released after use
//               (zero_pages.h).
//               device (cuda): the fp32 master and the working weights on
//               the device are the slice only (model_set_resident); a unit
//               is gathered (backend_comm_unit_gather: grouped ncclBroadcast
//               per owner on a parameter stream, an event after it) into one
//               of two unit-sized buffers (three tied: zero3_units), the next unit into
//               the other while this one computes; the compute stream waits
//               on the gather's event; a buffer is reused once its unit is
//               done. Gradients: the device holds the slice only; a unit's
//               backward accumulates into one of two unit-sized fp32
//               buffers, reduce-scattered (grouped ncclReduce per owner)
//               when the unit is done, while the next unit computes into
//               the other; the owned part is added to the slice before the
//               buffer is reused. So gradients are reduced once per
//               micro-batch (once per step without accumulation, the same
//               bits as `none`; with accumulation, the same sum in another
//               order). The reductions are waited for from the top
//               of the buffer down (the higher of the two buffers first),
//               so when one is added the slice's gradients above its unit
//               are final: with the optimizer offloaded (zero_offload.h:
//               the rank's fp32 master slice pinned on the host, the
//               device keeping the working slice) the last micro-batch
//               queues each final chunk's copy down right there.
// On the cpu backend `gradients` and `parameters` also give back the pages
// of the gradient buckets a rank does not own once they are reduce-scattered
// (and zero the gradients that way), so the resident set holds the owned
// slice plus the buckets in flight.
//
// The global gradient norm for clipping is the all-reduced sum of the
// slices' squared norms. AdamW is elementwise, so the update of a slice is
// bit-identical to the same elements of a whole-buffer update.
//
// Tested by tests/mpi/test_shard.c: every shard mode on every grid of 1, 2
// and 4 ranks against the unsharded 1-rank run, gradient clipping on, with
// and without gradient accumulation.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "adamw.h"
#include "backend_comm.h"
#include "dist.h"
#include "model.h"

// == cfg_shard (run_config.h), which this layer cannot see.
typedef enum { SHARD_NONE, SHARD_OPTIMIZER, SHARD_GRADIENTS, SHARD_PARAMETERS } shard_mode;

const char *shard_mode_name(shard_mode m);

typedef struct {
    shard_mode mode;
    int world, rank;
    int64_t n;               // floats in the flat buffer
    int64_t shard;           // floats per rank (n when mode is none)
    int64_t lo, hi;          // this rank's slice [lo, hi)
    param_tensor *tensors;   // the views clipped to [lo, hi), offsets relative to lo
    int n_tensors;
} shard_layout;

// mode none: one slice [0, n) whatever the world.
void shard_layout_init(shard_layout *s, shard_mode mode, int world, int rank,
                       const param_tensor *tensors, int n_tensors, int64_t n);
void shard_layout_free(shard_layout *s);
static inline int64_t shard_len(const shard_layout *s) { return s->hi - s->lo; }

// ZeRO-3: every weight resident (tests; evaluations gather by unit,
// shard_eval_begin), then back to this rank's slice (the others' pages
// released). Collective; no-ops in the other modes.
void shard_params_full(const shard_layout *s, dist_ctx *d, model *m);
void shard_params_release(const shard_layout *s, model *m);
// ZeRO-3: every weight resident on rank 0 only (a checkpoint write).
void shard_params_to_root(const shard_layout *s, dist_ctx *d, model *m);

// ZeRO-3 on a device backend: the unit buffers the gathers fill, each the
// largest unit (model_unit_range) in the working dtype: two (one computing,
// one prefetched), three with tied embeddings (at the forward -> backward
// turn the last layer stays held while the head uses two: the final norm
// and the embedding as the LM head); and two fp32 gradient buffers of the
// same size. zero3_units_init also shrinks the model's device weights to
// the rank's slice (a no-op when the model was made so,
// train_step_model_create); nothing in other modes, on host-memory
// backends and on one rank.
enum { ZERO3_MAX_UNIT_BUFFERS = MODEL_MAX_HELD_UNITS };  // a buffer per held unit
static inline int zero3_unit_buffers(bool tie_embeddings) { return tie_embeddings ? 3 : 2; }
typedef struct {
    void *buf[ZERO3_MAX_UNIT_BUFFERS];
    float *grad[2];
    int64_t cap;  // elements each
    int n_buf;    // zero3_unit_buffers
} zero3_units;
void zero3_units_init(zero3_units *u, const shard_layout *s, model *m);
void zero3_units_free(zero3_units *u, backend *bk);

// Where ZeRO-3's gather time goes (accumulated; zero them to start a window).
// A gather started one unit ahead (prefetched) costs the step only the time
// spent waiting for it; the others (the first unit of a pass, the tied
// head's embedding) are gathered on the spot. cpu backend: host wall time
// (a device backend's gathers are asynchronous: not counted there).
typedef struct {
    int64_t prefetched, on_the_spot;          // gathers of each kind
    int64_t kept;                             // needs of a unit still held: no gather
                                              // (the last layer, forward -> backward)
    double prefetched_bytes, on_the_spot_bytes;
    double wait_s;                            // blocked on prefetched gathers
    double prefetched_s;                      // prefetched gathers, start to seen complete
    double on_the_spot_s;                     // the on-the-spot gathers, whole
    int64_t tests;                            // MPI_Test calls between ops
} zero3_stats;

// An evaluation under ZeRO-3: between begin and end the model's forward
// passes gather unit by unit as training does (the same hooks: cpu in
// place + released after use, device unit buffers + prefetch), nothing is
// made whole, so the memory stays within the training plan. model_forward
// leaves the head held for model_argmax_row (model_release_units); end
// releases it. Every rank must run the same forwards (each gather is a
// collective). stats: the gathers counted there, or NULL. Returns NULL
// (and end does nothing) in other modes and on one rank of a device.
typedef struct zero3_hook zero3_hook;
zero3_hook *shard_eval_begin(const shard_layout *s, dist_ctx *d, model *m, backend_comm *comm,
                             const zero3_units *units, zero3_stats *stats);
void shard_eval_end(zero3_hook *z);

// One optimizer step of a model on its rank's rows, sharded as s says.
typedef struct {
    model *m;
    backend_comm *comm;
    dist_ctx *d;
    const shard_layout *s;
    float *adam_m, *adam_v;  // the backend's moments of the slice (shard_len floats)
    int64_t micro_rows;      // rows per forward/backward (gradient accumulation); 0 = all
    const zero3_units *units;  // ZeRO-3 on a device backend
    zero3_stats *stats;        // ZeRO-3 on the cpu: accumulated here (NULL: not kept)
    struct zero_offload *offload;  // AdamW on the host (zero_offload.h: adam_m / adam_v
                                   // are host memory then), or NULL
} shard_step_ctx;

// Zeroes the gradients; runs forward + backward over mb in micro-batches of
// micro_rows rows, accumulating (grad_scale 1 / n_targets_global for all, so
// the loss is normalised over the whole step's real targets); reduces the
// gradients ONCE, overlapped with the last micro-batch's backward; clips by
// the global norm (grad_clip, 0 = off); AdamW on the owned slice (adam_step:
// bias correction); gathers the updated slices. Returns the step's mean loss
// over all ranks; *grad_norm the global norm before clipping.
// skipped (NULL: never skip): a step whose loss or norm is not finite on
// any rank makes no update (the same verdict on every rank).
double shard_step(const shard_step_ctx *c, const model_batch *mb, int64_t n_targets_global,
                  const adamw_hparams *hp, double grad_clip, int64_t adam_step,
                  double *grad_norm, bool *skipped);
