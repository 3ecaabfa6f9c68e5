// train_ppl: perplexity vs length on held-out text in a run. See train_ppl.h.
#include "train_ppl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "corpus_shard.h"
#include "die.h"
#include "eval_ppl.h"
#include "fsutil.h"
#include "shard_vocab.h"
#include "train_step.h"

struct train_ppl {
    eval_text text;
    char corpus_shard[1100];  // eval.ppl_corpus tokenized ("" = none)
    int n_lengths;
    eval_window **windows;    // (n_lengths) per length
    int64_t *n_windows;
    double *nll;              // (n_stages, n_lengths) after each stage; NAN = not evaluated
};

static bool ring_all(void *ctx, bool local) { return !dist_any(ctx, !local); }

// Rank 0 tokenizes eval.ppl_corpus once into out_dir/data; every rank gets the path.
static void make_corpus_shard(train_state *st, train_ppl *p) {
    const cfg_run *c = &st->cfg;
    char dir[600], err[1024] = "";
    snprintf(dir, sizeof dir, "%.500s/data", c->train.out_dir);
    snprintf(p->corpus_shard, sizeof p->corpus_shard, "%s/%.100s-eval.shard", dir, c->eval.ppl_corpus);
    int rc = 0;
    if (!corpus_known(c->eval.ppl_corpus)) {
        snprintf(err, sizeof err, "eval.ppl_corpus: unknown corpus '%s' (known: %s)", c->eval.ppl_corpus,
                 CORPUS_NAMES);
        rc = -1;
    } else if (st->is_root && access(p->corpus_shard, R_OK) != 0) {
        printf("tokenizing held-out corpus '%s' into %s\n", c->eval.ppl_corpus, dir);
        fflush(stdout);
        char why[768];
        rc = fsutil_mkdirs(dir, "train.out_dir", why, sizeof why);
        if (rc == 0)
            rc = corpus_make_shards(c->eval.ppl_corpus, st->tok, c->data.tokenizer ? c->data.tokenizer : "byte",
                                    p->corpus_shard, NULL, 0, why, sizeof why);
        if (rc != 0) snprintf(err, sizeof err, "eval.ppl_corpus: %s", why);
    }
    if (dist_any(&st->dist, rc != 0)) {
        if (rc == 0) snprintf(err, sizeof err, "eval.ppl_corpus: preparation failed on rank 0");
        dist_exit_user_error(&st->dist, err);
    }
}

void train_ppl_open(train_state *st) {
    const cfg_run *c = &st->cfg;
    const cfg_eval *e = &c->eval;
    if (e->ppl_lengths.n == 0) return;
    train_ppl *p = xcalloc(1, sizeof *p);
    st->ppl = p;
    if (e->ppl_corpus) make_corpus_shard(st, p);
    const char **paths = xcalloc((size_t)e->ppl_data.n + 1, sizeof(char *));
    const char **keys = xcalloc((size_t)e->ppl_data.n + 1, sizeof(char *));
    int n = 0;
    for (int i = 0; i < e->ppl_data.n; i++, n++) paths[n] = e->ppl_data.v[i], keys[n] = "eval.ppl_data";
    if (p->corpus_shard[0]) paths[n] = p->corpus_shard, keys[n++] = "eval.ppl_corpus";
    char err[1024], why[768];
    const char *spec = c->data.tokenizer ? c->data.tokenizer : "byte";
    int bad = 0;
    for (int i = 0; i < n && !bad; i++)
        bad = shard_vocab_check(paths[i], st->tok, spec, keys[i], "the run uses", err, sizeof err) != 0;
    if (!bad && eval_text_open(&p->text, paths, n, why, sizeof why) != 0) {
        snprintf(err, sizeof err, "eval.ppl_data: %s", why);
        bad = 1;
    }
    free(paths);  // before any exit: LeakSanitizer reports what an exit path drops
    free(keys);
    if (bad) dist_exit_user_error(&st->dist, err);
    p->n_lengths = e->ppl_lengths.n;
    p->windows = xcalloc((size_t)p->n_lengths, sizeof(eval_window *));
    p->n_windows = xcalloc((size_t)p->n_lengths, sizeof(int64_t));
    for (int i = 0; i < p->n_lengths; i++) {
        const int64_t T = e->ppl_lengths.v[i], want = (e->ppl_tokens + T - 1) / T;
        p->n_windows[i] = eval_windows(&p->windows[i], &p->text, T, T, want);
        if (p->n_windows[i] == 0) {
            snprintf(err, sizeof err, "eval.ppl_lengths: no held-out document holds %lld tokens for a window "
                     "of length %lld (the longest has %lld)", (long long)(T + 1), (long long)T,
                     (long long)p->text.longest);
            dist_exit_user_error(&st->dist, err);
        }
    }
    const size_t cells = (size_t)c->n_stages * (size_t)p->n_lengths;
    p->nll = xmalloc(sizeof(double) * cells);
    for (size_t k = 0; k < cells; k++) p->nll[k] = NAN;
    if (st->is_root && st->hist.nll && st->hist.n_ppl_lengths == p->n_lengths)
        memcpy(p->nll, st->hist.nll, sizeof(double) * cells);
}

