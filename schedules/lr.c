// lr: warmup + cosine / constant learning-rate schedule. See lr.h.
#include "lr.h"

#include <math.h>

double sched_lr(sched_kind kind, double lr, double min_ratio, int64_t warmup, int64_t total,
                int64_t step) {
    if (warmup > 0 && step < warmup) return lr * (double)(step + 1) / (double)warmup;
    if (kind == SCHED_CONSTANT || total <= warmup) return lr;
    double progress = (double)(step - warmup) / (double)(total - warmup);
    if (progress > 1.0) progress = 1.0;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return lr * (min_ratio + (1.0 - min_ratio) * cosine);
}
