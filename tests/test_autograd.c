/* test_autograd.c: the semantics of the graph and of ag_backward (leaf
 * gradients accumulate, op-result gradients hold the latest pass, tensors
 * used more than once, grad mode, detach, requires_grad rules, gradients
 * living in the parameters' arena), and forward values that the gradient
 * checker does not pin down: softmax, cross-entropy and sigmoid at extreme
 * logits, zero-element tensors, broadcasting, batched matmul against a naive
 * loop, transpose, reshape views and reductions over every axis.
 *
 * Expected values are closed-form derivatives or plain C loops over the
 * same inputs, written out in each test. */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---- */

/* An f64 tensor of the given shape holding v[]; a parameter when grad. */
static ag_tensor *tensor64(ag_arena *a, int ndim, const int64_t *shape,
                           const double *v, bool grad)
{
    ag_tensor *t = ag_from_data(a, AG_F64, ndim, shape, v);
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    if (grad) ag_requires_grad(t, true);
    return t;
}

/* A 1-D f64 tensor of n values. */
static ag_tensor *vec64(ag_arena *a, int64_t n, const double *v, bool grad)
{
    return tensor64(a, 1, &n, v, grad);
}

/* A float tensor of dtype dt with the values v[] (converted). */
static ag_tensor *tensor_of(ag_arena *a, ag_dtype dt, int ndim,
                            const int64_t *shape, const double *v)
{
    ag_tensor *t = ag_zeros(a, dt, ndim, shape);
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(t); i++) tensor_set(t, i, v[i]);
    return t;
}

/* Asserts that t is non-NULL with the given shape. */
static void expect_shape(ag_tensor *t, int ndim, const int64_t *shape)
{
    ck_assert_msg(t != NULL, "NULL tensor: %s", ag_last_error());
    ck_assert_int_eq(ag_ndim(t), ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(ag_shape(t)[d], shape[d]);
}

/* Asserts |t[i] - want[i]| <= tol * max(1, |want[i]|) for all n elements
 * (tol 0: exactly equal). NaN in want[] must be NaN in t. */
static void expect_close(ag_tensor *t, const double *want, int64_t n,
                         double tol)
{
    ck_assert_msg(t != NULL, "NULL tensor: %s", ag_last_error());
    ck_assert_int_eq(ag_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double got = tensor_at(t, i), w = want[i];
        if (isnan(w)) {
            if (!isnan(got))
                ck_abort_msg("element %lld is %.17g, want NaN", (long long)i,
                             got);
            continue;
        }
        double scale = fabs(w) > 1 ? fabs(w) : 1;
        if (!(isfinite(got) && fabs(got - w) <= tol * scale))
            ck_abort_msg("element %lld is %.17g, want %.17g", (long long)i, got,
                         w);
    }
}

/* Asserts that every element of t equals want exactly. */
static void expect_all(ag_tensor *t, double want)
{
    ck_assert_msg(t != NULL, "NULL tensor: %s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(t); i++)
        if (tensor_at(t, i) != want)
            ck_abort_msg("element %lld is %.17g, want %.17g", (long long)i,
                         tensor_at(t, i), want);
}

/* The sum of every element, as a scalar loss. */
static ag_tensor *total(ag_arena *a, ag_tensor *t)
{
    ag_tensor *s = ag_sum(a, t, AG_ALL, false);
    ck_assert_msg(s != NULL, "%s", ag_last_error());
    return s;
}

/* Runs ag_backward and asserts that it succeeded. */
static void backward_ok(ag_tensor *loss)
{
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward: %s", ag_last_error());
}

/* Copies the n values of t into out. */
static void copy_values(ag_tensor *t, double *out, int64_t n)
{
    ck_assert_int_eq(ag_numel(t), n);
    for (int64_t i = 0; i < n; i++) out[i] = tensor_at(t, i);
}

/* ---- accumulation ---- */

START_TEST(test_leaf_grads_accumulate)
{
    ag_arena *a = ag_arena_new();
    const double c[3] = {3, -2, 0.5};
    ag_tensor *w = vec64(a, 3, (const double[]){0.5, -1, 2}, true);
    ag_tensor *k = vec64(a, 3, c, false);
    ag_tensor *loss = total(a, ag_mul(a, w, k)); /* dloss/dw = c */
    ck_assert_ptr_null(ag_grad(w));
    backward_ok(loss);
    ag_tensor *g = ag_grad(w);
    expect_shape(g, 1, (int64_t[]){3});
    ck_assert_int_eq(ag_type(g), AG_F64);
    expect_close(g, c, 3, 0);
    backward_ok(loss);
    ck_assert_ptr_eq(ag_grad(w), g); /* the same buffer, accumulated */
    expect_close(g, (const double[]){6, -4, 1}, 3, 0);
    ag_zero_grad(w);
    expect_all(ag_grad(w), 0);
    backward_ok(loss);
    expect_close(ag_grad(w), c, 3, 0);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_intermediate_not_double_counted)
{
    ag_arena *a = ag_arena_new();
    const double wv[3] = {0.1, -0.3, 0.7};
    ag_tensor *w = vec64(a, 3, wv, true);
    ag_tensor *h = ag_scale(a, w, 2);
    ag_tensor *e = ag_exp(a, h);
    ag_tensor *loss = total(a, e); /* dloss/dw = 2 e^(2w) */
    backward_ok(loss);
    double first[3], want[3];
    copy_values(ag_grad(w), first, 3);
    for (int i = 0; i < 3; i++) want[i] = 2 * exp(2 * wv[i]);
    expect_close(ag_grad(w), want, 3, 1e-15);

    backward_ok(loss);
    for (int i = 0; i < 3; i++) want[i] = 2 * first[i];
    expect_close(ag_grad(w), want, 3, 0); /* exactly twice the first */
    /* Op results hold the latest pass only. */
    expect_all(ag_grad(e), 1);
    for (int i = 0; i < 3; i++) want[i] = exp(2 * wv[i]);
    expect_close(ag_grad(h), want, 3, 1e-15);
    expect_close(ag_grad(loss), (const double[]){1}, 1, 0);

    /* Another loss through h: h's gradient is that loss's alone. */
    backward_ok(total(a, ag_scale(a, h, 3)));
    expect_all(ag_grad(h), 3);
    for (int i = 0; i < 3; i++) want[i] = 2 * first[i] + 6;
    expect_close(ag_grad(w), want, 3, 1e-15);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_zero_grad)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *w = vec64(a, 2, (const double[]){1, 2}, true);
    ag_zero_grad(w); /* no gradient yet: nothing to do */
    ck_assert_ptr_null(ag_grad(w));
    ag_zero_grad(NULL);
    backward_ok(total(a, ag_pow(a, w, 2)));
    expect_close(ag_grad(w), (const double[]){2, 4}, 2, 0);
    ag_zero_grad(w);
    expect_all(ag_grad(w), 0);
    ag_arena_free(a);
}
END_TEST

/* ag_clear_grad: no gradient until the next pass, which writes the new one
 * into the same buffer (nothing added to the old values, nothing
 * allocated); a tensor that pass does not reach keeps none. */
START_TEST(test_clear_grad)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_tensor *w = vec64(a, 2, (const double[]){1, 2}, true);
    ag_tensor *unused = vec64(a, 2, (const double[]){3, 4}, true);
    ag_clear_grad(w); /* no gradient yet: nothing to do */
    ag_clear_grad(NULL);
    ck_assert_ptr_null(ag_grad(w));
    backward_ok(total(step, ag_mul(step, ag_pow(step, w, 2), unused)));
    ag_tensor *held = ag_grad(w);
    expect_close(held, (const double[]){6, 16}, 2, 0);
    size_t capacity = ag_arena_capacity(a);
    for (int pass = 0; pass < 3; pass++) {
        ag_clear_grad(w);
        ag_clear_grad(unused);
        ck_assert_ptr_null(ag_grad(w));
        ck_assert_ptr_null(ag_grad(unused));
        ag_arena_reset(step);
        backward_ok(total(step, ag_scale(step, w, pass + 1)));
        ck_assert_ptr_eq(ag_grad(w), held); /* the same buffer */
        expect_all(ag_grad(w), pass + 1);   /* written, not added */
        ck_assert_ptr_null(ag_grad(unused));
    }
    ck_assert_uint_eq(ag_arena_capacity(a), capacity);
    /* Leaves accumulate again from the new gradient on. */
    backward_ok(total(step, ag_scale(step, w, 10)));
    expect_all(ag_grad(w), 13);
    ag_arena_free(a);
    ag_arena_free(step);
}
END_TEST

