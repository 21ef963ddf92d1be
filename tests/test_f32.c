/* test_f32.c: every case of gradcheck.c run in f32 and in f64 on the same
 * inputs; values and gradients agree within float tolerance. */
#include "gradcheck.h"

#include "ops/fastmath.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define VALUE_TOLERANCE 1e-5
#define GRAD_TOLERANCE 1e-4

/* Asserts |f32 - f64| <= tol * max(1, |f64|) element by element. */
static void assert_close(ag_tensor *t32, ag_tensor *t64, double tol,
                         const gc_case *c, const char *what)
{
    ck_assert_ptr_nonnull(t32);
    ck_assert_ptr_nonnull(t64);
    ck_assert_int_eq(ag_numel(t32), ag_numel(t64));
    for (int64_t i = 0; i < ag_numel(t64); i++) {
        double want = tensor_at(t64, i), got = tensor_at(t32, i);
        ck_assert_msg(fabs(got - want) <= tol * fmax(1.0, fabs(want)),
                      "%s %s: %s element %lld: f32 %.9g f64 %.9g", c->op,
                      c->label, what, (long long)i, got, want);
    }
}

/* ag__exp_nonpos_f32 gives ag__exp_f32's bits for every x <= 0 (NaN as
 * NaN) and for 0 < x <= 88: here one float bit pattern in 509 of each
 * range, and the edges (the whole ranges, 3.3e9 floats, were compared once
 * when it was written). */
START_TEST(test_exp_nonpos_matches_exp)
{
    const uint32_t ranges[2][2] = {{0x80000000u, 0xFFFFFFFFu},
                                   {0x00000000u, 0x42B00000u}}; /* 88.0f */
    const float edges[] = {-0.0f,  0.0f,    -87.0f,     -87.33654f, -87.33655f,
                           -87.5f, -88.0f,  -1e30f,     -INFINITY,  88.0f,
                           1e-30f, -1e-30f, (float)NAN, -(float)NAN};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        float x = edges[i], want = ag__exp_f32(x), got = ag__exp_nonpos_f32(x);
        ck_assert_msg(memcmp(&want, &got, sizeof got) == 0 ||
                          (want != want && got != got),
                      "e^%a: %a, ag__exp_f32 %a", x, got, want);
    }
    /* counted, then asserted once: an assertion per value is slow */
    uint64_t checked = 0, differ = 0;
    float first = 0;
    for (int r = 0; r < 2; r++)
        for (uint64_t b = ranges[r][0]; b <= ranges[r][1]; b += 509) {
            uint32_t bits = (uint32_t)b;
            float x, want, got;
            memcpy(&x, &bits, sizeof x);
            want = ag__exp_f32(x);
            got = ag__exp_nonpos_f32(x);
            checked++;
            if (memcmp(&want, &got, sizeof got) != 0 &&
                !(want != want && got != got) && differ++ == 0)
                first = x;
        }
    ck_assert_msg(checked > 6000000, "only %llu values",
                  (unsigned long long)checked);
    ck_assert_msg(differ == 0, "%llu of %llu differ, the first at %a",
                  (unsigned long long)differ, (unsigned long long)checked,
                  first);
}
END_TEST

/* GELU in f32 (a vectorised normal CDF, lib/ops/fastmath.h) against f64
 * (the C library's erf) over [-12, 12]: within 2e-6 relative where
 * Phi(x) > 1e-3 (x > -3.09), 2e-5 in the tail (no cancellation: erff's
 * 1 + erf(x / sqrt 2) loses 1e-2 relative at x = -5), give or take 2e-15,
 * the resolution of f64's own 1 + erf (0 from x = -8.3 on), and its
 * derivative Phi + x phi within 1e-6. */
