/* dhsa.c - `dhsa`: dynamic hierarchical sparse attention in prefill, after DHSA (Xiong et al.
 * 2025, "Long-Context Modeling with Dynamic Hierarchical Sparse Attention for On-Device LLMs",
 * arXiv 2510.24606: dynamic chunking, length-normalised chunk representations, chunk-level
 * similarity upsampled to tokens, top-N token selection).
 *
 * Rule, per head:
 * 1. chunking: the adjacent-key similarity sim_j = cos(k_{j-1}, k_j) (j = 1 .. n-1) drops where
 *    the content changes; the sequence is cut before the ceil(n / 64) - 1 keys of lowest
 *    similarity, taken greedily in increasing similarity (ties to the lower index), skipping a
 *    cut that would leave a chunk shorter than 8 tokens. Chunks are token spans shared by Q
 *    and K.
 * 2. chunk representations: q~_a = sqrt(|a|) mean_{i in a} q_i and k~_b = sqrt(|b|) mean k_j
 *    (mean times the square root of the size, the paper's length-normalised aggregation), and
 *    chunk scores S_ab = q~_a . k~_b.
 * 3. upsampling and selection: key j of chunk b scores S_{a(i), b} for query i of chunk a(i);
 *    row i keeps its own key and then its top N_i - 1 other visible keys by that score: whole
 *    chunks in decreasing S (ties to the lower chunk), the last one partly, its most recent
 *    tokens first. N_i = min(vis(i), max(1, ceil(f vis(i)))), f the knob.
 * Exact softmax over the kept keys, within the causal mask. Knob f: kept fraction, 0.001 .. 1
 * (f = 1 keeps every visible key: dense). Default 0.1.
 *
 * Cost (analytic: cells are sum_i N_i; the chunk count nc is recomputed from K in O(n d), which
 * cost() does): 4d per kept cell. Selection FLOPs: 2 (n - 1) d for the adjacent products and
 * 2 n d for the key norms (the catalogue's 2 n d), 2 n d pooling additions for Q and K and
 * 2 nc d for the sqrt-size scaling, 2 nc^2 d for the chunk scores (one sgemm, masked part
 * included; the catalogue's 2 (n/c)^2 d). Ops: n - 1 divisions for the cosines, the sort of
 * the cut candidates c ceil(log2 c), and nc ceil(log2 nc) per chunk to rank the key chunks.
 *
 * Deviations: the paper predicts boundaries with a trained boundary detector; we cut at the
 * lowest adjacent-key cosine similarities with a fixed mean chunk size of 64 and a minimum of 8
 * (training-free stand-in); one chunking per head (the paper chunks per sequence and layer); the
 * own key is forced and counts in N_i; ties within a partly taken chunk go to the most recent
 * tokens; selection reads chunk means over whole chunks, including keys after a row in its own
 * chunk (only V is hidden from earlier rows); causal prefill only. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { CHUNK = 64, MIN_LEN = 8 };

/* The chunking of one head: chunk a is keys [start[a], start[a + 1]). */
struct dh_chunks {
    int64_t nc;
    int64_t *start; /* (nc + 1) */
    int64_t *of;    /* (n) chunk of each token */
    double sort_ops;
};

static void dh_chunks_free(struct dh_chunks *c)
{
    ab_free(c->start);
    ab_free(c->of);
    *c = (struct dh_chunks){0};
}

