// libFuzzer harness: a LongRoPE factors file (rope.factors_file, written by
// `stretch search`).
#include "fuzz_util.h"
#include "run_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("factors.yaml");
    fuzz_write(path, data, size);
    cfg_doubles s = {0}, l = {0};
    int64_t n_hat = 0;
    char err[1024] = "";
    if (cfg_read_factors(&s, &l, &n_hat, path, err, sizeof err) != 0) {
        fuzz_check_message(err);
    } else {
        volatile double sum = 0;
        for (int i = 0; i < s.n; i++) sum += s.v[i];
        for (int i = 0; i < l.n; i++) sum += l.v[i];
        free(s.v);
        free(l.v);
    }
    return 0;
}
