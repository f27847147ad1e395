/* common.c - what every method shares: the ledger, kept-key bitsets, the phase's dense cost,
 * exact attention restricted to a kept set, family names, and the engine's prepare step (see
 * method.h). */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"
#include "methods/method.h"

void ab_ledger_add(struct ab_ledger *to, const struct ab_ledger *x)
{
    to->flops_attend += x->flops_attend;
    to->flops_select += x->flops_select;
    to->flops_once += x->flops_once;
    to->ops_other += x->ops_other;
    to->bytes_kv += x->bytes_kv;
    to->cells += x->cells;
}

void ab_ledger_attend(struct ab_ledger *l, const struct ab_head *h, double cells)
{
    l->cells += cells;
    l->flops_attend += cells * (double)(2 * h->d + 2 * h->d_v);
    l->bytes_kv += cells * 4.0 * (double)(h->d + h->d_v);
    l->ops_other += cells; /* one exp per kept cell */
}

int ab_keep_alloc(struct ab_keep *k, int64_t n_rows, int64_t n_k)
{
    k->n_rows = n_rows;
    k->n_k = n_k;
    k->words = (n_k + 63) / 64;
    k->bits = ab_alloc(ab_size_mul((size_t)(n_rows * k->words), sizeof(uint64_t)));
    return k->bits || n_rows == 0 ? AB_OK : ab_fail(AB_E_NOMEM, "cannot allocate a keep set");
}

void ab_keep_free(struct ab_keep *k)
{
    ab_free(k->bits);
    k->bits = NULL;
}

void ab_keep_clear(struct ab_keep *k)
{
    if (k->bits) memset(k->bits, 0, (size_t)(k->n_rows * k->words) * sizeof(uint64_t));
}

void ab_keep_range(struct ab_keep *k, int64_t r, int64_t j0, int64_t j1)
{
    j0 = AB_MAX(j0, 0);
    j1 = AB_MIN(j1, k->n_k);
    uint64_t *row = k->bits + r * k->words;
    for (int64_t j = j0; j < j1;) {
        if ((j & 63) == 0 && j + 64 <= j1) {
            row[j >> 6] = ~(uint64_t)0;
            j += 64;
        } else {
            row[j >> 6] |= (uint64_t)1 << (j & 63);
            j++;
        }
    }
}

int64_t ab_keep_count(const struct ab_keep *k, int64_t r)
{
    int64_t c = 0;
    for (int64_t w = 0; w < k->words; w++) c += __builtin_popcountll(k->bits[r * k->words + w]);
    return c;
}

double ab_problem_allowed_cells(const struct ab_problem *p)
{
    double cells = 0;
    for (int64_t i = p->q0; i < p->h->n_q; i++) cells += (double)ab_head_visible(p->h, i);
    return cells;
}

int64_t ab_problem_horizon(const struct ab_problem *p)
{
    return p->horizon > 0 ? p->horizon : AB_DECODE_HORIZON;
}

double ab_problem_dense_flops(const struct ab_problem *p)
{
    return (double)(2 * p->h->d + 2 * p->h->d_v) * ab_problem_allowed_cells(p);
}

int ab_attend_kept(const struct ab_problem *p, const struct ab_keep *keep, float *o,
                   double *computed)
{
    const struct ab_head *h = p->h;
    int64_t d = h->d, dv = h->d_v;
    double cells = 0;
    int rc = AB_OK;
    double *s = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(double)));    /* (n_k) logits */
    int64_t *idx = ab_alloc(ab_size_mul((size_t)h->n_k, sizeof(int64_t))); /* (n_k) kept keys */
    double *acc = ab_alloc(ab_size_mul((size_t)dv, sizeof(double)));       /* (d_v) */
    double *qd = ab_alloc(ab_size_mul((size_t)d, sizeof(double)));         /* (d) */
    if (!s || !idx || !acc || !qd) {
        rc = ab_fail(AB_E_NOMEM, "out of memory for one row of attention over %lld keys",
                     (long long)h->n_k);
        goto done;
    }
    for (int64_t r = 0; r < p->n_rows; r++) {
        int64_t i = p->rows[r], n_vis = ab_head_visible(h, i), m = 0;
        const uint64_t *bits = keep->bits + r * keep->words;
        for (int64_t c = 0; c < d; c++) qd[c] = h->q[i * d + c];
        double mx = -INFINITY;
        /* the kept visible keys, word by word of the row's bitset */
        for (int64_t wd = 0; wd * 64 < n_vis; wd++)
            for (uint64_t x = bits[wd]; x; x &= x - 1) {
                int64_t j = wd * 64 + __builtin_ctzll(x);
                if (j >= n_vis) break;
                s[m] = h->scale * ab_dot_df(qd, h->k + j * d, d);
                if (s[m] > mx) mx = s[m];
                idx[m++] = j;
            }
        cells += (double)m;
        memset(acc, 0, (size_t)dv * sizeof(double));
        double z = 0;
        for (int64_t t = 0; t < m; t++) {
            double w = exp(s[t] - mx);
            z += w;
            ab_axpy_df(acc, w, h->v + idx[t] * dv, dv);
        }
        for (int64_t c = 0; c < dv; c++) o[r * dv + c] = m ? (float)(acc[c] / z) : 0.0f;
    }
