/* internal.h: what the library's files share and users never see: the
 * tensor and op structs, the op table, arena allocation, error reporting and
 * the float-type dispatch that lets each kernel be written once for f32 and
 * f64. */
#ifndef AG_INTERNAL_H
#define AG_INTERNAL_H

#include "autograd.h"

#include <stddef.h>
#include <string.h>

/* One entry of the op table (contract v2; lib/ops/README.md says how to
 * add one). Each family of ops (one file of lib/ops/) defines:
 *
 *   params:  a struct of its typed parameters (an axis and keepdim, a pow
 *            exponent...), params_size bytes, copied by ag__apply into the
 *            result's arena and read back with AG_PARAMS(out, type);
 *   saved:   a struct of the named state its derivatives need (the argmax
 *            of max, dropout's mask...), saved_size bytes, zeroed by
 *            ag__apply in the result's arena before forward fills it, read
 *            with AG_SAVED(out, type);
 *   forward: computes out's values from out->inputs (out's data is already
 *            allocated, except for view ops);
 *   backward: the fast first-order VJP: adds out->grad's contribution to the
 *            gradients of those inputs that require one (their buffers
 *            exist; it gets each through ag__grad_begin or
 *            ag__grad_accumulate, below);
 *   vjp:     the same derivative written in differentiable ops, used when a
 *            graph of the gradient is asked for (ag_gradients with
 *            create_graph): given out and its gradient g (a tensor that may
 *            carry a graph), sets dx[i] to input i's contribution, a tensor
 *            of input i's shape made in arena a, for each i with want[i]
 *            (NULL: no contribution), and leaves the others NULL;
 *   jvp:     the forward-mode rule: given the tangents of out's inputs
 *            (NULL: zero), sets *t_out to out's tangent, a tensor of out's
 *            shape made in arena a (NULL: zero). Runs with forward mode
 *            suspended, so the ops it calls carry no tangents themselves.
 *
 * All return 0, or -1 with an error. Inputs whose bit is set in
 * nondiff_inputs (indices, targets) never get gradients or tangents. A
 * user-defined function's per-call entry (tools/function.c) has no
 * forward: ag_function_apply runs the user's. */
typedef struct ag_op {
    const char *name;
    int arity; /* inputs, or AG_VARIADIC: as many as the call gives */
    bool view; /* the result shares its input's data instead of owning some */
    int kind;  /* which op of its family, for kernels that serve several */
    unsigned nondiff_inputs; /* bit i: input i is not differentiable */
    size_t params_size, saved_size;
    int (*forward)(ag_tensor *out);
    int (*backward)(ag_tensor *out);
    int (*vjp)(ag_arena *a, ag_tensor *out, ag_tensor *g, const bool *want,
               ag_tensor **dx);
    int (*jvp)(ag_arena *a, ag_tensor *out, ag_tensor *const *tx,
               ag_tensor **t_out);
} ag_op;

#define AG_VARIADIC (-1)

/* The family's parameter and saved-state structs of an op result. */
#define AG_PARAMS(out, type) ((const type *)(out)->params)
#define AG_SAVED(out, type) ((type *)(out)->saved)

struct ag_tensor {
    ag_dtype dtype;
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    int64_t numel;
    void *data;
    ag_arena *arena;
    ag_tensor *grad;
    ag_tensor *spare_grad; /* the buffer ag_clear_grad took from grad */
    ag_tensor *tangent;    /* forward mode: the tangent carried, or NULL */
    bool requires_grad;
    bool grad_unwritten; /* during ag_backward: grad is logically zero, its
                            bytes not cleared (see ag__grad_begin) */
    unsigned char mark;  /* graph traversal state, 0 outside a traversal */
    const ag_op *op;     /* NULL for a leaf */
    int n_inputs;
    ag_tensor **inputs; /* n_inputs of them, in the result's arena */
    void *params;       /* the op family's parameters (AG_PARAMS) */
    void *saved;        /* the op family's saved state (AG_SAVED) */
    ag_grad_hook grad_hook; /* called when its gradient is final in an
                               ag_backward pass (ag_set_grad_hook), or NULL */
    void *grad_hook_user;
};

/* ---- the heap (alloc.c) ---- */

/* The library's malloc, calloc, realloc and free: every heap allocation of
 * the library goes through these (the arenas' blocks included), so that
 * tests can make any one of them fail. They behave as the C functions,
 * except when a failure was planned with ag__fail_allocation. ag__free is
 * free, so memory from either side may be freed by the other. */
