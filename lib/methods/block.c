/* block.c - block-sparse top-k selection in prefill, its oracle, and the block grid shared by the
 * dynamic methods (dynamic.h).
 * - `block-topk`: Q and K are mean-pooled over blocks of B = 64 rows; the block scores
 *   S = Qp Kp^T rank the visible key blocks of each query block, which keeps its top k, always
 *   keeping the first key block, the diagonal block and the one before it. This is the
 *   block-sparse pattern of MInference (Jiang et al. 2024, arXiv 2407.02490, section 3.2,
 *   "Block-Sparse": mean pooling of Q and K over blocks of 64, top-k blocks of the pooled map)
 *   with the fixed initial and local blocks of NSA's selection branch (Yuan et al. 2025,
 *   arXiv 2502.11089, section 3.3.2: blocks of 64, 16 selected blocks counting 1 initial and
 *   2 local ones - hence our default k = 16); MoBA (Lu et al. 2025, arXiv 2502.13189) gates
 *   on mean-pooled key blocks the same way.
 * - `block-oracle`: the same unit and the same forced blocks, the other key blocks ranked by
 *   their true attention mass M[b][c] = sum_{i in b} sum_{j in c} p_ij from the exact map.
 *   Keeping as many blocks as block-topk, including its forced ones, it keeps the largest mass
 *   such a mask can: the upper bound of block-topk at every k, at identical cost. No paper;
 *   its selection reads the exact map and is not counted (AB_METHOD_ORACLE).
 * Both renormalise softmax over the kept keys (exact attention restricted to them).
 *
 * Cost (analytic on standard positions, vis(i) = i + 1): query block b sees nvb = b + 1 key
 * blocks and keeps m_b = min(nvb, max(k, min(nvb, 3))) of them, forced ones included; row i of
 * block b keeps (m_b - 1) B + (i - bB + 1) cells (every kept block below the diagonal is whole).
 * block-topk's selection: n d + n d additions to pool Q and K, 2 nb^2 d for the block scores
 * (nb = ceil(n / B); one sgemm computes the whole nb x nb matrix, so its masked upper triangle is
 * counted too), and c ceil(log2 c) sort operations per query block with c non-forced candidates.
 *
 * Deviations: k counts the forced blocks (as NSA's 16 do), so k < 3 acts as 3; the knob's upper
 * end is n (the interface cannot say ceil(n / B)) and every k >= ceil(n / B) keeps all blocks,
 * i.e. is dense; selection is per query block for every head (NSA and MoBA select per query
 * token, from a compressed-attention or per-token gate); pooled scores are neither scaled nor
 * softmaxed (a row's ranking does not change); causal prefill only; ties go to the lower block.
 * The oracle's masses come from float products with double sums. */
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "attn/expf.h"
#include "core/ab.h"
#include "methods/dynamic.h"
#include "methods/method.h"

enum { B = AB_DYN_B, N_FORCED = 3 };

/* ---- row kernels ---- */

/* Eight running maxima, then the largest. */
AB_CLONES("avx2", "default")
static float ab_dyn_row_max_impl(const float *x, int64_t n)
{
    float lane[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                     -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] = x[j + l] > lane[l] ? x[j + l] : lane[l];
    for (; j < n; j++) lane[0] = x[j] > lane[0] ? x[j] : lane[0];
    float mx = lane[0];
    for (int l = 1; l < 8; l++) mx = lane[l] > mx ? lane[l] : mx;
    return mx;
}

/* x[j] = e^(x[j] - mx) for j < n (n <= B), and their sum over eight float lanes. */
AB_CLONES("avx2", "default")
static double exp_run(float *x, int64_t n, float mx)
{
    for (int64_t j = 0; j < n; j++) x[j] = ab_expf_nonpos(x[j] - mx);
    float lane[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] += x[j + l];
    for (; j < n; j++) lane[0] += x[j];
    double sum = 0;
    for (int l = 0; l < 8; l++) sum += lane[l];
    return sum;
}

/* ---- shared helpers (dynamic.h) ---- */

int64_t ab_dyn_scaled(int64_t x, int64_t n)
{
    double f = n >= AB_DYN_N_REF ? 1.0 : (double)n / AB_DYN_N_REF;
    return AB_MAX(1, (int64_t)llround((double)x * f));
}

