// run_config: the table of run-file keys, defaults, YAML parsing and
// command-line overrides. The cross-key rules and resolved views are in
// run_config_check.c; echo, --help and diff in run_config_echo.c.
#include "run_config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "die.h"
#include "errmsg.h"
#include "run_config_check.h"

// ---------------------------------------------------------------------------
// The table

static const char *const rope_type_names[] = {"default", "linear", "dynamic", "yarn",
                                               "longrope", "llama3", NULL};
static const char *const rope_layout_names[] = {"half", "interleaved", NULL};
static const char *const packing_names[] = {"pack", "whole", NULL};
static const char *const mix_unit_names[] = {"row", "batch", NULL};
static const char *const schedule_names[] = {"cosine", "constant", NULL};
static const char *const backend_names[] = {"cpu", "cuda", NULL};
static const char *const locking_names[] = {"auto", "on", "off", NULL};
static const char *const dtype_names[] = {"auto", "fp32", "bf16", NULL};
static const char *const transport_names[] = {"auto", "nccl", "mpi", NULL};
static const char *const shard_names[] = {"none", "optimizer", "gradients", "parameters", NULL};
static const char *const offload_names[] = {"none", "optimizer", "activations", "both", NULL};
static const char *const log_format_names[] = {"auto", "plain", NULL};

// Enum fields are read and written as int.
_Static_assert(sizeof(rope_type) == sizeof(int), "rope_type must be int-sized");
_Static_assert(sizeof(rope_layout) == sizeof(int), "rope_layout must be int-sized");
_Static_assert(sizeof(cfg_packing) == sizeof(int), "cfg_packing must be int-sized");
_Static_assert(sizeof(cfg_schedule) == sizeof(int), "cfg_schedule must be int-sized");
_Static_assert(ROPE_TYPE_LLAMA3 == 5 && ROPE_LAYOUT_INTERLEAVED == 1,
               "rope_type_names / rope_layout_names follow the enum order");
_Static_assert(CFG_MIX_BATCH == 1 && sizeof(cfg_mix_unit) == sizeof(int),
               "mix_unit_names follows the enum order; enums are int-sized");
_Static_assert(CFG_PACKING_WHOLE == 1 && CFG_SCHEDULE_CONSTANT == 1,
               "packing_names / schedule_names follow the enum order");
_Static_assert(sizeof(cfg_backend) == sizeof(int) && sizeof(cfg_dtype) == sizeof(int) &&
                   sizeof(cfg_transport) == sizeof(int),
               "cfg_backend / cfg_dtype / cfg_transport must be int-sized");
_Static_assert(CFG_BACKEND_CUDA == 1 && CFG_DTYPE_BF16 == 2 && CFG_TRANSPORT_MPI == 2,
               "backend_names / dtype_names / transport_names follow the enum order");
_Static_assert(sizeof(cfg_shard) == sizeof(int) && sizeof(cfg_offload) == sizeof(int) &&
                   CFG_SHARD_PARAMETERS == 3 && CFG_OFFLOAD_BOTH == 3,
               "shard_names / offload_names follow the enum order");

