/* list.c - the comma-separated list tokenizer (see list.h). */
#include "core/list.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"

int ab_list_next(const char **s, char sep, char *name, size_t cap, double *value,
                 const char *what)
{
    const char *item = *s;
    if (!*item) return 0;
    const char *comma = strchr(item, ',');
    size_t len = comma ? (size_t)(comma - item) : strlen(item);
    *s = comma ? comma + 1 : item + len;
    const char *mark = sep ? memchr(item, sep, len) : NULL;
    size_t name_len = sep ? (mark ? (size_t)(mark - item) : len) : len;
    if (len == 0 || name_len == 0)
        return ab_fail(AB_E_USAGE, "%s: empty item in '%s'", what, item);
    if (name_len >= cap)
        return ab_fail(AB_E_USAGE, "%s: name too long in '%.*s'", what, (int)len, item);
    if (sep && !mark)
        return ab_fail(AB_E_USAGE, "%s: '%.*s' is not name%cvalue", what, (int)len, item, sep);
    memcpy(name, item, name_len);
    name[name_len] = 0;
    if (sep) {
        char *end;
        double v = strtod(mark + 1, &end);
        if (end != item + len || end == mark + 1 || !isfinite(v))
            return ab_fail(AB_E_USAGE, "%s: bad number in '%.*s'", what, (int)len, item);
        *value = v;
    }
    return 1;
}

int ab_list_reals(const char *list, double *out, int cap)
{
    int n = 0;
    for (const char *s = list; s && *s && n < cap; s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL)
        out[n++] = strtod(s, NULL);
    return n;
}

/* Edit distance of two short words (for did-you-mean), capped at 9. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 9;
    int row[41];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] > 9 ? 9 : row[lb];
}

/* The closest of words[] (NULL-terminated when n_words < 0) to w when it is a plausible typo:
 * at most max(2, len / 3) edits away from a word of length len, and fewer edits than w has
 * letters; or the only word that starts with w (at least 3 letters). Else NULL. */
const char *ab_word_closest(const char *w, const char *const *words, int n_words)
{
    const char *best = NULL;
    int bd = 10;
    for (int i = 0; n_words < 0 ? words[i] != NULL : i < n_words; i++) {
        int d = distance(w, words[i]), len = (int)strlen(words[i]);
        if (d < bd && d <= (len / 3 > 2 ? len / 3 : 2) && d < (int)strlen(w))
            bd = d, best = words[i];
    }
    /* or a cut-off word: the only one that starts with w */
    size_t lw = strlen(w);
    for (int i = 0; !best && lw >= 3 && (n_words < 0 ? words[i] != NULL : i < n_words); i++)
        if (!strncmp(words[i], w, lw)) {
            for (int j = i + 1; n_words < 0 ? words[j] != NULL : j < n_words; j++)
                if (!strncmp(words[j], w, lw)) return NULL;
            return words[i];
        }
    return best;
}

int ab_layer_head(const char *s, int64_t *layer, int64_t *head, const char **end)
{
    char *e;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    long long l = strtoll(s, &e, 10);
    if (errno || *e != ':' || e[1] < '0' || e[1] > '9' || l > INT32_MAX) return -1;
    long long h = strtoll(e + 1, &e, 10);
    if (errno || h > INT32_MAX) return -1;
    *layer = l, *head = h, *end = e;
    return 0;
}
