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

/* Loads a llama-architecture GGUF model. */
int ab_gguf_load_model(const char *path, struct ab_model *m);

/* Loads the vocabulary of a GGUF file. */
int ab_gguf_load_tokenizer(const char *path, struct ab_tokenizer *t);

/* Writes model m (and tokenizer t, may be NULL) as a GGUF v3 file with every 2-D weight
 * matrix stored as `type` (AB_GGML_F32, AB_GGML_F16 or AB_GGML_Q8_0; Q8_0 needs the row length
 * to be a multiple of 32, else that tensor stays F32) and the 1-D norm gains as F32. Written to
 * path.tmp and renamed. AB_E_CREATE, AB_E_IO. */
int ab_gguf_write_model(const char *path, const struct ab_model *m, const struct ab_tokenizer *t,
                        int type);

#endif
