/* compare.c: the CUDA target against the CPU target, step by step, under one seed.
 *
 *   gpu_compare MODEL.bp RULE STEPS [BATCH]
 *
 * Opens the model on both targets, initialises both from the same seed (the weights
 * are drawn on the host, so they start bit-identical), feeds both the same synthetic
 * batches (Philox pixels), runs STEPS training steps with the same (seed, step), so
 * both draw the same dropout masks and exploration choices, and prints per step the
 * largest relative difference of the loss, and at the end of every tensor:
 *   max |gpu - cpu| / (1e-6 + max |cpu|)   (per tensor; the "tol + |ref| eps" form)
 * plus the fraction of actions that differ (a near-tie in Q can flip one).
 * It also times the steps on both targets (wall clock, after one warm-up step).
 * A third instance runs the same steps on the GPU with BPC_CUDA_GRAPH=0, each operation
 * launched on its own: the graph replay must give the same losses and weights (to
 * 1e-5 relative; exit 1 otherwise), and the two step times show what graphs save.
 * Needs a GPU; exits 2 with the reason when the CUDA target is unavailable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "exec.h"
#include "frontend.h"
#include "jit_cuda.h"
#include "philox.h"
#include "plan.h"
#include "tune.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void die(const char *what, const bp_err *e) {
    fprintf(stderr, "gpu_compare: %s%s%s\n", what, e ? ": " : "", e ? e->msg : "");
    exit(2);
}

static float *get_all(bp_exec *x, const bp_tensor *t) {
    bp_err e;
    float *v = malloc(sizeof *v * (size_t)t->size);
    if (!v || bp_exec_get_f32(x, t->off, v, t->size, &e)) die("reading a tensor", NULL);
    return v;
}

/* max |got - ref| / (1e-6 + max |ref|) over n values */
static double max_rel(const float *got, const float *ref, long n) {
    double md = 0, mr = 0;
    for (long j = 0; j < n; j++) {
        double dj = fabs(got[j] - ref[j]);
        if (isnan(dj) || dj > md) md = dj; /* a NaN sticks: NaN > x is false */
        if (fabs(ref[j]) > mr) mr = fabs(ref[j]);
    }
    return md / (1e-6 + mr);
}