// Size of the storage each type expects; SIZED() refuses to compile a table
// row whose field has another size.
#define SZ_INT sizeof(int)
#define SZ_INT64 sizeof(int64_t)
#define SZ_FLOAT sizeof(float)
#define SZ_DOUBLE sizeof(double)
#define SZ_BOOL sizeof(bool)
#define SZ_STRING sizeof(char *)
#define SZ_ENUM sizeof(int)
#define SZ_DOUBLES sizeof(cfg_doubles)
#define SZ_INTS sizeof(cfg_ints)
#define SZ_STRINGS sizeof(cfg_strings)
#define SIZED(T, field, ty) \
    (offsetof(T, field) + 0 * sizeof(char[sizeof(((T *)0)->field) == SZ_##ty ? 1 : -1]))

#define RUN(path, ty, flags, field, names, def, help) \
    {path, false, CFG_T_##ty, flags, SIZED(cfg_run, field, ty), names, def, help}
#define STG(path, ty, flags, field, names, def, help) \
    {path, true, CFG_T_##ty, flags, SIZED(cfg_stage, field, ty), names, def, help}

enum { NUL = CFG_F_NULL, RES = CFG_F_RESUME };

static const cfg_key KEYS[] = {
    RUN("model.init", STRING, NUL | RES, model.init, NULL, "null",
        "checkpoint (.h5) to start from, e.g. from `stretch import`; null = random init from "
        "train.seed. Its architecture must match the model keys. Ignored on resume."),
    RUN("model.dim", INT, 0, model.config.dim, NULL, "256", "hidden size C"),
    RUN("model.n_layers", INT, 0, model.config.n_layers, NULL, "4", "decoder layers"),
    RUN("model.n_heads", INT, 0, model.config.n_heads, NULL, "8", "attention (query) heads H"),
    RUN("model.n_kv_heads", INT, 0, model.config.n_kv_heads, NULL, "4",
        "key/value heads (grouped-query attention); must divide n_heads"),
    RUN("model.head_dim", INT, 0, model.config.head_dim, NULL, "0",
        "size D of each head, even; 0 = dim / n_heads"),
    RUN("model.ffn_dim", INT, 0, model.config.ffn_dim, NULL, "688", "SwiGLU hidden size F"),
    RUN("model.vocab_size", INT, 0, model.config.vocab_size, NULL, "0",
        "vocabulary size V; 0 = the tokenizer's"),
    RUN("model.norm_eps", FLOAT, 0, model.config.norm_eps, NULL, "1e-5", "RMSNorm epsilon"),
    RUN("model.tie_embeddings", BOOL, 0, model.config.tie_embeddings, NULL, "false",
        "the LM head shares the token embedding matrix"),
    RUN("model.rope_theta", DOUBLE, 0, model.config.rope.theta, NULL, "10000",
        "RoPE base (HF rope_theta)"),
    RUN("model.rope_layout", ENUM, 0, model.config.rope_layout, rope_layout_names, "half",
        "RoPE channel pairs: half = (x[i], x[i+D/2]) as HF Llama; interleaved = (x[2i], "
        "x[2i+1]) as GPT-J and Meta's reference code"),
    RUN("model.partial_rotary_factor", DOUBLE, 0, model.config.rope.partial_rotary_factor, NULL,
        "1.0", "fraction of each head that RoPE rotates (HF partial_rotary_factor)"),
    RUN("model.max_position_embeddings", INT64, 0, model.config.rope.max_position_embeddings,
        NULL, "0",
        "the PRETRAINED context length, which every stage's RoPE scaling is relative to; 0 = "
        "stages.0.seq_len (a model trained from scratch by this run)"),

    RUN("data.tokenizer", STRING, 0, data.tokenizer, NULL, "byte",
        "'byte' (256 byte values + specials), the path of a Hugging Face tokenizer.json, or of a "
        "GGUF model file (its tokenizer.ggml.* metadata)"),
    RUN("data.train", STRINGS, 0, data.train, NULL, "[]",
        "training token shards (from `stretch tokenize`)"),
    RUN("data.val", STRINGS, RES, data.val, NULL, "[]",
        "validation token shards; [] = no validation loss"),
    RUN("data.packing", ENUM, 0, data.packing, packing_names, "pack",
        "pack = documents back to back, positions restart and attention is masked at each "
        "boundary; whole = one document per sequence, longer ones chunked, shorter dropped"),
    RUN("data.passkey_ratio", DOUBLE, 0, data.passkey_ratio, NULL, "0.0",
        "fraction (0..1) of training sequences that are synthetic passkey-retrieval tasks"),
    RUN("data.passkey_answer_only", BOOL, 0, data.passkey_answer_only, NULL, "false",
        "passkey training rows carry a loss only on the answer (all of the gradient teaches "
        "retrieval); false = next-token loss on the whole row"),
    RUN("data.copy_ratio", DOUBLE, 0, data.copy_ratio, NULL, "0.0",
        "fraction (0..1) of training sequences that are a random string followed by its copy: "
        "dense copy-from-context practice that makes small models learn retrieval fast"),
    RUN("data.passkey_compact", BOOL, 0, data.passkey_compact, NULL, "false",
        "short passkey prompt (\"The pass key is 12345.\" ... \"The pass key is\") for short contexts"),
    RUN("data.task_mix.niah_single", DOUBLE, 0, data.task_mix.niah_single, NULL, "0.0",
        "fraction (0..1) of training sequences that are niah_single samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.niah_single_uuid", DOUBLE, 0, data.task_mix.niah_single_uuid, NULL, "0.0",
        "fraction (0..1) of training sequences that are niah_single_uuid samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.niah_multikey", DOUBLE, 0, data.task_mix.niah_multikey, NULL, "0.0",
        "fraction (0..1) of training sequences that are niah_multikey samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.niah_multivalue", DOUBLE, 0, data.task_mix.niah_multivalue, NULL, "0.0",
        "fraction (0..1) of training sequences that are niah_multivalue samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.niah_multiquery", DOUBLE, 0, data.task_mix.niah_multiquery, NULL, "0.0",
        "fraction (0..1) of training sequences that are niah_multiquery samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.vt", DOUBLE, 0, data.task_mix.vt, NULL, "0.0",
        "fraction (0..1) of training sequences that are vt samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.cwe", DOUBLE, 0, data.task_mix.cwe, NULL, "0.0",
        "fraction (0..1) of training sequences that are cwe samples (data/task.h, docs/eval.md)"),
    RUN("data.task_mix.fwe", DOUBLE, 0, data.task_mix.fwe, NULL, "0.0",
        "fraction (0..1) of training sequences that are fwe samples (data/task.h, docs/eval.md)"),
    RUN("data.mix_unit", ENUM, 0, data.mix_unit, mix_unit_names, "row",
        "what draws a training row's kind (passkey, copy, task or text) from the ratios: row = "
        "each row; batch = once per optimizer step for all its rows, so the few answer targets "
        "of answer-only passkey rows are not averaged in with the many of text rows"),
    RUN("data.corpus", STRING, NUL, data.corpus, NULL, "null",
        "name of a packaged text corpus to train on (tokenized on the fly); null = none"),

    RUN("optimizer.lr", DOUBLE, 0, optimizer.lr, NULL, "3e-4",
        "peak learning rate (AdamW); stages may override"),
    RUN("optimizer.min_lr_ratio", DOUBLE, 0, optimizer.min_lr_ratio, NULL, "0.1",
        "cosine floor as a fraction (0..1) of the peak"),
    RUN("optimizer.beta1", DOUBLE, 0, optimizer.beta1, NULL, "0.9", "AdamW beta1, in [0, 1)"),
    RUN("optimizer.beta2", DOUBLE, 0, optimizer.beta2, NULL, "0.95", "AdamW beta2, in [0, 1)"),
    RUN("optimizer.eps", DOUBLE, 0, optimizer.eps, NULL, "1e-8", "AdamW epsilon"),
    RUN("optimizer.weight_decay", DOUBLE, 0, optimizer.weight_decay, NULL, "0.1",
        "decoupled weight decay, on matrices only (not norms)"),
    RUN("optimizer.grad_clip", DOUBLE, 0, optimizer.grad_clip, NULL, "1.0",
        "clip the global gradient L2 norm to this; 0 = off"),
    RUN("optimizer.warmup_steps", INT64, 0, optimizer.warmup_steps, NULL, "100",
        "linear warmup steps at the start of every stage; stages may override"),
    RUN("optimizer.schedule", ENUM, 0, optimizer.schedule, schedule_names, "cosine",
        "cosine = warmup then cosine decay to lr * min_lr_ratio over each stage; constant = "
        "warmup then flat"),

    RUN("parallel.dp", INT, RES, parallel.dp, NULL, "1",
        "data-parallel ranks (each reads different sequences); dp * ring * ulysses = MPI world size"),
    RUN("parallel.sp", INT, RES, parallel.sp, NULL, "1",
        "ring-attention ranks (zig-zag split); the old name of parallel.ring, which it keeps "
        "meaning: the ranks sharing a sequence are parallel.ring x parallel.ulysses"),
    RUN("parallel.ring", INT, RES, parallel.ring, NULL, "0",
        "ring-attention degree (zig-zag ring across ring groups; suits slow links, any degree); "
        "0 = parallel.sp"),
    RUN("parallel.ulysses", INT, RES, parallel.ulysses, NULL, "1",
        "ulysses (all-to-all) degree inside each ring position: heads split over these ranks "
        "(adjacent ranks: one node); must divide model.n_heads; dp * ring * ulysses = world size"),
    RUN("parallel.transport", ENUM, RES, parallel.transport, transport_names, "auto",
        "cuda backend: how ranks exchange ring K/V and gradients; nccl = NCCL on device "
        "buffers (one GPU per rank), mpi = MPI through host copies (works when ranks share a "
        "GPU), auto = nccl unless ranks share a GPU"),
    RUN("parallel.shard", ENUM, RES, parallel.shard, shard_names, "none",
        "training state split over all dp x sp ranks (ZeRO): none; optimizer = AdamW moments "
        "and master-weight updates (ZeRO-1); gradients = also gradients reduce-scattered "
        "(ZeRO-2); parameters = also the weights, gathered per layer (ZeRO-3). "
        "docs/distributed.md"),
    RUN("parallel.offload", ENUM, RES, parallel.offload, offload_names, "none",
        "cuda: keep in pinned host memory: optimizer = fp32 master weights and AdamW moments "
        "(AdamW on the CPU), activations = the per-layer recompute checkpoints, both; none"),

    RUN("train.seed", INT64, 0, train.seed, NULL, "1234",
        "seed of every random stream (init, data order, passkeys)"),
    RUN("train.out_dir", STRING, RES, train.out_dir, NULL, "runs/stretch",
        "checkpoints, metrics.jsonl and logs; a run resumes from its latest checkpoint here"),
    RUN("train.log_every", INT64, RES, train.log_every, NULL, "10",
        "print the progress line and write a metrics row every N steps"),
    RUN("train.eval_every", INT64, RES, train.eval_every, NULL, "200",
        "evaluate (validation loss, passkey) every N steps and at each stage end; 0 = stage "
        "ends only"),
    RUN("train.ckpt_every", INT64, RES, train.ckpt_every, NULL, "500",
        "checkpoint every N steps, besides each stage end and SIGTERM/SIGUSR1; 0 = only those"),
    RUN("train.keep_last", INT, RES, train.keep_last, NULL, "3", "checkpoints kept; 0 = all"),
    RUN("train.recompute", BOOL, RES, train.recompute, NULL, "false",
        "recompute each layer's activations in backward (less memory, more compute)"),
    RUN("train.backend", ENUM, RES, train.backend, backend_names, "cpu",
        "where the model computes: cpu (fp32 reference kernels) or cuda (one GPU per rank; "
        "needs a CUDA build); also --backend; checkpoints resume on either"),
    RUN("train.dtype", ENUM, RES, train.dtype, dtype_names, "auto",
        "activation and matmul precision: auto = bf16 on cuda, fp32 on cpu; fp32; bf16 (cuda "
        "only). Master weights, gradients and AdamW state are always fp32"),
    RUN("train.max_steps", INT64, RES, train.max_steps, NULL, "0",
        "stop after this many steps in all (a global cap over the stages); 0 = none"),
    RUN("train.micro_batch_tokens", INT64, RES, train.micro_batch_tokens, NULL, "0",
        "gradient accumulation: tokens one rank feeds the model at once (whole rows of "
        "seq_len / parallel.sp, at least one); the step's gradients are reduced once after "
        "its last micro-batch; 0 = the rank's whole batch at once"),
    RUN("train.max_skipped_steps", INT, RES, train.max_skipped_steps, NULL, "3",
        "a step whose loss or gradient norm is not finite is skipped (no update); this many "
        "in a row stop the run (exit 4) without a checkpoint; 0 = never stop"),
    RUN("train.log_format", ENUM, RES, train.log_format, log_format_names, "auto",
        "progress lines: auto = redrawn in place on a terminal (rank 0, not under mpirun/srun), "
        "else one plain line per log step; plain = always plain lines"),
    RUN("train.ckpt_every_minutes", DOUBLE, RES, train.ckpt_every_minutes, NULL, "0",
        "also checkpoint when this many minutes passed since the last save; 0 = off"),
    RUN("train.time_limit_minutes", DOUBLE, RES, train.time_limit_minutes, NULL, "0",
        "the run's wall-clock budget from start; 0 = SLURM_JOB_END_TIME when set, else none. "
        "The trainer checkpoints and exits 99 before it, leaving the measured save time plus "
        "train.stop_margin_s (docs/slurm.md)"),
    RUN("train.stop_margin_s", DOUBLE, RES, train.stop_margin_s, NULL, "60",
        "seconds kept free before the time limit besides the measured save time"),
    RUN("train.watchdog_minutes", DOUBLE, RES, train.watchdog_minutes, NULL, "0",
        "abort the whole job (exit 97) when no step finished for this many minutes; 0 = off"),
    RUN("train.hdf5_file_locking", ENUM, RES, train.hdf5_file_locking, locking_names, "auto",
        "HDF5's flock on checkpoint files: on, off (Lustre without flock, NFS nolock), auto = "
        "off when out_dir cannot flock or HDF5_USE_FILE_LOCKING=FALSE"),

    RUN("eval.passkey_lengths", INTS, RES, eval.passkey_lengths, NULL, "[]",
        "context lengths of the passkey evaluation; [] = every stage's seq_len"),
    RUN("eval.passkey_trials", INT, RES, eval.passkey_trials, NULL, "20",
        "passkey trials per (length, depth); 0 = no passkey evaluation"),
    RUN("eval.passkey_depths", DOUBLES, RES, eval.passkey_depths, NULL, "[0.1, 0.5, 0.9]",
        "where the key hides, as a fraction (0..1) of the context"),
    RUN("eval.val_tokens", INT64, RES, eval.val_tokens, NULL, "65536",
        "tokens of data.val per validation-loss evaluation; 0 = all"),
    RUN("eval.tasks", STRINGS, RES, eval.tasks, NULL, "[]",
        "RULER-style tasks (docs/eval.md) of the table printed after every stage; [] = none"),
    RUN("eval.task_trials", INT, RES, eval.task_trials, NULL, "5",
        "task samples per (task, length, depth of eval.passkey_depths)"),
    RUN("eval.task_lengths", INTS, RES, eval.task_lengths, NULL, "[]",
        "context lengths of the task table; [] = eval.passkey_lengths"),
    RUN("eval.task_threshold", DOUBLE, RES, eval.task_threshold, NULL, "0.856",
        "effective length of the task table: the longest length whose average accuracy (and "
        "every shorter one's) reaches this (RULER: 0.856)"),
    RUN("eval.ppl_lengths", INTS, RES, eval.ppl_lengths, NULL, "[]",
        "context lengths of the perplexity curve on held-out text printed after every stage "
        "(eval.ppl_corpus, eval.ppl_data); [] = none"),
    RUN("eval.ppl_corpus", STRING, NUL | RES, eval.ppl_corpus, NULL, "null",
        "a packaged corpus held out for the perplexity curve (kjv: the King James Bible, Debian "
        "bible-kjv-text), tokenized into train.out_dir/data; null = none"),
    RUN("eval.ppl_data", STRINGS, RES, eval.ppl_data, NULL, "[]",
        "token shards of held-out text for the perplexity curve (with eval.ppl_corpus: both)"),
    RUN("eval.ppl_tokens", INT64, RES, eval.ppl_tokens, NULL, "32768",
        "predictions scored per length: ceil(ppl_tokens / length) windows, evenly spaced over the text"),

    STG("name", STRING, NUL | RES, name, NULL, "null",
        "label in logs and metrics (unique, <= 63 chars); null = stage<i>"),
    STG("seq_len", INT64, 0, seq_len, NULL, "0",
        "context length of this stage (required; >= the previous stage's)"),
    STG("tokens", INT64, 0, tokens, NULL, "0", "token budget; give exactly one of tokens, steps"),
    STG("steps", INT64, 0, steps, NULL, "0", "optimizer-step budget; give exactly one of tokens, steps"),
    STG("batch_tokens", INT64, 0, batch_tokens, NULL, "0",
        "tokens per optimizer step over all ranks (required): a multiple of seq_len whose "
        "sequence count is a multiple of parallel.dp"),
    STG("lr", DOUBLE, NUL, lr, NULL, "null", "peak learning rate; null = optimizer.lr"),
    STG("warmup_steps", INT64, NUL, warmup_steps, NULL, "null",
        "warmup steps; null = optimizer.warmup_steps"),
    STG("schedule", ENUM, NUL, schedule, schedule_names, "null",
        "learning-rate schedule; null = optimizer.schedule"),
    STG("carry_moments", BOOL, 0, carry_moments, NULL, "true",
        "keep AdamW's m and v from the previous stage (false: reset them at the switch)"),
    STG("data", STRINGS, NUL, data, NULL, "null",
        "training shards of this stage (e.g. longer documents); null or [] = data.train"),
    STG("passkey_ratio", DOUBLE, NUL, passkey_ratio, NULL, "null",
        "passkey fraction of this stage; null = data.passkey_ratio"),
    STG("pose_len", INT64, 0, pose_len, NULL, "0",
        "PoSE: passkey rows of seq_len tokens get positions that skip ahead at a random "
        "point so they span up to this length (long distances at short-row cost); 0 = off"),
    STG("passkey_pack_min", INT64, 0, passkey_pack_min, NULL, "0",
        "> 0: each passkey row packs several samples (separate documents) with lengths "
        "log-uniform in [this, seq_len], so one row trains short and long distances; "
        "0 = one sample of seq_len per row"),
    STG("passkey_pack_long", DOUBLE, 0, passkey_pack_long, NULL, "0.0",
        "with passkey_pack_min > 0: the fraction (0..1) of packed rows that hold one sample of "
        "seq_len instead (the distances an evaluation at seq_len asks for, which log-uniform "
        "packing rarely draws); 0 = every row packed"),
    STG("tasks", BOOL, 0, tasks, NULL, "true",
        "mix data.task_mix's task rows into this stage (false: e.g. a stage too short for them)"),
    STG("gate.task", STRING, NUL | RES, gate.task, NULL, "null",
        "a task (docs/eval.md) whose accuracy at seq_len gates the next stage; null = none"),
    STG("gate.accuracy", DOUBLE, RES, gate.accuracy, NULL, "0.0",
        "the accuracy (0..1) gate.task must reach"),
    STG("gate.passkey_acc", DOUBLE, RES, gate.passkey_acc, NULL, "0.0",
        "passkey accuracy (0..1) required at seq_len before the next stage; 0 = no gate"),
    STG("gate.val_loss", DOUBLE, RES, gate.val_loss, NULL, "0.0",
        "validation loss required at seq_len before the next stage; 0 = no gate"),
    STG("gate.max_extra_tokens", INT64, RES, gate.max_extra_tokens, NULL, "0",
        "tokens the stage may run past its budget while a gate is unmet, then the run stops"),
    STG("rope.type", ENUM, 0, rope.type, rope_type_names, "default",
        "RoPE scaling: default (none), linear (position interpolation), dynamic (NTK), yarn, "
        "longrope, llama3"),
    STG("rope.factor", DOUBLE, 0, rope.factor, NULL, "0.0",
        "scale factor; 0 = max_position_embeddings / original_max_position_embeddings"),
    STG("rope.original_max_position_embeddings", INT64, 0, rope.original_max_position_embeddings,
        NULL, "0", "pretrained context; 0 = model.max_position_embeddings or stages.0.seq_len"),
    STG("rope.max_position_embeddings", INT64, 0, rope.max_position_embeddings, NULL, "0",
        "context the scaling targets; 0 = seq_len (dynamic: the original)"),
    STG("rope.attention_factor", DOUBLE, 0, rope.attention_factor, NULL, "0.0",
        "yarn, longrope: multiplies cos and sin; 0 = derived from the factor"),
    STG("rope.beta_fast", DOUBLE, 0, rope.beta_fast, NULL, "32.0",
        "yarn: rotations below which pairs are interpolated fully"),
    STG("rope.beta_slow", DOUBLE, 0, rope.beta_slow, NULL, "1.0",
        "yarn: rotations above which pairs keep their frequency"),
    STG("rope.mscale", DOUBLE, 0, rope.mscale, NULL, "0.0",
        "yarn: DeepSeek mscale; 0 = unset"),
    STG("rope.mscale_all_dim", DOUBLE, 0, rope.mscale_all_dim, NULL, "0.0",
        "yarn: DeepSeek mscale_all_dim; 0 = unset"),
    STG("rope.truncate", BOOL, 0, rope.truncate, NULL, "true",
        "yarn: round the ramp bounds to integers (HF truncate)"),
    STG("rope.low_freq_factor", DOUBLE, 0, rope.low_freq_factor, NULL, "1.0",
        "llama3: wavelengths above original / this are divided by factor"),
    STG("rope.high_freq_factor", DOUBLE, 0, rope.high_freq_factor, NULL, "4.0",
        "llama3: wavelengths below original / this are kept"),
    STG("rope.short_factor", DOUBLES, 0, rope.short_factor, NULL, "[]",
        "longrope: per-pair factors used up to the original length (rotary_dim/2 values)"),
    STG("rope.long_factor", DOUBLES, 0, rope.long_factor, NULL, "[]",
        "longrope: per-pair factors used beyond the original length (rotary_dim/2 values)"),
    STG("rope.factors_file", STRING, NUL, rope.factors_file, NULL, "null",
        "longrope: YAML file with short_factor, long_factor and optionally n_hat, instead of "
        "inline lists"),
    STG("rope.n_hat", INT64, 0, rope.n_hat, NULL, "0",
        "longrope (paper, not HF): positions below n_hat keep the default frequencies"),
    STG("rope.mixed", BOOL, 0, rope.mixed, NULL, "false",
        "LongRoPE2 mixed context windows: documents up to the original context train with the "
        "original RoPE (longrope: the short factors), longer ones with this stage's, in the "
        "same step; exported as longrope"),
};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

const cfg_key *cfg_keys(int *n) {
    *n = N_KEYS;
    return KEYS;
}

// The keys of a LongRoPE factors file (rope.factors_file).
typedef struct {
    cfg_doubles short_factor, long_factor;
    int64_t n_hat;
} factors_file;

#define FAC(path, ty, field, def, help) \
    {path, false, CFG_T_##ty, 0, SIZED(factors_file, field, ty), NULL, def, help}
static const cfg_key FACTOR_KEYS[] = {
    FAC("short_factor", DOUBLES, short_factor, "[]", "per-pair factors up to the original length"),
    FAC("long_factor", DOUBLES, long_factor, "[]", "per-pair factors beyond the original length"),
    FAC("n_hat", INT64, n_hat, "0", "positions below keep the default frequencies"),
};

// ---------------------------------------------------------------------------
// Messages

// "NAME:LINE: key 'KEY': message" (line <= 0: no line; key NULL: no key).
static int fail_at(char *err, size_t errlen, const char *name, int line, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail_at(char *err, size_t errlen, const char *name, int line, const char *key,
                   const char *fmt, ...) {
    char msg[512], where[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(where, sizeof where, "%s:%d", name, line);
    else
        snprintf(where, sizeof where, "%s", name);
    if (key) return errmsg(err, errlen, "%s: key '%s': %s", where, key, msg);
    return errmsg(err, errlen, "%s: %s", where, msg);
}

static void origin_set(cfg_run *cfg, const char *key, int line) {
    for (int i = 0; i < cfg->n_origins; i++) {
        if (strcmp(cfg->origins[i].key, key) == 0) {
            cfg->origins[i].line = line;
            return;
        }
    }
    if (cfg->n_origins == cfg->cap_origins) {
        cfg->cap_origins = cfg->cap_origins ? 2 * cfg->cap_origins : 64;
        cfg->origins = xrealloc(cfg->origins, sizeof(cfg_origin) * (size_t)cfg->cap_origins);
    }
    cfg->origins[cfg->n_origins].key = xstrdup(key);
    cfg->origins[cfg->n_origins].line = line;
    cfg->n_origins++;
}

// The line where key, or else its nearest enclosing section, was set:
// > 0 a line of cfg->file, -1 the command line, 0 unknown (a default).
static int origin_line(const cfg_run *cfg, const char *key) {
    char k[256];
    snprintf(k, sizeof k, "%s", key);
    for (;;) {
        for (int i = 0; i < cfg->n_origins; i++)
            if (strcmp(cfg->origins[i].key, k) == 0) return cfg->origins[i].line;
        char *dot = strrchr(k, '.');
        if (!dot) return 0;
        *dot = '\0';
    }
}

int cfg_key_error(char *err, size_t errlen, const cfg_run *cfg, const char *key, const char *fmt,
                  ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = origin_line(cfg, key);
    const char *name = cfg->file ? cfg->file : "run config";
    if (line == -1) name = "command line";
    size_t n = strlen(key);  // a message that starts with the key names it already
    bool named = !strncmp(msg, key, n) && (msg[n] == ' ' || msg[n] == ':' || msg[n] == '/');
    return fail_at(err, errlen, name, line, named ? NULL : key, "%s", msg);
}

// ---------------------------------------------------------------------------
// A growing string

typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static void sb_append(strbuf *b, const char *data, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, data, n);
    b->n += n;
    b->s[b->n] = '\0';
}

// ---------------------------------------------------------------------------
// Scalars

static const char *scalar(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static bool is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

// What a node is, for "got ..." in messages.
static void describe(char *out, size_t outlen, const yaml_node_t *n) {
    if (n->type == YAML_SEQUENCE_NODE)
        snprintf(out, outlen, "a list");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(out, outlen, "a mapping");
    else if (is_null(n))
        snprintf(out, outlen, "null");
    else if (strlen(scalar(n)) > 40)
        snprintf(out, outlen, "'%.37s...'", scalar(n));
    else
        snprintf(out, outlen, "'%s'", scalar(n));
}

// Decimal integer, optional sign, '_' allowed between digits (YAML 1.1).
static int parse_int64(const char *s, int64_t *out) {
    char digits[64];
    size_t n = 0;
    const char *p = s;
    if (*p == '+' || *p == '-') digits[n++] = *p++;
    if (*p < '0' || *p > '9') return -1;
    for (; *p; p++) {
        if (*p == '_' && p[1] >= '0' && p[1] <= '9' && p[-1] >= '0' && p[-1] <= '9') continue;
        if (*p < '0' || *p > '9' || n + 1 >= sizeof digits) return -1;
        digits[n++] = *p;
    }
    digits[n] = '\0';
    errno = 0;
    char *end;
    long long v = strtoll(digits, &end, 10);
    if (errno == ERANGE || *end) return -1;
    *out = v;
    return 0;
}

// A finite decimal number (no hex, inf or nan).
static int parse_double(const char *s, double *out) {
    if (!*s || strpbrk(s, "xXnNiI_")) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    // ERANGE on underflow still gives the nearest (subnormal or zero) value: accept it.
    if (*end || !isfinite(v) || (errno == ERANGE && fabs(v) >= DBL_MIN)) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out) {
    double d;
    if (parse_double(s, &d)) return -1;
    float f = strtof(s, NULL);  // direct rounding to float, not via double
    if (!isfinite(f)) return -1;
    *out = f;
    return 0;
}

static int parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcmp(s, yes[i])) return *out = true, 0;
        if (!strcmp(s, no[i])) return *out = false, 0;
    }
    return -1;
}

static int parse_enum(const char *s, const char *const *names, int *out) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i])) return *out = i, 0;
    return -1;
}

// ---------------------------------------------------------------------------
// Setting one key from a YAML node

typedef struct {
    cfg_run *cfg;       // origins are recorded here; NULL: not recorded
    const char *name;   // file name, or "command line" (then lines are not printed)
    bool cmdline;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} parse_ctx;

static int ctx_line(const parse_ctx *c, const yaml_node_t *n) { return c->cmdline ? 0 : line_of(n); }

static void free_strings(cfg_strings *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void free_list(void *field, cfg_type type) {
    if (type == CFG_T_STRINGS) {
        free_strings(field);
    } else if (type == CFG_T_DOUBLES) {
        cfg_doubles *l = field;
        free(l->v);
        l->v = NULL;
        l->n = 0;
    } else if (type == CFG_T_INTS) {
        cfg_ints *l = field;
        free(l->v);
        l->v = NULL;
        l->n = 0;
    }
}

static const char *expected(const cfg_key *k) {
    switch (k->type) {
    case CFG_T_INT:
    case CFG_T_INT64: return k->flags & CFG_F_NULL ? "an integer >= 0 or null" : "an integer";
    case CFG_T_FLOAT:
    case CFG_T_DOUBLE: return k->flags & CFG_F_NULL ? "a number or null" : "a number";
    case CFG_T_BOOL: return "true or false";
    case CFG_T_STRING: return k->flags & CFG_F_NULL ? "a string or null" : "a string";
    case CFG_T_ENUM: return "one of";
    case CFG_T_DOUBLES: return "a list of numbers";
    case CFG_T_INTS: return "a list of integers";
    case CFG_T_STRINGS: return "a list of strings";
    }
    return "?";
}

static int type_error(parse_ctx *c, const cfg_key *k, const char *key, const yaml_node_t *v) {
    char got[64];
    describe(got, sizeof got, v);
    if (k->type == CFG_T_ENUM) {
        char names[160] = "";
        for (int i = 0; k->names[i]; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, k->names[i], sizeof names - strlen(names) - 1);
        }
        return fail_at(c->err, c->errlen, c->name, ctx_line(c, v), key,
                       "expected one of %s%s, got %s", names,
                       k->flags & CFG_F_NULL ? ", null" : "", got);
    }
    return fail_at(c->err, c->errlen, c->name, ctx_line(c, v), key, "expected %s, got %s",
                   expected(k), got);
}

// A list item: its own message ("item 2: expected a number, got 'x'").
static int item_error(parse_ctx *c, const char *key, int i, const char *what,
                      const yaml_node_t *item) {
    char got[64];
    describe(got, sizeof got, item);
    return fail_at(c->err, c->errlen, c->name, ctx_line(c, item), key,
                   "item %d: expected %s, got %s", i, what, got);
}

static int set_list(parse_ctx *c, const cfg_key *k, void *field, const char *key,
                    const yaml_node_t *v) {
    if (v->type != YAML_SEQUENCE_NODE) return type_error(c, k, key, v);
    int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    void *items = NULL;
    if (k->type == CFG_T_DOUBLES) items = xcalloc((size_t)n + 1, sizeof(double));
    if (k->type == CFG_T_INTS) items = xcalloc((size_t)n + 1, sizeof(int64_t));
    if (k->type == CFG_T_STRINGS) items = xcalloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const yaml_node_t *it = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
        bool ok = it->type == YAML_SCALAR_NODE && !is_null(it);
        const char *what = "a string";
        if (k->type == CFG_T_DOUBLES) {
            what = "a number";
            ok = ok && !parse_double(scalar(it), &((double *)items)[i]);
        } else if (k->type == CFG_T_INTS) {
            what = "an integer";
            ok = ok && !parse_int64(scalar(it), &((int64_t *)items)[i]);
        } else if (ok) {
            ((char **)items)[i] = xstrdup(scalar(it));
        }
        if (!ok) {
            if (k->type == CFG_T_STRINGS) {
                cfg_strings tmp = {items, i};
                free_strings(&tmp);
            } else {
                free(items);
            }
            return item_error(c, key, i, what, it);
        }
    }
    free_list(field, k->type);
    if (k->type == CFG_T_DOUBLES) *(cfg_doubles *)field = (cfg_doubles){items, n};
    if (k->type == CFG_T_INTS) *(cfg_ints *)field = (cfg_ints){items, n};
    if (k->type == CFG_T_STRINGS) *(cfg_strings *)field = (cfg_strings){items, n};
    return 0;
}

