/* plugin.c - method rows from outside the tree: a shared object built against the public ABI
 * (include/attnbench/method.h) exports one `struct ab_plugin attnbench_plugin`; ab_plugin_load
 * opens it with dlopen, checks it and appends its rows to the registry (registry.c), where every
 * reader finds them through ab_method_count / ab_method_at as if they were built in.
 *
 * What is checked, in order, each failure one line naming the file: the file exists; dlopen
 * loads it with every symbol resolved (RTLD_NOW: a plugin calling a function the executable
 * does not export fails here, not mid-run); it has the object; its ABI number is this one; the
 * struct size it was built with is this one; every row is well formed (ab_method_check_row);
 * no row name is taken. Rows are added only when all pass. The handle is never closed: rows
 * point into the object until the process ends. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/ab.h"
#include "methods/method.h"

/* The files loaded so far (their real paths), so a plugin named twice (a scenario's plugins:
 * and the command line) loads once. */
enum { MAX_PLUGINS = 64 };
static char *opened[MAX_PLUGINS];
static int n_opened;

int ab_plugin_load(const char *path)
{
    struct stat st;
    if (!path || !*path) return ab_fail(AB_E_USAGE, "--plugin: an empty path");
    if (stat(path, &st) != 0) return ab_fail(AB_E_NOFILE, "'%s': no such plugin file", path);
    if (!S_ISREG(st.st_mode)) return ab_fail(AB_E_DATA, "'%s': not a regular file", path);
    char real[PATH_MAX];
    if (!realpath(path, real)) return ab_fail(AB_E_NOFILE, "'%s': cannot resolve the path", path);
    for (int i = 0; i < n_opened; i++)
        if (!strcmp(opened[i], real)) return AB_OK;
    if (n_opened == MAX_PLUGINS) return ab_fail(AB_E_USAGE, "'%s': more than %d plugins", path, MAX_PLUGINS);

    /* dlopen of a relative name without a slash searches the library path: give it the real one */
    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        const char *why = e ? e : "unknown reason";
        const char *tail = strstr(why, ": "); /* dlerror repeats the path first */
        if (tail && !strncmp(why, real, (size_t)(tail - why))) why = tail + 2;
        return ab_fail(AB_E_DATA, "'%s': cannot load the plugin: %s", path, why);
    }
    const struct ab_plugin *pl = dlsym(h, "attnbench_plugin");
    if (!pl) {
        dlclose(h);
        return ab_fail(AB_E_DATA, "'%s': not an attnbench plugin (no symbol 'attnbench_plugin'; see plugins/README.md)", path);
    }
    if (pl->abi != AB_PLUGIN_ABI) {
        int abi = pl->abi;
        dlclose(h);
        return ab_fail(AB_E_DATA, "'%s': built for plugin ABI %d, this attnbench speaks ABI %d (rebuild it against this include/attnbench/method.h)",
                       path, abi, AB_PLUGIN_ABI);
    }
    if (pl->method_size != sizeof(struct ab_method) || !pl->methods) {
        dlclose(h);
        return ab_fail(AB_E_DATA, "'%s': its struct ab_method has %u bytes, this attnbench's %zu (a header from another build; rebuild it)",
                       path, pl->method_size, sizeof(struct ab_method));
    }
    int n = 0;
    while (pl->methods[n] && n <= 4096) n++;
    if (n == 0 || n > 4096) {
        dlclose(h);
        return ab_fail(AB_E_DATA, "'%s': %s", path, n ? "more than 4096 rows (is the list NULL-terminated?)" : "exports no rows");
    }
    for (int i = 0; i < n; i++) {
        const struct ab_method *m = pl->methods[i];
        int rc = m && m->name && strchr(m->name, '+')
                     ? ab_fail(AB_E_DATA, "row '%.63s': '+' joins two rows (A+B); a row's name is [a-z0-9-]+", m->name)
                     : ab_method_check_row(m);
        if (rc) {
            char why[512];
            snprintf(why, sizeof why, "%s", ab_errmsg());
            dlclose(h);
            return ab_fail(rc, "'%s': %s", path, why);
        }
        /* a name taken by the registry (built in or another plugin) or earlier in this list */
        const struct ab_method *taken = ab_method_find(m->name);
        int twice = 0;
        for (int j = 0; j < i; j++) twice |= !strcmp(pl->methods[j]->name, m->name);
        if (taken || twice) {
            const char *from = taken ? ab_method_origin(taken) : NULL;
            char name[64];
            snprintf(name, sizeof name, "%s", m->name);
            dlclose(h);
            if (twice) return ab_fail(AB_E_USAGE, "'%s': two rows are named '%s'", path, name);
            if (!from)
                return ab_fail(AB_E_USAGE, "'%s': method '%s' is already a built-in row (rename the plugin's row)", path, name);
            return ab_fail(AB_E_USAGE, "'%s': method '%s' is already a row of the plugin '%s'", path, name, from);
        }
    }
    char *keep = strdup(real);
    if (!keep) {
        dlclose(h);
        return ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    }
    int rc = ab_registry_add(pl->methods, n, keep);
    if (rc) {
        free(keep);
        dlclose(h);
        return ab_fail(rc, "'%s': %s", path, ab_errmsg());
    }
    opened[n_opened++] = keep;
    ab_log(AB_LOG_INFO, "plugin '%s' (%s): %d row%s", path, pl->name ? pl->name : "unnamed", n, n == 1 ? "" : "s");
    return AB_OK;
}

int ab_plugins_load(const char *list)
{
    if (!list || !*list) return AB_OK;
    char *copy = strdup(list);
    if (!copy) return ab_fail(AB_E_NOMEM, "out of memory");
    int rc = AB_OK;
    for (char *save = NULL, *p = strtok_r(copy, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save))
        rc = ab_plugin_load(p);
    free(copy);
    return rc;
}