/* Step 1: cuts at the lowest adjacent-key similarities (see the top). */
static int dh_chunk(const struct ab_head *h, const float *k, struct dh_chunks *c)
{
    int64_t n = h->n_k, d = h->d, target = (n + CHUNK - 1) / CHUNK;
    *c = (struct dh_chunks){0};
    double *nrm = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));        /* (n) */
    double *score = ab_alloc(ab_size_mul((size_t)n, sizeof(double)));      /* (n) */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t)));      /* (n) */
    uint8_t *cut = ab_alloc((size_t)n + 1);                                /* (n + 1) */
    c->start = ab_alloc(ab_size_mul((size_t)target + 1, sizeof(int64_t))); /* (target + 1) */
    c->of = ab_alloc(ab_size_mul((size_t)n, sizeof(int64_t)));
    int rc = AB_OK;
    if (!nrm || !score || !idx || !cut || !c->start || !c->of) {
        rc = ab_fail(AB_E_NOMEM, "dhsa: cannot allocate the chunking");
        goto done;
    }
    for (int64_t j = 0; j < n; j++) nrm[j] = sqrt(cblas_sdot((int)d, k + j * d, 1, k + j * d, 1));
    /* candidates j in [MIN_LEN, n - MIN_LEN], most dissimilar first: score = -cos */
    int64_t n_cand = n - 2 * MIN_LEN + 1 > 0 ? n - 2 * MIN_LEN + 1 : 0;
    for (int64_t t = 0; t < n_cand; t++) {
        int64_t j = MIN_LEN + t;
        double den = nrm[j - 1] * nrm[j];
        double dot = cblas_sdot((int)d, k + (j - 1) * d, 1, k + j * d, 1);
        score[t] = den > 0 ? -dot / den : 0.0;
    }
    c->sort_ops = ab_dyn_rank(score, n_cand, 0, idx);
    int64_t made = 0;
    for (int64_t t = 0; t < n_cand && made < target - 1; t++) {
        int64_t j = MIN_LEN + idx[t], ok = 1;
        for (int64_t e = AB_MAX(0, j - MIN_LEN + 1); e < AB_MIN(n, j + MIN_LEN) && ok; e++)
            ok = !cut[e];
        if (ok) cut[j] = 1, made++;
    }
    c->start[c->nc++] = 0;
    for (int64_t j = 1; j < n; j++)
        if (cut[j]) c->start[c->nc++] = j;
    c->start[c->nc] = n;
    for (int64_t a = 0; a < c->nc; a++)
        for (int64_t j = c->start[a]; j < c->start[a + 1]; j++) c->of[j] = a;
done:
    ab_free(nrm);
    ab_free(score);
    ab_free(idx);
    ab_free(cut);
    if (rc) dh_chunks_free(c);
    return rc;
}

/* Keys kept by a row seeing v keys at fraction f. */
static int64_t dh_kept(double f, int64_t v)
{
    if (v <= 0) return 0;
    double x = ceil(f * (double)v);
    int64_t m = x >= (double)v ? v : (int64_t)x;
    return AB_MAX(1, m);
}

static double dh_knob(double knob)
{
    return knob > 0 ? knob : 0;
}

/* The ledger of the phase given the chunk count. */
static void dh_ledger(const struct ab_problem *p, double f, const struct dh_chunks *c,
                      struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    double n = (double)h->n_k, d = (double)h->d, nc = (double)c->nc, cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) cells += (double)dh_kept(f, ab_head_visible(h, i));
    ab_ledger_attend(led, h, cells);
    led->flops_select +=
        2.0 * (n - 1) * d + 2.0 * n * d + 2.0 * n * d + 2.0 * nc * d + 2.0 * nc * nc * d;
    led->ops_other += (n - 1) + c->sort_ops + nc * ab_dyn_sort_ops(c->nc);
}

static int dh_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    ab_dyn_check(p);
    struct ab_dyn_qk x;
    struct dh_chunks c;
    int rc = ab_dyn_qk_get(p->h, &x);
    if (rc) return rc;
    rc = dh_chunk(p->h, x.k, &c);
    if (!rc) dh_ledger(p, dh_knob(knob), &c, led);
    dh_chunks_free(&c);
    ab_dyn_qk_free(&x);
    return rc;
}

/* What a run selected: the chunking and each query chunk's ranking of key chunks. */
struct dh_sel {
    struct dh_chunks c;
    int64_t *order; /* (nc, nc) key chunks by decreasing score, per query chunk */
    double f;
};

