/* half.c - binary16 and bfloat16 conversions (half.h). The binary16 code works in double
 * precision through frexp and nearbyint, so each conversion rounds exactly once; bfloat16 is
 * integer arithmetic on the binary32 bits. */
#include "core/half.h"

#include <math.h>
#include <string.h>

double ab_f16_to_double(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24); /* zero and subnormals: m * 2^-24 */
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(m + 1024, e - 25); /* (1 + m/1024) * 2^(e-15) */
    return (h & 0x8000) ? -v : v;
}

uint16_t ab_f16_from_double(double x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (isnan(x)) return (uint16_t)(sign | 0x7e00);
    double a = fabs(x);
    if (isinf(a)) return (uint16_t)(sign | 0x7c00);
    if (a < 0x1p-14) {
        /* subnormal range: a = m * 2^-24, m rounded to nearest even (1024 is the smallest
           normal, whose bits are exactly 0x0400) */
        return (uint16_t)(sign | (uint16_t)nearbyint(a * 0x1p24));
    }
    int ex;
    double f = frexp(a, &ex);                 /* a = f * 2^ex, f in [0.5, 1) */
    int e = ex - 1;                           /* a = (2f) * 2^e, 2f in [1, 2) */
    double m = nearbyint((2 * f - 1) * 1024); /* exact scaling, one rounding */
    if (m == 1024) m = 0, e++;
    if (e > 15) return (uint16_t)(sign | 0x7c00); /* past 65504 (ties at 65520 go up) */
    return (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)m);
}

float ab_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t ab_bf16_from_float(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040); /* quiet NaN */
    /* round to nearest even on the 16 dropped bits; a carry into the exponent is right,
       including the one that reaches infinity */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
