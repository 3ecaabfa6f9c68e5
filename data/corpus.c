// corpus: documents from the Debian "fortunes" package. See corpus.h.
#include "corpus.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "fsutil.h"

// The package's fortune files (fortunes + fortunes-min), sorted, without
// "ascii-art".
static const char *const FORTUNE_FILES[] = {
    "art",        "computers",  "cookie",      "debian",        "definitions", "disclaimer",
    "drugs",      "education",  "ethnic",      "food",          "fortunes",    "goedel",
    "humorists",  "kids",       "knghtbrd",    "law",           "linux",       "linuxcookie",
    "literature", "love",       "magic",       "medicine",      "men-women",   "miscellaneous",
    "news",       "paradoxum",  "people",      "perl",          "pets",        "platitudes",
    "politics",   "pratchett",  "riddles",     "science",       "songs-poems", "sports",
    "startrek",   "tao",        "translate-me", "wisdom",       "work",        "zippy",
};
enum { N_FORTUNE_FILES = sizeof FORTUNE_FILES / sizeof FORTUNE_FILES[0] };

size_t corpus_clean(char *text, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char c = (unsigned char)text[i];
        if (c == '\b') {  // overstrike: drop the struck character too
            if (n > 0 && text[n - 1] != '\n') n--;
            continue;
        }
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) continue;
        if (c == '\n') {  // trailing blanks of the line
            while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t')) n--;
        }
        text[n++] = (char)c;
    }
    while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t' || text[n - 1] == '\n')) n--;
    size_t lead = 0;  // leading blank lines (keep the indentation of the first line)
    for (size_t i = 0; i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n'); i++)
        if (text[i] == '\n') lead = i + 1;
    memmove(text, text + lead, n - lead);
    return n - lead;
}

static int read_file(char **buf, size_t *len, const char *path, char *err, size_t errlen) {
    const int rc = fsutil_read_all(path, (void **)buf, len);
    if (rc == FSUTIL_READ_OPEN)
        return errmsg(err, errlen, "%s: cannot open: %s (the demo corpus comes from the Debian "
                    "package 'fortunes': apt-get install fortunes)", path, strerror(errno));
    if (rc != 0) return errmsg(err, errlen, "%s: read error", path);
    return 0;
}

int64_t corpus_fortunes_foreach(const char *dir, corpus_unit unit, corpus_doc_fn fn, void *ctx,
                                char *err, size_t errlen) {
    if (!dir) dir = CORPUS_FORTUNES_DIR;
    int64_t index = 0;
    for (int fi = 0; fi < N_FORTUNE_FILES; fi++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, FORTUNE_FILES[fi]);
        char *buf = NULL;
        size_t len = 0;
        if (read_file(&buf, &len, path, err, errlen) != 0) return -1;
        // Entries are separated by lines holding only "%"; each is cleaned in
        // place. CORPUS_FILE joins them, separated by blank lines, in out.
        char *out = unit == CORPUS_FILE ? xmalloc(len + 1) : NULL;
        size_t joined = 0, start = 0;
        int stop = 0;
        while (start <= len && !stop) {
            size_t end = len, next = len + 1, line = start;
            while (line < len) {
                size_t eol = line;
                while (eol < len && buf[eol] != '\n') eol++;
                if (eol - line == 1 && buf[line] == '%') {
                    end = line;
                    next = eol + 1;
                    break;
                }
                line = eol + 1;
            }
            const size_t n = corpus_clean(buf + start, end - start);
            if (n > 0 && unit == CORPUS_ENTRY) {
                stop = fn(ctx, index++, FORTUNE_FILES[fi], buf + start, n) != 0;
            } else if (n > 0) {
                if (joined > 0) {
                    out[joined++] = '\n';
                    out[joined++] = '\n';
                }
                memcpy(out + joined, buf + start, n);
                joined += n;
            }
            start = next;
        }
        if (unit == CORPUS_FILE && joined > 0 && !stop)
            stop = fn(ctx, index++, FORTUNE_FILES[fi], out, joined) != 0;
        free(out);
        free(buf);
        if (stop) break;
    }
    return index;
}
