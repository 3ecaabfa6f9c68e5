// hf_config: config.json <-> model_config. See hf_config.h.
#include "hf_config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "die.h"
#include "errmsg.h"

// ---------------------------------------------------------------------------
// Reading: typed getters. A key that is absent or null keeps *out.

typedef struct {
    const char *name;  // file name for messages
    char *err;
    size_t errlen;
} ctx;

static int bad(const ctx *c, const char *prefix, const char *key, const char *want, const cJSON *v) {
    char got[48] = "";
    if (cJSON_IsNumber(v)) snprintf(got, sizeof got, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(got, sizeof got, "\"%.40s\"", v->valuestring);
    else if (cJSON_IsBool(v)) snprintf(got, sizeof got, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else snprintf(got, sizeof got, "%s", cJSON_IsArray(v) ? "a list" : "an object");
    return errmsg(c->err, c->errlen, "%s: key '%s%s': expected %s, got %s", c->name, prefix, key, want, got);
}

static const cJSON *item(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

static int get_int64(const ctx *c, const cJSON *obj, const char *prefix, const char *key, int64_t min,
                     int64_t *out) {
    const cJSON *v = item(obj, key);
    if (!v) return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)min && d < 9.2e18) || d != floor(d)) {
        char want[64];
        snprintf(want, sizeof want, "an integer >= %lld", (long long)min);
        return bad(c, prefix, key, want, v);
    }
    *out = (int64_t)d;
    return 0;
}

static int get_int(const ctx *c, const cJSON *obj, const char *key, int min, int *out) {
    int64_t v = *out;
    if (get_int64(c, obj, "", key, min, &v)) return -1;
    if (v > INT32_MAX) return errmsg(c->err, c->errlen, "%s: key '%s': %lld is too large", c->name, key, (long long)v);
    *out = (int)v;
    return 0;
}

static int get_double(const ctx *c, const cJSON *obj, const char *prefix, const char *key, double *out) {
    const cJSON *v = item(obj, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return bad(c, prefix, key, "a number", v);
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const ctx *c, const cJSON *obj, const char *prefix, const char *key, bool *out) {
    const cJSON *v = item(obj, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return bad(c, prefix, key, "true or false", v);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int get_list(const ctx *c, const cJSON *obj, const char *prefix, const char *key, double *out,
                    int *n) {
    const cJSON *v = item(obj, key);
    if (!v) return 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > ROPE_MAX_PAIRS) {
        char want[64];
        snprintf(want, sizeof want, "a list of at most %d numbers", ROPE_MAX_PAIRS);
        return bad(c, prefix, key, want, v);
    }
    *n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v) {
        if (!cJSON_IsNumber(x)) return bad(c, prefix, key, "a list of numbers", x);
        out[(*n)++] = x->valuedouble;
    }
    return 0;
}

// Keys of the architecture that stretch's Llama does not have must be off.
static int check_llama(const ctx *c, const cJSON *root) {
    const cJSON *mt = item(root, "model_type"), *arch = item(root, "architectures");
    bool llama_arch = false;
    if (arch) {
        const cJSON *a;
        if (!cJSON_IsArray(arch)) return bad(c, "", "architectures", "a list of class names", arch);
        cJSON_ArrayForEach(a, arch) llama_arch |= cJSON_IsString(a) && !strcmp(a->valuestring, "LlamaForCausalLM");
    }
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "llama")))
        return bad(c, "", "model_type", "\"llama\" (stretch imports Llama-family models)", mt);
    if (!mt && !llama_arch)
        return errmsg(c->err, c->errlen, "%s: neither model_type \"llama\" nor architectures [\"LlamaForCausalLM\"]: "
                    "not a Llama config", c->name);
    const cJSON *act = item(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return bad(c, "", "hidden_act", "\"silu\" (SwiGLU)", act);
    const char *off[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        bool on = false;
        if (get_bool(c, root, "", off[i], &on)) return -1;
        if (on) return errmsg(c->err, c->errlen, "%s: key '%s': true is not supported (stretch's Llama has no biases)",
                            c->name, off[i]);
    }
    return 0;
}

