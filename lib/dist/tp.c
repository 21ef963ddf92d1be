/* tp.c: tensor parallelism, as Megatron-LM splits a layer over ranks.
 *
 * Two differentiable collectives do all the communication (Megatron's f
 * and g), both user-defined functions (ag_function) whose forward and
 * backward are each other's:
 *   copy:   y = x on every rank;        dx = sum over ranks of dy
 *   reduce: y = sum over ranks of x;    dx = dy
 * A column-parallel Linear keeps rows [out r / p, out (r+1) / p) of W and
 * b and gives its part of the output features: y_r = copy(x) W_r^T + b_r.
 * A row-parallel Linear keeps columns [in r / p, ...) of W, takes that
 * part of the input features, and sums: y = reduce(x_r W_r^T) + b. The MLP
 * block is column, activation, row (one reduce forward, one backward);
 * attention gives each rank whole heads: its q, k, v projections are
 * column-parallel by heads, each head's attention is local, and the
 * output projection is row-parallel.
 *
 * A rank whose input is NULL (an op before failed) tells the others
 * (ag__dist_notify) instead of joining the collective, so that they stop
 * at once with its error. */
#include "dist_internal.h"

#include <stdlib.h>
#include <string.h>

/* dst += src, elementwise, same dtype and shape. */
static void add_into(ag_tensor *dst, const ag_tensor *src)
{
    int64_t n = ag_numel(dst);
    if (ag_type(dst) == AG_F64) {
        double *y = ag_data(dst);
        const double *x = ag_data((ag_tensor *)src);
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
    } else {
        float *y = ag_data(dst);
        const float *x = ag_data((ag_tensor *)src);
        for (int64_t i = 0; i < n; i++) y[i] += x[i];
    }
}

/* copy: forward y = x */
static ag_tensor *copy_forward(ag_function_ctx *ctx, ag_arena *a,
                               ag_tensor *const *in, int n)
{
    (void)ctx;
    (void)n;
    return ag_detach(a, in[0]);
}

/* copy: backward dx += sum over ranks of dy */
static int copy_backward(ag_function_ctx *ctx, ag_tensor *g,
                         ag_tensor *const *dx)
{
    ag_dist *d = ag_function_user(ctx);
    ag_tensor *sum = ag_detach(ag_function_arena(ctx), g);
    if (!sum || ag__dist_sum(d, "ag_tp_copy", sum)) return -1;
    if (dx[0]) add_into(dx[0], sum);
    return 0;
}

/* reduce: forward y = sum over ranks of x */
static ag_tensor *reduce_forward(ag_function_ctx *ctx, ag_arena *a,
                                 ag_tensor *const *in, int n)
{
    (void)n;
    ag_tensor *y = ag_detach(a, in[0]);
    if (!y || ag__dist_sum(ag_function_user(ctx), "ag_tp_reduce", y))
        return NULL;
    return y;
}

/* reduce: backward dx += dy */
static int reduce_backward(ag_function_ctx *ctx, ag_tensor *g,
                           ag_tensor *const *dx)
{
    (void)ctx;
    if (dx[0]) add_into(dx[0], g);
    return 0;
}

static const ag_function copy_fn = {"ag_tp_copy", copy_forward, copy_backward,
                                    NULL, NULL};
static const ag_function reduce_fn = {"ag_tp_reduce", reduce_forward,
                                      reduce_backward, NULL, NULL};

/* Applies fn to x, or tells the other ranks of a NULL x. */
static ag_tensor *collective(ag_arena *a, ag_dist *d, const ag_function *fn,
                             ag_tensor *x)
{
    if (ag__dist_usable(fn->name, d)) return NULL;
    if (!x || ag__dist_check_count(fn->name, "x", x)) {
        if (!ag_last_error()[0]) ag_set_error(fn->name, "x is NULL");
        ag__dist_notify(d, fn->name);
        return NULL;
    }
    if (!ag_is_requires_grad(x) || !ag_is_grad_enabled()) {
        /* nothing to record: the forward alone */
        ag_tensor *y = ag_detach(a, x);
        if (!y) return ag__dist_notify(d, fn->name), NULL;
        return fn == &copy_fn || !ag__dist_sum(d, fn->name, y) ? y : NULL;
    }
    return ag_function_apply(a, fn, 1, &x, d);
}

