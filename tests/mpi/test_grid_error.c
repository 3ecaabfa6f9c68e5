// A run file asking for a grid that does not match the rank count: every
// rank prints the one-line error and the job exits 2 (run and checked by
// test_grid_error.sh). A valid grid is set up first and checked.
#include <stdio.h>
#include <stdlib.h>

#include "die.h"
#include "dist.h"

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    char err[256];
    // The valid grid dp = 1 x sp = size: ranks of one ring are consecutive.
    if (dist_init_grid(&d, 1, d.size, err, sizeof err) != 0) die("valid grid refused: %s", err);
    CHECK(d.sp_rank == d.rank && d.dp_rank == 0);
    // parallel.dp 2 x parallel.sp 3 = 6 never matches 1, 2 or 4 ranks.
    if (dist_init_grid(&d, 2, 3, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    fprintf(stderr, "[rank %d] a 2 x 3 grid was accepted on %d ranks\n", d.rank, d.size);
    dist_finalize(&d);
    return 1;
}
