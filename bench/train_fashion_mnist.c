/* train_fashion_mnist.c: times the whole training run of
 * examples/fashion_mnist with its settings (MLP 784-512-256-10 with ReLU,
 * PyTorch's initialisation, Adam with its defaults, batch 128 shuffled
 * every epoch, the learning rate following a cosine from 1e-3 to 0 over
 * the run, the test accuracy after each epoch), and prints each epoch's
 * training time and samples/s (the evaluation is timed apart), by the
 * clock and by the process's CPU time (which another program on the same
 * cores does not inflate as much), then the whole run.
 * bench/torch_fashion_mnist.py is the same run in PyTorch; bench/run_training
 * runs both.
 *
 * Usage: train_fashion_mnist [--data DIR] [--epochs N] [--threads N]
 *                            [--seed N]
 * (--threads calls ag_set_num_threads; without it OpenBLAS threads as
 * OPENBLAS_NUM_THREADS says.) */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 128
#define EVAL_BATCH 1000

static const int64_t sizes[] = {784, 512, 256, 10};

/* Seconds on `clock`: CLOCK_MONOTONIC or CLOCK_PROCESS_CPUTIME_ID. */
static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return seconds(CLOCK_MONOTONIC);
}

static double cpu_s(void)
{
    return seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static int fail(const char *what)
{
    fprintf(stderr, "train_fashion_mnist: %s: %s\n", what, ag_last_error());
    return 1;
}

/* Loads <dir>/<prefix>-images-idx3-ubyte.gz as (N, 784) pixels in [0, 1]
 * and the labels beside them; returns 0 or -1. */
static int load(ag_arena *a, const char *dir, const char *prefix, ag_tensor **x,
                ag_tensor **y)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    ag_tensor *images = ag_load_idx(a, path, AG_F32);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    *y = images ? ag_load_idx(a, path, AG_I32) : NULL;
    *x = *y ? ag_reshape(a, images, 2, (int64_t[]){-1, 784}) : NULL;
    if (!*x) return -1;
    float *pixel = ag_data(*x);
    for (int64_t i = 0; i < ag_numel(*x); i++) pixel[i] /= 255.0f;
    return 0;
}

/* Percentage of the test split (batches of EVAL_BATCH, in order)
 * classified correctly, or -1. */
static double accuracy(ag_mlp *m, ag_batcher *test, int64_t n, ag_arena *a)
{
    bool was = ag_set_grad_enabled(false);
    int64_t correct = 0;
    ag_tensor *bx, *by;
    int got;
    while ((got = ag_batcher_next(test, a, &bx, &by)) == 1) {
        ag_tensor *p = ag_argmax(a, ag_mlp_forward(a, m, bx), 1);
        if (!p) return -1;
        const int32_t *pred = ag_data(p), *label = ag_data(by);
        for (int64_t i = 0; i < ag_numel(by); i++)
            correct += pred[i] == label[i];
        ag_arena_reset(a);
    }
    ag_set_grad_enabled(was);
    return got < 0 ? -1 : 100.0 * (double)correct / (double)n;
}

int main(int argc, char **argv)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    long epochs = 10, threads = 0, seed = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--epochs"))
            epochs = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            seed = atol(argv[i + 1]);
    }
    if (argc % 2 == 0 || epochs < 1 || threads < 0 || seed < 0) {
        fprintf(stderr, "usage: train_fashion_mnist [--data DIR] [--epochs "
                        "N] [--threads N] [--seed N]\n");
        return 2;
    }
    if (threads) ag_set_num_threads((int)threads);
    ag_arena *data = ag_arena_new(), *step = ag_arena_new();
    ag_tensor *x, *y, *tx, *ty;
    if (!data || !step || load(data, dir, "train", &x, &y) ||
        load(data, dir, "t10k", &tx, &ty))
        return fail("loading the data");
    ag_mlp *mlp =
        ag_mlp_new(data, 4, sizes, &(ag_mlp_options){.seed = (uint64_t)seed});
    ag_optimizer *opt = mlp ? ag_adam_new(data, mlp->params, NULL) : NULL;
    ag_batcher *batches =
        opt ? ag_batcher_new(data, x, y, BATCH, true, (uint64_t)seed, false)
            : NULL;
    ag_batcher *test =
        batches ? ag_batcher_new(data, tx, ty, EVAL_BATCH, false, 0, false)
                : NULL;
    if (!test) return fail("setting up");
    int64_t total = epochs * ag_batcher_count(batches);
    double run_start = now_s(), train_s = 0, train_cpu_s = 0;
    for (long e = 1; e <= epochs; e++) {
        double t0 = now_s(), c0 = cpu_s(), loss_sum = 0;
        int64_t samples = 0, n = 0;
        ag_tensor *bx, *by;
        int got;
        while ((got = ag_batcher_next(batches, step, &bx, &by)) == 1) {
            ag_optimizer_set_lr(
                opt, ag_lr_cosine(1e-3, 0, ag_optimizer_steps(opt), 0, total));
            ag_tensor *loss = ag_softmax_cross_entropy(
                step, ag_mlp_forward(step, mlp, bx), by);
            if (!loss || ag_backward(loss) || ag_optimizer_step(opt))
                return fail("training");
            ag_optimizer_clear_grad(opt);
            loss_sum += ag_item(loss);
            samples += ag_shape(bx)[0];
            n++;
            ag_arena_reset(step);
        }
        if (got < 0) return fail("batching");
        double t1 = now_s(), c1 = cpu_s();
        double acc = accuracy(mlp, test, ag_shape(ty)[0], step);
        if (acc < 0) return fail("evaluating");
        train_s += t1 - t0;
        train_cpu_s += c1 - c0;
        printf("epoch=%ld train_s=%.3f samples_per_s=%.0f cpu_s=%.3f "
               "cpu_samples_per_s=%.0f eval_s=%.3f loss=%.4f "
               "accuracy=%.2f\n",
               e, t1 - t0, (double)samples / (t1 - t0), c1 - c0,
               (double)samples / (c1 - c0), now_s() - t1, loss_sum / (double)n,
               acc);
        fflush(stdout);
    }
    printf("total_s=%.3f train_s=%.3f train_cpu_s=%.3f threads=%d\n",
           now_s() - run_start, train_s, train_cpu_s, ag_get_num_threads());
    ag_arena_free(step);
    ag_arena_free(data);
    return 0;
}
