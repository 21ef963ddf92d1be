/* functional.c: the functional API, the C counterpart of
 * torch.autograd.functional: vector-Jacobian, Jacobian-vector and
 * Hessian-vector products, full Jacobians and Hessians of a function f of
 * tensors (an ag_fn). Each applies f to fresh leaves that share the
 * inputs' values, so the caller's tensors and gradients are never touched:
 *   vjp:      v^T J       one backward pass (ag_gradients)
 *   jvp:      J v         forward mode: tangents carried by the forward pass
 *   hvp:      H v         backward with create_graph, then a second backward
 *                         seeded with v (double backward)
 *   jacobian: J           one backward pass per output element
 *   hessian:  H           create_graph once, then one backward pass per
 *                         element of the gradient
 * Rows of Jacobians and Hessians are computed in a scratch arena that is
 * reset after each, so memory stays at one pass's worth. */
#include "../internal.h"

/* Checks the common arguments; reports as func. */
static int check_call(const char *func, ag_arena *a, ag_fn f, int n,
                      ag_tensor *const *inputs)
{
    if (!a || !f || !inputs || n < 1) {
        ag__error(func,
                  "needs an arena, a function and at least one input: got "
                  "%s, %s, %d inputs%s",
                  a ? "an arena" : "arena NULL", f ? "f" : "f NULL", n,
                  inputs ? "" : " (array NULL)");
        return -1;
    }
    return ag__check_float_inputs(func, a, n, inputs);
}

/* Checks that v (named what) has the dtype and shape of `like`. */
static int check_pair(const char *func, const char *what, const ag_tensor *v,
                      const ag_tensor *like, const char *like_name)
{
    if (v->dtype == like->dtype && ag__same_shape(v, like->ndim, like->shape))
        return 0;
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    ag__error(func, "%s is %s %s, but %s is %s %s", what,
              ag_dtype_name(v->dtype), ag__shape_str(b0, v->ndim, v->shape),
              like_name, ag_dtype_name(like->dtype),
              ag__shape_str(b1, like->ndim, like->shape));
    return -1;
}

/* n fresh leaves in a with the inputs' values, requiring a gradient when
 * asked; NULL with an error. */
