// train_warn: warnings about a valid run file. See train_warn.h.
#include "train_warn.h"


int train_warn_config(const curriculum *c, FILE *out) {
    int n = 0;
    for (int s = 0; s < c->n_stages; s++) {
        const curr_plan *p = curr_stage_plan(c, s);
        if (p->warmup_steps > p->steps) {
            fflush(stdout);
            fprintf(out, "stretch: warning: stages.%d (%s): warmup_steps %lld exceeds the stage's %lld steps; "
                         "its learning rate never reaches %.2e\n",
                    s, p->name, (long long)p->warmup_steps, (long long)p->steps, p->lr);
            n++;
        }
    }
    return n;
}
