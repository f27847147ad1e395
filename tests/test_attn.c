/* test_attn.c - dense attention: the double reference against the textbook formula, the fast
 * float path against the reference, RoPE's defining properties, masks and positions. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "attn/vec.h"
#include "core/ab.h"
#include "core/rng.h"
#include "core/workload.h"

/* A seeded random head with its own buffers. Logits have standard deviation `spread`. */
struct thead {
    struct ab_head h;
    float *q, *k, *v;
    int32_t *qp, *kp;
};

static void thead_make(struct thead *t, int64_t n_q, int64_t n_k, int64_t d, int64_t dv, int mask,
                       double spread, uint64_t seed)
{
    t->q = malloc(sizeof(float) * n_q * d), t->k = malloc(sizeof(float) * n_k * d);
    t->v = malloc(sizeof(float) * n_k * dv);
    t->qp = malloc(sizeof(int32_t) * n_q), t->kp = malloc(sizeof(int32_t) * n_k);
    struct ab_rng r;
    ab_rng_init(&r, seed, 1);
    double a = sqrt(spread); /* q.k/sqrt(d) has variance a^4 */
    for (int64_t i = 0; i < n_q * d; i++) t->q[i] = (float)(a * ab_rng_normal(&r));
    for (int64_t i = 0; i < n_k * d; i++) t->k[i] = (float)(a * ab_rng_normal(&r));
    for (int64_t i = 0; i < n_k * dv; i++) t->v[i] = (float)ab_rng_normal(&r);
    for (int64_t j = 0; j < n_k; j++) t->kp[j] = (int32_t)j;
    /* queries are the last n_q positions (prefill when n_q == n_k, decode rows otherwise) */
    for (int64_t i = 0; i < n_q; i++) t->qp[i] = (int32_t)(n_k - n_q + i);
    t->h = (struct ab_head){.n_q = n_q, .n_k = n_k, .d = d, .d_v = dv, .q = t->q, .k = t->k,
                            .v = t->v, .q_pos = t->qp, .k_pos = t->kp, .mask = mask,
                            .scale = 1.0 / sqrt((double)d)};
}

static void thead_free(struct thead *t)
{
    free(t->q), free(t->k), free(t->v), free(t->qp), free(t->kp);
}

/* The textbook formula: the whole score matrix in long double, O = softmax(S + mask) V. */
static void naive(const struct ab_head *h, long double *o, long double *lse)
{
    int64_t n = h->n_k, d = h->d;
    long double *s = malloc(sizeof(long double) * n);
    for (int64_t i = 0; i < h->n_q; i++) {
        long double m = -INFINITY, z = 0;
        for (int64_t j = 0; j < n; j++) {
            int ok = h->mask == AB_MASK_FULL || h->k_pos[j] <= h->q_pos[i];
            long double x = 0;
            for (int64_t c = 0; c < d; c++) x += (long double)h->q[i * d + c] * h->k[j * d + c];
            s[j] = ok ? x * h->scale : -INFINITY;
            if (s[j] > m) m = s[j];
        }
        for (int64_t j = 0; j < n; j++) z += s[j] = expl(s[j] - m);
        for (int64_t c = 0; c < h->d_v; c++) {
            long double acc = 0;
            for (int64_t j = 0; j < n; j++) acc += s[j] / z * h->v[j * h->d_v + c];
            o[i * h->d_v + c] = acc;
        }
        lse[i] = m + logl(z);
    }
    free(s);
}

static void check_ref_vs_naive(int64_t n_q, int64_t n_k, int64_t d, int64_t dv, int mask)
{
    struct thead t;
    thead_make(&t, n_q, n_k, d, dv, mask, 4.0, 1000 + n_q + d + mask);
    long double *on = malloc(sizeof(long double) * n_q * dv), *ln = malloc(sizeof(long double) * n_q);
    double *o = malloc(sizeof(double) * n_q * dv), *l = malloc(sizeof(double) * n_q);
    naive(&t.h, on, ln);
    cr_assert_eq(ab_attn_ref(&t.h, NULL, 0, o, l), AB_OK);
    for (int64_t i = 0; i < n_q * dv; i++)
        cr_assert(fabsl(o[i] - on[i]) <= 1e-12L * (1 + fabsl(on[i])), "o[%ld] %g vs %Lg", (long)i, o[i], on[i]);
    for (int64_t i = 0; i < n_q; i++) cr_assert(fabsl(l[i] - ln[i]) <= 1e-12L * (1 + fabsl(ln[i])));
    free(on), free(ln), free(o), free(l);
    thead_free(&t);
}

