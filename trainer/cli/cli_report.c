// cli_report: `stretch report RUN_DIR [--out report.html]`: the HTML run
// report (trainer/report/report.h), by default RUN_DIR/report.html. Safe to
// run while the run trains. Exit 2 with one line on a bad option or a
// directory that is not a run.
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "report.h"

static int usage(FILE *out, int status) {
    fprintf(out,
            "usage: stretch report RUN_DIR [--out report.html]\n"
            "  one self-contained HTML page (inline SVG, no scripts, no network) about a run:\n"
            "  loss, lr, tokens/s and grad norm over steps with the stages' RoPE marked, passkey\n"
            "  heatmaps per stage, perplexity vs length from RUN_DIR/*/ppl.csv, the memory estimate\n"
            "  per rank and the run config. Default output: RUN_DIR/report.html.\n");
    return status;
}

int cli_report(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        if (!strcmp(argv[i], "--out")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "stretch: error: report: option --out needs a value\n");
                return 2;
            }
            out = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "stretch: error: report: unknown option %s\n", argv[i]);
            return 2;
        } else if (dir) {
            fprintf(stderr, "stretch: error: report: one run directory only (got %s and %s)\n", dir, argv[i]);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        fprintf(stderr, "stretch: error: report: RUN_DIR is required (stretch report --help)\n");
        return 2;
    }
    char path[2048], err[2048];
    if (!out) snprintf(path, sizeof path, "%s/report.html", dir), out = path;
    if (report_write(dir, out, err, sizeof err) != 0) {
        fprintf(stderr, "stretch: error: %s\n", err);
        return 2;
    }
    printf("wrote %s\n", out);
    return 0;
}
