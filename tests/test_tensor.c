/* test_tensor.c: tensors without autograd. Constructors (zeros, ones, full,
 * from_data, arange, scalars, zero-size dimensions), accessors and their
 * NULL handling (ag_print: test_print.c), the seeded generator (xoshiro256**
 * seeded by splitmix64, checked against an independent reference) and the
 * random tensors made from it, and arenas (reuse after reset, alignment, NULL
 * safety, independence of separate arenas). */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* Asserts that t is non-NULL with dtype dt and the given shape. */
static void expect_shape(ag_tensor *t, ag_dtype dt, int ndim,
                         const int64_t *shape)
{
    ck_assert_msg(t != NULL, "NULL tensor: %s", ag_last_error());
    ck_assert_int_eq(ag_type(t), dt);
    ck_assert_int_eq(ag_ndim(t), ndim);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        ck_assert_int_eq(ag_shape(t)[d], shape[d]);
        numel *= shape[d];
    }
    ck_assert_int_eq(ag_numel(t), numel);
}

/* Asserts that every element of t equals `want` exactly. */
static void expect_all(ag_tensor *t, double want)
{
    for (int64_t i = 0; i < ag_numel(t); i++)
        if (tensor_at(t, i) != want)
            ck_abort_msg("element %lld is %.17g, want %.17g", (long long)i,
                         tensor_at(t, i), want);
}

