/* test_overflow.c: shapes too big to exist. Every function that makes a
 * tensor of a shape it is given or computes (the constructors, ag_reshape,
 * the broadcasting ops, ag_matmul, ag_linear, Linear layers and MLPs, the
 * batcher's order) must refuse a shape whose element count overflows
 * int64_t, or whose byte size overflows size_t or int64_t, with an error
 * naming the function and the shape, before it allocates anything: the
 * arena it was given still holds no memory afterwards. Sizes of 0 do not
 * excuse the others: (0, 2^32, 2^32) has no elements, but the product of
 * its other sizes overflows, and strides are computed from it.
 *
 * A byte size that fits but cannot be had (2^62 bytes) is not an overflow:
 * malloc fails, and the function returns NULL with "out of memory" (the
 * sanitize setup lets AddressSanitizer's malloc return NULL for it).
 *
 * Ops whose result is no bigger than an input (elementwise ops, reductions,
 * transpose, softmax, losses) cannot overflow; the loaders' checks are
 * tested with their files (test_datasets.c, test_safetensors.c). */
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

#define P(k) (INT64_C(1) << (k))
#define HALF_SIZE ((int64_t)(SIZE_MAX / 2)) /* INT64_MAX on 64 bits */

/* `in` holds the inputs; `out` is where each refused call must allocate
 * nothing. A checked fixture makes and frees both. */
static ag_arena *in, *out;

static void setup(void)
{
    in = ag_arena_new();
    out = ag_arena_new();
    ck_assert(in && out);
}

static void teardown(void)
{
    ag_arena_free(in);
    ag_arena_free(out);
}

/* Replaces `out` by a new arena, after a call that was allowed to allocate
 * (one that ran out of memory). */
static void fresh_out(void)
{
    ag_arena_free(out);
    out = ag_arena_new();
    ck_assert(out != NULL);
}

/* "(d0,d1,...)" in one of a few rotating buffers. */
static const char *shape_text(int ndim, const int64_t *shape)
{
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    size_t used = (size_t)snprintf(b, 256, "(");
    for (int d = 0; d < ndim; d++)
        used += (size_t)snprintf(b + used, 256 - used, "%s%lld", d ? "," : "",
                                 (long long)shape[d]);
    snprintf(b + used, 256 - used, ")");
    return b;
}

/* The call returned NULL (failed is true) with a message that starts with
 * "fn:" and holds every further string (up to NULL), and `out` holds no
 * memory. */
#define REFUSED(call, fn, ...)                                                 \
    refused(__LINE__, #call, (ag_clear_error(), (call) == NULL), fn,           \
            __VA_ARGS__, (const char *)NULL)

static void refused(int line, const char *call, bool failed, const char *fn,
                    ...)
{
    const char *msg = ag_last_error();
    ck_assert_msg(failed, "line %d: %s did not fail (message \"%s\")", line,
                  call, msg);
    size_t n = strlen(fn);
    ck_assert_msg(strncmp(msg, fn, n) == 0 && msg[n] == ':',
                  "line %d: %s: message \"%s\" does not start with \"%s:\"",
                  line, call, msg, fn);
    va_list ap;
    va_start(ap, fn);
    for (const char *s = va_arg(ap, const char *); s;
         s = va_arg(ap, const char *))
        ck_assert_msg(strstr(msg, s),
                      "line %d: %s: message \"%s\" lacks \"%s\"", line, call,
                      msg, s);
    va_end(ap);
    ck_assert_msg(ag_arena_capacity(out) == 0,
                  "line %d: %s allocated %zu bytes before refusing", line, call,
                  ag_arena_capacity(out));
}

/* An input in `in` (zeros; most have no elements). */
static ag_tensor *input(ag_dtype dt, int ndim, const int64_t *shape)
{
    ag_tensor *t = ag_zeros(in, dt, ndim, shape);
    ck_assert_msg(t != NULL, "input %s: %s", shape_text(ndim, shape),
                  ag_last_error());
    return t;
}
#define INPUT(dt, ...) input(dt, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__))

/* ------------------------------------------------------------------ */
/* Constructors                                                        */
/* ------------------------------------------------------------------ */

