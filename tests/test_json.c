/* test_json.c: the JSON reader and writer of safetensors headers
 * (lib/io/json.c), through their internal API. Values of every kind and
 * lookups; string escapes, surrogate pairs and UTF-8 (the decoder checked
 * against hand-encoded bytes); every kind of bad text (bad UTF-8, lone
 * surrogates, \u0000, NUL and control bytes, bad and out-of-range numbers,
 * trailing garbage, empty input, bad structure, nesting past the limit,
 * duplicate keys) with the line and column of each error; the writer's
 * escapes (jansson's, so that a checkpoint is saved as the same bytes as
 * before) and a write-then-read round trip; every allocation of a large
 * parse failing in turn; and a sweep of every one-byte change and every
 * truncation of a header, which must parse or fail cleanly (run under
 * valgrind or the sanitizers, it checks that no input reads outside the
 * text). */
#include <autograd.h>

#include "io/io.h"
#include "support.h"
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

static ag_arena *arena;
static ag__json_error err;

static void setup(void)
{
    arena = ag_arena_new();
    ck_assert_ptr_nonnull(arena);
}

static void teardown(void)
{
    ag_arena_free(arena);
}

/* Parses the n bytes at text (a fresh arena per call would be as good:
 * the test's arena just grows). */
static const ag__json *parse_n(const char *text, size_t n)
{
    return ag__json_parse(arena, text, n, &err);
}

/* Parses text, which must be valid. */
static const ag__json *parse_ok(const char *text)
{
    const ag__json *v = parse_n(text, strlen(text));
    ck_assert_msg(v != NULL, "\"%s\": line %zu, column %zu: %s", text, err.line,
                  err.column, err.text);
    return v;
}

/* Asserts that the n bytes at text fail to parse with a message containing
 * `want`, at line `line`, column `column`. */
static void expect_bad_n(const char *text, size_t n, const char *want,
                         size_t line, size_t column)
{
    ck_assert_msg(parse_n(text, n) == NULL, "\"%.*s\" parsed", (int)n, text);
    ck_assert_msg(!err.out_of_memory, "\"%.*s\": out of memory", (int)n, text);
    ck_assert_msg(strstr(err.text, want) != NULL,
                  "\"%.*s\": error \"%s\" lacks \"%s\"", (int)n, text, err.text,
                  want);
    ck_assert_msg(err.line == line && err.column == column,
                  "\"%.*s\": error \"%s\" at line %zu, column %zu, want %zu, "
                  "%zu",
                  (int)n, text, err.text, err.line, err.column, line, column);
}

static void expect_bad(const char *text, const char *want, size_t line,
                       size_t column)
{
    expect_bad_n(text, strlen(text), want, line, column);
}

/* Asserts that v is the string of the n bytes want, NUL-terminated. */
static void expect_string(const ag__json *v, const char *want, size_t n)
{
    ck_assert_int_eq(v->type, AG__JSON_STRING);
    ck_assert_uint_eq(v->string.length, n);
    ck_assert_mem_eq(v->string.chars, want, n);
    ck_assert_int_eq(v->string.chars[n], '\0');
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_scalars)
{
    const ag__json *v = parse_ok(" true ");
    ck_assert_int_eq(v->type, AG__JSON_BOOL);
    ck_assert(v->boolean);
    v = parse_ok("false");
    ck_assert_int_eq(v->type, AG__JSON_BOOL);
    ck_assert(!v->boolean);
    ck_assert_int_eq(parse_ok("null")->type, AG__JSON_NULL);
    ck_assert_str_eq(ag__json_kind(parse_ok("null")), "null");
    ck_assert_str_eq(ag__json_kind(parse_ok("true")), "a boolean");
    ck_assert_str_eq(ag__json_kind(parse_ok("1")), "an integer");
    ck_assert_str_eq(ag__json_kind(parse_ok("1.0")), "a real number");
    ck_assert_str_eq(ag__json_kind(parse_ok("\"\"")), "a string");
    ck_assert_str_eq(ag__json_kind(parse_ok("[]")), "an array");
    ck_assert_str_eq(ag__json_kind(parse_ok("{}")), "an object");
}
END_TEST

