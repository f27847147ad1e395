/* components.c - the eight components of the synthetic generator (workloads.md, "Synthetic
 * generator"): how a head's RoPE pairs are shared among its components, and how each component
 * writes its part of Q, K and V.
 *
 * Every component owns disjoint dimension pairs, so the logit scale * q_i.k_j is a sum of
 * per-component terms and the attention map is the (renormalised) product of their kernels.
 * A component of strength S puts amplitude a = sqrt(S / scale) on unit directions of both sides,
 * so aligned directions contribute exactly S nats. Directions and positions come from seeded
 * streams per (layer, kv head, component): the output does not depend on the thread count.
 *
 * Mechanisms, with Delta = i - j the distance from query i back to key j:
 * - local: q_i = k_j = one constant unit vector per pair in the pairs of frequency w_p between
 *   1/256 and 0.35; after RoPE the logit is S * mean_p cos(Delta w_p), 1 on the diagonal and
 *   dephasing with distance: a recency band whose sharpness grows with S;
 * - sink: every q carries a direction that only k_0 carries; v_0 is shrunk (value drain);
 * - secondary-sink: the same at a few positions in [n/8, n/2) with their own direction;
 * - vertical: every q carries a direction that ~n/128 heavy-hitter keys carry (bonus jittered
 *   by 0.5 nats per key), so the mean query is aligned with them;
 * - slash: position t carries content code x_{t mod p} (S/2), so a query matches the same
 *   content every p tokens back, itself included; the rest (S/2) is a look-back: on up to 4
 *   RoPE pairs with the most negative cos(p w), the content is a phase per pair, and the key's
 *   copy is pre-rotated by p w, so matching content adds S/2 * mean cos((Delta - p) w): +S/2
 *   one period back, negative at Delta = 0 and 2p. The copy one period back gets S, the token
 *   itself little, and 3p, 4p, ... weaker diagonals as the pairs dephase;
 * - topic: segments of n/32 .. n/8 tokens each carry one of T orthonormal topic vectors (T <= 8),
 *   queries and keys alike: same-topic keys anywhere in the past get S;
 * - needle: n/32 queries (from n/8 on) each share a random direction with one partner key at
 *   least a quarter of their context back; the task needles are planted by tasks.c;
 * - diffuse: i.i.d. Gaussian q and k with logit standard deviation S. */
#include <math.h>
#include <string.h>

#include "core/ab.h"
#include "gen/gen_internal.h"

#define LOCAL_FREQ_HI   0.35        /* local uses pairs with frequency in [LO, HI] */
#define LOCAL_FREQ_LO   (1.0 / 256) /* slower pairs are nearly constant over a window */
#define SINK_DRAIN      0.1         /* v_0 (and secondary sinks' values) scaled by this */
#define SLASH_CONTENT   0.5         /* share of the slash strength on the content match */
#define VERTICAL_JITTER 0.5         /* nats of per-key variation of the heavy hitters' bonus */

double ab_gen_amp(double strength, double scale)
{
    return sqrt(strength / scale);
}

double ab_gen_freq(int64_t p, int64_t d, double theta)
{
    return pow(theta, -(double)(2 * p) / (double)d);
}

void ab_gen_rand_unit(struct ab_rng *r, double *u, int64_t m)
{
    double nn = 0;
    do {
        nn = 0;
        for (int64_t c = 0; c < m; c++) {
            u[c] = ab_rng_normal(r);
            nn += u[c] * u[c];
        }
    } while (nn == 0);
    double inv = 1 / sqrt(nn);
    for (int64_t c = 0; c < m; c++) u[c] *= inv;
}

int64_t ab_gen_pairs_of(const struct ab_gen_head *hd, int64_t n_pair, int comp, int64_t *pairs)
{
    int64_t m = 0;
    for (int64_t p = 0; p < n_pair; p++)
        if (hd->pair_comp[p] == comp) pairs[m++] = p;
    return m;
}

/* ---- pair allocation ---------------------------------------------------------------------- */

