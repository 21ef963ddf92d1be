/* test_higher_order_torch.c: the higher-order and forward-mode API against
 * PyTorch in f64: the functional API (ag_jacobian, ag_vjp, ag_jvp, ag_hvp,
 * ag_hessian) against torch.autograd.functional on five functions of
 * several inputs, ag_make_dual / ag_tangent through an MLP against
 * torch.autograd.forward_ad, and nested ag_gradients(create_graph) in a
 * PINN loss against nested torch.autograd.grad; the numbers are in
 * fixtures/higher_order_torch.h, made by
 * fixtures/make_higher_order_fixture.py. Besides: third derivatives against
 * their closed forms, ag_gradients leaving leaves' ag_grad alone, flat
 * arena memory over 1,000 Hessian-vector products, and the errors of every
 * new function (bad tangents and grad_outputs, NULLs). */
#include <autograd.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fixtures/higher_order_torch.h"
#include "support.h"

/* Agreement asked of every value: |ours - torch| <= TOL * max(1, |torch|). */
#define TOL 1e-10

/* Fails the test with the library's message when `t` is NULL. */
static ag_tensor *must(ag_tensor *t, const char *what)
{
    if (!t) ck_abort_msg("%s returned NULL: %s", what, ag_last_error());
    return t;
}

/* Fails the test with the library's message when rc is not 0. */
static void must_ok(int rc, const char *what)
{
    ck_assert_msg(rc == 0, "%s returned %d: %s", what, rc, ag_last_error());
}

/* An f64 tensor in `a` holding `vals`, of ndim sizes `shape`. */
static ag_tensor *f64_of(ag_arena *a, int ndim, const int64_t *shape,
                         const double *vals)
{
    return must(ag_from_data(a, AG_F64, ndim, shape, vals), "ag_from_data");
}

/* An f64 tensor of ones of shape (n, 1). */
static ag_tensor *ones_col(ag_arena *a, int64_t n)
{
    const int64_t shape[2] = {n, 1};
    return must(ag_ones(a, AG_F64, 2, shape), "ag_ones");
}

/* The worst relative error |got - want| / max(1, |want|) seen so far by
 * the running test, printed by report_worst. */
static double worst_error;

/* Checks that t is f64 with n elements equal to want[] within TOL
 * (relative); every mismatch is printed and the first fails the test. */
static void expect_values(const char *what, const ag_tensor *t,
                          const double *want, int64_t n)
{
    ck_assert_msg(t != NULL, "%s: no tensor: %s", what, ag_last_error());
    ck_assert_int_eq(ag_type(t), AG_F64);
    ck_assert_int_eq(ag_numel(t), n);
    int64_t first = -1;
    for (int64_t i = 0; i < n; i++) {
        double got = tensor_at(t, i), err = fabs(got - want[i]);
        double rel = err / fmax(1.0, fabs(want[i]));
        if (rel > worst_error || isnan(rel)) worst_error = rel;
        if (rel <= TOL) continue;
        fprintf(stderr, "%s[%lld]: got %.17g, torch %.17g (rel %.3g)\n", what,
                (long long)i, got, want[i], rel);
        if (first < 0) first = i;
    }
    ck_assert_msg(first < 0, "%s[%lld]: got %.17g, want %.17g (tol %g)", what,
                  (long long)first, first < 0 ? 0 : tensor_at(t, first),
                  first < 0 ? 0 : want[first], TOL);
}

/* Checks that t has the shape of the ndim0 sizes of s0 followed by the
 * ndim1 of s1 (a Jacobian's or Hessian's shape; ndim1 0 for one shape) and
 * holds want[] (as expect_values). */
static void expect_result(const char *what, const ag_tensor *t,
                          const double *want, int ndim0, const int64_t *s0,
                          int ndim1, const int64_t *s1)
{
    int64_t n = 1;
    for (int d = 0; d < ndim0; d++) n *= s0[d];
    for (int d = 0; d < ndim1; d++) n *= s1[d];
    expect_values(what, t, want, n);
    ck_assert_msg(ag_ndim(t) == ndim0 + ndim1, "%s: ndim %d, want %d", what,
                  ag_ndim(t), ndim0 + ndim1);
    for (int d = 0; d < ndim0; d++) ck_assert_int_eq(ag_shape(t)[d], s0[d]);
    for (int d = 0; d < ndim1; d++)
        ck_assert_int_eq(ag_shape(t)[ndim0 + d], s1[d]);
}

/* Prints the worst relative error of the test's family and resets it. */
static void report_worst(const char *family)
{
    fprintf(stderr, "%s: worst relative error %.3g (tol %g)\n", family,
            worst_error, TOL);
    ck_assert(worst_error <= TOL);
    worst_error = 0;
}

/* ---- the functions of the functional cases, as the fixture lists them */

/* What the "loss" case reads besides its inputs. */
typedef struct {
    ag_tensor *targets; /* AG_I32 (3) */
    ag_tensor *y;       /* (3, 5) */
} loss_data;

/* softmax(tanh(x @ w) + b, 1) / (1 + b^2) */
static ag_tensor *fn_softmax(ag_arena *a, ag_tensor *const *in, int n,
                             void *user)
{
    (void)n, (void)user;
    ag_tensor *s = ag_softmax(
        a, ag_add(a, ag_tanh(a, ag_matmul(a, in[0], in[1])), in[2]), 1);
    return ag_div(a, s, ag_shift(a, ag_pow(a, in[2], 2), 1));
}

