/* test_soak.c: a long training run must not grow. An MLP 8-32-32-4 (ReLU)
 * is trained with Adam on shuffled batches of 16 for 100,000 steps, its
 * graph built anew in a step arena that is reset after every step. After a
 * warm-up of 1,000 steps, every 1,000 steps, the step arena's and the model
 * arena's capacities (ag_arena_capacity) must be exactly what they were at
 * the end of the warm-up, and the resident memory that is not file-backed
 * (/proc/self/statm: resident minus shared) within rss_slack of it; with
 * glibc, the bytes malloc has handed out and not taken back (mallinfo2)
 * must not have changed at all.
 *
 * File-backed pages are left out: they are the code and data of the program
 * and its libraries, which the kernel maps in when they are first touched,
 * and some are touched only after the warm-up (OpenBLAS code, for one, as
 * /proc/self/smaps shows; in a child forked by Check more of them), so the
 * whole resident set grows by up to about 100 KiB without any allocation.
 * Both are printed.
 *
 * rss_slack is 64 KiB, 16 pages of 4 KiB: in steady state a step allocates
 * nothing (the arenas keep their blocks), so the anonymous resident memory
 * should not move at all (and it does not, by a byte, in our runs); the
 * slack leaves room for a page of stack or of the C library's bookkeeping
 * touched late, while a leak of one byte per step would add 99,000 bytes by
 * the end.
 *
 * AG_TEST_SOAK_STEPS sets a shorter run (at least 2,000 steps), and
 * AG_TEST_SOAK_RSS_SLACK another slack in bytes: the Valgrind setup runs
 * 4,000 steps with 4 MiB, as Valgrind's own memory (its translations of
 * code first run after the warm-up) counts in the process's resident set;
 * the capacities and malloc's bytes stay exact there. The test prints the
 * memory after the warm-up and at the end, and the time taken. */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STEPS 100000
#define WARMUP 1000
#define CHECK_EVERY 1000
#define EXAMPLES 256
#define BATCH 16
#define IN 8
#define CLASSES 4

/* Steps, and the most the anonymous resident memory may move (see the top
 * of the file), in bytes. */
static int64_t steps = STEPS, rss_slack = 64 * 1024;

/* Resident memory in bytes, from /proc/self/statm: all of it, and the
 * part that is not file-backed (resident minus shared). */
typedef struct {
    long long total, anon;
    long long heap; /* bytes malloc has handed out (glibc), or -1 */
} rss;

/* Bytes in use from glibc's malloc (which ASan and Valgrind replace: then
 * it is a constant); -1 without glibc. */
static long long heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    return (long long)mallinfo2().uordblks;
#else
    return -1;
#endif
}