/* Shapes that no dtype can have. */
static const struct {
    int ndim;
    int64_t shape[3];
} never[] = {
    {2, {HALF_SIZE, 3}},    /* count: 3 (2^63 - 1) */
    {2, {P(32), P(32)}},    /* count: 2^64 */
    {2, {P(31), P(31)}},    /* 2^62 elements: 2^64 bytes even as f32 */
    {3, {0, P(32), P(32)}}, /* no elements; the rest is 2^64 */
    {3, {P(40), 0, P(24)}}, /* no elements; the rest is 2^64 */
    {3, {HALF_SIZE, 1, 2}}, /* count */
    {1, {P(61) + 1}},       /* over 2^63 bytes as f32 or i32 */
};

typedef ag_tensor *(*make_fn)(ag_dtype dt, int ndim, const int64_t *shape);

static ag_rng rng;
static const float one_value[1] = {1};

static ag_tensor *make_zeros(ag_dtype dt, int ndim, const int64_t *shape)
{
    return ag_zeros(out, dt, ndim, shape);
}
static ag_tensor *make_ones(ag_dtype dt, int ndim, const int64_t *shape)
{
    return ag_ones(out, dt, ndim, shape);
}
static ag_tensor *make_full(ag_dtype dt, int ndim, const int64_t *shape)
{
    return ag_full(out, dt, ndim, shape, 2.0);
}
/* The data pointer must never be read: the shape is refused first. */
static ag_tensor *make_from_data(ag_dtype dt, int ndim, const int64_t *shape)
{
    return ag_from_data(out, dt, ndim, shape, one_value);
}
static ag_tensor *make_rand(ag_dtype dt, int ndim, const int64_t *shape)
{
    return ag_rand(out, dt, ndim, shape, -1, 1, &rng);
}
static ag_tensor *make_randn(ag_dtype dt, int ndim, const int64_t *shape)
{
    return ag_randn(out, dt, ndim, shape, 0, 1, &rng);
}

static const struct {
    const char *name;
    make_fn make;
    bool floats_only;
} makers[] = {
    {"ag_zeros", make_zeros, false}, {"ag_ones", make_ones, false},
    {"ag_full", make_full, false},   {"ag_from_data", make_from_data, false},
    {"ag_rand", make_rand, true},    {"ag_randn", make_randn, true},
};

#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

START_TEST(test_constructors_refuse_overflow)
{
    rng = ag_rng_seed(1);
    const ag_dtype dtypes[3] = {AG_F32, AG_F64, AG_I32};
    for (int m = 0; m < COUNT(makers); m++)
        for (int d = 0; d < 3; d++) {
            if (makers[m].floats_only && dtypes[d] == AG_I32) continue;
            for (int s = 0; s < COUNT(never); s++) {
                const int64_t *shape = never[s].shape;
                int ndim = never[s].ndim;
                REFUSED(makers[m].make(dtypes[d], ndim, shape), makers[m].name,
                        shape_text(ndim, shape), "overflows");
            }
        }
}
END_TEST

/* 2^60 elements: 2^63 bytes as f64 overflow int64_t, but 2^62 bytes as f32
 * or i32 are only too many to allocate. */
START_TEST(test_byte_size_overflows_for_f64_only)
{
    rng = ag_rng_seed(2);
    const int64_t *shape = SHAPE(P(30), P(30));
    for (int m = 0; m < COUNT(makers); m++) {
        REFUSED(makers[m].make(AG_F64, 2, shape), makers[m].name, "f64",
                "(1073741824,1073741824)", "byte size", "overflows");
        ag_clear_error();
        ck_assert_ptr_null(makers[m].make(AG_F32, 2, shape));
        ck_assert_msg(strstr(ag_last_error(), "out of memory for f32 tensor of "
                                              "shape (1073741824,1073741824)"),
                      "%s", ag_last_error());
        fresh_out();
    }
    /* (2^31 - 1)^2 f32 elements take under 2^64 bytes, which fits size_t,
     * but over 2^63: refused as well. */
    REFUSED(ag_zeros(out, AG_F32, 2, SHAPE(P(31) - 1, P(31) - 1)), "ag_zeros",
            "byte size", "overflows");
}
END_TEST

