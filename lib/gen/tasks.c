/* tasks.c - tasks with ground truth (workloads.md, "Tasks with ground truth"): where the task
 * queries and their keys go, which codeword each needle holds, and how they are planted in a
 * head's Q, K and V.
 *
 * Layout (shared by every planted head): n_tasks queries per requested kind, on distinct rows
 * drawn among the last task_rows rows (so decode studies with m >= task_rows see them all).
 * Each key sits at depth u * row, u uniform in [depth_min, depth_max] (the fraction of the
 * context before the query), on a row no other task uses (and never row 0 or a task row).
 * retrieve: one needle holding codeword c_answer; multi-retrieve: AB_GEN_MULTI_NEEDLES needles
 * with distinct codewords (the first is asked) and AB_GEN_MULTI_DISTRACT distractors holding
 * other codewords; aggregate: AB_GEN_AGG_KEYS keys with ordinary Gaussian values, the target
 * being their mean. The codebook is n_code random unit vectors of dimension d_v.
 *
 * Planting in a head (in the needle pairs, position-free): a task query row carries only the
 * sink direction and a task direction u of strength nu (the head's needle strength, or the
 * needle default when its profile has none); the needle key carries u, so its logit is nu.
 * Multi-retrieve directions are orthonormal within a task, and a distractor's key is
 * AB_GEN_DISTRACT_COS * u + sqrt(1 - cos^2) * (an orthogonal unit vector): logit 0.6 nu, so the
 * asked needle wins by 0.4 nu nats. Aggregate keys share u: equal logits, near-uniform weights
 * over S. Needle values are sqrt(d_v) * c_p (the norm of a Gaussian value). */
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "gen/gen_internal.h"

static int64_t keys_of(int kind)
{
    switch (kind) {
    case AB_TASK_RETRIEVE: return 1;
    case AB_TASK_MULTI_RETRIEVE: return AB_GEN_MULTI_NEEDLES + AB_GEN_MULTI_DISTRACT;
    default: return AB_GEN_AGG_KEYS;
    }
}

/* A free row near `want` within [lo, hi] (then anywhere in [1, hi]), -1 if none. */
static int64_t free_row(const uint8_t *used, int64_t want, int64_t lo, int64_t hi)
{
    for (int64_t k = 0; k <= hi; k++) {
        if (want + k <= hi && !used[want + k]) return want + k;
        if (want - k >= lo && !used[want - k]) return want - k;
        if (want + k > hi && want - k < lo) break;
    }
    for (int64_t r = hi; r >= 1; r--)
        if (!used[r]) return r;
    return -1;
}

int ab_gen_tasks_layout(const struct ab_gen_opts *o, struct ab_gen_plan *plan)
{
    int64_t n = o->n_seq, n_task = 0, n_key = 0;
    for (int k = 0; k < 3; k++)
        if (o->tasks & (1u << k)) n_task += o->n_tasks, n_key += o->n_tasks * keys_of(k);
    if (n_task == 0) return AB_OK;
    if (o->task_rows < n_task)
        return ab_fail(AB_E_USAGE, "%lld task queries do not fit in --task-rows %lld",
                       (long long)n_task, (long long)o->task_rows);
    if (n - o->task_rows < 32 || n - o->task_rows < 2 * n_key)
        return ab_fail(AB_E_USAGE,
                       "sequence too short for the tasks (n %lld, task rows %lld, %lld task keys)",
                       (long long)n, (long long)o->task_rows, (long long)n_key);
    int rc =
        ab_tasks_alloc(&plan->tasks, n_task, n_key, o->n_code, o->d_v, o->n_layer, o->n_kv_head);
    if (rc) return rc;
    struct ab_tasks *t = &plan->tasks;
    plan->key_code = ab_alloc((size_t)(n_key + 1) * sizeof(int32_t));
    uint8_t *used = ab_alloc((size_t)n);
    int64_t *cand = ab_alloc((size_t)o->task_rows * sizeof(int64_t));
    if (!plan->key_code || !used || !cand) {
        rc = ab_fail(AB_E_NOMEM, "cannot allocate the task layout");
        goto done;
    }
    struct ab_rng r;
    ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_TASK, 0, 0, 1));
    /* rows: a partial Fisher-Yates shuffle of the last task_rows rows */
    for (int64_t k = 0; k < o->task_rows; k++) cand[k] = n - o->task_rows + k;
    for (int64_t k = 0; k < n_task; k++) {
        int64_t s = k + ab_rng_below(&r, o->task_rows - k), tmp = cand[k];
        cand[k] = cand[s], cand[s] = tmp;
        used[cand[k]] = 1;
    }
    used[0] = 1;
    int64_t ti = 0, ki = 0;
    for (int kind = 0; kind < 3; kind++) {
        if (!(o->tasks & (1u << kind))) continue;
        for (int64_t q = 0; q < o->n_tasks; q++, ti++) {
            int64_t row = cand[ti], nk = keys_of(kind);
            t->kind[ti] = kind;
            t->row[ti] = (int32_t)row;
            t->key_off[ti] = ki;
            int64_t lo = AB_MAX(1, (int64_t)floor(o->depth_min * (double)row));
            int64_t hi = AB_MIN(row - 1, (int64_t)ceil(o->depth_max * (double)row));
            lo = AB_MIN(lo, hi);
            for (int64_t k = 0; k < nk; k++) {
                double u = o->depth_min + (o->depth_max - o->depth_min) * ab_rng_uniform(&r);
                int64_t want = AB_MIN(hi, AB_MAX(lo, (int64_t)floor(u * (double)row)));
                int64_t pos = free_row(used, want, lo, hi);
                if (pos < 0) {
                    rc = ab_fail(AB_E_USAGE, "no room for the keys of task %lld (row %lld)",
                                 (long long)ti, (long long)row);
                    goto done;
                }
                used[pos] = 1;
                t->key_pos[ki + k] = (int32_t)pos;
            }
            /* codewords: distinct within a task (partial shuffle of 0..P-1 by rejection) */
            for (int64_t k = 0; k < nk; k++) {
                int32_t code = -1;
                if (kind != AB_TASK_AGGREGATE) {
                    int again;
                    do {
                        code = (int32_t)ab_rng_below(&r, o->n_code);
                        again = 0;
                        for (int64_t e = 0; e < k; e++) again |= plan->key_code[ki + e] == code;
                    } while (again);
                }
                plan->key_code[ki + k] = code;
            }
            t->answer[ti] = plan->key_code[ki];
            ki += nk;
        }
    }
    t->key_off[n_task] = ki;
    /* codebook: P random unit vectors */
    ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_TASK, 0, 0, 2));
    for (int64_t p = 0; p < o->n_code; p++) {
        double u[o->d_v];
        ab_gen_rand_unit(&r, u, o->d_v);
        for (int64_t e = 0; e < o->d_v; e++) t->codebook[p * o->d_v + e] = (float)u[e];
    }
    t->agg_threshold = 0.9;