static rss resident(void)
{
    /* read() into a buffer on the stack rather than stdio, so that measuring
     * allocates nothing (under ASan or Valgrind, freed memory is held back
     * for a while and every fopen would take new pages). */
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    long long size, pages = -1, shared = -1;
    buf[n > 0 ? n : 0] = '\0';
    if (sscanf(buf, "%lld %lld %lld", &size, &pages, &shared) != 3 ||
        pages < shared || shared < 0)
        ck_abort_msg("cannot read /proc/self/statm: \"%s\"", buf);
    long long page = sysconf(_SC_PAGESIZE);
    return (rss){pages * page, (pages - shared) * page, heap_in_use()};
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A fixed data set in `a`: inputs from rng and labels from the sign of two
 * sums of them (four classes). */
static ag_batcher *make_batches(ag_arena *a, ag_rng *rng)
{
    ag_tensor *x = ag_randn(a, AG_F32, 2, (int64_t[]){EXAMPLES, IN}, 0, 1, rng);
    ag_tensor *y = ag_zeros(a, AG_I32, 1, (int64_t[]){EXAMPLES});
    ck_assert_msg(x && y, "%s", ag_last_error());
    const float *xv = ag_data(x);
    int32_t *label = ag_data(y);
    for (int n = 0; n < EXAMPLES; n++) {
        const float *r = xv + n * IN;
        label[n] = (r[0] + r[1] - r[2] > 0) * 2 + (r[3] - r[4] + r[5] > 0);
    }
    ag_batcher *b = ag_batcher_new(a, x, y, BATCH, true, 7, true);
    ck_assert_msg(b != NULL, "%s", ag_last_error());
    return b;
}

/* One step: the next batch (a new epoch when one ends), forward, loss,
 * backward, Adam, zeroed gradients, reset. Returns the loss. Failures are
 * tested with `if` (ck_abort_msg), not ck_assert: each passing ck_assert
 * records its place through Check, which allocates. */
static double train_step(ag_arena *step, ag_mlp *m, ag_optimizer *opt,
                         ag_batcher *b)
{
    ag_tensor *bx, *by;
    int got = ag_batcher_next(b, step, &bx, &by);
    if (got == 0) got = ag_batcher_next(b, step, &bx, &by);
    ag_tensor *loss =
        got == 1
            ? ag_softmax_cross_entropy(step, ag_mlp_forward(step, m, bx), by)
            : NULL;
    if (!loss || ag_backward(loss) || ag_optimizer_step(opt))
        ck_abort_msg("training step: %s", ag_last_error());
    ag_optimizer_zero_grad(opt);
    double value = ag_item(loss);
    ag_arena_reset(step);
    return value;
}

/* Checks the arenas' capacities and the anonymous resident memory at step
 * i against their values after the warm-up (without ck_assert, as above). */
static void expect_flat(int64_t i, ag_arena *step, ag_arena *model,
                        const size_t cap[2], rss warm, rss *high)
{
    if (ag_arena_capacity(step) != cap[0] || ag_arena_capacity(model) != cap[1])
        ck_abort_msg("step %lld: arena capacities %zu and %zu, %zu and %zu "
                     "after the warm-up",
                     (long long)i, ag_arena_capacity(step),
                     ag_arena_capacity(model), cap[0], cap[1]);
    rss now = resident();
    if (now.total > high->total) high->total = now.total;
    if (now.anon > high->anon) high->anon = now.anon;
    if (now.anon - warm.anon > rss_slack || warm.anon - now.anon > rss_slack)
        ck_abort_msg("step %lld: %lld bytes of anonymous resident memory, "
                     "%lld after the warm-up",
                     (long long)i, now.anon, warm.anon);
    if (now.heap != warm.heap)
        ck_abort_msg("step %lld: malloc has %lld bytes in use, %lld after "
                     "the warm-up",
                     (long long)i, now.heap, warm.heap);
}

/* The model's arena and the step arena, made and freed by a checked
 * fixture, so that a failing run under Valgrind reports no leak of its
 * own. */
static ag_arena *model, *step;

static void setup(void)
{
    model = ag_arena_new();
    step = ag_arena_new();
    ck_assert(model && step);
}

static void teardown(void)
{
    ag_arena_free(step);
    ag_arena_free(model);
}

START_TEST(test_memory_stays_flat)
{
    ck_assert_int_eq(ag_set_num_threads(1), 0);
    ag_rng rng = ag_rng_seed(3);
    ag_batcher *batches = make_batches(model, &rng);
    const int64_t sizes[4] = {IN, 32, 32, CLASSES};
    ag_mlp *m = ag_mlp_new(model, 4, sizes, &(ag_mlp_options){.seed = 5});
    ck_assert_msg(m != NULL, "%s", ag_last_error());
    ag_optimizer *adam = ag_adam_new(model, m->params, NULL);
    ck_assert_msg(adam != NULL, "%s", ag_last_error());

    double start = seconds(), first_loss = 0, recent = 0;
    rss warm = {0, 0, 0}, high = {0, 0, 0};
    size_t cap[2] = {0, 0};
    for (int64_t i = 1; i <= steps; i++) {
        double loss = train_step(step, m, adam, batches);
        if (i == 1) first_loss = loss;
        if (i > steps - CHECK_EVERY) recent += loss / CHECK_EVERY;
        if (i == WARMUP) {
            cap[0] = ag_arena_capacity(step);
            cap[1] = ag_arena_capacity(model);
            warm = high = resident();
        } else if (i > WARMUP && i % CHECK_EVERY == 0) {
            expect_flat(i, step, model, cap, warm, &high);
        }
    }
    double elapsed = seconds() - start;
    rss end = resident();
    printf("soak: %lld steps in %.2f s (%.1f us/step), loss %.3f -> %.3g\n"
           "soak: anonymous resident memory %lld KiB after %d steps, %lld "
           "KiB at the end, at most %lld KiB in between\n"
           "soak: all resident memory %lld KiB, %lld KiB, at most %lld KiB\n"
           "soak: malloc in use %lld bytes, %lld bytes; arenas %zu + %zu "
           "bytes\n",
           (long long)steps, elapsed, 1e6 * elapsed / (double)steps, first_loss,
           recent, warm.anon / 1024, WARMUP, end.anon / 1024, high.anon / 1024,
           warm.total / 1024, end.total / 1024, high.total / 1024, warm.heap,
           end.heap, cap[0], cap[1]);
    fflush(stdout);
    /* It trained: a sanity check that the steps did real work. */
    ck_assert_msg(recent < 0.5 * first_loss, "loss %g -> %g", first_loss,
                  recent);
}
END_TEST

static Suite *soak_suite(void)
{
    Suite *s = suite_create("soak");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_memory_stays_flat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    steps = test_size("AG_TEST_SOAK_STEPS", STEPS);
    rss_slack = test_env("AG_TEST_SOAK_RSS_SLACK", rss_slack, 0, INT64_MAX);
    if (steps < 2 * WARMUP) {
        fprintf(stderr, "AG_TEST_SOAK_STEPS must be at least %d\n", 2 * WARMUP);
        return 2;
    }
    return run_suite(soak_suite());
}