// Stores node v into key k of the struct at base. key: the full path for messages.
static int set_value(parse_ctx *c, const cfg_key *k, void *base, const char *key,
                     const yaml_node_t *v) {
    void *field = (char *)base + k->offset;
    if (is_null(v)) {
        if (!(k->flags & CFG_F_NULL)) return type_error(c, k, key, v);
        switch (k->type) {
        case CFG_T_INT: *(int *)field = -1; return 0;
        case CFG_T_INT64: *(int64_t *)field = -1; return 0;
        case CFG_T_FLOAT: *(float *)field = NAN; return 0;
        case CFG_T_DOUBLE: *(double *)field = NAN; return 0;
        case CFG_T_ENUM: *(int *)field = -1; return 0;
        case CFG_T_STRING: free(*(char **)field); *(char **)field = NULL; return 0;
        case CFG_T_DOUBLES:
        case CFG_T_INTS:
        case CFG_T_STRINGS: free_list(field, k->type); return 0;
        case CFG_T_BOOL: return type_error(c, k, key, v);
        }
    }
    if (k->type == CFG_T_DOUBLES || k->type == CFG_T_INTS || k->type == CFG_T_STRINGS)
        return set_list(c, k, field, key, v);
    if (v->type != YAML_SCALAR_NODE) return type_error(c, k, key, v);
    const char *s = scalar(v);
    int64_t i64;
    int e;
    switch (k->type) {
    case CFG_T_INT:
        if (parse_int64(s, &i64) || i64 < INT32_MIN || i64 > INT32_MAX) break;
        if ((k->flags & CFG_F_NULL) && i64 < 0) break;
        *(int *)field = (int)i64;
        return 0;
    case CFG_T_INT64:
        if (parse_int64(s, &i64) || ((k->flags & CFG_F_NULL) && i64 < 0)) break;
        *(int64_t *)field = i64;
        return 0;
    case CFG_T_FLOAT:
        if (parse_float(s, field)) break;
        return 0;
    case CFG_T_DOUBLE:
        if (parse_double(s, field)) break;
        return 0;
    case CFG_T_BOOL:
        if (parse_bool(s, field)) break;
        return 0;
    case CFG_T_ENUM:
        if (parse_enum(s, k->names, &e)) break;
        *(int *)field = e;
        return 0;
    case CFG_T_STRING:
        free(*(char **)field);
        *(char **)field = xstrdup(s);
        return 0;
    default:
        break;
    }
    return type_error(c, k, key, v);
}

