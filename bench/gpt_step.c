/* gpt_step.c: times the GPT model of examples/gpt/ (f32): one training
 * step (gpt_loss forward, backward, AdamW with PyTorch's defaults) on
 * random tokens; the floor of that step, its matrix products alone
 * through cblas_sgemm on buffers made once (per layer the four Linear
 * products and, per batch and head, q k^T and p v, then lm_head; each
 * product's two backward products; causal attention counted as full
 * T x T products); and generation from a one-token prompt to the block
 * size, greedy, with the KV cache (gpt_cache_push) and without it
 * (gpt_forward over the growing context, no graph). Prints one line of
 * key=value: medians of the timed steps in microseconds, tokens per
 * second, the same medians of the process's CPU time for the step and
 * the floor (steadier than the clock on a shared machine, for one
 * thread), and the heap allocations of a training step and of a cached
 * token after the warm-up (bench/common.c counts every malloc of the
 * process).
 *
 * Usage: gpt_step [--config small|tiny] [--threads N] [--steps S]
 *                 [--train-only 1]   (the training step alone, to profile)
 *   small: vocab 4096, T 256, 4 layers, 4 heads, 256 channels, batch 8
 *   tiny:  vocab 512, T 64, 2 layers, 4 heads, 128 channels, batch 8 */
#define _POSIX_C_SOURCE 200809L
#include "gpt.h"
#include <autograd.h>

#include "common.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    gpt_config c;
    int64_t batch;
} bench_case;

/* Microseconds of the process's CPU time (all its threads): what another
 * program on the same cores inflates least, for one-thread runs. */
static double cpu_now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static double train_step_us(gpt *m, ag_optimizer *opt, ag_arena *step,
                            ag_tensor *ids, ag_tensor *targets, int steps,
                            long *allocs, double *cpu_us)
{
    double *us = malloc(sizeof *us * (size_t)steps),
           *cpu = malloc(sizeof *cpu * (size_t)steps);
    *allocs = 0;
    for (int s = -2; s < steps; s++) { /* two warm-up steps */
        long before = bench_allocations();
        double t0 = bench_now_us(), c0 = cpu_now_us();
        ag_tensor *loss = gpt_loss(m, step, ids, targets);
        if (!loss || ag_backward(loss) || ag_optimizer_step(opt)) {
            fprintf(stderr, "gpt_step: %s\n", ag_last_error());
            exit(1);
        }
        ag_optimizer_clear_grad(opt);
        ag_arena_reset(step);
        if (s >= 0) {
            us[s] = bench_now_us() - t0;
            cpu[s] = cpu_now_us() - c0;
            long n = bench_allocations() - before;
            if (n > *allocs) *allocs = n;
        }
    }
    double med = bench_median(us, steps);
    *cpu_us = bench_median(cpu, steps);
    free(us);
    free(cpu);
    return med;
}

/* C (m,n) = A (m,k) B (k,n), A or B transposed as the flags say. */
static void gemm(bool ta, bool tb, int m, int n, int k, const float *A,
                 const float *B, float *C)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, m, n, k, 1, A, ta ? m : k, B,
                tb ? k : n, 0, C, n);
}

/* One Linear's three products: y = x w^T, dx = dy w, dw = dy^T x. */
static void linear_products(int rows, int in, int out, float *x, float *w,
                            float *y, float *dw)
{
    gemm(false, true, rows, out, in, x, w, y);
    gemm(false, false, rows, in, out, y, w, x);
    gemm(true, false, out, in, rows, y, x, dw);
}

/* The training step's matrix products alone, median microseconds (and
 * of CPU time in *cpu_us). */
static double floor_us(const bench_case *bc, int steps, double *cpu_us)
{
    const int B = (int)bc->batch, T = (int)bc->c.block_size,
              C = (int)bc->c.n_embd, H = (int)bc->c.n_head, D = C / H,
              V = (int)bc->c.vocab_size, L = (int)bc->c.n_layer, BT = B * T;
    const int widest = V > 4 * C ? V : 4 * C;
    float *x = calloc((size_t)BT * widest, sizeof *x),
          *y = calloc((size_t)BT * widest, sizeof *y),
          *w = calloc((size_t)widest * C, sizeof *w),
          *dw = calloc((size_t)widest * C, sizeof *dw),
          *att = calloc((size_t)T * T, sizeof *att),
          *q = calloc((size_t)T * D, sizeof *q),
          *k = calloc((size_t)T * D, sizeof *k);
    double *us = malloc(sizeof *us * (size_t)steps),
           *cpu = malloc(sizeof *cpu * (size_t)steps);
    for (int s = -2; s < steps; s++) {
        double t0 = bench_now_us(), c0 = cpu_now_us();
        for (int l = 0; l < L; l++) {
            linear_products(BT, C, 3 * C, x, w, y, dw); /* c_attn */
            for (int bh = 0; bh < B * H; bh++) {
                gemm(false, true, T, T, D, q, k, att);  /* s = q k^T */
                gemm(false, false, T, D, T, att, k, q); /* o = p v */
                gemm(false, false, T, D, T, att, k, q); /* dq = ds k */
                gemm(true, false, T, D, T, att, q, k);  /* dk = ds^T q */
                gemm(true, false, T, D, T, att, q, k);  /* dv = p^T do */
                gemm(false, true, T, T, D, q, k, att);  /* dp = do v^T */
            }
            linear_products(BT, C, C, x, w, y, dw);     /* c_proj */
            linear_products(BT, C, 4 * C, x, w, y, dw); /* c_fc */
            linear_products(BT, 4 * C, C, x, w, y, dw); /* mlp.c_proj */
        }
        linear_products(BT, C, V, x, w, y, dw); /* lm_head */
        if (s >= 0) {
            us[s] = bench_now_us() - t0;
            cpu[s] = cpu_now_us() - c0;
        }
    }
    double med = bench_median(us, steps);
    *cpu_us = bench_median(cpu, steps);
    free(us), free(cpu), free(x), free(y), free(w), free(dw), free(att),
        free(q), free(k);
    return med;
}

