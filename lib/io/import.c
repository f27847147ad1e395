/* import.c - Q, K and V from .npy / .npz / safetensors / HDF5 into a workload (see import.h).
 *
 * Each tensor is read whole as float32 (npy.c, zip.c, safetensors.c, h5_array.c do the format
 * checks), its values are checked, its axes are mapped through the layout, and it is copied
 * into the workload's (layer, head, seq, dim) order. Shapes are compared before the workload is
 * allocated, so a mismatch costs no copy. */
#include "io/import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "io/safetensors.h"
#include "io/zip.h"

enum { AX_LAYER, AX_HEAD, AX_SEQ, AX_DIM, N_AX };
static const char *const axis_names[N_AX] = {"layer", "head", "seq", "dim"};
static const char *const role_names[3] = {"q", "k", "v"};

void ab_import_defaults(struct ab_import_opts *o)
{
    memset(o, 0, sizeof *o);
    o->names[0] = "q", o->names[1] = "k", o->names[2] = "v";
    o->layout = "layer,head,seq,dim";
    o->causal = 1;
    o->rope_applied = 1;
    o->rope_style = AB_ROPE_INTERLEAVED;
}

/* Parses a layout into axis_of[i] = the axis stored as dimension i; *n gets 3 or 4. A
 * three-name layout must leave out layer. */
static int parse_layout(const char *s, int axis_of[N_AX], int *n)
{
    int seen[N_AX] = {0};
    const char *p = s;
    *n = 0;
    while (*p) {
        size_t len = strcspn(p, ",");
        int a = -1;
        for (int k = 0; k < N_AX; k++)
            if (strlen(axis_names[k]) == len && !strncmp(p, axis_names[k], len)) a = k;
        if (a < 0 || seen[a] || *n == N_AX) break;
        seen[a] = 1;
        axis_of[(*n)++] = a;
        p += len + (p[len] == ',');
    }
    if (*p || !(*n == N_AX || (*n == 3 && !seen[AX_LAYER])))
        return ab_fail(AB_E_USAGE,
                       "layout '%s' must name layer, head, seq and dim once each "
                       "(or head, seq and dim for single-layer arrays)",
                       s);
    return AB_OK;
}

/* "(2, 3, 4)" */
static void shape_text(int rank, const int64_t *shape, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%lld%s", (long long)shape[i],
                                i + 1 < rank ? ", " : "");
    if (len < cap) snprintf(buf + len, cap - len, ")");
}

/* Names of up to a few members / tensors, for "no tensor 'q' (has: a, b, c)". */
static void list_names(char *buf, size_t cap, int64_t n, const char *(*name)(const void *, int64_t),
                       const void *ctx)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < n && len < cap; i++) {
        if (i == 6) {
            snprintf(buf + len, cap - len, ", ...");
            break;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", name(ctx, i));
    }
}

static const char *zip_name(const void *z, int64_t i)
{
    return ((const struct ab_zip *)z)->e[i].name;
}

static const char *st_name(const void *st, int64_t i)
{
    return ((const struct ab_safetensors *)st)->t[i].name;
}

int ab_import_read_tensor(const char *path, const char *name, int void2, int as,
                          struct ab_array *a, char *source, size_t cap)
{
    int fmt, rc = ab_array_sniff(path, &fmt);
    memset(a, 0, sizeof *a);
    if (rc) return rc;
    snprintf(source, cap, "%s", path);
    if (fmt == AB_FMT_NPY) return ab_npy_read_hint(path, void2, as, a);
    if (fmt == AB_FMT_H5) {
        snprintf(source, cap, "%s:/%s", path, name[0] == '/' ? name + 1 : name);
        return ab_h5_array_read(path, name, 0, as, a);
    }
    if (fmt == AB_FMT_SAFETENSORS) {
        struct ab_safetensors st;
        if ((rc = ab_safetensors_open(&st, path))) return rc;
        snprintf(source, cap, "%s:%s", path, name);
        const struct ab_st_tensor *t = ab_safetensors_find(&st, name);
        if (t) {
            rc = ab_safetensors_read(&st, t, as, a);
        } else {
            char names[256];
            list_names(names, sizeof names, st.n, st_name, &st);
            rc = ab_fail(AB_E_DATA, "'%s': no tensor '%s' (it holds: %s)", path, name,
                         st.n ? names : "nothing");
        }
        ab_safetensors_close(&st);
        return rc;
    }
    /* .npz: member name.npy, or name as given */
    struct ab_zip z;
    char member[512];
    unsigned char *buf = NULL;
    size_t len = 0;
    if ((rc = ab_zip_open(&z, path))) return rc;
    snprintf(member, sizeof member, "%s.npy", name);
    int64_t i = ab_zip_find(&z, member);
    if (i < 0 && (i = ab_zip_find(&z, name)) >= 0) snprintf(member, sizeof member, "%s", name);
    if (i < 0) {
        char names[256];
        list_names(names, sizeof names, z.n, zip_name, &z);
        rc = ab_fail(AB_E_DATA, "'%s': no member '%s.npy' (it holds: %s)", path, name,
                     z.n ? names : "nothing");
    } else {
        if (snprintf(source, cap, "%s:%s", path, member) >= (int)cap) /* a long label is cut */
            source[cap - 1] = '\0';
        rc = ab_zip_read(&z, i, &buf, &len);
        if (!rc) rc = ab_npy_read_mem(buf, len, source, void2, as, a);
    }
    free(buf);
    ab_zip_close(&z);
    return rc;
}

