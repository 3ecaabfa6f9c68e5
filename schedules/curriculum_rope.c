// curriculum_rope: the one derivation of a stage's rope_config from the run
// config (see curr_stage_rope in curriculum.h for the rules), run once per
// stage by curr_load. Messages name the stage's rope key; cfg_key_error()
// puts the file and line in front.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curriculum_rope.h"
#include "die.h"
#include "run_config_check.h"

// Returns -1 from the calling function with a message about key.
#define REQUIRE(cond, key, ...)                                            \
    do {                                                                   \
        if (!(cond)) return cfg_key_error(err, errlen, cfg, key, __VA_ARGS__); \
    } while (0)


// Re-attributes a rope_config_validate message to the stage's keys:
// "rope_scaling.factor must be ..." -> key stages.N.rope.factor.
static int rope_error(char *err, size_t errlen, const cfg_run *cfg, int stage, const char *msg) {
    char key[128];
    const char *tag = "rope_scaling.";
    if (!strncmp(msg, tag, strlen(tag))) {
        const char *name = msg + strlen(tag);
        size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyz_");
        snprintf(key, sizeof key, "stages.%d.rope.%.*s", stage, (int)n, name);
        return cfg_key_error(err, errlen, cfg, key, "%s%s", key, name + n);
    }
    snprintf(key, sizeof key, "stages.%d.rope", stage);
    return cfg_key_error(err, errlen, cfg, key, "%s: %s", key, msg);
}

// Fills out's longrope factor lists from the stage or its factors file.
static int stage_factors(rope_config *out, const cfg_run *cfg, int stage, char *err,
                         size_t errlen) {
    const cfg_rope *r = &cfg->stages[stage].rope;
    char key[128], key2[128];
    bool inline_lists = r->short_factor.n > 0 || r->long_factor.n > 0;
    snprintf(key, sizeof key, "stages.%d.rope.%s", stage,
             r->factors_file ? "factors_file" : r->short_factor.n ? "short_factor" : "long_factor");
    if (out->type != ROPE_TYPE_LONGROPE) {
        REQUIRE(!inline_lists && !r->factors_file, key, "%s applies to rope.type longrope only",
                key);
        return 0;
    }
    REQUIRE(!(inline_lists && r->factors_file), key,
            "%s: give short_factor/long_factor inline or in a factors file, not both", key);
    cfg_doubles sf = r->short_factor, lf = r->long_factor;
    int64_t n_hat = 0;
    if (r->factors_file) {
        REQUIRE(*r->factors_file, key, "%s must not be empty", key);
        char msg[512];
        if (cfg_read_factors(&sf, &lf, &n_hat, r->factors_file, msg, sizeof msg))
            return cfg_key_error(err, errlen, cfg, key, "%s: %s", key, msg);
    }
    snprintf(key2, sizeof key2, "stages.%d.rope.n_hat", stage);
    int rc = 0;
    if (n_hat > 0 && r->n_hat > 0)
        rc = cfg_key_error(err, errlen, cfg, key2, "%s is given both inline and in %s", key2,
                           r->factors_file);
    else if (sf.n != lf.n)
        rc = cfg_key_error(err, errlen, cfg, key,
                           "%s: short_factor has %d values and long_factor %d; they must match",
                           key, sf.n, lf.n);
    else if (sf.n > ROPE_MAX_PAIRS)
        rc = cfg_key_error(err, errlen, cfg, key, "%s: %d factors, more than the maximum %d",
                           key, sf.n, ROPE_MAX_PAIRS);
    if (rc == 0) {
        out->n_factors = sf.n;
        for (int i = 0; i < sf.n; i++) {
            out->short_factor[i] = sf.v[i];
            out->long_factor[i] = lf.v[i];
        }
        if (n_hat > 0) out->n_hat = n_hat;
    }
    if (r->factors_file) {
        free(sf.v);
        free(lf.v);
    }
    return rc;
}

