// eval_ckpt: a checkpoint opened for evaluation. See eval_ckpt.h.
#include "eval_ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "die.h"
#include "ckpt_model.h"
#include "run_config_check.h"

void eval_ckpt_close(eval_ckpt *c) {
    free(c->path);
    cfg_free(&c->cfg);
    tok_free(c->tok);
    memset(c, 0, sizeof *c);
}

static int read_position(eval_ckpt *c, ckpt_reader *r, char *err, size_t errlen) {
    char *text = NULL, msg[512];
    if (ckpt_get_attr_string(r, "/", "config", &text, err, errlen) != 0) return -1;
    char name[1100];
    snprintf(name, sizeof name, "checkpoint %s", c->path);
    int rc = cfg_parse_string(&c->cfg, text, name, msg, sizeof msg);
    free(text);
    if (rc != 0) {
        snprintf(err, errlen, "checkpoint %s: its stored config does not parse: %s", c->path, msg);
        return -1;
    }
    int64_t stage;
    if (ckpt_get_attr_int64(r, "/", "step", &c->step, err, errlen) != 0 ||
        ckpt_get_attr_int64(r, "/", "stage", &stage, err, errlen) != 0 ||
        ckpt_get_attr_int64(r, "/", "stage_step", &c->stage_step, err, errlen) != 0)
        return -1;
    if (stage < 0 || stage >= c->cfg.n_stages) {
        snprintf(err, errlen, "checkpoint %s is at stage %lld, its run config has %d stages", c->path,
                 (long long)stage, c->cfg.n_stages);
        return -1;
    }
    c->stage = (int)stage;
    c->trained_stage = c->stage > 0 && c->stage_step == 0 ? c->stage - 1 : c->stage;
    return 0;
}

// A checkpoint of `stretch import`: only the model's HF config; the
// tokenizer must come from --tokenizer.
static int read_imported(eval_ckpt *c, ckpt_reader *r, const char *tokenizer, char *err,
                         size_t errlen) {
    char msg[512];
    if (ckpt_model_imported_config(&c->mc, r, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "checkpoint %s: %s", c->path, msg);
        return -1;
    }
    if (!tokenizer) {
        snprintf(err, errlen, "checkpoint %s was imported (no run config): give its tokenizer with "
                 "--tokenizer (tokenizer.json, or the .gguf it came from)", c->path);
        return -1;
    }
    c->imported = true;
    c->original_context = c->mc.rope.original_max_position_embeddings > 0
                              ? c->mc.rope.original_max_position_embeddings
                              : c->mc.rope.max_position_embeddings;
    return 0;
}

int eval_ckpt_open(eval_ckpt *c, const char *path, const char *tokenizer, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    cfg_init(&c->cfg);
    c->path = xstrdup(path);
    ckpt_reader *r = ckpt_open(path, err, errlen);
    if (!r) {
        eval_ckpt_close(c);
        return -1;
    }
    const bool imported = !ckpt_has_attr(r, "/", "config") && ckpt_has_attr(r, "/", "model_config");
    int rc = imported ? read_imported(c, r, tokenizer, err, errlen) : read_position(c, r, err, errlen);
    // The embedding's rows: the vocabulary the model was trained with.
    int64_t rows = 0, dims[CKPT_MAX_RANK];
    ckpt_dtype dt;
    int rank;
    char e2[256];
    if (rc == 0 && ckpt_get_info(r, "params/model.embed_tokens.weight", &dt, &rank, dims, e2, sizeof e2) == 0 &&
        rank == 2)
        rows = dims[0];
    ckpt_close(r);
    char msg[512];
    // The stored curriculum, once: every stage's RoPE (factors files read
    // now). Its messages name the checkpoint already (the config's file name).
    if (rc == 0 && !imported) {
        rc = curr_load(&c->curr, &c->cfg, err, errlen);
        if (rc == 0) c->original_context = c->curr.original_context;
    }
    if (rc == 0) {
        c->tok = tok_load(tokenizer ? tokenizer : c->cfg.data.tokenizer, msg, sizeof msg);
        if (!c->tok) {
            snprintf(err, errlen, "checkpoint %s: tokenizer: %s%s", path, msg,
                     tokenizer ? "" : " (--tokenizer gives another)");
            rc = -1;
        }
    }
    if (rc == 0) {
        if (!imported) cfg_model_config(&c->mc, &c->cfg);
        if (c->mc.vocab_size == 0 && tokenizer && rows > 0 && rows != tok_vocab_size(c->tok)) {
            snprintf(err, errlen, "checkpoint %s was trained with a %lld-token vocabulary (tokenizer '%s'); "
                     "--tokenizer '%s' has %lld tokens", path, (long long)rows,
                     c->cfg.data.tokenizer ? c->cfg.data.tokenizer : "?", tokenizer,
                     (long long)tok_vocab_size(c->tok));
            eval_ckpt_close(c);
            return -1;
        }
        // The same size, another vocabulary: the run's tokenizer says so, when it still loads.
        if (tokenizer && !imported) {
            const char *run_spec = c->cfg.data.tokenizer ? c->cfg.data.tokenizer : "byte";
            tok_tokenizer *run_tok = tok_load(run_spec, msg, sizeof msg);
            bool other = run_tok && tok_vocab_size(run_tok) == tok_vocab_size(c->tok) &&
                         tok_fingerprint(run_tok) != tok_fingerprint(c->tok);
            tok_free(run_tok);
            if (other) {
                snprintf(err, errlen, "checkpoint %s was trained with tokenizer '%s'; --tokenizer '%s' has "
                         "the same vocabulary size (%lld) but other tokens or merges", path, run_spec,
                         tokenizer, (long long)tok_vocab_size(c->tok));
                eval_ckpt_close(c);
                return -1;
            }
        }
        if (c->mc.vocab_size == 0) c->mc.vocab_size = (int)tok_vocab_size(c->tok);
        if (c->mc.vocab_size < tok_vocab_size(c->tok)) {
            snprintf(err, errlen, "checkpoint %s: model.vocab_size (%d) is smaller than the tokenizer's "
                     "vocabulary (%lld)", path, c->mc.vocab_size, (long long)tok_vocab_size(c->tok));
            rc = -1;
        } else if (model_config_validate(&c->mc, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "checkpoint %s: %s", path, msg);
            rc = -1;
        }
    }
    if (rc != 0) eval_ckpt_close(c);
    return rc;
}

