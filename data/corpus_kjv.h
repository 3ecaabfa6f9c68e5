// corpus_kjv: the King James Bible from the Debian package bible-kjv-text,
// long real English text for held-out perplexity at long contexts (the demo
// trains on short fortunes; its ppl-vs-length curve is measured on this).
// Nothing is committed to the repo; scripts/setup-debian.sh installs it.
//
// The package ships /usr/lib/bible.data, the text compressed in blocks (the
// format of the bible-kjv program, "EC02"). Layout, big-endian:
//   0x00  "EC02Compressed Data File", zero padded
//   0x54  u32 block size B (65536)          0x58  u32 block count N (68)
//   0x5c  (N + 1) u32 file offsets: block i is bytes [off[i], off[i+1])
//   off[0] - 3: the compress(1) header (1f 9d 90: 16-bit codes, block mode)
// Every block is one compress(1) code stream (lzw.h) of B bytes of text, the
// last of at most B. The text (4.4 MB, ASCII) is a title line, then one line
// per verse, "Ge1:1 In the beginning God created the heaven and the earth.":
// the book's abbreviation, chapter:verse, the verse.
//
// A document is one book (66: Genesis 1533 verses ... 3 John 14): its verses
// one per line, without their labels. The title line is dropped.
//
// Tested by tests/unit/test_corpus_kjv.c on files it writes itself (an
// independent compress(1) encoder; layout, splitting, errors) and on the
// installed package (its text against `gzip -dc` of each block).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "corpus.h"

#define CORPUS_KJV_PATH "/usr/lib/bible.data"

// The decompressed text of the file at path (NULL: CORPUS_KJV_PATH), malloc'd
// into *text. 0, or -1 with a one-line message naming the file (a missing
// file names the package to install).
int corpus_kjv_read(char **text, size_t *len, const char *path, char *err, size_t errlen);

// Calls fn for every book, in the text's order (source: its abbreviation,
// "Ge"). Returns the number of documents delivered, or -1 with a message.
int64_t corpus_kjv_foreach(const char *path, corpus_doc_fn fn, void *ctx, char *err, size_t errlen);
