/* import.c - `attnbench import`: Q/K/V dumped from any framework (.npy, .npz, safetensors,
 * HDF5) into a workload file (workloads.md, "Import"; lib/io/import.h does the work).
 *
 * Inputs: one container holding q, k and v (`import dump.npz -o w.h5`), or three files in the
 * order q, k, v (`import q.npy k.npy v.npy`, or `--q F --k F --v F`). stdout: "import: PATH
 * (the workload's shape)", then one line per tensor read (where from, dtype, shape). Exit statuses
 * of outputs.md: 64 bad options, 65 bad input data, 66 a missing input, 73 / 74 output trouble;
 * on failure no output file is left. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/h5_workload.h"
#include "io/import.h"
#include "opts.h"

static const char *usage_text =
    "attnbench import FILE... [--q F --k F --v F] [--names q,k,v] [--layout layer,head,seq,dim]\n"
    "                        [--dtype bf16] [--full|--causal] [--scale S]\n"
    "                        [--no-rope-applied --rope-theta T [--rope-style interleaved|half]]\n"
    "                        -o WORKLOAD.h5";

/* Splits "a,b,c" into three names in buf. -1 when fine, else the exit status. */
static int split_names(const char *s, char buf[3][128], const char *names[3])
{
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        size_t len = strcspn(p, ",");
        if (!len || len >= sizeof buf[i] || (i < 2 && p[len] != ',') || (i == 2 && p[len]))
            return ab_cmd_error(EX_AB_USAGE,
                                "import: --names wants three names, q,k,v (got "
                                "'%s')",
                                s);
        memcpy(buf[i], p, len);
        buf[i][len] = '\0';
        names[i] = buf[i];
        p += len + 1;
    }
    return -1;
}

static void shape_text(const struct ab_import_tensor *t, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < t->rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld%s", (long long)t->shape[i],
                                i + 1 < t->rank ? ", " : "");
    if (len < cap) snprintf(buf + len, cap - len, ")");
}

