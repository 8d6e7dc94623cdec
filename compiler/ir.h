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

/* How the feedback crosses a layer's weights W [out, in] on its way down (`feedback`):
 *  TIED    the transposed forward weights, W^T: exact backprop (the paper's choice);
 *  RANDOM  a fixed random B of W's shape, drawn once (feedback alignment: Lillicrap,
 *          Cownden, Tweed & Akerman, Nat. Commun. 2016);
 *  SIGN    alpha sign(W), alpha = mean |W| at this step (sign symmetry: Liao, Leibo &
 *          Poggio, AAAI 2016; alpha is the scale that brings it closest to W);
 *  KP      a B of W's shape that learns by W's own update, both with weight decay, so
 *          that B - W shrinks by (1 - lr decay) every step (Kolen-Pollack: Akrout, Wilson,
 *          Humphreys, Lillicrap & Tweed, NeurIPS 2019);
 *  DIRECT  whole-network: the output error (BrainProp: the chosen unit's RPE) reaches
 *          the top of every hidden block (a weight layer and the layers up to the next
 *          one) through its own fixed random matrix [classes, block output]; nothing
 *          crosses a weight layer (direct feedback alignment: Nokland, NeurIPS 2016). */
typedef enum { BP_FB_TIED, BP_FB_RANDOM, BP_FB_SIGN, BP_FB_KP, BP_FB_DIRECT, BP_NFEEDBACKS } bp_feedback;
/* "tied", "random", "sign", "kolen_pollack", "direct": the words of the language, by mode. */
extern const char *const BP_FEEDBACK_NAMES[BP_NFEEDBACKS];

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
    /* Weight layers (dense, conv, loccon, output): the feedback through this layer's
     * weights, resolved (the layer's own `feedback`, else the output's, else TIED); in a
     * DIRECT network every weight layer says DIRECT. fb_decay: KP's weight decay of W and
     * B per unit of learning rate (default 1e-3), 0 for the other modes. */
    bp_feedback feedback;
    float fb_decay;
    long params;         /* trainable parameters (BN: gamma+beta; moving stats excluded) */
    long macs;           /* multiply-adds per sample, forward pass */
} bp_layer;

/* The train block, defaults filled in (see docs/language.md). */
/* How the GEMMs compute (`precision` in the train block, --precision):
 *   IEEE:   float32 operands and products (cuBLAS's default math, CBLAS).
 *   TF32:   each operand rounded to TF32 (10 mantissa bits, round to nearest, ties
 *           away from zero: PTX's cvt.rna.tf32.f32), products accumulated in float32:
 *           the tensor cores of NVIDIA Ampere and later.
 *   3XTF32: each operand split into big = tf32(a) and small = tf32(a - big), and
 *           C = alpha (As Bb + Ab Bs + Ab Bb) + beta C in three TF32 GEMMs (the small
 *           x small term dropped): about float32's accuracy at tensor-core speed
 *           (CUTLASS's 3xTF32; Ootomo & Yokota, IJHPCA 2022).
 * The CPU target rounds and splits the operands the same way before CBLAS, so that it
 * stays the reference for every mode; the double-precision CPU target (tests) ignores
 * the setting and stays exact. Kernels (not GEMMs) are float32 in every mode. */
typedef enum { BP_PREC_IEEE = 0, BP_PREC_TF32, BP_PREC_3XTF32, BP_NPRECISIONS } bp_precision;

/* "ieee", "tf32", "3xtf32": the words of the language and of --precision, by mode. */
extern const char *const BP_PRECISION_NAMES[BP_NPRECISIONS];
const char *bp_precision_name(bp_precision p);
/* The precision that word s names into *p; 0, or -1 (and *p untouched) for another. */
int bp_precision_parse(const char *s, bp_precision *p);

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
    bp_precision precision; /* of the GEMMs (`precision`; default BP_PREC_IEEE) */
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

/* BP_FEEDBACK_NAMES[f], or "?" for a value out of range. */
const char *bp_feedback_name(bp_feedback f);

/* 1 for the layers with a weight matrix that feedback can cross: dense, conv, loccon,
 * output. */
int bp_has_weights(bp_layer_kind k);

/* The index of the first layer with parameters (a weight layer or batch norm): no
 * feedback needs to go below it. */
int bp_first_trainable(const bp_ir *ir);

/* 1 when some layer's feedback is not tied (the alignment metrics are then kept). */
int bp_feedback_untied(const bp_ir *ir);

/* The model with every feedback tied, for the alignment metrics' exact reference: a
 * copy of *ir whose layers (malloc'd, the caller frees tied->layers) say TIED; name and
 * path are borrowed. Returns 0, or -1 when out of memory. */
int bp_ir_tied(const bp_ir *ir, bp_ir *tied);

#endif
