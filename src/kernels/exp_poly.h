/* The vector exp of the SIMD kernels, one contract for every ISA: for x in [-103.97, 88.7]
 * the result is e^x to about 2 ulp (subnormal results to within one subnormal step); below it
 * is 0 (so e^-inf = 0, as expf gives), above it e^88.7; a NaN x gives NaN.
 * Method: x clamped to [RA_EXP_ARG_MIN, RA_EXP_ARG_MAX], x = n ln2 + r with |r| <= ln2/2, e^r
 * by its degree-7 Taylor polynomial, then 2^n applied exactly (vscalefps on AVX-512; two
 * multiplies by 2^(n/2) on ISAs that build 2^n in the exponent bits, so that subnormal results
 * round once). The constants and the polynomial live here; each ISA file supplies the
 * instructions. */
#ifndef RA_EXP_POLY_H
#define RA_EXP_POLY_H

#define RA_EXP_ARG_MIN (-104.0f) /* e^-104 rounds to 0 in f32 */
#define RA_EXP_ARG_MAX (88.7f)   /* e^88.7 is finite in f32 */

#define RA_EXP_LOG2E 1.44269504088896341f
#define RA_EXP_LN2_HI 0.693145751953125f /* ln 2 split so that n * LN2_HI is exact */
#define RA_EXP_LN2_LO 1.428606765330187045e-06f

/* The polynomial in Horner form, written with the ISA's fmadd(a, b, c) = a*b + c and set1. */
#define RA_EXP_TAYLOR7(fmadd, set1, r)                                                        \
    fmadd(fmadd(fmadd(fmadd(fmadd(fmadd(fmadd(set1(1.0f / 5040.0f), r, set1(1.0f / 720.0f)), \
                                        r, set1(1.0f / 120.0f)),                              \
                                  r, set1(1.0f / 24.0f)),                                     \
                            r, set1(1.0f / 6.0f)),                                            \
                      r, set1(0.5f)),                                                         \
                r, set1(1.0f)),                                                               \
          r, set1(1.0f))

#endif
