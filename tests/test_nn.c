/* test_nn.c: the nn layer and the ops it is built on, for values,
 * semantics and errors (their gradients are checked in gradcheck.c):
 * parameter sets, the initialisers, ag_linear against the unfused
 * matmul + transpose + add graph, Linear layers, ag_activate, MLPs (names,
 * forward against a hand-built graph, dropout in training and evaluation
 * mode, seeds), agreement with PyTorch (fixtures/nn_torch.h, made by
 * fixtures/make_nn_fixture.py), ag_gelu, ag_leaky_relu (and its gradient
 * at 0), ag_argmax and ag_dropout; ag_linear with frozen inputs and sizes
 * past BLAS's int. */
#include <autograd.h>

#include "fixtures/nn_torch.h"
#include "support.h"
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* A shape literal and its number of dimensions. */
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* Ends the list of expected substrings of expect_err. */
#define END ((const char *)NULL)

/* `call` returns NULL (EXPECT_NULL) or -1 (EXPECT_FAIL), and the message
 * holds every further string. The error is cleared first. */
#define EXPECT_NULL(call, ...)                                                 \
    expect_err(__LINE__, #call, (ag_clear_error(), (call)) == NULL,            \
               __VA_ARGS__, END)
#define EXPECT_FAIL(call, ...)                                                 \
    expect_err(__LINE__, #call, (ag_clear_error(), (call)) == -1, __VA_ARGS__, \
               END)

static void expect_err(int line, const char *what, int failed, ...)
{
    const char *msg = ag_last_error();
    ck_assert_msg(failed, "line %d: %s did not fail (message \"%s\")", line,
                  what, msg);
    va_list ap;
    va_start(ap, failed);
    for (const char *s = va_arg(ap, const char *); s;
         s = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, s),
                      "line %d: %s: message \"%s\" lacks \"%s\"", line, what,
                      msg, s);
    va_end(ap);
}

/* Fails the test with the library's message when `t` is NULL. */
static ag_tensor *must(ag_tensor *t, const char *what)
{
    if (!t) ck_abort_msg("%s returned NULL: %s", what, ag_last_error());
    return t;
}

/* A float tensor whose element i is scale * sin(0.37 i + phase) + shift:
 * distinct, deterministic values of both signs. */
static ag_tensor *wave(ag_arena *a, ag_dtype dt, int ndim, const int64_t *shape,
                       double phase)
{
    ag_tensor *t = must(ag_zeros(a, dt, ndim, shape), "ag_zeros");
    for (int64_t i = 0; i < ag_numel(t); i++)
        tensor_set(t, i, 1.3 * sin(0.37 * (double)i + phase) + 0.1);
    return t;
}
#define WAVE(a, dt, phase, ...)                                                \
    wave(a, dt, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), phase)

/* Asserts that t is non-NULL with dtype dt and the given shape. */
static void expect_shape(const ag_tensor *t, ag_dtype dt, int ndim,
                         const int64_t *shape)
{
    ck_assert_msg(t != NULL, "NULL tensor: %s", ag_last_error());
    ck_assert_int_eq(ag_type(t), dt);
    ck_assert_int_eq(ag_ndim(t), ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(ag_shape(t)[d], shape[d]);
}
#define EXPECT_SHAPE(t, dt, ...)                                               \
    expect_shape(t, dt, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))

/* |got - want| <= tol * max(1, |want|); false for NaN. */
static bool close_enough(double got, double want, double tol)
{
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

/* Asserts that `got` has the dtype and shape of `want` and the same values
 * within relative tolerance tol (0: exactly equal). */
static void expect_close(const char *what, const ag_tensor *got,
                         const ag_tensor *want, double tol)
{
    ck_assert_msg(got && want, "%s: NULL tensor: %s", what, ag_last_error());
    expect_shape(got, ag_type(want), ag_ndim(want), ag_shape(want));
    for (int64_t i = 0; i < ag_numel(want); i++) {
        double g = tensor_at(got, i), w = tensor_at(want, i);
        if (!(tol == 0 ? g == w : close_enough(g, w, tol)))
            ck_abort_msg("%s[%lld]: got %.17g, want %.17g (diff %.3g)", what,
                         (long long)i, g, w, g - w);
    }
}

/* Asserts that t's elements equal want[] within relative tolerance tol. */
static void expect_values(const char *what, const ag_tensor *t,
                          const double *want, int64_t n, double tol)
{
    ck_assert_msg(t != NULL, "%s: NULL tensor: %s", what, ag_last_error());
    ck_assert_int_eq(ag_numel(t), n);
    for (int64_t i = 0; i < n; i++)
        if (!close_enough(tensor_at(t, i), want[i], tol))
            ck_abort_msg("%s[%lld]: got %.17g, want %.17g (diff %.3g)", what,
                         (long long)i, tensor_at(t, i), want[i],
                         tensor_at(t, i) - want[i]);
}

/* The tolerance for comparing two computations of one value. */
static double tol_of(ag_dtype dt)
{
    return dt == AG_F64 ? 1e-12 : 1e-5;
}

/* sum(y * c) for a fixed wave c of y's shape: a scalar loss whose gradient
 * with respect to y is c, so that every element of y matters. */
static ag_tensor *weighted_sum(ag_arena *a, ag_tensor *y)
{
    ag_tensor *c = wave(a, ag_type(y), ag_ndim(y), ag_shape(y), 0.5);
    return must(ag_sum(a, must(ag_mul(a, y, c), "ag_mul"), AG_ALL, false),
                "ag_sum");
}

/* Runs ag_backward and fails the test with its message on error. */
static void backward(ag_tensor *loss)
{
    ck_assert_msg(ag_backward(loss) == 0, "ag_backward: %s", ag_last_error());
}

/* Max |v|, mean and standard deviation of t's elements. */
typedef struct {
    double max_abs, min, max, mean, std;
} stats;

static stats stats_of(const ag_tensor *t)
{
    ck_assert_ptr_nonnull(t);
    stats s = {0, INFINITY, -INFINITY, 0, 0};
    int64_t n = ag_numel(t);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = tensor_at(t, i);
        s.max_abs = fmax(s.max_abs, fabs(v));
        s.min = fmin(s.min, v);
        s.max = fmax(s.max, v);
        sum += v;
    }
    s.mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = tensor_at(t, i) - s.mean;
        sq += d * d;
    }
    s.std = sqrt(sq / (double)n);
    return s;
}

/* Whether a and b hold the same values (same numel assumed). */
static bool same_values(const ag_tensor *a, const ag_tensor *b)
{
    for (int64_t i = 0; i < ag_numel(a); i++)
        if (tensor_at(a, i) != tensor_at(b, i)) return false;
    return true;
}

static const ag_dtype float_types[] = {AG_F32, AG_F64};

/* ------------------------------------------------------------------ */
/* Parameter sets                                                      */
/* ------------------------------------------------------------------ */

START_TEST(test_params_add_find)
{
    ag_arena *a = ag_arena_new();
    ag_params *p = ag_params_new(a);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(ag_params_count(p), 0);
    ck_assert_int_eq(ag_params_numel(p), 0);
    ag_tensor *w = ag_zeros(a, AG_F32, 2, SHAPE(3, 4));
    ag_tensor *b = ag_zeros(a, AG_F64, 1, SHAPE(3));
    ag_tensor *s = ag_zeros(a, AG_F32, 0, NULL);
    ck_assert_int_eq(ag_params_add(p, "weight", w), 0);
    ck_assert_int_eq(ag_params_add(p, "bias", b), 0);
    ck_assert_int_eq(ag_params_add(p, "scale", s), 0);
    ck_assert_int_eq(ag_params_count(p), 3);
    ck_assert_int_eq(ag_params_numel(p), 12 + 3 + 1);
    const char *names[] = {"weight", "bias", "scale"};
    ag_tensor *tensors[] = {w, b, s};
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(ag_params_name(p, i), names[i]);
        ck_assert_ptr_eq(ag_params_tensor(p, i), tensors[i]);
        ck_assert_ptr_eq(ag_params_find(p, names[i]), tensors[i]);
    }
    /* The name is copied: changing the caller's buffer changes nothing. */
    ag_tensor *g = ag_zeros(a, AG_F32, 1, SHAPE(2));
    char buf[16] = "gain";
    ck_assert_int_eq(ag_params_add(p, buf, g), 0);
    strcpy(buf, "xxxx");
    ck_assert_str_eq(ag_params_name(p, 3), "gain");
    ck_assert_ptr_eq(ag_params_find(p, "gain"), g);
    ck_assert_int_eq(ag_params_numel(p), 12 + 3 + 1 + 2);
    /* Missing names and out-of-range indices give NULL without an error. */
    ag_clear_error();
    ck_assert_ptr_null(ag_params_find(p, "Weight"));
    ck_assert_ptr_null(ag_params_find(p, "weigh"));
    ck_assert_ptr_null(ag_params_find(p, ""));
    ck_assert_ptr_null(ag_params_find(p, NULL));
    ck_assert_ptr_null(ag_params_name(p, -1));
    ck_assert_ptr_null(ag_params_name(p, 4));
    ck_assert_ptr_null(ag_params_tensor(p, -1));
    ck_assert_ptr_null(ag_params_tensor(p, 4));
    ck_assert_str_eq(ag_last_error(), "");
    /* NULL sets. */
    ck_assert_int_eq(ag_params_count(NULL), 0);
    ck_assert_int_eq(ag_params_numel(NULL), 0);
    ck_assert_ptr_null(ag_params_find(NULL, "weight"));
    ck_assert_ptr_null(ag_params_name(NULL, 0));
    ck_assert_ptr_null(ag_params_tensor(NULL, 0));
    ag_params_requires_grad(NULL, true);
    ag_params_zero_grad(NULL);
    EXPECT_NULL(ag_params_new(NULL), "ag_params_new", "arena");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_params_growth)
{
    /* Past the first 16 entries the array grows; order and lookup hold. */
    enum { N = 70 };
    ag_arena *a = ag_arena_new();
    ag_params *p = ag_params_new(a);
    ag_tensor *t[N];
    int64_t numel = 0;
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "block.%d.w", i);
        t[i] = ag_zeros(a, i % 2 ? AG_F64 : AG_F32, 1, SHAPE(i + 1));
        numel += i + 1;
        ck_assert_int_eq(ag_params_add(p, name, t[i]), 0);
        ck_assert_int_eq(ag_params_count(p), i + 1);
    }
    ck_assert_int_eq(ag_params_numel(p), numel);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "block.%d.w", i);
        ck_assert_str_eq(ag_params_name(p, i), name);
        ck_assert_ptr_eq(ag_params_tensor(p, i), t[i]);
        ck_assert_ptr_eq(ag_params_find(p, name), t[i]);
    }
    /* A duplicate of an entry past the first array is still found. */
    EXPECT_FAIL(ag_params_add(p, "block.60.w", t[0]), "ag_params_add",
                "block.60.w", "already");
    ck_assert_int_eq(ag_params_count(p), N);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_params_errors)
{
    ag_arena *a = ag_arena_new();
    ag_params *p = ag_params_new(a);
    ag_tensor *w = ag_zeros(a, AG_F32, 2, SHAPE(2, 2));
    ag_tensor *labels = ag_zeros(a, AG_I32, 1, SHAPE(2));
    ck_assert_int_eq(ag_params_add(p, "w", w), 0);

    EXPECT_FAIL(ag_params_add(p, "w", w), "ag_params_add", "\"w\"",
                "already in the set");
    EXPECT_FAIL(ag_params_add(p, "w", ag_zeros(a, AG_F32, 1, SHAPE(1))),
                "already");
    /* One tensor under two names would be updated twice by an optimizer. */
    EXPECT_FAIL(ag_params_add(p, "w_again", w), "ag_params_add", "\"w_again\"",
                "already in the set as \"w\"");
    EXPECT_FAIL(ag_params_add(p, "", w), "ag_params_add", "empty");
    EXPECT_FAIL(ag_params_add(p, "labels", labels), "ag_params_add",
                "\"labels\"", "i32");
    EXPECT_FAIL(ag_params_add(NULL, "x", w), "ag_params_add",
                "parameter set is NULL");
    EXPECT_FAIL(ag_params_add(p, NULL, w), "ag_params_add", "name is NULL");
    EXPECT_FAIL(ag_params_add(p, "x", NULL), "ag_params_add", "tensor is NULL");

    /* Names of exactly AG_PARAM_NAME_MAX bytes are accepted, one more is
     * not. */
    char name[AG_PARAM_NAME_MAX + 2];
    memset(name, 'n', AG_PARAM_NAME_MAX);
    name[AG_PARAM_NAME_MAX] = '\0';
    ag_tensor *v = ag_zeros(a, AG_F32, 1, SHAPE(3));
    ck_assert_int_eq(ag_params_add(p, name, v), 0);
    ck_assert_str_eq(ag_params_name(p, 1), name);
    ck_assert_ptr_eq(ag_params_find(p, name), v);
    name[AG_PARAM_NAME_MAX] = 'm';
    name[AG_PARAM_NAME_MAX + 1] = '\0';
    EXPECT_FAIL(ag_params_add(p, name, ag_zeros(a, AG_F32, 1, SHAPE(1))),
                "ag_params_add", "longer than AG_PARAM_NAME_MAX");

    /* No failed call changed the set. */
    ck_assert_int_eq(ag_params_count(p), 2);
    ck_assert_str_eq(ag_params_name(p, 0), "w");
    ck_assert_ptr_null(ag_params_find(p, "x"));
    ck_assert_ptr_null(ag_params_find(p, "labels"));
    ck_assert_ptr_null(ag_params_find(p, ""));
    ag_arena_free(a);
}
END_TEST

