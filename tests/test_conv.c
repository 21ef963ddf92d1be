/* test_conv.c: ag_conv2d, ag_conv1d, ag_unfold, ag_fold, ag_max_pool2d and
 * ag_avg_pool2d against PyTorch (fixtures/conv_torch.h, made by
 * fixtures/make_conv_fixture.py) with every option: the result, the
 * gradients of sum(y R) by ag_backward (the fast kernels) and by
 * ag_gradients with create_graph (the rules in ops), and the gradients of
 * the sum of those gradients squared (second order), within 1e-10 relative
 * in f64 and 1e-4 in f32; then each error, naming the function and the
 * values, with nothing made, and NULL inputs keeping the pending message;
 * then max pool's 2x2 stride-2 loops against the rule written out (ties,
 * NaN, odd sizes), bit for bit. */
#include <autograd.h>

#include "fixtures/conv_torch.h"
#include "internal.h" /* ag__allocation_count */
#include "support.h"
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ag_arena *arena;

static void setup(void)
{
    arena = ag_arena_new();
    ck_assert(arena != NULL);
}

static void teardown(void)
{
    ag_arena_free(arena);
}

/* The worst relative error of the running case, printed with it. */
static double worst;

static int64_t count(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* A tensor of dtype dt with the fixture's n values from `at`. */
static ag_tensor *from_fixture(ag_dtype dt, int ndim, const int64_t *shape,
                               int at)
{
    ag_tensor *t = ag_zeros(arena, dt, ndim, shape);
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(t); i++)
        tensor_set(t, i, conv_torch_values[at + i]);
    return t;
}

/* Asserts t's shape and its values against the fixture's from `at`. */
static void expect(const char *label, const char *what, const ag_tensor *t,
                   int ndim, const int64_t *shape, int at, ag_dtype dt)
{
    double tol = dt == AG_F64 ? 1e-10 : 1e-4;
    ck_assert_msg(t != NULL, "%s: %s: %s", label, what, ag_last_error());
    ck_assert_msg(ag_ndim(t) == ndim &&
                      !memcmp(ag_shape(t), shape, (size_t)ndim * 8),
                  "%s: %s has another shape than PyTorch's", label, what);
    for (int64_t i = 0; i < ag_numel(t); i++) {
        double want = conv_torch_values[at + i], got = tensor_at(t, i);
        double err = fabs(got - want) / fmax(1, fabs(want));
        if (err > worst) worst = err;
        ck_assert_msg(err <= tol, "%s: %s element %lld: %.17g, PyTorch %.17g",
                      label, what, (long long)i, got, want);
    }
}

