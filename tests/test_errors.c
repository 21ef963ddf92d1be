/* test_errors.c: the error contract of the public API. Every invalid call
 * returns NULL (or -1, or NaN for ag_item), puts a message in ag_last_error()
 * that starts with "<function>:" and names the offending shapes ("(4,3)"),
 * dtypes ("f32"), axes or values, changes no tensor or gradient, and leaves
 * its arena usable (also after ag_arena_reset). An op given a NULL input
 * returns NULL and keeps the earlier message. No input may crash. */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Ends the list of expected substrings of the expect_* functions. */
#define END ((const char *)NULL)

/* A shape literal and its number of dimensions. */
#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* A tensor of dtype dt and the given shape, with small distinct values. */
#define T(a, dt, ...)                                                          \
    make(__LINE__, a, dt, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))
/* A one-element tensor with no dimensions. */
#define SCALAR(a, dt) make(__LINE__, a, dt, 0, SHAPE(1))

/* Each EXPECT_* clears the error, evaluates `call`, checks its failure value
 * and that the message starts with "fn:" and holds every further string (a
 * string "x|y" accepts either x or y), then checks that arena `a` still
 * works. */
#define EXPECT_NULL(a, call, ...)                                              \
    expect_null(__LINE__, #call, a, (ag_clear_error(), (call)), __VA_ARGS__,   \
                END)
#define EXPECT_FAIL(a, call, ...)                                              \
    expect_fail(__LINE__, #call, a, (ag_clear_error(), (call)), __VA_ARGS__,   \
                END)
