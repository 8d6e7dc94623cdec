/* test_protocol.c: the training protocol's decisions and the checkpoint format, without
 * training anything.
 *
 *  - The step schedule (bp_lr_at) at the epochs where it changes.
 *  - Early stopping (bp_stop_update) on scripted validation accuracies, each with the
 *    exact epoch where the run stops and the epoch whose weights are kept: the
 *    min_delta boundary (0.001 = 10 of 10000 images counts), ties, patience 0, and
 *    the paper's patience 45.
 *  - --val parsing, and `val` in the train block (values and messages).
 *  - Checkpoints (runtime/checkpoint.c) on a model with every kind of parameter (conv,
 *    batch norm after a conv and after a dense layer, loccon, a dense layer after a
 *    spatial one, output): a snapshot written and read back is the same bit for bit;
 *    in the file every tensor has PyTorch's name, shape and element order, checked
 *    element by element against the bpc layout; and a truncated file, a broken
 *    header, a file of another model (shapes, missing and extra names) and another
 *    source hash each give their exact message.
 *  - The input gather of the training loop (backend stage/order/gather, CPU target):
 *    the batch's rows and labels are the ordered images, and a range outside the order
 *    is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "files.h"
#include "exec.h"
#include "frontend.h"
#include "plan.h"
#include "safetensors.h"
#include "train.h"

/* ---- the schedule ----------------------------------------------------------------- */

static void test_lr_schedule(void **state) {
    (void)state;
    bp_train_cfg t;
    memset(&t, 0, sizeof t);
    t.lr_every = 100;
    t.lr_factor = 0.5f;
    assert_true(bp_lr_at(&t, 0.1f, 0) == 0.1f);
    assert_true(bp_lr_at(&t, 0.1f, 99) == 0.1f);
    assert_true(bp_lr_at(&t, 0.1f, 100) == 0.05f);
    assert_true(bp_lr_at(&t, 0.1f, 199) == 0.05f);
    assert_true(bp_lr_at(&t, 0.1f, 200) == 0.025f);
    assert_true(bp_lr_at(&t, 0.1f, 499) == 0.1f * 0.0625f);
    t.lr_every = 1;
    t.lr_factor = 1;
    assert_true(bp_lr_at(&t, 0.3f, 0) == 0.3f && bp_lr_at(&t, 0.3f, 77) == 0.3f);
    t.lr_every = 0;
    assert_true(bp_lr_at(&t, 0.3f, 1000) == 0.3f);
}

/* ---- early stopping ------------------------------------------------------------------ */

/* Feeds accs[0..n) as epochs 1..n; returns the epoch that stops the run (0: none) and
 * the kept epoch in *best; checks that NEW_BEST is returned exactly when best moves. */
static int feed(const double *accs, int n, int patience, double min_delta, int *best) {
    bp_stop s;
    bp_stop_init(&s);
    for (int i = 0; i < n; i++) {
        int before = s.best_epoch;
        int r = bp_stop_update(&s, i + 1, accs[i], patience, min_delta);
        assert_int_equal(!!(r & BP_STOP_NEW_BEST), s.best_epoch != before);
        if (r & BP_STOP_STOP) { *best = s.best_epoch; return i + 1; }
    }
    *best = s.best_epoch;
    return 0;
}

