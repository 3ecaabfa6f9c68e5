// rope_scaling: inv_freq and attention factor for every RoPE scaling type.
// Formulas follow transformers' modeling_rope_utils (v5 code path); see
// docs/rope.md for what stretch does differently. All arithmetic is double,
// rounded to float once at the end (< 1e-7 relative from a float64 reference).
#include "rope_scaling.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"

// ---------------------------------------------------------------------------
// Derived quantities shared by validation and table construction

// HF: dim = int(head_dim * partial_rotary_factor); 0 means "not given" = 1.0.
static int rotary_dim(const rope_config *cfg) {
    double prf = cfg->partial_rotary_factor == 0.0 ? 1.0 : cfg->partial_rotary_factor;
    return (int)(cfg->head_dim * prf);
}

// HF standardize_rope_params: original_max_position_embeddings defaults to
// max_position_embeddings.
static int64_t original_max(const rope_config *cfg) {
    return cfg->original_max_position_embeddings > 0 ? cfg->original_max_position_embeddings
                                                     : cfg->max_position_embeddings;
}

// yarn and longrope: a missing factor is max_position_embeddings / original.
static double factor_or_ratio(const rope_config *cfg) {
    if (cfg->factor != 0.0) return cfg->factor;
    return (double)cfg->max_position_embeddings / (double)original_max(cfg);
}

// ---------------------------------------------------------------------------
// Validation

static bool uses_factor(rope_type type) {
    return type == ROPE_TYPE_LINEAR || type == ROPE_TYPE_DYNAMIC || type == ROPE_TYPE_YARN ||
           type == ROPE_TYPE_LLAMA3 || type == ROPE_TYPE_LONGROPE;
}

// factor may be omitted (0) only where HF derives it (yarn v5, longrope).
static bool factor_required(rope_type type) {
    return type == ROPE_TYPE_LINEAR || type == ROPE_TYPE_DYNAMIC || type == ROPE_TYPE_LLAMA3;
}

static bool uses_original(rope_type type) {
    return type == ROPE_TYPE_YARN || type == ROPE_TYPE_LONGROPE || type == ROPE_TYPE_LLAMA3;
}

static int validate_factor_list(const double *f, int n, const char *key, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        if (!(f[i] > 0.0) || !isfinite(f[i]))
            return errmsg(err, errlen, "rope_scaling.%s[%d] must be > 0 (got %g)", key, i, f[i]);
    }
    return 0;
}

