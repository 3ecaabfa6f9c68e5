// Tests of trainer/report: report_metrics (every event, a bad line, a
// partial last line, unknown events) and report_html on a run directory
// written here (stage marks on every step chart, passkey heatmap cells with
// the logged values, a perplexity line per checkpoint from a ppl.csv one
// level down, the run config escaped, a directory that is not a run).
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "report.h"
#include "report_metrics.h"
#include "test_tmpdir.h"

static const char METRICS[] =
    "{\"event\":\"stage_start\",\"step\":0,\"stage\":0,\"name\":\"short\",\"seq_len\":64,\"steps\":4,"
    "\"rope_type\":\"default\",\"rope_factor\":0,\"attention_factor\":1,\"inv_freq\":[1,0.1],\"time\":0.1}\n"
    "{\"event\":\"step\",\"step\":1,\"stage\":0,\"seq_len\":64,\"loss\":5.5,\"lr\":0.001,\"grad_norm\":2.5,"
    "\"tokens\":512,\"tokens_per_s\":1000,\"time\":1}\n"
    "{\"event\":\"step\",\"step\":2,\"stage\":0,\"seq_len\":64,\"loss\":5.25,\"lr\":0.002,\"grad_norm\":2,"
    "\"tokens\":1024,\"tokens_per_s\":1100,\"time\":2}\n"
    "this line is broken\n"
    "{\"event\":\"eval_passkey\",\"when\":\"after stage 1 'short'\",\"step\":2,\"stage\":0,\"length\":64,"
    "\"accuracy\":0.75,\"accuracy_by_depth\":[0.5,1],\"time\":3}\n"
    "{\"event\":\"eval_passkey\",\"when\":\"after stage 1 'short'\",\"step\":2,\"stage\":0,\"length\":128,"
    "\"accuracy\":0.25,\"accuracy_by_depth\":[0,0.5],\"time\":3}\n"
    "{\"event\":\"gate\",\"step\":2,\"stage\":0,\"passkey_acc\":0.75,\"val_loss\":-1,\"met\":true,\"time\":3}\n"
    "{\"event\":\"stage_start\",\"step\":2,\"stage\":1,\"name\":\"long\",\"seq_len\":128,\"steps\":2,"
    "\"rope_type\":\"yarn\",\"rope_factor\":2,\"attention_factor\":1.069,\"inv_freq\":[1,0.05],\"time\":4}\n"
    "{\"event\":\"eval_val\",\"step\":3,\"seq_len\":128,\"val_loss\":5.125,\"time\":5}\n"
    "{\"event\":\"step\",\"step\":3,\"stage\":1,\"seq_len\":128,\"loss\":5.0,\"lr\":0.001,\"grad_norm\":1.5,"
    "\"tokens\":1536,\"tokens_per_s\":900,\"time\":5}\n"
    "{\"event\":\"eval_task\",\"task\":\"niah<multi>\",\"length\":128,\"score\":0.5,\"time\":6}\n"
    "{\"event\":\"step\",\"step\":4,\"stage\":1,\"seq_";

