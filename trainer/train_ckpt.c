// train_ckpt: training state <-> HDF5 checkpoint. See train_ckpt.h and
// docs/checkpoint-format.md for the layout.
#include "train_ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "ckpt_shard.h"
#include "die.h"
#include "curriculum.h"
#include "dist.h"
#include "run_config_echo.h"
#include "train.h"
#include "train_resume.h"
#include "train_step.h"

// Dimensions of a named tensor as stored: vectors are 1-D.
static int tensor_dims(const model_tensor *t, int64_t dims[2]) {
    dims[0] = t->shape[0];
    dims[1] = t->shape[1];
    return t->shape[1] == 1 ? 1 : 2;
}

static int put_family(ckpt_writer *w, const char *group, const model *m, const float *flat) {
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        int64_t dims[2];
        int rank = tensor_dims(t, dims);
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        // flat NULL: created without data, for the ranks' sharded write.
        if ((flat ? ckpt_put_tensor(w, name, flat + t->offset, rank, dims)
                  : ckpt_put_deferred(w, name, CKPT_F32, rank, dims)) != 0)
            return -1;
    }
    return 0;
}

static int get_family(ckpt_reader *r, const char *group, const model *m, float *flat, char *err,
                      size_t errlen) {
    char name[160];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        int64_t dims[2];
        int rank = tensor_dims(t, dims);
        snprintf(name, sizeof name, "%s/%s", group, t->name);
        if (ckpt_get_tensor(r, name, flat + t->offset, rank, dims, err, errlen) != 0) return -1;
    }
    return 0;
}

int train_ckpt_put_rope(ckpt_writer *w, const rope_config *r, const rope_table *t, rope_layout layout) {
    int64_t n_pairs = t->n_pairs;
    int rc = ckpt_put(w, "rope/inv_freq", CKPT_F32, t->inv_freq, 1, &n_pairs);
    rc |= ckpt_put(w, "rope/inv_freq_orig", CKPT_F32, t->inv_freq_orig, 1, &n_pairs);
    rc |= ckpt_put_attr_string(w, "rope", "type", rope_type_name(r->type));
    rc |= ckpt_put_attr_string(w, "rope", "layout", rope_layout_name(layout));
    rc |= ckpt_put_attr_double(w, "rope", "theta", r->theta);
    rc |= ckpt_put_attr_int64(w, "rope", "head_dim", r->head_dim);
    rc |= ckpt_put_attr_double(w, "rope", "partial_rotary_factor", r->partial_rotary_factor);
    rc |= ckpt_put_attr_int64(w, "rope", "max_position_embeddings", r->max_position_embeddings);
    rc |= ckpt_put_attr_int64(w, "rope", "original_max_position_embeddings",
                              r->original_max_position_embeddings);
    rc |= ckpt_put_attr_double(w, "rope", "factor", r->factor);
    rc |= ckpt_put_attr_double(w, "rope", "attention_factor", r->attention_factor);
    rc |= ckpt_put_attr_double(w, "rope", "beta_fast", r->beta_fast);
    rc |= ckpt_put_attr_double(w, "rope", "beta_slow", r->beta_slow);
    rc |= ckpt_put_attr_double(w, "rope", "mscale", r->mscale);
    rc |= ckpt_put_attr_double(w, "rope", "mscale_all_dim", r->mscale_all_dim);
    rc |= ckpt_put_attr_int64(w, "rope", "truncate", !r->no_truncate);
    rc |= ckpt_put_attr_double(w, "rope", "low_freq_factor", r->low_freq_factor);
    rc |= ckpt_put_attr_double(w, "rope", "high_freq_factor", r->high_freq_factor);
    rc |= ckpt_put_attr_int64(w, "rope", "n_hat", r->n_hat);
    rc |= ckpt_put_attr_int64(w, "rope", "rotary_dim", t->rotary_dim);
    rc |= ckpt_put_attr_double(w, "rope", "applied_attention_factor", t->attention_factor);
    if (t->short_len > 0) {  // mixed windows: the short table and the length it covers
        rc |= ckpt_put(w, "rope/inv_freq_short", CKPT_F32, t->inv_freq_short, 1, &n_pairs);
        rc |= ckpt_put_attr_int64(w, "rope", "mixed_short_len", t->short_len);
    }
    if (r->type == ROPE_TYPE_LONGROPE) {
        int64_t n = r->n_factors;
        rc |= ckpt_put(w, "rope/short_factor", CKPT_F64, r->short_factor, 1, &n);
        rc |= ckpt_put(w, "rope/long_factor", CKPT_F64, r->long_factor, 1, &n);
    }
    return rc;
}

