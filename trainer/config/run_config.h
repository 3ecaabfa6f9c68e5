// run_config: the run file of `stretch train RUN.yaml` (libyaml) as one
// struct, cfg_run. Everything about a key (its path, type, place in the
// struct, default, help line, whether it may change on resume) lives in ONE
// table, cfg_keys(); parsing, defaults, --help, the echo of the effective
// config (YAML text, also what checkpoints store), `--section.key value`
// overrides and cfg_diff are all driven by it. schedules/example.yaml
// documents every key.
//
// Key paths: "optimizer.lr", "model.dim", and for stages (0-based)
// "stages.1.seq_len", "stages.1.rope.factor". Optional keys take `null` (the
// default) meaning "inherit" or "not given"; see each key's help.
//
// Errors (user input): functions return -1 and write ONE line into err, e.g.
//   run.yaml:12: key 'optimizer.lr': expected a number, got 'abc'
//   command line: key 'stages.1.seq_len': expected an integer, got '1.5'
// so the CLI can die_user() with it (exit 2).
//
// Typical use (the CLI):
//   cfg_run cfg; cfg_init(&cfg);
//   cfg_parse_file(&cfg, path, ...); cfg_apply_override(&cfg, key, value, ...)...;
//   cfg_validate(&cfg, ...); curr_load(&curr, &cfg, ...) (schedules/curriculum.h:
//   the stages' plans and RoPE, checked and resolved once, before any compute);
//   char *text = cfg_echo(&cfg); ... cfg_free(&cfg).
// The cross-key rules and the model view are in run_config_check.h; the
// echo, --help and diff in run_config_echo.h.
//
// Tested by tests/unit/test_config.c: the shipped example parses and
// documents every key, defaults, every error class (file, line and key in
// the message), overrides, echo -> parse round trip, cfg_diff, stage RoPE.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "rope_scaling.h"

#define CFG_MAX_STAGES 16

// Owned lists (free with cfg_free); n == 0 with v == NULL is empty.
typedef struct {
    double *v;
    int n;
} cfg_doubles;

typedef struct {
    int64_t *v;
    int n;
} cfg_ints;

typedef struct {
    char **v;
    int n;
} cfg_strings;

typedef enum {
    CFG_PACKING_PACK,   // documents packed back to back, positions restart, masked
    CFG_PACKING_WHOLE,  // one document per sequence: long ones chunked, short ones dropped
} cfg_packing;

typedef enum {
    CFG_SCHEDULE_INHERIT = -1,  // stages only: use optimizer.schedule
    CFG_SCHEDULE_COSINE,        // linear warmup, cosine decay to lr * min_lr_ratio
    CFG_SCHEDULE_CONSTANT,      // linear warmup, then constant
} cfg_schedule;

// ---------------------------------------------------------------------------
// Sections

typedef struct {
    char *init;           // model.init: checkpoint to start from; NULL = random init
    model_config config;  // architecture. config.rope: the PRETRAINED rope (type
                          // default; theta, partial_rotary_factor, and
                          // max_position_embeddings 0 = stages[0].seq_len)
} cfg_model;

// data.task_mix: the fraction of training rows that are samples of each
// task of data/task.h (field = task name; the real-text task is for
// evaluation only). train_tasks.c maps them onto the task ids.
typedef struct {
    double niah_single, niah_single_uuid, niah_multikey, niah_multivalue, niah_multiquery, vt, cwe, fwe;
} cfg_task_mix;

// data.mix_unit: the passkey / copy / task / text mix draws per row or per batch.
typedef enum { CFG_MIX_ROW, CFG_MIX_BATCH } cfg_mix_unit;

typedef struct {
    char *tokenizer;       // "byte" or a path to a tokenizer.json
    cfg_strings train;     // token shard paths
    cfg_strings val;       // validation shard paths
    cfg_packing packing;
    double passkey_ratio;  // fraction of training sequences that are synthetic passkey tasks
    bool passkey_compact;  // short passkey prompt (fits 128-token byte-level rows)
    double copy_ratio;     // fraction of training sequences that are copy tasks
    bool passkey_answer_only;  // passkey (and task) training rows: loss on the answer only
    cfg_task_mix task_mix;     // fractions of task rows
    char *corpus;          // a packaged corpus name; NULL = none
    cfg_mix_unit mix_unit; // what draws a row's kind: each row, or each batch once
} cfg_data;

typedef struct {
    double lr;             // peak learning rate
    double min_lr_ratio;   // cosine floor = lr * this
    double beta1, beta2, eps, weight_decay;
    double grad_clip;      // global L2 norm; 0 = off
    int64_t warmup_steps;
    cfg_schedule schedule;
} cfg_optimizer;

typedef enum {
    CFG_TRANSPORT_AUTO,  // nccl, or mpi when ranks share a GPU
    CFG_TRANSPORT_NCCL,  // cuda: NCCL send/recv and all-reduce on device buffers
    CFG_TRANSPORT_MPI,   // cuda: MPI through host copies of device buffers
} cfg_transport;

