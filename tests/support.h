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

/* Runs every test of suite s (and frees it); returns the exit status for
 * main: 0 when all passed, 1 otherwise. */
int run_suite(Suite *s);

#endif /* TESTS_SUPPORT_H */