/* A set of two fresh tensors named "weight" (3,2) and "bias" (3). */
static ag_params *weight_and_bias(ag_arena *a)
{
    ag_params *p = ag_params_new(a);
    ck_assert_int_eq(
        ag_params_add(p, "weight", ag_zeros(a, AG_F64, 2, SHAPE(3, 2))), 0);
    ck_assert_int_eq(ag_params_add(p, "bias", ag_zeros(a, AG_F64, 1, SHAPE(3))),
                     0);
    return p;
}

START_TEST(test_params_extend)
{
    ag_arena *a = ag_arena_new();
    ag_params *enc = weight_and_bias(a), *dec = weight_and_bias(a);

    /* With a prefix: "prefix." + name, in order, the same tensors. */
    ag_params *p = ag_params_new(a);
    ag_tensor *first = ag_zeros(a, AG_F32, 1, SHAPE(4));
    ag_params_add(p, "first", first);
    ck_assert_int_eq(ag_params_extend(p, "encoder", enc), 0);
    ck_assert_int_eq(ag_params_extend(p, "decoder.0", dec), 0);
    const char *want[] = {"first", "encoder.weight", "encoder.bias",
                          "decoder.0.weight", "decoder.0.bias"};
    ag_tensor *want_t[] = {first, ag_params_tensor(enc, 0),
                           ag_params_tensor(enc, 1), ag_params_tensor(dec, 0),
                           ag_params_tensor(dec, 1)};
    ck_assert_int_eq(ag_params_count(p), 5);
    for (int i = 0; i < 5; i++) {
        ck_assert_str_eq(ag_params_name(p, i), want[i]);
        ck_assert_ptr_eq(ag_params_tensor(p, i), want_t[i]);
    }
    ck_assert_int_eq(ag_params_numel(p), 4 + 2 * (6 + 3));
    ck_assert_int_eq(ag_params_count(enc), 2); /* the source is unchanged */
    ck_assert_str_eq(ag_params_name(enc, 0), "weight");

    /* Prefix NULL or "": the names as they are. */
    ag_params *q = ag_params_new(a), *r = ag_params_new(a);
    ck_assert_int_eq(ag_params_extend(q, NULL, enc), 0);
    ck_assert_int_eq(ag_params_extend(r, "", enc), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(ag_params_name(q, i), ag_params_name(enc, i));
        ck_assert_str_eq(ag_params_name(r, i), ag_params_name(enc, i));
        ck_assert_ptr_eq(ag_params_tensor(q, i), ag_params_tensor(enc, i));
    }
    /* An empty source adds nothing. */
    ck_assert_int_eq(ag_params_extend(q, "x", ag_params_new(a)), 0);
    ck_assert_int_eq(ag_params_count(q), 2);

    /* A name clash half-way keeps the tensors added before it. */
    ag_params *c = ag_params_new(a);
    ag_params_add(c, "enc.bias", first);
    EXPECT_FAIL(ag_params_extend(c, "enc", enc), "ag_params_extend",
                "\"enc.bias\"", "already");
    ck_assert_int_eq(ag_params_count(c), 2);
    ck_assert_str_eq(ag_params_name(c, 1), "enc.weight");
    EXPECT_FAIL(ag_params_extend(q, NULL, dec), "ag_params_extend",
                "\"weight\"", "already");
    ck_assert_int_eq(ag_params_count(q), 2);
    /* So does a tensor clash: the same tensors under another prefix. */
    EXPECT_FAIL(ag_params_extend(p, "again", enc), "ag_params_extend",
                "\"again.weight\"", "\"encoder.weight\"");
    ck_assert_int_eq(ag_params_count(p), 5);
    /* And a set extended by itself: its first tensor is already there. */
    EXPECT_FAIL(ag_params_extend(p, "self", p), "ag_params_extend",
                "\"self.first\"");
    ck_assert_int_eq(ag_params_count(p), 5);

    /* A prefix that makes a name too long. */
    char prefix[AG_PARAM_NAME_MAX];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    ag_params *e = ag_params_new(a);
    EXPECT_FAIL(ag_params_extend(e, prefix, enc), "ag_params_extend",
                "longer than AG_PARAM_NAME_MAX");
    ck_assert_int_eq(ag_params_count(e), 0);
    /* 120 + '.' + "weight" = 127 bytes fits; "bias" is shorter. */
    prefix[120] = '\0';
    ck_assert_int_eq(ag_params_extend(e, prefix, enc), 0);
    ck_assert_int_eq((int)strlen(ag_params_name(e, 0)), AG_PARAM_NAME_MAX);

    EXPECT_FAIL(ag_params_extend(e, "x", NULL), "ag_params_extend",
                "source set is NULL");
    EXPECT_FAIL(ag_params_extend(NULL, "x", enc), "ag_params_extend",
                "parameter set is NULL");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_params_requires_and_zero_grad)
{
    ag_arena *a = ag_arena_new();
    ag_params *p = ag_params_new(a);
    ag_tensor *w = WAVE(a, AG_F64, 0.0, 3, 2);
    ag_tensor *b = WAVE(a, AG_F64, 1.0, 2);
    ag_params_add(p, "w", w);
    ag_params_add(p, "b", b);
    ck_assert(!ag_is_requires_grad(w) && !ag_is_requires_grad(b));
    ag_params_requires_grad(p, true);
    ck_assert(ag_is_requires_grad(w) && ag_is_requires_grad(b));

    /* loss = sum(x W + b) * 2 reaches both; then zero_grad clears both. */
    ag_tensor *x = WAVE(a, AG_F64, 2.0, 4, 3);
    ag_tensor *y = ag_add(a, ag_matmul(a, x, w), b);
    backward(ag_scale(a, ag_sum(a, y, AG_ALL, false), 2.0));
    ag_tensor *gw = ag_grad(w), *gb = ag_grad(b);
    ck_assert_ptr_nonnull(gw);
    ck_assert_ptr_nonnull(gb);
    for (int64_t j = 0; j < 2; j++) ck_assert(tensor_at(gb, j) == 8.0);
    for (int64_t i = 0; i < 6; i++) ck_assert(tensor_at(gw, i) != 0.0);
    ag_params_zero_grad(p);
    for (int64_t i = 0; i < 6; i++) ck_assert(tensor_at(ag_grad(w), i) == 0.0);
    for (int64_t j = 0; j < 2; j++) ck_assert(tensor_at(ag_grad(b), j) == 0.0);

    ag_params_requires_grad(p, false);
    ck_assert(!ag_is_requires_grad(w) && !ag_is_requires_grad(b));
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Initialisers                                                        */
/* ------------------------------------------------------------------ */

/* Fills a fresh (out, in, k...) tensor with init `which`, parameter `arg`,
 * and checks that every |value| <= bound, that the largest is within
 * (1 - slack) of it, and that the spread is that of U(-bound, bound). */
enum { KAIMING, XAVIER };

static void check_uniform_bound(ag_dtype dt, int which, double arg, int ndim,
                                const int64_t *shape, double bound,
                                double slack)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *t = ag_zeros(a, dt, ndim, shape);
    ag_rng rng = ag_rng_seed(123);
    int rc = which == KAIMING ? ag_init_kaiming_uniform(t, arg, &rng)
                              : ag_init_xavier_uniform(t, arg, &rng);
    ck_assert_msg(rc == 0, "init failed: %s", ag_last_error());
    stats s = stats_of(t);
    double b = dt == AG_F32 ? (double)(float)bound : bound;
    ck_assert_msg(s.max_abs <= b, "%s init %d(%g): max |v| %.9g > bound %.9g",
                  ag_dtype_name(dt), which, arg, s.max_abs, b);
    ck_assert_msg(s.max_abs >= (1 - slack) * bound,
                  "%s init %d(%g): max |v| %.9g far below bound %.9g",
                  ag_dtype_name(dt), which, arg, s.max_abs, bound);
    ck_assert_msg(s.min < 0 && s.max > 0, "values of one sign only");
    /* U(-b, b) has standard deviation b / sqrt(3); allow 5 standard
     * errors of the mean and of the standard deviation (whose relative
     * variance for a uniform is 0.2 / n). */
    double n = (double)ag_numel(t), sd = bound / sqrt(3.0);
    ck_assert_msg(fabs(s.std / sd - 1) < 5 * sqrt(0.2 / n), "std %g, want %g",
                  s.std, sd);
    ck_assert_msg(fabs(s.mean) < 5 * sd / sqrt(n), "mean %g", s.mean);
    ag_arena_free(a);
}

