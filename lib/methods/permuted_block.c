/* permuted_block.c - `permuted-block`: block-sparse prefill on a permuted key order, after
 * PBS-Attn (Wang et al. 2025, "Sparser Block-Sparse Attention via Token Permutation",
 * arXiv 2510.21270: segmented, query-aware key permutation followed by block-sparse attention).
 *
 * Rule: attention is invariant to a permutation of the keys (with their values), so keys may be
 * reordered to make the keys one query block needs fall into few blocks. Keys [64, n) are cut
 * into segments of S = 512 (8 blocks of B = 64); inside each segment the keys are sorted by
 * their importance to the last query block of the phase, imp_j = mean(Q_last) . k_j (highest
 * first, ties to the lower index), and the sorted run is cut into 8 permuted blocks. Causality
 * holds because keys only move inside a segment and a segment is offered to a query block only
 * once it lies wholly before the query block's local blocks. Then block-topk (block.c) runs on
 * that order: for query block b (seeing nvb key blocks) the first key block, the diagonal
 * block and the one before it are forced (original order), and the candidates are the keys of
 * original blocks 1 .. nvb - 3, grouped as the permuted blocks of the segments that end at or
 * before key (nvb - 2) 64, plus the original blocks of the partial segment after them. Every
 * candidate unit holds 64 keys, and there are nvb - 3 of them, as in block-topk; units are
 * ranked by pool(Q)_b . pool(K)_unit and the top k - 3 kept. Exact softmax over the kept keys.
 * Knob k: blocks per query block, forced ones included, 1 .. n (k >= ceil(n / 64) is dense).
 *
 * Cost (analytic on standard positions; tied positions are counted from the selection): the
 * cells of block-topk at the same k (the units have its sizes), 4d each. Selection FLOPs:
 * block-topk's n d + n d pooling additions and 2 nb^2 d original block scores, plus
 * 64 d + 2 n_s d for the importances (pooling the last 64 queries, one product per segment
 * key; n_s = 512 floor((n - 64) / 512) segment keys), n_s d additions to pool the permuted
 * blocks and 2 nb (n_s / 64) d for their scores (nb = ceil(n / 64); both score matrices are
 * computed whole). Ops: block-topk's c ceil(log2 c) per query block (c = nvb - 3 candidates)
 * plus 512 * 9 to sort each segment.
 *
 * Deviations: queries are not permuted (PBS-Attn permutes queries and keys within segments;
 * the block mask of a query block does not change with the order of its rows); the diagonal
 * segment is handled by block-topk's forced local blocks in original order plus original
 * candidate blocks (PBS-Attn computes it with a causal mask inside the permuted segment); the
 * key importance comes from the last query block's mean query (no softmax); S = 512 and B = 64
 * are our choices; the first key block is forced and never permuted; ties go to the lower
 * index; causal prefill only. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { B = AB_DYN_B, SEG = 512, G = SEG / B, N_FORCED = 3 };

/* The permuted layout of one head: segment keys in sorted order. */
struct pb_layout {
    int64_t n_seg;  /* complete segments: keys [B, B + n_seg SEG) */
    int64_t *perm;  /* (n_seg SEG) key index at each permuted position */
    int64_t nb;     /* original key blocks */
    int64_t *units; /* (nbq, nb) kept unit ids per query block, -1 padded: id < nb is an
                       original block, nb + u permuted block u = g G + t */
    int64_t *n_units;
};

static void pb_free(struct pb_layout *l)
{
    ab_free(l->perm);
    ab_free(l->units);
    ab_free(l->n_units);
    *l = (struct pb_layout){0};
}

static int64_t knob_blocks(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

static int64_t blocks_kept(int64_t nvb, int64_t k)
{
    return AB_MIN(nvb, AB_MAX(k, AB_MIN(nvb, N_FORCED)));
}

static int64_t segments(int64_t n)
{
    return n > B ? (n - B) / SEG : 0;
}

static double select_flops(const struct ab_problem *p)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, nb = (n + B - 1) / B, ns = segments(n) * SEG;
    double f = (double)(h->n_q - p->q0) * (double)d + (double)n * (double)d +
               2.0 * (double)(nb - ab_dyn_first_qblock(p)) * (double)nb * (double)d;
    if (ns > 0)
        f += (double)AB_MIN(B, h->n_q - p->q0) * (double)d + 2.0 * (double)ns * (double)d +
             (double)ns * (double)d +
             2.0 * (double)(nb - ab_dyn_first_qblock(p)) * (double)(ns / B) * (double)d;
    return f;
}

static double segment_sort_ops(int64_t n)
{
    return (double)segments(n) * ab_dyn_sort_ops(SEG);
}

/* Candidate units of a query block seeing nvb key blocks: permuted blocks of the segments
 * ending at or before key (nvb - 2) B, then original blocks of the partial segment. */
