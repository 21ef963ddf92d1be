/* binary.c: elementwise add, sub, mul, div, maximum and minimum with NumPy
 * broadcasting, where(cond, x, y) over three broadcast inputs, and the
 * broadcast iterator that matmul's batch dimensions use too.
 *
 * Broadcasting aligns shapes at the right; a size-1 (or missing) dimension
 * of an input is read with stride 0. The backward of each op adds its
 * contribution through the same strides, so a broadcast input's gradient is
 * the sum over the dimensions it was stretched along. */
#include "../internal.h"

#include <tgmath.h>

int ag__broadcast_shape(const char *func, const ag_tensor *x,
                        const ag_tensor *y, int skip, int *ndim, int64_t *shape)
{
    int nx = x->ndim - skip, ny = y->ndim - skip;
    int n = nx > ny ? nx : ny;
    for (int d = 0; d < n; d++) {
        int64_t sx = d < n - nx ? 1 : x->shape[d - (n - nx)];
        int64_t sy = d < n - ny ? 1 : y->shape[d - (n - ny)];
        if (sx != sy && sx != 1 && sy != 1) {
            char bx[AG_SHAPE_STR_MAX], by[AG_SHAPE_STR_MAX];
            ag__error(func, "shapes %s and %s do not broadcast%s",
                      ag__shape_str(bx, x->ndim, x->shape),
                      ag__shape_str(by, y->ndim, y->shape),
                      skip ? " in their batch dimensions" : "");
            return -1;
        }
        shape[d] = sx == 1 ? sy : sx;
    }
    *ndim = n;
    return 0;
}

void ag__broadcast_strides(const ag_tensor *t, int skip, int64_t unit, int ndim,
                           int64_t *strides)
{
    int nt = t->ndim - skip;
    int64_t stride = unit;
    for (int d = ndim - 1; d >= 0; d--) {
        int td = d - (ndim - nt);
        if (td < 0 || t->shape[td] == 1) {
            strides[d] = 0;
        } else {
            strides[d] = stride;
        }
        if (td >= 0) stride *= t->shape[td];
    }
}

void ag__bcast_init(ag_bcast *it, const ag_tensor *x, const ag_tensor *y,
                    int skip, int64_t unit_x, int64_t unit_y, int ndim,
                    const int64_t *shape)
{
    int64_t sx[AG_MAX_DIMS], sy[AG_MAX_DIMS];
    ag__broadcast_strides(x, skip, unit_x, ndim, sx);
    ag__broadcast_strides(y, skip, unit_y, ndim, sy);
    /* Merge neighbouring dimensions that both inputs step through evenly
     * (same shapes become one long row) and drop dimensions of size 1. */
    it->ndim = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        int k = it->ndim - 1;
        if (k >= 0 && it->stride[0][k] == sx[d] * shape[d] &&
            it->stride[1][k] == sy[d] * shape[d]) {
            it->shape[k] *= shape[d];
            it->stride[0][k] = sx[d];
            it->stride[1][k] = sy[d];
            continue;
        }
        it->shape[++k] = shape[d];
        it->stride[0][k] = sx[d];
        it->stride[1][k] = sy[d];
        it->ndim = k + 1;
    }
    if (it->ndim == 0) { /* every size is 1: one row of one element */
        it->ndim = 1;
        it->shape[0] = 1;
        it->stride[0][0] = it->stride[1][0] = 0;
    }
    int last = it->ndim - 1;
    it->row_len = it->shape[last];
    it->row_stride[0] = it->stride[0][last];
    it->row_stride[1] = it->stride[1][last];
    it->rows = 1;
    for (int d = 0; d < ndim; d++) it->rows *= shape[d];
    it->rows = it->row_len ? it->rows / it->row_len : 0;
    memset(it->index, 0, sizeof it->index);
    it->offset[0] = it->offset[1] = 0;
}

void ag__bcast_next(ag_bcast *it)
{
    for (int d = it->ndim - 2; d >= 0; d--) {
        it->offset[0] += it->stride[0][d];
        it->offset[1] += it->stride[1][d];
        if (++it->index[d] < it->shape[d]) return;
        it->offset[0] -= it->stride[0][d] * it->shape[d];
        it->offset[1] -= it->stride[1][d] * it->shape[d];
        it->index[d] = 0;
    }
}