#define EXPECT_NAN(a, call, ...)                                               \
    expect_nan(__LINE__, #call, a, (ag_clear_error(), (call)), __VA_ARGS__, END)
/* For a call that returns nothing (ag_requires_grad). */
#define EXPECT_MSG(a, call, ...)                                               \
    do {                                                                       \
        ag_clear_error();                                                      \
        call;                                                                  \
        expect_msg(__LINE__, #call, a, __VA_ARGS__, END);                      \
    } while (0)
/* `call` returns NULL and the message is still `saved`. */
#define EXPECT_KEPT(saved, call) expect_kept(__LINE__, #call, (call), saved)

typedef ag_tensor *(*unary_fn)(ag_arena *, ag_tensor *);
typedef ag_tensor *(*binary_fn)(ag_arena *, ag_tensor *, ag_tensor *);
typedef ag_tensor *(*scalar_fn)(ag_arena *, ag_tensor *, double);
typedef ag_tensor *(*reduce_fn)(ag_arena *, ag_tensor *, int, bool);
typedef ag_tensor *(*axis_fn)(ag_arena *, ag_tensor *, int);

static const struct {
    const char *name;
    unary_fn fn;
} unary_ops[] = {
    {"ag_neg", ag_neg},   {"ag_exp", ag_exp},   {"ag_log", ag_log},
    {"ag_sqrt", ag_sqrt}, {"ag_abs", ag_abs},   {"ag_sigmoid", ag_sigmoid},
    {"ag_tanh", ag_tanh}, {"ag_relu", ag_relu},
};

static const struct {
    const char *name;
    binary_fn fn;
} binary_ops[] = {
    {"ag_add", ag_add},
    {"ag_sub", ag_sub},
    {"ag_mul", ag_mul},
    {"ag_div", ag_div},
};

static const struct {
    const char *name;
    scalar_fn fn;
} scalar_ops[] = {
    {"ag_pow", ag_pow},
    {"ag_scale", ag_scale},
    {"ag_shift", ag_shift},
};

static const struct {
    const char *name;
    reduce_fn fn;
} reduce_ops[] = {
    {"ag_sum", ag_sum},
    {"ag_mean", ag_mean},
    {"ag_max", ag_max},
};

static const struct {
    const char *name;
    axis_fn fn;
} softmax_ops[] = {
    {"ag_softmax", ag_softmax},
    {"ag_log_softmax", ag_log_softmax},
};

#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* The arena of the running test. The checked fixture makes it before each
 * test and frees it after, also after a failed assertion, so that a failing
 * test run under valgrind with CK_FORK=no reports no leaks of its own. */
static ag_arena *test_arena;

static void setup_arena(void)
{
    test_arena = ag_arena_new();
    ck_assert_msg(test_arena != NULL, "ag_arena_new failed: %s",
                  ag_last_error());
}

static void teardown_arena(void)
{
    ag_arena_free(test_arena);
    test_arena = NULL;
}

static ag_tensor *make(int line, ag_arena *a, ag_dtype dt, int ndim,
                       const int64_t *shape)
{
    ag_tensor *t = ag_zeros(a, dt, ndim, shape);
    ck_assert_msg(t != NULL, "line %d: making a test tensor failed: %s", line,
                  ag_last_error());
    void *data = ag_data(t);
    for (int64_t i = 0; i < ag_numel(t); i++) {
        if (dt == AG_F32) ((float *)data)[i] = 0.5f + 0.25f * (float)i;
        if (dt == AG_F64) ((double *)data)[i] = 0.5 + 0.25 * (double)i;
        if (dt == AG_I32) ((int32_t *)data)[i] = (int32_t)(i % 2);
    }
    return t;
}

/* Checks that the f64 tensor t holds the n values of want. */
static void expect_values(int line, ag_tensor *t, const double *want, int n)
{
    ck_assert_msg(t != NULL, "line %d: tensor is NULL", line);
    ck_assert_msg(ag_numel(t) == n, "line %d: %lld elements, expected %d", line,
                  (long long)ag_numel(t), n);
    const double *got = ag_data(t);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "line %d: value %d is %g, expected %g",
                      line, i, got[i], want[i]);
}

/* Makes a small tensor in `a` and runs an op on it. */
static void expect_usable(int line, ag_arena *a)
{
    ag_tensor *x = ag_from_data(a, AG_F64, 1, SHAPE(2), (double[]){1.0, 2.0});
    ag_tensor *y = ag_add(a, x, x);
    ck_assert_msg(y != NULL, "line %d: arena unusable after the error: %s",
                  line, ag_last_error());
    expect_values(line, y, (const double[]){2.0, 4.0}, 2);
}

/* Resets `a` and checks that it can be used again. */
static void expect_reset_works(ag_arena *a)
{
    ag_arena_reset(a);
    expect_usable(__LINE__, a);
}

/* Whether msg holds one of the '|'-separated alternatives of want. */
static bool contains_any(const char *msg, const char *want)
{
    char alt[256];
    for (;;) {
        size_t n = strcspn(want, "|");
        if (n >= sizeof alt) n = sizeof alt - 1;
        memcpy(alt, want, n);
        alt[n] = '\0';
        if (strstr(msg, alt)) return true;
        want = strchr(want, '|');
        if (!want) return false;
        want++;
    }
}

/* Checks that the message starts with "fn:" and holds each string of ap. */
static void check_message(int line, const char *call, const char *fn,
                          va_list ap)
{
    const char *msg = ag_last_error();
    ck_assert_msg(msg != NULL, "line %d: %s: ag_last_error() is NULL", line,
                  call);
    size_t n = strlen(fn);
    ck_assert_msg(strncmp(msg, fn, n) == 0 && msg[n] == ':',
                  "line %d: %s: message should start with \"%s:\", got \"%s\"",
                  line, call, fn, msg);
    for (const char *want = va_arg(ap, const char *); want;
         want = va_arg(ap, const char *))
        ck_assert_msg(contains_any(msg, want),
                      "line %d: %s: message lacks \"%s\": \"%s\"", line, call,
                      want, msg);
}

static void expect_null(int line, const char *call, ag_arena *a,
                        const ag_tensor *got, const char *fn, ...)
{
    ck_assert_msg(got == NULL,
                  "line %d: %s: expected NULL with an error from %s, got a "
                  "tensor (message \"%s\")",
                  line, call, fn, ag_last_error());
    va_list ap;
    va_start(ap, fn);
    check_message(line, call, fn, ap);
    va_end(ap);
    expect_usable(line, a);
}

static void expect_fail(int line, const char *call, ag_arena *a, int got,
                        const char *fn, ...)
{
    ck_assert_msg(got == -1,
                  "line %d: %s: expected -1 with an error from %s, got %d "
                  "(message \"%s\")",
                  line, call, fn, got, ag_last_error());
    va_list ap;
    va_start(ap, fn);
    check_message(line, call, fn, ap);
    va_end(ap);
    expect_usable(line, a);
}

static void expect_nan(int line, const char *call, ag_arena *a, double got,
                       const char *fn, ...)
{
    ck_assert_msg(isnan(got),
                  "line %d: %s: expected NaN with an error from %s, got %g "
                  "(message \"%s\")",
                  line, call, fn, got, ag_last_error());
    va_list ap;
    va_start(ap, fn);
    check_message(line, call, fn, ap);
    va_end(ap);
    expect_usable(line, a);
}

static void expect_msg(int line, const char *call, ag_arena *a, const char *fn,
                       ...)
{
    va_list ap;
    va_start(ap, fn);
    check_message(line, call, fn, ap);
    va_end(ap);
    expect_usable(line, a);
}

static void expect_kept(int line, const char *call, const ag_tensor *got,
                        const char *saved)
{
    ck_assert_msg(got == NULL, "line %d: %s: expected NULL for a NULL input",
                  line, call);
    ck_assert_msg(strcmp(ag_last_error(), saved) == 0,
                  "line %d: %s: a NULL input changed the message from \"%s\" "
                  "to \"%s\"",
                  line, call, saved, ag_last_error());
}

/* ------------------------------------------------------------------ */
/* Making tensors                                                      */
/* ------------------------------------------------------------------ */

START_TEST(test_negative_sizes)
{
    ag_arena *a = test_arena;
    double data[6] = {0};
    ag_rng rng = ag_rng_seed(1);
    EXPECT_NULL(a, ag_zeros(a, AG_F64, 2, SHAPE(2, -1)), "ag_zeros", "-1");
    EXPECT_NULL(a, ag_ones(a, AG_F32, 2, SHAPE(-4, 3)), "ag_ones", "-4");
    EXPECT_NULL(a, ag_full(a, AG_F64, 1, SHAPE(-7), 1.0), "ag_full", "-7");
    EXPECT_NULL(a, ag_from_data(a, AG_F64, 2, SHAPE(-2, 3), data),
                "ag_from_data", "-2");
    EXPECT_NULL(a, ag_rand(a, AG_F64, 1, SHAPE(-3), 0.0, 1.0, &rng), "ag_rand",
                "-3");
    EXPECT_NULL(a, ag_randn(a, AG_F64, 1, SHAPE(-5), 0.0, 1.0, &rng),
                "ag_randn", "-5");
    ag_tensor *x = T(a, AG_F64, 2, 3);
    EXPECT_NULL(a, ag_reshape(a, x, 2, SHAPE(3, -2)), "ag_reshape", "-2");
    EXPECT_NULL(a, ag_reshape(a, x, 3, SHAPE(-1, -3, -2)), "ag_reshape", "-3");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_ndim_out_of_range)
{
    ag_arena *a = test_arena;
    const int64_t *nine = SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1);
    double data[1] = {0};
    EXPECT_NULL(a, ag_zeros(a, AG_F64, 9, nine), "ag_zeros", "9");
    EXPECT_NULL(a, ag_zeros(a, AG_F64, -1, nine), "ag_zeros", "-1");
    EXPECT_NULL(a, ag_ones(a, AG_F64, 9, nine), "ag_ones", "9");
    EXPECT_NULL(a, ag_from_data(a, AG_F64, 9, nine, data), "ag_from_data", "9");
    EXPECT_NULL(a, ag_from_data(a, AG_F64, -2, nine, data), "ag_from_data",
                "-2");
    ag_tensor *x = SCALAR(a, AG_F64);
    EXPECT_NULL(a, ag_reshape(a, x, 9, nine), "ag_reshape", "9");
    EXPECT_NULL(a, ag_reshape(a, x, -1, nine), "ag_reshape", "-1");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_element_count_overflow)
{
    ag_arena *a = test_arena;
    const int64_t big = INT64_C(1) << 40;
    double data[1] = {0};
    EXPECT_NULL(a, ag_zeros(a, AG_F64, 2, SHAPE(big, big)), "ag_zeros",
                "(1099511627776,1099511627776)");
    EXPECT_NULL(a, ag_ones(a, AG_F32, 3, SHAPE(1 << 30, 1 << 30, 1 << 30)),
                "ag_ones", "(1073741824,1073741824,1073741824)");
    EXPECT_NULL(a, ag_from_data(a, AG_F64, 2, SHAPE(big, big), data),
                "ag_from_data", "(1099511627776,1099511627776)");
    EXPECT_NULL(a, ag_zeros(a, AG_I32, 2, SHAPE(INT64_MAX, 2)), "ag_zeros",
                "(9223372036854775807,2)");
    ag_tensor *x = T(a, AG_F64, 2, 3);
    EXPECT_NULL(a, ag_reshape(a, x, 2, SHAPE(big, big)), "ag_reshape",
                "(1099511627776,1099511627776)");
    /* No elements, but sizes whose product still overflows: refused too,
     * since strides are computed from them. */
    EXPECT_NULL(a, ag_zeros(a, AG_F32, 3, SHAPE(0, INT64_MAX, INT64_MAX)),
                "ag_zeros", "(0,9223372036854775807,9223372036854775807)");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_byte_size_overflow)
{
    ag_arena *a = test_arena;
    const int64_t half = INT64_C(1) << 31; /* half * half = 2^62 elements */
    EXPECT_NULL(a, ag_zeros(a, AG_F64, 2, SHAPE(half, half)), "ag_zeros", "f64",
                "(2147483648,2147483648)");
    EXPECT_NULL(a, ag_zeros(a, AG_F32, 1, SHAPE(INT64_C(1) << 62)), "ag_zeros",
                "f32", "(4611686018427387904)");
    EXPECT_NULL(a, ag_ones(a, AG_I32, 1, SHAPE(INT64_MAX)), "ag_ones", "i32",
                "(9223372036854775807)");
    EXPECT_NULL(a, ag_full(a, AG_F64, 2, SHAPE(half, half), 2.0), "ag_full",
                "f64", "(2147483648,2147483648)");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_null_arena)
{
    ag_arena *a = test_arena;
    ag_rng rng = ag_rng_seed(2);
    double data[6] = {0};
    EXPECT_NULL(a, ag_zeros(NULL, AG_F64, 1, SHAPE(2)), "ag_zeros");
    EXPECT_NULL(a, ag_ones(NULL, AG_F64, 1, SHAPE(2)), "ag_ones");
    EXPECT_NULL(a, ag_full(NULL, AG_F64, 1, SHAPE(2), 3.0), "ag_full");
    EXPECT_NULL(a, ag_from_data(NULL, AG_F64, 2, SHAPE(2, 3), data),
                "ag_from_data");
    EXPECT_NULL(a, ag_arange(NULL, AG_F64, 0.0, 4.0, 1.0), "ag_arange");
    EXPECT_NULL(a, ag_rand(NULL, AG_F64, 1, SHAPE(2), 0.0, 1.0, &rng),
                "ag_rand");
    EXPECT_NULL(a, ag_randn(NULL, AG_F64, 1, SHAPE(2), 0.0, 1.0, &rng),
                "ag_randn");

    ag_tensor *x = T(a, AG_F64, 2, 3);
    ag_tensor *m = T(a, AG_F64, 3, 2);
    ag_tensor *logits = T(a, AG_F64, 2, 3);
    ag_tensor *targets = T(a, AG_I32, 2);
    EXPECT_NULL(a, ag_detach(NULL, x), "ag_detach");
    for (int i = 0; i < COUNT(unary_ops); i++)
        EXPECT_NULL(a, unary_ops[i].fn(NULL, x), unary_ops[i].name);
    for (int i = 0; i < COUNT(binary_ops); i++)
        EXPECT_NULL(a, binary_ops[i].fn(NULL, x, x), binary_ops[i].name);
    for (int i = 0; i < COUNT(scalar_ops); i++)
        EXPECT_NULL(a, scalar_ops[i].fn(NULL, x, 2.0), scalar_ops[i].name);
    for (int i = 0; i < COUNT(reduce_ops); i++)
        EXPECT_NULL(a, reduce_ops[i].fn(NULL, x, 0, false), reduce_ops[i].name);
    for (int i = 0; i < COUNT(softmax_ops); i++)
        EXPECT_NULL(a, softmax_ops[i].fn(NULL, x, 1), softmax_ops[i].name);
    EXPECT_NULL(a, ag_matmul(NULL, x, m), "ag_matmul");
    EXPECT_NULL(a, ag_reshape(NULL, x, 1, SHAPE(6)), "ag_reshape");
    EXPECT_NULL(a, ag_transpose(NULL, x, 0, 1), "ag_transpose");
    EXPECT_NULL(a, ag_softmax_cross_entropy(NULL, logits, targets),
                "ag_softmax_cross_entropy");
    EXPECT_NULL(a, ag_mse_loss(NULL, x, x), "ag_mse_loss");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_bad_dtype_and_values)
{
    ag_arena *a = test_arena;
    double data[2] = {0};
    EXPECT_NULL(a, ag_zeros(a, (ag_dtype)7, 1, SHAPE(2)), "ag_zeros", "7");
    EXPECT_NULL(a, ag_from_data(a, (ag_dtype)-1, 1, SHAPE(2), data),
                "ag_from_data", "-1");
    EXPECT_NULL(a, ag_full(a, AG_I32, 1, SHAPE(2), 1.5), "ag_full", "1.5");
    EXPECT_NULL(a, ag_full(a, AG_F32, 1, SHAPE(2), 1e39), "ag_full", "1e+39",
                "f32");
    EXPECT_NULL(a, ag_from_data(a, AG_F64, 2, SHAPE(2, 3), NULL),
                "ag_from_data", "(2,3)|6");
    /* Refused before any memory is taken for it. */
    ag_arena *fresh = ag_arena_new();
    ck_assert_ptr_null(
        ag_from_data(fresh, AG_F32, 1, SHAPE(INT64_C(1) << 22), NULL));
    ck_assert_ptr_nonnull(strstr(ag_last_error(), "ag_from_data: "));
    ck_assert_uint_eq(ag_arena_capacity(fresh), 0);
    ag_arena_free(fresh);
    expect_reset_works(a);
}
END_TEST

