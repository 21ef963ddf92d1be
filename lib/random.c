/* random.c: the seeded generator (xoshiro256** seeded by splitmix64) and the
 * random tensors made from it. The integer stream is the same on every
 * machine; uniforms are exact transforms of it. */
#include "internal.h"

#include <float.h>
#include <tgmath.h>

#define TWO_PI 6.283185307179586476925286766559

/* splitmix64 (Steele, Lea, Flood 2014), used only to expand a seed. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

ag_rng ag_rng_seed(uint64_t seed)
{
    ag_rng rng;
    for (int i = 0; i < 4; i++) rng.s[i] = splitmix64(&seed);
    return rng;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ag_rng_next(ag_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ag_rng_uniform(ag_rng *rng)
{
    return (double)(ag_rng_next(rng) >> 11) * 0x1p-53;
}

double ag_rng_normal(ag_rng *rng)
{
    double u1 = 1.0 - ag_rng_uniform(rng); /* (0, 1]: log(u1) is finite */
    double u2 = ag_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

/* A float tensor whose elements are offset + scale * draw(rng), kept below
 * `bound` (rounding to float can otherwise reach the top of [low, high)). */
void ag__fill_random(ag_tensor *t, double offset, double scale, double bound,
                     double (*draw)(ag_rng *), ag_rng *rng)
{
    AG_DISPATCH_FLOAT(t->dtype, {
        real *v = t->data;
        for (int64_t i = 0; i < t->numel; i++) {
            v[i] = (real)(offset + scale * draw(rng));
            if (v[i] >= bound && bound > offset)
                v[i] = nextafter((real)bound, (real)offset);
        }
    });
}

static ag_tensor *random_tensor(const char *func, ag_arena *a, ag_dtype dt,
                                int ndim, const int64_t *shape, double offset,
                                double scale, double bound,
                                double (*draw)(ag_rng *), ag_rng *rng)
{
    if (!rng) {
        ag__error(func, "rng is NULL");
        return NULL;
    }
    if (dt != AG_F32 && dt != AG_F64) {
        ag__error(func, "dtype %s is not a float type", ag_dtype_name(dt));
        return NULL;
    }
    ag_tensor *t = ag__tensor_new(func, a, dt, ndim, shape, true);
    if (t) ag__fill_random(t, offset, scale, bound, draw, rng);
    return t;
}

ag_tensor *ag_rand(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape,
                   double low, double high, ag_rng *rng)
{
    double limit = dt == AG_F32 ? FLT_MAX : DBL_MAX;
    if (!(low <= high) || fabs(low) > limit || fabs(high) > limit ||
        !isfinite(high - low)) {
        ag__error("ag_rand",
                  "need low <= high, both finite in %s and high - low "
                  "finite, got [%g, %g)",
                  ag_dtype_name(dt), low, high);
        return NULL;
    }
    return random_tensor("ag_rand", a, dt, ndim, shape, low, high - low, high,
                         ag_rng_uniform, rng);
}

ag_tensor *ag_randn(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape,
                    double mean, double std, ag_rng *rng)
{
    if (!isfinite(mean) || !isfinite(std) || std < 0) {
        ag__error("ag_randn",
                  "need finite mean and std >= 0, got mean %g "
                  "std %g",
                  mean, std);
        return NULL;
    }
    return random_tensor("ag_randn", a, dt, ndim, shape, mean, std, INFINITY,
                         ag_rng_normal, rng);
}
