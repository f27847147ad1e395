/* static_sparse.c - the fixed-pattern (static) sparse family beyond the sliding window: masks
 * decided from positions alone, never from Q, K or V, so selection costs 0 and every cost is a
 * closed form of the knob (AB_METHOD_ANALYTIC). Each method is a pair of row functions: how many
 * keys row i keeps (O(1) or O(log n), for cost()) and which (for the keep set); a shared engine
 * sums the first into the ledger and turns the second into exact attention restricted to the
 * kept keys (renormalised softmax, ab_attend_kept).
 *
 * Distances: row i sees keys [0, v), v = vis(i); the distance of key j is delta = v - 1 - j,
 * the distance from the newest key the row sees (i - j on standard positions, where v = i + 1).
 *
 * - `dilated`: the strided / dilated pattern of the Sparse Transformer (Child et al. 2019,
 *   "Generating Long Sequences with Sparse Transformers", arXiv 1904.10509, section 4.2, the
 *   "strided" attention's (i - j) mod l == 0 part) and of dilated sliding windows (Beltagy et
 *   al. 2020, Longformer, arXiv 2004.05150, section 3.1): keep the n_sink = 4 first keys and K
 *   taps spread evenly over the rest of the row's context, at distances
 *   delta_t = floor(t m / K), t = 0 .. K-1, m = v - 4 keys past the sinks: a dilation of
 *   r = m / K (when it is a whole number exactly the keys with delta mod r == 0). Knob: taps K
 *   (1..n). Cells of row i: min(4, v) + min(K, v - min(4, v)). K >= n is dense.
 * - `bigbird`: BigBird's ITC pattern (Zaheer et al. 2020, "Big Bird: Transformers for Longer
 *   Sequences", arXiv 2007.14062, section 2 and appendix D), causal: a sliding window of w keys
 *   (delta < w), the G first keys (global tokens) and, per query block of B = 64 rows, R = w
 *   random keys drawn without replacement from the keys every row of the block sees and that
 *   are neither global nor in any of the block's windows: [G, v_first - w), v_first = vis of the
 *   block's first row of the phase; all rows of the block read the same random keys. Knob: w
 *   (1..n), the random count tied to it (BigBird ITC: 3 window blocks, 3 random blocks). Cells of
 *   row i: min(v, w) + min(G, max(0, v - w)) + min(w, max(0, v_first - w - G)). Random keys are
 *   seeded by (p->seed, head p->self, query block); w = n is dense.
 * - `power`: PowerAttention (Chen et al. 2025, "PowerAttention: Exponentially Scaling of
 *   Receptive Fields for Effective Sparse Attention", arXiv 2503.03588, section 3), at block
 *   granularity: keys are cut into blocks of B_p; the row's query block is qb = (v - 1) / B_p and
 *   it keeps key block qb - t for t = 0 (the diagonal block, up to v), 1 <= t < W (the local
 *   window) and t = 2^m (power-of-two distances), plus block 0 (the sink block). Knob: W, the
 *   local window in blocks (1..n); W >= ceil(n / B_p) is dense. Cells of row i:
 *   B_p |kept blocks below qb| + (v - qb B_p).
 * - `shard`: S2-Attention's heterogeneous context sharding (Lin et al. 2024, "S2-Attention:
 *   Hardware-Aware Context Sharding Among Attention Heads", arXiv 2407.17678, section 3): head h
 *   of a layer with S query heads reads the keys j with j mod S == h mod S, plus a local window
 *   of w keys (delta < w) that every head reads; outside the windows the union over the heads
 *   covers every key exactly once. Knob: w (1..n); w = n is dense. Cells of row i:
 *   min(v, w) + #{j < v - w : j mod S == h mod S}.
 * All four: selection FLOPs 0, ops_other one exp per kept cell (ab_ledger_attend), 4d per kept
 * cell (2d + 2d_v).
 *
 * Deviations from the papers:
 * - distances are key indices from the row's newest visible key, not absolute positions (equal
 *   on standard positions);
 * - dilated: the dilation is fractional and per row (a whole dilation r shared by all rows
 *   moves cost in jumps, 1, ~1/2, ~1/3 of dense, leaving most budgets unreachable), and the
 *   window is the whole context; the knob is the tap count so that cost grows with it and its
 *   top is dense; the Sparse Transformer splits local and strided parts over heads or layers and
 *   Longformer dilates only some heads; the 4 sinks are StreamingLLM's, not in the papers;
 * - bigbird: token-level window and random keys (BigBird works on blocks of 64 for all three
 *   parts); G = 128 global tokens (BigBird ITC: 2 blocks of 64) for n >= 32768, scaled linearly
 *   below like the dynamic methods' author defaults (max(1, round(128 n / 32768)), 16 at
 *   n = 4096); causal, so global tokens are only the first keys (no global queries), and the
 *   random keys avoid the window instead of being drawn from all blocks; prefill only;
 * - power: B_p = 64 for n >= 32768 and scaled below (max(1, round(64 n / 32768)), 8 at
 *   n = 4096), so that a static pattern can reach 1/16 of dense at the lengths we sweep; the
 *   sink is the first block (the authors keep sink tokens and a sliding window of blocks);
 * - shard: token-level sharding (the authors shard KV blocks) and S = the number of query heads
 *   of the layer (the authors choose S per model); the knob is the window because a larger S
 *   costs less (the interface wants cost to grow with the knob), so the cost never falls below
 *   about 1/S of dense; prefill only. */
