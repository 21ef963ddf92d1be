/* test_datasets.c: the dataset readers and the batcher. IDX files of every
 * element type, plain and gzipped (in one gzip member or several), 1-D to
 * 8-D, read back into every dtype they allow, f64 values at the limit of
 * f32, and every kind of bad IDX file (bad magic, unknown type, bad
 * dimension counts, truncated header and data, trailing bytes, bytes after
 * the gzip stream, corrupt or cut gzip, zero and overflowing sizes, i32 from
 * float data); CSV files (values, header, CRLF, blank lines, lines over 64
 * KiB, i32, values at the limit of f32) and bad ones (ragged rows, bad and
 * empty fields quoted with escapes, no rows, out-of-range values, pipes and
 * devices); and mini-batches (each example once per epoch, batch sizes up
 * to INT64_MAX, pairing of x and y, orders per epoch and seed, unbiased
 * shuffles, no allocation per epoch, errors). The
 * test writes its files itself, with its own encoder, into a mkdtemp folder
 * that main removes at the end. */
#define _POSIX_C_SOURCE 200809L

#include <autograd.h>

#include "support.h"
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

/* ------------------------------------------------------------------ */
/* Files                                                               */
/* ------------------------------------------------------------------ */

/* The folder main makes for this run's files. */
static char tmp_dir[512];

/* The path of file `name` in tmp_dir, in one of a few rotating buffers. */
static const char *tmp_path(const char *name)
{
    static char bufs[4][800];
    static int next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/%s", tmp_dir, name);
    return buf;
}

/* How write_file stores its bytes. */
enum { PLAIN, GZIP, GZIP_STORED };

/* Writes n bytes to file `name`, plain or through zlib's gzip writer
 * (GZIP_STORED: without compression); returns its path. */
static const char *write_file(const char *name, int how, const void *bytes,
                              size_t n)
{
    const char *path = tmp_path(name);
    if (how == PLAIN) {
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
        ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
        ck_assert_int_eq(fclose(f), 0);
        return path;
    }
    gzFile gz = gzopen(path, how == GZIP ? "wb" : "wb0");
    ck_assert_msg(gz != NULL, "cannot write %s", path);
    ck_assert_int_eq(gzwrite(gz, bytes, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(gz), Z_OK);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, PLAIN, text, strlen(text));
}

/* Reads file `path` whole into a malloc'd buffer. */
static unsigned char *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    *n = fread(buf, 1, (size_t)size, f);
    ck_assert_uint_eq(*n, (size_t)size);
    fclose(f);
    return buf;
}

/* Removes tmp_dir and the files in it. */
static void remove_tmp_dir(void)
{
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlink(tmp_path(e->d_name));
    closedir(d);
    rmdir(tmp_dir);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/* Checks that the last error starts with "func: " and holds each of the
 * NULL-terminated strings that follow. */
static void expect_message(int line, const char *func, ...)
{
    const char *msg = ag_last_error();
    size_t n = strlen(func);
    ck_assert_msg(strncmp(msg, func, n) == 0 && msg[n] == ':',
                  "line %d: message should start with \"%s:\", got \"%s\"",
                  line, func, msg);
    va_list ap;
    va_start(ap, func);
    for (const char *want; (want = va_arg(ap, const char *));)
        ck_assert_msg(strstr(msg, want), "line %d: \"%s\" not in \"%s\"", line,
                      want, msg);
    va_end(ap);
}
#define EXPECT_MESSAGE(func, ...)                                              \
    expect_message(__LINE__, func, __VA_ARGS__, (const char *)NULL)

/* The arena of the running test, made and freed by the checked fixture (so
 * that a failed assertion under CK_FORK=no leaks nothing). */
static ag_arena *arena;

static void setup_arena(void)
{
    arena = ag_arena_new();
    ck_assert_ptr_nonnull(arena);
}

static void teardown_arena(void)
{
    ag_arena_free(arena);
    arena = NULL;
}

/* Whether got is want as stored in dtype dt (NaN equals NaN). */
static bool same_value(double got, double want, ag_dtype dt)
{
    if (dt == AG_F32) want = (float)want;
    return got == want || (isnan(got) && isnan(want));
}

/* FLT_MAX plus half an ulp: the smallest magnitude that rounds to infinity
 * as f32 (round to nearest, ties to even, and FLT_MAX's last bit is 1). */
#define F32_ROUNDS_TO_INF 0x1.ffffffp127

/* Values that round to +-FLT_MAX as f32 (fits) and values that round to an
 * infinity (overflows). */
static void f32_limits(double fits[6], double overflows[4])
{
    double below = nextafter(F32_ROUNDS_TO_INF, 0);
    const double f[6] = {FLT_MAX,  3.4028235e38,  below,
                         -FLT_MAX, -3.4028235e38, -below};
    const double o[4] = {F32_ROUNDS_TO_INF,
                         nextafter(F32_ROUNDS_TO_INF, INFINITY),
                         -F32_ROUNDS_TO_INF, 1e300};
    for (int i = 0; i < 6; i++) {
        fits[i] = f[i];
        ck_assert_msg(fabsf((float)f[i]) == FLT_MAX, "%a is not FLT_MAX", f[i]);
    }
    for (int i = 0; i < 4; i++) {
        overflows[i] = o[i];
        ck_assert_msg(isinf((float)o[i]), "%a is finite", o[i]);
    }
}

/* ------------------------------------------------------------------ */
/* IDX: writing test files                                             */
/* ------------------------------------------------------------------ */

/* An IDX element type with test values that span its range. */
typedef struct {
    unsigned char code;
    const char *name;
    int size;
    bool integer;
    double values[6];
} idx_case;

static const idx_case idx_cases[] = {
    {0x08, "u8", 1, true, {0, 1, 127, 128, 200, 255}},
    {0x09, "i8", 1, true, {-128, -1, 0, 1, 100, 127}},
    {0x0B, "i16", 2, true, {-32768, -300, -1, 0, 258, 32767}},
    {0x0C, "i32", 4, true, {INT32_MIN, -70000, -1, 0, 16909060, INT32_MAX}},
    {0x0D, "f32", 4, false, {-1.5, 0, 0x1.1p-15, FLT_MAX, -INFINITY, NAN}},
    {0x0E, "f64", 8, false, {-2.5, 0.1, 1e-300, 3e38, INFINITY, NAN}},
};

static void put_be(unsigned char *out, uint64_t u, int size)
{
    for (int i = 0; i < size; i++)
        out[i] = (unsigned char)(u >> (8 * (size - 1 - i)));
}

/* Writes v big-endian as element type `code` of `size` bytes. */
static void encode(unsigned char code, int size, double v, unsigned char *out)
{
    uint64_t u;
    if (code == 0x0D) {
        float f = (float)v;
        uint32_t w;
        memcpy(&w, &f, 4);
        u = w;
    } else if (code == 0x0E) {
        memcpy(&u, &v, 8);
    } else {
        u = (uint64_t)(int64_t)v; /* two's complement, truncated by put_be */
    }
    put_be(out, u, size);
}

/* An IDX file's bytes, in a malloc'd buffer of *n bytes: the header for
 * `dims` and `numel` elements of type c, element i being `value(i)`. */
typedef double (*value_fn)(const idx_case *c, int64_t i);

static double cycle_value(const idx_case *c, int64_t i)
{
    return c->values[i % 6];
}

static unsigned char *idx_bytes(const idx_case *c, int ndim,
                                const uint32_t *dims, int64_t numel,
                                value_fn value, size_t *n)
{
    *n = 4 + 4 * (size_t)ndim + (size_t)numel * (size_t)c->size;
    unsigned char *b = malloc(*n);
    ck_assert_ptr_nonnull(b);
    b[0] = b[1] = 0;
    b[2] = c->code;
    b[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) put_be(b + 4 + 4 * d, dims[d], 4);
    unsigned char *data = b + 4 + 4 * ndim;
    for (int64_t i = 0; i < numel; i++)
        encode(c->code, c->size, value(c, i), data + i * c->size);
    return b;
}

static const idx_case *find_case(const char *name)
{
    for (int k = 0; k < COUNT(idx_cases); k++)
        if (!strcmp(idx_cases[k].name, name)) return &idx_cases[k];
    ck_abort_msg("no idx case %s", name);
    return NULL;
}

/* Loads `path` into dtype dt and checks the shape and every value. */
static void expect_idx(const char *path, const idx_case *c, ag_dtype dt,
                       int ndim, const uint32_t *dims, value_fn value)
{
    ag_tensor *t = ag_load_idx(arena, path, dt);
    ck_assert_msg(t != NULL, "%s as %s: %s", path, ag_dtype_name(dt),
                  ag_last_error());
    ck_assert_int_eq(ag_type(t), dt);
    ck_assert_int_eq(ag_ndim(t), ndim);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        ck_assert_int_eq(ag_shape(t)[d], dims[d]);
        numel *= dims[d];
    }
    ck_assert_int_eq(ag_numel(t), numel);
    for (int64_t i = 0; i < numel; i++)
        if (!same_value(tensor_at(t, i), value(c, i), dt))
            ck_abort_msg("%s as %s: element %lld is %.17g, want %.17g", path,
                         ag_dtype_name(dt), (long long)i, tensor_at(t, i),
                         value(c, i));
}

