/* autograd/io.h: checkpoints in the safetensors format, and datasets (IDX
 * files as MNIST ships them, CSV tables, shuffled mini-batches). Included by
 * autograd.h; include that instead.
 *
 * Every reader checks a file completely before it trusts it and reports a
 * bad file as an error naming the function, the path and what is wrong;
 * nothing is changed when a load fails. */
#ifndef AUTOGRAD_IO_H
#define AUTOGRAD_IO_H

#include "../autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Checkpoints: safetensors                                            */
/* ------------------------------------------------------------------ */

/* Saves every tensor of `params` to `path` in the safetensors format (an
 * 8-byte little-endian header length, a JSON header giving each tensor's
 * dtype "F32"/"F64"/"I32", shape and data offsets, then the raw
 * little-endian values), readable by PyTorch's safetensors and any other
 * reader. `metadata` is NULL or a NULL-terminated list of key, value
 * string pairs stored as "__metadata__".
 *
 * The save is atomic: it writes a temporary file in the same folder,
 * flushes and fsyncs it, and renames it over `path`; on any failure the
 * temporary file is removed and a previous file at `path` is left intact.
 * Returns 0, or -1 and an error (with the path and the system's reason). */
AG_API int ag_save_safetensors(const char *path, const ag_params *params,
                               const char *const *metadata);

/* Loads `path` into the tensors of `params`. The file must hold exactly the
 * set's names, each with the tensor's dtype and shape. Everything is checked
 * before any value is copied: header length against the file size, JSON
 * syntax, dtype names, shapes against byte counts, offsets in bounds and not
 * overlapping, names. Returns 0, or -1 and an error, in which case no
 * parameter has changed. */
AG_API int ag_load_safetensors(const char *path, ag_params *params);

/* ------------------------------------------------------------------ */
/* Datasets                                                            */
/* ------------------------------------------------------------------ */

/* Reads an IDX file (the format of MNIST and Fashion-MNIST), gzipped or
 * not, into a tensor of dtype `dt` in arena `a` with the file's shape
 * (for example (60000, 28, 28) images or (60000) labels). Values are
 * converted as they are (bytes stay 0..255). Errors: a file that cannot be
 * read, a bad magic number or element type, dimensions of size 0 or too
 * many, truncated data, trailing bytes, a corrupt gzip stream, AG_I32
 * for float element types. */
AG_API ag_tensor *ag_load_idx(ag_arena *a, const char *path, ag_dtype dt);

/* Reads a CSV file of numbers (comma-separated; blank lines skipped) into a
 * 2-D (rows, columns) tensor of dtype `dt` in arena `a`. With `header`, the
 * first line is column names and is skipped. Errors name the line and
 * column: a field that is not a number, a row whose column count differs
 * from the first row's, no rows, a value that does not fit AG_I32. */
AG_API ag_tensor *ag_load_csv(ag_arena *a, const char *path, ag_dtype dt,
                              bool header);

/* Mini-batches over examples x (N, ...) and targets y (N, ...): each epoch
 * visits every example once, in an order shuffled from `seed` (a new
 * order each epoch) or in file order. */
typedef struct ag_batcher ag_batcher;

/* Makes a batcher in arena `a` over x and y (which must outlive it) with
 * batches of `batch` examples; the last batch of an epoch is smaller
 * unless drop_last. Errors: NULL, batch < 1, x and y whose first
 * dimensions differ (or are missing), no examples. */
AG_API ag_batcher *ag_batcher_new(ag_arena *a, ag_tensor *x, ag_tensor *y,
                                  int64_t batch, bool shuffle, uint64_t seed,
                                  bool drop_last);

/* Copies the next batch into new tensors in arena `step`: *bx (B, ...) and
 * *by (B, ...), with x's and y's dtypes. Returns 1 with a batch, 0 at the
 * end of an epoch (no batch; the next call starts the next epoch), -1 and
 * an error. */
AG_API int ag_batcher_next(ag_batcher *b, ag_arena *step, ag_tensor **bx,
                           ag_tensor **by);

/* Batches per epoch. */
AG_API int64_t ag_batcher_count(const ag_batcher *b);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_IO_H */
