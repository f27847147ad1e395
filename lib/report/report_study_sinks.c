/* report_study_sinks.c - `report --study sink-emergence`: the findings of Gu et al., "When
 * Attention Sink Emerges in Language Models" (arXiv 2410.10781), from the /heads table of
 * `attnbench heads` (R->d->heads, metrics.md "Head and sink statistics") and its /layers rows
 * (hidden states), per workload (one model on one input) and per model:
 *   - the sink ratio (share of heads with alpha(0) > epsilon) per layer at epsilon 0.3 and over
 *     a sweep of epsilon (table, sinks-epsilon.png);
 *   - the first-token weight of every head, one heatmap panel per workload on one colour scale
 *     (sinks-first-weight.png), and per workload the mean over the model's sink heads;
 *   - whether the sink follows position 0 without BOS: a window that starts inside a text
 *     (its capture's description says "tokens [T0, T1) of N" with T0 > 0) against the window of
 *     the same text from its start;
 *   - the sink token's key and value norms (key_ratio, value_drain) in sink heads and others;
 *   - secondary sinks (sec_pos1..4), with how many query rows see each;
 *   - the model without sinks as the contrast;
 *   - massive activations and the sink token's hidden-state norm per layer (/layers);
 *   - the exact attention map of the strongest sink head of the report's workload.
 * The model of a workload is read from its capture's description (the text before ':'), when
 * the workload file is readable; else workloads are grouped by their layer x head shape. A
 * model's sink heads are those above epsilon 0.3 in some workload that starts at the start of
 * its text. Nothing here knows a model: every sentence is computed from the rows. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "core/machine.h"
#include "io/h5_workload.h"
#include "report/gnuplot.h"
#include "report/kept_map.h"
#include "report/report_internal.h"

#define EPS        0.3 /* the sink ratio's epsilon (metrics.md) */
#define N_SWEEP    9   /* epsilon 0.1 .. 0.9 */
#define RECENT     64  /* a secondary sink this close to the end is seen by few query rows */
#define N_SEC_ROWS 8   /* rows of the secondary-sink table */
#define SAME_BAND  0.1 /* "about the same": within 10% */

/* A workload of the /heads table. */
struct swl {
    const char *name; /* as recorded in /heads */
    char label[80];   /* its file name without .h5 */
    char model[160];  /* model name (description before ':', extension dropped), or shape */
    char input[600];  /* "text 'PATH'" etc. from the description, or "" */
    int mi;           /* index in the model list */
    int64_t n_seq;    /* tokens (0: unknown) */
    int64_t win0, win1, win_of; /* the capture's window [win0, win1) of win_of tokens; -1 */
    int from_start;             /* 1: its position 0 is the start of its input */
    int has_tok0;
    int32_t tok0; /* token at position 0 */
    int64_t L, H; /* layers and heads of its rows */
    int64_t n_rows;
    int64_t *rows; /* indices into the /heads table */
};

struct smodel {
    const char *name;
    int n_w;
    int64_t L, H;
    uint8_t *sink; /* (L, H): a sink head (alpha(0) > EPS in a workload from the start) */
    int n_sink;
};

struct sdata {
    const struct ab_heads_table *h;
    int c_sink, c_first, c_key, c_value, c_sink_pos, c_lifetime;
    int c_sec_pos[AB_HEAD_N_SEC], c_sec_alpha[AB_HEAD_N_SEC];
    int n_w;
    struct swl *w;
    int n_m;
    struct smodel *m;
};

static int column(const struct ab_heads_table *h, const char *name)
{
    for (int c = 0; c < h->n_cols; c++)
        if (!strcmp(h->col_name[c], name)) return c;
    return -1;
}

