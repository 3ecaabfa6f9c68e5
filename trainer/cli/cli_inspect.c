// cli_inspect: `stretch inspect CKPT.h5 [--config] [--tensors] [--all]`:
// a checkpoint's summary first (step, stage, tokens, length, grid, the
// stage's RoPE, the model's shape, parameters, tensors and bytes), after
// verifying every checksum; the run config and the tensor list on request,
// --all the full dump of every attribute and dataset (ckpt_print_summary).
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "ckpt_model.h"
#include "cli.h"
#include "cliopt.h"
#include "run_config.h"
#include "run_config_check.h"

static int usage(FILE *out, int status) {
    fprintf(out,
            "usage: stretch inspect CKPT.h5 [--config] [--tensors] [--all]\n"
            "  verifies every checksum, then prints a summary: step, stage, tokens, seq_len, grid,\n"
            "  the stage's RoPE, the model's shape, parameters, tensors and bytes.\n"
            "  --config   also the run config the checkpoint carries\n"
            "  --tensors  also every tensor with its type and shape\n"
            "  --all      every attribute and dataset of the file (the full dump)\n");
    return status;
}

static int64_t attr_i64(ckpt_reader *r, const char *obj, const char *name, int64_t def) {
    int64_t v;
    char err[256];
    if (!ckpt_has_attr(r, obj, name) || ckpt_get_attr_int64(r, obj, name, &v, err, sizeof err) != 0) return def;
    return v;
}

static double attr_f64(ckpt_reader *r, const char *obj, const char *name, double def) {
    double v;
    char err[256];
    if (!ckpt_has_attr(r, obj, name) || ckpt_get_attr_double(r, obj, name, &v, err, sizeof err) != 0) return def;
    return v;
}

static char *attr_str(ckpt_reader *r, const char *obj, const char *name) {
    char *s = NULL, err[256];
    if (!ckpt_has_attr(r, obj, name) || ckpt_get_attr_string(r, obj, name, &s, err, sizeof err) != 0) return NULL;
    return s;
}

