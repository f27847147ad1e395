/* convert.c - `attnbench convert`: rewrites a model file as GGUF v3 with its matrices in F32,
 * F16, BF16 or Q8_0 (gguf.h), carrying the vocabulary along.
 *
 * In this branch only GGUF input is read (llama2.c checkpoints need ab_model_load from
 * lib/model/llama2c.c); load_any marks the place. stdout: the path written and one line
 * describing the model read. */
#include <stdio.h>
#include <string.h>

#include "core/ab.h"
#include "model/gguf.h"
#include "opts.h"

static const char *usage_text =
    "attnbench convert MODEL --type f32|f16|bf16|q8_0 [--tokenizer FILE.gguf] -o OUT.gguf";

/* Loads a model of any format by its magic. Replace with ab_model_load when
 * lib/model/llama2c.c merges. */
static int load_any(const char *path, struct ab_model *m)
{
    unsigned char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return ab_fail(AB_E_NOFILE, "'%s': cannot open", path);
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) return ab_gguf_load_model(path, m);
    return ab_fail(AB_E_DATA,
                   "'%s': not a GGUF file (llama2.c checkpoints are not readable in "
                   "this build yet)",
                   path);
}

int cmd_convert(int argc, char **argv)
{
    const char *type_name = NULL, *tok_path = NULL, *out = NULL;
    const struct ab_opt opts[] = {
        {"type", AB_OPT_STRING, &type_name, "T",
         "storage of the weight matrices: f32, f16, bf16, "
         "q8_0 (norm gains stay f32)"},
        {"tokenizer", AB_OPT_STRING, &tok_path, "FILE",
         "take the vocabulary from this GGUF file (default: the model's own, if any)"},
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
    struct ab_gguf_vocab v = {0};
    int rc = load_any(pos[0], &m);
    if (rc) return ab_cmd_fail(rc);
    /* the vocabulary: --tokenizer, else the model's own when it is GGUF and has one */
    const char *vocab_from = tok_path ? tok_path : pos[0];
    rc = ab_gguf_read_vocab(vocab_from, &v);
    if (rc && !tok_path && strstr(ab_errmsg(), "tokenizer.ggml.tokens is missing")) rc = AB_OK;
    if (rc) {
        ab_model_free(&m);
        return ab_cmd_fail(rc);
    }
    /* the writer reads n_vocab, piece, score, bos and eos only */
    struct ab_tokenizer t = {
        .n_vocab = v.n_vocab, .piece = v.piece, .score = v.score, .bos = v.bos, .eos = v.eos};
    rc = ab_gguf_write_model(out, &m, v.piece ? &t : NULL, type);
    if (!rc) {
        printf("%s\n", out);
        printf("%s%s\n", m.description ? m.description : pos[0], v.piece ? "" : "; no vocabulary");
    }
    ab_gguf_vocab_free(&v);
    ab_model_free(&m);
    return rc ? ab_cmd_fail(rc) : EX_AB_OK;
}
