// tok_bpe: byte-level BPE encoding. See tok_bpe.h.
#include "tok_bpe.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "tok_unicode.h"

// ---------------------------------------------------------------------------
// Hashing (open addressing everywhere; tables are powers of two)

static uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const uint8_t *p, int64_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
    }
    uint64_t v = 0;
    memcpy(&v, p, (size_t)n);
    return mix64(h ^ v);
}

static uint64_t table_size(int64_t n) {  // at most half full
    uint64_t size = 16;
    while (size < 2 * (uint64_t)n) size *= 2;
    return size;
}

// ---------------------------------------------------------------------------
// The tokenizer

typedef struct {
    uint8_t *text;      // content, matched verbatim
    int64_t len;
    uint8_t *decoded;   // what decode gives for it (HF ByteLevel decoder rule)
    int64_t decoded_len;
    int32_t id;
    bool special;
    int pass;           // 0: normalized = false, 1: normalized = true
} added_token;

struct tok_bpe {
    int32_t n_ids;        // vocabulary size: largest id + 1
    uint8_t *vbytes;      // the decoded bytes of all vocabulary tokens
    int64_t *voff;        // (n_ids + 1) id's bytes: vbytes[voff[id]..voff[id + 1])
    bool *vhas;           // (n_ids) the id is a vocabulary token
    int32_t *added_of;    // (n_ids) index into added of the id's added token, or -1
    int32_t *vslot;       // bytes -> id of the byte-level vocabulary tokens, -1 empty
    uint64_t vmask;
    int32_t byte_id[256];  // id of each one-byte token, or -1

    uint64_t *mkey;       // merges: (left << 32 | right) -> rank, result; UINT64_MAX empty
    int32_t *mrank, *mnew;
    uint64_t mmask;

    added_token *added;   // (n_added) sorted by pass, then first byte
    int32_t n_added;
    int32_t bucket[2][257];  // pass p, first byte b: added[bucket[p][b] .. bucket[p][b + 1])
    int64_t max_added_len[2];

    tok_pre_step pre[8];
    int n_pre;
    int32_t unk_id;
    bool fuse_unk, ignore_merges;
};

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// Id of the vocabulary token whose decoded bytes are p[0..n), or -1.
static int32_t vocab_find(const tok_bpe *bpe, const uint8_t *p, int64_t n) {
    for (uint64_t i = hash_bytes(p, n) & bpe->vmask;; i = (i + 1) & bpe->vmask) {
        int32_t id = bpe->vslot[i];
        if (id < 0) return -1;
        int64_t len = bpe->voff[id + 1] - bpe->voff[id];
        if (len == n && memcmp(bpe->vbytes + bpe->voff[id], p, (size_t)n) == 0) return id;
    }
}

// Slot where merge pair key is or would go.
static uint64_t merge_slot(const tok_bpe *bpe, uint64_t key) {
    uint64_t i = mix64(key) & bpe->mmask;
    while (bpe->mkey[i] != key && bpe->mkey[i] != UINT64_MAX) i = (i + 1) & bpe->mmask;
    return i;
}

static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
}

// Decodes a byte-level token string into its bytes (out holds >= strlen(s)
// bytes). Returns the length, or -1 if a character is not one of the 256.
static int64_t unmap_token(uint8_t *out, const char *s) {
    const uint8_t *p = (const uint8_t *)s;
    int64_t n = (int64_t)strlen(s), k = 0;
    for (int64_t i = 0; i < n;) {
        int32_t cp;
        i += tok_utf8_decode(&cp, NULL, p + i, n - i);
        int b = tok_char_to_byte(cp);
        if (b < 0) return -1;
        out[k++] = (uint8_t)b;
    }
    return k;
}

static int cmp_added(const void *x, const void *y) {
    const added_token *a = x, *b = y;
    if (a->pass != b->pass) return a->pass - b->pass;
    return strcmp((const char *)a->text, (const char *)b->text);  // groups by first byte
}