int ab_import_has_tensor(const char *path, const char *name, int *has)
{
    int fmt, rc = ab_array_sniff(path, &fmt);
    *has = 0;
    if (rc) return rc;
    if (fmt == AB_FMT_NPY)
        return ab_fail(AB_E_DATA, "'%s': a .npy file holds one array, not named ones", path);
    if (fmt == AB_FMT_H5) {
        char ds[512];
        snprintf(ds, sizeof ds, "%s%s", name[0] == '/' ? "" : "/", name);
        return ab_h5_array_exists(path, ds, has);
    }
    if (fmt == AB_FMT_SAFETENSORS) {
        struct ab_safetensors st;
        if ((rc = ab_safetensors_open(&st, path))) return rc;
        *has = ab_safetensors_find(&st, name) != NULL;
        ab_safetensors_close(&st);
        return AB_OK;
    }
    struct ab_zip z;
    char member[512];
    if ((rc = ab_zip_open(&z, path))) return rc;
    snprintf(member, sizeof member, "%s.npy", name);
    *has = ab_zip_find(&z, member) >= 0 || ab_zip_find(&z, name) >= 0;
    ab_zip_close(&z);
    return AB_OK;
}

/* One input tensor mapped onto the axes: dim[ax] its size along axis ax, stride[ax] its
 * element stride in the file's order (a missing layer axis has size 1). */
struct mapped {
    struct ab_array a;
    int64_t dim[N_AX], stride[N_AX];
};

/* Maps a's dimensions through the layout. */
static int map_axes(struct mapped *m, const char *source, const char *role, const char *layout,
                    const int axis_of[N_AX], int n_layout)
{
    const struct ab_array *a = &m->a;
    int order[N_AX], n = n_layout;
    memcpy(order, axis_of, sizeof order);
    if (a->rank == 3 && n == N_AX) {
        /* single-layer arrays: the layout without its layer axis */
        n = 0;
        for (int i = 0; i < N_AX; i++)
            if (axis_of[i] != AX_LAYER) order[n++] = axis_of[i];
    }
    if (a->rank != n) {
        char shape[256];
        shape_text(a->rank, a->shape, shape, sizeof shape);
        return ab_fail(AB_E_DATA, "'%s': %s has shape %s; layout %s wants %d dimensions%s", source,
                       role, shape, layout, n, n == N_AX ? " (or 3 for one layer)" : "");
    }
    for (int ax = 0; ax < N_AX; ax++) m->dim[ax] = 1, m->stride[ax] = 0;
    int64_t stride = 1;
    for (int i = n - 1; i >= 0; i--) {
        m->dim[order[i]] = a->shape[i];
        m->stride[order[i]] = stride;
        stride *= a->shape[i];
    }
    for (int ax = 0; ax < N_AX; ax++)
        if (m->dim[ax] <= 0)
            return ab_fail(AB_E_DATA, "'%s': %s has no %s (size 0 along that axis)", source, role,
                           axis_names[ax]);
    return AB_OK;
}

/* The first non-finite value of a, reported with its index in the file's axis order. */
static int check_finite(const struct ab_array *a, const char *source, const char *role)
{
    const float *x = a->data;
    for (int64_t i = 0; i < a->n; i++) {
        if (isfinite(x[i])) continue;
        int64_t idx[AB_ARRAY_MAX_RANK], rest = i;
        for (int d = a->rank - 1; d >= 0; d--) idx[d] = rest % a->shape[d], rest /= a->shape[d];
        char at[256];
        shape_text(a->rank, idx, at, sizeof at);
        return ab_fail(AB_E_DATA, "'%s': %s holds %s at index %s%s", source, role,
                       isnan(x[i]) ? "NaN" : "an infinity", at,
                       a->dtype == AB_DT_F64 ? " (or a value beyond float32's range)" : "");
    }
    return AB_OK;
}

