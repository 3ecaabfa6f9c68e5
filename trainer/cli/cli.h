// cli: the small subcommands of `stretch` (train has its own train.h).
// Each takes argv with argv[0] = the command name and returns the exit status.
#pragma once

int cli_tokenize(int argc, char **argv);  // stretch tokenize
int cli_inspect(int argc, char **argv);   // stretch inspect
int cli_eval(int argc, char **argv);      // stretch eval passkey|ppl|short (MPI-aware)
int cli_import(int argc, char **argv);    // stretch import --hf DIR --out C.h5
int cli_export(int argc, char **argv);    // stretch export --ckpt C.h5 --format hf --out DIR
// stretch export --format gguf (cli_export_gguf.c); type/tokenizer NULL = default
int cli_export_gguf(const char *ckpt, const char *out, const char *type, const char *tokenizer, int stage);
int cli_search(int argc, char **argv);    // stretch search: LongRoPE factor search (MPI-aware)
int cli_report(int argc, char **argv);    // stretch report RUN_DIR [--out FILE.html]
int cli_status(int argc, char **argv);    // stretch status RUN_DIR...: one line per run