done:
    if (computed) *computed += cells;
    ab_attend_counter_add(cells);
    ab_free(s);
    ab_free(idx);
    ab_free(acc);
    ab_free(qd);
    return rc;
}

static _Thread_local double attend_counter;

void ab_attend_counter_add(double cells) { attend_counter += cells; }

double ab_attend_counter_take(void)
{
    double c = attend_counter;
    attend_counter = 0;
    return c;
}

const char *ab_family_name(int family)
{
    static const char *const names[] = {"dense", "static", "dynamic", "kv", "linear",
                                        "calibration"};
    return family >= 0 && family <= AB_FAMILY_CALIBRATION ? names[family] : "unknown";
}

int ab_method_check_row(const struct ab_method *m)
{
    if (!m) return ab_fail(AB_E_DATA, "a NULL row");
    if (!m->name || !*m->name) return ab_fail(AB_E_DATA, "a row without a name");
    size_t len = strlen(m->name);
    const char *plus = strchr(m->name, '+'); /* compositions (compose.c) only: A+B */
    int composed = plus && plus > m->name && plus[1] && !strchr(plus + 1, '+') && len <= 160;
    for (const char *c = m->name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              (*c == '+' && composed)) ||
            (len > 63 && !composed))
            return ab_fail(AB_E_DATA, "row '%.63s': a name must be [a-z0-9-]+, at most 63 characters", m->name);
    const char *n = m->name;
    if (!strcmp(ab_family_name(m->family), "unknown"))
        return ab_fail(AB_E_DATA, "row '%s': unknown family %d", n, m->family);
    if (!m->phases || (m->phases & ~(unsigned)(AB_PHASE_PREFILL | AB_PHASE_DECODE)))
        return ab_fail(AB_E_DATA, "row '%s': phases must be AB_PHASE_PREFILL and/or AB_PHASE_DECODE", n);
    if (!m->masks || (m->masks & ~(unsigned)(AB_MASKS_CAUSAL | AB_MASKS_FULL)))
        return ab_fail(AB_E_DATA, "row '%s': masks must be AB_MASKS_CAUSAL and/or AB_MASKS_FULL", n);
    if (!m->run) return ab_fail(AB_E_DATA, "row '%s': no run function", n);
    if (!m->summary || !m->citation || !m->cost_words)
        return ab_fail(AB_E_DATA, "row '%s': summary, citation and cost_words are required", n);
    if (m->flags & ~(unsigned)(2 * AB_METHOD_LOSSY - 1))
        return ab_fail(AB_E_DATA, "row '%s': unknown flag bits 0x%x", n, m->flags);
    if ((m->flags & AB_METHOD_ANALYTIC) && !m->cost)
        return ab_fail(AB_E_DATA, "row '%s': AB_METHOD_ANALYTIC without a cost function", n);
    if (!m->prepare != !m->prepare_free)
        return ab_fail(AB_E_DATA, "row '%s': prepare and prepare_free go together", n);
    if ((m->plan || m->plan_free) && !(m->flags & AB_METHOD_MODEL))
        return ab_fail(AB_E_DATA, "row '%s': plan only for AB_METHOD_MODEL rows", n);
    if (!m->plan != !m->plan_free) return ab_fail(AB_E_DATA, "row '%s': plan and plan_free go together", n);
    if (m->knob.name) {
        const struct ab_knob *k = &m->knob;
        if (!(k->lo > 0) || !(k->hi <= 0 || k->hi > k->lo) || isnan(k->hi))
            return ab_fail(AB_E_DATA, "row '%s': knob range [%g, %g] (lo > 0, hi > lo or hi <= 0 for n)", n, k->lo, k->hi);
        if (!(k->def >= k->lo) || (k->hi > 0 && k->def > k->hi))
            return ab_fail(AB_E_DATA, "row '%s': knob default %g outside [%g, %g]", n, k->def, k->lo, k->hi);
    }
    return AB_OK;
}

