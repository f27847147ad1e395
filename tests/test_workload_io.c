/* test_workload_io.c - the workload file, the PNG map and the `info` / `render` commands.
 *
 * Workloads are built by hand from seeded values (every optional part filled), written, read
 * back and compared bit for bit. Bad files are made by copying, cutting or editing good ones,
 * or crafted with raw HDF5 calls (a float64 /q, a NaN, shapes that disagree, a file that claims
 * terabytes), so every refusal path of the reader is exercised. The map is checked on heads
 * whose picture is known: all mass on key 0 (a bright first column) and uniform rows (one known
 * palette index). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/rng.h"
#include "core/workload.h"
#include "helpers.h"
#include "io/h5_workload.h"
#include "io/png_io.h"
#include "report/gnuplot.h"
#include "report/map_pool.h"

static const char *const profile_names[] = {"streaming", "retrieval", "induction", "dormant"};

/* A workload of the given shape with seeded values; full = 1 fills every optional part
 * (tokens, text, hidden states, profiles, tasks of all three kinds). */
static void make_workload(struct ab_workload *w, uint64_t seed, int64_t n_layer, int64_t n_head,
                          int64_t n_kv, int64_t n, int64_t d, int64_t dv, int full)
{
    cr_assert_eq(ab_workload_alloc(w, n_layer, n_head, n_kv, n, d, dv), AB_OK, "%s", ab_errmsg());
    struct ab_rng r;
    ab_rng_init(&r, seed, 1);
    for (int64_t i = 0; i < n_layer * n_head * n * d; i++) w->q[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n_layer * n_kv * n * d; i++) w->k[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n_layer * n_kv * n * dv; i++) w->v[i] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) w->positions[i] = (int32_t)(3 + i + i / 7); /* gaps */
    w->seed = seed;
    w->source = strdup("synthetic");
    w->description = strdup("hand-built test workload, UTF-8: \xc3\xa9\xe2\x86\x92");
    w->created_utc = strdup("2024-01-02T03:04:05Z");
    w->version = strdup("9.9.9-test");
    w->causal = 1;
    w->scale = 0.3;
    w->rope_applied = 1;
    w->rope_theta = 10000;
    if (!full) return;

    w->tokens = ab_alloc((size_t)n * sizeof *w->tokens);
    for (int64_t i = 0; i < n; i++) w->tokens[i] = (int32_t)ab_rng_below(&r, 32000);
    w->text = strdup("Once upon a time \xe2\x80\x94 a test.\nSecond line.");
    w->d_model = 10;
    int64_t nh = (n_layer + 1) * n * w->d_model;
    w->hidden = ab_alloc((size_t)nh * sizeof *w->hidden);
    for (int64_t i = 0; i < nh; i++) w->hidden[i] = (float)ab_rng_normal(&r);
    w->profile = calloc((size_t)(n_layer * n_kv), sizeof *w->profile);
    for (int64_t i = 0; i < n_layer * n_kv; i++) w->profile[i] = strdup(profile_names[i % 4]);

    /* five tasks: two retrieve (1 key), one multi-retrieve (3 keys), two aggregate (2 keys) */
    static const int32_t kind[] = {0, 0, 1, 2, 2}, nkeys[] = {1, 1, 3, 2, 2};
    struct ab_tasks *t = &w->tasks;
    cr_assert_eq(ab_tasks_alloc(t, 5, 9, 4, dv, n_layer, n_kv), AB_OK, "%s", ab_errmsg());
    t->key_off[0] = 0;
    for (int i = 0; i < 5; i++) {
        t->kind[i] = kind[i];
        t->row[i] = (int32_t)(n - 5 + i);
        t->answer[i] = kind[i] == 2 ? -1 : (int32_t)ab_rng_below(&r, 4);
        t->key_off[i + 1] = t->key_off[i] + nkeys[i];
    }
    for (int j = 0; j < 9; j++) t->key_pos[j] = (int32_t)ab_rng_below(&r, n - 5);
    for (int64_t j = 0; j < 4 * dv; j++) t->codebook[j] = (float)ab_rng_normal(&r);
    for (int64_t i = 0; i < n_layer * n_kv; i++) t->planted[i] = (int8_t)(i % 3 == 1);
    t->agg_threshold = 0.85;
}

static void make_default(struct ab_workload *w, int full)
{
    make_workload(w, 42, 2, 4, 2, 48, 8, 6, full);
}

static void expect_same_str(const char *a, const char *b, const char *what)
{
    if (!a || !b) {
        cr_expect(a == b, "%s: one is NULL", what);
        return;
    }
    cr_expect_str_eq(a, b, "%s", what);
}

/* Every field of a and b, arrays bit for bit. */
static void expect_same(const struct ab_workload *a, const struct ab_workload *b)
{
    cr_assert_eq(a->n_layer, b->n_layer);
    cr_assert_eq(a->n_head, b->n_head);
    cr_assert_eq(a->n_kv_head, b->n_kv_head);
    cr_assert_eq(a->n_seq, b->n_seq);
    cr_assert_eq(a->d, b->d);
    cr_assert_eq(a->d_v, b->d_v);
    int64_t nq = a->n_layer * a->n_head * a->n_seq * a->d;
    int64_t nk = a->n_layer * a->n_kv_head * a->n_seq * a->d;
    int64_t nv = a->n_layer * a->n_kv_head * a->n_seq * a->d_v;
    cr_expect(!memcmp(a->q, b->q, (size_t)nq * 4), "q differs");
    cr_expect(!memcmp(a->k, b->k, (size_t)nk * 4), "k differs");
    cr_expect(!memcmp(a->v, b->v, (size_t)nv * 4), "v differs");
    cr_expect(!memcmp(a->positions, b->positions, (size_t)a->n_seq * 4), "positions differ");
    cr_expect_eq(!a->tokens, !b->tokens);
    if (a->tokens && b->tokens)
        cr_expect(!memcmp(a->tokens, b->tokens, (size_t)a->n_seq * 4), "tokens differ");
    expect_same_str(a->text, b->text, "text");
    cr_expect_eq(a->d_model, b->d_model);
    cr_expect_eq(!a->hidden, !b->hidden);
    if (a->hidden && b->hidden)
        cr_expect(
            !memcmp(a->hidden, b->hidden, (size_t)((a->n_layer + 1) * a->n_seq * a->d_model) * 4),
            "hidden differs");
    cr_expect_eq(!a->profile, !b->profile);
    for (int64_t i = 0; a->profile && b->profile && i < a->n_layer * a->n_kv_head; i++)
        expect_same_str(a->profile[i], b->profile[i], "profile");
    const struct ab_tasks *s = &a->tasks, *t = &b->tasks;
    cr_assert_eq(s->n, t->n);
    cr_assert_eq(s->n_code, t->n_code);
    if (s->n > 0) {
        cr_expect(!memcmp(s->kind, t->kind, (size_t)s->n * 4), "task kinds differ");
        cr_expect(!memcmp(s->row, t->row, (size_t)s->n * 4), "task rows differ");
        cr_expect(!memcmp(s->answer, t->answer, (size_t)s->n * 4), "task answers differ");
        cr_expect(!memcmp(s->key_off, t->key_off, (size_t)(s->n + 1) * 8), "key_off differs");
        cr_expect(!memcmp(s->key_pos, t->key_pos, (size_t)s->key_off[s->n] * 4), "key_pos differs");
        cr_expect(!memcmp(s->codebook, t->codebook, (size_t)(s->n_code * a->d_v) * 4),
                  "codebook differs");
        cr_expect(!memcmp(s->planted, t->planted, (size_t)(a->n_layer * a->n_kv_head)),
                  "planted differs");
        cr_expect(memcmp(&s->agg_threshold, &t->agg_threshold, sizeof(double)) == 0);
    }
    expect_same_str(a->source, b->source, "source");
    expect_same_str(a->description, b->description, "description");
    expect_same_str(a->created_utc, b->created_utc, "created_utc");
    expect_same_str(a->version, b->version, "version");
    cr_expect_eq(a->seed, b->seed);
    cr_expect_eq(a->causal, b->causal);
    cr_expect(memcmp(&a->scale, &b->scale, sizeof(double)) == 0, "scale differs");
    cr_expect_eq(a->rope_applied, b->rope_applied);
    cr_expect(memcmp(&a->rope_theta, &b->rope_theta, sizeof(double)) == 0);
}