static ag_tensor *zeros(ag_dtype dt, int ndim, const int64_t *shape)
{
    ag_tensor *t = ag_zeros(arena, dt, ndim, shape);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* The case's op on x. */
static ag_tensor *apply(const conv_torch_case *c, ag_tensor **x)
{
    ag_conv_options o = {{c->stride[0], c->stride[1]},
                         {c->padding[0], c->padding[1]},
                         {c->dilation[0], c->dilation[1]},
                         c->groups};
    ag_tensor *b = c->n_inputs == 3 ? x[2] : NULL;
    switch (c->kind) {
    case CONV2D:
        return ag_conv2d(arena, x[0], x[1], b, &o);
    case CONV1D:
        return ag_conv1d(arena, x[0], x[1], b, &o);
    case UNFOLD:
        return ag_unfold(arena, x[0], c->kernel[0], c->kernel[1], &o);
    case FOLD:
        return ag_fold(arena, x[0], c->size[0], c->size[1], c->kernel[0],
                       c->kernel[1], &o);
    case MAX_POOL2D:
        return ag_max_pool2d(arena, x[0], c->pool[0], c->pool[1], c->pool[2]);
    default:
        return ag_avg_pool2d(arena, x[0], c->pool[0], c->pool[1], c->pool[2]);
    }
}

static void check_case(const conv_torch_case *c, ag_dtype dt)
{
    int n = c->n_inputs;
    worst = 0;
    ag_tensor *x[3];
    for (int k = 0; k < n; k++) {
        x[k] = from_fixture(dt, c->in_ndim[k], c->in_shape[k], c->in_at[k]);
        ag_requires_grad(x[k], true);
    }
    ag_tensor *y = apply(c, x);
    expect(c->label, "y", y, c->ndim, c->shape, c->out_at, dt);
    ag_tensor *r = from_fixture(dt, c->ndim, c->shape, c->r_at);
    ag_tensor *loss = ag_sum(arena, ag_mul(arena, y, r), AG_ALL, false);
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s", ag_last_error());
    for (int k = 0; k < n; k++)
        expect(c->label, "the backward's gradient", ag_grad(x[k]),
               c->in_ndim[k], c->in_shape[k], c->grad_at[k], dt);
    /* the same from the rules in ops, then differentiated again */
    ag_tensor *g[3], *g2[3], *m = NULL;
    ck_assert_msg(ag_gradients(arena, 1, &loss, NULL, n, x, true, g) == 0, "%s",
                  ag_last_error());
    for (int k = 0; k < n; k++) {
        expect(c->label, "the gradient in ops", g[k], c->in_ndim[k],
               c->in_shape[k], c->grad_at[k], dt);
        ag_tensor *s = ag_sum(arena, ag_mul(arena, g[k], g[k]), AG_ALL, false);
        m = m ? ag_add(arena, m, s) : s;
    }
    /* For the linear ops (unfold, fold, the pools) the gradients do not
     * depend on the inputs: PyTorch's second order is zero, and m records
     * nothing. */
    bool linear = !ag_is_requires_grad(m);
    if (linear)
        for (int k = 0; k < n; k++)
            g2[k] = zeros(dt, c->in_ndim[k], c->in_shape[k]);
    else
        ck_assert_msg(ag_gradients(arena, 1, &m, NULL, n, x, false, g2) == 0,
                      "%s", ag_last_error());
    for (int k = 0; k < n; k++)
        expect(c->label, "the second-order gradient", g2[k], c->in_ndim[k],
               c->in_shape[k], c->grad2_at[k], dt);
    ck_assert(linear == (c->kind != CONV2D && c->kind != CONV1D));
    ck_assert_int_eq(count(c->ndim, c->shape), ag_numel(y));
    printf("%s %s: worst relative error %.3g\n", ag_dtype_name(dt), c->label,
           worst);
}

START_TEST(test_case_f64)
{
    check_case(&conv_torch[_i], AG_F64);
}
END_TEST

START_TEST(test_case_f32)
{
    check_case(&conv_torch[_i], AG_F32);
}
END_TEST

/* A call that fails with a message holding `want`. */
#define EXPECT_ERROR(call, want)                                               \
    do {                                                                       \
        ag_clear_error();                                                      \
        ck_assert_ptr_null(call);                                              \
        ck_assert_msg(strstr(ag_last_error(), want),                           \
                      "got \"%s\", want \"%s\"", ag_last_error(), want);       \
    } while (0)

START_TEST(test_errors)
{
    ag_tensor *x = zeros(AG_F64, 4, (int64_t[]){2, 4, 5, 5});
    ag_tensor *w = zeros(AG_F64, 4, (int64_t[]){6, 4, 3, 3});
    ag_tensor *b = zeros(AG_F64, 1, (int64_t[]){6});
    ag_tensor *x3 = zeros(AG_F64, 3, (int64_t[]){2, 4, 5});
    ag_tensor *w3 = zeros(AG_F64, 3, (int64_t[]){6, 4, 3});
    ag_tensor *xf = zeros(AG_F32, 4, (int64_t[]){2, 4, 5, 5});
    ag_conv_options o = {{0}, {0}, {0}, 0};
    EXPECT_ERROR(ag_conv2d(arena, x3, w, NULL, NULL),
                 "ag_conv2d: x must be 4-D (N,C,H,W), got (2,4,5)");
    EXPECT_ERROR(ag_conv2d(arena, x, w3, NULL, NULL),
                 "ag_conv2d: weight must be 4-D (O,C/groups,kH,kW), got "
                 "(6,4,3)");
    EXPECT_ERROR(ag_conv1d(arena, x, w3, NULL, NULL),
                 "ag_conv1d: x must be 3-D (N,C,L), got (2,4,5,5)");
    EXPECT_ERROR(ag_conv2d(arena, xf, w, NULL, NULL), "ag_conv2d");
    o.groups = 3;
    EXPECT_ERROR(ag_conv2d(arena, x, w, NULL, &o),
                 "ag_conv2d: groups 3 must divide the input channels 4 and "
                 "the output channels 6");
    o.groups = 2; /* 4 and 6 channels in 2 groups: fine */
    ck_assert_ptr_nonnull(
        ag_conv2d(arena, x, zeros(AG_F64, 4, (int64_t[]){6, 2, 3, 3}), b, &o));
    o.groups = 2;
    EXPECT_ERROR(ag_conv2d(arena, x, w, NULL, &o),
                 "ag_conv2d: weight (6,4,3,3) does not match x (2,4,5,5): "
                 "with 2 groups its second size must be 4 / 2 = 2");
    EXPECT_ERROR(ag_conv2d(arena, x, w, zeros(AG_F64, 1, (int64_t[]){5}), NULL),
                 "ag_conv2d: bias (5) does not match weight (6,4,3,3): it "
                 "must be (6)");
    o = (ag_conv_options){{1, -1}, {0}, {0}, 0};
    EXPECT_ERROR(ag_conv2d(arena, x, w, b, &o),
                 "ag_conv2d: stride (1,-1) and dilation (0,0) must be "
                 "positive (0 reads as 1) and padding (0,0) not negative");
    o = (ag_conv_options){{0}, {0, -2}, {0}, 0};
    EXPECT_ERROR(ag_conv2d(arena, x, w, b, &o), "padding (0,-2) not negative");
    o = (ag_conv_options){{0}, {0}, {-1, 0}, 0};
    EXPECT_ERROR(ag_conv2d(arena, x, w, b, &o), "dilation (-1,0) must be");
    o = (ag_conv_options){{0}, {0}, {0}, -1};
    EXPECT_ERROR(ag_conv2d(arena, x, w, b, &o),
                 "ag_conv2d: groups -1 must be positive");
    o = (ag_conv_options){{0}, {0}, {3, 1}, 0};
    EXPECT_ERROR(ag_conv2d(arena, x, w, b, &o),
                 "ag_conv2d: kernel (3,3) with dilation (3,1) is larger than "
                 "the padded input: (5,5), padding (0,0)");
    o = (ag_conv_options){{-2}, {0}, {0}, 0};
    EXPECT_ERROR(ag_conv1d(arena, x3, w3, NULL, &o),
                 "ag_conv1d: stride -2 and dilation 0 must be positive");
    o = (ag_conv_options){{0}, {0}, {3}, 0};
    EXPECT_ERROR(ag_conv1d(arena, x3, w3, NULL, &o),
                 "ag_conv1d: kernel 3 with dilation 3 is larger than the "
                 "padded input: length 5, padding 0");
    EXPECT_ERROR(ag_conv2d(arena, x, zeros(AG_F64, 4, (int64_t[]){0, 4, 3, 3}),
                           NULL, NULL),
                 "ag_conv2d: weight (0,4,3,3) has no output channels");
    /* unfold and fold */
    EXPECT_ERROR(ag_unfold(arena, x3, 2, 2, NULL),
                 "ag_unfold: x must be 4-D (N,C,H,W), got (2,4,5)");
    EXPECT_ERROR(ag_unfold(arena, x, 6, 2, NULL),
                 "ag_unfold: kernel (6,2) with dilation (1,1) is larger");
    EXPECT_ERROR(ag_unfold(arena, x, 0, 2, NULL),
                 "ag_unfold: kernel (0,2) must be at least 1 each");
    o = (ag_conv_options){{0}, {0}, {0}, 2};
    EXPECT_ERROR(ag_unfold(arena, x, 2, 2, &o),
                 "ag_unfold: groups 2: unfold has no groups");
    ag_tensor *cols = zeros(AG_F64, 3, (int64_t[]){2, 8, 16});
    ck_assert_ptr_nonnull(ag_fold(arena, cols, 5, 5, 2, 2, NULL));
    EXPECT_ERROR(ag_fold(arena, cols, 6, 6, 2, 2, NULL),
                 "ag_fold: cols (2,8,16) has 16 blocks; output (6,6) with "
                 "kernel (2,2) has 5 x 5 = 25");
    EXPECT_ERROR(ag_fold(arena, cols, 5, 5, 3, 2, NULL),
                 "ag_fold: cols (2,8,16): its second size must be a multiple "
                 "of the kernel's (3,2) area");
    EXPECT_ERROR(ag_fold(arena, x, 5, 5, 2, 2, NULL),
                 "ag_fold: cols must be 3-D (N,C*kH*kW,L), got (2,4,5,5)");
    EXPECT_ERROR(ag_fold(arena, cols, -1, 5, 2, 2, NULL),
                 "ag_fold: output size (-1,5) must not be negative");
    /* pools */
    EXPECT_ERROR(ag_max_pool2d(arena, x3, 2, 0, 0),
                 "ag_max_pool2d: x must be 4-D (N,C,H,W), got (2,4,5)");
    EXPECT_ERROR(ag_avg_pool2d(arena, x, 0, 0, 0),
                 "ag_avg_pool2d: kernel 0 must be at least 1, stride 0 not "
                 "negative (0: the kernel) and padding 0 not negative");
    EXPECT_ERROR(ag_max_pool2d(arena, x, 2, -1, 0), "stride -1 not negative");
    EXPECT_ERROR(ag_max_pool2d(arena, x, 2, 1, -1), "padding -1 not negative");
    EXPECT_ERROR(ag_max_pool2d(arena, x, 3, 1, 2),
                 "ag_max_pool2d: padding 2 is more than half the kernel 3");
    EXPECT_ERROR(ag_avg_pool2d(arena, x, 6, 1, 0),
                 "ag_avg_pool2d: kernel 6 is larger than the padded input "
                 "(2,4,5,5) with padding 0");
}
END_TEST

/* A NULL input keeps the message that explains it. */
START_TEST(test_null_inputs)
{
    ag_tensor *x = zeros(AG_F64, 4, (int64_t[]){1, 2, 4, 4});
    ag_tensor *w = zeros(AG_F64, 4, (int64_t[]){3, 2, 2, 2});
    ag_tensor *bad = ag_reshape(arena, x, 1, (int64_t[]){5});
    ck_assert_ptr_null(bad);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", ag_last_error());
    ck_assert_ptr_null(ag_conv2d(arena, bad, w, NULL, NULL));
    ck_assert_ptr_null(ag_conv2d(arena, x, bad, NULL, NULL));
    ck_assert_ptr_null(ag_conv1d(arena, bad, bad, NULL, NULL));
    ck_assert_ptr_null(ag_unfold(arena, bad, 2, 2, NULL));
    ck_assert_ptr_null(ag_fold(arena, bad, 2, 2, 2, 2, NULL));
    ck_assert_ptr_null(ag_max_pool2d(arena, bad, 2, 0, 0));
    ck_assert_ptr_null(ag_avg_pool2d(arena, bad, 2, 0, 0));
    ck_assert_str_eq(ag_last_error(), msg);
}
END_TEST

/* conv2d's forward and backward split the images over the threads: the
 * same numbers, bit for bit, on 1, 2 and 3 threads. */
START_TEST(test_threads_agree)
{
    int before = ag_get_num_threads();
    ag_rng rng = ag_rng_seed(7);
    ag_tensor *x =
        ag_randn(arena, AG_F64, 4, (int64_t[]){5, 4, 9, 8}, 0, 1, &rng);
    ag_tensor *w =
        ag_randn(arena, AG_F64, 4, (int64_t[]){6, 2, 3, 3}, 0, 1, &rng);
    ag_tensor *b = ag_randn(arena, AG_F64, 1, (int64_t[]){6}, 0, 1, &rng);
    ag_requires_grad(x, true);
    ag_requires_grad(w, true);
    ag_requires_grad(b, true);
    ag_conv_options o = {{1, 1}, {1, 1}, {1, 1}, 2};
    ag_tensor *first[4] = {NULL};
    for (int threads = 1; threads <= 3; threads++) {
        ck_assert_int_eq(ag_set_num_threads(threads), 0);
        ag_zero_grad(x);
        ag_zero_grad(w);
        ag_zero_grad(b);
        ag_tensor *y = ag_conv2d(arena, x, w, b, &o);
        ag_tensor *l = ag_sum(arena, ag_mul(arena, y, y), AG_ALL, false);
        ck_assert_msg(l && ag_backward(l) == 0, "%s", ag_last_error());
        ag_tensor *got[4] = {y, ag_detach(arena, ag_grad(x)),
                             ag_detach(arena, ag_grad(w)),
                             ag_detach(arena, ag_grad(b))};
        expect_same_bits(got, first, 4, threads);
    }
    ag_set_num_threads(before);
}
END_TEST

/* Max pool's own 2x2 stride-2 loops (lib/ops/pool.c) against the rule
 * written out here: each window read in row-major order from -inf, a value
 * replacing the best when larger or NaN (so the first of tied maxima wins,
 * and the last NaN), floor mode dropping an odd last row or column. The
 * values have many ties (-0 against 0 among them), NaN (twice in some
 * windows) and windows of -inf only; f64 and f32, batch and channels > 1,
 * even and odd sizes, one shape large enough to be split over the threads.
 * The result and the gradient of sum(y R) must match bit for bit, on the
 * first backward (the gradient's buffer stored) and the second (added to). */
static void check_pool_2x2(ag_dtype dt, const int64_t *shape)
{
    int64_t N = shape[0], C = shape[1], H = shape[2], W = shape[3];
    int64_t OH = H / 2, OW = W / 2, n = N * C * H * W, m = N * C * OH * OW;
    double *xv = malloc((size_t)n * sizeof *xv);
    double *want_dx = calloc((size_t)n, sizeof *want_dx);
    double *rv = malloc((size_t)m * sizeof *rv);
    double *want_y = malloc((size_t)m * sizeof *want_y);
    double *got = malloc((size_t)(n > m ? n : m) * sizeof *got);
    ck_assert(xv && want_dx && rv && want_y && got);
    for (int64_t j = 0; j < n; j++) {
        int64_t r = (j * 7 + j / 5) % 11;
        xv[j] = r == 0 ? -0.0 : r == 1 ? NAN : (double)(r % 4);
        if ((j / W) % 5 == 3 || (j / 17) % 9 == 4) xv[j] = -INFINITY;
    }
    for (int64_t l = 0; l < m; l++)
        rv[l] = l % 13 == 5 ? -0.0 : (double)(l % 7 - 3) * 0.25;
    for (int64_t pl = 0; pl < N * C; pl++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double best = -INFINITY;
                int64_t where = pl * H * W + 2 * oh * W + 2 * ow;
                for (int64_t i = 2 * oh; i < 2 * oh + 2; i++)
                    for (int64_t j = 2 * ow; j < 2 * ow + 2; j++) {
                        double v = xv[pl * H * W + i * W + j];
                        if (v > best || isnan(v)) {
                            best = v;
                            where = pl * H * W + i * W + j;
                        }
                    }
                int64_t l = (pl * OH + oh) * OW + ow;
                want_y[l] = best;
                want_dx[where] = 0 + rv[l];
            }
    ag_tensor *x = ag_from_data(arena, AG_F64, 4, shape, xv);
    ag_tensor *r =
        ag_from_data(arena, AG_F64, 4, (int64_t[]){N, C, OH, OW}, rv);
    x = ag_detach(arena, ag_cast(arena, x, dt));
    r = ag_cast(arena, r, dt);
    ck_assert_msg(x && r, "%s", ag_last_error());
    ag_requires_grad(x, true);
    for (int pass = 1; pass <= 2; pass++) {
        ag_tensor *y = ag_max_pool2d(arena, x, 2, 0, 0);
        ck_assert_msg(y, "%s", ag_last_error());
        ck_assert_int_eq(y->shape[2], OH);
        ck_assert_int_eq(y->shape[3], OW);
        ag_tensor *l = ag_sum(arena, ag_mul(arena, y, r), AG_ALL, false);
        ck_assert_msg(l && ag_backward(l) == 0, "%s", ag_last_error());
        ag_tensor *yd = ag_cast(arena, y, AG_F64);
        ag_tensor *dxd = ag_cast(arena, ag_grad(x), AG_F64);
        ck_assert(yd && dxd);
        memcpy(got, ag_data(yd), (size_t)m * sizeof *got);
        for (int64_t j = 0; j < m; j++)
            ck_assert_msg(memcmp(&got[j], &want_y[j], sizeof *got) == 0 ||
                              (isnan(got[j]) && isnan(want_y[j])),
                          "(%lld,%lld,%lld,%lld) y[%lld] %g, want %g",
                          (long long)N, (long long)C, (long long)H,
                          (long long)W, (long long)j, got[j], want_y[j]);
        memcpy(got, ag_data(dxd), (size_t)n * sizeof *got);
        for (int64_t j = 0; j < n; j++) {
            double want = pass == 1 ? want_dx[j] : want_dx[j] + want_dx[j];
            ck_assert_msg(memcmp(&got[j], &want, sizeof want) == 0,
                          "(%lld,%lld,%lld,%lld) pass %d dx[%lld] %g, want %g",
                          (long long)N, (long long)C, (long long)H,
                          (long long)W, pass, (long long)j, got[j], want);
        }
    }
    free(xv);
    free(want_dx);
    free(rv);
    free(want_y);
    free(got);
}

START_TEST(test_max_pool_2x2)
{
    static const int64_t shapes[][4] = {
        {2, 3, 6, 6}, {3, 2, 7, 9}, {1, 4, 5, 4},
        {2, 1, 2, 3}, {1, 1, 3, 2}, {8, 9, 33, 31}, /* 73656 elements: split */
    };
    int before = ag_get_num_threads();
    for (int threads = 1; threads <= 2; threads++) {
        ck_assert_int_eq(ag_set_num_threads(threads), 0);
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            check_pool_2x2(AG_F64, shapes[k]);
            check_pool_2x2(AG_F32, shapes[k]);
        }
    }
    ag_set_num_threads(before);
}
END_TEST