/* Asserts that t's n elements equal want[] exactly. */
static void expect_values(ag_tensor *t, const double *want, int64_t n)
{
    ck_assert_int_eq(ag_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        if (tensor_at(t, i) != want[i])
            ck_abort_msg("element %lld is %.17g, want %.17g", (long long)i,
                         tensor_at(t, i), want[i]);
}

/* Asserts that t is a 1-D tensor of dtype dt equal to NumPy's
 * arange(start, stop, step): the values start + i * step for i < n, where n
 * is given by the caller (worked out by hand in each test). */
static void expect_arange(ag_arena *a, ag_dtype dt, double start, double stop,
                          double step, int64_t n)
{
    ag_tensor *t = ag_arange(a, dt, start, stop, step);
    expect_shape(t, dt, 1, (int64_t[]){n});
    for (int64_t i = 0; i < n; i++) {
        double want = start + (double)i * step;
        if (dt == AG_F32) want = (float)want;
        if (tensor_at(t, i) != want)
            ck_abort_msg("arange(%g, %g, %g)[%lld] = %.9g", start, stop, step,
                         (long long)i, tensor_at(t, i));
    }
}

/* ---- constructors ---- */

START_TEST(test_zeros_ones_full)
{
    ag_arena *a = ag_arena_new();
    const int64_t shape[] = {2, 3, 4};
    const ag_dtype types[] = {AG_F32, AG_F64, AG_I32};
    for (int k = 0; k < 3; k++) {
        ag_tensor *z = ag_zeros(a, types[k], 3, shape);
        expect_shape(z, types[k], 3, shape);
        expect_all(z, 0.0);
        ag_tensor *o = ag_ones(a, types[k], 3, shape);
        expect_shape(o, types[k], 3, shape);
        expect_all(o, 1.0);
        ag_tensor *f = ag_full(a, types[k], 3, shape, -7.0);
        expect_shape(f, types[k], 3, shape);
        expect_all(f, -7.0);
    }
    ag_tensor *f = ag_full(a, AG_F32, 1, (int64_t[]){5}, 0.1);
    expect_all(f, (float)0.1); /* converted to float */
    ag_tensor *i = ag_full(a, AG_I32, 1, (int64_t[]){3}, -2147483648.0);
    expect_all(i, (double)INT32_MIN);
    ck_assert_ptr_null(ag_full(a, AG_I32, 1, (int64_t[]){3}, 1.5));
    ck_assert_ptr_null(ag_full(a, AG_I32, 1, (int64_t[]){3}, 2147483648.0));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_from_data_copies)
{
    ag_arena *a = ag_arena_new();
    double src[6] = {1.5, -2.25, 3, 4, 5, 6e300};
    ag_tensor *t = ag_from_data(a, AG_F64, 2, (int64_t[]){2, 3}, src);
    expect_shape(t, AG_F64, 2, (int64_t[]){2, 3});
    ck_assert_ptr_ne(ag_data(t), src);
    const double want[6] = {1.5, -2.25, 3, 4, 5, 6e300};
    for (int i = 0; i < 6; i++) src[i] = -99;
    expect_values(t, want, 6);

    float fsrc[3] = {0.5f, 1e-30f, -3};
    ag_tensor *f = ag_from_data(a, AG_F32, 1, (int64_t[]){3}, fsrc);
    fsrc[1] = 7;
    expect_values(f, (const double[]){0.5, (double)1e-30f, -3}, 3);

    int32_t isrc[4] = {INT32_MIN, -1, 0, INT32_MAX};
    ag_tensor *n = ag_from_data(a, AG_I32, 2, (int64_t[]){2, 2}, isrc);
    isrc[0] = 5;
    expect_values(n, (const double[]){INT32_MIN, -1, 0, INT32_MAX}, 4);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_arange)
{
    ag_arena *a = ag_arena_new();
    /* Counts are ceil((stop - start) / step), worked out by hand. */
    expect_arange(a, AG_F64, 0, 5, 1, 5);
    expect_arange(a, AG_F64, 0, 1, 0.25, 4);
    expect_arange(a, AG_F64, 1, 2.1, 0.5, 3); /* 1, 1.5, 2 */
    expect_arange(a, AG_F64, 5, 0, -1.5, 4);  /* 5, 3.5, 2, 0.5 */
    expect_arange(a, AG_F64, -1, -3, -1, 2);  /* -1, -2 */
    expect_arange(a, AG_F32, 0, 1, 0.1, 10);  /* 0, 0.1, ..., 0.9 */
    expect_arange(a, AG_F32, 2, -2, -0.5, 8); /* 2, 1.5, ..., -1.5 */
    expect_arange(a, AG_I32, 0, 10, 3, 4);    /* 0, 3, 6, 9 */
    expect_arange(a, AG_I32, 3, -4, -2, 4);   /* 3, 1, -1, -3 */
    expect_arange(a, AG_I32, -5, 5, 1, 10);
    /* Empty ranges: stop at start, or on the wrong side for the step. */
    expect_arange(a, AG_F64, 0, 0, 1, 0);
    expect_arange(a, AG_F64, 5, 0, 1, 0);
    expect_arange(a, AG_F32, 0, 5, -1, 0);
    expect_arange(a, AG_I32, 3, 3, -1, 0);
    expect_arange(a, AG_I32, 0, -10, 2, 0);
    /* Errors: step 0, non-finite bounds, non-integers for i32. */
    ck_assert_ptr_null(ag_arange(a, AG_F64, 0, 1, 0));
    ck_assert_ptr_null(ag_arange(a, AG_F64, 0, INFINITY, 1));
    ck_assert_ptr_null(ag_arange(a, AG_I32, 0, 2, 0.5));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_scalar)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *s = ag_full(a, AG_F64, 0, NULL, 2.5);
    expect_shape(s, AG_F64, 0, NULL);
    ck_assert_int_eq(ag_numel(s), 1);
    ck_assert(ag_item(s) == 2.5);
    ag_tensor *z = ag_zeros(a, AG_I32, 0, NULL);
    ck_assert_int_eq(ag_numel(z), 1);
    ck_assert(ag_item(z) == 0);
    ag_tensor *f = ag_from_data(a, AG_F32, 0, NULL, (float[]){-0.75f});
    ck_assert_int_eq(ag_ndim(f), 0);
    ck_assert(ag_item(f) == -0.75);
    /* A one-element tensor of any shape has an item too. */
    ag_tensor *o = ag_ones(a, AG_F32, 3, (int64_t[]){1, 1, 1});
    ck_assert(ag_item(o) == 1);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_zero_size_dims)
{
    ag_arena *a = ag_arena_new();
    const int64_t shape[] = {3, 0, 2};
    ag_tensor *z = ag_zeros(a, AG_F32, 3, shape);
    expect_shape(z, AG_F32, 3, shape);
    ck_assert_int_eq(ag_numel(z), 0);
    ag_tensor *d = ag_from_data(a, AG_F64, 1, (int64_t[]){0}, NULL);
    expect_shape(d, AG_F64, 1, (int64_t[]){0});
    ag_tensor *f = ag_full(a, AG_I32, 2, (int64_t[]){0, 0}, 3);
    expect_shape(f, AG_I32, 2, (int64_t[]){0, 0});
    ag_clear_error();
    ck_assert(isnan(ag_item(z)));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "ag_item"));
    ag_arena_free(a);
}
END_TEST

