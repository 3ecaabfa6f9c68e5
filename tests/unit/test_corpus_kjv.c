// Tests for data/corpus_kjv: EC02 files written here (blocks by the test's
// own compress(1) encoder, lzw_encode.h): the text comes back whole, books
// become documents without verse labels, the title line is dropped, broken
// files are refused naming the file; and, when bible-kjv-text is installed,
// the real file against gzip -dc of each of its blocks.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus_kjv.h"
#include "lzw_encode.h"

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// Writes text as an EC02 file of blocks of `block` bytes; returns its size.
// corrupt: 0 none, 1 bad magic, 2 an offset past the end, 3 a short block.
static size_t write_ec02(const char *path, const char *text, uint32_t block, int corrupt) {
    const size_t n = strlen(text);
    const uint32_t count = (uint32_t)((n + block - 1) / block);
    const size_t table = 0x5c + 4 * ((size_t)count + 1);
    uint8_t *f = calloc(table + 3, 1);
    memcpy(f, corrupt == 1 ? "EC01" : "EC02", 4);
    memcpy(f + 4, "Compressed Data File", 20);
    put_be32(f + 0x54, block);
    put_be32(f + 0x58, count);
    f[table] = 0x1f, f[table + 1] = 0x9d, f[table + 2] = 0x90;
    size_t size = table + 3, cap = size;
    for (uint32_t i = 0; i < count; i++) {
        put_be32(f + 0x5c + 4 * i, (uint32_t)size);
        size_t len = i + 1 < count ? block : n - (size_t)i * block, zn;
        if (corrupt == 3 && i == 0) len--;
        uint8_t *z = lzwt_encode(&zn, (const uint8_t *)text + (size_t)i * block, len, 16, 1, 0, 0);
        if (size + zn > cap) f = realloc(f, cap = 2 * (size + zn));
        memcpy(f + size, z, zn);
        size += zn;
        free(z);
    }
    put_be32(f + 0x5c + 4 * count, (uint32_t)(size + (corrupt == 2 ? 10 : 0)));
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    assert_int_equal(fwrite(f, 1, size, o), size);
    fclose(o);
    free(f);
    return size;
}

typedef struct {
    int64_t n;
    char source[8][16];
    char text[8][512];
} books;

static int collect(void *ctx, int64_t index, const char *source, const char *text, size_t len) {
    books *b = ctx;
    assert_int_equal(index, b->n);
    assert_true(b->n < 8 && len < 512);
    snprintf(b->source[b->n], sizeof b->source[b->n], "%s", source);
    memcpy(b->text[b->n], text, len);
    b->text[b->n][len] = 0;
    b->n++;
    return 0;
}

static const char *TEXT =
    "Holy Bible, Authorized (King James) Version.  Textfile 930105.\n"
    "Ge1:1 In the beginning God created the heaven and the earth.\n"
    "Ge1:2 And the earth was without form, and void.  \n"
    "Ge2:1 Thus the heavens and the earth were finished.\n"
    "1Sm1:1 Now there was a certain man of Ramathaimzophim.\n"
    "1Sm10:12 And one of the same place answered.\n"
    "Rev22:21 The grace of our Lord Jesus Christ be with you all. Amen.\n";

static void test_books(void **state) {
    (void)state;
    char path[] = "/tmp/stretch_kjv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    const uint32_t blocks[] = {64, 100, 4096};
    for (int b = 0; b < 3; b++) {
        write_ec02(path, TEXT, blocks[b], 0);
        char *text = NULL, err[512];
        size_t len = 0;
        assert_int_equal(corpus_kjv_read(&text, &len, path, err, sizeof err), 0);
        assert_int_equal(len, strlen(TEXT));
        assert_memory_equal(text, TEXT, len);
        free(text);
        books got = {0};
        assert_int_equal(corpus_kjv_foreach(path, collect, &got, err, sizeof err), 3);
        assert_string_equal(got.source[0], "Ge");
        assert_string_equal(got.text[0], "In the beginning God created the heaven and the earth.\n"
                                         "And the earth was without form, and void.\n"
                                         "Thus the heavens and the earth were finished.");
        assert_string_equal(got.source[1], "1Sm");
        assert_string_equal(got.text[1], "Now there was a certain man of Ramathaimzophim.\n"
                                         "And one of the same place answered.");
        assert_string_equal(got.source[2], "Rev");
        assert_string_equal(got.text[2], "The grace of our Lord Jesus Christ be with you all. Amen.");
    }
    unlink(path);
}

