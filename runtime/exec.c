/* exec.c: target-independent parts of running a plan: emit, open, initialise. */
#include "exec.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "philox.h"

int bp_exec_open(bp_exec *x, const bp_plan *p, bp_target t, bp_err *e) {
    memset(x, 0, sizeof *x);
    x->plan = p;
    x->target = t;
    x->be = t == BP_TARGET_CUDA ? &bp_backend_cuda : t == BP_TARGET_CPU64 ? &bp_backend_cpu64 : &bp_backend_cpu;
    x->real_size = t == BP_TARGET_CPU64 ? 8 : 4;
    if (t != BP_TARGET_CUDA) {
        /* refuse what cannot fit rather than be killed by the kernel half-way */
        double need = p->arena_floats * (double)x->real_size + p->arena_ints * 4.0 +
                      (double)p->batch * p->x_bytes;
        double have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
        if (have > 0 && need > 0.9 * have)
            return bp_fail(e, "the model needs %.1f GiB of memory for a batch of %d (weights, "
                              "activations, feedback), more than this machine's %.1f GiB; use a "
                              "smaller batch (the train block's `batch`) or model", need / 1073741824.0, p->batch,
                           have / 1073741824.0);
    }
    char *src = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&src, &len);
    if (!f) return bp_fail(e, "out of memory emitting the model source");
    int rc = bp_emit(f, p, t == BP_TARGET_CUDA ? "cuda" : t == BP_TARGET_CPU64 ? "c64" : "c");
    if (fclose(f) != 0 || rc != 0) { free(src); return bp_fail(e, "out of memory emitting the model source"); }
    rc = x->be->open(x, src, e);
    free(src);
    if (rc) x->be = NULL;
    return rc;
}

void bp_exec_close(bp_exec *x) {
    if (x->be) x->be->close(x);
    x->be = NULL;
    x->impl = NULL;
}

int bp_exec_run(bp_exec *x, const bp_prog *g, const bp_dyn *d, bp_err *e) {
    return x->be->run(x, g, d, e);
}

int bp_profile_wanted(void) {
    const char *pe = getenv("BPC_PROFILE");
    return pe && *pe && strcmp(pe, "0");
}

void bp_profile_print(const bp_plan *p, int cuda, const char *how, double *sec) {
    const bp_prog *g = &p->train;
    double total = 0;
    for (int i = 0; i < g->n; i++) total += sec[i];
    if (total <= 0) return;
    fprintf(stderr, "profile of the train program (BPC_PROFILE, %s): %.3f s in all\n", how, total);
    for (int shown = 0; shown < g->n && shown < 25; shown++) {
        int best = -1;
        for (int i = 0; i < g->n; i++)
            if (sec[i] >= 0 && (best < 0 || sec[i] > sec[best])) best = i;
        const bp_op *o = &g->ops[best];
        fprintf(stderr, "  %5.1f%%  %3d  %-24s %s\n", 100 * sec[best] / total, best,
                o->kind == BP_OP_KERNEL ? p->kernels[bp_kernel_for(p, o->kernel, cuda)].name
                : o->kind == BP_OP_GEMM ? "gemm" : "collective", o->what);
        sec[best] = -1;
    }
}

/* normal(0, std) for element j of tensor ti: Box-Muller on a pair of Philox words.
 * Pair q = j/2 uses words 2*(q mod 2^31) and +1 of the stream with step q >> 31, so
 * tensors beyond 2^32 elements never repeat. */
static float init_normal(uint64_t seed, int ti, long j, float std) {
    unsigned long long q = (unsigned long long)j / 2;
    unsigned int idx = (unsigned int)(q & 0x7fffffffu) * 2u, step = (unsigned int)(q >> 31);
    unsigned int a = bp_rand_u32(seed, step, (unsigned)ti, BP_RNG_INIT, idx);
    unsigned int b = bp_rand_u32(seed, step, (unsigned)ti, BP_RNG_INIT, idx + 1u);
    double u1 = ((double)a + 1.0) / 4294967296.0, u2 = (double)b / 4294967296.0; /* u1 in (0, 1] */
    double r = sqrt(-2.0 * log(u1));
    double z = (j % 2) ? r * sin(2.0 * M_PI * u2) : r * cos(2.0 * M_PI * u2);
    return (float)(std * z);
}

int bp_exec_init_params(bp_exec *x, uint64_t seed, bp_err *e) {
    const bp_plan *p = x->plan;
    enum { CHUNK = 1 << 20 }; /* initialise in slices: no second copy of a big tensor */
    float *v = malloc(sizeof *v * CHUNK);
    if (!v) return bp_fail(e, "out of memory initialising the weights");
    for (int ti = 0; ti < p->ntensors; ti++) {
        const bp_tensor *t = &p->tensors[ti];
        for (long j0 = 0; j0 < t->size; j0 += CHUNK) {
            long n = t->size - j0 < CHUNK ? t->size - j0 : CHUNK;
#pragma omp parallel for schedule(static) if (n > 65536)
            for (long k = 0; k < n; k++)
                v[k] = t->init == BP_INIT_ZEROS ? 0.0f
                     : t->init == BP_INIT_ONES ? 1.0f : init_normal(seed, ti, j0 + k, t->std);
            if (bp_exec_put_f32(x, t->off + j0, v, n, e)) { free(v); return -1; }
        }
    }
    free(v);
    return 0;
}

int bp_exec_put_f32(bp_exec *x, long off, const float *src, long n, bp_err *e) {
    if (x->real_size == 4) return x->be->put(x, BP_ARENA_F, off, src, n, e);
    double *t = malloc(sizeof *t * (size_t)(n ? n : 1));
    if (!t) return bp_fail(e, "out of memory");
    for (long i = 0; i < n; i++) t[i] = src[i];
    int rc = x->be->put(x, BP_ARENA_F, off, t, n, e);
    free(t);
    return rc;
}

int bp_exec_get_f32(bp_exec *x, long off, float *dst, long n, bp_err *e) {
    if (x->real_size == 4) return x->be->get(x, BP_ARENA_F, off, dst, n, e);
    double *t = malloc(sizeof *t * (size_t)(n ? n : 1));
    if (!t) return bp_fail(e, "out of memory");
    int rc = x->be->get(x, BP_ARENA_F, off, t, n, e);
    for (long i = 0; !rc && i < n; i++) dst[i] = (float)t[i];
    free(t);
    return rc;
}
