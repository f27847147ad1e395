/* generate.c - the generator's driver: option defaults and validation, the plan (profiles,
 * strengths, pair allocation, positions, task layout) and the generation of Q, K and V for
 * every (layer, kv head) in parallel.
 *
 * Per kv head: values N(0, 1); the components add their parts of the base query and the keys
 * in double (pre-rotation and post-rotation coordinates, see gen_internal.h); the tasks are
 * planted; the post-rotation parts are counter-rotated and added. Query head h of the group
 * then takes the base query with a gain exp(0.05 z) per component (z ~ N(0, 1) from its own
 * stream), so heads of a group share their profile but are not identical. Finally RoPE is
 * applied to Q and K with ab_rope_apply. Every draw comes from a stream named by (layer, head,
 * component), so the bytes do not depend on the thread count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "gen/gen_internal.h"

#define GAIN_SD 0.05 /* log-gain spread of the query heads of a group */

void ab_gen_defaults(struct ab_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    for (int c = 0; c < AB_COMP_COUNT; c++) o->strength[c] = -1;
    o->rope_theta = 10000;
    o->n_tasks = 8;
    o->task_rows = 64;
    o->depth_min = 0.1;
    o->depth_max = 0.9;
    o->n_code = 64;
}

static int validate(struct ab_gen_opts *o)
{
    if (o->n_layer <= 0 || o->n_head <= 0 || o->n_kv_head <= 0 || o->n_seq <= 0 || o->d <= 0)
        return ab_fail(AB_E_USAGE,
                       "sizes must be positive (layers %lld, heads %lld, kv heads %lld, n %lld, "
                       "d %lld)",
                       (long long)o->n_layer, (long long)o->n_head, (long long)o->n_kv_head,
                       (long long)o->n_seq, (long long)o->d);
    if (o->d_v == 0) o->d_v = o->d;
    if (o->d_v < 0)
        return ab_fail(AB_E_USAGE, "--dv must be positive (got %lld)", (long long)o->d_v);
    if (o->n_head % o->n_kv_head)
        return ab_fail(AB_E_USAGE, "heads (%lld) must be a multiple of kv heads (%lld)",
                       (long long)o->n_head, (long long)o->n_kv_head);
    if (o->d % 2) return ab_fail(AB_E_USAGE, "d must be even for RoPE (got %lld)", (long long)o->d);
    if (o->d > 4096 || o->d_v > 4096) return ab_fail(AB_E_USAGE, "d and dv must be at most 4096");
    if (o->n_seq < 2 || o->n_seq > INT32_MAX)
        return ab_fail(AB_E_USAGE, "n must be in [2, 2^31) (got %lld)", (long long)o->n_seq);
    if (!(o->rope_theta > 1) || !isfinite(o->rope_theta))
        return ab_fail(AB_E_USAGE, "--theta must be > 1 (got %g)", o->rope_theta);
    if (o->slash_period < 0 || o->slash_period >= o->n_seq)
        return ab_fail(AB_E_USAGE, "slash period must be in [1, n) (got %d)", o->slash_period);
    for (int c = 0; c < AB_COMP_COUNT; c++)
        if (!(o->strength[c] <= 100) || !isfinite(o->strength[c]))
            return ab_fail(AB_E_USAGE, "%s strength must be finite and at most 100",
                           ab_component_name(c));
    if (o->tasks & ~7u) return ab_fail(AB_E_USAGE, "unknown task kind in the task set");
    if (o->tasks) {
        if (o->n_tasks <= 0 || o->n_tasks > 1000000)
            return ab_fail(AB_E_USAGE, "task count must be in [1, 10^6] (got %lld)",
                           (long long)o->n_tasks);
        if (o->task_rows <= 0 || o->task_rows >= o->n_seq)
            return ab_fail(AB_E_USAGE, "--task-rows must be in [1, n) (got %lld)",
                           (long long)o->task_rows);
        if (!(o->depth_min >= 0 && o->depth_min <= o->depth_max && o->depth_max <= 1))
            return ab_fail(AB_E_USAGE, "needle depths need 0 <= min <= max <= 1 (got %g, %g)",
                           o->depth_min, o->depth_max);
        int64_t need = (o->tasks & (1u << AB_TASK_MULTI_RETRIEVE))
                           ? AB_GEN_MULTI_NEEDLES + AB_GEN_MULTI_DISTRACT
                           : 2;
        if (o->n_code < need || o->n_code > 1000000)
            return ab_fail(AB_E_USAGE, "codebook size must be in [%lld, 10^6] (got %lld)",
                           (long long)need, (long long)o->n_code);
    }
    return ab_check_fits("the workload", 4.0 * (double)o->n_layer * (double)o->n_seq *
                                             ((double)o->n_head * (double)o->d +
                                              (double)o->n_kv_head * (double)(o->d + o->d_v)));
}

