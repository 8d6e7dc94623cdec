/* train.h: the training loop (SGD epochs, evaluation, early stopping, metrics). */
#ifndef BPC_TRAIN_H
#define BPC_TRAIN_H

#include <stdint.h>
#include <stdio.h>
#include "data.h"
#include "exec.h"
#include "ir.h"

typedef struct {
    const char *data_dir;  /* --data, or NULL for $BPC_DATA / the XDG default;
                              "synthetic": a learnable stand-in of the model's shape */
    bp_target target;
    bp_rule rule;          /* from the output layer unless overridden */
    int epochs;            /* > 0 overrides the train block */
    int has_seed;          /* 1: seed below overrides the train block */
    uint64_t seed;
    float lr;              /* > 0 overrides the train block */
    long limit;            /* > 0: train on the first `limit` training images only */
    long test_limit;       /* > 0: evaluate on the first `test_limit` test images only */
    const char *metrics;   /* path of a JSON Lines file, one object per epoch, or NULL */
    FILE *log;             /* where the per-epoch lines go (stdout) */
} bp_train_opts;

/* Summary of a finished run. */
typedef struct {
    int epochs_run;
    int best_epoch;        /* 1-based epoch of the best test accuracy */
    double best_test_acc;
    double final_test_acc;
    double final_loss;
    double seconds_per_epoch;
} bp_train_result;

/* The learning rate of a 0-based epoch: lr * factor^floor(epoch / every). */
float bp_lr_at(const bp_train_cfg *t, float lr0, int epoch);

/* A Philox permutation of 0..n-1 for one epoch (Fisher-Yates; draw i is word i of
 * (seed, epoch, 0, BP_RNG_SHUFFLE)), identical on every machine. */
void bp_shuffle(int *idx, long n, uint64_t seed, unsigned int epoch);

/* Loads the data set named in the model, checks the model's input shape against it
 * (errors as "file.bp:L:C: error: ..."), compiles the model for the target and trains.
 * Returns 0; 1 for an error in the user's input (shape mismatch, unknown data set);
 * 2 for an I/O, target or numerical (NaN/Inf loss) failure. The message is in e. */
int bp_train(bp_ir *ir, const bp_train_opts *o, bp_train_result *res, bp_err *e);

/* Runs the eval program over a split; returns the accuracy in [0,1] in *acc.
 * If preds is non-NULL it receives the greedy prediction of every image. */
int bp_evaluate(bp_exec *x, const bp_split *s, long limit, int *preds, double *acc, bp_err *e);

#endif