static double val(const struct sdata *S, int c, int64_t i)
{
    return c < 0 ? NAN : S->h->col[c][i];
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* The workload file of a recorded name: as recorded, else beside one of the results files. */
static int resolve(const struct rep *R, const char *w, char *out, size_t cap)
{
    struct stat st;
    if (!w || !*w) return 0;
    if (stat(w, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(out, cap, "%s", w);
        return 1;
    }
    for (int i = 0; i < R->d->n_inputs; i++) {
        const char *res = R->d->paths[i], *slash = strrchr(res, '/');
        int dl = slash ? (int)(slash - res) : 1;
        const char *dir = slash ? res : ".";
        /* relative to the results file, then its file name beside it */
        if (w[0] != '/') {
            snprintf(out, cap, "%.*s/%s", dl, dir, w);
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 1;
        }
        snprintf(out, cap, "%.*s/%s", dl, dir, base_name(w));
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    }
    return 0;
}

/* Fills model, input, window and token 0 of w from its capture (when readable). */
static void describe(const struct rep *R, struct swl *w)
{
    char path[4096];
    w->win0 = w->win1 = w->win_of = -1;
    w->from_start = 1;
    snprintf(w->model, sizeof w->model, "%lld x %lld heads", (long long)w->L, (long long)w->H);
    if (!resolve(R, w->name, path, sizeof path)) return;
    struct ab_workload meta;
    memset(&meta, 0, sizeof meta);
    if (ab_h5_workload_read_meta(path, &meta) != AB_OK) {
        ab_workload_free(&meta);
        return;
    }
    w->n_seq = meta.n_seq;
    if (meta.tokens && meta.n_seq > 0) w->has_tok0 = 1, w->tok0 = meta.tokens[0];
    const char *d = meta.description;
    const char *colon = d ? strchr(d, ':') : NULL;
    if (colon && colon > d) {
        int n = (int)(colon - d);
        const char *dot = memchr(d, '.', (size_t)n);
        if (dot && dot > d) n = (int)(dot - d); /* debdoc-f16.gguf -> debdoc-f16 */
        snprintf(w->model, sizeof w->model, "%.*s", n, d);
    }
    const char *in = d ? strstr(d, "input: ") : NULL;
    if (in) {
        in += 7;
        const char *end = strstr(in, ", tokens [");
        const char *comma = strchr(in, ',');
        /* the input up to the window or the token count */
        if (!end) end = comma ? comma : in + strlen(in);
        snprintf(w->input, sizeof w->input, "%.*s", (int)(end - in), in);
    }
    const char *win = d ? strstr(d, ", tokens [") : NULL;
    long long a, b, n;
    if (win && sscanf(win, ", tokens [%lld, %lld) of %lld", &a, &b, &n) == 3) {
        w->win0 = a, w->win1 = b, w->win_of = n;
        w->from_start = a == 0;
    }
    ab_workload_free(&meta);
}

static void sdata_free(struct sdata *S)
{
    for (int i = 0; i < S->n_w; i++) free(S->w[i].rows);
    for (int i = 0; i < S->n_m; i++) free(S->m[i].sink);
    free(S->w), free(S->m);
}

/* The workloads of the table in order of first appearance, their models and sink heads. */
static int collect(const struct rep *R, struct sdata *S)
{
    const struct ab_heads_table *h = &R->d->heads;
    S->h = h;
    S->c_sink = column(h, "sink_score");
    if (S->c_sink < 0) S->c_sink = column(h, "alpha0");
    S->c_first = column(h, "first_weight");
    S->c_key = column(h, "key_ratio");
    S->c_value = column(h, "value_drain");
    S->c_sink_pos = column(h, "sink_pos");
    S->c_lifetime = column(h, "sec_lifetime");
    for (int k = 0; k < AB_HEAD_N_SEC; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "sec_pos%d", k + 1);
        S->c_sec_pos[k] = column(h, nm);
        snprintf(nm, sizeof nm, "sec_alpha%d", k + 1);
        S->c_sec_alpha[k] = column(h, nm);
    }
    S->w = calloc((size_t)h->n + 1, sizeof *S->w);
    S->m = calloc((size_t)h->n + 1, sizeof *S->m);
    if (!S->w || !S->m) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < h->n; i++) {
        const char *name = h->workload ? h->workload[i] : "";
        int k = -1;
        for (int j = 0; j < S->n_w && k < 0; j++)
            if (!strcmp(S->w[j].name, name)) k = j;
        if (k < 0) {
            k = S->n_w++;
            S->w[k].name = name;
            if (!(S->w[k].rows = malloc(sizeof(int64_t) * (size_t)h->n)))
                return ab_fail(AB_E_NOMEM, "out of memory");
        }
        struct swl *w = &S->w[k];
        w->rows[w->n_rows++] = i;
        w->L = AB_MAX(w->L, h->layer[i] + 1), w->H = AB_MAX(w->H, h->head[i] + 1);
    }
    for (int j = 0; j < S->n_w; j++) {
        struct swl *w = &S->w[j];
        const char *b = base_name(w->name);
        size_t len = strlen(b);
        if (len > 3 && !strcmp(b + len - 3, ".h5")) len -= 3;
        snprintf(w->label, sizeof w->label, "%.*s", (int)AB_MIN(len, 70), len ? b : "(unnamed)");
        describe(R, w);
        int mi = -1;
        for (int m = 0; m < S->n_m && mi < 0; m++)
            if (!strcmp(S->m[m].name, w->model)) mi = m;
        if (mi < 0) S->m[mi = S->n_m++].name = w->model;
        w->mi = mi;
        S->m[mi].n_w++;
        S->m[mi].L = AB_MAX(S->m[mi].L, w->L), S->m[mi].H = AB_MAX(S->m[mi].H, w->H);
    }
    for (int m = 0; m < S->n_m; m++) {
        struct smodel *M = &S->m[m];
        if (!(M->sink = calloc((size_t)(M->L * M->H) + 1, 1)))
            return ab_fail(AB_E_NOMEM, "out of memory");
        for (int j = 0; j < S->n_w; j++) {
            const struct swl *w = &S->w[j];
            if (w->mi != m || !w->from_start) continue;
            for (int64_t r = 0; r < w->n_rows; r++) {
                int64_t i = w->rows[r];
                if (h->layer[i] < 0 || h->head[i] < 0) continue;
                uint8_t *s = &M->sink[h->layer[i] * M->H + h->head[i]];
                if (val(S, S->c_sink, i) > EPS && !*s) *s = 1, M->n_sink++;
            }
        }
    }
    return AB_OK;
}

/* Heads of w with sink score > eps, and heads with a sink score, in layer `layer` (-1: all). */
static void count_sinks(const struct sdata *S, const struct swl *w, double eps, int64_t layer,
                        int64_t *sinks, int64_t *n)
{
    *sinks = *n = 0;
    for (int64_t r = 0; r < w->n_rows; r++) {
        int64_t i = w->rows[r];
        double x = val(S, S->c_sink, i);
        if (isnan(x) || (layer >= 0 && S->h->layer[i] != layer)) continue;
        (*n)++;
        *sinks += x > eps;
    }
}

static double pct(int64_t a, int64_t b)
{
    return b ? 100.0 * (double)a / (double)b : NAN;
}

/* The mean first-token weight of w over its model's sink heads (NaN: none). */
static double sink_heads_first(const struct sdata *S, const struct swl *w)
{
    const struct smodel *M = &S->m[w->mi];
    double sum = 0;
    int64_t n = 0;
    for (int64_t r = 0; r < w->n_rows; r++) {
        int64_t i = w->rows[r];
        if (S->h->layer[i] < 0 || S->h->head[i] < 0) continue;
        double x = val(S, S->c_first, i);
        if (M->sink[S->h->layer[i] * M->H + S->h->head[i]] && isfinite(x)) sum += x, n++;
    }
    return n ? sum / (double)n : NAN;
}

/* "L2.H1, L2.H2" of the model's sink heads. */
static void sink_list(const struct smodel *M, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int64_t l = 0; l < M->L; l++)
        for (int64_t hh = 0; hh < M->H; hh++)
            if (M->sink[l * M->H + hh] && n < cap)
                n += (size_t)snprintf(buf + n, cap - n, "%sL%lld.H%lld", n ? ", " : "",
                                      (long long)l, (long long)hh);
}

/* "| " then v as %.3f, or "-" when v is NaN (no heads to take a median over). */
static void put_cell(FILE *f, double v)
{
    if (isnan(v))
        fputs("| - ", f);
    else
        fprintf(f, "| %.3f ", v);
}

/* "smaller" / "larger" / "about the same" for a against b. */
static const char *compare_word(double a, double b)
{
    if (!(isfinite(a) && isfinite(b))) return "not comparable";
    if (fabs(a - b) <= SAME_BAND * fmax(fabs(a), fabs(b))) return "about the same";
    return a < b ? "smaller" : "larger";
}

/* ------------------------------------------------------------------ sink ratio */

