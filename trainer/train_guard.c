// train_guard: skipped non-finite steps and the finite-state check before a
// checkpoint. See train_guard.h.
#include "train_guard.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "train_ckpt.h"

bool train_guard_finite(dist_ctx *d, double loss, double norm) {
    // The loss and the norm are reduced over the ranks already, so they agree;
    // the collective makes the verdict agree even if a rank's copy differs.
    return !dist_any(d, !isfinite(loss) || !isfinite(norm));
}

bool train_guard_record(train_guard *g, bool skipped, int max_skipped) {
    if (!skipped) {
        g->consecutive = 0;
        return false;
    }
    g->consecutive++;
    g->total++;
    return max_skipped > 0 && g->consecutive >= max_skipped;
}

// The first non-finite entry of a family, as "name[i] = nan".
static bool first_nonfinite(const model *m, const float *flat, const char *family, char *what,
                            size_t len) {
    for (int t = 0; t < m->n_tensors; t++) {
        const model_tensor *mt = &m->tensors[t];
        int64_t n = mt->shape[0] * mt->shape[1];
        const float *v = flat + mt->offset;
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(v[i])) {
                snprintf(what, len, "%s%s[%lld] = %g", family, mt->name, (long long)i, (double)v[i]);
                return true;
            }
    }
    return false;
}

int train_guard_state_finite(train_state *st, char *err, size_t errlen) {
    model *m = st->m;
    backend *bk = m->bk;
    // The moments are this rank's slice (parallel.shard; the whole buffer
    // when unsharded).
    const int64_t slice = shard_len(&st->shard);
    size_t bytes = sizeof(float) * (size_t)slice;
    model_pull_params(m);
    if (st->dadam_m != st->adam_m) {  // else one buffer (cpu, or offloaded to the host)
        bk->op->to_host(bk, st->adam_m, st->dadam_m, bytes);
        bk->op->to_host(bk, st->adam_v, st->dadam_v, bytes);
    }
    char what[256] = "";
    bool bad = first_nonfinite(m, m->params, "", what, sizeof what);
    if (st->shard.mode == SHARD_NONE) {
        bad = bad || first_nonfinite(m, st->adam_m, "adamw m of ", what, sizeof what) ||
              first_nonfinite(m, st->adam_v, "adamw v of ", what, sizeof what);
    } else {
        for (int64_t i = 0; !bad && i < slice; i++)
            if (!isfinite(st->adam_m[i]) || !isfinite(st->adam_v[i])) {
                snprintf(what, sizeof what, "adamw moment at flat index %lld",
                         (long long)(st->shard.lo + i));
                bad = true;
            }
    }
    if (!dist_any(&st->dist, bad)) return 0;
    if (bad)
        snprintf(err, errlen, "rank %d: %s", st->dist.rank, what);
    else
        snprintf(err, errlen, "a non-finite value on another rank");
    return -1;
}

void train_guard_exit(train_state *st, int status, const char *msg) {
    if (st->is_root) fprintf(stderr, "stretch: error: %s\n", msg);
    fflush(stderr);
    fflush(stdout);
    if (st->is_root) metrics_close(&st->met);
    dist_barrier(&st->dist);
    dist_finalize(&st->dist);
    exit(status);
}

void train_guard_report(train_state *st, double loss, double norm) {
    if (!st->is_root) return;
    metrics_progress_end(&st->met);
    printf("  step %lld skipped: loss %g, gradient norm %g (%d in a row, %lld in all)\n",
           (long long)st->step, loss, norm, st->guard.consecutive, (long long)st->guard.total);
    fflush(stdout);
}

// "the latest, DIR/NAME, is from before" or "none was written yet".
static void latest_note(const train_state *st, char *buf, size_t len) {
    char path[1100], name[256] = "";
    snprintf(path, sizeof path, "%s/latest", st->cfg.train.out_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(name, sizeof name, f)) name[0] = 0;
        fclose(f);
    }
    name[strcspn(name, "\n")] = 0;
    if (name[0])
        snprintf(buf, len, "the latest checkpoint, %s/%s, is from before", st->cfg.train.out_dir, name);
    else
        snprintf(buf, len, "no checkpoint had been written yet");
}

void train_guard_stop(train_state *st) {
    char msg[2400], note[1400];
    latest_note(st, note, sizeof note);
    snprintf(msg, sizeof msg,
             "step %lld: loss or gradient norm not finite for %d steps in a row "
             "(train.max_skipped_steps); stopped without writing a checkpoint; %s (lower "
             "optimizer.lr or raise optimizer.warmup_steps, then resume)",
             (long long)st->step, st->guard.consecutive, note);
    train_guard_exit(st, TRAIN_EXIT_DIVERGED, msg);
}

void train_guard_save(train_state *st) {
    char err[512], msg[2400], note[1400];
    if (train_guard_state_finite(st, err, sizeof err) != 0) {
        latest_note(st, note, sizeof note);
        snprintf(msg, sizeof msg, "step %lld: checkpoint not written, the state is not finite (%s); %s",
                 (long long)st->step, err, note);
        train_guard_exit(st, TRAIN_EXIT_DIVERGED, msg);
    }
    if (train_ckpt_save(st, err, sizeof err) != 0) {
        latest_note(st, note, sizeof note);
        snprintf(msg, sizeof msg, "step %lld: checkpoint not written: %s (%s)", (long long)st->step,
                 err, note);
        train_guard_exit(st, 1, msg);
    }
}
