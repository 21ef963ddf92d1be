/* shape.c: layout ops. reshape shares its input's values (a view); transpose
 * copies them into the swapped layout. */
#include "../internal.h"

/* reshape: y = x with another shape, same values (shared). */
static int reshape_forward(ag_tensor *out)
{
    out->data = out->inputs[0]->data;
    return 0;
}

/* dx = g, element for element */
static int reshape_backward(ag_tensor *out)
{
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict g = out->grad->data;
        real *restrict dx = dx_data;
        AG_GRAD_LOOP(set, out->numel, dx, g[i]);
    });
    return 0;
}

ag_tensor *ag_reshape(ag_arena *a, ag_tensor *x, int ndim, const int64_t *shape)
{
    const char *func = "ag_reshape";
    if (ag__check_inputs(func, a, 1, &x, false) ||
        ag__check_ndim(func, ndim, shape))
        return NULL;
    int64_t resolved[AG_MAX_DIMS];
    int inferred = -1;
    for (int d = 0; d < ndim; d++) {
        resolved[d] = shape[d];
        if (shape[d] != -1) continue;
        if (inferred >= 0) {
            char bs[AG_SHAPE_STR_MAX];
            ag__error(func, "only one size of %s may be -1",
                      ag__shape_str(bs, ndim, shape));
            return NULL;
        }
        inferred = d;
        resolved[d] = 1;
    }
    int64_t numel;
    if (ag__check_shape(func, ndim, resolved, &numel)) return NULL;
    if (inferred >= 0 && numel == 0) {
        char bs[AG_SHAPE_STR_MAX];
        ag__error(func,
                  "cannot infer the -1 in %s: the other sizes have no "
                  "elements",
                  ag__shape_str(bs, ndim, shape));
        return NULL;
    }
    if (inferred >= 0 && x->numel % numel == 0)
        resolved[inferred] = x->numel / numel;
    if (ag__check_shape(func, ndim, resolved, &numel)) return NULL;
    if (numel != x->numel) {
        char bx[AG_SHAPE_STR_MAX], bs[AG_SHAPE_STR_MAX];
        ag__error(func, "cannot reshape %s (%lld elements) to %s",
                  ag__shape_str(bx, x->ndim, x->shape), (long long)x->numel,
                  ag__shape_str(bs, ndim, shape));
        return NULL;
    }
    return ag__apply(func, a, &ag__op_reshape, &x, x->dtype, ndim, resolved,
                     NULL);
}

/* Walks out's elements in order together with their offsets in x (whose
 * axes d0 and d1 are swapped relative to out). Forward copies x's values
 * into out; backward (forward = false) adds out's gradient into x's. */
static void swap_axes(const ag_tensor *out, const void *src, void *dst,
                      bool forward)
{
    const ag_tensor *x = out->inputs[0];
    int ndim = x->ndim, d0 = out->args.axis, d1 = out->args.axis2;
    /* Strides of x, then permuted to the order of out's dimensions. */
    int64_t xstride[AG_MAX_DIMS] = {0}, stride[AG_MAX_DIMS] = {0};
    int64_t index[AG_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        xstride[d] = s;
        s *= x->shape[d];
    }
    for (int d = 0; d < ndim; d++) stride[d] = xstride[d];
    stride[d0] = xstride[d1];
    stride[d1] = xstride[d0];
    /* Out element i sits at x offset sum(index[d] * stride[d]). */
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *in = src;
        real *o = dst;
        int64_t off = 0;
        for (int64_t i = 0; i < out->numel; i++) {
            if (forward) {
                o[i] = in[off];
            } else {
                o[off] += in[i];
            }
            for (int d = ndim - 1; d >= 0; d--) {
                off += stride[d];
                if (++index[d] < out->shape[d]) break;
                off -= stride[d] * out->shape[d];
                index[d] = 0;
            }
        }
    });
}

static int transpose_forward(ag_tensor *out)
{
    swap_axes(out, out->inputs[0]->data, out->data, true);
    return 0;
}

/* dx = g with the axes swapped back */
static int transpose_backward(ag_tensor *out)
{
    swap_axes(out, out->grad->data, ag__grad_accumulate(out->inputs[0]), false);
    return 0;
}

ag_tensor *ag_transpose(ag_arena *a, ag_tensor *x, int d0, int d1)
{
    const char *func = "ag_transpose";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    ag_op_args args = {0};
    if (ag__normalize_axis(func, d0, x, &args.axis) ||
        ag__normalize_axis(func, d1, x, &args.axis2))
        return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[args.axis] = x->shape[args.axis2];
    shape[args.axis2] = x->shape[args.axis];
    return ag__apply(func, a, &ag__op_transpose, &x, x->dtype, x->ndim, shape,
                     &args);
}

/* The op-table entries: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_reshape =
    {"reshape", 1, true, 0, reshape_forward, reshape_backward};
const ag_op ag__op_transpose =
    {"transpose", 1, false, 0, transpose_forward, transpose_backward};
/* clang-format on */
