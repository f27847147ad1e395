/* flexprefill.c - `flexprefill`: context-aware sparse prefill of FlexPrefill (Lai et al. 2025,
 * "FlexPrefill: A Context-Aware Sparse Attention Mechanism for Efficient Long-Sequence
 * Inference", arXiv 2502.20766, section 3, Algorithms 1-4). Per head, from the last block of
 * B = 64 queries (the probe):
 * 1. pattern (Algorithm 1): a_hat = the probe's exact attention, averaged over its rows and
 *    summed over key blocks; a_bar = softmax(s mean(Q_probe) . pool(K)^T) over key blocks, the
 *    pooled estimate of the same distribution; D = sqrt(JSD(a_bar, a_hat)) (natural log).
 * 2. D < tau (0.1): the pooled map is trustworthy, the head is "query-aware" (Algorithm 2):
 *    A = softmax per query block of s pool(Q) pool(K)^T under the block-causal mask; its
 *    entries, flattened and normalised over the whole map, are kept by decreasing mass until
 *    gamma of the total is covered.
 * 3. otherwise vertical-slash (Algorithm 3): from the probe's attention, column sums and slash
 *    (offset) sums, each normalised; the fewest columns covering gamma of the column mass and
 *    the fewest slashes covering gamma of the slash mass; every row keeps their union.
 * The kept set always holds column 0 and the main diagonal (query-aware heads: key block 0
 * and the diagonal block), and at least a minimum budget of M tokens per query. Exact softmax
 * over the kept keys, within the causal mask. gamma = 1 keeps everything: dense.
 *
 * Cost (data-dependent, counted from the selection): 4d per kept cell; selection FLOPs, every
 * head: 2 B n d (Q_probe K^T) + 4 P (probe softmax and line sums; P = the probe's visible
 * cells) + n d + B d (pooling K and the probe queries, additions) + 2 nb d (the estimate;
 * nb = ceil(n / B)) + n (block sums of the probe); vertical-slash heads + 4 n (the two covers'
 * totals and running sums); query-aware heads + n d (pooling Q) + 2 nb^2 d (the pooled map)
 * + 4 E (row softmax sums and normalisation, the cover's total and running sum; E = the visible
 * block pairs, nb (nb + 1) / 2 in prefill). Ops: 2 P (probe exps and max comparisons) + 3 nb
 * (estimate exps, JS logarithms) + the sorts (c ceil(log2 c) for c ranked lines or blocks)
 * + 2 E on query-aware heads (row exps and max comparisons).
 *
 * Deviations: lines are kept per token (the authors' kernel works on blocks of 128: vertical
 * block-columns and slash block-diagonals), and B = 64 (authors 128) like the other block
 * methods here; the minimum budget (512 tokens) holds for n >= 32768 and scales linearly below,
 * M = max(1, round(512 n / 32768)) (64 at n = 4096), read as tokens per late query row: at
 * least ceil(M / 2) columns and ceil(M / 2) slashes, or ceil(M / B) blocks per query block (the
 * authors keep min_budget / B block-lines of each kind); the forced lines are column 0 and
 * slash 0 (the authors force the first block column and the diagonal block) and sit first in
 * the cover's order, so the cover is the shortest such prefix; query-aware heads take only
 * blocks plus forced and minimum ones (the authors' code also unions the minimum vertical-slash
 * set); short sequences are not sent to dense attention (the authors do so below
 * max(2B, min budget)); causal prefill only; ties go to the lower index. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { B = AB_DYN_B, MIN_BUDGET = 512 };
static const double TAU = 0.1;

void ab_dyn_flex_free(struct ab_dyn_flex *f)
{
    ab_dyn_lines_free(&f->lines);
    ab_dyn_blocks_free(&f->blocks);
}

/* Minimum budget in tokens per query at n keys (see the top). */
static int64_t flex_min_budget(int64_t n)
{
    return AB_MIN(n, ab_dyn_scaled(MIN_BUDGET, n));
}

/* Vertical-slash heads: the covering columns and slashes of the probe sums into f->lines.
 * idx (n) and val (n) are scratch. */
static int flex_lines(const struct ab_problem *p, double gamma, const double *col,
                      const double *diag, int64_t *idx, double *val, struct ab_dyn_flex *f,
                      struct ab_ledger *led)
{
    int64_t n = p->h->n_q, at_least = AB_MIN(n, (flex_min_budget(n) + 1) / 2);
    int rc = ab_dyn_lines_alloc(&f->lines, n);
    if (rc) return rc;
    for (int kind = 0; kind < 2; kind++) {
        const double *score = kind ? diag : col;
        /* order: the forced line (column 0 / slash 0) first, then by mass */
        led->ops_other += ab_dyn_rank(score, n, 1, idx);
        for (int64_t t = 0; t < n; t++) val[t] = score[idx[t]];
        int64_t m = AB_MAX(ab_dyn_cover(val, n, gamma), at_least);
        led->flops_select += 2.0 * (double)n; /* the cover's total and running sum */
        for (int64_t t = 0; t < m; t++) {
            if (kind)
                ab_dyn_lines_add_slash(&f->lines, idx[t]);
            else
                ab_dyn_lines_add_col(&f->lines, idx[t]);
        }
    }
    f->n_col = f->lines.n_col;
    f->n_slash = f->lines.n_rs;
    ab_ledger_attend(led, p->h, ab_dyn_lines_cells(p, &f->lines));
    return AB_OK;
}

