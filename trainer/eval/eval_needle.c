// eval_needle: needle samples and the NLL of their answer tokens. See eval_needle.h.
#include "eval_needle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "eval_tasks.h"
#include "zigzag.h"

int eval_needle_task_parse(const char *name, int *out) {
    if (!strcmp(name, "passkey")) {
        *out = EVAL_NEEDLE_PASSKEY;
        return 0;
    }
    *out = task_find(name);
    return *out >= 0 ? 0 : -1;
}

const char *eval_needle_task_name(int task) {
    CHECK(task >= EVAL_NEEDLE_PASSKEY && task < TASK_COUNT);
    return task == EVAL_NEEDLE_PASSKEY ? "passkey" : TASK_DEFS[task].name;
}

static bool has_depth(int task) { return task == EVAL_NEEDLE_PASSKEY || TASK_DEFS[task].has_depth; }

// Sample k of n of task: its depth (< 0: none) and seed.
static double sample_depth(int task, int k, int n) { return has_depth(task) ? (k + 0.5) / n : -1.0; }

static int make_one(int32_t *tokens, int32_t *targets, const passkey_config *pk, const task_env *env, int task,
                    double depth, uint64_t seed, int64_t T, char *err, size_t errlen) {
    char msg[512];
    int64_t need;
    if (task == EVAL_NEEDLE_PASSKEY) {
        need = passkey_min_len(pk, seed, msg, sizeof msg);
    } else {
        if (TASK_DEFS[task].needs_text && env->haystack_len < T)
            return errmsg(err, errlen, "needle task %s at %lld tokens needs a haystack of as many tokens "
                          "(it has %lld)", TASK_DEFS[task].name, (long long)T, (long long)env->haystack_len);
        need = task_min_len(task, env, seed, msg, sizeof msg);
    }
    if (need < 0) return errmsg(err, errlen, "needle task %s: %s", eval_needle_task_name(task), msg);
    if (need > T)
        return errmsg(err, errlen, "needle task %s: %lld tokens cannot hold a sample (it needs at least %lld)",
                      eval_needle_task_name(task), (long long)T, (long long)need);
    int rc;
    if (task == EVAL_NEEDLE_PASSKEY) {
        passkey_config c = *pk;
        c.depth = depth;
        c.answer_only = 1;
        rc = passkey_make(tokens, targets, NULL, &c, seed, T, msg, sizeof msg);
    } else {
        task_env e = *env;
        e.answer_only = 1;
        rc = task_make(tokens, targets, NULL, task, &e, depth, seed, T, msg, sizeof msg);
    }
    if (rc != 0) return errmsg(err, errlen, "needle task %s: %s", eval_needle_task_name(task), msg);
    return 0;
}

int eval_needles_make(eval_needles *out, const passkey_config *pk, const task_env *env, const int *tasks,
                      int n_tasks, int per_task, int64_t T, uint64_t seed, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    CHECK(n_tasks >= 1 && n_tasks <= EVAL_NEEDLE_MAX_TASKS && per_task >= 1 && T >= 1);
    const int n = n_tasks * per_task;
    out->T = T;
    out->tokens = xmalloc(sizeof(int32_t) * (size_t)n * (size_t)T);
    out->targets = xmalloc(sizeof(int32_t) * (size_t)n * (size_t)T);
    for (int t = 0; t < n_tasks; t++)
        for (int k = 0; k < per_task; k++) {
            const double depth = sample_depth(tasks[t], k, per_task);
            const uint64_t s = eval_task_seed(seed, tasks[t], T, depth);
            int32_t *tok = out->tokens + (size_t)out->n * (size_t)T, *tgt = out->targets + (size_t)out->n * (size_t)T;
            if (make_one(tok, tgt, pk, env, tasks[t], depth, s, T, err, errlen) != 0) {
                eval_needles_free(out);
                return -1;
            }
            for (int64_t i = 0; i < T; i++) out->answer_tokens += tgt[i] >= 0;
            out->n++;
        }
    return 0;
}

void eval_needles_free(eval_needles *nd) {
    free(nd->tokens);
    free(nd->targets);
    memset(nd, 0, sizeof *nd);
}

void eval_needle_nll(double sums[2], model *m, const eval_needles *nd, const eval_ring *ring) {
    const int64_t T = nd->T;
    zigzag_layout z;
    zigzag_layout_init_sp(&z, T, ring->sp, ring->ulysses, ring->sp_rank);
    const int64_t TL = ring->sp > 1 ? z.T_local : T;
    int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)T);
    int32_t *l_tokens = xmalloc(sizeof(int32_t) * (size_t)TL), *l_targets = xmalloc(sizeof(int32_t) * (size_t)TL),
            *l_pos = xmalloc(sizeof(int32_t) * (size_t)TL), *l_seg = xmalloc(sizeof(int32_t) * (size_t)TL);
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    for (int k = 0; k < nd->n; k++) {
        const int32_t *tokens = nd->tokens + (size_t)k * (size_t)T, *targets = nd->targets + (size_t)k * (size_t)T;
        model_batch b = {.B = 1, .T = T, .tokens = tokens, .targets = targets, .pos = pos, .seg = NULL};
        if (ring->sp > 1) {
            zigzag_shard_batch(l_tokens, l_targets, l_pos, l_seg, tokens, targets, pos, NULL, 1, &z, 0);
            b = (model_batch){.B = 1, .T = TL, .tokens = l_tokens, .targets = l_targets, .pos = l_pos, .seg = l_seg};
        }
        sums[0] += model_forward(m, &b, NULL);
        for (int64_t i = 0; i < b.T; i++) sums[1] += b.targets[i] >= 0;
    }
    free(pos);
    free(l_tokens); free(l_targets); free(l_pos); free(l_seg);
}
