/* tensor.c: making tensors, reading their properties, and the checks that
 * every op shares (shapes, dtypes, axes). */
#include "internal.h"

#include <float.h>
#include <math.h>

size_t ag__dtype_size(ag_dtype dt)
{
    switch (dt) {
    case AG_F32:
        return sizeof(float);
    case AG_F64:
        return sizeof(double);
    case AG_I32:
        return sizeof(int32_t);
    }
    return 0;
}

const char *ag_dtype_name(ag_dtype dt)
{
    switch (dt) {
    case AG_F32:
        return "f32";
    case AG_F64:
        return "f64";
    case AG_I32:
        return "i32";
    }
    return "unknown";
}

int ag__check_ndim(const char *func, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > AG_MAX_DIMS) {
        ag__error(func, "ndim must be in [0, %d], got %d", AG_MAX_DIMS, ndim);
        return -1;
    }
    if (ndim > 0 && !shape) {
        ag__error(func, "shape is NULL for ndim %d", ndim);
        return -1;
    }
    return 0;
}

int ag__check_shape(const char *func, int ndim, const int64_t *shape,
                    int64_t *numel)
{
    if (ag__check_ndim(func, ndim, shape)) return -1;
    char buf[AG_SHAPE_STR_MAX];
    /* The product of the non-zero sizes must fit too: strides of an empty
     * tensor are still computed from them. */
    int64_t count = 1, nonzero = 1;
    bool overflow = false;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            ag__error(func, "negative size %lld in dimension %d of shape %s",
                      (long long)shape[d], d, ag__shape_str(buf, ndim, shape));
            return -1;
        }
        overflow |= __builtin_mul_overflow(count, shape[d], &count);
        if (shape[d])
            overflow |= __builtin_mul_overflow(nonzero, shape[d], &nonzero);
    }
    if (overflow) {
        ag__error(func, "element count of shape %s overflows int64_t",
                  ag__shape_str(buf, ndim, shape));
        return -1;
    }
    *numel = count;
    return 0;
}

int ag__check_size(const char *func, ag_dtype dt, int ndim,
                   const int64_t *shape, int64_t *numel, size_t *bytes)
{
    size_t elem = ag__dtype_size(dt);
    if (!elem) {
        ag__error(func, "unknown dtype %d", (int)dt);
        return -1;
    }
    if (ag__check_shape(func, ndim, shape, numel)) return -1;
    if ((uint64_t)*numel > SIZE_MAX / elem ||
        (uint64_t)*numel > (uint64_t)INT64_MAX / elem) {
        char buf[AG_SHAPE_STR_MAX];
        ag__error(func, "byte size of %s tensor of shape %s overflows",
                  ag_dtype_name(dt), ag__shape_str(buf, ndim, shape));
        return -1;
    }
    *bytes = (size_t)*numel * elem;
    return 0;
}

