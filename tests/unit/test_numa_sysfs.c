// Tests for common/numa_sysfs on a fake sysfs tree ($STRETCH_SYSFS_ROOT): a
// two-socket machine (node 0: cpus 0-3,8-11; node 1: cpus 4-7,12-15) with
// a GPU on each node and one whose node sysfs does not know (-1). Each
// answer is checked against the tree written here.
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "dist_hosts.h"
#include "numa_sysfs.h"
#include "test_tmpdir.h"

static void write_file(const char *root, const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)  // mkdir -p of the parents
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state) {
    if (tmpdir_setup(state, "test_numa") != 0) return -1;
    const char *root = ((fixture *)*state)->dir;
    write_file(root, "devices/system/node/node0/cpulist", "0-3,8-11\n");
    write_file(root, "devices/system/node/node1/cpulist", "4-7,12-15\n");
    write_file(root, "bus/pci/devices/0000:1b:00.0/numa_node", "0\n");
    write_file(root, "bus/pci/devices/0000:c1:00.0/numa_node", "1\n");
    write_file(root, "bus/pci/devices/0000:41:00.0/numa_node", "-1\n");
    setenv("STRETCH_SYSFS_ROOT", root, 1);
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    unsetenv("STRETCH_SYSFS_ROOT");
    int rc = tmpdir_rm_tree(f->dir);
    free(f);
    return rc;
}

static cpu_set_t cpus(int lo, int hi) {  // [lo, hi]
    cpu_set_t s;
    CPU_ZERO(&s);
    for (int c = lo; c <= hi; c++) CPU_SET(c, &s);
    return s;
}

static void test_pci_node(void **state) {
    (void)state;
    assert_int_equal(numa_node_of_pci("0000:1b:00.0"), 0);
    assert_int_equal(numa_node_of_pci("0000:1B:00.0"), 0);  // CUDA spells it in upper case
    assert_int_equal(numa_node_of_pci("0000:c1:00.0"), 1);
    assert_int_equal(numa_node_of_pci("0000:41:00.0"), -1);
    assert_int_equal(numa_node_of_pci("0000:99:00.0"), -1);  // no such device
}

static void test_cpu_nodes(void **state) {
    (void)state;
    cpu_set_t s = cpus(0, 1);
    assert_true(numa_nodes_of_cpus(&s) == 1);
    s = cpus(5, 5);
    assert_true(numa_nodes_of_cpus(&s) == 2);
    s = cpus(3, 4);  // across the sockets
    assert_true(numa_nodes_of_cpus(&s) == 3);
    s = cpus(11, 11);  // the second range of node 0
    assert_true(numa_nodes_of_cpus(&s) == 1);
    s = cpus(20, 30);  // on no node listed
    assert_true(numa_nodes_of_cpus(&s) == 0);
}

static void test_gpu_check(void **state) {
    (void)state;
    char msg[256] = "";
    cpu_set_t s = cpus(0, 3);
    assert_int_equal(numa_gpu_check("0000:1b:00.0", &s, msg, sizeof msg), 0);
    s = cpus(4, 7);
    assert_int_equal(numa_gpu_check("0000:c1:00.0", &s, msg, sizeof msg), 0);
    assert_int_equal(numa_gpu_check("0000:1b:00.0", &s, msg, sizeof msg), 1);
    assert_string_equal(msg, "GPU 0000:1b:00.0 is on NUMA node 0, its cpus are on node(s) 1");
    s = cpus(0, 15);  // unbound: the cores of both sockets
    assert_int_equal(numa_gpu_check("0000:c1:00.0", &s, msg, sizeof msg), 1);
    assert_string_equal(msg, "GPU 0000:c1:00.0 is on NUMA node 1, its cpus are on node(s) 0,1");
    assert_int_equal(numa_gpu_check("0000:41:00.0", &s, msg, sizeof msg), 0);  // node unknown
}

static void test_no_sysfs(void **state) {
    (void)state;
    char msg[256] = "";
    setenv("STRETCH_SYSFS_ROOT", "/nonexistent-sysfs", 1);
    cpu_set_t s = cpus(4, 7);
    assert_int_equal(numa_node_of_pci("0000:1b:00.0"), -1);
    assert_true(numa_nodes_of_cpus(&s) == 0);
    assert_int_equal(numa_gpu_check("0000:1b:00.0", &s, msg, sizeof msg), 0);
}

// The start-up path (dist_warn_gpu_numa, what train.c calls): this
// process's own affinity against a tree whose node 0 holds every CPU, a GPU
// on node 1 -> one warning line on stderr naming the rank; a GPU on node 0
// -> nothing.
static void test_startup_warning(void **state) {
    const char *root = ((fixture *)*state)->dir;
    write_file(root, "devices/system/node/node0/cpulist", "0-1023\n");
    write_file(root, "devices/system/node/node1/cpulist", "\n");
    char path[600], text[1024] = "";
    snprintf(path, sizeof path, "%s/stderr.txt", root);
    dist_ctx d;
    dist_init_serial(&d);
    fflush(stderr);
    int saved = dup(2);
    assert_non_null(freopen(path, "w", stderr));
    dist_warn_gpu_numa(&d, "0000:1b:00.0");  // node 0: quiet
    dist_warn_gpu_numa(&d, "0000:c1:00.0");  // node 1: warned
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[got] = '\0';
    char host[256];
    gethostname(host, sizeof host);
    char want[1024];
    snprintf(want, sizeof want, "stretch: warning: rank 0 (host %.63s): GPU 0000:c1:00.0 is on NUMA node 1, its "
             "cpus are on node(s) 0; bind each rank to its GPU's cores (docs/slurm.md, placement)\n", host);
    assert_string_equal(text, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pci_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_sysfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_warning, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
