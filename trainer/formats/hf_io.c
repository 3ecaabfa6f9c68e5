// hf_io: Hugging Face model directory <-> flat parameters. See hf_io.h.
#include "hf_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "die.h"
#include "hf_config.h"
#include "model.h"
#include "errmsg.h"
#include "fsutil.h"

// Stored rank of a layout entry: vectors are 1-D.
static int tensor_dims(const model_tensor *t, int64_t dims[2]) {
    dims[0] = t->shape[0];
    dims[1] = t->shape[1];
    return t->shape[1] == 1 ? 1 : 2;
}

// ---------------------------------------------------------------------------
// q/k row permutation between the RoPE layouts

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// The rotary dim d of cfg, as the kernels compute it.
static int rotary_dim(const model_config *cfg) {
    rope_config r = cfg->rope;
    r.head_dim = model_config_head_dim(cfg);
    rope_table t;
    rope_table_init(&t, &r, 0);
    return t.rotary_dim;
}

// dst and src: (n_heads * D, C). to_half: dst row h*D + i <- src row h*D + 2i,
// dst row h*D + i + d/2 <- src row h*D + 2i + 1 (i < d/2); else the inverse.
static void permute_rows(float *dst, const float *src, int n_heads, int D, int d, int64_t C, bool to_half) {
    for (int h = 0; h < n_heads; h++) {
        const int64_t base = (int64_t)h * D;
        for (int j = 0; j < D; j++) {
            int half_row = j < d ? (j % 2 == 0 ? j / 2 : j / 2 + d / 2) : j;  // interleaved row j -> half row
            int64_t from = base + (to_half ? j : half_row), to = base + (to_half ? half_row : j);
            memcpy(dst + to * C, src + from * C, sizeof(float) * (size_t)C);
        }
    }
}

static void permute_all(float *params, const model_config *cfg, bool to_half) {
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    const int D = model_config_head_dim(cfg), d = rotary_dim(cfg);
    float *tmp = NULL;
    for (int i = 0; i < n; i++) {
        bool q = ends_with(t[i].name, "self_attn.q_proj.weight"), k = ends_with(t[i].name, "self_attn.k_proj.weight");
        if (!q && !k) continue;
        size_t bytes = sizeof(float) * (size_t)(t[i].shape[0] * t[i].shape[1]);
        tmp = xrealloc(tmp, bytes);
        memcpy(tmp, params + t[i].offset, bytes);
        permute_rows(params + t[i].offset, tmp, q ? cfg->n_heads : cfg->n_kv_heads, D, d, t[i].shape[1], to_half);
    }
    free(tmp);
    free(t);
}

void hf_qk_to_half(float *params, const model_config *cfg) { permute_all(params, cfg, true); }
void hf_qk_to_interleaved(float *params, const model_config *cfg) { permute_all(params, cfg, false); }

// ---------------------------------------------------------------------------
// Loading

// Tensors of the file that the layout has no place for.
static int check_extra(const st_reader *r, const model_tensor *t, int n, const model_config *cfg,
                       const float *params, char *err, size_t errlen) {
    for (int i = 0; i < st_count(r); i++) {
        const st_tensor *s = st_tensor_at(r, i);
        bool known = false;
        for (int j = 0; j < n && !known; j++) known = !strcmp(s->name, t[j].name);
        if (known || ends_with(s->name, ".rotary_emb.inv_freq")) continue;  // a buffer old exports saved
        if (cfg->tie_embeddings && !strcmp(s->name, "lm_head.weight")) {
            // Some exports save the tied head too: accept it when it is the embedding.
            int64_t dims[2] = {cfg->vocab_size, cfg->dim};
            float *head = xmalloc(sizeof(float) * (size_t)(dims[0] * dims[1]));
            int rc = st_read_f32(head, r, s->name, 2, dims, err, errlen);
            if (rc == 0 && memcmp(head, params, sizeof(float) * (size_t)(dims[0] * dims[1])) != 0)
                rc = errmsg(err, errlen, "%s: tensor lm_head.weight differs from model.embed_tokens.weight, but "
                          "config.json says tie_word_embeddings", s->file);
            free(head);
            if (rc) return -1;
            continue;
        }
        return errmsg(err, errlen, "%s: tensor %s is not part of a Llama model with this config.json", s->file, s->name);
    }
    return 0;
}

int hf_load(model_config *cfg, float **params, const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    model_config c;
    if (hf_config_read(&c, path, err, errlen) != 0) return -1;
    st_reader *r = st_open(dir, err, errlen);
    if (!r) return -1;
    int n;
    int64_t total;
    model_tensor *t = model_param_layout(&c, &n, &total);
    float *p = xmalloc(sizeof(float) * (size_t)total);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t dims[2];
        int rank = tensor_dims(&t[i], dims);
        rc = st_read_f32(p + t[i].offset, r, t[i].name, rank, dims, err, errlen);
    }
    if (rc == 0) rc = check_extra(r, t, n, &c, p, err, errlen);
    free(t);
    st_close(r);
    if (rc) {
        free(p);
        return -1;
    }
    *cfg = c;
    *params = p;
    return 0;
}

// ---------------------------------------------------------------------------
// Saving

// Writes text to dir/name atomically.
static int write_text(const char *dir, const char *name, const char *text, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return fsutil_write_atomic(path, text, strlen(text), err, errlen);
}

int hf_save(const char *dir, const model_config *cfg, const float *params, st_dtype dtype, int flags,
            FILE *warn, char *err, size_t errlen) {
    CHECK(dtype == ST_F32 || dtype == ST_BF16);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return errmsg(err, errlen, "%s: cannot create (%s)", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return errmsg(err, errlen, "%s: not a directory", dir);

    int n;
    int64_t total;
    model_tensor *t = model_param_layout(cfg, &n, &total);
    const bool permute = cfg->rope_layout == ROPE_LAYOUT_INTERLEAVED;
    const int D = model_config_head_dim(cfg), d = rotary_dim(cfg);
    float **copies = xcalloc((size_t)n, sizeof *copies);  // permuted q/k (interleaved models)
    st_writer *w = st_writer_new();
    for (int i = 0; i < n; i++) {
        int64_t dims[2];
        int rank = tensor_dims(&t[i], dims);
        const float *src = params + t[i].offset;
        bool q = ends_with(t[i].name, "self_attn.q_proj.weight"), k = ends_with(t[i].name, "self_attn.k_proj.weight");
        if (permute && (q || k)) {
            copies[i] = xmalloc(sizeof(float) * (size_t)(dims[0] * dims[1]));
            permute_rows(copies[i], src, q ? cfg->n_heads : cfg->n_kv_heads, D, d, dims[1], true);
            src = copies[i];
        }
        st_writer_add(w, t[i].name, dtype, src, rank, dims);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = st_write(w, path, err, errlen);
    st_writer_free(w);
    for (int i = 0; i < n; i++) free(copies[i]);
    free(copies);
    free(t);
    if (rc) return -1;

    model_config out = *cfg;
    out.rope_layout = ROPE_LAYOUT_HALF;
    char *json = hf_config_to_json(&out, dtype == ST_BF16 ? "bfloat16" : "float32", flags, warn);
    rc = write_text(dir, "config.json", json, err, errlen);
    free(json);
    if (rc == 0) rc = write_text(dir, "generation_config.json", "{\n  \"_from_model_config\": true\n}\n", err, errlen);
    if (rc == 0 && fsutil_fsync_path(dir, true) != 0) rc = errmsg(err, errlen, "%s: cannot fsync (%s)", dir, strerror(errno));
    return rc;
}