/* Writes a full default workload to path. */
static void write_default(const char *path)
{
    struct ab_workload w;
    make_default(&w, 1);
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    ab_workload_free(&w);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* ---------------------------------------------------------------- round trip, bytes, layout */

Test(workload_io, round_trip_full_is_bit_exact)
{
    const char *path = t_path("full.h5");
    struct ab_workload w, r;
    make_default(&w, 1);
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    cr_expect(!t_tmp_left(path), "temporary file left behind");
    cr_assert_eq(ab_h5_workload_read(path, &r), AB_OK, "%s", ab_errmsg());
    expect_same(&w, &r);
    ab_workload_free(&w);
    ab_workload_free(&r);
}

Test(workload_io, round_trip_minimal_keeps_optional_parts_absent)
{
    const char *path = t_path("min.h5");
    struct ab_workload w, r;
    make_workload(&w, 7, 1, 3, 1, 17, 5, 3, 0);
    w.causal = 0;
    w.rope_applied = 0;
    w.rope_theta = 0;
    free(w.description);
    w.description = NULL;
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_h5_workload_read(path, &r), AB_OK, "%s", ab_errmsg());
    expect_same(&w, &r);
    cr_expect_null(r.tokens);
    cr_expect_null(r.text);
    cr_expect_null(r.hidden);
    cr_expect_null(r.profile);
    cr_expect_eq(r.tasks.n, 0);
    ab_workload_free(&w);
    ab_workload_free(&r);
}

Test(workload_io, write_fills_created_and_version_when_absent)
{
    const char *path = t_path("stamp.h5");
    struct ab_workload w, r;
    make_default(&w, 0);
    free(w.created_utc);
    free(w.version);
    w.created_utc = w.version = NULL;
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_h5_workload_read(path, &r), AB_OK, "%s", ab_errmsg());
    cr_expect_str_eq(r.version, ab_version());
    cr_assert_not_null(r.created_utc);
    cr_expect_eq(strlen(r.created_utc), 20, "%s", r.created_utc); /* 2024-01-02T03:04:05Z */
    cr_expect_eq(r.created_utc[19], 'Z');
    ab_workload_free(&w);
    ab_workload_free(&r);
}

Test(workload_io, same_input_gives_identical_bytes)
{
    const char *a = t_path("same-a.h5"), *b = t_path("same-b.h5");
    write_default(a);
    sleep(1); /* object time stamps, were they on, would differ now */
    write_default(b);
    size_t na, nb;
    unsigned char *da = t_slurp(a, &na), *db = t_slurp(b, &nb);
    cr_assert(da && db);
    cr_expect_eq(na, nb);
    cr_expect(na == nb && !memcmp(da, db, na), "files differ");
    free(da);
    free(db);
}

Test(workload_io, h5dump_reads_the_file_and_shows_dimension_scales)
{
    const char *path = t_path("dump.h5"), *out = t_path("dump.txt");
    write_default(path);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "h5dump -H -A '%s' > '%s' 2>&1", path, out);
    cr_assert_eq(system(cmd), 0, "h5dump failed");
    char *text = (char *)t_slurp(out, NULL);
    cr_assert_not_null(text);
    const char *want[] = {"DATASET \"q\"",   "DATASET \"k\"",       "DATASET \"hidden\"",
                          "GROUP \"truth\"", "DATASET \"profile\"", "DATASET \"codebook\"",
                          "DIMENSION_LIST",  "DIMENSION_SCALE",     "\"layer\"",
                          "\"head\"",        "\"kv_head\"",         "\"seq\"",
                          "\"feature\"",     "\"feature_v\"",       "attnbench/workload/1",
                          "H5T_CSET_UTF8",   "H5T_IEEE_F32LE"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(strstr(text, want[i]) != NULL, "h5dump output lacks %s", want[i]);
    free(text);
}

Test(workload_io, read_meta_reads_shapes_and_small_parts_only)
{
    const char *path = t_path("meta.h5");
    struct ab_workload w, m;
    make_default(&w, 1);
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_h5_workload_read_meta(path, &m), AB_OK, "%s", ab_errmsg());
    cr_expect_null(m.q);
    cr_expect_null(m.k);
    cr_expect_null(m.v);
    cr_expect_null(m.hidden);
    cr_expect_eq(m.d_model, 10);
    cr_expect_eq(m.n_layer, 2);
    cr_expect_eq(m.n_head, 4);
    cr_expect_eq(m.n_kv_head, 2);
    cr_expect_eq(m.n_seq, 48);
    cr_expect_eq(m.d, 8);
    cr_expect_eq(m.d_v, 6);
    cr_expect(!memcmp(m.positions, w.positions, 48 * 4));
    cr_expect_eq(m.tasks.n, 5);
    cr_assert_not_null(m.profile);
    cr_expect_str_eq(m.profile[1], "retrieval");
    cr_expect_str_eq(m.source, "synthetic");
    ab_workload_free(&w);
    ab_workload_free(&m);
}

