/* methods_fixtures.c - see methods_fixtures.h. */
#include "methods_fixtures.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/rng.h"

void fx_layer_make(struct fx_layer *L, int64_t n_head, int64_t n_kv, int64_t n, int64_t d,
                   double spread, uint64_t seed)
{
    *L = (struct fx_layer){.n = n, .d = d, .n_head = n_head, .n_kv = n_kv};
    L->q = malloc(sizeof(float) * n_head * n * d);
    L->k = malloc(sizeof(float) * n_kv * n * d);
    L->v = malloc(sizeof(float) * n_kv * n * d);
    L->pos = malloc(sizeof(int32_t) * n);
    L->heads = malloc(sizeof(struct ab_head) * n_head);
    L->rows = malloc(sizeof(int64_t) * n);
    struct ab_rng r;
    ab_rng_init(&r, seed, 99);
    double a = sqrt(spread);
    for (int64_t i = 0; i < n_head * n * d; i++) L->q[i] = (float)(a * ab_rng_normal(&r));
    for (int64_t i = 0; i < n_kv * n * d; i++) L->k[i] = (float)(a * ab_rng_normal(&r));
    for (int64_t i = 0; i < n_kv * n * d; i++) L->v[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) L->pos[i] = (int32_t)i;
    for (int64_t h = 0; h < n_head; h++) {
        int64_t kv = h / (n_head / n_kv);
        L->heads[h] = (struct ab_head){.n_q = n, .n_k = n, .d = d, .d_v = d,
                                       .q = L->q + h * n * d, .k = L->k + kv * n * d,
                                       .v = L->v + kv * n * d, .q_pos = L->pos, .k_pos = L->pos,
                                       .mask = AB_MASK_CAUSAL, .scale = 1.0 / sqrt((double)d)};
    }
}

void fx_layer_free(struct fx_layer *L)
{
    free(L->q), free(L->k), free(L->v), free(L->pos), free(L->heads), free(L->rows);
}

struct ab_problem fx_problem(struct fx_layer *L, int64_t head, int64_t m)
{
    int64_t q0 = m > 0 ? L->n - m : 0;
    L->n_rows = L->n - q0;
    for (int64_t r = 0; r < L->n_rows; r++) L->rows[r] = q0 + r;
    return (struct ab_problem){.h = &L->heads[head],
                               .phase = m > 0 ? AB_PHASE_DECODE : AB_PHASE_PREFILL,
                               .q0 = q0,
                               .rows = L->rows,
                               .n_rows = L->n_rows,
                               .layer = L->heads,
                               .n_layer_heads = L->n_head,
                               .self = head,
                               .group = L->n_head / L->n_kv,
                               .seed = 1};
}

void fx_prepare(const struct ab_method *m, struct ab_problem *p)
{
    cr_assert_eq(ab_problem_prepare(m, p), AB_OK, "%s: %s", m->name, ab_errmsg());
    cr_assert(!m->prepare || p->prep, "%s: prepare() gave no state", m->name);
}

void fx_unprepare(const struct ab_method *m, struct ab_problem *p)
{
    ab_problem_unprepare(m, p);
}

int fx_method_run(const struct ab_method *m, const struct ab_problem *p, double knob, float *o,
                  struct ab_keep *keep, struct ab_ledger *led)
{
    struct ab_problem q = *p;
    int own = m->prepare && !q.prep;
    if (own) fx_prepare(m, &q);
    struct ab_keep local = {0};
    if (keep)
        ab_keep_clear(keep);
    else
        cr_assert_eq(ab_keep_alloc(keep = &local, p->n_rows, p->h->n_k), AB_OK);
    int rc = m->run(&q, knob, o, keep, led);
    ab_keep_free(&local);
    if (own) fx_unprepare(m, &q);
    return rc;
}

int fx_method_dist(const struct ab_method *m, const struct ab_problem *p, double knob, float *a)
{
    struct ab_problem q = *p;
    int own = m->prepare && !q.prep;
    if (own) fx_prepare(m, &q);
    int rc = m->dist(&q, knob, a);
    if (own) fx_unprepare(m, &q);
    return rc;
}

double fx_rel_l2(const struct ab_method *m, const struct ab_problem *p, double knob,
                 struct ab_ledger *led, struct ab_keep *keep)
{
    int64_t dv = p->h->d_v;
    float *o = malloc(sizeof(float) * p->n_rows * dv);
    double *ref = malloc(sizeof(double) * p->n_rows * dv);
    *led = (struct ab_ledger){0};
    if (keep) cr_assert_eq(ab_keep_alloc(keep, p->n_rows, p->h->n_k), AB_OK);
    cr_assert_eq(fx_method_run(m, p, knob, o, keep, led), AB_OK, "%s: %s", m->name, ab_errmsg());
    cr_assert_eq(ab_attn_ref(p->h, p->rows, p->n_rows, ref, NULL), AB_OK);
    double num = 0, den = 0;
    for (int64_t i = 0; i < p->n_rows * dv; i++) {
        double e = o[i] - ref[i];
        num += e * e, den += ref[i] * ref[i];
    }
    free(o), free(ref);
    return sqrt(num / den);
}

