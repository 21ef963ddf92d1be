/* test_threads.c: separate models trained from separate threads at once.
 * Each job trains its own small MLP (its own arenas, data, ag_rng, dropout,
 * batcher, Adam optimizer), evaluates it with grad mode off now and then,
 * saves and reloads it through its own safetensors file, gradient-checks
 * it, and provokes an error of its own. The jobs run twice: one after
 * another on the main thread, then all at once on their own threads
 * (started together at a barrier). Every result (the loss of every step,
 * the evaluations, the final parameters, the reloaded parameters and
 * metadata, the gradient check's report, the error message) must be
 * bit-identical between the two runs: no job may see another's state, and
 * grad mode, anomaly mode and the last error are per thread.
 *
 * OpenBLAS is set to one thread (ag_set_num_threads(1)) so that each
 * product is computed the same way every time. Under ThreadSanitizer (the
 * tsan test setup) this test is what finds a data race in the library.
 * AG_TEST_THREAD_STEPS sets the training steps (default 300). */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "support.h"
#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOBS 4
#define MAX_STEPS 300
#define EVAL_EVERY 50
#define MAX_EVALS (MAX_STEPS / EVAL_EVERY)
#define EXAMPLES 96
#define BATCH 16
#define IN 8
#define CLASSES 4
#define MAX_PARAM_BYTES 8192

static int64_t steps = MAX_STEPS;

/* A folder for the jobs' checkpoints, made by main. */
static char dir[256];

/* What a job is given. */
typedef struct {
    int id;
    ag_dtype dt;
    uint64_t seed;
    bool anomaly; /* turn anomaly detection on in this job's thread */
    bool blas;    /* layers through ag_linear (BLAS), or without BLAS */
} job_spec;

/* Jobs 0 and 3 have the same seed, dtype and layers: their results must be
 * equal to each other's too. Jobs 1 and 2 never call OpenBLAS: every call
 * into OpenBLAS takes and releases a global lock of its own, which
 * ThreadSanitizer takes for synchronisation between all the threads that
 * call it, so that a race between two BLAS jobs would mostly go unseen; a
 * job that never takes that lock is ordered with no other. */
static const job_spec specs[JOBS] = {
    {0, AG_F32, 11, false, true},
    {1, AG_F64, 22, true, false},
    {2, AG_F32, 33, false, false},
    {3, AG_F32, 11, false, true},
};

/* What a job produces; compared between the two runs. */
typedef struct {
    double loss[MAX_STEPS];
    int64_t correct[MAX_EVALS];
    unsigned char params[MAX_PARAM_BYTES];
    size_t param_bytes;
    bool reloaded_equal; /* the reloaded model has the saved values */
    char metadata[64];   /* the "job" entry read back from the file */
    int gc_status;       /* ag_gradcheck's return */
    ag_gradcheck_report gc;
    char error[256];   /* the message of the job's own failing call */
    char failure[512]; /* what went wrong, "" when the job ran through */
} job_result;

typedef struct {
    const job_spec *spec;
    job_result *result;
    bool serial;                /* chooses the checkpoint's name */
    pthread_barrier_t *barrier; /* NULL on the main thread */
} job_arg;

/* Notes the first failure of a job, with the library's message. */
static void job_fail(job_result *r, const char *fmt, ...) AG_PRINTF(2, 3);
static void job_fail(job_result *r, const char *fmt, ...)
{
    if (r->failure[0]) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->failure, sizeof r->failure, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof r->failure)
        snprintf(r->failure + n, sizeof r->failure - (size_t)n, ": %s",
                 ag_last_error());
}

/* The job's data set: EXAMPLES inputs drawn from its generator, and labels
 * that a fixed linear map of the inputs decides (so there is something to
 * learn). */
