// Tests for data/lzw: streams of an independent encoder (lzw_encode.h) decode
// to their input (widths 9..16, clears, the KwKwK case, non-block mode); the
// encoder's streams are .Z files gzip -dc reads back (so both ends speak the
// real format); corrupt streams and headers are refused with a message.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lzw.h"
#include "lzw_encode.h"
#include "rng.h"

// Text with repeats (long matches, the table fills) and noise (new entries).
static uint8_t *sample(size_t n, uint64_t seed) {
    uint8_t *d = malloc(n);
    rng_state r;
    rng_seed(&r, seed);
    static const char *words[] = {"the ", "heaven ", "and ", "earth ", "was ", "without ", "form, ",
                                  "void; ", "darkness ", "upon ", "face ", "of ", "deep.\n"};
    size_t i = 0;
    while (i < n) {
        if (rng_below(&r, 4) == 0) {
            d[i++] = (uint8_t)rng_below(&r, 256);
            continue;
        }
        const char *w = words[rng_below(&r, sizeof words / sizeof *words)];
        for (size_t k = 0; w[k] && i < n; k++) d[i++] = (uint8_t)w[k];
    }
    return d;
}

static void roundtrip(const uint8_t *data, size_t n, int max_bits, int block_mode, int clear_every) {
    size_t zn;
    uint8_t *z = lzwt_encode(&zn, data, n, max_bits, block_mode, clear_every, 1);
    int bits;
    bool block;
    char err[256];
    assert_int_equal(lzw_header(z, &bits, &block, err, sizeof err), 0);
    assert_int_equal(bits, max_bits);
    assert_int_equal(block, block_mode != 0);
    uint8_t *out = malloc(n + 1);
    int64_t got = lzw_decode(out, n + 1, z + 3, zn - 3, bits, block, err, sizeof err);
    assert_int_equal(got, (int64_t)n);
    assert_memory_equal(out, data, n);
    free(out);
    free(z);
}

static void test_roundtrip(void **state) {
    (void)state;
    const size_t sizes[] = {1, 2, 7, 300, 5000, 200000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        uint8_t *d = sample(sizes[s], 42 + s);
        roundtrip(d, sizes[s], 16, 1, 0);
        roundtrip(d, sizes[s], 12, 1, 0);  // the table fills: no entries after 4096
        roundtrip(d, sizes[s], 9, 1, 0);
        roundtrip(d, sizes[s], 16, 0, 0);  // no clear code: 256 is an entry
        roundtrip(d, sizes[s], 16, 1, 700);
        roundtrip(d, sizes[s], 12, 1, 3);
        free(d);
    }
}

// "aaaa...": every new code is the one being defined (KwKwK).
static void test_kwkwk(void **state) {
    (void)state;
    uint8_t d[5000];
    memset(d, 'a', sizeof d);
    roundtrip(d, sizeof d, 16, 1, 0);
    roundtrip(d, 1, 16, 1, 0);
    roundtrip(d, 3, 16, 1, 0);
}

// The encoder's .Z files read back by gzip (its unlzw is another decoder).
static void test_gzip_reads_encoder(void **state) {
    (void)state;
    if (system("gzip --version > /dev/null 2>&1") != 0) skip();
    const int bits[] = {16, 12, 16}, clears[] = {0, 0, 500};
    for (int t = 0; t < 3; t++) {
        const size_t n = 150000;
        uint8_t *d = sample(n, 7 + (uint64_t)t);
        size_t zn;
        uint8_t *z = lzwt_encode(&zn, d, n, bits[t], 1, clears[t], 1);
        char zpath[] = "/tmp/stretch_lzw_XXXXXX";
        int fd = mkstemp(zpath);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, z, zn), (ssize_t)zn);
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "gzip -dc < %s", zpath);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        uint8_t *back = malloc(n + 1);
        size_t got = fread(back, 1, n + 1, p);
        assert_int_equal(pclose(p), 0);
        assert_int_equal(got, n);
        assert_memory_equal(back, d, n);
        unlink(zpath);
        free(back);
        free(z);
        free(d);
    }
}

static void test_errors(void **state) {
    (void)state;
    char err[256];
    int bits;
    bool block;
    const uint8_t gz[3] = {0x1f, 0x8b, 0x08}, wide[3] = {0x1f, 0x9d, 0x91};
    assert_int_equal(lzw_header(gz, &bits, &block, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a compress(1) stream"));
    assert_int_equal(lzw_header(wide, &bits, &block, err, sizeof err), -1);
    assert_non_null(strstr(err, "17-bit"));
    uint8_t out[64];
    // first code 300 (9 bits, LSB first): 300 = 0x12c
    const uint8_t first_bad[2] = {0x2c, 0x01};
    assert_int_equal(lzw_decode(out, sizeof out, first_bad, 2, 16, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "starts with code 300"));
    // 'a' then code 400: the next entry to be defined is 257
    const uint8_t undefined[3] = {0x61, 0x20, 0x03};
    assert_int_equal(lzw_decode(out, sizeof out, undefined, 3, 16, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "code 400 before it is defined"));
    size_t zn;
    uint8_t text[100];
    memset(text, 'x', sizeof text);
    uint8_t *z = lzwt_encode(&zn, text, sizeof text, 16, 1, 0, 0);
    assert_int_equal(lzw_decode(out, sizeof out, z, zn, 16, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 64 bytes"));
    assert_int_equal(lzw_decode(out, sizeof out, z, zn, 8, true, err, sizeof err), -1);
    free(z);
    // an empty stream is empty text
    assert_int_equal(lzw_decode(out, sizeof out, text, 0, 16, true, err, sizeof err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_kwkwk),
        cmocka_unit_test(test_gzip_reads_encoder),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
