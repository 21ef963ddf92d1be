/* spiral.c: three interleaved spiral arms in the plane, one class each, that
 * no straight line separates; an MLP (2-64-64-3, ReLU, Adam, mini-batches of
 * 32) learns to tell them apart. Reports the accuracy on the training points
 * and on a second spiral drawn with other noise, and writes the mean loss
 * and the training accuracy of each epoch as a training curve (CSV, and SVG
 * when gnuplot is on PATH).
 *
 * Run: ./build/examples/spiral [--epochs N] [--curve FILE]
 *      (defaults: 200, spiral_curve.csv)
 * Exits non-zero if the held-out accuracy is below 90%. */
#include "plot.h"
#include "progress.h"
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLASSES 3
#define PER_CLASS 100
#define POINTS (CLASSES * PER_CLASS)

static int fail(const char *what)
{
    fprintf(stderr, "spiral: %s: %s\n", what, ag_last_error());
    return 1;
}

/* Point i of arm c: radius growing from 0 to 1 while the angle turns by 4
 * radians, plus normal noise of 0.2 on the angle. */
static void make_spiral(uint64_t seed, float *xy, int32_t *label)
{
    ag_rng rng = ag_rng_seed(seed);
    for (int c = 0; c < CLASSES; c++)
        for (int i = 0; i < PER_CLASS; i++) {
            int k = c * PER_CLASS + i;
            double r = (double)i / (PER_CLASS - 1);
            double t = 4.0 * (c + r) + 0.2 * ag_rng_normal(&rng);
            xy[2 * k] = (float)(r * sin(t));
            xy[2 * k + 1] = (float)(r * cos(t));
            label[k] = c;
        }
}

/* Share of the points the model classifies correctly. */
static double accuracy(ag_arena *a, ag_mlp *m, const float *xy,
                       const int32_t *label)
{
    bool was = ag_set_grad_enabled(false);
    ag_tensor *x = ag_from_data(a, AG_F32, 2, (int64_t[]){POINTS, 2}, xy);
    ag_tensor *predicted = ag_argmax(a, ag_mlp_forward(a, m, x), 1);
    ag_set_grad_enabled(was);
    if (!predicted) return NAN;
    const int32_t *p = ag_data(predicted);
    int correct = 0;
    for (int i = 0; i < POINTS; i++) correct += p[i] == label[i];
    return (double)correct / POINTS;
}

int main(int argc, char **argv)
{
    long epochs = 200;
    const char *curve_path = "spiral_curve.csv";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--epochs") == 0)
            epochs = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--curve") == 0)
            curve_path = argv[i + 1];
        else
            epochs = 0;
    }
    if (epochs < 1 || argc % 2 == 0) {
        fprintf(stderr, "usage: spiral [--epochs N] [--curve FILE]\n");
        return 2;
    }
    static float train_xy[2 * POINTS], test_xy[2 * POINTS];
    static int32_t train_label[POINTS], test_label[POINTS];
    make_spiral(1, train_xy, train_label);
    make_spiral(2, test_xy, test_label);

    ag_arena *data = ag_arena_new(), *model = ag_arena_new();
    ag_arena *step = ag_arena_new();
    ag_tensor *x =
        ag_from_data(data, AG_F32, 2, (int64_t[]){POINTS, 2}, train_xy);
    ag_tensor *y =
        ag_from_data(data, AG_I32, 1, (int64_t[]){POINTS}, train_label);
    ag_batcher *batches = ag_batcher_new(data, x, y, 32, true, 7, false);
    ag_mlp *mlp = ag_mlp_new(model, 4, (int64_t[]){2, 64, 64, CLASSES},
                             &(ag_mlp_options){.seed = 3});
    ag_adam_options adam = ag_adam_defaults();
    adam.lr = 0.01;
    ag_optimizer *opt = mlp ? ag_adam_new(model, mlp->params, &adam) : NULL;
    if (!batches || !opt) return fail("setting up");

    double loss_value = NAN;
    plot_curve curve;
    plot_curve_open(&curve, curve_path, "spiral", "epoch",
                    "mean_loss,training_accuracy");
    progress bar;
    progress_start(&bar, "spiral", epochs);
    for (long e = 1; e <= epochs; e++) {
        ag_tensor *bx, *by;
        int got, batches_seen = 0;
        double loss_sum = 0;
        while ((got = ag_batcher_next(batches, step, &bx, &by)) == 1) {
            ag_tensor *loss = ag_softmax_cross_entropy(
                step, ag_mlp_forward(step, mlp, bx), by);
            if (!loss || ag_backward(loss) || ag_optimizer_step(opt))
                return fail("training");
            ag_optimizer_zero_grad(opt);
            loss_value = ag_item(loss);
            loss_sum += loss_value;
            batches_seen++;
            ag_arena_reset(step);
        }
        if (got < 0) return fail("batching");
        double row[2] = {loss_sum / batches_seen,
                         accuracy(step, mlp, train_xy, train_label)};
        ag_arena_reset(step);
        plot_curve_add(&curve, (double)e, row);
        progress_step(&bar, e, loss_value, POINTS);
    }
    progress_finish(&bar, loss_value);
    plot_curve_close(&curve);

    double train = accuracy(step, mlp, train_xy, train_label);
    double test = accuracy(step, mlp, test_xy, test_label);
    if (isnan(train) || isnan(test)) return fail("evaluating");
    printf("spiral: loss %.4f, accuracy %.1f%% on the training points, "
           "%.1f%% on a held-out spiral\n",
           loss_value, 100 * train, 100 * test);
    ag_arena_free(step);
    ag_arena_free(model);
    ag_arena_free(data);
    if (test >= 0.9) return 0;
    fprintf(stderr, "spiral: held-out accuracy below 90%%: it did not learn "
                    "(more epochs?)\n");
    return 1;
}