Test(reference, matches_textbook_full_and_causal)
{
    check_ref_vs_naive(37, 37, 16, 16, AB_MASK_CAUSAL);
    check_ref_vs_naive(37, 37, 16, 16, AB_MASK_FULL);
    check_ref_vs_naive(64, 64, 8, 24, AB_MASK_CAUSAL); /* d_v != d */
}

Test(reference, decode_rows_and_row_subsets)
{
    check_ref_vs_naive(5, 300, 32, 32, AB_MASK_CAUSAL); /* 5 decode queries at the end */
    struct thead t;
    thead_make(&t, 50, 50, 16, 16, AB_MASK_CAUSAL, 2.0, 3);
    double *all = malloc(sizeof(double) * 50 * 16), sub[3 * 16], lse[3];
    int64_t rows[3] = {0, 17, 49};
    cr_assert_eq(ab_attn_ref(&t.h, NULL, 0, all, NULL), AB_OK);
    cr_assert_eq(ab_attn_ref(&t.h, rows, 3, sub, lse), AB_OK);
    /* a row's value does not depend on which rows are computed with it, up to double rounding
       (its scores come from a dgemm over a block of rows) */
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 16; c++)
            cr_assert(fabs(sub[r * 16 + c] - all[rows[r] * 16 + c]) <=
                          1e-14 * (1 + fabs(all[rows[r] * 16 + c])),
                      "row %lld: %.17g vs %.17g", (long long)rows[r], sub[r * 16 + c],
                      all[rows[r] * 16 + c]);
    /* row 0 sees only key 0: O = v_0 exactly, lse = its logit */
    for (int c = 0; c < 16; c++) cr_expect(fabs(sub[c] - t.v[c]) < 1e-15);
    free(all);
    thead_free(&t);
}

Test(reference, grouped_query_mapping)
{
    /* 4 query heads over 2 kv heads: head h reads kv head h / 2 */
    struct ab_workload w;
    cr_assert_eq(ab_workload_alloc(&w, 1, 4, 2, 20, 8, 8), AB_OK);
    struct ab_rng r;
    ab_rng_init(&r, 5, 5);
    for (int64_t i = 0; i < 4 * 20 * 8; i++) w.q[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < 2 * 20 * 8; i++) w.k[i] = (float)ab_rng_normal(&r), w.v[i] = (float)ab_rng_normal(&r);
    for (int64_t hd = 0; hd < 4; hd++) {
        struct ab_head h;
        ab_workload_head(&w, 0, hd, &h);
        cr_expect_eq(h.k, w.k + (hd / 2) * 20 * 8);
        cr_expect_eq(h.v, w.v + (hd / 2) * 20 * 8);
        cr_expect_eq(h.q, w.q + hd * 20 * 8);
        long double on[20 * 8], ln[20];
        double o[20 * 8];
        naive(&h, on, ln);
        cr_assert_eq(ab_attn_ref(&h, NULL, 0, o, NULL), AB_OK);
        for (int i = 0; i < 20 * 8; i++) cr_assert(fabsl(o[i] - on[i]) < 1e-12L);
    }
    ab_workload_free(&w);
}

Test(reference, rope_on_the_fly_equals_prerotated_inputs)
{
    struct thead t;
    thead_make(&t, 40, 40, 16, 16, AB_MASK_CAUSAL, 2.0, 9);
    double o1[40 * 16], o2[40 * 16];
    t.h.rope_theta = 10000;
    cr_assert_eq(ab_attn_ref(&t.h, NULL, 0, o1, NULL), AB_OK);
    ab_rope_apply(t.q, 40, 16, t.qp, 10000);
    ab_rope_apply(t.k, 40, 16, t.kp, 10000);
    t.h.rope_theta = 0;
    cr_assert_eq(ab_attn_ref(&t.h, NULL, 0, o2, NULL), AB_OK);
    for (int i = 0; i < 40 * 16; i++) cr_assert(fabs(o1[i] - o2[i]) < 1e-5, "%d: %g %g", i, o1[i], o2[i]);
    thead_free(&t);
}

