/* test_parallel.c: the library's own threads (ag_set_num_threads). Training
 * steps large enough to split products and elementwise kernels agree on 2
 * and 3 threads with 1 thread up to rounding (OpenBLAS rounds a product
 * split in parts differently), and give the same bits every time for one
 * thread count, for f32 and f64, with SGD and Adam, for products split by
 * rows and by columns, and for shapes that leave a thread no work; two user
 * threads that train at once (one finds the workers busy and runs its parts
 * itself) both get the bits of a run alone, and so does the child of a fork
 * made after the workers started; the workers run in the floating-point
 * mode of the thread that gives them a job (subnormals flushed or not);
 * large elementwise ops (broadcast ones split in the middle of rows), the
 * sum and mean reductions' backward and layer norm give the same bits on
 * 1, 2 and 3 threads. */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A training run and what it produced: the loss of every step and the
 * final parameters, copied out as bytes. */
#define STEPS 3

typedef struct {
    ag_dtype dtype;
    bool adam;
    int64_t batch, sizes[4];
    double losses[STEPS];
    unsigned char *params; /* malloc'd by train, freed by run_free */
    size_t param_bytes;
    bool ok;
} run;

/* Trains an MLP of `r->sizes` on fixed random data for STEPS steps. */
static void *train(void *arg)
{
    run *r = arg;
    ag_arena *pa = ag_arena_new(), *step = ag_arena_new();
    ag_mlp *m = ag_mlp_new(pa, 4, r->sizes,
                           &(ag_mlp_options){.dtype = r->dtype, .seed = 7});
    ag_optimizer *opt =
        !m        ? NULL
        : r->adam ? ag_adam_new(pa, m->params, NULL)
                  : ag_sgd_new(pa, m->params,
                               &(ag_sgd_options){.lr = 0.1, .momentum = 0.9});
    ag_rng rng = ag_rng_seed(3);
    int64_t xs[2] = {r->batch, r->sizes[0]};
    ag_tensor *x = ag_rand(pa, r->dtype, 2, xs, -1, 1, &rng);
    ag_tensor *y = ag_zeros(pa, AG_I32, 1, &r->batch);
    r->ok = opt && x && y;
    for (int64_t i = 0; r->ok && i < r->batch; i++)
        ((int32_t *)ag_data(y))[i] = (int32_t)(i % r->sizes[3]);
    for (int s = 0; r->ok && s < STEPS; s++) {
        ag_tensor *loss =
            ag_softmax_cross_entropy(step, ag_mlp_forward(step, m, x), y);
        r->ok = loss && ag_backward(loss) == 0 && ag_optimizer_step(opt) == 0;
        if (r->ok) r->losses[s] = tensor_at(loss, 0);
        ag_optimizer_clear_grad(opt);
        ag_arena_reset(step);
    }
    size_t elem = r->dtype == AG_F32 ? 4 : 8;
    r->param_bytes = 0;
    r->params =
        r->ok ? malloc((size_t)ag_params_numel(m->params) * elem) : NULL;
    r->ok = r->ok && r->params;
    for (int i = 0; r->ok && i < ag_params_count(m->params); i++) {
        ag_tensor *p = ag_params_tensor(m->params, i);
        size_t bytes = (size_t)ag_numel(p) * elem;
        memcpy(r->params + r->param_bytes, ag_data(p), bytes);
        r->param_bytes += bytes;
    }
    ag_arena_free(pa);
    ag_arena_free(step);
    return NULL;
}

static run run_of(ag_dtype dt, bool adam, const int64_t *shape)
{
    return (run){.dtype = dt,
                 .adam = adam,
                 .batch = shape[0],
                 .sizes = {shape[1], shape[2], shape[2], shape[3]}};
}

static void run_free(run *r)
{
    free(r->params);
    r->params = NULL;
}

/* Elementwise |a - b| <= tol * max(1, |a|) over the losses and the
 * parameters. */
static void expect_close(const run *a, const run *b, double tol)
{
    ck_assert(a->ok && b->ok);
    ck_assert_uint_eq(a->param_bytes, b->param_bytes);
    for (int s = 0; s < STEPS; s++)
        ck_assert_double_eq_tol(a->losses[s], b->losses[s],
                                tol * fmax(1, fabs(a->losses[s])));
    size_t n = a->param_bytes / (a->dtype == AG_F32 ? 4 : 8);
    for (size_t i = 0; i < n; i++) {
        double x, y;
        if (a->dtype == AG_F32) {
            x = ((const float *)a->params)[i];
            y = ((const float *)b->params)[i];
        } else {
            x = ((const double *)a->params)[i];
            y = ((const double *)b->params)[i];
        }
        /* ck_abort_msg only on failure: a Check assertion logs even when
         * it passes, which would cost more than the training */
        if (!(fabs(x - y) <= tol * fmax(1, fabs(x))))
            ck_abort_msg("parameter element %zu: %.17g vs %.17g", i, x, y);
    }
}

