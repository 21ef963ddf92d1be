/* test_tools.c: the research toolkit of autograd/tools.h: user-defined
 * functions (values and gradients in f32 and f64 against closed forms, use
 * twice in one graph, mixing with built-in ops, an input without gradient,
 * the most inputs, failing and malformed forwards and backwards, results
 * next to an input in memory), the gradient checker (it
 * passes on correct functions and built-in ops, and finds a backward wrong
 * by 1e-3 in one Jacobian entry, naming that entry, in full, projection and
 * sampled modes; its tolerance and which entry it reports; it leaves its
 * inputs alone and refuses what it cannot check), anomaly detection (NaN in a
 * forward, infinity only in a backward, off by default and per thread) and the
 * DOT writer (the exact text of a small graph, a user function's name, a
 * million-op chain, errors). */
#include <autograd.h>

#include "internal.h" /* tensor marks, for the DOT walk's clean-up */
#include "support.h"
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* A float tensor of dtype dt and the given shape holding v[]; a parameter
 * when grad. */
static ag_tensor *tensor_of(ag_arena *a, ag_dtype dt, int ndim,
                            const int64_t *shape, const double *v, bool grad)
{
    ag_tensor *t = ag_zeros(a, dt, ndim, shape);
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(t); i++) tensor_set(t, i, v[i]);
    if (grad) ag_requires_grad(t, true);
    return t;
}

/* A (2,3) f64 tensor of v[]. */
static ag_tensor *t23(ag_arena *a, const double *v, bool grad)
{
    return tensor_of(a, AG_F64, 2, (int64_t[]){2, 3}, v, grad);
}

/* Asserts that the last error contains each of the given fragments. */
static void expect_error_has(const char *a, const char *b)
{
    const char *e = ag_last_error();
    ck_assert_msg(strstr(e, a) != NULL, "error '%s' lacks '%s'", e, a);
    if (b) ck_assert_msg(strstr(e, b) != NULL, "error '%s' lacks '%s'", e, b);
}

/* Runs ag_backward and asserts that it succeeded. */
static void backward_ok(ag_tensor *loss)
{
    ck_assert_msg(loss != NULL, "%s", ag_last_error());
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward: %s", ag_last_error());
}

static const double X6[6] = {-1.5, -0.25, 0.3, 0.45, -0.4, 1.2};
static const double Y6[6] = {0.7, -0.35, 0.2, -0.6, 0.15, 0.5};
static const double Z6[6] = {0.1, 0.9, -0.8, 0.25, -0.3, 0.65};

/* ---- user functions under test ---- */

/* swish(x) = x sigmoid(x); dx = g (s + x s (1 - s)), s = sigmoid(x). */
static ag_tensor *swish_forward(ag_function_ctx *ctx, ag_arena *a,
                                ag_tensor *const *in, int n)
{
    (void)ctx;
    (void)n;
    ag_tensor *y = ag_zeros(a, ag_type(in[0]), ag_ndim(in[0]), ag_shape(in[0]));
    for (int64_t i = 0; y && i < ag_numel(y); i++) {
        double x = tensor_at(in[0], i);
        tensor_set(y, i, x / (1 + exp(-x)));
    }
    return y;
}

static int swish_backward(ag_function_ctx *ctx, ag_tensor *g,
                          ag_tensor *const *grad_in)
{
    ag_tensor *x = ag_function_input(ctx, 0);
    for (int64_t i = 0; i < ag_numel(x); i++) {
        double v = tensor_at(x, i), s = 1 / (1 + exp(-v));
        double d =
            tensor_at(grad_in[0], i) + tensor_at(g, i) * (s + v * s * (1 - s));
        tensor_set(grad_in[0], i, d);
    }
    return 0;
}

static const ag_function swish = {
    .name = "swish", .forward = swish_forward, .backward = swish_backward};

/* What fma3's backward saw, and where it plants a mistake. */
typedef struct {
    int backward_calls;
    bool grad_input_null[3];
    bool grad_mode_in_forward, grad_mode_in_backward;
    int64_t wrong_element; /* of input 1; -1: none, -2: every element */
} fma3_state;

/* fma3(a, b, c) = a b + c elementwise;
 * da = g b, db = g a, dc = g (plus g * 1e-3 on the wrong elements of db). */
static ag_tensor *fma3_forward(ag_function_ctx *ctx, ag_arena *a,
                               ag_tensor *const *in, int n)
{
    fma3_state *st = ag_function_user(ctx);
    if (st) st->grad_mode_in_forward = ag_is_grad_enabled();
    ck_assert_int_eq(n, 3);
    ck_assert_ptr_null(ag_function_output(ctx));
    ag_tensor *y = ag_zeros(a, ag_type(in[0]), ag_ndim(in[0]), ag_shape(in[0]));
    for (int64_t i = 0; y && i < ag_numel(y); i++)
        tensor_set(y, i,
                   tensor_at(in[0], i) * tensor_at(in[1], i) +
                       tensor_at(in[2], i));
    return y;
}

static int fma3_backward(ag_function_ctx *ctx, ag_tensor *g,
                         ag_tensor *const *grad_in)
{
    fma3_state *st = ag_function_user(ctx);
    if (st) {
        st->backward_calls++;
        st->grad_mode_in_backward = ag_is_grad_enabled();
        for (int k = 0; k < 3; k++) st->grad_input_null[k] = !grad_in[k];
    }
    ck_assert_ptr_nonnull(ag_function_output(ctx));
    ag_tensor *x = ag_function_input(ctx, 0), *y = ag_function_input(ctx, 1);
    for (int64_t i = 0; i < ag_numel(g); i++) {
        double gi = tensor_at(g, i);
        bool wrong = st && (st->wrong_element == -2 || st->wrong_element == i);
        if (grad_in[0])
            tensor_set(grad_in[0], i,
                       tensor_at(grad_in[0], i) + gi * tensor_at(y, i));
        if (grad_in[1])
            tensor_set(grad_in[1], i,
                       tensor_at(grad_in[1], i) +
                           gi * (tensor_at(x, i) + (wrong ? 1e-3 : 0)));
        if (grad_in[2])
            tensor_set(grad_in[2], i, tensor_at(grad_in[2], i) + gi);
    }
    return 0;
}

static const ag_function fma3 = {
    .name = "fma3", .forward = fma3_forward, .backward = fma3_backward};

/* ---- gradcheck functions ---- */

static ag_tensor *gc_swish(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    return ag_function_apply(a, &swish, n, x, u);
}

static ag_tensor *gc_fma3(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    return ag_function_apply(a, &fma3, n, x, u);
}

/* swish used twice and mixed with built-in ops:
 * swish(swish(x) @ w) * x + swish(x @ w). */
static ag_tensor *gc_mixed(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    (void)n;
    (void)u;
    ag_tensor *sx = ag_function_apply(a, &swish, 1, &x[0], NULL);
    ag_tensor *p = ag_matmul(a, sx, x[1]);
    ag_tensor *q = ag_matmul(a, x[0], x[1]);
    ag_tensor *sp = ag_function_apply(a, &swish, 1, &p, NULL);
    ag_tensor *sq = ag_function_apply(a, &swish, 1, &q, NULL);
    ag_tensor *x0t = ag_matmul(a, x[0], ag_transpose(a, x[0], 0, 1));
    return ag_add(a, ag_matmul(a, x0t, sp), sq);
}

/* ---- user functions ---- */

