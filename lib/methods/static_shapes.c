/* static_shapes.c - four more fixed (static) prefill patterns: `a-shape`, `tri-shape`,
 * `strided`, `s2` (and `s2-sink`). As in static_sparse.c, masks come from positions alone, never
 * from Q, K or V: selection costs 0 and every cost is a closed form of the knob
 * (AB_METHOD_ANALYTIC). Each row is a pair of row functions (how many keys row i keeps, which
 * ones); exact softmax over the kept keys (ab_attend_kept).
 *
 * Index space as in static_sparse.c: row i sees keys [0, v), v = vis(i); t = v - 1 is the row's
 * own key index on standard positions (t = i); blocks are B = 64 consecutive keys or rows. Each
 * row keeps keys [0, a) and [s, v) (a <= s), so it keeps (v - s) + a cells.
 *
 * How these differ from the rows that already exist:
 * - `streaming` (StreamingLLM, token-granular: 4 sinks + the last w keys) is what methods.md
 *   calls MInference's A-shape; `a-shape` is that shape as MInference's kernel tiles it, in
 *   whole blocks of 64 (128 initial tokens = whole blocks, the window ceil(w / 64) whole
 *   blocks ending at the row's own block), so a row keeps between 63 fewer and 63 more window
 *   keys than a token window of the same w, and its sinks are blocks, not 4 tokens;
 * - `dilated` keeps 4 sinks and K taps spread evenly over the whole context with a per-row
 *   fractional dilation; `strided` is the Sparse Transformer's fixed stride l shared by every
 *   row: a window of l plus the keys at distances that are multiples of l (no sinks);
 * - `shard` splits keys by j mod S over heads; `s2` splits the sequence into contiguous groups
 *   and shifts them by half a group on half of the heads.
 *
 * - `a-shape`: MInference's A-shape (Jiang et al. 2024, "MInference 1.0", arXiv 2407.02490,
 *   section 3 and its A-shape kernel, microsoft/MInference ops/streaming_kernel.py, n_init = 128,
 *   n_local = 3968). Query block qb = t / B keeps the I initial key blocks
 *   (I = ceil(n_init' / B), n_init' = 128 scaled below n = 32768 as the dynamic methods scale
 *   author defaults: max(1, round(128 n / 32768)), so I = 1 block up to n = 16384 and 2
 *   above) and the L = ceil(w / B) local key blocks qb - L + 1 .. qb (the diagonal block
 *   causal, up to v). Knob: the local window w in tokens (1..n), rounded up to whole blocks;
 *   w >= n is dense. Row i: lo = max(0, qb - L + 1) B, cells (v - lo) + min(I B, lo).
 * - `tri-shape`: SCBench's Tri-shape (Li et al. 2024, "SCBench: A KV Cache-Centric Analysis of
 *   Long-Context Methods", arXiv 2412.10319, section 3; MInference's tri_shape_kernel,
 *   n_last = 100): A-shape for every row except the last query rows, which attend densely to
 *   every key they see (the "last-window" queries that a long prompt's question sits in). Here
 *   the dense rows are the last T = ceil(n_last' / B) query blocks (rows
 *   i >= (nbq - T) B, nbq = ceil(n / B)), n_last' = 100 scaled as n_init' (one block up to
 *   n = 20971, two above). Knob: the local window w as in a-shape. Cells: a-shape's for rows
 *   below the tail, v for tail rows.
 * - `strided`: the Sparse Transformer's strided pattern (Child et al. 2019, "Generating Long
 *   Sequences with Sparse Transformers", arXiv 1904.10509, section 4.2): the paper's two heads
 *   (A: i - j < l; B: (i - j) mod l == 0) merged into one head that keeps their union, as the
 *   paper's "merged" attention (one head attending to both sets) does: keys [v - l, v) and
 *   t - m l for m >= 1. Knob: the stride l (1..n); cells per row min(v, l) + floor((v - 1) / l).
 *   A row's cost l + v / l falls as l grows below sqrt(v), so the stride used is
 *   l' = max(l, ceil(sqrt(n))) (the paper's l ~ sqrt(n)): the knob below sqrt(n) acts as
 *   sqrt(n), and above it the cost is non-decreasing (for l^2 >= n > v - 1 the two floors of
 *   floor((v - 1) / l) at l and l + 1 differ by at most 1). l = n is dense.
 * - `s2`: LongLoRA's shifted sparse attention S^2-Attn (Chen et al. 2023, "LongLoRA: Efficient
 *   Fine-tuning of Long-Context Large Language Models", arXiv 2309.12307, section 3.2): keys
 *   are split into groups of G consecutive tokens, a row attends causally within its group;
 *   heads h >= H / 2 (H the layer's query heads, integer division, as LongLoRA shifts
 *   heads[H // 2:]) use the groups shifted by G / 2: LongLoRA rolls the sequence by -G/2 and
 *   cuts the rolled sequence into groups, so key j belongs to group
 *   floor(((j - G/2) mod n) / G), and the last rolled group wraps around to the first G/2
 *   tokens. Causality stays in the original order (a row keeps the members of its group with
 *   j <= t). Every group of L tokens then costs L (L + 1) / 2 cells whatever its shape, so
 *   shifted and unshifted heads cost the same: sum over groups of L (L + 1) / 2 (groups of G
 *   and one of n mod G), non-decreasing in G; G >= n is one group, dense. Knob: G (1..n).
 * - `s2-sink`: the same with SinkLoRA's attention sinks (Zhang 2024, "SinkLoRA: Enhanced
 *   Efficiency and Chat Capabilities for Long-Context Large Language Models", arXiv 2406.05678,
 *   section 3: the initial tokens attended globally in every group): the first S = 4 keys are
 *   kept by every row and the groups (shifted or not) are cut over the other n - S keys; `s2`
 *   is S = 0, LongLoRA's own rule. Cost: the s2 cost over n - S keys plus S cells per row past
 *   the sinks, plus S (S + 1) / 2.
 * All: selection FLOPs 0, 4d per kept cell (2d + 2d_v), one exp per kept cell in ops_other.
 * Prefill only (tri-shape is a prefill shape; the others are given as the prefill rows the
 * issue asked for).
 *
 * Deviations from the papers:
 * - a-shape / tri-shape: MInference's Triton kernel visits whole blocks but masks the window
 *   token by token inside them (its loop bounds are block-rounded, its `dist` mask is not); we
 *   keep the whole blocks, the block-sparse A-shape of the paper's pattern description, which
 *   is what separates this row from `streaming`. n_init and n_last are scaled below 32K keys
 *   (they are shipped for 128K prompts); the dense tail is whole query blocks instead of
 *   exactly the last 100 rows.
 * - strided: the paper factorises over two heads (or interleaves them over layers); merging
 *   them in one head is its "merged" variant. The stride floor sqrt(n) is ours (cost monotone).
 * - s2: LongLoRA needs n to be a multiple of G (it pads); here the last group is short
 *   (n mod G tokens) and the roll is over n. LongLoRA's causal mask is applied in rolled order,
 *   so its first G/2 tokens can see the last tokens (a known leak of the rolled form); here
 *   causality is in the original order. S2-Attn is a fine-tuning pattern (inference usually
 *   runs dense); here it is applied to the given Q, K, V without fine-tuning.
 * - s2-sink: SinkLoRA also reassembles the segments (SF-Attn); only the sinks are taken. */
