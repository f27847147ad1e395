/* check.c - the regression gate's comparison (see check.h): match the rows of two /cells tables
 * on their key columns, then judge each compared column of every matched pair.
 *
 * The compared columns and their sense are the metric table's (eval/metric.h). Matching sorts a
 * key view of each table (stable on the row index, so repeated keys pair in table order) and
 * merges the two sorted lists; nothing is quadratic in the row count. */
#include "eval/check.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"

/* The compared columns, taken once from the metric table (build_columns). */
static struct ab_check_column columns[AB_N_METRIC];
static int n_columns;
static pthread_once_t columns_once = PTHREAD_ONCE_INIT;
_Static_assert((int)AB_N_METRIC <= (int)AB_CHECK_MAX_COLUMNS, "raise AB_CHECK_MAX_COLUMNS");

/* The checked rows of the metric table: accuracy, then cost, then the knob, each in table
 * order. */
static void build_columns(void)
{
    static const int groups[][2] = {{AB_SENSE_HIGH_WORSE, AB_SENSE_LOW_WORSE},
                                    {AB_SENSE_COST, AB_SENSE_COST},
                                    {AB_SENSE_SETTING, AB_SENSE_SETTING}};
    int n = 0;
    for (int g = 0; g < 3; g++)
        for (int k = 0; k < AB_N_METRIC; k++) {
            const struct ab_metric *m = &ab_metrics[k];
            if (m->checked && (m->sense == groups[g][0] || m->sense == groups[g][1]))
                columns[n++] = (struct ab_check_column){m->name, m->sense, m->offset, m->is_int};
        }
    n_columns = n;
}

const struct ab_check_column *ab_check_columns(int *n)
{
    pthread_once(&columns_once, build_columns);
    *n = n_columns;
    return columns;
}

int ab_check_column_find(const char *name)
{
    int n;
    ab_check_columns(&n);
    for (int c = 0; c < n; c++)
        if (!strcmp(columns[c].name, name)) return c;
    return -1;
}

void ab_check_defaults(struct ab_check_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int c = 0; c < AB_CHECK_MAX_COLUMNS; c++) {
        o->rtol[c] = AB_CHECK_RTOL;
        o->atol[c] = AB_CHECK_ATOL;
        o->use[c] = 1;
    }
}

const char *ab_check_kind_name(int kind)
{
    static const char *names[] = {"worse", "better", "cost", "changed",
                                  "nan",   "feasible", "missing", "added"};
    return kind >= 0 && kind < (int)(sizeof names / sizeof names[0]) ? names[kind] : "?";
}

