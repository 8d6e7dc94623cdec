/* compare.c: data parallelism against one process, step by step, under one seed.
 *
 *   mpirun -np N mpi_compare [--target cuda] MODEL.bp brainprop|ebp STEPS
 *
 * Every rank opens the model four times on the CPU target: `one`, the one-process plan
 * over the whole batch (the reference); `exact`, the same in double precision; `moved`,
 * `one` with its state moved by one ulp (the float noise of each tensor); and `dp`, the
 * data-parallel plan of this rank (plan.h, BP_PLAN_DP), which trains its share of the
 * batch and joins the other ranks' through the plan's collectives. With --target cuda,
 * `dp` runs on the rank's GPU and its collectives go through NCCL; one rank is then a
 * check too (the NCCL path against one CPU process, as tests/gpu/check.sh runs it). All draw the same
 * synthetic batches (Philox pixels and labels). Each step starts every instance from
 * `one`'s state (tests/sync_check.h), so each step's difference is that step's alone.
 * Per tensor, over the steps:
 *   err = max |x - exact| / max |exact| for x = dp and x = one,
 *   noise = max |moved - one| / max |one|;
 * dp's error must be at most SYNC_FACTOR x max(one's error, noise) + SYNC_FLOOR, and its
 * loss (summed over the ranks) must agree with one's to SYNC_FLOOR. The ranks' `dp`
 * instances must also hold the same bits (their updates are summed and applied alike).
 * Steps where an action differs between the instances (a near-tie in Q) are left out,
 * and may be at most a tenth of the steps. Rank 0 prints the RESULT line; exit 1 when a
 * check fails, 2 when the model cannot run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dist.h"
#include "frontend.h"
#include "plan.h"
#include "sync_check.h"

static void die(const char *what, const bp_err *e) {
    fprintf(stderr, "mpi_compare (rank %d): %s%s%s\n", bp_dist_rank(), what, e ? ": " : "", e ? e->msg : "");
    exit(2);
}

int main(int argc, char **argv) {
    bp_err e = {{0}};
    if (bp_dist_init(&argc, &argv, &e)) die("MPI", &e);
    bp_target target = BP_TARGET_CPU;
    if (argc == 6 && !strcmp(argv[1], "--target") && !strcmp(argv[2], "cuda")) {
        target = BP_TARGET_CUDA;
        argv += 2;
        argc -= 2;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: mpirun -np N mpi_compare [--target cuda] MODEL.bp brainprop|ebp STEPS\n");
        return 2;
    }
    int nerr = 0, io = 0, rank = bp_dist_rank(), ranks = bp_dist_size();
    bp_ir *ir = bp_frontend_file(argv[1], stderr, &nerr, &io);
    if (!ir) return 2;
    bp_rule rule = strcmp(argv[2], "ebp") ? BP_RULE_BRAINPROP : BP_RULE_EBP;
    int steps = atoi(argv[3]), B = ir->train.batch;
    /* one CPU rank would compare collectives that do nothing: nothing data-parallel
     * tested (on CUDA, one rank still runs every collective through NCCL) */
    if (ranks < 2 && target == BP_TARGET_CPU)
        die("needs 2 or more ranks (mpirun -np 2, and a bpc built with MPI), or --target cuda", NULL);
    if (steps < 1) die("needs 1 or more steps", NULL);
    bp_plan *p = bp_plan_build(ir, rule, 0);
    bp_plan *q = bp_plan_build_rank(ir, rule, ranks);
    if (!p || !q) die("out of memory", NULL);
    bp_exec one, exact, moved, dp;
    if (bp_exec_open(&one, p, BP_TARGET_CPU, &e) || bp_exec_open(&exact, p, BP_TARGET_CPU64, &e) ||
        bp_exec_open(&moved, p, BP_TARGET_CPU, &e) || bp_exec_open(&dp, q, target, &e))
        die("opening the model", &e);
    unsigned long long seed = ir->train.seed;
    if (bp_exec_init_params(&one, seed, &e)) die("init", &e);
    int nt = p->ntensors, b0, mine;
    bp_dist_share(B, rank, &b0, &mine);
    double *edp = calloc((size_t)nt + 1, sizeof *edp), *eone = calloc((size_t)nt + 1, sizeof *eone),
           *noise = calloc((size_t)nt + 1, sizeof *noise), *spread = calloc((size_t)nt + 1, sizeof *spread);
    long xb = (long)B * p->x_bytes;
    unsigned char *xs = malloc((size_t)xb);
    int *labels = malloc(sizeof *labels * (size_t)B), *a1 = malloc(sizeof *a1 * (size_t)B),
        *ax = malloc(sizeof *ax * (size_t)B), *am = malloc(sizeof *am * (size_t)B),
        *ad = malloc(sizeof *ad * (size_t)(mine ? mine : 1));
    if (!edp || !eone || !noise || !spread || !xs || !labels || !a1 || !ax || !am || !ad) die("out of memory", NULL);
    double loss_err = 0;
    long flipped = 0;
    for (int s = 0; s < steps; s++) {
        bp_exec *to[] = {&exact, &dp};
        const bp_plan *tp[] = {p, q};
        if (sync_state(p, &one, to, tp, 2, &moved, seed, s, &e)) die("copying the state", &e);
        sync_batch(seed, s, xs, xb, labels, B, p->classes);
        float zero[BP_NSTATS] = {0}, l1[BP_NSTATS], ld[BP_NSTATS], scratch[BP_NSTATS];
        bp_dyn d = {.lr = ir->train.lr, .nb = B, .step = (unsigned)s, .seed = seed};
        bp_exec *xv[] = {&one, &exact, &moved};
        float *lv[] = {l1, scratch, scratch};
        for (int k = 0; k < 3; k++)
            if (xv[k]->be->put(xv[k], BP_ARENA_X, 0, xs, xb, &e) ||
                xv[k]->be->put(xv[k], BP_ARENA_I, p->labels, labels, B, &e) ||
                bp_exec_put_f32(xv[k], p->stats, zero, BP_NSTATS, &e) || bp_exec_run(xv[k], &p->train, &d, &e) ||
                bp_exec_get_f32(xv[k], p->stats, lv[k], BP_NSTATS, &e))
                die("a one-process step", &e);
        bp_dyn dd = {.lr = ir->train.lr, .nb = mine, .step = (unsigned)s, .seed = seed, .b0 = b0, .nb_all = B};
        if (dp.be->put(&dp, BP_ARENA_X, 0, xs + (long)b0 * p->x_bytes, (long)mine * p->x_bytes, &e) ||
            dp.be->put(&dp, BP_ARENA_I, q->labels, labels + b0, mine, &e) ||
            bp_exec_put_f32(&dp, q->stats, zero, BP_NSTATS, &e) || bp_exec_run(&dp, &q->train, &dd, &e) ||
            bp_exec_get_f32(&dp, q->stats, ld, BP_NSTATS, &e))
            die("a data-parallel step", &e);
        bp_dist_sum(ld, BP_NSTATS);
        if (one.be->get(&one, BP_ARENA_I, p->actions, a1, B, &e) || exact.be->get(&exact, BP_ARENA_I, p->actions, ax, B, &e) ||
            moved.be->get(&moved, BP_ARENA_I, p->actions, am, B, &e) || dp.be->get(&dp, BP_ARENA_I, q->actions, ad, mine, &e))
            die("reading the actions", &e);
        int flip = 0;
        for (int b = 0; b < B; b++) flip |= a1[b] != ax[b] || a1[b] != am[b];
        for (int b = 0; b < mine; b++) flip |= ad[b] != a1[b0 + b];
        float f = (float)flip;
        bp_dist_sum(&f, 1); /* a flip on any rank leaves the step out everywhere */
        if (f > 0) { flipped++; continue; }
        sync_keep_worst(&loss_err, fabs(ld[BP_STAT_LOSS] - l1[BP_STAT_LOSS]) / (1e-6 + fabs(l1[BP_STAT_LOSS])));
        for (int i = 0; i < nt; i++) {
            const bp_tensor *t = &p->tensors[i], *u = bp_plan_tensor(q, t->name);
            float *o = sync_get(&one, t), *x = sync_get(&exact, t), *m = sync_get(&moved, t), *g = sync_get(&dp, u);
            sync_keep_worst(&edp[i], sync_max_rel(g, x, t->size));
            sync_keep_worst(&eone[i], sync_max_rel(o, x, t->size));
            sync_keep_worst(&noise[i], sync_max_rel(m, o, t->size));
            /* the ranks agree bit for bit: the sum of g - g0 over ranks is zero only then */
            float *g0 = sync_get(&dp, u);
            bp_dist_sum(g0, t->size); /* ranks * g when all agree (exactly, for 2 ranks) */
            for (long j = 0; j < t->size; j++)
                sync_keep_worst(&spread[i], fabs(g0[j] - ranks * g[j]) / (1e-30 + ranks * fabs(g[j])));
            free(o); free(x); free(m); free(g); free(g0);
        }
    }
    int ok = loss_err <= SYNC_FLOOR && flipped <= steps / 10, worst = -1;
    double worst_ratio = -1;
    for (int i = 0; i < nt; i++) {
        double ratio = sync_ratio(edp[i], eone[i], noise[i]);
        if (!(spread[i] <= (ranks == 2 ? 0 : 1e-6))) ok = 0;
        if (rank == 0)
            printf("sync %-22s against the double step: %d ranks %.2e, one process %.2e; float noise %.2e%s\n",
                   p->tensors[i].name, ranks, edp[i], eone[i], noise[i], spread[i] ? "; RANKS DISAGREE" : "");
        if (ratio > worst_ratio) { worst_ratio = ratio; worst = i; }
    }
    ok &= worst_ratio <= 1;
    if (rank == 0 && worst >= 0)
        printf("RESULT %s %s%s: %d ranks x %d%s against 1 x %d, %d steps each from the same state: %s; loss within "
               "%.2e; against the double-precision step, %s: %d ranks %.2e, one process %.2e, float noise %.2e "
               "(allowed: %.0f x the larger + %.0e); %ld steps with a differing action left out\n",
               ir->name, argv[2], target == BP_TARGET_CUDA ? " (ranks on CUDA, NCCL)" : "", ranks, (B + ranks - 1) / ranks, B % ranks ? " (at most)" : "", B, steps,
               ok ? "as exact as one process" : "LESS EXACT THAN ONE PROCESS", loss_err, p->tensors[worst].name,
               ranks, edp[worst], eone[worst], noise[worst], SYNC_FACTOR, SYNC_FLOOR, flipped);
    bp_exec_close(&one); bp_exec_close(&exact); bp_exec_close(&moved); bp_exec_close(&dp);
    bp_plan_free(p); bp_plan_free(q); bp_ir_free(ir);
    free(edp); free(eone); free(noise); free(spread); free(xs); free(labels); free(a1); free(ax); free(am); free(ad);
    return ok ? 0 : 1;
}
