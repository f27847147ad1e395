/* kv_quant.c - KV-cache quantization rows (family kv, decode only): `kivi-2` and `kivi-4`
 * (KIVI: Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache",
 * arXiv 2402.02750, sections 3.2-3.3 and algorithm 1) and `int8` (symmetric per-token int8, the
 * common baseline of that literature, e.g. the INT8 rows of KIVI's and KVQuant's comparisons).
 *
 * Protocol: at the end of prefill the context's K and V (rows 0 .. n_ctx - 1) are quantized once;
 * each decode query then attends, exactly (softmax over every key it can see), to the dequantized
 * context plus the decode tokens' own keys and values, which stay in full precision. Nothing is
 * selected (no keep set, not AB_METHOD_SELECTS): the error is that of the cache's values.
 *
 * kivi-b (b = 2, 4 bits). Asymmetric quantization of a group x_1..x_g: z = min x, s = (max x -
 * min x) / (2^b - 1), x^ = z + s round((x - z) / s) (x^ = z when s = 0), so |x - x^| <= s / 2.
 * Keys are grouped PER CHANNEL: for each channel, G = 32 consecutive tokens form a group (KIVI's
 * outlier channels get their own range); values PER TOKEN: for each token, G = 32 consecutive
 * channels (the last group of a row may be shorter when d_v is not a multiple of 32). Residual
 * window: the last R context tokens stay in full precision (values: exactly those R; keys: those
 * R plus the up to G - 1 before them that do not fill a whole group of G tokens, as keys are
 * quantized in whole groups). Knob: R, integer in [1, n] tokens (default 128, the paper's R);
 * R >= n_ctx quantizes nothing and is dense attention exactly.
 * int8: every context row of K and of V gets one scale s = max |x| / 127 and x^ = s round(x / s)
 * (|x - x^| <= s / 2), no residual window; no knob.
 *
 * Cost (exact: AB_METHOD_ANALYTIC; kivi's FLOPs do not depend on R: AB_METHOD_FIXED, the engine
 * runs it at R = 128 under FLOP budgets):
 * - flops_attend: dense's, 4d (2d + 2d_v) per allowed cell of the decode phase; cells = those;
 * - ops_other: one exp per cell (as dense), plus the dequantization, one multiply-add per
 *   quantized element per decode step (a kernel dequantizes the cache it reads at every step),
 *   plus the quantization once, 3 operations per quantized element (the group's min / max
 *   compare, the scaling, the rounding);
 * - bytes_kv: what each decode query reads: bits / 8 bytes per quantized element, 4 bytes per
 *   float scale and per float zero point (KIVI: 2 per group, int8: 1 scale per row), 4 bytes per
 *   full-precision element (kivi's residual window and every decode token the query sees); the
 *   ledger's convention (ab_ledger_attend) of the cache read once per decode query. For kivi it is
 *   non-decreasing in R (a token leaving the quantized part costs 4 bytes per element instead of
 *   b / 8 plus its share of the scales) and equals ab_kv_quant_ctx_bytes + the decode tokens.
 * Deviations from the paper: KIVI streams (every R new tokens the full-precision residual is
 *   quantized); here the decode tokens stay full precision, as the bench's decode protocol
 *   quantizes the context once at the end of prefill; KIVI's code keeps n mod R keys in full
 *   precision, here the residual is the last R keys (plus the group remainder), the same rule for
 *   keys and values, so that R is a monotone knob; scales and zero points are 32-bit floats here
 *   (fp16 in KIVI's kernels; the bytes count 4 each, as the bench's cache is float); attention on
 *   the dequantized cache in single precision (the fast blocked path dense uses), not KIVI's
 *   fused quantized matmul kernels.
 * Registry: these three rows are not in registry.c yet. The generic battery's
 * constant_values_are_a_fixed_point (tests/test_methods.c) requires o = v for a constant V, and a
 * quantized cache returns the dequantized v^ instead (o = v^ exactly, test_methods_quant.c checks
 * it): they need a flag saying "V is read through a lossy cache" that the battery skips, as it
 * skips AB_METHOD_UNNORMALISED; every other battery check passes with them registered. */
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_quant.h"

extern const struct ab_method ab_method_kivi_2, ab_method_kivi_4, ab_method_int8;

void ab_kivi_split(int64_t n_ctx, int64_t R, int64_t *lk, int64_t *lv)
{
    *lv = AB_MAX(0, n_ctx - AB_MAX(R, 0));
    *lk = *lv / AB_KIVI_G * AB_KIVI_G;
}

