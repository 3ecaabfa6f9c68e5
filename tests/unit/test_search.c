// test_search: the LongRoPE search (search.h) and its files (search_io.h).
//
// References, independent of the code under test:
//  - isotonic regression by its max-min formula
//    x_i = max_{j <= i} min_{k >= i} mean(y_j..y_k), then clipped, for
//    search_repair;
//  - rope_table_init of the linear (PI), default with base' = base *
//    s^(d/(d-2)) (NTK-aware) and yarn configs, for the inv_freq that the
//    longrope config with the PI/NTK/YaRN factor vectors must reproduce;
//  - a synthetic fitness with a known optimum, for determinism, elitism and
//    resume through the state file;
//  - the critical pair (LongRoPE2's critical dimension) computed by hand
//    for five models, and search_project against the isotonic reference
//    clipped to per-pair bounds;
//  - cfg_read_factors (the run config's reader) for the factors file with
//    searched short factors.
// Each numeric check prints the largest error it saw.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rng.h"
#include "rope_scaling.h"
#include "run_config.h"
#include "search.h"
#include "search_io.h"

static search_space space(int n_pairs, double s) {
    const int64_t nhat[] = {0, 1, 4, 16, 64};
    search_space sp;
    char err[256];
    if (search_space_init(&sp, n_pairs, s, nhat, 5, err, sizeof err) != 0) fail_msg("%s", err);
    return sp;
}

// A random valid candidate of sp.
static search_candidate random_candidate(const search_space *sp, rng_state *r) {
    search_candidate c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < sp->n_pairs; i++) c.lambda[i] = 0.5 + rng_uniform(r) * (sp->s * 1.5);
    search_repair(c.lambda, sp->n_pairs, sp->s);
    c.n_hat = sp->nhat[rng_below(r, (uint64_t)sp->n_nhat)];
    c.nll = NAN;
    return c;
}

// ---------------------------------------------------------------------------
// search_repair against the max-min formula of isotonic regression

static void isotonic_reference(double *x, const double *y, int n, double s) {
    for (int i = 0; i < n; i++) {
        double best = -INFINITY;
        for (int j = 0; j <= i; j++) {
            double lo = INFINITY, sum = 0;
            for (int k = j; k < n; k++) {
                sum += y[k];
                if (k >= i) lo = fmin(lo, sum / (k - j + 1));
            }
            best = fmax(best, lo);
        }
        x[i] = fmin(fmax(best, 1.0), s);
    }
}

static void test_repair(void **state) {
    (void)state;
    rng_state r;
    rng_seed(&r, 11);
    double max_err = 0;
    for (int trial = 0; trial < 3000; trial++) {
        int n = 1 + (int)rng_below(&r, 12);
        double s = 1.0 + 15.0 * rng_uniform(&r) + 1e-3;
        double y[ROPE_MAX_PAIRS], x[ROPE_MAX_PAIRS], ref[ROPE_MAX_PAIRS];
        for (int i = 0; i < n; i++) y[i] = 0.3 + rng_uniform(&r) * 1.4 * s;
        memcpy(x, y, sizeof(double) * (size_t)n);
        search_repair(x, n, s);
        isotonic_reference(ref, y, n, s);
        for (int i = 0; i < n; i++) max_err = fmax(max_err, fabs(x[i] - ref[i]) / ref[i]);
        for (int i = 0; i < n; i++) {
            assert_true(x[i] >= 1.0 && x[i] <= s);
            if (i > 0) assert_true(x[i - 1] <= x[i]);
        }
        // A valid vector is left exactly as it is.
        double again[ROPE_MAX_PAIRS];
        memcpy(again, x, sizeof(double) * (size_t)n);
        search_repair(again, n, s);
        assert_memory_equal(again, x, sizeof(double) * (size_t)n);
    }
    printf("  search_repair vs isotonic max-min formula: max rel err %.3g\n", max_err);
    assert_true(max_err < 1e-12);
}

// ---------------------------------------------------------------------------
// The constraints after mutation and crossover