tok_bpe *tok_bpe_new(const tok_bpe_spec *spec, const char *source, char *err, size_t errlen) {
    if (spec->n_pre > (int)(sizeof(((tok_bpe *)0)->pre) / sizeof(tok_pre_step))) {
        errf(err, errlen, "%s: too many pre-tokenizer steps (%d)", source, spec->n_pre);
        return NULL;
    }
    tok_bpe *bpe = xcalloc(1, sizeof(*bpe));
    int32_t n_ids = spec->n_vocab;
    for (int32_t k = 0; k < spec->n_added; k++) {
        if (spec->added[k].id < 0) {
            errf(err, errlen, "%s: added token '%s' has a negative id", source, spec->added[k].content);
            goto fail;
        }
        if (spec->added[k].id >= n_ids) n_ids = spec->added[k].id + 1;
    }
    bpe->n_ids = n_ids;
    memcpy(bpe->pre, spec->pre, (size_t)spec->n_pre * sizeof(*spec->pre));
    bpe->n_pre = spec->n_pre;
    bpe->fuse_unk = spec->fuse_unk;
    bpe->ignore_merges = spec->ignore_merges;
    bpe->unk_id = spec->unk_id;
    if (bpe->unk_id >= n_ids) {
        errf(err, errlen, "%s: unk id %d is out of range", source, bpe->unk_id);
        goto fail;
    }

    // Vocabulary: decoded bytes of every token, and the bytes -> id table.
    int64_t total = 0;
    for (int32_t id = 0; id < spec->n_vocab; id++)
        if (spec->vocab[id]) total += (int64_t)strlen(spec->vocab[id]);
    bpe->vbytes = xmalloc((size_t)total + 1);
    bpe->voff = xcalloc((size_t)n_ids + 1, sizeof(*bpe->voff));
    bpe->vhas = xcalloc((size_t)n_ids, sizeof(*bpe->vhas));
    bpe->added_of = xmalloc((size_t)n_ids * sizeof(*bpe->added_of));
    bpe->vmask = table_size(spec->n_vocab) - 1;
    bpe->vslot = xmalloc((bpe->vmask + 1) * sizeof(*bpe->vslot));
    memset(bpe->vslot, 0xff, (bpe->vmask + 1) * sizeof(*bpe->vslot));
    memset(bpe->added_of, 0xff, (size_t)n_ids * sizeof(*bpe->added_of));
    memset(bpe->byte_id, 0xff, sizeof(bpe->byte_id));
    int64_t at = 0;
    for (int32_t id = 0; id < n_ids; id++) {
        bpe->voff[id] = at;
        const char *s = id < spec->n_vocab ? spec->vocab[id] : NULL;
        if (!s) continue;
        bpe->vhas[id] = true;
        int64_t n = unmap_token(bpe->vbytes + at, s);
        if (n < 0) {  // not a byte-level token: decodes to its own text (as HF does)
            n = (int64_t)strlen(s);
            memcpy(bpe->vbytes + at, s, (size_t)n);
            at += n;
            continue;
        }
        bpe->voff[id + 1] = at + n;  // vocab_find reads the length of id
        uint64_t i = hash_bytes(bpe->vbytes + at, n) & bpe->vmask;
        for (;; i = (i + 1) & bpe->vmask) {
            int32_t other = bpe->vslot[i];
            if (other < 0) break;
            int64_t len = bpe->voff[other + 1] - bpe->voff[other];
            if (len == n && memcmp(bpe->vbytes + bpe->voff[other], bpe->vbytes + at, (size_t)n) == 0) break;
        }
        bpe->vslot[i] = id;  // a repeated token: the last id wins, as in HF
        if (n == 1) bpe->byte_id[bpe->vbytes[at]] = id;
        at += n;
    }
    bpe->voff[n_ids] = at;

    // Merges: (left id, right id) -> (rank, id of left + right).
    bpe->mmask = table_size(spec->n_merges) - 1;
    bpe->mkey = xmalloc((bpe->mmask + 1) * sizeof(*bpe->mkey));
    bpe->mrank = xmalloc((bpe->mmask + 1) * sizeof(*bpe->mrank));
    bpe->mnew = xmalloc((bpe->mmask + 1) * sizeof(*bpe->mnew));
    memset(bpe->mkey, 0xff, (bpe->mmask + 1) * sizeof(*bpe->mkey));
    size_t longest = 0;
    for (int32_t r = 0; r < spec->n_merges; r++) {
        size_t n = strlen(spec->merge_left[r]) + strlen(spec->merge_right[r]);
        if (n > longest) longest = n;
    }
    uint8_t *buf = xmalloc(longest + 1);
    for (int32_t r = 0; r < spec->n_merges; r++) {
        const char *parts[2] = {spec->merge_left[r], spec->merge_right[r]};
        int32_t ids[2];
        int64_t n = 0;
        for (int k = 0; k < 2; k++) {
            int64_t len = unmap_token(buf + n, parts[k]);
            ids[k] = len < 0 ? -1 : vocab_find(bpe, buf + n, len);
            if (ids[k] < 0) {
                errf(err, errlen, "%s: merge %d '%s %s': '%s' is not a byte-level vocabulary token",
                     source, r, parts[0], parts[1], parts[k]);
                free(buf);
                goto fail;
            }
            n += len;
        }
        int32_t made = vocab_find(bpe, buf, n);
        if (made < 0) {
            errf(err, errlen, "%s: merge %d '%s %s': the merged token is not in the vocabulary",
                 source, r, parts[0], parts[1]);
            free(buf);
            goto fail;
        }
        uint64_t slot = merge_slot(bpe, pair_key(ids[0], ids[1]));
        bpe->mkey[slot] = pair_key(ids[0], ids[1]);  // a repeated pair: the last rank wins, as in HF
        bpe->mrank[slot] = r;
        bpe->mnew[slot] = made;
    }
    free(buf);

    // Added tokens, bucketed by pass and first byte.
    bpe->added = xcalloc((size_t)spec->n_added + 1, sizeof(*bpe->added));
    for (int32_t k = 0; k < spec->n_added; k++) {
        const tok_bpe_added *a = &spec->added[k];
        int64_t len = (int64_t)strlen(a->content);
        if (len == 0) continue;  // HF ignores empty added tokens
        added_token *t = &bpe->added[bpe->n_added++];
        t->text = (uint8_t *)xstrdup(a->content);
        t->len = len;
        t->id = a->id;
        t->special = a->special;
        t->pass = a->normalized ? 1 : 0;
        // HF's ByteLevel decoder maps the content back through the byte
        // table when every character is one of the 256, else keeps it.
        t->decoded = xmalloc((size_t)len + 1);
        t->decoded_len = unmap_token(t->decoded, a->content);
        if (t->decoded_len < 0) {
            memcpy(t->decoded, t->text, (size_t)len);
            t->decoded_len = len;
        }
        if (len > bpe->max_added_len[t->pass]) bpe->max_added_len[t->pass] = len;
    }
    qsort(bpe->added, (size_t)bpe->n_added, sizeof(*bpe->added), cmp_added);
    for (int32_t k = 0; k < bpe->n_added; k++) {
        const added_token *t = &bpe->added[k];
        bpe->bucket[t->pass][t->text[0] + 1]++;
    }
    int32_t start = 0;
    for (int p = 0; p < 2; p++) {
        bpe->bucket[p][0] = start;
        for (int b = 1; b <= 256; b++) bpe->bucket[p][b] += bpe->bucket[p][b - 1];
        start = bpe->bucket[p][256];
    }
    // id -> added token (an added token's text wins over the vocabulary's, as in HF).
    for (int32_t k = 0; k < bpe->n_added; k++) bpe->added_of[bpe->added[k].id] = k;
    return bpe;

fail:
    tok_bpe_free(bpe);
    return NULL;
}

