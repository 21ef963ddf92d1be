/* torch_cases.c: runs a case computed by PyTorch (torch_cases.h) through
 * the library and compares everything it recorded. */
#include "torch_cases.h"

#include "support.h"
#include <check.h>
#include <math.h>
#include <string.h>

/* Asserts that the n values of t agree with values[at..] within tol. */
static void expect_values(const torch_case *c, const char *what,
                          const ag_tensor *t, const double *values, int at,
                          double tol)
{
    ck_assert_msg(t != NULL, "%s: no %s", c->label, what);
    for (int64_t i = 0; i < ag_numel(t); i++) {
        double got = tensor_at(t, i), want = values[at + i];
        ck_assert_msg(fabs(got - want) <= tol * fmax(1, fabs(want)),
                      "%s (%s): %s element %lld is %.17g, PyTorch %.17g",
                      c->label, ag_dtype_name(ag_type(t)), what, (long long)i,
                      got, want);
    }
}

void torch_case_check(const torch_case *c, const double *values,
                      torch_case_fn fn, ag_dtype dt, double tol)
{
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    ag_tensor *x[TORCH_MAX_INPUTS];
    for (int k = 0; k < c->n_inputs; k++) {
        bool integer = c->kind[k] == TORCH_INT;
        x[k] = ag_zeros(a, integer ? AG_I32 : dt, c->ndim[k], c->shape[k]);
        ck_assert_ptr_nonnull(x[k]);
        for (int64_t i = 0; i < ag_numel(x[k]); i++) {
            double v = values[c->at[k] + i];
            if (integer)
                ((int32_t *)ag_data(x[k]))[i] = (int32_t)v;
            else
                tensor_set(x[k], i, v);
        }
        if (c->kind[k] == TORCH_GRAD) ag_requires_grad(x[k], true);
    }
    ag_tensor *y = fn(a, x);
    ck_assert_msg(y != NULL, "%s: %s", c->label, ag_last_error());
    ck_assert_int_eq(ag_type(y), dt);
    ck_assert_msg(ag_ndim(y) == c->out_ndim &&
                      !memcmp(ag_shape(y), c->out_shape,
                              (size_t)c->out_ndim * sizeof(int64_t)),
                  "%s: the result's shape is not PyTorch's", c->label);
    expect_values(c, "result", y, values, c->out_at, tol);
    int at = c->state_at;
    for (int k = 0; k < c->n_inputs; k++)
        if (c->kind[k] == TORCH_STATE) {
            ck_assert_int_ge(at, 0);
            expect_values(c, "state after the call", x[k], values, at, tol);
            at += (int)ag_numel(x[k]);
        }
    ag_tensor *cot = ag_zeros(a, dt, ag_ndim(y), ag_shape(y));
    ck_assert_ptr_nonnull(cot);
    for (int64_t i = 0; i < ag_numel(cot); i++)
        tensor_set(cot, i, values[c->cot_at + i]);
    ag_tensor *loss = ag_sum(a, ag_mul(a, y, cot), AG_ALL, false);
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s: backward: %s", c->label,
                  ag_last_error());
    for (int k = 0; k < c->n_inputs; k++)
        if (c->kind[k] == TORCH_GRAD)
            expect_values(c, "gradient", ag_grad(x[k]), values, c->grad_at[k],
                          tol);
    ag_arena_free(a);
}