static int section_ratio(struct rep *R, const struct sdata *S, FILE *f)
{
    int64_t Lmax = 0;
    for (int j = 0; j < S->n_w; j++) Lmax = AB_MAX(Lmax, S->w[j].L);
    fprintf(f, "### Sink ratio per layer (epsilon %g)\n\n", EPS);
    fputs("Share of the heads of each layer whose sink score alpha(0) (the mean attention of "
          "the query rows on position 0) exceeds epsilon; \"all\" over every head of the "
          "workload.\n\n| workload | model | tokens |",
          f);
    for (int64_t l = 0; l < Lmax; l++) fprintf(f, " L%lld |", (long long)l);
    fputs(" all |\n|---|---|---|", f);
    for (int64_t l = 0; l <= Lmax; l++) fputs("---|", f);
    fputc('\n', f);
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *w = &S->w[j];
        fprintf(f, "| %s | %s | ", w->label, w->model);
        if (w->n_seq)
            fprintf(f, "%lld", (long long)w->n_seq);
        else
            fputs("-", f);
        if (w->win0 > 0) fprintf(f, " (from %lld, no BOS)", (long long)w->win0);
        fputs(" |", f);
        for (int64_t l = 0; l < Lmax; l++) {
            int64_t a, n;
            count_sinks(S, w, EPS, l, &a, &n);
            if (n)
                fprintf(f, " %.0f%% |", pct(a, n));
            else
                fputs(" |", f);
        }
        int64_t a, n;
        count_sinks(S, w, EPS, -1, &a, &n);
        fprintf(f, " %.1f%% (%lld/%lld) |\n", pct(a, n), (long long)a, (long long)n);
    }
    fputc('\n', f);
    /* per model, over its workloads from the start of a text */
    for (int m = 0; m < S->n_m; m++) {
        int64_t a = 0, n = 0, n_w = 0;
        int64_t *per_layer = calloc((size_t)S->m[m].L + 1, sizeof(int64_t));
        if (!per_layer) return ab_fail(AB_E_NOMEM, "out of memory");
        for (int j = 0; j < S->n_w; j++) {
            const struct swl *w = &S->w[j];
            if (w->mi != m || !w->from_start) continue;
            int64_t a1, n1;
            count_sinks(S, w, EPS, -1, &a1, &n1);
            a += a1, n += n1, n_w++;
            for (int64_t l = 0; l < w->L && l < S->m[m].L; l++) {
                count_sinks(S, w, EPS, l, &a1, &n1);
                per_layer[l] += a1;
            }
        }
        if (!n_w) {
            free(per_layer);
            continue;
        }
        fprintf(f,
                "- **%s**: %.1f%% of the heads are sinks at epsilon %g (%lld of %lld heads "
                "over its %lld workload%s from the start of a text)",
                S->m[m].name, pct(a, n), EPS, (long long)a, (long long)n, (long long)n_w,
                n_w > 1 ? "s" : "");
        if (a) {
            fputs(", in layer", f);
            int nl = 0;
            for (int64_t l = 0; l < S->m[m].L; l++) nl += per_layer[l] > 0;
            fputs(nl > 1 ? "s " : " ", f);
            int k = 0;
            for (int64_t l = 0; l < S->m[m].L; l++)
                if (per_layer[l] > 0)
                    fprintf(f, "%s%lld", k++ ? (k == nl ? " and " : ", ") : "", (long long)l);
            fputs(" only", f);
            char list[600];
            sink_list(&S->m[m], list, sizeof list);
            fprintf(f, " (sink heads in some workload: %s)", list);
        }
        fputs(".\n", f);
        free(per_layer);
    }
    fputc('\n', f);
    (void)R;
    return AB_OK;
}

static int section_sweep(struct rep *R, const struct sdata *S, FILE *f)
{
    double eps[N_SWEEP];
    for (int e = 0; e < N_SWEEP; e++) eps[e] = 0.1 * (e + 1);
    fputs("### Sink ratio against epsilon\n\n| workload |", f);
    for (int e = 0; e < N_SWEEP; e++) fprintf(f, " %.1f |", eps[e]);
    fputs("\n|---|", f);
    for (int e = 0; e < N_SWEEP; e++) fputs("---|", f);
    fputc('\n', f);
    double *y = calloc((size_t)(S->n_w * N_SWEEP) + 1, sizeof(double));
    struct ab_gp_curve *cu = calloc((size_t)S->n_w + 1, sizeof *cu);
    char(*titles)[260] = calloc((size_t)S->n_w + 1, sizeof *titles);
    int rc = AB_OK;
    if (!y || !cu || !titles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    double ymax = 0;
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *w = &S->w[j];
        fprintf(f, "| %s |", w->label);
        for (int e = 0; e < N_SWEEP; e++) {
            int64_t a, n;
            count_sinks(S, w, eps[e], -1, &a, &n);
            y[j * N_SWEEP + e] = pct(a, n);
            fprintf(f, " %.1f%% |", pct(a, n));
            if (isfinite(y[j * N_SWEEP + e])) ymax = fmax(ymax, y[j * N_SWEEP + e]);
        }
        fputc('\n', f);
        snprintf(titles[j], sizeof titles[0], "%s (%s)", w->label, w->model);
        cu[j] = (struct ab_gp_curve){
            .title = titles[j], .style = j, .n = N_SWEEP, .x = eps, .y = &y[j * N_SWEEP]};
    }
    fputc('\n', f);
    /* per model: from the smallest epsilon to the strongest head */
    for (int m = 0; m < S->n_m; m++) {
        int64_t a0 = 0, n0 = 0, a9 = 0, n9 = 0;
        double top = -INFINITY;
        const char *top_w = "";
        int64_t top_l = -1, top_h = -1;
        for (int j = 0; j < S->n_w; j++) {
            const struct swl *w = &S->w[j];
            if (w->mi != m || !w->from_start) continue;
            int64_t a, n;
            count_sinks(S, w, eps[0], -1, &a, &n);
            a0 += a, n0 += n;
            count_sinks(S, w, eps[N_SWEEP - 1], -1, &a, &n);
            a9 += a, n9 += n;
            for (int64_t r = 0; r < w->n_rows; r++) {
                double x = val(S, S->c_sink, w->rows[r]);
                if (x > top)
                    top = x, top_w = w->label, top_l = S->h->layer[w->rows[r]],
                    top_h = S->h->head[w->rows[r]];
            }
        }
        if (!n0) continue;
        double last = NAN; /* the largest epsilon of the sweep with a sink */
        for (int e = 0; e < N_SWEEP; e++) {
            int64_t at = 0;
            for (int j = 0; j < S->n_w; j++) {
                if (S->w[j].mi != m || !S->w[j].from_start) continue;
                int64_t a, n;
                count_sinks(S, &S->w[j], eps[e], -1, &a, &n);
                at += a;
            }
            if (at) last = eps[e];
        }
        fprintf(f,
                "- **%s** (workloads from the start of a text): %.1f%% at epsilon %.1f, "
                "%.1f%% at %.1f",
                S->m[m].name, pct(a0, n0), eps[0], pct(a9, n9), eps[N_SWEEP - 1]);
        if (isnan(last))
            fprintf(f, "; no head exceeds %.1f (largest alpha(0) %.3f, L%lld.H%lld on %s).\n",
                    eps[0], top, (long long)top_l, (long long)top_h, top_w);
        else
            fprintf(f,
                    "; the last sink heads go above epsilon %.1f (the strongest: alpha(0) "
                    "%.3f, L%lld.H%lld on %s).\n",
                    last, top, (long long)top_l, (long long)top_h, top_w);
    }
    fputc('\n', f);
    /* the figure: one line per workload */
    double tics[N_SWEEP];
    char tl[N_SWEEP][8];
    const char *tlp[N_SWEEP];
    for (int e = 0; e < N_SWEEP; e++) {
        tics[e] = eps[e];
        snprintf(tl[e], sizeof tl[e], "%.1f", eps[e]);
        tlp[e] = tl[e];
    }
    double top = ymax > 0 ? ceil(ymax * 1.15 / 5) * 5 : 10;
    /* workloads at 0 for every epsilon draw on top of each other: the caption names them */
    char zeros[600] = "";
    size_t zl = 0;
    int n_zero = 0;
    for (int j = 0; j < S->n_w; j++) {
        int all0 = 1;
        for (int e = 0; e < N_SWEEP; e++) all0 &= y[j * N_SWEEP + e] == 0;
        if (all0 && zl < sizeof zeros)
            n_zero++, zl += (size_t)snprintf(zeros + zl, sizeof zeros - zl, "%s%s", zl ? ", " : "",
                                             S->w[j].label);
    }
    struct ab_gp_axes ax = {.title = "sink ratio: share of heads with alpha(0) > epsilon",
                            .xlabel = "epsilon",
                            .ylabel = "sink ratio (% of heads)",
                            .xmin = 0.05,
                            .xmax = 0.95,
                            .ymin = -0.02 * top,
                            .ymax = top,
                            .n_xtics = N_SWEEP,
                            .xtics = tics,
                            .xtic_labels = tlp,
                            .n_curves = S->n_w,
                            .curves = cu};
    struct ab_gp_figure fig = {.name = "sinks-epsilon",
                               .title = "Sink ratio against epsilon, per workload (Gu et al.)",
                               .rows = 1,
                               .cols = 1,
                               .n_panels = 1,
                               .panels = &ax,
                               .width = 1100,
                               .height = 560};
    if ((rc = ab_gp_figure_write(R->o->dir, &fig)) != AB_OK) goto done;
    ab_rep_announce_pair(R, "sinks-epsilon");
    rc = ab_rep_add_fig(R, SEC_STUDY, 1, "sinks-epsilon.png",
                        "Sink ratio (percentage of heads with alpha(0) > epsilon) against "
                        "epsilon, one line per workload (model in brackets)%s%s%s.",
                        n_zero > 1 ? "; " : "", n_zero > 1 ? zeros : "",
                        n_zero > 1 ? " are at 0 for every epsilon (their lines overlap)" : "");
done:
    free(y), free(cu), free(titles);
    return rc;
}