/* log_softmax(gelu(z), 1) + log(sigmoid(z)) * exp(bl), z = linear(x, wl, bl)
 */
static ag_tensor *fn_gelu(ag_arena *a, ag_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    ag_tensor *z = ag_linear(a, in[0], in[1], in[2]);
    ag_tensor *ls = ag_log_softmax(a, ag_gelu(a, z), 1);
    return ag_add(a, ls,
                  ag_mul(a, ag_log(a, ag_sigmoid(a, z)), ag_exp(a, in[2])));
}

/* mean((tanh(x @ w) + b)^2) + sum(max(sigmoid(x @ w) * b, 1)) */
static ag_tensor *fn_max(ag_arena *a, ag_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    ag_tensor *xw = ag_matmul(a, in[0], in[1]);
    ag_tensor *sq = ag_pow(a, ag_add(a, ag_tanh(a, xw), in[2]), 2);
    ag_tensor *mx = ag_max(a, ag_mul(a, ag_sigmoid(a, xw), in[2]), 1, false);
    return ag_add(a, ag_mean(a, sq, AG_ALL, false),
                  ag_sum(a, mx, AG_ALL, false));
}

/* cross_entropy(gelu(z), targets) + mse_loss(sigmoid(z), y)
 * + mean(log(1 + x^2)), z = linear(x, wl, bl) */
static ag_tensor *fn_loss(ag_arena *a, ag_tensor *const *in, int n, void *user)
{
    (void)n;
    const loss_data *d = user;
    ag_tensor *z = ag_linear(a, in[0], in[1], in[2]);
    ag_tensor *ce = ag_softmax_cross_entropy(a, ag_gelu(a, z), d->targets);
    ag_tensor *mse = ag_mse_loss(a, ag_sigmoid(a, z), d->y);
    ag_tensor *reg = ag_mean(a, ag_log(a, ag_shift(a, ag_pow(a, in[0], 2), 1)),
                             AG_ALL, false);
    return ag_add(a, ag_add(a, ce, mse), reg);
}

/* sum(p^3 * log(q)) / (1 + mean(exp(p))) + sum(mean(p, 0) * q^2) */
static ag_tensor *fn_pow(ag_arena *a, ag_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    ag_tensor *num = ag_sum(a, ag_mul(a, ag_pow(a, in[0], 3), ag_log(a, in[1])),
                            AG_ALL, false);
    ag_tensor *den =
        ag_shift(a, ag_mean(a, ag_exp(a, in[0]), AG_ALL, false), 1);
    ag_tensor *lin =
        ag_sum(a, ag_mul(a, ag_mean(a, in[0], 0, false), ag_pow(a, in[1], 2)),
               AG_ALL, false);
    return ag_add(a, ag_div(a, num, den), lin);
}

/* The functions of ho_cases, in its order. */
static const ag_fn case_fns[HO_N_CASES] = {fn_softmax, fn_gelu, fn_max, fn_loss,
                                           fn_pow};

/* A functional case's inputs (needing no gradient) and user data in `a`. */
typedef struct {
    const ho_case *c;
    ag_fn f;
    ag_tensor *in[HO_MAX_IN];
    loss_data user;
} case_setup;

static case_setup setup_case(ag_arena *a, int k)
{
    case_setup s = {.c = &ho_cases[k], .f = case_fns[k]};
    for (int i = 0; i < s.c->n; i++)
        s.in[i] =
            f64_of(a, s.c->in[i].ndim, s.c->in[i].shape, s.c->in[i].value);
    const int64_t n[1] = {3}, ny[2] = {3, 5};
    s.user.targets = must(ag_from_data(a, AG_I32, 1, n, ho_targets), "targets");
    s.user.y = f64_of(a, 2, ny, ho_y);
    return s;
}

/* v[i] for each input of s from vals[i], in `a`. */
static void per_input(ag_arena *a, const case_setup *s,
                      const double *const *vals, ag_tensor **v)
{
    for (int i = 0; i < s->c->n; i++)
        v[i] = f64_of(a, s->c->in[i].ndim, s->c->in[i].shape, vals[i]);
}

/* f's output (compared with torch's) from the functional call that gave it. */
static void expect_output(const case_setup *s, const char *call, ag_tensor *y)
{
    char what[64];
    snprintf(what, sizeof what, "%s %s output", s->c->name, call);
    expect_result(what, y, s->c->out, s->c->out_ndim, s->c->out_shape, 0, NULL);
}

/* got[i] for each input i of s against want[i], of the shape of the
 * ndim0 sizes of s0 followed by input i's; `call` names them. */
static void expect_per_input(const case_setup *s, const char *call,
                             ag_tensor *const *got, const double *const *want,
                             int ndim0, const int64_t *s0)
{
    for (int i = 0; i < s->c->n; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s %s %s", s->c->name, call,
                 s->c->in[i].name);
        expect_result(what, got[i], want[i], ndim0, s0, s->c->in[i].ndim,
                      s->c->in[i].shape);
    }
}

/* ---- the functional API against torch.autograd.functional ---- */

