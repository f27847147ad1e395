/* xattention.c - `xattention`: block-sparse prefill with antidiagonal scoring, XAttention (Xu
 * et al. 2025, "XAttention: Block Sparse Attention with Antidiagonal Scoring", arXiv
 * 2503.16428, section 2: antidiagonal scoring, threshold block selection).
 *
 * Rule: inside every S x S tile (S = 8, the stride) of the attention map, the sum along its
 * antidiagonal, sum_t q_{aS+t} . k_{cS+S-1-t}, is one entry of a reduced map: it is the product
 * of reduced query a (the S rows aS .. aS+S-1 laid end to end, S d values) with reduced key c
 * (the S keys cS+S-1 .. cS in reverse order), so the reduced map is one (n/S) x (n/S) product
 * of inner dimension S d. Its rows are softmaxed at logit scale s / S (the mean of the S
 * products) over the reduced keys the reduced query sees (c <= a on standard positions), and
 * summed over tiles of blocks of B = 64: M[b][c] = the reduced mass of key block c in query
 * block b. Each query block keeps key blocks by decreasing M until their share of the row's
 * total reaches tau (the knob), always keeping the first key block and the diagonal block
 * (they sit first in the order, so the cover is the shortest such prefix). Exact softmax over
 * the kept blocks within the causal mask. tau = 1 keeps every block: dense.
 *
 * Cost (data-dependent: counted from the selection): 4d per kept cell (block cells within the
 * mask); selection FLOPs 2 S d per visible reduced cell (E_r of them, about (n/S)^2 / 2, so
 * about n^2 d / S in all) + 3 E_r (softmax sum and normalisation, block sum) + 2 E_b (the
 * cover's total and running sum over the E_b visible block pairs); ops: an exp and a max
 * comparison per reduced cell, c ceil(log2 c) to rank the c non-forced blocks of each row.
 * The reduced map does not depend on tau: prepare() computes it once per problem (method.h), so
 * the solver's bisection and every budget of a head reuse it; the ledger counts it in every
 * run.
 *
 * Deviations from the paper: B = 64 (the authors use 128) like the other block methods here;
 * the selection order puts the forced blocks first (the authors force them after thresholding);
 * reduced rows past n are zero-padded; causal prefill only; ties go to the lower block. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { B = AB_DYN_B, S = 8, R = B / S /* reduced rows per block */ };

/* The knob-independent part of the selection of one head (prepare()'s state): block masses
 * and their FLOPs. */
struct xa_scores {
    int64_t nb;   /* blocks per side */
    double *mass; /* (nb, nb) M[b][c] */
    double e_r;   /* visible reduced cells of the phase */
};

/* Reduced key groups seen by some row of reduced query a: ceil(vis(last row of a) / S). */
static int64_t reduced_visible(const struct ab_head *h, int64_t a)
{
    int64_t last = AB_MIN(h->n_q, (a + 1) * S) - 1;
    return (ab_head_visible(h, last) + S - 1) / S;
}

/* Computes the block masses of p into sc (allocated here). */
static int xa_compute(const struct ab_problem *p, struct xa_scores *sc)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_q, d = h->d, nr = (n + S - 1) / S, nb = (n + B - 1) / B, sd = S * d;
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    sc->nb = nb;
    sc->e_r = 0;
    sc->mass = ab_alloc(ab_size_mul((size_t)(nb * nb), sizeof(double)));
    float *qr = ab_alloc(ab_size_mul((size_t)(2 * nr * sd + R * nr), sizeof(float)));
    float *kr = qr ? qr + nr * sd : NULL, *s = qr ? kr + nr * sd : NULL; /* (nr, Sd) x2, (R, nr) */
    if (!sc->mass || !qr) {
        ab_free(sc->mass);
        sc->mass = NULL;
        ab_free(qr);
        ab_dyn_qk_free(&x);
        return ab_fail(AB_E_NOMEM, "xattention: cannot allocate the reduced map");
    }
    /* reduced queries: rows aS .. aS+S-1 in order; reduced keys: cS+S-1 .. cS (reversed) */
    for (int64_t a = 0; a < nr; a++)
        for (int64_t t = 0; t < S; t++) {
            int64_t iq = a * S + t, ik = a * S + S - 1 - t;
            if (iq < n) memcpy(qr + a * sd + t * d, x.q + iq * d, (size_t)d * sizeof(float));
            if (ik < n) memcpy(kr + a * sd + t * d, x.k + ik * d, (size_t)d * sizeof(float));
        }
    float scale = (float)(h->scale / S);
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t a0 = b * R, a1 = AB_MIN(nr, (b + 1) * R), kend = reduced_visible(h, a1 - 1);
        /* reduced scores of the block's reduced rows against the keys they may see */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(a1 - a0), (int)kend, (int)sd,
                    scale, qr + a0 * sd, (int)sd, kr, (int)sd, 0.0f, s, (int)kend);
        double *mb = sc->mass + b * nb;
        for (int64_t a = a0; a < a1; a++) {
            float *row = s + (a - a0) * kend;
            int64_t v = reduced_visible(h, a);
            /* softmax over the reduced row, summed per key block (R reduced keys each) */
            float mx = ab_dyn_row_max(row, v);
            double z = 0;
            for (int64_t c = 0; c < v; c++) z += row[c] = expf(row[c] - mx);
            for (int64_t c = 0; c < v; c++) mb[c / R] += row[c] / z;
            sc->e_r += (double)v;
        }
    }
    ab_free(qr);
    ab_dyn_qk_free(&x);
    return rc;
}

