/* ingest.c - `attnbench ingest` as a library call (see ingest.h): the options table, the checks
 * of OUTPUTS against the workload before any work, the measurement through the sweep's own
 * metric code (ab_sweep_external), and the results file with its CSV tables. */
#include "run/ingest.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ab.h"
#include "eval/eval.h"
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/import.h"
#include "io/results_io.h"
#include "methods/method.h"
#include "run/run.h"

static const char *const phase_words[] = {"auto", "prefill", "decode", NULL};
static const char *const family_words[] = {"dense", "static", "dynamic", "kv",
                                           "linear", "calibration", NULL};
static const char *const dtype_words[] = {"headers", "bf16", "bfloat16", NULL};

#define ROW(f) AB_DECL_ROW(struct ab_ingest_run_opts, f)
const struct ab_decl ab_ingest_run_decl[] = {
    {"name", AB_DECL_STR, ROW(name), NULL, 0, 0, "NAME",
     "the method's name in the results ([a-z0-9-]+, not a registry row; required)"},
    {"phase", AB_DECL_WORD, ROW(phase), "auto", 0, 0, "P",
     "prefill, decode, or auto: from the rows of o (n: prefill, --decode-queries: decode)",
     .choices = phase_words},
    {"family", AB_DECL_STR, ROW(family), NULL, 0, 0, "F",
     "the method's family (a registry family; default kv in decode, dynamic in prefill)",
     .choices = family_words},
    {"provenance", AB_DECL_STR, ROW(provenance), NULL, 0, 0, "TEXT",
     "where the outputs come from (framework, kernel, commit), recorded with the results"},
    {"knob-name", AB_DECL_STR, ROW(knob_name), NULL, 0, 0, "NAME",
     "the name of the knob column when OUTPUTS holds `knob`"},
    {"decode-queries", AB_DECL_INT, ROW(decode_queries), "64", 1, INT32_MAX, "M",
     "decode queries at the end of the sequence (as run's)"},
    {"rows", AB_DECL_INT, ROW(rows), "256", 1, INT32_MAX, "N",
     "prefill rows evaluated: all up to N, else a seeded sample of N plus task rows (as run's)"},
    {"decode-horizon", AB_DECL_INT, ROW(decode_horizon), "1024", 1, INT32_MAX, "G",
     "decode horizon recorded with the results (as run's; the declared FLOPs carry no "
     "one-off term)"},
    {"topk", AB_DECL_INT, ROW(topk), "16", 1, 64, "K", "k of topk_recall"},
    {"dtype", AB_DECL_WORD, ROW(bf16), "headers", 0, 0, "bf16",
     "bf16: read 2-byte void .npy members as bfloat16 (as import's)", .choices = dtype_words},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE",
     "results file to write (.h5; CSV tables go next to it; default OUTPUTS' stem + "
     "-results.h5)", .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

/* "(2, 3, 4)" */
static void shape_text(int rank, const int64_t *shape, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld%s", (long long)shape[i],
                                i + 1 < rank ? ", " : "");
    if (len < cap) snprintf(buf + len, cap - len, ")");
}

/* Reads array `name` of OUTPUTS as `as` and checks its shape against want (rank dims; -1: any
 * size). Optional arrays that are absent leave a empty and *has 0. */
static int read_checked(const struct ab_ingest_run_opts *o, const char *name, int as, int required,
                        int rank, const int64_t *want, const char *what, struct ab_array *a,
                        char *src, size_t cap, int *has)
{
    int rc = ab_import_has_tensor(o->outputs, name, has);
    if (rc) return rc;
    if (!*has) {
        if (!required) return AB_OK;
        return ab_fail(AB_E_DATA, "'%s': no array '%s' (%s)", o->outputs, name, what);
    }
    if ((rc = ab_import_read_tensor(o->outputs, name, o->bf16 ? AB_DT_BF16 : 0, as, a, src, cap)))
        return rc;
    int ok = a->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = want[i] < 0 || a->shape[i] == want[i];
    if (!ok) {
        char got[256], exp[256] = "(";
        shape_text(a->rank, a->shape, got, sizeof got);
        for (int i = 0; i < rank; i++) {
            char d[48];
            if (want[i] < 0)
                snprintf(d, sizeof d, "%s%s", i ? "R" : "B", i + 1 < rank ? ", " : ")");
            else
                snprintf(d, sizeof d, "%lld%s", (long long)want[i], i + 1 < rank ? ", " : ")");
            strncat(exp, d, sizeof exp - strlen(exp) - 1);
        }
        return ab_fail(AB_E_DATA, "'%s': %s has shape %s where the workload '%s' wants %s (%s)",
                       src, name, got, o->workload, exp, what);
    }
    return AB_OK;
}

