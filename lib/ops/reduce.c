/* reduce.c: sum, mean, max, min, logsumexp and var over a set of axes (one
 * axis, every axis with AG_ALL, or several at once as PyTorch's dim=(0, 2)),
 * with or without keepdim, and argmax (not differentiable) over one axis.
 *
 * Every reduction is one walk (reduce_walk): the input's axes, size-1 axes
 * dropped, are merged into groups of neighbours that are all reduced or all
 * kept; the last group is a row of the input, which either reduces to one
 * result element (row_reduced) or runs along a row of results. One axis is
 * then (outer, len, inner) as before: rows of len summed to a number, or
 * rows of inner added into a row of results. With L the number of elements
 * reduced into each result and y the result:
 *   sum:       y = sum x                 dx = g
 *   mean:      y = sum x / L             dx = g / L
 *   max, min:  y = x[arg]                dx = g at arg (the first extremum)
 *              or, splitting ties,       dx = g [x = y] / #(x = y)
 *   logsumexp: y = m + log sum e^(x - m) dx = g e^(x - y)
 *   var:       y = sum (x - mu)^2 / D    dx = g 2 (x - mu) / D
 * with m the maximum (0 when infinite), mu the mean and D = max(0, L -
 * correction). The JVP of each is the same reduction of the tangent
 * times the derivative: sum(tx), mean(tx), sum(tx at arg), sum(tx e^(x -
 * y)), sum(tx 2 (x - mu)) / D. */
#include "../internal.h"

#include <tgmath.h>

enum { SUM, MEAN, MAX, MIN, LOGSUMEXP, VAR };

typedef struct {
    unsigned axes; /* bit d set: axis d is reduced */
    bool keepdim;
    int correction;  /* var's: the divisor is L - correction */
    bool split_ties; /* max, min over a set of axes: ties share the
                        gradient equally (torch.amax, amin) */
} reduce_params;

/* What the derivatives read: max and min keep, for each result element,
 * the offset in x of the element it came from (and, splitting ties, how
 * many elements equal it); var keeps the means. */
typedef struct {
    int64_t *arg;
    void *count, *mean;
} reduce_saved;

/* The walk over x's elements in rows (see the top). For rows r = 0 ..
 * rows-1: the row is x[r * row_len ..], its results start at y[yoff]; then
 * call walk_next. */
typedef struct {
    int n; /* groups before the row */
    int64_t size[AG_MAX_DIMS], ystride[AG_MAX_DIMS], index[AG_MAX_DIMS];
    int64_t rows, row_len, yoff;
    bool row_reduced;
} reduce_walk;

static void walk_init(reduce_walk *w, const ag_tensor *x, unsigned axes)
{
    int64_t size[AG_MAX_DIMS];
    bool reduced[AG_MAX_DIMS];
    int groups = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1) continue;
        bool r = axes >> d & 1u;
        if (groups && reduced[groups - 1] == r) {
            size[groups - 1] *= x->shape[d];
        } else {
            size[groups] = x->shape[d];
            reduced[groups++] = r;
        }
    }
    if (groups == 0) { /* one element */
        size[0] = 1;
        reduced[groups++] = true;
    }
    int64_t stride = 1;
    w->n = groups - 1;
    w->rows = 1;
    for (int k = groups - 1; k >= 0; k--) {
        if (k < groups - 1) {
            w->size[k] = size[k];
            w->ystride[k] = reduced[k] ? 0 : stride;
            w->index[k] = 0;
            w->rows *= size[k];
        }
        if (!reduced[k]) stride *= size[k];
    }
    w->row_len = size[groups - 1];
    w->row_reduced = reduced[groups - 1];
    w->yoff = 0;
}

static void walk_next(reduce_walk *w)
{
    for (int k = w->n - 1; k >= 0; k--) {
        w->yoff += w->ystride[k];
        if (++w->index[k] < w->size[k]) return;
        w->yoff -= w->ystride[k] * w->size[k];
        w->index[k] = 0;
    }
}

/* Moves a walk just started (walk_init) to row `row`, as `row` calls of
 * walk_next would. */
static void walk_seek(reduce_walk *w, int64_t row)
{
    for (int k = w->n - 1; k >= 0 && row > 0; k--) {
        w->index[k] = row % w->size[k];
        row /= w->size[k];
        w->yoff += w->index[k] * w->ystride[k];
    }
}

