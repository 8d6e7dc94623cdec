/* synthetic.c: a stand-in data set of the right shape, for timing and smoke tests
 * when the real files are absent (CIFAR and Tiny ImageNet cannot be fetched offline).
 * Each class has a fixed random template; an image is its class template blended
 * with per-image noise, so a network can learn it and accuracy means something. */
#include "synthetic.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "philox.h"

static int fill(bp_split *s, long n, int h, int w, int c, int classes, unsigned long long seed,
                unsigned int split, bp_err *e) {
    long S = (long)h * w * c;
    s->n = (int)n; s->h = h; s->w = w; s->c = c;
    s->x = malloc((size_t)(n * S));
    s->y = malloc(sizeof *s->y * (size_t)n);
    if (!s->x || !s->y) return bp_fail(e, "out of memory making %ld synthetic images", n);
    for (long i = 0; i < n; i++) {
        int y = (int)(bp_rand_u32(seed, split, (unsigned)i, BP_RNG_SYNTH_LABEL, 0u) % (unsigned)classes);
        s->y[i] = y;
        for (long j = 0; j < S; j++) {
            unsigned t = bp_rand_u32(seed, 0, (unsigned)y, BP_RNG_SYNTH_TEMPLATE, (unsigned)j) & 255u;   /* template */
            unsigned z = bp_rand_u32(seed, split, (unsigned)i, BP_RNG_SYNTH_NOISE, (unsigned)j) & 255u; /* noise */
            s->x[i * S + j] = (uint8_t)((3 * t + z) / 4);
        }
    }
    return 0;
}

int bp_dataset_synthetic(const char *name, int h, int w, int c, int classes, long ntrain,
                         long ntest, bp_dataset *d, bp_err *e) {
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "synthetic-%s", name);
    d->classes = classes;
    if (fill(&d->train, ntrain, h, w, c, classes, 0x5EEDull, 1, e) ||
        fill(&d->test, ntest, h, w, c, classes, 0x5EEDull, 2, e)) {
        bp_dataset_free(d);
        return -1;
    }
    return 0;
}