static int64_t unit_list(const struct pb_layout *l, int64_t nvb, int64_t *out)
{
    int64_t end = (nvb - 2) * B, m = 0;
    if (nvb < N_FORCED + 1) return 0;
    int64_t g_done = AB_MIN(l->n_seg, (end - B) / SEG);
    for (int64_t u = 0; u < g_done * G; u++) out[m++] = l->nb + u;
    for (int64_t c = (B + g_done * SEG) / B; c < nvb - 2; c++) out[m++] = c;
    return m;
}

/* Keys of a unit: a run [j0, j0 + B) of the original order or of perm. */
static const int64_t *unit_perm(const struct pb_layout *l, int64_t id)
{
    return id >= l->nb ? l->perm + (id - l->nb) * B : NULL;
}

/* The permutation, unit scores and per-query-block choice into l; sort ops into *sort. */
static int pb_select(const struct ab_problem *p, int64_t k, struct pb_layout *l, double *sort)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, nb = (n + B - 1) / B, ns = segments(n) * SEG, np = ns / B;
    *l = (struct pb_layout){.n_seg = segments(n), .nb = nb};
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    l->perm = ab_alloc(ab_size_mul((size_t)ns + 1, sizeof(int64_t)));
    l->units = ab_alloc(ab_size_mul((size_t)(nb * nb), sizeof(int64_t)));
    l->n_units = ab_alloc(ab_size_mul((size_t)nb, sizeof(int64_t)));
    size_t nf = (size_t)(nb * d + (nb + np) * d + nb * (nb + np) + d + SEG);
    float *qp = ab_alloc(ab_size_mul(nf, sizeof(float)));
    float *kp = qp ? qp + nb * d : NULL;          /* (nb + np, d): original, then permuted */
    float *s = qp ? kp + (nb + np) * d : NULL;    /* (nb, nb + np) unit scores */
    float *qbar = qp ? s + nb * (nb + np) : NULL; /* (d) */
    double *score = ab_alloc(ab_size_mul((size_t)AB_MAX(SEG, nb + np), sizeof(double)));
    int64_t *idx = ab_alloc(ab_size_mul((size_t)AB_MAX(SEG, nb + np), sizeof(int64_t)));
    int64_t *cand = ab_alloc(ab_size_mul((size_t)(nb + np), sizeof(int64_t)));
    if (!l->perm || !l->units || !l->n_units || !qp || !score || !idx || !cand) {
        rc = ab_fail(AB_E_NOMEM, "permuted-block: cannot allocate the layout");
        goto done;
    }
    /* importance of each segment key to the last query block: mean(Q_last) . k_j */
    int64_t L = l->n_seg > 0 ? AB_MIN(B, h->n_q - p->q0) : 0;
    for (int64_t i = h->n_q - L; i < h->n_q; i++)
        for (int64_t c = 0; c < d; c++) qbar[c] += x.q[i * d + c];
    for (int64_t c = 0; c < d; c++) qbar[c] /= (float)AB_MAX(L, 1);
    for (int64_t g = 0; g < l->n_seg; g++) {
        int64_t j0 = B + g * SEG;
        for (int64_t t = 0; t < SEG; t++)
            score[t] = cblas_sdot((int)d, qbar, 1, x.k + (j0 + t) * d, 1);
        ab_dyn_rank(score, SEG, 0, idx);
        for (int64_t t = 0; t < SEG; t++) l->perm[g * SEG + t] = j0 + idx[t];
    }
    *sort += segment_sort_ops(n);
    /* pooled units: original blocks, then permuted blocks */
    ab_dyn_pool(x.q, n, d, qp);
    ab_dyn_pool(x.k, n, d, kp);
    for (int64_t u = 0; u < np; u++) {
        float *y = kp + (nb + u) * d;
        for (int64_t t = 0; t < B; t++)
            for (int64_t c = 0; c < d; c++) y[c] += x.k[l->perm[u * B + t] * d + c];
        for (int64_t c = 0; c < d; c++) y[c] /= (float)B;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)(nb + np), (int)d, 1.0f, qp,
                (int)d, kp, (int)d, 0.0f, s, (int)(nb + np));
    /* per query block: forced original blocks, then the best candidate units */
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t nvb = ab_dyn_block_visible(h, b), m = blocks_kept(nvb, k);
        int64_t *u = l->units + b * nb, nu = 0;
        u[nu++] = 0;
        if (nvb >= 2) u[nu++] = nvb - 1;
        if (nvb >= 3) u[nu++] = nvb - 2;
        int64_t c_n = unit_list(l, nvb, cand);
        for (int64_t c = 0; c < c_n; c++) score[c] = s[b * (nb + np) + cand[c]];
        *sort += ab_dyn_rank(score, c_n, 0, idx);
        for (int64_t t = 0; t < c_n && nu < m; t++) u[nu++] = cand[idx[t]];
        l->n_units[b] = nu;
    }