done:
    ab_free(used);
    ab_free(cand);
    return rc;
}

/* Orthonormal rows basis[0..m) of dimension dim (m <= dim), Gram-Schmidt on Gaussian draws. */
static void orthonormal(struct ab_rng *r, double *basis, int64_t m, int64_t dim)
{
    for (int64_t a = 0; a < m; a++) {
        double *x = basis + a * dim, nn;
        do {
            ab_gen_rand_unit(r, x, dim);
            for (int64_t b = 0; b < a; b++) {
                const double *y = basis + b * dim;
                double dot = 0;
                for (int64_t e = 0; e < dim; e++) dot += x[e] * y[e];
                for (int64_t e = 0; e < dim; e++) x[e] -= dot * y[e];
            }
            nn = 0;
            for (int64_t e = 0; e < dim; e++) nn += x[e] * x[e];
        } while (nn < 1e-6);
        for (int64_t e = 0; e < dim; e++) x[e] /= sqrt(nn);
    }
}

/* Sets the needle dims of row x (d) to amp * u. */
static void set_dir(double *x, const int64_t *pairs, int64_t m, const double *u, double amp)
{
    for (int64_t k = 0; k < m; k++) {
        x[2 * pairs[k]] = amp * u[2 * k];
        x[2 * pairs[k] + 1] = amp * u[2 * k + 1];
    }
}

void ab_gen_tasks_plant(struct ab_gen_ctx *c)
{
    const struct ab_tasks *t = &c->plan->tasks;
    const struct ab_gen_head *hd = c->hd;
    int64_t m = ab_gen_pairs_of(hd, c->n_pair, AB_COMP_NEEDLE, c->pairs), dim = 2 * m;
    double nu = hd->strength[AB_COMP_NEEDLE] > 0 ? hd->strength[AB_COMP_NEEDLE]
                                                 : ab_component_default(AB_COMP_NEEDLE);
    double amp = ab_gen_amp(nu, c->scale), rho = AB_GEN_DISTRACT_COS;
    enum { NB = AB_GEN_MULTI_NEEDLES + AB_GEN_MULTI_DISTRACT };
    double basis[NB * dim], u[dim];
    struct ab_rng r;
    ab_rng_init(&r, c->o->seed,
                ab_stream(AB_GEN_TAG_TASKDIR, (uint64_t)c->layer, (uint64_t)c->kv, 0));
    double vnorm = sqrt((double)c->d_v);
    for (int64_t ti = 0; ti < t->n; ti++) {
        int64_t row = t->row[ti], k0 = t->key_off[ti], nk = t->key_off[ti + 1] - k0;
        /* the query row: only the sink direction survives */
        double *qp = c->q_pre + row * c->d, *qo = c->q_post + row * c->d;
        for (int64_t p = 0; p < c->n_pair; p++) {
            qp[2 * p] = qp[2 * p + 1] = 0;
            if (hd->pair_comp[p] != AB_COMP_SINK) qo[2 * p] = qo[2 * p + 1] = 0;
        }
        if (t->kind[ti] == AB_TASK_MULTI_RETRIEVE) {
            orthonormal(&r, basis, NB, dim);
            set_dir(qo, c->pairs, m, basis, amp);
            for (int64_t k = 0; k < nk; k++) {
                if (k < AB_GEN_MULTI_NEEDLES) {
                    memcpy(u, basis + k * dim, sizeof u);
                } else {
                    const double *perp = basis + (k)*dim;
                    for (int64_t e = 0; e < dim; e++)
                        u[e] = rho * basis[e] + sqrt(1 - rho * rho) * perp[e];
                }
                set_dir(c->k_post + t->key_pos[k0 + k] * c->d, c->pairs, m, u, amp);
            }
        } else {
            ab_gen_rand_unit(&r, u, dim);
            set_dir(qo, c->pairs, m, u, amp);
            for (int64_t k = 0; k < nk; k++)
                set_dir(c->k_post + t->key_pos[k0 + k] * c->d, c->pairs, m, u, amp);
        }
        for (int64_t k = 0; k < nk; k++) {
            int32_t code = c->plan->key_code[k0 + k];
            if (code < 0) continue;
            float *v = c->v + t->key_pos[k0 + k] * c->d_v;
            for (int64_t e = 0; e < c->d_v; e++)
                v[e] = (float)(vnorm * t->codebook[code * c->d_v + e]);
        }
    }
}
