// host_mem: MemAvailable from /proc/meminfo. See host_mem.h.
#include "host_mem.h"

#include <stdio.h>
#include <string.h>

int64_t host_mem_parse_available(const char *meminfo) {
    const char *p = strstr(meminfo, "MemAvailable:");
    long long kb;
    if (!p || sscanf(p + strlen("MemAvailable:"), "%lld", &kb) != 1 || kb < 0) return -1;
    return (int64_t)kb * 1024;
}

int64_t host_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return host_mem_parse_available(buf);
}
