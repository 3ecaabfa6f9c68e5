// gguf_write: a writer of GGUF version 3 files, the counterpart of gguf.h's
// reader: metadata keys of the scalar, string and array types, a verbatim
// copy of a key from a file being read (e.g. a tokenizer's lists), and
// tensors of any ggml type whose bytes the caller has already encoded.
//
// Keys and tensors are written in the order they were added; the data
// section is aligned to GGUF_DEFAULT_ALIGNMENT (32) and so is every tensor.
// The file is written atomically (fsutil.h): a reader never sees a part.
// Adding a key or tensor twice is a programming error (the writer checks
// and gguf_writer_save refuses with a message).
//
// Tested by tests/unit/test_gguf_write.c (everything read back by gguf.h)
// and bench/gguf_pyread.py (read by gguf-py, an independent reader).
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);

void gguf_w_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_w_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_w_f32(gguf_writer *w, const char *key, float v);
void gguf_w_bool(gguf_writer *w, const char *key, bool v);
void gguf_w_str(gguf_writer *w, const char *key, const char *v);
// Arrays: n strings (NUL-terminated), int32s, float32s.
void gguf_w_str_array(gguf_writer *w, const char *key, const char *const *v, int64_t n);
void gguf_w_i32_array(gguf_writer *w, const char *key, const int32_t *v, int64_t n);
void gguf_w_f32_array(gguf_writer *w, const char *key, const float *v, int64_t n);
// The key kv of the open file f, type and value byte for byte.
void gguf_w_copy_kv(gguf_writer *w, const gguf_file *f, const gguf_kv *kv);

// A tensor: ne[0..n_dims) fastest first, ggml type, nbytes of data (already
// in the type's block format). The bytes are copied.
void gguf_w_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *ne, uint32_t type,
                   const void *data, uint64_t nbytes);

// True if key was added.
bool gguf_w_has(const gguf_writer *w, const char *key);

// Writes the file atomically. 0, or -1 with a one-line message naming path.
int gguf_writer_save(gguf_writer *w, const char *path, char *err, size_t errlen);
