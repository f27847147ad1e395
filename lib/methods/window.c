/* window.c - the static sliding-window family:
 * - `window`: keep keys with q_pos - k_pos < w (a sliding window; collapses on heads that park
 *   mass on the first token, which it drops once the window has moved on);
 * - `streaming`: the same plus the first n_sink = 4 keys, StreamingLLM (Xiao et al., "Efficient
 *   Streaming Language Models with Attention Sinks", arXiv 2309.17453, section 3.2); the
 *   A-shape of MInference;
 * - `streaming-1` and `streaming-16`: 1 and 16 sinks, the paper's sink-count ablation (its
 *   Table 2 varies the initial tokens kept at equal cache size; `window` is 0 sinks). At an
 *   equal budget the window shrinks by the extra sinks.
 * Both are static: selection costs 0, and the cost is analytic. In decode the same rule applies
 * to each decode query (the cache keeps the sinks and the last w tokens).
 * Deviations: positions are the head's absolute positions; sinks are the first n_sink keys of
 * the sequence (not re-indexed after eviction, which a static mask never needs). */
#include "core/ab.h"
#include "methods/method.h"

enum { N_SINK = 4 };

/* Keys kept by query row i: [0, sinks) and [lo, n_vis), where the window starts at lo. */
static void window_span(const struct ab_head *h, int64_t i, int64_t w, int64_t sinks,
                        int64_t *lo, int64_t *n_vis, int64_t *n_sinks)
{
    *n_vis = ab_head_visible(h, i);
    /* the first visible key inside the window: k_pos > q_pos - w (keys sorted by position) */
    int64_t a = 0, b = *n_vis;
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        if ((int64_t)h->q_pos[i] - h->k_pos[mid] >= w) a = mid + 1;
        else b = mid;
    }
    *lo = a;
    *n_sinks = AB_MIN(sinks, a); /* sinks already inside the window are not counted twice */
}

static double window_cells(const struct ab_problem *p, int64_t w, int64_t sinks)
{
    double cells = 0;
    for (int64_t i = p->q0; i < p->h->n_q; i++) {
        int64_t lo, n_vis, ns;
        window_span(p->h, i, w, sinks, &lo, &n_vis, &ns);
        cells += (double)(n_vis - lo + ns);
    }
    return cells;
}

static int run_with_sinks(const struct ab_problem *p, double knob, int64_t sinks, float *o,
                          struct ab_keep *keep, struct ab_ledger *led)
{
    int64_t w = (int64_t)knob;
    ab_ledger_attend(led, p->h, window_cells(p, w, sinks));
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t lo, n_vis, ns;
        window_span(p->h, p->rows[r], w, sinks, &lo, &n_vis, &ns);
        ab_keep_range(keep, r, 0, ns);
        ab_keep_range(keep, r, lo, n_vis);
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

static int window_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_ledger_attend(led, p->h, window_cells(p, (int64_t)knob, 0));
    return AB_OK;
}

static int window_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    return run_with_sinks(p, knob, 0, o, keep, led);
}

static int streaming_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_ledger_attend(led, p->h, window_cells(p, (int64_t)knob, N_SINK));
    return AB_OK;
}

static int streaming_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                         struct ab_ledger *led)
{
    return run_with_sinks(p, knob, N_SINK, o, keep, led);
}

static int streaming1_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_ledger_attend(led, p->h, window_cells(p, (int64_t)knob, 1));
    return AB_OK;
}

static int streaming1_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                          struct ab_ledger *led)
{
    return run_with_sinks(p, knob, 1, o, keep, led);
}

static int streaming16_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_ledger_attend(led, p->h, window_cells(p, (int64_t)knob, 16));
    return AB_OK;
}

static int streaming16_run(const struct ab_problem *p, double knob, float *o,
                           struct ab_keep *keep, struct ab_ledger *led)
{
    return run_with_sinks(p, knob, 16, o, keep, led);
}

const struct ab_method ab_method_window = {
    .name = "window",
    .family = AB_FAMILY_STATIC,
    .summary = "sliding window: keep keys with i - j < w",
    .citation = "sliding-window attention, Beltagy et al. 2020 (Longformer), arXiv 2004.05150",
    .cost_words = "4d per kept cell: min(w, i+1) per query; no selection cost",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = window_cost,
    .run = window_run,
};

const struct ab_method ab_method_streaming = {
    .name = "streaming",
    .family = AB_FAMILY_STATIC,
    .summary = "attention sinks (first 4 keys) plus a sliding window of w",
    .citation = "StreamingLLM, Xiao et al. 2023, arXiv 2309.17453",
    .cost_words = "4d per kept cell: min(i+1, w + 4) per query; no selection cost",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = streaming_cost,
    .run = streaming_run,
};

const struct ab_method ab_method_streaming1 = {
    .name = "streaming-1",
    .family = AB_FAMILY_STATIC,
    .summary = "one attention sink (the first key) plus a sliding window of w",
    .citation = "StreamingLLM, Xiao et al. 2023, arXiv 2309.17453 (sink-count ablation)",
    .cost_words = "4d per kept cell: min(i+1, w + 1) per query; no selection cost",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = streaming1_cost,
    .run = streaming1_run,
};

const struct ab_method ab_method_streaming16 = {
    .name = "streaming-16",
    .family = AB_FAMILY_STATIC,
    .summary = "16 attention sinks (the first 16 keys) plus a sliding window of w",
    .citation = "StreamingLLM, Xiao et al. 2023, arXiv 2309.17453 (sink-count ablation)",
    .cost_words = "4d per kept cell: min(i+1, w + 16) per query; no selection cost",
    .phases = AB_PHASE_PREFILL | AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "w", .lo = 1, .hi = 0, .integer = 1, .def = 256, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = streaming16_cost,
    .run = streaming16_run,
};