// ---------------------------------------------------------------------------
// Walking a document

// A set of keys to match one mapping against.
typedef struct {
    const cfg_key *keys;
    int n;
    bool stage;      // match the stage keys of the table (else the run keys)
    bool has_stages; // the run file: "stages" is a list of stage mappings
} schema;

static const schema RUN_SCHEMA = {KEYS, N_KEYS, false, true};
static const schema STAGE_SCHEMA = {KEYS, N_KEYS, true, false};
static const schema FACTOR_SCHEMA = {FACTOR_KEYS, (int)(sizeof FACTOR_KEYS / sizeof FACTOR_KEYS[0]),
                                     false, false};

static const cfg_key *find_key(const schema *s, const char *path) {
    for (int i = 0; i < s->n; i++)
        if (s->keys[i].stage == s->stage && !strcmp(s->keys[i].path, path)) return &s->keys[i];
    return NULL;
}

static bool is_section(const schema *s, const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < s->n; i++)
        if (s->keys[i].stage == s->stage && !strncmp(s->keys[i].path, path, n) &&
            s->keys[i].path[n] == '.')
            return true;
    return false;
}

static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

// The closest key or section name to path (same depth), or NULL.
static const char *suggest(const schema *s, const char *path, char *buf, size_t buflen) {
    int depth = 0, best = 3;
    for (const char *p = path; *p; p++) depth += *p == '.';
    bool found = false;
    for (int i = 0; i < s->n; i++) {
        if (s->keys[i].stage != s->stage) continue;
        char cand[128];
        snprintf(cand, sizeof cand, "%s", s->keys[i].path);
        int cd = 0;
        for (char *p = cand; *p; p++)
            if (*p == '.' && cd++ == depth) *p = '\0';
        int d = edit_distance(path, cand);
        if (d < best && d <= (int)strlen(path) / 2) {
            best = d;
            snprintf(buf, buflen, "%s", cand);
            found = true;
        }
    }
    if (s->has_stages && edit_distance(path, "stages") < best) {
        snprintf(buf, buflen, "stages");
        found = true;
    }
    return found ? buf : NULL;
}