Test(workload_io, read_head_matches_the_full_read)
{
    const char *path = t_path("head.h5");
    struct ab_workload w, m;
    make_default(&w, 1);
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_h5_workload_read_meta(path, &m), AB_OK, "%s", ab_errmsg());
    float *q, *k, *v;
    cr_assert_eq(ab_h5_workload_read_head(path, &m, 1, 3, &q, &k, &v), AB_OK, "%s", ab_errmsg());
    cr_expect(!memcmp(q, ab_workload_q(&w, 1, 3), 48 * 8 * 4), "q head differs");
    cr_expect(!memcmp(k, ab_workload_k(&w, 1, 1), 48 * 8 * 4), "k head differs");
    cr_expect(!memcmp(v, ab_workload_v(&w, 1, 1), 48 * 6 * 4), "v head differs");
    ab_free(q);
    ab_free(k);
    ab_free(v);
    cr_expect_eq(ab_h5_workload_read_head(path, &m, 2, 0, &q, &k, &v), AB_E_USAGE);
    cr_expect_null(q);
    ab_workload_free(&w);
    ab_workload_free(&m);
}

Test(workload_io, storage_reports_compression)
{
    const char *path = t_path("sto.h5");
    struct ab_workload w;
    make_workload(&w, 3, 1, 2, 1, 512, 16, 16, 0);
    for (int64_t i = 0; i < 2 * 512 * 16; i++) w.q[i] = 0.5f; /* compresses to almost nothing */
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    struct ab_h5_storage s;
    cr_assert_eq(ab_h5_file_storage(path, &s), AB_OK, "%s", ab_errmsg());
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(s.file_bytes, (int64_t)st.st_size);
    cr_expect_geq(s.data_bytes, 4 * (2 * 512 * 16 + 2 * 512 * 16));
    cr_expect_lt(s.stored_bytes, s.data_bytes);
    cr_expect_lt(s.stored_bytes, s.file_bytes);
    ab_workload_free(&w);
}

/* ---------------------------------------------------------------- refusals */

Test(workload_io, missing_file_is_nofile)
{
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(t_path("nope.h5"), &r), AB_E_NOFILE);
    cr_expect(strstr(ab_errmsg(), "nope.h5") != NULL, "%s", ab_errmsg());
    cr_expect_eq(ab_h5_workload_read_meta(t_path("nope.h5"), &r), AB_E_NOFILE);
}

Test(workload_io, truncated_file_is_data_error)
{
    const char *path = t_path("whole.h5"), *cut = t_path("cut.h5");
    write_default(path);
    size_t n;
    unsigned char *b = t_slurp(path, &n);
    cr_assert_not_null(b);
    const size_t sizes[] = {n / 2, n - 1, 600, 96, 8};
    for (int i = 0; i < 5; i++) {
        write_bytes(cut, b, sizes[i]);
        struct ab_workload r;
        cr_expect_eq(ab_h5_workload_read(cut, &r), AB_E_DATA, "cut at %zu: %s", sizes[i],
                     ab_errmsg());
        cr_expect(strstr(ab_errmsg(), "cut.h5") != NULL, "%s", ab_errmsg());
        cr_expect_null(r.q);
        cr_expect_eq(ab_h5_workload_read_meta(cut, &r), AB_E_DATA);
    }
    free(b);
}

Test(workload_io, text_file_is_not_hdf5)
{
    const char *path = t_path("text.h5");
    const char *text = "this is not an HDF5 file\n";
    write_bytes(path, text, strlen(text));
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "not an HDF5 file") != NULL, "%s", ab_errmsg());
    write_bytes(path, "", 0);
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
}

Test(workload_io, wrong_schema_is_data_error)
{
    /* the schema string sits uncompressed in the global heap: edit it in place */
    const char *path = t_path("schema.h5");
    write_default(path);
    size_t n;
    unsigned char *b = t_slurp(path, &n);
    cr_assert_not_null(b);
    const char *needle = AB_WORKLOAD_SCHEMA;
    size_t len = strlen(needle);
    int edited = 0;
    for (size_t i = 0; i + len <= n; i++)
        if (!memcmp(b + i, needle, len)) {
            memcpy(b + i, "attnbench/resultz/1x", len);
            edited++;
        }
    cr_assert_eq(edited, 1);
    write_bytes(path, b, n);
    free(b);
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "not an attnbench workload") != NULL, "%s", ab_errmsg());
    cr_expect(strstr(ab_errmsg(), "attnbench/resultz/1x") != NULL, "%s", ab_errmsg());
}

/* What a crafted file gets wrong. */
struct craft {
    const char *schema; /* NULL: no schema attribute */
    int q_f64;          /* store /q as float64 */
    int nan;            /* a NaN in /q */
    int64_t k_seq;      /* sequence length of /k (16 = consistent) */
    int64_t seq;        /* sequence length of /q and /v (16) */
    int64_t d;          /* head dimension (4) */
    int empty_space;    /* /q exists but has no data written (chunked, never allocated) */
    int pos_i64;        /* store /positions as int64, the last one past INT32_MAX */
    double q_mul;       /* nonzero: /q values multiplied by it */
};

/* Writes a workload-like file with raw HDF5 calls, deliberately wrong in the ways c says. */
static void craft_file(const char *path, const struct craft *c)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    if (c->schema) {
        hid_t t = H5Tcopy(H5T_C_S1), s = H5Screate(H5S_SCALAR);
        H5Tset_size(t, H5T_VARIABLE);
        hid_t a = H5Acreate2(f, "schema", t, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, &c->schema);
        H5Aclose(a), H5Sclose(s), H5Tclose(t);
    }
    const char *names[3] = {"q", "k", "v"};
    int64_t seqs[3] = {c->seq, c->k_seq, c->seq};
    for (int i = 0; i < 3; i++) {
        hsize_t dims[4] = {1, i == 0 ? 2 : 1, (hsize_t)seqs[i], (hsize_t)c->d};
        hid_t s = H5Screate_simple(4, dims, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
        int big = dims[2] * dims[3] > ((hsize_t)1 << 24);
        if (c->empty_space || big) {
            hsize_t chunk[4] = {1, 1, dims[2] < 1024 ? dims[2] : 1024, dims[3] < 64 ? dims[3] : 64};
            if (chunk[2] == 0) chunk[2] = 1;
            H5Pset_chunk(p, 4, chunk);
        }
        hid_t d = H5Dcreate2(f, names[i], i == 0 && c->q_f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, s,
                             H5P_DEFAULT, p, H5P_DEFAULT);
        cr_assert_geq(d, 0);
        hsize_t n = dims[0] * dims[1] * dims[2] * dims[3];
        if (!big && !c->empty_space && n > 0) {
            double *x = malloc(n * sizeof *x);
            for (hsize_t j = 0; j < n; j++) x[j] = 0.25 * (double)(j % 13) - 1.0;
            if (i == 0 && c->nan) x[n / 2] = NAN;
            for (hsize_t j = 0; i == 0 && c->q_mul != 0 && j < n; j++) x[j] *= c->q_mul;
            H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
            free(x);
        }
        H5Dclose(d), H5Pclose(p), H5Sclose(s);
    }
    hsize_t n = (hsize_t)c->seq;
    hid_t s = H5Screate_simple(1, &n, NULL), p = H5Pcreate(H5P_DATASET_CREATE);
    if (n > ((hsize_t)1 << 20)) {
        hsize_t chunk = 1 << 16;
        H5Pset_chunk(p, 1, &chunk);
    }
    hid_t d = H5Dcreate2(f, "positions", c->pos_i64 ? H5T_STD_I64LE : H5T_STD_I32LE, s,
                         H5P_DEFAULT, p, H5P_DEFAULT);
    if (n > 0 && n <= ((hsize_t)1 << 20)) {
        int64_t *pos = malloc(n * sizeof *pos);
        for (hsize_t j = 0; j < n; j++) pos[j] = (int64_t)j;
        if (c->pos_i64) pos[n - 1] = (int64_t)INT32_MAX + 5;
        H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, pos);
        free(pos);
    }
    H5Dclose(d), H5Pclose(p), H5Sclose(s);
    cr_assert_geq(H5Fclose(f), 0);
}

