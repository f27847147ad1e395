/* set.c - `scenario FILE --set KEY.PATH=VALUE`: overrides applied to the scenario's YAML
 * document before it is read, so an override is checked by the same reader, with the same
 * messages, as the key it stands for (scenarios/README.md, "Overrides").
 *
 * KEY.PATH walks maps by key ("run.budgets", "heads.epsilon"), the workloads list by workload
 * name ("workloads.model.gen.n", or "workloads.model.n": a key that is not the entry's own is
 * one of its gen, capture or import map) and any list by its 1-based entry number
 * ("eval_model.2.budgets"); a missing map on the way is created. VALUE is read as YAML flow:
 * "0.5" a scalar, "[0.5, 0.1]" a list, "{k: 1}" a map, and a bare comma list "0.5,0.1" a list.
 * The nodes an override adds carry the line AB_SCENARIO_SET_LINE + its index, which the
 * reader's messages show as "--set KEY.PATH=VALUE" instead of a line. Under --quick a run or
 * report key that quick: also sets is replaced there too (the command line wins); quick's
 * workload sizes still apply to every generated workload (override them as quick.n,
 * quick.layers, ...). */
#include "scenario/set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "core/list.h"

/* Marks node id (1-based) of doc as made by override k. */
static void mark(yaml_document_t *doc, int id, int k)
{
    yaml_node_t *n = yaml_document_get_node(doc, id);
    if (n) n->start_mark.line = n->end_mark.line = (size_t)(AB_SCENARIO_SET_LINE + k - 1);
}

/* Copies node `id` of src (and everything under it) into dst; returns the new id or 0. */
static int copy_node(yaml_document_t *dst, yaml_document_t *src, int id, int k, int depth)
{
    yaml_node_t *n = yaml_document_get_node(src, id);
    if (!n || depth > 16) return 0;
    int out = 0;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        out = yaml_document_add_scalar(dst, NULL, n->data.scalar.value, (int)n->data.scalar.length,
                                       n->data.scalar.style);
        break;
    case YAML_SEQUENCE_NODE:
        out = yaml_document_add_sequence(dst, NULL, YAML_FLOW_SEQUENCE_STYLE);
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             out && it < n->data.sequence.items.top; it++) {
            int c = copy_node(dst, src, *it, k, depth + 1);
            if (!c || !yaml_document_append_sequence_item(dst, out, c)) return 0;
        }
        break;
    case YAML_MAPPING_NODE:
        out = yaml_document_add_mapping(dst, NULL, YAML_FLOW_MAPPING_STYLE);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             out && p < n->data.mapping.pairs.top; p++) {
            int ck = copy_node(dst, src, p->key, k, depth + 1);
            int cv = copy_node(dst, src, p->value, k, depth + 1);
            if (!ck || !cv || !yaml_document_append_mapping_pair(dst, out, ck, cv)) return 0;
        }
        break;
    default: return 0;
    }
    if (out) mark(dst, out, k);
    return out;
}

/* The value text of an override as a node of doc: its id (> 0), or AB_E_USAGE / AB_E_NOMEM. */
static int value_node(yaml_document_t *doc, const char *file, const char *set, const char *value,
                      int k)
{
    /* a bare comma list is a list */
    size_t len = strlen(value);
    char *text = malloc(len + 3);
    if (!text) return ab_fail(AB_E_NOMEM, "out of memory");
    if (strchr(value, ',') && value[0] != '[' && value[0] != '{' && value[0] != '"' &&
        value[0] != '\'')
        snprintf(text, len + 3, "[%s]", value);
    else
        snprintf(text, len + 3, "%s", value);
    yaml_parser_t p;
    yaml_document_t v;
    int id = 0;
    if (!yaml_parser_initialize(&p)) {
        free(text);
        return ab_fail(AB_E_NOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&p, &v)) {
        id = ab_fail(AB_E_USAGE, "'%s': --set %s: the value is not YAML (%s)", file, set,
                p.problem ? p.problem : "unreadable");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&v);
        if (!root) /* "" reads as an empty document: the empty string */
            id = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)"", 0, YAML_PLAIN_SCALAR_STYLE);
        else
            id = copy_node(doc, &v, 1, k, 0);
        if (id) mark(doc, id, k);
        if (!id) id = ab_fail(AB_E_NOMEM, "'%s': --set %s: cannot build the value", file, set);
        yaml_document_delete(&v);
    }
    yaml_parser_delete(&p);
    free(text);
    return id;
}

/* The value node of key in map node id, or 0. */
static int map_get(yaml_document_t *doc, int id, const char *key, yaml_node_pair_t **pair)
{
    yaml_node_t *m = yaml_document_get_node(doc, id);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key)) {
            if (pair) *pair = p;
            return p->value;
        }
    }
    return 0;
}

/* The item of list node id that segment names: a workload's name, or a 1-based number. */
static int list_get(yaml_document_t *doc, int id, const char *seg, const char *file,
                    const char *set, const char *where)
{
    yaml_node_t *l = yaml_document_get_node(doc, id);
    int n = (int)(l->data.sequence.items.top - l->data.sequence.items.start);
    char *end;
    long idx = strtol(seg, &end, 10);
    if (*seg && !*end) {
        if (idx < 1 || idx > n)
            return ab_fail(AB_E_USAGE, "'%s': --set %s: %s has %d entries, not %ld", file, set,
                           where, n, idx), 0;
        return l->data.sequence.items.start[idx - 1];
    }
    const char *names[64];
    int n_names = 0;
    for (int i = 0; i < n; i++) {
        int item = l->data.sequence.items.start[i];
        yaml_node_t *it = yaml_document_get_node(doc, item);
        if (!it || it->type != YAML_MAPPING_NODE) continue;
        int nm = map_get(doc, item, "name", NULL);
        yaml_node_t *nn = nm ? yaml_document_get_node(doc, nm) : NULL;
        if (!nn || nn->type != YAML_SCALAR_NODE) continue;
        if (!strcmp((char *)nn->data.scalar.value, seg)) return item;
        if (n_names < 64) names[n_names++] = (char *)nn->data.scalar.value;
    }
    const char *near = ab_word_closest(seg, names, n_names);
    if (near)
        return ab_fail(AB_E_USAGE, "'%s': --set %s: no entry '%s' in %s (did you mean '%s'?)",
                       file, set, seg, where, near), 0;
    return ab_fail(AB_E_USAGE, "'%s': --set %s: no entry '%s' in %s (name one, or its number "
                   "from 1)", file, set, seg, where), 0;
}

