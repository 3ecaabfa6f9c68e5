// bench_tok: tokenizer throughput in MB/s of UTF-8 text.
//
//   bench_tok [TOKENIZER_JSON [TEXT_FILE]]
//
// Defaults: tests/data/bpe_tiny/tokenizer.json (run from the repository
// root) and 8 MB of generated multilingual text: words from sentences in
// ten scripts (mostly repeated words, as in real text) mixed with random
// letter strings (each one new: cache misses). Prints the byte tokenizer,
// BPE in one call, BPE streamed in 64 KB pieces, BPE on text of only new
// words (no cache help), and decoding.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "die.h"
#include "tok.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static const char *const SENTENCES[] = {
    "The model was trained on four thousand tokens and extended to long context in two stages.",
    "Le cœur a ses raisons que la raison ne connaît point; où est la fenêtre ?",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein; Straße, Größe, Mädchen.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "我们在北京学习中文。机器学习模型需要大量的数据和计算资源。",
    "今日は良い天気ですね。東京タワーに行きましょう。",
    "안녕하세요, 세계! 한국어 문장을 토큰화합니다.",
    "def train(model, data, lr=3e-4):\n    for step, batch in enumerate(data):\n        loss = model(batch)\n",
    "Numbers 12 345 6789 and dates 2024-01-15, emoji 😀 🚀, symbols € → ∞.\n\n",
};

// n bytes of text; fresh_words: fraction of words that are new random strings.
static char *make_text(int64_t n, double fresh_words, uint64_t seed) {
    char *text = xmalloc((size_t)n + 256);
    int64_t len = 0;
    const int n_sentences = (int)(sizeof(SENTENCES) / sizeof(*SENTENCES));
    while (len < n) {
        uint64_t r = next_random(&seed);
        if ((double)(r % 1000) < 1000.0 * fresh_words) {
            int k = 3 + (int)((r >> 10) % 8);
            text[len++] = ' ';
            for (int i = 0; i < k; i++) text[len++] = (char)('a' + next_random(&seed) % 26);
        } else {
            const char *s = SENTENCES[(r >> 10) % (uint64_t)n_sentences];
            int64_t m = (int64_t)strlen(s);
            if (len + m + 1 > n + 255) break;
            text[len++] = ' ';
            memcpy(text + len, s, (size_t)m);
            len += m;
        }
    }
    return text;
}

static char *read_file(const char *path, int64_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die_user("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = xmalloc((size_t)*len + 1);
    if (fread(text, 1, (size_t)*len, f) != (size_t)*len) die_user("cannot read %s", path);
    fclose(f);
    return text;
}

static void report(const char *what, int64_t bytes, int64_t tokens, double seconds) {
    printf("%-34s %8.1f MB/s  %7.2f M tokens/s  (%.3f s, %.2f bytes/token)\n", what,
           (double)bytes / seconds / 1e6, (double)tokens / seconds / 1e6, seconds,
           tokens ? (double)bytes / (double)tokens : 0.0);
}

int main(int argc, char **argv) {
    const char *json = argc > 1 ? argv[1] : "tests/data/bpe_tiny/tokenizer.json";
    int64_t len = 8 << 20;
    char *text = argc > 2 ? read_file(argv[2], &len) : make_text(len, 0.1, 42);
    char err[512];
    tok_tokenizer *byte = tok_load("byte", err, sizeof(err));
    tok_tokenizer *bpe = tok_load(json, err, sizeof(err));
    if (!bpe) die_user("%s", err);
    printf("text: %.1f MB (%s); BPE: %s, vocab %lld\n", (double)len / 1e6, argc > 2 ? argv[2] : "generated",
           json, (long long)tok_vocab_size(bpe));

    int32_t *ids;
    double t0 = now_s();
    int64_t n = tok_encode(&ids, byte, text, len);
    report("byte encode", len, n, now_s() - t0);
    free(ids);

    t0 = now_s();
    n = tok_encode(&ids, bpe, text, len);
    report("BPE encode (one call)", len, n, now_s() - t0);

    tok_encoder *e = tok_encoder_new(bpe);
    tok_ids out = {0};
    t0 = now_s();
    for (int64_t at = 0; at < len; at += 65536)
        tok_encoder_feed(e, &out, text + at, len - at < 65536 ? len - at : 65536);
    tok_encoder_finish(e, &out);
    report("BPE encode (64 KB pieces)", len, out.n, now_s() - t0);
    CHECK(out.n == n && memcmp(out.data, ids, (size_t)n * sizeof(*ids)) == 0);
    tok_ids_free(&out);
    tok_encoder_free(e);

    char *back;
    t0 = now_s();
    int64_t n_back = tok_decode(&back, bpe, ids, n, false);
    report("BPE decode", n_back, n, now_s() - t0);
    CHECK(n_back == len && memcmp(back, text, (size_t)len) == 0);
    free(back);
    free(ids);

    int64_t fresh_len = 2 << 20;
    char *fresh = make_text(fresh_len, 1.0, 7);
    t0 = now_s();
    n = tok_encode(&ids, bpe, fresh, fresh_len);
    report("BPE encode, only new words", fresh_len, n, now_s() - t0);
    free(ids);
    free(fresh);

    tok_free(bpe);
    tok_free(byte);
    free(text);
    return 0;
}
