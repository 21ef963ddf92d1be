/* test_dist_faults.c: faults of data parallel training on 2 and 3
 * processes, under mpirun (tests/meson.build). Each fault on one rank ends
 * the collective call on every rank with an error that names that rank,
 * the same message everywhere, quickly (each test prints the time rank 0
 * took), and the ranks stay in step: a later step succeeds.
 *
 * The suite: a model that differs on the last rank (a shape, a name, a
 * dtype, one tensor more) is refused by ag_ddp_new; bad input on rank 1
 * (the forward fails, the loss is NULL); a parameter that gets no gradient
 * on rank 1; a failure of rank 1 in a step without sync, told at the next
 * sync; ag_dist_check with two failing ranks; tensors that differ in
 * ag_dist_broadcast; rank 0 failing to write a checkpoint.
 *
 * With "--fault MODE" the program instead plays one fault that breaks
 * communication, for tests/dist_fault.sh, which checks the output and the
 * time: "hang" (rank 1 stops answering: the others stop after the
 * timeout, naming it), "hang0" (rank 0 does), "die" (rank 1 is killed:
 * mpirun stops the job, naming it), "tp" (rank 1's input to a row-parallel
 * Linear is bad: the others stop at once with its error). */
#define _POSIX_C_SOURCE 200809L
#include "dist_support.h"
#include "support.h"
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const int64_t sizes[4] = {5, 8, 6, 3};

/* A batch of n examples with `features` features, the same everywhere. */
static void batch(ag_arena *a, int64_t n, int64_t features, ag_tensor **x,
                  ag_tensor **y)
{
    ag_rng rng = ag_rng_seed(3);
    *x = ag_randn(a, AG_F64, 2, (int64_t[]){n, features}, 0, 1, &rng);
    *y = ag_zeros(a, AG_I32, 1, (int64_t[]){n});
}

/* The loss of m on a batch with `features` features (NULL when the
 * forward fails, as for bad input). */
static ag_tensor *loss_of(ag_arena *step, ag_mlp *m, int64_t features)
{
    ag_tensor *x, *y;
    batch(step, 4, features, &x, &y);
    return ag_softmax_cross_entropy(step, ag_mlp_forward(step, m, x), y);
}

static double started;

static void start_clock(void)
{
    started = dist_seconds();
}

/* Prints, on rank 0, what the fault gave and how long it took. */
static void report(const char *fault)
{
    if (ag_dist_rank(dist) == 0)
        printf("%s (%d ranks): %.1f ms: %s\n", fault, ag_dist_size(dist),
               1e3 * (dist_seconds() - started), ag_last_error());
}

/* ---- models that differ ---- */

/* The parameter sets of the model variants: the last rank's differs. */
static ag_params *variant(ag_arena *a, int kind, bool differ)
{
    ag_params *p = ag_params_new(a);
    ag_dtype dt = differ && kind == 2 ? AG_F32 : AG_F64;
    int64_t rows = differ && kind == 0 ? 4 : 3;
    ag_params_add(p, "weight", ag_zeros(a, dt, 2, (int64_t[]){rows, 2}));
    ag_params_add(p, differ && kind == 1 ? "bias_" : "bias",
                  ag_zeros(a, dt, 1, (int64_t[]){rows}));
    if (differ && kind == 3)
        ag_params_add(p, "scale", ag_zeros(a, dt, 1, (int64_t[]){rows}));
    ag_params_requires_grad(p, true);
    return p;
}

static const char *const mismatch[] = {
    "entry 0 is 'parameter weight f64 (4,2)' here, 'parameter weight f64 "
    "(3,2)' on rank 0",
    "entry 1 is 'parameter bias_ f64 (3)' here, 'parameter bias f64 (3)' on "
    "rank 0",
    "entry 0 is 'parameter weight f32 (3,2)' here, 'parameter weight f64 "
    "(3,2)' on rank 0",
    "it has 3 parameters and buffers here, 2 on rank 0",
};

START_TEST(test_a_differing_model_is_refused_everywhere)
{
    int last = ag_dist_size(dist) - 1;
    ag_arena *a = ag_arena_new();
    ag_params *p = variant(a, _i, ag_dist_rank(dist) == last);
    start_clock();
    ck_assert_ptr_null(ag_ddp_new(a, dist, p, NULL, NULL));
    report("a model that differs on the last rank");
    char want[512];
    snprintf(want, sizeof want,
             "ag_ddp_new: rank %d: this process's model differs from rank "
             "0's: %s",
             last, mismatch[_i]);
    ck_assert_str_eq(ag_last_error(), want);
    /* still in step: the same model everywhere is taken */
    ck_assert_ptr_nonnull(
        ag_ddp_new(a, dist, variant(a, _i, false), NULL, NULL));
    ag_arena_free(a);
}
END_TEST

