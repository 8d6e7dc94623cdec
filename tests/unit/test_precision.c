/* test_precision.c: the GEMM precision modes of the CPU target (ir.h's bp_precision,
 * runtime/tf32.h, bp_gemm_cpu_prec), the reference that the CUDA target's TF32 and
 * 3xTF32 GEMMs are checked against on a GPU.
 *
 *  - TF32 rounding: known values (ties away from zero, carries into the exponent,
 *    infinities and NaNs kept, subnormals), and for random floats the nearest of the
 *    two TF32 neighbours;
 *  - the 3xTF32 split: big + small is within 2^-21 |a| of a, both parts TF32;
 *  - a TF32 GEMM is exactly the IEEE GEMM of the rounded operands (every element the
 *    descriptor reads, leading-dimension gaps and batches included, is rounded; the
 *    operands in the arena are left as they were; only C changes);
 *  - accuracy against a double GEMM: TF32's error is within its bound and far above
 *    float32's, 3xTF32's is float32's order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "gemm_map.h"
#include "tf32.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float rndf(void) { return (float)((double)(next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }
static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_round_values(void **state) {
    (void)state;
    assert_true(bp_tf32_round(1.0f) == 1.0f);
    assert_true(bp_tf32_round(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f);   /* a tie: away */
    assert_true(bp_tf32_round(-1.0f - 0x1p-11f) == -1.0f - 0x1p-10f); /* ... both signs */
    assert_true(bp_tf32_round(1.0f + 0x1p-11f - 0x1p-23f) == 1.0f);   /* below the tie */
    assert_true(bp_tf32_round(1.0f + 0x1p-11f + 0x1p-23f) == 1.0f + 0x1p-10f);
    assert_true(bp_tf32_round(2.0f - 0x1p-23f) == 2.0f);               /* a carry */
    assert_true(isinf(bp_tf32_round(FLT_MAX)) && bp_tf32_round(FLT_MAX) > 0);
    assert_true(isinf(bp_tf32_round(-INFINITY)) && bp_tf32_round(-INFINITY) < 0);
    assert_true(isnan(bp_tf32_round(NAN)));
    assert_true(bp_tf32_round(0.0f) == 0.0f && !signbit(bp_tf32_round(0.0f)));
    assert_true(signbit(bp_tf32_round(-0.0f)));
    /* subnormals keep 10 bits of the mantissa field as well */
    assert_int_equal(bits(bp_tf32_round(from_bits(0x00001fffu))), 0x00002000u);
    assert_int_equal(bits(bp_tf32_round(from_bits(0x00000fffu))), 0x00000000u);
}

static void test_round_random(void **state) {
    (void)state;
    for (int i = 0; i < 200000; i++) {
        float a = ldexpf(rndf(), (int)(next() % 200) - 100);
        float r = bp_tf32_round(a);
        uint32_t u = bits(a), lo = u & 0xffffe000u;
        assert_int_equal(bits(r) & 0x1fffu, 0);
        /* the nearer of the TF32 values below and above |a| (ties: the one above) */
        float down = from_bits(lo), up = from_bits(lo + 0x2000u);
        double dd = fabs((double)a - down), du = fabs((double)up - a);
        float want = du <= dd ? up : down;
        if (bits(r) != bits(want)) fail_msg("tf32(%a) = %a, want %a", a, r, want);
    }
}

static void test_split(void **state) {
    (void)state;
    for (int i = 0; i < 200000; i++) {
        float a = ldexpf(rndf(), (int)(next() % 60) - 30), big, small;
        bp_tf32_split(a, &big, &small);
        assert_int_equal(bits(big) & 0x1fffu, 0);
        assert_int_equal(bits(small) & 0x1fffu, 0);
        double err = fabs((double)a - ((double)big + small));
        if (err > ldexp(fabs(a), -21)) fail_msg("split(%a) = %a + %a, off by %g", a, big, small, err);
    }
}

/* A descriptor with transposes, gaps in the leading dimensions and two batch members. */
static bp_gemm descriptor(int ta, int tb) {
    bp_gemm g = {.trans_a = ta, .trans_b = tb, .m = 13, .n = 11, .k = 37, .alpha = -0.75f,
                 .beta = 1.0f, .batch = 2};
    long ra = ta ? g.k : g.m, ca = ta ? g.m : g.k, rb = tb ? g.n : g.k, cb = tb ? g.k : g.n;
    g.lda = ca + 3;
    g.ldb = cb + 2;
    g.ldc = g.n + 1;
    g.a = 5;
    g.stride_a = ra * g.lda + 7;
    g.b = g.a + 2 * g.stride_a + 4;
    g.stride_b = rb * g.ldb + 1;
    g.c = g.b + 2 * g.stride_b + 3;
    g.stride_c = g.m * g.ldc + 2;
    return g;
}