static int unknown_key(parse_ctx *c, const schema *s, const char *prefix, const char *rel,
                       int line) {
    char full[256], sug[128];
    snprintf(full, sizeof full, "%s%s", prefix, rel);
    if (suggest(s, rel, sug, sizeof sug))
        return fail_at(c->err, c->errlen, c->name, line, full,
                       "unknown key (did you mean '%s%s'?)", prefix, sug);
    return fail_at(c->err, c->errlen, c->name, line, full, "unknown key");
}

static void stage_init(cfg_stage *st);
static void stage_free(cfg_stage *st);
static int walk_map(parse_ctx *c, const schema *s, void *base, const yaml_node_t *map,
                    const char *prefix, const char *rel_prefix);

// Forgets where the keys of the replaced stages were set.
static void origins_drop_stages(cfg_run *cfg) {
    int kept = 0;
    for (int i = 0; i < cfg->n_origins; i++) {
        if (!strncmp(cfg->origins[i].key, "stages.", 7))
            free(cfg->origins[i].key);
        else
            cfg->origins[kept++] = cfg->origins[i];
    }
    cfg->n_origins = kept;
}

// A `stages` list replaces the stages there were.
static int parse_stages(parse_ctx *c, const yaml_node_t *v) {
    cfg_run *cfg = c->cfg;
    for (int i = 0; i < cfg->n_stages; i++) stage_free(&cfg->stages[i]);
    cfg->n_stages = 0;
    origins_drop_stages(cfg);
    if (is_null(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE) {
        char got[64];
        describe(got, sizeof got, v);
        return fail_at(c->err, c->errlen, c->name, ctx_line(c, v), "stages",
                       "expected a list of stage mappings, got %s", got);
    }
    int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    for (int i = 0; i < n; i++) {
        const yaml_node_t *it = yaml_document_get_node(c->doc, v->data.sequence.items.start[i]);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "stages.%d.", i);
        if (i == CFG_MAX_STAGES)
            return fail_at(c->err, c->errlen, c->name, ctx_line(c, it), "stages",
                           "at most %d stages are supported (got %d)", CFG_MAX_STAGES, n);
        if (it->type != YAML_MAPPING_NODE) {
            char got[64];
            describe(got, sizeof got, it);
            snprintf(prefix, sizeof prefix, "stages.%d", i);
            return fail_at(c->err, c->errlen, c->name, ctx_line(c, it), prefix,
                           "expected a mapping of stage keys, got %s", got);
        }
        cfg_stage *st = &cfg->stages[cfg->n_stages++];
        stage_init(st);
        char okey[32];
        snprintf(okey, sizeof okey, "stages.%d", i);
        origin_set(cfg, okey, ctx_line(c, it));
        if (walk_map(c, &STAGE_SCHEMA, st, it, prefix, "")) return -1;
    }
    return 0;
}

