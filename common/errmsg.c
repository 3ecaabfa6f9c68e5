// errmsg: see errmsg.h.
#include "errmsg.h"

#include <stdarg.h>
#include <stdio.h>

int errmsg(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verrmsg(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int verrmsg(char *err, size_t errlen, const char *fmt, va_list ap) {
    if (err && errlen > 0) {
        vsnprintf(err, errlen, fmt, ap);
        // One line, whatever the input quoted in it held (a YAML value with a
        // newline, found by tests/fuzz/fuzz_yaml): control characters become spaces.
        for (char *p = err; *p; p++)
            if ((unsigned char)*p < 0x20) *p = ' ';
    }
    return -1;
}