static int make_data(ag_arena *a, const job_spec *s, ag_rng *rng, ag_tensor **x,
                     ag_tensor **y)
{
    *x = ag_randn(a, s->dt, 2, (int64_t[]){EXAMPLES, IN}, 0, 1, rng);
    *y = ag_zeros(a, AG_I32, 1, (int64_t[]){EXAMPLES});
    if (!*x || !*y) return -1;
    int32_t *labels = ag_data(*y);
    for (int64_t n = 0; n < EXAMPLES; n++) {
        double best = -1e300;
        for (int c = 0; c < CLASSES; c++) {
            double v = 0;
            for (int i = 0; i < IN; i++)
                v += tensor_at(*x, n * IN + i) * ((i * 7 + c * 3) % 5 - 2);
            if (v > best) {
                best = v;
                labels[n] = c;
            }
        }
    }
    return 0;
}

/* x W^T + b without BLAS: the broadcast product (B,1,in) * (out,in) ->
 * (B,out,in) summed over its last axis. */
static ag_tensor *affine_no_blas(ag_arena *s, ag_tensor *x,
                                 const ag_linear_layer *layer)
{
    if (!x) return NULL;
    ag_tensor *x3 =
        ag_reshape(s, x, 3, (int64_t[]){ag_shape(x)[0], 1, layer->in});
    ag_tensor *prod = ag_mul(s, x3, layer->weight);
    return ag_add(s, ag_sum(s, prod, -1, false), layer->bias);
}

/* The forward pass of m: ag_mlp_forward, or for a job without BLAS the
 * same layers, activations and dropout (from rng) by elementwise ops. */
static ag_tensor *forward(const job_spec *s, ag_arena *step, ag_mlp *m,
                          ag_tensor *x, ag_rng *rng)
{
    if (s->blas) return ag_mlp_forward(step, m, x);
    for (int l = 0; l < m->num_layers; l++) {
        x = affine_no_blas(step, x, m->layers[l]);
        if (l + 1 == m->num_layers) break;
        x = ag_tanh(step, x);
        if (m->training) x = ag_dropout(step, x, m->options.dropout, rng);
    }
    return x;
}

/* Correct predictions of m on all of x, with grad mode and dropout off. */
static int64_t evaluate(const job_spec *s, ag_arena *step, ag_mlp *m,
                        ag_tensor *x, ag_tensor *y)
{
    bool was = ag_set_grad_enabled(false);
    ag_mlp_set_training(m, false);
    ag_tensor *pred = ag_argmax(step, forward(s, step, m, x, NULL), 1);
    ag_mlp_set_training(m, true);
    ag_set_grad_enabled(was);
    if (!pred) return -1;
    int64_t correct = 0;
    const int32_t *p = ag_data(pred), *t = ag_data(y);
    for (int64_t n = 0; n < EXAMPLES; n++) correct += p[n] == t[n];
    return correct;
}

/* One training step on the next batch (a new epoch when one ends): input
 * dropout drawn from the job's generator, the MLP (with its own dropout),
 * softmax cross-entropy, backward, Adam. Returns the loss, or NaN. */
static double train_step(const job_spec *s, ag_arena *step, ag_mlp *m,
                         ag_optimizer *opt, ag_batcher *b, ag_rng *rng)
{
    ag_tensor *bx, *by;
    int got = ag_batcher_next(b, step, &bx, &by);
    if (got == 0) got = ag_batcher_next(b, step, &bx, &by);
    if (got != 1) return NAN;
    ag_tensor *noisy = ag_dropout(step, bx, 0.1, rng);
    ag_tensor *loss =
        ag_softmax_cross_entropy(step, forward(s, step, m, noisy, rng), by);
    if (!loss || ag_backward(loss) || ag_optimizer_step(opt)) return NAN;
    ag_optimizer_zero_grad(opt);
    return ag_item(loss);
}

/* Copies every parameter's values, in order, into r->params. */
static int copy_params(job_result *r, const ag_params *p)
{
    r->param_bytes = 0;
    for (int i = 0; i < ag_params_count(p); i++) {
        ag_tensor *t = ag_params_tensor(p, i);
        size_t n = (size_t)ag_numel(t) * (ag_type(t) == AG_F64 ? 8 : 4);
        if (r->param_bytes + n > sizeof r->params) return -1;
        memcpy(r->params + r->param_bytes, ag_data(t), n);
        r->param_bytes += n;
    }
    return 0;
}

