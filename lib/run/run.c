/* run.c - `attnbench run` as a library call (see run.h): the options table, the checks that
 * come before any work, the sweep over every workload, and the results file with its CSV
 * tables. */
#include "run/run.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "core/list.h"
#include <jansson.h>
#include "io/csv.h"
#include "io/h5_workload.h"
#include "io/results_io.h"
#include "methods/method.h"
#include "run/journal.h"
#include "run/shard.h"
#ifdef AB_HAVE_MPI
#include "run/run_mpi.h"
#endif

static const char *const phase_words[] = {"prefill", "decode", NULL};
static const char *const phase_aliases[] = {"both", "prefill,decode", NULL};
static const char *const budget_aliases[] = {"default", "0.5,0.25,0.125,0.0625,0.03125",
                                             "paper", "0.7,0.5,0.3,0.2,0.1,0.05", NULL};
static const char *const method_aliases[] = {"all", NULL, NULL};

#define ROW(f) AB_DECL_ROW(struct ab_run_opts, f)
const struct ab_decl ab_run_decl[] = {
    {"plugin", AB_DECL_LIST, ROW(plugins), NULL, 0, 0, "SO",
     "load method rows from this plugin first (repeatable; plugins/README.md)",
     .flags = AB_DECL_CLI | AB_DECL_INPUT | AB_DECL_APPEND},
    {"methods", AB_DECL_LIST, ROW(methods), NULL, 0, 0, "LIST",
     "methods to run, or all (default: every method of the phases)", .aliases = method_aliases},
    {"budgets", AB_DECL_LIST, ROW(budgets), NULL, 0, 1, "LIST",
     "target FLOP ratios in (0, 1], default (0.5 .. 1/32: the default when no --kv-budget or "
     "--bytes-budget is given either) or paper (the Sparse Frontier's grid 0.7 .. 0.05)",
     .item_real = 1, .lo_open = 1, .aliases = budget_aliases},
    {"kv-budget", AB_DECL_LIST, ROW(kv_budget), NULL, 1, INFINITY, "T,...",
     "decode budgets as tokens read per step (cells / m: the cache size of an eviction "
     "method), integers >= 1", .item_real = 1},
    {"bytes-budget", AB_DECL_LIST, ROW(bytes_budget), NULL, 0, 1, "R,...",
     "decode budgets as the ratio of K/V bytes read to dense's, in (0, 1]", .item_real = 1,
     .lo_open = 1},
    {"layer-budget", AB_DECL_STR, ROW(layer_budget), "uniform", 0, 0, "RULE",
     "per-layer targets, budget x weight of mean 1: uniform, pyramid (1.5 at layer 0 down to "
     "0.5 at the last, linear) or W0,W1,... (one weight per layer, normalised); ratios clipped "
     "to 1"},
    {"knob", AB_DECL_STR, ROW(knob), NULL, 0, 0, "NAME=V",
     "run every method at this knob instead of solving budgets"},
    {"phase", AB_DECL_LIST, ROW(phases), "both", 0, 2, "P", "prefill, decode or both",
     .key = "phases", .choices = phase_words, .aliases = phase_aliases},
    {"decode-queries", AB_DECL_INT, ROW(decode_queries), "64", 1, INT32_MAX, "M",
     "decode queries at the end of the sequence"},
    {"rows", AB_DECL_INT, ROW(rows), "256", 1, INT32_MAX, "N",
     "prefill rows evaluated: all up to N, else a seeded sample of N plus task rows"},
    {"decode-horizon", AB_DECL_INT, ROW(decode_horizon), "1024", 1, INT32_MAX, "G",
     "decode: generated tokens that one-off work on the context (cache compression, indexes) "
     "is amortised over, >= M"},
    {"topk", AB_DECL_INT, ROW(topk), "16", 1, 64, "K", "k of topk_recall"},
    {"scenario", AB_DECL_STR, ROW(scenario), NULL, 0, 0, "FILE",
     "record this scenario file's text with the results", .flags = AB_DECL_CLI | AB_DECL_INPUT},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE",
     "results file to write (.h5; CSV tables go next to it)",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {"json", AB_DECL_FLAG, ROW(json), NULL, 0, 0, NULL,
     "print the answer as one JSON document on stdout (schema attnbench/run/1)",
     .flags = AB_DECL_CLI | AB_DECL_SHOW},
    {"resume", AB_DECL_FLAG, ROW(resume), NULL, 0, 0, NULL,
     "take the finished heads of RESULTS.h5.journal (an interrupted run) and compute only the "
     "missing ones", .flags = AB_DECL_CLI | AB_DECL_SHOW},
    {"shard", AB_DECL_STR, ROW(shard), NULL, 0, 0, "I/N",
     "compute part I of N (balanced by estimated cost) and write it as a piece for `merge`",
     .flags = AB_DECL_CLI | AB_DECL_SHOW},
    {0},
};
#undef ROW

