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
 * 8-byte little-endian header length N; N bytes of JSON header, padded with
 * spaces so that the data starts at a multiple of 8 bytes; then the raw
 * little-endian values), readable by PyTorch's safetensors and any other
 * reader. The header gives each tensor's dtype ("F32", "F64" or "I32"),
 * shape and [begin, end) byte offsets in the data; it lists "__metadata__"
 * first, then the tensors in the set's order, whose values are packed in
 * that order. `metadata` is NULL or a NULL-terminated list of key, value
 * UTF-8 string pairs ({"epoch", "3", NULL}) stored as "__metadata__".
 *
 * The save is atomic: it writes a temporary file "<path>.tmp.XXXXXX" in the
 * same folder, fsyncs and closes it, renames it over `path` and fsyncs the
 * folder. An existing file at `path` keeps its permissions; a new file gets
 * mode 0600 (as mkstemp makes it). A symbolic link at `path` is replaced by
 * the new regular file (which takes the permissions of the link's target);
 * the target is left as it was. On a failure before the rename the
 * temporary file is removed and a previous file at `path` is left intact;
 * if only the folder's fsync fails, the new file is in place and the error
 * says so.
 *
 * Returns 0, or -1 and an error naming the path (with the system's reason
 * for a failed system call): NULL path or set, a metadata key without a
 * value or given twice, a tensor named "__metadata__", a name or metadata
 * string that is not valid UTF-8, a folder that cannot be written. */
AG_API int ag_save_safetensors(const char *path, const ag_params *params,
                               const char *const *metadata);

/* Loads `path` into the tensors of `params`. The file is read into memory
 * once and checked completely before any value is copied: its size against
 * the header length (at most 100,000,000 bytes, as the reference reader),
 * the JSON syntax (strict RFC 8259: valid UTF-8, no key twice in an object,
 * no "\u0000", integers within int64_t, at most 128 levels of nesting; the
 * error gives line and column), every header entry (an object with exactly
 * "dtype", "shape" and "data_offsets"; a dtype F32, F64 or I32, other
 * safetensors dtypes such as F16, BF16 or I64 being unsupported; a shape of
 * at most AG_MAX_DIMS integers >= 0; offsets [begin, end] within the data,
 * holding exactly the bytes of the dtype and shape), "__metadata__" (if
 * present: an object of strings), the layout of the data (as strictly as the
 * reference implementation: sorted by offset, the first tensor begins at 0,
 * each begins where the one before ends and the last ends at the end of the
 * data, so that no two tensors overlap and no byte belongs to no tensor; the
 * error names the tensors and offsets), then the names (exactly the set's:
 * the error names a missing and an unexpected one) and each tensor's dtype
 * and shape against its parameter's (the error gives both). The order of the
 * tensors in the header does not matter. Returns 0, or -1 and an error
 * "ag_load_safetensors: <path>: ...", in which case no parameter has
 * changed. */
AG_API int ag_load_safetensors(const char *path, ag_params *params);

/* Reads the "__metadata__" of the safetensors file at `path` as a
 * NULL-terminated list of key, value pairs in the order of the file (the
 * form ag_save_safetensors takes; {NULL} when the file has none). The list
 * and its strings are allocated in arena `a`. The whole file is checked as
 * ag_load_safetensors checks it, except against a parameter set. Returns
 * the list, or NULL and an error (NULL arguments, a bad file, no memory). */
AG_API const char *const *ag_load_safetensors_metadata(ag_arena *a,
                                                       const char *path);

/* ------------------------------------------------------------------ */
/* Datasets                                                            */
/* ------------------------------------------------------------------ */

/* Reads an IDX file, gzipped or not, into a new tensor of dtype `dt` in
 * arena `a` with the file's shape (for example (60000, 28, 28) images or
 * (60000) labels). IDX is the format of MNIST and Fashion-MNIST: two zero
 * bytes, an element type (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
 * 0x0E f64), a dimension count, the sizes as big-endian uint32, then the
 * values, big-endian, row-major. Values are converted to `dt` with C's
 * conversions, not scaled (bytes stay 0..255: scale them yourself): exactly
 * to AG_I32, which is allowed for the integer element types only, and
 * rounded to nearest to AG_F32 and AG_F64 (so i32 values beyond 2^24 and
 * f64 values read as AG_F32 may change). A file that starts with gzip's
 * magic bytes is inflated (one gzip member or several, one after the
 * other); any other is read as it is. The data is read in chunks straight
 * into the tensor, so memory stays at the tensor's size. The file may be a
 * pipe: it is read once.
 *
 * Returns the tensor (owned by `a`), or NULL and an error
 * "ag_load_idx: <path>: ..." for: a NULL arena or path, an unknown dtype, a
 * file that cannot be opened (with the system's reason), bad magic bytes
 * (shown), an unknown element type, 0 or more than AG_MAX_DIMS dimensions, a
 * size of 0, sizes whose element or byte count overflows, a header or data
 * shorter than the header promises (with the bytes expected and got; a
 * plain file too short, or a gzip file too small to hold that much, is
 * refused before anything is allocated), trailing bytes after the data
 * (counted in a plain file; in a gzip stream the reader stops after one
 * chunk of them and says "at least N"), bytes after the gzip stream that are
 * not gzip, a gzip stream that ends early or is corrupt (with zlib's
 * reason, a wrong checksum included), AG_I32 for a float element type, an
 * f64 value read as AG_F32 that rounds to an infinity (from FLT_MAX plus
 * half an ulp on; the values below round to at most FLT_MAX); or no memory
 * for the buffers or the tensor. */
AG_API ag_tensor *ag_load_idx(ag_arena *a, const char *path, ag_dtype dt);

/* Reads a CSV file of numbers into a new 2-D (rows, columns) tensor of
 * dtype `dt` in arena `a`. Fields are separated by commas, may have spaces
 * or tabs around them, and are numbers as strtod reads them in the C locale
 * whatever locale the program set ("1", "-2.5e3", "inf", "nan"). Lines end
 * in "\n" or "\r\n" and may be of any length; blank lines (empty or only
 * spaces) are skipped, as is a UTF-8 byte order mark at the start. With
 * `header`, the first non-blank line is column names and is skipped
 * unread. The file must be a regular file, as it is read twice: once to
 * check every field and count the rows, then into the tensor. Values are
 * read as doubles and converted to `dt` with C's conversions (rounded to
 * nearest for AG_F32).
 *
 * Returns the tensor (owned by `a`), or NULL and an error
 * "ag_load_csv: <path>: ..." that names the line and column at fault: a
 * field that is not a number (quoted: its first 40 bytes, with control
 * characters and backslashes escaped as in C, "\r", "\x00", "\\"), an
 * empty field, a row whose column count differs from the first row's (both
 * counts), no data rows, a value beyond the range of f64, or of f32 (one
 * that rounds to an infinity as f32: 3.4028235e38 rounds to FLT_MAX and
 * loads), for AG_I32 a value that is not an integer or outside the int32
 * range; also a NULL arena or path, an unknown dtype, a file that cannot be
 * opened or read, one that is not a regular file (a folder, a pipe, a
 * device), or no memory for the line buffer or the tensor. */
AG_API ag_tensor *ag_load_csv(ag_arena *a, const char *path, ag_dtype dt,
                              bool header);

/* Mini-batches over examples x (N, ...) and targets y (N, ...), for
 * example AG_I32 labels (N): each epoch visits every example once, in an
 * order shuffled from `seed` (Fisher-Yates driven by ag_rng; a new order
 * each epoch, the same orders for the same seed) or in the tensors' order. */
typedef struct ag_batcher ag_batcher;

/* Makes a batcher in arena `a` over x and y with batches of `batch`
 * examples; the last batch of an epoch is smaller, or dropped with
 * drop_last. x and y are not copied: they must outlive the batcher, and
 * each batch copies their values as they are then. The order of the N
 * examples (8 N bytes) is allocated here, once; making batches takes no
 * memory from `a`. Returns the batcher (owned by `a`), or NULL and an error
 * for: a NULL argument, x or y with no dimensions, first dimensions that
 * differ ("x has 100 examples, y has 99"), no examples, batch < 1,
 * drop_last with batch > N (an epoch would have no batch), 8 N bytes that
 * overflow size_t or int64_t (refused before anything is allocated), out
 * of memory. */
AG_API ag_batcher *ag_batcher_new(ag_arena *a, ag_tensor *x, ag_tensor *y,
                                  int64_t batch, bool shuffle, uint64_t seed,
                                  bool drop_last);

/* Copies the next batch into new tensors in arena `step`: *bx (B, ...) and
 * *by (B, ...), with x's and y's dtypes, B being the batch size (or fewer
 * for the last batch); they are leaves that need no gradient. Returns 1
 * with a batch; 0 at the end of an epoch, with *bx and *by set to NULL (no
 * batch: the order is reshuffled and the next call starts the next epoch);
 * or -1 and an error for a NULL argument or out of memory (the batcher's
 * position is then unchanged). */
AG_API int ag_batcher_next(ag_batcher *b, ag_arena *step, ag_tensor **bx,
                           ag_tensor **by);

/* Makes the batcher give this process its part of every batch, for data
 * parallel training over `world` processes (autograd/dist.h): each process
 * makes the same batcher (same data, batch size, shuffle and seed, so the
 * same orders) and says which one it is, 0 <= rank < world. `batch` is then
 * the global batch, and a batch of B examples gives process `rank` its
 * rows B * rank / world to B * (rank + 1) / world (their union over the
 * ranks is the batch a single process gets). Set it before the first
 * batch. A smaller last batch can leave a process fewer rows than the
 * others, or none (an empty (0, ...) batch) when it has fewer than world
 * examples: use drop_last, or a number of examples that the global batch
 * divides, for parts of one size. Returns 0, or -1 and an error for a
 * NULL batcher, a rank outside [0, world), or a batch smaller than world
 * (some process would never get an example). */
AG_API int ag_batcher_shard(ag_batcher *b, int rank, int world);

/* Batches per epoch: N / batch rounded up, or down with drop_last; 0 for
 * NULL. */
AG_API int64_t ag_batcher_count(const ag_batcher *b);

#ifdef __cplusplus
}
#endif

#endif /* AUTOGRAD_IO_H */
