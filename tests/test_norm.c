/* test_norm.c: layer norm, RMS norm and batch norm against PyTorch
 * (fixtures/norm_torch.h, made by fixtures/make_norm_fixture.py): values,
 * gradients of every input, and batch norm's running statistics after one
 * and after several training steps and in eval mode, within 1e-10 in f64
 * and 1e-4 in f32. Then the errors of each function, which change
 * nothing. */
#include <autograd.h>

#include "fixtures/norm_torch.h"
#include "support.h"
#include "torch_cases.h"
#include <check.h>
#include <math.h>
#include <string.h>

/* clang-format off */
static ag_tensor *layer_norm_wb(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, x[1], x[2], 1e-5); }
static ag_tensor *layer_norm_2w(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 2, x[1], NULL, 1e-3); }
static ag_tensor *layer_norm_plain(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, NULL, NULL, 1e-5); }
static ag_tensor *layer_norm_b(ag_arena *a, ag_tensor **x) { return ag_layer_norm(a, x[0], 1, NULL, x[1], 0.1); }
static ag_tensor *rms_norm_w(ag_arena *a, ag_tensor **x) { return ag_rms_norm(a, x[0], 1, x[1], 1e-6); }
static ag_tensor *rms_norm_2(ag_arena *a, ag_tensor **x) { return ag_rms_norm(a, x[0], 2, NULL, 1e-5); }
static ag_tensor *bn_train_wb_running(ag_arena *a, ag_tensor **x) { return ag_batch_norm(a, x[0], x[3], x[4], x[1], x[2], true, 0.1, 1e-5); }
static ag_tensor *bn_train_running(ag_arena *a, ag_tensor **x) { return ag_batch_norm(a, x[0], x[1], x[2], NULL, NULL, true, 0.3, 1e-5); }
static ag_tensor *bn_train_wb(ag_arena *a, ag_tensor **x) { return ag_batch_norm(a, x[0], NULL, NULL, x[1], x[2], true, 0.1, 1e-3); }
static ag_tensor *bn_eval_wb(ag_arena *a, ag_tensor **x) { return ag_batch_norm(a, x[0], x[1], x[2], x[3], x[4], false, 0.1, 1e-5); }
static ag_tensor *bn_eval(ag_arena *a, ag_tensor **x) { return ag_batch_norm(a, x[0], x[1], x[2], NULL, NULL, false, 0.1, 1e-5); }
/* clang-format on */

/* `steps` training steps on the blocks of x[0] (steps, N, C...), updating
 * the running statistics x[2] and x[3], then eval on x[1]. */
static ag_tensor *steps_then_eval(ag_arena *a, ag_tensor **x, int steps,
                                  double momentum, ag_tensor *w, ag_tensor *b)
{
    const int64_t *shape = ag_shape(x[1]);
    int64_t block = ag_numel(x[1]);
    for (int s = 0; s < steps; s++) {
        ag_tensor *xs = ag_from_data(
            a, ag_type(x[1]), ag_ndim(x[1]), shape,
            (char *)ag_data(x[0]) +
                (size_t)(s * block) *
                    (ag_type(x[1]) == AG_F32 ? sizeof(float) : sizeof(double)));
        ck_assert_ptr_nonnull(
            ag_batch_norm(a, xs, x[2], x[3], w, b, true, momentum, 1e-5));
    }
    return ag_batch_norm(a, x[1], x[2], x[3], w, b, false, momentum, 1e-5);
}

static ag_tensor *bn_3_steps(ag_arena *a, ag_tensor **x)
{
    return steps_then_eval(a, x, 3, 0.1, x[4], x[5]);
}

static ag_tensor *bn_4_steps(ag_arena *a, ag_tensor **x)
{
    return steps_then_eval(a, x, 4, 0.5, NULL, NULL);
}