/* ---- failures during a step ---- */

/* Each test of a step: a model of its own, under data parallel. */
static ag_arena *arena, *step_arena;
static ag_mlp *m;
static ag_ddp *ddp;

static void make_model(void)
{
    arena = ag_arena_new();
    step_arena = ag_arena_new();
    m = dist_mlp(arena, 4, sizes, 1);
    ddp = ag_ddp_new(arena, dist, m->params, NULL, NULL);
    ck_assert_msg(ddp, "%s", ag_last_error());
}

static void free_model(void)
{
    ag_ddp_detach(ddp);
    ag_arena_free(step_arena);
    ag_arena_free(arena);
}

START_TEST(test_bad_input_on_one_rank_stops_every_rank)
{
    int rank = ag_dist_rank(dist);
    /* what the forward says about 4 features where 5 are expected */
    ck_assert_ptr_null(loss_of(step_arena, m, 4));
    char want[600];
    snprintf(want, sizeof want, "ag_ddp_backward: rank 1: %s", ag_last_error());
    ag_clear_error();
    start_clock();
    ag_tensor *loss = loss_of(step_arena, m, rank == 1 ? 4 : 5);
    ck_assert_int_eq(ag_ddp_backward(ddp, loss), -1);
    report("bad input on rank 1");
    ck_assert_str_eq(ag_last_error(), want);
    ck_assert_double_lt(dist_seconds() - started, 2.0);
    /* every rank skips the step and goes on */
    ag_params_zero_grad(m->params);
    ck_assert_int_eq(ag_ddp_backward(ddp, loss_of(step_arena, m, 5)), 0);
}
END_TEST

START_TEST(test_a_parameter_without_gradient_is_named)
{
    int rank = ag_dist_rank(dist);
    ag_tensor *loss = loss_of(step_arena, m, 5);
    if (rank == 1) { /* a loss of the last weight alone */
        ag_tensor *w = ag_params_find(m->params, "layers.2.weight");
        loss = ag_sum(step_arena, ag_mul(step_arena, w, w), AG_ALL, false);
    }
    start_clock();
    ck_assert_int_eq(ag_ddp_backward(ddp, loss), -1);
    report("a parameter without gradient on rank 1");
    ck_assert_str_eq(ag_last_error(),
                     "ag_ddp_backward: rank 1: parameter 'layers.2.bias' got "
                     "no gradient: the loss does not use it (every parameter "
                     "must get one on every rank)");
}
END_TEST

START_TEST(test_a_failure_without_sync_is_told_at_the_next_sync)
{
    int rank = ag_dist_rank(dist);
    ag_ddp_set_sync(ddp, false);
    ck_assert_int_eq(
        ag_ddp_backward(ddp, loss_of(step_arena, m, rank == 1 ? 4 : 5)),
        rank == 1 ? -1 : 0);
    ag_ddp_set_sync(ddp, true);
    ck_assert_int_eq(ag_ddp_backward(ddp, loss_of(step_arena, m, 5)), -1);
    ck_assert_msg(strstr(ag_last_error(),
                         "ag_ddp_backward: rank 1: in a step "
                         "without sync: ag_mlp_forward") == ag_last_error(),
                  "%s", ag_last_error());
    /* told once: the next sync step succeeds */
    ag_params_zero_grad(m->params);
    ck_assert_int_eq(ag_ddp_backward(ddp, loss_of(step_arena, m, 5)), 0);
}
END_TEST

START_TEST(test_check_names_the_lowest_failing_rank)
{
    int rank = ag_dist_rank(dist), world = ag_dist_size(dist);
    ck_assert_int_eq(ag_dist_check(dist, 0), 0);
    if (rank >= 1) ag_set_error("mine", "rank %d gives up", rank);
    start_clock();
    ck_assert_int_eq(ag_dist_check(dist, rank >= 1 ? -1 : 0), -1);
    report("ag_dist_check failing on every rank but 0");
    char want[200];
    snprintf(want, sizeof want,
             "ag_dist_check: rank 1: mine: rank 1 gives up%s",
             world == 3 ? " (2 ranks failed)" : "");
    ck_assert_str_eq(ag_last_error(), want);
}
END_TEST

