// Helpers of the libFuzzer harnesses (tests/fuzz/README.md): the input as a
// file for readers that take a path (in /dev/shm when it exists, so the
// write costs no disk I/O), and the property every reader promises: on
// failure ONE line of message (a non-empty err without a newline).
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// A per-process scratch path ending in suffix (e.g. "x.json").
static inline const char *fuzz_path(const char *suffix) {
    static char path[4][256];
    static int next = 0;
    char *p = path[next++ & 3];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(p, 256, "%s/stretch-fuzz-%d-%s", base, (int)getpid(), suffix);
    return p;
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
}

// A failure message must be one non-empty line.
static inline void fuzz_check_message(const char *err) {
    if (!err[0] || strchr(err, '\n')) {
        fprintf(stderr, "bad error message: '%s'\n", err);
        abort();
    }
}

// data as a NUL-terminated heap string (exact size, so ASan sees overruns).
static inline char *fuzz_string(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}
