// train_preflight: the checks before the first step. See train_preflight.h.
#include "train_preflight.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "die.h"
#include "shard.h"
#include "train.h"

// Shards verified in this preflight (the stages often share them).
static const char *verified[256];
static int n_verified;

static bool already_verified(const char *path) {
    for (int i = 0; i < n_verified; i++)
        if (strcmp(verified[i], path) == 0) return true;
    if (n_verified < 256) verified[n_verified++] = path;
    return false;
}

// Opens (and closes) the loader a stage's training or validation rows use.
static int check_loader(train_state *st, const char **paths, int n, const data_config *dc,
                        const char *what, char *err, size_t errlen) {
    char e[512];
    data_loader *L = data_loader_open(paths, n, dc, e, sizeof e);
    if (!L) {
        snprintf(err, errlen, "%s: %s", what, e);
        return -1;
    }
    int64_t v = data_loader_vocab_size(L);
    data_loader_free(L);
    if (v > st->m->cfg.vocab_size) {
        snprintf(err, errlen, "%s: the shards hold ids up to vocab_size %lld, the model's vocabulary "
                 "is %d (tokenized with another tokenizer than data.tokenizer?)", what, (long long)v,
                 st->m->cfg.vocab_size);
        return -1;
    }
    // Rank 0 reads every byte once (checksum, ids in range): a corrupt shard
    // is found now, not when the loader reaches the bad document.
    for (int i = 0; st->is_root && i < n; i++) {
        if (already_verified(paths[i])) continue;
        shard sh;
        char e2[512];
        int rc = shard_open(&sh, paths[i], e2, sizeof e2);
        if (rc == 0) {
            rc = shard_verify(&sh, e2, sizeof e2);
            shard_close(&sh);
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", what, e2);
            return -1;
        }
    }
    return 0;
}

static int check_stage_data(train_state *st, int s, char *err, size_t errlen) {
    const cfg_run *c = &st->cfg;
    const curr_plan plan = *curr_stage_plan(&st->curr, s);
    char what[160];
    snprintf(what, sizeof what, "stages.%d (%s) data", s, plan.name);
    const char *paths[64];
    int n = train_stage_shards(st, &plan, paths, 64);
    int64_t rows = plan.batch_tokens / plan.seq_len;
    double copy = fmin(c->data.copy_ratio, 1.0 - plan.passkey_ratio);
    data_config dc = train_data_config(st, plan.seq_len, rows, plan.passkey_ratio, copy,
                                       plan.pose_len, plan.passkey_pack_min, plan.passkey_pack_long,
                                       (uint64_t)c->train.seed, true, c->stages[s].tasks);
    if (check_loader(st, paths, n, &dc, what, err, errlen) != 0) return -1;
    // Validation rows: what eval_val_loss (train.c) opens.
    bool val_gate = plan.gate.val_loss > 0;
    n = 0;
    for (int i = 0; i < c->data.val.n && n < 64; i++) paths[n++] = c->data.val.v[i];
    if (st->train_shards[1][0] && n < 64) paths[n++] = st->train_shards[1];
    if (val_gate && n == 0) {
        snprintf(err, errlen, "stages.%d.gate.val_loss needs validation data (data.val or data.corpus)", s);
        return -1;
    }
    if (n > 0 && (val_gate || c->train.eval_every > 0)) {
        snprintf(what, sizeof what, "stages.%d (%s) validation data (data.val)", s, plan.name);
        dc = train_data_config(st, plan.seq_len, rows, 0.0, 0.0, 0, 0, 0.0, 7, false, false);
        if (check_loader(st, paths, n, &dc, what, err, errlen) != 0) return -1;
    }
    return 0;
}

