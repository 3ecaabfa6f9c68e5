// ckpt: HDF5 checkpoint files (see ckpt.h and docs/checkpoint-format.md).
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"

#define CHUNK_BYTES (1 << 20)  // target chunk size: one checksum per MiB
#define ERRLEN 1024
#define VERSION_ATTR "stretch_checkpoint_version"
#define COMPLETE_ATTR "complete"

// ===========================================================================
// HDF5 error handling: automatic printing off for the duration of each public
// call (restored afterwards), messages taken from the error stack.

typedef struct {
    H5E_auto2_t func;
    void *data;
} h5_quiet;

// ckpt_bytes_read's count (one process reads on one thread).
static int64_t bytes_read;

int64_t ckpt_bytes_read(void) { return bytes_read; }

static void quiet_on(h5_quiet *q) {
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_off(const h5_quiet *q) { H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

static bool contains_nocase(const char *s, const char *word) {
    if (!s) return false;
    size_t n = strlen(word);
    for (; *s; s++) {
        size_t i = 0;
        while (i < n && s[i] && (s[i] | 0x20) == (word[i] | 0x20)) i++;
        if (i == n) return true;
    }
    return false;
}

typedef struct {
    char desc[512];  // the innermost (most specific) message
    bool checksum;   // a Fletcher32 data checksum failed somewhere in the stack
} h5_error;

static herr_t h5_walk(unsigned n, const H5E_error2_t *e, void *data) {
    h5_error *h = data;
    if (n == 0 && e->desc) snprintf(h->desc, sizeof h->desc, "%s", e->desc);
    if (contains_nocase(e->desc, "fletcher32") || contains_nocase(e->func_name, "fletcher32"))
        h->checksum = true;
    return 0;
}

// The current thread's HDF5 error stack, summarised.
static h5_error h5_last_error(void) {
    h5_error h = {.desc = "", .checksum = false};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk, &h);
    if (!h.desc[0]) snprintf(h.desc, sizeof h.desc, "unknown HDF5 error");
    // A failed write reads "file write failed: time = ...\n, filename = ...,
    // errno = 28, error message = 'No space left on device', buf = ...":
    // keep the first words and the system's message, on one line.
    const char *m = strstr(h.desc, "error message = '");
    char *colon = strchr(h.desc, ':');
    if (m && colon && colon < m) {
        m += strlen("error message = '");
        const char *end = strchr(m, '\'');
        int n = end ? (int)(end - m) : (int)strlen(m);
        char sys[128];
        snprintf(sys, sizeof sys, "%.*s", n, m);
        snprintf(colon, sizeof h.desc - (size_t)(colon - h.desc), ": %s", sys);
    }
    for (char *p = h.desc; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return h;
}

// ===========================================================================
// Types, shapes, paths

const char *ckpt_dtype_name(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_F32: return "float32";
    case CKPT_F64: return "float64";
    case CKPT_I32: return "int32";
    case CKPT_I64: return "int64";
    case CKPT_U64: return "uint64";
    case CKPT_U8: return "uint8";
    }
    return "unknown";
}

size_t ckpt_dtype_size(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_F32: case CKPT_I32: return 4;
    case CKPT_F64: case CKPT_I64: case CKPT_U64: return 8;
    case CKPT_U8: return 1;
    }
    return 0;
}

static hid_t file_type(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_F32: return H5T_IEEE_F32LE;
    case CKPT_F64: return H5T_IEEE_F64LE;
    case CKPT_I32: return H5T_STD_I32LE;
    case CKPT_I64: return H5T_STD_I64LE;
    case CKPT_U64: return H5T_STD_U64LE;
    case CKPT_U8: return H5T_STD_U8LE;
    }
    return -1;
}

static hid_t mem_type(ckpt_dtype dtype) {
    switch (dtype) {
    case CKPT_F32: return H5T_NATIVE_FLOAT;
    case CKPT_F64: return H5T_NATIVE_DOUBLE;
    case CKPT_I32: return H5T_NATIVE_INT32;
    case CKPT_I64: return H5T_NATIVE_INT64;
    case CKPT_U64: return H5T_NATIVE_UINT64;
    case CKPT_U8: return H5T_NATIVE_UINT8;
    }
    return -1;
}

// The ckpt_dtype of an HDF5 type; -1 when it is none of ours.
static int dtype_of(hid_t type, ckpt_dtype *out) {
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    if (cls == H5T_FLOAT && size == 4) *out = CKPT_F32;
    else if (cls == H5T_FLOAT && size == 8) *out = CKPT_F64;
    else if (cls == H5T_INTEGER) {
        bool sign = H5Tget_sign(type) == H5T_SGN_2;
        if (sign && size == 4) *out = CKPT_I32;
        else if (sign && size == 8) *out = CKPT_I64;
        else if (!sign && size == 8) *out = CKPT_U64;
        else if (!sign && size == 1) *out = CKPT_U8;
        else return -1;
    } else
        return -1;
    return 0;
}

static void format_shape(char *buf, size_t n, int rank, const int64_t *dims) {
    size_t used = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < rank && used < n; d++)
        used += (size_t)snprintf(buf + used, n - used, d ? ", %lld" : "%lld", (long long)dims[d]);
    if (used < n) snprintf(buf + used, n - used, ")");
}

// 1 when every component of path (relative to the root) exists, 0 when one
// is missing, -1 on an HDF5 failure. "" and "/" are the root.
static int path_exists(hid_t file, const char *path) {
    while (*path == '/') path++;
    if (!*path) return 1;
    char *buf = xstrdup(path);
    int result = 1;
    for (char *p = buf;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
            *p = saved;
            if (e <= 0) {
                result = e < 0 ? -1 : 0;
                break;
            }
            if (!saved) break;
        }
    }
    free(buf);
    return result;
}

