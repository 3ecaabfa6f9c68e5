// tok: tokenizer interface, byte tokenizer, streaming encoder. See tok.h.
#include "tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "die.h"
#include "gguf.h"
#include "tok_gguf.h"
#include "tok_hfjson.h"

struct tok_tokenizer {
    tok_bpe *bpe;  // NULL: the byte tokenizer
    int32_t bos, eos, pad;
};

struct tok_encoder {
    const tok_tokenizer *t;
    tok_bpe_state *state;   // BPE only
    uint8_t *pending;       // text not encoded yet
    int64_t n_pending, cap_pending;
    int64_t retry_at;       // skip feeding until pending is this long
};

static const char *const BYTE_SPECIAL_NAMES[3] = {"<bos>", "<eos>", "<pad>"};

// ---------------------------------------------------------------------------
// Construction

tok_tokenizer *tok_byte_new(void) {
    tok_tokenizer *t = xcalloc(1, sizeof(*t));
    t->bos = TOK_BYTE_BOS, t->eos = TOK_BYTE_EOS, t->pad = TOK_BYTE_PAD;
    return t;
}

tok_tokenizer *tok_from_bpe(tok_bpe *bpe, int32_t bos, int32_t eos, int32_t pad) {
    if (!bpe) return NULL;
    tok_tokenizer *t = xcalloc(1, sizeof(*t));
    t->bpe = bpe;
    t->bos = bos, t->eos = eos, t->pad = pad;
    return t;
}

tok_tokenizer *tok_load(const char *spec, char *err, size_t errlen) {
    if (!spec || !spec[0]) {
        snprintf(err, errlen, "tokenizer: empty name (use \"byte\" or a tokenizer.json path)");
        return NULL;
    }
    if (strcmp(spec, "byte") == 0) return tok_byte_new();
    struct stat st;
    char *path = NULL;
    if (stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) {  // a model directory
        size_t n = strlen(spec);
        path = xmalloc(n + sizeof("/tokenizer.json"));
        memcpy(path, spec, n);
        strcpy(path + n, "/tokenizer.json");
    }
    int32_t sp[3];
    // A GGUF model file carries its tokenizer in its metadata.
    tok_bpe *bpe = !path && gguf_is_gguf(spec) ? tok_gguf_load_path(sp, spec, err, errlen)
                                               : tok_hfjson_load(sp, path ? path : spec, err, errlen);
    free(path);
    return tok_from_bpe(bpe, sp[0], sp[1], sp[2]);
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    tok_bpe_free(t->bpe);
    free(t);
}

// ---------------------------------------------------------------------------
// Properties

int64_t tok_vocab_size(const tok_tokenizer *t) {
    return t->bpe ? tok_bpe_vocab_size(t->bpe) : TOK_BYTE_VOCAB;
}

