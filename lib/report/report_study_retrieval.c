/* report_study_retrieval.c - `report --study retrieval-heads`: the findings of the retrieval-head
 * study (Wu et al., "Retrieval Head Mechanistically Explains Long-Context Factuality", arXiv
 * 2404.15574) and of DuoAttention's head split (Xiao et al., "DuoAttention: Efficient
 * Long-Context LLM Inference with Retrieval and Streaming Heads", arXiv 2410.10819) from the
 * inputs of the retrieval-heads scenario:
 *   - which heads retrieve: the /heads rows of the first workload of the /heads table (the one
 *     the ablation ranked), retrieval_score and induction_score as layer x head heatmaps
 *     (retrieval-heads.png) and a table of the top heads with first_weight and DuoAttention's
 *     proxy label retrieval_like; a retrieval head is one with a score above RETRIEVAL_MIN,
 *     the paper's threshold;
 *   - the ablation: /model rows of uniform-head on "top K by retrieval_score", "random K (seed
 *     S)" and "bottom K by retrieval_score": copy accuracy on the copy-task input and
 *     perplexity on the text input per K, dense beside them (a table and the grouped bars of
 *     retrieval-ablation.png); the finding holds at K when masking the top K lowers copy
 *     accuracy by more than DROP_MIN below both dense and K random heads;
 *   - DuoAttention's split: per workload, phase and budget, the heads the duo cells of /cells
 *     keep whole (per-step FLOP ratio at least WHOLE_MIN: full attention) against the
 *     retrieval heads, and the heads the /heads label retrieval_like marks;
 *   - the exact attention map of the strongest retrieval head and of the strongest sink head
 *     (largest first_weight) of that workload, when the report's --workload is that workload.
 * Every head and number comes from the inputs; what they lack is said in one sentence. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "report/gnuplot.h"
#include "report/kept_map.h"
#include "report/report_internal.h"

#define RETRIEVAL_MIN 0.1  /* a retrieval head: retrieval score above this (Wu et al.) */
#define DROP_MIN      0.05 /* copy accuracy lower by more than this: a drop */
#define WHOLE_MIN     0.9  /* a duo head with per-step ratio at least this keeps every key */
enum { TOP_ROWS = 8, MAX_K = 16, N_CH = 3, CH_TOP = 0, CH_RANDOM = 1, CH_LOW = 2 };

static const char *const ch_name[N_CH] = {"top", "random", "lowest"};

static const char *base_name(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p ? p : "";
}

/* ------------------------------------------------------------------ the heads */

/* The /heads rows of one workload as (n_layer, n_head) grids; NaN (like: -1) where unknown. */
struct rh_heads {
    const char *workload;
    int64_t L, H;
    double *score, *induction, *first_weight; /* (L, H) */
    int8_t *like;                             /* (L, H) 1, 0, -1 unknown */
    int64_t *order;                           /* (L H) cells by score descending, NaN last */
};

static void heads_free(struct rh_heads *h)
{
    free(h->score), free(h->induction), free(h->first_weight), free(h->like), free(h->order);
    memset(h, 0, sizeof *h);
}

static int column(const struct ab_heads_table *h, const char *name)
{
    for (int c = 0; c < h->n_cols; c++)
        if (!strcmp(h->col_name[c], name)) return c;
    return -1;
}

/* retrieval_like of (workload, layer, head) from the typed /heads rows of the inputs, -1. */
static int like_of(const struct rep *R, const char *w, int64_t l, int64_t hd)
{
    for (int i = 0; i < R->d->n_inputs; i++)
        for (int64_t k = 0; k < R->d->inputs[i].n_heads; k++) {
            const struct ab_head_row *r = &R->d->inputs[i].heads[k];
            if (r->layer == l && r->head == hd && r->workload && !strcmp(r->workload, w))
                return r->retrieval_like != 0;
        }
    return -1;
}

