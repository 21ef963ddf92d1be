/* autograd.h: the public API of libautograd, a reverse-mode automatic
 * differentiation tensor library.
 *
 * Rules that hold for every function below:
 *
 * Memory. Every tensor belongs to exactly one arena, the one passed when it
 * was made. There is no per-tensor free: ag_arena_reset() releases every
 * tensor of an arena at once (and keeps the memory for reuse), and
 * ag_arena_free() gives the memory back. A tensor's gradient lives in the
 * tensor's own arena, so parameters made in a long-lived arena keep their
 * gradients when a per-step arena is reset. Pointers returned by this library
 * are owned by an arena (tensors, data, gradients) or by the library
 * (strings); the caller never frees them.
 *
 * Errors. A function that fails returns NULL (or a negative int, or NaN for
 * ag_item) and ag_last_error() says what failed and where, for example
 * "ag_matmul: inner dimensions differ: (4,3) @ (5,2)". An op given a NULL
 * input returns NULL and keeps the pending message (or, when none is
 * pending, says which input was NULL), so a whole expression can be built
 * and checked once at the end. A program that handles an error and goes on
 * should call ag_clear_error(), so that the old message is not taken for the
 * cause of a later NULL. No input crashes or aborts the
 * process. A failed call changes no tensor and no gradient: nothing is left
 * half-written (it may have taken memory from the arena, which the next
 * reset reclaims). The one exception is a backward pass stopped by a
 * user-defined function or by anomaly detection; see ag_backward.
 *
 * Threads. The error message and the grad mode are per thread; there is no
 * other global state. Separate arenas may be used from separate threads at
 * once; one arena must not be used from two threads at once.
 */
#ifndef AUTOGRAD_H
#define AUTOGRAD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the functions the shared library exports. */
/* AG_API marks the library's public functions (exported from the shared
 * library, which hides the rest); AG_PRINTF(fmt, args) checks a function's
 * printf-style format. */
#if defined(__GNUC__) || defined(__clang__)
#define AG_API __attribute__((visibility("default")))
#define AG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define AG_API
#define AG_PRINTF(fmt, args)
#endif

/* The library's version: major, minor, patch (0.2.0). */
#define AG_VERSION_MAJOR 0
#define AG_VERSION_MINOR 2
#define AG_VERSION_PATCH 0

/* The most dimensions a tensor can have. */
#define AG_MAX_DIMS 8

/* An axis value for ag_sum, ag_mean and ag_max: reduce over every axis. */
#define AG_ALL INT_MIN

/* Element types. AG_I32 tensors carry class labels and indices; they never
 * have gradients and float ops refuse them. */
typedef enum { AG_F32, AG_F64, AG_I32 } ag_dtype;

/* An arena: the memory that tensors and graph nodes are made in, freed all
 * at once (ag_arena_reset, ag_arena_free). */
typedef struct ag_arena ag_arena;
/* A tensor: dtype, shape, contiguous row-major values, and its gradient and
 * recorded history; it lives in the arena it was made in. */
typedef struct ag_tensor ag_tensor;
/* A named set of parameter tensors (see autograd/nn.h). */
typedef struct ag_params ag_params;

/* ------------------------------------------------------------------ */
/* Arenas                                                              */
/* ------------------------------------------------------------------ */

/* Makes an empty arena. Returns NULL (and an error) when out of memory.
 * Free it with ag_arena_free(). */
AG_API ag_arena *ag_arena_new(void);

/* Releases every tensor made in `a` at once; the memory is kept and reused
 * by the next tensors made in `a`. Pointers to tensors of `a` (and to their
 * data and gradients) are invalid afterwards. NULL is ignored. */
AG_API void ag_arena_reset(ag_arena *a);

/* Releases every tensor of `a` and gives all its memory back. NULL is
 * ignored. */
AG_API void ag_arena_free(ag_arena *a);

/* Bytes of memory the arena holds from the system (used or not). */
AG_API size_t ag_arena_capacity(const ag_arena *a);

/* ------------------------------------------------------------------ */
/* Making tensors                                                      */
/* ------------------------------------------------------------------ */
/* Every constructor takes the arena that will own the result, a dtype, and
 * a shape of `ndim` (0 to AG_MAX_DIMS) sizes; ndim 0 is a scalar with one
 * element. Sizes may be 0. They return NULL with an error for a NULL arena,
 * an unknown dtype, ndim out of range, a negative size, an element count or
 * byte size that overflows, or when out of memory. Data is contiguous and
 * row-major. */

/* A tensor of zeros. */
AG_API ag_tensor *ag_zeros(ag_arena *a, ag_dtype dt, int ndim,
                           const int64_t *shape);

/* A tensor of ones. */
AG_API ag_tensor *ag_ones(ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape);

/* A tensor with every element equal to `value`, converted to dt. For AG_I32
 * the value must be an integer in the int32 range; for AG_F32 a finite value
 * must not overflow float (infinities and NaN are kept as they are). */
AG_API ag_tensor *ag_full(ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, double value);

/* A tensor holding a copy of `data`: ag_numel elements of type float
 * (AG_F32), double (AG_F64) or int32_t (AG_I32), row-major. `data` may be
 * NULL only when the shape has no elements. */
AG_API ag_tensor *ag_from_data(ag_arena *a, ag_dtype dt, int ndim,
                               const int64_t *shape, const void *data);

/* A 1-D tensor start, start+step, ... of every value below `stop` (above it
 * when step < 0), as NumPy's arange. Errors: step 0, non-finite bounds, a
 * count over INT64_MAX, a non-integer value for AG_I32. */
AG_API ag_tensor *ag_arange(ag_arena *a, ag_dtype dt, double start, double stop,
                            double step);

/* A random number generator: xoshiro256** (Blackman and Vigna, 2018)
 * seeded through splitmix64. The same seed gives the same integers on
 * every machine. Copy it freely; it has no hidden state. */
typedef struct {
    uint64_t s[4]; /* the state words */
} ag_rng;

/* A generator seeded from `seed`: the four state words are four successive
 * outputs of splitmix64 started at `seed`. */
AG_API ag_rng ag_rng_seed(uint64_t seed);

/* The next 64 random bits. */
AG_API uint64_t ag_rng_next(ag_rng *rng);