ag_tensor *ag__tensor_new(const char *func, ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, bool with_data)
{
    if (!a) {
        ag__error(func, "arena is NULL");
        return NULL;
    }
    int64_t numel;
    size_t bytes;
    if (ag__check_size(func, dt, ndim, shape, &numel, &bytes)) return NULL;
    ag_tensor *t = ag__arena_alloc(a, sizeof *t, _Alignof(ag_tensor));
    void *data = NULL;
    if (t && with_data) data = ag__arena_alloc(a, bytes, bytes >= 64 ? 64 : 16);
    if (!t || (with_data && !data)) {
        char buf[AG_SHAPE_STR_MAX];
        ag__error(func, "out of memory for %s tensor of shape %s",
                  ag_dtype_name(dt), ag__shape_str(buf, ndim, shape));
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->numel = numel;
    t->data = data;
    t->arena = a;
    return t;
}

/* A tensor with every element set to value, already checked to fit dt. */
static ag_tensor *filled(const char *func, ag_arena *a, ag_dtype dt, int ndim,
                         const int64_t *shape, double value)
{
    ag_tensor *t = ag__tensor_new(func, a, dt, ndim, shape, true);
    if (!t) return NULL;
    if (dt == AG_I32) {
        int32_t *v = t->data;
        for (int64_t i = 0; i < t->numel; i++) v[i] = (int32_t)value;
    } else {
        AG_DISPATCH_FLOAT(dt, {
            real *v = t->data;
            for (int64_t i = 0; i < t->numel; i++) v[i] = (real)value;
        });
    }
    return t;
}

ag_tensor *ag_zeros(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape)
{
    return filled("ag_zeros", a, dt, ndim, shape, 0.0);
}

ag_tensor *ag_ones(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape)
{
    return filled("ag_ones", a, dt, ndim, shape, 1.0);
}

/* Whether v is an integer that int32_t can hold. */
static bool fits_i32(double v)
{
    return v == floor(v) && v >= INT32_MIN && v <= INT32_MAX;
}

ag_tensor *ag_full(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape,
                   double value)
{
    if (dt == AG_I32 && !fits_i32(value)) {
        ag__error("ag_full", "value %g is not an int32 for dtype i32", value);
        return NULL;
    }
    if (dt == AG_F32 && isfinite(value) && fabs(value) > FLT_MAX) {
        ag__error("ag_full", "value %g overflows dtype f32", value);
        return NULL;
    }
    return filled("ag_full", a, dt, ndim, shape, value);
}

ag_tensor *ag_from_data(ag_arena *a, ag_dtype dt, int ndim,
                        const int64_t *shape, const void *data)
{
    int64_t numel;
    if (!data && !ag__check_shape("ag_from_data", ndim, shape, &numel) &&
        numel > 0) {
        ag__error("ag_from_data", "data is NULL for %lld elements",
                  (long long)numel);
        return NULL;
    }
    ag_tensor *t = ag__tensor_new("ag_from_data", a, dt, ndim, shape, true);
    if (!t) return NULL;
    if (t->numel == 0) return t;
    memcpy(t->data, data, ag__tensor_bytes(t));
    return t;
}

ag_tensor *ag_arange(ag_arena *a, ag_dtype dt, double start, double stop,
                     double step)
{
    const char *func = "ag_arange";
    if (!isfinite(start) || !isfinite(stop) || !isfinite(step) || step == 0) {
        ag__error(func,
                  "need finite bounds and a non-zero step, got "
                  "start %g stop %g step %g",
                  start, stop, step);
        return NULL;
    }
    double count = ceil((stop - start) / step);
    if (count < 0) count = 0;
    if (!(count < 0x1p63)) {
        ag__error(func,
                  "the element count of [%g, %g) by %g overflows "
                  "int64_t",
                  start, stop, step);
        return NULL;
    }
    double last = start + step * (count > 0 ? count - 1 : 0);
    if (dt == AG_I32 && count > 0 &&
        (!fits_i32(start) || !fits_i32(step) || !fits_i32(last))) {
        ag__error(func, "values from %g by %g up to %g are not all int32",
                  start, step, last);
        return NULL;
    }
    int64_t n = (int64_t)count;
    ag_tensor *t = ag__tensor_new(func, a, dt, 1, &n, true);
    if (!t) return NULL;
    if (dt == AG_I32) {
        int32_t *v = t->data;
        for (int64_t i = 0; i < n; i++)
            v[i] = (int32_t)(start + (double)i * step);
    } else {
        AG_DISPATCH_FLOAT(dt, {
            real *v = t->data;
            for (int64_t i = 0; i < n; i++)
                v[i] = (real)(start + (double)i * step);
        });
    }
    return t;
}

int ag_ndim(const ag_tensor *t)
{
    return t ? t->ndim : 0;
}

const int64_t *ag_shape(const ag_tensor *t)
{
    return t ? t->shape : NULL;
}

int64_t ag_numel(const ag_tensor *t)
{
    return t ? t->numel : 0;
}

ag_dtype ag_type(const ag_tensor *t)
{
    return t ? t->dtype : AG_F32;
}

void *ag_data(ag_tensor *t)
{
    return t ? t->data : NULL;
}

double ag__element(const ag_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case AG_F32:
        return ((const float *)t->data)[i];
    case AG_F64:
        return ((const double *)t->data)[i];
    case AG_I32:
        return ((const int32_t *)t->data)[i];
    }
    return NAN;
}

