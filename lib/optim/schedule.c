/* schedule.c: learning-rate schedules as pure functions of the step:
 * step decay (PyTorch's StepLR) and linear warmup then cosine decay. */
#include "optim.h"

#include <math.h>

#define PI 3.14159265358979323846

double ag_lr_step_decay(double base_lr, int64_t step, int64_t step_size,
                        double gamma)
{
    if (step < 0 || step_size < 1) {
        ag__error("ag_lr_step_decay",
                  "step %lld must be >= 0 and step_size %lld >= 1",
                  (long long)step, (long long)step_size);
        return NAN;
    }
    return base_lr * pow(gamma, (double)(step / step_size));
}

double ag_lr_cosine(double base_lr, double min_lr, int64_t step, int64_t warmup,
                    int64_t total)
{
    if (step < 0 || warmup < 0 || total <= warmup) {
        ag__error("ag_lr_cosine",
                  "need step >= 0, warmup >= 0 and total > warmup; got step "
                  "%lld, warmup %lld, total %lld",
                  (long long)step, (long long)warmup, (long long)total);
        return NAN;
    }
    if (step < warmup) return base_lr * (double)(step + 1) / (double)warmup;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1) progress = 1;
    return min_lr + (base_lr - min_lr) * (1 + cos(PI * progress)) / 2;
}