static void test_operators_keep_constraints(void **state) {
    (void)state;
    rng_state r;
    rng_seed(&r, 12);
    int64_t changed = 0, draws = 0, nhat_moves = 0;
    for (int sp_i = 0; sp_i < 40; sp_i++) {
        int n = 1 + (int)rng_below(&r, 64);
        double s = 1.0 + 63.0 * rng_uniform(&r) + 1e-6;
        search_space sp = space(n, s);
        for (int k = 0; k < 500; k++) {
            search_candidate a = random_candidate(&sp, &r), b = random_candidate(&sp, &r), c;
            search_mutate(&c, &a, &sp, &r);
            assert_true(search_valid(&c, &sp));
            assert_true(isnan(c.nll));
            changed += memcmp(c.lambda, a.lambda, sizeof(double) * (size_t)n) != 0;
            nhat_moves += c.n_hat != a.n_hat;
            search_crossover(&c, &a, &b, &sp, &r);
            assert_true(search_valid(&c, &sp));
            assert_true(c.n_hat == a.n_hat || c.n_hat == b.n_hat);
            // Every factor of a crossover child lies within the parents' range.
            for (int i = 0; i < n; i++)
                assert_true(c.lambda[i] >= fmin(a.lambda[0], b.lambda[0]) &&
                            c.lambda[i] <= fmax(a.lambda[n - 1], b.lambda[n - 1]));
            draws++;
        }
    }
    printf("  %lld mutations and crossovers valid; %lld mutations moved factors, %lld moved n_hat\n",
           (long long)draws, (long long)changed, (long long)nhat_moves);
    // The operators do explore: most mutations move something, some move n_hat.
    assert_true(changed > draws / 2);
    assert_true(nhat_moves > draws / 10 && nhat_moves < draws / 2);

    // The three baselines are valid points.
    search_space sp = space(32, 8.0);
    search_candidate c = {.n_hat = 0};
    search_pi(c.lambda, &sp);
    assert_true(search_valid(&c, &sp));
    search_ntk(c.lambda, &sp);
    assert_true(search_valid(&c, &sp));
    assert_true(c.lambda[0] == 1.0 && fabs(c.lambda[31] - 8.0) < 1e-12);
    c.n_hat = 5;  // not in the set
    assert_false(search_valid(&c, &sp));
}