/* ------------------------------------------------------------------ first-token weight */

static int section_first(struct rep *R, const struct sdata *S, FILE *f)
{
    fputs("### First-token weight per head\n\n", f);
    if (S->c_first < 0) {
        fputs("The /heads table has no first_weight column: the first-token weight is not in "
              "the data.\n\n",
              f);
        return AB_OK;
    }
    fputs("The mean weight of the query rows on position 0 (first_weight), per workload: over "
          "every head, over the model's sink heads (alpha(0) > 0.3 in some workload from the "
          "start of a text, listed below the table), and the three largest heads.\n\n"
          "| workload | model | sink ratio (0.3) | mean over heads | mean over the sink heads "
          "| largest heads |\n|---|---|---|---|---|---|\n",
          f);
    int rc = AB_OK;
    double hi = 0;
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *w = &S->w[j];
        int64_t a, n;
        count_sinks(S, w, EPS, -1, &a, &n);
        double sum = 0;
        int64_t cnt = 0, top[3] = {-1, -1, -1};
        for (int64_t r = 0; r < w->n_rows; r++) {
            int64_t i = w->rows[r];
            double x = val(S, S->c_first, i);
            if (!isfinite(x)) continue;
            sum += x, cnt++, hi = fmax(hi, x);
            for (int k = 0; k < 3; k++)
                if (top[k] < 0 || x > val(S, S->c_first, top[k])) {
                    for (int q = 2; q > k; q--) top[q] = top[q - 1];
                    top[k] = i;
                    break;
                }
        }
        double sh = sink_heads_first(S, w);
        fprintf(f, "| %s | %s | %.1f%% | %.3f | ", w->label, w->model, pct(a, n),
                cnt ? sum / (double)cnt : NAN);
        if (isfinite(sh))
            fprintf(f, "%.3f", sh);
        else
            fputs("- (no sink heads)", f);
        fputs(" |", f);
        for (int k = 0; k < 3 && top[k] >= 0; k++)
            fprintf(f, "%s L%lld.H%lld %.3f", k ? "," : "", (long long)S->h->layer[top[k]],
                    (long long)S->h->head[top[k]], val(S, S->c_first, top[k]));
        fputs(" |\n", f);
    }
    fputc('\n', f);
    for (int m = 0; m < S->n_m; m++) {
        char list[600];
        sink_list(&S->m[m], list, sizeof list);
        if (S->m[m].n_sink)
            fprintf(f, "- %s's sink heads: %s.\n", S->m[m].name, list);
        else
            fprintf(f,
                    "- %s has no sink head (no alpha(0) above %g in a workload from the "
                    "start of a text).\n",
                    S->m[m].name, EPS);
    }
    fputc('\n', f);
    /* the heatmaps: one panel per workload on one linear scale [0, hi] */
    struct ab_gp_grid *grids = calloc((size_t)S->n_w + 1, sizeof *grids);
    double **v = calloc((size_t)S->n_w + 1, sizeof(double *));
    char(*titles)[260] = calloc((size_t)S->n_w + 1, sizeof *titles);
    if (!grids || !v || !titles) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *w = &S->w[j];
        if (!(v[j] = malloc(sizeof(double) * (size_t)(w->L * w->H + 1)))) {
            rc = ab_fail(AB_E_NOMEM, "out of memory");
            goto done;
        }
        for (int64_t k = 0; k < w->L * w->H; k++) v[j][k] = NAN;
        for (int64_t r = 0; r < w->n_rows; r++) {
            int64_t i = w->rows[r];
            if (S->h->layer[i] >= 0 && S->h->head[i] >= 0)
                v[j][S->h->layer[i] * w->H + S->h->head[i]] = val(S, S->c_first, i);
        }
        snprintf(titles[j], sizeof titles[0], "%s (%s)", w->label, w->model);
        grids[j] = (struct ab_gp_grid){.title = titles[j], .rows = w->L, .cols = w->H, .v = v[j]};
    }
    double top = hi > 0 ? ceil(hi * 10) / 10 : 1;
    struct ab_gp_heatmaps pl = {.name = "sinks-first-weight",
                                .title = "First-token weight per head (layers down, heads "
                                         "across), one panel per workload",
                                .xlabel = "head",
                                .ylabel = "layer",
                                .cblabel = "first-token weight",
                                .shared_scale = 1,
                                .lo = 0,
                                .hi = top,
                                .n_grids = S->n_w,
                                .grids = grids,
                                /* every workload in one row up to 6, else rows of four */
                                .per_row = S->n_w <= 6 ? S->n_w : 4,
                                .width = S->n_w <= 6 ? 260 * S->n_w + 300 : 1400};
    if ((rc = ab_gp_heatmaps_write(R->o->dir, &pl)) != AB_OK) goto done;
    ab_rep_announce_pair(R, "sinks-first-weight");
    rc = ab_rep_add_fig(R, SEC_STUDY, 1, "sinks-first-weight.png",
                        "First-token weight (mean attention on position 0) of every head, one "
                        "panel per workload, on one colour scale from 0 to %g.",
                        top);
