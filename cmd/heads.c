/* heads.c - `attnbench heads`: the per-head statistics of metrics.md ("Head and sink
 * statistics") for every (layer, head) of the given workloads, written as the /heads table of a
 * results file with RESULTS-heads.csv next to it; for workloads with hidden states also the
 * /layers table (massive activations, the primary sink's norm; lib/heads/hidden.h) with
 * RESULTS-layers.csv. A short summary goes to stdout (sink ratio, entropy and locality over
 * heads, retrieval-like heads, the most dormant heads, per workload with hidden states the
 * massive activations and the tokens with the longest secondary-sink lifetimes, and, when
 * profiles were planted, the confusion table of planted profile against the strongest of
 * retrieval score, first-token weight and locality), or with --json one JSON document. The
 * work is ab_heads_run (lib/run/heads.c), declared by ab_heads_run_decl: this file is argv ->
 * struct -> call -> print. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/decl.h"
#include "heads/hidden.h"
#include "heads/stats.h"
#include "io/json_out.h"
#include "opts.h"
#include "run/heads.h"

static const char *usage_text =
    "attnbench heads WORKLOAD.h5... [--epsilon 0.3] [--window 64] [--top-fraction 0.1]\n"
    "                [--sink-min-rows 16] [--massive-abs 100] [--massive-ratio 1000]\n"
    "                [--json] -o RESULTS.h5";

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
    /* entropy and locality: mean, min and max over heads */
    const char *names[2] = {"entropy", "locality"};
    for (int s = 0; s < 2 && r->n_heads > 0; s++) {
        double sum = 0, mn = INFINITY, mx = -INFINITY;
        for (int64_t i = 0; i < r->n_heads; i++) {
            double v = s ? r->heads[i].locality : r->heads[i].entropy;
            sum += v, mn = v < mn ? v : mn, mx = v > mx ? v : mx;
        }
        printf("%s over heads: mean %.3f, min %.3f, max %.3f\n", names[s], sum / (double)r->n_heads,
               mn, mx);
    }
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
    /* with several workloads each head is named with its workload's file */
    int several = 0;
    for (int64_t i = 1; i < r->n_heads && !several; i++)
        several = strcmp(r->heads[i].workload, r->heads[0].workload) != 0;
    printf("most dormant heads (first-token weight):");
    for (int k = 0; k < n_top; k++) {
        const struct ab_head_row *h = &r->heads[top[k]];
        printf(" L%lld.H%lld %.3f", (long long)h->layer, (long long)h->head, h->first_weight);
        if (several) printf(" (%s)", ab_path_base(h->workload));
    }
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
    if (echo >= 0 && ind >= 0) {
        printf("strongest echo head L%lld.H%lld %.3f", (long long)r->heads[echo].layer,
               (long long)r->heads[echo].head, r->heads[echo].echo_score);
        if (several) printf(" (%s)", ab_path_base(r->heads[echo].workload));
        printf(", induction head L%lld.H%lld %.3f", (long long)r->heads[ind].layer,
               (long long)r->heads[ind].head, r->heads[ind].induction_score);
        if (several) printf(" (%s)", ab_path_base(r->heads[ind].workload));
        printf("\n");
    }
    print_confusion(r);
}

/* Appends to *text (malloc'd, grown) the summary lines of one workload's hidden states: the
 * massive activations and the largest |x| per layer, and the tokens with the longest
 * secondary-sink lifetimes (the primary sink excluded). Silently skipped when out of memory. */
static void hidden_lines(char **text, const char *name, const struct ab_workload *w,
                         const struct ab_hidden_stats *hs, const struct ab_heads_opts *o)
{
    size_t cap = 1024 + (size_t)hs->n_states * 96, len = *text ? strlen(*text) : 0;
    char *grown = realloc(*text, len + cap);
    if (!grown) return;
    *text = grown;
    char *p = grown + len;
    size_t left = cap;
    int64_t n_massive = 0;
    for (int64_t l = 0; l < hs->n_states; l++) n_massive += hs->layers[l].n_massive;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(p, left, __VA_ARGS__);                                                   \
        if (k_ > 0 && (size_t)k_ < left) p += k_, left -= (size_t)k_;                              \
    } while (0)
    PUT("massive activations (|x| > %g and > %g x median) in %s: %lld; top |x| per layer:",
        o->massive_abs, o->massive_ratio, name, (long long)n_massive);
    for (int64_t l = 0; l < hs->n_states; l++) {
        const struct ab_layer_row *row = &hs->layers[l];
        PUT(" L%lld %.3g (dim %lld @ pos %lld, median %.3g)", (long long)l, fabs(row->top1),
            (long long)row->top1_dim, (long long)row->top1_pos, row->median_abs);
    }
    PUT("\n");
    /* the five longest lifetimes, ties to the earlier position */
    PUT("longest secondary-sink lifetimes in %s (sink %lld, high-norm layers %lld of %lld, "
        "secondary when %lld < lifetime < %lld):",
        name, (long long)hs->sink_pos, (long long)hs->n_high, (long long)hs->n_states,
        (long long)hs->life_lo, (long long)hs->life_hi);
    int64_t shown[5];
    int n_shown = 0;
    for (; n_shown < 5; n_shown++) {
        int64_t best = -1;
        for (int64_t t = 0; t < hs->n_seq; t++) {
            int taken = t == hs->sink_pos;
            for (int k = 0; k < n_shown; k++) taken |= shown[k] == t;
            if (!taken && hs->lifetime[t] > 0 && (best < 0 || hs->lifetime[t] > hs->lifetime[best]))
                best = t;
        }
        if (best < 0) break;
        shown[n_shown] = best;
        if (w->tokens)
            PUT(" pos %lld (id %d) %lld", (long long)best, w->tokens[best],
                (long long)hs->lifetime[best]);
        else
            PUT(" pos %lld %lld", (long long)best, (long long)hs->lifetime[best]);
    }
    PUT("%s\n", n_shown ? "" : " none");