static void test_stop_sequences(void **state) {
    (void)state;
    int best;
    /* a gain below min_delta moves the kept weights but not the patience counter */
    const double a[] = {0.50, 0.60, 0.605, 0.61, 0.609, 0.60, 0.608, 0.9};
    assert_int_equal(feed(a, 8, 3, 0.01, &best), 7);
    assert_int_equal(best, 4);
    /* 0.001 is 10 of 10000 images, and counts even after rounding */
    const double b[] = {0.9860, 0.9870, 0.9879, 0.9880, 0.9885, 0.9889, 0.99};
    assert_int_equal(feed(b, 7, 2, 0.001f, &best), 6);
    assert_int_equal(best, 6);
    /* only the first of equal accuracies is kept; a tie is no gain */
    const double c[] = {0.5, 0.5, 0.5, 0.5};
    assert_int_equal(feed(c, 4, 2, 0, &best), 3);
    assert_int_equal(best, 1);
    /* with min_delta 0 any strict gain resets the patience */
    const double d[] = {0.5, 0.5001, 0.5002, 0.5002, 0.5003, 0.5003, 0.5003};
    assert_int_equal(feed(d, 7, 2, 0, &best), 7);
    assert_int_equal(best, 5);
    /* falling accuracy: stop after `patience` epochs, keep the first */
    const double f[] = {0.9, 0.8, 0.7, 0.95};
    assert_int_equal(feed(f, 4, 2, 0.001, &best), 3);
    assert_int_equal(best, 1);
    /* patience 0: never stops */
    double g[300];
    for (int i = 0; i < 300; i++) g[i] = 0.3;
    assert_int_equal(feed(g, 300, 0, 0.001, &best), 0);
    assert_int_equal(best, 1);
    /* the paper's settings: 10 epochs of gains, then a plateau of gains below 0.001:
     * 45 epochs later it stops, and keeps epoch 13, the highest (0.9455 > 0.945) */
    double h[200];
    for (int i = 0; i < 200; i++) h[i] = i < 10 ? 0.9 + 0.005 * i : 0.9455 - (i % 3) * 0.0001;
    assert_int_equal(feed(h, 200, 45, 0.001f, &best), 10 + 45);
    assert_int_equal(best, 13);
    /* a first accuracy of 0 is an accuracy like any other */
    const double z[] = {0.0, 0.0, 0.1};
    assert_int_equal(feed(z, 3, 1, 0.001, &best), 2);
    assert_int_equal(best, 1);
}