// The RoPE state of the current stage: the config as attributes, the tables
// the kernels use as datasets.
int train_ckpt_put_stage_rope(ckpt_writer *w, const train_state *st) {
    return train_ckpt_put_rope(w, curr_stage_rope(&st->curr, st->stage), &st->m->rope,
                               st->m->cfg.rope_layout);
}

// The full (n_params) moments of a run: the moments themselves unsharded;
// sharded, the slices gathered on rank 0 into a buffer of its own (every
// rank must call this; NULL on the others). See docs/distributed.md.
static float *full_moment(train_state *st, float *slice) {
    const shard_layout *s = &st->shard;
    if (s->mode == SHARD_NONE) return slice;
    float *full = st->is_root ? xmalloc(sizeof(float) * (size_t)st->m->n_params) : NULL;
    dist_shard_gather_root(&st->dist, full, slice, s->n, s->shard, 0);
    return full;
}

// params, adam_m, adam_v NULL: the big families are created empty and the
// writer comes back suspended in *suspended (save_sharded fills them).
static int write_file(train_state *st, const char *path, const float *params, const float *adam_m,
                      const float *adam_v, ckpt_writer **suspended, char *err, size_t errlen) {
    const model *m = st->m;
    const cfg_optimizer *o = &st->cfg.optimizer;
    const curr_plan plan = *curr_stage_plan(&st->curr, st->stage);
    ckpt_writer *w = ckpt_create(path, err, errlen);
    if (!w) return -1;
    // params + 2 moments in fp32, and room for the metadata and attributes
    int64_t bytes = 3 * 4 * m->n_params;
    if (ckpt_reserve(w, bytes + bytes / 50 + (1 << 20), err, errlen) != 0) {
        ckpt_abort(w);
        return -1;
    }
    char *config = cfg_echo(&st->cfg);
    int rc = ckpt_put_attr_string(w, "/", "config", config);
    free(config);
    rc |= ckpt_put_attr_string(w, "/", "stretch_version", STRETCH_VERSION);
    rc |= ckpt_put_attr_int64(w, "/", "step", st->step);
    rc |= ckpt_put_attr_int64(w, "/", "stage", st->stage);
    rc |= ckpt_put_attr_int64(w, "/", "stage_step", st->stage_step);
    rc |= ckpt_put_attr_int64(w, "/", "stage_extra_steps", st->stage_extra_steps);
    rc |= ckpt_put_attr_int64(w, "/", "tokens_seen", st->tokens_seen);
    rc |= ckpt_put_attr_int64(w, "/", "seq_len", plan.seq_len);
    rc |= ckpt_put_attr_int64(w, "/", "grid_dp", st->dist.dp);
    rc |= ckpt_put_attr_int64(w, "/", "grid_sp", st->dist.sp);
    rc |= ckpt_put_attr_int64(w, "/", "n_params", m->n_params);
    rc |= put_family(w, "params", m, params);

    rc |= put_family(w, "optim/m", m, adam_m);
    rc |= put_family(w, "optim/v", m, adam_v);
    rc |= ckpt_put_attr_string(w, "optim", "type", "adamw");
    rc |= ckpt_put_attr_int64(w, "optim", "step", st->adam_step);
    rc |= ckpt_put_attr_double(w, "optim", "beta1", o->beta1);
    rc |= ckpt_put_attr_double(w, "optim", "beta2", o->beta2);
    rc |= ckpt_put_attr_double(w, "optim", "eps", o->eps);
    rc |= ckpt_put_attr_double(w, "optim", "weight_decay", o->weight_decay);

    // The data cursor holds the data RNGs (shuffle and synthetic mix).
    uint64_t words[DATA_CURSOR_WORDS];
    data_cursor_to_words(words, &st->cursor);
    int64_t n_words = DATA_CURSOR_WORDS, one = 1;
    rc |= ckpt_put(w, "data/cursor", CKPT_U64, words, 1, &n_words);
    rc |= ckpt_put_attr_string(w, "data/cursor", "format", "data_cursor_to_words v1 (data/loader.h)");
    rc |= ckpt_put_attr_int64(w, "data", "have_cursor", st->have_cursor);
    rc |= ckpt_put_attr_int64(w, "data", "epoch", st->cursor.epoch);
    rc |= ckpt_put_attr_int64(w, "data", "documents_consumed", st->cursor.doc_pos);
    rc |= ckpt_put_attr_int64(w, "data", "rows", st->cursor.rows);
    rc |= ckpt_put(w, "rng/eval_seed", CKPT_U64, &st->eval_seed, 1, &one);
    rc |= ckpt_put_attr_string(w, "rng/eval_seed", "algorithm", "seed of the passkey evaluation samples");
    rc |= train_ckpt_put_stage_rope(w, st);
    if (suspended && rc == 0) rc = ckpt_suspend(w);
    if (rc != 0) {
        snprintf(err, errlen, "%s", ckpt_writer_error(w));
        ckpt_abort(w);
        return -1;
    }
    if (suspended) {
        *suspended = w;
        return 0;
    }
    return ckpt_commit(w, err, errlen);
}