/* Copies m into dst (n_layer, n_head, n_seq, d) in the workload's order. */
static void copy_in(const struct mapped *m, float *dst)
{
    const float *src = m->a.data;
    int64_t L = m->dim[AX_LAYER], H = m->dim[AX_HEAD], S = m->dim[AX_SEQ], D = m->dim[AX_DIM];
    const int64_t *st = m->stride;
    for (int64_t l = 0; l < L; l++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t s = 0; s < S; s++) {
                float *row = dst + ((l * H + h) * S + s) * D;
                const float *from = src + l * st[AX_LAYER] + h * st[AX_HEAD] + s * st[AX_SEQ];
                for (int64_t c = 0; c < D; c++) row[c] = from[c * st[AX_DIM]];
            }
}

/* Shapes of q, k, v against each other (import.h). */
static int check_shapes(const struct mapped m[3], char src[3][512])
{
    const char *what[N_AX] = {"layers", "heads", "sequence lengths", "head dims"};
    for (int r = 1; r < 3; r++)
        for (int ax = 0; ax < N_AX; ax += 2) /* layer and seq agree for all three */
            if (m[r].dim[ax] != m[0].dim[ax])
                return ab_fail(AB_E_DATA, "'%s' and '%s': %s differ (q %lld, %s %lld)", src[0],
                               src[r], what[ax], (long long)m[0].dim[ax], role_names[r],
                               (long long)m[r].dim[ax]);
    if (m[1].dim[AX_DIM] != m[0].dim[AX_DIM])
        return ab_fail(AB_E_DATA, "'%s' and '%s': head dims differ (q %lld, k %lld)", src[0],
                       src[1], (long long)m[0].dim[AX_DIM], (long long)m[1].dim[AX_DIM]);
    if (m[2].dim[AX_HEAD] != m[1].dim[AX_HEAD])
        return ab_fail(AB_E_DATA,
                       "'%s' and '%s': k and v have different head counts (%lld, "
                       "%lld)",
                       src[1], src[2], (long long)m[1].dim[AX_HEAD], (long long)m[2].dim[AX_HEAD]);
    if (m[0].dim[AX_HEAD] % m[1].dim[AX_HEAD])
        return ab_fail(AB_E_DATA, "'%s' and '%s': q's %lld heads are not a multiple of k's %lld",
                       src[0], src[1], (long long)m[0].dim[AX_HEAD], (long long)m[1].dim[AX_HEAD]);
    return AB_OK;
}

/* Optional token ids from a safetensors file: shape (n) or (1, n), values in int32. */
static int read_tokens(const char *path, const char *name, int64_t n_seq, int32_t **tokens)
{
    int fmt, rc = ab_array_sniff(path, &fmt);
    if (rc) return rc;
    if (fmt != AB_FMT_SAFETENSORS)
        return ab_fail(AB_E_USAGE, "'%s': token ids are read from safetensors files only", path);
    struct ab_safetensors st;
    int64_t *x = NULL, n = 0;
    if ((rc = ab_safetensors_open(&st, path))) return rc;
    const struct ab_st_tensor *t = ab_safetensors_find(&st, name);
    if (!t)
        rc = ab_fail(AB_E_DATA, "'%s': no tensor '%s'", path, name);
    else
        rc = ab_safetensors_read_int(&st, t, &x, &n);
    if (!rc && n != n_seq)
        rc = ab_fail(AB_E_DATA, "'%s': tensor '%s' holds %lld token ids for %lld positions", path,
                     name, (long long)n, (long long)n_seq);
    if (!rc && !(*tokens = ab_alloc((size_t)n * sizeof(int32_t))))
        rc = ab_fail(AB_E_NOMEM, "'%s': out of memory", path);
    for (int64_t i = 0; !rc && i < n; i++) {
        if (x[i] < 0 || x[i] > INT32_MAX)
            rc = ab_fail(AB_E_DATA, "'%s': token id %lld at %lld is out of range", path,
                         (long long)x[i], (long long)i);
        else
            (*tokens)[i] = (int32_t)x[i];
    }
    ab_free(x);
    ab_safetensors_close(&st);
    return rc;
}