static void test_val_parse(void **state) {
    (void)state;
    bp_val_spec v;
    assert_int_equal(bp_val_parse("test", &v), 0);
    assert_int_equal(v.mode, BP_VAL_TEST);
    assert_int_equal(bp_val_parse("0.1", &v), 0);
    assert_int_equal(v.mode, BP_VAL_FRACTION);
    assert_true(v.value == 0.1);
    assert_int_equal(bp_val_parse("5000", &v), 0);
    assert_int_equal(v.mode, BP_VAL_COUNT);
    assert_true(v.value == 5000);
    assert_int_equal(bp_val_parse("1", &v), 0);
    assert_int_equal(v.mode, BP_VAL_COUNT);
    const char *bad[] = {"0", "1.0", "1.5", "-3", "abc", "", "1e3", "0.1x", "nan", "inf", "Test"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (bp_val_parse(bad[i], &v) == 0) fail_msg("--val '%s' was accepted", bad[i]);
}

/* `val` in the train block: parsed values, and each wrong value's message. */
static bp_ir *parse_val(const char *setting, char *diag, size_t n) {
    char src[512];
    snprintf(src, sizeof src, "model m { input 28 x 28 x 1; output 10 brainprop; }\n"
                              "train { data mnist; %s }\n", setting);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int nerr = 0;
    bp_ir *ir = bp_frontend_string("v.bp", src, strlen(src), f, &nerr);
    fclose(f);
    snprintf(diag, n, "%s", buf ? buf : "");
    free(buf);
    return ir;
}

static void test_val_setting(void **state) {
    (void)state;
    char d[2048];
    bp_ir *ir = parse_val("", d, sizeof d);
    assert_non_null(ir);
    assert_int_equal(ir->train.val_test, 0);
    assert_int_equal(ir->train.val_count, 0);
    assert_true(ir->train.val_fraction == 0.1f);
    bp_ir_free(ir);
    ir = parse_val("val test;", d, sizeof d);
    assert_non_null(ir);
    assert_int_equal(ir->train.val_test, 1);
    bp_ir_free(ir);
    ir = parse_val("val 5000;", d, sizeof d);
    assert_non_null(ir);
    assert_int_equal(ir->train.val_count, 5000);
    bp_ir_free(ir);
    ir = parse_val("val 0.25;", d, sizeof d);
    assert_non_null(ir);
    assert_true(ir->train.val_fraction == 0.25f && ir->train.val_count == 0);
    bp_ir_free(ir);
    assert_null(parse_val("val 0;", d, sizeof d));
    assert_non_null(strstr(d, "v.bp:2:25: error: val (validation images) must be at least 1, got 0\n"));
    assert_null(parse_val("val 1.5;", d, sizeof d));
    assert_non_null(strstr(d, "v.bp:2:25: error: val (validation fraction) must be in (0, 1), got 1.5\n"));
    assert_null(parse_val("val best;", d, sizeof d));
    assert_non_null(strstr(d, "v.bp:2:25: error: val takes 'test', a number of images or a fraction, as in 'val 0.1'\n"));
    assert_non_null(strstr(d, "hint: usage: val test|N|FRACTION\n"));
    assert_null(parse_val("val;", d, sizeof d));
    assert_non_null(strstr(d, "v.bp:2:21: error: val needs a value\n"));
}

/* ---- checkpoints --------------------------------------------------------------------- */

static const char *CK =
    "model ck {\n"
    "  input 28 x 28 x 1;\n"
    "  conv 4 size 3 stride 2 pad same relu;\n"  /* 1: 14x14x4 */
    "  batchnorm;\n"                              /* 2 */
    "  loccon 3 size 3 stride 2 relu;\n"          /* 3: 6x6x3 */
    "  maxpool size 2;\n"                         /* 4: 3x3x3 */
    "  dropout 0.2;\n"                            /* 5 */
    "  dense %d relu;\n"                          /* 6: [N, 27] */
    "  %s\n"                                      /* 7: batchnorm (or nothing) */
    "  output 10 brainprop;\n"
    "}\n"
    "train { data mnist; batch 32; }\n";

typedef struct {
    bp_ir *ir;
    bp_plan *p;
    float *snap;
    long n;
} model;

static void open_model(model *m, int dense, int bn) {
    char src[1024];
    snprintf(src, sizeof src, CK, dense, bn ? "batchnorm;" : "");
    int nerr = 0;
    m->ir = bp_frontend_string("ck.bp", src, strlen(src), stderr, &nerr);
    assert_non_null(m->ir);
    m->p = bp_plan_build(m->ir, BP_RULE_BRAINPROP, 0);
    assert_non_null(m->p);
    m->n = bp_ckpt_floats(m->p);
    m->snap = malloc(sizeof *m->snap * (size_t)m->n);
    assert_non_null(m->snap);
    for (long i = 0; i < m->n; i++) m->snap[i] = (float)i * 0.5f - 3.0f; /* every value distinct */
}

static void close_model(model *m) {
    free(m->snap);
    bp_plan_free(m->p);
    bp_ir_free(m->ir);
}

static char g_dir[256];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/bpc-protocol.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *in_dir(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_ck(model *m, const char *path, const char *sha) {
    bp_ckpt_meta mt = {0};
    bp_ckpt_meta_set(&mt, "format", "%s", BP_CKPT_FORMAT);
    bp_ckpt_meta_set(&mt, "epoch", "%d", 7);
    bp_ckpt_meta_set(&mt, "source_sha256", "%s", sha);
    bp_ckpt_meta_set(&mt, "epoch", "%d", 12); /* replaces the 7 */
    bp_err e = {{0}};
    if (bp_ckpt_write(path, m->ir, m->p, m->snap, &mt, &e)) fail_msg("write: %s", e.msg);
    bp_ckpt_meta_free(&mt);
}

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* The bpc-layout value of tensor `name` at flat index i. */
static float bpc_at(const model *m, const char *name, long i) {
    long at = 0;
    for (int k = 0; k < m->p->ntensors; k++) {
        if (!strcmp(m->p->tensors[k].name, name)) return m->snap[at + i];
        at += m->p->tensors[k].size;
    }
    fail_msg("no tensor %s", name);
    return 0;
}

static void expect_shape(const bp_st_file *f, const char *name, int nd, const long *shape) {
    const bp_st_tensor *t = bp_st_find(f, name);
    if (!t) fail_msg("the file has no %s", name);
    assert_int_equal(t->dtype, BP_ST_F32);
    assert_int_equal(t->ndim, nd);
    for (int i = 0; i < nd; i++) assert_int_equal(t->shape[i], shape[i]);
}

static void test_ckpt_round_trip(void **state) {
    (void)state;
    model m;
    open_model(&m, 16, 1);
    const char *path = in_dir("a.safetensors");
    write_ck(&m, path, SHA_A);

    /* back: the same bits, in bpc layout */
    float *back = calloc((size_t)m.n, sizeof *back);
    bp_st_file f;
    bp_err e = {{0}};
    if (bp_ckpt_read(path, "ck.bp", m.ir, m.p, SHA_A, back, &f, &e)) fail_msg("read: %s", e.msg);
    assert_memory_equal(back, m.snap, sizeof *back * (size_t)m.n);
    assert_string_equal(bp_st_meta_get(&f, "epoch"), "12");
    assert_string_equal(bp_st_meta_get(&f, "format"), BP_CKPT_FORMAT);
    bp_st_free(&f);
    free(back);

    /* the file itself: PyTorch names, shapes and element order */
    assert_int_equal(bp_st_read(path, &f, &e), 0);
    assert_int_equal(f.n, 12);
    expect_shape(&f, "1.weight", 4, (long[]){4, 1, 3, 3});
    expect_shape(&f, "2.weight", 1, (long[]){4});
    expect_shape(&f, "2.bias", 1, (long[]){4});
    expect_shape(&f, "2.running_mean", 1, (long[]){4});
    expect_shape(&f, "2.running_var", 1, (long[]){4});
    expect_shape(&f, "3.weight", 5, (long[]){36, 3, 4, 3, 3});
    expect_shape(&f, "6.weight", 2, (long[]){16, 27});
    expect_shape(&f, "7.weight", 1, (long[]){16});
    expect_shape(&f, "7.running_var", 1, (long[]){16});
    expect_shape(&f, "8.weight", 2, (long[]){10, 16});
    /* conv: torch [f][c][kh][kw] = bpc [f][kh][kw][c] */
    const float *w = bp_st_find(&f, "1.weight")->data;
    for (int o = 0; o < 4; o++)
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++)
                assert_true(w[(o * 3 + kh) * 3 + kw] == bpc_at(&m, "L1.weight", (o * 3 + kh) * 3 + kw));
    /* loccon: torch [p][f][c][kh][kw] = bpc [p][f][kh][kw][c] (C = 4) */
    w = bp_st_find(&f, "3.weight")->data;
    for (int p = 0; p < 36; p += 7)
        for (int o = 0; o < 3; o++)
            for (int c = 0; c < 4; c++)
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++)
                        assert_true(w[(((p * 3 + o) * 4 + c) * 3 + kh) * 3 + kw] ==
                                    bpc_at(&m, "L3.weight", (((p * 3 + o) * 3 + kh) * 3 + kw) * 4 + c));
    /* dense after a 3x3x3 map: torch [n][c*9 + h*3 + w] = bpc [n][(h*3 + w)*3 + c] */
    w = bp_st_find(&f, "6.weight")->data;
    for (int n = 0; n < 16; n++)
        for (int h = 0; h < 3; h++)
            for (int x = 0; x < 3; x++)
                for (int c = 0; c < 3; c++)
                    assert_true(w[n * 27 + c * 9 + h * 3 + x] == bpc_at(&m, "L6.weight", n * 27 + (h * 3 + x) * 3 + c));
    /* after a dense layer nothing moves; batch norm is renamed only */
    w = bp_st_find(&f, "8.weight")->data;
    for (int i = 0; i < 160; i++) assert_true(w[i] == bpc_at(&m, "L8.weight", i));
    w = bp_st_find(&f, "2.running_var")->data;
    for (int i = 0; i < 4; i++) assert_true(w[i] == bpc_at(&m, "L2.moving_variance", i));
    w = bp_st_find(&f, "7.bias")->data;
    for (int i = 0; i < 16; i++) assert_true(w[i] == bpc_at(&m, "L7.beta", i));
    bp_st_free(&f);
    close_model(&m);
}