START_TEST(test_arange_refuses_overflow)
{
    REFUSED(ag_arange(out, AG_F64, 0, 0x1p63, 1), "ag_arange", "element count",
            "overflows int64_t");
    REFUSED(ag_arange(out, AG_F32, -0x1p62, 0x1p62, 1), "ag_arange",
            "overflows int64_t");
    REFUSED(ag_arange(out, AG_F64, 0, 0x1p62, 1), "ag_arange", "byte size",
            "(4611686018427387904)");
    REFUSED(ag_arange(out, AG_F64, 0, 0x1p60, 1), "ag_arange", "byte size",
            "(1152921504606846976)");
    REFUSED(ag_arange(out, AG_F32, 0, 0x1p62, 1), "ag_arange", "byte size");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Shapes that ops compute                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_reshape_refuses_overflow)
{
    ag_tensor *empty = INPUT(AG_F64, 0);
    REFUSED(ag_reshape(out, empty, 3, SHAPE(0, P(32), P(32))), "ag_reshape",
            "(0,4294967296,4294967296)", "overflows");
    REFUSED(ag_reshape(out, empty, 3, SHAPE(HALF_SIZE, 3, 0)), "ag_reshape",
            "(9223372036854775807,3,0)", "overflows");
    /* With the -1 to infer, the other sizes alone overflow. */
    REFUSED(ag_reshape(out, empty, 3, SHAPE(-1, P(32), P(32))), "ag_reshape",
            "4294967296,4294967296)", "overflows");
    ag_tensor *x = INPUT(AG_F32, 2, 3);
    REFUSED(ag_reshape(out, x, 2, SHAPE(P(32), P(32))), "ag_reshape",
            "(4294967296,4294967296)", "overflows");
    REFUSED(ag_reshape(out, x, 2, SHAPE(-1, HALF_SIZE)), "ag_reshape",
            "cannot reshape (2,3) (6 elements) to (-1,9223372036854775807)");
}
END_TEST

typedef ag_tensor *(*binary_fn)(ag_arena *, ag_tensor *, ag_tensor *);

START_TEST(test_broadcast_refuses_overflow)
{
    const struct {
        const char *name;
        binary_fn fn;
    } ops[] = {{"ag_add", ag_add},
               {"ag_sub", ag_sub},
               {"ag_mul", ag_mul},
               {"ag_div", ag_div}};
    /* Each input is fine (no elements, 2^32 in the other sizes); their
     * broadcast (0, 2^32, 2^32) is not. */
    ag_tensor *x = INPUT(AG_F32, 0, P(32), 1), *y = INPUT(AG_F32, 0, 1, P(32));
    ag_tensor *u = INPUT(AG_F64, P(32), 1, 0), *v = INPUT(AG_F64, P(32), 0);
    for (int i = 0; i < COUNT(ops); i++) {
        REFUSED(ops[i].fn(out, x, y), ops[i].name, "(0,4294967296,4294967296)",
                "overflows");
        REFUSED(ops[i].fn(out, u, v), ops[i].name, "(4294967296,4294967296,0)",
                "overflows");
    }
}
END_TEST

START_TEST(test_matmul_refuses_overflow)
{
    /* m = n = 2^30, k = 0: 2^60 zeros, 2^63 bytes of f64. */
    ag_tensor *a = INPUT(AG_F64, P(30), 0), *b = INPUT(AG_F64, 0, P(30));
    REFUSED(ag_matmul(out, a, b), "ag_matmul", "byte size", "f64",
            "(1073741824,1073741824)");
    /* m = n = 2^31 - 1 as f32: over 2^63 bytes. */
    a = INPUT(AG_F32, P(31) - 1, 0);
    b = INPUT(AG_F32, 0, P(31) - 1);
    REFUSED(ag_matmul(out, a, b), "ag_matmul", "byte size", "f32");
    /* A batch of 2^20 products of (2^21, 0) @ (0, 2^30): 2^71 elements. */
    a = INPUT(AG_F32, P(20), P(21), 0);
    b = INPUT(AG_F32, 0, P(30));
    REFUSED(ag_matmul(out, a, b), "ag_matmul", "(1048576,2097152,1073741824)",
            "element count");
    /* Batch dimensions that broadcast to (2^32, 2^32). */
    a = INPUT(AG_F32, P(32), 1, 1, 0);
    b = INPUT(AG_F32, 1, P(32), 0, 1);
    REFUSED(ag_matmul(out, a, b), "ag_matmul", "(4294967296,4294967296,1,1)",
            "element count");
}
END_TEST