int cmd_import(int argc, char **argv)
{
    const char *out = NULL, *qf = NULL, *kf = NULL, *vf = NULL, *names = NULL, *dtype = NULL;
    const char *style = NULL, *tokens = NULL, *layout = "layer,head,seq,dim";
    int full = 0, causal = 0, no_rope = 0;
    double scale = NAN, theta = NAN; /* NAN: not given */
    int64_t first = 0;
    const struct ab_opt opts[] = {
        {"q", AB_OPT_STRING, &qf, "FILE", "file holding the queries (with --k and --v)"},
        {"k", AB_OPT_STRING, &kf, "FILE", "file holding the keys"},
        {"v", AB_OPT_STRING, &vf, "FILE", "file holding the values"},
        {"names", AB_OPT_STRING, &names, "Q,K,V",
         "tensor names in containers (default q,k,v; .npz members NAME.npy)"},
        {"tokens", AB_OPT_STRING, &tokens, "NAME",
         "also read token ids (I32/I64) from this tensor of a safetensors file"},
        {"layout", AB_OPT_STRING, &layout, "AXES",
         "axis order of the arrays (default layer,head,seq,dim; rank-3 arrays are one layer)"},
        {"dtype", AB_OPT_STRING, &dtype, "bf16",
         "read 2-byte void .npy data ('<V2', ml_dtypes bfloat16 saved by np.save) as bfloat16"},
        {"full", AB_OPT_FLAG, &full, NULL, "the mask is full (bidirectional)"},
        {"causal", AB_OPT_FLAG, &causal, NULL, "the mask is causal (default)"},
        {"scale", AB_OPT_DOUBLE, &scale, "S", "logit scale (default 1/sqrt(d))"},
        {"no-rope-applied", AB_OPT_FLAG, &no_rope, NULL,
         "Q and K were dumped before RoPE (with --rope-theta: rotate them here)"},
        {"rope-theta", AB_OPT_DOUBLE, &theta, "T", "RoPE base of the model (e.g. 10000)"},
        {"rope-style", AB_OPT_STRING, &style, "S",
         "interleaved: pairs (2i, 2i+1), Llama / llama2.c (default); half: pairs (i, i+d/2), "
         "Hugging Face rotate_half"},
        {"first-position", AB_OPT_INT, &first, "P", "position of the first row (default 0)"},
        {"o", AB_OPT_STRING, &out, "FILE", "workload file to write"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[3];
    int n_pos, st = ab_opts_parse("import", usage_text, opts, argc, argv, pos, 3, &n_pos);
    if (st >= 0) return st;
    if (!out) return ab_cmd_error(EX_AB_USAGE, "import: no output file (use -o WORKLOAD.h5)");

    struct ab_import_opts o;
    ab_import_defaults(&o);
    int given = (qf != NULL) + (kf != NULL) + (vf != NULL);
    if (given && given != 3)
        return ab_cmd_error(EX_AB_USAGE, "import: --q, --k and --v go together");
    if (given && n_pos)
        return ab_cmd_error(EX_AB_USAGE, "import: give files either by position or with --q "
                                         "--k --v, not both");
    if (given) {
        o.files[0] = qf, o.files[1] = kf, o.files[2] = vf, o.n_files = 3;
    } else if (n_pos == 1 || n_pos == 3) {
        for (int i = 0; i < n_pos; i++) o.files[i] = pos[i];
        o.n_files = n_pos;
    } else {
        return ab_cmd_error(EX_AB_USAGE,
                            "import: give one container (.npz, .safetensors, .h5) "
                            "or three files q k v (got %d)",
                            n_pos);
    }
    char name_buf[3][128];
    if (names && (st = split_names(names, name_buf, o.names)) >= 0) return st;
    o.tokens = tokens;
    o.layout = layout;
    if (dtype && strcmp(dtype, "bf16") && strcmp(dtype, "bfloat16"))
        return ab_cmd_error(EX_AB_USAGE,
                            "import: --dtype only says bf16 (other types are read "
                            "from the files' headers), got '%s'",
                            dtype);
    o.void2 = dtype ? AB_DT_BF16 : 0;
    if (full && causal) return ab_cmd_error(EX_AB_USAGE, "import: --full or --causal, not both");
    o.causal = !full;
    if (!isnan(scale) && !(scale > 0))
        return ab_cmd_error(EX_AB_USAGE, "import: --scale must be positive");
    o.scale = isnan(scale) ? 0 : scale;
    if (!isnan(theta) && !(theta > 0))
        return ab_cmd_error(EX_AB_USAGE, "import: --rope-theta must be positive");
    if (isnan(theta)) theta = 0;
    if (style && strcmp(style, "interleaved") && strcmp(style, "half"))
        return ab_cmd_error(EX_AB_USAGE, "import: --rope-style is interleaved or half, got '%s'",
                            style);
    if (style && !(no_rope && theta > 0))
        return ab_cmd_error(EX_AB_USAGE, "import: --rope-style goes with --no-rope-applied and "
                                         "--rope-theta");
    o.rope_applied = !no_rope;
    o.rope_theta = theta;
    o.rope_style = style && !strcmp(style, "half") ? AB_ROPE_HALF : AB_ROPE_INTERLEAVED;
    o.first_position = first;

    struct ab_workload w;
    struct ab_import_info info;
    int rc = ab_import(&o, &w, &info);
    if (rc) return ab_cmd_fail(rc);
    rc = ab_h5_workload_write(out, &w);
    if (rc) {
        ab_workload_free(&w);
        return ab_cmd_fail(rc);
    }
    ab_out_file(out);
    ab_out_main(
        "import", out,
        "%lld layers x %lld heads (%lld kv) x n %lld x d %lld (dv %lld), %s, scale %g, %s%s",
        (long long)w.n_layer, (long long)w.n_head, (long long)w.n_kv_head, (long long)w.n_seq,
        (long long)w.d, (long long)w.d_v, w.causal ? "causal" : "full", w.scale,
        !w.rope_applied  ? "no RoPE"
        : o.rope_applied ? "RoPE applied before dump"
                         : "RoPE applied on import",
        w.tokens ? ", token ids" : "");
    for (int r = 0; r < 3 && !ab_common.quiet; r++) {
        char shape[256];
        shape_text(&info.t[r], shape, sizeof shape);
        printf("%s: %s %s from %s\n",
               r == 0   ? "q"
               : r == 1 ? "k"
                        : "v",
               ab_dtype_name(info.t[r].dtype), shape, info.t[r].source);
    }
    ab_workload_free(&w);
    return EX_AB_OK;
}
