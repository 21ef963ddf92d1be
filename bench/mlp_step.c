/* mlp_step.c: times one full training step of an MLP (ag_mlp forward with
 * bias and ReLU, softmax cross-entropy, backward, ag_sgd update, clear_grad,
 * arena reset) and, in the same process, the floor: the same BLAS products
 * alone (forward X W^T for every layer, backward dY^T X for every layer and
 * dY W for all but the first; W stored (out, in) as nn.Linear does), with
 * OpenBLAS's own threads, as many as the library's. Prints medians over the
 * steps and heap allocations per step of the library's step (OpenBLAS's
 * threaded products allocate on every call; the library splits products
 * over its own threads and runs OpenBLAS on one).
 *
 * Usage: mlp_step [--batch B] [--sizes 784,1024,1024,10] [--dtype f32|f64]
 *                 [--threads N] [--steps S] */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timing.h"

#define MAX_LAYERS 16

/* ---- counting heap allocations: glibc's malloc wrapped by name ---- */

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static _Atomic long allocations; /* OpenBLAS threads allocate too */

void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);

void *malloc(size_t n)
{
    allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    allocations++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    allocations++;
    return __libc_realloc(p, n);
}

/* ---- options ---- */

typedef struct {
    int64_t batch;
    int64_t sizes[MAX_LAYERS + 1];
    int layers; /* number of weight matrices */
    ag_dtype dtype;
    int threads, steps;
} options;

static int parse_sizes(const char *text, options *o)
{
    int n = 0;
    char *end;
    for (const char *p = text; *p; p = end + (*end == ',')) {
        if (n > MAX_LAYERS) return -1;
        o->sizes[n++] = strtoll(p, &end, 10);
        if (end == p || o->sizes[n - 1] < 1) return -1;
    }
    o->layers = n - 1;
    return n >= 2 ? 0 : -1;
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.batch = 256, .dtype = AG_F32, .threads = 1, .steps = 50};
    parse_sizes("784,1024,1024,10", o);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *flag = argv[i], *value = argv[i + 1];
        if (!strcmp(flag, "--batch"))
            o->batch = atoll(value);
        else if (!strcmp(flag, "--sizes")) {
            if (parse_sizes(value, o)) return -1;
        } else if (!strcmp(flag, "--dtype")) {
            if (strcmp(value, "f32") && strcmp(value, "f64")) return -1;
            o->dtype = strcmp(value, "f32") ? AG_F64 : AG_F32;
        } else if (!strcmp(flag, "--threads"))
            o->threads = atoi(value);
        else if (!strcmp(flag, "--steps"))
            o->steps = atoi(value);
        else
            return -1;
    }
    return argc % 2 == 1 && o->batch > 0 && o->threads > 0 && o->steps > 0 ? 0
                                                                           : -1;
}

/* ---- the library's step ---- */

/* The model as a user writes it: an ag_mlp (ag_linear layers with ReLU
 * between them) trained by ag_sgd. */
typedef struct {
    ag_mlp *mlp;
    ag_optimizer *sgd;
} model;

static int train_step(ag_arena *step, const options *o, model *m,
                      const void *inputs, const int32_t *labels)
{
    ag_tensor *x = ag_from_data(step, o->dtype, 2,
                                (int64_t[]){o->batch, o->sizes[0]}, inputs);
    ag_tensor *y = ag_from_data(step, AG_I32, 1, (int64_t[]){o->batch}, labels);
    ag_tensor *loss =
        ag_softmax_cross_entropy(step, ag_mlp_forward(step, m->mlp, x), y);
    if (!loss || ag_backward(loss) || ag_optimizer_step(m->sgd)) return -1;
    ag_optimizer_clear_grad(m->sgd);
    ag_arena_reset(step);
    return 0;
}

/* ---- the floor: the same products through BLAS alone ---- */

/* C = op(A) op(B) for row-major matrices, C (m,n); beta 0: C is written,
 * not read. */
static void gemm(ag_dtype dt, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                 int m, int n, int k, const void *A, const void *B, void *C)
{
    int lda = ta == CblasTrans ? m : k, ldb = tb == CblasTrans ? k : n;
    if (dt == AG_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, A, lda, B, ldb, 0.0f,
                    C, n);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, A, lda, B, ldb, 0.0, C,
                    n);
}

/* acts[l] is layer l's input (batch, sizes[l]), grads[l] its gradient;
 * weights[l] is (sizes[l+1], sizes[l]) as nn.Linear stores it, so the
 * products are Y = X W^T, dW = dY^T X and dX = dY W. */
