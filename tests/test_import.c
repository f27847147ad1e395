/* test_import.c - `attnbench import` and its readers (lib/io/import.c, zip.c, safetensors.c,
 * the .npy reader's bfloat16 and in-memory paths).
 *
 * The files are written here, in C, by small writers of each format (.npy bytes, ZIP archives
 * stored or deflated with and without ZIP64 extra fields and end records, safetensors, HDF5),
 * from seeded values, so every expected number is known: an import must give back exactly the
 * source for float32, and exactly the source rounded to float16 / bfloat16 otherwise (decoded
 * here by our own bit manipulation, and within the type's half-ulp of the source). Then every
 * kind of bad file must fail with exit 65 (66 when missing), a one-line message naming the file
 * and no output file. A cross-check with NumPy's own np.savez / np.savez_compressed runs when
 * /usr/bin/python3 with numpy is present and is skipped otherwise. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/ab.h"
#include "formats.h"
#include "helpers.h"
#include "io/h5_workload.h"
#include "io/import.h"
#include "io/npy.h"

/* ---------------------------------------------------------------- HDF5 writer */

/* Datasets of float32, or of a 2-byte IEEE half type built by hand (no predefined one in
 * HDF5 1.10). */
static void h5_write(const char *path, const struct tensor *t, int n)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    for (int i = 0; i < n; i++) {
        hsize_t dims[4];
        for (int d = 0; d < t[i].rank; d++) dims[d] = (hsize_t)t[i].shape[d];
        hid_t sp = H5Screate_simple(t[i].rank, dims, NULL), ty;
        if (t[i].dtype == AB_DT_F16) {
            ty = H5Tcopy(H5T_IEEE_F32LE);
            cr_assert(H5Tset_fields(ty, 15, 10, 5, 0, 10) >= 0 && H5Tset_size(ty, 2) >= 0 &&
                      H5Tset_ebias(ty, 15) >= 0);
        } else {
            ty = H5Tcopy(H5T_IEEE_F32LE);
        }
        hid_t ds = H5Dcreate2(f, t[i].name, ty, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        cr_assert(ds >= 0);
        if (t[i].dtype == AB_DT_F16) {
            struct buf b = {0};
            for (int64_t j = 0; j < count(&t[i]); j++) t[i].want[j] = enc(&b, AB_DT_F16, t[i].x[j]);
            cr_assert(H5Dwrite(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, b.p) >= 0);
            free(b.p);
        } else {
            cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t[i].x) >= 0);
            memcpy(t[i].want, t[i].x, (size_t)count(&t[i]) * sizeof(float));
        }
        H5Dclose(ds), H5Tclose(ty), H5Sclose(sp);
    }
    H5Fclose(f);
}

/* ---------------------------------------------------------------- a q/k/v set */

enum { L = 2, H = 4, G = 2, N = 5, D = 6, DV = 3 };

/* q (L, H, N, D), k (L, G, N, D), v (L, G, N, DV) in the default layout, seeded. */
struct qkv {
    float q[L * H * N * D], k[L * G * N * D], v[L * G * N * DV];
    float wq[L * H * N * D], wk[L * G * N * D], wv[L * G * N * DV];
    struct tensor t[3];
};

static void qkv_make(struct qkv *s, int dq, int dk, int dv, uint64_t seed)
{
    fill(s->q, L * H * N * D, seed);
    fill(s->k, L * G * N * D, seed + 1);
    fill(s->v, L * G * N * DV, seed + 2);
    s->t[0] = (struct tensor){"q", dq, 4, {L, H, N, D}, s->q, s->wq};
    s->t[1] = (struct tensor){"k", dk, 4, {L, G, N, D}, s->k, s->wk};
    s->t[2] = (struct tensor){"v", dv, 4, {L, G, N, DV}, s->v, s->wv};
}

/* Half an ulp of dtype, relative. */
static double half_ulp(int dtype)
{
    return dtype == AB_DT_F32 ? 0 : dtype == AB_DT_F16 ? 0x1p-11 : 0x1p-8;
}

/* The workload holds exactly what s says must be read back, each value within the dtype's
 * rounding of the source. */