START_TEST(test_init_kaiming_bounds)
{
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        /* a = sqrt(5), nn.Linear's: 1 / sqrt(in). */
        check_uniform_bound(dt, KAIMING, sqrt(5.0), 2, SHAPE(256, 64),
                            1 / sqrt(64.0), 0.005);
        check_uniform_bound(dt, KAIMING, sqrt(5.0), 2, SHAPE(40, 400),
                            1 / sqrt(400.0), 0.005);
        /* a = 0, for ReLU: sqrt(6 / in). */
        check_uniform_bound(dt, KAIMING, 0.0, 2, SHAPE(256, 64), sqrt(6.0 / 64),
                            0.005);
        /* a = 1: gain 1, sqrt(3 / in). */
        check_uniform_bound(dt, KAIMING, 1.0, 2, SHAPE(100, 150),
                            sqrt(3.0 / 150), 0.005);
        /* A conv weight (out, in, 3, 3): fan_in = in * 9. */
        check_uniform_bound(dt, KAIMING, 0.0, 4, SHAPE(32, 16, 3, 3),
                            sqrt(6.0 / 144), 0.005);
    }
}
END_TEST

START_TEST(test_init_xavier_bounds)
{
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        check_uniform_bound(dt, XAVIER, 1.0, 2, SHAPE(300, 100),
                            sqrt(6.0 / 400), 0.005);
        check_uniform_bound(dt, XAVIER, 0.5, 2, SHAPE(50, 400),
                            0.5 * sqrt(6.0 / 450), 0.005);
        check_uniform_bound(dt, XAVIER, sqrt(2.0), 2, SHAPE(100, 300),
                            sqrt(2.0) * sqrt(6.0 / 400), 0.005);
        /* (out, in, 3, 3): fan_in = in * 9, fan_out = out * 9. */
        check_uniform_bound(dt, XAVIER, 1.0, 4, SHAPE(16, 8, 3, 3),
                            sqrt(6.0 / (72 + 144)), 0.01);
    }
}
END_TEST

START_TEST(test_init_uniform_normal)
{
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        ag_arena *a = ag_arena_new();
        ag_rng rng = ag_rng_seed(7);

        ag_tensor *u = ag_zeros(a, dt, 2, SHAPE(300, 200));
        ck_assert_int_eq(ag_init_uniform(u, -0.5, 2.5, &rng), 0);
        stats s = stats_of(u);
        ck_assert_msg(s.min >= -0.5 && s.max <= 2.5, "[%g, %g]", s.min, s.max);
        ck_assert_msg(s.min < -0.5 + 3e-3 && s.max > 2.5 - 3e-3,
                      "[%g, %g] does not reach the bounds", s.min, s.max);
        ck_assert_msg(fabs(s.mean - 1.0) < 0.03, "mean %g", s.mean);
        ck_assert_msg(fabs(s.std - 3.0 / sqrt(12.0)) < 0.02, "std %g", s.std);

        /* low == high gives that value everywhere. */
        ag_tensor *c = ag_zeros(a, dt, 1, SHAPE(10));
        ck_assert_int_eq(ag_init_uniform(c, 0.25, 0.25, &rng), 0);
        for (int64_t i = 0; i < 10; i++) ck_assert(tensor_at(c, i) == 0.25);

        /* N(1.5, 0.25^2) on 200000 values: mean, std and the share within
         * one std (0.6827 for a normal, 0.577 for a uniform). */
        ag_tensor *n = ag_zeros(a, dt, 2, SHAPE(400, 500));
        ck_assert_int_eq(ag_init_normal(n, 1.5, 0.25, &rng), 0);
        s = stats_of(n);
        ck_assert_msg(fabs(s.mean - 1.5) < 0.004, "mean %g", s.mean);
        ck_assert_msg(fabs(s.std - 0.25) < 0.0025, "std %g", s.std);
        int64_t within = 0;
        for (int64_t i = 0; i < ag_numel(n); i++)
            within += fabs(tensor_at(n, i) - 1.5) < 0.25;
        double share = (double)within / (double)ag_numel(n);
        ck_assert_msg(fabs(share - 0.6827) < 0.006, "share %g", share);

        /* std 0 gives the mean everywhere. */
        ck_assert_int_eq(ag_init_normal(c, -3.0, 0.0, &rng), 0);
        for (int64_t i = 0; i < 10; i++) ck_assert(tensor_at(c, i) == -3.0);
        ag_arena_free(a);
    }
}
END_TEST

/* Runs init `which` (0 uniform, 1 normal, 2 kaiming, 3 xavier) on t. */
static int run_init(int which, ag_tensor *t, ag_rng *rng)
{
    switch (which) {
    case 0:
        return ag_init_uniform(t, -1, 1, rng);
    case 1:
        return ag_init_normal(t, 0, 1, rng);
    case 2:
        return ag_init_kaiming_uniform(t, sqrt(5.0), rng);
    default:
        return ag_init_xavier_uniform(t, 1, rng);
    }
}

START_TEST(test_init_seeds)
{
    /* The same seed gives the same values, another seed others, and the
     * generator advances. */
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < 2; k++)
        for (int which = 0; which < 4; which++) {
            ag_dtype dt = float_types[k];
            ag_tensor *t[4];
            for (int i = 0; i < 4; i++) t[i] = ag_zeros(a, dt, 2, SHAPE(8, 5));
            ag_rng r1 = ag_rng_seed(99), r2 = ag_rng_seed(99);
            ag_rng r3 = ag_rng_seed(100);
            ck_assert_int_eq(run_init(which, t[0], &r1), 0);
            ck_assert_int_eq(run_init(which, t[1], &r2), 0);
            ck_assert_int_eq(run_init(which, t[2], &r3), 0);
            ck_assert_int_eq(run_init(which, t[3], &r1), 0);
            ck_assert_msg(same_values(t[0], t[1]), "init %d, same seed", which);
            ck_assert_msg(!same_values(t[0], t[2]), "init %d, seed", which);
            ck_assert_msg(!same_values(t[0], t[3]), "init %d, rng", which);
            ag_rng fresh = ag_rng_seed(99);
            ck_assert(memcmp(&fresh, &r1, sizeof fresh) != 0);
        }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_init_errors)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_tensor *t = ag_full(a, AG_F64, 2, SHAPE(3, 4), 7.0);
    ag_tensor *v = ag_full(a, AG_F32, 1, SHAPE(5), 7.0);
    ag_tensor *s = ag_full(a, AG_F32, 0, NULL, 7.0);
    ag_tensor *i32 = ag_zeros(a, AG_I32, 2, SHAPE(3, 4));

    EXPECT_FAIL(ag_init_uniform(NULL, 0, 1, &rng), "ag_init_uniform",
                "tensor is NULL");
    EXPECT_FAIL(ag_init_uniform(t, 0, 1, NULL), "ag_init_uniform",
                "rng is NULL");
    EXPECT_FAIL(ag_init_uniform(i32, 0, 1, &rng), "ag_init_uniform", "i32");
    EXPECT_FAIL(ag_init_uniform(t, 1, 0, &rng), "ag_init_uniform", "low",
                "[1, 0)");
    EXPECT_FAIL(ag_init_uniform(t, NAN, 1, &rng), "ag_init_uniform", "nan");
    EXPECT_FAIL(ag_init_uniform(t, 0, INFINITY, &rng), "ag_init_uniform",
                "inf");
    EXPECT_FAIL(ag_init_normal(NULL, 0, 1, &rng), "ag_init_normal", "NULL");
    EXPECT_FAIL(ag_init_normal(t, 0, 1, NULL), "ag_init_normal", "rng");
    EXPECT_FAIL(ag_init_normal(i32, 0, 1, &rng), "ag_init_normal", "i32");
    EXPECT_FAIL(ag_init_normal(t, 0, -1, &rng), "ag_init_normal", "std -1");
    EXPECT_FAIL(ag_init_normal(t, NAN, 1, &rng), "ag_init_normal", "nan");
    EXPECT_FAIL(ag_init_normal(t, 0, INFINITY, &rng), "ag_init_normal", "inf");

    EXPECT_FAIL(ag_init_kaiming_uniform(NULL, 0, &rng),
                "ag_init_kaiming_uniform", "NULL");
    EXPECT_FAIL(ag_init_kaiming_uniform(t, 0, NULL), "ag_init_kaiming_uniform",
                "rng");
    EXPECT_FAIL(ag_init_kaiming_uniform(i32, 0, &rng),
                "ag_init_kaiming_uniform", "i32");
    EXPECT_FAIL(ag_init_kaiming_uniform(v, 0, &rng), "ag_init_kaiming_uniform",
                "at least 2 dimensions", "(5)");
    EXPECT_FAIL(ag_init_kaiming_uniform(s, 0, &rng), "ag_init_kaiming_uniform",
                "at least 2 dimensions", "()");
    EXPECT_FAIL(ag_init_kaiming_uniform(t, NAN, &rng),
                "ag_init_kaiming_uniform", "not finite");
    EXPECT_FAIL(ag_init_xavier_uniform(NULL, 1, &rng), "ag_init_xavier_uniform",
                "NULL");
    EXPECT_FAIL(ag_init_xavier_uniform(t, 1, NULL), "ag_init_xavier_uniform",
                "rng");
    EXPECT_FAIL(ag_init_xavier_uniform(t, -1, &rng), "ag_init_xavier_uniform",
                "gain must be >= 0", "-1");
    EXPECT_FAIL(ag_init_xavier_uniform(i32, 1, &rng), "ag_init_xavier_uniform",
                "i32");
    EXPECT_FAIL(ag_init_xavier_uniform(v, 1, &rng), "ag_init_xavier_uniform",
                "at least 2 dimensions", "(5)");
    EXPECT_FAIL(ag_init_xavier_uniform(t, INFINITY, &rng),
                "ag_init_xavier_uniform", "not finite");
    EXPECT_FAIL(ag_init_xavier_uniform(t, NAN, &rng), "ag_init_xavier_uniform",
                "not finite");

    /* Nothing was written and the generator did not move. */
    for (int64_t i = 0; i < 12; i++) ck_assert(tensor_at(t, i) == 7.0);
    for (int64_t i = 0; i < 5; i++) ck_assert(tensor_at(v, i) == 7.0);
    ck_assert(tensor_at(s, 0) == 7.0);
    ag_rng fresh = ag_rng_seed(1);
    ck_assert(memcmp(&fresh, &rng, sizeof rng) == 0);
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* ag_linear                                                           */
/* ------------------------------------------------------------------ */