/* ---- accessors ---- */

START_TEST(test_accessors)
{
    ag_arena *a = ag_arena_new();
    int32_t v[] = {1, 2, 3, 4, 5, 6};
    ag_tensor *t = ag_from_data(a, AG_I32, 2, (int64_t[]){3, 2}, v);
    ck_assert_int_eq(ag_ndim(t), 2);
    ck_assert_int_eq(ag_shape(t)[0], 3);
    ck_assert_int_eq(ag_shape(t)[1], 2);
    ck_assert_int_eq(ag_numel(t), 6);
    ck_assert_int_eq(ag_type(t), AG_I32);
    ck_assert_int_eq(((int32_t *)ag_data(t))[5], 6);
    ck_assert_str_eq(ag_dtype_name(AG_F32), "f32");
    ck_assert_str_eq(ag_dtype_name(AG_F64), "f64");
    ck_assert_str_eq(ag_dtype_name(AG_I32), "i32");
    ck_assert_str_eq(ag_dtype_name((ag_dtype)42), "unknown");
    /* ag_item of several elements: NaN and a message. */
    ag_clear_error();
    ck_assert(isnan(ag_item(t)));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "ag_item"));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_accessors_null)
{
    ag_clear_error();
    ck_assert_int_eq(ag_ndim(NULL), 0);
    ck_assert_ptr_null(ag_shape(NULL));
    ck_assert_int_eq(ag_numel(NULL), 0);
    ck_assert_int_eq(ag_type(NULL), AG_F32);
    ck_assert_ptr_null(ag_data(NULL));
    ck_assert(isnan(ag_item(NULL)));
    ck_assert_ptr_null(ag_grad(NULL));
    ck_assert(!ag_is_requires_grad(NULL));
    ck_assert_int_eq(ag_print(NULL, stdout, 10), -1);
    /* "These accept NULL ... without a message." */
    ck_assert_str_eq(ag_last_error(), "");
}
END_TEST

/* ---- the generator ---- */

/* Reference values, computed with this independent Python implementation
 * of splitmix64 and xoshiro256** (Python's unbounded ints, masked to 64
 * bits), run with python3:
 *
 *   M = (1 << 64) - 1
 *   def splitmix64(state):
 *       state = (state + 0x9E3779B97F4A7C15) & M
 *       z = state
 *       z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
 *       z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
 *       return state, z ^ (z >> 31)
 *   def rotl(x, k):
 *       return ((x << k) | (x >> (64 - k))) & M
 *   def seed(s):
 *       st = []
 *       for _ in range(4):
 *           s, z = splitmix64(s)
 *           st.append(z)
 *       return st
 *   def nxt(s):
 *       result = (rotl((s[1] * 5) & M, 7) * 9) & M
 *       t = (s[1] << 17) & M
 *       s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]
 *       s[2] ^= t
 *       s[3] = rotl(s[3], 45)
 *       return result
 *   for sd in (0, 12345):
 *       st = seed(sd)
 *       print(sd, "state", ", ".join("0x%016xu" % v for v in st))
 *       print(sd, "next", ", ".join("0x%016xu" % nxt(st) for _ in range(6)))
 *
 * (splitmix64's first output for seed 0, 0xe220a8397b1dcdaf, is also the
 * value published with the algorithm.) */
static const uint64_t seed0_state[4] = {
    0xe220a8397b1dcdafu, 0x6e789e6aa1b965f4u, 0x06c45d188009454fu,
    0xf88bb8a8724c81ecu};