START_TEST(test_jacobian)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < HO_N_CASES; k++) {
        case_setup s = setup_case(a, k);
        ag_tensor *jac[HO_MAX_IN];
        must_ok(ag_jacobian(a, s.f, s.c->n, s.in, &s.user, jac), "ag_jacobian");
        expect_per_input(&s, "jacobian", jac, s.c->jac, s.c->out_ndim,
                         s.c->out_shape);
    }
    report_worst("jacobian");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_vjp)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < HO_N_CASES; k++) {
        case_setup s = setup_case(a, k);
        ag_tensor *v = f64_of(a, s.c->out_ndim, s.c->out_shape, s.c->vjp_v);
        ag_tensor *y = NULL, *vjp[HO_MAX_IN];
        must_ok(ag_vjp(a, s.f, s.c->n, s.in, &s.user, v, &y, vjp), "ag_vjp");
        expect_output(&s, "vjp", y);
        expect_per_input(&s, "vjp", vjp, s.c->vjp, 0, NULL);
    }
    report_worst("vjp");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_jvp)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < HO_N_CASES; k++) {
        case_setup s = setup_case(a, k);
        ag_tensor *v[HO_MAX_IN], *y = NULL, *jvp = NULL;
        per_input(a, &s, s.c->jvp_v, v);
        must_ok(ag_jvp(a, s.f, s.c->n, s.in, &s.user, v, &y, &jvp), "ag_jvp");
        expect_output(&s, "jvp", y);
        char what[64];
        snprintf(what, sizeof what, "%s jvp", s.c->name);
        expect_result(what, jvp, s.c->jvp, s.c->out_ndim, s.c->out_shape, 0,
                      NULL);
    }
    report_worst("jvp");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_hvp)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < HO_N_CASES; k++) {
        if (!ho_cases[k].scalar) continue;
        case_setup s = setup_case(a, k);
        ag_tensor *v[HO_MAX_IN], *y = NULL, *hvp[HO_MAX_IN];
        per_input(a, &s, s.c->hvp_v, v);
        must_ok(ag_hvp(a, s.f, s.c->n, s.in, &s.user, v, &y, hvp), "ag_hvp");
        expect_output(&s, "hvp", y);
        expect_per_input(&s, "hvp", hvp, s.c->hvp, 0, NULL);
    }
    report_worst("hvp");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_hessian)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < HO_N_CASES; k++) {
        if (!ho_cases[k].scalar) continue;
        case_setup s = setup_case(a, k);
        int n = s.c->n;
        ag_tensor *h[HO_MAX_IN * HO_MAX_IN];
        must_ok(ag_hessian(a, s.f, n, s.in, &s.user, h), "ag_hessian");
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                char what[64];
                snprintf(what, sizeof what, "%s hessian %s %s", s.c->name,
                         s.c->in[i].name, s.c->in[j].name);
                expect_result(what, h[i * n + j], s.c->hess[i * n + j],
                              s.c->in[i].ndim, s.c->in[i].shape,
                              s.c->in[j].ndim, s.c->in[j].shape);
            }
    }
    report_worst("hessian");
    ag_arena_free(a);
}
END_TEST

/* ---- forward mode against torch.autograd.forward_ad ---- */

START_TEST(test_forward_ad_mlp)
{
    ag_arena *a = ag_arena_new();
    static const int64_t shapes[5][2] = {{4, 3}, {5, 3}, {5}, {2, 5}, {2}};
    static const int ndims[5] = {2, 2, 1, 2, 1};
    const double *vals[5] = {fw_x, fw_w1, fw_b1, fw_w2, fw_b2};
    const double *tans[5] = {fw_x_t, fw_w1_t, fw_b1_t, fw_w2_t, fw_b2_t};
    ag_tensor *d[5];
    for (int i = 0; i < 5; i++) {
        ag_tensor *p = f64_of(a, ndims[i], shapes[i], vals[i]);
        ag_tensor *t = f64_of(a, ndims[i], shapes[i], tans[i]);
        d[i] = must(ag_make_dual(a, p, t), "ag_make_dual");
        ck_assert_ptr_null(ag_tangent(p));
        expect_values("dual tangent", ag_tangent(d[i]), tans[i], ag_numel(p));
    }
    ag_tensor *z =
        ag_linear(a, ag_tanh(a, ag_linear(a, d[0], d[1], d[2])), d[3], d[4]);
    ag_tensor *out = must(ag_log_softmax(a, ag_gelu(a, z), 1), "mlp");
    expect_values("mlp output", out, fw_out, 8);
    expect_values("mlp output tangent", ag_tangent(out), fw_out_t, 8);

    const int64_t n[1] = {4}, ny[2] = {4, 2};
    ag_tensor *targets = must(ag_from_data(a, AG_I32, 1, n, fw_targets), "t");
    ag_tensor *y = f64_of(a, 2, ny, fw_y);
    ag_tensor *loss = must(ag_add(a, ag_softmax_cross_entropy(a, z, targets),
                                  ag_mse_loss(a, ag_softmax(a, z, 1), y)),
                           "mlp loss");
    expect_values("mlp loss", loss, &fw_loss, 1);
    expect_values("mlp loss tangent", ag_tangent(loss), &fw_loss_t, 1);
    /* Forward mode records no graph: the duals require no gradient. */
    ck_assert(!ag_is_requires_grad(loss));
    report_worst("forward_ad");
    ag_arena_free(a);
}
END_TEST