/* x @ W^T + b by matmul, transpose, reshape and add: the graph that
 * ag_linear fuses. A 1-D x is taken as one row. */
static ag_tensor *unfused_linear(ag_arena *a, ag_tensor *x, ag_tensor *w,
                                 ag_tensor *b)
{
    ag_tensor *wt = must(ag_transpose(a, w, 0, 1), "ag_transpose");
    ag_tensor *y;
    if (ag_ndim(x) == 1) {
        int64_t in = ag_shape(x)[0], out = ag_shape(w)[0];
        ag_tensor *row = must(ag_reshape(a, x, 2, SHAPE(1, in)), "reshape");
        y = must(
            ag_reshape(a, must(ag_matmul(a, row, wt), "ag_matmul"), 1, &out),
            "reshape");
    } else {
        y = must(ag_matmul(a, x, wt), "ag_matmul");
    }
    return b ? must(ag_add(a, y, b), "ag_add") : y;
}

/* The leaves of one side of a fused/unfused comparison. */
typedef struct {
    ag_tensor *x, *w, *b;
} linear_leaves;

static linear_leaves make_leaves(ag_arena *a, ag_dtype dt, int xdim,
                                 const int64_t *xshape, bool bias)
{
    int64_t in = xshape[xdim - 1];
    linear_leaves l = {
        .x = wave(a, dt, xdim, xshape, 0.3),
        .w = WAVE(a, dt, 1.1, 5, in),
        .b = bias ? WAVE(a, dt, 2.7, 5) : NULL,
    };
    ag_requires_grad(l.x, true);
    ag_requires_grad(l.w, true);
    if (bias) ag_requires_grad(l.b, true);
    return l;
}

START_TEST(test_linear_matches_unfused)
{
    const int64_t shapes[3][3] = {{4}, {3, 4}, {2, 3, 4}};
    for (int k = 0; k < 2; k++)
        for (int xdim = 1; xdim <= 3; xdim++)
            for (int bias = 0; bias < 2; bias++) {
                ag_dtype dt = float_types[k];
                double tol = tol_of(dt);
                ag_arena *a = ag_arena_new();
                linear_leaves f =
                    make_leaves(a, dt, xdim, shapes[xdim - 1], bias);
                linear_leaves u =
                    make_leaves(a, dt, xdim, shapes[xdim - 1], bias);
                ag_tensor *yf = must(ag_linear(a, f.x, f.w, f.b), "ag_linear");
                ag_tensor *yu = unfused_linear(a, u.x, u.w, u.b);
                /* (..., in) -> (..., 5) */
                int64_t want[3];
                memcpy(want, shapes[xdim - 1], sizeof want);
                want[xdim - 1] = 5;
                expect_shape(yf, dt, xdim, want);
                ck_assert_str_eq(ag_tensor_op_name(yf),
                                 bias ? "linear" : "linear_no_bias");
                expect_close("y", yf, yu, tol);
                backward(weighted_sum(a, yf));
                backward(weighted_sum(a, yu));
                expect_close("dx", ag_grad(f.x), ag_grad(u.x), tol);
                expect_close("dW", ag_grad(f.w), ag_grad(u.w), tol);
                if (bias) expect_close("db", ag_grad(f.b), ag_grad(u.b), tol);
                ag_arena_free(a);
            }
}
END_TEST

/* Only one of x, W and b requires a gradient (a frozen layer, or a frozen
 * input): the others get no gradient buffer, and the one that does matches
 * the unfused graph. */
START_TEST(test_linear_frozen_inputs)
{
    const int64_t xshape[2] = {3, 4};
    for (int which = 0; which < 3; which++) {
        ag_arena *a = ag_arena_new();
        linear_leaves f = make_leaves(a, AG_F64, 2, xshape, true);
        linear_leaves u = make_leaves(a, AG_F64, 2, xshape, true);
        for (int k = 0; k < 2; k++) {
            linear_leaves *l = k ? &u : &f;
            ag_requires_grad(l->x, which == 0);
            ag_requires_grad(l->w, which == 1);
            ag_requires_grad(l->b, which == 2);
        }
        backward(weighted_sum(a, must(ag_linear(a, f.x, f.w, f.b), "linear")));
        backward(weighted_sum(a, unfused_linear(a, u.x, u.w, u.b)));
        ag_tensor *fl[3] = {f.x, f.w, f.b}, *ul[3] = {u.x, u.w, u.b};
        for (int k = 0; k < 3; k++)
            if (k == which)
                expect_close("grad", ag_grad(fl[k]), ag_grad(ul[k]), 1e-12);
            else
                ck_assert_msg(ag_grad(fl[k]) == NULL,
                              "leaf %d got a gradient (only %d requires one)",
                              k, which);
        ag_arena_free(a);
    }
}
END_TEST

START_TEST(test_linear_edge_cases)
{
    ag_arena *a = ag_arena_new();
    /* in = 0: an empty sum, so every row is the bias. */
    ag_tensor *x0 = ag_zeros(a, AG_F64, 2, SHAPE(3, 0));
    ag_tensor *w0 = ag_zeros(a, AG_F64, 2, SHAPE(2, 0));
    ag_tensor *b = ag_from_data(a, AG_F64, 1, SHAPE(2), (double[]){1.5, -2});
    ag_tensor *y = must(ag_linear(a, x0, w0, b), "ag_linear in 0");
    EXPECT_SHAPE(y, AG_F64, 3, 2);
    for (int64_t i = 0; i < 6; i++)
        ck_assert(tensor_at(y, i) == (i % 2 ? -2.0 : 1.5));
    y = must(ag_linear(a, x0, w0, NULL), "ag_linear in 0 no bias");
    for (int64_t i = 0; i < 6; i++) ck_assert(tensor_at(y, i) == 0.0);
    /* No rows. */
    ag_tensor *xe = ag_zeros(a, AG_F32, 3, SHAPE(2, 0, 4));
    ag_tensor *w = WAVE(a, AG_F32, 0.0, 3, 4);
    y = must(ag_linear(a, xe, w, NULL), "ag_linear no rows");
    EXPECT_SHAPE(y, AG_F32, 2, 0, 3);
    /* Inputs that need no gradient give an unrecorded result; the inputs
     * are not changed. */
    ag_tensor *x = WAVE(a, AG_F32, 1.0, 2, 4);
    ag_tensor *x_copy = ag_detach(a, x);
    y = must(ag_linear(a, x, w, NULL), "ag_linear");
    ck_assert(!ag_is_requires_grad(y));
    ck_assert_str_eq(ag_tensor_op_name(y), "leaf");
    ck_assert(same_values(x, x_copy));
    /* Hand-computed: x = [[1, 2]], W = [[1, 0], [2, -1], [0.5, 3]],
     * b = [10, 20, 30] -> [11, 20, 36.5]. */
    ag_tensor *hx = ag_from_data(a, AG_F64, 2, SHAPE(1, 2), (double[]){1, 2});
    ag_tensor *hw = ag_from_data(a, AG_F64, 2, SHAPE(3, 2),
                                 (double[]){1, 0, 2, -1, 0.5, 3});
    ag_tensor *hb =
        ag_from_data(a, AG_F64, 1, SHAPE(3), (double[]){10, 20, 30});
    expect_values("hand", ag_linear(a, hx, hw, hb), (double[]){11, 20, 36.5}, 3,
                  0);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_linear_errors)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = WAVE(a, AG_F64, 0.0, 3, 4);
    ag_tensor *w = WAVE(a, AG_F64, 1.0, 5, 4);
    ag_tensor *b = WAVE(a, AG_F64, 2.0, 5);

    EXPECT_NULL(ag_linear(a, x, WAVE(a, AG_F64, 0, 5, 3), b), "ag_linear",
                "(3,4)", "(5,3)", "do not match");
    EXPECT_NULL(ag_linear(a, WAVE(a, AG_F64, 0, 2, 3, 7), w, NULL), "ag_linear",
                "(2,3,7)", "(5,4)");
    EXPECT_NULL(ag_linear(a, x, WAVE(a, AG_F64, 0, 4), NULL), "ag_linear",
                "(4)", "weight (out, in)");
    EXPECT_NULL(ag_linear(a, x, WAVE(a, AG_F64, 0, 1, 5, 4), NULL), "ag_linear",
                "(1,5,4)");
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F64, 0, NULL), w, b), "ag_linear",
                "()");
    /* a 0-d x has no last dimension to match, even against in = 0 or 1 */
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F32, 0, NULL),
                          ag_zeros(a, AG_F32, 2, SHAPE(3, 0)), NULL),
                "ag_linear", "x () and weight (3,0) do not match");
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F64, 0, NULL),
                          ag_zeros(a, AG_F64, 2, SHAPE(3, 1)), NULL),
                "ag_linear", "x () and weight (3,1) do not match");
    /* sizes past BLAS's int (checked before anything is allocated) */
    int64_t big = (int64_t)INT32_MAX + 1;
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F64, 2, SHAPE(big, 0)),
                          ag_zeros(a, AG_F64, 2, SHAPE(0, 0)), NULL),
                "ag_linear", "(2147483648,0) @ (0,0)^T exceeds the BLAS limit");
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F64, 2, SHAPE(0, big)),
                          ag_zeros(a, AG_F64, 2, SHAPE(0, big)), NULL),
                "ag_linear", "exceeds the BLAS limit");
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F64, 2, SHAPE(1, 0)),
                          ag_zeros(a, AG_F64, 2, SHAPE(big, 0)), NULL),
                "ag_linear", "exceeds the BLAS limit");
    EXPECT_NULL(ag_linear(a, x, w, WAVE(a, AG_F64, 0, 4)), "ag_linear",
                "bias (4)", "(5,4)", "(5)");
    EXPECT_NULL(ag_linear(a, x, w, WAVE(a, AG_F64, 0, 1, 5)), "ag_linear",
                "bias (1,5)");
    EXPECT_NULL(ag_linear(a, x, w, WAVE(a, AG_F64, 0, 5, 1)), "ag_linear",
                "bias (5,1)");
    EXPECT_NULL(ag_linear(a, x, w, ag_zeros(a, AG_F64, 0, NULL)), "ag_linear",
                "bias ()");
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_F32, 2, SHAPE(3, 4)), w, b),
                "ag_linear", "f32", "f64");
    EXPECT_NULL(ag_linear(a, x, w, ag_zeros(a, AG_F32, 1, SHAPE(5))),
                "ag_linear", "f32", "f64");
    EXPECT_NULL(ag_linear(a, ag_zeros(a, AG_I32, 2, SHAPE(3, 4)), w, b),
                "ag_linear", "i32");
    EXPECT_NULL(ag_linear(NULL, x, w, b), "ag_linear", "arena");
    EXPECT_NULL(ag_linear(a, NULL, w, b), "ag_linear", "NULL");
    EXPECT_NULL(ag_linear(a, x, NULL, b), "ag_linear", "NULL");
    /* A NULL input keeps a pending message. */
    ag_linear(a, x, WAVE(a, AG_F64, 0, 5, 3), b);
    char saved[256];
    snprintf(saved, sizeof saved, "%s", ag_last_error());
    ck_assert_ptr_null(ag_linear(a, NULL, w, b));
    ck_assert_str_eq(ag_last_error(), saved);
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Linear layers and ag_activate                                       */
/* ------------------------------------------------------------------ */