// parallel.shard: what each rank keeps only its 1/world slice of (ZeRO 1/2/3).
typedef enum { CFG_SHARD_NONE, CFG_SHARD_OPTIMIZER, CFG_SHARD_GRADIENTS, CFG_SHARD_PARAMETERS } cfg_shard;
// parallel.offload: what lives in host memory instead of the GPU's.
typedef enum { CFG_OFFLOAD_NONE, CFG_OFFLOAD_OPTIMIZER, CFG_OFFLOAD_ACTIVATIONS, CFG_OFFLOAD_BOTH } cfg_offload;

typedef struct {
    int dp;  // data-parallel degree: ranks that read different sequences
    int sp;  // ring degree (the old name of parallel.ring; kept): ranks of the zig-zag ring
    int ring;     // ring degree; 0 = parallel.sp. Resolved: cfg_parallel_ring()
    int ulysses;  // ulysses (all-to-all) degree; ranks sharing a sequence = ring * ulysses
    cfg_transport transport;  // how cuda ranks exchange K/V and gradients
    cfg_shard shard;          // ZeRO stage over the whole dp x sp world (docs/distributed.md)
    cfg_offload offload;      // state kept in host memory (cuda)
} cfg_parallel;

typedef enum { CFG_BACKEND_CPU, CFG_BACKEND_CUDA } cfg_backend;
typedef enum { CFG_LOCKING_AUTO, CFG_LOCKING_ON, CFG_LOCKING_OFF } cfg_locking;
typedef enum { CFG_DTYPE_AUTO, CFG_DTYPE_FP32, CFG_DTYPE_BF16 } cfg_dtype;
typedef enum { CFG_LOG_AUTO, CFG_LOG_PLAIN } cfg_log_format;

typedef struct {
    int64_t seed;
    char *out_dir;
    int64_t log_every, eval_every, ckpt_every;  // steps; 0 = never (eval, ckpt)
    int keep_last;       // checkpoints kept; 0 = all
    bool recompute;      // per-layer activation recomputation
    cfg_backend backend; // where the model computes: cpu or cuda
    cfg_dtype dtype;     // activations: auto (cuda bf16, cpu fp32), fp32, bf16 (cuda only)
    int64_t max_steps;   // global cap over all stages; 0 = none
    int64_t micro_batch_tokens;  // per rank per forward/backward; 0 = the rank's whole batch
    int max_skipped_steps;  // consecutive non-finite steps that stop the run; 0 = never
    cfg_log_format log_format;  // auto: redraw the progress line on a watched terminal; plain: never
    double ckpt_every_minutes;   // time-based checkpoint interval; 0 = off
    double time_limit_minutes;   // wall-clock budget; 0 = SLURM_JOB_END_TIME or none
    double stop_margin_s;        // kept free before the limit besides the save time
    double watchdog_minutes;     // no step for this long: abort (exit 97); 0 = off
    int hdf5_file_locking;       // cfg_locking
} cfg_train;

typedef struct {
    cfg_ints passkey_lengths;  // empty = every stage's seq_len
    int passkey_trials;        // per (length, depth); 0 = no passkey eval
    cfg_doubles passkey_depths;  // in [0, 1]
    int64_t val_tokens;        // tokens of data.val per evaluation; 0 = all
    cfg_strings tasks;         // task names of the table printed after every stage; [] = none
    int task_trials;           // per (task, length, depth)
    cfg_ints task_lengths;     // empty = passkey_lengths
    double task_threshold;     // effective length: the average accuracy to beat
    cfg_ints ppl_lengths;      // perplexity vs length after every stage; [] = none
    char *ppl_corpus;          // packaged held-out text (data/corpus_shard.h); NULL = none
    cfg_strings ppl_data;      // held-out token shards
    int64_t ppl_tokens;        // predictions scored per length
} cfg_eval;

// A stage's rope section as the user wrote it; curr_load (schedules/
// curriculum.h) turns it into a rope_config. 0 means "derive" (see
// curr_stage_rope).
typedef struct {
    rope_type type;
    double factor;
    int64_t max_position_embeddings;
    int64_t original_max_position_embeddings;
    double attention_factor, beta_fast, beta_slow, mscale, mscale_all_dim;
    bool truncate;                  // yarn: HF truncate
    double low_freq_factor, high_freq_factor;  // llama3
    cfg_doubles short_factor, long_factor;     // longrope, rotary_dim / 2 each
    char *factors_file;             // YAML with short_factor, long_factor, n_hat
    int64_t n_hat;                  // longrope paper: positions below keep default freqs
    bool mixed;                     // LongRoPE2 mixed context windows (curr_stage_mixed)
} cfg_rope;

typedef struct {
    double passkey_acc;        // required passkey accuracy at the stage's seq_len; 0 = no gate
    double val_loss;           // required validation loss at the stage's seq_len; 0 = no gate
    int64_t max_extra_tokens;  // budget extension while a gate is unmet
    char *task;                // a task (data/task.h) whose accuracy at seq_len gates; NULL = none
    double accuracy;           // required accuracy of that task
} cfg_gate;

