/* idx.c: ag_load_idx, the reader of IDX files (the format MNIST and
 * Fashion-MNIST ship in), gzipped or plain. The header is checked whole
 * before the tensor is allocated; the data is then read through zlib in
 * fixed chunks and converted straight into the tensor, so memory stays at
 * the tensor's size whatever the file's size. */
#define _POSIX_C_SOURCE 200809L

#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FUNC "ag_load_idx"

/* Elements per read, and the bytes they take at most (8 per element). */
#define CHUNK_ELEMS 8192
#define CHUNK_BYTES (CHUNK_ELEMS * 8)

/* Deflate expands one byte of compressed data to at most this many. */
#define DEFLATE_MAX_RATIO 1032

/* An element type of the IDX format: its code, name and size in bytes. */
typedef struct {
    unsigned char code;
    const char *name;
    size_t size;
    bool integer;
} idx_type;

static const idx_type idx_types[] = {
    {0x08, "u8", 1, true},  {0x09, "i8", 1, true},   {0x0B, "i16", 2, true},
    {0x0C, "i32", 4, true}, {0x0D, "f32", 4, false}, {0x0E, "f64", 8, false},
};

static const idx_type *find_type(unsigned char code)
{
    for (size_t i = 0; i < sizeof idx_types / sizeof *idx_types; i++)
        if (idx_types[i].code == code) return &idx_types[i];
    return NULL;
}

/* The state of one load: the path for messages, the stream, and how big
 * the file is on disk (-1 when it is not a regular file). */
typedef struct {
    const char *path;
    gzFile gz;
    int64_t disk_size;
} idx_reader;

/* zlib's message for the stream's error, without the "<fd:N>: " prefix
 * that gzerror puts before it. */
static const char *gz_reason(gzFile gz, int *errnum)
{
    const char *msg = gzerror(gz, errnum);
    if (*errnum == Z_ERRNO) return strerror(errno);
    const char *sep = strstr(msg, ": ");
    return sep ? sep + 2 : msg;
}

/* Reads up to n bytes (n <= INT_MAX); returns how many it got (fewer only
 * at the end of the data), or -1 after reporting a read or gzip error. */
static int64_t read_bytes(idx_reader *r, void *buf, size_t n)
{
    int got = gzread(r->gz, buf, (unsigned)n);
    if (got >= 0) return got;
    int errnum;
    const char *why = gz_reason(r->gz, &errnum);
    if (errnum == Z_ERRNO)
        ag__error(FUNC, "%s: read error: %s", r->path, why);
    else
        ag__error(FUNC, "%s: corrupt gzip stream: %s", r->path, why);
    return -1;
}

/* Reports that the data ended after `got` of `want` bytes. */
static void report_truncated(idx_reader *r, uint64_t want, uint64_t got)
{
    int errnum;
    gzerror(r->gz, &errnum);
    ag__error(FUNC,
              "%s: truncated data: expected %llu bytes of data, got %llu%s",
              r->path, (unsigned long long)want, (unsigned long long)got,
              errnum == Z_BUF_ERROR ? " (the gzip stream ends early)" : "");
}

/* Opens path for reading through zlib (which reads a file that is not
 * gzipped as it is) and notes its size on disk. */
static int open_reader(idx_reader *r, const char *path)
{
    *r = (idx_reader){.path = path, .disk_size = -1};
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        ag__error(FUNC, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        ag__error(FUNC, "%s: cannot open: %s", path, strerror(EISDIR));
        close(fd);
        return -1;
    }
    if (S_ISREG(st.st_mode)) r->disk_size = st.st_size;
    r->gz = gzdopen(fd, "rb");
    if (!r->gz) {
        ag__error(FUNC, "%s: cannot open: out of memory", path);
        close(fd);
        return -1;
    }
    gzbuffer(r->gz, 1 << 16);
    return 0;
}

/* The header: element type and shape, checked. */
typedef struct {
    const idx_type *type;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    uint64_t data_bytes;
} idx_header;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Reads `n` header bytes or reports the header as truncated. */
static int read_header_bytes(idx_reader *r, unsigned char *buf, size_t n,
                             size_t offset)
{
    int64_t got = read_bytes(r, buf, n);
    if (got < 0) return -1;
    if ((size_t)got < n) {
        ag__error(FUNC, "%s: truncated header: expected %zu bytes, got %zu",
                  r->path, offset + n, offset + (size_t)got);
        return -1;
    }
    return 0;
}

