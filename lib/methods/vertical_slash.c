/* vertical_slash.c - `vertical-slash`: the Vertical-Slash pattern of MInference (Jiang et al.
 * 2024, "MInference 1.0: Accelerating Pre-filling for Long-Context LLMs via Dynamic Sparse
 * Attention", arXiv 2407.02490, section 3.2 and Algorithm 2), and the probe and line sets it
 * shares with flexprefill.c (dynamic.h).
 *
 * Rule: the last L = 64 queries (the probe) attend exactly to all keys they see,
 * A = softmax(s Q_probe K^T) under the causal mask. Column j scores sum_i A[i, j] (vertical
 * lines: keys every query reads, such as sinks); offset delta scores sum_i A[i, i - delta]
 * (slash lines: keys at a fixed distance, such as the local window). Every query row keeps the
 * top k_v columns and the top k_s slashes, k_v = k_s = k (the knob), the first n_sink = 30
 * columns and the first n_local = 100 offsets always among them (MInference sets their scores
 * to infinity before its top-k); exact softmax over the union of the kept lines within the mask.
 * At k = n every column is kept: dense.
 *
 * Cost: cells = for each row i, the keys j <= i on a kept column or a kept slash, counted once
 * (overlaps of lines are data-dependent, so the cost is counted from the selection; not
 * analytic). Selection FLOPs: 2 L n d for Q_probe K^T plus 4 per probe cell (softmax normaliser
 * and normalisation, one column and one slash addition), P = sum of the probe rows' visible
 * keys (L n - L (L - 1) / 2 in prefill); ops: an exp and a max comparison per probe cell, and
 * c ceil(log2 c) to rank the c non-forced columns and the c non-forced slashes.
 *
 * Deviations: n_sink and n_local are MInference's values for n >= 32768 and scale linearly
 * below (max(1, round(30 n / 32768)) and max(1, round(100 n / 32768)); 4 and 13 at n = 4096):
 * the authors run short contexts densely and ship no small-n values, and the full counts would
 * alone cost more than 1/16 of dense at n = 4096; the forced lines count inside k_v and k_s,
 * so k below them acts as them; lines are kept exactly per token (MInference's kernel rounds
 * slashes to blocks of 64 rows and columns to 64-wide gathers, keeping a few extra cells);
 * one (k_v, k_s) for all heads (MInference searches a per-head pattern and sizes offline);
 * causal prefill only; ties go to the lower index. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { L_PROBE = 64, N_SINK = 30, N_LOCAL = 100 };

/* ---- ranking (dynamic.h) ---- */

struct scored {
    double s;
    int64_t i;
};

