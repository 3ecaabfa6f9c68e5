// safetensors: mmap'd reader with full header validation, and an atomic
// writer. See safetensors.h for the format.
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"

#define MAX_HEADER_BYTES (100 << 20)  // the limit of the reference implementation
#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors: little-endian hosts only");

// ---------------------------------------------------------------------------
// dtypes

static const struct {
    const char *name;
    st_dtype dtype;
    int size;
} dtypes[] = {
    {"F32", ST_F32, 4},       {"F16", ST_F16, 2},          {"BF16", ST_BF16, 2},
    {"F64", ST_F64, 8},       {"I64", ST_I64, 8},          {"I32", ST_I32, 4},
    {"I16", ST_I16, 2},       {"I8", ST_I8, 1},            {"U8", ST_U8, 1},
    {"BOOL", ST_BOOL, 1},     {"U16", ST_OTHER, 2},        {"U32", ST_OTHER, 4},
    {"U64", ST_OTHER, 8},     {"F8_E4M3", ST_OTHER, 1},    {"F8_E5M2", ST_OTHER, 1},
    {"F8_E8M0", ST_OTHER, 1}, {"F8_E4M3FNUZ", ST_OTHER, 1}, {"F8_E5M2FNUZ", ST_OTHER, 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *st_dtype_name(st_dtype dtype) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype) return dtype == ST_OTHER ? "other" : dtypes[i].name;
    return "unknown";
}

static int dtype_size(st_dtype dtype) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype) return dtypes[i].size;
    return 0;
}

// ---------------------------------------------------------------------------
// 16-bit float conversions

uint16_t st_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even (overflow gives inf)
    return (uint16_t)(u >> 16);
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

uint16_t st_f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;    // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00u;   // >= 65520 rounds to inf
    if (a < 0x38800000u) {                          // below 2^-14: subnormal or zero
        int e = (int)(a >> 23);
        if (e < 102) return sign;                   // below 2^-25
        uint32_t m = (a & 0x7fffffu) | 0x800000u;   // value = m * 2^(e - 150)
        int shift = 126 - e;                        // value / 2^-24 = m >> shift; 14..24
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = (a >> 13) - (112u << 10);  // rebias the exponent 127 -> 15
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        float x = (float)m * 0x1p-24f;  // zero or subnormal, exact
        return sign ? -x : x;
    }
    if (e == 31)
        u = sign | 0x7f800000u | (m << 13);
    else
        u = sign | ((e + 112u) << 23) | (m << 13);
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// ---------------------------------------------------------------------------
// Reading

typedef struct {
    char *path;
    void *map;
    size_t size;
} mapped_file;

struct st_reader {
    mapped_file *files;
    int n_files;
    st_tensor *t;  // sorted by name
    int n;
    int64_t *begin;  // scratch during parsing: data offset of t[i] (parallel to t)
};

static void unmap(mapped_file *f) {
    if (f->map) munmap(f->map, f->size);
    free(f->path);
}

void st_close(st_reader *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) free((char *)r->t[i].name);
    for (int i = 0; i < r->n_files; i++) unmap(&r->files[i]);
    free(r->files);
    free(r->t);
    free(r->begin);
    free(r);
}

