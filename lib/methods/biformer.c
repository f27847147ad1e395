/* biformer.c - `biformer`: bi-level routing attention of BiFormer (Zhu et al. 2023, "BiFormer:
 * Vision Transformer with Bi-Level Routing Attention", arXiv 2303.08125, section 3.2, eqs. 2-5),
 * applied to a sequence in prefill.
 *
 * Rule: the sequence is cut into regions of B = 64 tokens (the last one may be shorter). Region
 * queries and keys are the means of their rows, Q^r = pool(Q), K^r = pool(K); the region
 * affinity A^r = Q^r (K^r)^T routes each query region to its top k key regions (eq. 3, the
 * index matrix I^r); every query row then attends exactly to the union of the keys of its
 * region's routed regions (eq. 4, gather, then token-to-token attention), renormalised over
 * them and within the mask.
 * - full mask (the paper's non-causal vision setting): all regions are candidates, none is
 *   forced; a row may read regions after its own.
 * - causal mask: a query region sees the regions holding keys visible to its last row; the
 *   diagonal region (the last visible one) is always kept, so every row reads itself, and it
 *   counts inside k; the others are ranked by affinity.
 * Knob k: regions per query region, 1 .. n (every k >= ceil(n / 64) keeps all: dense).
 * Default 4 (the paper's top-k of its second stage; its stages use 1, 4, 16 and all).
 *
 * Cost (analytic): 4d per kept cell. Causal, standard positions (vis(i) = i + 1): query region b
 * keeps m_b = min(b + 1, k) regions, row i of it (m_b - 1) 64 + (i - 64b + 1) cells. Full mask,
 * n a multiple of 64: every row keeps min(nb, k) 64 cells. Other shapes (a short last region
 * under the full mask, tied positions) are counted from the selection. Selection: n d + n d
 * additions to pool Q (the phase's rows) and K, 2 nb^2 d for the affinity (nb = ceil(n / 64);
 * one sgemm computes the whole matrix, masked part included), and c ceil(log2 c) sort
 * operations per query region with c ranked candidates (c = b under the causal mask, nb under
 * the full mask).
 *
 * Deviations: regions are 1-D runs of 64 tokens (the paper's regions are S x S image patches);
 * the causal variant forces the diagonal region (the paper has no causal variant); the gather
 * is a kept-key set, not a copy; no local context enhancement (the paper's LCE depth-wise
 * convolution is a trained module); ties go to the lower region; prefill only. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { B = AB_DYN_B };

static void bf_check(const struct ab_problem *p)
{
    assert(p->phase == AB_PHASE_PREFILL);
    assert(p->h->n_q == p->h->n_k);
    assert(p->q0 >= 0 && p->q0 <= p->h->n_q);
}

/* The knob as a region count: at least 1, at most n. */
static int64_t knob_regions(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

/* Regions kept by a query region that sees nvb of them. */
static int64_t regions_kept(int64_t nvb, int64_t k)
{
    return AB_MIN(nvb, k);
}

/* Ranked candidates of query region b seeing nvb regions (the diagonal is forced when causal). */
static int64_t candidates(const struct ab_head *h, int64_t nvb)
{
    return h->mask == AB_MASK_CAUSAL ? nvb - 1 : nvb;
}

static double select_flops(const struct ab_problem *p)
{
    const struct ab_head *h = p->h;
    int64_t nb = (h->n_k + B - 1) / B;
    return (double)(h->n_q - p->q0) * (double)h->d + (double)h->n_k * (double)h->d +
           2.0 * (double)(nb - ab_dyn_first_qblock(p)) * (double)nb * (double)h->d;
}

/* Closed forms (see the top); 0 when the shape needs counting from the selection. */
static int ledger_closed(const struct ab_problem *p, int64_t k, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, nb = (n + B - 1) / B;
    double cells = 0, sort = 0;
    if (h->mask == AB_MASK_FULL) {
        if (n % B) return 0;
        for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) sort += ab_dyn_sort_ops(nb);
        cells = (double)(n - p->q0) * (double)(regions_kept(nb, k) * B);
    } else {
        if (!ab_dyn_standard(h)) return 0;
        for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
            int64_t m = regions_kept(b + 1, k);
            int64_t i0 = AB_MAX(b * B, p->q0), i1 = AB_MIN(n, (b + 1) * B), rows = i1 - i0;
            double first = (double)(i0 - b * B + 1), last = (double)(i1 - b * B);
            cells += (double)rows * (double)((m - 1) * B) + (first + last) * (double)rows / 2;
            sort += ab_dyn_sort_ops(b);
        }
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += select_flops(p);
    led->ops_other += sort;
    return 1;
}