static const uint64_t seed0_next[6] = {
    0x99ec5f36cb75f2b4u, 0xbf6e1f784956452au, 0x1a5f849d4933e6e0u,
    0x6aa594f1262d2d2cu, 0xbba5ad4a1f842e59u, 0xffef8375d9ebcacau};
static const uint64_t seed12345_state[4] = {
    0x22118258a9d111a0u, 0x346edce5f713f8edu, 0x1e9a57bc80e6721du,
    0x2d160e7e5c3f42cau};
static const uint64_t seed12345_next[6] = {
    0xbe6a36374160d49bu, 0x214aaa0637a688c6u, 0xf69d16de9954d388u,
    0x0c60048c4e96e033u, 0x8e2076aeed51c648u, 0x02bbcc1c1fc50f84u};

/* Asserts that seed gives the state and first six outputs given. */
static void expect_stream(uint64_t seed, const uint64_t *state,
                          const uint64_t *next)
{
    ag_rng rng = ag_rng_seed(seed);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(rng.s[i] == state[i],
                      "seed %llu: state word %d is 0x%016llx, want 0x%016llx",
                      (unsigned long long)seed, i, (unsigned long long)rng.s[i],
                      (unsigned long long)state[i]);
    for (int i = 0; i < 6; i++) {
        uint64_t got = ag_rng_next(&rng);
        ck_assert_msg(got == next[i],
                      "seed %llu: output %d is 0x%016llx, want 0x%016llx",
                      (unsigned long long)seed, i, (unsigned long long)got,
                      (unsigned long long)next[i]);
    }
}

START_TEST(test_rng_reference)
{
    expect_stream(0, seed0_state, seed0_next);
    expect_stream(12345, seed12345_state, seed12345_next);
}
END_TEST

START_TEST(test_rng_uniform)
{
    ag_rng rng = ag_rng_seed(7), copy = rng;
    for (int i = 0; i < 10000; i++) {
        double u = ag_rng_uniform(&rng);
        double want = (double)(ag_rng_next(&copy) >> 11) * 0x1p-53;
        if (u != want || !(u >= 0 && u < 1))
            ck_abort_msg("draw %d: %.17g, want %.17g in [0, 1)", i, u, want);
    }
    /* A state whose next output is all ones: result = rotl(s1 * 5, 7) * 9
     * depends on s1 only, and s1 = rotr(9^-1 * (2^64 - 1), 7) * 5^-1 mod
     * 2^64 = 0x4fc71c71c71c71c7 (computed with Python's pow(9, -1, 2**64)).
     * The uniform must still be below 1: (2^53 - 1) * 2^-53. */
    ag_rng top = {{1, 0x4fc71c71c71c71c7u, 2, 3}}, top2 = top;
    ck_assert(ag_rng_next(&top2) == UINT64_MAX);
    double u = ag_rng_uniform(&top);
    ck_assert_msg(u == 1.0 - 0x1p-53, "top uniform %.17g", u);
}
END_TEST

START_TEST(test_rng_normal)
{
    ag_rng rng = ag_rng_seed(2024);
    const int n = 200000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        double z = ag_rng_normal(&rng);
        /* |z| <= sqrt(-2 log 2^-53), the largest Box-Muller can give. */
        if (!(isfinite(z) && fabs(z) <= 8.6)) ck_abort_msg("draw %d: %g", i, z);
        sum += z;
        sum2 += z * z;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    ck_assert_msg(fabs(mean) < 0.01, "mean %g", mean);
    ck_assert_msg(fabs(var - 1) < 0.02, "variance %g", var);

    /* One normal uses exactly two outputs of the generator. */
    ag_rng r1 = ag_rng_seed(99), r2 = r1;
    ag_rng_normal(&r1);
    ag_rng_next(&r2);
    ag_rng_next(&r2);
    ck_assert(memcmp(&r1, &r2, sizeof r1) == 0);
}
END_TEST

/* Asserts that every element of t lies in [low, high). */
static void expect_in_range(ag_tensor *t, double low, double high)
{
    for (int64_t i = 0; i < ag_numel(t); i++)
        if (!(tensor_at(t, i) >= low && tensor_at(t, i) < high))
            ck_abort_msg("%s element %lld = %.17g not in [%g, %g)",
                         ag_dtype_name(ag_type(t)), (long long)i,
                         tensor_at(t, i), low, high);
}

