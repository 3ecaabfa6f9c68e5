// loader: packed / whole-document batches with a global cursor. See loader.h.
#include "loader.h"

#include <math.h>
#include <stdbool.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "errmsg.h"
#include "shard.h"

#define STREAM_SHUFFLE 0x73687566ULL  // rng stream ids ("shuf", "mix")
#define STREAM_MIX 0x6d6978ULL
#define CURSOR_VERSION 1
// Passkey rows need this many tokens beyond passkey_min_len(seed 0): the key
// appears three times and its token count may vary a little with its digits.
#define PASSKEY_LEN_MARGIN 16

struct data_loader {
    data_config cfg;
    int n_shards;
    shard *shards;          // (n_shards)
    int64_t *doc_base;      // (n_shards + 1) global index of each shard's first document
    int64_t n_docs;
    int64_t n_tokens;
    int64_t vocab_size;
    int64_t *order;         // (n_docs) this epoch's document order
    rng_state next_shuffle; // cursor.shuffle_rng after drawing this epoch's order
    data_cursor cur;
    int64_t rows_local;     // batch_rows / dp_size
    int32_t *scratch;       // (4, T) a row this rank does not keep
    int64_t task_need[TASK_COUNT]; // tokens a sample of each mixed task needs at least
};

// ---------------------------------------------------------------------------
// Document streams: [bos] tokens [eos] of global document g.

