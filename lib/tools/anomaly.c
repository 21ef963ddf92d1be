/* anomaly.c: anomaly detection's checks. graph.c calls them, when this
 * thread's anomaly flag (context.c) is on, after each op's forward and
 * after each op's backward; they find the first NaN or infinity and report
 * which op made it, forward or backward, and where. */
#include "../internal.h"

#include <math.h>

/* The flat index of the first NaN or infinity in float tensor t, or -1. */
static int64_t first_non_finite(const ag_tensor *t, double *value)
{
    int64_t found = -1;
    AG_DISPATCH_FLOAT(t->dtype, {
        const real *v = t->data;
        for (int64_t i = 0; i < t->numel && found < 0; i++)
            if (!isfinite(v[i])) {
                found = i;
                *value = (double)v[i];
            }
    });
    return found;
}

/* "nan", "inf" or "-inf" (printf's %g may write "-nan"). */
static const char *non_finite_name(double v)
{
    return isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
}

/* Writes the shapes of out's inputs as "(2,3), (3)" into buf. */
static const char *input_shapes(const ag_tensor *out, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < out->n_inputs && used < size; i++) {
        char shape[AG_SHAPE_STR_MAX];
        const ag_tensor *in = out->inputs[i];
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "",
                         ag__shape_str(shape, in->ndim, in->shape));
        if (n < 0) break;
        used += (size_t)n;
    }
    return buf;
}

int ag__anomaly_forward(const char *func, const ag_tensor *out)
{
    if (out->dtype == AG_I32) return 0;
    double v = 0;
    int64_t i = first_non_finite(out, &v);
    if (i < 0) return 0;
    char shapes[4 * AG_SHAPE_STR_MAX]; /* the first inputs' shapes */
    ag__error(func,
              "anomaly in forward of op %s: element %lld is %s; inputs %s",
              out->op->name, (long long)i, non_finite_name(v),
              input_shapes(out, shapes, sizeof shapes));
    return -1;
}

int ag__anomaly_backward(const ag_tensor *out)
{
    for (int k = 0; k < out->n_inputs; k++) {
        const ag_tensor *in = out->inputs[k];
        if (!in->requires_grad || !in->grad || in->grad_unwritten) continue;
        double v = 0;
        int64_t i = first_non_finite(in->grad, &v);
        if (i < 0) continue;
        char shape[AG_SHAPE_STR_MAX];
        ag__error("ag_backward",
                  "anomaly in backward of op %s: gradient of input %d %s "
                  "element %lld is %s",
                  out->op->name, k, ag__shape_str(shape, in->ndim, in->shape),
                  (long long)i, non_finite_name(v));
        return -1;
    }
    return 0;
}