static void expect_same(const run *a, const run *b)
{
    ck_assert(a->ok && b->ok);
    ck_assert_mem_eq(a->losses, b->losses, sizeof a->losses);
    ck_assert_uint_eq(a->param_bytes, b->param_bytes);
    size_t i = 0;
    while (i < a->param_bytes && a->params[i] == b->params[i]) i++;
    ck_assert_msg(i == a->param_bytes, "parameters differ at byte %zu of %zu",
                  i, a->param_bytes);
}

/* Shapes: batch 128 with 300 inputs and 256 hidden units splits every
 * product (over 2^21 multiply-adds; the first by columns, the weight
 * gradients by rows) and the activations (over 2^16 elements); batch 3
 * with 1000 hidden units gives a product split by columns into parts of
 * uneven size (512 and 488). */
static const int64_t shapes[][4] = {{128, 300, 256, 10}, {3, 100, 1000, 5}};

START_TEST(test_threads_agree)
{
    const int64_t *shape = shapes[_i % 2];
    ag_dtype dt = _i / 2 % 2 ? AG_F64 : AG_F32;
    bool adam = _i / 4;
    ck_assert_int_eq(ag_set_num_threads(1), 0);
    run serial = run_of(dt, adam, shape);
    train(&serial);
    for (int threads = 2; threads <= 3; threads++) {
        ck_assert_int_eq(ag_set_num_threads(threads), 0);
        ck_assert_int_eq(ag_get_num_threads(), threads);
        run first = run_of(dt, adam, shape), again = run_of(dt, adam, shape);
        train(&first);
        train(&again);
        expect_same(&first, &again);
        expect_close(&serial, &first, dt == AG_F32 ? 1e-4 : 1e-12);
        run_free(&first);
        run_free(&again);
    }
    run_free(&serial);
    ck_assert_int_eq(ag_set_num_threads(1), 0);
}
END_TEST

/* The bytes of the loss and of x's, b's and w's gradients after a
 * backward through large elementwise ops, a mean and a sum: x (300, 257)
 * (77100 elements, over the size where elementwise work splits, in ranges
 * that end in the middle of rows), b and w (257). malloc'd, *bytes set. */
static unsigned char *elementwise_grads(ag_dtype dt, size_t *bytes)
{
    ag_arena *a = ag_arena_new();
    ag_rng rng = ag_rng_seed(5);
    int64_t shape[2] = {300, 257};
    ag_tensor *x = ag_randn(a, dt, 2, shape, 0, 1, &rng);
    ag_tensor *b = ag_randn(a, dt, 1, &shape[1], 0, 1, &rng);
    ag_tensor *w = ag_randn(a, dt, 1, &shape[1], 1, 0.1, &rng);
    ag_tensor *leaves[3] = {x, b, w};
    for (int i = 0; i < 3; i++) ag_requires_grad(leaves[i], true);
    ag_tensor *h = ag_add(a, x, b); /* broadcast: rows of b */
    ag_tensor *u = ag_mul(a, ag_exp(a, ag_scale(a, h, 0.1)), x);
    ag_tensor *n = ag_layer_norm(a, ag_div(a, u, ag_shift(a, ag_abs(a, h), 1)),
                                 1, w, b, 1e-5);
    ag_tensor *t = ag_sub(a, n, ag_mean(a, n, 0, true));
    ag_tensor *loss =
        ag_sum(a, ag_mul(a, t, ag_sqrt(a, ag_abs(a, t))), AG_ALL, false);
    ck_assert_msg(loss && ag_backward(loss) == 0, "%s", ag_last_error());
    size_t es = dt == AG_F32 ? 4 : 8;
    *bytes = es * (size_t)(1 + ag_numel(x) + 2 * ag_numel(b));
    unsigned char *out = malloc(*bytes), *p = out;
    ck_assert_ptr_nonnull(out);
    ag_tensor *parts[4] = {loss, ag_grad(x), ag_grad(b), ag_grad(w)};
    for (int i = 0; i < 4; i++) {
        size_t nb = es * (size_t)ag_numel(parts[i]);
        memcpy(p, ag_data(parts[i]), nb);
        p += nb;
    }
    ag_arena_free(a);
    return out;
}

START_TEST(test_elementwise_same_bits)
{
    ag_dtype dt = _i ? AG_F64 : AG_F32;
    ck_assert_int_eq(ag_set_num_threads(1), 0);
    size_t bytes, other;
    unsigned char *serial = elementwise_grads(dt, &bytes);
    for (int threads = 2; threads <= 3; threads++) {
        ck_assert_int_eq(ag_set_num_threads(threads), 0);
        for (int again = 0; again < 2; again++) {
            unsigned char *got = elementwise_grads(dt, &other);
            ck_assert_uint_eq(other, bytes);
            ck_assert_msg(!memcmp(got, serial, bytes),
                          "%s gradients on %d threads differ from 1 thread's",
                          dt == AG_F32 ? "f32" : "f64", threads);
            free(got);
        }
    }
    free(serial);
    ck_assert_int_eq(ag_set_num_threads(1), 0);
}
END_TEST