const char *ab_check_basename(const char *path)
{
    if (!path) return "";
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ------------------------------------------------------------------ matching */

/* One row seen through its key. */
struct keyed {
    const struct ab_cell *c;
    const char *base; /* workload base name */
    int64_t row;
};

static const char *str_or_empty(const char *s)
{
    return s ? s : "";
}

/* Total order on doubles for keys: NaN equals NaN and sorts last; -0 equals 0. */
static int cmp_f64(double a, double b)
{
    int na = isnan(a), nb = isnan(b);
    if (na || nb) return na - nb;
    return (a > b) - (a < b);
}

static int cmp_key(const struct keyed *x, const struct keyed *y)
{
    const struct ab_cell *a = x->c, *b = y->c;
    int r;
    if ((r = strcmp(x->base, y->base))) return r;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    if (a->head != b->head) return a->head < b->head ? -1 : 1;
    if ((r = strcmp(str_or_empty(a->method), str_or_empty(b->method)))) return r;
    if ((r = strcmp(str_or_empty(a->phase), str_or_empty(b->phase)))) return r;
    if ((r = strcmp(str_or_empty(a->budget_kind), str_or_empty(b->budget_kind)))) return r;
    if ((r = cmp_f64(a->target_ratio, b->target_ratio))) return r;
    if ((r = cmp_f64(a->target_tokens, b->target_tokens))) return r;
    if ((r = strcmp(str_or_empty(a->knob_name), str_or_empty(b->knob_name)))) return r;
    /* a direct --knob run is named by its knob */
    if (isnan(a->target_ratio) && strcmp(str_or_empty(a->budget_kind), "tokens") &&
        (r = cmp_f64(a->knob, b->knob)))
        return r;
    return 0;
}

/* qsort order: the key, then the row (stable, so repeated keys keep table order) */
static int cmp_keyed(const void *pa, const void *pb)
{
    const struct keyed *x = pa, *y = pb;
    int r = cmp_key(x, y);
    if (r) return r;
    return (x->row > y->row) - (x->row < y->row);
}

/* A sorted key view of r (malloc'd into *out; NULL for an empty table). */
static int keyed_view(const struct ab_results *r, struct keyed **out)
{
    *out = NULL;
    if (r->n_cells == 0) return AB_OK;
    struct keyed *k = malloc(ab_size_mul((size_t)r->n_cells, sizeof *k));
    if (!k) return ab_fail(AB_E_NOMEM, "check: cannot allocate %lld row keys",
                           (long long)r->n_cells);
    for (int64_t i = 0; i < r->n_cells; i++)
        k[i] = (struct keyed){&r->cells[i], ab_check_basename(r->cells[i].workload), i};
    qsort(k, (size_t)r->n_cells, sizeof *k, cmp_keyed);
    *out = k;
    return AB_OK;
}

/* ------------------------------------------------------------------ judging */

static int add_finding(struct ab_check_report *r, const struct ab_check_finding *f)
{
    if (r->n_findings == r->cap_findings) {
        int64_t cap = r->cap_findings ? 2 * r->cap_findings : 64;
        struct ab_check_finding *p =
            realloc(r->findings, ab_size_mul((size_t)cap, sizeof *p));
        if (!p) return ab_fail(AB_E_NOMEM, "check: cannot allocate %lld findings",
                               (long long)cap);
        r->findings = p;
        r->cap_findings = cap;
    }
    r->findings[r->n_findings++] = *f;
    if (f->kind == AB_FIND_MISSING) r->n_missing++;
    else if (f->kind == AB_FIND_ADDED) r->n_added++;
    else if (f->fails) r->n_regressions++;
    else if (f->kind == AB_FIND_BETTER) r->n_improved++;
    return AB_OK;
}

static double column_value(const struct ab_cell *c, const struct ab_check_column *col)
{
    const char *p = (const char *)c + col->offset;
    if (col->is_int) {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Direction of a move from b to n beyond tolerance: +1 up, -1 down, 0 within tolerance (or
 * both NaN). NaN-ness changes are the caller's. Infinities compare by sign: inf to inf is no
 * move, inf to finite is a move of infinite size (rtol * inf must not excuse it). */
static int moved(double b, double n, double rtol, double atol)
{
    if (isnan(b) || isnan(n)) return 0;
    if (isinf(b) || isinf(n)) return b == n ? 0 : (n > b ? 1 : -1);
    double d = n - b;
    if (fabs(d) <= atol + rtol * fabs(b)) return 0;
    return d > 0 ? 1 : -1;
}

/* Compares one matched pair of rows and appends its findings. */
static int judge_pair(const struct ab_cell *b, const struct ab_cell *n, int64_t bi, int64_t ni,
                      const struct ab_check_opts *o, struct ab_check_report *r)
{
    if ((b->feasible != 0) != (n->feasible != 0)) {
        struct ab_check_finding f = {AB_FIND_FEASIBLE, 1, bi, ni, -1, (double)(b->feasible != 0),
                                     (double)(n->feasible != 0)};
        return add_finding(r, &f);
    }
    int n_col;
    ab_check_columns(&n_col);
    for (int c = 0; c < n_col; c++) {
        const struct ab_check_column *col = &columns[c];
        int accuracy = col->sense == AB_SENSE_HIGH_WORSE || col->sense == AB_SENSE_LOW_WORSE;
        if (accuracy && !o->use[c]) continue;
        if (col->sense == AB_SENSE_SETTING && (!o->any_change || isnan(b->target_ratio)))
            continue;
        double vb = column_value(b, col), vn = column_value(n, col);
        struct ab_check_finding f = {-1, 1, bi, ni, c, vb, vn};
        if (!isnan(vb) != !isnan(vn)) {
            f.kind = AB_FIND_NAN;
        } else {
            int dir = moved(vb, vn, o->rtol[c], o->atol[c]);
            if (dir == 0) continue;
            switch (col->sense) {
            case AB_SENSE_HIGH_WORSE: f.kind = dir > 0 ? AB_FIND_WORSE : AB_FIND_BETTER; break;
            case AB_SENSE_LOW_WORSE: f.kind = dir < 0 ? AB_FIND_WORSE : AB_FIND_BETTER; break;
            case AB_SENSE_COST: f.kind = AB_FIND_COST; break;
            default: f.kind = AB_FIND_CHANGED; break;
            }
            if (f.kind == AB_FIND_BETTER) f.fails = o->any_change;
        }
        int rc = add_finding(r, &f);
        if (rc) return rc;
    }
    return AB_OK;
}

int ab_check_compare(const struct ab_results *base, const struct ab_results *now,
                     const struct ab_check_opts *o, struct ab_check_report *out)
{
    memset(out, 0, sizeof *out);
    out->n_base = base->n_cells;
    out->n_new = now->n_cells;
    struct keyed *kb = NULL, *kn = NULL;
    int64_t *partner = NULL; /* (n_base) matching new row or -1 */
    unsigned char *taken = NULL; /* (n_new) 1 when matched */
    int rc;
    if ((rc = keyed_view(base, &kb)) || (rc = keyed_view(now, &kn))) goto done;
    partner = malloc(ab_size_mul((size_t)base->n_cells + 1, sizeof *partner));
    taken = calloc((size_t)now->n_cells + 1, 1);
    if (!partner || !taken) {
        rc = ab_fail(AB_E_NOMEM, "check: cannot allocate the row matching");
        goto done;
    }
    for (int64_t i = 0; i < base->n_cells; i++) partner[i] = -1;

    /* merge the sorted views; equal keys pair one to one in table order */
    for (int64_t i = 0, j = 0; i < base->n_cells && j < now->n_cells;) {
        int c = cmp_key(&kb[i], &kn[j]);
        if (c < 0) i++;
        else if (c > 0) j++;
        else {
            partner[kb[i].row] = kn[j].row;
            taken[kn[j].row] = 1;
            i++, j++;
        }
    }

    for (int64_t i = 0; i < base->n_cells; i++) {
        if (partner[i] < 0) {
            struct ab_check_finding f = {AB_FIND_MISSING, 1, i, -1, -1, NAN, NAN};
            if ((rc = add_finding(out, &f))) goto done;
            continue;
        }
        out->n_matched++;
        rc = judge_pair(&base->cells[i], &now->cells[partner[i]], i, partner[i], o, out);
        if (rc) goto done;
    }
    for (int64_t j = 0; j < now->n_cells; j++) {
        if (taken[j]) continue;
        struct ab_check_finding f = {AB_FIND_ADDED, 0, -1, j, -1, NAN, NAN};
        if ((rc = add_finding(out, &f))) goto done;
    }
    rc = AB_OK;
done:
    free(kb);
    free(kn);
    free(partner);
    free(taken);
    return rc;
}

int ab_check_failed(const struct ab_check_report *r)
{
    return r->n_regressions > 0 || r->n_missing > 0;
}

void ab_check_report_free(struct ab_check_report *r)
{
    free(r->findings);
    memset(r, 0, sizeof *r);
}
