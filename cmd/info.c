/* info.c - `attnbench info FILE`: what a workload file holds, read without loading the bulk
 * tensors (metadata, shapes, the small datasets), so it answers at once on files of any size;
 * for a results file (run, heads, eval-model), what it was made from and the tables it holds.
 *
 * Output (stdout) is one "key  value" line per fact, then the profile table with a compact
 * layer x kv-head grid of one-letter codes, the task summary and the storage figures. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/workload.h"
#include "eval/results.h"
#include "io/h5_util.h"
#include "io/h5_workload.h"
#include "io/json_out.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text = "attnbench info FILE [--json]";

/* Prints a byte count in binary units ("1.5 MiB"). */
static void print_bytes(int64_t b)
{
    static const char *unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        printf("%lld bytes", (long long)b);
        return;
    }
    double x = (double)b / 1024;
    int u = 0;
    while (x >= 1024 && u < 3) x /= 1024, u++;
    printf("%.1f %s", x, unit[u]);
}

/* The number of distinct strings among n at stride bytes apart starting at first (a field of an
 * array of structs), O(n^2) worst case: results hold at most a few hundred distinct names. */
static int64_t distinct(const void *first, size_t stride, int64_t n)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *a = *(char *const *)((const char *)first + (size_t)i * stride);
        int64_t j = 0;
        while (j < i && strcmp(a, *(char *const *)((const char *)first + (size_t)j * stride)))
            j++;
        k += j == i;
    }
    return k;
}

/* The /cells table of a results file in numbers: distinct methods, decode and infeasible rows
 * (the rest are prefill rows). */
struct cell_counts {
    int64_t methods, decode, infeasible;
};

static void cell_counts(const struct ab_results *r, struct cell_counts *c)
{
    *c = (struct cell_counts){0};
    for (int64_t i = 0; i < r->n_cells; i++) {
        c->infeasible += !r->cells[i].feasible;
        c->decode += !strcmp(r->cells[i].phase, "decode");
    }
    c->methods = r->n_cells ? distinct(&r->cells[0].method, sizeof r->cells[0], r->n_cells) : 0;
}

static int json_results(const char *path, const struct ab_results *r,
                        const struct ab_h5_storage *sto);

/* `info` of a results file (run, heads, eval-model): what it was made from and what it holds. */
static int info_results(const char *path, const struct ab_h5_storage *sto, int json)
{
    struct ab_results r;
    ab_results_init(&r);
    int rc = ab_results_read_h5(path, &r);
    if (rc != AB_OK) return ab_cmd_fail(rc);
    if (json) {
        int st = json_results(path, &r, sto);
        ab_results_free(&r);
        return st;
    }
    printf("file         %s\n", path);
    printf("schema       %s\n", AB_RESULTS_SCHEMA);
    printf("created      %s by attnbench %s on %s\n", r.created_utc ? r.created_utc : "(unknown)",
           r.attnbench_version ? r.attnbench_version : "(unknown)",
           r.hostname ? r.hostname : "(unknown host)");
    if (r.command_line) printf("command      %s\n", r.command_line);
    if (r.options) printf("options      %s\n", r.options);
    if (r.external) printf("external     %s\n", r.external);
    printf("workloads    %lld\n", (long long)r.n_workloads);
    for (int64_t i = 0; i < r.n_workloads; i++)
        printf("  %s (sha256 %.12s)\n", r.workloads[i],
               r.workload_sha256 && r.workload_sha256[i] ? r.workload_sha256[i] : "?");
    struct cell_counts cc;
    cell_counts(&r, &cc);
    printf("cells        %lld (%lld methods, %lld prefill, %lld decode, %lld infeasible)\n",
           (long long)r.n_cells, (long long)cc.methods, (long long)(r.n_cells - cc.decode),
           (long long)cc.decode, (long long)cc.infeasible);
    if (r.decode_horizon > 0)
        printf("decode       one-off work amortised over G = %lld tokens\n",
               (long long)r.decode_horizon);
    printf("tables       summary %lld rows, heads %lld, layers %lld, model %lld\n",
           (long long)r.n_summary, (long long)r.n_heads, (long long)r.n_layers,
           (long long)r.n_model);
    printf("scenario     %s\n", r.scenario ? "recorded" : "none");
    printf("storage      ");
    print_bytes(sto->file_bytes);
    printf(" on disk\n");
    ab_results_free(&r);
    return EX_AB_OK;
}

