// search: the LongRoPE evolutionary search of per-pair RoPE rescale factors
// lambda_i and the threshold n_hat (Ding et al. 2024; docs/rope.md),
// independent of how a candidate is scored.
//
// A candidate is the rope_type longrope config of the model with
// long_factor = lambda, short_factor = 1 and n_hat: pair i's frequency is
// divided by lambda_i at positions >= n_hat. The search space, with s the
// extension ratio target / original:
//   lo_i <= lambda_i <= hi_i,  lambda_0 <= lambda_1 <= ... <= lambda_{n-1}
// (non-decreasing from high to low frequency), n_hat from a candidate set.
// LongRoPE's space has lo = 1 and hi = s everywhere (never compressed,
// never interpolated more than the extension ratio) and a set that holds 0
// (the classic methods interpolate every position). LongRoPE2's critical
// dimension rule (search_space_critical) raises lo to s for the pairs whose
// period exceeds the original context: those never turned a full period in
// pretraining, so positions beyond the original context are out of
// distribution unless the pair is interpolated by at least s. The short
// factors of LongRoPE's short-context recovery are searched in a space with
// one fixed n_hat (search_space_fix_nhat).
//
// Generation 1 holds three baseline vectors (for the long factors: PI,
// lambda_i = s; NTK-aware, base' = base * s^(d/(d-2)), i.e. lambda_i =
// s^(2i/(d-2)); YaRN, inv_freq_default / inv_freq_yarn) with the set's
// first n_hat, projected onto the space, then mutations of them. Each later
// generation keeps the top-k candidates with their fitness (elitism: the
// best never gets worse, and the three baselines stay in the race until
// beaten) and fills the rest with mutations and crossovers of them;
// children are projected onto the constraints (search_project) and
// duplicates are drawn again. Everything random comes from one rng_state,
// so the search is a function of its seed and the fitness values.
//
// Tested by tests/unit/test_search.c: the constraints after mutation and
// crossover over many random draws (also with critical bounds and a fixed
// n_hat), search_repair against a brute-force isotonic regression, the
// PI/NTK/YaRN vectors against rope_table_init of the linear/default(base')/
// yarn configs, the critical pair against a hand computation, determinism
// and elitism on a synthetic fitness, and resume through the state file
// (search_io.h).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "rope_scaling.h"

#define SEARCH_MAX_NHAT 32      // entries of the n_hat candidate set
#define SEARCH_MAX_POPULATION 4096

enum { SEARCH_PI, SEARCH_NTK, SEARCH_YARN, SEARCH_N_BASELINES };

// What is searched.
typedef struct {
    int n_pairs;                     // rotary_dim / 2
    double s;                        // extension ratio target / original (> 1)
    int n_nhat;                      // candidate n_hat values (>= 1)
    int64_t nhat[SEARCH_MAX_NHAT];   // (n_nhat) ascending, distinct, >= 0
    double lo[ROPE_MAX_PAIRS];       // (n_pairs) bounds of lambda_i, both non-decreasing
    double hi[ROPE_MAX_PAIRS];       // in i, 1 <= lo_i <= hi_i
} search_space;

typedef struct {
    double lambda[ROPE_MAX_PAIRS];   // (n_pairs) rescale factors, pair 0 = highest frequency
    int64_t n_hat;                   // positions below keep the default frequencies
    double nll;                      // fitness: mean NLL at the target length; NAN = not evaluated
} search_candidate;

// One row per generation: what the CSV and the plot show.
typedef struct {
    int64_t evaluated;               // candidates scored so far, all generations
    double best_nll, mean_nll;       // over the generation's population
    int64_t best_n_hat;
} search_history;

typedef struct {
    search_space space;
    int population, topk;
    uint64_t seed;
    int generation;                  // generations scored so far (0: generation 1 not yet)
    int64_t evaluated;               // candidates scored so far
    rng_state rng;
    search_candidate *pop;           // (population) the current generation
    search_history *history;         // (generation)
    double baseline_nll[SEARCH_N_BASELINES];  // pop[0..2] of generation 1 (PI, NTK, YaRN)
} search_state;

// Scores every pop[i] whose nll is NAN (sets pop[i].nll); must be a pure
// function of the candidate, so that a resumed search continues the same.
typedef void (*search_fitness_fn)(void *ctx, search_candidate *pop, int n);

// ---------------------------------------------------------------------------
// The search space and its three classic points

// LongRoPE's space: bounds [1, s] for every pair. 0, or -1 with a one-line
// message (n_pairs, s <= 1, n_hat set: distinct, >= 0, holding 0).
int search_space_init(search_space *out, int n_pairs, double s, const int64_t *nhat, int n_nhat,
                      char *err, size_t errlen);