/* Row r (query i): its own key, then whole chunks by rank, the last one's most recent tokens. */
static void dh_fill(const struct ab_problem *p, const void *selp, struct ab_keep *keep)
{
    const struct dh_sel *sel = selp;
    const struct dh_chunks *c = &sel->c;
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(p->h, i), need = dh_kept(sel->f, v) - 1;
        const int64_t *ord = sel->order + c->of[i] * c->nc;
        ab_keep_set(keep, r, i);
        for (int64_t t = 0; t < c->nc && need > 0; t++) {
            int64_t s = c->start[ord[t]], e = AB_MIN(c->start[ord[t] + 1], v);
            if (s >= e) continue;
            int64_t own = i >= s && i < e, take = AB_MIN(need, e - s - own), lo = e - take;
            if (own && i >= lo) lo--;
            ab_keep_range(keep, r, lo, e);
            need -= take;
        }
    }
}

static int dh_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    int64_t d = h->d;
    struct ab_dyn_qk x;
    struct dh_sel sel = {.f = dh_knob(knob)};
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    rc = dh_chunk(h, x.k, &sel.c);
    if (rc) goto out;
    dh_ledger(p, sel.f, &sel.c, led);
    int64_t nc = sel.c.nc;
    float *qc = ab_alloc(ab_size_mul((size_t)(2 * nc * d + nc * nc), sizeof(float)));
    float *kc = qc ? qc + nc * d : NULL, *s = qc ? kc + nc * d : NULL; /* (nc, d) x 2, (nc, nc) */
    double *score = ab_alloc(ab_size_mul((size_t)nc, sizeof(double))); /* (nc) */
    sel.order = ab_alloc(ab_size_mul((size_t)(nc * nc), sizeof(int64_t)));
    if (!qc || !score || !sel.order) {
        rc = ab_fail(AB_E_NOMEM, "dhsa: cannot allocate chunk scores");
    } else {
        /* q~_a = sum_{i in a} q_i / sqrt(|a|), likewise k~_b */
        for (int64_t a = 0; a < nc; a++) {
            int64_t s0 = sel.c.start[a], s1 = sel.c.start[a + 1];
            for (int64_t j = s0; j < s1; j++)
                for (int64_t t = 0; t < d; t++) {
                    qc[a * d + t] += x.q[j * d + t];
                    kc[a * d + t] += x.k[j * d + t];
                }
            float inv = 1.0f / sqrtf((float)(s1 - s0));
            for (int64_t t = 0; t < d; t++) qc[a * d + t] *= inv, kc[a * d + t] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nc, (int)nc, (int)d, 1.0f, qc,
                    (int)d, kc, (int)d, 0.0f, s, (int)nc);
        for (int64_t a = 0; a < nc; a++) {
            for (int64_t b = 0; b < nc; b++) score[b] = s[a * nc + b];
            ab_dyn_rank(score, nc, 0, sel.order + a * nc);
        }
        rc = ab_dyn_attend(p, dh_fill, &sel, o, keep);
    }
    ab_free(qc);
    ab_free(score);
out:
    ab_free(sel.order);
    dh_chunks_free(&sel.c);
    ab_dyn_qk_free(&x);
    return rc;
}

const struct ab_method ab_method_dhsa = {
    .name = "dhsa",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "dynamic chunks cut at adjacent-key similarity drops, chunk scores of "
               "sqrt(size)-scaled means upsampled to tokens; each row keeps a fraction f",
    .citation = "DHSA, Xiong et al. 2025, arXiv 2510.24606",
    .cost_words = "4d per kept cell, row i keeps min(vis, max(1, ceil(f vis))); selection "
                  "2(n-1)d + 2nd (similarities) + 2nd + 2 nc d (chunk pooling) + 2 nc^2 d "
                  "(chunk scores; nc = ceil(n/64) chunks)",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "f", .lo = 0.001, .hi = 1, .integer = 0, .def = 0.1, .unit = "fraction"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = dh_cost,
    .run = dh_run,
};
