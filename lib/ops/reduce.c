/* reduce.c: sum, mean and max over one axis or over all (AG_ALL), with or
 * without keepdim, and argmax (not differentiable) over one axis.
 *
 * Each reduction views its input as (outer, len, inner) around the reduced
 * axis (AG_ALL is (1, numel, 1)) and its output as (outer, inner). */
#include "../internal.h"

#include <tgmath.h>

enum { SUM, MEAN, MAX };

typedef struct {
    int axis; /* normalised, or AG_ALL */
    bool keepdim;
} reduce_params;

/* max keeps, for each result element, where along the axis it came from. */
typedef struct {
    int64_t *argmax;
} max_saved;

static void reduce_dims(const ag_tensor *out, int64_t *outer, int64_t *len,
                        int64_t *inner)
{
    const ag_tensor *x = out->inputs[0];
    int axis = AG_PARAMS(out, reduce_params)->axis;
    if (axis == AG_ALL) {
        *outer = *inner = 1;
        *len = x->numel;
    } else {
        ag__split_axis(x, axis, outer, len, inner);
    }
}

/* y[o,i] = sum_l x[o,l,i], in double for rows (inner = 1) so long sums of
 * floats stay accurate. */
static void sum_rows(const ag_tensor *x, ag_tensor *out, int64_t outer,
                     int64_t len, int64_t inner, double divisor)
{
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *xv = x->data;
        real *y = out->data;
        if (inner == 1) {
            for (int64_t o = 0; o < outer; o++) {
                double acc = 0;
                for (int64_t l = 0; l < len; l++) acc += xv[o * len + l];
                y[o] = (real)(acc / divisor);
            }
        } else {
            memset(y, 0, (size_t)(outer * inner) * sizeof(real));
            for (int64_t o = 0; o < outer; o++)
                for (int64_t l = 0; l < len; l++)
                    for (int64_t i = 0; i < inner; i++)
                        y[o * inner + i] += xv[(o * len + l) * inner + i];
            for (int64_t i = 0; i < outer * inner; i++)
                y[i] = (real)(y[i] / divisor);
        }
    });
}

/* For each (o, i): the first l where x[o,l,i] is largest (or the first NaN)
 * into arg[o,i], and that value into y[o,i] when y is not NULL. */
static void max_along(const ag_tensor *x, int64_t outer, int64_t len,
                      int64_t inner, void *y_out, int64_t *arg)
{
    AG_DISPATCH_FLOAT(x->dtype, {
        const real *xv = x->data;
        real *y = y_out;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const real *col = xv + o * len * inner + i;
                int64_t best = 0;
                for (int64_t l = 1; l < len && !isnan(col[best * inner]); l++)
                    if (col[l * inner] > col[best * inner] ||
                        isnan(col[l * inner]))
                        best = l;
                if (y) y[o * inner + i] = col[best * inner];
                arg[o * inner + i] = best;
            }
    });
}

/* y[o,i] = max_l x[o,l,i]; the index of the maximum is kept for the
 * backward when out records (in a throwaway array otherwise). */
static int max_rows(const ag_tensor *x, ag_tensor *out, int64_t outer,
                    int64_t len, int64_t inner)
{
    int64_t *arg =
        ag__arena_alloc(out->arena, (size_t)out->numel * sizeof *arg, 16);
    if (!arg) {
        ag__error("ag_max", "out of memory");
        return -1;
    }
    AG_SAVED(out, max_saved)->argmax = arg;
    max_along(x, outer, len, inner, out->data, arg);
    return 0;
}

static int reduce_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    int64_t outer, len, inner;
    reduce_dims(out, &outer, &len, &inner);
    switch (out->op->kind) {
    case SUM:
        sum_rows(x, out, outer, len, inner, 1.0);
        return 0;
    case MEAN:
        sum_rows(x, out, outer, len, inner, (double)len);
        return 0;
    default:
        return max_rows(x, out, outer, len, inner);
    }
}

/* sum:  dx[o,l,i] = g[o,i]
 * mean: dx[o,l,i] = g[o,i] / len
 * max:  dx[o,l,i] = g[o,i] where l is the saved argmax, else 0
 * Sum and mean write every element of dx, along its rows (i innermost). */
static int reduce_backward(ag_tensor *out)
{
    int kind = out->op->kind;
    int64_t outer, len, inner;
    reduce_dims(out, &outer, &len, &inner);
    if (kind == MAX) {
        const int64_t *arg = AG_SAVED(out, max_saved)->argmax;
        void *dx_data = ag__grad_accumulate(out->inputs[0]);
        AG_DISPATCH_FLOAT(out->dtype, {
            const real *g = out->grad->data;
            real *dx = dx_data;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++)
                    dx[(o * len + arg[o * inner + i]) * inner + i] +=
                        g[o * inner + i];
        });
        return 0;
    }
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *g = out->grad->data;
        real scale = kind == MEAN ? (real)1 / (real)len : 1;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t l = 0; l < len; l++) {
                const real *restrict go = g + o * inner;
                real *restrict row = (real *)dx_data + (o * len + l) * inner;
                AG_GRAD_LOOP(set, inner, row, go[i] * scale);
            }
    });
    return 0;
}

/* out's shape with the reduced axis (or axes) kept as 1: the shape g is
 * read in when it is broadcast back over x. */