void tok_bpe_free(tok_bpe *bpe) {
    if (!bpe) return;
    for (int32_t k = 0; k < bpe->n_added; k++) {
        free(bpe->added[k].text);
        free(bpe->added[k].decoded);
    }
    free(bpe->added);
    free(bpe->mkey);
    free(bpe->mrank);
    free(bpe->mnew);
    free(bpe->vslot);
    free(bpe->added_of);
    free(bpe->vhas);
    free(bpe->voff);
    free(bpe->vbytes);
    free(bpe);
}

int64_t tok_bpe_vocab_size(const tok_bpe *bpe) { return bpe->n_ids; }

int64_t tok_bpe_token_bytes(const uint8_t **bytes, bool *special, const tok_bpe *bpe, int32_t id) {
    *special = false;
    if (id < 0 || id >= bpe->n_ids) return -1;
    int32_t k = bpe->added_of[id];
    if (k >= 0) {
        *bytes = bpe->added[k].decoded;
        *special = bpe->added[k].special;
        return bpe->added[k].decoded_len;
    }
    if (!bpe->vhas[id]) return -1;
    *bytes = bpe->vbytes + bpe->voff[id];
    return bpe->voff[id + 1] - bpe->voff[id];
}

int32_t tok_bpe_token_id(const tok_bpe *bpe, const uint8_t *text, int64_t len) {
    for (int32_t k = 0; k < bpe->n_added; k++)
        if (bpe->added[k].len == len && memcmp(bpe->added[k].text, text, (size_t)len) == 0)
            return bpe->added[k].id;
    return len > 0 ? vocab_find(bpe, text, len) : -1;
}