START_TEST(test_rand)
{
    ag_arena *a = ag_arena_new();
    const int64_t shape[] = {100, 100};
    ag_rng rng = ag_rng_seed(5), copy = rng;
    ag_tensor *t = ag_rand(a, AG_F64, 2, shape, -3, 5, &rng);
    expect_shape(t, AG_F64, 2, shape);
    expect_in_range(t, -3, 5);
    double sum = 0;
    for (int64_t i = 0; i < ag_numel(t); i++) {
        /* The documented transform of ag_rng_uniform. */
        double want = -3 + 8 * ag_rng_uniform(&copy);
        if (!(fabs(tensor_at(t, i) - want) <= 1e-15 * 8))
            ck_abort_msg("element %lld: %.17g, want %.17g", (long long)i,
                         tensor_at(t, i), want);
        sum += tensor_at(t, i);
    }
    ck_assert_msg(fabs(sum / 10000 - 1) < 0.1, "mean %g", sum / 10000);
    ck_assert(memcmp(&rng, &copy, sizeof rng) == 0); /* rng advanced */

    ag_tensor *f = ag_rand(a, AG_F32, 2, shape, 0, 1, &rng);
    expect_shape(f, AG_F32, 2, shape);
    expect_in_range(f, 0, 1);
    ag_arena_free(a);
}
END_TEST

/* A uniform u >= 1 - 2^-25 rounds to 1.0f when converted to float; it
 * comes once in about 2^25 draws. Find one in the stream of seed 1 and ask
 * ag_rand for an f32 value in [0, 1) at exactly that draw: it must still be
 * below 1. */
START_TEST(test_rand_f32_below_high)
{
    ag_rng rng = ag_rng_seed(1), before = rng;
    long draws = 0;
    while ((ag_rng_next(&rng) >> 39) != (1u << 25) - 1) {
        before = rng;
        if (++draws >= (1L << 30)) ck_abort_msg("no such draw found");
    }
    rng = before; /* the state just before that draw */
    ag_rng probe = rng;
    ck_assert(ag_rng_uniform(&probe) >= 1.0 - 0x1p-25);
    ag_arena *a = ag_arena_new();
    ag_tensor *f = ag_rand(a, AG_F32, 1, (int64_t[]){1}, 0, 1, &rng);
    ck_assert_msg(ag_item(f) < 1, "ag_rand f32 [0, 1) gave %.9g at draw %ld",
                  ag_item(f), draws);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_randn)
{
    ag_arena *a = ag_arena_new();
    const int64_t shape[] = {3, 50};
    ag_rng r1 = ag_rng_seed(42), r2 = ag_rng_seed(42), r3 = ag_rng_seed(43);
    ag_tensor *t1 = ag_randn(a, AG_F64, 2, shape, 0, 1, &r1);
    ag_tensor *t2 = ag_randn(a, AG_F64, 2, shape, 0, 1, &r2);
    ag_tensor *t3 = ag_randn(a, AG_F64, 2, shape, 0, 1, &r3);
    expect_shape(t1, AG_F64, 2, shape);
    ck_assert(memcmp(ag_data(t1), ag_data(t2), 150 * sizeof(double)) == 0);
    int differ = 0;
    for (int i = 0; i < 150; i++)
        differ += tensor_at(t1, i) != tensor_at(t3, i);
    ck_assert_int_gt(differ, 140);
    /* The next draw continues the stream: not a repeat of the first. */
    ag_tensor *t4 = ag_randn(a, AG_F64, 2, shape, 0, 1, &r1);
    ck_assert(memcmp(ag_data(t1), ag_data(t4), 150 * sizeof(double)) != 0);

    /* mean and std: mean 5, std 2 over 100000 values. */
    ag_rng r = ag_rng_seed(3);
    ag_tensor *big = ag_randn(a, AG_F32, 1, (int64_t[]){100000}, 5, 2, &r);
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < 100000; i++) {
        sum += tensor_at(big, i);
        sum2 += tensor_at(big, i) * tensor_at(big, i);
    }
    double mean = sum / 100000, var = sum2 / 100000 - mean * mean;
    ck_assert_msg(fabs(mean - 5) < 0.03, "mean %g", mean);
    ck_assert_msg(fabs(sqrt(var) - 2) < 0.03, "std %g", sqrt(var));
    ag_arena_free(a);
}
END_TEST