/* One distinct profile name, its head count and its grid letter. */
struct profile_row {
    const char *name;
    int64_t count;
    char code;
};

static int cmp_profile(const void *a, const void *b)
{
    return strcmp(((const struct profile_row *)a)->name, ((const struct profile_row *)b)->name);
}

/* Picks a letter for each profile: the first letter of its name not yet taken (upper case),
 * else the first free letter of the alphabet; '?' if all 26 are taken. */
static void assign_codes(struct profile_row *rows, int64_t n)
{
    int used[256] = {0};
    for (int64_t r = 0; r < n; r++) {
        char c = '?';
        for (const char *s = rows[r].name; *s && c == '?'; s++) {
            unsigned char u = (unsigned char)*s;
            if (u >= 'a' && u <= 'z') u = (unsigned char)(u - 'a' + 'A');
            if (((u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')) && !used[u]) c = (char)u;
        }
        for (int u = 'A'; u <= 'Z' && c == '?'; u++)
            if (!used[u]) c = (char)u;
        used[(unsigned char)c] = 1;
        rows[r].code = c;
    }
}

/* The distinct profiles of w, sorted by name, with their head counts and grid letters, into
 * *out (malloc'd; *n_rows of them). 0, or -1 when out of memory. */
static int profile_rows(const struct ab_workload *w, struct profile_row **out, int64_t *n_rows)
{
    int64_t n = w->n_layer * w->n_kv_head;
    struct profile_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) return -1;
    *n_rows = 0;
    for (int64_t i = 0; i < n; i++) {
        const char *name = w->profile[i] && w->profile[i][0] ? w->profile[i] : "(none)";
        int64_t r = 0;
        while (r < *n_rows && strcmp(rows[r].name, name)) r++;
        if (r == *n_rows) rows[(*n_rows)++] = (struct profile_row){name, 0, '?'};
        rows[r].count++;
    }
    qsort(rows, (size_t)*n_rows, sizeof *rows, cmp_profile);
    assign_codes(rows, *n_rows);
    *out = rows;
    return 0;
}

/* The profiles table: count per profile, then a layer x kv-head grid of letters. */
static int print_profiles(const struct ab_workload *w)
{
    int64_t n = w->n_layer * w->n_kv_head, n_rows;
    struct profile_row *rows;
    if (profile_rows(w, &rows, &n_rows)) return -1;
    printf("profiles     %lld kinds over %lld kv heads\n", (long long)n_rows, (long long)n);
    for (int64_t r = 0; r < n_rows; r++)
        printf("  %c %-16s %6lld  %5.1f%%\n", rows[r].code, rows[r].name, (long long)rows[r].count,
               100.0 * (double)rows[r].count / (double)n);
    printf("  grid       layer x kv head (kv 0..%lld left to right)\n",
           (long long)(w->n_kv_head - 1));
    for (int64_t l = 0; l < w->n_layer; l++) {
        printf("  %10lld ", (long long)l);
        for (int64_t g = 0; g < w->n_kv_head; g++) {
            const char *name = w->profile[l * w->n_kv_head + g];
            if (!name || !name[0]) name = "(none)";
            char c = '?';
            for (int64_t r = 0; r < n_rows; r++)
                if (!strcmp(rows[r].name, name)) c = rows[r].code;
            putchar(c);
        }
        putchar('\n');
    }
    free(rows);
    return 0;
}

/* What the task summary reports of w's tasks (n > 0). */
struct task_stats {
    int64_t per_kind[3];
    int32_t row_lo, row_hi;
    int64_t keys_lo, keys_hi;
    int64_t n_heads, n_planted; /* kv heads, and those with a planted task */
};

static void task_stats(const struct ab_workload *w, struct task_stats *s)
{
    const struct ab_tasks *t = &w->tasks;
    *s = (struct task_stats){.row_lo = INT32_MAX, .row_hi = INT32_MIN, .keys_lo = INT64_MAX};
    for (int64_t i = 0; i < t->n; i++) {
        if (t->kind[i] >= 0 && t->kind[i] < 3) s->per_kind[t->kind[i]]++;
        s->row_lo = AB_MIN(s->row_lo, t->row[i]);
        s->row_hi = AB_MAX(s->row_hi, t->row[i]);
        int64_t nk = t->key_off[i + 1] - t->key_off[i];
        s->keys_lo = AB_MIN(s->keys_lo, nk);
        s->keys_hi = AB_MAX(s->keys_hi, nk);
    }
    s->n_heads = w->n_layer * w->n_kv_head;
    for (int64_t i = 0; t->planted && i < s->n_heads; i++) s->n_planted += t->planted[i] != 0;
}

/* The task summary: counts per kind, rows, keys, codebook, threshold, planted heads. */
static void print_tasks(const struct ab_workload *w)
{
    const struct ab_tasks *t = &w->tasks;
    struct task_stats ts;
    task_stats(w, &ts);
    printf("tasks        %lld queries:", (long long)t->n);
    const char *sep = " ";
    for (int k = 0; k < 3; k++)
        if (ts.per_kind[k]) {
            printf("%s%lld %s", sep, (long long)ts.per_kind[k], ab_task_kind_name(k));
            sep = ", ";
        }
    printf("\n");
    printf("  rows       %d..%d\n", (int)ts.row_lo, (int)ts.row_hi);
    printf("  keys       %lld in all, %lld..%lld per task\n", (long long)t->key_off[t->n],
           (long long)ts.keys_lo, (long long)ts.keys_hi);
    printf("  codebook   %lld x %lld\n", (long long)t->n_code, (long long)w->d_v);
    printf("  threshold  %g (aggregate cosine)\n", t->agg_threshold);
    int64_t n_heads = ts.n_heads;
    printf("  planted    %lld of %lld kv heads", (long long)ts.n_planted, (long long)n_heads);
    int shown = 0;
    for (int64_t i = 0; t->planted && i < n_heads; i++) {
        if (!t->planted[i]) continue;
        if (shown == 16) {
            printf(", ...");
            break;
        }
        printf("%s L%lld.kv%lld", shown ? "," : ":", (long long)(i / w->n_kv_head),
               (long long)(i % w->n_kv_head));
        shown++;
    }
    printf("\n");
}

/* ---- --json: the same facts as one JSON document (README, "Machine-readable output"),
 * {schema "attnbench/info/1", file, kind "workload" | "results", file_schema, ...} */

/* An array of n int64 dimensions under key. */
static void json_dims(struct ab_json_doc *d, struct ab_json *o, const char *key, int n, ...)
{
    struct ab_json *a = ab_json_arr(d, o, key);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) ab_json_int(d, a, NULL, va_arg(ap, int64_t));
    va_end(ap);
}

static int json_results(const char *path, const struct ab_results *r,
                        const struct ab_h5_storage *sto)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    struct ab_json *o = d.root, *x;
    ab_json_str(&d, o, "schema", "attnbench/info/1");
    ab_json_str(&d, o, "file", path);
    ab_json_str(&d, o, "kind", "results");
    ab_json_str(&d, o, "file_schema", AB_RESULTS_SCHEMA);
    ab_json_str(&d, o, "created_utc", r->created_utc);
    ab_json_str(&d, o, "attnbench_version", r->attnbench_version);
    ab_json_str(&d, o, "hostname", r->hostname);
    ab_json_str(&d, o, "command_line", r->command_line);
    ab_json_int(&d, o, "seed", (int64_t)r->seed);
    ab_json_int(&d, o, "threads", r->threads);
    ab_json_str(&d, o, "openblas_config", r->openblas_config);
    x = ab_json_arr(&d, o, "workloads");
    for (int64_t i = 0; i < r->n_workloads; i++) {
        struct ab_json *wl = ab_json_obj(&d, x, NULL);
        ab_json_str(&d, wl, "path", r->workloads[i]);
        ab_json_str(&d, wl, "sha256", r->workload_sha256 ? r->workload_sha256[i] : NULL);
    }
    struct cell_counts cc;
    cell_counts(r, &cc);
    x = ab_json_obj(&d, o, "cells");
    ab_json_int(&d, x, "rows", r->n_cells);
    ab_json_int(&d, x, "methods", cc.methods);
    ab_json_int(&d, x, "prefill", r->n_cells - cc.decode);
    ab_json_int(&d, x, "decode", cc.decode);
    ab_json_int(&d, x, "infeasible", cc.infeasible);
    if (r->decode_horizon > 0) ab_json_int(&d, o, "decode_horizon", r->decode_horizon);
    else ab_json_null(&d, o, "decode_horizon");
    x = ab_json_obj(&d, o, "tables"); /* rows of each table */
    ab_json_int(&d, x, "cells", r->n_cells);
    ab_json_int(&d, x, "summary", r->n_summary);
    ab_json_int(&d, x, "heads", r->n_heads);
    ab_json_int(&d, x, "layers", r->n_layers);
    ab_json_int(&d, x, "model", r->n_model);
    ab_json_str(&d, o, "scenario", r->scenario);
    ab_json_str(&d, o, "notes", r->notes);
    ab_json_text(&d, o, "options", r->options);
    if (r->external) ab_json_text(&d, o, "external", r->external);
    x = ab_json_obj(&d, o, "storage");
    ab_json_int(&d, x, "file_bytes", sto->file_bytes);
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}

