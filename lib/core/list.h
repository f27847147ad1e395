/* list.h - comma-separated option lists ("a,b,c", "name=1.5,other=2", "name:0.7,...") split one
 * item at a time, so every parser of such lists (profiles, components, tasks, methods, budgets)
 * shares one tokenizer and one set of error messages. */
#ifndef AB_CORE_LIST_H
#define AB_CORE_LIST_H

#include <stddef.h>

/* Reads the next item of the list at *s and advances *s past it and its comma. With sep == 0 the
 * whole item goes to name; otherwise the item must read NAME<sep>NUMBER: name gets NAME and
 * *value the number. what names the list in messages ("--mix"). Returns 1 when an item was read,
 * 0 at the end of the list, or AB_E_USAGE (empty item, name longer than cap - 1, missing
 * separator, bad number) with a message quoting the item. */
int ab_list_next(const char **s, char sep, char *name, size_t cap, double *value,
                 const char *what);

#endif