void ab_run_csv_paths(const char *out, char *cells, char *summary, size_t cap)
{
    size_t len = strlen(out);
    if (len > 3 && !strcmp(out + len - 3, ".h5")) len -= 3;
    snprintf(cells, cap, "%.*s.csv", (int)len, out);
    snprintf(summary, cap, "%.*s-summary.csv", (int)len, out);
}

/* The whole text of a small file (malloc'd, NUL-terminated), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && n < (1 << 24) && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)n + 1))) {
            size_t got = fread(buf, 1, (size_t)n, f);
            buf[got] = 0;
        }
    }
    fclose(f);
    return buf;
}

/* The conventions recorded with the results, then those of the operators run (decay, bias,
 * temperature), so a reader of the file can interpret their numbers. */
static char *run_notes(const struct ab_sweep_opts *so)
{
    char *notes = strdup(
        "kl = KL(renormalised kept distribution || exact) = -ln(recall) per row, "
        "mean over rows; prefill rows: all up to --rows, else a seeded sample "
        "plus task rows; decode: the last --decode-queries rows, methods decide "
        "from the context only; knob-less methods run once at their fixed cost "
        "(target_ratio 1); a cell meets its budget when flop_ratio is at most "
        "target_ratio, and an infeasible cell (even the smallest knob costs "
        "more) carries no metrics and a reason; prefill selection work (probe "
        "passes, pooling, clustering, hashing) is counted in flops_select of "
        "the head it serves; decode work done once on the context (observation "
        "windows, indexes, calibration probes) is in flops_once and amortised "
        "over the decode horizon G = decode_horizon generated tokens, for which "
        "the evaluated decode queries stand: flop_ratio = (flops_attend + "
        "flops_select + flops_once m / G) / dense, flop_ratio_step the same "
        "without flops_once; model-level methods (pyramidkv, tidal, duo, razor, moa) fit "
        "one knob per phase and target on the whole workload's cost, each head "
        "charging the plan work it uses (its method's header says how), and "
        "their cells carry the workload's feasibility; budget_kind says which measure a "
        "cell's knob was fitted to: flops (flop_ratio <= target_ratio), tokens (decode: "
        "tokens_step = kept cells / m, the keys a decode query reads, <= target_tokens) or "
        "bytes (decode: bytes_ratio = bytes_kv / dense bytes_kv <= target_ratio), by the same "
        "bisection; tokens and bytes budgets give no prefill cells; FIXED rows run at their "
        "default knob under FLOP budgets and under the other kinds when the measure does not "
        "move with their knob, else they are fitted; --layer-budget multiplies the budget by "
        "the layer's weight (mean 1; pyramid 1.5 .. 0.5 linear in depth; FLOP and bytes "
        "targets clipped to 1), layer_target records it; model-level methods fit the "
        "workload's budget unweighted (their per-layer allocation is their own)");
    for (int i = 0; notes && i < so->n_methods; i++) {
        const struct ab_method *mm = so->methods[i];
        if (!mm->convention) continue;
        size_t len = strlen(notes) + strlen(mm->name) + strlen(mm->convention) + 8;
        char *grown = realloc(notes, len);
        if (!grown) {
            free(notes);
            return NULL;
        }
        notes = grown;
        strcat(strcat(strcat(strcat(notes, "; "), mm->name), ": "), mm->convention);
    }
    return notes;
}

/* --layer-budget into the sweep's rule and weights: uniform, pyramid, or W0,W1,... positive
 * numbers. AB_E_USAGE naming the option. */
