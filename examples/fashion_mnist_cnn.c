/* fashion_mnist_cnn.c: trains a small CNN on Fashion-MNIST, 28x28 grey
 * pictures of ten kinds of clothing, with Adam (lr 1e-3, constant) on
 * batches of 128, reports the test accuracy after each epoch, and saves the
 * weights (ag_module_state, named as the equivalent torch.nn.Sequential's
 * state_dict: "0.weight", "0.bias", "3.weight", ...) as a safetensors
 * checkpoint; --eval reloads a checkpoint and measures it again, and
 * examples/torch_cnn_eval.py measures it in PyTorch.
 *
 * The model (cnn_model.c): conv 1->32 3x3 pad 1, ReLU, max-pool 2, conv
 * 32->64 3x3 pad 1, ReLU, max-pool 2, flatten, linear 3136->128, ReLU,
 * linear 128->10, on (N, 1, 28, 28) images in [0, 1]. It prints the
 * model's summary (ag_nn_summary: every layer's output shape and parameter
 * count, 421,642 in all, as torchinfo shows PyTorch's) first.
 *
 * Run: ./build/examples/fashion_mnist_cnn [--data DIR] [--epochs N]
 *          [--save FILE] [--eval FILE] [--threads N] [--seed N] [--dist]
 * Data parallel over processes (when built with libautograd-dist), as
 * fashion_mnist's (fashion_dist.c):
 *      mpirun -np 2 ./build/examples/fashion_mnist_cnn
 * each process trains on its half of every batch of 128, the gradients
 * averaged; rank 0 prints and writes the checkpoint.
 * Data: as fashion_mnist's (Debian's dataset-fashion-mnist by default). */
#include "cnn_model.h"
#include "fashion.h"

static ag_tensor *forward(void *model, ag_arena *step, ag_tensor *x)
{
    return ag_module_forward(model, step, x);
}

static void set_training(void *model, bool training)
{
    ag_module_set_training(model, training);
}

/* Prints the summary of the net for one image. */
static int print_summary(void *net)
{
    ag_arena *scratch = ag_arena_new();
    ag_tensor *image =
        ag_zeros(scratch, AG_F32, 4, (const int64_t[]){1, 1, 28, 28});
    int rc = image ? ag_nn_summary(net, image, stdout) : -1;
    ag_arena_free(scratch);
    return rc;
}

static int make(ag_arena *a, uint64_t seed, fashion_model *out)
{
    ag_module *net = cnn_model_new(a, seed);
    ag_params *parameters = net ? ag_module_parameters(net) : NULL;
    ag_params *state = parameters ? ag_module_state(net) : NULL;
    if (!state) return -1;
    *out = (fashion_model){net, forward, set_training, parameters, state};
    return 0;
}

int main(int argc, char **argv)
{
    static fashion_spec spec = {
        .program = "fashion_mnist_cnn",
        .model = "cnn conv32-pool-conv64-pool-128-10 relu",
        .image_ndim = 3,
        .image_shape = {1, 28, 28},
        .learning_rate = 1e-3,
        .cosine = false,
        .make = make,
        .describe = print_summary,
    };
    return fashion_run(argc, argv, &spec);
}