// The optimizer state between the host copies a checkpoint reads and writes
// and the backend's (the same buffers on the cpu: every copy is a no-op).
static void moments_to_host(train_state *st) {
    backend *bk = st->m->bk;
    size_t bytes = sizeof(float) * (size_t)shard_len(&st->shard);
    if (st->dadam_m == st->adam_m) return;  // one buffer (cpu, or offloaded to the host)
    bk->op->to_host(bk, st->adam_m, st->dadam_m, bytes);
    bk->op->to_host(bk, st->adam_v, st->dadam_v, bytes);
}

static void moments_to_dev(train_state *st) {
    backend *bk = st->m->bk;
    size_t bytes = sizeof(float) * (size_t)shard_len(&st->shard);
    if (st->dadam_m == st->adam_m) return;
    bk->op->to_dev(bk, st->dadam_m, st->adam_m, bytes);
    bk->op->to_dev(bk, st->dadam_v, st->adam_v, bytes);
}

// Sharded state on several ranks: nothing is gathered. Rank 0 writes the
// file without the big tensors, every rank writes its slice of the
// parameters and the moments into the same datasets (ckpt_shard.h), rank 0
// commits. The same checkpoint as an unsharded run's, byte for byte in its
// tensors.
static int save_sharded(train_state *st, char *err, size_t errlen) {
    const shard_layout *s = &st->shard;
    model *m = st->m;
    model_pull_params(m);
    moments_to_host(st);
    char name[64], path[1200], tmp[1210];
    ckpt_dir_filename(name, sizeof name, st->step);
    snprintf(path, sizeof path, "%s/%s", st->cfg.train.out_dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);  // ckpt_create's temporary name
    ckpt_writer *w = NULL;
    int rc = st->is_root ? write_file(st, path, NULL, NULL, NULL, &w, err, errlen) : 0;
    if (dist_any(&st->dist, rc != 0)) {
        if (rc == 0) snprintf(err, errlen, "checkpoint write failed on rank 0");
        return -1;
    }
    ckpt_shard_tensor *t = xcalloc((size_t)m->n_tensors, sizeof *t);
    for (int i = 0; i < m->n_tensors; i++)
        t[i] = (ckpt_shard_tensor){.name = m->tensors[i].name, .offset = m->tensors[i].offset,
                                   .rows = m->tensors[i].shape[0], .cols = m->tensors[i].shape[1]};
    ckpt_shard_family fam[3] = {
        {.group = "params", .data = m->params + s->lo, .lo = s->lo, .hi = s->hi},
        {.group = "optim/m", .data = st->adam_m, .lo = s->lo, .hi = s->hi},
        {.group = "optim/v", .data = st->adam_v, .lo = s->lo, .hi = s->hi},
    };
    rc = ckpt_shard_write(st->dist.world, tmp, t, m->n_tensors, fam, 3, err, errlen);
    free(t);
    bool failed = dist_any(&st->dist, rc != 0);
    if (st->is_root) {
        if (failed) {
            ckpt_abort(w);
        } else if (ckpt_resume(w) != 0) {
            snprintf(err, errlen, "%s", ckpt_writer_error(w));
            ckpt_abort(w);
            rc = -1;
        } else {
            rc = ckpt_commit(w, err, errlen);
            if (rc == 0) rc = ckpt_dir_publish(st->cfg.train.out_dir, name, st->cfg.train.keep_last, err, errlen);
        }
    }
    if (dist_any(&st->dist, failed || rc != 0)) {
        if (rc == 0) snprintf(err, errlen, "sharded checkpoint write failed on another rank");
        return -1;
    }
    return 0;
}