static long arena_size(const bp_gemm *g) { return g->c + 2 * g->stride_c + 8; }

static void test_tf32_is_rounded_operands(void **state) {
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            bp_gemm g = descriptor(ta, tb);
            long n = arena_size(&g);
            float *x = malloc(sizeof *x * (size_t)n), *ref = malloc(sizeof *ref * (size_t)n);
            float *orig = malloc(sizeof *orig * (size_t)n);
            float *scratch = malloc(sizeof *scratch * (size_t)(2 * n));
            assert_true(x && ref && orig && scratch);
            for (long i = 0; i < n; i++) x[i] = rndf();
            memcpy(orig, x, sizeof *x * (size_t)n);
            memcpy(ref, x, sizeof *x * (size_t)n);
            long na = bp_gemm_operand_extent(&g, 1, 0), nb = bp_gemm_operand_extent(&g, 1, 1);
            for (long i = 0; i < na; i++) ref[g.a + i] = bp_tf32_round(ref[g.a + i]);
            for (long i = 0; i < nb; i++) ref[g.b + i] = bp_tf32_round(ref[g.b + i]);
            bp_gemm_cpu(&g, ref, 1, 0.1f);
            bp_gemm_cpu_prec(&g, x, 1, 0.1f, BP_PREC_TF32, scratch);
            for (long i = 0; i < n; i++) {
                int in_c = i >= g.c;
                float want = in_c ? ref[i] : orig[i];
                if (bits(x[i]) != bits(want))
                    fail_msg("trans %d%d, float %ld: %a, want %a (%s)", ta, tb, i, x[i], want,
                             in_c ? "C: the GEMM of the rounded operands" : "an operand, untouched");
            }
            free(x); free(ref); free(orig); free(scratch);
        }
}

/* max |C - C_double| / (sum_l |a_il| |b_lj|), over C, for one mode. */
static double gemm_error(bp_precision prec, long m, long n, long k, const float *a, const float *b) {
    bp_gemm g = {.m = m, .n = n, .k = k, .alpha = 1.0f, .beta = 0.0f, .a = 0, .b = m * k,
                 .c = m * k + k * n, .lda = k, .ldb = n, .ldc = n, .batch = 1};
    long size = g.c + m * n;
    float *x = calloc((size_t)size, sizeof *x), *scratch = malloc(sizeof *scratch * (size_t)(2 * size));
    assert_true(x && scratch);
    memcpy(x, a, sizeof *a * (size_t)(m * k));
    memcpy(x + g.b, b, sizeof *b * (size_t)(k * n));
    bp_gemm_cpu_prec(&g, x, 1, 0.0f, prec, scratch);
    double worst = 0;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            double s = 0, scale = 0;
            for (long l = 0; l < k; l++) {
                s += (double)a[i * k + l] * b[l * n + j];
                scale += fabs((double)a[i * k + l] * b[l * n + j]);
            }
            double err = fabs(x[g.c + i * n + j] - s) / scale;
            if (err > worst) worst = err;
        }
    free(x);
    free(scratch);
    return worst;
}

static void test_accuracy(void **state) {
    (void)state;
    long m = 48, n = 40, k = 512;
    float *a = malloc(sizeof *a * (size_t)(m * k)), *b = malloc(sizeof *b * (size_t)(k * n));
    assert_true(a && b);
    for (long i = 0; i < m * k; i++) a[i] = rndf();
    for (long i = 0; i < k * n; i++) b[i] = rndf();
    double ieee = gemm_error(BP_PREC_IEEE, m, n, k, a, b);
    double tf32 = gemm_error(BP_PREC_TF32, m, n, k, a, b);
    double three = gemm_error(BP_PREC_3XTF32, m, n, k, a, b);
    print_message("relative error: ieee %.3g, tf32 %.3g, 3xtf32 %.3g\n", ieee, tf32, three);
    /* TF32: each product off by at most 2 * 2^-11 (both operands rounded), plus the
     * float32 sums; far above float32's own error */
    assert_true(tf32 <= 0x1p-10 + 8 * ieee);
    assert_true(tf32 > 50 * ieee);
    /* 3xTF32: float32's order (the dropped small x small term is 2^-22) */
    assert_true(three <= 4 * ieee + 0x1p-21);
    assert_true(three < tf32 / 50);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_values),
        cmocka_unit_test(test_round_random),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_tf32_is_rounded_operands),
        cmocka_unit_test(test_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
