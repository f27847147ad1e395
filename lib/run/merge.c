/* merge.c - `attnbench merge` (merge.h): the checks that the pieces are one run's, whole and
 * once each, then the cells unit by unit in the run's order and the results file written as
 * `run` writes it. */
#include "run/merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ab.h"
#include "io/csv.h"
#include "io/results_io.h"
#include "run/run.h"

#define ROW(f) AB_DECL_ROW(struct ab_merge_run_opts, f)
const struct ab_decl ab_merge_run_decl[] = {
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE",
     "results file to write (.h5; CSV tables go next to it)",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

/* One piece as read. */
struct piece {
    const char *path;
    struct ab_results r;
    struct ab_piece p;
    int64_t *group; /* (p.n_units + 1) the first cell of each of its units, then n_cells */
};

/* The cells of a piece cut into runs of one (workload, layer, head), one per unit. */
static int cut_groups(struct piece *pc)
{
    const struct ab_results *r = &pc->r;
    pc->group = malloc(sizeof *pc->group * (size_t)(pc->p.n_units + 1));
    if (!pc->group) return ab_fail(AB_E_NOMEM, "out of memory");
    int64_t g = 0;
    for (int64_t c = 0; c < r->n_cells; c++) {
        const struct ab_cell *a = &r->cells[c], *b = c ? &r->cells[c - 1] : NULL;
        if (b && !strcmp(a->workload, b->workload) && a->layer == b->layer && a->head == b->head)
            continue;
        if (g == pc->p.n_units) break;
        pc->group[g++] = c;
    }
    if (g != pc->p.n_units || (r->n_cells == 0) != (pc->p.n_units == 0))
        return ab_fail(AB_E_DATA, "'%s': damaged piece: its cells are not its %lld heads",
                       pc->path, (long long)pc->p.n_units);
    pc->group[g] = r->n_cells;
    return AB_OK;
}

/* The pieces are the N pieces of one run, each once; by_index[i] the piece of shard i + 1. */
static int check_pieces(struct piece *pcs, int n, struct piece **by_index)
{
    const struct piece *a = &pcs[0];
    for (int i = 1; i < n; i++) {
        const struct piece *b = &pcs[i];
        const char *va = a->r.attnbench_version ? a->r.attnbench_version : "?";
        const char *vb = b->r.attnbench_version ? b->r.attnbench_version : "?";
        if (strcmp(va, vb))
            return ab_fail(AB_E_DATA, "'%s' was written by attnbench %s, '%s' by %s: pieces of "
                           "one run come from one version", b->path, vb, a->path, va);
        if (strcmp(a->p.digest, b->p.digest))
            return ab_fail(AB_E_DATA, "'%s' is a piece of another run than '%s' (other options, "
                           "workloads or seed)", b->path, a->path);
        if (a->p.count != b->p.count || a->p.units_total != b->p.units_total)
            return ab_fail(AB_E_DATA, "'%s' is shard %lld/%lld but '%s' is shard %lld/%lld",
                           b->path, (long long)b->p.index, (long long)b->p.count, a->path,
                           (long long)a->p.index, (long long)a->p.count);
    }
    int64_t n_sh = a->p.count;
    for (int i = 0; i < n; i++) {
        struct piece **slot = &by_index[pcs[i].p.index - 1];
        if (*slot)
            return ab_fail(AB_E_DATA, "'%s' and '%s' are both shard %lld/%lld", (*slot)->path,
                           pcs[i].path, (long long)pcs[i].p.index, (long long)n_sh);
        *slot = &pcs[i];
    }
    for (int64_t i = 0; i < n_sh; i++)
        if (!by_index[i])
            return ab_fail(AB_E_DATA, "shard %lld/%lld missing: %d of %lld pieces given",
                           (long long)i + 1, (long long)n_sh, n, (long long)n_sh);
    return AB_OK;
}

/* The options and command line of the run as one process writing `out` records them (the
 * pieces recorded their own -o): rebuilt from the recorded options (ab_run_opts_from_json),
 * with the seed and thread count of the piece whose attributes the merged file takes. */
static int unsharded_provenance(struct ab_results *res, const char *out)
{
    struct ab_run_opts ro;
    memset(&ro, 0, sizeof ro);
    int rc = ab_decl_defaults(ab_run_decl, &ro);
    if (!rc) rc = ab_run_opts_from_json(res->options, &ro);
    if (!rc) {
        free(ro.out);
        if (!(ro.out = strdup(out))) rc = ab_fail(AB_E_NOMEM, "out of memory");
    }
    char tail[96], *json = NULL, *line = NULL;
    snprintf(tail, sizeof tail, "--seed %llu --threads %lld", (unsigned long long)res->seed,
             (long long)res->threads);
    if (!rc && (!(json = ab_decl_json(ab_run_decl, &ro)) ||
                !(line = ab_decl_command("run", ab_run_decl, &ro,
                                         (const char *const *)res->workloads,
                                         (int)res->n_workloads, tail))))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc) {
        free(res->options), free(res->command_line);
        res->options = json, res->command_line = line;
        json = line = NULL;
    }
    free(json), free(line);
    ab_decl_free(ab_run_decl, &ro);
    return rc;
}

