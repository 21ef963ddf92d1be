/* cnn_model.c: the Fashion-MNIST CNN (see cnn_model.h). */
#include "cnn_model.h"

ag_module *cnn_model_new(ag_arena *a, uint64_t seed)
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
    int n = (int)(sizeof layers / sizeof *layers);
    for (int i = 0; i < n; i++)
        if (!layers[i]) return NULL;
    return ag_nn_sequential(a, n, layers);
}
