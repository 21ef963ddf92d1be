/* test_safetensors.c: safetensors checkpoints. Round trips in f32, f64 and
 * both (matrices, vectors, 0-d scalars, tensors without elements, an empty
 * set), metadata, the byte layout parsed independently of the reader, a file
 * written by PyTorch (tests/fixtures/arange.safetensors) that the writer
 * reproduces byte for byte, every kind of bad file (each leaving the
 * parameters unchanged; also a header over the size limit, a file that is
 * not regular, a parameter named "__metadata__"), save errors and injected
 * failures of write (also one that makes no progress), fsync, close and
 * rename (each leaving a previous file intact and no temporary file), and
 * sweeps: each write, fsync, close and rename of a 16-tensor save failing
 * in turn, a short write or EINTR at each write, a checkpoint cut at every
 * length (each load failing cleanly, the parameters unchanged). Files go
 * to a fresh folder under /tmp, removed after each test that passes (a failing
 * test leaves its folder to look at). */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "io/io.h"
#include "support.h"
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers: a folder per test, files, parameter sets                   */
/* ------------------------------------------------------------------ */

static const char *dir;
static ag_arena *arena;

static void setup(void)
{
    dir = test_dir_make("ag_safetensors");
    arena = ag_arena_new();
    ag__io_calls = ag__io_calls_default;
    ag_clear_error();
}

static void teardown(void)
{
    ag__io_calls = ag__io_calls_default;
    ag_arena_free(arena);
    test_dir_remove();
}

/* Asserts that the file at path holds exactly the n bytes of want. */
static void expect_file(const char *path, const unsigned char *want, size_t n)
{
    size_t got_n;
    unsigned char *got = read_bytes(path, &got_n);
    ck_assert_msg(got_n == n && memcmp(got, want, n) == 0,
                  "%s changed (%zu bytes, want %zu)", path, got_n, n);
    free(got);
}

/* Whether the n bytes at p contain the string s. */
static bool contains(const unsigned char *p, size_t n, const char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i + len <= n; i++)
        if (memcmp(p + i, s, len) == 0) return true;
    return false;
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Writes a safetensors file by hand: the length of `header` (not padded),
 * the header, then `data_len` bytes 0, 1, 2, ... */
static void write_st(const char *path, const char *header, size_t data_len)
{
    size_t n = strlen(header);
    unsigned char *buf = malloc(8 + n + data_len + 1);
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> 8 * i);
    memcpy(buf + 8, header, n);
    for (size_t i = 0; i < data_len; i++) buf[8 + n + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + n + data_len);
    free(buf);
}

/* Adds a tensor of dtype dt and shape `shape` (ndim sizes) to p as name. */
static ag_tensor *add(ag_params *p, const char *name, ag_dtype dt, int ndim,
                      const int64_t *shape)
{
    ag_tensor *t = ag_zeros(arena, dt, ndim, shape);
    ck_assert_msg(t && ag_params_add(p, name, t) == 0, "%s", ag_last_error());
    return t;
}

/* A set of the shapes (2,3), (5), () and (0,4), each in dtype dt (or
 * alternating f32 and f64 when mixed). */
static ag_params *shapes_set(ag_dtype dt, bool mixed)
{
    ag_params *p = ag_params_new(arena);
    ck_assert_ptr_nonnull(p);
    add(p, "layers.0.weight", dt, 2, (int64_t[]){2, 3});
    add(p, "layers.0.bias", mixed ? AG_F64 : dt, 1, (int64_t[]){5});
    add(p, "scale", dt, 0, NULL);
    add(p, "empty", mixed ? AG_F64 : dt, 2, (int64_t[]){0, 4});
    return p;
}

/* The set that the hand-written bad files are checked against:
 * "a" f32 (2,3) and "b" f32 (2). */
static ag_params *ab_set(void)
{
    ag_params *p = ag_params_new(arena);
    ck_assert_ptr_nonnull(p);
    add(p, "a", AG_F32, 2, (int64_t[]){2, 3});
    add(p, "b", AG_F32, 1, (int64_t[]){2});
    return p;
}

/* Sets element i of tensor k of p to base + k + i / 3 (rounded to f32 for
 * f32 tensors), so that sets filled from different bases differ
 * everywhere. */
static void fill(ag_params *p, double base)
{
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        for (int64_t i = 0; i < ag_numel(t); i++)
            tensor_set(t, i, base + k + (double)i / 3);
    }
}

/* Asserts that p holds the values fill(p, base) gives. */
static void expect_filled(ag_params *p, double base)
{
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        for (int64_t i = 0; i < ag_numel(t); i++) {
            double want = base + k + (double)i / 3;
            if (ag_type(t) == AG_F32) want = (float)want;
            if (tensor_at(t, i) != want)
                ck_abort_msg("%s[%lld] = %.17g, want %.17g",
                             ag_params_name(p, k), (long long)i,
                             tensor_at(t, i), want);
        }
    }
}

/* Asserts that a failed call left message `want` (a substring) in an error
 * starting with "<func>: <path>: ". */
static void expect_error(const char *func, const char *path, const char *want)
{
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s: %s: ", func, path);
    const char *msg = ag_last_error();
    ck_assert_msg(strncmp(msg, prefix, strlen(prefix)) == 0,
                  "error \"%s\" does not start with \"%s\"", msg, prefix);
    ck_assert_msg(strstr(msg, want) != NULL, "error \"%s\" lacks \"%s\"", msg,
                  want);
}

/* Asserts that loading path into p fails with `want` and changes nothing
 * (p was filled with base 100). */
static void expect_load_fails(const char *path, ag_params *p, const char *want)
{
    ag_clear_error();
    ck_assert_int_eq(ag_load_safetensors(path, p), -1);
    expect_error("ag_load_safetensors", path, want);
    expect_filled(p, 100);
}

/* ------------------------------------------------------------------ */
/* Round trips and metadata                                            */
/* ------------------------------------------------------------------ */

/* Saves a set filled from base 1, refills it from 100, loads: values of
 * base 1 again; then loads into a second set of the same layout. */
static void round_trip(ag_dtype dt, bool mixed)
{
    const char *path = path_of("model.safetensors");
    ag_params *p = shapes_set(dt, mixed);
    fill(p, 1);
    ck_assert_msg(ag_save_safetensors(path, p, NULL) == 0, "%s",
                  ag_last_error());
    expect_only("model.safetensors");
    fill(p, 100);
    ck_assert_msg(ag_load_safetensors(path, p) == 0, "%s", ag_last_error());
    expect_filled(p, 1);
    ag_params *q = shapes_set(dt, mixed);
    ck_assert_msg(ag_load_safetensors(path, q) == 0, "%s", ag_last_error());
    expect_filled(q, 1);
}

START_TEST(test_round_trip_f32)
{
    round_trip(AG_F32, false);
}
END_TEST

START_TEST(test_round_trip_f64)
{
    round_trip(AG_F64, false);
}
END_TEST

START_TEST(test_round_trip_mixed)
{
    round_trip(AG_F32, true);
}
END_TEST