// The rope scaling dict (v4 rope_scaling or v5 rope_parameters) into r.
static int parse_rope(const ctx *c, const cJSON *root, rope_config *r) {
    const char *key = item(root, "rope_scaling") ? "rope_scaling" : "rope_parameters";
    const cJSON *rs = item(root, key);
    if (!rs) return 0;
    if (!cJSON_IsObject(rs)) return bad(c, "", key, "an object", rs);
    char p[32];
    snprintf(p, sizeof p, "%s.", key);
    const cJSON *type = item(rs, "rope_type");
    if (!type) type = item(rs, "type");  // the legacy key; neither: "default", as transformers does
    if (type) {
        if (!cJSON_IsString(type)) return bad(c, p, "rope_type", "a string", type);
        if (rope_type_parse(type->valuestring, &r->type) != 0)
            return errmsg(c->err, c->errlen, "%s: key '%srope_type': \"%.40s\" is not supported "
                        "(default, linear, dynamic, yarn, longrope, llama3)", c->name, p, type->valuestring);
    }
    bool truncate = true;
    int n_short = 0, n_long = 0;
    if (get_double(c, rs, p, "rope_theta", &r->theta) ||
        get_double(c, rs, p, "partial_rotary_factor", &r->partial_rotary_factor) ||
        get_double(c, rs, p, "factor", &r->factor) ||
        get_int64(c, rs, p, "original_max_position_embeddings", 1, &r->original_max_position_embeddings) ||
        get_double(c, rs, p, "attention_factor", &r->attention_factor) ||
        get_double(c, rs, p, "beta_fast", &r->beta_fast) || get_double(c, rs, p, "beta_slow", &r->beta_slow) ||
        get_double(c, rs, p, "mscale", &r->mscale) || get_double(c, rs, p, "mscale_all_dim", &r->mscale_all_dim) ||
        get_bool(c, rs, p, "truncate", &truncate) ||
        get_double(c, rs, p, "low_freq_factor", &r->low_freq_factor) ||
        get_double(c, rs, p, "high_freq_factor", &r->high_freq_factor) ||
        get_list(c, rs, p, "short_factor", r->short_factor, &n_short) ||
        get_list(c, rs, p, "long_factor", r->long_factor, &n_long))
        return -1;
    r->no_truncate = !truncate;
    if (n_short != n_long)
        return errmsg(c->err, c->errlen, "%s: %sshort_factor has %d entries, long_factor %d: they must be equal",
                    c->name, p, n_short, n_long);
    r->n_factors = n_short;
    // transformers v5: a top-level original_max_position_embeddings (Phi-3)
    // wins over the one inside the dict for these types.
    if (r->type == ROPE_TYPE_LLAMA3 || r->type == ROPE_TYPE_YARN || r->type == ROPE_TYPE_LONGROPE)
        if (get_int64(c, root, "", "original_max_position_embeddings", 1, &r->original_max_position_embeddings))
            return -1;
    return 0;
}

