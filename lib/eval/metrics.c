/* metrics.c - accuracy of a method against exact attention (metrics.md, "Accuracy of a method
 * against exact attention") and task accuracy (workloads.md, "Tasks with ground truth").
 * The exact side of a (head, phase) is computed once in double precision and shared by every
 * method and budget evaluated on it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "eval/eval.h"

/* The (at most) k largest positive entries of row a (n), largest first, into top; their count. */
static int64_t row_top(const float *a, int64_t n, int64_t k, int64_t *top)
{
    int64_t n_top = 0; /* repeated selection into a small sorted buffer (k is small) */
    for (int64_t j = 0; j < n; j++) {
        if (!(a[j] > 0)) continue;
        if (n_top == k && a[j] <= a[top[n_top - 1]]) continue;
        int64_t t = n_top < k ? n_top++ : k - 1;
        while (t > 0 && a[top[t - 1]] < a[j]) {
            top[t] = top[t - 1];
            t--;
        }
        top[t] = j;
    }
    return n_top;
}

int ab_exact_compute(const struct ab_problem *p, int64_t topk, struct ab_exact *ex)
{
    const struct ab_head *h = p->h;
    topk = AB_MAX(0, AB_MIN(topk, 64));
    *ex = (struct ab_exact){.n_rows = p->n_rows, .n_k = h->n_k, .d_v = h->d_v, .top_k = topk};
    ex->o = ab_alloc(ab_size_mul((size_t)(p->n_rows * h->d_v), sizeof(double)));
    ex->a = ab_alloc(ab_size_mul((size_t)p->n_rows * (size_t)h->n_k, sizeof(float)));
    ex->top = ab_alloc(ab_size_mul((size_t)(p->n_rows * AB_MAX(topk, 1)), sizeof(int64_t)));
    ex->n_top = ab_alloc(ab_size_mul((size_t)p->n_rows, sizeof(int64_t)));
    if (!ex->o || !ex->a || !ex->top || !ex->n_top) {
        ab_exact_free(ex);
        return ab_fail(AB_E_NOMEM, "cannot allocate the exact attention of %lld rows",
                       (long long)p->n_rows);
    }
    int rc = ab_attn_ref_dist(h, p->rows, p->n_rows, ex->o, NULL, ex->a); /* one pass */
    if (rc) {
        ab_exact_free(ex);
        return rc;
    }
    for (int64_t r = 0; r < p->n_rows; r++)
        ex->n_top[r] = row_top(ex->a + r * ex->n_k, ex->n_k, topk, ex->top + r * AB_MAX(topk, 1));
    return AB_OK;
}

void ab_exact_free(struct ab_exact *ex)
{
    ab_free(ex->o);
    ab_free(ex->a);
    ab_free(ex->top);
    ab_free(ex->n_top);
    ex->o = NULL;
    ex->a = NULL;
    ex->top = ex->n_top = NULL;
}

/* Sum of the exact mass of row r on kept keys (visited in key order through the row's bitset),
 * and how many of the row's k largest entries are kept. */
static void row_recall(const struct ab_exact *ex, const struct ab_keep *keep, int64_t r, int64_t k,
                       double *mass, double *topk_frac)
{
    const float *a = ex->a + r * ex->n_k;
    const uint64_t *bits = keep->bits + r * keep->words;
    double s = 0;
    for (int64_t w = 0; w < keep->words; w++)
        for (uint64_t x = bits[w]; x; x &= x - 1) {
            int64_t j = w * 64 + __builtin_ctzll(x);
            if (j < ex->n_k && a[j] > 0) s += a[j];
        }
    *mass = s;
    int64_t buf[64], *top = buf, n_top;
    k = AB_MIN(k, 64);
    if (ex->top && ex->top_k == k)
        top = ex->top + r * AB_MAX(k, 1), n_top = ex->n_top[r];
    else
        n_top = row_top(a, ex->n_k, k, buf);
    int64_t hit = 0;
    for (int64_t t = 0; t < n_top; t++) hit += ab_keep_has(keep, r, top[t]);
    *topk_frac = n_top ? (double)hit / (double)n_top : NAN;
}

double ab_rel_l2(double err2, double ref2)
{
    if (isnan(err2) || isnan(ref2)) return NAN;
    return ref2 > 0 ? sqrt(err2 / ref2) : err2 > 0 ? INFINITY : 0;
}

