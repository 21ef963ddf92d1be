/* io.h: what the io layer's files share and users never see: errors that
 * name a file, reading a whole file into memory, writing a file atomically,
 * and the table of system calls that file writing goes through (so that
 * tests can make each of them fail). */
#ifndef AG_IO_H
#define AG_IO_H

#include "../internal.h"

#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libautograd's file formats assume a little-endian host"
#endif

/* Sets the error "<func>: <path>: <formatted message>" and returns -1. */
int ag__file_error(const char *func, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* As ag__file_error, followed by ": <the system's reason for errno err>". */
int ag__file_syserror(const char *func, const char *path, int err,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Whether the finite double v becomes an infinity when converted to float:
 * |v| >= FLT_MAX + half an ulp (0x1.ffffffp127), the values that round to
 * nearest up to 2^128. Values below (3.4028235e38 included, as NumPy and
 * PyTorch print FLT_MAX) round to at most FLT_MAX. */
static inline bool ag__f32_overflows(double v)
{
    return isfinite(v) && fabs(v) >= 0x1.ffffffp127;
}

/* Opens `path` read-only and fstats it into *st. Returns the descriptor
 * (the caller closes it), or -1 and an error reported as func: "cannot
 * open: <the system's reason>" (for a folder too) or "cannot stat: ...". */
int ag__open_read(const char *func, const char *path, struct stat *st);

/* Checks what every reader is given: an arena, a path, a known dtype.
 * Returns 0, or -1 and an error reported as func. */
int ag__check_reader_args(const char *func, const ag_arena *a, const char *path,
                          ag_dtype dt);

/* Reads the regular file at `path` into a new buffer: *data (freed by the
 * caller with ag__free(); NULL for an empty file) and *size. Returns 0, or
 * -1 and an error reported as func (a file that cannot be opened or read, a
 * folder, no memory). */
int ag__read_file(const char *func, const char *path, unsigned char **data,
                  size_t *size);

/* The system calls used to write files. ag__io_calls is this thread's table
 * (initially ag__io_calls_default); tests replace entries to inject failures
 * and copy ag__io_calls_default back afterwards. */
typedef struct {
    ssize_t (*write)(int fd, const void *buf, size_t count);
    int (*fsync)(int fd);
    int (*close)(int fd);
    int (*rename)(const char *from, const char *to);
} ag__io_sys;

extern const ag__io_sys ag__io_calls_default;
extern _Thread_local ag__io_sys ag__io_calls;

/* A file being written atomically: the bytes go to a temporary file
 * "<path>.tmp.XXXXXX" in the same folder, which ag__atomic_commit renames
 * over `path`. Usage:
 *     ag__atomic_file f;
 *     if (ag__atomic_begin(&f, func, path) || ag__atomic_write(&f, p, n) ||
 *         ... || ag__atomic_commit(&f))
 *         return -1;
 * Each function that fails reports an error (func: path: what: the system's
 * reason), removes the temporary file and frees what f holds, so the caller
 * only returns; ag__atomic_abort does the same for a caller that gives up
 * between calls. */
typedef struct {
    const char *func, *path;
    char *names;     /* ag__malloc'd: tmp's and dir's text, NULL when freed */
    const char *tmp; /* the temporary file's path, NULL when there is none */
    const char *dir; /* the folder that holds path, for its fsync */
    int fd;          /* the temporary file's descriptor, -1 when closed */
} ag__atomic_file;

/* Creates the temporary file (with the permissions of an existing file at
 * `path`; mode 0600 for a new one). All the memory the write needs is taken
 * here, so that no later step fails for want of it. Returns 0 or -1. */
int ag__atomic_begin(ag__atomic_file *f, const char *func, const char *path);

/* Writes n bytes (all of them, retrying short writes and EINTR). Returns 0
 * or -1. */
int ag__atomic_write(ag__atomic_file *f, const void *buf, size_t n);

/* fsyncs and closes the temporary file, renames it over the target and
 * fsyncs the folder. Returns 0, or -1: before the rename, the target is as
 * it was; when only the folder's fsync fails, the new file is in place and
 * the error says so. */
int ag__atomic_commit(ag__atomic_file *f);

/* Closes and removes the temporary file, if any, and frees f's names.
 * Safe to call twice. */
void ag__atomic_abort(ag__atomic_file *f);

#endif /* AG_IO_H */
