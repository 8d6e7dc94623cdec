/* exec.c: target-independent parts of running a plan: emit, open, initialise. */
#include "exec.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "philox.h"

int bp_exec_open(bp_exec *x, const bp_plan *p, bp_target t, bp_err *e) {
    memset(x, 0, sizeof *x);
    x->plan = p;
    x->target = t;
    x->be = t == BP_TARGET_CUDA ? &bp_backend_cuda : t == BP_TARGET_CPU64 ? &bp_backend_cpu64 : &bp_backend_cpu;
    x->real_size = t == BP_TARGET_CPU64 ? 8 : 4;
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

int bp_exec_init_params(bp_exec *x, uint64_t seed, bp_err *e) {
    const bp_plan *p = x->plan;
    for (int ti = 0; ti < p->ntensors; ti++) {
        const bp_tensor *t = &p->tensors[ti];
        float *v = malloc(sizeof *v * (size_t)t->size);
        if (!v) return bp_fail(e, "out of memory initialising %s", t->name);
        for (long j = 0; j < t->size; j++) {
            if (t->init == BP_INIT_ZEROS) { v[j] = 0.0f; continue; }
            if (t->init == BP_INIT_ONES) { v[j] = 1.0f; continue; }
            /* Box-Muller on two 32-bit words; u1 in (0, 1] so the log is finite */
            unsigned int a = bp_rand_u32(seed, 0, (unsigned)ti, BP_RNG_INIT, (unsigned)(2 * (j / 2)));
            unsigned int b = bp_rand_u32(seed, 0, (unsigned)ti, BP_RNG_INIT, (unsigned)(2 * (j / 2) + 1));
            double u1 = ((double)a + 1.0) / 4294967296.0, u2 = (double)b / 4294967296.0;
            double r = sqrt(-2.0 * log(u1));
            double z = (j % 2) ? r * sin(2.0 * M_PI * u2) : r * cos(2.0 * M_PI * u2);
            v[j] = (float)(t->std * z);
        }
        int rc = bp_exec_put_f32(x, t->off, v, t->size, e);
        free(v);
        if (rc) return rc;
    }
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
