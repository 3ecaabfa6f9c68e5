// train_tasks: the RULER-style task suite (data/task.h) in a curriculum run:
// data.task_mix rows in the loader, gates on a task's accuracy
// (stages.N.gate: {task: niah_multikey, accuracy: 0.9}) and the task table
// (eval.tasks at eval.task_lengths) printed after every stage and logged to
// metrics.jsonl (event "eval_tasks", one row per length).
//
// Tested through tests/cli/test_eval_tasks.sh (a run with a task mix, a
// task gate and the table).
#pragma once

#include <stdbool.h>

#include "loader.h"
#include "train.h"

// data.task_mix into dc->task_mix (zeros when the stage does not mix tasks)
// and the task encoder: rows carry the answer-only loss with
// data.passkey_answer_only.
void train_tasks_loader(data_config *dc, const train_state *st, bool stage_mixes);

// Defaults that need the resolved config: eval.task_lengths = [] takes
// eval.passkey_lengths.
void train_tasks_resolve(cfg_run *c);

// Before any compute: eval.tasks and every stage's gate.task name a task,
// every eval.task_lengths entry holds a sample of every eval task, every
// gated stage's seq_len one of its task. 0, or -1 with one line in err.
int train_tasks_check(const train_state *st, char *err, size_t errlen);

// Accuracy of the named task at length L with the model's current RoPE,
// averaged over eval.passkey_depths (once for tasks without depth); cell
// seeds from seed (eval_task_seed). `key` names the setting blamed on error.
double train_tasks_acc(train_state *st, const char *task, int64_t L, int trials, uint64_t seed,
                       const char *key);

// The table of eval.tasks x eval.task_lengths with the given stage's RoPE:
// printed (rank 0) and logged; nothing when eval.tasks is empty.
void train_tasks_eval_all(train_state *st, int stage, const char *when);
