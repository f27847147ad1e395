/* infllm.c - `infllm`: block-level context memory with representative tokens, after Xiao et al.,
 * "InfLLM: Training-Free Long-Context Extrapolation for LLMs with an Efficient Context Memory",
 * arXiv 2402.04617.
 *
 * Rule. The keys a decode query sees are split into three regions:
 *     initial tokens  [0, I)                          I = 4, always read
 *     memory units    [I + uB, I + (u+1)B), u < U_v   B = 32 tokens each, full units only
 *     local window    [I + U_v B, v)                  always read
 * where v is the number of keys the query sees and U_v = max(0, floor((v - L - I) / B)) with
 * L = 64: a unit joins the memory once all its keys have left the last L positions, so the local
 * window holds between L and L + B - 1 keys (the keys of the unit still being left behind stay
 * local). Each unit is represented by its r = 4 representative keys: the keys j of the unit with
 * the largest representative score
 *     rs_j = sum_{t in unit, t >= j} q_t . k_j
 * (the attention logits the unit's own queries gave j while it was local; ties to the earlier
 * key). A decode query q scores each memory unit by sim(q, u) = sum over its representatives of
 * q . k_rep and reads the top T units, plus the initial tokens and its local window, attending
 * exactly over them (softmax renormalised over what it read). The decode query selects from
 * itself, as quest does (query-aware retrieval is InfLLM's design); the representatives come
 * from queries before it (context rows, or decode rows whose unit has already left the window).
 *
 * Knob: K, tokens read per decode query, integer in [1, n]. The initial tokens and the local
 * window are forced and count against K: T = min(U_v, max(0, floor((K - I - local_v) / B))).
 * K >= v reads all v keys (T = U_v): dense.
 * Cost (analytic: units are full, so the cells do not depend on the data), per decode query i:
 *     cells_i      = I + local_i + T_i B          (= v_i when v_i <= I + L)
 *     flops_select = 2 d r U_i per query (the unit scores), at every K, plus 2 d B (B + 1) / 2
 *                    per unit that joins the memory during the decode phase (its representative
 *                    scores, computed when it leaves the window)
 *     flops_once   = 2 d B (B + 1) / 2 per unit already in the memory at the end of the
 *                    context (their representative scores, once, amortised over the horizon G)
 *     ops_other    = U_i per query (top-T pass over the units) + B per unit (top-r pass) + one
 *                    exp per cell.
 * Deviations:
 * - sizes scaled to the workloads here: the paper uses 128 initial tokens, a local window of
 *   4K, units of 128 tokens and 4 representatives; here I = 4, L = 64, B = 32, r = 4;
 * - representative scores use the queries of the unit itself (each key gets the logits of the
 *   later queries of its unit), where the paper uses the local-window queries that attended to
 *   it during chunked prefill;
 * - no offloading or unit cache (a memory system concern, not a change of what is read), no
 *   position remapping of the retrieved units (Q and K here are already rotated);
 * - units are scored at every K, also when all would fit (cost monotone in K); unit ties go to
 *   the earlier unit; units are chosen per query head (under GQA too), no choice is shared
 *   across the heads of a layer. */
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "methods/kv.h"
#include "methods/kv_select.h"
#include "methods/method.h"

enum { INF_I = 4, INF_L = 64, INF_B = 32, INF_R = 4 };

/* Memory units of a query that sees v keys. */
static int64_t inf_units(int64_t v)
{
    return v > INF_I + INF_L ? (v - INF_L - INF_I) / INF_B : 0;
}

/* Units read by a query that sees v keys at knob K. */
static int64_t inf_read_units(int64_t v, double knob)
{
    int64_t U = inf_units(v), local = v - INF_I - U * INF_B;
    int64_t K = knob < 1 ? 1 : (int64_t)knob, spare = K - INF_I - local;
    return spare <= 0 ? 0 : AB_MIN(U, spare / INF_B);
}

