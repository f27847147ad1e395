/* half.h - 16-bit floating-point formats, converted with our own code: IEEE 754 binary16 (fp16,
 * numpy's float16, ggml's F16 and the Q8_0 block scale) and bfloat16 (the upper 16 bits of an
 * IEEE binary32, ggml's BF16). One implementation for every reader and writer (npy, GGUF).
 * Bit patterns are host integers; callers assemble them from little-endian bytes. */
#ifndef AB_CORE_HALF_H
#define AB_CORE_HALF_H

#include <stdint.h>

/* binary16 to double: exact (subnormals, infinities, NaN and the sign of zero kept). */
double ab_f16_to_double(uint16_t h);

/* double to binary16: rounds to nearest, ties to even, overflowing to infinity past 65504 and
 * underflowing through the subnormals (smallest 2^-24) to signed zero; NaN stays NaN. */
uint16_t ab_f16_from_double(double x);

/* bfloat16 to float: exact (the bits become the upper half of a binary32). */
float ab_bf16_to_float(uint16_t h);

/* float to bfloat16: rounds to nearest, ties to even (overflowing to infinity); NaN stays a
 * quiet NaN of the same sign. */
uint16_t ab_bf16_from_float(float x);

#endif