static void expect_qkv(const struct ab_workload *w, const struct qkv *s, const char *what)
{
    cr_assert(w->n_layer == L && w->n_head == H && w->n_kv_head == G && w->n_seq == N &&
                  w->d == D && w->d_v == DV,
              "%s: shape %lld %lld %lld %lld %lld %lld", what, (long long)w->n_layer,
              (long long)w->n_head, (long long)w->n_kv_head, (long long)w->n_seq, (long long)w->d,
              (long long)w->d_v);
    const float *got[3] = {w->q, w->k, w->v};
    for (int r = 0; r < 3; r++) {
        const struct tensor *t = &s->t[r];
        for (int64_t i = 0; i < count(t); i++) {
            cr_assert_eq(got[r][i], t->want[i], "%s: %s[%lld] %.9g, want %.9g", what, t->name,
                         (long long)i, got[r][i], t->want[i]);
            cr_assert(fabs(got[r][i] - t->x[i]) <= half_ulp(t->dtype) * fabs(t->x[i]) + 1e-7,
                      "%s: %s[%lld] %.9g is not the source %.9g rounded", what, t->name,
                      (long long)i, got[r][i], t->x[i]);
        }
    }
}

static int import_one(const char *path, struct ab_workload *w)
{
    struct ab_import_opts o;
    ab_import_defaults(&o);
    o.files[0] = path, o.n_files = 1;
    return ab_import(&o, w, NULL);
}

/* ---------------------------------------------------------------- bfloat16 */

Test(import, bf16_conversions)
{
    cr_expect_eq(ab_bf16_from_float(1.0f), 0x3f80);
    cr_expect_eq(ab_bf16_from_float(-2.0f), 0xc000);
    cr_expect_eq(ab_bf16_from_float(1.0f + 0x1p-8f), 0x3f80);            /* tie: to even */
    cr_expect_eq(ab_bf16_from_float(1.0f + 3 * 0x1p-8f), 0x3f82);        /* tie: to even, up */
    cr_expect_eq(ab_bf16_from_float(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81); /* past the tie */
    cr_expect_eq(ab_bf16_from_float(3.4e38f), 0x7f80);                   /* rounds to infinity */
    cr_expect(isnan((double)ab_bf16_to_float(ab_bf16_from_float(NAN))));
    cr_expect_eq((double)ab_bf16_to_float(0x3fc0), 1.5);
    cr_expect_eq((double)ab_bf16_to_float(0x0001), 0x1p-133); /* smallest subnormal */
}

/* ---------------------------------------------------------------- round trips */

Test(import, npz_every_dtype_stored_and_deflated_with_and_without_zip64)
{
    const int dtypes[3] = {AB_DT_F32, AB_DT_F16, AB_DT_BF16};
    const char *p = t_path("rt.npz");
    for (int dt = 0; dt < 3; dt++)
        for (int deflate = 0; deflate < 2; deflate++)
            for (int z64 = Z64_NONE; z64 <= Z64_CENTRAL; z64++) {
                struct qkv s;
                char what[64];
                snprintf(what, sizeof what, "%s deflate %d zip64 %d", ab_dtype_name(dtypes[dt]),
                         deflate, z64);
                qkv_make(&s, dtypes[dt], dtypes[dt], dtypes[dt], (uint64_t)(dt * 10 + z64));
                npz_write(p, s.t, 3, deflate, z64);
                struct ab_workload w;
                cr_assert_eq(import_one(p, &w), AB_OK, "%s: %s", what, ab_errmsg());
                expect_qkv(&w, &s, what);
                cr_expect_str_eq(w.source, "import");
                cr_expect(strstr(w.description, "rt.npz:q.npy") != NULL, "%s", w.description);
                cr_expect(w.causal == 1 && w.rope_applied == 1 && w.positions[N - 1] == N - 1);
                cr_expect(fabs(w.scale - 1 / sqrt((double)D)) < 1e-15);
                ab_workload_free(&w);
            }
}

Test(import, mixed_dtypes_through_the_cli_and_read_back_from_the_workload_file)
{
    struct qkv s;
    qkv_make(&s, AB_DT_F32, AB_DT_F16, AB_DT_BF16, 7);
    const char *p = t_path("mixed.npz"), *o = t_path("mixed.h5");
    npz_write(p, s.t, 3, 1, Z64_LOCAL);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "import '%s' --full --scale 0.25 -o '%s'", p, o), 0, "%s", err);
    cr_expect(strstr(out, "import: ") == out && strstr(out, o) == out + 8, "%s", out);
    cr_expect(strstr(out, "k: float16 (2, 2, 5, 6)") && strstr(out, "v: bfloat16 (2, 2, 5, 3)"),
              "%s", out);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(o, &w), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "cli");
    cr_expect(w.causal == 0 && w.scale == 0.25);
    ab_workload_free(&w);
    free(out), free(err);
}