static const struct craft craft_ok = {AB_WORKLOAD_SCHEMA, 0, 0, 16, 16, 4, 0, 0, 0};

/* Values that would silently change meaning are refused (issue 15): int64 positions past 2^31
 * were clipped to INT32_MAX by the conversion, and |q| = 1e30 gave logits single precision
 * cannot hold (NaN metrics, dense marked feasible with rel_l2 1). */
Test(workload_io, values_that_would_change_meaning_are_refused)
{
    const char *path = t_path("meaning.h5");
    struct craft c = craft_ok;
    c.pos_i64 = 1;
    craft_file(path, &c);
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "/positions[15] = 2147483652 does not fit 32 bits") &&
                  strstr(ab_errmsg(), "meaning.h5"),
              "%s", ab_errmsg());
    c = craft_ok;
    c.q_mul = 1e30;
    craft_file(path, &c);
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "logits can reach") && strstr(ab_errmsg(), "meaning.h5"), "%s",
              ab_errmsg());
    char *o, *e;
    cr_expect_eq(t_run(&o, &e, "run '%s' --decode-queries 4 -o '%s'", path,
                       t_path("meaning-r.h5")), 65, "%s", e);
    cr_expect(t_count_lines(e) == 1 && !t_exists(t_path("meaning-r.h5")), "%s", e);
    free(o), free(e);
    /* an ordinary scale and wide int64 positions that fit are accepted */
    c = craft_ok;
    c.q_mul = 1e3;
    craft_file(path, &c);
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_OK, "%s", ab_errmsg());
    ab_workload_free(&r);
}

Test(workload_io, crafted_file_reads_and_float64_is_converted)
{
    const char *path = t_path("craft.h5");
    struct craft c = craft_ok;
    c.q_f64 = 1;
    craft_file(path, &c);
    struct ab_workload r;
    cr_assert_eq(ab_h5_workload_read(path, &r), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(r.n_head, 2);
    cr_expect_eq(r.n_seq, 16);
    cr_expect_eq(r.q[5], 0.25f); /* 0.25 * 5 - 1 */
    cr_expect_eq(r.causal, 1);   /* defaults for absent attributes */
    cr_expect_eq(r.scale, 0.5);  /* 1/sqrt(4) */
    cr_expect_null(r.source);
    ab_workload_free(&r);
}

Test(workload_io, missing_schema_is_data_error)
{
    const char *path = t_path("noschema.h5");
    struct craft c = craft_ok;
    c.schema = NULL;
    craft_file(path, &c);
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "not an attnbench workload") != NULL, "%s", ab_errmsg());
}

Test(workload_io, nan_in_q_is_data_error)
{
    const char *path = t_path("nan.h5");
    struct craft c = craft_ok;
    c.nan = 1;
    craft_file(path, &c);
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "nan.h5") && strstr(ab_errmsg(), "q"), "%s", ab_errmsg());
    cr_expect_null(r.q);
    /* metadata alone does not look at values; reading the head does */
    cr_assert_eq(ab_h5_workload_read_meta(path, &r), AB_OK, "%s", ab_errmsg());
    float *q, *k, *v;
    cr_expect_eq(ab_h5_workload_read_head(path, &r, 0, 1, &q, &k, &v), AB_E_DATA);
    ab_workload_free(&r);

    /* and the writer refuses one in memory, leaving nothing */
    struct ab_workload w;
    make_default(&w, 0);
    w.q[17] = NAN;
    const char *out = t_path("nan-out.h5");
    cr_expect_eq(ab_h5_workload_write(out, &w), AB_E_DATA);
    cr_expect(!t_exists(out) && !t_tmp_left(out));
    ab_workload_free(&w);
}

Test(workload_io, shapes_that_disagree_are_data_errors)
{
    const char *path = t_path("shape.h5");
    struct craft c = craft_ok;
    c.k_seq = 15;
    craft_file(path, &c);
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "sequence length") != NULL, "%s", ab_errmsg());

    c = craft_ok;
    c.seq = c.k_seq = 0; /* an empty sequence */
    craft_file(path, &c);
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "empty") != NULL, "%s", ab_errmsg());
    cr_expect_eq(ab_h5_workload_read_meta(path, &r), AB_E_DATA);
}

/* refused from its metadata: the datasets store nothing of what they declare (before the storage
 * check this was the memory check's AB_E_TOOBIG; both refuse before reading) */
Test(workload_io, file_claiming_terabytes_is_refused_before_reading)
{
    const char *path = t_path("huge.h5");
    struct craft c = craft_ok;
    c.seq = c.k_seq = (int64_t)1 << 30;
    c.d = 1 << 12;
    craft_file(path, &c);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_lt(st.st_size, 1 << 20, "the crafted file itself is small");
    struct ab_workload r;
    cr_expect_eq(ab_h5_workload_read(path, &r), AB_E_DATA, "%s", ab_errmsg());
    cr_expect(strstr(ab_errmsg(), "huge.h5") && strstr(ab_errmsg(), "declares"), "%s",
              ab_errmsg());
}

Test(workload_io, chunks_never_written_read_as_a_clean_result)
{
    /* a file whose /q storage was never allocated reads as zeros or fails cleanly */
    const char *path = t_path("hollow.h5");
    struct craft c = craft_ok;
    c.empty_space = 1;
    craft_file(path, &c);
    struct ab_workload r;
    int rc = ab_h5_workload_read(path, &r);
    cr_expect(rc == AB_OK || rc == AB_E_DATA, "rc %d: %s", rc, ab_errmsg());
    if (rc == AB_OK) ab_workload_free(&r);
}

Test(workload_io, bad_sizes_are_refused)
{
    struct ab_workload w;
    cr_expect_eq(ab_workload_alloc(&w, 0, 1, 1, 8, 4, 4), AB_E_USAGE);
    cr_expect_eq(ab_workload_alloc(&w, 1, 1, 1, -8, 4, 4), AB_E_USAGE);
    cr_expect_eq(ab_workload_alloc(&w, 1, 1, 1, 8, 0, 4), AB_E_USAGE);
    cr_expect_eq(ab_workload_alloc(&w, 1, 3, 2, 8, 4, 4), AB_E_USAGE); /* 3 % 2 */
    cr_expect_eq(ab_workload_alloc(&w, 64, 64, 64, (int64_t)1 << 30, 1 << 12, 1 << 12),
                 AB_E_TOOBIG);
    cr_expect_eq(
        ab_workload_alloc(&w, INT64_MAX / 2, INT64_MAX / 2, 1, INT32_MAX, INT64_MAX / 2, 1),
        AB_E_TOOBIG);
}

