// host_mem: how much host memory a node has available, for the checks that
// refuse a run before it allocates (parallel.offload pins host memory).
// Tested by tests/unit/test_host_mem.c.
#pragma once

#include <stdint.h>

// MemAvailable of /proc/meminfo in bytes (what can be had without swapping),
// or -1 when it cannot be read (not Linux).
int64_t host_mem_available(void);

// The same from the text of a meminfo file (the parser alone); -1 without
// a MemAvailable line.
int64_t host_mem_parse_available(const char *meminfo);