/* ---- a PINN loss against nested torch.autograd.grad ---- */

/* u(x) = linear(tanh(linear(tanh(linear(x, w1, b1)), w2, b2)), w3, b3) */
static ag_tensor *pinn_net(ag_arena *a, ag_tensor *x, ag_tensor *const *p)
{
    ag_tensor *h = ag_tanh(a, ag_linear(a, x, p[0], p[1]));
    h = ag_tanh(a, ag_linear(a, h, p[2], p[3]));
    return ag_linear(a, h, p[4], p[5]);
}

START_TEST(test_pinn)
{
    ag_arena *a = ag_arena_new();
    static const int64_t shapes[6][2] = {
        {PINN_H, 1}, {PINN_H}, {PINN_H, PINN_H}, {PINN_H}, {1, PINN_H}, {1}};
    static const int ndims[6] = {2, 1, 2, 1, 2, 1};
    const double *vals[6] = {pinn_w1, pinn_b1, pinn_w2,
                             pinn_b2, pinn_w3, pinn_b3};
    const double *want[6] = {pinn_grad_w1, pinn_grad_b1, pinn_grad_w2,
                             pinn_grad_b2, pinn_grad_w3, pinn_grad_b3};
    ag_tensor *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = f64_of(a, ndims[i], shapes[i], vals[i]);
        ag_requires_grad(p[i], true);
    }
    const int64_t sx[2] = {PINN_N, 1}, sb[2] = {2, 1};
    ag_tensor *x = f64_of(a, 2, sx, pinn_x);
    ag_requires_grad(x, true);
    ag_tensor *forcing = f64_of(a, 2, sx, pinn_forcing);
    ag_tensor *ones = ones_col(a, PINN_N);

    ag_tensor *u = must(pinn_net(a, x, p), "u");
    expect_values("u", u, pinn_u, PINN_N);
    ag_tensor *ux, *uxx;
    must_ok(ag_gradients(a, 1, &u, &ones, 1, &x, true, &ux), "u_x");
    ck_assert(ag_is_requires_grad(ux));
    must_ok(ag_gradients(a, 1, &ux, &ones, 1, &x, true, &uxx), "u_xx");
    expect_values("u_xx", uxx, pinn_uxx, PINN_N);

    const double ends[2] = {0.0, 1.0};
    ag_tensor *ub = pinn_net(a, f64_of(a, 2, sb, ends), p);
    ag_tensor *res = ag_pow(a, ag_add(a, uxx, forcing), 2);
    ag_tensor *loss = must(ag_add(a, ag_mean(a, res, AG_ALL, false),
                                  ag_sum(a, ag_pow(a, ub, 2), AG_ALL, false)),
                           "pinn loss");
    expect_values("pinn loss", loss, &pinn_loss, 1);

    ag_tensor *g[6];
    must_ok(ag_gradients(a, 1, &loss, NULL, 6, p, false, g), "d loss / d w");
    for (int i = 0; i < 6; i++) {
        ck_assert_ptr_null(ag_grad(p[i]));
        expect_values("pinn ag_gradients", g[i], want[i], ag_numel(p[i]));
    }
    must_ok(ag_backward(loss), "ag_backward(pinn loss)");
    for (int i = 0; i < 6; i++)
        expect_values("pinn ag_backward", ag_grad(p[i]), want[i],
                      ag_numel(p[i]));
    report_worst("pinn");
    ag_arena_free(a);
}
END_TEST

/* ---- third derivatives against closed forms ---- */

#define N_POINTS 6
static const double points[N_POINTS] = {-1.5, -0.7, -0.2, 0.3, 0.9, 1.6};

/* The first, second and third derivatives of sum(f(x)) by three nested
 * ag_gradients (the third through ag_backward when `last_by_backward`),
 * checked against want(x, order). */
static void expect_third(ag_tensor *(*f)(ag_arena *, ag_tensor *),
                         double (*want)(double, int), bool last_by_backward,
                         const char *name)
{
    ag_arena *a = ag_arena_new();
    const int64_t n[1] = {N_POINTS};
    ag_tensor *x = f64_of(a, 1, n, points);
    ag_requires_grad(x, true);
    ag_tensor *ones = must(ag_ones(a, AG_F64, 1, n), "ag_ones");
    ag_tensor *y = ag_sum(a, f(a, x), AG_ALL, false);
    ag_tensor *d[3];
    must_ok(ag_gradients(a, 1, &y, NULL, 1, &x, true, &d[0]), "first");
    must_ok(ag_gradients(a, 1, &d[0], &ones, 1, &x, true, &d[1]), "second");
    if (last_by_backward) {
        must_ok(ag_backward(ag_sum(a, d[1], AG_ALL, false)), "ag_backward");
        d[2] = ag_grad(x);
    } else {
        must_ok(ag_gradients(a, 1, &d[1], &ones, 1, &x, false, &d[2]), "third");
    }
    for (int k = 0; k < 3; k++) {
        double w[N_POINTS];
        for (int i = 0; i < N_POINTS; i++) w[i] = want(points[i], k + 1);
        char what[64];
        snprintf(what, sizeof what, "d%d/dx%d sum(%s)", k + 1, k + 1, name);
        expect_values(what, d[k], w, N_POINTS);
    }
    ag_arena_free(a);
}