static int json_workload(const char *path, const struct ab_workload *w,
                         const struct ab_h5_storage *sto)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    struct ab_json *o = d.root, *x;
    ab_json_str(&d, o, "schema", "attnbench/info/1");
    ab_json_str(&d, o, "file", path);
    ab_json_str(&d, o, "kind", "workload");
    ab_json_str(&d, o, "file_schema", AB_WORKLOAD_SCHEMA);
    ab_json_str(&d, o, "source", w->source);
    ab_json_str(&d, o, "description", w->description);
    ab_json_str(&d, o, "created_utc", w->created_utc);
    ab_json_str(&d, o, "attnbench_version", w->version);
    ab_json_int(&d, o, "seed", (int64_t)w->seed);
    x = ab_json_obj(&d, o, "shape");
    ab_json_int(&d, x, "layers", w->n_layer);
    ab_json_int(&d, x, "heads", w->n_head);
    ab_json_int(&d, x, "kv_heads", w->n_kv_head);
    ab_json_int(&d, x, "group", w->n_head / w->n_kv_head);
    ab_json_int(&d, x, "seq", w->n_seq);
    ab_json_int(&d, x, "d", w->d);
    ab_json_int(&d, x, "d_v", w->d_v);
    if (w->d_model > 0) ab_json_int(&d, x, "d_model", w->d_model);
    else ab_json_null(&d, x, "d_model");
    x = ab_json_obj(&d, o, "positions");
    ab_json_int(&d, x, "first", w->positions[0]);
    ab_json_int(&d, x, "last", w->positions[w->n_seq - 1]);
    ab_json_str(&d, o, "mask", w->causal ? "causal" : "full");
    double def = 1.0 / sqrt((double)w->d);
    ab_json_num(&d, o, "scale", w->scale);
    ab_json_bool(&d, o, "scale_is_default", fabs(w->scale - def) <= 1e-12 * def);
    x = ab_json_obj(&d, o, "rope");
    ab_json_bool(&d, x, "applied", w->rope_applied);
    if (w->rope_applied) ab_json_num(&d, x, "theta", w->rope_theta);
    else ab_json_null(&d, x, "theta");
    x = ab_json_obj(&d, o, "datasets"); /* the shape of each, null when absent */
    json_dims(&d, x, "q", 4, w->n_layer, w->n_head, w->n_seq, w->d);
    json_dims(&d, x, "k", 4, w->n_layer, w->n_kv_head, w->n_seq, w->d);
    json_dims(&d, x, "v", 4, w->n_layer, w->n_kv_head, w->n_seq, w->d_v);
    json_dims(&d, x, "positions", 1, w->n_seq);
    if (w->tokens) json_dims(&d, x, "tokens", 1, w->n_seq);
    else ab_json_null(&d, x, "tokens");
    if (w->d_model > 0) json_dims(&d, x, "hidden", 3, w->n_layer + 1, w->n_seq, w->d_model);
    else ab_json_null(&d, x, "hidden");
    ab_json_str(&d, o, "text", w->text);
    if (w->profile) {
        struct profile_row *rows;
        int64_t n_rows;
        if (profile_rows(w, &rows, &n_rows)) {
            ab_json_end(&d);
            return ab_cmd_fail(ab_fail(AB_E_NOMEM, "out of memory"));
        }
        struct ab_json *p = ab_json_obj(&d, o, "profiles"), *k = ab_json_arr(&d, p, "kinds");
        int64_t n = w->n_layer * w->n_kv_head;
        for (int64_t r = 0; r < n_rows; r++) {
            struct ab_json *e = ab_json_obj(&d, k, NULL);
            char code[2] = {rows[r].code, 0};
            ab_json_str(&d, e, "name", rows[r].name);
            ab_json_str(&d, e, "code", code);
            ab_json_int(&d, e, "count", rows[r].count);
            ab_json_num(&d, e, "share", (double)rows[r].count / (double)n);
        }
        free(rows);
        struct ab_json *g = ab_json_arr(&d, p, "grid"); /* [layer][kv head] -> profile name */
        for (int64_t l = 0; l < w->n_layer; l++) {
            struct ab_json *row = ab_json_arr(&d, g, NULL);
            for (int64_t h = 0; h < w->n_kv_head; h++) {
                const char *name = w->profile[l * w->n_kv_head + h];
                ab_json_str(&d, row, NULL, name && name[0] ? name : NULL);
            }
        }
    } else {
        ab_json_null(&d, o, "profiles");
    }
    if (w->tasks.n > 0) {
        const struct ab_tasks *t = &w->tasks;
        struct task_stats ts;
        task_stats(w, &ts);
        struct ab_json *tk = ab_json_obj(&d, o, "tasks");
        ab_json_int(&d, tk, "count", t->n);
        x = ab_json_obj(&d, tk, "by_kind");
        for (int k = 0; k < 3; k++) ab_json_int(&d, x, ab_task_kind_name(k), ts.per_kind[k]);
        x = ab_json_obj(&d, tk, "rows");
        ab_json_int(&d, x, "first", ts.row_lo);
        ab_json_int(&d, x, "last", ts.row_hi);
        x = ab_json_obj(&d, tk, "keys");
        ab_json_int(&d, x, "total", t->key_off[t->n]);
        ab_json_int(&d, x, "min", ts.keys_lo);
        ab_json_int(&d, x, "max", ts.keys_hi);
        json_dims(&d, tk, "codebook", 2, t->n_code, w->d_v);
        ab_json_num(&d, tk, "agg_threshold", t->agg_threshold);
        x = ab_json_arr(&d, tk, "planted"); /* every kv head with a planted task */
        for (int64_t i = 0; t->planted && i < ts.n_heads; i++) {
            if (!t->planted[i]) continue;
            struct ab_json *e = ab_json_obj(&d, x, NULL);
            ab_json_int(&d, e, "layer", i / w->n_kv_head);
            ab_json_int(&d, e, "kv_head", i % w->n_kv_head);
        }
    } else {
        ab_json_null(&d, o, "tasks");
    }
    x = ab_json_obj(&d, o, "storage");
    ab_json_int(&d, x, "file_bytes", sto->file_bytes);
    ab_json_int(&d, x, "data_bytes", sto->data_bytes);
    ab_json_int(&d, x, "stored_bytes", sto->stored_bytes);
    ab_json_num(&d, x, "compression",
                sto->stored_bytes > 0 ? (double)sto->data_bytes / (double)sto->stored_bytes : 1.0);
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}