Test(import, safetensors_every_dtype)
{
    const int dtypes[3] = {AB_DT_F32, AB_DT_F16, AB_DT_BF16};
    const char *p = t_path("rt.safetensors");
    for (int dt = 0; dt < 3; dt++) {
        struct qkv s;
        qkv_make(&s, dtypes[dt], dtypes[(dt + 1) % 3], dtypes[dt], (uint64_t)(40 + dt));
        st_write(p, s.t, 3);
        struct ab_workload w;
        cr_assert_eq(import_one(p, &w), AB_OK, "%s: %s", ab_dtype_name(dtypes[dt]), ab_errmsg());
        expect_qkv(&w, &s, ab_dtype_name(dtypes[dt]));
        ab_workload_free(&w);
    }
    /* a safetensors file is known by its content too, whatever its name */
    struct qkv s;
    qkv_make(&s, AB_DT_F32, AB_DT_F32, AB_DT_F32, 50);
    const char *q = t_path("dump.bin");
    st_write(q, s.t, 3);
    struct ab_workload w;
    cr_assert_eq(import_one(q, &w), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "no suffix");
    ab_workload_free(&w);
}

Test(import, hdf5_datasets_by_name)
{
    struct qkv s;
    qkv_make(&s, AB_DT_F32, AB_DT_F16, AB_DT_F32, 60);
    s.t[0].name = "query", s.t[1].name = "key", s.t[2].name = "value";
    const char *p = t_path("rt.h5"), *o = t_path("rt-out.h5");
    h5_write(p, s.t, 3);
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "import '%s' --names query,key,value -o '%s'", p, o), 0, "%s",
                 err);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(o, &w), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "hdf5");
    ab_workload_free(&w);
    free(out), free(err);
    /* the default names are not there */
    cr_expect_eq(t_run(&out, &err, "import '%s' -o '%s'", p, t_path("none.h5")), 65);
    cr_expect(strstr(err, "rt.h5") && strstr(err, "/q"), "%s", err);
    free(out), free(err);
}

Test(import, three_files_of_different_formats)
{
    struct qkv s;
    qkv_make(&s, AB_DT_F16, AB_DT_F32, AB_DT_BF16, 70);
    const char *qp = t_path("q.npy"), *kp = t_path("k.safetensors"), *vp = t_path("v.npz");
    struct buf b = {0};
    npy_bytes(&b, &s.t[0], NULL);
    write_file(qp, b.p, b.n);
    free(b.p);
    st_write(kp, &s.t[1], 1);
    npz_write(vp, &s.t[2], 1, 1, Z64_NONE);
    const char *o = t_path("three.h5");
    char *out, *err;
    cr_assert_eq(t_run(&out, &err, "import --q '%s' --k '%s' --v '%s' -o '%s'", qp, kp, vp, o), 0,
                 "%s", err);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(o, &w), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "three files");
    ab_workload_free(&w);
    free(out), free(err);
    /* the same by position */
    cr_assert_eq(t_run(&out, &err, "import '%s' '%s' '%s' -o '%s'", qp, kp, vp, o), 0, "%s", err);
    cr_assert_eq(ab_h5_workload_read(o, &w), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "positional");
    ab_workload_free(&w);
    free(out), free(err);
}

/* '<V2' is bfloat16 only when the caller says so; 'bfloat16' always is. */
Test(import, void2_npy_needs_the_bf16_hint)
{
    struct qkv s;
    qkv_make(&s, AB_DT_BF16, AB_DT_BF16, AB_DT_BF16, 80);
    const char *paths[3] = {t_path("vq.npy"), t_path("vk.npy"), t_path("vv.npy")};
    for (int r = 0; r < 3; r++) {
        struct buf b = {0};
        npy_bytes(&b, &s.t[r], r == 1 ? "|V2" : "<V2");
        write_file(paths[r], b.p, b.n);
        free(b.p);
    }
    const char *o = t_path("void2.h5");
    char *out, *err;
    cr_expect_eq(
        t_run(&out, &err, "import '%s' '%s' '%s' -o '%s'", paths[0], paths[1], paths[2], o), 65);
    cr_expect(strstr(err, "vq.npy") && strstr(err, "<V2") && strstr(err, "bf16"), "%s", err);
    cr_expect_eq(t_count_lines(err), 1, "%s", err);
    cr_expect(!t_exists(o));
    free(out), free(err);
    cr_assert_eq(t_run(&out, &err, "import '%s' '%s' '%s' --dtype bf16 -o '%s'", paths[0], paths[1],
                       paths[2], o),
                 0, "%s", err);
    struct ab_workload w;
    cr_assert_eq(ab_h5_workload_read(o, &w), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "<V2 with --dtype bf16");
    ab_workload_free(&w);
    free(out), free(err);
}