static int summary(const char *path, bool show_config, bool show_tensors, char *err, size_t errlen) {
    ckpt_reader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    char *config = attr_str(r, "/", "config");
    cfg_run cfg;
    cfg_init(&cfg);
    bool have_cfg = config && cfg_parse_string(&cfg, config, path, err, errlen) == 0;
    model_config mc;
    memset(&mc, 0, sizeof mc);
    bool have_mc = have_cfg;
    if (have_cfg) cfg_model_config(&mc, &cfg);
    else have_mc = ckpt_model_imported_config(&mc, r, err, errlen) == 0;

    printf("checkpoint %s\n", path);
    int64_t step = attr_i64(r, "/", "step", -1);
    if (step >= 0) {
        int stage = (int)attr_i64(r, "/", "stage", 0);
        const char *name = have_cfg && stage < cfg.n_stages && cfg.stages[stage].name ? cfg.stages[stage].name : "?";
        printf("  step %lld, stage %d '%s' (%d of %d) at its step %lld, %lld tokens seen, seq_len %lld, "
               "grid dp %lld x sp %lld\n",
               (long long)step, stage, name, stage + 1, have_cfg ? cfg.n_stages : 0,
               (long long)attr_i64(r, "/", "stage_step", 0), (long long)attr_i64(r, "/", "tokens_seen", 0),
               (long long)attr_i64(r, "/", "seq_len", 0), (long long)attr_i64(r, "/", "grid_dp", 1),
               (long long)attr_i64(r, "/", "grid_sp", 1));
    } else {
        printf("  an imported model (no training state)\n");
    }
    char *rtype = attr_str(r, "rope", "type");
    if (rtype) {
        printf("  rope: %s, factor %g, theta %g, original context %lld, max positions %lld, attention factor %.4f\n",
               rtype, attr_f64(r, "rope", "factor", 1), attr_f64(r, "rope", "theta", 0),
               (long long)attr_i64(r, "rope", "original_max_position_embeddings", 0),
               (long long)attr_i64(r, "rope", "max_position_embeddings", 0),
               attr_f64(r, "rope", "applied_attention_factor", 1));
        int64_t short_len = attr_i64(r, "rope", "mixed_short_len", 0);
        if (short_len > 0)
            printf("  mixed context windows: documents up to %lld tokens trained with the short factors, "
                   "longer ones with the long factors\n", (long long)short_len);
        free(rtype);
    }
    // Tensors: count, bytes, parameters (the /params family).
    char **names = NULL;
    int count = 0;
    int64_t bytes = 0, n_params = 0, vocab = 0;
    if (ckpt_list(r, "/", &names, &count, err, errlen) != 0) {
        ckpt_close(r);
        free(config);
        cfg_free(&cfg);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        ckpt_dtype dt;
        int rank;
        int64_t dims[CKPT_MAX_RANK], numel = 1;
        if (ckpt_get_info(r, names[i], &dt, &rank, dims, err, errlen) != 0) continue;
        for (int d = 0; d < rank; d++) numel *= dims[d];
        bytes += numel * (int64_t)ckpt_dtype_size(dt);
        if (!strncmp(names[i], "params/", 7)) {
            n_params += numel;
            if (strstr(names[i], "embed_tokens") && rank == 2) vocab = dims[0];
        }
    }
    if (have_mc) {
        printf("  model: dim %d, %d layers, %d heads (%d kv, head_dim %d), ffn %d, vocab %lld%s\n", mc.dim,
               mc.n_layers, mc.n_heads, mc.n_kv_heads, model_config_head_dim(&mc), mc.ffn_dim,
               (long long)(mc.vocab_size ? mc.vocab_size : vocab), mc.tie_embeddings ? ", tied embeddings" : "");
    }
    printf("  %.2fM parameters; %d tensors, %.1f MiB\n", n_params / 1e6, count, bytes / 1048576.0);
    if (show_tensors) {
        printf("tensors:\n");
        for (int i = 0; i < count; i++) {
            ckpt_dtype dt;
            int rank;
            int64_t dims[CKPT_MAX_RANK];
            if (ckpt_get_info(r, names[i], &dt, &rank, dims, err, errlen) != 0) continue;
            printf("  /%s  %s (", names[i], ckpt_dtype_name(dt));
            for (int d = 0; d < rank; d++) printf("%s%lld", d ? ", " : "", (long long)dims[d]);
            printf(")\n");
        }
    }
    if (show_config) {
        if (config) printf("run config:\n%s", config);
        else printf("run config: none (an imported model)\n");
    }
    if (!show_config && !show_tensors) printf("  (--config: the run config, --tensors: every tensor, --all: everything)\n");
    ckpt_list_free(names, count);
    ckpt_close(r);
    free(config);
    cfg_free(&cfg);
    return 0;
}

int cli_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool show_config = false, show_tensors = false, all = false;
    static const char *const known[] = {"--config", "--tensors", "--all", "--help"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout, 0);
        if (!strcmp(a, "--config")) show_config = true;
        else if (!strcmp(a, "--tensors")) show_tensors = true;
        else if (!strcmp(a, "--all")) all = true;
        else if (!strncmp(a, "--", 2)) {
            char hint[96];
            cliopt_hint(hint, sizeof hint, a, known, 4);
            fprintf(stderr, "stretch: error: inspect: unknown option %s%s\n", a, hint);
            return 2;
        } else if (path) {
            fprintf(stderr, "stretch: error: inspect: one checkpoint at a time (got %s and %s)\n", path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) return usage(stderr, 2);
    char err[1024], file[4096];
    if (ckpt_dir_resolve(path, file, sizeof file, err, sizeof err) != 0) {  // a run dir, its latest
        fprintf(stderr, "stretch: error: inspect: %s\n", err);
        return 2;
    }
    path = file;
    if (ckpt_verify(path, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    int rc = all ? ckpt_print_summary(path, stdout, err, sizeof err)
                 : summary(path, show_config, show_tensors, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    return 0;
}
