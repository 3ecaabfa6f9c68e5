// libFuzzer harness: an HF model directory (`stretch import --hf`):
// config.json + model.safetensors, read by hf_load. The input is split: its
// first two bytes give the length of config.json, the rest is the
// safetensors file. Also feeds the whole input to hf_config_parse alone.
#include "fuzz_util.h"
#include "hf_config.h"
#include "hf_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024] = "";
    model_config cfg;
    char *json = fuzz_string(data, size);
    if (hf_config_parse(&cfg, json, "config.json", err, sizeof err) != 0) fuzz_check_message(err);
    free(json);
    if (size < 2) return 0;
    size_t n_cfg = ((size_t)data[0] << 8 | data[1]);
    if (n_cfg > size - 2) n_cfg = size - 2;
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", fuzz_path("hf"));
        mkdir(dir, 0755);
    }
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/config.json", dir);
    snprintf(p2, sizeof p2, "%s/model.safetensors", dir);
    fuzz_write(p1, data + 2, n_cfg);
    fuzz_write(p2, data + 2 + n_cfg, size - 2 - n_cfg);
    float *params = NULL;
    if (hf_load(&cfg, &params, dir, err, sizeof err) == 0) free(params);
    else fuzz_check_message(err);
    return 0;
}