static void expect_read(model *m, const char *path, const char *sha, int want_rc, const char *want) {
    float *back = calloc((size_t)m->n, sizeof *back);
    bp_st_file f;
    bp_err e = {{0}};
    int rc = bp_ckpt_read(path, "ck.bp", m->ir, m->p, sha, back, &f, &e);
    free(back);
    if (rc != want_rc || strcmp(e.msg, want))
        fail_msg("bp_ckpt_read returned %d (want %d):\n  got:  %s\n  want: %s", rc, want_rc, e.msg, want);
    assert_int_equal(f.n, 0); /* empty on failure */
}

static void test_ckpt_errors(void **state) {
    (void)state;
    model a, wide, nobn;
    open_model(&a, 16, 1);
    open_model(&wide, 17, 1);
    open_model(&nobn, 16, 0);
    const char *path = in_dir("a.safetensors");
    write_ck(&a, path, SHA_A);
    char want[1200];

    /* another model: every difference named, four at most */
    snprintf(want, sizeof want, "%s does not fit ck.bp: 6.weight is [16, 27] in the checkpoint but "
             "[17, 27] in the model; 7.weight is [16] in the checkpoint but [17] in the model; "
             "7.bias is [16] in the checkpoint but [17] in the model; 7.running_mean is [16] in the "
             "checkpoint but [17] in the model; and 2 more", path);
    expect_read(&wide, path, SHA_A, BP_CKPT_MISMATCH, want);
    /* missing and extra names: without the batch norm the output is layer 7 */
    snprintf(want, sizeof want, "%s does not fit ck.bp: 7.weight is [16] in the checkpoint but "
             "[10, 16] in the model; 7.bias is not in the model; 7.running_mean is not in the model; "
             "7.running_var is not in the model; and 1 more", path);
    expect_read(&nobn, path, SHA_A, BP_CKPT_MISMATCH, want);
    /* the same shapes from another source */
    snprintf(want, sizeof want, "%s was saved from a different source of ck.bp (source_sha256 "
             "aaaaaaaaaaaa... in the checkpoint, bbbbbbbbbbbb... now); the names and shapes match, "
             "but the weights may mean something else: use the source it was trained from (a run "
             "folder keeps it as model.bp)", path);
    expect_read(&a, path, SHA_B, BP_CKPT_MISMATCH, want);

    /* truncated: the last tensor runs past the end */
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(path, size - 100), 0);
    bp_st_file f;
    bp_err e = {{0}};
    assert_int_equal(bp_st_read(path, &f, &e), -1);
    expect_read(&a, path, SHA_A, -1, e.msg);
    assert_non_null(strstr(e.msg, "run past the data section"));
    assert_non_null(strstr(e.msg, "the file is truncated or corrupt"));
    assert_int_equal(truncate(path, 5), 0);
    snprintf(want, sizeof want, "%s: too short for a safetensors file (5 bytes)", path);
    expect_read(&a, path, SHA_A, -1, want);

    /* a broken header: a stray byte where the first key's quote was */
    write_ck(&a, path, SHA_A);
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, fp), 8);
    unsigned long long hl = 0;
    for (int i = 0; i < 8; i++) hl |= (unsigned long long)len8[i] << (8 * i);
    fseek(fp, 8 + 1, SEEK_SET);
    fputc('#', fp);
    fclose(fp);
    snprintf(want, sizeof want, "%s: the header is not valid JSON (near byte 2 of %llu)", path, hl);
    expect_read(&a, path, SHA_A, -1, want);
    /* a header length beyond the file */
    write_ck(&a, path, SHA_A);
    fp = fopen(path, "r+b");
    fputc(0xff, fp);
    fputc(0xff, fp);
    fputc(0xff, fp);
    fclose(fp);
    fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    fclose(fp);
    /* the low three bytes were replaced: read back what the length now is */
    fp = fopen(path, "rb");
    assert_int_equal(fread(len8, 1, 8, fp), 8);
    fclose(fp);
    hl = 0;
    for (int i = 0; i < 8; i++) hl |= (unsigned long long)len8[i] << (8 * i);
    snprintf(want, sizeof want, "%s: header length %llu exceeds the file size %ld; not a safetensors "
             "file, or truncated", path, hl, size);
    expect_read(&a, path, SHA_A, -1, want);
    /* a file that is not there */
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", in_dir("none.safetensors"));
    expect_read(&a, in_dir("none.safetensors"), SHA_A, -1, want);
    close_model(&a);
    close_model(&wide);
    close_model(&nobn);
}

