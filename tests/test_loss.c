/* test_loss.c: cross-entropy (ignore_index, label smoothing, (N,C,d...)),
 * binary cross-entropy with logits, L1 and Huber against PyTorch
 * (fixtures/loss_torch.h, made by fixtures/make_loss_fixture.py): values
 * and the gradients of every float input, within 1e-10 in f64 and 1e-4 in
 * f32. Then the errors, and our choice where PyTorch gives NaN: every
 * target ignored is refused. */
#include <autograd.h>

#include "fixtures/loss_torch.h"
#include "support.h"
#include "torch_cases.h"
#include <check.h>
#include <math.h>
#include <string.h>

static ag_tensor *ce_with(ag_arena *a, ag_tensor **x, int32_t ignore,
                          double smoothing)
{
    ag_cross_entropy_options o = {ignore, smoothing};
    return ag_cross_entropy(a, x[0], x[1], &o);
}

/* clang-format off */
static ag_tensor *ce_plain(ag_arena *a, ag_tensor **x) { return ag_cross_entropy(a, x[0], x[1], NULL); }
static ag_tensor *ce_ignore2(ag_arena *a, ag_tensor **x) { return ce_with(a, x, 2, 0.2); }
static ag_tensor *ce_ignore(ag_arena *a, ag_tensor **x) { return ce_with(a, x, -100, 0); }
static ag_tensor *ce_ignore_smooth(ag_arena *a, ag_tensor **x) { return ce_with(a, x, -100, 0.15); }
static ag_tensor *ce_smooth(ag_arena *a, ag_tensor **x) { return ce_with(a, x, -100, 0.1); }
static ag_tensor *ce_smooth1(ag_arena *a, ag_tensor **x) { return ce_with(a, x, -100, 1); }
static ag_tensor *bce(ag_arena *a, ag_tensor **x) { return ag_binary_cross_entropy_with_logits(a, x[0], x[1]); }
static ag_tensor *l1(ag_arena *a, ag_tensor **x) { return ag_l1_loss(a, x[0], x[1]); }
static ag_tensor *huber1(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], x[1], 1); }
static ag_tensor *huber03(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], x[1], 0.3); }
static ag_tensor *huber25(ag_arena *a, ag_tensor **x) { return ag_huber_loss(a, x[0], x[1], 2.5); }
/* clang-format on */

/* The library's expression of each fixture case, by label. */
static const struct {
    const char *label;
    torch_case_fn fn;
} calls[] = {
    {"cross_entropy (4,5)", ce_plain},
    {"cross_entropy (4,5) ignore_index 2 smoothing 0.2", ce_ignore2},
    {"cross_entropy (3,4) ignore_index -100", ce_ignore},
    {"cross_entropy (2,3,4) ignore_index -100 smoothing 0.15",
     ce_ignore_smooth},
    {"cross_entropy (2,3,2,2) smoothing 0.1", ce_smooth},
    {"cross_entropy (3,4) logits times 40 smoothing 1", ce_smooth1},
    {"binary_cross_entropy_with_logits (3,4)", bce},
    {"binary_cross_entropy_with_logits (2,3,2) logits times 30", bce},
    {"l1_loss (3,4)", l1},
    {"l1_loss (7) ties", l1},
    {"huber_loss (3,4) delta 1", huber1},
    {"huber_loss (2,5) delta 0.3", huber03},
    {"huber_loss (6) delta 2.5", huber25},
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
    ck_assert_int_eq(CALLS, LOSS_CASES);
    for (int i = 0; i < LOSS_CASES; i++)
        ck_assert(call_of(loss_cases[i].label) != NULL);
}
END_TEST

START_TEST(test_against_torch_f64)
{
    torch_case_check(&loss_cases[_i], loss_values,
                     call_of(loss_cases[_i].label), AG_F64, 1e-10);
}
END_TEST

START_TEST(test_against_torch_f32)
{
    torch_case_check(&loss_cases[_i], loss_values,
                     call_of(loss_cases[_i].label), AG_F32, 1e-4);
}
END_TEST