done:
    for (int j = 0; v && j < S->n_w; j++) free(v[j]);
    free(grids), free(v), free(titles);
    return rc;
}

/* ------------------------------------------------------------------ position 0 without BOS */

static void section_bos(const struct sdata *S, FILE *f)
{
    fputs("### Does the sink follow position 0 without BOS?\n\n", f);
    int said = 0;
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *late = &S->w[j];
        if (late->from_start) continue;
        /* its partner: a workload of the same model and input from the start */
        const struct swl *start = NULL;
        for (int k = 0; k < S->n_w && !start; k++)
            if (S->w[k].mi == late->mi && S->w[k].from_start && !strcmp(S->w[k].input, late->input))
                start = &S->w[k];
        for (int k = 0; k < S->n_w && !start; k++)
            if (S->w[k].mi == late->mi && S->w[k].from_start) start = &S->w[k];
        said = 1;
        fprintf(f,
                "- %s starts at token %lld of its text (tokens [%lld, %lld) of %lld), so "
                "position 0 holds ",
                late->label, (long long)late->win0, (long long)late->win0, (long long)late->win1,
                (long long)late->win_of);
        if (late->has_tok0)
            fprintf(f, "token id %d", (int)late->tok0);
        else
            fputs("a token of the text", f);
        if (start && start->has_tok0 && late->has_tok0)
            fprintf(f, " where %s has token id %d (%s)", start->label, (int)start->tok0,
                    start->tok0 == late->tok0 ? "the same token" : "its first token");
        if (!start) {
            fprintf(f,
                    ". No workload of %s starts at the start of a text: nothing to compare "
                    "it with.\n",
                    S->m[late->mi].name);
            continue;
        }
        const struct smodel *M = &S->m[late->mi];
        int64_t a1, n1, a2, n2;
        count_sinks(S, start, EPS, -1, &a1, &n1);
        count_sinks(S, late, EPS, -1, &a2, &n2);
        double f1 = sink_heads_first(S, start), f2 = sink_heads_first(S, late);
        fprintf(f, ". Sink ratio at epsilon %g: %.1f%% there against %.1f%% in %s. ", EPS,
                pct(a2, n2), pct(a1, n1), start->label);
        if (!M->n_sink || !isfinite(f1) || !isfinite(f2)) {
            fputs("The model has no sink heads to follow.\n", f);
            continue;
        }
        double keep = f2 / f1;
        char list[600];
        sink_list(M, list, sizeof list);
        fprintf(f,
                "The model's sink heads (%s) put a mean first-token weight of %.3f on "
                "position 0 there against %.3f from the start (%.0f%% of it): ",
                list, f2, f1, 100 * keep);
        char first[64] = "the token that starts the text";
        if (start->has_tok0)
            snprintf(first, sizeof first, "the token that starts the text (id %d)",
                     (int)start->tok0);
        if (keep >= 0.8)
            fputs("**the sink follows position 0**, whatever token stands there.", f);
        else if (keep >= 0.2)
            fprintf(f, "**the sink follows position 0 only in part**: weaker without %s.", first);
        else
            fprintf(f,
                    "**the sink does not follow position 0**: these heads sink on %s, not "
                    "on whatever token stands first.",
                    first);
        /* where their weight goes instead: their first key with alpha > 0.1 */
        if (S->c_sink_pos >= 0) {
            int64_t at0 = 0, none = 0, later = 0, n = 0;
            for (int64_t r = 0; r < late->n_rows; r++) {
                int64_t i = late->rows[r];
                if (S->h->layer[i] < 0 || S->h->head[i] < 0 ||
                    !M->sink[S->h->layer[i] * M->H + S->h->head[i]])
                    continue;
                double p = val(S, S->c_sink_pos, i);
                n++;
                at0 += p == 0, none += p<0, later += p> 0;
            }
            if (none == n)
                fputs(" No other key takes the sink's place: none of these heads has a key with "
                      "alpha(k) > 0.1 there.",
                      f);
            else
                fprintf(f,
                        " Their first key with alpha(k) > 0.1 there: position 0 in %lld, a "
                        "later position in %lld, none in %lld of %lld heads.",
                        (long long)at0, (long long)later, (long long)none, (long long)n);
        }
        fputc('\n', f);
    }
    if (!said)
        fputs("The data cannot say: no workload is a window that starts inside a text (a "
              "capture with --offset > 0), so position 0 always holds the text's first "
              "token.\n",
              f);
    fputc('\n', f);
}

/* ------------------------------------------------------------------ the sink token's norms */

