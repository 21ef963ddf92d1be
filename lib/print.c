/* print.c: ag_print and ag_snprint, a tensor shown as PyTorch's repr shows
 * it (torch/_tensor_str.py with its default print options: precision 4,
 * edgeitems 3, linewidth 80; the threshold is the caller's):
 *
 *   tensor([[ 0.1000, -2.0000],
 *           [ 3.0000,  4.0000]])
 *
 * One formatter is chosen for the whole tensor (from the elements shown,
 * when it is summarised), as _Formatter does: integers for i32; for floats
 * "integer mode" ("3.") when every finite nonzero value is an integer,
 * scientific notation when max/min of their magnitudes is over 1000, the
 * largest over 1e8 or (not in integer mode) the smallest under 1e-4, and
 * else fixed point with 4 decimals; every value right-aligned to the widest
 * finite nonzero one. Rows wrap at 80 columns; a tensor of more elements
 * than the threshold shows the first and last 3 of every axis with "..."
 * between them. The text is built in memory and written at once, so that a
 * failure writes nothing. */
#include "internal.h"

#include <math.h>
#include <stdarg.h>

#define PRINT_PRECISION 4
#define PRINT_EDGEITEMS 3
#define PRINT_LINEWIDTH 80

/* ---- a growing string on the heap ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool failed; /* out of memory: the rest is dropped */
} text;

