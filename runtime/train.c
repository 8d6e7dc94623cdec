/* train.c: the training protocol (train.h). Everything model-specific happened in the
 * compiler; this file feeds batches to the train program, evaluates, decides when to
 * stop, keeps the best weights, and saves, restores and reports runs.
 *
 * Resuming is exact because nothing random depends on the history of a process: every
 * draw is keyed by (seed, step, sample, purpose), the shuffle by (seed, epoch), and the
 * only state that outlives a step is in the plan's tensors (weights and batch-norm
 * statistics, saved bit for bit as F32) plus the few numbers in the checkpoint's
 * metadata (the epoch, the step within it, the partial epoch statistics, the
 * early-stopping state), which are printed with enough digits to read back exactly.
 */
#include "train.h"
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "align.h"
#include "dist.h"
#include "checkpoint.h"
#include "files.h"
#include "jit_cuda.h"
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

int bp_val_parse(const char *s, bp_val_spec *v) {
    if (!strcmp(s, "test")) {
        v->mode = BP_VAL_TEST;
        v->value = 0;
        return 0;
    }
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(d)) return -1;
    if (d > 0 && d < 1) {
        v->mode = BP_VAL_FRACTION;
        v->value = d;
        return 0;
    }
    if (d >= 1 && d <= 1e9 && d == floor(d) && !strpbrk(s, ".eE")) {
        v->mode = BP_VAL_COUNT;
        v->value = d;
        return 0;
    }
    return -1;
}

void bp_stop_init(bp_stop *s) {
    s->best = s->ref = -1;
    s->best_epoch = s->since = 0;
}

int bp_stop_update(bp_stop *s, int epoch, double acc, int patience, double min_delta) {
    int first = s->best_epoch == 0, r = 0;
    if (first || acc > s->best) {
        s->best = acc;
        s->best_epoch = epoch;
        r |= BP_STOP_NEW_BEST;
    }
    if (first || (acc > s->ref && acc - s->ref >= min_delta - 1e-6)) {
        s->ref = acc;
        s->since = 0;
    } else {
        s->since++;
    }
    if (patience > 0 && s->since >= patience) r |= BP_STOP_STOP;
    return r;
}

/* Copies images first..first+nb of a split into the input buffer and their labels into
 * I (evaluation; training gathers its batches with the backend's stage/order/gather). */
static int feed(bp_exec *x, const bp_split *s, long first, int nb, unsigned char *xb, int *yb,
                bp_err *e) {
    const bp_plan *p = x->plan;
    for (int b = 0; b < nb; b++) {
        long k = first + b;
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
        rc = feed(x, s, first, nb, xb, yb, e);
        if (!rc) rc = bp_exec_run(x, &p->eval, &d, e);
        if (!rc && preds) rc = x->be->get(x, BP_ARENA_I, p->preds, preds + first, nb, e);
    }
    if (!rc) rc = bp_exec_get_f32(x, p->stats + BP_STAT_EVAL_CORRECT, st, 2, e);
    if (!rc) *acc = st[1] > 0 ? (double)st[0] / (double)st[1] : 0.0;
    free(xb);
    free(yb);
    return rc;
}

int bp_load_data_for(const bp_ir *ir, const char *data_dir, long limit, long test_limit,
                     bp_dataset *ds, bp_err *e) {
    const bp_layer *in = &ir->layers[0], *out = &ir->layers[ir->n - 1];
    const char *n = ir->train.dataset;
    memset(ds, 0, sizeof *ds);
    int synthetic = data_dir && !strcmp(data_dir, "synthetic");
    if (!n[0] && !synthetic)
        return bp_fail(e, "%s: the model names no data set; add `data mnist;` (or another) to its "
                       "train block, or train on `--data synthetic`", ir->path), 1;
    if (synthetic) {
        /* the named data set's split sizes (MNIST's when none is named), in the model's
         * own shape */
        long ntrain = 60000, ntest = 10000;
        if (!n[0]) n = "model";
        bp_dataset_published(n, &ntrain, &ntest);
        /* image i depends on i alone, so the first `limit` are the same either way */
        if (limit > 0 && limit < ntrain) ntrain = limit;
        if (test_limit > 0 && test_limit < ntest) ntest = test_limit;
        if (bp_dataset_synthetic(n, in->out.h, in->out.w, in->out.c, out->units, ntrain, ntest, ds, e))
            return 2;
    } else {
        char rootbuf[4096];
        const char *root = bp_data_root(data_dir, rootbuf, sizeof rootbuf);
        if (!root) return bp_fail(e, "the data folder path is too long"), 2;
        if (bp_dataset_load(n, root, ds, e)) return 2;
        /* a file cut at a record boundary, or one record too many, still parses */
        long ntrain, ntest;
        if (bp_dataset_published(n, &ntrain, &ntest) && (ds->train.n != ntrain || ds->test.n != ntest))
            fprintf(stderr, "bpc: warning: %s from %s has %d training and %d test images, but the "
                    "published set has %ld and %ld; `bpc data verify %s` checks its files\n", n,
                    ds->source ? ds->source : root, ds->train.n, ds->test.n, ntrain, ntest, n);
    }
    if (ds->train.h != in->out.h || ds->train.w != in->out.w || ds->train.c != in->out.c) {
        bp_fail(e, "%s:%d:%d: error: the input is %dx%dx%d, but %s images are %dx%dx%d", ir->path,
                in->loc.line, in->loc.col, in->out.h, in->out.w, in->out.c, ds->name, ds->train.h,
                ds->train.w, ds->train.c);
        bp_dataset_free(ds);
        return 1;
    }
    if (out->units != ds->classes) {
        bp_fail(e, "%s:%d:%d: error: output has %d units, but %s has %d classes", ir->path,
                out->loc.line, out->loc.col, out->units, ds->name, ds->classes);
        bp_dataset_free(ds);
        return 1;
    }
    return 0;
}

/* ---- signals: a flag checked between steps -------------------------------------------- */

static volatile sig_atomic_t g_signal;

static void on_signal(int sig) { g_signal = sig; }

/* Catches sig (saving the old action in *old), unless it is ignored: a job started in
 * the background by a shell ignores SIGINT, and keeps doing so. SA_RESETHAND: a second
 * Ctrl-C ends the process at once. */
static void catch_signal(int sig, struct sigaction *old) {
    struct sigaction sa;
    if (sigaction(sig, NULL, old) || old->sa_handler == SIG_IGN) return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    sigaction(sig, &sa, NULL);
}

/* ---- the state of one run ------------------------------------------------------------- */