static ag_tensor *op_tanh(ag_arena *a, ag_tensor *x)
{
    return ag_tanh(a, x);
}

/* tanh' = 1 - t^2, tanh'' = -2t (1 - t^2), tanh''' = (6t^2 - 2)(1 - t^2) */
static double tanh_derivative(double x, int order)
{
    double t = tanh(x), s = 1 - t * t;
    return order == 1 ? s : order == 2 ? -2 * t * s : (6 * t * t - 2) * s;
}

static ag_tensor *op_pow5(ag_arena *a, ag_tensor *x)
{
    return ag_pow(a, x, 5);
}

/* (x^5)' = 5x^4, '' = 20x^3, ''' = 60x^2 */
static double pow5_derivative(double x, int order)
{
    return order == 1   ? 5 * pow(x, 4)
           : order == 2 ? 20 * pow(x, 3)
                        : 60 * x * x;
}

START_TEST(test_third_derivative)
{
    expect_third(op_tanh, tanh_derivative, false, "tanh(x)");
    expect_third(op_pow5, pow5_derivative, true, "x^5");
    report_worst("third derivative");
}
END_TEST

/* ---- ag_gradients and the functional API leave ag_grad alone ---- */

static ag_tensor *fn_tanh_product(ag_arena *a, ag_tensor *const *in, int n,
                                  void *user)
{
    (void)n, (void)user;
    return ag_sum(a, ag_tanh(a, ag_matmul(a, in[0], in[1])), AG_ALL, false);
}

START_TEST(test_leaves_untouched)
{
    ag_arena *a = ag_arena_new();
    const int64_t sx[2] = {2, 3}, sw[2] = {3, 2};
    const double xv[6] = {0.5, -1, 0.25, 2, -0.75, 1.5};
    const double wv[6] = {1, -0.5, 0.3, 0.8, -1.2, 0.1};
    ag_tensor *in[2] = {f64_of(a, 2, sx, xv), f64_of(a, 2, sw, wv)};
    ag_requires_grad(in[0], true);
    ag_requires_grad(in[1], true);
    /* w gets a gradient, 2w; x none. */
    must_ok(ag_backward(ag_sum(a, ag_pow(a, in[1], 2), AG_ALL, false)),
            "ag_backward");
    double gw[6];
    for (int i = 0; i < 6; i++) gw[i] = 2 * wv[i];
    expect_values("w's gradient", ag_grad(in[1]), gw, 6);
    ag_tensor *g_before = ag_grad(in[1]);

    ag_tensor *y = fn_tanh_product(a, in, 2, NULL);
    ag_tensor *g[2], *gg[2];
    for (int create = 0; create <= 1; create++) {
        must_ok(ag_gradients(a, 1, &y, NULL, 2, in, create, g), "ag_gradients");
        ck_assert(fabs(tensor_at(g[0], 0)) > 0);
        ck_assert_int_eq(ag_is_requires_grad(g[0]), create);
    }
    /* A second order through the create_graph result. */
    ag_tensor *s = ag_sum(a, ag_mul(a, g[0], g[0]), AG_ALL, false);
    must_ok(ag_gradients(a, 1, &s, NULL, 2, in, false, gg), "second order");
    ck_assert(fabs(tensor_at(gg[1], 0)) > 0);
    ag_tensor *out[2], *h[4], *v[2] = {in[0], in[1]};
    must_ok(ag_hvp(a, fn_tanh_product, 2, in, NULL, v, NULL, out), "ag_hvp");
    must_ok(ag_hessian(a, fn_tanh_product, 2, in, NULL, h), "ag_hessian");
    must_ok(ag_vjp(a, fn_tanh_product, 2, in, NULL, NULL, NULL, out), "ag_vjp");
    must_ok(ag_jacobian(a, fn_tanh_product, 2, in, NULL, out), "ag_jacobian");

    ck_assert_ptr_null(ag_grad(in[0]));
    ck_assert_ptr_eq(ag_grad(in[1]), g_before);
    expect_values("w's gradient after", ag_grad(in[1]), gw, 6);
    expect_values("x after", in[0], xv, 6);
    report_worst("leaves untouched");
    ag_arena_free(a);
}
END_TEST

/* ---- 1,000 Hessian-vector products in a step arena ---- */