/* ------------------------------------------------------------------ */
/* IDX: good files                                                     */
/* ------------------------------------------------------------------ */

START_TEST(test_idx_round_trip)
{
    const uint32_t shapes[3][3] = {{6}, {2, 3}, {2, 3, 2}};
    const int64_t numels[3] = {6, 6, 12};
    const ag_dtype dts[3] = {AG_F32, AG_F64, AG_I32};
    for (int k = 0; k < COUNT(idx_cases); k++)
        for (int how = PLAIN; how <= GZIP; how++)
            for (int nd = 1; nd <= 3; nd++) {
                const idx_case *c = &idx_cases[k];
                size_t n;
                unsigned char *b = idx_bytes(c, nd, shapes[nd - 1],
                                             numels[nd - 1], cycle_value, &n);
                char name[64];
                snprintf(name, sizeof name, "rt-%s-%dd%s", c->name, nd,
                         how ? ".gz" : "");
                const char *path = write_file(name, how, b, n);
                free(b);
                for (int j = 0; j < 3; j++)
                    if (dts[j] != AG_I32 || c->integer)
                        expect_idx(path, c, dts[j], nd, shapes[nd - 1],
                                   cycle_value);
            }
}
END_TEST

START_TEST(test_idx_max_dims)
{
    const uint32_t dims[AG_MAX_DIMS] = {1, 2, 1, 1, 1, 1, 1, 3};
    const idx_case *c = find_case("i16");
    size_t n;
    unsigned char *b = idx_bytes(c, AG_MAX_DIMS, dims, 6, cycle_value, &n);
    const char *path = write_file("maxdims", PLAIN, b, n);
    free(b);
    expect_idx(path, c, AG_F64, AG_MAX_DIMS, dims, cycle_value);
}
END_TEST

/* Distinct values over the whole i16 range, with no period near the
 * read chunk size. */
static double spread_value(const idx_case *c, int64_t i)
{
    return (double)((i * 7919) % 65536 - 32768);
}

/* More elements than one read chunk holds, so the data crosses chunk
 * boundaries. */
START_TEST(test_idx_many_chunks)
{
    const uint32_t dims[2] = {3, 10007};
    const idx_case *c = find_case("i16");
    size_t n;
    unsigned char *b = idx_bytes(c, 2, dims, 3 * 10007, spread_value, &n);
    for (int how = PLAIN; how <= GZIP; how++) {
        const char *path = write_file(how ? "big.gz" : "big", how, b, n);
        expect_idx(path, c, AG_F32, 2, dims, spread_value);
        expect_idx(path, c, AG_I32, 2, dims, spread_value);
    }
    free(b);
}
END_TEST

/* ------------------------------------------------------------------ */
/* IDX: bad files                                                      */
/* ------------------------------------------------------------------ */

/* Writes the n bytes as file `name` (plain or gzipped) and checks that
 * loading it as dt fails with a message naming the path and holding
 * `want`. */
static void expect_idx_error(int line, const char *name, int how,
                             const unsigned char *bytes, size_t n, ag_dtype dt,
                             const char *want)
{
    char gz_name[64];
    snprintf(gz_name, sizeof gz_name, "%s%s", name, how ? ".gz" : "");
    const char *path = write_file(gz_name, how, bytes, n);
    ag_clear_error();
    ag_tensor *t = ag_load_idx(arena, path, dt);
    ck_assert_msg(t == NULL, "line %d: %s loaded", line, path);
    char prefix[900];
    snprintf(prefix, sizeof prefix, "ag_load_idx: %s: ", path);
    expect_message(line, "ag_load_idx", prefix, want, (const char *)NULL);
}
#define EXPECT_IDX_ERROR(name, how, bytes, n, dt, want)                        \
    expect_idx_error(__LINE__, name, how, bytes, n, dt, want)

/* A header of ndim sizes (and no data) for element type `code`. */
static size_t header(unsigned char *b, unsigned char code, int ndim,
                     const uint32_t *dims)
{
    b[0] = b[1] = 0;
    b[2] = code;
    b[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) put_be(b + 4 + 4 * d, dims[d], 4);
    return 4 + 4 * (size_t)ndim;
}

START_TEST(test_idx_bad_header)
{
    unsigned char b[64] = {0};
    for (int how = PLAIN; how <= GZIP; how++) {
        EXPECT_IDX_ERROR("empty", how, b, 0, AG_F32,
                         "truncated header: expected 4 bytes, got 0");
        memcpy(b, (unsigned char[]){0x01, 0x02, 0x08, 0x01}, 4);
        EXPECT_IDX_ERROR("magic", how, b, 12, AG_F32,
                         "bad magic bytes 0x01 0x02 0x08 0x01");
        memcpy(b, (unsigned char[]){0x00, 0x07, 0x08, 0x01}, 4);
        EXPECT_IDX_ERROR("magic2", how, b, 12, AG_F32,
                         "bad magic bytes 0x00 0x07");
        memcpy(b, (unsigned char[]){0x00, 0x00, 0x0A, 0x01}, 4);
        EXPECT_IDX_ERROR("type", how, b, 12, AG_F32,
                         "unknown element type 0x0a");
        memcpy(b, (unsigned char[]){0x00, 0x00, 0x08, 0x00}, 4);
        EXPECT_IDX_ERROR("dims0", how, b, 12, AG_F32, "0 dimensions");
        memcpy(b, (unsigned char[]){0x00, 0x00, 0x08, AG_MAX_DIMS + 1}, 4);
        EXPECT_IDX_ERROR("dims9", how, b, 60, AG_F32, "9 dimensions");
        size_t n = header(b, 0x08, 3, (const uint32_t[]){2, 2, 2});
        EXPECT_IDX_ERROR("short-magic", how, b, 3, AG_F32,
                         "truncated header: expected 4 bytes, got 3");
        EXPECT_IDX_ERROR("short-sizes", how, b, n - 5, AG_F32,
                         "truncated header: expected 16 bytes, got 11");
    }
}
END_TEST