START_TEST(test_linear_layer_new)
{
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        ag_arena *a = ag_arena_new();
        ag_rng rng = ag_rng_seed(5);
        ag_linear_layer *l =
            ag_linear_layer_new(a, dt, 100, 200, true, AG_INIT_DEFAULT, &rng);
        ck_assert_msg(l != NULL, "%s", ag_last_error());
        ck_assert_int_eq(l->in, 100);
        ck_assert_int_eq(l->out, 200);
        EXPECT_SHAPE(l->weight, dt, 200, 100);
        EXPECT_SHAPE(l->bias, dt, 200);
        ck_assert(ag_is_requires_grad(l->weight));
        ck_assert(ag_is_requires_grad(l->bias));
        ck_assert_int_eq(ag_params_count(l->params), 2);
        ck_assert_str_eq(ag_params_name(l->params, 0), "weight");
        ck_assert_str_eq(ag_params_name(l->params, 1), "bias");
        ck_assert_ptr_eq(ag_params_find(l->params, "weight"), l->weight);
        ck_assert_ptr_eq(ag_params_find(l->params, "bias"), l->bias);
        /* nn.Linear's default: both within 1/sqrt(in) = 0.1, and reaching
         * it; the weight's spread is that of U(-0.1, 0.1). */
        stats sw = stats_of(l->weight), sb = stats_of(l->bias);
        ck_assert_msg(sw.max_abs <= (float)0.1 && sw.max_abs > 0.0995,
                      "weight max %g", sw.max_abs);
        ck_assert_msg(fabs(sw.std - 0.1 / sqrt(3.0)) < 0.002, "std %g", sw.std);
        ck_assert_msg(sb.max_abs <= (float)0.1 && sb.max_abs > 0.09,
                      "bias max %g", sb.max_abs);
        ck_assert_msg(sb.min < 0 && sb.max > 0, "bias of one sign");
        /* The generator advanced; the same seed gives the same layer. */
        ag_rng again = ag_rng_seed(5);
        ag_linear_layer *l2 =
            ag_linear_layer_new(a, dt, 100, 200, true, AG_INIT_DEFAULT, &again);
        ck_assert(same_values(l->weight, l2->weight));
        ck_assert(same_values(l->bias, l2->bias));
        ag_linear_layer *l3 =
            ag_linear_layer_new(a, dt, 100, 200, true, AG_INIT_DEFAULT, &rng);
        ck_assert(!same_values(l->weight, l3->weight));

        /* Without a bias. */
        ag_linear_layer *nb =
            ag_linear_layer_new(a, dt, 3, 2, false, AG_INIT_DEFAULT, &rng);
        ck_assert_ptr_nonnull(nb);
        ck_assert_ptr_null(nb->bias);
        ck_assert_int_eq(ag_params_count(nb->params), 1);
        ck_assert_str_eq(ag_params_name(nb->params, 0), "weight");
        ck_assert_ptr_null(ag_params_find(nb->params, "bias"));
        ag_arena_free(a);
    }
}
END_TEST

START_TEST(test_linear_layer_inits)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(11);
    const int64_t in = 120, out = 180;
    struct {
        ag_init init;
        double bound; /* of U(-bound, bound); 0 for the normal */
    } cases[] = {
        {AG_INIT_XAVIER, sqrt(6.0 / (double)(in + out))},
        {AG_INIT_KAIMING, sqrt(6.0 / (double)in)},
        {AG_INIT_NORMAL, 0},
    };
    for (int c = 0; c < 3; c++) {
        ag_linear_layer *l =
            ag_linear_layer_new(a, AG_F64, in, out, true, cases[c].init, &rng);
        ck_assert_msg(l != NULL, "%s", ag_last_error());
        stats s = stats_of(l->weight);
        if (cases[c].bound > 0) {
            ck_assert_msg(s.max_abs <= cases[c].bound &&
                              s.max_abs > 0.995 * cases[c].bound,
                          "init %d: max %g, bound %g", (int)cases[c].init,
                          s.max_abs, cases[c].bound);
        } else { /* N(0, 0.01^2) */
            ck_assert_msg(fabs(s.std - 0.01) < 0.0003, "std %g", s.std);
            ck_assert_msg(fabs(s.mean) < 0.0003, "mean %g", s.mean);
        }
        for (int64_t j = 0; j < out; j++) ck_assert(tensor_at(l->bias, j) == 0);
        ck_assert(ag_is_requires_grad(l->bias));
    }
    ag_arena_free(a);
}
END_TEST

START_TEST(test_linear_layer_forward)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(3);
    ag_linear_layer *l =
        ag_linear_layer_new(a, AG_F64, 4, 3, true, AG_INIT_DEFAULT, &rng);
    ag_tensor *x = WAVE(a, AG_F64, 0.2, 2, 5, 4);
    ag_tensor *y = must(ag_linear_layer_forward(a, l, x), "forward");
    EXPECT_SHAPE(y, AG_F64, 2, 5, 3);
    expect_close("forward", y, ag_linear(a, x, l->weight, l->bias), 0);
    expect_close("unfused", y, unfused_linear(a, x, l->weight, l->bias), 1e-12);
    ck_assert(ag_is_requires_grad(y));
    /* Gradients reach the layer's parameters. */
    backward(weighted_sum(a, y));
    EXPECT_SHAPE(ag_grad(l->weight), AG_F64, 3, 4);
    EXPECT_SHAPE(ag_grad(l->bias), AG_F64, 3);

    EXPECT_NULL(ag_linear_layer_forward(a, NULL, x), "ag_linear_layer_forward",
                "layer is NULL");
    EXPECT_NULL(ag_linear_layer_forward(a, l, WAVE(a, AG_F64, 0, 2, 3)),
                "ag_linear", "(2,3)", "(3,4)");
    EXPECT_NULL(ag_linear_layer_forward(a, l, WAVE(a, AG_F32, 0, 2, 4)),
                "ag_linear", "f32");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_linear_layer_errors)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(3);
    const char *f = "ag_linear_layer_new";
    EXPECT_NULL(
        ag_linear_layer_new(NULL, AG_F32, 2, 3, true, AG_INIT_DEFAULT, &rng), f,
        "arena is NULL");
    EXPECT_NULL(
        ag_linear_layer_new(a, AG_F32, 2, 3, true, AG_INIT_DEFAULT, NULL), f,
        "rng is NULL");
    EXPECT_NULL(
        ag_linear_layer_new(a, AG_F32, 0, 3, true, AG_INIT_DEFAULT, &rng), f,
        "in 0");
    EXPECT_NULL(
        ag_linear_layer_new(a, AG_F32, 2, -1, true, AG_INIT_DEFAULT, &rng), f,
        "out -1");
    EXPECT_NULL(
        ag_linear_layer_new(a, AG_I32, 2, 3, true, AG_INIT_DEFAULT, &rng), f,
        "i32");
    EXPECT_NULL(ag_linear_layer_new(a, AG_F32, 2, 3, true, (ag_init)99, &rng),
                f, "init 99");
    EXPECT_NULL(ag_linear_layer_new(a, AG_F32, 2, 3, true, (ag_init)-1, &rng),
                f, "init -1");
    ag_arena_free(a);
}
END_TEST

START_TEST(test_activate)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        ag_tensor *x = WAVE(a, dt, 0.0, 3, 7);
        ag_requires_grad(x, true);
        expect_close("relu", ag_activate(a, x, AG_ACT_RELU), ag_relu(a, x), 0);
        expect_close("tanh", ag_activate(a, x, AG_ACT_TANH), ag_tanh(a, x), 0);
        expect_close("sigmoid", ag_activate(a, x, AG_ACT_SIGMOID),
                     ag_sigmoid(a, x), 0);
        expect_close("gelu", ag_activate(a, x, AG_ACT_GELU), ag_gelu(a, x), 0);
        expect_close("leaky", ag_activate(a, x, AG_ACT_LEAKY_RELU),
                     ag_leaky_relu(a, x, 0.01), 0);
        ck_assert_str_eq(ag_tensor_op_name(ag_activate(a, x, AG_ACT_GELU)),
                         "gelu");
        ck_assert_ptr_eq(ag_activate(a, x, AG_ACT_NONE), x);
        /* The slope of AG_ACT_LEAKY_RELU is 0.01 exactly. */
        ag_tensor *y = ag_activate(a, x, AG_ACT_LEAKY_RELU);
        for (int64_t i = 0; i < ag_numel(x); i++) {
            double v = tensor_at(x, i);
            double want =
                v > 0 ? v : (dt == AG_F32 ? (float)(v * 0.01f) : v * 0.01);
            ck_assert_msg(close_enough(tensor_at(y, i), want, 1e-7),
                          "leaky(%g) = %g", v, tensor_at(y, i));
        }
    }
    EXPECT_NULL(ag_activate(a, WAVE(a, AG_F64, 0, 2), (ag_activation)99),
                "ag_activate", "unknown activation 99");
    EXPECT_NULL(ag_activate(a, ag_zeros(a, AG_I32, 1, SHAPE(2)), AG_ACT_TANH),
                "ag_tanh", "i32");
    ck_assert_ptr_null(ag_activate(a, NULL, AG_ACT_RELU));
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* MLPs                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_mlp_names)
{
    ag_arena *a = ag_arena_new();
    const int64_t sizes[] = {4, 8, 6, 3};
    ag_mlp *m = ag_mlp_new(a, 4, sizes, NULL);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    ck_assert_int_eq(m->num_layers, 3);
    ck_assert(m->training);
    ck_assert_int_eq(m->options.dtype, AG_F32);
    ck_assert_int_eq(m->options.activation, AG_ACT_RELU);
    ck_assert_int_eq(ag_params_count(m->params), 6);
    ck_assert_int_eq(ag_params_numel(m->params),
                     8 * 4 + 8 + 6 * 8 + 6 + 3 * 6 + 3);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%d.weight", i);
        ck_assert_str_eq(ag_params_name(m->params, 2 * i), name);
        ag_tensor *w = ag_params_find(m->params, name);
        ck_assert_ptr_eq(w, m->layers[i]->weight);
        EXPECT_SHAPE(w, AG_F32, sizes[i + 1], sizes[i]);
        ck_assert(ag_is_requires_grad(w));
        snprintf(name, sizeof name, "layers.%d.bias", i);
        ck_assert_str_eq(ag_params_name(m->params, 2 * i + 1), name);
        ag_tensor *b = ag_params_find(m->params, name);
        ck_assert_ptr_eq(b, m->layers[i]->bias);
        EXPECT_SHAPE(b, AG_F32, sizes[i + 1]);
        ck_assert(ag_is_requires_grad(b));
        /* Default init: nn.Linear's bounds. */
        double bound = 1 / sqrt((double)sizes[i]);
        ck_assert(stats_of(w).max_abs <= bound);
        ck_assert(stats_of(b).max_abs <= bound);
    }

    /* Without biases: only the weights, named the same. */
    ag_mlp_options o = {.dtype = AG_F64, .no_bias = true};
    ag_mlp *nb = ag_mlp_new(a, 4, sizes, &o);
    ck_assert_msg(nb != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_params_count(nb->params), 3);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "layers.%d.weight", i);
        ck_assert_str_eq(ag_params_name(nb->params, i), name);
        ck_assert_ptr_null(nb->layers[i]->bias);
        EXPECT_SHAPE(ag_params_tensor(nb->params, i), AG_F64, sizes[i + 1],
                     sizes[i]);
    }
    ck_assert_ptr_null(ag_params_find(nb->params, "layers.0.bias"));

    /* One layer: two sizes. */
    ag_mlp *one = ag_mlp_new(a, 2, SHAPE(5, 2), NULL);
    ck_assert_ptr_nonnull(one);
    ck_assert_int_eq(one->num_layers, 1);
    ck_assert_int_eq(ag_params_count(one->params), 2);
    ck_assert_str_eq(ag_params_name(one->params, 1), "layers.0.bias");

    /* Twelve layers: two-digit indices. */
    int64_t many[13];
    for (int i = 0; i < 13; i++) many[i] = 2;
    ag_mlp *deep = ag_mlp_new(a, 13, many, NULL);
    ck_assert_ptr_nonnull(deep);
    ck_assert_int_eq(ag_params_count(deep->params), 24);
    ck_assert_str_eq(ag_params_name(deep->params, 23), "layers.11.bias");
    ag_arena_free(a);
}
END_TEST

