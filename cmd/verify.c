/* verify.c - `attnbench verify WORKLOAD.h5 OUTPUTS`: checks an external kernel's attention
 * outputs against the double-precision reference (outputs.md, "Regression gate").
 *
 * OUTPUTS holds O for every (layer, head) of the workload: shape [n_layer, n_head, n_seq, d_v]
 * in the default layout, or any permutation of the four axes named by --layout; float16,
 * float32 or float64; a .npy file or one dataset of an HDF5 file. For each head the reference
 * (ab_attn_ref, the workload's mask unless --mask says otherwise) is computed and compared:
 * rel_l2 = |O~ - O|_F / |O|_F, max_abs, and cos_min, the smallest row cosine. A head fails when
 * rel_l2 > rtol (default 1e-4: a float32 kernel lands near 1e-7 to 1e-6, so 1e-4 catches real
 * errors with room for accumulation order; 2e-3 for float16 outputs, whose storage rounding
 * alone gives about 3e-4; 1e-2 for bfloat16, about 2e-3 from storage), or when max_abs > --atol
 * if given. Exit 1 if any head fails.
 *
 * --json prints the verdict as one JSON document instead of the table (attnbench/verify/1: the
 * inputs, tolerances, status and each head's errors); --junit FILE writes it as a JUnit XML
 * report, one test case per head, for CI dashboards. Both leave the exit status as it is.
 *
 * `verify WORKLOAD.h5 --dump-reference OUT.npy [--dtype f32|f64|f16]` writes the reference
 * outputs themselves in the default layout, so a kernel author (and the tests) can start from
 * a file that passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"
#include "core/ab.h"
#include "core/workload.h"
#include "eval/eval.h"
#include "io/h5_workload.h"
#include "io/json_out.h"
#include "io/junit.h"
#include "io/npy.h"
#include "opts.h"

static const char *usage_text =
    "attnbench verify WORKLOAD.h5 OUTPUTS.(npy|h5) [--rtol R] [--atol A]\n"
    "                 [--layout layer,head,seq,dim] [--dataset NAME] [--mask causal|full]\n"
    "                 [--json] [--junit FILE]\n"
    "       attnbench verify WORKLOAD.h5 --dump-reference OUT.npy [--dtype f32|f64|f16]";

#define RTOL_DEFAULT 1e-4     /* float32 and float64 outputs */
#define RTOL_DEFAULT_F16 2e-3 /* float16 outputs */
#define RTOL_DEFAULT_BF16 1e-2 /* bfloat16 outputs: 8 mantissa bits, storage alone ~1e-3 */

enum { AX_LAYER, AX_HEAD, AX_SEQ, AX_DIM, N_AX };
static const char *const axis_names[N_AX] = {"layer", "head", "seq", "dim"};

/* Parses --layout into axis_of[i] = the axis (AX_*) stored as dimension i of the file. -1 when
 * fine, else the exit status. */
static int parse_layout(const char *s, int axis_of[N_AX])
{
    int seen[N_AX] = {0}, n = 0;
    const char *p = s;
    while (*p) {
        size_t len = strcspn(p, ",");
        int a = -1;
        for (int k = 0; k < N_AX; k++)
            if (strlen(axis_names[k]) == len && !strncmp(p, axis_names[k], len)) a = k;
        if (a < 0 || seen[a] || n == N_AX)
            return ab_cmd_error(EX_AB_USAGE, "verify: --layout '%s' must name layer, head, seq "
                                "and dim once each", s);
        seen[a] = 1;
        axis_of[n++] = a;
        p += len + (p[len] == ',');
    }
    if (n != N_AX)
        return ab_cmd_error(EX_AB_USAGE, "verify: --layout '%s' must name layer, head, seq and "
                            "dim once each", s);
    return -1;
}

/* Accuracy of one head's outputs x (strided view) against the reference r (n_seq, d_v). */
struct head_acc {
    double rel_l2, max_abs, cos_min;
    int pass; /* within rtol (and atol when given) */
};

