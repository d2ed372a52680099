/* The vector exp of the SIMD kernels: e^x = 2^n e^r with x = n ln2 + r, |r| <= ln2/2, and e^r
 * by its degree-7 Taylor polynomial (about 1 ulp). Each ISA file does the range reduction and
 * the 2^n step with its own instructions; the constants and the polynomial live here once. */
#ifndef RA_EXP_POLY_H
#define RA_EXP_POLY_H

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