uint64_t tok_fingerprint(const tok_tokenizer *t) {
    // the byte tokenizer: one fixed value (FNV-1a of "stretch byte 259")
    uint64_t h = 0xcbf29ce484222325ull;
    if (t->bpe) h = tok_bpe_fingerprint(t->bpe);
    else
        for (const char *c = "stretch byte 259"; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    return h ? h : 1;  // 0 means "not recorded" in a shard
}

int32_t tok_bos_id(const tok_tokenizer *t) { return t->bos; }
int32_t tok_eos_id(const tok_tokenizer *t) { return t->eos; }
int32_t tok_pad_id(const tok_tokenizer *t) { return t->pad; }

int tok_set_special_ids(tok_tokenizer *t, int32_t bos, int32_t eos, int32_t pad, char *err,
                        size_t errlen) {
    const int32_t ids[3] = {bos, eos, pad};
    const char *names[3] = {"bos", "eos", "pad"};
    for (int k = 0; k < 3; k++) {
        if (ids[k] < -1 || ids[k] >= tok_vocab_size(t)) {
            snprintf(err, errlen, "tokenizer: %s id %d is outside the vocabulary [0, %lld)", names[k],
                     ids[k], (long long)tok_vocab_size(t));
            return -1;
        }
    }
    t->bos = bos, t->eos = eos, t->pad = pad;
    return 0;
}

int32_t tok_token_id(const tok_tokenizer *t, const char *text) {
    int64_t n = (int64_t)strlen(text);
    if (t->bpe) return tok_bpe_token_id(t->bpe, (const uint8_t *)text, n);
    if (n == 1) return (uint8_t)text[0];
    for (int k = 0; k < 3; k++)
        if (strcmp(text, BYTE_SPECIAL_NAMES[k]) == 0) return TOK_BYTE_BOS + k;
    return -1;
}

// ---------------------------------------------------------------------------
// Encoding

tok_encoder *tok_encoder_new(const tok_tokenizer *t) {
    tok_encoder *e = xcalloc(1, sizeof(*e));
    e->t = t;
    if (t->bpe) e->state = tok_bpe_state_new();
    return e;
}

void tok_encoder_free(tok_encoder *e) {
    if (!e) return;
    tok_bpe_state_free(e->state);
    free(e->pending);
    free(e);
}

static void pending_append(tok_encoder *e, const uint8_t *p, int64_t n) {
    if (n == 0) return;
    if (e->n_pending + n > e->cap_pending) {
        int64_t cap = e->cap_pending ? e->cap_pending : 4096;
        while (cap < e->n_pending + n) cap *= 2;
        e->pending = xrealloc(e->pending, (size_t)cap);
        e->cap_pending = cap;
    }
    memcpy(e->pending + e->n_pending, p, (size_t)n);
    e->n_pending += n;
}

void tok_encoder_feed(tok_encoder *e, tok_ids *out, const char *text, int64_t len) {
    const uint8_t *p = (const uint8_t *)text;
    if (!e->t->bpe) {  // bytes are final at once
        tok_ids_reserve(out, len);
        for (int64_t i = 0; i < len; i++) out->data[out->n++] = p[i];
        return;
    }
    if (e->n_pending == 0) {  // common case: encode in place, keep the tail
        int64_t done = tok_bpe_encode(out, e->state, e->t->bpe, p, len, false);
        pending_append(e, p + done, len - done);
        e->retry_at = done == 0 ? 2 * len : 0;
        return;
    }
    pending_append(e, p, len);
    // When nothing could be encoded, wait until the text has doubled before
    // trying again, so one huge undecided piece costs linear time overall.
    if (e->n_pending < e->retry_at) return;
    int64_t done = tok_bpe_encode(out, e->state, e->t->bpe, e->pending, e->n_pending, false);
    memmove(e->pending, e->pending + done, (size_t)(e->n_pending - done));
    e->n_pending -= done;
    e->retry_at = done == 0 ? 2 * e->n_pending : 0;
}

void tok_encoder_finish(tok_encoder *e, tok_ids *out) {
    if (e->t->bpe && e->n_pending > 0)
        tok_bpe_encode(out, e->state, e->t->bpe, e->pending, e->n_pending, true);
    e->n_pending = 0;
    e->retry_at = 0;
}

int64_t tok_encode(int32_t **ids, const tok_tokenizer *t, const char *text, int64_t len) {
    tok_ids out = {0};
    if (t->bpe) {
        tok_bpe_state *state = tok_bpe_state_new();
        tok_bpe_encode(&out, state, t->bpe, (const uint8_t *)text, len, true);
        tok_bpe_state_free(state);
    } else {
        tok_ids_reserve(&out, len);
        for (int64_t i = 0; i < len; i++) out.data[out.n++] = (uint8_t)text[i];
    }
    if (!out.data) out.data = xmalloc(sizeof(int32_t));  // a valid pointer for 0 ids
    *ids = out.data;
    return out.n;
}

// ---------------------------------------------------------------------------
// Decoding

// The bytes of one id; -1 if it has none or is a skipped special.
static int64_t token_bytes(const uint8_t **bytes, const tok_tokenizer *t, int32_t id, bool skip_special) {
    if (t->bpe) {
        bool special;
        int64_t n = tok_bpe_token_bytes(bytes, &special, t->bpe, id);
        return special && skip_special ? -1 : n;
    }
    static const uint8_t all_bytes[256] = {
#define B4(k) (k), (k) + 1, (k) + 2, (k) + 3
#define B16(k) B4(k), B4((k) + 4), B4((k) + 8), B4((k) + 12)
#define B64(k) B16(k), B16((k) + 16), B16((k) + 32), B16((k) + 48)
        B64(0), B64(64), B64(128), B64(192),
#undef B64
#undef B16
#undef B4
    };
    if (id >= 0 && id < 256) {
        *bytes = &all_bytes[id];
        return 1;
    }
    if (id >= TOK_BYTE_BOS && id < TOK_BYTE_VOCAB && !skip_special) {
        *bytes = (const uint8_t *)BYTE_SPECIAL_NAMES[id - TOK_BYTE_BOS];
        return (int64_t)strlen(BYTE_SPECIAL_NAMES[id - TOK_BYTE_BOS]);
    }
    return -1;
}

int64_t tok_decode(char **text, const tok_tokenizer *t, const int32_t *ids, int64_t n,
                   bool skip_special) {
    int64_t total = 0;
    const uint8_t *bytes;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = token_bytes(&bytes, t, ids[i], skip_special);
        if (len > 0) total += len;
    }
    char *out = xmalloc((size_t)total + 1);
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = token_bytes(&bytes, t, ids[i], skip_special);
        if (len <= 0) continue;
        memcpy(out + at, bytes, (size_t)len);
        at += len;
    }
    out[at] = '\0';
    *text = out;
    return at;
}

int64_t tok_encode_into(void *ctx, const char *text, size_t len, int32_t *out, int64_t cap) {
    int32_t *ids = NULL;
    int64_t n = tok_encode(&ids, ctx, text, (int64_t)len);
    memcpy(out, ids, sizeof(int32_t) * (size_t)(n < cap ? n : cap));
    free(ids);
    return n;
}