/* ---- arenas ---- */

/* One "training step": ~50 tensors of assorted dtypes and sizes (some over
 * 64 KiB), each filled with its own value; then checks that none overwrote
 * another. Stores the data pointers in ptrs (50 of them). */
static void arena_step(ag_arena *a, void **ptrs)
{
    static const int64_t sizes[] = {1,   3,    7,    16,    17,  100,
                                    255, 1000, 4097, 20000, 9000};
    ag_tensor *ts[50];
    for (int i = 0; i < 50; i++) {
        ag_dtype dt = (ag_dtype)(i % 3);
        int64_t n = sizes[i % 11];
        ts[i] = ag_full(a, dt, 1, &n, i + 1);
        if (!ts[i]) ck_abort_msg("%s", ag_last_error());
        ptrs[i] = ag_data(ts[i]);
    }
    for (int i = 0; i < 50; i++) {
        int64_t n = ag_numel(ts[i]);
        if (tensor_at(ts[i], 0) != i + 1 || tensor_at(ts[i], n - 1) != i + 1)
            ck_abort_msg("tensor %d was overwritten", i);
    }
}

START_TEST(test_arena_reuse)
{
    ag_arena *a = ag_arena_new();
    void *first[50], *ptrs[50];
    arena_step(a, ptrs); /* grows the arena, in several blocks */
    ck_assert_uint_gt(ag_arena_capacity(a), 200000);
    ag_arena_reset(a);
    size_t cap = ag_arena_capacity(a);
    for (int step = 0; step < 100; step++) {
        arena_step(a, step == 0 ? first : ptrs);
        ck_assert_msg(ag_arena_capacity(a) == cap,
                      "step %d: capacity %zu, was %zu after the first reset",
                      step, ag_arena_capacity(a), cap);
        if (step > 0)
            ck_assert_msg(memcmp(first, ptrs, sizeof ptrs) == 0,
                          "step %d reused different memory", step);
        ag_arena_reset(a);
        ck_assert(ag_arena_capacity(a) == cap);
    }
    ag_arena_free(a);
}
END_TEST

/* Asserts that t's data, of at least 64 bytes, is 64-byte aligned. */
static void expect_aligned(ag_tensor *t)
{
    ck_assert_ptr_nonnull(t);
    ck_assert_int_ge(ag_numel(t) * (ag_type(t) == AG_F64 ? 8 : 4), 64);
    ck_assert_msg((uintptr_t)ag_data(t) % 64 == 0,
                  "%s tensor of %lld elements at %p", ag_dtype_name(ag_type(t)),
                  (long long)ag_numel(t), ag_data(t));
}

START_TEST(test_arena_alignment)
{
    ag_arena *a = ag_arena_new();
    /* Small tensors in between shift the bump pointer off 64 bytes. */
    const int64_t sizes[] = {16, 25, 33, 1000, 70000, 17, 64};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 7; i++) {
            ag_zeros(a, AG_I32, 1, (int64_t[]){1 + i});
            ag_ones(a, AG_F32, 1, (int64_t[]){3});
            expect_aligned(ag_zeros(a, AG_F32, 1, &sizes[i]));
            expect_aligned(ag_ones(a, AG_F64, 1, &sizes[i]));
            expect_aligned(ag_full(a, AG_I32, 1, &sizes[i], 2));
        }
        /* Op results and gradients too. */
        ag_tensor *x = ag_ones(a, AG_F64, 2, (int64_t[]){5, 7});
        ag_requires_grad(x, true);
        ag_zeros(a, AG_F32, 1, (int64_t[]){5});
        ag_tensor *y = ag_exp(a, x);
        expect_aligned(y);
        ag_zeros(a, AG_F32, 1, (int64_t[]){3});
        ck_assert_int_eq(ag_backward(ag_sum(a, y, AG_ALL, false)), 0);
        expect_aligned(ag_grad(x));
        expect_aligned(ag_grad(y));
        ag_arena_reset(a);
    }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_arena_null)
{
    ag_arena_free(NULL);
    ag_arena_reset(NULL);
    ck_assert_uint_eq(ag_arena_capacity(NULL), 0);
    /* A fresh arena may be reset and freed without any tensor. */
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    ag_arena_reset(a);
    ag_arena_reset(a);
    ag_arena_free(a);
    ck_assert_ptr_null(ag_zeros(NULL, AG_F32, 1, (int64_t[]){2}));
}
END_TEST

