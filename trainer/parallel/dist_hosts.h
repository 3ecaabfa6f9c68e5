// dist_hosts: where the ranks run. The host list (for out_dir/heartbeat.json)
// and one placement line per rank (host, local rank, the CPUs it may run on,
// what the caller adds: its GPU), gathered to rank 0, printed at start-up so
// a rank placed away from its GPU or NIC shows in the job log.
//
// Tested by tests/cli/test_watchdog.sh (the heartbeat's host list, the
// placement lines under mpirun); the NUMA warning by tests/unit/test_numa_sysfs.c.
#pragma once

#include <stddef.h>

#include "dist.h"

// Collective. The distinct host names of all ranks, comma-separated, in rank
// order of first appearance (truncated to len).
void dist_host_list(dist_ctx *d, char *out, size_t len);

// Collective. Rank 0 prints "rank R/N host H local L/LN cpus C <extra>" for
// every rank to stdout.
void dist_log_placement(dist_ctx *d, const char *extra);

// Not collective. One warning line on stderr when this rank's CPUs (its
// affinity) are not all on the NUMA node of the GPU at PCI bus_id
// (numa_sysfs.h); nothing when they are or sysfs cannot tell.
void dist_warn_gpu_numa(const dist_ctx *d, const char *bus_id);
