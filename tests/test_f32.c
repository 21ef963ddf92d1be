/* test_f32.c: every case of gradcheck.c run in f32 and in f64 on the same
 * inputs; values and gradients agree within float tolerance. */
#include "gradcheck.h"

#include "support.h"
#include <check.h>
#include <math.h>

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
    suite_add_tcase(s, tc);
    return run_suite(s);
}
