/* kv_window.h - what the "score the context once, keep the best C" decode rows share
 * (observed-attention, criticalkv, chunkkv): the geometry and scores of SnapKV's observation
 * window, the prepared state that holds them (with the value norms criticalkv weighs them by),
 * and the ledger and keep rows of a row that keeps a set of context keys plus every decode key.
 * Internal to lib/methods; kv_window.c defines it.
 *
 * The window scores are SnapKV's (snapkv.c's file comment): snapkv.c computes the same numbers
 * in its own static snap_scores, which this header does not reach without changing snapkv.c. */
#ifndef AB_METHODS_KV_WINDOW_H
#define AB_METHODS_KV_WINDOW_H

#include <stdint.h>

#include "methods/kv.h"
#include "methods/method.h"

enum { KV_WIN_W = 64, KV_WIN_KERNEL = 5 }; /* SnapKV's window and pooling kernel */

/* A decode problem as an observation window sees it: n_ctx context keys, the window of w
 * queries [q0 - w, q0) and of its wk keys (the last context keys), the ranked prefix
 * [0, n_pre) = [0, n_ctx - wk). */
struct kv_win {
    int64_t n_ctx, w, wk, n_pre;
};

static inline struct kv_win kv_win_of(const struct ab_problem *p)
{
    struct kv_win g = {.n_ctx = kv_n_ctx(p), .w = AB_MIN(KV_WIN_W, p->q0)};
    g.wk = AB_MIN(g.w, g.n_ctx);
    g.n_pre = g.n_ctx - g.wk;
    return g;
}

/* SnapKV's prefix scores of head h into score (n_pre):
 *     a_j = sum over window rows t of softmax_j(scale q_t.k_j)   (over the keys row t sees)
 *     score_j = (a_{j-2} + ... + a_{j+2}) / 5, a = 0 outside [0, n_pre)
 * s is (w, n_ctx) scratch, agg (n_pre) scratch. One sgemm (w, d) x (d, n_ctx). */
void ab_kv_win_scores(const struct ab_head *h, int64_t q0, const struct kv_win *g, float *s,
                      float *agg, float *score);

/* The ledger of the window scoring (no cells): flops_once 2 w n_ctx d (one-off, amortised over
 * the decode horizon), ops_other w n_ctx exps + w n_pre sums + 5 n_pre pooling + n_pre top-k. */
void ab_kv_win_ledger(const struct ab_problem *p, const struct kv_win *g, struct ab_ledger *led);

/* The prepared state of the window-scored rows (criticalkv, chunkkv share it: same prepare and
 * prepare_free): the window scores and ||v_j||_1 of the prefix keys. */
struct kv_win_prep {
    struct kv_win g;
    float *score; /* (n_pre) SnapKV scores */
    float *vnorm; /* (n_pre) L1 norm of each prefix key's value row */
};
/* prepare() of these rows: O(w n_ctx d + n_pre d_v). AB_OK or AB_E_NOMEM. */
int ab_kv_win_prepare(const struct ab_problem *p, void **state);
void ab_kv_win_prepare_free(void *state);
/* The state of p: p->prep when set, else a fresh one into *own (the caller frees it with
 * ab_kv_win_prepare_free; NULL when p->prep served). AB_OK or AB_E_NOMEM. */
int ab_kv_win_state(const struct ab_problem *p, const struct kv_win_prep **st,
                    struct kv_win_prep **own);

/* Cells of the decode phase when k_ctx of the n_ctx context keys are kept: every decode query
 * reads them plus the decode keys it sees. */
double ab_kv_ctx_cells_kept(const struct ab_problem *p, int64_t n_ctx, double k_ctx);
/* The keep rows: context keys j with ctx[j] (n_ctx) plus, for each evaluated row, the decode
 * keys [n_ctx, visible). Then, with o, exact attention over them. AB_OK or AB_E_NOMEM. */
int ab_kv_ctx_emit(const struct ab_problem *p, int64_t n_ctx, const uint8_t *ctx, float *o,
                   struct ab_keep *keep);

/* Test hooks: the rows at non-default parameters (chunkkv.c: chunk length; criticalkv.c: the
 * first stage's share of the budget). Same contract as a method's run(). */
int ab_chunkkv_run(const struct ab_problem *p, double knob, int64_t chunk, float *o,
                   struct ab_keep *keep, struct ab_ledger *led);
int ab_criticalkv_run(const struct ab_problem *p, double knob, double first_ratio, float *o,
                      struct ab_keep *keep, struct ab_ledger *led);
/* simlayerkv.c: the layer's laziness score (mean attention mass of the last context queries of
 * every head on the initial + recent tokens) and whether the layer is lazy. */
int ab_simlayerkv_mass(const struct ab_problem *p, double *mass);
/* think.c: the key channels head p->h keeps at fraction r: mark (d) set to 1 for kept ones;
 * returns their number. AB_OK or AB_E_NOMEM in *rc. */
int64_t ab_think_channels(const struct ab_problem *p, double r, uint8_t *mark, int *rc);

#endif
