// train_step: one optimizer step of `stretch train` under parallel.shard and
// train.micro_batch_tokens (gradient accumulation), on top of the sharded
// step of trainer/parallel/zero_shard.h; and the sizes the rest of train.c
// needs from those settings (activation capacity, moment slice).
//
// Tested by tests/mpi/test_shard.c (the step) and tests/cli/test_zero.sh
// (whole runs: accumulation and every shard mode == the plain run, sharded
// checkpoints resume on another grid / mode, bad modes exit 2).
#pragma once

#include <stdint.h>

#include "model.h"
#include "run_config.h"
#include "zero_plan.h"

typedef struct train_state train_state;

// Rows one rank feeds the model at once: micro_batch_tokens / row_len whole
// rows (at least one), at most `rows`; micro_batch_tokens 0 = all rows.
int64_t train_micro_rows(int64_t micro_batch_tokens, int64_t rows, int64_t row_len);

// Refuses shard / offload settings that cannot work (offload activations
// without train.recompute, offload on the cpu backend) with one line in
// err. The same answer on every rank; called before anything is allocated.
// (The host memory an offload pins: train_offload_host_check.)
int train_zero_check(const cfg_run *c, char *err, size_t errlen);
int train_step_check(const train_state *st, char *err, size_t errlen);
// Offload: -1 with one line in err when the pinned host memory the plan
// needs (zero_mem_plan's host_total, per rank, times the ranks of this
// node) exceeds mem_available bytes (MemAvailable; < 0: unknown, no check).
int train_offload_host_check(const cfg_run *c, const model_config *mc, int64_t n_tokens,
                             int ranks_on_node, int64_t mem_available, char *err, size_t errlen);
// The model's options of a run (train.recompute, parallel.offload).
model_opts train_model_opts(const cfg_run *c);
// The activation dtype of a run: train.dtype, auto = bf16 on cuda, fp32 on cpu.
bk_dtype train_run_dtype(const cfg_run *c);

// --dry-run: the per-rank plan of the run's shard / offload mode.
void train_print_zero_plan(const cfg_run *c, const model_config *mc, int64_t n_tokens);

// The run's model on st->bk: under shard parameters on a device backend
// only the rank's slice of the weights is allocated there (the plan's
// params and work), the rest never.
model *train_step_model_create(const train_state *st, const model_config *mc, int64_t max_tokens);

// The shard layout, the moments (host and backend, shard-length) and ZeRO-3's
// unit buffers of a run whose model exists; what train_state holds for the
// step.
void train_step_setup(train_state *st);
void train_step_free(train_state *st);
// Around an evaluation's forwards (validation loss, passkey, tasks,
// perplexity, the time estimate): under shard parameters they gather unit
// by unit through the training's hooks (shard_eval_begin), nothing whole,
// so the evaluation stays within the training's memory plan. Collective
// (every rank runs the same forwards in between); pairs nest.
void train_step_eval_begin(train_state *st);
void train_step_eval_end(train_state *st);

// shard parameters on the cpu: this rank's gather times since the last call
// added to a step event (metrics.jsonl) and zeroed: zero3_prefetched,
// zero3_wait_s, zero3_prefetched_s (start to the first MPI_Test that saw
// it complete, or the wait's end), zero3_on_the_spot, zero3_on_the_spot_s,
// their bytes, zero3_kept (needs of a unit still held: the last layer from
// the forward into its backward, no gather), zero3_mpi_tests, and zero3_hidden, the share of the
// prefetched gathers' time hidden behind compute (1 - wait / what they
// would take on the spot, at the on-the-spot gathers' rate). Nothing in
// other modes.
struct cJSON;
void train_zero3_log(train_state *st, struct cJSON *step_event);

// The device bytes the run's plan holds per rank (zero_mem_plan's
// device_total for the model's capacity, mode and offload: what --dry-run
// prints), and the backend's peak so far (backend_mem_stats). Device
// backends: logged as device_plan_bytes (run_start) and device_peak_bytes
// (step, run_end) in metrics.jsonl; an evaluation must not raise the peak
// above the training's (shard parameters gathers it by unit).
size_t train_step_device_plan(const train_state *st);
void train_device_mem_log(train_state *st, struct cJSON *event);

// Forward, backward (micro-batches), reduction, clipping, AdamW, gather.
// Returns the mean loss of the step; *grad_norm the norm before clipping.
// *skipped: the loss or norm was not finite, no update was made (train_guard.h).
double train_step_run(train_state *st, const model_batch *mb, int64_t n_targets_global, double lr,
                      double *grad_norm, bool *skipped);