START_TEST(test_hvp_memory_flat)
{
    const int steps = (int)test_size("AG_TEST_HVP_STEPS", 1000);
    const int warm_up = steps < 10 ? steps : 10;
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    const int k = 2; /* the "max" case */
    ck_assert_str_eq(ho_cases[k].name, "max");
    case_setup s = setup_case(a, k);
    ag_tensor *v[HO_MAX_IN];
    per_input(a, &s, s.c->hvp_v, v);
    size_t cap = 0, params_cap = ag_arena_capacity(a);
    for (int it = 0; it < steps; it++) {
        ag_tensor *hvp[HO_MAX_IN];
        must_ok(ag_hvp(step, s.f, s.c->n, s.in, &s.user, v, NULL, hvp),
                "ag_hvp");
        for (int i = 0; i < s.c->n; i++)
            expect_values("hvp in the loop", hvp[i], s.c->hvp[i],
                          ag_numel(s.in[i]));
        ag_arena_reset(step);
        if (it + 1 == warm_up) cap = ag_arena_capacity(step);
        if (it + 1 > warm_up)
            ck_assert_msg(ag_arena_capacity(step) == cap,
                          "step %d: capacity %zu, %zu after warm-up", it,
                          ag_arena_capacity(step), cap);
    }
    ck_assert_uint_gt(cap, 0);
    ck_assert_uint_eq(ag_arena_capacity(a), params_cap);
    report_worst("hvp loop");
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

/* ---- errors ---- */

/* Asserts that `failed` holds and that the message names `func`. */
#define EXPECT_ERROR(failed, func)                                             \
    do {                                                                       \
        ag_clear_error();                                                      \
        ck_assert_msg((failed), "%s did not fail", #failed);                   \
        ck_assert_msg(strstr(ag_last_error(), func ":") != NULL,               \
                      "%s: message \"%s\" does not name %s", #failed,          \
                      ag_last_error(), func);                                  \
    } while (0)

START_TEST(test_bad_tangents)
{
    ag_arena *a = ag_arena_new();
    case_setup s = setup_case(a, 0);
    const int64_t s34[2] = {3, 4}, s43[2] = {4, 3};
    ag_tensor *x = s.in[0];
    ag_tensor *t32 = must(ag_zeros(a, AG_F32, 2, s34), "f32 tangent");
    ag_tensor *t43 = must(ag_zeros(a, AG_F64, 2, s43), "(4,3) tangent");
    EXPECT_ERROR(ag_make_dual(a, x, t32) == NULL, "ag_make_dual");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "f32"));
    EXPECT_ERROR(ag_make_dual(a, x, t43) == NULL, "ag_make_dual");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "(4,3)"));
    ag_tensor *lab = must(ag_zeros(a, AG_I32, 2, s34), "i32");
    EXPECT_ERROR(ag_make_dual(a, lab, lab) == NULL, "ag_make_dual");

    ag_tensor *v[3], *jvp = NULL, *y = NULL;
    per_input(a, &s, s.c->jvp_v, v);
    v[0] = t32;
    EXPECT_ERROR(ag_jvp(a, s.f, 3, s.in, NULL, v, &y, &jvp) != 0, "ag_jvp");
    v[0] = t43;
    EXPECT_ERROR(ag_jvp(a, s.f, 3, s.in, NULL, v, &y, &jvp) != 0, "ag_jvp");
    ag_tensor *hvps[3];
    EXPECT_ERROR(ag_hvp(a, fn_max, 3, s.in, NULL, v, &y, hvps) != 0, "ag_hvp");
    ag_tensor *vjps[3];
    EXPECT_ERROR(ag_vjp(a, s.f, 3, s.in, NULL, t43, &y, vjps) != 0, "ag_vjp");

    /* Nothing changed: the inputs carry no tangent, need no gradient and
     * keep their values. */
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_null(ag_tangent(s.in[i]));
        ck_assert_ptr_null(ag_grad(s.in[i]));
        ck_assert(!ag_is_requires_grad(s.in[i]));
        expect_values("input after", s.in[i], s.c->in[i].value,
                      ag_numel(s.in[i]));
    }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_bad_grad_outputs)
{
    ag_arena *a = ag_arena_new();
    case_setup s = setup_case(a, 0);
    for (int i = 0; i < 3; i++) ag_requires_grad(s.in[i], true);
    ag_tensor *y = must(fn_softmax(a, s.in, 3, NULL), "fn_softmax"); /* (3,5) */
    const int64_t s35[2] = {3, 5};
    ag_tensor *g[3];
    /* An output that depends on nothing requiring a gradient. */
    ag_tensor *c = must(ag_ones(a, AG_F64, 2, s35), "c");
    ag_tensor *flat = must(ag_sum(a, ag_exp(a, c), AG_ALL, false), "flat");
    EXPECT_ERROR(ag_gradients(a, 1, &flat, NULL, 1, &s.in[0], false, g) != 0,
                 "ag_gradients");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "does not depend"));
    /* An input that does not require a gradient. */
    ag_tensor *total = must(ag_sum(a, y, AG_ALL, false), "total");
    EXPECT_ERROR(ag_gradients(a, 1, &total, NULL, 1, &c, false, g) != 0,
                 "ag_gradients");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "does not require"));
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_null(ag_grad(s.in[i]));
        expect_values("input after", s.in[i], s.c->in[i].value,
                      ag_numel(s.in[i]));
    }
    ck_assert_ptr_null(ag_grad(y));

    /* ag_hessian and ag_hvp need an f of one element. */
    ag_tensor *h[9], *v[3];
    per_input(a, &s, s.c->jvp_v, v);
    EXPECT_ERROR(ag_hessian(a, fn_softmax, 3, s.in, NULL, h) != 0,
                 "ag_hessian");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "one element"));
    EXPECT_ERROR(ag_hvp(a, fn_softmax, 3, s.in, NULL, v, NULL, h) != 0,
                 "ag_hvp");
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "one element"));
    /* ag_vjp needs v for an output of more than one element. */
    EXPECT_ERROR(ag_vjp(a, fn_softmax, 3, s.in, NULL, NULL, NULL, h) != 0,
                 "ag_vjp");
    for (int i = 0; i < 3; i++) ck_assert_ptr_null(ag_grad(s.in[i]));
    ag_arena_free(a);
}
END_TEST

