/* tokenizer.c - the BPE tokenizer of tokenizer.h: the llama2.c tokenizer file, a sorted index
 * for piece lookup, SentencePiece-style encoding with merge scores and byte fallback, and
 * decoding.
 *
 * Encoding keeps, for every adjacent pair of the working sequence, the id and score of the
 * piece their concatenation makes (or none); a merge recomputes only the two pairs around the
 * merged token, so a text of n code points costs O(n) lookups and O(n^2) cheap comparisons. */
#include "model/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"

void ab_tokenizer_free(struct ab_tokenizer *t)
{
    if (!t) return;
    for (int64_t i = 0; t->piece && i < t->n_vocab; i++) free(t->piece[i]);
    free(t->piece);
    free(t->score);
    free(t->sorted);
    memset(t, 0, sizeof *t);
}

/* qsort context: the pieces being sorted (qsort has no user pointer). Set only by
 * build_index, which runs on one thread at a time per process in practice; guarded by
 * _Thread_local so concurrent loads on different threads stay correct. */
static _Thread_local char *const *sort_pieces;

static int cmp_ids(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    int c = strcmp(sort_pieces[x], sort_pieces[y]);
    return c ? c : (x > y) - (x < y); /* equal pieces: lowest id first */
}

/* Sorted index of ids by piece, and the longest piece. */
static int build_index(struct ab_tokenizer *t)
{
    t->sorted = malloc((size_t)t->n_vocab * sizeof *t->sorted);
    if (!t->sorted) return ab_fail(AB_E_NOMEM, "tokenizer: out of memory");
    t->max_len = 0;
    for (int64_t i = 0; i < t->n_vocab; i++) {
        t->sorted[i] = (int32_t)i;
        size_t len = strlen(t->piece[i]);
        if ((int64_t)len > t->max_len) t->max_len = (int32_t)len;
    }
    sort_pieces = t->piece;
    qsort(t->sorted, (size_t)t->n_vocab, sizeof *t->sorted, cmp_ids);
    sort_pieces = NULL;
    return AB_OK;
}

int32_t ab_tokenizer_lookup(const struct ab_tokenizer *t, const char *piece)
{
    /* lower bound: the first index whose piece is >= the key, i.e. the lowest id among equal
       pieces */
    int64_t lo = 0, hi = t->n_vocab;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->piece[t->sorted[mid]], piece) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->n_vocab && !strcmp(t->piece[t->sorted[lo]], piece)) return t->sorted[lo];
    return -1;
}

int ab_tokenizer_from_arrays(struct ab_tokenizer *t, int64_t n_vocab, const char *const *piece,
                             const float *score, int32_t bos, int32_t eos)
{
    memset(t, 0, sizeof *t);
    if (n_vocab <= 0 || n_vocab > INT32_MAX)
        return ab_fail(AB_E_DATA, "tokenizer: impossible vocabulary size %lld", (long long)n_vocab);
    t->piece = calloc((size_t)n_vocab, sizeof *t->piece);
    t->score = malloc((size_t)n_vocab * sizeof *t->score);
    t->n_vocab = n_vocab;
    t->bos = bos, t->eos = eos;
    if (!t->piece || !t->score) goto nomem;
    for (int64_t i = 0; i < n_vocab; i++) {
        if (!isfinite(score[i])) {
            ab_tokenizer_free(t);
            return ab_fail(AB_E_DATA, "tokenizer: token %lld has a non-finite score", (long long)i);
        }
        t->score[i] = score[i];
        if (!(t->piece[i] = strdup(piece[i]))) goto nomem;
    }
    int rc = build_index(t);
    if (rc) ab_tokenizer_free(t);
    return rc;
nomem:
    ab_tokenizer_free(t);
    return ab_fail(AB_E_NOMEM, "tokenizer: out of memory");
}

static int32_t le_i32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

static float le_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

/* Tokenizer files are a few megabytes at most (Llama 3's 128k vocabulary is ~2 MB); anything
 * far larger is not one. */
#define TOK_MAX_FILE (1LL << 30)