typedef struct {
    bp_ir *ir;
    const bp_train_cfg *cfg;
    bp_train_opts o;        /* the options, after a resume filled in what was left out */
    FILE *log;
    char sha[65];           /* SHA-256 of the model source */
    uint64_t seed;
    int epochs;
    float lr0;
    char dir[4000];         /* the run folder, or "" */
    int lock_fd;            /* the run folder's lock file, held while training; -1 */
    int rank, ranks;        /* data parallelism (dist.h): this process's rank, of ranks */
    FILE *quiet;            /* the /dev/null that a rank other than 0 logs to */
    bp_dataset ds;
    bp_split held;          /* the held-out validation images (unless val_test) */
    const bp_split *val;
    int val_test;
    long n, nval, ntest;    /* training, validation and test images used */
    bp_plan *p;
    bp_exec x;
    int opened;
    long steps;             /* per epoch */
    float *snap, *best;     /* host snapshots (checkpoint.h) */
    /* where the run stands */
    int epoch;              /* completed epochs */
    long step;              /* steps done of the next epoch (> 0 only after an interrupt) */
    float stats[4];         /* BP_STAT_LOSS..SEEN of that partial epoch */
    double epoch_seconds;   /* training seconds of that partial epoch */
    double train_seconds;   /* over completed epochs */
    bp_stop stop;
    double best_test;       /* test accuracy measured in the best epoch */
    double last_val, last_test;
    int last_saved;         /* last.safetensors holds a good state: */
    int saved_epoch;        /* ... after this many epochs */
    long saved_step;        /* ... and this many steps of the next */
    bp_align al;            /* the alignment metrics, when some feedback is not tied */
    int aligned;
} run;

static const char *rule_name(bp_rule r) { return r == BP_RULE_EBP ? "ebp" : "brainprop"; }

/* buf (n >= 4200 bytes: the folder is shorter than 4000) = RUN/file */
static void path_in(const run *r, char *buf, size_t n, const char *file) {
    if ((size_t)snprintf(buf, n, "%s/%s", r->dir, file) >= n) buf[0] = 0;
}

