// cliopt: option conventions shared by the subcommands. See cliopt.h.
#include "cliopt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char **cliopt_split_eq(int *argc, char **argv) {
    int n = *argc, extra = 0;
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        if (i > 0 && !strncmp(argv[i], "--", 2) && strchr(argv[i], '=')) {
            extra++;
            bytes += strlen(argv[i]) + 2;
        }
    // One allocation: the pointer array, then the split copies.
    size_t ptrs = sizeof(char *) * (size_t)(n + extra + 1);
    char **out = malloc(ptrs + bytes);
    if (!out) return NULL;
    char *pool = (char *)out + ptrs;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const char *eq = i > 0 && !strncmp(argv[i], "--", 2) ? strchr(argv[i], '=') : NULL;
        if (!eq) {
            out[k++] = argv[i];
            continue;
        }
        size_t klen = (size_t)(eq - argv[i]);
        memcpy(pool, argv[i], klen);
        pool[klen] = '\0';
        out[k++] = pool;
        pool += klen + 1;
        strcpy(pool, eq + 1);
        out[k++] = pool;
        pool += strlen(eq + 1) + 1;
    }
    out[k] = NULL;
    *argc = k;
    return out;
}

static size_t min3(size_t a, size_t b, size_t c) { return a < b ? (a < c ? a : c) : (b < c ? b : c); }

// Edit distance, capped: strings longer than 63 characters are "far".
static size_t distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++)
            d[i][j] = min3(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]));
    return d[la][lb];
}

const char *cliopt_nearest(const char *opt, const char *const *known, int n) {
    const char *best = NULL;
    size_t best_d = 3;
    for (int i = 0; i < n; i++) {
        size_t d = distance(opt, known[i]);
        if (d < best_d) best_d = d, best = known[i];
    }
    if (best) return best;
    size_t len = strlen(opt);
    for (int i = 0; i < n && len > 3; i++)  // a cut or a lengthened name
        if (!strncmp(known[i], opt, len) || (strlen(known[i]) > 3 && !strncmp(opt, known[i], strlen(known[i]))))
            return known[i];
    return NULL;
}

void cliopt_hint(char *buf, size_t len, const char *opt, const char *const *known, int n) {
    const char *s = cliopt_nearest(opt, known, n);
    if (s) snprintf(buf, len, " (did you mean %s?)", s);
    else if (len) buf[0] = '\0';
}