Test(rope, preserves_norms_and_depends_on_distance_only)
{
    enum { D = 64 };
    double x[D], y[D];
    struct ab_rng r;
    ab_rng_init(&r, 77, 0);
    double qc[D], kc[D];
    for (int c = 0; c < D; c++) qc[c] = ab_rng_normal(&r), kc[c] = ab_rng_normal(&r);
    for (int pos = 0; pos < 5000; pos += 997) {
        double n0 = 0, n1 = 0;
        memcpy(x, qc, sizeof x);
        ab_rope_apply_f64(x, D, pos, 10000);
        for (int c = 0; c < D; c++) n0 += qc[c] * qc[c], n1 += x[c] * x[c];
        cr_expect(fabs(n0 - n1) < 1e-10 * n0);
    }
    /* q.k with constant content depends on i - j only: compare (i, j) with (i + s, j + s) */
    for (int delta = 0; delta < 300; delta += 37) {
        double ref = NAN;
        for (int shift = 0; shift < 4000; shift += 613) {
            memcpy(x, qc, sizeof x), memcpy(y, kc, sizeof y);
            ab_rope_apply_f64(x, D, shift + delta, 10000);
            ab_rope_apply_f64(y, D, shift, 10000);
            double dot = 0;
            for (int c = 0; c < D; c++) dot += x[c] * y[c];
            if (isnan(ref)) ref = dot;
            cr_expect(fabs(dot - ref) < 1e-9 * (1 + fabs(ref)), "delta %d shift %d: %g vs %g", delta, shift, dot, ref);
        }
    }
    /* the float version agrees with the double one */
    float xf[D];
    int32_t p = 1234;
    for (int c = 0; c < D; c++) xf[c] = (float)qc[c], x[c] = (float)qc[c];
    ab_rope_apply(xf, 1, D, &p, 10000);
    ab_rope_apply_f64(x, D, p, 10000);
    for (int c = 0; c < D; c++) cr_expect(fabs(xf[c] - x[c]) < 1e-5);
}

/* rel_l2 of the fast path against the reference on rows (all rows when n_rows == 0), and the
 * largest lse difference. */
static double fast_vs_ref(const struct ab_head *h, int64_t n_rows, double *lse_err)
{
    float *o = malloc(sizeof(float) * h->n_q * h->d_v), *l = malloc(sizeof(float) * h->n_q);
    int64_t *rows = NULL, m = h->n_q;
    if (n_rows > 0 && n_rows < h->n_q) { /* a spread of rows plus the first and last */
        m = n_rows;
        rows = malloc(sizeof(int64_t) * m);
        for (int64_t r = 0; r < m; r++) rows[r] = r * (h->n_q - 1) / (m - 1);
    }
    double *od = malloc(sizeof(double) * m * h->d_v), *ld = malloc(sizeof(double) * m);
    cr_assert_eq(ab_attn_fast(h, o, l), AB_OK);
    cr_assert_eq(ab_attn_ref(h, rows, m, od, ld), AB_OK);
    double num = 0, den = 0;
    *lse_err = 0;
    for (int64_t r = 0; r < m; r++) {
        int64_t i = rows ? rows[r] : r;
        for (int64_t c = 0; c < h->d_v; c++) {
            double e = o[i * h->d_v + c] - od[r * h->d_v + c];
            num += e * e, den += od[r * h->d_v + c] * od[r * h->d_v + c];
        }
        double le = fabs(l[i] - ld[r]);
        if (le > *lse_err) *lse_err = le;
    }
    free(o), free(l), free(rows), free(od), free(ld);
    return sqrt(num / den);
}

Test(fast, matches_reference_up_to_4096, .timeout = 300)
{
    int64_t ns[] = {1, 100, 777, 4096}, ds[] = {32, 64, 128};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 3; b++)
            for (int mask = 0; mask < 2; mask++) {
                struct thead t;
                thead_make(&t, ns[a], ns[a], ds[b], ds[b], mask, 6.0, 31 * a + b);
                double lse_err, e = fast_vs_ref(&t.h, ns[a] > 1000 ? 257 : 0, &lse_err);
                cr_expect(e <= 1e-5, "n %ld d %ld mask %d: rel_l2 %g", (long)ns[a], (long)ds[b], mask, e);
                cr_expect(lse_err <= 1e-4, "n %ld d %ld: lse error %g", (long)ns[a], (long)ds[b], lse_err);
                thead_free(&t);
            }
}