static void test_space_errors(void **state) {
    (void)state;
    search_space sp;
    char err[256];
    const int64_t ok[] = {16, 0, 4}, no_zero[] = {4, 16}, twice[] = {0, 4, 4}, neg[] = {0, -1};
    assert_int_equal(search_space_init(&sp, 8, 4.0, ok, 3, err, sizeof err), 0);
    assert_true(sp.nhat[0] == 0 && sp.nhat[1] == 4 && sp.nhat[2] == 16);  // sorted
    assert_int_equal(search_space_init(&sp, 8, 1.0, ok, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "ratio"));
    assert_int_equal(search_space_init(&sp, 8, 4.0, no_zero, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "must hold 0"));
    assert_int_equal(search_space_init(&sp, 8, 4.0, twice, 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(search_space_init(&sp, 8, 4.0, neg, 2, err, sizeof err), -1);
    assert_int_equal(search_space_init(&sp, 0, 4.0, ok, 3, err, sizeof err), -1);
}

// ---------------------------------------------------------------------------
// PI, NTK and YaRN vectors reproduce those methods' inv_freq

static double max_rel(const rope_table *a, const rope_table *b) {
    assert_int_equal(a->n_pairs, b->n_pairs);
    double m = 0;
    for (int i = 0; i < a->n_pairs; i++)
        m = fmax(m, fabs((double)a->inv_freq[i] - (double)b->inv_freq[i]) / (double)b->inv_freq[i]);
    return m;
}

static void test_baseline_inv_freq(void **state) {
    (void)state;
    const struct {
        int head_dim;
        double partial, theta;
        int64_t original, target;
    } cases[] = {
        {128, 1.0, 10000.0, 4096, 16384}, {128, 1.0, 500000.0, 8192, 131072}, {64, 1.0, 10000.0, 64, 512},
        {16, 1.0, 10000.0, 128, 1024},    {96, 0.5, 10000.0, 2048, 8192},     {8, 1.0, 10000.0, 64, 256},
        {64, 1.0, 1e6, 4096, 4096 * 32},  {32, 1.0, 10000.0, 100, 150},
    };
    double err_pi = 0, err_ntk = 0, err_yarn = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rope_config model = rope_config_default(cases[k].head_dim);
        model.theta = cases[k].theta;
        model.partial_rotary_factor = cases[k].partial;
        model.max_position_embeddings = cases[k].original;
        const int64_t O = cases[k].original, L = cases[k].target;
        const double s = (double)L / (double)O;
        rope_table t0;
        rope_table_init(&t0, &model, 0);
        const int n = t0.n_pairs, d = 2 * n;
        search_space sp = space(n, s);
        search_candidate c = {.n_hat = 0};
        rope_config lr;
        rope_table got, want;

        // PI: linear, factor s.
        search_pi(c.lambda, &sp);
        lr = search_rope(&model, O, L, &c, n);
        rope_table_init(&got, &lr, L);
        rope_config pi = model;
        pi.type = ROPE_TYPE_LINEAR;
        pi.factor = s;
        rope_table_init(&want, &pi, L);
        err_pi = fmax(err_pi, max_rel(&got, &want));
        assert_int_equal(got.n_hat, 0);

        // NTK-aware: the default rope with base' = base * s^(d/(d-2)).
        search_ntk(c.lambda, &sp);
        assert_true(search_valid(&c, &sp));
        lr = search_rope(&model, O, L, &c, n);
        rope_table_init(&got, &lr, L);
        rope_config ntk = model;
        ntk.theta = model.theta * pow(s, (double)d / (d - 2));
        rope_table_init(&want, &ntk, L);
        err_ntk = fmax(err_ntk, max_rel(&got, &want));

        // YaRN: the yarn config of the same extension.
        search_yarn(c.lambda, &sp, &model, O, L);
        assert_true(search_valid(&c, &sp));
        lr = search_rope(&model, O, L, &c, n);
        rope_table_init(&got, &lr, L);
        rope_config yarn = model;
        yarn.type = ROPE_TYPE_YARN;
        yarn.factor = s;
        yarn.original_max_position_embeddings = O;
        yarn.max_position_embeddings = L;
        rope_table_init(&want, &yarn, L);
        err_yarn = fmax(err_yarn, max_rel(&got, &want));

        // The longrope form: long factors beyond the original, n_hat, factor L / O.
        assert_int_equal(lr.n_factors, n);
        assert_true(lr.factor == s && lr.original_max_position_embeddings == O && lr.max_position_embeddings == L);
        for (int i = 0; i < n; i++) assert_true(lr.short_factor[i] == 1.0);
        rope_table_init(&got, &lr, O);  // at the original length: the short factors = the default rope
        for (int i = 0; i < n; i++) assert_true(got.inv_freq[i] == t0.inv_freq[i]);
    }
    printf("  longrope with the PI / NTK / YaRN vectors vs linear / default(base') / yarn inv_freq: "
           "max rel err %.3g / %.3g / %.3g\n", err_pi, err_ntk, err_yarn);
    assert_true(err_pi <= 1e-6 && err_ntk <= 1e-6 && err_yarn <= 1e-6);
}

// ---------------------------------------------------------------------------
// The search on a synthetic fitness

typedef struct {
    int n_pairs;
    double target[ROPE_MAX_PAIRS];  // the optimum's factors
    int64_t calls, scored;
} synthetic;

// Squared log-distance to the target plus a preference for n_hat 4.
static void synthetic_fitness(void *ctx, search_candidate *pop, int n) {
    synthetic *f = ctx;
    f->calls++;
    for (int i = 0; i < n; i++) {
        if (!isnan(pop[i].nll)) continue;
        double d = 0;
        for (int k = 0; k < f->n_pairs; k++) d += pow(log(pop[i].lambda[k] / f->target[k]), 2);
        pop[i].nll = 2.0 + d / f->n_pairs + (pop[i].n_hat == 4 ? 0.0 : 0.01);
        f->scored++;
    }
}

static void baselines_of(double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS], const search_space *sp) {
    memset(base, 0, sizeof(double) * SEARCH_N_BASELINES * ROPE_MAX_PAIRS);
    rope_config model = rope_config_default(2 * sp->n_pairs);
    search_pi(base[SEARCH_PI], sp);
    search_ntk(base[SEARCH_NTK], sp);
    search_yarn(base[SEARCH_YARN], sp, &model, 64, (int64_t)llround(64 * sp->s));
}

static void run_search(search_state *st, synthetic *f, const search_space *sp, uint64_t seed, int gens) {
    double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS];
    baselines_of(base, sp);
    search_state_init(st, sp, (const double(*)[ROPE_MAX_PAIRS])base, 12, 3, seed);
    for (int g = 0; g < gens; g++) search_generation(st, synthetic_fitness, f);
}