int train_ckpt_save(train_state *st, char *err, size_t errlen) {
    if (st->shard.mode != SHARD_NONE && st->dist.size > 1) return save_sharded(st, err, errlen);
    int rc = 0;
    // Written from the backend's state: fp32 master params and moments.
    shard_params_to_root(&st->shard, &st->dist, st->m);  // ZeRO-3: whole on rank 0 only
    moments_to_host(st);
    float *adam_m = full_moment(st, st->adam_m), *adam_v = full_moment(st, st->adam_v);
    if (st->is_root) {
        model_pull_params(st->m);
        char name[64], path[1200];
        ckpt_dir_filename(name, sizeof name, st->step);
        snprintf(path, sizeof path, "%s/%s", st->cfg.train.out_dir, name);
        rc = write_file(st, path, st->m->params, adam_m, adam_v, NULL, err, errlen);
        if (rc == 0) rc = ckpt_dir_publish(st->cfg.train.out_dir, name, st->cfg.train.keep_last, err, errlen);
    }
    if (adam_m != st->adam_m) free(adam_m);
    if (adam_v != st->adam_v) free(adam_v);
    // Nobody goes on (or exits) before the checkpoint is safely on disk.
    if (dist_any(&st->dist, rc != 0)) {
        if (rc == 0) snprintf(err, errlen, "checkpoint write failed on rank 0");
        return -1;
    }
    return 0;
}

// The checkpoint's run config must agree with ours in every key that cannot
// change on resume at its position (train_resume.h); rank 0 shows the rest.
static int check_config(ckpt_reader *r, const train_state *st, int64_t stage, int64_t stage_step, char *err,
                        size_t errlen) {
    const cfg_run *cfg = &st->cfg;
    char *text = NULL, e2[512];
    if (ckpt_get_attr_string(r, "/", "config", &text, err, errlen) != 0) return -1;
    cfg_run saved;
    cfg_init(&saved);
    int rc = cfg_parse_string(&saved, text, "checkpoint config", e2, sizeof e2);
    free(text);
    if (rc != 0) {
        snprintf(err, errlen, "checkpoint %s: its stored config does not parse: %s", ckpt_path(r), e2);
        cfg_free(&saved);
        return -1;
    }
    rc = train_resume_check(&saved, cfg, (int)stage, stage_step, ckpt_path(r), st->is_root ? stdout : NULL, err,
                            errlen);
    cfg_free(&saved);
    return rc == 0 ? 0 : CKPT_DIR_REFUSED;
}

// What a resume restores besides the tensors: read by rank 0, broadcast.
typedef struct {
    int64_t step, stage, stage_step, stage_extra_steps, adam_step, tokens_seen, have_cursor;
    uint64_t eval_seed, cursor[DATA_CURSOR_WORDS];
} resume_scalars;

