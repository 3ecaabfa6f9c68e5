// rng: the one pseudo-random generator of stretch, deterministic from a seed
// and cheap to save in a checkpoint (four 64-bit words).
//
// xoshiro256** 1.0 (Blackman & Vigna), seeded by splitmix64 so that any
// 64-bit seed, 0 included, gives a well-mixed non-zero state. Used for data
// shuffling, synthetic tasks and (by the trainer) initialization and dropout.
// Never use rand(): a run must be reproducible bit for bit from its seeds.
//
// Tested by tests/unit/test_rng.c: splitmix64 and xoshiro256** against
// outputs of an independent implementation, rng_below unbiased and in range,
// rng_uniform/rng_normal moments, rng_shuffle a permutation that depends on
// the seed.
#pragma once

#include <stdint.h>

typedef struct {
    uint64_t s[4];  // xoshiro256** state, never all zero
} rng_state;

// splitmix64: advances *x and returns the next output. Also a good 64-bit
// mixing function for deriving sub-seeds (e.g. seed ^ stream id).
uint64_t rng_splitmix64(uint64_t *x);

// State from a 64-bit seed: s[i] = the i-th splitmix64 output from seed.
void rng_seed(rng_state *r, uint64_t seed);

// An independent stream for (seed, stream): rng_seed(seed mixed with stream).
void rng_seed_stream(rng_state *r, uint64_t seed, uint64_t stream);

// Next 64 random bits.
uint64_t rng_next(rng_state *r);

// Uniform integer in [0, n), n >= 1, without modulo bias (rejection).
uint64_t rng_below(rng_state *r, uint64_t n);

// Uniform double in [0, 1) with 53 random bits.
double rng_uniform(rng_state *r);

// Standard normal (Box-Muller in double, one output per call).
double rng_normal(rng_state *r);

// In-place Fisher-Yates shuffle of a (n) with r.
void rng_shuffle_i64(int64_t *a, int64_t n, rng_state *r);
