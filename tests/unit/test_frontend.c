/* test_frontend.c: unit tests of the .bp front end (lexer, parser, checker, report).
 *
 * Valid models must come out with the expected shapes, parameters, multiply-adds and
 * defaults; every diagnostic is pinned with its exact text and location (captured
 * with open_memstream), so that a change of wording is a deliberate one; and broken or
 * random input must give errors, never a crash, leak or hang (run this program under
 * ASan/UBSan: `make test` builds it both ways).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "frontend.h"
#include "report.h"
#include "suggest.h"

/* ---- helpers -------------------------------------------------------------------------- */

typedef struct {
    bp_ir *ir;
    int nerrors;
    char *diag;   /* everything printed to the diagnostics stream */
    size_t len;
} result;

static result run_len(const char *src, size_t n) {
    result r = { 0 };
    FILE *f = open_memstream(&r.diag, &r.len);
    assert_non_null(f);
    r.ir = bp_frontend_string("t.bp", src, n, f, &r.nerrors);
    fclose(f);
    /* the contract: an IR exactly when there was no error */
    assert_int_equal(r.ir != NULL, r.nerrors == 0);
    return r;
}

static result run(const char *src) { return run_len(src, strlen(src)); }

static void done(result *r) {
    bp_ir_free(r->ir);
    free(r->diag);
}

/* Parses a model that must be valid, printing its diagnostics if it is not. */
static result ok(const char *src) {
    result r = run(src);
    if (!r.ir) print_error("unexpected diagnostics:\n%s", r.diag);
    assert_non_null(r.ir);
    assert_string_equal(r.diag, "");
    return r;
}

static void shape_is(bp_shape s, int h, int w, int c) {
    assert_int_equal(s.h, h);
    assert_int_equal(s.w, w);
    assert_int_equal(s.c, c);
}

static const char MNIST_CONV[] =
    "# models/mnist_conv.bp: the paper's 'conv' network on MNIST\n"
    "model mnist_conv {\n"
    "  input   28 x 28 x 1;\n"
    "  conv    32 size 3 stride 1 pad same relu;\n"
    "  batchnorm;\n"
    "  conv    32 size 3 stride 2 pad same relu;\n"
    "  batchnorm;\n"
    "  dropout 0.3;\n"
    "  dense   500 relu;\n"
    "  dropout 0.3;\n"
    "  output  10 brainprop epsilon 0.02;   # or: output 10 softmax\n"
    "}\n"
    "train {\n"
    "  data mnist; batch 128; sgd lr 0.1; lr_step every 100 factor 0.5;\n"
    "  epochs 500; early_stop patience 45 min_delta 0.001; init normal 0.005;\n"
    "}\n";

/* ---- valid models --------------------------------------------------------------------- */

static void test_mnist_conv(void **state) {
    (void)state;
    result r = ok(MNIST_CONV);
    const bp_ir *ir = r.ir;
    const bp_layer *L = ir->layers;
    assert_string_equal(ir->name, "mnist_conv");
    assert_string_equal(ir->path, "t.bp");
    assert_int_equal(ir->n, 9);

    assert_int_equal(L[0].kind, BP_INPUT);
    shape_is(L[0].out, 28, 28, 1);
    assert_int_equal(L[0].loc.line, 3);
    assert_int_equal(L[0].loc.col, 3);

    assert_int_equal(L[1].kind, BP_CONV);
    shape_is(L[1].in, 28, 28, 1);
    shape_is(L[1].out, 28, 28, 32);
    assert_int_equal(L[1].units, 32);
    assert_int_equal(L[1].ksize, 3);
    assert_int_equal(L[1].stride, 1);
    assert_int_equal(L[1].pad_same, 1);
    assert_int_equal(L[1].pad_top, 1);
    assert_int_equal(L[1].pad_left, 1);
    assert_int_equal(L[1].relu, 1);
    assert_int_equal(L[1].params, 32 * 3 * 3 * 1);
    assert_int_equal(L[1].macs, 28 * 28 * 32 * 3 * 3 * 1);

    assert_int_equal(L[2].kind, BP_BATCHNORM);
    shape_is(L[2].out, 28, 28, 32);
    assert_int_equal(L[2].params, 64);
    assert_int_equal(L[2].macs, 0);

    assert_int_equal(L[3].kind, BP_CONV);
    assert_int_equal(L[3].stride, 2);
    shape_is(L[3].out, 14, 14, 32);
    /* TF 'same', stride 2 on 28: total padding 1, all of it after */
    assert_int_equal(L[3].pad_top, 0);
    assert_int_equal(L[3].pad_left, 0);
    assert_int_equal(L[3].params, 32 * 3 * 3 * 32);
    assert_int_equal(L[3].macs, 14 * 14 * 32 * 3 * 3 * 32);

    assert_int_equal(L[4].kind, BP_BATCHNORM);
    assert_int_equal(L[5].kind, BP_DROPOUT);
    assert_true(L[5].rate > 0.2999f && L[5].rate < 0.3001f);
    shape_is(L[5].out, 14, 14, 32);

    assert_int_equal(L[6].kind, BP_DENSE);
    shape_is(L[6].in, 14, 14, 32);
    shape_is(L[6].out, 1, 1, 500);
    assert_int_equal(L[6].relu, 1);
    assert_int_equal(L[6].params, 14 * 14 * 32 * 500);
    assert_int_equal(L[6].macs, 14 * 14 * 32 * 500);

    assert_int_equal(L[7].kind, BP_DROPOUT);
    shape_is(L[7].out, 1, 1, 500);

    assert_int_equal(L[8].kind, BP_OUTPUT);
    assert_int_equal(L[8].rule, BP_RULE_BRAINPROP);
    assert_true(L[8].epsilon > 0.0199f && L[8].epsilon < 0.0201f);
    assert_int_equal(L[8].relu, 0);
    shape_is(L[8].out, 1, 1, 10);
    assert_int_equal(L[8].params, 5000);

    assert_int_equal(ir->params, 288 + 64 + 9216 + 64 + 3136000 + 5000);
    assert_int_equal(ir->macs, 225792 + 1806336 + 3136000 + 5000);

    const bp_train_cfg *t = &ir->train;
    assert_string_equal(t->dataset, "mnist");
    assert_int_equal(t->batch, 128);
    assert_true(t->lr == 0.1f);
    assert_int_equal(t->lr_every, 100);
    assert_true(t->lr_factor == 0.5f);
    assert_int_equal(t->epochs, 500);
    assert_int_equal(t->patience, 45);
    assert_true(t->min_delta == 0.001f);
    assert_true(t->init_std == 0.005f);
    assert_true(t->l2 == 0.0f);
    assert_int_equal(t->seed, 1);
    done(&r);
}

