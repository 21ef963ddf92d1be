/* fashion_mnist.c: trains an MLP (784-512-256-10, ReLU, Adam, batch 128) on
 * Fashion-MNIST, 28x28 grey pictures of ten kinds of clothing, reports the
 * test accuracy after each epoch, and saves the weights as a safetensors
 * checkpoint; --eval reloads a checkpoint and measures it again.
 *
 * The learning rate follows a cosine from 1e-3 down to 0 over the run.
 *
 * Run: ./build/examples/fashion_mnist [--data DIR] [--epochs N]
 *          [--save FILE] [--eval FILE] [--threads N] [--seed N] [--dist]
 * Data parallel over processes (when built with libautograd-dist):
 *      mpirun -np 2 ./build/examples/fashion_mnist
 * (--dist, or detected under mpirun): each process trains on its half of
 * every batch of 128, their gradients averaged, the same steps as one
 * process; rank 0 prints and writes the checkpoint.
 * Data: Debian's dataset-fashion-mnist, in /usr/share/datasets/fashion-mnist
 * by default (the four IDX files as published, gzipped).
 * What it shares with fashion_mnist_cnn.c is in fashion.c. */
#include "fashion.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef AG_EXAMPLE_DIST
#include <autograd/dist.h>
#endif

static const int64_t sizes[] = {784, 512, 256, 10};

static ag_tensor *forward(void *model, ag_arena *step, ag_tensor *x)
{
    return ag_mlp_forward(step, model, x);
}

static void set_training(void *model, bool training)
{
    ag_mlp_set_training(model, training);
}

static int make(ag_arena *a, uint64_t seed, fashion_model *out)
{
    ag_mlp *mlp = ag_mlp_new(a, 4, sizes, &(ag_mlp_options){.seed = seed});
    if (!mlp) return -1;
    *out =
        (fashion_model){mlp, forward, set_training, mlp->params, mlp->params};
    return 0;
}

#ifdef AG_EXAMPLE_DIST
static ag_dist *dist;
static ag_ddp *ddp;

static int dist_start(void *self, ag_arena *a, ag_params *parameters)
{
    (void)self;
    ddp = ag_ddp_new(a, dist, parameters, NULL, NULL);
    return ddp ? 0 : -1;
}

static int dist_backward(void *self, ag_tensor *loss)
{
    (void)self;
    return ag_ddp_backward(ddp, loss);
}

static int dist_save(void *self, const char *path, const ag_params *state,
                     const char *const *metadata)
{
    (void)self;
    return ag_ddp_save(ddp, path, state, metadata);
}
#endif

/* Whether to train data parallel: --dist (taken out of argv), or a run
 * under Open MPI's mpirun. */
static bool wants_dist(int *argc, char **argv)
{
    bool on = getenv("OMPI_COMM_WORLD_SIZE") != NULL;
    for (int i = 1; i < *argc; i++)
        if (strcmp(argv[i], "--dist") == 0) {
            on = true;
            memmove(argv + i, argv + i + 1, (size_t)(*argc - i) * sizeof *argv);
            (*argc)--;
            i--;
        }
    return on;
}

int main(int argc, char **argv)
{
    static fashion_spec spec = {
        .program = "fashion_mnist",
        .model = "mlp 784-512-256-10 relu",
        .image_ndim = 1,
        .image_shape = {784},
        .learning_rate = 1e-3, /* Adam's default, decayed to 0 by a cosine */
        .cosine = true,
        .make = make,
    };
    if (!wants_dist(&argc, argv)) return fashion_main(argc, argv, &spec);
#ifdef AG_EXAMPLE_DIST
    dist = ag_dist_init(&argc, &argv, NULL);
    if (!dist) {
        fprintf(stderr, "fashion_mnist: %s\n", ag_last_error());
        return 1;
    }
    fashion_dist d = {.rank = ag_dist_rank(dist),
                      .world = ag_dist_size(dist),
                      .start = dist_start,
                      .backward = dist_backward,
                      .save = dist_save};
    spec.dist = &d;
    int status = fashion_main(argc, argv, &spec);
    ag_dist_finalize(dist);
    return status;
#else
    fprintf(stderr, "fashion_mnist: --dist needs libautograd-dist, which was "
                    "not built (no MPI found)\n");
    return 2;
#endif
}