// Rank 0's part of a resume: every attribute and dataset of path, checked
// (Fletcher32 on every chunk read); the parameters into the model's host
// buffer, the moments into adam_m / adam_v (n_params each). -1: the file is
// unreadable or corrupt; CKPT_DIR_REFUSED: it is sound but not this run's
// (config, parameter count, stage), so an older one would not do either.
static int read_state(train_state *st, const char *path, resume_scalars *sc, float *adam_m,
                      float *adam_v, char *err, size_t errlen) {
    ckpt_reader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    model *m = st->m;
    int64_t n_params = 0;
    int rc = ckpt_get_attr_int64(r, "/", "stage", &sc->stage, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "stage_step", &sc->stage_step, err, errlen);
    if (rc == 0) rc = check_config(r, st, sc->stage, sc->stage_step, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "n_params", &n_params, err, errlen);
    if (rc == 0 && n_params != m->n_params) {
        snprintf(err, errlen, "checkpoint %s holds %lld parameters, the model has %lld", path,
                 (long long)n_params, (long long)m->n_params);
        rc = CKPT_DIR_REFUSED;
    }
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "step", &sc->step, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "stage_extra_steps", &sc->stage_extra_steps, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "optim", "step", &sc->adam_step, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "tokens_seen", &sc->tokens_seen, err, errlen);
    if (rc == 0) rc = get_family(r, "params", m, m->params, err, errlen);
    if (rc == 0) rc = get_family(r, "optim/m", m, adam_m, err, errlen);
    if (rc == 0) rc = get_family(r, "optim/v", m, adam_v, err, errlen);
    int64_t n_words = DATA_CURSOR_WORDS, one = 1;
    if (rc == 0) rc = ckpt_get(r, "data/cursor", CKPT_U64, sc->cursor, 1, &n_words, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "data", "have_cursor", &sc->have_cursor, err, errlen);
    if (rc == 0) rc = ckpt_get(r, "rng/eval_seed", CKPT_U64, &sc->eval_seed, 1, &one, err, errlen);
    data_cursor cursor;
    if (rc == 0 && sc->have_cursor) rc = data_cursor_from_words(&cursor, sc->cursor, err, errlen);
    if (rc == 0 && (sc->stage < 0 || sc->stage >= st->cfg.n_stages)) {
        snprintf(err, errlen, "checkpoint %s is at stage %lld, the run file has %d stages", path,
                 (long long)sc->stage, st->cfg.n_stages);
        rc = CKPT_DIR_REFUSED;
    }
    ckpt_close(r);
    return rc;
}

// A resume's buffers on rank 0: the moments whole (sharded runs scatter
// them after the read).
typedef struct {
    train_state *st;
    resume_scalars sc;
    float *full_m, *full_v;
} resume_read;

static void resume_read_init(resume_read *rr, train_state *st) {
    memset(rr, 0, sizeof *rr);
    rr->st = st;
    rr->full_m = st->adam_m;
    rr->full_v = st->adam_v;
}

// Rank 0, just before its first read: a sharded run's whole-moment buffers
// (2 x n_params floats: never allocated when there is nothing to read).
static void resume_read_buffers(resume_read *rr) {
    train_state *st = rr->st;
    if (st->shard.mode == SHARD_NONE || rr->full_m != st->adam_m) return;
    const size_t full_bytes = sizeof(float) * (size_t)st->m->n_params;
    rr->full_m = xmalloc(full_bytes);
    rr->full_v = xmalloc(full_bytes);
}

static void resume_read_free(resume_read *rr) {
    if (rr->full_m != rr->st->adam_m) free(rr->full_m);
    if (rr->full_v != rr->st->adam_v) free(rr->full_v);
}

static int try_read(const char *path, void *ctx, char *err, size_t errlen) {
    resume_read *rr = ctx;
    resume_read_buffers(rr);
    return read_state(rr->st, path, &rr->sc, rr->full_m, rr->full_v, err, errlen);
}