static void locate(const data_loader *L, int64_t g, int *k, int64_t *d) {
    int lo = 0, hi = L->n_shards - 1;  // the last shard whose base is <= g
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (L->doc_base[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    *k = lo;
    *d = g - L->doc_base[lo];
}

static int64_t body_len(const data_loader *L, int64_t g) {
    int k;
    int64_t d;
    locate(L, g, &k, &d);
    return shard_doc_len(&L->shards[k], d);
}

static int64_t stream_len(const data_loader *L, int64_t g) {
    return (L->cfg.bos_id >= 0) + body_len(L, g) + (L->cfg.eos_id >= 0);
}

// out: (n) tokens [off, off + n) of document g's stream.
static void stream_copy(int32_t *out, const data_loader *L, int64_t g, int64_t off, int64_t n) {
    int k;
    int64_t d;
    locate(L, g, &k, &d);
    const shard *s = &L->shards[k];
    const int64_t nb = L->cfg.bos_id >= 0;
    const int64_t len = shard_doc_len(s, d);
    int64_t i = 0;
    if (nb && off == 0 && n > 0) out[i++] = L->cfg.bos_id;
    const int64_t b0 = off + i - nb;  // first body token wanted
    const int64_t b1 = off + n - nb < len ? off + n - nb : len;
    if (b1 > b0) {
        shard_read(out + i, s, (int64_t)s->offsets[d] + b0, b1 - b0);
        for (int64_t j = 0; j < b1 - b0; j++) {
            const int32_t id = out[i + j];
            if (id < 0 || id >= L->vocab_size)
                die_user("%s: token %lld of document %lld has id %u, outside the vocabulary "
                         "[0, %lld) (corrupt shard?)", s->path, (long long)(b0 + j),
                         (long long)d, (unsigned)id, (long long)L->vocab_size);
        }
        i += b1 - b0;
    }
    if (i < n) out[i++] = L->cfg.eos_id;  // only the eos can remain
    CHECK(i == n);
}

static int32_t stream_token(const data_loader *L, int64_t g, int64_t off) {
    int32_t t;
    stream_copy(&t, L, g, off, 1);
    return t;
}

// ---------------------------------------------------------------------------
// Cursor movement

static void draw_order(data_loader *L) {
    for (int64_t i = 0; i < L->n_docs; i++) L->order[i] = i;
    rng_state r = L->cur.shuffle_rng;
    if (L->cfg.shuffle) rng_shuffle_i64(L->order, L->n_docs, &r);
    L->next_shuffle = r;
}

static void next_doc(data_loader *L) {
    L->cur.doc_offset = 0;
    if (++L->cur.doc_pos == L->n_docs) {
        L->cur.doc_pos = 0;
        L->cur.epoch++;
        L->cur.shuffle_rng = L->next_shuffle;
        draw_order(L);
    }
}

// The current document, after skipping those with nothing left to read.
static int64_t settle(data_loader *L) {
    while (L->cur.doc_offset >= stream_len(L, L->order[L->cur.doc_pos])) next_doc(L);
    return L->order[L->cur.doc_pos];
}

// Consumes n tokens of document g: tokens (n), targets (n), their next ids.
static void take(data_loader *L, int32_t *tok, int32_t *tgt, int64_t g, int64_t n) {
    const int64_t len = stream_len(L, g), off = L->cur.doc_offset;
    stream_copy(tok, L, g, off, n);
    for (int64_t i = 0; i + 1 < n; i++) tgt[i] = tok[i + 1];
    tgt[n - 1] = off + n < len ? stream_token(L, g, off + n) : -1;
    L->cur.doc_offset += n;
    if (L->cur.doc_offset == len) next_doc(L);
}

// ---------------------------------------------------------------------------
// Rows: tok, tgt, pos, seg are (T) each.

static void pack_row(data_loader *L, int32_t *tok, int32_t *tgt, int32_t *pos, int32_t *seg) {
    const int64_t T = L->cfg.seq_len;
    int32_t s = 0;
    for (int64_t t = 0; t < T; s++) {
        const int64_t g = settle(L);
        const int64_t left = stream_len(L, g) - L->cur.doc_offset;
        const int64_t n = left < T - t ? left : T - t;
        take(L, tok + t, tgt + t, g, n);
        for (int64_t i = 0; i < n; i++) {
            pos[t + i] = (int32_t)i;
            seg[t + i] = s;
        }
        t += n;
    }
}

static void whole_row(data_loader *L, int32_t *tok, int32_t *tgt, int32_t *pos, int32_t *seg) {
    const int64_t T = L->cfg.seq_len;
    for (;;) {
        const int64_t g = settle(L);
        const int64_t left = stream_len(L, g) - L->cur.doc_offset;
        if (2 * left < T) {  // too short to keep: drop the rest of the document
            next_doc(L);
            continue;
        }
        const int64_t n = left < T ? left : T;
        take(L, tok, tgt, g, n);
        for (int64_t i = 0; i < T; i++) {
            pos[i] = i < n ? (int32_t)i : 0;
            seg[i] = i < n ? 0 : -1;
            if (i >= n) {
                tok[i] = L->cfg.pad_id;
                tgt[i] = -1;
            }
        }
        return;
    }
}

// Whether a packed row holds one sample of seq_len instead (a fraction
// passkey_pack_long of them): log-uniform packing rarely draws distances near
// seq_len, the ones an evaluation at seq_len asks for. No draw when off, so
// runs without the option keep their data stream.
static bool pack_row_whole(data_loader *L) {
    return L->cfg.passkey_pack_long > 0 && rng_uniform(&L->cur.mix_rng) < L->cfg.passkey_pack_long;
}

// A row of passkey samples of mixed lengths, each its own document: the
// lengths are log-uniform in [passkey_pack_min, room left], so short
// distances (strong gradient, what the model knows) and long ones (the new
// range) share every row; a rest too short for a sample goes to the last.
static void passkey_pack_row(data_loader *L, int32_t *tok, int32_t *tgt, int32_t *pos,
                             int32_t *seg) {
    const int64_t T = L->cfg.seq_len, lo = L->cfg.passkey_pack_min;
    const bool whole = pack_row_whole(L);
    char err[512];
    int64_t at = 0;
    for (int32_t doc = 0; at < T; doc++) {
        const int64_t room = T - at;
        int64_t n = room;
        if (!whole && room >= 2 * lo) {
            const double u = rng_uniform(&L->cur.mix_rng);
            n = (int64_t)floor((double)lo * pow((double)room / (double)lo, u));
            if (room - n < lo) n = room;  // no rest too short for a sample
        }
        const uint64_t seed = rng_next(&L->cur.mix_rng);
        if (passkey_make(tok + at, tgt + at, NULL, &L->cfg.passkey, seed, n, err, sizeof err) != 0)
            die_user("%s", err);
        for (int64_t i = 0; i < n; i++) {
            pos[at + i] = (int32_t)i;
            seg[at + i] = doc;
        }
        at += n;
    }
}

static void passkey_row(data_loader *L, int32_t *tok, int32_t *tgt, int32_t *pos, int32_t *seg) {
    if (L->cfg.passkey_pack_min > 0) {
        passkey_pack_row(L, tok, tgt, pos, seg);
        return;
    }
    const int64_t T = L->cfg.seq_len;
    const uint64_t seed = rng_next(&L->cur.mix_rng);
    char err[512];
    if (passkey_make(tok, tgt, NULL, &L->cfg.passkey, seed, T, err, sizeof err) != 0)
        die_user("%s", err);
    // PoSE: from a random split on, positions skip ahead, so the rows show the
    // model distances up to pose_len while costing seq_len tokens.
    int64_t split = T, skip = 0;
    if (L->cfg.pose_len > T) {
        split = 1 + (int64_t)rng_below(&L->cur.mix_rng, (uint64_t)(T - 1));
        skip = (int64_t)rng_below(&L->cur.mix_rng, (uint64_t)(L->cfg.pose_len - T + 1));
    }
    for (int64_t i = 0; i < T; i++) {
        pos[i] = (int32_t)(i < split ? i : i + skip);
        seg[i] = 0;
    }
}

static void copy_row(data_loader *L, int32_t *tok, int32_t *tgt, int32_t *pos, int32_t *seg) {
    const int64_t T = L->cfg.seq_len;
    const uint64_t seed = rng_next(&L->cur.mix_rng);
    char err[512];
    if (passkey_make_copy(tok, tgt, &L->cfg.passkey, seed, T, err, sizeof err) != 0)
        die_user("%s", err);
    for (int64_t i = 0; i < T; i++) {
        pos[i] = (int32_t)i;
        seg[i] = 0;
    }
}

// The tokens a task_mix sample needs at least: the largest minimum over a
// few seeds (word keys vary in tokens) plus a margin.
static int64_t task_need(const data_config *c, int t, char *err, size_t errlen) {
    int64_t need = 0;
    for (uint64_t seed = 0; seed < 8; seed++) {
        const int64_t n = task_min_len(t, &c->task, seed, err, errlen);
        if (n < 0) return -1;
        need = n > need ? n : need;
    }
    return need + PASSKEY_LEN_MARGIN;
}

// A row of task t: one sample of T tokens, or (passkey_pack_min > 0)
// samples of log-uniform lengths in [max(passkey_pack_min, the task's
// minimum), room left], each its own document, as passkey_pack_row does
// (passkey_pack_long of them one sample of T).
static void task_row(data_loader *L, int t, int32_t *tok, int32_t *tgt, int32_t *pos, int32_t *seg) {
    const int64_t T = L->cfg.seq_len;
    const int64_t lo = L->cfg.passkey_pack_min > L->task_need[t] ? L->cfg.passkey_pack_min : L->task_need[t];
    const bool whole = pack_row_whole(L);
    char err[512];
    int64_t at = 0;
    for (int32_t doc = 0; at < T; doc++) {
        const int64_t room = T - at;
        int64_t n = room;
        if (!whole && L->cfg.passkey_pack_min > 0 && room >= 2 * lo) {
            const double u = rng_uniform(&L->cur.mix_rng);
            n = (int64_t)floor((double)lo * pow((double)room / (double)lo, u));
            if (room - n < lo) n = room;
        }
        // A seed whose sample fits n (task_need has a margin, but word keys
        // of another seed may take more tokens): redraw, deterministically.
        uint64_t seed = rng_next(&L->cur.mix_rng);
        for (int tries = 0; tries < 64 && task_min_len(t, &L->cfg.task, seed, err, sizeof err) > n; tries++)
            seed = rng_next(&L->cur.mix_rng);
        if (task_make(tok + at, tgt + at, NULL, t, &L->cfg.task, -1, seed, n, err, sizeof err) != 0)
            die_user("%s", err);
        for (int64_t i = 0; i < n; i++) {
            pos[at + i] = (int32_t)i;
            seg[at + i] = doc;
        }
        at += n;
    }
}

// The draw that picks a row's kind (1.0, never drawn, when nothing is mixed in).
static double mix_draw(data_loader *L) {
    double tasks = 0;
    for (int t = 0; t < TASK_COUNT; t++) tasks += L->cfg.task_mix[t];
    return L->cfg.passkey_ratio > 0 || L->cfg.copy_ratio > 0 || tasks > 0 ? rng_uniform(&L->cur.mix_rng) : 1.0;
}

// A row of the kind that u in [0, 1) picks.
static void next_row(data_loader *L, double u, int32_t *tok, int32_t *tgt, int32_t *pos, int32_t *seg) {
    double edge = L->cfg.passkey_ratio + L->cfg.copy_ratio;
    int task = -1;
    for (int t = 0; t < TASK_COUNT && task < 0 && u >= edge; t++)
        if (L->cfg.task_mix[t] > 0 && u < (edge += L->cfg.task_mix[t])) task = t;
    if (u < L->cfg.passkey_ratio)
        passkey_row(L, tok, tgt, pos, seg);
    else if (u < L->cfg.passkey_ratio + L->cfg.copy_ratio)
        copy_row(L, tok, tgt, pos, seg);
    else if (task >= 0)
        task_row(L, task, tok, tgt, pos, seg);
    else if (L->cfg.mode == DATA_PACK)
        pack_row(L, tok, tgt, pos, seg);
    else
        whole_row(L, tok, tgt, pos, seg);
    L->cur.rows++;
}

void data_next_batch(data_loader *L, data_batch *b) {
    const int64_t T = L->cfg.seq_len;
    CHECK(b->B == L->rows_local && b->T == T);
    const int64_t first = (int64_t)L->cfg.dp_rank * L->rows_local;
    b->n_targets = 0;
    b->n_targets_global = 0;
    // One kind for the whole batch: a step of answer-only passkey rows is not
    // averaged in with the thousands of next-token targets of text rows.
    const double batch_u = L->cfg.mix_per_batch ? mix_draw(L) : 0.0;
    for (int64_t r = 0; r < L->cfg.batch_rows; r++) {
        const int mine = r >= first && r < first + L->rows_local;
        const int64_t at = (r - first) * T;
        int32_t *tok = mine ? b->tokens + at : L->scratch;
        int32_t *tgt = mine ? b->targets + at : L->scratch + T;
        int32_t *pos = mine ? b->pos + at : L->scratch + 2 * T;
        int32_t *seg = mine ? b->seg + at : L->scratch + 3 * T;
        next_row(L, L->cfg.mix_per_batch ? batch_u : mix_draw(L), tok, tgt, pos, seg);
        int64_t n = 0;
        for (int64_t i = 0; i < T; i++) n += tgt[i] >= 0;
        b->n_targets_global += n;
        if (mine) b->n_targets += n;
    }
}

// ---------------------------------------------------------------------------
// Open / free

static uint64_t mix(uint64_t h, uint64_t v) {
    uint64_t x = h ^ v;
    return rng_splitmix64(&x);
}

static int check_config(const data_config *c, char *err, size_t errlen) {
    if (c->mode != DATA_PACK && c->mode != DATA_WHOLE)
        return errmsg(err, errlen, "data: unknown mode %d", (int)c->mode);
    if (c->seq_len < 1 || c->seq_len > INT32_MAX)
        return errmsg(err, errlen, "data: seq_len = %lld, must be >= 1", (long long)c->seq_len);
    if (c->batch_rows < 1)
        return errmsg(err, errlen, "data: batch_rows = %lld, must be >= 1", (long long)c->batch_rows);
    if (c->dp_size < 1 || c->dp_rank < 0 || c->dp_rank >= c->dp_size)
        return errmsg(err, errlen, "data: dp_rank %d of dp_size %d is not a valid rank", c->dp_rank,
                    c->dp_size);
    if (c->batch_rows % c->dp_size != 0)
        return errmsg(err, errlen, "data: batch_rows = %lld is not divisible by the %d data-parallel "
                    "ranks", (long long)c->batch_rows, c->dp_size);
    if (c->mode == DATA_WHOLE && c->pad_id < 0)
        return errmsg(err, errlen, "data: mode whole pads rows and needs a pad_id >= 0");
    if (!(c->passkey_ratio >= 0 && c->passkey_ratio <= 1))
        return errmsg(err, errlen, "data: passkey_ratio = %g, must be in [0, 1]", c->passkey_ratio);
    if (!(c->copy_ratio >= 0 && c->passkey_ratio + c->copy_ratio <= 1))
        return errmsg(err, errlen, "data: copy_ratio = %g, must be in [0, 1 - passkey_ratio]", c->copy_ratio);
    if (c->pose_len != 0 && c->pose_len <= c->seq_len)
        return errmsg(err, errlen, "data: pose_len = %lld must be 0 or above seq_len = %lld",
                      (long long)c->pose_len, (long long)c->seq_len);
    if (c->copy_ratio > 0 && !c->passkey.encode)
        return errmsg(err, errlen, "data: copy_ratio > 0 needs the passkey encoder");
    double sum = c->passkey_ratio + c->copy_ratio;
    for (int t = 0; t < TASK_COUNT; t++) {
        if (!(c->task_mix[t] >= 0 && c->task_mix[t] <= 1))
            return errmsg(err, errlen, "data: task_mix.%s = %g, must be in [0, 1]", TASK_DEFS[t].name, c->task_mix[t]);
        if (c->task_mix[t] > 0 && TASK_DEFS[t].needs_text)
            return errmsg(err, errlen, "data: task_mix.%s: real-text tasks are for evaluation only "
                          "(stretch eval tasks --haystack)", TASK_DEFS[t].name);
        if (c->task_mix[t] > 0 && !c->task.encode)
            return errmsg(err, errlen, "data: task_mix.%s > 0 needs the task encoder", TASK_DEFS[t].name);
        sum += c->task_mix[t];
    }
    if (sum > 1 + 1e-9)
        return errmsg(err, errlen, "data: passkey_ratio + copy_ratio + task_mix = %g, must be at most 1", sum);
    return 0;
}

data_loader *data_loader_open(const char *const *paths, int n_paths, const data_config *cfg,
                              char *err, size_t errlen) {
    if (check_config(cfg, err, errlen) != 0) return NULL;
    if (n_paths < 1) {
        errmsg(err, errlen, "data: no shard files given");
        return NULL;
    }
    data_loader *L = xcalloc(1, sizeof *L);
    L->cfg = *cfg;
    L->shards = xcalloc((size_t)n_paths, sizeof *L->shards);
    L->doc_base = xcalloc((size_t)n_paths + 1, sizeof *L->doc_base);
    uint64_t fp = 0x5354524554434855ULL;
    for (int k = 0; k < n_paths; k++) {
        if (shard_open(&L->shards[k], paths[k], err, errlen) != 0) goto bad;
        L->n_shards = k + 1;
        const shard *s = &L->shards[k];
        if (k > 0 && s->vocab_size != L->vocab_size) {
            errmsg(err, errlen, "%s: vocab_size %lld differs from %s's %lld (shards of different "
                 "tokenizers?)", s->path, (long long)s->vocab_size, L->shards[0].path,
                 (long long)L->vocab_size);
            goto bad;
        }
        L->vocab_size = s->vocab_size;
        L->doc_base[k + 1] = L->doc_base[k] + s->n_docs;
        L->n_tokens += s->n_tokens;
        fp = mix(fp, (uint64_t)s->n_docs);
        fp = mix(fp, (uint64_t)s->n_tokens);
        fp = mix(fp, (uint64_t)s->vocab_size);
        fp = mix(fp, s->payload_crc);
    }
    L->n_docs = L->doc_base[n_paths];
    const int32_t special[3] = {cfg->bos_id, cfg->eos_id, cfg->pad_id};
    const char *special_name[3] = {"bos_id", "eos_id", "pad_id"};
    for (int i = 0; i < 3; i++) {
        if (special[i] >= L->vocab_size) {
            errmsg(err, errlen, "data: %s = %d is outside the shards' vocabulary [0, %lld) (%s)",
                 special_name[i], special[i], (long long)L->vocab_size, paths[0]);
            goto bad;
        }
    }
    int64_t longest = 0;
    for (int64_t g = 0; g < L->n_docs; g++) {
        const int64_t n = stream_len(L, g);
        longest = n > longest ? n : longest;
    }
    if (longest == 0) {
        errmsg(err, errlen, "data: the shards (%s%s) hold no tokens", paths[0],
             n_paths > 1 ? ", ..." : "");
        goto bad;
    }
    if (cfg->mode == DATA_WHOLE && 2 * longest < cfg->seq_len) {
        errmsg(err, errlen, "data: mode whole keeps documents of at least seq_len/2 = %lld tokens, "
             "but the longest document in %s%s has %lld", (long long)(cfg->seq_len + 1) / 2,
             paths[0], n_paths > 1 ? ", ..." : "", (long long)longest);
        goto bad;
    }
    if (!(cfg->passkey_pack_long >= 0 && cfg->passkey_pack_long <= 1) ||
        (cfg->passkey_pack_long > 0 && cfg->passkey_pack_min <= 0)) {
        errmsg(err, errlen, "data: passkey_pack_long = %g must be in [0, 1], and 0 without "
               "passkey_pack_min (unpacked rows are all one sample of seq_len)", cfg->passkey_pack_long);
        goto bad;
    }
    if (cfg->passkey_ratio > 0) {
        const int64_t need = passkey_min_len(&cfg->passkey, 0, err, errlen);
        if (need < 0) goto bad;
        if (cfg->passkey_pack_min > 0 && (cfg->passkey_pack_min < need + PASSKEY_LEN_MARGIN ||
                                          cfg->passkey_pack_min > cfg->seq_len)) {
            errmsg(err, errlen, "data: passkey_pack_min = %lld must be in [%lld, seq_len = %lld]",
                   (long long)cfg->passkey_pack_min, (long long)(need + PASSKEY_LEN_MARGIN),
                   (long long)cfg->seq_len);
            goto bad;
        }
        if (cfg->seq_len < need + PASSKEY_LEN_MARGIN) {
            errmsg(err, errlen, "data: seq_len = %lld is too short for passkey rows (they need at "
                 "least %lld tokens)", (long long)cfg->seq_len,
                 (long long)(need + PASSKEY_LEN_MARGIN));
            goto bad;
        }
    }
    for (int t = 0; t < TASK_COUNT; t++) {
        if (cfg->task_mix[t] <= 0) continue;
        if ((L->task_need[t] = task_need(cfg, t, err, errlen)) < 0) goto bad;
        if (cfg->seq_len < L->task_need[t]) {
            errmsg(err, errlen, "data: seq_len = %lld is too short for task_mix.%s rows (they need at "
                   "least %lld tokens)", (long long)cfg->seq_len, TASK_DEFS[t].name, (long long)L->task_need[t]);
            goto bad;
        }
    }
    L->rows_local = cfg->batch_rows / cfg->dp_size;
    L->scratch = xmalloc(4 * (size_t)cfg->seq_len * sizeof *L->scratch);
    L->order = xmalloc((size_t)L->n_docs * sizeof *L->order);
    L->cur.fingerprint = fp;
    rng_seed_stream(&L->cur.shuffle_rng, cfg->seed, STREAM_SHUFFLE);
    rng_seed_stream(&L->cur.mix_rng, cfg->seed, STREAM_MIX);
    draw_order(L);
    return L;
bad:
    data_loader_free(L);
    return NULL;
}

void data_loader_free(data_loader *L) {
    if (!L) return;
    for (int k = 0; k < L->n_shards; k++) shard_close(&L->shards[k]);
    free(L->shards);
    free(L->doc_base);
    free(L->order);
    free(L->scratch);
    free(L);
}

int64_t data_loader_vocab_size(const data_loader *L) { return L->vocab_size; }
int64_t data_loader_n_docs(const data_loader *L) { return L->n_docs; }
int64_t data_loader_n_tokens(const data_loader *L) { return L->n_tokens; }

void data_batch_init(data_batch *b, const data_loader *L) {
    memset(b, 0, sizeof *b);
    b->B = L->rows_local;
    b->T = L->cfg.seq_len;
    const size_t n = (size_t)(b->B * b->T);
    b->tokens = xmalloc(n * sizeof *b->tokens);
    b->targets = xmalloc(n * sizeof *b->targets);
    b->pos = xmalloc(n * sizeof *b->pos);
    b->seg = xmalloc(n * sizeof *b->seg);
}

void data_batch_free(data_batch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->pos);
    free(b->seg);
    memset(b, 0, sizeof *b);
}

// ---------------------------------------------------------------------------
// Cursor

void data_get_cursor(data_cursor *c, const data_loader *L) { *c = L->cur; }

static int rng_valid(const rng_state *r) { return (r->s[0] | r->s[1] | r->s[2] | r->s[3]) != 0; }

int data_set_cursor(data_loader *L, const data_cursor *c, char *err, size_t errlen) {
    if (c->fingerprint != L->cur.fingerprint)
        return errmsg(err, errlen, "data: the cursor was saved for other shards (fingerprint "
                    "0x%016llx, these shards 0x%016llx, first %s)",
                    (unsigned long long)c->fingerprint,
                    (unsigned long long)L->cur.fingerprint, L->shards[0].path);
    if (c->epoch < 0 || c->doc_pos < 0 || c->doc_pos >= L->n_docs || c->doc_offset < 0 ||
        c->rows < 0 || !rng_valid(&c->shuffle_rng) || !rng_valid(&c->mix_rng))
        return errmsg(err, errlen, "data: invalid cursor (epoch %lld, document %lld of %lld, "
                    "offset %lld, rows %lld)", (long long)c->epoch, (long long)c->doc_pos,
                    (long long)L->n_docs, (long long)c->doc_offset, (long long)c->rows);
    L->cur = *c;
    draw_order(L);
    return 0;
}

void data_cursor_to_words(uint64_t *w, const data_cursor *c) {
    w[0] = CURSOR_VERSION;
    w[1] = (uint64_t)c->epoch;
    w[2] = (uint64_t)c->doc_pos;
    w[3] = (uint64_t)c->doc_offset;
    w[4] = (uint64_t)c->rows;
    for (int i = 0; i < 4; i++) {
        w[5 + i] = c->shuffle_rng.s[i];
        w[9 + i] = c->mix_rng.s[i];
    }
    w[13] = c->fingerprint;
}

int data_cursor_from_words(data_cursor *c, const uint64_t *w, char *err, size_t errlen) {
    if (w[0] != CURSOR_VERSION)
        return errmsg(err, errlen, "data: unsupported cursor version %llu (this build reads %d)",
                    (unsigned long long)w[0], CURSOR_VERSION);
    c->epoch = (int64_t)w[1];
    c->doc_pos = (int64_t)w[2];
    c->doc_offset = (int64_t)w[3];
    c->rows = (int64_t)w[4];
    for (int i = 0; i < 4; i++) {
        c->shuffle_rng.s[i] = w[5 + i];
        c->mix_rng.s[i] = w[9 + i];
    }
    c->fingerprint = w[13];
    return 0;
}
