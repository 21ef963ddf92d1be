/* shape.c: layout ops. reshape shares its input's values (a view);
 * transpose copies them into the swapped layout; expand broadcasts them to
 * a larger shape (a copy). Each is linear, so its JVP is the op itself on
 * the tangent. */
#include "../internal.h"

typedef struct {
    int d0, d1; /* the swapped axes, normalised */
} transpose_params;

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

/* dx = reshape(g, x's shape) */
static int reshape_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                       const bool *want, ag_tensor **dx)
{
    const ag_tensor *x = out->inputs[0];
    AG_TRY(dx[0] = ag_reshape(a, g, x->ndim, x->shape));
    return 0;
}

/* ty = reshape(tx, y's shape) */
static int reshape_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                       ag_tensor **ty)
{
    AG_TRY(*ty = ag_reshape(a, tx[0], out->ndim, out->shape));
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
    return ag__apply(func, a, &ag__op_reshape, 1, &x, x->dtype, ndim, resolved,
                     NULL);
}

/* Walks out's elements in order together with their offsets in x (whose
 * axes d0 and d1 are swapped relative to out). Forward copies x's values
 * into out; backward (forward = false) adds out's gradient into x's. */
static void swap_axes(const ag_tensor *out, const void *src, void *dst,
                      bool forward)
{
    const ag_tensor *x = out->inputs[0];
    const transpose_params *p = AG_PARAMS(out, transpose_params);
    int ndim = x->ndim, d0 = p->d0, d1 = p->d1;
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

/* dx = transpose(g, d0, d1) */
static int transpose_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                         const bool *want, ag_tensor **dx)
{
    const transpose_params *p = AG_PARAMS(out, transpose_params);
    AG_TRY(dx[0] = ag_transpose(a, g, p->d0, p->d1));
    return 0;
}

/* ty = transpose(tx, d0, d1) */
static int transpose_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                         ag_tensor **ty)
{
    const transpose_params *p = AG_PARAMS(out, transpose_params);
    AG_TRY(*ty = ag_transpose(a, tx[0], p->d0, p->d1));
    return 0;
}

ag_tensor *ag_transpose(ag_arena *a, ag_tensor *x, int d0, int d1)
{
    const char *func = "ag_transpose";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    transpose_params p;
    if (ag__normalize_axis(func, d0, x, &p.d0) ||
        ag__normalize_axis(func, d1, x, &p.d1))
        return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[p.d0] = x->shape[p.d1];
    shape[p.d1] = x->shape[p.d0];
    return ag__apply(func, a, &ag__op_transpose, 1, &x, x->dtype, x->ndim,
                     shape, &p);
}

/* expand: y = x broadcast to y's shape, by the broadcast walk of binary.c
 * (x against itself); a broadcast axis is read with stride 0. */
static int expand_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    ag_bcast it;
    ag__bcast_init(&it, x, x, 0, 1, 1, out->ndim, out->shape);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *xv = x->data;
        real *y = out->data;
        int64_t n = it.row_len, sx = it.row_stride[0];
        for (int64_t r = 0; r < it.rows; r++, ag__bcast_next(&it)) {
            const real *restrict xr = xv + it.offset[0];
            real *restrict yr = y + r * n;
            for (int64_t j = 0; j < n; j++) yr[j] = xr[j * sx];
        }
    });
    return 0;
}

/* dx = g summed over the broadcast axes (stride-0 adds) */
static int expand_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    void *dx_data = ag__grad_accumulate(x);
    ag_bcast it;
    ag__bcast_init(&it, x, x, 0, 1, 1, out->ndim, out->shape);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *g = out->grad->data;
        real *dx = dx_data;
        int64_t n = it.row_len, sx = it.row_stride[0];
        for (int64_t r = 0; r < it.rows; r++, ag__bcast_next(&it)) {
            real *dr = dx + it.offset[0];
            const real *gr = g + r * n;
            for (int64_t j = 0; j < n; j++) dr[j * sx] += gr[j];
        }
    });
    return 0;
}

/* dx = sum of g over the broadcast axes */
static int expand_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    const ag_tensor *x = out->inputs[0];
    AG_TRY(dx[0] = ag__sum_to(a, g, x->ndim, x->shape));
    return 0;
}

/* ty = expand(tx) */
static int expand_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                      ag_tensor **ty)
{
    AG_TRY(*ty = ag_expand(a, tx[0], out->ndim, out->shape));
    return 0;
}

ag_tensor *ag_expand(ag_arena *a, ag_tensor *x, int ndim, const int64_t *shape)
{
    const char *func = "ag_expand";
    if (ag__check_float_inputs(func, a, 1, &x) ||
        ag__check_ndim(func, ndim, shape))
        return NULL;
    char bx[AG_SHAPE_STR_MAX], bs[AG_SHAPE_STR_MAX];
    int64_t resolved[AG_MAX_DIMS];
    int lead = ndim - x->ndim;
    if (lead < 0) {
        ag__error(func, "cannot expand %s to fewer dimensions, %s",
                  ag__shape_str(bx, x->ndim, x->shape),
                  ag__shape_str(bs, ndim, shape));
        return NULL;
    }
    for (int d = 0; d < ndim; d++) {
        int64_t have = d < lead ? -2 : x->shape[d - lead];
        int64_t want = shape[d];
        if (want == -1 && have != -2) want = have;
        if (want < 0 || (have != -2 && have != 1 && have != want)) {
            ag__error(func,
                      "cannot expand %s to %s: each size must equal x's, "
                      "or x's must be 1 (-1 keeps x's; new leading axes "
                      "need a size)",
                      ag__shape_str(bx, x->ndim, x->shape),
                      ag__shape_str(bs, ndim, shape));
            return NULL;
        }
        resolved[d] = want;
    }
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, x->dtype, ndim, resolved, &numel, &bytes))
        return NULL;
    return ag__apply(func, a, &ag__op_expand, 1, &x, x->dtype, ndim, resolved,
                     NULL);
}

/* The op-table entries. */
const ag_op ag__op_reshape = {.name = "reshape",
                              .arity = 1,
                              .view = true,
                              .forward = reshape_forward,
                              .backward = reshape_backward,
                              .vjp = reshape_vjp,
                              .jvp = reshape_jvp};
const ag_op ag__op_transpose = {.name = "transpose",
                                .arity = 1,
                                .params_size = sizeof(transpose_params),
                                .forward = transpose_forward,
                                .backward = transpose_backward,
                                .vjp = transpose_vjp,
                                .jvp = transpose_jvp};
const ag_op ag__op_expand = {.name = "expand",
                             .arity = 1,
                             .forward = expand_forward,
                             .backward = expand_backward,
                             .vjp = expand_vjp,
                             .jvp = expand_jvp};
