// ckpt: HDF5 checkpoint files, written atomically and checked on read.
//
// A checkpoint is one self-describing HDF5 file: named datasets (chunked,
// each chunk guarded by HDF5's Fletcher32 checksum) and scalar attributes on
// the root or on groups. This module is generic: the trainer decides what to
// store (docs/checkpoint-format.md is the layout it writes). Files are
// written as NAME.tmp, committed with a format version and a "complete"
// marker, fsync'd and renamed, so a reader never sees a half-written file
// under the final name. ckpt_dir.h manages the run directory of such files.
//
// All HDF5 calls go through this module with HDF5's automatic error printing
// switched off (and restored afterwards); failures come back as -1 and a
// one-line message naming the file and dataset.
//
// Files use the HDF5 1.10 format, where all metadata (chunk indexes
// included) is checksummed too.
//
// Tested by tests/unit/test_ckpt.c: exact round trips of every dtype and
// attribute, shape/type mismatches, truncated files, bytes flipped inside a
// dataset's chunk (checksum failure), every metadata byte flipped in turn
// (each flip detected or harmless), foreign/unfinished files, and h5ls
// reading the file.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CKPT_FORMAT_VERSION 1  // root attribute "stretch_checkpoint_version"
#define CKPT_MAX_RANK 8        // most dimensions a dataset may have

// Element types of datasets; stored little-endian.
typedef enum {
    CKPT_F32,
    CKPT_F64,
    CKPT_I32,
    CKPT_I64,
    CKPT_U64,
    CKPT_U8,
} ckpt_dtype;

const char *ckpt_dtype_name(ckpt_dtype dtype);  // "float32", "int64", ...
size_t ckpt_dtype_size(ckpt_dtype dtype);       // bytes per element

// ---------------------------------------------------------------------------
// Writing. Errors are sticky: after the first failure every put returns -1,
// ckpt_writer_error() says what went wrong, and ckpt_commit() refuses (and
// removes the .tmp file). Names are paths such as
// "params/model.layers.0.self_attn.q_proj.weight"; missing groups are
// created. Each name may be written once.

typedef struct ckpt_writer ckpt_writer;

// Creates final_path.tmp (truncating a leftover one). NULL and a message on
// failure. One process writes through this API (serial HDF5); under sharded
// training state the big tensors are then filled by every rank in parallel
// (ckpt_put_deferred + ckpt_suspend, ckpt_shard.h, ckpt_resume + commit).
ckpt_writer *ckpt_create(const char *final_path, char *err, size_t errlen);

// A dataset of rank dims (1 <= rank <= CKPT_MAX_RANK), chunked, Fletcher32.
// data is row-major with prod(dims) elements of dtype.
// Claims bytes of disk for the file before anything is written (see
// ckpt.c): 0, or -1 with a message (no space, file-size limit). The writer
// must then be aborted.
int ckpt_reserve(ckpt_writer *w, int64_t bytes, char *err, size_t errlen);

int ckpt_put(ckpt_writer *w, const char *name, ckpt_dtype dtype, const void *data, int rank,
             const int64_t *dims);
// The float32 case: data (dims[0], ..., dims[rank-1]).
int ckpt_put_tensor(ckpt_writer *w, const char *name, const float *data, int rank,
                    const int64_t *dims);

// A scalar attribute on obj: "/" for the root, or a group path (created if
// missing), or an existing dataset. Strings are stored as fixed-length UTF-8.
int ckpt_put_attr_int64(ckpt_writer *w, const char *obj, const char *name, int64_t value);
int ckpt_put_attr_double(ckpt_writer *w, const char *obj, const char *name, double value);
int ckpt_put_attr_string(ckpt_writer *w, const char *obj, const char *name, const char *value);

// Sharded writes (ckpt_shard.h): a float32/... dataset created with its
// shape, chunking and checksums but no data; its elements are written later
// by every rank's slice (ckpt_shard_write) while the file is suspended
// (closed, still NAME.tmp), then the writer resumes and commits.
int ckpt_put_deferred(ckpt_writer *w, const char *name, ckpt_dtype dtype, int rank,
                      const int64_t *dims);
