// export_tok: tokenizer files for an HF export. See export_tok.h.
#include "export_tok.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "ckpt.h"
#include "errmsg.h"
#include "fsutil.h"
#include "run_config.h"
#include "tok.h"

// The run's data.tokenizer from the checkpoint's config; NULL (and *why) if
// the checkpoint has none (an imported model).
static char *ckpt_tokenizer(const char *ckpt_path, const char **why) {
    char err[512];
    ckpt_reader *r = ckpt_open(ckpt_path, err, sizeof err);
    if (!r) {
        *why = "the checkpoint cannot be opened";
        return NULL;
    }
    char *text = NULL, *spec = NULL;
    if (!ckpt_has_attr(r, "/", "config") || ckpt_get_attr_string(r, "/", "config", &text, err, sizeof err) != 0) {
        *why = "the checkpoint records no run config (an imported model: use the source model's tokenizer files)";
        ckpt_close(r);
        return NULL;
    }
    ckpt_close(r);
    cfg_run cfg;
    cfg_init(&cfg);
    if (cfg_parse_string(&cfg, text, ckpt_path, err, sizeof err) == 0 && cfg.data.tokenizer)
        spec = strdup(cfg.data.tokenizer);
    else
        *why = "the checkpoint's run config names no tokenizer";
    cfg_free(&cfg);
    free(text);
    return spec;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = 2 * cap + 65536;
            char *b = realloc(buf, cap);
            if (!b) break;
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool ok = !ferror(f);
    fclose(f);
    if (!ok) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int write_json(const char *dir, const char *name, cJSON *o, char *err, size_t errlen) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    int rc = fsutil_write_atomic(path, text, strlen(text), err, errlen);
    cJSON_free(text);
    return rc;
}

// The text of special id `id` of tok (e.g. "<|endoftext|>"), or NULL.
static char *special_text(const tok_tokenizer *t, int32_t id) {
    if (id < 0) return NULL;
    char *s = NULL;
    tok_decode(&s, t, &id, 1, false);
    if (s && !s[0]) {
        free(s);
        return NULL;
    }
    return s;
}

static cJSON *tokenizer_config(const tok_tokenizer *t, int64_t max_len) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tokenizer_class", "PreTrainedTokenizerFast");
    const char *keys[3] = {"bos_token", "eos_token", "pad_token"};
    int32_t ids[3] = {tok_bos_id(t), tok_eos_id(t), tok_pad_id(t)};
    for (int i = 0; i < 3; i++) {
        char *s = special_text(t, ids[i]);
        if (s) cJSON_AddStringToObject(o, keys[i], s);
        free(s);
    }
    cJSON_AddNumberToObject(o, "model_max_length", (double)max_len);
    cJSON_AddBoolToObject(o, "add_bos_token", false);
    cJSON_AddBoolToObject(o, "add_eos_token", false);
    cJSON_AddStringToObject(o, "generated_by", "stretch export");
    return o;
}

// GPT-2's byte -> printable character map (the ByteLevel pre-tokenizer's):
// printable Latin-1 bytes map to themselves, the others to 256 + k.
static void byte_char(int b, char out[4]) {
    static int map[256];
    static bool init = false;
    if (!init) {
        int k = 0;
        for (int i = 0; i < 256; i++) {
            bool keep = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
            map[i] = keep ? i : 256 + k++;
        }
        init = true;
    }
    int c = map[b];  // < 0x800: one or two UTF-8 bytes
    if (c < 0x80) out[0] = (char)c, out[1] = 0;
    else out[0] = (char)(0xC0 | (c >> 6)), out[1] = (char)(0x80 | (c & 0x3F)), out[2] = 0;
}

static cJSON *byte_tokenizer_json(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", "1.0");
    cJSON_AddNullToObject(o, "truncation");
    cJSON_AddNullToObject(o, "padding");
    cJSON *added = cJSON_AddArrayToObject(o, "added_tokens");
    const char *specials[3] = {"<bos>", "<eos>", "<pad>"};
    for (int i = 0; i < 3; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", TOK_BYTE_BOS + i);
        cJSON_AddStringToObject(a, "content", specials[i]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", false);
        cJSON_AddBoolToObject(a, "rstrip", false);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddBoolToObject(a, "special", true);
        cJSON_AddItemToArray(added, a);
    }
    cJSON_AddNullToObject(o, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(o, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", false);
    cJSON_AddBoolToObject(pre, "trim_offsets", false);
    cJSON_AddBoolToObject(pre, "use_regex", false);
    cJSON_AddNullToObject(o, "post_processor");
    cJSON *dec = cJSON_AddObjectToObject(o, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", false);
    cJSON_AddBoolToObject(dec, "trim_offsets", false);
    cJSON_AddBoolToObject(dec, "use_regex", false);
    cJSON *model = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddBoolToObject(model, "fuse_unk", false);
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, b);
    }
    cJSON_AddArrayToObject(model, "merges");
    return o;
}

int export_tokenizer(const char *ckpt_path, const char *dir, int64_t max_len, FILE *note, char *err,
                     size_t errlen) {
    const char *why = NULL;
    char *spec = ckpt_tokenizer(ckpt_path, &why);
    if (!spec) {
        fprintf(note, "no tokenizer files written: %s\n", why);
        return 0;
    }
    char terr[512];
    tok_tokenizer *t = tok_load(spec, terr, sizeof terr);
    if (!t) {
        fprintf(note, "no tokenizer files written: the run's tokenizer '%s' cannot be loaded from here (%s)\n",
                spec, terr);
        free(spec);
        return 0;
    }
    int rc = 1;
    size_t n = strlen(spec);
    if (!strcmp(spec, "byte")) {
        if (write_json(dir, "tokenizer.json", byte_tokenizer_json(), err, errlen) != 0 ||
            write_json(dir, "tokenizer_config.json", tokenizer_config(t, max_len), err, errlen) != 0)
            rc = -1;
    } else if (n > 5 && !strcmp(spec + n - 5, ".gguf")) {
        fprintf(note, "no tokenizer files written: the run's tokenizer is the GGUF file %s; transformers "
                      "reads it from there (AutoTokenizer.from_pretrained(dir, gguf_file=...))\n", spec);
        rc = 0;
    } else {
        // A tokenizer.json, or a model directory holding one (tok_load's rule).
        char src[1200], cfg_src[1200];
        struct stat sb;
        bool is_dir = stat(spec, &sb) == 0 && S_ISDIR(sb.st_mode);
        snprintf(src, sizeof src, is_dir ? "%s/tokenizer.json" : "%s", spec);
        snprintf(cfg_src, sizeof cfg_src, "%s", src);
        char *slash = strrchr(cfg_src, '/');
        snprintf(slash ? slash + 1 : cfg_src, sizeof cfg_src - (size_t)(slash ? slash + 1 - cfg_src : 0),
                 "tokenizer_config.json");
        size_t len = 0, clen = 0;
        char *text = slurp(src, &len), *ctext = slurp(cfg_src, &clen);
        char dst[1200];
        snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
        if (!text) rc = errmsg(err, errlen, "%s: cannot read", src);
        else if (fsutil_write_atomic(dst, text, len, err, errlen) != 0) rc = -1;
        else if (ctext) {
            snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
            if (fsutil_write_atomic(dst, ctext, clen, err, errlen) != 0) rc = -1;
        } else if (write_json(dir, "tokenizer_config.json", tokenizer_config(t, max_len), err, errlen) != 0) {
            rc = -1;
        }
        free(text);
        free(ctext);
    }
    tok_free(t);
    free(spec);
    return rc;
}