// ---------------------------------------------------------------------------
// From GGUF lists

// llama.cpp pre-tokenizer names (tokenizer.ggml.pre) -> steps; *ignore_merges
// as llama.cpp sets it for the name.
static int pre_from_name(tok_pre_step *steps, bool *ignore_merges, const char *pre) {
    *ignore_merges = false;
    if (strcmp(pre, "gpt2") == 0 || strcmp(pre, "gpt-2") == 0) {
        steps[0] = (tok_pre_step){TOK_PRE_GPT2, 0};
        return 1;
    }
    if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0) {
        steps[0] = (tok_pre_step){TOK_PRE_LLAMA3, 3};
        *ignore_merges = true;
        return 1;
    }
    if (strcmp(pre, "qwen2") == 0) {
        steps[0] = (tok_pre_step){TOK_PRE_LLAMA3, 1};
        return 1;
    }
    if (strcmp(pre, "smollm") == 0 || strcmp(pre, "starcoder") == 0) {
        steps[0] = (tok_pre_step){TOK_PRE_DIGITS, 0};
        steps[1] = (tok_pre_step){TOK_PRE_GPT2, 0};
        return 2;
    }
    return -1;
}

tok_bpe *tok_bpe_from_lists(const char *const *tokens, int32_t n_tokens,
                            const char *const *merges, int32_t n_merges,
                            const int32_t *token_types, const char *pre,
                            char *err, size_t errlen) {
    enum { TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4 };  // llama.cpp token types
    tok_pre_step steps[2];
    bool ignore_merges;
    int n_steps = pre ? pre_from_name(steps, &ignore_merges, pre) : -1;
    if (n_steps < 0) {
        errf(err, errlen, "GGUF: tokenizer.ggml.pre '%s' is not supported "
             "(gpt2, llama-bpe, llama3, qwen2, smollm, starcoder)", pre ? pre : "(missing)");
        return NULL;
    }
    char **left = xcalloc((size_t)n_merges + 1, sizeof(*left));
    const char **right = xcalloc((size_t)n_merges + 1, sizeof(*right));
    tok_bpe_added *added = xcalloc((size_t)n_tokens + 1, sizeof(*added));
    tok_bpe *bpe = NULL;
    int32_t n_added = 0, r = 0;
    for (; r < n_merges; r++) {
        const char *space = strchr(merges[r], ' ');
        if (!space || space == merges[r] || !space[1] || strchr(space + 1, ' ')) {
            errf(err, errlen, "GGUF: tokenizer.ggml.merges[%d] '%s' is not two tokens separated by a space",
                 r, merges[r]);
            goto done;
        }
        left[r] = xstrdup(merges[r]);
        left[r][space - merges[r]] = '\0';
        right[r] = left[r] + (space - merges[r]) + 1;
    }
    for (int32_t id = 0; token_types && id < n_tokens; id++) {
        if (token_types[id] != TYPE_CONTROL && token_types[id] != TYPE_USER_DEFINED) continue;
        added[n_added++] = (tok_bpe_added){.content = tokens[id], .id = id,
                                           .special = token_types[id] == TYPE_CONTROL};
    }
    tok_bpe_spec spec = {
        .vocab = tokens, .n_vocab = n_tokens,
        .merge_left = (const char *const *)left, .merge_right = right, .n_merges = n_merges,
        .added = added, .n_added = n_added, .pre = steps, .n_pre = n_steps, .unk_id = -1,
        .ignore_merges = ignore_merges,
    };
    bpe = tok_bpe_new(&spec, "GGUF", err, errlen);
done:
    for (int32_t k = 0; k < r; k++) free(left[k]);
    free(left);
    free(right);
    free(added);
    return bpe;
}