/* The number of elements reduced into each result. */
static int64_t reduced_count(const ag_tensor *x, unsigned axes)
{
    int64_t len = 1;
    for (int d = 0; d < x->ndim; d++)
        if (axes >> d & 1u) len *= x->shape[d];
    return len;
}

/* y = sum over the axes of (x - center)^power / divisor, for power 1 (center
 * NULL) or 2 (center: one value per result); in double along rows that
 * reduce to one number, so long sums of floats stay accurate. */
static void sum_into(ag_dtype dt, const void *x_data, const ag_tensor *x,
                     unsigned axes, const void *center_data, void *y_data,
                     int64_t ny, double divisor)
{
    reduce_walk w;
    walk_init(&w, x, axes);
    AG_DISPATCH_FLOAT(dt, {
        const real *xv = x_data, *c = center_data;
        real *y = y_data;
        int64_t n = w.row_len;
        memset(y, 0, (size_t)ny * sizeof(real));
        for (int64_t r = 0; r < w.rows; r++, walk_next(&w)) {
            const real *restrict xr = xv + r * n;
            real *restrict yr = y + w.yoff;
            if (w.row_reduced) {
                double acc = 0;
                if (c) {
                    real m = c[w.yoff];
                    for (int64_t j = 0; j < n; j++)
                        acc += (double)((xr[j] - m) * (xr[j] - m));
                } else {
                    for (int64_t j = 0; j < n; j++) acc += xr[j];
                }
                yr[0] += (real)(acc / divisor);
            } else if (c) {
                const real *restrict cr = c + w.yoff;
                for (int64_t j = 0; j < n; j++)
                    yr[j] += (xr[j] - cr[j]) * (xr[j] - cr[j]);
            } else {
                for (int64_t j = 0; j < n; j++) yr[j] += xr[j];
            }
        }
        if (!w.row_reduced)
            for (int64_t i = 0; i < ny; i++) y[i] = (real)(y[i] / divisor);
    });
}

/* arg[i] = the offset in x of result i's first largest (is_min: smallest)
 * element, or of its first NaN; -1 for a result of no elements. */
static void extreme_into(const ag_tensor *x, unsigned axes, bool is_min,
                         int64_t *arg, int64_t ny)
{
    reduce_walk w;
    walk_init(&w, x, axes);
    for (int64_t i = 0; i < ny; i++) arg[i] = -1;
#define BETTER(v, b) ((is_min ? (v) < (b) : (v) > (b)) || isnan(v))
    AG_DISPATCH_FLOAT(x->dtype, {
        const real *xv = x->data;
        int64_t n = w.row_len;
        for (int64_t r = 0; r < w.rows; r++, walk_next(&w)) {
            const real *xr = xv + r * n;
            int64_t *ar = arg + w.yoff;
            if (w.row_reduced) {
                if (n == 0) continue;
                int64_t best = 0;
                for (int64_t j = 1; j < n && !isnan(xr[best]); j++)
                    if (BETTER(xr[j], xr[best])) best = j;
                if (ar[0] < 0 ||
                    (!isnan(xv[ar[0]]) && BETTER(xr[best], xv[ar[0]])))
                    ar[0] = r * n + best;
            } else {
                for (int64_t j = 0; j < n; j++)
                    if (ar[j] < 0 ||
                        (!isnan(xv[ar[j]]) && BETTER(xr[j], xv[ar[j]])))
                        ar[j] = r * n + j;
            }
        }
    });
#undef BETTER
}

/* Memory in out's arena for n elements of `size` bytes (an error naming
 * the op's function when there is none). */
static void *scratch(ag_tensor *out, int64_t n, size_t size)
{
    static const char *const func[] = {"ag_sum", "ag_mean",      "ag_max",
                                       "ag_min", "ag_logsumexp", "ag_var"};
    void *p = ag__arena_alloc(out->arena, (size_t)n * size + 1, 64);
    if (!p) ag__error(func[out->op->kind], "out of memory");
    return p;
}