void ab_gen_plan_free(struct ab_gen_plan *plan)
{
    if (plan->head) {
        for (int64_t s = 0; s < plan->n_layer * plan->n_kv_head; s++) {
            struct ab_gen_head *hd = &plan->head[s];
            ab_free(hd->pair_comp);
            ab_free(hd->heavy);
            ab_free(hd->sec);
            ab_free(hd->topic);
        }
        free(plan->head);
    }
    ab_tasks_free(&plan->tasks);
    ab_free(plan->key_code);
    memset(plan, 0, sizeof *plan);
}

/* n_pick distinct positions in [lo, hi) avoiding avoid[] (may be NULL), sorted; returns how
 * many were found (fewer when the range is crowded). */
static int64_t pick_positions(struct ab_rng *r, int64_t lo, int64_t hi, int64_t n_pick,
                              const uint8_t *avoid, int32_t *out)
{
    int64_t got = 0;
    for (int64_t tries = 0; got < n_pick && tries < 20 * n_pick + 100 && hi > lo; tries++) {
        int64_t p = lo + ab_rng_below(r, hi - lo), dup = 0;
        if (avoid && avoid[p]) continue;
        for (int64_t k = 0; k < got; k++) dup |= out[k] == p;
        if (!dup) out[got++] = (int32_t)p;
    }
    for (int64_t a = 1; a < got; a++) /* insertion sort: n_pick is small */
        for (int64_t b = a; b > 0 && out[b - 1] > out[b]; b--) {
            int32_t t = out[b];
            out[b] = out[b - 1], out[b - 1] = t;
        }
    return got;
}

/* Positions chosen by the head's components: heavy hitters, secondary sinks, topic segments. */
static int head_positions(const struct ab_gen_opts *o, int64_t l, int64_t kv,
                          struct ab_gen_head *hd, const uint8_t *avoid)
{
    int64_t n = o->n_seq;
    struct ab_rng r;
    if (hd->strength[AB_COMP_VERTICAL] > 0) {
        int64_t want = AB_MAX(1, n / 128);
        hd->heavy = ab_alloc((size_t)want * sizeof(int32_t));
        if (!hd->heavy) return ab_fail(AB_E_NOMEM, "cannot allocate heavy hitters");
        ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_POS, l, kv, AB_COMP_VERTICAL));
        hd->n_heavy = pick_positions(&r, 1, n, want, avoid, hd->heavy);
    }
    if (hd->strength[AB_COMP_SECONDARY_SINK] > 0) {
        hd->sec = ab_alloc(2 * sizeof(int32_t));
        if (!hd->sec) return ab_fail(AB_E_NOMEM, "cannot allocate secondary sinks");
        ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_POS, l, kv, AB_COMP_SECONDARY_SINK));
        hd->n_sec = pick_positions(&r, AB_MAX(1, n / 8), AB_MAX(2, n / 2), 2, avoid, hd->sec);
    }
    if (hd->strength[AB_COMP_TOPIC] > 0) {
        int64_t m = 0;
        for (int64_t p = 0; p < o->d / 2; p++) m += hd->pair_comp[p] == AB_COMP_TOPIC;
        hd->n_topic = AB_MIN(8, 2 * m);
        hd->topic = ab_alloc((size_t)n * sizeof(int32_t));
        if (!hd->topic) return ab_fail(AB_E_NOMEM, "cannot allocate topics");
        ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_POS, l, kv, AB_COMP_TOPIC));
        int64_t lo = AB_MAX(8, n / 32), hi = AB_MAX(16, n / 8);
        int32_t prev = -1;
        for (int64_t i = 0; i < n;) {
            int64_t len = lo + ab_rng_below(&r, hi - lo + 1);
            /* a new topic differs from the previous segment's; earlier ones may come back */
            int32_t t = (int32_t)ab_rng_below(&r, hd->n_topic - (prev >= 0));
            if (prev >= 0 && t >= prev) t++;
            for (int64_t e = i; e < AB_MIN(n, i + len); e++) hd->topic[e] = t;
            prev = t;
            i += len;
        }
    }
    return AB_OK;
}