/* Pairs of the local frequency band. */
static int64_t local_band(int64_t n_pair, int64_t d, double theta)
{
    int64_t m = 0;
    for (int64_t p = 0; p < n_pair; p++) {
        double w = ab_gen_freq(p, d, theta);
        m += w <= LOCAL_FREQ_HI && w >= LOCAL_FREQ_LO;
    }
    return m;
}

/* Look-back pairs of a slash component holding m pairs in all. */
static int64_t slash_lookback(int64_t m)
{
    return AB_MAX(1, AB_MIN(4, m / 3));
}

int ab_gen_alloc_pairs(const struct ab_gen_opts *o, struct ab_gen_head *hd, int64_t slash_period,
                       const char *profile_name)
{
    int64_t n_pair = o->d / 2;
    /* minimum, weight of the share of the leftover pairs, maximum */
    int64_t mn[AB_COMP_COUNT] = {
        [AB_COMP_LOCAL] = 4,
        [AB_COMP_SINK] = 1,
        [AB_COMP_SECONDARY_SINK] = 1,
        [AB_COMP_VERTICAL] = 1,
        [AB_COMP_SLASH] = 4,
        [AB_COMP_TOPIC] = 2,
        [AB_COMP_NEEDLE] = hd->planted ? AB_MAX(4, n_pair / 4) : 4,
        [AB_COMP_DIFFUSE] = 2,
    };
    const double wt[AB_COMP_COUNT] = {
        [AB_COMP_LOCAL] = 4, [AB_COMP_VERTICAL] = 1, [AB_COMP_SLASH] = 4,
        [AB_COMP_TOPIC] = 2, [AB_COMP_NEEDLE] = 4,   [AB_COMP_DIFFUSE] = 2,
    };
    int64_t mx[AB_COMP_COUNT] = {
        [AB_COMP_LOCAL] = AB_MAX(4, local_band(n_pair, o->d, o->rope_theta)),
        [AB_COMP_SINK] = 1,
        [AB_COMP_SECONDARY_SINK] = 1,
        [AB_COMP_VERTICAL] = 2,
        [AB_COMP_SLASH] = n_pair,
        [AB_COMP_TOPIC] = 4,
        [AB_COMP_NEEDLE] = n_pair,
        [AB_COMP_DIFFUSE] = n_pair,
    };
    int active[AB_COMP_COUNT];
    int64_t cnt[AB_COMP_COUNT] = {0}, need = 0;
    for (int c = 0; c < AB_COMP_COUNT; c++) {
        active[c] = hd->strength[c] > 0 || (c == AB_COMP_NEEDLE && hd->planted);
        if (active[c]) need += cnt[c] = mn[c];
    }
    if (need > n_pair)
        return ab_fail(AB_E_USAGE, "d %lld is too small for profile '%s'%s (needs d >= %lld)",
                       (long long)o->d, profile_name, hd->planted ? " with tasks" : "",
                       (long long)(2 * need));
    /* leftover pairs one at a time to the component with the largest weight / (extra + 1)
     * (D'Hondt), within the maxima */
    for (int64_t left = n_pair - need; left > 0; left--) {
        int best = -1;
        double best_q = 0;
        for (int c = 0; c < AB_COMP_COUNT; c++) {
            if (!active[c] || wt[c] <= 0 || cnt[c] >= mx[c]) continue;
            double q = wt[c] / (double)(cnt[c] - mn[c] + 1);
            if (q > best_q) best_q = q, best = c;
        }
        if (best < 0) break; /* everyone is full: the rest stays unused */
        cnt[best]++;
    }
    for (int64_t p = 0; p < n_pair; p++) hd->pair_comp[p] = -1;
    /* positional components first, at the frequencies their mechanism needs */
    if (active[AB_COMP_SLASH]) {
        /* the look-back pairs that turn most against the token itself: smallest cos(p w) */
        for (int64_t m = slash_lookback(cnt[AB_COMP_SLASH]); m > 0; m--) {
            int64_t best = -1;
            double best_cos = INFINITY;
            for (int64_t p = 0; p < n_pair; p++) {
                double cs = cos((double)slash_period * ab_gen_freq(p, o->d, o->rope_theta));
                if (hd->pair_comp[p] < 0 && cs < best_cos) best_cos = cs, best = p;
            }
            hd->pair_comp[best] = AB_GEN_SLASH_LOOKBACK;
            cnt[AB_COMP_SLASH]--;
        }
    }
    if (active[AB_COMP_LOCAL]) {
        int64_t start = 0;
        while (start < n_pair - 1 && ab_gen_freq(start, o->d, o->rope_theta) > LOCAL_FREQ_HI)
            start++;
        int64_t m = cnt[AB_COMP_LOCAL];
        for (int64_t p = start; p < n_pair && m > 0; p++)
            if (hd->pair_comp[p] < 0) hd->pair_comp[p] = AB_COMP_LOCAL, m--;
        for (int64_t p = start - 1; p >= 0 && m > 0; p--)
            if (hd->pair_comp[p] < 0) hd->pair_comp[p] = AB_COMP_LOCAL, m--;
    }
    /* content components from the slowest free pair down */
    static const int order[] = {AB_COMP_SINK,   AB_COMP_SECONDARY_SINK, AB_COMP_VERTICAL,
                                AB_COMP_TOPIC,  AB_COMP_NEEDLE,         AB_COMP_SLASH,
                                AB_COMP_DIFFUSE};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        int c = order[k];
        if (!active[c]) continue;
        int64_t m = cnt[c];
        for (int64_t p = n_pair - 1; p >= 0 && m > 0; p--)
            if (hd->pair_comp[p] < 0) hd->pair_comp[p] = (int8_t)c, m--;
    }
    return AB_OK;
}

