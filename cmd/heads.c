/* heads.c - `attnbench heads`: the per-head statistics of metrics.md ("Head and sink
 * statistics") for every (layer, head) of the given workloads, written as the /heads table of a
 * results file with RESULTS-heads.csv next to it, and a short summary on stdout (sink ratio,
 * retrieval-like heads, the most dormant heads and, when profiles were planted, the confusion
 * table of planted profile against the strongest of retrieval score, first-token weight and
 * locality). Workloads are checked before any work starts and read one at a time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "heads/stats.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text =
    "attnbench heads WORKLOAD.h5... [--epsilon 0.3] [--window 64] [--top-fraction 0.1]\n"
    "                -o RESULTS.h5";

enum { MAX_WORKLOADS = 64 };

/* The label a head's statistics point to: the largest of retrieval score, first-token weight
 * and locality, each divided by its maximum over all heads (raw values favour the sink: a
 * streaming head's first-token weight often exceeds its locality). */
static const char *const label_names[3] = {"retrieval", "dormant", "streaming"};

static void stat_values(const struct ab_head_row *r, double v[3])
{
    v[0] = isnan(r->retrieval_score) ? 0 : r->retrieval_score;
    v[1] = r->first_weight;
    v[2] = r->locality;
}

static int head_label(const struct ab_head_row *r, const double max[3])
{
    double v[3];
    stat_values(r, v);
    int best = 0;
    for (int k = 0; k < 3; k++) v[k] = max[k] > 0 ? v[k] / max[k] : 0;
    for (int k = 1; k < 3; k++)
        if (v[k] > v[best]) best = k;
    return best;
}

/* Confusion table of planted profile (rows, in order of first appearance) against label. */
static void print_confusion(const struct ab_results *r)
{
    const char *prof[64];
    int64_t count[64][3] = {{0}};
    int n_prof = 0;
    double max[3] = {0, 0, 0}, v[3];
    for (int64_t i = 0; i < r->n_heads; i++) {
        stat_values(&r->heads[i], v);
        for (int k = 0; k < 3; k++) max[k] = v[k] > max[k] ? v[k] : max[k];
    }
    for (int64_t i = 0; i < r->n_heads; i++) {
        const char *p = r->heads[i].profile;
        if (!p || !*p) continue;
        int k = 0;
        while (k < n_prof && strcmp(prof[k], p)) k++;
        if (k == n_prof) {
            if (n_prof == 64) continue;
            prof[n_prof++] = p;
        }
        count[k][head_label(&r->heads[i], max)]++;
    }
    if (!n_prof) return;
    printf("planted profile vs argmax(retrieval_score, first_weight, locality), each / its max:\n");
    printf("  %-16s %9s %9s %9s\n", "profile", label_names[0], label_names[1], label_names[2]);
    for (int k = 0; k < n_prof; k++)
        printf("  %-16s %9lld %9lld %9lld\n", prof[k], (long long)count[k][0],
               (long long)count[k][1], (long long)count[k][2]);
}

static void print_summary(const struct ab_results *r, double epsilon)
{
    int64_t like = 0, ret = 0, sinks = 0;
    for (int64_t i = 0; i < r->n_heads; i++) {
        like += r->heads[i].retrieval_like;
        ret += r->heads[i].retrieval_head;
        sinks += r->heads[i].sink_score > epsilon;
    }
    printf("sink ratio at epsilon %g: %.1f%% (%lld of %lld heads)\n", epsilon,
           ab_heads_sink_ratio(r->heads, r->n_heads, epsilon), (long long)sinks,
           (long long)r->n_heads);
    printf("retrieval-like heads (top fraction by output deviation): %lld\n", (long long)like);
    printf("retrieval heads (retrieval score > 0.1): %lld\n", (long long)ret);
    /* the five most dormant heads: largest first-token weight */
    int64_t top[5];
    int n_top = 0;
    for (; n_top < 5 && n_top < r->n_heads; n_top++) {
        int64_t best = -1;
        for (int64_t i = 0; i < r->n_heads; i++) {
            int taken = 0;
            for (int k = 0; k < n_top; k++) taken |= top[k] == i;
            if (!taken && (best < 0 || r->heads[i].first_weight > r->heads[best].first_weight))
                best = i;
        }
        top[n_top] = best;
    }
    printf("most dormant heads (first-token weight):");
    for (int k = 0; k < n_top; k++)
        printf(" L%lld.H%lld %.3f", (long long)r->heads[top[k]].layer,
               (long long)r->heads[top[k]].head, r->heads[top[k]].first_weight);
    printf("\n");
    /* with tokens (gen --probe repeat): the strongest echo and induction heads */
    int64_t echo = -1, ind = -1;
    for (int64_t i = 0; i < r->n_heads; i++) {
        const struct ab_head_row *h = &r->heads[i];
        if (!isnan(h->echo_score) && (echo < 0 || h->echo_score > r->heads[echo].echo_score))
            echo = i;
        if (!isnan(h->induction_score) &&
            (ind < 0 || h->induction_score > r->heads[ind].induction_score))
            ind = i;
    }
    if (echo >= 0 && ind >= 0)
        printf("strongest echo head L%lld.H%lld %.3f, induction head L%lld.H%lld %.3f\n",
               (long long)r->heads[echo].layer, (long long)r->heads[echo].head,
               r->heads[echo].echo_score, (long long)r->heads[ind].layer,
               (long long)r->heads[ind].head, r->heads[ind].induction_score);
    print_confusion(r);
}

