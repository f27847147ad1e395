/* list.h - comma-separated option lists ("a,b,c", "name=1.5,other=2", "name:0.7,...") split one
 * item at a time, so every parser of such lists (profiles, components, tasks, methods, budgets)
 * shares one tokenizer and one set of error messages. */
#ifndef AB_CORE_LIST_H
#define AB_CORE_LIST_H

#include <stddef.h>
#include <stdint.h>

/* Reads the next item of the list at *s and advances *s past it and its comma. With sep == 0 the
 * whole item goes to name; otherwise the item must read NAME<sep>NUMBER: name gets NAME and
 * *value the number. what names the list in messages ("--mix"). Returns 1 when an item was read,
 * 0 at the end of the list, or AB_E_USAGE (empty item, name longer than cap - 1, missing
 * separator, bad number) with a message quoting the item. */
int ab_list_next(const char **s, char sep, char *name, size_t cap, double *value,
                 const char *what);

/* The numbers of a checked comma list ("0.5,0.25", a declared option's value) into
 * out[0..cap); returns how many were stored. */
int ab_list_reals(const char *list, double *out, int cap);

/* The closest of words[] (NULL-terminated when n_words < 0) to w when it is a plausible typo
 * (for "did you mean"): at most max(2, len / 3) edits away from a word of length len, and fewer
 * edits than w has letters; or the only word that starts with w (at least 3 letters). Else
 * NULL. */
const char *ab_word_closest(const char *w, const char *const *words, int n_words);

/* "LAYER:HEAD" at s (non-negative integers below 2^31, digits only): *layer, *head and *end
 * just past it. 0, or -1 when s does not start with such a pair. A whole item is a pair when
 * this returns 0 with **end == 0; a checked comma list is read by calling it again past
 * each ','. */
int ab_layer_head(const char *s, int64_t *layer, int64_t *head, const char **end);

#endif