static int layer_rule(const char *text, struct ab_run_out *out, struct ab_sweep_opts *so)
{
    so->layer_rule = AB_LAYER_UNIFORM, so->layer_given = NULL, so->n_layer_given = 0;
    if (!text || !strcmp(text, "uniform")) return AB_OK;
    if (!strcmp(text, "pyramid")) {
        so->layer_rule = AB_LAYER_PYRAMID;
        return AB_OK;
    }
    int64_t n = 0;
    const char *p = text;
    for (;;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p || !isfinite(x) || x <= 0 || (*end && *end != ',') || n == AB_RUN_MAX_LAYERS)
            return ab_fail(AB_E_USAGE, "option '--layer-budget': wants uniform, pyramid or "
                           "positive layer weights W0,W1,... (at most %d), got '%s'",
                           AB_RUN_MAX_LAYERS, text);
        out->layer_given[n++] = x;
        if (!*end) break;
        p = end + 1;
    }
    so->layer_rule = AB_LAYER_GIVEN, so->layer_given = out->layer_given, so->n_layer_given = n;
    return AB_OK;
}

/* The options into the sweep's: phases, methods, targets, knob. AB_E_USAGE naming the option. */
static int resolve(const struct ab_run_opts *o, struct ab_run_out *out)
{
    struct ab_sweep_opts *so = &out->sweep;
    ab_sweep_defaults(so);
    so->phases = ab_phases_parse(o->phases);
    if (!so->phases) return ab_fail(AB_E_USAGE, "option '--phase': no phase given");
    if (o->decode_horizon < o->decode_queries)
        return ab_fail(AB_E_USAGE, "--decode-horizon %lld is below --decode-queries %lld: the "
                       "evaluated decode queries stand for a generation at least as long",
                       (long long)o->decode_horizon, (long long)o->decode_queries);
    if ((o->kv_budget || o->bytes_budget) && !(so->phases & AB_PHASE_DECODE))
        return ab_fail(AB_E_USAGE, "option '--%s': tokens and bytes budgets are decode budgets, "
                       "and --phase is prefill", o->kv_budget ? "kv-budget" : "bytes-budget");
    so->decode_m = o->decode_queries, so->max_rows = o->rows, so->topk = o->topk;
    so->horizon = o->decode_horizon, so->seed = o->seed;
    int n = 0, rc;
    if ((rc = ab_methods_resolve(o->methods, so->phases, 0, out->methods, AB_RUN_MAX_METHODS, &n)))
        return ab_fail(rc, "option '--methods': %s", ab_errmsg());
    so->methods = out->methods, so->n_methods = n;
    int n_kv = ab_list_reals(o->kv_budget, out->kv_tokens, AB_RUN_MAX_TARGETS);
    int n_by = ab_list_reals(o->bytes_budget, out->kv_bytes, AB_RUN_MAX_TARGETS);
    for (int i = 0; i < n_kv; i++)
        if (out->kv_tokens[i] != floor(out->kv_tokens[i]))
            return ab_fail(AB_E_USAGE, "option '--kv-budget': %g is not a whole number of tokens",
                           out->kv_tokens[i]);
    if (o->knob && (n_kv || n_by))
        return ab_fail(AB_E_USAGE, "option '--knob' runs every method at a knob instead of "
                       "budgets: drop --%s", n_kv ? "kv-budget" : "bytes-budget");
    /* the FLOP grid: as given, or the default one when no budget of any kind is */
    const char *flops = o->budgets ? o->budgets : n_kv || n_by ? NULL : budget_aliases[1];
    so->n_targets = ab_list_reals(flops, out->targets, AB_RUN_MAX_TARGETS);
    so->targets = out->targets;
    so->kv_tokens = out->kv_tokens, so->n_kv_tokens = n_kv;
    so->kv_bytes = out->kv_bytes, so->n_kv_bytes = n_by;
    if ((rc = layer_rule(o->layer_budget, out, so))) return rc;
    if (o->knob && (rc = ab_methods_knob(o->knob, out->methods, n, &so->knob_value))) return rc;
    so->has_knob = o->knob != NULL;
    return AB_OK;
}