START_TEST(test_linear_refuses_overflow)
{
    /* x (0, 2^62, 1) @ W^T (1, 2): the result (0, 2^62, 2) overflows. */
    ag_tensor *x = INPUT(AG_F32, 0, P(62), 1);
    ag_tensor *w = INPUT(AG_F32, 2, 1), *b = INPUT(AG_F32, 2);
    REFUSED(ag_linear(out, x, w, b), "ag_linear", "(0,4611686018427387904,2)",
            "overflows");
    REFUSED(ag_linear(out, x, w, NULL), "ag_linear",
            "(0,4611686018427387904,2)", "overflows");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Layers, models, the batcher                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_layers_refuse_overflow)
{
    rng = ag_rng_seed(3);
    REFUSED(ag_linear_layer_new(out, AG_F32, P(32), P(32), true,
                                AG_INIT_DEFAULT, &rng),
            "ag_linear_layer_new", "weight", "(4294967296,4294967296)",
            "overflows");
    REFUSED(ag_linear_layer_new(out, AG_F64, P(30), P(30), false,
                                AG_INIT_NORMAL, &rng),
            "ag_linear_layer_new", "weight", "byte size", "f64");
    /* An MLP checks every layer before it allocates the first. */
    REFUSED(ag_mlp_new(out, 3, SHAPE(4, 8, P(62)), NULL), "ag_mlp_new",
            "layer 1 (8 -> 4611686018427387904) weight",
            "(4611686018427387904,8)", "overflows");
    REFUSED(ag_mlp_new(out, 2, SHAPE(HALF_SIZE, 3), NULL), "ag_mlp_new",
            "layer 0", "(3,9223372036854775807)", "overflows");
    ag_mlp_options f64 = {.dtype = AG_F64};
    REFUSED(ag_mlp_new(out, 3, SHAPE(2, P(30), P(30)), &f64), "ag_mlp_new",
            "layer 1", "byte size", "f64");
}
END_TEST

START_TEST(test_batcher_refuses_overflow)
{
    /* 2^61 + 1 examples without features: their order would take over 2^64
     * bytes; 2^60 of them, 2^63 bytes, over INT64_MAX. */
    ag_tensor *x = INPUT(AG_F32, P(61) + 1, 0);
    ag_tensor *y = INPUT(AG_I32, P(61) + 1, 0);
    REFUSED(ag_batcher_new(out, x, y, 16, true, 1, false), "ag_batcher_new",
            "2305843009213693953 examples", "overflows");
    x = INPUT(AG_F32, P(60), 0);
    y = INPUT(AG_I32, P(60), 0);
    REFUSED(ag_batcher_new(out, x, y, 16, true, 1, false), "ag_batcher_new",
            "1152921504606846976 examples", "overflows");
    /* 2^59 of them fit in 2^62 bytes, which malloc cannot give. */
    x = INPUT(AG_F32, P(59), 0);
    y = INPUT(AG_I32, P(59), 0);
    ag_clear_error();
    ck_assert_ptr_null(ag_batcher_new(out, x, y, 16, false, 1, false));
    ck_assert_msg(strstr(ag_last_error(), "ag_batcher_new: out of memory for "
                                          "576460752303423488 examples"),
                  "%s", ag_last_error());
}
END_TEST

static Suite *overflow_suite(void)
{
    Suite *s = suite_create("overflow");
    TCase *tc = tcase_create("make");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_constructors_refuse_overflow);
    tcase_add_test(tc, test_byte_size_overflows_for_f64_only);
    tcase_add_test(tc, test_arange_refuses_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reshape_refuses_overflow);
    tcase_add_test(tc, test_broadcast_refuses_overflow);
    tcase_add_test(tc, test_matmul_refuses_overflow);
    tcase_add_test(tc, test_linear_refuses_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("layers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_layers_refuse_overflow);
    tcase_add_test(tc, test_batcher_refuses_overflow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(overflow_suite());
}