/* ---- a tensor used more than once ---- */

START_TEST(test_used_twice)
{
    ag_arena *a = ag_arena_new();
    const double xv[3] = {0.5, -1.5, 2};
    double want[3];

    ag_tensor *x = vec64(a, 3, xv, true); /* sum(x * x): 2x */
    backward_ok(total(a, ag_mul(a, x, x)));
    for (int i = 0; i < 3; i++) want[i] = 2 * xv[i];
    expect_close(ag_grad(x), want, 3, 0);

    x = vec64(a, 3, xv, true); /* sum(x + x): 2 */
    backward_ok(total(a, ag_add(a, x, x)));
    expect_all(ag_grad(x), 2);

    x = vec64(a, 3, xv, true); /* sum(x - x): 0 */
    backward_ok(total(a, ag_sub(a, x, x)));
    expect_all(ag_grad(x), 0);

    /* Diamond: p = e^x, b = p p + p; db/dx = (2p + 1) p = 2e^2x + e^x. */
    x = vec64(a, 3, xv, true);
    ag_tensor *p = ag_exp(a, x);
    ag_tensor *b = ag_add(a, ag_mul(a, p, p), p);
    backward_ok(total(a, b));
    for (int i = 0; i < 3; i++) want[i] = 2 * exp(2 * xv[i]) + exp(xv[i]);
    expect_close(ag_grad(x), want, 3, 1e-14);
    for (int i = 0; i < 3; i++) want[i] = 2 * exp(xv[i]) + 1;
    expect_close(ag_grad(p), want, 3, 1e-14);

    /* A leaf feeding two branches of different depth:
     * L = sum(x^3) + sum(3 x) -> dL/dx = 3x^2 + 3. */
    x = vec64(a, 3, xv, true);
    ag_tensor *l =
        ag_add(a, total(a, ag_pow(a, x, 3)), total(a, ag_scale(a, x, 3)));
    backward_ok(l);
    for (int i = 0; i < 3; i++) want[i] = 3 * xv[i] * xv[i] + 3;
    expect_close(ag_grad(x), want, 3, 1e-15);
    ag_arena_free(a);
}
END_TEST

/* ---- which tensors get gradients ---- */

START_TEST(test_grad_null)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *w = vec64(a, 2, (const double[]){1, 2}, true);
    ag_tensor *c = vec64(a, 2, (const double[]){3, 4}, false);
    ag_tensor *unused = vec64(a, 2, (const double[]){5, 6}, true);
    ag_tensor *loss = total(a, ag_mul(a, w, c));
    ck_assert_ptr_null(ag_grad(w));
    ck_assert_ptr_null(ag_grad(loss));
    backward_ok(loss);
    ck_assert_ptr_nonnull(ag_grad(w));
    ck_assert_ptr_null(ag_grad(c));      /* does not require a gradient */
    ck_assert_ptr_null(ag_grad(unused)); /* not reached */
    ck_assert(!ag_is_requires_grad(c));
    ck_assert(ag_is_requires_grad(w) && ag_is_requires_grad(loss));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_grad_mode)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *w = vec64(a, 2, (const double[]){0, 1}, true);
    ck_assert(ag_is_grad_enabled());
    ck_assert(ag_set_grad_enabled(false) == true);
    ck_assert(!ag_is_grad_enabled());
    ag_tensor *y = ag_exp(a, w);
    expect_close(y, (const double[]){1, exp(1.0)}, 2, 1e-15);
    ck_assert(!ag_is_requires_grad(y));
    ck_assert_str_eq(ag_tensor_op_name(y), "leaf");
    ag_tensor *loss = total(a, y);
    ck_assert(!ag_is_requires_grad(loss));
    ck_assert_str_eq(ag_tensor_op_name(loss), "leaf");
    ag_clear_error();
    ck_assert_int_eq(ag_backward(loss), -1);
    ck_assert_str_ne(ag_last_error(), "");
    ck_assert_ptr_null(ag_grad(w));
    ck_assert(ag_set_grad_enabled(false) == false); /* still off */
    ck_assert(ag_set_grad_enabled(true) == false);  /* restore */
    ck_assert(ag_is_grad_enabled());
    ck_assert(ag_set_grad_enabled(true) == true);

    /* Recording again. */
    ag_tensor *z = ag_exp(a, w);
    ck_assert(ag_is_requires_grad(z));
    ck_assert_str_eq(ag_tensor_op_name(z), "exp");
    backward_ok(total(a, z));
    expect_close(ag_grad(w), (const double[]){1, exp(1.0)}, 2, 1e-15);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_detach)
{
    ag_arena *a = ag_arena_new(), *b = ag_arena_new();
    const double wv[3] = {1, -2, 0.25};
    ag_tensor *w = vec64(a, 3, wv, true);
    ag_tensor *y = ag_scale(a, w, 3);
    ag_tensor *d = ag_detach(b, y);
    ck_assert_ptr_nonnull(d);
    ck_assert(!ag_is_requires_grad(d));
    ck_assert_str_eq(ag_tensor_op_name(d), "leaf");
    ck_assert_ptr_ne(ag_data(d), ag_data(y));
    expect_close(d, (const double[]){3, -6, 0.75}, 3, 0);
    /* L = sum(d * w) with d = 3w held constant: dL/dw = d, not 6w. */
    backward_ok(total(a, ag_mul(a, d, w)));
    expect_close(ag_grad(w), (const double[]){3, -6, 0.75}, 3, 0);
    ck_assert_ptr_null(ag_grad(d));
    ck_assert_ptr_null(ag_grad(y)); /* not on the path to the loss */
    /* A copy: changing y's values leaves d alone. */
    ((double *)ag_data(y))[0] = 100;
    ck_assert(tensor_at(d, 0) == 3);
    ag_arena_free(a);
    expect_close(d, (const double[]){3, -6, 0.75}, 3, 0); /* lives in b */
    ck_assert_ptr_null(ag_detach(b, NULL));
    ag_arena_free(b);
}
END_TEST

