/* kv_window.c - the shared part of the window-scored decode rows (kv_window.h): SnapKV's
 * observation-window scores of a head's prefix keys, their prepared state (with the value
 * norms criticalkv weighs them by), and the ledger and keep rows of a row that keeps a set of
 * context keys plus every decode key. The rule is snapkv.c's (Li et al., arXiv 2404.14469);
 * the rows that use it state their own deviations. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv_window.h"

void ab_kv_win_scores(const struct ab_head *h, int64_t q0, const struct kv_win *g, float *s,
                      float *agg, float *score)
{
    int64_t n_ctx = g->n_ctx, n_pre = g->n_pre, half = KV_WIN_KERNEL / 2;
    kv_logits(h, q0 - g->w, g->w, n_ctx, s, n_ctx);
    memset(agg, 0, (size_t)n_pre * sizeof(float));
    for (int64_t t = 0; t < g->w; t++) {
        float *a = s + t * n_ctx; /* (n_ctx) window row t */
        int64_t nv = AB_MIN(ab_head_visible(h, q0 - g->w + t), n_ctx), np = AB_MIN(nv, n_pre);
        kv_softmax(a, nv);
        for (int64_t j = 0; j < np; j++) agg[j] += a[j];
    }
    for (int64_t j = 0; j < n_pre; j++) {
        float sum = 0;
        for (int64_t u = AB_MAX(0, j - half); u <= AB_MIN(n_pre - 1, j + half); u++) sum += agg[u];
        score[j] = sum / (float)KV_WIN_KERNEL;
    }
}

void ab_kv_win_ledger(const struct ab_problem *p, const struct kv_win *g, struct ab_ledger *led)
{
    double w = (double)g->w, n_ctx = (double)g->n_ctx, n_pre = (double)g->n_pre;
    led->flops_once += 2.0 * w * n_ctx * (double)p->h->d;
    led->ops_other += w * n_ctx + w * n_pre + (double)KV_WIN_KERNEL * n_pre + n_pre;
}

void ab_kv_win_prepare_free(void *state)
{
    struct kv_win_prep *st = state;
    if (!st) return;
    ab_free(st->score);
    ab_free(st->vnorm);
    free(st);
}

int ab_kv_win_prepare(const struct ab_problem *p, void **state)
{
    const struct ab_head *h = p->h;
    struct kv_win g = kv_win_of(p);
    size_t nc = (size_t)AB_MAX(g.n_ctx, 1);
    struct kv_win_prep *st = calloc(1, sizeof *st);
    float *s = ab_alloc(ab_size_mul((size_t)AB_MAX(g.w, 1) * nc, sizeof(float))); /* (w, n_ctx) */
    float *agg = ab_alloc(ab_size_mul(nc, sizeof(float)));                        /* (n_pre) */
    if (st) {
        st->score = ab_alloc(ab_size_mul(nc, sizeof(float)));
        st->vnorm = ab_alloc(ab_size_mul(nc, sizeof(float)));
    }
    int rc = AB_OK;
    if (!st || !st->score || !st->vnorm || !s || !agg) {
        ab_kv_win_prepare_free(st);
        rc = ab_fail(AB_E_NOMEM, "cannot allocate window scores for %lld context keys",
                     (long long)g.n_ctx);
    } else {
        st->g = g;
        if (g.n_pre > 0) ab_kv_win_scores(h, p->q0, &g, s, agg, st->score);
        for (int64_t j = 0; j < g.n_pre; j++) { /* ||v_j||_1, in double */
            double a = 0;
            for (int64_t c = 0; c < h->d_v; c++) a += fabs((double)h->v[j * h->d_v + c]);
            st->vnorm[j] = (float)a;
        }
        *state = st;
    }
    ab_free(s), ab_free(agg);
    return rc;
}

int ab_kv_win_state(const struct ab_problem *p, const struct kv_win_prep **st,
                    struct kv_win_prep **own)
{
    *own = NULL;
    if (p->prep) {
        *st = p->prep;
        return AB_OK;
    }
    void *fresh = NULL;
    int rc = ab_kv_win_prepare(p, &fresh);
    if (rc) return rc;
    *own = fresh;
    *st = fresh;
    return AB_OK;
}

double ab_kv_ctx_cells_kept(const struct ab_problem *p, int64_t n_ctx, double k_ctx)
{
    const struct ab_head *h = p->h;
    double cells = 0;
    for (int64_t i = p->q0; i < h->n_q; i++)
        cells += k_ctx + (double)AB_MAX(0, ab_head_visible(h, i) - n_ctx);
    return cells;
}

int ab_kv_ctx_emit(const struct ab_problem *p, int64_t n_ctx, const uint8_t *ctx, float *o,
                   struct ab_keep *keep)
{
    const struct ab_head *h = p->h;
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t v = ab_head_visible(h, p->rows[r]);
        for (int64_t j = 0; j < AB_MIN(v, n_ctx); j++)
            if (ctx[j]) ab_keep_set(keep, r, j);
        ab_keep_range(keep, r, n_ctx, v);
    }
    return o ? ab_attend_kept(p, keep, o, NULL) : AB_OK;
}
