/* test_rule.c: the learning rules, as Pozzi, Bohte & Roelfsema (NeurIPS 2020) state them.
 *
 *  - BrainProp is gradient descent: with the actions held fixed, one train step moves
 *    every trainable tensor (weights, batch-norm gamma and beta) by exactly -lr times the
 *    gradient of L = (1/nb) sum_b 1/2 (r_b - Q_{b,a_b})^2, where this test computes L
 *    itself from the Q values and takes its gradient by central finite differences
 *    (testutil.h), on small versions of the paper's dense and conv nets (batch norm and
 *    dropout included), on a locally connected one, and on models/mnist_*.bp as
 *    written. Only the chosen unit sends feedback: the output "Lk.fb" is zero except at
 *    a_b, where it is -(r_b - Q_{b,a_b})/nb, and plan->rpe holds r_b - Q_{b,a_b}.
 *  - Action selection is max-Boltzmann: over >= 100,000 draws with known, distinct Q,
 *    the greedy fraction is (1 - eps) + eps softmax(Q)_greedy within 4.5 sigma and the
 *    histogram passes a chi-square test against (1 - eps) onehot(greedy) + eps
 *    softmax(Q); eps = 0 is always greedy and eps = 1 follows softmax(Q); the draws
 *    repeat for the same (seed, step) and change with the step or the seed.
 *  - EBP: the output feedback is (softmax(Q) - onehot(label))/nb, the loss the mean
 *    cross-entropy, and fix_actions does not change either.
 *  - L2: the step adds -2 lr l2 W to every weight and nothing to gamma and beta.
 * Everything runs on the double-precision CPU target.
 */
#include "testutil.h"

#include <unistd.h>

#define PER_TENSOR 24

/* ---- the BrainProp loss, computed here from Q ---------------------------------------- */

static double q_at(const double *q, int K, int b, int k) { return q[(long)b * K + k]; }

/* Runs forward, returns (1/nb) sum 1/2 ([a == y] - Q_a)^2 from the Q it left, and checks
 * that the plan's own loss statistic says the same. */
static double brainprop_loss(tu_net *n, const bp_dyn *d) {
    double lplan = tu_loss(n, &n->plan->forward, d);
    int K = n->plan->classes;
    double *q = malloc(sizeof *q * (size_t)(d->nb * K));
    assert_non_null(q);
    tu_getf(n, n->plan->q, q, d->nb * K);
    double L = 0;
    for (int b = 0; b < d->nb; b++) {
        double r = n->actions[b] == n->labels[b], delta = r - q_at(q, K, b, n->actions[b]);
        L += 0.5 * delta * delta;
    }
    L /= d->nb;
    free(q);
    if (!(fabs(lplan - L) <= 1e-14 * (fabs(L) + 1)))
        fail_msg("stats[LOSS]/nb = %.17g, but 1/nb sum 1/2 (r - Q_a)^2 = %.17g", lplan, L);
    return L;
}

/* The rule's per-sample values after one train step from the current parameters:
 * rpe = r - Q_a, output feedback = -(r - Q_a)/nb at a and 0 elsewhere, the statistics,
 * the greedy predictions, and the fixed actions left alone. */