START_TEST(test_arange)
{
    ag_arena *a = test_arena;
    EXPECT_NULL(a, ag_arange(a, AG_F64, 1.0, 5.0, 0.0), "ag_arange", "0");
    EXPECT_NULL(a, ag_arange(a, AG_I32, 1.0, 5.0, 0.0), "ag_arange", "0");
    EXPECT_NULL(a, ag_arange(a, AG_F64, NAN, 5.0, 1.0), "ag_arange", "nan");
    EXPECT_NULL(a, ag_arange(a, AG_F64, 0.0, INFINITY, 1.0), "ag_arange",
                "inf");
    EXPECT_NULL(a, ag_arange(a, AG_F64, 0.0, 1e300, 1.0), "ag_arange");
    EXPECT_NULL(a, ag_arange(a, AG_I32, 0.0, 2.0, 0.5), "ag_arange", "0.5");
    /* The message names the value that does not fit, not start and step. */
    EXPECT_NULL(a, ag_arange(a, AG_I32, 0.0, 5e9, 1.0), "ag_arange", "5e+09",
                "int32");
    EXPECT_NULL(a, ag_arange(a, AG_I32, 2147483640.0, 2147483650.0, 1.0),
                "ag_arange", "2.14748e+09", "int32");
    EXPECT_NULL(a, ag_arange(a, AG_F64, 0.0, 1e300, 1e-300), "ag_arange",
                "1e+300", "overflows");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_random)
{
    ag_arena *a = test_arena;
    ag_rng rng = ag_rng_seed(3);
    EXPECT_NULL(a, ag_rand(a, AG_F64, 1, SHAPE(4), 0.0, 1.0, NULL), "ag_rand");
    EXPECT_NULL(a, ag_randn(a, AG_F32, 1, SHAPE(4), 0.0, 1.0, NULL),
                "ag_randn");
    EXPECT_NULL(a, ag_rand(a, AG_I32, 1, SHAPE(4), 0.0, 1.0, &rng), "ag_rand",
                "i32");
    EXPECT_NULL(a, ag_randn(a, AG_I32, 1, SHAPE(4), 0.0, 1.0, &rng), "ag_randn",
                "i32");
    EXPECT_NULL(a, ag_rand(a, AG_F64, 1, SHAPE(4), 3.0, 1.0, &rng), "ag_rand",
                "3", "1");
    EXPECT_NULL(a, ag_randn(a, AG_F64, 1, SHAPE(4), 0.0, -2.0, &rng),
                "ag_randn", "-2");
    /* Ranges whose width overflows, or bounds beyond the dtype. */
    EXPECT_NULL(a, ag_rand(a, AG_F64, 1, SHAPE(4), -DBL_MAX, DBL_MAX, &rng),
                "ag_rand", "f64");
    EXPECT_NULL(a, ag_rand(a, AG_F32, 1, SHAPE(4), 0.0, 1e39, &rng), "ag_rand",
                "f32", "1e+39");
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Shapes                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_broadcast_mismatch)
{
    ag_arena *a = test_arena;
    ag_tensor *x = T(a, AG_F64, 2, 3);
    ag_tensor *y = T(a, AG_F64, 4, 3);
    ag_tensor *u = T(a, AG_F64, 2, 1, 3);
    ag_tensor *v = T(a, AG_F64, 4, 2);
    for (int i = 0; i < COUNT(binary_ops); i++) {
        const char *fn = binary_ops[i].name;
        EXPECT_NULL(a, binary_ops[i].fn(a, x, y), fn, "(2,3)", "(4,3)");
        EXPECT_NULL(a, binary_ops[i].fn(a, y, x), fn, "(2,3)", "(4,3)");
        EXPECT_NULL(a, binary_ops[i].fn(a, u, v), fn, "(2,1,3)", "(4,2)");
    }
    expect_reset_works(a);
}
END_TEST

