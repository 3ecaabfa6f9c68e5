// search: the LongRoPE evolutionary search. See search.h.
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"

// Operator settings. A step moves a factor by exp(sigma * N(0, 1)) with
// sigma = MUT_SIGMA * ln(s), a tenth of the log-range [0, ln s] of a factor.
#define MUT_SIGMA 0.1
#define MUT_RUN_PROB 0.5    // one contiguous run of pairs moves by a common step
#define MUT_PAIR_PROB 0.3   // otherwise each pair moves with this probability
#define MUT_NHAT_PROB 0.25  // n_hat jumps to another value of the set
#define CROSS_PROB 0.5      // a child is a crossover (needs topk >= 2), else a mutation
#define MAX_DRAWS 16        // draws of a child before a duplicate is accepted

// ---------------------------------------------------------------------------
// The search space and its three classic points

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int search_space_init(search_space *out, int n_pairs, double s, const int64_t *nhat, int n_nhat,
                      char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (n_pairs < 1 || n_pairs > ROPE_MAX_PAIRS)
        return errmsg(err, errlen, "rotary pairs must be in 1..%d (got %d)", ROPE_MAX_PAIRS, n_pairs);
    if (!(s > 1.0) || !isfinite(s))
        return errmsg(err, errlen, "the extension ratio must be > 1 (got %g)", s);
    if (n_nhat < 1 || n_nhat > SEARCH_MAX_NHAT)
        return errmsg(err, errlen, "n_hat: 1 to %d candidate values (got %d)", SEARCH_MAX_NHAT, n_nhat);
    memcpy(out->nhat, nhat, sizeof(int64_t) * (size_t)n_nhat);
    qsort(out->nhat, (size_t)n_nhat, sizeof(int64_t), cmp_i64);
    for (int i = 0; i < n_nhat; i++) {
        if (out->nhat[i] < 0) return errmsg(err, errlen, "n_hat: %lld is negative", (long long)out->nhat[i]);
        if (i > 0 && out->nhat[i] == out->nhat[i - 1])
            return errmsg(err, errlen, "n_hat: %lld is listed twice", (long long)out->nhat[i]);
    }
    if (out->nhat[0] != 0)
        return errmsg(err, errlen, "n_hat: the set must hold 0 (PI, NTK and YaRN interpolate every position)");
    out->n_pairs = n_pairs;
    out->s = s;
    out->n_nhat = n_nhat;
    for (int i = 0; i < n_pairs; i++) out->lo[i] = 1.0, out->hi[i] = s;
    return 0;
}

int search_space_critical(search_space *sp, int first_pair, double max_factor, char *err,
                          size_t errlen) {
    if (first_pair < 0 || first_pair > sp->n_pairs)
        return errmsg(err, errlen, "critical pair %d is not in 0..%d", first_pair, sp->n_pairs);
    if (!(max_factor >= sp->s) || !isfinite(max_factor))
        return errmsg(err, errlen, "the largest factor (%g) must be >= the extension ratio %g", max_factor, sp->s);
    for (int i = first_pair; i < sp->n_pairs; i++) sp->lo[i] = sp->s, sp->hi[i] = max_factor;
    return 0;
}

void search_space_fix_nhat(search_space *sp, int64_t n_hat) {
    CHECK(n_hat >= 0);
    memset(sp->nhat, 0, sizeof sp->nhat);
    sp->nhat[0] = n_hat;
    sp->n_nhat = 1;
}

// The rotary dim d of the model's rope (HF: int(head_dim * partial_rotary_factor)).
static int rotary_dim(const rope_config *r) {
    rope_table t;
    rope_table_init(&t, r, 0);
    return t.rotary_dim;
}

double search_pair_period(const rope_config *model_rope, int pair) {
    const int d = rotary_dim(model_rope);
    CHECK(pair >= 0 && pair < d / 2);
    return 2.0 * M_PI * pow(model_rope->theta, 2.0 * pair / d);
}

