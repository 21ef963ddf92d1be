/* fuzz.h: what the libFuzzer harnesses of tests/fuzz share: a check that
 * reports and aborts (whatever NDEBUG says), the invariant every failing
 * call must keep, a file holding the input bytes for the readers, which
 * take paths, and a trace to follow an input. */
#ifndef TESTS_FUZZ_H
#define TESTS_FUZZ_H

#include <autograd.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts with the condition, the place and a printf message unless cond
 * holds; libFuzzer then saves the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: fuzz check failed: %s: ", __FILE__,        \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n(last error: \"%s\")\n", ag_last_error());      \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Checks the error of a call that failed: ag_last_error() starts with
 * `func` (a function name such as "ag_load_idx", or a prefix such as "ag_")
 * and says more than that. */
void fuzz_check_error(const char *func);

/* Writes the n bytes at data into a file of this process (a memfd, or an
 * unlinked temporary file where memfd_create is missing) and returns a path
 * that opens it ("/proc/self/fd/N"), valid until the next call. */
const char *fuzz_file(const void *data, size_t n);

/* As fuzz_file, into file `which` (0 or 1) of two, for readers of two
 * files; fuzz_file is file 0. */
const char *fuzz_file_n(int which, const void *data, size_t n);

/* Writes a printf message and a newline to stderr when the environment
 * variable FUZZ_TRACE is set (to follow what an input does: FUZZ_TRACE=1
 * build-fuzz/tests/fuzz/fuzz_ops crash-file). */
void fuzz_trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checks element i of the loaded tensor t against `want` (the harness's
 * own reading of the file) rounded to t's dtype as the loader rounds it:
 * equal with the same sign, or both NaN. */
void fuzz_check_element(const ag_tensor *t, int64_t i, double want);

/* The libFuzzer entry point each harness defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif /* TESTS_FUZZ_H */
