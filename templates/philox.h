/* philox.h: Philox4x32-10, the counter-based generator of Salmon et al. (SC'11),
 * written once for both targets so that a CPU run and a GPU run draw identical
 * numbers. It computes the same function as Random123's philox4x32 (Debian
 * librandom123-dev); tests/unit/test_philox.c checks it against Random123 and the
 * published known-answer vectors.
 *
 * bpc keys every draw by (seed, step, sample, purpose): key = seed (two 32-bit
 * words), counter = {index, sample, step, purpose}. Nothing is stored between draws.
 *
 * BP_FN is defined by the prelude of each target (static inline / __device__).
 */
#ifndef BP_FN
#define BP_FN static inline
#endif

typedef struct { unsigned int v[4]; } bp_u32x4;

BP_FN unsigned int bp_mulhilo32(unsigned int a, unsigned int b, unsigned int *hi) {
    unsigned long long p = (unsigned long long)a * (unsigned long long)b;
    *hi = (unsigned int)(p >> 32);
    return (unsigned int)p;
}

/* One Philox4x32-10 block: ten rounds, key bumped by the Weyl constants in between. */
BP_FN bp_u32x4 bp_philox4x32(bp_u32x4 ctr, unsigned int k0, unsigned int k1) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        unsigned int hi0, hi1;
        unsigned int lo0 = bp_mulhilo32(0xD2511F53u, ctr.v[0], &hi0);
        unsigned int lo1 = bp_mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1);
        bp_u32x4 o;
        o.v[0] = hi1 ^ ctr.v[1] ^ k0;
        o.v[1] = lo1;
        o.v[2] = hi0 ^ ctr.v[3] ^ k1;
        o.v[3] = lo0;
        ctr = o;
    }
    return ctr;
}

/* Purposes: the fourth counter word, so that no two uses share a stream. Dropout
 * layers use BP_RNG_DROPOUT + layer index. The synthetic data set (runtime/synthetic.c)
 * draws under its own key, with purposes BP_RNG_SYNTH_*. */
#define BP_RNG_SHUFFLE 1u
#define BP_RNG_EXPLORE 2u
#define BP_RNG_INIT 3u
#define BP_RNG_SYNTH_LABEL 7u
#define BP_RNG_SYNTH_TEMPLATE 8u
#define BP_RNG_SYNTH_NOISE 9u
#define BP_RNG_DROPOUT 16u

/* The block at counter {block, sample, step, purpose}: four independent words. */
BP_FN bp_u32x4 bp_rand_block(unsigned long long seed, unsigned int step, unsigned int sample,
                             unsigned int purpose, unsigned int block) {
    bp_u32x4 c;
    c.v[0] = block; c.v[1] = sample; c.v[2] = step; c.v[3] = purpose;
    return bp_philox4x32(c, (unsigned int)seed, (unsigned int)(seed >> 32));
}

/* Draw word (idx % 4) of the block at counter {idx / 4, sample, step, purpose}. */
BP_FN unsigned int bp_rand_u32(unsigned long long seed, unsigned int step, unsigned int sample,
                               unsigned int purpose, unsigned int idx) {
    bp_u32x4 c;
    c.v[0] = idx >> 2; c.v[1] = sample; c.v[2] = step; c.v[3] = purpose;
    bp_u32x4 r = bp_philox4x32(c, (unsigned int)seed, (unsigned int)(seed >> 32));
    return r.v[idx & 3u];
}

/* A uniform float in [0, 1) from the top 24 bits: exact, so both targets agree. */
BP_FN float bp_u01(unsigned int x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
