// cli_export: `stretch export --ckpt C.h5 --format hf --out DIR`: a stretch
// checkpoint (or a run directory / its latest file: the checkpoint it names)
// as a Hugging Face Llama model directory (model.safetensors, config.json,
// generation_config.json) that transformers loads.
//
// The architecture and RoPE come from the checkpoint (ckpt_model.h): its
// run config at the stage whose frequencies the weights were trained with
// (--stage overrides), or the model_config of an imported checkpoint.
// Interleaved-layout models get their q/k rows permuted to HF's half layout
// (hf_io.h).
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_dir.h"
#include "ckpt_model.h"
#include "cli.h"
#include "cliopt.h"
#include "hf_config.h"
#include "hf_io.h"
#include "errmsg.h"
#include "export_tok.h"
#include "fsutil.h"

static int usage(FILE *out, int status) {
    fprintf(out,
            "usage: stretch export --ckpt C.h5 --format hf --out DIR [--dtype float32|bfloat16] [--stage N]\n"
            "                      [--yarn-v4]\n"
            "       stretch export --ckpt C.h5 --format gguf --out M.gguf [--type f32|f16|bf16|q8_0] [--stage N]\n"
            "                      [--tokenizer byte|tokenizer.json|FILE.gguf]\n"
            "  gguf: a llama.cpp model (architecture llama) with the stage's RoPE in llama.cpp's keys and\n"
            "  the checkpoint's tokenizer (its run config's data.tokenizer, or the GGUF it was imported\n"
            "  from); a RoPE llama.cpp cannot express is refused (docs/gguf-export.md).\n"
            "  hf: writes DIR (created with its parents): model.safetensors, config.json\n"
            "  (max_position_embeddings and rope_scaling of the stage the weights were trained in),\n"
            "  generation_config.json and the run's tokenizer (tokenizer.json, tokenizer_config.json;\n"
            "  for a GGUF tokenizer or an imported checkpoint a line says why not).\n"
            "  --stage N: export with stage N's rope scaling instead (0-based).\n"
            "  --yarn-v4: write yarn the way transformers 4.4x also reads it: max_position_embeddings =\n"
            "  the original context, no original_max_position_embeddings key (read the same by 4.5x, 5.x).\n");
    return status;
}

typedef struct {
    const char *ckpt, *format, *out, *type, *tokenizer;
    st_dtype dtype;
    int flags;  // HF_CONFIG_*
    int stage;  // CKPT_MODEL_STAGE_AUTO: from the checkpoint
} export_args;

static int parse_args(export_args *a, int argc, char **argv, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->dtype = ST_F32;
    a->stage = CKPT_MODEL_STAGE_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) return 1;
        if (!strcmp(o, "--yarn-v4")) {
            a->flags |= HF_CONFIG_YARN_V4;
            continue;
        }
        static const char *const known[] = {"--ckpt", "--format", "--out", "--dtype", "--stage", "--yarn-v4",
                                            "--type", "--tokenizer"};
        const int n_known = (int)(sizeof known / sizeof known[0]);
        bool ok = false;
        for (int k = 0; k < n_known; k++) ok |= !strcmp(o, known[k]);
        if (!ok) {
            char hint[96];
            cliopt_hint(hint, sizeof hint, o, known, n_known);
            return errmsg(err, errlen, "export: unknown option %s%s", o, hint);
        }
        if (i + 1 >= argc) return errmsg(err, errlen, "export: option %s needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--ckpt")) a->ckpt = v;
        else if (!strcmp(o, "--format")) a->format = v;
        else if (!strcmp(o, "--out")) a->out = v;
        else if (!strcmp(o, "--type")) a->type = v;
        else if (!strcmp(o, "--tokenizer")) a->tokenizer = v;
        else if (!strcmp(o, "--dtype") && (!strcmp(v, "float32") || !strcmp(v, "bfloat16")))
            a->dtype = !strcmp(v, "bfloat16") ? ST_BF16 : ST_F32;
        else if (!strcmp(o, "--dtype"))
            return errmsg(err, errlen, "export: --dtype must be float32 or bfloat16 (got '%s')", v);
        else if (!strcmp(o, "--stage")) {
            char *end;
            long s = strtol(v, &end, 10);
            if (*end || end == v || s < 0 || s > 1000)
                return errmsg(err, errlen, "export: --stage must be a stage index >= 0 (got '%s')", v);
            a->stage = (int)s;
        } else
            return errmsg(err, errlen, "export: unknown option %s", o);
    }
    if (!a->ckpt || !a->out || !a->format)
        return errmsg(err, errlen, "export: --ckpt, --format and --out are required");
    if (strcmp(a->format, "hf") && strcmp(a->format, "gguf"))
        return errmsg(err, errlen, "export: --format must be hf or gguf (got '%s')", a->format);
    bool gguf = !strcmp(a->format, "gguf");
    if (!gguf && (a->type || a->tokenizer))
        return errmsg(err, errlen, "export: --type and --tokenizer are for --format gguf (hf: --dtype)");
    if (gguf && (a->flags || a->dtype != ST_F32))
        return errmsg(err, errlen, "export: --dtype and --yarn-v4 are for --format hf (gguf: --type)");
    return 0;
}