/* Reads and checks the first four bytes: two zero bytes, the element type
 * (which must be an integer one for AG_I32) and the dimension count. */
static int read_magic(idx_reader *r, ag_dtype dt, idx_header *h)
{
    unsigned char m[4];
    if (read_header_bytes(r, m, 4, 0)) return -1;
    if (m[0] || m[1]) {
        ag__error(FUNC,
                  "%s: bad magic bytes 0x%02x 0x%02x 0x%02x 0x%02x (an IDX "
                  "file starts with 0x00 0x00, a type and a dimension count)",
                  r->path, m[0], m[1], m[2], m[3]);
        return -1;
    }
    h->type = find_type(m[2]);
    if (!h->type) {
        ag__error(FUNC, "%s: unknown element type 0x%02x", r->path, m[2]);
        return -1;
    }
    if (dt == AG_I32 && !h->type->integer) {
        ag__error(FUNC,
                  "%s: the file holds %s values, which cannot be read "
                  "as i32",
                  r->path, h->type->name);
        return -1;
    }
    h->ndim = m[3];
    if (h->ndim < 1 || h->ndim > AG_MAX_DIMS) {
        ag__error(FUNC, "%s: %d dimensions; need 1 to %d", r->path, h->ndim,
                  AG_MAX_DIMS);
        return -1;
    }
    return 0;
}

/* Reads the sizes and checks that none is 0 and that the element count and
 * the byte counts of the file's data and of the tensor fit. */
static int read_sizes(idx_reader *r, ag_dtype dt, idx_header *h)
{
    unsigned char sizes[4 * AG_MAX_DIMS];
    if (read_header_bytes(r, sizes, 4 * (size_t)h->ndim, 4)) return -1;
    int64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < h->ndim; d++) {
        h->shape[d] = be32(sizes + 4 * d);
        overflow |= __builtin_mul_overflow(numel, h->shape[d], &numel);
    }
    char buf[AG_SHAPE_STR_MAX];
    const char *shape = ag__shape_str(buf, h->ndim, h->shape);
    for (int d = 0; d < h->ndim; d++)
        if (h->shape[d] == 0) {
            ag__error(FUNC, "%s: dimension %d of shape %s has size 0", r->path,
                      d, shape);
            return -1;
        }
    size_t widest =
        h->type->size > ag__dtype_size(dt) ? h->type->size : ag__dtype_size(dt);
    if (overflow || (uint64_t)numel > (uint64_t)INT64_MAX / widest ||
        (uint64_t)numel > SIZE_MAX / widest) {
        ag__error(FUNC, "%s: shape %s is too large: its %s overflows", r->path,
                  shape, overflow ? "element count" : "byte count");
        return -1;
    }
    h->data_bytes = (uint64_t)numel * h->type->size;
    return 0;
}

/* Checks, before allocating, that the file on disk can hold the data the
 * header promises: exactly for a plain file, within deflate's largest
 * expansion for a gzipped one. */
static int check_disk_size(idx_reader *r, const idx_header *h)
{
    if (r->disk_size < 0) return 0;
    uint64_t header = 4 + 4 * (uint64_t)h->ndim;
    uint64_t disk = (uint64_t)r->disk_size;
    if (gzdirect(r->gz)) {
        /* Trailing bytes are reported after the data is read. */
        if (disk < header || disk - header >= h->data_bytes) return 0;
        ag__error(FUNC,
                  "%s: truncated data: expected %llu bytes of data, got %llu",
                  r->path, (unsigned long long)h->data_bytes,
                  (unsigned long long)(disk - header));
        return -1;
    }
    if (disk > UINT64_MAX / DEFLATE_MAX_RATIO ||
        disk * DEFLATE_MAX_RATIO >= h->data_bytes)
        return 0;
    ag__error(FUNC,
              "%s: truncated data: expected %llu bytes of data, more than a "
              "gzip file of %llu bytes can hold",
              r->path, (unsigned long long)h->data_bytes,
              (unsigned long long)disk);
    return -1;
}