static void head_accuracy(const double *x, const int64_t stride[N_AX], int64_t layer,
                          int64_t head, const double *r, int64_t n_seq, int64_t d_v,
                          struct head_acc *out)
{
    double num = 0, den = 0, max_abs = 0, cos_min = INFINITY;
    const double *xh = x + layer * stride[AX_LAYER] + head * stride[AX_HEAD];
    for (int64_t i = 0; i < n_seq; i++) {
        double dot = 0, nx = 0, nr = 0;
        for (int64_t c = 0; c < d_v; c++) {
            double a = xh[i * stride[AX_SEQ] + c * stride[AX_DIM]], b = r[i * d_v + c];
            double e = a - b;
            num += e * e;
            den += b * b;
            if (!(fabs(e) <= max_abs)) max_abs = fabs(e); /* NaN sticks */
            dot += a * b, nx += a * a, nr += b * b;
        }
        /* a zero row matches only a zero row */
        double cs = nx == 0 && nr == 0 ? 1 : nx == 0 || nr == 0 ? 0 : dot / sqrt(nx * nr);
        if (!(cs >= cos_min)) cos_min = cs;
    }
    out->rel_l2 = ab_rel_l2(num, den);
    out->max_abs = max_abs;
    out->cos_min = n_seq ? cos_min : 1;
}

/* The reference outputs of head (layer, head) into o (n_seq, d_v). */
static int head_reference(const struct ab_workload *w, int64_t layer, int64_t head, int mask,
                          double *o)
{
    struct ab_head h;
    ab_workload_head(w, layer, head, &h);
    h.mask = mask;
    return ab_attn_ref(&h, NULL, 0, o, NULL);
}

static int dump_reference(const struct ab_workload *w, const char *wpath, int mask,
                          const char *out, int dtype)
{
    int64_t per = w->n_seq * w->d_v, n = w->n_layer * w->n_head * per;
    int rc, st = EX_AB_OK;
    if ((rc = ab_check_fits("the reference outputs", (double)n * 8))) return ab_cmd_fail(rc);
    double *o = ab_alloc(ab_size_mul((size_t)n, sizeof *o)); /* (n_layer, n_head, n_seq, d_v) */
    if (!o) return ab_cmd_error(EX_AB_DATA, "verify: out of memory");
    for (int64_t l = 0; l < w->n_layer && st == EX_AB_OK; l++)
        for (int64_t h = 0; h < w->n_head && st == EX_AB_OK; h++)
            if ((rc = head_reference(w, l, h, mask, o + (l * w->n_head + h) * per)))
                st = ab_cmd_fail(rc);
    int64_t shape[4] = {w->n_layer, w->n_head, w->n_seq, w->d_v};
    if (st == EX_AB_OK && (rc = ab_npy_write(out, dtype, 4, shape, AB_DT_F64, o)))
        st = ab_cmd_fail(rc);
    if (st == EX_AB_OK) {
        ab_out_file(out);
        ab_out_main("verify", out,
                    "reference of '%s': %lld x %lld x %lld x %lld %s (layer, head, seq, dim)",
                    wpath, (long long)w->n_layer, (long long)w->n_head, (long long)w->n_seq,
                    (long long)w->d_v, ab_dtype_name(dtype));
    }
    ab_free(o);
    return st;
}

/* Reads the kernel's outputs (npy or HDF5) as doubles. Exit status or -1. */
static int read_outputs(const char *path, const char *dataset, struct ab_array *a)
{
    int fmt, rc = ab_array_sniff(path, &fmt);
    if (rc) return ab_cmd_fail(rc);
    if (fmt == AB_FMT_SAFETENSORS || fmt == AB_FMT_NPZ)
        return ab_cmd_error(EX_AB_DATA, "'%s': %s is not supported yet (use .npy or .h5)", path,
                            fmt == AB_FMT_NPZ ? ".npz" : "safetensors");
    if (fmt == AB_FMT_NPY && dataset)
        return ab_cmd_error(EX_AB_USAGE, "verify: --dataset names an HDF5 dataset, but '%s' is "
                            "a .npy file", path);
    rc = fmt == AB_FMT_NPY ? ab_npy_read(path, AB_DT_F64, a)
                           : ab_h5_array_read(path, dataset, 4, AB_DT_F64, a);
    return rc ? ab_cmd_fail(rc) : -1;
}

/* The verdict of one run over every head, for --json and --junit. */
struct verdict {
    const char *workload, *outputs, *dataset, *layout;
    int dtype, mask;
    int64_t n_layer, n_head, n_seq, d_v;
    double rtol, atol;       /* atol NaN: not checked */
    const struct head_acc *acc; /* (n_layer, n_head) */
    int64_t n_fail, worst_l, worst_h;
    double worst;
};