typedef struct {
    char *name;               // NULL = "stage<i>"
    int64_t seq_len;
    int64_t tokens;           // token budget, or
    int64_t steps;            // step budget (exactly one of the two > 0)
    int64_t batch_tokens;     // tokens per optimizer step over all ranks
    double lr;                // NAN = optimizer.lr
    int64_t warmup_steps;     // -1 = optimizer.warmup_steps
    cfg_schedule schedule;    // CFG_SCHEDULE_INHERIT = optimizer.schedule
    bool carry_moments;       // keep AdamW m and v from the previous stage
    cfg_strings data;         // empty = data.train
    double passkey_ratio;     // NAN = data.passkey_ratio
    int64_t pose_len;         // > seq_len: PoSE, passkey rows' positions skip to span this many
    int64_t passkey_pack_min; // > 0: passkey rows pack samples of lengths in [this, seq_len]
    double passkey_pack_long; // with passkey_pack_min: fraction of packed rows of one seq_len sample
    bool tasks;               // mix data.task_mix rows into this stage
    cfg_gate gate;
    cfg_rope rope;
} cfg_stage;

// Where a key was set: a line of the run file, or -1 for the command line.
typedef struct {
    char *key;
    int line;
} cfg_origin;

typedef struct {
    cfg_model model;
    cfg_data data;
    cfg_optimizer optimizer;
    cfg_parallel parallel;
    cfg_train train;
    cfg_eval eval;
    int n_stages;
    cfg_stage stages[CFG_MAX_STAGES];

    // Bookkeeping for messages, not part of the config (not echoed or diffed).
    char *file;            // name of the parsed run file, or NULL
    cfg_origin *origins;
    int n_origins, cap_origins;
} cfg_run;

// ---------------------------------------------------------------------------
// The key table

typedef enum {
    CFG_T_INT, CFG_T_INT64, CFG_T_FLOAT, CFG_T_DOUBLE, CFG_T_BOOL, CFG_T_STRING, CFG_T_ENUM,
    CFG_T_DOUBLES, CFG_T_INTS, CFG_T_STRINGS,
} cfg_type;

enum {
    CFG_F_NULL = 1,    // accepts null: "inherit" / "not given" (the sentinel in the struct)
    CFG_F_RESUME = 2,  // may differ from the checkpoint's config on resume
};

typedef struct {
    const char *path;    // "optimizer.lr"; stage keys relative to a stage: "rope.type"
    bool stage;          // true: offset into cfg_stage, path prefixed "stages.N."
    cfg_type type;
    int flags;           // CFG_F_*
    size_t offset;       // into cfg_run or cfg_stage
    const char *const *names;  // CFG_T_ENUM: value i is names[i], NULL-terminated
    const char *def;     // default, as YAML text ("3e-4", "null", "[0.5]")
    const char *help;    // one line
} cfg_key;

// The table, in echo order (sections contiguous). *n set.
const cfg_key *cfg_keys(int *n);

// ---------------------------------------------------------------------------
// Life cycle

// Every key at its default, no stages, no file.
void cfg_init(cfg_run *cfg);
void cfg_free(cfg_run *cfg);

// Parses a run file into cfg (on top of what is there; a `stages` list
// replaces the stages). Only per-key checks (types, names, enum values);
// cross-key checks are cfg_validate's. 0, or -1 with a one-line message.
int cfg_parse_file(cfg_run *cfg, const char *path, char *err, size_t errlen);

// Same for YAML text; name is used in messages (e.g. "checkpoint c.h5").
int cfg_parse_string(cfg_run *cfg, const char *text, const char *name, char *err,
                     size_t errlen);

// `--KEY VALUE`: key without dashes ("optimizer.lr", "stages.1.rope.factor";
// the stage must exist). value is YAML ("3e-4", "null", "[a.bin, b.bin]"),
// except that a string key takes it literally ("null" or "" = null where
// allowed) and a list key also takes "a.bin,b.bin". Per-key checks only;
// call cfg_validate after the last override.
int cfg_apply_override(cfg_run *cfg, const char *key, const char *value, char *err,
                       size_t errlen);

// cfg_init + cfg_parse_file + cfg_validate (run_config_check.h); the stages'
// rope keys are checked by curr_load after it. On -1, cfg still needs cfg_free.
int cfg_load(cfg_run *cfg, const char *path, char *err, size_t errlen);

// ---------------------------------------------------------------------------
// Helpers for the modules that use the config

// Writes "FILE:LINE: key 'KEY': MESSAGE" into err, with the line where key
// (or its enclosing section or stage) was set ("command line: ..." for an
// override, no line for a default), and returns -1; when the message starts
// with the key itself, "key 'KEY': " is left out. For errors found after
// parsing too, e.g. a shard of data.train that does not exist.
int cfg_key_error(char *err, size_t errlen, const cfg_run *cfg, const char *key, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));

// Reads a LongRoPE factors file (YAML: short_factor, long_factor lists and
// an optional n_hat). The lists are owned by the caller (free their v).
int cfg_read_factors(cfg_doubles *short_factor, cfg_doubles *long_factor, int64_t *n_hat,
                     const char *path, char *err, size_t errlen);