static void put_bytes(text *t, const char *s, size_t n)
{
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = ag__realloc(t->s, cap);
        if (!p) {
            t->failed = true;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = '\0';
}

static void put(text *t, const char *s)
{
    put_bytes(t, s, strlen(s));
}

static void put_spaces(text *t, int n)
{
    for (int i = 0; i < n; i++) put_bytes(t, " ", 1);
}

/* ---- the formatter (torch's _Formatter) ---- */

typedef struct {
    bool floating; /* f32 or f64; else i32 */
    bool int_mode; /* floats that are all integers: "3." */
    bool sci_mode; /* "1.0000e-05" */
    int max_width; /* every value is right-aligned to this */
} formatter;

/* One value's text, unpadded, in buf (at least 64 bytes): for floats
 * "nan", "inf" and "-inf" as Python writes them in every mode. */
static int format_plain(const formatter *f, double v, char *buf)
{
    if (!f->floating) return sprintf(buf, "%d", (int)v);
    if (isnan(v)) return sprintf(buf, "nan");
    if (f->sci_mode) return sprintf(buf, "%.*e", PRINT_PRECISION, v);
    if (f->int_mode) return sprintf(buf, isinf(v) ? "%.0f" : "%.0f.", v);
    return sprintf(buf, "%.*f", PRINT_PRECISION, v);
}

/* The value right-aligned to the formatter's width. */
static void put_value(text *t, const formatter *f, double v)
{
    char buf[64];
    int n = format_plain(f, v, buf);
    put_spaces(t, f->max_width - n);
    put_bytes(t, buf, (size_t)n);
}

/* What is being printed: the tensor, and whether it is summarised. */
typedef struct {
    const ag_tensor *t;
    bool summarize;
    int64_t stride[AG_MAX_DIMS]; /* row-major element strides */
} printing;

/* Whether index i of an axis of `size` is shown: all are unless the tensor
 * is summarised and the axis is longer than twice the edge items. */
static bool shown(const printing *p, int64_t size, int64_t i)
{
    return !p->summarize || size <= 2 * PRINT_EDGEITEMS ||
           i < PRINT_EDGEITEMS || i >= size - PRINT_EDGEITEMS;
}

/* Statistics of the values shown, for choosing the formatter. */
typedef struct {
    int64_t nonzero_finite;
    double min_abs, max_abs; /* of the finite nonzero values */
    bool all_integers;       /* every finite nonzero value is one */
} value_stats;

/* Calls fn on every element shown, from axis `dim` on at offset. The
 * axes skipped in the middle are jumped over, not walked. */
static void each_shown(const printing *p, int dim, int64_t offset,
                       void (*fn)(double v, void *user), void *user)
{
    if (dim == p->t->ndim) {
        fn(ag__element(p->t, offset), user);
        return;
    }
    int64_t size = p->t->shape[dim];
    for (int64_t i = 0; i < size; i++) {
        if (!shown(p, size, i)) i = size - PRINT_EDGEITEMS;
        each_shown(p, dim + 1, offset + i * p->stride[dim], fn, user);
    }
}

static void gather_stats(double v, void *user)
{
    value_stats *s = user;
    if (!isfinite(v) || v == 0) return;
    double a = fabs(v);
    if (s->nonzero_finite++ == 0) s->min_abs = s->max_abs = a;
    s->min_abs = fmin(s->min_abs, a);
    s->max_abs = fmax(s->max_abs, a);
    if (v != ceil(v)) s->all_integers = false;
}

/* The widest text of a value that counts for the width: for floats the
 * finite nonzero ones, in integer mode one column more (the "."). */
static void widen(double v, void *user)
{
    formatter *f = user;
    if (f->floating && (!isfinite(v) || v == 0)) return;
    char buf[64];
    int n = format_plain(f, v, buf);
    if (n > f->max_width) f->max_width = n;
}

static formatter make_formatter(const printing *p)
{
    formatter f = {.floating = p->t->dtype != AG_I32,
                   .int_mode = true,
                   .sci_mode = false,
                   .max_width = 1};
    if (f.floating) {
        value_stats s = {.all_integers = true};
        each_shown(p, 0, 0, gather_stats, &s);
        if (s.nonzero_finite == 0) return f; /* nothing to measure */
        f.int_mode = s.all_integers;
        f.sci_mode = s.max_abs / s.min_abs > 1000.0 || s.max_abs > 1.0e8 ||
                     (!f.int_mode && s.min_abs < 1.0e-4);
    }
    each_shown(p, 0, 0, widen, &f);
    return f;
}

/* ---- the nested rows (_tensor_str_with_formatter, _vector_str) ---- */

/* Axis `dim` (the last) at offset: the values, wrapped so that a line
 * holds (linewidth - indent) / (width + 2) of them. */
static void put_vector(text *t, const printing *p, const formatter *f, int dim,
                       int64_t offset, int indent)
{
    int per_line = (PRINT_LINEWIDTH - indent) / (f->max_width + 2);
    if (per_line < 1) per_line = 1;
    int64_t size = p->t->shape[dim], item = 0;
    put(t, "[");
    for (int64_t i = 0; i < size; i++, item++) {
        if (item > 0) {
            if (item % per_line == 0) {
                put(t, ",\n");
                put_spaces(t, indent + 1);
            } else {
                put(t, ", ");
            }
        }
        if (!shown(p, size, i)) {
            put(t, " ...");
            i = size - PRINT_EDGEITEMS - 1;
            continue;
        }
        put_value(t, f, ag__element(p->t, offset + i * p->stride[dim]));
    }
    put(t, "]");
}

/* Axis `dim` on at offset, indented by `indent` columns: sub-tensors
 * separated by a comma, as many newlines as axes remain below, and the
 * indent. */
static void put_tensor(text *t, const printing *p, const formatter *f, int dim,
                       int64_t offset, int indent)
{
    int ndim = p->t->ndim;
    if (dim == ndim) { /* 0-d */
        put_value(t, f, ag__element(p->t, offset));
        return;
    }
    if (dim == ndim - 1) {
        put_vector(t, p, f, dim, offset, indent);
        return;
    }
    int64_t size = p->t->shape[dim];
    put(t, "[");
    for (int64_t i = 0; i < size; i++) {
        if (i > 0) {
            put(t, ",");
            for (int k = dim + 1; k < ndim; k++) put(t, "\n");
            put_spaces(t, indent + 1);
        }
        if (!shown(p, size, i)) {
            put(t, "...");
            i = size - PRINT_EDGEITEMS - 1;
            continue;
        }
        put_tensor(t, p, f, dim + 1, offset + i * p->stride[dim], indent + 1);
    }
    put(t, "]");
}

/* ---- the whole repr (_str_intern, _add_suffixes) ---- */

/* Appends the suffixes (dtype=..., requires_grad=...) after the values: on
 * the same line while it stays within the line width, else on a new line
 * indented as the values. */
static void put_suffixes(text *t, int n, char suffixes[][64], int indent)
{
    const char *last_newline = strrchr(t->s ? t->s : "", '\n');
    size_t last_line =
        t->s ? t->len - (last_newline ? (size_t)(last_newline - t->s) + 1 : 0)
             : 0;
    size_t line_len = last_line + 2; /* as torch counts it */
    for (int i = 0; i < n; i++) {
        size_t len = strlen(suffixes[i]);
        if (line_len + len + 2 > PRINT_LINEWIDTH) {
            put(t, ",\n");
            put_spaces(t, indent);
            line_len = (size_t)indent + len;
        } else {
            put(t, ", ");
            line_len += len + 2;
        }
        put(t, suffixes[i]);
    }
    put(t, ")");
}

/* The repr of t into out (out->s NULL-terminated unless out->failed). */
static void tensor_repr(text *out, const ag_tensor *t, int64_t threshold)
{
    static const char prefix[] = "tensor(";
    const int indent = (int)sizeof prefix - 1;
    printing p = {.t = t, .summarize = threshold >= 0 && t->numel > threshold};
    for (int d = t->ndim - 1; d >= 0; d--)
        p.stride[d] = d == t->ndim - 1 ? 1 : p.stride[d + 1] * t->shape[d + 1];

    char suffixes[4][64];
    int n = 0;
    put(out, prefix);
    if (t->numel == 0) {
        put(out, "[]");
        if (t->ndim != 1) { /* the shape, as a Python tuple */
            int len = snprintf(suffixes[n], 64, "size=(");
            for (int d = 0; d < t->ndim && len < 48; d++)
                len += snprintf(suffixes[n] + len, (size_t)(64 - len),
                                d ? ", %lld" : "%lld", (long long)t->shape[d]);
            snprintf(suffixes[n] + len, (size_t)(64 - len), ")");
            n++;
        }
    } else {
        formatter f = make_formatter(&p);
        put_tensor(out, &p, &f, 0, 0, indent);
    }
    if (t->dtype != AG_F32)
        snprintf(suffixes[n++], 64, "dtype=torch.%s",
                 t->dtype == AG_F64 ? "float64" : "int32");
    if (t->op)
        snprintf(suffixes[n++], 64, "grad_fn=<%.40s>", t->op->name);
    else if (t->requires_grad)
        snprintf(suffixes[n++], 64, "requires_grad=True");
    put_suffixes(out, n, suffixes, indent);
}

/* t's text into *out (with a newline when asked), or false and the
 * out-of-memory error of `fn` with out->s freed. */
static bool render(text *out, const ag_tensor *t, int64_t threshold,
                   bool newline, const char *fn)
{
    tensor_repr(out, t, threshold);
    if (newline) put(out, "\n");
    if (!out->failed) return true;
    ag__free(out->s);
    ag__error(fn, "out of memory for the text of a tensor of %lld elements",
              (long long)t->numel);
    return false;
}

int64_t ag_snprint(char *buf, size_t size, const ag_tensor *t,
                   int64_t threshold)
{
    if (!t) return -1;
    if (!buf && size > 0) {
        ag__error("ag_snprint", "the buffer is NULL but its size is %zu", size);
        return -1;
    }
    text out = {0};
    if (!render(&out, t, threshold, false, "ag_snprint")) return -1;
    if (size > 0) {
        size_t n = out.len < size - 1 ? out.len : size - 1;
        memcpy(buf, out.s, n);
        buf[n] = '\0';
    }
    int64_t len = (int64_t)out.len;
    ag__free(out.s);
    return len;
}

int ag_print(const ag_tensor *t, FILE *f, int64_t threshold)
{
    if (!t) return -1;
    if (!f) {
        ag__error("ag_print", "the FILE is NULL");
        return -1;
    }
    text out = {0};
    if (!render(&out, t, threshold, true, "ag_print")) return -1;
    size_t written = fwrite(out.s, 1, out.len, f);
    ag__free(out.s);
    if (written != out.len) {
        ag__error("ag_print", "writing failed after %zu of %zu bytes", written,
                  out.len);
        return -1;
    }
    return 0;
}