#include <math.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { SH_B = AB_DYN_B, SH_INIT = 128, SH_LAST = 100, S2_SINKS = 4 };

/* One static pattern: the keys [0, a) and [s, v) row i keeps at integer knob k. */
typedef void (*span_fn)(const struct ab_problem *p, int64_t k, int64_t i, int64_t *a, int64_t *s,
                        int64_t *v);

/* The knob as an integer in [1, n]. */
static int64_t knob_int(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

/* Ledger of the phase: the kept cells of every row q0..n-1. */
static void span_ledger(span_fn span, const struct ab_problem *p, int64_t k, struct ab_ledger *led)
{
    double cells = 0;
    for (int64_t i = p->q0; i < p->h->n_q; i++) {
        int64_t a, s, v;
        span(p, k, i, &a, &s, &v);
        cells += (double)(v - s + a);
    }
    ab_ledger_attend(led, p->h, cells);
}

static int span_cost(span_fn span, const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    span_ledger(span, p, knob_int(knob, p->h->n_k), led);
    return AB_OK;
}

static int span_run(span_fn span, const struct ab_problem *p, double knob, float *o,
                    struct ab_keep *keep, struct ab_ledger *led)
{
    int64_t k = knob_int(knob, p->h->n_k);
    span_ledger(span, p, k, led);
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t a, s, v;
        span(p, k, p->rows[r], &a, &s, &v);
        ab_keep_range(keep, r, 0, a);
        ab_keep_range(keep, r, s, v);
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

/* ---- a-shape and tri-shape ---- */

/* Initial key blocks I and dense tail query blocks T of the shapes on p. */
static int64_t shape_init_blocks(const struct ab_problem *p)
{
    return (ab_dyn_scaled(SH_INIT, p->h->n_k) + SH_B - 1) / SH_B;
}

static int64_t shape_tail_blocks(const struct ab_problem *p)
{
    return (ab_dyn_scaled(SH_LAST, p->h->n_k) + SH_B - 1) / SH_B;
}

static void ashape_span(const struct ab_problem *p, int64_t w, int64_t i, int64_t *a, int64_t *s,
                        int64_t *v)
{
    *v = ab_head_visible(p->h, i);
    if (*v == 0) {
        *a = *s = 0;
        return;
    }
    int64_t qb = (*v - 1) / SH_B, L = (w + SH_B - 1) / SH_B;
    *s = AB_MAX(0, qb - L + 1) * SH_B;
    *a = AB_MIN(shape_init_blocks(p) * SH_B, *s);
}

static void trishape_span(const struct ab_problem *p, int64_t w, int64_t i, int64_t *a, int64_t *s,
                          int64_t *v)
{
    int64_t nbq = (p->h->n_q + SH_B - 1) / SH_B;
    if (i >= (nbq - shape_tail_blocks(p)) * SH_B) { /* the dense tail: every visible key */
        *v = ab_head_visible(p->h, i);
        *a = *s = 0;
        return;
    }
    ashape_span(p, w, i, a, s, v);
}

static int ashape_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return span_cost(ashape_span, p, knob, led);
}

static int ashape_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    return span_run(ashape_span, p, knob, o, keep, led);
}