/* Decodes n big-endian elements of type `code` from src into v. */
static void decode(unsigned char code, const unsigned char *src, size_t n,
                   double *v)
{
    switch (code) {
    case 0x08:
        for (size_t i = 0; i < n; i++) v[i] = src[i];
        break;
    case 0x09:
        for (size_t i = 0; i < n; i++) v[i] = (int)(src[i] ^ 0x80u) - 0x80;
        break;
    case 0x0B:
        for (size_t i = 0; i < n; i++) {
            unsigned u = (unsigned)src[2 * i] << 8 | src[2 * i + 1];
            v[i] = (int)(u ^ 0x8000u) - 0x8000;
        }
        break;
    case 0x0C:
        for (size_t i = 0; i < n; i++)
            v[i] = (int64_t)(be32(src + 4 * i) ^ 0x80000000u) - 0x80000000LL;
        break;
    case 0x0D:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = be32(src + 4 * i);
            float f;
            memcpy(&f, &u, sizeof f);
            v[i] = f;
        }
        break;
    default: /* 0x0E */
        for (size_t i = 0; i < n; i++) {
            uint64_t u =
                (uint64_t)be32(src + 8 * i) << 32 | be32(src + 8 * i + 4);
            double d;
            memcpy(&d, &u, sizeof d);
            v[i] = d;
        }
        break;
    }
}

/* Stores n values into t from element `at` on. Values are exact in every
 * dtype the header check allowed, except f64 values beyond f32's range. */
static int store(idx_reader *r, ag_tensor *t, int64_t at, const double *v,
                 size_t n)
{
    if (t->dtype == AG_I32) {
        int32_t *out = (int32_t *)t->data + at;
        for (size_t i = 0; i < n; i++) out[i] = (int32_t)v[i];
        return 0;
    }
    if (t->dtype == AG_F32)
        for (size_t i = 0; i < n; i++)
            if (isfinite(v[i]) && fabs(v[i]) > FLT_MAX) {
                ag__error(FUNC, "%s: value %g of element %lld overflows f32",
                          r->path, v[i], (long long)at + (long long)i);
                return -1;
            }
    AG_DISPATCH_FLOAT(t->dtype, {
        real *out = (real *)t->data + at;
        for (size_t i = 0; i < n; i++) out[i] = (real)v[i];
    });
    return 0;
}

/* Reads the next n elements into t from element `at` on. */
static int read_chunk(idx_reader *r, const idx_header *h, ag_tensor *t,
                      int64_t at, size_t n, unsigned char *raw, double *values)
{
    size_t want = n * h->type->size;
    int64_t got = read_bytes(r, raw, want);
    if (got < 0) return -1;
    if ((size_t)got < want) {
        report_truncated(r, h->data_bytes,
                         (uint64_t)at * h->type->size + (uint64_t)got);
        return -1;
    }
    decode(h->type->code, raw, n, values);
    return store(r, t, at, values, n);
}

/* Reads the data into t chunk by chunk, then checks that nothing follows
 * it (which also makes zlib check the gzip trailer's CRC and length). */
static int read_data(idx_reader *r, const idx_header *h, ag_tensor *t)
{
    unsigned char *raw = malloc(CHUNK_BYTES + CHUNK_ELEMS * sizeof(double));
    if (!raw) {
        ag__error(FUNC, "%s: out of memory for the read buffer", r->path);
        return -1;
    }
    double *values = (double *)(raw + CHUNK_BYTES);
    int rc = 0;
    for (int64_t at = 0; at < t->numel && !rc; at += CHUNK_ELEMS) {
        int64_t left = t->numel - at;
        size_t n = left < CHUNK_ELEMS ? (size_t)left : CHUNK_ELEMS;
        rc = read_chunk(r, h, t, at, n, raw, values);
    }
    int64_t got = 0;
    uint64_t trailing = 0;
    while (!rc && (got = read_bytes(r, raw, CHUNK_BYTES)) > 0)
        trailing += (uint64_t)got;
    if (got < 0) rc = -1;
    if (!rc && trailing) {
        ag__error(FUNC, "%s: %llu trailing bytes after the %llu bytes of data",
                  r->path, (unsigned long long)trailing,
                  (unsigned long long)h->data_bytes);
        rc = -1;
    }
    free(raw);
    return rc;
}

ag_tensor *ag_load_idx(ag_arena *a, const char *path, ag_dtype dt)
{
    if (ag__check_reader_args(FUNC, a, path, dt)) return NULL;
    idx_reader r;
    if (open_reader(&r, path)) return NULL;
    idx_header h;
    ag_tensor *t = NULL;
    if (!read_magic(&r, dt, &h) && !read_sizes(&r, dt, &h) &&
        !check_disk_size(&r, &h))
        t = ag__tensor_new(FUNC, a, dt, h.ndim, h.shape, true);
    if (t && read_data(&r, &h, t)) t = NULL;
    gzclose(r.gz);
    return t;
}
