// model_config: architecture checks with one-line messages naming the key.
#include "model_config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include "errmsg.h"

int model_config_head_dim(const model_config *cfg) {
    if (cfg->head_dim != 0) return cfg->head_dim;
    return cfg->n_heads > 0 ? cfg->dim / cfg->n_heads : 0;
}

// A size key that must be positive.
static int check_positive(const char *key, int value, char *err, size_t errlen) {
    if (value <= 0) return errmsg(err, errlen, "%s (%d) must be > 0", key, value);
    return 0;
}

int model_config_validate(const model_config *cfg, char *err, size_t errlen) {
    if (check_positive("model.dim", cfg->dim, err, errlen) ||
        check_positive("model.n_layers", cfg->n_layers, err, errlen) ||
        check_positive("model.n_heads", cfg->n_heads, err, errlen) ||
        check_positive("model.n_kv_heads", cfg->n_kv_heads, err, errlen))
        return -1;
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return errmsg(err, errlen, "model.n_kv_heads (%d) must divide model.n_heads (%d)",
                    cfg->n_kv_heads, cfg->n_heads);
    if (cfg->head_dim < 0)
        return errmsg(err, errlen, "model.head_dim (%d) must be > 0, or 0 for dim / n_heads",
                    cfg->head_dim);
    if (cfg->head_dim == 0 && cfg->dim % cfg->n_heads != 0)
        return errmsg(err, errlen,
                    "model.dim (%d) must be a multiple of model.n_heads (%d) when model.head_dim "
                    "is 0 (= dim / n_heads); give model.head_dim explicitly otherwise",
                    cfg->dim, cfg->n_heads);
    int head_dim = model_config_head_dim(cfg);
    if (head_dim <= 0 || head_dim % 2 != 0)
        return errmsg(err, errlen, "model.head_dim (%d) must be a positive even number", head_dim);
    if ((int64_t)cfg->n_heads * head_dim > INT32_MAX)
        return errmsg(err, errlen, "model.n_heads * model.head_dim (%lld) is too large",
                    (long long)cfg->n_heads * head_dim);
    if (check_positive("model.ffn_dim", cfg->ffn_dim, err, errlen) ||
        check_positive("model.vocab_size", cfg->vocab_size, err, errlen))
        return -1;
    if (!(cfg->norm_eps > 0.0f) || !isfinite(cfg->norm_eps))
        return errmsg(err, errlen, "model.norm_eps (%g) must be > 0", (double)cfg->norm_eps);
    if (cfg->rope_layout != ROPE_LAYOUT_HALF && cfg->rope_layout != ROPE_LAYOUT_INTERLEAVED)
        return errmsg(err, errlen, "model.rope_layout (%d) must be half or interleaved",
                    (int)cfg->rope_layout);
    if (!(cfg->rope.theta > 0.0) || !isfinite(cfg->rope.theta))
        return errmsg(err, errlen, "model.rope_theta (%g) must be > 0", cfg->rope.theta);
    if (cfg->rope.max_position_embeddings <= 0)
        return errmsg(err, errlen, "model.max_position_embeddings (%lld) must be > 0",
                    (long long)cfg->rope.max_position_embeddings);
    if (cfg->rope.head_dim != 0 && cfg->rope.head_dim != head_dim)
        return errmsg(err, errlen, "model.rope: head_dim (%d) differs from model.head_dim (%d)",
                    cfg->rope.head_dim, head_dim);

    rope_config rope = cfg->rope;
    rope.head_dim = head_dim;
    char msg[256];
    if (rope_config_validate(&rope, msg, sizeof msg) != 0)
        return errmsg(err, errlen, "model.rope: %s", msg);
    return 0;
}
