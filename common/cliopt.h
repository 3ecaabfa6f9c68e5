// cliopt: the conventions every `stretch` subcommand's options follow, in
// one place: `--key=value` is the same as `--key value`, and an unknown
// option is named with the nearest known one ("unknown option --dryrun (did
// you mean --dry-run?)") before anything asks it for a value.
//
// Tested by tests/unit/test_cliopt.c and tests/cli/test_ux.sh.
#pragma once

#include <stddef.h>

// A new argv (argv[0..argc) plus a NULL) in which every "--key=value"
// becomes "--key" "value"; *argc is updated. Arguments that do not start
// with "--" are left as they are. Free the array (not the strings it points
// into, which are argv's or live in the same allocation) with free().
char **cliopt_split_eq(int *argc, char **argv);

// The known option nearest to opt (Levenshtein distance <= 2, or one is a
// prefix of the other), or NULL. known: n strings.
const char *cliopt_nearest(const char *opt, const char *const *known, int n);

// " (did you mean --dry-run?)" or "" into buf: the hint for an unknown opt.
void cliopt_hint(char *buf, size_t len, const char *opt, const char *const *known, int n);
