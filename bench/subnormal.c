/* subnormal.c: whether this CPU pays for subnormal floats, and which of
 * the library's kernels do. Each kernel whose inputs can decay into the
 * subnormal range (below 1.18e-38 in f32) runs on inputs of ordinary size,
 * on subnormal inputs, and on the same subnormal inputs with
 * ag_set_flush_denormal(true); it prints the median ns per element of each
 * and the ratios. A plain C loop of Adam's update run in the caller's mode
 * (flush off) shows what the optimizer paid before it flushed: 4x the
 * normal cost on an AMD Zen 4, more on Intel CPUs.
 *
 * Usage: OPENBLAS_NUM_THREADS=1 subnormal [--elements N] [--rounds R] */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROUNDS 101

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* What a kernel runs on: n f32 values x (its input), g (an upstream
 * gradient or a second operand) and the arenas. */
typedef struct {
    int64_t n;
    ag_arena *keep, *scratch;
    ag_tensor *x, *g, *w, *p;
    ag_optimizer *opt;
    float *m, *v, *pv, *gv; /* the plain C Adam's state */
} work;

typedef void kernel_fn(work *k);

/* The kernels: each one call of a public function (or the plain loop). */

static void run_exp(work *k)
{
    ag_exp(k->scratch, k->x);
}

static void run_softmax(work *k)
{
    ag_softmax(k->scratch, k->x, 1);
}

static void run_sigmoid(work *k)
{
    ag_sigmoid(k->scratch, k->x);
}

static void run_tanh(work *k)
{
    ag_tanh(k->scratch, k->x);
}

static void run_mul(work *k)
{
    ag_mul(k->scratch, k->x, k->g);
}

/* A sigmoid's backward given the upstream gradient g: loss = sum(s(x) g). */
static void run_sigmoid_backward(work *k)
{
    ag_tensor *x = ag_detach(k->scratch, k->x);
    ag_requires_grad(x, true);
    ag_backward(ag_sum(k->scratch,
                       ag_mul(k->scratch, ag_sigmoid(k->scratch, x), k->g),
                       AG_ALL, false));
}

/* x (rows, 256) @ w (256, 256): a product whose input has decayed. */
static void run_matmul(work *k)
{
    ag_matmul(k->scratch, k->x, k->w);
}

static void run_optimizer(work *k)
{
    ag_optimizer_step(k->opt);
}

/* Adam's update as the library wrote it before it flushed, in plain C,
 * run in the caller's mode (flush off unless asked). */
static void run_plain_adam(work *k)
{
    const float b1 = 0.9f, b2 = 0.999f, c1 = 0.1f, c2 = 0.001f;
    const float step = 1e-3f, bc2 = 0.5f, eps = 1e-8f;
    float *restrict p = k->pv, *restrict m = k->m, *restrict v = k->v;
    const float *restrict g = k->gv;
    for (int64_t i = 0; i < k->n; i++) {
        m[i] = b1 * m[i] + c1 * g[i];
        v[i] = b2 * v[i] + c2 * g[i] * g[i];
        p[i] -= step * (m[i] / (sqrtf(v[i]) / bc2 + eps));
    }
}

/* Fills t with value. */
static void fill(ag_tensor *t, float value)
{
    float *d = ag_data(t);
    for (int64_t i = 0; i < ag_numel(t); i++) d[i] = value;
}

/* The inputs for case c (0 normal, 1 subnormal): every kernel reads x and
 * g, and the optimizers' state decays from there. x holds softmax and
 * sigmoid tails (-100: exp gives 3.7e-44) or tiny values; g, m and the
 * gradients 1e-40 (subnormal) or 1e-3. */
static void prepare(work *k, const char *name, int c)
{
    bool sub = c == 1;
    bool tails = !strcmp(name, "exp") || !strcmp(name, "softmax") ||
                 !strcmp(name, "sigmoid");
    fill(k->x, tails ? (sub ? -100.0f : -1.0f) : (sub ? 1e-39f : 0.5f));
    if (tails && !strcmp(name, "softmax")) { /* one large logit a row */
        float *x = ag_data(k->x);
        for (int64_t i = 0; i < k->n; i += 256) x[i] = 0;
    }
    fill(k->g, sub ? 1e-40f : 1e-3f);
    for (int64_t i = 0; i < k->n; i++) {
        k->m[i] = sub ? 1e-39f : 1e-4f;
        k->v[i] = sub ? 1e-39f : 1e-6f;
        k->gv[i] = sub ? 1e-40f : 1e-3f;
        k->pv[i] = 0.5f;
    }
    ag_tensor *grad = ag_grad(k->p);
    if (grad) fill(grad, sub ? 1e-40f : 1e-3f);
}