static int trishape_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return span_cost(trishape_span, p, knob, led);
}

static int trishape_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                        struct ab_ledger *led)
{
    return span_run(trishape_span, p, knob, o, keep, led);
}

const struct ab_method ab_method_a_shape = {
    .name = "a-shape",
    .family = AB_FAMILY_STATIC,
    .summary = "MInference's A-shape in whole blocks of 64: initial key blocks (128 tokens, "
               "scaled) plus ceil(w/64) local blocks per query block",
    .citation = "A-shape of MInference, Jiang et al. 2024, arXiv 2407.02490 (kernel "
                "n_init 128, n_local 3968)",
    .cost_words = "4d per kept cell: (v - lo) + min(64 I, lo) per query, lo = 64 max(0, qb - "
                  "ceil(w/64) + 1), qb = (v-1)/64, I = ceil(128 n / 32768 / 64) initial "
                  "blocks; no selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 3968, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = ashape_cost,
    .run = ashape_run,
};

const struct ab_method ab_method_tri_shape = {
    .name = "tri-shape",
    .family = AB_FAMILY_STATIC,
    .summary = "a-shape plus the last query blocks (n_last 100, scaled) attending densely to "
               "every key",
    .citation = "Tri-shape of SCBench, Li et al. 2024, arXiv 2412.10319",
    .cost_words = "4d per kept cell: a-shape's cells for rows below the last T = ceil(100 n / "
                  "32768 / 64) query blocks, v for rows in them; no selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 3968, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = trishape_cost,
    .run = trishape_run,
};

/* ---- strided ---- */

/* The stride used at knob l: max(l, ceil(sqrt(n))). */
static int64_t strided_stride(const struct ab_problem *p, int64_t l)
{
    int64_t n = p->h->n_k, r = (int64_t)sqrt((double)n);
    while (r * r < n) r++;
    while (r > 1 && (r - 1) * (r - 1) >= n) r--;
    return AB_MAX(l, r);
}

/* Counted and filled separately (not one span): the strided keys are not a range. */
static int64_t strided_count(const struct ab_problem *p, int64_t l, int64_t i)
{
    int64_t v = ab_head_visible(p->h, i);
    l = strided_stride(p, l);
    return v == 0 ? 0 : AB_MIN(v, l) + (v - 1) / l;
}

static void strided_ledger(const struct ab_problem *p, int64_t l, struct ab_ledger *led)
{
    double cells = 0;
    for (int64_t i = p->q0; i < p->h->n_q; i++) cells += (double)strided_count(p, l, i);
    ab_ledger_attend(led, p->h, cells);
}

static int strided_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    strided_ledger(p, knob_int(knob, p->h->n_k), led);
    return AB_OK;
}

static int strided_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    int64_t k = knob_int(knob, p->h->n_k), l = strided_stride(p, k);
    strided_ledger(p, k, led);
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(p->h, p->rows[r]);
        ab_keep_range(keep, r, v - AB_MIN(v, l), v);                         /* head A: i - j < l */
        for (int64_t j = v - 1 - l; j >= 0; j -= l) ab_keep_set(keep, r, j); /* head B */
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

