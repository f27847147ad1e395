/* kv.h - what the KV-cache (decode) methods share: the decode bookkeeping (context length,
 * phase check), logits of a block of query rows through BLAS, a vectorisable softmax, a
 * deterministic top-k, h2o's accumulate-and-evict schedule (shared by its variants) and the
 * hooks the kv tests call (Quest's page bound, the rows at other parameters). Internal to
 * lib/methods: the kv method files and tests/test_methods_kv.c include it.
 *
 * The helpers are static functions in this header (one small header instead of a build-file
 * change); the hooks declared here are defined in the method files named beside them. */
#ifndef AB_METHODS_KV_H
#define AB_METHODS_KV_H

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/ab.h"
#include "attn/expf.h"
#include "methods/method.h"

/* Quest's page metadata (quest.c): per-channel min and max of the keys of each page of `page`
 * keys. k is (n_keys, d); kmin and kmax are (n_keys / page, d): full pages only. */
void ab_quest_page_minmax(const float *k, int64_t n_keys, int64_t d, int64_t page, float *kmin,
                          float *kmax);
/* Quest's upper bound of q.k over a page (unscaled): sum_c max(q_c min_c, q_c max_c). */
double ab_quest_page_bound(const float *q, const float *kmin, const float *kmax, int64_t d);

/* Number of context keys of a decode problem: the keys the last context row (q0 - 1) sees; 0
 * without context. Under the usual positions (k_pos = q_pos = row) this is q0. */
static inline int64_t kv_n_ctx(const struct ab_problem *p)
{
    return p->q0 > 0 ? ab_head_visible(p->h, p->q0 - 1) : 0;
}

/* s (nr, ld) = scale * Q[i0 .. i0+nr) K[0 .. nk)^T of head h: one sgemm, (nr, d) x (d, nk).
 * Columns nk .. ld-1 are left alone. */
static inline void kv_logits(const struct ab_head *h, int64_t i0, int64_t nr, int64_t nk,
                             float *s, int64_t ld)
{
    if (nr <= 0 || nk <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)nk, (int)h->d,
                (float)h->scale, h->q + i0 * h->d, (int)h->d, h->k, (int)h->d, 0.0f, s, (int)ld);
}

/* In place: s[0..n) logits -> softmax probabilities p_j = e^(s_j - max) / sum_t e^(s_t - max).
 * Max and sum run over 8 interleaved partial results so that the loops vectorise (the sum in
 * float: relative error ~1e-6 at n = 4096; these probabilities rank keys, they never become
 * outputs). Compiled for AVX2 and baseline x86-64, picked at load time. n == 0 does nothing. */
AB_CLONES("avx2", "default")
static inline void kv_softmax(float *s, int64_t n)
{
    if (n <= 0) return;
    float part[8], mx = s[0];
    int64_t j = 0;
    for (int u = 0; u < 8; u++) part[u] = s[0];
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) part[u] = s[j + u] > part[u] ? s[j + u] : part[u];
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    for (int u = 0; u < 8; u++) mx = part[u] > mx ? part[u] : mx;
    for (j = 0; j < n; j++) s[j] = ab_expf_nonpos(s[j] - mx);
    for (int u = 0; u < 8; u++) part[u] = 0;
    for (j = 0; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) part[u] += s[j + u];
    float z = ((part[0] + part[1]) + (part[2] + part[3])) +
              ((part[4] + part[5]) + (part[6] + part[7]));
    for (; j < n; j++) z += s[j];
    float inv = 1.0f / z;
    for (j = 0; j < n; j++) s[j] *= inv;
}

/* The k-th largest (k = 1: the maximum) of a[0..n), 1 <= k <= n; reorders a. Quickselect with a
 * three-way partition around the median of three: O(n) expected, and duplicates end the search
 * instead of slowing it. */
