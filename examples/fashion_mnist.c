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
 * What it shares with fashion_mnist_cnn.c is in fashion.c, the data
 * parallel mode in fashion_dist.c. */
#include "fashion.h"

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
    return fashion_run(argc, argv, &spec);
}