Test(workload_io, failed_write_is_create_error_and_leaves_nothing)
{
    struct ab_workload w;
    make_default(&w, 1);
    const char *nodir = t_path("no-such-dir/w.h5");
    cr_expect_eq(ab_h5_workload_write(nodir, &w), AB_E_CREATE);
    cr_expect(strstr(ab_errmsg(), "w.h5") != NULL, "%s", ab_errmsg());
    cr_expect(!t_exists(nodir) && !t_tmp_left(nodir));

    /* the target is a directory: everything is written, the rename fails, the tmp goes */
    const char *dir = t_path("a-dir.h5");
    cr_assert_eq(mkdir(dir, 0777), 0);
    cr_expect_eq(ab_h5_workload_write(dir, &w), AB_E_CREATE, "%s", ab_errmsg());
    cr_expect(!t_tmp_left(dir), "temporary file left behind");
    rmdir(dir);

    /* a read-only directory (meaningless as root, who may write anywhere) */
    if (geteuid() != 0) {
        const char *ro = t_path("ro-dir");
        cr_assert_eq(mkdir(ro, 0555), 0);
        char p[1100];
        snprintf(p, sizeof p, "%s/w.h5", ro);
        cr_expect_eq(ab_h5_workload_write(p, &w), AB_E_CREATE);
        cr_expect(!t_exists(p) && !t_tmp_left(p));
        rmdir(ro);
    }
    ab_workload_free(&w);
}

Test(workload_io, overwriting_replaces_the_whole_file)
{
    const char *path = t_path("over.h5");
    write_default(path);
    struct ab_workload w, r;
    make_workload(&w, 99, 1, 1, 1, 9, 4, 4, 0);
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_h5_workload_read(path, &r), AB_OK, "%s", ab_errmsg());
    expect_same(&w, &r);
    ab_workload_free(&w);
    ab_workload_free(&r);
}

/* ---------------------------------------------------------------- PNG and maps */

Test(png_map, viridis_table_ends)
{
    cr_expect(ab_viridis[0][0] == 0x44 && ab_viridis[0][1] == 0x01 && ab_viridis[0][2] == 0x54);
    cr_expect(ab_viridis[255][0] == 0xFD && ab_viridis[255][1] == 0xE7 &&
              ab_viridis[255][2] == 0x25);
    cr_expect(ab_viridis[128][0] == 0x21 && ab_viridis[128][1] == 0x91 &&
              ab_viridis[128][2] == 0x8C); /* the middle, #21918C */
    /* green rises monotonically along viridis */
    for (int i = 1; i < 256; i++) cr_expect_geq(ab_viridis[i][1], ab_viridis[i - 1][1], "%d", i);
}