// ---------------------------------------------------------------------------
// Encoding state: word cache and scratch buffers

enum {
    CACHE_MIN_SLOTS = 1 << 10,  // the word cache starts this big,
    CACHE_MAX_SLOTS = 1 << 17,  // grows up to this, then is cleared when half full
    CACHE_MAX_WORD = 64,        // longer words are not cached
};

typedef struct {
    uint64_t hash;
    int64_t key;      // offset into keys; -1: empty slot
    int32_t key_len;
    int32_t n_ids;
    int64_t ids;      // offset into vals
} cache_slot;

typedef struct {
    int32_t rank, pos, made;
} merge_entry;

typedef struct {
    int64_t start, end;
    int32_t id;  // >= 0: an added token; -1: text to pre-tokenize
} item;

typedef struct {
    item *data;
    int64_t n, cap;
} items;

struct tok_bpe_state {
    const tok_bpe *owner;  // the cache holds this tokenizer's words
    cache_slot *slots;     // (n_slots), a power of two; NULL until the first word
    int64_t n_slots, n_words;
    uint8_t *keys;
    int64_t n_keys, cap_keys;
    int32_t *vals;
    int64_t n_vals, cap_vals;

    int32_t *sym, *prev, *next;  // (cap_sym) the symbols of the word being merged
    int64_t cap_sym;
    merge_entry *heap;           // (cap_heap)
    int64_t n_heap, cap_heap;

    items found[2];              // added-token splitting: pass 0, pass 1
    tok_spans words;
    tok_pretok_scratch pre;
};

static void cache_clear(tok_bpe_state *st) {
    for (int64_t i = 0; i < st->n_slots; i++) st->slots[i].key = -1;
    st->n_words = st->n_keys = st->n_vals = 0;
}

tok_bpe_state *tok_bpe_state_new(void) { return xcalloc(1, sizeof(tok_bpe_state)); }

void tok_bpe_state_free(tok_bpe_state *st) {
    if (!st) return;
    free(st->slots);
    free(st->keys);
    free(st->vals);
    free(st->sym);
    free(st->prev);
    free(st->next);
    free(st->heap);
    free(st->found[0].data);
    free(st->found[1].data);
    tok_spans_free(&st->words);
    tok_pretok_scratch_free(&st->pre);
    free(st);
}

// Slot of word w (found: key >= 0) or where it would go; NULL before the
// first word.
static cache_slot *cache_find(tok_bpe_state *st, const uint8_t *w, int64_t n, uint64_t hash) {
    if (!st->slots) return NULL;
    uint64_t mask = (uint64_t)st->n_slots - 1;
    for (uint64_t i = hash & mask;; i = (i + 1) & mask) {
        cache_slot *s = &st->slots[i];
        if (s->key < 0) return s;
        if (s->hash == hash && s->key_len == n && memcmp(st->keys + s->key, w, (size_t)n) == 0)
            return s;
    }
}

// Makes room for one more word: allocates, doubles (rehashing) or, at the
// largest size, clears the table at half load.
static void cache_make_room(tok_bpe_state *st) {
    if (st->slots && 2 * (st->n_words + 1) <= st->n_slots) return;
    if (st->slots && st->n_slots >= CACHE_MAX_SLOTS) {
        cache_clear(st);
        return;
    }
    cache_slot *old = st->slots;
    int64_t n_old = st->n_slots;
    st->n_slots = old ? 2 * n_old : CACHE_MIN_SLOTS;
    st->slots = xmalloc((size_t)st->n_slots * sizeof(*st->slots));
    for (int64_t i = 0; i < st->n_slots; i++) st->slots[i].key = -1;
    uint64_t mask = (uint64_t)st->n_slots - 1;
    for (int64_t k = 0; k < n_old; k++) {
        if (old[k].key < 0) continue;
        uint64_t i = old[k].hash & mask;
        while (st->slots[i].key >= 0) i = (i + 1) & mask;
        st->slots[i] = old[k];
    }
    free(old);
}