int ab_dyn_qk_get(const struct ab_head *h, struct ab_dyn_qk *x)
{
    *x = (struct ab_dyn_qk){.q = h->q, .k = h->k};
    if (h->rope_theta <= 0) return AB_OK;
    x->own = ab_alloc(ab_size_mul((size_t)((h->n_q + h->n_k) * h->d), sizeof(float)));
    if (!x->own) return ab_fail(AB_E_NOMEM, "cannot allocate rotated Q and K");
    float *q = x->own, *k = x->own + h->n_q * h->d; /* (n_q, d), (n_k, d) */
    memcpy(q, h->q, (size_t)(h->n_q * h->d) * sizeof(float));
    memcpy(k, h->k, (size_t)(h->n_k * h->d) * sizeof(float));
    ab_rope_apply(q, h->n_q, h->d, h->q_pos, h->rope_theta);
    ab_rope_apply(k, h->n_k, h->d, h->k_pos, h->rope_theta);
    x->q = q;
    x->k = k;
    return AB_OK;
}

void ab_dyn_qk_free(struct ab_dyn_qk *x)
{
    ab_free(x->own);
    x->own = NULL;
}

void ab_dyn_check(const struct ab_problem *p)
{
    assert(p->phase == AB_PHASE_PREFILL);
    assert(p->h->mask == AB_MASK_CAUSAL);
    assert(p->h->n_q == p->h->n_k);
    assert(p->q0 >= 0 && p->q0 <= p->h->n_q);
}

int ab_dyn_standard(const struct ab_head *h)
{
    if (h->mask != AB_MASK_CAUSAL || h->n_q != h->n_k) return 0;
    /* equal, strictly increasing positions: key i + 1 is the first key past query i */
    for (int64_t i = 0; i < h->n_q; i++)
        if (h->q_pos[i] != h->k_pos[i] || (i > 0 && h->k_pos[i] <= h->k_pos[i - 1])) return 0;
    return 1;
}

void ab_dyn_pool(const float *x, int64_t n, int64_t d, float *out)
{
    for (int64_t b = 0; b * B < n; b++) {
        int64_t r0 = b * B, r1 = AB_MIN(n, r0 + B);
        float *y = out + b * d; /* (d) */
        memset(y, 0, (size_t)d * sizeof(float));
        for (int64_t r = r0; r < r1; r++)
            for (int64_t c = 0; c < d; c++) y[c] += x[r * d + c];
        float inv = 1.0f / (float)(r1 - r0);
        for (int64_t c = 0; c < d; c++) y[c] *= inv;
    }
}

float ab_dyn_row_max(const float *x, int64_t n)
{
    return ab_dyn_row_max_impl(x, n);
}

double ab_dyn_row_exp(float *x, int64_t n, float mx, double *part)
{
    double total = 0;
    for (int64_t c = 0; c * B < n; c++) {
        int64_t len = AB_MIN(B, n - c * B);
        part[c] = exp_run(x + c * B, len, mx);
        total += part[c];
    }
    return total;
}

int ab_dyn_blocks_alloc(struct ab_dyn_blocks *s, int64_t n)
{
    s->nbq = s->nbk = (n + B - 1) / B;
    s->on = ab_alloc(ab_size_mul((size_t)(s->nbq * s->nbk), 1));
    return s->on || n == 0 ? AB_OK : ab_fail(AB_E_NOMEM, "cannot allocate a block mask");
}

void ab_dyn_blocks_free(struct ab_dyn_blocks *s)
{
    ab_free(s->on);
    s->on = NULL;
}

int64_t ab_dyn_block_visible(const struct ab_head *h, int64_t b)
{
    int64_t last = AB_MIN(h->n_q, (b + 1) * B) - 1;
    return (ab_head_visible(h, last) + B - 1) / B;
}

int ab_dyn_blocks_cells(const struct ab_problem *p, const struct ab_dyn_blocks *s, double *cells)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k;
    int64_t *pre = ab_alloc(ab_size_mul((size_t)s->nbk + 1, sizeof(int64_t))); /* (nbk + 1) */
    if (!pre) return ab_fail(AB_E_NOMEM, "cannot allocate block prefix sums");
    for (int64_t b = ab_dyn_first_qblock(p); b < s->nbq; b++) {
        const uint8_t *on = s->on + b * s->nbk;
        /* pre[c] = kept keys in blocks 0..c-1 */
        for (int64_t c = 0; c < s->nbk; c++)
            pre[c + 1] = pre[c] + (on[c] ? AB_MIN(n, (c + 1) * B) - c * B : 0);
        for (int64_t i = AB_MAX(b * B, p->q0); i < AB_MIN(h->n_q, (b + 1) * B); i++) {
            /* keys [0, v): whole blocks below cf = v / B, then part of block cf */
            int64_t v = ab_head_visible(h, i), cf = v / B;
            int64_t part = cf < s->nbk && on[cf] ? v - cf * B : 0;
            *cells += (double)(pre[AB_MIN(cf, s->nbk)] + part);
        }
    }
    ab_free(pre);
    return AB_OK;
}