static void xa_prepare_free(void *state)
{
    struct xa_scores *sc = state;
    if (!sc) return;
    ab_free(sc->mass);
    free(sc);
}

/* The block masses of p: O(n^2 d / S) time, O((n / B)^2) memory. */
static int xa_prepare(const struct ab_problem *p, void **state)
{
    ab_dyn_check(p);
    struct xa_scores *sc = calloc(1, sizeof *sc);
    if (!sc) return ab_fail(AB_E_NOMEM, "xattention: cannot allocate the reduced map");
    int rc = xa_compute(p, sc);
    if (rc) {
        xa_prepare_free(sc);
        return rc;
    }
    *state = sc;
    return AB_OK;
}

/* The block mask at threshold tau into s, the phase's ledger into led. */
static int xa_select(const struct ab_problem *p, double tau, struct ab_dyn_blocks *s,
                     struct ab_ledger *led)
{
    ab_dyn_check(p);
    const struct ab_head *h = p->h;
    const struct xa_scores *sc = p->prep;
    assert(sc); /* the engine prepared p */
    int rc = ab_dyn_blocks_alloc(s, h->n_q);
    if (rc) return rc;
    int64_t nb = s->nbk;
    double *cand = ab_alloc(ab_size_mul((size_t)(2 * nb), sizeof(double))); /* (nb), (nb) */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)nb, sizeof(int64_t)));      /* (nb) */
    if (!cand || !idx) {
        ab_free(cand);
        ab_free(idx);
        return ab_fail(AB_E_NOMEM, "xattention: cannot allocate block ranks");
    }
    double *val = cand + nb, e_b = 0, sort = 0;
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t nvb = ab_dyn_block_visible(h, b), f = nvb > 1 ? 2 : 1;
        const double *mb = sc->mass + b * nb;
        uint8_t *on = s->on + b * nb;
        /* order: block 0, the diagonal block, then the others by mass */
        for (int64_t c = 0; c < nvb - f; c++) cand[c] = mb[1 + c];
        sort += ab_dyn_rank(cand, nvb - f, 0, idx);
        val[0] = mb[0];
        if (f == 2) val[1] = mb[nvb - 1];
        for (int64_t t = 0; t < nvb - f; t++) val[f + t] = cand[idx[t]];
        int64_t m = AB_MAX(f, ab_dyn_cover(val, nvb, tau));
        on[0] = on[nvb - 1] = 1;
        for (int64_t t = 0; t < m - f; t++) on[1 + idx[t]] = 1;
        e_b += (double)nvb;
    }
    ab_free(cand);
    ab_free(idx);
    double cells = 0;
    rc = ab_dyn_blocks_cells(p, s, &cells);
    if (rc) return rc;
    ab_ledger_attend(led, h, cells);
    led->flops_select += 2.0 * S * (double)h->d * sc->e_r + 3.0 * sc->e_r + 2.0 * e_b;
    led->ops_other += 2.0 * sc->e_r + sort;
    return AB_OK;
}

static void xa_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    ab_dyn_blocks_keep(p, sel, keep);
}

static int xa_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                  struct ab_ledger *led)
{
    struct ab_dyn_blocks s = {0};
    int rc = xa_select(p, knob, &s, led);
    if (!rc) rc = ab_dyn_attend(p, xa_fill, &s, o, keep);
    ab_dyn_blocks_free(&s);
    return rc;
}

const struct ab_method ab_method_xattention = {
    .name = "xattention",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "block scores from strided antidiagonal sums (stride 8) of a reduced softmax; "
               "per query block keep blocks by score until a share tau of the mass",
    .citation = "XAttention, Xu et al. 2025, arXiv 2503.16428",
    .cost_words = "4d per kept cell (counted from the selection); selection 2 S d E_r + 3 E_r + "
                  "2 E_b (E_r visible reduced cells, about (n/S)^2/2, so about n^2 d / S; E_b "
                  "visible block pairs); S = 8, B = 64",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "tau", .lo = 0.01, .hi = 1, .integer = 0, .def = 0.9, .unit = "fraction"},
    .flags = AB_METHOD_SELECTS,
    .cost = NULL,
    .run = xa_run,
    .prepare = xa_prepare,
    .prepare_free = xa_prepare_free,
};