/* Asymmetric b-bit quantization of the g elements x[e * stride] into y[e * stride]. */
static void quant_asym(const float *x, int64_t g, int64_t stride, int bits, float *y)
{
    float mn = x[0], mx = x[0];
    for (int64_t e = 1; e < g; e++) {
        float t = x[e * stride];
        mn = t < mn ? t : mn;
        mx = t > mx ? t : mx;
    }
    double levels = (double)((1 << bits) - 1);
    float s = (float)(((double)mx - mn) / levels); /* the stored scale and zero point: floats */
    for (int64_t e = 0; e < g; e++) {
        double q = s > 0 ? nearbyint(((double)x[e * stride] - mn) / s) : 0;
        q = q < 0 ? 0 : (q > levels ? levels : q);
        y[e * stride] = (float)((double)mn + q * (double)s);
    }
}

/* Symmetric int8 of one row x (g) into y: s = max |x| / 127, y = s round(x / s). */
static void quant_int8(const float *x, int64_t g, float *y)
{
    float am = 0;
    for (int64_t e = 0; e < g; e++) am = fabsf(x[e]) > am ? fabsf(x[e]) : am;
    float s = (float)((double)am / 127.0);
    for (int64_t e = 0; e < g; e++) {
        double q = s > 0 ? nearbyint((double)x[e] / s) : 0;
        q = q < -127 ? -127 : (q > 127 ? 127 : q);
        y[e] = (float)(q * (double)s);
    }
}

void ab_kv_quant_cache(const struct ab_head *h, int64_t n_ctx, int kind, int bits, int64_t R,
                       float *k_hat, float *v_hat)
{
    int64_t n = h->n_k, d = h->d, dv = h->d_v, lk = n_ctx, lv = n_ctx;
    memcpy(k_hat, h->k, (size_t)(n * d) * sizeof(float));
    memcpy(v_hat, h->v, (size_t)(n * dv) * sizeof(float));
    if (kind == AB_KVQ_INT8) {
        for (int64_t j = 0; j < n_ctx; j++) {
            quant_int8(h->k + j * d, d, k_hat + j * d);
            quant_int8(h->v + j * dv, dv, v_hat + j * dv);
        }
        return;
    }
    ab_kivi_split(n_ctx, R, &lk, &lv);
    for (int64_t t0 = 0; t0 < lk; t0 += AB_KIVI_G) /* keys: per channel, G tokens */
        for (int64_t c = 0; c < d; c++)
            quant_asym(h->k + t0 * d + c, AB_KIVI_G, d, bits, k_hat + t0 * d + c);
    for (int64_t j = 0; j < lv; j++) /* values: per token, G channels */
        for (int64_t c0 = 0; c0 < dv; c0 += AB_KIVI_G)
            quant_asym(h->v + j * dv + c0, AB_MIN(AB_KIVI_G, dv - c0), 1, bits,
                       v_hat + j * dv + c0);
}

double ab_kv_quant_ctx_bytes(int64_t n_ctx, int64_t d, int64_t d_v, int kind, int bits, int64_t R)
{
    if (kind == AB_KVQ_INT8) return (double)n_ctx * ((double)(d + d_v) + 8.0);
    int64_t lk, lv;
    ab_kivi_split(n_ctx, R, &lk, &lv);
    double quant = (double)(lk * d + lv * d_v) * bits / 8.0;
    double groups = (double)(lk / AB_KIVI_G * d + lv * ((d_v + AB_KIVI_G - 1) / AB_KIVI_G));
    double full = (double)((n_ctx - lk) * d + (n_ctx - lv) * d_v);
    return quant + 8.0 * groups + 4.0 * full;
}

/* The quantized elements of the context (lk d + lv d_v). */
static double quant_elements(const struct ab_problem *p, int kind, int64_t R)
{
    int64_t n_ctx = kv_n_ctx(p), lk = n_ctx, lv = n_ctx;
    if (kind == AB_KVQ_KIVI) ab_kivi_split(n_ctx, R, &lk, &lv);
    return (double)(lk * p->h->d + lv * p->h->d_v);
}

static int64_t kvq_residual(double knob)
{
    return (int64_t)knob;
}

static int kvq_cost(const struct ab_problem *p, int kind, int bits, double knob,
                    struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n_ctx = kv_n_ctx(p), R = kvq_residual(knob);
    double cells = ab_problem_allowed_cells(p), m = (double)(h->n_q - p->q0);
    double ctx = ab_kv_quant_ctx_bytes(n_ctx, h->d, h->d_v, kind, bits, R), full = 0, qe;
    for (int64_t i = p->q0; i < h->n_q; i++) /* the decode tokens a query sees: full precision */
        full += (double)AB_MAX(0, ab_head_visible(h, i) - n_ctx);
    qe = quant_elements(p, kind, R);
    led->cells += cells;
    led->flops_attend += cells * (double)(2 * h->d + 2 * h->d_v);
    led->ops_other += cells + m * qe + 3 * qe;
    led->bytes_kv += m * ctx + 4.0 * full * (double)(h->d + h->d_v);
    return AB_OK;
}

