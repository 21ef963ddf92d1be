/* idx.c: ag_load_idx, the reader of IDX files (the format MNIST and
 * Fashion-MNIST ship in), gzipped or plain. The header is checked whole
 * before the tensor is allocated; the data is then read in fixed chunks,
 * inflated by zlib when the file starts with gzip's magic bytes, and
 * converted straight into the tensor, so memory stays at the tensor's size
 * whatever the file's size. The reader drives zlib's inflate itself rather
 * than gzread, so that it sees where each gzip member ends: bytes after the
 * last one that are not gzip are reported (gzread skips them). */
#define _POSIX_C_SOURCE 200809L

#include "io.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FUNC "ag_load_idx"

/* Elements per read, and the bytes they take at most (8 per element). */
#define CHUNK_ELEMS 8192
#define CHUNK_BYTES (CHUNK_ELEMS * 8)

/* Bytes read from the file at a time. */
#define IN_BYTES (1 << 16)

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

/* The state of one load: the path for messages, the file, how big it is on
 * disk (-1 when it is not a regular file), and for a gzip file the inflate
 * stream and where it stands. zs.next_in and zs.avail_in are the unread
 * bytes of `in` in both kinds of file. */
typedef struct {
    const char *path;
    int fd;
    int64_t disk_size;
    uint64_t raw_read; /* bytes read from the file so far */
    bool gzip;         /* the file starts with gzip's magic bytes */
    bool inflating;    /* zs is initialised */
    bool in_member;    /* inside a gzip member, before the end of its trailer */
    bool file_end;     /* read() found the end of the file */
    bool ended;        /* the gzip stream has ended (cut, garbage or not) */
    bool cut;          /* ... inside a member: the file ends early */
    bool garbage;      /* ... followed by bytes that are not gzip */
    z_stream zs;
    unsigned char *in; /* IN_BYTES (ag__malloc'd) */
} idx_reader;

/* Moves the unread input to the start of the buffer and reads more after
 * it (one read; nothing once the file has ended). Returns 0, or -1 and an
 * error. */
static int fill(idx_reader *r)
{
    z_stream *zs = &r->zs;
    if (r->file_end || zs->avail_in == IN_BYTES) return 0;
    memmove(r->in, zs->next_in, zs->avail_in);
    zs->next_in = r->in;
    ssize_t got;
    do got = read(r->fd, r->in + zs->avail_in, IN_BYTES - zs->avail_in);
    while (got < 0 && errno == EINTR);
    if (got < 0) return ag__file_syserror(FUNC, r->path, errno, "read error");
    r->file_end = got == 0;
    zs->avail_in += (uInt)got;
    r->raw_read += (uint64_t)got;
    return 0;
}

/* Whether the unread input starts with gzip's magic bytes, reading what it
 * takes to know. Returns 1 or 0, or -1 and an error. */
static int at_gzip_magic(idx_reader *r)
{
    while (r->zs.avail_in < 2 && !r->file_end)
        if (fill(r)) return -1;
    return r->zs.avail_in >= 2 && r->zs.next_in[0] == 0x1f &&
           r->zs.next_in[1] == 0x8b;
}

/* Reports zlib's error rc on the stream; returns -1. */
static int gzip_error(idx_reader *r, int rc)
{
    if (rc == Z_MEM_ERROR)
        return ag__file_error(FUNC, r->path,
                              "out of memory for the gzip stream");
    return ag__file_error(FUNC, r->path, "corrupt gzip stream: %s",
                          r->zs.msg ? r->zs.msg : zError(rc));
}

/* Between gzip members: starts the next one, or ends the stream at the end
 * of the file or at bytes that are not gzip (which gzread would skip). */
static int next_member(idx_reader *r)
{
    int magic = at_gzip_magic(r);
    if (magic < 0) return -1;
    if (!magic) {
        r->ended = true;
        r->garbage = r->zs.avail_in > 0;
        return 0;
    }
    r->in_member = true;
    int rc = inflateReset(&r->zs);
    return rc == Z_OK ? 0 : gzip_error(r, rc);
}