/* Why a head failed, one line ("rel_l2 0.0123 > rtol 0.0001"), or "" when it passed. */
static void fail_text(const struct verdict *v, const struct head_acc *a, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (a->pass) return;
    if (!(a->rel_l2 <= v->rtol))
        snprintf(buf, cap, "rel_l2 %.4g > rtol %g", a->rel_l2, v->rtol);
    if (!isnan(v->atol) && !(a->max_abs <= v->atol))
        snprintf(buf + strlen(buf), cap - strlen(buf), "%smax_abs %.4g > atol %g",
                 buf[0] ? ", " : "", a->max_abs, v->atol);
}

/* --json: {schema, workload, outputs, dataset, dtype, layout, mask, shape, tolerances, status,
 * heads, failed, worst, cases: [{layer, head, rel_l2, max_abs, cos_min, pass, reason}]}. */
static int print_json(const struct verdict *v)
{
    struct ab_json_doc d;
    ab_json_begin(&d);
    struct ab_json *o = d.root, *x;
    ab_json_str(&d, o, "schema", "attnbench/verify/1");
    ab_json_str(&d, o, "workload", v->workload);
    ab_json_str(&d, o, "outputs", v->outputs);
    ab_json_str(&d, o, "dataset", v->dataset);
    ab_json_str(&d, o, "dtype", ab_dtype_name(v->dtype));
    x = ab_json_arr(&d, o, "layout");
    char axes[64];
    snprintf(axes, sizeof axes, "%s", v->layout);
    for (char *t = strtok(axes, ","); t; t = strtok(NULL, ",")) ab_json_str(&d, x, NULL, t);
    ab_json_str(&d, o, "mask", v->mask == AB_MASK_CAUSAL ? "causal" : "full");
    x = ab_json_obj(&d, o, "shape");
    ab_json_int(&d, x, "layers", v->n_layer);
    ab_json_int(&d, x, "heads", v->n_head);
    ab_json_int(&d, x, "seq", v->n_seq);
    ab_json_int(&d, x, "dim", v->d_v);
    x = ab_json_obj(&d, o, "tolerances");
    ab_json_num(&d, x, "rtol", v->rtol);
    ab_json_num(&d, x, "atol", v->atol); /* null: not checked */
    ab_json_str(&d, o, "status", v->n_fail ? "fail" : "pass");
    ab_json_int(&d, o, "heads", v->n_layer * v->n_head);
    ab_json_int(&d, o, "failed", v->n_fail);
    x = ab_json_obj(&d, o, "worst");
    ab_json_int(&d, x, "layer", v->worst_l);
    ab_json_int(&d, x, "head", v->worst_h);
    ab_json_num(&d, x, "rel_l2", v->worst);
    x = ab_json_arr(&d, o, "cases");
    for (int64_t l = 0; l < v->n_layer; l++)
        for (int64_t h = 0; h < v->n_head; h++) {
            const struct head_acc *a = &v->acc[l * v->n_head + h];
            struct ab_json *c = ab_json_obj(&d, x, NULL);
            char why[128];
            fail_text(v, a, why, sizeof why);
            ab_json_int(&d, c, "layer", l);
            ab_json_int(&d, c, "head", h);
            ab_json_num(&d, c, "rel_l2", a->rel_l2);
            ab_json_num(&d, c, "max_abs", a->max_abs);
            ab_json_num(&d, c, "cos_min", a->cos_min);
            ab_json_bool(&d, c, "pass", a->pass);
            ab_json_str(&d, c, "reason", a->pass ? NULL : why);
        }
    int rc = ab_json_print(&d, stdout);
    return rc ? ab_cmd_fail(rc) : -1;
}

/* --junit FILE: one test case per head ("layer L head H" of class attnbench.verify), a failure
 * naming the tolerance it broke. Exit status, or -1 when written. */
