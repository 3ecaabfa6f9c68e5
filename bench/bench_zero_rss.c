// bench_zero_rss: measured peak resident memory per rank of training steps
// under each parallel.shard mode (trainer/parallel/zero_shard.h), against
// the parameter + gradient + AdamW bytes of the model (16 bytes a
// parameter). bench/zero.sh runs it under mpirun with 4 ranks.
//
//   mpirun -n 4 bench_zero_rss [--dim C --layers L --ffn F --vocab V --seq T --steps S]
//                              [--from MODE]   (modes from MODE on; ratio_first: vs that one)
//
// Each mode runs in turn in the same processes: model created, one step
// (ZeRO-3 gives back the weights it does not own, written whole by the
// initialisation), then the peak resident set is reset (/proc/self/
// clear_refs, 5) and S more steps run; the reported peak is VmHWM minus the
// resident set before the model existed. Activations are kept small (one
// row of T tokens) so the state dominates. Prints, per mode, the worst rank:
//   zero mode=parameters ranks=4 params=... state_MB=... peak_MB=... ratio=...
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_comm.h"
#include "dist.h"
#include "model.h"
#include "model_sp_attn.h"
#include "zero_shard.h"

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) v = atol(line + n + 1);
    if (f) fclose(f);
    return v;
}

static void reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

int main(int argc, char **argv) {
    dist_ctx d;
    dist_init(&d, &argc, &argv);
    int C = 512, L = 8, F = 1536, V = 8192, T = 64, steps = 3, first = SHARD_NONE;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--dim")) C = v;
        else if (!strcmp(argv[i], "--layers")) L = v;
        else if (!strcmp(argv[i], "--ffn")) F = v;
        else if (!strcmp(argv[i], "--vocab")) V = v;
        else if (!strcmp(argv[i], "--seq")) T = v;
        else if (!strcmp(argv[i], "--steps")) steps = v;
        else if (!strcmp(argv[i], "--from"))  // first mode: none, optimizer, gradients, parameters
            for (int k = SHARD_NONE; k <= SHARD_PARAMETERS; k++)
                if (!strcmp(argv[i + 1], shard_mode_name((shard_mode)k))) first = k;
    }
    char err[256];
    if (dist_init_grid(&d, d.size, 1, err, sizeof err) != 0) dist_exit_user_error(&d, err);
    model_config cfg = {.dim = C, .n_layers = L, .n_heads = 8, .n_kv_heads = 8, .head_dim = C / 8,
                        .ffn_dim = F, .vocab_size = V, .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    cfg.rope = rope_config_default(C / 8);
    cfg.rope.max_position_embeddings = T;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T * 4);
    for (int i = 0; i < T; i++) {
        tok[i] = (i * 7 + d.rank) % V;                    // tokens
        tok[T + i] = i + 1 < T ? (i * 7 + 7 + d.rank) % V : -1;  // targets
        tok[2 * T + i] = i;                               // positions
        tok[3 * T + i] = 0;                               // one document
    }
    model_batch mb = {.B = 1, .T = T, .tokens = tok, .targets = tok + T, .pos = tok + 2 * T, .seg = tok + 3 * T};
    adamw_hparams hp = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double none_mb = 0;
    for (int mode = first; mode <= SHARD_PARAMETERS; mode++) {
        dist_barrier(&d);
        long base = status_kb("VmRSS:");
        model *m = model_create(&cfg, T, true);
        model_init_weights(m, 1);
        backend_comm *comm = backend_comm_create(backend_cpu(), &d, 0, err, sizeof err);
        shard_layout s;
        shard_layout_init(&s, (shard_mode)mode, d.size, d.rank, m->tensors, m->n_tensors, m->n_params);
        float *mom = calloc((size_t)shard_len(&s) + 1, sizeof(float));
        float *var = calloc((size_t)shard_len(&s) + 1, sizeof(float));
        shard_step_ctx c = {.m = m, .comm = comm, .d = &d, .s = &s, .adam_m = mom, .adam_v = var};
        double norm;
        shard_step(&c, &mb, (T - 1) * (int64_t)d.size, &hp, 1.0, 1, &norm, NULL);
        reset_peak();
        for (int st = 0; st < steps; st++) shard_step(&c, &mb, (T - 1) * (int64_t)d.size, &hp, 1.0, 2 + st, &norm, NULL);
        double peak = (status_kb("VmHWM:") - base) / 1024.0;
        if (getenv("ZERO_RSS_DETAIL"))
            fprintf(stderr, "[rank %d] base %ld kB, now: RssAnon %ld RssShmem %ld RssFile %ld kB, peak %ld kB\n",
                    d.rank, base, status_kb("RssAnon:"), status_kb("RssShmem:"), status_kb("RssFile:"),
                    status_kb("VmHWM:"));
        double worst = peak;
        MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_DOUBLE, MPI_MAX, d.world);
        double state = 16.0 * (double)m->n_params / (1024.0 * 1024.0);
        if (mode == first) none_mb = worst;
        if (d.rank == 0)
            printf("zero mode=%s ranks=%d params=%lld state_MB=%.1f peak_MB=%.1f ratio_state=%.3f "
                   "ratio_first=%.3f\n",
                   shard_mode_name((shard_mode)mode), d.size, (long long)m->n_params, state, worst,
                   worst / state, worst / none_mb);
        fflush(stdout);
        free(mom);
        free(var);
        shard_layout_free(&s);
        backend_comm_free(comm);
        model_free(m);
    }
    free(tok);
    dist_finalize(&d);
    return 0;
}
