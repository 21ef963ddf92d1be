/* index.c: indexing ops, whose integer index input (AG_I32) is not
 * differentiable: index_select (whole slices along an axis), gather
 * (torch.gather: one element per index), its adjoint gather_backward (a
 * scatter-add, PyTorch's scatter_add into zeros), and embedding (rows of a
 * table, an index_select of the flattened ids).
 *
 *   index_select: y[o,k,i] = x[o,idx[k],i]   dx[o,idx[k],i] += g[o,k,i]
 *   gather:       y[p] = x[p with p[axis] = idx[p]]     dx likewise += g[p]
 *   gather_backward(g): z = zeros(x's shape), z[p with p[axis] = idx[p]] +=
 *                 g[p]; its derivative is gather again, so gradients of
 *                 gradients of every indexing op go to any order.
 * Each is linear in its float input, so its JVP is the op on the tangent.
 * The VJPs in ops of index_select (and of slice, in shape.c) are
 * gather_backward with the index spread over the result's shape
 * (ag__axis_index). */
#include "../internal.h"

typedef struct {
    int axis; /* normalised */
} index_params;

/* The ways gather_walk moves values between the two arrays. */
enum { GATHER_SET, GATHER_ADD, SCATTER_ADD };

/* For every element p of `index` (row-major), with q = p but q[axis] =
 * index[p], an element of an array of `shape` (x's): GATHER_SET:
 * dst[p] = src[q]; GATHER_ADD: dst[p] += src[q]; SCATTER_ADD: dst[q] +=
 * src[p]. */
static void gather_walk(const ag_tensor *index, const int64_t *shape, int axis,
                        ag_dtype dt, const void *src, void *dst, int mode)
{
    int nd = index->ndim;
    int64_t stride[AG_MAX_DIMS], pos[AG_MAX_DIMS] = {0};
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d];
    }
    int64_t n = index->shape[nd - 1];
    int64_t rows = n ? index->numel / n : 0;
    /* along a row: q moves by `step` per element, plus idx * stride[axis] */
    int64_t step = axis == nd - 1 ? 0 : stride[nd - 1];
    int64_t base = 0; /* q's offset at the row's start, without axis */
    const int32_t *idx = index->data;
    AG_DISPATCH_FLOAT(dt, {
        const real *in = src;
        real *out = dst;
        for (int64_t r = 0; r < rows; r++) {
            const int32_t *ir = idx + r * n;
            int64_t sa = stride[axis];
            switch (mode) {
            case GATHER_SET:
                for (int64_t j = 0; j < n; j++)
                    out[r * n + j] = in[base + j * step + ir[j] * sa];
                break;
            case GATHER_ADD:
                for (int64_t j = 0; j < n; j++)
                    out[r * n + j] += in[base + j * step + ir[j] * sa];
                break;
            default:
                for (int64_t j = 0; j < n; j++)
                    out[base + j * step + ir[j] * sa] += in[r * n + j];
                break;
            }
            for (int d = nd - 2; d >= 0; d--) {
                if (d != axis) base += stride[d];
                if (++pos[d] < index->shape[d]) break;
                if (d != axis) base -= stride[d] * index->shape[d];
                pos[d] = 0;
            }
        }
    });
}

/* ---- gather ---- */

static int gather_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    gather_walk(out->inputs[1], x->shape, AG_PARAMS(out, index_params)->axis,
                out->dtype, x->data, out->data, GATHER_SET);
    return 0;
}

/* dx[q] += g[p] */
static int gather_backward_kernel(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    gather_walk(out->inputs[1], x->shape, AG_PARAMS(out, index_params)->axis,
                out->dtype, out->grad->data, ag__grad_accumulate(x),
                SCATTER_ADD);
    return 0;
}

/* dx = gather_backward(g) */
static int gather_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    const ag_tensor *x = out->inputs[0];
    AG_TRY(dx[0] = ag__gather_backward(a, g, AG_PARAMS(out, index_params)->axis,
                                       out->inputs[1], x->ndim, x->shape));
    return 0;
}

