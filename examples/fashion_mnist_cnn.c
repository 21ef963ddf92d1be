/* fashion_mnist_cnn.c: trains a small CNN on Fashion-MNIST, 28x28 grey
 * pictures of ten kinds of clothing, with Adam (lr 1e-3, constant) on
 * batches of 128, reports the test accuracy after each epoch, and saves the
 * weights (ag_module_state, named as the equivalent torch.nn.Sequential's
 * state_dict: "0.weight", "0.bias", "3.weight", ...) as a safetensors
 * checkpoint; --eval reloads a checkpoint and measures it again, and
 * examples/torch_cnn_eval.py measures it in PyTorch.
 *
 * The model, on (N, 1, 28, 28) images in [0, 1]:
 *   0 Conv2d(1, 32, 3, padding=1), 1 ReLU, 2 MaxPool2d(2),
 *   3 Conv2d(32, 64, 3, padding=1), 4 ReLU, 5 MaxPool2d(2),
 *   6 Flatten, 7 Linear(3136, 128), 8 ReLU, 9 Linear(128, 10).
 *
 * Run: ./build/examples/fashion_mnist_cnn [--data DIR] [--epochs N]
 *          [--save FILE] [--eval FILE] [--threads N] [--seed N]
 * Data: as fashion_mnist's (Debian's dataset-fashion-mnist by default). */
#include "fashion.h"

static ag_tensor *forward(void *model, ag_arena *step, ag_tensor *x)
{
    return ag_module_forward(model, step, x);
}

static void set_training(void *model, bool training)
{
    ag_module_set_training(model, training);
}

static int make(ag_arena *a, uint64_t seed, fashion_model *out)
{
    ag_rng rng = ag_rng_seed(seed);
    const ag_conv_options pad1 = {.padding = {1, 1}};
    ag_module *layers[] = {
        ag_nn_conv2d(a, AG_F32, 1, 32, 3, 3, &pad1, true, &rng),
        ag_nn_activation(a, AG_ACT_RELU),
        ag_nn_max_pool2d(a, 2, 0, 0),
        ag_nn_conv2d(a, AG_F32, 32, 64, 3, 3, &pad1, true, &rng),
        ag_nn_activation(a, AG_ACT_RELU),
        ag_nn_max_pool2d(a, 2, 0, 0),
        ag_nn_flatten(a),
        ag_nn_linear(a, AG_F32, 64 * 7 * 7, 128, true, &rng),
        ag_nn_activation(a, AG_ACT_RELU),
        ag_nn_linear(a, AG_F32, 128, 10, true, &rng),
    };
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        if (!layers[i]) return -1;
    ag_module *net =
        ag_nn_sequential(a, (int)(sizeof layers / sizeof *layers), layers);
    ag_params *parameters = net ? ag_module_parameters(net) : NULL;
    ag_params *state = parameters ? ag_module_state(net) : NULL;
    if (!state) return -1;
    *out = (fashion_model){net, forward, set_training, parameters, state};
    return 0;
}

int main(int argc, char **argv)
{
    static const fashion_spec spec = {
        .program = "fashion_mnist_cnn",
        .model = "cnn conv32-pool-conv64-pool-128-10 relu",
        .image_ndim = 3,
        .image_shape = {1, 28, 28},
        .learning_rate = 1e-3,
        .cosine = false,
        .make = make,
    };
    return fashion_main(argc, argv, &spec);
}