ag_tensor *ag_tp_copy(ag_arena *a, ag_dist *d, ag_tensor *x)
{
    return collective(a, d, &copy_fn, x);
}

ag_tensor *ag_tp_reduce(ag_arena *a, ag_dist *d, ag_tensor *x)
{
    return collective(a, d, &reduce_fn, x);
}

/* ---- layers ---- */

/* Rows [lo, hi) of the 2-D (or 1-D: elements) tensor t, as a new leaf
 * that requires a gradient, in a. */
static ag_tensor *rows_of(ag_arena *a, const ag_tensor *t, int64_t lo,
                          int64_t hi)
{
    int64_t cols = ag_ndim(t) == 2 ? ag_shape(t)[1] : 1;
    size_t elem = ag_type(t) == AG_F64 ? sizeof(double) : sizeof(float);
    int64_t shape[2] = {hi - lo, cols};
    ag_tensor *s = ag_from_data(a, ag_type(t), ag_ndim(t), shape,
                                (const char *)ag_data((ag_tensor *)t) +
                                    (size_t)(lo * cols) * elem);
    if (s) ag_requires_grad(s, true);
    return s;
}

/* Columns [lo, hi) of the 2-D tensor t, as rows_of. */
static ag_tensor *columns_of(ag_arena *a, const ag_tensor *t, int64_t lo,
                             int64_t hi)
{
    int64_t rows = ag_shape(t)[0], cols = ag_shape(t)[1];
    ag_tensor *s = ag_zeros(a, ag_type(t), 2, (int64_t[]){rows, hi - lo});
    if (!s) return NULL;
    size_t elem = ag_type(t) == AG_F64 ? sizeof(double) : sizeof(float);
    const char *src = ag_data((ag_tensor *)t);
    char *dst = ag_data(s);
    for (int64_t i = 0; i < rows; i++)
        memcpy(dst + (size_t)(i * (hi - lo)) * elem,
               src + (size_t)(i * cols + lo) * elem, (size_t)(hi - lo) * elem);
    ag_requires_grad(s, true);
    return s;
}

/* Checks a full Linear's weight (out, in) and bias (out) or NULL for a
 * split of `split_size` features over d's ranks; reports as func. */
static int check_linear(const char *func, ag_dist *d, const ag_tensor *w,
                        const ag_tensor *b, int64_t split_size,
                        const char *what)
{
    if (!w || ag_ndim(w) != 2 || ag_type(w) == AG_I32) {
        ag_set_error(func, "the weight must be a float (out, in) tensor");
        return -1;
    }
    if (b && (ag_ndim(b) != 1 || ag_shape(b)[0] != ag_shape(w)[0] ||
              ag_type(b) != ag_type(w))) {
        char bs[64], ws[64];
        ag_set_error(func, "the bias %s does not match the weight %s",
                     ag__dist_describe(bs, sizeof bs, b),
                     ag__dist_describe(ws, sizeof ws, w));
        return -1;
    }
    if (split_size % d->size) {
        ag_set_error(func, "%lld %s do not split evenly over %d ranks",
                     (long long)split_size, what, d->size);
        return -1;
    }
    return 0;
}

/* Makes the rank's part of a Linear (ag_tp_linear_new's work); NULL with
 * an error (local). */
static ag_tp_linear *make_linear(ag_arena *a, ag_dist *d, ag_tp_split split,
                                 const ag_tensor *weight, const ag_tensor *bias)
{
    const char *func = "ag_tp_linear_new";
    if (!a) {
        ag_set_error(func, "arena is NULL");
        return NULL;
    }
    if (split != AG_TP_COLUMN && split != AG_TP_ROW) {
        ag_set_error(func, "unknown split %d", (int)split);
        return NULL;
    }
    bool column = split == AG_TP_COLUMN;
    if (check_linear(func, d, weight, bias,
                     weight ? ag_shape(weight)[column ? 0 : 1] : 0,
                     column ? "output features" : "input features"))
        return NULL;
    int64_t out = ag_shape(weight)[0], in = ag_shape(weight)[1];
    int64_t n = column ? out : in, lo = n * d->rank / d->size,
            hi = n * (d->rank + 1) / d->size;
    ag_tp_linear *l = ag_arena_alloc(a, sizeof *l);
    if (!l) return NULL;
    *l = (ag_tp_linear){
        .d = d, .split = split, .in = in, .out = out, .lo = lo, .hi = hi};
    l->weight =
        column ? rows_of(a, weight, lo, hi) : columns_of(a, weight, lo, hi);
    if (bias)
        l->bias = column ? rows_of(a, bias, lo, hi) : rows_of(a, bias, 0, out);
    l->params = ag_params_new(a);
    if (!l->weight || (bias && !l->bias) || !l->params ||
        ag_params_add(l->params, "weight", l->weight) ||
        (bias && ag_params_add(l->params, "bias", l->bias)))
        return NULL;
    return l;
}

