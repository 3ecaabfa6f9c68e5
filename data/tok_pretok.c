// tok_pretok: hand-written pre-tokenizer regexes. See tok_pretok.h.
#include "tok_pretok.h"

#include <stdlib.h>

#include "die.h"
#include "tok_unicode.h"

// ---------------------------------------------------------------------------
// Piece lists

void tok_spans_push(tok_spans *v, int64_t start, int64_t end) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->data = xrealloc(v->data, (size_t)v->cap * sizeof(*v->data));
    }
    v->data[v->n++] = (tok_span){start, end};
}

void tok_spans_free(tok_spans *v) {
    free(v->data);
    *v = (tok_spans){0};
}

void tok_pretok_scratch_free(tok_pretok_scratch *scratch) {
    tok_spans_free(&scratch->a);
    tok_spans_free(&scratch->b);
}

// ---------------------------------------------------------------------------
// Reading characters. Every read goes through char_at(), which notes when a
// match depended on the end of an open text (or on a character cut by it).

enum { C_END, C_LETTER, C_NUMBER, C_SPACE, C_OTHER };

typedef struct {
    const uint8_t *s;
    int64_t end;    // the piece is s[..end)
    bool open;      // the text may continue after end
    bool hit_end;   // a read reached the end of an open text
} cursor;

// Class of the character at byte i; its codepoint (-1: invalid byte) in *cp
// and its length in *len (0 at the end).
static int char_at(cursor *c, int64_t i, int32_t *cp, int *len) {
    if (i >= c->end) {
        c->hit_end |= c->open;
        *cp = -1, *len = 0;
        return C_END;
    }
    uint8_t b = c->s[i];
    if (b < 0x80) {
        *cp = b, *len = 1;
        if ((b | 0x20) >= 'a' && (b | 0x20) <= 'z') return C_LETTER;
        if (b >= '0' && b <= '9') return C_NUMBER;
        if (b == ' ' || (b >= 0x09 && b <= 0x0D)) return C_SPACE;
        return C_OTHER;
    }
    bool truncated;
    *len = tok_utf8_decode(cp, &truncated, c->s + i, c->end - i);
    if (truncated && c->open) {  // the rest of this character is still to come
        c->hit_end = true;
        *cp = -1, *len = 0;
        return C_END;
    }
    if (tok_is_letter(*cp)) return C_LETTER;
    if (tok_is_number(*cp)) return C_NUMBER;
    if (tok_is_space(*cp)) return C_SPACE;
    return C_OTHER;
}

// End of the run of characters of class cls that starts at i (at most max
// characters; max < 0: no limit).
static int64_t run_end(cursor *c, int64_t i, int cls, int max) {
    int32_t cp;
    int len;
    for (int count = 0; max < 0 || count < max; count++) {
        if (char_at(c, i, &cp, &len) != cls) break;
        i += len;
    }
    return i;
}

