// numa_sysfs: see numa_sysfs.h.
#define _GNU_SOURCE
#include "numa_sysfs.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *sysfs_root(void) {
    const char *r = getenv("STRETCH_SYSFS_ROOT");
    return r && *r ? r : "/sys";
}

int numa_node_of_pci(const char *bus_id) {
    char id[64], path[512];
    size_t n = 0;
    for (; bus_id[n] && n < sizeof id - 1; n++) id[n] = (char)tolower((unsigned char)bus_id[n]);
    id[n] = '\0';
    snprintf(path, sizeof path, "%s/bus/pci/devices/%s/numa_node", sysfs_root(), id);
    FILE *f = fopen(path, "r");
    int node = -1;
    if (!f) return -1;
    if (fscanf(f, "%d", &node) != 1) node = -1;
    fclose(f);
    return node;
}

// Whether cpulist text ("0-3,8,10-11") names a CPU of cpus.
static int list_meets(const char *text, const cpu_set_t *cpus) {
    const char *p = text;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) break;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        for (long c = a; c <= b && c < CPU_SETSIZE; c++)
            if (c >= 0 && CPU_ISSET((int)c, cpus)) return 1;
        p = *end == ',' ? end + 1 : end;
        if (*p == '\n') break;
    }
    return 0;
}

uint64_t numa_nodes_of_cpus(const cpu_set_t *cpus) {
    uint64_t mask = 0;
    for (int node = 0; node < 64; node++) {
        char path[512], text[4096];
        snprintf(path, sizeof path, "%s/devices/system/node/node%d/cpulist", sysfs_root(), node);
        FILE *f = fopen(path, "r");
        if (!f) continue;  // node numbers may have holes
        size_t got = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[got] = '\0';
        if (list_meets(text, cpus)) mask |= (uint64_t)1 << node;
    }
    return mask;
}

int numa_gpu_check(const char *bus_id, const cpu_set_t *cpus, char *msg, size_t len) {
    int gpu = numa_node_of_pci(bus_id);
    uint64_t nodes = numa_nodes_of_cpus(cpus);
    if (gpu < 0 || gpu > 63 || nodes == 0 || nodes == (uint64_t)1 << gpu) return 0;
    char list[256] = "";
    size_t used = 0;
    for (int n = 0; n < 64; n++)
        if (nodes >> n & 1) {
            int w = snprintf(list + used, sizeof list - used, "%s%d", used ? "," : "", n);
            if (w < 0 || (size_t)w >= sizeof list - used) break;
            used += (size_t)w;
        }
    snprintf(msg, len, "GPU %s is on NUMA node %d, its cpus are on node(s) %s", bus_id, gpu, list);
    return 1;
}