static int reduce_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    const reduce_params *p = AG_PARAMS(out, reduce_params);
    reduce_saved *saved = AG_SAVED(out, reduce_saved);
    int64_t len = reduced_count(x, p->axes), ny = out->numel;
    size_t es = ag__dtype_size(out->dtype);
    int kind = out->op->kind;
    switch (kind) {
    case SUM:
    case MEAN:
        sum_into(out->dtype, x->data, x, p->axes, NULL, out->data, ny,
                 kind == MEAN ? (double)len : 1.0);
        return 0;
    case VAR: {
        double divisor = fmax(0.0, (double)len - p->correction);
        if (!(saved->mean = scratch(out, ny, es))) return -1;
        sum_into(out->dtype, x->data, x, p->axes, NULL, saved->mean, ny,
                 (double)len);
        sum_into(out->dtype, x->data, x, p->axes, saved->mean, out->data, ny,
                 divisor);
        return 0;
    }
    default: /* MAX, MIN, LOGSUMEXP */
        break;
    }
    int64_t *arg = scratch(out, ny, sizeof *arg);
    if (!arg) return -1;
    extreme_into(x, p->axes, kind == MIN, arg, ny);
    if (kind != LOGSUMEXP) {
        saved->arg = arg;
        if (p->split_ties && !(saved->count = scratch(out, ny, es))) return -1;
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *xv = x->data;
            real *y = out->data, *count = saved->count;
            for (int64_t i = 0; i < ny; i++) y[i] = xv[arg[i]];
            if (count) { /* count[o] = #(x = y[o]) */
                memset(count, 0, (size_t)ny * es);
                reduce_walk w;
                walk_init(&w, x, p->axes);
                int64_t n = w.row_len;
                for (int64_t r = 0; r < w.rows; r++, walk_next(&w))
                    for (int64_t j = 0; j < n; j++) {
                        int64_t o = w.yoff + (w.row_reduced ? 0 : j);
                        count[o] += xv[r * n + j] == y[o];
                    }
            }
        });
        return 0;
    }
    /* logsumexp: y = m + log sum e^(x - m), m the maximum or 0 where it
     * is infinite (or there is none) */
    void *sums = scratch(out, ny, es);
    if (!sums) return -1;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *xv = x->data;
        real *m = out->data, *s = sums;
        for (int64_t i = 0; i < ny; i++) {
            real v = arg[i] < 0 ? 0 : xv[arg[i]];
            m[i] = isinf(v) ? 0 : v;
            s[i] = 0;
        }
        reduce_walk w;
        walk_init(&w, x, p->axes);
        int64_t n = w.row_len;
        for (int64_t r = 0; r < w.rows; r++, walk_next(&w)) {
            const real *restrict xr = xv + r * n;
            real *restrict sr = s + w.yoff;
            const real *restrict mr = m + w.yoff;
            if (w.row_reduced) {
                real acc = 0;
                for (int64_t j = 0; j < n; j++) acc += exp(xr[j] - mr[0]);
                sr[0] += acc;
            } else {
                for (int64_t j = 0; j < n; j++) sr[j] += exp(xr[j] - mr[j]);
            }
        }
        for (int64_t i = 0; i < ny; i++) m[i] += log(s[i]);
    });
    return 0;
}

/* In reduce_backward_range: v (g, y or mu) for input element i of the
 * row part. */
#define AT(v) (w.row_reduced ? (v)[o] : (v)[o + i])

/* The backward's work: out, and its input's gradient buffer. */
typedef struct {
    const ag_tensor *out;
    void *dx;
    bool set; /* store into dx (unwritten) rather than add */
} backward_job;

/* The kernels of the table at the top for elements [lo, hi) of x (all but
 * max and min without split ties). Each element of dx is computed alone,
 * so a split over the threads gives the same bits as one loop. */
