/* dist_support.h: what the tests of libautograd-dist share: the process
 * group every test uses, a small model trained the same way on one process
 * and on many, and the comparison of their parameters. The test programs
 * run under mpirun (tests/meson.build); every rank runs the same tests in
 * the same order, so that their collective calls match. */
#ifndef TESTS_DIST_SUPPORT_H
#define TESTS_DIST_SUPPORT_H

#include <autograd.h>
#include <autograd/dist.h>
#include <check.h>

/* The job's processes, made by dist_main before the tests run. */
extern ag_dist *dist;

/* Initialises the process group with `timeout` seconds, runs suite s
 * (Check must not fork under MPI: CK_FORK=no is set here) and finalises.
 * Returns main's exit status: 0 when every test passed on this rank. */
int dist_main(int *argc, char ***argv, Suite *s, double timeout);

/* A tanh MLP sizes[0] -> ... -> sizes[n-1] in f64 from seed, in arena a. */
ag_mlp *dist_mlp(ag_arena *a, int n, const int64_t *sizes, uint64_t seed);

/* The largest |a - b| over every element of the two sets' tensors, each
 * tensor's divided by its largest |b| (a relative distance, 0 when
 * equal). The sets must match in count and shapes (asserted). */
double dist_max_relative(const ag_params *a, const ag_params *b);

/* Seconds since an arbitrary start (a monotonic clock). */
double dist_seconds(void);

#endif /* TESTS_DIST_SUPPORT_H */
