/* heads.c - `attnbench heads` as a library call (see heads.h): the options table, the checks
 * before any work, the statistics of every head, and the results file with its CSV tables. */
#include "run/heads.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"

#define ROW(f) AB_DECL_ROW(struct ab_heads_run_opts, f)
const struct ab_decl ab_heads_run_decl[] = {
    {"epsilon", AB_DECL_REAL, ROW(epsilon), "0.3", 0, 1, "E", "sink ratio threshold on alpha(0)",
     .hi_open = 1},
    {"window", AB_DECL_INT, ROW(window), "64", 1, INT32_MAX, "W", "locality window w in positions"},
    {"top-fraction", AB_DECL_REAL, ROW(top_fraction), "0.1", 0, 1, "F",
     "share of heads labelled retrieval-like"},
    {"sink-min-rows", AB_DECL_INT, ROW(sink_min_rows), "16", 1, INT32_MAX, "R",
     "a sink key must be seen by at least R query rows"},
    {"massive-abs", AB_DECL_REAL, ROW(massive_abs), "100", 0, INFINITY, "A",
     "massive activation: |x| above A ..."},
    {"massive-ratio", AB_DECL_REAL, ROW(massive_ratio), "1000", 0, INFINITY, "M",
     "... and above M x the layer's median |x|"},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE",
     "results file to write (.h5; RESULTS-heads.csv goes next to it)",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {"json", AB_DECL_FLAG, ROW(json), NULL, 0, 0, NULL,
     "print the summary as one JSON document on stdout (schema attnbench/heads/1)",
     .flags = AB_DECL_CLI | AB_DECL_SHOW},
    {0},
};
#undef ROW

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

/* The conventions recorded with the statistics. */
static char *heads_notes(const struct ab_heads_opts *ho, const struct ab_heads_run_opts *o)
{
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
             (long long)ho->window, ho->sink_threshold, (long long)ho->sink_min_rows,
             (long long)ho->stream_sink, (long long)ho->stream_recent,
             (long long)ho->distant_first, (long long)ho->distant_last, o->top_fraction,
             o->epsilon, (long long)ho->copy_min_len, ho->massive_abs, ho->massive_ratio,
             ho->sink_norm_ratio, ho->sink_cos);
    return strdup(notes);
}

int ab_heads_run(const struct ab_heads_run_opts *o,
                 void (*progress)(void *user, int64_t done, int64_t total), void *progress_user,
                 ab_heads_hidden_fn hidden, void *hidden_user, struct ab_heads_run_out *out)
{
    memset(out, 0, sizeof *out);
    ab_results_init(&out->res);
    if (o->n_workloads < 1) return ab_fail(AB_E_USAGE, "name at least one workload file");
    if (!o->out) return ab_fail(AB_E_USAGE, "name the results file with -o");
    struct ab_heads_opts *ho = &out->ho;
    ab_heads_defaults(ho);
    ho->window = o->window, ho->sink_min_rows = o->sink_min_rows;
    ho->massive_abs = o->massive_abs, ho->massive_ratio = o->massive_ratio;
    out->res_path = o->out;
    size_t len = strlen(o->out);
    if (len > 3 && !strcmp(o->out + len - 3, ".h5")) len -= 3;
    snprintf(out->csv, sizeof out->csv, "%.*s-heads.csv", (int)len, o->out);
    snprintf(out->layers_csv, sizeof out->layers_csv, "%.*s-layers.csv", (int)len, o->out);

    /* every workload must be readable before any work starts */
    int rc = AB_OK;
    struct ab_progress_relay pr = {progress, progress_user, 0, 0};
    for (int i = 0; i < o->n_workloads && !rc; i++) {
        struct ab_workload meta = {0};
        rc = ab_h5_workload_read_meta(o->workloads[i], &meta);
        pr.total += meta.n_layer * meta.n_head;
        ab_workload_free(&meta);
    }
    if (rc) return rc;

    struct ab_results *res = &out->res;
    char tail[96];
    snprintf(tail, sizeof tail, "--seed %llu --threads %d", (unsigned long long)o->seed,
             ab_threads_get());
    char *line =
        ab_decl_command("heads", ab_heads_run_decl, o, o->workloads, o->n_workloads, tail);
    if (!line) return ab_fail(AB_E_NOMEM, "out of memory");
    rc = ab_results_provenance_line(res, line, o->workloads, o->n_workloads, o->seed);
    free(line);
    if (!rc && !(res->options = ab_decl_json(ab_heads_run_decl, o)))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc && !(res->notes = heads_notes(ho, o))) rc = ab_fail(AB_E_NOMEM, "out of memory");

    double t0 = ab_now();
    if (progress) ho->progress = ab_progress_relay, ho->progress_user = &pr;
    for (int i = 0; i < o->n_workloads && !rc; i++) {
        struct ab_workload w = {0};
        struct ab_head_row *rows = NULL;
        struct ab_hidden_stats hs = {0};
        int64_t n = 0;
        if (!(rc = ab_h5_workload_read(o->workloads[i], &w)) &&
            !(rc = ab_heads_workload(&w, o->workloads[i], ho, &rows, &n, &hs)))
            rc = append_rows(res, rows, n);
        if (!rc && hs.layers) {
            if (hidden) hidden(hidden_user, o->workloads[i], &w, &hs, ho);
            rc = append_layers(res, &hs);
        }
        pr.base += w.n_layer * w.n_head;
        if (!rc && progress) progress(progress_user, pr.base, pr.total);
        ab_hidden_stats_free(&hs);
        ab_workload_free(&w);
    }
    out->seconds = ab_now() - t0;
    if (!rc) ab_heads_label(res->heads, res->n_heads, o->top_fraction);
    if (!rc) rc = ab_results_write_h5(o->out, res);
    if (!rc && (rc = ab_results_write_heads_csv(out->csv, res))) unlink(o->out);
    if (!rc && res->n_layers > 0 && (rc = ab_results_write_layers_csv(out->layers_csv, res)))
        unlink(o->out), unlink(out->csv); /* all or nothing */
    return rc;
}

void ab_heads_run_out_free(struct ab_heads_run_out *out) { ab_results_free(&out->res); }
