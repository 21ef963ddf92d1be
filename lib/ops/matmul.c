/* matmul.c: (..., m, k) @ (..., k, n) -> (..., m, n) through OpenBLAS, with
 * broadcast batch dimensions. Shapes: x is (m,k), y is (k,n), z is (m,n) per
 * batch. Transposes in the backward are BLAS flags, and gradients are
 * accumulated by BLAS itself (beta = 1), never through a temporary. */
#include "../internal.h"

#include <cblas.h>

void ag__gemm(ag_dtype dt, bool trans_a, bool trans_b, int64_t m, int64_t n,
                 int64_t k, const void *A, const void *B, double beta, void *C)
{
    if (m == 0 || n == 0 || k == 0) return; /* callers clear C when k = 0 */
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
    blasint lda = (blasint)(trans_a ? m : k), ldb = (blasint)(trans_b ? k : n);
    if (dt == AG_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k,
                    1.0f, A, lda, B, ldb, (float)beta, C, (blasint)n);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k,
                    1.0, A, lda, B, ldb, beta, C, (blasint)n);
}

enum { FORWARD, GRAD_X, GRAD_Y };

/* Runs one step of the product for every batch: the forward z = x y, or
 * the gradient dx += dz y^T, or dy += x^T dz. A broadcast batch of x or y
 * receives the sum of its gradients through repeated beta = 1 calls. */
static void matmul_batches(ag_tensor *out, int step)
{
    ag_tensor *x = out->inputs[0], *y = out->inputs[1];
    int64_t m = x->shape[x->ndim - 2], k = x->shape[x->ndim - 1];
    int64_t n = y->shape[y->ndim - 1];
    size_t elem = ag__dtype_size(out->dtype);
    ag_bcast it;
    ag__bcast_init(&it, x, y, 2, m * k, k * n, out->ndim - 2, out->shape);
    for (int64_t r = 0; r < it.rows; r++, ag__bcast_next(&it)) {
        for (int64_t j = 0; j < it.row_len; j++) {
            size_t xo = (size_t)(it.offset[0] + j * it.row_stride[0]) * elem;
            size_t yo = (size_t)(it.offset[1] + j * it.row_stride[1]) * elem;
            size_t zo = (size_t)((r * it.row_len + j) * m * n) * elem;
            switch (step) {
            case FORWARD: /* z = x @ y */
                ag__gemm(out->dtype, false, false, m, n, k, (char *)x->data + xo,
                     (char *)y->data + yo, 0.0, (char *)out->data + zo);
                break;
            case GRAD_X: /* dx += dz @ y^T: (m,n) @ (n,k) */
                ag__gemm(out->dtype, false, true, m, k, n,
                     (char *)out->grad->data + zo, (char *)y->data + yo, 1.0,
                     (char *)x->grad->data + xo);
                break;
            case GRAD_Y: /* dy += x^T @ dz: (k,m) @ (m,n) */
                ag__gemm(out->dtype, true, false, k, n, m, (char *)x->data + xo,
                     (char *)out->grad->data + zo, 1.0,
                     (char *)y->grad->data + yo);
                break;
            }
        }
    }
}

static int matmul_forward(ag_tensor *out)
{
    const ag_tensor *x = out->inputs[0];
    if (x->shape[x->ndim - 1] == 0) /* an empty sum: every z is 0 */
        memset(out->data, 0, ag__tensor_bytes(out));
    else
        matmul_batches(out, FORWARD);
    return 0;
}

static int matmul_backward(ag_tensor *out)
{
    if (out->inputs[0]->requires_grad) matmul_batches(out, GRAD_X);
    if (out->inputs[1]->requires_grad) matmul_batches(out, GRAD_Y);
    return 0;
}

ag_tensor *ag_matmul(ag_arena *a, ag_tensor *x, ag_tensor *y)
{
    const char *func = "ag_matmul";
    ag_tensor *inputs[2] = {x, y};
    if (ag__check_float_inputs(func, a, 2, inputs)) return NULL;
    char bx[AG_SHAPE_STR_MAX], by[AG_SHAPE_STR_MAX];
    ag__shape_str(bx, x->ndim, x->shape);
    ag__shape_str(by, y->ndim, y->shape);
    if (x->ndim < 2 || y->ndim < 2) {
        ag__error(func, "both inputs need at least 2 dimensions: %s @ %s", bx,
                  by);
        return NULL;
    }
    int64_t m = x->shape[x->ndim - 2], k = x->shape[x->ndim - 1];
    int64_t n = y->shape[y->ndim - 1];
    if (y->shape[y->ndim - 2] != k) {
        ag__error(func, "inner dimensions differ: %s @ %s", bx, by);
        return NULL;
    }
    if (m > INT_MAX || k > INT_MAX || n > INT_MAX) {
        ag__error(func,
                  "a matrix dimension of %s @ %s exceeds the BLAS limit "
                  "%d",
                  bx, by, INT_MAX);
        return NULL;
    }
    int ndim;
    int64_t shape[AG_MAX_DIMS];
    if (ag__broadcast_shape(func, x, y, 2, &ndim, shape)) return NULL;
    shape[ndim++] = m;
    shape[ndim++] = n;
    return ag__apply(func, a, &ag__op_matmul, inputs, x->dtype, ndim, shape,
                     NULL);
}

/* The op-table entries: {name, arity, view, kind, forward, backward}. */
/* clang-format off */
const ag_op ag__op_matmul =
    {"matmul", 2, false, 0, matmul_forward, matmul_backward};
/* clang-format on */
