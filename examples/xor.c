/* xor.c: trains a 2-8-2 multi-layer perceptron on XOR with softmax
 * cross-entropy and plain gradient descent, printing the loss as it falls
 * and the learned truth table at the end; the loss of every step goes to a
 * training curve (CSV, and SVG when gnuplot is on PATH).
 *
 * Run: ./build/examples/xor [steps [curve.csv]]
 *      (defaults: 2000, xor_curve.csv) */
#include "plot.h"
#include <autograd.h>

#include <stdio.h>
#include <stdlib.h>

#define HIDDEN 8

typedef struct {
    ag_tensor *w1, *b1, *w2, *b2; /* (2,H), (H), (H,2), (2) */
} mlp;

/* logits = tanh(x W1 + b1) W2 + b2 */
static ag_tensor *forward(ag_arena *step, const mlp *m, ag_tensor *x)
{
    ag_tensor *h =
        ag_tanh(step, ag_add(step, ag_matmul(step, x, m->w1), m->b1));
    return ag_add(step, ag_matmul(step, h, m->w2), m->b2);
}

/* w -= lr * dL/dw, then clear the gradient for the next step. */
static void sgd_update(ag_tensor *w, double lr)
{
    float *value = ag_data(w);
    const float *grad = ag_data(ag_grad(w));
    for (int64_t i = 0; i < ag_numel(w); i++) value[i] -= (float)lr * grad[i];
    ag_zero_grad(w);
}

static int fail(const char *what)
{
    fprintf(stderr, "xor: %s: %s\n", what, ag_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 2000;
    const char *curve_path = argc > 2 ? argv[2] : "xor_curve.csv";
    if (steps < 1 || argc > 3) {
        fprintf(stderr, "usage: %s [steps >= 1 [curve.csv]]\n", argv[0]);
        return 2;
    }
    const float inputs[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    const int32_t labels[4] = {0, 1, 1, 0};

    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    if (!params || !step) return fail("arena");
    ag_rng rng = ag_rng_seed(42);
    mlp m = {
        .w1 = ag_randn(params, AG_F32, 2, (int64_t[]){2, HIDDEN}, 0, 1, &rng),
        .b1 = ag_zeros(params, AG_F32, 1, (int64_t[]){HIDDEN}),
        .w2 = ag_randn(params, AG_F32, 2, (int64_t[]){HIDDEN, 2}, 0, 0.5, &rng),
        .b2 = ag_zeros(params, AG_F32, 1, (int64_t[]){2}),
    };
    ag_tensor *all[] = {m.w1, m.b1, m.w2, m.b2};
    for (int i = 0; i < 4; i++) {
        if (!all[i]) return fail("parameters");
        ag_requires_grad(all[i], true);
    }

    double loss_value = 0;
    plot_curve curve;
    plot_curve_open(&curve, curve_path, "xor", "step", "loss");
    for (int it = 1; it <= steps; it++) {
        ag_tensor *x = ag_from_data(step, AG_F32, 2, (int64_t[]){4, 2}, inputs);
        ag_tensor *y = ag_from_data(step, AG_I32, 1, (int64_t[]){4}, labels);
        ag_tensor *loss =
            ag_softmax_cross_entropy(step, forward(step, &m, x), y);
        if (!loss || ag_backward(loss)) return fail("training step");
        loss_value = ag_item(loss);
        plot_curve_add(&curve, it, &loss_value);
        for (int i = 0; i < 4; i++) sgd_update(all[i], 0.5);
        if (it == 1 || it % (steps / 10 > 0 ? steps / 10 : 1) == 0)
            printf("step %5d  loss %.6f\n", it, loss_value);
        ag_arena_reset(step);
    }

    plot_curve_close(&curve);

    /* The learned truth table, without recording a graph. */
    bool was = ag_set_grad_enabled(false);
    ag_tensor *x = ag_from_data(step, AG_F32, 2, (int64_t[]){4, 2}, inputs);
    ag_tensor *p = ag_softmax(step, forward(step, &m, x), -1);
    if (!p) return fail("prediction");
    const float *prob = ag_data(p);
    int correct = 0;
    for (int i = 0; i < 4; i++) {
        int predicted = prob[2 * i + 1] > prob[2 * i];
        correct += predicted == labels[i];
        printf("%g xor %g -> %d (p=%.3f)\n", inputs[i][0], inputs[i][1],
               predicted, prob[2 * i + predicted]);
    }
    ag_set_grad_enabled(was);
    printf("final loss %.6f, %d/4 correct\n", loss_value, correct);
    ag_arena_free(step);
    ag_arena_free(params);
    return correct == 4 ? 0 : 1;
}