enum { ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM };

static void bcast_over(ag_bcast *it, const ag_tensor *out)
{
    ag__bcast_init(it, out->inputs[0], out->inputs[1], 0, 1, 1, out->ndim,
                   out->shape);
}

/* Moves a walk just started (ag__bcast_init) to row `row`, as `row` calls
 * of ag__bcast_next would. */
static void bcast_seek(ag_bcast *it, int64_t row)
{
    for (int d = it->ndim - 2; d >= 0 && row > 0; d--) {
        it->index[d] = row % it->shape[d];
        row /= it->shape[d];
        it->offset[0] += it->index[d] * it->stride[0][d];
        it->offset[1] += it->index[d] * it->stride[1][d];
    }
}

/* The first element of row r (of length len) in [lo, hi), and the end. */
static int64_t row_lo(int64_t r, int64_t len, int64_t lo)
{
    return r * len < lo ? lo - r * len : 0;
}

static int64_t row_hi(int64_t r, int64_t len, int64_t hi)
{
    return hi - r * len < len ? hi - r * len : len;
}

/* The forward of elements [lo, hi) of the result. Each element is computed
 * alone, so a split over the threads gives the same bits as one loop. */
AG_KERNEL static void forward_span(void *arg, int64_t lo, int64_t hi)
{
    ag_tensor *out = arg;
    int kind = out->op->kind;
    ag_bcast it;
    bcast_over(&it, out);
    if (it.row_len == 0) return;
    bcast_seek(&it, lo / it.row_len);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[0]->data, *y = out->inputs[1]->data;
        real *z = out->data;
        int64_t sx = it.row_stride[0], sy = it.row_stride[1];
        for (int64_t r = lo / it.row_len; r * it.row_len < hi;
             r++, ag__bcast_next(&it)) {
            int64_t j0 = row_lo(r, it.row_len, lo);
            int64_t n = row_hi(r, it.row_len, hi) - j0;
            const real *restrict xr = x + it.offset[0] + j0 * sx;
            const real *restrict yr = y + it.offset[1] + j0 * sy;
            real *restrict zr = z + r * it.row_len + j0;
            switch (kind) {
            case ADD:
                for (int64_t j = 0; j < n; j++) zr[j] = xr[j * sx] + yr[j * sy];
                break;
            case SUB:
                for (int64_t j = 0; j < n; j++) zr[j] = xr[j * sx] - yr[j * sy];
                break;
            case MUL:
                for (int64_t j = 0; j < n; j++) zr[j] = xr[j * sx] * yr[j * sy];
                break;
            case DIV:
                for (int64_t j = 0; j < n; j++) zr[j] = xr[j * sx] / yr[j * sy];
                break;
            case MAXIMUM: /* z = max(x, y), NaN if either is */
                for (int64_t j = 0; j < n; j++) {
                    real xv = xr[j * sx], yv = yr[j * sy];
                    zr[j] = xv > yv || xv != xv ? xv : yv;
                }
                break;
            case MINIMUM: /* z = min(x, y), NaN if either is */
                for (int64_t j = 0; j < n; j++) {
                    real xv = xr[j * sx], yv = yr[j * sy];
                    zr[j] = xv < yv || xv != xv ? xv : yv;
                }
                break;
            }
        }
    });
}

/* Split over the threads when large (ag__parallel_for). */
static int binary_forward(ag_tensor *out)
{
    ag__parallel_for(out->numel, forward_span, out);
    return 0;
}

/* Within binary_backward_input: dr[j * sd] = term into an unwritten buffer
 * (set), += term otherwise, along the row. */
#define ROW_GRAD(term)                                                         \
    do {                                                                       \
        if (set)                                                               \
            for (int64_t j = 0; j < n; j++) dr[j * sd] = (term);               \
        else                                                                   \
            for (int64_t j = 0; j < n; j++) dr[j * sd] += (term);              \
    } while (0)

/* The share of maximum's (or minimum's) gradient that goes to an input, as
 * PyTorch's: 0 where it loses (x < y for maximum's x), 1/2 on a tie, 1
 * otherwise (a NaN takes all). */
#define TIE_SHARE(loses, tie)                                                  \
    AG_SELECT(loses, (real)0, AG_SELECT(tie, (real)0.5, (real)1))

