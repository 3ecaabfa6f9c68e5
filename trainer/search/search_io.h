// search_io: the files of `stretch search`.
//
//   DIR/search.state  the search after each generation, so a killed search
//                     resumes where it was and ends with the same result:
//                     settings, space (bounds included), generation, RNG state, history,
//                     population with fitness. Text, doubles in %.17g (they
//                     read back bit for bit), written to a temporary file,
//                     fsync'd and renamed over the old one (atomic).
//   factors.yaml      short_factor (all 1, or the searched short factors),
//                     long_factor (the best lambda), n_hat: the LongRoPE
//                     factors file of a curriculum stage (rope.factors_file,
//                     read by cfg_read_factors).
//   factors.csv       generation,evaluated,best_nll,best_ppl,mean_nll,best_n_hat
//   factors.svg       exp(best fitness) per generation (the perplexity, or
//                     that of the answer tokens), with the three baselines
//                     as flat lines (plot_svg.h).
//
// Tested by tests/unit/test_search.c (state round trip bit for bit, a
// resumed search equal to an uninterrupted one, truncated and foreign state
// files refused, factors file read back by cfg_read_factors) and
// tests/cli/test_search.sh.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "search.h"

#define SEARCH_MAX_SETTINGS 16

// What a state belongs to (checkpoint, target length, data, seed, ...): a
// resume with other settings is refused, naming the first that differs.
typedef struct {
    int n;
    struct {
        char key[32];       // no blanks
        char value[1024];   // one line
    } v[SEARCH_MAX_SETTINGS];
} search_settings;

// Appends key = the printf-formatted value.
void search_settings_add(search_settings *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// 0 when a and b hold the same keys and values; else -1 with
// "KEY: A (saved) vs B (now)" for the first difference.
int search_settings_compare(const search_settings *saved, const search_settings *now, char *err,
                            size_t errlen);

// Writes the state atomically (path.tmp, fsync, rename). 0, or -1 with a
// message naming the path.
int search_state_save(const char *path, const search_state *st, const search_settings *settings,
                      char *err, size_t errlen);

// Reads a state written by search_state_save: 0; 1 when path does not
// exist; -1 with "PATH: line N: ..." for anything else (st is then empty).
int search_state_load(search_state *st, search_settings *settings, const char *path, char *err,
                      size_t errlen);

// The factors file: short_factor = short_f (NULL: all 1), long_factor =
// c->lambda, n_hat = c->n_hat (comment: '#' lines on top, may be NULL).
int search_write_factors(const char *path, const double *short_f, const search_candidate *c, int n_pairs,
                         const char *comment, char *err, size_t errlen);

// The CSV and the plot (title, y_label: what exp(fitness) is) of st's
// history; baselines names pop[0..2] of generation 1 in the legend (NULL:
// PI, NTK, YaRN).
int search_write_report(const char *csv_path, const char *svg_path, const search_state *st,
                        const char *const baselines[SEARCH_N_BASELINES], const char *title,
                        const char *y_label, char *err, size_t errlen);