const struct ab_method *ab_method_find(const char *name)
{
    for (int i = 0; i < ab_method_count(); i++)
        if (!strcmp(ab_method_at(i)->name, name)) return ab_method_at(i);
    if (strchr(name, '+')) return ab_method_compose(name); /* A+B, made the first time */
    return NULL;
}

int ab_methods_resolve(const char *list, unsigned phases, int causal,
                       const struct ab_method **out, int cap, int *n)
{
    const char *ph = phases == AB_PHASE_PREFILL  ? "prefill"
                     : phases == AB_PHASE_DECODE ? "decode"
                                                 : "such";
    *n = 0;
    if (!list) {
        for (int i = 0; i < ab_method_count() && *n < cap; i++)
            if ((ab_method_at(i)->phases & phases) &&
                (!causal || (ab_method_at(i)->masks & AB_MASKS_CAUSAL)))
                out[(*n)++] = ab_method_at(i);
        return AB_OK;
    }
    const char *names[512];
    for (int i = 0; i < ab_method_count() && i < 512; i++) names[i] = ab_method_at(i)->name;
    const char *s = list;
    char name[64];
    int rc;
    while ((rc = ab_list_next(&s, 0, name, sizeof name, NULL, "--methods")) == 1) {
        const struct ab_method *m = ab_method_find(name);
        if (!m && strchr(name, '+')) return AB_E_USAGE; /* ab_method_compose said why */
        if (!m) {
            const char *near =
                ab_word_closest(name, names, ab_method_count() < 512 ? ab_method_count() : 512);
            if (near)
                return ab_fail(AB_E_USAGE, "unknown method '%s' (did you mean '%s'?)", name, near);
            return ab_fail(AB_E_USAGE, "unknown method '%s' (see 'attnbench methods')", name);
        }
        if (!(m->phases & phases))
            return ab_fail(AB_E_USAGE, "method '%s' has no %s phase", name, ph);
        if (causal && !(m->masks & AB_MASKS_CAUSAL))
            return ab_fail(AB_E_USAGE, "method '%s' does not support the causal mask", name);
        for (int j = 0; j < *n; j++)
            if (out[j] == m) return ab_fail(AB_E_USAGE, "method '%s' is listed twice", name);
        if (*n == cap) return ab_fail(AB_E_USAGE, "at most %d methods", cap);
        out[(*n)++] = m;
    }
    if (rc < 0) return rc;
    if (*n == 0) return ab_fail(AB_E_USAGE, "--methods is empty");
    return AB_OK;
}

int ab_problem_prepare(const struct ab_method *m, struct ab_problem *p)
{
    p->prep = NULL;
    if (!m->prepare) return AB_OK;
    void *state = NULL;
    int rc = m->prepare(p, &state);
    if (rc) {
        if (state && m->prepare_free) m->prepare_free(state);
        return rc;
    }
    assert(state); /* method.h: never NULL on AB_OK */
    p->prep = state;
    return AB_OK;
}

void ab_problem_unprepare(const struct ab_method *m, struct ab_problem *p)
{
    if (p->prep && m->prepare_free) m->prepare_free((void *)p->prep);
    p->prep = NULL;
}

unsigned ab_phases_parse(const char *list)
{
    unsigned bits = 0;
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        bits |= !strncmp(p, "prefill", 7) ? AB_PHASE_PREFILL : AB_PHASE_DECODE;
    return bits;
}

int ab_methods_knob(const char *knob, const struct ab_method *const *m, int n, double *value)
{
    const char *s = knob;
    char name[64];
    int rc = ab_list_next(&s, '=', name, sizeof name, value, "--knob");
    if (rc != 1 || *s)
        return rc < 0 ? rc : ab_fail(AB_E_USAGE, "option '--knob' wants one NAME=VALUE");
    for (int i = 0; i < n; i++)
        if (m[i]->knob.name && strcmp(m[i]->knob.name, name))
            return ab_fail(AB_E_USAGE, "--knob %s does not apply to '%s' (its knob is %s)", name,
                           m[i]->name, m[i]->knob.name);
    return AB_OK;
}

void ab_method_knob_range(const struct ab_method *m, const struct ab_problem *p, double *lo,
                          double *hi)
{
    *lo = m->knob.lo;
    *hi = m->knob.hi > 0 ? m->knob.hi : (double)p->h->n_k;
}