/* ty = gather(tx) */
static int gather_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                      ag_tensor **ty)
{
    AG_TRY(*ty = ag_gather(a, tx[0], AG_PARAMS(out, index_params)->axis,
                           out->inputs[1]));
    return 0;
}

/* Checks that index is AG_I32 and its values lie in [0, bound); the error
 * names the position (as a multi-index of index's shape), the value and
 * the bound. `what` names the values ("index", "id"). */
static int check_index_values(const char *func, const char *what,
                              const ag_tensor *index, int64_t bound,
                              const char *bound_of)
{
    char b[AG_SHAPE_STR_MAX];
    if (index->dtype != AG_I32) {
        ag__error(func, "the %s tensor must be i32, got %s %s", what,
                  ag_dtype_name(index->dtype),
                  ag__shape_str(b, index->ndim, index->shape));
        return -1;
    }
    const int32_t *v = index->data;
    for (int64_t i = 0; i < index->numel; i++) {
        if (v[i] >= 0 && v[i] < bound) continue;
        int64_t pos[AG_MAX_DIMS], rest = i;
        for (int d = index->ndim - 1; d >= 0; d--) {
            pos[d] = rest % index->shape[d];
            rest /= index->shape[d];
        }
        ag__error(func, "%s %d at position %s is out of range [0, %lld)%s",
                  what, v[i], ag__shape_str(b, index->ndim, pos),
                  (long long)bound, bound_of);
        return -1;
    }
    return 0;
}

ag_tensor *ag_gather(ag_arena *a, ag_tensor *x, int axis, ag_tensor *index)
{
    const char *func = "ag_gather";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    if (!index) return ag__null_input(func, 1), NULL;
    index_params p;
    if (ag__normalize_axis(func, axis, x, &p.axis)) return NULL;
    char bx[AG_SHAPE_STR_MAX], bi[AG_SHAPE_STR_MAX], of[AG_SHAPE_STR_MAX + 32];
    ag__shape_str(bx, x->ndim, x->shape);
    ag__shape_str(bi, index->ndim, index->shape);
    bool fits = index->ndim == x->ndim;
    for (int d = 0; fits && d < x->ndim; d++)
        fits = d == p.axis || index->shape[d] <= x->shape[d];
    if (index->dtype == AG_I32 && !fits) {
        ag__error(func,
                  "index %s must have the %d axes of x %s and sizes no "
                  "larger than x's except along axis %d",
                  bi, x->ndim, bx, axis);
        return NULL;
    }
    snprintf(of, sizeof of, " for axis %d of x %s", axis, bx);
    if (check_index_values(func, "index", index, x->shape[p.axis], of))
        return NULL;
    ag_tensor *inputs[2] = {x, index};
    return ag__apply(func, a, &ag__op_gather, 2, inputs, x->dtype, index->ndim,
                     index->shape, &p);
}

/* ---- gather_backward: z = zeros(shape); z[q] += g[p] ---- */

static int gather_backward_forward(ag_tensor *out)
{
    memset(out->data, 0, ag__tensor_bytes(out));
    gather_walk(out->inputs[1], out->shape, AG_PARAMS(out, index_params)->axis,
                out->dtype, out->inputs[0]->data, out->data, SCATTER_ADD);
    return 0;
}

/* dg[p] = gz[q]: every element of dg once */
static int gather_backward_backward(ag_tensor *out)
{
    bool set;
    void *dg = ag__grad_begin(out->inputs[0], &set);
    gather_walk(out->inputs[1], out->shape, AG_PARAMS(out, index_params)->axis,
                out->dtype, out->grad->data, dg, set ? GATHER_SET : GATHER_ADD);
    return 0;
}

