// errmsg: the way a function that validates user input reports why it said
// no: it formats one line into the caller's buffer and returns -1, so the
// caller can pass the message up or hand it to die_user() (exit 2).
#pragma once

#include <stdarg.h>
#include <stddef.h>

// Writes the message into err (when err != NULL and errlen > 0), control
// characters (newlines of a quoted value) replaced by spaces; returns -1.
int errmsg(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// The same from a va_list (a module's own reporter that adds a prefix).
int verrmsg(char *err, size_t errlen, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