static synthetic make_synthetic(const search_space *sp) {
    synthetic f = {.n_pairs = sp->n_pairs};
    // Between NTK and PI: s^(0.4 + 0.6 * i/(n-1)).
    for (int k = 0; k < sp->n_pairs; k++) f.target[k] = pow(sp->s, 0.4 + 0.6 * k / (sp->n_pairs - 1.0));
    return f;
}

static void assert_same_state(const search_state *a, const search_state *b) {
    assert_int_equal(a->generation, b->generation);
    assert_int_equal(a->evaluated, b->evaluated);
    assert_int_equal(a->population, b->population);
    assert_memory_equal(&a->rng, &b->rng, sizeof a->rng);
    assert_memory_equal(a->pop, b->pop, sizeof(search_candidate) * (size_t)a->population);
    assert_memory_equal(a->history, b->history, sizeof(search_history) * (size_t)a->generation);
    assert_memory_equal(a->baseline_nll, b->baseline_nll, sizeof a->baseline_nll);
}

static void test_deterministic(void **state) {
    (void)state;
    search_space sp = space(8, 8.0);
    synthetic f1 = make_synthetic(&sp), f2 = f1, f3 = f1;
    search_state a, b, c;
    run_search(&a, &f1, &sp, 5, 12);
    run_search(&b, &f2, &sp, 5, 12);
    run_search(&c, &f3, &sp, 6, 12);
    assert_same_state(&a, &b);
    assert_int_equal(memcmp(a.pop, c.pop, sizeof(search_candidate) * 12) == 0, 0);  // another seed
    // Only new candidates are scored: 12, then 12 - 3 per generation.
    assert_int_equal(f1.calls, 12);
    assert_int_equal(f1.scored, 12 + 11 * 9);
    assert_int_equal(a.evaluated, f1.scored);
    // Elitism: the best never gets worse; the search beats all three baselines.
    for (int g = 1; g < a.generation; g++) assert_true(a.history[g].best_nll <= a.history[g - 1].best_nll);
    const search_candidate *best = search_best(&a);
    double base_best = fmin(a.baseline_nll[0], fmin(a.baseline_nll[1], a.baseline_nll[2]));
    printf("  synthetic: baselines %.4f %.4f %.4f, best after 12 generations %.4f (n_hat %lld)\n",
           a.baseline_nll[0], a.baseline_nll[1], a.baseline_nll[2], best->nll, (long long)best->n_hat);
    assert_true(best->nll < base_best - 0.01);
    assert_int_equal(best->n_hat, 4);
    assert_true(a.history[a.generation - 1].best_nll == best->nll);
    for (int i = 0; i < a.population; i++) assert_true(search_valid(&a.pop[i], &sp));
    // search_rank: ascending, ties by index.
    int order[12];
    search_rank(order, a.pop, 12);
    assert_true(&a.pop[order[0]] == best);
    for (int i = 1; i < 12; i++)
        assert_true(a.pop[order[i - 1]].nll < a.pop[order[i]].nll ||
                    (a.pop[order[i - 1]].nll == a.pop[order[i]].nll && order[i - 1] < order[i]));
    search_state_free(&a);
    search_state_free(&b);
    search_state_free(&c);
}

// ---------------------------------------------------------------------------
// LongRoPE2's critical dimension and the bounds it sets

static rope_config model_rope(double theta, int head_dim, double partial) {
    rope_config r = rope_config_default(head_dim);
    r.theta = theta;
    r.partial_rotary_factor = partial;
    return r;
}

