// cli_import: `stretch import --hf DIR --out C.h5`: a Hugging Face Llama
// model directory (config.json + model.safetensors or shards; F32, F16 or
// BF16) into a stretch checkpoint: /params under the HF names (what
// model.init loads), /rope for the model's RoPE, and the root attribute
// model_config holding the architecture as config.json text (what
// `stretch export` reads when a checkpoint has no run config). It prints the
// run-file `model:` section that matches the model.
//
// `stretch import --gguf FILE --out C.h5` does the same from a llama.cpp
// GGUF file (gguf_model.h: dequantized to float32, q/k rows back in HF order).
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "cliopt.h"
#include "hf_config.h"
#include "die.h"
#include "gguf.h"
#include "gguf_model.h"
#include "hf_io.h"
#include "model.h"
#include "train_ckpt.h"

static int usage(FILE *out, int status) {
    fprintf(out,
            "usage: stretch import --hf DIR --out C.h5\n"
            "       stretch import --gguf FILE --out C.h5\n"
            "  DIR holds config.json (LlamaForCausalLM) and model.safetensors or\n"
            "  model.safetensors.index.json with its shards (F32, F16 or BF16).\n"
            "  FILE is a llama.cpp GGUF of a Llama model (F32, F16, BF16, Q8_0, Q4_0, Q4_1,\n"
            "  Q5_0, Q5_1, Q4_K, Q5_K, Q6_K tensors), dequantized to float32; its tokenizer\n"
            "  is read from the same file (data.tokenizer: FILE).\n"
            "  C.h5 is a stretch checkpoint: start a run from it with model.init.\n");
    return status;
}

static int write_ckpt(const char *out, const char *dir, const model_config *cfg, const float *params,
                      char *err, size_t errlen) {
    ckpt_writer *w = ckpt_create(out, err, errlen);
    if (!w) return -1;
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    char *json = hf_config_to_json(cfg, "float32", 0, NULL);
    int rc = ckpt_put_attr_string(w, "/", "model_config", json);
    free(json);
    rc |= ckpt_put_attr_string(w, "/", "imported_from", dir);
    rc |= ckpt_put_attr_string(w, "/", "stretch_version", STRETCH_VERSION);
    rc |= ckpt_put_attr_int64(w, "/", "step", 0);
    rc |= ckpt_put_attr_int64(w, "/", "stage", 0);
    rc |= ckpt_put_attr_int64(w, "/", "stage_step", 0);
    rc |= ckpt_put_attr_int64(w, "/", "tokens_seen", 0);
    rc |= ckpt_put_attr_int64(w, "/", "n_params", total);
    for (int i = 0; i < n && rc == 0; i++) {
        char name[160];
        int64_t dims[2] = {t[i].shape[0], t[i].shape[1]};
        snprintf(name, sizeof name, "params/%s", t[i].name);
        rc |= ckpt_put_tensor(w, name, params + t[i].offset, t[i].shape[1] == 1 ? 1 : 2, dims);
    }
    free(t);
    rope_table table;
    rope_table_init(&table, &cfg->rope, 0);
    rc |= train_ckpt_put_rope(w, &cfg->rope, &table, cfg->rope_layout);
    if (rc != 0) {
        snprintf(err, errlen, "%s", ckpt_writer_error(w));
        ckpt_abort(w);
        return -1;
    }
    return ckpt_commit(w, err, errlen);
}

// The run-file keys that describe this model (model.max_position_embeddings
// is the context the stages' scaling is relative to).
static void print_run_keys(const char *out, const model_config *c) {
    const rope_config *r = &c->rope;
    char eps[64], theta[64];
    hf_format_float(eps, sizeof eps, c->norm_eps, 1);
    hf_format_float(theta, sizeof theta, r->theta, 0);
    bool scaled = r->type == ROPE_TYPE_YARN || r->type == ROPE_TYPE_LONGROPE || r->type == ROPE_TYPE_LLAMA3;
    int64_t context = scaled && r->original_max_position_embeddings > 0 ? r->original_max_position_embeddings
                                                                        : r->max_position_embeddings;
    printf("run file keys for this model:\n"
           "  model: {init: %s, dim: %d, n_layers: %d, n_heads: %d, n_kv_heads: %d, head_dim: %d, ffn_dim: %d,\n"
           "          vocab_size: %d, norm_eps: %s, tie_embeddings: %s, rope_theta: %s, rope_layout: half,\n"
           "          max_position_embeddings: %lld",
           out, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, model_config_head_dim(c), c->ffn_dim,
           c->vocab_size, eps, c->tie_embeddings ? "true" : "false", theta, (long long)context);
    if (r->partial_rotary_factor != 0.0 && r->partial_rotary_factor != 1.0)
        printf(", partial_rotary_factor: %g", r->partial_rotary_factor);
    printf("}\n");
    if (r->type != ROPE_TYPE_DEFAULT)
        printf("  the model was trained with rope_scaling %s (see config.json): give its keys in the stages'\n"
               "  rope sections to keep it\n", rope_type_name(r->type));
}

int cli_import(int argc, char **argv) {
    const char *dir = NULL, *gguf = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        static const char *const known[] = {"--hf", "--gguf", "--out"};
        if (strcmp(argv[i], "--hf") && strcmp(argv[i], "--gguf") && strcmp(argv[i], "--out")) {
            char hint[96];
            cliopt_hint(hint, sizeof hint, argv[i], known, 3);
            fprintf(stderr, "stretch: error: import: unknown option %s%s\n", argv[i], hint);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "stretch: error: import: option %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--hf")) dir = argv[++i];
        else if (!strcmp(argv[i], "--gguf")) gguf = argv[++i];
        else if (!strcmp(argv[i], "--out")) out = argv[++i];
        else {
            fprintf(stderr, "stretch: error: import: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!(dir || gguf) || (dir && gguf) || !out) return usage(stderr, 2);
    char err[1024];
    model_config cfg;
    float *params = NULL;
    if (gguf) {
        gguf_file *f = gguf_open(gguf, err, sizeof err);
        if (!f || gguf_model_load(&cfg, &params, f, err, sizeof err) != 0) die_user("import: %s", err);
        gguf_close(f);
        dir = gguf;
    } else if (hf_load(&cfg, &params, dir, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: import: %s\n", err);
        return 2;
    }
    int rc = write_ckpt(out, dir, &cfg, params, err, sizeof err);
    free(params);
    if (rc != 0) {
        fprintf(stderr, "stretch: error: import: %s\n", err);
        return 2;
    }
    int n;
    int64_t total;
    free(model_param_layout(&cfg, &n, &total));
    printf("imported %s -> %s: %d tensors, %lld parameters, rope %s, max_position_embeddings %lld\n", dir, out, n,
           (long long)total, rope_type_name(cfg.rope.type), (long long)cfg.rope.max_position_embeddings);
    print_run_keys(out, &cfg);
    return 0;
}