static void check_brainprop_step(tu_net *n, const bp_dyn *d, const char *what) {
    const bp_plan *p = n->plan;
    int K = p->classes, nb = d->nb;
    double st[BP_NSTATS] = {0};
    tu_putf(n, p->stats, st, BP_NSTATS);
    tu_run(n, &p->train, d);
    double *q = malloc(sizeof *q * (size_t)(nb * K)), *fb = malloc(sizeof *fb * (size_t)(nb * K));
    double *rpe = malloc(sizeof *rpe * (size_t)nb);
    int *act = malloc(sizeof *act * (size_t)nb), *pred = malloc(sizeof *pred * (size_t)nb);
    assert_true(q && fb && rpe && act && pred);
    tu_getf(n, p->q, q, nb * K);
    tu_getf(n, tu_t(n, "L%d.fb", n->ir->n - 1)->off, fb, nb * K);
    tu_getf(n, p->rpe, rpe, nb);
    tu_geti(n, p->actions, act, nb);
    tu_geti(n, p->preds, pred, nb);
    tu_getf(n, p->stats, st, BP_NSTATS);
    double loss = 0, reward = 0, correct = 0;
    for (int b = 0; b < nb; b++) {
        int a = n->actions[b], y = n->labels[b], g = 0;
        for (int k = 1; k < K; k++) if (q_at(q, K, b, k) > q_at(q, K, b, g)) g = k;
        double r = a == y, delta = r - q_at(q, K, b, a);
        if (act[b] != a) fail_msg("%s: sample %d: fix_actions = 1, but action %d became %d", what, b, a, act[b]);
        if (pred[b] != g) fail_msg("%s: sample %d: greedy prediction %d, argmax Q is %d", what, b, pred[b], g);
        if (!(fabs(rpe[b] - delta) <= 1e-15 * (1 + fabs(delta))))
            fail_msg("%s: sample %d: rpe %.17g, r - Q_a = %.17g", what, b, rpe[b], delta);
        for (int k = 0; k < K; k++) {
            double want = k == a ? -delta / nb : 0.0, got = fb[(long)b * K + k];
            if (k != a ? got != 0.0 : !(fabs(got - want) <= 1e-15 * (1 + fabs(want))))
                fail_msg("%s: sample %d: output feedback[%d] = %.17g, expected %.17g (action "
                         "%d, r %g, Q_a %.17g)", what, b, k, got, want, a, r, q_at(q, K, b, a));
        }
        loss += 0.5 * delta * delta;
        reward += r;
        correct += g == y;
    }
    if (!(fabs(st[BP_STAT_LOSS] - loss) <= 1e-14 * (1 + loss)))
        fail_msg("%s: stats[LOSS] %.17g, sum 1/2 rpe^2 %.17g", what, st[BP_STAT_LOSS], loss);
    assert_true(st[BP_STAT_REWARD] == reward);
    assert_true(st[BP_STAT_CORRECT] == correct);
    assert_true(st[BP_STAT_SEEN] == nb);
    /* the fixed actions are right for even samples and wrong for odd ones (tu_batch) */
    assert_true(reward > 0 && reward < nb);
    free(q); free(fb); free(rpe); free(act); free(pred);
}

/* Gradient check with the loss above, then the per-sample checks, for one model. */
static void brainprop_case(const char *what, bp_ir *ir, int B, int per_tensor, uint64_t seed) {
    tu_keep_openmp_loaded();
    tu_net n;
    tu_open_ir(&n, ir, BP_RULE_BRAINPROP, B);
    tu_rng r = {seed};
    tu_params(&n, &r, 1.0);
    tu_batch(&n, &r);
    for (int nb = B; nb >= B - 1; nb--) {
        bp_dyn d = tu_dyn(1.0, nb, 5 + (unsigned)nb);
        char w[160];
        snprintf(w, sizeof w, "%s [nb %d]", what, nb);
        tu_gc g = tu_gradcheck_with(&n, &d, per_tensor, &r, w, brainprop_loss);
        tu_gc_print(w, g);
        check_brainprop_step(&n, &d, w);
    }
    tu_close(&n);
}

static void test_brainprop_dense(void **state) {
    (void)state;
    brainprop_case("dense net (mnist_dense, small)",
                   tu_parse("model d {\n  input 6 x 6 x 1;\n  dense 24 relu;\n  dense 16 relu;\n"
                            "  dense 12 relu;\n  output 10 brainprop epsilon 0.02;\n}\n"),
                   5, PER_TENSOR, 11);
}

static void test_brainprop_conv(void **state) {
    (void)state;
    brainprop_case("conv net (mnist_conv, small)",
                   tu_parse("model c {\n  input 8 x 8 x 1;\n  conv 4 size 3 stride 1 pad same relu;\n"
                            "  batchnorm;\n  conv 4 size 3 stride 2 pad same relu;\n  batchnorm;\n"
                            "  dropout 0.3;\n  dense 20 relu;\n  dropout 0.3;\n"
                            "  output 10 brainprop epsilon 0.02;\n}\n"),
                   5, PER_TENSOR, 12);
}

