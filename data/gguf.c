// gguf: GGUF file reader. See gguf.h.
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "die.h"
#include "errmsg.h"

// ---------------------------------------------------------------------------
// Types

typedef struct {
    uint32_t id;
    const char *name;
    int64_t block, bytes;
} ggml_type_info;

// From ggml (gguf-py's GGML_QUANT_SIZES): every id a file may hold.
static const ggml_type_info GGML_TYPES[] = {
    {0, "F32", 1, 4},        {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},     {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 40},
    {10, "Q2_K", 256, 84},   {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},  {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},  {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},        {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},        {28, "F64", 1, 8},       {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},  {39, "MXFP4", 32, 17},
};

static const ggml_type_info *ggml_type_find(uint32_t type) {
    for (size_t i = 0; i < sizeof GGML_TYPES / sizeof GGML_TYPES[0]; i++)
        if (GGML_TYPES[i].id == type) return &GGML_TYPES[i];
    return NULL;
}

bool gguf_ggml_type_size(uint32_t type, int64_t *block, int64_t *bytes) {
    const ggml_type_info *t = ggml_type_find(type);
    if (!t) return false;
    *block = t->block;
    *bytes = t->bytes;
    return true;
}

const char *gguf_ggml_type_name(uint32_t type) {
    const ggml_type_info *t = ggml_type_find(type);
    return t ? t->name : "unknown";
}

const char *gguf_type_name(gguf_type type) {
    static const char *names[GGUF_TYPE_COUNT] = {"uint8", "int8", "uint16", "int16", "uint32",
                                                 "int32", "float32", "bool", "string", "array",
                                                 "uint64", "int64", "float64"};
    return (unsigned)type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

// Bytes of one scalar value; 0 for STRING and ARRAY.
static size_t scalar_size(gguf_type t) {
    switch (t) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
        case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
        case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
        case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
        default: return 0;
    }
}

// ---------------------------------------------------------------------------
// Cursor: every read checks the bytes left first.

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
    const char *name;
    char *err;
    size_t errlen;
} cursor;

static int fail(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(cursor *c, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return errmsg(c->err, c->errlen, "%s: %s", c->name, msg);
}

static int take(cursor *c, void *out, size_t n, const char *what) {
    memset(out, 0, n);  // defined even on failure (and -Wmaybe-uninitialized is quiet)
    if (c->len - c->pos < n)
        return fail(c, "truncated file: %s at offset %zu needs %zu bytes, %zu left", what, c->pos, n,
                    c->len - c->pos);
    memcpy(out, c->buf + c->pos, n);  // GGUF is little-endian, as every host stretch runs on
    c->pos += n;
    return 0;
}

static int take_u32(cursor *c, uint32_t *v, const char *what) { return take(c, v, 4, what); }
static int take_u64(cursor *c, uint64_t *v, const char *what) { return take(c, v, 8, what); }

// A string; with out, a NUL-terminated copy; without, only skipped.
static int take_str(cursor *c, char **out, uint64_t *len_out, const char *what) {
    uint64_t n = 0;
    if (take_u64(c, &n, what)) return -1;
    if (n > c->len - c->pos)
        return fail(c, "%s at offset %zu: string length %llu runs past the end of the file (%zu bytes left)",
                    what, c->pos - 8, (unsigned long long)n, c->len - c->pos);
    if (out) {
        *out = xmalloc((size_t)n + 1);
        memcpy(*out, c->buf + c->pos, (size_t)n);
        (*out)[n] = 0;
    }
    if (len_out) *len_out = n;
    c->pos += (size_t)n;
    return 0;
}

// ---------------------------------------------------------------------------
// Metadata

static void decode_scalar(gguf_kv *kv, const uint8_t *p) {
    switch (kv->type) {
        case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: kv->v.u = p[0]; break;
        case GGUF_TYPE_INT8: kv->v.i = (int8_t)p[0]; break;
        case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u = x; break; }
        case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i = x; break; }
        case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u = x; break; }
        case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i = x; break; }
        case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f = x; break; }
        case GGUF_TYPE_UINT64: memcpy(&kv->v.u, p, 8); break;
        case GGUF_TYPE_INT64: memcpy(&kv->v.i, p, 8); break;
        case GGUF_TYPE_FLOAT64: memcpy(&kv->v.f, p, 8); break;
        default: break;
    }
}

