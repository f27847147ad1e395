/* results_heads.c - the /heads table of a results file read column by column, by name
 * (results_io.h, ab_results_read_heads): whatever columns the writer put there, this version's
 * or another's, where ab_results_read_h5 reads the fixed columns of struct ab_head_row. The
 * report reads /heads this way, so its per-head statistics need no HDF5 of their own. */
#include "io/results_io.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/h5_util.h"

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

void ab_heads_table_free(struct ab_heads_table *h)
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

int ab_results_read_heads(const char *path, const char *const *names, int n_names,
                          const char *default_workload, struct ab_heads_table *out)
{
    memset(out, 0, sizeof *out);
    struct ab_h5 f = {0};
    int rc = ab_h5_open(&f, path);
    if (rc != AB_OK) return rc;
    struct name_list all = {0};
    struct ab_heads_table add = {0};
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
    if (!names) { /* every column the table has */
        hid_t g = H5Gopen2(f.id, "/heads", H5P_DEFAULT);
        if (g < 0 || H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &all) < 0) {
            if (g >= 0) H5Gclose(g);
            rc = all.failed ? ab_fail(AB_E_NOMEM, "'%s': out of memory", path)
                            : ab_h5_fail(AB_E_DATA, &f, "cannot list /heads");
            goto done;
        }
        H5Gclose(g);
        names = (const char *const *)all.names, n_names = all.n;
    }
    size_t nb = sizeof(int64_t) * (size_t)(add.n ? add.n : 1);
    add.layer = malloc(nb), add.head = malloc(nb);
    add.workload = calloc((size_t)(add.n ? add.n : 1), sizeof(char *));
    add.col_name = calloc((size_t)n_names + 1, sizeof(char *));
    add.col = calloc((size_t)n_names + 1, sizeof(double *));
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
            if (!(add.workload[i] = strdup(default_workload ? default_workload : ""))) {
                rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
                goto done;
            }
    }
    for (int i = 0; i < n_names && add.n; i++) {
        snprintf(obj, sizeof obj, "/heads/%s", names[i]);
        /* numbers: float columns, and integer ones (positions such as sec_pos1, labels) as
         * doubles, layer and head aside */
        H5T_class_t cls = column_class(&f, obj, add.n);
        int numeric = cls == H5T_FLOAT || (cls == H5T_INTEGER && strcmp(names[i], "layer") &&
                                           strcmp(names[i], "head"));
        if (!numeric && !all.names) cls = H5T_NO_CLASS; /* asked for: a column of NaN */
        else if (!numeric)
            continue;
        double *v = malloc(sizeof(double) * (size_t)add.n);
        char *nm = strdup(names[i]);
        if (!v || !nm) {
            free(v), free(nm);
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        add.col[add.n_cols] = v, add.col_name[add.n_cols++] = nm;
        if (cls == H5T_NO_CLASS)
            for (int64_t r = 0; r < add.n; r++) v[r] = NAN;
        else if ((rc = ab_h5_get(&f, obj, H5T_NATIVE_DOUBLE, v)))
            goto done;
    }
    *out = add;
    memset(&add, 0, sizeof add);
done:
    for (int i = 0; i < all.n; i++) free(all.names[i]);
    free(all.names);
    ab_heads_table_free(&add);
    ab_h5_close(&f);
    return rc;
}
