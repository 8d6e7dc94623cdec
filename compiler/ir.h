/* ir.h: the one intermediate representation of a bpc model.
 *
 * The front end (grammar/ + compiler/check.c) turns a .bp file into a bp_ir: a
 * straight list of layers with every shape inferred and checked, plus the train
 * block with defaults filled in. Both code generators (C and CUDA) read only this.
 *
 * Layouts: activations are NHWC per sample, batch-major ([B, H, W, C], row-major),
 * so a dense layer sees the flattened H*W*C vector in Keras' channels_last order.
 * A dense input has shape H=1, W=1, C=features.
 */
#ifndef BPC_IR_H
#define BPC_IR_H

#include <stdint.h>

/* A place in the .bp source: 1-based line and column. */
typedef struct { int line, col; } bp_loc;

/* One tensor shape per sample: height x width x channels (NHWC). */
typedef struct { int h, w, c; } bp_shape;

static inline long bp_shape_size(bp_shape s) { return (long)s.h * s.w * s.c; }

typedef enum {
    BP_INPUT,     /* the image; shape given by `input H x W x C` */
    BP_DENSE,     /* fully connected, no bias: y = x W^T, W [units, in] */
    BP_CONV,      /* 2-D convolution, no bias, W [F, K, K, Cin] (OHWI) */
    BP_LOCCON,    /* locally connected 2-D: untied W [P, F, K, K, Cin], P = Ho*Wo */
    BP_MAXPOOL,   /* max pooling, size x size window, stride (default: size) */
    BP_BATCHNORM, /* Keras batch norm over the channel axis, scale gamma and shift beta */
    BP_DROPOUT,   /* inverted dropout with drop rate `rate`, training only */
    BP_OUTPUT     /* the Q-value layer (dense, no bias) and the learning rule */
} bp_layer_kind;

typedef enum {
    /* BrainProp (Pozzi, Bohte & Roelfsema, NeurIPS 2020): max-Boltzmann action
     * selection (greedy with probability 1 - epsilon, else a draw from softmax(Q)),
     * reward, RPE, attention-gated feedback of the chosen unit only. */
    BP_RULE_BRAINPROP,
    /* EBP: softmax + categorical cross-entropy, error backpropagation (in a .bp file,
     * `output N softmax`) */
    BP_RULE_EBP
} bp_rule;

typedef struct {
    bp_layer_kind kind;
    bp_loc loc;          /* where the layer's keyword stands */
    bp_shape in, out;    /* per-sample shapes, NHWC */
    int units;           /* dense/output units, conv/loccon filters */
    int ksize, stride;   /* conv, loccon, maxpool */
    int pad_same;        /* 1: pad 'same' (TensorFlow rule), 0: 'valid' */
    int pad_top, pad_left; /* derived: TF 'same' puts the odd pixel at bottom/right */
    int relu;            /* 1: ReLU after the linear map (dense/conv/loccon) */
    float rate;          /* dropout drop rate, 0 <= rate < 1 */
    bp_rule rule;        /* output only */
    float epsilon;       /* output brainprop: exploration probability, 0..1 (default 0.02) */
    long params;         /* trainable parameters (BN: gamma+beta; moving stats excluded) */
    long macs;           /* multiply-adds per sample, forward pass */
} bp_layer;

/* The train block, defaults filled in (see docs/language.md). */
typedef struct {
    char dataset[32];    /* "mnist", "fashion-mnist", "cifar10", "cifar100",
                            "cifar100-coarse", "tinyimagenet"; "" when the block has no
                            `data` */
    int batch;           /* samples per SGD step (default 128) */
    float lr;            /* SGD learning rate (default 0.1) */
    int lr_every;        /* lr_step every N epochs (0 = constant; default 100) */
    float lr_factor;     /* ... multiplied by this factor (default 0.5) */
    int epochs;          /* maximum epochs (default 500) */
    int patience;        /* early stop after this many epochs without improvement (default 45; 0 = off) */
    float min_delta;     /* ... of at least this much accuracy (default 0.001) */
    float init_std;      /* weights ~ normal(0, init_std) (default 0.005) */
    float l2;            /* lambda: lambda * sum(w^2) is added to the loss (default 0) */
    uint64_t seed;       /* Philox key (default 1) */
    /* The validation split that early stopping and the choice of the tested weights
     * watch (`val`): the test split (val_test = 1, the paper's protocol), or images
     * held out from the end of the training split: val_count of them when > 0, else
     * the fraction val_fraction (default 0.1). */
    int val_test;
    long val_count;
    float val_fraction;
} bp_train_cfg;

typedef struct {
    char *name;          /* model name from `model NAME { ... }` */
    char *path;          /* the .bp file it came from */
    bp_layer *layers;    /* layers[0] is BP_INPUT, layers[n-1] is BP_OUTPUT */
    int n;
    bp_train_cfg train;
    long params, macs;   /* totals */
} bp_ir;

void bp_ir_free(bp_ir *ir);

/* Output spatial size of a conv/loccon/pool along one axis, TensorFlow rules:
 * same: ceil(in/stride); valid: floor((in-k)/stride)+1 (<= 0 means no output). */
int bp_out_dim(int in, int k, int stride, int pad_same);

/* Padding placed before the first pixel under 'same': total/2, the odd one after. */
int bp_pad_before(int in, int k, int stride, int pad_same);

const char *bp_layer_kind_name(bp_layer_kind k);

#endif