Test(png_map, png_round_trip_and_reproducible)
{
    const char *a = t_path("grad-a.png"), *b = t_path("grad-b.png");
    int64_t w = 300, h = 7;
    uint8_t *px = malloc((size_t)(w * h));
    for (int64_t i = 0; i < w * h; i++) px[i] = (uint8_t)((i * 7) % 256);
    cr_assert_eq(ab_png_write_indexed(a, px, w, h, ab_viridis, 256), AB_OK, "%s", ab_errmsg());
    cr_assert_eq(ab_png_write_indexed(b, px, w, h, ab_viridis, 256), AB_OK, "%s", ab_errmsg());
    cr_expect(!t_tmp_left(a));
    uint8_t *back, pal[256][3];
    int64_t bw, bh;
    int nc;
    cr_assert_eq(ab_png_read_indexed(a, &back, &bw, &bh, pal, &nc), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(bw, w);
    cr_expect_eq(bh, h);
    cr_expect_eq(nc, 256);
    cr_expect(!memcmp(back, px, (size_t)(w * h)), "pixels differ");
    cr_expect(!memcmp(pal, ab_viridis, sizeof pal), "palette differs");
    cr_expect(pal[0][0] == 0x44 && pal[0][1] == 0x01 && pal[0][2] == 0x54);
    cr_expect(pal[255][0] == 0xFD && pal[255][1] == 0xE7 && pal[255][2] == 0x25);
    size_t na, nb;
    unsigned char *da = t_slurp(a, &na), *db = t_slurp(b, &nb);
    cr_expect(na == nb && !memcmp(da, db, na), "same pixels, different bytes");
    for (size_t i = 0; i + 4 <= na; i++) cr_assert(memcmp(da + i, "tIME", 4), "tIME chunk");
    free(da), free(db), free(back), free(px);
}

Test(png_map, png_errors)
{
    uint8_t px[4] = {0, 1, 2, 3}, *back, pal[256][3];
    int64_t w, h;
    int nc;
    const char *bad = t_path("no-dir/x.png");
    cr_expect_eq(ab_png_write_indexed(bad, px, 2, 2, ab_viridis, 256), AB_E_CREATE);
    cr_expect(!t_tmp_left(bad));
    cr_expect_eq(ab_png_read_indexed(t_path("none.png"), &back, &w, &h, pal, &nc), AB_E_NOFILE);
    const char *txt = t_path("txt.png");
    write_bytes(txt, "hello, not a png", 16);
    cr_expect_eq(ab_png_read_indexed(txt, &back, &w, &h, pal, &nc), AB_E_DATA);
    /* a truncated PNG */
    const char *good = t_path("good.png"), *cut = t_path("cut.png");
    cr_assert_eq(ab_png_write_indexed(good, px, 2, 2, ab_viridis, 256), AB_OK);
    size_t n;
    unsigned char *b = t_slurp(good, &n);
    write_bytes(cut, b, n / 2);
    cr_expect_eq(ab_png_read_indexed(cut, &back, &w, &h, pal, &nc), AB_E_DATA);
    cr_expect_null(back);
    free(b);
}

/* A head of n rows where every query carries direction e_0 and key 0 carries it `gain` times
 * (every other key is zero): each row puts almost all its mass on key 0. */
struct sink_head {
    struct ab_head h;
    float *q, *k, *v;
    int32_t *pos;
};

static void sink_head_make(struct sink_head *s, int64_t n, int64_t d, double gain, int mask)
{
    s->q = calloc((size_t)(n * d), sizeof(float));
    s->k = calloc((size_t)(n * d), sizeof(float));
    s->v = calloc((size_t)(n * d), sizeof(float));
    s->pos = malloc((size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) {
        s->q[i * d] = 1.0f;
        s->pos[i] = (int32_t)i;
        s->v[i * d + 1] = 1.0f;
    }
    s->k[0] = (float)gain;
    s->h = (struct ab_head){.n_q = n,
                            .n_k = n,
                            .d = d,
                            .d_v = d,
                            .q = s->q,
                            .k = s->k,
                            .v = s->v,
                            .q_pos = s->pos,
                            .k_pos = s->pos,
                            .mask = mask,
                            .scale = 1.0};
}

static void sink_head_free(struct sink_head *s)
{
    free(s->q), free(s->k), free(s->v), free(s->pos);
}

Test(png_map, sink_head_pools_its_largest_value_into_column_0)
{
    struct sink_head s;
    sink_head_make(&s, 200, 4, 12.0, AB_MASK_CAUSAL);
    struct ab_map_grid g;
    cr_assert_eq(ab_map_pool(&s.h, 64, &g), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(g.width, 64);
    cr_expect_eq(g.height, 64);
    /* token coordinates: 200 keys over 64 columns, pixel centres from 1.0625 by 3.125 */
    cr_expect(fabs(g.dx - 3.125) < 1e-12 && fabs(g.x0 - 1.0625) < 1e-12, "%g %g", g.x0, g.dx);
    cr_expect(fabs(g.dy - 3.125) < 1e-12 && fabs(g.y0 - 1.0625) < 1e-12, "%g %g", g.y0, g.dy);
    cr_expect(g.ymin == -0.5 && g.ymax == 199.5 && g.n_k == 200);
    /* row i puts e^12 / (e^12 + i) on the sink: every pixel row's maximum is in column 0, and
     * it is the largest probability among the rows it covers (the first of them) */
    for (int64_t y = 0; y < g.height; y++) {
        for (int64_t x = 1; x < g.width; x++)
            if (!isnan(g.v[y * g.width + x]))
                cr_expect_gt(g.v[y * g.width], g.v[y * g.width + x], "row %lld", (long long)y);
        int64_t i0 = (y * 200 + 63) / 64; /* the first query row of pixel row y */
        double want = exp(12.0) / (exp(12.0) + (double)i0);
        cr_expect(fabs(g.v[y * g.width] - want) < 1e-9, "row %lld: %g, want %g", (long long)y,
                  g.v[y * g.width], want);
    }
    /* causal: the top-right pixel covers only future keys (NaN), the diagonal visible cells */
    cr_expect(isnan(g.v[g.width - 1]));
    for (int64_t y = 0; y < g.height; y++) cr_expect(!isnan(g.v[y * g.width + y]));
    ab_map_grid_free(&g);
    cr_expect_null(g.v);
    sink_head_free(&s);
}

Test(png_map, uniform_rows_pool_to_their_probability)
{
    /* full mask, all queries zero: every row is uniform over n = 100 keys, p = 1/100 */
    struct sink_head s;
    sink_head_make(&s, 100, 4, 0.0, AB_MASK_FULL);
    memset(s.q, 0, 100 * 4 * sizeof(float));
    struct ab_map_grid g;
    cr_assert_eq(ab_map_pool(&s.h, 512, &g), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(g.width, 100, "the grid is never larger than the map");
    cr_expect_eq(g.height, 100);
    cr_expect(g.x0 == 0 && g.dx == 1 && g.y0 == 0 && g.dy == 1, "one pixel per cell");
    for (int64_t i = 0; i < g.width * g.height; i++)
        cr_assert(fabs(g.v[i] - 0.01) < 1e-12, "pixel %lld: %g", (long long)i, g.v[i]);
    ab_map_grid_free(&g);
    cr_expect_eq(ab_map_pool(&s.h, 0, &g), AB_E_USAGE);
    cr_expect_eq(ab_map_pool(&s.h, 70000, &g), AB_E_USAGE);
    sink_head_free(&s);
}

/* The kept mask on a hand-built case: the sink head of 16 keys with gain g, where query row i
 * gives e^g / (e^g + i) to key 0 and 1 / (e^g + i) to each of keys 1..i. */
Test(png_map, mask_pool_encodes_the_keep_set)
{
    const double gain = 3.0, eg = exp(gain);
    struct sink_head s;
    sink_head_make(&s, 16, 4, gain, AB_MASK_CAUSAL);
    const int64_t rows[] = {3, 7, 15};
    struct ab_keep keep;
    cr_assert_eq(ab_keep_alloc(&keep, 3, 16), AB_OK);
    ab_keep_set(&keep, 0, 0);      /* query 3 keeps the sink */
    ab_keep_set(&keep, 0, 10);     /* and a future key, which is not visible: still masked */
    ab_keep_range(&keep, 1, 5, 8); /* query 7 keeps 5, 6, 7 */
    ab_keep_set(&keep, 2, 2);      /* query 15 keeps 2 and 9 */
    ab_keep_set(&keep, 2, 9);
    struct ab_map_grid g;
    double recall;
    cr_assert_eq(ab_mask_pool(&s.h, rows, 3, &keep, 64, &g, &recall), AB_OK, "%s", ab_errmsg());
    cr_expect(g.width == 16 && g.height == 3, "%lld x %lld", (long long)g.width,
              (long long)g.height);
    cr_expect(g.y0 == 3 && g.dy == 6 && g.ymin == 0 && g.ymax == 18, "rows on an even grid");
    double mass = 0;
    for (int r = 0; r < 3; r++)
        for (int64_t j = 0; j < 16; j++) {
            double v = g.v[r * 16 + j], i = (double)rows[r];
            double p = j == 0 ? eg / (eg + i) : 1 / (eg + i);
            int kept = ab_keep_has(&keep, r, j);
            if (j > rows[r]) {
                cr_expect(isnan(v), "row %d key %lld: %g, want masked", r, (long long)j, v);
                continue;
            }
            cr_expect(fabs(v - (kept ? p : -p)) < 1e-12, "row %d key %lld: %g, want %s%g", r,
                      (long long)j, v, kept ? "+" : "-", p);
            mass += kept ? p : 0;
        }
    cr_expect(fabs(recall - mass / 3) < 1e-12, "recall %g, want %g", recall, mass / 3);
    ab_map_grid_free(&g);

    /* pooled to 4 columns of 4 keys: kept when any key of the pixel is kept (the largest kept
     * probability), else dropped with the largest visible one; row 1 (query 7): the sink's
     * pixel is dropped with the sink's weight, pixel 1 kept, pixels 2, 3 masked */
    cr_assert_eq(ab_mask_pool(&s.h, rows, 3, &keep, 4, &g, NULL), AB_OK, "%s", ab_errmsg());
    cr_expect_eq(g.width, 4);
    cr_expect(fabs(g.v[0] - eg / (eg + 3)) < 1e-12, "query 3 keeps the sink");
    cr_expect(fabs(g.v[4] + eg / (eg + 7)) < 1e-12, "%g", g.v[4]);
    cr_expect(fabs(g.v[5] - 1 / (eg + 7)) < 1e-12, "%g", g.v[5]);
    cr_expect(isnan(g.v[6]) && isnan(g.v[7]));
    cr_expect(g.v[8] > 0 && g.v[10] > 0 && g.v[9] < 0 && g.v[11] < 0, "query 15");
    ab_map_grid_free(&g);

    /* shapes that do not match, rows out of order */
    const int64_t bad[] = {7, 3, 15};
    cr_expect_eq(ab_mask_pool(&s.h, bad, 3, &keep, 4, &g, NULL), AB_E_USAGE);
    cr_expect_eq(ab_mask_pool(&s.h, rows, 2, &keep, 4, &g, NULL), AB_E_USAGE);
    ab_keep_free(&keep);
    sink_head_free(&s);
}

/* ---------------------------------------------------------------- commands */

Test(cli_io, info_describes_the_workload)
{
    const char *path = t_path("info.h5");
    write_default(path);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "info '%s'", path), 0, "%s", err);
    const char *want[] = {"attnbench/workload/1",
                          "synthetic",
                          "2 layers",
                          "4 heads",
                          "2 kv heads",
                          "seq 48",
                          "d 8",
                          "d_v 6",
                          "causal",
                          "theta 10000",
                          "tokens yes",
                          "text yes",
                          "hidden [3, 48, 10]",
                          "streaming",
                          "retrieval",
                          "5 queries",
                          "2 retrieve",
                          "1 multi-retrieve",
                          "2 aggregate",
                          "codebook   4 x 6",
                          "compression",
                          "seed         42"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(strstr(out, want[i]) != NULL, "info output lacks '%s':\n%s", want[i], out);
    cr_expect_eq(err[0], 0, "stderr: %s", err);
    free(out), free(err);
}

Test(cli_io, info_minimal_workload)
{
    const char *path = t_path("info-min.h5");
    struct ab_workload w;
    make_workload(&w, 5, 1, 1, 1, 9, 4, 4, 0);
    cr_assert_eq(ab_h5_workload_write(path, &w), AB_OK, "%s", ab_errmsg());
    ab_workload_free(&w);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "info '%s'", path), 0, "%s", err);
    cr_expect(strstr(out, "profiles     none") && strstr(out, "tasks        none"), "%s", out);
    free(out), free(err);
}

Test(cli_io, info_errors_exit_with_the_right_status)
{
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "info '%s'", t_path("missing.h5")), 66);
    cr_expect(strstr(err, "error: '") == err && strstr(err, "missing.h5"), "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    cr_expect_eq(out[0], 0);
    free(out), free(err);
    const char *txt = t_path("info.txt");
    write_bytes(txt, "plain text\n", 11);
    cr_expect_eq(t_run(&out, &err, "info '%s'", txt), 65);
    cr_expect(strstr(err, "not an HDF5 file") != NULL, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "info"), 64);
    free(out), free(err);
}

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* path with its ".png" replaced by ext. */
static const char *beside(const char *png, const char *ext)
{
    static char buf[4][1200];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%.*s%s", (int)strlen(png) - 4, png, ext);
    return b;
}