/* ---- writers ------------------------------------------------------------------------------- */

/* Adds amp * u (u over the 2m dims of pairs[0..m)) to row x (d). */
static void add_dir(double *x, const int64_t *pairs, int64_t m, const double *u, double amp)
{
    for (int64_t k = 0; k < m; k++) {
        x[2 * pairs[k]] += amp * u[2 * k];
        x[2 * pairs[k] + 1] += amp * u[2 * k + 1];
    }
}

static void comp_rng(const struct ab_gen_ctx *c, int comp, struct ab_rng *r)
{
    ab_rng_init(r, c->o->seed,
                ab_stream(AB_GEN_TAG_COMP, (uint64_t)c->layer, (uint64_t)c->kv, (uint64_t)comp));
}

/* sink and secondary sink: one direction carried by every query and by the sink keys */
static void write_sink(struct ab_gen_ctx *c, int comp, const int32_t *pos, int64_t n_pos)
{
    int64_t m = ab_gen_pairs_of(c->hd, c->n_pair, comp, c->pairs);
    double u[2 * m], amp = ab_gen_amp(c->hd->strength[comp], c->scale);
    struct ab_rng r;
    comp_rng(c, comp, &r);
    ab_gen_rand_unit(&r, u, 2 * m);
    for (int64_t i = 0; i < c->n; i++) add_dir(c->q_post + i * c->d, c->pairs, m, u, amp);
    for (int64_t s = 0; s < n_pos; s++) {
        int64_t j = pos[s];
        add_dir(c->k_post + j * c->d, c->pairs, m, u, amp);
        /* value drain: a sink contributes little to the output */
        for (int64_t e = 0; e < c->d_v; e++) c->v[j * c->d_v + e] *= (float)SINK_DRAIN;
    }
}

static void write_local(struct ab_gen_ctx *c)
{
    int64_t m = ab_gen_pairs_of(c->hd, c->n_pair, AB_COMP_LOCAL, c->pairs);
    /* S * mean_p cos(Delta w_p): each pair carries S / m */
    double amp = ab_gen_amp(c->hd->strength[AB_COMP_LOCAL] / (double)m, c->scale);
    struct ab_rng r;
    comp_rng(c, AB_COMP_LOCAL, &r);
    for (int64_t k = 0; k < m; k++) {
        double phi = 2 * M_PI * ab_rng_uniform(&r);
        double x0 = amp * cos(phi), x1 = amp * sin(phi);
        int64_t p = c->pairs[k];
        for (int64_t i = 0; i < c->n; i++) {
            c->q_pre[i * c->d + 2 * p] += x0, c->q_pre[i * c->d + 2 * p + 1] += x1;
            c->k_pre[i * c->d + 2 * p] += x0, c->k_pre[i * c->d + 2 * p + 1] += x1;
        }
    }
}

