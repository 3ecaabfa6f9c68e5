// Tests for data/corpus: fortune files written here into a temporary
// directory (parsing, cleaning, both document units, early stop, a missing
// file), and the installed Debian package when it is there (skipped if not).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus.h"
#include "die.h"

// The file names the corpus reads (the Debian package's, less ascii-art).
static const char *const FILES[] = {
    "art", "computers", "cookie", "debian", "definitions", "disclaimer", "drugs", "education",
    "ethnic", "food", "fortunes", "goedel", "humorists", "kids", "knghtbrd", "law", "linux",
    "linuxcookie", "literature", "love", "magic", "medicine", "men-women", "miscellaneous",
    "news", "paradoxum", "people", "perl", "pets", "platitudes", "politics", "pratchett",
    "riddles", "science", "songs-poems", "sports", "startrek", "tao", "translate-me", "wisdom",
    "work", "zippy",
};
enum { N_FILES = sizeof FILES / sizeof *FILES };

typedef struct {
    int64_t n;
    char text[64][256];
    char source[64][32];
    int64_t stop_after;  // stop when n reaches it (0: never)
} collected;

static int collect(void *ctx, int64_t index, const char *source, const char *text, size_t len) {
    collected *c = ctx;
    assert_int_equal(index, c->n);
    assert_true(len < 256 && c->n < 64);
    memcpy(c->text[c->n], text, len);
    c->text[c->n][len] = 0;
    snprintf(c->source[c->n], sizeof c->source[c->n], "%s", source);
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

static void write_file(const char *dir, const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

// "art" has three fortunes (with overstrike, a control character, trailing
// blanks, blank lines, an empty entry), "zippy" one without a final newline,
// every other file is empty.
static void make_fake(char *dir) {
    strcpy(dir, "/tmp/stretch_test_corpus_XXXXXX");
    assert_non_null(mkdtemp(dir));
    for (int i = 0; i < N_FILES; i++) write_file(dir, FILES[i], "");
    write_file(dir, "art",
               "Art is long.  \n\t-- Hippocrates\n%\n\nA very _\bU_\bN" "lucky week.\x01\n\n%\n"
               "%\n   Indented first line\nsecond line\t \n%\n");
    write_file(dir, "zippy", "Are we having fun yet?\n%\nYow!");
    write_file(dir, "ascii-art", "not read\n%\n");
}

static void test_entries(void **state) {
    (void)state;
    char dir[64], err[256];
    make_fake(dir);
    collected *c = xcalloc(1, sizeof *c);
    assert_int_equal(corpus_fortunes_foreach(dir, CORPUS_ENTRY, collect, c, err, sizeof err), 5);
    assert_int_equal(c->n, 5);
    assert_string_equal(c->text[0], "Art is long.\n\t-- Hippocrates");
    assert_string_equal(c->text[1], "A very UNlucky week.");
    assert_string_equal(c->text[2], "   Indented first line\nsecond line");
    assert_string_equal(c->text[3], "Are we having fun yet?");
    assert_string_equal(c->text[4], "Yow!");
    assert_string_equal(c->source[0], "art");
    assert_string_equal(c->source[4], "zippy");

    // Early stop.
    memset(c, 0, sizeof *c);
    c->stop_after = 2;
    assert_int_equal(corpus_fortunes_foreach(dir, CORPUS_ENTRY, collect, c, err, sizeof err), 2);
    free(c);
    remove_dir(dir);
}

static void test_files(void **state) {
    (void)state;
    char dir[64], err[256];
    make_fake(dir);
    collected *c = xcalloc(1, sizeof *c);
    assert_int_equal(corpus_fortunes_foreach(dir, CORPUS_FILE, collect, c, err, sizeof err), 2);
    assert_string_equal(c->text[0], "Art is long.\n\t-- Hippocrates\n\nA very UNlucky week.\n\n"
                                    "   Indented first line\nsecond line");
    assert_string_equal(c->text[1], "Are we having fun yet?\n\nYow!");
    free(c);
    remove_dir(dir);
}

static void test_missing_file(void **state) {
    (void)state;
    char dir[64], err[256], gone[600];
    make_fake(dir);
    snprintf(gone, sizeof gone, "%s/politics", dir);
    unlink(gone);
    collected *c = xcalloc(1, sizeof *c);
    assert_int_equal(corpus_fortunes_foreach(dir, CORPUS_ENTRY, collect, c, err, sizeof err), -1);
    assert_non_null(strstr(err, gone));
    assert_non_null(strstr(err, "apt-get install fortunes"));
    free(c);
    remove_dir(dir);
}

static void test_clean(void **state) {
    (void)state;
    char s[] = "\n  \nab\b\bcd \r\n\x7f" "e\t\n\n";
    const size_t n = corpus_clean(s, strlen(s));
    assert_int_equal(n, 4);
    assert_memory_equal(s, "cd\ne", 4);
}

typedef struct {
    int64_t docs, bytes, longest;
} totals;

static int count(void *ctx, int64_t index, const char *source, const char *text, size_t len) {
    (void)index, (void)source;
    totals *t = ctx;
    t->docs++;
    t->bytes += (int64_t)len;
    t->longest = (int64_t)len > t->longest ? (int64_t)len : t->longest;
    for (size_t i = 0; i < len; i++) {
        const unsigned char ch = (unsigned char)text[i];
        assert_true(ch >= 0x20 || ch == '\n' || ch == '\t');
    }
    return 0;
}

static void test_installed_package(void **state) {
    (void)state;
    char probe[256];
    snprintf(probe, sizeof probe, "%s/zippy", CORPUS_FORTUNES_DIR);
    if (access(probe, R_OK) != 0) {
        print_message("Debian package 'fortunes' not installed: skipped\n");
        skip();
    }
    char err[512];
    totals e = {0, 0, 0}, f = {0, 0, 0};
    assert_true(corpus_fortunes_foreach(NULL, CORPUS_ENTRY, count, &e, err, sizeof err) > 0);
    assert_true(corpus_fortunes_foreach(NULL, CORPUS_FILE, count, &f, err, sizeof err) > 0);
    print_message("fortunes: %lld entries, %lld bytes; %d files, longest %lld bytes\n",
                  (long long)e.docs, (long long)e.bytes, (int)f.docs, (long long)f.longest);
    assert_true(e.docs > 10000);
    assert_true(e.bytes > 2000000);
    assert_int_equal(f.docs, N_FILES);
    assert_true(f.longest > 100000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries),      cmocka_unit_test(test_files),
        cmocka_unit_test(test_missing_file), cmocka_unit_test(test_clean),
        cmocka_unit_test(test_installed_package),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