static int read_value(cursor *c, gguf_kv *kv) {
    uint32_t type;
    if (take_u32(c, &type, "value type")) return -1;
    if (type >= GGUF_TYPE_COUNT)
        return fail(c, "key %s: unknown value type %u at offset %zu", kv->key, type, c->pos - 4);
    kv->type = (gguf_type)type;
    kv->offset = c->pos;
    if (kv->type == GGUF_TYPE_STRING) return take_str(c, &kv->str, &kv->str_len, kv->key);
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t n = scalar_size(kv->type);
        uint8_t tmp[8];
        if (take(c, tmp, n, kv->key)) return -1;
        if (kv->type == GGUF_TYPE_BOOL && tmp[0] > 1)
            return fail(c, "key %s: bool value %u at offset %zu is neither 0 nor 1", kv->key, tmp[0], c->pos - 1);
        decode_scalar(kv, tmp);
        return 0;
    }
    uint32_t elem;
    if (take_u32(c, &elem, kv->key) || take_u64(c, &kv->n, kv->key)) return -1;
    if (elem >= GGUF_TYPE_COUNT || elem == GGUF_TYPE_ARRAY)
        return fail(c, "key %s: array element type %u at offset %zu is not supported", kv->key, elem, c->pos - 12);
    kv->elem = (gguf_type)elem;
    kv->offset = c->pos;
    size_t left = c->len - c->pos;
    if (elem == GGUF_TYPE_STRING) {
        if (kv->n > left / 8)  // every string has at least its 8-byte length
            return fail(c, "key %s: array of %llu strings at offset %zu cannot fit in the %zu bytes left", kv->key,
                        (unsigned long long)kv->n, c->pos, left);
        for (uint64_t i = 0; i < kv->n; i++)
            if (take_str(c, NULL, NULL, kv->key)) return -1;
        return 0;
    }
    size_t es = scalar_size(kv->elem);
    if (kv->n > left / es)
        return fail(c, "key %s: array of %llu %s at offset %zu runs past the end of the file (%zu bytes left)", kv->key,
                    (unsigned long long)kv->n, gguf_type_name(kv->elem), c->pos, left);
    if (kv->elem == GGUF_TYPE_BOOL)
        for (uint64_t i = 0; i < kv->n; i++)
            if (c->buf[c->pos + i] > 1)
                return fail(c, "key %s: bool element %llu is neither 0 nor 1", kv->key, (unsigned long long)i);
    c->pos += (size_t)(kv->n * es);
    return 0;
}

// ---------------------------------------------------------------------------
// Tensor infos

static int read_tensor_info(cursor *c, gguf_tensor *t, int64_t index) {
    size_t at = c->pos;
    if (take_str(c, &t->name, NULL, "tensor name")) return -1;
    if (take_u32(c, &t->n_dims, t->name)) return -1;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return fail(c, "tensor %s (info at offset %zu): %u dimensions (1 to %d allowed)", t->name, at, t->n_dims,
                    GGUF_MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if (take_u64(c, &ne, t->name)) return -1;
        if (ne == 0 || ne > (uint64_t)INT64_MAX / n)
            return fail(c, "tensor %s: dimension %u is %llu (must be > 0, and the element count must fit in 63 bits)",
                        t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        n *= ne;
    }
    t->n_elements = n;
    if (take_u32(c, &t->type, t->name) || take_u64(c, &t->offset, t->name)) return -1;
    int64_t block, bytes;
    if (!gguf_ggml_type_size(t->type, &block, &bytes))
        return fail(c, "tensor %s: unknown ggml type %u", t->name, t->type);
    if (t->ne[0] % block != 0)
        return fail(c, "tensor %s: its row of %lld elements is not a whole number of %s blocks (%lld)", t->name,
                    (long long)t->ne[0], gguf_ggml_type_name(t->type), (long long)block);
    uint64_t blocks = n / (uint64_t)block;
    if (blocks > UINT64_MAX / (uint64_t)bytes) return fail(c, "tensor %s: byte size overflows", t->name);
    t->nbytes = blocks * (uint64_t)bytes;
    (void)index;
    return 0;
}

// ---------------------------------------------------------------------------
// The file

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].str);
    }
    for (int64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    if (f->map) munmap(f->map, f->len);
    free(f->name);
    free(f);
}