AG_KERNEL static void reduce_backward_range(void *job_ptr, int64_t lo,
                                            int64_t hi)
{
    const backward_job *job = job_ptr;
    const ag_tensor *out = job->out, *x = out->inputs[0];
    const reduce_params *p = AG_PARAMS(out, reduce_params);
    const reduce_saved *saved = AG_SAVED(out, reduce_saved);
    int kind = out->op->kind;
    bool set = job->set;
    int64_t len = reduced_count(x, p->axes);
    reduce_walk w;
    walk_init(&w, x, p->axes);
    int64_t rl = w.row_len;
    if (rl == 0) return;
    walk_seek(&w, lo / rl);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *xv = x->data, *g = out->grad->data, *y = out->data;
        const real *mu = saved->mean, *count = saved->count;
        real *dx = job->dx;
        /* the constant factor: 1 / L (mean), 2 / D (var), else 1 */
        real f = kind == MEAN ? (real)(1.0 / (double)len)
                 : kind == VAR
                     ? (real)(2.0 / fmax(0.0, (double)len - p->correction))
                     : 1;
        for (int64_t r = lo / rl; r * rl < hi; r++, walk_next(&w)) {
            /* the row's elements [j0, j0 + n) in the range */
            int64_t j0 = r * rl < lo ? lo - r * rl : 0;
            int64_t n = (hi - r * rl < rl ? hi - r * rl : rl) - j0;
            const real *restrict xr = xv + r * rl + j0;
            real *restrict dr = dx + r * rl + j0;
            /* g, y and mu of element i: one number for the row, or a row */
            int64_t o = w.yoff + (w.row_reduced ? 0 : j0);
            switch (kind) {
            case SUM:
            case MEAN:
                if (w.row_reduced) {
                    real gv = g[o] * f;
                    AG_GRAD_LOOP(set, n, dr, gv);
                } else {
                    AG_GRAD_LOOP(set, n, dr, g[o + i] * f);
                }
                break;
            case LOGSUMEXP:
                AG_GRAD_LOOP(set, n, dr, AT(g) * exp(xr[i] - AT(y)));
                break;
            case MAX: /* splitting ties: g [x = y] / #(x = y) */
            case MIN:
                AG_GRAD_LOOP(
                    set, n, dr,
                    AG_SELECT(xr[i] == AT(y), AT(g) / AT(count), (real)0));
                break;
            default: /* VAR */
                AG_GRAD_LOOP(set, n, dr, AT(g) * f * (xr[i] - AT(mu)));
                break;
            }
        }
    });
}
#undef AT

static int reduce_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    const reduce_params *p = AG_PARAMS(out, reduce_params);
    const reduce_saved *saved = AG_SAVED(out, reduce_saved);
    int kind = out->op->kind;
    if ((kind == MAX || kind == MIN) && !p->split_ties) { /* dx = g at arg */
        void *dx_data = ag__grad_accumulate(x);
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *g = out->grad->data;
            real *dx = dx_data;
            for (int64_t i = 0; i < out->numel; i++) dx[saved->arg[i]] += g[i];
        });
        return 0;
    }
    backward_job job = {out, NULL, false};
    job.dx = ag__grad_begin(x, &job.set);
    ag__parallel_for(x->numel, reduce_backward_range, &job);
    return 0;
}

static ag_tensor *reduce_mask(const char *func, const ag_op *op, ag_arena *a,
                              ag_tensor *x, unsigned axes, bool keepdim,
                              int correction, bool split_ties);

/* x's shape with the reduced axes kept as 1: the shape g is read in when
 * it is broadcast back over x. */
static void kept_shape(const ag_tensor *out, int64_t *shape)
{
    const ag_tensor *x = out->inputs[0];
    unsigned axes = AG_PARAMS(out, reduce_params)->axes;
    for (int d = 0; d < x->ndim; d++)
        shape[d] = axes >> d & 1u ? 1 : x->shape[d];
}

/* t reshaped to x's shape with the reduced axes kept as 1. */
static ag_tensor *kept(ag_arena *a, const ag_tensor *out, ag_tensor *t)
{
    int64_t shape[AG_MAX_DIMS];
    kept_shape(out, shape);
    return ag_reshape(a, t, out->inputs[0]->ndim, shape);
}

/* For max and min: a tensor without history of x's shape, 1 where the
 * saved arg picked an element, else 0. */
static ag_tensor *arg_mask(ag_arena *a, const ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    const int64_t *arg = AG_SAVED(out, reduce_saved)->arg;
    ag_tensor *m = ag__constant(a, x);
    if (m)
        AG_DISPATCH_FLOAT(x->dtype, {
            real *mv = m->data;
            memset(mv, 0, ag__tensor_bytes(m));
            for (int64_t i = 0; i < out->numel; i++) mv[arg[i]] = 1;
        });
    return m;
}