typedef struct {
    ag_tensor *out;
    int which;
    void *d;  /* the input's gradient buffer */
    bool set; /* stored into, not added to */
} backward_job;

/* Adds out's gradient contribution to input `which` (0: x, 1: y):
 *   add: dx = g            dy = g
 *   sub: dx = g            dy = -g
 *   mul: dx = g * y        dy = g * x
 *   div: dx = g / y        dy = -g * x / y^2
 *   maximum: dx = g * [x > y, 1/2 if x = y]   dy likewise (minimum: <)
 * summed over the broadcast dimensions through stride-0 writes. An input
 * that was not broadcast has each gradient element written once, so an
 * unwritten buffer is stored into. Here: the contribution of elements
 * [lo, hi) of the result (an input that was not broadcast has each element
 * of d written by one element of the range, so its gradient splits over the
 * threads with the same bits; a broadcast one's sums run in one loop). */
AG_KERNEL static void backward_span(void *arg, int64_t lo, int64_t hi)
{
    const backward_job *job = arg;
    ag_tensor *out = job->out;
    int kind = out->op->kind, which = job->which;
    bool set = job->set;
    ag_bcast it;
    bcast_over(&it, out);
    if (it.row_len == 0) return;
    bcast_seek(&it, lo / it.row_len);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[0]->data, *y = out->inputs[1]->data;
        const real *g = out->grad->data;
        real *d = job->d;
        int64_t sx = it.row_stride[0], sy = it.row_stride[1];
        int64_t sd = it.row_stride[which];
        for (int64_t r = lo / it.row_len; r * it.row_len < hi;
             r++, ag__bcast_next(&it)) {
            int64_t j0 = row_lo(r, it.row_len, lo);
            int64_t n = row_hi(r, it.row_len, hi) - j0;
            const real *restrict xr = x + it.offset[0] + j0 * sx;
            const real *restrict yr = y + it.offset[1] + j0 * sy;
            const real *restrict gr = g + r * it.row_len + j0;
            real *restrict dr = d + it.offset[which] + j0 * sd;
            switch (kind * 2 + which) {
            case ADD * 2 + 0:
            case ADD * 2 + 1:
            case SUB * 2 + 0:
                ROW_GRAD(gr[j]);
                break;
            case SUB * 2 + 1:
                ROW_GRAD(-gr[j]);
                break;
            case MUL * 2 + 0:
                ROW_GRAD(gr[j] * yr[j * sy]);
                break;
            case MUL * 2 + 1:
                ROW_GRAD(gr[j] * xr[j * sx]);
                break;
            case DIV * 2 + 0:
                ROW_GRAD(gr[j] / yr[j * sy]);
                break;
            case DIV * 2 + 1:
                ROW_GRAD(-gr[j] * xr[j * sx] / (yr[j * sy] * yr[j * sy]));
                break;
            case MAXIMUM * 2 + 0:
            case MINIMUM * 2 + 1:
                ROW_GRAD(gr[j] * TIE_SHARE(xr[j * sx] < yr[j * sy],
                                           xr[j * sx] == yr[j * sy]));
                break;
            case MAXIMUM * 2 + 1:
            case MINIMUM * 2 + 0:
                ROW_GRAD(gr[j] * TIE_SHARE(xr[j * sx] > yr[j * sy],
                                           xr[j * sx] == yr[j * sy]));
                break;
            }
        }
    });
}

static void binary_backward_input(ag_tensor *out, int which)
{
    ag_tensor *in = out->inputs[which];
    backward_job job = {out, which, NULL, false};
    if (in->numel == out->numel) { /* each element written once: split */
        job.d = ag__grad_begin(in, &job.set);
        ag__parallel_for(out->numel, backward_span, &job);
    } else {
        job.d = ag__grad_accumulate(in);
        backward_span(&job, 0, out->numel);
    }
}

static int binary_backward(ag_tensor *out)
{
    for (int which = 0; which < 2; which++)
        if (out->inputs[which]->requires_grad)
            binary_backward_input(out, which);
    return 0;
}

/* For maximum and minimum: input which's share of the gradient
 * (TIE_SHARE), a tensor without history of the result's shape. */
