/* kv_quant.h - the quantized caches of kv_quant.c (`kivi-2`, `kivi-4`, `int8`), exported for
 * tests/test_methods_quant.c: the split of the context into quantized and full-precision tokens,
 * the dequantized cache itself and the bytes a decode query reads. Not part of the method
 * interface (method.h). */
#ifndef AB_METHODS_KV_QUANT_H
#define AB_METHODS_KV_QUANT_H

#include <stdint.h>

#include "methods/method.h"

enum {
    AB_KIVI_G = 32, /* KIVI's group: G tokens per key group (per channel), G channels per value
                       group (per token) */
};

enum ab_kvq_kind { AB_KVQ_KIVI = 1, AB_KVQ_INT8 = 2 };

/* KIVI's split of n_ctx context tokens at residual window R >= 0: keys 0 .. *lk - 1 and values
 * 0 .. *lv - 1 are quantized, the rest of the context stays in full precision. *lv =
 * max(0, n_ctx - R) (the last R values are full precision); *lk = *lv rounded down to a multiple
 * of G (keys are quantized in whole groups of G tokens, so up to G - 1 more keys stay full
 * precision). Both non-increasing in R. */
void ab_kivi_split(int64_t n_ctx, int64_t R, int64_t *lk, int64_t *lv);

/* The cache of head h as the decode queries read it: k_hat (n_k, d) and v_hat (n_k, d_v) are
 * h's K and V with the quantized context rows replaced by their dequantized values, every other
 * row copied. kind AB_KVQ_KIVI: asymmetric `bits`-bit quantization (min and scale per group,
 * stored as floats) of keys 0..lk-1 per channel over groups of G tokens and of values 0..lv-1
 * per token over groups of G channels (the last group of a row may be shorter), lk and lv from
 * ab_kivi_split(n_ctx, R); kind AB_KVQ_INT8: symmetric int8 of every context row of K and of V,
 * one absmax / 127 scale per row (bits and R ignored). */
void ab_kv_quant_cache(const struct ab_head *h, int64_t n_ctx, int kind, int bits, int64_t R,
                       float *k_hat, float *v_hat);

/* The bytes of the quantized context read by one decode query (the tokens after the context are
 * not included): quantized elements at bits / 8 bytes, 4 bytes per float scale and per float
 * zero point (KIVI: both per group; int8: a scale per row), 4 bytes per full-precision element. */
double ab_kv_quant_ctx_bytes(int64_t n_ctx, int64_t d, int64_t d_v, int kind, int bits, int64_t R);

#endif
