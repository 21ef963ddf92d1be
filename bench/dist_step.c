/* dist_step.c: times the Fashion-MNIST MLP's training step (784-512-256-10,
 * ReLU, softmax cross-entropy, Adam, f32, a global batch of 128 random
 * images) on one process or data parallel under mpirun (ag_ddp, each rank
 * 128 / p of every batch), and prints the global samples per second from
 * the median step, with, data parallel, the median time ag_ddp_backward
 * waited after the backward pass (the sums not hidden by the pass).
 * --no-overlap makes the averaging start after the pass (the same step
 * with the allreduce blocking at the end). --allreduce instead times
 * MPI_Allreduce of 8 bytes to 16 MiB on this job's ranks (the median of
 * many), for the cost model of the README.
 *
 * Usage: dist_step [--threads N] [--steps S] [--no-overlap]
 *                  [--bucket-bytes B] [--allreduce]
 *        mpirun -np 2 dist_step ... */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <autograd.h>
#include <autograd/dist.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 128, MAX_STEPS = 1000 };

/* Median time of MPI_Allreduce (sum of floats) for sizes 8 B .. 16 MiB. */
static void time_allreduce(ag_dist *d)
{
    int rank = ag_dist_rank(d);
    float *buf = calloc((size_t)1 << 22, sizeof *buf);
    if (!buf) return;
    if (rank == 0) printf("allreduce: ranks=%d\n", ag_dist_size(d));
    for (int64_t bytes = 8; bytes <= ((int64_t)1 << 24); bytes *= 8) {
        int count = (int)(bytes / 4), reps = bytes < (1 << 20) ? 200 : 20;
        double t[200];
        for (int i = 0; i < reps + 3; i++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD);
            if (i >= 3) t[i - 3] = MPI_Wtime() - t0;
        }
        if (rank == 0)
            printf("allreduce bytes=%lld us=%.2f\n", (long long)bytes,
                   1e6 * bench_median(t, reps));
    }
    free(buf);
}

int main(int argc, char **argv)
{
    int threads = 1, steps = 60;
    bool no_overlap = false, allreduce = false;
    int64_t bucket = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--threads"))
            threads = atoi(v), i++;
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(v), i++;
        else if (!strcmp(argv[i], "--bucket-bytes"))
            bucket = atoll(v), i++;
        else if (!strcmp(argv[i], "--no-overlap"))
            no_overlap = true;
        else if (!strcmp(argv[i], "--allreduce"))
            allreduce = true;
        else
            return fprintf(stderr, "dist_step: unknown %s\n", argv[i]), 2;
    }
    if (steps < 1 || steps > MAX_STEPS || threads < 1) return 2;
    ag_dist *d = ag_dist_init(&argc, &argv, NULL);
    if (!d) return fprintf(stderr, "dist_step: %s\n", ag_last_error()), 1;
    if (allreduce) {
        time_allreduce(d);
        ag_dist_finalize(d);
        return 0;
    }
    ag_set_num_threads(threads);
    int rank = ag_dist_rank(d), world = ag_dist_size(d);
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    ag_mlp *mlp = ag_mlp_new(a, 4, (int64_t[]){784, 512, 256, 10}, NULL);
    ag_optimizer *adam = mlp ? ag_adam_new(a, mlp->params, NULL) : NULL;
    ag_ddp *ddp = NULL;
    if (adam && world > 1)
        ddp = ag_ddp_new(a, d, mlp->params, NULL,
                         &(ag_ddp_options){.bucket_bytes = bucket,
                                           .no_overlap = no_overlap});
    int64_t local = BATCH * (rank + 1) / world - BATCH * rank / world;
    ag_rng rng = ag_rng_seed(7 + (uint64_t)rank);
    ag_tensor *x = ag_rand(a, AG_F32, 2, (int64_t[]){local, 784}, 0, 1, &rng);
    int32_t labels[BATCH];
    for (int i = 0; i < BATCH; i++)
        labels[i] = (int32_t)(ag_rng_next(&rng) % 10);
    ag_tensor *y = ag_from_data(a, AG_I32, 1, (int64_t[]){local}, labels);
    if (!adam || !y || (world > 1 && !ddp)) {
        fprintf(stderr, "dist_step: %s\n", ag_last_error());
        ag_dist_finalize(d);
        return 1;
    }
    double t[MAX_STEPS], wait[MAX_STEPS];
    for (int s = 0; s < steps + 5; s++) { /* 5 warm-up steps */
        double t0 = bench_now_us();
        ag_tensor *loss =
            ag_softmax_cross_entropy(step, ag_mlp_forward(step, mlp, x), y);
        int rc = ddp ? ag_ddp_backward(ddp, loss) : ag_backward(loss);
        if (rc || ag_optimizer_step(adam)) {
            fprintf(stderr, "dist_step: %s\n", ag_last_error());
            ag_dist_finalize(d);
            return 1;
        }
        ag_optimizer_clear_grad(adam);
        ag_arena_reset(step);
        if (s >= 5) {
            t[s - 5] = bench_now_us() - t0;
            wait[s - 5] = ddp ? 1e6 * ag_ddp_get_stats(ddp).wait_seconds : 0;
        }
    }
    double step_us = bench_median(t, steps), wait_us = bench_median(wait, steps);
    if (rank == 0)
        printf("ranks=%d threads=%d batch=%d overlap=%s buckets=%d "
               "step_us=%.0f wait_us=%.0f samples_per_s=%.0f\n",
               world, threads, BATCH, no_overlap ? "no" : "yes",
               ddp ? ag_ddp_get_stats(ddp).buckets : 0, step_us, wait_us,
               BATCH / (step_us * 1e-6));
    ag_arena_free(step);
    ag_arena_free(a);
    ag_dist_finalize(d);
    return 0;
}