struct recall_ctx {
    const struct ab_keep *keep;
    int64_t r;
    double sum;
};

static int recall_row(int64_t i, const double *p, int64_t n_vis, double lse, void *user)
{
    (void)i, (void)lse;
    struct recall_ctx *c = user;
    for (int64_t j = 0; j < n_vis; j++)
        if (ab_keep_has(c->keep, c->r, j)) c->sum += p[j];
    c->r++;
    return 0;
}

double fx_recall(const struct ab_problem *p, const struct ab_keep *keep)
{
    struct recall_ctx c = {.keep = keep};
    cr_assert_eq(ab_attn_ref_visit(p->h, p->rows, p->n_rows, recall_row, &c), AB_OK);
    return c.sum / (double)p->n_rows;
}

const struct ab_method *fx_method(const char *name)
{
    const struct ab_method *m = ab_method_find(name);
    cr_assert(m, "%s is not in the registry", name);
    return m;
}

double fx_keep_cells(const struct ab_keep *keep)
{
    double c = 0;
    for (int64_t r = 0; r < keep->n_rows; r++) c += (double)ab_keep_count(keep, r);
    return c;
}

void fx_unit(float *u, int64_t d, struct ab_rng *r)
{
    double nn = 0;
    for (int64_t c = 0; c < d; c++) {
        u[c] = (float)ab_rng_normal(r);
        nn += (double)u[c] * u[c];
    }
    for (int64_t c = 0; c < d; c++) u[c] /= (float)sqrt(nn);
}

void fx_add_dir(float *x, int64_t d, int64_t i0, int64_t i1, const float *u, float a)
{
    for (int64_t i = i0; i < i1; i++)
        for (int64_t c = 0; c < d; c++) x[i * d + c] += a * u[c];
}

double fx_run_checked(const struct ab_method *m, const struct ab_problem *p, double knob,
                      struct ab_ledger *led, struct ab_keep *keep)
{
    double err = fx_rel_l2(m, p, knob, led, keep);
    float *o = malloc(sizeof(float) * p->n_rows * p->h->d_v);
    double computed = 0;
    ab_attend_kept(p, keep, o, &computed);
    free(o);
    cr_expect_eq(computed, led->cells, "%s at %g: ledger %.0f cells, computed %.0f", m->name,
                 knob, led->cells, computed);
    cr_expect_eq(fx_keep_cells(keep), led->cells, "%s at %g: keep holds %.0f cells, ledger %.0f",
                 m->name, knob, fx_keep_cells(keep), led->cells);
    struct ab_ledger bare = {0};
    cr_assert_eq(fx_method_run(m, p, knob, NULL, NULL, &bare), AB_OK);
    cr_expect(!memcmp(&bare, led, sizeof bare), "%s at %g: the o == NULL ledger differs",
              m->name, knob);
    if (m->flags & AB_METHOD_ANALYTIC) {
        struct ab_ledger c = {0};
        cr_assert_eq(m->cost(p, knob, &c), AB_OK);
        cr_expect(!memcmp(&c, led, sizeof c), "%s at %g: cost() differs from run()", m->name,
                  knob);
    }
    return err;
}

/* Runs m at knob on p into a fresh (n_rows, d_v) output; asserts success. */
float *fx_run_out(const struct ab_method *m, const struct ab_problem *p, double knob)
{
    float *o = malloc(sizeof(float) * (size_t)(p->n_rows * p->h->d_v));
    struct ab_ledger led = {0};
    cr_assert_eq(fx_method_run(m, p, knob, o, NULL, &led), AB_OK, "%s: %s", m->name, ab_errmsg());
    return o;
}

/* max over rows of |o_r - ref_r| / (|ref_r| + 1e-3) in the Euclidean norm */
double fx_max_row_err(const float *o, const double *ref, int64_t n_rows, int64_t dv)
{
    double worst = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        double e = 0, n = 0;
        for (int64_t c = 0; c < dv; c++) {
            double x = o[r * dv + c] - ref[r * dv + c];
            e += x * x, n += ref[r * dv + c] * ref[r * dv + c];
        }
        worst = fmax(worst, sqrt(e) / (sqrt(n) + 1e-3));
    }
    return worst;
}

double fx_dot(const float *a, const float *b, int64_t d)
{
    double s = 0;
    for (int64_t c = 0; c < d; c++) s += (double)a[c] * b[c];
    return s;
}