/* ---- errors ---- */

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

static void expect_error(const ag_tensor *y, const char *want)
{
    ck_assert_ptr_null(y);
    ck_assert_msg(strstr(ag_last_error(), want),
                  "message \"%s\", expected \"%s\"", ag_last_error(), want);
}

static ag_tensor *targets(int ndim, const int64_t *shape, const int32_t *t)
{
    ag_tensor *x = ag_from_data(arena, AG_I32, ndim, shape, t);
    ck_assert_ptr_nonnull(x);
    return x;
}

START_TEST(test_cross_entropy_errors)
{
    ag_tensor *x = ag_zeros(arena, AG_F64, 2, (int64_t[]){3, 4});
    ag_tensor *x3 = ag_zeros(arena, AG_F64, 3, (int64_t[]){2, 4, 3});
    ag_cross_entropy_options o = {-100, 0};
    expect_error(
        ag_cross_entropy(
            arena, x, targets(1, (int64_t[]){3}, (int32_t[]){0, 4, 1}), NULL),
        "ag_cross_entropy: target 4 at index 1 is out of [0, 4)");
    expect_error(ag_cross_entropy(arena, x3,
                                  targets(2, (int64_t[]){2, 3},
                                          (int32_t[]){0, 1, 2, 3, -100, 5}),
                                  &o),
                 "ag_cross_entropy: target 5 at index (1,2) is out of [0, 4)");
    /* without options -100 is no ignored class but a bad target */
    expect_error(ag_cross_entropy(
                     arena, x,
                     targets(1, (int64_t[]){3}, (int32_t[]){0, -100, 1}), NULL),
                 "ag_cross_entropy: target -100 at index 1 is out of [0, 4)");
    expect_error(
        ag_cross_entropy(arena, x,
                         targets(1, (int64_t[]){2}, (int32_t[]){0, 1}), NULL),
        "ag_cross_entropy: targets (2) must have shape (3) for logits (3,4)");
    expect_error(ag_cross_entropy(arena, x3,
                                  targets(1, (int64_t[]){2}, (int32_t[]){0, 1}),
                                  NULL),
                 "targets (2) must have shape (2,3) for logits (2,4,3)");
    expect_error(ag_cross_entropy(arena, x, x, NULL),
                 "ag_cross_entropy: targets must be i32 class indices, got "
                 "f64 (3,4)");
    ag_tensor *t = targets(1, (int64_t[]){3}, (int32_t[]){0, 1, 2});
    ag_cross_entropy_options bad = {-100, 1.5};
    expect_error(ag_cross_entropy(arena, x, t, &bad),
                 "ag_cross_entropy: label_smoothing must be in [0, 1], got "
                 "1.5");
    expect_error(ag_cross_entropy(arena,
                                  ag_zeros(arena, AG_F64, 1, (int64_t[]){4}), t,
                                  NULL),
                 "ag_cross_entropy: logits must be (N,C) or (N,C,d...), got "
                 "(4)");
    /* PyTorch's NaN when every target is ignored: refused here */
    ag_cross_entropy_options ig = {2, 0.1};
    expect_error(
        ag_cross_entropy(arena, x,
                         targets(1, (int64_t[]){3}, (int32_t[]){2, 2, 2}), &ig),
        "ag_cross_entropy: every target is ignore_index 2: no target "
        "to average over");
    ag_clear_error(); /* no pending message: the NULL is named */
    expect_error(ag_cross_entropy(arena, NULL, t, NULL),
                 "ag_cross_entropy: input 0 is NULL");
    ag_clear_error(); /* no pending message: the NULL is named */
    expect_error(ag_cross_entropy(arena, x, NULL, NULL),
                 "ag_cross_entropy: input 1 is NULL");
}
END_TEST

/* The targets are copied: changing them after the call changes neither
 * the loss's gradient nor its graph's. */
