// ckpt_model: the model of a checkpoint (config + parameters). See ckpt_model.h.
#include "ckpt_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_dir.h"
#include "die.h"
#include "hf_config.h"
#include "model.h"
#include "run_config.h"
#include "run_config_check.h"
#include "curriculum.h"
#include "errmsg.h"

// A training checkpoint: its run config, with the RoPE of the chosen stage.
static int config_from_run(model_config *mc, int *stage_used, ckpt_reader *r, const char *text, int want,
                           char *err, size_t errlen) {
    cfg_run run;
    cfg_init(&run);
    char name[1100], msg[768];
    snprintf(name, sizeof name, "checkpoint %s", ckpt_path(r));
    int rc = cfg_parse_string(&run, text, name, msg, sizeof msg);
    if (rc) errmsg(err, errlen, "its run config does not parse: %s", msg);
    int64_t stage = 0, stage_step = 0;
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "stage", &stage, err, errlen);
    if (rc == 0) rc = ckpt_get_attr_int64(r, "/", "stage_step", &stage_step, err, errlen);
    if (rc == 0) {
        if (want != CKPT_MODEL_STAGE_AUTO) stage = want;
        else if (stage > 0 && stage_step == 0) stage--;  // written at a boundary: trained in the previous stage
        if (stage < 0 || stage >= run.n_stages)
            rc = errmsg(err, errlen, "stage %lld does not exist (the run config has %d stages)", (long long)stage,
                      run.n_stages);
    }
    // The stage's RoPE as training had it: the curriculum of the stored config.
    curriculum *cur = rc == 0 ? xcalloc(1, sizeof *cur) : NULL;
    if (rc == 0) rc = curr_load(cur, &run, err, errlen);
    if (rc == 0) {
        cfg_model_config(mc, &run);
        mc->rope = *curr_stage_rope(cur, (int)stage);
        *stage_used = (int)stage;
    }
    free(cur);
    cfg_free(&run);
    return rc;
}

int ckpt_model_imported_config(model_config *cfg, ckpt_reader *r, char *err, size_t errlen) {
    char *text = NULL;
    if (ckpt_get_attr_string(r, "/", "model_config", &text, err, errlen) != 0) return -1;
    int rc = hf_config_parse(cfg, text, "its model_config", err, errlen);
    free(text);
    return rc;
}

static int load(model_config *mc, float **params, int *stage_used, ckpt_reader *r, int want, char *err,
                size_t errlen) {
    char *text = NULL;
    int rc;
    *stage_used = 0;
    if (ckpt_has_attr(r, "/", "config")) {
        rc = ckpt_get_attr_string(r, "/", "config", &text, err, errlen);
        if (rc == 0) rc = config_from_run(mc, stage_used, r, text, want, err, errlen);
    } else if (ckpt_has_attr(r, "/", "model_config")) {
        rc = ckpt_model_imported_config(mc, r, err, errlen);
        if (rc == 0 && want != CKPT_MODEL_STAGE_AUTO && want != 0)
            rc = errmsg(err, errlen, "stage %d does not exist (an imported checkpoint has no run config, only its model)",
                      want);
    } else {
        rc = errmsg(err, errlen, "it has neither a run config nor a model_config attribute");
    }
    free(text);
    if (rc) return -1;

    ckpt_dtype dt;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
    if (ckpt_get_info(r, "params/model.embed_tokens.weight", &dt, &rank, dims, err, errlen)) return -1;
    if (mc->vocab_size == 0) mc->vocab_size = (int)dims[0];
    char msg[512];
    if (model_config_validate(mc, msg, sizeof msg)) return errmsg(err, errlen, "its model config is invalid: %s", msg);

    int n;
    int64_t total;
    model_tensor *t = model_param_layout(mc, &n, &total);
    float *p = xmalloc(sizeof(float) * (size_t)total);
    for (int i = 0; i < n && rc == 0; i++) {
        char name[160];
        int64_t d[2] = {t[i].shape[0], t[i].shape[1]};
        snprintf(name, sizeof name, "params/%s", t[i].name);
        rc = ckpt_get_tensor(r, name, p + t[i].offset, t[i].shape[1] == 1 ? 1 : 2, d, err, errlen);
    }
    free(t);
    if (rc) {
        free(p);
        return -1;
    }
    *params = p;
    return 0;
}

int ckpt_model_load(model_config *cfg, float **params, int *stage_used, const char *path, int stage,
                    char *err, size_t errlen) {
    char file[4096];  // a run directory or its latest: the checkpoint it names
    if (ckpt_dir_resolve(path, file, sizeof file, err, errlen) != 0) return -1;
    path = file;
    ckpt_reader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    char msg[1024];
    int rc = load(cfg, params, stage_used, r, stage, msg, sizeof msg);
    ckpt_close(r);
    // ckpt messages already start with "checkpoint PATH"; ours do not.
    if (rc) {
        if (!strncmp(msg, "checkpoint ", 11)) snprintf(err, errlen, "%s", msg);
        else snprintf(err, errlen, "checkpoint %s: %s", path, msg);
    }
    return rc;
}