static void write_vertical(struct ab_gen_ctx *c)
{
    const struct ab_gen_head *hd = c->hd;
    int64_t m = ab_gen_pairs_of(hd, c->n_pair, AB_COMP_VERTICAL, c->pairs);
    double u[2 * m], s = hd->strength[AB_COMP_VERTICAL];
    double amp = ab_gen_amp(s, c->scale);
    struct ab_rng r;
    comp_rng(c, AB_COMP_VERTICAL, &r);
    ab_gen_rand_unit(&r, u, 2 * m);
    for (int64_t i = 0; i < c->n; i++) add_dir(c->q_post + i * c->d, c->pairs, m, u, amp);
    for (int64_t h = 0; h < hd->n_heavy; h++) {
        /* bonus s + jitter nats: the key side scales by (s + jitter) / s */
        double g = AB_MAX(0.0, 1 + VERTICAL_JITTER * ab_rng_normal(&r) / s);
        add_dir(c->k_post + hd->heavy[h] * c->d, c->pairs, m, u, amp * g);
    }
}

/* AB_E_NOMEM (no detail: the caller names the head) when its code or phase table cannot be
 * allocated: the head would lose the component. */
static int write_slash(struct ab_gen_ctx *c)
{
    const struct ab_gen_head *hd = c->hd;
    int64_t per = hd->slash_period;
    double str = hd->strength[AB_COMP_SLASH];
    struct ab_rng r;
    comp_rng(c, AB_COMP_SLASH, &r);
    /* content: code x_{t mod p} on both sides */
    int64_t m = ab_gen_pairs_of(hd, c->n_pair, AB_COMP_SLASH, c->pairs);
    double *code = ab_alloc(ab_size_mul((size_t)(per * 2 * m), sizeof(double)));
    double amp = ab_gen_amp(SLASH_CONTENT * str, c->scale);
    if (!code) return AB_E_NOMEM;
    for (int64_t t = 0; t < per; t++) ab_gen_rand_unit(&r, code + t * 2 * m, 2 * m);
    for (int64_t i = 0; i < c->n; i++) {
        const double *x = code + (i % per) * 2 * m;
        add_dir(c->q_post + i * c->d, c->pairs, m, x, amp);
        add_dir(c->k_post + i * c->d, c->pairs, m, x, amp);
    }
    ab_free(code);
    /* look-back: per pair k a random phase phi_k(t) per content t; q_i = b e^{i phi_k(t_i)},
     * k_j = b e^{i (phi_k(t_j) + p w_k)}. After RoPE, keys with the query's content give
     * b^2 cos((i - j - p) w_k): largest one period back, and negative at Delta = 0 and 2p on
     * the pairs chosen (cos(p w) < 0); other contents give random phases (noise). */
    m = ab_gen_pairs_of(hd, c->n_pair, AB_GEN_SLASH_LOOKBACK, c->pairs);
    amp = ab_gen_amp((1 - SLASH_CONTENT) * str / (double)m, c->scale);
    double *phase = ab_alloc(ab_size_mul((size_t)(per * m), sizeof(double)));
    if (!phase) return AB_E_NOMEM;
    for (int64_t e = 0; e < per * m; e++) phase[e] = 2 * M_PI * ab_rng_uniform(&r);
    for (int64_t k = 0; k < m; k++) {
        int64_t p = c->pairs[k];
        double shift = (double)per * ab_gen_freq(p, c->d, c->o->rope_theta);
        for (int64_t i = 0; i < c->n; i++) {
            double phi = phase[(i % per) * m + k];
            c->q_pre[i * c->d + 2 * p] += amp * cos(phi);
            c->q_pre[i * c->d + 2 * p + 1] += amp * sin(phi);
            c->k_pre[i * c->d + 2 * p] += amp * cos(phi + shift);
            c->k_pre[i * c->d + 2 * p + 1] += amp * sin(phi + shift);
        }
    }
    ab_free(phase);
    return AB_OK;
}

