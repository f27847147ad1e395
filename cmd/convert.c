/* convert.c - `attnbench convert`: rewrites a model file as GGUF v3 with its matrices in F32,
 * F16, BF16 or Q8_0 (gguf.h), carrying the vocabulary along.
 * Any model ab_model_load reads (llama2.c checkpoints, GGUF) converts; the vocabulary is the
 * one ab_model_tokenizer_find finds (--tokenizer, the GGUF's own, or the llama2.c tokenizer
 * beside the model), and a model without one converts without a vocabulary. stdout: one line,
 * "convert: PATH (the model read)". */
#include <stdio.h>
#include <string.h>

#include "core/ab.h"
#include "model/gguf.h"
#include "model/input.h"
#include "opts.h"

static const char *usage_text =
    "attnbench convert MODEL --type f32|f16|bf16|q8_0 [--tokenizer FILE] -o OUT.gguf";

int cmd_convert(int argc, char **argv)
{
    const char *type_name = NULL, *tok_path = NULL, *out = NULL;
    const struct ab_opt opts[] = {
        {"type", AB_OPT_STRING, &type_name, "T",
         "storage of the weight matrices: f32, f16, bf16, "
         "q8_0 (norm gains stay f32)"},
        {"tokenizer", AB_OPT_STRING, &tok_path, "FILE",
         "llama2.c tokenizer or GGUF file to take the vocabulary from (default: the model's own, or tokenizer.bin / tok<vocab>.bin beside it)"},
        {"o", AB_OPT_STRING, &out, "FILE", "GGUF file to write"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[1];
    int n_pos, st = ab_opts_parse("convert", usage_text, opts, argc, argv, pos, 1, &n_pos);
    if (st >= 0) return st;
    if (n_pos != 1) return ab_cmd_error(EX_AB_USAGE, "convert: give one model file");
    if (!out) return ab_cmd_error(EX_AB_USAGE, "convert: no output file (use -o OUT.gguf)");
    if (!type_name) return ab_cmd_error(EX_AB_USAGE, "convert: no --type (f32, f16, bf16, q8_0)");
    static const struct {
        const char *name;
        int type;
    } types[] = {
        {"f32", AB_GGML_F32}, {"f16", AB_GGML_F16}, {"bf16", AB_GGML_BF16}, {"q8_0", AB_GGML_Q8_0}};
    int type = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(type_name, types[i].name)) type = types[i].type;
    if (type < 0)
        return ab_cmd_error(EX_AB_USAGE, "convert: unknown --type '%s' (f32, f16, bf16, q8_0)",
                            type_name);

    struct ab_model m;
    int rc = ab_model_load(pos[0], &m);
    if (rc) return ab_cmd_fail(rc);
    /* the vocabulary: --tokenizer, else the model's own or the one beside it, else none */
    struct ab_tokenizer t = {0};
    int have_tok = 0;
    rc = ab_model_tokenizer_find(&m, tok_path, &t);
    if (!rc) {
        have_tok = 1;
    } else if (!tok_path && rc == AB_E_NOFILE) {
        rc = AB_OK;
    } else if (!tok_path && !strcmp(m.format, "gguf") && strstr(ab_errmsg(), "tokenizer.ggml.tokens is missing")) {
        rc = AB_OK;
    }
    if (!rc) rc = ab_gguf_write_model(out, &m, have_tok ? &t : NULL, type);
    if (!rc) {
        ab_out_file(out);
        ab_out_main("convert", out, "%s%s", m.description ? m.description : pos[0],
                    have_tok ? "" : "; no vocabulary");
    }
    if (have_tok) ab_tokenizer_free(&t);
    ab_model_free(&m);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}