int ab_merge_run(const struct ab_merge_run_opts *o, struct ab_merge_run_out *out)
{
    memset(out, 0, sizeof *out);
    ab_results_init(&out->res);
    if (o->n_pieces < 1) return ab_fail(AB_E_USAGE, "name the pieces to merge");
    if (o->n_pieces > AB_MERGE_MAX_PIECES)
        return ab_fail(AB_E_USAGE, "at most %d pieces", AB_MERGE_MAX_PIECES);
    if (!o->out) return ab_fail(AB_E_USAGE, "name the results file with -o");
    ab_run_csv_paths(o->out, out->csv_cells, out->csv_summary, sizeof out->csv_cells);
    int n = o->n_pieces, rc = AB_OK;
    struct piece *pcs = calloc((size_t)n, sizeof *pcs);
    struct piece **by_index = NULL;
    int64_t *owner = NULL, *at = NULL;
    if (!pcs) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) ab_results_init(&pcs[i].r), pcs[i].path = o->pieces[i];
    for (int i = 0; i < n && !rc; i++) {
        int is_piece;
        if ((rc = ab_results_read_piece(pcs[i].path, &pcs[i].p, &is_piece))) break;
        if (!is_piece)
            rc = ab_fail(AB_E_DATA, "'%s': not a shard piece (pieces are written by `run --shard "
                         "I/N`)", pcs[i].path);
        if (!rc) rc = ab_results_read_h5(pcs[i].path, &pcs[i].r);
    }
    if (!rc && !(by_index = calloc((size_t)pcs[0].p.count, sizeof *by_index)))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    if (!rc) rc = check_pieces(pcs, n, by_index);
    /* every unit of the run in exactly one piece; each piece's cells cut by its units */
    int64_t n_units = rc ? 0 : pcs[0].p.units_total;
    if (!rc && (!(owner = malloc(sizeof *owner * (size_t)(n_units + 1))) ||
                !(at = malloc(sizeof *at * (size_t)(n_units + 1)))))
        rc = ab_fail(AB_E_NOMEM, "out of memory");
    for (int64_t k = 0; !rc && k < n_units; k++) owner[k] = -1;
    for (int i = 0; i < n && !rc; i++) {
        const struct ab_piece *p = &pcs[i].p;
        for (int64_t g = 0; g < p->n_units && !rc; g++) {
            int64_t k = p->units[g];
            if (k < 0 || k >= n_units || (g && k <= p->units[g - 1]) || owner[k] >= 0)
                rc = ab_fail(AB_E_DATA, "'%s': damaged piece: its head list does not fit the "
                             "run's %lld heads", pcs[i].path, (long long)n_units);
            else
                owner[k] = i, at[k] = g;
        }
        if (!rc) rc = cut_groups(&pcs[i]);
    }
    for (int64_t k = 0; !rc && k < n_units; k++)
        if (owner[k] < 0)
            rc = ab_fail(AB_E_DATA, "head %lld of the run is in no piece: the pieces are damaged",
                         (long long)k);
    /* the results: shard 1's attributes, every unit's cells in the run's order */
    struct ab_results *res = &out->res;
    if (!rc) {
        *res = by_index[0]->r; /* moved: its attributes are the merged file's */
        ab_results_init(&by_index[0]->r);
        struct ab_results cells;
        ab_results_init(&cells);
        for (int64_t k = 0; k < n_units && !rc; k++) {
            const struct piece *pc = &pcs[owner[k]];
            const struct ab_results *src = pc == by_index[0] ? res : &pc->r;
            for (int64_t c = pc->group[at[k]]; c < pc->group[at[k] + 1] && !rc; c++)
                rc = ab_results_add(&cells, &src->cells[c]);
        }
        /* the moved results keep their attributes and take the merged cells */
        struct ab_results attrs = *res;
        attrs.cells = cells.cells, attrs.n_cells = cells.n_cells, attrs.cap_cells = cells.cap_cells;
        cells.cells = res->cells, cells.n_cells = res->n_cells, cells.cap_cells = res->cap_cells;
        *res = attrs;
        ab_results_free(&cells); /* the old cells of shard 1 (no attributes) */
        out->shards = pcs[0].p.count, out->units = n_units;
    }
    if (!rc) rc = unsharded_provenance(res, o->out);
    if (!rc) rc = ab_results_summarise(res);
    if (!rc) rc = ab_results_write_h5(o->out, res);
    if (!rc && (rc = ab_results_write_csv(out->csv_cells, out->csv_summary, res)))
        unlink(o->out); /* all or nothing */
    for (int i = 0; i < n; i++) {
        ab_results_free(&pcs[i].r);
        ab_piece_free(&pcs[i].p);
        free(pcs[i].group);
    }
    free(pcs), free(by_index), free(owner), free(at);
    return rc;
}

void ab_merge_run_out_free(struct ab_merge_run_out *out) { ab_results_free(&out->res); }
