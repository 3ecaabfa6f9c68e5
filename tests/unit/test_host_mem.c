// host_mem (common/host_mem.h): MemAvailable parsed from meminfo text
// (written here by hand, as the kernel prints it), and the live value
// against sysconf's view of the machine.
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <unistd.h>

#include "host_mem.h"

static void test_parse(void **state) {
    (void)state;
    const char *txt = "MemTotal:       32768000 kB\n"
                      "MemFree:         1000000 kB\n"
                      "MemAvailable:   23286172 kB\n"
                      "Buffers:          123456 kB\n";
    assert_int_equal(host_mem_parse_available(txt), (int64_t)23286172 * 1024);
    assert_int_equal(host_mem_parse_available("MemTotal: 5 kB\nMemFree: 3 kB\n"), -1);  // old kernels
    assert_int_equal(host_mem_parse_available("MemAvailable: garbage\n"), -1);
}

static void test_live(void **state) {
    (void)state;
    int64_t avail = host_mem_available();
    if (avail < 0) skip();  // no /proc/meminfo
    // Available memory is positive and never more than the machine has.
    int64_t total = (int64_t)sysconf(_SC_PHYS_PAGES) * (int64_t)sysconf(_SC_PAGESIZE);
    assert_true(avail > 0);
    assert_true(avail <= total);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