int main(int argc, char **argv) {
    bp_tune_process(argv);
    if (argc < 4) { fprintf(stderr, "usage: gpu_compare MODEL.bp brainprop|ebp STEPS [BATCH]\n"); return 2; }
    int nerr = 0, io = 0;
    bp_ir *ir = bp_frontend_file(argv[1], stderr, &nerr, &io);
    if (!ir) return 1;
    bp_rule rule = strcmp(argv[2], "ebp") ? BP_RULE_BRAINPROP : BP_RULE_EBP;
    int steps = atoi(argv[3]), batch = argc > 4 ? atoi(argv[4]) : 0;
    bp_plan *p = bp_plan_build(ir, rule, batch);
    if (!p) die("out of memory", NULL);
    bp_err e;
    bp_exec cpu, gpu, eager;
    /* read when a CUDA exec opens: graphs on for gpu, off for eager */
    unsetenv("BPC_CUDA_SYNC");
    unsetenv("BPC_CUDA_GRAPH");
    if (bp_exec_open(&gpu, p, BP_TARGET_CUDA, &e)) die("CUDA target", &e);
    setenv("BPC_CUDA_GRAPH", "0", 1);
    if (bp_exec_open(&eager, p, BP_TARGET_CUDA, &e)) die("CUDA target without graphs", &e);
    printf("gpu: %s\n", bp_cuda_describe(&gpu));
    if (bp_exec_open(&cpu, p, BP_TARGET_CPU, &e)) die("CPU target", &e);
    unsigned long long seed = ir->train.seed;
    if (bp_exec_init_params(&cpu, seed, &e) || bp_exec_init_params(&gpu, seed, &e) ||
        bp_exec_init_params(&eager, seed, &e))
        die("init", &e);
    int nb = p->batch;
    long xb = (long)nb * p->x_bytes;
    unsigned char *xs = malloc((size_t)xb);
    int *labels = malloc(sizeof *labels * (size_t)nb), *ac = malloc(sizeof *ac * (size_t)nb),
        *ag = malloc(sizeof *ag * (size_t)nb);
    if (!xs || !labels || !ac || !ag) die("out of memory", NULL);
    double t_cpu = 0, t_gpu = 0, t_eager = 0, worst_loss = 0, graph_loss = 0;
    long flips = 0;
    for (int s = 0; s <= steps; s++) {
        for (long i = 0; i < xb; i++) xs[i] = (unsigned char)bp_rand_u32(seed, (unsigned)s, 0, 99u, (unsigned)i);
        for (int b = 0; b < nb; b++) labels[b] = (int)(bp_rand_u32(seed, (unsigned)s, (unsigned)b, 98u, 0) % (unsigned)p->classes);
        float zero[BP_NSTATS] = {0}, lc[BP_NSTATS], lg[BP_NSTATS], le[BP_NSTATS];
        bp_dyn d = {.lr = ir->train.lr, .nb = nb, .step = (unsigned)s, .seed = seed};
        bp_exec *xv[3] = {&cpu, &gpu, &eager};
        double *tv[3] = {&t_cpu, &t_gpu, &t_eager};
        float *lv[3] = {lc, lg, le};
        for (int k = 0; k < 3; k++) {
            bp_exec *x = xv[k];
            if (x->be->put(x, BP_ARENA_X, 0, xs, xb, &e) || x->be->put(x, BP_ARENA_I, p->labels, labels, nb, &e) ||
                bp_exec_put_f32(x, p->stats, zero, BP_NSTATS, &e)) die("feeding a batch", &e);
            double t0 = now();
            if (bp_exec_run(x, &p->train, &d, &e)) die("a training step", &e);
            if (bp_exec_get_f32(x, p->stats, lv[k], BP_NSTATS, &e)) die("reading the loss", &e);
            if (s > 0) *tv[k] += now() - t0; /* step 0 is the warm-up */
        }
        if (cpu.be->get(&cpu, BP_ARENA_I, p->actions, ac, nb, &e) || gpu.be->get(&gpu, BP_ARENA_I, p->actions, ag, nb, &e))
            die("reading the actions", &e);
        for (int b = 0; b < nb; b++) flips += ac[b] != ag[b];
        double rel = fabs(lg[BP_STAT_LOSS] - lc[BP_STAT_LOSS]) / (1e-6 + fabs(lc[BP_STAT_LOSS]));
        if (isnan(rel) || rel > worst_loss) worst_loss = rel;
        double grel = fabs(lg[BP_STAT_LOSS] - le[BP_STAT_LOSS]) / (1e-6 + fabs(le[BP_STAT_LOSS]));
        if (isnan(grel) || grel > graph_loss) graph_loss = grel;
        printf("step %3d  loss cpu %.7g  gpu %.7g  rel %.2e\n", s, lc[BP_STAT_LOSS] / nb, lg[BP_STAT_LOSS] / nb, rel);
    }
    double worst_w = 0, graph_w = 0;
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        float *a = get_all(&cpu, t), *b = get_all(&gpu, t), *c = get_all(&eager, t);
        double rel = max_rel(b, a, t->size), grel = max_rel(b, c, t->size);
        if (isnan(rel) || rel > worst_w) worst_w = rel;
        if (isnan(grel) || grel > graph_w) graph_w = grel;
        printf("tensor %-22s max rel diff %.2e (graph against one by one: %.2e)\n", t->name, rel, grel);
        free(a);
        free(b);
        free(c);
    }
    printf("RESULT %s %s steps %d batch %d: max rel diff loss %.2e, weights %.2e; actions differing %ld of %ld; "
           "ms/step cpu %.2f gpu %.3f (cpu/gpu %.1fx)\n",
           ir->name, argv[2], steps, nb, worst_loss, worst_w, flips, (long)(steps + 1) * nb,
           1e3 * t_cpu / (steps ? steps : 1), 1e3 * t_gpu / (steps ? steps : 1), t_cpu / (t_gpu > 0 ? t_gpu : 1e-9));
    /* !(x <= tol) so that a NaN fails; graphs must have stayed on for the comparison
     * to mean anything (a failed capture falls back to one by one, with a warning) */
    int graphs = bp_cuda_graphs_on(&gpu), graph_ok = graphs && graph_loss <= 1e-5 && graph_w <= 1e-5;
    printf("GRAPH %s %s: %s: max rel diff loss %.2e, weights %.2e; ms/step graph %.3f, one by one %.3f "
           "(%.2fx)\n", ir->name, argv[2],
           !graphs ? "NO GRAPHS (capture failed)" : graph_ok ? "same" : "DIFFERENT", graph_loss, graph_w,
           1e3 * t_gpu / (steps ? steps : 1), 1e3 * t_eager / (steps ? steps : 1),
           t_eager / (t_gpu > 0 ? t_gpu : 1e-9));
    bp_exec_close(&cpu);
    bp_exec_close(&gpu);
    bp_exec_close(&eager);
    bp_plan_free(p);
    bp_ir_free(ir);
    free(xs); free(labels); free(ac); free(ag);
    return graph_ok ? 0 : 1;
}