/* Two user threads train at once while the library has 2 threads: one of
 * them at a time gets the workers, the other runs its parts itself; both
 * give the bits of a run alone. */
START_TEST(test_two_callers)
{
    ck_assert_int_eq(ag_set_num_threads(2), 0);
    run alone = run_of(AG_F32, false, shapes[0]);
    train(&alone);
    int64_t rounds = test_size("AG_TEST_PARALLEL_ROUNDS", 3);
    for (int64_t round = 0; round < rounds; round++) {
        run a = run_of(AG_F32, false, shapes[0]);
        run b = run_of(AG_F32, false, shapes[0]);
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, train, &b), 0);
        train(&a);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        expect_same(&alone, &a);
        expect_same(&alone, &b);
        run_free(&a);
        run_free(&b);
    }
    run_free(&alone);
    ck_assert_int_eq(ag_set_num_threads(1), 0);
}
END_TEST

/* A process that forks after its workers started: the child has only the
 * forking thread, so its pool starts again from no workers and its jobs
 * finish (a child still waiting for its parent's workers would hang until
 * the alarm), with the parent's bits. */
START_TEST(test_fork_after_workers)
{
    ck_assert_int_eq(ag_set_num_threads(2), 0);
    run parent = run_of(AG_F32, false, shapes[0]);
    train(&parent);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        alarm(60);
        run child = run_of(AG_F32, false, shapes[0]);
        train(&child);
        bool same = child.ok && child.param_bytes == parent.param_bytes &&
                    !memcmp(child.params, parent.params, parent.param_bytes);
        _exit(same ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the child %s (status %d)",
                  WIFSIGNALED(status) ? "was killed" : "failed", status);
    run_free(&parent);
    ck_assert_int_eq(ag_set_num_threads(1), 0);
}
END_TEST

/* A leaky ReLU of 2^17 values of -1e-39 (subnormal in f32) on 2 threads,
 * the second half on a worker: with ag_set_flush_denormal on, every
 * result is zero (the input reads as zero); off, every one is the
 * subnormal 0.5 * x, on the worker as on the caller, each time the mode
 * changes between jobs. The results are read with the flush off (with it
 * on, a subnormal compares equal to zero). */
START_TEST(test_workers_take_callers_mode)
{
    if (!flush_takes_effect()) return; /* no flush mode, or Valgrind */
    ck_assert_int_eq(ag_set_num_threads(2), 0);
    ag_arena *a = ag_arena_new();
    ck_assert_ptr_nonnull(a);
    const int64_t n = (int64_t)1 << 17;
    ag_tensor *x = ag_full(a, AG_F32, 1, &n, -1e-39);
    ck_assert_ptr_nonnull(x);
    ck_assert(fpclassify(((float *)ag_data(x))[n - 1]) == FP_SUBNORMAL);
    for (int round = 0; round < 4; round++) {
        bool flush = round % 2;
        ck_assert_int_eq(ag_set_flush_denormal(flush), 0);
        ag_tensor *y = ag_leaky_relu(a, x, 0.5);
        ck_assert_int_eq(ag_set_flush_denormal(false), flush);
        ck_assert_ptr_nonnull(y);
        const float *v = ag_data(y), want = flush ? -0.0f : -0.5e-39f;
        for (int64_t i = 0; i < n; i += 4096)
            ck_assert_msg(v[i] == want && v[n - 1 - i] == want,
                          "round %d: y[%lld] = %g, y[%lld] = %g, want %g",
                          round, (long long)i, (double)v[i],
                          (long long)(n - 1 - i), (double)v[n - 1 - i],
                          (double)want);
    }
    ag_arena_free(a);
    ck_assert_int_eq(ag_set_num_threads(1), 0);
}
END_TEST

static Suite *parallel_suite(void)
{
    Suite *s = suite_create("parallel");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    /* 8 cases: 2 shapes x 2 dtypes x SGD or Adam (fewer under Valgrind) */
    int cases = (int)test_size("AG_TEST_PARALLEL_CASES", 8);
    tcase_add_loop_test(tc, test_threads_agree, 0, cases);
    tcase_add_loop_test(tc, test_elementwise_same_bits, 0, 2);
    tcase_add_test(tc, test_two_callers);
    tcase_add_test(tc, test_workers_take_callers_mode);
    /* Not under TSan (it refuses threads started after a multi-threaded
     * fork) or Valgrind (the child's _exit leaves the libraries' memory
     * reachable): the setups set AG_TEST_FORK=0. */
    if (test_env("AG_TEST_FORK", 1, 0, 1))
        tcase_add_test(tc, test_fork_after_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(parallel_suite());
}
