/* shape.c: layout ops. reshape shares its input's values (a view);
 * transpose and permute copy them into another order of the axes; expand
 * broadcasts them to a larger shape; slice takes every step-th index of a
 * range along an axis; concat joins tensors along an axis (and stack, a
 * concat of the inputs with a new axis of size 1). All but reshape copy.
 * Each is linear, so its JVP is the op itself on the tangent. */
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

/* Walks out's elements in order together with their offsets in x, whose
 * axis perm[d] is out's axis d. Forward copies x's values (src) into out
 * (dst); backward (forward = false) stores (set) or adds out's gradient
 * (src) into x's (dst). */
AG_KERNEL static void permute_walk(const ag_tensor *out, const int *perm,
                                   const void *src, void *dst, bool forward,
                                   bool set)
{
    const ag_tensor *x = out->inputs[0];
    int ndim = x->ndim;
    /* Strides of x, then permuted to the order of out's dimensions. */
    int64_t xstride[AG_MAX_DIMS] = {0}, stride[AG_MAX_DIMS] = {0};
    int64_t index[AG_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        xstride[d] = s;
        s *= x->shape[d];
    }
    for (int d = 0; d < ndim; d++) stride[d] = xstride[perm[d]];
    /* When x's last axis stays last, out's rows are contiguous rows of x:
     * each is copied whole (a loop the compiler vectorizes) and only the
     * other axes are walked. */
    int walk = ndim;
    int64_t run = 1;
    if (ndim > 0 && stride[ndim - 1] == 1) {
        run = out->shape[ndim - 1];
        walk = ndim - 1;
    }
    /* Out element i sits at x offset sum(index[d] * stride[d]). One loop
     * per direction, on restrict pointers, so that each row's copy is a
     * plain vector loop (src and dst are distinct buffers). */
#define PERMUTE_ROWS(copy)                                                     \
    do {                                                                       \
        int64_t off = 0;                                                       \
        for (int64_t i = 0; i < out->numel; i += run) {                        \
            for (int64_t j = 0; j < run; j++) copy;                            \
            for (int d = walk - 1; d >= 0; d--) {                              \
                off += stride[d];                                              \
                if (++index[d] < out->shape[d]) break;                         \
                off -= stride[d] * out->shape[d];                              \
                index[d] = 0;                                                  \
            }                                                                  \
        }                                                                      \
    } while (0)
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict in = src;
        real *restrict o = dst;
        if (forward)
            PERMUTE_ROWS(o[i + j] = in[off + j]);
        else if (set)
            PERMUTE_ROWS(o[off + j] = in[i + j]);
        else
            PERMUTE_ROWS(o[off + j] += in[i + j]);
    });
#undef PERMUTE_ROWS
}

/* transpose is the permutation that swaps d0 and d1. */
static void swap_axes(const ag_tensor *out, const void *src, void *dst,
                      bool forward)
{
    const transpose_params *p = AG_PARAMS(out, transpose_params);
    int perm[AG_MAX_DIMS];
    for (int d = 0; d < AG_MAX_DIMS; d++) perm[d] = d;
    perm[p->d0] = p->d1;
    perm[p->d1] = p->d0;
    permute_walk(out, perm, src, dst, forward, false);
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

/* ---- permute: y's axis d is x's axis dims[d] ---- */

typedef struct {
    int dims[AG_MAX_DIMS]; /* normalised */
} permute_params;

static int permute_forward(ag_tensor *out)
{
    permute_walk(out, AG_PARAMS(out, permute_params)->dims,
                 out->inputs[0]->data, out->data, true, false);
    return 0;
}

/* dx = g with the axes put back, each element of dx once */
static int permute_backward(ag_tensor *out)
{
    bool set;
    void *dx = ag__grad_begin(out->inputs[0], &set);
    permute_walk(out, AG_PARAMS(out, permute_params)->dims, out->grad->data, dx,
                 false, set);
    return 0;
}

/* dx = permute(g, the inverse permutation) */
static int permute_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                       const bool *want, ag_tensor **dx)
{
    const int *dims = AG_PARAMS(out, permute_params)->dims;
    int inverse[AG_MAX_DIMS];
    for (int d = 0; d < out->ndim; d++) inverse[dims[d]] = d;
    AG_TRY(dx[0] = ag_permute(a, g, inverse));
    return 0;
}

