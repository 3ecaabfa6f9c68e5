// libFuzzer harness: the run file (YAML) of `stretch train`: parse, then
// validate, then the echo of an accepted config must parse again (the
// checkpoint stores it), and the curriculum (stage plans, RoPE) resolves or
// fails cleanly.
#include "fuzz_util.h"
#include "curriculum.h"
#include "run_config.h"
#include "run_config_check.h"
#include "run_config_echo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_string(data, size);
    char err[1024] = "";
    cfg_run cfg;
    cfg_init(&cfg);
    int rc = cfg_parse_string(&cfg, text, "fuzz.yaml", err, sizeof err);
    if (rc != 0) fuzz_check_message(err);
    if (rc == 0) {
        rc = cfg_validate(&cfg, err, sizeof err);
        if (rc != 0) fuzz_check_message(err);
    }
    if (rc == 0) {
        curriculum cur;
        if (curr_load(&cur, &cfg, err, sizeof err) != 0) fuzz_check_message(err);
        char *echo = cfg_echo(&cfg);
        cfg_run again;
        cfg_init(&again);
        if (cfg_parse_string(&again, echo, "echo", err, sizeof err) != 0) {
            fprintf(stderr, "the echo of an accepted config does not parse: %s\n%s\n", err, echo);
            abort();
        }
        cfg_free(&again);
        free(echo);
    }
    cfg_free(&cfg);
    free(text);
    return 0;
}