/* swish's values and gradients in f32 and f64 against the closed form. */
START_TEST(test_function_values_and_gradients)
{
    ag_dtype types[2] = {AG_F32, AG_F64};
    for (int k = 0; k < 2; k++) {
        ag_arena *a = ag_arena_new();
        ag_tensor *x = tensor_of(a, types[k], 2, (int64_t[]){2, 3}, X6, true);
        ag_tensor *y = ag_function_apply(a, &swish, 1, &x, NULL);
        ck_assert_msg(y != NULL, "%s", ag_last_error());
        ck_assert_int_eq(ag_type(y), types[k]);
        ck_assert_str_eq(ag_tensor_op_name(y), "swish");
        ck_assert(ag_is_requires_grad(y));
        backward_ok(ag_sum(a, y, AG_ALL, false));
        double tol = types[k] == AG_F32 ? 1e-6 : 1e-14;
        for (int64_t i = 0; i < 6; i++) {
            double v = tensor_at(x, i), s = 1 / (1 + exp(-v));
            ck_assert_double_eq_tol(tensor_at(y, i), v * s, tol);
            ck_assert_double_eq_tol(tensor_at(ag_grad(x), i),
                                    s + v * s * (1 - s), tol);
        }
        ag_arena_free(a);
    }
}
END_TEST

/* Used twice in one graph and mixed with matmul, transpose and add; the
 * checker agrees with backward. */
START_TEST(test_function_in_a_graph)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[2] = {t23(a, X6, true),
                        tensor_of(a, AG_F64, 2, (int64_t[]){3, 2}, Y6, true)};
    ag_gradcheck_report r;
    ck_assert_msg(ag_gradcheck(gc_mixed, 2, in, NULL, NULL, &r) == 0, "%s",
                  ag_last_error());
    ck_assert(r.passed);
    ck_assert_int_eq(r.checked, 2 * 2 * 12); /* (2,2) outputs x 12 elements */
    /* x * x through one function call: the same gradient buffer twice */
    ag_tensor *x = t23(a, X6, true);
    ag_tensor *three[3] = {x, x, ag_zeros(a, AG_F64, 2, (int64_t[]){2, 3})};
    backward_ok(
        ag_sum(a, ag_function_apply(a, &fma3, 3, three, NULL), AG_ALL, false));
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq_tol(tensor_at(ag_grad(x), i), 2 * X6[i], 1e-15);
    ag_arena_free(a);
}
END_TEST

/* Three inputs, the last without gradient: its grad_inputs slot is NULL,
 * both functions run with grad mode off, and the check passes. */
START_TEST(test_function_input_without_gradient)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[3] = {t23(a, X6, true), t23(a, Y6, true), t23(a, Z6, false)};
    fma3_state st = {.wrong_element = -1};
    ag_tensor *y = ag_function_apply(a, &fma3, 3, in, &st);
    ck_assert(!st.grad_mode_in_forward);
    backward_ok(ag_sum(a, y, AG_ALL, false));
    ck_assert(ag_is_grad_enabled());
    ck_assert_int_eq(st.backward_calls, 1);
    ck_assert(!st.grad_mode_in_backward);
    ck_assert(!st.grad_input_null[0] && !st.grad_input_null[1]);
    ck_assert(st.grad_input_null[2]);
    ck_assert_ptr_null(ag_grad(in[2]));
    for (int64_t i = 0; i < 6; i++) {
        ck_assert_double_eq_tol(tensor_at(ag_grad(in[0]), i), Y6[i], 1e-15);
        ck_assert_double_eq_tol(tensor_at(ag_grad(in[1]), i), X6[i], 1e-15);
    }
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, NULL, NULL, NULL), 0);
    /* a leaf whose flag was cleared after it got a gradient: NULL too, and
     * its old gradient stays as it was */
    ag_tensor *c = t23(a, Z6, true);
    backward_ok(ag_sum(a, c, AG_ALL, false));
    ag_requires_grad(c, false);
    ag_tensor *again[3] = {in[0], in[1], c};
    st = (fma3_state){.wrong_element = -1};
    backward_ok(
        ag_sum(a, ag_function_apply(a, &fma3, 3, again, &st), AG_ALL, false));
    ck_assert(st.grad_input_null[2] && !st.grad_input_null[0]);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq(tensor_at(ag_grad(c), i), 1);
    ag_arena_free(a);
}
END_TEST

/* With grad mode off, or no input requiring a gradient, nothing records. */
START_TEST(test_function_not_recorded)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true), *c = t23(a, X6, false);
    bool was = ag_set_grad_enabled(false);
    ag_tensor *y = ag_function_apply(a, &swish, 1, &x, NULL);
    ag_set_grad_enabled(was);
    ag_tensor *z = ag_function_apply(a, &swish, 1, &c, NULL);
    ck_assert(y && z);
    ck_assert_str_eq(ag_tensor_op_name(y), "leaf");
    ck_assert_str_eq(ag_tensor_op_name(z), "leaf");
    ck_assert(!ag_is_requires_grad(y) && !ag_is_requires_grad(z));
    ag_arena_free(a);
}
END_TEST

/* The context: user pointer, inputs, arena, saved tensors (up to the
 * maximum) all reach backward. */
static ag_tensor *saver_forward(ag_function_ctx *ctx, ag_arena *a,
                                ag_tensor *const *in, int n)
{
    (void)n;
    ck_assert_ptr_eq(ag_function_arena(ctx), a);
    ck_assert_ptr_null(ag_function_input(ctx, 1));
    ck_assert_ptr_null(ag_function_input(ctx, -1));
    for (int i = 0; i < AG_FUNCTION_MAX_SAVED; i++)
        ck_assert_int_eq(ag_function_save(ctx, in[0]), i);
    ck_assert_int_eq(ag_function_save(ctx, in[0]), -1);
    expect_error_has("saver: ", "already 8");
    ck_assert_int_eq(ag_function_save(ctx, NULL), -1);
    ag_tensor *y = ag_scale(a, in[0], 2); /* library ops work in forward */
    ck_assert(!ag_is_requires_grad(y));
    return y;
}

static int saver_backward(ag_function_ctx *ctx, ag_tensor *g,
                          ag_tensor *const *grad_in)
{
    *(int *)ag_function_user(ctx) += 1;
    ck_assert_ptr_eq(ag_function_saved(ctx, 7), ag_function_input(ctx, 0));
    ck_assert_ptr_null(ag_function_saved(ctx, 8));
    ck_assert_ptr_eq(ag_grad(ag_function_output(ctx)), g);
    for (int64_t i = 0; i < ag_numel(g); i++)
        tensor_set(grad_in[0], i,
                   tensor_at(grad_in[0], i) + 2 * tensor_at(g, i));
    return 0;
}

static const ag_function saver = {
    .name = "saver", .forward = saver_forward, .backward = saver_backward};

START_TEST(test_function_context)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    int calls = 0;
    ag_tensor *y = ag_function_apply(a, &saver, 1, &x, &calls);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    backward_ok(ag_sum(a, y, AG_ALL, false));
    ck_assert_int_eq(calls, 1);
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq(tensor_at(ag_grad(x), i), 2);
    ck_assert_ptr_null(ag_function_user(NULL));
    ck_assert_ptr_null(ag_function_input(NULL, 0));
    ck_assert_int_eq(ag_function_save(NULL, x), -1);
    ag_arena_free(a);
}
END_TEST

/* A backward that fails stops ag_backward with the function's message. */
static int failing_backward(ag_function_ctx *ctx, ag_tensor *g,
                            ag_tensor *const *grad_in)
{
    (void)g;
    (void)grad_in;
    ag_function_error(ctx, "cannot differentiate at %d", 42);
    return -1;
}

static int silent_backward(ag_function_ctx *ctx, ag_tensor *g,
                           ag_tensor *const *grad_in)
{
    (void)ctx;
    (void)g;
    (void)grad_in;
    return 3;
}