/* ty = permute(tx, dims) */
static int permute_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                       ag_tensor **ty)
{
    AG_TRY(*ty = ag_permute(a, tx[0], AG_PARAMS(out, permute_params)->dims));
    return 0;
}

ag_tensor *ag_permute(ag_arena *a, ag_tensor *x, const int *dims)
{
    const char *func = "ag_permute";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    char bx[AG_SHAPE_STR_MAX], bd[AG_SHAPE_STR_MAX];
    ag__shape_str(bx, x->ndim, x->shape);
    if (!dims && x->ndim > 0) {
        ag__error(func, "dims is NULL for x %s", bx);
        return NULL;
    }
    permute_params p;
    int64_t given[AG_MAX_DIMS], shape[AG_MAX_DIMS];
    unsigned seen = 0;
    bool ok = true;
    for (int d = 0; d < x->ndim; d++) {
        given[d] = dims[d];
        int n = dims[d] < 0 ? dims[d] + x->ndim : dims[d];
        ok &= n >= 0 && n < x->ndim && !(seen >> (n & 31) & 1u);
        if (n >= 0 && n < x->ndim) seen |= 1u << n;
        p.dims[d] = n;
    }
    if (!ok) {
        ag__error(func, "dims %s are not a permutation of the %d axes of x %s",
                  ag__shape_str(bd, x->ndim, given), x->ndim, bx);
        return NULL;
    }
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[p.dims[d]];
    return ag__apply(func, a, &ag__op_permute, 1, &x, x->dtype, x->ndim, shape,
                     &p);
}

/* ---- slice: y[o,k,i] = x[o, start + k step, i] ---- */

typedef struct {
    int axis; /* normalised */
    int64_t start, step;
} slice_params;

/* Copies rows of inner elements between x's and y's layouts: forward
 * y <- x; backward dx (+)= g (set: store). */
static void slice_rows(const ag_tensor *out, const void *src, void *dst,
                       bool forward, bool set)
{
    const ag_tensor *x = out->inputs[0];
    const slice_params *p = AG_PARAMS(out, slice_params);
    int64_t outer, len, inner, count = out->shape[p->axis];
    ag__split_axis(x, p->axis, &outer, &len, &inner);
    AG_DISPATCH_FLOAT(out->dtype, {
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < count; k++) {
                int64_t xo = (o * len + p->start + k * p->step) * inner;
                int64_t yo = (o * count + k) * inner;
                if (forward) {
                    memcpy((real *)dst + yo, (const real *)src + xo,
                           (size_t)inner * sizeof(real));
                } else {
                    const real *restrict gr = (const real *)src + yo;
                    real *restrict dr = (real *)dst + xo;
                    AG_GRAD_LOOP(set, inner, dr, gr[i]);
                }
            }
    });
}

static int slice_forward(ag_tensor *out)
{
    slice_rows(out, out->inputs[0]->data, out->data, true, false);
    return 0;
}

/* dx[o, start + k step, i] += g[o,k,i], 0 elsewhere */
static int slice_backward(ag_tensor *out)
{
    slice_rows(out, out->grad->data, ag__grad_accumulate(out->inputs[0]), false,
               false);
    return 0;
}

/* dx = gather_backward(g, start + k step spread over y's shape) */
static int slice_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                     const bool *want, ag_tensor **dx)
{
    const ag_tensor *x = out->inputs[0];
    const slice_params *p = AG_PARAMS(out, slice_params);
    ag_tensor *index = ag__axis_index(a, out, p->axis, NULL, p->start, p->step);
    AG_TRY(dx[0] = index ? ag__gather_backward(a, g, p->axis, index, x->ndim,
                                               x->shape)
                         : NULL);
    return 0;
}

/* ty = slice(tx) */
static int slice_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                     ag_tensor **ty)
{
    const slice_params *p = AG_PARAMS(out, slice_params);
    int64_t stop = p->start + out->shape[p->axis] * p->step;
    AG_TRY(*ty = ag_slice(a, tx[0], p->axis, p->start, stop, p->step));
    return 0;
}

/* Python's rule for a bound of a sequence of len: negative counts from the
 * end, then clipped to [0, len]. */
static int64_t slice_bound(int64_t b, int64_t len)
{
    if (b < 0) b += len;
    return b < 0 ? 0 : b > len ? len : b;
}