/* Greedy generation from token 0 to the block size; tokens per second.
 * With the cache: gpt_cache_push per token; without: gpt_forward over the
 * whole context per token. *allocs: the heap allocations of the cached
 * tokens after the first. */
static double generate_tps(gpt *m, ag_arena *step, bool cached, long *allocs)
{
    const gpt_config *c = gpt_get_config(m);
    const int64_t n = c->block_size, V = c->vocab_size;
    int32_t *seq = calloc((size_t)n, sizeof *seq);
    ag_arena *ca = ag_arena_new();
    gpt_cache *cache = gpt_cache_new(ca, m, n);
    bool was = ag_set_grad_enabled(false);
    long before = 0;
    double t0 = bench_now_us();
    for (int64_t t = 0; t + 1 < n; t++) {
        if (t == 1) before = bench_allocations();
        const float *logits = NULL;
        ag_tensor *y = NULL;
        if (cached) {
            logits = gpt_cache_push(cache, seq[t]);
        } else {
            ag_tensor *ids =
                ag_from_data(step, AG_I32, 2, (int64_t[]){1, t + 1}, seq);
            y = gpt_forward(m, step, ids);
            logits = y ? (const float *)ag_data(y) + t * V : NULL;
        }
        if (!logits) {
            fprintf(stderr, "gpt_step: %s\n", ag_last_error());
            exit(1);
        }
        int64_t best = 0;
        for (int64_t j = 1; j < V; j++)
            if (logits[j] > logits[best]) best = j;
        seq[t + 1] = (int32_t)best;
        ag_arena_reset(step);
    }
    double s = (bench_now_us() - t0) / 1e6;
    *allocs = bench_allocations() - before;
    ag_set_grad_enabled(was);
    ag_arena_free(ca);
    free(seq);
    return (double)(n - 1) / s;
}

int main(int argc, char **argv)
{
    const bench_case small = {{4096, 256, 4, 4, 256, 0, true}, 8},
                     tiny = {{512, 64, 2, 4, 128, 0, true}, 8};
    const bench_case *bc = &small;
    long threads = 1, steps = 5, train_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--config") && !strcmp(argv[i + 1], "small"))
            bc = &small;
        else if (!strcmp(argv[i], "--config") && !strcmp(argv[i + 1], "tiny"))
            bc = &tiny;
        else if (!strcmp(argv[i], "--threads") && atol(argv[i + 1]) > 0)
            threads = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps") && atol(argv[i + 1]) > 0)
            steps = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--train-only"))
            train_only = atol(argv[i + 1]);
        else {
            fprintf(stderr, "usage: gpt_step [--config small|tiny] "
                            "[--threads N] [--steps S]\n");
            return 2;
        }
    }
    ag_set_num_threads((int)threads);
    ag_arena *a = ag_arena_new(), *step = ag_arena_new();
    gpt *m = gpt_new(a, AG_F32, &bc->c, 1);
    ag_params *params = m ? ag_module_parameters(gpt_module(m)) : NULL;
    ag_optimizer *opt = params ? ag_adamw_new(a, params, NULL) : NULL;
    const int64_t shape[2] = {bc->batch, bc->c.block_size};
    ag_tensor *ids = ag_zeros(a, AG_I32, 2, shape),
              *targets = ag_zeros(a, AG_I32, 2, shape);
    if (!opt || !ids || !targets) {
        fprintf(stderr, "gpt_step: %s\n", ag_last_error());
        return 1;
    }
    ag_rng rng = ag_rng_seed(2);
    for (int64_t i = 0; i < ag_numel(ids); i++) {
        ((int32_t *)ag_data(ids))[i] =
            (int32_t)(ag_rng_next(&rng) % (uint64_t)bc->c.vocab_size);
        ((int32_t *)ag_data(targets))[i] =
            (int32_t)(ag_rng_next(&rng) % (uint64_t)bc->c.vocab_size);
    }
    long step_allocs, cached_allocs, plain_allocs;
    double step_cpu, floor_cpu;
    double step_us = train_step_us(m, opt, step, ids, targets, (int)steps,
                                   &step_allocs, &step_cpu);
    if (train_only) {
        printf("step_us=%.0f allocs_per_step=%ld threads=%ld\n", step_us,
               step_allocs, threads);
        ag_arena_free(step);
        ag_arena_free(a);
        return 0;
    }
    ag_module_set_training(gpt_module(m), false);
    double cached = generate_tps(m, step, true, &cached_allocs);
    double plain = generate_tps(m, step, false, &plain_allocs);
    /* the floor last, on OpenBLAS's own threads (ag_set_num_threads left
     * it one) */
    openblas_set_num_threads((int)threads);
    double floor = floor_us(bc, (int)steps, &floor_cpu);
    printf("step_us=%.0f floor_us=%.0f step_cpu_us=%.0f floor_cpu_us=%.0f "
           "allocs_per_step=%ld cached_tps=%.0f uncached_tps=%.0f "
           "allocs_cached_tokens=%ld threads=%ld\n",
           step_us, floor, step_cpu, floor_cpu, step_allocs, cached, plain,
           cached_allocs, threads);
    ag_arena_free(step);
    ag_arena_free(a);
    return 0;
}
