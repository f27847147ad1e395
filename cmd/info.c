/* info.c - `attnbench info FILE`: what a workload file holds, read without loading the bulk
 * tensors (metadata, shapes, the small datasets), so it answers at once on files of any size;
 * for a results file (run, heads, eval-model), what it was made from and the tables it holds.
 *
 * Output (stdout) is one "key  value" line per fact, then the profile table with a compact
 * layer x kv-head grid of one-letter codes, the task summary and the storage figures. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/workload.h"
#include "eval/results.h"
#include "io/h5_util.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "opts.h"

static const char *usage_text = "attnbench info FILE";

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

/* `info` of a results file (run, heads, eval-model): what it was made from and what it holds. */
static int info_results(const char *path, const struct ab_h5_storage *sto)
{
    struct ab_results r;
    ab_results_init(&r);
    int rc = ab_results_read_h5(path, &r);
    if (rc != AB_OK) return ab_cmd_fail(rc);
    printf("file         %s\n", path);
    printf("schema       %s\n", AB_RESULTS_SCHEMA);
    printf("created      %s by attnbench %s on %s\n", r.created_utc ? r.created_utc : "(unknown)",
           r.attnbench_version ? r.attnbench_version : "(unknown)",
           r.hostname ? r.hostname : "(unknown host)");
    if (r.command_line) printf("command      %s\n", r.command_line);
    if (r.options) printf("options      %s\n", r.options);
    printf("workloads    %lld\n", (long long)r.n_workloads);
    for (int64_t i = 0; i < r.n_workloads; i++)
        printf("  %s (sha256 %.12s)\n", r.workloads[i],
               r.workload_sha256 && r.workload_sha256[i] ? r.workload_sha256[i] : "?");
    int64_t infeasible = 0, decode = 0;
    for (int64_t i = 0; i < r.n_cells; i++) {
        infeasible += !r.cells[i].feasible;
        decode += !strcmp(r.cells[i].phase, "decode");
    }
    printf("cells        %lld (%lld methods, %lld prefill, %lld decode, %lld infeasible)\n",
           (long long)r.n_cells,
           (long long)(r.n_cells ? distinct(&r.cells[0].method, sizeof r.cells[0], r.n_cells) : 0),
           (long long)(r.n_cells - decode), (long long)decode, (long long)infeasible);
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

/* The profiles table: count per profile, then a layer x kv-head grid of letters. */
static int print_profiles(const struct ab_workload *w)
{
    int64_t n = w->n_layer * w->n_kv_head, n_rows = 0;
    struct profile_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) return -1;
    for (int64_t i = 0; i < n; i++) {
        const char *name = w->profile[i] && w->profile[i][0] ? w->profile[i] : "(none)";
        int64_t r = 0;
        while (r < n_rows && strcmp(rows[r].name, name)) r++;
        if (r == n_rows) rows[n_rows++] = (struct profile_row){name, 0, '?'};
        rows[r].count++;
    }
    qsort(rows, (size_t)n_rows, sizeof *rows, cmp_profile);
    assign_codes(rows, n_rows);
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

/* The task summary: counts per kind, rows, keys, codebook, threshold, planted heads. */
static void print_tasks(const struct ab_workload *w)
{
    const struct ab_tasks *t = &w->tasks;
    int64_t per_kind[3] = {0, 0, 0};
    int32_t row_lo = INT32_MAX, row_hi = INT32_MIN;
    int64_t keys_lo = INT64_MAX, keys_hi = 0;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->kind[i] >= 0 && t->kind[i] < 3) per_kind[t->kind[i]]++;
        row_lo = AB_MIN(row_lo, t->row[i]);
        row_hi = AB_MAX(row_hi, t->row[i]);
        int64_t nk = t->key_off[i + 1] - t->key_off[i];
        keys_lo = AB_MIN(keys_lo, nk);
        keys_hi = AB_MAX(keys_hi, nk);
    }
    printf("tasks        %lld queries:", (long long)t->n);
    const char *sep = " ";
    for (int k = 0; k < 3; k++)
        if (per_kind[k]) {
            printf("%s%lld %s", sep, (long long)per_kind[k], ab_task_kind_name(k));
            sep = ", ";
        }
    printf("\n");
    printf("  rows       %d..%d\n", (int)row_lo, (int)row_hi);
    printf("  keys       %lld in all, %lld..%lld per task\n", (long long)t->key_off[t->n],
           (long long)keys_lo, (long long)keys_hi);
    printf("  codebook   %lld x %lld\n", (long long)t->n_code, (long long)w->d_v);
    printf("  threshold  %g (aggregate cosine)\n", t->agg_threshold);
    int64_t n_heads = w->n_layer * w->n_kv_head, n_planted = 0;
    for (int64_t i = 0; t->planted && i < n_heads; i++) n_planted += t->planted[i] != 0;
    printf("  planted    %lld of %lld kv heads", (long long)n_planted, (long long)n_heads);
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

int cmd_info(int argc, char **argv)
{
    const struct ab_opt opts[] = {{NULL, AB_OPT_END, NULL, NULL, NULL}};
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
    if (results) return info_results(path, &sto);
    rc = ab_h5_workload_read_meta(path, &w);
    if (rc != AB_OK) return ab_cmd_fail(rc);

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