static void test_train_defaults(void **state) {
    (void)state;
    result r = ok("model m { input 4 x 4 x 1; output 3 softmax; }");
    const bp_train_cfg *t = &r.ir->train;
    assert_string_equal(t->dataset, "");
    assert_int_equal(t->batch, 128);
    assert_true(t->lr == 0.1f);
    assert_int_equal(t->lr_every, 100);
    assert_true(t->lr_factor == 0.5f);
    assert_int_equal(t->epochs, 500);
    assert_int_equal(t->patience, 45);
    assert_true(t->min_delta == 0.001f);
    assert_true(t->init_std == 0.005f);
    assert_true(t->l2 == 0.0f);
    assert_int_equal(t->seed, 1);
    const bp_layer *out = &r.ir->layers[1];
    assert_int_equal(out->rule, BP_RULE_EBP);
    shape_is(out->in, 4, 4, 1);
    assert_int_equal(out->params, 16 * 3);
    done(&r);
}

static void test_train_all_settings(void **state) {
    (void)state;
    result r = ok("train {\n"
                  "  seed 18446744073709551615; l2 5e-4; init normal 1.5E-2;\n"
                  "  early_stop min_delta 0 patience 0; epochs 7; lr_step factor 1 every 3;\n"
                  "  sgd lr .5; batch 32; data fashion-mnist;\n"
                  "}\n"
                  "model m { input 28x28x1; output 10 brainprop; }\n");
    const bp_train_cfg *t = &r.ir->train;
    assert_true(t->seed == UINT64_MAX);
    assert_true(t->l2 == 5e-4f);
    assert_true(t->init_std == 1.5e-2f);
    assert_int_equal(t->patience, 0);
    assert_true(t->min_delta == 0.0f);
    assert_int_equal(t->epochs, 7);
    assert_int_equal(t->lr_every, 3);
    assert_true(t->lr_factor == 1.0f);
    assert_true(t->lr == 0.5f);
    assert_int_equal(t->batch, 32);
    assert_string_equal(t->dataset, "fashion-mnist");
    done(&r);
}

/* `28 x 28 x 1`, `28x28x1` and mixtures lex alike; `x` elsewhere is a name. */
static void test_dims_forms(void **state) {
    (void)state;
    static const char *const forms[] = {
        "model m { input 28 x 28 x 1; output 2 softmax; }",
        "model m { input 28x28x1; output 2 softmax; }",
        "model m { input 28 x28x 1; output 2 softmax; }",
        "model m {\n input 28\n x\n 28 x 1 ; output 2 softmax; }",
        "model m { input 28x 28 # comment\n x1; output 2 softmax; }",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        result r = ok(forms[i]);
        shape_is(r.ir->layers[0].out, 28, 28, 1);
        done(&r);
    }
    result r = ok("model x { input 3x4x5; output 2 softmax; }");
    assert_string_equal(r.ir->name, "x");
    shape_is(r.ir->layers[0].out, 3, 4, 5);
    done(&r);
}

static void test_numbers(void **state) {
    (void)state;
    result r = ok("model m { input 8x8x1; dropout .5; dropout 0.; dropout 5e-1;\n"
                  "  output 2 brainprop epsilon 1.5E-2; }\n"
                  "train { sgd lr 1.5E+3; l2 0.0001; init normal 1; }");
    assert_true(r.ir->layers[1].rate == 0.5f);
    assert_true(r.ir->layers[2].rate == 0.0f);
    assert_true(r.ir->layers[3].rate == 0.5f);
    assert_true(r.ir->layers[4].epsilon == 0.015f);
    assert_true(r.ir->train.lr == 1500.0f);
    assert_true(r.ir->train.init_std == 1.0f);
    done(&r);
}

static void test_options_any_order(void **state) {
    (void)state;
    result r = ok("model m { input 28x28x3; conv 16 relu pad same stride 2 size 5;\n"
                  "  loccon 4 pad valid size 3 relu; maxpool stride 1 size 2;\n"
                  "  dense 7 relu; output 10 epsilon 0.1 brainprop; }");
    const bp_layer *L = r.ir->layers;
    shape_is(L[1].out, 14, 14, 16);
    assert_int_equal(L[1].ksize, 5);
    assert_int_equal(L[1].relu, 1);
    assert_int_equal(L[1].pad_same, 1);
    /* same, k5 s2 on 28: total (14-1)*2+5-28 = 3, 1 before and 2 after */
    assert_int_equal(L[1].pad_top, 1);
    shape_is(L[2].out, 12, 12, 4);
    assert_int_equal(L[2].pad_same, 0);
    assert_int_equal(L[2].params, 12 * 12 * 4 * 3 * 3 * 16);
    assert_int_equal(L[2].macs, L[2].params);
    shape_is(L[3].out, 11, 11, 4);
    assert_int_equal(L[3].stride, 1);
    assert_int_equal(L[4].units, 7);
    assert_int_equal(L[4].relu, 1);
    assert_true(L[5].epsilon == 0.1f);
    done(&r);
}