static ag_tensor **fresh_leaves(const char *func, ag_arena *a, int n,
                                ag_tensor *const *inputs, bool requires_grad)
{
    ag_tensor **x =
        ag__arena_alloc(a, (size_t)n * sizeof *x, _Alignof(ag_tensor *));
    if (!x) {
        ag__error(func, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        x[i] = ag_detach(a, inputs[i]);
        if (!x[i]) return NULL;
        x[i]->requires_grad = requires_grad;
    }
    return x;
}

/* f(x) with grad mode set to `record`; a failure of f, or an output that is
 * not a float tensor, is reported as func with f's message. */
static ag_tensor *call_f(const char *func, ag_arena *a, ag_fn f,
                         ag_tensor *const *x, int n, void *user, bool record)
{
    ag_clear_error();
    bool was = ag_set_grad_enabled(record);
    ag_tensor *y = f(a, x, n, user);
    ag_set_grad_enabled(was);
    if (!y) {
        char cause[400];
        snprintf(cause, sizeof cause, "%s",
                 ag_last_error()[0] ? ag_last_error()
                                    : "returned NULL without an error");
        ag__error(func, "f failed: %s", cause);
        return NULL;
    }
    if (y->dtype == AG_I32) {
        ag__error(func, "f's output is i32; it must be a float tensor");
        return NULL;
    }
    return y;
}

/* Sets *output (when asked for) to a plain copy of y. */
static int give_output(ag_arena *a, ag_tensor *y, ag_tensor **output)
{
    if (!output) return 0;
    *output = ag_detach(a, y);
    return *output ? 0 : -1;
}

/* Zeros of each input's shape into out[0..n). */
static int zeros_like_inputs(ag_arena *a, int n, ag_tensor *const *x,
                             ag_tensor **out)
{
    for (int i = 0; i < n; i++) {
        out[i] = ag_zeros(a, x[i]->dtype, x[i]->ndim, x[i]->shape);
        if (!out[i]) return -1;
    }
    return 0;
}

int ag_vjp(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs, void *user,
           ag_tensor *v, ag_tensor **output, ag_tensor **vjps)
{
    const char *func = "ag_vjp";
    if (check_call(func, a, f, n, inputs)) return -1;
    if (!vjps) {
        ag__error(func, "the vjps array is NULL");
        return -1;
    }
    ag_tensor **x = fresh_leaves(func, a, n, inputs, true);
    ag_tensor *y = x ? call_f(func, a, f, x, n, user, true) : NULL;
    if (!y) return -1;
    if (v && check_pair(func, "v", v, y, "f's output")) return -1;
    if (!v && y->numel != 1) {
        char b[AG_SHAPE_STR_MAX];
        ag__error(func, "v is NULL, but f's output %s has %lld elements",
                  ag__shape_str(b, y->ndim, y->shape), (long long)y->numel);
        return -1;
    }
    int status = y->requires_grad
                     ? ag_gradients(a, 1, &y, &v, n, x, false, vjps)
                     : zeros_like_inputs(a, n, x, vjps);
    return status ? -1 : give_output(a, y, output);
}

int ag_jvp(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs, void *user,
           ag_tensor *const *v, ag_tensor **output, ag_tensor **jvp)
{
    const char *func = "ag_jvp";
    if (check_call(func, a, f, n, inputs)) return -1;
    if (!v || !jvp) {
        ag__error(func, "the %s is NULL", !v ? "tangent array v" : "jvp");
        return -1;
    }
    ag_tensor **x =
        ag__arena_alloc(a, (size_t)n * sizeof *x, _Alignof(ag_tensor *));
    if (!x) {
        ag__error(func, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "v[%d]", i);
        if (v[i] && check_pair(func, what, v[i], inputs[i], "its input"))
            return -1;
        x[i] =
            v[i] ? ag_make_dual(a, inputs[i], v[i]) : ag_detach(a, inputs[i]);
        if (!x[i]) return -1;
    }
    ag_tensor *y = call_f(func, a, f, x, n, user, false);
    if (!y) return -1;
    *jvp = y->tangent ? y->tangent : ag_zeros(a, y->dtype, y->ndim, y->shape);
    if (!*jvp) return -1;
    ag_tensor *tangent = y->tangent;
    y->tangent = NULL; /* the output is given as a plain tensor */
    int status = give_output(a, y, output);
    y->tangent = tangent;
    return status;
}

/* A one-element output, or an error naming func. */
static int check_scalar(const char *func, const ag_tensor *y)
{
    if (y->numel == 1) return 0;
    char b[AG_SHAPE_STR_MAX];
    ag__error(func, "f must return one element, got shape %s (%lld elements)",
              ag__shape_str(b, y->ndim, y->shape), (long long)y->numel);
    return -1;
}

int ag_hvp(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs, void *user,
           ag_tensor *const *v, ag_tensor **output, ag_tensor **hvps)
{
    const char *func = "ag_hvp";
    if (check_call(func, a, f, n, inputs)) return -1;
    if (!v || !hvps) {
        ag__error(func, "the %s is NULL", !v ? "vector array v" : "hvps");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "v[%d]", i);
        if (v[i] && check_pair(func, what, v[i], inputs[i], "its input"))
            return -1;
    }
    ag_tensor **x = fresh_leaves(func, a, n, inputs, true);
    ag_tensor *y = x ? call_f(func, a, f, x, n, user, true) : NULL;
    if (!y || check_scalar(func, y)) return -1;
    if (!y->requires_grad) return zeros_like_inputs(a, n, x, hvps);
    ag_tensor **g =
        ag__arena_alloc(a, (size_t)(3 * n) * sizeof *g, _Alignof(ag_tensor *));
    if (!g) {
        ag__error(func, "out of memory");
        return -1;
    }
    if (ag_gradients(a, 1, &y, NULL, n, x, true, g)) return -1;
    /* H v = d <g, v> / dx: the gradients that depend on x, seeded with v. */
    ag_tensor **outs = g + n, **seeds = g + 2 * n;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (v[i] && g[i]->requires_grad) {
            outs[m] = g[i];
            seeds[m++] = v[i];
        }
    int status = m ? ag_gradients(a, m, outs, seeds, n, x, false, hvps)
                   : zeros_like_inputs(a, n, x, hvps);
    return status ? -1 : give_output(a, y, output);
}

/* The shape `first` followed by `second`, or an error when it has more than
 * AG_MAX_DIMS axes. */
static int joined_shape(const char *func, const ag_tensor *first,
                        const ag_tensor *second, int *ndim, int64_t *shape)
{
    *ndim = first->ndim + second->ndim;
    if (*ndim > AG_MAX_DIMS) {
        char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
        ag__error(func,
                  "the result for shapes %s and %s would have %d axes "
                  "(at most %d)",
                  ag__shape_str(b0, first->ndim, first->shape),
                  ag__shape_str(b1, second->ndim, second->shape), *ndim,
                  AG_MAX_DIMS);
        return -1;
    }
    memcpy(shape, first->shape, (size_t)first->ndim * sizeof *shape);
    memcpy(shape + first->ndim, second->shape,
           (size_t)second->ndim * sizeof *shape);
    return 0;
}

