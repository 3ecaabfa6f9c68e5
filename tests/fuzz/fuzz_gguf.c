// libFuzzer harness: a GGUF file (llama.cpp): parse, read every value
// through the getters and every tensor's bytes, import the model
// (dequantization included) and load the tokenizer from its metadata.
// Supersedes nothing: tests/unit/test_gguf_fuzz.c stays as the
// deterministic, mutation-based check of the same readers in every CI run.
#include "fuzz_util.h"
#include "gguf.h"
#include "gguf_model.h"
#include "tok.h"
#include "tok_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    char err[1024] = "";
    gguf_file *f = gguf_parse(copy, size, "fuzz.gguf", err, sizeof err);
    if (!f) {
        fuzz_check_message(err);
        free(copy);
        return 0;
    }
    for (int64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        int64_t n;
        if (kv->type == GGUF_TYPE_ARRAY) {
            char **s;
            int32_t *v;
            if (gguf_get_str_array(f, kv->key, &s, &n, err, sizeof err) == 0) gguf_free_strs(s, n);
            if (gguf_get_i32_array(f, kv->key, &v, &n, err, sizeof err) == 0) free(v);
        } else {
            double x;
            int64_t k;
            const char *str;
            gguf_get_float(f, kv->key, &x, err, sizeof err);
            gguf_get_int(f, kv->key, &k, err, sizeof err);
            gguf_get_str(f, kv->key, &str, err, sizeof err);
        }
    }
    volatile uint64_t sum = 0;
    for (int64_t i = 0; i < f->n_tensors; i++)
        for (uint64_t j = 0; j < f->tensors[i].nbytes; j++) sum += f->tensors[i].data[j];
    model_config cfg;
    float *params = NULL;
    if (gguf_model_load(&cfg, &params, f, err, sizeof err) == 0) free(params);
    else fuzz_check_message(err);
    int32_t sp[3];
    tok_bpe *bpe = tok_gguf_load(sp, f, err, sizeof err);
    if (bpe) {
        tok_tokenizer *t = tok_from_bpe(bpe, sp[0], sp[1], sp[2]);
        int32_t *ids;
        int64_t n = tok_encode(&ids, t, "ab ba<s> caf\xc3\xa9", 15);
        for (int64_t k = 0; k < n; k++)
            if (ids[k] < 0 || ids[k] >= tok_vocab_size(t)) abort();
        free(ids);
        tok_free(t);
    } else {
        fuzz_check_message(err);
    }
    gguf_close(f);
    free(copy);
    return 0;
}
