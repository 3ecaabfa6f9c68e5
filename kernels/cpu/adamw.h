// adamw: AdamW with decoupled weight decay (Loshchilov & Hutter; the
// torch.optim.AdamW update), and the global gradient norm for clipping.
// Tested by tests/ops (ctest ops_check) against a float64 re-derivation;
// the clip factor by tests/unit/test_ops_guards.c.
#pragma once

#include <stdint.h>

typedef struct {
    float lr;
    float beta1, beta2;
    float eps;
    float weight_decay;  // decoupled: param -= lr * wd * param
} adamw_hparams;

// One step on n parameters. step is 1-based (bias correction). Each gradient
// is multiplied by grad_scale first (the clipping factor, 1 for none).
// Parameters with weight decay disabled pass weight_decay 0 via hp.
void adamw_update(float *param, float *m, float *v, const float *grad, int64_t n,
                  const adamw_hparams *hp, int64_t step, float grad_scale);

// Sum of squares of g (n), in double.
double adamw_grad_norm_sq(const float *g, int64_t n);

// The factor that clips a gradient of global norm `norm` to max_norm
// (1 if max_norm <= 0 or norm <= max_norm), as torch.nn.utils.clip_grad_norm_.
float adamw_clip_factor(double norm, double max_norm);