#include "core/ab.h"
#include "core/rng.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { N_SINK = 4, BB_BLOCK = AB_DYN_B, BB_GLOBAL = 128, PW_BLOCK = 64 };

/* One static pattern: the keys row i keeps, counted and written. */
struct pattern {
    /* Kept keys of row i at knob (all below vis(i)). */
    int64_t (*count)(const struct ab_problem *p, int64_t knob, int64_t i);
    /* Sets row r of keep (cleared) to the kept keys of row i. */
    void (*fill)(const struct ab_problem *p, int64_t knob, int64_t i, struct ab_keep *keep,
                 int64_t r);
};

/* The knob as an integer in [1, n]. */
static int64_t knob_int(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

/* Ledger of the phase: the kept cells of every row q0..n-1. */
static void pattern_ledger(const struct pattern *pt, const struct ab_problem *p, int64_t k,
                           struct ab_ledger *led)
{
    double cells = 0;
    for (int64_t i = p->q0; i < p->h->n_q; i++) cells += (double)pt->count(p, k, i);
    ab_ledger_attend(led, p->h, cells);
}

static int pattern_run(const struct pattern *pt, const struct ab_problem *p, double knob, float *o,
                       struct ab_keep *keep, struct ab_ledger *led)
{
    int64_t k = knob_int(knob, p->h->n_k);
    pattern_ledger(pt, p, k, led);
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) pt->fill(p, k, p->rows[r], keep, r);
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

/* ---- dilated ---- */

static int64_t dilated_count(const struct ab_problem *p, int64_t taps, int64_t i)
{
    int64_t v = ab_head_visible(p->h, i), s = AB_MIN(N_SINK, v);
    return s + AB_MIN(taps, v - s);
}

static void dilated_fill(const struct ab_problem *p, int64_t taps, int64_t i, struct ab_keep *keep,
                         int64_t r)
{
    int64_t v = ab_head_visible(p->h, i), s = AB_MIN(N_SINK, v), m = v - s;
    ab_keep_range(keep, r, 0, s);
    /* taps at delta_t = floor(t m / K): distinct while K <= m, every key past the sinks else */
    if (taps >= m)
        ab_keep_range(keep, r, s, v);
    else
        for (int64_t t = 0; t < taps; t++) ab_keep_set(keep, r, v - 1 - t * m / taps);
}

static const struct pattern dilated = {dilated_count, dilated_fill};

static int dilated_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    pattern_ledger(&dilated, p, knob_int(knob, p->h->n_k), led);
    return AB_OK;
}

static int dilated_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    return pattern_run(&dilated, p, knob, o, keep, led);
}