model *eval_ckpt_model(const eval_ckpt *c, int64_t max_tokens, backend *bk, char *err,
                       size_t errlen) {
    ckpt_reader *r = ckpt_open(c->path, err, errlen);
    if (!r) return NULL;
    model *m = bk ? model_create_on(&c->mc, max_tokens, !bk->host_memory, bk)
                  : model_create(&c->mc, max_tokens, false);
    int rc = 0;
    for (int i = 0; rc == 0 && i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        char name[160];
        snprintf(name, sizeof name, "params/%s", t->name);
        int rank = t->shape[1] == 1 ? 1 : 2;  // vectors are stored 1-D
        rc = ckpt_get_tensor(r, name, m->params + t->offset, rank, t->shape, err, errlen);
    }
    ckpt_close(r);
    if (rc != 0) {
        model_free(m);
        return NULL;
    }
    model_push_params(m);  // onto the device (a no-op copy on the CPU)
    return m;
}

// longrope: the factors file's lists and n_hat into out.
static int read_factors(rope_config *out, const char *path, char *err, size_t errlen) {
    cfg_doubles sf, lf;
    int64_t n_hat = 0;
    char msg[512];
    if (cfg_read_factors(&sf, &lf, &n_hat, path, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "--rope longrope: %s", msg);
        return -1;
    }
    int rc = 0;
    if (sf.n != lf.n || sf.n > ROPE_MAX_PAIRS) {
        snprintf(err, errlen, "--rope longrope: %s: short_factor has %d values and long_factor %d (they must "
                 "match, at most %d)", path, sf.n, lf.n, ROPE_MAX_PAIRS);
        rc = -1;
    } else {
        out->n_factors = sf.n;
        memcpy(out->short_factor, sf.v, sizeof(double) * (size_t)sf.n);
        memcpy(out->long_factor, lf.v, sizeof(double) * (size_t)sf.n);
        out->n_hat = n_hat;
    }
    free(sf.v);
    free(lf.v);
    return rc;
}

// --rope TYPE[:FACTOR[:FILE]]: the model's pretrained RoPE scaled by factor
// relative to the pretrained context, as a run-file stage with that type
// and factor (longrope: and rope.factors_file FILE) would be.
static int custom_rope(rope_config *out, const eval_ckpt *c, const eval_rope_opt *opt, char *err,
                       size_t errlen) {
    const int64_t orig = c->original_context;
    memset(out, 0, sizeof *out);
    out->type = opt->type;
    out->theta = c->mc.rope.theta;
    out->head_dim = c->mc.rope.head_dim;
    out->partial_rotary_factor = c->mc.rope.partial_rotary_factor;
    out->original_max_position_embeddings = orig;
    out->max_position_embeddings = orig;
    if (opt->type != ROPE_TYPE_DEFAULT) {
        out->factor = opt->factor;
        if (opt->type != ROPE_TYPE_DYNAMIC) out->max_position_embeddings = (int64_t)llround(orig * opt->factor);
    }
    if (opt->type == ROPE_TYPE_LLAMA3) out->low_freq_factor = 1.0, out->high_freq_factor = 4.0;
    if (opt->type == ROPE_TYPE_LONGROPE && read_factors(out, opt->factors_file, err, errlen) != 0) return -1;
    char msg[256];
    if (rope_config_validate(out, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "--rope %s:%g%s%s for checkpoint %s: %s", rope_type_name(opt->type), opt->factor,
                 opt->factors_file ? ":" : "", opt->factors_file ? opt->factors_file : "", c->path, msg);
        return -1;
    }
    return 0;
}

int eval_ckpt_rope(rope_config *out, char *desc, size_t desclen, const eval_ckpt *c,
                   const eval_rope_opt *opt, char *err, size_t errlen) {
    if (opt->custom) {
        if (custom_rope(out, c, opt, err, errlen) != 0) return -1;
        snprintf(desc, desclen, "--rope %s", rope_type_name(out->type));
    } else if (c->imported) {
        if (opt->stage > 0) {
            snprintf(err, errlen, "--rope-stage %d: checkpoint %s was imported and has no stages",
                     opt->stage, c->path);
            return -1;
        }
        *out = c->mc.rope;
        snprintf(desc, desclen, "the imported model's own: %s", rope_type_name(out->type));
    } else {
        int stage = opt->stage >= 0 ? opt->stage : c->trained_stage;
        if (stage >= c->cfg.n_stages) {
            snprintf(err, errlen, "--rope-stage %d: checkpoint %s has stages 0..%d", stage, c->path,
                     c->cfg.n_stages - 1);
            return -1;
        }
        *out = *curr_stage_rope(&c->curr, stage);
        snprintf(desc, desclen, "stage %d '%s': %s", stage, curr_stage_plan(&c->curr, stage)->name,
                 rope_type_name(out->type));
    }
    size_t n = strlen(desc);
    if (out->type != ROPE_TYPE_DEFAULT && n < desclen)
        snprintf(desc + n, desclen - n, ", factor %g", out->factor);
    return 0;
}
