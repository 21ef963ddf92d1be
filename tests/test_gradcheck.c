/* test_gradcheck.c: every op of the op table, gradient-checked in f64
 * against central differences over the cases of gradcheck.c; an op with no
 * case fails the suite. */
#include "gradcheck.h"

#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

#define TOLERANCE 1e-6
#define EPS 1e-6

/* Every name in the op table has at least one case. */
START_TEST(test_every_op_has_a_case)
{
    ck_assert_int_gt(ag_op_count(), 0);
    for (int i = 0; i < ag_op_count(); i++) {
        int cases = 0;
        for (int c = 0; c < gc_case_count; c++)
            cases += strcmp(gc_cases[c].op, ag_op_name(i)) == 0;
        ck_assert_msg(cases > 0, "op '%s' has no gradient check",
                      ag_op_name(i));
    }
}
END_TEST

/* Case _i passes the check (a loop test, one run per case). */
START_TEST(test_case_gradient)
{
    const gc_case *c = &gc_cases[_i];
    ag_arena *a = ag_arena_new();
    ag_tensor *inputs[GC_MAX_INPUTS];
    ck_assert_int_eq(gc_make_inputs(c, a, AG_F64, 1000 + (uint64_t)_i, inputs),
                     0);
    gc_report r;
    ck_assert_msg(gc_check(c->fn, c->n_inputs, inputs, EPS, &r) == 0,
                  "%s %s: %s", c->op, c->label, ag_last_error());
    ck_assert_msg(r.error < TOLERANCE,
                  "%s %s: input %d element %lld: analytic %.12g numeric "
                  "%.12g (error %.3g)",
                  c->op, c->label, r.input, (long long)r.index, r.analytic,
                  r.numeric, r.error);
    ag_arena_free(a);
}
END_TEST

/* Every op adds into an existing leaf gradient: run backward once (g),
 * overwrite the gradient with known values c, run again: c + g. g itself is
 * verified against finite differences by test_gradcheck. */
START_TEST(test_case_accumulates)
{
    const gc_case *c = &gc_cases[_i];
    ag_arena *a = ag_arena_new();
    ag_tensor *in[GC_MAX_INPUTS];
    ck_assert_int_eq(gc_make_inputs(c, a, AG_F64, 2000 + (uint64_t)_i, in), 0);
    ag_tensor *y = c->fn(a, in);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    ag_rng rng = ag_rng_seed(9);
    ag_tensor *w = ag_rand(a, AG_F64, ag_ndim(y), ag_shape(y), -1, 1, &rng);
    ag_tensor *loss = ag_sum(a, ag_mul(a, y, w), AG_ALL, false);
    ck_assert_int_eq(ag_backward(loss), 0);
    double g[GC_MAX_INPUTS][64];
    for (int i = 0; i < c->n_inputs; i++) {
        double *d = ag_data(ag_grad(in[i]));
        ck_assert_int_le(ag_numel(in[i]), 64);
        for (int64_t j = 0; j < ag_numel(in[i]); j++) {
            g[i][j] = d[j];
            d[j] = 0.5 + 0.125 * (double)j; /* the known prior gradient */
        }
    }
    ck_assert_int_eq(ag_backward(loss), 0);
    for (int i = 0; i < c->n_inputs; i++) {
        const double *d = ag_data(ag_grad(in[i]));
        for (int64_t j = 0; j < ag_numel(in[i]); j++) {
            double want = 0.5 + 0.125 * (double)j + g[i][j];
            ck_assert_msg(fabs(d[j] - want) <= 1e-12 * fmax(1, fabs(want)),
                          "%s %s: input %d element %lld: %.17g, want %.17g",
                          c->op, c->label, i, (long long)j, d[j], want);
        }
    }
    ag_arena_free(a);
}
END_TEST

/* The checker itself can fail: a function whose recorded graph is not the
 * function it evaluates (it detaches one input) must be caught. */
static ag_tensor *f_detached(ag_arena *a, ag_tensor **x)
{
    return ag_mul(a, x[0], ag_detach(a, x[0]));
}

START_TEST(test_checker_catches_a_wrong_gradient)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(3);
    ag_tensor *x = ag_rand(a, AG_F64, 1, (int64_t[]){4}, 0.5, 2, &rng);
    ag_requires_grad(x, true);
    gc_report r;
    ck_assert_int_eq(gc_check(f_detached, 1, &x, EPS, &r), 0);
    /* analytic w x, numeric 2 w x: far above the tolerance */
    ck_assert_msg(r.error > 1e3 * TOLERANCE, "error %g", r.error);
    ck_assert_double_eq_tol(r.numeric, 2 * r.analytic, 1e-6);
    ag_arena_free(a);
}
END_TEST

static Suite *gradcheck_suite(void)
{
    Suite *s = suite_create("gradcheck");
    TCase *tc = tcase_create("ops");
    tcase_add_test(tc, test_every_op_has_a_case);
    tcase_add_loop_test(tc, test_case_gradient, 0, gc_case_count);
    tcase_add_loop_test(tc, test_case_accumulates, 0, gc_case_count);
    tcase_add_test(tc, test_checker_catches_a_wrong_gradient);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(gradcheck_suite());
}