/* A uniform double in [0, 1): the top 53 bits of ag_rng_next() times 2^-53. */
AG_API double ag_rng_uniform(ag_rng *rng);

/* A standard normal double, by the Box-Muller transform of two uniforms
 * (u1 in (0, 1], u2 in [0, 1)): sqrt(-2 log u1) * cos(2 pi u2). One normal
 * per two uniforms; nothing is cached in between. */
AG_API double ag_rng_normal(ag_rng *rng);

/* A float tensor of ag_rng_uniform() values scaled to [low, high) (every
 * value is below high, also after rounding to f32). Errors as for ag_zeros,
 * plus a NULL rng, an AG_I32 dtype, high < low, a bound outside the dtype's
 * finite range, or high - low overflowing. */
AG_API ag_tensor *ag_rand(ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, double low, double high,
                          ag_rng *rng);

/* A float tensor of ag_rng_normal() values times `std` plus `mean`. Errors
 * as ag_rand, with std < 0 in place of high < low. */
AG_API ag_tensor *ag_randn(ag_arena *a, ag_dtype dt, int ndim,
                           const int64_t *shape, double mean, double std,
                           ag_rng *rng);

/* ------------------------------------------------------------------ */
/* Looking at tensors                                                  */
/* ------------------------------------------------------------------ */
/* These accept NULL and then return 0, NULL or NaN without a message. */

/* Number of dimensions. */
AG_API int ag_ndim(const ag_tensor *t);

/* The sizes, ag_ndim() of them, owned by the tensor. */
AG_API const int64_t *ag_shape(const ag_tensor *t);

/* Number of elements: the product of the sizes (1 for a scalar). */
AG_API int64_t ag_numel(const ag_tensor *t);

/* The element type. For NULL it returns AG_F32. */
AG_API ag_dtype ag_type(const ag_tensor *t);

/* The contiguous row-major values (float, double or int32_t), owned by the
 * tensor's arena. The caller may change them in place (an optimizer step
 * does), but not between building a graph that uses the tensor and calling
 * ag_backward on it: backward reads the values as they are then. A tensor
 * made by ag_reshape shares the values of its input. */
AG_API void *ag_data(ag_tensor *t);

/* The value of a one-element tensor as a double. For another element count
 * it returns NaN and sets an error. */
AG_API double ag_item(const ag_tensor *t);

/* The name of a dtype: "f32", "f64", "i32" (or "unknown"). */
AG_API const char *ag_dtype_name(ag_dtype dt);

/* PyTorch's default print threshold: a tensor of more elements than this
 * is summarised. */
#define AG_PRINT_THRESHOLD 1000

/* Writes `t` to `f` as PyTorch prints it (print(t): its repr and a
 * newline), with torch's default print options (precision 4, edgeitems 3,
 * linewidth 80) and the given threshold:
 *
 *     tensor([[ 0.1000, -2.0000],
 *             [ 3.0000,  4.0000]])
 *
 * Nested rows, aligned, wrapped at 80 columns; integer mode ("2.") when
 * every finite nonzero value is an integer, scientific notation when the
 * ratio of the largest to the smallest magnitude is over 1000, the largest
 * is over 1e8 or the smallest under 1e-4 (as torch's _Formatter); when t
 * has more than `threshold` elements (PyTorch's default is
 * AG_PRINT_THRESHOLD; a negative threshold never summarises) only the
 * first and last 3 entries of each axis are shown, with "..." between.
 * Suffixes as PyTorch's: ", dtype=torch.float64" and ", dtype=torch.int32"
 * (f32 is the default dtype and has none), ", size=(2, 0)" for an empty
 * tensor that is not 1-d, ", requires_grad=True" for a leaf that requires
 * a gradient, and ", grad_fn=<name>" for a result with recorded history,
 * named by the library's op ("add", "matmul"), not PyTorch's class
 * ("AddBackward0"). Tangents (ag_make_dual) are not shown. The text is
 * made in memory first: on failure nothing is written. Returns 0, or -1:
 * silently for a NULL tensor, as the other functions of this section, and
 * with an error for a NULL f, no memory, or a failed write. */
AG_API int ag_print(const ag_tensor *t, FILE *f, int64_t threshold);

/* The same text without the newline (Python's repr(t)) into buf, as
 * snprintf: at most size - 1 bytes and a terminating 0 (nothing when size
 * is 0; buf may then be NULL). Returns the length of the whole text (when
 * it is >= size, the text was cut), or -1: silently for a NULL tensor, and
 * with an error for a NULL buf of a nonzero size or no memory. */
AG_API int64_t ag_snprint(char *buf, size_t size, const ag_tensor *t,
                          int64_t threshold);

/* ------------------------------------------------------------------ */
/* Autograd                                                            */
/* ------------------------------------------------------------------ */

/* Marks a leaf tensor as a parameter whose gradient ag_backward() should
 * compute (on) or not (off). A leaf is a tensor without recorded history:
 * made by a constructor, by ag_detach, or by an op that recorded nothing.
 * On a recorded op result, `on` changes nothing (it already requires a
 * gradient). It is an error, reported through ag_last_error() with `t`
 * unchanged, to set it on an AG_I32 tensor or to clear it on a recorded op
 * result (use ag_detach). */
AG_API void ag_requires_grad(ag_tensor *t, bool on);

/* Whether `t` requires a gradient: set by ag_requires_grad, or an op result
 * that some input's gradient depends on. */
AG_API bool ag_is_requires_grad(const ag_tensor *t);

/* The gradient of the last loss (or the sum over backward calls, for leaves)
 * with respect to `t`: a tensor of t's shape and dtype in t's arena. NULL
 * until a backward pass reaches t. Leaf gradients accumulate over backward
 * calls until ag_zero_grad(); gradients of op results hold the latest
 * backward pass only. */
AG_API ag_tensor *ag_grad(const ag_tensor *t);

/* Sets the gradient of `t` to zero, if it has one. NULL is ignored. */
AG_API void ag_zero_grad(ag_tensor *t);

/* Clears the gradient of `t` as PyTorch's zero_grad(set_to_none=True):
 * ag_grad(t) returns NULL until the next ag_backward that reaches t. Its
 * buffer is kept for that pass, which writes the new gradient over it
 * without clearing it first, so nothing is allocated; a gradient tensor
 * fetched before therefore holds the new gradient after that pass (and
 * stale values until then), and must not be an input of the graph that pass
 * walks (it would be overwritten while read: use ag_detach for a copy). Faster
 * than ag_zero_grad when the next pass overwrites the gradient anyway. NULL is
 * ignored. */