// LongRoPE2's critical dimension rule: pairs first_pair .. n_pairs-1 get the
// bounds [s, max_factor] (max_factor >= s; = s pins them to s). 0, or -1
// with a one-line message.
int search_space_critical(search_space *sp, int first_pair, double max_factor, char *err,
                          size_t errlen);

// The set of n_hat values becomes {n_hat} (the short factors share the long
// factors' n_hat: a factors file holds one).
void search_space_fix_nhat(search_space *sp, int64_t n_hat);

// The first rotary pair whose period 2 pi theta^(2i/d) (in tokens, d the
// rotary dim of model_rope) exceeds original: LongRoPE2's theoretical
// critical dimension is twice it, 2 ceil((d/2) log_theta(original / 2 pi))
// (for a period never exactly equal to original). n_pairs when no period
// exceeds it, 0 when every one does.
int search_critical_pair(const rope_config *model_rope, int64_t original);
// Its period in tokens (pair < n_pairs).
double search_pair_period(const rope_config *model_rope, int pair);

// The longrope config of a candidate for a model whose pretrained rope is
// model_rope (theta, head_dim, partial_rotary_factor), extended from
// original to target tokens: long_factor = c->lambda, short_factor = 1,
// n_hat, factor and attention factor derived (target / original) as a
// curriculum stage of seq_len target with rope.factors_file gets them.
rope_config search_rope(const rope_config *model_rope, int64_t original, int64_t target,
                        const search_candidate *c, int n_pairs);
// The same with short_factor = short_f (n_pairs; NULL: all 1).
rope_config search_rope_short(const rope_config *model_rope, int64_t original, int64_t target,
                              const double *short_f, const search_candidate *c, int n_pairs);

// The yarn config of the same extension (factor target / original, HF's
// default beta_fast 32, beta_slow 1, attention factor derived).
rope_config search_yarn_rope(const rope_config *model_rope, int64_t original, int64_t target);

// lambda (n_pairs) of position interpolation: s everywhere.
void search_pi(double *lambda, const search_space *sp);
// lambda (n_pairs) of NTK-aware base scaling, base' = base * s^(d/(d-2)):
// lambda_i = (base'/base)^(2i/d) = s^(2i/(d-2)), from 1 to s. (d = 2: 1.)
void search_ntk(double *lambda, const search_space *sp);
// lambda (n_pairs) of YaRN: inv_freq_default[i] / inv_freq_yarn[i] from
// rope_table_init of search_yarn_rope, repaired onto the constraints (a
// float32 ulp at most).
void search_yarn(double *lambda, const search_space *sp, const rope_config *model_rope,
                 int64_t original, int64_t target);

// ---------------------------------------------------------------------------
// Constraints and operators

// True iff lambda is non-decreasing, within the bounds, and n_hat is in the set.
bool search_valid(const search_candidate *c, const search_space *sp);

// The nearest (least squares) non-decreasing sequence to lambda (n) by pool
// adjacent violators, then clipped to [1, s]: valid, and unchanged if it was.
void search_repair(double *lambda, int n, double s);
// The same with sp's bounds: pool adjacent violators, then each lambda_i
// clipped to [lo_i, hi_i] (non-decreasing bounds keep the order); unchanged
// if it was valid.
void search_project(double *lambda, const search_space *sp);

// child <- parent with some factors moved by log-normal steps (each pair
// with some probability, or one contiguous run by a common step) and
// sometimes another n_hat from the set; then repaired. nll = NAN.
void search_mutate(search_candidate *child, const search_candidate *parent, const search_space *sp,
                   rng_state *rng);

// child <- each factor from a or b at random, n_hat from one of them; then
// repaired. nll = NAN.
void search_crossover(search_candidate *child, const search_candidate *a, const search_candidate *b,
                      const search_space *sp, rng_state *rng);

// order (n) <- indices of pop by nll ascending (NAN last, ties by index).
void search_rank(int *order, const search_candidate *pop, int n);

// ---------------------------------------------------------------------------
// The search

// Generation 1, not yet scored: baselines[SEARCH_PI..SEARCH_YARN] projected
// onto sp (n_hat: the set's smallest, 0 unless fixed), then mutations of
// them in turn (each from a random n_hat of the set).
// population >= SEARCH_N_BASELINES, 1 <= topk <= population (checked).
void search_state_init(search_state *st, const search_space *sp,
                       const double baselines[SEARCH_N_BASELINES][ROPE_MAX_PAIRS], int population,
                       int topk, uint64_t seed);
void search_state_free(search_state *st);

// One generation: the next population (unless it is generation 1), its
// new candidates scored by fn, a history row. generation += 1.
void search_generation(search_state *st, search_fitness_fn fn, void *ctx);

// The best candidate of the current population (after a scored generation).
const search_candidate *search_best(const search_state *st);