/* Higher score first, then lower index: a total order, so selections are reproducible. */
static int scored_cmp(const void *a, const void *b)
{
    const struct scored *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The same order on indices into score (qsort_r's argument), for the sort without a copy. */
static int index_cmp(const void *a, const void *b, void *score)
{
    const int64_t *x = a, *y = b;
    const double *s = score;
    if (s[*x] != s[*y]) return s[*x] > s[*y] ? -1 : 1;
    return (*x > *y) - (*x < *y);
}

double ab_dyn_rank(const double *score, int64_t n, int64_t n_forced, int64_t *idx)
{
    n_forced = AB_MAX(0, AB_MIN(n, n_forced));
    int64_t c = n - n_forced;
    for (int64_t t = 0; t < n_forced; t++) idx[t] = t;
    if (c == 0) return 0;
    struct scored *tmp = ab_alloc(ab_size_mul((size_t)c, sizeof(struct scored))); /* (c) */
    if (!tmp) {
        /* no memory for the copy (faster: its scores sit beside their indices): the same order
         * sorting the indices themselves */
        for (int64_t t = n_forced; t < n; t++) idx[t] = t;
        qsort_r(idx + n_forced, (size_t)c, sizeof(int64_t), index_cmp, (void *)score);
        return ab_dyn_sort_ops(c);
    }
    for (int64_t t = 0; t < c; t++) tmp[t] = (struct scored){score[n_forced + t], n_forced + t};
    qsort(tmp, (size_t)c, sizeof(struct scored), scored_cmp);
    for (int64_t t = 0; t < c; t++) idx[n_forced + t] = tmp[t].i;
    ab_free(tmp);
    return ab_dyn_sort_ops(c);
}

int64_t ab_dyn_cover(const double *v, int64_t n, double gamma)
{
    if (gamma >= 1) return n;
    if (!(gamma > 0)) return 0;
    double total = 0;
    for (int64_t t = 0; t < n; t++) total += v[t];
    double target = gamma * total, cum = 0;
    for (int64_t t = 0; t < n; t++) {
        cum += v[t];
        if (cum >= target) return t + 1;
    }
    return n;
}

/* ---- the probe (dynamic.h) ---- */

/* One probe row i with unnormalised probabilities e[0..v): col[j] += e[j] inv, and
 * diag[i - j] += e[j] inv for the keys j <= i. */
AB_CLONES("avx2", "default")
static void probe_accumulate(const float *e, int64_t v, int64_t i, double inv,
                             double *restrict col, double *restrict diag)
{
    for (int64_t j = 0; j < v; j++) col[j] += inv * e[j];
    double *dg = diag + i; /* dg[-j] = diag[i - j] */
    for (int64_t j = 0; j < AB_MIN(v, i + 1); j++) dg[-j] += inv * e[j];
}

int ab_dyn_probe(const struct ab_problem *p, const struct ab_dyn_qk *x, int64_t L, double *col,
                 double *diag, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, i0 = n - L;
    memset(col, 0, (size_t)h->n_k * sizeof(double));
    memset(diag, 0, (size_t)n * sizeof(double));
    if (L <= 0) return AB_OK;
    int64_t kend = ab_head_visible(h, n - 1); /* keys seen by some probe row */
    /* probe rows in chunks of at most 2^20 scores (4 MB) */
    int64_t chunk = AB_MAX(1, AB_MIN(L, ((int64_t)1 << 20) / AB_MAX(kend, 1)));
    float *s = ab_alloc(ab_size_mul((size_t)(chunk * kend), sizeof(float))); /* (chunk, kend) */
    double *part = ab_alloc(ab_size_mul((size_t)(kend / AB_DYN_B + 1), sizeof(double)));
    if ((!s || !part) && kend > 0) {
        ab_free(s);
        ab_free(part);
        return ab_fail(AB_E_NOMEM, "cannot allocate the probe scores");
    }
    double cells = 0;
    for (int64_t c0 = i0; c0 < n && kend > 0; c0 += chunk) {
        int64_t rows = AB_MIN(chunk, n - c0);
        /* S = scale Q[c0 : c0 + rows] K[0 : kend]^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)kend, (int)d,
                    (float)h->scale, x->q + c0 * d, (int)d, x->k, (int)d, 0.0f, s, (int)kend);
        for (int64_t r = 0; r < rows; r++) {
            int64_t i = c0 + r, v = ab_head_visible(h, i);
            float *row = s + r * kend; /* (kend) */
            /* a_ij = e^(s_ij - max) / z into its column and its slash (offset i - j >= 0) */
            double z = ab_dyn_row_exp(row, v, ab_dyn_row_max(row, v), part);
            if (v > 0) probe_accumulate(row, v, i, 1.0 / z, col, diag);
            cells += (double)v;
        }
    }
    ab_free(s);
    ab_free(part);
    led->flops_select += 2.0 * (double)L * (double)kend * (double)d + 4.0 * cells;
    led->ops_other += 2.0 * cells;
    return AB_OK;
}

int ab_dyn_probed_make(const struct ab_problem *p, int64_t L, struct ab_dyn_probed *pr)
{
    const struct ab_head *h = p->h;
    *pr = (struct ab_dyn_probed){0};
    pr->col = ab_alloc(ab_size_mul((size_t)(h->n_k + h->n_q), sizeof(double)));
    if (!pr->col) return ab_fail(AB_E_NOMEM, "cannot allocate the probe scores");
    pr->diag = pr->col + h->n_k;
    struct ab_dyn_qk x;
    struct ab_ledger mine = {0};
    int rc = ab_dyn_qk_get(h, &x);
    if (!rc) {
        rc = ab_dyn_probe(p, &x, L, pr->col, pr->diag, &mine);
        ab_dyn_qk_free(&x);
    }
    if (rc) {
        ab_dyn_probed_free(pr);
        return rc;
    }
    pr->flops_select = mine.flops_select, pr->ops_other = mine.ops_other;
    return AB_OK;
}

void ab_dyn_probed_free(struct ab_dyn_probed *pr)
{
    ab_free(pr->col);
    pr->col = pr->diag = NULL;
}

/* ---- line sets (dynamic.h) ---- */

int ab_dyn_lines_alloc(struct ab_dyn_lines *l, int64_t n)
{
    *l = (struct ab_dyn_lines){.n = n, .words = (n + 63) / 64};
    l->col = ab_alloc(ab_size_mul((size_t)(3 * l->words + 1), sizeof(uint64_t)));
    if (!l->col) return ab_fail(AB_E_NOMEM, "cannot allocate a line set");
    l->rs = l->col + l->words; /* (2 words + 1), zero past bit n - 1 */
    return AB_OK;
}

void ab_dyn_lines_free(struct ab_dyn_lines *l)
{
    ab_free(l->col);
    l->col = l->rs = NULL;
}

void ab_dyn_lines_add_col(struct ab_dyn_lines *l, int64_t j)
{
    uint64_t bit = (uint64_t)1 << (j & 63);
    if (!(l->col[j >> 6] & bit)) l->n_col++;
    l->col[j >> 6] |= bit;
}

void ab_dyn_lines_add_slash(struct ab_dyn_lines *l, int64_t delta)
{
    int64_t t = l->n - 1 - delta;
    uint64_t bit = (uint64_t)1 << (t & 63);
    if (!(l->rs[t >> 6] & bit)) l->n_rs++;
    l->rs[t >> 6] |= bit;
}

/* Word w of row i's kept keys before the mask: the kept columns, or-ed with the reversed slash
 * set read from bit offset s = n - 1 - i (key j of row i is on slash i - j iff bit s + j is
 * set). */
static inline uint64_t lines_word(const struct ab_dyn_lines *l, int64_t s, int64_t w)
{
    int64_t ws = (s >> 6) + w, bs = s & 63;
    uint64_t x = l->rs[ws] >> bs;
    if (bs) x |= l->rs[ws + 1] << (64 - bs);
    return l->col[w] | x;
}

/* Row i's words into out (words), zero from key vis(i) on. */
static void lines_row(const struct ab_problem *p, const struct ab_dyn_lines *l, int64_t i,
                      uint64_t *out)
{
    int64_t v = ab_head_visible(p->h, i), s = l->n - 1 - i, fw = v >> 6;
    for (int64_t w = 0; w < fw; w++) out[w] = lines_word(l, s, w);
    for (int64_t w = fw; w < l->words; w++) out[w] = 0;
    if (v & 63) out[fw] = lines_word(l, s, fw) & (((uint64_t)1 << (v & 63)) - 1);
}

/* Kept keys of rows [q0, n): popcounts (hardware popcnt where the CPU has it). */
AB_CLONES("popcnt", "default")
static double lines_cells_impl(const struct ab_problem *p, const struct ab_dyn_lines *l)
{
    double cells = 0;
    for (int64_t i = p->q0; i < l->n; i++) {
        int64_t v = ab_head_visible(p->h, i), s = l->n - 1 - i, fw = v >> 6, c = 0;
        for (int64_t w = 0; w < fw; w++) c += __builtin_popcountll(lines_word(l, s, w));
        if (v & 63)
            c += __builtin_popcountll(lines_word(l, s, fw) & (((uint64_t)1 << (v & 63)) - 1));
        cells += (double)c;
    }
    return cells;
}

double ab_dyn_lines_cells(const struct ab_problem *p, const struct ab_dyn_lines *l)
{
    return lines_cells_impl(p, l);
}

void ab_dyn_lines_keep(const struct ab_problem *p, const struct ab_dyn_lines *l,
                       struct ab_keep *keep)
{
    assert(keep->words == l->words);
    for (int64_t r = 0; r < p->n_rows; r++)
        lines_row(p, l, p->rows[r], keep->bits + r * keep->words);
}

/* ---- vertical-slash ---- */

/* Forced line counts at n keys: MInference's, scaled below AB_DYN_N_REF (see the top). */
static int64_t vs_sinks(int64_t n)
{
    return AB_MIN(n, ab_dyn_scaled(N_SINK, n));
}
static int64_t vs_locals(int64_t n)
{
    return AB_MIN(n, ab_dyn_scaled(N_LOCAL, n));
}

/* prepare()'s state: the probe of the last L_PROBE rows, then the columns and slashes in rank
 * order (sinks and local offsets first): k only cuts these lists. */
struct vs_prep {
    struct ab_dyn_probed probe;
    int64_t *idx;     /* (2n): columns, then slashes */
    double ops[2];    /* the two sorts' element operations */
};

static void vs_prepare_free(void *state)
{
    struct vs_prep *st = state;
    if (!st) return;
    ab_dyn_probed_free(&st->probe);
    ab_free(st->idx);
    free(st);
}

/* The probe and the two rankings of p: O(L n d + n log n). */
static int vs_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    int64_t n = p->h->n_q, L = AB_MIN(L_PROBE, n - p->q0);
    struct vs_prep *st = calloc(1, sizeof *st);
    if (st) st->idx = ab_alloc(ab_size_mul((size_t)(2 * n), sizeof(int64_t)));
    if (!st || !st->idx) {
        vs_prepare_free(st);
        return ab_fail(AB_E_NOMEM, "vertical-slash: cannot allocate scores");
    }
    int rc = ab_dyn_probed_make(p, L, &st->probe);
    if (rc) {
        vs_prepare_free(st);
        return rc;
    }
    st->ops[0] = ab_dyn_rank(st->probe.col, n, vs_sinks(n), st->idx);
    st->ops[1] = ab_dyn_rank(st->probe.diag, n, vs_locals(n), st->idx + n);
    *state = st;
    return AB_OK;
}

