/* pretokenize.c: GPT-2's pre-tokenization pattern, by hand:
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * At each position the first alternative that matches wins (as in the
 * backtracking engines GPT-2 ran on), which comes down to:
 *   - an apostrophe and s, t, m, d, re, ve or ll: that contraction;
 *   - an optional space and a run of letters, of numbers, or of other
 *     characters (not letters, numbers or white space): that run;
 *   - a run of white space: all of it at the end of the text or when it is
 *     one character, otherwise all of it but its last character (which
 *     then starts the next word, as " word" or a lone white space).
 * Characters are UTF-8; a byte that starts no valid character is one other
 * character (Python's surrogateescape). */
#include "text.h"

#include "../io/io.h"
#include "unicode_table.h"

/* The class of code point cp, from the table by binary search. */
static ag__char_class class_of(uint32_t cp)
{
    size_t lo = 0, hi = sizeof ag__char_ranges / sizeof ag__char_ranges[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < ag__char_ranges[mid].first)
            hi = mid;
        else if (cp > ag__char_ranges[mid].last)
            lo = mid + 1;
        else
            return (ag__char_class)ag__char_ranges[mid].cls;
    }
    return AG__CHAR_OTHER;
}

/* The classes of the ASCII characters, from the same table. */
static ag__char_class ascii_class(unsigned char c)
{
    if (c >= '0' && c <= '9') return AG__CHAR_NUMBER;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return AG__CHAR_LETTER;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return AG__CHAR_SPACE;
    return AG__CHAR_OTHER;
}

ag__char_class ag__char_at(const unsigned char *s, size_t n, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return ascii_class(s[0]);
    }
    size_t l = ag__utf8_char(s, n);
    if (!l) {
        *len = 1;
        return AG__CHAR_OTHER;
    }
    *len = l;
    uint32_t cp =
        l == 2   ? (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu)
        : l == 3 ? (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu)
                 : (s[0] & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 |
                       (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
    return class_of(cp);
}

/* The end of the run of characters of class cls that starts at s[at]. */
static size_t run_end(const unsigned char *s, size_t n, size_t at,
                      ag__char_class cls)
{
    while (at < n) {
        size_t len;
        if (ag__char_at(s + at, n - at, &len) != cls) break;
        at += len;
    }
    return at;
}

/* The length of the contraction at s ('s 't 'm 'd 're 've 'll), or 0. */
static size_t contraction(const unsigned char *s, size_t n)
{
    if (n < 2 || s[0] != '\'') return 0;
    if (s[1] && strchr("stmd", s[1])) return 2;
    if (n >= 3 &&
        ((s[1] == 'r' && s[2] == 'e') || (s[1] == 'v' && s[2] == 'e') ||
         (s[1] == 'l' && s[2] == 'l')))
        return 3;
    return 0;
}

size_t ag__next_word(const unsigned char *s, size_t n)
{
    size_t c = contraction(s, n);
    if (c) return c;
    size_t len;
    ag__char_class cls = ag__char_at(s, n, &len);
    if (s[0] == ' ' && n > 1) { /* " ?" before a run of one class */
        size_t next_len;
        ag__char_class next = ag__char_at(s + 1, n - 1, &next_len);
        if (next != AG__CHAR_SPACE) return run_end(s, n, 1, next);
    }
    if (cls != AG__CHAR_SPACE) return run_end(s, n, 0, cls);
    /* \s+(?!\S) then \s+: the run, less its last character when that is
     * followed by a non-space and is not the run's only character. */
    size_t at = 0, last = 0;
    while (at < n) {
        size_t l;
        if (ag__char_at(s + at, n - at, &l) != AG__CHAR_SPACE) break;
        last = at;
        at += l;
    }
    return at < n && last > 0 ? last : at;
}