static void test_errors(void **state) {
    (void)state;
    char path[] = "/tmp/stretch_kjv_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *text = NULL, err[512];
    size_t len;
    const char *want[] = {NULL, "no EC02 header", "lies outside the file", "not the block size 64"};
    for (int c = 1; c <= 3; c++) {
        write_ec02(path, TEXT, 64, c);
        assert_int_equal(corpus_kjv_read(&text, &len, path, err, sizeof err), -1);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, want[c]));
    }
    unlink(path);
    assert_int_equal(corpus_kjv_read(&text, &len, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "apt-get install bible-kjv-text"));
    assert_int_equal(corpus_kjv_foreach(path, collect, NULL, err, sizeof err), -1);
}

static int count_book(void *ctx, int64_t index, const char *source, const char *text, size_t len) {
    int64_t *c = ctx;  // [books, lines of Genesis, bytes]
    (void)index;
    c[0]++;
    c[2] += (int64_t)len;
    if (!strcmp(source, "Ge")) {
        c[1] = 1;
        for (size_t i = 0; i < len; i++) c[1] += text[i] == '\n';
        assert_memory_equal(text, "In the beginning God created the heaven and the earth.\n", 55);
    }
    if (!strcmp(source, "Rev")) assert_memory_equal(text + len - 5, "Amen.", 5);
    return 0;
}

// The installed package: each block's text as gzip -dc reads it.
static void test_package(void **state) {
    (void)state;
    if (access(CORPUS_KJV_PATH, R_OK) != 0 || system("gzip --version > /dev/null 2>&1") != 0) skip();
    FILE *f = fopen(CORPUS_KJV_PATH, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *raw = malloc((size_t)n);
    assert_int_equal(fread(raw, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    char *text = NULL, err[512];
    size_t len = 0;
    assert_int_equal(corpus_kjv_read(&text, &len, NULL, err, sizeof err), 0);
    const uint32_t count = (uint32_t)raw[0x58] << 24 | (uint32_t)raw[0x59] << 16 | (uint32_t)raw[0x5a] << 8 | raw[0x5b];
    size_t at = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *o = raw + 0x5c + 4 * i;
        const uint32_t a = (uint32_t)o[0] << 24 | (uint32_t)o[1] << 16 | (uint32_t)o[2] << 8 | o[3];
        const uint32_t b = (uint32_t)o[4] << 24 | (uint32_t)o[5] << 16 | (uint32_t)o[6] << 8 | o[7];
        char zpath[] = "/tmp/stretch_kjvz_XXXXXX";
        int fd = mkstemp(zpath);
        assert_true(fd >= 0);
        const uint8_t hdr[3] = {0x1f, 0x9d, 0x90};
        assert_int_equal(write(fd, hdr, 3), 3);
        assert_int_equal(write(fd, raw + a, b - a), (ssize_t)(b - a));
        close(fd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "gzip -dc < %s", zpath);
        FILE *p = popen(cmd, "r");
        static char buf[1 << 17];
        const size_t got = fread(buf, 1, sizeof buf, p);
        assert_int_equal(pclose(p), 0);
        unlink(zpath);
        assert_true(at + got <= len);
        assert_memory_equal(text + at, buf, got);
        at += got;
    }
    assert_int_equal(at, len);
    free(text);
    free(raw);
    int64_t c[3] = {0, 0, 0};
    assert_int_equal(corpus_kjv_foreach(NULL, count_book, c, err, sizeof err), 66);
    assert_int_equal(c[0], 66);
    assert_int_equal(c[1], 1533);  // verses of Genesis
    assert_true(c[2] > 4000000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_books),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_package),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