START_TEST(test_function_backward_fails)
{
    static const ag_function failing = {.name = "failing",
                                        .forward = swish_forward,
                                        .backward = failing_backward};
    static const ag_function silent = {.name = "silent",
                                       .forward = swish_forward,
                                       .backward = silent_backward};
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    ag_tensor *y = ag_function_apply(a, &failing, 1, &x, NULL);
    ag_tensor *loss = ag_sum(a, ag_exp(a, y), AG_ALL, false);
    ck_assert_int_eq(ag_backward(loss), -1);
    ck_assert_str_eq(ag_last_error(), "failing: cannot differentiate at 42");
    ck_assert(ag_is_grad_enabled());
    /* with anomaly detection on too: the failure is not checked over */
    ag_set_anomaly_detection(true);
    y = ag_function_apply(a, &failing, 1, &x, NULL);
    ck_assert_int_eq(ag_backward(ag_sum(a, y, AG_ALL, false)), -1);
    ck_assert_str_eq(ag_last_error(), "failing: cannot differentiate at 42");
    ag_set_anomaly_detection(false);
    /* an error left from before ag_backward is not taken for silent's */
    y = ag_function_apply(a, &silent, 1, &x, NULL);
    loss = ag_sum(a, y, AG_ALL, false);
    ck_assert_ptr_null(ag_exp(a, NULL));
    ck_assert_int_eq(ag_backward(loss), -1);
    expect_error_has("silent: ", "backward returned 3");
    /* the graph's marks were cleared: a good graph still runs */
    backward_ok(
        ag_sum(a, ag_function_apply(a, &swish, 1, &x, NULL), AG_ALL, false));
    ag_arena_free(a);
}
END_TEST

/* A backward that starts another walk of a graph: ag_backward, ag_write_dot
 * or ag_gradcheck, chosen by the user pointer. */
typedef enum { WALK_BACKWARD, WALK_DOT, WALK_GRADCHECK } walk_kind;

static ag_tensor *identity_f(ag_arena *a, ag_tensor *const *in, int n,
                             void *user)
{
    (void)n;
    (void)user;
    return ag_scale(a, in[0], 1.0);
}

static int walking_backward(ag_function_ctx *ctx, ag_tensor *g,
                            ag_tensor *const *gi)
{
    walk_kind *kind = ag_function_user(ctx);
    ag_tensor *out = ag_function_output(ctx);
    int status = -1;
    FILE *sink = fopen("/dev/null", "w");
    switch (*kind) {
    case WALK_BACKWARD:
        status = ag_backward(out);
        break;
    case WALK_DOT:
        status = ag_write_dot(out, sink);
        break;
    case WALK_GRADCHECK:
        status = ag_gradcheck(identity_f, 1, &out, NULL, NULL, NULL);
        break;
    }
    fclose(sink);
    (void)g;
    (void)gi;
    return status;
}

/* Each nested walk fails cleanly, naming itself; the outer ag_backward
 * returns its error and the graph works afterwards. */
START_TEST(test_function_backward_cannot_walk_graphs)
{
    static const ag_function walking = {.name = "walking",
                                        .forward = swish_forward,
                                        .backward = walking_backward};
    static const char *want[] = {"ag_backward: cannot run during a backward",
                                 "ag_write_dot: cannot run during a backward",
                                 "ag_gradcheck: cannot run during a backward"};
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    for (int k = WALK_BACKWARD; k <= WALK_GRADCHECK; k++) {
        walk_kind kind = (walk_kind)k;
        ag_tensor *y = ag_function_apply(a, &walking, 1, &x, &kind);
        ck_assert_int_eq(ag_backward(ag_sum(a, y, AG_ALL, false)), -1);
        ck_assert_msg(strncmp(ag_last_error(), want[k], strlen(want[k])) == 0,
                      "got '%s', want '%s...'", ag_last_error(), want[k]);
    }
    ag_clear_error();
    ag_zero_grad(x);
    backward_ok(
        ag_sum(a, ag_function_apply(a, &swish, 1, &x, NULL), AG_ALL, false));
    ag_arena_free(a);
}
END_TEST

/* Forwards that return something other than a new tensor of the inputs'
 * dtype in the given arena are refused with the function's name. */
typedef enum {
    RET_NULL,
    RET_FAIL,
    RET_INPUT,
    RET_F32,
    RET_OTHER_ARENA,
    RET_PARAM,
    RET_VIEW
} bad_kind;

typedef struct {
    bad_kind kind;
    ag_arena *other;
} bad_state;

static ag_tensor *bad_forward(ag_function_ctx *ctx, ag_arena *a,
                              ag_tensor *const *in, int n)
{
    (void)n;
    bad_state *st = ag_function_user(ctx);
    const int64_t *s = ag_shape(in[0]);
    ag_tensor *t = NULL;
    switch (st->kind) {
    case RET_NULL:
        break;
    case RET_FAIL:
        ag_function_error(ctx, "no value for %s", "you");
        break;
    case RET_INPUT:
        t = in[0];
        break;
    case RET_F32:
        t = ag_zeros(a, AG_F32, 2, s);
        break;
    case RET_OTHER_ARENA:
        t = ag_zeros(st->other, AG_F64, 2, s);
        break;
    case RET_PARAM:
        t = ag_zeros(a, AG_F64, 2, s);
        ag_requires_grad(t, true);
        break;
    case RET_VIEW:
        t = ag_reshape(a, in[0], 1, (int64_t[]){-1});
        break;
    }
    return t;
}

START_TEST(test_function_bad_forward)
{
    static const ag_function bad = {
        .name = "bad", .forward = bad_forward, .backward = swish_backward};
    static const char *want[] = {
        "bad: forward returned NULL without an error",
        "bad: no value for you",
        "bad: forward returned one of its inputs",
        "bad: forward returned a tensor of another dtype (f32 (2,3), for f64",
        "bad: forward returned a tensor made in another arena",
        "bad: forward returned a tensor with history or a gradient",
        "bad: forward returned a tensor sharing the values of an input"};
    ag_arena *a = ag_arena_new();
    bad_state st = {.other = ag_arena_new()};
    ag_tensor *x = t23(a, X6, true);
    for (int k = RET_NULL; k <= RET_VIEW; k++) {
        st.kind = (bad_kind)k;
        ag_set_grad_enabled(k != RET_PARAM); /* refused without grad too */
        ag_tensor *y = ag_function_apply(a, &bad, 1, &x, &st);
        ag_set_grad_enabled(true);
        ck_assert_ptr_null(y);
        ck_assert_msg(strncmp(ag_last_error(), want[k], strlen(want[k])) == 0,
                      "got '%s', want '%s...'", ag_last_error(), want[k]);
    }
    /* an error left from before the call is not taken for forward's */
    st.kind = RET_NULL;
    ck_assert_ptr_null(ag_exp(a, NULL));
    ck_assert_ptr_null(ag_function_apply(a, &bad, 1, &x, &st));
    ck_assert_str_eq(ag_last_error(), want[RET_NULL]);
    ck_assert_ptr_null(ag_grad(x));
    ag_arena_free(st.other);
    ag_arena_free(a);
}
END_TEST

/* sum6(x0 .. x5) = x0 + ... + x5: a function of more inputs than an op
 * has slots inline; ag_function_input has no input past the last. */
#define SUM_INPUTS 6

static ag_tensor *sum6_forward(ag_function_ctx *ctx, ag_arena *a,
                               ag_tensor *const *in, int n)
{
    (void)ctx;
    ck_assert_int_eq(n, SUM_INPUTS);
    ag_tensor *y = in[0];
    for (int k = 1; k < n; k++) y = ag_add(a, y, in[k]);
    return y;
}

static int sum6_backward(ag_function_ctx *ctx, ag_tensor *g,
                         ag_tensor *const *grad_in)
{
    ck_assert_ptr_nonnull(ag_function_input(ctx, SUM_INPUTS - 1));
    ck_assert_ptr_null(ag_function_input(ctx, SUM_INPUTS));
    for (int k = 0; k < SUM_INPUTS; k++)
        for (int64_t i = 0; grad_in[k] && i < ag_numel(g); i++)
            tensor_set(grad_in[k], i,
                       tensor_at(grad_in[k], i) + tensor_at(g, i));
    return 0;
}