int cmd_info(int argc, char **argv)
{
    int json = 0;
    const struct ab_opt opts[] = {
        {"json", AB_OPT_FLAG, &json, NULL, "print one JSON document instead of the text (README, \"Machine-readable output\")"},
        {NULL, AB_OPT_END, NULL, NULL, NULL}};
    char *pos[1];
    int n_pos, st = ab_opts_parse("info", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (n_pos != 1)
        return ab_cmd_error(EX_AB_USAGE, "info: name one FILE (see 'attnbench info --help')");
    const char *path = pos[0];

    /* which kind of attnbench file: its schema attribute */
    struct ab_h5 f;
    char *schema = NULL;
    int rc = ab_h5_open(&f, path);
    if (rc != AB_OK) return ab_cmd_fail(rc);
    rc = ab_h5_attr_get_str(&f, "/", "schema", &schema);
    ab_h5_close(&f);
    if (rc != AB_OK) return ab_cmd_fail(rc);
    int results = schema && !strcmp(schema, AB_RESULTS_SCHEMA);
    free(schema);
    struct ab_workload w;
    struct ab_h5_storage sto;
    if ((rc = ab_h5_file_storage(path, &sto)) != AB_OK) return ab_cmd_fail(rc);
    if (results) return info_results(path, &sto, json);
    rc = ab_h5_workload_read_meta(path, &w);
    if (rc != AB_OK) return ab_cmd_fail(rc);
    if (json) {
        st = json_workload(path, &w, &sto);
        ab_workload_free(&w);
        return st;
    }

    printf("file         %s\n", path);
    printf("schema       %s\n", AB_WORKLOAD_SCHEMA);
    printf("source       %s\n", w.source ? w.source : "(unknown)");
    printf("description  %s\n", w.description && w.description[0] ? w.description : "(none)");
    printf("created      %s by attnbench %s\n", w.created_utc ? w.created_utc : "(unknown)",
           w.version ? w.version : "(unknown)");
    printf("seed         %" PRIu64 "\n", w.seed);
    printf("shape        %lld layers, %lld heads, %lld kv heads (group %lld), seq %lld, d %lld, "
           "d_v %lld\n",
           (long long)w.n_layer, (long long)w.n_head, (long long)w.n_kv_head,
           (long long)(w.n_head / w.n_kv_head), (long long)w.n_seq, (long long)w.d,
           (long long)w.d_v);
    printf("positions    %d..%d\n", (int)w.positions[0], (int)w.positions[w.n_seq - 1]);
    printf("mask         %s\n", w.causal ? "causal" : "full");
    double def = 1.0 / sqrt((double)w.d);
    printf("scale        %.6g%s\n", w.scale,
           fabs(w.scale - def) <= 1e-12 * def ? " (1/sqrt(d))" : "");
    if (w.rope_applied)
        printf("rope         applied, theta %g\n", w.rope_theta);
    else
        printf("rope         not applied\n");
    printf("datasets     q [%lld, %lld, %lld, %lld], k [%lld, %lld, %lld, %lld], "
           "v [%lld, %lld, %lld, %lld], positions [%lld]\n",
           (long long)w.n_layer, (long long)w.n_head, (long long)w.n_seq, (long long)w.d,
           (long long)w.n_layer, (long long)w.n_kv_head, (long long)w.n_seq, (long long)w.d,
           (long long)w.n_layer, (long long)w.n_kv_head, (long long)w.n_seq, (long long)w.d_v,
           (long long)w.n_seq);
    printf("optional     tokens %s, text %s, hidden ", w.tokens ? "yes" : "no",
           w.text ? "yes" : "no");
    if (w.d_model > 0)
        printf("[%lld, %lld, %lld]\n", (long long)(w.n_layer + 1), (long long)w.n_seq,
               (long long)w.d_model);
    else
        printf("no\n");
    if (w.text) {
        size_t len = strlen(w.text);
        printf("text         %zu bytes: \"", len);
        /* the first 60 bytes, cut at a UTF-8 character boundary, control characters as spaces */
        size_t i = 0;
        for (; i < len && (i < 60 || ((unsigned char)w.text[i] & 0xC0) == 0x80); i++)
            putchar((unsigned char)w.text[i] < 0x20 ? ' ' : w.text[i]);
        printf("%s\"\n", i < len ? "..." : "");
    }
    if (w.profile) {
        if (print_profiles(&w) != 0) {
            ab_workload_free(&w);
            return ab_cmd_fail(ab_fail(AB_E_NOMEM, "out of memory"));
        }
    } else {
        printf("profiles     none\n");
    }
    if (w.tasks.n > 0)
        print_tasks(&w);
    else
        printf("tasks        none\n");
    printf("storage      ");
    print_bytes(sto.file_bytes);
    printf(" on disk, ");
    print_bytes(sto.data_bytes);
    printf(" of data, ");
    print_bytes(sto.stored_bytes);
    printf(" stored, compression %.2fx\n",
           sto.stored_bytes > 0 ? (double)sto.data_bytes / (double)sto.stored_bytes : 1.0);
    ab_workload_free(&w);
    return EX_AB_OK;
}