/* Whether the values of two parameter sets of one layout are equal. */
static bool same_values(const ag_params *p, const ag_params *q)
{
    for (int i = 0; i < ag_params_count(p); i++) {
        ag_tensor *t = ag_params_tensor(p, i), *u = ag_params_tensor(q, i);
        size_t n = (size_t)ag_numel(t) * (ag_type(t) == AG_F64 ? 8 : 4);
        if (ag_numel(t) != ag_numel(u) || memcmp(ag_data(t), ag_data(u), n))
            return false;
    }
    return ag_params_count(p) == ag_params_count(q);
}

/* Saves m to the job's own file, loads it into a fresh model with other
 * weights, and reads the metadata back. */
static void save_and_reload(job_result *r, const job_arg *arg, ag_arena *a,
                            ag_mlp *m, const ag_mlp_options *opt,
                            const int64_t *sizes)
{
    char path[320], id[16];
    snprintf(path, sizeof path, "%s/job%d-%s.safetensors", dir, arg->spec->id,
             arg->serial ? "serial" : "thread");
    snprintf(id, sizeof id, "%d", arg->spec->id);
    const char *meta[] = {"job", id, NULL};
    if (ag_save_safetensors(path, m->params, meta)) {
        job_fail(r, "saving %s", path);
        return;
    }
    ag_mlp_options other = *opt;
    other.seed += 1000;
    ag_mlp *copy = ag_mlp_new(a, 4, sizes, &other);
    if (!copy || ag_load_safetensors(path, copy->params)) {
        job_fail(r, "loading %s", path);
        return;
    }
    r->reloaded_equal = same_values(m->params, copy->params);
    const char *const *kv = ag_load_safetensors_metadata(a, path);
    if (!kv || !kv[0] || !kv[1]) {
        job_fail(r, "metadata of %s", path);
        return;
    }
    snprintf(r->metadata, sizeof r->metadata, "%s=%s", kv[0], kv[1]);
}

/* The gradient check's input, and the way to multiply it. */
typedef struct {
    ag_tensor *x;
    bool blas;
} gc_input;

/* The gradient check's function: the mean of tanh(x W^T) over all. */
static ag_tensor *gc_fn(ag_arena *a, ag_tensor *const *in, int n, void *user)
{
    (void)n;
    const gc_input *g = user;
    ag_tensor *xw;
    if (g->blas) {
        xw = ag_linear(a, g->x, in[0], NULL);
    } else {
        ag_tensor *x3 = ag_reshape(a, g->x, 3, (int64_t[]){4, 1, IN});
        xw = ag_sum(a, ag_mul(a, x3, in[0]), -1, false);
    }
    return ag_mean(a, ag_tanh(a, xw), AG_ALL, false);
}

/* Checks the gradient of the first layer's weight (as an f64 copy) on the
 * first rows of the data. */
static void gradcheck(const job_spec *s, job_result *r, ag_arena *a, ag_mlp *m,
                      ag_tensor *x)
{
    ag_tensor *w = m->layers[0]->weight;
    ag_tensor *w64 = ag_zeros(a, AG_F64, ag_ndim(w), ag_shape(w));
    ag_tensor *x64 = ag_zeros(a, AG_F64, 2, (int64_t[]){4, IN});
    if (!w64 || !x64) {
        job_fail(r, "gradcheck inputs");
        return;
    }
    for (int64_t i = 0; i < ag_numel(w); i++)
        ((double *)ag_data(w64))[i] = tensor_at(w, i);
    for (int64_t i = 0; i < 4 * IN; i++)
        ((double *)ag_data(x64))[i] = tensor_at(x, i);
    ag_requires_grad(w64, true);
    memset(&r->gc, 0, sizeof r->gc);
    gc_input in = {x64, s->blas};
    r->gc_status = ag_gradcheck(gc_fn, 1, &w64, &in, NULL, &r->gc);
    if (r->gc_status < 0) job_fail(r, "ag_gradcheck");
}