// A non-negative integer of a JSON number (exact in a double below 2^53).
static bool json_count(const cJSON *x, int64_t *out) {
    if (!cJSON_IsNumber(x)) return false;
    double d = x->valuedouble;
    if (!(d >= 0.0 && d < 9007199254740992.0) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
}

static int map_file(mapped_file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errmsg(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return errmsg(err, errlen, "%s: cannot stat (%s)", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return errmsg(err, errlen, "%s: not a regular file", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        close(fd);
        return errmsg(err, errlen, "%s: too short for a safetensors file (%zu bytes)", path, f->size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return errmsg(err, errlen, "%s: cannot mmap (%s)", path, strerror(errno));
    }
    f->path = xstrdup(path);
    return 0;
}

static void push_tensor(st_reader *r, int *cap, const st_tensor *t, int64_t begin) {
    if (r->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        r->t = xrealloc(r->t, sizeof *r->t * (size_t)*cap);
        r->begin = xrealloc(r->begin, sizeof *r->begin * (size_t)*cap);
    }
    r->begin[r->n] = begin;
    r->t[r->n++] = *t;
}

// One header entry into t; begin/end are its data offsets.
static int parse_entry(st_tensor *t, int64_t *begin, int64_t *end, const cJSON *e,
                       const char *path, char *err, size_t errlen) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return errmsg(err, errlen, "%s: tensor %s: header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return errmsg(err, errlen, "%s: tensor %s: missing or non-string \"dtype\"", path, name);
    int size = 0;
    for (int i = 0; i < N_DTYPES && size == 0; i++) {
        if (!strcmp(dt->valuestring, dtypes[i].name)) {
            t->dtype = dtypes[i].dtype;
            size = dtypes[i].size;
        }
    }
    if (size == 0) return errmsg(err, errlen, "%s: tensor %s: unknown dtype \"%.20s\"", path, name, dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_RANK)
        return errmsg(err, errlen, "%s: tensor %s: \"shape\" must be a list of at most %d sizes", path, name, ST_MAX_RANK);
    t->rank = 0;
    t->n_elements = 1;
    const cJSON *s;
    cJSON_ArrayForEach(s, shape) {
        int64_t v;
        if (!json_count(s, &v)) return errmsg(err, errlen, "%s: tensor %s: shape entries must be integers >= 0", path, name);
        t->shape[t->rank++] = v;
        if (v > 0 && t->n_elements > INT64_MAX / 8 / v)
            return errmsg(err, errlen, "%s: tensor %s: shape is too large", path, name);
        t->n_elements *= v;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_count(cJSON_GetArrayItem(offs, 0), begin) || !json_count(cJSON_GetArrayItem(offs, 1), end) ||
        *end < *begin)
        return errmsg(err, errlen, "%s: tensor %s: \"data_offsets\" must be [begin, end] with 0 <= begin <= end", path, name);
    t->n_bytes = t->n_elements * size;
    if (*end - *begin != t->n_bytes)
        return errmsg(err, errlen, "%s: tensor %s: data_offsets [%lld, %lld] hold %lld bytes, its dtype and shape need %lld",
                    path, name, (long long)*begin, (long long)*end, (long long)(*end - *begin), (long long)t->n_bytes);
    return 0;
}

// Spans {begin, end, index} by begin, then end (empty tensors first).
static int cmp_span(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

// The tensors [first, r->n) of one file must tile its data region exactly.
static int check_tiling(const st_reader *r, int first, int64_t data_size, const char *path, char *err,
                        size_t errlen) {
    int n = r->n - first;
    int64_t (*span)[3] = xmalloc(sizeof *span * (size_t)(n > 0 ? n : 1));  // begin, end, index
    for (int i = 0; i < n; i++) {
        span[i][0] = r->begin[first + i];
        span[i][1] = r->begin[first + i] + r->t[first + i].n_bytes;
        span[i][2] = first + i;
    }
    if (n > 0) qsort(span, (size_t)n, sizeof *span, cmp_span);
    int64_t at = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *name = r->t[span[i][2]].name;
        if (span[i][1] > data_size)
            rc = errmsg(err, errlen, "%s: tensor %s: data_offsets [%lld, %lld] reach beyond the end of the file "
                      "(%lld data bytes)", path, name, (long long)span[i][0], (long long)span[i][1], (long long)data_size);
        else if (span[i][0] < at)
            rc = errmsg(err, errlen, "%s: tensor %s: data_offsets [%lld, %lld] overlap another tensor", path, name,
                      (long long)span[i][0], (long long)span[i][1]);
        else if (span[i][0] > at)
            rc = errmsg(err, errlen, "%s: tensor %s: bytes [%lld, %lld) before it belong to no tensor", path, name,
                      (long long)at, (long long)span[i][0]);
        at = span[i][1];
    }
    free(span);
    if (rc == 0 && at != data_size)
        rc = errmsg(err, errlen, "%s: the last %lld bytes belong to no tensor (truncated header or file?)", path,
                  (long long)(data_size - at));
    return rc;
}

// Parses the header of an already mapped file and appends its tensors.
static int parse_file(st_reader *r, int *cap, const mapped_file *f, char *err, size_t errlen) {
    const unsigned char *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > f->size - 8)
        return errmsg(err, errlen, "%s: header length %llu exceeds the file size (%zu bytes)", f->path,
                    (unsigned long long)hlen, f->size);
    if (hlen > MAX_HEADER_BYTES)
        return errmsg(err, errlen, "%s: header length %llu exceeds the limit of %d bytes", f->path,
                    (unsigned long long)hlen, MAX_HEADER_BYTES);
    const char *h = (const char *)p + 8, *end = NULL;
    if (hlen < 2 || h[0] != '{') return errmsg(err, errlen, "%s: header does not start with '{' (not a safetensors file?)", f->path);
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        long at = end ? (long)(end - h) : (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - h : 0);
        cJSON_Delete(root);
        return errmsg(err, errlen, "%s: header is not a valid JSON object (near byte %ld of %llu)", f->path, at,
                    (unsigned long long)hlen);
    }
    for (const char *q = end; q < h + hlen; q++) {
        if (*q != ' ' && *q != '\n' && *q != '\t' && *q != '\r') {
            cJSON_Delete(root);
            return errmsg(err, errlen, "%s: unexpected bytes after the header JSON (at byte %ld)", f->path, (long)(q - h));
        }
    }
    int64_t data_size = (int64_t)(f->size - 8 - hlen);
    const unsigned char *data = p + 8 + hlen;
    int first = r->n, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) rc = errmsg(err, errlen, "%s: \"__metadata__\" is not an object", f->path);
            if (rc) break;
            continue;
        }
        st_tensor t;
        memset(&t, 0, sizeof t);
        int64_t b = 0, en = 0;
        rc = parse_entry(&t, &b, &en, e, f->path, err, errlen);
        if (rc) break;
        t.name = xstrdup(e->string);
        t.file = f->path;
        t.data = en <= data_size ? data + b : NULL;  // checked by check_tiling
        push_tensor(r, cap, &t, b);
    }
    cJSON_Delete(root);
    if (rc == 0) rc = check_tiling(r, first, data_size, f->path, err, errlen);
    return rc;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