// The first sample of each depth at length L, as the evaluation makes them.
static int check_passkey(train_state *st, int64_t L, uint64_t seed, uint64_t stride,
                         const char *key, char *err, size_t errlen) {
    const cfg_eval *e = &st->cfg.eval;
    passkey_config pk = train_passkey_config(st);
    pk.answer_only = 1;
    int32_t *tokens = xmalloc(sizeof(int32_t) * (size_t)L), *targets = xmalloc(sizeof(int32_t) * (size_t)L);
    int rc = 0;
    for (int j = 0; j < e->passkey_depths.n && rc == 0; j++) {
        pk.depth = e->passkey_depths.v[j];
        passkey_info info;
        char e2[512];
        rc = passkey_make(tokens, targets, &info, &pk, seed + stride * (uint64_t)j, L, e2, sizeof e2);
        if (rc != 0) snprintf(err, errlen, "%s: %s", key, e2);
    }
    free(tokens);
    free(targets);
    return rc;
}

// train.out_dir takes a file, and has room for checkpoints.
static int check_out_dir(const train_state *st, char *err, size_t errlen) {
    const char *dir = st->cfg.train.out_dir;
    char path[1100];
    snprintf(path, sizeof path, "%s/.preflight-%d", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    bool ok = fd >= 0 && write(fd, "ok\n", 3) == 3 && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(path);
    if (!ok) {
        snprintf(err, errlen, "train.out_dir: cannot write a file in %s: %s", dir, strerror(e));
        return -1;
    }
    // a file-size limit (ulimit -f) below one checkpoint
    double one = 3.0 * 4.0 * (double)st->m->n_params + 1e6;
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (double)rl.rlim_cur < one) {
        snprintf(err, errlen, "train.out_dir: the file-size limit (ulimit -f) is %.1f MB, a checkpoint "
                 "of this model needs %.1f MB", (double)rl.rlim_cur / 1e6, one / 1e6);
        return -1;
    }
    struct statvfs sv;
    if (statvfs(dir, &sv) == 0) {
        // params + 2 AdamW moments in fp32, plus the attributes; a new
        // checkpoint is complete before the oldest is removed.
        double need = 2.0 * (3.0 * 4.0 * (double)st->m->n_params + 1e6);
        double have = (double)sv.f_bavail * (double)sv.f_frsize;
        if (have < need) {
            snprintf(err, errlen,
                     "train.out_dir: %s has %.1f MB free, checkpoints of this model need %.1f MB "
                     "(two of %.1f MB)", dir, have / 1e6, need / 1e6, need / 2e6);
            return -1;
        }
    }
    return 0;
}

static int checks(train_state *st, char *err, size_t errlen) {
    const cfg_run *c = &st->cfg;
    // (every stage's RoPE, factors files included, is resolved by curr_load
    // at start-up, before this)
    for (int s = 0; s < c->n_stages; s++) {
        if (check_stage_data(st, s, err, errlen) != 0) return -1;
        const curr_plan plan = *curr_stage_plan(&st->curr, s);
        if (plan.gate.passkey_acc > 0) {
            char key[64];
            snprintf(key, sizeof key, "stages.%d.gate.passkey_acc", s);
            if (check_passkey(st, plan.seq_len, st->eval_seed + 7777ull, 7777ull, key, err, errlen) != 0)
                return -1;
        }
    }
    if (c->eval.passkey_trials > 0)
        for (int i = 0; i < c->eval.passkey_lengths.n; i++)
            if (check_passkey(st, c->eval.passkey_lengths.v[i], st->eval_seed, 1000003ull,
                              "eval.passkey_lengths", err, errlen) != 0)
                return -1;
    if (st->is_root && check_out_dir(st, err, errlen) != 0) return -1;
    return 0;
}

void train_preflight(train_state *st) {
    char err[1024] = "";
    n_verified = 0;
    bool bad = checks(st, err, sizeof err) != 0;
    if (!dist_any(&st->dist, bad)) return;
    // The message of the lowest failing rank, to rank 0.
    int size = st->dist.size > 0 ? st->dist.size : 1;
    double *who = xcalloc((size_t)size, sizeof(double));
    who[st->dist.rank] = bad;
    dist_allreduce_sum_double(&st->dist, who, size);
    int first = 0;
    while (first < size - 1 && who[first] == 0) first++;
    free(who);
    dist_bcast_bytes(&st->dist, err, sizeof err, first);
    train_guard_exit(st, 2, err);
}