START_TEST(test_matmul_shapes)
{
    ag_arena *a = test_arena;
    ag_tensor *x43 = T(a, AG_F64, 4, 3);
    ag_tensor *x52 = T(a, AG_F64, 5, 2);
    ag_tensor *x3 = T(a, AG_F64, 3);
    ag_tensor *x32 = T(a, AG_F64, 3, 2);
    ag_tensor *x23 = T(a, AG_F64, 2, 3);
    ag_tensor *b234 = T(a, AG_F64, 2, 3, 4);
    ag_tensor *b542 = T(a, AG_F64, 5, 4, 2);
    ag_tensor *s = SCALAR(a, AG_F64);
    EXPECT_NULL(a, ag_matmul(a, x43, x52), "ag_matmul", "(4,3)", "(5,2)");
    EXPECT_NULL(a, ag_matmul(a, x3, x32), "ag_matmul", "(3)");
    EXPECT_NULL(a, ag_matmul(a, x23, x3), "ag_matmul", "(3)");
    EXPECT_NULL(a, ag_matmul(a, s, x32), "ag_matmul", "()");
    EXPECT_NULL(a, ag_matmul(a, b234, b542), "ag_matmul", "(2,3,4)", "(5,4,2)");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_reshape_count)
{
    ag_arena *a = test_arena;
    ag_tensor *x = T(a, AG_F64, 2, 3);
    EXPECT_NULL(a, ag_reshape(a, x, 2, SHAPE(4, 2)), "ag_reshape", "(2,3)",
                "(4,2)");
    EXPECT_NULL(a, ag_reshape(a, x, 0, SHAPE(1)), "ag_reshape", "(2,3)", "()");
    EXPECT_NULL(a, ag_reshape(a, x, 2, SHAPE(4, -1)), "ag_reshape", "(2,3)",
                "(4,-1)");
    EXPECT_NULL(a, ag_reshape(a, x, 2, SHAPE(-1, -1)), "ag_reshape", "(-1,-1)");
    EXPECT_NULL(a, ag_reshape(a, x, 3, SHAPE(-1, 3, -1)), "ag_reshape",
                "(-1,3,-1)");
    /* -1 beside a 0 is ambiguous: any size would do. */
    ag_tensor *empty = T(a, AG_F64, 0, 3);
    EXPECT_NULL(a, ag_reshape(a, empty, 2, SHAPE(-1, 0)), "ag_reshape",
                "(-1,0)");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_max_empty)
{
    ag_arena *a = test_arena;
    ag_tensor *x = T(a, AG_F64, 3, 0);
    EXPECT_NULL(a, ag_max(a, x, 1, false), "ag_max", "(3,0)");
    EXPECT_NULL(a, ag_max(a, x, -1, true), "ag_max", "(3,0)");
    EXPECT_NULL(a, ag_max(a, x, AG_ALL, false), "ag_max", "(3,0)");
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Dtypes                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_mixed_float_types)
{
    ag_arena *a = test_arena;
    ag_tensor *f = T(a, AG_F32, 2, 3);
    ag_tensor *d = T(a, AG_F64, 2, 3);
    ag_tensor *d32 = T(a, AG_F64, 3, 2);
    for (int i = 0; i < COUNT(binary_ops); i++) {
        EXPECT_NULL(a, binary_ops[i].fn(a, f, d), binary_ops[i].name, "f32",
                    "f64");
        EXPECT_NULL(a, binary_ops[i].fn(a, d, f), binary_ops[i].name, "f32",
                    "f64");
    }
    EXPECT_NULL(a, ag_matmul(a, f, d32), "ag_matmul", "f32", "f64");
    EXPECT_NULL(a, ag_mse_loss(a, f, d), "ag_mse_loss", "f32", "f64");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_i32_in_float_ops)
{
    ag_arena *a = test_arena;
    ag_tensor *i = T(a, AG_I32, 2, 2);
    ag_tensor *d = T(a, AG_F64, 2, 2);
    for (int k = 0; k < COUNT(unary_ops); k++)
        EXPECT_NULL(a, unary_ops[k].fn(a, i), unary_ops[k].name, "i32");
    for (int k = 0; k < COUNT(binary_ops); k++) {
        EXPECT_NULL(a, binary_ops[k].fn(a, i, i), binary_ops[k].name, "i32");
        EXPECT_NULL(a, binary_ops[k].fn(a, d, i), binary_ops[k].name, "i32");
    }
    for (int k = 0; k < COUNT(scalar_ops); k++)
        EXPECT_NULL(a, scalar_ops[k].fn(a, i, 2.0), scalar_ops[k].name, "i32");
    for (int k = 0; k < COUNT(reduce_ops); k++)
        EXPECT_NULL(a, reduce_ops[k].fn(a, i, 0, false), reduce_ops[k].name,
                    "i32");
    for (int k = 0; k < COUNT(softmax_ops); k++)
        EXPECT_NULL(a, softmax_ops[k].fn(a, i, 1), softmax_ops[k].name, "i32");
    EXPECT_NULL(a, ag_matmul(a, i, d), "ag_matmul", "i32");
    EXPECT_NULL(a, ag_mse_loss(a, i, i), "ag_mse_loss", "i32");
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Axes                                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_axis_out_of_range)
{
    ag_arena *a = test_arena;
    ag_tensor *x = T(a, AG_F64, 4, 5);
    for (int i = 0; i < COUNT(reduce_ops); i++) {
        const char *fn = reduce_ops[i].name;
        EXPECT_NULL(a, reduce_ops[i].fn(a, x, 2, false), fn, "axis 2", "(4,5)");
        EXPECT_NULL(a, reduce_ops[i].fn(a, x, -3, true), fn, "-3");
        EXPECT_NULL(a, reduce_ops[i].fn(a, x, 7, false), fn, "7");
    }
    for (int i = 0; i < COUNT(softmax_ops); i++) {
        const char *fn = softmax_ops[i].name;
        EXPECT_NULL(a, softmax_ops[i].fn(a, x, 2), fn, "axis 2", "(4,5)");
        EXPECT_NULL(a, softmax_ops[i].fn(a, x, -3), fn, "-3");
    }
    EXPECT_NULL(a, ag_transpose(a, x, 0, 2), "ag_transpose", "2");
    EXPECT_NULL(a, ag_transpose(a, x, -3, 1), "ag_transpose", "-3");
    EXPECT_NULL(a, ag_transpose(a, x, 1, -3), "ag_transpose", "-3");
    EXPECT_NULL(a, ag_transpose(a, x, 7, 0), "ag_transpose", "7");
    /* AG_ALL is for reductions only. */
    EXPECT_NULL(a, ag_softmax(a, x, AG_ALL), "ag_softmax", "AG_ALL");
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Losses                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_cross_entropy_targets)
{
    ag_arena *a = test_arena;
    ag_tensor *logits = T(a, AG_F64, 3, 5);
    ag_tensor *neg =
        ag_from_data(a, AG_I32, 1, SHAPE(3), (int32_t[]){0, -1, 2});
    ag_tensor *big = ag_from_data(a, AG_I32, 1, SHAPE(3), (int32_t[]){0, 5, 2});
    ag_tensor *two = T(a, AG_I32, 2);
    ag_tensor *four = T(a, AG_I32, 4);
    ag_tensor *f32 = T(a, AG_F32, 3);
    ag_tensor *f64 = T(a, AG_F64, 3);
    ck_assert_msg(neg && big, "making targets failed: %s", ag_last_error());
    const char *fn = "ag_softmax_cross_entropy";
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, logits, neg), fn, "-1");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, logits, big), fn, "5");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, logits, two), fn, "(3,5)",
                "(2)");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, logits, four), fn, "(3,5)",
                "(4)");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, logits, f32), fn, "f32");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, logits, f64), fn, "f64");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_cross_entropy_logits)
{
    ag_arena *a = test_arena;
    ag_tensor *targets = T(a, AG_I32, 3);
    ag_tensor *none = T(a, AG_I32, 0);
    const char *fn = "ag_softmax_cross_entropy";
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, T(a, AG_F64, 15), targets), fn,
                "(15)");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, T(a, AG_F64, 3, 5, 1), targets),
                fn, "(3,5,1)");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, T(a, AG_I32, 3, 5), targets), fn,
                "i32");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, T(a, AG_F64, 0, 5), none), fn,
                "(0,5)");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_mse_loss)
{
    ag_arena *a = test_arena;
    EXPECT_NULL(a, ag_mse_loss(a, T(a, AG_F64, 2, 3), T(a, AG_F64, 3, 2)),
                "ag_mse_loss", "(2,3)", "(3,2)");
    EXPECT_NULL(a, ag_mse_loss(a, T(a, AG_F64, 6), T(a, AG_F64, 2, 3)),
                "ag_mse_loss", "(6)", "(2,3)");
    EXPECT_NULL(a, ag_mse_loss(a, T(a, AG_F64, 1, 3), T(a, AG_F64, 3)),
                "ag_mse_loss", "(1,3)", "(3)");
    EXPECT_NULL(a, ag_mse_loss(a, T(a, AG_F64, 0), T(a, AG_F64, 0)),
                "ag_mse_loss", "(0)");
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Scalars and settings                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_nonfinite_scalars)
{
    ag_arena *a = test_arena;
    ag_tensor *x = T(a, AG_F64, 2, 2);
    for (int i = 0; i < COUNT(scalar_ops); i++) {
        const char *fn = scalar_ops[i].name;
        EXPECT_NULL(a, scalar_ops[i].fn(a, x, NAN), fn, "nan");
        EXPECT_NULL(a, scalar_ops[i].fn(a, x, INFINITY), fn, "inf");
        EXPECT_NULL(a, scalar_ops[i].fn(a, x, -INFINITY), fn, "-inf");
    }
    expect_reset_works(a);
}
END_TEST