static int infllm_cost(const struct ab_problem *p, double knob, struct ab_ledger *led)
{
    int rc = kv_check_phase(p, "infllm");
    if (rc) return rc;
    const struct ab_head *h = p->h;
    double cells = 0, scored = 0, d = (double)h->d, rep = 2.0 * d * INF_B * (INF_B + 1) / 2.0;
    int64_t U_last = 0;
    for (int64_t i = p->q0; i < h->n_q; i++) {
        int64_t v = ab_head_visible(h, i), U = inf_units(v);
        cells += (double)(v - U * INF_B + inf_read_units(v, knob) * INF_B);
        scored += (double)U;
        U_last = AB_MAX(U_last, U);
    }
    int64_t U_ctx = AB_MIN(inf_units(kv_n_ctx(p)), U_last);
    if (h->n_q <= p->q0) U_ctx = U_last = 0;
    ab_ledger_attend(led, h, cells);
    led->flops_select += 2.0 * d * INF_R * scored + rep * (double)(U_last - U_ctx);
    led->flops_once += rep * (double)U_ctx;
    led->ops_other += scored + (double)INF_B * (double)U_last;
    return AB_OK;
}

/* The representatives of units 0 .. U-1 of head h into rep (U, INF_R) (file comment). s is
 * (INF_B, INF_B) scratch. One (B, d) x (d, B) sgemm per unit. */
static void inf_representatives(const struct ab_head *h, int64_t U, int64_t *rep, float *s)
{
    float score[INF_B], tmp[INF_B];
    uint8_t mark[INF_B];
    for (int64_t u = 0; u < U; u++) {
        int64_t a = INF_I + u * INF_B, nr = AB_MIN(INF_B, h->n_q - a);
        memset(score, 0, sizeof score);
        if (nr > 0) {
            /* s[t][j] = q_{a+t} . k_{a+j} (unscaled) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, INF_B, (int)h->d, 1.0f,
                        h->q + a * h->d, (int)h->d, h->k + a * h->d, (int)h->d, 0.0f, s, INF_B);
            for (int64_t t = 0; t < nr; t++) {
                int64_t nv =
                    AB_MIN(ab_head_visible(h, a + t) - a, INF_B); /* keys of the unit t sees */
                for (int64_t j = 0; j < nv; j++) score[j] += s[t * INF_B + j];
            }
        }
        memset(mark, 0, sizeof mark);
        kv_top_k(score, INF_B, INF_R, mark, tmp);
        int64_t c = 0;
        for (int64_t j = 0; j < INF_B; j++)
            if (mark[j]) rep[u * INF_R + c++] = a + j;
    }
}

/* prepare: the representatives of every unit the phase can use (knob-independent). */
struct inf_prep {
    int64_t U;
    int64_t *rep; /* (U, INF_R) key indices */
};

static void infllm_prepare_free(void *state)
{
    struct inf_prep *st = state;
    if (!st) return;
    ab_free(st->rep);
    free(st);
}

static int infllm_prepare(const struct ab_problem *p, void **state)
{
    const struct ab_head *h = p->h;
    struct inf_prep *st = calloc(1, sizeof *st);
    if (!st) return ab_fail(AB_E_NOMEM, "infllm: cannot allocate its state");
    st->U = h->n_q > 0 ? inf_units(ab_head_visible(h, h->n_q - 1)) : 0;
    st->rep = ab_alloc(ab_size_mul((size_t)AB_MAX(st->U, 1) * INF_R, sizeof(int64_t)));
    float *s = ab_alloc(sizeof(float) * INF_B * INF_B);
    if (!st->rep || !s) {
        long long U = (long long)st->U;
        ab_free(s);
        infllm_prepare_free(st);
        return ab_fail(AB_E_NOMEM, "infllm: cannot allocate %lld units", U);
    }
    inf_representatives(h, st->U, st->rep, s);
    ab_free(s);
    *state = st;
    return AB_OK;
}

/* The ledger, then per evaluated row the unit scores, the top units, and with o the attention
 * over initial + units + local. Work beyond the ledger: O(U r d) per evaluated row. */