int search_critical_pair(const rope_config *model_rope, int64_t original) {
    const int n = rotary_dim(model_rope) / 2;
    for (int i = 0; i < n; i++)  // periods grow with i
        if (search_pair_period(model_rope, i) > (double)original) return i;
    return n;
}

static rope_config model_based(const rope_config *model_rope, rope_type type, int64_t original,
                               int64_t target) {
    rope_config c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.theta = model_rope->theta;
    c.head_dim = model_rope->head_dim;
    c.partial_rotary_factor = model_rope->partial_rotary_factor;
    c.original_max_position_embeddings = original;
    c.max_position_embeddings = target;
    c.factor = (double)target / (double)original;
    return c;
}

rope_config search_rope_short(const rope_config *model_rope, int64_t original, int64_t target,
                              const double *short_f, const search_candidate *c, int n_pairs) {
    CHECK(n_pairs >= 1 && n_pairs <= ROPE_MAX_PAIRS);
    rope_config r = model_based(model_rope, ROPE_TYPE_LONGROPE, original, target);
    r.n_factors = n_pairs;
    for (int i = 0; i < n_pairs; i++) {
        r.short_factor[i] = short_f ? short_f[i] : 1.0;
        r.long_factor[i] = c->lambda[i];
    }
    r.n_hat = c->n_hat;
    return r;
}

rope_config search_rope(const rope_config *model_rope, int64_t original, int64_t target,
                        const search_candidate *c, int n_pairs) {
    return search_rope_short(model_rope, original, target, NULL, c, n_pairs);
}

rope_config search_yarn_rope(const rope_config *model_rope, int64_t original, int64_t target) {
    return model_based(model_rope, ROPE_TYPE_YARN, original, target);
}

void search_pi(double *lambda, const search_space *sp) {
    for (int i = 0; i < sp->n_pairs; i++) lambda[i] = sp->s;
}

void search_ntk(double *lambda, const search_space *sp) {
    const int d = 2 * sp->n_pairs;
    for (int i = 0; i < sp->n_pairs; i++) lambda[i] = d > 2 ? pow(sp->s, 2.0 * i / (d - 2)) : 1.0;
}

void search_yarn(double *lambda, const search_space *sp, const rope_config *model_rope,
                 int64_t original, int64_t target) {
    rope_config y = search_yarn_rope(model_rope, original, target);
    rope_table t;
    rope_table_init(&t, &y, target);
    CHECK(t.n_pairs == sp->n_pairs);
    for (int i = 0; i < t.n_pairs; i++) lambda[i] = (double)t.inv_freq_orig[i] / (double)t.inv_freq[i];
    search_repair(lambda, t.n_pairs, sp->s);
}

// ---------------------------------------------------------------------------
// Constraints and operators

static int nhat_index(const search_space *sp, int64_t n_hat) {
    for (int i = 0; i < sp->n_nhat; i++)
        if (sp->nhat[i] == n_hat) return i;
    return -1;
}

bool search_valid(const search_candidate *c, const search_space *sp) {
    for (int i = 0; i < sp->n_pairs; i++) {
        if (!(c->lambda[i] >= sp->lo[i] && c->lambda[i] <= sp->hi[i])) return false;
        if (i > 0 && !(c->lambda[i - 1] <= c->lambda[i])) return false;
    }
    return nhat_index(sp, c->n_hat) >= 0;
}

// lambda (n) <- its least-squares non-decreasing fit (pool adjacent violators).
static void isotonic(double *lambda, int n) {
    CHECK(n >= 1 && n <= ROPE_MAX_PAIRS);
    double mean[ROPE_MAX_PAIRS];
    int count[ROPE_MAX_PAIRS], nb = 0;
    for (int i = 0; i < n; i++) {
        mean[nb] = lambda[i];
        count[nb++] = 1;
        // Pool adjacent violators: merge the last two blocks while they descend.
        while (nb > 1 && mean[nb - 2] > mean[nb - 1]) {
            int c = count[nb - 2] + count[nb - 1];
            mean[nb - 2] = (mean[nb - 2] * count[nb - 2] + mean[nb - 1] * count[nb - 1]) / c;
            count[nb - 2] = c;
            nb--;
        }
    }
    for (int b = 0, i = 0; b < nb; b++)
        for (int k = 0; k < count[b]; k++) lambda[i++] = mean[b];
}