static ag_tensor *tie_share(ag_arena *a, const ag_tensor *out, int which)
{
    ag_tensor *m = ag__constant(a, out);
    if (!m) return NULL;
    /* maximum's x and minimum's y lose where x < y */
    bool lose_below = (out->op->kind == MAXIMUM) == (which == 0);
    ag_bcast it;
    bcast_over(&it, out);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[0]->data, *y = out->inputs[1]->data;
        real *mv = m->data;
        int64_t n = it.row_len, sx = it.row_stride[0], sy = it.row_stride[1];
        for (int64_t r = 0; r < it.rows; r++, ag__bcast_next(&it)) {
            const real *xr = x + it.offset[0], *yr = y + it.offset[1];
            real *mr = mv + r * n;
            for (int64_t j = 0; j < n; j++) {
                real xv = xr[j * sx], yv = yr[j * sy];
                mr[j] = TIE_SHARE(lose_below ? xv < yv : xv > yv, xv == yv);
            }
        }
    });
    return m;
}

/* The same derivatives in ops, each contribution summed back to its
 * input's shape (ag__sum_to):
 *   add: dx = g            dy = g
 *   sub: dx = g            dy = -g
 *   mul: dx = g * y        dy = g * x
 *   div: dx = g / y        dy = -g * z / y   (z = x / y, the result)
 *   maximum, minimum: dx = g * share_x    dy = g * share_y (tie_share) */
static int binary_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    int kind = out->op->kind;
    ag_tensor *d[2] = {NULL, NULL};
    if (kind == MAXIMUM || kind == MINIMUM) {
        for (int i = 0; i < 2; i++)
            if (want[i])
                AG_TRY(dx[i] = ag__sum_to(a, ag_mul(a, g, tie_share(a, out, i)),
                                          out->inputs[i]->ndim,
                                          out->inputs[i]->shape));
        return 0;
    }
    if (want[0])
        AG_TRY(d[0] = kind == MUL   ? ag_mul(a, g, y)
                      : kind == DIV ? ag_div(a, g, y)
                                    : g);
    if (want[1])
        AG_TRY(d[1] = kind == ADD   ? g
                      : kind == SUB ? ag_neg(a, g)
                      : kind == MUL
                          ? ag_mul(a, g, x)
                          : ag_neg(a, ag_div(a, ag_mul(a, g, out), y)));
    for (int i = 0; i < 2; i++)
        if (want[i])
            AG_TRY(dx[i] = ag__sum_to(a, d[i], out->inputs[i]->ndim,
                                      out->inputs[i]->shape));
    return 0;
}

/* Tangents (NULL: zero), broadcast to the result's shape:
 *   add: tz = tx + ty       sub: tz = tx - ty
 *   mul: tz = tx y + x ty   div: tz = (tx - z ty) / y
 *   maximum, minimum: tz = tx share_x + ty share_y */
static int binary_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *t,
                      ag_tensor **tz)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1], *r;
    switch (out->op->kind) {
    case ADD:
        r = ag__add_or(a, t[0], t[1]);
        break;
    case SUB:
        r = ag__sub_or(a, t[0], t[1]);
        break;
    case MUL:
        r = ag__add_or(a, ag__mul_or(a, t[0], y), ag__mul_or(a, x, t[1]));
        break;
    case DIV:
        r = ag_div(a, ag__sub_or(a, t[0], ag__mul_or(a, out, t[1])), y);
        break;
    default:
        r = ag__add_or(a, t[0] ? ag_mul(a, t[0], tie_share(a, out, 0)) : NULL,
                       t[1] ? ag_mul(a, t[1], tie_share(a, out, 1)) : NULL);
        break;
    }
    AG_TRY(*tz = ag__expand_to(a, r, out->ndim, out->shape));
    return 0;
}

/* The shared front of the four ops: checks, broadcast shape, apply. */
static ag_tensor *binary(const char *func, const ag_op *op, ag_arena *a,
                         ag_tensor *x, ag_tensor *y)
{
    ag_tensor *inputs[2] = {x, y};
    if (ag__check_float_inputs(func, a, 2, inputs)) return NULL;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    if (ag__broadcast_shape(func, x, y, 0, &ndim, shape)) return NULL;
    return ag__apply(func, a, op, 2, inputs, x->dtype, ndim, shape, NULL);
}