/* Routes every query region of the phase into s; adds the sort operations to *sort. */
static int route(const struct ab_problem *p, int64_t k, struct ab_dyn_blocks *s, double *sort)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, nb = (n + B - 1) / B;
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    rc = ab_dyn_blocks_alloc(s, n);
    float *qr = ab_alloc(ab_size_mul((size_t)(2 * nb * d + nb * nb), sizeof(float)));
    float *kr = qr ? qr + nb * d : NULL, *a = qr ? kr + nb * d : NULL; /* (nb, d) x 2, (nb, nb) */
    double *score = ab_alloc(ab_size_mul((size_t)nb, sizeof(double))); /* (nb) */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)nb, sizeof(int64_t))); /* (nb) */
    if (!rc && (!qr || !score || !idx))
        rc = ab_fail(AB_E_NOMEM, "biformer: cannot allocate regions");
    if (rc) goto done;
    /* A^r = pool(Q) pool(K)^T */
    ab_dyn_pool(x.q, n, d, qr);
    ab_dyn_pool(x.k, n, d, kr);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nb, (int)d, 1.0f, qr, (int)d,
                kr, (int)d, 0.0f, a, (int)nb);
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t nvb = ab_dyn_block_visible(h, b), c_n = candidates(h, nvb);
        int64_t m = regions_kept(nvb, k);
        uint8_t *on = s->on + b * nb;
        if (c_n < nvb) on[nvb - 1] = 1; /* causal: the diagonal region */
        for (int64_t c = 0; c < c_n; c++) score[c] = a[b * nb + c];
        *sort += ab_dyn_rank(score, c_n, 0, idx);
        for (int64_t t = 0; t < m - (nvb - c_n); t++) on[idx[t]] = 1;
    }
done:
    if (rc) ab_dyn_blocks_free(s);
    ab_free(qr);
    ab_free(score);
    ab_free(idx);
    ab_dyn_qk_free(&x);
    return rc;
}

static int bf_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    bf_check(p);
    int64_t k = knob_regions(knob, p->h->n_k);
    if (ledger_closed(p, k, led)) return AB_OK;
    struct ab_dyn_blocks s = {0};
    double sort = 0, cells = 0;
    int rc = route(p, k, &s, &sort);
    if (!rc) rc = ab_dyn_blocks_cells(p, &s, &cells);
    if (!rc) {
        ab_ledger_attend(led, p->h, cells);
        led->flops_select += select_flops(p);
        led->ops_other += sort;
    }
    ab_dyn_blocks_free(&s);
    return rc;
}

static void bf_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    ab_dyn_blocks_keep(p, sel, keep);
}

static int bf_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    int rc = bf_cost(p, knob, led);
    if (rc) return rc;
    struct ab_dyn_blocks s = {0};
    double sort = 0;
    rc = route(p, knob_regions(knob, p->h->n_k), &s, &sort);
    if (!rc) rc = ab_dyn_attend(p, bf_fill, &s, o, keep);
    ab_dyn_blocks_free(&s);
    return rc;
}

const struct ab_method ab_method_biformer = {
    .name = "biformer",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "bi-level routing: mean-pooled regions of 64, each query region attends to the "
               "keys of its top k key regions (causal: diagonal region forced)",
    .citation = "BiFormer, Zhu et al. 2023, arXiv 2303.08125",
    .cost_words = "4d per kept cell: causal (m_b - 1) 64 + (i - 64b + 1) for row i of region b, "
                  "m_b = min(b + 1, k); full mask min(nb, k) 64 per row; selection 2nd (pooling "
                  "adds) + 2 nb^2 d (nb = ceil(n/64)); sort c log2 c per query region",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL | AB_MASKS_FULL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 4, .unit = "regions"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = bf_cost,
    .run = bf_run,
};