// Matches every pair of map against schema s. prefix: printed before key
// paths ("stages.1."); rel_prefix: the section inside the schema ("rope.").
static int walk_map(parse_ctx *c, const schema *s, void *base, const yaml_node_t *map,
                    const char *prefix, const char *rel_prefix) {
    yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    int n = (int)(map->data.mapping.pairs.top - pairs);
    for (int i = 0; i < n; i++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, pairs[i].key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, pairs[i].value);
        char rel[256], full[288];
        if (k->type != YAML_SCALAR_NODE) {
            snprintf(full, sizeof full, "%s%.*s", prefix, (int)strlen(rel_prefix) - 1, rel_prefix);
            return fail_at(c->err, c->errlen, c->name, ctx_line(c, k), *full ? full : NULL,
                           "keys must be names, not lists or mappings");
        }
        snprintf(rel, sizeof rel, "%s%s", rel_prefix, scalar(k));
        snprintf(full, sizeof full, "%s%s", prefix, rel);
        for (int j = 0; j < i; j++) {
            const yaml_node_t *kj = yaml_document_get_node(c->doc, pairs[j].key);
            if (kj->type == YAML_SCALAR_NODE && !strcmp(scalar(kj), scalar(k)))
                return fail_at(c->err, c->errlen, c->name, ctx_line(c, k), full,
                               "duplicate key (first given at line %d)", line_of(kj));
        }
        const cfg_key *key;
        if (s->has_stages && !strcmp(rel, "stages")) {
            if (c->cfg) origin_set(c->cfg, "stages", ctx_line(c, k));
            if (parse_stages(c, v)) return -1;
        } else if ((key = find_key(s, rel))) {
            if (set_value(c, key, base, full, v)) return -1;
            if (c->cfg) origin_set(c->cfg, full, ctx_line(c, k));
        } else if (is_section(s, rel)) {
            if (c->cfg) origin_set(c->cfg, full, ctx_line(c, k));
            if (is_null(v)) continue;
            if (v->type != YAML_MAPPING_NODE) {
                char got[64];
                describe(got, sizeof got, v);
                return fail_at(c->err, c->errlen, c->name, ctx_line(c, v), full,
                               "expected a mapping of keys (a section), got %s", got);
            }
            char sub[288];
            snprintf(sub, sizeof sub, "%s.", rel);
            if (walk_map(c, s, base, v, prefix, sub)) return -1;
        } else {
            return unknown_key(c, s, prefix, rel, ctx_line(c, k));
        }
    }
    return 0;
}

