// rng: splitmix64-seeded xoshiro256**. See rng.h.
#include "rng.h"

#include <math.h>

#include "die.h"

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng_state *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
    // splitmix64 is a bijection of its counter, so four consecutive outputs
    // cannot all be zero; keep the check anyway (xoshiro's one bad state).
    CHECK((r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0);
}

void rng_seed_stream(rng_state *r, uint64_t seed, uint64_t stream) {
    uint64_t x = stream;
    rng_seed(r, seed ^ rng_splitmix64(&x));
}

uint64_t rng_next(rng_state *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(rng_state *r, uint64_t n) {
    CHECK(n >= 1);
    // Reject the last (2^64 mod n) values so every residue is equally likely.
    const uint64_t accept_max = UINT64_MAX - (UINT64_MAX % n + 1) % n;
    uint64_t x;
    do {
        x = rng_next(r);
    } while (x > accept_max);
    return x % n;
}

double rng_uniform(rng_state *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

double rng_normal(rng_state *r) {
    // u1 in (0, 1] so the log is finite.
    const double u1 = 1.0 - rng_uniform(r);
    const double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925286766559 * u2);
}

void rng_shuffle_i64(int64_t *a, int64_t n, rng_state *r) {
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = (int64_t)rng_below(r, (uint64_t)i + 1);
        const int64_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