/* The state of one run over its units (shard.h): which this process computes, the cells of
 * each unit as a blob (journal.h) once known, the journal, and the progress over every unit. */
struct run_state {
    const struct ab_run_opts *o;
    struct ab_units u;
    int64_t *part;          /* (u.n) the part of each unit (shard or rank), 0 without parts */
    int64_t my_part;        /* the part this process writes or computes */
    unsigned char **blob;   /* (u.n) each known unit's cells, encoded; NULL: not known yet */
    size_t *blen;           /* (u.n) */
    struct ab_journal j;
    int journaling;
    int64_t unit0, n_head;  /* the first unit and the heads of the workload being swept */
    int64_t n_parts;
    const char *journal_path;
    /* progress over every unit of the part: resumed cells, earlier workloads, this one */
    void (*progress)(void *user, int64_t done, int64_t total);
    void *progress_user;
    int64_t done_before, total;
    /* the same as estimated work: of the units done, of the part; the workload being swept */
    double work_before, work_total, work_w;
    int64_t cells_w;
};

/* Reports the estimated work done: the units done, and the share done (cells) of the
 * workload being swept. */
static void report_work(const struct run_state *st, int64_t cells_done_w)
{
    if (!st->o->work) return;
    double w = st->work_before;
    if (st->cells_w > 0) w += st->work_w * (double)cells_done_w / (double)st->cells_w;
    st->o->work(st->o->work_user, w, st->work_total);
}

/* A finished head from the sweep: encoded, journaled (on the disk before the call returns),
 * kept. Serialised by the sweep. */
static int on_head(void *user, int64_t layer, int64_t head, const struct ab_cell *cells,
                   int64_t n)
{
    struct run_state *st = user;
    int64_t unit = st->unit0 + layer * st->n_head + head;
    unsigned char *data;
    size_t len;
    int rc = ab_unit_encode(unit, cells, n, &data, &len);
    if (rc) return rc;
    if (st->journaling && (rc = ab_journal_append(&st->j, data, len))) {
        free(data);
        return rc;
    }
    st->blob[unit] = data, st->blen[unit] = len;
    if (st->journaling && st->o->journaled) st->o->journaled(st->o->journaled_user, st->j.records);
    return AB_OK;
}

/* A unit record of the journal on --resume: one of this run's (and part's) units, whole. */
static int on_found(void *user, const unsigned char *data, size_t len)
{
    struct run_state *st = user;
    int64_t unit = ab_unit_of(data, len);
    if (unit < 0 || unit >= st->u.n || st->part[unit] != st->my_part)
        return ab_fail(AB_E_DATA, "'%s': holds a head that is not one of this run's: delete it "
                       "to start over", st->journal_path);
    if (st->blob[unit]) return AB_OK; /* cannot happen: a head is journaled once */
    struct ab_results check;
    ab_results_init(&check);
    int rc = ab_unit_decode(data, len, st->journal_path, &check);
    if (!rc && check.n_cells != st->u.cells[unit])
        rc = ab_fail(AB_E_DATA, "'%s': a head with %lld cells where this run has %lld: delete it "
                     "to start over", st->journal_path, (long long)check.n_cells,
                     (long long)st->u.cells[unit]);
    ab_results_free(&check);
    if (rc) return rc;
    if (!(st->blob[unit] = malloc(len))) return ab_fail(AB_E_NOMEM, "out of memory");
    memcpy(st->blob[unit], data, len);
    st->blen[unit] = len;
    st->done_before += st->u.cells[unit];
    st->work_before += (double)st->u.cost[unit];
    return AB_OK;
}

/* The sweep's progress over one workload as progress over the run's part. */
static void run_progress(void *user, int64_t done, int64_t total)
{
    (void)total;
    struct run_state *st = user;
    report_work(st, done);
    st->progress(st->progress_user, st->done_before + done, st->total);
}

