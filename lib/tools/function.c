/* function.c: user-defined differentiable functions (ag_function), the C
 * counterpart of torch.autograd.Function.
 *
 * Each call gets a context in the output's arena that holds the function,
 * the user pointer, the inputs, the saved tensors and a per-call op-table
 * entry named after the function, whose backward is a trampoline into the
 * user's backward. The output records that op like a built-in op's result,
 * so ag_backward, anomaly detection and the DOT writer treat both alike.
 * A function that gives its backward in ops (backward_ops) also has the
 * op's vjp, so gradients of gradients go through it; one that gives a jvp
 * carries tangents. */
#include "../internal.h"

#include <stdarg.h>

struct ag_function_ctx {
    ag_op op; /* this call's op: name and arity from the function */
    const ag_function *fn;
    void *user;
    ag_arena *arena;
    int n;
    ag_tensor **inputs; /* n of them, in the arena */
    ag_tensor *output;  /* NULL during forward */
    int n_saved;
    ag_tensor *saved[AG_FUNCTION_MAX_SAVED];
};

/* n tensor pointers from a, zeroed, or NULL with an error. */
static ag_tensor **pointers(const ag_function_ctx *ctx, ag_arena *a, int n)
{
    ag_tensor **p =
        ag__arena_alloc(a, (size_t)n * sizeof *p, _Alignof(ag_tensor *));
    if (p)
        memset(p, 0, (size_t)n * sizeof *p);
    else
        ag_function_error(ctx, "out of memory for %d tensors", n);
    return p;
}

/* Reports a failed user callback (`what`, returning status) that left no
 * message. Returns -1. */
static int callback_failed(const ag_function_ctx *ctx, const char *what,
                           int status)
{
    if (!ag_last_error()[0])
        ag_function_error(ctx, "%s returned %d without an error", what, status);
    return -1;
}

/* Runs the user's backward_ops into grads (n of them, NULL: no gradient)
 * in arena a, under the current grad mode, and checks each result's dtype
 * and shape against its input's. */
static int run_backward_ops(ag_function_ctx *ctx, ag_arena *a, ag_tensor *g,
                            ag_tensor **grads)
{
    ag_clear_error();
    int status = ctx->fn->backward_ops(ctx, a, g, grads);
    if (status) return callback_failed(ctx, "backward_ops", status);
    char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
    for (int i = 0; i < ctx->n; i++) {
        const ag_tensor *d = grads[i], *x = ctx->inputs[i];
        if (!d ||
            (d->dtype == x->dtype && ag__same_shape(d, x->ndim, x->shape)))
            continue;
        ag_function_error(
            ctx,
            "backward_ops gave a %s %s gradient for input %d, "
            "which is %s %s",
            ag_dtype_name(d->dtype), ag__shape_str(b0, d->ndim, d->shape), i,
            ag_dtype_name(x->dtype), ag__shape_str(b1, x->ndim, x->shape));
        return -1;
    }
    return 0;
}

/* The op's backward: hands the user's backward the gradient buffers of the
 * inputs that require one (NULL for the others), with grad mode off. A
 * function with only a backward in ops has it run with grad mode off and
 * its results added into the buffers. */
static int function_backward(ag_tensor *out)
{
    ag_function_ctx *ctx = out->saved;
    ag_tensor **grad_inputs = pointers(ctx, ctx->arena, ctx->n);
    if (!grad_inputs) return -1;
    bool was = ag_set_grad_enabled(false);
    int status = 0;
    if (ctx->fn->backward) {
        for (int i = 0; i < ctx->n; i++)
            if (ctx->inputs[i]->requires_grad) {
                ag__grad_accumulate(ctx->inputs[i]); /* the user adds to it */
                grad_inputs[i] = ctx->inputs[i]->grad;
            }
        ag_clear_error();
        status = ctx->fn->backward(ctx, out->grad, grad_inputs);
        if (status) status = callback_failed(ctx, "backward", status);
    } else {
        status = run_backward_ops(ctx, ctx->arena, out->grad, grad_inputs);
        for (int i = 0; i < ctx->n && !status; i++) {
            ag_tensor *x = ctx->inputs[i];
            if (!x->requires_grad || !grad_inputs[i]) continue;
            AG_DISPATCH_FLOAT(x->dtype, {
                real *dx = ag__grad_accumulate(x);
                const real *d = grad_inputs[i]->data;
                for (int64_t e = 0; e < x->numel; e++) dx[e] += d[e];
            });
        }
    }
    ag_set_grad_enabled(was);
    return status;
}

/* The op's vjp: the user's backward_ops, with grad mode as ag_gradients
 * set it (on), so its result has a graph of its own. */
static int function_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                        const bool *want, ag_tensor **dx)
{
    ag_function_ctx *ctx = out->saved;
    ag_tensor **grads = pointers(ctx, a, ctx->n);
    if (!grads || run_backward_ops(ctx, a, g, grads)) return -1;
    for (int i = 0; i < ctx->n; i++) dx[i] = want[i] ? grads[i] : NULL;
    return 0;
}

/* The op's jvp: the user's, checked by ag__forward_tangent. */
static int function_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                        ag_tensor **ty)
{
    ag_function_ctx *ctx = out->saved;
    ag_clear_error();
    *ty = ctx->fn->jvp(ctx, a, tx);
    return *ty ? 0 : callback_failed(ctx, "jvp", 0);
}