static void test_brainprop_loccon(void **state) {
    (void)state;
    brainprop_case("loccon net (small)",
                   tu_parse("model l {\n  input 9 x 8 x 2;\n  loccon 3 size 3 stride 1 pad valid relu;\n"
                            "  batchnorm;\n  loccon 3 size 3 stride 2 pad valid relu;\n  batchnorm;\n"
                            "  dropout 0.3;\n  dense 12 relu;\n  dropout 0.3;\n"
                            "  output 10 brainprop epsilon 0.02;\n}\n"),
                   5, PER_TENSOR, 13);
}

/* The paper's nets as written in models/ (run from the repository root). */
static void paper_model(const char *path, uint64_t seed) {
    if (access(path, R_OK) != 0) {
        printf("  %s not found (run from the repository root); skipped\n", path);
        skip();
    }
    int nerr = 0, io = 0;
    bp_ir *ir = bp_frontend_file(path, stderr, &nerr, &io);
    if (!ir) fail_msg("%s: %d errors", path, nerr);
    brainprop_case(path, ir, 3, 12, seed);
}
static void test_brainprop_mnist_dense(void **state) { (void)state; paper_model("models/mnist_dense.bp", 21); }
static void test_brainprop_mnist_conv(void **state) { (void)state; paper_model("models/mnist_conv.bp", 22); }

/* ---- action selection ------------------------------------------------------------------ */

#define NACT 5
/* Upper 0.1% points of chi-square, from the NIST/SEMATECH e-Handbook of Statistical
 * Methods, section 1.3.6.7.4 "Critical Values of the Chi-Square Distribution" (upper
 * tail 0.001): 4 degrees of freedom (NACT - 1 classes), 18.467. */
#define CHI2_4DOF_P001 18.467
#define STEPS 25
#define SELB 4096   /* 25 x 4096 = 102,400 draws */

static const double QV[NACT] = {0.3, 1.2, -0.5, 0.8, 0.0}; /* greedy: 1 */

typedef struct {
    long count[NACT];
    long n;
    double q[NACT];          /* Q as the plan computed it */
    int *acts;               /* [STEPS * SELB] */
} draws;

/* Runs `forward` with fix_actions = 0 for STEPS steps and collects the actions. Each
 * step also checks the RPE of the drawn actions and that preds is the greedy action. */
static void draw_actions(double eps, uint64_t seed, unsigned step0, draws *out) {
    char src[160];
    snprintf(src, sizeof src, "model s { input 1 x 1 x 1; output %d brainprop epsilon %.9g; }", NACT, eps);
    tu_net n;
    tu_open(&n, src, BP_RULE_BRAINPROP, SELB);
    assert_true(fabs(n.ir->layers[1].epsilon - eps) < 1e-7);
    double w[NACT];
    memcpy(w, QV, sizeof w);
    tu_putf(&n, tu_t(&n, "L1.weight")->off, w, NACT);
    memset(n.X, 255, SELB); /* x = 1, so Q = W */
    bp_err e = {{0}};
    assert_int_equal(n.x.be->put(&n.x, BP_ARENA_X, 0, n.X, SELB, &e), 0);
    tu_rng r = {seed ^ 0xabcdef};
    for (int b = 0; b < SELB; b++) n.labels[b] = tu_int(&r, NACT);
    tu_puti(&n, n.plan->labels, n.labels, SELB);
    memset(out, 0, sizeof *out);
    out->acts = malloc(sizeof *out->acts * STEPS * SELB);
    double *q = malloc(sizeof *q * SELB * NACT), *rpe = malloc(sizeof *rpe * SELB);
    int *pred = malloc(sizeof *pred * SELB);
    assert_true(out->acts && q && rpe && pred);
    for (int s = 0; s < STEPS; s++) {
        bp_dyn d = tu_dyn(0.1, SELB, step0 + (unsigned)s);
        d.fix_actions = 0;
        d.seed = seed;
        tu_loss(&n, &n.plan->forward, &d);
        int *a = out->acts + (long)s * SELB;
        tu_geti(&n, n.plan->actions, a, SELB);
        tu_geti(&n, n.plan->preds, pred, SELB);
        tu_getf(&n, n.plan->q, q, SELB * NACT);
        tu_getf(&n, n.plan->rpe, rpe, SELB);
        for (int b = 0; b < SELB; b++) {
            if (a[b] < 0 || a[b] >= NACT) fail_msg("action %d out of range", a[b]);
            out->count[a[b]]++;
            assert_int_equal(pred[b], 1);
            double delta = (a[b] == n.labels[b]) - q[(long)b * NACT + a[b]];
            if (!(fabs(rpe[b] - delta) <= 1e-15))
                fail_msg("sample %d: rpe %.17g, r - Q_a = %.17g", b, rpe[b], delta);
        }
        out->n += SELB;
    }
    memcpy(out->q, q, sizeof out->q);
    for (int k = 0; k < NACT; k++) assert_true(fabs(out->q[k] - QV[k]) < 1e-15);
    free(q); free(rpe); free(pred);
    tu_close(&n);
}

