/* fashion.h: what the Fashion-MNIST examples (fashion_mnist.c, an MLP, and
 * fashion_mnist_cnn.c, a CNN) share: their options, loading the IDX splits,
 * the epoch loop with its progress bar, the test accuracy, and saving and
 * reloading a safetensors checkpoint. Each example says how to make its
 * model and calls fashion_main. */
#ifndef EXAMPLES_FASHION_H
#define EXAMPLES_FASHION_H

#include <autograd.h>

#include <stdbool.h>

/* A model as the shared loop sees it, filled in by fashion_spec.make. */
typedef struct {
    void *model;
    /* logits (B, 10) of a batch x (B, image shape), built in `step` */
    ag_tensor *(*forward)(void *model, ag_arena *step, ag_tensor *x);
    void (*set_training)(void *model, bool training);
    ag_params *parameters; /* what Adam updates */
    ag_params *state;      /* what the checkpoint holds */
} fashion_model;

/* Data parallel training over processes (either example under mpirun):
 * each rank trains on its part of every batch and the gradients are
 * averaged (libautograd-dist); the loop here stays free of MPI. */
typedef struct {
    int rank, world;
    void *self;
    /* starts it for the model's parameters, made in arena a */
    int (*start)(void *self, ag_arena *a, ag_params *parameters);
    /* the backward pass with the gradients averaged over the ranks */
    int (*backward)(void *self, ag_tensor *loss);
    /* rank 0 writes the checkpoint, the others wait */
    int (*save)(void *self, const char *path, const ag_params *state,
                const char *const *metadata);
} fashion_dist;

typedef struct {
    const char *program; /* for messages, the usage line and the default
                            checkpoint, <program>.safetensors */
    const char *model;   /* the checkpoint's "model" metadata */
    int image_ndim;      /* each example's shape: (784) or (1, 28, 28) */
    int64_t image_shape[3];
    double learning_rate; /* Adam's */
    bool cosine;          /* decay it by a cosine to 0 over the run */
    /* Makes the model in arena `a` with its weights drawn from seed;
     * returns 0, or -1 with the library's error. */
    int (*make)(ag_arena *a, uint64_t seed, fashion_model *out);
    /* Prints what the model is (rank 0 alone, after make), or NULL;
     * returns 0, or -1 with the library's error. */
    int (*describe)(void *model);
    const fashion_dist *dist; /* data parallel, or NULL: one process */
} fashion_spec;

/* Parses the options (--data DIR, --epochs N, --save FILE, --eval FILE,
 * --curve FILE, --threads N, --seed N, --help), loads the data, makes the
 * model, and trains it (reporting the test accuracy after each epoch,
 * writing the training curve, by default <program>_curve.csv and .svg, then
 * saving the checkpoint) or, with --eval, measures a checkpoint. Returns main's
 * exit status: 0, 1 on failure, 2 for bad options. */
int fashion_main(int argc, char **argv, const fashion_spec *spec);

/* fashion_main, data parallel over processes when the options hold --dist
 * (taken out) or it runs under Open MPI's mpirun (fashion_dist.c): starts
 * libautograd-dist, sets spec->dist for the run (NULL again after) and
 * stops it. Without libautograd-dist built, --dist is refused (exit 2).
 * Returns main's exit status, as fashion_main. */
int fashion_run(int argc, char **argv, fashion_spec *spec);

#endif /* EXAMPLES_FASHION_H */
