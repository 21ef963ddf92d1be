/* support.c: the Check runner that every test program's main calls,
 * element access whatever the dtype, PyTorch fixture values as tensors and
 * their comparison, test sizes from the environment,
 * probes of the floating-point environment, and a temporary folder per
 * test with file helpers. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fenv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool flush_takes_effect(void)
{
    int was = ag_set_flush_denormal(true);
    if (was < 0) {
        ag_clear_error();
        return false;
    }
    volatile float tiny = 1e-39f, one = 1.0f;
    volatile float product = tiny * one; /* stored before the mode changes */
    ag_set_flush_denormal(was);
    return product == 0;
}

bool fp_flags_tracked(void)
{
    int raised = fetestexcept(FE_ALL_EXCEPT);
    feclearexcept(FE_UNDERFLOW);
    feraiseexcept(FE_UNDERFLOW);
    bool seen = fetestexcept(FE_UNDERFLOW) != 0;
    if (!(raised & FE_UNDERFLOW)) feclearexcept(FE_UNDERFLOW);
    return seen;
}

double tensor_at(const ag_tensor *t, int64_t i)
{
    if (!t) ck_abort_msg("tensor_at: the tensor is NULL");
    const void *data = ag_data((ag_tensor *)t);
    switch (ag_type(t)) {
    case AG_F32:
        return ((const float *)data)[i];
    case AG_F64:
        return ((const double *)data)[i];
    case AG_I32:
        return ((const int32_t *)data)[i];
    }
    return NAN;
}

void tensor_set(ag_tensor *t, int64_t i, double v)
{
    if (ag_type(t) == AG_F32)
        ((float *)ag_data(t))[i] = (float)v;
    else
        ((double *)ag_data(t))[i] = v;
}

ag_tensor *fixture_tensor(ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, const double *values, bool grad)
{
    ag_tensor *t = ag_zeros(a, dt, ndim, shape);
    ck_assert_msg(t != NULL, "%s", ag_last_error());
    for (int64_t i = 0; i < ag_numel(t); i++) tensor_set(t, i, values[i]);
    if (grad) ag_requires_grad(t, true);
    return t;
}

void expect_fixture_close(const char *label, const char *what,
                          const ag_tensor *t, const double *want, double tol)
{
    ck_assert_msg(t != NULL, "%s: no %s", label, what);
    for (int64_t i = 0; i < ag_numel(t); i++) {
        double got = tensor_at(t, i);
        ck_assert_msg(fabs(got - want[i]) <= tol * fmax(1, fabs(want[i])),
                      "%s (%s): %s element %lld is %.17g, PyTorch %.17g", label,
                      ag_dtype_name(ag_type(t)), what, (long long)i, got,
                      want[i]);
    }
}

ag_tensor *cotangent_sum(ag_arena *a, ag_tensor *t, double o)
{
    ag_tensor *cot = ag_zeros(a, ag_type(t), ag_ndim(t), ag_shape(t));
    ck_assert_ptr_nonnull(cot);
    for (int64_t j = 0; j < ag_numel(cot); j++)
        tensor_set(cot, j, cos(0.7 * (double)j + 0.2 + o));
    return ag_sum(a, ag_mul(a, t, cot), AG_ALL, false);
}

static char dir[64];

const char *test_dir_make(const char *prefix)
{
    snprintf(dir, sizeof dir, "/tmp/%s.XXXXXX", prefix);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

void test_dir_remove(void)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p)) rmdir(p);
        }
    closedir(d);
    rmdir(dir);
}

const char *path_of(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

int folder_entries(char *one, size_t size)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            if (one) snprintf(one, size, "%s", e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

void expect_only(const char *name)
{
    char one[256] = "";
    int n = folder_entries(one, sizeof one);
    ck_assert_msg(n == 1 && strcmp(one, name) == 0,
                  "folder holds %d entries (one is \"%s\"), want only \"%s\"",
                  n, one, name);
}

void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    unsigned char *buf = NULL;
    size_t size = 0, cap = 0, got;
    do {
        if (size == cap) {
            cap = cap ? 2 * cap : 4096;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        got = fread(buf + size, 1, cap - size, f);
        size += got;
    } while (got);
    fclose(f);
    *n = size;
    return buf;
}

int64_t test_env(const char *name, int64_t fallback, int64_t min, int64_t max)
{
    const char *text = getenv(name);
    if (!text || !*text) return fallback;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < min || v > max) {
        fprintf(stderr, "%s=%s: need an integer in [%lld, %lld]\n", name, text,
                (long long)min, (long long)max);
        exit(2);
    }
    return v;
}

int64_t test_size(const char *name, int64_t fallback)
{
    return test_env(name, fallback, 1, fallback);
}

int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}

void expect_same_bits(ag_tensor *const *got, ag_tensor **first, int n,
                      int threads)
{
    for (int k = 0; k < n; k++) {
        if (threads == 1) {
            first[k] = got[k];
            continue;
        }
        ck_assert_int_eq(ag_numel(got[k]), ag_numel(first[k]));
        ck_assert_msg(!memcmp(ag_data(got[k]), ag_data(first[k]),
                              (size_t)ag_numel(got[k]) * sizeof(double)),
                      "tensor %d differs on %d threads", k, threads);
    }
}
