/* dropout.c: inverted dropout. Each element is kept with probability 1 - p
 * and scaled by 1 / (1 - p), or zeroed; the mask of kept elements is drawn
 * from the caller's generator in forward and saved for backward. */
#include "../internal.h"

#include <math.h>

typedef struct {
    double p;    /* the probability of zeroing an element */
    ag_rng *rng; /* the caller's generator, during forward only */
} dropout_params;

typedef struct {
    unsigned char *keep; /* 1 for a kept element */
} dropout_saved;

/* y = x * mask / (1 - p) */
static int dropout_forward(ag_tensor *out)
{
    unsigned char *keep = ag__arena_alloc(out->arena, (size_t)out->numel, 1);
    if (!keep && out->numel) {
        ag__error("ag_dropout", "out of memory");
        return -1;
    }
    dropout_params *params = out->params;
    double p = params->p;
    for (int64_t i = 0; i < out->numel; i++)
        keep[i] = ag_rng_uniform(params->rng) >= p;
    params->rng = NULL; /* the caller's generator may not outlive out */
    AG_SAVED(out, dropout_saved)->keep = keep;
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
    const unsigned char *restrict keep = AG_SAVED(out, dropout_saved)->keep;
    bool set;
    void *dx_data = ag__grad_begin(out->inputs[0], &set);
    AG_DISPATCH_FLOAT(out->dtype, {
        const real *restrict g = out->grad->data;
        real *restrict dx = dx_data;
        const real scale = (real)(1 / (1 - AG_PARAMS(out, dropout_params)->p));
        AG_GRAD_LOOP(set, out->numel, dx, g[i] * (keep[i] ? scale : 0));
    });
    return 0;
}

/* mask / (1 - p) as a tensor without history. */
static ag_tensor *scaled_mask(ag_arena *a, const ag_tensor *out)
{
    const unsigned char *keep = AG_SAVED(out, dropout_saved)->keep;
    ag_tensor *m = ag__constant(a, out);
    if (m)
        AG_DISPATCH_FLOAT(m->dtype, {
            real *mv = m->data;
            real scale = (real)(1 / (1 - AG_PARAMS(out, dropout_params)->p));
            for (int64_t i = 0; i < m->numel; i++) mv[i] = keep[i] ? scale : 0;
        });
    return m;
}

/* dx = g * mask / (1 - p)    ty = tx * mask / (1 - p) */
static int dropout_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                       const bool *want, ag_tensor **dx)
{
    AG_TRY(dx[0] = ag_mul(a, g, scaled_mask(a, out)));
    return 0;
}

static int dropout_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                       ag_tensor **ty)
{
    AG_TRY(*ty = ag_mul(a, tx[0], scaled_mask(a, out)));
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
    dropout_params params = {p, rng};
    return ag__apply(func, a, &ag__op_dropout, 1, &x, x->dtype, x->ndim,
                     x->shape, &params);
}

/* The op-table entry. */
const ag_op ag__op_dropout = {.name = "dropout",
                              .arity = 1,
                              .params_size = sizeof(dropout_params),
                              .saved_size = sizeof(dropout_saved),
                              .forward = dropout_forward,
                              .backward = dropout_backward,
                              .vjp = dropout_vjp,
                              .jvp = dropout_jvp};