/* The selection at k lines per kind into l (allocated here), and the phase's ledger into led. */
static int vs_select(const struct ab_problem *p, double knob, struct ab_dyn_lines *l,
                     struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    const struct vs_prep *st = p->prep;
    assert(st); /* the engine prepared p */
    int64_t n = h->n_q;
    int64_t k = !(knob >= 1) ? 1 : knob >= (double)n ? n : (int64_t)knob;
    int64_t n_sink = vs_sinks(n), n_local = vs_locals(n);
    int64_t kv = AB_MIN(n, AB_MAX(k, n_sink)), ks = AB_MIN(n, AB_MAX(k, n_local));
    int rc = ab_dyn_lines_alloc(l, n);
    if (rc) return rc;
    ab_dyn_probed_ledger(&st->probe, led);
    led->ops_other += st->ops[0];
    led->ops_other += st->ops[1];
    /* top k_v columns, sinks first; top k_s slashes, local offsets first */
    for (int64_t t = 0; t < kv; t++) ab_dyn_lines_add_col(l, st->idx[t]);
    for (int64_t t = 0; t < ks; t++) ab_dyn_lines_add_slash(l, st->idx[n + t]);
    ab_ledger_attend(led, h, ab_dyn_lines_cells(p, l));
    return AB_OK;
}

static void lines_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    ab_dyn_lines_keep(p, sel, keep);
}

static int vs_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    struct ab_dyn_lines l = {0};
    int rc = vs_select(p, knob, &l, led);
    if (!rc) rc = ab_dyn_attend(p, lines_fill, &l, o, keep);
    ab_dyn_lines_free(&l);
    return rc;
}

const struct ab_method ab_method_vertical_slash = {
    .name = "vertical-slash",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "probe of the last 64 queries; keep the top k columns and top k diagonals "
               "(sink columns and local diagonals forced)",
    .citation = "MInference, Jiang et al. 2024, arXiv 2407.02490",
    .cost_words = "4d per kept cell (union of kept columns and diagonals, counted from the "
                  "selection); selection 2 L n d + 4 P (L = 64 probe rows, P their visible "
                  "cells); ops 2 P + sorts of the columns and diagonals",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 1000, .unit = "lines"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = vs_run,
    .prepare = vs_prepare,
    .prepare_free = vs_prepare_free,
};