int ab_import(const struct ab_import_opts *o, struct ab_workload *w, struct ab_import_info *info)
{
    struct mapped m[3];
    char src[3][512];
    int axis_of[N_AX], n_layout, rc;
    memset(m, 0, sizeof m);
    memset(w, 0, sizeof *w);
    if (info) memset(info, 0, sizeof *info);
    if (o->n_files != 1 && o->n_files != 3)
        return ab_fail(AB_E_USAGE, "import wants one container or three files (q, k, v), got %d",
                       o->n_files);
    if ((rc = parse_layout(o->layout, axis_of, &n_layout))) return rc;
    int rotate = !o->rope_applied && o->rope_theta != 0;
    if (rotate && !(o->rope_theta > 0 && isfinite(o->rope_theta)))
        return ab_fail(AB_E_USAGE, "RoPE theta must be positive (got %g)", o->rope_theta);
    if (o->first_position < 0 || o->first_position > INT32_MAX)
        return ab_fail(AB_E_USAGE, "first position %lld out of range",
                       (long long)o->first_position);
    for (int r = 0; r < 3; r++) {
        const char *path = o->files[o->n_files == 1 ? 0 : r];
        if ((rc = ab_import_read_tensor(path, o->names[r], o->void2, AB_DT_F32, &m[r].a, src[r],
                                            sizeof src[r])))
            goto done;
        if (o->n_files == 1 && !strcmp(src[r], path)) {
            rc = ab_fail(AB_E_USAGE,
                         "'%s': a .npy file holds one array; give q, k and v as "
                         "three files",
                         path);
            goto done;
        }
        if ((rc = map_axes(&m[r], src[r], role_names[r], o->layout, axis_of, n_layout))) goto done;
        if (info) {
            struct ab_import_tensor *t = &info->t[r];
            _Static_assert(sizeof t->source == sizeof src[r], "labels of one size");
            memcpy(t->source, src[r], sizeof t->source);
            t->dtype = m[r].a.dtype, t->rank = m[r].a.rank;
            memcpy(t->shape, m[r].a.shape, sizeof t->shape);
        }
    }
    if ((rc = check_shapes(m, src))) goto done;
    for (int r = 0; r < 3; r++)
        if ((rc = check_finite(&m[r].a, src[r], role_names[r]))) goto done;
    int64_t L = m[0].dim[AX_LAYER], H = m[0].dim[AX_HEAD], G = m[1].dim[AX_HEAD];
    int64_t n = m[0].dim[AX_SEQ], d = m[0].dim[AX_DIM], dv = m[2].dim[AX_DIM];
    if (rotate && d % 2) {
        rc = ab_fail(AB_E_USAGE, "'%s': RoPE needs an even head dim (d is %lld)", src[0],
                     (long long)d);
        goto done;
    }
    if (o->first_position + n - 1 > INT32_MAX) {
        rc = ab_fail(AB_E_USAGE, "positions %lld + %lld exceed int32", (long long)o->first_position,
                     (long long)n);
        goto done;
    }
    if ((rc = ab_workload_alloc(w, L, H, G, n, d, dv))) goto done;
    for (int64_t i = 0; i < n; i++) w->positions[i] = (int32_t)(o->first_position + i);
    copy_in(&m[0], w->q);
    copy_in(&m[1], w->k);
    copy_in(&m[2], w->v);
    for (int r = 0; r < 3; r++) ab_array_free(&m[r].a); /* the copies are all we need now */
    if (rotate) {
        /* Q and K arrive before RoPE: rotate every head's rows at their positions */
        void (*rope)(float *, int64_t, int64_t, const int32_t *, double) =
            o->rope_style == AB_ROPE_HALF ? ab_rope_apply_half : ab_rope_apply;
        for (int64_t l = 0; l < L; l++) {
            for (int64_t h = 0; h < H; h++)
                rope(ab_workload_q(w, l, h), n, d, w->positions, o->rope_theta);
            for (int64_t g = 0; g < G; g++)
                rope(ab_workload_k(w, l, g), n, d, w->positions, o->rope_theta);
        }
    }
    if (o->tokens && (rc = read_tokens(o->files[0], o->tokens, n, &w->tokens))) goto done;
    if (info) info->has_tokens = o->tokens != NULL;
    w->causal = o->causal;
    w->scale = o->scale > 0 ? o->scale : 1.0 / sqrt((double)d);
    /* stored Q and K are rotated when they came rotated or were rotated here */
    w->rope_applied = o->rope_applied || rotate;
    w->rope_theta = o->rope_theta;
    size_t cap = 3 * 600 + 64;
    char *desc = malloc(cap);
    w->source = strdup("import");
    if (desc)
        snprintf(desc, cap, "imported: q %s, k %s, v %s (layout %s%s)", src[0], src[1], src[2],
                 o->layout,
                 rotate ? (o->rope_style == AB_ROPE_HALF ? "; RoPE applied on import, "
                                                           "rotate_half"
                                                         : "; RoPE applied on import, "
                                                           "interleaved")
                        : "");
    w->description = desc;
    if (!w->source || !w->description) {
        rc = ab_fail(AB_E_NOMEM, "out of memory");
        goto done;
    }
    rc = ab_workload_validate(w);
done:
    for (int r = 0; r < 3; r++) ab_array_free(&m[r].a);
    if (rc) ab_workload_free(w);
    return rc;
}
