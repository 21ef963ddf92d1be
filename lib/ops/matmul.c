/* matmul.c: (..., m, k) @ (..., k, n) -> (..., m, n) through OpenBLAS, with
 * broadcast batch dimensions. Shapes: x is (m,k), y is (k,n), z is (m,n) per
 * batch. Transposes in the backward are BLAS flags, and gradients are
 * accumulated by BLAS itself (beta = 1), never through a temporary. */
#include "../internal.h"

#include <cblas.h>

/* Products with at most this many multiply-adds are computed here: for
 * them the call into BLAS (argument checks, buffer locks, packing) costs
 * more than the arithmetic. */
#define SMALL_GEMM_MAX 1024

/* C = op(A) op(B) + beta C (beta 0 or 1) by loops: row i of C gathers
 * A(i,p) * row p of op(B), so the inner loop runs along C's row. */
static void small_gemm(ag_dtype dt, bool trans_a, bool trans_b, int64_t m,
                       int64_t n, int64_t k, const void *A, const void *B,
                       double beta, void *C)
{
    int64_t a_row = trans_a ? 1 : k, a_col = trans_a ? m : 1;
    int64_t b_row = trans_b ? 1 : n, b_col = trans_b ? k : 1;
    AG_DISPATCH_FLOAT(dt, {
        const real *a = A, *b = B;
        real *c = C;
        for (int64_t i = 0; i < m; i++) {
            real *restrict ci = c + i * n;
            if (beta == 0)
                for (int64_t j = 0; j < n; j++) ci[j] = 0;
            for (int64_t p = 0; p < k; p++) {
                real aip = a[i * a_row + p * a_col];
                const real *restrict bp = b + p * b_row;
                for (int64_t j = 0; j < n; j++) ci[j] += aip * bp[j * b_col];
            }
        }
    });
}

/* C = op(A) op(B) + beta C through BLAS, with leading dimensions given. */
static void blas_gemm(ag_dtype dt, bool trans_a, bool trans_b, int64_t m,
                      int64_t n, int64_t k, const void *A, int64_t lda,
                      const void *B, int64_t ldb, double beta, void *C,
                      int64_t ldc)
{
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    if (dt == AG_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k,
                    1.0f, A, (blasint)lda, B, (blasint)ldb, (float)beta, C,
                    (blasint)ldc);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k,
                    1.0, A, (blasint)lda, B, (blasint)ldb, beta, C,
                    (blasint)ldc);
}

/* Products with at least this many multiply-adds are split over the
 * library's threads (waking a worker costs some microseconds). */
#define PARALLEL_GEMM_MIN ((int64_t)1 << 21)

typedef struct {
    ag_dtype dt;
    bool trans_a, trans_b, split_columns;
    int64_t m, n, k;
    const void *A, *B;
    double beta;
    void *C;
} gemm_job;

/* One thread's share of a product: a block of C's rows (and A's), or of
 * C's columns (and B's), whichever operand is larger is the one split, so
 * that no thread packs more of it than its share. */
static void gemm_part(void *arg, int part, int parts)
{
    const gemm_job *j = arg;
    size_t elem = ag__dtype_size(j->dt);
    int64_t lda = j->trans_a ? j->m : j->k, ldb = j->trans_b ? j->k : j->n;
    int64_t lo, hi;
    const char *A = j->A, *B = j->B;
    char *C = j->C;
    if (j->split_columns) {
        ag__part_range(j->n, 16, part, parts, &lo, &hi);
        B += (size_t)(j->trans_b ? lo * ldb : lo) * elem;
        C += (size_t)lo * elem;
        if (hi > lo)
            blas_gemm(j->dt, j->trans_a, j->trans_b, j->m, hi - lo, j->k, A,
                      lda, B, ldb, j->beta, C, j->n);
    } else {
        ag__part_range(j->m, 16, part, parts, &lo, &hi);
        A += (size_t)(j->trans_a ? lo : lo * lda) * elem;
        C += (size_t)(lo * j->n) * elem;
        if (hi > lo)
            blas_gemm(j->dt, j->trans_a, j->trans_b, hi - lo, j->n, j->k, A,
                      lda, B, ldb, j->beta, C, j->n);
    }
}

void ag__gemm(ag_dtype dt, bool trans_a, bool trans_b, int64_t m, int64_t n,
              int64_t k, const void *A, const void *B, double beta, void *C)
{
    if (m == 0 || n == 0) return;
    if (k == 0) { /* an empty sum: C = beta C */
        if (beta == 0) memset(C, 0, (size_t)(m * n) * ag__dtype_size(dt));
        return;
    }
    if (m * n * k <= SMALL_GEMM_MAX) {
        small_gemm(dt, trans_a, trans_b, m, n, k, A, B, beta, C);
        return;
    }
    gemm_job job = {dt, trans_a, trans_b, n > m, m, n, k, A, B, beta, C};
    if (m * n * k >= PARALLEL_GEMM_MIN)
        ag__parallel(AG_MAX_THREADS, gemm_part, &job);
    else
        gemm_part(&job, 0, 1);
}

enum { FORWARD, GRAD_X, GRAD_Y };

/* Runs one step of the product for every batch: the forward z = x y, or
 * the gradient dx (+)= dz y^T, or dy (+)= x^T dz, into `target` (out's
 * data or the input's gradient buffer) with `beta` 0 (store) or 1 (add). A
 * broadcast batch of x or y receives the sum of its gradients through
 * repeated beta = 1 calls. */