ag_tp_linear *ag_tp_linear_new(ag_arena *a, ag_dist *d, ag_tp_split split,
                               const ag_tensor *weight, const ag_tensor *bias)
{
    const char *func = "ag_tp_linear_new";
    if (ag__dist_usable(func, d)) return NULL;
    ag_tp_linear *l = make_linear(a, d, split, weight, bias);
    char desc[128] = "";
    if (l)
        snprintf(desc, sizeof desc, "%s %lld -> %lld",
                 split == AG_TP_COLUMN ? "column" : "row", (long long)l->in,
                 (long long)l->out);
    return ag__dist_check(d, func, l ? 0 : -1, desc) ? NULL : l;
}

ag_tensor *ag_tp_linear_forward(ag_arena *step, ag_tp_linear *l, ag_tensor *x)
{
    const char *func = "ag_tp_linear_forward";
    if (!l) {
        ag_set_error(func, "the layer is NULL");
        return NULL;
    }
    if (l->split == AG_TP_COLUMN)
        return ag_linear(step, ag_tp_copy(step, l->d, x), l->weight, l->bias);
    ag_tensor *part = x ? ag_linear(step, x, l->weight, NULL) : NULL;
    ag_tensor *y = ag_tp_reduce(step, l->d, part);
    return l->bias ? ag_add(step, y, l->bias) : y;
}

/* ---- the MLP block ---- */

ag_tp_mlp *ag_tp_mlp_new(ag_arena *a, ag_dist *d, const ag_tensor *w1,
                         const ag_tensor *b1, ag_activation act,
                         const ag_tensor *w2, const ag_tensor *b2)
{
    ag_tp_mlp *m = a ? ag_arena_alloc(a, sizeof *m) : NULL;
    if (!m && !ag_last_error()[0])
        ag_set_error("ag_tp_mlp_new", "arena is NULL");
    /* each layer agrees with the other ranks (a NULL m fails both) */
    ag_tp_linear *fc1 = ag_tp_linear_new(m ? a : NULL, d, AG_TP_COLUMN, w1, b1);
    ag_tp_linear *fc2 = fc1 ? ag_tp_linear_new(a, d, AG_TP_ROW, w2, b2) : NULL;
    if (!fc2) return NULL;
    m->fc1 = fc1;
    m->fc2 = fc2;
    m->act = act;
    m->params = ag_params_new(a);
    if (!m->params || ag_params_extend(m->params, "fc1", fc1->params) ||
        ag_params_extend(m->params, "fc2", fc2->params))
        return NULL;
    return m;
}

ag_tensor *ag_tp_mlp_forward(ag_arena *step, ag_tp_mlp *m, ag_tensor *x)
{
    if (!m) {
        ag_set_error("ag_tp_mlp_forward", "the block is NULL");
        return NULL;
    }
    ag_tensor *h = ag_tp_linear_forward(step, m->fc1, x);
    return ag_tp_linear_forward(step, m->fc2,
                                h ? ag_activate(step, h, m->act) : NULL);
}

/* ---- attention ---- */