/* (1 - eps) onehot(greedy) + eps softmax(Q); eps as the plan sees it (a float). */
static void expected_probs(const double *q, double eps, double *p) {
    int g = 0;
    double z = 0;
    for (int k = 1; k < NACT; k++) if (q[k] > q[g]) g = k;
    for (int k = 0; k < NACT; k++) z += exp(q[k] - q[g]);
    for (int k = 0; k < NACT; k++) p[k] = eps * exp(q[k] - q[g]) / z + (k == g ? 1 - eps : 0);
}

static double chi2(const draws *d, const double *p) {
    double x = 0;
    for (int k = 0; k < NACT; k++) {
        double e = p[k] * (double)d->n;
        x += (d->count[k] - e) * (d->count[k] - e) / e;
    }
    return x;
}

static void check_selection(double eps) {
    tu_keep_openmp_loaded();
    draws d;
    draw_actions(eps, 0x1234abcdull, 100, &d);
    double p[NACT];
    expected_probs(d.q, (double)(float)eps, p);
    double pg = p[1], sg = sqrt(pg * (1 - pg) / (double)d.n);
    double fg = (double)d.count[1] / (double)d.n;
    double x = chi2(&d, p);
    printf("  eps %-4g: %ld draws, greedy %.5f (expected %.5f, %.2f sigma), chi-square %.3g "
           "(4 dof, critical 18.47 at p = 0.001)\n", eps, d.n, fg, pg,
           sg > 0 ? (fg - pg) / sg : 0.0, eps > 0 ? x : 0.0);
    assert_true(d.n >= 100000);
    if (eps == 0) {
        if (d.count[1] != d.n) fail_msg("eps 0: %ld of %ld actions are not greedy", d.n - d.count[1], d.n);
    } else {
        if (!(fabs(fg - pg) <= 4.5 * sg))
            fail_msg("eps %g: greedy fraction %.5f, expected (1 - eps) + eps softmax_g = %.5f "
                     "+- 4.5 x %.5f", eps, fg, pg, sg);
        if (!(x < CHI2_4DOF_P001))
            fail_msg("eps %g: chi-square %.2f >= %.3f: the actions do not follow (1 - eps) "
                     "onehot + eps softmax(Q); counts %ld %ld %ld %ld %ld, expected %.0f %.0f "
                     "%.0f %.0f %.0f", eps, x, CHI2_4DOF_P001, d.count[0], d.count[1],
                     d.count[2], d.count[3], d.count[4], p[0] * d.n, p[1] * d.n, p[2] * d.n,
                     p[3] * d.n, p[4] * d.n);
    }
    free(d.acts);
}