// The sizes GGUF gives, the alignment, the data section and tensor bounds.
static int check_layout(gguf_file *f, cursor *c) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *a = gguf_find(f, "general.alignment");
    if (a) {
        if (a->type != GGUF_TYPE_UINT32)
            return fail(c, "key general.alignment: type %s, expected uint32", gguf_type_name(a->type));
        if (a->v.u == 0 || (a->v.u & (a->v.u - 1)) != 0)
            return fail(c, "key general.alignment: %llu is not a power of two", (unsigned long long)a->v.u);
        f->alignment = a->v.u;
    }
    uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
    if (f->n_tensors > 0 && pad > c->len - c->pos)
        return fail(c, "truncated file: the data section (offset %zu + %llu padding) starts past the end (%zu bytes)",
                    c->pos, (unsigned long long)pad, c->len);
    f->data_offset = c->pos + pad;
    uint64_t data_len = f->data_offset <= c->len ? c->len - f->data_offset : 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0)
            return fail(c, "tensor %s: data offset %llu is not a multiple of the alignment %llu", t->name,
                        (unsigned long long)t->offset, (unsigned long long)f->alignment);
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return fail(c, "tensor %s: data [%llu, +%llu) past the end of the file (data section of %llu bytes at "
                        "offset %llu)", t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                        (unsigned long long)data_len, (unsigned long long)f->data_offset);
        t->data = f->buf + f->data_offset + t->offset;
        for (int64_t j = 0; j < i; j++)
            if (!strcmp(f->tensors[j].name, t->name)) return fail(c, "tensor %s appears twice", t->name);
    }
    return 0;
}

static int parse(gguf_file *f, cursor *c) {
    char magic[4];
    if (take(c, magic, 4, "magic")) return -1;
    if (memcmp(magic, "GGUF", 4) != 0) return fail(c, "not a GGUF file (no \"GGUF\" magic at offset 0)");
    if (take_u32(c, &f->version, "version")) return -1;
    if (f->version != 2 && f->version != 3)
        return fail(c, "GGUF version %u is not supported (2 or 3; a big-endian file?)", f->version);
    uint64_t n_tensors, n_kv;
    if (take_u64(c, &n_tensors, "tensor count") || take_u64(c, &n_kv, "metadata count")) return -1;
    // Each key/value takes at least 8 + 4 + 1 bytes, each tensor info 8 + 4 + 8 + 4 + 8.
    size_t left = c->len - c->pos;
    if (n_kv > left / 13)
        return fail(c, "metadata count %llu (offset 16) cannot fit in the %zu bytes left", (unsigned long long)n_kv,
                    left);
    if (n_tensors > left / 32)
        return fail(c, "tensor count %llu (offset 8) cannot fit in the %zu bytes left", (unsigned long long)n_tensors,
                    left);
    f->kv = xcalloc((size_t)n_kv + 1, sizeof(gguf_kv));
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        size_t at = c->pos;
        f->n_kv = (int64_t)i + 1;  // so gguf_close frees what this entry got
        if (take_str(c, &kv->key, NULL, "metadata key")) return -1;
        if (gguf_find(f, kv->key) != kv) return fail(c, "key %s (offset %zu) appears twice", kv->key, at);
        if (read_value(c, kv)) return -1;
    }
    f->tensors = xcalloc((size_t)n_tensors + 1, sizeof(gguf_tensor));
    for (uint64_t i = 0; i < n_tensors; i++) {
        f->n_tensors = (int64_t)i + 1;
        if (read_tensor_info(c, &f->tensors[i], (int64_t)i)) return -1;
    }
    return check_layout(f, c);
}

gguf_file *gguf_parse(const uint8_t *buf, size_t len, const char *name, char *err, size_t errlen) {
    gguf_file *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->buf = buf;
    f->len = len;
    cursor c = {buf, len, 0, f->name, err, errlen};
    if (parse(f, &c) != 0) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        errmsg(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errmsg(err, errlen, "%s: not a regular file", path);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            close(fd);
            errmsg(err, errlen, "%s: cannot map: %s", path, strerror(errno));
            return NULL;
        }
    }
    close(fd);
    static const uint8_t empty[1];
    gguf_file *f = gguf_parse(map ? map : empty, len, path, err, errlen);
    if (!f) {
        if (map) munmap(map, len);
        return NULL;
    }
    f->map = map;
    return f;
}

bool gguf_is_gguf(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    char magic[4];
    bool yes = fread(magic, 1, 4, fp) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(fp);
    return yes;
}

