/* h5_array.c - a float dataset of an HDF5 file as a struct ab_array (the form .npy files are
 * read into, see npy.h): how `verify` reads an external kernel's outputs from HDF5, and how
 * `import` will read Q/K/V dumped as HDF5 datasets. The dataset is named, or found as the only
 * float dataset of the wanted rank. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ab.h"
#include "io/h5_util.h"
#include "io/npy.h"


/* Float datasets of a given rank found by walking the file. */
struct h5_found {
    int want_rank;
    int n;
    char first[2][512];
};

/* Visits every link of group g (named path), recursing into groups up to depth 16 (hard-link
 * cycles stop there). */
static void h5_walk(hid_t g, const char *path, int depth, struct h5_found *fd)
{
    H5G_info_t gi;
    if (depth > 16 || H5Gget_info(g, &gi) < 0) return;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[256], full[512];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0 || len >= (ssize_t)sizeof name) continue;
        snprintf(full, sizeof full, "%s/%s", strcmp(path, "/") ? path : "", name);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0) continue; /* a dangling soft or external link */
        H5I_type_t t = H5Iget_type(o);
        if (t == H5I_GROUP) {
            h5_walk(o, full, depth + 1, fd);
        } else if (t == H5I_DATASET) {
            hid_t ty = H5Dget_type(o), sp = H5Dget_space(o);
            if (ty >= 0 && sp >= 0 && H5Tget_class(ty) == H5T_FLOAT &&
                H5Sget_simple_extent_ndims(sp) == fd->want_rank) {
                if (fd->n < 2) snprintf(fd->first[fd->n], sizeof fd->first[0], "%s", full);
                fd->n++;
            }
            if (ty >= 0) H5Tclose(ty);
            if (sp >= 0) H5Sclose(sp);
        }
        H5Oclose(o);
    }
    H5Eclear2(H5E_DEFAULT);
}

int ab_h5_array_read(const char *path, const char *dataset, int want_rank, int as,
                     struct ab_array *out)
{
    struct ab_h5 f = {0};
    char name[512];
    hid_t d = H5I_INVALID_HID, ty = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    memset(out, 0, sizeof *out);
    assert(as == AB_DT_F32 || as == AB_DT_F64 || as == AB_DT_U8);
    int rc = ab_h5_open(&f, path);
    if (rc) return rc;
    if (dataset) {
        snprintf(name, sizeof name, "%s%s", dataset[0] == '/' ? "" : "/", dataset);
        if (!ab_h5_exists(&f, name)) {
            rc = ab_fail(AB_E_DATA, "'%s': no dataset %s", path, name);
            goto done;
        }
    } else if (ab_h5_exists(&f, "/o")) {
        snprintf(name, sizeof name, "/o");
    } else {
        hid_t root = H5Gopen2(f.id, "/", H5P_DEFAULT);
        struct h5_found fd = {.want_rank = want_rank};
        if (root >= 0) {
            h5_walk(root, "/", 0, &fd);
            H5Gclose(root);
        }
        if (fd.n != 1) {
            rc = fd.n == 0 ? ab_fail(AB_E_DATA, "'%s': no dataset /o and no float dataset of "
                                     "rank %d (name one)", path, want_rank)
                           : ab_fail(AB_E_DATA, "'%s': %d float datasets of rank %d (%s, %s%s); "
                                     "name the one to read", path, fd.n, want_rank, fd.first[0],
                                     fd.first[1], fd.n > 2 ? ", ..." : "");
            goto done;
        }
        snprintf(name, sizeof name, "%s", fd.first[0]);
    }
    d = H5Dopen2(f.id, name, H5P_DEFAULT);
    if (d < 0) {
        rc = ab_h5_fail(AB_E_DATA, &f, "%s is not a readable dataset", name);
        goto done;
    }
    ty = H5Dget_type(d);
    sp = H5Dget_space(d);
    if (ty < 0 || sp < 0) {
        rc = ab_h5_fail(AB_E_DATA, &f, "cannot read the type and shape of %s", name);
        goto done;
    }
    size_t item = H5Tget_size(ty);
    int mask8 = H5Tget_class(ty) == H5T_INTEGER && item == 1; /* uint8 / int8: masks */
    if (as == AB_DT_U8 && !mask8) {
        rc = ab_fail(AB_E_DATA, "'%s': %s is a mask and must hold 1-byte integers (uint8)", path,
                     name);
        goto done;
    }
    if (as != AB_DT_U8 && (H5Tget_class(ty) != H5T_FLOAT || (item != 2 && item != 4 && item != 8))) {
        rc = ab_fail(AB_E_DATA, "'%s': %s does not hold float16, float32 or float64 values",
                     path, name);
        goto done;
    }
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank < 0 || rank > AB_ARRAY_MAX_RANK) {
        rc = ab_fail(AB_E_DATA, "'%s': %s has an unsupported rank %d", path, name, rank);
        goto done;
    }
    hsize_t dims[AB_ARRAY_MAX_RANK];
    if (rank > 0 && H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        rc = ab_h5_fail(AB_E_DATA, &f, "cannot read the shape of %s", name);
        goto done;
    }
    out->dtype = mask8 ? AB_DT_U8 : (int)item;
    out->as = as;
    out->rank = rank;
    out->n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)INT64_MAX ||
            (dims[i] && (uint64_t)out->n > INT64_MAX / 8 / dims[i])) {
            rc = ab_fail(AB_E_DATA, "'%s': %s has an impossible size", path, name);
            goto done;
        }
        out->shape[i] = (int64_t)dims[i];
        out->n *= out->shape[i];
    }
    if (out->n > 0) {
        if ((rc = ab_h5_check_stored(d, path, name, (double)out->n * (double)item))) goto done;
        if ((rc = ab_check_fits(path, (double)out->n * as))) goto done;
        out->data = ab_alloc(ab_size_mul((size_t)out->n, (size_t)as));
        if (!out->data) {
            rc = ab_fail(AB_E_NOMEM, "'%s': cannot allocate %lld elements", path,
                         (long long)out->n);
            goto done;
        }
        hid_t mem = as == AB_DT_U8    ? H5T_NATIVE_UCHAR
                    : as == AB_DT_F32 ? H5T_NATIVE_FLOAT
                                      : H5T_NATIVE_DOUBLE;
        if ((rc = ab_h5_get(&f, name, mem, out->data))) goto done;
        for (int64_t i = 0; as == AB_DT_U8 && i < out->n; i++) /* a mask: 0, 1, or 2 */
            if (((unsigned char *)out->data)[i] > 1) ((unsigned char *)out->data)[i] = 2;
    }
    rc = AB_OK;
done:
    if (sp >= 0) H5Sclose(sp);
    if (ty >= 0) H5Tclose(ty);
    if (d >= 0) H5Dclose(d);
    ab_h5_close(&f);
    if (rc) ab_array_free(out);
    return rc;
}

int ab_h5_array_exists(const char *path, const char *dataset, int *has)
{
    struct ab_h5 f = {0};
    *has = 0;
    int rc = ab_h5_open(&f, path);
    if (rc) return rc;
    *has = ab_h5_exists(&f, dataset);
    ab_h5_close(&f);
    return AB_OK;
}
