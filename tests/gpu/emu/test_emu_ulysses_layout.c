// test_emu_ulysses_layout: the layout steps of the GPU Ulysses attention
// (trainer/parallel/ulysses_layout_cuda.c) on the EMULATED GPU, U ranks in
// one process: each simulated rank packs its tensor, the all-to-all is done
// by copies (recv block i of rank m = send block m of rank i), each rank
// unpacks; every element is checked against the layout written out index by
// index (ulysses.h: u rank j holds query heads [j H/U, (j+1) H/U), kv heads
// from ulysses_kv_head_lo, ring-local rows [i TL, (i+1) TL) came from u rank i).
//   heads:  seq -> head layout, bit for bit (q with H heads, k/v with Hkv);
//   back:   head -> seq layout (pack_heads + unpack_seq) is the identity;
//   add:    pack_heads + unpack_seq_add adds every replica's gradient once
//           (small integers: exact in bf16 and fp32);
//   seg:    the segment ids' all-gather by all-to-all.
// Cases: MHA, kv heads split (Hkv >= U), kv heads replicated (U / Hkv = 2, 4),
// fp32 and bf16, B = 2 sequences, odd TL.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "die.h"
#include "ulysses.h"
#include "ulysses_layout.h"

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { if (failures++ < 20) { printf("FAIL: " __VA_ARGS__); printf("\n"); } } } while (0)

enum { MAXU = 4 };

typedef struct {
    int U, H, Hkv, D;
    int64_t B, TL;
} layout_case;

