// gguf_write: GGUF v3 writer. See gguf_write.h.
#include "gguf_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"

// A growable byte buffer.
typedef struct {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = xrealloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(wbuf *b, const char *s, uint64_t len) {
    put_u64(b, len);
    put(b, s, len);
}

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint8_t *data;
    uint64_t nbytes, offset;
} wtensor;

struct gguf_writer {
    wbuf kv;  // the encoded key/value pairs
    int64_t n_kv;
    char **keys;
    wtensor *t;
    int64_t n_t;
    bool dup;  // a key or tensor was added twice
    char dup_name[128];
};

gguf_writer *gguf_writer_new(void) { return xcalloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name), free(w->t[i].data);
    free(w->keys);
    free(w->t);
    free(w->kv.p);
    free(w);
}

bool gguf_w_has(const gguf_writer *w, const char *key) {
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return true;
    return false;
}

// Starts a key: its name and value type.
static void key(gguf_writer *w, const char *k, gguf_type type) {
    if (gguf_w_has(w, k) && !w->dup) w->dup = true, snprintf(w->dup_name, sizeof w->dup_name, "%s", k);
    w->keys = xrealloc(w->keys, sizeof(char *) * (size_t)(w->n_kv + 1));
    w->keys[w->n_kv++] = xstrdup(k);
    put_str(&w->kv, k, strlen(k));
    put_u32(&w->kv, (uint32_t)type);
}

void gguf_w_u32(gguf_writer *w, const char *k, uint32_t v) { key(w, k, GGUF_TYPE_UINT32), put_u32(&w->kv, v); }
void gguf_w_i32(gguf_writer *w, const char *k, int32_t v) { key(w, k, GGUF_TYPE_INT32), put(&w->kv, &v, 4); }
void gguf_w_f32(gguf_writer *w, const char *k, float v) { key(w, k, GGUF_TYPE_FLOAT32), put(&w->kv, &v, 4); }
void gguf_w_bool(gguf_writer *w, const char *k, bool v) {
    uint8_t b = v;
    key(w, k, GGUF_TYPE_BOOL), put(&w->kv, &b, 1);
}
void gguf_w_str(gguf_writer *w, const char *k, const char *v) { key(w, k, GGUF_TYPE_STRING), put_str(&w->kv, v, strlen(v)); }

static void array(gguf_writer *w, const char *k, gguf_type elem, int64_t n) {
    key(w, k, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, (uint32_t)elem);
    put_u64(&w->kv, (uint64_t)n);
}
void gguf_w_str_array(gguf_writer *w, const char *k, const char *const *v, int64_t n) {
    array(w, k, GGUF_TYPE_STRING, n);
    for (int64_t i = 0; i < n; i++) put_str(&w->kv, v[i], strlen(v[i]));
}
void gguf_w_i32_array(gguf_writer *w, const char *k, const int32_t *v, int64_t n) {
    array(w, k, GGUF_TYPE_INT32, n);
    put(&w->kv, v, 4 * (size_t)n);
}
void gguf_w_f32_array(gguf_writer *w, const char *k, const float *v, int64_t n) {
    array(w, k, GGUF_TYPE_FLOAT32, n);
    put(&w->kv, v, 4 * (size_t)n);
}

// Bytes of one value of a fixed-size type (0 for STRING and ARRAY).
static size_t scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

// The reader has validated the file: every length below lies inside it.
void gguf_w_copy_kv(gguf_writer *w, const gguf_file *f, const gguf_kv *kv) {
    key(w, kv->key, kv->type);
    const uint8_t *p = f->buf + kv->offset;
    if (kv->type == GGUF_TYPE_STRING) {
        put_str(&w->kv, kv->str, kv->str_len);
    } else if (kv->type != GGUF_TYPE_ARRAY) {
        put(&w->kv, p, scalar_size(kv->type));
    } else {
        put_u32(&w->kv, (uint32_t)kv->elem);
        put_u64(&w->kv, kv->n);
        size_t len = 0;
        if (kv->elem == GGUF_TYPE_STRING) {
            for (uint64_t i = 0; i < kv->n; i++) {
                uint64_t sl;
                memcpy(&sl, p + len, 8);
                len += 8 + sl;
            }
        } else {
            len = scalar_size(kv->elem) * kv->n;
        }
        put(&w->kv, p, len);
    }
}

void gguf_w_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *ne, uint32_t type,
                   const void *data, uint64_t nbytes) {
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name) && !w->dup) w->dup = true, snprintf(w->dup_name, sizeof w->dup_name, "%s", name);
    w->t = xrealloc(w->t, sizeof(wtensor) * (size_t)(w->n_t + 1));
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->data = xmalloc(nbytes ? nbytes : 1);
    memcpy(t->data, data, nbytes);
    t->nbytes = nbytes;
}

static uint64_t align_up(uint64_t x) { return (x + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT; }

int gguf_writer_save(gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (w->dup) return errmsg(err, errlen, "%s: '%s' was added twice", path, w->dup_name);
    wbuf h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)w->n_t);
    put_u64(&h, (uint64_t)w->n_kv);
    put(&h, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        t->offset = off;
        put_u64(&h, off);
        off = align_up(off + t->nbytes);
    }
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];
    put(&h, zeros, align_up(h.n) - h.n);
    fsutil_atomic a;
    if (fsutil_atomic_open(&a, path, err, errlen)) {
        free(h.p);
        return -1;
    }
    fwrite(h.p, 1, h.n, a.f);
    free(h.p);
    for (int64_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        fwrite(t->data, 1, t->nbytes, a.f);
        fwrite(zeros, 1, align_up(t->nbytes) - t->nbytes, a.f);
    }
    return fsutil_atomic_commit(&a, err, errlen);
}