/* A training step of conv2d, pools and their backward allocates nothing
 * once its arena has grown (the columns and scratch live in the arena). */
START_TEST(test_no_allocation_in_a_step)
{
    ag_rng rng = ag_rng_seed(3);
    ag_tensor *x =
        ag_randn(arena, AG_F32, 4, (int64_t[]){4, 3, 8, 8}, 0, 1, &rng);
    ag_tensor *w =
        ag_randn(arena, AG_F32, 4, (int64_t[]){5, 3, 3, 3}, 0, 1, &rng);
    ag_tensor *b = ag_zeros(arena, AG_F32, 1, (int64_t[]){5});
    ag_requires_grad(w, true);
    ag_requires_grad(b, true);
    ag_arena *step = ag_arena_new();
    ck_assert_ptr_nonnull(step);
    ag_conv_options o = {{1, 1}, {1, 1}, {1, 1}, 1};
    long counts[3];
    for (int k = 0; k < 3; k++) {
        long before = ag__allocation_count();
        ag_tensor *y = ag_relu(step, ag_conv2d(step, x, w, b, &o));
        y = ag_avg_pool2d(step, ag_max_pool2d(step, y, 2, 0, 0), 2, 0, 1);
        ag_tensor *l = ag_sum(step, y, AG_ALL, false);
        ck_assert_msg(l && ag_backward(l) == 0, "%s", ag_last_error());
        ag_arena_reset(step);
        counts[k] = ag__allocation_count() - before;
    }
    ck_assert_int_gt(counts[0], 0); /* the first step grows the arena */
    ck_assert_int_eq(counts[2], 0);
    ag_arena_free(step);
}
END_TEST

static Suite *conv_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("torch");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_case_f64, 0, CONV_TORCH_CASES);
    tcase_add_loop_test(tc, test_case_f32, 0, CONV_TORCH_CASES);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_null_inputs);
    tcase_add_test(tc, test_threads_agree);
    tcase_add_test(tc, test_max_pool_2x2);
    tcase_add_test(tc, test_no_allocation_in_a_step);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(conv_suite());
}