// One of 's 't 're 've 'm 'll 'd starting with the apostrophe at i - 1:
// returns its end, or -1. fold: case-insensitive (then U+017F LONG S, whose
// case fold is s, counts as s too, as in Oniguruma).
static int64_t contraction(cursor *c, int64_t i, bool fold) {
    int32_t a, b;
    int la, lb;
    char_at(c, i, &a, &la);
    if (fold) {
        if (a == 0x17F) a = 's';
        if (a >= 'A' && a <= 'Z') a += 'a' - 'A';
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + la;
    if (a != 'r' && a != 'v' && a != 'l') return -1;
    char_at(c, i + la, &b, &lb);
    if (fold && b >= 'A' && b <= 'Z') b += 'a' - 'A';
    if ((a == 'l' && b == 'l') || (a != 'l' && b == 'e')) return i + la + lb;
    return -1;
}

// The two whitespace alternatives every pattern ends with, \s+(?!\S)|\s+,
// at i (a space character).
static int64_t match_spaces(cursor *c, int64_t i) {
    int32_t cp;
    int len;
    int64_t last = i, r = i;  // last: start of the run's last character
    while (char_at(c, r, &cp, &len) == C_SPACE) last = r, r += len;
    if (r >= c->end) return r;   // \s+(?!\S): nothing follows the run
    if (last > i) return last;   // \s+(?!\S): backtrack one character
    return r;                    // \s+
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
static int64_t match_gpt2(cursor *c, int64_t i) {
    int32_t cp, cp1;
    int len, len1;
    int cls = char_at(c, i, &cp, &len);
    if (cls == C_END) return i;
    if (cp == '\'') {
        int64_t j = contraction(c, i + 1, false);
        if (j > 0) return j;
    }
    if (cp == ' ') {  // ' ?' then a run of letters, numbers or others
        int cls1 = char_at(c, i + 1, &cp1, &len1);
        if (cls1 == C_LETTER || cls1 == C_NUMBER || cls1 == C_OTHER)
            return run_end(c, i + 1, cls1, -1);
    }
    if (cls != C_SPACE) return run_end(c, i, cls, -1);
    return match_spaces(c, i);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}
// | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
static int64_t match_llama3(cursor *c, int64_t i, int max_digits) {
    int32_t cp, cp1;
    int len, len1;
    int cls = char_at(c, i, &cp, &len);
    if (cls == C_END) return i;
    if (cp == '\'') {
        int64_t j = contraction(c, i + 1, true);
        if (j > 0) return j;
    }
    if (cls == C_LETTER) return run_end(c, i, C_LETTER, -1);
    if (cls == C_NUMBER) return run_end(c, i, C_NUMBER, max_digits);
    // [^\r\n\p{L}\p{N}]\p{L}+ : one space or other character before letters
    int cls1 = char_at(c, i + len, &cp1, &len1);
    if (cp != '\r' && cp != '\n' && cls1 == C_LETTER) return run_end(c, i + len, C_LETTER, -1);
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    int64_t j = -1;
    if (cls == C_OTHER) j = run_end(c, i, C_OTHER, -1);
    else if (cp == ' ' && cls1 == C_OTHER) j = run_end(c, i + 1, C_OTHER, -1);
    if (j >= 0) {
        while (char_at(c, j, &cp, &len) == C_SPACE && (cp == '\r' || cp == '\n')) j += len;
        return j;
    }
    // \s*[\r\n]+ : the run of spaces up to its last line break
    int64_t r = i, after_break = -1;
    while (char_at(c, r, &cp, &len) == C_SPACE) {
        r += len;
        if (cp == '\r' || cp == '\n') after_break = r;
    }
    if (after_break > 0) return after_break;
    return match_spaces(c, i);
}

// ---------------------------------------------------------------------------
// Steps

// Splits piece [a, b) by a regex step, appending its pieces to out. Returns
// where the appended pieces end: b, or when open the start of the first
// match that looked at the end (that match and the rest are dropped).
static int64_t split_regex(tok_spans *out, const tok_pre_step *step, const uint8_t *s,
                           int64_t a, int64_t b, bool open) {
    cursor c = {.s = s, .end = b, .open = open};
    int64_t i = a;
    while (i < b) {
        int64_t j = step->kind == TOK_PRE_GPT2 ? match_gpt2(&c, i)
                                                : match_llama3(&c, i, step->max_digits);
        if (c.hit_end) return i;
        CHECK(j > i);  // every character is a letter, number, space or other
        tok_spans_push(out, i, j);
        i = j;
    }
    return b;
}

// Splits piece [a, b) by a Digits step. Returns the start of the piece that
// was still growing when an open text ended (it is not appended; *grows is
// set), or b.
static int64_t split_digits(tok_spans *out, const tok_pre_step *step, const uint8_t *s,
                            int64_t a, int64_t b, bool open, bool *grows) {
    cursor c = {.s = s, .end = b, .open = open};
    bool individual = step->kind == TOK_PRE_DIGITS;
    int64_t start = a, i = a;  // the current piece is [start, i)
    bool in_digits = false;
    for (;;) {
        int32_t cp;
        int len;
        if (char_at(&c, i, &cp, &len) == C_END) break;
        bool digit = tok_is_numeric(cp);
        if (i > start && (digit != in_digits || (digit && individual))) {
            tok_spans_push(out, start, i);
            start = i;
        }
        in_digits = digit;
        i += len;
    }
    *grows = c.hit_end;
    if (c.hit_end) return start;
    if (i > start) tok_spans_push(out, start, i);
    return b;
}

int64_t tok_pretok_split(tok_spans *out, tok_pretok_scratch *scratch,
                         const tok_pre_step *steps, int n_steps,
                         const uint8_t *s, int64_t n, bool open) {
    // The closed pieces pass from step to step through in -> dst. An open
    // text has at most one open piece, after all closed ones: [grow, n). A
    // Digits step keeps it open (it can only grow); a regex step resolves it
    // and cuts at the first match that needs more text.
    tok_spans *in = &scratch->a, *dst = &scratch->b;
    in->n = 0;
    bool has_open = open && n > 0;
    int64_t grow = 0, cut = n;
    if (!open && n > 0) tok_spans_push(in, 0, n);
    for (int k = 0; k < n_steps; k++) {
        const tok_pre_step *step = &steps[k];
        bool regex = step->kind == TOK_PRE_GPT2 || step->kind == TOK_PRE_LLAMA3;
        bool grows;
        dst->n = 0;
        for (int64_t p = 0; p < in->n; p++) {
            int64_t a = in->data[p].start, b = in->data[p].end;
            if (regex) split_regex(dst, step, s, a, b, false);
            else split_digits(dst, step, s, a, b, false, &grows);
        }
        if (has_open && regex) {
            cut = split_regex(dst, step, s, grow, n, true);
            has_open = false;
        } else if (has_open) {
            grow = split_digits(dst, step, s, grow, n, true, &grows);
            has_open = grows && grow < n;
        }
        tok_spans *t = in;
        in = dst, dst = t;
    }
    if (has_open) cut = grow;  // BPE cannot encode a piece that may still grow
    for (int64_t p = 0; p < in->n; p++) tok_spans_push(out, in->data[p].start, in->data[p].end);
    return cut;
}
