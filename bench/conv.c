/* conv.c: times ag_conv2d's forward and its backward (dx, dW and db) on
 * one layer, by default (128,32,14,14) x (64,32,3,3) with padding 1, and,
 * in the same process, the floor: the same BLAS products alone on columns
 * made beforehand (forward W @ cols per image, backward g @ cols^T and
 * W^T @ g per image), with OpenBLAS on as many threads as the library.
 * Prints medians over the steps, in microseconds.
 *
 * Usage: conv [--batch N] [--channels C] [--size H] [--out O] [--kernel k]
 *             [--pad p] [--dtype f32|f64] [--threads T] [--steps S] */
#define _POSIX_C_SOURCE 200809L
#include <autograd.h>

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

typedef struct {
    int64_t batch, channels, size, out, kernel, pad;
    ag_dtype dtype;
    int threads, steps;
} options;

static int parse(int argc, char **argv, options *o)
{
    *o = (options){128, 32, 14, 64, 3, 1, AG_F32, 1, 20};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--batch"))
            o->batch = atoll(v);
        else if (!strcmp(f, "--channels"))
            o->channels = atoll(v);
        else if (!strcmp(f, "--size"))
            o->size = atoll(v);
        else if (!strcmp(f, "--out"))
            o->out = atoll(v);
        else if (!strcmp(f, "--kernel"))
            o->kernel = atoll(v);
        else if (!strcmp(f, "--pad"))
            o->pad = atoll(v);
        else if (!strcmp(f, "--dtype") &&
                 (!strcmp(v, "f32") || !strcmp(v, "f64")))
            o->dtype = strcmp(v, "f32") ? AG_F64 : AG_F32;
        else if (!strcmp(f, "--threads"))
            o->threads = atoi(v);
        else if (!strcmp(f, "--steps"))
            o->steps = atoi(v);
        else
            return -1;
    }
    return argc % 2 == 1 && o->batch > 0 && o->channels > 0 && o->size > 0 &&
                   o->out > 0 && o->kernel > 0 && o->pad >= 0 &&
                   o->threads > 0 && o->steps > 0
               ? 0
               : -1;
}

/* C = op(A) op(B) + beta C, row-major, in the bench's dtype. */
static void gemm(ag_dtype dt, bool ta, bool tb, int m, int n, int k,
                 const void *A, const void *B, double beta, void *C)
{
    int lda = ta ? m : k, ldb = tb ? k : n;
    enum CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE b = tb ? CblasTrans : CblasNoTrans;
    if (dt == AG_F32)
        cblas_sgemm(CblasRowMajor, a, b, m, n, k, 1, A, lda, B, ldb,
                    (float)beta, C, n);
    else
        cblas_dgemm(CblasRowMajor, a, b, m, n, k, 1, A, lda, B, ldb, beta, C,
                    n);
}

/* n values of dtype dt at p, 0.5 each. */
static void fill(ag_dtype dt, void *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (dt == AG_F32)
            ((float *)p)[i] = 0.5f;
        else
            ((double *)p)[i] = 0.5;
}

