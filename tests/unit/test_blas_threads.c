/* The OpenBLAS the library runs with must not start threads of its own inside the library's
 * OpenMP region (docs/design.md, "Execution model"): the build links Debian's serial
 * OpenBLAS by path with a RUNPATH, and the library asks the loaded OpenBLAS at run time
 * (ra__blas_is_serial). This test checks that the loaded build is the sequential one and that
 * the one door to BLAS (ra__sgemm) computes both products it is used for. (test_determinism
 * checks the forced-BLAS kernel at 1 and 2 threads bitwise.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "blas_guard.h"
#include "raggedattn.h"

int openblas_get_parallel(void); /* from the OpenBLAS the process loaded */

static void loaded_openblas_is_serial(void **state)
{
    (void)state;
    print_message("openblas_get_parallel() = %d (0 = sequential)\n", openblas_get_parallel());
    assert_int_equal(openblas_get_parallel(), 0);
    assert_true(ra__blas_is_serial());
}

static void sgemm_wrapper_matches_plain_loops(void **state)
{
    (void)state;
    /* C[2][3] = A[2][4] . B[3][4]^T, then += A . B2[4][3] */
    const float A[8] = {1, 2, 3, 4, -1, 0.5f, 2, -3};
    const float Bt[12] = {1, 0, 0, 1, 0, 1, 0, 1, 2, 2, -1, 0};
    const float B[12] = {1, 2, 3, 0, 1, 0, -1, 0, 1, 2, 2, 2};
    float C[6];
    ra__sgemm(true, 2, 3, 4, 1.0f, A, 4, Bt, 4, 0.0f, C, 3);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            double want = 0;
            for (int k = 0; k < 4; k++)
                want += (double)A[i * 4 + k] * Bt[j * 4 + k];
            assert_float_equal(C[i * 3 + j], want, 1e-6);
        }
    float C0[6];
    memcpy(C0, C, sizeof C);
    ra__sgemm(false, 2, 3, 4, 1.0f, A, 4, B, 3, 1.0f, C, 3);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            double want = C0[i * 3 + j];
            for (int k = 0; k < 4; k++)
                want += (double)A[i * 4 + k] * B[k * 3 + j];
            assert_float_equal(C[i * 3 + j], want, 1e-5);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loaded_openblas_is_serial),
        cmocka_unit_test(sgemm_wrapper_matches_plain_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