/* Integers up to the int64_t limits, digit by digit from the text. */
START_TEST(test_integers)
{
    static const struct {
        const char *text;
        int64_t want;
    } cases[] = {
        {"0", 0},
        {"-0", 0},
        {"7", 7},
        {"-12", -12},
        {"4294967296", 4294967296},
        {"1234567890123456789", 1234567890123456789},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775807", -INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (int i = 0; i < COUNT(cases); i++) {
        const ag__json *v = parse_ok(cases[i].text);
        ck_assert_int_eq(v->type, AG__JSON_INTEGER);
        ck_assert_msg(v->integer == cases[i].want, "%s read as %lld",
                      cases[i].text, (long long)v->integer);
    }
}
END_TEST

/* Numbers with a fraction or an exponent are real numbers, however large
 * (their value is not kept, so none overflows). */
START_TEST(test_reals)
{
    static const char *const cases[] = {"0.5",
                                        "-0.0",
                                        "1e5",
                                        "1E+5",
                                        "2e-3",
                                        "1.5e300",
                                        "1e400",
                                        "-1e400",
                                        "123456789012345678901234567890.5",
                                        "1e99999999999999999999"};
    for (int i = 0; i < COUNT(cases); i++)
        ck_assert_int_eq(parse_ok(cases[i])->type, AG__JSON_REAL);
}
END_TEST

START_TEST(test_arrays)
{
    const ag__json *v = parse_ok(" [ ] ");
    ck_assert_int_eq(v->type, AG__JSON_ARRAY);
    ck_assert_uint_eq(v->array.count, 0);
    v = parse_ok("[1, \"two\", [3, [4]], {\"five\": 5}, null]");
    ck_assert_uint_eq(v->array.count, 5);
    ck_assert_int_eq(v->array.items[0].integer, 1);
    expect_string(&v->array.items[1], "two", 3);
    const ag__json *inner = &v->array.items[2];
    ck_assert_uint_eq(inner->array.count, 2);
    ck_assert_int_eq(inner->array.items[0].integer, 3);
    ck_assert_int_eq(inner->array.items[1].array.items[0].integer, 4);
    ck_assert_int_eq(ag__json_get(&v->array.items[3], "five")->integer, 5);
    ck_assert_int_eq(v->array.items[4].type, AG__JSON_NULL);
}
END_TEST