// A dataset or group name: non-empty, no empty components.
static bool valid_name(const char *name) {
    while (*name == '/') name++;
    if (!*name) return false;
    size_t n = strlen(name);
    return name[n - 1] != '/' && !strstr(name, "//");
}

// ===========================================================================
// Writer

struct ckpt_writer {
    hid_t file;
    hid_t gcpl;  // groups track link and attribute creation order
    char *final_path;
    char *tmp_path;
    char error[ERRLEN];  // the first failure, "" while none
};

static int wfail(ckpt_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(ckpt_writer *w, const char *fmt, ...) {
    if (w->error[0]) return -1;
    char msg[ERRLEN - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(w->error, sizeof w->error, "checkpoint %s: %s", w->final_path, msg);
    return -1;
}

static hid_t order_tracking_plist(hid_t cls) {
    hid_t p = H5Pcreate(cls);
    if (p < 0) return -1;
    unsigned flags = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
    if (H5Pset_link_creation_order(p, flags) < 0 || H5Pset_attr_creation_order(p, flags) < 0) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

static ckpt_writer *create_impl(const char *final_path, char *err, size_t errlen) {
    ckpt_writer *w = xcalloc(1, sizeof *w);
    w->file = w->gcpl = -1;
    w->final_path = xstrdup(final_path);
    size_t n = strlen(final_path) + 5;
    w->tmp_path = xmalloc(n);
    snprintf(w->tmp_path, n, "%s.tmp", final_path);

    // The HDF5 1.10 file format: checksums on the superblock, object headers
    // AND the chunk indexes (fixed arrays), so no flipped bit can silently
    // remap a chunk to fill values, as one can in the 1.8 format's v1
    // B-trees. Readable by any HDF5 >= 1.10 (h5py, h5dump).
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t fcpl = order_tracking_plist(H5P_FILE_CREATE);
    w->gcpl = order_tracking_plist(H5P_GROUP_CREATE);
    if (fapl >= 0 && fcpl >= 0 && w->gcpl >= 0 &&
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0)
        w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    h5_error h = h5_last_error();
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (w->file < 0) {
        errmsg(err, errlen, "checkpoint %s: cannot create %s (%s)", final_path, w->tmp_path,
                h.desc);
        if (w->gcpl >= 0) H5Pclose(w->gcpl);
        free(w->final_path);
        free(w->tmp_path);
        free(w);
        return NULL;
    }
    return w;
}

ckpt_writer *ckpt_create(const char *final_path, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    ckpt_writer *w = create_impl(final_path, err, errlen);
    quiet_off(&q);
    return w;
}

// Creates every missing group along path (relative to the root).
static int ensure_group(ckpt_writer *w, const char *path) {
    while (*path == '/') path++;
    if (!*path) return 0;
    char *buf = xstrdup(path);
    int rc = 0;
    for (char *p = buf;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        htri_t e = H5Lexists(w->file, buf, H5P_DEFAULT);
        if (e == 0) {
            hid_t g = H5Gcreate2(w->file, buf, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
            if (g < 0) e = -1;
            else H5Gclose(g);
        }
        if (e < 0) {
            rc = wfail(w, "cannot create group %s (%s)", buf, h5_last_error().desc);
            break;
        }
        *p = saved;
        if (!saved) break;
    }
    free(buf);
    return rc;
}

// Chunks of at most CHUNK_BYTES (or one element row), splitting the leading
// axes. Edge chunks are stored at full size, so the split axis is cut into
// near-equal parts: 1000 rows in 3 chunks of 334, not 436 + 436 + 128.
static void choose_chunk(hsize_t *chunk, const hsize_t *dims, int rank, size_t esize) {
    for (int d = 0; d < rank; d++) chunk[d] = dims[d] > 0 ? dims[d] : 1;
    for (int d = 0; d < rank; d++) {
        hsize_t inner = esize;
        for (int e = d + 1; e < rank; e++) inner *= chunk[e];
        if (inner >= CHUNK_BYTES) {
            chunk[d] = 1;
            continue;
        }
        hsize_t most = CHUNK_BYTES / inner;
        hsize_t parts = (chunk[d] + most - 1) / most;
        chunk[d] = (chunk[d] + parts - 1) / parts;
        break;
    }
}

static int put_impl(ckpt_writer *w, const char *name, ckpt_dtype dtype, const void *data,
                    int rank, const int64_t *dims, bool deferred) {
    if (w->error[0]) return -1;
    if (!name || !valid_name(name))
        return wfail(w, "invalid dataset name \"%s\"", name ? name : "");
    while (*name == '/') name++;
    if (file_type(dtype) < 0) return wfail(w, "dataset %s: unknown dtype %d", name, (int)dtype);
    if (rank < 1 || rank > CKPT_MAX_RANK)
        return wfail(w, "dataset %s: rank %d outside 1..%d", name, rank, CKPT_MAX_RANK);
    hsize_t hdims[CKPT_MAX_RANK], maxdims[CKPT_MAX_RANK], chunk[CKPT_MAX_RANK];
    int64_t numel = 1;
    for (int d = 0; d < rank; d++) {
        if (dims[d] < 0 || (dims[d] > 0 && numel > INT64_MAX / 8 / dims[d]))
            return wfail(w, "dataset %s: invalid dimension %lld", name, (long long)dims[d]);
        numel *= dims[d];
        hdims[d] = (hsize_t)dims[d];
        // A chunk may not exceed a fixed extent: an empty axis is unlimited.
        maxdims[d] = dims[d] > 0 ? hdims[d] : H5S_UNLIMITED;
    }
    if (numel > 0 && !data && !deferred) return wfail(w, "dataset %s: no data", name);

    const char *slash = strrchr(name, '/');
    if (slash) {
        char *parent = xstrdup(name);
        parent[slash - name] = '\0';
        int rc = ensure_group(w, parent);
        free(parent);
        if (rc) return -1;
    }
    htri_t exists = H5Lexists(w->file, name, H5P_DEFAULT);
    if (exists != 0)
        return wfail(w, exists > 0 ? "dataset %s written twice" : "dataset %s: bad path", name);

    choose_chunk(chunk, hdims, rank, ckpt_dtype_size(dtype));
    hid_t space = H5Screate_simple(rank, hdims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dset = -1;
    herr_t st = -1;
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        H5Pset_fletcher32(dcpl) >= 0)
        dset = H5Dcreate2(w->file, name, file_type(dtype), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset >= 0)
        st = numel > 0 && !deferred ? H5Dwrite(dset, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    // Closing flushes chunks still in the chunk cache: its failure counts.
    if (dset >= 0 && H5Dclose(dset) < 0) st = -1;
    h5_error h = h5_last_error();
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (st < 0) return wfail(w, "cannot write dataset %s (%s)", name, h.desc);
    return 0;
}

int ckpt_put(ckpt_writer *w, const char *name, ckpt_dtype dtype, const void *data, int rank,
             const int64_t *dims) {
    h5_quiet q;
    quiet_on(&q);
    int rc = put_impl(w, name, dtype, data, rank, dims, false);
    quiet_off(&q);
    return rc;
}

int ckpt_put_tensor(ckpt_writer *w, const char *name, const float *data, int rank,
                    const int64_t *dims) {
    return ckpt_put(w, name, CKPT_F32, data, rank, dims);
}

// Writes one scalar attribute of file type ftype from value (memory type mtype).
static int put_attr_impl(ckpt_writer *w, const char *obj, const char *name, hid_t ftype,
                         hid_t mtype, const void *value, bool internal) {
    if (w->error[0]) return -1;
    if (!obj || !name || !*name) return wfail(w, "attribute without a name");
    while (*obj == '/') obj++;
    const char *where = *obj ? obj : "/";
    if (!*obj && !internal && (!strcmp(name, VERSION_ATTR) || !strcmp(name, COMPLETE_ATTR)))
        return wfail(w, "attribute %s is reserved (written by ckpt_commit)", name);
    if (*obj && !valid_name(obj)) return wfail(w, "invalid object name \"%s\"", obj);
    int e = path_exists(w->file, obj);
    if (e == 0 && ensure_group(w, obj)) return -1;
    if (e < 0) return wfail(w, "attribute %s: bad object path %s", name, where);

    hid_t o = H5Oopen(w->file, where, H5P_DEFAULT);
    if (o < 0) return wfail(w, "cannot open %s (%s)", where, h5_last_error().desc);
    htri_t exists = H5Aexists(o, name);
    if (exists != 0) {
        H5Oclose(o);
        return wfail(w, exists > 0 ? "attribute %s on %s written twice"
                                   : "attribute %s on %s: HDF5 failure",
                     name, where);
    }
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(o, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    herr_t st = attr >= 0 ? H5Awrite(attr, mtype, value) : -1;
    h5_error h = h5_last_error();
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    H5Oclose(o);
    if (st < 0) return wfail(w, "cannot write attribute %s on %s (%s)", name, where, h.desc);
    return 0;
}

int ckpt_put_attr_int64(ckpt_writer *w, const char *obj, const char *name, int64_t value) {
    h5_quiet q;
    quiet_on(&q);
    int rc = put_attr_impl(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, false);
    quiet_off(&q);
    return rc;
}

int ckpt_put_attr_double(ckpt_writer *w, const char *obj, const char *name, double value) {
    h5_quiet q;
    quiet_on(&q);
    int rc = put_attr_impl(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, false);
    quiet_off(&q);
    return rc;
}

// A fixed-length, NUL-terminated UTF-8 string type holding value.
static hid_t string_type(size_t len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, len + 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int ckpt_put_attr_string(ckpt_writer *w, const char *obj, const char *name, const char *value) {
    h5_quiet q;
    quiet_on(&q);
    int rc;
    hid_t t = value ? string_type(strlen(value)) : -1;
    if (!value) rc = wfail(w, "attribute %s: NULL string", name ? name : "");
    else if (t < 0) rc = wfail(w, "attribute %s: cannot make a string type", name ? name : "");
    else rc = put_attr_impl(w, obj, name, t, t, value, false);
    if (t >= 0) H5Tclose(t);
    quiet_off(&q);
    return rc;
}

int ckpt_put_deferred(ckpt_writer *w, const char *name, ckpt_dtype dtype, int rank,
                      const int64_t *dims) {
    h5_quiet q;
    quiet_on(&q);
    int rc = put_impl(w, name, dtype, NULL, rank, dims, true);
    quiet_off(&q);
    return rc;
}

int ckpt_suspend(ckpt_writer *w) {
    if (w->error[0]) return -1;
    h5_quiet q;
    quiet_on(&q);
    int rc = 0;
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0 || H5Fclose(w->file) < 0)
        rc = wfail(w, "cannot close %s (%s)", w->tmp_path, h5_last_error().desc);
    w->file = -1;
    quiet_off(&q);
    return rc;
}

int ckpt_resume(ckpt_writer *w) {
    if (w->error[0]) return -1;
    h5_quiet q;
    quiet_on(&q);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0)
        w->file = H5Fopen(w->tmp_path, H5F_ACC_RDWR, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    int rc = w->file < 0 ? wfail(w, "cannot reopen %s (%s)", w->tmp_path, h5_last_error().desc) : 0;
    quiet_off(&q);
    return rc;
}

const char *ckpt_writer_error(const ckpt_writer *w) { return w->error; }

static void writer_free(ckpt_writer *w) {
    if (w->file >= 0) H5Fclose(w->file);
    if (w->gcpl >= 0) H5Pclose(w->gcpl);
    free(w->final_path);
    free(w->tmp_path);
    free(w);
}

// Closes the file of a failed writer.
static void close_after_error(ckpt_writer *w) {
    if (w->file >= 0) H5Fclose(w->file);
    w->file = -1;
}

// HDF5 1.10 cannot recover from a failed write to the file (disk full, a
// file-size limit): its H5Fclose fails half-way and its shutdown at
// MPI_Finalize then crashes on the half-freed file (found by
// tests/cli/test_faults.sh). So the space is claimed before HDF5 writes:
// posix_fallocate of the expected size fails cleanly with ENOSPC or EFBIG;
// HDF5 truncates the file to its real end when it closes it. Filesystems
// without fallocate (EOPNOTSUPP, EINVAL) go on unreserved.
int ckpt_reserve(ckpt_writer *w, int64_t bytes, char *err, size_t errlen) {
    int fd = open(w->tmp_path, O_WRONLY);
    if (fd < 0) return errmsg(err, errlen, "checkpoint %s: cannot open %s: %s", w->final_path, w->tmp_path, strerror(errno));
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    close(fd);
    if (rc == 0 || rc == EOPNOTSUPP || rc == EINVAL) return 0;
    return errmsg(err, errlen, "checkpoint %s: cannot reserve %.1f MB for %s: %s", w->final_path,
                  (double)bytes / 1e6, w->tmp_path, strerror(rc));
}

static int commit_impl(ckpt_writer *w) {
    int64_t version = CKPT_FORMAT_VERSION, one = 1;
    if (put_attr_impl(w, "/", VERSION_ATTR, H5T_STD_I64LE, H5T_NATIVE_INT64, &version, true) ||
        put_attr_impl(w, "/", COMPLETE_ATTR, H5T_STD_I64LE, H5T_NATIVE_INT64, &one, true))
        return -1;
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        return wfail(w, "cannot flush %s (%s)", w->tmp_path, h5_last_error().desc);
    herr_t st = H5Fclose(w->file);
    w->file = -1;
    if (st < 0) return wfail(w, "cannot close %s (%s)", w->tmp_path, h5_last_error().desc);
    if (fsutil_fsync_path(w->tmp_path, false) < 0)
        return wfail(w, "cannot fsync %s: %s", w->tmp_path, strerror(errno));
    if (rename(w->tmp_path, w->final_path) < 0)
        return wfail(w, "cannot rename %s to %s: %s", w->tmp_path, w->final_path, strerror(errno));
    int rc = fsutil_fsync_parent(w->final_path);
    if (rc < 0) wfail(w, "cannot fsync the directory of %s: %s", w->final_path, strerror(errno));
    return rc;
}

int ckpt_commit(ckpt_writer *w, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    int rc = w->error[0] ? -1 : commit_impl(w);
    if (rc) {
        errmsg(err, errlen, "%s", w->error);
        close_after_error(w);
        unlink(w->tmp_path);
    }
    writer_free(w);
    quiet_off(&q);
    return rc;
}

void ckpt_abort(ckpt_writer *w) {
    if (!w) return;
    h5_quiet q;
    quiet_on(&q);
    close_after_error(w);
    unlink(w->tmp_path);
    writer_free(w);
    quiet_off(&q);
}

// ===========================================================================
// Reader

struct ckpt_reader {
    hid_t file;
    char *path;
};

static int rfail(const ckpt_reader *r, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rfail(const ckpt_reader *r, char *err, size_t errlen, const char *fmt, ...) {
    char msg[ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errmsg(err, errlen, "checkpoint %s: %s", r->path, msg);
    return -1;
}

static int read_root_int(ckpt_reader *r, const char *name, int64_t *out) {
    hid_t a = H5Aopen_by_name(r->file, "/", name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    herr_t st = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_INTEGER) st = H5Aread(a, H5T_NATIVE_INT64, out);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return st < 0 ? -1 : 0;
}

static ckpt_reader *open_impl(const char *path, char *err, size_t errlen) {
    ckpt_reader tmp = {.file = -1, .path = (char *)path};
    struct stat st;
    if (stat(path, &st) < 0) {
        rfail(&tmp, err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (H5Fis_hdf5(path) <= 0) {
        rfail(&tmp, err, errlen, "not an HDF5 file");
        return NULL;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        rfail(&tmp, err, errlen, "unreadable HDF5 file, torn or corrupt (%s)",
              h5_last_error().desc);
        return NULL;
    }
    ckpt_reader *r = xcalloc(1, sizeof *r);
    r->file = file;
    r->path = xstrdup(path);
    int64_t version = 0, complete = 0;
    const char *problem = NULL;
    char msg[128];
    if (H5Aexists_by_name(file, "/", VERSION_ATTR, H5P_DEFAULT) <= 0)
        problem = "not a stretch checkpoint (no " VERSION_ATTR " attribute)";
    else if (read_root_int(r, VERSION_ATTR, &version) < 0)
        problem = "unreadable " VERSION_ATTR " attribute";
    else if (version != CKPT_FORMAT_VERSION) {
        snprintf(msg, sizeof msg, "format version %lld is not supported (this build reads %d)",
                 (long long)version, CKPT_FORMAT_VERSION);
        problem = msg;
    } else if (H5Aexists_by_name(file, "/", COMPLETE_ATTR, H5P_DEFAULT) <= 0 ||
               read_root_int(r, COMPLETE_ATTR, &complete) < 0 || complete != 1)
        problem = "incomplete (no \"" COMPLETE_ATTR "\" marker: its write was interrupted)";
    if (problem) {
        rfail(r, err, errlen, "%s", problem);
        H5Fclose(file);
        free(r->path);
        free(r);
        return NULL;
    }
    return r;
}

ckpt_reader *ckpt_open(const char *path, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    ckpt_reader *r = open_impl(path, err, errlen);
    quiet_off(&q);
    return r;
}

void ckpt_close(ckpt_reader *r) {
    if (!r) return;
    h5_quiet q;
    quiet_on(&q);
    H5Fclose(r->file);
    quiet_off(&q);
    free(r->path);
    free(r);
}

const char *ckpt_path(const ckpt_reader *r) { return r->path; }

bool ckpt_has(ckpt_reader *r, const char *name) {
    h5_quiet q;
    quiet_on(&q);
    bool has = name && path_exists(r->file, name) == 1;
    quiet_off(&q);
    return has;
}

bool ckpt_has_attr(ckpt_reader *r, const char *obj, const char *name) {
    h5_quiet q;
    quiet_on(&q);
    while (obj && *obj == '/') obj++;
    bool has = obj && name && path_exists(r->file, obj) == 1 &&
               H5Aexists_by_name(r->file, *obj ? obj : "/", name, H5P_DEFAULT) > 0;
    quiet_off(&q);
    return has;
}

// Opens dataset name, or fails naming it.
static hid_t open_dataset(ckpt_reader *r, const char *name, char *err, size_t errlen) {
    if (!name || !valid_name(name)) {
        rfail(r, err, errlen, "invalid dataset name \"%s\"", name ? name : "");
        return -1;
    }
    if (path_exists(r->file, name) != 1) {
        rfail(r, err, errlen, "no dataset %s", name);
        return -1;
    }
    hid_t o = H5Oopen(r->file, name, H5P_DEFAULT);
    if (o < 0) {
        rfail(r, err, errlen, "cannot open %s (%s)", name, h5_last_error().desc);
        return -1;
    }
    if (H5Iget_type(o) != H5I_DATASET) {
        H5Oclose(o);
        rfail(r, err, errlen, "%s is not a dataset", name);
        return -1;
    }
    return o;
}

static int dataset_info(ckpt_reader *r, hid_t dset, const char *name, ckpt_dtype *dtype,
                        int *rank, int64_t *dims, char *err, size_t errlen) {
    hid_t t = H5Dget_type(dset);
    int rc = t >= 0 ? dtype_of(t, dtype) : -1;
    if (t >= 0) H5Tclose(t);
    if (rc < 0) return rfail(r, err, errlen, "dataset %s has an unsupported element type", name);
    hid_t space = H5Dget_space(dset);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t hd[CKPT_MAX_RANK];
    if (nd >= 0 && nd <= CKPT_MAX_RANK) nd = H5Sget_simple_extent_dims(space, hd, NULL);
    if (space >= 0) H5Sclose(space);
    if (nd < 1 || nd > CKPT_MAX_RANK)
        return rfail(r, err, errlen, "dataset %s has an unsupported rank %d", name, nd);
    *rank = nd;
    for (int d = 0; d < nd; d++) dims[d] = (int64_t)hd[d];
    return 0;
}

static int read_failure(ckpt_reader *r, const char *name, char *err, size_t errlen) {
    h5_error h = h5_last_error();
    if (h.checksum)
        return rfail(r, err, errlen, "dataset %s failed its checksum (corrupt file)", name);
    return rfail(r, err, errlen, "cannot read dataset %s (%s)", name, h.desc);
}

int ckpt_get_info(ckpt_reader *r, const char *name, ckpt_dtype *dtype, int *rank, int64_t *dims,
                  char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    hid_t dset = open_dataset(r, name, err, errlen);
    int rc = dset < 0 ? -1 : dataset_info(r, dset, name, dtype, rank, dims, err, errlen);
    if (dset >= 0) H5Oclose(dset);
    quiet_off(&q);
    return rc;
}

static int get_impl(ckpt_reader *r, const char *name, ckpt_dtype dtype, void *out, int rank,
                    const int64_t *expected, char *err, size_t errlen) {
    if (mem_type(dtype) < 0) return rfail(r, err, errlen, "unknown dtype %d", (int)dtype);
    hid_t dset = open_dataset(r, name, err, errlen);
    if (dset < 0) return -1;
    ckpt_dtype have;
    int have_rank;
    int64_t dims[CKPT_MAX_RANK];
    int rc = dataset_info(r, dset, name, &have, &have_rank, dims, err, errlen);
    if (rc == 0 && have != dtype)
        rc = rfail(r, err, errlen, "dataset %s has type %s, expected %s", name,
                   ckpt_dtype_name(have), ckpt_dtype_name(dtype));
    if (rc == 0) {
        bool same = have_rank == rank;
        for (int d = 0; same && d < rank; d++) same = dims[d] == expected[d];
        if (!same) {
            char a[256], b[256];
            format_shape(a, sizeof a, have_rank, dims);
            format_shape(b, sizeof b, rank < 0 ? 0 : rank, expected);
            rc = rfail(r, err, errlen, "dataset %s has shape %s, expected %s", name, a, b);
        }
    }
    if (rc == 0) {
        int64_t numel = 1;
        for (int d = 0; d < rank; d++) numel *= dims[d];
        if (numel > 0 && H5Dread(dset, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
            rc = read_failure(r, name, err, errlen);
        if (rc == 0) bytes_read += numel * (int64_t)ckpt_dtype_size(dtype);
    }
    H5Oclose(dset);
    return rc;
}

int ckpt_get(ckpt_reader *r, const char *name, ckpt_dtype dtype, void *out, int rank,
             const int64_t *expected_dims, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    int rc = get_impl(r, name, dtype, out, rank, expected_dims, err, errlen);
    quiet_off(&q);
    return rc;
}

int ckpt_get_tensor(ckpt_reader *r, const char *name, float *out, int rank,
                    const int64_t *expected_dims, char *err, size_t errlen) {
    return ckpt_get(r, name, CKPT_F32, out, rank, expected_dims, err, errlen);
}

// Opens attribute name on obj, requiring one element of class cls.
static hid_t open_attr(ckpt_reader *r, const char *obj, const char *name, H5T_class_t cls,
                       const char *what, char *err, size_t errlen) {
    while (obj && *obj == '/') obj++;
    const char *where = obj && *obj ? obj : "/";
    if (!obj || !name || path_exists(r->file, obj) != 1 ||
        H5Aexists_by_name(r->file, where, name, H5P_DEFAULT) <= 0) {
        rfail(r, err, errlen, "no attribute %s on %s", name ? name : "", where);
        return -1;
    }
    hid_t a = H5Aopen_by_name(r->file, where, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) {
        rfail(r, err, errlen, "cannot open attribute %s on %s (%s)", name, where,
              h5_last_error().desc);
        return -1;
    }
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    bool ok = t >= 0 && s >= 0 && H5Tget_class(t) == cls && H5Sget_simple_extent_npoints(s) == 1;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (!ok) {
        H5Aclose(a);
        rfail(r, err, errlen, "attribute %s on %s is not a single %s", name, where, what);
        return -1;
    }
    return a;
}

static int get_attr_num(ckpt_reader *r, const char *obj, const char *name, H5T_class_t cls,
                        hid_t mtype, void *out, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    hid_t a = open_attr(r, obj, name, cls, cls == H5T_INTEGER ? "integer" : "float", err, errlen);
    int rc = a < 0 ? -1 : 0;
    if (a >= 0 && H5Aread(a, mtype, out) < 0)
        rc = rfail(r, err, errlen, "cannot read attribute %s (%s)", name, h5_last_error().desc);
    if (a >= 0) H5Aclose(a);
    quiet_off(&q);
    return rc;
}

int ckpt_get_attr_int64(ckpt_reader *r, const char *obj, const char *name, int64_t *out,
                        char *err, size_t errlen) {
    return get_attr_num(r, obj, name, H5T_INTEGER, H5T_NATIVE_INT64, out, err, errlen);
}

int ckpt_get_attr_double(ckpt_reader *r, const char *obj, const char *name, double *out,
                         char *err, size_t errlen) {
    return get_attr_num(r, obj, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, out, err, errlen);
}

// Reads a string attribute (fixed-length or variable-length) as a malloc'd
// C string; NULL on failure.
static char *read_string_attr(hid_t a) {
    hid_t t = H5Aget_type(a);
    if (t < 0) return NULL;
    char *result = NULL;
    if (H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *s = NULL;
        if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Aread(a, mt, &s) >= 0) {
            result = xstrdup(s ? s : "");
            H5free_memory(s);
        }
        if (mt >= 0) H5Tclose(mt);
    } else {
        size_t size = H5Tget_size(t);
        hid_t mt = H5Tcopy(t);
        char *buf = xcalloc(size + 1, 1);
        if (mt >= 0 && H5Aread(a, mt, buf) >= 0) {
            if (H5Tget_strpad(t) == H5T_STR_SPACEPAD)
                for (size_t i = strlen(buf); i > 0 && buf[i - 1] == ' '; i--) buf[i - 1] = '\0';
            result = buf;
        } else
            free(buf);
        if (mt >= 0) H5Tclose(mt);
    }
    H5Tclose(t);
    return result;
}

int ckpt_get_attr_string(ckpt_reader *r, const char *obj, const char *name, char **out,
                         char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    hid_t a = open_attr(r, obj, name, H5T_STRING, "string", err, errlen);
    int rc = a < 0 ? -1 : 0;
    if (a >= 0) {
        *out = read_string_attr(a);
        if (!*out)
            rc = rfail(r, err, errlen, "cannot read attribute %s (%s)", name, h5_last_error().desc);
        H5Aclose(a);
    }
    quiet_off(&q);
    return rc;
}

// ---------------------------------------------------------------------------
// Listing

typedef struct {
    const char *prefix;  // the group's path plus '/', "" for the root
    bool datasets_only;
    char **names;
    int count, cap;
} list_ctx;

static void list_push(list_ctx *c, const char *name) {
    if (c->count == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->names = xrealloc(c->names, (size_t)c->cap * sizeof *c->names);
    }
    size_t n = strlen(c->prefix) + strlen(name) + 1;
    c->names[c->count] = xmalloc(n);
    snprintf(c->names[c->count], n, "%s%s", c->prefix, name);
    c->count++;
}

static herr_t list_cb(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    list_ctx *c = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = H5Oopen(group, name, H5P_DEFAULT);
    if (o < 0) return -1;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    if (t == H5I_DATASET || (!c->datasets_only && t == H5I_GROUP)) list_push(c, name);
    return 0;
}

static void list_clear(list_ctx *c) {
    ckpt_list_free(c->names, c->count);
    c->names = NULL;
    c->count = c->cap = 0;
}

// Every object below group, depth first in creation order where the file
// tracks it, else by name.
static int list_impl(ckpt_reader *r, const char *group, bool datasets_only, list_ctx *c,
                     char *err, size_t errlen) {
    while (*group == '/') group++;
    size_t n = strlen(group);
    while (n > 0 && group[n - 1] == '/') n--;
    char *prefix = xmalloc(n + 2);  // "group/", or "" for the root
    snprintf(prefix, n + 2, "%.*s%s", (int)n, group, n ? "/" : "");
    char *where = xstrdup(n ? prefix : "/");
    if (n) where[n] = '\0';
    *c = (list_ctx){.prefix = prefix, .datasets_only = datasets_only};
    int rc = 0;
    hid_t g = path_exists(r->file, where) == 1 ? H5Oopen(r->file, where, H5P_DEFAULT) : -1;
    if (g < 0 || H5Iget_type(g) != H5I_GROUP) {
        rc = rfail(r, err, errlen, "no group %s", where);
    } else if (H5Lvisit(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, list_cb, c) < 0) {
        list_clear(c);
        if (H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, list_cb, c) < 0) {
            rc = rfail(r, err, errlen, "cannot list %s (%s)", where, h5_last_error().desc);
            list_clear(c);
        }
    }
    if (g >= 0) H5Oclose(g);
    free(where);
    free(prefix);
    c->prefix = NULL;
    return rc;
}

int ckpt_list(ckpt_reader *r, const char *group, char ***names, int *count, char *err,
              size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    list_ctx c;
    int rc = list_impl(r, group ? group : "/", true, &c, err, errlen);
    *names = c.names;
    *count = c.count;
    quiet_off(&q);
    return rc;
}

void ckpt_list_free(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

// ---------------------------------------------------------------------------
// Verification: every chunk of every dataset is read, so every checksum runs.

static int verify_dataset(ckpt_reader *r, const char *name, char *err, size_t errlen) {
    hid_t dset = open_dataset(r, name, err, errlen);
    if (dset < 0) return -1;
    ckpt_dtype dtype;
    int rank;
    int64_t dims[CKPT_MAX_RANK];
    int rc = dataset_info(r, dset, name, &dtype, &rank, dims, err, errlen);
    hid_t dcpl = H5Dget_create_plist(dset);
    hsize_t chunk[CKPT_MAX_RANK];
    unsigned flags = 0;
    size_t nelm = 0;
    if (rc == 0 && (dcpl < 0 || H5Pget_layout(dcpl) != H5D_CHUNKED ||
                    H5Pget_chunk(dcpl, rank, chunk) != rank ||
                    H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &nelm, NULL, 0, NULL,
                                         NULL) < 0))
        rc = rfail(r, err, errlen, "dataset %s carries no Fletcher32 checksum", name);
    if (dcpl >= 0) H5Pclose(dcpl);

    int64_t chunk_numel = 1;
    bool empty = false;
    for (int d = 0; rc == 0 && d < rank; d++) {
        chunk_numel *= (int64_t)chunk[d];
        empty |= dims[d] == 0;
    }
    hid_t fspace = rc == 0 && !empty ? H5Dget_space(dset) : -1;
    if (fspace >= 0) {
        void *buf = xmalloc((size_t)chunk_numel * ckpt_dtype_size(dtype));
        hsize_t coord[CKPT_MAX_RANK] = {0}, start[CKPT_MAX_RANK], count[CKPT_MAX_RANK];
        for (bool more = true; more && rc == 0;) {
            for (int d = 0; d < rank; d++) {
                start[d] = coord[d] * chunk[d];
                count[d] = (hsize_t)dims[d] - start[d] < chunk[d] ? (hsize_t)dims[d] - start[d]
                                                                 : chunk[d];
            }
            hid_t mspace = H5Screate_simple(rank, count, NULL);
            if (mspace < 0 ||
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                H5Dread(dset, mem_type(dtype), mspace, fspace, H5P_DEFAULT, buf) < 0)
                rc = read_failure(r, name, err, errlen);
            int64_t got = 1;
            for (int d = 0; d < rank; d++) got *= (int64_t)count[d];
            if (rc == 0) bytes_read += got * (int64_t)ckpt_dtype_size(dtype);
            if (mspace >= 0) H5Sclose(mspace);
            // Next chunk, last axis fastest.
            more = false;
            for (int d = rank - 1; d >= 0 && !more; d--) {
                if ((coord[d] + 1) * chunk[d] < (hsize_t)dims[d]) {
                    coord[d]++;
                    more = true;
                } else
                    coord[d] = 0;
            }
        }
        free(buf);
        H5Sclose(fspace);
    } else if (rc == 0 && !empty)
        rc = rfail(r, err, errlen, "dataset %s: no dataspace", name);
    H5Oclose(dset);
    return rc;
}

int ckpt_verify(const char *path, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    ckpt_reader *r = open_impl(path, err, errlen);
    int rc = r ? 0 : -1;
    list_ctx c = {0};
    if (r) rc = list_impl(r, "/", true, &c, err, errlen);
    for (int i = 0; rc == 0 && i < c.count; i++) rc = verify_dataset(r, c.names[i], err, errlen);
    ckpt_list_free(c.names, c.count);
    if (r) {
        H5Fclose(r->file);
        free(r->path);
        free(r);
    }
    quiet_off(&q);
    return rc;
}

// ---------------------------------------------------------------------------
// Summary for `stretch inspect`

#define SUMMARY_MAX_VALUES 16

// Prints up to SUMMARY_MAX_VALUES values read from obj (an attribute when
// is_attr, else a dataset) of type t with n elements.
static void print_values(FILE *out, hid_t obj, bool is_attr, hid_t t, int64_t n) {
    H5T_class_t cls = H5Tget_class(t);
    bool sign = cls == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_2;
    hid_t mt = cls == H5T_FLOAT ? H5T_NATIVE_DOUBLE : sign ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
    union {
        double f;
        int64_t i;
        uint64_t u;
    } v[SUMMARY_MAX_VALUES];
    herr_t st = is_attr ? H5Aread(obj, mt, v) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (st < 0) {
        fprintf(out, "<unreadable>");
        return;
    }
    if (n != 1) fprintf(out, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i) fprintf(out, ", ");
        if (cls == H5T_FLOAT) fprintf(out, "%.9g", v[i].f);
        else if (sign) fprintf(out, "%lld", (long long)v[i].i);
        else fprintf(out, "%llu", (unsigned long long)v[i].u);
    }
    if (n != 1) fprintf(out, "]");
}

static herr_t print_attr_cb(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
    FILE *out = data;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int64_t n = s >= 0 ? (int64_t)H5Sget_simple_extent_npoints(s) : -1;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    fprintf(out, "    @%s = ", name);
    if (cls == H5T_STRING && n == 1) {
        char *str = read_string_attr(a);
        if (!str) fprintf(out, "<unreadable>\n");
        else if (!strchr(str, '\n')) fprintf(out, "\"%s\"\n", str);
        else {
            fprintf(out, "|\n");
            for (char *line = str; *line;) {
                char *nl = strchr(line, '\n');
                int len = nl ? (int)(nl - line) : (int)strlen(line);
                fprintf(out, "        %.*s\n", len, line);
                line += len + (nl ? 1 : 0);
            }
        }
        free(str);
    } else if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n >= 1 && n <= SUMMARY_MAX_VALUES) {
        print_values(out, a, true, t, n);
        fprintf(out, "\n");
    } else
        fprintf(out, "<%lld values>\n", (long long)n);
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Aclose(a);
    return 0;
}

static void print_attrs(FILE *out, hid_t obj) {
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, print_attr_cb, out) < 0) {
        idx = 0;
        H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr_cb, out);
    }
}

static int summary_impl(const char *path, FILE *out, char *err, size_t errlen) {
    ckpt_reader *r = open_impl(path, err, errlen);
    if (!r) return -1;
    list_ctx c;
    if (list_impl(r, "/", false, &c, err, errlen)) {
        ckpt_close(r);
        return -1;
    }
    struct stat st;
    fprintf(out, "checkpoint %s (format version %d, %.1f MiB on disk)\n", path,
            CKPT_FORMAT_VERSION, stat(path, &st) == 0 ? (double)st.st_size / (1 << 20) : 0.0);
    fprintf(out, "  /\n");
    hid_t root = H5Oopen(r->file, "/", H5P_DEFAULT);
    if (root >= 0) {
        print_attrs(out, root);
        H5Oclose(root);
    }
    int64_t n_datasets = 0, total_bytes = 0;
    for (int i = 0; i < c.count; i++) {
        hid_t o = H5Oopen(r->file, c.names[i], H5P_DEFAULT);
        if (o < 0) continue;
        if (H5Iget_type(o) == H5I_GROUP) {
            fprintf(out, "  /%s/\n", c.names[i]);
        } else {
            ckpt_dtype dtype;
            int rank;
            int64_t dims[CKPT_MAX_RANK];
            char shape[256], e2[ERRLEN];
            if (dataset_info(r, o, c.names[i], &dtype, &rank, dims, e2, sizeof e2) == 0) {
                int64_t numel = 1;
                for (int d = 0; d < rank; d++) numel *= dims[d];
                format_shape(shape, sizeof shape, rank, dims);
                fprintf(out, "  /%s  %s %s", c.names[i], ckpt_dtype_name(dtype), shape);
                if (numel >= 1 && numel <= SUMMARY_MAX_VALUES) {
                    hid_t t = H5Dget_type(o);
                    fprintf(out, " = ");
                    print_values(out, o, false, t, numel);
                    H5Tclose(t);
                }
                fprintf(out, "\n");
                n_datasets++;
                total_bytes += numel * (int64_t)ckpt_dtype_size(dtype);
            } else
                fprintf(out, "  /%s  <unsupported dataset>\n", c.names[i]);
        }
        print_attrs(out, o);
        H5Oclose(o);
    }
    fprintf(out, "  %lld datasets, %.1f MiB of data\n", (long long)n_datasets,
            (double)total_bytes / (1 << 20));
    ckpt_list_free(c.names, c.count);
    ckpt_close(r);
    return 0;
}

int ckpt_print_summary(const char *path, FILE *out, char *err, size_t errlen) {
    h5_quiet q;
    quiet_on(&q);
    int rc = summary_impl(path, out, err, errlen);
    quiet_off(&q);
    return rc;
}