void *ag__malloc(size_t size);
void *ag__calloc(size_t count, size_t size);
void *ag__realloc(void *p, size_t size);
void ag__free(void *p);

/* Counts one allocation for a C library call that allocates on its own
 * (newlocale), and says whether it is the one planned to fail: the caller
 * then reports it as out of memory without making the call. */
bool ag__alloc_fails(void);

/* Test hooks, per thread. ag__fail_allocation(n) makes the n-th allocation
 * of this thread from now fail, once; n = 0 cancels any planned failure.
 * ag__fail_allocations_from(n) makes the n-th and every later one fail,
 * until ag__fail_allocation(0). ag__allocation_count() is the number of
 * allocations this thread has attempted so far (failed ones included), so
 * that a test can learn how many a call makes. */
void ag__fail_allocation(long n);
void ag__fail_allocations_from(long n);
long ag__allocation_count(void);

/* ---- arena (arena.c) ---- */

/* `size` bytes aligned to `align` (a power of two up to 64), or NULL. */
void *ag__arena_alloc(ag_arena *a, size_t size, size_t align);

/* A growable array of tensor pointers owned by the arena and kept across
 * resets: the working memory of ag_backward. Index 0 or 1 picks one of two.
 * Returns the array with room for at least `count` pointers, or NULL. */
ag_tensor **ag__arena_scratch(ag_arena *a, int which, size_t count);

/* ---- errors (context.c) ---- */