/* For max and min splitting ties: [x = y] / #(x = y), of x's shape,
 * without history. */
static ag_tensor *tie_mask(ag_arena *a, const ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    ag_tensor *m = ag__constant(a, x);
    if (!m) return NULL;
    reduce_walk w;
    walk_init(&w, x, AG_PARAMS(out, reduce_params)->axes);
    AG_DISPATCH_FLOAT(x->dtype, {
        const real *xv = x->data, *y = out->data;
        const real *count = AG_SAVED(out, reduce_saved)->count;
        real *mv = m->data;
        int64_t n = w.row_len;
        for (int64_t r = 0; r < w.rows; r++, walk_next(&w))
            for (int64_t j = 0; j < n; j++) {
                int64_t o = w.yoff + (w.row_reduced ? 0 : j);
                mv[r * n + j] = xv[r * n + j] == y[o] ? 1 / count[o] : 0;
            }
    });
    return m;
}

/* t * s, also for a scalar s that is not finite (ag_scale refuses one):
 * the factor 1 / L of a mean of no elements. */
static ag_tensor *times(ag_arena *a, ag_tensor *t, double s)
{
    if (!t || isfinite(s)) return t ? ag_scale(a, t, s) : NULL;
    ag_tensor *c = ag_zeros(a, t->dtype, 0, NULL);
    if (!c) return NULL;
    AG_DISPATCH_FLOAT(t->dtype, { *(real *)c->data = (real)s; });
    return ag_mul(a, t, c);
}

/* The derivative d(y)/dx (without g) as a tensor of x's shape, for
 * logsumexp (e^(x - y)), var (2 (x - mu) / D, mu recorded) and max and min
 * (the arg mask); NULL (with no error) for sum and mean, whose derivative
 * is a constant. */
static ag_tensor *derivative(ag_arena *a, ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    const reduce_params *p = AG_PARAMS(out, reduce_params);
    switch (out->op->kind) {
    case LOGSUMEXP: /* e^(x - y) */
        return ag_exp(a, ag_sub(a, x, kept(a, out, out)));
    case VAR: { /* 2 (x - mu) / D */
        double d = fmax(0.0, (double)reduced_count(x, p->axes) - p->correction);
        ag_tensor *mu =
            reduce_mask("ag_var", &ag__op_mean, a, x, p->axes, true, 0, false);
        return times(a, ag_sub(a, x, mu), 2.0 / d);
    }
    default: /* MAX, MIN */
        return p->split_ties ? tie_mask(a, out) : arg_mask(a, out);
    }
}

/* dx = expand(g kept) times 1/L (mean) or the derivative (the others) */
static int reduce_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    ag_tensor *x = out->inputs[0];
    int kind = out->op->kind;
    ag_tensor *gk = kept(a, out, g);
    if (kind == SUM || kind == MEAN) {
        ag_tensor *d = ag_expand(a, gk, x->ndim, x->shape);
        if (kind == MEAN)
            d = times(a, d,
                      1.0 / (double)reduced_count(
                                x, AG_PARAMS(out, reduce_params)->axes));
        AG_TRY(dx[0] = d);
        return 0;
    }
    AG_TRY(dx[0] = ag_mul(a, gk, derivative(a, out)));
    return 0;
}

/* sum: ty = sum(tx)   mean: ty = mean(tx)   others: ty = sum(tx * dy/dx) */
static int reduce_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                      ag_tensor **ty)
{
    const reduce_params *p = AG_PARAMS(out, reduce_params);
    ag_tensor *t = tx[0];
    const ag_op *op = &ag__op_sum;
    if (out->op->kind == MEAN)
        op = &ag__op_mean;
    else if (out->op->kind != SUM)
        t = ag_mul(a, t, derivative(a, out));
    /* named as the public function, as every error is (an anomaly in the
     * tangent of an empty mean, NaN, is reported from here) */
    const char *func = op == &ag__op_mean ? "ag_mean" : "ag_sum";
    AG_TRY(*ty = t ? reduce_mask(func, op, a, t, p->axes, p->keepdim, 0, false)
                   : NULL);
    return 0;
}

