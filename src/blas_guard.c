/* BLAS calls go through here (see blas_guard.h). */
#include <cblas.h>
#include <pthread.h>

#include "blas_guard.h"

/* Debian's serial OpenBLAS is built without USE_LOCKING: its buffer pool is not reentrant, and
 * two concurrent calls can share a buffer and return wrong results. So our calls into it take
 * turns. Only the BLAS kernel and the reference functions ever take this lock. */
static pthread_mutex_t serial_blas = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

/* A fork while another thread holds the lock would leave it locked forever in the child: the
 * fork waits for the BLAS call in flight, and both sides release the lock after it. */
static void lock_before_fork(void)
{
    pthread_mutex_lock(&serial_blas);
}

static void unlock_after_fork(void)
{
    pthread_mutex_unlock(&serial_blas);
}

static void register_fork_handlers(void)
{
    pthread_atfork(lock_before_fork, unlock_after_fork, unlock_after_fork);
}

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
    pthread_once(&fork_once, register_fork_handlers);
    pthread_mutex_lock(&serial_blas);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha,
                A, lda, B, ldb, beta, C, ldc);
    pthread_mutex_unlock(&serial_blas);
}