void search_repair(double *lambda, int n, double s) {
    isotonic(lambda, n);
    // Clipping a non-decreasing sequence to [1, s] keeps it non-decreasing.
    for (int i = 0; i < n; i++) lambda[i] = fmin(fmax(lambda[i], 1.0), s);
}

void search_project(double *lambda, const search_space *sp) {
    isotonic(lambda, sp->n_pairs);
    // max and min with non-decreasing bounds keep a non-decreasing sequence so.
    for (int i = 0; i < sp->n_pairs; i++) lambda[i] = fmin(fmax(lambda[i], sp->lo[i]), sp->hi[i]);
}

void search_mutate(search_candidate *child, const search_candidate *parent, const search_space *sp,
                   rng_state *rng) {
    const int n = sp->n_pairs;
    const double sigma = MUT_SIGMA * log(sp->s);
    *child = *parent;
    child->nll = NAN;
    if (rng_uniform(rng) < MUT_RUN_PROB) {
        int a = (int)rng_below(rng, (uint64_t)n), b = (int)rng_below(rng, (uint64_t)n);
        if (a > b) {
            int t = a;
            a = b;
            b = t;
        }
        double step = exp(sigma * rng_normal(rng));
        for (int i = a; i <= b; i++) child->lambda[i] *= step;
    } else {
        bool moved = false;
        for (int i = 0; i < n; i++) {
            if (rng_uniform(rng) < MUT_PAIR_PROB) {
                child->lambda[i] *= exp(sigma * rng_normal(rng));
                moved = true;
            }
        }
        if (!moved) child->lambda[rng_below(rng, (uint64_t)n)] *= exp(sigma * rng_normal(rng));
    }
    if (sp->n_nhat > 1 && rng_uniform(rng) < MUT_NHAT_PROB) {
        int cur = nhat_index(sp, parent->n_hat);
        int k = (int)rng_below(rng, (uint64_t)(cur >= 0 ? sp->n_nhat - 1 : sp->n_nhat));
        if (cur >= 0 && k >= cur) k++;  // any value but the current one
        child->n_hat = sp->nhat[k];
    }
    search_project(child->lambda, sp);
}

void search_crossover(search_candidate *child, const search_candidate *a, const search_candidate *b,
                      const search_space *sp, rng_state *rng) {
    for (int i = 0; i < sp->n_pairs; i++) child->lambda[i] = rng_uniform(rng) < 0.5 ? a->lambda[i] : b->lambda[i];
    for (int i = sp->n_pairs; i < ROPE_MAX_PAIRS; i++) child->lambda[i] = 0.0;
    child->n_hat = rng_uniform(rng) < 0.5 ? a->n_hat : b->n_hat;
    child->nll = NAN;
    search_project(child->lambda, sp);
}

// a before b: smaller nll, NAN last, ties by index.
static bool ranks_before(const search_candidate *pop, int a, int b) {
    double x = pop[a].nll, y = pop[b].nll;
    if (isnan(x) != isnan(y)) return isnan(y);
    if (!isnan(x) && x != y) return x < y;
    return a < b;
}

