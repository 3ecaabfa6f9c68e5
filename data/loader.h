// loader: training batches of fixed-length sequences from token shards, with
// document boundaries, deterministic shuffling and an exactly resumable,
// rank-count independent cursor.
//
// Documents. The shards' documents are numbered globally (shard order, then
// document order). Each document is read as its stream [bos] tokens [eos]
// (bos/eos only when their ids are >= 0). Every epoch visits all documents
// once, in file order or (shuffle) in a permutation drawn from the cursor's
// shuffle RNG; documents whose stream is empty are skipped. The stream of
// documents runs on across epochs without a gap. Memory: the shards are
// mmap'd; the loader keeps the epoch's order (8 bytes per document).
//
// Rows (T = seq_len tokens each), two modes:
//   DATA_PACK   documents are concatenated; a row is cut from the stream
//               wherever T tokens are full, so a long document continues in
//               the next row. No padding ever.
//   DATA_WHOLE  one document (piece) per row: a document's remaining stream
//               is cut into rows of T; a remainder of at least T/2 tokens
//               (2 * n >= T) becomes a row padded with pad_id; a shorter
//               remainder (or document) is dropped.
// Per token: pos = position within its piece of document, 0 at the start of
// every piece, +1 per token. A document continuing from the previous row
// restarts at 0: its earlier tokens are in another row, out of reach of
// attention, and RoPE scores depend only on position differences. seg =
// index of the piece within the row (0, 1, ...), -1 on padding; attention
// lets token i see token j iff seg[j] == seg[i] and j <= i. targets = the
// next token of the same document stream, also when that token falls in the
// next row; -1 after a document's last token and on padding.
//
// Synthetic mix: with passkey_ratio > 0 each row is, with that probability,
// a passkey sample of length T (pos 0..T-1, seg 0) instead of text; the
// draw and the sample's seed come from the cursor's mix RNG. seq_len must
// leave room for the prompt: passkey_min_len + 16 tokens at least. Task
// rows (task_mix) likewise: one uniform draw picks passkey, copy, task 0,
// task 1, ... or text by the cumulative ratios (all ratios 0: no draw, so
// the stream of a run without a mix is unchanged).
//
// Data parallelism: the global batch is batch_rows rows in a fixed order;
// every rank walks all of them (cheap: copies from the mmap'd shards) and
// keeps rows [dp_rank * B_local, (dp_rank + 1) * B_local), B_local =
// batch_rows / dp_size. The cursor therefore counts what ALL ranks consumed,
// is identical on every rank, and a run resumed on another number of ranks
// sees the same global batches.
//
// Tested by tests/unit/test_data.c: pack and whole invariants (positions,
// targets, segments, padding), every token of an epoch exactly once, shuffle
// determinism, cursor save/restore (also through words and a new loader), dp
// slices against the 1-rank batch, passkey mixing.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "passkey.h"
#include "rng.h"
#include "task.h"

typedef enum { DATA_PACK = 0, DATA_WHOLE = 1 } data_mode;

typedef struct {
    data_mode mode;
    int64_t seq_len;        // T
    int64_t batch_rows;     // rows of the global batch (all dp ranks)
    int dp_rank;            // 0 .. dp_size - 1
    int dp_size;            // must divide batch_rows
    uint64_t seed;          // seeds the shuffle and mix RNGs of a fresh cursor
    int shuffle;            // 1: new document order each epoch; 0: file order
    int32_t bos_id;         // prepended to every document when >= 0
    int32_t eos_id;         // appended to every document when >= 0
    int32_t pad_id;         // padding token (DATA_WHOLE; must be >= 0 there)
    double passkey_ratio;   // probability that a row is a passkey sample
    double copy_ratio;      // probability that a row is a copy task (passkey_make_copy)
    int64_t pose_len;       // > seq_len: passkey rows' positions jump ahead by a random skip
                            // in [0, pose_len - seq_len] at a random point (PoSE); 0 = off
    int64_t passkey_pack_min; // > 0: a passkey row packs several samples, each of a length
                            // drawn log-uniformly from [passkey_pack_min, room left], as
                            // separate documents (positions restart, attention masked),
                            // so one row trains many distances; 0 = one sample per row
    double passkey_pack_long; // with passkey_pack_min > 0: the probability that a packed row
                            // (passkey or task) holds one sample of seq_len instead; 0 = never
    passkey_config passkey; // used when passkey_ratio > 0 (its encode_ctx must outlive the loader)
    double task_mix[TASK_COUNT]; // probability that a row is a sample of task t (data/task.h),
                            // after passkey_ratio and copy_ratio; random depth; with
                            // passkey_pack_min > 0 a row packs samples like passkey rows
    task_env task;          // used when a task_mix entry is > 0 (not real-text tasks: no haystack)
    int mix_per_batch;      // 1: the kind of row (passkey, copy, task, text) is drawn once per
                            // batch and holds for all its rows; 0: drawn for every row
} data_config;

// Where the data stream stands; a checkpoint stores it (data_cursor_to_words).
typedef struct {
    int64_t epoch;          // completed passes over the documents
    int64_t doc_pos;        // index into this epoch's document order
    int64_t doc_offset;     // tokens of that document's stream already consumed
    int64_t rows;           // global rows produced so far
    rng_state shuffle_rng;  // the state that draws this epoch's order
    rng_state mix_rng;      // draws synthetic rows and their seeds
    uint64_t fingerprint;   // of the shard set; a cursor only fits its own data
} data_cursor;

#define DATA_CURSOR_WORDS 14

typedef struct {
    int64_t B;                // rows on this rank
    int64_t T;                // sequence length
    int32_t *tokens;          // (B, T) input ids
    int32_t *targets;         // (B, T) next id of the same document, -1 = no loss
    int32_t *pos;             // (B, T) position ids, 0 at every piece start
    int32_t *seg;             // (B, T) piece index within the row, -1 = padding
    int64_t n_targets;        // targets != -1 in this rank's rows
    int64_t n_targets_global; // targets != -1 in the whole global batch
} data_batch;

typedef struct data_loader data_loader;

// Opens the shards (all must share one vocab_size) and starts a fresh cursor
// from cfg->seed. NULL with a one-line message in err on failure.
data_loader *data_loader_open(const char *const *paths, int n_paths, const data_config *cfg,
                              char *err, size_t errlen);
void data_loader_free(data_loader *L);

int64_t data_loader_vocab_size(const data_loader *L);
int64_t data_loader_n_docs(const data_loader *L);
int64_t data_loader_n_tokens(const data_loader *L);  // shard tokens, without bos/eos

// Allocates a batch of this rank's shape (batch_rows / dp_size, seq_len).
void data_batch_init(data_batch *b, const data_loader *L);
void data_batch_free(data_batch *b);

// Fills b with the next global batch's rows of this rank and advances the
// cursor by the whole global batch.
void data_next_batch(data_loader *L, data_batch *b);

void data_get_cursor(data_cursor *c, const data_loader *L);

// Continues from c (saved by a loader over the same shards, possibly with
// another mode, seq_len, batch size or rank count). -1 with a message when c
// does not fit these shards.
int data_set_cursor(data_loader *L, const data_cursor *c, char *err, size_t errlen);

// Cursor <-> DATA_CURSOR_WORDS uint64 words (for a checkpoint dataset).
void data_cursor_to_words(uint64_t *words, const data_cursor *c);
int data_cursor_from_words(data_cursor *c, const uint64_t *words, char *err, size_t errlen);
