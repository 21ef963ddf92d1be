/* json.c: the JSON of safetensors headers. A strict RFC 8259 reader that
 * parses a buffer into a tree in an arena (with a depth limit, duplicate
 * keys refused, strings checked as UTF-8 and decoded, integers checked
 * against the int64_t range, errors with a line and column), and a writer
 * of compact JSON that counts or writes the bytes of a text.
 *
 * The reader takes all its memory from the library's allocator: the tree
 * from the caller's arena, and one growing stack (ag__realloc) of the
 * values of the arrays and objects being read, which an array or object
 * copies into the arena once it is complete, so that its items lie in one
 * array. Running out of memory is an error like any other. */
#include "io.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */
/* ------------------------------------------------------------------ */

size_t ag__utf8_char(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* a continuation byte, or C0, C1, F5..FF */
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

bool ag__utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t len = ag__utf8_char(p, n);
        if (!len) return false;
        p += len;
        n -= len;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Reading: the parser's state and errors                              */
/* ------------------------------------------------------------------ */

typedef struct {
    const unsigned char *start, *p, *end; /* the text, the next byte */
    ag_arena *arena;
    ag__json_member *stack; /* items of the open arrays and objects */
    size_t top, cap;
    int depth; /* of the open arrays and objects */
    ag__json_error *err;
} parser;

/* Sets err's line and column to those of the byte at `at`. Lines end at
 * '\n'; columns count characters (bytes that do not continue a UTF-8
 * sequence) from 1. At the end of the text the column is that of its last
 * character (0 on an empty line), as jansson reported it. */
static void locate(const parser *ps, const unsigned char *at)
{
    size_t line = 1, column = 0;
    for (const unsigned char *q = ps->start; q < at && q < ps->end; q++) {
        if (*q == '\n')
            line++, column = 0;
        else if ((*q & 0xC0) != 0x80)
            column++;
    }
    ps->err->line = line;
    ps->err->column = column + (at < ps->end); /* the character at `at` */
}

/* Records the error "<fmt...>" at `at`; returns false. */
__attribute__((format(printf, 3, 4))) static bool
fail(parser *ps, const unsigned char *at, const char *fmt, ...)
{
    locate(ps, at);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err->text, sizeof ps->err->text, fmt, ap);
    va_end(ap);
    return false;
}

static bool out_of_memory(parser *ps)
{
    ps->err->out_of_memory = true;
    return fail(ps, ps->p, "out of memory");
}

/* What is at `at`, for messages: "the end of the input", 'c' for a
 * printable ASCII character, "byte 0xNN" for any other byte. */
static const char *found(const parser *ps, const unsigned char *at,
                         char buf[16])
{
    if (at >= ps->end) return "the end of the input";
    if (*at > 0x20 && *at < 0x7F)
        snprintf(buf, 16, "'%c'", *at);
    else
        snprintf(buf, 16, "byte 0x%02X", *at);
    return buf;
}

/* Fails with "expected <what>, found <what is at ps->p>". */
static bool expected(parser *ps, const char *what)
{
    char buf[16];
    return fail(ps, ps->p, "expected %s, found %s", what,
                found(ps, ps->p, buf));
}

