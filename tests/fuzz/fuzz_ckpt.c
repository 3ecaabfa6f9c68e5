// libFuzzer harness: an HDF5 checkpoint (docs/checkpoint-format.md): what
// `stretch inspect`, `stretch eval` and `stretch export` read: verify every
// checksum, print the summary, load the model.
#include "ckpt.h"
#include "ckpt_model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("ckpt.h5");
    fuzz_write(path, data, size);
    char err[1024] = "";
    static FILE *null_out;
    if (!null_out) null_out = fopen("/dev/null", "w");
    if (ckpt_verify(path, err, sizeof err) != 0) fuzz_check_message(err);
    if (ckpt_print_summary(path, null_out, err, sizeof err) != 0) fuzz_check_message(err);
    model_config cfg;
    float *params = NULL;
    int stage_used;
    if (ckpt_model_load(&cfg, &params, &stage_used, path, CKPT_MODEL_STAGE_AUTO, err, sizeof err) == 0)
        free(params);
    else
        fuzz_check_message(err);
    return 0;
}