START_TEST(test_function_many_inputs)
{
    static const ag_function sum6 = {
        .name = "sum6", .forward = sum6_forward, .backward = sum6_backward};
    ag_arena *a = ag_arena_new();
    ag_tensor *in[SUM_INPUTS] = {t23(a, X6, true),  t23(a, Y6, true),
                                 t23(a, Z6, false), t23(a, X6, true),
                                 t23(a, Y6, true),  t23(a, Z6, true)};
    ag_tensor *y = ag_function_apply(a, &sum6, SUM_INPUTS, in, NULL);
    ck_assert_msg(y != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < 6; i++)
        ck_assert_double_eq_tol(tensor_at(y, i),
                                2 * X6[i] + 2 * Y6[i] + 2 * Z6[i], 1e-15);
    backward_ok(ag_sum(a, y, AG_ALL, false));
    for (int k = 0; k < SUM_INPUTS; k++)
        for (int64_t i = 0; k != 2 && i < 6; i++)
            ck_assert_double_eq(tensor_at(ag_grad(in[k]), i), 1);
    ck_assert_ptr_null(ag_grad(in[2]));
    ag_arena_free(a);
}
END_TEST

/* A forward whose result's values start `*offset` values into the buffer
 * that its input's values start (a buffer of 12 doubles, set by the test). */
static ag_tensor *neighbour_forward(ag_function_ctx *ctx, ag_arena *a,
                                    ag_tensor *const *in, int n)
{
    (void)n;
    const int64_t *offset = ag_function_user(ctx);
    ag_tensor *y = ag_zeros(a, AG_F64, 2, ag_shape(in[0]));
    if (y) y->data = (double *)in[0]->data + *offset;
    return y;
}

/* Values right after the input's in memory share none of them and are
 * accepted; values that overlap the input's last one are a view. */
START_TEST(test_function_result_next_to_input)
{
    static const ag_function neighbour = {.name = "neighbour",
                                          .forward = neighbour_forward,
                                          .backward = swish_backward};
    ag_arena *a = ag_arena_new();
    ag_tensor *buffer = ag_zeros(a, AG_F64, 1, (int64_t[]){12});
    ag_tensor *x = t23(a, X6, true);
    x->data = buffer->data; /* x's values: the first 6 of the buffer */
    int64_t offset = 6;
    ck_assert_msg(ag_function_apply(a, &neighbour, 1, &x, &offset) != NULL,
                  "%s", ag_last_error());
    offset = 5;
    ck_assert_ptr_null(ag_function_apply(a, &neighbour, 1, &x, &offset));
    expect_error_has("neighbour: forward returned a tensor sharing the "
                     "values of an input",
                     NULL);
    ag_arena_free(a);
}
END_TEST

/* ag_function_apply's own argument errors. */
START_TEST(test_function_bad_arguments)
{
    static const ag_function unnamed = {
        .name = NULL, .forward = swish_forward, .backward = swish_backward};
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    ag_tensor *x32 = tensor_of(a, AG_F32, 2, (int64_t[]){2, 3}, X6, false);
    ag_tensor *lab = ag_zeros(a, AG_I32, 1, (int64_t[]){6});
    ag_tensor *five[5] = {x, x, x, x, x};
    ck_assert_ptr_null(ag_function_apply(a, NULL, 1, &x, NULL));
    expect_error_has("ag_function_apply: ", "NULL");
    ck_assert_ptr_null(ag_function_apply(a, &unnamed, 1, &x, NULL));
    expect_error_has("ag_function_apply: ", "name");
    ck_assert_ptr_null(ag_function_apply(a, &fma3, 0, five, NULL));
    expect_error_has("fma3: needs at least 1 input, got 0", NULL);
    ck_assert_ptr_null(ag_function_apply(a, &fma3, -1, five, NULL));
    expect_error_has("fma3: needs at least 1 input, got -1", NULL);
    ck_assert_ptr_null(ag_function_apply(NULL, &swish, 1, &x, NULL));
    expect_error_has("swish: ", "arena is NULL");
    ag_tensor *mixed[3] = {x, x32, x};
    ck_assert_ptr_null(ag_function_apply(a, &fma3, 3, mixed, NULL));
    expect_error_has("fma3: dtypes differ", "f64 (2,3) and f32 (2,3)");
    ck_assert_ptr_null(ag_function_apply(a, &swish, 1, &lab, NULL));
    expect_error_has("swish: input 0 has dtype i32", NULL);
    /* a NULL input keeps the message of the op that made it */
    ag_tensor *broken = ag_log(a, lab);
    ck_assert_ptr_null(ag_function_apply(a, &swish, 1, &broken, NULL));
    expect_error_has("ag_log: ", NULL);
    ag_arena_free(a);
}
END_TEST

/* ---- the gradient checker ---- */

/* A correct function passes in full and projection mode; the report counts
 * every Jacobian entry and keeps the worst inside the tolerance. */
START_TEST(test_gradcheck_passes)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[3] = {t23(a, X6, true), t23(a, Y6, true), t23(a, Z6, true)};
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, NULL, NULL, &r), 0);
    ck_assert(r.passed);
    ck_assert_int_eq(r.checked, 6 * 18);
    ck_assert(r.abs_error <= 1e-5 + 1e-3 * fabs(r.numeric));
    ck_assert(r.input >= 0 && r.input < 3 && r.output_element >= 0);
    ag_gradcheck_options o = ag_gradcheck_defaults();
    ck_assert_double_eq(o.eps, 1e-6);
    ck_assert_double_eq(o.atol, 1e-5);
    ck_assert_double_eq(o.rtol, 1e-3);
    ck_assert(!o.projection && o.max_elements == 0);
    o.projection = true;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, NULL, &o, &r), 0);
    ck_assert_int_eq(r.checked, 18);
    ck_assert_int_eq(r.output_element, -1);
    ck_assert_int_eq(ag_gradcheck(gc_swish, 1, in, NULL, &o, NULL), 0);
    ag_arena_free(a);
}
END_TEST

/* A sample of built-in ops, with broadcasting and reductions. */
static ag_tensor *gc_ops(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    (void)n;
    switch (*(const int *)u) {
    case 0:
        return ag_matmul(a, x[0], ag_transpose(a, x[1], 0, 1));
    case 1:
        return ag_log_softmax(a, ag_mul(a, x[0], x[1]), -1);
    case 2:
        return ag_div(a, ag_sigmoid(a, x[0]), ag_shift(a, ag_exp(a, x[1]), 1));
    case 3:
        return ag_max(a, ag_tanh(a, ag_sub(a, x[0], x[1])), 0, true);
    case 4:
        return ag_mse_loss(a, ag_softmax(a, x[0], 0), x[1]);
    default:
        return ag_mean(a,
                       ag_pow(a, ag_add(a, x[0], ag_sum(a, x[1], 0, true)), 2),
                       1, false);
    }
}

START_TEST(test_gradcheck_builtin_ops)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[2] = {t23(a, X6, true), t23(a, Y6, true)};
    for (int k = 0; k < 6; k++) {
        ag_gradcheck_report r;
        int status = ag_gradcheck(gc_ops, 2, in, &k, NULL, &r);
        ck_assert_msg(status == 0, "case %d: status %d: %s", k, status,
                      ag_last_error());
        ck_assert_int_gt(r.checked, 0);
    }
    ag_arena_free(a);
}
END_TEST

/* A backward wrong by 1e-3 in one Jacobian entry: d y[4] / d input1[4]
 * (element (1,1)). The report names exactly that entry. */