/* The first value of a that is not finite (or negative, when nonneg), named by its index. */
static int check_values(const struct ab_array *a, const char *src, const char *name, int nonneg)
{
    for (int64_t i = 0; i < a->n; i++) {
        double v = a->as == AB_DT_F64 ? ((const double *)a->data)[i] : ((const float *)a->data)[i];
        if (isfinite(v) && (!nonneg || v >= 0)) continue;
        int64_t idx[AB_ARRAY_MAX_RANK], rest = i;
        for (int d = a->rank - 1; d >= 0; d--) idx[d] = rest % a->shape[d], rest /= a->shape[d];
        char at[256];
        shape_text(a->rank, idx, at, sizeof at);
        return ab_fail(AB_E_DATA, "'%s': %s holds %s at index %s", src, name,
                       isnan(v)   ? "NaN"
                       : isinf(v) ? "an infinity"
                                  : "a negative value",
                       at);
    }
    return AB_OK;
}

/* The kept masks: values 0 / 1 only, and no key outside each row's visible keys. */
static int check_keep(const struct ab_array *a, const char *src, const struct ab_workload *w,
                      int64_t q0)
{
    const unsigned char *k = a->data;
    int64_t B = a->shape[0], L = w->n_layer, H = w->n_head, R = a->shape[3], n = w->n_seq;
    for (int64_t i = 0; i < a->n; i++)
        if (k[i] > 1) {
            int64_t idx[AB_ARRAY_MAX_RANK], rest = i;
            for (int d = a->rank - 1; d >= 0; d--) idx[d] = rest % a->shape[d], rest /= a->shape[d];
            char at[256];
            shape_text(a->rank, idx, at, sizeof at);
            return ab_fail(AB_E_DATA, "'%s': keep holds a value other than 0 or 1 at index %s",
                           src, at);
        }
    for (int64_t l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++) {
            struct ab_head hd;
            ab_workload_head(w, l, h, &hd);
            for (int64_t r = 0; r < R; r++) {
                int64_t vis = ab_head_visible(&hd, q0 + r);
                for (int64_t b = 0; b < B; b++) {
                    const unsigned char *row = k + (((b * L + l) * H + h) * R + r) * n;
                    for (int64_t j = vis; j < n; j++)
                        if (row[j])
                            return ab_fail(AB_E_DATA, "'%s': keep marks key %lld for query row "
                                           "%lld (budget %lld, layer %lld, head %lld), outside "
                                           "the causal mask", src, (long long)j,
                                           (long long)(q0 + r), (long long)b, (long long)l,
                                           (long long)h);
                }
            }
        }
    return AB_OK;
}

/* 1 when a and b name the same existing file. */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!strcmp(a, b)) return 1;
    return !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The root attribute `external`: {"external": {NAME: {"source", "sha256", "provenance"}}}. */
static char *external_json(const struct ab_ingest_run_opts *o, const char *sha)
{
    json_t *entry = json_pack("{s:s, s:s, s:s}", "source", o->outputs, "sha256", sha,
                              "provenance", o->provenance ? o->provenance : "");
    json_t *names = entry ? json_object() : NULL, *root = names ? json_object() : NULL;
    char *text = NULL;
    if (root && !json_object_set_new(names, o->name, entry) &&
        !json_object_set_new(root, "external", names))
        text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    else {
        if (!names) json_decref(entry);
        else if (!root) json_decref(names);
    }
    json_decref(root);
    return text;
}