void ab_dyn_blocks_keep(const struct ab_problem *p, const struct ab_dyn_blocks *s,
                        struct ab_keep *keep)
{
    ab_keep_clear(keep);
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], b = i / B, v = ab_head_visible(p->h, i);
        for (int64_t c = 0; c < s->nbk; c++)
            if (s->on[b * s->nbk + c]) ab_keep_range(keep, r, c * B, AB_MIN(v, (c + 1) * B));
    }
}

int ab_dyn_attend(const struct ab_problem *p, ab_dyn_fill_fn fill, const void *sel, float *o,
                  struct ab_keep *keep)
{
    fill(p, sel, keep);
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}

/* ---- block-topk and block-oracle ---- */

/* Blocks kept by a query block that sees nvb key blocks: k of them, at least the forced ones. */
static int64_t blocks_kept(int64_t nvb, int64_t k)
{
    return AB_MIN(nvb, AB_MAX(k, AB_MIN(nvb, N_FORCED)));
}

/* The knob as a block count: k rounded down, at least 1, at most n (no overflow below). */
static int64_t knob_blocks(double knob, int64_t n)
{
    if (!(knob >= 1)) return 1;
    return knob >= (double)n ? n : (int64_t)knob;
}

/* block-topk's selection FLOPs: pooling Q (the phase's rows) and K by additions, and the
 * block score matrix of the phase's query blocks against every key block. */
static double topk_select_flops(const struct ab_problem *p)
{
    const struct ab_head *h = p->h;
    int64_t nb = (h->n_k + B - 1) / B;
    return (double)(h->n_q - p->q0) * (double)h->d + (double)h->n_k * (double)h->d +
           2.0 * (double)(nb - ab_dyn_first_qblock(p)) * (double)nb * (double)h->d;
}

/* The ledger of a block mask with m_b blocks per query block, on standard positions:
 * cells in closed form, plus block-topk's selection when `select` is set. */
static void blocks_ledger_standard(const struct ab_problem *p, int64_t k, int select,
                                   struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, nb = (n + B - 1) / B;
    double cells = 0, sort = 0;
    for (int64_t b = ab_dyn_first_qblock(p); b < nb; b++) {
        int64_t nvb = b + 1, m = blocks_kept(nvb, k);
        int64_t i0 = AB_MAX(b * B, p->q0), i1 = AB_MIN(n, (b + 1) * B), rows = i1 - i0;
        /* sum over rows of (m - 1) B + (i - bB + 1) */
        double first = (double)(i0 - b * B + 1), last = (double)(i1 - 1 - b * B + 1);
        cells += (double)rows * (double)((m - 1) * B) + (first + last) * (double)rows / 2;
        sort += ab_dyn_sort_ops(nvb - AB_MIN(nvb, N_FORCED));
    }
    ab_ledger_attend(led, h, cells);
    if (select) {
        led->flops_select += topk_select_flops(p);
        led->ops_other += sort;
    }
}

/* Fills s from a block score matrix (nbq, nbk): for each query block b >= first with need[b]
 * (need may be NULL: all), the forced blocks {0, nvb - 2, nvb - 1} and the highest-scoring
 * others, m_b in all. Returns the sort operations, or -1 when out of memory. */
static double blocks_select(const struct ab_problem *p, const double *score, int64_t k,
                            const uint8_t *need, struct ab_dyn_blocks *s)
{
    int64_t nbk = s->nbk;
    double *cand = ab_alloc(ab_size_mul((size_t)nbk, sizeof(double)));  /* (nbk) */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)nbk, sizeof(int64_t))); /* (nbk) */
    double ops = 0;
    if (!cand || !idx) {
        ops = -1;
        goto done;
    }
    memset(s->on, 0, (size_t)(s->nbq * nbk));
    for (int64_t b = ab_dyn_first_qblock(p); b < s->nbq; b++) {
        if (need && !need[b]) continue;
        int64_t nvb = ab_dyn_block_visible(p->h, b), m = blocks_kept(nvb, k);
        uint8_t *on = s->on + b * nbk;
        /* forced: the first block, the diagonal (last visible) block and the one before it */
        on[0] = 1;
        on[nvb - 1] = 1;
        if (nvb >= 2) on[nvb - 2] = 1;
        /* candidates: blocks 1 .. nvb - 3, ranked by score */
        int64_t f = AB_MIN(nvb, N_FORCED), c_n = nvb - f;
        for (int64_t c = 0; c < c_n; c++) cand[c] = score[b * nbk + 1 + c];
        ops += ab_dyn_rank(cand, c_n, 0, idx);
        for (int64_t t = 0; t < m - f; t++) on[1 + idx[t]] = 1;
    }