ag_tensor *ag_slice(ag_arena *a, ag_tensor *x, int axis, int64_t start,
                    int64_t stop, int64_t step)
{
    const char *func = "ag_slice";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    slice_params p;
    if (ag__normalize_axis(func, axis, x, &p.axis)) return NULL;
    if (step < 1) {
        ag__error(func, "step must be >= 1, got %lld", (long long)step);
        return NULL;
    }
    int64_t len = x->shape[p.axis];
    /* INT64_MIN and INT64_MAX (open bounds) stay in range: |len| is small */
    p.start = slice_bound(start, len);
    p.step = step;
    int64_t end = slice_bound(stop, len);
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[p.axis] = end > p.start ? (end - p.start - 1) / step + 1 : 0;
    return ag__apply(func, a, &ag__op_slice, 1, &x, x->dtype, x->ndim, shape,
                     &p);
}

/* ---- concat: x_0, x_1, ... one after the other along axis ---- */

typedef struct {
    int axis; /* normalised */
} concat_params;

/* Copies each input's rows between its layout and y's: forward y <- x_i;
 * backward dx_i (+)= g for the inputs that require a gradient. */
static void concat_rows(ag_tensor *out, bool forward)
{
    int axis = AG_PARAMS(out, concat_params)->axis;
    int64_t outer, total, inner;
    ag__split_axis(out, axis, &outer, &total, &inner);
    int64_t at = 0; /* the input's first index along axis in y */
    for (int n = 0; n < out->n_inputs; n++) {
        ag_tensor *x = out->inputs[n];
        int64_t len = x->shape[axis], row = len * inner;
        if (forward) {
            size_t es = ag__dtype_size(out->dtype);
            for (int64_t o = 0; o < outer; o++)
                memcpy((char *)out->data +
                           (size_t)(o * total + at) * inner * es,
                       (const char *)x->data + (size_t)(o * row) * es,
                       (size_t)row * es);
        } else if (x->requires_grad) {
            bool set;
            void *dx = ag__grad_begin(x, &set);
            AG_DISPATCH_FLOAT(out->dtype, {
                for (int64_t o = 0; o < outer; o++) {
                    const real *restrict gr = (const real *)out->grad->data +
                                              (o * total + at) * inner;
                    real *restrict dr = (real *)dx + o * row;
                    AG_GRAD_LOOP(set, row, dr, gr[i]);
                }
            });
        }
        at += len;
    }
}

static int concat_forward(ag_tensor *out)
{
    concat_rows(out, true);
    return 0;
}

/* dx_i = g's part of x_i */
static int concat_backward(ag_tensor *out)
{
    concat_rows(out, false);
    return 0;
}

/* dx_i = slice(g, axis, at_i, at_i + len_i) */
static int concat_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    int axis = AG_PARAMS(out, concat_params)->axis;
    int64_t at = 0;
    for (int n = 0; n < out->n_inputs; n++) {
        int64_t len = out->inputs[n]->shape[axis];
        if (want[n]) AG_TRY(dx[n] = ag_slice(a, g, axis, at, at + len, 1));
        at += len;
    }
    return 0;
}

/* ty = concat(tx_i, zeros where x_i has none) */
static int concat_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                      ag_tensor **ty)
{
    int n = out->n_inputs;
    ag_tensor **t =
        ag__arena_alloc(a, (size_t)n * sizeof *t, _Alignof(ag_tensor *));
    if (!t) {
        ag__error("ag_concat", "out of memory for tangents");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const ag_tensor *x = out->inputs[i];
        t[i] = tx[i];
        if (!t[i]) AG_TRY(t[i] = ag_zeros(a, x->dtype, x->ndim, x->shape));
    }
    AG_TRY(*ty = ag_concat(a, n, t, AG_PARAMS(out, concat_params)->axis));
    return 0;
}

/* The checks of concat (and stack, through func): n >= 1 tensors of one
 * float dtype and ndim whose sizes agree except along axis; the result's
 * shape in shape. */
