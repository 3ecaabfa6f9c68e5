// corpus_kjv: the King James Bible of bible-kjv-text. See corpus_kjv.h.
#include "corpus_kjv.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"
#include "lzw.h"

enum { KJV_HEADER = 0x5c, KJV_MAX_BLOCK = 1 << 24 };

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int read_all(uint8_t **buf, size_t *len, const char *path, char *err, size_t errlen) {
    const int rc = fsutil_read_all(path, (void **)buf, len);
    if (rc == FSUTIL_READ_OPEN)
        return errmsg(err, errlen, "%s: cannot open: %s (the King James Bible comes from the Debian "
                      "package 'bible-kjv-text': apt-get install bible-kjv-text)", path, strerror(errno));
    if (rc != 0) return errmsg(err, errlen, "%s: read error", path);
    return 0;
}

// Decodes the blocks of the file image f[0, n) into *text.
static int decode_blocks(char **text, size_t *len, const uint8_t *f, size_t n, const char *path,
                         char *err, size_t errlen) {
    if (n < KJV_HEADER || memcmp(f, "EC02", 4) != 0)
        return errmsg(err, errlen, "%s: not a bible-kjv data file (no EC02 header)", path);
    const uint32_t block = be32(f + 0x54), count = be32(f + 0x58);
    if (block == 0 || block > KJV_MAX_BLOCK || count == 0 ||
        (uint64_t)KJV_HEADER + 4 * ((uint64_t)count + 1) + 3 > n)
        return errmsg(err, errlen, "%s: bad EC02 header (block size %u, %u blocks, %zu bytes)", path,
                      block, count, n);
    uint32_t *off = xmalloc(sizeof(uint32_t) * ((size_t)count + 1));
    int rc = 0;
    for (uint32_t i = 0; i <= count; i++) off[i] = be32(f + KJV_HEADER + 4 * (size_t)i);
    const size_t table_end = KJV_HEADER + 4 * ((size_t)count + 1);
    for (uint32_t i = 0; i < count && rc == 0; i++)
        if (off[i] > off[i + 1] || off[i + 1] > n)
            rc = errmsg(err, errlen, "%s: block %u lies outside the file (%u..%u of %zu bytes)", path, i,
                        off[i], off[i + 1], n);
    if (rc == 0 && (off[0] < table_end + 3))
        rc = errmsg(err, errlen, "%s: block 0 starts inside the header (offset %u)", path, off[0]);
    int max_bits = 0;
    bool block_mode = false;
    char why[256];
    if (rc == 0 && lzw_header(f + off[0] - 3, &max_bits, &block_mode, why, sizeof why) != 0)
        rc = errmsg(err, errlen, "%s: %s", path, why);
    char *out = rc == 0 ? xmalloc((size_t)block * count) : NULL;
    size_t total = 0;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        const int64_t got = lzw_decode((uint8_t *)out + total, block, f + off[i], off[i + 1] - off[i],
                                       max_bits, block_mode, why, sizeof why);
        if (got < 0) rc = errmsg(err, errlen, "%s: block %u: %s", path, i, why);
        else if (i + 1 < count && got != (int64_t)block)
            rc = errmsg(err, errlen, "%s: block %u decodes to %lld bytes, not the block size %u", path, i,
                        (long long)got, block);
        else total += (size_t)got;
    }
    free(off);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *text = out;
    *len = total;
    return 0;
}

int corpus_kjv_read(char **text, size_t *len, const char *path, char *err, size_t errlen) {
    if (!path) path = CORPUS_KJV_PATH;
    uint8_t *f = NULL;
    size_t n = 0;
    if (read_all(&f, &n, path, err, errlen) != 0) return -1;
    const int rc = decode_blocks(text, len, f, n, path, err, errlen);
    free(f);
    return rc;
}

// The length of a verse label at s ("Ge1:1", "1Sm12:3": [1-3]? letters
// digits ':' digits, then a space), or 0; *book gets the length of its book
// part ("Ge", "1Sm").
static size_t verse_label(const char *s, size_t n, size_t *book) {
    size_t i = 0;
    if (i < n && s[i] >= '1' && s[i] <= '3') i++;
    const size_t letters = i;
    while (i < n && isalpha((unsigned char)s[i])) i++;
    if (i == letters) return 0;
    *book = i;
    const size_t chapter = i;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    if (i == chapter || i >= n || s[i] != ':') return 0;
    const size_t verse = ++i;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    if (i == verse || i >= n || s[i] != ' ') return 0;
    return i + 1;
}

int64_t corpus_kjv_foreach(const char *path, corpus_doc_fn fn, void *ctx, char *err, size_t errlen) {
    char *text = NULL;
    size_t len = 0;
    if (corpus_kjv_read(&text, &len, path, err, errlen) != 0) return -1;
    char *doc = xmalloc(len + 1);
    size_t doc_len = 0;
    char book[16] = "";
    int64_t index = 0;
    int stop = 0;
    for (size_t pos = 0; pos < len && !stop;) {
        size_t eol = pos;
        while (eol < len && text[eol] != '\n') eol++;
        const char *line = text + pos;
        size_t n = eol - pos, book_len = 0;
        pos = eol + 1;
        const size_t label = verse_label(line, n, &book_len);
        if (label == 0 || book_len >= sizeof book) continue;  // the title line
        if (strncmp(book, line, book_len) != 0 || book[book_len] != 0) {
            if (doc_len > 0) stop = fn(ctx, index++, book, doc, doc_len) != 0;
            memcpy(book, line, book_len);
            book[book_len] = 0;
            doc_len = 0;
        }
        while (n > label && isspace((unsigned char)line[n - 1])) n--;
        if (n == label) continue;
        if (doc_len > 0) doc[doc_len++] = '\n';
        memcpy(doc + doc_len, line + label, n - label);
        doc_len += n - label;
    }
    if (doc_len > 0 && !stop) fn(ctx, index++, book, doc, doc_len);
    free(doc);
    free(text);
    return index;
}