static void test_critical_pair(void **state) {
    (void)state;
    // By hand: the period of pair i is 2 pi theta^(2i/d); the critical pair
    // is the first whose period exceeds the original context O, i.e. the
    // first i > (d/2) log_theta(O / 2 pi).
    const struct {
        double theta;
        int head_dim;
        double partial;
        int64_t original;
        int want;
        const char *why;
    } cases[] = {
        // periods 6.28, 19.87, 62.83, 198.7, ...: pair 3 is the first above 128
        {10000, 16, 1.0, 128, 3, "8 * log_1e4(128 / 2pi) = 2.62"},
        // the demo (theta 100): periods 6.28, 11.2, 19.9, 35.3, 62.8, 111.7, 198.7, 353.3
        {100, 16, 1.0, 128, 6, "8 * log_100(20.37) = 5.24"},
        // Llama 2 (4K, theta 1e4, d 128): critical dimension 92 (Liu et al. 2023)
        {10000, 128, 1.0, 4096, 46, "64 * log_1e4(651.9) = 45.03"},
        // Llama 3 (8K, theta 5e5, d 128)
        {500000, 128, 1.0, 8192, 35, "64 * log_5e5(1303.8) = 34.98"},
        // partial rotary: d = 8 of head_dim 16, periods 2 pi 10^i: 6.28, 62.8, 628, 6283
        {10000, 16, 0.5, 128, 2, "4 * log_1e4(20.37) = 1.31"},
        {10000, 16, 1.0, 1000000, 8, "no period exceeds 1M tokens"},
        {10000, 16, 1.0, 6, 0, "every period exceeds 6 tokens (2 pi > 6)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rope_config r = model_rope(cases[k].theta, cases[k].head_dim, cases[k].partial);
        int got = search_critical_pair(&r, cases[k].original);
        printf("  theta %g, head_dim %d x %g, original %lld: critical pair %d (%s)\n", cases[k].theta,
               cases[k].head_dim, cases[k].partial, (long long)cases[k].original, got, cases[k].why);
        assert_int_equal(got, cases[k].want);
    }
    rope_config r = model_rope(10000, 16, 1.0);
    assert_true(fabs(search_pair_period(&r, 3) - 2 * M_PI * pow(10000, 3.0 / 8)) < 1e-9);
    assert_true(fabs(search_pair_period(&r, 3) - 198.6917) < 1e-4);
}

// search_project: the isotonic fit clipped to each pair's bounds.
static void test_project(void **state) {
    (void)state;
    rng_state r;
    rng_seed(&r, 21);
    double max_err = 0;
    for (int trial = 0; trial < 2000; trial++) {
        int n = 1 + (int)rng_below(&r, 12);
        double s = 1.5 + 15.0 * rng_uniform(&r);
        search_space sp = space(n, s);
        char err[256];
        int c = (int)rng_below(&r, (uint64_t)n + 1);
        double mx = s * (1.0 + rng_uniform(&r));
        assert_int_equal(search_space_critical(&sp, c, mx, err, sizeof err), 0);
        double y[ROPE_MAX_PAIRS], x[ROPE_MAX_PAIRS], ref[ROPE_MAX_PAIRS];
        for (int i = 0; i < n; i++) y[i] = 0.3 + rng_uniform(&r) * 2.0 * mx;
        memcpy(x, y, sizeof(double) * (size_t)n);
        search_project(x, &sp);
        isotonic_reference(ref, y, n, INFINITY);
        for (int i = 0; i < n; i++) ref[i] = fmin(fmax(ref[i], i >= c ? s : 1.0), i >= c ? mx : s);
        for (int i = 0; i < n; i++) max_err = fmax(max_err, fabs(x[i] - ref[i]) / ref[i]);
        search_candidate cand = {.n_hat = 0};
        memcpy(cand.lambda, x, sizeof(double) * (size_t)n);
        assert_true(search_valid(&cand, &sp));
        double again[ROPE_MAX_PAIRS];
        memcpy(again, x, sizeof(double) * (size_t)n);
        search_project(again, &sp);
        assert_memory_equal(again, x, sizeof(double) * (size_t)n);
    }
    printf("  search_project vs isotonic max-min formula clipped to the bounds: max rel err %.3g\n", max_err);
    assert_true(max_err < 1e-12);
}

// The operators stay in a space with critical bounds and one fixed n_hat;
// the baselines projected onto it keep their factors below the critical pair.
static void test_critical_space(void **state) {
    (void)state;
    rng_state r;
    rng_seed(&r, 5);
    char err[256];
    int64_t draws = 0;
    for (int sp_i = 0; sp_i < 30; sp_i++) {
        int n = 2 + (int)rng_below(&r, 30);
        double s = 1.5 + 30.0 * rng_uniform(&r);
        search_space sp = space(n, s);
        int c = (int)rng_below(&r, (uint64_t)n + 1);
        double mx = sp_i % 3 == 0 ? s : s * (1.0 + 2.0 * rng_uniform(&r));
        assert_int_equal(search_space_critical(&sp, c, mx, err, sizeof err), 0);
        if (sp_i % 2) search_space_fix_nhat(&sp, 7);
        double base[SEARCH_N_BASELINES][ROPE_MAX_PAIRS];
        baselines_of(base, &sp);
        search_state st;
        search_state_init(&st, &sp, (const double(*)[ROPE_MAX_PAIRS])base, 8, 2, 3);
        for (int i = 0; i < 8; i++) assert_true(search_valid(&st.pop[i], &sp));
        for (int b = 0; b < SEARCH_N_BASELINES; b++)
            for (int i = 0; i < n; i++) {
                if (i >= c) assert_true(st.pop[b].lambda[i] >= s && st.pop[b].lambda[i] <= mx);
                else if (b == SEARCH_NTK) assert_true(st.pop[b].lambda[i] == base[b][i]);  // below s: kept
            }
        search_state_free(&st);
        const search_space plain = space(n, s);
        for (int k = 0; k < 300; k++) {
            search_candidate a = random_candidate(&plain, &r), b = random_candidate(&plain, &r), child;
            search_project(a.lambda, &sp);
            search_project(b.lambda, &sp);
            a.n_hat = b.n_hat = sp.nhat[0];
            search_mutate(&child, &a, &sp, &r);
            assert_true(search_valid(&child, &sp));
            search_crossover(&child, &a, &b, &sp, &r);
            assert_true(search_valid(&child, &sp));
            for (int i = c; i < n; i++) assert_true(child.lambda[i] >= s);
            draws++;
        }
    }
    printf("  %lld mutations and crossovers valid under critical bounds\n", (long long)draws);
    search_space sp = space(8, 4.0);
    assert_int_equal(search_space_critical(&sp, 3, 3.9, err, sizeof err), -1);
    assert_non_null(strstr(err, "extension ratio"));
    assert_int_equal(search_space_critical(&sp, 9, 4.0, err, sizeof err), -1);
    assert_int_equal(search_space_critical(&sp, 8, 4.0, err, sizeof err), 0);  // no critical pair: unchanged
    for (int i = 0; i < 8; i++) assert_true(sp.lo[i] == 1.0 && sp.hi[i] == 4.0);
}

// ---------------------------------------------------------------------------
// The state file: a resumed search ends as an uninterrupted one

static void tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "/tmp/test_search_%d_%s", (int)getpid(), name);
}