/* Checks fn and the arguments of ag_function_apply. */
static int check_call(ag_arena *a, const ag_function *fn, int n,
                      ag_tensor *const *inputs)
{
    const char *func = "ag_function_apply";
    if (!fn || !fn->name || !fn->forward ||
        (!fn->backward && !fn->backward_ops)) {
        ag__error(func, "%s is NULL",
                  !fn            ? "the function"
                  : !fn->name    ? "the function's name"
                  : !fn->forward ? "its forward"
                                 : "its backward (and its backward_ops)");
        return -1;
    }
    if (n < 1 || !inputs) {
        ag__error(fn->name, "needs at least 1 input, got %d%s", n,
                  inputs ? "" : " (array NULL)");
        return -1;
    }
    return ag__check_float_inputs(fn->name, a, n, inputs);
}

/* Whether the values of x and y overlap in memory (a view shares them). */
static bool shares_data(const ag_tensor *x, const ag_tensor *y)
{
    const char *xs = x->data, *ys = y->data;
    size_t xn = ag__tensor_bytes(x), yn = ag__tensor_bytes(y);
    return xs && ys && xn && yn && xs < ys + yn && ys < xs + xn;
}

/* Checks that forward's result is a new tensor of the inputs' dtype, made
 * in the call's arena and without history of its own. */
static int check_output(const ag_function_ctx *ctx, const ag_tensor *out)
{
    if (!out) {
        if (!ag_last_error()[0])
            ag_function_error(ctx, "forward returned NULL without an error");
        return -1;
    }
    ag_dtype want = ctx->inputs[0]->dtype;
    const char *wrong = NULL; /* the last test that fails names it */
    if (out->op || out->requires_grad || out->grad)
        wrong = "a tensor with history or a gradient of its own";
    if (out->arena != ctx->arena) wrong = "a tensor made in another arena";
    if (out->dtype != want) wrong = "a tensor of another dtype";
    for (int i = 0; i < ctx->n; i++) {
        if (shares_data(out, ctx->inputs[i]))
            wrong = "a tensor sharing the values of an input (a view)";
        if (out == ctx->inputs[i]) wrong = "one of its inputs";
    }
    if (!wrong) return 0;
    char shape[AG_SHAPE_STR_MAX];
    ag_function_error(ctx,
                      "forward returned %s (%s %s, for %s inputs); return a "
                      "new tensor made in the arena it is given",
                      wrong, ag_dtype_name(out->dtype),
                      ag__shape_str(shape, out->ndim, out->shape),
                      ag_dtype_name(want));
    return -1;
}

ag_tensor *ag_function_apply(ag_arena *a, const ag_function *fn, int n,
                             ag_tensor *const *inputs, void *user)
{
    if (check_call(a, fn, n, inputs)) return NULL;
    ag_function_ctx *ctx =
        ag__arena_alloc(a, sizeof *ctx, _Alignof(ag_function_ctx));
    if (!ctx) {
        ag__error(fn->name, "out of memory for the call's context");
        return NULL;
    }
    *ctx = (ag_function_ctx){
        .op = {.name = fn->name,
               .arity = AG_VARIADIC,
               .backward = function_backward,
               .vjp = fn->backward_ops ? function_vjp : NULL,
               .jvp = fn->jvp ? function_jvp : NULL},
        .fn = fn,
        .user = user,
        .arena = a,
        .n = n,
    };
    ctx->inputs = pointers(ctx, a, n);
    if (!ctx->inputs) return NULL;
    memcpy(ctx->inputs, inputs, (size_t)n * sizeof *inputs);
    ag_clear_error();
    bool was = ag_set_grad_enabled(false);
    ag_tensor *out = fn->forward(ctx, a, ctx->inputs, n);
    ag_set_grad_enabled(was);
    if (check_output(ctx, out) ||
        ag__record(fn->name, out, &ctx->op, n, ctx->inputs))
        return NULL;
    out->saved = ctx;
    ctx->output = out;
    if (ag__forward_tangent(fn->name, out) || ag__finish(fn->name, out))
        return NULL;
    return out;
}

void *ag_function_user(const ag_function_ctx *ctx)
{
    return ctx ? ctx->user : NULL;
}

ag_tensor *ag_function_input(const ag_function_ctx *ctx, int i)
{
    return ctx && i >= 0 && i < ctx->n ? ctx->inputs[i] : NULL;
}

ag_tensor *ag_function_output(const ag_function_ctx *ctx)
{
    return ctx ? ctx->output : NULL;
}

ag_arena *ag_function_arena(const ag_function_ctx *ctx)
{
    return ctx ? ctx->arena : NULL;
}

int ag_function_save(ag_function_ctx *ctx, ag_tensor *t)
{
    if (!ctx) {
        ag__error("ag_function_save", "the context is NULL");
        return -1;
    }
    if (!t) {
        ag_function_error(ctx, "ag_function_save: the tensor is NULL");
        return -1;
    }
    if (ctx->n_saved == AG_FUNCTION_MAX_SAVED) {
        ag_function_error(ctx, "ag_function_save: already %d tensors saved",
                          AG_FUNCTION_MAX_SAVED);
        return -1;
    }
    ctx->saved[ctx->n_saved] = t;
    return ctx->n_saved++;
}

ag_tensor *ag_function_saved(const ag_function_ctx *ctx, int i)
{
    return ctx && i >= 0 && i < ctx->n_saved ? ctx->saved[i] : NULL;
}

void ag_function_error(const ag_function_ctx *ctx, const char *fmt, ...)
{
    char message[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    ag__error(ctx ? ctx->fn->name : "ag_function_error", "%s", message);
}
