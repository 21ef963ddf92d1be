/* support.h: what every test program shares besides the gradient checker:
 * the suite runner and element access whatever the dtype. */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include <autograd.h>
#include <check.h>

/* Element i of t (not NULL) as a double, whatever its dtype. */
double tensor_at(const ag_tensor *t, int64_t i);

/* Sets element i of the float tensor t to v (rounded for f32). */
void tensor_set(ag_tensor *t, int64_t i, double v);

/* The size a test should use: the positive integer in environment variable
 * `name`, or `fallback` when it is unset or empty. The Valgrind test setup
 * (tests/meson.build) sets such variables to shrink the slowest tests; a
 * value that is not a positive integer (or is over `fallback`) fails the
 * test program at once. */
int64_t test_size(const char *name, int64_t fallback);

/* Runs every test of suite s (and frees it); returns the exit status for
 * main: 0 when all passed, 1 otherwise. */
int run_suite(Suite *s);

#endif /* TESTS_SUPPORT_H */
