/* report_load.c - the inputs of `attnbench report` (report.h): reads one or more results files,
 * moves the cells of all of them into one merged table whose summary is recomputed over every
 * cell, and appends each file's optional /heads table (per-head statistics such as the sink
 * score, entropy and locality), matching its columns by name across files (NaN where a file
 * lacks one; integer columns such as sec_pos1 are held as doubles beside the float ones). The
 * report (report.c) is drawn from the merged data alone. */
#include "report/report.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/results_io.h"

/* Appends the /heads table of path (when it has one) to h: integer columns layer and head, an
 * optional string column workload (else the file's first workload), every numeric column
 * (integers as doubles), read by ab_results_read_heads. */
static int read_heads(const char *path, const char *first_workload, struct ab_heads_table *h)
{
    struct ab_heads_table add;
    int rc = ab_results_read_heads(path, NULL, 0, first_workload, &add);
    if (rc != AB_OK || !add.layer) return rc; /* add.layer NULL: no /heads */
    /* append to h: columns matched by name, missing ones NaN */
    if (!h->n) {
        ab_heads_table_free(h); /* an earlier empty table */
        *h = add;
        memset(&add, 0, sizeof add);
        goto done;
    }
    {
        int64_t n = h->n + add.n;
        int64_t *l2 = realloc(h->layer, sizeof(int64_t) * (size_t)n);
        if (l2) h->layer = l2;
        int64_t *h2 = realloc(h->head, sizeof(int64_t) * (size_t)n);
        if (h2) h->head = h2;
        char **w2 = realloc(h->workload, sizeof(char *) * (size_t)n);
        if (w2) h->workload = w2;
        if (!l2 || !h2 || !w2) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        for (int c = 0; c < h->n_cols; c++) {
            double *grown = realloc(h->col[c], sizeof(double) * (size_t)n);
            if (!grown) {
                rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
                goto done;
            }
            h->col[c] = grown;
            int src = -1;
            for (int a = 0; a < add.n_cols; a++)
                if (!strcmp(add.col_name[a], h->col_name[c])) src = a;
            for (int64_t i = 0; i < add.n; i++)
                grown[h->n + i] = src >= 0 ? add.col[src][i] : NAN;
        }
        memcpy(h->layer + h->n, add.layer, sizeof(int64_t) * (size_t)add.n);
        memcpy(h->head + h->n, add.head, sizeof(int64_t) * (size_t)add.n);
        memcpy(h->workload + h->n, add.workload, sizeof(char *) * (size_t)add.n);
        memset(add.workload, 0, sizeof(char *) * (size_t)add.n);
        h->n = n;
    }
done:
    ab_heads_table_free(&add);
    return rc;
}

int ab_report_load(const char *const *paths, int n, struct ab_report_data *d)
{
    memset(d, 0, sizeof *d);
    ab_results_init(&d->merged);
    d->paths = calloc((size_t)n, sizeof(char *));
    d->inputs = calloc((size_t)n, sizeof *d->inputs);
    if (!d->paths || !d->inputs) return ab_fail(AB_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        struct ab_results *in = &d->inputs[i];
        d->n_inputs = i + 1;
        if (!(d->paths[i] = strdup(paths[i]))) return ab_fail(AB_E_NOMEM, "out of memory");
        int rc = ab_results_read_h5(paths[i], in);
        if (rc == AB_OK) rc = ab_results_check_cells(paths[i], in);
        if (rc != AB_OK) return rc;
        if ((rc = read_heads(paths[i], in->n_workloads ? in->workloads[0] : NULL, &d->heads)))
            return rc;
        /* move the cells (and their strings) into the merged table */
        struct ab_results *m = &d->merged;
        int64_t need = m->n_cells + in->n_cells;
        if (need > m->cap_cells) {
            size_t bytes = ab_size_mul((size_t)need, sizeof *m->cells);
            struct ab_cell *grown = bytes ? realloc(m->cells, bytes) : NULL;
            if (!grown) return ab_fail(AB_E_NOMEM, "'%s': out of memory", paths[i]);
            m->cells = grown, m->cap_cells = need;
        }
        if (in->n_cells)
            memcpy(m->cells + m->n_cells, in->cells, sizeof *m->cells * (size_t)in->n_cells);
        m->n_cells = need;
        free(in->cells);
        in->cells = NULL, in->n_cells = in->cap_cells = 0;
    }
    return ab_results_summarise(&d->merged);
}

void ab_report_data_free(struct ab_report_data *d)
{
    for (int i = 0; i < d->n_inputs; i++) {
        free(d->paths ? d->paths[i] : NULL);
        if (d->inputs) ab_results_free(&d->inputs[i]);
    }
    free(d->paths), free(d->inputs);
    ab_results_free(&d->merged);
    ab_heads_table_free(&d->heads);
    memset(d, 0, sizeof *d);
}