static void section_norms(const struct sdata *S, FILE *f)
{
    fputs("### The sink token's key and value norms\n\n", f);
    if (S->c_key < 0 && S->c_value < 0) {
        fputs("The /heads table has neither key_ratio nor value_drain: the sink token's norms "
              "are not in the data.\n\n",
              f);
        return;
    }
    fputs("key_ratio = ||k_0|| / mean ||k_j|| and value_drain = ||v_0|| / mean ||v_j|| (j > 0) "
          "of the key and value head each query head reads; medians over the sink heads "
          "(alpha(0) > 0.3 in that workload) and over the other heads.\n\n"
          "| workload | sink heads | key_ratio: sink heads | others | value_drain: sink heads "
          "| others |\n|---|---|---|---|---|---|\n",
          f);
    int64_t n_all = S->h->n;
    double *ks = malloc(sizeof(double) * (size_t)(n_all + 1)),
           *ko = malloc(sizeof(double) * (size_t)(n_all + 1)),
           *vs = malloc(sizeof(double) * (size_t)(n_all + 1)),
           *vo = malloc(sizeof(double) * (size_t)(n_all + 1));
    if (!ks || !ko || !vs || !vo) {
        fputs("(out of memory)\n\n", f);
        goto done;
    }
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *w = &S->w[j];
        int64_t nks = 0, nko = 0, nvs = 0, nvo = 0, n_s = 0;
        for (int64_t r = 0; r < w->n_rows; r++) {
            int64_t i = w->rows[r];
            int sink = val(S, S->c_sink, i) > EPS;
            double k = val(S, S->c_key, i), v = val(S, S->c_value, i);
            n_s += sink;
            if (isfinite(k)) (sink ? ks : ko)[sink ? nks++ : nko++] = k;
            if (isfinite(v)) (sink ? vs : vo)[sink ? nvs++ : nvo++] = v;
        }
        double mk = ab_median(ks, nks), mo = ab_median(ko, nko), mv = ab_median(vs, nvs),
               mvo = ab_median(vo, nvo);
        fprintf(f, "| %s | %lld ", w->label, (long long)n_s);
        put_cell(f, mk), put_cell(f, mo), put_cell(f, mv), put_cell(f, mvo);
        fputs("|\n", f);
    }
    fputc('\n', f);
    /* per model, pooled over its workloads from the start of a text */
    for (int m = 0; m < S->n_m; m++) {
        int64_t nks = 0, nko = 0, nvs = 0, nvo = 0, n_w = 0;
        for (int j = 0; j < S->n_w; j++) {
            const struct swl *w = &S->w[j];
            if (w->mi != m || !w->from_start) continue;
            n_w++;
            for (int64_t r = 0; r < w->n_rows; r++) {
                int64_t i = w->rows[r];
                int sink = val(S, S->c_sink, i) > EPS;
                double k = val(S, S->c_key, i), v = val(S, S->c_value, i);
                if (isfinite(k)) (sink ? ks : ko)[sink ? nks++ : nko++] = k;
                if (isfinite(v)) (sink ? vs : vo)[sink ? nvs++ : nvo++] = v;
            }
        }
        if (!n_w) continue;
        if (!nks && !nvs) {
            fprintf(f, "- **%s**: no sink heads, so no sink token to measure.\n", S->m[m].name);
            continue;
        }
        double mk = ab_median(ks, nks), mo = ab_median(ko, nko), mv = ab_median(vs, nvs),
               mvo = ab_median(vo, nvo);
        fprintf(f,
                "- **%s** (%lld sink-head rows over %lld workload%s from the start of a "
                "text): ",
                S->m[m].name, (long long)AB_MAX(nks, nvs), (long long)n_w, n_w > 1 ? "s" : "");
        if (nvs && nvo) {
            const char *word = compare_word(mv, mvo);
            int same = !strcmp(word, "about the same");
            fprintf(f,
                    "in the sink heads the sink token's value norm is %.3f of the other "
                    "tokens' mean (median value_drain), %s %s the other heads' %.3f",
                    mv, word, same ? "as" : "than", mvo);
            if (mv < 1 && !strcmp(word, "smaller"))
                fputs(": a small value, as Gu et al. find (attending to the sink adds little "
                      "to the output)",
                      f);
            else if (mv < 1)
                fputs(": small, as Gu et al. find, but no smaller than where heads do not sink", f);
            else
                fputs(": not small, unlike Gu et al.'s finding", f);
        } else {
            fputs("value norms not in the data", f);
        }
        fputs("; ", f);
        if (nks && nko)
            fprintf(f, "its key norm is %s (median key_ratio %.3f against %.3f).\n",
                    compare_word(mk, mo), mk, mo);
        else
            fputs("key norms not in the data.\n", f);
    }
    fputc('\n', f);
done:
    free(ks), free(ko), free(vs), free(vo);
}

/* ------------------------------------------------------------------ secondary sinks */

struct sec {
    int w;
    int64_t row, pos;
    double alpha;
};