int hf_config_parse(model_config *out, const char *json, const char *name, char *err, size_t errlen) {
    ctx c = {name, err, errlen};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return errmsg(err, errlen, "%s: not a JSON object (error near byte %ld)", name,
                    root ? 0L : (long)((end ? end : json) - json));
    }
    model_config m;
    memset(&m, 0, sizeof m);
    m.rope = rope_config_default(0);
    m.rope.max_position_embeddings = 2048;  // LlamaConfig defaults
    m.norm_eps = 1e-6f;
    m.rope_layout = ROPE_LAYOUT_HALF;
    double eps = m.norm_eps;
    const char *required[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                              "vocab_size"};
    int rc = check_llama(&c, root);
    for (int i = 0; rc == 0 && i < 5; i++)
        if (!item(root, required[i])) rc = errmsg(err, errlen, "%s: key '%s' is missing", name, required[i]);
    if (rc == 0)
        rc = get_int(&c, root, "hidden_size", 1, &m.dim) || get_int(&c, root, "intermediate_size", 1, &m.ffn_dim) ||
             get_int(&c, root, "num_hidden_layers", 1, &m.n_layers) ||
             get_int(&c, root, "num_attention_heads", 1, &m.n_heads) ||
             get_int(&c, root, "vocab_size", 1, &m.vocab_size) ? -1 : 0;
    m.n_kv_heads = m.n_heads;
    if (rc == 0)
        rc = get_int(&c, root, "num_key_value_heads", 1, &m.n_kv_heads) || get_int(&c, root, "head_dim", 1, &m.head_dim) ||
             get_double(&c, root, "", "rms_norm_eps", &eps) || get_double(&c, root, "", "rope_theta", &m.rope.theta) ||
             get_double(&c, root, "", "partial_rotary_factor", &m.rope.partial_rotary_factor) ||
             get_int64(&c, root, "", "max_position_embeddings", 1, &m.rope.max_position_embeddings) ||
             get_bool(&c, root, "", "tie_word_embeddings", &m.tie_embeddings) ||
             parse_rope(&c, root, &m.rope) ? -1 : 0;
    cJSON_Delete(root);
    if (rc) return -1;

    // The checks with HF key names first; model_config_validate backs them up.
    m.norm_eps = (float)eps;
    if (!(m.norm_eps > 0.0f) || !isfinite(m.norm_eps))
        return errmsg(err, errlen, "%s: key 'rms_norm_eps': %g must be > 0", name, eps);
    if (m.n_heads % m.n_kv_heads != 0)
        return errmsg(err, errlen, "%s: key 'num_key_value_heads': %d must divide num_attention_heads (%d)", name,
                    m.n_kv_heads, m.n_heads);
    if (m.head_dim == 0 && m.dim % m.n_heads != 0)
        return errmsg(err, errlen, "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d) and head_dim "
                    "is not given", name, m.dim, m.n_heads);
    m.rope.head_dim = model_config_head_dim(&m);
    char msg[256];
    if (rope_config_validate(&m.rope, msg, sizeof msg) != 0) return errmsg(err, errlen, "%s: %s", name, msg);
    if (model_config_validate(&m, msg, sizeof msg) != 0)
        return errmsg(err, errlen, "%s: unsupported model: %s", name, msg);
    *out = m;
    return 0;
}

int hf_config_read(model_config *out, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return errmsg(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    size_t cap = 1 << 14, n = 0, k;
    char *text = xmalloc(cap);
    while ((k = fread(text + n, 1, cap - n - 1, f)) > 0)
        if ((n += k) == cap - 1) text = xrealloc(text, cap *= 2);
    bool bad_read = ferror(f);
    fclose(f);
    text[n] = '\0';
    int rc = bad_read ? errmsg(err, errlen, "%s: read error", path) : hf_config_parse(out, text, path, err, errlen);
    free(text);
    return rc;
}

// ---------------------------------------------------------------------------
// Writing

static bool reads_back(const char *text, double x, int as_float) {
    return as_float ? strtof(text, NULL) == (float)x : strtod(text, NULL) == x;
}

// The shortest decimal digits M (no trailing zeros) and exponent E with
// x = M[0].M[1..] * 10^E that read back as x; among candidates of that
// length the correctly rounded one, else its neighbour (at a power of two
// the gap above x is wider than the one below).
static void shortest_digits(char *digits, int *exp10, double x, int as_float) {
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, x);  // d.ddde+XX
        char *e = strchr(tmp, 'e');
        int E = atoi(e + 1);
        long long M = 0;
        for (const char *c = tmp; c < e; c++)
            if (*c >= '0' && *c <= '9') M = 10 * M + (*c - '0');
        for (int k = 0; k < 3; k++) {
            long long m = M + (k == 0 ? 0 : k == 1 ? 1 : -1);
            if (m <= 0) continue;
            char cand[64];
            snprintf(cand, sizeof cand, "%llde%d", m, E - (p - 1));
            if (p < 17 && !reads_back(cand, x, as_float)) continue;
            snprintf(digits, 24, "%lld", m);
            *exp10 = E + (int)strlen(digits) - p;  // 999 + 1 = 1000 gains a digit
            size_t n = strlen(digits);
            while (n > 1 && digits[n - 1] == '0') digits[--n] = '\0';
            return;
        }
    }
}