START_TEST(test_idx_bad_sizes)
{
    unsigned char b[64] = {0};
    for (int how = PLAIN; how <= GZIP; how++) {
        size_t n = header(b, 0x08, 3, (const uint32_t[]){3, 0, 2});
        EXPECT_IDX_ERROR("zero", how, b, n, AG_F32,
                         "dimension 1 of shape (3,0,2) has size 0");
        n = header(b, 0x08, 3, (const uint32_t[]){UINT32_MAX, UINT32_MAX, 2});
        EXPECT_IDX_ERROR("count", how, b, n, AG_F32,
                         "its element count overflows");
        /* 2^62 elements fit int64_t; their 2^65 bytes do not. */
        n = header(b, 0x0E, 2, (const uint32_t[]){1u << 31, 1u << 31});
        EXPECT_IDX_ERROR("bytes", how, b, n, AG_F64,
                         "its byte count overflows");
        n = header(b, 0x08, 2, (const uint32_t[]){1u << 31, 1u << 31});
        EXPECT_IDX_ERROR("bytes-f32", how, b, n, AG_F32,
                         "its byte count overflows");
    }
    /* 2^40 bytes promised: refused before allocating, from the file size. */
    size_t n = header(b, 0x08, 3, (const uint32_t[]){1u << 16, 1u << 16, 256});
    EXPECT_IDX_ERROR("huge", PLAIN, b, n, AG_F32,
                     "truncated data: expected 1099511627776 bytes of data, "
                     "got 0");
    EXPECT_IDX_ERROR("huge", GZIP, b, n, AG_F32,
                     "truncated data: expected 1099511627776 bytes of data, "
                     "more than a gzip file of");
}
END_TEST

START_TEST(test_idx_float_as_i32)
{
    const uint32_t dims[1] = {6};
    for (int k = 4; k < 6; k++) {
        size_t n;
        unsigned char *b =
            idx_bytes(&idx_cases[k], 1, dims, 6, cycle_value, &n);
        char want[64];
        snprintf(want, sizeof want,
                 "holds %s values, which cannot be read as i32",
                 idx_cases[k].name);
        EXPECT_IDX_ERROR(idx_cases[k].name, PLAIN, b, n, AG_I32, want);
        free(b);
    }
}
END_TEST

static double big_value(const idx_case *c, int64_t i)
{
    return i == 3 ? -1e300 : (double)i;
}

START_TEST(test_idx_f64_overflows_f32)
{
    const uint32_t dims[1] = {5};
    size_t n;
    unsigned char *b = idx_bytes(find_case("f64"), 1, dims, 5, big_value, &n);
    EXPECT_IDX_ERROR("big-f64", PLAIN, b, n, AG_F32,
                     "value -1e+300 of element 3 overflows f32");
    const char *path = tmp_path("big-f64");
    expect_idx(path, find_case("f64"), AG_F64, 1, dims, big_value);
    free(b);
}
END_TEST

/* The values of the f32 limit tests, read by limit_value. */
static double limit_values[6];

static double limit_value(const idx_case *c, int64_t i)
{
    return limit_values[i];
}

/* f64 values that round to FLT_MAX load as f32; those that round to an
 * infinity are errors. */
START_TEST(test_idx_f32_limits)
{
    double overflows[4];
    f32_limits(limit_values, overflows);
    const idx_case *c = find_case("f64");
    const uint32_t six[1] = {6}, two[1] = {2};
    size_t n;
    unsigned char *b = idx_bytes(c, 1, six, 6, limit_value, &n);
    const char *path = write_file("f32-limits", PLAIN, b, n);
    free(b);
    expect_idx(path, c, AG_F32, 1, six, limit_value);
    expect_idx(path, c, AG_F64, 1, six, limit_value);
    for (int k = 0; k < 4; k++) {
        limit_values[0] = 1;
        limit_values[1] = overflows[k];
        b = idx_bytes(c, 1, two, 2, limit_value, &n);
        char want[96];
        snprintf(want, sizeof want, "value %.9g of element 1 overflows f32",
                 overflows[k]);
        EXPECT_IDX_ERROR("f32-over", PLAIN, b, n, AG_F32, want);
        free(b);
    }
}
END_TEST

START_TEST(test_idx_truncated_data)
{
    /* (3, 4) i32: 48 bytes of data after a 12-byte header. */
    const uint32_t dims[2] = {3, 4};
    size_t n;
    unsigned char *b =
        idx_bytes(find_case("i32"), 2, dims, 12, cycle_value, &n);
    const size_t keep[] = {0, 1, 6, 20, 47};
    for (int how = PLAIN; how <= GZIP; how++)
        for (int k = 0; k < COUNT(keep); k++) {
            char want[96];
            snprintf(want, sizeof want,
                     "truncated data: expected 48 bytes of data, got %zu",
                     keep[k]);
            EXPECT_IDX_ERROR("cut", how, b, 12 + keep[k], AG_F64, want);
        }
    free(b);
    /* A cut in a later read chunk. */
    const uint32_t big[1] = {30000};
    b = idx_bytes(find_case("i16"), 1, big, 30000, spread_value, &n);
    for (int how = PLAIN; how <= GZIP; how++)
        EXPECT_IDX_ERROR("cut-late", how, b, n - 3, AG_F32,
                         "expected 60000 bytes of data, got 59997");
    free(b);
}
END_TEST

START_TEST(test_idx_trailing_bytes)
{
    const uint32_t dims[1] = {6};
    size_t n;
    unsigned char *b = idx_bytes(find_case("u8"), 1, dims, 6, cycle_value, &n);
    unsigned char *longer = calloc(n + 70000, 1);
    ck_assert_ptr_nonnull(longer);
    memcpy(longer, b, n);
    for (int how = PLAIN; how <= GZIP; how++)
        EXPECT_IDX_ERROR("trail", how, longer, n + 3, AG_F32,
                         "3 trailing bytes after the 6 bytes of data");
    /* A plain file's trailing bytes are counted from its size; a gzip
     * file's are not decompressed beyond the first chunk. */
    EXPECT_IDX_ERROR("trail-long", PLAIN, longer, n + 70000, AG_F32,
                     "70000 trailing bytes after the 6 bytes of data");
    EXPECT_IDX_ERROR("trail-long", GZIP, longer, n + 70000, AG_F32,
                     "trailing bytes after the 6 bytes of data");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), ": at least "));
    /* The reader stops there: a wrong checksum at the end of the stream is
     * not reached. */
    write_file("trail-crc.gz", GZIP, longer, n + 70000);
    size_t z_n;
    unsigned char *z = read_whole(tmp_path("trail-crc.gz"), &z_n);
    z[z_n - 8] ^= 0x01;
    EXPECT_IDX_ERROR("trail-crc", PLAIN, z, z_n, AG_F32,
                     "trailing bytes after the 6 bytes of data");
    free(z);
    free(longer);
    free(b);
}
END_TEST