Test(cli_io, render_writes_a_figure_with_its_script_and_data)
{
    if (!have_gnuplot()) cr_skip_test("gnuplot is not installed");
    const char *path = t_path("render.h5"), *png = t_path("render.png");
    write_default(path);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "render '%s' --layer 1 --head 2 --size 32 -o '%s'", path, png),
                 0, "%s", err);
    /* one line naming the picture; every path with --verbose */
    cr_expect(strstr(out, png) && t_count_lines(out) == 1, "%s", out);
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "render '%s' --layer 1 --head 2 --size 32 --verbose -o '%s'",
                       path, png),
                 0, "%s", err);
    cr_expect(strstr(out, png) && strstr(out, beside(png, ".gp")) &&
                  strstr(out, beside(png, ".bin")),
              "%s", out);
    free(out), free(err);
    uint32_t w, h;
    t_png_size(png, &w, &h);
    cr_expect(w == 900 && h == 800, "%ux%u", w, h);
    cr_expect(!t_tmp_left(png));
    /* the data: 48 tokens max-pooled to 32 x 32, in token coordinates */
    struct t_matrix m;
    cr_assert_eq(t_matrix_read(beside(png, ".bin"), &m), 0);
    cr_expect(m.width == 32 && m.height == 32, "%lld x %lld", (long long)m.width,
              (long long)m.height);
    for (int64_t x = 0; x < m.width; x++)
        cr_expect(fabsf(m.x[x] - (float)((x + 0.5) * 1.5 - 0.5)) < 1e-5, "x[%lld] = %g",
                  (long long)x, m.x[x]);
    cr_expect(isnan(m.v[m.width - 1]), "causal: the top-right pixel is masked");
    cr_expect(m.v[(m.height - 1) * m.width] > 0, "bottom-left visible");
    for (int64_t r = 0; r < m.height; r++) { /* each row is a distribution: max in (0, 1] */
        float mx = 0;
        for (int64_t x = 0; x < m.width; x++)
            if (!isnan(m.v[r * m.width + x])) mx = fmaxf(mx, m.v[r * m.width + x]);
        cr_expect(mx > 0 && mx <= 1, "row %lld max %g", (long long)r, mx);
    }
    t_matrix_free(&m);
    /* the script: axes, colour bar, title with the planted profile of L1 kv1 */
    char *gp = (char *)t_slurp(beside(png, ".gp"), NULL);
    cr_assert(gp);
    const char *want[] = {"set xlabel \"key position\"",
                          "set ylabel \"query position\"",
                          "\"attention probability\"",
                          "set logscale cb",
                          "set cbrange [floor:1]",
                          "floor = 1e-06",
                          "layer 1, head 2",
                          "planted profile: dormant",
                          "set yrange [47.5:-0.5]",
                          "render.bin\" binary matrix"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(gp, want[i]) != NULL, "the script lacks '%s'", want[i]);
    free(gp);
    /* re-runnable by hand from its folder, to the same picture */
    char dir[1200], cmd[3000];
    snprintf(dir, sizeof dir, "%s", png);
    *strrchr(dir, '/') = 0;
    const char *again = t_path("again.png");
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot -c '%s' '%s' 2>/dev/null && cmp -s '%s' '%s'",
             dir, strrchr(beside(png, ".gp"), '/') + 1, again, again, png);
    cr_expect_eq(system(cmd), 0, "%s", cmd);
}