double ag_item(const ag_tensor *t)
{
    if (!t) return NAN;
    if (t->numel != 1) {
        char buf[AG_SHAPE_STR_MAX];
        ag__error("ag_item", "tensor of shape %s has %lld elements, not 1",
                  ag__shape_str(buf, t->ndim, t->shape), (long long)t->numel);
        return NAN;
    }
    return ag__element(t, 0);
}

void ag_requires_grad(ag_tensor *t, bool on)
{
    if (!t) return;
    if (on && t->dtype == AG_I32) {
        ag__error("ag_requires_grad", "an i32 tensor cannot have a gradient");
        return;
    }
    if (t->op) {
        if (!on)
            ag__error("ag_requires_grad",
                      "cannot clear it on the result of op '%s'; use "
                      "ag_detach",
                      t->op->name);
        return;
    }
    t->requires_grad = on;
}

bool ag_is_requires_grad(const ag_tensor *t)
{
    return t && t->requires_grad;
}

ag_tensor *ag_grad(const ag_tensor *t)
{
    return t ? t->grad : NULL;
}

void ag_zero_grad(ag_tensor *t)
{
    if (t && t->grad) memset(t->grad->data, 0, ag__tensor_bytes(t->grad));
}

void ag_clear_grad(ag_tensor *t)
{
    if (!t || !t->grad) return;
    t->spare_grad = t->grad;
    t->grad = NULL;
}

ag_tensor *ag_detach(ag_arena *a, ag_tensor *t)
{
    if (!t) return NULL;
    ag_tensor *copy =
        ag__tensor_new("ag_detach", a, t->dtype, t->ndim, t->shape, true);
    if (copy && t->numel) memcpy(copy->data, t->data, ag__tensor_bytes(t));
    return copy;
}

const char *ag_tensor_op_name(const ag_tensor *t)
{
    if (!t) return NULL;
    return t->op ? t->op->name : "leaf";
}

int ag__check_float_inputs(const char *func, ag_arena *a, int n,
                           ag_tensor *const *inputs)
{
    return ag__check_inputs(func, a, n, inputs, true);
}

int ag__check_inputs(const char *func, ag_arena *a, int n,
                     ag_tensor *const *inputs, bool float_only)
{
    for (int i = 0; i < n; i++)
        if (!inputs[i]) return ag__null_input(func, i);
    if (!a) {
        ag__error(func, "arena is NULL");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (float_only && inputs[i]->dtype != AG_F32 &&
            inputs[i]->dtype != AG_F64) {
            ag__error(func, "input %d has dtype %s; this op needs f32 or f64",
                      i, ag_dtype_name(inputs[i]->dtype));
            return -1;
        }
        if (inputs[i]->dtype != inputs[0]->dtype) {
            char b0[AG_SHAPE_STR_MAX], b1[AG_SHAPE_STR_MAX];
            ag__error(func, "dtypes differ: %s %s and %s %s",
                      ag_dtype_name(inputs[0]->dtype),
                      ag__shape_str(b0, inputs[0]->ndim, inputs[0]->shape),
                      ag_dtype_name(inputs[i]->dtype),
                      ag__shape_str(b1, inputs[i]->ndim, inputs[i]->shape));
            return -1;
        }
    }
    return 0;
}

int ag__normalize_axis(const char *func, int axis, const ag_tensor *x, int *out)
{
    int ndim = x->ndim;
    if (axis == AG_ALL) {
        ag__error(func, "AG_ALL is not accepted here; give one axis of %d",
                  ndim);
        return -1;
    }
    if (axis < -ndim || axis >= ndim) {
        char buf[AG_SHAPE_STR_MAX];
        ag__error(func, "axis %d out of range for shape %s (%d dimensions)",
                  axis, ag__shape_str(buf, ndim, x->shape), ndim);
        return -1;
    }
    *out = axis < 0 ? axis + ndim : axis;
    return 0;
}