/* dg = gather(gz) */
static int gather_backward_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                               const bool *want, ag_tensor **dx)
{
    AG_TRY(dx[0] = ag_gather(a, g, AG_PARAMS(out, index_params)->axis,
                             out->inputs[1]));
    return 0;
}

/* tz = gather_backward(tg) */
static int gather_backward_jvp(ag_arena *a, ag_tensor *out,
                               ag_tensor *const *tx, ag_tensor **ty)
{
    AG_TRY(*ty =
               ag__gather_backward(a, tx[0], AG_PARAMS(out, index_params)->axis,
                                   out->inputs[1], out->ndim, out->shape));
    return 0;
}

ag_tensor *ag__gather_backward(ag_arena *a, ag_tensor *g, int axis,
                               ag_tensor *index, int ndim, const int64_t *shape)
{
    if (!g) return NULL;
    index_params p = {axis};
    ag_tensor *inputs[2] = {g, index};
    return ag__apply("ag_gradients", a, &ag__op_gather_backward, 2, inputs,
                     g->dtype, ndim, shape, &p);
}

ag_tensor *ag__axis_index(ag_arena *a, const ag_tensor *out, int axis,
                          const int32_t *values, int64_t start, int64_t step)
{
    ag_tensor *t =
        ag__tensor_new("ag_gradients", a, AG_I32, out->ndim, out->shape, true);
    if (!t) return NULL;
    int64_t outer, len, inner;
    ag__split_axis(out, axis, &outer, &len, &inner);
    int32_t *v = t->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < len; k++) {
            int32_t at = values ? values[k] : (int32_t)(start + k * step);
            int32_t *row = v + (o * len + k) * inner;
            for (int64_t i = 0; i < inner; i++) row[i] = at;
        }
    return t;
}

/* ---- index_select ---- */

static int index_select_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    const int32_t *idx = out->inputs[1]->data;
    int64_t outer, len, inner, k_len = out->inputs[1]->numel;
    ag__split_axis(x, AG_PARAMS(out, index_params)->axis, &outer, &len, &inner);
    size_t es = ag__dtype_size(out->dtype), row = (size_t)inner * es;
    const char *src = x->data;
    char *dst = out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < k_len; k++)
            memcpy(dst + (size_t)(o * k_len + k) * row,
                   src + (size_t)(o * len + idx[k]) * row, row);
    return 0;
}

/* dx[o,idx[k],i] += g[o,k,i] */
static int index_select_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    const int32_t *idx = out->inputs[1]->data;
    int64_t outer, len, inner, k_len = out->inputs[1]->numel;
    ag__split_axis(x, AG_PARAMS(out, index_params)->axis, &outer, &len, &inner);
    void *dx_data = ag__grad_accumulate(x);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *g = out->grad->data;
        real *dx = dx_data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < k_len; k++) {
                const real *restrict gr = g + (o * k_len + k) * inner;
                real *restrict dr = dx + (o * len + idx[k]) * inner;
                for (int64_t i = 0; i < inner; i++) dr[i] += gr[i];
            }
    });
    return 0;
}

/* dx = gather_backward(g, idx spread over y's shape) */
static int index_select_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                            const bool *want, ag_tensor **dx)
{
    const ag_tensor *x = out->inputs[0];
    int axis = AG_PARAMS(out, index_params)->axis;
    ag_tensor *index = ag__axis_index(a, out, axis, out->inputs[1]->data, 0, 0);
    AG_TRY(dx[0] =
               index ? ag__gather_backward(a, g, axis, index, x->ndim, x->shape)
                     : NULL);
    return 0;
}

/* ty = index_select(tx) */
static int index_select_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                            ag_tensor **ty)
{
    AG_TRY(*ty = ag_index_select(a, tx[0], AG_PARAMS(out, index_params)->axis,
                                 out->inputs[1]));
    return 0;
}

