/* import.h - `attnbench import` as a library call: Q/K/V files from any framework in, a
 * workload file out (the readers are lib/io/import.h). cmd/import.c and the scenario runner
 * fill struct ab_import_run_opts from the same table, ab_import_run_decl, and call
 * ab_import_run. */
#ifndef AB_RUN_IMPORT_H
#define AB_RUN_IMPORT_H

#include "core/decl.h"
#include "core/workload.h"
#include "io/import.h"

struct ab_import_run_opts {
    const char *const *files; /* (n_files) positional: one container, or q k v */
    int n_files;
    char *q, *k, *v;          /* or named: all three */
    char *names;              /* "q,k,v" tensor names in containers, or NULL */
    char *tokens;             /* token id tensor of a safetensors file, or NULL */
    char *layout;             /* axis order */
    int bf16;                 /* --dtype: 0 the headers say, else 2-byte void .npy is bfloat16 */
    int full, causal;         /* the mask (causal when neither) */
    double scale;             /* 0 (not given): 1/sqrt(d) */
    int no_rope_applied;
    double rope_theta;        /* 0: not given */
    int rope_style;           /* 0 interleaved, 1 half */
    int64_t first_position;
    char *out;
};

extern const struct ab_decl ab_import_run_decl[];

/* Checks the options (AB_E_USAGE naming the option), reads the tensors and writes o->out (a
 * temporary name renamed on success). *w and *info (free w with ab_workload_free, also after a
 * failure) describe what was written, for the caller's summary; *rope_on_import is 1 when the
 * import rotated Q and K. */
int ab_import_run(const struct ab_import_run_opts *o, struct ab_workload *w,
                  struct ab_import_info *info, int *rope_on_import);

#endif