int ckpt_suspend(ckpt_writer *w);
int ckpt_resume(ckpt_writer *w);

// The first error of this writer, or "" when none.
const char *ckpt_writer_error(const ckpt_writer *w);

// Writes the version attribute and then the "complete" marker, closes the
// file, fsyncs it, renames it to final_path and fsyncs the directory.
// Frees w in every case; on failure removes the .tmp file and returns -1.
int ckpt_commit(ckpt_writer *w, char *err, size_t errlen);

// Discards an unfinished checkpoint: closes it, removes the .tmp file, frees w.
void ckpt_abort(ckpt_writer *w);

// ---------------------------------------------------------------------------
// Reading. Every getter returns 0, or -1 with a one-line message
// "checkpoint FILE: ..." naming the dataset or attribute.

typedef struct ckpt_reader ckpt_reader;

// Opens path and checks that it is an HDF5 file carrying a known format
// version and the complete marker. NULL and a message otherwise.
ckpt_reader *ckpt_open(const char *path, char *err, size_t errlen);
void ckpt_close(ckpt_reader *r);
const char *ckpt_path(const ckpt_reader *r);

// True when name (a dataset or group path) exists.
bool ckpt_has(ckpt_reader *r, const char *name);
// True when obj exists and carries attribute name.
bool ckpt_has_attr(ckpt_reader *r, const char *obj, const char *name);

// Type and shape of dataset name: *rank and dims (CKPT_MAX_RANK entries).
int ckpt_get_info(ckpt_reader *r, const char *name, ckpt_dtype *dtype, int *rank, int64_t *dims,
                  char *err, size_t errlen);

// Reads dataset name into out (prod(expected_dims) elements of dtype) after
// checking its type and shape; a chunk whose checksum fails is an error
// "... dataset NAME failed its checksum (corrupt file)".
int ckpt_get(ckpt_reader *r, const char *name, ckpt_dtype dtype, void *out, int rank,
             const int64_t *expected_dims, char *err, size_t errlen);
// The float32 case: out (expected_dims[0], ..., expected_dims[rank-1]).
int ckpt_get_tensor(ckpt_reader *r, const char *name, float *out, int rank,
                    const int64_t *expected_dims, char *err, size_t errlen);

int ckpt_get_attr_int64(ckpt_reader *r, const char *obj, const char *name, int64_t *out,
                        char *err, size_t errlen);
int ckpt_get_attr_double(ckpt_reader *r, const char *obj, const char *name, double *out,
                         char *err, size_t errlen);
// *out is a malloc'd copy the caller frees.
int ckpt_get_attr_string(ckpt_reader *r, const char *obj, const char *name, char **out,
                         char *err, size_t errlen);

// Every dataset below group ("/" for the whole file), recursively, as full
// paths without the leading '/' (ready for ckpt_get), in creation order.
// *names is a malloc'd array of *count malloc'd strings: ckpt_list_free().
int ckpt_list(ckpt_reader *r, const char *group, char ***names, int *count, char *err,
              size_t errlen);
void ckpt_list_free(char **names, int count);

// Opens path and reads every dataset chunk by chunk, so every checksum is
// checked; also requires each dataset to carry the Fletcher32 filter.
int ckpt_verify(const char *path, char *err, size_t errlen);

// Dataset bytes this process has read from checkpoints so far (ckpt_get and
// ckpt_verify, as stored: decoded elements, not HDF5 metadata): how a resume
// shows which ranks touched the file and how much of it.
int64_t ckpt_bytes_read(void);

// `stretch inspect`: attributes of every group (strings with several lines
// are indented), then each dataset with type and shape (values too when it
// has at most 16 elements), then totals.
int ckpt_print_summary(const char *path, FILE *out, char *err, size_t errlen);