/* Inflates up to n bytes into buf, across gzip members. */
static int64_t read_gzip(idx_reader *r, unsigned char *buf, size_t n)
{
    z_stream *zs = &r->zs;
    zs->next_out = buf;
    zs->avail_out = (uInt)n;
    while (zs->avail_out && !r->ended) {
        if (!r->in_member) {
            if (next_member(r)) return -1;
            continue;
        }
        if (!zs->avail_in && fill(r)) return -1;
        if (!zs->avail_in) {
            r->ended = r->cut = true;
            break;
        }
        int rc = inflate(zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            r->in_member = false;
        else if (rc != Z_OK && !(rc == Z_BUF_ERROR && !zs->avail_in))
            return gzip_error(r, rc); /* with input and room: no stall */
    }
    return (int64_t)(n - zs->avail_out);
}

/* Copies up to n bytes of a plain file into buf. */
static int64_t read_plain(idx_reader *r, unsigned char *buf, size_t n)
{
    z_stream *zs = &r->zs;
    size_t got = 0;
    while (got < n) {
        if (!zs->avail_in && fill(r)) return -1;
        if (!zs->avail_in) break; /* the end of the file */
        size_t k = n - got < zs->avail_in ? n - got : zs->avail_in;
        memcpy(buf + got, zs->next_in, k);
        zs->next_in += k;
        zs->avail_in -= (uInt)k;
        got += k;
    }
    return (int64_t)got;
}

/* Reads up to n bytes (n <= CHUNK_BYTES) of the data, inflated for a gzip
 * file; returns how many it got (fewer only at the end of the data), or -1
 * after reporting a read or gzip error. */
static int64_t read_bytes(idx_reader *r, void *buf, size_t n)
{
    return r->gzip ? read_gzip(r, buf, n) : read_plain(r, buf, n);
}

/* Why the data ended early, for messages: "" or " (...)". */
static const char *why_short(const idx_reader *r)
{
    return r->cut       ? " (the gzip stream ends early)"
           : r->garbage ? " (the gzip stream ends, followed by bytes that "
                          "are not gzip)"
                        : "";
}

/* Reports that the data ended after `got` of `want` bytes. */
static void report_truncated(idx_reader *r, uint64_t want, uint64_t got)
{
    ag__file_error(FUNC, r->path,
                   "truncated data: expected %llu bytes of data, got %llu%s",
                   (unsigned long long)want, (unsigned long long)got,
                   why_short(r));
}

/* zlib's allocator: the library's, so that its allocations can be made to
 * fail in tests like every other. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return ag__calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    ag__free(p);
}

/* Opens path and notes its size on disk; a file that starts with gzip's
 * magic bytes is inflated, any other is read as it is. close_reader frees
 * what r holds, also after a failure. */
static int open_reader(idx_reader *r, const char *path)
{
    *r = (idx_reader){.path = path, .fd = -1, .disk_size = -1};
    struct stat st;
    r->fd = ag__open_read(FUNC, path, &st);
    if (r->fd < 0) return -1;
    if (S_ISREG(st.st_mode)) r->disk_size = st.st_size;
    r->in = ag__malloc(IN_BYTES);
    if (!r->in)
        return ag__file_error(FUNC, path, "out of memory for the read buffer");
    r->zs.next_in = r->in;
    r->zs.zalloc = z_alloc;
    r->zs.zfree = z_free;
    int magic = at_gzip_magic(r);
    if (magic <= 0) return magic;
    r->gzip = true;
    int rc = inflateInit2(&r->zs, 16 + MAX_WBITS); /* gzip only */
    if (rc != Z_OK) return gzip_error(r, rc);
    r->inflating = true;
    return 0;
}

static void close_reader(idx_reader *r)
{
    if (r->inflating) inflateEnd(&r->zs);
    ag__free(r->in);
    if (r->fd >= 0) close(r->fd);
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
    if ((size_t)got < n)
        return ag__file_error(FUNC, r->path,
                              "truncated header: expected %zu bytes, got %zu%s",
                              offset + n, offset + (size_t)got, why_short(r));
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
    if (!r->gzip) {
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

/* Stores n values into t from element `at` on, converted by C's rules:
 * into i32 exactly (only integer element types, which fit, are read as
 * i32); into f32 and f64 rounded to nearest, which changes i32 values
 * beyond 2^24 and f64 values read as f32 (an f64 value that would round to
 * an infinity in f32 is an error instead). */
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
            if (ag__f32_overflows(v[i]))
                return ag__file_error(FUNC, r->path,
                                      "value %.9g of element %lld overflows "
                                      "f32",
                                      v[i], (long long)at + (long long)i);
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

/* Reports trailing bytes: what follows the data (got bytes of it read, at
 * most a chunk), or else bytes after the gzip stream that are not gzip.
 * Plain and gzip counts are exact when the file's size tells them. */
static int report_trailing(idx_reader *r, const idx_header *h, int64_t got)
{
    uint64_t disk = r->disk_size < 0 ? 0 : (uint64_t)r->disk_size;
    uint64_t used = 4 + 4 * (uint64_t)h->ndim + h->data_bytes, n;
    bool exact;
    if (got) {
        exact = !r->gzip && disk >= used + (uint64_t)got;
        n = exact ? disk - used : (uint64_t)got;
        exact |= got < CHUNK_BYTES;
    } else { /* the garbage starts at the unread input */
        uint64_t start = r->raw_read - r->zs.avail_in;
        exact = r->disk_size >= 0 && disk >= r->raw_read;
        n = exact ? disk - start : r->zs.avail_in;
    }
    if (got)
        return ag__file_error(FUNC, r->path,
                              "%s%llu trailing bytes after the %llu bytes of "
                              "data",
                              exact ? "" : "at least ", (unsigned long long)n,
                              (unsigned long long)h->data_bytes);
    return ag__file_error(FUNC, r->path,
                          "%s%llu trailing bytes after the gzip stream (they "
                          "are not gzip data)",
                          exact ? "" : "at least ", (unsigned long long)n);
}

/* Checks that nothing follows the data, reading at most one more chunk, so
 * that a small gzip file cannot make it inflate gigabytes of trailing
 * bytes. For a gzip file this also makes zlib check the trailer (CRC and
 * length) of the last member, and finds bytes after it that are not gzip. */
static int check_end(idx_reader *r, const idx_header *h, unsigned char *buf)
{
    int64_t got = read_bytes(r, buf, CHUNK_BYTES);
    if (got < 0) return -1;
    if (got || r->garbage) return report_trailing(r, h, got);
    if (r->cut)
        return ag__file_error(FUNC, r->path,
                              "the gzip stream ends early, after the %llu "
                              "bytes of data",
                              (unsigned long long)h->data_bytes);
    return 0;
}

/* Reads the data into t chunk by chunk, then checks that nothing follows
 * it. */
static int read_data(idx_reader *r, const idx_header *h, ag_tensor *t)
{
    unsigned char *raw = ag__malloc(CHUNK_BYTES + CHUNK_ELEMS * sizeof(double));
    if (!raw)
        return ag__file_error(FUNC, r->path,
                              "out of memory for the read buffer");
    double *values = (double *)(raw + CHUNK_BYTES);
    int rc = 0;
    for (int64_t at = 0; at < t->numel && !rc; at += CHUNK_ELEMS) {
        int64_t left = t->numel - at;
        size_t n = left < CHUNK_ELEMS ? (size_t)left : CHUNK_ELEMS;
        rc = read_chunk(r, h, t, at, n, raw, values);
    }
    if (!rc) rc = check_end(r, h, raw);
    ag__free(raw);
    return rc;
}

ag_tensor *ag_load_idx(ag_arena *a, const char *path, ag_dtype dt)
{
    if (ag__check_reader_args(FUNC, a, path, dt)) return NULL;
    idx_reader r;
    idx_header h;
    ag_tensor *t = NULL;
    if (!open_reader(&r, path) && !read_magic(&r, dt, &h) &&
        !read_sizes(&r, dt, &h) && !check_disk_size(&r, &h))
        t = ag__tensor_new(FUNC, a, dt, h.ndim, h.shape, true);
    if (t && read_data(&r, &h, t)) t = NULL;
    close_reader(&r);
    return t;
}