AG_API void ag_clear_grad(ag_tensor *t);

/* Computes the gradient of the one-element tensor `loss` with respect to
 * every tensor it depends on that requires a gradient, and adds it (+=) to
 * their gradients. The graph is sorted without recursion, so any depth
 * works. Memory for gradients is taken from each tensor's arena, and the
 * sort's working memory from the loss's arena (kept between resets).
 * Returns 0, or -1 with an error for a loss with more than one element, an
 * integer loss, a loss that does not require a gradient, or out of memory
 * (in which case no gradient has changed). It also returns -1 when the
 * backward of a user-defined function or a gradient hook
 * (ag_set_grad_hook) fails, or anomaly detection finds a NaN or infinity
 * (see autograd/tools.h); the pass stops there, and the
 * contributions of the ops already run stay in the gradients (zero them
 * before trying again). For NULL it returns -1 and keeps
 * the earlier message, as ops do, so `ag_backward(expression)` reports the
 * op that failed. A leaf whose requires_grad was cleared after it was used
 * gets no gradient. */
AG_API int ag_backward(ag_tensor *loss);

/* A gradient hook (see ag_set_grad_hook): `t` is the tensor it was set on
 * and `user` the pointer given with it. Returns 0, or non-zero with an
 * error (ag_set_error) to stop the backward pass. */
typedef int (*ag_grad_hook)(ag_tensor *t, void *user);

/* Sets the hook that ag_backward calls when the gradient of `t` is final
 * for the pass: every op of the pass that adds to it has run, so
 * ag_grad(t) holds its whole value (for a leaf, summed with the earlier
 * passes' until ag_zero_grad), and the pass has not reached the ops before
 * t yet. For parameters, the hooks fire about in the reverse order of the
 * layers, while the rest of the pass still runs: this is what lets
 * libautograd-dist start averaging a layer's gradients across processes
 * during the backward pass (autograd/dist.h). The hook runs on the thread
 * of ag_backward, once per pass that reaches t (not at all for a pass that
 * does not, nor from ag_gradients, which leaves ag_grad alone); it may read
 * the gradient and keep a pointer to it, but must not change it or start
 * another walk of a graph (ag_backward from a hook fails). When the hook
 * returns non-zero, ag_backward stops and returns -1 with the hook's error
 * (as for a user-defined function's failing backward). A tensor holds one
 * hook: setting another replaces it, and hook NULL removes it. Costs
 * nothing to a pass whose tensors have none. Returns 0, or -1 and an error
 * for a NULL t or an AG_I32 t (it never has a gradient). */
AG_API int ag_set_grad_hook(ag_tensor *t, ag_grad_hook hook, void *user);

/* Turns recording on or off for this thread and returns the previous mode.
 * While it is off, ops compute values but record nothing and their results
 * do not require gradients (as torch.no_grad). On by default. */
AG_API bool ag_set_grad_enabled(bool on);

/* Whether recording is on for this thread. */
AG_API bool ag_is_grad_enabled(void);

/* A copy of `t` in arena `a` that is a leaf: same values, no history, no
 * gradient required. Returns NULL for NULL input or out of memory. */
AG_API ag_tensor *ag_detach(ag_arena *a, ag_tensor *t);

/* ------------------------------------------------------------------ */
/* Higher order and forward mode (torch.autograd.grad, forward_ad)     */
/* ------------------------------------------------------------------ */

/* d(sum_i <grad_outputs[i], outputs[i]>) / d inputs[j] for every j, as
 * new tensors in arena a: grads[j] has inputs[j]'s dtype and shape, and is
 * zeros where inputs[j] is not reached from the outputs. grad_outputs may
 * be NULL, and so may any entry of it, for an output with one element
 * (seed 1); an entry given must have its output's dtype and shape, and it
 * may itself require a gradient. Without create_graph the fast first-order
 * kernels run and the results are plain tensors. With create_graph every
 * op's derivative is recorded as ops, so the results carry a graph (they
 * require a gradient when anything they depend on does) and can be
 * differentiated again, with ag_gradients or ag_backward, to any order; a
 * user-defined function without a backward in ops is then an error naming
 * it. Only the part of the graph between the outputs and the inputs is
 * walked. Leaves' ag_grad are left untouched, and so are the outputs and
 * inputs. Inputs may be any tensors the outputs were computed from (leaves
 * or op results) and must require a gradient. Returns 0, or -1 with an
 * error and grads[] set to NULL: NULL arguments, n_outputs or n_inputs
 * below 1, an output that does not depend on anything that requires a
 * gradient (or an i32 output), a missing grad_output for an output of more
 * than one element, a grad_output of the wrong dtype or shape, an input
 * that does not require a gradient, a call from inside a backward pass,
 * out of memory, or a failing user-defined backward. */
AG_API int ag_gradients(ag_arena *a, int n_outputs, ag_tensor *const *outputs,
                        ag_tensor *const *grad_outputs, int n_inputs,
                        ag_tensor *const *inputs, bool create_graph,
                        ag_tensor **grads);

/* Forward mode, as torch.autograd.forward_ad (one level): a new tensor in
 * arena a holding a copy of primal's values (a leaf without history that
 * requires no gradient) and carrying a copy of tangent, which must have
 * primal's dtype (f32 or f64) and shape. Every op on a tensor that carries
 * a tangent gives its result a tangent too, in the result's arena, by the
 * op's forward-mode rule (J t, computed as the forward runs, not by a
 * backward pass); the ops that compute tangents carry none of their own.
 * An op with no rule (a user-defined function without a jvp) fails with an
 * error naming it. Returns NULL with an error for NULLs (a NULL primal or
 * tangent keeps a pending message, as ops do), i32 tensors, or a tangent
 * whose dtype or shape differs from primal's. */
AG_API ag_tensor *ag_make_dual(ag_arena *a, ag_tensor *primal,
                               ag_tensor *tangent);

/* The tangent t carries (owned by t's arena), or NULL when it carries
 * none (or t is NULL). */
AG_API ag_tensor *ag_tangent(const ag_tensor *t);

/* ------------------------------------------------------------------ */
/* Errors and threads                                                  */
/* ------------------------------------------------------------------ */