/* The MLP's forward, by hand: ag_linear on the parameters found by name,
 * then the activation by its own op. */
static ag_tensor *hand_mlp(ag_arena *a, const ag_mlp *m, ag_tensor *x)
{
    for (int i = 0; i < m->num_layers; i++) {
        char wn[32], bn[32];
        snprintf(wn, sizeof wn, "layers.%d.weight", i);
        snprintf(bn, sizeof bn, "layers.%d.bias", i);
        x = ag_linear(a, x, ag_params_find(m->params, wn),
                      ag_params_find(m->params, bn));
        if (i == m->num_layers - 1) break;
        switch (m->options.activation) {
        case AG_ACT_RELU:
            x = ag_relu(a, x);
            break;
        case AG_ACT_TANH:
            x = ag_tanh(a, x);
            break;
        case AG_ACT_SIGMOID:
            x = ag_sigmoid(a, x);
            break;
        case AG_ACT_GELU:
            x = ag_gelu(a, x);
            break;
        case AG_ACT_LEAKY_RELU:
            x = ag_leaky_relu(a, x, 0.01);
            break;
        case AG_ACT_NONE:
            break;
        }
    }
    return must(x, "hand_mlp");
}

/* Copies of the MLP's parameter gradients, in arena a. */
static void save_grads(ag_arena *a, const ag_mlp *m, ag_tensor **out)
{
    for (int i = 0; i < ag_params_count(m->params); i++)
        out[i] =
            must(ag_detach(a, ag_grad(ag_params_tensor(m->params, i))), "grad");
}

START_TEST(test_mlp_forward_matches_hand_graph)
{
    const ag_activation acts[] = {AG_ACT_RELU,       AG_ACT_TANH,
                                  AG_ACT_SIGMOID,    AG_ACT_GELU,
                                  AG_ACT_LEAKY_RELU, AG_ACT_NONE};
    const int64_t sizes[] = {4, 6, 5, 3};
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 6; c++) {
            ag_dtype dt = float_types[k];
            ag_arena *a = ag_arena_new(), *step = ag_arena_new();
            ag_mlp_options o = {.dtype = dt, .activation = acts[c], .seed = 17};
            ag_mlp *m = ag_mlp_new(a, 4, sizes, &o);
            ck_assert_msg(m != NULL, "%s", ag_last_error());
            ag_tensor *x = WAVE(step, dt, 0.4, 7, 4);
            ag_tensor *y = must(ag_mlp_forward(step, m, x), "ag_mlp_forward");
            EXPECT_SHAPE(y, dt, 7, 3);
            ag_tensor *h = hand_mlp(step, m, x);
            expect_close("mlp", y, h, 1e-14);

            /* The same gradients reach the parameters. */
            ag_tensor *g1[6], *g2[6];
            backward(weighted_sum(step, y));
            save_grads(step, m, g1);
            ag_params_zero_grad(m->params);
            backward(weighted_sum(step, h));
            save_grads(step, m, g2);
            for (int i = 0; i < 6; i++)
                expect_close(ag_params_name(m->params, i), g1[i], g2[i], 1e-14);

            /* Other input shapes: (4) -> (3), (2,3,4) -> (2,3,3). */
            ag_tensor *v =
                must(ag_mlp_forward(step, m, WAVE(step, dt, 0, 4)), "1-D");
            EXPECT_SHAPE(v, dt, 3);
            ag_tensor *x3 = WAVE(step, dt, 0.9, 2, 3, 4);
            ag_tensor *y3 = must(ag_mlp_forward(step, m, x3), "3-D");
            EXPECT_SHAPE(y3, dt, 2, 3, 3);
            expect_close("mlp 3-D", y3, hand_mlp(step, m, x3), 1e-14);
            ag_arena_free(step);
            ag_arena_free(a);
        }
}
END_TEST