START_TEST(test_cross_entropy_copies_targets)
{
    double xs[6] = {0.5, -1, 2, 0.1, 0.2, 0.3};
    ag_tensor *x = ag_from_data(arena, AG_F64, 2, (int64_t[]){2, 3}, xs);
    ag_requires_grad(x, true);
    int32_t tv[2] = {2, 0};
    ag_tensor *t = targets(1, (int64_t[]){2}, tv);
    ag_tensor *loss = ag_cross_entropy(arena, x, t, NULL);
    ck_assert_ptr_nonnull(loss);
    ((int32_t *)ag_data(t))[0] = 0;
    ck_assert_int_eq(ag_backward(loss), 0);
    /* row 0's gradient is (softmax - onehot(2)) / 2: negative at class 2 */
    ck_assert(tensor_at(ag_grad(x), 2) < 0);
    ck_assert(tensor_at(ag_grad(x), 0) > 0);
}
END_TEST

START_TEST(test_pair_loss_errors)
{
    ag_tensor *p = ag_zeros(arena, AG_F64, 2, (int64_t[]){3, 4});
    ag_tensor *q = ag_zeros(arena, AG_F64, 2, (int64_t[]){4, 3});
    ag_tensor *f = ag_zeros(arena, AG_F32, 2, (int64_t[]){3, 4});
    expect_error(ag_binary_cross_entropy_with_logits(arena, p, q),
                 "ag_binary_cross_entropy_with_logits: pred (3,4) and target "
                 "(4,3) must have the same shape");
    expect_error(ag_l1_loss(arena, p, f), "ag_l1_loss: dtypes differ");
    expect_error(ag_huber_loss(arena, p, q, 1),
                 "ag_huber_loss: pred (3,4) and target (4,3) must have the "
                 "same shape");
    expect_error(ag_huber_loss(arena, p, p, 0),
                 "ag_huber_loss: delta must be finite and > 0, got 0");
    expect_error(ag_huber_loss(arena, p, p, NAN),
                 "ag_huber_loss: delta must be finite and > 0");
    ag_clear_error(); /* no pending message: the NULL is named */
    expect_error(ag_l1_loss(arena, NULL, p), "ag_l1_loss: input 0 is NULL");
}
END_TEST

/* The stable forms stay finite where the naive ones overflow. */
START_TEST(test_large_logits)
{
    double xs[2] = {800, -800}, ts[2] = {0, 1};
    ag_tensor *x = ag_from_data(arena, AG_F64, 1, (int64_t[]){2}, xs);
    ag_tensor *t = ag_from_data(arena, AG_F64, 1, (int64_t[]){2}, ts);
    ag_requires_grad(x, true);
    ag_tensor *loss = ag_binary_cross_entropy_with_logits(arena, x, t);
    ck_assert_double_eq_tol(ag_item(loss), 800, 1e-12);
    ck_assert_int_eq(ag_backward(loss), 0);
    ck_assert_double_eq_tol(tensor_at(ag_grad(x), 0), 0.5, 1e-15);
    ck_assert_double_eq_tol(tensor_at(ag_grad(x), 1), -0.5, 1e-15);
    double ls[3] = {1000, -1000, 0};
    ag_tensor *lf = ag_zeros(arena, AG_F32, 2, (int64_t[]){1, 3});
    for (int i = 0; i < 3; i++) tensor_set(lf, i, ls[i]);
    ag_tensor *ce = ag_cross_entropy(
        arena, lf, targets(1, (int64_t[]){1}, (int32_t[]){1}), NULL);
    ck_assert_double_eq_tol(ag_item(ce), 2000, 1e-3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, test_every_case_has_a_call);
    tcase_add_loop_test(tc, test_against_torch_f64, 0, LOSS_CASES);
    tcase_add_loop_test(tc, test_against_torch_f32, 0, LOSS_CASES);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_checked_fixture(te, setup, teardown);
    tcase_add_test(te, test_cross_entropy_errors);
    tcase_add_test(te, test_cross_entropy_copies_targets);
    tcase_add_test(te, test_pair_loss_errors);
    tcase_add_test(te, test_large_logits);
    suite_add_tcase(s, te);
    return run_suite(s);
}
