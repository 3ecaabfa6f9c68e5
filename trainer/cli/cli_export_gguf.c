// cli_export_gguf: `stretch export --ckpt C.h5 --format gguf --out M.gguf
// [--type f32|f16|bf16|q8_0] [--stage N] [--tokenizer SPEC]`: a checkpoint
// as a llama.cpp GGUF (gguf_export.h) with its tokenizer (tok_gguf_write.h).
//
// The tokenizer: --tokenizer, else the run config's data.tokenizer (a
// training checkpoint), else the GGUF file an imported checkpoint came from
// (its imported_from attribute). The RoPE is the exported stage's
// (ckpt_model.h); a RoPE llama.cpp cannot express is refused before
// anything is written. Exit 2 with one line on every user error.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_model.h"
#include "cli.h"
#include "errmsg.h"
#include "gguf.h"
#include "gguf_export.h"
#include "gguf_write.h"
#include "run_config.h"
#include "tok_gguf_write.h"

static int parse_type(const char *s, uint32_t *t) {
    if (!strcmp(s, "f32")) *t = GGML_TYPE_F32;
    else if (!strcmp(s, "f16")) *t = GGML_TYPE_F16;
    else if (!strcmp(s, "bf16")) *t = GGML_TYPE_BF16;
    else if (!strcmp(s, "q8_0")) *t = GGML_TYPE_Q8_0;
    else return -1;
    return 0;
}

// The checkpoint's tokenizer spec (malloc'd) or NULL with a message.
static char *ckpt_tokenizer(const char *path, char *err, size_t errlen) {
    ckpt_reader *r = ckpt_open(path, err, errlen);
    if (!r) return NULL;
    char *text = NULL, *spec = NULL;
    if (ckpt_has_attr(r, "/", "config")) {
        if (ckpt_get_attr_string(r, "/", "config", &text, err, errlen) == 0) {
            cfg_run run;
            cfg_init(&run);
            char msg[768];
            if (cfg_parse_string(&run, text, path, msg, sizeof msg) != 0)
                errmsg(err, errlen, "checkpoint %s: its run config does not parse: %s", path, msg);
            else if (!run.data.tokenizer)
                errmsg(err, errlen, "checkpoint %s: its run config has no data.tokenizer (pass --tokenizer)", path);
            else
                spec = strdup(run.data.tokenizer);
            cfg_free(&run);
        }
    } else if (ckpt_has_attr(r, "/", "imported_from")) {
        if (ckpt_get_attr_string(r, "/", "imported_from", &text, err, errlen) == 0) {
            if (gguf_is_gguf(text)) spec = strdup(text);
            else errmsg(err, errlen, "checkpoint %s was imported from %s, which is not a GGUF file: pass --tokenizer "
                        "FILE.gguf or byte", path, text);
        }
    } else {
        errmsg(err, errlen, "checkpoint %s records no tokenizer: pass --tokenizer", path);
    }
    free(text);
    ckpt_close(r);
    return spec;
}

int cli_export_gguf(const char *ckpt, const char *out, const char *type_name, const char *tokenizer, int stage) {
    char err[1536];
    uint32_t type = GGML_TYPE_F32;
    if (type_name && parse_type(type_name, &type)) {
        fprintf(stderr, "stretch: error: export: --type must be f32, f16, bf16 or q8_0 (got '%s')\n", type_name);
        return 2;
    }
    model_config mc;
    float *params = NULL;
    int used = 0;
    if (ckpt_model_load(&mc, &params, &used, ckpt, stage, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: export: %s\n", err);
        return 2;
    }
    if (gguf_export_check(&mc, type, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: export: %s (stage %d): %s\n", ckpt, used, err);
        free(params);
        return 2;
    }
    char *spec = tokenizer ? strdup(tokenizer) : ckpt_tokenizer(ckpt, err, sizeof err);
    gguf_writer *w = gguf_writer_new();
    int rc = spec ? 0 : -1;
    char name[256];
    const char *base = strrchr(ckpt, '/');
    snprintf(name, sizeof name, "stretch %s stage %d", base ? base + 1 : ckpt, used);
    if (rc == 0) rc = gguf_export_model(w, &mc, params, type, name, stderr, err, sizeof err);
    if (rc == 0) rc = tok_gguf_write(w, spec, mc.vocab_size, err, sizeof err);
    if (rc == 0) rc = gguf_writer_save(w, out, err, sizeof err);
    gguf_writer_free(w);
    free(params);
    if (rc != 0) {
        fprintf(stderr, "stretch: error: export: %s\n", err);
        free(spec);
        return 2;
    }
    const rope_config *r = &mc.rope;
    printf("exported %s (stage %d) -> %s: gguf %s, rope %s, context_length %lld, tokenizer %s%s\n", ckpt, used, out,
           type_name ? type_name : "f32", rope_type_name(r->type), (long long)r->max_position_embeddings, spec,
           mc.rope_layout == ROPE_LAYOUT_HALF ? ", q/k rows permuted to llama.cpp's interleaved pairs" : "");
    free(spec);
    return 0;
}