START_TEST(test_mlp_seed)
{
    ag_arena *a = ag_arena_new();
    const int64_t sizes[] = {3, 5, 2};
    ag_mlp_options o = {.dtype = AG_F64, .seed = 42};
    ag_mlp *m1 = ag_mlp_new(a, 3, sizes, &o);
    ag_mlp *m2 = ag_mlp_new(a, 3, sizes, &o);
    o.seed = 43;
    ag_mlp *m3 = ag_mlp_new(a, 3, sizes, &o);
    ck_assert(m1 && m2 && m3);
    for (int i = 0; i < 4; i++) {
        ag_tensor *t1 = ag_params_tensor(m1->params, i);
        ck_assert_ptr_ne(t1, ag_params_tensor(m2->params, i));
        ck_assert(same_values(t1, ag_params_tensor(m2->params, i)));
        ck_assert(!same_values(t1, ag_params_tensor(m3->params, i)));
    }
    /* Layers draw different weights from the one generator. */
    ag_mlp *sq = ag_mlp_new(a, 3, SHAPE(4, 4, 4), &o);
    ck_assert(!same_values(sq->layers[0]->weight, sq->layers[1]->weight));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_mlp_dropout)
{
    /* One input row through 3 -> 4000 -> 2 with tanh and dropout 0.3. With
     * loss = sum(y), the gradient of layers.1.weight[c, j] is the hidden
     * unit j after dropout, so it shows the mask. */
    const double p = 0.3;
    const int64_t hidden = 4000;
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_mlp_options o = {
        .dtype = AG_F64, .activation = AG_ACT_TANH, .dropout = p, .seed = 8};
    ag_mlp *m = ag_mlp_new(a, 3, SHAPE(3, hidden, 2), &o);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    ck_assert(m->training);
    ag_tensor *x = WAVE(a, AG_F64, 0.1, 1, 3);
    ag_tensor *w0 = m->layers[0]->weight, *b0 = m->layers[0]->bias;
    ag_tensor *h = must(ag_tanh(a, ag_linear(a, x, w0, b0)), "hidden");

    ag_tensor *y1 = must(ag_mlp_forward(step, m, x), "training forward");
    backward(ag_sum(step, y1, AG_ALL, false));
    ag_tensor *g = ag_grad(m->layers[1]->weight);
    int64_t zeros = 0;
    for (int64_t j = 0; j < hidden; j++) {
        double hj = tensor_at(h, j), gj = tensor_at(g, j);
        if (tensor_at(g, hidden + j) != gj) /* both output rows see unit j */
            ck_abort_msg("unit %lld: rows differ", (long long)j);
        if (gj == 0) {
            zeros++;
            continue;
        }
        if (!close_enough(gj, hj / (1 - p), 1e-12))
            ck_abort_msg("kept unit %lld: %.17g, want %.17g", (long long)j, gj,
                         hj / (1 - p));
    }
    double share = (double)zeros / (double)hidden;
    ck_assert_msg(fabs(share - p) < 0.03, "dropped %g of the units", share);

    /* Training mode: another call draws another mask. */
    ag_tensor *y2 = must(ag_mlp_forward(step, m, x), "training forward 2");
    ck_assert(!same_values(y1, y2));

    /* Evaluation mode: deterministic and equal to no dropout. */
    ag_mlp_set_training(m, false);
    ck_assert(!m->training);
    ag_tensor *e1 = must(ag_mlp_forward(step, m, x), "eval forward");
    ag_tensor *e2 = must(ag_mlp_forward(step, m, x), "eval forward 2");
    expect_close("eval twice", e1, e2, 0);
    expect_close("eval vs hand", e1, hand_mlp(step, m, x), 1e-14);
    ag_mlp_set_training(m, true);
    ck_assert(m->training);
    ag_mlp_set_training(NULL, false);

    /* Two models with one seed draw the same masks in the same order. */
    ag_mlp *m1 = ag_mlp_new(a, 3, SHAPE(3, 50, 2), &o);
    ag_mlp *m2 = ag_mlp_new(a, 3, SHAPE(3, 50, 2), &o);
    for (int i = 0; i < 3; i++)
        expect_close("same seed", ag_mlp_forward(step, m1, x),
                     ag_mlp_forward(step, m2, x), 0);
    ag_arena_free(step);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_mlp_errors)
{
    ag_arena *a = ag_arena_new();
    const int64_t sizes[] = {4, 3, 2};
    const char *f = "ag_mlp_new";
    EXPECT_NULL(ag_mlp_new(a, 1, sizes, NULL), f, "at least 2", "got 1");
    EXPECT_NULL(ag_mlp_new(a, 0, sizes, NULL), f, "got 0");
    EXPECT_NULL(ag_mlp_new(a, -3, sizes, NULL), f, "got -3");
    EXPECT_NULL(ag_mlp_new(a, 3, SHAPE(4, 0, 2), NULL), f, "sizes[1] is 0");
    EXPECT_NULL(ag_mlp_new(a, 3, SHAPE(4, 3, -2), NULL), f, "sizes[2] is -2");
    EXPECT_NULL(ag_mlp_new(NULL, 3, sizes, NULL), f, "arena is NULL");
    EXPECT_NULL(ag_mlp_new(a, 3, NULL, NULL), f, "sizes is NULL");
    ag_mlp_options o = {.activation = (ag_activation)99};
    EXPECT_NULL(ag_mlp_new(a, 3, sizes, &o), f, "activation 99");
    o = (ag_mlp_options){.dropout = 1.0};
    EXPECT_NULL(ag_mlp_new(a, 3, sizes, &o), f, "dropout 1");
    o.dropout = -0.1;
    EXPECT_NULL(ag_mlp_new(a, 3, sizes, &o), f, "dropout -0.1");
    o.dropout = NAN;
    EXPECT_NULL(ag_mlp_new(a, 3, sizes, &o), f, "dropout");
    /* dtype and init are refused by the layer it makes. */
    o = (ag_mlp_options){.dtype = AG_I32};
    EXPECT_NULL(ag_mlp_new(a, 3, sizes, &o), "i32");
    o = (ag_mlp_options){.init = (ag_init)7};
    EXPECT_NULL(ag_mlp_new(a, 3, sizes, &o), "init 7");

    ag_mlp *m = ag_mlp_new(a, 3, sizes, NULL);
    ck_assert_ptr_nonnull(m);
    EXPECT_NULL(ag_mlp_forward(a, NULL, WAVE(a, AG_F32, 0, 2, 4)),
                "ag_mlp_forward", "model is NULL");
    EXPECT_NULL(ag_mlp_forward(a, m, WAVE(a, AG_F32, 0, 2, 5)),
                "ag_mlp_forward: layer 0 (4 -> 3): ag_linear", "(2,5)",
                "(3,4)");
    EXPECT_NULL(ag_mlp_forward(a, m, WAVE(a, AG_F64, 0, 2, 4)),
                "ag_mlp_forward: layer 0 (4 -> 3): ag_linear", "f64", "f32");
    EXPECT_NULL(ag_mlp_forward(NULL, m, WAVE(a, AG_F32, 0, 2, 4)), "arena");
    ag_clear_error();
    ck_assert_ptr_null(ag_mlp_forward(a, m, NULL));
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Agreement with PyTorch                                              */
/* ------------------------------------------------------------------ */

/* Builds ag_mlp 4 -> 5 -> 3 with `act`, copies the fixture's parameters in
 * by name, and checks logits, loss and every gradient against PyTorch. */
static void check_torch_mlp(ag_dtype dt, ag_activation act,
                            const nn_torch_param *params, const double *logits,
                            double loss_want, double tol)
{
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_mlp_options o = {.dtype = dt, .activation = act};
    ag_mlp *m = ag_mlp_new(a, 3, SHAPE(NN_IN, NN_HIDDEN, NN_C), &o);
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    ck_assert_int_eq(ag_params_count(m->params), NN_NUM_PARAMS);
    for (int i = 0; i < NN_NUM_PARAMS; i++) {
        ck_assert_str_eq(ag_params_name(m->params, i), params[i].name);
        ag_tensor *t = ag_params_find(m->params, params[i].name);
        ck_assert_msg(t != NULL, "no parameter %s", params[i].name);
        ck_assert_int_eq(ag_numel(t), params[i].numel);
        for (int j = 0; j < params[i].numel; j++)
            tensor_set(t, j, params[i].value[j]);
    }
    ag_tensor *x = ag_zeros(step, dt, 2, SHAPE(NN_N, NN_IN));
    for (int j = 0; j < NN_N * NN_IN; j++) tensor_set(x, j, nn_x[j]);
    ag_tensor *targets = ag_from_data(step, AG_I32, 1, SHAPE(NN_N), nn_targets);

    ag_tensor *y = must(ag_mlp_forward(step, m, x), "ag_mlp_forward");
    EXPECT_SHAPE(y, dt, NN_N, NN_C);
    expect_values("logits", y, logits, NN_N * NN_C, tol);
    ag_tensor *loss = must(ag_softmax_cross_entropy(step, y, targets), "loss");
    ck_assert_msg(close_enough(ag_item(loss), loss_want, tol),
                  "loss %.17g, torch %.17g", ag_item(loss), loss_want);
    backward(loss);
    for (int i = 0; i < NN_NUM_PARAMS; i++)
        expect_values(params[i].name,
                      ag_grad(ag_params_find(m->params, params[i].name)),
                      params[i].grad, params[i].numel, tol);
    ag_arena_free(step);
    ag_arena_free(a);
}

START_TEST(test_torch_mlp)
{
    check_torch_mlp(AG_F64, AG_ACT_GELU, nn_gelu_params, nn_gelu_logits,
                    nn_gelu_loss, 1e-10);
    check_torch_mlp(AG_F64, AG_ACT_LEAKY_RELU, nn_leaky_params, nn_leaky_logits,
                    nn_leaky_loss, 1e-10);
    check_torch_mlp(AG_F32, AG_ACT_GELU, nn_gelu_params, nn_gelu_logits,
                    nn_gelu_loss, 2e-5);
    check_torch_mlp(AG_F32, AG_ACT_LEAKY_RELU, nn_leaky_params, nn_leaky_logits,
                    nn_leaky_loss, 2e-5);
}
END_TEST

START_TEST(test_torch_activations)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        ag_tensor *x = ag_zeros(a, dt, 1, SHAPE(NN_GRID));
        for (int i = 0; i < NN_GRID; i++) tensor_set(x, i, nn_grid[i]);
        double tol = dt == AG_F64 ? 1e-14 : 1e-6;
        expect_values("gelu", ag_gelu(a, x), nn_grid_gelu, NN_GRID, tol);
        expect_values("leaky_relu", ag_leaky_relu(a, x, NN_LEAKY_SLOPE),
                      nn_grid_leaky, NN_GRID, tol);
        if (dt == AG_F32) continue;
        /* Relative agreement also for the tiny values near 0 and in the
         * left tail (1 + erf cancels there, in PyTorch too, so 1e-6). */
        ag_tensor *g = ag_gelu(a, x);
        for (int i = 0; i < NN_GRID; i++) {
            double want = nn_grid_gelu[i], got = tensor_at(g, i);
            ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want),
                          "gelu(%g) = %.17g, torch %.17g", nn_grid[i], got,
                          want);
        }
    }
    ag_arena_free(a);
}
END_TEST

/* Leaky ReLU's gradient is 1 for x > 0 and the slope otherwise, at x = 0
 * too (as in PyTorch, whose backward tests x > 0). */
START_TEST(test_leaky_relu_gradient_at_zero)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < 2; k++) {
        const double v[4] = {-2, 0, -0.0, 3};
        ag_tensor *x = ag_zeros(a, float_types[k], 1, SHAPE(4));
        for (int i = 0; i < 4; i++) tensor_set(x, i, v[i]);
        ag_requires_grad(x, true);
        backward(must(ag_sum(a, ag_leaky_relu(a, x, 0.25), AG_ALL, false),
                      "leaky_relu"));
        expect_values("grad", ag_grad(x), (double[]){0.25, 0.25, 0.25, 1}, 4,
                      0);
    }
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* ag_argmax                                                           */
/* ------------------------------------------------------------------ */

/* The argmax of x along `axis` by a plain loop over every output position,
 * written independently of the library: strided walk, first maximum, a NaN
 * wins at once. */
static void reference_argmax(const ag_tensor *x, int axis, int32_t *out)
{
    int ndim = ag_ndim(x);
    const int64_t *shape = ag_shape(x);
    int64_t stride = 1;
    for (int d = ndim - 1; d > axis; d--) stride *= shape[d];
    int64_t len = shape[axis], n = ag_numel(x) / len, k = 0;
    for (int64_t start = 0; start < ag_numel(x); start++) {
        /* start is the first element of a line when its index along axis
         * is 0. */
        if ((start / stride) % len != 0) continue;
        int32_t best = 0;
        double bv = tensor_at(x, start);
        for (int64_t l = 1; l < len && !isnan(bv); l++) {
            double v = tensor_at(x, start + l * stride);
            if (isnan(v) || v > bv) {
                best = (int32_t)l;
                bv = v;
            }
        }
        out[k++] = best;
    }
    ck_assert_int_eq(k, n);
}