START_TEST(test_arena_independent)
{
    ag_arena *keep = ag_arena_new(), *other = ag_arena_new();
    ag_tensor *t = ag_arange(keep, AG_F64, 0, 5000, 1);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++)
            ag_full(other, AG_F64, 1, (int64_t[]){5000}, -1);
        ag_arena_reset(other);
        for (int i = 0; i < 20; i++)
            ag_full(other, AG_F64, 1, (int64_t[]){3000 + i}, -2);
    }
    ag_arena_free(other);
    ag_tensor *u = ag_ones(keep, AG_F64, 1, (int64_t[]){10});
    expect_all(u, 1);
    for (int64_t i = 0; i < 5000; i++)
        if (tensor_at(t, i) != (double)i)
            ck_abort_msg("element %lld changed", (long long)i);
    ag_arena_free(keep);
}
END_TEST

/* A uniform draw of exactly 0 gives u1 = 1 - 0 = 1 and a normal of
 * sqrt(-2 log 1) cos(.) = 0 (documented transform, u1 in (0, 1]). The state
 * {1, 0, 2, 3} has s[1] = 0, so its next output rotl(0*5,7)*9 is 0. */
START_TEST(test_normal_at_zero_draw)
{
    ag_rng probe = {{1, 0, 2, 3}}, rng = probe;
    ck_assert(ag_rng_next(&probe) == 0);
    double z = ag_rng_normal(&rng);
    ck_assert_msg(isfinite(z) && z == 0, "normal %g", z);
}
END_TEST

/* After reset, one allocation as big as the whole arena (less slack) is
 * served from the kept memory: reset merges the blocks. */
START_TEST(test_reset_serves_one_big_tensor)
{
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(ag_zeros(a, AG_F64, 1, (int64_t[]){4000}));
    ck_assert_ptr_nonnull(ag_zeros(a, AG_F64, 1, (int64_t[]){20000}));
    size_t cap = ag_arena_capacity(a);
    ag_arena_reset(a);
    int64_t n = (int64_t)((cap - 4096) / sizeof(double));
    ck_assert_ptr_nonnull(ag_zeros(a, AG_F64, 1, &n));
    ck_assert_uint_eq(ag_arena_capacity(a), cap);
    ag_arena_free(a);
}
END_TEST

static Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("constructors");
    tcase_add_test(tc, test_zeros_ones_full);
    tcase_add_test(tc, test_from_data_copies);
    tcase_add_test(tc, test_arange);
    tcase_add_test(tc, test_scalar);
    tcase_add_test(tc, test_zero_size_dims);
    suite_add_tcase(s, tc);

    tc = tcase_create("accessors");
    tcase_add_test(tc, test_accessors);
    tcase_add_test(tc, test_accessors_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_rng_reference);
    tcase_add_test(tc, test_rng_uniform);
    tcase_add_test(tc, test_rng_normal);
    tcase_add_test(tc, test_normal_at_zero_draw);
    tcase_add_test(tc, test_rand);
    tcase_add_test(tc, test_rand_f32_below_high);
    tcase_add_test(tc, test_randn);
    suite_add_tcase(s, tc);

    tc = tcase_create("arena");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_arena_reuse);
    tcase_add_test(tc, test_arena_alignment);
    tcase_add_test(tc, test_arena_null);
    tcase_add_test(tc, test_arena_independent);
    tcase_add_test(tc, test_reset_serves_one_big_tensor);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(tensor_suite());
}