// rope.mixed (LongRoPE2 mixed context windows): the stage's valid rope as a
// longrope, the form whose short table is what documents up to the original
// context train with (the original RoPE, or longrope's short factors) and
// whose long table is the stage's rescaling.
static int mixed_windows(rope_config *out, const cfg_run *cfg, int stage, char *err, size_t errlen) {
    const cfg_stage *st = &cfg->stages[stage];
    char key[128], msg[256];
    snprintf(key, sizeof key, "stages.%d.rope.mixed", stage);
    REQUIRE(out->type != ROPE_TYPE_DEFAULT, key,
            "%s needs a rescaled stages.%d.rope.type (linear, yarn, llama3 or longrope): with default "
            "every document has the original RoPE already", key, stage);
    REQUIRE(out->type != ROPE_TYPE_DYNAMIC, key,
            "%s: rope.type dynamic keeps the original frequencies up to the original context by "
            "itself; use linear, yarn, llama3 or longrope", key);
    int64_t reach = st->pose_len > st->seq_len ? st->pose_len : st->seq_len;
    REQUIRE(reach > out->original_max_position_embeddings, key,
            "%s: stages.%d.seq_len (%lld) does not exceed the original context (%lld), so no document "
            "would use the rescaled RoPE", key, stage, (long long)reach,
            (long long)out->original_max_position_embeddings);
    if (rope_config_as_longrope(out, out, msg, sizeof msg))
        return cfg_key_error(err, errlen, cfg, key, "%s: %s", key, msg);
    return 0;
}

int curr_resolve_rope(rope_config *out, const cfg_run *cfg, int stage, char *err, size_t errlen) {
    CHECK(stage >= 0 && stage < cfg->n_stages);
    const cfg_stage *st = &cfg->stages[stage];
    const cfg_rope *r = &st->rope;
    char key[128];
    model_config m;
    cfg_model_config(&m, cfg);

    memset(out, 0, sizeof *out);
    out->type = r->type;
    out->theta = m.rope.theta;
    out->head_dim = m.rope.head_dim;
    out->partial_rotary_factor = m.rope.partial_rotary_factor;

    snprintf(key, sizeof key, "stages.%d.rope.original_max_position_embeddings", stage);
    REQUIRE(r->original_max_position_embeddings >= 0, key,
            "%s (%lld) must be > 0, or 0 for the pretrained context", key,
            (long long)r->original_max_position_embeddings);
    int64_t L = st->seq_len;
    int64_t orig = r->original_max_position_embeddings > 0 ? r->original_max_position_embeddings
                                                            : cfg_original_context(cfg);
    REQUIRE(orig > 0 && L > 0, key, "%s: the original context (%lld) and stages.%d.seq_len (%lld) "
            "must be > 0", key, (long long)orig, stage, (long long)L);
    snprintf(key, sizeof key, "stages.%d.rope.max_position_embeddings", stage);
    REQUIRE(r->max_position_embeddings >= 0, key, "%s (%lld) must be > 0, or 0 for seq_len", key,
            (long long)r->max_position_embeddings);
    bool dynamic = r->type == ROPE_TYPE_DYNAMIC;
    REQUIRE(dynamic || r->max_position_embeddings == 0 || r->max_position_embeddings >= L, key,
            "%s (%lld) must be >= stages.%d.seq_len (%lld)", key,
            (long long)r->max_position_embeddings, stage, (long long)L);
    int64_t max_pos = r->max_position_embeddings > 0 ? r->max_position_embeddings
                                                     : dynamic ? orig : L;
    out->max_position_embeddings = max_pos;
    out->original_max_position_embeddings = orig;

    snprintf(key, sizeof key, "stages.%d.rope.factor", stage);
    REQUIRE(r->factor >= 0.0, key, "%s (%g) must be >= 1, or 0 for the context ratio", key,
            r->factor);
    if (r->type != ROPE_TYPE_DEFAULT) {
        int64_t target = dynamic ? L : max_pos;
        out->factor = r->factor > 0.0 ? r->factor : (double)target / (double)orig;
        REQUIRE(r->factor > 0.0 || out->factor >= 1.0, key,
                "%s (0 = %lld / %lld = %g) must be >= 1: the stage is shorter than the original "
                "context; give rope.factor or rope.original_max_position_embeddings",
                key, (long long)target, (long long)orig, out->factor);
    }
    out->attention_factor = r->attention_factor;
    out->beta_fast = r->beta_fast;
    out->beta_slow = r->beta_slow;
    out->mscale = r->mscale;
    out->mscale_all_dim = r->mscale_all_dim;
    out->no_truncate = !r->truncate;
    out->low_freq_factor = r->low_freq_factor;
    out->high_freq_factor = r->high_freq_factor;
    out->n_hat = r->n_hat;
    if (stage_factors(out, cfg, stage, err, errlen)) return -1;

    char msg[256];
    if (rope_config_validate(out, msg, sizeof msg)) return rope_error(err, errlen, cfg, stage, msg);
    return r->mixed ? mixed_windows(out, cfg, stage, err, errlen) : 0;
}