static void matmul_batches(ag_tensor *out, int step, void *target, double beta)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    int64_t m = x->shape[x->ndim - 2], k = x->shape[x->ndim - 1];
    int64_t n = y->shape[y->ndim - 1];
    size_t elem = ag__dtype_size(out->dtype);
    char *dz = out->grad ? out->grad->data : NULL, *t = target;
    ag_bcast it;
    ag__bcast_init(&it, x, y, 2, m * k, k * n, out->ndim - 2, out->shape);
    for (int64_t r = 0; r < it.rows; r++, ag__bcast_next(&it)) {
        for (int64_t j = 0; j < it.row_len; j++) {
            size_t xo = (size_t)(it.offset[0] + j * it.row_stride[0]) * elem;
            size_t yo = (size_t)(it.offset[1] + j * it.row_stride[1]) * elem;
            size_t zo = (size_t)((r * it.row_len + j) * m * n) * elem;
            const char *xb = (char *)x->data + xo, *yb = (char *)y->data + yo;
            switch (step) {
            case FORWARD: /* z = x @ y */
                ag__gemm(out->dtype, false, false, m, n, k, xb, yb, 0.0,
                         t + zo);
                break;
            case GRAD_X: /* dx (+)= dz @ y^T: (m,n) @ (n,k) */
                ag__gemm(out->dtype, false, true, m, k, n, dz + zo, yb, beta,
                         t + xo);
                break;
            case GRAD_Y: /* dy (+)= x^T @ dz: (k,m) @ (m,n) */
                ag__gemm(out->dtype, true, false, k, n, m, xb, dz + zo, beta,
                         t + yo);
                break;
            }
        }
    }
}

static int matmul_forward(ag_tensor *out)
{
    matmul_batches(out, FORWARD, out->data, 0.0);
    return 0;
}

/* The product of t's batch dimensions (all but the last two). */
static int64_t batch_count(const ag_tensor *t)
{
    int64_t count = 1;
    for (int d = 0; d < t->ndim - 2; d++) count *= t->shape[d];
    return count;
}

/* The gradient of input `which` (0: x, 1: y): stored into an unwritten
 * buffer when each of its batches meets one batch of out, else added. */
static void matmul_grad(ag_tensor *out, int which)
{
    ag_tensor *in = out->inputs[which];
    bool set = false;
    void *d = batch_count(in) == batch_count(out) ? ag__grad_begin(in, &set)
                                                  : ag__grad_accumulate(in);
    matmul_batches(out, which ? GRAD_Y : GRAD_X, d, set ? 0.0 : 1.0);
}

static int matmul_backward(ag_tensor *out)
{
    if (out->inputs[0]->requires_grad) matmul_grad(out, 0);
    if (out->inputs[1]->requires_grad) matmul_grad(out, 1);
    return 0;
}

/* The same in ops, each summed back over broadcast batch dimensions:
 *   dx = g @ y^T     dy = x^T @ g     tz = tx @ y + x @ ty */
static int matmul_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    if (want[0])
        AG_TRY(dx[0] =
                   ag__sum_to(a, ag_matmul(a, g, ag_transpose(a, y, -1, -2)),
                              x->ndim, x->shape));
    if (want[1])
        AG_TRY(dx[1] =
                   ag__sum_to(a, ag_matmul(a, ag_transpose(a, x, -1, -2), g),
                              y->ndim, y->shape));
    return 0;
}

static int matmul_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *t,
                      ag_tensor **tz)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    ag_tensor *r = ag__add_or(a, t[0] ? ag_matmul(a, t[0], y) : NULL,
                              t[1] ? ag_matmul(a, x, t[1]) : NULL);
    AG_TRY(*tz = ag__expand_to(a, r, out->ndim, out->shape));
    return 0;
}

ag_tensor *ag_matmul(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    const char *func = "ag_matmul";
    ag_tensor *inputs[2] = {x, y};
    if (ag__check_float_inputs(func, a, 2, inputs)) return NULL;
    char bx[AG_SHAPE_STR_MAX], by[AG_SHAPE_STR_MAX];
#define SHAPES                                                                 \
    ag__shape_str(bx, x->ndim, x->shape), ag__shape_str(by, y->ndim, y->shape)
    if (x->ndim < 2 || y->ndim < 2) {
        ag__error(func, "both inputs need at least 2 dimensions: %s @ %s",
                  SHAPES);
        return NULL;
    }
    int64_t m = x->shape[x->ndim - 2], k = x->shape[x->ndim - 1];
    int64_t n = y->shape[y->ndim - 1];
    if (y->shape[y->ndim - 2] != k) {
        ag__error(func, "inner dimensions differ: %s @ %s", SHAPES);
        return NULL;
    }
    if (m > INT_MAX || k > INT_MAX || n > INT_MAX) {
        ag__error(func,
                  "a matrix dimension of %s @ %s exceeds the BLAS limit %d",
                  SHAPES, INT_MAX);
        return NULL;
    }
#undef SHAPES
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    if (ag__broadcast_shape(func, x, y, 2, &ndim, shape)) return NULL;
    shape[ndim++] = m;
    shape[ndim++] = n;
    return ag__apply(func, a, &ag__op_matmul, 2, inputs, x->dtype, ndim, shape,
                     NULL);
}

/* The op-table entry. */
const ag_op ag__op_matmul = {.name = "matmul",
                             .arity = 2,
                             .forward = matmul_forward,
                             .backward = matmul_backward,
                             .vjp = matmul_vjp,
                             .jvp = matmul_jvp};