static void cache_put(tok_bpe_state *st, uint64_t hash, const uint8_t *w, int64_t n,
                      const int32_t *ids, int64_t n_ids) {
    cache_make_room(st);
    cache_slot *s = cache_find(st, w, n, hash);
    while (st->n_keys + n > st->cap_keys) {
        st->cap_keys = st->cap_keys ? 2 * st->cap_keys : 1 << 14;
        st->keys = xrealloc(st->keys, (size_t)st->cap_keys);
    }
    while (st->n_vals + n_ids > st->cap_vals) {
        st->cap_vals = st->cap_vals ? 2 * st->cap_vals : 1 << 12;
        st->vals = xrealloc(st->vals, (size_t)st->cap_vals * sizeof(*st->vals));
    }
    *s = (cache_slot){.hash = hash, .key = st->n_keys, .key_len = (int32_t)n,
                      .n_ids = (int32_t)n_ids, .ids = st->n_vals};
    memcpy(st->keys + st->n_keys, w, (size_t)n);
    if (n_ids > 0) memcpy(st->vals + st->n_vals, ids, (size_t)n_ids * sizeof(*ids));
    st->n_keys += n;
    st->n_vals += n_ids;
    st->n_words++;
}

// ---------------------------------------------------------------------------
// Merging one word