static inline float kv_kth_largest(float *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n; /* the answer is the k-th largest of a[lo..hi) */
    for (;;) {
        if (hi - lo == 1) return a[lo];
        float x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi - 1];
        float piv = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        /* [lo, g) > piv, [g, i) == piv, [i, l) unseen, [l, hi) < piv */
        int64_t g = lo, i = lo, l = hi;
        while (i < l) {
            float t = a[i];
            if (t > piv) {
                a[i++] = a[g];
                a[g++] = t;
            } else if (t < piv) {
                a[i] = a[--l];
                a[l] = t;
            } else {
                i++;
            }
        }
        if (k <= g - lo) {
            hi = g;
        } else if (k <= l - lo) {
            return piv;
        } else {
            k -= l - lo;
            lo = l;
        }
    }
}

/* Marks (mark[j] = 1) the k entries of score[0..n) with the largest values, ties going to the
 * lower index; entries equal to -inf (or NaN) are never chosen. Does not clear mark. Returns the
 * number marked: min(k, number of finite entries). tmp is (n) scratch. O(n) expected. */
static inline int64_t kv_top_k(const float *score, int64_t n, int64_t k, uint8_t *mark,
                               float *tmp)
{
    int64_t m = 0;
    for (int64_t j = 0; j < n; j++)
        if (score[j] > -INFINITY) tmp[m++] = score[j];
    k = AB_MIN(k, m);
    if (k <= 0) return 0;
    float th = kv_kth_largest(tmp, m, k);
    int64_t need = k;
    for (int64_t j = 0; j < n; j++)
        if (score[j] > th) mark[j] = 1, need--;
    for (int64_t j = 0; j < n && need > 0; j++)
        if (score[j] == th) mark[j] = 1, need--;
    return k;
}

/* Sets the keys idx[0..cnt) in row r of keep. */
static inline void kv_keep_list(struct ab_keep *keep, int64_t r, const int64_t *idx, int64_t cnt)
{
    for (int64_t t = 0; t < cnt; t++) ab_keep_set(keep, r, idx[t]);
}

/* The decode phase check shared by the kv rows (they support AB_PHASE_DECODE only). */
static inline int kv_check_phase(const struct ab_problem *p, const char *name)
{
    if (p->phase != AB_PHASE_DECODE)
        return ab_fail(AB_E_USAGE, "%s: supports the decode phase only", name);
    return AB_OK;
}

/* The run of a stateful cache policy (h2o, tova, a2sf, keyformer, recycled) once its
 * closed-form ledger is filled (`expected` cells): when O or the keep sets are wanted, the
 * eviction schedule itself (called with the policy's parameters `arg`, which it may ignore),
 * which must count exactly the expected cells, then exact attention over what each evaluated
 * row read. A budget that holds every key never evicts: each row reads all it can see. */
typedef int (*kv_schedule_fn)(const struct ab_problem *p, int64_t C, const void *arg,
                              struct ab_keep *keep, double *cells);
static inline int kv_run_schedule(const struct ab_problem *p, int64_t C, double expected,
                                  kv_schedule_fn schedule, const void *arg, float *o,
                                  struct ab_keep *keep)
{
    const struct ab_head *h = p->h;
    double cells = 0;
    int rc = AB_OK;
    if (p->n_rows == 0) return AB_OK;
    if (C >= ab_head_visible(h, h->n_q - 1)) {
        for (int64_t r = 0; r < p->n_rows; r++)
            ab_keep_range(keep, r, 0, ab_head_visible(h, p->rows[r]));
    } else {
        rc = schedule(p, C, arg, keep, &cells);
        assert(rc || cells == expected); /* the ledger counts exactly this schedule */
    }
    (void)expected;
    if (!rc && o) rc = ab_attend_kept(p, keep, o, NULL);
    return rc;
}

/* ---- accumulated-attention eviction (h2o.c's schedule): h2o, a2sf and keyformer ---- */