static void skip_space(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
                               *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Whether the next byte is c (after white space); takes it if so. */
static bool take(parser *ps, unsigned char c)
{
    skip_space(ps);
    if (ps->p == ps->end || *ps->p != c) return false;
    ps->p++;
    return true;
}

/* `count` elements of `size` bytes in the arena (NULL for none), or NULL
 * and an out-of-memory error. */
static void *arena_array(parser *ps, size_t count, size_t size, size_t align,
                         bool *ok)
{
    *ok = true;
    if (count == 0) return NULL;
    void *p = NULL;
    if (count <= SIZE_MAX / size)
        p = ag__arena_alloc(ps->arena, count * size, align);
    if (!p) *ok = out_of_memory(ps);
    return p;
}

/* ------------------------------------------------------------------ */
/* Reading: strings, numbers, words                                    */
/* ------------------------------------------------------------------ */

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The code unit of the \uXXXX escape at p (p[0] == '\\', p[1] == 'u',
 * within [p, q)), or -1 when four hex digits do not follow. */
static long escape_unit(const unsigned char *p, const unsigned char *q)
{
    if (q - p < 6) return -1;
    long u = 0;
    for (int i = 2; i < 6; i++) {
        int h = hex_value(p[i]);
        if (h < 0) return -1;
        u = u << 4 | h;
    }
    return u;
}

/* Appends code point cp (not a surrogate, at most 0x10FFFF) as UTF-8. */
static unsigned char *put_utf8(unsigned char *out, uint32_t cp)
{
    if (cp < 0x80) {
        *out++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *out++ = (unsigned char)(0xC0 | cp >> 6);
        *out++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *out++ = (unsigned char)(0xE0 | cp >> 12);
        *out++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *out++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *out++ = (unsigned char)(0xF0 | cp >> 18);
        *out++ = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        *out++ = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        *out++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return out;
}

/* Decodes the \u escape (one, or a surrogate pair of two) at *pp, within
 * [*pp, q), into *out; advances both. */
static bool unicode_escape(parser *ps, const unsigned char **pp,
                           const unsigned char *q, unsigned char **out)
{
    const unsigned char *p = *pp;
    long u = escape_unit(p, q);
    if (u < 0) return fail(ps, p, "\\u must be followed by four hex digits");
    if (u == 0)
        return fail(ps, p,
                    "\\u0000 in a string (these strings cannot hold "
                    "a NUL character)");
    if (u >= 0xDC00 && u <= 0xDFFF)
        return fail(ps, p, "unpaired surrogate \\u%04lX in a string", u);
    uint32_t cp = (uint32_t)u;
    p += 6;
    if (u >= 0xD800 && u <= 0xDBFF) {
        long low = p < q && *p == '\\' && p + 1 < q && p[1] == 'u'
                       ? escape_unit(p, q)
                       : -1;
        if (low < 0xDC00 || low > 0xDFFF)
            return fail(ps, *pp,
                        "unpaired surrogate \\u%04lX in a string (a low "
                        "surrogate \\uDC00..\\uDFFF must follow)",
                        u);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (uint32_t)(low - 0xDC00);
        p += 6;
    }
    *out = put_utf8(*out, cp);
    *pp = p;
    return true;
}

/* Decodes the characters of the string between ps->p and q (its closing
 * quote) into out, which has room for q - ps->p bytes (no escape makes its
 * text longer); returns the end of what was written, or NULL. */
static unsigned char *decode_string(parser *ps, const unsigned char *q,
                                    unsigned char *out)
{
    static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
    const unsigned char *p = ps->p;
    while (p < q) {
        if (*p == '\\') {
            const char *e = p[1] ? strchr(plain, p[1]) : NULL;
            if (e) {
                *out++ = (unsigned char)decoded[e - plain];
                p += 2;
            } else if (p[1] == 'u') {
                if (!unicode_escape(ps, &p, q, &out)) return NULL;
            } else {
                char buf[16];
                fail(ps, p, "invalid escape: %s after a backslash in a string",
                     found(ps, p + 1, buf));
                return NULL;
            }
        } else if (*p < 0x20) {
            fail(ps, p,
                 "control character 0x%02X in a string (it must be "
                 "escaped)",
                 *p);
            return NULL;
        } else {
            size_t len = ag__utf8_char(p, (size_t)(q - p));
            if (!len) {
                fail(ps, p, "invalid UTF-8 in a string (byte 0x%02X)", *p);
                return NULL;
            }
            memcpy(out, p, len);
            out += len;
            p += len;
        }
    }
    return out;
}

/* Reads the string at ps->p (a '"') into the arena: *s (NUL-terminated)
 * and *len. */
static bool parse_string(parser *ps, const char **s, size_t *len)
{
    const unsigned char *open = ps->p++, *q = ps->p;
    while (q < ps->end && *q != '"') q += *q == '\\' && q + 1 < ps->end ? 2 : 1;
    if (q >= ps->end) return fail(ps, open, "string not terminated");
    unsigned char *buf = ag__arena_alloc(ps->arena, (size_t)(q - ps->p) + 1, 1);
    if (!buf) return out_of_memory(ps);
    unsigned char *end = decode_string(ps, q, buf);
    if (!end) return false;
    *end = '\0';
    *s = (const char *)buf;
    *len = (size_t)(end - buf);
    ps->p = q + 1;
    return true;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* The end of the digits from p. */
static const unsigned char *digits(const unsigned char *p,
                                   const unsigned char *end)
{
    while (is_digit(p, end)) p++;
    return p;
}

/* The end of the word at p: letters, digits and the other characters of
 * numbers (a bad number or literal is quoted whole in its error). */
static const unsigned char *word_end(const unsigned char *p,
                                     const unsigned char *end)
{
    while (p < end && (is_digit(p, end) || (*p >= 'a' && *p <= 'z') ||
                       (*p >= 'A' && *p <= 'Z') || *p == '+' || *p == '-' ||
                       *p == '.' || *p == '_'))
        p++;
    return p;
}

/* Fails with "<what> "<the word at ps->p>"<after>". */
static bool bad_word(parser *ps, const char *what, const char *after)
{
    const unsigned char *w = word_end(ps->p, ps->end);
    char quoted[AG_QUOTE_SIZE];
    ag__quote(quoted, (const char *)ps->p, (size_t)(w - ps->p));
    return fail(ps, ps->p, "%s \"%s\"%s", what, quoted, after);
}

/* Reads the number at ps->p (a '-' or a digit): an integer when it has
 * neither fraction nor exponent (it must fit int64_t), else a real number
 * (checked, its value not kept). */
static bool parse_number(parser *ps, ag__json *v)
{
    const unsigned char *p = ps->p, *end = ps->end;
    bool negative = *p == '-';
    p += negative;
    const unsigned char *int_begin = p;
    if (!is_digit(p, end)) return bad_word(ps, "invalid number", "");
    p = *p == '0' ? p + 1 : digits(p, end);
    const unsigned char *int_end = p;
    bool real = false;
    if (p < end && *p == '.') {
        real = true;
        if (!is_digit(++p, end)) return bad_word(ps, "invalid number", "");
        p = digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(p, end)) return bad_word(ps, "invalid number", "");
        p = digits(p, end);
    }
    if (word_end(p, end) != p) return bad_word(ps, "invalid number", "");
    if (real) {
        v->type = AG__JSON_REAL;
        ps->p = p;
        return true;
    }
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : INT64_MAX, u = 0;
    for (const unsigned char *d = int_begin; d < int_end; d++) {
        unsigned digit = *d - '0';
        if (u > (limit - digit) / 10)
            return bad_word(ps, "integer", " is out of the int64 range");
        u = u * 10 + digit;
    }
    v->type = AG__JSON_INTEGER;
    v->integer = !negative                 ? (int64_t)u
                 : u > (uint64_t)INT64_MAX ? INT64_MIN
                                           : -(int64_t)u;
    ps->p = p;
    return true;
}

/* Reads true, false or null at ps->p (a letter). */
static bool parse_literal(parser *ps, ag__json *v)
{
    static const struct {
        const char *word;
        ag__json_type type;
        bool value;
    } literals[] = {{"true", AG__JSON_BOOL, true},
                    {"false", AG__JSON_BOOL, false},
                    {"null", AG__JSON_NULL, false}};
    const unsigned char *w = word_end(ps->p, ps->end);
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(literals[i].word);
        if ((size_t)(w - ps->p) == len &&
            memcmp(ps->p, literals[i].word, len) == 0) {
            v->type = literals[i].type;
            v->boolean = literals[i].value;
            ps->p = w;
            return true;
        }
    }
    return bad_word(ps, "expected a value, found", "");
}

/* ------------------------------------------------------------------ */
/* Reading: arrays and objects                                         */
/* ------------------------------------------------------------------ */

static bool parse_value(parser *ps, ag__json *v);

/* Pushes a copy of m onto the stack. */
static bool push(parser *ps, const ag__json_member *m)
{
    if (ps->top == ps->cap) {
        size_t cap = ps->cap ? 2 * ps->cap : 64;
        void *grown = NULL;
        if (cap <= SIZE_MAX / sizeof *ps->stack)
            grown = ag__realloc(ps->stack, cap * sizeof *ps->stack);
        if (!grown) return out_of_memory(ps);
        ps->stack = grown;
        ps->cap = cap;
    }
    ps->stack[ps->top++] = *m;
    return true;
}

/* Enters an array or object (at ps->p, its bracket). */
static bool enter(parser *ps)
{
    if (ps->depth == AG__JSON_MAX_DEPTH)
        return fail(ps, ps->p, "arrays and objects nested more than %d deep",
                    AG__JSON_MAX_DEPTH);
    ps->depth++;
    ps->p++;
    return true;
}

/* Makes v the array of the values pushed since `base`, and pops them. */
static bool close_array(parser *ps, size_t base, ag__json *v)
{
    size_t n = ps->top - base;
    bool ok;
    ag__json *items =
        arena_array(ps, n, sizeof *items, _Alignof(ag__json), &ok);
    if (!ok) return false;
    for (size_t i = 0; i < n; i++) items[i] = ps->stack[base + i].value;
    *v = (ag__json){.type = AG__JSON_ARRAY, .array = {items, n}};
    ps->top = base;
    ps->depth--;
    return true;
}

static bool parse_array(parser *ps, ag__json *v)
{
    size_t base = ps->top;
    if (!enter(ps)) return false;
    if (take(ps, ']')) return close_array(ps, base, v);
    do {
        ag__json_member m = {.key = NULL};
        if (!parse_value(ps, &m.value) || !push(ps, &m)) return false;
    } while (take(ps, ','));
    if (!take(ps, ']')) return expected(ps, "',' or ']' after an array item");
    return close_array(ps, base, v);
}

/* Orders members by key (bytes, then length), then by place in the text. */
static int by_key(const void *pa, const void *pb)
{
    const ag__json_member *a = *(const ag__json_member *const *)pa,
                          *b = *(const ag__json_member *const *)pb;
    size_t n = a->key_length < b->key_length ? a->key_length : b->key_length;
    int c = memcmp(a->key, b->key, n);
    if (c) return c;
    if (a->key_length != b->key_length)
        return a->key_length < b->key_length ? -1 : 1;
    return (a > b) - (a < b);
}

static bool same_key(const ag__json_member *a, const ag__json_member *b)
{
    return a->key_length == b->key_length &&
           memcmp(a->key, b->key, a->key_length) == 0;
}

/* Fails when two members of the object have the same key, naming the first
 * key (in the text) that repeats an earlier one. */
static bool check_duplicates(parser *ps, const ag__json *v)
{
    const ag__json_member *dup = NULL, *const *s = v->object.sorted;
    for (size_t i = 1; i < v->object.count; i++)
        if (same_key(s[i - 1], s[i]) && (i == 1 || !same_key(s[i - 2], s[i])))
            if (!dup || s[i] < dup) dup = s[i]; /* the second of its run */
    if (!dup) return true;
    char quoted[AG_QUOTE_SIZE];
    ag__quote(quoted, dup->key, dup->key_length);
    return fail(ps, ps->start + dup->offset, "duplicate object key \"%s\"",
                quoted);
}

/* Makes v the object of the members pushed since `base` (in the order of
 * the text, and sorted by key for ag__json_get), and pops them. */
static bool close_object(parser *ps, size_t base, ag__json *v)
{
    size_t n = ps->top - base;
    bool ok;
    ag__json_member *members =
        arena_array(ps, n, sizeof *members, _Alignof(ag__json_member), &ok);
    if (!ok) return false;
    const ag__json_member **sorted = arena_array(
        ps, n, sizeof *sorted, _Alignof(const ag__json_member *), &ok);
    if (!ok) return false;
    for (size_t i = 0; i < n; i++) {
        members[i] = ps->stack[base + i];
        sorted[i] = &members[i];
    }
    if (n > 1) qsort(sorted, n, sizeof *sorted, by_key);
    *v = (ag__json){.type = AG__JSON_OBJECT, .object = {members, sorted, n}};
    ps->top = base;
    ps->depth--;
    return check_duplicates(ps, v);
}

/* Reads one "key": value member onto the stack. */
static bool parse_member(parser *ps, const char *expecting)
{
    skip_space(ps);
    if (ps->p == ps->end || *ps->p != '"') return expected(ps, expecting);
    ag__json_member m = {.offset = (size_t)(ps->p - ps->start)};
    if (!parse_string(ps, &m.key, &m.key_length)) return false;
    if (!take(ps, ':')) return expected(ps, "':' after an object key");
    return parse_value(ps, &m.value) && push(ps, &m);
}

static bool parse_object(parser *ps, ag__json *v)
{
    size_t base = ps->top;
    if (!enter(ps)) return false;
    if (take(ps, '}')) return close_object(ps, base, v);
    const char *expecting = "a string key or '}'";
    do {
        if (!parse_member(ps, expecting)) return false;
        expecting = "a string key after ','";
    } while (take(ps, ','));
    if (!take(ps, '}'))
        return expected(ps, "',' or '}' after an object member");
    return close_object(ps, base, v);
}

static bool parse_value(parser *ps, ag__json *v)
{
    *v = (ag__json){.type = AG__JSON_NULL};
    skip_space(ps);
    if (ps->p == ps->end) return expected(ps, "a value");
    unsigned char c = *ps->p;
    if (c == '{') return parse_object(ps, v);
    if (c == '[') return parse_array(ps, v);
    if (c == '"') {
        v->type = AG__JSON_STRING;
        return parse_string(ps, &v->string.chars, &v->string.length);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, v);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return parse_literal(ps, v);
    return expected(ps, "a value");
}

const ag__json *ag__json_parse(ag_arena *a, const void *text, size_t n,
                               ag__json_error *err)
{
    *err = (ag__json_error){.line = 0};
    const unsigned char *t = n ? text : (const unsigned char *)"";
    parser ps = {.start = t, .p = t, .end = t + n, .arena = a, .err = err};
    ag__json *v = ag__arena_alloc(a, sizeof *v, _Alignof(ag__json));
    bool ok = v ? parse_value(&ps, v) : out_of_memory(&ps);
    if (ok) {
        skip_space(&ps);
        if (ps.p != ps.end) ok = expected(&ps, "the end of the input");
    }
    ag__free(ps.stack);
    return ok ? v : NULL;
}

/* ------------------------------------------------------------------ */
/* Looking up                                                          */
/* ------------------------------------------------------------------ */

const ag__json *ag__json_get(const ag__json *object, const char *key)
{
    if (!object || object->type != AG__JSON_OBJECT) return NULL;
    ag__json_member want = {.key = key, .key_length = strlen(key)};
    size_t lo = 0, hi = object->object.count;
    while (lo < hi) { /* the first member whose key is >= key */
        size_t mid = lo + (hi - lo) / 2;
        const ag__json_member *m = object->object.sorted[mid];
        size_t n =
            m->key_length < want.key_length ? m->key_length : want.key_length;
        int c = memcmp(m->key, key, n);
        if (c < 0 || (c == 0 && m->key_length < want.key_length))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < object->object.count && same_key(object->object.sorted[lo], &want))
        return &object->object.sorted[lo]->value;
    return NULL;
}

const char *ag__json_kind(const ag__json *v)
{
    switch (v->type) {
    case AG__JSON_OBJECT:
        return "an object";
    case AG__JSON_ARRAY:
        return "an array";
    case AG__JSON_STRING:
        return "a string";
    case AG__JSON_INTEGER:
        return "an integer";
    case AG__JSON_REAL:
        return "a real number";
    case AG__JSON_BOOL:
        return "a boolean";
    case AG__JSON_NULL:
        break;
    }
    return "null";
}

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

/* Appends n bytes of s (or counts them). */
static void put_bytes(ag__json_out *o, const void *s, size_t n)
{
    if (o->buf && n) memcpy(o->buf + o->len, s, n);
    o->len += n;
}

void ag__json_put(ag__json_out *o, const char *text)
{
    put_bytes(o, text, strlen(text));
}

void ag__json_put_string(ag__json_out *o, const char *s)
{
    put_bytes(o, "\"", 1);
    const char *run = s; /* bytes that need no escape, not yet put */
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        put_bytes(o, run, (size_t)(s - run));
        run = s + 1;
        static const char special[] = "\"\\\b\f\n\r\t", letter[] = "\"\\bfnrt";
        const char *e = strchr(special, c);
        char esc[8];
        if (e)
            snprintf(esc, sizeof esc, "\\%c", letter[e - special]);
        else
            snprintf(esc, sizeof esc, "\\u%04X", c);
        ag__json_put(o, esc);
    }
    put_bytes(o, run, (size_t)(s - run));
    put_bytes(o, "\"", 1);
}

void ag__json_put_integer(ag__json_out *o, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    ag__json_put(o, buf);
}