START_TEST(test_broadcast_of_tensors_that_differ)
{
    int rank = ag_dist_rank(dist);
    ag_arena *a = ag_arena_new();
    ag_tensor *t = ag_zeros(a, AG_F64, 1, (int64_t[]){rank == 1 ? 3 : 2});
    ck_assert_int_eq(ag_dist_broadcast(dist, t, 0), -1);
    ck_assert_str_eq(ag_last_error(), "ag_dist_broadcast: rank 1 passes f64 "
                                      "(3) from rank 0, rank 0 f64 (2) from "
                                      "rank 0");
    ck_assert_int_eq(ag_dist_broadcast(dist, t, 5), -1);
    int world = ag_dist_size(dist);
    char want[200];
    snprintf(want, sizeof want,
             "ag_dist_broadcast: rank 0: root 5 is not one of the %d ranks "
             "(%d ranks failed)",
             world, world);
    ck_assert_str_eq(ag_last_error(), want);
    ag_arena_free(a);
}
END_TEST

START_TEST(test_a_checkpoint_rank_0_cannot_write)
{
    start_clock();
    ck_assert_int_eq(
        ag_ddp_save(ddp, "/nonexistent/model.safetensors", m->params, NULL),
        -1);
    report("a checkpoint rank 0 cannot write");
    ck_assert_msg(strstr(ag_last_error(),
                         "ag_ddp_save: rank 0: ag_save_safetensors: "
                         "/nonexistent/model.safetensors") == ag_last_error(),
                  "%s", ag_last_error());
}
END_TEST

/* ---- the faults that break communication (tests/dist_fault.sh) ---- */

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Trains a few steps with one rank misbehaving at step 2; every rank that
 * notices prints what it got and how long, then finalises (which ends the
 * job). Returns main's status (reached only if no fault ended the job). */
static int play_fault(const char *mode)
{
    int rank = ag_dist_rank(dist);
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_mlp_options o = {.dtype = AG_F64, .activation = AG_ACT_TANH};
    ag_mlp *model = ag_mlp_new(a, 4, sizes, &o); /* no ck_assert here */
    ag_ddp *job = model ? ag_ddp_new(a, dist, model->params, NULL, NULL) : NULL;
    if (!job) return fprintf(stderr, "%s\n", ag_last_error()), 1;
    int faulty = !strcmp(mode, "hang0") ? 0 : 1;
    if (!strcmp(mode, "tp")) { /* the row-parallel layer of a bad input */
        ag_tensor *w = ag_zeros(a, AG_F64, 2, (int64_t[]){3, 6});
        ag_tp_linear *l = ag_tp_linear_new(a, dist, AG_TP_ROW, w, NULL);
        ag_tensor *x, *y;
        batch(step, 4, rank == 1 ? 4 : 6 / ag_dist_size(dist), &x, &y);
        double t0 = dist_seconds();
        if (!l || !ag_tp_linear_forward(step, l, x)) {
            printf("rank %d: stopped after %.2f s: %s\n", rank,
                   dist_seconds() - t0, ag_last_error());
            fflush(stdout);
            ag_dist_finalize(dist);
        }
        return 1;
    }
    for (int s = 0; s < 4; s++) {
        if (s == 2 && rank == faulty) {
            if (!strcmp(mode, "die")) raise(SIGKILL);
            sleep_s(30); /* hung: the job ends before this does */
        }
        double t0 = dist_seconds();
        if (ag_ddp_backward(job, loss_of(step, model, 5))) {
            printf("rank %d: stopped after %.2f s: %s\n", rank,
                   dist_seconds() - t0, ag_last_error());
            fflush(stdout);
            ag_dist_finalize(dist); /* broken: ends the job */
            return 1;
        }
        ag_arena_reset(step);
    }
    printf("rank %d: no fault seen\n", rank);
    return 1;
}

static Suite *faults_suite(void)
{
    Suite *s = suite_create("dist_faults");
    TCase *tc = tcase_create("faults");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_a_differing_model_is_refused_everywhere, 0,
                        (int)(sizeof mismatch / sizeof mismatch[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("step");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, make_model, free_model);
    tcase_add_test(tc, test_bad_input_on_one_rank_stops_every_rank);
    tcase_add_test(tc, test_a_parameter_without_gradient_is_named);
    tcase_add_test(tc, test_a_failure_without_sync_is_told_at_the_next_sync);
    tcase_add_test(tc, test_a_checkpoint_rank_0_cannot_write);
    suite_add_tcase(s, tc);
    tc = tcase_create("collectives");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_check_names_the_lowest_failing_rank);
    tcase_add_test(tc, test_broadcast_of_tensors_that_differ);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--fault")) {
        dist = ag_dist_init(&argc, &argv, &(ag_dist_options){.timeout = 1});
        if (!dist) return fprintf(stderr, "%s\n", ag_last_error()), 1;
        return play_fault(argv[2]);
    }
    return dist_main(&argc, &argv, faults_suite(), 20);
}
