/* fuzz_support.c: the helpers of fuzz.h, shared by every harness. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void fuzz_check_error(const char *func)
{
    const char *msg = ag_last_error();
    size_t n = strlen(func);
    FUZZ_CHECK(strncmp(msg, func, n) == 0 && strlen(msg) > n + 2,
               "a failed call must leave an error starting with \"%s\"", func);
}

/* The files fuzz_file_n writes into, made once per process. */
static int input_fd(int which)
{
    static int fds[2] = {-1, -1};
    if (fds[which] >= 0) return fds[which];
    int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
    if (fd < 0) {
        char name[] = "/tmp/ag-fuzz-input.XXXXXX";
        fd = mkstemp(name);
        FUZZ_CHECK(fd >= 0, "cannot make a temporary file: %s",
                   strerror(errno));
        unlink(name); /* still open through /proc/self/fd */
    }
    return fds[which] = fd;
}

const char *fuzz_file_n(int which, const void *data, size_t n)
{
    static char paths[2][64];
    FUZZ_CHECK(which == 0 || which == 1, "file %d", which);
    int fd = input_fd(which);
    FUZZ_CHECK(ftruncate(fd, 0) == 0, "ftruncate: %s", strerror(errno));
    const char *p = data;
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(fd, p + done, n - done, (off_t)done);
        FUZZ_CHECK(w > 0, "pwrite: %s", strerror(errno));
        done += (size_t)w;
    }
    snprintf(paths[which], sizeof paths[which], "/proc/self/fd/%d", fd);
    return paths[which];
}

const char *fuzz_file(const void *data, size_t n)
{
    return fuzz_file_n(0, data, n);
}

void fuzz_trace(const char *fmt, ...)
{
    static int on = -1;
    if (on < 0) on = getenv("FUZZ_TRACE") != NULL;
    if (!on) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void fuzz_check_element(const ag_tensor *t, int64_t i, double want)
{
    const void *d = ag_data((ag_tensor *)t);
    double got;
    if (ag_type(t) == AG_F32) {
        got = ((const float *)d)[i];
        want = (float)want;
    } else if (ag_type(t) == AG_F64) {
        got = ((const double *)d)[i];
    } else {
        got = ((const int32_t *)d)[i];
        want = (int32_t)want; /* -0 is 0 */
    }
    FUZZ_CHECK((isnan(got) && isnan(want)) ||
                   (got == want && signbit(got) == signbit(want)),
               "value %lld is %.17g, want %.17g", (long long)i, got, want);
}
