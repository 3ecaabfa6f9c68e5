// gguf: a reader of GGUF files (llama.cpp's model format, versions 2 and 3):
// the header, every metadata key/value (all 13 value types, arrays
// included), the tensor infos and where each tensor's bytes lie.
//
// Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv;
// n_kv times {string key, u32 type, value}; n_tensors times {string name,
// u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset}; padding to
// general.alignment (default 32); the data section. A string is u64 length
// + bytes (no NUL); an array is u32 element type + u64 count + elements.
// ne[0] is the fastest-varying dimension (the columns of a matrix): a GGUF
// tensor with ne = {C, R} is a row-major (R, C) matrix.
//
// Every read is bounds-checked against the buffer, counts are checked
// against the bytes left before anything is allocated, tensor data must lie
// inside the file, be aligned and not overlap the tensor infos. A bad file
// gives NULL and one line "FILE: what (key/tensor, offset N)" in err; the
// parser never exits, so the fuzz test (tests/unit/test_gguf_fuzz.c) runs
// it in-process on every truncation and many mutations of a valid file.
//
// Tested by tests/unit/test_gguf.c (round trip of a file written by the
// test) and test_gguf_fuzz.c.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

// ggml tensor types (the ids GGUF stores); the reader knows every type's
// block size, dequantization (gguf_dequant.h) only some.
enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_BF16 = 30,
};

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    char *key;          // NUL-terminated
    gguf_type type;
    gguf_type elem;     // ARRAY: the element type
    uint64_t n;         // ARRAY: element count
    uint64_t offset;    // file offset of the value (ARRAY: of its first element)
    union {
        uint64_t u;     // unsigned integers, BOOL
        int64_t i;      // signed integers
        double f;       // FLOAT32, FLOAT64
    } v;
    char *str;          // STRING: NUL-terminated copy (str_len bytes, may hold NULs)
    uint64_t str_len;
} gguf_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];  // ne[0] fastest; unused dims are 1
    uint32_t type;              // GGML_TYPE_*
    uint64_t offset;            // from the start of the data section
    uint64_t n_elements;
    uint64_t nbytes;
    const uint8_t *data;        // into the buffer, nbytes long
} gguf_tensor;

typedef struct {
    char *name;                 // for messages
    const uint8_t *buf;         // the whole file
    size_t len;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;       // start of the data section
    int64_t n_kv;
    gguf_kv *kv;
    int64_t n_tensors;
    gguf_tensor *tensors;
    void *map;                  // gguf_open's mapping (NULL for gguf_parse)
} gguf_file;

// Parses buf[0..len) (not copied: it must outlive the result). name is used
// in messages. NULL with a one-line message on any defect.
gguf_file *gguf_parse(const uint8_t *buf, size_t len, const char *name, char *err, size_t errlen);
// Maps path read-only and parses it.
gguf_file *gguf_open(const char *path, char *err, size_t errlen);
void gguf_close(gguf_file *f);

// The entry named key, or NULL.
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

// Typed getters: 0, 1 when the key is absent (out untouched), or -1 with a
// message "FILE: key K: ..." when it has the wrong type or value.
// gguf_get_int accepts every integer type (and BOOL), gguf_get_float every
// integer and float type; gguf_get_str a STRING (pointer into f).
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, char *err, size_t errlen);
int gguf_get_float(const gguf_file *f, const char *key, double *out, char *err, size_t errlen);
int gguf_get_str(const gguf_file *f, const char *key, const char **out, char *err, size_t errlen);
// An array of strings: *out (n NUL-terminated copies, and the array;
// gguf_free_strs frees them). Strings holding a NUL byte are refused.
int gguf_get_str_array(const gguf_file *f, const char *key, char ***out, int64_t *n, char *err,
                       size_t errlen);
void gguf_free_strs(char **strs, int64_t n);
// An array of any integer type as int32 (values must fit).
int gguf_get_i32_array(const gguf_file *f, const char *key, int32_t **out, int64_t *n, char *err,
                       size_t errlen);

// Block size (elements) and bytes per block of a ggml type; false if unknown.
bool gguf_ggml_type_size(uint32_t type, int64_t *block, int64_t *bytes);
const char *gguf_ggml_type_name(uint32_t type);  // "Q4_1", or "type N" (static buffer for unknown)
const char *gguf_type_name(gguf_type type);       // "uint32", "string", ...
// True if the file starts with the GGUF magic.
bool gguf_is_gguf(const char *path);
