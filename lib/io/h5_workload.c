/* h5_workload.c - the workload file (workloads.md) in HDF5: writing a struct ab_workload and
 * reading it back, whole, metadata only, or one head at a time.
 *
 * Layout: root attributes (schema, source, created_utc, attnbench_version, seed, description,
 * causal, scale, rope_applied, rope_theta); /q /k /v float32 chunked one head per chunk;
 * /positions, optional /tokens, /text (scalar string), /hidden; /truth/profile (strings per
 * layer and kv head) and /truth/tasks/{kind,row,answer,key_off,key_pos,codebook,planted} with
 * attribute agg_threshold. Every axis has a dimension scale (layer, head, kv_head, seq, feature,
 * feature_v, layer_input, model at the root; task, task_edge, task_key, code in /truth/tasks),
 * so xarray opens the file with named dimensions.
 *
 * Reading checks the file before reading anything in bulk: signature, schema, ranks, classes,
 * shapes agreeing with each other, sizes against memory; then the small arrays (task offsets,
 * names) and finally the values through ab_workload_validate. */
#include "io/h5_workload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/ab.h"
#include "io/h5_util.h"

/* Re-records the current message (from code that does not know the file) prefixed with the
 * file's name, as code (ab_errmsg's buffer is the one ab_fail writes: copy it first). */
static int ab_wl_name_file(int code, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ab_errmsg());
    if (msg[0] == '\'') return code; /* already names a file */
    return ab_fail(code, "'%s': %s", path, msg);
}

/* ---------------------------------------------------------------- writing */

/* The root dimension scales: those every workload has, and the two of /hidden. */
static int ab_wl_put_scales(struct ab_h5 *f, const struct ab_workload *w)
{
    int rc;
    if ((rc = ab_h5_scale(f, "/layer", w->n_layer)) || (rc = ab_h5_scale(f, "/head", w->n_head)) ||
        (rc = ab_h5_scale(f, "/kv_head", w->n_kv_head)) ||
        (rc = ab_h5_scale(f, "/seq", w->n_seq)) || (rc = ab_h5_scale(f, "/feature", w->d)) ||
        (rc = ab_h5_scale(f, "/feature_v", w->d_v)))
        return rc;
    if (w->hidden && ((rc = ab_h5_scale(f, "/layer_input", w->n_layer + 1)) ||
                      (rc = ab_h5_scale(f, "/model", w->d_model))))
        return rc;
    return AB_OK;
}

/* The root attributes; created_utc and attnbench_version default to now and this build. */
static int ab_wl_put_root_attrs(struct ab_h5 *f, const struct ab_workload *w)
{
    char now[32];
    const char *created = w->created_utc;
    if (!created) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
        created = now;
    }
    int rc;
    if ((rc = ab_h5_attr_put_str(f, "/", "schema", AB_WORKLOAD_SCHEMA)) ||
        (w->source && (rc = ab_h5_attr_put_str(f, "/", "source", w->source))) ||
        (rc = ab_h5_attr_put_str(f, "/", "created_utc", created)) ||
        (rc = ab_h5_attr_put_str(f, "/", "attnbench_version",
                                 w->version ? w->version : ab_version())) ||
        (rc = ab_h5_attr_put_u64(f, "/", "seed", w->seed)) ||
        (w->description && (rc = ab_h5_attr_put_str(f, "/", "description", w->description))) ||
        (rc = ab_h5_attr_put_int(f, "/", "causal", w->causal)) ||
        (rc = ab_h5_attr_put_f64(f, "/", "scale", w->scale)) ||
        (rc = ab_h5_attr_put_int(f, "/", "rope_applied", w->rope_applied)) ||
        (rc = ab_h5_attr_put_f64(f, "/", "rope_theta", w->rope_theta)))
        return rc;
    return AB_OK;
}

/* /truth/tasks: the task arrays, their own scales and the aggregate threshold; kind holds the
 * task kinds' names. */