const struct ab_method ab_method_dilated = {
    .name = "dilated",
    .family = AB_FAMILY_STATIC,
    .summary = "4 sinks plus K taps evenly spread over the row's context (dilation (v - 4) / K)",
    .citation = "strided pattern of the Sparse Transformer, Child et al. 2019, arXiv 1904.10509; "
                "dilated window of Longformer, arXiv 2004.05150",
    .cost_words = "4d per kept cell: min(4, v) + min(K, v - min(4, v)) per query (v visible "
                  "keys); no selection cost",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "taps"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = dilated_cost,
    .run = dilated_run,
};

/* ---- bigbird ---- */

static int64_t bb_globals(const struct ab_problem *p)
{
    return ab_dyn_scaled(BB_GLOBAL, p->h->n_k);
}

/* Visible keys of the first phase row of row i's query block. */
static int64_t bb_first_visible(const struct ab_problem *p, int64_t i)
{
    int64_t first = AB_MAX(p->q0, i / BB_BLOCK * BB_BLOCK);
    return ab_head_visible(p->h, first);
}

/* Random keys of row i's block: R = w of the candidates [G, v_first - w). */
static int64_t bb_random(const struct ab_problem *p, int64_t w, int64_t i, int64_t *lo, int64_t *hi)
{
    *lo = bb_globals(p);
    *hi = AB_MAX(*lo, bb_first_visible(p, i) - w);
    return AB_MIN(w, *hi - *lo);
}

static int64_t bigbird_count(const struct ab_problem *p, int64_t w, int64_t i)
{
    int64_t v = ab_head_visible(p->h, i), lo, hi;
    return AB_MIN(v, w) + AB_MIN(bb_globals(p), AB_MAX(0, v - w)) + bb_random(p, w, i, &lo, &hi);
}

static void bigbird_fill(const struct ab_problem *p, int64_t w, int64_t i, struct ab_keep *keep,
                         int64_t r)
{
    int64_t v = ab_head_visible(p->h, i), lo, hi;
    int64_t m = bb_random(p, w, i, &lo, &hi), c = hi - lo;
    /* Floyd's sampling of m distinct keys out of the c candidates, the row's bits as the set;
     * the draws depend only on the block, so every row of the block gets the same keys */
    struct ab_rng rng;
    ab_rng_init(&rng, p->seed, ab_stream(0xb16b, (uint64_t)p->self, (uint64_t)(i / BB_BLOCK), 0));
    for (int64_t t = c - m; t < c; t++) {
        int64_t x = ab_rng_below(&rng, t + 1);
        ab_keep_set(keep, r, lo + (ab_keep_has(keep, r, lo + x) ? t : x));
    }
    ab_keep_range(keep, r, 0, AB_MIN(bb_globals(p), v));
    ab_keep_range(keep, r, v - AB_MIN(v, w), v);
}

static const struct pattern bigbird = {bigbird_count, bigbird_fill};

static int bigbird_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    pattern_ledger(&bigbird, p, knob_int(knob, p->h->n_k), led);
    return AB_OK;
}

static int bigbird_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                       struct ab_ledger *led)
{
    return pattern_run(&bigbird, p, knob, o, keep, led);
}

const struct ab_method ab_method_bigbird = {
    .name = "bigbird",
    .family = AB_FAMILY_STATIC,
    .summary = "window of w, the first G global keys, and w random keys per query block of 64 "
               "(seeded)",
    .citation = "BigBird (ITC), Zaheer et al. 2020, arXiv 2007.14062",
    .cost_words = "4d per kept cell: min(v, w) + min(G, v - w) + min(w, v_first - w - G) per "
                  "query (G = 128 n / 32768 global keys, v_first: the block's first row); no "
                  "selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 192, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = bigbird_cost,
    .run = bigbird_run,
};

/* ---- power ---- */

static int64_t pw_block(const struct ab_problem *p)
{
    return ab_dyn_scaled(PW_BLOCK, p->h->n_k);
}

/* 1 when key block qb - t (t >= 1) is kept by query block qb at window W. */
static int pw_keeps(int64_t qb, int64_t t, int64_t W)
{
    return t < W || (t & (t - 1)) == 0 || t == qb;
}

