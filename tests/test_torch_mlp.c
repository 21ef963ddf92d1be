/* test_torch_mlp.c: the loss and gradients of a small MLP (tanh, ReLU,
 * softmax cross-entropy plus a sigmoid MSE term) against the numbers PyTorch
 * computed for the same inputs, in f64 and f32, and gradient accumulation
 * over repeated backward calls. The numbers are in fixtures/mlp_torch.h,
 * made by fixtures/make_mlp_fixture.py. */
#include <autograd.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixtures/mlp_torch.h"
#include "support.h"

/* The leaves of the model: the input and the parameters, each with its
 * PyTorch value and gradient. */
enum { L_X, L_W1, L_B1, L_W2, L_B2, L_W3, L_B3, N_LEAVES };

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
    const double *value;
    const double *grad;
} leaf_spec;

static const leaf_spec leaves[N_LEAVES] = {
    {"x", 2, {MLP_N, MLP_IN}, mlp_x, mlp_grad_x},
    {"w1", 2, {MLP_IN, MLP_H1}, mlp_w1, mlp_grad_w1},
    {"b1", 1, {MLP_H1, 0}, mlp_b1, mlp_grad_b1},
    {"w2", 2, {MLP_H1, MLP_H2}, mlp_w2, mlp_grad_w2},
    {"b2", 1, {MLP_H2, 0}, mlp_b2, mlp_grad_b2},
    {"w3", 2, {MLP_H2, MLP_C}, mlp_w3, mlp_grad_w3},
    {"b3", 1, {MLP_C, 0}, mlp_b3, mlp_grad_b3},
};

/* The model's tensors, all in one long-lived arena. */
typedef struct {
    ag_dtype dt;
    ag_tensor *leaf[N_LEAVES];
    ag_tensor *targets; /* AG_I32 (N) */
    ag_tensor *y;       /* (N, C), the sigmoid head's target */
} mlp;

/* The largest fixture array, in elements. */
#define MAX_ELEMS 32

/* Fails the test with the library's message when `t` is NULL. */
static ag_tensor *must(ag_tensor *t, const char *what)
{
    if (!t) ck_abort_msg("%s returned NULL: %s", what, ag_last_error());
    return t;
}

/* A tensor of dtype dt holding `vals` (converted to float for AG_F32). */
static ag_tensor *tensor_of(ag_arena *a, ag_dtype dt, int ndim,
                            const int64_t *shape, const double *vals,
                            const char *what)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    ck_assert_int_le(n, MAX_ELEMS);
    if (dt == AG_F64) return must(ag_from_data(a, dt, ndim, shape, vals), what);
    float buf[MAX_ELEMS];
    for (int64_t i = 0; i < n; i++) buf[i] = (float)vals[i];
    return must(ag_from_data(a, dt, ndim, shape, buf), what);
}

/* Makes the leaves, targets and Y of the fixture in arena `a`. */
static void mlp_make(mlp *m, ag_arena *a, ag_dtype dt)
{
    m->dt = dt;
    for (int i = 0; i < N_LEAVES; i++) {
        const leaf_spec *s = &leaves[i];
        m->leaf[i] = tensor_of(a, dt, s->ndim, s->shape, s->value, s->name);
        ag_requires_grad(m->leaf[i], true);
        ck_assert_msg(ag_is_requires_grad(m->leaf[i]),
                      "ag_requires_grad(%s) did not stick: %s", s->name,
                      ag_last_error());
    }
    const int64_t n[1] = {MLP_N};
    m->targets = must(ag_from_data(a, AG_I32, 1, n, mlp_targets), "targets");
    const int64_t nc[2] = {MLP_N, MLP_C};
    m->y = tensor_of(a, dt, 2, nc, mlp_y, "y");
}

/* The forward pass in arena `s`; returns the scalar loss
 * cross_entropy(logits, targets) + 0.5 * mse(sigmoid(logits), y). */
static ag_tensor *mlp_forward(const mlp *m, ag_arena *s)
{
    ag_tensor *const *p = m->leaf;
    ag_tensor *xw1 = must(ag_matmul(s, p[L_X], p[L_W1]), "ag_matmul(x, w1)");
    ag_tensor *pre1 = must(ag_add(s, xw1, p[L_B1]), "ag_add(xw1, b1)");
    ag_tensor *h1 = must(ag_tanh(s, pre1), "ag_tanh");
    ag_tensor *hw2 = must(ag_matmul(s, h1, p[L_W2]), "ag_matmul(h1, w2)");
    ag_tensor *pre2 = must(ag_add(s, hw2, p[L_B2]), "ag_add(hw2, b2)");
    ag_tensor *h2 = must(ag_relu(s, pre2), "ag_relu");
    ag_tensor *hw3 = must(ag_matmul(s, h2, p[L_W3]), "ag_matmul(h2, w3)");
    ag_tensor *logits = must(ag_add(s, hw3, p[L_B3]), "ag_add(hw3, b3)");
    ag_tensor *ce = must(ag_softmax_cross_entropy(s, logits, m->targets),
                         "ag_softmax_cross_entropy");
    ag_tensor *sig = must(ag_sigmoid(s, logits), "ag_sigmoid");
    ag_tensor *mse = must(ag_mse_loss(s, sig, m->y), "ag_mse_loss");
    ag_tensor *half = must(ag_scale(s, mse, 0.5), "ag_scale");
    ag_tensor *loss = must(ag_add(s, ce, half), "ag_add(ce, half)");
    ck_assert_int_eq(ag_numel(loss), 1);
    ck_assert_int_eq(ag_type(loss), m->dt);
    ck_assert_msg(ag_is_requires_grad(loss), "the loss needs no gradient");
    return loss;
}