static void write_topic(struct ab_gen_ctx *c)
{
    const struct ab_gen_head *hd = c->hd;
    int64_t m = ab_gen_pairs_of(hd, c->n_pair, AB_COMP_TOPIC, c->pairs), dim = 2 * m;
    int64_t nt = hd->n_topic;
    double basis[nt][dim], amp = ab_gen_amp(hd->strength[AB_COMP_TOPIC], c->scale);
    struct ab_rng r;
    comp_rng(c, AB_COMP_TOPIC, &r);
    /* orthonormal topic vectors (Gram-Schmidt on Gaussian draws; nt <= dim) */
    for (int64_t t = 0; t < nt; t++) {
        double nn;
        do {
            ab_gen_rand_unit(&r, basis[t], dim);
            for (int64_t s = 0; s < t; s++) {
                double dot = 0;
                for (int64_t e = 0; e < dim; e++) dot += basis[t][e] * basis[s][e];
                for (int64_t e = 0; e < dim; e++) basis[t][e] -= dot * basis[s][e];
            }
            nn = 0;
            for (int64_t e = 0; e < dim; e++) nn += basis[t][e] * basis[t][e];
        } while (nn < 1e-6);
        for (int64_t e = 0; e < dim; e++) basis[t][e] /= sqrt(nn);
    }
    for (int64_t i = 0; i < c->n; i++) {
        add_dir(c->q_post + i * c->d, c->pairs, m, basis[hd->topic[i]], amp);
        add_dir(c->k_post + i * c->d, c->pairs, m, basis[hd->topic[i]], amp);
    }
}

static void write_needle(struct ab_gen_ctx *c)
{
    int64_t m = ab_gen_pairs_of(c->hd, c->n_pair, AB_COMP_NEEDLE, c->pairs);
    double u[2 * m], amp = ab_gen_amp(c->hd->strength[AB_COMP_NEEDLE], c->scale);
    struct ab_rng r;
    comp_rng(c, AB_COMP_NEEDLE, &r);
    int64_t n = c->n, n_partner = AB_MAX(1, n / 32), lo = n / 8;
    if (n < 16) return;
    for (int64_t t = 0; t < n_partner; t++) {
        int64_t i = lo + ab_rng_below(&r, n - lo);
        int64_t j = ab_rng_below(&r, AB_MAX(1, (3 * i) / 4));
        ab_gen_rand_unit(&r, u, 2 * m);
        if (c->task_pos[i] || c->task_pos[j] || j == 0) continue;
        add_dir(c->q_post + i * c->d, c->pairs, m, u, amp);
        add_dir(c->k_post + j * c->d, c->pairs, m, u, amp);
    }
}

static void write_diffuse(struct ab_gen_ctx *c)
{
    int64_t m = ab_gen_pairs_of(c->hd, c->n_pair, AB_COMP_DIFFUSE, c->pairs);
    /* q, k ~ N(0, s2 I) in 2m dims: scale * q.k has variance scale^2 s2^2 2m = S^2 */
    double sd = sqrt(c->hd->strength[AB_COMP_DIFFUSE] / (c->scale * sqrt(2.0 * (double)m)));
    struct ab_rng r;
    comp_rng(c, AB_COMP_DIFFUSE, &r);
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t k = 0; k < m; k++)
            for (int e = 0; e < 2; e++) {
                c->q_pre[i * c->d + 2 * c->pairs[k] + e] += sd * ab_rng_normal(&r);
                c->k_pre[i * c->d + 2 * c->pairs[k] + e] += sd * ab_rng_normal(&r);
            }
}

int ab_gen_component(struct ab_gen_ctx *c, int comp)
{
    static const int32_t zero = 0;
    switch (comp) {
    case AB_COMP_LOCAL: write_local(c); break;
    case AB_COMP_SINK: write_sink(c, comp, &zero, 1); break;
    case AB_COMP_SECONDARY_SINK: write_sink(c, comp, c->hd->sec, c->hd->n_sec); break;
    case AB_COMP_VERTICAL: write_vertical(c); break;
    case AB_COMP_SLASH: return write_slash(c);
    case AB_COMP_TOPIC: write_topic(c); break;
    case AB_COMP_NEEDLE: write_needle(c); break;
    case AB_COMP_DIFFUSE: write_diffuse(c); break;
    default: break;
    }
    return AB_OK;
}