/* The message of the last error on this thread ("" if none), naming the
 * function and the offending shapes, dtypes, axes or values. Owned by the
 * library; valid until the next failing call on this thread. */
AG_API const char *ag_last_error(void);

/* Forgets the last error of this thread. */
AG_API void ag_clear_error(void);

/* Sets this thread's error message to "<func>: <formatted message>", as the
 * library's own functions report theirs: for code built on the library
 * (libautograd-dist, a user's modules) that reports through
 * ag_last_error(). The arguments may include ag_last_error() itself, to
 * wrap the pending message ("rank 1: %s"). A message longer than 511
 * bytes is cut there. */
AG_API void ag_set_error(const char *func, const char *fmt, ...)
    AG_PRINTF(2, 3);

/* Sets how many threads the library uses, 1 or more (capped at 64):
 * matrix products of 2^21 multiply-adds or more and elementwise kernels of
 * 2^16 elements or more (activations, optimizer updates) are split in that
 * many parts, run by the calling thread and n - 1 worker threads that the
 * library starts on first use and keeps (they sleep between jobs and
 * allocate nothing per job). OpenBLAS is set to one thread, so that the
 * parts do not oversubscribe the cores; until this is first called the
 * library runs on the calling thread and leaves OpenBLAS's own threading
 * (OPENBLAS_NUM_THREADS) alone. A result depends on n, never on timing:
 * a thread that finds the workers busy with another thread's job runs the
 * same parts itself. Results with different n agree up to rounding
 * (OpenBLAS rounds a product split in parts differently). Returns 0, or
 * -1 with an error for n < 1. Process-wide. */
AG_API int ag_set_num_threads(int n);

/* The count set by ag_set_num_threads, or OpenBLAS's own thread count
 * before it was first called. */
AG_API int ag_get_num_threads(void);

/* Subnormal floats (f32 below 1.2e-38 in magnitude, f64 below 2.2e-308)
 * on the calling thread, as torch.set_flush_denormal: with on, every
 * float operation of this thread (the library's and the caller's own)
 * reads a subnormal input as zero and stores a result that would be
 * subnormal as zero, with the sign kept (x86: the FTZ and DAZ bits of
 * MXCSR); with off, the IEEE 754 default, gradual underflow, comes back.
 * Intel CPUs take a microcode assist, about a hundred cycles, for each
 * operation that reads or makes a subnormal, so a kernel whose values
 * decay that far (moment estimates, momentum buffers, softmax tails)
 * runs many times slower without it; AMD's recent CPUs pay little. What
 * changes numerically: values smaller than the smallest normal number
 * become 0, so x - y == 0 no longer implies x == y, 1 / x may be infinite
 * for a nonzero x read as zero, and a sum of many tiny terms may lose
 * them. The library's threads run the parts of a job in the mode of the
 * thread that gave it. The optimizers' updates and ag_clip_grad_norm
 * always flush, whatever this says (optim.h), and give the caller's mode
 * back when they return. Returns the previous setting (1 on, 0 off), or
 * -1 with an error when asked for on where the CPU has no such mode (then
 * nothing changes; off always succeeds there). Per thread; a thread
 * started later inherits its creator's setting, as POSIX threads do. */
AG_API int ag_set_flush_denormal(bool on);

/* ------------------------------------------------------------------ */
/* Ops                                                                 */
/* ------------------------------------------------------------------ */
/* Every op takes the arena that will own its result, then its inputs, and
 * returns a new tensor; inputs are never changed. Float ops accept AG_F32 and
 * AG_F64; both inputs of a binary op must have the same float dtype (mixing
 * is an error, not a promotion). When grad mode is on and some input
 * requires a gradient, the result records the op and its inputs for
 * ag_backward; otherwise nothing is recorded. Each op returns NULL with an
 * error for a NULL arena, a wrong dtype, shapes it cannot combine, an axis
 * out of range or out of memory; for a NULL input it returns NULL and keeps
 * the pending message. Axes count from 0; -1 is the last axis; AG_ALL only
 * where an op says so. A result shape whose element count or byte size
 * would overflow is refused before anything is allocated.
 *
 * Sizes of 0 work in every op as in PyTorch: the result is empty or, where
 * the empty dimension is summed over, an empty sum (0 for ag_sum, a matrix
 * product with inner size 0, the bias of ag_linear with no input
 * features), and backward gives every input a gradient of its shape. The
 * mean of no elements is NaN; the maximum and argmax over an empty axis are
 * errors, as in PyTorch. Unlike PyTorch (NaN), ag_softmax_cross_entropy and
 * ag_mse_loss refuse to average over no elements. */

/* Elementwise a + b, a - b, a * b, a / b, with NumPy broadcasting: shapes
 * are aligned at the right and each pair of sizes must be equal or one of
 * them 1. Gradients are summed back to each input's shape. */
AG_API ag_tensor *ag_add(ag_arena *a, ag_tensor *x, ag_tensor *y);
AG_API ag_tensor *ag_sub(ag_arena *a, ag_tensor *x, ag_tensor *y);
AG_API ag_tensor *ag_mul(ag_arena *a, ag_tensor *x, ag_tensor *y);
AG_API ag_tensor *ag_div(ag_arena *a, ag_tensor *x, ag_tensor *y);

/* Elementwise max(x, y) and min(x, y), broadcast as ag_add, as
 * torch.maximum and torch.minimum: NaN if either is NaN; on a tie the
 * gradient is split equally between x and y (PyTorch's rule). */
AG_API ag_tensor *ag_maximum(ag_arena *a, ag_tensor *x, ag_tensor *y);
AG_API ag_tensor *ag_minimum(ag_arena *a, ag_tensor *x, ag_tensor *y);

/* Elementwise cond != 0 ? x : y, as torch.where: cond is AG_I32 (not
 * differentiable), x and y float of one dtype; all three broadcast
 * together as in ag_add. The gradient goes to x where cond is nonzero and
 * to y elsewhere, summed back to each one's shape. Errors: cond not i32,
 * shapes that do not broadcast (all three named). */
AG_API ag_tensor *ag_where(ag_arena *a, ag_tensor *cond, ag_tensor *x,
                           ag_tensor *y);

/* Elementwise -x, e^x, ln x, sqrt x, |x| (the derivative of |x| at 0 is
 * taken as 0). */