/* ---------------------------------------------------------------- layouts */

/* Arrays stored (layer, seq, head, dim), and per layer as rank-3 (seq, head, dim). */
Test(import, layouts_other_than_the_default)
{
    struct qkv s;
    qkv_make(&s, AB_DT_F32, AB_DT_F32, AB_DT_F32, 90);
    memcpy(s.wq, s.q, sizeof s.q), memcpy(s.wk, s.k, sizeof s.k), memcpy(s.wv, s.v, sizeof s.v);
    /* transposed copies: x_t[l][i][h][c] = x[l][h][i][c] */
    static float qt[L * H * N * D], kt[L * G * N * D], vt[L * G * N * DV];
    const float *src[3] = {s.q, s.k, s.v};
    float *dst[3] = {qt, kt, vt};
    int64_t heads[3] = {H, G, G}, dims[3] = {D, D, DV};
    for (int r = 0; r < 3; r++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t h = 0; h < heads[r]; h++)
                for (int64_t i = 0; i < N; i++)
                    for (int64_t c = 0; c < dims[r]; c++)
                        dst[r][((l * N + i) * heads[r] + h) * dims[r] + c] =
                            src[r][((l * heads[r] + h) * N + i) * dims[r] + c];
    struct tensor t[3];
    const char *names[3] = {"q", "k", "v"};
    for (int r = 0; r < 3; r++)
        t[r] = (struct tensor){names[r], AB_DT_F32, 4, {L, N, heads[r], dims[r]}, dst[r], NULL};
    const char *p = t_path("lsh.npz");
    npz_write(p, t, 3, 0, Z64_LOCAL);
    struct ab_import_opts o;
    struct ab_workload w;
    ab_import_defaults(&o);
    o.files[0] = p, o.n_files = 1, o.layout = "layer,seq,head,dim";
    cr_assert_eq(ab_import(&o, &w, NULL), AB_OK, "%s", ab_errmsg());
    expect_qkv(&w, &s, "layer,seq,head,dim");
    ab_workload_free(&w);
    /* the default layout on these arrays reads other shapes: heads and seq swapped */
    o.layout = "layer,head,seq,dim";
    cr_assert_eq(ab_import(&o, &w, NULL), AB_E_DATA); /* q would have n 4, k n 2 */
    /* one layer as rank 3, (seq, head, dim): the 4-name layout without its layer, or 3 names */
    for (int r = 0; r < 3; r++) {
        t[r].rank = 3;
        t[r].shape[0] = N, t[r].shape[1] = heads[r], t[r].shape[2] = dims[r];
    }
    npz_write(p, t, 3, 1, Z64_NONE);
    const char *layouts[2] = {"layer,seq,head,dim", "seq,head,dim"};
    for (int k = 0; k < 2; k++) {
        o.layout = layouts[k];
        cr_assert_eq(ab_import(&o, &w, NULL), AB_OK, "%s: %s", layouts[k], ab_errmsg());
        cr_assert(w.n_layer == 1 && w.n_head == H && w.n_kv_head == G && w.n_seq == N);
        for (int64_t i = 0; i < H * N * D; i++)
            cr_assert_eq(w.q[i], s.q[i], "%s q[%lld]", layouts[k], (long long)i);
        for (int64_t i = 0; i < G * N * DV; i++) cr_assert_eq(w.v[i], s.v[i]);
        ab_workload_free(&w);
    }
    o.layout = "seq,head,dim,layer,x";
    cr_expect_eq(ab_import(&o, &w, NULL), AB_E_USAGE);
    o.layout = "layer,seq,dim";
    cr_expect_eq(ab_import(&o, &w, NULL), AB_E_USAGE);
}

/* ---------------------------------------------------------------- RoPE on import */

/* Our own rotation in double: interleaved pairs (2p, 2p+1) or rotate_half pairs (p, p+d/2). */
static void rotate(float *x, int64_t n, int64_t d, int64_t pos0, double theta, int half)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t p = 0; p < d / 2; p++) {
            double a = (double)(pos0 + i) * pow(theta, -2.0 * (double)p / (double)d);
            int64_t u = half ? p : 2 * p, v = half ? p + d / 2 : 2 * p + 1;
            double x0 = x[i * d + u], x1 = x[i * d + v];
            x[i * d + u] = (float)(x0 * cos(a) - x1 * sin(a));
            x[i * d + v] = (float)(x0 * sin(a) + x1 * cos(a));
        }
}

