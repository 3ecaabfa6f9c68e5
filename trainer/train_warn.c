// train_warn: warnings about a valid run file. See train_warn.h.
#include "train_warn.h"

#include "run_config_check.h"

int train_warn_config(const cfg_run *c, FILE *out) {
    int n = 0;
    for (int s = 0; s < c->n_stages; s++) {
        cfg_stage_plan plan;
        cfg_stage_resolve(&plan, c, s);
        if (plan.warmup_steps > plan.steps) {
            fflush(stdout);
            fprintf(out, "stretch: warning: stages.%d (%s): warmup_steps %lld exceeds the stage's %lld steps; "
                         "its learning rate never reaches %.2e\n",
                    s, plan.name, (long long)plan.warmup_steps, (long long)plan.steps, plan.lr);
            n++;
        }
    }
    return n;
}