// Loads text as one YAML document; *root NULL for an empty document.
static int load_doc(parse_ctx *c, yaml_document_t *doc, const char *text, size_t len,
                    yaml_node_t **root) {
    yaml_parser_t p;
    CHECK(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, doc)) {
        int rc = fail_at(c->err, c->errlen, c->name, c->cmdline ? 0 : (int)p.problem_mark.line + 1,
                         NULL, "YAML syntax error: %s%s%s", p.problem ? p.problem : "?",
                         p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        return rc;
    }
    *root = yaml_document_get_root_node(doc);
    if (*root) {
        yaml_document_t next;
        if (!yaml_parser_load(&p, &next)) {
            yaml_document_delete(doc);
            int rc = fail_at(c->err, c->errlen, c->name,
                             c->cmdline ? 0 : (int)p.problem_mark.line + 1, NULL,
                             "YAML syntax error: %s", p.problem ? p.problem : "?");
            yaml_parser_delete(&p);
            return rc;
        }
        yaml_node_t *extra = yaml_document_get_root_node(&next);
        int line = extra ? line_of(extra) : 0;
        yaml_document_delete(&next);
        if (extra) {
            yaml_document_delete(doc);
            yaml_parser_delete(&p);
            return fail_at(c->err, c->errlen, c->name, line, NULL,
                           "expected one YAML document, found a second one");
        }
    }
    yaml_parser_delete(&p);
    return 0;
}