Test(fast, decode_rows_gqa_shapes_and_peaked_rows)
{
    /* 64 decode queries over a 3000-key cache, d_v != d, very peaked logits */
    struct thead t;
    thead_make(&t, 64, 3000, 64, 48, AB_MASK_CAUSAL, 40.0, 5);
    double lse_err, e = fast_vs_ref(&t.h, 0, &lse_err);
    cr_expect(e <= 1e-5, "rel_l2 %g", e);
    thead_free(&t);
    /* rope applied inside both paths */
    thead_make(&t, 600, 600, 32, 32, AB_MASK_CAUSAL, 3.0, 6);
    t.h.rope_theta = 500000;
    e = fast_vs_ref(&t.h, 0, &lse_err);
    cr_expect(e <= 1e-5, "rope: rel_l2 %g", e);
    thead_free(&t);
}

/* The decode path (1..4 query rows stream the cache through two matrix-vector products) against
 * the reference: one and four decode queries over long caches, d_v != d, peaked and flat rows. */
Test(fast, decode_path_matches_reference)
{
    int64_t nq[] = {1, 2, 4}, nk[] = {1, 777, 9000};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            if (nq[a] > nk[b]) continue;
            struct thead t;
            thead_make(&t, nq[a], nk[b], 64, 48, AB_MASK_CAUSAL, b == 2 ? 40.0 : 2.0, 70 + 3 * a + b);
            double lse_err, e = fast_vs_ref(&t.h, 0, &lse_err);
            cr_expect(e <= 1e-5, "n_q %lld n_k %lld: rel_l2 %g", (long long)nq[a], (long long)nk[b], e);
            cr_expect(lse_err <= 1e-4, "lse error %g", lse_err);
            thead_free(&t);
        }
}

Test(fast, rows_with_no_visible_key)
{
    /* queries at positions before every key see nothing: O = 0 and lse = -inf in both paths */
    struct thead t;
    thead_make(&t, 3, 10, 8, 8, AB_MASK_CAUSAL, 1.0, 8);
    for (int j = 0; j < 10; j++) t.kp[j] = 5 + j;
    t.qp[0] = 0, t.qp[1] = 4, t.qp[2] = 5;
    float o[3 * 8], l[3];
    double od[3 * 8], ld[3];
    cr_assert_eq(ab_attn_fast(&t.h, o, l), AB_OK);
    cr_assert_eq(ab_attn_ref(&t.h, NULL, 0, od, ld), AB_OK);
    for (int c = 0; c < 16; c++) cr_expect(o[c] == 0 && od[c] == 0);
    cr_expect(isinf(l[0]) && l[0] < 0 && isinf(ld[1]) && ld[1] < 0);
    for (int c = 0; c < 8; c++) cr_expect(fabs(o[16 + c] - t.v[c]) < 1e-6); /* row 2 sees key 0 */
    cr_expect_eq(ab_head_visible(&t.h, 2), 1);
    thead_free(&t);
}

Test(fast, masked_keys_have_no_influence)
{
    /* huge values on keys a row must not see change nothing in that row */
    struct thead t;
    thead_make(&t, 700, 700, 32, 32, AB_MASK_CAUSAL, 4.0, 12);
    float *o1 = malloc(sizeof(float) * 700 * 32), *o2 = malloc(sizeof(float) * 700 * 32);
    cr_assert_eq(ab_attn_fast(&t.h, o1, NULL), AB_OK);
    for (int64_t j = 400; j < 700; j++)
        for (int c = 0; c < 32; c++) t.v[j * 32 + c] = 1e30f, t.k[j * 32 + c] = 1e3f;
    cr_assert_eq(ab_attn_fast(&t.h, o2, NULL), AB_OK);
    cr_expect_eq(memcmp(o1, o2, sizeof(float) * 400 * 32), 0);
    free(o1), free(o2);
    thead_free(&t);
}

/* The loops outside BLAS (lib/attn/vec.c): every version this CPU runs against double precision
 * on rows of every length mod 32, with -inf (masked) cells, arguments below the -87 clamp and a
 * row maximum; the vector version against the portable one within float rounding. */