int ab_tokenizer_load_llama2c(const char *path, int64_t n_vocab, struct ab_tokenizer *t)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ab_fail(errno == ENOENT ? AB_E_NOFILE : AB_E_IO, "'%s': cannot open: %s", path,
                       strerror(errno));
    int rc = AB_OK;
    unsigned char *buf = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = ab_fail(AB_E_IO, "'%s': cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (st.st_size > TOK_MAX_FILE) {
        rc = ab_fail(AB_E_DATA, "'%s': %lld bytes is too large for a tokenizer file", path,
                     (long long)st.st_size);
        goto done;
    }
    size_t size = (size_t)st.st_size;
    if (n_vocab <= 0 || n_vocab > INT32_MAX) {
        rc = ab_fail(AB_E_DATA, "'%s': impossible vocabulary size %lld", path, (long long)n_vocab);
        goto done;
    }
    buf = malloc(size + 1);
    if (!buf) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    if (fread(buf, 1, size, f) != size) {
        rc = ab_fail(AB_E_IO, "'%s': read failed", path);
        goto done;
    }
    if (size < 4) {
        rc = ab_fail(AB_E_DATA, "'%s': truncated: %zu bytes, no max_token_length", path, size);
        goto done;
    }
    int32_t max_token_length = le_i32(buf);
    if (max_token_length <= 0 || (size_t)max_token_length > size) {
        rc = ab_fail(AB_E_DATA, "'%s': impossible max_token_length %d", path, max_token_length);
        goto done;
    }
    t->n_vocab = n_vocab;
    t->bos = 1, t->eos = 2;
    t->piece = calloc((size_t)n_vocab, sizeof *t->piece);
    t->score = malloc((size_t)n_vocab * sizeof *t->score);
    if (!t->piece || !t->score) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    /* per token: float32 score, int32 length, that many bytes */
    size_t at = 4;
    for (int64_t i = 0; i < n_vocab; i++) {
        if (size - at < 8) {
            rc = ab_fail(AB_E_DATA, "'%s': truncated: ends in token %lld of %lld", path,
                         (long long)i, (long long)n_vocab);
            goto done;
        }
        float score = le_f32(buf + at);
        int32_t len = le_i32(buf + at + 4);
        at += 8;
        if (!isfinite(score)) {
            rc = ab_fail(AB_E_DATA, "'%s': token %lld has a non-finite score", path, (long long)i);
            goto done;
        }
        if (len < 0 || len > max_token_length) {
            rc = ab_fail(AB_E_DATA, "'%s': token %lld has length %d, outside [0, %d]", path,
                         (long long)i, len, max_token_length);
            goto done;
        }
        if (size - at < (size_t)len) {
            rc = ab_fail(AB_E_DATA, "'%s': truncated: token %lld of %lld runs past the end", path,
                         (long long)i, (long long)n_vocab);
            goto done;
        }
        if (memchr(buf + at, 0, (size_t)len)) {
            rc = ab_fail(AB_E_DATA, "'%s': token %lld holds a NUL byte", path, (long long)i);
            goto done;
        }
        t->score[i] = score;
        t->piece[i] = malloc((size_t)len + 1);
        if (!t->piece[i]) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        memcpy(t->piece[i], buf + at, (size_t)len);
        t->piece[i][len] = 0;
        at += (size_t)len;
    }
    if (at != size) {
        rc = ab_fail(AB_E_DATA,
                     "'%s': too long: %zu bytes after %lld tokens (a tokenizer for a different "
                     "vocabulary?)",
                     path, size - at, (long long)n_vocab);
        goto done;
    }
    rc = build_index(t);
    if (rc) rc = ab_fail(rc, "'%s': %s", path, ab_errmsg());

done:
    free(buf);
    fclose(f);
    if (rc) ab_tokenizer_free(t);
    return rc;
}

/* ------------------------------------------------------------------ encoding */

/* Length in bytes of the UTF-8 code point starting at s (1 for a stray or invalid byte, at
 * most 4, never past the NUL): a lead byte and the continuation bytes that follow it. */
static size_t code_point_len(const unsigned char *s)
{
    size_t n = 1;
    while (n < 4 && (s[n] & 0xC0) == 0x80) n++;
    return n;
}

/* The piece adjacent tokens a and b concatenate to, if the vocabulary has it. */
static int32_t pair_piece(const struct ab_tokenizer *t, int32_t a, int32_t b, char *buf)
{
    size_t la = strlen(t->piece[a]), lb = strlen(t->piece[b]);
    if (la + lb > (size_t)t->max_len) return -1;
    memcpy(buf, t->piece[a], la);
    memcpy(buf + la, t->piece[b], lb);
    buf[la + lb] = 0;
    return ab_tokenizer_lookup(t, buf);
}