ag_tensor *ag_add(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return binary("ag_add", &ag__op_add, a, x, y);
}

ag_tensor *ag_sub(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return binary("ag_sub", &ag__op_sub, a, x, y);
}

ag_tensor *ag_mul(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return binary("ag_mul", &ag__op_mul, a, x, y);
}

ag_tensor *ag_div(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return binary("ag_div", &ag__op_div, a, x, y);
}

ag_tensor *ag_maximum(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return binary("ag_maximum", &ag__op_maximum, a, x, y);
}

ag_tensor *ag_minimum(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return binary("ag_minimum", &ag__op_minimum, a, x, y);
}

/* ---- where(cond, x, y): z = cond != 0 ? x : y, all three broadcast ---- */

/* Walks where's result row by row (rows of its last axis) with the
 * element offsets of cond, x and y (off[0..2]) at each row's start and
 * their strides along the row (step[0..2], 0 for a broadcast input). For
 * rows r = 0 .. rows-1: use off[], then call where_next. */
typedef struct {
    int ndim;
    const int64_t *shape;
    int64_t stride[3][AG_MAX_DIMS], index[AG_MAX_DIMS];
    int64_t off[3], step[3], rows, n;
} where_walk;

static void where_init(where_walk *w, const ag_tensor *out)
{
    memset(w, 0, sizeof *w);
    w->ndim = out->ndim;
    w->shape = out->shape;
    for (int k = 0; k < 3; k++) {
        ag__broadcast_strides(out->inputs[k], 0, 1, out->ndim, w->stride[k]);
        w->step[k] = out->ndim ? w->stride[k][out->ndim - 1] : 0;
    }
    w->n = out->ndim ? out->shape[out->ndim - 1] : 1;
    w->rows = w->n ? out->numel / w->n : 0;
}

static void where_next(where_walk *w)
{
    for (int d = w->ndim - 2; d >= 0; d--) {
        for (int k = 0; k < 3; k++) w->off[k] += w->stride[k][d];
        if (++w->index[d] < w->shape[d]) return;
        for (int k = 0; k < 3; k++) w->off[k] -= w->stride[k][d] * w->shape[d];
        w->index[d] = 0;
    }
}

static int where_forward(ag_tensor *out)
{
    const int32_t *c = out->inputs[0]->data;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[1]->data, *y = out->inputs[2]->data;
        real *z = out->data;
        where_walk w;
        where_init(&w, out);
        int64_t n = w.n, sc = w.step[0], sx = w.step[1], sy = w.step[2];
        for (int64_t r = 0; r < w.rows; r++, where_next(&w)) {
            const int32_t *restrict cr = c + w.off[0];
            const real *restrict xr = x + w.off[1], *restrict yr = y + w.off[2];
            real *restrict zr = z + r * n;
            for (int64_t j = 0; j < n; j++)
                zr[j] = cr[j * sc] ? xr[j * sx] : yr[j * sy];
        }
    });
    return 0;
}

/* dx = g where cond, dy = g where not, summed over broadcast axes */
static int where_backward(ag_tensor *out)
{
    const int32_t *c = out->inputs[0]->data;
    for (int which = 1; which <= 2; which++) {
        ag_tensor *in = out->inputs[which];
        if (!in->requires_grad) continue;
        bool take = which == 1;
        void *d_data = ag__grad_accumulate(in);
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *g = out->grad->data;
            real *d = d_data;
            where_walk w;
            where_init(&w, out);
            int64_t n = w.n, sc = w.step[0], sd = w.step[which];
            for (int64_t r = 0; r < w.rows; r++, where_next(&w)) {
                const int32_t *cr = c + w.off[0];
                const real *gr = g + r * n;
                real *dr = d + w.off[which];
                for (int64_t j = 0; j < n; j++)
                    dr[j * sd] +=
                        AG_SELECT((cr[j * sc] != 0) == take, gr[j], (real)0);
            }
        });
    }
    return 0;
}

/* cond != 0 (take = true) or cond == 0 as 1 and 0 of the result's shape,
 * without history. */