void hf_format_float(char *buf, size_t len, double x, int as_float) {
    if (x == 0.0) {
        snprintf(buf, len, "%s", signbit(x) ? "-0.0" : "0.0");
        return;
    }
    char d[24];
    int E, n;
    shortest_digits(d, &E, fabs(x), as_float);
    n = (int)strlen(d);
    const char *sign = x < 0 ? "-" : "", *zeros = "0000000000000000";
    if (E < -4 || E >= 16)  // Python keeps the exponent form: 1e-05, 1.5e+16
        snprintf(buf, len, "%s%c%s%.*se%c%02d", sign, d[0], n > 1 ? "." : "", n - 1, d + 1, E < 0 ? '-' : '+',
                 E < 0 ? -E : E);
    else if (E < 0)  // 0.000ddd
        snprintf(buf, len, "%s0.%.*s%s", sign, -E - 1, zeros, d);
    else if (n > E + 1)  // dd.ddd
        snprintf(buf, len, "%s%.*s.%s", sign, E + 1, d, d + E + 1);
    else  // ddd00.0
        snprintf(buf, len, "%s%s%.*s.0", sign, d, E + 1 - n, zeros);
}

static void add_float(cJSON *obj, const char *key, double x) {
    char buf[64];
    hf_format_float(buf, sizeof buf, x, 0);
    cJSON_AddRawToObject(obj, key, buf);
}

static void add_int(cJSON *obj, const char *key, int64_t x) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)x);
    cJSON_AddRawToObject(obj, key, buf);
}

static void add_list(cJSON *obj, const char *key, const double *v, int n) {
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (int i = 0; i < n; i++) {
        char buf[64];
        hf_format_float(buf, sizeof buf, v[i], 0);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
    }
}

static int64_t original_of(const rope_config *r) {
    return r->original_max_position_embeddings > 0 ? r->original_max_position_embeddings
                                                   : r->max_position_embeddings;
}

// The rope_scaling dict of r: exactly the keys of the type's HF validator.
static cJSON *rope_scaling(const rope_config *r, int flags, FILE *warn) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "rope_type", rope_type_name(r->type));
    double factor = r->factor != 0.0 ? r->factor
                                     : (double)r->max_position_embeddings / (double)original_of(r);
    switch (r->type) {
    case ROPE_TYPE_DEFAULT:
        break;
    case ROPE_TYPE_LINEAR:
    case ROPE_TYPE_DYNAMIC:
        add_float(s, "factor", r->factor);
        break;
    case ROPE_TYPE_YARN:
        add_float(s, "factor", factor);
        if (!(flags & HF_CONFIG_YARN_V4)) add_int(s, "original_max_position_embeddings", original_of(r));
        if ((flags & HF_CONFIG_YARN_V4) && warn && (r->mscale != 0.0 || r->mscale_all_dim != 0.0 || r->no_truncate))
            fprintf(warn, "stretch: warning: transformers <= 4.4x ignores yarn mscale, mscale_all_dim and "
                    "truncate; they are written for later versions\n");
        add_float(s, "beta_fast", r->beta_fast != 0.0 ? r->beta_fast : 32.0);
        add_float(s, "beta_slow", r->beta_slow != 0.0 ? r->beta_slow : 1.0);
        if (r->attention_factor != 0.0) add_float(s, "attention_factor", r->attention_factor);
        if (r->mscale != 0.0) add_float(s, "mscale", r->mscale);
        if (r->mscale_all_dim != 0.0) add_float(s, "mscale_all_dim", r->mscale_all_dim);
        if (r->no_truncate) cJSON_AddFalseToObject(s, "truncate");
        break;
    case ROPE_TYPE_LONGROPE:
        add_float(s, "factor", factor);
        add_int(s, "original_max_position_embeddings", original_of(r));
        if (r->attention_factor != 0.0) add_float(s, "attention_factor", r->attention_factor);
        add_list(s, "short_factor", r->short_factor, r->n_factors);
        add_list(s, "long_factor", r->long_factor, r->n_factors);
        if (r->n_hat > 0 && warn)
            fprintf(warn, "stretch: warning: rope n_hat (%lld) has no Hugging Face config key and is dropped: "
                    "transformers applies the rescaled frequencies to every position, also below n_hat\n",
                    (long long)r->n_hat);
        break;
    case ROPE_TYPE_LLAMA3:
        add_float(s, "factor", r->factor);
        add_float(s, "low_freq_factor", r->low_freq_factor);
        add_float(s, "high_freq_factor", r->high_freq_factor);
        add_int(s, "original_max_position_embeddings", original_of(r));
        break;
    }
    return s;
}

