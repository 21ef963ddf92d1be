/* common.h: what the C benchmarks share: counting heap allocations (glibc's
 * malloc, calloc and realloc wrapped by name in common.c, so that every
 * allocation of the process, OpenBLAS's threads' too, is counted), parsing
 * the options every benchmark takes, a monotonic clock and the median of
 * samples. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <autograd.h>

#include <stdint.h>

/* The most weight matrices of a benchmarked MLP. */
#define MAX_LAYERS 16

/* The options of every benchmark: the MLP, its batch and dtype, the
 * library's threads and the timed steps. */
typedef struct {
    int64_t batch;
    int64_t sizes[MAX_LAYERS + 1];
    int layers; /* number of weight matrices */
    ag_dtype dtype;
    int threads, steps;
} bench_options;

/* A benchmark's own flags: 0 when it took `flag`, 1 when it does not know
 * it, -1 for a bad value. */
typedef int (*bench_flag_fn)(void *ctx, const char *flag, const char *value);

/* Parses --batch B --sizes 784,1024,1024,10 --dtype f32|f64 --threads N
 * --steps S (defaults: 256, 784-1024-1024-10, f32, 1, `steps`) and hands
 * any other flag to `extra` (may be NULL). Returns 0, or -1 for a bad or
 * unknown flag or value. */
int bench_parse(int argc, char **argv, int steps, bench_options *o,
                bench_flag_fn extra, void *ctx);

/* Heap allocations of this process so far. */
long bench_allocations(void);

/* Parses "784,1024,1024,10" into sizes[] (at most MAX_LAYERS + 1 entries,
 * each >= 1, at least two) and sets *layers to their count less one.
 * Returns 0, or -1 for a bad list. */
int bench_parse_sizes(const char *text, int64_t *sizes, int *layers);

/* Microseconds on the monotonic clock. */
double bench_now_us(void);

/* The median of v[0..n-1], n >= 1 (sorts v). */
double bench_median(double *v, int n);

#endif