START_TEST(test_no_grad_inputs)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = vec64(a, 2, (const double[]){1, 2}, false);
    ag_tensor *y = vec64(a, 2, (const double[]){3, 4}, false);
    ag_tensor *r[] = {ag_add(a, x, y), ag_exp(a, x),
                      ag_matmul(a, ag_reshape(a, x, 2, (int64_t[]){1, 2}),
                                ag_reshape(a, y, 2, (int64_t[]){2, 1})),
                      ag_softmax(a, x, 0), total(a, x)};
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(r[i] != NULL, "%s", ag_last_error());
        ck_assert(!ag_is_requires_grad(r[i]));
        ck_assert_str_eq(ag_tensor_op_name(r[i]), "leaf");
    }
    ck_assert(tensor_at(r[2], 0) == 11);
    ck_assert_int_eq(ag_backward(r[4]), -1);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_requires_grad_on_result)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *w = vec64(a, 2, (const double[]){1, 2}, true);
    ag_tensor *y = ag_exp(a, w);
    ag_clear_error();
    ag_requires_grad(y, true); /* already true: a no-op, not an error */
    ck_assert_str_eq(ag_last_error(), "");
    ck_assert(ag_is_requires_grad(y));
    ck_assert_str_eq(ag_tensor_op_name(y), "exp");
    ag_requires_grad(y, false); /* an error; y unchanged */
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "ag_requires_grad"));
    ck_assert(ag_is_requires_grad(y));
    ck_assert_str_eq(ag_tensor_op_name(y), "exp");
    backward_ok(total(a, y));
    expect_close(ag_grad(w), (const double[]){exp(1.0), exp(2.0)}, 2, 1e-15);

    /* A leaf can be switched off again. */
    ag_tensor *v = vec64(a, 2, (const double[]){1, 2}, true);
    ag_requires_grad(v, false);
    ck_assert(!ag_is_requires_grad(v));
    /* An i32 tensor cannot require a gradient. */
    ag_tensor *n = ag_zeros(a, AG_I32, 1, (int64_t[]){2});
    ag_clear_error();
    ag_requires_grad(n, true);
    ck_assert(!ag_is_requires_grad(n));
    ck_assert_str_ne(ag_last_error(), "");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_leaf_loss)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *s = ag_full(a, AG_F64, 0, NULL, 3.5);
    ag_requires_grad(s, true);
    backward_ok(s);
    expect_close(ag_grad(s), (const double[]){1}, 1, 0);
    ck_assert_int_eq(ag_ndim(ag_grad(s)), 0);
    backward_ok(s);
    expect_close(ag_grad(s), (const double[]){2}, 1, 0);
    /* A one-element f32 tensor of shape (1, 1) works as a loss too. */
    ag_tensor *f = ag_full(a, AG_F32, 2, (int64_t[]){1, 1}, -2);
    ag_requires_grad(f, true);
    backward_ok(f);
    expect_close(ag_grad(f), (const double[]){1}, 1, 0);
    ck_assert_int_eq(ag_type(ag_grad(f)), AG_F32);
    ag_arena_free(a);
}
END_TEST

/* ---- arenas ---- */

/* Builds loss = sum(x W + b) in `step` for W (3,2) and b (2) in params,
 * with x (4,3) = 1..12 row-major. dloss/dW[i][j] = sum_r x[r][i] = 22, 26,
 * 30 for rows i = 0, 1, 2; dloss/db = 4. */
static ag_tensor *linear_loss(ag_arena *step, ag_tensor *W, ag_tensor *b)
{
    double xv[12];
    for (int i = 0; i < 12; i++) xv[i] = i + 1;
    ag_tensor *x = tensor64(step, 2, (int64_t[]){4, 3}, xv, false);
    return total(step, ag_add(step, ag_matmul(step, x, W), b));
}

START_TEST(test_param_grads_in_param_arena)
{
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_tensor *W = tensor64(params, 2, (int64_t[]){3, 2},
                            (const double[]){1, 2, 3, 4, 5, 6}, true);
    ag_tensor *b = vec64(params, 2, (const double[]){0.5, -0.5}, true);
    const double gW[6] = {22, 22, 26, 26, 30, 30}, gb[2] = {4, 4};
    backward_ok(linear_loss(step, W, b));
    ag_tensor *dW = ag_grad(W), *db = ag_grad(b);
    expect_close(dW, gW, 6, 0);
    expect_close(db, gb, 2, 0);
    /* Reset the step arena and overwrite its memory. */
    for (int round = 0; round < 2; round++) {
        ag_arena_reset(step);
        for (int i = 0; i < 50; i++)
            ag_full(step, AG_F64, 1, (int64_t[]){8 + i}, -1e30);
        expect_close(dW, gW, 6, 0);
        expect_close(db, gb, 2, 0);
    }
    /* A second step accumulates into the same buffers. */
    ag_arena_reset(step);
    backward_ok(linear_loss(step, W, b));
    ck_assert_ptr_eq(ag_grad(W), dW);
    ck_assert_ptr_eq(ag_grad(b), db);
    const double gW2[6] = {44, 44, 52, 52, 60, 60}, gb2[2] = {8, 8};
    expect_close(dW, gW2, 6, 0);
    expect_close(db, gb2, 2, 0);
    ag_arena_free(step);
    expect_close(dW, gW2, 6, 0);
    ag_arena_free(params);
}
END_TEST