static int write_junit(const char *path, const struct verdict *v)
{
    struct ab_junit j;
    char buf[256], why[128];
    int rc = ab_junit_begin(&j, path, "attnbench verify", v->n_layer * v->n_head, v->n_fail);
    if (rc) return ab_cmd_fail(rc);
    ab_junit_property(&j, "workload", v->workload);
    ab_junit_property(&j, "outputs", v->outputs);
    snprintf(buf, sizeof buf, "%g", v->rtol);
    ab_junit_property(&j, "rtol", buf);
    if (!isnan(v->atol)) {
        snprintf(buf, sizeof buf, "%g", v->atol);
        ab_junit_property(&j, "atol", buf);
    }
    for (int64_t l = 0; l < v->n_layer; l++)
        for (int64_t h = 0; h < v->n_head; h++) {
            const struct head_acc *a = &v->acc[l * v->n_head + h];
            char name[64], details[256];
            snprintf(name, sizeof name, "layer %lld head %lld", (long long)l, (long long)h);
            fail_text(v, a, why, sizeof why);
            snprintf(details, sizeof details, "rel_l2 %.6g, max_abs %.6g, cos_min %.10f", a->rel_l2,
                     a->max_abs, a->cos_min);
            ab_junit_case(&j, "attnbench.verify", name, a->pass ? NULL : "tolerance", why,
                          details);
        }
    rc = ab_junit_commit(&j);
    return rc ? ab_cmd_fail(rc) : -1;
}