/* The loss of ag_gradcheck_params' NULL checks: sum of the set's "w". */
static ag_tensor *params_loss(ag_arena *a, void *user)
{
    return ag_sum(a, ag_params_find(user, "w"), AG_ALL, false);
}

START_TEST(test_nulls)
{
    ag_arena *a = ag_arena_new();
    case_setup s = setup_case(a, 2);
    ag_tensor *x = s.in[0], *in[3] = {s.in[0], s.in[1], s.in[2]};
    ag_tensor *v[3], *r[9], *y = NULL;
    per_input(a, &s, s.c->hvp_v, v);
    ag_requires_grad(x, true);
    ag_tensor *out = must(ag_sum(a, ag_tanh(a, x), AG_ALL, false), "out");
    ag_tensor *with_null[3] = {in[0], NULL, in[2]};

    /* ag_make_dual, ag_tangent */
    EXPECT_ERROR(!ag_make_dual(NULL, x, x), "ag_make_dual");
    EXPECT_ERROR(!ag_make_dual(a, NULL, x), "ag_make_dual");
    EXPECT_ERROR(!ag_make_dual(a, x, NULL), "ag_make_dual");
    ck_assert_ptr_null(ag_tangent(NULL));

    /* ag_gradients */
    EXPECT_ERROR(ag_gradients(NULL, 1, &out, NULL, 1, &x, false, r),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 1, NULL, NULL, 1, &x, false, r),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 1, with_null + 1, NULL, 1, &x, false, r),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 1, &out, NULL, 1, NULL, false, r),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 1, &out, NULL, 3, with_null, false, r),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 1, &out, NULL, 1, &x, false, NULL),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 0, &out, NULL, 1, &x, false, r),
                 "ag_gradients");
    EXPECT_ERROR(ag_gradients(a, 1, &out, NULL, 0, &x, false, r),
                 "ag_gradients");
    ck_assert_ptr_null(ag_grad(x));
    ag_requires_grad(x, false);

    /* The functional API: arena, f, inputs, an input, v, results. */
    loss_data *u = &s.user;
    ag_fn f = fn_max;
    EXPECT_ERROR(ag_vjp(NULL, f, 3, in, u, NULL, &y, r), "ag_vjp");
    EXPECT_ERROR(ag_vjp(a, NULL, 3, in, u, NULL, &y, r), "ag_vjp");
    EXPECT_ERROR(ag_vjp(a, f, 3, NULL, u, NULL, &y, r), "ag_vjp");
    EXPECT_ERROR(ag_vjp(a, f, 3, with_null, u, NULL, &y, r), "ag_vjp");
    EXPECT_ERROR(ag_vjp(a, f, 3, in, u, NULL, &y, NULL), "ag_vjp");
    EXPECT_ERROR(ag_vjp(a, f, 0, in, u, NULL, &y, r), "ag_vjp");
    EXPECT_ERROR(ag_jvp(NULL, f, 3, in, u, v, &y, r), "ag_jvp");
    EXPECT_ERROR(ag_jvp(a, NULL, 3, in, u, v, &y, r), "ag_jvp");
    EXPECT_ERROR(ag_jvp(a, f, 3, NULL, u, v, &y, r), "ag_jvp");
    EXPECT_ERROR(ag_jvp(a, f, 3, with_null, u, v, &y, r), "ag_jvp");
    EXPECT_ERROR(ag_jvp(a, f, 3, in, u, NULL, &y, r), "ag_jvp");
    EXPECT_ERROR(ag_jvp(a, f, 3, in, u, v, &y, NULL), "ag_jvp");
    EXPECT_ERROR(ag_hvp(NULL, f, 3, in, u, v, &y, r), "ag_hvp");
    EXPECT_ERROR(ag_hvp(a, NULL, 3, in, u, v, &y, r), "ag_hvp");
    EXPECT_ERROR(ag_hvp(a, f, 3, NULL, u, v, &y, r), "ag_hvp");
    EXPECT_ERROR(ag_hvp(a, f, 3, with_null, u, v, &y, r), "ag_hvp");
    EXPECT_ERROR(ag_hvp(a, f, 3, in, u, NULL, &y, r), "ag_hvp");
    EXPECT_ERROR(ag_hvp(a, f, 3, in, u, v, &y, NULL), "ag_hvp");
    EXPECT_ERROR(ag_jacobian(NULL, f, 3, in, u, r), "ag_jacobian");
    EXPECT_ERROR(ag_jacobian(a, NULL, 3, in, u, r), "ag_jacobian");
    EXPECT_ERROR(ag_jacobian(a, f, 3, NULL, u, r), "ag_jacobian");
    EXPECT_ERROR(ag_jacobian(a, f, 3, with_null, u, r), "ag_jacobian");
    EXPECT_ERROR(ag_jacobian(a, f, 3, in, u, NULL), "ag_jacobian");
    EXPECT_ERROR(ag_hessian(NULL, f, 3, in, u, r), "ag_hessian");
    EXPECT_ERROR(ag_hessian(a, NULL, 3, in, u, r), "ag_hessian");
    EXPECT_ERROR(ag_hessian(a, f, 3, NULL, u, r), "ag_hessian");
    EXPECT_ERROR(ag_hessian(a, f, 3, with_null, u, r), "ag_hessian");
    EXPECT_ERROR(ag_hessian(a, f, 3, in, u, NULL), "ag_hessian");

    /* The checkers. */
    ag_requires_grad(x, true);
    EXPECT_ERROR(ag_gradgradcheck(NULL, 3, in, u, NULL, NULL) < 0,
                 "ag_gradgradcheck");
    EXPECT_ERROR(ag_gradgradcheck(f, 3, NULL, u, NULL, NULL) < 0,
                 "ag_gradgradcheck");
    EXPECT_ERROR(ag_gradgradcheck(f, 3, with_null, u, NULL, NULL) < 0,
                 "ag_gradgradcheck");
    ag_params *ps = ag_params_new(a);
    ck_assert_ptr_nonnull(ps);
    must_ok(ag_params_add(ps, "w", x), "ag_params_add");
    EXPECT_ERROR(ag_gradcheck_params(NULL, ps, ps, NULL, NULL) < 0,
                 "ag_gradcheck_params");
    EXPECT_ERROR(ag_gradcheck_params(params_loss, ps, NULL, NULL, NULL) < 0,
                 "ag_gradcheck_params");

    /* ag_cast, ag_expand */
    const int64_t shape[3] = {2, 3, 4};
    EXPECT_ERROR(!ag_cast(NULL, x, AG_F32), "ag_cast");
    EXPECT_ERROR(!ag_cast(a, NULL, AG_F32), "ag_cast");
    EXPECT_ERROR(!ag_expand(NULL, x, 3, shape), "ag_expand");
    EXPECT_ERROR(!ag_expand(a, NULL, 3, shape), "ag_expand");
    EXPECT_ERROR(!ag_expand(a, x, 3, NULL), "ag_expand");

    ck_assert_ptr_null(ag_grad(x));
    ck_assert_ptr_null(ag_tangent(x));
    expect_values("x after", x, s.c->in[0].value, 12);
    ag_arena_free(a);
}
END_TEST

