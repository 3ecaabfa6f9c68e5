// eval: passkey accuracy and greedy decoding. See eval.h.
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"
#include "zigzag.h"

bool eval_answer_exact(model *m, const int32_t *tokens, const int32_t *targets, int64_t T,
                       const eval_ring *ring) {
    zigzag_layout z;
    zigzag_layout_init(&z, T, ring->sp, ring->sp_rank);
    int32_t *pos = xmalloc(sizeof(int32_t) * T);
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    model_batch b = {.B = 1, .T = T, .tokens = (int32_t *)tokens, .targets = (int32_t *)targets, .pos = pos, .seg = NULL};
    int32_t *l_tokens = NULL, *l_targets = NULL, *l_pos = NULL, *l_seg = NULL;
    if (ring->sp > 1) {
        const int64_t TL = z.T_local;
        l_tokens = xmalloc(sizeof(int32_t) * TL), l_targets = xmalloc(sizeof(int32_t) * TL);
        l_pos = xmalloc(sizeof(int32_t) * TL), l_seg = xmalloc(sizeof(int32_t) * TL);
        zigzag_shard_batch(l_tokens, l_targets, l_pos, l_seg, tokens, targets, pos, NULL, 1, &z, 0);
        b = (model_batch){.B = 1, .T = TL, .tokens = l_tokens, .targets = l_targets, .pos = l_pos, .seg = l_seg};
    }
    model_forward(m, &b, NULL);
    bool ok = true;
    for (int64_t i = 0; i < b.T && ok; i++)
        if (b.targets[i] >= 0) ok = model_argmax_row(m, i) == b.targets[i];
    if (ring->all) ok = ring->all(ring->ctx, ok);
    free(pos);
    free(l_tokens); free(l_targets); free(l_pos); free(l_seg);
    return ok;
}

double eval_passkey(model *m, const passkey_config *pk, int64_t T, double depth, int trials,
                    uint64_t seed, const eval_ring *ring, char *err, size_t errlen) {
    passkey_config cfg = *pk;
    cfg.depth = depth;
    cfg.answer_only = 1;  // targets only where the answer is predicted
    int32_t *tokens = xmalloc(sizeof(int32_t) * T), *targets = xmalloc(sizeof(int32_t) * T);
    int correct = 0;
    double result = -1;
    for (int k = 0; k < trials; k++) {
        passkey_info info;
        if (passkey_make(tokens, targets, &info, &cfg, seed + (uint64_t)k, T, err, errlen) != 0)
            goto done;
        correct += eval_answer_exact(m, tokens, targets, T, ring);
    }
    result = trials > 0 ? (double)correct / trials : 0.0;
done:
    free(tokens); free(targets);
    return result;
}

void eval_greedy(int32_t *out, model *m, const int32_t *prompt, int64_t n_prompt, int64_t n_new) {
    const int64_t T = n_prompt + n_new;
    int32_t *tokens = xmalloc(sizeof(int32_t) * T), *pos = xmalloc(sizeof(int32_t) * T);
    memcpy(tokens, prompt, sizeof(int32_t) * n_prompt);
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    for (int64_t n = n_prompt; n < T; n++) {
        model_batch b = {.B = 1, .T = n, .tokens = tokens, .targets = NULL, .pos = pos, .seg = NULL};
        model_forward(m, &b, NULL);
        tokens[n] = out[n - n_prompt] = model_argmax_row(m, n - 1);
    }
    free(tokens);
    free(pos);
}
