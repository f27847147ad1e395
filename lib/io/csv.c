/* csv.c - tables as CSV (format in csv.h): number formatting that does not depend on the
 * locale, RFC 4180 quoting, writing through a temporary file, and the two tables of a results
 * file. */
#include "io/csv.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/results_io.h"

/* Replaces the locale's decimal point in buf (if it is not ".") by '.'. printf and strtod use
 * LC_NUMERIC, which is "C" unless the program called setlocale; this keeps the file the same
 * either way. */
static void ab_csv_fix_point(char *buf)
{
    const char *dp = localeconv()->decimal_point;
    if (!dp || !dp[0] || strcmp(dp, ".") == 0) return;
    char *at = strstr(buf, dp);
    if (!at) return;
    size_t len = strlen(dp);
    *at = '.';
    memmove(at + 1, at + len, strlen(at + len) + 1);
}

void ab_csv_format_f64(double x, char *buf)
{
    if (isnan(x)) {
        strcpy(buf, "nan");
        return;
    }
    if (isinf(x)) {
        strcpy(buf, x > 0 ? "inf" : "-inf");
        return;
    }
    /* the shortest of 15, 16, 17 significant digits that reads back exactly (17 always does) */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, AB_CSV_F64_MAX, "%.*g", prec, x);
        if (prec == 17 || strtod(buf, NULL) == x) break;
    }
    ab_csv_fix_point(buf);
}

/* Writes s as one field, quoted when it holds a comma, a quote, CR or LF. */
static void ab_csv_put_str(FILE *fp, const char *s)
{
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"') fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* Writes the header and the rows to fp (errors are left in ferror(fp)). */
static void ab_csv_put_rows(FILE *fp, const void *rows, int64_t n_rows, size_t row_size,
                            const struct ab_column *cols, int n_cols)
{
    for (int c = 0; c < n_cols; c++) {
        if (c) fputc(',', fp);
        ab_csv_put_str(fp, cols[c].name);
    }
    fputc('\n', fp);
    char num[AB_CSV_F64_MAX];
    for (int64_t i = 0; i < n_rows && !ferror(fp); i++) {
        const unsigned char *row = (const unsigned char *)rows + (size_t)i * row_size;
        for (int c = 0; c < n_cols; c++) {
            if (c) fputc(',', fp);
            const unsigned char *field = row + cols[c].offset;
            if (cols[c].type == AB_COL_STR) {
                const char *s;
                memcpy(&s, field, sizeof s);
                ab_csv_put_str(fp, s);
            } else if (cols[c].type == AB_COL_F64) {
                double x;
                memcpy(&x, field, sizeof x);
                ab_csv_format_f64(x, num);
                fputs(num, fp);
            } else {
                int64_t v;
                memcpy(&v, field, sizeof v);
                fprintf(fp, "%" PRId64, v);
            }
        }
        fputc('\n', fp);
    }
}

int ab_csv_write_table(const char *path, const void *rows, int64_t n_rows, size_t row_size,
                       const struct ab_column *cols, int n_cols)
{
    struct ab_outfile out;
    int rc = ab_outfile_open(&out, path);
    if (rc) return rc;
    ab_csv_put_rows(out.f, rows, n_rows, row_size, cols, n_cols);
    return ab_outfile_commit(&out);
}

int ab_results_write_csv(const char *cells_path, const char *summary_path,
                         const struct ab_results *r)
{
    int n_cell_cols, n_sum_cols;
    const struct ab_column *cell_cols = ab_results_cell_columns(&n_cell_cols);
    const struct ab_column *sum_cols = ab_results_summary_columns(&n_sum_cols);
    size_t mark = ab_outputs_begin(); /* both tables or neither */
    int rc = AB_OK;
    if (cells_path)
        rc = ab_csv_write_table(cells_path, r->cells, r->n_cells, sizeof *r->cells, cell_cols,
                                n_cell_cols);
    if (rc == AB_OK && summary_path)
        rc = ab_csv_write_table(summary_path, r->summary, r->n_summary, sizeof *r->summary,
                                sum_cols, n_sum_cols);
    ab_outputs_end(mark, rc != AB_OK);
    return rc;
}

int ab_results_write_heads_csv(const char *path, const struct ab_results *r)
{
    int n_cols;
    const struct ab_column *cols = ab_results_head_columns(&n_cols);
    return ab_csv_write_table(path, r->heads, r->n_heads, sizeof *r->heads, cols, n_cols);
}

int ab_results_write_layers_csv(const char *path, const struct ab_results *r)
{
    int n_cols;
    const struct ab_column *cols = ab_results_layer_columns(&n_cols);
    return ab_csv_write_table(path, r->layers, r->n_layers, sizeof *r->layers, cols, n_cols);
}

int ab_results_write_model_csv(const char *path, const struct ab_results *r)
{
    int n_cols;
    const struct ab_column *cols = ab_results_model_columns(&n_cols);
    return ab_csv_write_table(path, r->model, r->n_model, sizeof *r->model, cols, n_cols);
}
