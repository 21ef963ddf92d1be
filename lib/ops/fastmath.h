/* fastmath.h: e^x and tanh x for f32 written as plain arithmetic, so that
 * the loops that call them vectorise (glibc's expf and tanhf are calls the
 * compiler cannot vectorise without -ffast-math), with the same bits on
 * every CPU (no FMA, no table lookups). f64 keeps the C library's.
 *
 * ag__exp_f32: Cephes' expf: x = k ln2 + r with k = round(x / ln2) (by the
 *   1.5 * 2^23 trick, which needs no SSE4 rounding instruction) and |r| <=
 *   ln2 / 2, e^r by a degree-7 polynomial, times 2^k built in the exponent
 *   bits; within 1 ulp (7.8e-8 relative, measured over [-87, 88] in steps
 *   of 1e-4). Where e^x is below the smallest normal float (x < -87.34) the
 *   result is 0, not a subnormal (which would cost a microcode assist per
 *   use on some CPUs); above 88.72 it is inf, and NaN stays NaN.
 * ag__exp_nonpos_f32: the same e^x, bit for bit, for the x <= 0 (or NaN)
 *   that most kernels take (a value less its row's maximum, a log-
 *   probability, -x^2 / 2): with no upper clamp, no NaN detour and 2^k
 *   read off the bits of the rounding sum (no float-to-integer
 *   conversion), fewer instructions. Also right for 0 < x <= 88 (both
 *   checked in tests/test_f32.c).
 * ag__tanh_f32: Eigen's rational approximation x P(x^2) / Q(x^2) on x
 *   clamped to +-7.9053 (where tanh is 1 in f32); within 3.3e-7 relative
 *   (5 ulp), measured over [-20, 20] and down to 1e-8.
 * ag__normal_cdf_f32: Phi(x) = erfc(-x / sqrt 2) / 2 with Numerical
 *   Recipes' erfc (a Chebyshev fit of fractional error below 1.2e-7):
 *   erfc(z) = t e^(-z^2 + P(t)), t = 1 / (1 + z / 2), z = |x| / sqrt 2 (the
 *   exponent is <= 0: ag__exp_nonpos_f32), and
 *   Phi = 1 - erfc(z) / 2 for x >= 0; one exponential and one division.
 *   Within 1.4e-6 relative where Phi > 1e-3 and 1.9e-5 in the far tail
 *   (the rounding of z^2), measured over [-13, 13]; (1 + erff(x / sqrt 2))
 *   / 2, which cancels for negative x, is within 1.5e-5 where Phi > 1e-3.
 *   NaN stays NaN, Phi(-inf) = 0 and Phi(inf) = 1. */
#ifndef AG_FASTMATH_H
#define AG_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^r for the reduced argument |r| <= ln(2) / 2 of the two exponentials
 * below (x = k ln 2 + r, e^x = 2^k e^r): Cephes' expf polynomial. */
static inline float ag__exp_reduced_f32(float r)
{
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p;
}

static inline float ag__exp_f32(float x)
{
    float in = x;
    x = x == x ? x : 0.0f; /* NaN: computed as 0, given back below */
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693359375f; /* ln 2 in two parts, exactly */
    r = r - k * -2.12194440e-4f;
    float p = ag__exp_reduced_f32(r);
    int32_t bits = ((int32_t)k + 127) << 23; /* 2^k */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    /* beyond the clamp: 0 where e^x is below the smallest normal float
     * (subnormal results are flushed), inf where it overflows; NaN stays */
    y = in < -87.336544750553102f ? 0.0f : y;
    y = in > 88.722839052068439f ? INFINITY : y;
    return in != in ? in : y;
}

static inline float ag__exp_nonpos_f32(float x)
{
    float c = x < -87.0f ? -87.0f : x; /* NaN stays NaN */
    float t = c * 1.44269504088896341f + 12582912.0f, k = t - 12582912.0f;
    float r = c - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = ag__exp_reduced_f32(r);
    uint32_t bits; /* t's low bits hold k: 2^k is (k + 127) << 23 */
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < -87.336544750553102f ? 0.0f : y; /* NaN: p is NaN */
}

static inline float ag__tanh_f32(float x)
{
    const float clamp = 7.90531110763549805f;
    x = x > clamp ? clamp : x < -clamp ? -clamp : x;
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

static inline float ag__normal_cdf_f32(float x)
{
    float z = fabsf(x) * 0.70710678118654752440f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t + -0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t + -1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t + -0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t + -1.26551223f;
    float half_erfc = 0.5f * t * ag__exp_nonpos_f32(-z * z + p);
    return x >= 0 ? 1.0f - half_erfc : half_erfc;
}

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2 with the C library's erf. */
static inline double ag__normal_cdf_f64(double x)
{
    return (1 + erf(x * 0.70710678118654752440)) / 2;
}

/* e^x, tanh x and Phi(x) of a float or double, in kernels written once for
 * both: the f32 versions above, the C library's for f64. AG_EXP_NONPOS(x)
 * is e^x for x <= 0 or NaN only (ag__exp_nonpos_f32). */
#define AG_EXP(x) _Generic((x), float : ag__exp_f32, default : exp)(x)
#define AG_EXP_NONPOS(x)                                                       \
    _Generic((x), float : ag__exp_nonpos_f32, default : exp)(x)
#define AG_TANH(x) _Generic((x), float : ag__tanh_f32, default : tanh)(x)
#define AG_NORMAL_CDF(x)                                                       \
    _Generic((x), float : ag__normal_cdf_f32, default : ag__normal_cdf_f64)(x)

#endif /* AG_FASTMATH_H */
