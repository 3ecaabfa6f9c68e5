// dist_hosts: see dist_hosts.h.
#define _GNU_SOURCE
#include "dist_hosts.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "die.h"
#include "numa_sysfs.h"

enum { LINE = 512 };

static void own_host(char *name, size_t len) {
    if (gethostname(name, len) != 0) snprintf(name, len, "?");
    name[len - 1] = '\0';
}

// The gathered fixed-size records of every rank (rank order), caller frees.
static char *gather(dist_ctx *d, const char *mine) {
    int n = d->mpi ? d->size : 1;
    char *all = xcalloc((size_t)n, LINE);
    char rec[LINE] = {0};
    snprintf(rec, sizeof rec, "%s", mine);
    if (!d->mpi || d->size == 1) memcpy(all, rec, LINE);
    else if (MPI_Allgather(rec, LINE, MPI_CHAR, all, LINE, MPI_CHAR, d->world) != MPI_SUCCESS)
        die("MPI_Allgather of the host names failed");
    return all;
}

void dist_host_list(dist_ctx *d, char *out, size_t len) {
    char host[128];
    own_host(host, sizeof host);
    char *all = gather(d, host);
    int n = d->mpi ? d->size : 1;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *h = all + (size_t)i * LINE;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(h, all + (size_t)j * LINE) == 0;
        if (seen) continue;
        int w = snprintf(out + used, len - used, "%s%s", used ? "," : "", h);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
    free(all);
}

// The CPUs this process may run on, as ranges ("0-3,8").
static void cpu_list(char *out, size_t len) {
    cpu_set_t set;
    out[0] = '\0';
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        snprintf(out, len, "?");
        return;
    }
    size_t used = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
        int w = e > c ? snprintf(out + used, len - used, "%s%d-%d", used ? "," : "", c, e)
                      : snprintf(out + used, len - used, "%s%d", used ? "," : "", c);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
        c = e;
    }
}

void dist_log_placement(dist_ctx *d, const char *extra) {
    char host[64], cpus[160], line[LINE];
    own_host(host, sizeof host);
    cpu_list(cpus, sizeof cpus);
    int lr, ls;
    dist_local_rank(d, &lr, &ls);
    int size = d->mpi ? d->size : 1;
    snprintf(line, sizeof line, "rank %d/%d host %s local %d/%d cpus %s%s%s", d->rank, size, host, lr, ls,
             cpus, extra && *extra ? " " : "", extra ? extra : "");
    char *all = gather(d, line);
    if (d->rank == 0) {
        for (int i = 0; i < size; i++) printf("placement: %s\n", all + (size_t)i * LINE);
        fflush(stdout);
    }
    free(all);
}

void dist_warn_gpu_numa(const dist_ctx *d, const char *bus_id) {
    cpu_set_t set;
    char msg[384], host[64];
    if (!bus_id || !*bus_id || sched_getaffinity(0, sizeof set, &set) != 0) return;
    if (numa_gpu_check(bus_id, &set, msg, sizeof msg) != 1) return;
    own_host(host, sizeof host);
    fprintf(stderr, "stretch: warning: rank %d (host %s): %s; bind each rank to its GPU's cores "
                    "(docs/slurm.md, placement)\n", d->rank, host, msg);
    fflush(stderr);
}
