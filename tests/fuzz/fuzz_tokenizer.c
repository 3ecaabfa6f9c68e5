// libFuzzer harness: an HF tokenizer.json (byte-level BPE): load, then
// encode a text with specials and multi-byte characters and decode it; ids
// stay in the vocabulary.
#include "fuzz_util.h"
#include "tok.h"
#include "tok_hfjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("tokenizer.json");
    fuzz_write(path, data, size);
    int32_t sp[3];
    char err[1024] = "";
    tok_bpe *bpe = tok_hfjson_load(sp, path, err, sizeof err);
    if (!bpe) {
        fuzz_check_message(err);
        return 0;
    }
    tok_tokenizer *t = tok_from_bpe(bpe, sp[0], sp[1], sp[2]);
    static const char text[] = "Hello world! 123 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac <s></s>\n\t  x";
    int32_t *ids;
    int64_t n = tok_encode(&ids, t, text, (int64_t)sizeof text - 1);
    for (int64_t k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= tok_vocab_size(t)) abort();
    char *back = NULL;
    tok_decode(&back, t, ids, n, false);
    free(back);
    free(ids);
    tok_free(t);
    return 0;
}
