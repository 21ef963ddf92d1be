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

/* The integer in environment variable `name`, or `fallback` when it is
 * unset or empty. The test setups (tests/meson.build) set such variables to
 * adapt the slowest tests to Valgrind and the sanitizers; a value that is
 * not an integer in [min, max] ends the test program at once (status 2). */
int64_t test_env(const char *name, int64_t fallback, int64_t min, int64_t max);

/* The size a test should use: test_env(name, fallback, 1, fallback), a
 * positive size no bigger than the default. */
int64_t test_size(const char *name, int64_t fallback);

/* Runs every test of suite s (and frees it); returns the exit status for
 * main: 0 when all passed, 1 otherwise. */
int run_suite(Suite *s);

#endif /* TESTS_SUPPORT_H */