/* ---- the input gather ------------------------------------------------------------- */

static void test_gather(void **state) {
    (void)state;
    model m;
    open_model(&m, 7, 1);
    bp_exec x;
    bp_err e;
    if (bp_exec_open(&x, m.p, BP_TARGET_CPU, &e)) fail_msg("%s", e.msg);
    long xb = m.p->x_bytes;
    enum { N = 5 };
    unsigned char *img = malloc((size_t)(N * xb)), *got = malloc((size_t)(3 * xb));
    assert_non_null(img);
    assert_non_null(got);
    for (long i = 0; i < N * xb; i++) img[i] = (unsigned char)(i * 7 + i / xb);
    int labels[N] = {10, 11, 12, 13, 14}, order[N] = {3, 1, 4, 0, 2}, y[3];
    assert_int_equal(x.be->stage(&x, img, labels, N, &e), 0);
    assert_int_equal(x.be->order(&x, order, N, &e), 0);
    order[1] = 0; /* order() copied it: a later change of the caller's array is not seen */
    assert_int_equal(x.be->gather(&x, 1, 3, &e), 0);
    assert_int_equal(x.be->get(&x, BP_ARENA_X, 0, got, 3 * xb, &e), 0);
    assert_int_equal(x.be->get(&x, BP_ARENA_I, m.p->labels, y, 3, &e), 0);
    const int want[3] = {1, 4, 0};
    for (int b = 0; b < 3; b++) {
        assert_memory_equal(got + b * xb, img + want[b] * xb, (size_t)xb);
        assert_int_equal(y[b], labels[want[b]]);
    }
    assert_int_not_equal(x.be->gather(&x, 4, 2, &e), 0);
    assert_non_null(strstr(e.msg, "gather of 2 images at 4 of an order of 5"));
    bp_exec_close(&x);
    free(img);
    free(got);
    close_model(&m);
}

static void test_sha256(void **state) {
    (void)state;
    const char *path = in_dir("abc.txt");
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    char hex[65];
    bp_err e = {{0}};
    assert_int_equal(bp_sha256_file(path, hex, &e), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_stop_sequences),
        cmocka_unit_test(test_val_parse),
        cmocka_unit_test(test_val_setting),
        cmocka_unit_test_setup_teardown(test_ckpt_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ckpt_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha256, setup, teardown),
        cmocka_unit_test(test_gather),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