Test(import, rope_on_import_equals_pre_rotated_input)
{
    for (int half = 0; half < 2; half++) {
        struct qkv raw, rot;
        qkv_make(&raw, AB_DT_F32, AB_DT_F32, AB_DT_F32, 100);
        qkv_make(&rot, AB_DT_F32, AB_DT_F32, AB_DT_F32, 100);
        for (int64_t h = 0; h < L * H; h++) rotate(rot.q + h * N * D, N, D, 3, 500.0, half);
        for (int64_t h = 0; h < L * G; h++) rotate(rot.k + h * N * D, N, D, 3, 500.0, half);
        const char *pr = t_path("raw.safetensors"), *pp = t_path("rot.safetensors");
        st_write(pr, raw.t, 3);
        st_write(pp, rot.t, 3);
        const char *a = t_path("ra.h5"), *b = t_path("rb.h5");
        char *out, *err;
        cr_assert_eq(t_run(&out, &err,
                           "import '%s' --no-rope-applied --rope-theta 500 "
                           "--rope-style %s --first-position 3 -o '%s'",
                           pr, half ? "half" : "interleaved", a),
                     0, "%s", err);
        free(out), free(err);
        cr_assert_eq(
            t_run(&out, &err, "import '%s' --rope-theta 500 --first-position 3 -o '%s'", pp, b), 0,
            "%s", err);
        free(out), free(err);
        struct ab_workload wa, wb;
        cr_assert_eq(ab_h5_workload_read(a, &wa), AB_OK, "%s", ab_errmsg());
        cr_assert_eq(ab_h5_workload_read(b, &wb), AB_OK, "%s", ab_errmsg());
        double max_q = 0, max_k = 0, moved = 0;
        for (int64_t i = 0; i < L * H * N * D; i++) {
            max_q = fmax(max_q, fabs(wa.q[i] - wb.q[i]));
            moved = fmax(moved, fabs(wa.q[i] - raw.q[i]));
        }
        for (int64_t i = 0; i < L * G * N * D; i++) max_k = fmax(max_k, fabs(wa.k[i] - wb.k[i]));
        cr_expect(max_q < 1e-5 && max_k < 1e-5, "%s: q off by %g, k by %g",
                  half ? "half" : "interleaved", max_q, max_k);
        cr_expect(moved > 0.1, "the rotation did nothing");
        for (int64_t i = 0; i < L * G * N * DV; i++) cr_assert_eq(wa.v[i], raw.v[i]);
        cr_expect(wa.rope_applied == 1 && wa.rope_theta == 500 && wa.positions[0] == 3);
        ab_workload_free(&wa);
        ab_workload_free(&wb);
    }
}

/* ---------------------------------------------------------------- NumPy cross-check */

Test(import, numpy_savez_files_read_by_us)
{
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        cr_skip_test("no /usr/bin/python3 with numpy");
    }
    const char *dir = t_path("np");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && /usr/bin/python3 -c \""
             "import numpy as np\n"
             "r = np.random.default_rng(5)\n"
             "q = r.standard_normal((2, 4, 7, 8)).astype('<f4')\n"
             "k = r.standard_normal((2, 2, 7, 8)).astype('<f2')\n"
             "v = r.standard_normal((2, 2, 7, 4)).astype('<f4')\n"
             "np.savez('s.npz', q=q, k=k, v=v)\n"
             "np.savez_compressed('c.npz', q=q, k=k, v=v)\n"
             "np.concatenate([q.ravel(), k.astype('<f4').ravel(), v.ravel()]).tofile('all.f32')\n"
             "\"",
             dir, dir);
    cr_assert_eq(system(cmd), 0, "python failed");
    char path[1024];
    snprintf(path, sizeof path, "%s/all.f32", dir);
    size_t len;
    float *all = (float *)t_slurp(path, &len);
    cr_assert(all && len == (size_t)(2 * 4 * 7 * 8 + 2 * 2 * 7 * 8 + 2 * 2 * 7 * 4) * 4);
    const char *files[2] = {"s.npz", "c.npz"};
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        struct ab_workload w;
        cr_assert_eq(import_one(path, &w), AB_OK, "%s: %s", files[f], ab_errmsg());
        cr_assert(w.n_head == 4 && w.n_kv_head == 2 && w.n_seq == 7 && w.d == 8 && w.d_v == 4);
        const float *at = all;
        for (int64_t i = 0; i < 2 * 4 * 7 * 8; i++) cr_assert_eq(w.q[i], *at++, "%s q", files[f]);
        for (int64_t i = 0; i < 2 * 2 * 7 * 8; i++) cr_assert_eq(w.k[i], *at++, "%s k", files[f]);
        for (int64_t i = 0; i < 2 * 2 * 7 * 4; i++) cr_assert_eq(w.v[i], *at++, "%s v", files[f]);
        ab_workload_free(&w);
    }
    free(all);
}

