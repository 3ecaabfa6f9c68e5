// safetensors: the Hugging Face tensor file format, read and written.
//
// A .safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON ({"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
// ..., "__metadata__": {...}}), then the raw little-endian tensor bytes;
// offsets are relative to the end of the header and the tensors must tile
// the data exactly (no holes, no overlap). A large model is split into
// shards listed by model.safetensors.index.json ({"weight_map": {"NAME":
// "model-00001-of-00002.safetensors", ...}}).
//
// Reading maps the files (mmap) and validates every header entry against the
// file size before any tensor is touched; tensors of dtype F32, F16 and BF16
// are converted to fp32 on read (other dtypes are listed but not readable).
// Writing stores F32, BF16 or F16 (converted from fp32, round to nearest
// even), header padded with spaces to a multiple of 8 bytes, metadata
// {"format": "pt"}; the file is written as NAME.tmp, fsync'd and renamed.
// Errors name the file and the tensor.
//
// Tested by tests/unit/test_hfio.c: round trips in every writable dtype with
// exact expected conversions (rounding, subnormals, overflow, NaN), sharded
// directories, and corrupt files (bad header, offsets beyond the file,
// holes, duplicate names, a missing tensor, a wrong shape).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_RANK 8

typedef enum {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_OTHER,  // a dtype the format defines that stretch only skips over (U16, F8_E4M3, ...)
} st_dtype;

const char *st_dtype_name(st_dtype dtype);  // "F32", "BF16", ...

// One tensor of an open reader.
typedef struct {
    const char *name;
    const char *file;     // path of the .safetensors file holding it
    st_dtype dtype;
    char dtype_name[16];  // as written in the header
    int rank;
    int64_t shape[ST_MAX_RANK];
    int64_t n_elements;
    int64_t n_bytes;
    const void *data;     // into the mapping; may be unaligned
} st_tensor;

// fp32 <-> 16-bit conversions (round to nearest even; NaN stays NaN).
uint16_t st_f32_to_bf16(float x);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float x);
float st_f16_to_f32(uint16_t h);

// ---------------------------------------------------------------------------
// Reading

typedef struct st_reader st_reader;

// path: a .safetensors file, or a directory holding model.safetensors or
// model.safetensors.index.json (+ its shards). NULL and a one-line message
// naming the file (and tensor) on failure.
st_reader *st_open(const char *path, char *err, size_t errlen);
void st_close(st_reader *r);

int st_count(const st_reader *r);
const st_tensor *st_tensor_at(const st_reader *r, int i);  // sorted by name
const st_tensor *st_find(const st_reader *r, const char *name);  // NULL if absent

// Reads tensor name as fp32 into out (prod(shape) floats) after checking that
// it exists, has the given rank and shape, and a readable dtype.
// 0, or -1 with "FILE: tensor NAME: ..." in err.
int st_read_f32(float *out, const st_reader *r, const char *name, int rank,
                const int64_t *shape, char *err, size_t errlen);

// ---------------------------------------------------------------------------
// Writing

typedef struct st_writer st_writer;

st_writer *st_writer_new(void);
void st_writer_free(st_writer *w);

// Adds a tensor stored as dtype (ST_F32, ST_BF16 or ST_F16). data
// (shape[0], ..., shape[rank-1]) is NOT copied: it must stay valid until
// st_write. Names must be unique (checked by st_write).
void st_writer_add(st_writer *w, const char *name, st_dtype dtype, const float *data, int rank,
                   const int64_t *shape);

// Writes every tensor added, in order, to path (path.tmp, fsync, rename,
// fsync of the directory). 0, or -1 with a message naming the file.
int st_write(const st_writer *w, const char *path, char *err, size_t errlen);
