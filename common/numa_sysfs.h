// numa_sysfs: which NUMA node a PCI device (a GPU) and a set of CPUs sit on,
// read from sysfs, so a rank whose cores are on another socket than its GPU
// is warned about at start-up (docs/slurm.md: placement).
//
// The sysfs root is /sys, or $STRETCH_SYSFS_ROOT (tests build a fake tree):
//   <root>/bus/pci/devices/<bus id>/numa_node   the device's node, -1 unknown
//   <root>/devices/system/node/node<N>/cpulist  node N's CPUs ("0-15,32-47")
//
// Tested by tests/unit/test_numa_sysfs.c on fake sysfs trees.
#pragma once

// cpu_set_t: the including file defines _GNU_SOURCE before any header.
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

// The node of PCI device bus_id ("0000:1B:00.0", any case); -1 when sysfs
// does not say (no such file, -1 in it: a one-node machine).
int numa_node_of_pci(const char *bus_id);

// Bit N of the result: node N holds a CPU of cpus (nodes 0..63); 0 when
// sysfs lists no nodes.
uint64_t numa_nodes_of_cpus(const cpu_set_t *cpus);

// 1 with one line in msg when the GPU at bus_id is on a node that cpus do
// not lie (wholly) on, e.g. "GPU 0000:1b:00.0 is on NUMA node 1, its
// cpus are on node(s) 0"; 0 when they agree or sysfs cannot tell.
int numa_gpu_check(const char *bus_id, const cpu_set_t *cpus, char *msg, size_t len);