/* Writes len bytes to path atomically (files.h). */
static int write_file(const char *path, const char *buf, size_t len, bp_err *e) {
    if (bp_write_atomic(path, buf, len)) return bp_fail(e, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int mkdirs(const char *path, bp_err *e) {
    if (!bp_mkdirs(path)) return 0;
    if (errno == ENOTDIR) return bp_fail(e, "%s: not a folder", path);
    return bp_fail(e, "%s: cannot create: %s", path, strerror(errno));
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- checkpoints -------------------------------------------------------------------- */

/* The metadata of a checkpoint of `kind` ("last" or "best") at `epoch` completed epochs
 * and `step` steps into the next. Every number a resume reads back is printed with
 * enough digits to round-trip (%.9g for floats, %.17g for doubles). */
static void fill_meta(run *r, bp_ckpt_meta *mt, const char *kind, int epoch, long step,
                      double val, double test) {
    const bp_train_cfg *c = r->cfg;
    time_t t = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    bp_ckpt_meta_set(mt, "format", "%s", BP_CKPT_FORMAT);
    bp_ckpt_meta_set(mt, "bpc_version", "%s", BPC_VERSION);
    bp_ckpt_meta_set(mt, "kind", "%s", kind);
    bp_ckpt_meta_set(mt, "model", "%s", r->ir->name);
    bp_ckpt_meta_set(mt, "source_file", "%s", r->ir->path);
    bp_ckpt_meta_set(mt, "source_sha256", "%s", r->sha);
    bp_ckpt_meta_set(mt, "rule", "%s", rule_name(r->o.rule));
    bp_ckpt_meta_set(mt, "precision", "%s", bp_precision_name(r->ir->train.precision));
    bp_ckpt_meta_set(mt, "seed", "%llu", (unsigned long long)r->seed);
    bp_ckpt_meta_set(mt, "philox", "Philox4x32-10 keyed by the seed; counters (step, sample, "
                     "purpose) for dropout and exploration, (epoch, 0, shuffle) for the order");
    bp_ckpt_meta_set(mt, "batch", "%d", r->p->batch);
    bp_ckpt_meta_set(mt, "dataset", "%s", r->ds.name);
    /* absolute, so that a resume from another directory finds the data (a folder name
     * that is not UTF-8 is stored with U+FFFD for its bad bytes: such a run resumes
     * only with --data given again) */
    char *abs = r->o.data_dir && strcmp(r->o.data_dir, "synthetic") ? realpath(r->o.data_dir, NULL) : NULL;
    bp_ckpt_meta_set(mt, "data_dir", "%s", abs ? abs : r->o.data_dir ? r->o.data_dir : "");
    free(abs);
    bp_ckpt_meta_set(mt, "limit", "%ld", r->o.limit);
    bp_ckpt_meta_set(mt, "test_limit", "%ld", r->o.test_limit);
    if (r->val_test) bp_ckpt_meta_set(mt, "val", "test");
    else bp_ckpt_meta_set(mt, "val", "%ld", r->nval);
    bp_ckpt_meta_set(mt, "train_images", "%ld", r->n);
    bp_ckpt_meta_set(mt, "val_images", "%ld", r->nval);
    bp_ckpt_meta_set(mt, "test_images", "%ld", r->ntest);
    bp_ckpt_meta_set(mt, "target", "%s", r->o.target == BP_TARGET_CUDA ? "cuda" : "cpu");
    bp_ckpt_meta_set(mt, "lr0", "%.9g", r->lr0);
    /* the rate of the epoch the weights come from: the one in progress when step > 0 */
    bp_ckpt_meta_set(mt, "lr", "%.9g", bp_lr_at(c, r->lr0, step ? epoch : epoch > 0 ? epoch - 1 : 0));
    bp_ckpt_meta_set(mt, "lr_every", "%d", c->lr_every);
    bp_ckpt_meta_set(mt, "lr_factor", "%.9g", c->lr_factor);
    bp_ckpt_meta_set(mt, "max_epochs", "%d", r->epochs);
    bp_ckpt_meta_set(mt, "patience", "%d", c->patience);
    bp_ckpt_meta_set(mt, "min_delta", "%.9g", c->min_delta);
    bp_ckpt_meta_set(mt, "epoch", "%d", epoch);
    bp_ckpt_meta_set(mt, "step_in_epoch", "%ld", step);
    bp_ckpt_meta_set(mt, "steps_per_epoch", "%ld", r->steps);
    bp_ckpt_meta_set(mt, "global_step", "%ld", (long)epoch * r->steps + step);
    bp_ckpt_meta_set(mt, "epoch_stats", "%.9g %.9g %.9g %.9g", r->stats[0], r->stats[1],
                     r->stats[2], r->stats[3]);
    bp_ckpt_meta_set(mt, "epoch_seconds", "%.3f", r->epoch_seconds);
    bp_ckpt_meta_set(mt, "train_seconds", "%.3f", r->train_seconds);
    bp_ckpt_meta_set(mt, "best_val_acc", "%.17g", r->stop.best);
    bp_ckpt_meta_set(mt, "best_epoch", "%d", r->stop.best_epoch);
    bp_ckpt_meta_set(mt, "best_test_acc", "%.17g", r->best_test);
    bp_ckpt_meta_set(mt, "ref_val_acc", "%.17g", r->stop.ref);
    bp_ckpt_meta_set(mt, "epochs_since_gain", "%d", r->stop.since);
    bp_ckpt_meta_set(mt, "val_acc", "%.17g", val);
    bp_ckpt_meta_set(mt, "test_acc", "%.17g", test);
    bp_ckpt_meta_set(mt, "saved_at", "%s", when);
}

static int save(run *r, const char *kind, const float *snap, int epoch, long step, double val,
                double test, bp_err *e) {
    if (!r->dir[0]) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", r->dir, kind);
    bp_ckpt_meta mt = {0};
    fill_meta(r, &mt, kind, epoch, step, val, test);
    int rc = bp_ckpt_write(path, r->ir, r->p, snap, &mt, e);
    bp_ckpt_meta_free(&mt);
    return rc;
}

/* "; the last good checkpoint is DIR/last.safetensors (epoch N)", or "" when the run
 * has saved none. */
static void last_good(const run *r, char *buf, size_t n) {
    buf[0] = 0;
    if (r->last_saved)
        snprintf(buf, n, "; the last good checkpoint is %s/last.safetensors (epoch %d%s)", r->dir,
                 r->saved_epoch + (r->saved_step > 0), r->saved_step ? ", interrupted" : "");
}

/* Refuses a snapshot that holds a NaN or an infinity, before it is saved or tested:
 * the loss can stay finite while weights are not (a ReLU turns NaN into 0), and such
 * weights are no use to anyone. -1 with e set, else 0. */
static int weights_finite(const run *r, const float *snap, bp_err *e) {
    long bad;
    int k = bp_ckpt_nonfinite(r->p, snap, &bad);
    if (k < 0) return 0;
    char kept[4600];
    last_good(r, kept, sizeof kept);
    return bp_fail(e, "%ld weight%s became NaN or infinite by epoch %d, step %ld (the first in %s); "
                      "lower the learning rate (sgd lr) or the init std%s", bad, bad == 1 ? "" : "s",
                   r->epoch + (r->step > 0 ? 1 : 0), r->step ? r->step : r->steps,
                   r->p->tensors[k].name, kept), -1;
}

/* Writes last.safetensors from the arena as the run stands now. */
static int save_last(run *r, bp_err *e) {
    if (!r->dir[0]) return 0;
    if (bp_ckpt_get(&r->x, r->snap, e) || weights_finite(r, r->snap, e)) return -1;
    if (save(r, "last", r->snap, r->epoch, r->step, r->last_val, r->last_test, e)) return -1;
    r->last_saved = 1;
    r->saved_epoch = r->epoch;
    r->saved_step = r->step;
    return 0;
}

/* ---- resume: what the checkpoint says, against what the command says ------------------ */

static const char *mget(const bp_st_file *f, const char *k) {
    const char *v = bp_st_meta_get(f, k);
    return v ? v : "";
}

static int differs(const char *dir, const char *what_run, const char *what_cmd, bp_err *e) {
    return bp_fail(e, "cannot resume %s: the run used %s, but this command says %s; leave the "
                      "option out to continue the run as it was", dir, what_run, what_cmd), 1;
}

/* Reads RUN/last.safetensors' metadata and settles the options: those left out are
 * taken from the run; seed, rule, --limit and --test-limit must match it. --val is
 * compared once the data are loaded (check_val). Returns 0, 1 (a mismatch) or 2. */
static int adopt(run *r, const bp_st_file *f, bp_err *e) {
    const char *dir = r->dir;
    if (strcmp(mget(f, "format"), BP_CKPT_FORMAT))
        return bp_fail(e, "cannot resume %s: last.safetensors is not a bpc checkpoint (format '%s', "
                          "expected '%s')", dir, mget(f, "format"), BP_CKPT_FORMAT), 1;
    if (strcmp(mget(f, "source_sha256"), r->sha))
        return bp_fail(e, "cannot resume %s: it was trained from a different source of the model "
                          "(source_sha256 %.12s... in the run, %.12s... for %s); %s/model.bp is the "
                          "source it was trained from", dir, mget(f, "source_sha256"), r->sha,
                       r->ir->path, dir), 1;
    char a[128], b[128];
    unsigned long long seed = strtoull(mget(f, "seed"), NULL, 10);
    if (r->o.has_seed && r->o.seed != seed) {
        snprintf(a, sizeof a, "seed %llu", seed);
        snprintf(b, sizeof b, "--seed %llu", (unsigned long long)r->o.seed);
        return differs(dir, a, b, e);
    }
    r->o.has_seed = 1;
    r->o.seed = seed;
    bp_rule rule = !strcmp(mget(f, "rule"), "ebp") ? BP_RULE_EBP : BP_RULE_BRAINPROP;
    if (r->o.has_rule && r->o.rule != rule) {
        snprintf(a, sizeof a, "rule %s", rule_name(rule));
        snprintf(b, sizeof b, "--rule %s", rule_name(r->o.rule));
        return differs(dir, a, b, e);
    }
    r->o.rule = rule;
    /* a checkpoint from before the precision setting was ieee */
    bp_precision prec = BP_PREC_IEEE;
    (void)bp_precision_parse(mget(f, "precision"), &prec);
    if (r->o.has_precision && r->o.precision != prec) {
        snprintf(a, sizeof a, "precision %s", bp_precision_name(prec));
        snprintf(b, sizeof b, "--precision %s", bp_precision_name(r->o.precision));
        return differs(dir, a, b, e);
    }
    r->o.has_precision = 1;
    r->o.precision = prec;
    long limit = atol(mget(f, "limit")), test_limit = atol(mget(f, "test_limit"));
    if (r->o.limit > 0 && r->o.limit != limit) {
        snprintf(a, sizeof a, limit ? "--limit %ld" : "all training images", limit);
        snprintf(b, sizeof b, "--limit %ld", r->o.limit);
        return differs(dir, a, b, e);
    }
    r->o.limit = limit;
    if (r->o.test_limit > 0 && r->o.test_limit != test_limit) {
        snprintf(a, sizeof a, test_limit ? "--test-limit %ld" : "all test images", test_limit);
        snprintf(b, sizeof b, "--test-limit %ld", r->o.test_limit);
        return differs(dir, a, b, e);
    }
    r->o.test_limit = test_limit;
    if (r->o.val.mode == BP_VAL_MODEL) { /* as the run had it; a given --val is checked in restore */
        if (!strcmp(mget(f, "val"), "test")) r->o.val.mode = BP_VAL_TEST;
        else { r->o.val.mode = BP_VAL_COUNT; r->o.val.value = atof(mget(f, "val")); }
    }
    if (r->o.epochs <= 0) r->o.epochs = atoi(mget(f, "max_epochs"));
    float lr0 = strtof(mget(f, "lr0"), NULL);
    if (r->o.lr > 0 && r->o.lr != lr0)
        fprintf(r->log, "note: the learning rate changes from %g to %g at the resume; the run no "
                        "longer follows its first command\n", lr0, r->o.lr);
    else r->o.lr = lr0;
    if (!r->o.data_dir && *mget(f, "data_dir")) r->o.data_dir = strdup(mget(f, "data_dir"));
    return 0;
}

/* Restores the run's state from last.safetensors and the best weights from
 * best.safetensors (or from last itself when the best epoch is the last one). */
static int restore(run *r, const char *last, bp_err *e) {
    bp_st_file f;
    int rc = bp_ckpt_read(last, r->ir->path, r->ir, r->p, r->sha, r->snap, &f, e);
    if (rc) return rc == BP_CKPT_MISMATCH ? 1 : 2;
    const char *val = mget(&f, "val");
    char want[32];
    if (r->val_test) snprintf(want, sizeof want, "test");
    else snprintf(want, sizeof want, "%ld", r->nval);
    if (strcmp(val, want)) {
        char a[96], b[96];
        snprintf(a, sizeof a, !strcmp(val, "test") ? "--val test" : "--val %s", val);
        snprintf(b, sizeof b, r->val_test ? "--val test" : "%ld validation images", r->nval);
        bp_st_free(&f);
        return differs(r->dir, a, b, e);
    }
    if (atol(mget(&f, "train_images")) != r->n || atol(mget(&f, "steps_per_epoch")) != r->steps) {
        bp_fail(e, "cannot resume %s: it trained on %s images in %s steps per epoch, but the data "
                   "now give %ld images in %ld steps; is --data the same?", r->dir,
                mget(&f, "train_images"), mget(&f, "steps_per_epoch"), r->n, r->steps);
        bp_st_free(&f);
        return 1;
    }
    r->epoch = atoi(mget(&f, "epoch"));
    r->step = atol(mget(&f, "step_in_epoch"));
    sscanf(mget(&f, "epoch_stats"), "%f %f %f %f", &r->stats[0], &r->stats[1], &r->stats[2], &r->stats[3]);
    r->epoch_seconds = atof(mget(&f, "epoch_seconds"));
    r->train_seconds = atof(mget(&f, "train_seconds"));
    r->stop.best = atof(mget(&f, "best_val_acc"));
    r->stop.best_epoch = atoi(mget(&f, "best_epoch"));
    r->stop.ref = atof(mget(&f, "ref_val_acc"));
    r->stop.since = atoi(mget(&f, "epochs_since_gain"));
    r->best_test = atof(mget(&f, "best_test_acc"));
    r->last_val = atof(mget(&f, "val_acc"));
    r->last_test = atof(mget(&f, "test_acc"));
    /* the state must make sense before the run goes on from it */
    int sane = r->epoch >= 0 && r->epoch <= 100000000 && r->step >= 0 && r->step < r->steps &&
               (r->epoch > 0 || r->step > 0) && isfinite(r->stop.best) && r->stop.best <= 1 &&
               r->stop.best_epoch >= 0 && r->stop.best_epoch <= r->epoch &&
               isfinite(r->stop.ref) && r->stop.since >= 0 && isfinite(r->best_test);
    bp_st_free(&f);
    if (!sane)
        return bp_fail(e, "%s: corrupt checkpoint: its epoch, step or early-stopping state is "
                          "out of range; start the run again", last), 2;
    r->last_saved = 1;
    r->saved_epoch = r->epoch;
    r->saved_step = r->step;
    rc = bp_ckpt_put(&r->x, r->snap, e) ? 2 : 0;
    if (rc || r->stop.best_epoch == 0) return rc;
    char bpath[4200];
    path_in(r, bpath, sizeof bpath, "best.safetensors");
    if (r->stop.best_epoch == r->epoch && r->step == 0) {
        /* the best epoch is last's own: best.safetensors holds the same weights, or is
         * missing (a kill or a full disk between the two writes), then written now */
        memcpy(r->best, r->snap, sizeof *r->snap * (size_t)bp_ckpt_floats(r->p));
        if (!exists(bpath) && save(r, "best", r->best, r->epoch, 0, r->stop.best, r->best_test, e))
            return 2;
        return 0;
    }
    rc = bp_ckpt_read(bpath, r->ir->path, r->ir, r->p, r->sha, r->best, &f, e);
    if (rc) return rc == BP_CKPT_MISMATCH ? 1 : 2;
    int be = atoi(mget(&f, "epoch"));
    bp_st_free(&f);
    if (be != r->stop.best_epoch)
        return bp_fail(e, "cannot resume %s: last.safetensors says the best epoch is %d, but "
                          "best.safetensors holds epoch %d", r->dir, r->stop.best_epoch, be), 2;
    return 0;
}

/* Keeps the lines of metrics.jsonl up to epoch `upto`: a resumed run writes the epochs
 * after it again. */
static int trim_metrics(const char *path, int upto, bp_err *e) {
    char *buf;
    size_t len;
    if (bp_read_file(path, &buf, &len)) {
        if (errno == ENOENT) return 0; /* none yet */
        return bp_fail(e, "%s: cannot read: %s", path, strerror(errno)), 2;
    }
    size_t keep = 0;
    for (char *l = buf; l < buf + len;) {
        char *nl = memchr(l, '\n', (size_t)(buf + len - l));
        if (!nl) break; /* a line cut by a kill */
        int ep = 0;
        if (sscanf(l, "{\"epoch\": %d", &ep) == 1 && ep <= upto) {
            memmove(buf + keep, l, (size_t)(nl + 1 - l));
            keep += (size_t)(nl + 1 - l);
        }
        l = nl + 1;
    }
    int rc = write_file(path, buf, keep, e);
    free(buf);
    return rc;
}

/* One process per run folder: RUN_DIR/lock is held with flock while the run trains, so
 * that a second `bpc train --resume` or `bpc repro` on the same folder stops instead of
 * interleaving its checkpoints with this one's. The kernel releases it when the process
 * ends, even on SIGKILL, so a stale lock never blocks a resume. A new run's folder is
 * created here; a resume of a missing folder is left to the check that reports it. */
static int lock_dir(run *r, int resuming, int *busy_out, bp_err *e) {
    char path[4200];
    struct stat st;
    if (resuming && (stat(r->dir, &st) || !S_ISDIR(st.st_mode))) return 0;
    if (!resuming && mkdirs(r->dir, e)) return 2;
    path_in(r, path, sizeof path, "lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return bp_fail(e, "%s: cannot create the run folder's lock: %s", path, strerror(errno)), 2;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        *busy_out = busy;
        if (busy)
            return bp_fail(e, "%s is being trained by another bpc process (it holds %s); wait "
                              "for it to finish, or stop it first", r->dir, path), 1;
        return bp_fail(e, "%s: cannot lock: %s", path, strerror(errno)), 2;
    }
    r->lock_fd = fd;
    /* With the lock held no other process writes here: a NAME.XXXXXX.tmp is what a
     * killed run left of an atomic write (files.h) that never got its rename. */
    DIR *d = opendir(r->dir);
    for (struct dirent *de; d && (de = readdir(d));)
        if (!fnmatch("*.??????.tmp", de->d_name, FNM_PERIOD)) {
            path_in(r, path, sizeof path, de->d_name);
            unlink(path);
        }
    if (d) closedir(d);
    return 0;
}

/* Opens the --metrics file for appending into *f. When it is the file the log goes to
 * (--metrics /dev/stdout), *f is the log itself and *shared is 1: two streams on one
 * file would write over each other's lines. A FIFO is opened without waiting: with no
 * reader it is an error, not a hang. 0, or 2 with e set. */
static int open_metrics(const char *path, FILE *log, FILE **f, int *shared, bp_err *e) {
    struct stat sm, sl;
    *shared = 0;
    if (log && stat(path, &sm) == 0 && fstat(fileno(log), &sl) == 0 && sm.st_dev == sl.st_dev &&
        sm.st_ino == sl.st_ino) {
        *f = log;
        *shared = 1;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd < 0 && errno == ENXIO)
        return bp_fail(e, "%s: a FIFO that no process is reading; start its reader first, or "
                          "give --metrics a file", path), 2;
    if (fd < 0 || fcntl(fd, F_SETFL, O_APPEND) != 0 || !(*f = fdopen(fd, "a"))) {
        int err = errno;
        if (fd >= 0) close(fd);
        return bp_fail(e, "%s: cannot write the metrics file: %s", path, strerror(err)), 2;
    }
    return 0;
}

/* Creates or reopens the run folder: the model source, the command, the metrics. */
static int open_dir(run *r, int resuming, bp_err *e) {
    char path[4200];
    if (mkdirs(r->dir, e)) return 2;
    path_in(r, path, sizeof path, "model.bp");
    /* a fresh run writes its own source over whatever an earlier, failed start (or
     * another use of the folder) left; a resumed run keeps the one it was trained from */
    if (!resuming || !exists(path)) {
        char *src;
        size_t len;
        if (bp_read_file(r->ir->path, &src, &len))
            return bp_fail(e, "%s: cannot read the model source: %s", r->ir->path, strerror(errno)), 2;
        int rc = write_file(path, src, len, e);
        free(src);
        if (rc) return 2;
    }
    path_in(r, path, sizeof path, "command.txt");
    FILE *f = fopen(path, "a");
    if (!f) return bp_fail(e, "%s: cannot write: %s", path, strerror(errno)), 2;
    char cwd[4096], when[32];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    fprintf(f, "# %s %s in %s\n%s\n", resuming ? "resumed" : "started", when,
            getcwd(cwd, sizeof cwd) ? cwd : "?", r->o.command ? r->o.command : "bpc train");
    if (fclose(f)) return bp_fail(e, "%s: write failed: %s", path, strerror(errno)), 2;
    /* the epochs after the checkpoint are run again (none for a fresh run) */
    path_in(r, path, sizeof path, "metrics.jsonl");
    if (trim_metrics(path, r->epoch, e)) return 2;
    return 0;
}

static int write_summary(run *r, const bp_train_result *res, int tested, bp_err *e) {
    if (!r->dir[0]) return 0;
    char *buf = NULL, path[4200];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return bp_fail(e, "out of memory");
    fprintf(f, "{\"model\": \"%s\", \"rule\": \"%s\", \"seed\": %llu, \"dataset\": \"%s\", "
               "\"train_images\": %ld, \"val\": \"%s\", \"val_images\": %ld, \"test_images\": %ld, "
               "\"epochs_run\": %d, \"stopped\": \"%s\", \"best_epoch\": %d, "
               "\"best_val_acc\": %.9g, \"tested_epoch\": %d, \"test_acc\": %.9g, "
               "\"last_test_acc\": %.9g, \"seconds_per_epoch\": %.3f, \"bpc_version\": \"%s\"}\n",
            r->ir->name, rule_name(r->o.rule), (unsigned long long)r->seed, r->ds.name, r->n,
            r->val_test ? "test" : "held-out", r->nval, r->ntest, res->epochs_run,
            res->stopped_early ? "early_stop" : "max_epochs", res->best_epoch, res->best_val_acc,
            tested, res->final_test_acc, res->last_test_acc, res->seconds_per_epoch, BPC_VERSION);
    if (fclose(f)) { free(buf); return bp_fail(e, "out of memory"); }
    path_in(r, path, sizeof path, "summary.json");
    int rc = write_file(path, buf, len, e);
    free(buf);
    return rc;
}

/* ---- progress ------------------------------------------------------------------------ */

static void fmt_time(char *b, size_t n, double s) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(b, n, "%ld:%02ld", t / 60, t % 60);
}

static void progress_line(run *r, int ep, long s, double rate, const float *st, double eta) {
    char t[32];
    fmt_time(t, sizeof t, eta);
    double seen = st[BP_STAT_SEEN] > 0 ? st[BP_STAT_SEEN] : 1;
    fprintf(r->log, "\r\033[Kepoch %d/%d  step %ld/%ld  %.0f samples/s  loss %.5f  acc %.4f  ETA %s",
            ep + 1, r->epochs, s, r->steps, rate, st[BP_STAT_LOSS] / seen,
            st[BP_STAT_CORRECT] / seen, t);
    fflush(r->log);
}

/* ---- the run -------------------------------------------------------------------------- */

/* Loads the data and splits off the validation images. */
static int setup_data(run *r, bp_err *e) {
    int rc = bp_load_data_for(r->ir, r->o.data_dir, r->o.limit, r->o.test_limit, &r->ds, e);
    if (rc) return rc;
    long total = r->ds.train.n;
    if (r->o.limit > 0 && r->o.limit < total) r->ds.train.n = (int)r->o.limit;
    long avail = r->ds.train.n;
    bp_val_spec v = r->o.val;
    if (v.mode == BP_VAL_MODEL) {
        if (r->cfg->val_test) v.mode = BP_VAL_TEST;
        else if (r->cfg->val_count > 0) { v.mode = BP_VAL_COUNT; v.value = (double)r->cfg->val_count; }
        else { v.mode = BP_VAL_FRACTION; v.value = r->cfg->val_fraction; }
    }
    r->ntest = r->o.test_limit > 0 && r->o.test_limit < r->ds.test.n ? r->o.test_limit : r->ds.test.n;
    if (v.mode == BP_VAL_TEST) {
        r->val_test = 1;
        r->val = &r->ds.test;
        r->nval = r->ntest;
    } else {
        long nv = v.mode == BP_VAL_COUNT ? (long)v.value : (long)floor(v.value * (double)avail + 0.5);
        if (nv < 1) nv = 1;
        if (avail < 2) /* one image cannot be both trained on and held out */
            return bp_fail(e, "%s: %ld training image%s%s: nothing is left to train on once "
                              "validation images are held out; give --limit 2 or more, or "
                              "--val test", r->ds.name, avail, avail == 1 ? "" : "s",
                           r->o.limit > 0 ? " (--limit)" : ""), 1;
        if (bp_split_holdout(&r->ds, nv, &r->held, e)) return 1;
        r->val = &r->held;
        r->nval = nv;
    }
    r->n = r->ds.train.n;
    return 0;
}

int bp_train(bp_ir *ir, const bp_train_opts *o, bp_train_result *res, bp_err *e) {
    run R, *r = &R;
    memset(r, 0, sizeof *r);
    memset(res, 0, sizeof *res);
    r->ir = ir;
    r->cfg = &ir->train;
    r->o = *o;
    r->log = o->log ? o->log : stdout;
    r->lock_fd = -1;
    /* data parallelism: every rank trains, rank 0 alone speaks and writes the folder */
    r->ranks = o->single ? 1 : bp_dist_size();
    r->rank = r->ranks > 1 ? bp_dist_rank() : 0;
    if (r->rank > 0 && !(r->log = r->quiet = fopen("/dev/null", "w")))
        return bp_fail(e, "rank %d: cannot open /dev/null: %s", r->rank, strerror(errno)), 2;
    bp_stop_init(&r->stop);
    const char *dir = o->resume ? o->resume : o->out_dir;
    if (dir && strlen(dir) >= sizeof r->dir) return bp_fail(e, "the run folder path is too long"), 1;
    if (dir) snprintf(r->dir, sizeof r->dir, "%s", dir);
    if (bp_sha256_file(ir->path, r->sha, e)) return 2;
    char last[4200] = "";
    int resuming = 0, rc = 0;
    if (dir && r->rank == 0 && (rc = lock_dir(r, o->resume != NULL, &res->busy, e))) goto out;
    /* the other ranks read the folder (a resume) only once rank 0 holds it */
    if (r->ranks > 1 && !bp_dist_all(rc == 0)) {
        if (!rc) rc = (bp_fail(e, "rank 0 could not take the run folder %s (its message says why)", r->dir), 1);
        goto out;
    }
    if (dir && !o->resume) { /* before anything slow: a run folder is not overwritten */
        char a[4200];
        path_in(r, a, sizeof a, "last.safetensors");
        if (exists(a)) {
            rc = (bp_fail(e, "%s already holds a run; continue it with --resume %s, or choose "
                             "another --out", r->dir, r->dir), 1);
            goto out;
        }
    }

    /* resume: the options first, since the rule and the data depend on them */
    if (o->resume) {
        struct stat st;
        if (stat(o->resume, &st) || !S_ISDIR(st.st_mode)) {
            rc = (bp_fail(e, "cannot resume %s: no such run folder", o->resume), 1);
            goto out;
        }
        path_in(r, last, sizeof last, "last.safetensors");
        if (!exists(last)) {
            /* nothing to take the run's options from: refuse rather than guess them */
            rc = (bp_fail(e, "cannot resume %s: it has no last.safetensors (the run stopped "
                             "before its first checkpoint); start it again without --resume, "
                             "with the command in %s/command.txt", o->resume, o->resume), 1);
            goto out;
        }
        bp_st_file f;
        if (bp_st_read(last, &f, e)) { rc = 2; goto out; }
        rc = adopt(r, &f, e);
        bp_st_free(&f);
        if (rc) goto out;
        resuming = 1;
    }
    r->seed = r->o.has_seed ? r->o.seed : r->cfg->seed;
    r->epochs = r->o.epochs > 0 ? r->o.epochs : r->cfg->epochs;
    r->lr0 = r->o.lr > 0 ? r->o.lr : r->cfg->lr;

    if (r->o.has_precision) ir->train.precision = r->o.precision;
    if ((rc = setup_data(r, e))) goto out;
    if (r->ranks > ir->train.batch) {
        rc = (bp_fail(e, "%d ranks for a batch of %d: every rank needs a sample of each batch; start at "
                         "most %d rank%s, or raise the train block's batch", r->ranks, ir->train.batch,
                      ir->train.batch, ir->train.batch == 1 ? "" : "s"), 1);
        goto out;
    }
    if (r->ranks > 1) { /* each rank's share: at most ceil(batch / ranks) samples */
        r->p = bp_plan_build_rank(ir, r->o.rule, r->ranks);
    } else {
        r->p = bp_plan_build(ir, r->o.rule, 0);
    }
    if (!r->p) { rc = (bp_fail(e, "out of memory building the plan"), 2); goto out; }
    r->steps = (r->n + r->p->global_batch - 1) / r->p->global_batch;
    long nfloat = bp_ckpt_floats(r->p);
    r->snap = malloc(sizeof *r->snap * (size_t)(nfloat ? nfloat : 1));
    r->best = malloc(sizeof *r->best * (size_t)(nfloat ? nfloat : 1));
    int *idx = malloc(sizeof *idx * (size_t)r->n);
    FILE *mf = NULL, *rmf = NULL;
    int mf_shared = 0; /* mf is r->log (--metrics names the log's own file) */
    struct sigaction old_int, old_term;
    int handlers = 0;
    if (!r->snap || !r->best || !idx) {
        char need[32], big[256];
        bp_fail(e, "out of memory: the two copies of the weights kept for checkpoints and the "
                   "best epoch need %s each (%s); a smaller layer needs less",
                bp_bytes_str((double)nfloat * sizeof *r->snap, need, sizeof need),
                bp_plan_largest(r->p, (int)sizeof *r->snap, big, sizeof big));
        rc = 2;
        goto done;
    }
    if (bp_exec_open(&r->x, r->p, r->o.target, e)) { rc = 2; goto done; }
    r->opened = 1;
    if (bp_exec_init_params(&r->x, r->seed, e)) { rc = 2; goto done; }
    if (bp_feedback_untied(ir)) {
        if (bp_align_open(&r->al, r->p, r->o.target, e)) { rc = 2; goto done; }
        r->aligned = 1;
    }
    if (resuming && (rc = restore(r, last, e))) goto done;
    if (r->rank > 0) r->dir[0] = 0; /* nothing of the folder is written but by rank 0 */
    if (r->ranks > 1 && !bp_dist_all(1)) { rc = 2; goto done; }
    if (r->dir[0] && (rc = open_dir(r, resuming, e))) goto done;
    if (r->dir[0]) {
        char mpath[4200];
        path_in(r, mpath, sizeof mpath, "metrics.jsonl");
        if (!(rmf = fopen(mpath, "a"))) { rc = (bp_fail(e, "%s: cannot write: %s", mpath, strerror(errno)), 2); goto done; }
    }
    if (o->metrics && r->dir[0]) {
        /* the run folder keeps its own files: a --metrics file inside it would
         * duplicate metrics.jsonl or be lost under a checkpoint's rename. The folder
         * compared is the one the file really is in: an existing file (a symbolic link
         * to the run's metrics.jsonl, say) with its links resolved. */
        char file[PATH_MAX], md[PATH_MAX], rd[PATH_MAX], *slash;
        if (!realpath(o->metrics, file)) snprintf(file, sizeof file, "%s", o->metrics);
        slash = strrchr(file, '/');
        if (slash) *slash = 0;
        if (realpath(slash ? (file[0] ? file : "/") : ".", md) && realpath(r->dir, rd) && !strcmp(md, rd)) {
            rc = (bp_fail(e, "--metrics %s is inside the run folder %s, which keeps its own "
                             "metrics.jsonl; give --metrics a path outside it, or leave it out",
                          o->metrics, r->dir), 1);
            goto done;
        }
    }
    if (o->metrics && r->rank == 0 && (rc = open_metrics(o->metrics, r->log, &mf, &mf_shared, e))) goto done;

    g_signal = 0;
    catch_signal(SIGINT, &old_int);
    catch_signal(SIGTERM, &old_term);
    handlers = 1;

    fprintf(r->log, "bpc: training %s (%s) on %s: %ld train / %ld test images, %s target, "
                    "rule %s, batch %d, seed %llu\n",
            ir->name, ir->path, r->ds.name, r->n, r->ntest,
            r->o.target == BP_TARGET_CUDA ? "cuda" : "cpu", rule_name(r->o.rule), r->p->global_batch,
            (unsigned long long)r->seed);
    if (r->ranks > 1)
        fprintf(r->log, "data parallel: %d ranks, each training at most %d of every batch of %d "
                        "(MPI; rank 0 writes the run)\n", r->ranks, r->p->batch, r->p->global_batch);
    if (ir->train.precision != BP_PREC_IEEE)
        fprintf(r->log, "precision: GEMMs in %s (kernels in float32)\n", bp_precision_name(ir->train.precision));
    if (r->o.target == BP_TARGET_CUDA) fprintf(r->log, "cuda: %s\n", bp_cuda_describe(&r->x));
    if (r->val_test)
        fprintf(r->log, "validation: the test split (val test, the paper's protocol): the test "
                        "images choose the epoch, so the final test accuracy is optimistic\n");
    else
        fprintf(r->log, "validation: %ld training images held out (the last %ld of %ld); they "
                        "choose the epoch whose weights are tested\n",
                r->nval, r->nval, r->n + r->nval);
    if (resuming)
        fprintf(r->log, "resuming %s at epoch %d, step %ld of %ld\n", r->dir, r->epoch + 1,
                r->step, r->steps);
    fflush(r->log);

    int live = o->progress < 0 ? isatty(fileno(r->log)) : o->progress;
    int stop = r->cfg->patience > 0 && r->stop.since >= r->cfg->patience && r->stop.best_epoch > 0;
    int sig = 0;
    double last_print = 0;
    /* the training images stay where the kernels read them (on the GPU: uploaded once);
     * each epoch sets their order, each step gathers its batch */
    if (r->x.be->stage(&r->x, r->ds.train.x, r->ds.train.y, r->n, e)) rc = 2;
    for (int ep = r->epoch; !rc && !stop && ep < r->epochs; ep++) {
        float lr = bp_lr_at(r->cfg, r->lr0, ep);
        if (r->step == 0) memset(r->stats, 0, sizeof r->stats);
        /* several ranks: the arena holds one step's statistics of the rank's own samples,
         * summed over the ranks and added up here, in one order whatever the resumes */
        const float zero[4] = {0};
        if (bp_exec_put_f32(&r->x, r->p->stats, r->ranks > 1 ? zero : r->stats, 4, e)) { rc = 2; break; }
        bp_shuffle(idx, r->n, r->seed, (unsigned)ep);
        if (r->x.be->order(&r->x, idx, r->n, e)) { rc = 2; break; }
        double t0 = now(), t_base = r->epoch_seconds;
        long s0 = r->step;
        long gb = r->p->global_batch;
        for (long s = r->step; s < r->steps; s++) {
            if (r->ranks == 1 && g_signal) { sig = g_signal; break; }
            int nb = (int)(r->n - s * gb < gb ? r->n - s * gb : gb), b0 = 0, mine = nb;
            if (r->ranks > 1) bp_dist_share(nb, r->rank, &b0, &mine);
            bp_dyn d = {.lr = lr, .nb = mine, .step = (unsigned)(ep * r->steps + s), .seed = r->seed,
                        .b0 = b0, .nb_all = nb};
            float st[4];
            if (r->x.be->gather(&r->x, s * gb + b0, mine, e) ||
                bp_exec_run(&r->x, &r->p->train, &d, e) ||
                bp_exec_get_f32(&r->x, r->p->stats, st, 4, e) ||
                (r->ranks > 1 && bp_exec_put_f32(&r->x, r->p->stats, zero, 4, e))) {
                rc = 2;
                break;
            }
            /* several ranks: the same statistics everywhere, and a signal to any rank
             * stops all of them after this same step */
            int dsig = 0;
            if (r->ranks > 1) {
                dsig = bp_dist_step(st, g_signal);
                for (int k = 0; k < 4; k++) st[k] += r->stats[k];
            }
            if (!isfinite(st[BP_STAT_LOSS])) {
                char kept[4600];
                last_good(r, kept, sizeof kept);
                if (live) fprintf(r->log, "\n");
                bp_fail(e, "the loss became %s at epoch %d, step %ld of %ld (lr %g); "
                           "lower the learning rate (sgd lr) or the init std%s",
                        isnan(st[BP_STAT_LOSS]) ? "NaN" : "infinite", ep + 1, s + 1, r->steps, lr,
                        kept);
                rc = 2;
                break;
            }
            memcpy(r->stats, st, sizeof st);
            r->step = s + 1;
            double t = now();
            if (live && (t - last_print > 0.25 || s + 1 == r->steps)) {
                double done = (double)(s + 1 - s0), el = t - t0;
                progress_line(r, ep, s + 1, done > 0 && el > 0 ? st[BP_STAT_SEEN] / (t_base + el) : 0, st,
                              done > 0 ? el / done * (double)(r->steps - s - 1) : 0);
                last_print = t;
            }
            /* after an epoch's last step the epoch ends first, and the check at its end
             * stops the ranks at the boundary (as one process does) */
            if (dsig && s + 1 < r->steps) { sig = dsig; break; }
        }
        r->epoch_seconds = t_base + (now() - t0);
        if (rc) break;
        if (sig) {
            if (live) fprintf(r->log, "\n");
            if (save_last(r, e)) rc = 2;
            break;
        }
        /* the epoch is complete */
        double train_s = r->epoch_seconds, val, test;
        if (bp_evaluate(&r->x, r->val, r->val_test ? r->ntest : 0, NULL, &val, e)) { rc = 2; break; }
        if (r->val_test) test = val;
        else if (bp_evaluate(&r->x, &r->ds.test, r->ntest, NULL, &test, e)) { rc = 2; break; }
        double secs = t_base + (now() - t0);
        int dec = bp_stop_update(&r->stop, ep + 1, val, r->cfg->patience, r->cfg->min_delta);
        r->epoch = ep + 1;
        r->step = 0;
        r->train_seconds += train_s;
        r->epoch_seconds = 0;
        r->last_val = val;
        r->last_test = test;
        if (dec & BP_STOP_NEW_BEST) r->best_test = test;
        const float *st = r->stats;
        double seen = st[BP_STAT_SEEN] > 0 ? st[BP_STAT_SEEN] : 1;
        if (bp_ckpt_get(&r->x, r->snap, e) || weights_finite(r, r->snap, e)) { rc = 2; break; }
        if (r->aligned && bp_align_measure(&r->al, &r->x, &r->ds.train, r->seed, e)) { rc = 2; break; }
        /* The order matters for a kill at any point. metrics.jsonl first: a resume from
         * the previous last.safetensors drops this line and writes it again. Then last,
         * then best: a kill between the two leaves a best that restore() rebuilds from
         * last (the best epoch is last's own epoch). */
        for (int k = 0; k < 2 && !rc; k++) {
            FILE *m = k ? rmf : mf;
            if (!m) continue;
            int w = fprintf(m, "{\"epoch\": %d, \"lr\": %.9g, \"train_loss\": %.9g, \"train_reward\": %.9g, "
                       "\"train_acc\": %.9g, \"val_acc\": %.9g, \"test_acc\": %.9g, "
                       "\"best_epoch\": %d, \"seconds\": %.3f",
                    ep + 1, lr, st[BP_STAT_LOSS] / seen, st[BP_STAT_REWARD] / seen,
                    st[BP_STAT_CORRECT] / seen, val, test, r->stop.best_epoch, secs);
            if (w >= 0 && r->aligned) w = fprintf(m, ", ") < 0 ? -1 : bp_align_json(m, &r->al, ir);
            if (w >= 0) w = fprintf(m, "}\n");
            if (w < 0 || fflush(m))
                rc = (bp_fail(e, "%s: cannot write the metrics: %s", k ? "metrics.jsonl in the run folder" : o->metrics,
                              strerror(errno)), 2);
        }
        if (rc) break;
        if (dec & BP_STOP_NEW_BEST) memcpy(r->best, r->snap, sizeof *r->snap * (size_t)nfloat);
        if (r->dir[0]) {
            if (save(r, "last", r->snap, r->epoch, 0, val, test, e)) { rc = 2; break; }
            r->last_saved = 1;
            r->saved_epoch = r->epoch;
            r->saved_step = 0;
            if ((dec & BP_STOP_NEW_BEST) && save(r, "best", r->best, r->epoch, 0, val, test, e)) { rc = 2; break; }
        }
        if (live) fprintf(r->log, "\r\033[K");
        fprintf(r->log, "epoch %3d/%d  lr %.4g  loss %.5f  reward %.4f  train-acc %.4f  val-acc %.4f  "
                        "test-acc %.4f  %.1f s%s\n",
                ep + 1, r->epochs, lr, st[BP_STAT_LOSS] / seen, st[BP_STAT_REWARD] / seen,
                st[BP_STAT_CORRECT] / seen, val, test, secs, dec & BP_STOP_NEW_BEST ? "  *" : "");
        if (r->aligned) { /* degrees from the exact feedback: update / matrix */
            fprintf(r->log, "          feedback angles (layer: update/matrix):");
            for (int k = 0; k < r->al.nrows; k++) {
                const bp_align_row *a = &r->al.rows[k];
                fprintf(r->log, " %d: ", a->layer);
                fprintf(r->log, isfinite(a->update_angle) ? "%.1f" : "-", a->update_angle);
                fprintf(r->log, isfinite(a->weight_angle) ? "/%.1f" : "/-", a->weight_angle);
            }
            fprintf(r->log, "\n");
        }
        fflush(r->log);
        res->final_loss = st[BP_STAT_LOSS] / seen;
        if (dec & BP_STOP_STOP) {
            stop = 1;
            res->stopped_early = 1;
            fprintf(r->log, "early stop after epoch %d: the validation accuracy has not improved by "
                            "%g for %d epochs\n", ep + 1, r->cfg->min_delta, r->cfg->patience);
        }
        float none[4] = {0}; /* a bp_dist_step that only agrees on a signal */
        if (r->ranks > 1 ? (sig = bp_dist_step(none, g_signal)) != 0 : g_signal != 0) {
            if (!sig) sig = g_signal;
            break;
        }
    }
    if (!rc && sig) {
        char at[96];
        rc = 128 + sig;
        if (r->step > 0) snprintf(at, sizeof at, "at epoch %d, step %ld of %ld", r->epoch + 1, r->step, r->steps);
        else if (r->epoch > 0) snprintf(at, sizeof at, "after epoch %d", r->epoch);
        else snprintf(at, sizeof at, "before the first step");
        if (r->rank > 0)
            bp_fail(e, "interrupted by %s %s, with the other ranks; rank 0 saves the run",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", at);
        else if (r->dir[0])
            bp_fail(e, "interrupted by %s %s; saved %s/last.safetensors; continue with --resume %s",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", at, r->dir, r->dir);
        else
            bp_fail(e, "interrupted by %s %s; nothing saved (no --out)",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", at);
    }
    if (rc) goto done;
    if (stop) res->stopped_early = 1;

    /* the final test: the best epoch's weights */
    res->epochs_run = r->epoch;
    res->best_epoch = r->stop.best_epoch;
    res->best_val_acc = r->stop.best;
    res->last_test_acc = r->last_test;
    res->seconds_per_epoch = r->epoch ? r->train_seconds / r->epoch : 0;
    if (r->stop.best_epoch == 0) {
        rc = (bp_fail(e, "no epoch was trained (--epochs %d, the run has %d)", r->epochs, r->epoch), 1);
        goto done;
    }
    if (r->stop.best_epoch == r->epoch) {
        res->final_test_acc = r->last_test;
    } else {
        if (bp_ckpt_put(&r->x, r->best, e) ||
            bp_evaluate(&r->x, &r->ds.test, r->ntest, NULL, &res->final_test_acc, e)) { rc = 2; goto done; }
    }
    fprintf(r->log, "test accuracy %.4f (%ld images) with the weights of epoch %d, the best "
                    "validation accuracy %.4f (%s); %d epoch%s, %.1f s per epoch (training)\n",
            res->final_test_acc, r->ntest, r->stop.best_epoch, r->stop.best,
            r->val_test ? "on the test split, the paper's protocol" : "on the held-out training images",
            r->epoch, r->epoch == 1 ? "" : "s", res->seconds_per_epoch);
    if (r->stop.best_epoch != r->epoch)
        fprintf(r->log, "the last epoch's weights (epoch %d) had test accuracy %.4f\n", r->epoch,
                r->last_test);
    if (write_summary(r, res, r->stop.best_epoch, e)) rc = 2;

done:
    if (handlers) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (mf && !mf_shared) fclose(mf);
    if (rmf) fclose(rmf);
    free(idx);
out:
    if (r->aligned) bp_align_close(&r->al);
    if (r->opened) bp_exec_close(&r->x);
    bp_plan_free(r->p);
    free(r->snap);
    free(r->best);
    bp_split_free(&r->held);
    bp_dataset_free(&r->ds);
    if (r->o.data_dir != o->data_dir) free((char *)r->o.data_dir);
    if (r->lock_fd >= 0) close(r->lock_fd);
    if (r->quiet) fclose(r->quiet);
    return rc;
}