static int infllm_run(const struct ab_problem *p, double knob, float *o, struct ab_keep *keep,
                      struct ab_ledger *led)
{
    int rc = infllm_cost(p, knob, led);
    if (rc || p->n_rows == 0) return rc;
    const struct ab_head *h = p->h;
    const struct inf_prep *st = p->prep;
    struct inf_prep own = {0};
    if (!st) { /* called without the engine's prepare (a test hook): do it here */
        void *s = NULL;
        if ((rc = infllm_prepare(p, &s))) return rc;
        own = *(struct inf_prep *)s;
        free(s);
        st = &own;
    }
    int64_t d = h->d, nu = AB_MAX(st->U, 1);
    float *score = ab_alloc(ab_size_mul((size_t)nu, sizeof(float))); /* (U) unit scores */
    float *tmp = ab_alloc(ab_size_mul((size_t)nu, sizeof(float)));
    uint8_t *mark = ab_alloc((size_t)nu);
    if (!score || !tmp || !mark) {
        rc =
            ab_fail(AB_E_NOMEM, "infllm: cannot allocate scratch for %lld units", (long long)st->U);
        goto done;
    }
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], v = ab_head_visible(h, i), U = inf_units(v);
        int64_t T = inf_read_units(v, knob);
        const float *q = h->q + i * d;
        ab_keep_range(keep, r, 0, AB_MIN(INF_I, v));
        ab_keep_range(keep, r, INF_I + U * INF_B, v);
        if (T <= 0) continue;
        if (T >= U) {
            ab_keep_range(keep, r, INF_I, INF_I + U * INF_B);
            continue;
        }
        for (int64_t u = 0; u < U; u++) {
            double sim = 0;
            for (int64_t t = 0; t < INF_R; t++) {
                const float *k = h->k + st->rep[u * INF_R + t] * d;
                float dot = 0;
                for (int64_t c = 0; c < d; c++) dot += q[c] * k[c];
                sim += dot;
            }
            score[u] = (float)sim;
        }
        memset(mark, 0, (size_t)U);
        kv_top_k(score, U, T, mark, tmp);
        for (int64_t u = 0; u < U; u++)
            if (mark[u]) ab_keep_range(keep, r, INF_I + u * INF_B, INF_I + (u + 1) * INF_B);
    }
    if (o) rc = ab_attend_kept(p, keep, o, NULL);
done:
    ab_free(score);
    ab_free(tmp);
    ab_free(mark);
    ab_free(own.rep);
    return rc;
}

/* Test hook (infllm.c): the representative keys of the first U units of h, into rep (U, 4). */
int ab_infllm_representatives(const struct ab_head *h, int64_t U, int64_t *rep)
{
    float *s = ab_alloc(sizeof(float) * INF_B * INF_B);
    if (!s) return ab_fail(AB_E_NOMEM, "infllm: scratch");
    inf_representatives(h, U, rep, s);
    ab_free(s);
    return AB_OK;
}

const struct ab_method ab_method_infllm = {
    .name = "infllm",
    .family = AB_FAMILY_KV,
    .summary = "context memory: units of 32 scored by q . their 4 representative keys; read top "
               "units + 4 initial + local 64",
    .citation = "InfLLM, Xiao et al. 2024, arXiv 2402.04617",
    .cost_words = "4d per kept cell (K per query, initial and local included) + unit scoring 2 d r "
                  "per memory unit per query; representatives 2 d B(B+1)/2 per unit (one-off for "
                  "context units)",
    .phases = AB_PHASE_DECODE,
    .masks = AB_MASKS_CAUSAL,
    .knob = {.name = "K", .lo = 1, .hi = 0, .integer = 1, .def = 1024, .unit = "tokens"},
    .flags = AB_METHOD_SELECTS | AB_METHOD_ANALYTIC,
    .cost = infllm_cost,
    .run = infllm_run,
    .prepare = infllm_prepare,
    .prepare_free = infllm_prepare_free,
};
