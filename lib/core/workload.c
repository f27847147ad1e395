/* workload.c - allocation, views and validation of in-memory workloads (see workload.h). */
#include "core/workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"

static const char *const task_names[] = {"retrieve", "multi-retrieve", "aggregate"};

const char *ab_task_kind_name(int kind)
{
    return kind >= 0 && kind < 3 ? task_names[kind] : "unknown";
}

int ab_task_kind_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, task_names[i])) return i;
    return -1;
}

int ab_workload_alloc(struct ab_workload *w, int64_t n_layer, int64_t n_head, int64_t n_kv_head,
                      int64_t n_seq, int64_t d, int64_t d_v)
{
    memset(w, 0, sizeof *w);
    if (n_layer <= 0 || n_head <= 0 || n_kv_head <= 0 || n_seq <= 0 || d <= 0 || d_v <= 0)
        return ab_fail(AB_E_USAGE,
                       "sizes must be positive (layers %lld, heads %lld, kv heads %lld, n %lld, "
                       "d %lld, dv %lld)",
                       (long long)n_layer, (long long)n_head, (long long)n_kv_head,
                       (long long)n_seq, (long long)d, (long long)d_v);
    if (n_head % n_kv_head)
        return ab_fail(AB_E_USAGE, "heads (%lld) must be a multiple of kv heads (%lld)",
                       (long long)n_head, (long long)n_kv_head);
    if (n_seq > INT32_MAX)
        return ab_fail(AB_E_TOOBIG, "sequence length %lld exceeds the int32 positions",
                       (long long)n_seq);
    /* doubles: no overflow for any int64 inputs; the products are checked against memory */
    double fq = (double)n_layer * n_head * n_seq * d, fk = (double)n_layer * n_kv_head * n_seq * d;
    double fv = (double)n_layer * n_kv_head * n_seq * d_v;
    int rc = ab_check_fits("the workload", 4.0 * (fq + fk + fv));
    if (rc) return rc;
    w->n_layer = n_layer, w->n_head = n_head, w->n_kv_head = n_kv_head;
    w->n_seq = n_seq, w->d = d, w->d_v = d_v;
    w->q = ab_alloc((size_t)fq * sizeof(float));
    w->k = ab_alloc((size_t)fk * sizeof(float));
    w->v = ab_alloc((size_t)fv * sizeof(float));
    w->positions = ab_alloc((size_t)n_seq * sizeof(int32_t));
    if (!w->q || !w->k || !w->v || !w->positions) {
        ab_workload_free(w);
        return ab_fail(AB_E_NOMEM, "cannot allocate the workload (%.3g GB)",
                       4.0 * (fq + fk + fv) / 1e9);
    }
    for (int64_t i = 0; i < n_seq; i++) w->positions[i] = (int32_t)i;
    w->causal = 1;
    w->scale = 1.0 / sqrt((double)d);
    return AB_OK;
}

void ab_tasks_free(struct ab_tasks *t)
{
    ab_free(t->kind);
    ab_free(t->row);
    ab_free(t->answer);
    ab_free(t->key_off);
    ab_free(t->key_pos);
    ab_free(t->codebook);
    ab_free(t->planted);
    memset(t, 0, sizeof *t);
}

int ab_tasks_alloc(struct ab_tasks *t, int64_t n, int64_t n_keys, int64_t n_code, int64_t d_v,
                   int64_t n_layer, int64_t n_kv_head)
{
    memset(t, 0, sizeof *t);
    if (n < 0 || n_keys < 0 || n_code < 0 || d_v <= 0 || n_layer <= 0 || n_kv_head <= 0)
        return ab_fail(AB_E_USAGE, "bad task sizes");
    t->n = n;
    t->n_code = n_code;
    t->agg_threshold = 0.9;
    /* +1 so zero-sized arrays still get a valid pointer */
    t->kind = ab_alloc((size_t)(n + 1) * sizeof(int32_t));
    t->row = ab_alloc((size_t)(n + 1) * sizeof(int32_t));
    t->answer = ab_alloc((size_t)(n + 1) * sizeof(int32_t));
    t->key_off = ab_alloc((size_t)(n + 1) * sizeof(int64_t));
    t->key_pos = ab_alloc((size_t)(n_keys + 1) * sizeof(int32_t));
    t->codebook = ab_alloc((size_t)(n_code * d_v + 1) * sizeof(float));
    t->planted = ab_alloc((size_t)(n_layer * n_kv_head) * sizeof(int8_t));
    if (!t->kind || !t->row || !t->answer || !t->key_off || !t->key_pos || !t->codebook ||
        !t->planted) {
        ab_tasks_free(t);
        return ab_fail(AB_E_NOMEM, "cannot allocate %lld tasks", (long long)n);
    }
    t->key_off[n] = n_keys;
    return AB_OK;
}

void ab_workload_free(struct ab_workload *w)
{
    ab_free(w->q);
    ab_free(w->k);
    ab_free(w->v);
    ab_free(w->positions);
    ab_free(w->tokens);
    free(w->text);
    ab_free(w->hidden);
    if (w->profile) {
        for (int64_t i = 0; i < w->n_layer * w->n_kv_head; i++) free(w->profile[i]);
        free(w->profile);
    }
    ab_tasks_free(&w->tasks);
    free(w->source);
    free(w->description);
    free(w->created_utc);
    free(w->version);
    memset(w, 0, sizeof *w);
}

int64_t ab_workload_kv_of(const struct ab_workload *w, int64_t head)
{
    return head / (w->n_head / w->n_kv_head);
}

