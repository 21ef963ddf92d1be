/* train.c: the examples' training loop (see train.h). */
#include "train.h"
#include "progress.h"

#include <math.h>
#include <stdio.h>

double train_cosine(ag_optimizer *opt, ag_arena *step, ag_loss_fn loss,
                    void *user, const char *label, long steps, double lr,
                    double min_lr, int64_t samples, plot_curve *curve)
{
    double value = NAN;
    progress bar;
    progress_start(&bar, label, steps);
    for (long s = 1; s <= steps; s++) {
        ag_optimizer_set_lr(opt, ag_lr_cosine(lr, min_lr, s - 1, 0, steps));
        ag_tensor *l = loss(step, user);
        if (!l || ag_backward(l) || ag_optimizer_step(opt)) return NAN;
        ag_optimizer_zero_grad(opt);
        value = ag_item(l);
        if (curve) plot_curve_add(curve, (double)s, &value);
        if (s % (steps / 10 > 0 ? steps / 10 : 1) == 0)
            printf("step %5ld  loss %.4e\n", s, value);
        progress_step(&bar, s, value, samples);
        ag_arena_reset(step);
    }
    progress_finish(&bar, value);
    return value;
}