/* A long array (the parser's stack grows many times) keeps its order. */
START_TEST(test_long_array)
{
    enum { N = 5000 };
    char *text = malloc(N * 8 + 3);
    ck_assert_ptr_nonnull(text);
    size_t at = 0;
    text[at++] = '[';
    for (int i = 0; i < N; i++)
        at += (size_t)sprintf(text + at, "%s%d", i ? "," : "", i * 7);
    text[at++] = ']';
    text[at] = '\0';
    const ag__json *v = parse_ok(text);
    ck_assert_uint_eq(v->array.count, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(v->array.items[i].integer, i * 7);
    free(text);
}
END_TEST

/* Members keep the order of the text; lookups find each key exactly (not
 * a prefix, not a longer key), also the empty key and keys given with
 * escapes. */
START_TEST(test_objects)
{
    const ag__json *v =
        parse_ok("{\"b\": 1, \"a\": 2, \"ab\": 3, \"\": 4, \"\\u00e9\": 5,"
                 " \"z\\n\": 6}");
    ck_assert_int_eq(v->type, AG__JSON_OBJECT);
    ck_assert_uint_eq(v->object.count, 6);
    static const char *const keys[] = {"b", "a", "ab", "", "\xc3\xa9", "z\n"};
    for (int i = 0; i < 6; i++) {
        const ag__json_member *m = &v->object.members[i];
        ck_assert_str_eq(m->key, keys[i]);
        ck_assert_uint_eq(m->key_length, strlen(keys[i]));
        ck_assert_int_eq(m->value.integer, i + 1);
        ck_assert_ptr_eq(ag__json_get(v, keys[i]), &m->value);
    }
    ck_assert_ptr_null(ag__json_get(v, "c"));
    ck_assert_ptr_null(ag__json_get(v, "abc"));
    ck_assert_ptr_null(ag__json_get(v, "\xc3"));
    ck_assert_ptr_null(ag__json_get(v, "z"));
    ck_assert_ptr_null(ag__json_get(parse_ok("{}"), ""));
    ck_assert_ptr_null(ag__json_get(parse_ok("[1]"), ""));
    ck_assert_ptr_null(ag__json_get(NULL, "a"));
}
END_TEST

/* Many members, in an order that is not the keys' order. */
START_TEST(test_large_object)
{
    enum { N = 3000 };
    char *text = malloc(N * 24 + 3);
    ck_assert_ptr_nonnull(text);
    size_t at = 0;
    text[at++] = '{';
    for (int i = 0; i < N; i++)
        at += (size_t)sprintf(text + at, "%s\"k%d\":%d", i ? "," : "",
                              (i * 7919) % N, i);
    text[at++] = '}';
    text[at] = '\0';
    const ag__json *v = parse_ok(text);
    ck_assert_uint_eq(v->object.count, N);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", (i * 7919) % N);
        ck_assert_str_eq(v->object.members[i].key, key);
        const ag__json *got = ag__json_get(v, key);
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(got->integer, i);
    }
    free(text);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Strings                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_escapes)
{
    static const struct {
        const char *text, *want;
        size_t n;
    } cases[] = {
        {"\"\"", "", 0},
        {"\"plain\"", "plain", 5},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8},
        {"\"\\u0041\\u007a\"", "Az", 2},
        {"\"\\u0001\\u001F\\u007f\"", "\x01\x1f\x7f", 3},
        {"\"\\u00e9\\u00E9\"", "\xc3\xa9\xc3\xa9", 4},
        {"\"\\u07FF\\u0800\"", "\xdf\xbf\xe0\xa0\x80", 5},
        {"\"\\u20AC\\uFFFF\"", "\xe2\x82\xac\xef\xbf\xbf", 6},
        {"\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4},
        {"\"\\ud800\\udc00\"", "\xf0\x90\x80\x80", 4},
        {"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4},
        {"\"a\\uD834\\uDD1Eb\"",
         "a\xf0\x9d\x84\x9e"
         "b",
         6},
        {"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\x7f\"",
         "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\x7f", 15},
    };
    for (int i = 0; i < COUNT(cases); i++)
        expect_string(parse_ok(cases[i].text), cases[i].want, cases[i].n);
}
END_TEST

/* Bad strings, each with where the error is. */
START_TEST(test_bad_strings)
{
    static const struct {
        const char *text, *want;
        size_t column;
    } cases[] = {
        {"\"abc", "string not terminated", 1},
        {"[\"abc\\\"]", "string not terminated", 2},
        {"\"\\", "string not terminated", 1},
        {"\"a\\x\"", "invalid escape: 'x' after a backslash", 3},
        {"\"a\\'\"", "invalid escape: ''' after a backslash", 3},
        {"\"\\U0041\"", "invalid escape: 'U'", 2},
        {"\"\\u12\"", "\\u must be followed by four hex digits", 2},
        {"\"\\u12G4\"", "\\u must be followed by four hex digits", 2},
        {"\"\\u+123\"", "\\u must be followed by four hex digits", 2},
        {"\"ab\\u0000\"", "\\u0000 in a string", 4},
        {"\"\\uD83D\"", "unpaired surrogate \\uD83D", 2},
        {"\"\\uD83Dx\"", "unpaired surrogate \\uD83D", 2},
        {"\"\\uD83D\\n\"", "unpaired surrogate \\uD83D", 2},
        {"\"\\uD83D\\uD83D\"", "unpaired surrogate \\uD83D", 2},
        {"\"\\uD83D\\u0041\"", "unpaired surrogate \\uD83D", 2},
        {"\"x\\uDE00\"", "unpaired surrogate \\uDE00", 3},
        {"\"\\uDFFF\\uD800\"", "unpaired surrogate \\uDFFF", 2},
        {"\"a\tb\"", "control character 0x09 in a string", 3},
        {"\"\x1f\"", "control character 0x1F in a string", 2},
        {"\"\xff\"", "invalid UTF-8 in a string (byte 0xFF)", 2},
        {"\"\x80\"", "invalid UTF-8 in a string (byte 0x80)", 2},
        {"\"\xc0\xaf\"", "invalid UTF-8 in a string (byte 0xC0)", 2},
        {"\"\xc1\xbf\"", "invalid UTF-8 in a string (byte 0xC1)", 2},
        {"\"\xe0\x9f\xbf\"", "invalid UTF-8 in a string (byte 0xE0)", 2},
        {"\"\xed\xa0\x80\"", "invalid UTF-8 in a string (byte 0xED)", 2},
        {"\"\xf0\x8f\xbf\xbf\"", "invalid UTF-8 in a string (byte 0xF0)", 2},
        {"\"\xf4\x90\x80\x80\"", "invalid UTF-8 in a string (byte 0xF4)", 2},
        {"\"\xf5\x80\x80\x80\"", "invalid UTF-8 in a string (byte 0xF5)", 2},
        {"\"ab\xc3\"", "invalid UTF-8 in a string (byte 0xC3)", 4},
        {"\"\xe2\x82\"", "invalid UTF-8 in a string (byte 0xE2)", 2},
        {"\"\xe2\x82x\"", "invalid UTF-8 in a string (byte 0xE2)", 2},
        {"{\"\xff\":1}", "invalid UTF-8 in a string (byte 0xFF)", 3},
    };
    for (int i = 0; i < COUNT(cases); i++)
        expect_bad(cases[i].text, cases[i].want, 1, cases[i].column);
}
END_TEST

/* NUL bytes: inside a string (raw or escaped), between tokens, right after
 * a number (which jansson skipped), at the end. */
START_TEST(test_nul_bytes)
{
    expect_bad_n("\"a\0b\"", 5, "control character 0x00 in a string", 1, 3);
    expect_bad_n("{\"a\0\":1}", 8, "control character 0x00", 1, 4);
    expect_bad_n("[1,\0 2]", 7, "expected a value, found byte 0x00", 1, 4);
    expect_bad_n("[1\0,2]", 6,
                 "expected ',' or ']' after an array item, "
                 "found byte 0x00",
                 1, 3);
    expect_bad_n("{\"a\":1\0}", 8, "found byte 0x00", 1, 7);
    expect_bad_n("[1]\0", 4, "expected the end of the input, found byte 0x00",
                 1, 4);
    expect_bad_n("\0", 1, "expected a value, found byte 0x00", 1, 1);
    expect_bad("\"\\u0000\"", "\\u0000 in a string", 1, 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bad numbers, literals, structure                                    */
/* ------------------------------------------------------------------ */

START_TEST(test_bad_numbers)
{
    static const struct {
        const char *text, *want;
        size_t column;
    } cases[] = {
        {"9223372036854775808",
         "integer \"9223372036854775808\" is out of the int64 range", 1},
        {"-9223372036854775809",
         "integer \"-9223372036854775809\" is out of the int64 range", 1},
        {"[1, 18446744073709551616]",
         "integer \"18446744073709551616\" is out of the int64 range", 5},
        {"123456789012345678901234567890123456789012345678901234567890",
         "integer \"1234567890123456789012345678901234567890...\"", 1},
        {"01", "invalid number \"01\"", 1},
        {"-01", "invalid number \"-01\"", 1},
        {"00", "invalid number \"00\"", 1},
        {"-", "invalid number \"-\"", 1},
        {"[-]", "invalid number \"-\"", 2},
        {"- 1", "invalid number \"-\"", 1},
        {"1.", "invalid number \"1.\"", 1},
        {"1.e5", "invalid number \"1.e5\"", 1},
        {"1e", "invalid number \"1e\"", 1},
        {"1e+", "invalid number \"1e+\"", 1},
        {"1E-x", "invalid number \"1E-x\"", 1},
        {"0x10", "invalid number \"0x10\"", 1},
        {"1.5e3x", "invalid number \"1.5e3x\"", 1},
        {"1-2", "invalid number \"1-2\"", 1},
        {"[2,3.0.1]", "invalid number \"3.0.1\"", 4},
        {"-Infinity", "invalid number \"-Infinity\"", 1},
        {"+1", "expected a value, found '+'", 1},
        {".5", "expected a value, found '.'", 1},
    };
    for (int i = 0; i < COUNT(cases); i++)
        expect_bad(cases[i].text, cases[i].want, 1, cases[i].column);
}
END_TEST

START_TEST(test_bad_structure)
{
    static const struct {
        const char *text, *want;
        size_t line, column;
    } cases[] = {
        {"", "expected a value, found the end of the input", 1, 0},
        {"   ", "expected a value, found the end of the input", 1, 3},
        {"\n\n", "expected a value, found the end of the input", 3, 0},
        {"tru", "expected a value, found \"tru\"", 1, 1},
        {"truex", "expected a value, found \"truex\"", 1, 1},
        {"True", "expected a value, found \"True\"", 1, 1},
        {"NaN", "expected a value, found \"NaN\"", 1, 1},
        {"[nul]", "expected a value, found \"nul\"", 1, 2},
        {"'a'", "expected a value, found '''", 1, 1},
        {"\xef\xbb\xbf{}", "expected a value, found byte 0xEF", 1, 1},
        {"{} x", "expected the end of the input, found 'x'", 1, 4},
        {"{}}", "expected the end of the input, found '}'", 1, 3},
        {"[] []", "expected the end of the input, found '['", 1, 4},
        {"1 2", "expected the end of the input, found '2'", 1, 3},
        {"{\"a\":1}\n\nx", "expected the end of the input, found 'x'", 3, 1},
        {"[", "expected a value, found the end of the input", 1, 1},
        {"[1", "expected ',' or ']' after an array item, found the end", 1, 2},
        {"[1 2]", "expected ',' or ']' after an array item, found '2'", 1, 4},
        {"[1,]", "expected a value, found ']'", 1, 4},
        {"[,1]", "expected a value, found ','", 1, 2},
        {"{", "expected a string key or '}', found the end", 1, 1},
        {"{,}", "expected a string key or '}', found ','", 1, 2},
        {"{1:2}", "expected a string key or '}', found '1'", 1, 2},
        {"{\"a\":1,}", "expected a string key after ',', found '}'", 1, 8},
        {"{\"a\" 1}", "expected ':' after an object key, found '1'", 1, 6},
        {"{\"a\"}", "expected ':' after an object key, found '}'", 1, 5},
        {"{\"a\":}", "expected a value, found '}'", 1, 6},
        {"{\"a\":1 \"b\":2}",
         "expected ',' or '}' after an object member, found '\"'", 1, 8},
        {"{\"a\":1]", "expected ',' or '}' after an object member, found ']'",
         1, 7},
        {"[1}", "expected ',' or ']' after an array item, found '}'", 1, 3},
        {"/* c */ 1", "expected a value, found '/'", 1, 1},
    };
    for (int i = 0; i < COUNT(cases); i++)
        expect_bad(cases[i].text, cases[i].want, cases[i].line,
                   cases[i].column);
}
END_TEST

/* Lines end at '\n' only; columns count characters, not bytes. */
START_TEST(test_positions)
{
    expect_bad("{\"a\":1,\n \"b\" 1}", "expected ':'", 2, 6);
    expect_bad("{\"a\":1,\r\n \"b\" 1}", "expected ':'", 2, 6);
    expect_bad("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", x]",
               "expected a value, found \"x\"", 1, 9);
    expect_bad("[\n\n  1,\n  2,\n  ?]", "expected a value, found '?'", 5, 3);
    expect_bad("[1,\n", "expected a value, found the end", 2, 0);
    expect_bad("[1,\n\t", "expected a value, found the end", 2, 1);
    expect_bad("[\"a\nb\"]", "control character 0x0A in a string", 1, 4);
}
END_TEST

/* Arrays and objects nest up to AG__JSON_MAX_DEPTH deep, not deeper. */
START_TEST(test_depth)
{
    enum { D = AG__JSON_MAX_DEPTH };
    char *text = malloc(6 * D + 16);
    ck_assert_ptr_nonnull(text);
    for (int extra = 0; extra <= 1; extra++) {
        int d = D + extra;
        for (int i = 0; i < d; i++) {
            text[i] = '[';
            text[d + i] = ']';
        }
        text[2 * d] = '\0';
        if (!extra) {
            const ag__json *v = parse_ok(text);
            for (int i = 1; i < d; i++) {
                ck_assert_uint_eq(v->array.count, 1);
                v = &v->array.items[0];
            }
            ck_assert_uint_eq(v->array.count, 0);
        } else {
            expect_bad(text, "arrays and objects nested more than 128 deep", 1,
                       (size_t)d);
        }
    }
    /* objects and arrays alike, and a deep value that closes early */
    size_t at = 0;
    for (int i = 0; i < D; i++) at += (size_t)sprintf(text + at, "{\"\":");
    strcpy(text + at, "[1]");
    expect_bad(text, "nested more than 128 deep", 1, at + 1);
    strcpy(text + at, "1");
    for (int i = 0; i < D; i++) strcat(text, "}");
    ck_assert_ptr_nonnull(parse_ok(text));
    free(text);
}
END_TEST

/* A very deep text is refused at the limit, without recursing further. */
START_TEST(test_very_deep)
{
    enum { D = 1000000 };
    char *text = malloc(D + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, '[', D);
    text[D] = '\0';
    expect_bad(text, "nested more than 128 deep", 1, AG__JSON_MAX_DEPTH + 1);
    free(text);
}
END_TEST

/* Duplicate keys in any object: the error names the first key (in the
 * text) that repeats one before it, at its opening quote. Keys equal once
 * decoded are equal. */
START_TEST(test_duplicates)
{
    expect_bad("{\"a\":1,\"a\":2}", "duplicate object key \"a\"", 1, 8);
    expect_bad("{\"a\":1,\"b\":2,\"b\":3,\"a\":4}",
               "duplicate object key \"b\"", 1, 14);
    expect_bad("{\"z\":1,\"y\":2,\"z\":3,\"y\":4,\"z\":5}",
               "duplicate object key \"z\"", 1, 14);
    expect_bad("{\"x\":{\"k\":1,\n\"k\":2}}", "duplicate object key \"k\"", 2,
               1);
    expect_bad("[{\"\":1,\"\":2}]", "duplicate object key \"\"", 1, 8);
    expect_bad("{\"a\":1,\"\\u0061\":2}", "duplicate object key \"a\"", 1, 8);
    expect_bad("{\"t\\n\":1,\"t\\u000a\":2}", "duplicate object key \"t\\x0a\"",
               1, 10);
    ck_assert_ptr_nonnull(
        parse_ok("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}"));
    ck_assert_ptr_nonnull(parse_ok("{\"a\":1,\"A\":2,\"a \":3,\"\":4}"));
}
END_TEST

/* ------------------------------------------------------------------ */
/* UTF-8 and the writer                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_utf8)
{
    static const struct {
        const char *s;
        size_t len; /* of its first character, 0 when invalid */
    } cases[] = {
        {"a", 1},
        {"\x7f", 1},
        {"\xc2\x80", 2},
        {"\xdf\xbf", 2},
        {"\xe0\xa0\x80", 3},
        {"\xed\x9f\xbf", 3},
        {"\xee\x80\x80", 3},
        {"\xef\xbf\xbf", 3},
        {"\xf0\x90\x80\x80", 4},
        {"\xf4\x8f\xbf\xbf", 4},
        {"\x80", 0},
        {"\xbf", 0},
        {"\xc0\x80", 0},
        {"\xc1\xbf", 0},
        {"\xc2", 0},
        {"\xc2\x41", 0},
        {"\xe0\x9f\xbf", 0},
        {"\xed\xa0\x80", 0},
        {"\xed\xbf\xbf", 0},
        {"\xe2\x82", 0},
        {"\xf0\x8f\xbf\xbf", 0},
        {"\xf4\x90\x80\x80", 0},
        {"\xf5\x80\x80\x80", 0},
        {"\xf8\x88\x80\x80\x80", 0},
        {"\xff", 0},
    };
    for (int i = 0; i < COUNT(cases); i++) {
        const char *s = cases[i].s;
        size_t got = ag__utf8_char((const unsigned char *)s, strlen(s));
        ck_assert_msg(got == cases[i].len, "case %d: length %zu, want %zu", i,
                      got, cases[i].len);
        ck_assert(ag__utf8_valid(s) == (cases[i].len == strlen(s)));
    }
    /* a sequence cut by the end of the bytes given */
    ck_assert_uint_eq(ag__utf8_char((const unsigned char *)"\xe2\x82\xac", 2),
                      0);
    ck_assert_uint_eq(ag__utf8_char((const unsigned char *)"a", 0), 0);
    ck_assert(ag__utf8_valid(""));
    ck_assert(ag__utf8_valid("caf\xc3\xa9 \xf0\x9f\x98\x80"));
    ck_assert(!ag__utf8_valid("caf\xc3"));
}
END_TEST