START_TEST(test_gradcheck_finds_the_wrong_entry)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[3] = {t23(a, X6, true), t23(a, Y6, true), t23(a, Z6, true)};
    fma3_state st = {.wrong_element = 4};
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, NULL, &r), 1);
    ck_assert(!r.passed);
    ck_assert_int_eq(r.checked, 6 * 18);
    ck_assert_int_eq(r.input, 1);
    ck_assert_int_eq(r.ndim, 2);
    ck_assert_int_eq(r.index[0], 1);
    ck_assert_int_eq(r.index[1], 1);
    ck_assert_int_eq(r.element, 4);
    ck_assert_int_eq(r.output_element, 4);
    ck_assert_double_eq_tol(r.numeric, X6[4], 1e-8); /* d(ab+c)/db = a */
    ck_assert_double_eq_tol(r.analytic, X6[4] + 1e-3, 1e-12);
    ck_assert_double_eq_tol(r.abs_error, 1e-3, 1e-8);
    ck_assert_double_eq_tol(r.rel_error, 1e-3 / fabs(X6[4]), 1e-6);
    /* the printed line says the same */
    char line[512] = "";
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ag_gradcheck_print(f, &r);
    rewind(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_msg(strstr(line, "gradcheck FAILED: input 1 element (1,1) "
                               "output 4: analytic -0.399") == line,
                  "%s", line);
    ck_assert_msg(strstr(line, "(108 entries checked)\n") != NULL, "%s", line);
    ag_arena_free(a);
}
END_TEST

/* The tolerance is atol + rtol |numeric|, not |analytic|: with atol 0 the
 * entry wrong by 1e-3 (analytic -0.399, numeric -0.4) passes for an rtol
 * between 1e-3 / 0.4 and 1e-3 / 0.399, and fails for a smaller one. A
 * passing report keeps that entry, the closest to failing, not one of the
 * exact zero entries (no error against no tolerance). */
START_TEST(test_gradcheck_tolerance_of_numeric)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[3] = {t23(a, X6, true), t23(a, Y6, true), t23(a, Z6, true)};
    fma3_state st = {.wrong_element = 4};
    ag_gradcheck_options o = ag_gradcheck_defaults();
    o.atol = 0;
    o.rtol = 1e-3 / 0.3995;
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, &o, &r), 0);
    ck_assert(r.passed);
    ck_assert_int_eq(r.input, 1);
    ck_assert_int_eq(r.element, 4);
    ck_assert_int_eq(r.output_element, 4);
    ck_assert_double_eq_tol(r.abs_error, 1e-3, 1e-8);
    o.rtol = 1e-3 / 0.4005;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, &o, &r), 1);
    ck_assert_int_eq(r.element, 4);
    ag_arena_free(a);
}
END_TEST

/* Projection mode and sampling find it too; sampling is seeded. */
START_TEST(test_gradcheck_projection_and_sampling_fail)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[3] = {t23(a, X6, true), t23(a, Y6, true), t23(a, Z6, true)};
    fma3_state st = {.wrong_element = 4};
    ag_gradcheck_options o = ag_gradcheck_defaults();
    o.projection = true;
    o.atol = 1e-8;
    o.rtol = 1e-6;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        o.seed = seed;
        ag_gradcheck_report r;
        ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, &o, &r), 1);
        ck_assert_int_eq(r.input, 1);
        ck_assert_int_eq(r.element, 4);
        ck_assert_int_eq(r.output_element, -1);
        ck_assert_int_eq(r.checked, 18);
    }
    /* sampled: 2 of the 6 elements of each input; wrong everywhere in b */
    st.wrong_element = -2;
    o = ag_gradcheck_defaults();
    o.max_elements = 2;
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, &o, &r), 1);
    ck_assert_int_eq(r.checked, 6 * 3 * 2);
    ck_assert_int_eq(r.input, 1);
    ck_assert_int_eq(r.output_element, r.element);
    o.projection = true;
    o.atol = 1e-8;
    o.rtol = 1e-6;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, &o, &r), 1);
    ck_assert_int_eq(r.checked, 3 * 2);
    st.wrong_element = -1;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, &st, &o, &r), 0);
    ag_arena_free(a);
}
END_TEST

/* Which elements the checker moved: f compares its inputs with the
 * originals and counts each moved element. */
typedef struct {
    const double *original;
    int moved[6];
} move_log;

static ag_tensor *gc_logged(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    move_log *log = u;
    for (int64_t i = 0; i < 6; i++)
        log->moved[i] += tensor_at(x[0], i) != log->original[i];
    return ag_function_apply(a, &swish, n, x, NULL);
}

/* max_elements checks that many distinct elements, each moved by +eps and
 * -eps once; the same seed picks the same ones, and some other seed other
 * ones. */
START_TEST(test_gradcheck_sampling)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    ag_gradcheck_options o = ag_gradcheck_defaults();
    o.max_elements = 3;
    int first[6] = {0};
    bool some_seed_differs = false;
    for (uint64_t seed = 0; seed < 8; seed++) {
        move_log log = {X6, {0}};
        o.seed = seed;
        ag_gradcheck_report r;
        ck_assert_int_eq(ag_gradcheck(gc_logged, 1, &x, &log, &o, &r), 0);
        ck_assert_int_eq(r.checked, 6 * 3);
        int distinct = 0;
        for (int i = 0; i < 6; i++) {
            ck_assert(log.moved[i] == 0 || log.moved[i] == 2);
            distinct += log.moved[i] == 2;
            if (seed == 0) first[i] = log.moved[i];
            some_seed_differs |= log.moved[i] != first[i];
        }
        ck_assert_int_eq(distinct, 3);
    }
    ck_assert(some_seed_differs);
    move_log again = {X6, {0}};
    o.seed = 0;
    ck_assert_int_eq(ag_gradcheck(gc_logged, 1, &x, &again, &o, NULL), 0);
    ck_assert_mem_eq(again.moved, first, sizeof first);
    /* max_elements at or above the count checks everything */
    o.max_elements = 6;
    move_log all = {X6, {0}};
    ck_assert_int_eq(ag_gradcheck(gc_logged, 1, &x, &all, &o, NULL), 0);
    for (int i = 0; i < 6; i++) ck_assert_int_eq(all.moved[i], 2);
    ag_arena_free(a);
}
END_TEST

/* The inputs, their values, flags and gradients, are as they were. */
START_TEST(test_gradcheck_leaves_inputs_alone)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *in[3] = {t23(a, X6, true), t23(a, Y6, true), t23(a, Z6, false)};
    backward_ok(
        ag_sum(a, ag_function_apply(a, &fma3, 3, in, NULL), AG_ALL, false));
    tensor_set(ag_grad(in[0]), 2, 123.5); /* a gradient that is not fresh */
    double before[2][6], values[3][6];
    for (int i = 0; i < 3; i++)
        memcpy(values[i], ag_data(in[i]), sizeof values[i]);
    for (int i = 0; i < 2; i++)
        memcpy(before[i], ag_data(ag_grad(in[i])), sizeof before[i]);
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_fma3, 3, in, NULL, NULL, &r), 0);
    ck_assert_int_eq(r.checked, 6 * 12); /* in[2] is not checked */
    for (int i = 0; i < 3; i++)
        ck_assert_mem_eq(ag_data(in[i]), values[i], sizeof values[i]);
    for (int i = 0; i < 2; i++) {
        ck_assert(ag_is_requires_grad(in[i]));
        ck_assert_mem_eq(ag_data(ag_grad(in[i])), before[i], sizeof before[i]);
    }
    ck_assert(!ag_is_requires_grad(in[2]));
    ck_assert_ptr_null(ag_grad(in[2]));
    ck_assert(ag_is_grad_enabled());
    ag_arena_free(a);
}
END_TEST

/* Functions for the refusals; kind 1 fails, 2 and 4 change its shape (4
 * keeping the leading size) and 3 gives integers as soon as the checker
 * moves an element. */