/* The paper's loccon net: 'valid' padding shrinks the map. */
static void test_loccon(void **state) {
    (void)state;
    result r = ok("model mnist_loccon {\n"
                  "  input 28 x 28 x 1;\n"
                  "  loccon 32 size 3 relu;\n"
                  "  batchnorm;\n"
                  "  loccon 32 size 3 stride 2 relu;\n"
                  "  batchnorm;\n"
                  "  dropout 0.3;\n"
                  "  dense 500 relu;\n"
                  "  dropout 0.3;\n"
                  "  output 10 brainprop;\n"
                  "}\n");
    const bp_layer *L = r.ir->layers;
    shape_is(L[1].out, 26, 26, 32);
    assert_int_equal(L[1].params, 26 * 26 * 32 * 9);
    assert_int_equal(L[1].macs, 26 * 26 * 32 * 9);
    assert_int_equal(L[1].pad_top, 0);
    shape_is(L[3].out, 12, 12, 32);
    assert_int_equal(L[3].params, 12L * 12 * 32 * 9 * 32);
    assert_int_equal(L[6].params, 12L * 12 * 32 * 500);
    assert_true(L[8].epsilon == 0.02f); /* the default */
    done(&r);
}

/* The paper's deep net on CIFAR-10: maxpool's stride defaults to its size. */
static void test_deep_cifar(void **state) {
    (void)state;
    result r = ok("model cifar10_deep {\n"
                  "  input 32 x 32 x 3;\n"
                  "  conv 64 size 3 pad same relu; batchnorm;\n"
                  "  conv 64 size 3 pad same relu; batchnorm;\n"
                  "  maxpool size 2; dropout 0.3;\n"
                  "  conv 128 size 3 pad same relu; batchnorm;\n"
                  "  conv 128 size 3 pad same relu; batchnorm;\n"
                  "  maxpool size 2; dropout 0.3;\n"
                  "  conv 128 size 3 pad same relu; batchnorm;\n"
                  "  conv 128 size 3 pad same relu; batchnorm;\n"
                  "  conv 128 size 3 pad same relu; batchnorm;\n"
                  "  maxpool size 2; dropout 0.8;\n"
                  "  dense 500 relu; dropout 0.3;\n"
                  "  output 10 brainprop;\n"
                  "}\n"
                  "train { data cifar10; l2 5e-4; }\n");
    const bp_ir *ir = r.ir;
    assert_int_equal(ir->n, 24);
    const bp_layer *pool1 = &ir->layers[5];
    assert_int_equal(pool1->kind, BP_MAXPOOL);
    assert_int_equal(pool1->stride, 2);
    shape_is(pool1->out, 16, 16, 64);
    assert_int_equal(pool1->params, 0);
    shape_is(ir->layers[11].out, 8, 8, 128);
    shape_is(ir->layers[19].out, 4, 4, 128);
    assert_true(ir->layers[20].rate == 0.8f);
    assert_int_equal(ir->layers[21].params, 4 * 4 * 128 * 500);
    assert_int_equal(ir->layers[23].kind, BP_OUTPUT);
    assert_int_equal(ir->layers[2].params, 2 * 64);
    assert_int_equal(ir->layers[3].params, 64 * 9 * 64);
    done(&r);
}

static void test_comments_and_line_ends(void **state) {
    (void)state;
    result r = ok("# a comment\r\nmodel m { # another\r\n\tinput 2 x 2 x 1;\r\n"
                  "\toutput 2 softmax; } # end");
    assert_int_equal(r.ir->layers[1].loc.line, 4);
    assert_int_equal(r.ir->layers[1].loc.col, 2);
    done(&r);
}

static void test_limits_accepted(void **state) {
    (void)state;
    /* 2^20 per dimension and 2^40 values per sample are the largest allowed */
    result r = ok("model m { input 1048576 x 1048576 x 1; maxpool size 1048576;\n"
                  "  output 1048576 softmax; }");
    shape_is(r.ir->layers[1].out, 1, 1, 1);
    done(&r);
}

/* ---- diagnostics: exact text and location ---------------------------------------------- */

typedef struct {
    const char *name;
    int nerrors;
    const char *src;
    const char *expect;
} diag_case;