static int64_t power_count(const struct ab_problem *p, int64_t W, int64_t i)
{
    int64_t v = ab_head_visible(p->h, i), B = pw_block(p);
    if (v == 0) return 0;
    int64_t qb = (v - 1) / B;
    /* window distances 1 .. min(W - 1, qb), powers of two in [W, qb], and block 0 */
    int64_t blocks = AB_MIN(W - 1, qb);
    for (int64_t t = 1; t <= qb; t <<= 1)
        if (t >= W) blocks++;
    if (qb >= W && (qb & (qb - 1)) != 0) blocks++;
    return blocks * B + (v - qb * B);
}

static void power_fill(const struct ab_problem *p, int64_t W, int64_t i, struct ab_keep *keep,
                       int64_t r)
{
    int64_t v = ab_head_visible(p->h, i), B = pw_block(p);
    if (v == 0) return;
    int64_t qb = (v - 1) / B;
    ab_keep_range(keep, r, qb * B, v);
    for (int64_t t = 1; t <= qb; t++)
        if (pw_keeps(qb, t, W)) ab_keep_range(keep, r, (qb - t) * B, (qb - t + 1) * B);
}

static const struct pattern power = {power_count, power_fill};

static int power_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    pattern_ledger(&power, p, knob_int(knob, p->h->n_k), led);
    return AB_OK;
}

static int power_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    return pattern_run(&power, p, knob, o, keep, led);
}

const struct ab_method ab_method_power = {
    .name = "power",
    .family = AB_FAMILY_STATIC,
    .summary = "blocks at power-of-two distances, a local window of W blocks, the sink block "
               "and the diagonal block",
    .citation = "PowerAttention, Chen et al. 2025, arXiv 2503.03588",
    .cost_words = "4d per kept cell: B (kept blocks below the diagonal: distances < W, powers "
                  "of two, block 0) + the diagonal block up to the query; B = 64 n / 32768; no "
                  "selection cost",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "W", .lo = 1, .hi = 0, .integer = 1, .def = 4, .unit = "blocks"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = power_cost,
    .run = power_run,
};

/* ---- shard ---- */

/* Shards S (query heads of the layer) and this head's residue. */
static void shard_of(const struct ab_problem *p, int64_t *S, int64_t *a)
{
    *S = AB_MAX(1, p->n_layer_heads);
    *a = p->self % *S;
}

static int64_t shard_count(const struct ab_problem *p, int64_t w, int64_t i)
{
    int64_t v = ab_head_visible(p->h, i), S, a;
    shard_of(p, &S, &a);
    int64_t lo = AB_MAX(0, v - w); /* keys below the window: j < lo with j mod S == a */
    return (v - lo) + (lo > a ? (lo - 1 - a) / S + 1 : 0);
}

static void shard_fill(const struct ab_problem *p, int64_t w, int64_t i, struct ab_keep *keep,
                       int64_t r)
{
    int64_t v = ab_head_visible(p->h, i), S, a;
    shard_of(p, &S, &a);
    int64_t lo = AB_MAX(0, v - w);
    for (int64_t j = a; j < lo; j += S) ab_keep_set(keep, r, j);
    ab_keep_range(keep, r, lo, v);
}

static const struct pattern shard = {shard_count, shard_fill};

static int shard_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    pattern_ledger(&shard, p, knob_int(knob, p->h->n_k), led);
    return AB_OK;
}

static int shard_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                     struct ab_ledger *led)
{
    return pattern_run(&shard, p, knob, o, keep, led);
}

const struct ab_method ab_method_shard = {
    .name = "shard",
    .family = AB_FAMILY_STATIC,
    .summary = "head h reads keys j with j mod S == h mod S (S heads of the layer) plus a local "
               "window of w; the heads' union covers every key",
    .citation = "S2-Attention, Lin et al. 2024, arXiv 2407.17678",
    .cost_words = "4d per kept cell: min(v, w) + #{j < v - w : j mod S == h mod S} per query "
                  "(S = query heads of the layer); no selection cost",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = shard_cost,
    .run = shard_run,
};
