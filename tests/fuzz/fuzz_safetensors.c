// libFuzzer harness: a .safetensors file: open, then read every tensor as
// fp32 with the shape its header declares (small ones).
#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("model.safetensors");
    fuzz_write(path, data, size);
    char err[1024] = "";
    st_reader *r = st_open(path, err, sizeof err);
    if (!r) {
        fuzz_check_message(err);
        return 0;
    }
    for (int i = 0; i < st_count(r); i++) {
        const st_tensor *t = st_tensor_at(r, i);
        if (t->n_elements < 0 || t->n_elements > (1 << 20)) continue;
        float *out = malloc(sizeof(float) * (size_t)(t->n_elements ? t->n_elements : 1));
        if (st_read_f32(out, r, t->name, t->rank, t->shape, err, sizeof err) != 0) fuzz_check_message(err);
        free(out);
    }
    st_close(r);
    return 0;
}
