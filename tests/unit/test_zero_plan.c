// zero_plan (trainer/parallel/zero_plan.h): the --dry-run memory plan per
// shard / offload mode.
//  - every shard mode (none, optimizer, gradients, parameters) x every
//    offload (none, optimizer, activations, both), fp32 and bf16: the plan
//    is the allocation to the byte: a backend that counts what
//    train_step_model_create and train_step_setup hold (device-style:
//    everything through the backend, frees subtracted; pinned host memory
//    apart) agrees with zero_mem_plan on 1 and 4 ranks, on every rank;
//  - the formulas of docs/distributed.md, by hand, for ZeRO-3 and offload,
//    and the pinned-memory refusal (ZeRO-3: the slice's master, not all);
//  - the targets: Llama-2-7B dp 2 x sp 8 at 128K with shard
//    parameters <= 40 GB, Llama-3.1-8B at 128K on 8 ranks <= 70 GB, 135M at
//    1M tokens with activation offload <= 60 GB of device memory (printed).
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "train.h"
#include "train_step.h"
#include "zero_plan.h"

static model_config tiny_config(void) {
    model_config c = {.dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                      .ffn_dim = 48, .vocab_size = 23, .norm_eps = 1e-5f,
                      .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default(8);
    c.rope.max_position_embeddings = 32;
    return c;
}

// Bytes held through the counting backend (each block's size in a header).
static size_t counted;
enum { HEADER = 16 };
static void *count_alloc(backend *b, size_t bytes) {
    (void)b;
    counted += bytes;
    char *p = calloc(bytes + HEADER, 1);
    *(size_t *)p = bytes;
    return p + HEADER;
}
static void count_free(backend *b, void *p) {
    (void)b;
    if (!p) return;
    char *h = (char *)p - HEADER;
    counted -= *(size_t *)h;
    free(h);
}

static size_t counted_host;
static void *count_host_alloc(backend *b, size_t bytes) {
    counted_host += bytes;
    return calloc(bytes ? bytes : 1, 1);
}

static void test_plan_is_the_allocation(void **state) {
    (void)state;
    backend_ops ops = *backend_cpu()->op;
    ops.alloc = count_alloc;
    ops.free = count_free;
    ops.host_alloc = count_host_alloc;
    static const cfg_offload offloads[] = {CFG_OFFLOAD_NONE, CFG_OFFLOAD_OPTIMIZER,
                                           CFG_OFFLOAD_ACTIVATIONS, CFG_OFFLOAD_BOTH};
    for (int tied = 0; tied < 2; tied++)  // tied: ZeRO-3's third unit buffer
    for (int bf16 = 0; bf16 < 2; bf16++)
    for (int off = 0; off < 4; off++)
    for (int mode = SHARD_NONE; mode <= SHARD_PARAMETERS; mode++) {
        const bk_dtype dt = bf16 ? BK_BF16 : BK_F32;
        backend counting = {.kind = BACKEND_CPU, .dt = dt, .host_memory = false, .op = &ops};
        for (int world = 1; world <= 4; world += 3) {
            for (int rank = 0; rank < world; rank++) {
                model_config cfg = tiny_config();
                cfg.tie_embeddings = tied;
                counted = counted_host = 0;
                train_state *st = calloc(1, sizeof *st);
                st->cfg.parallel.shard = (cfg_shard)mode;
                st->cfg.parallel.offload = offloads[off];
                st->cfg.train.recompute = true;
                st->dist.size = world;
                st->dist.rank = rank;
                st->bk = &counting;
                st->m = train_step_model_create(st, &cfg, 24);
                train_step_setup(st);
                zero_mem z;
                zero_mem_plan(&z, &cfg, 24, true, dt, true, (shard_mode)mode, off, world);
                assert_true(z.built);
                // The plan is per rank at its largest (rank 0's slice is
                // never shorter than another's); the last rank may own less,
                // in bytes per element: the moments (8; on the host with the
                // gradient slice, 4, when the optimizer is offloaded), and
                // under ZeRO-3 the gradients (4), the master weights (4; on
                // the host when offloaded) and the working weights (bf16: 2;
                // fp32: the master, or a device fp32 copy of it when the
                // master is on the host).
                const size_t short_by = (size_t)(z.shard - shard_len(&st->shard));
                const bool host_opt = offloads[off] == CFG_OFFLOAD_OPTIMIZER || offloads[off] == CFG_OFFLOAD_BOTH;
                const bool z3 = mode == SHARD_PARAMETERS;
                size_t dev_per = host_opt ? 0 : 8, host_per = host_opt ? 12 : 0;
                if (z3) {
                    dev_per += 4 + (bf16 ? 2 : 0) + (host_opt && bf16 ? 0 : 4);
                    host_per += host_opt ? 4 : 0;
                }
                assert_int_equal(counted + dev_per * short_by, z.device_total - z.scratch);
                assert_int_equal(counted_host + host_per * short_by, z.host_total);
                if (z3 && world > 1) {  // the slice and two units, not the whole
                    assert_true(z.gather > 0);
                    assert_int_equal(host_opt ? z.host_params : z.params, sizeof(float) * (size_t)z.shard);
                    assert_int_equal(z.work, (bf16 ? 2 : host_opt ? 4 : 0) * (size_t)z.shard);
                }
                if (host_opt)  // no fp32 master on the device (fp32: the working weights only)
                    assert_int_equal(z.params, 0);
                train_step_free(st);
                model_free(st->m);
                assert_int_equal(counted, 0);  // everything given back
                free(st);
            }
        }
    }
}

static void test_formulas(void **state) {
    (void)state;
    model_config cfg = tiny_config();
    int n_tensors;
    int64_t n;
    free(model_param_layout(&cfg, &n_tensors, &n));
    const int64_t C = 32, F = 48, V = 23, H = 4, Hkv = 2, D = 8;
    const int64_t layer = 2 * C + C * H * D * 2 + 2 * C * Hkv * D + 3 * C * F;
    const int64_t unit = layer > V * C ? layer : V * C, s = (n + 3) / 4;
    zero_mem none, z3, off;
    zero_mem_plan(&none, &cfg, 24, true, BK_BF16, true, SHARD_NONE, 0, 4);
    zero_mem_plan(&z3, &cfg, 24, true, BK_BF16, true, SHARD_PARAMETERS, 0, 4);
    assert_true(z3.built);
    assert_int_equal(none.params, 4 * n);
    assert_int_equal(none.moments, 8 * n);
    assert_int_equal(none.work, 2 * n);
    assert_int_equal(z3.params, 4 * s);
    assert_int_equal(z3.grads, 4 * (s + 2 * unit));  // the slice + two unit buffers
    assert_int_equal(z3.moments, 8 * s);
    assert_int_equal(z3.work, 2 * s);
    assert_int_equal(z3.gather, 2 * 2 * unit);
    assert_int_equal(z3.activations, none.activations);
    // Tied: the head's unit is the final norm alone (the LM head is the
    // embedding, gathered as a unit of its own); at the forward -> backward
    // turn the last layer is held with both: three unit buffers on a
    // device, two units and the final norm resident on the cpu.
    model_config tied = cfg;
    tied.tie_embeddings = true;
    const int64_t tunit = layer > V * C ? layer : V * C;
    zero_mem t3;
    zero_mem_plan(&t3, &tied, 24, true, BK_BF16, true, SHARD_PARAMETERS, 0, 4);
    assert_int_equal(t3.gather, 3 * 2 * tunit);
    zero_mem_plan(&t3, &tied, 24, true, BK_F32, false, SHARD_PARAMETERS, 0, 4);
    assert_int_equal(t3.gather, 4 * (2 * tunit + C));
    zero_mem_plan(&off, &cfg, 24, true, BK_BF16, true, SHARD_PARAMETERS,
                  ZERO_OFFLOAD_OPTIMIZER | ZERO_OFFLOAD_ACTIVATIONS, 4);
    assert_int_equal(off.params + off.moments, 0);
    assert_int_equal(off.host_params, 4 * s);
    assert_int_equal(off.host_moments, 8 * s);
    assert_int_equal(off.host_grads, 4 * s);
    const size_t resid = 2 * 24 * C;  // one residual checkpoint, bf16
    // L + 1 = 3 checkpoints: two slots on the device, L - 1 = 1 on the host
    assert_int_equal(off.host_activations, 1 * resid);
    assert_int_equal(off.activations, none.activations - 1 * resid);
    assert_true(off.built);
    assert_int_equal(off.grads, 4 * (s + 2 * unit));  // the device keeps ZeRO-3's gradients
    assert_int_equal(off.work, 2 * s);                // and the slice of the working weights
    assert_int_equal(off.gather, 2 * 2 * unit);
    assert_int_equal(off.device_total, off.grads + off.work + off.gather + off.activations + off.scratch);
    assert_int_equal(off.host_total, 16 * s + 1 * resid);  // the slice's master, not the whole
    zero_mem_plan(&off, &cfg, 24, true, BK_F32, true, SHARD_PARAMETERS, ZERO_OFFLOAD_OPTIMIZER, 4);
    assert_int_equal(off.work, 4 * s);  // fp32: the working weights are a device fp32 slice
    assert_int_equal(off.params + off.moments, 0);
    zero_mem_plan(&off, &cfg, 24, true, BK_BF16, true, SHARD_GRADIENTS, ZERO_OFFLOAD_OPTIMIZER, 4);
    assert_true(off.built);
    assert_int_equal(off.params + off.moments, 0);
    assert_int_equal(off.host_params, 4 * n);
    assert_int_equal(off.host_moments, 8 * s);
    assert_int_equal(off.host_grads, 4 * s);
    assert_int_equal(off.work, 2 * n);
    zero_mem_plan(&off, &cfg, 24, true, BK_F32, true, SHARD_NONE, ZERO_OFFLOAD_OPTIMIZER, 1);
    assert_int_equal(off.work, 4 * n);  // fp32: the working weights are the device's fp32 copy
    zero_mem_plan(&off, &cfg, 24, true, BK_F32, false, SHARD_NONE, ZERO_OFFLOAD_ACTIVATIONS, 1);
    assert_false(off.built);  // offload on the cpu backend: refused
}

// The pinned-memory refusal: the plan's host total per rank times the ranks
// of a node against MemAvailable (one line naming the numbers); no offload,
// or an unknown MemAvailable (-1), is never refused.
static void test_host_check(void **state) {
    (void)state;
    model_config cfg = tiny_config();
    cfg_run c;
    memset(&c, 0, sizeof c);
    c.train.backend = CFG_BACKEND_CUDA;
    c.train.dtype = CFG_DTYPE_BF16;
    c.train.recompute = true;
    c.parallel.dp = 1;
    c.parallel.sp = 1;
    c.parallel.ring = 1;
    c.parallel.ulysses = 1;
    c.parallel.offload = CFG_OFFLOAD_BOTH;
    zero_mem z;
    zero_mem_plan(&z, &cfg, 24, true, BK_BF16, true, SHARD_NONE,
                  ZERO_OFFLOAD_OPTIMIZER | ZERO_OFFLOAD_ACTIVATIONS, 1);
    char err[512] = "";
    const int64_t need = (int64_t)z.host_total;
    assert_int_equal(train_offload_host_check(&c, &cfg, 24, 4, 4 * need, err, sizeof err), 0);
    assert_int_equal(train_offload_host_check(&c, &cfg, 24, 4, 4 * need - 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "parallel.offload: both needs"));
    assert_non_null(strstr(err, "(4 rank(s) on this node"));
    assert_non_null(strstr(err, "MemAvailable"));
    assert_int_equal(train_offload_host_check(&c, &cfg, 24, 4, -1, err, sizeof err), 0);
    // ZeRO-3 on 4 ranks of one node: each pins its slice's master, moments
    // and gradients (16 s) and its checkpoints, by hand.
    int n_tensors;
    int64_t n;
    free(model_param_layout(&cfg, &n_tensors, &n));
    const int64_t s = (n + 3) / 4, z3_need = 16 * s + 2 * 24 * 32 * (cfg.n_layers - 1);
    c.parallel.dp = 4;
    c.parallel.shard = CFG_SHARD_PARAMETERS;
    assert_int_equal(train_offload_host_check(&c, &cfg, 24, 4, 4 * z3_need, err, sizeof err), 0);
    assert_int_equal(train_offload_host_check(&c, &cfg, 24, 4, 4 * z3_need - 1, err, sizeof err), -1);
    assert_true(z3_need < need);
    c.parallel.offload = CFG_OFFLOAD_NONE;
    assert_int_equal(train_offload_host_check(&c, &cfg, 24, 4, 0, err, sizeof err), 0);
}

static model_config llama(int64_t dim, int layers, int heads, int kv, int64_t ffn, int vocab) {
    model_config c = {.dim = (int)dim, .n_layers = layers, .n_heads = heads, .n_kv_heads = kv,
                      .head_dim = (int)(dim / heads), .ffn_dim = (int)ffn, .vocab_size = vocab,
                      .norm_eps = 1e-5f, .rope_layout = ROPE_LAYOUT_HALF};
    c.rope = rope_config_default((int)(dim / heads));
    return c;
}

static void test_targets(void **state) {
    (void)state;
    zero_mem z;
    // Llama-2-7B, dp 2 x sp 8 at 128K: 16K tokens per rank.
    model_config l2 = llama(4096, 32, 32, 32, 11008, 32000);
    zero_mem_plan(&z, &l2, 16384, true, BK_BF16, true, SHARD_PARAMETERS, 0, 16);
    printf("  Llama-2-7B dp2 x sp8, 128K, shard parameters: %.2f GB per rank\n", z.device_total / 1e9);
    assert_true(z.device_total <= 40e9);
    // Llama-3.1-8B at 128K on 8 ranks (sp 8): 16K tokens per micro-batch.
    model_config l3 = llama(4096, 32, 32, 8, 14336, 128256);
    zero_mem_plan(&z, &l3, 16384, true, BK_BF16, true, SHARD_PARAMETERS, 0, 8);
    printf("  Llama-3.1-8B sp8, 128K, shard parameters: %.2f GB per rank\n", z.device_total / 1e9);
    assert_true(z.device_total <= 70e9);
    zero_mem_plan(&z, &l3, 16384, true, BK_BF16, true, SHARD_GRADIENTS, 0, 8);
    printf("  Llama-3.1-8B sp8, 128K, shard gradients (built): %.2f GB per rank\n", z.device_total / 1e9);
    // 135M (SmolLM shape) at 1M tokens on one GPU, activation offload.
    model_config s = llama(576, 30, 9, 3, 1536, 49152);
    s.tie_embeddings = true;
    zero_mem_plan(&z, &s, 1 << 20, true, BK_BF16, true, SHARD_NONE, 0, 1);
    double before = z.device_total / 1e9;
    zero_mem_plan(&z, &s, 1 << 20, true, BK_BF16, true, SHARD_NONE, ZERO_OFFLOAD_ACTIVATIONS, 1);
    printf("  135M, 1M tokens: %.2f GB -> %.2f GB device with activation offload (+%.2f GB host)\n",
           before, z.device_total / 1e9, z.host_total / 1e9);
    assert_true(z.device_total <= 60e9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_is_the_allocation),
        cmocka_unit_test(test_formulas),
        cmocka_unit_test(test_host_check),
        cmocka_unit_test(test_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