/* f64 values that f32 cannot hold survive exactly, including -0.0, an
 * infinity, a NaN's payload and subnormals. */
START_TEST(test_round_trip_special_values)
{
    const char *path = path_of("special.safetensors");
    ag_params *p = ag_params_new(arena);
    ag_tensor *t = add(p, "v", AG_F64, 1, (int64_t[]){5});
    const uint64_t bits[5] = {0x8000000000000000u, 0x7ff0000000000000u,
                              0x7ff8000000001234u, 0x0000000000000001u,
                              0x3fd5555555555555u};
    memcpy(ag_data(t), bits, sizeof bits);
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), 0);
    memset(ag_data(t), 0, sizeof bits);
    ck_assert_int_eq(ag_load_safetensors(path, p), 0);
    ck_assert_mem_eq(ag_data(t), bits, sizeof bits);
}
END_TEST

/* A set without tensors saves as "{}" and loads back. */
START_TEST(test_round_trip_empty_set)
{
    const char *path = path_of("none.safetensors");
    ag_params *p = ag_params_new(arena);
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), 0);
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    ck_assert_uint_eq(n, 16);
    ck_assert_uint_eq(le64(bytes), 8);
    ck_assert_mem_eq(bytes + 8, "{}      ", 8);
    free(bytes);
    ck_assert_int_eq(ag_load_safetensors(path, p), 0);
    ag_params *q = ab_set();
    fill(q, 100);
    expect_load_fails(path, q, "no tensor \"a\" in the file (2 missing)");
}
END_TEST

/* Saving over an existing file replaces it and keeps its permissions. */
START_TEST(test_overwrite)
{
    const char *path = path_of("model.safetensors");
    ag_params *p = shapes_set(AG_F32, false);
    fill(p, 1);
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), 0);
    ck_assert_int_eq(chmod(path, 0640), 0);
    fill(p, 2);
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), 0);
    expect_only("model.safetensors");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0640);
    fill(p, 100);
    ck_assert_int_eq(ag_load_safetensors(path, p), 0);
    expect_filled(p, 2);
}
END_TEST

/* Metadata comes back in order from ag_load_safetensors_metadata and is an
 * object of strings in the file; without metadata the list is empty and the
 * header has no "__metadata__". */
START_TEST(test_metadata)
{
    const char *path = path_of("meta.safetensors");
    ag_params *p = shapes_set(AG_F32, false);
    const char *meta[] = {"epoch", "3", "note", "caf\xc3\xa9 \"quoted\"",
                          "empty", "",  NULL};
    ck_assert_int_eq(ag_save_safetensors(path, p, meta), 0);
    const char *const *got = ag_load_safetensors_metadata(arena, path);
    ck_assert_msg(got != NULL, "%s", ag_last_error());
    for (int i = 0; i < 6; i++) ck_assert_str_eq(got[i], meta[i]);
    ck_assert_ptr_null(got[6]);

    /* In the file: the first member, with the quotes escaped. */
    static const char want[] = "{\"__metadata__\":{\"epoch\":\"3\",\"note\":"
                               "\"caf\xc3\xa9 \\\"quoted\\\"\",\"empty\":\"\"},"
                               "\"layers.0.weight\":";
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    ck_assert_uint_ge(n, 8 + sizeof want - 1);
    ck_assert_mem_eq(bytes + 8, want, sizeof want - 1);
    free(bytes);

    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), 0);
    got = ag_load_safetensors_metadata(arena, path);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_null(got[0]);
    bytes = read_bytes(path, &n);
    ck_assert(!contains(bytes, n, "__metadata__"));
    free(bytes);
}
END_TEST

START_TEST(test_metadata_errors)
{
    ck_assert_ptr_null(ag_load_safetensors_metadata(NULL, "x"));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "arena is NULL"));
    ck_assert_ptr_null(ag_load_safetensors_metadata(arena, NULL));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "path is NULL"));
    const char *path = path_of("bad.safetensors");
    write_st(path, "{\"__metadata__\":{\"k\":1}}", 0);
    ck_assert_ptr_null(ag_load_safetensors_metadata(arena, path));
    expect_error("ag_load_safetensors_metadata", path,
                 "__metadata__ value of \"k\" is an integer, not a string");
    /* The data is checked too, although no tensor is read. */
    write_st(path, "{\"__metadata__\":{\"k\":\"v\"}}", 4);
    ck_assert_ptr_null(ag_load_safetensors_metadata(arena, path));
    expect_error("ag_load_safetensors_metadata", path,
                 "bytes [0, 4) of the data belong to no tensor");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Byte layout                                                         */
/* ------------------------------------------------------------------ */

/* The header that saving p with the metadata {"format": "pt"} writes,
 * made here from the set (independently of the writer): "__metadata__",
 * then the parameters in order with their dtypes, shapes and offsets
 * packed in parameter order from 0. Returns its length. */