/* Query-aware heads: blocks of the pooled map covering gamma of its mass into f->blocks.
 * kp is pool(K) (nb, d). */
static int flex_blocks(const struct ab_problem *p, const struct ab_dyn_qk *x, const float *kp,
                       double gamma, struct ab_dyn_flex *f, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, nb = (n + B - 1) / B, b0 = ab_dyn_first_qblock(p);
    int64_t min_blocks = (flex_min_budget(n) + B - 1) / B;
    int rc = ab_dyn_blocks_alloc(&f->blocks, n);
    float *qp = ab_alloc(ab_size_mul((size_t)(nb * d + nb * nb), sizeof(float)));
    float *s = qp ? qp + nb * d : NULL; /* (nb, d), (nb, nb) */
    /* entries of the visible block pairs: mass, flat (b, c) key, order, ordered mass */
    size_t ne = (size_t)(nb * nb);
    double *mass = ab_alloc(ab_size_mul(2 * ne, sizeof(double))), *val = mass ? mass + ne : NULL;
    int64_t *key = ab_alloc(ab_size_mul(2 * ne, sizeof(int64_t))), *idx = key ? key + ne : NULL;
    int64_t *per_row = ab_alloc(ab_size_mul((size_t)nb, sizeof(int64_t))); /* (nb) */
    if (!rc && (!qp || !mass || !key || !per_row))
        rc = ab_fail(AB_E_NOMEM, "flexprefill: cannot allocate the pooled map");
    if (rc) goto done;
    /* A = s pool(Q) pool(K)^T */
    ab_dyn_pool(x->q, n, d, qp);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nb, (int)d, (float)h->scale,
                qp, (int)d, kp, (int)d, 0.0f, s, (int)nb);
    led->flops_select +=
        (double)(n - p->q0) * (double)d + 2.0 * (double)(nb - b0) * (double)nb * (double)d;
    /* row softmax over the visible key blocks of each query block */
    int64_t e = 0;
    for (int64_t b = b0; b < nb; b++) {
        int64_t nvb = ab_dyn_block_visible(h, b);
        const float *row = s + b * nb;
        float mx = -INFINITY;
        for (int64_t c = 0; c < nvb; c++) mx = row[c] > mx ? row[c] : mx;
        double z = 0;
        for (int64_t c = 0; c < nvb; c++) z += mass[e + c] = exp((double)row[c] - mx);
        for (int64_t c = 0; c < nvb; c++) {
            mass[e + c] /= z;
            key[e + c] = b * nb + c;
        }
        e += nvb;
    }
    led->flops_select += 4.0 * (double)e;
    led->ops_other += 2.0 * (double)e;
    /* the global cover of the flattened map (each row sums to 1; the cover normalises) */
    led->ops_other += ab_dyn_rank(mass, e, 0, idx);
    for (int64_t t = 0; t < e; t++) val[t] = mass[idx[t]];
    int64_t m = ab_dyn_cover(val, e, gamma);
    uint8_t *on = f->blocks.on;
    for (int64_t t = 0; t < m; t++) on[key[idx[t]]] = 1;
    /* forced: key block 0 and the diagonal block of every query block */
    for (int64_t b = b0; b < nb; b++) {
        on[b * nb] = 1;
        on[b * nb + ab_dyn_block_visible(h, b) - 1] = 1;
    }
    /* the minimum budget: rows short of it take their best remaining blocks, in map order */
    for (int64_t b = b0; b < nb; b++)
        for (int64_t c = 0; c < nb; c++) per_row[b] += on[b * nb + c];
    for (int64_t t = m; t < e; t++) {
        int64_t b = key[idx[t]] / nb, nvb = ab_dyn_block_visible(h, b);
        if (!on[key[idx[t]]] && per_row[b] < AB_MIN(min_blocks, nvb)) {
            on[key[idx[t]]] = 1;
            per_row[b]++;
        }
    }
    for (int64_t b = b0; b < nb; b++) f->n_blocks += per_row[b];
    double cells = 0;
    rc = ab_dyn_blocks_cells(p, &f->blocks, &cells);
    if (!rc) ab_ledger_attend(led, h, cells);
done:
    ab_free(qp);
    ab_free(mass);
    ab_free(key);
    ab_free(per_row);
    return rc;
}

