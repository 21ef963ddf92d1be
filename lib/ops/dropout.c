/* dropout.c: inverted dropout. Each element is kept with probability 1 - p
 * and scaled by 1 / (1 - p), or zeroed; the mask of kept elements is drawn
 * from the caller's generator in forward and saved for backward. */
#include "../internal.h"

#include <math.h>

/* y = x * mask / (1 - p) */
static int dropout_forward(ag_tensor *out)
{
    unsigned char *keep = ag__arena_alloc(out->arena, (size_t)out->numel, 1);
    if (!keep && out->numel) {
        ag__error("ag_dropout", "out of memory");
        return -1;
    }
    double p = out->args.scalar;
    for (int64_t i = 0; i < out->numel; i++)
        keep[i] = ag_rng_uniform(out->args.rng) >= p;
    out->args.rng = NULL; /* the caller's generator may not outlive out */
    out->saved = keep;
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *x = out->inputs[0]->data;
        real *y = out->data, scale = (real)(1 / (1 - p));
        for (int64_t i = 0; i < out->numel; i++) /* NaN * 0 stays NaN */
            y[i] = x[i] * (keep[i] ? scale : 0);
    });
    return 0;
}

/* dx = g * mask / (1 - p) */
static int dropout_backward(ag_tensor *out)
{
    const unsigned char *restrict keep = out->saved;
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict g = out->grad->data;
        real *restrict dx = dx_data;
        const real scale = (real)(1 / (1 - out->args.scalar));
        AG_GRAD_LOOP(set, out->numel, dx, g[i] * (keep[i] ? scale : 0));
    });
    return 0;
}

ag_tensor *ag_dropout(ag_arena *a, ag_tensor *x, double p, ag_rng *rng)
{
    const char *func = "ag_dropout";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    if (!rng) {
        ag__error(func, "rng is NULL");
        return NULL;
    }
    if (!(p >= 0 && p < 1)) {
        ag__error(func, "the probability must be in [0, 1), got %g", p);
        return NULL;
    }
    ag_op_args args = {.scalar = p, .rng = rng};
    return ag__apply(func, a, &ag__op_dropout, &x, x->dtype, x->ndim, x->shape,
                     &args);
}

/* The op-table entry: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_dropout =
    {"dropout", 1, false, 0, dropout_forward, dropout_backward};
/* clang-format on */