/* The journal's header (journal.h): what the run computes, line by line. */
static char *journal_header(const struct ab_results *res, const char *options,
                            const struct run_state *st)
{
    size_t cap = 256 + strlen(options);
    for (int64_t i = 0; i < res->n_workloads; i++)
        cap += strlen(res->workloads[i]) + strlen(res->workload_sha256[i]) + 16;
    char *h = malloc(cap), *p = h;
    if (!h) return NULL;
    p += sprintf(p, "attnbench run journal 1\nversion\t%s\noptions\t%s\nseed\t%llu\n", ab_version(),
                 options, (unsigned long long)res->seed);
    for (int64_t i = 0; i < res->n_workloads; i++)
        p += sprintf(p, "workload\t%s\t%s\n", res->workloads[i], res->workload_sha256[i]);
    if (st->o->shard)
        sprintf(p, "shard\t%lld/%lld\n", (long long)st->my_part + 1, (long long)st->n_parts);
    else
        sprintf(p, "shard\tnone\n");
    return h;
}

int ab_run(const struct ab_run_opts *o, void (*progress)(void *user, int64_t done, int64_t total),
           void *progress_user, struct ab_run_out *out)
{
    memset(out, 0, sizeof *out);
    ab_results_init(&out->res);
    if (o->n_workloads < 1) return ab_fail(AB_E_USAGE, "name at least one workload file");
    if (o->n_workloads > AB_RUN_MAX_WORKLOADS)
        return ab_fail(AB_E_USAGE, "at most %d workload files", AB_RUN_MAX_WORKLOADS);
    if (!o->out) return ab_fail(AB_E_USAGE, "name the results file with -o");
    int rc = ab_plugins_load(o->plugins);
    if (rc) return rc;
    rc = resolve(o, out);
    if (rc) return rc;
    int64_t n_parts = 1, my_part = 0;
    if (o->shard) {
        if ((rc = ab_shard_parse(o->shard, &my_part, &n_parts))) return rc;
        out->shard_index = my_part--, out->shard_count = n_parts;
    }
    int mpi = o->mpi_size > 1;
    if (mpi && (o->shard || o->resume == 1))
        return ab_fail(AB_E_USAGE, "--%s is for single-process runs, not under mpirun (ranks "
                       "split the heads themselves)", o->shard ? "shard" : "resume");
#ifndef AB_HAVE_MPI
    if (mpi) return ab_fail(AB_E_USAGE, "this attnbench was built without MPI");
#endif
    if (mpi) n_parts = o->mpi_size, my_part = o->mpi_rank;
    struct ab_sweep_opts *so = &out->sweep;
    struct ab_results *res = &out->res;
    out->res_path = o->out;
    out->wrote = !mpi || o->mpi_rank == 0;
    ab_run_csv_paths(o->out, out->csv_cells, out->csv_summary, sizeof out->csv_cells);

    /* every workload must read before any work starts */
    struct ab_workload *w = calloc((size_t)o->n_workloads, sizeof *w);
    if (!w) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int i = 0; i < o->n_workloads && !rc; i++)
        rc = ab_h5_workload_read(o->workloads[i], &w[i]);
    for (int i = 0; i < o->n_workloads && !rc; i++)
        if ((so->phases & AB_PHASE_DECODE) && o->decode_queries >= w[i].n_seq)
            rc = ab_fail(AB_E_USAGE, "'%s': --decode-queries %lld must be below its length %lld",
                         o->workloads[i], (long long)o->decode_queries, (long long)w[i].n_seq);
    for (int i = 0; i < o->n_workloads && !rc; i++) /* given layer weights: one per layer */
        if (so->layer_rule == AB_LAYER_GIVEN && so->n_layer_given != w[i].n_layer)
            rc = ab_fail(AB_E_USAGE, "option '--layer-budget': %lld weights, but '%s' has %lld "
                         "layers", (long long)so->n_layer_given, o->workloads[i],
                         (long long)w[i].n_layer);

    /* provenance: the options as the command line that gives them, and as JSON */
    char tail[96];
    snprintf(tail, sizeof tail, "--seed %llu --threads %d", (unsigned long long)o->seed,
             ab_threads_get());
    char *line = rc ? NULL : ab_decl_command("run", ab_run_decl, o, o->workloads,
                                             o->n_workloads, tail);
    if (!rc && !line) rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc)
        rc = ab_results_provenance_line(res, line, o->workloads, o->n_workloads, o->seed);
    free(line);
    if (!rc && !(res->options = ab_decl_json(ab_run_decl, o)))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc && !(res->notes = run_notes(so))) rc = ab_fail(AB_E_NOMEM, "out of memory");
    res->decode_horizon = so->phases & AB_PHASE_DECODE ? o->decode_horizon : 0;
    if (!rc && o->scenario && !(res->scenario = read_text(o->scenario)))
        rc = ab_fail(AB_E_NOFILE, "cannot read scenario '%s'", o->scenario);

    /* the units, their parts, and what the journal already holds */
    struct run_state st = {.o = o, .my_part = my_part, .n_parts = n_parts, .progress = progress,
                           .progress_user = progress_user};
    char journal_path[4200];
    snprintf(journal_path, sizeof journal_path, "%s.journal", o->out);
    st.journal_path = journal_path;
    if (!rc) rc = ab_units_init(&st.u, w, o->n_workloads, so);
    if (!rc) {
        st.part = calloc((size_t)st.u.n + 1, sizeof *st.part);
        st.blob = calloc((size_t)st.u.n + 1, sizeof *st.blob);
        st.blen = calloc((size_t)st.u.n + 1, sizeof *st.blen);
        if (!st.part || !st.blob || !st.blen) rc = ab_fail(AB_E_NOMEM, "out of memory");
    }
    if (!rc && n_parts > 1) rc = ab_units_assign(&st.u, n_parts, st.part);
    /* what the run computes: the options but for -o (pieces and the merged file differ) */
    char digest[65] = "", *what = NULL;
    struct ab_run_opts no_out = *o;
    no_out.out = NULL;
    if (!rc && !(what = ab_decl_json(ab_run_decl, &no_out)))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc)
        ab_run_digest(ab_version(), what, res->seed, res->workloads, res->workload_sha256,
                      res->n_workloads, digest);
    for (int64_t k = 0; !rc && k < st.u.n; k++)
        if (st.part[k] == my_part)
            out->units++, st.total += st.u.cells[k], st.work_total += (double)st.u.cost[k];
    if (!rc && !mpi) {
        char *header = journal_header(res, what, &st);
        if (!header) rc = ab_fail(AB_E_NOMEM, "out of memory");
        if (!rc) rc = ab_journal_open(&st.j, journal_path, header, o->resume, on_found, &st);
        free(header);
        st.journaling = !rc;
        if (!st.journaling) ab_journal_close(&st.j, 0); /* refused: the journal as it was */
        for (int64_t k = 0; k < st.u.n; k++) out->units_resumed += st.blob[k] != NULL;
    }

    /* the sweep over the units still missing from this part */
    if (progress) so->progress = run_progress, so->progress_user = &st;
    so->on_head = on_head, so->on_head_user = &st;
    double t0 = ab_now();
    if (!rc && progress) report_work(&st, 0), progress(progress_user, st.done_before, st.total);
    for (int i = 0; i < o->n_workloads && !rc; i++) {
        int64_t n_j = w[i].n_layer * w[i].n_head, n_sel = 0;
        unsigned char *sel = calloc((size_t)n_j, 1);
        if (!sel) {
            rc = ab_fail(AB_E_NOMEM, "out of memory");
            break;
        }
        st.unit0 = st.u.first[i], st.n_head = w[i].n_head;
        for (int64_t j = 0; j < n_j; j++) {
            int64_t k = st.unit0 + j;
            sel[j] = st.part[k] == my_part && !st.blob[k];
            n_sel += sel[j];
        }
        so->units = sel;
        st.cells_w = n_sel * ab_sweep_count_head(&w[i], so);
        st.work_w = (double)n_sel * (double)ab_unit_cost(&w[i], so);
        if (n_sel) rc = ab_sweep_workload(&w[i], o->workloads[i], so, NULL);
        so->units = NULL;
        free(sel);
        st.done_before += st.cells_w;
        st.work_before += st.work_w;
        st.cells_w = 0, st.work_w = 0;
        out->units_computed += n_sel;
        if (!rc && progress) report_work(&st, 0), progress(progress_user, st.done_before, st.total);
    }
    so->on_head = NULL, so->on_head_user = NULL;
    so->progress = NULL, so->progress_user = NULL;
    out->seconds = ab_now() - t0;
