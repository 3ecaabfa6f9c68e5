// bench_logits: the logits of one sequence through the CPU reference model,
// for a stretch checkpoint or a Hugging Face model directory, and the time
// of the forward. bench/hf_transformers_check.py compares them with
// transformers on the `stretch export` of the same checkpoint.
//
//   bench_logits (--ckpt C.h5 [--stage N] | --hf DIR) --tokens IDS.bin --out LOGITS.bin
//
// IDS.bin: T int32 token ids (little-endian); positions 0..T-1, one
// document. LOGITS.bin: (T, V) float32. The RoPE table is built for
// seq_len T (what transformers does for dynamic NTK and LongRoPE).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt_model.h"
#include "die.h"
#include "hf_io.h"
#include "model.h"
#include "xent.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int32_t *read_tokens(const char *path, int64_t *T) {
    FILE *f = fopen(path, "rb");
    if (!f) die_user("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes <= 0 || bytes % 4 != 0) die_user("%s: expected int32 token ids", path);
    int32_t *ids = xmalloc((size_t)bytes);
    if (fread(ids, 1, (size_t)bytes, f) != (size_t)bytes) die_user("%s: read error", path);
    fclose(f);
    *T = bytes / 4;
    return ids;
}

int main(int argc, char **argv) {
    const char *ckpt = NULL, *hf = NULL, *tokens = NULL, *out = NULL;
    int stage = CKPT_MODEL_STAGE_AUTO;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ckpt")) ckpt = argv[i + 1];
        else if (!strcmp(argv[i], "--hf")) hf = argv[i + 1];
        else if (!strcmp(argv[i], "--tokens")) tokens = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--stage")) stage = atoi(argv[i + 1]);
        else die_user("unknown option %s", argv[i]);
    }
    if ((!ckpt == !hf) || !tokens || !out)
        die_user("usage: bench_logits (--ckpt C.h5 [--stage N] | --hf DIR) --tokens IDS.bin --out LOGITS.bin");

    char err[1536];
    model_config cfg;
    float *params = NULL;
    int used = 0;
    int rc = ckpt ? ckpt_model_load(&cfg, &params, &used, ckpt, stage, err, sizeof err)
                  : hf_load(&cfg, &params, hf, err, sizeof err);
    if (rc) die_user("%s", err);
    int64_t T;
    int32_t *ids = read_tokens(tokens, &T);
    int32_t *pos = xmalloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= cfg.vocab_size) die_user("token %d at %lld is out of the vocabulary", ids[t], (long long)t);
        pos[t] = (int32_t)t;
    }

    model *m = model_create(&cfg, T, false);
    memcpy(m->params, params, sizeof(float) * (size_t)m->n_params);
    rope_table rope;
    rope_table_init(&rope, &cfg.rope, T);
    model_set_rope(m, &rope);
    model_batch b = {.B = 1, .T = T, .tokens = ids, .targets = NULL, .pos = pos, .seg = NULL};
    double t0 = now_s();
    model_forward(m, &b, NULL);
    double dt = now_s() - t0;
    float *logits = xmalloc(sizeof(float) * (size_t)(T * cfg.vocab_size));
    for (int64_t t = 0; t < T; t++)
        xent_logits_row(logits + t * cfg.vocab_size, model_final_hidden(m) + t * cfg.dim, m->p.lm_head, cfg.dim,
                        cfg.vocab_size);
    FILE *f = fopen(out, "wb");
    size_t n = (size_t)(T * cfg.vocab_size);
    if (!f || fwrite(logits, sizeof(float), n, f) != n || fclose(f) != 0) die_user("cannot write %s", out);
    printf("bench_logits: %s (stage %d), rope %s, layout %s, T=%lld, V=%d: forward %.3f ms\n", ckpt ? ckpt : hf, used,
           rope_type_name(cfg.rope.type), rope_layout_name(cfg.rope_layout), (long long)T, cfg.vocab_size, 1e3 * dt);
    free(logits);
    model_free(m);
    free(pos);
    free(ids);
    free(params);
    return 0;
}