static bool entry_before(merge_entry a, merge_entry b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(tok_bpe_state *st, merge_entry e) {
    if (st->n_heap == st->cap_heap) {
        st->cap_heap = st->cap_heap ? 2 * st->cap_heap : 256;
        st->heap = xrealloc(st->heap, (size_t)st->cap_heap * sizeof(*st->heap));
    }
    int64_t i = st->n_heap++;
    while (i > 0 && entry_before(e, st->heap[(i - 1) / 2])) {
        st->heap[i] = st->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    st->heap[i] = e;
}

static merge_entry heap_pop(tok_bpe_state *st) {
    merge_entry top = st->heap[0], last = st->heap[--st->n_heap];
    int64_t i = 0, n = st->n_heap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && entry_before(st->heap[c + 1], st->heap[c])) c++;
        if (!entry_before(st->heap[c], last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n > 0) st->heap[i] = last;
    return top;
}

// Queues the merge of symbols pos and its right neighbour, if there is one.
static void queue_pair(tok_bpe_state *st, const tok_bpe *bpe, int32_t pos) {
    uint64_t slot = merge_slot(bpe, pair_key(st->sym[pos], st->sym[st->next[pos]]));
    if (bpe->mkey[slot] == UINT64_MAX) return;
    heap_push(st, (merge_entry){bpe->mrank[slot], pos, bpe->mnew[slot]});
}

// Appends the ids of word w[0..n) to out: the bytes' tokens merged lowest
// rank first, leftmost first on ties (Hugging Face BPE::merge_word).
static void merge_word(tok_ids *out, tok_bpe_state *st, const tok_bpe *bpe, const uint8_t *w, int64_t n) {
    CHECK(n < INT32_MAX);
    if (n > st->cap_sym) {
        st->cap_sym = n > 256 ? n : 256;
        st->sym = xrealloc(st->sym, (size_t)st->cap_sym * sizeof(*st->sym));
        st->prev = xrealloc(st->prev, (size_t)st->cap_sym * sizeof(*st->prev));
        st->next = xrealloc(st->next, (size_t)st->cap_sym * sizeof(*st->next));
    }
    int32_t m = 0;
    bool last_unk = false;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = bpe->byte_id[w[i]];
        if (id < 0) {  // a byte without a token: unk, or dropped
            if (bpe->unk_id < 0 || (bpe->fuse_unk && last_unk)) continue;
            id = bpe->unk_id;
            last_unk = true;
        } else {
            last_unk = false;
        }
        st->sym[m] = id;
        st->prev[m] = m - 1;
        st->next[m] = m + 1;
        m++;
    }
    if (m == 0) return;
    st->next[m - 1] = -1;
    st->n_heap = 0;
    for (int32_t k = 0; k + 1 < m; k++) queue_pair(st, bpe, k);
    while (st->n_heap > 0) {
        merge_entry e = heap_pop(st);
        int32_t right = st->next[e.pos];
        if (st->sym[e.pos] < 0 || right < 0) continue;  // merged away meanwhile
        uint64_t slot = merge_slot(bpe, pair_key(st->sym[e.pos], st->sym[right]));
        if (bpe->mkey[slot] == UINT64_MAX || bpe->mnew[slot] != e.made) continue;  // stale
        st->sym[e.pos] = e.made;
        st->sym[right] = -1;
        st->next[e.pos] = st->next[right];
        if (st->next[right] >= 0) st->prev[st->next[right]] = e.pos;
        if (st->prev[e.pos] >= 0) queue_pair(st, bpe, st->prev[e.pos]);
        if (st->next[e.pos] >= 0) queue_pair(st, bpe, e.pos);
    }
    for (int32_t k = 0; k >= 0; k = st->next[k]) tok_ids_push(out, st->sym[k]);
}

static void encode_word(tok_ids *out, tok_bpe_state *st, const tok_bpe *bpe, const uint8_t *w, int64_t n) {
    bool cacheable = n <= CACHE_MAX_WORD;
    uint64_t hash = 0;
    if (cacheable) {
        hash = hash_bytes(w, n);
        const cache_slot *slot = cache_find(st, w, n, hash);
        if (slot && slot->key >= 0) {
            tok_ids_append(out, st->vals + slot->ids, slot->n_ids);
            return;
        }
    }
    int64_t first = out->n;
    int32_t whole = bpe->ignore_merges ? vocab_find(bpe, w, n) : -1;
    if (whole >= 0) tok_ids_push(out, whole);
    else merge_word(out, st, bpe, w, n);
    // (a word with no ids, possible in a vocabulary without its bytes, is not
    // cached: out->data may still be NULL; found by tests/fuzz/fuzz_gguf)
    if (cacheable && out->n > first) cache_put(st, hash, w, n, out->data + first, out->n - first);
}

// ---------------------------------------------------------------------------
// Splitting at added tokens

static void items_push(items *v, int64_t start, int64_t end, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 64;
        v->data = xrealloc(v->data, (size_t)v->cap * sizeof(*v->data));
    }
    v->data[v->n++] = (item){start, end, id};
}

// Index of the longest added token of this pass that s[i..b) starts with, or -1.
static int32_t added_at(const tok_bpe *bpe, int pass, const uint8_t *s, int64_t i, int64_t b) {
    int32_t best = -1;
    for (int32_t k = bpe->bucket[pass][s[i]]; k < bpe->bucket[pass][s[i] + 1]; k++) {
        const added_token *t = &bpe->added[k];
        if (t->len <= b - i && memcmp(t->text, s + i, (size_t)t->len) == 0 &&
            (best < 0 || t->len > bpe->added[best].len))
            best = k;
    }
    return best;
}

// Is s[i..b) a proper prefix of an added token of this pass?
static bool added_prefix_at(const tok_bpe *bpe, int pass, const uint8_t *s, int64_t i, int64_t b) {
    for (int32_t k = bpe->bucket[pass][s[i]]; k < bpe->bucket[pass][s[i] + 1]; k++) {
        const added_token *t = &bpe->added[k];
        if (t->len > b - i && memcmp(t->text, s + i, (size_t)(b - i)) == 0) return true;
    }
    return false;
}