static void kept_shape(const ag_tensor *out, int64_t *shape)
{
    const ag_tensor *x = out->inputs[0];
    int axis = AG_PARAMS(out, reduce_params)->axis;
    for (int d = 0; d < x->ndim; d++)
        shape[d] = axis == AG_ALL || d == axis ? 1 : x->shape[d];
}

/* For max: a tensor without history of x's shape, 1 where the saved
 * argmax picked an element, else 0. */
static ag_tensor *argmax_mask(ag_arena *a, const ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    const int64_t *arg = AG_SAVED(out, max_saved)->argmax;
    int64_t outer, len, inner;
    reduce_dims(out, &outer, &len, &inner);
    ag_tensor *m = ag__constant(a, x);
    if (m)
        AG_DISPATCH_FLOAT(x->dtype, {
            real *mv = m->data;
            memset(mv, 0, ag__tensor_bytes(m));
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++)
                    mv[(o * len + arg[o * inner + i]) * inner + i] = 1;
        });
    return m;
}

/* The same in ops: dx = expand(g kept as (outer, 1, inner)) times 1/len
 * (mean) or the argmax mask (max). */
static int reduce_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    ag_tensor *x = out->inputs[0];
    int64_t shape[AG_MAX_DIMS], outer, len, inner;
    kept_shape(out, shape);
    reduce_dims(out, &outer, &len, &inner);
    ag_tensor *d =
        ag_expand(a, ag_reshape(a, g, x->ndim, shape), x->ndim, x->shape);
    if (out->op->kind == MEAN) d = ag_scale(a, d, 1.0 / (double)len);
    if (out->op->kind == MAX) d = ag_mul(a, d, argmax_mask(a, out));
    AG_TRY(dx[0] = d);
    return 0;
}

/* sum: ty = sum(tx)   mean: ty = mean(tx)   max: ty = sum(tx * mask) */
static int reduce_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                      ag_tensor **ty)
{
    const reduce_params *p = AG_PARAMS(out, reduce_params);
    ag_tensor *t = tx[0];
    if (out->op->kind == MAX) t = ag_mul(a, t, argmax_mask(a, out));
    AG_TRY(*ty = out->op->kind == MEAN ? ag_mean(a, t, p->axis, p->keepdim)
                                       : ag_sum(a, t, p->axis, p->keepdim));
    return 0;
}

static ag_tensor *reduce(const char *func, const ag_op *op, ag_arena *a,
                         ag_tensor *x, int axis, bool keepdim)
{
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    int64_t shape[AG_MAX_DIMS];
    int ndim = 0;
    reduce_params args = {.axis = AG_ALL, .keepdim = keepdim};
    if (axis == AG_ALL) {
        if (keepdim)
            for (ndim = 0; ndim < x->ndim; ndim++) shape[ndim] = 1;
    } else {
        if (ag__normalize_axis(func, axis, x, &args.axis)) return NULL;
        for (int d = 0; d < x->ndim; d++)
            if (d != args.axis)
                shape[ndim++] = x->shape[d];
            else if (keepdim)
                shape[ndim++] = 1;
    }
    int64_t len = axis == AG_ALL ? x->numel : x->shape[args.axis];
    if (op == &ag__op_max && len == 0) {
        char buf[AG_SHAPE_STR_MAX];
        ag__shape_str(buf, x->ndim, x->shape);
        if (axis == AG_ALL)
            ag__error(func, "cannot take the maximum of no elements, shape %s",
                      buf);
        else
            ag__error(func,
                      "cannot take the maximum of an empty axis (%d) "
                      "of shape %s",
                      axis, buf);
        return NULL;
    }
    return ag__apply(func, a, op, 1, &x, x->dtype, ndim, shape, &args);
}

ag_tensor *ag_sum(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_sum", &ag__op_sum, a, x, axis, keepdim);
}

ag_tensor *ag_mean(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_mean", &ag__op_mean, a, x, axis, keepdim);
}

ag_tensor *ag_max(ag_arena *a, ag_tensor *x, int axis, bool keepdim)
{
    return reduce("ag_max", &ag__op_max, a, x, axis, keepdim);
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
        out ? ag__arena_alloc(a, (size_t)out->numel * sizeof *arg, 16) : NULL;
    if (!arg) {
        if (out) ag__error(func, "out of memory");
        return NULL;
    }
    max_along(x, outer, len, inner, NULL, arg);
    int32_t *idx = out->data;
    for (int64_t i = 0; i < out->numel; i++) idx[i] = (int32_t)arg[i];
    return out;
}

/* The op-table entries. */
#define REDUCE_OP(op_name, op_kind, saved)                                     \
    {                                                                          \
        .name = op_name, .arity = 1, .kind = op_kind,                          \
        .params_size = sizeof(reduce_params), .saved_size = saved,             \
        .forward = reduce_forward, .backward = reduce_backward,                \
        .vjp = reduce_vjp, .jvp = reduce_jvp                                   \
    }
const ag_op ag__op_sum = REDUCE_OP("sum", SUM, 0);
const ag_op ag__op_mean = REDUCE_OP("mean", MEAN, 0);
const ag_op ag__op_max = REDUCE_OP("max", MAX, sizeof(max_saved));