/* ---------------------------------------------------------------- bad inputs */

/* `import ARGS -o OUT` must exit `status` with one line on stderr naming `file` and holding
 * `what`, and leave no OUT nor OUT.tmp. */
static void expect_refused(const char *args, int status, const char *file, const char *what)
{
    const char *o = t_path("refused.h5");
    char *out, *err;
    remove(o);
    int st = t_run(&out, &err, "import %s -o '%s'", args, o);
    cr_expect_eq(st, status, "%s: exit %d, want %d: %s", what, st, status, err);
    cr_expect_eq(t_count_lines(err), 1, "%s: %s", what, err);
    cr_expect(strncmp(err, "error: ", 7) == 0, "%s: %s", what, err);
    cr_expect(strstr(err, file) != NULL, "%s: the message does not name '%s': %s", what, file, err);
    cr_expect(strstr(err, what) != NULL, "%s: %s", what, err);
    cr_expect(!t_exists(o) && !t_tmp_left(o), "%s: output left behind", what);
    free(out), free(err);
}

/* A good npz and safetensors to damage. */
static void good_files(struct qkv *s, const char *npz, const char *st)
{
    qkv_make(s, AB_DT_F32, AB_DT_F32, AB_DT_F32, 200);
    if (npz) npz_write(npz, s->t, 3, 0, Z64_NONE);
    if (st) st_write(st, s->t, 3);
}

/* The first len bytes of src into dst. */
static void truncate_copy(const char *src, const char *dst, size_t len)
{
    size_t n;
    unsigned char *b = t_slurp(src, &n);
    cr_assert(b && len <= n);
    write_file(dst, b, len);
    free(b);
}

Test(import, truncated_files)
{
    struct qkv s;
    const char *npz = t_path("good.npz"), *st = t_path("good.safetensors");
    good_files(&s, npz, st);
    char args[4096];
    size_t n;
    free(t_slurp(npz, &n));
    const char *cut = t_path("cut.npz");
    truncate_copy(npz, cut, n / 2);
    snprintf(args, sizeof args, "'%s'", cut);
    expect_refused(args, 65, "cut.npz", "no ZIP end of central directory");

    free(t_slurp(st, &n));
    const char *cst = t_path("cut.safetensors");
    truncate_copy(st, cst, n - 10);
    snprintf(args, sizeof args, "'%s'", cst);
    expect_refused(args, 65, "cut.safetensors", "truncated");

    struct buf b = {0};
    npy_bytes(&b, &s.t[0], NULL);
    const char *q = t_path("cutq.npy"), *k = t_path("k.npy"), *v = t_path("v.npy");
    write_file(q, b.p, b.n - 7);
    b.n = 0;
    npy_bytes(&b, &s.t[1], NULL);
    write_file(k, b.p, b.n);
    b.n = 0;
    npy_bytes(&b, &s.t[2], NULL);
    write_file(v, b.p, b.n);
    free(b.p);
    snprintf(args, sizeof args, "'%s' '%s' '%s'", q, k, v);
    expect_refused(args, 65, "cutq.npy", "truncated .npy");

    /* a member whose npy is short inside an intact archive */
    struct member m[3];
    const char *names[3] = {"q.npy", "k.npy", "v.npy"};
    for (int r = 0; r < 3; r++) {
        m[r].name = names[r];
        memset(&m[r].data, 0, sizeof m[r].data);
        npy_bytes(&m[r].data, &s.t[r], NULL);
    }
    m[2].data.n -= 4;
    const char *short_member = t_path("short.npz");
    zip_write(short_member, m, 3, 1, Z64_LOCAL);
    for (int r = 0; r < 3; r++) free(m[r].data.p);
    snprintf(args, sizeof args, "'%s'", short_member);
    expect_refused(args, 65, "short.npz:v.npy", "truncated .npy");

    /* missing input */
    expect_refused("/nonexistent/dump.npz", 66, "/nonexistent/dump.npz", "no such file");
}

