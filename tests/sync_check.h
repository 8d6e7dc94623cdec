/* sync_check.h: what the step-by-step checks share (tests/gpu/compare.c: CUDA against
 * CPU; tests/mpi/compare.c: several ranks against one process). Each step starts every
 * instance from the reference float instance's state, so a step's difference is that
 * step's alone; a double-precision instance gives the exact step, and an instance whose
 * state is moved by one ulp gives the float noise of each tensor. */
#ifndef BPC_SYNC_CHECK_H
#define BPC_SYNC_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "exec.h"
#include "philox.h"

/* A candidate's error against the double step may be this many times the reference's
 * error or the float noise, whichever is larger, plus SYNC_FLOOR (relative to the
 * tensor's largest value: a few float ulps). */
#define SYNC_FACTOR 10.0
#define SYNC_FLOOR 1e-5

/* The values of tensor t of x (malloc'd); exits 2 on failure. */
static inline float *sync_get(bp_exec *x, const bp_tensor *t) {
    bp_err e;
    float *v = malloc(sizeof *v * (size_t)t->size);
    if (!v || bp_exec_get_f32(x, t->off, v, t->size, &e)) {
        fprintf(stderr, "reading tensor %s failed\n", t->name);
        exit(2);
    }
    return v;
}

/* *worst = x when x is larger, or NaN; a NaN sticks (NaN > x is false) */
static inline void sync_keep_worst(double *worst, double x) {
    if (isnan(x) || x > *worst) *worst = x;
}

/* max |got - ref| / (1e-6 + max |ref|) over n values */
static inline double sync_max_rel(const float *got, const float *ref, long n) {
    double md = 0, mr = 0;
    for (long j = 0; j < n; j++) {
        sync_keep_worst(&md, fabs(got[j] - ref[j]));
        if (fabs(ref[j]) > mr) mr = fabs(ref[j]);
    }
    return md / (1e-6 + mr);
}

/* The share of its allowance a candidate's error uses: err / (SYNC_FACTOR x the larger
 * of the reference's error and the noise + SYNC_FLOOR); above 1 fails, and a NaN is
 * infinite. */
static inline double sync_ratio(double err, double ref_err, double noise) {
    double r = err / (SYNC_FACTOR * (ref_err > noise ? ref_err : noise) + SYNC_FLOOR);
    return isnan(r) ? INFINITY : r;
}

/* Step s's synthetic batch: xb input bytes and nb labels below classes, from Philox
 * (seed, step s), the same for every instance and every rank. */
static inline void sync_batch(unsigned long long seed, int s, unsigned char *xs, long xb, int *labels, int nb,
                              int classes) {
    for (long i = 0; i < xb; i++) xs[i] = (unsigned char)bp_rand_u32(seed, (unsigned)s, 0, 99u, (unsigned)i);
    for (int b = 0; b < nb; b++)
        labels[b] = (int)(bp_rand_u32(seed, (unsigned)s, (unsigned)b, 98u, 0) % (unsigned)classes);
}

/* Copies every tensor of from (plan p) into the n execs of to[] (to[k] runs plan
 * tp[k], where the tensor of the same name may lie elsewhere), and into moved (plan p)
 * with each value moved one ulp up or down (Philox of seed, step s). 0, or -1. */
static inline int sync_state(const bp_plan *p, bp_exec *from, bp_exec **to, const bp_plan **tp, int n,
                             bp_exec *moved, unsigned long long seed, int s, bp_err *e) {
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        float *v = sync_get(from, t);
        int rc = 0;
        for (int k = 0; k < n && !rc; k++) {
            const bp_tensor *u = bp_plan_tensor(tp[k], t->name);
            rc = u && u->size == t->size ? bp_exec_put_f32(to[k], u->off, v, t->size, e) : -1;
        }
        for (long j = 0; j < t->size; j++)
            v[j] = nextafterf(v[j], bp_rand_u32(seed, (unsigned)s, (unsigned)i, 97u, (unsigned)j) & 1
                                        ? INFINITY : -INFINITY);
        if (!rc && moved) rc = bp_exec_put_f32(moved, t->off, v, t->size, e);
        free(v);
        if (rc) return -1;
    }
    return 0;
}

#endif
