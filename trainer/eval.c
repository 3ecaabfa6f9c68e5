// eval: passkey accuracy and greedy decoding. See eval.h.
#include "eval.h"

#include <stdlib.h>
#include <string.h>

#include "die.h"

double eval_passkey(model *m, const passkey_config *pk, int64_t T, double depth, int trials,
                    uint64_t seed, char *err, size_t errlen) {
    passkey_config cfg = *pk;
    cfg.depth = depth;
    cfg.answer_only = 1;
    int32_t *tokens = xmalloc(sizeof(int32_t) * T), *targets = xmalloc(sizeof(int32_t) * T),
            *pos = xmalloc(sizeof(int32_t) * T);
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    int correct = 0;
    double result = -1;
    for (int k = 0; k < trials; k++) {
        passkey_info info;
        if (passkey_make(tokens, targets, &info, &cfg, seed + (uint64_t)k, T, err, errlen) != 0)
            goto done;
        model_batch b = {.B = 1, .T = T, .tokens = tokens, .targets = targets, .pos = pos, .seg = NULL};
        model_forward(m, &b, NULL);
        int ok = 1;
        for (int64_t i = info.answer_start - 1; i < T - 1 && ok; i++)
            ok = model_argmax_row(m, i) == tokens[i + 1];
        correct += ok;
    }
    result = trials > 0 ? (double)correct / trials : 0.0;
done:
    free(tokens);
    free(targets);
    free(pos);
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
