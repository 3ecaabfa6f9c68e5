// stretch: the command line. One subcommand per job; each lives in its own
// file (train.c, cli_tokenize.c, cli_inspect.c, cli_eval.c, cli_import.c,
// cli_export.c, cli_search.c, cli_report.c) and returns the exit status: 0 done, 2 a user
// error (bad config, file, option), 3 a stage gate unmet, 99 stopped by a
// preemption signal after checkpointing (requeue me).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cliopt.h"
#include "train.h"

static void usage(FILE *out) {
    fprintf(out,
            "stretch: extend the context window of a RoPE language model in stages\n"
            "\n"
            "usage: stretch COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  train RUN.yaml [--resume auto|never|PATH] [--max-steps N] [--KEY VALUE]\n"
            "                       train a curriculum (stretch train --help lists every key)\n"
            "  tokenize --out SHARD [--tokenizer byte|tokenizer.json|FILE.gguf] [--jsonl] FILES...\n"
            "                       turn UTF-8 text (or JSONL \"text\" fields) into a token shard\n"
            "  inspect CKPT.h5      print a checkpoint's attributes and tensors\n"
            "  eval passkey|ppl|short --ckpt CKPT.h5 ...\n"
            "                       passkey heatmap, perplexity vs length, short-context check\n"
            "                       (stretch eval --help)\n"
            "  import --hf DIR|--gguf FILE --out C.h5\n"
            "                       a Hugging Face Llama model directory or a GGUF file into a checkpoint\n"
            "  export --ckpt C.h5 --format hf --out DIR [--dtype bfloat16] [--stage N] [--yarn-v4]\n"
            "                       a checkpoint as a Hugging Face model (safetensors + config.json)\n"
            "  export --ckpt C.h5 --format gguf --out M.gguf [--type f32|f16|bf16|q8_0] [--stage N]\n"
            "                       a checkpoint as a llama.cpp GGUF with its stage's RoPE and tokenizer\n"
            "  search --ckpt C.h5 --target-len L --data SHARDS --out factors.yaml\n"
            "                       LongRoPE search of rope factors and n_hat (stretch search --help)\n"
            "  report RUN_DIR [--out report.html]\n"
            "                       one self-contained HTML page about a run (curves, passkey heatmaps, ...)\n"
            "  status RUN_DIR...    one line per run: stage, step, tokens, loss, eval, checkpoint,\n"
            "                       running or not\n"
            "  version              the version (also --version)\n"
            "  help                 this text\n"
            "\n"
            "Every option takes its value as --key value or --key=value.\n");
}

static int dispatch(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version") ||
                      !strcmp(argv[1], "-V"))) {
        printf("stretch %s\n", STRETCH_VERSION);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "train")) return train_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cli_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cli_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cli_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "import")) return cli_import(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return cli_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return cli_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return cli_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "status")) return cli_status(argc - 1, argv + 1);
    fprintf(stderr, "stretch: error: unknown command '%s' (see stretch help)\n", cmd);
    return 2;
}

int main(int argc, char **argv) {
    // --key=value is --key value, for every subcommand (cliopt.h).
    char **args = cliopt_split_eq(&argc, argv);
    if (!args) {
        fprintf(stderr, "stretch: error: out of memory\n");
        return 1;
    }
    int rc = dispatch(argc, args);
    free(args);
    return rc;
}