/* The job's training and everything after it, in arena `a` (its data,
 * model and optimizer) and `step` (each step's graph). */
static void train_job(const job_arg *arg, ag_arena *a, ag_arena *step)
{
    const job_spec *s = arg->spec;
    job_result *r = arg->result;
    ag_rng rng = ag_rng_seed(s->seed);
    ag_tensor *x, *y;
    const int64_t sizes[4] = {IN, 16, 16, CLASSES};
    ag_mlp_options opt = {.dtype = s->dt,
                          .activation = AG_ACT_TANH,
                          .dropout = 0.2,
                          .seed = s->seed};
    ag_mlp *m = NULL;
    ag_optimizer *adam = NULL;
    ag_batcher *b = NULL;
    if (make_data(a, s, &rng, &x, &y) || !(m = ag_mlp_new(a, 4, sizes, &opt)) ||
        !(adam = ag_adam_new(a, m->params, NULL)) ||
        !(b = ag_batcher_new(a, x, y, BATCH, true, s->seed, false))) {
        job_fail(r, "setting up job %d", s->id);
        return;
    }
    for (int64_t i = 0; i < steps && !r->failure[0]; i++) {
        r->loss[i] = train_step(s, step, m, adam, b, &rng);
        if (isnan(r->loss[i])) job_fail(r, "step %lld", (long long)i);
        if ((i + 1) % EVAL_EVERY == 0)
            r->correct[i / EVAL_EVERY] = evaluate(s, step, m, x, y);
        ag_arena_reset(step);
    }
    if (r->failure[0]) return;
    if (copy_params(r, m->params)) job_fail(r, "the parameters are too big");
    save_and_reload(r, arg, a, m, &opt, sizes);
    gradcheck(s, r, a, m, x);
    /* A failing call of this job's own: its message, with the job's
     * shape, must be the one this thread reads. */
    int64_t bad = 1000 + s->id;
    if (ag_reshape(step, x, 1, &bad)) job_fail(r, "the bad reshape worked");
    snprintf(r->error, sizeof r->error, "%s", ag_last_error());
}

/* The whole job, in arenas of its own, with anomaly detection on or off
 * for the thread as the job says. */
static void run_job(const job_arg *arg)
{
    job_result *r = arg->result;
    memset(r, 0, sizeof *r);
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_set_anomaly_detection(arg->spec->anomaly);
    if (a && step)
        train_job(arg, a, step);
    else
        job_fail(r, "ag_arena_new");
    if (ag_is_anomaly_detection_enabled() != arg->spec->anomaly ||
        !ag_is_grad_enabled())
        job_fail(r, "the thread's modes changed");
    ag_set_anomaly_detection(false);
    ag_arena_free(step);
    ag_arena_free(a);
}

static void *job_thread(void *p)
{
    job_arg *arg = p;
    pthread_barrier_wait(arg->barrier);
    run_job(arg);
    return NULL;
}

/* Asserts that two results of one job are bit-identical. */
static void expect_same(int id, const job_result *x, const job_result *y)
{
    ck_assert_msg(!x->failure[0] && !y->failure[0], "job %d: %s%s", id,
                  x->failure, y->failure);
    for (int64_t i = 0; i < steps; i++)
        ck_assert_msg(memcmp(&x->loss[i], &y->loss[i], sizeof(double)) == 0,
                      "job %d step %lld: loss %.17g on its own, %.17g "
                      "beside the other threads",
                      id, (long long)i, x->loss[i], y->loss[i]);
    ck_assert(memcmp(x->correct, y->correct, sizeof x->correct) == 0);
    ck_assert_uint_eq(x->param_bytes, y->param_bytes);
    ck_assert_msg(memcmp(x->params, y->params, x->param_bytes) == 0,
                  "job %d: the final parameters differ", id);
    ck_assert_str_eq(x->metadata, y->metadata);
    ck_assert_int_eq(x->gc_status, y->gc_status);
    const ag_gradcheck_report *g = &x->gc, *h = &y->gc;
    ck_assert(g->passed == h->passed && g->checked == h->checked &&
              g->element == h->element &&
              g->output_element == h->output_element);
    ck_assert(memcmp(&g->analytic, &h->analytic, sizeof(double)) == 0 &&
              memcmp(&g->numeric, &h->numeric, sizeof(double)) == 0);
    ck_assert_str_eq(x->error, y->error);
}