/* The text s is written as (the writer's counting pass agreeing). */
static void expect_written(const char *s, const char *want)
{
    ag__json_out o = {NULL, 0};
    ag__json_put_string(&o, s);
    char buf[256];
    ck_assert_uint_lt(o.len, sizeof buf);
    size_t n = o.len;
    o = (ag__json_out){buf, 0};
    ag__json_put_string(&o, s);
    ck_assert_uint_eq(o.len, n);
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

/* jansson's escapes: \" \\ \b \f \n \r \t, \u00XX in upper case for the
 * other control characters, everything else (/, DEL, UTF-8) as it is. */
START_TEST(test_write_strings)
{
    expect_written("", "\"\"");
    expect_written("layers.0.weight", "\"layers.0.weight\"");
    expect_written("a\"b\\c", "\"a\\\"b\\\\c\"");
    expect_written("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    expect_written("\x01\x1f\x0b", "\"\\u0001\\u001F\\u000B\"");
    expect_written("/\x7f", "\"/\x7f\"");
    expect_written("caf\xc3\xa9 \xf0\x9f\x98\x80",
                   "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    ag__json_out o = {NULL, 0};
    ag__json_put(&o, "{");
    ag__json_put_integer(&o, INT64_MIN);
    ag__json_put(&o, ",");
    ag__json_put_integer(&o, INT64_MAX);
    char buf[64];
    ck_assert_uint_lt(o.len, sizeof buf);
    o = (ag__json_out){buf, 0};
    ag__json_put(&o, "{");
    ag__json_put_integer(&o, INT64_MIN);
    ag__json_put(&o, ",");
    ag__json_put_integer(&o, INT64_MAX);
    buf[o.len] = '\0';
    ck_assert_str_eq(buf, "{-9223372036854775808,9223372036854775807");
}
END_TEST

/* Every control character, quote, backslash and a few UTF-8 characters,
 * written then read back: the same bytes. */
START_TEST(test_write_read_round_trip)
{
    char s[200];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++) s[n++] = (char)c;
    strcpy(s + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf");
    ck_assert(ag__utf8_valid(s));
    ag__json_out o = {NULL, 0};
    ag__json_put_string(&o, s);
    char *text = malloc(o.len);
    ck_assert_ptr_nonnull(text);
    size_t len = o.len;
    o = (ag__json_out){text, 0};
    ag__json_put_string(&o, s);
    const ag__json *v = parse_n(text, len);
    ck_assert_ptr_nonnull(v);
    expect_string(v, s, strlen(s));
    free(text);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Memory and robustness                                               */
/* ------------------------------------------------------------------ */

/* A text whose parse grows the stack several times and fills several
 * arena blocks: 2000 members of objects, arrays and strings. */
static char *big_text(size_t *n)
{
    char *text = malloc(200000);
    ck_assert_ptr_nonnull(text);
    size_t at = (size_t)sprintf(text, "{\"__metadata__\":{\"k\":\"v\\u00e9\"}");
    for (int i = 0; i < 2000; i++)
        at += (size_t)sprintf(text + at,
                              ",\"blocks.%d.weight\":{\"dtype\":\"F32\","
                              "\"shape\":[%d,3],\"data_offsets\":[%d,%d]}",
                              i, i, i * 12, i * 12 + 12);
    text[at++] = '}';
    *n = at;
    return text;
}

/* Each allocation of a large parse failing in turn (once, and from then
 * on): the parse fails and says that memory ran out; the same parse then
 * succeeds. (Valgrind or ASan check that nothing leaks.) */
START_TEST(test_out_of_memory)
{
    size_t n;
    char *text = big_text(&n);
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    long start = ag__allocation_count();
    ck_assert_ptr_nonnull(ag__json_parse(a, text, n, &err));
    long k = ag__allocation_count() - start;
    ck_assert_int_gt(k, 5);
    for (int persist = 0; persist <= 1; persist++)
        for (long i = 1; i <= k; i++) {
            ag_arena_free(a);
            a = ag_arena_new();
            ck_assert_ptr_nonnull(a);
            if (persist)
                ag__fail_allocations_from(i);
            else
                ag__fail_allocation(i);
            const ag__json *v = ag__json_parse(a, text, n, &err);
            ag__fail_allocation(0);
            ck_assert_msg(v == NULL && err.out_of_memory,
                          "allocation %ld failing: %s", i,
                          v ? "parsed" : err.text);
            ck_assert_str_eq(err.text, "out of memory");
            v = ag__json_parse(a, text, n, &err);
            ck_assert_msg(v != NULL, "%s", err.text);
            ck_assert_uint_eq(v->object.count, 2001);
        }
    printf("test_json: %ld allocation points of a %zu-byte parse\n", k, n);
    ag_arena_free(a);
    free(text);
}
END_TEST

/* Asserts that a failed parse of the n bytes at text placed its error
 * within the text: a line that exists, a column at most one past its
 * end. */
static void expect_error_within(const char *text, size_t n)
{
    size_t line = 1, longest = 0, column = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n')
            line++, column = 0;
        else if (++column > longest)
            longest = column;
    }
    ck_assert_msg(err.line >= 1 && err.line <= line &&
                      err.column <= longest + 1 && err.text[0],
                  "error at line %zu, column %zu: %s", err.line, err.column,
                  err.text);
}

/* Every byte of a header replaced by each of the 256 values, and the
 * header cut at every length: each text parses or fails with an error
 * placed within it (not out of memory); each cut one fails. */
START_TEST(test_every_change)
{
    static const char header[] =
        "{\"__metadata__\":{\"format\":\"pt\",\"n\\u00e9\":\"x\\ty\"},"
        "\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
        "\"data_offsets\":[0,24]},\n\"b\":[true,false,null,-1.5e3,"
        "\"\\ud83d\\ude00\xc3\xa9\"]}";
    size_t n = sizeof header - 1;
    char text[sizeof header];
    long parsed = 0, failed = 0;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 256; c++) {
            memcpy(text, header, n);
            text[i] = (char)c;
            ag_arena_reset(arena);
            if (parse_n(text, n)) {
                parsed++;
                continue;
            }
            failed++;
            ck_assert(!err.out_of_memory);
            expect_error_within(text, n);
        }
    for (size_t len = 0; len < n; len++) {
        ag_arena_reset(arena);
        ck_assert_msg(parse_n(header, len) == NULL, "cut at %zu parsed", len);
        expect_error_within(header, len);
    }
    ck_assert_ptr_nonnull(parse_n(header, n));
    ck_assert_int_gt(parsed, 0);
    ck_assert_int_gt(failed, 0);
    printf("test_json: %ld one-byte changes parse, %ld fail\n", parsed, failed);
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_integers);
    tcase_add_test(tc, test_reals);
    tcase_add_test(tc, test_arrays);
    tcase_add_test(tc, test_long_array);
    tcase_add_test(tc, test_objects);
    tcase_add_test(tc, test_large_object);
    suite_add_tcase(s, tc);

    tc = tcase_create("strings");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_escapes);
    tcase_add_test(tc, test_bad_strings);
    tcase_add_test(tc, test_nul_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_bad_numbers);
    tcase_add_test(tc, test_bad_structure);
    tcase_add_test(tc, test_positions);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_very_deep);
    tcase_add_test(tc, test_duplicates);
    suite_add_tcase(s, tc);

    tc = tcase_create("writer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_write_strings);
    tcase_add_test(tc, test_write_read_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_every_change);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(json_suite());
}