Test(cli_io, render_errors_leave_no_output)
{
    const char *path = t_path("rerr.h5"), *png = t_path("rerr.png");
    write_default(path);
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 2 --head 0 -o '%s'", path, png), 64);
    cr_expect(strstr(err, "--layer 2") != NULL, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 4 -o '%s'", path, png), 64);
    cr_expect(strstr(err, "--head 4") != NULL, "%s", err);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer -1 --head 0 -o '%s'", path, png), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0", path), 64);
    free(out), free(err);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 --floor 2 -o '%s'", path, png),
                 64);
    free(out), free(err);
    cr_expect_eq(
        t_run(&out, &err, "render '%s' --layer 0 --head 0 -o '%s'", t_path("gone.h5"), png), 66);
    free(out), free(err);
    const char *txt = t_path("rerr.txt");
    write_bytes(txt, "plain text\n", 11);
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 -o '%s'", txt, png), 65);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    free(out), free(err);
    cr_expect_eq(
        t_run(&out, &err, "render '%s' --layer 0 --head 0 -o '%s'", path, t_path("rerr.jpg")), 64);
    cr_expect(strstr(err, ".png") != NULL && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    cr_expect(!t_exists(png) && !t_tmp_left(png), "output left after failures");
    cr_expect(!t_exists(beside(png, ".gp")) && !t_exists(beside(png, ".bin")),
              "script or data left after failures");
    /* an output that cannot be created */
    const char *nodir = t_path("no-dir/map.png");
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 0 -o '%s'", path, nodir), 73);
    cr_expect(!t_tmp_left(nodir));
    free(out), free(err);
}

Test(cli_io, render_without_gnuplot_writes_the_script_and_exits_69)
{
    const char *path = t_path("rnognu.h5"), *png = t_path("rnognu.png");
    write_default(path);
    setenv("PATH", "/nonexistent", 1);
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 1 -o '%s'", path, png), 69, "%s",
                 err);
    cr_expect(strstr(err, "error: gnuplot not found") == err && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    cr_expect(t_exists(beside(png, ".gp")) && t_exists(beside(png, ".bin")));
    cr_expect(!t_exists(png) && !t_tmp_left(png));
}

Test(cli_io, render_with_a_failing_gnuplot_leaves_no_picture)
{
    /* a gnuplot that writes half a picture and fails */
    const char *bin = t_path("fake-gnuplot");
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && printf '#!/bin/sh\\necho half > \"$4\"\\necho "
             "\"line 1: boom\" >&2\\nexit 1\\n' > '%s/gnuplot' && chmod +x '%s/gnuplot'",
             bin, bin, bin);
    cr_assert_eq(system(cmd), 0);
    const char *path = t_path("rbad.h5"), *png = t_path("rbad.png");
    write_default(path);
    char *out, *err;
    cr_expect_eq(t_run(&out, &err, "render '%s' --layer 0 --head 1 --gnuplot '%s/gnuplot' -o '%s'",
                       path, bin, png),
                 70, "%s", err);
    cr_expect(strstr(err, "boom") != NULL && t_count_lines(err) == 1, "%s", err);
    free(out), free(err);
    cr_expect(!t_exists(png) && !t_tmp_left(png), "a picture left by a failed gnuplot");
}

/* ---------------------------------------------------------------- lying sizes */

struct inflate_list {
    char names[32][256];
    int n;
    hsize_t n_old;
};

static herr_t inflate_find(hid_t root, const char *name, const H5O_info_t *info, void *op)
{
    struct inflate_list *x = op;
    if (info->type != H5O_TYPE_DATASET || x->n >= 32) return 0;
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT), s = H5Dget_space(d);
    hsize_t dims[8];
    int r = H5Sget_simple_extent_ndims(s);
    if (r > 0 && r <= 8 && H5Sget_simple_extent_dims(s, dims, NULL) == r)
        for (int i = 0; i < r; i++)
            if (dims[i] == x->n_old) {
                snprintf(x->names[x->n++], 256, "/%s", name);
                break;
            }
    H5Sclose(s), H5Dclose(d);
    return 0;
}

/* A copy of workload src at dst whose every dataset with a dimension of n_old keys declares
 * n_new there instead, chunked and deflated but never written: a small file that claims a huge
 * sequence (what a fuzzer's bit flip in a dimension, or a hostile file, gives). */
static void inflate_workload(const char *src, const char *dst, hsize_t n_old, hsize_t n_new)
{
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    cr_assert_eq(system(cmd), 0);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(f >= 0);
    struct inflate_list x = {.n_old = n_old};
    cr_assert(H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, inflate_find, &x, H5O_INFO_BASIC) >= 0);
    cr_assert(x.n >= 3, "only %d datasets have the sequence dimension", x.n);
    for (int k = 0; k < x.n; k++) {
        hid_t d = H5Dopen2(f, x.names[k], H5P_DEFAULT), s = H5Dget_space(d), t = H5Dget_type(d);
        hsize_t dims[8], chunk[8];
        int r = H5Sget_simple_extent_ndims(s);
        H5Sget_simple_extent_dims(s, dims, NULL);
        for (int i = 0; i < r; i++) {
            if (dims[i] == n_old) dims[i] = n_new;
            chunk[i] = dims[i] < 256 ? dims[i] : 256;
        }
        H5Sclose(s), H5Dclose(d);
        cr_assert(H5Ldelete(f, x.names[k], H5P_DEFAULT) >= 0, "%s", x.names[k]);
        hid_t ns = H5Screate_simple(r, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, r, chunk);
        H5Pset_deflate(dcpl, 4);
        hid_t nd = H5Dcreate2(f, x.names[k], t, ns, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        cr_assert(nd >= 0, "%s", x.names[k]);
        H5Dclose(nd), H5Pclose(dcpl), H5Sclose(ns), H5Tclose(t);
    }
    H5Fclose(f);
}

/* A small workload declaring n = 2^31 - 64 (issue 15: `info` and `heads` took 8.4 GB and a minute
 * before refusing) is refused from its metadata: exit 65 naming the file and the dataset, in
 * well under a second and without the memory; the file itself is untouched. */
Test(workload_io, a_file_that_declares_more_than_it_stores_is_refused_at_once)
{
    const char *w = t_path("lying-src.h5"), *big = t_path("lying-n.h5");
    char *o, *e;
    cr_assert_eq(t_run(&o, &e, "gen --layers 1 --heads 2 --kv-heads 1 --n 1000 --d 16 -o '%s'", w),
                 0, "%s", e);
    free(o), free(e);
    inflate_workload(w, big, 1000, ((hsize_t)1 << 31) - 64);
    struct stat st;
    cr_assert_eq(stat(big, &st), 0);
    cr_expect_lt(st.st_size, 1 << 20, "the hostile file is %lld bytes", (long long)st.st_size);
    const char *cmds[] = {"info '%s'", "heads '%s' -o /dev/null/x.h5", "run '%s' -o /dev/null/x.h5"};
    for (int c = 0; c < 3; c++) {
        double t0 = ab_now();
        int status = t_run(&o, &e, cmds[c], big);
        double dt = ab_now() - t0;
        cr_expect_eq(status, 65, "%s: exit %d: %s", cmds[c], status, e);
        cr_expect(strstr(e, "lying-n.h5") && strstr(e, "declares") && t_count_lines(e) == 1,
                  "%s: %s", cmds[c], e);
        cr_expect_lt(dt, 5.0, "%s took %.1f s", cmds[c], dt);
        free(o), free(e);
    }
}
