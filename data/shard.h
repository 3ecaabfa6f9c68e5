// shard: the binary token shard format of stretch (one file = a list of
// tokenized documents), a streaming writer and a validating mmap reader.
//
// Layout (little-endian; docs/shard-format.md gives it byte by byte):
//   [0, 64)                 header: magic "STRSHARD", version 2, token width
//                           (2 = uint16 when vocab_size <= 65536, else 4 =
//                           uint32), vocab_size, n_tokens, n_docs, the byte
//                           offsets of the two arrays, CRC-32 of the payload,
//                           CRC-32 of the header's first 60 bytes
//   [64, 128)               (version 2) the tokenizer record: its fingerprint
//                           (uint64, tok_fingerprint; 0 = not recorded) and
//                           its name as given (56 bytes, NUL-padded)
//   [tokens_at, ...)        tokens: n_tokens ids, uint16 or uint32 (tokens_at
//                           = 64 in version 1, 128 in version 2)
//   zero padding to a multiple of 8 bytes
//   [offsets_at, end)       offsets: n_docs + 1 uint64; document d is tokens
//                           [offsets[d], offsets[d+1]); offsets[0] = 0,
//                           offsets[n_docs] = n_tokens, non-decreasing
//
// The offsets come after the tokens so the writer streams tokens straight to
// the file in constant memory: the offsets go to an unlinked temporary file
// beside the output (8 bytes per document on disk, not in memory) and are
// appended at close. The shard is written under "<path>.tmp", fsync'd and
// renamed, so a crash never leaves a half-written shard under its name.
//
// Opening checks everything that costs O(n_docs): magic, header checksum,
// version, widths, sizes against the file length, offsets. shard_verify()
// additionally reads every token (payload checksum, ids < vocab_size).
// Errors: -1 and one line "<path>: <what is wrong>" in the caller's buffer.
//
// Tested by tests/unit/test_data.c: round trips (uint16 and uint32), CRC-32
// check value, bad magic, corrupt header, truncated/extended files, offsets
// not monotone, payload corruption caught by shard_verify.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC "STRSHARD"
#define SHARD_VERSION 2         // writes 2; reads 1 (no tokenizer record) and 2
#define SHARD_HEADER_BYTES 64
#define SHARD_TOK_RECORD_BYTES 64  // version 2, after the header: fingerprint (8), name (56)
#define SHARD_TOK_NAME_BYTES 56
#define SHARD_MAX_VOCAB 2147483647  // ids are int32 in memory

// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320), chainable: start with
// crc = 0; shard_crc32(0, "123456789", 9) = 0xCBF43926.
uint32_t shard_crc32(uint32_t crc, const void *buf, size_t n);

// ---------------------------------------------------------------------------
// Reader

typedef struct {
    char *path;               // copy of the path, for messages
    int token_bytes;          // 2 (uint16) or 4 (uint32)
    int64_t vocab_size;       // ids are in [0, vocab_size)
    int64_t n_tokens;
    int64_t n_docs;
    const uint64_t *offsets;  // (n_docs + 1) first token of each document
    const void *tokens;       // (n_tokens) uint16 or uint32
    int64_t tokens_at;        // byte offset of tokens: 64 (version 1) or 128 (version 2)
    uint64_t tok_fingerprint; // tok_fingerprint of the tokenizer that made it; 0 = not recorded
    char tok_name[SHARD_TOK_NAME_BYTES + 1];  // that tokenizer as given ("byte", a file name); "" = none
    uint32_t payload_crc;     // stored CRC-32 of bytes [64, end)
    void *map;                // the whole file, read-only
    size_t map_bytes;
} shard;

// Maps and validates path. 0 on success; -1 with a message in err otherwise
// (s is then left closed).
int shard_open(shard *s, const char *path, char *err, size_t errlen);
void shard_close(shard *s);

// Reads every byte: payload checksum, zero padding, every id < vocab_size.
int shard_verify(const shard *s, char *err, size_t errlen);

int64_t shard_doc_len(const shard *s, int64_t doc);

// out: (n) ids of tokens [start, start + n), widened to int32.
void shard_read(int32_t *out, const shard *s, int64_t start, int64_t n);

// ---------------------------------------------------------------------------
// Writer

typedef struct shard_writer shard_writer;

// Starts "<path>.tmp". token width from vocab_size (1..SHARD_MAX_VOCAB).
// NULL with a message in err on failure. No tokenizer recorded (fingerprint 0).
shard_writer *shard_writer_open(const char *path, int64_t vocab_size, char *err,
                                size_t errlen);
// The same, recording the tokenizer: its fingerprint (tok_fingerprint) and
// its name as given (the last 55 bytes of it kept).
shard_writer *shard_writer_open_tok(const char *path, int64_t vocab_size, uint64_t tok_fingerprint,
                                    const char *tok_name, char *err, size_t errlen);

// tokens: (n) appended to the current document (a document may arrive in
// pieces). Every id must be in [0, vocab_size).
int shard_writer_append(shard_writer *w, const int32_t *tokens, int64_t n, char *err,
                        size_t errlen);

// Ends the current document (possibly empty).
int shard_writer_end_doc(shard_writer *w, char *err, size_t errlen);

// shard_writer_append + shard_writer_end_doc.
int shard_writer_add_doc(shard_writer *w, const int32_t *tokens, int64_t n, char *err,
                         size_t errlen);

int64_t shard_writer_n_tokens(const shard_writer *w);
int64_t shard_writer_n_docs(const shard_writer *w);  // ended documents

// Ends a document in progress (one with appended tokens), writes offsets and
// header, fsyncs and renames to path. Frees w whatever the outcome; on
// failure the temporary file is removed and path is untouched.
int shard_writer_close(shard_writer *w, char *err, size_t errlen);

// Drops everything written: removes the temporary file, frees w.
void shard_writer_abort(shard_writer *w);