Test(import, npz_damage)
{
    struct qkv s;
    const char *npz = t_path("good.npz");
    good_files(&s, npz, NULL);
    size_t n;
    unsigned char *b = t_slurp(npz, &n);
    char args[2048];
    /* a flipped byte inside q's stored data: the CRC catches it */
    const char *crc = t_path("crc.npz");
    b[30 + 5 + 200] ^= 0x40;
    write_file(crc, b, n);
    b[30 + 5 + 200] ^= 0x40;
    snprintf(args, sizeof args, "'%s'", crc);
    expect_refused(args, 65, "crc.npz", "CRC-32 mismatch");
    /* method 12 (bzip2) in the directory and the local header */
    const char *meth = t_path("method.npz");
    unsigned char *c = memmem(b, n, "PK\1\2", 4);
    cr_assert(c);
    c[10] = 12, b[8] = 12;
    write_file(meth, b, n);
    c[10] = 0, b[8] = 0;
    snprintf(args, sizeof args, "'%s'", meth);
    expect_refused(args, 65, "method.npz", "compression method 12");
    /* encrypted */
    const char *enc_path = t_path("enc.npz");
    c[8] |= 1;
    write_file(enc_path, b, n);
    c[8] &= (unsigned char)~1;
    snprintf(args, sizeof args, "'%s'", enc_path);
    expect_refused(args, 65, "enc.npz", "encrypted");
    /* a local header offset beyond the central directory */
    const char *off = t_path("offset.npz");
    c[44] = 0x7f;
    write_file(off, b, n);
    c[44] = 0;
    snprintf(args, sizeof args, "'%s'", off);
    expect_refused(args, 65, "offset.npz", "outside");
    /* the end record naming a second disk */
    const char *disk = t_path("disk.npz");
    b[n - 22 + 4] = 1;
    write_file(disk, b, n);
    b[n - 22 + 4] = 0;
    snprintf(args, sizeof args, "'%s'", disk);
    expect_refused(args, 65, "disk.npz", "several disks");
    free(b);
    /* sizes deferred to the local ZIP64 field, which lies (issue 15: it was not read) */
    const char *z64 = t_path("z64.npz"), *liar = t_path("z64-liar.npz");
    npz_write(z64, s.t, 3, 0, Z64_CENTRAL);
    b = t_slurp(z64, &n);
    snprintf(args, sizeof args, "'%s'", z64);
    char *o, *e;
    cr_assert_eq(t_run(&o, &e, "import %s -o '%s'", args, t_path("z64.h5")), 0, "%s", e);
    free(o), free(e);
    size_t x = 30 + strlen("q.npy") + 4; /* the local extra's uncompressed size */
    b[x] ^= 0x10;
    write_file(liar, b, n);
    snprintf(args, sizeof args, "'%s'", liar);
    expect_refused(args, 65, "z64-liar.npz", "sizes differ from the central directory");
    free(b);
    /* a deflated member claiming more than deflate can make of its bytes (2 GB from a few
     * hundred): refused from the central directory, before anything is allocated for it */
    const char *bomb = t_path("claims.npz");
    npz_write(bomb, s.t, 3, 1, Z64_NONE);
    b = t_slurp(bomb, &n);
    c = memmem(b, n, "PK\1\2", 4);
    cr_assert(c);
    memcpy(c + 24, "\xff\xff\xff\x7f", 4); /* q's uncompressed size, in the directory */
    memcpy(b + 22, "\xff\xff\xff\x7f", 4);  /* and in its local header */
    write_file(bomb, b, n);
    snprintf(args, sizeof args, "'%s'", bomb);
    expect_refused(args, 65, "claims.npz", "more than deflate can produce");
    free(b);
}

Test(import, safetensors_damage)
{
    char args[2048];
    const char *p = t_path("bad.safetensors");
    snprintf(args, sizeof args, "'%s'", p);
    /* a header length over the cap, and one beyond the file */
    st_raw(p, "{}", NULL, 0, 200000000);
    expect_refused(args, 65, "bad.safetensors", "limit");
    st_raw(p, "{\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", NULL, 4, 5000);
    expect_refused(args, 65, "bad.safetensors", "truncated");
    /* bad JSON */
    st_raw(p, "{\"q\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", NULL, 4, 0);
    expect_refused(args, 65, "bad.safetensors", "not valid JSON");
    /* an unknown dtype */
    st_raw(p, "{\"q\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", NULL, 4, 0);
    expect_refused(args, 65, "bad.safetensors", "unknown dtype 'F33'");
    /* offsets that disagree with the shape */
    st_raw(p, "{\"q\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", NULL, 20, 0);
    expect_refused(args, 65, "bad.safetensors", "need 24");
    /* overlapping tensors */
    st_raw(p,
           "{\"q\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
           "\"k\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
           NULL, 16, 0);
    expect_refused(args, 65, "bad.safetensors", "overlap");
    /* offsets past the data section */
    st_raw(p, "{\"q\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", NULL, 8, 0);
    expect_refused(args, 65, "bad.safetensors", "past the data section");
    /* data the header does not account for */
    st_raw(p, "{\"q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", NULL, 12, 0);
    expect_refused(args, 65, "bad.safetensors", "the data section holds 12 bytes");
    /* a tensor of integers where floats are wanted */
    st_raw(p,
           "{\"q\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
           "\"k\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
           "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
           NULL, 16, 0);
    expect_refused(args, 65, "bad.safetensors", "holds I64");
}

