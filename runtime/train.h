/* train.h: the training protocol: SGD epochs under the step schedule, a validation
 * split that chooses the epoch, early stopping, the best weights kept and tested,
 * checkpoints and a run folder, resume, signals.
 *
 * The protocol is the paper's (Pozzi, Bohte & Roelfsema, "Attention-Gated Brain
 * Propagation", NeurIPS 2020: lr halved every 100 epochs, at most 500 epochs, early
 * stopping with patience 45 and min_delta 0.001), with the two flaws of its reference
 * code fixed: early stopping watches a validation split held out from the training
 * images unless `--val test` asks for the paper's way, and the weights tested at the
 * end are the best epoch's, not the last one's.
 */
#ifndef BPC_TRAIN_H
#define BPC_TRAIN_H

#include <stdint.h>
#include <stdio.h>
#include "data.h"
#include "exec.h"
#include "ir.h"

/* Where validation images come from. BP_VAL_MODEL: as the train block says (`val`;
 * by default a held-out 10% of the training images). */
typedef enum { BP_VAL_MODEL = 0, BP_VAL_FRACTION, BP_VAL_COUNT, BP_VAL_TEST } bp_val_mode;

typedef struct {
    bp_val_mode mode;
    double value;          /* FRACTION: in (0, 1); COUNT: >= 1 images */
} bp_val_spec;

/* Parses a --val argument: "test", a whole number of images (>= 1) or a fraction in
 * (0, 1) ("0.1"). Returns 0, or -1 for anything else. */
int bp_val_parse(const char *s, bp_val_spec *v);

typedef struct {
    const char *data_dir;  /* --data, or NULL for $BPC_DATA / the XDG default;
                              "synthetic": a learnable stand-in of the model's shape */
    bp_target target;
    bp_rule rule;          /* from the output layer unless overridden */
    int has_rule;          /* 1: rule was given on the command line */
    bp_precision precision; /* of the GEMMs, when has_precision (else the train block's) */
    int has_precision;
    int epochs;            /* > 0 overrides the train block */
    int has_seed;          /* 1: seed below overrides the train block */
    uint64_t seed;
    float lr;              /* > 0 overrides the train block */
    long limit;            /* > 0: use only the first `limit` training images (the
                              held-out validation images are taken from these) */
    long test_limit;       /* > 0: evaluate on the first `test_limit` test images only */
    bp_val_spec val;       /* the validation split (BP_VAL_MODEL: the train block's) */
    const char *metrics;   /* path of a JSON Lines file, one object per epoch, or NULL */
    const char *out_dir;   /* the run folder, or NULL for none */
    const char *resume;    /* a run folder to continue (implies out_dir), or NULL */
    const char *command;   /* the command line as typed (for command.txt), or NULL */
    int progress;          /* 1: a live progress line; 0: one line per epoch; -1: live
                              when `log` is a terminal */
    FILE *log;             /* where the per-epoch lines go (stdout) */
    int single;            /* 1: train in this process alone even under mpirun (bpc repro
                              hands whole runs to ranks); 0: with several ranks
                              (runtime/dist.h), data-parallel over all of them */
} bp_train_opts;

/* Summary of a finished run. */
typedef struct {
    int epochs_run;        /* epochs completed, including those before a resume */
    int best_epoch;        /* 1-based epoch of the best validation accuracy: the weights
                              that were tested at the end */
    double best_val_acc;
    double final_test_acc; /* test accuracy of the best epoch's weights: the run's
                              result (not the last epoch's, see last_test_acc) */
    double last_test_acc;  /* test accuracy of the last epoch's weights */
    double final_loss;     /* mean training loss of the last epoch */
    double seconds_per_epoch; /* training time (without evaluation) per epoch */
    int stopped_early;
    int busy;              /* the run folder is being trained by another process (the
                              return value is then 1) */
} bp_train_result;

/* The learning rate of a 0-based epoch: lr * factor^floor(epoch / every). */
float bp_lr_at(const bp_train_cfg *t, float lr0, int epoch);

/* A Philox permutation of 0..n-1 for one epoch (Fisher-Yates; draw i is word i of
 * (seed, epoch, 0, BP_RNG_SHUFFLE)), identical on every machine. Position j in [0, i]
 * is (u * (i + 1)) >> 32 for the 32-bit word u (Lemire's multiply-shift, without his
 * rejection step: a bias below (i + 1) / 2^32, under 1.5e-5 for 60,000 images). */