// Element e of a tensor as raw bits (es 2 or 4 bytes); values set as bits
// are moved, never interpreted, by the copies.
static uint32_t get_bits(const unsigned char *p, int64_t e, size_t es) {
    if (es == 2) {
        uint16_t v;
        memcpy(&v, p + e * 2, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, p + e * 4, 4);
    return v;
}

static void set_bits(unsigned char *p, int64_t e, size_t es, uint32_t v) {
    if (es == 2) {
        uint16_t w = (uint16_t)v;
        memcpy(p + e * 2, &w, 2);
    } else {
        memcpy(p + e * 4, &v, 4);
    }
}

// A small integer as fp32 or bf16 bits (exact in both).
static uint32_t int_bits(int v, size_t es) {
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    return es == 2 ? u >> 16 : u;
}

static int bits_int(uint32_t b, size_t es) {
    uint32_t u = es == 2 ? b << 16 : b;
    float f;
    memcpy(&f, &u, 4);
    return (int)f;
}

// The all-to-all of U ranks by copies: recv[m] block i = send[i] block m.
static void exchange(backend *bk, void **recv, void *const *send, int U, size_t block_bytes) {
    unsigned char *h = malloc(block_bytes * (size_t)U * (size_t)U);
    for (int i = 0; i < U; i++) bk->op->to_host(bk, h + (size_t)i * U * block_bytes, send[i], block_bytes * (size_t)U);
    unsigned char *r = malloc(block_bytes * (size_t)U);
    for (int m = 0; m < U; m++) {
        for (int i = 0; i < U; i++)
            memcpy(r + (size_t)i * block_bytes, h + ((size_t)i * U + (size_t)m) * block_bytes, block_bytes);
        bk->op->to_dev(bk, recv[m], r, block_bytes * (size_t)U);
    }
    free(r);
    free(h);
}

static void check_tensor(backend *bk, const layout_case *c, int heads, const char *what) {
    const int U = c->U;
    const size_t es = bk_dtype_size(bk->dt);
    void *st = backend_cuda_stream(bk);
    ulysses_layout l[MAXU];
    for (int m = 0; m < U; m++)
        l[m] = (ulysses_layout){.U = U, .me = m, .B = c->B, .TL = c->TL, .TG = U * c->TL, .H = c->H,
                                .Hkv = c->Hkv, .D = c->D, .dt = (int)bk->dt};
    int lo[MAXU], W = 0;
    for (int j = 0; j < U; j++) ulysses_layout_heads(&l[0], heads, j, &lo[j], &W);
    const int64_t B = c->B, TL = c->TL, TG = U * TL, D = c->D;
    const int64_t nx = B * TL * heads * D, ny = B * TG * W * D, block = B * TL * W * D;
    CHECK(ulysses_layout_block(&l[0], heads) == block);
    const size_t xb = (size_t)nx * es, yb = (size_t)ny * es, bb = (size_t)(block * U) * es;
    unsigned char *hx[MAXU], *hy = malloc(yb), *hback = malloc(xb);
    void *dx[MAXU], *dy[MAXU], *send[MAXU], *recv[MAXU], *scratch = bk->op->alloc(bk, xb);
    for (int m = 0; m < U; m++) {
        hx[m] = malloc(xb);
        for (int64_t e = 0; e < nx; e++)  // distinct bits per (rank, element)
            set_bits(hx[m], e, es, (uint32_t)(0x3c00u + (uint32_t)(m * nx + e)) & (es == 2 ? 0xffffu : 0xffffffffu));
        dx[m] = bk->op->alloc(bk, xb);
        dy[m] = bk->op->alloc(bk, yb);
        send[m] = bk->op->alloc(bk, bb);
        recv[m] = bk->op->alloc(bk, bb);
        bk->op->to_dev(bk, dx[m], hx[m], xb);
    }

    // heads: seq -> head layout
    for (int m = 0; m < U; m++) ulysses_pack_seq(send[m], dx[m], heads, &l[m], st);
    exchange(bk, recv, send, U, (size_t)block * es);
    for (int m = 0; m < U; m++) {
        ulysses_unpack_heads(dy[m], recv[m], heads, &l[m], st);
        bk->op->to_host(bk, hy, dy[m], yb);
        int64_t bad = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < TG; t++)
                for (int w = 0; w < W; w++)
                    for (int64_t d = 0; d < D; d++) {
                        int i = (int)(t / TL);  // the u rank these rows came from
                        int64_t src = ((b * TL + t % TL) * heads + lo[m] + w) * D + d;
                        int64_t dst = ((b * TG + t) * W + w) * D + d;
                        bad += get_bits(hy, dst, es) != get_bits(hx[i], src, es);
                    }
        EXPECT(bad == 0, "%s U %d H %d Hkv %d %s: rank %d head layout: %lld elements wrong", what,
               U, c->H, c->Hkv, es == 2 ? "bf16" : "fp32", m, (long long)bad);
    }

    // back: head -> seq layout, written: the identity
    for (int m = 0; m < U; m++) ulysses_pack_heads(send[m], dy[m], heads, &l[m], st);
    exchange(bk, recv, send, U, (size_t)block * es);
    for (int m = 0; m < U; m++) {
        memset(hback, 0xff, xb);
        bk->op->to_dev(bk, dx[m], hback, xb);  // poison
        ulysses_unpack_seq(dx[m], recv[m], heads, &l[m], st);
        bk->op->to_host(bk, hback, dx[m], xb);
        EXPECT(!memcmp(hback, hx[m], xb), "%s U %d H %d Hkv %d %s: rank %d: head -> seq is not the "
               "inverse", what, U, c->H, c->Hkv, es == 2 ? "bf16" : "fp32", m);
    }

    // add: x += the gradients of every replica
    int *gy[MAXU];
    for (int m = 0; m < U; m++) {
        gy[m] = malloc(sizeof(int) * (size_t)ny);
        for (int64_t e = 0; e < ny; e++) {
            gy[m][e] = (int)((e * 7 + m * 3) % 13) - 6;
            set_bits(hy, e, es, int_bits(gy[m][e], es));
        }
        bk->op->to_dev(bk, dy[m], hy, yb);
        for (int64_t e = 0; e < nx; e++) set_bits(hx[m], e, es, int_bits((int)(e % 5) - 2, es));
        bk->op->to_dev(bk, dx[m], hx[m], xb);
        ulysses_pack_heads(send[m], dy[m], heads, &l[m], st);
    }
    exchange(bk, recv, send, U, (size_t)block * es);
    for (int m = 0; m < U; m++) {
        ulysses_unpack_seq_add(dx[m], scratch, recv[m], heads, &l[m], st);
        bk->op->to_host(bk, hback, dx[m], xb);
        int64_t bad = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < TL; t++)
                for (int h = 0; h < heads; h++)
                    for (int64_t d = 0; d < D; d++) {
                        int64_t e = ((b * TL + t) * heads + h) * D + d;
                        int want = (int)(e % 5) - 2;
                        for (int j = 0; j < U; j++)  // every rank holding head h
                            if (h >= lo[j] && h < lo[j] + W)
                                want += gy[j][((b * TG + (int64_t)m * TL + t) * W + (h - lo[j])) * D + d];
                        bad += bits_int(get_bits(hback, e, es), es) != want;
                    }
        EXPECT(bad == 0, "%s U %d H %d Hkv %d %s: rank %d: gradient sum: %lld elements wrong", what,
               U, c->H, c->Hkv, es == 2 ? "bf16" : "fp32", m, (long long)bad);
    }

    for (int m = 0; m < U; m++) {
        free(hx[m]);
        free(gy[m]);
        bk->op->free(bk, dx[m]);
        bk->op->free(bk, dy[m]);
        bk->op->free(bk, send[m]);
        bk->op->free(bk, recv[m]);
    }
    bk->op->free(bk, scratch);
    free(hy);
    free(hback);
}

