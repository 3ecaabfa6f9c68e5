// ckpt_shard: every rank writes its slices into one checkpoint. See ckpt_shard.h.
#include "ckpt_shard.h"

#include <hdf5.h>
#include <stdio.h>

#include "errmsg.h"

// The flat range [a, b) of a (rows, cols) tensor as a union of at most three
// hyperslabs: the tail of a row, whole rows, the head of a row.
static herr_t select_range(hid_t space, int64_t a, int64_t b, int64_t cols, int rank) {
    if (H5Sselect_none(space) < 0) return -1;
    if (rank == 1) {  // a vector: the range itself
        hsize_t start = (hsize_t)a, count = (hsize_t)(b - a);
        return b > a ? H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL) : 0;
    }
    while (a < b) {
        int64_t r = a / cols, c = a % cols, len;
        hsize_t start[2], count[2];
        if (c != 0 || b - a < cols) {  // part of one row
            len = (cols - c < b - a) ? cols - c : b - a;
            start[0] = (hsize_t)r, start[1] = (hsize_t)c, count[0] = 1, count[1] = (hsize_t)len;
        } else {  // whole rows
            int64_t rows = (b - a) / cols;
            len = rows * cols;
            start[0] = (hsize_t)r, start[1] = 0, count[0] = (hsize_t)rows, count[1] = (hsize_t)cols;
        }
        if (H5Sselect_hyperslab(space, H5S_SELECT_OR, start, NULL, count, NULL) < 0) return -1;
        a += len;
    }
    return 0;
}

int ckpt_shard_write(MPI_Comm comm, const char *tmp_path, const ckpt_shard_tensor *tensors,
                     int n_tensors, const ckpt_shard_family *families, int n_families, char *err,
                     size_t errlen) {
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = 0;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), dxpl = H5Pcreate(H5P_DATASET_XFER), file = -1;
    if (fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0 &&
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0)
        file = H5Fopen(tmp_path, H5F_ACC_RDWR, fapl);
    // Filtered (checksummed) datasets take collective writes only.
    if (file < 0 || dxpl < 0 || H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
        errmsg(err, errlen, "checkpoint %s: cannot open for the sharded write", tmp_path);
        rc = -1;
    }
    char name[256];
    for (int f = 0; rc == 0 && f < n_families; f++) {
        const ckpt_shard_family *F = &families[f];
        for (int i = 0; rc == 0 && i < n_tensors; i++) {
            const ckpt_shard_tensor *t = &tensors[i];
            int64_t a = t->offset, b = t->offset + t->rows * t->cols;
            if (a < F->lo) a = F->lo;
            if (b > F->hi) b = F->hi;
            if (b < a) b = a;
            snprintf(name, sizeof name, "%s/%s", F->group, t->name);
            hid_t dset = H5Dopen2(file, name, H5P_DEFAULT), fspace = -1, mspace = -1;
            hsize_t n = (hsize_t)(b - a), one = 1;
            if (dset >= 0) fspace = H5Dget_space(dset);
            mspace = H5Screate_simple(1, n ? &n : &one, NULL);
            herr_t st = -1;
            if (fspace >= 0 && mspace >= 0 &&
                select_range(fspace, a - t->offset, b - t->offset, t->cols, t->cols == 1 ? 1 : 2) >= 0 &&
                (n > 0 || H5Sselect_none(mspace) >= 0))
                // Every rank calls the collective write, with an empty
                // selection when it owns none of this tensor.
                st = H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, F->data + (a - F->lo));
            if (mspace >= 0) H5Sclose(mspace);
            if (fspace >= 0) H5Sclose(fspace);
            if (dset >= 0 && H5Dclose(dset) < 0) st = -1;
            if (st < 0) {
                errmsg(err, errlen, "checkpoint %s: sharded write of %s failed", tmp_path, name);
                rc = -1;
            }
        }
    }
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0) {
        errmsg(err, errlen, "checkpoint %s: cannot close after the sharded write", tmp_path);
        rc = -1;
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    if (fapl >= 0) H5Pclose(fapl);
    H5Eset_auto2(H5E_DEFAULT, func, data);
    return rc;
}