static void test_select_eps_0_3(void **state) { (void)state; check_selection(0.3); }
static void test_select_eps_0_02(void **state) { (void)state; check_selection(0.02); }
static void test_select_eps_0(void **state) { (void)state; check_selection(0.0); }
static void test_select_eps_1(void **state) { (void)state; check_selection(1.0); }

/* The same (seed, step) draws the same actions; another step or seed other ones. */
static void test_select_repeatable(void **state) {
    (void)state;
    tu_keep_openmp_loaded();
    draws a, b, c, s;
    draw_actions(0.5, 77, 1000, &a);
    draw_actions(0.5, 77, 1000, &b);
    draw_actions(0.5, 77, 1001, &c);   /* steps 1001.. : shifted by one */
    draw_actions(0.5, 78, 1000, &s);
    long N = (long)STEPS * SELB;
    assert_memory_equal(a.acts, b.acts, sizeof *a.acts * (size_t)N);
    /* a's step 1001 is c's first step: the same draws */
    assert_memory_equal(a.acts + SELB, c.acts, sizeof *a.acts * SELB);
    /* a's step 1000 against c's step 1001 (= a's), and against another seed: independent
     * draws agree at sum p_k^2 of the samples, far from all of them */
    double p[NACT], agree = 0;
    expected_probs(a.q, 0.5, p);
    for (int k = 0; k < NACT; k++) agree += p[k] * p[k];
    long same_step = 0, same_seed = 0;
    for (int i = 0; i < SELB; i++) {
        same_step += a.acts[i] == c.acts[i];
        same_seed += a.acts[i] == s.acts[i];
    }
    double sd = sqrt(agree * (1 - agree) / SELB);
    printf("  agreement with the next step %.4f, with another seed %.4f, independent %.4f\n",
           (double)same_step / SELB, (double)same_seed / SELB, agree);
    assert_true(fabs((double)same_step / SELB - agree) <= 4.5 * sd);
    assert_true(fabs((double)same_seed / SELB - agree) <= 4.5 * sd);
    free(a.acts); free(b.acts); free(c.acts); free(s.acts);
}

/* ---- EBP ------------------------------------------------------------------------------- */

static void test_ebp_feedback(void **state) {
    (void)state;
    tu_keep_openmp_loaded();
    tu_net n;
    tu_open(&n, "model e { input 3 x 3 x 2; dense 6 relu; output 5 softmax; }", BP_RULE_EBP, 4);
    tu_rng r = {31};
    tu_params(&n, &r, 2.0);
    tu_batch(&n, &r);
    int K = 5;
    for (int fix = 0; fix < 2; fix++)
        for (int nb = 4; nb >= 3; nb--) {
            bp_dyn d = tu_dyn(0.5, nb, 3);
            d.fix_actions = fix;
            tu_puti(&n, n.plan->actions, n.actions, n.B); /* not greedy for odd samples */
            double lossn = tu_loss(&n, &n.plan->train, &d) * nb;
            double q[4 * 5], fb[4 * 5];
            int act[4];
            tu_getf(&n, n.plan->q, q, nb * K);
            tu_getf(&n, tu_t(&n, "L2.fb")->off, fb, nb * K);
            tu_geti(&n, n.plan->actions, act, nb);
            double ce = 0;
            for (int b = 0; b < nb; b++) {
                double m = q[b * K], z = 0;
                int g = 0;
                for (int k = 0; k < K; k++) if (q[b * K + k] > m) { m = q[b * K + k]; g = k; }
                for (int k = 0; k < K; k++) z += exp(q[b * K + k] - m);
                for (int k = 0; k < K; k++) {
                    double want = (exp(q[b * K + k] - m) / z - (k == n.labels[b])) / nb;
                    if (!(fabs(fb[b * K + k] - want) <= 1e-14 / nb))
                        fail_msg("EBP, nb %d, fix_actions %d: feedback[%d][%d] = %.17g, "
                                 "(softmax - onehot)/nb = %.17g", nb, fix, b, k, fb[b * K + k], want);
                }
                ce += log(z) + m - q[b * K + n.labels[b]];
                /* EBP acts greedily whatever fix_actions says */
                assert_int_equal(act[b], g);
            }
            if (!(fabs(lossn - ce) <= 1e-13 * (1 + ce)))
                fail_msg("EBP: stats[LOSS] %.17g, sum of cross-entropies %.17g", lossn, ce);
        }
    tu_close(&n);
}