static ag_tensor *gc_unruly(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    (void)n;
    bool moved = false;
    for (int64_t i = 0; i < 6; i++) moved |= tensor_at(x[0], i) != X6[i];
    switch (moved ? *(const int *)u : 0) {
    case 1:
        return ag_log(a, ag_zeros(a, AG_I32, 1, (int64_t[]){1}));
    case 2:
        return ag_sum(a, x[0], 0, false);
    case 3:
        return ag_zeros(a, AG_I32, 2, (int64_t[]){2, 3});
    case 4:
        return ag_sum(a, x[0], 1, false);
    default:
        return ag_scale(a, x[0], 2);
    }
}

START_TEST(test_gradcheck_refuses)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true), *c = t23(a, X6, false);
    ag_tensor *x32 = tensor_of(a, AG_F32, 2, (int64_t[]){2, 3}, X6, true);
    ag_tensor *five[5] = {x, x, x, x, x}, *none = NULL;
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_swish, 1, &x32, NULL, NULL, &r), -1);
    expect_error_has("ag_gradcheck: input 0 is f32", "f64");
    ck_assert(!r.passed);
    ck_assert_int_eq(ag_gradcheck(NULL, 1, &x, NULL, NULL, NULL), -1);
    expect_error_has("ag_gradcheck: ", "got f NULL, 1 inputs");
    ck_assert_int_eq(ag_gradcheck(gc_swish, 0, &x, NULL, NULL, NULL), -1);
    expect_error_has("ag_gradcheck: ", "at least 1 input, got f, 0 inputs");
    /* any number of inputs: swish records all five (and reads the first) */
    ck_assert_int_eq(ag_gradcheck(gc_swish, 5, five, NULL, NULL, &r), 0);
    ck_assert_int_eq(r.checked, 5 * 6 * 6);
    ck_assert_int_eq(ag_gradcheck(gc_swish, 1, &c, NULL, NULL, NULL), -1);
    expect_error_has("ag_gradcheck: ", "requires a gradient");
    ag_clear_error();
    ck_assert_int_eq(ag_gradcheck(gc_swish, 1, &none, NULL, NULL, NULL), -1);
    expect_error_has("ag_gradcheck: input 0 is NULL", NULL);
    ag_gradcheck_options o = ag_gradcheck_defaults();
    o.eps = 0;
    ck_assert_int_eq(ag_gradcheck(gc_swish, 1, &x, NULL, &o, NULL), -1);
    expect_error_has("ag_gradcheck: options", "eps 0");
    o = ag_gradcheck_defaults();
    o.max_elements = -1;
    ck_assert_int_eq(ag_gradcheck(gc_swish, 1, &x, NULL, &o, NULL), -1);
    expect_error_has("ag_gradcheck: options", "max_elements -1 (>= 0)");
    /* f fails, changes its shape, gives integers once an element moves */
    const char *want[] = {NULL, "f failed with input 0 element 0 +eps: ag_log",
                          "f's output changed shape from (2,3) to (3)",
                          "f's output is i32 (2,3); it must be f64",
                          "f's output changed shape from (2,3) to (2)"};
    for (int k = 1; k <= 4; k++) {
        ck_assert_int_eq(ag_gradcheck(gc_unruly, 1, &x, &k, NULL, NULL), -1);
        expect_error_has("ag_gradcheck: ", want[k]);
    }
    ag_arena_free(a);
}
END_TEST

/* A function of constants only: it does not depend on its input, which
 * fails the check (a check that compared 0 with 0 would pass whatever
 * the backward does); allowed by an option, every analytic entry is 0, as
 * is every numeric one. */
static ag_tensor *gc_constant(ag_arena *a, ag_tensor *const *x, int n, void *u)
{
    (void)x;
    (void)n;
    (void)u;
    return ag_ones(a, AG_F64, 1, (int64_t[]){2});
}

START_TEST(test_gradcheck_constant_function)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    ag_gradcheck_report r;
    ck_assert_int_eq(ag_gradcheck(gc_constant, 1, &x, NULL, NULL, &r), 1);
    ck_assert(!r.passed);
    ck_assert(r.unreached);
    ck_assert_int_eq(r.input, 0);
    ck_assert_int_eq(r.checked, 0);
    char line[256];
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ag_gradcheck_print(f, &r);
    rewind(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_msg(strstr(line, "FAILED: input 0 does not reach the output"),
                  "%s", line);
    ag_gradcheck_options allow = ag_gradcheck_defaults();
    allow.allow_unused = true;
    ck_assert_int_eq(ag_gradcheck(gc_constant, 1, &x, NULL, &allow, &r), 0);
    ck_assert(!r.unreached);
    ck_assert_int_eq(r.checked, 12);
    ck_assert_double_eq(r.analytic, 0);
    ck_assert_double_eq(r.numeric, 0);
    /* every entry is equally good: the report keeps the first */
    ck_assert_int_eq(r.element, 0);
    ck_assert_int_eq(r.output_element, 0);
    /* exact entries pass even with no tolerance at all */
    ag_gradcheck_options o = allow;
    o.atol = 0;
    o.rtol = 0;
    ck_assert_int_eq(ag_gradcheck(gc_constant, 1, &x, NULL, &o, &r), 0);
    ck_assert_int_eq(r.element, 0);
    ck_assert_int_eq(r.output_element, 0);
    ag_arena_free(a);
}
END_TEST

/* The printed line of a passing check. */
START_TEST(test_gradcheck_print)
{
    ag_gradcheck_report r = {.passed = true,
                             .checked = 24,
                             .input = 0,
                             .ndim = 2,
                             .index = {1, 2},
                             .element = 5,
                             .output_element = 3,
                             .analytic = 0.5,
                             .numeric = 0.5,
                             .abs_error = 0};
    char buf[512];
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ag_gradcheck_print(f, &r);
    r.output_element = -1;
    r.passed = false;
    ag_gradcheck_print(f, &r);
    ag_gradcheck_print(f, NULL);
    ag_gradcheck_print(NULL, &r);
    rewind(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    ck_assert_str_eq(buf, "gradcheck passed: worst input 0 element (1,2) "
                          "output 3: analytic 0.5 numeric 0.5 abs error 0 "
                          "rel error 0 (24 entries checked)\n");
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    ck_assert_msg(strstr(buf, "gradcheck FAILED: input 0 element (1,2) "
                              "output v.J: ") == buf,
                  "%s", buf);
    ck_assert_ptr_null(fgets(buf, sizeof buf, f));
    fclose(f);
    /* output element 0 is an element, not v.J */
    r.output_element = 0;
    f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ag_gradcheck_print(f, &r);
    rewind(f);
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    ck_assert_msg(strstr(buf, "element (1,2) output 0: analytic"), "%s", buf);
    fclose(f);
}
END_TEST

/* ---- anomaly detection ---- */

START_TEST(test_anomaly_off_by_default)
{
    ck_assert(!ag_is_anomaly_detection_enabled());
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, (double[]){1, 2, 3, -1, 5, 6}, true);
    ag_tensor *y = ag_log(a, x);
    ck_assert_ptr_nonnull(y);
    ck_assert(isnan(tensor_at(y, 3)));
    ag_tensor *z = ag_zeros(a, AG_F64, 1, (int64_t[]){3});
    ag_requires_grad(z, true);
    backward_ok(ag_sum(a, ag_sqrt(a, z), AG_ALL, false));
    ck_assert(isinf(tensor_at(ag_grad(z), 1)));
    ck_assert(!ag_set_anomaly_detection(true));
    ck_assert(ag_set_anomaly_detection(false));
    ck_assert(!ag_is_anomaly_detection_enabled());
    ag_arena_free(a);
}
END_TEST