/* ---- extreme values ---- */

START_TEST(test_softmax_extremes)
{
    ag_arena *a = ag_arena_new();
    for (ag_dtype dt = AG_F32; dt <= AG_F64; dt++) {
        /* e^(x - max) is e^0 = 1 for every entry: exactly 1/2 each. */
        ag_tensor *x =
            tensor_of(a, dt, 1, (int64_t[]){2}, (const double[]){1000, 1000});
        expect_close(ag_softmax(a, x, 0), (const double[]){0.5, 0.5}, 2, 0);
        x = tensor_of(a, dt, 1, (int64_t[]){2}, (const double[]){-1000, -1000});
        expect_close(ag_softmax(a, x, -1), (const double[]){0.5, 0.5}, 2, 0);
        /* e^-1000 underflows to 0 in both types: log sum = log 1 = 0. */
        x = tensor_of(a, dt, 1, (int64_t[]){2}, (const double[]){1000, 0});
        expect_close(ag_log_softmax(a, x, 0), (const double[]){0, -1000}, 2, 0);
        expect_close(ag_softmax(a, x, 0), (const double[]){1, 0}, 2, 0);
        x = tensor_of(a, dt, 2, (int64_t[]){2, 3},
                      (const double[]){1000, 0, -1000, -1000, 1000, 1000});
        expect_close(ag_softmax(a, x, 1),
                     (const double[]){1, 0, 0, 0, 0.5, 0.5}, 6, 0);
        expect_close(ag_log_softmax(a, x, 1),
                     (const double[]){0, -1000, -2000, -2000 - log(2.0),
                                      -log(2.0), -log(2.0)},
                     6, dt == AG_F32 ? 1e-6 : 1e-15);
    }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_cross_entropy_extremes)
{
    ag_arena *a = ag_arena_new();
    for (ag_dtype dt = AG_F32; dt <= AG_F64; dt++) {
        /* Row 0: softmax (1, 0, 0), target 0: -log p = 0.
         * Row 1: softmax (0, 1/2, 1/2), target 2: -log p = log 2.
         * loss = log(2) / 2; dlogits = (softmax - onehot) / 2. */
        ag_tensor *logits =
            tensor_of(a, dt, 2, (int64_t[]){2, 3},
                      (const double[]){1000, 0, -1000, 0, 1000, 1000});
        ag_requires_grad(logits, true);
        ag_tensor *targets =
            ag_from_data(a, AG_I32, 1, (int64_t[]){2}, (int32_t[]){0, 2});
        ag_tensor *loss = ag_softmax_cross_entropy(a, logits, targets);
        double tol = dt == AG_F32 ? 1e-7 : 1e-16;
        expect_close(loss, (const double[]){log(2.0) / 2}, 1, tol);
        ck_assert_int_eq(ag_ndim(loss), 0);
        backward_ok(loss);
        expect_close(ag_grad(logits), (const double[]){0, 0, 0, 0, 0.25, -0.25},
                     6, tol);
        ck_assert_ptr_null(ag_grad(targets));
    }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_sigmoid_extremes)
{
    ag_arena *a = ag_arena_new();
    for (ag_dtype dt = AG_F32; dt <= AG_F64; dt++) {
        ag_tensor *x = tensor_of(a, dt, 1, (int64_t[]){3},
                                 (const double[]){1000, -1000, 0});
        ag_requires_grad(x, true);
        ag_tensor *y = ag_sigmoid(a, x);
        expect_close(y, (const double[]){1, 0, 0.5}, 3, 0);
        backward_ok(total(a, y));
        /* y (1 - y): 0 at both ends, 1/4 at 0. */
        expect_close(ag_grad(x), (const double[]){0, 0, 0.25}, 3, 0);
        /* tanh saturates the same way. */
        expect_close(ag_tanh(a, x), (const double[]){1, -1, 0}, 3, 0);
    }
    ag_arena_free(a);
}
END_TEST

/* ---- zero elements ---- */

/* An arena whose recycled memory is full of NaN, so that a result that
 * forgets to write its values shows it. */
static ag_arena *dirty_arena(void)
{
    ag_arena *a = ag_arena_new();
    for (int i = 0; i < 16; i++) ag_full(a, AG_F64, 1, (int64_t[]){1000}, NAN);
    ag_arena_reset(a);
    return a;
}

START_TEST(test_zero_element_reductions)
{
    ag_arena *a = dirty_arena();
    ag_tensor *e = ag_zeros(a, AG_F64, 1, (int64_t[]){0});
    ck_assert(isnan(ag_item(ag_mean(a, e, AG_ALL, false))));
    ck_assert(ag_item(ag_sum(a, e, AG_ALL, false)) == 0);
    ag_tensor *e2 = ag_zeros(a, AG_F32, 2, (int64_t[]){2, 0});
    ag_tensor *s = ag_sum(a, e2, 1, false);
    expect_shape(s, 1, (int64_t[]){2});
    expect_all(s, 0);
    ag_tensor *m = ag_mean(a, e2, 1, true);
    expect_shape(m, 2, (int64_t[]){2, 1});
    expect_close(m, (const double[]){NAN, NAN}, 2, 0);
    ag_tensor *s0 = ag_sum(a, e2, 0, false); /* over the 2: shape (0) */
    expect_shape(s0, 1, (int64_t[]){0});
    ag_arena_free(a);
}
END_TEST