static void floor_step(const options *o, void **acts, void **grads,
                       void **weights, void **wgrads)
{
    int B = (int)o->batch;
    for (int l = 0; l < o->layers; l++) {
        int in = (int)o->sizes[l], out = (int)o->sizes[l + 1];
        gemm(o->dtype, CblasNoTrans, CblasTrans, B, out, in, acts[l],
             weights[l], acts[l + 1]);
    }
    for (int l = o->layers - 1; l >= 0; l--) {
        int in = (int)o->sizes[l], out = (int)o->sizes[l + 1];
        gemm(o->dtype, CblasTrans, CblasNoTrans, out, in, B, grads[l + 1],
             acts[l], wgrads[l]);
        if (l > 0)
            gemm(o->dtype, CblasNoTrans, CblasNoTrans, B, in, out, grads[l + 1],
                 weights[l], grads[l]);
    }
}

int main(int argc, char **argv)
{
    options o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr,
                "usage: %s [--batch B] [--sizes 784,1024,1024,10] "
                "[--dtype f32|f64] [--threads N] [--steps S]\n",
                argv[0]);
        return 2;
    }
    ag_set_num_threads(o.threads);
    ag_arena *params = ag_arena_new(), *step = ag_arena_new(),
             *scratch = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    ag_mlp *mlp = ag_mlp_new(params, o.layers + 1, o.sizes,
                             &(ag_mlp_options){.dtype = o.dtype, .seed = 1});
    ag_sgd_options sgd = ag_sgd_defaults(0.01);
    model m = {mlp, mlp ? ag_sgd_new(params, mlp->params, &sgd) : NULL};
    void *acts[MAX_LAYERS + 1], *grads[MAX_LAYERS + 1];
    void *weights[MAX_LAYERS], *wgrads[MAX_LAYERS];
    for (int l = 0; m.sgd && l <= o.layers; l++) {
        int64_t shape[2] = {o.batch, o.sizes[l]};
        acts[l] = ag_data(ag_rand(scratch, o.dtype, 2, shape, -1, 1, &rng));
        grads[l] = ag_data(ag_rand(scratch, o.dtype, 2, shape, -1, 1, &rng));
        if (l == o.layers) break;
        int64_t wshape[2] = {o.sizes[l + 1], o.sizes[l]};
        weights[l] = ag_data(mlp->layers[l]->weight);
        wgrads[l] = ag_data(ag_zeros(scratch, o.dtype, 2, wshape));
    }
    int32_t *labels = malloc((size_t)o.batch * sizeof *labels);
    for (int64_t i = 0; labels && i < o.batch; i++)
        labels[i] = (int32_t)(ag_rng_next(&rng) % (uint64_t)o.sizes[o.layers]);
    double *ours = malloc((size_t)o.steps * sizeof *ours);
    double *floor_us = malloc((size_t)o.steps * sizeof *floor_us);
    if (!m.sgd || !labels || !ours || !floor_us || !wgrads[o.layers - 1]) {
        fprintf(stderr, "mlp_step: setup failed: %s\n", ag_last_error());
        return 1;
    }

    for (int warm = 0; warm < 3; warm++) /* grow the arenas, warm BLAS */
        if (train_step(step, &o, &m, acts[0], labels)) {
            fprintf(stderr, "mlp_step: %s\n", ag_last_error());
            return 1;
        }
    /* Ours first, then the floor: OpenBLAS's threads keep spinning for a
     * while after its threaded calls and would take a core from ours. */
    long allocs_before = allocations;
    for (int s = 0; s < o.steps; s++) {
        double t0 = now_us();
        train_step(step, &o, &m, acts[0], labels);
        ours[s] = now_us() - t0;
    }
    long allocs = allocations - allocs_before;
    openblas_set_num_threads(o.threads); /* the floor: OpenBLAS's threads */
    floor_step(&o, acts, grads, weights, wgrads);
    for (int s = 0; s < o.steps; s++) {
        double t0 = now_us();
        floor_step(&o, acts, grads, weights, wgrads);
        floor_us[s] = now_us() - t0;
    }
    double step_us = median(ours, o.steps), base_us = median(floor_us, o.steps);
    printf("batch=%lld layers=%d dtype=%s threads=%d steps=%d step_us=%.1f "
           "samples_per_s=%.0f floor_us=%.1f ratio=%.3f allocs_per_step=%.2f\n",
           (long long)o.batch, o.layers, ag_dtype_name(o.dtype), o.threads,
           o.steps, step_us, (double)o.batch * 1e6 / step_us, base_us,
           step_us / base_us, (double)allocs / o.steps);
    free(labels);
    free(ours);
    free(floor_us);
    ag_arena_free(params);
    ag_arena_free(step);
    ag_arena_free(scratch);
    return 0;
}
