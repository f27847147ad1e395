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

#include <hdf5.h>

#include "core/ab.h"
#include "io/h5_util.h"
#include "io/results_io.h"

/* H5Literate2 callback: collects member names. */
struct name_list {
    char **names;
    int n, cap, failed;
};

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *user)
{
    (void)g, (void)info;
    struct name_list *l = user;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **grown = realloc(l->names, sizeof(char *) * (size_t)cap);
        if (!grown) return (l->failed = 1), -1;
        l->names = grown, l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(name))) return (l->failed = 1), -1;
    l->n++;
    return 0;
}

static void heads_free(struct ab_report_heads *h)
{
    for (int64_t i = 0; h->workload && i < h->n; i++) free(h->workload[i]);
    free(h->workload);
    free(h->layer), free(h->head);
    for (int c = 0; c < h->n_cols; c++) free(h->col_name[c]), free(h->col[c]);
    free(h->col_name), free(h->col);
    memset(h, 0, sizeof *h);
}

/* The class of dataset /heads/name (H5T_NO_CLASS when it is not a 1-D dataset of n values). */
static H5T_class_t column_class(struct ab_h5 *f, const char *obj, int64_t n)
{
    int64_t dims[8];
    int found = 0;
    if (ab_h5_shape(f, obj, 1, H5T_NO_CLASS, dims, &found) != AB_OK || !found || dims[0] != n)
        return H5T_NO_CLASS;
    hid_t d = H5Dopen2(f->id, obj, H5P_DEFAULT);
    if (d < 0) return H5T_NO_CLASS;
    hid_t t = H5Dget_type(d);
    H5T_class_t c = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return c;
}

/* Appends the /heads table of path (when it has one) to h: integer columns layer and head, an
 * optional string column workload (else the file's first workload), every numeric column
 * (integers as doubles). */
static int read_heads(const char *path, const char *first_workload, struct ab_report_heads *h)
{
    struct ab_h5 f = {0};
    int rc = ab_h5_open(&f, path);
    if (rc != AB_OK) return rc;
    struct name_list names = {0};
    struct ab_report_heads add = {0};
    char obj[300];
    if (!ab_h5_exists(&f, "/heads")) goto done;
    int64_t dims[8];
    if ((rc = ab_h5_shape(&f, "/heads/layer", 1, H5T_INTEGER, dims, NULL)) ||
        (rc = ab_h5_shape(&f, "/heads/head", 1, H5T_INTEGER, dims + 1, NULL)))
        goto done;
    if (dims[0] != dims[1]) {
        rc = ab_fail(AB_E_DATA, "'%s': /heads columns layer and head differ in length", path);
        goto done;
    }
    add.n = dims[0];
    hid_t g = H5Gopen2(f.id, "/heads", H5P_DEFAULT);
    if (g < 0 || H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &names) < 0) {
        if (g >= 0) H5Gclose(g);
        rc = names.failed ? ab_fail(AB_E_NOMEM, "'%s': out of memory", path)
                          : ab_h5_fail(AB_E_DATA, &f, "cannot list /heads");
        goto done;
    }
    H5Gclose(g);
    size_t nb = sizeof(int64_t) * (size_t)(add.n ? add.n : 1);
    add.layer = malloc(nb), add.head = malloc(nb);
    add.workload = calloc((size_t)(add.n ? add.n : 1), sizeof(char *));
    add.col_name = calloc((size_t)names.n + 1, sizeof(char *));
    add.col = calloc((size_t)names.n + 1, sizeof(double *));
    if (!add.layer || !add.head || !add.workload || !add.col_name || !add.col) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    if (add.n && ((rc = ab_h5_get(&f, "/heads/layer", H5T_NATIVE_INT64, add.layer)) ||
                  (rc = ab_h5_get(&f, "/heads/head", H5T_NATIVE_INT64, add.head))))
        goto done;
    snprintf(obj, sizeof obj, "/heads/workload");
    if (add.n && column_class(&f, obj, add.n) == H5T_STRING) {
        if ((rc = ab_h5_get_strings(&f, obj, add.n, add.workload))) goto done;
    } else {
        for (int64_t i = 0; i < add.n; i++)
            if (!(add.workload[i] = strdup(first_workload ? first_workload : ""))) {
                rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
                goto done;
            }
    }
    for (int i = 0; i < names.n && add.n; i++) {
        snprintf(obj, sizeof obj, "/heads/%s", names.names[i]);
        /* numbers: float columns, and integer ones (positions such as sec_pos1, labels) as
         * doubles, layer and head aside */
        H5T_class_t cls = column_class(&f, obj, add.n);
        if (cls != H5T_FLOAT && (cls != H5T_INTEGER || !strcmp(names.names[i], "layer") ||
                                 !strcmp(names.names[i], "head")))
            continue;
        double *v = malloc(sizeof(double) * (size_t)add.n);
        char *nm = strdup(names.names[i]);
        if (!v || !nm) {
            free(v), free(nm);
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        add.col[add.n_cols] = v, add.col_name[add.n_cols++] = nm;
        if ((rc = ab_h5_get(&f, obj, H5T_NATIVE_DOUBLE, v))) goto done;
    }
    /* append to h: columns matched by name, missing ones NaN */
    if (!h->n) {
        heads_free(h); /* an earlier empty table */
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
    for (int i = 0; i < names.n; i++) free(names.names[i]);
    free(names.names);
    heads_free(&add);
    ab_h5_close(&f);
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
    heads_free(&d->heads);
    memset(d, 0, sizeof *d);
}