AG_API ag_tensor *ag_neg(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_exp(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_log(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_sqrt(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_abs(ag_arena *a, ag_tensor *x);

/* Elementwise x^p for a scalar exponent p (finite). */
AG_API ag_tensor *ag_pow(ag_arena *a, ag_tensor *x, double p);

/* Elementwise s * x and x + s for a finite scalar s. */
AG_API ag_tensor *ag_scale(ag_arena *a, ag_tensor *x, double s);
AG_API ag_tensor *ag_shift(ag_arena *a, ag_tensor *x, double s);

/* Matrix product (..., m, k) @ (..., k, n) -> (..., m, n) through
 * cblas_sgemm / cblas_dgemm. Both inputs need at least 2 dimensions; the
 * batch dimensions (all but the last two) broadcast as in ag_add. Errors:
 * inner dimensions that differ, batch shapes that do not broadcast, a
 * matrix dimension over INT_MAX. */
AG_API ag_tensor *ag_matmul(ag_arena *a, ag_tensor *x, ag_tensor *y);

/* Sum, mean and maximum over `axis` (or over every axis with AG_ALL). With
 * keepdim the reduced axis stays with size 1; without it, it is removed
 * (AG_ALL without keepdim gives a scalar, ndim 0). The mean of no elements
 * is NaN; the maximum of none is an error. The gradient of the maximum goes
 * to the first element that attains it. */
AG_API ag_tensor *ag_sum(ag_arena *a, ag_tensor *x, int axis, bool keepdim);
AG_API ag_tensor *ag_mean(ag_arena *a, ag_tensor *x, int axis, bool keepdim);
AG_API ag_tensor *ag_max(ag_arena *a, ag_tensor *x, int axis, bool keepdim);

/* The minimum over `axis` (or every axis with AG_ALL), as ag_max: its
 * gradient goes to the first element that attains it (the first NaN, if
 * any); the minimum of none is an error. */
AG_API ag_tensor *ag_min(ag_arena *a, ag_tensor *x, int axis, bool keepdim);

/* log sum e^x over `axis` (or every axis with AG_ALL), as torch.logsumexp,
 * computed stably as m + log sum e^(x - m) with m the maximum (so large
 * inputs do not overflow; m is taken as 0 where it is infinite). Over no
 * elements it is -inf. Its gradient is softmax(x) along the axis. */
AG_API ag_tensor *ag_logsumexp(ag_arena *a, ag_tensor *x, int axis,
                               bool keepdim);

/* The variance over `axis` (or every axis with AG_ALL), as torch.var with
 * PyTorch's `correction`: sum (x - mean)^2 / max(0, N - correction), N the
 * number of elements reduced (correction 1: the unbiased estimate, 0: the
 * population variance). A divisor of 0 gives inf or NaN, as in PyTorch. */
AG_API ag_tensor *ag_var(ag_arena *a, ag_tensor *x, int axis, bool keepdim,
                         int correction);

/* The same reductions over several axes at once, as PyTorch's dim=(0, 2):
 * `axes` holds n_axes (1 to ndim) distinct axes, each in [-ndim, ndim)
 * (negative counts from the end); keepdim keeps every reduced axis with
 * size 1. ag_max_axes and ag_min_axes are torch.amax and torch.amin: tied
 * extrema share the gradient equally (ag_max and ag_min, as torch.max and
 * torch.min over a dim, give it all to the first).
 * Errors: n_axes out of range, axes NULL, an axis out of range or given
 * twice (the list is shown), a maximum or minimum of no elements. With one
 * axis each is the one-axis function (but for ties, above). */
AG_API ag_tensor *ag_sum_axes(ag_arena *a, ag_tensor *x, int n_axes,
                              const int *axes, bool keepdim);
AG_API ag_tensor *ag_mean_axes(ag_arena *a, ag_tensor *x, int n_axes,
                               const int *axes, bool keepdim);
AG_API ag_tensor *ag_max_axes(ag_arena *a, ag_tensor *x, int n_axes,
                              const int *axes, bool keepdim);
AG_API ag_tensor *ag_min_axes(ag_arena *a, ag_tensor *x, int n_axes,
                              const int *axes, bool keepdim);
AG_API ag_tensor *ag_logsumexp_axes(ag_arena *a, ag_tensor *x, int n_axes,
                                    const int *axes, bool keepdim);
AG_API ag_tensor *ag_var_axes(ag_arena *a, ag_tensor *x, int n_axes,
                              const int *axes, bool keepdim, int correction);

/* The same values with another shape of the same element count. One size
 * may be -1: it is inferred. The result shares the values of `x` (it stays
 * valid while x's arena is not reset); its gradient is its own. Any dtype,
 * AG_I32 included (labels read as an (N, 1) table become (N) this way). */
AG_API ag_tensor *ag_reshape(ag_arena *a, ag_tensor *x, int ndim,
                             const int64_t *shape);

/* A copy of `x` with dimensions d0 and d1 swapped. */
AG_API ag_tensor *ag_transpose(ag_arena *a, ag_tensor *x, int d0, int d1);

/* x broadcast to `shape` (ndim sizes), as torch.Tensor.expand: x's sizes
 * align with the last ones of shape; each must equal the new size or be 1
 * (stretched); -1 keeps x's size; new leading axes may be added (their
 * size may not be -1). The result is a copy; its gradient sums over the
 * stretched axes. Errors name both shapes. */
AG_API ag_tensor *ag_expand(ag_arena *a, ag_tensor *x, int ndim,
                            const int64_t *shape);

/* x[..., start:stop:step, ...] along `axis`, as Python and PyTorch
 * slicing: a negative start or stop counts from the end, bounds out of
 * range are clipped to [0, len] (INT64_MIN and INT64_MAX are open ends),
 * and an empty range gives size 0 along the axis. step must be >= 1. A
 * copy; the gradient is g at the taken indices and 0 elsewhere. */
AG_API ag_tensor *ag_slice(ag_arena *a, ag_tensor *x, int axis, int64_t start,
                           int64_t stop, int64_t step);

/* The n >= 1 tensors xs[0..n-1] joined along `axis`, as torch.cat: one
 * float dtype, the same ndim, and the same sizes except along axis. Any
 * number of inputs (the result records them all); each gets its part of
 * the gradient. Errors name the first tensor that does not match. */
AG_API ag_tensor *ag_concat(ag_arena *a, int n, ag_tensor *const *xs, int axis);

/* The n >= 1 tensors xs[0..n-1], all of one shape, stacked along a new axis
 * `axis` (in [-(ndim + 1), ndim], as torch.stack): a concat of the inputs
 * each with a size-1 axis inserted there. */
AG_API ag_tensor *ag_stack(ag_arena *a, int n, ag_tensor *const *xs, int axis);

/* x with its axes reordered, as torch.permute: the result's axis d is x's
 * axis dims[d] (ndim entries, negative counting from the end, a
 * permutation of x's axes; anything else is an error showing dims). A
 * copy. */
AG_API ag_tensor *ag_permute(ag_arena *a, ag_tensor *x, const int *dims);

/* The slices x[..., index[k], ...] along `axis`, k = 0..K-1, as
 * torch.index_select: index is an AG_I32 tensor (K) of values in [0,
 * x's size along axis), not differentiable; the result has K along axis.
 * Repeated indices add up in the gradient. Errors: index not i32 or not
 * 1-D, an index out of range (its position, value and the bound). */
AG_API ag_tensor *ag_index_select(ag_arena *a, ag_tensor *x, int axis,
                                  ag_tensor *index);

/* torch.gather: y[p] = x[p with p[axis] = index[p]] for every position p
 * of index, an AG_I32 tensor with x's ndim whose sizes are at most x's
 * except along axis (any size there); the result has index's shape.
 * Errors: index not i32, shapes that do not fit (both shown), an index
 * out of [0, x's size along axis) (its position as a multi-index, value
 * and bound). Its gradient is a scatter-add into x's shape, itself
 * differentiable to any order. */
AG_API ag_tensor *ag_gather(ag_arena *a, ag_tensor *x, int axis,
                            ag_tensor *index);

/* Rows of an embedding table, as torch.nn.functional.embedding: weight
 * (V,C) float, ids AG_I32 of any shape with values in [0, V); the result
 * has ids' shape + (C). The gradient of weight adds up the rows' gradients
 * (repeated ids add). Errors: weight not 2-D, ids not i32, an id out of
 * range (its position, value and V). */
AG_API ag_tensor *ag_embedding(ag_arena *a, ag_tensor *weight, ag_tensor *ids);

/* x converted to dt (AG_F32 or AG_F64), differentiable both ways: the
 * gradient (and the tangent) is converted back. A cast to x's own dtype is
 * a copy. Lets f32 code be checked with ag_gradcheck on f64 copies. */
AG_API ag_tensor *ag_cast(ag_arena *a, ag_tensor *x, ag_dtype dt);

/* Elementwise activations: 1 / (1 + e^-x), tanh x, max(x, 0) (the
 * derivative of ReLU at 0 is taken as 0). */
AG_API ag_tensor *ag_sigmoid(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_tanh(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_relu(ag_arena *a, ag_tensor *x);

/* GELU with the exact normal CDF, x * (1 + erf(x / sqrt 2)) / 2, as
 * PyTorch's nn.GELU() computes it by default. */
AG_API ag_tensor *ag_gelu(ag_arena *a, ag_tensor *x);

/* Leaky ReLU: x for x > 0, slope * x otherwise (PyTorch's default slope is
 * 0.01). `slope` must be finite. */
AG_API ag_tensor *ag_leaky_relu(ag_arena *a, ag_tensor *x, double slope);

/* Elementwise sin x and cos x. */
AG_API ag_tensor *ag_sin(ag_arena *a, ag_tensor *x);
AG_API ag_tensor *ag_cos(ag_arena *a, ag_tensor *x);

/* SiLU (swish), x * sigmoid(x), as torch.nn.functional.silu. */
AG_API ag_tensor *ag_silu(ag_arena *a, ag_tensor *x);

/* Softplus, log(1 + e^x), as torch.nn.functional.softplus with its defaults
 * (beta 1, threshold 20): above 20 the result is x itself and its
 * derivative 1. */
AG_API ag_tensor *ag_softplus(ag_arena *a, ag_tensor *x);

/* Elementwise min(max(x, lo), hi), as torch.clamp (lo > hi gives hi
 * everywhere; NaN stays NaN). Either bound may be infinite (a one-sided
 * clamp); a NaN bound is an error. The gradient is 1 where lo <= x <= hi,
 * the bounds included, and 0 elsewhere, as PyTorch's. */
AG_API ag_tensor *ag_clamp(ag_arena *a, ag_tensor *x, double lo, double hi);

/* Inverted dropout: each element is zeroed with probability p and the
 * others are scaled by 1 / (1 - p), so the expected value is unchanged.
 * The mask is drawn from `rng` (which advances) and kept for backward.
 * p = 0 returns a copy; p must be in [0, 1) and `rng` not NULL. */
AG_API ag_tensor *ag_dropout(ag_arena *a, ag_tensor *x, double p, ag_rng *rng);

/* y = x @ weight^T + bias, the affine map of a PyTorch nn.Linear, in one
 * op: x is (..., in), weight (out, in), bias (out) or NULL for none; the
 * result is (..., out). The product runs in one BLAS call with the
 * transpose passed as a flag, and the bias is added in the same pass. */
AG_API ag_tensor *ag_linear(ag_arena *a, ag_tensor *x, ag_tensor *weight,
                            ag_tensor *bias);

/* The index of the largest element along `axis` (the first one on ties; NaN
 * counts as largest), as an AG_I32 tensor with that axis removed. Not
 * differentiable: the result never requires a gradient. Errors: an empty
 * axis, a non-float input. */
AG_API ag_tensor *ag_argmax(ag_arena *a, ag_tensor *x, int axis);

/* softmax(x)_i = e^(x_i - m) / sum_j e^(x_j - m) and
 * log_softmax(x)_i = x_i - m - log sum_j e^(x_j - m) along `axis`, with m the
 * maximum along the axis, so that large inputs do not overflow. */
AG_API ag_tensor *ag_softmax(ag_arena *a, ag_tensor *x, int axis);
AG_API ag_tensor *ag_log_softmax(ag_arena *a, ag_tensor *x, int axis);

/* Mean over the N rows of -log softmax(logits)[i, targets[i]], computed in
 * one fused, stable pass; a scalar. `logits` is a float (N, C) tensor and
 * `targets` an AG_I32 (N) tensor of classes in [0, C). Its gradient with
 * respect to the logits is (softmax(logits) - onehot(targets)) / N. Errors:
 * logits not 2-D, targets not an AG_I32 tensor of shape (N), a target out
 * of [0, C), N = 0. The targets are copied: changing them afterwards does
 * not change the gradient. */
AG_API ag_tensor *ag_softmax_cross_entropy(ag_arena *a, ag_tensor *logits,
                                           ag_tensor *targets);

/* Mean of (pred - target)^2 over every element; a scalar. Both must have
 * the same shape and float dtype and at least one element. */
AG_API ag_tensor *ag_mse_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target);

/* ---- normalisation (PyTorch's F.layer_norm, F.rms_norm, F.batch_norm) ----
 * Each returns a new tensor of x's shape and dtype in arena a. weight and
 * bias may be NULL (no scale, no shift); given, they must have x's dtype.
 * Errors (NULL, nothing written): x not f32/f64, a weight, bias or running
 * statistic of the wrong shape or dtype, eps negative or not finite, and
 * those of each function below; a NULL x keeps the pending message. */

/* Layer norm over the last `normalized_ndim` axes of x (1 to ag_ndim(x)):
 * with mu and var the mean and biased variance of each such group,
 * y = (x - mu) / sqrt(var + eps) * weight + bias; weight and bias have the
 * shape of those last axes. */
AG_API ag_tensor *ag_layer_norm(ag_arena *a, ag_tensor *x, int normalized_ndim,
                                ag_tensor *weight, ag_tensor *bias, double eps);

/* RMS norm over the last `normalized_ndim` axes (as PyTorch 2's
 * F.rms_norm): y = x / sqrt(mean(x^2) + eps) * weight, the mean over those
 * axes; weight has their shape. */
AG_API ag_tensor *ag_rms_norm(ag_arena *a, ag_tensor *x, int normalized_ndim,
                              ag_tensor *weight, double eps);

/* Batch norm of x (N,C,...) per channel c, over the N and trailing axes:
 * y = (x - mu_c) / sqrt(var_c + eps) * weight_c + bias_c; weight, bias,
 * running_mean and running_var are (C) tensors. In training, mu and var are
 * the batch's mean and biased variance, and when running_mean and
 * running_var are given they are updated in place, after the result is
 * made: running = (1 - momentum) running + momentum batch, the batch
 * variance then unbiased (times n / (n - 1), n = values per channel; an
 * empty batch leaves them unchanged). In eval (training false) the running
 * statistics are used and must be given. They never get gradients or
 * tangents. Errors also: x with fewer than 2 axes, only one of the running
 * statistics given, momentum not finite, one value per channel in training
 * (as PyTorch). */
AG_API ag_tensor *ag_batch_norm(ag_arena *a, ag_tensor *x,
                                ag_tensor *running_mean, ag_tensor *running_var,
                                ag_tensor *weight, ag_tensor *bias,
                                bool training, double momentum, double eps);

/* ---- losses: a scalar tensor of the input's dtype in arena a ---- */

/* Options of ag_cross_entropy. Targets equal to ignore_index contribute
 * nothing and are not counted (PyTorch's default is -100; any value that
 * is not a class ignores nothing). label_smoothing e in [0, 1]. */
typedef struct {
    int32_t ignore_index;   /* the target value that counts for nothing */
    double label_smoothing; /* e in [0, 1] */
} ag_cross_entropy_options;

/* PyTorch's F.cross_entropy (reduction 'mean', no class weights): logits
 * (N,C) or (N,C,d...), targets AG_I32 (N) or (N,d...); with logp =
 * log_softmax over axis 1, the mean over the targets t not equal to
 * ignore_index of (1 - e) (-logp[t]) + e mean_c(-logp[c]). NULL options:
 * no ignored class, no smoothing. The targets are copied. Errors: logits
 * with fewer than 2 axes, targets not AG_I32 of the shape above, a target
 * out of [0, C) that is not ignore_index (naming its position, value and
 * C), label_smoothing out of [0, 1], and no target to average over (an
 * empty batch, or every target ignore_index: PyTorch's NaN is refused, as
 * for ag_softmax_cross_entropy, since it would poison every parameter it
 * reaches). */
AG_API ag_tensor *ag_cross_entropy(ag_arena *a, ag_tensor *logits,
                                   ag_tensor *targets,
                                   const ag_cross_entropy_options *o);

/* Mean over every element of max(x, 0) - x t + log(1 + e^-|x|), the binary
 * cross-entropy of sigmoid(logits) x against targets t in [0, 1], in a form
 * that never overflows. Both inputs are differentiable (dt = -x / n). */
AG_API ag_tensor *ag_binary_cross_entropy_with_logits(ag_arena *a,
                                                      ag_tensor *logits,
                                                      ag_tensor *targets);

/* Mean of |pred - target|; its gradient is sign(pred - target) / n, 0 where
 * they are equal (as PyTorch). */
AG_API ag_tensor *ag_l1_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target);

/* PyTorch's huber_loss: the mean, with d = pred - target, of d^2 / 2 where
 * |d| < delta and delta (|d| - delta / 2) elsewhere; delta finite and > 0. */
AG_API ag_tensor *ag_huber_loss(ag_arena *a, ag_tensor *pred, ag_tensor *target,
                                double delta);

/* ag_binary_cross_entropy_with_logits, ag_l1_loss and ag_huber_loss take
 * two tensors of one float dtype and one shape with at least one element
 * (PyTorch's NaN of no elements is refused, as for ag_mse_loss). */
/* Convolution options, as the keyword arguments of PyTorch's F.conv2d:
 * stride, padding (zeros added on both sides) and dilation per spatial
 * axis (height, width), and groups. A NULL pointer, or a field of 0, reads
 * as stride 1, padding 0, dilation 1, groups 1. Negative values are errors. */
typedef struct {
    int64_t stride[2];   /* per spatial axis (height, width); 0 reads as 1 */
    int64_t padding[2];  /* zeros added on both sides of each axis */
    int64_t dilation[2]; /* 0 reads as 1 */
    int64_t groups;      /* 0 reads as 1 */
} ag_conv_options;

/* 2-D convolution (cross-correlation), as F.conv2d: x (N,C,H,W), weight
 * (O,C/groups,kH,kW), bias (O) or NULL; the result is (N,O,OH,OW), a new
 * tensor in a, with OH = (H + 2 padding[0] - dilation[0] (kH - 1) - 1) /
 * stride[0] + 1 (OW likewise). The input's channels are split into
 * `groups` groups, each convolved with O/groups filters. It runs as BLAS
 * products on the columns of x (ag_unfold), which the result keeps in its
 * arena for the backward; it is differentiable to any order and carries
 * tangents. Errors (naming the function and the values): x or weight not
 * 4-D, groups that do not divide C and O, a weight whose second size is
 * not C/groups, a bias not (O), negative stride, padding, dilation or
 * groups, a kernel larger than the padded input, no output channels (as
 * PyTorch), mixed dtypes. */
AG_API ag_tensor *ag_conv2d(ag_arena *a, ag_tensor *x, ag_tensor *weight,
                            ag_tensor *bias, const ag_conv_options *o);

/* 1-D convolution, as F.conv1d: x (N,C,L), weight (O,C/groups,k), bias (O)
 * or NULL; the result is (N,O,Lout), a new tensor in a. Index [0] of each pair
 * of the options applies (the rest is ignored). Computed as ag_conv2d on a
 * height of 1; the same errors, for 3-D shapes. */
AG_API ag_tensor *ag_conv1d(ag_arena *a, ag_tensor *x, ag_tensor *weight,
                            ag_tensor *bias, const ag_conv_options *o);

/* The sliding blocks of x (N,C,H,W) as columns, as F.unfold (im2col): the
 * result, a new tensor in a, is (N, C kH kW, L) with L = OH OW the blocks (OH,
 * OW as in ag_conv2d), row (c kH + i) kW + j of column oh OW + ow holding x[n,
 * c, oh stride - padding + i dilation, ...] (0 in the padding). o's groups must
 * be 0 or 1. ag_fold is its adjoint: it adds each column entry back into the
 * pixel it came from, as F.fold, giving (N, C, height, width) from cols (N, C
 * kH kW, L), where L must be the block count of that size. Both are linear,
 * differentiable to any order. Errors: wrong ranks, a kernel larger than the
 * padded input, a second size of cols that is not a multiple of kH kW, a block
 * count that does not match. */
AG_API ag_tensor *ag_unfold(ag_arena *a, ag_tensor *x, int64_t kernel_h,
                            int64_t kernel_w, const ag_conv_options *o);
AG_API ag_tensor *ag_fold(ag_arena *a, ag_tensor *cols, int64_t height,
                          int64_t width, int64_t kernel_h, int64_t kernel_w,
                          const ag_conv_options *o);

/* 2-D max and average pooling of x (N,C,H,W) over kernel x kernel windows,
 * as F.max_pool2d and F.avg_pool2d in floor mode: the result, a new
 * tensor in a, is (N,C,OH,OW), OH = (H + 2 padding - kernel) / stride + 1 (OW
 * likewise). stride 0 means stride = kernel (PyTorch's default). Max pooling
 * reads the padding as -inf and sends the gradient to the first maximum of each
 * window (a NaN counts as largest); average pooling divides by kernel^2,
 * padding included (count_include_pad). Errors: x not 4-D, kernel < 1,
 * negative stride or padding, padding over kernel / 2, a kernel larger
 * than the padded input, no channels (as PyTorch). */
AG_API ag_tensor *ag_max_pool2d(ag_arena *a, ag_tensor *x, int64_t kernel,
                                int64_t stride, int64_t padding);
AG_API ag_tensor *ag_avg_pool2d(ag_arena *a, ag_tensor *x, int64_t kernel,
                                int64_t stride, int64_t padding);
/* Scaled dot-product attention, as PyTorch 2's
 * F.scaled_dot_product_attention with a float attn_mask:
 *   softmax(q k^T / sqrt(E) + mask) v
 * over the last two axes, for q (...,T,E), k (...,S,E) and v (...,S,Ev)
 * whose batch axes (all but the last two) broadcast together; the result,
 * a new tensor in a, is (batch...,T,Ev). `mask` is additive (-INFINITY
 * hides a key), of q's dtype, broadcastable to the scores' shape
 * (batch...,T,S), or NULL for none. `causal` also hides every key s > t
 * (PyTorch's is_causal: torch.ones(T,S).tril(), aligned top-left when
 * T != S). A query row whose every score is hidden gives a zero output row
 * and zero gradients (PyTorch gives NaN); a NaN score gives NaN. q, k, v
 * and the mask are all differentiable, to any order. One fused op: its
 * forward and ag_backward compute the (T,S) scores in blocks, with an
 * online softmax, and never hold them whole (ag_gradients with
 * create_graph, and forward mode, build them in ops). PyTorch 2 refuses a
 * mask together with is_causal; here both apply. Errors:
 * inputs of fewer than 2 dimensions, E of q and k differ, S of k and v
 * differ, E = 0, batch axes that do not broadcast, a mask that does not
 * broadcast to (batch...,T,S), dtypes that differ or are not float. A
 * NULL q, k or v returns NULL and keeps the pending error; a NULL mask
 * means no mask. */
AG_API ag_tensor *ag_scaled_dot_product_attention(ag_arena *a, ag_tensor *q,
                                                  ag_tensor *k, ag_tensor *v,
                                                  ag_tensor *mask, bool causal);

/* ------------------------------------------------------------------ */
/* The op table                                                        */
/* ------------------------------------------------------------------ */

/* Number of ops in the op table. */
AG_API int ag_op_count(void);

/* The name of op `i` (0 <= i < ag_op_count()), for example "matmul";
 * NULL when out of range. */
AG_API const char *ag_op_name(int i);

/* The name of the op that made `t`, or "leaf" for a tensor without recorded
 * history (made by a constructor, while grad mode was off, or by an op none
 * of whose inputs required a gradient); NULL for NULL. */
AG_API const char *ag_tensor_op_name(const ag_tensor *t);

#ifdef __cplusplus
}
#endif

/* The layers above the core, each in its own header. */
#include "autograd/io.h"
#include "autograd/nn.h"
#include "autograd/optim.h"
#include "autograd/sample.h"
#include "autograd/text.h"
#include "autograd/tools.h"

#endif /* AUTOGRAD_H */