void ab_metrics_compute(const struct ab_exact *ex, const float *o, const struct ab_keep *keep,
                        int64_t topk, struct ab_metrics *out)
{
    int64_t dv = ex->d_v;
    double num = 0, den = 0, cos_sum = 0, cos_min = INFINITY, max_abs = 0;
    double rec = 0, topk_sum = 0, kl = 0;
    for (int64_t r = 0; r < ex->n_rows; r++) {
        const double *x = ex->o + r * dv;
        const float *y = o + r * dv;
        double dot = 0, nx = 0, ny = 0;
        for (int64_t c = 0; c < dv; c++) {
            double e = (double)y[c] - x[c];
            num += e * e;
            den += x[c] * x[c];
            max_abs = fmax(max_abs, fabs(e));
            dot += x[c] * y[c], nx += x[c] * x[c], ny += (double)y[c] * y[c];
        }
        /* cos of two zero rows is 1 (both exact), of one zero row 0 */
        double cs = nx > 0 && ny > 0 ? dot / sqrt(nx * ny) : (nx == 0 && ny == 0 ? 1 : 0);
        cos_sum += cs;
        cos_min = fmin(cos_min, cs);
        if (isnan(y[0])) max_abs = NAN;
        if (keep) {
            double mass, tk;
            row_recall(ex, keep, r, topk, &mass, &tk);
            rec += mass;
            topk_sum += tk;
            kl += mass > 0 ? -log(fmin(mass, 1.0)) : INFINITY;
        }
    }
    double n = (double)ex->n_rows;
    out->rel_l2 = ab_rel_l2(num, den);
    out->cos_mean = cos_sum / n;
    out->cos_min = cos_min;
    out->max_abs = max_abs;
    out->recall = keep ? rec / n : NAN;
    out->topk_recall = keep ? topk_sum / n : NAN;
    out->kl = keep ? kl / n : NAN;
}

double ab_metrics_kl(const struct ab_exact *ex, const float *dist)
{
    double kl = 0;
    for (int64_t r = 0; r < ex->n_rows; r++) {
        const float *a = ex->a + r * ex->n_k, *b = dist + r * ex->n_k;
        for (int64_t j = 0; j < ex->n_k; j++) {
            if (!(a[j] > 0)) continue;
            kl += b[j] > 0 ? a[j] * log((double)a[j] / b[j]) : INFINITY;
        }
    }
    return kl / (double)ex->n_rows;
}

void ab_task_accuracy(const struct ab_workload *w, int64_t layer, int64_t head,
                      const int64_t *rows, int64_t n_rows, const float *o, struct ab_task_acc *out)
{
    memset(out, 0, sizeof *out);
    const struct ab_tasks *t = &w->tasks;
    int64_t kv = ab_workload_kv_of(w, head), dv = w->d_v, solved = 0, solved_kind[3] = {0};
    if (t->n == 0 || !t->planted[layer * w->n_kv_head + kv]) goto done;
    const float *v = ab_workload_v(w, layer, kv); /* (n_seq, d_v) */
    for (int64_t k = 0; k < t->n; k++) {
        /* the evaluated row that holds this task's query, if any (rows are ascending) */
        int64_t a = 0, b = n_rows;
        while (a < b) {
            int64_t mid = a + (b - a) / 2;
            if (rows[mid] < t->row[k]) a = mid + 1;
            else b = mid;
        }
        if (a == n_rows || rows[a] != t->row[k]) continue;
        const float *y = o + a * dv;
        int ok;
        if (t->kind[k] == AB_TASK_AGGREGATE) {
            /* solved when cos(o, mean of the set's values) reaches the threshold */
            double dot = 0, ny = 0, nt = 0;
            int64_t n_set = t->key_off[k + 1] - t->key_off[k];
            for (int64_t c = 0; c < dv; c++) {
                double target = 0;
                for (int64_t s = t->key_off[k]; s < t->key_off[k + 1]; s++)
                    target += v[(int64_t)t->key_pos[s] * dv + c];
                target /= (double)n_set;
                dot += target * y[c], ny += (double)y[c] * y[c], nt += target * target;
            }
            ok = ny > 0 && nt > 0 && dot / sqrt(ny * nt) >= t->agg_threshold;
        } else {
            /* solved when the planted codeword has the largest inner product with o */
            int64_t best = -1;
            double best_dot = -INFINITY;
            for (int64_t c = 0; c < t->n_code; c++) {
                double dot = 0;
                for (int64_t e = 0; e < dv; e++) dot += (double)t->codebook[c * dv + e] * y[e];
                if (dot > best_dot) best_dot = dot, best = c;
            }
            ok = best == t->answer[k];
        }
        out->n++;
        out->n_kind[t->kind[k]]++;
        solved += ok;
        solved_kind[t->kind[k]] += ok;
    }
done:
    out->all = out->n ? (double)solved / (double)out->n : NAN;
    for (int k = 0; k < 3; k++)
        out->by_kind[k] = out->n_kind[k] ? (double)solved_kind[k] / (double)out->n_kind[k] : NAN;
}
