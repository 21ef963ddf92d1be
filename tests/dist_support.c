/* dist_support.c: the process group of the dist tests, their model and
 * the comparison of parameters (dist_support.h). */
#define _POSIX_C_SOURCE 200809L
#include "dist_support.h"

#include "support.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

ag_dist *dist;

int dist_main(int *argc, char ***argv, Suite *s, double timeout)
{
    setenv("CK_FORK", "no", 1);
    dist = ag_dist_init(argc, argv, &(ag_dist_options){.timeout = timeout});
    if (!dist) {
        fprintf(stderr, "%s\n", ag_last_error());
        return 1;
    }
    int status = run_suite(s);
    ag_dist_finalize(dist);
    return status;
}

ag_mlp *dist_mlp(ag_arena *a, int n, const int64_t *sizes, uint64_t seed)
{
    ag_mlp_options o = {
        .dtype = AG_F64, .activation = AG_ACT_TANH, .seed = seed};
    ag_mlp *m = ag_mlp_new(a, n, sizes, &o);
    ck_assert_msg(m, "%s", ag_last_error());
    return m;
}

double dist_max_relative(const ag_params *a, const ag_params *b)
{
    ck_assert_int_eq(ag_params_count(a), ag_params_count(b));
    double worst = 0;
    for (int i = 0; i < ag_params_count(a); i++) {
        ag_tensor *x = ag_params_tensor(a, i), *y = ag_params_tensor(b, i);
        ck_assert_int_eq(ag_numel(x), ag_numel(y));
        double scale = 0, diff = 0;
        for (int64_t j = 0; j < ag_numel(y); j++) {
            scale = fmax(scale, fabs(tensor_at(y, j)));
            diff = fmax(diff, fabs(tensor_at(x, j) - tensor_at(y, j)));
        }
        if (diff > 0) worst = fmax(worst, scale > 0 ? diff / scale : INFINITY);
    }
    return worst;
}

double dist_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