static void check_seg(backend *bk, const layout_case *c) {
    const int U = c->U;
    const int64_t B = c->B, TL = c->TL, TG = U * TL, n = B * TL;
    void *st = backend_cuda_stream(bk);
    int32_t *hs[MAXU], *got = malloc(sizeof(int32_t) * (size_t)(B * TG));
    void *ds[MAXU], *send[MAXU], *recv[MAXU], *segh = bk->op->alloc(bk, sizeof(int32_t) * (size_t)(B * TG));
    ulysses_layout l[MAXU];
    for (int m = 0; m < U; m++) {
        l[m] = (ulysses_layout){.U = U, .me = m, .B = B, .TL = TL, .TG = TG, .H = c->H, .Hkv = c->Hkv,
                                .D = c->D, .dt = (int)bk->dt};
        hs[m] = malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t e = 0; e < n; e++) hs[m][e] = (int32_t)(1000 * m + e);
        ds[m] = bk->op->alloc(bk, sizeof(int32_t) * (size_t)n);
        send[m] = bk->op->alloc(bk, sizeof(int32_t) * (size_t)(n * U));
        recv[m] = bk->op->alloc(bk, sizeof(int32_t) * (size_t)(n * U));
        bk->op->to_dev(bk, ds[m], hs[m], sizeof(int32_t) * (size_t)n);
        ulysses_pack_seg(send[m], ds[m], &l[m], st);
    }
    exchange(bk, recv, send, U, sizeof(int32_t) * (size_t)n);
    for (int m = 0; m < U; m++) {
        ulysses_unpack_seg(segh, recv[m], &l[m], st);
        bk->op->to_host(bk, got, segh, sizeof(int32_t) * (size_t)(B * TG));
        int64_t bad = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < TG; t++) bad += got[b * TG + t] != hs[t / TL][b * TL + t % TL];
        EXPECT(bad == 0, "seg U %d: rank %d: %lld ids wrong", U, m, (long long)bad);
    }
    for (int m = 0; m < U; m++) {
        free(hs[m]);
        bk->op->free(bk, ds[m]);
        bk->op->free(bk, send[m]);
        bk->op->free(bk, recv[m]);
    }
    bk->op->free(bk, segh);
    free(got);
}

int main(void) {
    const layout_case cases[] = {
        {.U = 2, .H = 2, .Hkv = 2, .D = 8, .B = 2, .TL = 3},   // MHA
        {.U = 2, .H = 4, .Hkv = 2, .D = 8, .B = 2, .TL = 5},   // kv split, one per rank
        {.U = 2, .H = 8, .Hkv = 4, .D = 4, .B = 1, .TL = 3},   // kv split, two per rank
        {.U = 4, .H = 8, .Hkv = 2, .D = 8, .B = 2, .TL = 3},   // kv replicated on 2 ranks
        {.U = 4, .H = 4, .Hkv = 1, .D = 6, .B = 2, .TL = 2},   // kv replicated on 4 ranks
    };
    int checks = 0;
    for (int dt = 0; dt < 2; dt++) {
        char err[256];
        backend *bk = backend_create(BACKEND_CUDA, dt ? BK_BF16 : BK_F32, 0, err, sizeof err);
        if (!bk) {
            printf("no emulated GPU: %s\n", err);
            return 1;
        }
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            const layout_case *c = &cases[k];
            char why[256];
            CHECK(ulysses_check_heads(c->U, c->H, c->Hkv, why, sizeof why) == 0);
            check_tensor(bk, c, c->H, "q");
            check_tensor(bk, c, c->Hkv, "kv");
            if (dt == 0) check_seg(bk, c);
            checks += dt == 0 ? 3 : 2;
        }
        backend_free(bk);
    }
    if (failures) printf("%d failure(s)\n", failures);
    else printf("all %d layout checks passed\n", checks);
    return failures ? 1 : 0;
}