// ---------------------------------------------------------------------------
// Lookup

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    for (int64_t i = 0; i < f->n_kv; i++)
        if (f->kv[i].key && !strcmp(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static bool is_signed(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}
static bool is_integer(gguf_type t) {
    return is_signed(t) || t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_BOOL;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, char *err, size_t errlen) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    if (!is_integer(kv->type))
        return errmsg(err, errlen, "%s: key %s: type %s, expected an integer", f->name, key, gguf_type_name(kv->type));
    if (!is_signed(kv->type) && kv->v.u > (uint64_t)INT64_MAX)
        return errmsg(err, errlen, "%s: key %s: %llu is too large", f->name, key, (unsigned long long)kv->v.u);
    *out = is_signed(kv->type) ? kv->v.i : (int64_t)kv->v.u;
    return 0;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, char *err, size_t errlen) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) {
        *out = kv->v.f;
        return 0;
    }
    int64_t i;
    int rc = gguf_get_int(f, key, &i, err, errlen);
    if (rc == 0) *out = (double)i;
    return rc;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **out, char *err, size_t errlen) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return 1;
    if (kv->type != GGUF_TYPE_STRING)
        return errmsg(err, errlen, "%s: key %s: type %s, expected string", f->name, key, gguf_type_name(kv->type));
    *out = kv->str;
    return 0;
}

static const gguf_kv *find_array(const gguf_file *f, const char *key, int *rc, char *err, size_t errlen) {
    const gguf_kv *kv = gguf_find(f, key);
    *rc = 1;
    if (!kv) return NULL;
    *rc = 0;
    if (kv->type != GGUF_TYPE_ARRAY) {
        *rc = errmsg(err, errlen, "%s: key %s: type %s, expected an array", f->name, key, gguf_type_name(kv->type));
        return NULL;
    }
    return kv;
}

int gguf_get_str_array(const gguf_file *f, const char *key, char ***out, int64_t *n, char *err, size_t errlen) {
    int rc;
    const gguf_kv *kv = find_array(f, key, &rc, err, errlen);
    if (!kv) return rc;
    if (kv->elem != GGUF_TYPE_STRING)
        return errmsg(err, errlen, "%s: key %s: array of %s, expected strings", f->name, key, gguf_type_name(kv->elem));
    char **s = xcalloc((size_t)kv->n + 1, sizeof(char *));
    size_t pos = kv->offset;  // the parser checked every length against the file
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len;
        memcpy(&len, f->buf + pos, 8);
        pos += 8;
        if (memchr(f->buf + pos, 0, (size_t)len)) {
            gguf_free_strs(s, (int64_t)i);
            return errmsg(err, errlen, "%s: key %s: element %llu holds a NUL byte", f->name, key,
                          (unsigned long long)i);
        }
        s[i] = xmalloc((size_t)len + 1);
        memcpy(s[i], f->buf + pos, (size_t)len);
        s[i][len] = 0;
        pos += (size_t)len;
    }
    *out = s;
    *n = (int64_t)kv->n;
    return 0;
}

void gguf_free_strs(char **strs, int64_t n) {
    if (!strs) return;
    for (int64_t i = 0; i < n; i++) free(strs[i]);
    free(strs);
}

int gguf_get_i32_array(const gguf_file *f, const char *key, int32_t **out, int64_t *n, char *err, size_t errlen) {
    int rc;
    const gguf_kv *kv = find_array(f, key, &rc, err, errlen);
    if (!kv) return rc;
    if (!is_integer(kv->elem))
        return errmsg(err, errlen, "%s: key %s: array of %s, expected integers", f->name, key,
                      gguf_type_name(kv->elem));
    size_t es = scalar_size(kv->elem);
    int32_t *v = xmalloc(sizeof(int32_t) * ((size_t)kv->n + 1));
    for (uint64_t i = 0; i < kv->n; i++) {
        gguf_kv tmp = {.type = kv->elem};
        decode_scalar(&tmp, f->buf + kv->offset + i * es);
        int64_t x = is_signed(kv->elem) ? tmp.v.i : (int64_t)tmp.v.u;
        if (x < INT32_MIN || x > INT32_MAX || (!is_signed(kv->elem) && tmp.v.u > INT32_MAX)) {
            free(v);
            return errmsg(err, errlen, "%s: key %s: element %llu does not fit in int32", f->name, key,
                          (unsigned long long)i);
        }
        v[i] = (int32_t)x;
    }
    *out = v;
    *n = (int64_t)kv->n;
    return 0;
}