/* The median ns per element of `rounds` calls of fn on case c. */
static double time_kernel(work *k, const char *name, kernel_fn *fn, int c,
                          int rounds)
{
    double t[MAX_ROUNDS];
    prepare(k, name, c);
    int flush = c == 2;
    if (flush) ag_set_flush_denormal(true);
    fn(k); /* warm up */
    ag_arena_reset(k->scratch);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        fn(k);
        t[r] = (now_ns() - t0) / (double)k->n;
        ag_arena_reset(k->scratch);
    }
    if (flush) ag_set_flush_denormal(false);
    qsort(t, (size_t)rounds, sizeof t[0], compare);
    return t[rounds / 2];
}

int main(int argc, char **argv)
{
    int64_t n = 1 << 18;
    int rounds = 21;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--elements"))
            n = atoll(argv[i + 1]) / 256 * 256;
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
    }
    if (n < 256 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: subnormal [--elements N >= 256] [--rounds R "
                        "<= 101]\n");
        return 2;
    }
    work k = {.n = n, .keep = ag_arena_new(), .scratch = ag_arena_new()};
    const int64_t shape[2] = {n / 256, 256}, wshape[2] = {256, 256};
    k.x = ag_zeros(k.keep, AG_F32, 2, shape);
    k.g = ag_zeros(k.keep, AG_F32, 2, shape);
    k.w = ag_full(k.keep, AG_F32, 2, wshape, 0.01);
    k.p = ag_full(k.keep, AG_F32, 2, shape, 0.5);
    float *buffers = malloc(4 * (size_t)n * sizeof *buffers);
    if (!k.x || !k.g || !k.w || !k.p || !buffers) {
        fprintf(stderr, "subnormal: %s\n", ag_last_error());
        return 1;
    }
    k.m = buffers, k.v = buffers + n, k.pv = buffers + 2 * n;
    k.gv = buffers + 3 * n;
    ag_requires_grad(k.p, true);
    ag_backward(ag_sum(k.scratch, k.p, AG_ALL, false)); /* a gradient */
    ag_params *set = ag_params_new(k.keep);
    ag_params_add(set, "p", k.p);
    ag_sgd_options momentum = {.lr = 1e-3, .momentum = 0.9};
    ag_optimizer *adam = ag_adam_new(k.keep, set, NULL);
    ag_optimizer *sgd = ag_sgd_new(k.keep, set, &momentum);
    if (!adam || !sgd) {
        fprintf(stderr, "subnormal: %s\n", ag_last_error());
        return 1;
    }
    struct {
        const char *name;
        kernel_fn *fn;
        ag_optimizer *opt;
    } kernels[] = {
        {"plain C Adam (unflushed)", run_plain_adam, NULL},
        {"ag_optimizer_step adam", run_optimizer, adam},
        {"ag_optimizer_step sgd momentum", run_optimizer, sgd},
        {"exp", run_exp, NULL},
        {"softmax", run_softmax, NULL},
        {"sigmoid", run_sigmoid, NULL},
        {"tanh", run_tanh, NULL},
        {"mul", run_mul, NULL},
        {"sigmoid backward", run_sigmoid_backward, NULL},
        {"matmul (n,256)@(256,256)", run_matmul, NULL},
    };
    printf("%lld f32 elements, median of %d rounds, ns per element\n\n",
           (long long)n, rounds);
    printf("| kernel | normal | subnormal | subnormal, flush on | "
           "subnormal/normal | flushed/normal |\n|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
        double t[3];
        k.opt = kernels[i].opt;
        for (int c = 0; c < 3; c++)
            t[c] = time_kernel(&k, kernels[i].name, kernels[i].fn, c, rounds);
        printf("| %s | %.3f | %.3f | %.3f | %.2f | %.2f |\n", kernels[i].name,
               t[0], t[1], t[2], t[1] / t[0], t[2] / t[0]);
        fflush(stdout);
    }
    free(buffers);
    ag_arena_free(k.scratch);
    ag_arena_free(k.keep);
    return 0;
}
