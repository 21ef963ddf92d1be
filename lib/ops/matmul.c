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

/* Whether each operand is read transposed: z = op(x) op(y), op(x) (m,k)
 * and op(y) (k,n) per batch. The public ag_matmul transposes neither; the
 * derivative rules in ops use the flags, so that their products take a
 * transpose as a BLAS flag instead of a copied ag_transpose. */
typedef struct {
    bool ta, tb;
} matmul_params;

/* The sizes of op(x) (m,k) and op(y) (k,n). */
static void matmul_sizes(const ag_tensor *x, const ag_tensor *y,
                         const matmul_params *p, int64_t *m, int64_t *k,
                         int64_t *n, int64_t *k_of_y)
{
    int64_t x0 = x->shape[x->ndim - 2], x1 = x->shape[x->ndim - 1];
    int64_t y0 = y->shape[y->ndim - 2], y1 = y->shape[y->ndim - 1];
    *m = p->ta ? x1 : x0;
    *k = p->ta ? x0 : x1;
    *k_of_y = p->tb ? y1 : y0;
    *n = p->tb ? y0 : y1;
}

/* Runs one step of the product for every batch: the forward z = op(x)
 * op(y), or the gradient of x or y, into `target` (out's data or the
 * input's gradient buffer) with `beta` 0 (store) or 1 (add). With op(x)
 * and op(y) as above:
 *   d op(x) = dz op(y)^T:  dx = dz op(y)^T       (x not transposed)
 *                          dx = op(y) dz^T       (x transposed)
 *   d op(y) = op(x)^T dz:  dy = op(x)^T dz       (y not transposed)
 *                          dy = dz^T op(x)       (y transposed)
 * each one BLAS call whose transposes are flags. A broadcast batch of x or
 * y receives the sum of its gradients through repeated beta = 1 calls. */
static void matmul_batches(ag_tensor *out, int step, void *target, double beta)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    const matmul_params *p = AG_PARAMS(out, matmul_params);
    bool ta = p->ta, tb = p->tb;
    int64_t m, k, n, ky;
    matmul_sizes(x, y, p, &m, &k, &n, &ky);
    size_t elem = ag__dtype_size(out->dtype);
    char *dz = out->grad ? out->grad->data : NULL, *t = target;
    ag_dtype dt = out->dtype;
    ag_bcast it;
    ag__bcast_init(&it, x, y, 2, m * k, k * n, out->ndim - 2, out->shape);
    for (int64_t r = 0; r < it.rows; r++, ag__bcast_next(&it)) {
        for (int64_t j = 0; j < it.row_len; j++) {
            size_t xo = (size_t)(it.offset[0] + j * it.row_stride[0]) * elem;
            size_t yo = (size_t)(it.offset[1] + j * it.row_stride[1]) * elem;
            size_t zo = (size_t)((r * it.row_len + j) * m * n) * elem;
            const char *xb = (char *)x->data + xo, *yb = (char *)y->data + yo;
            const char *g = dz ? dz + zo : NULL; /* backward only */
            switch (step) {
            case FORWARD:
                ag__gemm(dt, ta, tb, m, n, k, xb, yb, 0.0, t + zo);
                break;
            case GRAD_X:
                if (!ta) /* (m,n) @ op(y)^T (n,k) */
                    ag__gemm(dt, false, !tb, m, k, n, g, yb, beta, t + xo);
                else /* op(y) (k,n) @ dz^T (n,m) */
                    ag__gemm(dt, tb, true, k, m, n, yb, g, beta, t + xo);
                break;
            case GRAD_Y:
                if (!tb) /* op(x)^T (k,m) @ dz (m,n) */
                    ag__gemm(dt, !ta, false, k, n, m, xb, g, beta, t + yo);
                else /* dz^T (n,m) @ op(x) (m,k) */
                    ag__gemm(dt, true, ta, n, k, m, g, xb, beta, t + yo);
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

/* The same in ops, by the flags of matmul_batches (so no transpose is
 * copied), each summed back over broadcast batch dimensions; the JVP is
 * the product rule, tz = op(tx) op(y) + op(x) op(ty). */
static int matmul_vjp(ag_arena *a, ag_tensor *out, ag_tensor *g,
                      const bool *want, ag_tensor **dx)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    const matmul_params *p = AG_PARAMS(out, matmul_params);
    if (want[0])
        AG_TRY(dx[0] = ag__sum_to(a,
                                  p->ta ? ag__matmul_t(a, y, g, p->tb, true)
                                        : ag__matmul_t(a, g, y, false, !p->tb),
                                  x->ndim, x->shape));
    if (want[1])
        AG_TRY(dx[1] = ag__sum_to(a,
                                  p->tb ? ag__matmul_t(a, g, x, true, p->ta)
                                        : ag__matmul_t(a, x, g, !p->ta, false),
                                  y->ndim, y->shape));
    return 0;
}

static int matmul_jvp(ag_arena *a, ag_tensor *out, ag_tensor *const *t,
                      ag_tensor **tz)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    const matmul_params *p = AG_PARAMS(out, matmul_params);
    ag_tensor *r =
        ag__add_or(a, t[0] ? ag__matmul_t(a, t[0], y, p->ta, p->tb) : NULL,
                   t[1] ? ag__matmul_t(a, x, t[1], p->ta, p->tb) : NULL);
    AG_TRY(*tz = ag__expand_to(a, r, out->ndim, out->shape));
    return 0;
}

/* op(x) @ op(y), checked and recorded; reports errors as func. */
static ag_tensor *matmul(const char *func, ag_arena *a, ag_tensor *x,
                         ag_tensor *y, bool ta, bool tb)
{
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
    matmul_params p = {ta, tb};
    int64_t m, k, n, ky;
    matmul_sizes(x, y, &p, &m, &k, &n, &ky);
    if (ky != k) {
        ag__shape_str(bx, x->ndim, x->shape);
        ag__shape_str(by, y->ndim, y->shape);
        ag__error(func, "inner dimensions differ: %s%s @ %s%s", bx,
                  ta ? "^T" : "", by, tb ? "^T" : "");
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
                     &p);
}

ag_tensor *ag_matmul(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    return matmul("ag_matmul", a, x, y, false, false);
}

ag_tensor *ag__matmul_t(ag_arena *a, ag_tensor *x, ag_tensor *y, bool ta,
                        bool tb)
{
    return matmul("ag_matmul", a, x, y, ta, tb);
}

/* The op-table entry. */
const ag_op ag__op_matmul = {.name = "matmul",
                             .arity = 2,
                             .params_size = sizeof(matmul_params),
                             .forward = matmul_forward,
                             .backward = matmul_backward,
                             .vjp = matmul_vjp,
                             .jvp = matmul_jvp};