/* |got - want| <= tol * max(1, |want|), false for NaN. */
static bool close_enough(double got, double want, double tol)
{
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

/* Checks that `t` (of dtype dt and the shape of leaf spec `s`) holds
 * scale * s->grad elementwise within relative tolerance `tol`. Every
 * mismatch is printed; the test fails naming the first one. */
static void expect_grad(const leaf_spec *s, ag_tensor *t, ag_dtype dt,
                        double scale, double tol)
{
    ck_assert_msg(t != NULL, "no gradient for %s: %s", s->name,
                  ag_last_error());
    ck_assert_int_eq(ag_type(t), dt);
    ck_assert_int_eq(ag_ndim(t), s->ndim);
    for (int d = 0; d < s->ndim; d++)
        ck_assert_int_eq(ag_shape(t)[d], s->shape[d]);
    int64_t n = ag_numel(t);
    const void *data = ag_data(t);
    ck_assert_ptr_nonnull(data);

    int64_t cols = s->ndim == 2 ? s->shape[1] : n;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++) {
        double got = dt == AG_F64 ? ((const double *)data)[i]
                                  : (double)((const float *)data)[i];
        double want = scale * s->grad[i];
        if (close_enough(got, want, tol)) continue;
        fprintf(stderr,
                "%s grad %s[%lld][%lld]: got %.17g, expected %.17g "
                "(diff %.3g)\n",
                ag_dtype_name(dt), s->name, (long long)(i / cols),
                (long long)(i % cols), got, want, got - want);
        if (first < 0) first = i;
        bad++;
    }
    if (bad) {
        double got = dt == AG_F64 ? ((const double *)data)[first]
                                  : (double)((const float *)data)[first];
        ck_abort_msg("%s grad %s[%lld][%lld]: got %.17g, expected %.17g "
                     "(relative tol %g); %lld of %lld elements differ",
                     ag_dtype_name(dt), s->name, (long long)(first / cols),
                     (long long)(first % cols), got, scale * s->grad[first],
                     tol, (long long)bad, (long long)n);
    }
}

/* Checks every leaf gradient of `m` against scale times the fixture. */
static void expect_all_grads(const mlp *m, double scale, double tol)
{
    for (int i = 0; i < N_LEAVES; i++)
        expect_grad(&leaves[i], ag_grad(m->leaf[i]), m->dt, scale, tol);
    /* Tensors that require no gradient get none. */
    ck_assert_ptr_null(ag_grad(m->targets));
    ck_assert_ptr_null(ag_grad(m->y));
}

/* Checks the loss value against the fixture. */
static void expect_loss(ag_tensor *loss, double tol)
{
    double got = ag_item(loss);
    ck_assert_msg(close_enough(got, mlp_loss, tol),
                  "loss: got %.17g, expected %.17g (relative tol %g): %s", got,
                  mlp_loss, tol, ag_last_error());
}

/* One forward and backward pass in dtype dt, checked within `tol`. */
static void run_once(ag_dtype dt, double tol)
{
    ag_arena *params = ag_arena_new();
    ag_arena *step = ag_arena_new();
    ck_assert_msg(params && step, "ag_arena_new: %s", ag_last_error());

    mlp m;
    mlp_make(&m, params, dt);
    ag_tensor *loss = mlp_forward(&m, step);
    expect_loss(loss, tol);
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward: %s", ag_last_error());
    expect_all_grads(&m, 1.0, tol);

    ag_arena_free(step);
    ag_arena_free(params);
}

START_TEST(test_mlp_f64)
{
    run_once(AG_F64, 1e-10);
}
END_TEST

START_TEST(test_mlp_f32)
{
    run_once(AG_F32, 1e-4);
}
END_TEST

/* Leaf gradients add up over backward calls until ag_zero_grad, and live in
 * the parameters' arena, so they outlast a reset of the step arena. */
START_TEST(test_mlp_accumulate)
{
    const double tol = 1e-10;
    ag_arena *params = ag_arena_new();
    ag_arena *step = ag_arena_new();
    ck_assert_msg(params && step, "ag_arena_new: %s", ag_last_error());

    mlp m;
    mlp_make(&m, params, AG_F64);
    ag_tensor *loss = mlp_forward(&m, step);

    ck_assert_msg(ag_backward(loss) == 0, "ag_backward 1: %s", ag_last_error());
    expect_all_grads(&m, 1.0, tol);
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward 2: %s", ag_last_error());
    expect_all_grads(&m, 2.0, tol);

    for (int i = 0; i < N_LEAVES; i++) ag_zero_grad(m.leaf[i]);
    expect_all_grads(&m, 0.0, tol);
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward 3: %s", ag_last_error());
    expect_all_grads(&m, 1.0, tol);

    /* A fresh graph after a reset adds to the same gradients. */
    ag_arena_reset(step);
    expect_all_grads(&m, 1.0, tol);
    loss = mlp_forward(&m, step);
    expect_loss(loss, tol);
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward 4: %s", ag_last_error());
    expect_all_grads(&m, 2.0, tol);

    ag_arena_free(step);
    ag_arena_free(params);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("torch_mlp");
    TCase *tc = tcase_create("torch_mlp");
    tcase_add_test(tc, test_mlp_f64);
    tcase_add_test(tc, test_mlp_f32);
    tcase_add_test(tc, test_mlp_accumulate);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