done:
    ab_free(qp);
    ab_free(score);
    ab_free(idx);
    ab_free(cand);
    ab_dyn_qk_free(&x);
    if (rc) pb_free(l);
    return rc;
}

/* Marks the kept keys of query block b in mark (n) with stamp. */
static void mark_block(const struct pb_layout *l, int64_t b, int64_t n, int64_t *mark,
                       int64_t stamp)
{
    for (int64_t t = 0; t < l->n_units[b]; t++) {
        int64_t id = l->units[b * l->nb + t];
        const int64_t *perm = unit_perm(l, id);
        if (perm)
            for (int64_t r = 0; r < B; r++) mark[perm[r]] = stamp;
        else
            for (int64_t j = id * B; j < AB_MIN(n, (id + 1) * B); j++) mark[j] = stamp;
    }
}

/* Cells of the phase kept by the layout, counted key by key. */
static int pb_cells(const struct ab_problem *p, const struct pb_layout *l, double *cells)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k;
    int64_t *mark = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t)));    /* (n) stamps */
    int64_t *pre = ab_alloc(ab_size_mul((size_t)n + 1, sizeof(int64_t))); /* (n + 1) */
    if (!mark || !pre) {
        ab_free(mark);
        ab_free(pre);
        return ab_fail(AB_E_NOMEM, "permuted-block: cannot allocate cell counts");
    }
    for (int64_t b = ab_dyn_first_qblock(p); b < l->nb; b++) {
        mark_block(l, b, n, mark, b + 1);
        for (int64_t j = 0; j < n; j++) pre[j + 1] = pre[j] + (mark[j] == b + 1);
        for (int64_t i = AB_MAX(b * B, p->q0); i < AB_MIN(h->n_q, (b + 1) * B); i++)
            *cells += (double)pre[ab_head_visible(h, i)];
    }
    ab_free(mark);
    ab_free(pre);
    return AB_OK;
}

/* block-topk's closed form (block.c) on standard positions. */
static void ledger_standard(const struct ab_problem *p, int64_t k, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, nb = (n + B - 1) / B;
    double cells = 0, sort = segment_sort_ops(n);
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t nvb = b + 1, m = blocks_kept(nvb, k);
        int64_t i0 = AB_MAX(b * B, p->q0), i1 = AB_MIN(n, (b + 1) * B), rows = i1 - i0;
        double first = (double)(i0 - b * B + 1), last = (double)(i1 - b * B);
        cells += (double)rows * (double)((m - 1) * B) + (first + last) * (double)rows / 2;
        sort += ab_dyn_sort_ops(nvb - AB_MIN(nvb, N_FORCED));
    }
    ab_ledger_attend(led, h, cells);
    led->flops_select += select_flops(p);
    led->ops_other += sort;
}

static int pb_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_dyn_check(p);
    int64_t k = knob_blocks(knob, p->h->n_k);
    if (ab_dyn_standard(p->h)) {
        ledger_standard(p, k, led);
        return AB_OK;
    }
    struct pb_layout l;
    double sort = 0, cells = 0;
    int rc = pb_select(p, k, &l, &sort);
    if (!rc) rc = pb_cells(p, &l, &cells);
    if (!rc) {
        ab_ledger_attend(led, p->h, cells);
        led->flops_select += select_flops(p);
        led->ops_other += sort;
    }
    pb_free(&l);
    return rc;
}

static void pb_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    const struct pb_layout *l = sel;
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], b = i / B, v = ab_head_visible(p->h, i);
        for (int64_t t = 0; t < l->n_units[b]; t++) {
            int64_t id = l->units[b * l->nb + t];
            const int64_t *perm = unit_perm(l, id);
            if (!perm) {
                ab_keep_range(keep, r, id * B, AB_MIN(v, (id + 1) * B));
                continue;
            }
            for (int64_t s = 0; s < B; s++)
                if (perm[s] < v) ab_keep_set(keep, r, perm[s]);
        }
    }
}

static int pb_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    int rc = pb_cost(p, knob, led);
    if (rc) return rc;
    struct pb_layout l;
    double sort = 0;
    rc = pb_select(p, knob_blocks(knob, p->h->n_k), &l, &sort);
    if (!rc) rc = ab_dyn_attend(p, pb_fill, &l, o, keep);
    pb_free(&l);
    return rc;
}

const struct ab_method ab_method_permuted_block = {
    .name = "permuted-block",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "keys sorted within segments of 512 by importance to the last query block, then "
               "block-topk on the permuted order (first, diagonal and previous block forced)",
    .citation = "PBS-Attn, Wang et al. 2025, arXiv 2510.21270",
    .cost_words = "block-topk's cells at the same k, 4d each; selection block-topk's 2nd + "
                  "2 nb^2 d, + 64d + 3 n_s d + 2 nb (n_s/64) d for importances and permuted "
                  "blocks (n_s segment keys); sorts: block-topk's + 512 log2 512 per segment",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 16, .unit = "blocks"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = pb_cost,
    .run = pb_run,
};