done:
    ab_free(cand);
    ab_free(idx);
    return ops;
}

/* block-topk's scores: pooled Q (nb, d) times pooled K (nb, d) transposed, as doubles. */
static int topk_scores(const struct ab_problem *p, double *score /* (nb, nb) */)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, nb = (n + B - 1) / B;
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    float *qp = ab_alloc(ab_size_mul((size_t)(nb * nb + 2 * nb * d), sizeof(float)));
    if (!qp) {
        ab_dyn_qk_free(&x);
        return ab_fail(AB_E_NOMEM, "block-topk: cannot allocate pooled blocks");
    }
    float *kp = qp + nb * d, *s = kp + nb * d; /* (nb, d), (nb, nb) */
    ab_dyn_pool(x.q, n, d, qp);
    ab_dyn_pool(x.k, n, d, kp);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)nb, (int)d, 1.0f, qp, (int)d,
                kp, (int)d, 0.0f, s, (int)nb);
    for (int64_t t = 0; t < nb * nb; t++) score[t] = s[t];
    ab_free(qp);
    ab_dyn_qk_free(&x);
    return AB_OK;
}

/* The oracle's scores: for each query block b with need[b] (all when NULL), the exact mass
 * M[b][c] = sum_{i in b, i >= q0} sum_{j in c, j < vis(i)} p_ij. Blocks of up to B rows:
 * S = scale Q_b K^T by sgemm (rows, kend), then each row's softmax in float, summed per key
 * block (float lanes within a block, double across blocks).
 * Parallel over query blocks unless already inside a parallel region. Memory B n floats per
 * thread. */
static int oracle_scores(const struct ab_problem *p, const uint8_t *need,
                         double *mass /* (nb, nb) */)
{
    const struct ab_head *h = p->h;
    int64_t n = h->n_k, d = h->d, nb = (n + B - 1) / B;
    struct ab_dyn_qk x;
    int rc = ab_dyn_qk_get(h, &x);
    if (rc) return rc;
    memset(mass, 0, (size_t)(nb * nb) * sizeof(double));
    int fail = 0, outer = omp_in_parallel();
    if (!outer) ab_blas_serial_begin();
#pragma omp parallel if (!outer && nb > 1)
    {
        float *s = ab_alloc(ab_size_mul((size_t)(B * n), sizeof(float))); /* (B, n) */
        double *part = ab_alloc(ab_size_mul((size_t)nb, sizeof(double))); /* (nb) */
        if (!s || !part) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = nb - 1; b >= ab_dyn_first_qblock(p); b--) {
            if (!s || !part || (need && !need[b])) continue;
            int64_t i0 = AB_MAX(b * B, p->q0), i1 = AB_MIN(n, (b + 1) * B);
            int64_t kend = ab_head_visible(h, i1 - 1);
            if (kend == 0) continue;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(i1 - i0), (int)kend, (int)d,
                        (float)h->scale, x.q + i0 * d, (int)d, x.k, (int)d, 0.0f, s, (int)kend);
            double *mb = mass + b * nb; /* (nb) */
            for (int64_t i = i0; i < i1; i++) {
                float *row = s + (i - i0) * kend; /* (kend) */
                int64_t v = ab_head_visible(h, i);
                /* p_ij = e^(s_ij - max) / z, summed per key block */
                double z = ab_dyn_row_exp(row, v, ab_dyn_row_max(row, v), part);
                for (int64_t c = 0; c * B < v; c++) mb[c] += part[c] / z;
            }
        }
        ab_free(s);
        ab_free(part);
    }
    if (!outer) ab_blas_serial_end();
    ab_dyn_qk_free(&x);
    return fail ? ab_fail(AB_E_NOMEM, "block-oracle: cannot allocate score rows") : AB_OK;
}

/* The query blocks holding an evaluated row: (nb) flags. */
static uint8_t *needed_blocks(const struct ab_problem *p, int64_t nb)
{
    uint8_t *need = ab_alloc((size_t)nb);
    if (need)
        for (int64_t r = 0; r < p->n_rows; r++) need[p->rows[r] / B] = 1;
    return need;
}

static void blocks_fill(const struct ab_problem *p, const void *sel, struct ab_keep *keep)
{
    ab_dyn_blocks_keep(p, sel, keep);
}

/* Selects the block mask (for every query block when `all`, else only where rows are
 * evaluated), and when `led` is set adds the ledger counted from it; then keep and O (keep ==
 * NULL: cost()'s call, the ledger only). */
