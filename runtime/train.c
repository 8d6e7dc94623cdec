/* train.c: the training loop. Everything model-specific happened in the compiler;
 * this file only feeds batches to the train program, evaluates, and reports. */
#include "train.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "philox.h"
#include "synthetic.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

float bp_lr_at(const bp_train_cfg *t, float lr0, int epoch) {
    if (t->lr_every <= 0) return lr0;
    return lr0 * powf(t->lr_factor, (float)(epoch / t->lr_every));
}

void bp_shuffle(int *idx, long n, uint64_t seed, unsigned int epoch) {
    for (long i = 0; i < n; i++) idx[i] = (int)i;
    for (long i = n - 1; i > 0; i--) {
        unsigned int u = bp_rand_u32(seed, epoch, 0, BP_RNG_SHUFFLE, (unsigned int)i);
        long j = (long)(((uint64_t)u * (uint64_t)(i + 1)) >> 32);
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

/* Copies images idx[0..nb) into the input buffer and their labels into I. */
static int feed(bp_exec *x, const bp_split *s, const int *idx, long first, int nb,
                unsigned char *xb, int *yb, bp_err *e) {
    const bp_plan *p = x->plan;
    for (int b = 0; b < nb; b++) {
        long k = idx ? idx[first + b] : first + b;
        memcpy(xb + (size_t)b * p->x_bytes, s->x + (size_t)k * p->x_bytes, (size_t)p->x_bytes);
        yb[b] = s->y[k];
    }
    if (x->be->put(x, BP_ARENA_X, 0, xb, (long)nb * p->x_bytes, e)) return -1;
    return x->be->put(x, BP_ARENA_I, p->labels, yb, nb, e);
}

int bp_evaluate(bp_exec *x, const bp_split *s, long limit, int *preds, double *acc, bp_err *e) {
    const bp_plan *p = x->plan;
    long n = limit > 0 && limit < s->n ? limit : s->n;
    unsigned char *xb = malloc((size_t)(p->batch * p->x_bytes));
    int *yb = malloc(sizeof *yb * (size_t)p->batch);
    float zero[2] = {0, 0}, st[2];
    int rc = xb && yb ? 0 : bp_fail(e, "out of memory");
    if (!rc) rc = bp_exec_put_f32(x, p->stats + BP_STAT_EVAL_CORRECT, zero, 2, e);
    for (long first = 0; !rc && first < n; first += p->batch) {
        int nb = (int)(n - first < p->batch ? n - first : p->batch);
        bp_dyn d = {.lr = 0, .nb = nb};
        rc = feed(x, s, NULL, first, nb, xb, yb, e);
        if (!rc) rc = bp_exec_run(x, &p->eval, &d, e);
        if (!rc && preds) rc = x->be->get(x, BP_ARENA_I, p->preds, preds + first, nb, e);
    }
    if (!rc) rc = bp_exec_get_f32(x, p->stats + BP_STAT_EVAL_CORRECT, st, 2, e);
    if (!rc) *acc = st[1] > 0 ? st[0] / st[1] : 0.0;
    free(xb);
    free(yb);
    return rc;
}

int bp_train(bp_ir *ir, const bp_train_opts *o, bp_train_result *res, bp_err *e) {
    const bp_layer *in = &ir->layers[0];
    const bp_train_cfg *cfg = &ir->train;
    FILE *log = o->log ? o->log : stdout;
    memset(res, 0, sizeof *res);
    if (!cfg->dataset[0])
        return bp_fail(e, "%s: error: the model names no data set; add `data mnist;` to its train block",
                       ir->path), 1;
    bp_dataset ds;
    if (o->data_dir && !strcmp(o->data_dir, "synthetic")) {
        /* the real data set's split sizes, in the model's own shape */
        const char *n = cfg->dataset;
        long ntrain = !strcmp(n, "tinyimagenet") ? 100000 : !strncmp(n, "cifar", 5) ? 50000 : 60000;
        if (bp_dataset_synthetic(n, in->out.h, in->out.w, in->out.c,
                                 ir->layers[ir->n - 1].units, ntrain, 10000, &ds, e)) return 2;
    } else {
        char rootbuf[4096];
        const char *root = bp_data_root(o->data_dir, rootbuf, sizeof rootbuf);
        if (!root) return bp_fail(e, "the data folder path is too long"), 2;
        if (bp_dataset_load(cfg->dataset, root, &ds, e)) return 2;
    }
    if (ds.train.h != in->out.h || ds.train.w != in->out.w || ds.train.c != in->out.c) {
        bp_fail(e, "%s:%d:%d: error: the input is %dx%dx%d, but %s images are %dx%dx%d", ir->path,
                in->loc.line, in->loc.col, in->out.h, in->out.w, in->out.c, ds.name, ds.train.h,
                ds.train.w, ds.train.c);
        bp_dataset_free(&ds);
        return 1;
    }
    if (ir->layers[ir->n - 1].units != ds.classes) {
        const bp_layer *out = &ir->layers[ir->n - 1];
        bp_fail(e, "%s:%d:%d: error: output has %d units, but %s has %d classes", ir->path,
                out->loc.line, out->loc.col, out->units, ds.name, ds.classes);
        bp_dataset_free(&ds);
        return 1;
    }
    uint64_t seed = o->has_seed ? o->seed : cfg->seed;
    int epochs = o->epochs > 0 ? o->epochs : cfg->epochs;
    float lr0 = o->lr > 0 ? o->lr : cfg->lr;
    bp_plan *p = bp_plan_build(ir, o->rule, 0);
    if (!p) { bp_dataset_free(&ds); return bp_fail(e, "out of memory building the plan"), 2; }
    bp_exec x;
    int rc = bp_exec_open(&x, p, o->target, e) ? 2 : 0;
    if (!rc && bp_exec_init_params(&x, seed, e)) rc = 2;
    long n = o->limit > 0 && o->limit < ds.train.n ? o->limit : ds.train.n;
    int *idx = malloc(sizeof *idx * (size_t)n);
    unsigned char *xb = malloc((size_t)(p->batch * p->x_bytes));
    int *yb = malloc(sizeof *yb * (size_t)p->batch);
    FILE *mf = NULL;
    if (!rc && (!idx || !xb || !yb)) rc = (bp_fail(e, "out of memory"), 2);
    if (!rc && o->metrics && !(mf = fopen(o->metrics, "a")))
        rc = (bp_fail(e, "%s: cannot write the metrics file", o->metrics), 2);
    if (!rc)
        fprintf(log, "bpc: training %s (%s) on %s: %ld train / %ld test images, %s target, "
                     "rule %s, batch %d, seed %llu\n",
                ir->name, ir->path, ds.name, n, o->test_limit > 0 && o->test_limit < ds.test.n ? o->test_limit : (long)ds.test.n,
                o->target == BP_TARGET_CUDA ? "cuda" : "cpu",
                o->rule == BP_RULE_BRAINPROP ? "brainprop" : "ebp", p->batch, (unsigned long long)seed);
    long steps = (n + p->batch - 1) / p->batch;
    int since_best = 0;
    double t_total = 0;
    res->best_test_acc = -1;
    for (int ep = 0; !rc && ep < epochs; ep++) {
        double t0 = now();
        float lr = bp_lr_at(cfg, lr0, ep);
        float zero[4] = {0, 0, 0, 0}, st[4];
        rc = bp_exec_put_f32(&x, p->stats, zero, 4, e) ? 2 : 0;
        bp_shuffle(idx, n, seed, (unsigned)ep);
        for (long s = 0; !rc && s < steps; s++) {
            int nb = (int)(n - s * p->batch < p->batch ? n - s * p->batch : p->batch);
            bp_dyn d = {.lr = lr, .nb = nb, .step = (unsigned)(ep * steps + s), .seed = seed};
            if (feed(&x, &ds.train, idx, s * p->batch, nb, xb, yb, e) || bp_exec_run(&x, &p->train, &d, e)) {
                rc = 2;
                break;
            }
            if (bp_exec_get_f32(&x, p->stats, st, 4, e)) { rc = 2; break; }
            if (!isfinite(st[BP_STAT_LOSS])) {
                bp_fail(e, "the loss became %s at epoch %d, step %ld of %ld (lr %g); "
                           "lower the learning rate (sgd lr) or the init std",
                        isnan(st[BP_STAT_LOSS]) ? "NaN" : "infinite", ep + 1, s + 1, steps, lr);
                rc = 2;
            }
        }
        if (rc) break;
        double train_s = now() - t0, acc;
        if (bp_evaluate(&x, &ds.test, o->test_limit, NULL, &acc, e)) { rc = 2; break; }
        double secs = now() - t0;
        t_total += train_s;
        double seen = st[BP_STAT_SEEN];
        res->epochs_run = ep + 1;
        res->final_test_acc = acc;
        res->final_loss = st[BP_STAT_LOSS] / seen;
        fprintf(log, "epoch %3d/%d  lr %.4g  loss %.5f  reward %.4f  train-acc %.4f  test-acc %.4f  %.1f s\n",
                ep + 1, epochs, lr, st[BP_STAT_LOSS] / seen, st[BP_STAT_REWARD] / seen,
                st[BP_STAT_CORRECT] / seen, acc, secs);
        fflush(log);
        if (mf) {
            fprintf(mf, "{\"epoch\": %d, \"lr\": %.9g, \"train_loss\": %.9g, \"train_reward\": %.9g, "
                        "\"train_acc\": %.9g, \"test_acc\": %.9g, \"seconds\": %.3f}\n",
                    ep + 1, lr, st[BP_STAT_LOSS] / seen, st[BP_STAT_REWARD] / seen,
                    st[BP_STAT_CORRECT] / seen, acc, secs);
            fflush(mf);
        }
        if (acc >= res->best_test_acc + cfg->min_delta || res->best_test_acc < 0) {
            if (acc > res->best_test_acc) { res->best_test_acc = acc; res->best_epoch = ep + 1; }
            since_best = 0;
        } else if (cfg->patience > 0 && ++since_best >= cfg->patience) {
            fprintf(log, "early stop: no gain of %g in test accuracy for %d epochs\n", cfg->min_delta,
                    cfg->patience);
            break;
        }
    }
    if (res->epochs_run) res->seconds_per_epoch = t_total / res->epochs_run;
    if (!rc)
        fprintf(log, "test accuracy %.4f (%ld images) after %d epochs; %.1f s per epoch (training)\n",
                res->final_test_acc, o->test_limit > 0 && o->test_limit < ds.test.n ? o->test_limit : (long)ds.test.n,
                res->epochs_run, res->seconds_per_epoch);
    if (mf) fclose(mf);
    free(idx);
    free(xb);
    free(yb);
    bp_exec_close(&x);
    bp_plan_free(p);
    bp_dataset_free(&ds);
    return rc;
}
