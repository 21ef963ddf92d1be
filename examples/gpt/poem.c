/* poem.c: the check of a Tang poem's regular five- or seven-character form
 * (poem.h). */
#include "poem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Decodes one UTF-8 code point at s[*i..n); -1 for a malformed one (and
 * *i moves past one byte). */
static int32_t next_code_point(const char *s, size_t n, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[*i];
    int len = c < 0x80         ? 1
              : (c >> 5) == 6  ? 2
              : (c >> 4) == 14 ? 3
              : (c >> 3) == 30 ? 4
                               : 0;
    if (len == 0 || *i + (size_t)len > n) {
        (*i)++;
        return -1;
    }
    int32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (int k = 1; k < len; k++) {
        if ((u[*i + k] & 0xc0) != 0x80) {
            (*i)++;
            return -1;
        }
        cp = (cp << 6) | (u[*i + k] & 0x3f);
    }
    *i += (size_t)len;
    return cp;
}

static bool is_han(int32_t cp)
{
    return (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x4e00 && cp <= 0x9fff) ||
           (cp >= 0xf900 && cp <= 0xfaff);
}

/* ，。？！； */
static bool is_mark(int32_t cp)
{
    return cp == 0xff0c || cp == 0x3002 || cp == 0xff1f || cp == 0xff01 ||
           cp == 0xff1b;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t p = strlen(prefix);
    return n >= p && memcmp(s, prefix, p) == 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Where a walk over a poem's lines stands: the next line's offset, and
 * what may still come before the body (0: the title, 1: the author, 2:
 * nothing, the body has begun or the header is over). */
typedef struct {
    size_t pos;
    int header;
} line_walk;

/* The next body line of s[0..n) in *line and *len, without the \r of a
 * CRLF ending, or false at the end: blank lines are skipped, and before
 * the body the title line 《...》 and the author line 作者... */
static bool next_body_line(const char *s, size_t n, line_walk *w,
                           const char **line, size_t *len)
{
    while (w->pos < n) {
        size_t eol = w->pos;
        while (eol < n && s[eol] != '\n') eol++;
        *line = s + w->pos;
        *len = eol - w->pos;
        if (*len > 0 && (*line)[*len - 1] == '\r') --*len;
        w->pos = eol + 1;
        if (blank(*line, *len)) continue;
        if (w->header == 0 && starts_with(*line, *len, "《")) {
            w->header = 1;
            continue;
        }
        if (w->header <= 1 && starts_with(*line, *len, "作者")) {
            w->header = 2;
            continue;
        }
        w->header = 2;
        return true;
    }
    return false;
}

/* The half-lines seen so far in a body, to find one written again; past
 * the first 256 none is kept (no poem of tang300 has half as many). */
typedef struct {
    const char *at[256];
    size_t len[256];
    int n;
} seen_halves;

/* Whether the half-line s[0..len) repeats one already seen; notes it. */
static bool repeats(seen_halves *seen, const char *s, size_t len)
{
    for (int i = 0; i < seen->n; i++)
        if (seen->len[i] == len && !memcmp(seen->at[i], s, len)) return true;
    if (seen->n < 256) {
        seen->at[seen->n] = s;
        seen->len[seen->n++] = len;
    }
    return false;
}

int poem_regular(const char *s, size_t n)
{
    seen_halves seen = {.n = 0};
    int width = 0, lines = 0;
    line_walk w = {0, 0};
    const char *line;
    size_t len;
    while (next_body_line(s, n, &w, &line, &len)) {
        /* the body line: exactly two half-lines of `width` Han characters */
        int halves = 0, run = 0;
        size_t start = 0;
        for (size_t i = 0; i < len;) {
            size_t at = i;
            int32_t cp = next_code_point(line, len, &i);
            if (is_han(cp)) {
                run++;
            } else if (is_mark(cp) && run > 0) {
                if (width == 0) width = run;
                if (run != width || ++halves > 2 ||
                    repeats(&seen, line + start, at - start))
                    return 0;
                run = 0;
                start = i;
            } else {
                return 0;
            }
        }
        if (run != 0 || halves != 2) return 0;
        lines++;
    }
    return lines >= POEM_MIN_LINES && (width == 5 || width == 7) ? width : 0;
}

/* Calls fn(half, len, han, clean, user) for each half-line of the body:
 * its bytes (without the mark), its number of Han characters and whether
 * it holds nothing else. */
static void each_half_line(const char *s, size_t n,
                           void (*fn)(const char *half, size_t len, int han,
                                      bool clean, void *user),
                           void *user)
{
    line_walk w = {0, 0};
    const char *line;
    size_t len;
    while (next_body_line(s, n, &w, &line, &len)) {
        int han = 0;
        bool clean = true, open = false;
        size_t start = 0;
        for (size_t i = 0; i < len;) {
            size_t at = i;
            int32_t cp = next_code_point(line, len, &i);
            if (is_mark(cp)) {
                fn(line + start, at - start, han, clean, user);
                han = 0, clean = true, open = false;
                start = i;
            } else {
                open = true;
                if (is_han(cp))
                    han++;
                else
                    clean = false;
            }
        }
        if (open) fn(line + start, len - start, han, false, user); /* no mark */
    }
}

typedef struct {
    int total, five, seven;
    seen_halves seen;
} half_counts;

/* A half-line keeps the form when it is exactly 5 (or 7) Han characters
 * and not one written before in the poem. */
static void count_half(const char *half, size_t len, int han, bool clean,
                       void *user)
{
    half_counts *c = user;
    c->total++;
    bool keeps =
        clean && (han == 5 || han == 7) && !repeats(&c->seen, half, len);
    c->five += keeps && han == 5;
    c->seven += keeps && han == 7;
}

double poem_form_score(const char *s, size_t n)
{
    half_counts c = {.total = 0};
    each_half_line(s, n, count_half, &c);
    if (c.total == 0) return 0;
    /* a poem shorter than the shortest regular one misses half-lines */
    int halves = c.total > 2 * POEM_MIN_LINES ? c.total : 2 * POEM_MIN_LINES;
    return (double)(c.seven > c.five ? c.seven : c.five) / halves;
}

typedef struct {
    poem_lines *lines;
    int failed;
} lines_job;

static void add_half(const char *half, size_t len, int han, bool clean,
                     void *user)
{
    lines_job *j = user;
    poem_lines *l = j->lines;
    if (!clean || han == 0 || j->failed) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->half, cap * sizeof *grown);
        if (!grown) {
            j->failed = 1;
            return;
        }
        l->half = grown, l->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        j->failed = 1;
        return;
    }
    memcpy(copy, half, len);
    copy[len] = 0;
    l->half[l->n++] = copy;
}

int poem_lines_add(poem_lines *l, const char *s, size_t n)
{
    lines_job j = {l, 0};
    each_half_line(s, n, add_half, &j);
    return j.failed ? -1 : 0;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t poem_lines_distinct(poem_lines *l)
{
    if (l->n == 0) return 0;
    qsort(l->half, l->n, sizeof *l->half, by_text);
    size_t distinct = 1;
    for (size_t i = 1; i < l->n; i++)
        distinct += strcmp(l->half[i], l->half[i - 1]) != 0;
    return distinct;
}

void poem_lines_free(poem_lines *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->half[i]);
    free(l->half);
    *l = (poem_lines){0};
}