static int check_name(const struct ab_ingest_run_opts *o)
{
    if (!o->name || !o->name[0])
        return ab_fail(AB_E_USAGE, "name the method with --name NAME");
    size_t len = strlen(o->name);
    if (len > 64 || strspn(o->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != len)
        return ab_fail(AB_E_USAGE, "option '--name': '%s' is not a method name ([a-z0-9-]+, at "
                       "most 64 characters)", o->name);
    if (ab_method_find(o->name))
        return ab_fail(AB_E_USAGE, "option '--name': '%s' is a registry row; an external method "
                       "needs a name of its own (e.g. '%s-ext')", o->name, o->name);
    return AB_OK;
}

int ab_ingest_run(const struct ab_ingest_run_opts *o, struct ab_ingest_out *out)
{
    memset(out, 0, sizeof *out);
    ab_results_init(&out->res);
    if (!o->workload || !o->outputs)
        return ab_fail(AB_E_USAGE, "name the workload and the outputs: ingest WORKLOAD.h5 OUTPUTS");
    int rc = check_name(o);
    if (rc) return rc;
    if (o->decode_horizon < o->decode_queries)
        return ab_fail(AB_E_USAGE, "--decode-horizon %lld is below --decode-queries %lld",
                       (long long)o->decode_horizon, (long long)o->decode_queries);
    if (o->out) {
        snprintf(out->res_path, sizeof out->res_path, "%s", o->out);
    } else {
        const char *base = strrchr(o->outputs, '/'), *dot = strrchr(o->outputs, '.');
        size_t len = dot && (!base || dot > base) ? (size_t)(dot - o->outputs) : strlen(o->outputs);
        snprintf(out->res_path, sizeof out->res_path, "%.*s-results.h5", (int)len, o->outputs);
    }
    if (same_file(out->res_path, o->workload) || same_file(out->res_path, o->outputs))
        return ab_fail(AB_E_USAGE, "the results file '%s' is an input", out->res_path);
    ab_run_csv_paths(out->res_path, out->csv_cells, out->csv_summary, sizeof out->csv_cells);

    struct ab_workload w;
    struct ab_array ao = {0}, af = {0}, ab = {0}, ak = {0}, at = {0}, an = {0};
    char so[600], sf[600], sb[600], sk[600], st[600], sn[600];
    int has_o, has_f, has_b, has_k, has_t, has_n;
    char *line = NULL;
    if ((rc = ab_h5_workload_read(o->workload, &w))) return rc;
    int64_t L = w.n_layer, H = w.n_head, n = w.n_seq, dv = w.d_v, m = o->decode_queries;
    /* o first: it fixes B and R, and R the phase */
    int64_t want_o[5] = {-1, L, H, -1, dv};
    if ((rc = read_checked(o, "o", AB_DT_F32, 1, 5, want_o, "budgets, layers, heads, rows, d_v",
                           &ao, so, sizeof so, &has_o)))
        goto done;
    int64_t B = ao.shape[0], R = ao.shape[3];
    int phase = o->phase == 1 ? AB_PHASE_PREFILL : o->phase == 2 ? AB_PHASE_DECODE : 0;
    if (!phase) phase = R == n ? AB_PHASE_PREFILL : R == m ? AB_PHASE_DECODE : 0;
    if (B < 1) {
        rc = ab_fail(AB_E_DATA, "'%s': o holds no budget (its first dimension is 0)", so);
        goto done;
    }
    if (m >= n && (phase == AB_PHASE_DECODE || R == m)) {
        rc = ab_fail(AB_E_USAGE, "'%s': --decode-queries %lld must be below its length %lld",
                     o->workload, (long long)m, (long long)n);
        goto done;
    }
    if (!phase || (phase == AB_PHASE_PREFILL && R != n) || (phase == AB_PHASE_DECODE && R != m)) {
        rc = ab_fail(AB_E_DATA, "'%s': o has %lld rows per head where the workload '%s' has n = "
                     "%lld (prefill) and --decode-queries %lld (decode)%s", so, (long long)R,
                     o->workload, (long long)n, (long long)m,
                     o->phase ? (o->phase == 1 ? "; --phase prefill wants n"
                                               : "; --phase decode wants m")
                              : "");
        goto done;
    }
    int64_t q0 = phase == AB_PHASE_DECODE ? n - m : 0;
    int64_t want_f[3] = {B, L, H}, want_b[1] = {B}, want_k[5] = {B, L, H, R, n};
    if ((rc = read_checked(o, "flops", AB_DT_F64, 1, 3, want_f,
                           "the declared FLOPs of each budget, layer and head", &af, sf,
                           sizeof sf, &has_f)) ||
        (rc = read_checked(o, "bytes_kv", AB_DT_F64, 0, 3, want_f, "budgets, layers, heads", &ab,
                           sb, sizeof sb, &has_b)) ||
        (rc = read_checked(o, "budget", AB_DT_F64, 0, 1, want_b, "one target per budget", &at, st,
                           sizeof st, &has_t)) ||
        (rc = read_checked(o, "knob", AB_DT_F64, 0, 1, want_b, "one knob per budget", &an, sn,
                           sizeof sn, &has_n)) ||
        (rc = read_checked(o, "keep", AB_DT_U8, 0, 5, want_k, "budgets, layers, heads, rows, n",
                           &ak, sk, sizeof sk, &has_k)))
        goto done;
    if ((rc = check_values(&ao, so, "o", 0)) || (rc = check_values(&af, sf, "flops", 1)) ||
        (has_b && (rc = check_values(&ab, sb, "bytes_kv", 1))) ||
        (has_n && (rc = check_values(&an, sn, "knob", 0))) ||
        (has_t && (rc = check_values(&at, st, "budget", 1))) ||
        (has_k && (rc = check_keep(&ak, sk, &w, q0))))
        goto done;
    for (int64_t b = 0; has_t && b < B; b++) {
        double t = ((const double *)at.data)[b];
        if (!(t > 0 && t <= 1)) {
            rc = ab_fail(AB_E_DATA, "'%s': budget %lld is %g, not a FLOP ratio in (0, 1]", st,
                         (long long)b, t);
            goto done;
        }
    }
    if (has_n && !o->knob_name) {
        rc = ab_fail(AB_E_USAGE, "'%s' holds `knob`: name it with --knob-name", o->outputs);
        goto done;
    }
    if (o->knob_name && !has_n) {
        rc = ab_fail(AB_E_USAGE, "--knob-name goes with an array `knob` in '%s'", o->outputs);
        goto done;
    }

    /* provenance: the options as the command line that gives them, and as JSON */
    struct ab_results *res = &out->res;
    if ((rc = ab_results_sha256_file(o->outputs, out->sha256))) goto done;
    const char *pos[2] = {o->workload, o->outputs};
    struct ab_ingest_run_opts shown = *o;
    shown.out = out->res_path;
    char tail[96];
    snprintf(tail, sizeof tail, "--seed %llu --threads %d", (unsigned long long)o->seed,
             ab_threads_get());
    if (!(line = ab_decl_command("ingest", ab_ingest_run_decl, &shown, pos, 2, tail))) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = ab_results_provenance_line(res, line, pos, 1, o->seed))) goto done;
    if (!(res->options = ab_decl_json(ab_ingest_run_decl, &shown)) ||
        !(res->external = external_json(o, out->sha256))) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    char notes[1024];
    snprintf(notes, sizeof notes,
             "external method %s (`attnbench ingest`): outputs computed elsewhere (root "
             "attribute external); metrics on the rows `run` evaluates with the same --rows, "
             "--decode-queries and seed; flops_attend holds the declared FLOPs of the phase "
             "(flops_select and flops_once 0, ops_other NaN%s), flop_ratio = declared / dense "
             "FLOPs of the phase; %s; %s; time_s NaN (not measured here)",
             o->name, has_b ? "" : ", bytes_kv NaN: not declared",
             has_k ? "kept masks given: recall, topk_recall, kl and density from them"
                   : "no kept masks: recall, topk_recall, kl, density and sparsity NaN",
             has_t ? "target_ratio from the declared budgets; a cell above its target is "
                     "infeasible (no metrics)"
                   : "no declared budgets: a cell's target_ratio is its achieved ratio");
    if (!(res->notes = strdup(notes))) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    res->decode_horizon = phase == AB_PHASE_DECODE ? o->decode_horizon : 0;

    /* the cells, measured as the sweep measures built-in ones */
    struct ab_sweep_opts so_;
    ab_sweep_defaults(&so_);
    so_.phases = (unsigned)phase, so_.decode_m = m, so_.max_rows = o->rows, so_.topk = o->topk;
    so_.horizon = o->decode_horizon, so_.seed = o->seed;
    struct ab_external x = {
        .method = o->name,
        .family = o->family ? o->family : phase == AB_PHASE_DECODE ? "kv" : "dynamic",
        .knob_name = o->knob_name,
        .phase = phase,
        .n_budget = B,
        .n_rows_out = R,
        .o = ao.data,
        .keep = has_k ? ak.data : NULL,
        .flops = af.data,
        .bytes_kv = has_b ? ab.data : NULL,
        .target = has_t ? at.data : NULL,
        .knob = has_n ? an.data : NULL,
    };
    out->phase = phase, out->n_budget = B, out->has_keep = has_k;
    if ((rc = ab_sweep_external(&w, o->workload, &so_, &x, res))) goto done;
    if ((rc = ab_results_summarise(res))) goto done;
    if ((rc = ab_results_write_h5(out->res_path, res))) goto done;
    if ((rc = ab_results_write_csv(out->csv_cells, out->csv_summary, res)))
        unlink(out->res_path); /* all or nothing */
    for (int64_t c = 0; c < res->n_cells; c++) out->infeasible += !res->cells[c].feasible;
done:
    free(line);
    ab_array_free(&ao), ab_array_free(&af), ab_array_free(&ab);
    ab_array_free(&ak), ab_array_free(&at), ab_array_free(&an);
    ab_workload_free(&w);
    return rc;
}

void ab_ingest_out_free(struct ab_ingest_out *out) { ab_results_free(&out->res); }