int ab_gen_plan_make(const struct ab_gen_opts *opts, struct ab_gen_plan *out)
{
    memset(out, 0, sizeof *out);
    struct ab_gen_opts o = *opts;
    int rc = validate(&o);
    if (rc) return rc;
    int64_t n_slot = o.n_layer * o.n_kv_head, n_pair = o.d / 2;
    out->n_layer = o.n_layer, out->n_kv_head = o.n_kv_head, out->n_seq = o.n_seq, out->d = o.d;
    int *profile = calloc((size_t)n_slot, sizeof(int));
    int8_t *secondary = calloc((size_t)n_slot, 1);
    uint8_t *avoid = ab_alloc((size_t)o.n_seq);
    out->head = calloc((size_t)n_slot, sizeof *out->head);
    if (!profile || !secondary || !avoid || !out->head) {
        rc = ab_fail(AB_E_NOMEM, "cannot allocate the generator plan");
        goto done;
    }
    if ((rc = ab_gen_assign(&o, profile, secondary))) goto done;
    if ((rc = ab_gen_tasks_layout(&o, out))) goto done;
    const struct ab_tasks *t = &out->tasks;
    for (int64_t i = 0; i < t->n; i++) avoid[t->row[i]] = 1;
    for (int64_t k = 0; t->n && k < t->key_off[t->n]; k++) avoid[t->key_pos[k]] = 1;
    avoid[0] = 1;
    int64_t slash_period = o.slash_period > 0 ? o.slash_period
                           : o.n_seq >= 256   ? 32
                                              : AB_MAX(2, o.n_seq / 8);
    /* effective strengths; tasks go to the needle heads, or everywhere when there are none */
    int any_needle = 0;
    for (int64_t s = 0; s < n_slot; s++) {
        struct ab_gen_head *hd = &out->head[s];
        hd->profile = profile[s];
        for (int c = 0; c < AB_COMP_COUNT; c++) {
            double v = ab_profiles[profile[s]].strength[c];
            if (c == AB_COMP_SECONDARY_SINK && secondary[s] && v == 0) v = ab_component_default(c);
            if (o.strength[c] >= 0) v = o.strength[c];
            hd->strength[c] = v;
        }
        any_needle |= hd->strength[AB_COMP_NEEDLE] > 0;
    }
    for (int64_t s = 0; s < n_slot; s++) {
        struct ab_gen_head *hd = &out->head[s];
        int64_t l = s / o.n_kv_head, kv = s % o.n_kv_head;
        hd->planted = t->n > 0 && (!any_needle || hd->strength[AB_COMP_NEEDLE] > 0);
        if (t->n) out->tasks.planted[s] = (int8_t)hd->planted;
        hd->slash_period = hd->strength[AB_COMP_SLASH] > 0 ? slash_period : 0;
        hd->pair_comp = ab_alloc((size_t)n_pair);
        if (!hd->pair_comp) {
            rc = ab_fail(AB_E_NOMEM, "cannot allocate the generator plan");
            goto done;
        }
        if ((rc = ab_gen_alloc_pairs(&o, hd, slash_period, ab_profiles[hd->profile].name)))
            goto done;
        if ((rc = head_positions(&o, l, kv, hd, avoid))) goto done;
    }
done:
    free(profile);
    free(secondary);
    ab_free(avoid);
    if (rc) ab_gen_plan_free(out);
    return rc;
}

/* Adds the post-rotation rows src (n, d), counter-rotated by their positions, to dst: after
 * RoPE they come back as src, independent of position. */