#ifdef AB_HAVE_MPI
    if (mpi) rc = ab_run_mpi_gather(o->mpi_rank, o->mpi_size, rc, st.u.n, st.part, st.blob,
                                    st.blen);
#endif

    /* the table in the single-process order: every unit of the part (of the run, under MPI
     * on rank 0), from its blob */
    int whole = mpi || n_parts == 1;
    for (int64_t k = 0; k < st.u.n && !rc && out->wrote; k++) {
        if (!whole && st.part[k] != my_part) continue;
        if (!st.blob[k])
            rc = ab_fail(AB_E_INTERNAL, "head %lld of the run was never computed", (long long)k);
        else
            rc = ab_unit_decode(st.blob[k], st.blen[k], journal_path, res);
    }
    if (!rc && out->wrote) rc = ab_results_summarise(res);
    if (!rc && out->wrote && o->shard) {
        struct ab_piece piece = {.index = my_part + 1, .count = n_parts, .units_total = st.u.n,
                                 .n_units = out->units};
        memcpy(piece.digest, digest, 65);
        piece.units = malloc(sizeof *piece.units * (size_t)(out->units + 1));
        if (!piece.units) rc = ab_fail(AB_E_NOMEM, "out of memory");
        for (int64_t k = 0, m = 0; !rc && k < st.u.n; k++)
            if (st.part[k] == my_part) piece.units[m++] = k;
        if (!rc) rc = ab_results_write_piece(o->out, res, &piece);
        free(piece.units);
    } else if (!rc && out->wrote) {
        rc = ab_results_write_h5(o->out, res);
    }
    if (!rc && out->wrote && (rc = ab_results_write_csv(out->csv_cells, out->csv_summary, res)))
        unlink(o->out); /* all or nothing */
    /* done: the results hold every head; failed: the journal stays when it holds finished
     * heads, for --resume once the problem is fixed (a full disk, say), else it goes */
    int64_t kept = st.journaling && rc ? st.j.records : 0;
    if (st.journaling) ab_journal_close(&st.j, !rc || kept == 0);
    if (kept) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ab_errmsg());
        rc = ab_fail(rc, "%s (%lld finished heads kept in '%s': rerun with --resume to go on)",
                     msg, (long long)kept, journal_path);
    }
    free(what);
    for (int64_t c = 0; c < res->n_cells; c++) out->infeasible += !res->cells[c].feasible;
    for (int64_t k = 0; st.blob && k < st.u.n; k++) free(st.blob[k]);
    free(st.blob), free(st.blen), free(st.part);
    ab_units_free(&st.u);
    for (int i = 0; i < o->n_workloads; i++) ab_workload_free(&w[i]);
    free(w);
    return rc;
}

