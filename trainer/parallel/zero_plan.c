// zero_plan: the memory plan per shard / offload mode. See zero_plan.h.
#include "zero_plan.h"

#include <stdlib.h>
#include <string.h>

// Floats of the largest unit ZeRO-3 gathers at once (model_unit_range): the
// embedding, one decoder layer, or the final norm + LM head (tied: the
// final norm alone; the head gathers the embedding as a unit of its own).
static int64_t largest_unit(const model_config *cfg) {
    int n_tensors;
    int64_t n;
    model_tensor *t = model_param_layout(cfg, &n_tensors, &n);
    int64_t embed = 0, layer = 0, head = 0;
    for (int i = 0; i < n_tensors; i++) {
        int64_t sz = t[i].shape[0] * t[i].shape[1];
        if (!strncmp(t[i].name, "model.layers.0.", 15)) layer += sz;
        else if (!strcmp(t[i].name, "model.embed_tokens.weight")) embed += sz;
        else if (strncmp(t[i].name, "model.layers.", 13) != 0) head += sz;
    }
    free(t);
    int64_t u = embed > layer ? embed : layer;
    return head > u ? head : u;
}

void zero_mem_plan(zero_mem *out, const model_config *cfg, int64_t max_tokens, bool recompute,
                   bk_dtype dt, bool device, shard_mode mode, int offload, int world) {
    model_config c = *cfg;
    if (c.head_dim == 0) c.head_dim = c.dim / c.n_heads;
    model_mem mm;
    model_mem_plan(&mm, &c, max_tokens, recompute, dt, device);
    memset(out, 0, sizeof *out);
    const int64_t n = (int64_t)(mm.params / sizeof(float));
    const int W = mode == SHARD_NONE ? 1 : world;
    const int64_t s = (n + W - 1) / W;
    const size_t b = dt == BK_F32 ? 0 : bk_dtype_size(dt);
    out->n_params = n;
    out->shard = s;
    // offload: a device's only (the cpu backend refuses it)
    out->built = offload == 0 || device;
    out->params = mm.params;
    out->grads = mm.grads;
    out->moments = 2 * sizeof(float) * (size_t)s;
    out->work = mm.work;
    out->activations = mm.activations;
    out->scratch = mm.scratch;
    if (mode == SHARD_PARAMETERS) {
        int64_t u = largest_unit(&c);
        size_t ub = dt == BK_F32 ? 4 : b;  // gathered weights in the compute dtype
        out->params = sizeof(float) * (size_t)s;
        // cpu: the resident set (the slice + one unit before its
        // reduce-scatter); a device: the slice + two unit buffers (one
        // written by a unit's backward, one in its reduce-scatter).
        out->grads = sizeof(float) * (size_t)(s + (device ? 2 : 1) * u);
        out->work = b * (size_t)s;
        // Two units held (one computing, one prefetched); tied, at the
        // forward -> backward turn the last layer is held with the final
        // norm and the embedding as the LM head: a device has a third unit
        // buffer (zero3_unit_buffers), the cpu the final norm's C floats.
        out->gather = device ? (size_t)zero3_unit_buffers(c.tie_embeddings) * ub * (size_t)u
                             : ub * (size_t)(2 * u + (c.tie_embeddings ? c.dim : 0));
        if (device && W == 1) {  // one rank holds everything: no unit buffers
            out->grads = sizeof(float) * (size_t)s;
            out->gather = 0;
        }
    }
    if (offload & ZERO_OFFLOAD_OPTIMIZER) {
        // The fp32 master (under ZeRO-3 the slice, pinned apart from the
        // pageable whole-size params; else all: the model's host params,
        // pinned) and the moments live on the host; a pinned copy of the
        // gradient slice feeds AdamW and stages the upload. The device keeps
        // its gradients (ZeRO-3: the slice + the unit buffers) and the
        // working weights (fp32: the fp32 weights themselves).
        out->host_params = out->params;
        out->host_moments = out->moments;
        out->host_grads = sizeof(float) * (size_t)s;
        out->params = 0;
        out->moments = 0;
        if (b == 0) out->work = mode == SHARD_PARAMETERS ? sizeof(float) * (size_t)s : mm.params;
    }
    if ((offload & ZERO_OFFLOAD_ACTIVATIONS) && recompute) {
        // Of the L + 1 residual checkpoints the device keeps two slots, the
        // host the other L - 1 (model_opts).
        size_t per = (dt == BK_F32 ? 4 : b) * (size_t)max_tokens * (size_t)c.dim;
        size_t host = per * (size_t)(c.n_layers > 1 ? c.n_layers - 1 : 0);
        out->host_activations = host;
        out->activations -= host;
    }
    out->device_total = out->params + out->grads + out->moments + out->work + out->gather +
                        out->activations + out->scratch;
    out->host_total = out->host_params + out->host_grads + out->host_moments + out->host_activations;
}

void zero_mem_print(FILE *f, const zero_mem *z, shard_mode mode, int offload) {
    const double G = 1e9;
    static const char *const off[] = {"none", "optimizer", "activations", "both"};
    fprintf(f, "  shard %s, offload %s: %.2f GB device + %.2f GB pinned host per rank%s\n",
            shard_mode_name(mode), off[offload & 3], z->device_total / G, z->host_total / G,
            z->built ? "" : " (planned: this mode is a design, not built yet)");
    fprintf(f, "    device: params %.2f + grads %.2f + adamw %.2f + work %.2f + gathered %.2f + "
               "activations %.2f + scratch %.2f; host: params %.2f + grads %.2f + adamw %.2f + "
               "activations %.2f\n",
            z->params / G, z->grads / G, z->moments / G, z->work / G, z->gather / G,
            z->activations / G, z->scratch / G, z->host_params / G, z->host_grads / G,
            z->host_moments / G, z->host_activations / G);
}
