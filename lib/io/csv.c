/* csv.c: ag_load_csv, the reader of CSV files of numbers. One parser runs
 * over the file twice: the first pass checks every field and counts the
 * rows, the second, once the tensor is allocated, stores the values. Lines
 * may be of any length: they are read with read() into one buffer that
 * grows to hold the longest (the reader's own, rather than stdio's and
 * getline's, so that all its memory comes from the library's allocator). */
#define _POSIX_C_SOURCE 200809L

#include "io.h"

#include <ctype.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define FUNC "ag_load_csv"

/* The byte order mark some programs put at the start of a UTF-8 file. */
#define UTF8_BOM "\xEF\xBB\xBF"

/* The first size of the line buffer. */
#define LINE_BYTES 4096

/* The state of one load. */
typedef struct {
    const char *path;
    ag_dtype dt;
    bool header;
    int fd;
    char *buf;              /* ag__malloc'd: lines read and read ahead */
    size_t cap, start, end; /* its size; the unread bytes are [start, end) */
    bool file_end;          /* read() found the end of the file */
    char *line;             /* the line being parsed, in buf, ended by '\0' */
    int64_t lineno;         /* of the line being parsed, from 1 */
    int64_t rows, cols;     /* data rows and columns, from the first pass */
    int64_t first_row;      /* line number of the first data row */
    ag_tensor *t;           /* NULL in the first pass */
} csv_reader;

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Reports a bad field, quoting (the start of) it. */
static int bad_field(const csv_reader *r, int64_t col, const char *s,
                     size_t len, const char *what)
{
    char quoted[AG_QUOTE_SIZE];
    ag__quote(quoted, s, len);
    ag__error(FUNC, "%s: line %lld, column %lld: field \"%s\" %s", r->path,
              (long long)r->lineno, (long long)col, quoted, what);
    return -1;
}

/* Parses the field [s, e) of column `col` (from 1) into *v and checks that
 * it fits r's dtype. */
static int parse_field(const csv_reader *r, int64_t col, const char *s,
                       const char *e, double *v)
{
    while (s < e && is_space(*s)) s++;
    while (e > s && is_space(e[-1])) e--;
    size_t len = (size_t)(e - s);
    if (!len) {
        ag__error(FUNC, "%s: line %lld, column %lld: empty field", r->path,
                  (long long)r->lineno, (long long)col);
        return -1;
    }
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (end != e || isspace((unsigned char)*s))
        return bad_field(r, col, s, len, "is not a number");
    bool overflow = errno == ERANGE && isinf(*v);
    if (r->dt == AG_F64 && overflow)
        return bad_field(r, col, s, len, "is out of the f64 range");
    if (r->dt == AG_F32 && (overflow || ag__f32_overflows(*v)))
        return bad_field(r, col, s, len, "is out of the f32 range");
    if (r->dt == AG_I32 && *v != floor(*v))
        return bad_field(r, col, s, len, "is not an integer (dtype i32)");
    if (r->dt == AG_I32 && (*v < INT32_MIN || *v > INT32_MAX))
        return bad_field(r, col, s, len, "is out of the i32 range");
    return 0;
}

/* Stores v as element i of r's tensor. */
static void store(csv_reader *r, int64_t i, double v)
{
    if (r->dt == AG_I32)
        ((int32_t *)r->t->data)[i] = (int32_t)v;
    else
        AG_DISPATCH_FLOAT(r->dt, { ((real *)r->t->data)[i] = (real)v; });
}

/* Parses the data row `row` held in line[0, len); in the second pass also
 * stores it. Returns its column count, or -1. */
static int64_t parse_row(csv_reader *r, int64_t row, size_t len)
{
    const char *p = r->line, *end = r->line + len;
    int64_t col = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *field_end = comma ? comma : end;
        double v;
        if (parse_field(r, col + 1, p, field_end, &v)) return -1;
        if (r->t && row < r->rows && col < r->cols)
            store(r, row * r->cols + col, v);
        col++;
        if (!comma) return col;
        p = comma + 1;
    }
}

/* The length of the line without its "\n" or "\r\n", or 0 when it holds
 * nothing but spaces. */
static size_t content_length(const char *line, size_t len)
{
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    for (size_t i = 0; i < len; i++)
        if (!is_space(line[i])) return len;
    return 0;
}

/* Checks that data row `row` (of `cols` columns) matches the first. */
static int check_row(csv_reader *r, int64_t row, int64_t cols)
{
    if (row == 0 && !r->t) {
        r->cols = cols;
        r->first_row = r->lineno;
    }
    if (cols == r->cols && (!r->t || row < r->rows)) return 0;
    if (cols == r->cols)
        ag__error(FUNC, "%s: line %lld: the file changed while being read",
                  r->path, (long long)r->lineno);
    else
        ag__error(FUNC,
                  "%s: line %lld has %lld columns, but the first row (line "
                  "%lld) has %lld",
                  r->path, (long long)r->lineno, (long long)cols,
                  (long long)r->first_row, (long long)r->cols);
    return -1;
}

