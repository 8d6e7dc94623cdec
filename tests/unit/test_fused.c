/* test_fused.c: every faster path of the code generator gives the results of the
 * plain path, to 1e-5 relative, under the same seed. The fast paths are the ReLU
 * fused into the batch norm that follows it and the batch-norm statistics and
 * reductions through partial sums per (sample, part of its rows, channel);
 * BP_PLAN_PLAIN switches both off.
 * Training steps of real paper models, both rules, on the CPU target (float):
 * every parameter and batch-norm state tensor, and the loss, must agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec.h"
#include "frontend.h"
#include "philox.h"
#include "plan.h"

/* Runs `steps` training steps of the model with the given plan flags; returns all the
 * plan's tensors (in plan order) and the summed loss. */
static float *run(bp_ir *ir, bp_rule rule, int batch, int steps, int flags, long *n, double *loss) {
    bp_plan *p = bp_plan_build_flags(ir, rule, batch, flags);
    assert_non_null(p);
    bp_exec x;
    bp_err e = {{0}};
    if (bp_exec_open(&x, p, BP_TARGET_CPU, &e)) fail_msg("%s", e.msg);
    assert_int_equal(bp_exec_init_params(&x, 7, &e), 0);
    long xb = (long)batch * p->x_bytes;
    unsigned char *xs = malloc((size_t)xb);
    int *ys = malloc(sizeof *ys * (size_t)batch), *as = malloc(sizeof *as * (size_t)batch);
    assert_non_null(xs);
    *loss = 0;
    for (int s = 1; s <= steps; s++) {
        for (long i = 0; i < xb; i++) xs[i] = (unsigned char)bp_rand_u32(7, (unsigned)s, 0, 99u, (unsigned)i);
        for (int b = 0; b < batch; b++) {
            ys[b] = (b * 3 + s) % p->classes;
            as[b] = (b * 5 + s) % p->classes; /* fixed actions: some rewarded, some not */
        }
        float st[BP_NSTATS] = {0};
        assert_int_equal(x.be->put(&x, BP_ARENA_X, 0, xs, xb, &e), 0);
        assert_int_equal(x.be->put(&x, BP_ARENA_I, p->labels, ys, batch, &e), 0);
        assert_int_equal(x.be->put(&x, BP_ARENA_I, p->actions, as, batch, &e), 0);
        assert_int_equal(bp_exec_put_f32(&x, p->stats, st, BP_NSTATS, &e), 0);
        bp_dyn d = {.lr = 0.1f, .nb = batch, .step = (unsigned)s, .fix_actions = 1, .seed = 7};
        assert_int_equal(bp_exec_run(&x, &p->train, &d, &e), 0);
        assert_int_equal(bp_exec_get_f32(&x, p->stats, st, BP_NSTATS, &e), 0);
        *loss += st[BP_STAT_LOSS];
    }
    *n = 0;
    for (int i = 0; i < p->ntensors; i++) *n += p->tensors[i].size;
    float *all = malloc(sizeof *all * (size_t)*n), *at = all;
    for (int i = 0; i < p->ntensors; i++) {
        assert_int_equal(bp_exec_get_f32(&x, p->tensors[i].off, at, p->tensors[i].size, &e), 0);
        at += p->tensors[i].size;
    }
    bp_exec_close(&x);
    bp_plan_free(p);
    free(xs); free(ys); free(as);
    return all;
}

static void same_flags(const char *model, bp_rule rule, int batch, int steps, int flags) {
    int nerr = 0, io = 0;
    bp_ir *ir = bp_frontend_file(model, stderr, &nerr, &io);
    if (!ir) fail_msg("%s: cannot load the model (run from the repository root)", model);
    long n1, n2;
    double l1, l2;
    float *fast = run(ir, rule, batch, steps, 0, &n1, &l1);
    float *plain = run(ir, rule, batch, steps, flags, &n2, &l2);
    assert_int_equal(n1, n2);
    /* per tensor would be finer; over the whole state, relative to the largest value,
     * and separately for the loss */
    bp_plan *p = bp_plan_build(ir, rule, batch);
    long at = 0;
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        double md = 0, mr = 0;
        for (long j = 0; j < t->size; j++) {
            md = fmax(md, fabs((double)fast[at + j] - plain[at + j]));
            mr = fmax(mr, fabs((double)plain[at + j]));
        }
        if (md > 1e-5 * mr + 1e-12)
            fail_msg("%s %s: %s differs by %g (max |value| %g)", model,
                     rule == BP_RULE_EBP ? "ebp" : "brainprop", t->name, md, mr);
        at += t->size;
    }
    if (fabs(l1 - l2) > 1e-5 * fabs(l2)) fail_msg("%s: loss %.9g fused, %.9g plain", model, l1, l2);
    bp_plan_free(p);
    free(fast);
    free(plain);
    bp_ir_free(ir);
}

/* The paths may round differently in the last bit (the C compiler contracts other
 * multiply-adds into FMAs). Two steps of the conv nets stay within 1e-5; the deep net
 * at a batch of 4 has seven batch norms over as few as 64 values per channel, which
 * amplify last-bit differences step after step, so it is compared after one step. */