// Parses text against schema s into base (a whole document is one mapping).
static int parse_text(parse_ctx *c, const schema *s, void *base, const char *text, size_t len) {
    yaml_document_t doc;
    yaml_node_t *root;
    if (load_doc(c, &doc, text, len, &root)) return -1;
    c->doc = &doc;
    int rc = 0;
    if (root && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            char got[64];
            describe(got, sizeof got, root);
            rc = fail_at(c->err, c->errlen, c->name, line_of(root), NULL,
                         "expected a mapping of sections at the top, got %s", got);
        } else {
            rc = walk_map(c, s, base, root, "", "");
        }
    }
    yaml_document_delete(&doc);
    c->doc = NULL;
    return rc;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errmsg(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    strbuf b = {0};
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) sb_append(&b, chunk, k);
    bool bad = ferror(f) || memchr(b.s ? b.s : "", '\0', b.n);
    fclose(f);
    if (bad) {
        free(b.s);
        errmsg(err, errlen, "%s: cannot read (I/O error or a NUL byte)", path);
        return NULL;
    }
    *len = b.n;
    return b.s ? b.s : xstrdup("");
}

// ---------------------------------------------------------------------------
// Defaults, life cycle

// Sets every key of schema s at base to its default.
static void apply_defaults(const schema *s, void *base) {
    for (int i = 0; i < s->n; i++) {
        const cfg_key *k = &s->keys[i];
        if (k->stage != s->stage) continue;
        char err[256];
        parse_ctx c = {.name = "default", .err = err, .errlen = sizeof err};
        yaml_document_t doc;
        yaml_node_t *root;
        if (load_doc(&c, &doc, k->def, strlen(k->def), &root)) die("key %s: %s", k->path, err);
        CHECK(root);
        c.doc = &doc;
        if (set_value(&c, k, base, k->path, root)) die("bad default of %s: %s", k->path, err);
        yaml_document_delete(&doc);
    }
}

static void free_fields(const schema *s, void *base) {
    for (int i = 0; i < s->n; i++) {
        const cfg_key *k = &s->keys[i];
        if (k->stage != s->stage) continue;
        void *field = (char *)base + k->offset;
        if (k->type == CFG_T_STRING) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else {
            free_list(field, k->type);
        }
    }
}

static void stage_init(cfg_stage *st) {
    memset(st, 0, sizeof *st);
    apply_defaults(&STAGE_SCHEMA, st);
}

static void stage_free(cfg_stage *st) { free_fields(&STAGE_SCHEMA, st); }

void cfg_init(cfg_run *cfg) {
    memset(cfg, 0, sizeof *cfg);
    apply_defaults(&RUN_SCHEMA, cfg);
}

void cfg_free(cfg_run *cfg) {
    free_fields(&RUN_SCHEMA, cfg);
    for (int i = 0; i < cfg->n_stages; i++) stage_free(&cfg->stages[i]);
    for (int i = 0; i < cfg->n_origins; i++) free(cfg->origins[i].key);
    free(cfg->origins);
    free(cfg->file);
    memset(cfg, 0, sizeof *cfg);
}

// ---------------------------------------------------------------------------
// Parsing and overrides

int cfg_parse_string(cfg_run *cfg, const char *text, const char *name, char *err,
                     size_t errlen) {
    free(cfg->file);
    cfg->file = xstrdup(name);
    parse_ctx c = {.cfg = cfg, .name = name, .err = err, .errlen = errlen};
    return parse_text(&c, &RUN_SCHEMA, cfg, text, strlen(text));
}

int cfg_parse_file(cfg_run *cfg, const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return -1;
    int rc = cfg_parse_string(cfg, text, path, err, errlen);
    free(text);
    return rc;
}

int cfg_load(cfg_run *cfg, const char *path, char *err, size_t errlen) {
    cfg_init(cfg);
    if (cfg_parse_file(cfg, path, err, errlen)) return -1;
    return cfg_validate(cfg, err, errlen);
}

int cfg_apply_override(cfg_run *cfg, const char *key, const char *value, char *err,
                       size_t errlen) {
    parse_ctx c = {.cfg = cfg, .name = "command line", .cmdline = true, .err = err,
                   .errlen = errlen};
    const schema *s = &RUN_SCHEMA;
    void *base = cfg;
    const char *rel = key;
    char prefix[32] = "";
    if (!strncmp(key, "stages.", 7)) {
        char *end;
        errno = 0;
        long i = strtol(key + 7, &end, 10);
        if (end == key + 7 || *end != '.' || errno || i < 0)
            return fail_at(err, errlen, c.name, 0, key,
                           "stage keys are stages.N.KEY with N = 0, 1, ...");
        if (i >= cfg->n_stages)
            return fail_at(err, errlen, c.name, 0, key, "there is no stage %ld (the run has %d)",
                           i, cfg->n_stages);
        s = &STAGE_SCHEMA;
        base = &cfg->stages[i];
        rel = end + 1;
        snprintf(prefix, sizeof prefix, "stages.%ld.", i);
    }
    const cfg_key *k = find_key(s, rel);
    if (!k) return unknown_key(&c, s, prefix, rel, 0);

    // Strings are taken literally (a path may contain ": "); the rest is
    // YAML, and a list may also be given comma-separated without brackets.
    bool null = !*value || !strcmp(value, "null") || !strcmp(value, "~");
    if (k->type == CFG_T_STRING && !null) {
        char **field = (char **)((char *)base + k->offset);
        free(*field);
        *field = xstrdup(value);
        origin_set(cfg, key, -1);
        return 0;
    }
    bool list = k->type == CFG_T_DOUBLES || k->type == CFG_T_INTS || k->type == CFG_T_STRINGS;
    size_t n = strlen(value);
    bool bracketed = null || value[0] == '[';
    char *text = xmalloc(n + 3);
    if (list && !bracketed)
        snprintf(text, n + 3, "[%s]", value);
    else
        snprintf(text, n + 3, "%s", value);

    yaml_document_t doc;
    yaml_node_t *root;
    int rc = load_doc(&c, &doc, text, strlen(text), &root);
    free(text);
    if (rc) return fail_at(err, errlen, c.name, 0, key, "value '%s' is not valid YAML", value);
    if (!root) {  // empty value: null
        yaml_document_delete(&doc);
        CHECK(yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1));
        int id = yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)"", 0, YAML_PLAIN_SCALAR_STYLE);
        CHECK(id);
        root = yaml_document_get_node(&doc, id);
    }
    c.doc = &doc;
    rc = set_value(&c, k, base, key, root);
    yaml_document_delete(&doc);
    if (rc == 0) origin_set(cfg, key, -1);
    return rc;
}

// ---------------------------------------------------------------------------
// LongRoPE factors files

int cfg_read_factors(cfg_doubles *short_factor, cfg_doubles *long_factor, int64_t *n_hat,
                     const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = read_file(path, &len, err, errlen);
    if (!text) return -1;
    factors_file f;
    memset(&f, 0, sizeof f);
    apply_defaults(&FACTOR_SCHEMA, &f);
    parse_ctx c = {.name = path, .err = err, .errlen = errlen};
    int rc = parse_text(&c, &FACTOR_SCHEMA, &f, text, len);
    free(text);
    if (rc) {
        free_fields(&FACTOR_SCHEMA, &f);
        return -1;
    }
    *short_factor = f.short_factor;
    *long_factor = f.long_factor;
    *n_hat = f.n_hat;
    return 0;
}
