// cli_tokenize: `stretch tokenize`: UTF-8 text files (one document each) or
// JSONL files (one document per line, its "text" field) into one token shard
// (docs/shard-format.md). Streams: text is read and encoded in 1 MiB pieces
// and tokens go straight to the shard writer, so memory stays constant
// whatever the input size (JSONL: one line at a time).
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "cliopt.h"
#include "die.h"
#include "mono_clock.h"
#include "shard.h"
#include "tok.h"

#define PIECE (1 << 20)

typedef struct {
    bool tty;
    int64_t total, done;  // input bytes
    double last;          // time of the last redraw
} progress;

static void progress_show(progress *p, int64_t tokens, bool final) {
    double t = mono_clock_s();
    if (!p->tty || (!final && t - p->last < 0.2)) return;
    p->last = t;
    int width = 30, fill = p->total > 0 ? (int)(width * (double)p->done / (double)p->total) : width;
    fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %.1f MB  %lld tokens%s",
            fill, "##############################", width - fill, "",
            p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 100.0, p->done / 1e6,
            (long long)tokens, final ? "\n" : "");
}

static int flush_ids(shard_writer *w, tok_ids *ids, char *err, size_t errlen) {
    int rc = shard_writer_append(w, ids->data, ids->n, err, errlen);
    ids->n = 0;
    return rc;
}

static int add_text_file(shard_writer *w, tok_encoder *enc, const char *path, progress *p,
                         char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    char *buf = xmalloc(PIECE);
    tok_ids ids = {0};
    int rc = 0;
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, PIECE, f)) > 0) {
        tok_encoder_feed(enc, &ids, buf, (int64_t)n);
        rc = flush_ids(w, &ids, err, errlen);
        p->done += (int64_t)n;
        progress_show(p, shard_writer_n_tokens(w), false);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error (%s)", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0) {
        tok_encoder_finish(enc, &ids);
        rc = flush_ids(w, &ids, err, errlen);
    }
    if (rc == 0) rc = shard_writer_end_doc(w, err, errlen);
    tok_ids_free(&ids);
    free(buf);
    fclose(f);
    return rc;
}

static int add_jsonl_file(shard_writer *w, tok_encoder *enc, const char *path, progress *p,
                          char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t lineno = 0;
    tok_ids ids = {0};
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        p->done += len;
        bool blank = true;
        for (ssize_t i = 0; i < len && blank; i++) blank = line[i] == ' ' || line[i] == '\n' || line[i] == '\r' || line[i] == '\t';
        if (blank) continue;
        cJSON *obj = cJSON_ParseWithLength(line, (size_t)len);
        const cJSON *text = obj ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
        if (!obj) {
            snprintf(err, errlen, "%s:%lld: not valid JSON", path, (long long)lineno);
            rc = -1;
        } else if (!cJSON_IsString(text)) {
            snprintf(err, errlen, "%s:%lld: no string field \"text\"", path, (long long)lineno);
            rc = -1;
        } else {
            tok_encoder_feed(enc, &ids, text->valuestring, (int64_t)strlen(text->valuestring));
            tok_encoder_finish(enc, &ids);
            rc = flush_ids(w, &ids, err, errlen);
            if (rc == 0) rc = shard_writer_end_doc(w, err, errlen);
        }
        cJSON_Delete(obj);
        progress_show(p, shard_writer_n_tokens(w), false);
    }
    tok_ids_free(&ids);
    free(line);
    fclose(f);
    return rc;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: stretch tokenize --out SHARD [--tokenizer byte|PATH] [--jsonl] FILES...\n"
            "  --out SHARD        the token shard to write (written as SHARD.tmp, then renamed)\n"
            "  --tokenizer SPEC   'byte' (default), a Hugging Face tokenizer.json, or a GGUF\n"
            "                     model file (its tokenizer.ggml.* metadata)\n"
            "  --jsonl            inputs are JSON lines; each line's \"text\" is a document\n"
            "                     (otherwise each file is one document)\n");
}

int cli_tokenize(int argc, char **argv) {
    const char *out = NULL, *spec = "byte";
    bool jsonl = false;
    const char **inputs = xcalloc((size_t)argc, sizeof *inputs);
    int n_inputs = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            usage(stdout);
            free(inputs);
            return 0;
        } else if (!strcmp(argv[i], "--jsonl")) {
            jsonl = true;
        } else if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "--tokenizer")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "stretch: error: tokenize: %s needs a value\n", argv[i]);
                free(inputs);
                return 2;
            }
            *(!strcmp(argv[i], "--out") ? &out : &spec) = argv[i + 1];
            i++;
        } else if (!strncmp(argv[i], "--", 2)) {
            static const char *const known[] = {"--out", "--tokenizer", "--jsonl", "--help"};
            char hint[96];
            cliopt_hint(hint, sizeof hint, argv[i], known, 4);
            fprintf(stderr, "stretch: error: tokenize: unknown option %s%s\n", argv[i], hint);
            free(inputs);
            return 2;
        } else {
            inputs[n_inputs++] = argv[i];
        }
    }
    if (!out || n_inputs == 0) {
        usage(stderr);
        free(inputs);
        return 2;
    }
    char err[1024];
    progress p = {.tty = isatty(STDERR_FILENO)};
    for (int i = 0; i < n_inputs; i++) {
        struct stat sb;
        if (stat(inputs[i], &sb) != 0) {
            fprintf(stderr, "stretch: error: %s: %s\n", inputs[i], strerror(errno));
            free(inputs);
            return 2;
        }
        p.total += sb.st_size;
    }
    tok_tokenizer *tok = tok_load(spec, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "stretch: error: %s\n", err);
        free(inputs);
        return 2;
    }
    shard_writer *w = shard_writer_open_tok(out, tok_vocab_size(tok), tok_fingerprint(tok), spec, err, sizeof err);
    int rc = w ? 0 : -1;
    tok_encoder *enc = tok_encoder_new(tok);
    for (int i = 0; rc == 0 && i < n_inputs; i++)
        rc = (jsonl ? add_jsonl_file : add_text_file)(w, enc, inputs[i], &p, err, sizeof err);
    int64_t tokens = w ? shard_writer_n_tokens(w) : 0, docs = w ? shard_writer_n_docs(w) : 0;
    if (rc == 0) rc = shard_writer_close(w, err, sizeof err);
    else if (w) shard_writer_abort(w);
    tok_encoder_free(enc);
    tok_free(tok);
    free(inputs);
    if (rc != 0) {
        if (p.tty) fprintf(stderr, "\n");
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    progress_show(&p, tokens, true);
    printf("%s: %lld tokens in %lld documents (%s)\n", out, (long long)tokens, (long long)docs, spec);
    return 0;
}
