// train_outdir: see train_outdir.h.
#include "train_outdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_dir.h"
#include "ckpt_fslock.h"
#include "ckpt_lock.h"
#include "train.h"

static char locked_dir[1024];

static void release_at_exit(void) { ckpt_lock_release(locked_dir); }

void train_outdir_claim(train_state *st) {
    const char *dir = st->cfg.train.out_dir;
    struct {
        int rc;
        int locking;
        char msg[1000];
    } r = {0};
    if (st->is_root) {
        r.rc = ckpt_lock_acquire(dir, stderr, r.msg, sizeof r.msg);
        if (r.rc == 0) {
            snprintf(locked_dir, sizeof locked_dir, "%s", dir);
            atexit(release_at_exit);
            char err[600];
            if (ckpt_dir_remove_tmps(dir, err, sizeof err) != 0)
                fprintf(stderr, "stretch: warning: %s\n", err);
            r.locking = ckpt_fslock_decide(dir, st->cfg.train.hdf5_file_locking, r.msg, sizeof r.msg);
            printf("HDF5 file locking %s\n", r.msg);
        }
    }
    dist_bcast_bytes(&st->dist, &r, sizeof r, 0);
    if (r.rc != 0) dist_exit_user_error(&st->dist, r.msg);
    ckpt_fslock_apply(r.locking != 0);
}