/* Appends rows[0..n) to r->heads (taking ownership of their strings; rows freed). */
static int append_rows(struct ab_results *r, struct ab_head_row *rows, int64_t n)
{
    struct ab_head_row *grown =
        realloc(r->heads, sizeof *r->heads * (size_t)(r->n_heads + n > 0 ? r->n_heads + n : 1));
    if (!grown) {
        for (int64_t i = 0; i < n; i++) free(rows[i].workload), free(rows[i].profile);
        free(rows);
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    memcpy(grown + r->n_heads, rows, sizeof *rows * (size_t)n);
    r->heads = grown;
    r->n_heads += n;
    free(rows);
    return AB_OK;
}

int cmd_heads(int argc, char **argv)
{
    const char *out = NULL;
    double epsilon = 0.3, top_fraction = 0.1;
    struct ab_heads_opts ho;
    ab_heads_defaults(&ho);
    int64_t window = ho.window;
    const struct ab_opt opts[] = {
        {"epsilon", AB_OPT_DOUBLE, &epsilon, "E",
         "sink ratio threshold on alpha(0), in [0, 1) (default 0.3)"},
        {"window", AB_OPT_INT, &window, "W", "locality window w in positions (default 64)"},
        {"top-fraction", AB_OPT_DOUBLE, &top_fraction, "F",
         "share of heads labelled retrieval-like, in [0, 1] (default 0.1)"},
        {"o", AB_OPT_STRING, &out, "FILE",
         "results file to write (.h5; RESULTS-heads.csv goes next to it)"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[MAX_WORKLOADS];
    int n_pos,
        st = ab_opts_parse("heads", usage_text, opts, argc, argv, pos, MAX_WORKLOADS, &n_pos);
    if (st >= 0) return st;
    if (n_pos == 0) return ab_cmd_error(EX_AB_USAGE, "heads: name at least one workload file");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "heads: name the results file with -o");
    if (!(epsilon >= 0 && epsilon < 1))
        return ab_cmd_error(EX_AB_USAGE, "heads: --epsilon must be in [0, 1), got %g", epsilon);
    if (window < 1) return ab_cmd_error(EX_AB_USAGE, "heads: --window must be positive");
    if (!(top_fraction >= 0 && top_fraction <= 1))
        return ab_cmd_error(EX_AB_USAGE, "heads: --top-fraction must be in [0, 1], got %g",
                            top_fraction);
    ho.window = window;

    char csv[4096];
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(csv, sizeof csv, "%.*s-heads.csv", (int)len, out);

    /* every workload must be readable before any work starts */
    int rc;
    for (int i = 0; i < n_pos; i++) {
        struct ab_workload meta = {0};
        rc = ab_h5_workload_read_meta(pos[i], &meta);
        ab_workload_free(&meta);
        if (rc) return ab_cmd_fail(rc);
    }

    struct ab_results res;
    ab_results_init(&res);
    st = EX_AB_OK;
    if ((rc = ab_results_provenance(&res, argc, argv, pos, n_pos, ab_common.seed)))
        st = ab_cmd_fail(rc);
    if (st == EX_AB_OK) {
        char notes[512];
        snprintf(notes, sizeof notes,
                 "heads: exact attention; locality w %lld; sinks alpha > %g; out_dev under sink "
                 "%lld + recent %lld; distant mass outside the first %lld and last %lld keys; "
                 "retrieval_like: top %g of heads by out_dev; sink ratio epsilon %g",
                 (long long)ho.window, ho.sink_threshold, (long long)ho.stream_sink,
                 (long long)ho.stream_recent, (long long)ho.distant_first,
                 (long long)ho.distant_last, top_fraction, epsilon);
        res.notes = strdup(notes);
    }
    double t0 = ab_now();
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++) {
        struct ab_workload w = {0};
        struct ab_head_row *rows = NULL;
        int64_t n = 0;
        if ((rc = ab_h5_workload_read(pos[i], &w)) ||
            (rc = ab_heads_workload(&w, pos[i], &ho, &rows, &n)) ||
            (rc = append_rows(&res, rows, n)))
            st = ab_cmd_fail(rc);
        ab_workload_free(&w);
    }
    if (st == EX_AB_OK) ab_heads_label(res.heads, res.n_heads, top_fraction);
    if (st == EX_AB_OK && (rc = ab_results_write_h5(out, &res))) st = ab_cmd_fail(rc);
    if (st == EX_AB_OK && (rc = ab_results_write_heads_csv(csv, &res))) {
        st = ab_cmd_fail(rc);
        unlink(out); /* all or nothing */
    }
    if (st == EX_AB_OK) {
        if (!ab_common.quiet) print_summary(&res, epsilon);
        fflush(stdout);
        fprintf(stderr, "%lld heads in %.1f s\n", (long long)res.n_heads, ab_now() - t0);
        printf("%s\n%s\n", out, csv);
    }
    ab_results_free(&res);
    return st;
}