// Rank 0 has read (root_ok) or failed with root_err; the verdict, then the
// state reach every rank: parameters whole, moments whole or each rank's
// slice (parallel.shard), the scalars. A read error on rank 0 reaches every
// rank as the same line (no rank waits in a broadcast that never comes).
static int distribute(resume_read *rr, bool root_ok, const char *root_err, char *err, size_t errlen) {
    train_state *st = rr->st;
    model *m = st->m;
    char verdict[1024];
    snprintf(verdict, sizeof verdict, "%s", root_ok ? "" : root_err);
    dist_bcast_bytes(&st->dist, verdict, sizeof verdict, 0);
    if (verdict[0]) {
        resume_read_free(rr);
        snprintf(err, errlen, "%s", verdict);
        return -1;
    }
    const size_t full_bytes = sizeof(float) * (size_t)m->n_params;
    resume_scalars sc = rr->sc;
    dist_bcast_bytes(&st->dist, &sc, sizeof sc, 0);
    dist_bcast_large(&st->dist, m->params, full_bytes, 0);
    if (st->shard.mode == SHARD_NONE) {
        dist_bcast_large(&st->dist, st->adam_m, full_bytes, 0);
        dist_bcast_large(&st->dist, st->adam_v, full_bytes, 0);
    } else {
        dist_shard_scatter_root(&st->dist, st->adam_m, rr->full_m, st->shard.n, st->shard.shard, 0);
        dist_shard_scatter_root(&st->dist, st->adam_v, rr->full_v, st->shard.n, st->shard.shard, 0);
    }
    resume_read_free(rr);
    st->step = sc.step;
    st->stage = (int)sc.stage;
    st->stage_step = sc.stage_step;
    st->stage_extra_steps = sc.stage_extra_steps;
    st->adam_step = sc.adam_step;
    st->tokens_seen = sc.tokens_seen;
    st->eval_seed = sc.eval_seed;
    st->have_cursor = sc.have_cursor != 0;
    if (st->have_cursor && data_cursor_from_words(&st->cursor, sc.cursor, err, errlen) != 0)
        return -1;  // cannot happen: rank 0 decoded the same words
    // whichever backend wrote it, this one computes from it
    model_push_params(m);
    moments_to_dev(st);
    return 0;
}

// Rank 0 reads the file once; the others receive it. Reading on one rank
// rather than one per node keeps the filesystem's load at one copy of the
// file whatever the node count; the broadcast runs over the interconnect
// (docs/slurm.md).
int train_ckpt_load(train_state *st, const char *path, char *err, size_t errlen) {
    resume_read rr;
    resume_read_init(&rr, st);
    char rerr[1024] = "";
    bool ok = !st->is_root || try_read(path, &rr, rerr, sizeof rerr) == 0;
    return distribute(&rr, ok, rerr, err, errlen);
}

int train_ckpt_resume_auto(train_state *st, char *path, size_t pathlen, char *err, size_t errlen) {
    resume_read rr;
    resume_read_init(&rr, st);
    char rerr[1024] = "";
    int found = 0;
    if (st->is_root) {
        found = ckpt_dir_try_resumable(st->cfg.train.out_dir, try_read, &rr, path, pathlen, stderr, rerr,
                                       sizeof rerr);
        if (found == 0) rerr[0] = '\0';
    }
    dist_bcast_bytes(&st->dist, &found, sizeof found, 0);
    if (found == 0) {
        resume_read_free(&rr);
        return 0;
    }
    if (found == 1) dist_bcast_bytes(&st->dist, path, pathlen, 0);
    return distribute(&rr, found == 1, rerr, err, errlen) == 0 ? 1 : -1;
}

int train_ckpt_load_weights(train_state *st, const char *path, char *err, size_t errlen) {
    int rc = 0;
    if (st->is_root) {  // one read, as a resume (train_ckpt_load)
        char file[4096];  // model.init may name a run directory or its latest
        rc = ckpt_dir_resolve(path, file, sizeof file, err, errlen);
        ckpt_reader *r = rc == 0 ? ckpt_open(file, err, errlen) : NULL;
        if (rc == 0 && !r) rc = -1;
        if (r) {
            rc = get_family(r, "params", st->m, st->m->params, err, errlen);
            ckpt_close(r);
        }
    }
    char verdict[1024];
    snprintf(verdict, sizeof verdict, "%s", rc == 0 ? "" : err);
    dist_bcast_bytes(&st->dist, verdict, sizeof verdict, 0);
    if (verdict[0]) {
        snprintf(err, errlen, "%s", verdict);
        return -1;
    }
    dist_bcast_large(&st->dist, st->m->params, sizeof(float) * (size_t)st->m->n_params, 0);
    model_push_params(st->m);
    return 0;
}