START_TEST(test_anomaly_in_forward)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, (double[]){1, 2, 3, -1, 5, 6}, true);
    ag_set_anomaly_detection(true);
    ck_assert_ptr_nonnull(ag_exp(a, x)); /* finite results pass */
    ck_assert_ptr_null(ag_log(a, x));
    ck_assert_str_eq(ag_last_error(), "ag_log: anomaly in forward of op log: "
                                      "element 3 is nan; inputs (2,3)");
    /* the last element is checked too */
    ck_assert_ptr_null(ag_log(a, t23(a, (double[]){1, 2, 3, 4, 5, -6}, true)));
    expect_error_has("ag_log: ", "element 5 is nan");
    /* a binary op names both input shapes; also without grad mode */
    ag_tensor *zero = ag_zeros(a, AG_F64, 1, (int64_t[]){3});
    ag_set_grad_enabled(false);
    ck_assert_ptr_null(ag_div(a, x, zero));
    ag_set_grad_enabled(true);
    ck_assert_str_eq(ag_last_error(), "ag_div: anomaly in forward of op div: "
                                      "element 0 is inf; inputs (2,3), (3)");
    /* a user function: x * x + inf in its forward */
    ag_tensor *three[3] = {x, x, ag_div(a, x, ag_shift(a, x, 1))};
    ck_assert_ptr_null(three[2]); /* x + 1 = 0 at element 3: -1 / 0 */
    expect_error_has("element 3 is -inf", NULL);
    three[2] = ag_full(a, AG_F64, 2, (int64_t[]){2, 3}, INFINITY);
    ck_assert_ptr_null(ag_function_apply(a, &fma3, 3, three, NULL));
    ck_assert_str_eq(ag_last_error(),
                     "fma3: anomaly in forward of op fma3: "
                     "element 0 is inf; inputs (2,3), (2,3), (2,3)");
    /* in a tangent (forward mode): the mean of an empty dual tensor is NaN
     * in the primal and in the tangent, each reported as ag_mean (found by
     * fuzz_ops, when the tangent's error was named "mean") */
    ag_set_anomaly_detection(false);
    ag_tensor *empty = ag_zeros(a, AG_F64, 2, (int64_t[]){0, 3});
    ag_tensor *dual = ag_make_dual(a, empty, empty);
    ck_assert_ptr_nonnull(dual);
    ag_set_anomaly_detection(true);
    ck_assert_ptr_null(ag_mean(a, dual, AG_ALL, false));
    ck_assert_str_eq(ag_last_error(), "ag_mean: anomaly in forward of op "
                                      "mean: element 0 is nan; inputs (0,3)");
    ag_set_anomaly_detection(false);
    ag_arena_free(a);
}
END_TEST

/* sqrt at 0: the forward gives 0, the backward 1 / (2 * 0) = inf. */
START_TEST(test_anomaly_in_backward)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, (double[]){4, 0, 1, 9, 2, 3}, true);
    ag_set_anomaly_detection(true);
    ag_tensor *loss = ag_sum(a, ag_scale(a, ag_sqrt(a, x), 3), AG_ALL, false);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(ag_backward(loss), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_backward: anomaly in backward of op sqrt: gradient "
                     "of input 0 (2,3) element 1 is inf");
    /* a user function's backward is checked too: y = fma3(sqrt x, w, 0)
     * with w = 1e-300 and loss = sum(1e308 y) are finite, but fma3's
     * dw = 1e308 sqrt(x) is inf at element 0 (before sqrt's backward) */
    ag_tensor *w = ag_full(a, AG_F64, 2, (int64_t[]){2, 3}, 1e-300);
    ag_requires_grad(w, true);
    ag_tensor *three[3] = {ag_sqrt(a, x), w,
                           ag_zeros(a, AG_F64, 2, (int64_t[]){2, 3})};
    ag_tensor *y = ag_function_apply(a, &fma3, 3, three, NULL);
    loss = ag_sum(a, ag_scale(a, y, 1e308), AG_ALL, false);
    ck_assert_msg(loss != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_backward(loss), -1);
    ck_assert_str_eq(ag_last_error(),
                     "ag_backward: anomaly in backward of op fma3: gradient "
                     "of input 1 (2,3) element 0 is inf");
    /* an input that no longer requires a gradient is not checked: its old
     * gradient (inf, from a pass without detection) is not this pass's */
    ag_set_anomaly_detection(false);
    ag_tensor *z = ag_zeros(a, AG_F64, 1, (int64_t[]){3});
    ag_requires_grad(z, true);
    backward_ok(ag_sum(a, ag_sqrt(a, z), AG_ALL, false));
    ck_assert(isinf(tensor_at(ag_grad(z), 0)));
    ag_requires_grad(z, false);
    ag_tensor *v = ag_ones(a, AG_F64, 1, (int64_t[]){3});
    ag_requires_grad(v, true);
    ag_set_anomaly_detection(true);
    backward_ok(ag_sum(a, ag_mul(a, z, v), AG_ALL, false));
    ag_set_anomaly_detection(false);
    ag_arena_free(a);
}
END_TEST

/* The flag is per thread. */
static void *anomaly_in_thread(void *arg)
{
    (void)arg;
    bool *seen = malloc(sizeof *seen);
    *seen = ag_is_anomaly_detection_enabled();
    ag_set_anomaly_detection(true);
    return seen;
}

START_TEST(test_anomaly_per_thread)
{
    ag_set_anomaly_detection(true);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, anomaly_in_thread, NULL), 0);
    void *seen;
    ck_assert_int_eq(pthread_join(th, &seen), 0);
    ck_assert(!*(bool *)seen);
    free(seen);
    ck_assert(ag_set_anomaly_detection(false));
    ck_assert(!ag_is_anomaly_detection_enabled());
}
END_TEST

/* ---- DOT ---- */

/* Writes ag_write_dot(t) into buf. */
static void dot_text(const ag_tensor *t, char *buf, size_t size)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(ag_write_dot(t, f) == 0, "%s", ag_last_error());
    rewind(f);
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Counts the lines of s that contain `what`. */
static int lines_with(const char *s, const char *what)
{
    int count = 0;
    for (const char *line = s; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char copy[256];
        snprintf(copy, sizeof copy, "%.*s", (int)len, line);
        count += strstr(copy, what) != NULL;
        line = end ? end + 1 : NULL;
    }
    return count;
}

