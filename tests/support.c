/* support.c: the Check runner that every test program's main calls,
 * element access whatever the dtype, and test sizes from the environment. */
#include "support.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
