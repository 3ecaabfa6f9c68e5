// shard: token shard writer and reader. See shard.h and docs/shard-format.md.
#include "shard.h"

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

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shard.c writes token and offset arrays in host order: it needs a little-endian host"
#endif

// Header field byte offsets (docs/shard-format.md).
enum {
    H_MAGIC = 0,
    H_VERSION = 8,
    H_TOKEN_BYTES = 12,
    H_VOCAB = 16,
    H_N_TOKENS = 24,
    H_N_DOCS = 32,
    H_TOKENS_AT = 40,
    H_OFFSETS_AT = 48,
    H_PAYLOAD_CRC = 56,
    H_HEADER_CRC = 60,
};

// ---------------------------------------------------------------------------
// CRC-32 (table for the reflected polynomial 0xEDB88320)

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t shard_crc32(uint32_t crc, const void *buf, size_t n) {
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

// ---------------------------------------------------------------------------
// Helpers

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static int token_bytes_for(int64_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

// ---------------------------------------------------------------------------
// Reader

int shard_open(shard *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errmsg(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        const int e = errno;
        close(fd);
        return errmsg(err, errlen, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return errmsg(err, errlen, "%s: not a regular file", path);
    }
    const uint64_t size = (uint64_t)st.st_size;
    if (size < SHARD_HEADER_BYTES) {
        close(fd);
        return errmsg(err, errlen, "%s: truncated: %llu bytes, shorter than the %d-byte header",
                    path, (unsigned long long)size, SHARD_HEADER_BYTES);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    const int map_errno = errno;
    close(fd);
    if (map == MAP_FAILED)
        return errmsg(err, errlen, "%s: cannot mmap: %s", path, strerror(map_errno));

    const unsigned char *h = map;
    int rc = 0;
    if (memcmp(h + H_MAGIC, SHARD_MAGIC, 8) != 0) {
        rc = errmsg(err, errlen, "%s: bad magic (not a stretch token shard)", path);
        goto out;
    }
    const uint32_t stored_crc = get_u32(h + H_HEADER_CRC);
    const uint32_t computed_crc = shard_crc32(0, h, H_HEADER_CRC);
    if (stored_crc != computed_crc) {
        rc = errmsg(err, errlen,
                  "%s: corrupt header: checksum 0x%08x does not match its contents (0x%08x)",
                  path, stored_crc, computed_crc);
        goto out;
    }
    const uint32_t version = get_u32(h + H_VERSION);
    if (version != 1 && version != SHARD_VERSION) {
        rc = errmsg(err, errlen, "%s: unsupported shard version %u (this build reads versions 1 to %d)",
                  path, version, SHARD_VERSION);
        goto out;
    }
    // version 2: the tokenizer record between the header and the tokens
    const uint64_t want_tokens_at = version == 1 ? SHARD_HEADER_BYTES : SHARD_HEADER_BYTES + SHARD_TOK_RECORD_BYTES;
    const uint32_t tb = get_u32(h + H_TOKEN_BYTES);
    const uint64_t vocab = get_u64(h + H_VOCAB);
    const uint64_t n_tokens = get_u64(h + H_N_TOKENS);
    const uint64_t n_docs = get_u64(h + H_N_DOCS);
    const uint64_t tokens_at = get_u64(h + H_TOKENS_AT);
    const uint64_t offsets_at = get_u64(h + H_OFFSETS_AT);
    if (tb != 2 && tb != 4) {
        rc = errmsg(err, errlen, "%s: invalid token width %u bytes (must be 2 or 4)", path, tb);
        goto out;
    }
    if (vocab < 1 || vocab > SHARD_MAX_VOCAB) {
        rc = errmsg(err, errlen, "%s: invalid vocab_size %llu (must be 1..%d)", path,
                  (unsigned long long)vocab, SHARD_MAX_VOCAB);
        goto out;
    }
    if ((int)tb != token_bytes_for((int64_t)vocab)) {
        rc = errmsg(err, errlen, "%s: token width %u bytes does not match vocab_size %llu "
                  "(uint16 iff vocab_size <= 65536)", path, tb, (unsigned long long)vocab);
        goto out;
    }
    if (tokens_at != want_tokens_at || size < tokens_at) {
        rc = errmsg(err, errlen, "%s: token array at byte %llu, expected %llu", path,
                  (unsigned long long)tokens_at, (unsigned long long)want_tokens_at);
        goto out;
    }
    // Bound the counts by the file size before any arithmetic can overflow.
    if (n_tokens > size / tb || n_docs >= size / 8) {
        rc = errmsg(err, errlen, "%s: truncated: header declares %llu tokens and %llu documents "
                  "but the file has only %llu bytes", path, (unsigned long long)n_tokens,
                  (unsigned long long)n_docs, (unsigned long long)size);
        goto out;
    }
    const uint64_t want_offsets_at = align8(tokens_at + n_tokens * tb);
    if (offsets_at != want_offsets_at) {
        rc = errmsg(err, errlen, "%s: offset array at byte %llu, expected %llu for %llu tokens",
                  path, (unsigned long long)offsets_at, (unsigned long long)want_offsets_at,
                  (unsigned long long)n_tokens);
        goto out;
    }
    const uint64_t want_size = offsets_at + 8 * (n_docs + 1);
    if (size != want_size) {
        rc = errmsg(err, errlen, "%s: %s: file has %llu bytes, its header describes %llu",
                  path, size < want_size ? "truncated" : "trailing bytes",
                  (unsigned long long)size, (unsigned long long)want_size);
        goto out;
    }
    const uint64_t *offsets = (const uint64_t *)(h + offsets_at);
    if (offsets[0] != 0 || offsets[n_docs] != n_tokens) {
        rc = errmsg(err, errlen, "%s: document offsets run from %llu to %llu, expected 0 to %llu",
                  path, (unsigned long long)offsets[0], (unsigned long long)offsets[n_docs],
                  (unsigned long long)n_tokens);
        goto out;
    }
    for (uint64_t d = 0; d < n_docs; d++) {
        if (offsets[d + 1] < offsets[d]) {
            rc = errmsg(err, errlen, "%s: document offsets decrease at document %llu (%llu > %llu)",
                      path, (unsigned long long)d, (unsigned long long)offsets[d],
                      (unsigned long long)offsets[d + 1]);
            goto out;
        }
    }
    s->path = xstrdup(path);
    s->token_bytes = (int)tb;
    s->vocab_size = (int64_t)vocab;
    s->n_tokens = (int64_t)n_tokens;
    s->n_docs = (int64_t)n_docs;
    s->offsets = offsets;
    s->tokens = h + tokens_at;
    s->tokens_at = (int64_t)tokens_at;
    if (version >= 2) {  // the name NUL-padded; a full 56 bytes has no NUL
        s->tok_fingerprint = get_u64(h + SHARD_HEADER_BYTES);
        memcpy(s->tok_name, h + SHARD_HEADER_BYTES + 8, SHARD_TOK_NAME_BYTES);
        s->tok_name[SHARD_TOK_NAME_BYTES] = '\0';
    }
    s->payload_crc = get_u32(h + H_PAYLOAD_CRC);
    s->map = map;
    s->map_bytes = (size_t)size;
    return 0;
out:
    munmap(map, (size_t)size);
    return rc;
}

void shard_close(shard *s) {
    if (s->map) munmap(s->map, s->map_bytes);
    free(s->path);
    memset(s, 0, sizeof *s);
}

int shard_verify(const shard *s, char *err, size_t errlen) {
    const unsigned char *base = s->map;
    const size_t payload = s->map_bytes - SHARD_HEADER_BYTES;
    const uint32_t crc = shard_crc32(0, base + SHARD_HEADER_BYTES, payload);
    if (crc != s->payload_crc)
        return errmsg(err, errlen, "%s: corrupt data: payload checksum 0x%08x, stored 0x%08x",
                    s->path, crc, s->payload_crc);
    const size_t tokens_end = (size_t)s->tokens_at + (size_t)s->n_tokens * s->token_bytes;
    for (size_t i = tokens_end; i < (size_t)align8(tokens_end); i++)
        if (base[i] != 0) return errmsg(err, errlen, "%s: non-zero padding at byte %zu", s->path, i);
    for (int64_t i = 0; i < s->n_tokens; i++) {
        const uint32_t id = s->token_bytes == 2 ? ((const uint16_t *)s->tokens)[i]
                                                : ((const uint32_t *)s->tokens)[i];
        if ((int64_t)id >= s->vocab_size)
            return errmsg(err, errlen, "%s: token %lld has id %u, outside the vocabulary [0, %lld)",
                        s->path, (long long)i, id, (long long)s->vocab_size);
    }
    return 0;
}

int64_t shard_doc_len(const shard *s, int64_t doc) {
    CHECK(doc >= 0 && doc < s->n_docs);
    return (int64_t)(s->offsets[doc + 1] - s->offsets[doc]);
}

void shard_read(int32_t *out, const shard *s, int64_t start, int64_t n) {
    CHECK(start >= 0 && n >= 0 && start + n <= s->n_tokens);
    if (s->token_bytes == 2) {
        const uint16_t *t = (const uint16_t *)s->tokens + start;
        for (int64_t i = 0; i < n; i++) out[i] = t[i];
    } else {
        const uint32_t *t = (const uint32_t *)s->tokens + start;
        for (int64_t i = 0; i < n; i++) out[i] = (int32_t)t[i];
    }
}

// ---------------------------------------------------------------------------
// Writer

struct shard_writer {
    char *path;       // final name
    char *tmp_path;   // "<path>.tmp", renamed to path by close
    FILE *f;          // the shard being written (header first as zeros)
    FILE *offsets;    // unlinked temporary file: offsets[0..n_docs] as uint64
    int token_bytes;
    int64_t vocab_size;
    int64_t n_tokens;
    int64_t n_docs;
    int64_t doc_start;  // first token of the document in progress
    uint64_t tokens_at; // the header, then the tokenizer record
    uint32_t crc;       // CRC-32 of the payload bytes written so far
};

static int write_bytes(FILE *f, const void *buf, size_t n, const char *path, char *err,
                       size_t errlen) {
    if (n && fwrite(buf, 1, n, f) != n)
        return errmsg(err, errlen, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int write_offset(shard_writer *w, uint64_t off, char *err, size_t errlen) {
    return write_bytes(w->offsets, &off, 8, w->path, err, errlen);
}

shard_writer *shard_writer_open(const char *path, int64_t vocab_size, char *err,
                                size_t errlen) {
    return shard_writer_open_tok(path, vocab_size, 0, "", err, errlen);
}

shard_writer *shard_writer_open_tok(const char *path, int64_t vocab_size, uint64_t tok_fingerprint,
                                    const char *tok_name, char *err, size_t errlen) {
    if (vocab_size < 1 || vocab_size > SHARD_MAX_VOCAB) {
        errmsg(err, errlen, "%s: invalid vocab_size %lld (must be 1..%d)", path,
             (long long)vocab_size, SHARD_MAX_VOCAB);
        return NULL;
    }
    shard_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->tmp_path = xmalloc(strlen(path) + 5);
    sprintf(w->tmp_path, "%s.tmp", path);
    w->token_bytes = token_bytes_for(vocab_size);
    w->vocab_size = vocab_size;

    char *offs_tmpl = xmalloc(strlen(path) + 16);
    sprintf(offs_tmpl, "%s.offsets.XXXXXX", path);
    const int ofd = mkstemp(offs_tmpl);
    if (ofd < 0) {
        errmsg(err, errlen, "%s: cannot create temporary file %s: %s", path, offs_tmpl,
             strerror(errno));
        goto bad;
    }
    unlink(offs_tmpl);  // lives until closed: nothing to clean up on a crash
    w->offsets = fdopen(ofd, "w+b");
    if (!w->offsets) {
        close(ofd);
        errmsg(err, errlen, "%s: fdopen failed: %s", path, strerror(errno));
        goto bad;
    }
    w->f = fopen(w->tmp_path, "wb");
    if (!w->f) {
        errmsg(err, errlen, "%s: cannot create %s: %s", path, w->tmp_path, strerror(errno));
        goto bad;
    }
    const unsigned char zeros[SHARD_HEADER_BYTES] = {0};
    if (write_bytes(w->f, zeros, sizeof zeros, w->path, err, errlen) != 0) goto bad;
    // The tokenizer record: fingerprint, then the name's last 55 bytes at most, NUL-padded.
    unsigned char rec[SHARD_TOK_RECORD_BYTES] = {0};
    put_u64(rec, tok_fingerprint);
    size_t n = strlen(tok_name);
    const char *tail = n > SHARD_TOK_NAME_BYTES - 1 ? tok_name + n - (SHARD_TOK_NAME_BYTES - 1) : tok_name;
    memcpy(rec + 8, tail, strlen(tail));
    if (write_bytes(w->f, rec, sizeof rec, w->path, err, errlen) != 0) goto bad;
    w->crc = shard_crc32(0, rec, sizeof rec);
    w->tokens_at = SHARD_HEADER_BYTES + SHARD_TOK_RECORD_BYTES;
    if (write_offset(w, 0, err, errlen) != 0) goto bad;
    free(offs_tmpl);
    return w;
bad:
    free(offs_tmpl);
    shard_writer_abort(w);
    return NULL;
}

int shard_writer_append(shard_writer *w, const int32_t *tokens, int64_t n, char *err,
                        size_t errlen) {
    CHECK(n >= 0);
    enum { CHUNK = 4096 };
    uint32_t buf[CHUNK];  // also holds CHUNK uint16 values
    for (int64_t done = 0; done < n; done += CHUNK) {
        const int64_t m = n - done < CHUNK ? n - done : CHUNK;
        for (int64_t i = 0; i < m; i++) {
            const int32_t id = tokens[done + i];
            if (id < 0 || id >= w->vocab_size)
                return errmsg(err, errlen, "%s: token id %d at position %lld of document %lld "
                            "is outside the vocabulary [0, %lld)", w->path, id,
                            (long long)(w->n_tokens + i - w->doc_start), (long long)w->n_docs,
                            (long long)w->vocab_size);
            if (w->token_bytes == 2) ((uint16_t *)buf)[i] = (uint16_t)id;
            else buf[i] = (uint32_t)id;
        }
        const size_t bytes = (size_t)m * w->token_bytes;
        if (write_bytes(w->f, buf, bytes, w->path, err, errlen) != 0) return -1;
        w->crc = shard_crc32(w->crc, buf, bytes);
        w->n_tokens += m;
    }
    return 0;
}

int shard_writer_end_doc(shard_writer *w, char *err, size_t errlen) {
    if (write_offset(w, (uint64_t)w->n_tokens, err, errlen) != 0) return -1;
    w->n_docs++;
    w->doc_start = w->n_tokens;
    return 0;
}

int shard_writer_add_doc(shard_writer *w, const int32_t *tokens, int64_t n, char *err,
                         size_t errlen) {
    if (shard_writer_append(w, tokens, n, err, errlen) != 0) return -1;
    return shard_writer_end_doc(w, err, errlen);
}

int64_t shard_writer_n_tokens(const shard_writer *w) { return w->n_tokens; }
int64_t shard_writer_n_docs(const shard_writer *w) { return w->n_docs; }

// Padding, offsets and header; the shard under tmp_path is then complete.
static int finish(shard_writer *w, char *err, size_t errlen) {
    if (w->n_tokens > w->doc_start && shard_writer_end_doc(w, err, errlen) != 0) return -1;
    const uint64_t tokens_end = w->tokens_at + (uint64_t)w->n_tokens * w->token_bytes;
    const uint64_t offsets_at = align8(tokens_end);
    const unsigned char zeros[8] = {0};
    if (write_bytes(w->f, zeros, offsets_at - tokens_end, w->path, err, errlen) != 0) return -1;
    w->crc = shard_crc32(w->crc, zeros, offsets_at - tokens_end);

    if (fflush(w->offsets) != 0 || fseek(w->offsets, 0, SEEK_SET) != 0)
        return errmsg(err, errlen, "%s: temporary offsets file: %s", w->path, strerror(errno));
    unsigned char buf[1 << 15];
    uint64_t copied = 0;
    for (;;) {
        const size_t got = fread(buf, 1, sizeof buf, w->offsets);
        if (got == 0) break;
        if (write_bytes(w->f, buf, got, w->path, err, errlen) != 0) return -1;
        w->crc = shard_crc32(w->crc, buf, got);
        copied += got;
    }
    if (ferror(w->offsets) || copied != 8 * ((uint64_t)w->n_docs + 1))
        return errmsg(err, errlen, "%s: reading back the temporary offsets file failed", w->path);

    unsigned char h[SHARD_HEADER_BYTES] = {0};
    memcpy(h + H_MAGIC, SHARD_MAGIC, 8);
    put_u32(h + H_VERSION, SHARD_VERSION);
    put_u32(h + H_TOKEN_BYTES, (uint32_t)w->token_bytes);
    put_u64(h + H_VOCAB, (uint64_t)w->vocab_size);
    put_u64(h + H_N_TOKENS, (uint64_t)w->n_tokens);
    put_u64(h + H_N_DOCS, (uint64_t)w->n_docs);
    put_u64(h + H_TOKENS_AT, w->tokens_at);
    put_u64(h + H_OFFSETS_AT, offsets_at);
    put_u32(h + H_PAYLOAD_CRC, w->crc);
    put_u32(h + H_HEADER_CRC, shard_crc32(0, h, H_HEADER_CRC));
    if (fseek(w->f, 0, SEEK_SET) != 0)
        return errmsg(err, errlen, "%s: seek failed: %s", w->tmp_path, strerror(errno));
    if (write_bytes(w->f, h, sizeof h, w->path, err, errlen) != 0) return -1;
    if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        return errmsg(err, errlen, "%s: flush failed: %s", w->tmp_path, strerror(errno));
    const int rc = fclose(w->f);
    w->f = NULL;
    if (rc != 0) return errmsg(err, errlen, "%s: close failed: %s", w->tmp_path, strerror(errno));
    if (rename(w->tmp_path, w->path) != 0)
        return errmsg(err, errlen, "%s: cannot rename %s to it: %s", w->path, w->tmp_path,
                    strerror(errno));
    return 0;
}

static void writer_free(shard_writer *w) {
    if (w->f) fclose(w->f);
    if (w->offsets) fclose(w->offsets);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

int shard_writer_close(shard_writer *w, char *err, size_t errlen) {
    const int rc = finish(w, err, errlen);
    if (rc != 0) {
        shard_writer_abort(w);
        return -1;
    }
    writer_free(w);
    return 0;
}

void shard_writer_abort(shard_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    unlink(w->tmp_path);
    writer_free(w);
}
