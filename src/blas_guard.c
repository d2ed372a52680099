/* BLAS calls go through here (see blas_guard.h). */
#include <cblas.h>

#include "blas_guard.h"

bool ra__blas_is_serial(void)
{
    return openblas_get_parallel() == 0; /* 0 sequential, 1 pthreads, 2 OpenMP */
}

static void sgemm_loops(bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int k = 0; k < K; k++)
                acc += A[(long)i * lda + k] * (trans_b ? B[(long)j * ldb + k] : B[(long)k * ldb + j]);
            float *c = &C[(long)i * ldc + j];
            *c = alpha * acc + (beta == 0.0f ? 0.0f : beta * *c);
        }
}

void ra__sgemm(bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (!ra__blas_is_serial()) {
        sgemm_loops(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
}
