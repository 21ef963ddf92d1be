/* train.h: the examples' training loop for a loss of the whole data set:
 * Adam (or any optimizer) with the learning rate decayed by a cosine, the
 * loss printed ten times, a progress bar (progress.h) and the training
 * curve (plot.h). */
#ifndef EXAMPLES_TRAIN_H
#define EXAMPLES_TRAIN_H

#include "plot.h"
#include <autograd.h>

/* Runs `steps` steps of: learning rate ag_lr_cosine(lr, min_lr, ...),
 * loss(step, user) built in arena `step`, ag_backward, ag_optimizer_step,
 * ag_optimizer_zero_grad, ag_arena_reset(step). Prints "step N  loss L"
 * after every tenth of the run and draws a progress bar labelled `label`
 * counting `samples` per step; adds (step, loss) to `curve` after every
 * step when it is not NULL. Returns the last loss, or NaN with the
 * library's error when a step fails. */
double train_cosine(ag_optimizer *opt, ag_arena *step, ag_loss_fn loss,
                    void *user, const char *label, long steps, double lr,
                    double min_lr, int64_t samples, plot_curve *curve);

#endif /* EXAMPLES_TRAIN_H */
