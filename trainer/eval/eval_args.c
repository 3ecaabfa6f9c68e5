// eval_args: option values of `stretch eval`. See eval_args.h.
#include "eval_args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Splits text at commas into items (copied into buf, at most EVAL_MAX_LIST);
// -1 with a message for an empty item or too many.
static int split(char items[][64], int *n, const char *text, char *err, size_t errlen) {
    *n = 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        while (len > 0 && (*p == ' ')) p++, len--;
        while (len > 0 && p[len - 1] == ' ') len--;
        if (len == 0) {
            snprintf(err, errlen, "'%s' has an empty entry", text);
            return -1;
        }
        if (*n == EVAL_MAX_LIST) {
            snprintf(err, errlen, "'%.40s...' has more than %d entries", text, EVAL_MAX_LIST);
            return -1;
        }
        if (len >= 64) {
            snprintf(err, errlen, "'%.40s...' is not a value", p);
            return -1;
        }
        memcpy(items[*n], p, len);
        items[(*n)++][len] = '\0';
        p += strcspn(p, ",");
        if (*p == '\0') return 0;
        p++;
    }
}

int eval_parse_count(int64_t *out, const char *text, char *err, size_t errlen) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v <= 0) {
        snprintf(err, errlen, "expected a positive integer, got '%s'", text);
        return -1;
    }
    *out = v;
    return 0;
}

int eval_parse_lengths(int64_t *out, int *n, const char *text, char *err, size_t errlen) {
    char items[EVAL_MAX_LIST][64];
    if (split(items, n, text, err, errlen) != 0) return -1;
    for (int i = 0; i < *n; i++) {
        char *end;
        errno = 0;
        double v = strtod(items[i], &end);
        double unit = 1;
        if (*end == 'k' || *end == 'K') unit = 1024, end++;
        else if (*end == 'm' || *end == 'M') unit = 1024.0 * 1024, end++;
        double tokens = v * unit;
        if (end == items[i] || *end != '\0' || errno != 0 || !(tokens >= 1) || tokens > 1e12 ||
            tokens != floor(tokens) || strchr(items[i], 'e') || strchr(items[i], 'x')) {
            snprintf(err, errlen, "'%s' is not a token count (write e.g. 256, 4k, 1.5k, 1M)", items[i]);
            return -1;
        }
        out[i] = (int64_t)tokens;
        for (int j = 0; j < i; j++)
            if (out[j] == out[i]) {
                snprintf(err, errlen, "length %lld is given twice", (long long)out[i]);
                return -1;
            }
    }
    for (int i = 1; i < *n; i++)  // insertion sort: a handful of entries
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int64_t x = out[j];
            out[j] = out[j - 1];
            out[j - 1] = x;
        }
    return 0;
}

int eval_parse_depths(double *out, int *n, const char *text, char *err, size_t errlen) {
    char items[EVAL_MAX_LIST][64];
    if (split(items, n, text, err, errlen) != 0) return -1;
    if (*n == 1 && !strpbrk(items[0], ".eE")) {  // a count
        int64_t count;
        if (eval_parse_count(&count, items[0], err, errlen) != 0) {
            snprintf(err, errlen, "'%s' is neither a depth count (e.g. 10) nor a fraction in [0, 1] "
                     "with a decimal point (e.g. 0.0)", items[0]);
            return -1;
        }
        if (count > EVAL_MAX_LIST) {
            snprintf(err, errlen, "at most %d depths (got %lld)", EVAL_MAX_LIST, (long long)count);
            return -1;
        }
        *n = (int)count;
        for (int i = 0; i < *n; i++) out[i] = *n == 1 ? 0.5 : (double)i / (*n - 1);
        return 0;
    }
    for (int i = 0; i < *n; i++) {
        char *end;
        out[i] = strtod(items[i], &end);
        if (end == items[i] || *end != '\0' || !(out[i] >= 0 && out[i] <= 1)) {
            snprintf(err, errlen, "depth '%s' is not a fraction in [0, 1] (write e.g. 0.1,0.5,0.9, or a count like 10)",
                     items[i]);
            return -1;
        }
    }
    return 0;
}

int eval_parse_rope(eval_rope_opt *opt, const char *text, char *err, size_t errlen) {
    char name[32];
    size_t len = strcspn(text, ":");
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, text, len);
    name[len] = '\0';
    rope_type type;
    if (rope_type_parse(name, &type) != 0) {
        snprintf(err, errlen, "unknown RoPE type '%s' (default, linear, dynamic, yarn, llama3, longrope)", name);
        return -1;
    }
    double factor = 0;
    const char *file = NULL;
    if (text[len] == ':') {
        char *end;
        factor = strtod(text + len + 1, &end);
        if (type == ROPE_TYPE_LONGROPE && *end == ':') file = end + 1;
        if (end == text + len + 1 || (*end != '\0' && !file) || !(factor >= 1) || !isfinite(factor)) {
            snprintf(err, errlen, "'%s': the factor must be a number >= 1", text);
            return -1;
        }
    }
    if (type == ROPE_TYPE_DEFAULT && factor != 0) {
        snprintf(err, errlen, "'%s': the default RoPE takes no factor", text);
        return -1;
    }
    if (type != ROPE_TYPE_DEFAULT && factor == 0) {
        snprintf(err, errlen, "'%s' needs a factor, e.g. %s:4%s", text, name,
                 type == ROPE_TYPE_LONGROPE ? ":factors.yaml" : "");
        return -1;
    }
    if (type == ROPE_TYPE_LONGROPE && (!file || !*file)) {
        snprintf(err, errlen, "'%s': longrope needs per-pair factors: longrope:FACTOR:FILE (a factors file of "
                 "stretch search), or --rope-stage with a stage that has them", text);
        return -1;
    }
    opt->custom = true;
    opt->type = type;
    opt->factor = factor;
    opt->factors_file = file;
    return 0;
}
