/* gguf.h - GGUF model files (the ggml project's format, versions 2 and 3), read and written.
 *
 * Layout (little-endian): magic "GGUF", uint32 version, uint64 tensor count, uint64 metadata
 * count; metadata key/value pairs (gguf string = uint64 length + bytes; value types uint8 ..
 * float64, bool, string, array of one type); tensor infos (name, uint32 n_dims, uint64 ne[n_dims]
 * with ne[0] the innermost dimension, uint32 ggml type, uint64 offset relative to the data
 * section); padding to `general.alignment` (default 32); the data section.
 *
 * Reading: architecture "llama"; dims from llama.embedding_length, llama.feed_forward_length,
 * llama.block_count, llama.attention.head_count, llama.attention.head_count_kv (default
 * head_count), llama.context_length, llama.rope.freq_base (default 10000),
 * llama.attention.layer_norm_rms_epsilon (default 1e-5), vocabulary size from the token list;
 * tensors token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
 * ffn_gate, ffn_down, ffn_up}, output_norm, output (absent: shared with token_embd), each
 * `.weight`; types F32, F16, BF16 and Q8_0 (blocks of 32: fp16 scale d, 32 int8 q; x = d * q)
 * dequantised to float32. Every count, string length, dimension and offset is checked against
 * the file length and the expected shapes before any tensor is read; AB_E_DATA names the file
 * and what is wrong (bad magic, unsupported version or type, missing key or tensor, shape
 * mismatch, tensor past the end).
 *
 * Tokenizer: tokenizer.ggml.tokens (array of strings), tokenizer.ggml.scores (float32 array,
 * optional: zeros), tokenizer.ggml.bos_token_id / eos_token_id (defaults 1, 2). */
#ifndef AB_MODEL_GGUF_H
#define AB_MODEL_GGUF_H

#include <stdint.h>

#include "model/model.h"
#include "model/tokenizer.h"

/* ggml tensor types used here (ggml's numbering). */
enum ab_ggml_type { AB_GGML_F32 = 0, AB_GGML_F16 = 1, AB_GGML_Q8_0 = 8, AB_GGML_BF16 = 30 };

/* Loads a llama-architecture GGUF model into m (zeroed first; on failure m is left zeroed and
 * holds nothing). Tensors are dequantised to float32 exactly; a file without `output.weight`
 * gives a shared classifier. m->path and m->description are set, m->format is "gguf".
 * AB_E_NOFILE, AB_E_IO, AB_E_DATA (naming the file and the problem), AB_E_TOOBIG,
 * AB_E_NOMEM. */
int ab_gguf_load_model(const char *path, struct ab_model *m);

/* The vocabulary of a GGUF file as arrays, in llama2.c form. */
struct ab_gguf_vocab {
    int64_t n_vocab;
    char **piece;  /* (n_vocab) NUL-terminated UTF-8, U+2581 mapped to ' ' (malloc'd each) */
    float *score;  /* (n_vocab) tokenizer.ggml.scores, zeros when absent */
    int32_t *type; /* (n_vocab) tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control,
                      6 byte ...), 1 when absent */
    int32_t bos, eos;
};

/* Reads tokenizer.ggml.tokens (with scores, token types, bos and eos ids) of the GGUF file at
 * path into v (zeroed first; the caller frees it with ab_gguf_vocab_free, also after a
 * failure). Refuses a tokenizer.ggml.model other than "llama" (SentencePiece), tokens holding
 * a NUL byte, and bos / eos ids outside the vocabulary. AB_E_NOFILE, AB_E_IO, AB_E_DATA,
 * AB_E_NOMEM. */
int ab_gguf_read_vocab(const char *path, struct ab_gguf_vocab *v);
void ab_gguf_vocab_free(struct ab_gguf_vocab *v);

/* Loads the vocabulary of a GGUF file as a tokenizer (ab_gguf_read_vocab, then
 * ab_tokenizer_from_arrays). Errors as ab_gguf_read_vocab. (Defined in gguf_tokenizer.c.) */
int ab_gguf_load_tokenizer(const char *path, struct ab_tokenizer *t);

/* Writes model m (and tokenizer t, may be NULL) as a GGUF v3 file with every 2-D weight
 * matrix stored as `type` (AB_GGML_F32, AB_GGML_F16, AB_GGML_BF16 or AB_GGML_Q8_0; Q8_0 needs
 * the row length to be a multiple of 32, else that tensor stays F32) and the 1-D norm gains as
 * F32. Metadata: general.* (architecture "llama", name, alignment 32, file_type), the llama.*
 * keys read above plus rope.dimension_count and vocab_size, and with t the tokenizer.ggml.*
 * keys (model "llama", tokens with ' ' written as U+2581, scores, token_type: 3 control for
 * bos / eos, 2 unknown for an "<unk>" id 0, 6 byte for "<0xXX>", 1 otherwise).
 * Q8_0: per block of 32 values d = fp16(max|x| / 127) and q = round(x / d) with that
 * fp16-rounded d, so every value read back (d * q) is within d/2 of the original.
 * Written to path.tmp and renamed (nothing is left behind on failure). AB_E_DATA (t's size
 * differs from the model's vocabulary, or a Q8_0 block holds a non-finite value or one too
 * large for an fp16 scale), AB_E_CREATE, AB_E_IO, AB_E_NOMEM. */
int ab_gguf_write_model(const char *path, const struct ab_model *m, const struct ab_tokenizer *t,
                        int type);

#endif
