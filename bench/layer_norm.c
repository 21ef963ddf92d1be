/* layer_norm.c: times ag_layer_norm over the last axis of x (rows, cols),
 * the forward and the backward (ag_backward of sum(Y * W), which reaches
 * x, weight and bias) apart, and reports the medians over the repetitions
 * of the wall-clock time and of the process's CPU time (getrusage: every
 * thread's, which a loaded machine disturbs less than the wall clock), with
 * the heap allocations per repetition after the first.
 * bench/torch_layer_norm.py times torch.nn.functional.layer_norm on the
 * same shapes.
 *
 * Usage: layer_norm [--rows 8192] [--cols 768] [--dtype f32|f64]
 *                   [--threads 1] [--reps 20]
 */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common.h"

#define MAX_REPS 1000

/* Microseconds of CPU time the process (all its threads) has used. */
static double cpu_now_us(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return 1e6 * (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int main(int argc, char **argv)
{
    int64_t rows = 8192, cols = 768;
    ag_dtype dt = AG_F32;
    int threads = 1, reps = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--rows"))
            rows = atoll(v);
        else if (!strcmp(o, "--cols"))
            cols = atoll(v);
        else if (!strcmp(o, "--dtype"))
            dt = strcmp(v, "f64") ? AG_F32 : AG_F64;
        else if (!strcmp(o, "--threads"))
            threads = atoi(v);
        else if (!strcmp(o, "--reps"))
            reps = atoi(v);
        else {
            fprintf(stderr, "layer_norm: unknown option %s\n", o);
            return 2;
        }
    }
    if (rows < 1 || cols < 1 || threads < 1 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "layer_norm: sizes >= 1, reps 1 to %d\n", MAX_REPS);
        return 2;
    }
    if (ag_set_num_threads(threads)) {
        fprintf(stderr, "layer_norm: %s\n", ag_last_error());
        return 1;
    }
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_tensor *x = ag_randn(params, dt, 2, (int64_t[]){rows, cols}, 0, 1, &rng);
    ag_tensor *w = ag_randn(params, dt, 2, (int64_t[]){rows, cols}, 0, 1, &rng);
    ag_tensor *gamma = ag_randn(params, dt, 1, &cols, 1, 0.1, &rng);
    ag_tensor *beta = ag_randn(params, dt, 1, &cols, 0, 0.1, &rng);
    ag_tensor *leaves[3] = {x, gamma, beta};
    for (int i = 0; i < 3; i++) ag_requires_grad(leaves[i], true);
    double fwd[MAX_REPS], bwd[MAX_REPS], fwd_cpu[MAX_REPS], bwd_cpu[MAX_REPS];
    long allocs_before = 0;
    for (int r = 0; r <= reps; r++) { /* round 0 warms up */
        if (r == 1) allocs_before = bench_allocations();
        double c0 = cpu_now_us(), t0 = bench_now_us();
        ag_tensor *y = ag_layer_norm(step, x, 1, gamma, beta, 1e-5);
        double t1 = bench_now_us(), c1 = cpu_now_us();
        ag_tensor *loss = ag_sum(step, ag_mul(step, y, w), AG_ALL, false);
        double c2 = cpu_now_us(), t2 = bench_now_us();
        if (!loss || ag_backward(loss)) {
            fprintf(stderr, "layer_norm: %s\n", ag_last_error());
            return 1;
        }
        double t3 = bench_now_us(), c3 = cpu_now_us();
        if (r > 0) {
            fwd[r - 1] = t1 - t0;
            bwd[r - 1] = t3 - t2;
            fwd_cpu[r - 1] = c1 - c0;
            bwd_cpu[r - 1] = c3 - c2;
        }
        ag_arena_reset(step);
        for (int i = 0; i < 3; i++) ag_zero_grad(leaves[i]);
    }
    printf("ag layer_norm rows=%lld cols=%lld dtype=%s threads=%d "
           "forward_us=%.1f backward_us=%.1f forward_cpu_us=%.1f "
           "backward_cpu_us=%.1f allocs_per_step=%.2f\n",
           (long long)rows, (long long)cols, dt == AG_F32 ? "f32" : "f64",
           threads, bench_median(fwd, reps), bench_median(bwd, reps),
           bench_median(fwd_cpu, reps), bench_median(bwd_cpu, reps),
           (double)(bench_allocations() - allocs_before) / reps);
    ag_arena_free(step);
    ag_arena_free(params);
    return 0;
}
