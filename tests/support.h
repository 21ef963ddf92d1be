/* support.h: what every test program shares besides the gradient checker:
 * the suite runner, element access whatever the dtype and PyTorch fixture
 * values as tensors. */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include <autograd.h>
#include <check.h>
#include <stdbool.h>
#include <stddef.h>

/* Element i of t (not NULL) as a double, whatever its dtype. */
double tensor_at(const ag_tensor *t, int64_t i);

/* Sets element i of the float tensor t to v (rounded for f32). */
void tensor_set(ag_tensor *t, int64_t i, double v);

/* ---- PyTorch fixtures (tests/fixtures/make_*_fixture.py) ---- */

/* A new tensor in a of dtype dt and shape holding values[0..numel)
 * (rounded for f32), requiring a gradient when grad; fails the test when
 * it cannot be made. */
ag_tensor *fixture_tensor(ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, const double *values,
                          bool grad);

/* Asserts that t is not NULL and its values agree with want[0..numel)
 * within tol relative to max(1, |want|); the message names label, what,
 * the element and both values. */
void expect_fixture_close(const char *label, const char *what,
                          const ag_tensor *t, const double *want, double tol);

/* sum(t * cot), cot of t's shape and dtype with element j
 * cos(0.7 j + 0.2 + o), the fixtures' cotangent; a new tensor in a. */
ag_tensor *cotangent_sum(ag_arena *a, ag_tensor *t, double o);

/* ---- the floating-point environment ---- */

/* Whether ag_set_flush_denormal(true) really flushes here: a subnormal
 * times 1 gives 0 with it. False where the CPU has no flush mode and under
 * Valgrind, which accepts the mode but computes as if it were off. */
bool flush_takes_effect(void);

/* Whether an exception flag raised is seen by fetestexcept (not under
 * Valgrind, which does not keep MXCSR's flags). */
bool fp_flags_tracked(void);

/* ---- a temporary folder per test, and files in it ---- */

/* Makes a fresh folder /tmp/<prefix>.XXXXXX (failing the test if it
 * cannot) and returns its path, valid until test_dir_remove. */
const char *test_dir_make(const char *prefix);

/* Removes the folder and what it holds (files, empty subfolders). */
void test_dir_remove(void);

/* The path of `name` in the folder (in one of a few rotating buffers). */
const char *path_of(const char *name);

/* The number of entries in the folder; the name of one of them is copied
 * into `one` (of `size` bytes) unless it is NULL. */
int folder_entries(char *one, size_t size);

/* Asserts that the folder holds exactly one entry, `name` (so that no
 * temporary file was left behind). */
void expect_only(const char *name);

/* Writes n bytes to the file at path, failing the test on error. */
void write_bytes(const char *path, const void *data, size_t n);

/* The bytes of the file at path (malloc'd; free them) and their count. */
unsigned char *read_bytes(const char *path, size_t *n);

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

/* Thread-count agreement: on the first run (threads 1) keeps got[0..n-1]
 * in first[]; on later runs checks that each got[k] has the same bits as
 * first[k] (f64 tensors), failing with the tensor and the thread count. */
void expect_same_bits(ag_tensor *const *got, ag_tensor **first, int n,
                      int threads);

#endif /* TESTS_SUPPORT_H */