/* Writes a gzipped IDX file with `how` and returns its compressed bytes. */
static unsigned char *gzipped_idx(const char *name, int how, size_t *n)
{
    const uint32_t dims[1] = {30000};
    size_t raw_n;
    unsigned char *raw =
        idx_bytes(find_case("i16"), 1, dims, 30000, spread_value, &raw_n);
    const char *path = write_file(name, how, raw, raw_n);
    free(raw);
    return read_whole(path, n);
}

/* The bytes (*n of them) of a 1-D u8 IDX file of `count` elements written
 * by gzip without compression. */
static unsigned char *stored_u8(uint32_t count, size_t *n)
{
    size_t raw_n;
    unsigned char *raw =
        idx_bytes(find_case("u8"), 1, &count, count, cycle_value, &raw_n);
    write_file("stored-u8.gz", GZIP_STORED, raw, raw_n);
    free(raw);
    return read_whole(tmp_path("stored-u8.gz"), n);
}

START_TEST(test_idx_corrupt_gzip)
{
    size_t n;
    /* Stored blocks: a flipped data byte is caught by the CRC. */
    unsigned char *z = gzipped_idx("stored.gz", GZIP_STORED, &n);
    z[n / 2] ^= 0xFF;
    z[n / 2 + 1] ^= 0x55;
    EXPECT_IDX_ERROR("stored-flip", PLAIN, z, n, AG_F32,
                     "corrupt gzip stream: incorrect data check");
    free(z);
    /* A wrong length in the trailer. */
    z = gzipped_idx("len.gz", GZIP, &n);
    z[n - 4] ^= 0x01;
    EXPECT_IDX_ERROR("len-flip", PLAIN, z, n, AG_F32,
                     "corrupt gzip stream: incorrect length check");
    free(z);
    /* Deflated: what a flip breaks depends on the bytes, but never loads. */
    z = gzipped_idx("deflate.gz", GZIP, &n);
    for (size_t at = n / 4; at < n - 8; at += n / 5) z[at] ^= 0xA5;
    const char *path = write_file("deflate-flip.gz", PLAIN, z, n);
    ag_clear_error();
    ck_assert_ptr_null(ag_load_idx(arena, path, AG_F32));
    const char *msg = ag_last_error();
    ck_assert_msg(strstr(msg, path) && (strstr(msg, "corrupt gzip stream") ||
                                        strstr(msg, "truncated data") ||
                                        strstr(msg, "trailing bytes")),
                  "message: %s", msg);
    /* A second gzip member, empty but with a wrong checksum, after a good
     * one: found by the read after the data. */
    free(z);
    size_t good_n, empty_n;
    unsigned char *good = stored_u8(100, &good_n);
    write_file("empty.gz", GZIP, "", 0);
    unsigned char *empty = read_whole(tmp_path("empty.gz"), &empty_n);
    z = malloc(good_n + empty_n);
    ck_assert_ptr_nonnull(z);
    memcpy(z, good, good_n);
    memcpy(z + good_n, empty, empty_n);
    z[good_n + empty_n - 8] ^= 0x01;
    EXPECT_IDX_ERROR("member2", PLAIN, z, good_n + empty_n, AG_F32,
                     "corrupt gzip stream: incorrect data check");
    free(good);
    free(empty);
    /* A gzip stream cut short. */
    free(z);
    z = gzipped_idx("cut.gz", GZIP, &n);
    EXPECT_IDX_ERROR("cut-stream", PLAIN, z, n / 2, AG_F32,
                     "(the gzip stream ends early)");
    /* All the data, but the stream's trailer cut. */
    EXPECT_IDX_ERROR("cut-trailer", PLAIN, z, n - 4, AG_F32,
                     "the gzip stream ends early, after the 60000 bytes of "
                     "data");
    free(z);
}
END_TEST

/* Bytes that are not gzip after a complete gzip stream (which zlib's gzread
 * would skip) are trailing bytes; further gzip members are not. */
START_TEST(test_idx_gzip_garbage)
{
    size_t good_n;
    unsigned char *good = stored_u8(100, &good_n);
    const size_t garbage[] = {1, 2, 4, 100000};
    unsigned char *z = calloc(good_n + 100000, 1);
    ck_assert_ptr_nonnull(z);
    memcpy(z, good, good_n);
    for (int k = 0; k < COUNT(garbage); k++) {
        z[good_n] = 0x1f; /* half of gzip's magic */
        char want[96];
        snprintf(want, sizeof want,
                 "%zu trailing bytes after the gzip stream (they are not "
                 "gzip data)",
                 garbage[k]);
        EXPECT_IDX_ERROR("garbage", PLAIN, z, good_n + garbage[k], AG_F32,
                         want);
    }
    /* A second member holding the end of the data, then an empty one. */
    uint32_t count = 100;
    size_t raw_n, half_n, empty_n;
    unsigned char *raw =
        idx_bytes(find_case("u8"), 1, &count, 100, cycle_value, &raw_n);
    write_file("half.gz", GZIP, raw + 50, raw_n - 50);
    unsigned char *half = read_whole(tmp_path("half.gz"), &half_n);
    write_file("empty.gz", GZIP, "", 0);
    unsigned char *empty = read_whole(tmp_path("empty.gz"), &empty_n);
    write_file("first.gz", GZIP, raw, 50);
    size_t first_n;
    unsigned char *first = read_whole(tmp_path("first.gz"), &first_n);
    unsigned char *multi = malloc(first_n + half_n + empty_n);
    ck_assert_ptr_nonnull(multi);
    memcpy(multi, first, first_n);
    memcpy(multi + first_n, half, half_n);
    memcpy(multi + first_n + half_n, empty, empty_n);
    const char *path =
        write_file("multi.gz", PLAIN, multi, first_n + half_n + empty_n);
    expect_idx(path, find_case("u8"), AG_F32, 1, &count, cycle_value);
    free(multi);
    free(first);
    free(empty);
    free(half);
    free(raw);
    free(z);
    free(good);
}
END_TEST

START_TEST(test_idx_arguments)
{
    const char *missing = tmp_path("no-such-file");
    ck_assert_ptr_null(ag_load_idx(arena, missing, AG_F32));
    EXPECT_MESSAGE("ag_load_idx", missing, "cannot open", strerror(ENOENT));
    ck_assert_ptr_null(ag_load_idx(arena, tmp_dir, AG_F32));
    EXPECT_MESSAGE("ag_load_idx", tmp_dir, "cannot open", strerror(EISDIR));
    ck_assert_ptr_null(ag_load_idx(NULL, missing, AG_F32));
    EXPECT_MESSAGE("ag_load_idx", "arena is NULL");
    ck_assert_ptr_null(ag_load_idx(arena, NULL, AG_F32));
    EXPECT_MESSAGE("ag_load_idx", "path is NULL");
    ck_assert_ptr_null(ag_load_idx(arena, missing, (ag_dtype)7));
    EXPECT_MESSAGE("ag_load_idx", "unknown dtype 7");
}
END_TEST