int cmd_verify(int argc, char **argv)
{
    const char *layout = "layer,head,seq,dim", *dataset = NULL, *mask_name = NULL;
    const char *dump = NULL, *dtype = "f32";
    const char *junit = NULL;
    double rtol = NAN, atol = NAN;
    int json = 0;
    const struct ab_opt opts[] = {
        {"rtol", AB_OPT_DOUBLE, &rtol, "R", "a head fails when rel_l2 > R (default 1e-4; 2e-3 for float16, 1e-2 for bfloat16 outputs)"},
        {"atol", AB_OPT_DOUBLE, &atol, "A", "a head also fails when max_abs > A (default: not checked)"},
        {"layout", AB_OPT_STRING, &layout, "AXES", "axis order of OUTPUTS (default layer,head,seq,dim)"},
        {"dataset", AB_OPT_STRING, &dataset, "NAME", "HDF5 dataset (default /o, else the only float dataset of rank 4)"},
        {"mask", AB_OPT_STRING, &mask_name, "M", "causal or full (default: the workload's)"},
        {"dump-reference", AB_OPT_STRING, &dump, "OUT", "write the reference outputs (default layout) and exit"},
        {"dtype", AB_OPT_STRING, &dtype, "T", "element type of --dump-reference: f32 (default), f64 or f16"},
        {"json", AB_OPT_FLAG, &json, NULL, "print the verdict as one JSON document instead of the table (README, \"Machine-readable output\")"},
        {"junit", AB_OPT_STRING, &junit, "FILE", "also write a JUnit XML report, one test case per head"},
        {NULL, AB_OPT_END, NULL, NULL, NULL},
    };
    char *pos[2];
    int n_pos, st = ab_opts_parse("verify", usage_text, opts, argc, argv, pos, 2, &n_pos);
    if (st >= 0) return st;
    if (dump ? n_pos != 1 : n_pos != 2)
        return ab_cmd_error(EX_AB_USAGE, dump ? "verify: --dump-reference takes one workload file"
                                              : "verify: name the workload and the outputs file");
    if (dump && (json || junit))
        return ab_cmd_error(EX_AB_USAGE, "verify: --json and --junit do not apply to "
                            "--dump-reference");
    if (!isnan(rtol) && !(rtol >= 0))
        return ab_cmd_error(EX_AB_USAGE, "verify: --rtol must be >= 0");
    if (!isnan(atol) && !(atol >= 0))
        return ab_cmd_error(EX_AB_USAGE, "verify: --atol must be >= 0");
    int axis_of[N_AX];
    if ((st = parse_layout(layout, axis_of)) >= 0) return st;
    int dump_dtype = !strcmp(dtype, "f32") ? AB_DT_F32
                     : !strcmp(dtype, "f64") ? AB_DT_F64
                     : !strcmp(dtype, "f16") ? AB_DT_F16
                                             : 0;
    if (!dump_dtype)
        return ab_cmd_error(EX_AB_USAGE, "verify: --dtype must be f32, f64 or f16, got '%s'",
                            dtype);
    if (mask_name && strcmp(mask_name, "causal") && strcmp(mask_name, "full"))
        return ab_cmd_error(EX_AB_USAGE, "verify: --mask must be causal or full, got '%s'",
                            mask_name);

    struct ab_workload w = {0};
    struct ab_array out = {0};
    double *ref = NULL;
    struct head_acc *accs = NULL; /* (n_layer, n_head) */
    int rc = ab_h5_workload_read(pos[0], &w);
    if (rc) {
        st = ab_cmd_fail(rc);
        goto done;
    }
    int mask = mask_name ? (strcmp(mask_name, "full") ? AB_MASK_CAUSAL : AB_MASK_FULL)
                         : (w.causal ? AB_MASK_CAUSAL : AB_MASK_FULL);
    if (dump) {
        st = dump_reference(&w, pos[0], mask, dump, dump_dtype);
        goto done;
    }
    if ((st = read_outputs(pos[1], dataset, &out)) >= 0) goto done;
    st = EX_AB_OK;

    /* the file's shape must be the workload's, axis by axis in the given layout */
    int64_t size[N_AX] = {w.n_layer, w.n_head, w.n_seq, w.d_v}, stride[N_AX];
    int ok = out.rank == N_AX;
    for (int i = 0; ok && i < N_AX; i++) ok = out.shape[i] == size[axis_of[i]];
    if (!ok) {
        char got[160] = "(", want[160] = "(";
        for (int i = 0; i < out.rank; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%lld%s",
                     (long long)out.shape[i], i + 1 < out.rank ? ", " : "");
        for (int i = 0; i < N_AX; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s %lld%s",
                     axis_names[axis_of[i]], (long long)size[axis_of[i]], i + 1 < N_AX ? ", " : "");
        st = ab_cmd_error(EX_AB_DATA, "'%s': shape %s) does not match the workload '%s': "
                          "expected %s) in layout %s", pos[1], got, pos[0], want, layout);
        goto done;
    }
    int64_t acc = 1; /* row-major strides of the file's axes, by axis meaning */
    for (int i = N_AX - 1; i >= 0; i--) {
        stride[axis_of[i]] = acc;
        acc *= out.shape[i];
    }
    if (isnan(rtol))
        rtol = out.dtype == AB_DT_F16    ? RTOL_DEFAULT_F16
               : out.dtype == AB_DT_BF16 ? RTOL_DEFAULT_BF16
                                         : RTOL_DEFAULT;

    ref = ab_alloc(ab_size_mul((size_t)(w.n_seq * w.d_v), sizeof *ref)); /* (n_seq, d_v) */
    accs = calloc((size_t)(w.n_layer * w.n_head), sizeof *accs);
    if (!ref || !accs) {
        st = ab_cmd_error(EX_AB_DATA, "verify: out of memory");
        goto done;
    }
    if (!json)
        printf("%5s %4s %12s %12s %14s  %s\n", "layer", "head", "rel_l2", "max_abs", "cos_min",
               "result");
    int64_t n_fail = 0, worst_l = 0, worst_h = 0;
    double worst = -1;
    for (int64_t l = 0; l < w.n_layer; l++)
        for (int64_t h = 0; h < w.n_head; h++) {
            if ((rc = head_reference(&w, l, h, mask, ref))) {
                st = ab_cmd_fail(rc);
                goto done;
            }
            struct head_acc *a = &accs[l * w.n_head + h];
            head_accuracy(out.data, stride, l, h, ref, w.n_seq, w.d_v, a);
            a->pass = a->rel_l2 <= rtol && (isnan(atol) || a->max_abs <= atol);
            n_fail += !a->pass;
            if (!(a->rel_l2 <= worst)) worst = a->rel_l2, worst_l = l, worst_h = h;
            if (!json)
                printf("%5lld %4lld %12.4g %12.4g %14.10f  %s\n", (long long)l, (long long)h,
                       a->rel_l2, a->max_abs, a->cos_min, a->pass ? "ok" : "FAIL");
        }
    struct verdict v = {pos[0], pos[1], dataset, layout, out.dtype, mask, w.n_layer, w.n_head,
                        w.n_seq, w.d_v, rtol, atol, accs, n_fail, worst_l, worst_h, worst};
    if (junit && (st = write_junit(junit, &v)) >= 0) goto done;
    st = EX_AB_OK;
    if (json) {
        if ((st = print_json(&v)) >= 0) goto done;
        st = EX_AB_OK;
    } else {
        printf("verify: %lld heads, %lld failed (rel_l2 > %g%s); worst rel_l2 %.4g at layer %lld "
               "head %lld\n", (long long)(w.n_layer * w.n_head), (long long)n_fail, rtol,
               isnan(atol) ? "" : " or max_abs above --atol", worst, (long long)worst_l,
               (long long)worst_h);
    }
    if (n_fail) st = EX_AB_REGRESSION;
done:
    free(accs);
    ab_free(ref);
    ab_array_free(&out);
    ab_workload_free(&w);
    return st;
}