START_TEST(test_argmax_2d)
{
    ag_arena *a = ag_arena_new();
    /* Rows: a plain maximum, a tie (first wins), all equal, a NaN,
     * a NaN first, and -inf everywhere. */
    const double v[6][4] = {
        {1, 5, 3, 2},    {4, 9, 9, 1},
        {2, 2, 2, 2},    {1, NAN, 7, NAN},
        {NAN, 8, 9, 10}, {-INFINITY, -INFINITY, -INFINITY, -INFINITY}};
    const int32_t want_rows[6] = {1, 1, 0, 1, 0, 0};
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        ag_tensor *x = ag_zeros(a, dt, 2, SHAPE(6, 4));
        for (int i = 0; i < 24; i++) tensor_set(x, i, v[i / 4][i % 4]);
        ag_requires_grad(x, true);
        for (int ax = -1; ax <= 1; ax += 2) {
            ag_tensor *r = must(ag_argmax(a, x, ax), "ag_argmax rows");
            EXPECT_SHAPE(r, AG_I32, 6);
            ck_assert(!ag_is_requires_grad(r));
            ck_assert_str_eq(ag_tensor_op_name(r), "leaf");
            for (int i = 0; i < 6; i++)
                ck_assert_msg(((int32_t *)ag_data(r))[i] == want_rows[i],
                              "row %d: %d, want %d", i,
                              ((int32_t *)ag_data(r))[i], want_rows[i]);
        }
        /* Columns: col 0 has a NaN at row 4 and 4 at row 1; col 1 a NaN at
         * row 3; col 2 maximum 9 first at row 1; col 3 a NaN at row 3. */
        ag_tensor *c = must(ag_argmax(a, x, 0), "ag_argmax cols");
        EXPECT_SHAPE(c, AG_I32, 4);
        const int32_t want_cols[4] = {4, 3, 1, 3};
        for (int j = 0; j < 4; j++)
            ck_assert_int_eq(((int32_t *)ag_data(c))[j], want_cols[j]);
        c = ag_argmax(a, x, -2);
        for (int j = 0; j < 4; j++)
            ck_assert_int_eq(((int32_t *)ag_data(c))[j], want_cols[j]);
    }
    /* 1-D gives a scalar. */
    ag_tensor *x1 =
        ag_from_data(a, AG_F64, 1, SHAPE(5), (double[]){-3, 0.5, -1, 0.5, 0});
    ag_tensor *r1 = must(ag_argmax(a, x1, 0), "1-D");
    expect_shape(r1, AG_I32, 0, NULL);
    ck_assert(ag_item(r1) == 1);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_argmax_3d)
{
    ag_arena *a = ag_arena_new();
    for (int k = 0; k < 2; k++) {
        ag_dtype dt = float_types[k];
        /* Values rounded to quarters so that ties occur. */
        ag_tensor *x = ag_zeros(a, dt, 3, SHAPE(3, 4, 5));
        for (int64_t i = 0; i < 60; i++)
            tensor_set(x, i, round(4 * sin(1.9 * (double)i)) / 4);
        const int64_t out_shapes[3][2] = {{4, 5}, {3, 5}, {3, 4}};
        for (int ax = -3; ax < 3; ax++) {
            int axis = ax < 0 ? ax + 3 : ax;
            ag_tensor *r = must(ag_argmax(a, x, ax), "ag_argmax 3-D");
            expect_shape(r, AG_I32, 2, out_shapes[axis]);
            int32_t want[20];
            reference_argmax(x, axis, want);
            for (int64_t i = 0; i < ag_numel(r); i++)
                ck_assert_msg(((int32_t *)ag_data(r))[i] == want[i],
                              "axis %d, [%lld]: %d, want %d", ax, (long long)i,
                              ((int32_t *)ag_data(r))[i], want[i]);
        }
    }
    /* An empty non-reduced axis gives an empty result. */
    ag_tensor *e = ag_zeros(a, AG_F32, 2, SHAPE(0, 3));
    ag_tensor *r = must(ag_argmax(a, e, 1), "empty rows");
    EXPECT_SHAPE(r, AG_I32, 0);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_argmax_errors)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = WAVE(a, AG_F64, 0, 3, 4);
    EXPECT_NULL(ag_argmax(a, ag_zeros(a, AG_F32, 2, SHAPE(3, 0)), 1),
                "ag_argmax", "(3,0)", "empty");
    EXPECT_NULL(ag_argmax(a, ag_zeros(a, AG_F32, 2, SHAPE(0, 3)), 0),
                "ag_argmax", "(0,3)", "empty");
    /* an axis longer than i32 indices reach (no elements, so no memory) */
    int64_t big = (int64_t)INT32_MAX + 1;
    EXPECT_NULL(ag_argmax(a, ag_zeros(a, AG_F32, 2, SHAPE(big, 0)), 0),
                "ag_argmax", "axis 0 of shape (2147483648,0)",
                "too long for i32 indices");
    EXPECT_NULL(ag_argmax(a, x, 2), "ag_argmax", "axis 2", "(3,4)");
    EXPECT_NULL(ag_argmax(a, x, -3), "ag_argmax", "axis -3");
    EXPECT_NULL(ag_argmax(a, x, AG_ALL), "ag_argmax", "AG_ALL");
    EXPECT_NULL(ag_argmax(a, ag_zeros(a, AG_F32, 0, NULL), 0), "ag_argmax",
                "axis 0");
    EXPECT_NULL(ag_argmax(a, ag_zeros(a, AG_I32, 2, SHAPE(3, 4)), 1),
                "ag_argmax", "i32");
    EXPECT_NULL(ag_argmax(NULL, x, 0), "ag_argmax", "arena");
    EXPECT_NULL(ag_argmax(a, NULL, 0), "ag_argmax", "NULL");
    ag_arena_free(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* ag_dropout                                                          */
/* ------------------------------------------------------------------ */

/* A float tensor (200, 100) of values in [1, 2.3]: never zero. */
static ag_tensor *positive(ag_arena *a, ag_dtype dt)
{
    ag_tensor *t = ag_zeros(a, dt, 2, SHAPE(200, 100));
    for (int64_t i = 0; i < ag_numel(t); i++)
        tensor_set(t, i, 1.0 + 1.3 * fabs(sin(0.37 * (double)i)));
    return t;
}

START_TEST(test_dropout_values)
{
    const double ps[] = {0.1, 0.3, 0.5, 0.9};
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < 4; c++) {
            ag_dtype dt = float_types[k];
            double p = ps[c];
            ag_arena *a = ag_arena_new();
            ag_tensor *x = positive(a, dt), *x_copy = ag_detach(a, x);
            ag_rng rng = ag_rng_seed(21);
            ag_tensor *y = must(ag_dropout(a, x, p, &rng), "ag_dropout");
            EXPECT_SHAPE(y, dt, 200, 100);
            int64_t zeros = 0, n = ag_numel(x);
            for (int64_t i = 0; i < n; i++) {
                double yi = tensor_at(y, i), xi = tensor_at(x, i);
                if (yi == 0) {
                    zeros++;
                    continue;
                }
                if (!close_enough(yi, xi / (1 - p), tol_of(dt)))
                    ck_abort_msg("p %g: y[%lld] = %.9g, x = %.9g", p,
                                 (long long)i, yi, xi);
            }
            /* 20000 draws: the share of zeros is p within about 6 sigma. */
            double share = (double)zeros / (double)n;
            double sigma = sqrt(p * (1 - p) / (double)n);
            ck_assert_msg(fabs(share - p) < 6 * sigma + 1e-9, "p %g: zeroed %g",
                          p, share);
            ck_assert(same_values(x, x_copy));
            ag_arena_free(a);
        }
}
END_TEST

/* As in PyTorch, a dropped NaN or infinity stays NaN (x * 0), in forward
 * and in backward, so that anomaly detection still sees it. */
START_TEST(test_dropout_keeps_nan)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *nan = ag_full(a, AG_F64, 1, (int64_t[]){64}, NAN);
    ag_rng rng = ag_rng_seed(3);
    ag_tensor *y = must(ag_dropout(a, nan, 0.5, &rng), "ag_dropout");
    for (int64_t i = 0; i < 64; i++) ck_assert(isnan(tensor_at(y, i)));
    /* A NaN gradient reaches dropped elements too: g * 0 is NaN. */
    ag_tensor *x = ag_ones(a, AG_F64, 1, (int64_t[]){64});
    ag_requires_grad(x, true);
    backward(
        ag_sum(a, ag_mul(a, ag_dropout(a, x, 0.5, &rng), nan), AG_ALL, false));
    for (int64_t i = 0; i < 64; i++) ck_assert(isnan(tensor_at(ag_grad(x), i)));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_dropout_seed_and_grad)
{
    ag_arena *a = ag_arena_new();
    ag_tensor *x = positive(a, AG_F64);
    ag_requires_grad(x, true);
    ag_rng r1 = ag_rng_seed(4), r2 = ag_rng_seed(4), r3 = ag_rng_seed(5);
    ag_tensor *y1 = ag_dropout(a, x, 0.4, &r1);
    ag_tensor *y2 = ag_dropout(a, x, 0.4, &r2);
    ag_tensor *y3 = ag_dropout(a, x, 0.4, &r3);
    ag_tensor *y4 = ag_dropout(a, x, 0.4, &r1); /* r1 has advanced */
    ck_assert(same_values(y1, y2));
    ck_assert(!same_values(y1, y3));
    ck_assert(!same_values(y1, y4));
    ck_assert_str_eq(ag_tensor_op_name(y1), "dropout");
    /* The gradient of sum(y) is the mask scaled by 1 / (1 - p). */
    backward(ag_sum(a, y1, AG_ALL, false));
    ag_tensor *g = ag_grad(x);
    for (int64_t i = 0; i < ag_numel(x); i++) {
        double want = tensor_at(y1, i) == 0 ? 0 : 1 / 0.6;
        if (!close_enough(tensor_at(g, i), want, 1e-15))
            ck_abort_msg("dx[%lld] = %.17g, want %.17g", (long long)i,
                         tensor_at(g, i), want);
    }

    /* p = 0: a copy, equal exactly. */
    ag_tensor *y0 = must(ag_dropout(a, x, 0.0, &r1), "p 0");
    ck_assert_ptr_ne(y0, x);
    ck_assert(same_values(y0, x));
    ag_tensor *f = positive(a, AG_F32);
    ck_assert(same_values(ag_dropout(a, f, 0.0, &r1), f));
    ag_arena_free(a);
}
END_TEST

START_TEST(test_dropout_errors)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_tensor *x = WAVE(a, AG_F32, 0, 3, 4);
    EXPECT_NULL(ag_dropout(a, x, -0.1, &rng), "ag_dropout", "[0, 1)", "-0.1");
    EXPECT_NULL(ag_dropout(a, x, 1.0, &rng), "ag_dropout", "got 1");
    EXPECT_NULL(ag_dropout(a, x, 1.5, &rng), "ag_dropout", "got 1.5");
    EXPECT_NULL(ag_dropout(a, x, NAN, &rng), "ag_dropout", "nan");
    EXPECT_NULL(ag_dropout(a, x, 0.5, NULL), "ag_dropout", "rng is NULL");
    EXPECT_NULL(ag_dropout(a, ag_zeros(a, AG_I32, 1, SHAPE(3)), 0.5, &rng),
                "ag_dropout", "i32");
    EXPECT_NULL(ag_dropout(NULL, x, 0.5, &rng), "ag_dropout", "arena");
    EXPECT_NULL(ag_dropout(a, NULL, 0.5, &rng), "ag_dropout", "NULL");
    ag_arena_free(a);
}
END_TEST

static Suite *nn_suite(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("nn");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_params_add_find);
    tcase_add_test(tc, test_params_growth);
    tcase_add_test(tc, test_params_errors);
    tcase_add_test(tc, test_params_extend);
    tcase_add_test(tc, test_params_requires_and_zero_grad);
    tcase_add_test(tc, test_init_kaiming_bounds);
    tcase_add_test(tc, test_init_xavier_bounds);
    tcase_add_test(tc, test_init_uniform_normal);
    tcase_add_test(tc, test_init_seeds);
    tcase_add_test(tc, test_init_errors);
    tcase_add_test(tc, test_linear_matches_unfused);
    tcase_add_test(tc, test_linear_frozen_inputs);
    tcase_add_test(tc, test_linear_edge_cases);
    tcase_add_test(tc, test_linear_errors);
    tcase_add_test(tc, test_linear_layer_new);
    tcase_add_test(tc, test_linear_layer_inits);
    tcase_add_test(tc, test_linear_layer_forward);
    tcase_add_test(tc, test_linear_layer_errors);
    tcase_add_test(tc, test_activate);
    tcase_add_test(tc, test_mlp_names);
    tcase_add_test(tc, test_mlp_forward_matches_hand_graph);
    tcase_add_test(tc, test_mlp_seed);
    tcase_add_test(tc, test_mlp_dropout);
    tcase_add_test(tc, test_mlp_errors);
    tcase_add_test(tc, test_torch_mlp);
    tcase_add_test(tc, test_torch_activations);
    tcase_add_test(tc, test_leaky_relu_gradient_at_zero);
    tcase_add_test(tc, test_argmax_2d);
    tcase_add_test(tc, test_argmax_3d);
    tcase_add_test(tc, test_argmax_errors);
    tcase_add_test(tc, test_dropout_values);
    tcase_add_test(tc, test_dropout_seed_and_grad);
    tcase_add_test(tc, test_dropout_keeps_nan);
    tcase_add_test(tc, test_dropout_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(nn_suite());
}
