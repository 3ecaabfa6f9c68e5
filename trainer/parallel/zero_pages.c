// zero_pages: zero a range and return its whole pages. See zero_pages.h.
#include "zero_pages.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void zero_pages_release(void *p, size_t bytes) {
    if (bytes == 0) return;
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p, b = a + bytes;
    uintptr_t pa = (a + page - 1) / page * page, pb = b / page * page;
    if (pb <= pa || madvise((void *)pa, pb - pa, MADV_DONTNEED) != 0) {
        memset(p, 0, bytes);  // no whole page inside (or refused): plain zeroing
        return;
    }
    memset(p, 0, pa - a);
    memset((void *)pb, 0, b - pb);
}