static const diag_case CASES[] = {
    { "unknown_option", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 500 relux;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:13: error: unknown option 'relux' for dense\n"
      "  dense 500 relux;\n"
      "            ^~~~~\n"
      "hint: did you mean 'relu'?\n" },

    { "conv_after_dense", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 500 relu;\n"
      "  conv 32 size 3;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:4:3: error: conv needs a spatial input, but dense at 3:3 flattened it\n"
      "  conv 32 size 3;\n"
      "  ^\n"
      "hint: put conv layers before the first dense layer\n" },

    { "kernel_no_output", 1,
      "model m {\n"
      "  input 2 x 2 x 32;\n"
      "  loccon 32 size 3 relu;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:18: error: the input to loccon at 3:3 is 2x2x32; a 3x3 kernel with pad valid leaves no output\n"
      "  loccon 32 size 3 relu;\n"
      "                 ^\n"
      "hint: use pad same or a smaller kernel\n" },

    { "pool_on_1x1", 1,
      "model m {\n"
      "  input 1 x 1 x 8;\n"
      "  maxpool size 2;\n"
      "  output 10 softmax;\n"
      "}\n",
      "t.bp:3:16: error: the input to maxpool at 3:3 is 1x1x8; a 2x2 window leaves no output\n"
      "  maxpool size 2;\n"
      "               ^\n"
      "hint: use a smaller window, or remove this maxpool\n" },

    { "unknown_layer_near", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dens 10;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: unknown layer 'dens'\n"
      "  dens 10;\n"
      "  ^~~~\n"
      "hint: did you mean 'dense'?\n" },

    { "unknown_layer_far", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  flatten;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: unknown layer 'flatten'\n"
      "  flatten;\n"
      "  ^~~~~~~\n"
      "hint: the layers are input, dense, conv, loccon, maxpool, batchnorm, dropout and output\n" },

    { "unknown_dataset", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { data imagenet; }\n",
      "t.bp:5:14: error: unknown data set 'imagenet'\n"
      "train { data imagenet; }\n"
      "             ^~~~~~~~\n"
      "hint: the known data sets are mnist, fashion-mnist, cifar10, cifar100, cifar100-coarse and tinyimagenet\n" },

    { "setting_twice", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train {\n"
      "  batch 32;\n"
      "  batch 64;\n"
      "}\n",
      "t.bp:7:3: error: setting 'batch' given twice\n"
      "  batch 64;\n"
      "  ^~~~~\n"
      "hint: it was first given at 6:3\n" },

    { "option_twice", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8 size 3 stride 1 stride 2;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:26: error: option 'stride' given twice\n"
      "  conv 8 size 3 stride 1 stride 2;\n"
      "                         ^~~~~~\n"
      "hint: it was first given at 3:17\n" },

    { "no_input", 1,
      "model m {\n"
      "  dense 10;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:1:7: error: model 'm' has no input layer\n"
      "model m {\n"
      "      ^\n"
      "hint: start the model with 'input H x W x C;'\n" },

    { "input_not_first", 1,
      "model m {\n"
      "  dense 10;\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: input must be the first layer\n"
      "  input 28 x 28 x 1;\n"
      "  ^\n"
      "hint: dense at 2:3 comes before it\n" },

    { "second_input", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: a second input layer; a model has one\n"
      "  input 28 x 28 x 1;\n"
      "  ^\n"
      "hint: the first is at 2:3\n" },

    { "output_not_last", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "  dropout 0.5;\n"
      "}\n",
      "t.bp:3:3: error: output must be the last layer\n"
      "  output 10 brainprop;\n"
      "  ^\n"
      "hint: dropout at 4:3 follows it\n" },

    { "no_output", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 10;\n"
      "}\n",
      "t.bp:1:7: error: model 'm' has no output layer\n"
      "model m {\n"
      "      ^\n"
      "hint: end the model with 'output N brainprop;' or 'output N softmax;'\n" },

    { "empty_model", 1,
      "model m { }\n",
      "t.bp:1:7: error: model 'm' has no layers\n"
      "model m { }\n"
      "      ^\n"
      "hint: a model needs at least 'input H x W x C;' and 'output N brainprop;'\n" },

    { "zero_units", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 0 relu;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:9: error: dense units must be at least 1, got 0\n"
      "  dense 0 relu;\n"
      "        ^\n" },

    { "zero_stride", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8 size 3 stride 0;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:24: error: stride must be at least 1, got 0\n"
      "  conv 8 size 3 stride 0;\n"
      "                       ^\n" },

    { "zero_kernel", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8 size 0;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:15: error: kernel size must be at least 1, got 0\n"
      "  conv 8 size 0;\n"
      "              ^\n" },

    { "dropout_one", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dropout 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:11: error: dropout rate must be in [0, 1), got 1\n"
      "  dropout 1;\n"
      "          ^\n" },

    { "epsilon_range", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop epsilon 1.5;\n"
      "}\n",
      "t.bp:3:31: error: epsilon must be in [0, 1], got 1.5\n"
      "  output 10 brainprop epsilon 1.5;\n"
      "                              ^~~\n" },

    { "train_ranges", 9,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train {\n"
      "  batch 0;\n"
      "  sgd lr 0;\n"
      "  epochs 0;\n"
      "  init normal 0;\n"
      "  l2 -1;\n"
      "  lr_step every 0 factor 0;\n"
      "  early_stop patience -1 min_delta -0.1;\n"
      "}\n",
      "t.bp:6:9: error: batch must be at least 1, got 0\n"
      "  batch 0;\n"
      "        ^\n"
      "t.bp:7:10: error: lr must be > 0, got 0\n"
      "  sgd lr 0;\n"
      "         ^\n"
      "t.bp:8:10: error: epochs must be at least 1, got 0\n"
      "  epochs 0;\n"
      "         ^\n"
      "t.bp:9:15: error: init std must be > 0, got 0\n"
      "  init normal 0;\n"
      "              ^\n"
      "t.bp:10:6: error: l2 must be >= 0, got -1\n"
      "  l2 -1;\n"
      "     ^~\n"
      "t.bp:11:17: error: lr_step every must be at least 1, got 0\n"
      "  lr_step every 0 factor 0;\n"
      "                ^\n"
      "t.bp:11:26: error: lr_step factor must be in (0, 1], got 0\n"
      "  lr_step every 0 factor 0;\n"
      "                         ^\n"
      "t.bp:12:23: error: patience must be at least 0, got -1\n"
      "  early_stop patience -1 min_delta -0.1;\n"
      "                      ^~\n"
      "t.bp:12:36: error: min_delta must be >= 0, got -0.1\n"
      "  early_stop patience -1 min_delta -0.1;\n"
      "                                   ^~~~\n" },

    { "int_overflow", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 99999999999999999999;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:9: error: dense units must be at most 1048576, got 99999999999999999999\n"
      "  dense 99999999999999999999;\n"
      "        ^~~~~~~~~~~~~~~~~~~~\n" },

    { "seed_overflow", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { seed 18446744073709551616; }\n",
      "t.bp:5:14: error: seed must be an integer from 0 to 2^64-1, got 18446744073709551616\n"
      "train { seed 18446744073709551616; }\n"
      "             ^~~~~~~~~~~~~~~~~~~~\n" },

    { "float_range", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { sgd lr 1e999; }\n",
      "t.bp:5:16: error: lr 1e999 is too large for a float\n"
      "train { sgd lr 1e999; }\n"
      "               ^~~~~\n" },

    { "dim_limit", 1,
      "model m {\n"
      "  input 2000000 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:2:9: error: input height must be at most 1048576, got 2000000\n"
      "  input 2000000 x 28 x 1;\n"
      "        ^~~~~~~\n" },

    { "input_too_large", 1,
      "model m {\n"
      "  input 1048576 x 1048576 x 2;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:2:3: error: input is too large: 1048576x1048576x2 is more than 2^40 values per sample\n"
      "  input 1048576 x 1048576 x 2;\n"
      "  ^\n" },

    { "params_too_large", 1,
      "model m {\n"
      "  input 1024 x 1024 x 1024;\n"
      "  loccon 1024 size 3 pad same;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: loccon is too large: it has more than 2^40 parameters\n"
      "  loccon 1024 size 3 pad same;\n"
      "  ^\n" },

    { "missing_semi_layer", 1,
      "model m {\n"
      "  input 28 x 28 x 1\n"
      "  dense 10;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:2:20: error: expected ';' before 'dense'\n"
      "  input 28 x 28 x 1\n"
      "                   ^\n"
      "hint: every layer and setting ends with ';'\n" },

    { "missing_semi_before_output", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 10\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:11: error: expected ';' before 'output'\n"
      "  dense 10\n"
      "          ^\n"
      "hint: every layer and setting ends with ';'\n" },

    { "byte_order_mark", 0,
      "\xef\xbb\xbfmodel m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "" },

    { "zero_width_space", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\xe2\x80\x8b\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:2:21: error: unexpected invisible character U+200B\n"
      "  input 28 x 28 x 1;\xe2\x80\x8b\n"
      "                    ^\n"
      "hint: it shows as nothing or as a space; text pasted from a web page or a word "
      "processor brings such characters: delete it\n" },

    { "byte_order_mark_inside", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  \xef\xbb\xbfoutput 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: unexpected invisible character U+FEFF\n"
      "  \xef\xbb\xbfoutput 10 brainprop;\n"
      "  ^\n"
      "hint: it shows as nothing or as a space; text pasted from a web page or a word "
      "processor brings such characters: delete it\n" },

    { "precision_dims", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train {\n"
      "  precision 3 x 3;\n"
      "}\n",
      "t.bp:6:13: error: precision is ieee, tf32 or 3xtf32, not dimensions\n"
      "  precision 3 x 3;\n"
      "            ^~~~~\n"
      "hint: usage: precision ieee|tf32|3xtf32\n" },

    { "missing_semi_brace", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop\n"
      "}\n",
      "t.bp:3:22: error: expected ';' before '}'\n"
      "  output 10 brainprop\n"
      "                     ^\n"
      "hint: every layer and setting ends with ';'\n" },

    { "invalid_char", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 10 @ relu;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:12: error: unexpected character '@'\n"
      "  dense 10 @ relu;\n"
      "           ^\n" },

    { "unclosed_block", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n",
      "t.bp:3:23: error: expected a name or '}' at end of file\n"
      "  output 10 brainprop;\n"
      "                      ^\n"
      "hint: the block opened by the '{' at 1:9 is not closed; add '}'\n" },

    { "missing_name", 1,
      "model {\n"
      "  input 28 x 28 x 1;\n"
      "}\n",
      "t.bp:1:7: error: expected a name before '{'\n"
      "model {\n"
      "      ^\n"
      "hint: a model is written 'model NAME { ... }'\n" },

    { "pad_typo", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8 size 3 pad sme;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:21: error: pad must be 'same' or 'valid', got 'sme'\n"
      "  conv 8 size 3 pad sme;\n"
      "                    ^~~\n"
      "hint: did you mean 'same'?\n" },

    { "missing_size", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8 stride 2;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: conv is missing 'size'\n"
      "  conv 8 stride 2;\n"
      "  ^~~~\n"
      "hint: usage: conv F size K [stride S] [pad same|valid] [relu] "
      "[feedback tied|random|sign|kolen_pollack [decay D]]\n" },

    { "output_no_rule", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10;\n"
      "}\n",
      "t.bp:3:3: error: output needs a learning rule: 'brainprop' or 'softmax'\n"
      "  output 10;\n"
      "  ^~~~~~\n"
      "hint: usage: output N (brainprop [epsilon E] | softmax) "
      "[feedback tied|random|sign|kolen_pollack|direct [decay D]]\n" },

    { "output_two_rules", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop softmax;\n"
      "}\n",
      "t.bp:3:23: error: output takes one learning rule, not both brainprop and softmax\n"
      "  output 10 brainprop softmax;\n"
      "                      ^~~~~~~\n" },

    { "epsilon_softmax", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 softmax epsilon 0.1;\n"
      "}\n",
      "t.bp:3:21: error: epsilon applies only to the brainprop rule\n"
      "  output 10 softmax epsilon 0.1;\n"
      "                    ^~~~~~~\n"
      "hint: softmax outputs are trained by error backpropagation, without exploration\n" },

    { "setting_in_model", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  batch 32;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: 'batch' is a train setting; it belongs in the train block\n"
      "  batch 32;\n"
      "  ^~~~~\n"
      "hint: write it in 'train { ... }' after the model\n" },

    { "layer_in_train", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { dense 10; }\n",
      "t.bp:5:9: error: 'dense' is a layer; layers belong in the model block\n"
      "train { dense 10; }\n"
      "        ^~~~~\n" },

    { "second_model", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:5:1: error: a second model block; a file holds one\n"
      "model m {\n"
      "^~~~~\n"
      "hint: the first is at 1:1\n" },

    { "second_train", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { }\n"
      "train { }\n",
      "t.bp:6:1: error: a second train block; a file holds one\n"
      "train { }\n"
      "^~~~~\n"
      "hint: the first is at 5:1\n" },

    { "no_model", 1,
      "train { batch 32; }\n",
      "t.bp: error: no model in this file\n"
      "hint: a model is written 'model NAME { input H x W x C; ... output N brainprop; }'\n" },

    { "two_dims", 1,
      "model m {\n"
      "  input 28 x 28;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:2:9: error: input needs 3 dimensions H x W x C, got 2\n"
      "  input 28 x 28;\n"
      "        ^~~~~~~\n" },

    { "flat_input", 1,
      "model m {\n"
      "  input 784;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:2:9: error: input needs its shape H x W x C, as in 'input 28 x 28 x 1'\n"
      "  input 784;\n"
      "        ^~~\n"
      "hint: a shape has three dimensions: height x width x channels\n" },

    { "stray_number", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 500 300;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:13: error: unexpected number '300' in dense\n"
      "  dense 500 300;\n"
      "            ^~~\n"
      "hint: usage: dense N [relu] [feedback tied|random|sign|kolen_pollack [decay D]]\n" },

    { "option_needs_value", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8 size;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:10: error: option 'size' needs a value, as in 'size 3'\n"
      "  conv 8 size;\n"
      "         ^~~~\n" },

    { "float_units", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 5.5;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:9: error: dense units must be an integer, got 5.5\n"
      "  dense 5.5;\n"
      "        ^~~\n" },

    { "dataset_mismatch", 2,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { data cifar100; }\n",
      "t.bp:2:3: error: the input is 28x28x1, but cifar100 images are 32x32x3\n"
      "  input 28 x 28 x 1;\n"
      "  ^\n"
      "hint: data cifar100 is set at 5:14\n"
      "t.bp:3:3: error: output has 10 units, but cifar100 has 100 classes\n"
      "  output 10 brainprop;\n"
      "  ^\n"
      "hint: data cifar100 is set at 5:14\n" },

    { "batchnorm_option", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  batchnorm relu;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:13: error: unknown option 'relu' for batchnorm\n"
      "  batchnorm relu;\n"
      "            ^~~~\n"
      "hint: batchnorm takes no options\n" },

    { "comma", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 8, size 3;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:9: error: unexpected character ','\n"
      "  conv 8, size 3;\n"
      "        ^\n"
      "hint: options and values are separated by spaces, not commas\n" },

    { "number_statement", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  500;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: expected a name or '}' before '500'\n"
      "  500;\n"
      "  ^~~\n"
      "hint: each layer or setting starts with its name, as in 'dense 500 relu;'\n" },

    { "stray_top", 1,
      "foo;\n"
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:1:1: error: expected 'model' or 'train' before 'foo'\n"
      "foo;\n"
      "^~~\n"
      "hint: a .bp file holds 'model NAME { ... }' and an optional 'train { ... }'\n" },

    { "missing_semi_train", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train {\n"
      "  batch 32\n"
      "  epochs 5;\n"
      "}\n",
      "t.bp:6:11: error: expected ';' before 'epochs'\n"
      "  batch 32\n"
      "          ^\n"
      "hint: every layer and setting ends with ';'\n" },

    { "word_for_number", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense many;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:3:9: error: dense needs its number of units, as in 'dense 500 relu'\n"
      "  dense many;\n"
      "        ^~~~\n" },

    { "sgd_missing_lr", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { sgd 0.1; }\n",
      "t.bp:5:13: error: expected 'lr' before '0.1'\n"
      "train { sgd 0.1; }\n"
      "            ^~~\n"
      "hint: usage: sgd lr X\n" },

    { "lr_step_missing_factor", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  output 10 brainprop;\n"
      "}\n"
      "train { lr_step every 10; }\n",
      "t.bp:5:9: error: lr_step is missing 'factor'\n"
      "train { lr_step every 10; }\n"
      "        ^~~~~~~\n"
      "hint: usage: lr_step every N factor F\n" },

    { "tab_and_utf8", 1,
      "model m {\n"
      "\tinput 28 x 28 x 1;\n"
      "\td\xc3" "\xa9" "nse 10;\n"
      "\toutput 10 brainprop;\n"
      "}\n",
      "t.bp:3:3: error: unexpected character '\xc3" "\xa9" "'\n"
      "\td\xc3" "\xa9" "nse 10;\n"
      "\t ^\n" },

    { "pool_after_dense", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  dense 64;\n"
      "  maxpool size 2;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:4:3: error: maxpool needs a spatial input, but dense at 3:3 flattened it\n"
      "  maxpool size 2;\n"
      "  ^\n"
      "hint: put maxpool layers before the first dense layer\n" },

    { "pool_to_nothing", 1,
      "model m {\n"
      "  input 28 x 28 x 1;\n"
      "  conv 4 size 5 stride 3 pad valid relu;\n"
      "  maxpool size 4 stride 4;\n"
      "  maxpool size 2;\n"
      "  maxpool size 2;\n"
      "  output 10 brainprop;\n"
      "}\n",
      "t.bp:6:16: error: the input to maxpool at 6:3 is 1x1x4; a 2x2 window leaves no output\n"
      "  maxpool size 2;\n"
      "               ^\n"
      "hint: use a smaller window, or remove this maxpool\n" },

};

static void test_diagnostics(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const diag_case *c = &CASES[i];
        result r = run(c->src);
        if (strcmp(r.diag, c->expect) || r.nerrors != c->nerrors)
            print_error("case %s: %d errors, got:\n%s\nexpected %d:\n%s", c->name, r.nerrors,
                        r.diag, c->nerrors, c->expect);
        assert_string_equal(r.diag, c->expect);
        assert_int_equal(r.nerrors, c->nerrors);
        done(&r);
    }
}

/* Three planted errors on three lines: three located messages in one run. */
static void test_three_errors(void **state) {
    (void)state;
    result r = run("model m {\n"
                   "  input 28 x 28 x 1;\n"
                   "  conv 32 size 3 stride 0 relu;\n"
                   "  dense 500 relux;\n"
                   "  dropout 1.5;\n"
                   "  output 10 brainprop;\n"
                   "}\n");
    assert_int_equal(r.nerrors, 3);
    assert_non_null(strstr(r.diag, "t.bp:3:25: error: stride must be at least 1, got 0\n"));
    assert_non_null(strstr(r.diag, "t.bp:4:13: error: unknown option 'relux' for dense\n"));
    assert_non_null(strstr(r.diag, "t.bp:5:11: error: dropout rate must be in [0, 1), got 1.5\n"));
    done(&r);
}

static void test_syntax_errors_recover(void **state) {
    (void)state;
    result r = run("model m {\n"
                   "  input 28 x 28 x 1;\n"
                   "  dense 10 = 3;\n"
                   "  dense 10 relu;\n"
                   "  conv 3 size 3 \"x\";\n"
                   "  output 10 brainprop;\n"
                   "}\n"
                   "train { batch 3 ! }\n");
    assert_int_equal(r.nerrors, 3);
    assert_non_null(strstr(r.diag, "t.bp:3:12: error: unexpected character '='\n"));
    assert_non_null(strstr(r.diag, "t.bp:5:17: error: unexpected character '\"'\n"));
    assert_non_null(strstr(r.diag, "t.bp:8:17: error: unexpected character '!'\n"));
    done(&r);
}

/* Past the limit, one more line says so and the rest is counted, not printed. */
static void test_too_many_errors(void **state) {
    (void)state;
    char src[4096] = "model m {\n  input 28 x 28 x 1;\n";
    for (int i = 0; i < 30; i++) strcat(src, "  dense 0;\n");
    strcat(src, "  output 10 brainprop;\n}\n");
    result r = run(src);
    int lines = 0;
    for (const char *p = r.diag; (p = strstr(p, ": error: ")); p++) lines++;
    assert_int_equal(lines, 20);
    assert_non_null(strstr(r.diag, "\nt.bp: too many errors; stopped after the first 20\n"));
    assert_true(r.nerrors > 20);
    done(&r);

    /* the same with syntax errors, which stop the parser */
    memset(src, 0, sizeof src);
    strcpy(src, "model m {\n");
    for (int i = 0; i < 40; i++) strcat(src, "  dense 1 @;\n");
    r = run(src);
    lines = 0;
    for (const char *p = r.diag; (p = strstr(p, ": error: ")); p++) lines++;
    assert_int_equal(lines, 20);
    assert_non_null(strstr(r.diag, "\nt.bp: too many errors; stopped after the first 20\n"));
    done(&r);
}

/* Syntax errors and statement errors come out together, in line order. */
static void test_errors_in_line_order(void **state) {
    (void)state;
    result r = run("model m {\n"
                   "  input 28 x 28 x 1;\n"
                   "  dense 500 relux;\n"
                   "  dense 10 @;\n"
                   "  dropout 2;\n"
                   "}\n"
                   "train { bach 3; }\n");
    assert_int_equal(r.nerrors, 4);
    const char *a = strstr(r.diag, "t.bp:3:13: error: unknown option 'relux' for dense\n");
    const char *b = strstr(r.diag, "t.bp:4:12: error: unexpected character '@'\n");
    const char *c = strstr(r.diag, "t.bp:5:11: error: dropout rate must be in [0, 1), got 2\n");
    const char *e = strstr(r.diag, "t.bp:7:9: error: unknown train setting 'bach'\n");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(e);
    assert_true(a < b && b < c && c < e);
    /* no "no output layer": the layer list has a hole where the '@' was */
    assert_null(strstr(r.diag, "no output"));
    done(&r);
}

static void test_file_io(void **state) {
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    int nerrors = -1, io = -1;
    FILE *f = open_memstream(&buf, &len);
    bp_ir *ir = bp_frontend_file("/nonexistent/dir/m.bp", f, &nerrors, &io);
    fclose(f);
    assert_null(ir);
    assert_int_equal(nerrors, 0);
    assert_int_equal(io, 1);
    assert_string_equal(buf, "/nonexistent/dir/m.bp: error: cannot read the file: "
                             "No such file or directory\n");
    free(buf);

    char path[] = "/tmp/bpc_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, MNIST_CONV, sizeof MNIST_CONV - 1), (ssize_t)sizeof MNIST_CONV - 1);
    close(fd);
    ir = bp_frontend_file(path, stderr, &nerrors, &io);
    assert_non_null(ir);
    assert_int_equal(nerrors, 0);
    assert_int_equal(io, 0);
    assert_string_equal(ir->path, path);
    bp_ir_free(ir);
    unlink(path);
}

/* ---- hostile input: errors, never a crash or a hang -------------------------------------- */

static void test_hostile_input(void **state) {
    (void)state;
    /* NUL bytes and control characters */
    static const char nul[] = "model m {\0 input 2x2x1; output 2 softmax; }";
    result r = run_len(nul, sizeof nul - 1);
    assert_int_equal(r.nerrors, 1);
    assert_non_null(strstr(r.diag, "unexpected character '\\x00'"));
    done(&r);

    /* a very long dimension list, identifier and number */
    size_t n = 300000;
    char *big = malloc(n + 64);
    strcpy(big, "model m { input 1");
    size_t k = strlen(big);
    while (k < n) { big[k++] = 'x'; big[k++] = '1'; }
    strcpy(big + k, "; output 2 softmax; }");
    r = run(big);
    assert_int_equal(r.nerrors, 1);
    assert_non_null(strstr(r.diag, "t.bp:1:17: error: input needs 3 dimensions H x W x C, got "));
    done(&r);
    memset(big, 'a', n);
    big[n] = 0;
    r = run(big);
    assert_int_equal(r.nerrors, 1);
    done(&r);
    memset(big, '9', n);
    memcpy(big, "model m { dense ", 16);
    strcpy(big + n, "; }");
    r = run(big);
    assert_int_equal(r.nerrors, 3); /* the number, no input, no output */
    done(&r);
    memset(big, '{', n);
    big[n] = 0;
    r = run(big);
    assert_true(r.nerrors >= 1);
    done(&r);
    free(big);

    /* a source over the 1 MiB limit is refused as a whole */
    size_t huge = (1u << 20) + 1;
    big = malloc(huge);
    memset(big, ' ', huge);
    r = run_len(big, huge);
    assert_int_equal(r.nerrors, 1);
    assert_string_equal(r.diag, "t.bp: error: the file is too large (the limit is 1048576 "
                                "bytes)\n");
    done(&r);
    free(big);

    /* random bytes, and random mixtures of the language's own words */
    static const char *const words[] = {
        "model", "train", "m", "{", "}", ";", "input", "28", "x", "1", "dense", "conv",
        "size", "3", "stride", "pad", "same", "valid", "relu", "output", "brainprop",
        "softmax", "epsilon", "0.5", "maxpool", "loccon", "dropout", "batchnorm", "-1",
        "data", "mnist", "batch", "\n", "#", "1e999", "99999999999999999999999", "@",
    };
    uint64_t s = 42;
    char buf[512];
    for (int it = 0; it < 3000; it++) {
        size_t len = 0;
        int nw = (int)(s % 40);
        for (int w = 0; w < nw; w++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            if (it % 2) {
                const char *word = words[(s >> 33) % (sizeof words / sizeof words[0])];
                size_t wl = strlen(word);
                if (len + wl + 1 >= sizeof buf) break;
                memcpy(buf + len, word, wl);
                len += wl;
                buf[len++] = ' ';
            } else if (len < sizeof buf) {
                buf[len++] = (char)(s >> 56);
            }
        }
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        r = run_len(buf, len);
        done(&r);
    }
}

/* ---- report and helpers ---------------------------------------------------------------- */

static void test_report(void **state) {
    (void)state;
    result r = ok(MNIST_CONV);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    bp_print_check(f, r.ir);
    fclose(f);
    assert_string_equal(buf,
        "model mnist_conv (t.bp): 9 layers, rule brainprop\n"
        "  #  layer                          output                params       mult-adds\n"
        "  0  input                          28x28x1                    0               0\n"
        "  1  conv 32 3x3 s1 same relu       28x28x32                 288         225,792\n"
        "  2  batchnorm                      28x28x32                  64               0\n"
        "  3  conv 32 3x3 s2 same relu       14x14x32               9,216       1,806,336\n"
        "  4  batchnorm                      14x14x32                  64               0\n"
        "  5  dropout 0.3                    14x14x32                   0               0\n"
        "  6  dense 500 relu                 1x1x500            3,136,000       3,136,000\n"
        "  7  dropout 0.3                    1x1x500                    0               0\n"
        "  8  output 10 brainprop eps 0.02   1x1x10                 5,000           5,000\n"
        "     total                                             3,150,632       5,173,128\n"
        "train: data mnist, batch 128, sgd lr 0.1, lr x0.5 every 100 epochs, epochs 500\n"
        "       early stop patience 45 min_delta 0.001, init normal(0, 0.005), l2 0, seed 1, "
        "precision ieee\n");
    free(buf);
    done(&r);

    char t[32];
    assert_string_equal(bp_thousands(0, t), "0");
    assert_string_equal(bp_thousands(999, t), "999");
    assert_string_equal(bp_thousands(1000, t), "1,000");
    assert_string_equal(bp_thousands(-1234567, t), "-1,234,567");
    assert_string_equal(bp_thousands(1099511627776L, t), "1,099,511,627,776");
}

static void test_suggest(void **state) {
    (void)state;
    static const char *const opts[] = { "size", "stride", "pad", "relu" };
    assert_string_equal(bp_suggest("relux", opts, 4), "relu");
    assert_string_equal(bp_suggest("reul", opts, 4), "relu");
    assert_string_equal(bp_suggest("stide", opts, 4), "stride");
    assert_string_equal(bp_suggest("szie", opts, 4), "size");
    assert_null(bp_suggest("xyz", opts, 4));
    assert_null(bp_suggest("p", opts, 4));
    assert_null(bp_suggest("", opts, 4));
    char buf[64];
    assert_string_equal(bp_join(buf, sizeof buf, opts, 4, " or "), "size, stride, pad or relu");
    assert_string_equal(bp_join(buf, sizeof buf, opts, 1, " or "), "size");
    assert_string_equal(bp_join(buf, 8, opts, 4, " or "), "size, s");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist_conv),
        cmocka_unit_test(test_train_defaults),
        cmocka_unit_test(test_train_all_settings),
        cmocka_unit_test(test_dims_forms),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_options_any_order),
        cmocka_unit_test(test_loccon),
        cmocka_unit_test(test_deep_cifar),
        cmocka_unit_test(test_comments_and_line_ends),
        cmocka_unit_test(test_limits_accepted),
        cmocka_unit_test(test_diagnostics),
        cmocka_unit_test(test_three_errors),
        cmocka_unit_test(test_syntax_errors_recover),
        cmocka_unit_test(test_too_many_errors),
        cmocka_unit_test(test_errors_in_line_order),
        cmocka_unit_test(test_file_io),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_suggest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