static int concat_check(const char *func, ag_arena *a, int n,
                        ag_tensor *const *xs, int axis, concat_params *p,
                        int64_t *shape)
{
    if (n < 1 || !xs) {
        ag__error(func, "needs at least one tensor, got %d%s", n,
                  xs ? "" : " (xs is NULL)");
        return -1;
    }
    if (ag__check_float_inputs(func, a, n, xs)) return -1;
    if (ag__normalize_axis(func, axis, xs[0], &p->axis)) return -1;
    memcpy(shape, xs[0]->shape, sizeof *shape * AG_MAX_DIMS);
    for (int i = 1; i < n; i++) {
        bool same = xs[i]->ndim == xs[0]->ndim;
        for (int d = 0; same && d < xs[0]->ndim; d++)
            same = d == p->axis || xs[i]->shape[d] == xs[0]->shape[d];
        if (!same) {
            char b0[AG_SHAPE_STR_MAX], bi[AG_SHAPE_STR_MAX];
            ag__error(func,
                      "tensor %d %s does not match tensor 0 %s except along "
                      "axis %d",
                      i, ag__shape_str(bi, xs[i]->ndim, xs[i]->shape),
                      ag__shape_str(b0, xs[0]->ndim, xs[0]->shape), axis);
            return -1;
        }
        shape[p->axis] += xs[i]->shape[p->axis];
    }
    int64_t numel;
    size_t bytes;
    return ag__check_size(func, xs[0]->dtype, xs[0]->ndim, shape, &numel,
                          &bytes);
}

ag_tensor *ag_concat(ag_arena *a, int n, ag_tensor *const *xs, int axis)
{
    const char *func = "ag_concat";
    concat_params p;
    int64_t shape[AG_MAX_DIMS];
    if (concat_check(func, a, n, xs, axis, &p, shape)) return NULL;
    return ag__apply(func, a, &ag__op_concat, n, xs, xs[0]->dtype, xs[0]->ndim,
                     shape, &p);
}

ag_tensor *ag_stack(ag_arena *a, int n, ag_tensor *const *xs, int axis)
{
    const char *func = "ag_stack";
    if (n < 1 || !xs) {
        ag__error(func, "needs at least one tensor, got %d%s", n,
                  xs ? "" : " (xs is NULL)");
        return NULL;
    }
    if (ag__check_float_inputs(func, a, n, xs)) return NULL;
    const ag_tensor *x0 = xs[0];
    char b0[AG_SHAPE_STR_MAX], bi[AG_SHAPE_STR_MAX];
    ag__shape_str(b0, x0->ndim, x0->shape);
    int nd = x0->ndim + 1, ax = axis < 0 ? axis + nd : axis;
    if (nd > AG_MAX_DIMS || ax < 0 || ax >= nd) {
        ag__error(func, "axis %d is out of range [%d, %d] for tensors %s", axis,
                  -nd, nd - 1, b0);
        return NULL;
    }
    for (int i = 1; i < n; i++)
        if (!ag__same_shape(xs[i], x0->ndim, x0->shape)) {
            ag__error(func, "tensor %d %s and tensor 0 %s differ in shape", i,
                      ag__shape_str(bi, xs[i]->ndim, xs[i]->shape), b0);
            return NULL;
        }
    /* each input with a new axis of size 1 at ax, then concat */
    int64_t shape[AG_MAX_DIMS];
    for (int d = 0, k = 0; d < nd; d++) shape[d] = d == ax ? 1 : x0->shape[k++];
    ag_tensor **parts =
        ag__arena_alloc(a, (size_t)n * sizeof *parts, _Alignof(ag_tensor *));
    if (!parts) {
        ag__error(func, "out of memory for %d tensors", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!(parts[i] = ag_reshape(a, xs[i], nd, shape))) return NULL;
    concat_params p;
    int64_t out_shape[AG_MAX_DIMS];
    if (concat_check(func, a, n, parts, ax, &p, out_shape)) return NULL;
    return ag__apply(func, a, &ag__op_concat, n, parts, x0->dtype, nd,
                     out_shape, &p);
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
const ag_op ag__op_permute = {.name = "permute",
                              .arity = 1,
                              .params_size = sizeof(permute_params),
                              .forward = permute_forward,
                              .backward = permute_backward,
                              .vjp = permute_vjp,
                              .jvp = permute_jvp};
const ag_op ag__op_slice = {.name = "slice",
                            .arity = 1,
                            .params_size = sizeof(slice_params),
                            .forward = slice_forward,
                            .backward = slice_backward,
                            .vjp = slice_vjp,
                            .jvp = slice_jvp};
const ag_op ag__op_concat = {.name = "concat",
                             .arity = AG_VARIADIC,
                             .params_size = sizeof(concat_params),
                             .forward = concat_forward,
                             .backward = concat_backward,
                             .vjp = concat_vjp,
                             .jvp = concat_jvp};
