// gguf_writer: a minimal GGUF v3 writer for the tests (tests/unit/test_gguf*.c):
// metadata of every value type, arrays, tensors with their data padded to
// the alignment. Written here, not in stretch, because stretch only reads
// GGUF. Independent of data/gguf.c (its own layout code) so a round trip
// checks the reader against the format, not against itself.
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *b;
    size_t n, cap;
} gw_buf;

typedef struct {
    gw_buf kv, info, data;
    uint64_t n_kv, n_tensors;
    uint64_t align;  // for the data section (and general.alignment if != 32)
} gw;

static inline void gw_put(gw_buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->b = realloc(b->b, b->cap);
    }
    if (n) memcpy(b->b + b->n, p, n);
    b->n += n;
}
static inline void gw_u32(gw_buf *b, uint32_t v) { gw_put(b, &v, 4); }
static inline void gw_u64(gw_buf *b, uint64_t v) { gw_put(b, &v, 8); }
static inline void gw_str(gw_buf *b, const char *s) {
    gw_u64(b, strlen(s));
    gw_put(b, s, strlen(s));
}

static inline void gw_init(gw *g) {
    memset(g, 0, sizeof *g);
    g->align = 32;
}

// A scalar of type (GGUF_TYPE_*) with its raw little-endian bytes.
static inline void gw_kv_raw(gw *g, const char *key, uint32_t type, const void *v, size_t n) {
    gw_str(&g->kv, key);
    gw_u32(&g->kv, type);
    gw_put(&g->kv, v, n);
    g->n_kv++;
}
static inline void gw_kv_u32(gw *g, const char *key, uint32_t v) { gw_kv_raw(g, key, 4, &v, 4); }
static inline void gw_kv_f32(gw *g, const char *key, float v) { gw_kv_raw(g, key, 6, &v, 4); }
static inline void gw_kv_str(gw *g, const char *key, const char *s) {
    gw_str(&g->kv, key);
    gw_u32(&g->kv, 8);
    gw_str(&g->kv, s);
    g->n_kv++;
}
// An array of n scalars of elem type, es bytes each.
static inline void gw_kv_array(gw *g, const char *key, uint32_t elem, const void *v, uint64_t n, size_t es) {
    gw_str(&g->kv, key);
    gw_u32(&g->kv, 9);
    gw_u32(&g->kv, elem);
    gw_u64(&g->kv, n);
    gw_put(&g->kv, v, (size_t)n * es);
    g->n_kv++;
}
static inline void gw_kv_strs(gw *g, const char *key, const char *const *s, uint64_t n) {
    gw_str(&g->kv, key);
    gw_u32(&g->kv, 9);
    gw_u32(&g->kv, 8);
    gw_u64(&g->kv, n);
    for (uint64_t i = 0; i < n; i++) gw_str(&g->kv, s[i]);
    g->n_kv++;
}

// A tensor: ne[0] fastest; data of nbytes, placed at the next aligned offset.
static inline void gw_tensor(gw *g, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type,
                             const void *data, size_t nbytes) {
    static const uint8_t zero[256];
    while (g->data.n % g->align) gw_put(&g->data, zero, 1);
    gw_str(&g->info, name);
    gw_u32(&g->info, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gw_u64(&g->info, (uint64_t)ne[d]);
    gw_u32(&g->info, type);
    gw_u64(&g->info, g->data.n);
    gw_put(&g->data, data, nbytes);
    g->n_tensors++;
}

// The file; *len set; frees the builder. Caller frees the result.
static inline uint8_t *gw_finish(gw *g, size_t *len) {
    gw_buf out = {0};
    gw_put(&out, "GGUF", 4);
    gw_u32(&out, 3);
    gw_u64(&out, g->n_tensors);
    gw_u64(&out, g->n_kv);
    gw_put(&out, g->kv.b, g->kv.n);
    gw_put(&out, g->info.b, g->info.n);
    static const uint8_t zero[1];
    while (out.n % g->align) gw_put(&out, zero, 1);
    gw_put(&out, g->data.b, g->data.n);
    free(g->kv.b);
    free(g->info.b);
    free(g->data.b);
    *len = out.n;
    return out.b;
}

static inline int gw_save(const char *path, const uint8_t *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}
