/* table.h - a tidy table described once and written to any format: an array of row structs
 * plus a list of columns, each naming a field by its byte offset, its type, its units and a
 * long name. The HDF5 writer (ab_h5_put_table: one dataset per column on a shared "row"
 * dimension scale) and the CSV writer (ab_csv_write_table) both take this description, so the
 * /cells, /summary and /heads tables cannot disagree between formats. Header only, no HDF5. */
#ifndef AB_IO_TABLE_H
#define AB_IO_TABLE_H

#include <stddef.h>

enum ab_col_type {
    AB_COL_STR, /* char * (NULL stored as "") -> variable-length UTF-8 string */
    AB_COL_F64, /* double -> IEEE float64 */
    AB_COL_I64, /* int64_t -> int64 */
};

struct ab_column {
    const char *name; /* dataset / CSV header name */
    enum ab_col_type type;
    size_t offset;         /* offsetof(row struct, field) */
    const char *units;     /* UDUNITS-style: "1" dimensionless, "s", "byte"; "" for labels */
    const char *long_name; /* one line saying what the value is */
};

#endif