START_TEST(test_zero_element_ops)
{
    ag_arena *a = dirty_arena();
    ag_tensor *x = ag_zeros(a, AG_F64, 2, (int64_t[]){0, 3});
    ag_tensor *r = ag_ones(a, AG_F64, 1, (int64_t[]){3});
    expect_shape(ag_add(a, x, r), 2, (int64_t[]){0, 3});
    expect_shape(ag_exp(a, x), 2, (int64_t[]){0, 3});
    expect_shape(ag_mul(a, r, x), 2, (int64_t[]){0, 3});

    /* k = 0: an empty sum, every element 0. */
    ag_tensor *p = ag_zeros(a, AG_F64, 2, (int64_t[]){2, 0});
    ag_tensor *q = ag_zeros(a, AG_F64, 2, (int64_t[]){0, 3});
    ag_requires_grad(p, true);
    ag_requires_grad(q, true);
    ag_tensor *z = ag_matmul(a, p, q);
    expect_shape(z, 2, (int64_t[]){2, 3});
    expect_all(z, 0);
    backward_ok(total(a, z));
    expect_shape(ag_grad(p), 2, (int64_t[]){2, 0});
    expect_shape(ag_grad(q), 2, (int64_t[]){0, 3});
    /* f32, batched. */
    ag_tensor *pf = ag_zeros(a, AG_F32, 3, (int64_t[]){2, 4, 0});
    ag_tensor *qf = ag_zeros(a, AG_F32, 2, (int64_t[]){0, 5});
    ag_tensor *zf = ag_matmul(a, pf, qf);
    expect_shape(zf, 3, (int64_t[]){2, 4, 5});
    expect_all(zf, 0);

    /* m = 0: an empty result. */
    ag_tensor *m0 = ag_zeros(a, AG_F64, 2, (int64_t[]){0, 4});
    ag_tensor *k4 = ag_ones(a, AG_F64, 2, (int64_t[]){4, 3});
    expect_shape(ag_matmul(a, m0, k4), 2, (int64_t[]){0, 3});

    /* Backward through an empty tensor: loss 0, empty gradient. */
    ag_tensor *w = ag_zeros(a, AG_F64, 2, (int64_t[]){0, 3});
    ag_requires_grad(w, true);
    ag_tensor *loss = total(a, ag_exp(a, ag_add(a, w, r)));
    ck_assert(ag_item(loss) == 0);
    backward_ok(loss);
    expect_shape(ag_grad(w), 2, (int64_t[]){0, 3});
    ag_arena_free(a);
}
END_TEST

/* ---- broadcasting ---- */

/* The value at out index `idx` (of nd dimensions) of an input of shape
 * `shape` (n dimensions), NumPy broadcast: aligned right, size 1 reads 0. */
static double bcast_at(ag_tensor *t, int nd, const int64_t *idx)
{
    int n = ag_ndim(t);
    int64_t off = 0;
    for (int d = 0; d < n; d++) {
        int64_t size = ag_shape(t)[d];
        int64_t i = size == 1 ? 0 : idx[nd - n + d];
        off = off * size + i;
    }
    return tensor_at(t, off);
}

enum { ADD, SUB, MUL, DIV };

/* Asserts that op(x, y) has shape `shape` and the values of a plain loop. */
static void expect_broadcast(ag_arena *a, int op, ag_tensor *x, ag_tensor *y,
                             int nd, const int64_t *shape)
{
    ag_tensor *(*const fn[])(ag_arena *, ag_tensor *,
                             ag_tensor *) = {ag_add, ag_sub, ag_mul, ag_div};
    ag_tensor *z = fn[op](a, x, y);
    expect_shape(z, nd, shape);
    int64_t idx[AG_MAX_DIMS] = {0};
    for (int64_t i = 0; i < ag_numel(z); i++) {
        double u = bcast_at(x, nd, idx), v = bcast_at(y, nd, idx);
        double want = op == ADD   ? u + v
                      : op == SUB ? u - v
                      : op == MUL ? u * v
                                  : u / v;
        if (tensor_at(z, i) != want)
            ck_abort_msg("op %d element %lld: %.17g want %.17g", op,
                         (long long)i, tensor_at(z, i), want);
        for (int d = nd - 1; d >= 0 && ++idx[d] == shape[d]; d--) idx[d] = 0;
    }
}

/* An f64 tensor of the given shape with distinct values 1.5, 2.75, ... */
static ag_tensor *ramp64(ag_arena *a, int ndim, const int64_t *shape)
{
    ag_tensor *t = ag_zeros(a, AG_F64, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < ag_numel(t); i++)
        ((double *)ag_data(t))[i] = 1.5 + 1.25 * (double)i * (i % 2 ? -1 : 1);
    return t;
}

START_TEST(test_broadcast_values)
{
    ag_arena *a = ag_arena_new();
    for (int op = ADD; op <= DIV; op++) {
        expect_broadcast(a, op, ramp64(a, 2, (int64_t[]){2, 3}),
                         ramp64(a, 1, (int64_t[]){3}), 2, (int64_t[]){2, 3});
        expect_broadcast(a, op, ramp64(a, 2, (int64_t[]){2, 1}),
                         ramp64(a, 2, (int64_t[]){1, 3}), 2, (int64_t[]){2, 3});
        expect_broadcast(a, op, ramp64(a, 3, (int64_t[]){4, 1, 3}),
                         ramp64(a, 2, (int64_t[]){2, 1}), 3,
                         (int64_t[]){4, 2, 3});
        expect_broadcast(a, op, ramp64(a, 0, NULL),
                         ramp64(a, 2, (int64_t[]){2, 2}), 2, (int64_t[]){2, 2});
        expect_broadcast(a, op, ramp64(a, 2, (int64_t[]){2, 2}),
                         ramp64(a, 0, NULL), 2, (int64_t[]){2, 2});
    }
    /* Spot values worked by hand: (2,1) * (1,3). */
    ag_tensor *c =
        tensor64(a, 2, (int64_t[]){2, 1}, (const double[]){2, 3}, false);
    ag_tensor *r =
        tensor64(a, 2, (int64_t[]){1, 3}, (const double[]){1, 10, 100}, false);
    expect_close(ag_mul(a, c, r), (const double[]){2, 20, 200, 3, 30, 300}, 6,
                 0);
    ag_arena_free(a);
}
END_TEST

/* ---- matmul ---- */

/* Asserts that z = x @ y (batch dimensions broadcast) matches a naive
 * triple loop in double, for batch dimensions of at most 4. */