static void test_resume(void **state) {
    (void)state;
    search_space sp = space(6, 4.0);
    synthetic f1 = make_synthetic(&sp), f2 = f1;
    search_state full, part, loaded;
    run_search(&full, &f1, &sp, 9, 7);
    run_search(&part, &f2, &sp, 9, 3);

    search_settings set = {0}, set2;
    search_settings_add(&set, "ckpt", "run/ckpt-1.h5 (step 1)");
    search_settings_add(&set, "target_len", "%d", 256);
    char path[256], err[512];
    tmp_path(path, sizeof path, "state");
    assert_int_equal(search_state_save(path, &part, &set, err, sizeof err), 0);
    assert_int_equal(search_state_load(&loaded, &set2, path, err, sizeof err), 0);
    assert_same_state(&loaded, &part);
    assert_memory_equal(&loaded.space, &part.space, sizeof sp);
    assert_int_equal(loaded.topk, part.topk);
    assert_true(loaded.seed == part.seed);
    assert_int_equal(search_settings_compare(&set2, &set, err, sizeof err), 0);
    search_settings other = {0};
    search_settings_add(&other, "ckpt", "run/ckpt-1.h5 (step 1)");
    search_settings_add(&other, "target_len", "%d", 512);
    assert_int_equal(search_settings_compare(&set2, &other, err, sizeof err), -1);
    assert_string_equal(err, "target_len: 256 (saved) vs 512 (now)");

    for (int g = 3; g < 7; g++) search_generation(&loaded, synthetic_fitness, &f2);
    assert_same_state(&loaded, &full);

    // Refused: a truncated file, a foreign one; a missing one is "none".
    FILE *in = fopen(path, "r");
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, in);
    fclose(in);
    char cut[256];
    tmp_path(cut, sizeof cut, "cut");
    FILE *out = fopen(cut, "w");
    fwrite(text, 1, n / 2, out);
    fclose(out);
    search_state bad;
    assert_int_equal(search_state_load(&bad, &set2, cut, err, sizeof err), -1);
    assert_non_null(strstr(err, cut));
    out = fopen(cut, "w");
    fputs("model: {dim: 8}\n", out);
    fclose(out);
    assert_int_equal(search_state_load(&bad, &set2, cut, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 1"));
    unlink(cut);
    assert_int_equal(search_state_load(&bad, &set2, cut, err, sizeof err), 1);
    free(text);
    unlink(path);
    search_state_free(&full);
    search_state_free(&part);
    search_state_free(&loaded);
}

// A state with critical bounds and a fixed n_hat reads back bit for bit.
static void test_state_bounds(void **state) {
    (void)state;
    search_space sp = space(6, 4.0);
    char err[512], path[256];
    assert_int_equal(search_space_critical(&sp, 2, 6.5, err, sizeof err), 0);
    search_space_fix_nhat(&sp, 16);
    synthetic f = make_synthetic(&sp);
    search_state st, loaded;
    run_search(&st, &f, &sp, 4, 3);
    search_settings set = {0}, set2;
    search_settings_add(&set, "critical", "on");
    tmp_path(path, sizeof path, "bounds.state");
    assert_int_equal(search_state_save(path, &st, &set, err, sizeof err), 0);
    assert_int_equal(search_state_load(&loaded, &set2, path, err, sizeof err), 0);
    assert_memory_equal(&loaded.space, &st.space, sizeof sp);
    assert_same_state(&loaded, &st);
    for (int i = 0; i < st.population; i++) assert_true(search_valid(&loaded.pop[i], &sp) && loaded.pop[i].n_hat == 16);
    unlink(path);
    search_state_free(&st);
    search_state_free(&loaded);
}

// The factors file reads back through the run config's reader, bit for bit.
static void test_factors_file(void **state) {
    (void)state;
    search_space sp = space(16, 8.0);
    rng_state r;
    rng_seed(&r, 3);
    search_candidate c = random_candidate(&sp, &r);
    c.n_hat = 16;
    char path[256], err[512];
    tmp_path(path, sizeof path, "factors.yaml");
    assert_int_equal(search_write_factors(path, NULL, &c, 16, "a comment\nover two lines", err, sizeof err), 0);
    cfg_doubles sf, lf;
    int64_t n_hat;
    assert_int_equal(cfg_read_factors(&sf, &lf, &n_hat, path, err, sizeof err), 0);
    assert_int_equal(sf.n, 16);
    assert_int_equal(lf.n, 16);
    for (int i = 0; i < 16; i++) assert_true(sf.v[i] == 1.0);
    assert_memory_equal(lf.v, c.lambda, sizeof(double) * 16);
    assert_int_equal(n_hat, 16);
    free(sf.v);
    free(lf.v);

    // With searched short factors (LongRoPE's short-context recovery) beside the long ones.
    double short_f[16];
    for (int i = 0; i < 16; i++) short_f[i] = 1.0 + rng_uniform(&r) * 0.7 + 1e-17 * i;
    search_repair(short_f, 16, 8.0);
    assert_int_equal(search_write_factors(path, short_f, &c, 16, NULL, err, sizeof err), 0);
    assert_int_equal(cfg_read_factors(&sf, &lf, &n_hat, path, err, sizeof err), 0);
    assert_int_equal(sf.n, 16);
    assert_memory_equal(sf.v, short_f, sizeof short_f);
    assert_memory_equal(lf.v, c.lambda, sizeof(double) * 16);
    assert_int_equal(n_hat, 16);
    // ... and a longrope config of them selects the short ones up to the original length.
    rope_config model = rope_config_default(32);
    rope_config lr = search_rope_short(&model, 64, 512, sf.v, &c, 16);
    rope_table at_o, beyond;
    rope_table_init(&at_o, &lr, 64);
    rope_table_init(&beyond, &lr, 65);
    for (int i = 0; i < 16; i++) {
        double base = pow(10000.0, -2.0 * i / 32);
        assert_true(fabs(at_o.inv_freq[i] - base / short_f[i]) <= 1e-6 * base);
        assert_true(fabs(beyond.inv_freq[i] - base / c.lambda[i]) <= 1e-6 * base);
    }
    free(sf.v);
    free(lf.v);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repair),
        cmocka_unit_test(test_operators_keep_constraints),
        cmocka_unit_test(test_space_errors),
        cmocka_unit_test(test_baseline_inv_freq),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_factors_file),
        cmocka_unit_test(test_critical_pair),
        cmocka_unit_test(test_project),
        cmocka_unit_test(test_critical_space),
        cmocka_unit_test(test_state_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
