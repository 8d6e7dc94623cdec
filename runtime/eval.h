/* eval.h: `bpc eval MODEL.bp CHECKPOINT`: the test accuracy and the confusion matrix
 * of saved weights.
 *
 * Kept apart from the command line so that a standalone trainer can offer the same. */
#ifndef BPC_EVAL_H
#define BPC_EVAL_H

#include <stdio.h>
#include "exec.h"
#include "ir.h"

typedef struct {
    const char *data_dir;  /* as bp_train_opts.data_dir */
    bp_target target;
    long test_limit;       /* > 0: only the first test_limit test images */
    int json;              /* 1: one JSON object instead of the text report */
    FILE *out;             /* where the report goes (stdout) */
} bp_eval_opts;

/* Loads `ckpt` (a .safetensors file, or a run folder: its best.safetensors) into the
 * model, checked as bp_ckpt_read does (names, shapes, finite values, source hash),
 * evaluates it on the test split and reports the accuracy and the confusion matrix
 * (rows: the true class, columns: the predicted one; the greedy prediction argmax Q,
 * the first on a tie). The text report prints the whole matrix for up to 20 classes,
 * else the 10 most frequent confusions; the JSON form always has the whole matrix.
 * ir->path must name the readable .bp source (its hash is checked).
 * The JSON form: {"model", "source", "checkpoint", "epoch" (or null), "rule", "dataset",
 * "images", "correct", "accuracy", "classes", "class_names" (or null), "confusion"
 * [classes][classes], "predictions" [images]}.
 * Returns 0; 1 when the checkpoint does not fit the model or the data do not fit it;
 * 2 for unreadable or corrupt files and target failures. The message is in e. */
int bp_eval_checkpoint(bp_ir *ir, const char *ckpt, const bp_eval_opts *o, bp_err *e);

#endif