static void add_counter_rotated(double *dst, const double *src, int64_t n, int64_t d,
                                const double *freq)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < d / 2; p++) {
            const double *x = src + i * d + 2 * p;
            if (x[0] == 0 && x[1] == 0) continue;
            double a = -(double)i * freq[p], c = cos(a), s = sin(a);
            dst[i * d + 2 * p] += x[0] * c - x[1] * s;
            dst[i * d + 2 * p + 1] += x[0] * s + x[1] * c;
        }
}

/* One thread's scratch: four (n, d) double buffers and a pair list. */
struct scratch {
    double *q_pre, *q_post, *k_pre, *k_post; /* (n, d) */
    int64_t *pairs;                          /* (d / 2) */
};

static void scratch_free(struct scratch *s)
{
    ab_free(s->q_pre);
    ab_free(s->q_post);
    ab_free(s->k_pre);
    ab_free(s->k_post);
    ab_free(s->pairs);
}

static int scratch_alloc(struct scratch *s, int64_t n, int64_t d)
{
    size_t nd = ab_size_mul((size_t)(n * d), sizeof(double));
    s->q_pre = ab_alloc(nd), s->q_post = ab_alloc(nd);
    s->k_pre = ab_alloc(nd), s->k_post = ab_alloc(nd);
    s->pairs = ab_alloc((size_t)(d / 2) * sizeof(int64_t));
    if (s->q_pre && s->q_post && s->k_pre && s->k_post && s->pairs) return AB_OK;
    scratch_free(s);
    return ab_fail(AB_E_NOMEM, "cannot allocate generator buffers (n %lld, d %lld)", (long long)n,
                   (long long)d);
}

/* Generates one (layer, kv head): its K, V and the Q of its query heads, using scratch sc.
 * AB_E_NOMEM (no detail) when a component's own scratch cannot be allocated. */
