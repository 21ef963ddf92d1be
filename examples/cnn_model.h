/* cnn_model.h: the CNN of fashion_mnist_cnn.c, also timed by
 * bench/cnn_step.c, as an ag_nn_sequential named as torch.nn.Sequential's:
 *   0 Conv2d(1, 32, 3, padding=1), 1 ReLU, 2 MaxPool2d(2),
 *   3 Conv2d(32, 64, 3, padding=1), 4 ReLU, 5 MaxPool2d(2),
 *   6 Flatten, 7 Linear(3136, 128), 8 ReLU, 9 Linear(128, 10),
 * on (N, 1, 28, 28) input; logits (N, 10). */
#ifndef EXAMPLES_CNN_MODEL_H
#define EXAMPLES_CNN_MODEL_H

#include <autograd.h>

/* The model in arena `a`, f32, PyTorch's initialisation drawn from seed;
 * NULL with the library's error. */
ag_module *cnn_model_new(ag_arena *a, uint64_t seed);

#endif /* EXAMPLES_CNN_MODEL_H */
