/* lstm_step.c: times one training step of a character-level LSTM model,
 * by default Embedding(96, 64) -> LSTM(64, 256, 2 layers, batch_first) ->
 * Linear(256, 96) on a batch of 32 sequences of 64 symbols, the mean
 * cross-entropy of every output, backward, and Adam; prints the median
 * step time over the timed steps and the heap allocations per step after
 * the warm-up (bench/common.c counts them).
 *
 * Usage: lstm_step [--batch N] [--seq T] [--hidden H] [--layers L]
 *                  [--threads N] [--steps S] */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include "common.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYMBOLS 96
#define EMBED 64

int main(int argc, char **argv)
{
    long batch = 32, seq = 64, hidden = 256, layers = 2, threads = 1,
         steps = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = atol(argv[i + 1]);
        long *to = !strcmp(argv[i], "--batch")     ? &batch
                   : !strcmp(argv[i], "--seq")     ? &seq
                   : !strcmp(argv[i], "--hidden")  ? &hidden
                   : !strcmp(argv[i], "--layers")  ? &layers
                   : !strcmp(argv[i], "--threads") ? &threads
                   : !strcmp(argv[i], "--steps")   ? &steps
                                                   : NULL;
        if (!to || v < 1) {
            fprintf(stderr, "usage: lstm_step [--batch N] [--seq T] [--hidden "
                            "H] [--layers L] [--threads N] [--steps S]\n");
            return 2;
        }
        *to = v;
    }
    ag_set_num_threads((int)threads);
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_module *embed = ag_nn_embedding(a, AG_F32, SYMBOLS, EMBED, &rng);
    ag_module *lstm =
        ag_nn_lstm(a, AG_F32, EMBED, hidden, (int)layers, true, &rng);
    ag_module *head = ag_nn_linear(a, AG_F32, hidden, SYMBOLS, true, &rng);
    ag_module *model =
        ag_nn_sequential(a, 3, (ag_module *[]){embed, lstm, head});
    ag_params *params = model ? ag_module_parameters(model) : NULL;
    ag_optimizer *opt = params ? ag_adam_new(a, params, NULL) : NULL;
    ag_tensor *ids = ag_zeros(a, AG_I32, 2, (int64_t[]){batch, seq});
    ag_tensor *next = ag_zeros(a, AG_I32, 1, (int64_t[]){batch * seq});
    if (!opt || !ids || !next) {
        fprintf(stderr, "lstm_step: %s\n", ag_last_error());
        return 1;
    }
    for (int64_t i = 0; i < batch * seq; i++) { /* symbols as a text's */
        ((int32_t *)ag_data(ids))[i] = (int32_t)(ag_rng_next(&rng) % SYMBOLS);
        ((int32_t *)ag_data(next))[i] = (int32_t)(ag_rng_next(&rng) % SYMBOLS);
    }
    double *us = malloc(sizeof *us * (size_t)steps);
    long allocs = 0;
    for (long s = -3; s < steps; s++) { /* three warm-up steps */
        long before = bench_allocations();
        double t0 = bench_now_us();
        ag_tensor *logits =
            ag_reshape(step, ag_module_forward(model, step, ids), 2,
                       (int64_t[]){-1, SYMBOLS});
        ag_tensor *loss = ag_softmax_cross_entropy(step, logits, next);
        if (!loss || ag_backward(loss) || ag_optimizer_step(opt)) {
            fprintf(stderr, "lstm_step: %s\n", ag_last_error());
            return 1;
        }
        ag_optimizer_zero_grad(opt);
        ag_arena_reset(step);
        if (s >= 0) {
            us[s] = bench_now_us() - t0;
            long n = bench_allocations() - before;
            if (n > allocs) allocs = n;
        }
    }
    printf("step_us=%.0f allocs_per_step=%ld threads=%ld batch=%ld seq=%ld "
           "hidden=%ld layers=%ld\n",
           bench_median(us, (int)steps), allocs, threads, batch, seq, hidden,
           layers);
    free(us);
    ag_arena_free(step);
    ag_arena_free(a);
    return 0;
}