// Splits text s[a..b) at the added tokens of this pass (leftmost, then
// longest) into out. When open, matching stops where a token could start
// that needs text beyond b; the last item is then the (open) text before it.
static void split_added(items *out, const tok_bpe *bpe, int pass, const uint8_t *s,
                        int64_t a, int64_t b, bool open) {
    int64_t seg = a, i = a;
    int64_t max_len = bpe->max_added_len[pass];
    bool any = bpe->bucket[pass][256] > bpe->bucket[pass][0];
    while (any && i < b) {
        if (bpe->bucket[pass][s[i]] == bpe->bucket[pass][s[i] + 1]) {
            i++;
            continue;
        }
        if (open && b - i < max_len && added_prefix_at(bpe, pass, s, i, b)) break;
        int32_t k = added_at(bpe, pass, s, i, b);
        if (k < 0) {
            i++;
            continue;
        }
        if (i > seg) items_push(out, seg, i, -1);
        items_push(out, i, i + bpe->added[k].len, bpe->added[k].id);
        i = seg = i + bpe->added[k].len;
    }
    if (!any) i = b;
    if (open) items_push(out, seg, i, -1);
    else if (b > seg) items_push(out, seg, b, -1);
}

// ---------------------------------------------------------------------------
// Encoding

int64_t tok_bpe_encode(tok_ids *out, tok_bpe_state *st, const tok_bpe *bpe,
                       const uint8_t *text, int64_t len, bool final) {
    if (st->owner != bpe) {
        cache_clear(st);
        st->owner = bpe;
    }
    bool open = !final;
    // Pass 0 then pass 1 of the added tokens; an open text ends in an open item.
    items *p0 = &st->found[0], *p1 = &st->found[1];
    p0->n = p1->n = 0;
    split_added(p0, bpe, 0, text, 0, len, open);
    for (int64_t k = 0; k < p0->n; k++) {
        item it = p0->data[k];
        if (it.id >= 0) items_push(p1, it.start, it.end, it.id);
        else split_added(p1, bpe, 1, text, it.start, it.end, open && k == p0->n - 1);
    }
    int64_t done = len;
    for (int64_t k = 0; k < p1->n; k++) {
        item it = p1->data[k];
        if (it.id >= 0) {
            tok_ids_push(out, it.id);
            continue;
        }
        bool open_item = open && k == p1->n - 1;
        st->words.n = 0;
        int64_t cut = tok_pretok_split(&st->words, &st->pre, bpe->pre, bpe->n_pre,
                                       text + it.start, it.end - it.start, open_item);
        for (int64_t w = 0; w < st->words.n; w++) {
            tok_span sp = st->words.data[w];
            encode_word(out, st, bpe, text + it.start + sp.start, sp.end - sp.start);
        }
        if (open_item) done = it.start + cut;
    }
    return done;
}

// FNV-1a, 64-bit, over n bytes.
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

uint64_t tok_bpe_fingerprint(const tok_bpe *bpe) {
    uint64_t h = fnv1a(0xcbf29ce484222325ull, "stretch bpe", 11);
    h = fnv1a(h, &bpe->n_ids, sizeof bpe->n_ids);
    for (int32_t id = 0; id < bpe->n_ids; id++) {  // every id's bytes, vocabulary or added
        const uint8_t *bytes;
        bool special;
        int64_t n = tok_bpe_token_bytes(&bytes, &special, bpe, id);
        uint8_t flags = (uint8_t)((n >= 0) | (special ? 2 : 0));
        h = fnv1a(h, &flags, 1);
        if (n > 0) h = fnv1a(h, bytes, (size_t)n);
        h = fnv1a(h, &n, sizeof n);
    }
    // The merges, whatever their slots in the table: a sum of one hash each.
    uint64_t merges = 0;
    for (uint64_t i = 0; i <= bpe->mmask; i++) {
        if (bpe->mkey[i] == UINT64_MAX) continue;
        int32_t m[3] = {bpe->mrank[i], bpe->mnew[i], 0};
        uint64_t k = fnv1a(0xcbf29ce484222325ull, &bpe->mkey[i], sizeof bpe->mkey[i]);
        merges += fnv1a(k, m, sizeof m);
    }
    h = fnv1a(h, &merges, sizeof merges);
    for (int i = 0; i < bpe->n_pre; i++) {
        int32_t step[2] = {(int32_t)bpe->pre[i].kind, bpe->pre[i].max_digits};
        h = fnv1a(h, step, sizeof step);
    }
    int32_t rest[3] = {bpe->unk_id, bpe->fuse_unk, bpe->ignore_merges};
    return fnv1a(h, rest, sizeof rest);
}
