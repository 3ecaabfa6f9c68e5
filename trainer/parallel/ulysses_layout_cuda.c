// ulysses_layout: all-to-all blocks <-> sequence / head layout as 2-D
// device copies. See ulysses_layout.h.
//
// Every step is U strided copies (cudaMemcpy2DAsync: rows of W heads out of
// rows of all heads, or TL-row runs out of TG-row sequences); no kernel, so
// nothing here depends on the element type but its size, except the add.
#include "ulysses_layout.h"

#include <cuda_runtime_api.h>

#include "cu_common.h"
#include "cu_ops.h"
#include "die.h"
#include "ulysses.h"

static size_t esize(const ulysses_layout *l) { return cu_dtype_size((cu_dtype)l->dt); }

void ulysses_layout_heads(const ulysses_layout *l, int heads, int j, int *lo, int *W) {
    CHECK(heads == l->H || heads == l->Hkv);
    if (heads == l->H) {
        *W = l->H / l->U;
        *lo = j * *W;
    } else {
        *W = ulysses_kv_heads_local(l->U, l->Hkv);
        *lo = ulysses_kv_head_lo(l->U, l->Hkv, j);
    }
}

int64_t ulysses_layout_block(const ulysses_layout *l, int heads) {
    int lo, W;
    ulysses_layout_heads(l, heads, 0, &lo, &W);
    return l->B * l->TL * W * l->D;
}

// cudaMemcpy2D refuses a pitch above the device's maxPitch (2^31 - 1 on
// current GPUs); a ring-local sequence of 1M tokens x 8 heads x 128 x bf16
// is 2 GiB. Such rows (one per sequence: few) go as 1-D copies each.
#define PITCH_MAX ((size_t)1 << 30)

// dst (height rows of dpitch bytes) <- src (rows of spitch bytes), width bytes a row.
static void copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                   int64_t height, void *stream) {
    if (height == 0 || width == 0) return;
    if (height == 1 || dpitch > PITCH_MAX || spitch > PITCH_MAX) {
        for (int64_t r = 0; r < height; r++)
            CU_CHECK(cudaMemcpyAsync((char *)dst + (size_t)r * dpitch,
                                     (const char *)src + (size_t)r * spitch, width,
                                     cudaMemcpyDeviceToDevice, (cudaStream_t)stream));
        return;
    }
    CU_CHECK(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, (size_t)height,
                               cudaMemcpyDeviceToDevice, (cudaStream_t)stream));
}

void ulysses_pack_seq(void *send, const void *x, int heads, const ulysses_layout *l, void *stream) {
    const size_t es = esize(l), row = (size_t)l->D * es;
    const int64_t block = ulysses_layout_block(l, heads);
    for (int j = 0; j < l->U; j++) {
        int lo, W;
        ulysses_layout_heads(l, heads, j, &lo, &W);
        copy2d((char *)send + (size_t)(j * block) * es, (size_t)W * row,
               (const char *)x + (size_t)lo * row, (size_t)heads * row, (size_t)W * row,
               l->B * l->TL, stream);
    }
}

void ulysses_unpack_heads(void *y, const void *recv, int heads, const ulysses_layout *l,
                          void *stream) {
    int lo, W;
    ulysses_layout_heads(l, heads, l->me, &lo, &W);
    const size_t es = esize(l), rowW = (size_t)W * l->D * es, run = (size_t)l->TL * rowW;
    const int64_t block = ulysses_layout_block(l, heads);
    for (int i = 0; i < l->U; i++)  // B runs of TL rows, one per sequence
        copy2d((char *)y + (size_t)i * run, (size_t)l->TG * rowW,
               (const char *)recv + (size_t)(i * block) * es, run, run, l->B, stream);
}

void ulysses_pack_heads(void *send, const void *y, int heads, const ulysses_layout *l,
                        void *stream) {
    int lo, W;
    ulysses_layout_heads(l, heads, l->me, &lo, &W);
    const size_t es = esize(l), rowW = (size_t)W * l->D * es, run = (size_t)l->TL * rowW;
    const int64_t block = ulysses_layout_block(l, heads);
    for (int i = 0; i < l->U; i++)
        copy2d((char *)send + (size_t)(i * block) * es, run, (const char *)y + (size_t)i * run,
               (size_t)l->TG * rowW, run, l->B, stream);
}

// Block j of recv into dst (B, TL, heads, D) at u rank j's heads.
static void unpack_block(void *dst, const void *recv, int heads, int j, const ulysses_layout *l,
                         void *stream) {
    int lo, W;
    ulysses_layout_heads(l, heads, j, &lo, &W);
    const size_t es = esize(l), row = (size_t)l->D * es;
    const int64_t block = ulysses_layout_block(l, heads);
    copy2d((char *)dst + (size_t)lo * row, (size_t)heads * row,
           (const char *)recv + (size_t)(j * block) * es, (size_t)W * row, (size_t)W * row,
           l->B * l->TL, stream);
}

void ulysses_unpack_seq(void *x, const void *recv, int heads, const ulysses_layout *l,
                        void *stream) {
    for (int j = 0; j < l->U; j++) unpack_block(x, recv, heads, j, l, stream);
}

void ulysses_unpack_seq_add(void *x, void *scratch, const void *recv, int heads,
                            const ulysses_layout *l, void *stream) {
    // R ranks hold each head (R > 1: kv heads replicated, one per rank, the
    // R replicas of head h on u ranks h R .. h R + R - 1). Pass r unpacks
    // one replica of every head into scratch (each head exactly once) and
    // adds it to x.
    const int R = heads == l->Hkv && l->Hkv < l->U ? l->U / l->Hkv : 1;
    const int64_t n = l->B * l->TL * heads * l->D;
    for (int r = 0; r < R; r++) {
        for (int j = r; j < l->U; j += R) unpack_block(scratch, recv, heads, j, l, stream);
        cu_axpy(x, (cu_dtype)l->dt, 1.0f, scratch, (cu_dtype)l->dt, n, (cudaStream_t)stream);
    }
}

void ulysses_pack_seg(int32_t *send, const int32_t *seg, const ulysses_layout *l, void *stream) {
    const size_t bytes = sizeof(int32_t) * (size_t)(l->B * l->TL);
    for (int j = 0; j < l->U; j++)
        CU_CHECK(cudaMemcpyAsync(send + (size_t)j * (size_t)(l->B * l->TL), seg, bytes,
                                 cudaMemcpyDeviceToDevice, (cudaStream_t)stream));
}

void ulysses_unpack_seg(int32_t *segh, const int32_t *recv, const ulysses_layout *l, void *stream) {
    const size_t run = sizeof(int32_t) * (size_t)l->TL;
    for (int i = 0; i < l->U; i++)
        copy2d(segh + (size_t)i * (size_t)l->TL, sizeof(int32_t) * (size_t)l->TG,
               recv + (size_t)i * (size_t)(l->B * l->TL), run, run, l->B, stream);
}
