/* file.c: the io layer's file helpers: errors that name a file, quoting
 * text from a file in messages, reading a whole file into memory, and
 * atomic writes (temporary file, fsync, rename, fsync of the folder)
 * through a per-thread table of system calls that tests replace to make
 * each call fail. */
#define _POSIX_C_SOURCE 200809L
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

const ag__io_sys ag__io_calls_default = {write, fsync, close, rename};
_Thread_local ag__io_sys ag__io_calls = {write, fsync, close, rename};

/* Formats "<path>: <fmt...>" and, when err is not 0, ": <reason>" into an
 * error of func. */
__attribute__((format(printf, 4, 0))) static void
file_verror(const char *func, const char *path, int err, const char *fmt,
            va_list ap)
{
    char msg[400], reason[128] = "";
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (err && strerror_r(err, reason, sizeof reason))
        snprintf(reason, sizeof reason, "error %d", err);
    ag__error(func, "%s: %s%s%s", path, msg, err ? ": " : "", reason);
}

int ag__file_error(const char *func, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    file_verror(func, path, 0, fmt, ap);
    va_end(ap);
    return -1;
}

int ag__file_syserror(const char *func, const char *path, int err,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    file_verror(func, path, err, fmt, ap);
    va_end(ap);
    return -1;
}

void ag__quote(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len && i < AG_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '\t' || c == '\r') {
            *out++ = '\\';
            *out++ = c == '\t' ? 't' : c == '\r' ? 'r' : '\\';
        } else if (c < 0x20 || c == 0x7f) {
            *out++ = '\\';
            *out++ = 'x';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        } else {
            *out++ = (char)c;
        }
    }
    strcpy(out, len > AG_QUOTE_MAX ? "..." : "");
}

/* Reads exactly n bytes of fd into buf. Returns 0, or the errno of the
 * failure (EIO when the file ends early). */
static int read_all(int fd, unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? errno : EIO;
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

int ag__check_reader_args(const char *func, const ag_arena *a, const char *path,
                          ag_dtype dt)
{
    if (!a || !path) {
        ag__error(func, "%s is NULL", !a ? "arena" : "path");
        return -1;
    }
    if (!ag__dtype_size(dt))
        return ag__file_error(func, path, "unknown dtype %d", (int)dt);
    return 0;
}

int ag__open_read(const char *func, const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ag__file_syserror(func, path, errno, "cannot open");
    int err = fstat(fd, st) ? errno : 0;
    if (err || S_ISDIR(st->st_mode)) {
        close(fd);
        return ag__file_syserror(func, path, err ? err : EISDIR,
                                 err ? "cannot stat" : "cannot open");
    }
    return fd;
}

int ag__read_file(const char *func, const char *path, unsigned char **data,
                  size_t *size)
{
    *data = NULL;
    *size = 0;
    struct stat st;
    int fd = ag__open_read(func, path, &st);
    if (fd < 0) return -1;
    int rc = -1;
    if (!S_ISREG(st.st_mode)) {
        ag__file_error(func, path, "is not a regular file");
    } else if ((uintmax_t)st.st_size > SIZE_MAX) {
        ag__file_error(func, path, "is too large to read (%lld bytes)",
                       (long long)st.st_size);
    } else {
        size_t n = (size_t)st.st_size;
        unsigned char *buf = n ? ag__malloc(n) : NULL;
        int err = n && !buf ? ENOMEM : read_all(fd, buf, n);
        if (err) {
            ag__file_syserror(func, path, err, "cannot read %zu bytes", n);
            ag__free(buf);
        } else {
            *data = buf;
            *size = n;
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

/* Reports err as the failure of `what`, gives up the file, returns -1. */
static int atomic_fail(ag__atomic_file *f, int err, const char *what)
{
    ag__file_syserror(f->func, f->path, err, "%s", what);
    ag__atomic_abort(f);
    return -1;
}

/* Writes into dir the folder that holds path: the part before its last
 * slash (`slash`, NULL when there is none), "/" when that part is empty,
 * "." when there is no slash. */
static void folder_of(char *dir, const char *path, const char *slash)
{
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (!slash)
        strcpy(dir, ".");
    else if (dlen == 0)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
    }
}

int ag__atomic_begin(ag__atomic_file *f, const char *func, const char *path)
{
    static const char suffix[] = ".tmp.XXXXXX";
    *f = (ag__atomic_file){.func = func, .path = path, .fd = -1};
    if (!*path) return ag__file_error(func, path, "empty path");
    /* Both names are made now, so that nothing needs memory once the file
     * has been renamed over the target. */
    size_t len = strlen(path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    f->names = ag__malloc(len + sizeof suffix + dlen + 2);
    if (!f->names)
        return atomic_fail(f, ENOMEM, "cannot make a temporary name");
    char *tmp = f->names, *dir = tmp + len + sizeof suffix;
    memcpy(tmp, path, len);
    memcpy(tmp + len, suffix, sizeof suffix);
    folder_of(dir, path, slash);
    f->dir = dir;
    f->fd = mkstemp(tmp);
    if (f->fd < 0) /* nothing was created under that name */
        return atomic_fail(f, errno, "cannot create a temporary file there");
    f->tmp = tmp;
    /* Overwriting keeps the old file's permissions. */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        fchmod(f->fd, st.st_mode & 07777))
        return atomic_fail(f, errno, "cannot set the temporary file's mode");
    return 0;
}

int ag__atomic_write(ag__atomic_file *f, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = ag__io_calls.write(f->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        /* write() returning 0 for n > 0 has no errno; call it EIO */
        if (w <= 0)
            return atomic_fail(f, w < 0 ? errno : EIO,
                               "cannot write the temporary file");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsyncs the folder of f's target (after the rename, so that the new name
 * survives a crash). A file system that cannot sync folders (EINVAL) is not
 * an error. Returns 0, or -1 and an error. */
static int sync_folder(const ag__atomic_file *f)
{
    int err = 0, fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        err = errno;
    else {
        if (ag__io_calls.fsync(fd) && errno != EINVAL) err = errno;
        close(fd);
    }
    if (!err) return 0;
    return ag__file_syserror(f->func, f->path, err,
                             "saved, but cannot fsync its folder %s (the new "
                             "file may not survive a crash)",
                             f->dir);
}

int ag__atomic_commit(ag__atomic_file *f)
{
    if (ag__io_calls.fsync(f->fd))
        return atomic_fail(f, errno, "cannot fsync the temporary file");
    int fd = f->fd;
    f->fd = -1; /* closed even when close() fails (Linux, and POSIX 2024) */
    if (ag__io_calls.close(fd))
        return atomic_fail(f, errno, "cannot close the temporary file");
    if (ag__io_calls.rename(f->tmp, f->path))
        return atomic_fail(f, errno, "cannot rename the temporary file to it");
    f->tmp = NULL; /* it is the target now */
    int rc = sync_folder(f);
    ag__atomic_abort(f); /* frees the names */
    return rc;
}

void ag__atomic_abort(ag__atomic_file *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->tmp) unlink(f->tmp);
    f->tmp = NULL;
    ag__free(f->names);
    f->names = NULL;
}