START_TEST(test_num_threads)
{
    ag_arena *a = test_arena;
    int before = ag_get_num_threads();
    EXPECT_FAIL(a, ag_set_num_threads(0), "ag_set_num_threads", "0");
    EXPECT_FAIL(a, ag_set_num_threads(-2), "ag_set_num_threads", "-2");
    ck_assert_int_eq(ag_get_num_threads(), before);
    /* A valid count takes effect, and the old one can be restored. */
    ck_assert_int_eq(ag_set_num_threads(1), 0);
    ck_assert_int_eq(ag_get_num_threads(), 1);
    ck_assert_int_eq(ag_set_num_threads(before), 0);
    ck_assert_int_eq(ag_get_num_threads(), before);
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Autograd                                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_backward_errors)
{
    ag_arena *a = test_arena;
    ag_tensor *w = T(a, AG_F64, 2, 3);
    ag_requires_grad(w, true);
    ag_tensor *y = ag_scale(a, w, 2.0);
    ag_tensor *empty = T(a, AG_F64, 0);
    ag_requires_grad(empty, true);
    ag_tensor *e = ag_scale(a, empty, 2.0);
    ag_tensor *constant = SCALAR(a, AG_F64);
    ag_tensor *label = SCALAR(a, AG_I32);
    ck_assert_msg(y && e, "setting up failed: %s", ag_last_error());
    EXPECT_FAIL(a, ag_backward(y), "ag_backward", "(2,3)|6");
    EXPECT_FAIL(a, ag_backward(w), "ag_backward", "(2,3)|6");
    EXPECT_FAIL(a, ag_backward(e), "ag_backward", "(0)|0");
    EXPECT_FAIL(a, ag_backward(label), "ag_backward", "i32");
    EXPECT_FAIL(a, ag_backward(constant), "ag_backward");
    ck_assert_int_eq(ag_backward(NULL), -1);
    ck_assert_ptr_null(ag_grad(w));
    expect_reset_works(a);
}
END_TEST