Test(import, inconsistent_or_bad_tensors)
{
    struct qkv s;
    char args[2048];
    const char *p = t_path("incons.npz");
    snprintf(args, sizeof args, "'%s'", p);
    /* k with another sequence length */
    good_files(&s, NULL, NULL);
    s.t[1].shape[2] = N - 1;
    npz_write(p, s.t, 3, 1, Z64_NONE);
    expect_refused(args, 65, "incons.npz:q.npy", "sequence lengths differ");
    /* k with another head dim */
    good_files(&s, NULL, NULL);
    s.t[1].shape[3] = D - 2;
    npz_write(p, s.t, 3, 1, Z64_NONE);
    expect_refused(args, 65, "incons.npz:k.npy", "head dims differ");
    /* 4 query heads over 3 kv heads */
    good_files(&s, NULL, NULL);
    s.t[1].shape[1] = 3, s.t[2].shape[1] = 3, s.t[1].shape[3] = 4, s.t[0].shape[3] = 4;
    npz_write(p, s.t, 3, 1, Z64_NONE);
    expect_refused(args, 65, "incons.npz", "not a multiple");
    /* a missing tensor name */
    good_files(&s, p, NULL);
    snprintf(args, sizeof args, "'%s' --names q,k,values", p);
    expect_refused(args, 65, "incons.npz", "no member 'values.npy'");
    /* NaN in v, reported at its index */
    good_files(&s, NULL, NULL);
    float v[L * G * N * DV];
    memcpy(v, s.v, sizeof v);
    v[((1 * G + 0) * N + 2) * DV + 1] = NAN;
    s.t[2].x = v;
    npz_write(p, s.t, 3, 0, Z64_NONE);
    snprintf(args, sizeof args, "'%s'", p);
    expect_refused(args, 65, "incons.npz:v.npy", "v holds NaN at index (1, 0, 2, 1)");
    /* usage errors */
    expect_refused("a.npz b.npz", 64, "import", "three files");
    expect_refused("x.npz --rope-style sideways --no-rope-applied --rope-theta 10", 64,
                   "rope-style", "interleaved or half");
    expect_refused("x.npz --scale 0", 64, "scale", "positive");
}

/* Token ids ride along from a safetensors file (I32 and I64). */
Test(import, token_ids_from_safetensors)
{
    const char *p = t_path("tok.safetensors");
    unsigned char data[16 + 16 + 8 + 16];
    float x[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    memcpy(data, x, 40); /* q (1, 1, 2, 2), k (1, 1, 2, 2), v (1, 1, 2, 1) */
    int64_t ids[2] = {7, 123456};
    memcpy(data + 40, ids, 16);
    st_raw(p,
           "{\"q\":{\"dtype\":\"F32\",\"shape\":[1,1,2,2],\"data_offsets\":[0,16]},"
           "\"k\":{\"dtype\":\"F32\",\"shape\":[1,1,2,2],\"data_offsets\":[16,32]},"
           "\"v\":{\"dtype\":\"F32\",\"shape\":[1,1,2,1],\"data_offsets\":[32,40]},"
           "\"ids\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[40,56]}}",
           data, sizeof data, 0);
    struct ab_import_opts o;
    struct ab_workload w;
    ab_import_defaults(&o);
    o.files[0] = p, o.n_files = 1, o.tokens = "ids";
    cr_assert_eq(ab_import(&o, &w, NULL), AB_OK, "%s", ab_errmsg());
    cr_assert(w.tokens && w.tokens[0] == 7 && w.tokens[1] == 123456);
    cr_expect(w.k[3] == 8 && w.v[1] == 10);
    ab_workload_free(&w);
    o.tokens = "q";
    cr_expect_eq(ab_import(&o, &w, NULL), AB_E_DATA);
    cr_expect(strstr(ab_errmsg(), "I32 or I64") != NULL, "%s", ab_errmsg());
}