static size_t layout_header(char *buf, size_t size, const ag_params *p)
{
    size_t at = 0;
#define APPEND(...)                                                            \
    do {                                                                       \
        at += (size_t)snprintf(buf + at, size - at, __VA_ARGS__);              \
        ck_assert_uint_lt(at, size);                                           \
    } while (0)
    APPEND("{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t offset = 0;
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        uint64_t bytes = (uint64_t)ag_numel(t) * (ag_type(t) == AG_F32 ? 4 : 8);
        APPEND(",\"%s\":{\"dtype\":\"%s\",\"shape\":[", ag_params_name(p, k),
               ag_type(t) == AG_F32 ? "F32" : "F64");
        for (int d = 0; d < ag_ndim(t); d++)
            APPEND("%s%lld", d ? "," : "", (long long)ag_shape(t)[d]);
        APPEND("],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
               (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    APPEND("}");
#undef APPEND
    return at;
}

/* Reads a saved file independently of the reader: the header length, its
 * alignment and padding, the header's text (compact, as layout_header makes
 * it), the data size, and the values at the offsets. */
START_TEST(test_layout)
{
    const char *path = path_of("layout.safetensors");
    ag_params *p = shapes_set(AG_F32, true);
    fill(p, 1);
    const char *meta[] = {"format", "pt", NULL};
    ck_assert_int_eq(ag_save_safetensors(path, p, meta), 0);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    ck_assert_uint_ge(size, 8);
    uint64_t n = le64(bytes);
    ck_assert_uint_le(8 + n, size);
    ck_assert_uint_eq((8 + n) % 8, 0);
    const char *text = (const char *)bytes + 8;
    size_t json_len = n;
    while (json_len > 0 && text[json_len - 1] == ' ') json_len--;
    ck_assert_uint_lt(n - json_len, 8); /* padding only to the boundary */
    char want[4096];
    size_t want_len = layout_header(want, sizeof want, p);
    ck_assert_uint_eq(json_len, want_len);
    ck_assert_mem_eq(text, want, want_len);
    uint64_t offset = 0;
    const unsigned char *data = bytes + 8 + n;
    for (int k = 0; k < ag_params_count(p); k++) {
        ag_tensor *t = ag_params_tensor(p, k);
        uint64_t bytes_t =
            (uint64_t)ag_numel(t) * (ag_type(t) == AG_F32 ? 4 : 8);
        if (bytes_t) ck_assert_mem_eq(data + offset, ag_data(t), bytes_t);
        offset += bytes_t;
    }
    ck_assert_uint_eq(8 + n + offset, size);
    free(bytes);
}
END_TEST

/* The reader takes tensors in any order, and an unpadded header (so
 * unaligned data). */
START_TEST(test_load_any_order)
{
    const char *path = path_of("order.safetensors");
    write_st(path,
             "{\"b\":{\"data_offsets\":[0,8],\"shape\":[2],\"dtype\":\"F32\"},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,"
             "32]}}",
             32);
    ag_params *p = ab_set();
    ck_assert_msg(ag_load_safetensors(path, p) == 0, "%s", ag_last_error());
    unsigned char want[32];
    for (int i = 0; i < 32; i++) want[i] = (unsigned char)i;
    ck_assert_mem_eq(ag_data(ag_params_find(p, "b")), want, 8);
    ck_assert_mem_eq(ag_data(ag_params_find(p, "a")), want + 8, 24);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A file written by PyTorch                                           */
/* ------------------------------------------------------------------ */

/* The tensors of make_safetensors_fixture.py, zero or (with values) filled
 * by the script's formulas computed here. */
static ag_params *fixture_params(bool values)
{
    ag_params *p = ag_params_new(arena);
    ag_tensor *w = add(p, "layer.weight", AG_F32, 2, (int64_t[]){2, 3});
    ag_tensor *b = add(p, "layer.bias", AG_F32, 1, (int64_t[]){3});
    ag_tensor *s = add(p, "scale", AG_F64, 0, NULL);
    ag_tensor *t = add(p, "table", AG_F64, 2, (int64_t[]){2, 2});
    add(p, "empty", AG_F32, 2, (int64_t[]){0, 2});
    if (!values) return p;
    for (int i = 0; i < 6; i++)
        ((float *)ag_data(w))[i] = (float)i / 7.0f - 1.0f;
    for (int i = 0; i < 3; i++) ((float *)ag_data(b))[i] = (float)i * -0.5f;
    *(double *)ag_data(s) = 1.0 / 3;
    for (int i = 0; i < 4; i++) ((double *)ag_data(t))[i] = i / 3.0 + 0.1;
    return p;
}

static const char *const fixture_meta[] = {"format", "pt", "source",
                                           "make_safetensors_fixture.py", NULL};

static const char *fixture_path(void)
{
    return AG_TEST_FIXTURES "/arange.safetensors";
}

START_TEST(test_torch_fixture_loads)
{
    ag_params *got = fixture_params(false), *want = fixture_params(true);
    ck_assert_msg(ag_load_safetensors(fixture_path(), got) == 0, "%s",
                  ag_last_error());
    for (int k = 0; k < ag_params_count(want); k++) {
        ag_tensor *g = ag_params_tensor(got, k), *w = ag_params_tensor(want, k);
        for (int64_t i = 0; i < ag_numel(w); i++)
            ck_assert_msg(
                tensor_at(g, i) == tensor_at(w, i) &&
                    signbit(tensor_at(g, i)) == signbit(tensor_at(w, i)),
                "%s[%lld] = %.17g, want %.17g", ag_params_name(want, k),
                (long long)i, tensor_at(g, i), tensor_at(w, i));
    }
    const char *const *meta =
        ag_load_safetensors_metadata(arena, fixture_path());
    ck_assert_ptr_nonnull(meta);
    for (int i = 0; fixture_meta[i]; i++)
        ck_assert_str_eq(meta[i], fixture_meta[i]);
    ck_assert_ptr_null(meta[4]);
}
END_TEST

/* The writer reproduces the PyTorch-made file byte for byte. */
START_TEST(test_torch_fixture_bytes)
{
    const char *path = path_of("mine.safetensors");
    ck_assert_int_eq(
        ag_save_safetensors(path, fixture_params(true), fixture_meta), 0);
    size_t n;
    unsigned char *want = read_bytes(fixture_path(), &n);
    expect_file(path, want, n);
    free(want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bad files                                                           */
/* ------------------------------------------------------------------ */

/* 130 copies of the string s, for a header nested too deep (the 127th
 * array in the metadata is the 129th level). */
#define AG_STR_REPEAT_10(s) s s s s s s s s s s
#define AG_STR_REPEAT_130(s)                                                   \
    AG_STR_REPEAT_10(AG_STR_REPEAT_10(s))                                      \
    AG_STR_REPEAT_10(s) AG_STR_REPEAT_10(s) AG_STR_REPEAT_10(s)

/* Entries of the hand-written headers, checked against ab_set(). */
#define A_OK "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"
#define B_OK "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}"
#define A_WITH(dtype, shape, offsets)                                          \
    "\"a\":{\"dtype\":\"" dtype "\",\"shape\":" shape                          \
    ",\"data_offsets\":" offsets "}"

static const struct {
    const char *name, *header;
    size_t data_len;
    const char *want;
} bad_files[] = {
    {"empty header", "", 32, "header is not valid JSON: line 1, column 0"},
    {"bad JSON", "{" A_OK ",", 32, "header is not valid JSON: line 1, column"},
    {"bad JSON on line 2", "{" A_OK ",\n \"b\" 1}", 32,
     "header is not valid JSON: line 2, column 6"},
    {"invalid UTF-8", "{\"\xff\":1}", 32, "header is not valid JSON"},
    {"duplicate name", "{" A_OK "," A_OK "," B_OK "}", 32,
     "duplicate object key"},
    {"duplicate metadata key",
     "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}," A_OK "," B_OK "}", 32,
     "header is not valid JSON: line 1, column 26: duplicate object key "
     "\"k\""},
    {"trailing garbage", "{" A_OK "," B_OK "} x", 32,
     "header is not valid JSON: line 1, column 114: expected the end of the "
     "input, found 'x'"},
    {"lone surrogate in a name", "{\"\\uD800\":1}", 32,
     "header is not valid JSON: line 1, column 3: unpaired surrogate "
     "\\uD800"},
    {"NUL in a name", "{\"a\\u0000\":1}", 32,
     "line 1, column 4: \\u0000 in a string"},
    {"nesting too deep",
     "{\"__metadata__\":{\"k\":" AG_STR_REPEAT_130("[") "}}", 32,
     "header is not valid JSON: line 1, column 148: arrays and objects "
     "nested more than 128 deep"},
    {"integer over int64",
     "{" A_WITH("F32", "[2,3]", "[0,99999999999999999999]") "," B_OK "}", 32,
     "header is not valid JSON: line 1, column 53: integer "
     "\"99999999999999999999\" is out of the int64 range"},
    {"array header", "[1,2]", 32, "header is an array, not a JSON object"},
    {"number header", "42", 32, "header is an integer, not a JSON object"},
    {"entry not an object", "{\"a\":5," B_OK "}", 32,
     "tensor \"a\": is an integer, not an object"},
    {"unknown key",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":"
     "[0,24],\"extra\":1}," B_OK "}",
     32, "tensor \"a\": unknown key \"extra\""},
    {"missing key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3]}," B_OK "}", 32,
     "tensor \"a\": no \"data_offsets\""},
    {"dtype not a string",
     "{\"a\":{\"dtype\":4,\"shape\":[2,3],"
     "\"data_offsets\":[0,24]}," B_OK "}",
     32, "tensor \"a\": dtype is an integer, not a string"},
    {"unknown dtype", "{" A_WITH("Q7", "[2,3]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": unknown dtype \"Q7\""},
    {"F16", "{" A_WITH("F16", "[2,3]", "[0,12]") "," B_OK "}", 32,
     "tensor \"a\": unsupported dtype \"F16\""},
    {"BF16", "{" A_WITH("BF16", "[2,3]", "[0,12]") "," B_OK "}", 32,
     "tensor \"a\": unsupported dtype \"BF16\""},
    {"I64", "{" A_WITH("I64", "[2,3]", "[0,48]") "," B_OK "}", 48,
     "tensor \"a\": unsupported dtype \"I64\""},
    {"shape not an array", "{" A_WITH("F32", "\"2x3\"", "[0,24]") "," B_OK "}",
     32, "tensor \"a\": shape is a string, not an array"},
    {"negative size", "{" A_WITH("F32", "[2,-3]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": negative size -3 in dimension 1"},
    {"real size", "{" A_WITH("F32", "[2,3.0]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": dimension 1 of the shape is a real number, not an "
     "integer"},
    {"exponent size", "{" A_WITH("F32", "[2,3e0]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": dimension 1 of the shape is a real number, not an "
     "integer"},
    {"size beyond the doubles",
     "{" A_WITH("F32", "[1e400,3]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": dimension 0 of the shape is a real number"},
    {"string size", "{" A_WITH("F32", "[\"2\",3]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": dimension 0 of the shape is a string"},
    {"too many dimensions",
     "{" A_WITH("F32", "[1,1,1,1,1,1,1,1,6]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": shape has 9 dimensions, more than 8"},
    {"element count overflows",
     "{" A_WITH("F32", "[4294967296,4294967296,4]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": element count of shape (4294967296,4294967296,4) "
     "overflows"},
    {"byte count overflows",
     "{" A_WITH("F64", "[4611686018427387904]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": F64 shape (4611686018427387904) has 4611686018427387904 "
     "elements of 8 bytes but data_offsets [0, 24] hold 24 bytes"},
    {"shape vs bytes", "{" A_WITH("F32", "[2,2]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\": F32 shape (2,2) has 4 elements of 4 bytes but "
     "data_offsets [0, 24] hold 24 bytes"},
    {"offsets not a pair", "{" A_WITH("F32", "[2,3]", "[0]") "," B_OK "}", 32,
     "tensor \"a\": data_offsets is not [begin, end]"},
    {"offsets not integers",
     "{" A_WITH("F32", "[2,3]", "[0,\"24\"]") "," B_OK "}", 32,
     "tensor \"a\": data_offsets is not [begin, end]"},
    {"real offset", "{" A_WITH("F32", "[2,3]", "[0,24.0]") "," B_OK "}", 32,
     "tensor \"a\": data_offsets is not [begin, end]"},
    {"negative offset", "{" A_WITH("F32", "[2,3]", "[-8,16]") "," B_OK "}", 32,
     "tensor \"a\": data_offsets is not [begin, end]"},
    {"offsets reversed", "{" A_WITH("F32", "[2,3]", "[24,0]") "," B_OK "}", 32,
     "tensor \"a\": data_offsets [24, 0] are not a range within the 32 "
     "bytes"},
    {"offsets past the data",
     "{" A_WITH("F32", "[2,3]", "[16,40]") "," B_OK "}", 32,
     "tensor \"a\": data_offsets [16, 40] are not a range within the 32 "
     "bytes"},
    {"overlap",
     "{" A_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[16,24]}}",
     32, "tensors \"a\" [0, 24] and \"b\" [16, 24] overlap"},
    {"empty tensor inside another",
     "{" A_OK "," B_OK ",\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
     "\"data_offsets\":[8,8]}}",
     32, "tensor \"e\" [8, 8] lies inside \"a\" [0, 24]"},
    {"gap",
     "{" A_OK ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[28,36]}}",
     36,
     "bytes [24, 28) of the data belong to no tensor: a gap between "
     "\"a\" [0, 24] and \"b\" [28, 36]"},
    {"hole at the start",
     "{" A_WITH("F32", "[2,3]", "[4,28]") ",\"b\":{\"dtype\":\"F32\","
                                          "\"shape\":[2],\"data_offsets\":"
                                          "[28,36]}}",
     36,
     "bytes [0, 4) of the data belong to no tensor: the first, \"a\" [4, "
     "28], does not begin at 0"},
    {"trailing data", "{" A_OK "," B_OK "}", 40,
     "bytes [32, 40) of the data belong to no tensor: they follow the last, "
     "\"b\" [24, 32]"},
    {"data but no tensors", "{\"__metadata__\":{}}", 8,
     "bytes [0, 8) of the data belong to no tensor: the header lists none"},
    {"missing name", "{" A_OK "}", 24,
     "no tensor \"b\" in the file (1 missing)"},
    {"extra name",
     "{" A_OK "," B_OK ",\"c\":{\"dtype\":\"F32\",\"shape\":[],"
     "\"data_offsets\":[32,36]}}",
     36, "unexpected tensor \"c\" in the file (1 not in the parameter set)"},
    {"missing and extra",
     "{" A_OK ",\"c\":{\"dtype\":\"F32\",\"shape\":[2],"
     "\"data_offsets\":[24,32]}}",
     32, "no tensor \"b\" in the file (1 missing); unexpected tensor \"c\""},
    {"dtype mismatch",
     "{" A_OK ",\"b\":{\"dtype\":\"F64\",\"shape\":[2],"
     "\"data_offsets\":[24,40]}}",
     40,
     "tensor \"b\" is F64 (2) in the file but F32 (2) in the parameter "
     "set"},
    {"I32 for a float",
     "{" A_OK ",\"b\":{\"dtype\":\"I32\",\"shape\":[2],"
     "\"data_offsets\":[24,32]}}",
     32, "tensor \"b\" is I32 (2) in the file but F32 (2)"},
    {"shape mismatch", "{" A_WITH("F32", "[3,2]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\" is F32 (3,2) in the file but F32 (2,3) in the parameter "
     "set"},
    {"rank mismatch", "{" A_WITH("F32", "[6]", "[0,24]") "," B_OK "}", 32,
     "tensor \"a\" is F32 (6) in the file but F32 (2,3)"},
    {"rank mismatch, same leading size",
     "{" A_WITH("F32", "[2]", "[0,8]") ",\"b\":{\"dtype\":\"F32\","
                                       "\"shape\":[2],\"data_offsets\":"
                                       "[8,16]}}",
     16, "tensor \"a\" is F32 (2) in the file but F32 (2,3)"},
    {"metadata not an object", "{\"__metadata__\":[]," A_OK "," B_OK "}", 32,
     "__metadata__ is an array, not an object"},
    {"metadata value not a string",
     "{\"__metadata__\":{\"a\":\"x\",\"k\":null}," A_OK "," B_OK "}", 32,
     "__metadata__ value of \"k\" is null, not a string"},
};

START_TEST(test_bad_file)
{
    const char *path = path_of("bad.safetensors");
    write_st(path, bad_files[_i].header, bad_files[_i].data_len);
    ag_params *p = ab_set();
    fill(p, 100);
    ag_clear_error();
    ck_assert_msg(ag_load_safetensors(path, p) == -1, "case \"%s\" loaded",
                  bad_files[_i].name);
    ck_assert_msg(strstr(ag_last_error(), bad_files[_i].want) != NULL,
                  "case \"%s\": error \"%s\" lacks \"%s\"", bad_files[_i].name,
                  ag_last_error(), bad_files[_i].want);
    expect_error("ag_load_safetensors", path, bad_files[_i].want);
    expect_filled(p, 100);
}
END_TEST

/* A parameter named "__metadata__" (which no file can hold) is missing
 * from every file, also from one that has metadata under that key. */
START_TEST(test_load_parameter_named_metadata)
{
    const char *path = path_of("meta.safetensors");
    write_st(path, "{\"__metadata__\":{\"k\":\"v\"}," A_OK "," B_OK "}", 32);
    ag_params *p = ab_set();
    add(p, "__metadata__", AG_F32, 1, (int64_t[]){1});
    fill(p, 100);
    expect_load_fails(path, p,
                      "no tensor \"__metadata__\" in the file (1 missing)");
}
END_TEST

/* The good version of the bad files loads, so that each bad file fails for
 * the reason it was made for. */
START_TEST(test_good_file)
{
    const char *path = path_of("good.safetensors");
    write_st(path, "{\"__metadata__\":{\"k\":\"v\"}," A_OK "," B_OK "}", 32);
    ag_params *p = ab_set();
    ck_assert_msg(ag_load_safetensors(path, p) == 0, "%s", ag_last_error());
    unsigned char want[32];
    for (int i = 0; i < 32; i++) want[i] = (unsigned char)i;
    ck_assert_mem_eq(ag_data(ag_params_find(p, "a")), want, 24);
    ck_assert_mem_eq(ag_data(ag_params_find(p, "b")), want + 24, 8);
}
END_TEST

/* Names are compared once decoded: escapes, of ASCII and of UTF-8 text,
 * name the same tensors as the characters themselves. */
START_TEST(test_escaped_names)
{
    const char *path = path_of("escaped.safetensors");
    write_st(path,
             "{\"__metadata__\":{\"n\\u00e9\":\"caf\\u00e9 \\ud83d\\ude00\"},"
             "\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_"
             "offsets\":[0,24]},\"\\u00e9\\n\":{\"dtype\":\"F32\",\"shape\":"
             "[2],\"data_offsets\":[24,32]}}",
             32);
    ag_params *p = ag_params_new(arena);
    add(p, "a", AG_F32, 2, (int64_t[]){2, 3});
    add(p, "\xc3\xa9\n", AG_F32, 1, (int64_t[]){2});
    ck_assert_msg(ag_load_safetensors(path, p) == 0, "%s", ag_last_error());
    unsigned char want[32];
    for (int i = 0; i < 32; i++) want[i] = (unsigned char)i;
    ck_assert_mem_eq(ag_data(ag_params_find(p, "a")), want, 24);
    ck_assert_mem_eq(ag_data(ag_params_find(p, "\xc3\xa9\n")), want + 24, 8);
    const char *const *meta = ag_load_safetensors_metadata(arena, path);
    ck_assert_ptr_nonnull(meta);
    ck_assert_str_eq(meta[0], "n\xc3\xa9");
    ck_assert_str_eq(meta[1], "caf\xc3\xa9 \xf0\x9f\x98\x80");
    ck_assert_ptr_null(meta[2]);
}
END_TEST

/* A tensor without elements may sit at the start, between two tensors or
 * at the end of the data (as the reference implementation allows). */
START_TEST(test_empty_tensor_at_boundaries)
{
    const char *path = path_of("empty.safetensors");
    const char *const headers[] = {
        "{\"e\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
        "" A_OK "," B_OK "}",
        "{" A_OK ",\"e\":{\"dtype\":\"F64\",\"shape\":[0,3],"
        "\"data_offsets\":[24,24]}," B_OK "}",
        "{" A_OK "," B_OK ",\"e\":{\"dtype\":\"F64\",\"shape\":[0,3],"
        "\"data_offsets\":[32,32]}}",
    };
    unsigned char want[32];
    for (int i = 0; i < 32; i++) want[i] = (unsigned char)i;
    for (int k = 0; k < 3; k++) {
        write_st(path, headers[k], 32);
        ag_params *p = ab_set();
        add(p, "e", AG_F64, 2, (int64_t[]){0, 3});
        ck_assert_msg(ag_load_safetensors(path, p) == 0, "header %d: %s", k,
                      ag_last_error());
        ck_assert_mem_eq(ag_data(ag_params_find(p, "a")), want, 24);
        ck_assert_mem_eq(ag_data(ag_params_find(p, "b")), want + 24, 8);
    }
}
END_TEST

/* A saved file cut at a byte in the length field, the header or the data. */
START_TEST(test_truncated)
{
    const char *path = path_of("cut.safetensors");
    ag_params *p = ab_set();
    fill(p, 1);
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), 0);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    size_t n = (size_t)le64(bytes);
    fill(p, 100);
    const struct {
        size_t keep;
        const char *want;
    } cuts[] = {
        {0, "file is 0 bytes, too short for the 8-byte header length"},
        {5, "file is 5 bytes, too short"},
        {7, "file is 7 bytes, too short"},
        {8, "header length"},
        {9, "is more than the 1 bytes that follow it"},
        {8 + n / 2, "is more than"},
        {8 + n - 1, "is more than"},
        {8 + n, "tensor \"a\": data_offsets [0, 24] are not a range within "
                "the 0 bytes"},
        {8 + n + 20, "tensor \"a\": data_offsets [0, 24] are not a range"},
        {size - 1, "tensor \"b\": data_offsets [24, 32] are not a range "
                   "within the 31 bytes"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(path, bytes, cuts[i].keep);
        expect_load_fails(path, p, cuts[i].want);
    }
    free(bytes);
}
END_TEST

/* A header length far beyond the file, up to 2^64 - 1. */
START_TEST(test_header_length_too_large)
{
    const char *path = path_of("long.safetensors");
    ag_params *p = ab_set();
    fill(p, 100);
    const uint64_t lengths[] = {1000, UINT64_MAX, (uint64_t)1 << 63};
    for (int i = 0; i < 3; i++) {
        unsigned char buf[64] = "";
        for (int j = 0; j < 8; j++)
            buf[j] = (unsigned char)(lengths[i] >> 8 * j);
        memcpy(buf + 8, "{}", 2);
        write_bytes(path, buf, sizeof buf);
        char want[64];
        snprintf(want, sizeof want, "header length %llu is more than the 56",
                 (unsigned long long)lengths[i]);
        expect_load_fails(path, p, want);
    }
}
END_TEST

/* A header length over the reference limit of 100,000,000 bytes, with
 * that many bytes in the file (a sparse file), is refused before parsing. */
START_TEST(test_header_length_over_limit)
{
    const char *path = path_of("huge.safetensors");
    ag_params *p = ab_set();
    fill(p, 100);
    const uint64_t n = 100000001;
    unsigned char head[10];
    for (int j = 0; j < 8; j++) head[j] = (unsigned char)(n >> 8 * j);
    memcpy(head + 8, "{}", 2);
    write_bytes(path, head, sizeof head);
    ck_assert_int_eq(truncate(path, (off_t)(8 + n)), 0);
    expect_load_fails(path, p,
                      "header length 100000001 is over the limit of "
                      "100000000 bytes");
}
END_TEST

START_TEST(test_load_unreadable)
{
    ag_params *p = ab_set();
    fill(p, 100);
    expect_load_fails(path_of("nothing.safetensors"), p,
                      "cannot open: No such file or directory");
    expect_load_fails(dir, p, "cannot open: Is a directory");
    expect_load_fails("/dev/null", p, "is not a regular file");
    ck_assert_int_eq(ag_load_safetensors(NULL, p), -1);
    ck_assert_str_eq(ag_last_error(), "ag_load_safetensors: path is NULL");
    ck_assert_int_eq(ag_load_safetensors("x", NULL), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_load_safetensors: parameter set is NULL");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Save errors                                                         */
/* ------------------------------------------------------------------ */

/* An old file, its bytes, and the set that wrote it (base 1), for the
 * tests that a failed save leaves it. */
typedef struct {
    const char *path;
    ag_params *params;
    unsigned char *bytes;
    size_t size;
} old_file;

static old_file make_old(void)
{
    old_file o = {path_of("model.safetensors"), shapes_set(AG_F32, false), NULL,
                  0};
    fill(o.params, 1);
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, NULL), 0);
    o.bytes = read_bytes(o.path, &o.size);
    fill(o.params, 2); /* what the failing saves try to write */
    return o;
}

/* Asserts that the old file is as it was, alone in the folder, and loads. */
static void expect_old_intact(old_file *o)
{
    expect_file(o->path, o->bytes, o->size);
    expect_only("model.safetensors");
    ck_assert_msg(ag_load_safetensors(o->path, o->params) == 0, "%s",
                  ag_last_error());
    expect_filled(o->params, 1);
    free(o->bytes);
}

START_TEST(test_save_null)
{
    ag_params *p = ab_set();
    ck_assert_int_eq(ag_save_safetensors(NULL, p, NULL), -1);
    ck_assert_str_eq(ag_last_error(), "ag_save_safetensors: path is NULL");
    ck_assert_int_eq(ag_save_safetensors(path_of("x"), NULL, NULL), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_save_safetensors: parameter set is NULL");
    ck_assert_int_eq(ag_save_safetensors("", p, NULL), -1);
    ck_assert_str_eq(ag_last_error(), "ag_save_safetensors: : empty path");
    ck_assert_int_eq(folder_entries(NULL, 0), 0);
}
END_TEST

/* Folders that cannot be written to: one that does not exist, a file in
 * place of a folder, and a target that is itself a folder. */
START_TEST(test_save_unwritable)
{
    ag_params *p = ab_set();
    const char *path = path_of("missing/model.safetensors");
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), -1);
    expect_error("ag_save_safetensors", path,
                 "cannot create a temporary file there: No such file or "
                 "directory");
    ck_assert_int_eq(folder_entries(NULL, 0), 0);

    write_bytes(path_of("file"), "x", 1);
    path = path_of("file/model.safetensors");
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), -1);
    expect_error("ag_save_safetensors", path, "Not a directory");
    expect_only("file");
    ck_assert_int_eq(unlink(path_of("file")), 0);

    ck_assert_int_eq(mkdir(path_of("sub"), 0755), 0);
    path = path_of("sub");
    ck_assert_int_eq(ag_save_safetensors(path, p, NULL), -1);
    expect_error("ag_save_safetensors", path,
                 "cannot rename the temporary file to it: Is a directory");
    expect_only("sub");
}
END_TEST

/* A folder without write permission (root writes anyway: skipped then). */
START_TEST(test_save_readonly_folder)
{
    if (geteuid() == 0) return;
    old_file o = make_old();
    ck_assert_int_eq(chmod(dir, 0500), 0);
    int rc = ag_save_safetensors(o.path, o.params, NULL);
    ck_assert_int_eq(chmod(dir, 0700), 0);
    ck_assert_int_eq(rc, -1);
    expect_error("ag_save_safetensors", o.path,
                 "cannot create a temporary file there: Permission denied");
    expect_old_intact(&o);
}
END_TEST

/* Bad names and metadata are refused before anything is written. */
START_TEST(test_save_bad_input)
{
    old_file o = make_old();
    const char *odd[] = {"epoch", NULL};
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, odd), -1);
    expect_error("ag_save_safetensors", o.path,
                 "metadata key \"epoch\" has no value");
    const char *twice[] = {"k", "1", "k", "2", NULL};
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, twice), -1);
    expect_error("ag_save_safetensors", o.path,
                 "metadata key \"k\" appears twice");
    const char *bad_utf8[] = {"k", "\xc3", NULL};
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, bad_utf8), -1);
    expect_error("ag_save_safetensors", o.path,
                 "metadata \"k\" is not valid UTF-8");

    ag_params *named = shapes_set(AG_F32, false);
    add(named, "__metadata__", AG_F32, 1, (int64_t[]){1});
    ck_assert_int_eq(ag_save_safetensors(o.path, named, NULL), -1);
    expect_error("ag_save_safetensors", o.path,
                 "a tensor cannot be named \"__metadata__\"");
    ag_params *utf8 = ag_params_new(arena);
    add(utf8, "w\xff", AG_F32, 1, (int64_t[]){1});
    ck_assert_int_eq(ag_save_safetensors(o.path, utf8, NULL), -1);
    expect_error("ag_save_safetensors", o.path, "is not valid UTF-8");
    expect_old_intact(&o);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Injected failures of the system calls                               */
/* ------------------------------------------------------------------ */

static int calls, fail_at, fail_errno;

/* True when this call of the hooked function is the one that fails. */
static bool failing_now(void)
{
    if (++calls != fail_at) return false;
    errno = fail_errno;
    return true;
}

static ssize_t failing_write(int fd, const void *buf, size_t n)
{
    return failing_now() ? -1 : write(fd, buf, n);
}

static int failing_fsync(int fd)
{
    return failing_now() ? -1 : fsync(fd);
}

static int failing_close(int fd)
{
    if (!failing_now()) return close(fd);
    close(fd); /* as Linux does: the descriptor is gone */
    errno = fail_errno;
    return -1;
}

static int failing_rename(const char *from, const char *to)
{
    return failing_now() ? -1 : rename(from, to);
}

static const struct {
    const char *call;
    int at, err;
    const char *want;
} injected[] = {
    {"write", 1, ENOSPC,
     "cannot write the temporary file: No space left on device"},
    {"write", 3, EIO, "cannot write the temporary file: Input/output error"},
    {"fsync", 1, EIO, "cannot fsync the temporary file: Input/output error"},
    {"close", 1, EDQUOT, "cannot close the temporary file: Disk quota"},
    {"rename", 1, EACCES,
     "cannot rename the temporary file to it: Permission denied"},
};

/* Makes call number `at` of the named system call fail with err. */
static void inject(const char *call, int at, int err)
{
    calls = 0;
    fail_at = at;
    fail_errno = err;
    if (!strcmp(call, "write")) ag__io_calls.write = failing_write;
    if (!strcmp(call, "fsync")) ag__io_calls.fsync = failing_fsync;
    if (!strcmp(call, "close")) ag__io_calls.close = failing_close;
    if (!strcmp(call, "rename")) ag__io_calls.rename = failing_rename;
}

START_TEST(test_injected_failure)
{
    old_file o = make_old();
    inject(injected[_i].call, injected[_i].at, injected[_i].err);
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, NULL), -1);
    ck_assert_msg(calls >= injected[_i].at, "%s was called %d times",
                  injected[_i].call, calls);
    expect_error("ag_save_safetensors", o.path, injected[_i].want);
    ag__io_calls = ag__io_calls_default;
    expect_old_intact(&o);
}
END_TEST

/* The folder's fsync (after the rename) failing: the new file is in place
 * and loads, and the error says so. */
START_TEST(test_injected_folder_fsync)
{
    old_file o = make_old();
    inject("fsync", 2, EIO);
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, NULL), -1);
    ck_assert_int_eq(calls, 2);
    expect_error("ag_save_safetensors", o.path,
                 "saved, but cannot fsync its folder");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "Input/output error"));
    ag__io_calls = ag__io_calls_default;
    expect_only("model.safetensors");
    fill(o.params, 100);
    ck_assert_int_eq(ag_load_safetensors(o.path, o.params), 0);
    expect_filled(o.params, 2);
    free(o.bytes);
}
END_TEST

/* Folders that cannot be synced (EINVAL) are not an error. */
START_TEST(test_folder_fsync_einval)
{
    old_file o = make_old();
    inject("fsync", 2, EINVAL);
    ck_assert_msg(ag_save_safetensors(o.path, o.params, NULL) == 0, "%s",
                  ag_last_error());
    free(o.bytes);
}
END_TEST

/* write() that writes at most 3 bytes a call, or is interrupted every other
 * call, still writes the whole file. */
static ssize_t short_write(int fd, const void *buf, size_t n)
{
    calls++;
    return write(fd, buf, n < 3 ? n : 3);
}

static ssize_t interrupted_write(int fd, const void *buf, size_t n)
{
    if (calls++ % 2 == 0) {
        errno = EINTR;
        return -1;
    }
    return write(fd, buf, n);
}

/* write() returning 0 for a non-empty buffer (no progress, no errno) is an
 * error, not a loop. (After 100 calls it fails for real, so that a writer
 * that retries shows as a wrong count instead of a hang.) */
static ssize_t stuck_write(int fd, const void *buf, size_t n)
{
    (void)fd;
    (void)buf;
    (void)n;
    if (++calls <= 100) return 0;
    errno = EIO;
    return -1;
}

START_TEST(test_write_makes_no_progress)
{
    old_file o = make_old();
    calls = 0;
    ag__io_calls.write = stuck_write;
    ck_assert_int_eq(ag_save_safetensors(o.path, o.params, NULL), -1);
    ck_assert_int_eq(calls, 1);
    expect_error("ag_save_safetensors", o.path,
                 "cannot write the temporary file: Input/output error");
    ag__io_calls = ag__io_calls_default;
    expect_old_intact(&o);
}
END_TEST

START_TEST(test_short_and_interrupted_writes)
{
    old_file o = make_old();
    ssize_t (*writes[2])(int, const void *, size_t) = {short_write,
                                                       interrupted_write};
    for (int i = 0; i < 2; i++) {
        calls = 0;
        ag__io_calls.write = writes[i];
        ck_assert_msg(ag_save_safetensors(o.path, o.params, NULL) == 0, "%s",
                      ag_last_error());
        ag__io_calls = ag__io_calls_default;
        ck_assert_int_gt(calls, 2);
        fill(o.params, 100);
        ck_assert_int_eq(ag_load_safetensors(o.path, o.params), 0);
        expect_filled(o.params, 2);
    }
    expect_only("model.safetensors");
    free(o.bytes);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Every interruption point of a save, every truncation of a file      */
/* ------------------------------------------------------------------ */

/* A set of 16 tensors, f32 and f64: matrices, vectors, a scalar and one
 * without elements, so that a save makes 16 writes (the header, then one
 * per tensor with values). */
static ag_params *many_set(void)
{
    ag_params *p = ag_params_new(arena);
    ck_assert_ptr_nonnull(p);
    for (int k = 0; k < 16; k++) {
        char name[32];
        snprintf(name, sizeof name, "blocks.%d.%s", k / 2,
                 k % 2 ? "bias" : "weight");
        ag_dtype dt = k % 3 ? AG_F32 : AG_F64;
        if (k == 5)
            add(p, name, dt, 0, NULL);
        else if (k == 9)
            add(p, name, dt, 2, (int64_t[]){0, 3});
        else if (k % 2)
            add(p, name, dt, 1, (int64_t[]){k + 1});
        else
            add(p, name, dt, 2, (int64_t[]){k / 2 + 1, 3});
    }
    return p;
}

/* The checkpoint of the sweeps: the old file (many_set filled from 1), the
 * bytes a save of the set filled from 2 writes, and a second set to load
 * files into. */
typedef struct {
    const char *path;
    ag_params *params, *check;
    unsigned char *old_bytes, *new_bytes;
    size_t old_size, new_size;
} sweep_file;

static sweep_file make_sweep_file(void)
{
    sweep_file s = {
        path_of("model.safetensors"), many_set(), many_set(), NULL, NULL, 0, 0};
    fill(s.params, 2);
    ck_assert_int_eq(ag_save_safetensors(s.path, s.params, NULL), 0);
    s.new_bytes = read_bytes(s.path, &s.new_size);
    fill(s.params, 1);
    ck_assert_int_eq(ag_save_safetensors(s.path, s.params, NULL), 0);
    s.old_bytes = read_bytes(s.path, &s.old_size);
    fill(s.params, 2);
    return s;
}

/* Asserts that the file, alone in the folder, holds the old bytes (or the
 * new ones) and loads as the set filled from 1 (or 2). */
static void expect_sweep_file(sweep_file *s, bool new_one)
{
    expect_file(s->path, new_one ? s->new_bytes : s->old_bytes,
                new_one ? s->new_size : s->old_size);
    expect_only("model.safetensors");
    fill(s->check, 100);
    ck_assert_msg(ag_load_safetensors(s->path, s->check) == 0, "%s",
                  ag_last_error());
    expect_filled(s->check, new_one ? 2 : 1);
}

/* Saves s->params over the old file with ag__io_calls as set, then puts
 * the default calls and the old file back. Returns what the save did. */
static int sweep_save(sweep_file *s)
{
    ag_clear_error();
    int rc = ag_save_safetensors(s->path, s->params, NULL);
    ag__io_calls = ag__io_calls_default;
    return rc;
}

static void restore_old(sweep_file *s)
{
    write_bytes(s->path, s->old_bytes, s->old_size);
}

static const struct {
    const char *call, *want;
} sweep_calls[] = {
    {"write", "cannot write the temporary file: Input/output error"},
    {"fsync", "cannot fsync the temporary file: Input/output error"},
    {"close", "cannot close the temporary file: Input/output error"},
    {"rename", "cannot rename the temporary file to it: Input/output error"},
};

/* Counts the calls of `call` that a save makes. */
static int count_calls(sweep_file *s, const char *call)
{
    inject(call, 0, 0);
    ck_assert_msg(sweep_save(s) == 0, "%s", ag_last_error());
    restore_old(s);
    return calls;
}

/* Each call of each kind that a save makes fails in turn: before the
 * rename the old file is left byte-identical, loadable and alone; the
 * folder's fsync (the last fsync) failing leaves the new file in place;
 * the save then succeeds when tried again. */
START_TEST(test_interrupt_every_call)
{
    sweep_file s = make_sweep_file();
    int points = 0;
    for (int c = 0; c < (int)(sizeof sweep_calls / sizeof *sweep_calls); c++) {
        const char *call = sweep_calls[c].call;
        int n = count_calls(&s, call);
        if (!strcmp(call, "write")) ck_assert_int_eq(n, 16);
        if (!strcmp(call, "fsync")) ck_assert_int_eq(n, 2);
        if (!strcmp(call, "close") || !strcmp(call, "rename"))
            ck_assert_int_eq(n, 1);
        for (int k = 1; k <= n; k++, points++) {
            inject(call, k, EIO);
            ck_assert_int_eq(sweep_save(&s), -1);
            ck_assert_int_eq(calls, k);
            bool folder = !strcmp(call, "fsync") && k == n;
            expect_error("ag_save_safetensors", s.path,
                         folder ? "saved, but cannot fsync its folder"
                                : sweep_calls[c].want);
            expect_sweep_file(&s, folder);
            ck_assert_msg(sweep_save(&s) == 0, "%s", ag_last_error());
            expect_sweep_file(&s, true);
            restore_old(&s);
        }
    }
    printf("test_safetensors: %d interruption points of a save\n", points);
    free(s.old_bytes);
    free(s.new_bytes);
}
END_TEST

/* write() that writes half of what it is asked (at least a byte), or is
 * interrupted before writing anything, at call fail_at only. */
static ssize_t short_at(int fd, const void *buf, size_t n)
{
    if (++calls == fail_at && n > 1) return write(fd, buf, n / 2);
    return write(fd, buf, n);
}

static ssize_t interrupted_at(int fd, const void *buf, size_t n)
{
    if (++calls != fail_at) return write(fd, buf, n);
    errno = EINTR;
    return -1;
}

/* A short write, or EINTR, at each write of a save in turn: the save goes
 * on and writes exactly the bytes of an undisturbed one. */
START_TEST(test_short_or_interrupted_at_every_write)
{
    sweep_file s = make_sweep_file();
    int n = count_calls(&s, "write"), points = 0;
    ssize_t (*writes[2])(int, const void *, size_t) = {short_at,
                                                       interrupted_at};
    for (int w = 0; w < 2; w++)
        for (int k = 1; k <= n; k++, points++) {
            calls = 0;
            fail_at = k;
            ag__io_calls.write = writes[w];
            ck_assert_msg(sweep_save(&s) == 0, "write %d: %s", k,
                          ag_last_error());
            ck_assert_int_eq(calls, n + 1); /* one more for the rest */
            expect_sweep_file(&s, true);
            restore_old(&s);
        }
    printf("test_safetensors: %d short or interrupted writes\n", points);
    free(s.old_bytes);
    free(s.new_bytes);
}
END_TEST

/* A checkpoint cut at every length from 0 to its size - 1: every load and
 * metadata read fails with an error naming the file, and the parameters
 * are unchanged (valgrind and ASan check that no read leaves the file's
 * bytes). */
START_TEST(test_load_every_truncation)
{
    const char *path = path_of("cut.safetensors");
    ag_params *p = many_set();
    fill(p, 1);
    const char *meta[] = {"epoch", "7", "note", "cut at every byte", NULL};
    ck_assert_int_eq(ag_save_safetensors(path, p, meta), 0);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    fill(p, 100);
    for (size_t keep = 0; keep < size; keep++) {
        write_bytes(path, bytes, keep);
        expect_load_fails(path, p, "");
        ag_clear_error();
        ck_assert_ptr_null(ag_load_safetensors_metadata(arena, path));
        expect_error("ag_load_safetensors_metadata", path, "");
    }
    write_bytes(path, bytes, size);
    ck_assert_int_eq(ag_load_safetensors(path, p), 0);
    expect_filled(p, 1);
    printf("test_safetensors: %zu truncation points of a checkpoint\n", size);
    free(bytes);
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("round trip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip_f32);
    tcase_add_test(tc, test_round_trip_f64);
    tcase_add_test(tc, test_round_trip_mixed);
    tcase_add_test(tc, test_round_trip_special_values);
    tcase_add_test(tc, test_round_trip_empty_set);
    tcase_add_test(tc, test_overwrite);
    tcase_add_test(tc, test_metadata);
    tcase_add_test(tc, test_metadata_errors);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_load_any_order);
    tcase_add_test(tc, test_torch_fixture_loads);
    tcase_add_test(tc, test_torch_fixture_bytes);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad files");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bad_file, 0,
                        (int)(sizeof bad_files / sizeof *bad_files));
    tcase_add_test(tc, test_good_file);
    tcase_add_test(tc, test_escaped_names);
    tcase_add_test(tc, test_load_parameter_named_metadata);
    tcase_add_test(tc, test_empty_tensor_at_boundaries);
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_header_length_too_large);
    tcase_add_test(tc, test_header_length_over_limit);
    tcase_add_test(tc, test_load_unreadable);
    suite_add_tcase(s, tc);

    tc = tcase_create("save errors");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_save_null);
    tcase_add_test(tc, test_save_unwritable);
    tcase_add_test(tc, test_save_readonly_folder);
    tcase_add_test(tc, test_save_bad_input);
    tcase_add_loop_test(tc, test_injected_failure, 0,
                        (int)(sizeof injected / sizeof *injected));
    tcase_add_test(tc, test_injected_folder_fsync);
    tcase_add_test(tc, test_folder_fsync_einval);
    tcase_add_test(tc, test_write_makes_no_progress);
    tcase_add_test(tc, test_short_and_interrupted_writes);
    suite_add_tcase(s, tc);

    tc = tcase_create("sweeps");
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_interrupt_every_call);
    tcase_add_test(tc, test_short_or_interrupted_at_every_write);
    tcase_add_test(tc, test_load_every_truncation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(safetensors_suite());
}