static void expect_matmul(ag_tensor *x, ag_tensor *y, ag_tensor *z)
{
    ck_assert_msg(z != NULL, "%s", ag_last_error());
    int nx = ag_ndim(x), ny = ag_ndim(y), nz = ag_ndim(z);
    int64_t m = ag_shape(x)[nx - 2], k = ag_shape(x)[nx - 1];
    int64_t n = ag_shape(y)[ny - 1];
    ck_assert_int_eq(ag_shape(z)[nz - 2], m);
    ck_assert_int_eq(ag_shape(z)[nz - 1], n);
    int nb = nz - 2;
    int64_t batches = ag_numel(z) / (m * n);
    double tol = ag_type(z) == AG_F32 ? 1e-5 : 1e-13;
    for (int64_t bi = 0; bi < batches; bi++) {
        /* Split bi into the batch index and find x's and y's batches. */
        int64_t idx[AG_MAX_DIMS], rest = bi;
        for (int d = nb - 1; d >= 0; d--) {
            idx[d] = rest % ag_shape(z)[d];
            rest /= ag_shape(z)[d];
        }
        int64_t bx = 0, by = 0;
        for (int d = 0; d < nx - 2; d++) {
            int64_t s = ag_shape(x)[d];
            bx = bx * s + (s == 1 ? 0 : idx[nb - (nx - 2) + d]);
        }
        for (int d = 0; d < ny - 2; d++) {
            int64_t s = ag_shape(y)[d];
            by = by * s + (s == 1 ? 0 : idx[nb - (ny - 2) + d]);
        }
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (int64_t l = 0; l < k; l++) {
                    double p = tensor_at(x, bx * m * k + i * k + l) *
                               tensor_at(y, by * k * n + l * n + j);
                    want += p;
                    mag += fabs(p);
                }
                double got = tensor_at(z, bi * m * n + i * n + j);
                if (!(fabs(got - want) <= tol * (1 + mag)))
                    ck_abort_msg("batch %lld (%lld,%lld): %.17g want %.17g",
                                 (long long)bi, (long long)i, (long long)j, got,
                                 want);
            }
    }
}

/* Checks x @ y for random x and y of the given shapes and dtype. */
static void check_matmul(ag_arena *a, ag_dtype dt, int nx, const int64_t *sx,
                         int ny, const int64_t *sy, int nz, const int64_t *sz)
{
    ag_rng rng = ag_rng_seed(11);
    ag_tensor *x = ag_rand(a, dt, nx, sx, -1, 1, &rng);
    ag_tensor *y = ag_rand(a, dt, ny, sy, -1, 1, &rng);
    ag_tensor *z = ag_matmul(a, x, y);
    expect_shape(z, nz, sz);
    ck_assert_int_eq(ag_type(z), dt);
    expect_matmul(x, y, z);
}

START_TEST(test_matmul_values)
{
    ag_arena *a = ag_arena_new();
    for (ag_dtype dt = AG_F32; dt <= AG_F64; dt++) {
        check_matmul(a, dt, 2, (int64_t[]){3, 4}, 2, (int64_t[]){4, 5}, 2,
                     (int64_t[]){3, 5});
        check_matmul(a, dt, 2, (int64_t[]){1, 7}, 2, (int64_t[]){7, 1}, 2,
                     (int64_t[]){1, 1});
        check_matmul(a, dt, 4, (int64_t[]){2, 3, 4, 5}, 2, (int64_t[]){5, 6}, 4,
                     (int64_t[]){2, 3, 4, 6});
        check_matmul(a, dt, 4, (int64_t[]){3, 1, 4, 5}, 3, (int64_t[]){2, 5, 6},
                     4, (int64_t[]){3, 2, 4, 6});
        check_matmul(a, dt, 2, (int64_t[]){4, 5}, 3, (int64_t[]){3, 5, 2}, 3,
                     (int64_t[]){3, 4, 2});
        check_matmul(a, dt, 3, (int64_t[]){2, 33, 17}, 3,
                     (int64_t[]){2, 17, 40}, 3, (int64_t[]){2, 33, 40});
    }
    /* A product worked by hand: (2,2) @ (2,2). */
    ag_tensor *p =
        tensor64(a, 2, (int64_t[]){2, 2}, (const double[]){1, 2, 3, 4}, false);
    ag_tensor *q =
        tensor64(a, 2, (int64_t[]){2, 2}, (const double[]){5, 6, 7, 8}, false);
    expect_close(ag_matmul(a, p, q), (const double[]){19, 22, 43, 50}, 4, 0);
    ag_arena_free(a);
}
END_TEST

/* ---- layout ---- */

START_TEST(test_transpose_values)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = ag_arange(a, AG_F64, 0, 24, 1); /* x[i][j][k] = 12i+4j+k */
    ag_tensor *x3 = ag_reshape(a, x, 3, (int64_t[]){2, 3, 4});
    ag_tensor *t = ag_transpose(a, x3, 0, 2);
    expect_shape(t, 3, (int64_t[]){4, 3, 2});
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 2; i++)
                ck_assert(tensor_at(t, k * 6 + j * 2 + i) ==
                          12 * i + 4 * j + k);
    ag_tensor *u = ag_transpose(a, x3, -1, 1); /* axes 2 and 1 */
    expect_shape(u, 3, (int64_t[]){2, 4, 3});
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 3; j++)
                ck_assert(tensor_at(u, i * 12 + k * 3 + j) ==
                          12 * i + 4 * j + k);
    ag_tensor *same = ag_transpose(a, x3, 1, 1);
    expect_shape(same, 3, (int64_t[]){2, 3, 4});
    for (int i = 0; i < 24; i++) ck_assert(tensor_at(same, i) == i);
    ck_assert_ptr_ne(ag_data(t), ag_data(x3)); /* a copy */
    ag_arena_free(a);
}
END_TEST

START_TEST(test_reshape_shares)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = ag_arange(a, AG_F32, 0, 24, 1);
    ag_tensor *r = ag_reshape(a, x, 2, (int64_t[]){4, -1});
    expect_shape(r, 2, (int64_t[]){4, 6});
    ck_assert_ptr_eq(ag_data(r), ag_data(x));
    ag_tensor *r2 = ag_reshape(a, r, 3, (int64_t[]){2, -1, 2});
    expect_shape(r2, 3, (int64_t[]){2, 6, 2});
    ck_assert_ptr_eq(ag_data(r2), ag_data(x));
    ag_tensor *flat = ag_reshape(a, r2, 1, (int64_t[]){-1});
    expect_shape(flat, 1, (int64_t[]){24});
    /* Writes through one are seen through the other. */
    ((float *)ag_data(x))[7] = -5;
    ck_assert(tensor_at(r, 7) == -5 && tensor_at(flat, 7) == -5);
    /* An empty tensor reshaped with -1. */
    ag_tensor *e = ag_zeros(a, AG_F64, 2, (int64_t[]){0, 4});
    expect_shape(ag_reshape(a, e, 2, (int64_t[]){4, 0}), 2, (int64_t[]){4, 0});
    /* i32 labels read as an (N, 1) table become (N), with no history. */
    ag_tensor *labels = ag_arange(a, AG_I32, 0, 5, 1);
    ag_tensor *column = ag_reshape(a, labels, 2, (int64_t[]){5, 1});
    ag_tensor *row = ag_reshape(a, column, 1, (int64_t[]){-1});
    expect_shape(row, 1, (int64_t[]){5});
    ck_assert_int_eq(ag_type(row), AG_I32);
    ck_assert_ptr_eq(ag_data(row), ag_data(labels));
    ck_assert(!ag_is_requires_grad(row));
    ck_assert_str_eq(ag_tensor_op_name(row), "leaf");
    ag_arena_free(a);
}
END_TEST

