/* compose.c: the small pieces that the ops' derivative rules (vjp, jvp) are
 * built from: summing a broadcast gradient back to an input's shape,
 * broadcasting a tangent up to a result's shape, and sums and differences
 * that read NULL as zero (a tangent or contribution that is absent). */
#include "../internal.h"

bool ag__same_shape(const ag_tensor *x, int ndim, const int64_t *shape)
{
    return x->ndim == ndim &&
           !memcmp(x->shape, shape, (size_t)ndim * sizeof *shape);
}

ag_tensor *ag__sum_to(ag_arena *a, ag_tensor *g, int ndim, const int64_t *shape)
{
    if (!g || ag__same_shape(g, ndim, shape)) return g;
    /* Sum over the leading axes g has beyond shape, then (keepdim) over
     * every axis where shape has 1 and g more. */
    ag_tensor *s = g;
    int lead = g->ndim - ndim;
    for (int d = 0; d < lead && s; d++) s = ag_sum(a, s, 0, false);
    for (int d = 0; d < ndim && s; d++)
        if (shape[d] == 1 && s->shape[d] != 1) s = ag_sum(a, s, d, true);
    return s ? ag_reshape(a, s, ndim, shape) : NULL;
}

ag_tensor *ag__expand_to(ag_arena *a, ag_tensor *t, int ndim,
                         const int64_t *shape)
{
    if (!t || ag__same_shape(t, ndim, shape)) return t;
    return ag_expand(a, t, ndim, shape);
}

ag_tensor *ag__add_or(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    if (!x) return y;
    if (!y) return x;
    return ag_add(a, x, y);
}

ag_tensor *ag__sub_or(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    if (!y) return x;
    if (!x) return ag_neg(a, y);
    return ag_sub(a, x, y);
}

ag_tensor *ag__mul_or(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return x && y ? ag_mul(a, x, y) : NULL;
}

ag_tensor *ag__constant(ag_arena *a, const ag_tensor *like)
{
    return ag__tensor_new("ag_gradients", a, like->dtype, like->ndim,
                          like->shape, true);
}
