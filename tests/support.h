/* support.h: what every test program shares besides the gradient checker. */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include <check.h>

/* Runs every test of suite s (and frees it); returns the exit status for
 * main: 0 when all passed, 1 otherwise. */
int run_suite(Suite *s);

#endif /* TESTS_SUPPORT_H */
