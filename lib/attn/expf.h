/* expf.h - e^x for x <= 0 in single precision, written so that loops calling it vectorise: the
 * softmax of the fast attention path and of every method that ranks keys by probability share
 * this one definition.
 *
 * x = n ln2 + r with n = round(x log2 e) and |r| <= ln2 / 2 (ln2 split into a short head and a
 * tail so n ln2 is exact enough), e^r by its Taylor polynomial to r^6 (remainder below 2e-8
 * relative; about 2 ulp overall), 2^n written into the exponent field. Arguments below -87
 * are clamped there (their weight against a row maximum e^0 is below float resolution). The
 * clamp compares bit patterns as unsigned integers, which for x <= 0 (+0 or a negative float)
 * orders them by magnitude: an integer select GCC if-converts, where a float compare (trapping
 * math) would keep a branch and block vectorisation. */
#ifndef AB_ATTN_EXPF_H
#define AB_ATTN_EXPF_H

#include <stdint.h>

static inline float ab_expf_nonpos(float x)
{
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    union { float f; uint32_t u; } xb = {.f = x}, lim = {.f = -87.0f};
    xb.u = xb.u > lim.u ? lim.u : xb.u;
    x = xb.f;
    /* round to nearest by adding and removing 1.5 * 2^23 (default rounding mode) */
    float n = (x * log2e + 12582912.0f) - 12582912.0f;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 720; /* Horner: sum_{t <= 6} r^t / t! */
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { int32_t i; float f; } two_n = {.i = ((int32_t)n + 127) * (1 << 23)};
    return p * two_n.f;
}

#endif