/* The library's expression of each fixture case, by label. */
static const struct {
    const char *label;
    torch_case_fn fn;
} calls[] = {
    {"layer_norm (3,4) w b eps 1e-5", layer_norm_wb},
    {"layer_norm (2,3,4) over 2 axes w eps 1e-3", layer_norm_2w},
    {"layer_norm (2,5) no affine eps 1e-5", layer_norm_plain},
    {"layer_norm (3,4) bias only eps 0.1", layer_norm_b},
    {"rms_norm (3,4) w eps 1e-6", rms_norm_w},
    {"rms_norm (2,3,4) over 2 axes eps 1e-5", rms_norm_2},
    {"batch_norm training (4,3) w b running momentum 0.1", bn_train_wb_running},
    {"batch_norm training (2,3,4) running momentum 0.3", bn_train_running},
    {"batch_norm training (3,2,2,2) w b eps 1e-3", bn_train_wb},
    {"batch_norm eval (4,3) w b", bn_eval_wb},
    {"batch_norm eval (2,3,4)", bn_eval},
    {"batch_norm 3 training steps momentum 0.1 then eval (4,3)", bn_3_steps},
    {"batch_norm 4 training steps momentum 0.5 then eval (2,3,2)", bn_4_steps},
};

#define CALLS ((int)(sizeof calls / sizeof calls[0]))

static torch_case_fn call_of(const char *label)
{
    for (int i = 0; i < CALLS; i++)
        if (strcmp(calls[i].label, label) == 0) return calls[i].fn;
    ck_abort_msg("no call for fixture case \"%s\"", label);
    return NULL;
}

START_TEST(test_every_case_has_a_call)
{
    ck_assert_int_eq(CALLS, NORM_CASES);
    for (int i = 0; i < NORM_CASES; i++)
        ck_assert(call_of(norm_cases[i].label) != NULL);
}
END_TEST

START_TEST(test_against_torch_f64)
{
    torch_case_check(&norm_cases[_i], norm_values,
                     call_of(norm_cases[_i].label), AG_F64, 1e-10);
}
END_TEST

START_TEST(test_against_torch_f32)
{
    torch_case_check(&norm_cases[_i], norm_values,
                     call_of(norm_cases[_i].label), AG_F32, 1e-4);
}
END_TEST

/* ---- errors: NULL, a message naming the function and the values, and
 * nothing written ---- */

static ag_arena *arena;

static void setup(void)
{
    arena = ag_arena_new();
    ck_assert_ptr_nonnull(arena);
}

static void teardown(void)
{
    ag_arena_free(arena);
}