/* For every element e of `y`: the gradients of y[e] with respect to x,
 * computed in `work` and copied into row e of out[j] (whose rows are x[j]'s
 * size), work being reset after each. A y that requires no gradient leaves
 * out as it is (zeros). */
static int rows_of(ag_arena *work, ag_tensor *y, int n, ag_tensor *const *x,
                   ag_tensor *const *out)
{
    if (!y->requires_grad) return 0;
    for (int64_t e = 0; e < y->numel; e++) {
        ag_tensor *seed = ag_zeros(work, y->dtype, y->ndim, y->shape);
        ag_tensor **row = ag__arena_alloc(work, (size_t)n * sizeof *row,
                                          _Alignof(ag_tensor *));
        if (!seed || !row) {
            if (seed) ag__error("ag_gradients", "out of memory");
            return -1;
        }
        AG_DISPATCH_FLOAT(y->dtype, { ((real *)seed->data)[e] = 1; });
        if (ag_gradients(work, 1, &y, &seed, n, x, false, row)) return -1;
        for (int j = 0; j < n; j++) {
            size_t bytes = ag__tensor_bytes(row[j]);
            memcpy((char *)out[j]->data + (size_t)e * bytes, row[j]->data,
                   bytes);
        }
        ag_arena_reset(work);
    }
    return 0;
}

/* Runs rows_of in a scratch arena of its own. */
static int rows_in_scratch(const char *func, ag_tensor *y, int n,
                           ag_tensor *const *x, ag_tensor *const *out)
{
    ag_arena *work = ag_arena_new();
    if (!work) {
        ag__error(func, "out of memory for its scratch arena");
        return -1;
    }
    int status = rows_of(work, y, n, x, out);
    ag_arena_free(work);
    return status;
}

/* The common start of ag_jacobian and ag_hessian: checks (results is the
 * caller's array, named what), fresh leaves in *x, f's output. */
static ag_tensor *start(const char *func, ag_arena *a, ag_fn f, int n,
                        ag_tensor *const *inputs, void *user,
                        ag_tensor **results, const char *what, ag_tensor ***x)
{
    if (check_call(func, a, f, n, inputs)) return NULL;
    if (!results) {
        ag__error(func, "the %s array is NULL", what);
        return NULL;
    }
    *x = fresh_leaves(func, a, n, inputs, true);
    return *x ? call_f(func, a, f, *x, n, user, true) : NULL;
}

int ag_jacobian(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
                void *user, ag_tensor **jacobians)
{
    const char *func = "ag_jacobian";
    ag_tensor **x;
    ag_tensor *y =
        start(func, a, f, n, inputs, user, jacobians, "jacobians", &x);
    if (!y) return -1;
    for (int i = 0; i < n; i++) {
        int ndim;
        int64_t shape[AG_MAX_DIMS];
        if (joined_shape(func, y, x[i], &ndim, shape)) return -1;
        jacobians[i] = ag_zeros(a, x[i]->dtype, ndim, shape);
        if (!jacobians[i]) return -1;
    }
    return rows_in_scratch(func, y, n, x, jacobians);
}

int ag_hessian(ag_arena *a, ag_fn f, int n, ag_tensor *const *inputs,
               void *user, ag_tensor **hessians)
{
    const char *func = "ag_hessian";
    ag_tensor **x;
    ag_tensor *y = start(func, a, f, n, inputs, user, hessians, "hessians", &x);
    if (!y || check_scalar(func, y)) return -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int ndim;
            int64_t shape[AG_MAX_DIMS];
            if (joined_shape(func, x[i], x[j], &ndim, shape)) return -1;
            hessians[i * n + j] = ag_zeros(a, x[i]->dtype, ndim, shape);
            if (!hessians[i * n + j]) return -1;
        }
    if (!y->requires_grad) return 0;
    ag_tensor **g =
        ag__arena_alloc(a, (size_t)n * sizeof *g, _Alignof(ag_tensor *));
    if (!g) {
        ag__error(func, "out of memory");
        return -1;
    }
    if (ag_gradients(a, 1, &y, NULL, n, x, true, g)) return -1;
    for (int i = 0; i < n; i++)
        if (rows_in_scratch(func, g[i], n, x, hessians + i * n)) return -1;
    return 0;
}