/* What a job must have produced whichever way it ran. */
static void expect_sound(int id, const job_result *r)
{
    ck_assert_msg(!r->failure[0], "job %d: %s", id, r->failure);
    for (int64_t i = 0; i < steps; i++)
        ck_assert_msg(r->loss[i] > 0, "job %d step %lld: loss %g", id,
                      (long long)i, r->loss[i]);
    /* It learned: over half right at the last evaluation (a quarter is
     * chance; the first evaluation, after 50 steps, gets 36 to 59 of 96). */
    int64_t evals = steps / EVAL_EVERY;
    if (evals >= 2)
        ck_assert_msg(r->correct[evals - 1] > EXAMPLES / 2,
                      "job %d: %lld of %d right after training", id,
                      (long long)r->correct[evals - 1], EXAMPLES);
    ck_assert_msg(r->reloaded_equal, "job %d: the reloaded model differs", id);
    char want[64];
    snprintf(want, sizeof want, "job=%d", id);
    ck_assert_str_eq(r->metadata, want);
    ck_assert_msg(r->gc_status == 0 && r->gc.passed && r->gc.checked > 0,
                  "job %d: gradcheck %d", id, r->gc_status);
    snprintf(want, sizeof want, "(%d)", 1000 + id);
    ck_assert_msg(strstr(r->error, "ag_reshape") && strstr(r->error, want),
                  "job %d read the message \"%s\"", id, r->error);
}

static job_result serial[JOBS], threaded[JOBS];

START_TEST(test_threads_match_serial_runs)
{
    ck_assert_int_eq(ag_set_num_threads(1), 0);
    for (int j = 0; j < JOBS; j++) {
        job_arg arg = {&specs[j], &serial[j], true, NULL};
        run_job(&arg);
        expect_sound(j, &serial[j]);
    }
    pthread_barrier_t barrier;
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, JOBS), 0);
    pthread_t threads[JOBS];
    job_arg args[JOBS];
    for (int j = 0; j < JOBS; j++) {
        args[j] = (job_arg){&specs[j], &threaded[j], false, &barrier};
        ck_assert_int_eq(
            pthread_create(&threads[j], NULL, job_thread, &args[j]), 0);
    }
    for (int j = 0; j < JOBS; j++)
        ck_assert_int_eq(pthread_join(threads[j], NULL), 0);
    pthread_barrier_destroy(&barrier);
    for (int j = 0; j < JOBS; j++) {
        expect_sound(j, &threaded[j]);
        expect_same(j, &serial[j], &threaded[j]);
    }
    /* Jobs 0 and 3 differ only in their id. */
    ck_assert(memcmp(serial[0].loss, serial[3].loss, sizeof serial[0].loss) ==
              0);
    ck_assert(memcmp(threaded[0].params, threaded[3].params,
                     threaded[0].param_bytes) == 0);
    /* And the jobs did different work: jobs 0 and 2 share a dtype. */
    ck_assert(memcmp(serial[0].loss, serial[2].loss, sizeof serial[0].loss));
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_threads_match_serial_runs);
    suite_add_tcase(s, tc);
    return s;
}

/* Removes the checkpoints and the folder. */
static void remove_dir(void)
{
    char path[320];
    for (int j = 0; j < JOBS; j++)
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "%s/job%d-%s.safetensors", dir, j,
                     k ? "serial" : "thread");
            unlink(path);
        }
    rmdir(dir);
}

int main(void)
{
    steps = test_size("AG_TEST_THREAD_STEPS", MAX_STEPS);
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_threads_XXXXXX",
             base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int status = run_suite(threads_suite());
    remove_dir();
    return status;
}
