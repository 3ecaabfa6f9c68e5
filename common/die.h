// die: the one way stretch reports a failure and stops.
//
// die()      an internal or system failure (a bug, an I/O or MPI error):
//            prints "[rank r] file:line: message" and takes every rank down
//            (MPI_Abort when MPI is running), exit status 1.
// die_user() a failure the user caused (bad config, missing file, wrong
//            shape): one line "stretch: error: message", exit status 2,
//            and also takes every rank down.
// CHECK()    an always-on assertion (never compiled out, unlike assert()).
#pragma once

#include <stddef.h>

// Also included by the CUDA sources (C++): C linkage, and C++'s noreturn.
#ifdef __cplusplus
extern "C" {
#define _Noreturn [[noreturn]]
#endif

_Noreturn void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void die_user(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) die_at(__FILE__, __LINE__, "check failed: %s", #cond); \
    } while (0)

// Allocation that never returns NULL (dies with the size on failure).
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#ifdef __cplusplus
#undef _Noreturn
}
#endif
