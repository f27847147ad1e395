/* list.c - the comma-separated list tokenizer (see list.h). */
#include "core/list.h"

#include <math.h>
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
