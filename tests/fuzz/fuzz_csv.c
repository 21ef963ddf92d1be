/* fuzz_csv.c: libFuzzer harness for ag_load_csv. The first input byte picks
 * the options (bit 0: header; bits 1-2: dtype f32, f64, i32 or an unknown
 * one); the rest is the file.
 *
 * Checked on every input: no crash or leak; a failure says why
 * (ag_last_error names ag_load_csv); and, against a reader of the harness's
 * own written from the documentation in autograd/io.h (lines split at
 * "\n", "\r\n" endings (a last line's "\r" too), blank lines and a leading
 * UTF-8 byte order mark skipped, the header line skipped, fields split at
 * commas, spaces and tabs around them trimmed, the rest read whole by strtod,
 * range checks per dtype), a file loads exactly when that reader accepts it,
 * with the same shape and values. Seeds: corpus/fuzz_csv
 * (tests/fuzz/make_corpus.py). */
#define _GNU_SOURCE /* memmem */
#include "fuzz.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* The harness's reading of the file: its shape and values, or !ok. */
typedef struct {
    bool ok;
    int64_t rows, cols;
    double *values; /* malloc'd, rows * cols */
    size_t cap;
} csv_ref;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads the field [s, e) as dt into *v; false when it is not accepted. */
static bool ref_field(const char *s, const char *e, ag_dtype dt, double *v)
{
    while (s < e && is_blank(*s)) s++;
    while (e > s && is_blank(e[-1])) e--;
    if (s == e || memchr(s, '\0', (size_t)(e - s))) return false;
    char *buf = strndup(s, (size_t)(e - s)), *end;
    FUZZ_CHECK(buf, "out of memory");
    errno = 0;
    *v = strtod(buf, &end);
    bool overflow = errno == ERANGE && isinf(*v);
    bool whole = !*end && (unsigned char)buf[0] > ' ';
    free(buf);
    if (!whole) return false;
    if (dt == AG_F64) return !overflow;
    if (dt == AG_F32)
        return !overflow && !(isfinite(*v) && fabs(*v) >= 0x1.ffffffp127);
    return *v == floor(*v) && *v >= INT32_MIN && *v <= INT32_MAX;
}

/* Reads one data line [s, e) into r; false when it is not accepted. */
static bool ref_row(csv_ref *r, const char *s, const char *e, ag_dtype dt)
{
    int64_t cols = 0;
    for (const char *p = s;; cols++) {
        const char *comma = memchr(p, ',', (size_t)(e - p));
        const char *f = comma ? comma : e;
        if (r->rows * r->cols + cols + 1 > (int64_t)r->cap) {
            r->cap = 2 * r->cap + 16;
            r->values = realloc(r->values, r->cap * sizeof *r->values);
            FUZZ_CHECK(r->values, "out of memory");
        }
        if (!ref_field(p, f, dt, &r->values[r->rows * r->cols + cols]))
            return false;
        if (!comma) break;
        p = comma + 1;
    }
    cols++;
    if (r->rows == 0) r->cols = cols;
    if (cols != r->cols) return false;
    r->rows++;
    return true;
}

static csv_ref ref_read(const char *s, size_t n, bool header, ag_dtype dt)
{
    csv_ref r = {0};
    if (dt != AG_F32 && dt != AG_F64 && dt != AG_I32) return r;
    const char *end = s + n;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end, *next = nl ? nl + 1 : end;
        if (e > s && e[-1] == '\r') e--; /* also at the end of the file */
        const char *c = s;
        while (c < e && is_blank(*c)) c++;
        if (c < e && header) {
            header = false;
        } else if (c < e && !ref_row(&r, s, e, dt)) {
            return r;
        }
        s = next;
    }
    r.ok = r.rows > 0;
    return r;
}

/* Checks a loaded tensor against the harness's reading. */
static void check_tensor(const ag_tensor *t, const csv_ref *r, ag_dtype dt)
{
    FUZZ_CHECK(r->ok, "loaded a file that the harness refuses");
    FUZZ_CHECK(ag_type(t) == dt && ag_ndim(t) == 2 &&
                   ag_shape(t)[0] == r->rows && ag_shape(t)[1] == r->cols,
               "shape (%lld,%lld), want (%lld,%lld)", (long long)ag_shape(t)[0],
               (long long)ag_shape(t)[1], (long long)r->rows,
               (long long)r->cols);
    for (int64_t i = 0; i < r->rows * r->cols; i++)
        fuzz_check_element(t, i, r->values[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ag_dtype dtypes[] = {AG_F32, AG_F64, AG_I32, (ag_dtype)-1};
    uint8_t sel = size ? data[0] : 0;
    const char *text = size ? (const char *)data + 1 : "";
    size_t n = size ? size - 1 : 0;
    bool header = sel & 1;
    ag_dtype dt = dtypes[(sel >> 1) & 3];
    ag_arena *a = ag_arena_new();
    ag_clear_error();
    ag_tensor *t = ag_load_csv(a, fuzz_file(text, n), dt, header);
    csv_ref r = ref_read(text, n, header, dt);
    fuzz_trace("%s", t ? "loaded" : ag_last_error());
    if (t) {
        check_tensor(t, &r, dt);
    } else {
        fuzz_check_error("ag_load_csv");
        FUZZ_CHECK(!r.ok, "a file the harness reads did not load");
    }
    free(r.values);
    ag_arena_free(a);
    return 0;
}