/* The reduction over the axes of the mask (checked), for every front. */
static ag_tensor *reduce_mask(const char *func, const ag_op *op, ag_arena *a,
                              ag_tensor *x, unsigned axes, bool keepdim,
                              int correction, bool split_ties)
{
    int64_t shape[AG_MAX_DIMS];
    int ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(axes >> d & 1u))
            shape[ndim++] = x->shape[d];
        else if (keepdim)
            shape[ndim++] = 1;
    reduce_params p = {axes, keepdim, correction,
                       split_ties && (op == &ag__op_max || op == &ag__op_min)};
    return ag__apply(func, a, op, 1, &x, x->dtype, ndim, shape, &p);
}

/* Refuses a maximum or minimum of no elements (as PyTorch), naming the
 * axes as the caller gave them (text). */
static int check_not_empty(const char *func, const ag_op *op,
                           const ag_tensor *x, unsigned axes, const char *what)
{
    if ((op != &ag__op_max && op != &ag__op_min) || reduced_count(x, axes) > 0)
        return 0;
    char buf[AG_SHAPE_STR_MAX];
    ag__shape_str(buf, x->ndim, x->shape);
    const char *name = op == &ag__op_max ? "maximum" : "minimum";
    if (!what)
        ag__error(func, "cannot take the %s of no elements, shape %s", name,
                  buf);
    else
        ag__error(func, "cannot take the %s of an empty %s of shape %s", name,
                  what, buf);
    return -1;
}

/* The front of the one-axis reductions: axis in [-ndim, ndim) or AG_ALL. */
static ag_tensor *reduce(const char *func, const ag_op *op, ag_arena *a,
                         ag_tensor *x, int axis, bool keepdim, int correction)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    unsigned axes = (1u << x->ndim) - 1;
    char what[32] = "";
    if (axis != AG_ALL) {
        int ax;
        if (ag__normalize_axis(func, axis, x, &ax)) return NULL;
        axes = 1u << ax;
        snprintf(what, sizeof what, "axis (%d)", axis);
    }
    if (check_not_empty(func, op, x, axes, axis == AG_ALL ? NULL : what))
        return NULL;
    return reduce_mask(func, op, a, x, axes, keepdim, correction, false);
}

/* The front of the reductions over several axes. */
static ag_tensor *reduce_axes(const char *func, const ag_op *op, ag_arena *a,
                              ag_tensor *x, int n_axes, const int *axes,
                              bool keepdim, int correction)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    char bx[AG_SHAPE_STR_MAX];
    ag__shape_str(bx, x->ndim, x->shape);
    if (n_axes < 1 || n_axes > x->ndim) {
        ag__error(func, "n_axes %d must be in [1, %d] for x %s", n_axes,
                  x->ndim, bx);
        return NULL;
    }
    if (!axes) {
        ag__error(func, "axes is NULL (n_axes %d)", n_axes);
        return NULL;
    }
    int64_t given[AG_MAX_DIMS];
    for (int i = 0; i < n_axes; i++) given[i] = axes[i];
    char ba[AG_SHAPE_STR_MAX], what[AG_SHAPE_STR_MAX + 16];
    ag__shape_str(ba, n_axes, given);
    snprintf(what, sizeof what, "set of axes %s", ba);
    unsigned mask = 0;
    for (int i = 0; i < n_axes; i++) {
        int ax;
        if (ag__normalize_axis(func, axes[i], x, &ax)) return NULL;
        if (mask >> ax & 1u) {
            ag__error(func, "axis %d appears twice in the axes %s of x %s", ax,
                      ba, bx);
            return NULL;
        }
        mask |= 1u << ax;
    }
    if (check_not_empty(func, op, x, mask, what)) return NULL;
    return reduce_mask(func, op, a, x, mask, keepdim, correction, true);
}

ag_tensor *ag_sum(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_sum", &ag__op_sum, a, x, axis, keepdim, 0);
}

ag_tensor *ag_mean(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_mean", &ag__op_mean, a, x, axis, keepdim, 0);
}

ag_tensor *ag_max(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_max", &ag__op_max, a, x, axis, keepdim, 0);
}

ag_tensor *ag_min(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_min", &ag__op_min, a, x, axis, keepdim, 0);
}

ag_tensor *ag_logsumexp(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_logsumexp", &ag__op_logsumexp, a, x, axis, keepdim, 0);
}

