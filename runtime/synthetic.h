/* synthetic.h: a learnable stand-in data set of a given shape (`--data synthetic`). */
#ifndef BPC_SYNTHETIC_H
#define BPC_SYNTHETIC_H

#include "data.h"

/* Fills d with ntrain + ntest uint8 NHWC images of h x w x c in `classes` classes:
 * each image is 3/4 its class's fixed random template plus 1/4 its own noise (all
 * from Philox, so every machine makes the same set). d->name is "synthetic-NAME".
 * Errors: out of memory. */
int bp_dataset_synthetic(const char *name, int h, int w, int c, int classes, long ntrain,
                         long ntest, bp_dataset *d, bp_err *e);

#endif