static int ab_wl_put_task_arrays(struct ab_h5 *f, const struct ab_workload *w,
                                 const char *const *kind)
{
    const struct ab_tasks *t = &w->tasks;
    int64_t n = t->n, n_edge = t->n + 1, n_key = t->key_off[t->n];
    int64_t cb_dims[2] = {t->n_code, w->d_v}, pl_dims[2] = {w->n_layer, w->n_kv_head};
    const char *s_task[] = {"/truth/tasks/task"}, *s_edge[] = {"/truth/tasks/task_edge"};
    const char *s_key[] = {"/truth/tasks/task_key"};
    const char *s_cb[] = {"/truth/tasks/code", "/feature_v"}, *s_pl[] = {"/layer", "/kv_head"};
    int rc;
    if ((rc = ab_h5_group(f, "/truth/tasks")) ||
        (rc = ab_h5_attr_put_f64(f, "/truth/tasks", "agg_threshold", t->agg_threshold)) ||
        (rc = ab_h5_scale(f, "/truth/tasks/task", n)) ||
        (rc = ab_h5_scale(f, "/truth/tasks/task_edge", n_edge)) ||
        (rc = ab_h5_scale(f, "/truth/tasks/task_key", n_key)) ||
        (rc = ab_h5_scale(f, "/truth/tasks/code", t->n_code)) ||
        (rc = ab_h5_put_strings(f, "/truth/tasks/kind", 1, &n, kind, s_task)) ||
        (rc = ab_h5_put(f, "/truth/tasks/row", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, -1, t->row,
                        s_task)) ||
        (rc = ab_h5_put(f, "/truth/tasks/answer", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, -1,
                        t->answer, s_task)) ||
        (rc = ab_h5_put(f, "/truth/tasks/key_off", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &n_edge, -1,
                        t->key_off, s_edge)) ||
        (rc = ab_h5_put(f, "/truth/tasks/key_pos", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n_key,
                        n_key > 4096 ? 0 : -1, t->key_pos, s_key)) ||
        (rc = ab_h5_put(f, "/truth/tasks/codebook", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, cb_dims,
                        t->n_code * w->d_v > 4096 ? 0 : -1, t->codebook, s_cb)))
        return rc;
    if (t->planted)
        return ab_h5_put(f, "/truth/tasks/planted", H5T_STD_I8LE, H5T_NATIVE_INT8, 2, pl_dims, -1,
                         t->planted, s_pl);
    return AB_OK;
}

/* The tasks: names their kinds, then writes the arrays. */
static int ab_wl_put_tasks(struct ab_h5 *f, const struct ab_workload *w)
{
    const char **kind = malloc((size_t)w->tasks.n * sizeof *kind);
    if (!kind) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    for (int64_t i = 0; i < w->tasks.n; i++) kind[i] = ab_task_kind_name(w->tasks.kind[i]);
    int rc = ab_wl_put_task_arrays(f, w, kind);
    free(kind);
    return rc;
}