/* ------------------------------------------------------------------ */
/* CSV                                                                 */
/* ------------------------------------------------------------------ */

/* Loads `path` and checks its shape and values. */
static void expect_csv(int line, const char *path, ag_dtype dt, bool header,
                       int64_t rows, int64_t cols, const double *want)
{
    ag_tensor *t = ag_load_csv(arena, path, dt, header);
    ck_assert_msg(t != NULL, "line %d: %s", line, ag_last_error());
    ck_assert_int_eq(ag_type(t), dt);
    ck_assert_int_eq(ag_ndim(t), 2);
    ck_assert_int_eq(ag_shape(t)[0], rows);
    ck_assert_int_eq(ag_shape(t)[1], cols);
    for (int64_t i = 0; i < rows * cols; i++)
        if (!same_value(tensor_at(t, i), want[i], dt))
            ck_abort_msg("line %d: element %lld is %.17g, want %.17g", line,
                         (long long)i, tensor_at(t, i), want[i]);
}
#define EXPECT_CSV(path, dt, header, rows, cols, ...)                          \
    expect_csv(__LINE__, path, dt, header, rows, cols,                         \
               (const double[]){__VA_ARGS__})

/* Writes `text` and checks that loading it fails with a message naming the
 * path and holding `want`. */
static void expect_csv_error(int line, const char *text, ag_dtype dt,
                             bool header, const char *want)
{
    const char *path = write_text("bad.csv", text);
    ag_clear_error();
    ck_assert_msg(ag_load_csv(arena, path, dt, header) == NULL,
                  "line %d: loaded", line);
    char prefix[900];
    snprintf(prefix, sizeof prefix, "ag_load_csv: %s: ", path);
    expect_message(line, "ag_load_csv", prefix, want, (const char *)NULL);
}
#define EXPECT_CSV_ERROR(text, dt, header, want)                               \
    expect_csv_error(__LINE__, text, dt, header, want)

START_TEST(test_csv_values)
{
    const char *p = write_text("v.csv", "1,2.5,-3\n4e2, 0.1 ,\t-0\n");
    EXPECT_CSV(p, AG_F64, false, 2, 3, 1, 2.5, -3, 400, 0.1, -0.0);
    EXPECT_CSV(p, AG_F32, false, 2, 3, 1, 2.5, -3, 400, 0.1, -0.0);
    p = write_text("one.csv", "7");
    EXPECT_CSV(p, AG_F64, false, 1, 1, 7);
    p = write_text("inf.csv", "inf,-1e-320\n");
    EXPECT_CSV(p, AG_F64, false, 1, 2, INFINITY, -1e-320);
}
END_TEST

START_TEST(test_csv_header_crlf_blank)
{
    const char *p = write_text("h.csv", "x,y z,label\n1,2,3\n4,5,6\n");
    EXPECT_CSV(p, AG_F64, true, 2, 3, 1, 2, 3, 4, 5, 6);
    EXPECT_CSV_ERROR("x,y\n1,2\n", AG_F64, false,
                     "line 1, column 1: field \"x\" is not a number");
    p = write_text("crlf.csv", "a,b\r\n1,2\r\n3,4");
    EXPECT_CSV(p, AG_F32, true, 2, 2, 1, 2, 3, 4);
    p = write_text("blank.csv", "\n\n  \n1,2\n\n \t \r\n3,4\n\n");
    EXPECT_CSV(p, AG_F64, false, 2, 2, 1, 2, 3, 4);
    p = write_text("blank-h.csv", "\r\na,b\n\n1,2\n");
    EXPECT_CSV(p, AG_F64, true, 1, 2, 1, 2);
    p = write_text("bom.csv", "\xEF\xBB\xBF"
                              "1,2\n3,4\n");
    EXPECT_CSV(p, AG_F64, false, 2, 2, 1, 2, 3, 4);
    EXPECT_CSV_ERROR("1,2\n\xEF\xBB\xBF"
                     "3,4\n",
                     AG_F64, false,
                     "line 2, column 1: field \"\xEF\xBB\xBF"
                     "3\"");
}
END_TEST

START_TEST(test_csv_long_lines)
{
    enum { ROWS = 3, COLS = 20000 };
    char *text = malloc((size_t)ROWS * COLS * 12 + 1);
    ck_assert_ptr_nonnull(text);
    double *want = malloc(sizeof(double) * ROWS * COLS);
    ck_assert_ptr_nonnull(want);
    size_t used = 0;
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++) {
            want[r * COLS + c] = (r * COLS + c) + 0.5;
            used += (size_t)sprintf(text + used, "%d.5%c", r * COLS + c,
                                    c + 1 < COLS ? ',' : '\n');
        }
    ck_assert_uint_gt(used / ROWS, 64 * 1024);
    const char *p = write_file("long.csv", PLAIN, text, used);
    expect_csv(__LINE__, p, AG_F64, false, ROWS, COLS, want);
    /* A bad field far into a long line. */
    text[used - 3] = 'x';
    p = write_file("long-bad.csv", PLAIN, text, used);
    ck_assert_ptr_null(ag_load_csv(arena, p, AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", "line 3, column 20000", "\"59999x5\"");
    free(want);
    free(text);
}
END_TEST