const struct ab_method ab_method_strided = {
    .name = "strided",
    .family = AB_FAMILY_STATIC,
    .summary = "Sparse Transformer strided pattern, both heads merged: the previous l keys and "
               "every key at a distance multiple of l (l >= sqrt(n))",
    .citation = "strided attention of the Sparse Transformer, Child et al. 2019, arXiv "
                "1904.10509",
    .cost_words = "4d per kept cell: min(v, l') + floor((v - 1) / l') per query, l' = max(l, "
                  "ceil(sqrt(n))); no selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "l", .lo = 1, .hi = 0, .integer = 1, .def = 128, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = strided_cost,
    .run = strided_run,
};

/* ---- s2 and s2-sink ---- */

/* Row i's keys under S^2-Attn with group size G and S sinks: [0, a) and [s, v). */
static void s2_span_sinks(const struct ab_problem *p, int64_t G, int64_t S, int64_t i, int64_t *a,
                          int64_t *s, int64_t *v)
{
    *v = ab_head_visible(p->h, i);
    int64_t t = *v - 1, n = p->h->n_k - S; /* groups are cut over keys [S, n + S) */
    if (t < S) {                           /* a sink row (or nothing visible) */
        *a = *s = 0;
        return;
    }
    int64_t H = AB_MAX(1, p->n_layer_heads), sh = p->self >= H / 2 ? G / 2 : 0;
    /* t's group in the rolled order and its original keys: o0 .. o0 + len - 1 mod n */
    int64_t tt = t - S, g = ((tt - sh) % n + n) % n / G, p0 = g * G;
    int64_t len = AB_MIN(n, p0 + G) - p0, o0 = (p0 + sh) % n;
    if (o0 + len <= n) { /* a contiguous group */
        *s = S + o0;
        *a = S;
    } else if (tt >= o0) { /* the wrapped group, t in its tail: the head part [0, o0+len-n) too */
        *s = S + o0;
        *a = S + o0 + len - n;
    } else { /* the wrapped group, t in its head part: every key up to t */
        *s = 0;
        *a = 0;
    }
}

static void s2_span(const struct ab_problem *p, int64_t G, int64_t i, int64_t *a, int64_t *s,
                    int64_t *v)
{
    s2_span_sinks(p, G, 0, i, a, s, v);
}

static void s2sink_span(const struct ab_problem *p, int64_t G, int64_t i, int64_t *a, int64_t *s,
                        int64_t *v)
{
    s2_span_sinks(p, G, AB_MIN(S2_SINKS, p->h->n_k), i, a, s, v);
}

static int s2_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return span_cost(s2_span, p, knob, led);
}

static int s2_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    return span_run(s2_span, p, knob, o, keep, led);
}

static int s2sink_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return span_cost(s2sink_span, p, knob, led);
}

static int s2sink_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    return span_run(s2sink_span, p, knob, o, keep, led);
}

const struct ab_method ab_method_s2 = {
    .name = "s2",
    .family = AB_FAMILY_STATIC,
    .summary = "LongLoRA's S2-Attn: causal attention inside groups of G; heads h >= H/2 use "
               "groups shifted by G/2 (the last one wraps to the first G/2 tokens)",
    .citation = "S2-Attn of LongLoRA, Chen et al. 2023, arXiv 2309.12307",
    .cost_words = "4d per kept cell: L (L + 1) / 2 per group of L keys (floor(n/G) groups of "
                  "G, one of n mod G), shifted or not; no selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "G", .lo = 1, .hi = 0, .integer = 1, .def = 512, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = s2_cost,
    .run = s2_run,
};

const struct ab_method ab_method_s2_sink = {
    .name = "s2-sink",
    .family = AB_FAMILY_STATIC,
    .summary = "s2 with SinkLoRA's 4 attention sinks: every row keeps the first 4 keys, groups "
               "(shifted on heads h >= H/2) are cut over the other keys",
    .citation = "S2-Attn of LongLoRA, arXiv 2309.12307, with the sinks of SinkLoRA, Zhang "
                "2024, arXiv 2406.05678",
    .cost_words = "4d per kept cell: s2's cells over the n - 4 keys past the sinks, plus 4 per "
                  "row past them and 10 for the sink rows; no selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "G", .lo = 1, .hi = 0, .integer = 1, .def = 512, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = s2sink_cost,
    .run = s2sink_run,
};