/* Makes room in r's buffer for more bytes after the unread ones: moves
 * them to the start, and grows the buffer when they fill it (one byte is
 * kept for the '\0' after a last line without a newline). */
static int make_room(csv_reader *r)
{
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
    if (r->end + 1 < r->cap) return 0;
    char *grown =
        r->cap <= SIZE_MAX / 2 ? ag__realloc(r->buf, 2 * r->cap) : NULL;
    if (!grown)
        return ag__file_error(FUNC, r->path,
                              "out of memory for line %lld (over %zu bytes)",
                              (long long)r->lineno + 1, r->end);
    r->buf = grown;
    r->cap *= 2;
    return 0;
}

/* Reads the next line into r->line (without its newline, ended by '\0')
 * and its length into *len. Returns 1, 0 at the end of the file, or -1
 * and an error. */
static int next_line(csv_reader *r, size_t *len)
{
    for (;;) {
        char *s = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(s, '\n', avail);
        if (nl || (r->file_end && avail)) {
            *len = nl ? (size_t)(nl - s) : avail;
            s[*len] = '\0'; /* the newline, or the byte kept for it */
            r->start += *len + (nl != NULL);
            r->line = s;
            return 1;
        }
        if (r->file_end) return 0;
        if (make_room(r)) return -1;
        ssize_t got;
        do got = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return ag__file_syserror(FUNC, r->path, errno,
                                     "read error after line %lld",
                                     (long long)r->lineno);
        r->file_end = got == 0;
        r->end += (size_t)got;
    }
}

/* Checks the row count at the end of a pass; the first pass sets it. */
static int check_rows(csv_reader *r, int64_t rows)
{
    if (!r->t) r->rows = rows;
    if (r->t && rows != r->rows) {
        ag__error(FUNC, "%s: the file changed while being read", r->path);
        return -1;
    }
    if (rows == 0) {
        ag__error(FUNC, "%s: no data rows%s", r->path,
                  r->header ? " after the header" : "");
        return -1;
    }
    return 0;
}

/* One pass over the file: checks (and, in the second pass, stores) every
 * data row; the first pass sets rows, cols and first_row. */
static int read_pass(csv_reader *r)
{
    if (lseek(r->fd, 0, SEEK_SET) < 0)
        return ag__file_syserror(FUNC, r->path, errno,
                                 "cannot seek back to the start");
    r->start = r->end = 0;
    r->file_end = false;
    r->lineno = 0;
    bool skip_header = r->header;
    int64_t row = 0;
    size_t got = 0;
    int more;
    while ((more = next_line(r, &got)) > 0) {
        r->lineno++;
        if (r->lineno == 1 && got >= 3 && !memcmp(r->line, UTF8_BOM, 3)) {
            got -= 3;
            r->line += 3;
        }
        size_t len = content_length(r->line, got);
        if (!len) continue;
        if (skip_header) {
            skip_header = false;
            continue;
        }
        int64_t cols = parse_row(r, row, len);
        if (cols < 0 || check_row(r, row, cols)) return -1;
        row++;
    }
    return more < 0 ? -1 : check_rows(r, row);
}

/* Checks the file in a first pass, then allocates the tensor in `a` and
 * fills it in a second. */
static ag_tensor *read_both(csv_reader *r, ag_arena *a)
{
    if (read_pass(r)) return NULL;
    r->t =
        ag__tensor_new(FUNC, a, r->dt, 2, (int64_t[]){r->rows, r->cols}, true);
    return r->t && !read_pass(r) ? r->t : NULL;
}

/* read_both with numbers read in the C locale (a '.' before the decimals),
 * whatever locale the program set; only this thread's locale changes, and
 * only while the file is read. newlocale allocates: it counts as one of the
 * library's allocations (ag__alloc_fails). */
static ag_tensor *read_in_c_locale(csv_reader *r, ag_arena *a)
{
    locale_t c_numeric = ag__alloc_fails()
                             ? (errno = ENOMEM, (locale_t)0)
                             : newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c_numeric) {
        ag__file_syserror(FUNC, r->path, errno, "cannot make the C locale");
        return NULL;
    }
    locale_t previous = uselocale(c_numeric);
    ag_tensor *t = read_both(r, a);
    uselocale(previous);
    freelocale(c_numeric);
    return t;
}

ag_tensor *ag_load_csv(ag_arena *a, const char *path, ag_dtype dt, bool header)
{
    if (ag__check_reader_args(FUNC, a, path, dt)) return NULL;
    struct stat st;
    int fd = ag__open_read(FUNC, path, &st);
    if (fd < 0) return NULL;
    csv_reader r = {.path = path, .dt = dt, .header = header, .fd = fd};
    ag_tensor *t = NULL;
    if (!S_ISREG(st.st_mode))
        ag__file_error(FUNC, path,
                       "is not a regular file (the reader reads it twice, "
                       "which a pipe or device does not allow)");
    else if (!(r.buf = ag__malloc(LINE_BYTES)))
        ag__file_error(FUNC, path, "out of memory for the line buffer");
    else {
        r.cap = LINE_BYTES;
        t = read_in_c_locale(&r, a);
    }
    ag__free(r.buf);
    close(fd);
    return t;
}