/* ---- reductions ---- */

enum { SUM, MEAN, MAX };

/* The expected reduction `kind` of the (2,3,4) array v over `axis` (0..2),
 * written to out in row-major order of the remaining axes. */
static void reduce_ref(const double *v, int kind, int axis, double *out)
{
    const int dims[3] = {2, 3, 4};
    int o = 0;
    int other[2], nother = 0;
    for (int d = 0; d < 3; d++)
        if (d != axis) other[nother++] = d;
    for (int p = 0; p < dims[other[0]]; p++)
        for (int q = 0; q < dims[other[1]]; q++) {
            double acc = kind == MAX ? -INFINITY : 0;
            for (int l = 0; l < dims[axis]; l++) {
                int idx[3];
                idx[axis] = l;
                idx[other[0]] = p;
                idx[other[1]] = q;
                double x = v[idx[0] * 12 + idx[1] * 4 + idx[2]];
                acc = kind == MAX ? fmax(acc, x) : acc + x;
            }
            out[o++] = kind == MEAN ? acc / dims[axis] : acc;
        }
}

START_TEST(test_reduction_values)
{
    ag_arena *a = ag_arena_new();
    double v[24];
    for (int i = 0; i < 24; i++) v[i] = (i * 7) % 24 - 10 + 0.25 * (i % 3);
    ag_tensor *x = tensor64(a, 3, (int64_t[]){2, 3, 4}, v, false);
    ag_tensor *(*const fn[])(ag_arena *, ag_tensor *, int,
                             bool) = {ag_sum, ag_mean, ag_max};
    const int64_t dims[3] = {2, 3, 4};
    for (int kind = SUM; kind <= MAX; kind++) {
        for (int axis = -3; axis < 3; axis++) {
            int ax = axis < 0 ? axis + 3 : axis;
            double want[12];
            reduce_ref(v, kind, ax, want);
            int64_t n = 24 / dims[ax];
            int64_t kept[3], dropped[2];
            for (int d = 0, j = 0; d < 3; d++) {
                kept[d] = d == ax ? 1 : dims[d];
                if (d != ax) dropped[j++] = dims[d];
            }
            ag_tensor *r = fn[kind](a, x, axis, false);
            expect_shape(r, 2, dropped);
            expect_close(r, want, n, 1e-15);
            ag_tensor *rk = fn[kind](a, x, axis, true);
            expect_shape(rk, 3, kept);
            expect_close(rk, want, n, 1e-15);
        }
        double all = kind == MAX ? -INFINITY : 0;
        for (int i = 0; i < 24; i++)
            all = kind == MAX ? fmax(all, v[i]) : all + v[i];
        if (kind == MEAN) all /= 24;
        ag_tensor *r = fn[kind](a, x, AG_ALL, false);
        expect_shape(r, 0, NULL);
        expect_close(r, &all, 1, 1e-15);
        ag_tensor *rk = fn[kind](a, x, AG_ALL, true);
        expect_shape(rk, 3, (int64_t[]){1, 1, 1});
        expect_close(rk, &all, 1, 1e-15);
    }
    /* The maximum's gradient goes to the first element that attains it. */
    ag_tensor *m = vec64(a, 4, (const double[]){1, 3, 3, 2}, true);
    backward_ok(ag_max(a, m, 0, false));
    expect_close(ag_grad(m), (const double[]){0, 1, 0, 0}, 4, 0);
    ag_arena_free(a);
}
END_TEST

/* ---- regressions found in review ---- */

/* A leaf whose requires_grad is cleared after it was used gets no gradient,
 * through one-input ops as well as two-input ones, and nothing crashes. */
START_TEST(test_cleared_requires_grad)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = vec64(a, 3, (const double[]){1, 2, 3}, true);
    ag_tensor *w = vec64(a, 3, (const double[]){4, 5, 6}, true);
    ag_tensor *loss = total(a, ag_add(a, ag_exp(a, x), ag_mul(a, x, w)));
    ag_requires_grad(x, false);
    backward_ok(loss);
    ck_assert_ptr_null(ag_grad(x));
    expect_close(ag_grad(w), (const double[]){1, 2, 3}, 3, 0);
    /* A recorded graph whose only leaf was cleared since: backward succeeds,
     * runs no op's backward, and gives the leaf nothing. */
    ag_tensor *y = vec64(a, 3, (const double[]){-1, 2, 3}, true);
    ag_tensor *only_y = total(a, ag_relu(a, ag_transpose(a, y, 0, 0)));
    ag_requires_grad(y, false);
    backward_ok(only_y);
    ck_assert_ptr_null(ag_grad(y));
    ag_arena_free(a);
}
END_TEST

/* d/dx x^0 = 0 everywhere, also at x = 0 where p x^(p-1) would be 0 * inf. */
START_TEST(test_pow_zero_exponent)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = vec64(a, 2, (const double[]){0, 2}, true);
    backward_ok(total(a, ag_pow(a, x, 0)));
    expect_close(ag_grad(x), (const double[]){0, 0}, 2, 0);
    ag_arena_free(a);
}
END_TEST

/* Changing the targets' values after the forward cannot reach the backward:
 * it uses the targets that were checked. */