/* sum(x * c + x): x a parameter used twice, c a constant. */
START_TEST(test_dot_small_graph)
{
    ag_arena *a = ag_arena_new();
    int64_t s22[2] = {2, 2};
    ag_tensor *x = tensor_of(a, AG_F64, 2, s22, (double[]){1, 2, 3, 4}, true);
    ag_tensor *c = tensor_of(a, AG_F64, 2, s22, (double[]){3, 4, 0, 0}, false);
    ag_tensor *z = ag_add(a, ag_mul(a, x, c), x);
    ag_tensor *s = ag_sum(a, z, AG_ALL, false);
    char before[2048], after[2048], want[2048], again[2048];
    dot_text(s, before, sizeof before);
    backward_ok(s);
    dot_text(s, after, sizeof after);
    /* grad x = c + 1 = (4,5,1,1); grads of z and x*c are ones */
    snprintf(want, sizeof want,
             "digraph autograd {\n"
             "  node [shape=box, fontname=\"Helvetica\"];\n"
             "  n0 [label=\"leaf\\n(2,2) f64\\nrequires_grad\\ngrad norm "
             "%.4g\", shape=ellipse];\n"
             "  n1 [label=\"leaf\\n(2,2) f64\", shape=ellipse];\n"
             "  n2 [label=\"mul\\n(2,2) f64\\nrequires_grad\\ngrad norm 2\"];\n"
             "  n3 [label=\"add\\n(2,2) f64\\nrequires_grad\\ngrad norm 2\"];\n"
             "  n4 [label=\"sum\\n() f64\\nrequires_grad\\ngrad norm 1\"];\n"
             "  n0 -> n2;\n"
             "  n1 -> n2;\n"
             "  n2 -> n3;\n"
             "  n0 -> n3;\n"
             "  n3 -> n4;\n"
             "}\n",
             sqrt(16 + 25 + 1 + 1));
    ck_assert_str_eq(after, want);
    ck_assert_int_eq(lines_with(after, "[label="), 5);
    ck_assert_int_eq(lines_with(after, " -> "), 5);
    ck_assert_int_eq(lines_with(before, "[label="), 5);
    ck_assert_int_eq(lines_with(before, "grad norm"), 0);
    /* the marks were cleared: the same text again, and backward still works */
    dot_text(s, again, sizeof again);
    ck_assert_str_eq(again, after);
    backward_ok(s);
    /* a user function appears under its name, escaped */
    static const ag_function quoted = {.name = "my \"swish\"",
                                       .forward = swish_forward,
                                       .backward = swish_backward};
    ag_tensor *q = ag_function_apply(a, &quoted, 1, &x, NULL);
    dot_text(q, again, sizeof again);
    ck_assert_msg(strstr(again, "n1 [label=\"my \\\"swish\\\"\\n(2,2) f64"),
                  "%s", again);
    ck_assert_int_eq(lines_with(again, " -> "), 1);
    /* and a line break in its name stays inside the label */
    static const ag_function two_lines = {.name = "two\nlines",
                                          .forward = swish_forward,
                                          .backward = swish_backward};
    q = ag_function_apply(a, &two_lines, 1, &x, NULL);
    dot_text(q, again, sizeof again);
    ck_assert_msg(strstr(again, "n1 [label=\"two\\nlines\\n(2,2) f64"), "%s",
                  again);
    ag_arena_free(a);
}
END_TEST

/* A million-op chain: the walk is iterative and clears every mark. */
START_TEST(test_dot_deep_chain)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = ag_zeros(a, AG_F64, 0, NULL);
    ag_requires_grad(x, true);
    ag_tensor *t = x, *middle = NULL;
    for (int i = 0; i < 1000000; i++) {
        t = ag_shift(a, t, 1);
        if (i == 500000) middle = t;
    }
    ck_assert_ptr_nonnull(t);
    FILE *f = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ag_write_dot(t, f), 0);
    fclose(f);
    ck_assert_int_eq(x->mark, 0);
    ck_assert_int_eq(middle->mark, 0);
    ck_assert_int_eq(t->mark, 0);
    ag_arena_free(a);
}
END_TEST

/* ag_write_dot_named: the graph of examples/fashion_mnist's model
 * (784-512-256-10) labels each of its six parameters with its name, once,
 * on a leaf; bad names are refused before anything is written. */
START_TEST(test_dot_named_parameters)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_mlp *m = ag_mlp_new(a, 4, (int64_t[]){784, 512, 256, 10}, NULL);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    ag_tensor *x = ag_zeros(step, AG_F32, 2, (int64_t[]){2, 784});
    ag_tensor *loss = ag_sum(step, ag_mlp_forward(step, m, x), AG_ALL, false);
    ck_assert_msg(loss != NULL, "%s", ag_last_error());
    int n = ag_params_count(m->params);
    ck_assert_int_eq(n, 6);
    ag_tensor *tensors[6];
    const char *names[6];
    for (int i = 0; i < n; i++) {
        tensors[i] = ag_params_tensor(m->params, i);
        names[i] = ag_params_name(m->params, i);
    }
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(ag_write_dot_named(loss, n, tensors, names, f) == 0, "%s",
                  ag_last_error());
    rewind(f);
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text - 1, f);
    text[len] = '\0';
    fclose(f);
    static const char *const want[6] = {"layers.0.weight", "layers.0.bias",
                                        "layers.1.weight", "layers.1.bias",
                                        "layers.2.weight", "layers.2.bias"};
    for (int i = 0; i < 6; i++) {
        char label[64];
        snprintf(label, sizeof label, "[label=\"%s\\nleaf", want[i]);
        ck_assert_msg(lines_with(text, label) == 1, "%s in:\n%s", label, text);
    }
    ck_assert_int_eq(lines_with(text, "\\nleaf"), 6);
    ck_assert_int_eq(lines_with(text, "[label=\"leaf\\n"), 1); /* x */
    /* errors: nothing written */
    f = tmpfile();
    ck_assert_int_eq(ag_write_dot_named(loss, -1, tensors, names, f), -1);
    expect_error_has("ag_write_dot_named: ", "-1");
    names[3] = NULL;
    ck_assert_int_eq(ag_write_dot_named(loss, n, tensors, names, f), -1);
    expect_error_has("ag_write_dot_named: name 3 of 6: a NULL name", NULL);
    ck_assert_int_eq(ag_write_dot_named(loss, 2, tensors, NULL, f), -1);
    ck_assert_int_eq(ftell(f), 0);
    fclose(f);
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_dot_errors)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = t23(a, X6, true);
    ag_clear_error();
    ck_assert_int_eq(ag_write_dot(NULL, stdout), -1);
    expect_error_has("ag_write_dot: ", "NULL");
    ck_assert_int_eq(ag_write_dot(x, NULL), -1);
    expect_error_has("ag_write_dot: the FILE is NULL", NULL);
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        ck_assert_int_eq(ag_write_dot(ag_exp(a, x), full), -1);
        expect_error_has("ag_write_dot: writing failed", NULL);
        fclose(full);
    }
    ag_arena_free(a);
}
END_TEST

static Suite *tools_suite(void)
{
    Suite *s = suite_create("tools");
    TCase *fn = tcase_create("function");
    tcase_add_test(fn, test_function_values_and_gradients);
    tcase_add_test(fn, test_function_in_a_graph);
    tcase_add_test(fn, test_function_input_without_gradient);
    tcase_add_test(fn, test_function_not_recorded);
    tcase_add_test(fn, test_function_context);
    tcase_add_test(fn, test_function_backward_fails);
    tcase_add_test(fn, test_function_bad_forward);
    tcase_add_test(fn, test_function_backward_cannot_walk_graphs);
    tcase_add_test(fn, test_function_many_inputs);
    tcase_add_test(fn, test_function_result_next_to_input);
    tcase_add_test(fn, test_function_bad_arguments);
    suite_add_tcase(s, fn);
    TCase *gc = tcase_create("gradcheck");
    tcase_add_test(gc, test_gradcheck_passes);
    tcase_add_test(gc, test_gradcheck_builtin_ops);
    tcase_add_test(gc, test_gradcheck_finds_the_wrong_entry);
    tcase_add_test(gc, test_gradcheck_tolerance_of_numeric);
    tcase_add_test(gc, test_gradcheck_projection_and_sampling_fail);
    tcase_add_test(gc, test_gradcheck_sampling);
    tcase_add_test(gc, test_gradcheck_leaves_inputs_alone);
    tcase_add_test(gc, test_gradcheck_refuses);
    tcase_add_test(gc, test_gradcheck_constant_function);
    tcase_add_test(gc, test_gradcheck_print);
    suite_add_tcase(s, gc);
    TCase *an = tcase_create("anomaly");
    tcase_add_test(an, test_anomaly_off_by_default);
    tcase_add_test(an, test_anomaly_in_forward);
    tcase_add_test(an, test_anomaly_in_backward);
    tcase_add_test(an, test_anomaly_per_thread);
    suite_add_tcase(s, an);
    TCase *dot = tcase_create("dot");
    tcase_set_timeout(dot, 60);
    tcase_add_test(dot, test_dot_small_graph);
    tcase_add_test(dot, test_dot_deep_chain);
    tcase_add_test(dot, test_dot_errors);
    tcase_add_test(dot, test_dot_named_parameters);
    suite_add_tcase(s, dot);
    return s;
}

int main(void)
{
    return run_suite(tools_suite());
}