int rope_config_validate(const rope_config *cfg, char *err, size_t errlen) {
    const char *tname = rope_type_name(cfg->type);
    if (strcmp(tname, "unknown") == 0)
        return errmsg(err, errlen, "rope_scaling.rope_type: unknown value %d", (int)cfg->type);
    if (cfg->head_dim <= 0 || cfg->head_dim % 2 != 0)
        return errmsg(err, errlen, "head_dim must be a positive even number (got %d)", cfg->head_dim);
    double prf = cfg->partial_rotary_factor;
    if (!(prf >= 0.0 && prf <= 1.0))  // 0 = not given = 1.0
        return errmsg(err, errlen, "partial_rotary_factor must be in (0, 1] (got %g)", prf);
    int d = rotary_dim(cfg);
    if (d <= 0 || d % 2 != 0)
        return errmsg(err, errlen,
                    "partial_rotary_factor %g gives rotary dim %d for head_dim %d; "
                    "it must be positive and even",
                    prf == 0.0 ? 1.0 : prf, d, cfg->head_dim);
    if (d / 2 > ROPE_MAX_PAIRS)
        return errmsg(err, errlen, "head_dim: rotary dim %d exceeds the maximum %d", d,
                    2 * ROPE_MAX_PAIRS);
    // theta <= 1 gives non-decreasing frequencies (and ln(theta) = 0 in yarn).
    if (!(cfg->theta > 1.0) || !isfinite(cfg->theta))
        return errmsg(err, errlen, "rope_theta must be > 1 (got %g)", cfg->theta);
    if (cfg->max_position_embeddings < 0)
        return errmsg(err, errlen, "max_position_embeddings must be > 0 (got %lld)",
                    (long long)cfg->max_position_embeddings);
    if (cfg->original_max_position_embeddings < 0)
        return errmsg(err, errlen,
                    "rope_scaling.original_max_position_embeddings must be > 0 (got %lld)",
                    (long long)cfg->original_max_position_embeddings);
    if (cfg->n_hat < 0)
        return errmsg(err, errlen, "rope_scaling.n_hat must be >= 0 (got %lld)",
                    (long long)cfg->n_hat);
    if (cfg->n_hat > 0 && cfg->type != ROPE_TYPE_LONGROPE)
        return errmsg(err, errlen, "rope_scaling.n_hat applies only to rope_type longrope (got %s)",
                    tname);

    rope_type type = cfg->type;
    if ((type == ROPE_TYPE_DYNAMIC || uses_original(type)) && cfg->max_position_embeddings <= 0)
        return errmsg(err, errlen, "max_position_embeddings must be > 0 for rope_type %s (got %lld)",
                    tname, (long long)cfg->max_position_embeddings);
    if (type == ROPE_TYPE_DYNAMIC && d < 4)
        return errmsg(err, errlen, "head_dim: rope_type dynamic needs a rotary dim >= 4 (got %d)", d);
    if (uses_original(type) && original_max(cfg) > cfg->max_position_embeddings)
        return errmsg(err, errlen,
                    "rope_scaling.original_max_position_embeddings (%lld) must be <= "
                    "max_position_embeddings (%lld)",
                    (long long)original_max(cfg), (long long)cfg->max_position_embeddings);

    // factor: HF warns unless factor >= 1 for every type that reads it; a
    // factor below 1 shrinks the context, so stretch rejects it.
    if (uses_factor(type)) {
        if (cfg->factor == 0.0 && factor_required(type))
            return errmsg(err, errlen, "rope_scaling.factor is required for rope_type %s", tname);
        if (cfg->factor != 0.0 && (!(cfg->factor >= 1.0) || !isfinite(cfg->factor)))
            return errmsg(err, errlen, "rope_scaling.factor must be >= 1 (got %g)", cfg->factor);
    }
    if (cfg->attention_factor < 0.0 || !isfinite(cfg->attention_factor))
        return errmsg(err, errlen, "rope_scaling.attention_factor must be > 0 (got %g)",
                    cfg->attention_factor);

    if (type == ROPE_TYPE_YARN) {
        if (cfg->beta_fast < 0.0 || !isfinite(cfg->beta_fast))
            return errmsg(err, errlen, "rope_scaling.beta_fast must be > 0 (got %g)", cfg->beta_fast);
        if (cfg->beta_slow < 0.0 || !isfinite(cfg->beta_slow))
            return errmsg(err, errlen, "rope_scaling.beta_slow must be > 0 (got %g)", cfg->beta_slow);
        double bf = cfg->beta_fast != 0.0 ? cfg->beta_fast : 32.0;
        double bs = cfg->beta_slow != 0.0 ? cfg->beta_slow : 1.0;
        if (bf < bs)  // HF warns; the ramp would run backwards
            return errmsg(err, errlen, "rope_scaling.beta_fast (%g) must be >= beta_slow (%g)", bf,
                        bs);
        if (cfg->mscale < 0.0 || !isfinite(cfg->mscale))
            return errmsg(err, errlen, "rope_scaling.mscale must be >= 0 (got %g)", cfg->mscale);
        if (cfg->mscale_all_dim < 0.0 || !isfinite(cfg->mscale_all_dim))
            return errmsg(err, errlen, "rope_scaling.mscale_all_dim must be >= 0 (got %g)",
                        cfg->mscale_all_dim);
    }
    if (type == ROPE_TYPE_LONGROPE) {
        if (cfg->n_factors == 0)
            return errmsg(err, errlen,
                        "rope_scaling.short_factor and long_factor are required "
                        "for rope_type longrope");
        if (cfg->n_factors != d / 2)
            return errmsg(err, errlen,
                        "rope_scaling.short_factor/long_factor must have rotary_dim/2 = %d entries "
                        "(got %d)",
                        d / 2, cfg->n_factors);
        if (validate_factor_list(cfg->short_factor, cfg->n_factors, "short_factor", err, errlen))
            return -1;
        if (validate_factor_list(cfg->long_factor, cfg->n_factors, "long_factor", err, errlen))
            return -1;
        if (cfg->attention_factor == 0.0 && original_max(cfg) < 2)  // ln(original) divides
            return errmsg(err, errlen,
                        "rope_scaling.original_max_position_embeddings must be >= 2 "
                        "(got %lld)",
                        (long long)original_max(cfg));
    }
    if (type == ROPE_TYPE_LLAMA3) {
        if (!(cfg->low_freq_factor > 0.0) || !isfinite(cfg->low_freq_factor))
            return errmsg(err, errlen, "rope_scaling.low_freq_factor must be > 0 (got %g)",
                        cfg->low_freq_factor);
        if (!(cfg->high_freq_factor > cfg->low_freq_factor) || !isfinite(cfg->high_freq_factor))
            return errmsg(err, errlen,
                        "rope_scaling.high_freq_factor (%g) must be > low_freq_factor (%g)",
                        cfg->high_freq_factor, cfg->low_freq_factor);
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Per-type inverse frequencies, in double: inv[i] for i < d/2

// 1 / base^(2i/d)
static void default_inv_freq(double *inv, double base, int d) {
    for (int i = 0; i < d / 2; i++) inv[i] = 1.0 / pow(base, (2.0 * i) / d);
}

// Dynamic NTK: base' = base * (factor * L'/L - (factor - 1))^(d/(d-2)),
// L' = max(seq_len, L); seq_len 0 = init time (L' = L, base' = base).
static void dynamic_inv_freq(double *inv, const rope_config *cfg, int d, int64_t seq_len) {
    double L = (double)cfg->max_position_embeddings;
    double s = seq_len > cfg->max_position_embeddings ? (double)seq_len : L;
    double base = cfg->theta * pow(cfg->factor * s / L - (cfg->factor - 1.0), (double)d / (d - 2));
    default_inv_freq(inv, base, d);
}

static double yarn_get_mscale(double scale, double m) {
    return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

// YaRN: blend of the interpolated (inv/factor) and extrapolated (inv)
// frequencies with a linear ramp over the pair index between the correction
// dims of beta_fast and beta_slow rotations in the original context.
static double yarn_inv_freq(double *inv, const rope_config *cfg, int d) {
    double base = cfg->theta, factor = factor_or_ratio(cfg);
    double Lo = (double)original_max(cfg);
    double beta_fast = cfg->beta_fast != 0.0 ? cfg->beta_fast : 32.0;
    double beta_slow = cfg->beta_slow != 0.0 ? cfg->beta_slow : 1.0;

    double attention_factor = cfg->attention_factor;
    if (attention_factor == 0.0) {
        if (cfg->mscale != 0.0 && cfg->mscale_all_dim != 0.0)
            attention_factor =
                yarn_get_mscale(factor, cfg->mscale) / yarn_get_mscale(factor, cfg->mscale_all_dim);
        else
            attention_factor = yarn_get_mscale(factor, 1.0);
    }

    // find_correction_dim(r) = d * ln(Lo / (r * 2 pi)) / (2 ln base)
    double low = d * log(Lo / (beta_fast * 2.0 * M_PI)) / (2.0 * log(base));
    double high = d * log(Lo / (beta_slow * 2.0 * M_PI)) / (2.0 * log(base));
    if (!cfg->no_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = fmax(low, 0.0);
    high = fmin(high, (double)(d - 1));  // HF clamps with d - 1, not d/2 - 1
    if (low == high) high += 0.001;

    for (int i = 0; i < d / 2; i++) {
        double extrapolation = 1.0 / pow(base, (2.0 * i) / d);
        double interpolation = extrapolation / factor;
        double ramp = fmin(fmax((i - low) / (high - low), 0.0), 1.0);
        double e = 1.0 - ramp;  // inv_freq_extrapolation_factor
        inv[i] = interpolation * (1.0 - e) + extrapolation * e;
    }
    return attention_factor;
}

// LongRoPE: per-pair rescale factors, the long list once seq_len > original.
// The lists go through float32 first, as torch builds them as float32 tensors.
static double longrope_inv_freq(double *inv, const rope_config *cfg, int d, int64_t seq_len) {
    int64_t Lo = original_max(cfg);
    double factor = factor_or_ratio(cfg);
    double attention_factor = cfg->attention_factor;
    if (attention_factor == 0.0)
        attention_factor = factor <= 1.0 ? 1.0 : sqrt(1.0 + log(factor) / log((double)Lo));
    const double *ext = seq_len > Lo ? cfg->long_factor : cfg->short_factor;
    for (int i = 0; i < d / 2; i++)
        inv[i] = 1.0 / ((double)(float)ext[i] * pow(cfg->theta, (2.0 * i) / d));
    return attention_factor;
}

// Llama 3: keep wavelengths < Lo/high_freq_factor, divide those > Lo/low_freq_factor
// by factor, and blend smoothly in between (band edges belong to the blend).
static void llama3_inv_freq(double *inv, const rope_config *cfg, int d) {
    double factor = cfg->factor, lo_ff = cfg->low_freq_factor, hi_ff = cfg->high_freq_factor;
    double Lo = (double)original_max(cfg);
    double low_freq_wavelen = Lo / lo_ff, high_freq_wavelen = Lo / hi_ff;
    default_inv_freq(inv, cfg->theta, d);
    for (int i = 0; i < d / 2; i++) {
        double wavelen = 2.0 * M_PI / inv[i];
        if (wavelen > low_freq_wavelen) {
            inv[i] = inv[i] / factor;
        } else if (!(wavelen < high_freq_wavelen)) {
            double smooth = (Lo / wavelen - lo_ff) / (hi_ff - lo_ff);
            inv[i] = (1.0 - smooth) * inv[i] / factor + smooth * inv[i];
        }
    }
}

// cfg's frequencies in double: inv (scaled) and orig (default), d/2 each;
// returns the attention factor. cfg must be valid.
static double inv_freq_double(double *inv, double *orig, const rope_config *cfg, int64_t seq_len) {
    int d = rotary_dim(cfg);
    double attention_factor = 1.0;
    default_inv_freq(orig, cfg->theta, d);
    switch (cfg->type) {
    case ROPE_TYPE_DEFAULT:
        memcpy(inv, orig, sizeof(double) * (size_t)(d / 2));
        break;
    case ROPE_TYPE_LINEAR:
        for (int i = 0; i < d / 2; i++) inv[i] = orig[i] / cfg->factor;
        break;
    case ROPE_TYPE_DYNAMIC:
        dynamic_inv_freq(inv, cfg, d, seq_len);
        break;
    case ROPE_TYPE_YARN:
        attention_factor = yarn_inv_freq(inv, cfg, d);
        break;
    case ROPE_TYPE_LONGROPE:
        attention_factor = longrope_inv_freq(inv, cfg, d, seq_len);
        break;
    case ROPE_TYPE_LLAMA3:
        llama3_inv_freq(inv, cfg, d);
        break;
    }
    return attention_factor;
}

void rope_table_init(rope_table *t, const rope_config *cfg, int64_t seq_len) {
    char err[256];
    if (rope_config_validate(cfg, err, sizeof err) != 0) die("invalid rope_config: %s", err);
    CHECK(seq_len >= 0);

    int d = rotary_dim(cfg);
    double inv[ROPE_MAX_PAIRS], orig[ROPE_MAX_PAIRS];
    double attention_factor = inv_freq_double(inv, orig, cfg, seq_len);

    memset(t, 0, sizeof *t);
    t->rotary_dim = d;
    t->n_pairs = d / 2;
    for (int i = 0; i < d / 2; i++) {
        t->inv_freq[i] = (float)inv[i];
        t->inv_freq_orig[i] = (float)orig[i];
    }
    t->n_hat = cfg->type == ROPE_TYPE_LONGROPE ? cfg->n_hat : 0;
    t->attention_factor = (float)attention_factor;
}

void rope_table_init_mixed(rope_table *t, const rope_config *cfg) {
    CHECK(cfg->type == ROPE_TYPE_LONGROPE);
    int64_t Lo = original_max(cfg);
    rope_table s;
    rope_table_init(&s, cfg, Lo);     // seq_len <= original: the short factors
    rope_table_init(t, cfg, Lo + 1);  // beyond: the long factors (and n_hat)
    CHECK(s.attention_factor == t->attention_factor);
    memcpy(t->inv_freq_short, s.inv_freq, sizeof t->inv_freq_short);
    t->short_len = Lo;
}

int rope_config_as_longrope(rope_config *out, const rope_config *cfg, char *err, size_t errlen) {
    char msg[256];
    if (rope_config_validate(cfg, msg, sizeof msg) != 0) die("invalid rope_config: %s", msg);
    if (cfg->type == ROPE_TYPE_LONGROPE) {
        *out = *cfg;
        return 0;
    }
    if (cfg->type == ROPE_TYPE_DEFAULT || cfg->type == ROPE_TYPE_DYNAMIC)
        return errmsg(err, errlen, "rope_type %s has no fixed rescaled table to use beyond the original context",
                      rope_type_name(cfg->type));
    int d = rotary_dim(cfg);
    double inv[ROPE_MAX_PAIRS], orig[ROPE_MAX_PAIRS];
    double attention_factor = inv_freq_double(inv, orig, cfg, 0);
    rope_config r;
    memset(&r, 0, sizeof r);
    r.type = ROPE_TYPE_LONGROPE;
    r.theta = cfg->theta;
    r.head_dim = cfg->head_dim;
    r.partial_rotary_factor = cfg->partial_rotary_factor;
    r.max_position_embeddings = cfg->max_position_embeddings;
    r.original_max_position_embeddings = original_max(cfg);
    r.factor = cfg->type == ROPE_TYPE_YARN ? factor_or_ratio(cfg) : cfg->factor;
    r.attention_factor = attention_factor;
    r.n_factors = d / 2;
    for (int i = 0; i < d / 2; i++) {
        r.short_factor[i] = 1.0;
        r.long_factor[i] = orig[i] / inv[i];
    }
    if (rope_config_validate(&r, msg, sizeof msg) != 0)
        return errmsg(err, errlen, "its longrope form is invalid: %s", msg);
    *out = r;
    return 0;
}

int64_t rope_config_original(const rope_config *cfg) { return original_max(cfg); }

rope_config rope_config_default(int head_dim) {
    rope_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.type = ROPE_TYPE_DEFAULT;
    cfg.theta = 10000.0;
    cfg.head_dim = head_dim;
    cfg.partial_rotary_factor = 1.0;
    return cfg;
}

// ---------------------------------------------------------------------------
// Names

static const char *const type_names[] = {
    [ROPE_TYPE_DEFAULT] = "default",   [ROPE_TYPE_LINEAR] = "linear",
    [ROPE_TYPE_DYNAMIC] = "dynamic",   [ROPE_TYPE_YARN] = "yarn",
    [ROPE_TYPE_LONGROPE] = "longrope", [ROPE_TYPE_LLAMA3] = "llama3",
};
#define N_TYPES ((int)(sizeof type_names / sizeof type_names[0]))

static const char *const layout_names[] = {
    [ROPE_LAYOUT_HALF] = "half",
    [ROPE_LAYOUT_INTERLEAVED] = "interleaved",
};
#define N_LAYOUTS ((int)(sizeof layout_names / sizeof layout_names[0]))

const char *rope_type_name(rope_type type) {
    int i = (int)type;
    return i >= 0 && i < N_TYPES ? type_names[i] : "unknown";
}

int rope_type_parse(const char *name, rope_type *out) {
    for (int i = 0; i < N_TYPES; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (rope_type)i;
            return 0;
        }
    }
    return -1;
}

const char *rope_layout_name(rope_layout layout) {
    int i = (int)layout;
    return i >= 0 && i < N_LAYOUTS ? layout_names[i] : "unknown";
}

int rope_layout_parse(const char *name, rope_layout *out) {
    for (int i = 0; i < N_LAYOUTS; i++) {
        if (strcmp(name, layout_names[i]) == 0) {
            *out = (rope_layout)i;
            return 0;
        }
    }
    return -1;
}