int ab_run_opts_from_json(const char *json, struct ab_run_opts *o)
{
    json_error_t err;
    json_t *root = json_loads(json ? json : "", 0, &err);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ab_fail(AB_E_DATA, "the recorded options are not a JSON object");
    }
    int rc = AB_OK;
    char buf[8192];
    for (const struct ab_decl *d = ab_run_decl; d->name && !rc; d++) {
        char key[64];
        json_t *v = json_object_get(root, ab_decl_key(d, key, sizeof key));
        if (!v || json_is_null(v)) continue; /* not given: the default (NULL) */
        size_t n = 0;
        buf[0] = 0;
        json_t *items[] = {v};
        size_t n_items = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n_items && n < sizeof buf - 64; i++) {
            json_t *x = json_is_array(v) ? json_array_get(v, i) : items[0];
            const char *sep = i ? "," : "";
            if (json_is_string(x))
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", sep, json_string_value(x));
            else if (json_is_integer(x))
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", sep,
                                      (long long)json_integer_value(x));
            else if (json_is_real(x))
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%.17g", sep, json_real_value(x));
            else if (json_is_boolean(x))
                n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", sep,
                                      json_is_true(x) ? "true" : "false");
        }
        rc = ab_decl_set(d, o, buf);
        if (rc) rc = ab_fail(AB_E_DATA, "the recorded option '%s': %s", key, ab_errmsg());
    }
    json_decref(root);
    return rc;
}

void ab_run_out_free(struct ab_run_out *out) { ab_results_free(&out->res); }