START_TEST(test_csv_bad_rows_and_fields)
{
    EXPECT_CSV_ERROR("1,2,3\n4,5,6\n7,8\n", AG_F64, false,
                     "line 3 has 2 columns, but the first row (line 1) has 3");
    EXPECT_CSV_ERROR("h\n\n1,2\n3,4,5\n", AG_F64, true,
                     "line 4 has 3 columns, but the first row (line 3) has 2");
    EXPECT_CSV_ERROR("1,abc\n", AG_F64, false,
                     "line 1, column 2: field \"abc\" is not a number");
    EXPECT_CSV_ERROR("1,2\n3,2x\n", AG_F32, false,
                     "line 2, column 2: field \"2x\" is not a number");
    EXPECT_CSV_ERROR("1, 2 3\n", AG_F64, false,
                     "field \"2 3\" is not a number");
    EXPECT_CSV_ERROR("1,\"2\"\n", AG_F64, false, "field \"\"2\"\"");
    EXPECT_CSV_ERROR("1,,2\n", AG_F64, false, "line 1, column 2: empty field");
    EXPECT_CSV_ERROR("1,2,\n", AG_F64, false, "line 1, column 3: empty field");
    EXPECT_CSV_ERROR("1,2\n , 3\n", AG_F64, false,
                     "line 2, column 1: empty field");
    EXPECT_CSV_ERROR("1;2\n", AG_F64, false, "field \"1;2\" is not a number");
    EXPECT_CSV_ERROR("1e999\n", AG_F64, false,
                     "field \"1e999\" is out of the f64 range");
    EXPECT_CSV_ERROR("1,1e39\n", AG_F32, false,
                     "column 2: field \"1e39\" is out of the f32 range");
    char long_field[200];
    memset(long_field, 'z', sizeof long_field - 1);
    long_field[sizeof long_field - 1] = '\0';
    EXPECT_CSV_ERROR(long_field, AG_F64, false,
                     "field \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...\"");
    const char nul[] = "1,2\n3,4\0 5\n";
    const char *p = write_file("nul.csv", PLAIN, nul, sizeof nul - 1);
    ck_assert_ptr_null(ag_load_csv(arena, p, AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", "line 2, column 2",
                   "field \"4\\x00 5\" is not a number");
}
END_TEST

/* A message quotes a bad field with its control characters (and
 * backslashes) escaped, at most 40 bytes of it. */
START_TEST(test_csv_field_escapes)
{
    EXPECT_CSV_ERROR("1,2\r3\n", AG_F64, false,
                     "column 2: field \"2\\r3\" is not a number");
    EXPECT_CSV_ERROR("1\t\x01\x7f\\\"e\x1b\n", AG_F64, false,
                     "field \"1\\t\\x01\\x7f\\\\\"e\\x1b\" is not a number");
    EXPECT_CSV_ERROR("2\n\r\r\n", AG_F64, false,
                     "line 2, column 1: field \"\\r\" is not a number");
    char text[64], want[256] = "field \"";
    memset(text, '\x02', 45);
    strcpy(text + 45, "\n");
    for (int i = 0; i < 40; i++) strcat(want, "\\x02");
    strcat(want, "...\" is not a number");
    EXPECT_CSV_ERROR(text, AG_F64, false, want);
    /* Bytes of UTF-8 text are quoted as they are. */
    EXPECT_CSV_ERROR("caf\xc3\xa9\n", AG_F64, false,
                     "field \"caf\xc3\xa9\" is not a number");
}
END_TEST

/* Values that round to FLT_MAX load as f32; those that round to an
 * infinity are out of its range. */
START_TEST(test_csv_f32_limits)
{
    double fits[6], overflows[4];
    f32_limits(fits, overflows);
    char text[256];
    snprintf(text, sizeof text,
             "%.17g,3.4028235e38,%.17g,%.17g,-3.4028235e38,%.17g\n", fits[0],
             fits[2], fits[3], fits[5]);
    const char *p = write_text("limits.csv", text);
    expect_csv(__LINE__, p, AG_F32, false, 1, 6, fits);
    expect_csv(__LINE__, p, AG_F64, false, 1, 6, fits);
    for (int k = 0; k < 4; k++) {
        char field[64], want[128];
        snprintf(field, sizeof field, "%.17g", overflows[k]);
        snprintf(text, sizeof text, "1,%s\n", field);
        snprintf(want, sizeof want,
                 "column 2: field \"%s\" is out of the f32 range", field);
        EXPECT_CSV_ERROR(text, AG_F32, false, want);
    }
}
END_TEST

/* A pipe or device cannot be read twice: refused up front, whatever it
 * would give. */
START_TEST(test_csv_not_regular)
{
    ck_assert_ptr_null(ag_load_csv(arena, "/dev/null", AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", "/dev/null", "is not a regular file");
    const char *fifo = tmp_path("fifo.csv");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* the writer: one good line */
        int fd = open(fifo, O_WRONLY);
        if (fd >= 0 && write(fd, "1,2\n", 4) == 4) close(fd);
        _exit(0);
    }
    ag_tensor *t = ag_load_csv(arena, fifo, AG_F64, false);
    /* Lets the writer's open return if the reader never opened the FIFO. */
    int fd = open(fifo, O_RDONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
    waitpid(pid, NULL, 0);
    ck_assert_ptr_null(t);
    EXPECT_MESSAGE("ag_load_csv", fifo, "is not a regular file");
}
END_TEST

START_TEST(test_csv_no_rows)
{
    EXPECT_CSV_ERROR("", AG_F64, false, "no data rows");
    EXPECT_CSV_ERROR("\n \n\r\n", AG_F64, false, "no data rows");
    EXPECT_CSV_ERROR("a,b\n\n", AG_F64, true, "no data rows after the header");
}
END_TEST

START_TEST(test_csv_i32)
{
    const char *p =
        write_text("i.csv", "1,-2\n2147483647,-2147483648\n1e3,0\n");
    EXPECT_CSV(p, AG_I32, false, 3, 2, 1, -2, INT32_MAX, INT32_MIN, 1000, 0);
    EXPECT_CSV_ERROR("1,2147483648\n", AG_I32, false,
                     "column 2: field \"2147483648\" is out of the i32 range");
    EXPECT_CSV_ERROR("-2147483649\n", AG_I32, false, "out of the i32 range");
    EXPECT_CSV_ERROR("1\n2.5\n", AG_I32, false,
                     "line 2, column 1: field \"2.5\" is not an integer");
    EXPECT_CSV_ERROR("nan\n", AG_I32, false, "field \"nan\" is not an integer");
}
END_TEST

START_TEST(test_csv_arguments)
{
    const char *missing = tmp_path("no-such.csv");
    ck_assert_ptr_null(ag_load_csv(arena, missing, AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", missing, "cannot open", strerror(ENOENT));
    ck_assert_ptr_null(ag_load_csv(arena, tmp_dir, AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", tmp_dir, strerror(EISDIR));
    ck_assert_ptr_null(ag_load_csv(NULL, missing, AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", "arena is NULL");
    ck_assert_ptr_null(ag_load_csv(arena, NULL, AG_F64, false));
    EXPECT_MESSAGE("ag_load_csv", "path is NULL");
    ck_assert_ptr_null(ag_load_csv(arena, missing, (ag_dtype)-1, false));
    EXPECT_MESSAGE("ag_load_csv", "unknown dtype -1");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Batcher                                                             */
/* ------------------------------------------------------------------ */

/* x (n, 2, 3) f32 with x[i] all equal to 100 i + j (j the element within
 * the row) and y (n) i32 labels y[i] = i: a batch row names its example. */
static void make_dataset(int64_t n, ag_tensor **x, ag_tensor **y)
{
    *x = ag_zeros(arena, AG_F32, 3, SHAPE(n, 2, 3));
    *y = ag_zeros(arena, AG_I32, 1, SHAPE(n));
    ck_assert_ptr_nonnull(*x);
    ck_assert_ptr_nonnull(*y);
    for (int64_t i = 0; i < n; i++) {
        ((int32_t *)ag_data(*y))[i] = (int32_t)i;
        for (int j = 0; j < 6; j++) tensor_set(*x, i * 6 + j, 100.0 * i + j);
    }
}

/* Runs one epoch of b, checking each batch's shape (sizes[k] rows) and that
 * its x and y rows belong together; writes the examples' order to `order`
 * and returns the number of batches. */
static int run_epoch(ag_batcher *b, ag_arena *step, const int64_t *sizes,
                     int64_t *order)
{
    int batches = 0;
    int64_t seen = 0;
    ag_tensor *bx, *by;
    int rc;
    while ((rc = ag_batcher_next(b, step, &bx, &by)) == 1) {
        int64_t rows = sizes[batches++];
        ck_assert_msg(ag_ndim(bx) == 3 && ag_shape(bx)[0] == rows &&
                          ag_shape(bx)[1] == 2 && ag_shape(bx)[2] == 3 &&
                          ag_type(bx) == AG_F32 && ag_ndim(by) == 1 &&
                          ag_shape(by)[0] == rows && ag_type(by) == AG_I32,
                      "batch %d: x or y is not of %lld rows", batches,
                      (long long)rows);
        for (int64_t r = 0; r < rows; r++) {
            int64_t label = (int64_t)tensor_at(by, r);
            for (int j = 0; j < 6; j++)
                if (tensor_at(bx, r * 6 + j) != 100.0 * label + j)
                    ck_abort_msg("row %lld of x is not example %lld's",
                                 (long long)r, (long long)label);
            order[seen++] = label;
        }
        ag_arena_reset(step);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_ptr_null(bx);
    ck_assert_ptr_null(by);
    return batches;
}

/* Checks that order[0..count) are distinct examples of [0, n). */
static void expect_distinct(const int64_t *order, int64_t count, int64_t n)
{
    char *seen = calloc((size_t)n, 1);
    ck_assert_ptr_nonnull(seen);
    for (int64_t i = 0; i < count; i++) {
        if (order[i] < 0 || order[i] >= n || seen[order[i]])
            ck_abort_msg("example %lld out of range or twice",
                         (long long)order[i]);
        seen[order[i]] = 1;
    }
    free(seen);
}

static bool same_order(const int64_t *a, const int64_t *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

START_TEST(test_batcher_epochs)
{
    ag_tensor *x, *y;
    make_dataset(20, &x, &y);
    ag_arena *step = ag_arena_new();
    ag_batcher *b = ag_batcher_new(arena, x, y, 6, true, 42, false);
    ck_assert_msg(b != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_batcher_count(b), 4);
    const int64_t sizes[] = {6, 6, 6, 2};
    int64_t orders[3][20], identity[20];
    for (int i = 0; i < 20; i++) identity[i] = i;
    size_t capacity = ag_arena_capacity(arena);
    for (int e = 0; e < 3; e++) {
        ck_assert_int_eq(run_epoch(b, step, sizes, orders[e]), 4);
        expect_distinct(orders[e], 20, 20);
        ck_assert(!same_order(orders[e], identity, 20));
    }
    ck_assert_uint_eq(ag_arena_capacity(arena), capacity);
    ck_assert(!same_order(orders[0], orders[1], 20));
    ck_assert(!same_order(orders[1], orders[2], 20));

    /* The same seed gives the same orders, another seed others. */
    ag_batcher *again = ag_batcher_new(arena, x, y, 6, true, 42, false);
    ag_batcher *other = ag_batcher_new(arena, x, y, 6, true, 43, false);
    int64_t order[20];
    for (int e = 0; e < 3; e++) {
        run_epoch(again, step, sizes, order);
        ck_assert(same_order(order, orders[e], 20));
        run_epoch(other, step, sizes, order);
        ck_assert(!same_order(order, orders[e], 20));
    }
    ag_arena_free(step);
}
END_TEST

START_TEST(test_batcher_no_shuffle_drop_last)
{
    ag_tensor *x, *y;
    make_dataset(10, &x, &y);
    ag_arena *step = ag_arena_new();
    int64_t order[10];
    ag_batcher *b = ag_batcher_new(arena, x, y, 4, false, 1, false);
    ck_assert_int_eq(ag_batcher_count(b), 3);
    for (int e = 0; e < 2; e++) {
        ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){4, 4, 2}, order),
                         3);
        for (int i = 0; i < 10; i++) ck_assert_int_eq(order[i], i);
    }
    b = ag_batcher_new(arena, x, y, 4, false, 1, true);
    ck_assert_int_eq(ag_batcher_count(b), 2);
    ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){4, 4}, order), 2);
    for (int i = 0; i < 8; i++) ck_assert_int_eq(order[i], i);
    b = ag_batcher_new(arena, x, y, 4, true, 5, true);
    for (int e = 0; e < 3; e++) {
        ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){4, 4}, order), 2);
        expect_distinct(order, 8, 10);
    }
    /* Batches that divide N: no partial batch to drop. */
    b = ag_batcher_new(arena, x, y, 5, true, 5, true);
    ck_assert_int_eq(ag_batcher_count(b), 2);
    ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){5, 5}, order), 2);
    expect_distinct(order, 10, 10);
    /* One batch of everything, and batches of one. */
    b = ag_batcher_new(arena, x, y, 64, true, 5, false);
    ck_assert_int_eq(ag_batcher_count(b), 1);
    ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){10}, order), 1);
    expect_distinct(order, 10, 10);
    b = ag_batcher_new(arena, x, y, 1, true, 5, false);
    ck_assert_int_eq(ag_batcher_count(b), 10);
    const int64_t ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(run_epoch(b, step, ones, order), 10);
    expect_distinct(order, 10, 10);
    ag_arena_free(step);
}
END_TEST