static ag_tensor *where_mask(ag_arena *a, const ag_tensor *out, bool take)
{
    ag_tensor *m = ag__constant(a, out);
    if (!m) return NULL;
    const int32_t *c = out->inputs[0]->data;
    AG_DISPATCH_FLOAT(out->dtype, {
        real *mv = m->data;
        where_walk w;
        where_init(&w, out);
        for (int64_t r = 0; r < w.rows; r++, where_next(&w))
            for (int64_t j = 0; j < w.n; j++)
                mv[r * w.n + j] = (c[w.off[0] + j * w.step[0]] != 0) == take;
    });
    return m;
}

/* dx = sum_to(g * [cond])   dy = sum_to(g * [!cond]) */
static int where_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                     const bool *want, ag_tensor **dx)
{
    for (int i = 1; i <= 2; i++)
        if (want[i])
            AG_TRY(dx[i] =
                       ag__sum_to(a, ag_mul(a, g, where_mask(a, out, i == 1)),
                                  out->inputs[i]->ndim, out->inputs[i]->shape));
    return 0;
}

/* tz = tx [cond] + ty [!cond] */
static int where_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *t,
                     ag_tensor **tz)
{
    ag_tensor *r =
        ag__add_or(a, t[1] ? ag_mul(a, t[1], where_mask(a, out, true)) : NULL,
                   t[2] ? ag_mul(a, t[2], where_mask(a, out, false)) : NULL);
    AG_TRY(*tz = ag__expand_to(a, r, out->ndim, out->shape));
    return 0;
}

ag_tensor *ag_where(ag_arena *a, ag_tensor *cond, ag_tensor *x, ag_tensor *y)
{
    const char *func = "ag_where";
    ag_tensor *inputs[3] = {cond, x, y};
    for (int i = 0; i < 3; i++)
        if (!inputs[i]) return ag__null_input(func, i), NULL;
    if (ag__check_float_inputs(func, a, 2, inputs + 1)) return NULL;
    char bc[AG_SHAPE_STR_MAX];
    if (cond->dtype != AG_I32) {
        ag__error(func, "cond must be i32 (nonzero: take x), got %s %s",
                  ag_dtype_name(cond->dtype),
                  ag__shape_str(bc, cond->ndim, cond->shape));
        return NULL;
    }
    int ndim, ndim2;
    int64_t shape[AG_MAX_DIMS], shape2[AG_MAX_DIMS];
    if (ag__broadcast_shape(func, x, y, 0, &ndim, shape)) return NULL;
    ag_tensor xy_shape = {.ndim = ndim};
    memcpy(xy_shape.shape, shape, sizeof shape);
    if (ag__broadcast_shape(func, cond, &xy_shape, 0, &ndim2, shape2)) {
        char bx[AG_SHAPE_STR_MAX], by[AG_SHAPE_STR_MAX];
        ag__error(func, "cond %s, x %s and y %s do not broadcast",
                  ag__shape_str(bc, cond->ndim, cond->shape),
                  ag__shape_str(bx, x->ndim, x->shape),
                  ag__shape_str(by, y->ndim, y->shape));
        return NULL;
    }
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, x->dtype, ndim2, shape2, &numel, &bytes))
        return NULL;
    return ag__apply(func, a, &ag__op_where, 3, inputs, x->dtype, ndim2, shape2,
                     NULL);
}

/* The op-table entries. */
#define BINARY_OP(op_name, op_kind)                                            \
    {                                                                          \
        .name = op_name, .arity = 2, .kind = op_kind,                          \
        .forward = binary_forward, .backward = binary_backward,                \
        .vjp = binary_vjp, .jvp = binary_jvp                                   \
    }
const ag_op ag__op_add = BINARY_OP("add", ADD);
const ag_op ag__op_sub = BINARY_OP("sub", SUB);
const ag_op ag__op_mul = BINARY_OP("mul", MUL);
const ag_op ag__op_div = BINARY_OP("div", DIV);
const ag_op ag__op_maximum = BINARY_OP("maximum", MAXIMUM);
const ag_op ag__op_minimum = BINARY_OP("minimum", MINIMUM);
const ag_op ag__op_where = {.name = "where",
                            .arity = 3,
                            .nondiff_inputs = 1u << 0, /* cond */
                            .forward = where_forward,
                            .backward = where_backward,
                            .vjp = where_vjp,
                            .jvp = where_jvp};