/* Library problem (lib/graph.c, check_gradients_args): the messages for
 * a missing or mismatched grad_output print the output's shape from a
 * buffer that was never filled (Valgrind: "Conditional jump or move
 * depends on uninitialised value(s)" in ag__error), so the shape is blank
 * or garbage; and these argument errors leave grads[] as it was, while
 * autograd.h promises grads[] set to NULL. */
START_TEST(test_grad_output_errors)
{
    ag_arena *a = ag_arena_new();
    case_setup s = setup_case(a, 0);
    for (int i = 0; i < 3; i++) ag_requires_grad(s.in[i], true);
    ag_tensor *y = must(fn_softmax(a, s.in, 3, NULL), "fn_softmax"); /* (3,5) */
    const int64_t s35[2] = {3, 5}, s53[2] = {5, 3};
    ag_tensor *wrong = must(ag_ones(a, AG_F64, 2, s53), "(5,3)");
    ag_tensor *f32 = must(ag_ones(a, AG_F32, 2, s35), "f32");
    ag_tensor *none[1] = {NULL};
    struct {
        ag_tensor *const *grad_outputs;
        bool create_graph;
        const char *named; /* besides the output's shape */
    } bad[4] = {{NULL, false, "missing"},
                {none, true, "missing"},
                {&wrong, false, "(5,3)"},
                {&f32, false, "f32"}};
    for (int k = 0; k < 4; k++) {
        ag_tensor *g[3] = {y, y, y};
        EXPECT_ERROR(ag_gradients(a, 1, &y, bad[k].grad_outputs, 3, s.in,
                                  bad[k].create_graph, g) != 0,
                     "ag_gradients");
        const char *msg = ag_last_error();
        ck_assert_msg(strstr(msg, bad[k].named), "case %d: \"%s\"", k, msg);
        ck_assert_msg(strstr(msg, "(3,5)"),
                      "case %d: the message does not name the output's shape "
                      "(3,5): \"%s\"",
                      k, msg);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(g[i] == NULL, "case %d: grads[%d] not set to NULL", k,
                          i);
        for (int i = 0; i < 3; i++) ck_assert_ptr_null(ag_grad(s.in[i]));
    }
    ag_arena_free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("higher_order_torch");
    TCase *tc = tcase_create("functional");
    tcase_add_test(tc, test_jacobian);
    tcase_add_test(tc, test_vjp);
    tcase_add_test(tc, test_jvp);
    tcase_add_test(tc, test_hvp);
    tcase_add_test(tc, test_hessian);
    suite_add_tcase(s, tc);
    tc = tcase_create("nested");
    tcase_add_test(tc, test_forward_ad_mlp);
    tcase_add_test(tc, test_pinn);
    tcase_add_test(tc, test_third_derivative);
    tcase_add_test(tc, test_leaves_untouched);
    tcase_add_test(tc, test_hvp_memory_flat);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, test_bad_tangents);
    tcase_add_test(tc, test_bad_grad_outputs);
    tcase_add_test(tc, test_nulls);
    suite_add_tcase(s, tc);
    tc = tcase_create("library_bugs");
    tcase_add_test(tc, test_grad_output_errors);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