static int kvq_run(const struct ab_problem *p, const char *name, int kind, int bits, double knob,
                   float *o, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int rc = kv_check_phase(p, name);
    if (rc) return rc;
    if (h->mask != AB_MASK_CAUSAL)
        return ab_fail(AB_E_USAGE, "%s: the full mask is not supported (causal only)", name);
    if (kind == AB_KVQ_KIVI && !(knob >= 0))
        return ab_fail(AB_E_USAGE, "%s: residual R = %g (at least 0)", name, knob);
    kvq_cost(p, kind, bits, knob, led);
    if (!o) return AB_OK;
    int64_t n = h->n_k, d = h->d, dv = h->d_v, n_ctx = kv_n_ctx(p);
    int quantizes = quant_elements(p, kind, kvq_residual(knob)) > 0;
    float *kh = NULL, *vh = NULL;
    if (quantizes) {
        kh = ab_alloc(ab_size_mul((size_t)(n * d), sizeof(float)));  /* (n, d) */
        vh = ab_alloc(ab_size_mul((size_t)(n * dv), sizeof(float))); /* (n, d_v) */
    }
    /* the phase's query rows q0..n-1 as one head instance over the cache they read */
    struct ab_head sub = *h;
    sub.n_q = h->n_q - p->q0;
    sub.q = h->q + p->q0 * d;
    sub.q_pos = h->q_pos + p->q0;
    float *all = ab_alloc(ab_size_mul((size_t)(sub.n_q * dv), sizeof(float))); /* (n_q, d_v) */
    if (!all || (quantizes && (!kh || !vh))) {
        rc = ab_fail(AB_E_NOMEM, "%s: cannot allocate the dequantized cache", name);
        goto done;
    }
    if (quantizes) {
        ab_kv_quant_cache(h, n_ctx, kind, bits, kvq_residual(knob), kh, vh);
        sub.k = kh, sub.v = vh;
    }
    rc = ab_attn_fast(&sub, all, NULL);
    /* every allowed cell is computed; the evaluated rows' share is what O holds (as dense) */
    for (int64_t r = 0; r < p->n_rows; r++)
        ab_attend_counter_add((double)ab_head_visible(h, p->rows[r]));
    for (int64_t r = 0; !rc && r < p->n_rows; r++)
        memcpy(o + r * dv, all + (p->rows[r] - p->q0) * dv, (size_t)dv * sizeof(float));
done:
    ab_free(kh), ab_free(vh), ab_free(all);
    return rc;
}

#define KIVI_ROW(B)                                                                                \
    static int kivi##B##_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)      \
    {                                                                                              \
        return kvq_cost(p, AB_KVQ_KIVI, B, knob, led);                                             \
    }                                                                                              \
    static int kivi##B##_run(const struct ab_problem *p, double knob, float *o,                    \
                             struct ab_keep *keep, struct ab_ledger *led)                          \
    {                                                                                              \
        (void)keep;                                                                                \
        return kvq_run(p, "kivi-" #B, AB_KVQ_KIVI, B, knob, o, led);                               \
    }                                                                                              \
    const struct ab_method ab_method_kivi_##B = {                                                  \
        .name = "kivi-" #B,                                                                        \
        .family = AB_FAMILY_KV,                                                                    \
        .summary = "KIVI " #B "-bit KV cache: keys per channel, values per token (groups of 32), " \
                   "last R context tokens in full precision; exact attention on the dequantized "  \
                   "cache",                                                                        \
        .citation = "Liu et al. 2024, KIVI, arXiv 2402.02750",                                     \
        .cost_words = "4d per cell (dense's); bytes " #B "/8 per quantized element + 8 per "       \
                      "group + 4 per full-precision element, per decode query",                    \
        .phases = AB_PHASE_DECODE,                                                                 \
        .masks = AB_MASKS_CAUSAL,                                                                  \
        .knob = {.name = "R", .lo = 1, .hi = 0, .integer = 1, .def = 128, .unit = "tokens"},       \
        .flags = AB_METHOD_ANALYTIC | AB_METHOD_FIXED | AB_METHOD_LOSSY,                                     \
        .cost = kivi##B##_cost,                                                                    \
        .run = kivi##B##_run,                                                                      \
    };

KIVI_ROW(2)
KIVI_ROW(4)

static int int8_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return kvq_cost(p, AB_KVQ_INT8, 8, knob, led);
}

static int int8_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    (void)keep;
    return kvq_run(p, "int8", AB_KVQ_INT8, 8, knob, o, led);
}

const struct ab_method ab_method_int8 = {
    .name = "int8",
    .family = AB_FAMILY_KV,
    .summary = "symmetric per-token int8 KV cache (absmax scale per row of K and of V); exact "
               "attention on the dequantized cache",
    .citation = "per-token absmax int8, the baseline of KIVI (Liu et al. 2024, arXiv 2402.02750)",
    .cost_words = "4d per cell (dense's); bytes 1 per context element + 4 per row scale + 4 per "
                  "decode-token element, per decode query",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = NULL},
    .flags = AB_METHOD_ANALYTIC | AB_METHOD_LOSSY,
    .cost = int8_cost,
    .run = int8_run,
};
