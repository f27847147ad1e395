/* import.c - `attnbench import`: Q/K/V dumped from any framework (.npy, .npz, safetensors,
 * HDF5) into a workload file (workloads.md, "Import"; lib/io/import.h does the work).
 *
 * Inputs: one container holding q, k and v (`import dump.npz -o w.h5`), or three files in the
 * order q, k, v (`import q.npy k.npy v.npy`, or `--q F --k F --v F`). stdout: "import: PATH
 * (the workload's shape)", then one line per tensor read (where from, dtype, shape). Exit statuses
 * of outputs.md: 64 bad options, 65 bad input data, 66 a missing input, 73 / 74 output trouble;
 * on failure no output file is left. The work is ab_import_run (lib/run/import.c), declared by
 * ab_import_run_decl: argv -> struct -> call -> print. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/decl.h"
#include "io/import.h"
#include "opts.h"
#include "run/import.h"

static const char *usage_text =
    "attnbench import FILE... [--q F --k F --v F] [--names q,k,v] [--layout layer,head,seq,dim]\n"
    "                        [--dtype bf16] [--full|--causal] [--scale S]\n"
    "                        [--no-rope-applied --rope-theta T [--rope-style interleaved|half]]\n"
    "                        -o WORKLOAD.h5";

static void shape_text(const struct ab_import_tensor *t, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < t->rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld%s", (long long)t->shape[i],
                                i + 1 < t->rank ? ", " : "");
    if (len < cap) snprintf(buf + len, cap - len, ")");
}

int cmd_import_opts(const struct ab_import_run_opts *o)
{
    struct ab_workload w;
    struct ab_import_info info;
    int on_import;
    int rc = ab_import_run(o, &w, &info, &on_import);
    if (rc) {
        ab_workload_free(&w);
        return ab_cmd_error(ab_exit_status(rc), "import: %s", ab_errmsg());
    }
    ab_out_file(o->out);
    ab_out_main(
        "import", o->out,
        "%lld layers x %lld heads (%lld kv) x n %lld x d %lld (dv %lld), %s, scale %g, %s%s",
        (long long)w.n_layer, (long long)w.n_head, (long long)w.n_kv_head, (long long)w.n_seq,
        (long long)w.d, (long long)w.d_v, w.causal ? "causal" : "full", w.scale,
        !w.rope_applied ? "no RoPE"
        : !on_import    ? "RoPE applied before dump"
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

int cmd_import(int argc, char **argv)
{
    struct ab_import_run_opts o = {0};
    if (ab_decl_defaults(ab_import_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[3];
    int n_pos, st = ab_opts_parse_decl("import", usage_text, ab_import_run_decl, &o, argc, argv,
                                       pos, 3, &n_pos);
    if (st < 0) {
        o.files = (const char *const *)pos, o.n_files = n_pos;
        st = cmd_import_opts(&o);
    }
    ab_decl_free(ab_import_run_decl, &o);
    return st;
}