/* Everything after the root attributes, in a fixed order (same input, same bytes). */
static int ab_wl_put_data(struct ab_h5 *f, const struct ab_workload *w)
{
    int64_t qd[4] = {w->n_layer, w->n_head, w->n_seq, w->d};
    int64_t kd[4] = {w->n_layer, w->n_kv_head, w->n_seq, w->d};
    int64_t vd[4] = {w->n_layer, w->n_kv_head, w->n_seq, w->d_v};
    int64_t hd[3] = {w->n_layer + 1, w->n_seq, w->d_model};
    int64_t pd[2] = {w->n_layer, w->n_kv_head};
    const char *s_q[] = {"/layer", "/head", "/seq", "/feature"};
    const char *s_k[] = {"/layer", "/kv_head", "/seq", "/feature"};
    const char *s_v[] = {"/layer", "/kv_head", "/seq", "/feature_v"};
    const char *s_h[] = {"/layer_input", "/seq", "/model"};
    const char *s_seq[] = {"/seq"}, *s_pr[] = {"/layer", "/kv_head"};
    int seq_chunk = w->n_seq > 4096 ? 0 : -1;
    int rc;
    if ((rc = ab_wl_put_scales(f, w)) ||
        (rc = ab_h5_put(f, "/q", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, qd, 2, w->q, s_q)) ||
        (rc = ab_h5_put(f, "/k", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, kd, 2, w->k, s_k)) ||
        (rc = ab_h5_put(f, "/v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, vd, 2, w->v, s_v)) ||
        (rc = ab_h5_put(f, "/positions", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &w->n_seq, seq_chunk,
                        w->positions, s_seq)))
        return rc;
    if (w->tokens && (rc = ab_h5_put(f, "/tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &w->n_seq,
                                     seq_chunk, w->tokens, s_seq)))
        return rc;
    if (w->text) {
        const char *text = w->text;
        if ((rc = ab_h5_put_strings(f, "/text", 0, NULL, &text, NULL))) return rc;
    }
    if (w->hidden &&
        (rc = ab_h5_put(f, "/hidden", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, hd, 1, w->hidden, s_h)))
        return rc;
    if (!w->profile && w->tasks.n == 0) return AB_OK;
    if ((rc = ab_h5_group(f, "/truth"))) return rc;
    if (w->profile &&
        (rc = ab_h5_put_strings(f, "/truth/profile", 2, pd, (const char *const *)w->profile, s_pr)))
        return rc;
    if (w->tasks.n > 0 && (rc = ab_wl_put_tasks(f, w))) return rc;
    return AB_OK;
}

int ab_h5_workload_write(const char *path, const struct ab_workload *w)
{
    int rc = ab_workload_validate(w);
    if (rc != AB_OK) return ab_wl_name_file(rc, path);
    if (w->hidden && w->d_model <= 0)
        return ab_fail(AB_E_DATA, "'%s': hidden states without a model width", path);
    const struct ab_tasks *t = &w->tasks;
    if (t->n > 0 && (!t->kind || !t->row || !t->answer || !t->key_off || !t->key_pos ||
                     (t->n_code > 0 && !t->codebook)))
        return ab_fail(AB_E_DATA, "'%s': incomplete task arrays", path);

    struct ab_h5 f = {0};
    if ((rc = ab_h5_create(&f, path))) return rc;
    if ((rc = ab_wl_put_root_attrs(&f, w)) || (rc = ab_wl_put_data(&f, w))) {
        ab_h5_abort(&f);
        return rc;
    }
    return ab_h5_commit(&f);
}

/* ---------------------------------------------------------------- reading */

/* What the file says about its shape, gathered before anything is allocated. */
struct ab_wl_shape {
    int64_t q[4], k[4], v[4], pos, tok, hid[3], prof[2];
    int has_tok, has_hid, has_text_ds, has_prof, has_tasks;
    int64_t t_kind, t_row, t_ans, t_off, t_key, t_cb[2], t_pl[2];
    int has_cb, has_pl;
};

/* Checks the schema attribute. */
static int ab_wl_check_schema(struct ab_h5 *f)
{
    char *schema = NULL;
    int rc = ab_h5_attr_get_str(f, "/", "schema", &schema);
    if (rc != AB_OK) {
        free(schema);
        return rc;
    }
    if (!schema)
        rc = ab_fail(AB_E_DATA, "'%s': not an attnbench workload (no schema attribute)", f->path);
    else if (strcmp(schema, AB_WORKLOAD_SCHEMA) != 0)
        rc = ab_fail(AB_E_DATA, "'%s': not an attnbench workload (schema '%s', expected '%s')",
                     f->path, schema, AB_WORKLOAD_SCHEMA);
    free(schema);
    return rc;
}

/* Reads every dataset's shape and checks ranks, classes and that the shapes agree. */
static int ab_wl_read_shapes(struct ab_h5 *f, struct ab_wl_shape *s)
{
    const char *p = f->path;
    int rc;
    if ((rc = ab_h5_shape(f, "/q", 4, H5T_FLOAT, s->q, NULL)) ||
        (rc = ab_h5_shape(f, "/k", 4, H5T_FLOAT, s->k, NULL)) ||
        (rc = ab_h5_shape(f, "/v", 4, H5T_FLOAT, s->v, NULL)) ||
        (rc = ab_h5_shape(f, "/positions", 1, H5T_INTEGER, &s->pos, NULL)) ||
        (rc = ab_h5_shape(f, "/tokens", 1, H5T_INTEGER, &s->tok, &s->has_tok)) ||
        (rc = ab_h5_shape(f, "/hidden", 3, H5T_FLOAT, s->hid, &s->has_hid)) ||
        (rc = ab_h5_shape(f, "/truth/profile", 2, H5T_STRING, s->prof, &s->has_prof)))
        return rc;
    int64_t dummy[1];
    if ((rc = ab_h5_shape(f, "/text", 0, H5T_STRING, dummy, &s->has_text_ds))) return rc;
    for (int i = 0; i < 4; i++)
        if (s->q[i] <= 0 || s->k[i] <= 0 || s->v[i] <= 0)
            return ab_fail(AB_E_DATA, "'%s': /q, /k or /v has an empty dimension", p);
    if (s->k[0] != s->q[0] || s->v[0] != s->q[0])
        return ab_fail(AB_E_DATA, "'%s': /q, /k and /v disagree on the number of layers", p);
    if (s->v[1] != s->k[1])
        return ab_fail(AB_E_DATA, "'%s': /k and /v disagree on the number of kv heads", p);
    if (s->k[2] != s->q[2] || s->v[2] != s->q[2])
        return ab_fail(AB_E_DATA, "'%s': /q, /k and /v disagree on the sequence length", p);
    if (s->k[3] != s->q[3])
        return ab_fail(AB_E_DATA, "'%s': /q and /k disagree on the head dimension", p);
    if (s->q[1] % s->k[1] != 0)
        return ab_fail(AB_E_DATA, "'%s': %lld query heads is not a multiple of %lld kv heads", p,
                       (long long)s->q[1], (long long)s->k[1]);
    if (s->q[2] > INT32_MAX)
        return ab_fail(AB_E_DATA, "'%s': sequence of %lld rows is too long", p, (long long)s->q[2]);
    int64_t n = s->q[2];
    if (s->pos != n)
        return ab_fail(AB_E_DATA, "'%s': /positions does not have %lld rows", p, (long long)n);
    if (s->has_tok && s->tok != n)
        return ab_fail(AB_E_DATA, "'%s': /tokens does not have %lld rows", p, (long long)n);
    if (s->has_hid && (s->hid[0] != s->q[0] + 1 || s->hid[1] != n || s->hid[2] <= 0))
        return ab_fail(AB_E_DATA, "'%s': /hidden is not [%lld, %lld, d_model]", p,
                       (long long)(s->q[0] + 1), (long long)n);
    if (s->has_prof && (s->prof[0] != s->q[0] || s->prof[1] != s->k[1]))
        return ab_fail(AB_E_DATA, "'%s': /truth/profile is not [%lld, %lld]", p, (long long)s->q[0],
                       (long long)s->k[1]);

    s->has_tasks = ab_h5_exists(f, "/truth/tasks");
    if (!s->has_tasks) return AB_OK;
    if ((rc = ab_h5_shape(f, "/truth/tasks/kind", 1, H5T_STRING, &s->t_kind, NULL)) ||
        (rc = ab_h5_shape(f, "/truth/tasks/row", 1, H5T_INTEGER, &s->t_row, NULL)) ||
        (rc = ab_h5_shape(f, "/truth/tasks/answer", 1, H5T_INTEGER, &s->t_ans, NULL)) ||
        (rc = ab_h5_shape(f, "/truth/tasks/key_off", 1, H5T_INTEGER, &s->t_off, NULL)) ||
        (rc = ab_h5_shape(f, "/truth/tasks/key_pos", 1, H5T_INTEGER, &s->t_key, NULL)) ||
        (rc = ab_h5_shape(f, "/truth/tasks/codebook", 2, H5T_FLOAT, s->t_cb, &s->has_cb)) ||
        (rc = ab_h5_shape(f, "/truth/tasks/planted", 2, H5T_INTEGER, s->t_pl, &s->has_pl)))
        return rc;
    int64_t nt = s->t_kind;
    if (s->t_row != nt || s->t_ans != nt || s->t_off != nt + 1)
        return ab_fail(AB_E_DATA, "'%s': the /truth/tasks arrays disagree on the task count", p);
    if (s->has_cb && s->t_cb[1] != s->v[3])
        return ab_fail(AB_E_DATA, "'%s': /truth/tasks/codebook is not [P, %lld]", p,
                       (long long)s->v[3]);
    if (s->has_pl && (s->t_pl[0] != s->q[0] || s->t_pl[1] != s->k[1]))
        return ab_fail(AB_E_DATA, "'%s': /truth/tasks/planted is not [%lld, %lld]", p,
                       (long long)s->q[0], (long long)s->k[1]);
    return AB_OK;
}

/* /positions into w->positions (n_seq int32): read as int64 first, so that a file storing wider
 * integers is refused when one does not fit int32 instead of being clipped by the conversion. */
static int ab_wl_read_positions(struct ab_h5 *f, struct ab_workload *w)
{
    int64_t *wide = malloc(sizeof(int64_t) * (size_t)w->n_seq);
    if (!wide) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    int rc = ab_h5_get(f, "/positions", H5T_NATIVE_INT64, wide);
    for (int64_t i = 0; !rc && i < w->n_seq; i++) {
        if (wide[i] < INT32_MIN || wide[i] > INT32_MAX)
            rc = ab_fail(AB_E_DATA, "'%s': /positions[%lld] = %lld does not fit 32 bits",
                         f->path, (long long)i, (long long)wide[i]);
        else
            w->positions[i] = (int32_t)wide[i];
    }
    free(wide);
    return rc;
}

/* Refuses files whose arrays cannot fit in memory (bulk: q, k, v and hidden too). */
static int ab_wl_check_fits(const struct ab_h5 *f, const struct ab_wl_shape *s, int bulk)
{
    double n = (double)s->q[2];
    double small = 4.0 * n * (1 + s->has_tok) + (double)s->q[0] * (double)s->k[1] * 40.0;
    if (s->has_tasks)
        small += 48.0 * (double)s->t_kind + 4.0 * (double)s->t_key +
                 (s->has_cb ? 4.0 * (double)s->t_cb[0] * (double)s->t_cb[1] : 0.0);
    double bulk_bytes = 0;
    if (bulk) {
        bulk_bytes =
            4.0 * (double)s->q[0] * n *
            ((double)s->q[1] * (double)s->q[3] + (double)s->k[1] * (double)(s->k[3] + s->v[3]));
        if (s->has_hid) bulk_bytes += 4.0 * (double)s->hid[0] * n * (double)s->hid[2];
    }
    char what[300];
    snprintf(what, sizeof what, "'%s'", f->path);
    return ab_check_fits(what, small + bulk_bytes);
}

/* Reads the root attributes into w (strings malloc'd; absent numbers take their defaults). */
static int ab_wl_read_attrs(struct ab_h5 *f, struct ab_workload *w)
{
    int rc, found;
    int64_t iv;
    if ((rc = ab_h5_attr_get_str(f, "/", "source", &w->source)) ||
        (rc = ab_h5_attr_get_str(f, "/", "description", &w->description)) ||
        (rc = ab_h5_attr_get_str(f, "/", "created_utc", &w->created_utc)) ||
        (rc = ab_h5_attr_get_str(f, "/", "attnbench_version", &w->version)) ||
        (rc = ab_h5_attr_get_u64(f, "/", "seed", &w->seed, &found)))
        return rc;
    w->causal = 1;
    if ((rc = ab_h5_attr_get_i64(f, "/", "causal", &iv, &found))) return rc;
    if (found) w->causal = iv != 0;
    w->scale = 1.0 / sqrt((double)w->d);
    if ((rc = ab_h5_attr_get_f64(f, "/", "scale", &w->scale, &found))) return rc;
    if (!(w->scale > 0) || !isfinite(w->scale))
        return ab_fail(AB_E_DATA, "'%s': scale attribute %g is not a positive number", f->path,
                       w->scale);
    if ((rc = ab_h5_attr_get_i64(f, "/", "rope_applied", &iv, &found))) return rc;
    w->rope_applied = found && iv != 0;
    if ((rc = ab_h5_attr_get_f64(f, "/", "rope_theta", &w->rope_theta, &found))) return rc;
    return AB_OK;
}

/* Checks the task arrays' structure (offsets, kinds, rows, keys, answers) so that nothing
 * later indexes out of bounds. */
static int ab_wl_check_tasks(const struct ab_h5 *f, const struct ab_workload *w)
{
    const struct ab_tasks *t = &w->tasks;
    const char *p = f->path;
    if (t->key_off[0] != 0)
        return ab_fail(AB_E_DATA, "'%s': /truth/tasks/key_off does not start at 0", p);
    for (int64_t i = 0; i < t->n; i++) {
        if (t->key_off[i + 1] < t->key_off[i])
            return ab_fail(AB_E_DATA, "'%s': /truth/tasks/key_off decreases at task %lld", p,
                           (long long)i);
        if (t->row[i] < 0 || t->row[i] >= w->n_seq)
            return ab_fail(AB_E_DATA, "'%s': task %lld asks row %d, outside 0..%lld", p,
                           (long long)i, (int)t->row[i], (long long)(w->n_seq - 1));
        if (t->answer[i] < -1 || t->answer[i] >= t->n_code)
            return ab_fail(AB_E_DATA, "'%s': task %lld has answer %d, outside -1..%lld", p,
                           (long long)i, (int)t->answer[i], (long long)(t->n_code - 1));
    }
    int64_t n_key = t->key_off[t->n];
    for (int64_t j = 0; j < n_key; j++)
        if (t->key_pos[j] < 0 || t->key_pos[j] >= w->n_seq)
            return ab_fail(AB_E_DATA, "'%s': task key %d outside 0..%lld", p, (int)t->key_pos[j],
                           (long long)(w->n_seq - 1));
    return AB_OK;
}

/* Reads /truth/tasks (shapes already checked) into w->tasks. */
static int ab_wl_read_tasks(struct ab_h5 *f, const struct ab_wl_shape *s, struct ab_workload *w)
{
    struct ab_tasks *t = &w->tasks;
    int64_t n = s->t_kind, n_code = s->has_cb ? s->t_cb[0] : 0;
    int rc = ab_tasks_alloc(t, n, s->t_key, n_code, w->d_v, w->n_layer, w->n_kv_head);
    if (rc != AB_OK) return rc;
    char **kind = calloc((size_t)(n > 0 ? n : 1), sizeof *kind);
    if (!kind) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
    int found;
    t->agg_threshold = 0.9;
    if ((rc = ab_h5_attr_get_f64(f, "/truth/tasks", "agg_threshold", &t->agg_threshold, &found)) ||
        (rc = ab_h5_get_strings(f, "/truth/tasks/kind", n, kind)) ||
        (n > 0 && (rc = ab_h5_get(f, "/truth/tasks/row", H5T_NATIVE_INT32, t->row))) ||
        (n > 0 && (rc = ab_h5_get(f, "/truth/tasks/answer", H5T_NATIVE_INT32, t->answer))) ||
        (rc = ab_h5_get(f, "/truth/tasks/key_off", H5T_NATIVE_INT64, t->key_off)) ||
        (s->t_key > 0 &&
         (rc = ab_h5_get(f, "/truth/tasks/key_pos", H5T_NATIVE_INT32, t->key_pos))) ||
        (n_code > 0 &&
         (rc = ab_h5_get(f, "/truth/tasks/codebook", H5T_NATIVE_FLOAT, t->codebook))) ||
        (s->has_pl && (rc = ab_h5_get(f, "/truth/tasks/planted", H5T_NATIVE_INT8, t->planted))))
        goto done;
    for (int64_t i = 0; i < n; i++) {
        int k = ab_task_kind_parse(kind[i]);
        if (k < 0) {
            rc = ab_fail(AB_E_DATA, "'%s': task %lld has unknown kind '%s'", f->path, (long long)i,
                         kind[i]);
            goto done;
        }
        t->kind[i] = k;
    }
    if (t->key_off[n] != s->t_key) {
        rc = ab_fail(AB_E_DATA, "'%s': /truth/tasks/key_off ends at %lld, /key_pos has %lld",
                     f->path, (long long)t->key_off[n], (long long)s->t_key);
        goto done;
    }
    for (int64_t j = 0; j < n_code * w->d_v; j++)
        if (!isfinite(t->codebook[j])) {
            rc =
                ab_fail(AB_E_DATA, "'%s': /truth/tasks/codebook holds a non-finite value", f->path);
            goto done;
        }
    rc = ab_wl_check_tasks(f, w);
done:
    for (int64_t i = 0; i < n; i++) free(kind[i]);
    free(kind);
    return rc;
}

/* Reads the small optional datasets: tokens, text, profiles. */
static int ab_wl_read_extras(struct ab_h5 *f, const struct ab_wl_shape *s, struct ab_workload *w)
{
    int rc;
    if (s->has_tok) {
        w->tokens = ab_alloc((size_t)w->n_seq * sizeof *w->tokens);
        if (!w->tokens) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        if ((rc = ab_h5_get(f, "/tokens", H5T_NATIVE_INT32, w->tokens))) return rc;
    }
    if (s->has_text_ds) {
        if ((rc = ab_h5_get_strings(f, "/text", 1, &w->text))) return rc;
    } else if ((rc = ab_h5_attr_get_str(f, "/", "text", &w->text))) {
        return rc;
    }
    if (s->has_prof) {
        int64_t n = w->n_layer * w->n_kv_head;
        w->profile = calloc((size_t)n, sizeof *w->profile);
        if (!w->profile) return ab_fail(AB_E_NOMEM, "'%s': out of memory", f->path);
        if ((rc = ab_h5_get_strings(f, "/truth/profile", n, w->profile))) return rc;
    }
    return AB_OK;
}

/* Checks that n floats are finite; names the dataset otherwise. */
static int ab_wl_check_finite(const struct ab_h5 *f, const char *name, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return ab_fail(AB_E_DATA, "'%s': %s holds a non-finite value (element %lld)", f->path,
                           name, (long long)i);
    return AB_OK;
}

/* The reader behind read (bulk = 1) and read_meta (bulk = 0). */
static int ab_wl_read(const char *path, struct ab_workload *w, int bulk)
{
    memset(w, 0, sizeof *w);
    struct ab_h5 f = {0};
    struct ab_wl_shape s;
    memset(&s, 0, sizeof s);
    int rc;
    if ((rc = ab_h5_open(&f, path))) return rc;
    if ((rc = ab_wl_check_schema(&f)) || (rc = ab_wl_read_shapes(&f, &s)) ||
        (rc = ab_wl_check_fits(&f, &s, bulk)))
        goto done;

    if (bulk) {
        rc = ab_workload_alloc(w, s.q[0], s.q[1], s.k[1], s.q[2], s.q[3], s.v[3]);
        if (rc == AB_E_USAGE) rc = ab_wl_name_file(AB_E_DATA, path);
        if (rc != AB_OK) goto done;
    } else {
        w->n_layer = s.q[0];
        w->n_head = s.q[1];
        w->n_kv_head = s.k[1];
        w->n_seq = s.q[2];
        w->d = s.q[3];
        w->d_v = s.v[3];
        w->positions = ab_alloc((size_t)w->n_seq * sizeof *w->positions);
        if (!w->positions) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
    }
    if (s.has_hid) w->d_model = s.hid[2];
    if ((rc = ab_wl_read_attrs(&f, w)) || (rc = ab_wl_read_positions(&f, w)) ||
        (rc = ab_wl_read_extras(&f, &s, w)) || (s.has_tasks && (rc = ab_wl_read_tasks(&f, &s, w))))
        goto done;
    for (int64_t i = 1; i < w->n_seq; i++)
        if (w->positions[i] < w->positions[i - 1]) {
            rc = ab_fail(AB_E_DATA, "'%s': /positions decrease at row %lld", path, (long long)i);
            goto done;
        }
    if (!bulk) goto done;

    if ((rc = ab_h5_get(&f, "/q", H5T_NATIVE_FLOAT, w->q)) ||
        (rc = ab_h5_get(&f, "/k", H5T_NATIVE_FLOAT, w->k)) ||
        (rc = ab_h5_get(&f, "/v", H5T_NATIVE_FLOAT, w->v)))
        goto done;
    if (s.has_hid) {
        int64_t nh = (w->n_layer + 1) * w->n_seq * w->d_model;
        w->hidden = ab_alloc((size_t)nh * sizeof *w->hidden);
        if (!w->hidden) {
            rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
            goto done;
        }
        if ((rc = ab_h5_get(&f, "/hidden", H5T_NATIVE_FLOAT, w->hidden)) ||
            (rc = ab_wl_check_finite(&f, "/hidden", w->hidden, nh)))
            goto done;
    }
    if ((rc = ab_workload_validate(w)) != AB_OK) rc = ab_wl_name_file(rc, path);
done:
    ab_h5_close(&f);
    if (rc != AB_OK) {
        ab_workload_free(w);
        memset(w, 0, sizeof *w);
    }
    return rc;
}

int ab_h5_workload_read(const char *path, struct ab_workload *out)
{
    return ab_wl_read(path, out, 1);
}

int ab_h5_workload_read_meta(const char *path, struct ab_workload *out)
{
    return ab_wl_read(path, out, 0);
}

int ab_h5_workload_read_head(const char *path, const struct ab_workload *meta, int64_t layer,
                             int64_t head, float **q, float **k, float **v)
{
    *q = *k = *v = NULL;
    if (layer < 0 || layer >= meta->n_layer || head < 0 || head >= meta->n_head)
        return ab_fail(AB_E_USAGE, "'%s': no head %lld in layer %lld", path, (long long)head,
                       (long long)layer);
    int64_t n = meta->n_seq, d = meta->d, dv = meta->d_v;
    int64_t kv = head / (meta->n_head / meta->n_kv_head);
    struct ab_h5 f = {0};
    char what[300];
    snprintf(what, sizeof what, "one head of '%s'", path);
    int rc = ab_check_fits(what, 4.0 * (double)n * (double)(2 * d + dv));
    if (rc != AB_OK) return rc;
    if ((rc = ab_h5_open(&f, path))) return rc;
    int64_t sq[4] = {layer, head, 0, 0}, skv[4] = {layer, kv, 0, 0};
    int64_t cq[4] = {1, 1, n, d}, cv[4] = {1, 1, n, dv};
    int64_t dims[4];
    *q = ab_alloc((size_t)(n * d) * sizeof **q);
    *k = ab_alloc((size_t)(n * d) * sizeof **k);
    *v = ab_alloc((size_t)(n * dv) * sizeof **v);
    if (!*q || !*k || !*v) {
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
        goto done;
    }
    /* the file may have changed since meta was read: check the shapes again */
    if ((rc = ab_h5_shape(&f, "/q", 4, H5T_FLOAT, dims, NULL))) goto done;
    if (dims[0] != meta->n_layer || dims[1] != meta->n_head || dims[2] != n || dims[3] != d) {
        rc = ab_fail(AB_E_DATA, "'%s': /q changed shape while being read", path);
        goto done;
    }
    if ((rc = ab_h5_get_slab(&f, "/q", H5T_NATIVE_FLOAT, 4, sq, cq, *q)) ||
        (rc = ab_h5_get_slab(&f, "/k", H5T_NATIVE_FLOAT, 4, skv, cq, *k)) ||
        (rc = ab_h5_get_slab(&f, "/v", H5T_NATIVE_FLOAT, 4, skv, cv, *v)) ||
        (rc = ab_wl_check_finite(&f, "/q", *q, n * d)) ||
        (rc = ab_wl_check_finite(&f, "/k", *k, n * d)) ||
        (rc = ab_wl_check_finite(&f, "/v", *v, n * dv)))
        goto done;
done:
    ab_h5_close(&f);
    if (rc != AB_OK) {
        ab_free(*q);
        ab_free(*k);
        ab_free(*v);
        *q = *k = *v = NULL;
    }
    return rc;
}

int ab_h5_file_storage(const char *path, struct ab_h5_storage *out)
{
    memset(out, 0, sizeof *out);
    struct ab_h5 f = {0};
    int rc = ab_h5_open(&f, path);
    if (rc != AB_OK) return rc;
    struct stat st;
    if (stat(path, &st) == 0) out->file_bytes = (int64_t)st.st_size;
    rc = ab_h5_storage_sum(&f, &out->data_bytes, &out->stored_bytes);
    ab_h5_close(&f);
    return rc;
}
