/* import.c - `attnbench import` as a library call (see import.h). */
#include "run/import.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/ab.h"
#include "io/h5_workload.h"

static const char *const dtype_words[] = {"headers", "bf16", "bfloat16", NULL};
static const char *const style_words[] = {"interleaved", "half", NULL};

#define ROW(f) AB_DECL_ROW(struct ab_import_run_opts, f)
const struct ab_decl ab_import_run_decl[] = {
    {"q", AB_DECL_STR, ROW(q), NULL, 0, 0, "FILE", "file holding the queries (with --k and --v)",
     .flags = AB_DECL_INPUT | AB_DECL_CLI},
    {"k", AB_DECL_STR, ROW(k), NULL, 0, 0, "FILE", "file holding the keys",
     .flags = AB_DECL_INPUT | AB_DECL_CLI},
    {"v", AB_DECL_STR, ROW(v), NULL, 0, 0, "FILE", "file holding the values",
     .flags = AB_DECL_INPUT | AB_DECL_CLI},
    {"names", AB_DECL_LIST, ROW(names), NULL, 0, 3, "Q,K,V",
     "tensor names in containers (default q,k,v; .npz members NAME.npy)"},
    {"tokens", AB_DECL_STR, ROW(tokens), NULL, 0, 0, "NAME",
     "also read token ids (I32/I64) from this tensor of a safetensors file"},
    {"layout", AB_DECL_STR, ROW(layout), "layer,head,seq,dim", 0, 0, "AXES",
     "axis order of the arrays (rank-3 arrays are one layer)"},
    {"dtype", AB_DECL_WORD, ROW(bf16), "headers", 0, 0, "bf16",
     "bf16: read 2-byte void .npy data ('<V2', ml_dtypes bfloat16 saved by np.save) as "
     "bfloat16 (other types are read from the files' headers)", .choices = dtype_words},
    {"full", AB_DECL_FLAG, ROW(full), NULL, 0, 0, NULL, "the mask is full (bidirectional)"},
    {"causal", AB_DECL_FLAG, ROW(causal), NULL, 0, 0, NULL, "the mask is causal (default)"},
    {"scale", AB_DECL_REAL, ROW(scale), NULL, 0, INFINITY, "S",
     "logit scale (default 1/sqrt(d))", .lo_open = 1},
    {"no-rope-applied", AB_DECL_FLAG, ROW(no_rope_applied), NULL, 0, 0, NULL,
     "Q and K were dumped before RoPE (with --rope-theta: rotate them here)"},
    {"rope-theta", AB_DECL_REAL, ROW(rope_theta), NULL, 0, INFINITY, "T",
     "RoPE base of the model (e.g. 10000)", .lo_open = 1},
    {"rope-style", AB_DECL_WORD, ROW(rope_style), "interleaved", 0, 0, "S",
     "interleaved: pairs (2i, 2i+1), Llama / llama2.c; half: pairs (i, i+d/2), Hugging Face "
     "rotate_half", .choices = style_words},
    {"first-position", AB_DECL_INT, ROW(first_position), "0", 0, INT32_MAX, "P",
     "position of the first row"},
    {"o", AB_DECL_STR, ROW(out), NULL, 0, 0, "FILE", "workload file to write",
     .flags = AB_DECL_CLI | AB_DECL_OUTPUT},
    {0},
};
#undef ROW

int ab_import_run(const struct ab_import_run_opts *o, struct ab_workload *w,
                  struct ab_import_info *info, int *rope_on_import)
{
    memset(w, 0, sizeof *w);
    if (!o->out) return ab_fail(AB_E_USAGE, "no output file (use -o WORKLOAD.h5)");
    struct ab_import_opts io;
    ab_import_defaults(&io);
    int given = (o->q != NULL) + (o->k != NULL) + (o->v != NULL);
    if (given && given != 3) return ab_fail(AB_E_USAGE, "--q, --k and --v go together");
    if (given && o->n_files)
        return ab_fail(AB_E_USAGE, "give files either by position or with --q --k --v, not both");
    if (given) {
        io.files[0] = o->q, io.files[1] = o->k, io.files[2] = o->v, io.n_files = 3;
    } else if (o->n_files == 1 || o->n_files == 3) {
        for (int i = 0; i < o->n_files; i++) io.files[i] = o->files[i];
        io.n_files = o->n_files;
    } else {
        return ab_fail(AB_E_USAGE, "give one container (.npz, .safetensors, .h5) or three files "
                       "q k v (got %d)", o->n_files);
    }
    char name_buf[3][128];
    if (o->names) {
        const char *p = o->names;
        for (int i = 0; i < 3; i++) {
            size_t len = strcspn(p, ",");
            if (!len || len >= sizeof name_buf[i] || (i < 2 && p[len] != ',') || (i == 2 && p[len]))
                return ab_fail(AB_E_USAGE, "--names wants three names, q,k,v (got '%s')",
                               o->names);
            memcpy(name_buf[i], p, len);
            name_buf[i][len] = '\0';
            io.names[i] = name_buf[i];
            p += len + 1;
        }
    }
    io.tokens = o->tokens;
    io.layout = o->layout;
    io.void2 = o->bf16 ? AB_DT_BF16 : 0;
    if (o->full && o->causal) return ab_fail(AB_E_USAGE, "--full or --causal, not both");
    io.causal = !o->full;
    io.scale = o->scale;
    if (o->rope_style && !(o->no_rope_applied && o->rope_theta > 0))
        return ab_fail(AB_E_USAGE, "--rope-style goes with --no-rope-applied and --rope-theta");
    io.rope_applied = !o->no_rope_applied;
    io.rope_theta = o->rope_theta;
    io.rope_style = o->rope_style ? AB_ROPE_HALF : AB_ROPE_INTERLEAVED;
    io.first_position = o->first_position;
    *rope_on_import = !io.rope_applied;
    int rc = ab_import(&io, w, info);
    return rc ? rc : ab_h5_workload_write(o->out, w);
}