START_TEST(test_failed_calls_keep_gradients)
{
    ag_arena *a = test_arena;
    ag_tensor *w = ag_from_data(a, AG_F64, 1, SHAPE(2), (double[]){1.0, 2.0});
    ag_requires_grad(w, true);
    ag_tensor *sq = ag_mul(a, w, w);
    ag_tensor *loss = ag_sum(a, sq, AG_ALL, false);
    ck_assert_msg(loss != NULL, "building the loss failed: %s",
                  ag_last_error());
    ck_assert_int_eq(ag_backward(loss), 0);
    const double once[2] = {2.0, 4.0}; /* d/dw sum w^2 = 2w */
    expect_values(__LINE__, ag_grad(w), once, 2);
    ag_tensor *sq_grad = ag_grad(sq);
    ck_assert_ptr_nonnull(sq_grad);
    expect_values(__LINE__, sq_grad, (const double[]){1.0, 1.0}, 2);

    EXPECT_FAIL(a, ag_backward(sq), "ag_backward", "(2)|2");
    expect_values(__LINE__, ag_grad(w), once, 2);
    expect_values(__LINE__, ag_grad(sq), (const double[]){1.0, 1.0}, 2);
    EXPECT_FAIL(a, ag_backward(SCALAR(a, AG_F64)), "ag_backward");
    ck_assert_int_eq(ag_backward(NULL), -1);
    EXPECT_NULL(a, ag_add(a, w, T(a, AG_F64, 3)), "ag_add", "(2)", "(3)");
    EXPECT_NULL(a, ag_sum(a, sq, 1, false), "ag_sum", "1");
    expect_values(__LINE__, ag_grad(w), once, 2);
    expect_values(__LINE__, w, (const double[]){1.0, 2.0}, 2);

    /* The graph still works: a second pass adds the same gradient. */
    ck_assert_int_eq(ag_backward(loss), 0);
    expect_values(__LINE__, ag_grad(w), (const double[]){4.0, 8.0}, 2);
    expect_reset_works(a);
}
END_TEST