/* How a query's attention becomes the accumulated score of the keys it read:
 *     a_j   = softmax over the keys the query read of (l_j + g_j) / tau   (l_j = scale q.k_j)
 *     acc_j = lambda acc_j + a_j          (context rows: acc_j = sum_t lambda^(q0-1-t) a_tj)
 * g_j is Gumbel noise -ln(-ln u), u uniform from (seed, row, key), when gumbel is set, else 0;
 * tau is tau_ctx for the context rows and moves linearly from tau0 at the first decode query to
 * tau1 at the last. h2o is {lambda 1, no noise, tau 1}: a_j are the model's own probabilities
 * (and the schedule then skips the rescaling, so h2o's scores are bit for bit its own). */
struct kv_accum {
    double lambda;              /* forgetting factor in (0, 1] */
    int gumbel;                 /* 1: Gumbel noise on the logits of the scores */
    double tau_ctx, tau0, tau1; /* temperatures (> 0) */
    uint64_t seed;              /* noise stream (problem seed) */
};
/* The prepare() of a row of this schedule (h2o, a2sf, keyformer): the context's accumulated
 * scores of p under rule a, O(q0 n_ctx d); free with ab_kv_accum_prepare_free. */
int ab_kv_accum_prepare(const struct ab_problem *p, const struct kv_accum *a, void **state);
void ab_kv_accum_prepare_free(void *state);
/* h2o's step schedule at cache size C (h2o.c's file comment) under the scoring rule `arg` (a
 * const struct kv_accum *): C / 2 heavy hitters by acc plus C - C / 2 recent keys, evicting step
 * by step. The context scores come from p->prep when it holds them for this rule (the row's own,
 * ab_kv_accum_prepare), else (the test hooks at other parameters) are computed here. Sets what
 * each evaluated row read in keep, adds the cells read to *cells. AB_OK or AB_E_NOMEM. Scratch
 * O(n) plus a block of at most 64 x n logits. */
int ab_kv_accum_schedule(const struct ab_problem *p, int64_t C, const void *arg,
                         struct ab_keep *keep, double *cells);
/* h2o's ledger at cache size C (cells, attention FLOPs and h2o's ops_other); returns the cells.
 * Pure, O((q0 + m) log n). Variants add their own extra ops_other. */
double ab_kv_accum_ledger(const struct ab_problem *p, int64_t C, struct ab_ledger *led);
/* Number of context cells (sum over context rows of their visible keys). */
double ab_kv_ctx_cells(const struct ab_problem *p);

/* Test hooks: the rows at non-default parameters (a2sf.c, keyformer.c, recycled.c,
 * retrieval_attn.c). Same contract as a method's run(). */
int ab_a2sf_run(const struct ab_problem *p, double knob, double lambda, float *o,
                struct ab_keep *keep, struct ab_ledger *led);
int ab_keyformer_run(const struct ab_problem *p, double knob, int gumbel, double tau0,
                     double tau1, float *o, struct ab_keep *keep, struct ab_ledger *led);
int ab_recycled_run(const struct ab_problem *p, double knob, int64_t stride, float *o,
                    struct ab_keep *keep, struct ab_ledger *led);
/* max_scan: keys scanned per decode query (<= 0: the row's default, 2 K) */
int ab_retrieval_run(const struct ab_problem *p, double knob, int64_t max_scan, float *o,
                     struct ab_keep *keep, struct ab_ledger *led);
/* duo.c at `probe` probe rows (the last probe context rows; probe >= q0: every context row,
 * metrics.md's proxy): the plan over view mv at fraction knob (free with the row's plan_free;
 * it computes every head's score itself, where the row's plan reads the prepared ones), and
 * run() (its probe applies when p->plan is NULL; a plan carries its own). */
int ab_duo_plan_probe(const struct ab_model_view *mv, double knob, int64_t probe, void **plan);
int ab_duo_run(const struct ab_problem *p, double knob, int64_t probe, float *o,
               struct ab_keep *keep, struct ab_ledger *led);

#endif
