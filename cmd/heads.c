/* heads.c - `attnbench heads`: the per-head statistics of metrics.md ("Head and sink
 * statistics") for every (layer, head) of the given workloads, written as the /heads table of a
 * results file with RESULTS-heads.csv next to it; for workloads with hidden states also the
 * /layers table (massive activations, the primary sink's norm; lib/heads/hidden.h) with
 * RESULTS-layers.csv. A short summary goes to stdout (sink ratio, entropy and locality over
 * heads, retrieval-like heads, the most dormant heads, per workload with hidden states the
 * massive activations and the tokens with the longest secondary-sink lifetimes, and, when
 * profiles were planted, the confusion table of planted profile against the strongest of
 * retrieval score, first-token weight and locality). Workloads are checked before any work
 * starts and read one at a time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "heads/hidden.h"
#include "heads/stats.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text =
    "attnbench heads WORKLOAD.h5... [--epsilon 0.3] [--window 64] [--top-fraction 0.1]\n"
    "                [--sink-min-rows 16] [--massive-abs 100] [--massive-ratio 1000]\n"
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

/* Moves the /layers rows of hs into r (hs->layers becomes NULL). */
static int append_layers(struct ab_results *r, struct ab_hidden_stats *hs)
{
    struct ab_layer_row *grown =
        realloc(r->layers, sizeof *r->layers * (size_t)(r->n_layers + hs->n_states));
    if (!grown) return ab_fail(AB_E_NOMEM, "out of memory");
    memcpy(grown + r->n_layers, hs->layers, sizeof *hs->layers * (size_t)hs->n_states);
    r->layers = grown;
    r->n_layers += hs->n_states;
    free(hs->layers);
    hs->layers = NULL;
    return AB_OK;
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
    int64_t window = ho.window, sink_min_rows = ho.sink_min_rows;
    const struct ab_opt opts[] = {
        {"epsilon", AB_OPT_DOUBLE, &epsilon, "E",
         "sink ratio threshold on alpha(0), in [0, 1) (default 0.3)"},
        {"window", AB_OPT_INT, &window, "W", "locality window w in positions (default 64)"},
        {"top-fraction", AB_OPT_DOUBLE, &top_fraction, "F",
         "share of heads labelled retrieval-like, in [0, 1] (default 0.1)"},
        {"sink-min-rows", AB_OPT_INT, &sink_min_rows, "R",
         "a sink key must be seen by at least R query rows (default 16)"},
        {"massive-abs", AB_OPT_DOUBLE, &ho.massive_abs, "A",
         "massive activation: |x| above A ... (default 100)"},
        {"massive-ratio", AB_OPT_DOUBLE, &ho.massive_ratio, "M",
         "... and above M x the layer's median |x| (default 1000)"},
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
    if (sink_min_rows < 1)
        return ab_cmd_error(EX_AB_USAGE, "heads: --sink-min-rows must be positive");
    if (!(ho.massive_abs >= 0 && isfinite(ho.massive_abs)))
        return ab_cmd_error(EX_AB_USAGE, "heads: --massive-abs must be finite and >= 0, got %g",
                            ho.massive_abs);
    if (!(ho.massive_ratio >= 0 && isfinite(ho.massive_ratio)))
        return ab_cmd_error(EX_AB_USAGE, "heads: --massive-ratio must be finite and >= 0, got %g",
                            ho.massive_ratio);
    ho.window = window;
    ho.sink_min_rows = sink_min_rows;

    char csv[4096], layers_csv[4096];
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(csv, sizeof csv, "%.*s-heads.csv", (int)len, out);
    snprintf(layers_csv, sizeof layers_csv, "%.*s-layers.csv", (int)len, out);

    /* every workload must be readable before any work starts */
    int rc;
    int64_t total = 0;
    for (int i = 0; i < n_pos; i++) {
        struct ab_workload meta = {0};
        rc = ab_h5_workload_read_meta(pos[i], &meta);
        total += meta.n_layer * meta.n_head;
        ab_workload_free(&meta);
        if (rc) return ab_cmd_fail(rc);
    }

    struct ab_results res;
    ab_results_init(&res);
    st = EX_AB_OK;
    if ((rc = ab_results_provenance(&res, argc, argv, pos, n_pos, ab_common.seed)))
        st = ab_cmd_fail(rc);
    if (st == EX_AB_OK) {
        char notes[2048];
        snprintf(notes, sizeof notes,
                 "heads: exact attention; locality w %lld; sinks alpha > %g seen by >= %lld "
                 "query rows; out_dev under sink %lld + recent %lld; distant mass outside the "
                 "first %lld and last %lld keys; retrieval_like: top %g of heads by out_dev; "
                 "sink ratio epsilon %g; retrieval_score on real text (tokens, no tasks): the "
                 "copy task BOS+X+X or the longest repeated span of >= %lld tokens, rows of the "
                 "second copy scoring when their top-1 key in the first copy holds their next "
                 "token; /layers (hidden states H_l, l = 0..n_layer, entering layer l): massive "
                 "activations |x| > %g and > %g x median |x|; primary sink = position 0; "
                 "high-norm layer: sink norm > %g x median "
                 "token norm; lifetime = high-norm layers with |cos(H_l[t], H_l[sink])| > %g; "
                 "sec_secondary: max(1, n_layer/8) < lifetime < n_layer - max(1, 15 n_layer/32)",
                 (long long)ho.window, ho.sink_threshold, (long long)ho.sink_min_rows,
                 (long long)ho.stream_sink, (long long)ho.stream_recent,
                 (long long)ho.distant_first, (long long)ho.distant_last, top_fraction, epsilon,
                 (long long)ho.copy_min_len, ho.massive_abs, ho.massive_ratio, ho.sink_norm_ratio,
                 ho.sink_cos);
        res.notes = strdup(notes);
    }
    double t0 = ab_now();
    char *hidden_text = NULL; /* the hidden-state summary lines of every workload */
    struct ab_progress prog;
    ab_progress_start(&prog, "heads", "heads", total);
    ho.progress = ab_progress_engine, ho.progress_user = &prog;
    for (int i = 0; i < n_pos && st == EX_AB_OK; i++) {
        prog.base = prog.done;
        struct ab_workload w = {0};
        struct ab_head_row *rows = NULL;
        struct ab_hidden_stats hs = {0};
        int64_t n = 0;
        if ((rc = ab_h5_workload_read(pos[i], &w)) ||
            (rc = ab_heads_workload(&w, pos[i], &ho, &rows, &n, &hs)) ||
            (rc = append_rows(&res, rows, n)))
            st = ab_cmd_fail(rc);
        if (st == EX_AB_OK && hs.layers) {
            hidden_lines(&hidden_text, pos[i], &w, &hs, &ho);
            if ((rc = append_layers(&res, &hs))) st = ab_cmd_fail(rc);
        }
        ab_hidden_stats_free(&hs);
        ab_workload_free(&w);
    }
    if (st == EX_AB_OK)
        ab_progress_end(&prog);
    else
        ab_progress_stop(&prog);
    if (st == EX_AB_OK) ab_heads_label(res.heads, res.n_heads, top_fraction);
    if (st == EX_AB_OK && (rc = ab_results_write_h5(out, &res))) st = ab_cmd_fail(rc);
    if (st == EX_AB_OK && (rc = ab_results_write_heads_csv(csv, &res))) {
        st = ab_cmd_fail(rc);
        unlink(out); /* all or nothing */
    }
    if (st == EX_AB_OK && res.n_layers > 0 &&
        (rc = ab_results_write_layers_csv(layers_csv, &res))) {
        st = ab_cmd_fail(rc);
        unlink(out), unlink(csv);
    }
    if (st == EX_AB_OK) {
        if (!ab_common.quiet) {
            print_summary(&res, epsilon);
            if (hidden_text) fputs(hidden_text, stdout);
        }
        fflush(stdout);
        if (!ab_common.quiet)
            fprintf(stderr, "%lld heads in %.1f s\n", (long long)res.n_heads, ab_now() - t0);
        ab_out_file(out), ab_out_file(csv);
        if (res.n_layers > 0) ab_out_file(layers_csv);
        ab_out_main("heads", out, "%lld heads; %s%s%s beside it", (long long)res.n_heads,
                    ab_path_base(csv), res.n_layers > 0 ? " and " : "",
                    res.n_layers > 0 ? ab_path_base(layers_csv) : "");
    }
    free(hidden_text);
    ab_results_free(&res);
    return st;
}