void train_ppl_eval(train_state *st, int stage, const char *when) {
    train_ppl *p = st->ppl;
    if (!p) return;
    const cfg_eval *e = &st->cfg.eval;
    train_step_eval_begin(st);  // shard parameters: gathered unit by unit
    eval_ring ring = {.sp = st->dist.sp, .sp_rank = st->dist.sp_rank, .ulysses = st->dist.ulysses,
                      .all = ring_all, .ctx = &st->dist};
    rope_table train_rope = st->m->rope;
    if (st->is_root) metrics_progress_end(&st->met);
    for (int i = 0; i < p->n_lengths; i++) {
        const int64_t T = e->ppl_lengths.v[i];
        rope_table t;
        train_stage_rope_table(&t, st, stage, T);
        model_set_rope(st->m, &t);
        double sums[2] = {0, 0};
        eval_nll(sums, st->m, &p->text, p->windows[i], p->n_windows[i], T, T, &ring);
        dist_allreduce_sum_double(&st->dist, sums, 2);
        const double nll = sums[0] / sums[1];
        p->nll[stage * p->n_lengths + i] = nll;
        if (!st->is_root) continue;
        printf("  ppl @ %6lld tokens (%s): %8.3f  (nll %.4f, %lld windows)\n", (long long)T, when, exp(nll),
               nll, (long long)p->n_windows[i]);
        cJSON *o = train_eval_event(st, "eval_ppl", when, stage, T);
        cJSON_AddNumberToObject(o, "windows", (double)p->n_windows[i]);
        cJSON_AddNumberToObject(o, "predictions", sums[1]);
        cJSON_AddNumberToObject(o, "nll", nll);
        cJSON_AddNumberToObject(o, "ppl", exp(nll));
        metrics_write(&st->met, o);
    }
    train_step_eval_end(st);
    fflush(stdout);
    model_set_rope(st->m, &train_rope);
}

void train_ppl_summary(const train_state *st) {
    const train_ppl *p = st->ppl;
    if (!p || !st->is_root) return;
    const cfg_run *c = &st->cfg;
    const cfg_eval *e = &c->eval;
    const int nl = p->n_lengths;
    printf("\nheld-out perplexity (%s%s%s; ~%lld predictions per length)\n%-24s",
           e->ppl_corpus ? e->ppl_corpus : "", e->ppl_corpus && e->ppl_data.n ? " + " : "",
           e->ppl_data.n ? "eval.ppl_data" : "", (long long)e->ppl_tokens, "after stage");
    for (int i = 0; i < nl; i++) printf(" %8lld", (long long)e->ppl_lengths.v[i]);
    printf("\n");
    for (int s = 0; s < c->n_stages; s++) {
        const curr_plan *plan = curr_stage_plan(&st->curr, s);
        char label[96];
        snprintf(label, sizeof label, "%d %s%s", s, plan->name,
                 plan->seq_len <= st->curr.original_context ? " (before ext.)" : "");
        printf("%-24s", label);
        for (int i = 0; i < nl; i++) {
            const double nll = p->nll[s * nl + i];
            if (isnan(nll)) printf(" %8s", "-");
            else if (exp(nll) < 1e4) printf(" %8.3f", exp(nll));
            else printf(" %8.2e", exp(nll));  // a model that lost its language
        }
        printf("\n");
    }
    // Short context: the original length (else the shortest evaluated),
    // after the last stage trained within it against after the last stage.
    int li = 0;
    for (int i = 0; i < nl; i++) {
        if (e->ppl_lengths.v[i] == st->curr.original_context) {
            li = i;
            break;
        }
        if (e->ppl_lengths.v[i] < e->ppl_lengths.v[li]) li = i;
    }
    int before = -1;
    for (int s = 0; s < c->n_stages; s++)
        if (curr_stage_plan(&st->curr, s)->seq_len <= st->curr.original_context) before = s;
    const int last = c->n_stages - 1;
    if (before < 0 || before == last) return;
    const double b = p->nll[before * nl + li], a = p->nll[last * nl + li];
    if (isnan(a) || isnan(b)) return;
    printf("short-context perplexity @ %lld tokens: %.3f after stage %d '%s' (before extension), "
           "%.3f after stage %d '%s': %+.2f%%\n", (long long)e->ppl_lengths.v[li], exp(b), before,
           curr_stage_plan(&st->curr, before)->name, exp(a), last, curr_stage_plan(&st->curr, last)->name,
           100 * (exp(a - b) - 1));
}

void train_ppl_close(train_state *st) {
    train_ppl *p = st->ppl;
    if (!p) return;
    for (int i = 0; i < p->n_lengths; i++) free(p->windows[i]);
    free(p->windows);
    free(p->n_windows);
    free(p->nll);
    eval_text_close(&p->text);
    free(p);
    st->ppl = NULL;
}