START_TEST(test_item)
{
    ag_arena *a = test_arena;
    EXPECT_NAN(a, ag_item(T(a, AG_F64, 2, 3)), "ag_item", "(2,3)|6");
    EXPECT_NAN(a, ag_item(T(a, AG_F32, 0)), "ag_item", "(0)|0");
    EXPECT_NAN(a, ag_item(T(a, AG_I32, 2)), "ag_item", "(2)|2");
    expect_reset_works(a);
}
END_TEST

START_TEST(test_requires_grad)
{
    ag_arena *a = test_arena;
    ag_tensor *labels = T(a, AG_I32, 2, 2);
    EXPECT_MSG(a, ag_requires_grad(labels, true), "ag_requires_grad", "i32");
    ck_assert(!ag_is_requires_grad(labels));

    ag_tensor *w = T(a, AG_F64, 2);
    ag_requires_grad(w, true);
    ag_tensor *y = ag_scale(a, w, 3.0);
    ck_assert_msg(y != NULL, "ag_scale failed: %s", ag_last_error());
    ck_assert(ag_is_requires_grad(y));
    EXPECT_MSG(a, ag_requires_grad(y, false), "ag_requires_grad");
    ck_assert(ag_is_requires_grad(y));
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* NULL inputs                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_null_inputs_keep_message)
{
    ag_arena *a = test_arena;
    ag_tensor *x = T(a, AG_F64, 2, 3);
    ag_tensor *m = T(a, AG_F64, 3, 2);
    ag_tensor *targets = T(a, AG_I32, 2);

    /* With no error pending, a NULL input is itself the message. */
    EXPECT_NULL(a, ag_add(a, NULL, x), "ag_add", "input 0 is NULL");
    EXPECT_NULL(a, ag_add(a, x, NULL), "ag_add", "input 1 is NULL");
    EXPECT_NULL(a, ag_exp(a, NULL), "ag_exp", "input 0 is NULL");
    EXPECT_NULL(a, ag_softmax_cross_entropy(a, x, NULL),
                "ag_softmax_cross_entropy", "input 1 is NULL");
    ag_clear_error();
    ck_assert_int_eq(ag_backward(NULL), -1);
    ck_assert_str_eq(ag_last_error(), "ag_backward: input 0 is NULL");

    /* After an error, every op given a NULL input keeps its message. */
    ag_clear_error();
    EXPECT_NULL(a, ag_matmul(a, T(a, AG_F64, 4, 3), T(a, AG_F64, 5, 2)),
                "ag_matmul", "(4,3)", "(5,2)");
    char saved[512];
    snprintf(saved, sizeof saved, "%s", ag_last_error());
    for (int i = 0; i < COUNT(unary_ops); i++)
        EXPECT_KEPT(saved, unary_ops[i].fn(a, NULL));
    for (int i = 0; i < COUNT(binary_ops); i++) {
        EXPECT_KEPT(saved, binary_ops[i].fn(a, NULL, x));
        EXPECT_KEPT(saved, binary_ops[i].fn(a, x, NULL));
        EXPECT_KEPT(saved, binary_ops[i].fn(a, NULL, NULL));
    }
    for (int i = 0; i < COUNT(scalar_ops); i++)
        EXPECT_KEPT(saved, scalar_ops[i].fn(a, NULL, 2.0));
    for (int i = 0; i < COUNT(reduce_ops); i++) {
        EXPECT_KEPT(saved, reduce_ops[i].fn(a, NULL, 0, false));
        EXPECT_KEPT(saved, reduce_ops[i].fn(a, NULL, AG_ALL, true));
    }
    for (int i = 0; i < COUNT(softmax_ops); i++)
        EXPECT_KEPT(saved, softmax_ops[i].fn(a, NULL, -1));
    EXPECT_KEPT(saved, ag_matmul(a, NULL, m));
    EXPECT_KEPT(saved, ag_matmul(a, x, NULL));
    EXPECT_KEPT(saved, ag_reshape(a, NULL, 1, SHAPE(6)));
    EXPECT_KEPT(saved, ag_transpose(a, NULL, 0, 1));
    EXPECT_KEPT(saved, ag_softmax_cross_entropy(a, NULL, targets));
    EXPECT_KEPT(saved, ag_softmax_cross_entropy(a, x, NULL));
    EXPECT_KEPT(saved, ag_mse_loss(a, NULL, x));
    EXPECT_KEPT(saved, ag_mse_loss(a, x, NULL));
    ck_assert_int_eq(ag_backward(NULL), -1);
    ck_assert_str_eq(ag_last_error(), saved);
    EXPECT_KEPT(saved, ag_detach(a, NULL));
    /* A whole expression reports its first error once, at the end. */
    EXPECT_KEPT(saved,
                ag_sum(a,
                       ag_relu(a, ag_matmul(a, x, ag_transpose(a, NULL, 0, 1))),
                       AG_ALL, false));

    /* The inspectors accept NULL quietly too. */
    ck_assert_int_eq(ag_ndim(NULL), 0);
    ck_assert_ptr_null(ag_shape(NULL));
    ck_assert_int_eq(ag_numel(NULL), 0);
    ck_assert_ptr_null(ag_data(NULL));
    ck_assert_ptr_null(ag_grad(NULL));
    ck_assert(!ag_is_requires_grad(NULL));
    ck_assert(isnan(ag_item(NULL)));
    ag_requires_grad(NULL, true);
    ag_zero_grad(NULL);
    ck_assert_str_eq(ag_last_error(), saved);
    expect_usable(__LINE__, a);
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Arena reuse                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_errors_then_reset)
{
    ag_arena *a = test_arena;
    for (int round = 0; round < 3; round++) {
        ag_tensor *x = T(a, AG_F64, 4, 3);
        ag_tensor *y = T(a, AG_F64, 5, 2);
        EXPECT_NULL(a, ag_matmul(a, x, y), "ag_matmul", "(4,3)", "(5,2)");
        EXPECT_NULL(a, ag_sum(a, x, 2, false), "ag_sum", "2");
        EXPECT_NULL(a, ag_zeros(a, AG_F64, 1, SHAPE(-1)), "ag_zeros", "-1");
        ag_arena_reset(a);
        expect_usable(__LINE__, a);
        ag_tensor *z = ag_matmul(a, T(a, AG_F64, 4, 3), T(a, AG_F64, 3, 2));
        ck_assert_msg(z != NULL, "matmul after reset failed: %s",
                      ag_last_error());
        ck_assert_int_eq(ag_ndim(z), 2);
        ck_assert_int_eq(ag_shape(z)[0], 4);
        ck_assert_int_eq(ag_shape(z)[1], 2);
        ag_arena_reset(a);
    }
    expect_reset_works(a);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");

    TCase *make_tc = tcase_create("making tensors");
    tcase_add_checked_fixture(make_tc, setup_arena, teardown_arena);
    tcase_add_test(make_tc, test_negative_sizes);
    tcase_add_test(make_tc, test_ndim_out_of_range);
    tcase_add_test(make_tc, test_element_count_overflow);
    tcase_add_test(make_tc, test_byte_size_overflow);
    tcase_add_test(make_tc, test_null_arena);
    tcase_add_test(make_tc, test_bad_dtype_and_values);
    tcase_add_test(make_tc, test_arange);
    tcase_add_test(make_tc, test_random);
    suite_add_tcase(s, make_tc);

    TCase *op_tc = tcase_create("ops");
    tcase_add_checked_fixture(op_tc, setup_arena, teardown_arena);
    tcase_add_test(op_tc, test_broadcast_mismatch);
    tcase_add_test(op_tc, test_matmul_shapes);
    tcase_add_test(op_tc, test_reshape_count);
    tcase_add_test(op_tc, test_max_empty);
    tcase_add_test(op_tc, test_mixed_float_types);
    tcase_add_test(op_tc, test_i32_in_float_ops);
    tcase_add_test(op_tc, test_axis_out_of_range);
    tcase_add_test(op_tc, test_cross_entropy_targets);
    tcase_add_test(op_tc, test_cross_entropy_logits);
    tcase_add_test(op_tc, test_mse_loss);
    tcase_add_test(op_tc, test_nonfinite_scalars);
    tcase_add_test(op_tc, test_num_threads);
    suite_add_tcase(s, op_tc);

    TCase *grad_tc = tcase_create("autograd");
    tcase_add_checked_fixture(grad_tc, setup_arena, teardown_arena);
    tcase_add_test(grad_tc, test_backward_errors);
    tcase_add_test(grad_tc, test_failed_calls_keep_gradients);
    tcase_add_test(grad_tc, test_item);
    tcase_add_test(grad_tc, test_requires_grad);
    suite_add_tcase(s, grad_tc);

    TCase *null_tc = tcase_create("NULL inputs and arena reuse");
    tcase_add_checked_fixture(null_tc, setup_arena, teardown_arena);
    tcase_add_test(null_tc, test_null_inputs_keep_message);
    tcase_add_test(null_tc, test_errors_then_reset);
    suite_add_tcase(s, null_tc);

    return s;
}

int main(void)
{
    return run_suite(errors_suite());
}
