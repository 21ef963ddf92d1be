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
#if defined(__GNUC__) || defined(__clang__)
#define AG_API __attribute__((visibility("default")))
#define AG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define AG_API
#define AG_PRINTF(fmt, args)
#endif

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

typedef struct ag_arena ag_arena;
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
    uint64_t s[4];
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

/* Writes the shape, dtype and values of `t` (at most `max_values` of them,
 * then "..."; all of them when max_values is negative) to `f` in a readable
 * form. Returns 0, or -1: silently for a NULL tensor, as the other functions
 * of this section, and with an error for a NULL f. */
AG_API int ag_print(const ag_tensor *t, FILE *f, int64_t max_values);

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
 * backward of a user-defined function fails or anomaly detection finds a
 * NaN or infinity (see autograd/tools.h); the pass stops there, and the
 * contributions of the ops already run stay in the gradients (zero them
 * before trying again). For NULL it returns -1 and keeps
 * the earlier message, as ops do, so `ag_backward(expression)` reports the
 * op that failed. A leaf whose requires_grad was cleared after it was used
 * gets no gradient. */
AG_API int ag_backward(ag_tensor *loss);

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
/* Errors and threads                                                  */
/* ------------------------------------------------------------------ */

/* The message of the last error on this thread ("" if none), naming the
 * function and the offending shapes, dtypes, axes or values. Owned by the
 * library; valid until the next failing call on this thread. */
AG_API const char *ag_last_error(void);

/* Forgets the last error of this thread. */
AG_API void ag_clear_error(void);

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

/* The same values with another shape of the same element count. One size
 * may be -1: it is inferred. The result shares the values of `x` (it stays
 * valid while x's arena is not reset); its gradient is its own. Any dtype,
 * AG_I32 included (labels read as an (N, 1) table become (N) this way). */
AG_API ag_tensor *ag_reshape(ag_arena *a, ag_tensor *x, int ndim,
                             const int64_t *shape);

/* A copy of `x` with dimensions d0 and d1 swapped. */
AG_API ag_tensor *ag_transpose(ag_arena *a, ag_tensor *x, int d0, int d1);

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
#include "autograd/tools.h"

#endif /* AUTOGRAD_H */
