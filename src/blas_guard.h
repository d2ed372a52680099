/* The one door to BLAS: cblas_sgemm when it is safe to call from inside our OpenMP region,
 * a plain loop otherwise. */
#ifndef RA_BLAS_GUARD_H
#define RA_BLAS_GUARD_H

#include <stdbool.h>

/* True when the OpenBLAS the process actually loaded is the serial build (it never starts
 * threads). A host that loaded a threaded libopenblas.so.0 before us wins the SONAME; then we
 * route around BLAS rather than oversubscribe the cores or change its global settings. */
bool ra__blas_is_serial(void);

/* Row-major C[M][N] = alpha * A[M][K] . op(B) + beta * C, where op(B) is B[K][N]
 * (trans_b false) or B[N][K]^T (trans_b true). Dimensions and leading dimensions fit in int.
 * Safe to call from many threads: calls into the (non-reentrant) serial OpenBLAS are
 * serialized. */
void ra__sgemm(bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

#endif
