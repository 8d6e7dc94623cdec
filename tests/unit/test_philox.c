/* test_philox.c: checks templates/philox.h, bpc's own Philox4x32-10, against the
 * reference implementation (Random123's philox4x32, Debian librandom123-dev) and the
 * known-answer vectors published with Random123 (kat_vectors).
 *
 * Both CPU and GPU kernels draw from philox.h, so a bug here would change every
 * dropout mask and shuffle on both targets alike; only an outside reference finds it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <Random123/philox.h>
#include "../../templates/philox.h"

/* splitmix64: a fixed, seeded source of test inputs. */
static uint64_t sm_state = 0x243F6A8885A308D3ull;
static uint64_t sm_next(void) {
    uint64_t z = (sm_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void ref_block(const unsigned c[4], const unsigned k[2], unsigned out[4]) {
    philox4x32_ctr_t rc = {{c[0], c[1], c[2], c[3]}};
    philox4x32_key_t rk = {{k[0], k[1]}};
    philox4x32_ctr_t r = philox4x32(rc, rk);
    for (int i = 0; i < 4; i++) out[i] = r.v[i];
}

static void known_answer(unsigned c0, unsigned c1, unsigned c2, unsigned c3, unsigned k0,
                         unsigned k1, unsigned r0, unsigned r1, unsigned r2, unsigned r3) {
    bp_u32x4 c = {{c0, c1, c2, c3}};
    bp_u32x4 r = bp_philox4x32(c, k0, k1);
    assert_int_equal(r.v[0], r0);
    assert_int_equal(r.v[1], r1);
    assert_int_equal(r.v[2], r2);
    assert_int_equal(r.v[3], r3);
    /* and the reference agrees with the published vector too */
    unsigned rc[4] = {c0, c1, c2, c3}, rk[2] = {k0, k1}, ro[4];
    ref_block(rc, rk, ro);
    assert_int_equal(ro[0], r0);
    assert_int_equal(ro[3], r3);
}

static void test_known_answers(void **state) {
    (void)state;
    known_answer(0, 0, 0, 0, 0, 0, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u);
    known_answer(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
                 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu);
    known_answer(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u,
                 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u);
}

static void test_matches_random123(void **state) {
    (void)state;
    for (int t = 0; t < 10000; t++) {
        uint64_t a = sm_next(), b = sm_next(), k = sm_next();
        unsigned c[4] = {(unsigned)a, (unsigned)(a >> 32), (unsigned)b, (unsigned)(b >> 32)};
        unsigned key[2] = {(unsigned)k, (unsigned)(k >> 32)};
        unsigned want[4];
        ref_block(c, key, want);
        bp_u32x4 bc = {{c[0], c[1], c[2], c[3]}};
        bp_u32x4 got = bp_philox4x32(bc, key[0], key[1]);
        for (int i = 0; i < 4; i++) assert_int_equal(got.v[i], want[i]);
    }
}

/* bp_rand_u32 is word idx%4 of the block at counter {idx/4, sample, step, purpose},
 * keyed by the seed's low and high words. */
static void test_rand_u32_layout(void **state) {
    (void)state;
    for (int t = 0; t < 10000; t++) {
        uint64_t seed = sm_next(), r = sm_next(), s = sm_next();
        unsigned step = (unsigned)r, sample = (unsigned)(r >> 32);
        unsigned purpose = (unsigned)s & 31u;
        unsigned idx = t < 64 ? (unsigned)t : (unsigned)(s >> 32);
        unsigned c[4] = {idx / 4, sample, step, purpose};
        unsigned key[2] = {(unsigned)seed, (unsigned)(seed >> 32)};
        unsigned want[4];
        ref_block(c, key, want);
        assert_int_equal(bp_rand_u32(seed, step, sample, purpose, idx), want[idx % 4]);
    }
    /* four consecutive idx share one block, the fifth starts the next */
    bp_u32x4 c0 = {{0, 7, 3, BP_RNG_DROPOUT}}, c1 = {{1, 7, 3, BP_RNG_DROPOUT}};
    bp_u32x4 b0 = bp_philox4x32(c0, 42, 0), b1 = bp_philox4x32(c1, 42, 0);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(bp_rand_u32(42, 3, 7, BP_RNG_DROPOUT, i), b0.v[i]);
        assert_int_equal(bp_rand_u32(42, 3, 7, BP_RNG_DROPOUT, 4 + i), b1.v[i]);
    }
}

static void test_u01_range(void **state) {
    (void)state;
    assert_true(bp_u01(0) == 0.0f);
    assert_true(bp_u01(0xffffffffu) < 1.0f);
    assert_true(bp_u01(0xffffffffu) == 1.0f - 1.0f / 16777216.0f);
    assert_true(bp_u01(0x80000000u) == 0.5f);
    double sum = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        float u = bp_u01(bp_rand_u32(7, 1, 2, BP_RNG_EXPLORE, (unsigned)i));
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    /* mean of n uniforms: sd 0.289/sqrt(n) ~ 0.0009; allow 5 sd */
    assert_true(sum / n > 0.5 - 0.0046 && sum / n < 0.5 + 0.0046);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_matches_random123),
        cmocka_unit_test(test_rand_u32_layout),
        cmocka_unit_test(test_u01_range),
    };
    return cmocka_run_group_tests_name("philox", tests, NULL, NULL);
}