ag_tp_attention *
ag_tp_attention_new(ag_arena *a, ag_dist *d, const ag_tensor *in_proj_weight,
                    const ag_tensor *in_proj_bias, const ag_tensor *out_weight,
                    const ag_tensor *out_bias, int64_t heads, bool causal)
{
    const char *func = "ag_tp_attention_new";
    if (ag__dist_usable(func, d)) return NULL;
    ag_tp_attention *m = a ? ag_arena_alloc(a, sizeof *m) : NULL;
    int status = m ? 0 : -1;
    if (!a) ag_set_error(func, "arena is NULL");
    int64_t e = in_proj_weight && ag_ndim(in_proj_weight) == 2
                    ? ag_shape(in_proj_weight)[1]
                    : 0;
    if (!status && (e < 1 || ag_shape(in_proj_weight)[0] != 3 * e ||
                    heads < 1 || e % heads || heads % d->size)) {
        ag_set_error(func,
                     "needs in_proj_weight (3E, E) with E divisible by the "
                     "%lld heads, and heads divisible by the %d ranks",
                     (long long)heads, d->size);
        status = -1;
    }
    if (!status) {
        *m = (ag_tp_attention){.d = d,
                               .embed = e,
                               .heads = heads,
                               .local_heads = heads / d->size,
                               .causal = causal};
        m->params = ag_params_new(a);
        static const char *const names[3] = {"q_proj", "k_proj", "v_proj"};
        int64_t lo = e * d->rank / d->size, hi = e * (d->rank + 1) / d->size;
        for (int k = 0; k < 3 && !status; k++) {
            /* rows k E + [lo, hi) of the packed projections */
            m->proj[k] = rows_of(a, in_proj_weight, k * e + lo, k * e + hi);
            m->proj_bias[k] =
                in_proj_bias ? rows_of(a, in_proj_bias, k * e + lo, k * e + hi)
                             : NULL;
            char name[32];
            snprintf(name, sizeof name, "%s.weight", names[k]);
            status = !m->params || !m->proj[k] ||
                             (in_proj_bias && !m->proj_bias[k]) ||
                             ag_params_add(m->params, name, m->proj[k])
                         ? -1
                         : 0;
            snprintf(name, sizeof name, "%s.bias", names[k]);
            if (!status && in_proj_bias)
                status = ag_params_add(m->params, name, m->proj_bias[k]);
        }
    }
    char desc[128] = "";
    if (!status)
        snprintf(desc, sizeof desc, "attention E %lld, %lld heads",
                 (long long)e, (long long)heads);
    if (ag__dist_check(d, func, status, desc)) return NULL;
    m->out = ag_tp_linear_new(a, d, AG_TP_ROW, out_weight, out_bias);
    if (!m->out || ag_params_extend(m->params, "out_proj", m->out->params))
        return NULL;
    return m;
}

/* This rank's heads of x (N,T,E) by projection k: (N, H/p, T, D). */
static ag_tensor *local_heads(ag_arena *a, const ag_tp_attention *m,
                              ag_tensor *x, int k)
{
    ag_tensor *y = ag_linear(a, x, m->proj[k], m->proj_bias[k]);
    if (!y) return NULL;
    y = ag_reshape(a, y, 4,
                   (int64_t[]){ag_shape(x)[0], ag_shape(x)[1], m->local_heads,
                               m->embed / m->heads});
    return ag_permute(a, y, (int[]){0, 2, 1, 3});
}

ag_tensor *ag_tp_attention_forward(ag_arena *step, ag_tp_attention *m,
                                   ag_tensor *x)
{
    if (!m) {
        ag_set_error("ag_tp_attention_forward", "the module is NULL");
        return NULL;
    }
    ag_tensor *xs = ag_tp_copy(step, m->d, x);
    if (xs && ag_ndim(xs) != 3) {
        ag_set_error("ag_tp_attention_forward", "x must be (N,T,E)");
        xs = NULL; /* the row-parallel projection tells the other ranks */
    }
    ag_tensor *h =
        xs ? ag_scaled_dot_product_attention(
                 step, local_heads(step, m, xs, 0), local_heads(step, m, xs, 1),
                 local_heads(step, m, xs, 2), NULL, m->causal)
           : NULL;
    if (h) { /* (N, H/p, T, D) -> (N, T, E/p) */
        h = ag_permute(step, h, (int[]){0, 2, 1, 3});
        h = ag_reshape(
            step, h, 3,
            (int64_t[]){ag_shape(x)[0], ag_shape(x)[1], m->embed / m->d->size});
    }
    return ag_tp_linear_forward(step, m->out, h);
}