Test(vec, versions_agree_with_double_precision)
{
    const char *names[] = {"portable", "avx2+fma"};
    struct ab_rng rng;
    ab_rng_init(&rng, 44, 0);
    int64_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 513};
    float s[513], p[513], p2[513], y[513], y0[513], x[513];
    int ran = 0;
    for (int v = 0; v < 2; v++) {
        const struct ab_vec *V = ab_vec_named(names[v]);
        if (!V) continue; /* this CPU has no AVX2 */
        ran++;
        cr_expect_str_eq(V->isa, names[v]);
        for (int a = 0; a < 12; a++) {
            int64_t n = lens[a];
            double mx = -INFINITY, sum = 0, dot = 0;
            for (int64_t j = 0; j < n; j++) {
                int kind = (int)(ab_rng_u64(&rng) % 10);
                s[j] = kind == 0   ? -INFINITY
                       : kind == 1 ? -100.0f - (float)j
                                   : (float)(20 * ab_rng_normal(&rng));
                x[j] = (float)ab_rng_normal(&rng), y0[j] = y[j] = (float)ab_rng_normal(&rng);
                mx = s[j] > mx ? s[j] : mx;
            }
            cr_expect_eq(V->max(s, n, -INFINITY), (float)mx, "%s n %lld: max", V->isa,
                         (long long)n);
            cr_expect_eq(V->max(s, n, 1e6f), 1e6f);
            if (n == 0 || mx == -INFINITY) continue;
            float m = (float)mx;
            for (int64_t j = 0; j < n; j++) sum += s[j] == -INFINITY ? 0 : exp((double)s[j] - m);
            float got = V->exp_sum(s, p, n, m);
            cr_expect(fabs(got - sum) <= 1e-6 * sum, "%s n %lld: sum %g vs %g", V->isa,
                      (long long)n, got, sum);
            for (int64_t j = 0; j < n; j++) {
                double e = s[j] == -INFINITY ? 0 : exp((double)s[j] - m);
                /* a few ulp, plus the rounding of the float argument s - m (half an ulp of
                 * |s - m| is 6e-8 |s - m| relative); below e^-87 the clamp returns e^-87 */
                double x_arg = s[j] == -INFINITY ? 0 : fabs((double)s[j] - m);
                cr_expect(fabs(p[j] - e) <= (4e-7 + 6e-8 * x_arg) * e + 2e-38,
                          "%s: exp(%g) = %g, not %g", V->isa, (double)s[j] - m, p[j], e);
                if (s[j] == -INFINITY) cr_expect_eq(p[j], 0.0f, "a masked cell weighs exactly 0");
            }
            memcpy(p2, s, sizeof(float) * n);
            float moved = V->exp_move(p2, y, n, m);
            cr_expect_eq(moved, got, "exp_move sums as exp_sum does");
            for (int64_t j = 0; j < n; j++) cr_expect(y[j] == p[j] && p2[j] == 0.0f);
            for (int64_t j = 0; j < n; j++) dot += (double)x[j] * y0[j];
            float dt = V->dot(x, y0, n);
            cr_expect(fabs(dt - dot) <= 1e-5 * (1 + fabs(dot)), "%s: dot %g vs %g", V->isa, dt,
                      dot);
            memcpy(y, y0, sizeof(float) * n);
            V->axpby(y, 0.5f, -2.0f, x, n);
            for (int64_t j = 0; j < n; j++)
                cr_expect(fabs(y[j] - (0.5 * y0[j] - 2.0 * x[j])) <= 1e-6 * (1 + fabs(y[j])));
            V->scale(y, n, 4.0f);
            for (int64_t j = 0; j < n; j++)
                cr_expect(fabs(y[j] - 4 * (0.5 * y0[j] - 2.0 * x[j])) <= 4e-6 * (1 + fabs(y[j])));
        }
    }
    cr_expect(ran >= 1 && ab_vec() != NULL);
    cr_expect_null(ab_vec_named("avx1024"));
}

Test(mask, allowed_cells_and_validation)
{
    struct thead t;
    thead_make(&t, 100, 100, 8, 8, AB_MASK_CAUSAL, 1.0, 1);
    cr_expect_eq(ab_head_allowed_cells(&t.h), 100 * 101 / 2);
    cr_expect_eq(ab_attn_dense_flops(&t.h), 32.0 * 5050);
    t.h.mask = AB_MASK_FULL;
    cr_expect_eq(ab_head_allowed_cells(&t.h), 10000);
    cr_expect_eq(ab_head_validate(&t.h), AB_OK);
    t.q[5] = NAN;
    cr_expect_eq(ab_head_validate(&t.h), AB_E_DATA);
    t.q[5] = 0;
    t.kp[3] = 1;
    cr_expect_eq(ab_head_validate(&t.h), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "non-decreasing") != NULL);
    thead_free(&t);
}