int ab_dyn_flex_select(const struct ab_problem *p, double gamma, double tau, struct ab_dyn_flex *f,
                       struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, nb = (n + B - 1) / B, L = AB_MIN(B, n - p->q0);
    const struct ab_dyn_probed *pr = p->prep;
    assert(pr); /* the engine prepared p */
    const double *col = pr->col, *diag = pr->diag; /* (n), (n) */
    *f = (struct ab_dyn_flex){0};
    struct ab_dyn_qk x = {0};
    double *val = ab_alloc(ab_size_mul((size_t)(n + 2 * nb), sizeof(double))); /* (n) */
    double *est = val ? val + n : NULL, *tru = val ? est + nb : NULL;           /* (nb), (nb) */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t)));          /* (n) */
    float *kp = ab_alloc(ab_size_mul((size_t)(nb * d + d), sizeof(float)));
    float *qbar = kp ? kp + nb * d : NULL; /* (nb, d), (d) */
    int rc = !val || !idx || !kp ? ab_fail(AB_E_NOMEM, "flexprefill: cannot allocate scores")
                                 : ab_dyn_qk_get(h, &x);
    assert(L > 0); /* prefill: q0 = 0 < n */
    if (rc) goto done;
    ab_dyn_probed_ledger(pr, led);

    /* a_bar = softmax_c(s mean(Q_probe) . pool(K)_c), over every key block */
    ab_dyn_pool(x.k, n, d, kp);
    for (int64_t i = n - L; i < n; i++)
        for (int64_t c = 0; c < d; c++) qbar[c] += x.q[i * d + c];
    for (int64_t c = 0; c < d; c++) qbar[c] /= (float)L;
    double mx = -INFINITY, z = 0;
    for (int64_t c = 0; c < nb; c++) {
        est[c] = h->scale * cblas_sdot((int)d, qbar, 1, kp + c * d, 1);
        mx = est[c] > mx ? est[c] : mx;
    }
    for (int64_t c = 0; c < nb; c++) z += est[c] = exp(est[c] - mx);
    for (int64_t c = 0; c < nb; c++) est[c] /= z;
    /* a_hat = the probe's column sums per key block, over L rows that each sum to 1 */
    for (int64_t j = 0; j < n; j++) tru[j / B] += col[j];
    for (int64_t c = 0; c < nb; c++) tru[c] /= (double)L;
    /* JSD = (KL(a_bar || m) + KL(a_hat || m)) / 2, m = (a_bar + a_hat) / 2 */
    double js = 0;
    for (int64_t c = 0; c < nb; c++) {
        double m = 0.5 * (est[c] + tru[c]);
        if (est[c] > 0) js += 0.5 * est[c] * log(est[c] / m);
        if (tru[c] > 0) js += 0.5 * tru[c] * log(tru[c] / m);
    }
    f->js = sqrt(js > 0 ? js : 0);
    f->query_aware = f->js < tau;
    led->flops_select +=
        (double)n * (double)d + (double)L * (double)d + 2.0 * (double)nb * (double)d + (double)n;
    led->ops_other += 3.0 * (double)nb;

    rc = f->query_aware ? flex_blocks(p, &x, kp, gamma, f, led)
                        : flex_lines(p, gamma, col, diag, idx, val, f, led);
done:
    ab_dyn_qk_free(&x);
    ab_free(val);
    ab_free(idx);
    ab_free(kp);
    if (rc) ab_dyn_flex_free(f);
    return rc;
}

static void flex_prepare_free(void *state)
{
    if (!state) return;
    ab_dyn_probed_free(state);
    free(state);
}

/* The probe of the last B rows of p (knob-independent): O(B n d). */
static int flex_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    struct ab_dyn_probed *pr = calloc(1, sizeof *pr);
    if (!pr) return ab_fail(AB_E_NOMEM, "flexprefill: cannot allocate the probe");
    int rc = ab_dyn_probed_make(p, AB_MIN(B, p->h->n_q - p->q0), pr);
    if (rc) {
        free(pr);
        return rc;
    }
    *state = pr;
    return AB_OK;
}

static void flex_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    const struct ab_dyn_flex *f = sel;
    if (f->query_aware)
        ab_dyn_blocks_keep(p, &f->blocks, keep);
    else
        ab_dyn_lines_keep(p, &f->lines, keep);
}

static int flex_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    struct ab_dyn_flex f;
    int rc = ab_dyn_flex_select(p, knob, TAU, &f, led);
    if (!rc) rc = ab_dyn_attend(p, flex_fill, &f, o, keep);
    ab_dyn_flex_free(&f);
    return rc;
}

const struct ab_method ab_method_flexprefill = {
    .name = "flexprefill",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "per head: query-aware blocks (pooled map) or vertical-slash lines (probe), the "
               "fewest covering a fraction gamma of the attention mass",
    .citation = "FlexPrefill, Lai et al. 2025, arXiv 2502.20766",
    .cost_words = "4d per kept cell (counted from the selection); selection 2Bnd + 4P + nd + Bd "
                  "+ 2 nb d + n (probe, pooled estimate), + 4n (vertical-slash heads) or + nd + "
                  "2 nb^2 d + 4E (query-aware heads); B = 64, P probe cells, E visible block "
                  "pairs",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "gamma", .lo = 0.01, .hi = 1, .integer = 0, .def = 0.9, .unit = "fraction"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = flex_run,
    .prepare = flex_prepare,
    .prepare_free = flex_prepare_free,
};