#undef PUT
}

/* ab_heads_run's hidden-state callback: the summary lines into the text user points to. */
static void on_hidden(void *user, const char *name, const struct ab_workload *w,
                      const struct ab_hidden_stats *hs, const struct ab_heads_opts *ho)
{
    hidden_lines(user, name, w, hs, ho);
}

/* The summary as one JSON document (schema attnbench/heads/1): the outputs, the options as
 * recorded, the summary counts, and one row per head with its main statistics (the CSV beside
 * the results has every column). */
static int print_json(const struct ab_heads_run_out *out, double epsilon)
{
    const struct ab_results *r = &out->res;
    struct ab_json_doc d;
    ab_json_begin(&d);
    struct ab_json *o = d.root, *csv, *heads;
    ab_json_str(&d, o, "schema", "attnbench/heads/1");
    ab_json_str(&d, o, "results", out->res_path);
    if ((csv = ab_json_arr(&d, o, "csv"))) {
        ab_json_str(&d, csv, NULL, out->csv);
        if (r->n_layers > 0) ab_json_str(&d, csv, NULL, out->layers_csv);
    }
    ab_json_text(&d, o, "options", r->options);
    int64_t like = 0, ret = 0, sinks = 0;
    for (int64_t i = 0; i < r->n_heads; i++) {
        like += r->heads[i].retrieval_like;
        ret += r->heads[i].retrieval_head;
        sinks += r->heads[i].sink_score > epsilon;
    }
    ab_json_int(&d, o, "heads", r->n_heads);
    ab_json_num(&d, o, "sink_ratio", ab_heads_sink_ratio(r->heads, r->n_heads, epsilon) / 100);
    ab_json_int(&d, o, "sink_heads", sinks);
    ab_json_int(&d, o, "retrieval_like_heads", like);
    ab_json_int(&d, o, "retrieval_heads", ret);
    ab_json_int(&d, o, "hidden_states", r->n_layers);
    heads = ab_json_arr(&d, o, "rows");
    for (int64_t i = 0; i < r->n_heads; i++) {
        const struct ab_head_row *h = &r->heads[i];
        struct ab_json *row = ab_json_obj(&d, heads, NULL);
        ab_json_str(&d, row, "workload", h->workload);
        ab_json_int(&d, row, "layer", h->layer);
        ab_json_int(&d, row, "head", h->head);
        ab_json_int(&d, row, "kv_head", h->kv_head);
        ab_json_str(&d, row, "profile", h->profile);
        ab_json_num(&d, row, "sink_score", h->sink_score);
        ab_json_num(&d, row, "first_weight", h->first_weight);
        ab_json_num(&d, row, "entropy", h->entropy);
        ab_json_num(&d, row, "locality", h->locality);
        ab_json_num(&d, row, "out_dev", h->out_dev);
        ab_json_bool(&d, row, "retrieval_like", (int)h->retrieval_like);
        ab_json_num(&d, row, "retrieval_score", h->retrieval_score);
    }
    return ab_json_print(&d, stdout);
}

int cmd_heads_opts(const struct ab_heads_run_opts *o)
{
    struct ab_heads_run_out out;
    struct ab_progress prog;
    char *hidden_text = NULL; /* the hidden-state summary lines of every workload */
    ab_progress_start(&prog, "heads", "heads", 0);
    int rc = ab_heads_run(o, ab_progress_engine_total, &prog, on_hidden, &hidden_text, &out);
    if (rc) {
        ab_progress_stop(&prog);
        ab_heads_run_out_free(&out);
        free(hidden_text);
        return ab_cmd_error(ab_exit_status(rc), "heads: %s", ab_errmsg());
    }
    ab_progress_end(&prog);
    const struct ab_results *res = &out.res;
    int st = EX_AB_OK;
    if (o->json) {
        if ((rc = print_json(&out, o->epsilon))) st = ab_cmd_fail(rc);
    } else if (!ab_common.quiet) {
        print_summary(res, o->epsilon);
        if (hidden_text) fputs(hidden_text, stdout);
        fflush(stdout);
        fprintf(stderr, "%lld heads in %.1f s\n", (long long)res->n_heads, out.seconds);
    }
    ab_out_file(o->out), ab_out_file(out.csv);
    if (res->n_layers > 0) ab_out_file(out.layers_csv);
    if (!o->json)
        ab_out_main("heads", o->out, "%lld heads; %s%s%s beside it", (long long)res->n_heads,
                    ab_path_base(out.csv), res->n_layers > 0 ? " and " : "",
                    res->n_layers > 0 ? ab_path_base(out.layers_csv) : "");
    free(hidden_text);
    ab_heads_run_out_free(&out);
    return st;
}

int cmd_heads(int argc, char **argv)
{
    struct ab_heads_run_opts o = {0};
    if (ab_decl_defaults(ab_heads_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[MAX_WORKLOADS];
    int n_pos, st = ab_opts_parse_decl("heads", usage_text, ab_heads_run_decl, &o, argc, argv,
                                       pos, MAX_WORKLOADS, &n_pos);
    if (st < 0) {
        o.workloads = (const char *const *)pos, o.n_workloads = n_pos;
        o.seed = ab_common.seed;
        st = cmd_heads_opts(&o);
    }
    ab_decl_free(ab_heads_run_decl, &o);
    return st;
}
