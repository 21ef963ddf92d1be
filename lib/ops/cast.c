/* cast.c: conversion between f32 and f64, differentiable both ways, so that
 * f32 code can be checked on f64 copies (ag_gradcheck needs f64):
 *   y = (T) x        dx = (type of x) g        ty = (T) tx
 * A cast to the dtype x already has is a copy. */
#include "../internal.h"

static int cast_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    int64_t n = out->numel;
    if (x->dtype == out->dtype) {
        if (n) memcpy(out->data, x->data, ag__tensor_bytes(out));
    } else if (out->dtype == AG_F64) {
        const float *xv = x->data;
        double *y = out->data;
        for (int64_t i = 0; i < n; i++) y[i] = (double)xv[i];
    } else {
        const double *xv = x->data;
        float *y = out->data;
        for (int64_t i = 0; i < n; i++) y[i] = (float)xv[i];
    }
    return 0;
}

/* dx (+)= g converted to x's dtype */
static int cast_backward(ag_tensor *out)
{
    ag_tensor *x = out->inputs[0];
    bool set;
    void *dx_data = ag__grad_begin(x, &set);
    int64_t n = out->numel;
    const void *g = out->grad->data;
    AG_DISPATCH_FLOAT(x->dtype, {
        real *restrict dx = dx_data;
        if (out->dtype == AG_F32) {
            const float *restrict gv = g;
            AG_GRAD_LOOP(set, n, dx, (real)gv[i]);
        } else {
            const double *restrict gv = g;
            AG_GRAD_LOOP(set, n, dx, (real)gv[i]);
        }
    });
    return 0;
}

static int cast_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
                    ag_tensor **dx)
{
    AG_TRY(dx[0] = ag_cast(a, g, out->inputs[0]->dtype));
    return 0;
}

static int cast_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
                    ag_tensor **ty)
{
    AG_TRY(*ty = ag_cast(a, tx[0], out->dtype));
    return 0;
}

ag_tensor *ag_cast(ag_arena *a, ag_tensor *x, ag_dtype dt)
{
    const char *func = "ag_cast";
    if (ag__check_float_inputs(func, a, 1, &x)) return NULL;
    if (dt != AG_F32 && dt != AG_F64) {
        ag__error(func, "can cast to f32 or f64 only, not %s (%d)",
                  ag_dtype_name(dt), (int)dt);
        return NULL;
    }
    return ag__apply(func, a, &ag__op_cast, 1, &x, dt, x->ndim, x->shape, NULL);
}

/* The op-table entry. */
const ag_op ag__op_cast = {.name = "cast",
                           .arity = 1,
                           .forward = cast_forward,
                           .backward = cast_backward,
                           .vjp = cast_vjp,
                           .jvp = cast_jvp};