int main(int argc, char **argv)
{
    options o;
    if (parse(argc, argv, &o)) {
        fprintf(stderr, "usage: conv [--batch N] [--channels C] [--size H] "
                        "[--out O] [--kernel k] [--pad p] [--dtype f32|f64] "
                        "[--threads T] [--steps S]\n");
        return 2;
    }
    ag_set_num_threads(o.threads);
    openblas_set_num_threads(o.threads); /* for the floor */
    ag_arena *params = ag_arena_new(), *step = ag_arena_new();
    ag_rng rng = ag_rng_seed(1);
    int64_t N = o.batch, C = o.channels, H = o.size, O = o.out, k = o.kernel;
    ag_tensor *x =
        ag_randn(params, o.dtype, 4, (int64_t[]){N, C, H, H}, 0, 1, &rng);
    ag_tensor *w =
        ag_randn(params, o.dtype, 4, (int64_t[]){O, C, k, k}, 0, 0.1, &rng);
    ag_tensor *b = ag_zeros(params, o.dtype, 1, &O);
    if (!x || !w || !b) {
        fprintf(stderr, "conv: %s\n", ag_last_error());
        return 1;
    }
    ag_requires_grad(x, true); /* a layer inside a network: dx too */
    ag_requires_grad(w, true);
    ag_requires_grad(b, true);
    ag_conv_options co = {{1, 1}, {o.pad, o.pad}, {1, 1}, 1};
    /* Ours and the floor alternate step by step, so that the machine's
     * drift (it is shared) meets both alike. The floor runs the products
     * alone on columns and gradients made once (their values do not
     * matter to BLAS). */
    int64_t K = C * k * k, OH = (H + 2 * o.pad - k) + 1, L = OH * OH;
    size_t e = o.dtype == AG_F32 ? 4 : 8;
    char *cols = calloc((size_t)(N * K * L), e);
    char *g = calloc((size_t)(N * O * L), e);
    char *y = calloc((size_t)(N * O * L), e), *dw = calloc((size_t)(O * K), e);
    char *dcols = calloc((size_t)(K * L), e);
    /* written once, so that the floor reads real memory (pages calloc
     * leaves untouched all map one zero page, which stays in cache) */
    fill(o.dtype, cols, N * K * L);
    fill(o.dtype, g, N * O * L);
    double *fwd = malloc(sizeof(double) * (size_t)o.steps * 4);
    double *bwd = fwd + o.steps, *ffwd = bwd + o.steps, *fbwd = ffwd + o.steps;
    const void *wd = ag_data(w);
    for (int s = -2; s < o.steps; s++) { /* two warm-up steps */
        double t0 = bench_now_us();
        ag_tensor *out = ag_conv2d(step, x, w, b, &co);
        double t1 = bench_now_us();
        ag_tensor *loss = ag_sum(step, out, AG_ALL, false);
        double t2 = bench_now_us();
        if (!loss || ag_backward(loss)) {
            fprintf(stderr, "conv: %s\n", ag_last_error());
            return 1;
        }
        double t3 = bench_now_us();
        ag_zero_grad(x);
        ag_zero_grad(w);
        ag_zero_grad(b);
        ag_arena_reset(step);
        double t4 = bench_now_us();
        for (int64_t n = 0; n < N; n++) /* y[n] = W @ cols[n] */
            gemm(o.dtype, false, false, (int)O, (int)L, (int)K, wd,
                 cols + n * K * L * e, 0, y + n * O * L * e);
        double t5 = bench_now_us();
        for (int64_t n = 0; n < N; n++) { /* dW += g[n] cols[n]^T; W^T g[n] */
            gemm(o.dtype, false, true, (int)O, (int)K, (int)L,
                 g + n * O * L * e, cols + n * K * L * e, n ? 1 : 0, dw);
            gemm(o.dtype, true, false, (int)K, (int)L, (int)O, wd,
                 g + n * O * L * e, 0, dcols);
        }
        double t6 = bench_now_us();
        if (s >= 0) {
            fwd[s] = t1 - t0, bwd[s] = t3 - t2;
            ffwd[s] = t5 - t4, fbwd[s] = t6 - t5;
        }
    }
    printf("conv2d=(%lld,%lld,%lld,%lld)x(%lld,%lld,%lld,%lld) pad=%lld "
           "dtype=%s threads=%d fwd_us=%.1f bwd_us=%.1f floor_fwd_us=%.1f "
           "floor_bwd_us=%.1f\n",
           (long long)N, (long long)C, (long long)H, (long long)H, (long long)O,
           (long long)C, (long long)k, (long long)k, (long long)o.pad,
           ag_dtype_name(o.dtype), o.threads, bench_median(fwd, o.steps),
           bench_median(bwd, o.steps), bench_median(ffwd, o.steps),
           bench_median(fbwd, o.steps));
    free(fwd);
    free(cols), free(g), free(y), free(dw), free(dcols);
    ag_arena_free(step);
    ag_arena_free(params);
    return 0;
}