static int gen_head(const struct ab_gen_opts *o, const struct ab_gen_plan *plan,
                    struct ab_workload *w, int64_t l, int64_t kv, const double *freq,
                    const uint8_t *task_pos, struct scratch *sc)
{
    int64_t n = w->n_seq, d = w->d, d_v = w->d_v, n_pair = d / 2;
    size_t nd = (size_t)(n * d) * sizeof(double);
    memset(sc->q_pre, 0, nd);
    memset(sc->q_post, 0, nd);
    memset(sc->k_pre, 0, nd);
    memset(sc->k_post, 0, nd);
    struct ab_gen_ctx c = {
        .o = o,
        .plan = plan,
        .hd = &plan->head[l * w->n_kv_head + kv],
        .layer = l,
        .kv = kv,
        .n = n,
        .d = d,
        .d_v = d_v,
        .n_pair = n_pair,
        .scale = w->scale,
        .q_pre = sc->q_pre,
        .q_post = sc->q_post,
        .k_pre = sc->k_pre,
        .k_post = sc->k_post,
        .v = ab_workload_v(w, l, kv),
        .task_pos = (uint8_t *)task_pos,
        .pairs = sc->pairs,
    };
    struct ab_rng r;
    ab_rng_init(&r, o->seed, ab_stream(AB_GEN_TAG_VALUE, (uint64_t)l, (uint64_t)kv, 0));
    for (int64_t e = 0; e < n * d_v; e++) c.v[e] = (float)ab_rng_normal(&r);
    for (int comp = 0; comp < AB_COMP_COUNT; comp++)
        if (c.hd->strength[comp] > 0 && ab_gen_component(&c, comp)) return AB_E_NOMEM;
    if (c.hd->planted) ab_gen_tasks_plant(&c);
    add_counter_rotated(c.q_pre, c.q_post, n, d, freq);
    add_counter_rotated(c.k_pre, c.k_post, n, d, freq);
    float *k = ab_workload_k(w, l, kv);
    for (int64_t e = 0; e < n * d; e++) k[e] = (float)c.k_pre[e];
    ab_rope_apply(k, n, d, w->positions, o->rope_theta);
    int64_t group = w->n_head / w->n_kv_head;
    for (int64_t h = kv * group; h < (kv + 1) * group; h++) {
        double gain[AB_COMP_COUNT + 1];
        for (int comp = 0; comp <= AB_COMP_COUNT; comp++) {
            int src = comp == AB_GEN_SLASH_LOOKBACK ? AB_COMP_SLASH : comp;
            gain[comp] = exp(GAIN_SD * ab_rng_normal_at(o->seed,
                                                        ab_stream(AB_GEN_TAG_GAIN, (uint64_t)l,
                                                                  (uint64_t)h, (uint64_t)src),
                                                        0));
        }
        float *q = ab_workload_q(w, l, h);
        for (int64_t i = 0; i < n; i++)
            for (int64_t p = 0; p < n_pair; p++) {
                int comp = c.hd->pair_comp[p];
                double g = comp >= 0 ? gain[comp] : 1;
                q[i * d + 2 * p] = (float)(g * c.q_pre[i * d + 2 * p]);
                q[i * d + 2 * p + 1] = (float)(g * c.q_pre[i * d + 2 * p + 1]);
            }
        ab_rope_apply(q, n, d, w->positions, o->rope_theta);
    }
    return AB_OK;
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

int ab_gen_workload(const struct ab_gen_opts *opts, struct ab_workload *out)
{
    memset(out, 0, sizeof *out);
    struct ab_gen_opts o = *opts;
    struct ab_gen_plan plan;
    int rc = ab_gen_plan_make(&o, &plan);
    if (rc) return rc;
    if (o.d_v == 0) o.d_v = o.d;
    double *freq = NULL;
    uint8_t *task_pos = NULL;
    if ((rc = ab_workload_alloc(out, o.n_layer, o.n_head, o.n_kv_head, o.n_seq, o.d, o.d_v)))
        goto done;
    int64_t n_slot = o.n_layer * o.n_kv_head;
    freq = ab_alloc((size_t)(o.d / 2) * sizeof(double));
    task_pos = ab_alloc((size_t)o.n_seq);
    out->profile = calloc((size_t)n_slot, sizeof(char *));
    out->source = str_dup("synthetic");
    char desc[256];
    snprintf(desc, sizeof desc, "attnbench gen: %s, theta %g, seed %llu",
             o.profile ? o.profile
             : o.mix   ? o.mix
                       : "model preset",
             o.rope_theta, (unsigned long long)o.seed);
    out->description = str_dup(desc);
    if (!freq || !task_pos || !out->profile || !out->source || !out->description) {
        rc = ab_fail(AB_E_NOMEM, "cannot allocate the workload");
        goto done;
    }
    for (int64_t s = 0; s < n_slot; s++)
        if (!(out->profile[s] = str_dup(ab_profiles[plan.head[s].profile].name))) {
            rc = ab_fail(AB_E_NOMEM, "cannot allocate profile names");
            goto done;
        }
    for (int64_t p = 0; p < o.d / 2; p++) freq[p] = ab_gen_freq(p, o.d, o.rope_theta);
    const struct ab_tasks *t = &plan.tasks;
    for (int64_t i = 0; i < t->n; i++) task_pos[t->row[i]] = 1;
    for (int64_t k = 0; t->n && k < t->key_off[t->n]; k++) task_pos[t->key_pos[k]] = 1;
    out->seed = o.seed;
    out->causal = !o.full_mask;
    out->scale = 1.0 / sqrt((double)o.d);
    out->rope_applied = 1;
    out->rope_theta = o.rope_theta;

    /* heads in parallel; ab_rope_apply's own parallel region stays serial inside */
    int failed = 0, head_failed = 0;
#pragma omp parallel reduction(| : failed, head_failed)
    {
        struct scratch sc;
        int e = scratch_alloc(&sc, o.n_seq, o.d);
        failed |= e != AB_OK;
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < n_slot; s++)
            if (!e &&
                gen_head(&o, &plan, out, s / o.n_kv_head, s % o.n_kv_head, freq, task_pos, &sc))
                head_failed = 1;
        if (!e) scratch_free(&sc);
    }
    if (failed || head_failed) {
        rc = ab_fail(AB_E_NOMEM, "cannot allocate generator %s (n %lld, d %lld)",
                     failed ? "buffers" : "component tables", (long long)o.n_seq, (long long)o.d);
        goto done;
    }
    /* hand the task layout over to the workload */
    out->tasks = plan.tasks;
    memset(&plan.tasks, 0, sizeof plan.tasks);
done:
    ab_free(freq);
    ab_free(task_pos);
    ab_gen_plan_free(&plan);
    if (rc) ab_workload_free(out);
    return rc;
}