// Sorts the tensors by name and rejects a name held twice.
static int sort_and_check_unique(st_reader *r, char *err, size_t errlen) {
    if (r->n > 0) qsort(r->t, (size_t)r->n, sizeof *r->t, cmp_tensor_name);
    for (int i = 1; i < r->n; i++)
        if (!strcmp(r->t[i - 1].name, r->t[i].name))
            return errmsg(err, errlen, "tensor %s appears twice (%s, %s)", r->t[i].name, r->t[i - 1].file, r->t[i].file);
    return 0;
}

static int add_file(st_reader *r, int *cap, const char *path, char *err, size_t errlen) {
    r->files = xrealloc(r->files, sizeof *r->files * (size_t)(r->n_files + 1));
    mapped_file *f = &r->files[r->n_files];
    if (map_file(f, path, err, errlen) != 0) return -1;
    r->n_files++;
    return parse_file(r, cap, f, err, errlen);
}

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *read_text(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errmsg(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    char *buf = xmalloc(cap);
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) buf = xrealloc(buf, cap *= 2);
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errmsg(err, errlen, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

// model.safetensors.index.json: opens every shard it names and checks that
// each listed tensor is in the shard the index says.
static int open_index(st_reader *r, int *cap, const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, INDEX_NAME);
    char *text = read_text(path, err, errlen);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return errmsg(err, errlen, "%s: not JSON with a \"weight_map\" object", path);
    }
    int rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {  // open each shard once, in order of first mention
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
            !strcmp(e->valuestring, "..")) {
            rc = errmsg(err, errlen, "%s: weight_map: tensor %s: the shard must be a file name in the same directory",
                      path, e->string);
            break;
        }
        char shard[4096];
        snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
        bool seen = false;
        for (int i = 0; i < r->n_files && !seen; i++) seen = !strcmp(r->files[i].path, shard);
        if (!seen && (rc = add_file(r, cap, shard, err, errlen)) != 0) break;
    }
    if (rc == 0 && (rc = sort_and_check_unique(r, err, errlen)) == 0) {
        cJSON_ArrayForEach(e, map) {
            char shard[4096];
            snprintf(shard, sizeof shard, "%s/%s", dir, e->valuestring);
            const st_tensor *t = st_find(r, e->string);
            if (!t) {
                rc = errmsg(err, errlen, "%s: tensor %s: listed in the index but missing from %s", path, e->string, shard);
                break;
            }
            if (strcmp(t->file, shard)) {
                rc = errmsg(err, errlen, "%s: tensor %s: the index says %s, it is in %s", path, e->string, shard, t->file);
                break;
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}

st_reader *st_open(const char *path, char *err, size_t errlen) {
    st_reader *r = xcalloc(1, sizeof *r);
    int cap = 0, rc;
    if (is_dir(path)) {
        char single[4096];
        snprintf(single, sizeof single, "%s/%s", path, SINGLE_NAME);
        char index[4096];
        snprintf(index, sizeof index, "%s/%s", path, INDEX_NAME);
        if (is_file(single))
            rc = add_file(r, &cap, single, err, errlen);
        else if (is_file(index))
            rc = open_index(r, &cap, path, err, errlen);
        else
            rc = errmsg(err, errlen, "%s: no %s or %s in this directory", path, SINGLE_NAME, INDEX_NAME);
    } else {
        rc = add_file(r, &cap, path, err, errlen);
    }
    if (rc == 0) rc = sort_and_check_unique(r, err, errlen);
    free(r->begin);  // offsets are only needed while checking the tiling
    r->begin = NULL;
    if (rc != 0) {
        st_close(r);
        return NULL;
    }
    return r;
}

int st_count(const st_reader *r) { return r->n; }

const st_tensor *st_tensor_at(const st_reader *r, int i) {
    CHECK(i >= 0 && i < r->n);
    return &r->t[i];
}

const st_tensor *st_find(const st_reader *r, const char *name) {
    st_tensor key;
    key.name = name;
    return r->n > 0 ? bsearch(&key, r->t, (size_t)r->n, sizeof *r->t, cmp_tensor_name) : NULL;
}

static void shape_text(char *buf, size_t len, int rank, const int64_t *shape) {
    size_t at = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

int st_read_f32(float *out, const st_reader *r, const char *name, int rank, const int64_t *shape,
                char *err, size_t errlen) {
    const st_tensor *t = st_find(r, name);
    if (!t) {
        const char *where = r->n_files == 1 ? r->files[0].path : "the safetensors shards";
        return errmsg(err, errlen, "%s: tensor %s is missing", where, name);
    }
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[160], got[160];
        shape_text(want, sizeof want, rank, shape);
        shape_text(got, sizeof got, t->rank, t->shape);
        return errmsg(err, errlen, "%s: tensor %s has shape %s, expected %s", t->file, name, got, want);
    }
    const unsigned char *p = t->data;
    int64_t n = t->n_elements;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, p, sizeof(float) * (size_t)n);
        break;
    case ST_BF16:
    case ST_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        break;
    default:
        return errmsg(err, errlen, "%s: tensor %s has dtype %s; stretch reads F32, F16 and BF16", t->file, name,
                    t->dtype_name);
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Writing

typedef struct {
    char *name;
    st_dtype dtype;
    const float *data;
    int rank;
    int64_t shape[ST_MAX_RANK];
    int64_t n_elements;
} pending;

struct st_writer {
    pending *t;
    int n, cap;
};

st_writer *st_writer_new(void) { return xcalloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    free(w);
}

void st_writer_add(st_writer *w, const char *name, st_dtype dtype, const float *data, int rank,
                   const int64_t *shape) {
    CHECK(dtype == ST_F32 || dtype == ST_BF16 || dtype == ST_F16);
    CHECK(rank >= 0 && rank <= ST_MAX_RANK);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->t = xrealloc(w->t, sizeof *w->t * (size_t)w->cap);
    }
    pending *p = &w->t[w->n++];
    p->name = xstrdup(name);
    p->dtype = dtype;
    p->data = data;
    p->rank = rank;
    p->n_elements = 1;
    for (int i = 0; i < rank; i++) {
        CHECK(shape[i] >= 0);
        p->shape[i] = shape[i];
        p->n_elements *= shape[i];
    }
}

static cJSON *json_int(int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

// The header JSON, padded with spaces to a multiple of 8 bytes; *len set.
static char *build_header(const st_writer *w, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    int64_t at = 0;
    for (int i = 0; i < w->n; i++) {
        const pending *p = &w->t[i];
        cJSON *e = cJSON_AddObjectToObject(root, p->name);
        cJSON_AddStringToObject(e, "dtype", st_dtype_name(p->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < p->rank; d++) cJSON_AddItemToArray(shape, json_int(p->shape[d]));
        int64_t bytes = p->n_elements * dtype_size(p->dtype);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, json_int(at));
        cJSON_AddItemToArray(offs, json_int(at + bytes));
        at += bytes;
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    CHECK(text != NULL);
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *out = xmalloc(padded + 1);
    memcpy(out, text, n);
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    cJSON_free(text);
    *len = padded;
    return out;
}

static int write_tensor(FILE *f, const pending *p) {
    if (p->dtype == ST_F32)
        return fwrite(p->data, sizeof(float), (size_t)p->n_elements, f) == (size_t)p->n_elements ? 0 : -1;
    enum { CHUNK = 1 << 16 };
    unsigned char buf[2 * CHUNK];
    for (int64_t i = 0; i < p->n_elements; i += CHUNK) {
        int64_t k = p->n_elements - i < CHUNK ? p->n_elements - i : CHUNK;
        for (int64_t j = 0; j < k; j++) {
            uint16_t h = p->dtype == ST_BF16 ? st_f32_to_bf16(p->data[i + j]) : st_f32_to_f16(p->data[i + j]);
            buf[2 * j] = (unsigned char)(h & 0xff);
            buf[2 * j + 1] = (unsigned char)(h >> 8);
        }
        if (fwrite(buf, 2, (size_t)k, f) != (size_t)k) return -1;
    }
    return 0;
}

int st_write(const st_writer *w, const char *path, char *err, size_t errlen) {
    for (int i = 0; i < w->n; i++) {
        if (!strcmp(w->t[i].name, "__metadata__") || !w->t[i].name[0])
            return errmsg(err, errlen, "%s: tensor name \"%s\" is reserved", path, w->t[i].name);
        for (int j = 0; j < i; j++)
            if (!strcmp(w->t[i].name, w->t[j].name))
                return errmsg(err, errlen, "%s: tensor %s added twice", path, w->t[i].name);
    }
    fsutil_atomic out;
    if (fsutil_atomic_open(&out, path, err, errlen)) return -1;
    FILE *f = out.f;
    size_t hlen;
    char *header = build_header(w, &hlen);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    free(header);
    for (int i = 0; ok && i < w->n; i++) ok = write_tensor(f, &w->t[i]) == 0;
    if (!ok) {
        int saved = errno;
        errmsg(err, errlen, "%s: write failed (%s)", out.tmp, strerror(saved ? saved : EIO));
        fsutil_atomic_abort(&out);
        return -1;
    }
    return fsutil_atomic_commit(&out, err, errlen);
}