/* Sets this thread's error message: "<func>: <formatted message>". */
void ag__error(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reports a NULL input of func: keeps the pending message (the one that
 * explains where the NULL came from) or, when there is none, says that input
 * `index` is NULL. Returns -1. */
int ag__null_input(const char *func, int index);

/* Element i (row-major) of t as a double (exact for every dtype). */
double ag__element(const ag_tensor *t, int64_t i);

/* Writes "(d0,d1,...)" into buf, of AG_SHAPE_STR_MAX bytes, and returns
 * buf. */
#define AG_SHAPE_STR_MAX 192
const char *ag__shape_str(char *buf, int ndim, const int64_t *shape);

/* ---- tensors (tensor.c) ---- */

/* Size in bytes of one element of dt (0 for an unknown dtype). */
size_t ag__dtype_size(ag_dtype dt);

/* Checks that ndim is in [0, AG_MAX_DIMS] and that shape is given when
 * ndim > 0; reports errors as func. */
int ag__check_ndim(const char *func, int ndim, const int64_t *shape);

/* Checks a shape (ag__check_ndim, then sizes >= 0 whose product fits) and
 * computes its element count; reports errors as func. */
int ag__check_shape(const char *func, int ndim, const int64_t *shape,
                    int64_t *numel);

/* Checks that a tensor of dtype dt and this shape can exist: a known dtype,
 * a valid shape (ag__check_shape) and a byte size that fits both size_t and
 * int64_t; sets *numel and *bytes. Reports errors as func. Nothing is
 * allocated, so callers check every tensor they will make before making
 * the first. */
int ag__check_size(const char *func, ag_dtype dt, int ndim,
                   const int64_t *shape, int64_t *numel, size_t *bytes);

/* A tensor of the given dtype and shape in `a` whose data is uninitialised
 * (or absent when with_data is false); reports errors as func. */
ag_tensor *ag__tensor_new(const char *func, ag_arena *a, ag_dtype dt, int ndim,
                          const int64_t *shape, bool with_data);

/* Checks the common preconditions of a float op on `n` inputs: a
 * non-NULL arena, non-NULL inputs (NULL input: return -1 silently), float
 * dtypes, and one dtype for all. */
int ag__check_float_inputs(const char *func, ag_arena *a, int n,
                           ag_tensor *const *inputs);

/* The same checks, with any dtype allowed when float_only is false (one
 * dtype for all still). */
int ag__check_inputs(const char *func, ag_arena *a, int n,
                     ag_tensor *const *inputs, bool float_only);

/* Normalises an axis of x in [-ndim, ndim) to [0, ndim), or reports it
 * with x's shape. */
int ag__normalize_axis(const char *func, int axis, const ag_tensor *x,
                       int *out);

/* ---- random numbers (random.c) ---- */

/* Fills the float tensor t with offset + scale * draw(rng), kept below
 * `bound` after rounding to t's dtype (INFINITY: no bound). */
void ag__fill_random(ag_tensor *t, double offset, double scale, double bound,
                     double (*draw)(ag_rng *), ag_rng *rng);

/* ---- graph (graph.c) ---- */

/* Runs `op` on n inputs (op->arity of them unless the op is variadic):
 * allocates the result (dtype and shape given) in `a`, copies params
 * (op->params_size bytes; NULL: zeros) and zeroed saved state there,
 * records it (ag__record), calls the op's forward, carries tangents
 * (ag__forward_tangent) and finishes the result (ag__finish). Returns the
 * result or NULL with an error reported as func. */
ag_tensor *ag__apply(const char *func, ag_arena *a, const ag_op *op, int n,
                     ag_tensor *const *inputs, ag_dtype dt, int ndim,
                     const int64_t *shape, const void *params);

/* Sets out's op and its n inputs (which its forward reads; the array is
 * copied into out's arena), and makes out require a gradient when grad
 * mode is on and some differentiable input requires one. Returns 0, or -1
 * with an error reported as func (out of memory). */
int ag__record(const char *func, ag_tensor *out, const ag_op *op, int n,
               ag_tensor *const *inputs);

/* Finishes an op result after its forward: in anomaly mode checks its
 * values (ag__anomaly_forward, reported as func); unless it requires a
 * gradient, forgets its op, inputs and saved state, so that it is a leaf
 * (its tangent, made before, stays). Returns 0, or -1 with an error. */
int ag__finish(const char *func, ag_tensor *out);

/* Forward mode: when some differentiable input of out carries a tangent
 * (and forward mode is not suspended on this thread), runs the op's jvp
 * and gives out the tangent, checked for out's dtype and shape. An op
 * without a jvp is an error naming it. Returns 0 or -1. */
int ag__forward_tangent(const char *func, ag_tensor *out);

/* Whether input i of out is differentiable (a float input whose bit in
 * nondiff_inputs is clear). */
static inline bool ag__differentiable(const ag_tensor *out, int i)
{
    return !(i < 32 && (out->op->nondiff_inputs >> i & 1u)) &&
           out->inputs[i]->dtype != AG_I32;
}

/* Puts in *order every tensor that the n roots depend on, inputs before
 * the tensors made from them, the roots among the last: through every
 * recorded input when all_inputs is true, else only through inputs that
 * require a gradient. The array is the scratch memory of the first root's
 * arena (valid until the next traversal there). Every listed tensor is
 * left with a non-zero mark that the caller must set back to 0. Returns
 * the count, or -1 when out of memory (no error set; all marks cleared). */
int64_t ag__topological_order(int n, ag_tensor *const *roots, bool all_inputs,
                              ag_tensor ***order);

/* Gradient buffers during ag_backward. The buffers the pass makes, and
 * those of op results (which start every pass from zero), begin it
 * "unwritten": logically zero, their bytes not cleared. The first op to
 * contribute to such a buffer stores its contribution instead of adding
 * it, which saves clearing the buffer and reading it back; buffers left
 * unwritten are cleared when the pass ends, and an op whose own gradient
 * is still unwritten then is skipped (its contribution is zero). An op's
 * backward gets the buffer of input x in one of two ways: */

/* For an op that writes every element of x's gradient: returns the buffer
 * and sets *assign when it is unwritten (the op stores, "="), else clears
 * it (the op adds, "+="). The buffer counts as written from then on. */
void *ag__grad_begin(ag_tensor *x, bool *assign);

/* For any other op: returns the buffer to add into, cleared first when it
 * was unwritten. */
void *ag__grad_accumulate(ag_tensor *x);

/* dx[i] = expr when assign, dx[i] += expr otherwise, for i in [0, n): two
 * loops, so that each one vectorizes. `expr` reads the index as i. */
#define AG_GRAD_LOOP(assign, n, dx, expr)                                      \
    do {                                                                       \
        if (assign)                                                            \
            for (int64_t i = 0; i < (n); i++) (dx)[i] = (expr);                \
        else                                                                   \
            for (int64_t i = 0; i < (n); i++) (dx)[i] += (expr);               \
    } while (0)

/* c ? a : b for float or double values, with a and b both evaluated: a
 * kernel loop written with it becomes a vector select, where `c ? g[i] : 0`
 * would keep a branch around the read of g[i]. */
static inline float ag__select_f(bool c, float a, float b)
{
    return c ? a : b;
}
static inline double ag__select_d(bool c, double a, double b)
{
    return c ? a : b;
}
#define AG_SELECT(c, a, b)                                                     \
    _Generic((a), float : ag__select_f, default : ag__select_d)(c, a, b)

/* Returns 0, or -1 with an error reported as func when this thread is
 * inside ag_backward (a user-defined function's backward must not start
 * another walk of a graph). */
int ag__refuse_in_backward(const char *func);

/* ---- anomaly detection (tools/anomaly.c) ---- */

/* Checks a float op result for NaN and infinity after its forward; the
 * first one found is reported as func ("anomaly in forward of op ...")
 * with the op's input shapes. Returns 0, or -1 with the error. */
int ag__anomaly_forward(const char *func, const ag_tensor *out);

/* Checks the gradients of out's inputs that require one, after out's op
 * ran its backward; reports the first NaN or infinity as ag_backward's
 * error naming the op, the input and the element. Returns 0 or -1. */
int ag__anomaly_backward(const ag_tensor *out);

/* ---- elementwise fronts (ops/unary.c) ---- */

/* The parameters of the elementwise ops of one tensor: the exponent of
 * pow, the factor of scale, the shift of shift, the slope of leaky ReLU. */
typedef struct {
    double scalar;
} ag_scalar_params;

/* Checks x, then applies the elementwise op (same shape and dtype as x)
 * with ag_scalar_params {scalar}, which must be finite. */
ag_tensor *ag__unary(const char *func, const ag_op *op, ag_arena *a,
                     ag_tensor *x, double scalar);

/* ---- parameter sets (nn/params.c) ---- */

/* A set that may hold i32 tensors too (module buffers and state, such as
 * BatchNorm's num_batches_tracked), and adding to it; errors as
 * ag_params_new and ag_params_add. ag_params_extend into such a set takes
 * i32 tensors as well. */
ag_params *ag__params_new_any(ag_arena *a);
int ag__params_add_any(ag_params *p, const char *name, ag_tensor *t);

/* The type a module was made with (NULL for NULL): how the library's
 * entry points for one kind of module (ag_nn_lstm_forward) tell theirs
 * from a user's. */
const ag_module_type *ag__module_type(const ag_module *m);

/* ---- pieces of derivative rules (ops/compose.c) ---- */

/* Whether x has this shape. */
bool ag__same_shape(const ag_tensor *x, int ndim, const int64_t *shape);

/* g summed over the axes along which a tensor of `shape` was broadcast
 * to g's shape (leading axes, and axes where shape has 1), reshaped to
 * `shape`; g itself when the shapes agree. Differentiable (sum, reshape).
 * NULL stays NULL. */
ag_tensor *ag__sum_to(ag_arena *a, ag_tensor *g, int ndim,
                      const int64_t *shape);

/* t broadcast to `shape` (ag_expand), or t itself when it has that shape.
 * NULL stays NULL. */
ag_tensor *ag__expand_to(ag_arena *a, ag_tensor *t, int ndim,
                         const int64_t *shape);

/* x + y, x - y and x * y with NULL read as zero: NULL only when the
 * result is zero (both NULL, or a factor NULL) or the op failed. Rules
 * combine tangents with them, and a rule's final result is NULL only on
 * failure, since a rule runs only when some tangent is present. */
ag_tensor *ag__add_or(ag_arena *a, ag_tensor *x, ag_tensor *y);
ag_tensor *ag__sub_or(ag_arena *a, ag_tensor *x, ag_tensor *y);
ag_tensor *ag__mul_or(ag_arena *a, ag_tensor *x, ag_tensor *y);

/* A tensor without history of like's dtype and shape, values unset, in a:
 * the masks and one-hot selections that derivative rules multiply by. */
ag_tensor *ag__constant(ag_arena *a, const ag_tensor *like);

/* In a vjp or jvp rule: evaluates an assignment of an op's result and
 * returns -1 from the rule when it is NULL (the op's error is set). */
#define AG_TRY(assignment)                                                     \
    do {                                                                       \
        if (!(assignment)) return -1;                                          \
    } while (0)

/* ---- the adjoint of indexing (ops/index.c) ---- */

/* gather's adjoint, recorded (so that it is differentiable): zeros of
 * `shape` (ndim axes, those of gather's x) with g[p] added at p with
 * p[axis] replaced by index[p]; index is AG_I32 of g's shape, values
 * checked. NULL stays NULL. */
ag_tensor *ag__gather_backward(ag_arena *a, ag_tensor *g, int axis,
                               ag_tensor *index, int ndim,
                               const int64_t *shape);

/* An AG_I32 tensor of like's shape whose value at [o,k,i] (around axis)
 * is values[k], or start + k * step when values is NULL: the index that
 * makes index_select and slice gathers, for their VJPs. */
ag_tensor *ag__axis_index(ag_arena *a, const ag_tensor *like, int axis,
                          const int32_t *values, int64_t start, int64_t step);

/* ---- threads (parallel.c) ---- */

/* The most threads the library runs (ag_set_num_threads caps at it). */
#define AG_MAX_THREADS 64

/* One part of a job split over threads: part in [0, parts). */
typedef void ag_parallel_fn(void *arg, int part, int parts);

/* Runs fn(arg, part, parts) for every part, on the calling thread and the
 * workers ag_set_num_threads asked for, and returns when all are done.
 * parts is capped by that thread count (so fn may see fewer parts, or one)
 * and depends on nothing else: when the workers are busy with another
 * thread's job, the caller runs the same parts itself, one by one.
 * Allocates nothing once the workers run. */
void ag__parallel(int parts, ag_parallel_fn *fn, void *arg);

/* Part `part` of [0, n) split in `parts` chunks whose sizes are multiples
 * of `align` (except the last): [*lo, *hi), possibly empty. */
void ag__part_range(int64_t n, int64_t align, int part, int parts, int64_t *lo,
                    int64_t *hi);

/* A kernel over elements [lo, hi) of its work. */
typedef void ag_range_fn(void *arg, int64_t lo, int64_t hi);

/* Elementwise work of fewer elements runs on the calling thread: below it,
 * waking a worker costs more than the work. */
#define AG_PARALLEL_MIN_ELEMENTS ((int64_t)1 << 16)

/* Runs fn over [0, n) in one call, or split in ranges over the threads
 * (ag__parallel) when n >= AG_PARALLEL_MIN_ELEMENTS. */
void ag__parallel_for(int64_t n, ag_range_fn *fn, void *arg);

/* ---- matrix products (ops/matmul.c) ---- */

/* C = op(A) op(B) + beta C for row-major matrices of dtype dt, with op a
 * transpose when trans_a / trans_b: op(A) is (m,k), op(B) (k,n), C (m,n).
 * Does nothing when m, n or k is 0. */
void ag__gemm(ag_dtype dt, bool trans_a, bool trans_b, int64_t m, int64_t n,
              int64_t k, const void *A, const void *B, double beta, void *C);

/* op(x) @ op(y) as the op matmul, op a transpose of the last two axes
 * when ta / tb: the derivative rules' products, whose transposes are BLAS
 * flags rather than copies. Errors are reported as ag_matmul. */
ag_tensor *ag__matmul_t(ag_arena *a, ag_tensor *x, ag_tensor *y, bool ta,
                        bool tb);

/* ---- broadcasting (ops/binary.c) ---- */

/* The NumPy broadcast of x's and y's shapes, leaving out their last `skip`
 * dimensions (2 for matmul's batch dimensions). Reports errors as func. */
int ag__broadcast_shape(const char *func, const ag_tensor *x,
                        const ag_tensor *y, int skip, int *ndim,
                        int64_t *shape);

/* Walks a broadcast shape row by row (a row is the last dimension after
 * merging dimensions that both inputs step through evenly), giving for each
 * row the element offsets of x and y and their stride along the row (0 for a
 * broadcast input). For rows r = 0 .. rows-1: use offset[], then call
 * ag__bcast_next. */
typedef struct {
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    int64_t stride[2][AG_MAX_DIMS];
    int64_t index[AG_MAX_DIMS];
    int64_t offset[2];
    int64_t rows, row_len, row_stride[2];
} ag_bcast;

/* Starts the walk over `shape` (ndim dimensions, the broadcast of x and y
 * without their last `skip` dimensions); one step of x or y in that shape is
 * unit_x or unit_y elements. */
void ag__bcast_init(ag_bcast *it, const ag_tensor *x, const ag_tensor *y,
                    int skip, int64_t unit_x, int64_t unit_y, int ndim,
                    const int64_t *shape);
void ag__bcast_next(ag_bcast *it);

/* Element strides of t's first t->ndim - skip dimensions (each step counted
 * in units of `unit` elements) as seen through a broadcast shape of ndim
 * dimensions: 0 where t has size 1 or lacks the dimension. */
void ag__broadcast_strides(const ag_tensor *t, int skip, int64_t unit, int ndim,
                           int64_t *strides);

/* ---- the op table (ops/op_table.c and the op files) ---- */

extern const ag_op *const ag__op_table[];
extern const int ag__op_table_size;

extern const ag_op ag__op_add, ag__op_sub, ag__op_mul, ag__op_div;
extern const ag_op ag__op_neg, ag__op_exp, ag__op_log, ag__op_sqrt, ag__op_abs,
    ag__op_pow, ag__op_scale, ag__op_shift;
extern const ag_op ag__op_matmul;
extern const ag_op ag__op_sum, ag__op_mean, ag__op_max;
extern const ag_op ag__op_reshape, ag__op_transpose, ag__op_expand;
extern const ag_op ag__op_sigmoid, ag__op_tanh, ag__op_relu, ag__op_gelu,
    ag__op_leaky_relu, ag__op_gelu_derivative, ag__op_dropout;
extern const ag_op ag__op_linear, ag__op_linear_no_bias;
extern const ag_op ag__op_softmax, ag__op_log_softmax;
extern const ag_op ag__op_softmax_cross_entropy, ag__op_mse_loss;
extern const ag_op ag__op_cast;
extern const ag_op ag__op_layer_norm, ag__op_rms_norm, ag__op_batch_norm,
    ag__op_batch_norm_eval, ag__op_cross_entropy,
    ag__op_binary_cross_entropy_with_logits, ag__op_l1_loss, ag__op_huber_loss;
extern const ag_op ag__op_conv2d, ag__op_unfold, ag__op_fold, ag__op_max_pool2d,
    ag__op_avg_pool2d;
extern const ag_op ag__op_sin, ag__op_cos, ag__op_silu, ag__op_softplus,
    ag__op_clamp, ag__op_maximum, ag__op_minimum, ag__op_where, ag__op_min,
    ag__op_logsumexp, ag__op_var, ag__op_slice, ag__op_concat, ag__op_permute,
    ag__op_index_select, ag__op_gather, ag__op_gather_backward;
extern const ag_op ag__op_scaled_dot_product_attention;

/* ---- float dispatch ---- */

/* Runs the statements that follow once with `real` defined as float or
 * double, according to dt. Kernel files include <tgmath.h>, so exp(x)
 * is expf for floats and exp for doubles. Usage:
 *     AG_DISPATCH_FLOAT(t->dtype, { const real *x = t->data; ... }) */
#define AG_DISPATCH_FLOAT(dt, ...)                                             \
    do {                                                                       \
        if ((dt) == AG_F32) {                                                  \
            typedef float real;                                                \
            __VA_ARGS__                                                        \
        } else {                                                               \
            typedef double real;                                               \
            __VA_ARGS__                                                        \
        }                                                                      \
    } while (0)

/* Compiles a hot elementwise kernel twice, for AVX2 and for the
 * baseline x86-64, and picks one when the library loads (GCC's and
 * clang's function multiversioning); elsewhere a plain function. Not FMA:
 * a fused multiply-add rounds once, so results would differ by CPU. Each
 * AG_KERNEL function needs a name of its own in the whole library, static
 * or not: clang 14 makes its resolver (NAME.resolver) a global symbol, so
 * two static kernels of one name in two files fail to link. */
#if defined(__SANITIZE_THREAD__)
#define AG_NO_KERNEL_CLONES 1 /* TSan crashes in the resolvers run at load */
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AG_NO_KERNEL_CLONES 1
#endif
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(AG_NO_KERNEL_CLONES)
#define AG_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define AG_KERNEL
#endif

/* Bytes of t's values. */
static inline size_t ag__tensor_bytes(const ag_tensor *t)
{
    return (size_t)t->numel * ag__dtype_size(t->dtype);
}

/* Splits a tensor's shape around `axis` as (outer, len, inner). */
static inline void ag__split_axis(const ag_tensor *t, int axis, int64_t *outer,
                                  int64_t *len, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++) *outer *= t->shape[d];
    for (int d = axis + 1; d < t->ndim; d++) *inner *= t->shape[d];
    *len = t->shape[axis];
}

#endif /* AG_INTERNAL_H */