int cli_export(int argc, char **argv) {
    export_args a;
    char err[1536];
    int rc = parse_args(&a, argc, argv, err, sizeof err);
    if (rc == 1) return usage(stdout, 0);
    if (rc != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    char file[4096];  // a run directory or its latest: the checkpoint it names
    if (ckpt_dir_resolve(a.ckpt, file, sizeof file, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: export: --ckpt %s\n", err);
        return 2;
    }
    a.ckpt = file;
    if (!strcmp(a.format, "gguf")) {  // M.gguf's directory, with its parents
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", a.out);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (fsutil_mkdirs(dir, "export --out", err, sizeof err) != 0) {
                fprintf(stderr, "stretch: error: %s\n", err);
                return 2;
            }
        }
        return cli_export_gguf(a.ckpt, a.out, a.type, a.tokenizer, a.stage);
    }
    model_config mc;
    float *params = NULL;
    int stage = 0;
    if (ckpt_model_load(&mc, &params, &stage, a.ckpt, a.stage, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: export: %s\n", err);
        return 2;
    }
    if (fsutil_mkdirs(a.out, "export --out", err, sizeof err) != 0) {
        free(params);
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    rc = hf_save(a.out, &mc, params, a.dtype, a.flags, stderr, err, sizeof err);
    free(params);
    if (rc != 0) {
        fprintf(stderr, "stretch: error: export: %s\n", err);
        return 2;
    }
    const rope_config *rope = &mc.rope;
    bool yarn_v4 = (a.flags & HF_CONFIG_YARN_V4) && rope->type == ROPE_TYPE_YARN;
    int64_t max_pos = yarn_v4 && rope->original_max_position_embeddings > 0 ? rope->original_max_position_embeddings
                                                                           : rope->max_position_embeddings;
    int tok_rc = export_tokenizer(a.ckpt, a.out, max_pos, stdout, err, sizeof err);
    if (tok_rc < 0) {
        fprintf(stderr, "stretch: error: export: %s\n", err);
        return 2;
    }
    printf("exported %s (stage %d) -> %s: %s, rope %s, max_position_embeddings %lld%s\n", a.ckpt, stage, a.out,
           a.dtype == ST_BF16 ? "bfloat16" : "float32", rope_type_name(rope->type), (long long)max_pos,
           mc.rope_layout == ROPE_LAYOUT_INTERLEAVED ? ", q/k rows permuted to the half layout" : "");
    if (tok_rc == 1) printf("  with the run's tokenizer: tokenizer.json, tokenizer_config.json\n");
    return 0;
}