void search_rank(int *order, const search_candidate *pop, int n) {
    for (int i = 0; i < n; i++) {  // insertion sort: stable, n is small
        int j = i;
        while (j > 0 && ranks_before(pop, i, order[j - 1])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

// ---------------------------------------------------------------------------
// The search

static bool same(const search_candidate *a, const search_candidate *b, int n_pairs) {
    return a->n_hat == b->n_hat && memcmp(a->lambda, b->lambda, sizeof(double) * (size_t)n_pairs) == 0;
}

static bool duplicate(const search_candidate *pop, int n, const search_candidate *c, int n_pairs) {
    for (int i = 0; i < n; i++)
        if (same(&pop[i], c, n_pairs)) return true;
    return false;
}

void search_state_init(search_state *st, const search_space *sp,
                       const double baselines[SEARCH_N_BASELINES][ROPE_MAX_PAIRS], int population,
                       int topk, uint64_t seed) {
    CHECK(population >= SEARCH_N_BASELINES && population <= SEARCH_MAX_POPULATION);
    CHECK(topk >= 1 && topk <= population);
    memset(st, 0, sizeof *st);
    st->space = *sp;
    st->population = population;
    st->topk = topk;
    st->seed = seed;
    rng_seed(&st->rng, seed);
    st->pop = xcalloc((size_t)population, sizeof(search_candidate));
    for (int b = 0; b < SEARCH_N_BASELINES; b++) {
        st->baseline_nll[b] = NAN;
        memcpy(st->pop[b].lambda, baselines[b], sizeof(double) * (size_t)sp->n_pairs);
        search_project(st->pop[b].lambda, sp);
        st->pop[b].n_hat = sp->nhat[0];
        st->pop[b].nll = NAN;
    }
    for (int j = SEARCH_N_BASELINES; j < population; j++) {
        for (int draw = 0; draw < MAX_DRAWS; draw++) {
            search_candidate parent = st->pop[(j - SEARCH_N_BASELINES) % SEARCH_N_BASELINES];
            parent.n_hat = sp->nhat[rng_below(&st->rng, (uint64_t)sp->n_nhat)];
            search_mutate(&st->pop[j], &parent, sp, &st->rng);
            if (!duplicate(st->pop, j, &st->pop[j], sp->n_pairs)) break;
        }
    }
}

void search_state_free(search_state *st) {
    free(st->pop);
    free(st->history);
    memset(st, 0, sizeof *st);
}

// The next population: the top-k with their fitness, then children of them.
static void evolve(search_state *st) {
    const int P = st->population, k = st->topk, n = st->space.n_pairs;
    int *order = xmalloc(sizeof(int) * (size_t)P);
    search_candidate *next = xcalloc((size_t)P, sizeof(search_candidate));
    search_rank(order, st->pop, P);
    for (int j = 0; j < k; j++) next[j] = st->pop[order[j]];
    for (int j = k; j < P; j++) {
        for (int draw = 0; draw < MAX_DRAWS; draw++) {
            const search_candidate *a = &next[rng_below(&st->rng, (uint64_t)k)];
            if (k >= 2 && rng_uniform(&st->rng) < CROSS_PROB) {
                const search_candidate *b;
                do b = &next[rng_below(&st->rng, (uint64_t)k)];
                while (b == a);
                search_crossover(&next[j], a, b, &st->space, &st->rng);
            } else {
                search_mutate(&next[j], a, &st->space, &st->rng);
            }
            if (!duplicate(next, j, &next[j], n)) break;
        }
    }
    memcpy(st->pop, next, sizeof(search_candidate) * (size_t)P);
    free(next);
    free(order);
}

void search_generation(search_state *st, search_fitness_fn fn, void *ctx) {
    if (st->generation > 0) evolve(st);
    const int P = st->population;
    int64_t fresh = 0;
    for (int i = 0; i < P; i++) fresh += isnan(st->pop[i].nll);
    fn(ctx, st->pop, P);
    double sum = 0;
    for (int i = 0; i < P; i++) {
        CHECK(!isnan(st->pop[i].nll));  // fn scores every new candidate
        sum += st->pop[i].nll;
    }
    if (st->generation == 0)
        for (int b = 0; b < SEARCH_N_BASELINES; b++) st->baseline_nll[b] = st->pop[b].nll;
    st->evaluated += fresh;
    const search_candidate *best = search_best(st);
    st->history = xrealloc(st->history, sizeof(search_history) * (size_t)(st->generation + 1));
    st->history[st->generation] = (search_history){
        .evaluated = st->evaluated, .best_nll = best->nll, .mean_nll = sum / P, .best_n_hat = best->n_hat};
    st->generation++;
}

const search_candidate *search_best(const search_state *st) {
    int best = 0;
    for (int i = 1; i < st->population; i++)
        if (ranks_before(st->pop, i, best)) best = i;
    return &st->pop[best];
}
