/* cnn_step.c: times one full training step of fashion_mnist_cnn's CNN
 * (examples/cnn_model.c: conv 1->32, ReLU, pool, conv 32->64, ReLU, pool,
 * linear 3136->128, ReLU, linear 128->10): forward on a (B,1,28,28) batch,
 * softmax cross-entropy, backward, an Adam step (lr 1e-3),
 * ag_optimizer_clear_grad and the step arena's reset. Prints the median over
 * the steps and the heap allocations per step after warm-up (0 is the
 * target). bench/torch_cnn.py is the same step in PyTorch; bench/run_cnn
 * runs both.
 *
 * Usage: cnn_step [--batch B (128)] [--threads N] [--steps S] */
#include "../examples/cnn_model.h"
#include "common.h"

#include <autograd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ag_module *net;
    ag_optimizer *adam;
} model;

static int train_step(ag_arena *step, int64_t batch, model *m,
                      const float *images, const int32_t *labels)
{
    ag_tensor *x =
        ag_from_data(step, AG_F32, 4, (int64_t[]){batch, 1, 28, 28}, images);
    ag_tensor *y = ag_from_data(step, AG_I32, 1, (int64_t[]){batch}, labels);
    ag_tensor *loss =
        ag_softmax_cross_entropy(step, ag_module_forward(m->net, step, x), y);
    if (!loss || ag_backward(loss) || ag_optimizer_step(m->adam)) return -1;
    ag_optimizer_clear_grad(m->adam);
    ag_arena_reset(step);
    return 0;
}

int main(int argc, char **argv)
{
    bench_options o;
    bool batch_given = false;
    for (int i = 1; i < argc; i++) batch_given |= !strcmp(argv[i], "--batch");
    if (bench_parse(argc, argv, 20, &o, NULL, NULL)) {
        fprintf(stderr, "usage: %s [--batch B] [--threads N] [--steps S]\n",
                argv[0]);
        return 2;
    }
    if (!batch_given) o.batch = 128;
    ag_set_num_threads(o.threads);
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_module *net = cnn_model_new(params, 1);
    ag_params *p = net ? ag_module_parameters(net) : NULL;
    model m = {net, p ? ag_adam_new(params, p, NULL) : NULL};
    size_t pixels = (size_t)o.batch * 28 * 28;
    float *images = malloc(pixels * sizeof *images);
    int32_t *labels = malloc((size_t)o.batch * sizeof *labels);
    double *us = malloc((size_t)o.steps * sizeof *us);
    if (!m.adam || !images || !labels || !us) {
        fprintf(stderr, "cnn_step: setup failed: %s\n", ag_last_error());
        return 1;
    }
    for (size_t i = 0; i < pixels; i++) images[i] = (float)ag_rng_uniform(&rng);
    for (int64_t i = 0; i < o.batch; i++)
        labels[i] = (int32_t)(ag_rng_next(&rng) % 10);

    for (int warm = 0; warm < 3; warm++) /* grow the arenas, warm BLAS */
        if (train_step(step, o.batch, &m, images, labels)) {
            fprintf(stderr, "cnn_step: %s\n", ag_last_error());
            return 1;
        }
    long allocs_before = bench_allocations();
    for (int s = 0; s < o.steps; s++) {
        double t0 = bench_now_us();
        if (train_step(step, o.batch, &m, images, labels)) {
            fprintf(stderr, "cnn_step: %s\n", ag_last_error());
            return 1;
        }
        us[s] = bench_now_us() - t0;
    }
    long allocs = bench_allocations() - allocs_before;
    double step_us = bench_median(us, o.steps);
    printf("batch=%lld threads=%d steps=%d step_us=%.1f samples_per_s=%.0f "
           "allocs_per_step=%.2f\n",
           (long long)o.batch, o.threads, o.steps, step_us,
           (double)o.batch * 1e6 / step_us, (double)allocs / o.steps);
    free(images);
    free(labels);
    free(us);
    ag_arena_free(step);
    ag_arena_free(params);
    return 0;
}
