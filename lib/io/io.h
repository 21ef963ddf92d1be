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

/* Writes the first AG_QUOTE_MAX bytes of s[0, len) to out (AG_QUOTE_SIZE
 * bytes), for quoting text from a file in a message, escaped as in C: "\\"
 * for a backslash, "\t" and "\r", "\xNN" for the other control characters
 * (NUL included) and DEL; "..." follows when the text is longer. Other bytes,
 * UTF-8 text among them, stay as they are. */
#define AG_QUOTE_MAX 40
#define AG_QUOTE_SIZE (4 * AG_QUOTE_MAX + 4)
void ag__quote(char *out, const char *s, size_t len);

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

/* ---- JSON (json.c): the safetensors header ---- */

/* The length (1 to 4) of the valid UTF-8 character at s, of the n bytes
 * there, or 0 when they do not start with one (a stray continuation byte,
 * an overlong form, a surrogate, a code point over 0x10FFFF, a sequence cut
 * short). */
size_t ag__utf8_char(const unsigned char *s, size_t n);

/* Whether the string s is valid UTF-8. */
bool ag__utf8_valid(const char *s);

/* A JSON value read by ag__json_parse; the tree lives in the parser's
 * arena. Real numbers are checked but their value is not kept (a
 * safetensors header holds none). */
typedef enum {
    AG__JSON_NULL,
    AG__JSON_BOOL,
    AG__JSON_INTEGER,
    AG__JSON_REAL,
    AG__JSON_STRING,
    AG__JSON_ARRAY,
    AG__JSON_OBJECT,
} ag__json_type;

typedef struct ag__json_member ag__json_member;

typedef struct ag__json {
    ag__json_type type;
    union {
        bool boolean;    /* AG__JSON_BOOL */
        int64_t integer; /* AG__JSON_INTEGER */
        struct {
            const char *chars; /* NUL-terminated UTF-8, no NUL inside */
            size_t length;     /* in bytes */
        } string;
        struct {
            struct ag__json *items;
            size_t count;
        } array;
        struct {
            ag__json_member *members;       /* in the order of the text */
            const ag__json_member **sorted; /* by key, for ag__json_get */
            size_t count;
        } object;
    };
} ag__json;

struct ag__json_member {
    const char *key; /* as a string's chars */
    size_t key_length;
    size_t offset; /* of the key's opening quote in the text */
    ag__json value;
};

/* How deep arrays and objects may nest (serde_json, the parser of the
 * reference safetensors reader, has a limit of the same size; a
 * safetensors header nests 3 deep). */
#define AG__JSON_MAX_DEPTH 128

/* Why ag__json_parse failed: out_of_memory, or text (the reason) at line
 * `line` (from 1), column `column` (in characters, from 1; at the end of the
 * text, the column of its last character, 0 for an empty line). */
typedef struct {
    bool out_of_memory;
    size_t line, column;
    char text[160];
} ag__json_error;

/* Parses the n bytes at text as one JSON value (RFC 8259, strictly: no
 * comments, no trailing commas, nothing but white space after the value),
 * with these limits: strings must be valid UTF-8 and cannot hold "\u0000"
 * (their decoded text is NUL-terminated), integers (numbers without a
 * fraction or exponent) must fit int64_t, arrays and objects nest at most
 * AG__JSON_MAX_DEPTH deep, and no object has a key twice. Returns the
 * value, allocated in arena a (with everything it holds), or NULL and *err
 * (the arena may then hold part of a tree). Every allocation goes through
 * the library's allocator; running out of memory is an error like any
 * other (err->out_of_memory). */
const ag__json *ag__json_parse(ag_arena *a, const void *text, size_t n,
                               ag__json_error *err);

/* The value of `key` in object, or NULL when object has no such key or is
 * not an object (O(log count)). */
const ag__json *ag__json_get(const ag__json *object, const char *key);

/* The kind of v for messages: "an object", "an integer", "null", ... */
const char *ag__json_kind(const ag__json *v);

/* A JSON text being written: into buf when it is not NULL (which must have
 * room for all of it), otherwise only counted; len is the number of bytes
 * so far. Writing twice, first with buf NULL to learn the length, then into
 * a buffer of that length, needs no other memory. */
typedef struct {
    char *buf;
    size_t len;
} ag__json_out;

/* Appends text as it is (punctuation). */
void ag__json_put(ag__json_out *o, const char *text);

/* Appends the string s (valid UTF-8: check with ag__utf8_valid) quoted and
 * escaped as jansson, which wrote the library's headers before, escaped it
 * (so that the same checkpoint is the same bytes): \" and \\, \b \f \n \r
 * \t, \u00XX (upper case) for the other control characters; '/', DEL and
 * non-ASCII text as they are. */
void ag__json_put_string(ag__json_out *o, const char *s);

/* Appends the integer v in decimal. */
void ag__json_put_integer(ag__json_out *o, int64_t v);

#endif /* AG_IO_H */
