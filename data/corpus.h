// corpus: the real English text of the demo, from the Debian package
// "fortunes" (which pulls in "fortunes-min"): 42 files of fortune cookies
// under /usr/share/games/fortunes, 2.5 MB of UTF-8 text, 15,206 entries
// (quotations, jokes, definitions, poems). Nothing is committed to the repo;
// scripts/setup-debian.sh installs the package.
//
// A document is either one fortune (CORPUS_ENTRY: 15,206 documents, most
// under 400 bytes) or one file, its fortunes joined by blank lines
// (CORPUS_FILE: 42 documents of 0.4 to 240 KB, for long-context rows). The
// file "ascii-art" (drawings) is left out. Text is cleaned: backspace
// overstrikes are removed with the character they strike, other control
// characters except newline and tab are dropped, trailing blanks of every
// line and blank lines around an entry are trimmed. Files are read in a
// fixed order (sorted names), so document i is the same on every machine.
//
// Tested by tests/unit/test_corpus.c on fortune files it writes itself
// (parsing, cleaning, both units, the missing-file error), and on the real
// package when it is installed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CORPUS_FORTUNES_DIR "/usr/share/games/fortunes"

typedef enum { CORPUS_ENTRY = 0, CORPUS_FILE = 1 } corpus_unit;

// One document: its index (0, 1, ... in order), the file it came from
// ("computers"), its text (UTF-8, not NUL-terminated). Non-zero stops.
typedef int (*corpus_doc_fn)(void *ctx, int64_t index, const char *source, const char *text,
                             size_t len);

// Calls fn for every document of the fortunes corpus in dir (NULL: the
// package's CORPUS_FORTUNES_DIR). Returns the number of documents delivered,
// or -1 with a one-line message in err (a missing file names the file and
// the package to install).
int64_t corpus_fortunes_foreach(const char *dir, corpus_unit unit, corpus_doc_fn fn, void *ctx,
                                char *err, size_t errlen);

// Cleans one fortune in place (see above); returns its new length.
size_t corpus_clean(char *text, size_t len);
