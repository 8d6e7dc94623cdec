/* test_gemm_map.c: checks runtime/gemm_map.c, the row-major plan GEMM -> column-major
 * cuBLAS mapping, without a GPU.
 *
 * Each case fills a float arena with a NaN sentinel, writes random operands into it
 * (row-major, with padded leading dimensions and batch strides), and computes the
 * descriptor twice: with a naive row-major GEMM read straight off the bp_gemm, and
 * with a naive column-major GEMM (what cuBLAS computes) run on bp_gemm_map's call.
 * The two must agree on C, and every other float of the arena, padding included, must
 * keep its sentinel bits: a mapped call that reads padding yields NaN, one that writes
 * outside C breaks a sentinel. A real column-major BLAS (CBLAS, CblasColMajor) runs the
 * mapped call too, so the naive column-major GEMM is itself checked against a library,
 * and the CPU backend's bp_gemm_cpu runs the descriptor, so both targets are held to
 * the same reference. Covers all four transpose pairs, batched and not, m_nb,
 * k_nb, alpha_lr and beta_l2, plus the plan's own descriptors (linear and locally
 * connected) and the checks that reject bad descriptors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include "exec.h" /* bp_gemm_cpu */
#include "gemm_map.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static long rnd(long lo, long hi) { return lo + (long)(next() % (uint64_t)(hi - lo + 1)); }
static float rndf(void) { return (float)((double)(next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

static const uint32_t SENTINEL = 0x7fc0beefu; /* a quiet NaN with a recognisable payload */
static float sentinel(void) { float f; memcpy(&f, &SENTINEL, 4); return f; }
static int is_sentinel(float f) { uint32_t u; memcpy(&u, &f, 4); return u == SENTINEL; }

/* Naive row-major reference, straight from the descriptor's definition in plan.h. */
static void ref_rowmajor(const bp_gemm *g, float *A, int nb, float lr) {
    long m = g->m * (g->m_nb ? nb : 1), n = g->n, k = g->k * (g->k_nb ? nb : 1);
    float alpha = g->alpha * (g->alpha_lr ? lr : 1.0f), beta = g->beta - 2.0f * lr * g->beta_l2;
    for (int bi = 0; bi < (g->batch > 1 ? g->batch : 1); bi++) {
        const float *a = A + g->a + bi * g->stride_a, *b = A + g->b + bi * g->stride_b;
        float *c = A + g->c + bi * g->stride_c;
        for (long i = 0; i < m; i++)
            for (long j = 0; j < n; j++) {
                float s = 0.0f;
                for (long l = 0; l < k; l++) {
                    float x = g->trans_a ? a[l * g->lda + i] : a[i * g->lda + l];
                    float y = g->trans_b ? b[j * g->ldb + l] : b[l * g->ldb + j];
                    s += x * y;
                }
                c[i * g->ldc + j] = beta == 0.0f ? alpha * s : alpha * s + beta * c[i * g->ldc + j];
            }
    }
}

/* Naive column-major GEMM with BLAS semantics (what cublasSgemm[StridedBatched] does). */
static void ref_colmajor(const bp_gemm_cm *c, float *A) {
    for (int bi = 0; bi < c->batch; bi++) {
        const float *a = A + c->a + bi * c->stride_a, *b = A + c->b + bi * c->stride_b;
        float *C = A + c->c + bi * c->stride_c;
        for (int i = 0; i < c->m; i++)
            for (int j = 0; j < c->n; j++) {
                float s = 0.0f;
                for (int l = 0; l < c->k; l++) {
                    float x = c->trans_a ? a[i * c->lda + l] : a[l * c->lda + i];
                    float y = c->trans_b ? b[l * c->ldb + j] : b[j * c->ldb + l];
                    s += y * x;
                }
                float *o = &C[j * c->ldc + i];
                *o = c->beta == 0.0f ? c->alpha * s : c->alpha * s + c->beta * *o;
            }
    }
}

/* Writes random values into the logical elements of a row-major operand. */
static void fill(float *A, long off, long rows, long cols, long ld, int batch, long stride) {
    for (int bi = 0; bi < batch; bi++)
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++) A[off + bi * stride + r * ld + c] = rndf();
}

/* Runs one descriptor both ways on the arena (already holding operands) and compares. */
static void check(const bp_gemm *g, float *arena, long size, int nb, float lr) {
    float *ref = malloc(sizeof *ref * (size_t)size), *got = malloc(sizeof *got * (size_t)size);
    assert_non_null(ref);
    assert_non_null(got);
    memcpy(ref, arena, sizeof *ref * (size_t)size);
    memcpy(got, arena, sizeof *got * (size_t)size);
    bp_gemm_cm cm;
    bp_err e = {{0}};
    int rc = bp_gemm_map(g, nb, lr, size, &cm, &e);
    if (rc) fail_msg("bp_gemm_map refused a valid descriptor: %s", e.msg);
    /* the shape of the call itself */
    assert_int_equal(cm.trans_a, g->trans_b != 0);
    assert_int_equal(cm.trans_b, g->trans_a != 0);
    assert_int_equal(cm.m, g->n);
    assert_int_equal(cm.n, g->m * (g->m_nb ? nb : 1));
    assert_int_equal(cm.k, g->k * (g->k_nb ? nb : 1));
    assert_int_equal(cm.a, g->b);
    assert_int_equal(cm.b, g->a);
    assert_int_equal(cm.c, g->c);
    ref_rowmajor(g, ref, nb, lr);
    ref_colmajor(&cm, got);
    float *lib = malloc(sizeof *lib * (size_t)size), *cpu = malloc(sizeof *cpu * (size_t)size);
    assert_non_null(lib);
    assert_non_null(cpu);
    memcpy(cpu, arena, sizeof *cpu * (size_t)size);
    bp_gemm_cpu(g, cpu, nb, lr);
    memcpy(lib, arena, sizeof *lib * (size_t)size);
    for (int bi = 0; bi < cm.batch && cm.m > 0 && cm.n > 0; bi++)
        cblas_sgemm(CblasColMajor, cm.trans_a ? CblasTrans : CblasNoTrans,
                    cm.trans_b ? CblasTrans : CblasNoTrans, cm.m, cm.n, cm.k, cm.alpha,
                    lib + cm.a + bi * cm.stride_a, cm.lda, lib + cm.b + bi * cm.stride_b, cm.ldb,
                    cm.beta, lib + cm.c + bi * cm.stride_c, cm.ldc);
    for (long i = 0; i < size; i++) {
        if (is_sentinel(ref[i])) {
            if (!is_sentinel(got[i]) || !is_sentinel(lib[i]) || !is_sentinel(cpu[i]))
                fail_msg("float %ld: written outside C (%g, CBLAS %g, bp_gemm_cpu %g)", i, got[i],
                         lib[i], cpu[i]);
            continue;
        }
        if (isnan(got[i]) || fabsf(got[i] - ref[i]) > 1e-5f + 1e-5f * fabsf(ref[i]))
            fail_msg("float %ld: column-major %.9g, row-major %.9g (trans %d%d m=%ld n=%ld k=%ld "
                     "batch=%d nb=%d)", i, got[i], ref[i], g->trans_a, g->trans_b, g->m, g->n, g->k,
                     g->batch, nb);
        if (isnan(lib[i]) || fabsf(lib[i] - ref[i]) > 1e-5f + 1e-5f * fabsf(ref[i]))
            fail_msg("float %ld: CBLAS column-major %.9g, row-major %.9g", i, lib[i], ref[i]);
        if (isnan(cpu[i]) || fabsf(cpu[i] - ref[i]) > 1e-5f + 1e-5f * fabsf(ref[i]))
            fail_msg("float %ld: bp_gemm_cpu %.9g, row-major %.9g", i, cpu[i], ref[i]);
    }
    free(cpu);
    free(lib);
    free(ref);
    free(got);
}

/* A random descriptor with padded leading dimensions, laid out one operand after the
 * other with random gaps; batched operands either one after another or interleaved. */
static void random_case(int ta, int tb, int batch, int m_nb, int k_nb, int alpha_lr, int l2) {
    int nb = (int)rnd(1, 4);
    bp_gemm g = {.trans_a = ta, .trans_b = tb, .m = rnd(1, 6), .n = rnd(1, 6), .k = rnd(1, 6),
                 .m_nb = m_nb, .k_nb = k_nb, .alpha = rndf() * 2, .beta = (next() & 1) ? 0.0f : rndf(),
                 .alpha_lr = alpha_lr, .beta_l2 = l2 ? 0.25f : 0.0f, .batch = batch};
    if (l2 && g.beta == 0.0f) g.beta = 1.0f; /* weight decay only makes sense on an update */
    float lr = 0.125f + (float)rnd(0, 7) / 16.0f;
    long m = g.m * (m_nb ? nb : 1), k = g.k * (k_nb ? nb : 1), n = g.n;
    long ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    int inter = batch > 1 && (next() & 1);
    /* interleaved: entry i of a row-major operand sits i*cols further along each row */
    g.lda = (inter ? ac * batch : ac) + rnd(0, 3);
    g.ldb = (inter ? bc * batch : bc) + rnd(0, 3);
    g.ldc = (inter ? n * batch : n) + rnd(0, 3);
    long pos = rnd(0, 5);
    long ea = ar * g.lda, eb = br * g.ldb, ec = m * g.ldc; /* one entry's footprint */
    g.a = pos; g.stride_a = inter ? ac : ea + rnd(0, 4);
    pos += inter ? ea : batch * (ea + 4);
    pos += rnd(1, 5);
    g.b = pos; g.stride_b = inter ? bc : eb + rnd(0, 4);
    pos += inter ? eb : batch * (eb + 4);
    pos += rnd(1, 5);
    g.c = pos; g.stride_c = inter ? n : ec + rnd(0, 4);
    pos += inter ? ec : batch * (ec + 4);
    long size = pos + rnd(1, 5);
    if (batch == 1) g.stride_a = g.stride_b = g.stride_c = 0;
    float *A = malloc(sizeof *A * (size_t)size);
    assert_non_null(A);
    for (long i = 0; i < size; i++) A[i] = sentinel();
    fill(A, g.a, ar, ac, g.lda, batch, g.stride_a);
    fill(A, g.b, br, bc, g.ldb, batch, g.stride_b);
    fill(A, g.c, m, n, g.ldc, batch, g.stride_c);
    check(&g, A, size, nb, lr);
    free(A);
}

static void test_random_descriptors(void **state) {
    (void)state;
    for (int rep = 0; rep < 40; rep++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int batch = 1; batch <= 3; batch += 2)
                    for (int flags = 0; flags < 16; flags++)
                        random_case(ta, tb, batch, flags & 1, (flags >> 1) & 1, (flags >> 2) & 1,
                                    (flags >> 3) & 1);
}

/* The descriptors compiler/plan.c writes, with the plan's own offsets and strides. */
static void plan_case(bp_gemm g, long size, int nb, float lr) {
    float *A = malloc(sizeof *A * (size_t)size);
    assert_non_null(A);
    for (long i = 0; i < size; i++) A[i] = rndf();
    check(&g, A, size, nb, lr);
    free(A);
}

static void test_plan_descriptors(void **state) {
    (void)state;
    const long B = 4, P = 6, F = 3, K = 5; /* batch, positions, filters, K*K*Cin */
    const long x = 0, w = x + B * P * K, y = w + P * F * K, fb = y + B * P * F, dx = fb + B * P * F;
    const long size = dx + B * P * K;
    for (int nb = 1; nb <= B; nb++) {
        /* conv: y[rows*nb, F] = x[rows*nb, K] W^T; dx = fb W; W <- (1-2 lr l2) W - lr fb^T x */
        plan_case((bp_gemm){.trans_b = 1, .m = P, .m_nb = 1, .n = F, .k = K, .alpha = 1, .a = x,
                            .lda = K, .b = w, .ldb = K, .c = y, .ldc = F, .batch = 1}, size, nb, 0.1f);
        plan_case((bp_gemm){.m = P, .m_nb = 1, .n = K, .k = F, .alpha = 1, .a = fb, .lda = F, .b = w,
                            .ldb = K, .c = dx, .ldc = K, .batch = 1}, size, nb, 0.1f);
        plan_case((bp_gemm){.trans_a = 1, .m = F, .n = K, .k = P, .k_nb = 1, .alpha = -1, .alpha_lr = 1,
                            .beta = 1, .beta_l2 = 1e-3f, .a = fb, .lda = F, .b = x, .ldb = K, .c = w,
                            .ldc = K, .batch = 1}, size, nb, 0.1f);
        /* loccon: one weight matrix per position p, P GEMMs of nb rows, interleaved */
        plan_case((bp_gemm){.trans_b = 1, .m = 1, .m_nb = 1, .n = F, .k = K, .alpha = 1, .a = x,
                            .lda = P * K, .b = w, .ldb = K, .c = y, .ldc = P * F, .batch = (int)P,
                            .stride_a = K, .stride_b = F * K, .stride_c = F}, size, nb, 0.1f);
        plan_case((bp_gemm){.m = 1, .m_nb = 1, .n = K, .k = F, .alpha = 1, .a = fb, .lda = P * F,
                            .b = w, .ldb = K, .c = dx, .ldc = P * K, .batch = (int)P, .stride_a = F,
                            .stride_b = F * K, .stride_c = K}, size, nb, 0.1f);
        plan_case((bp_gemm){.trans_a = 1, .m = F, .n = K, .k = 1, .k_nb = 1, .alpha = -1, .alpha_lr = 1,
                            .beta = 1, .beta_l2 = 1e-3f, .a = fb, .lda = P * F, .b = x, .ldb = P * K,
                            .c = w, .ldc = K, .batch = (int)P, .stride_a = F, .stride_b = K,
                            .stride_c = F * K}, size, nb, 0.1f);
    }
}

static void test_scalars(void **state) {
    (void)state;
    bp_gemm g = {.alpha = -1, .alpha_lr = 1, .beta = 1, .beta_l2 = 0.5f};
    float a, b;
    bp_gemm_scalars(&g, 0.25f, &a, &b);
    assert_true(a == -0.25f);
    assert_true(b == 0.75f); /* 1 - 2 * 0.25 * 0.5 */
    g = (bp_gemm){.alpha = 2, .beta = 0};
    bp_gemm_scalars(&g, 0.25f, &a, &b);
    assert_true(a == 2.0f);
    assert_true(b == 0.0f);
}

/* A live batch of 0 makes an m_nb GEMM empty: mapped, with nothing to touch. */
static void test_empty(void **state) {
    (void)state;
    bp_gemm g = {.m = 3, .m_nb = 1, .n = 2, .k = 4, .alpha = 1, .a = 0, .lda = 4, .b = 0, .ldb = 2,
                 .c = 0, .ldc = 2, .batch = 1};
    bp_gemm_cm cm;
    bp_err e;
    assert_int_equal(bp_gemm_map(&g, 0, 0.1f, 1, &cm, &e), 0);
    assert_int_equal(cm.n, 0);
    /* k = 0 (k_nb with nb 0): C = beta C only, A and B untouched */
    float A[8];
    for (int i = 0; i < 8; i++) A[i] = sentinel();
    A[0] = 1; A[1] = 2; A[2] = 3; A[3] = 4;
    g = (bp_gemm){.m = 2, .n = 2, .k = 5, .k_nb = 1, .alpha = 1, .beta = 0.5f, .a = 4, .lda = 1,
                  .b = 4, .ldb = 2, .c = 0, .ldc = 2, .batch = 1};
    check(&g, A, 8, 0, 0.1f);
}

static void refuse(bp_gemm g, long size, int nb, const char *why) {
    bp_gemm_cm cm;
    bp_err e = {{0}};
    if (bp_gemm_map(&g, nb, 0.1f, size, &cm, &e) == 0) fail_msg("accepted a bad descriptor: %s", why);
    assert_true(e.msg[0] != 0);
}

static void test_refuses_bad_descriptors(void **state) {
    (void)state;
    bp_gemm ok = {.m = 2, .n = 3, .k = 4, .alpha = 1, .a = 0, .lda = 4, .b = 8, .ldb = 3, .c = 20,
                  .ldc = 3, .batch = 1};
    bp_gemm_cm cm;
    bp_err e;
    assert_int_equal(bp_gemm_map(&ok, 1, 0.1f, 26, &cm, &e), 0);
    refuse(ok, 25, 1, "C ends past the arena");
    bp_gemm g = ok; g.lda = 3; refuse(g, 100, 1, "lda < k");
    g = ok; g.trans_a = 1; refuse(g, 13, 1, "A stored [k,m] = [4,2] with lda 4 ends at float 13");
    g = ok; g.ldb = 2; refuse(g, 100, 1, "ldb < n");
    g = ok; g.ldc = 2; refuse(g, 100, 1, "ldc < n");
    g = ok; g.a = -1; refuse(g, 100, 1, "negative offset");
    g = ok; g.m = -1; refuse(g, 100, 1, "negative m");
    g = ok; g.m = 1L << 31; refuse(g, 1L << 40, 1, "m beyond int");
    g = ok; g.m = 1L << 20; g.m_nb = 1; refuse(g, 1L << 40, 1 << 12, "m*nb beyond int");
    g = ok; g.batch = 2; g.stride_a = 0; g.stride_b = 0; g.stride_c = 3;
    refuse(g, 100, 1, "batched outputs overlap");
    g = ok; g.batch = 3; g.stride_c = 6;
    assert_int_equal(bp_gemm_map(&g, 1, 0.1f, 38, &cm, &e), 0); /* A, B shared: stride 0 */
    refuse(g, 37, 1, "the third C entry ends at float 37");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_descriptors),
        cmocka_unit_test(test_plan_descriptors),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_refuses_bad_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