void bp_shuffle(int *idx, long n, uint64_t seed, unsigned int epoch);

/* Early stopping, as a pure function of the validation accuracies.
 * best/best_epoch: the highest accuracy so far and its epoch (the first on a tie):
 * those weights are kept. ref: the accuracy of the last improvement by at least
 * min_delta; since: epochs since then. An epoch improves when acc > ref and
 * acc - ref >= min_delta (to within 1e-6, so that 0.987 - 0.986 counts as 0.001); the
 * first epoch always does. The run stops when since reaches patience (> 0).
 * min_delta therefore decides only when to stop, never which weights are kept. */
typedef struct {
    double best, ref;
    int best_epoch, since;
} bp_stop;

#define BP_STOP_NEW_BEST 1 /* this epoch's weights are the best so far: keep them */
#define BP_STOP_STOP 2     /* patience ran out: stop after this epoch */

/* Before the first epoch: best = ref = -1, best_epoch = since = 0. */
void bp_stop_init(bp_stop *s);

/* Feeds the validation accuracy `acc` of 1-based `epoch`; returns a combination of
 * BP_STOP_NEW_BEST and BP_STOP_STOP. patience 0 never stops. */
int bp_stop_update(bp_stop *s, int epoch, double acc, int patience, double min_delta);

/* Loads the data set named in the model, checks the model's input shape against it
 * (errors as "file.bp:L:C: error: ..."), holds out the validation split, compiles the
 * model for the target and trains under the protocol above. With out_dir it keeps the
 * run folder: model.bp (the source), command.txt (each command that ran in it, one a
 * line), metrics.jsonl, last.safetensors and best.safetensors (checkpoint.h; written at
 * the end of every epoch, last also when interrupted), summary.json at the end.
 * SIGINT and SIGTERM finish the current step, write last.safetensors and return
 * 130 / 143; a NaN or infinite loss stops the run (2) and keeps the last good
 * checkpoint. With resume, the run continues from RUN/last.safetensors: options left
 * out are taken from it, seed, rule, --limit, --test-limit and --val must match it,
 * --epochs and --lr may change. On the CPU target a resumed run is bit-identical to an
 * uninterrupted one (with the same thread count). The run folder's `lock` file is held
 * (flock) while training: a second process on the same folder gets error 1.
 * Returns 0; 1 for an error in the user's input (shape mismatch, unknown data set, a
 * resume that does not fit, a run folder in use); 2 for an I/O, target or numerical (NaN/Inf loss) failure;
 * 130/143 when interrupted. The message is in e. */
/* ir->path must name the readable .bp source: it is hashed into the checkpoints and
 * copied into the run folder. Weights that turn NaN or infinite while the loss stays
 * finite (a ReLU maps NaN to 0) stop the run too, before any checkpoint of them. */
int bp_train(bp_ir *ir, const bp_train_opts *o, bp_train_result *res, bp_err *e);

/* Runs the eval program over the first `limit` images of a split (all when limit <= 0
 * or beyond s->n); returns the accuracy in [0,1] in *acc. If preds is non-NULL it
 * receives the greedy prediction of every image evaluated (room for min(limit, s->n)
 * ints). Resets and overwrites the BP_STAT_EVAL_* statistics in the arena. Returns 0,
 * or -1 with e set (out of memory, a target failure). */
int bp_evaluate(bp_exec *x, const bp_split *s, long limit, int *preds, double *acc, bp_err *e);

/* Loads the data set of a model (as bp_train does) from data_dir (NULL: the default
 * root, bp_data_root; "synthetic": a stand-in of the model's shape with the named data
 * set's split sizes, or only the first `limit` training and `test_limit` test images
 * where those are > 0) and checks that its images and classes fit the model. Warns on
 * stderr when a real data set's splits are not the published sizes. Returns 0; 1 for a
 * mismatch (located message) or a model that names no data set (unless synthetic); 2
 * for unreadable data. */
int bp_load_data_for(const bp_ir *ir, const char *data_dir, long limit, long test_limit,
                     bp_dataset *ds, bp_err *e);

#endif