static void test_metrics_parse(void **state) {
    report_metrics m;
    report_metrics_parse(&m, METRICS, sizeof METRICS - 1);
    assert_int_equal(m.n_steps, 3);
    assert_true(m.steps[1].loss == 5.25 && m.steps[1].grad_norm == 2 && m.steps[1].tokens == 1024);
    assert_true(m.steps[2].stage == 1 && m.steps[2].tokens_per_s == 900);
    assert_int_equal(m.n_stages, 2);
    assert_string_equal(m.stages[1].name, "long");
    assert_string_equal(m.stages[1].rope_type, "yarn");
    assert_true(m.stages[1].rope_factor == 2 && m.stages[1].step == 2);
    assert_int_equal(m.n_passkey, 2);
    assert_int_equal(m.passkey[1].length, 128);
    assert_int_equal(m.passkey[1].n_depths, 2);
    assert_true(m.passkey[1].by_depth[1] == 0.5);
    assert_int_equal(m.n_val, 1);
    assert_true(m.val[0].val_loss == 5.125);
    assert_int_equal(m.n_gates, 1);
    assert_true(m.gates[0].met && m.gates[0].val_loss == -1);
    assert_int_equal(m.n_bad, 1);
    assert_int_equal(m.n_partial, 1);
    assert_int_equal(m.n_unknown, 1);
    assert_int_equal(m.n_other, 1);
    assert_string_equal(m.unknown_names, "eval_task");
    report_metrics_free(&m);
    // the same text with the last line completed: nothing partial
    report_metrics_parse(&m, "{\"event\":\"step\",\"step\":1}\n", 26);
    assert_int_equal(m.n_steps, 1);
    assert_int_equal(m.n_partial + m.n_bad, 0);
    report_metrics_free(&m);
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_report_html(void **state) {
    fixture *fx = NULL;
    assert_int_equal(tmpdir_setup((void **)&fx, "test_report"), 0);
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/metrics.jsonl", fx->dir);
    write_file(path, METRICS);
    snprintf(path, sizeof path, "%s/config.yaml", fx->dir);
    write_file(path, "model: {dim: 32, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 64}\n"
                     "data: {tokenizer: byte, train: [x.shard]}\n"
                     "eval: {passkey_depths: [0.25, 0.75]}\n"
                     "stages:\n  - {name: short, seq_len: 64, steps: 4, batch_tokens: 512}\n"
                     "  - {name: long, seq_len: 128, steps: 2, batch_tokens: 512, rope: {type: yarn}}\n"
                     "# a <comment> & more\n");
    snprintf(path, sizeof path, "%s/eval", fx->dir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/eval/ppl.csv", fx->dir);
    write_file(path, "ckpt,length,tokens,nll,ppl\nrun/ckpt-2.h5,64,640,3.5,33.1\nrun/ckpt-2.h5,128,640,3.6,36.6\n"
                     "run/ckpt-4.h5,64,640,3.4,29.96\nrun/ckpt-4.h5,128,640,3.45,31.5\n");
    char *html = report_html(fx->dir, err, sizeof err);
    if (!html) fail_msg("%s", err);
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
    assert_null(strstr(html, "<script"));
    // no external resource: the only URLs are the SVG namespace names
    assert_int_equal(count(html, "http://"), count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
    assert_int_equal(count(html, "https://"), 0);
    // 4 step charts, one mark per stage start on each, labelled with the RoPE
    assert_int_equal(count(html, "class=\"mark\""), 8);
    assert_non_null(strstr(html, "long: yarn x2"));
    // loss chart: the loss and the validation loss
    assert_non_null(strstr(html, ">val loss<"));
    // passkey: the summary (1 x 2 cells) and the depth x length map (2 x 2 cells)
    assert_int_equal(count(html, "class=\"cell\""), 6);
    assert_non_null(strstr(html, ">25%<"));
    assert_non_null(strstr(html, ">75<"));  // 0.75 printed as a percentage
    // ppl: one line per checkpoint
    assert_non_null(strstr(html, "Perplexity vs length (eval/ppl.csv)"));
    assert_non_null(strstr(html, ">ckpt-2.h5<"));
    assert_non_null(strstr(html, ">ckpt-4.h5<"));
    // the partial line, the bad line and the unknown event are reported, the task event tabulated
    assert_non_null(strstr(html, "partial last line"));
    assert_non_null(strstr(html, "1 unparsable lines"));
    assert_non_null(strstr(html, "niah&lt;multi&gt;"));
    // memory and config
    assert_non_null(strstr(html, "Memory per rank"));
    assert_non_null(strstr(html, "# a &lt;comment&gt; &amp; more"));
    free(html);

    snprintf(path, sizeof path, "%s/out.html", fx->dir);
    assert_int_equal(report_write(fx->dir, path, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 10000);

    // not a run
    snprintf(path, sizeof path, "%s/eval", fx->dir);
    assert_null(report_html(path, err, sizeof err));
    assert_non_null(strstr(err, "is not a run directory"));
    snprintf(path, sizeof path, "%s/nope", fx->dir);
    assert_null(report_html(path, err, sizeof err));
    assert_non_null(strstr(err, "is not a directory"));
    tmpdir_rm_tree(fx->dir);
    free(fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_parse),
        cmocka_unit_test(test_report_html),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
