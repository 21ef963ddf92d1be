/* init.c: weight initialisation in place from a seeded generator: uniform,
 * normal, and PyTorch's Kaiming-uniform and Xavier-uniform rules with their
 * fan-in and fan-out. */
#include "../internal.h"

#include <math.h>

/* Checks t and rng for an init function. */
static int check_target(const char *func, const ag_tensor *t, const ag_rng *rng)
{
    if (!t || !rng) {
        ag__error(func, "%s is NULL", !t ? "tensor" : "rng");
        return -1;
    }
    if (t->dtype == AG_I32) {
        ag__error(func, "cannot initialise an i32 tensor");
        return -1;
    }
    return 0;
}

/* PyTorch's fans of a weight (out, in, k...): fan_in = in * receptive field,
 * fan_out = out * receptive field. */
static int fans(const char *func, const ag_tensor *t, double *fan_in,
                double *fan_out)
{
    if (t->ndim < 2) {
        char buf[AG_SHAPE_STR_MAX];
        ag__error(func, "fans need at least 2 dimensions, got %s",
                  ag__shape_str(buf, t->ndim, t->shape));
        return -1;
    }
    double field = 1;
    for (int d = 2; d < t->ndim; d++) field *= (double)t->shape[d];
    *fan_in = (double)t->shape[1] * field;
    *fan_out = (double)t->shape[0] * field;
    return 0;
}

int ag_init_uniform(ag_tensor *t, double low, double high, ag_rng *rng)
{
    const char *func = "ag_init_uniform";
    if (check_target(func, t, rng)) return -1;
    if (!(low <= high && isfinite(high - low))) {
        ag__error(func, "bounds must be finite with low <= high, got [%g, %g)",
                  low, high);
        return -1;
    }
    ag__fill_random(t, low, high - low, high, ag_rng_uniform, rng);
    return 0;
}

int ag_init_normal(ag_tensor *t, double mean, double std, ag_rng *rng)
{
    const char *func = "ag_init_normal";
    if (check_target(func, t, rng)) return -1;
    if (!(isfinite(mean) && isfinite(std) && std >= 0)) {
        ag__error(func,
                  "mean must be finite and std finite and >= 0, got "
                  "mean %g std %g",
                  mean, std);
        return -1;
    }
    ag__fill_random(t, mean, std, INFINITY, ag_rng_normal, rng);
    return 0;
}

/* U(-bound, bound) once bound is known to be finite. */
static int uniform_bound(const char *func, ag_tensor *t, double bound,
                         ag_rng *rng)
{
    if (!isfinite(bound)) {
        ag__error(func,
                  "the bound is not finite (%g); check the gain and "
                  "the tensor's fans",
                  bound);
        return -1;
    }
    ag__fill_random(t, -bound, 2 * bound, bound, ag_rng_uniform, rng);
    return 0;
}

/* b = sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in) */
int ag_init_kaiming_uniform(ag_tensor *t, double a, ag_rng *rng)
{
    const char *func = "ag_init_kaiming_uniform";
    double fan_in, fan_out;
    if (check_target(func, t, rng) || fans(func, t, &fan_in, &fan_out))
        return -1;
    double gain = sqrt(2.0 / (1.0 + a * a));
    return uniform_bound(func, t, gain * sqrt(3.0 / fan_in), rng);
}

/* b = gain * sqrt(6 / (fan_in + fan_out)) */
int ag_init_xavier_uniform(ag_tensor *t, double gain, ag_rng *rng)
{
    const char *func = "ag_init_xavier_uniform";
    double fan_in, fan_out;
    if (check_target(func, t, rng) || fans(func, t, &fan_in, &fan_out))
        return -1;
    if (gain < 0) {
        ag__error(func, "the gain must be >= 0, got %g", gain);
        return -1;
    }
    return uniform_bound(func, t, gain * sqrt(6.0 / (fan_in + fan_out)), rng);
}