/* run.KEY and report.KEY overrides also replace quick.KEY when the file's quick: sets it, so
 * the command line wins under --quick too. */
static int also_quick(yaml_document_t *doc, const char *file, const char *set, const char *path,
                      const char *value, int k)
{
    const char *dot = strchr(path, '.');
    if (!dot || strchr(dot + 1, '.') ||
        (strncmp(path, "run.", 4) && strncmp(path, "report.", 7)))
        return AB_OK;
    int quick = map_get(doc, 1, "quick", NULL);
    yaml_node_t *q = quick ? yaml_document_get_node(doc, quick) : NULL;
    yaml_node_pair_t *pair = NULL;
    if (!q || q->type != YAML_MAPPING_NODE || !map_get(doc, quick, dot + 1, &pair)) return AB_OK;
    int v = value_node(doc, file, set, value, k);
    if (v < 0) return v;
    pair->value = v;
    return AB_OK;
}

int ab_scenario_apply_sets(yaml_document_t *doc, const char *file, const char *const *sets,
                           int n_sets)
{
    for (int k = 0; k < n_sets; k++) {
        const char *set = sets[k], *eq = strchr(set, '=');
        char path[512];
        if (!eq || eq == set || (size_t)(eq - set) >= sizeof path)
            return ab_fail(AB_E_USAGE, "'%s': --set %s: want KEY.PATH=VALUE (e.g. run.budgets="
                           "0.5,0.1)", file, set);
        snprintf(path, sizeof path, "%.*s", (int)(eq - set), set);
        char whole[512];
        snprintf(whole, sizeof whole, "%s", path); /* strtok_r cuts path */
        int cur = yaml_document_get_root_node(doc) ? 1 : 0;
        if (!cur || yaml_document_get_node(doc, cur)->type != YAML_MAPPING_NODE)
            return ab_fail(AB_E_USAGE, "'%s': --set %s: the file is not a map of keys", file, set);
        char *save = NULL, where[512] = "the top level";
        int in_workload = 0; /* cur is an entry of workloads */
        for (char *seg = strtok_r(path, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
            int last = save == NULL || *save == 0;
            yaml_node_t *n = yaml_document_get_node(doc, cur);
            if (n->type == YAML_SEQUENCE_NODE) {
                if (last)
                    return ab_fail(AB_E_USAGE, "'%s': --set %s: name a key inside the entry "
                                   "'%s' of %s", file, set, seg, where);
                in_workload = !strcmp(where, "'workloads'");
                if (!(cur = list_get(doc, cur, seg, file, set, where))) return AB_E_USAGE;
                snprintf(where, sizeof where, "entry '%s'", seg);
                continue;
            }
            if (n->type != YAML_MAPPING_NODE)
                return ab_fail(AB_E_USAGE, "'%s': --set %s: %s is a value, not a map with a key "
                               "'%s'", file, set, where, seg);
            /* workloads.NAME.n: a key of the entry's gen (capture, import) map, which holds
             * every key but the entry's own */
            static const char *const entry_keys[] = {"name", "gen", "file", "sweep", "capture",
                                                     "import", NULL};
            int own = 0;
            for (int i = 0; entry_keys[i]; i++) own |= !strcmp(entry_keys[i], seg);
            if (in_workload && !own) {
                int src = map_get(doc, cur, "gen", NULL);
                if (!src) src = map_get(doc, cur, "capture", NULL);
                if (!src) src = map_get(doc, cur, "import", NULL);
                if (src && yaml_document_get_node(doc, src)->type == YAML_MAPPING_NODE) cur = src;
            }
            in_workload = 0;
            yaml_node_pair_t *pair = NULL;
            int next = map_get(doc, cur, seg, &pair);
            if (last) {
                int v = value_node(doc, file, set, eq + 1, k + 1);
                if (v < 0) return v;
                if (pair) {
                    pair->value = v;
                } else {
                    int key = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)seg, -1,
                                                       YAML_PLAIN_SCALAR_STYLE);
                    if (!key || !yaml_document_append_mapping_pair(doc, cur, key, v))
                        return ab_fail(AB_E_NOMEM, "out of memory");
                    mark(doc, key, k + 1);
                }
                int rc = also_quick(doc, file, set, whole, eq + 1, k + 1);
                if (rc) return rc;
                break;
            }
            if (!next) { /* a map on the way that the file does not have */
                int key = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)seg, -1,
                                                   YAML_PLAIN_SCALAR_STYLE);
                next = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
                if (!key || !next || !yaml_document_append_mapping_pair(doc, cur, key, next))
                    return ab_fail(AB_E_NOMEM, "out of memory");
                mark(doc, key, k + 1), mark(doc, next, k + 1);
            }
            cur = next;
            snprintf(where, sizeof where, "'%s'", seg);
        }
    }
    return AB_OK;
}
