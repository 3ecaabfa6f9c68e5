// train: `stretch train RUN.yaml`, the training run. Sets up the grid, the
// tokenizer, the data and the model from a run file, then walks the
// curriculum stage by stage: each stage sets its RoPE table (the context
// extension), its sequence length, its learning-rate schedule, and trains
// for its budget; passkey accuracy is measured at the eval lengths after
// every stage; checkpoints are written so a run resumes exactly.
//
// Tested by tests/cli/test_train.sh (a short run whose loss falls; config
// errors exit 2 naming file, line and key; stop signals: mid-run, during
// start-up, to one rank of two) and the resume tests; preemption under Slurm
// by tests/cli/test_slurm.sh.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "loader.h"
#include "dist.h"
#include "metrics.h"
#include "model.h"
#include "backend_comm.h"
#include "curriculum.h"
#include "run_config.h"
#include "run_config_check.h"
#include "tok.h"
#include "train_guard.h"
#include "train_history.h"
#include "zero_shard.h"

// Exit status of a run stopped by SIGUSR1/SIGTERM or by its deadline after
// checkpointing; out_dir/stop.json records it, and the batch templates
// requeue on that marker, not on this status (docs/slurm.md).
#define TRAIN_EXIT_REQUEUE 99
// Exit status when a stage's gate is still unmet after its max_extra_tokens.
#define TRAIN_EXIT_GATE 3
// Exit status when train.max_skipped_steps steps in a row had a non-finite
// loss or gradient norm, or a checkpoint would have held a non-finite value
// (train_guard.h); no checkpoint is written from that state.
#define TRAIN_EXIT_DIVERGED 4
// Exit status of a job ended by the watchdog (train.watchdog_minutes without a
// step, or an asynchronous NCCL error): MPI_Abort(97) from train_watchdog.c.
#define TRAIN_EXIT_WATCHDOG 97

typedef struct train_ppl train_ppl;  // held-out perplexity of a run (train_ppl.h)

// Everything a run carries from step to step; what a checkpoint saves.
typedef struct train_state {
    cfg_run cfg;
    curriculum curr;           // cfg's stages resolved (curr_load, once at start)
    dist_ctx dist;
    tok_tokenizer *tok;
    model *m;
    backend *bk;               // where the model computes (train.backend)
    backend_comm *comm;        // gradient all-reduce and ring attention on that backend
    shard_layout shard;        // this rank's slice of the training state (parallel.shard)
    zero3_units units;         // shard parameters on a device: the unit buffers
    zero3_stats zero3;         // shard parameters on the cpu: gather waits since the last log
    zero3_hook *eval_hook;     // shard parameters: an evaluation's unit gathers (train_step_eval_begin)
    int eval_depth;            // nested train_step_eval_begin calls
    float *adam_m, *adam_v;    // (shard_len) AdamW moments of the slice, host (checkpoints)
    float *dadam_m, *dadam_v;  // the backend's moments (== adam_m, adam_v on the cpu and
                               // when offloaded: pinned host memory then)
    struct zero_offload *offload;  // parallel.offload optimizer (zero_offload.h), or NULL
    int64_t step;              // optimizer steps taken, over all stages
    int stage;                 // current stage index
    int64_t stage_step;        // steps taken in the current stage
    int64_t stage_extra_steps; // steps added to the current stage by its gate
    bool gate_failed;          // a gate stayed unmet: the run stops
    int64_t adam_step;         // AdamW bias-correction step (restarts when moments reset)
    int64_t tokens_seen;       // training tokens (real, over all ranks)
    data_cursor cursor;        // where the data stream stands
    bool have_cursor;          // cursor is valid for the current stage's data
    uint64_t eval_seed;        // passkey evaluation samples
    char train_shards[2][1024];  // corpus shards made for this run ("" = none)
    metrics met;
    train_guard guard;         // skipped non-finite steps (train_guard.h)
    train_history hist;        // earlier sessions (metrics.jsonl); last loss / val loss kept current
    train_ppl *ppl;            // eval.ppl_lengths' held-out text and results; NULL = none
    bool is_root;              // world rank 0: prints, writes metrics and checkpoints
    bool dry_run;              // --dry-run --estimate: set up and step, write nothing in out_dir
    char dry_corpus_dir[1024]; // corpus shards made for the dry run, removed after it ("" = none)
    bool dry_made_out_dir;     // the dry run made train.out_dir (removed after it when empty)
} train_state;

// What train_preflight.c shares with the loop (train.c): the passkey
// samples, a stage's shard list and the loader settings of its rows.
passkey_config train_passkey_config(const train_state *st);
int train_stage_shards(const train_state *st, const curr_plan *plan, const char **paths, int cap);
// Passkey accuracy at length L with the model's current RoPE, averaged over
// eval.passkey_depths; depth j uses samples seeded from seed + stride * j.
// by_depth (n_depths) or NULL. `key` names the setting blamed on error.
// Collective. (train.c; the estimate times it, train_estimate.c.)
double train_passkey_mean(train_state *st, int64_t L, int trials, uint64_t seed, uint64_t stride,
                          double *by_depth, const char *key);
data_config train_data_config(const train_state *st, int64_t seq_len, int64_t rows,
                              double passkey_ratio, double copy_ratio, int64_t pose_len,
                              int64_t passkey_pack_min, double passkey_pack_long, uint64_t seed,
                              bool shuffle, bool tasks);

// The RoPE table the training loop installs for stage `stage` at sequences
// of length seq_len (the stage's own seq_len while training, each
// eval.passkey_lengths entry when evaluating).
void train_stage_rope_table(rope_table *t, const train_state *st, int stage, int64_t seq_len);

// A metrics.jsonl evaluation event (eval_passkey, eval_ppl, eval_tasks: the
// fields they share, docs/metrics.md); the caller adds its results and
// writes it.
cJSON *train_eval_event(const train_state *st, const char *event, const char *when, int stage,
                        int64_t length);

// `stretch train` entry point; argv[0] is "train". Returns the exit status.
int train_main(int argc, char **argv);
