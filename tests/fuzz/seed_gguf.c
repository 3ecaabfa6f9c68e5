// Writes the GGUF seed of fuzz_gguf: the tiny Llama + BPE tokenizer of the
// unit tests (tests/unit/gguf_tiny.h), 1 layer. Usage: seed_gguf OUT.gguf
#include <stdio.h>
#include <stdlib.h>

#include "gguf_tiny.h"
#include "gguf_writer.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    model_config cfg = tiny_config(1, false);
    float *params = tiny_params(&cfg, 3);
    gw g;
    gw_init(&g);
    tiny_write_tokenizer(&g);
    tiny_write_model(&g, &cfg, params);
    free(params);
    size_t len;
    uint8_t *b = gw_finish(&g, &len);
    int rc = gw_save(argv[1], b, len);
    free(b);
    return rc == 0 ? 0 : 1;
}