START_TEST(test_cross_entropy_keeps_targets)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *logits = tensor64(a, 2, (const int64_t[]){2, 3},
                                 (const double[]){0, 0, 0, 0, 0, 0}, true);
    ag_tensor *t = ag_from_data(a, AG_I32, 1, (const int64_t[]){2},
                                (const int32_t[]){0, 2});
    ag_tensor *loss = ag_softmax_cross_entropy(a, logits, t);
    ck_assert_ptr_nonnull(loss);
    ((int32_t *)ag_data(t))[1] = 1000000;
    backward_ok(loss);
    const double third = 1.0 / 3;
    expect_close(ag_grad(logits),
                 (const double[]){(third - 1) / 2, third / 2, third / 2,
                                  third / 2, third / 2, (third - 1) / 2},
                 6, 1e-15);
    ag_arena_free(a);
}
END_TEST

/* ReLU passes NaN through (as PyTorch), so NaNs are not hidden. */
START_TEST(test_relu_keeps_nan)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = vec64(a, 3, (const double[]){NAN, -1, 2}, false);
    expect_close(ag_relu(a, x), (const double[]){NAN, 0, 2}, 3, 0);
    ag_arena_free(a);
}
END_TEST

/* Kinks: d|x|/dx and d relu/dx at x = 0 are 0 (header; PyTorch agrees). */
START_TEST(test_kinks_at_zero)
{
    ag_arena *a = ag_arena_new();
    for (ag_dtype dt = AG_F32; dt <= AG_F64; dt++) {
        ag_tensor *x = ag_arange(a, dt, -1, 2, 1); /* -1, 0, 1 */
        ag_requires_grad(x, true);
        ck_assert_int_eq(ag_backward(ag_sum(a, ag_abs(a, x), AG_ALL, false)),
                         0);
        expect_close(ag_grad(x), (const double[]){-1, 0, 1}, 3, 0); /* abs' */
        ag_zero_grad(x);
        ck_assert_int_eq(ag_backward(ag_sum(a, ag_relu(a, x), AG_ALL, false)),
                         0);
        expect_close(ag_grad(x), (const double[]){0, 0, 1}, 3, 0); /* relu' */
    }
    ag_arena_free(a);
}
END_TEST

/* max propagates NaN (as torch.max) and its gradient goes to the first NaN. */
START_TEST(test_max_nan)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = ag_from_data(a, AG_F64, 2, (int64_t[]){2, 4},
                                (double[]){1, NAN, 3, NAN, 1, 5, 2, 0});
    ag_requires_grad(x, true);
    ag_tensor *m = ag_max(a, x, 1, false);
    ck_assert(isnan(((double *)ag_data(m))[0]));
    ck_assert(((double *)ag_data(m))[1] == 5);
    ck_assert(isnan(ag_item(ag_max(a, x, AG_ALL, false))));
    ck_assert_int_eq(ag_backward(ag_sum(a, m, AG_ALL, false)), 0);
    const double want[8] = {0, 1, 0, 0, 0, 1, 0, 0};
    for (int i = 0; i < 8; i++)
        ck_assert(((double *)ag_data(ag_grad(x)))[i] == want[i]);
    ag_arena_free(a);
}
END_TEST

/* transpose(x, d, d) is a copy (header: "A copy of x"). */
START_TEST(test_transpose_same_axis_copies)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = ag_arange(a, AG_F64, 0, 6, 1);
    ag_tensor *t = ag_transpose(a, x, 0, 0);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_ne(ag_data(t), ag_data(x));
    ((double *)ag_data(x))[2] = -7;
    ck_assert(((double *)ag_data(t))[2] == 2);
    ag_arena_free(a);
}
END_TEST

/* Error message and grad mode are per thread. */
static void *other_thread(void *arg)
{
    int *ok = arg;
    *ok = ag_is_grad_enabled() && strcmp(ag_last_error(), "") == 0;
    ag_set_grad_enabled(false);
    ag_arena *a = ag_arena_new();
    ag_zeros(a, AG_F64, 1, (int64_t[]){-3}); /* sets this thread's error */
    ag_arena_free(a);
    return NULL;
}

START_TEST(test_thread_local_state)
{
    ag_arena *a = ag_arena_new();
    ag_clear_error();
    ck_assert_ptr_null(
        ag_transpose(a, ag_zeros(a, AG_F64, 1, (int64_t[]){2}), 0, 5));
    char mine[512];
    snprintf(mine, sizeof mine, "%s", ag_last_error());
    ck_assert_str_ne(mine, "");
    int ok = 0;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, &ok), 0);
    pthread_join(th, NULL);
    ck_assert_msg(ok, "a new thread saw this thread's error or grad mode");
    ck_assert(ag_is_grad_enabled());
    ck_assert_str_eq(ag_last_error(), mine);
    ag_arena_free(a);
}
END_TEST

static Suite *autograd_suite(void)
{
    Suite *s = suite_create("autograd");
    TCase *tc = tcase_create("semantics");
    tcase_add_test(tc, test_leaf_grads_accumulate);
    tcase_add_test(tc, test_intermediate_not_double_counted);
    tcase_add_test(tc, test_zero_grad);
    tcase_add_test(tc, test_clear_grad);
    tcase_add_test(tc, test_used_twice);
    tcase_add_test(tc, test_grad_null);
    tcase_add_test(tc, test_grad_mode);
    tcase_add_test(tc, test_detach);
    tcase_add_test(tc, test_no_grad_inputs);
    tcase_add_test(tc, test_requires_grad_on_result);
    tcase_add_test(tc, test_leaf_loss);
    tcase_add_test(tc, test_param_grads_in_param_arena);
    suite_add_tcase(s, tc);

    tc = tcase_create("extremes");
    tcase_add_test(tc, test_softmax_extremes);
    tcase_add_test(tc, test_cross_entropy_extremes);
    tcase_add_test(tc, test_sigmoid_extremes);
    tcase_add_test(tc, test_zero_element_reductions);
    tcase_add_test(tc, test_zero_element_ops);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_broadcast_values);
    tcase_add_test(tc, test_matmul_values);
    tcase_add_test(tc, test_transpose_values);
    tcase_add_test(tc, test_reshape_shares);
    tcase_add_test(tc, test_reduction_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("regressions");
    tcase_add_test(tc, test_cleared_requires_grad);
    tcase_add_test(tc, test_pow_zero_exponent);
    tcase_add_test(tc, test_cross_entropy_keeps_targets);
    tcase_add_test(tc, test_relu_keeps_nan);
    tcase_add_test(tc, test_kinks_at_zero);
    tcase_add_test(tc, test_max_nan);
    tcase_add_test(tc, test_transpose_same_axis_copies);
    tcase_add_test(tc, test_thread_local_state);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(autograd_suite());
}