/* Batch sizes near INT64_MAX: one batch of everything, and a count that
 * does not overflow. */
START_TEST(test_batcher_huge_batch)
{
    ag_tensor *x, *y;
    make_dataset(10, &x, &y);
    ag_arena *step = ag_arena_new();
    const int64_t sizes[] = {INT64_MAX, INT64_MAX - 8, INT64_MAX / 2 + 1};
    for (int k = 0; k < COUNT(sizes); k++) {
        ag_batcher *b = ag_batcher_new(arena, x, y, sizes[k], false, 0, false);
        ck_assert_msg(b != NULL, "%s", ag_last_error());
        ck_assert_int_eq(ag_batcher_count(b), 1);
        int64_t order[10];
        ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){10}, order), 1);
        for (int i = 0; i < 10; i++) ck_assert_int_eq(order[i], i);
    }
    ag_arena_free(step);
}
END_TEST

/* Over many epochs of 3 examples, each of the 6 orders comes about equally
 * often (a biased shuffle, such as j drawn from [0, i), would not). */
START_TEST(test_batcher_shuffle_uniform)
{
    ag_tensor *x, *y;
    make_dataset(3, &x, &y);
    ag_arena *step = ag_arena_new();
    ag_batcher *b = ag_batcher_new(arena, x, y, 3, true, 7, false);
    int counts[3][3][3] = {{{0}}};
    enum { EPOCHS = 6000 };
    for (int e = 0; e < EPOCHS; e++) {
        ag_tensor *bx, *by, *end_x, *end_y;
        if (ag_batcher_next(b, step, &bx, &by) != 1 ||
            ag_batcher_next(b, step, &end_x, &end_y) != 0)
            ck_abort_msg("epoch %d is not one batch: %s", e, ag_last_error());
        const int32_t *o = ag_data(by);
        counts[o[0]][o[1]][o[2]]++;
        ag_arena_reset(step);
    }
    const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                             {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    /* 1000 expected each; the standard deviation is about 29. */
    for (int k = 0; k < 6; k++) {
        int c = counts[perms[k][0]][perms[k][1]][perms[k][2]];
        ck_assert_msg(c > 850 && c < 1150, "order %d%d%d came %d times",
                      perms[k][0], perms[k][1], perms[k][2], c);
    }
    ag_arena_free(step);
}
END_TEST

START_TEST(test_batcher_shapes)
{
    /* 1-D x, and a 2-D float y of targets. */
    ag_tensor *x = ag_arange(arena, AG_F64, 0, 7, 1);
    ag_tensor *y = ag_zeros(arena, AG_F64, 2, SHAPE(7, 2));
    for (int i = 0; i < 7; i++) {
        tensor_set(y, 2 * i, -i);
        tensor_set(y, 2 * i + 1, i * 0.5);
    }
    ag_batcher *b = ag_batcher_new(arena, x, y, 3, true, 9, false);
    ck_assert_ptr_nonnull(b);
    ag_tensor *bx, *by;
    int64_t total = 0;
    while (ag_batcher_next(b, arena, &bx, &by) == 1) {
        ck_assert_int_eq(ag_ndim(bx), 1);
        ck_assert_int_eq(ag_ndim(by), 2);
        ck_assert_int_eq(ag_shape(by)[0], ag_shape(bx)[0]);
        ck_assert_int_eq(ag_shape(by)[1], 2);
        ck_assert_int_eq(ag_type(by), AG_F64);
        for (int64_t r = 0; r < ag_shape(bx)[0]; r++) {
            double i = tensor_at(bx, r);
            ck_assert_double_eq(tensor_at(by, 2 * r), -i);
            ck_assert_double_eq(tensor_at(by, 2 * r + 1), i * 0.5);
        }
        total += ag_shape(bx)[0];
    }
    ck_assert_int_eq(total, 7);
}
END_TEST

START_TEST(test_batcher_errors)
{
    ag_tensor *x, *y;
    make_dataset(10, &x, &y);
    ag_tensor *y9 = ag_zeros(arena, AG_I32, 1, SHAPE(9));
    ag_tensor *scalar = ag_zeros(arena, AG_F32, 0, NULL);
    ag_tensor *empty_x = ag_zeros(arena, AG_F32, 2, SHAPE(0, 3));
    ag_tensor *empty_y = ag_zeros(arena, AG_I32, 1, SHAPE(0));
    ck_assert_ptr_null(ag_batcher_new(arena, NULL, y, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "x is NULL");
    ck_assert_ptr_null(ag_batcher_new(arena, x, NULL, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "y is NULL");
    ck_assert_ptr_null(ag_batcher_new(NULL, x, y, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "arena is NULL");
    ck_assert_ptr_null(ag_batcher_new(arena, x, y9, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "x has 10 examples, y has 9");
    ck_assert_ptr_null(ag_batcher_new(arena, scalar, y, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "x has no dimensions");
    ck_assert_ptr_null(ag_batcher_new(arena, x, scalar, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "y has no dimensions");
    ck_assert_ptr_null(ag_batcher_new(arena, x, y, 0, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "batch size must be >= 1, got 0");
    ck_assert_ptr_null(ag_batcher_new(arena, x, y, -3, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "got -3");
    ck_assert_ptr_null(
        ag_batcher_new(arena, empty_x, empty_y, 2, true, 0, false));
    EXPECT_MESSAGE("ag_batcher_new", "no examples");
    ck_assert_ptr_null(ag_batcher_new(arena, x, y, 11, true, 0, true));
    EXPECT_MESSAGE("ag_batcher_new", "batch size 11 with drop_last",
                   "10 examples");

    ag_batcher *b = ag_batcher_new(arena, x, y, 4, true, 0, false);
    ag_tensor *bx = x, *by = y;
    ck_assert_int_eq(ag_batcher_next(NULL, arena, &bx, &by), -1);
    EXPECT_MESSAGE("ag_batcher_next", "batcher is NULL");
    ck_assert_ptr_null(bx);
    ck_assert_ptr_null(by);
    ck_assert_int_eq(ag_batcher_next(b, NULL, &bx, &by), -1);
    EXPECT_MESSAGE("ag_batcher_next", "arena is NULL");
    ck_assert_int_eq(ag_batcher_next(b, arena, NULL, &by), -1);
    EXPECT_MESSAGE("ag_batcher_next", "bx is NULL");
    ck_assert_int_eq(ag_batcher_next(b, arena, &bx, NULL), -1);
    EXPECT_MESSAGE("ag_batcher_next", "by is NULL");
    ck_assert_int_eq(ag_batcher_count(NULL), 0);
    /* The failed calls did not move the cursor: a whole epoch follows. */
    ag_arena *step = ag_arena_new();
    int64_t order[10];
    ck_assert_int_eq(run_epoch(b, step, (const int64_t[]){4, 4, 2}, order), 3);
    expect_distinct(order, 10, 10);
    ag_arena_free(step);
}
END_TEST

static Suite *datasets_suite(void)
{
    Suite *s = suite_create("datasets");
    TCase *idx = tcase_create("idx");
    tcase_add_checked_fixture(idx, setup_arena, teardown_arena);
    tcase_add_test(idx, test_idx_round_trip);
    tcase_add_test(idx, test_idx_max_dims);
    tcase_add_test(idx, test_idx_many_chunks);
    tcase_add_test(idx, test_idx_bad_header);
    tcase_add_test(idx, test_idx_bad_sizes);
    tcase_add_test(idx, test_idx_float_as_i32);
    tcase_add_test(idx, test_idx_f64_overflows_f32);
    tcase_add_test(idx, test_idx_f32_limits);
    tcase_add_test(idx, test_idx_truncated_data);
    tcase_add_test(idx, test_idx_trailing_bytes);
    tcase_add_test(idx, test_idx_corrupt_gzip);
    tcase_add_test(idx, test_idx_gzip_garbage);
    tcase_add_test(idx, test_idx_arguments);
    suite_add_tcase(s, idx);
    TCase *csv = tcase_create("csv");
    tcase_add_checked_fixture(csv, setup_arena, teardown_arena);
    tcase_add_test(csv, test_csv_values);
    tcase_add_test(csv, test_csv_header_crlf_blank);
    tcase_add_test(csv, test_csv_long_lines);
    tcase_add_test(csv, test_csv_bad_rows_and_fields);
    tcase_add_test(csv, test_csv_field_escapes);
    tcase_add_test(csv, test_csv_f32_limits);
    tcase_add_test(csv, test_csv_not_regular);
    tcase_add_test(csv, test_csv_no_rows);
    tcase_add_test(csv, test_csv_i32);
    tcase_add_test(csv, test_csv_arguments);
    suite_add_tcase(s, csv);
    TCase *batch = tcase_create("batcher");
    tcase_add_checked_fixture(batch, setup_arena, teardown_arena);
    tcase_add_test(batch, test_batcher_epochs);
    tcase_add_test(batch, test_batcher_no_shuffle_drop_last);
    tcase_add_test(batch, test_batcher_huge_batch);
    tcase_add_test(batch, test_batcher_shuffle_uniform);
    tcase_add_test(batch, test_batcher_shapes);
    tcase_add_test(batch, test_batcher_errors);
    suite_add_tcase(s, batch);
    return s;
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_datasets_XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmp_dir, strerror(errno));
        return 1;
    }
    int status = run_suite(datasets_suite());
    remove_tmp_dir();
    return status;
}