ag_tensor *ag_var(ag_arena *a, ag_tensor *x, int axis, bool keepdim,
                  int correction)
{
    return reduce("ag_var", &ag__op_var, a, x, axis, keepdim, correction);
}

ag_tensor *ag_sum_axes(ag_arena *a, ag_tensor *x, int n_axes, const int *axes,
                       bool keepdim)
{
    return reduce_axes("ag_sum_axes", &ag__op_sum, a, x, n_axes, axes, keepdim,
                       0);
}

ag_tensor *ag_mean_axes(ag_arena *a, ag_tensor *x, int n_axes, const int *axes,
                        bool keepdim)
{
    return reduce_axes("ag_mean_axes", &ag__op_mean, a, x, n_axes, axes,
                       keepdim, 0);
}

ag_tensor *ag_max_axes(ag_arena *a, ag_tensor *x, int n_axes, const int *axes,
                       bool keepdim)
{
    return reduce_axes("ag_max_axes", &ag__op_max, a, x, n_axes, axes, keepdim,
                       0);
}

ag_tensor *ag_min_axes(ag_arena *a, ag_tensor *x, int n_axes, const int *axes,
                       bool keepdim)
{
    return reduce_axes("ag_min_axes", &ag__op_min, a, x, n_axes, axes, keepdim,
                       0);
}

ag_tensor *ag_logsumexp_axes(ag_arena *a, ag_tensor *x, int n_axes,
                             const int *axes, bool keepdim)
{
    return reduce_axes("ag_logsumexp_axes", &ag__op_logsumexp, a, x, n_axes,
                       axes, keepdim, 0);
}

ag_tensor *ag_var_axes(ag_arena *a, ag_tensor *x, int n_axes, const int *axes,
                       bool keepdim, int correction)
{
    return reduce_axes("ag_var_axes", &ag__op_var, a, x, n_axes, axes, keepdim,
                       correction);
}

ag_tensor *ag_argmax(ag_arena *a, ag_tensor *x, int axis)
{
    const char *func = "ag_argmax";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    int ax;
    if (ag__normalize_axis(func, axis, x, &ax)) return NULL;
    int64_t outer, len, inner, shape[AG_MAX_DIMS];
    ag__split_axis(x, ax, &outer, &len, &inner);
    char buf[AG_SHAPE_STR_MAX];
    if (len == 0 || len > INT32_MAX) {
        ag__error(func, "axis %d of shape %s is %s", axis,
                  ag__shape_str(buf, x->ndim, x->shape),
                  len ? "too long for i32 indices" : "empty");
        return NULL;
    }
    for (int d = 0, k = 0; d < x->ndim; d++)
        if (d != ax) shape[k++] = x->shape[d];
    ag_tensor *out = ag__tensor_new(func, a, AG_I32, x->ndim - 1, shape, true);
    int64_t *arg =
        out ? ag__arena_alloc(a, (size_t)out->numel * sizeof *arg + 1, 16)
            : NULL;
    if (!arg) {
        if (out) ag__error(func, "out of memory");
        return NULL;
    }
    extreme_into(x, 1u << ax, false, arg, out->numel);
    int32_t *idx = out->data;
    for (int64_t i = 0; i < out->numel; i++)
        idx[i] = (int32_t)(arg[i] / inner % len);
    return out;
}

/* The op-table entries. */
#define REDUCE_OP(op_name, op_kind)                                            \
    {                                                                          \
        .name = op_name, .arity = 1, .kind = op_kind,                          \
        .params_size = sizeof(reduce_params),                                  \
        .saved_size = sizeof(reduce_saved), .forward = reduce_forward,         \
        .backward = reduce_backward, .vjp = reduce_vjp, .jvp = reduce_jvp      \
    }
const ag_op ag__op_sum = REDUCE_OP("sum", SUM);
const ag_op ag__op_mean = REDUCE_OP("mean", MEAN);
const ag_op ag__op_max = REDUCE_OP("max", MAX);
const ag_op ag__op_min = REDUCE_OP("min", MIN);
const ag_op ag__op_logsumexp = REDUCE_OP("logsumexp", LOGSUMEXP);
const ag_op ag__op_var = REDUCE_OP("var", VAR);