START_TEST(test_gelu_f32_accuracy)
{
    ag_arena *a = ag_arena_new();
    const int64_t n = 24001;
    ag_tensor *x32 = ag_zeros(a, AG_F32, 1, &n),
              *x64 = ag_zeros(a, AG_F64, 1, &n);
    for (int64_t i = 0; i < n; i++) {
        float x = (float)(-12 + 0.001 * (double)i);
        tensor_set(x32, i, x);
        tensor_set(x64, i, x);
    }
    ag_requires_grad(x32, true);
    ag_requires_grad(x64, true);
    ag_tensor *y32 = ag_gelu(a, x32), *y64 = ag_gelu(a, x64);
    ck_assert_int_eq(ag_backward(ag_sum(a, y32, AG_ALL, false)), 0);
    ck_assert_int_eq(ag_backward(ag_sum(a, y64, AG_ALL, false)), 0);
    for (int64_t i = 0; i < n; i++) {
        double x = tensor_at(x64, i), want = tensor_at(y64, i),
               got = tensor_at(y32, i), tol = x > -3.09 ? 2e-6 : 2e-5;
        ck_assert_msg(fabs(got - want) <= tol * fabs(want) + 2e-15,
                      "gelu(%.9g): f32 %.9g, f64 %.17g", x, got, want);
        double dwant = tensor_at(ag_grad(x64), i),
               dgot = tensor_at(ag_grad(x32), i);
        ck_assert_msg(fabs(dgot - dwant) <= 1e-6,
                      "gelu'(%.9g): f32 %.9g, f64 %.17g", x, dgot, dwant);
    }
    /* near 0, subnormals included, the derivative is 1/2 */
    const double tiny[4] = {1e-20, -1e-25, 4.9e-324, -2.2e-310};
    ag_tensor *t = ag_from_data(a, AG_F64, 1, (int64_t[]){4}, tiny);
    ag_requires_grad(t, true);
    ck_assert_int_eq(ag_backward(ag_sum(a, ag_gelu(a, t), AG_ALL, false)), 0);
    for (int64_t i = 0; i < 4; i++)
        ck_assert_msg(tensor_at(ag_grad(t), i) == 0.5, "gelu'(%g) = %.17g",
                      tiny[i], tensor_at(ag_grad(t), i));
    ag_arena_free(a);
}
END_TEST

/* Runs case c in dtype dt: output y and L = sum(y * w) with backward. */
static ag_tensor *run_case(const gc_case *c, ag_arena *a, ag_dtype dt,
                           uint64_t seed, ag_tensor **inputs)
{
    ck_assert_int_eq(gc_make_inputs(c, a, dt, seed, inputs), 0);
    ag_tensor *y = c->fn(a, inputs);
    ck_assert_msg(y != NULL, "%s %s: %s", c->op, c->label, ag_last_error());
    ag_rng rng = ag_rng_seed(seed + 1);
    ag_tensor *w = ag_rand(a, dt, ag_ndim(y), ag_shape(y), -1, 1, &rng);
    ag_tensor *loss = ag_sum(a, ag_mul(a, y, w), AG_ALL, false);
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s", ag_last_error());
    return y;
}

START_TEST(test_f32_matches_f64)
{
    const gc_case *c = &gc_cases[_i];
    ag_arena *a = ag_arena_new();
    ag_tensor *in32[GC_MAX_INPUTS], *in64[GC_MAX_INPUTS];
    uint64_t seed = 500 + (uint64_t)_i;
    ag_tensor *y32 = run_case(c, a, AG_F32, seed, in32);
    ag_tensor *y64 = run_case(c, a, AG_F64, seed, in64);
    ck_assert_int_eq(ag_type(y32), AG_F32);
    assert_close(y32, y64, VALUE_TOLERANCE, c, "value");
    for (int i = 0; i < c->n_inputs; i++)
        assert_close(ag_grad(in32[i]), ag_grad(in64[i]), GRAD_TOLERANCE, c,
                     "gradient");
    ag_arena_free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("f32");
    TCase *tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_f32_matches_f64, 0, gc_case_count);
    tcase_add_test(tc, test_gelu_f32_accuracy);
    tcase_add_test(tc, test_exp_nonpos_matches_exp);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