ag_tensor *ag_index_select(ag_arena *a, ag_tensor *x, int axis,
                           ag_tensor *index)
{
    const char *func = "ag_index_select";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    if (!index) return ag__null_input(func, 1), NULL;
    index_params p;
    if (ag__normalize_axis(func, axis, x, &p.axis)) return NULL;
    char bx[AG_SHAPE_STR_MAX], bi[AG_SHAPE_STR_MAX], of[AG_SHAPE_STR_MAX + 32];
    ag__shape_str(bx, x->ndim, x->shape);
    if (index->dtype == AG_I32 && index->ndim != 1) {
        ag__error(func, "index must be 1-D (K), got %s",
                  ag__shape_str(bi, index->ndim, index->shape));
        return NULL;
    }
    snprintf(of, sizeof of, " for axis %d of x %s", axis, bx);
    if (check_index_values(func, "index", index, x->shape[p.axis], of))
        return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[p.axis] = index->shape[0];
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, x->dtype, x->ndim, shape, &numel, &bytes))
        return NULL;
    ag_tensor *inputs[2] = {x, index};
    return ag__apply(func, a, &ag__op_index_select, 2, inputs, x->dtype,
                     x->ndim, shape, &p);
}

/* ---- embedding: weight's rows, index_select(weight, 0, ids) ---- */

ag_tensor *ag_embedding(ag_arena *a, ag_tensor *weight, ag_tensor *ids)
{
    const char *func = "ag_embedding";
    if (ag__check_float_inputs(func, a, 1, &weight)) return NULL;
    if (!ids) return ag__null_input(func, 1), NULL;
    char bw[AG_SHAPE_STR_MAX], bi[AG_SHAPE_STR_MAX], of[AG_SHAPE_STR_MAX + 32];
    ag__shape_str(bw, weight->ndim, weight->shape);
    if (weight->ndim != 2) {
        ag__error(func, "weight must be 2-D (V,C), got %s", bw);
        return NULL;
    }
    if (ids->ndim + 1 > AG_MAX_DIMS) {
        ag__error(func, "ids %s has too many axes for a result with one more",
                  ag__shape_str(bi, ids->ndim, ids->shape));
        return NULL;
    }
    snprintf(of, sizeof of, " for weight %s", bw);
    if (check_index_values(func, "id", ids, weight->shape[0], of)) return NULL;
    int64_t shape[AG_MAX_DIMS];
    memcpy(shape, ids->shape, (size_t)ids->ndim * sizeof *shape);
    shape[ids->ndim] = weight->shape[1];
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, weight->dtype, ids->ndim + 1, shape, &numel,
                       &bytes))
        return NULL;
    ag_tensor *flat = ag_reshape(a, ids, 1, &ids->numel);
    ag_tensor *rows = flat ? ag_index_select(a, weight, 0, flat) : NULL;
    return rows ? ag_reshape(a, rows, ids->ndim + 1, shape) : NULL;
}

/* The op-table entries. */
const ag_op ag__op_index_select = {.name = "index_select",
                                   .arity = 2,
                                   .nondiff_inputs = 1u << 1, /* the index */
                                   .params_size = sizeof(index_params),
                                   .forward = index_select_forward,
                                   .backward = index_select_backward,
                                   .vjp = index_select_vjp,
                                   .jvp = index_select_jvp};
const ag_op ag__op_gather = {.name = "gather",
                             .arity = 2,
                             .nondiff_inputs = 1u << 1,
                             .params_size = sizeof(index_params),
                             .forward = gather_forward,
                             .backward = gather_backward_kernel,
                             .vjp = gather_vjp,
                             .jvp = gather_jvp};
const ag_op ag__op_gather_backward = {.name = "gather_backward",
                                      .arity = 2,
                                      .nondiff_inputs = 1u << 1,
                                      .params_size = sizeof(index_params),
                                      .forward = gather_backward_forward,
                                      .backward = gather_backward_backward,
                                      .vjp = gather_backward_vjp,
                                      .jvp = gather_backward_jvp};
