// cli_inspect: `stretch inspect CKPT.h5`: a checkpoint's attributes and
// tensors, after verifying every checksum.
#include <stdio.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"

int cli_inspect(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: stretch inspect CKPT.h5\n");
        return argc == 2 ? 0 : 2;
    }
    char err[1024];
    if (ckpt_verify(argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    if (ckpt_print_summary(argv[1], stdout, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    return 0;
}
