/* common.c: the helpers of common.h: the allocation counter (glibc's malloc
 * wrapped by name), the list of layer sizes, the clock and the median. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

long bench_allocations(void)
{
    return allocations;
}

/* ---- options, timing ---- */

int bench_parse_sizes(const char *text, int64_t *sizes, int *layers)
{
    int n = 0;
    char *end;
    for (const char *p = text; *p; p = end + (*end == ',')) {
        if (n > MAX_LAYERS) return -1;
        sizes[n++] = strtoll(p, &end, 10);
        if (end == p || sizes[n - 1] < 1) return -1;
    }
    *layers = n - 1;
    return n >= 2 ? 0 : -1;
}

int bench_parse(int argc, char **argv, int steps, bench_options *o,
                bench_flag_fn extra, void *ctx)
{
    *o = (bench_options){
        .batch = 256, .dtype = AG_F32, .threads = 1, .steps = steps};
    bench_parse_sizes("784,1024,1024,10", o->sizes, &o->layers);
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *flag = argv[i], *value = argv[i + 1];
        if (!strcmp(flag, "--batch"))
            o->batch = atoll(value);
        else if (!strcmp(flag, "--sizes")) {
            if (bench_parse_sizes(value, o->sizes, &o->layers)) return -1;
        } else if (!strcmp(flag, "--dtype")) {
            if (strcmp(value, "f32") && strcmp(value, "f64")) return -1;
            o->dtype = strcmp(value, "f32") ? AG_F64 : AG_F32;
        } else if (!strcmp(flag, "--threads"))
            o->threads = atoi(value);
        else if (!strcmp(flag, "--steps"))
            o->steps = atoi(value);
        else if (!extra || extra(ctx, flag, value))
            return -1;
    }
    return argc % 2 == 1 && o->batch > 0 && o->threads > 0 && o->steps > 0 ? 0
                                                                           : -1;
}

double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