int ab_tokenizer_encode(const struct ab_tokenizer *t, const char *text, int bos, int32_t **ids,
                        int64_t *n)
{
    *ids = NULL;
    *n = 0;
    size_t len = strlen(text);
    /* every byte becomes at most one token; plus BOS and the dummy prefix */
    size_t cap = len + 2;
    int32_t *tok = malloc(cap * sizeof *tok);
    int32_t *pair = malloc(cap * sizeof *pair); /* (cap) pair[i]: piece of tok[i] tok[i+1] */
    char *buf = malloc((size_t)t->max_len + 16);
    if (!tok || !pair || !buf) {
        free(tok), free(pair), free(buf);
        return ab_fail(AB_E_NOMEM, "tokenizer: out of memory");
    }
    int64_t m = 0;
    /* SentencePiece's dummy prefix: the text is encoded as if it started with a space */
    for (int part = 0; part < 2; part++) {
        const unsigned char *s = (const unsigned char *)(part == 0 ? (len ? " " : "") : text);
        while (*s) {
            size_t cl = code_point_len(s);
            memcpy(buf, s, cl);
            buf[cl] = 0;
            int32_t id = ab_tokenizer_lookup(t, buf);
            if (id >= 0) {
                tok[m++] = id;
            } else {
                /* byte fallback: each byte of the code point as its <0xXX> token */
                for (size_t b = 0; b < cl; b++) {
                    char byte_piece[8];
                    snprintf(byte_piece, sizeof byte_piece, "<0x%02X>", s[b]);
                    int32_t bid = ab_tokenizer_lookup(t, byte_piece);
                    if (bid < 0) {
                        free(tok), free(pair), free(buf);
                        return ab_fail(AB_E_DATA,
                                       "tokenizer: cannot encode byte 0x%02X: the vocabulary "
                                       "has neither its character nor %s",
                                       s[b], byte_piece);
                    }
                    tok[m++] = bid;
                }
            }
            s += cl;
        }
    }
    /* merge the best-scoring adjacent pair (leftmost on ties) until none merges */
    for (int64_t i = 0; i + 1 < m; i++) pair[i] = pair_piece(t, tok[i], tok[i + 1], buf);
    for (;;) {
        int64_t best = -1;
        float best_score = 0;
        for (int64_t i = 0; i + 1 < m; i++)
            if (pair[i] >= 0 && (best < 0 || t->score[pair[i]] > best_score))
                best = i, best_score = t->score[pair[i]];
        if (best < 0) break;
        tok[best] = pair[best];
        /* tokens after the pair move left by one, and so do the pairs after it */
        memmove(tok + best + 1, tok + best + 2, (size_t)(m - best - 2) * sizeof *tok);
        if (m - best - 3 > 0)
            memmove(pair + best + 1, pair + best + 2, (size_t)(m - best - 3) * sizeof *pair);
        m--;
        if (best > 0) pair[best - 1] = pair_piece(t, tok[best - 1], tok[best], buf);
        if (best + 1 < m) pair[best] = pair_piece(t, tok[best], tok[best + 1], buf);
    }
    free(pair), free(buf);
    if (bos) {
        memmove(tok + 1, tok, (size_t)m * sizeof *tok);
        tok[0] = t->bos;
        m++;
    }
    *ids = tok;
    *n = m;
    return AB_OK;
}

/* ------------------------------------------------------------------ decoding */

/* 0..255 when piece is exactly "<0xXX>" (hex digits of either case), else -1. */
static int byte_token(const char *piece)
{
    if (strlen(piece) != 6 || strncmp(piece, "<0x", 3) || piece[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = piece[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int ab_tokenizer_decode(const struct ab_tokenizer *t, const int32_t *ids, int64_t n, char **text)
{
    *text = NULL;
    size_t cap = 1, used = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return ab_fail(AB_E_DATA,
                           "tokenizer: token id %d at position %lld is outside the "
                           "vocabulary [0, %lld)",
                           ids[i], (long long)i, (long long)t->n_vocab);
        cap += strlen(t->piece[ids[i]]);
    }
    char *out = malloc(cap);
    if (!out) return ab_fail(AB_E_NOMEM, "tokenizer: out of memory");
    for (int64_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id == t->bos || id == t->eos) continue;
        const char *p = t->piece[id];
        int byte = byte_token(p);
        if (byte >= 0) {
            out[used++] = (char)byte;
            continue;
        }
        if (i > 0 && ids[i - 1] == t->bos && p[0] == ' ') p++; /* BOS's dummy prefix */
        size_t l = strlen(p);
        memcpy(out + used, p, l);
        used += l;
    }
    out[used] = 0;
    *text = out;
    return AB_OK;
}
