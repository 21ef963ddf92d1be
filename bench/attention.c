/* attention.c: times ag_scaled_dot_product_attention, the forward and the
 * backward (ag_backward of sum(O * W)) apart, on q, k, v of shape
 * (batch, heads, T, E) that require gradients, and reports the medians over
 * the repetitions and the peak bytes of the step arena (ag_arena_capacity
 * after forward and backward: the graph, the output, the saved logsumexp
 * and the kernels' scratch), next to the bytes one (T,T) score matrix of
 * every head would take. bench/torch_attention.py times PyTorch's naive
 * attention in torch ops on the same shapes.
 *
 * Usage: attention [--T 256] [--batch 1] [--heads 8] [--E 64]
 *                  [--dtype f32|f64] [--causal 0|1] [--threads 1] [--reps 10]
 */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

int main(int argc, char **argv)
{
    int64_t T = 256, batch = 1, heads = 8, E = 64;
    int causal = 1, threads = 1, reps = 10;
    ag_dtype dt = AG_F32;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--T"))
            T = atoll(v);
        else if (!strcmp(o, "--batch"))
            batch = atoll(v);
        else if (!strcmp(o, "--heads"))
            heads = atoll(v);
        else if (!strcmp(o, "--E"))
            E = atoll(v);
        else if (!strcmp(o, "--causal"))
            causal = atoi(v);
        else if (!strcmp(o, "--threads"))
            threads = atoi(v);
        else if (!strcmp(o, "--reps"))
            reps = atoi(v);
        else if (!strcmp(o, "--dtype"))
            dt = strcmp(v, "f64") ? AG_F32 : AG_F64;
        else {
            fprintf(stderr, "attention: unknown option %s\n", o);
            return 2;
        }
    }
    if (T < 1 || batch < 1 || heads < 1 || E < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "attention: sizes and reps must be >= 1\n");
        return 2;
    }
    if (ag_set_num_threads(threads)) {
        fprintf(stderr, "attention: %s\n", ag_last_error());
        return 2;
    }
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    int64_t shape[4] = {batch, heads, T, E};
    ag_tensor *x[3], *w = ag_randn(params, dt, 4, shape, 0, 1, &rng);
    for (int i = 0; i < 3; i++) {
        x[i] = ag_randn(params, dt, 4, shape, 0, 1, &rng);
        ag_requires_grad(x[i], true);
    }
    double fwd[1000], bwd[1000];
    size_t peak = 0;
    long allocs_before = 0;
    for (int r = 0; r <= reps; r++) { /* round 0 warms up */
        if (r == 1) allocs_before = bench_allocations();
        double t0 = bench_now_us();
        ag_tensor *o = ag_scaled_dot_product_attention(step, x[0], x[1], x[2],
                                                       NULL, causal);
        double t1 = bench_now_us();
        ag_tensor *loss = ag_sum(step, ag_mul(step, o, w), AG_ALL, false);
        double t2 = bench_now_us();
        if (!loss || ag_backward(loss)) {
            fprintf(stderr, "attention: %s\n", ag_last_error());
            return 1;
        }
        double t3 = bench_now_us();
        if (r > 0) {
            fwd[r - 1] = t1 - t0;
            bwd[r - 1] = t3 - t2;
        }
        if (ag_arena_capacity(step) > peak) peak = ag_arena_capacity(step);
        ag_arena_reset(step);
        for (int i = 0; i < 3; i++) ag_zero_grad(x[i]);
    }
    size_t elem = dt == AG_F32 ? 4 : 8;
    printf("ag attention T=%lld batch=%lld heads=%lld E=%lld dtype=%s "
           "causal=%d threads=%d forward_ms=%.3f backward_ms=%.3f "
           "arena_bytes=%zu scores_bytes=%zu allocs_per_step=%.2f\n",
           (long long)T, (long long)batch, (long long)heads, (long long)E,
           dt == AG_F32 ? "f32" : "f64", causal, threads,
           1e-3 * bench_median(fwd, reps), 1e-3 * bench_median(bwd, reps), peak,
           (size_t)(batch * heads * T * T) * elem,
           (double)(bench_allocations() - allocs_before) / reps);
    ag_arena_free(step);
    ag_arena_free(params);
    return 0;
}
