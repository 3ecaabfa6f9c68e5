// ops_main: the op harness's command line.
//   ops_check [check|--perf] [-o OP] [-b BACKEND] [--list] [--seconds S]
// check (default) exits 0 when every row passes, 1 otherwise; a backend that
// cannot run here (cuda built without CUDA or without a GPU) is reported as
// SKIPPED on one line each and does not fail the run; 77 when -b selected
// only such backends. Unknown options or op / backend names: one line, exit 2.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_harness.h"
#include "ops_ops.h"

static const ops_op *const OPS[] = {
    &ops_cast, &ops_add, &ops_swiglu, &ops_rmsnorm, &ops_embedding, &ops_matmul,
    &ops_rope, &ops_xent, &ops_logits_row, &ops_grad_norm, &ops_adamw, &ops_attn,
#ifdef STRETCH_HAVE_CUDA
    &ops_cu_axpy, &ops_cu_xent_chunked,
#endif
};
enum { N_OPS = sizeof OPS / sizeof *OPS };

static void usage(FILE *f) {
    fprintf(f, "usage: ops_check [check|--perf] [-o OP] [-b cpu|cuda|cuda-f32|cuda-bf16] "
               "[--seconds S] [--list]\nops:");
    for (int i = 0; i < N_OPS; i++) fprintf(f, " %s", OPS[i]->name);
    fprintf(f, "\n");
}

static bool be_selected(const char *filter, const char *name) {
    return !filter || !strcmp(filter, name) || (!strcmp(filter, "cuda") && !strncmp(name, "cuda", 4));
}

int main(int argc, char **argv) {
    ops_ctx x = {.perf_seconds = 0.2};
    bool list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "check")) x.perf = false;
        else if (!strcmp(a, "--perf") || !strcmp(a, "perf")) x.perf = true;
        else if (!strcmp(a, "--list")) list = true;
        else if ((!strcmp(a, "-o") || !strcmp(a, "-b") || !strcmp(a, "--seconds")) &&
                 i + 1 < argc) {
            const char *v = argv[++i];
            if (a[1] == 'o') x.op_filter = v;
            else if (a[1] == 'b') x.be_filter = v;
            else x.perf_seconds = atof(v);
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ops_check: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (x.op_filter) {
        int found = 0;
        for (int i = 0; i < N_OPS; i++) found |= !strcmp(OPS[i]->name, x.op_filter);
        if (!found) {
            fprintf(stderr, "ops_check: -o %s: no such op (--list names them)\n", x.op_filter);
            return 2;
        }
    }
    const char *names[] = {"cpu", "cuda", "cuda-f32", "cuda-bf16"};
    if (x.be_filter) {
        int found = 0;
        for (int i = 0; i < 4; i++) found |= !strcmp(names[i], x.be_filter);
        if (!found) {
            fprintf(stderr, "ops_check: -b %s: no such backend (cpu, cuda, cuda-f32, cuda-bf16)\n",
                    x.be_filter);
            return 2;
        }
    }
    if (list) {
        for (int i = 0; i < N_OPS; i++)
            printf("%-18s %3d check cases, %d perf cases\n", OPS[i]->name, OPS[i]->n_cases,
                   OPS[i]->n_perf);
        return 0;
    }

    // Columns: the cpu is always created (it is the reference of the others).
    static ops_backend cpu = {.name = "cpu", .dt = BK_F32, .is_ref = true};
    cpu.b = backend_cpu();
    x.cpu = &cpu;
    x.cpu_selected = be_selected(x.be_filter, "cpu");
    if (x.cpu_selected) x.be[x.n_be++] = cpu;
    char skipped[64] = "", skip_why[256] = "";
    const struct { const char *name; bk_dtype dt; } cu[2] = {{"cuda-f32", BK_F32},
                                                            {"cuda-bf16", BK_BF16}};
    for (int k = 0; k < 2; k++) {
        if (!be_selected(x.be_filter, cu[k].name)) continue;
        char err[256];
        backend *b = backend_create(BACKEND_CUDA, cu[k].dt, 0, err, sizeof err);
        if (!b) {
            printf("backend %-9s SKIPPED: %s\n", cu[k].name, err);
            snprintf(skipped + strlen(skipped), sizeof skipped - strlen(skipped), " %s",
                     cu[k].name);
            snprintf(skip_why, sizeof skip_why, "%s", err);
            continue;
        }
        x.be[x.n_be++] = (ops_backend){.name = cu[k].name, .b = b, .dt = cu[k].dt};
    }
    if (x.n_be == 0) {  // -b named only backends that cannot run here
        printf("ops_check: no selected backend can run here: skipped\n");
        return 77;
    }
    printf("ops_check %s: backends", x.perf ? "--perf" : "check");
    for (int i = 0; i < x.n_be; i++) printf(" %s", x.be[i].name);
    printf(" (reference: cpu, float64 references for the cpu column)\n");
    if (x.perf)
        printf("%-10s %-36s %-9s %-10s %14s %13s %15s\n", "op", "case", "backend", "part",
               "time/call", "bandwidth", "compute");
    else
        printf("%-10s %-36s %-9s %-26s %-5s %10s %9s  %s\n", "op", "case", "backend", "tensor",
               "metric", "err", "tol", "result");

    for (int i = 0; i < N_OPS; i++) {
        const ops_op *op = OPS[i];
        if (x.op_filter && strcmp(op->name, x.op_filter)) continue;
        x.op = op->name;
        int n = x.perf ? op->n_perf : op->n_cases;
        if (!x.perf && !strncmp(op->name, "cu_", 3)) {
            bool any = false;
            for (int k = 0; k < x.n_be; k++) any |= !x.be[k].is_ref;
            if (!any) {
                printf("%-10s SKIPPED: a kernels/cuda entry point, cuda columns only\n", op->name);
                continue;
            }
        }
        for (int c = 0; c < n; c++) {
            if (x.perf) {
                for (int k = 0; k < x.n_be; k++) op->perf(&x, &x.be[k], c);
            } else {
                op->check(&x, c);
            }
        }
        fflush(stdout);
    }
    for (int k = 0; k < x.n_be; k++) backend_free(x.be[k].b);
    if (x.perf) return 0;
    printf("ops_check: %d checks, %d failure(s)\n", x.checks, x.failures);
    if (*skipped)
        printf("ops_check: NOT CHECKED, backends SKIPPED:%s (%s)\n", skipped, skip_why);
    return x.failures ? 1 : 0;
}