/* qsort_r order of cells by score (ctx) descending, NaN last, then by index. */
static int cmp_score(const void *a, const void *b, void *ctx)
{
    const double *key = ctx;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    double x = key[i], y = key[j];
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;
    if (!isnan(x) && x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

/* Fills h from the first workload of the /heads table. AB_OK (h->workload NULL when there is
 * no table or no retrieval_score column) or AB_E_NOMEM. */
static int heads_load(const struct rep *R, struct rh_heads *h)
{
    const struct ab_heads_table *t = &R->d->heads;
    memset(h, 0, sizeof *h);
    int cs = column(t, "retrieval_score"), ci = column(t, "induction_score"),
        cf = column(t, "first_weight");
    if (!t->n || cs < 0) return AB_OK;
    const char *w = t->workload ? t->workload[0] : "";
    for (int64_t i = 0; i < t->n; i++)
        if (!strcmp(t->workload ? t->workload[i] : "", w) && t->layer[i] >= 0 && t->head[i] >= 0)
            h->L = AB_MAX(h->L, t->layer[i] + 1), h->H = AB_MAX(h->H, t->head[i] + 1);
    if (h->L * h->H <= 0 || h->L * h->H > 1 << 20) return AB_OK;
    size_t n = (size_t)(h->L * h->H);
    h->score = malloc(n * sizeof(double)), h->induction = malloc(n * sizeof(double));
    h->first_weight = malloc(n * sizeof(double)), h->like = malloc(n);
    h->order = malloc(n * sizeof(int64_t));
    if (!h->score || !h->induction || !h->first_weight || !h->like || !h->order) {
        heads_free(h);
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        h->score[i] = h->induction[i] = h->first_weight[i] = NAN;
        h->like[i] = -1, h->order[i] = (int64_t)i;
    }
    for (int64_t i = 0; i < t->n; i++) {
        if (strcmp(t->workload ? t->workload[i] : "", w) || t->layer[i] < 0 || t->head[i] < 0)
            continue;
        int64_t c = t->layer[i] * h->H + t->head[i];
        h->score[c] = t->col[cs][i];
        if (ci >= 0) h->induction[c] = t->col[ci][i];
        if (cf >= 0) h->first_weight[c] = t->col[cf][i];
        h->like[c] = (int8_t)like_of(R, w, t->layer[i], t->head[i]);
    }
    qsort_r(h->order, n, sizeof(int64_t), cmp_score, h->score);
    h->workload = w;
    return AB_OK;
}

/* The cells with a score above RETRIEVAL_MIN, by score (at most cap), their count. */
static int retrieval_heads(const struct rh_heads *h, int64_t *out, int cap)
{
    int n = 0;
    for (int64_t i = 0; i < h->L * h->H && n < cap; i++)
        if (h->score[h->order[i]] > RETRIEVAL_MIN) out[n++] = h->order[i];
    return n;
}

static void fmt3(char *buf, size_t cap, double x)
{
    if (isfinite(x))
        snprintf(buf, cap, "%.3f", x);
    else
        snprintf(buf, cap, "-");
}

/* "Which heads retrieve": one sentence and the table of the top heads. */
static void heads_md(const struct rh_heads *h, FILE *f)
{
    fputs("### Which heads retrieve\n\n", f);
    int64_t ret[64];
    int n_ret = retrieval_heads(h, ret, 64);
    fprintf(f,
            "On %s (the first workload of the /heads table, the one the ablation ranks), "
            "%d of %lld heads have a retrieval score above %g (the share of copy rows whose "
            "top-1 key is the token being copied; Wu et al.'s threshold)%s",
            base_name(h->workload), n_ret, (long long)(h->L * h->H), RETRIEVAL_MIN,
            n_ret ? ": " : ".");
    for (int i = 0; i < n_ret; i++)
        fprintf(f, "%sL%lld.H%lld (%.3f, induction %.3f)", i ? ", " : "",
                (long long)(ret[i] / h->H), (long long)(ret[i] % h->H), h->score[ret[i]],
                h->induction[ret[i]]);
    fputs(n_ret ? ".\n\n" : "\n\n", f);
    fputs("| rank | head | retrieval_score | induction_score | first_weight | retrieval_like |\n"
          "|---|---|---|---|---|---|\n",
          f);
    for (int i = 0; i < TOP_ROWS && i < h->L * h->H; i++) {
        int64_t c = h->order[i];
        char s[24], ind[24], fw[24];
        fmt3(s, sizeof s, h->score[c]), fmt3(ind, sizeof ind, h->induction[c]);
        fmt3(fw, sizeof fw, h->first_weight[c]);
        fprintf(f, "| %d | L%lld.H%lld | %s | %s | %s | %s |\n", i + 1, (long long)(c / h->H),
                (long long)(c % h->H), s, ind, fw,
                h->like[c] < 0 ? "-"
                : h->like[c]   ? "yes"
                               : "no");
    }
    fputs("\n", f);
}

/* retrieval-heads.{tsv,gp}: retrieval and induction score per head on one colour scale. */
static int heads_figure(struct rep *R, const struct rh_heads *h)
{
    char t0[160], t1[160], title[240];
    snprintf(t0, sizeof t0, "retrieval_score");
    snprintf(t1, sizeof t1, "induction_score");
    struct ab_gp_grid grids[2] = {{.title = t0, .rows = h->L, .cols = h->H, .v = h->score},
                                  {.title = t1, .rows = h->L, .cols = h->H, .v = h->induction}};
    snprintf(title, sizeof title, "Retrieval and induction score per head on %.100s",
             base_name(h->workload));
    struct ab_gp_heatmaps pl = {.name = "retrieval-heads",
                                .title = title,
                                .xlabel = "head",
                                .ylabel = "layer",
                                .cblabel = "score",
                                .shared_scale = 1,
                                .lo = 0,
                                .hi = 1,
                                .n_grids = 2,
                                .grids = grids,
                                .width = 1000};
    int rc = ab_gp_heatmaps_write(R->o->dir, &pl);
    if (rc != AB_OK) return rc;
    ab_rep_announce_pair(R, "retrieval-heads");
    return ab_rep_add_fig(R, SEC_STUDY, 1, "retrieval-heads.png",
                          "Retrieval score (left: share of copy rows whose top-1 key is the "
                          "token being copied) and induction score (right: mass on the key "
                          "after an earlier copy of the query's token) of every head of %s, "
                          "layers down, heads across, on one scale from 0 to 1.",
                          base_name(h->workload));
}

/* ------------------------------------------------------------------ the ablation */

struct rh_abl {
    int n_k;
    int k[MAX_K]; /* ascending */
    double acc[MAX_K][N_CH], ppl[MAX_K][N_CH];
    int n_acc[MAX_K][N_CH], n_ppl[MAX_K][N_CH];
    double dense_acc, dense_ppl;
    const char *copy_in, *text_in, *phase, *model;
    char seeds[64];       /* the random choices' seeds as written */
    const char *low_list; /* head_list of the lowest choice with the largest K */
    int low_k;
    int other_score; /* rows ranked by another column (left out) */
};

/* The choice and K of a `heads` column ("top K by retrieval_score", "random K (seed S)",
 * "bottom K by retrieval_score"), or -1. */
static int choice_of(const char *heads, int *k, struct rh_abl *A)
{
    char col[64], tail;
    unsigned long long seed;
    if (!heads) return -1;
    if (sscanf(heads, "top %d by %63s%c", k, col, &tail) == 2 ||
        sscanf(heads, "bottom %d by %63s%c", k, col, &tail) == 2) {
        if (strcmp(col, "retrieval_score")) return A->other_score++, -1;
        return heads[0] == 't' ? CH_TOP : CH_LOW;
    }
    if (sscanf(heads, "random %d (seed %llu%c", k, &seed, &tail) == 3 && tail == ')') {
        char s[24];
        snprintf(s, sizeof s, "%llu", seed);
        if (!strstr(A->seeds, s) && strlen(A->seeds) + strlen(s) + 3 < sizeof A->seeds)
            snprintf(A->seeds + strlen(A->seeds), sizeof A->seeds - strlen(A->seeds), "%s%s",
                     A->seeds[0] ? ", " : "", s);
        return CH_RANDOM;
    }
    return -1;
}

static int k_index(struct rh_abl *A, int k)
{
    int i = 0;
    while (i < A->n_k && A->k[i] < k) i++;
    if (i < A->n_k && A->k[i] == k) return i;
    if (A->n_k == MAX_K) return -1;
    memmove(&A->k[i + 1], &A->k[i], sizeof(int) * (size_t)(A->n_k - i));
    memmove(&A->acc[i + 1], &A->acc[i], sizeof A->acc[0] * (size_t)(A->n_k - i));
    memmove(&A->ppl[i + 1], &A->ppl[i], sizeof A->ppl[0] * (size_t)(A->n_k - i));
    memmove(&A->n_acc[i + 1], &A->n_acc[i], sizeof A->n_acc[0] * (size_t)(A->n_k - i));
    memmove(&A->n_ppl[i + 1], &A->n_ppl[i], sizeof A->n_ppl[0] * (size_t)(A->n_k - i));
    A->k[i] = k;
    for (int c = 0; c < N_CH; c++)
        A->acc[i][c] = A->ppl[i][c] = 0, A->n_acc[i][c] = A->n_ppl[i][c] = 0;
    A->n_k++;
    return i;
}

/* The uniform-head rows of the inputs (of the first phase found), averaged per (K, choice):
 * copy_acc on a copy-task input, ppl on a text input. */
static void abl_collect(const struct rep *R, struct rh_abl *A)
{
    memset(A, 0, sizeof *A);
    A->dense_acc = A->dense_ppl = NAN;
    for (int i = 0; i < R->d->n_inputs; i++)
        for (int64_t j = 0; j < R->d->inputs[i].n_model; j++) {
            const struct ab_model_row *r = &R->d->inputs[i].model[j];
            if (strcmp(r->method, "uniform-head") || !ab_rep_keep(R, r->method, r->family))
                continue;
            if (A->phase && strcmp(A->phase, r->phase)) continue;
            int k, ch = choice_of(r->heads, &k, A), ki;
            if (ch < 0 || k < 1 || (ki = k_index(A, k)) < 0) continue;
            A->phase = r->phase, A->model = r->model;
            if (ch == CH_LOW && k > A->low_k) A->low_k = k, A->low_list = r->head_list;
            int copy = isfinite(r->copy_acc) || isfinite(r->dense_copy_acc);
            if (copy) {
                if (!A->copy_in) A->copy_in = r->workload, A->dense_acc = r->dense_copy_acc;
                if (strcmp(A->copy_in, r->workload) || !isfinite(r->copy_acc)) continue;
                A->acc[ki][ch] += r->copy_acc, A->n_acc[ki][ch]++;
            } else {
                if (!A->text_in) A->text_in = r->workload, A->dense_ppl = r->dense_ppl;
                if (strcmp(A->text_in, r->workload) || !isfinite(r->ppl)) continue;
                A->ppl[ki][ch] += r->ppl, A->n_ppl[ki][ch]++;
            }
        }
    for (int ki = 0; ki < A->n_k; ki++)
        for (int c = 0; c < N_CH; c++) {
            A->acc[ki][c] = A->n_acc[ki][c] ? A->acc[ki][c] / A->n_acc[ki][c] : NAN;
            A->ppl[ki][c] = A->n_ppl[ki][c] ? A->ppl[ki][c] / A->n_ppl[ki][c] : NAN;
        }
}

static void cell(FILE *f, const char *fmt, double x)
{
    if (isfinite(x)) {
        fputs(" ", f);
        fprintf(f, fmt, x);
        fputs(" |", f);
    } else {
        fputs(" - |", f);
    }
}

static void abl_table(const struct rh_abl *A, FILE *f)
{
    fprintf(f, "| K heads masked | copy_acc: top K | random K | lowest K | ppl: top K | random "
               "K | lowest K |\n|---|---|---|---|---|---|---|\n| none (dense) |");
    cell(f, "%.3f", A->dense_acc);
    fputs(" | |", f);
    cell(f, "%.4g", A->dense_ppl);
    fputs(" | |\n", f);
    for (int ki = 0; ki < A->n_k; ki++) {
        fprintf(f, "| %d |", A->k[ki]);
        for (int c = 0; c < N_CH; c++) cell(f, "%.3f", A->acc[ki][c]);
        for (int c = 0; c < N_CH; c++) cell(f, "%.4g", A->ppl[ki][c]);
        fputc('\n', f);
    }
    fputc('\n', f);
}

/* One sentence per K: does masking the top K drop copy accuracy where K random heads do not. */
static void abl_copy_findings(const struct rh_abl *A, FILE *f)
{
    if (!A->copy_in) {
        fputs("No copy-task rows (copy_acc) among them: what masking the retrieval heads "
              "costs on copying cannot be stated.\n\n",
              f);
        return;
    }
    int n_hold = 0, n_cmp = 0;
    for (int ki = 0; ki < A->n_k; ki++) {
        double top = A->acc[ki][CH_TOP], rnd = A->acc[ki][CH_RANDOM], low = A->acc[ki][CH_LOW];
        int k = A->k[ki];
        if (!isfinite(top)) continue;
        n_cmp++;
        int drop = top < A->dense_acc - DROP_MIN && (!isfinite(rnd) || top < rnd - DROP_MIN);
        n_hold += drop;
        fprintf(f,
                "- K = %d: masking the top-%d retrieval head%s %s copy accuracy from %.3f to "
                "%.3f",
                k, k, k == 1 ? "" : "s", drop ? "drops" : "changes", A->dense_acc, top);
        if (isfinite(rnd))
            fprintf(f, " while %d random head%s leave%s %.3f", k, k == 1 ? "" : "s",
                    k == 1 ? "s" : "", rnd);
        if (isfinite(low)) fprintf(f, " (the %d lowest: %.3f)", k, low);
        if (!drop)
            fprintf(f,
                    ": no drop of more than %.2f below dense%s, so the finding does not hold "
                    "at K = %d",
                    DROP_MIN, isfinite(rnd) ? " and random" : "", k);
        fputs(".\n", f);
    }
    if (!n_cmp)
        fputs("- No top-K row has a copy accuracy: the finding cannot be checked.\n", f);
    else
        fprintf(f, "\nThe finding holds at %d of %d K.\n", n_hold, n_cmp);
    fputc('\n', f);
}

/* The perplexity side in one sentence (and one more when masking lowers perplexity). */
static void abl_ppl_finding(const struct rh_abl *A, FILE *f)
{
    if (!A->text_in) {
        fputs("No text-input rows: the ablation's cost in perplexity cannot be stated.\n\n", f);
        return;
    }
    fprintf(f, "On %s perplexity (dense %.4g) is ", base_name(A->text_in), A->dense_ppl);
    for (int c = 0; c < N_CH; c++) {
        fprintf(f, "%s",
                c == 0   ? ""
                : c == 1 ? "; with K random heads masked "
                         : "; with the K "
                           "lowest ");
        for (int ki = 0; ki < A->n_k; ki++)
            if (isfinite(A->ppl[ki][c]))
                fprintf(f, "%s%.4g", ki ? ", " : "", A->ppl[ki][c]);
            else
                fprintf(f, "%s-", ki ? ", " : "");
        if (c == 0) fputs(" with the top K masked", f);
    }
    fputs(" (K = ", f);
    for (int ki = 0; ki < A->n_k; ki++) fprintf(f, "%s%d", ki ? ", " : "", A->k[ki]);
    fputs(").", f);
    int below = 0;
    for (int ki = 0; ki < A->n_k; ki++)
        for (int c = 0; c < N_CH; c++) below += A->ppl[ki][c] < A->dense_ppl;
    if (below) {
        fputs(" Masking lowers perplexity below dense at", f);
        int n = 0;
        for (int ki = 0; ki < A->n_k; ki++)
            for (int c = 0; c < N_CH; c++)
                if (A->ppl[ki][c] < A->dense_ppl)
                    fprintf(f, "%s %s %d (%.4g)", n++ ? "," : "", ch_name[c], A->k[ki],
                            A->ppl[ki][c]);
        fputs(".", f);
    }
    fputs("\n\n", f);
}

/* retrieval-ablation.{tsv,gp}: copy accuracy and perplexity per K and choice, dense dashed. */
static int abl_figure(struct rep *R, const struct rh_abl *A)
{
    static const char *const titles[N_CH] = {"top K by retrieval score", "K random heads",
                                             "K lowest by retrieval score"};
    static const int colours[N_CH] = {3, 0, 2}; /* red, blue, green of the style table */
    char labels[MAX_K][16], t0[160], t1[160], title[200];
    const char *lab[MAX_K];
    double acc[MAX_K * N_CH], ppl[MAX_K * N_CH], lo = INFINITY, hi = -INFINITY;
    for (int ki = 0; ki < A->n_k; ki++) {
        snprintf(labels[ki], sizeof labels[0], "K = %d", A->k[ki]);
        lab[ki] = labels[ki];
        for (int c = 0; c < N_CH; c++) {
            acc[ki * N_CH + c] = A->acc[ki][c], ppl[ki * N_CH + c] = A->ppl[ki][c];
            if (A->ppl[ki][c] > 0) lo = fmin(lo, A->ppl[ki][c]), hi = fmax(hi, A->ppl[ki][c]);
        }
    }
    snprintf(t0, sizeof t0, "copy accuracy on %.60s", A->copy_in ? base_name(A->copy_in) : "-");
    snprintf(t1, sizeof t1, "perplexity on %.60s", A->text_in ? base_name(A->text_in) : "-");
    struct ab_gp_bar_panel pan[2] = {{.title = t0,
                                      .xlabel = "heads masked (uniform attention)",
                                      .ylabel = "top-1 accuracy on the second copy",
                                      .ymin = 0,
                                      .ymax = 1.12,
                                      .n_groups = A->n_k,
                                      .group_labels = lab,
                                      .v = acc,
                                      .ref = A->dense_acc,
                                      .fmt = "%.2f"},
                                     {.title = t1,
                                      .xlabel = "heads masked (uniform attention)",
                                      .ylabel = "perplexity",
                                      .logy = hi / lo > 20,
                                      .ymin = NAN,
                                      .ymax = NAN,
                                      .n_groups = A->n_k,
                                      .group_labels = lab,
                                      .v = ppl,
                                      .ref = A->dense_ppl}};
    snprintf(title, sizeof title, "Masking heads of %.60s by retrieval score (uniform-head)",
             A->model ? base_name(A->model) : "the model");
    struct ab_gp_bars fig = {.name = "retrieval-ablation",
                             .title = title,
                             .n_series = N_CH,
                             .series_titles = titles,
                             .series_colours = colours,
                             .ref_title = "dense (nothing masked)",
                             .rows = 1,
                             .cols = 2,
                             .n_panels = 2,
                             .panels = pan,
                             .width = 1300,
                             .height = 520};
    int rc = ab_gp_bars_write(R->o->dir, &fig);
    if (rc != AB_OK) return rc;
    ab_rep_announce_pair(R, "retrieval-ablation");
    return ab_rep_add_fig(R, SEC_STUDY, 1, "retrieval-ablation.png",
                          "Every query of the masked heads attends uniformly (uniform-head): the "
                          "top K heads by retrieval score, K random heads and the K lowest; copy "
                          "accuracy on the copy task (left) and perplexity on the text (right), "
                          "the dashed line dense.");
}

/* When the lowest scores tie among more heads than the largest K: one sentence saying the K
 * lowest are a pick among equals, with the heads the largest-K row masked. */
static void abl_ties(const struct rh_heads *h, const struct rh_abl *A, FILE *f)
{
    double lo = INFINITY;
    int64_t n_tie = 0;
    for (int64_t c = 0; c < h->L * h->H; c++)
        if (isfinite(h->score[c])) lo = fmin(lo, h->score[c]);
    for (int64_t c = 0; c < h->L * h->H; c++) n_tie += h->score[c] == lo;
    int k_max = 0;
    for (int ki = 0; ki < A->n_k; ki++)
        if (A->n_acc[ki][CH_LOW] || A->n_ppl[ki][CH_LOW]) k_max = A->k[ki];
    if (!k_max || n_tie <= k_max) return;
    fprintf(f,
            "The lowest retrieval scores tie: %lld of %lld heads score %.3f on %s, so the K "
            "lowest are a pick among equals",
            (long long)n_tie, (long long)(h->L * h->H), lo, base_name(h->workload));
    if (A->low_list && *A->low_list) {
        fprintf(f, " (for K = %d the rows mask ", k_max);
        int l, hd, used, k = 0;
        for (const char *p = A->low_list; sscanf(p, "%d:%d%n", &l, &hd, &used) == 2; p += used)
            fprintf(f, "%sL%d.H%d", k++ ? ", " : "", l, hd);
        fputc(')', f);
    }
    fputs(".\n\n", f);
}

static int ablation(struct rep *R, FILE *f, const struct rh_heads *h)
{
    fputs("### The ablation\n\n", f);
    struct rh_abl *A = malloc(sizeof *A);
    if (!A) return ab_fail(AB_E_NOMEM, "out of memory");
    abl_collect(R, A);
    int rc = AB_OK;
    if (!A->n_k) {
        fprintf(f,
                "No /model rows of uniform-head on the top, random or bottom K heads by "
                "retrieval_score among the inputs%s, so what masking them costs cannot be "
                "stated.\n\n",
                A->other_score ? " (some rank the heads by another column)" : "");
        free(A);
        return AB_OK;
    }
    fprintf(f,
            "Every query of the masked heads attends uniformly (`uniform-head`, %s), "
            "end to end in %s: copy accuracy on %s, perplexity on %s; random heads drawn "
            "with seed %s.\n\n",
            A->phase, A->model ? base_name(A->model) : "the model",
            A->copy_in ? base_name(A->copy_in) : "(none)",
            A->text_in ? base_name(A->text_in) : "(none)", A->seeds[0] ? A->seeds : "-");
    abl_table(A, f);
    abl_copy_findings(A, f);
    abl_ppl_finding(A, f);
    if (h) abl_ties(h, A, f);
    rc = abl_figure(R, A);
    free(A);
    return rc;
}

/* ------------------------------------------------------------------ DuoAttention's split */

static void head_list(FILE *f, const int64_t *c, int n, int64_t H)
{
    for (int i = 0; i < n; i++)
        fprintf(f, "%sL%lld.H%lld", i ? ", " : "", (long long)(c[i] / H), (long long)(c[i] % H));
}

/* Whether duo has cells at (workload w, phase pi, target ti): 0 none, 1 some feasible, 2 every
 * one infeasible (*reason: the first recorded reason, or NULL). */
static int duo_state(const struct rep *R, int mi, int w, int pi, int ti, const char **reason)
{
    int64_t n = 0, n_inf = 0;
    *reason = NULL;
    for (int64_t c = 0; c < R->r->n_cells; c++) {
        if (R->cm[c] != mi || R->cw[c] != w || R->cp[c] != pi || R->ct[c] != ti) continue;
        const struct ab_cell *cell = &R->r->cells[c];
        n++;
        if (cell->feasible) continue;
        n_inf++;
        if (!*reason && cell->reason && *cell->reason) *reason = cell->reason;
    }
    return !n ? 0 : n_inf == n ? 2 : 1;
}

/* Which of the retrieval heads ret[0..n_ret) are among the duo cells of workload w, phase pi,
 * target ti (some feasible) kept whole; one clause. */
static void duo_budget(const struct rep *R, int mi, int w, int pi, int ti, const struct rh_heads *h,
                       const int64_t *ret, int n_ret, FILE *f)
{
    int64_t n = 0, whole[256], n_whole = 0;
    int8_t *is_whole = calloc((size_t)(h->L * h->H), 1);
    for (int64_t c = 0; c < R->r->n_cells; c++) {
        const struct ab_cell *cell = &R->r->cells[c];
        if (R->cm[c] != mi || R->cw[c] != w || R->cp[c] != pi || R->ct[c] != ti) continue;
        n++;
        if (!cell->feasible) continue;
        if (!(cell->flop_ratio_step >= WHOLE_MIN)) continue;
        if (n_whole < 256) whole[n_whole++] = cell->layer * h->H + cell->head;
        if (is_whole && cell->layer < h->L && cell->head < h->H)
            is_whole[cell->layer * h->H + cell->head] = 1;
    }
    char rl[32];
    ab_ratio_label(R->t[ti], rl, sizeof rl);
    if (!n_whole) {
        fprintf(f, "at %s it keeps no head whole (every head on sinks + window)%s", rl,
                n_ret ? ", none of the retrieval heads" : "");
    } else {
        fprintf(f, "at %s it keeps %lld of %lld heads whole (", rl, (long long)n_whole,
                (long long)n);
        head_list(f, whole, (int)n_whole, h->H);
        int n_kept = 0;
        for (int i = 0; i < n_ret && is_whole; i++) n_kept += is_whole[ret[i]];
        fprintf(f, "): %d of the %d retrieval heads", n_kept, n_ret);
        if (n_kept < n_ret) {
            int64_t missed[64];
            int n_m = 0;
            for (int i = 0; i < n_ret && is_whole; i++)
                if (!is_whole[ret[i]]) missed[n_m++] = ret[i];
            fputs(", missing ", f);
            head_list(f, missed, n_m, h->H);
        }
    }
    free(is_whole);
}

static void duo_md(const struct rep *R, const struct rh_heads *h, FILE *f)
{
    fputs("### DuoAttention's split\n\n", f);
    int64_t ret[64];
    int n_ret = retrieval_heads(h, ret, 64);
    /* the proxy label of the /heads table */
    int64_t like[256];
    int n_like = 0, known = 0;
    for (int64_t c = 0; c < h->L * h->H; c++) {
        known |= h->like[c] >= 0;
        if (h->like[c] == 1 && n_like < 256) like[n_like++] = c;
    }
    if (!known) {
        fputs("The /heads table carries no retrieval_like label (DuoAttention's proxy), so it "
              "cannot be compared. ",
              f);
    } else {
        int both = 0;
        for (int i = 0; i < n_ret; i++) both += h->like[ret[i]] == 1;
        fprintf(f,
                "DuoAttention's proxy label retrieval_like (the heads a sink + window cache "
                "serves worst, by out_dev) marks %d heads on %s%s",
                n_like, base_name(h->workload), n_like ? " (" : "");
        head_list(f, like, n_like, h->H);
        fprintf(f, "%s: %d of the %d retrieval heads. ", n_like ? ")" : "", both, n_ret);
    }
    int mi = ab_rep_find_method(R, "duo");
    if (mi < 0) {
        fputs("The results have no duo cells (`run` with duo), so the heads DuoAttention keeps "
              "whole cannot be compared.\n\n",
              f);
        return;
    }
    fprintf(f,
            "duo keeps a head whole when its per-step FLOP ratio is at least %g (full "
            "attention; the others read sinks + window).\n\n",
            WHOLE_MIN);
    for (int w = 0; w < R->n_w; w++)
        for (int pi = 0; pi < R->n_p; pi++) {
            int any = 0;
            for (int ti = 0; ti < R->n_t; ti++) { /* budgets descending */
                const char *why, *why2;
                int st = duo_state(R, mi, w, pi, ti, &why);
                if (!st) continue;
                fprintf(f, any++ ? "; " : "- **%s, %s:** ", base_name(R->wname[w]), R->phase[pi]);
                if (st == 1) {
                    duo_budget(R, mi, w, pi, ti, h, ret, n_ret, f);
                    continue;
                }
                /* infeasible: one clause for the next budgets infeasible for the same reason */
                int last = ti;
                while (last + 1 < R->n_t && duo_state(R, mi, w, pi, last + 1, &why2) == 2 &&
                       (why == why2 || (why && why2 && !strcmp(why, why2))))
                    last++;
                fputs("at ", f);
                for (int k = ti; k <= last; k++) {
                    char rl[32];
                    ab_ratio_label(R->t[k], rl, sizeof rl);
                    fprintf(f, "%s%s", k == ti ? "" : k == last ? " and " : ", ", rl);
                }
                fprintf(f, " duo is infeasible (%s)", why ? why : "no reason recorded");
                ti = last;
            }
            if (any) fputs(".\n", f);
        }
    fputc('\n', f);
}

/* ------------------------------------------------------------------ maps */

/* Whether the report's map workload is the ranked workload w (same path, or the digest the
 * inputs record for w). */
static int wl_is(const struct rep *R, const char *w)
{
    if (!R->have_wl) return 0;
    if (!strcmp(R->wl_path, w)) return 1;
    for (int i = 0; i < R->d->n_inputs; i++)
        for (int64_t k = 0; k < R->d->inputs[i].n_workloads; k++)
            if (!strcmp(R->d->inputs[i].workloads[k], w) && R->d->inputs[i].workload_sha256 &&
                R->d->inputs[i].workload_sha256[k] &&
                !strcmp(R->d->inputs[i].workload_sha256[k], R->wl_digest))
                return 1;
    return 0;
}

/* The exact map of cell c of h as <stem>-L<l>-H<h>.png, added to SEC_STUDY. */
static int one_map(struct rep *R, const struct rh_heads *h, int64_t c, const char *stem,
                   const char *why)
{
    int64_t L = c / h->H, H = c % h->H;
    if (L >= R->wl.n_layer || H >= R->wl.n_head) return AB_OK;
    char name[96], file[120];
    snprintf(name, sizeof name, "%s-L%lld-H%lld", stem, (long long)L, (long long)H);
    int rc = ab_map_figure_write(R->wl_path, &R->wl, L, H, R->o->map_size, R->o->map_floor,
                                 R->o->dir, name);
    if (rc != AB_OK) return rc;
    snprintf(file, sizeof file, "%s.bin", name);
    ab_rep_announce(R, file);
    snprintf(file, sizeof file, "%s.gp", name);
    ab_rep_announce(R, file);
    snprintf(file, sizeof file, "%s.png", name);
    return ab_rep_add_fig(R, SEC_STUDY, 1, file,
                          "Layer %lld head %lld of %s, %s: exact attention (log colour scale "
                          "from %g to 1, max-pooled to at most %lld px per side).",
                          (long long)L, (long long)H, base_name(R->wl_path), why, R->o->map_floor,
                          (long long)AB_MIN(R->o->map_size, R->wl.n_seq));
}

static int maps_md(struct rep *R, const struct rh_heads *h, FILE *f)
{
    fputs("### Attention maps\n\n", f);
    if (!wl_is(R, h->workload)) {
        if (R->have_wl)
            fprintf(f,
                    "No map: the report's workload (%s) is not %s, whose heads are ranked "
                    "here; give that one with --workload.\n\n",
                    base_name(R->wl_path), h->workload);
        else
            fprintf(f,
                    "No map: the report has no workload to draw (none given, none recorded "
                    "and readable); give %s with --workload.\n\n",
                    h->workload);
        return AB_OK;
    }
    int64_t top = h->order[0], sink = -1;
    for (int64_t c = 0; c < h->L * h->H; c++)
        if (isfinite(h->first_weight[c]) &&
            (sink < 0 || h->first_weight[c] > h->first_weight[sink]))
            sink = c;
    char why[160];
    snprintf(why, sizeof why, "the strongest retrieval head (retrieval score %.3f)", h->score[top]);
    fprintf(f, "The exact attention of the strongest retrieval head, L%lld.H%lld, on %s",
            (long long)(top / h->H), (long long)(top % h->H), base_name(R->wl_path));
    if (sink >= 0 && sink != top)
        fprintf(f,
                ", and of the strongest sink head, L%lld.H%lld (first-token weight %.3f), "
                "are drawn after the findings.\n\n",
                (long long)(sink / h->H), (long long)(sink % h->H), h->first_weight[sink]);
    else if (sink == top)
        fprintf(f,
                ", also the strongest sink head (first-token weight %.3f), is drawn after "
                "the findings.\n\n",
                h->first_weight[sink]);
    else
        fputs(" is drawn after the findings.\n\n", f);
    int rc = isfinite(h->score[top]) ? one_map(R, h, top, "retrieval-map", why) : AB_OK;
    if (rc == AB_OK && sink >= 0 && sink != top) {
        snprintf(why, sizeof why, "the strongest sink head (first-token weight %.3f)",
                 h->first_weight[sink]);
        rc = one_map(R, h, sink, "sink-map", why);
    }
    return rc;
}

/* ------------------------------------------------------------------ the section */

int ab_rep_study_retrieval_heads(struct rep *R, FILE *f)
{
    fputs("## Findings: retrieval heads and DuoAttention's split\n\n"
          "Wu et al. (\"Retrieval Head Mechanistically Explains Long-Context Factuality\", "
          "arXiv 2404.15574) find a few heads that copy the token they attend to (retrieval "
          "heads): masking them breaks retrieval while masking random heads does not. "
          "DuoAttention (Xiao et al., arXiv 2410.10819) keeps the whole KV cache only in such "
          "heads and serves the others with sinks + a window.\n\n",
          f);
    struct rh_heads h;
    int rc = heads_load(R, &h);
    if (rc != AB_OK) return rc;
    if (!h.workload) {
        fputs("### Which heads retrieve\n\nNot known: no input has a /heads table with "
              "retrieval_score (`attnbench heads` on the copy-task capture writes it); the "
              "ranking, DuoAttention's comparison and the maps need it.\n\n",
              f);
        rc = ablation(R, f, NULL);
    } else {
        heads_md(&h, f);
        if (!(rc = heads_figure(R, &h)) && !(rc = ablation(R, f, &h))) {
            duo_md(R, &h, f);
            rc = maps_md(R, &h, f);
        }
    }
    fputs("Reproduce: `attnbench scenario scenarios/retrieval-heads.yaml`", f);
    if (R->o->command_line) fprintf(f, "; this report: `%s`", R->o->command_line);
    fputs(".\n\n", f);
    heads_free(&h);
    return rc;
}