static int cmp_sec(const void *a, const void *b)
{
    const struct sec *x = a, *y = b;
    if (x->alpha != y->alpha) return x->alpha > y->alpha ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int section_secondary(const struct sdata *S, FILE *f)
{
    fputs("### Secondary sinks\n\n", f);
    if (S->c_sec_pos[0] < 0 || S->c_sec_alpha[0] < 0) {
        fputs("The /heads table has no sec_pos1 / sec_alpha1 columns: secondary sinks are not in "
              "the data.\n\n",
              f);
        return AB_OK;
    }
    struct sec *e = malloc(sizeof *e * (size_t)(S->h->n * AB_HEAD_N_SEC + 1));
    if (!e) return ab_fail(AB_E_NOMEM, "out of memory");
    int64_t n = 0, heads = 0, heads0 = 0, recent = 0, known = 0;
    int n_wl = 0;
    for (int j = 0; j < S->n_w; j++) {
        const struct swl *w = &S->w[j];
        int any = 0;
        for (int64_t r = 0; r < w->n_rows; r++) {
            int64_t i = w->rows[r];
            if (!(val(S, S->c_sec_pos[0], i) >= 1)) continue;
            heads++, any = 1;
            heads0 += val(S, S->c_sink_pos, i) == 0;
            for (int k = 0; k < AB_HEAD_N_SEC; k++) {
                double p = val(S, S->c_sec_pos[k], i), a = val(S, S->c_sec_alpha[k], i);
                if (!(p >= 1) || !isfinite(a)) continue;
                e[n++] = (struct sec){j, i, (int64_t)p, a};
                if (w->n_seq) known++, recent += w->n_seq - (int64_t)p <= RECENT;
            }
        }
        n_wl += any;
    }
    if (!n) {
        fputs("No head has a secondary sink (a key after its first sink with alpha(k) > 0.1) in "
              "any workload.\n\n",
              f);
        free(e);
        return AB_OK;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_sec);
    fprintf(f,
            "Keys other than a head's first sink with alpha(k) > 0.1 (over at least 16 query "
            "rows); the strongest %d of %lld, with the number of query rows that see each "
            "(alpha(k) averages the n - k rows at or after k).\n\n"
            "| workload | head | first sink at | secondary at | alpha | rows seeing it |\n"
            "|---|---|---|---|---|---|\n",
            (int)AB_MIN(n, N_SEC_ROWS), (long long)n);
    for (int64_t k = 0; k < n && k < N_SEC_ROWS; k++) {
        const struct swl *w = &S->w[e[k].w];
        double first = val(S, S->c_sink_pos, e[k].row);
        fprintf(f, "| %s | L%lld.H%lld | ", w->label, (long long)S->h->layer[e[k].row],
                (long long)S->h->head[e[k].row]);
        if (first >= 0)
            fprintf(f, "%.0f", first);
        else
            fputs("-", f);
        fprintf(f, " | %lld | %.3f | ", (long long)e[k].pos, e[k].alpha);
        if (w->n_seq)
            fprintf(f, "%lld of %lld |\n", (long long)(w->n_seq - e[k].pos), (long long)w->n_seq);
        else
            fputs("- |\n", f);
    }
    fprintf(f,
            "\n%lld heads over %d workload%s have a secondary sink (%lld of them with their "
            "first sink at position 0), %lld secondary sinks in all. ",
            (long long)heads, n_wl, n_wl > 1 ? "s" : "", (long long)heads0, (long long)n);
    if (known)
        fprintf(f,
                "%lld of the %lld whose workload length is known lie in the last %d "
                "positions, where at most %d query rows see the key: alpha(k) there "
                "averages a few rows of local attention, so %s.",
                (long long)recent, (long long)known, RECENT, RECENT,
                recent == known      ? "none of them is a sink in Gu et al.'s sense (a key many "
                                       "queries attend to)"
                : recent * 2 > known ? "most of them are recency, not sinks"
                : recent             ? "those are recency; the others are keys many queries "
                                       "attend to"
                                     : "all of them are keys many queries attend to");
    if (S->c_lifetime >= 0) { /* per head: the lifetime of its strongest secondary sink */
        int64_t with = 0, longest = -1;
        for (int j = 0; j < S->n_w; j++)
            for (int64_t r = 0; r < S->w[j].n_rows; r++) {
                int64_t i = S->w[j].rows[r];
                double lt = val(S, S->c_lifetime, i);
                if (!(val(S, S->c_sec_pos[0], i) >= 1) || !(lt >= 0)) continue;
                with++, longest = AB_MAX(longest, (int64_t)lt);
            }
        if (with && longest == 0)
            fprintf(f,
                    " With hidden states (%lld of these heads), none of their strongest "
                    "secondary sinks is parallel to the first sink in any high-norm layer "
                    "(lifetime 0): no secondary sink of Gu et al.'s kind in the residual "
                    "stream.",
                    (long long)with);
        else if (with)
            fprintf(f,
                    " With hidden states (%lld of these heads), the longest lifetime of a "
                    "strongest secondary sink is %lld layer%s (high-norm layers where its "
                    "hidden state is parallel to the first sink's).",
                    (long long)with, (long long)longest, longest == 1 ? "" : "s");
    }
    fputs("\n\n", f);
    free(e);
    return AB_OK;
}

/* ------------------------------------------------------------------ the contrast */

static void section_contrast(const struct sdata *S, FILE *f)
{
    fputs("### A model without sinks\n\n", f);
    int said = 0;
    for (int m = 0; m < S->n_m; m++) {
        int64_t a = 0, n = 0, top = -1;
        const char *top_w = "";
        for (int j = 0; j < S->n_w; j++) {
            const struct swl *w = &S->w[j];
            if (w->mi != m) continue;
            int64_t a1, n1;
            count_sinks(S, w, EPS, -1, &a1, &n1);
            a += a1, n += n1;
            for (int64_t r = 0; r < w->n_rows; r++) {
                int64_t i = w->rows[r];
                double x = val(S, S->c_first >= 0 ? S->c_first : S->c_sink, i);
                if (isfinite(x) &&
                    (top < 0 || x > val(S, S->c_first >= 0 ? S->c_first : S->c_sink, top)))
                    top = i, top_w = w->label;
            }
        }
        if (a || !n || top < 0) continue;
        said = 1;
        fprintf(f,
                "No sink on %s: its largest first-token weight is %.3f (L%lld.H%lld on %s), "
                "and the sink ratio at epsilon %g is %.1f%% (0 of %lld heads).\n",
                S->m[m].name, val(S, S->c_first >= 0 ? S->c_first : S->c_sink, top),
                (long long)S->h->layer[top], (long long)S->h->head[top], top_w, EPS, 0.0,
                (long long)n);
    }
    if (!said)
        fprintf(f,
                "Every model here has heads with alpha(0) > %g: the data hold no sink-free "
                "model to contrast.\n",
                EPS);
    fputc('\n', f);
}

/* ------------------------------------------------------------------ massive activations */

static void section_massive(const struct rep *R, const struct sdata *S, FILE *f)
{
    fputs("### Massive activations and the sink token's norm\n\n", f);
    /* the workloads with /layers rows, in input order */
    enum { MAXW = 16 };
    const char *names[MAXW];
    const struct ab_layer_row *rows[MAXW][64];
    int n_w = 0;
    int64_t max_l = -1;
    for (int i = 0; i < R->d->n_inputs; i++)
        for (int64_t k = 0; k < R->d->inputs[i].n_layers; k++) {
            const struct ab_layer_row *l = &R->d->inputs[i].layers[k];
            const char *wn = l->workload ? l->workload : "";
            int w = -1;
            for (int q = 0; q < n_w && w < 0; q++)
                if (!strcmp(names[q], wn)) w = q;
            if (w < 0) {
                if (n_w == MAXW) continue;
                names[w = n_w++] = wn;
                for (int q = 0; q < 64; q++) rows[w][q] = NULL;
            }
            if (l->layer >= 0 && l->layer < 64)
                rows[w][l->layer] = l, max_l = AB_MAX(max_l, l->layer);
        }
    if (!n_w) {
        fputs("The results have no /layers rows (run `heads` on workloads captured with hidden "
              "states): massive activations are not in the data.\n\n",
              f);
        return;
    }
    char label[MAXW][80];
    for (int w = 0; w < n_w; w++) {
        snprintf(label[w], sizeof label[w], "%s", names[w]);
        for (int j = 0; j < S->n_w; j++)
            if (!strcmp(S->w[j].name, names[w]))
                snprintf(label[w], sizeof label[w], "%s", S->w[j].label);
    }
    fputs("Per hidden state (the residual stream entering layer l; the last is the output of the "
          "last layer): the largest |x| with its dimension and position, and the sink token's "
          "norm over the median token norm.\n\n| hidden state |",
          f);
    for (int w = 0; w < n_w; w++)
        fprintf(f, " %s: largest abs (dim, pos) | sink norm ratio |", label[w]);
    fputs("\n|---|", f);
    for (int w = 0; w < n_w; w++) fputs("---|---|", f);
    fputc('\n', f);
    for (int64_t l = 0; l <= max_l; l++) {
        fprintf(f, "| %lld |", (long long)l);
        for (int w = 0; w < n_w; w++) {
            const struct ab_layer_row *x = rows[w][l];
            if (!x || !isfinite(x->top1)) {
                fputs(" | |", f);
                continue;
            }
            fprintf(f, " %.3g (%lld, %lld) | %.1f |", fabs(x->top1), (long long)x->top1_dim,
                    (long long)x->top1_pos, x->sink_norm_ratio);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
    for (int w = 0; w < n_w; w++) {
        const struct ab_layer_row *best = NULL;
        int64_t n = 0, at_sink = 0, massive = 0, first_high = -1, n_high = 0;
        double max_ratio = -INFINITY;
        for (int64_t l = 0; l <= max_l; l++) {
            const struct ab_layer_row *x = rows[w][l];
            if (!x || !isfinite(x->top1)) continue;
            n++;
            at_sink += x->top1_pos == x->sink_pos;
            massive += x->n_massive;
            if (x->sink_high == 1 && first_high < 0) first_high = l;
            n_high += x->sink_high == 1;
            max_ratio = fmax(max_ratio, x->sink_norm_ratio);
            if (!best || fabs(x->top1) > fabs(best->top1)) best = x;
        }
        if (!best) continue;
        fprintf(f,
                "- **%s**: the largest activation is %.3g (hidden state %lld, dim %lld, "
                "position %lld), %.0fx the median |x| of that state; the largest |x| sits at "
                "the sink position (%lld) in %lld of %lld hidden states. %lld activation%s "
                "pass%s metrics.md's bar for massive (|x| > 100 and > 1000 x the median). ",
                label[w], fabs(best->top1), (long long)best->layer, (long long)best->top1_dim,
                (long long)best->top1_pos,
                best->median_abs > 0 ? fabs(best->top1) / best->median_abs : NAN,
                (long long)best->sink_pos, (long long)at_sink, (long long)n, (long long)massive,
                massive == 1 ? "" : "s", massive == 1 ? "es" : "");
        if (first_high >= 0)
            fprintf(f,
                    "The sink token's norm is high (above the high-norm ratio of `heads`) in "
                    "%lld of %lld hidden states, the first at %lld, up to %.1fx the median "
                    "token norm.\n",
                    (long long)n_high, (long long)n, (long long)first_high, max_ratio);
        else
            fprintf(f,
                    "The sink token's norm is never high: at most %.1fx the median token "
                    "norm.\n",
                    max_ratio);
    }
    fputc('\n', f);
}

/* ------------------------------------------------------------------ the map */

static int same_file(const char *a, const char *b)
{
    if (!strcmp(a, b)) return 1;
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int section_map(struct rep *R, const struct sdata *S, FILE *f)
{
    fputs("### Attention map of the strongest sink head\n\n", f);
    if (!R->have_wl) {
        fputs("No map: the report has no readable workload (give it with --workload).\n\n", f);
        return AB_OK;
    }
    int wj = -1;
    char path[4096];
    for (int j = 0; j < S->n_w && wj < 0; j++)
        if (resolve(R, S->w[j].name, path, sizeof path) && same_file(path, R->wl_path)) wj = j;
    if (wj < 0) {
        fprintf(f, "No map: the report's workload (%s) has no rows in the /heads table.\n\n",
                base_name(R->wl_path));
        return AB_OK;
    }
    const struct swl *w = &S->w[wj];
    int64_t best = -1;
    for (int64_t r = 0; r < w->n_rows; r++) {
        int64_t i = w->rows[r];
        double x = val(S, S->c_sink, i);
        if (isfinite(x) && (best < 0 || x > val(S, S->c_sink, best))) best = i;
    }
    if (best < 0) {
        fputs("No map: the workload's heads have no sink score.\n\n", f);
        return AB_OK;
    }
    int64_t L = S->h->layer[best], H = S->h->head[best];
    if (L < 0 || L >= R->wl.n_layer || H < 0 || H >= R->wl.n_head) {
        fprintf(f, "No map: L%lld.H%lld is outside the workload file.\n\n", (long long)L,
                (long long)H);
        return AB_OK;
    }
    double s = val(S, S->c_sink, best);
    char name[96];
    snprintf(name, sizeof name, "sinks-map-L%lld-H%lld", (long long)L, (long long)H);
    int rc = ab_map_figure_write(R->wl_path, &R->wl, L, H, R->o->map_size, R->o->map_floor,
                                 R->o->dir, name);
    if (rc != AB_OK) return rc;
    char buf[128];
    snprintf(buf, sizeof buf, "%s.bin", name);
    ab_rep_announce(R, buf);
    snprintf(buf, sizeof buf, "%s.gp", name);
    ab_rep_announce(R, buf);
    fprintf(f,
            "The strongest sink head of %s (the report's workload, on %s) is L%lld.H%lld "
            "with alpha(0) %.3f%s; its exact attention map is below (%s.png).\n\n",
            w->label, w->model, (long long)L, (long long)H, s,
            s > EPS ? "" : " (below epsilon 0.3: no head of this workload is a sink)", name);
    snprintf(buf, sizeof buf, "%s.png", name);
    return ab_rep_add_fig(R, SEC_STUDY, 1, buf,
                          "Exact attention of L%lld.H%lld on %s (alpha(0) %.3f, the largest "
                          "of the workload), log colour scale from %g to 1, max-pooled to at "
                          "most %lld px per side: the column at key 0 is the sink.",
                          (long long)L, (long long)H, w->label, s, R->o->map_floor,
                          (long long)AB_MIN(R->o->map_size, R->wl.n_seq));
}

/* ------------------------------------------------------------------ the study */

int ab_rep_study_sink_emergence(struct rep *R, FILE *f)
{
    fputs("## Findings: When Attention Sink Emerges\n\n", f);
    fputs("Gu et al., \"When Attention Sink Emerges in Language Models\" (arXiv 2410.10781), "
          "measured on real attention: the per-head statistics of `attnbench heads` (the "
          "/heads table). A head is a sink head when its sink score alpha(0), the mean "
          "attention of the query rows on position 0, exceeds epsilon; the sink ratio is the "
          "share of such heads (metrics.md, epsilon 0.3).\n\n",
          f);
    if (!R->d->heads.n) {
        fputs("The data cannot show it: the results have no /heads table (run `attnbench heads` "
              "on captured workloads and give its results to the report).\n\n",
              f);
        fputs("Reproduce: `attnbench scenario scenarios/sinks.yaml`.\n\n", f);
        return AB_OK;
    }
    struct sdata S = {0};
    int rc = collect(R, &S);
    if (rc != AB_OK) goto done;
    if (S.c_sink < 0) {
        fputs("The /heads table has no sink_score (or alpha0) column: the sink ratio cannot be "
              "computed.\n\n",
              f);
        goto done;
    }
    fprintf(f, "%d workload%s of %d model%s:", S.n_w, S.n_w > 1 ? "s" : "", S.n_m,
            S.n_m > 1 ? "s" : "");
    for (int m = 0; m < S.n_m; m++) {
        fprintf(f, "%s %s (", m ? ";" : "", S.m[m].name);
        int k = 0;
        for (int j = 0; j < S.n_w; j++)
            if (S.w[j].mi == m) fprintf(f, "%s%s", k++ ? ", " : "", S.w[j].label);
        fputs(")", f);
    }
    fputs(".\n\n", f);
    if ((rc = section_ratio(R, &S, f)) || (rc = section_sweep(R, &S, f)) ||
        (rc = section_first(R, &S, f)))
        goto done;
    section_bos(&S, f);
    section_norms(&S, f);
    if ((rc = section_secondary(&S, f))) goto done;
    section_contrast(&S, f);
    section_massive(R, &S, f);
    if ((rc = section_map(R, &S, f))) goto done;
    fputs("Reproduce: `attnbench scenario scenarios/sinks.yaml` (captures, `heads`, then this "
          "report with `--study sink-emergence`).\n\n",
          f);
done:
    sdata_free(&S);
    return rc;
}