static int blocks_run(const struct ab_problem *p, int64_t k, int oracle, int all, float *o,
                      struct ab_keep *keep, struct ab_ledger *led)
{
    const struct ab_head *h = p->h;
    int64_t nb = (h->n_k + B - 1) / B;
    struct ab_dyn_blocks s = {0};
    uint8_t *need = all ? NULL : needed_blocks(p, nb);
    double *score = ab_alloc(ab_size_mul((size_t)(nb * nb), sizeof(double))); /* (nb, nb) */
    int rc = ab_dyn_blocks_alloc(&s, h->n_k);
    if (!rc && (!score || (!all && !need)))
        rc = ab_fail(AB_E_NOMEM, "%s: cannot allocate block scores",
                     oracle ? "block-oracle" : "block-topk");
    if (!rc) rc = oracle ? oracle_scores(p, need, score) : topk_scores(p, score);
    double sort = rc ? 0 : blocks_select(p, score, k, need, &s);
    if (!rc && sort < 0) rc = ab_fail(AB_E_NOMEM, "cannot allocate block ranks");
    double cells = 0;
    if (!rc && led) rc = ab_dyn_blocks_cells(p, &s, &cells);
    if (!rc && led) {
        ab_ledger_attend(led, h, cells);
        if (!oracle) {
            led->flops_select += topk_select_flops(p);
            led->ops_other += sort;
        }
    }
    if (!rc && keep) rc = ab_dyn_attend(p, blocks_fill, &s, o, keep);
    ab_dyn_blocks_free(&s);
    ab_free(score);
    ab_free(need);
    return rc;
}

/* Cost of k blocks per query block: closed form on standard positions, else counted from the
 * selection itself (exact, not cheap: the oracle then reads the exact map). */
static int blocks_cost(const struct ab_problem *p, double knob, int oracle, struct ab_ledger *led)
{
    ab_dyn_check(p);
    int64_t k = knob_blocks(knob, p->h->n_k);
    if (ab_dyn_standard(p->h)) {
        blocks_ledger_standard(p, k, !oracle, led);
        return AB_OK;
    }
    return blocks_run(p, k, oracle, 1, NULL, NULL, led);
}

static int topk_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return blocks_cost(p, knob, 0, led);
}

static int oracle_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    return blocks_cost(p, knob, 1, led);
}

/* Runs a block method: the ledger from cost() (exact, see above), then the selection only for
 * the query blocks holding evaluated rows. */
static int blocks_method_run(const struct ab_problem *p, double knob, int oracle, float *o,
                             struct ab_keep *keep, struct ab_ledger *led)
{
    int rc = blocks_cost(p, knob, oracle, led);
    if (rc) return rc;
    return blocks_run(p, knob_blocks(knob, p->h->n_k), oracle, 0, o, keep, NULL);
}

static int topk_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                    struct ab_ledger *led)
{
    return blocks_method_run(p, knob, 0, o, keep, led);
}

static int oracle_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    return blocks_method_run(p, knob, 1, o, keep, led);
}

const struct ab_method ab_method_block_topk = {
    .name = "block-topk",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "mean-pooled block scores; per query block keep the top k key blocks of 64 "
               "(first, diagonal and previous block forced)",
    .citation = "block-sparse pattern of MInference, Jiang et al. 2024, arXiv 2407.02490; "
                "forced initial and local blocks as in NSA, Yuan et al. 2025, arXiv 2502.11089",
    .cost_words = "4d per kept cell: (m_b - 1) 64 + (i - 64b + 1) for row i of query block b, "
                  "m_b = min(b + 1, max(k, 3)); selection 2nd (pooling adds) + 2 nb^2 d "
                  "(nb = ceil(n/64), full block matrix); sort c log2 c per query block",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 16, .unit = "blocks"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = topk_cost,
    .run = topk_run,
};

const struct ab_method ab_method_block_oracle = {
    .name = "block-oracle",
    .family = AB_FAMILY_DYNAMIC,
    .summary = "block-topk's unit and forced blocks, other blocks ranked by their exact "
               "attention mass: the upper bound of block-topk at every k",
    .citation = "oracle upper bound (no paper)",
    .cost_words = "same cells as block-topk at the same k; selection reads the exact map and "
                  "is not counted",
    .phases = AB_PHASE_PREFILL,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "k", .lo = 1, .hi = 0, .integer = 1, .def = 16, .unit = "blocks"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ORACLE | AB_METHOD_ANALYTIC,
    .cost = oracle_cost,
    .run = oracle_run,
};