static ag_tensor *filled(ag_dtype dt, int ndim, const int64_t *shape, double v)
{
    ag_tensor *t = ag_full(arena, dt, ndim, shape, v);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* Asserts that y is NULL and the message holds `want`. */
static void expect_error(const ag_tensor *y, const char *want)
{
    ck_assert_ptr_null(y);
    ck_assert_msg(strstr(ag_last_error(), want),
                  "message \"%s\", expected \"%s\"", ag_last_error(), want);
}

START_TEST(test_layer_and_rms_norm_errors)
{
    ag_tensor *x = filled(AG_F64, 2, (int64_t[]){3, 4}, 1);
    ag_tensor *w3 = filled(AG_F64, 1, (int64_t[]){3}, 1);
    ag_tensor *w32 = filled(AG_F32, 1, (int64_t[]){4}, 1);
    expect_error(ag_layer_norm(arena, x, 3, NULL, NULL, 1e-5),
                 "ag_layer_norm: normalized_ndim 3 is out of [1, 2] for x "
                 "(3,4)");
    expect_error(ag_layer_norm(arena, x, 0, NULL, NULL, 1e-5),
                 "normalized_ndim 0 is out of [1, 2]");
    expect_error(ag_layer_norm(arena, x, 1, w3, NULL, 1e-5),
                 "ag_layer_norm: weight (3) must have shape (4) for x (3,4)");
    expect_error(ag_layer_norm(arena, x, 1, NULL, w3, 1e-5),
                 "ag_layer_norm: bias (3) must have shape (4) for x (3,4)");
    expect_error(ag_layer_norm(arena, x, 1, w32, NULL, 1e-5),
                 "ag_layer_norm: weight is f32 (4), x is f64 (3,4)");
    expect_error(ag_layer_norm(arena, x, 1, NULL, NULL, -1),
                 "ag_layer_norm: eps must be finite and >= 0, got -1");
    expect_error(ag_rms_norm(arena, x, 1, w3, 1e-5),
                 "ag_rms_norm: weight (3) must have shape (4) for x (3,4)");
    expect_error(ag_rms_norm(arena, x, 1, NULL, NAN), "ag_rms_norm: eps");
    ag_tensor *i = ag_zeros(arena, AG_I32, 2, (int64_t[]){3, 4});
    expect_error(ag_layer_norm(arena, i, 1, NULL, NULL, 1e-5),
                 "ag_layer_norm: input 0 has dtype i32");
    /* a NULL x keeps the pending message */
    expect_error(ag_layer_norm(arena, ag_reshape(arena, x, 1, (int64_t[]){5}),
                               1, NULL, NULL, 1e-5),
                 "ag_reshape");
    expect_error(ag_rms_norm(arena, ag_reshape(arena, x, 1, (int64_t[]){5}), 1,
                             NULL, 1e-5),
                 "ag_reshape");
}
END_TEST

START_TEST(test_batch_norm_errors)
{
    ag_tensor *x = filled(AG_F64, 2, (int64_t[]){4, 3}, 1);
    ag_tensor *m = filled(AG_F64, 1, (int64_t[]){3}, 0.5);
    ag_tensor *v = filled(AG_F64, 1, (int64_t[]){3}, 2);
    ag_tensor *v2 = filled(AG_F64, 1, (int64_t[]){2}, 2);
    ag_tensor *one = filled(AG_F64, 2, (int64_t[]){1, 3}, 1);
    ag_tensor *flat = filled(AG_F64, 1, (int64_t[]){3}, 1);
    expect_error(
        ag_batch_norm(arena, flat, NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
        "ag_batch_norm: x must be (N,C,...), got (3)");
    expect_error(ag_batch_norm(arena, x, m, v2, NULL, NULL, true, 0.1, 1e-5),
                 "ag_batch_norm: running_var (2) must have shape (3) for x "
                 "(4,3)");
    expect_error(ag_batch_norm(arena, x, m, NULL, NULL, NULL, true, 0.1, 1e-5),
                 "running_mean and running_var must be given together");
    expect_error(
        ag_batch_norm(arena, x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5),
        "ag_batch_norm: eval mode (training false) needs running_mean and "
        "running_var");
    expect_error(ag_batch_norm(arena, x, m, v, v2, NULL, true, 0.1, 1e-5),
                 "ag_batch_norm: weight (2) must have shape (3)");
    expect_error(ag_batch_norm(arena, x, m, v, NULL, v2, true, 0.1, 1e-5),
                 "ag_batch_norm: bias (2) must have shape (3)");
    expect_error(
        ag_batch_norm(arena, x, m, v, NULL, NULL, true, INFINITY, 1e-5),
        "ag_batch_norm: momentum must be finite, got inf");
    expect_error(ag_batch_norm(arena, one, m, v, NULL, NULL, true, 0.1, 1e-5),
                 "ag_batch_norm: expected more than 1 value per channel when "
                 "training, got x (1,3)");
    /* nothing written: the running statistics are unchanged */
    for (int c = 0; c < 3; c++) {
        ck_assert_double_eq(tensor_at(m, c), 0.5);
        ck_assert_double_eq(tensor_at(v, c), 2);
    }
    /* eval with one row is fine, and leaves them alone too */
    ck_assert_ptr_nonnull(
        ag_batch_norm(arena, one, m, v, NULL, NULL, false, 0.1, 1e-5));
    ck_assert_double_eq(tensor_at(m, 0), 0.5);
    ag_clear_error(); /* no pending message: the NULL is named */
    expect_error(ag_batch_norm(arena, NULL, m, v, NULL, NULL, true, 0.1, 1e-5),
                 "ag_batch_norm: input 0 is NULL");
}
END_TEST

/* The running statistics follow PyTorch's update with the unbiased
 * variance, and a batch without elements leaves them alone. */
START_TEST(test_batch_norm_running_update)
{
    double xs[4] = {1, 2, 4, 9}; /* (4,1): mean 4, unbiased variance 38/3 */
    ag_tensor *x = ag_from_data(arena, AG_F64, 2, (int64_t[]){4, 1}, xs);
    ag_tensor *m = filled(AG_F64, 1, (int64_t[]){1}, 1);
    ag_tensor *v = filled(AG_F64, 1, (int64_t[]){1}, 1);
    ck_assert_ptr_nonnull(
        ag_batch_norm(arena, x, m, v, NULL, NULL, true, 0.25, 1e-5));
    ck_assert_double_eq_tol(tensor_at(m, 0), 0.75 + 0.25 * 4, 1e-15);
    ck_assert_double_eq_tol(tensor_at(v, 0), 0.75 + 0.25 * 38.0 / 3, 1e-14);
    ag_tensor *empty = ag_zeros(arena, AG_F64, 2, (int64_t[]){0, 1});
    ag_tensor *y =
        ag_batch_norm(arena, empty, m, v, NULL, NULL, true, 0.25, 1e-5);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(ag_numel(y), 0);
    ck_assert_double_eq_tol(tensor_at(m, 0), 1.75, 1e-15);
}
END_TEST

/* Layer norm splits its groups over the threads and sums dw and db over
 * chunks of 32 groups, added in order: the same numbers, bit for bit, on
 * 1, 2 and 3 threads, and dw and db equal to sums written out here. */
START_TEST(test_layer_norm_threads_agree)
{
    int before = ag_get_num_threads();
    const int64_t rows = 300, cols = 256; /* above the threading threshold */
    ag_rng rng = ag_rng_seed(5);
    ag_tensor *x =
        ag_randn(arena, AG_F64, 2, (int64_t[]){rows, cols}, 0, 1, &rng);
    ag_tensor *c =
        ag_randn(arena, AG_F64, 2, (int64_t[]){rows, cols}, 0, 1, &rng);
    ag_tensor *w = ag_randn(arena, AG_F64, 1, &cols, 1, 0.1, &rng);
    ag_tensor *b = ag_randn(arena, AG_F64, 1, &cols, 0, 0.1, &rng);
    ag_tensor *leaves[3] = {x, w, b}, *first[4] = {NULL};
    for (int k = 0; k < 3; k++) ag_requires_grad(leaves[k], true);
    for (int threads = 1; threads <= 3; threads++) {
        ck_assert_int_eq(ag_set_num_threads(threads), 0);
        for (int k = 0; k < 3; k++) ag_zero_grad(leaves[k]);
        ag_tensor *y = ag_layer_norm(arena, x, 1, w, b, 1e-5);
        ag_tensor *l = ag_sum(arena, ag_mul(arena, y, c), AG_ALL, false);
        ck_assert_msg(l && ag_backward(l) == 0, "%s", ag_last_error());
        ag_tensor *got[4] = {y, ag_detach(arena, ag_grad(x)),
                             ag_detach(arena, ag_grad(w)),
                             ag_detach(arena, ag_grad(b))};
        expect_same_bits(got, first, 4, threads);
    }
    ag_set_num_threads(before);
    /* dw[j] = sum_i c[i,j] xhat[i,j] = sum_i c[i,j] (y[i,j] - b[j]) / w[j],
     * db[j] = sum_i c[i,j] */
    const double *yv = ag_data(first[0]), *cv = ag_data(c);
    const double *wv = ag_data(w), *bv = ag_data(b);
    for (int64_t j = 0; j < cols; j++) {
        double dw = 0, db = 0;
        for (int64_t i = 0; i < rows; i++) {
            dw += cv[i * cols + j] * (yv[i * cols + j] - bv[j]) / wv[j];
            db += cv[i * cols + j];
        }
        ck_assert_double_eq_tol(tensor_at(first[2], j), dw, 1e-10);
        ck_assert_double_eq_tol(tensor_at(first[3], j), db, 1e-10);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("norm");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_every_case_has_a_call);
    tcase_add_loop_test(tc, test_against_torch_f64, 0, NORM_CASES);
    tcase_add_loop_test(tc, test_against_torch_f32, 0, NORM_CASES);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, setup, teardown);
    tcase_add_test(te, test_layer_and_rms_norm_errors);
    tcase_add_test(te, test_batch_norm_errors);
    tcase_add_test(te, test_batch_norm_running_update);
    tcase_add_test(te, test_layer_norm_threads_agree);
    suite_add_tcase(s, te);
    return run_suite(s);
}
