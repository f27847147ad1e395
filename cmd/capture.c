/* capture.c - `attnbench capture`: runs a Llama-family model (llama2.c checkpoint or GGUF) on a
 * token sequence and writes its per-layer Q and K (after RoPE), V and optionally the hidden
 * states as a workload file (workloads.md, "Capture from a model").
 *
 * The sequence is a text file, a prompt continued greedily by the model (--generate N, with
 * the KV-cache decoder), raw token ids, or the retrieval copy task (BOS, R seeded random ids,
 * the same R ids again). A text or token list longer than the model's context is refused
 * unless a window of it is named: --offset T --length N take tokens [T, T + N) of the encoded
 * sequence (BOS counted as token 0; the window is the slice as it is, with no BOS inserted).
 * Capture itself is one batched forward pass over the whole sequence
 * whose attend hook copies Q, K and V of each layer into the workload and lets the model
 * compute attention as usual.
 *
 * stdout: one line, "capture: PATH (tokens, shape)"; the throughput of the capture pass (and of
 * generation when there was any) goes to stderr. Bad models, tokenizers, token ids or sequences
 * longer than the model's context exit 65 and leave no output file. The work is
 * ab_capture_run (lib/run/capture.c), declared by ab_capture_run_decl: argv -> struct -> call
 * -> print. */
#include <stdio.h>

#include "core/ab.h"
#include "core/decl.h"
#include "opts.h"
#include "run/capture.h"

static const char *usage_text =
    "attnbench capture --model FILE [--tokenizer FILE]\n"
    "                         (--text FILE | --prompt TEXT --generate N | --tokens 1,403,... |\n"
    "                          --copy-task R) [--offset T] [--length N] [--no-bos] [--hidden]\n"
    "                         [--seed S] -o WORKLOAD.h5";

int cmd_capture_opts(const struct ab_capture_run_opts *o)
{
    struct ab_capture_run_out c;
    int rc = ab_capture_run(o, &c);
    if (rc) return ab_cmd_fail(rc);
    if (c.n_generated > 0 && !ab_common.quiet)
        fprintf(stderr, "capture: generated %lld tokens in %.3f s (%.1f tokens/s)\n",
                (long long)c.n_generated, c.t_gen, (double)c.n_generated / c.t_gen);
    if (!ab_common.quiet)
        fprintf(stderr, "capture: %lld tokens captured in %.3f s (%.1f tokens/s)\n",
                (long long)c.n_seq, c.t_cap, (double)c.n_seq / c.t_cap);
    ab_out_file(o->out);
    ab_out_main("capture", o->out, "%lld tokens, %lld layers x %lld heads (%lld kv) x head_dim %lld%s",
                (long long)c.n_seq, (long long)c.n_layer, (long long)c.n_head,
                (long long)c.n_kv_head, (long long)c.head_dim,
                o->hidden ? ", with hidden states" : "");
    return EX_AB_OK;
}

int cmd_capture(int argc, char **argv)
{
    struct ab_capture_run_opts o = {0};
    if (ab_decl_defaults(ab_capture_run_decl, &o)) return ab_cmd_fail(AB_E_NOMEM);
    char *pos[1];
    int n_pos, st = ab_opts_parse_decl("capture", usage_text, ab_capture_run_decl, &o, argc, argv,
                                       pos, 0, &n_pos);
    if (st < 0) {
        o.seed = ab_common.seed;
        st = cmd_capture_opts(&o);
    }
    ab_decl_free(ab_capture_run_decl, &o);
    return st;
}