/* ---- L2 weight decay ------------------------------------------------------------------ */

static void test_l2(void **state) {
    (void)state;
    tu_keep_openmp_loaded();
    static const char *model =
        "model w {\n  input 8 x 8 x 1;\n  conv 3 size 3 pad same relu;\n  batchnorm;\n"
        "  loccon 3 size 3 stride 2 pad valid relu;\n  dense 8 relu;\n  output 4 brainprop;\n}\n";
    const double l2 = 0.01, lr = 0.5;
    char src[512];
    snprintf(src, sizeof src, "%strain {\n  l2 %g;\n}\n", model, l2);
    tu_net a, b;
    tu_open(&a, model, BP_RULE_BRAINPROP, 4);
    tu_open(&b, src, BP_RULE_BRAINPROP, 4);
    assert_true(fabs(b.ir->train.l2 - l2) < 1e-9);
    tu_rng ra = {41}, rb = {41};
    tu_params(&a, &ra, 1.0);
    tu_params(&b, &rb, 1.0);
    tu_batch(&a, &ra);
    tu_batch(&b, &rb);
    const bp_plan *p = a.plan;
    assert_int_equal(p->ntensors, b.plan->ntensors);
    double **w0 = calloc((size_t)p->ntensors, sizeof *w0);
    assert_non_null(w0);
    for (int i = 0; i < p->ntensors; i++) w0[i] = tu_getv(&a, &p->tensors[i]);
    bp_dyn d = tu_dyn(lr, 4, 9);
    tu_loss(&a, &a.plan->train, &d);
    tu_loss(&b, &b.plan->train, &d);
    int weights = 0, bn = 0;
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        if (!t->trainable) continue;
        double *wa = tu_getv(&a, t), *wb = tu_getv(&b, &b.plan->tensors[i]);
        int is_w = strstr(t->name, ".weight") != NULL;
        weights += is_w;
        bn += !is_w;
        double lrf = (double)d.lr, l2f = (double)b.ir->train.l2;
        for (long j = 0; j < t->size; j++) {
            /* W_l2 - W_0 = -lr 2 l2 W (weights), 0 (gamma, beta) */
            double want = is_w ? -2.0 * lrf * l2f * w0[i][j] : 0.0;
            double tol = 1e-13 * (fabs(w0[i][j]) + fabs(wa[j]));
            if (!(fabs((wb[j] - wa[j]) - want) <= tol))
                fail_msg("%s[%ld]: the l2 step changed it by %.17g, expected %.17g", t->name, j,
                         wb[j] - wa[j], want);
        }
        free(wa);
        free(wb);
    }
    assert_int_equal(weights, 4);
    assert_int_equal(bn, 2);
    for (int i = 0; i < p->ntensors; i++) free(w0[i]);
    free(w0);
    tu_close(&a);
    tu_close(&b);
}

int main(int argc, char **argv) {
    (void)argc;
    tu_passive_openmp(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brainprop_dense),
        cmocka_unit_test(test_brainprop_conv),
        cmocka_unit_test(test_brainprop_loccon),
        cmocka_unit_test(test_brainprop_mnist_dense),
        cmocka_unit_test(test_brainprop_mnist_conv),
        cmocka_unit_test(test_select_eps_0_3),
        cmocka_unit_test(test_select_eps_0_02),
        cmocka_unit_test(test_select_eps_0),
        cmocka_unit_test(test_select_eps_1),
        cmocka_unit_test(test_select_repeatable),
        cmocka_unit_test(test_ebp_feedback),
        cmocka_unit_test(test_l2),
    };
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
