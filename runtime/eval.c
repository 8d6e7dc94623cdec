/* eval.c: saved weights -> test accuracy and confusion matrix (eval.h).
 *
 * The checkpoint is read and checked against the model before the data are loaded or
 * anything is compiled, so that a wrong file is reported at once. */
#include "eval.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "checkpoint.h"
#include "files.h"
#include "data.h"
#include "utf8.h"
#include "train.h"

/* Writes s as a JSON string: valid UTF-8 (a byte outside a well-formed sequence, as a
 * file or class name may hold, becomes U+FFFD), control characters escaped. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = bp_utf8_seq(p);
        if (!k) { fputs("\\ufffd", f); p++; continue; }
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fwrite(p, 1, (size_t)k, f);
        p += k;
    }
    fputc('"', f);
}

/* A class name for the terminal: control characters (an escape sequence in a damaged
 * names file) are shown as '?'. */
static void name_out(FILE *f, const char *pre, const char *s, const char *post) {
    fputs(pre, f);
    for (; *s; s++) fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
    fputs(post, f);
}

int bp_eval_checkpoint(bp_ir *ir, const char *ckpt, const bp_eval_opts *o, bp_err *e) {
    FILE *out = o->out ? o->out : stdout;
    char path[4200], sha[65];
    struct stat st;
    if (!stat(ckpt, &st) && S_ISDIR(st.st_mode)) snprintf(path, sizeof path, "%s/best.safetensors", ckpt);
    else snprintf(path, sizeof path, "%s", ckpt);
    if (bp_sha256_file(ir->path, sha, e)) return 2;
    bp_plan *p = bp_plan_build(ir, ir->layers[ir->n - 1].rule, 0);
    if (!p) return bp_fail(e, "out of memory building the plan"), 2;
    long nf = bp_ckpt_floats(p);
    float *snap = malloc(sizeof *snap * (size_t)(nf ? nf : 1));
    bp_st_file f = {0};
    bp_dataset ds = {0};
    bp_exec x;
    int opened = 0, rc = 0, *preds = NULL;
    long *conf = NULL;
    if (!snap) { rc = (bp_fail(e, "out of memory"), 2); goto out; }
    rc = bp_ckpt_read(path, ir->path, ir, p, sha, snap, &f, e);
    if (rc) { rc = rc == BP_CKPT_MISMATCH ? 1 : 2; goto out; }
    if ((rc = bp_load_data_for(ir, o->data_dir, 0, o->test_limit, &ds, e))) goto out;
    long n = o->test_limit > 0 && o->test_limit < ds.test.n ? o->test_limit : ds.test.n;
    int K = ds.classes;
    preds = malloc(sizeof *preds * (size_t)(n ? n : 1));
    conf = calloc((size_t)K * (size_t)K, sizeof *conf);
    if (!preds || !conf) { rc = (bp_fail(e, "out of memory"), 2); goto out; }
    if (bp_exec_open(&x, p, o->target, e)) { rc = 2; goto out; }
    opened = 1;
    double acc;
    if (bp_ckpt_put(&x, snap, e) || bp_evaluate(&x, &ds.test, n, preds, &acc, e)) { rc = 2; goto out; }
    long correct = 0;
    for (long i = 0; i < n; i++) {
        int y = ds.test.y[i], q = preds[i];
        if (q >= 0 && q < K) conf[(long)y * K + q]++;
        correct += q == y;
    }
    const char *epoch = bp_st_meta_get(&f, "epoch"), *rule = bp_st_meta_get(&f, "rule");
    if (o->json) {
        fprintf(out, "{\"model\": ");
        json_str(out, ir->name);
        fprintf(out, ", \"source\": ");
        json_str(out, ir->path);
        fprintf(out, ", \"checkpoint\": ");
        json_str(out, path);
        fprintf(out, ", \"epoch\": %s, \"rule\": ", epoch ? epoch : "null");
        if (rule) json_str(out, rule);
        else fprintf(out, "null");
        fprintf(out, ", \"dataset\": ");
        json_str(out, ds.name);
        fprintf(out, ", \"images\": %ld, \"correct\": %ld, \"accuracy\": %.9g, \"classes\": %d, "
                     "\"class_names\": ", n, correct, n ? (double)correct / (double)n : 0.0, K);
        if (ds.class_names) {
            fputc('[', out);
            for (int k = 0; k < K; k++) {
                if (k) fprintf(out, ", ");
                json_str(out, ds.class_names[k] ? ds.class_names[k] : "");
            }
            fputc(']', out);
        } else {
            fprintf(out, "null");
        }
        fprintf(out, ", \"confusion\": [");
        for (int y = 0; y < K; y++) {
            fprintf(out, "%s[", y ? ", " : "");
            for (int q = 0; q < K; q++) fprintf(out, "%s%ld", q ? ", " : "", conf[(long)y * K + q]);
            fputc(']', out);
        }
        fprintf(out, "], \"predictions\": [");
        for (long i = 0; i < n; i++) fprintf(out, "%s%d", i ? ", " : "", preds[i]);
        fprintf(out, "]}\n");
    } else {
        fprintf(out, "bpc: evaluating %s (%s) with %s", ir->name, ir->path, path);
        if (epoch) fprintf(out, " (epoch %s, rule %s)", epoch, rule ? rule : "?");
        fprintf(out, " on %s: %ld test images, %s target\n", ds.name, n,
                o->target == BP_TARGET_CUDA ? "cuda" : "cpu");
        fprintf(out, "test accuracy %.4f (%ld of %ld)\n", n ? (double)correct / (double)n : 0.0,
                correct, n);
        if (K > 20) {
            /* too wide to read: the largest confusions instead (the matrix is in --json) */
            fprintf(out, "the most frequent confusions (the %dx%d matrix is in --json):\n", K, K);
            for (int shown = 0; shown < 10; shown++) {
                long bi = -1;
                for (long i = 0; i < (long)K * K; i++)
                    if (i / K != i % K && conf[i] > 0 && (bi < 0 || conf[i] > conf[bi])) bi = i;
                if (bi < 0) break;
                const char *ny = ds.class_names && ds.class_names[bi / K] ? ds.class_names[bi / K] : NULL;
                const char *nq = ds.class_names && ds.class_names[bi % K] ? ds.class_names[bi % K] : NULL;
                fprintf(out, "  %6ld  true %ld", conf[bi], bi / K);
                if (ny) name_out(out, " (", ny, ")");
                fprintf(out, ", predicted %ld", bi % K);
                if (nq) name_out(out, " (", nq, ")");
                fputc('\n', out);
                conf[bi] = -conf[bi]; /* shown; restored below */
            }
            for (long i = 0; i < (long)K * K; i++) if (conf[i] < 0) conf[i] = -conf[i];
            goto flush;
        }
        fprintf(out, "confusion matrix (rows: true class, columns: predicted class; last column: "
                     "the class's accuracy)\n");
        int w = 1;
        for (long v = n; v >= 10; v /= 10) w++;
        if (w < 3) w = 3;
        fprintf(out, "%5s", "");
        for (int q = 0; q < K; q++) fprintf(out, " %*d", w, q);
        fprintf(out, "  %6s\n", "acc");
        for (int y = 0; y < K; y++) {
            long row = 0;
            for (int q = 0; q < K; q++) row += conf[(long)y * K + q];
            fprintf(out, "%5d", y);
            for (int q = 0; q < K; q++) fprintf(out, " %*ld", w, conf[(long)y * K + q]);
            if (row) fprintf(out, "  %6.4f", (double)conf[(long)y * K + y] / (double)row);
            else fprintf(out, "  %6s", "-");
            if (ds.class_names && ds.class_names[y]) name_out(out, "  ", ds.class_names[y], "");
            fputc('\n', out);
        }
    }
flush:
    if (fflush(out)) rc = (bp_fail(e, "cannot write the report"), 2);
out:
    if (opened) bp_exec_close(&x);
    free(preds);
    free(conf);
    free(snap);
    bp_st_free(&f);
    bp_dataset_free(&ds);
    bp_plan_free(p);
    return rc;
}