float *ab_workload_q(const struct ab_workload *w, int64_t layer, int64_t head)
{
    return w->q + ((layer * w->n_head + head) * w->n_seq) * w->d;
}

float *ab_workload_k(const struct ab_workload *w, int64_t layer, int64_t kv)
{
    return w->k + ((layer * w->n_kv_head + kv) * w->n_seq) * w->d;
}

float *ab_workload_v(const struct ab_workload *w, int64_t layer, int64_t kv)
{
    return w->v + ((layer * w->n_kv_head + kv) * w->n_seq) * w->d_v;
}

void ab_workload_head(const struct ab_workload *w, int64_t layer, int64_t head,
                      struct ab_head *out)
{
    int64_t kv = ab_workload_kv_of(w, head);
    *out = (struct ab_head){
        .n_q = w->n_seq,
        .n_k = w->n_seq,
        .d = w->d,
        .d_v = w->d_v,
        .q = ab_workload_q(w, layer, head),
        .k = ab_workload_k(w, layer, kv),
        .v = ab_workload_v(w, layer, kv),
        .q_pos = w->positions,
        .k_pos = w->positions,
        .mask = w->causal ? AB_MASK_CAUSAL : AB_MASK_FULL,
        .scale = w->scale,
        .rope_theta = 0,
    };
}

/* Index of the first non-finite value of x[0..n), or -1. */
static int64_t first_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return -1;
}

/* The largest Euclidean norm of the n rows of x (n, d), in double. */
static double max_row_norm(const float *x, int64_t n, int64_t d)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t c = 0; c < d; c++) s += (double)x[i * d + c] * x[i * d + c];
        m = s > m ? s : m;
    }
    return sqrt(m);
}

int ab_workload_validate(const struct ab_workload *w)
{
    if (w->n_layer <= 0 || w->n_head <= 0 || w->n_kv_head <= 0 || w->n_seq <= 0 || w->d <= 0 ||
        w->d_v <= 0)
        return ab_fail(AB_E_DATA, "sizes must be positive");
    if (w->n_head % w->n_kv_head)
        return ab_fail(AB_E_DATA, "heads (%lld) not a multiple of kv heads (%lld)",
                       (long long)w->n_head, (long long)w->n_kv_head);
    if (!(w->scale > 0) || !isfinite(w->scale))
        return ab_fail(AB_E_DATA, "scale must be positive and finite (got %g)", w->scale);
    struct { const char *name; const float *x; int64_t n; } arr[] = {
        {"q", w->q, w->n_layer * w->n_head * w->n_seq * w->d},
        {"k", w->k, w->n_layer * w->n_kv_head * w->n_seq * w->d},
        {"v", w->v, w->n_layer * w->n_kv_head * w->n_seq * w->d_v},
        {"hidden", w->hidden, (w->n_layer + 1) * w->n_seq * w->d_model},
    };
    for (int a = 0; a < 4; a++) {
        if (!arr[a].x) {
            if (a < 3) return ab_fail(AB_E_DATA, "missing /%s", arr[a].name);
            continue;
        }
        int64_t bad = first_nonfinite(arr[a].x, arr[a].n);
        if (bad >= 0)
            return ab_fail(AB_E_DATA, "/%s holds a non-finite value at flat index %lld",
                           arr[a].name, (long long)bad);
    }
    for (int64_t i = 1; i < w->n_seq; i++)
        if (w->positions[i] < w->positions[i - 1])
            return ab_fail(AB_E_DATA, "/positions must be non-decreasing (row %lld)",
                           (long long)i);
    /* every logit scale q.k is bounded by scale |q|max |k|max: keep it where single precision
     * computes it (float holds 3.4e38; products of components are bounded the same way) */
    double qmax = max_row_norm(w->q, w->n_layer * w->n_head * w->n_seq, w->d);
    double kmax = max_row_norm(w->k, w->n_layer * w->n_kv_head * w->n_seq, w->d);
    double bound = w->scale * qmax * kmax;
    if (!(w->scale <= AB_LOGIT_MAX) || !(bound <= AB_LOGIT_MAX))
        return ab_fail(AB_E_DATA, "logits can reach %.3g (scale %.3g x largest |q| %.3g x largest "
                       "|k| %.3g), beyond what single precision computes (%.0e)", bound, w->scale,
                       qmax, kmax, AB_LOGIT_MAX);
    const struct ab_tasks *t = &w->tasks;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->kind[i] < 0 || t->kind[i] > 2)
            return ab_fail(AB_E_DATA, "task %lld: unknown kind %d", (long long)i, t->kind[i]);
        if (t->row[i] < 0 || t->row[i] >= w->n_seq)
            return ab_fail(AB_E_DATA, "task %lld: query row %d out of range", (long long)i,
                           t->row[i]);
        if (t->answer[i] < -1 || t->answer[i] >= t->n_code)
            return ab_fail(AB_E_DATA, "task %lld: answer %d out of range", (long long)i,
                           t->answer[i]);
        if (t->key_off[i] < 0 || t->key_off[i] > t->key_off[i + 1])
            return ab_fail(AB_E_DATA, "task %lld: bad key offsets", (long long)i);
        for (int64_t j = t->key_off[i]; j < t->key_off[i + 1]; j++)
            if (t->key_pos[j] < 0 || t->key_pos[j] >= w->n_seq)
                return ab_fail(AB_E_DATA, "task %lld: key row %d out of range", (long long)i,
                               t->key_pos[j]);
    }
    if (t->n && t->codebook && first_nonfinite(t->codebook, t->n_code * w->d_v) >= 0)
        return ab_fail(AB_E_DATA, "task codebook holds a non-finite value");
    return AB_OK;
}