static void same(const char *model, bp_rule rule, int batch, int steps) {
    same_flags(model, rule, batch, steps, BP_PLAN_NO_FUSE);
    same_flags(model, rule, batch, steps, BP_PLAN_NO_PARTS);
    same_flags(model, rule, batch, steps, BP_PLAN_PLAIN);
    same_flags(model, rule, batch, steps, BP_PLAN_CUDA_ALT);
}

static void test_conv_brainprop(void **s) { (void)s; same("models/mnist_conv.bp", BP_RULE_BRAINPROP, 16, 2); }
static void test_conv_ebp(void **s) { (void)s; same("models/mnist_conv.bp", BP_RULE_EBP, 16, 2); }
static void test_loccon(void **s) { (void)s; same("models/mnist_loccon.bp", BP_RULE_BRAINPROP, 8, 2); }
static void test_deep(void **s) { (void)s; same("models/cifar10_deep.bp", BP_RULE_BRAINPROP, 4, 1); }
static void test_deep_ebp(void **s) { (void)s; same("models/cifar10_deep.bp", BP_RULE_EBP, 4, 1); }

/* The plain plan really is different: a separate ReLU kernel and per-channel stats. */
static void test_plain_differs(void **s) {
    (void)s;
    int nerr = 0, io = 0;
    bp_ir *ir = bp_frontend_file("models/mnist_conv.bp", stderr, &nerr, &io);
    if (!ir) fail_msg("models/mnist_conv.bp: cannot load the model (run from the repository root)");
    bp_plan *f = bp_plan_build_flags(ir, BP_RULE_BRAINPROP, 8, 0);
    bp_plan *q = bp_plan_build_flags(ir, BP_RULE_BRAINPROP, 8, BP_PLAN_PLAIN);
    int relu_f = 0, relu_q = 0, part_f = 0, part_q = 0;
    for (int i = 0; i < f->nkernels; i++) {
        relu_f += strstr(f->kernels[i].name, "_relu") && !strstr(f->kernels[i].name, "gate");
        part_f += strstr(f->kernels[i].name, "partial") != NULL;
    }
    for (int i = 0; i < q->nkernels; i++) {
        relu_q += strstr(q->kernels[i].name, "_relu") && !strstr(q->kernels[i].name, "gate");
        part_q += strstr(q->kernels[i].name, "partial") != NULL;
    }
    assert_true(relu_q > relu_f);  /* the two conv ReLUs are their own kernels when plain */
    assert_true(part_f > 0);
    assert_int_equal(part_q, 0);
    bp_plan_free(f);
    bp_plan_free(q);
    bp_ir_free(ir);
}

/* The CUDA target's kernels (bp_kernel.cuda_alt), run here on the CPU: the deep net's
 * col2im of 64 and 128 channels has a per-channel form; the plan with
 * BP_PLAN_CUDA_ALT really runs it, and it gives the same bits (the same windows summed
 * in the same order). */
static void test_cuda_alt(void **s) {
    (void)s;
    int nerr = 0, io = 0;
    bp_ir *ir = bp_frontend_file("models/cifar10_deep.bp", stderr, &nerr, &io);
    if (!ir) fail_msg("models/cifar10_deep.bp: cannot load the model (run from the repository root)");
    bp_plan *q = bp_plan_build_flags(ir, BP_RULE_BRAINPROP, 4, BP_PLAN_CUDA_ALT);
    bp_plan *f = bp_plan_build_flags(ir, BP_RULE_BRAINPROP, 4, 0);
    int alt_q = 0, alt_f = 0;
    for (int i = 0; i < q->train.n; i++)
        alt_q += q->train.ops[i].kind == BP_OP_KERNEL && strstr(q->kernels[q->train.ops[i].kernel].name, "col2im_ch");
    for (int i = 0; i < f->train.n; i++)
        alt_f += f->train.ops[i].kind == BP_OP_KERNEL && strstr(f->kernels[f->train.ops[i].kernel].name, "col2im_ch");
    assert_int_equal(alt_f, 0);
    assert_int_equal(alt_q, 6); /* every conv but the first (3 channels in) */
    long n1, n2;
    double l1, l2;
    float *a = run(ir, BP_RULE_BRAINPROP, 4, 2, 0, &n1, &l1), *b = run(ir, BP_RULE_BRAINPROP, 4, 2, BP_PLAN_CUDA_ALT, &n2, &l2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, sizeof *a * (size_t)n1);
    assert_true(l1 == l2);
    free(a);
    free(b);
    bp_plan_free(q);
    bp_plan_free(f);
    bp_ir_free(ir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_differs), cmocka_unit_test(test_cuda_alt), cmocka_unit_test(test_conv_brainprop),
        cmocka_unit_test(test_conv_ebp),      cmocka_unit_test(test_loccon),
        cmocka_unit_test(test_deep),          cmocka_unit_test(test_deep_ebp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