char *hf_config_to_json(const model_config *cfg, const char *torch_dtype, int flags, FILE *warn) {
    char err[256];
    CHECK(model_config_validate(cfg, err, sizeof err) == 0);
    const rope_config *r = &cfg->rope;
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", "llama");
    add_int(root, "hidden_size", cfg->dim);
    add_int(root, "intermediate_size", cfg->ffn_dim);
    add_int(root, "num_hidden_layers", cfg->n_layers);
    add_int(root, "num_attention_heads", cfg->n_heads);
    add_int(root, "num_key_value_heads", cfg->n_kv_heads);
    add_int(root, "head_dim", model_config_head_dim(cfg));
    add_int(root, "vocab_size", cfg->vocab_size);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    char eps[64];
    hf_format_float(eps, sizeof eps, cfg->norm_eps, 1);
    cJSON_AddRawToObject(root, "rms_norm_eps", eps);
    add_float(root, "rope_theta", r->theta);
    bool yarn_v4 = (flags & HF_CONFIG_YARN_V4) && r->type == ROPE_TYPE_YARN;
    add_int(root, "max_position_embeddings", yarn_v4 ? original_of(r) : r->max_position_embeddings);
    if (r->type == ROPE_TYPE_LONGROPE)  // v4.x reads it here, v5 prefers it here
        add_int(root, "original_max_position_embeddings", original_of(r));
    if (r->partial_rotary_factor != 0.0 && r->partial_rotary_factor != 1.0) {
        add_float(root, "partial_rotary_factor", r->partial_rotary_factor);
        if (warn)
            fprintf(warn, "stretch: warning: partial_rotary_factor %g: transformers' Llama rotates every channel of "
                    "a head; load this model with a class that honours partial_rotary_factor\n",
                    r->partial_rotary_factor);
    }
    if (r->type == ROPE_TYPE_DEFAULT)
        cJSON_AddNullToObject(root, "rope_scaling");
    else
        cJSON_AddItemToObject(root, "rope_scaling", rope_scaling(r, flags, warn));
    cJSON_AddBoolToObject(root, "tie_word_embeddings", cfg->tie_embeddings);
    cJSON_AddFalseToObject(root, "attention_bias");
    cJSON_AddFalseToObject(root, "mlp_bias");
    cJSON_AddStringToObject(root, "torch_dtype", torch_dtype);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    CHECK(text != NULL);
    // cJSON indents with tabs and puts a tab after ':' (strings hold no raw
    // tabs: cJSON escapes them); write it as transformers does: two spaces
    // per level, ": ", and a final newline.
    char *out = xmalloc(2 * strlen(text) + 2), *o = out;
    bool line_start = true;
    for (const char *c = text; *c; c++) {
        if (*c == '\t') {
            if (line_start) *o++ = ' ';
            *o++ = ' ';
            continue;
        }
        line_start = *c == '\n';
        *o++ = *c;
    }
    *o++ = '\n';
    *o = '\0';
    cJSON_free(text);
    return out;
}
