/* check.c: the model block -> IR layers, and the whole-file checks (bp_check).
 *
 * Three passes over the model, each reporting everything it can:
 *   1. each statement is read as a layer: kind, positional value, options, ranges;
 *   2. the order: exactly one input, first; exactly one output, last;
 *   3. shapes (TensorFlow's 'same'/'valid' rules), parameters and multiply-adds, with
 *      all counts computed in saturating 64-bit arithmetic and held under
 *      BP_MAX_COUNT, so that a huge model is reported as too large, never overflows.
 * Pass 3 stops at the first layer whose shape cannot be known; passes 1 and 2 look at
 * every layer. After syntax errors only pass 1 runs (see bp_check). The IR is built
 * only when nothing at all was reported.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "check.h"
#include "suggest.h"

typedef enum { POS_NONE, POS_DIMS, POS_INT, POS_NUM } pos_kind;

typedef struct {
    const char *name;
    bp_layer_kind kind;
    pos_kind pos;         /* the value right after the keyword */
    const char *pos_what; /* its name in messages */
    const char *needs;    /* the message when it is missing */
    const char *usage;
    bp_optspec opts[6];
    int nopts;
} layer_spec;

#define NLAYERS 8
static const char *const LAYER_NAMES[NLAYERS + 1] = {
    "input", "dense", "conv", "loccon", "maxpool", "batchnorm", "dropout", "output", NULL,
};

/* `feedback MODE [decay D]` on every layer with weights: always the last two options */
#define FB_OPTS { "feedback", BP_OPT_WORD, 0, "feedback random" }, { "decay", BP_OPT_NUM, 0, "decay 0.001" }
#define FB_USAGE "[feedback tied|random|sign|kolen_pollack [decay D]]"
#define CONV_OPTS                                                              \
    { { "size", BP_OPT_INT, 1, "size 3" }, { "stride", BP_OPT_INT, 0, "stride 2" }, \
      { "pad", BP_OPT_WORD, 0, "pad same" }, { "relu", BP_OPT_FLAG, 0, "relu" }, FB_OPTS }, 6

static const layer_spec LAYERS[NLAYERS] = {
    { "input", BP_INPUT, POS_DIMS, "input",
      "input needs its shape H x W x C, as in 'input 28 x 28 x 1'", "input H x W x C",
      { { 0 } }, 0 },
    { "dense", BP_DENSE, POS_INT, "dense units",
      "dense needs its number of units, as in 'dense 500 relu'", "dense N [relu] " FB_USAGE,
      { { "relu", BP_OPT_FLAG, 0, "relu" }, FB_OPTS }, 3 },
    { "conv", BP_CONV, POS_INT, "conv filters",
      "conv needs its number of filters, as in 'conv 32 size 3'",
      "conv F size K [stride S] [pad same|valid] [relu] " FB_USAGE, CONV_OPTS },
    { "loccon", BP_LOCCON, POS_INT, "loccon filters",
      "loccon needs its number of filters, as in 'loccon 32 size 3'",
      "loccon F size K [stride S] [pad same|valid] [relu] " FB_USAGE, CONV_OPTS },
    { "maxpool", BP_MAXPOOL, POS_NONE, NULL, NULL, "maxpool size K [stride S] [pad same|valid]",
      { { "size", BP_OPT_INT, 1, "size 2" }, { "stride", BP_OPT_INT, 0, "stride 2" },
        { "pad", BP_OPT_WORD, 0, "pad same" } }, 3 },
    { "batchnorm", BP_BATCHNORM, POS_NONE, NULL, NULL, "batchnorm", { { 0 } }, 0 },
    { "dropout", BP_DROPOUT, POS_NUM, "dropout rate",
      "dropout needs its drop rate, as in 'dropout 0.3'", "dropout RATE", { { 0 } }, 0 },
    { "output", BP_OUTPUT, POS_INT, "output units",
      "output needs its number of classes, as in 'output 10 brainprop'",
      "output N (brainprop [epsilon E] | softmax) "
      "[feedback tied|random|sign|kolen_pollack|direct [decay D]]",
      { { "brainprop", BP_OPT_FLAG, 0, "brainprop" }, { "softmax", BP_OPT_FLAG, 0, "softmax" },
        { "epsilon", BP_OPT_NUM, 0, "epsilon 0.02" }, FB_OPTS }, 5 },
};

/* One layer while it is being checked. */
typedef struct {
    bp_layer l;
    int shape_ok;          /* every value that decides its output shape was read */
    bp_span size_loc;      /* where its kernel size was written (conv, loccon, pool) */
    const bp_arg *fb_key;  /* its own `feedback` option, or NULL */
    const bp_arg *decay;   /* its own `decay` option, or NULL */
    int fb_ok;             /* the feedback word was read (l.feedback holds it) */
} layer_info;

int bp_is_layer_name(const char *w) {
    for (int i = 0; i < NLAYERS; i++)
        if (!strcmp(w, LAYER_NAMES[i])) return 1;
    return 0;
}

static uint64_t mul_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static bp_loc loc_of(bp_span s) { return (bp_loc){ s.first_line, s.first_column }; }

static bp_span span_of(bp_loc l) { return bp_span_at(l.line, l.col); }

/* ---- pass 1: one statement -> one layer -------------------------------------------- */

/* Reads the value right after the keyword. Returns the first arg after it. */
static const bp_arg *read_positional(bp_diag *d, const bp_stmt *s, const layer_spec *sp,
                                     layer_info *li) {
    const bp_arg *a = s->args;
    if (sp->pos == POS_NONE) return a;
    int fits = a && (sp->pos == POS_DIMS ? a->kind == BP_ARG_DIMS : a->kind == BP_ARG_NUM);
    int taken = fits || (a && a->kind != BP_ARG_WORD && sp->pos != POS_DIMS);
    if (!taken) {
        /* Missing, or a word: an option is left to the option reader, any other word
         * is taken as the misplaced value and needs no second message. */
        bp_diag_error(d, a ? a->loc : s->loc, "%s", sp->needs);
        if (a && a->kind == BP_ARG_NUM)
            bp_diag_hint(d, "a shape has three dimensions: height x width x channels");
        li->shape_ok = 0;
        if (!a || a->kind != BP_ARG_WORD) return a ? a->next : a;
        for (int i = 0; i < sp->nopts; i++)
            if (!strcmp(a->text, sp->opts[i].name)) return a;
        if (bp_is_layer_name(a->text)) return a; /* a missing ';' */
        return a->next;
    }
    int64_t v;
    switch (sp->pos) {
    case POS_DIMS: {
        if (a->ndims != 3) {
            bp_diag_error(d, a->loc, "input needs 3 dimensions H x W x C, got %d", a->ndims);
            li->shape_ok = 0;
            break;
        }
        static const char *const what[3] = { "input height", "input width",
                                             "input channels" };
        int dims[3] = { 0, 0, 0 }, i = 0;
        for (const bp_arg *p = a->dims; p; p = p->next, i++) {
            if (bp_get_int(d, p, what[i], 1, BP_MAX_DIM, &v)) li->shape_ok = 0;
            else dims[i] = (int)v;
        }
        li->l.out = (bp_shape){ dims[0], dims[1], dims[2] };
        li->l.in = li->l.out;
        break;
    }
    case POS_INT:
        if (bp_get_int(d, a, sp->pos_what, 1, BP_MAX_DIM, &v)) li->shape_ok = 0;
        else li->l.units = (int)v;
        break;
    case POS_NUM:
        if (bp_get_float(d, a, sp->pos_what, 0, 0, 1, 1, &li->l.rate)) li->shape_ok = 0;
        break;
    case POS_NONE:
        break;
    }
    return a->next;
}

/* Reads `pad same|valid`. */
static int read_pad(bp_diag *d, const bp_arg *v, int *pad_same) {
    static const char *const pads[2] = { "same", "valid" };
    char c[BP_CLIP];
    if (!strcmp(v->text, "same")) *pad_same = 1;
    else if (!strcmp(v->text, "valid")) *pad_same = 0;
    else {
        bp_diag_error(d, v->loc, "pad must be 'same' or 'valid', got '%s'", bp_clip(v->text, c));
        const char *near = bp_suggest(v->text, pads, 2);
        if (near) bp_diag_hint(d, "did you mean '%s'?", near);
        return -1;
    }
    return 0;
}

/* Reads an integer option value into *out if it was given. */
static int opt_int(bp_diag *d, const bp_optseen *o, const char *what, int *out) {
    int64_t v;
    if (!o->val) return o->key ? -1 : 0;
    if (bp_get_int(d, o->val, what, 1, BP_MAX_DIM, &v)) return -1;
    *out = (int)v;
    return 0;
}

/* The learning rule of `output`: exactly one of brainprop and softmax. */
static void read_rule(bp_diag *d, const bp_stmt *s, const layer_spec *sp,
                      const bp_optseen *seen, bp_layer *l) {
    const bp_arg *bprop = seen[0].key, *soft = seen[1].key, *eps = seen[2].key;
    l->rule = soft && !bprop ? BP_RULE_EBP : BP_RULE_BRAINPROP;
    l->epsilon = 0.02f;
    if (bprop && soft) {
        const bp_arg *later = bprop->loc.first_line > soft->loc.first_line ||
                                      (bprop->loc.first_line == soft->loc.first_line &&
                                       bprop->loc.first_column > soft->loc.first_column)
                                  ? bprop
                                  : soft;
        bp_diag_error(d, later->loc, "output takes one learning rule, not both brainprop "
                                     "and softmax");
    } else if (!bprop && !soft) {
        bp_diag_error(d, s->loc, "output needs a learning rule: 'brainprop' or 'softmax'");
        bp_diag_hint(d, "usage: %s", sp->usage);
    }
    if (eps && soft && !bprop) {
        bp_diag_error(d, eps->loc, "epsilon applies only to the brainprop rule");
        bp_diag_hint(d, "softmax outputs are trained by error backpropagation, without "
                        "exploration");
    } else if (seen[2].val) {
        bp_get_float(d, seen[2].val, "epsilon", 0, 0, 1, 0, &l->epsilon);
    }
}

#define KP_DECAY 1e-3f /* Kolen-Pollack's default weight decay (the paper's deep-net L2 gradient) */

/* Reads `feedback MODE` and `decay D` (seen[0], seen[1]) into the layer; the modes are
 * resolved across layers by resolve_feedback. */
static void read_feedback(bp_diag *d, const bp_optseen *seen, layer_info *li) {
    char c[BP_CLIP];
    li->fb_key = seen[0].key;
    li->decay = seen[1].key;
    if (seen[0].val) {
        int m = 0;
        while (m < BP_NFEEDBACKS && strcmp(seen[0].val->text, BP_FEEDBACK_NAMES[m])) m++;
        if (m == BP_NFEEDBACKS) {
            bp_diag_error(d, seen[0].val->loc, "feedback must be tied, random, sign, "
                          "kolen_pollack or direct, got '%s'", bp_clip(seen[0].val->text, c));
            const char *near = bp_suggest(seen[0].val->text, BP_FEEDBACK_NAMES, BP_NFEEDBACKS);
            if (near) bp_diag_hint(d, "did you mean '%s'?", near);
        } else {
            li->l.feedback = (bp_feedback)m;
            li->fb_ok = 1;
        }
    }
    if (seen[1].val)
        bp_get_float(d, seen[1].val, "decay", 0, 0, 1, 1, &li->l.fb_decay);
    else
        li->l.fb_decay = KP_DECAY;
}

static void read_layer(bp_diag *d, const bp_stmt *s, const layer_spec *sp, layer_info *li) {
    bp_layer *l = &li->l;
    memset(li, 0, sizeof *li);
    l->kind = sp->kind;
    l->loc = loc_of(s->loc);
    l->stride = 1;
    li->shape_ok = 1;
    li->size_loc = s->loc;
    const bp_arg *a = read_positional(d, s, sp, li);

    bp_optseen seen[6];
    bp_read_opts(d, s, a, sp->usage, sp->opts, sp->nopts, seen, LAYER_NAMES);
    if (bp_has_weights(sp->kind)) read_feedback(d, &seen[sp->nopts - 2], li);
    switch (sp->kind) {
    case BP_DENSE:
        l->relu = seen[0].key != NULL;
        break;
    case BP_CONV:
    case BP_LOCCON:
        if (!seen[0].val || opt_int(d, &seen[0], "kernel size", &l->ksize))
            li->shape_ok = 0;
        else li->size_loc = seen[0].val->loc;
        if (opt_int(d, &seen[1], "stride", &l->stride)) li->shape_ok = 0;
        if (seen[2].val && read_pad(d, seen[2].val, &l->pad_same)) li->shape_ok = 0;
        if (seen[2].key && !seen[2].val) li->shape_ok = 0;
        l->relu = seen[3].key != NULL;
        break;
    case BP_MAXPOOL:
        if (!seen[0].val || opt_int(d, &seen[0], "pool size", &l->ksize))
            li->shape_ok = 0;
        else li->size_loc = seen[0].val->loc;
        l->stride = l->ksize;
        if (opt_int(d, &seen[1], "stride", &l->stride)) li->shape_ok = 0;
        if (seen[2].val && read_pad(d, seen[2].val, &l->pad_same)) li->shape_ok = 0;
        if (seen[2].key && !seen[2].val) li->shape_ok = 0;
        break;
    case BP_OUTPUT:
        read_rule(d, s, sp, seen, l);
        break;
    default:
        break;
    }
}

/* Reads every statement of the model; unknown ones are reported and left out. */
static layer_info *read_layers(bp_diag *d, const bp_block *m, int *n) {
    int cap = 0;
    for (const bp_stmt *s = m->stmts; s; s = s->next) cap++;
    layer_info *li = bp_xmalloc(sizeof *li * (size_t)(cap ? cap : 1));
    char c[BP_CLIP], list[128];
    *n = 0;
    for (const bp_stmt *s = m->stmts; s && !d->stopped; s = s->next) {
        int k = 0;
        while (k < NLAYERS && strcmp(s->head, LAYER_NAMES[k])) k++;
        if (k < NLAYERS) {
            read_layer(d, s, &LAYERS[k], &li[(*n)++]);
            continue;
        }
        if (bp_is_train_setting(s->head)) {
            bp_diag_error(d, s->loc, "'%s' is a train setting; it belongs in the train block",
                          s->head);
            bp_diag_hint(d, "write it in 'train { ... }' after the model");
            continue;
        }
        bp_diag_error(d, s->loc, "unknown layer '%s'", bp_clip(s->head, c));
        const char *near = bp_suggest(s->head, LAYER_NAMES, NLAYERS);
        if (near) bp_diag_hint(d, "did you mean '%s'?", near);
        else bp_diag_hint(d, "the layers are %s",
                          bp_join(list, sizeof list, LAYER_NAMES, NLAYERS, " and "));
    }
    return li;
}

/* ---- pass 2: the order of layers ---------------------------------------------------- */

/* 1 when a statement of m holds the word `head` among its arguments: a layer glued to
 * the one before by a missing ';', already reported by bp_read_opts. */
static int glued(const bp_block *m, const char *head) {
    for (const bp_stmt *s = m->stmts; s; s = s->next)
        for (const bp_arg *a = s->args; a; a = a->next)
            if (a->kind == BP_ARG_WORD && !strcmp(a->text, head)) return 1;
    return 0;
}

static int check_order(bp_diag *d, const bp_block *m, const layer_info *li, int n) {
    char c[BP_CLIP];
    int ok = 1;
    if (n == 0) {
        bp_diag_error(d, m->name_loc, "model '%s' has no layers", bp_clip(m->name, c));
        bp_diag_hint(d, "a model needs at least 'input H x W x C;' and 'output N brainprop;'");
        return 0;
    }
    const bp_layer *first_in = NULL, *first_out = NULL;
    for (int i = 0; i < n; i++) {
        const bp_layer *l = &li[i].l;
        if (l->kind == BP_INPUT) {
            if (first_in) {
                bp_diag_error(d, span_of(l->loc), "a second input layer; a model has one");
                bp_diag_hint(d, "the first is at %d:%d", first_in->loc.line, first_in->loc.col);
                ok = 0;
                continue;
            }
            first_in = l;
            if (i > 0) {
                bp_diag_error(d, span_of(l->loc), "input must be the first layer");
                bp_diag_hint(d, "%s at %d:%d comes before it", bp_layer_kind_name(li[0].l.kind),
                             li[0].l.loc.line, li[0].l.loc.col);
                ok = 0;
            }
        } else if (l->kind == BP_OUTPUT) {
            if (first_out) {
                bp_diag_error(d, span_of(l->loc), "a second output layer; a model has one");
                bp_diag_hint(d, "the first is at %d:%d", first_out->loc.line,
                             first_out->loc.col);
                ok = 0;
                continue;
            }
            first_out = l;
            if (i < n - 1) {
                bp_diag_error(d, span_of(l->loc), "output must be the last layer");
                bp_diag_hint(d, "%s at %d:%d follows it", bp_layer_kind_name(li[i + 1].l.kind),
                             li[i + 1].l.loc.line, li[i + 1].l.loc.col);
                ok = 0;
            }
        }
    }
    if (!first_in) {
        bp_diag_error(d, m->name_loc, "model '%s' has no input layer", bp_clip(m->name, c));
        bp_diag_hint(d, "start the model with 'input H x W x C;'");
        ok = 0;
    }
    if (!first_out && !glued(m, "output")) {
        bp_diag_error(d, m->name_loc, "model '%s' has no output layer", bp_clip(m->name, c));
        bp_diag_hint(d, "end the model with 'output N brainprop;' or 'output N softmax;'");
        ok = 0;
    }
    return ok;
}

/* ---- pass 2b: the feedback pathways ------------------------------------------------ */

/* Resolves every weight layer's feedback: its own, else the output's, else tied, and
 * reports the combinations that mean nothing. Needs the order checked (output last). */
static void resolve_feedback(bp_diag *d, layer_info *li, int n) {
    layer_info *out = &li[n - 1];
    bp_feedback net = out->fb_ok ? out->l.feedback : BP_FB_TIED;
    int first = n - 1; /* the first trainable layer: no feedback goes below it */
    for (int i = 1; i < n; i++)
        if (bp_has_weights(li[i].l.kind) || li[i].l.kind == BP_BATCHNORM) { first = i; break; }
    for (int i = 1; i < n; i++) {
        layer_info *L = &li[i];
        if (!bp_has_weights(L->l.kind)) continue;
        const char *k = bp_layer_kind_name(L->l.kind);
        if (L->fb_ok && i == first) {
            bp_diag_error(d, L->fb_key->loc, "no feedback crosses the weights of the first "
                          "trainable layer: no layer below it learns");
            bp_diag_hint(d, "remove 'feedback %s' here; it would change nothing",
                         bp_feedback_name(L->l.feedback));
        } else if (L->fb_ok && i < n - 1 && L->l.feedback == BP_FB_DIRECT) {
            bp_diag_error(d, L->fb_key->loc, "feedback direct is a choice for the whole "
                          "network: it sends the output's error to every hidden layer");
            bp_diag_hint(d, "write it on the output layer: 'output N brainprop feedback direct'");
        } else if (L->fb_ok && i < n - 1 && net == BP_FB_DIRECT) {
            bp_diag_error(d, L->fb_key->loc, "the network has direct feedback (output at "
                          "%d:%d), so no feedback crosses the weights of this %s",
                          out->l.loc.line, out->l.loc.col, k);
            bp_diag_hint(d, "remove 'feedback %s' here, or choose another feedback on the "
                         "output layer", bp_feedback_name(L->l.feedback));
        }
        bp_feedback own = L->fb_ok ? L->l.feedback : net;
        L->l.feedback = net == BP_FB_DIRECT ? BP_FB_DIRECT : own;
        if (L->decay && L->l.feedback != BP_FB_KP) {
            bp_diag_error(d, L->decay->loc, "decay applies only to kolen_pollack feedback, "
                          "and this %s's is %s", k, bp_feedback_name(L->l.feedback));
            bp_diag_hint(d, "remove 'decay', or write 'feedback kolen_pollack decay D'");
        }
        if (L->l.feedback != BP_FB_KP) L->l.fb_decay = 0;
        else if (!L->decay && out->decay) L->l.fb_decay = out->l.fb_decay;
    }
}

/* ---- pass 3: shapes and sizes ------------------------------------------------------- */

/* Checks a layer's counts against the limits. */
static int check_counts(bp_diag *d, const bp_layer *l, uint64_t act, uint64_t params,
                        uint64_t macs) {
    const char *k = bp_layer_kind_name(l->kind);
    bp_span at = span_of(l->loc);
    if (act > (uint64_t)BP_MAX_COUNT) {
        if (l->kind == BP_INPUT)
            bp_diag_error(d, at, "input is too large: %dx%dx%d is more than 2^40 values "
                                 "per sample", l->out.h, l->out.w, l->out.c);
        else
            bp_diag_error(d, at, "%s is too large: its output %dx%dx%d is more than 2^40 "
                                 "values per sample", k, l->out.h, l->out.w, l->out.c);
        return -1;
    }
    if (params > (uint64_t)BP_MAX_COUNT) {
        bp_diag_error(d, at, "%s is too large: it has more than 2^40 parameters", k);
        return -1;
    }
    if (macs > (uint64_t)BP_MAX_COUNT) {
        bp_diag_error(d, at, "%s is too large: it needs more than 2^40 multiply-adds per "
                             "sample", k);
        return -1;
    }
    return 0;
}

/* Output shape, padding, parameters and multiply-adds of layer i from its input.
 * `flat` is the dense layer that flattened the activations, or NULL. */
static int infer_layer(bp_diag *d, layer_info *li, const bp_layer *flat) {
    bp_layer *l = &li->l;
    bp_shape in = l->in;
    const char *k = bp_layer_kind_name(l->kind);
    uint64_t insz = (uint64_t)in.h * (uint64_t)in.w * (uint64_t)in.c;
    uint64_t params = 0, macs = 0;
    switch (l->kind) {
    case BP_DENSE:
    case BP_OUTPUT:
        l->out = (bp_shape){ 1, 1, l->units };
        params = macs = mul_sat(insz, (uint64_t)l->units);
        break;
    case BP_CONV:
    case BP_LOCCON:
    case BP_MAXPOOL: {
        if (flat) {
            bp_diag_error(d, span_of(l->loc), "%s needs a spatial input, but dense at %d:%d "
                          "flattened it", k, flat->loc.line, flat->loc.col);
            bp_diag_hint(d, "put %s layers before the first dense layer", k);
            return -1;
        }
        int ho = bp_out_dim(in.h, l->ksize, l->stride, l->pad_same);
        int wo = bp_out_dim(in.w, l->ksize, l->stride, l->pad_same);
        if (ho <= 0 || wo <= 0) {
            if (l->kind == BP_MAXPOOL) {
                bp_diag_error(d, li->size_loc, "the input to maxpool at %d:%d is %dx%dx%d; a "
                              "%dx%d window leaves no output", l->loc.line, l->loc.col, in.h,
                              in.w, in.c, l->ksize, l->ksize);
                bp_diag_hint(d, "use a smaller window, or remove this maxpool");
            } else {
                bp_diag_error(d, li->size_loc, "the input to %s at %d:%d is %dx%dx%d; a %dx%d "
                              "kernel with pad valid leaves no output", k, l->loc.line,
                              l->loc.col, in.h, in.w, in.c, l->ksize, l->ksize);
                bp_diag_hint(d, "use pad same or a smaller kernel");
            }
            return -1;
        }
        l->pad_top = bp_pad_before(in.h, l->ksize, l->stride, l->pad_same);
        l->pad_left = bp_pad_before(in.w, l->ksize, l->stride, l->pad_same);
        l->out = (bp_shape){ ho, wo, l->kind == BP_MAXPOOL ? in.c : l->units };
        uint64_t kernel = mul_sat(mul_sat((uint64_t)l->ksize, (uint64_t)l->ksize),
                                  (uint64_t)in.c);
        uint64_t filters = mul_sat(kernel, (uint64_t)(l->kind == BP_MAXPOOL ? 0 : l->units));
        uint64_t positions = (uint64_t)ho * (uint64_t)wo;
        if (l->kind == BP_CONV) {
            params = filters;
            macs = mul_sat(positions, filters);
        } else if (l->kind == BP_LOCCON) {
            params = macs = mul_sat(positions, filters);
        }
        break;
    }
    case BP_BATCHNORM:
        l->out = in;
        params = 2 * (uint64_t)in.c;
        break;
    case BP_DROPOUT:
    case BP_INPUT:
        l->out = in;
        break;
    }
    uint64_t act = (uint64_t)l->out.h * (uint64_t)l->out.w * (uint64_t)l->out.c;
    if (check_counts(d, l, act, params, macs)) return -1;
    l->params = (long)params;
    l->macs = (long)macs;
    return 0;
}

/* Infers every shape while it can; returns 0 when all layers got theirs. */
static int infer_shapes(bp_diag *d, const bp_block *m, layer_info *li, int n) {
    char c[BP_CLIP];
    if (!li[0].shape_ok) return -1;
    const bp_layer *flat = NULL;
    uint64_t params = 0, macs = 0;
    for (int i = 0; i < n; i++) {
        if (!li[i].shape_ok) return -1;
        if (i > 0) li[i].l.in = li[i - 1].l.out;
        if (infer_layer(d, &li[i], flat)) return -1;
        if (li[i].l.kind == BP_DENSE && !flat) flat = &li[i].l;
        params = add_sat(params, (uint64_t)li[i].l.params);
        macs = add_sat(macs, (uint64_t)li[i].l.macs);
    }
    if (params > (uint64_t)BP_MAX_COUNT) {
        bp_diag_error(d, m->name_loc, "model '%s' is too large: more than 2^40 parameters "
                      "in total", bp_clip(m->name, c));
        return -1;
    }
    if (macs > (uint64_t)BP_MAX_COUNT) {
        bp_diag_error(d, m->name_loc, "model '%s' is too large: more than 2^40 "
                      "multiply-adds per sample in total", bp_clip(m->name, c));
        return -1;
    }
    return 0;
}

/* The data set fixes the input shape and the number of classes. */
static void check_dataset(bp_diag *d, const bp_train_cfg *t, bp_span data_loc,
                          const layer_info *li, int n) {
    bp_shape want;
    int classes;
    if (!t->dataset[0] || !bp_dataset_info(t->dataset, &want, &classes)) return;
    const bp_layer *in = &li[0].l, *out = &li[n - 1].l;
    if (in->out.h != want.h || in->out.w != want.w || in->out.c != want.c) {
        bp_diag_error(d, span_of(in->loc), "the input is %dx%dx%d, but %s images are %dx%dx%d",
                      in->out.h, in->out.w, in->out.c, t->dataset, want.h, want.w, want.c);
        bp_diag_hint(d, "data %s is set at %d:%d", t->dataset, data_loc.first_line,
                     data_loc.first_column);
    }
    if (out->units != classes) {
        bp_diag_error(d, span_of(out->loc), "output has %d unit%s, but %s has %d classes",
                      out->units, out->units == 1 ? "" : "s", t->dataset, classes);
        bp_diag_hint(d, "data %s is set at %d:%d", t->dataset, data_loc.first_line,
                     data_loc.first_column);
    }
}

/* ---- the whole file ------------------------------------------------------------------ */

bp_ir *bp_check(const bp_ast *ast, bp_diag *d, const char *path, int partial) {
    const bp_block *model = NULL, *train = NULL;
    layer_info *li = NULL;
    int n = 0, shapes_ok = 0;
    bp_train_cfg t;
    bp_span data_loc = { 0, 0, 0, 0 };
    bp_train_defaults(&t);

    for (const bp_block *b = ast->head; b && !d->stopped; b = b->next) {
        const bp_block **seen = b->kind == BP_BLOCK_MODEL ? &model : &train;
        const char *what = b->kind == BP_BLOCK_MODEL ? "model" : "train";
        if (*seen) {
            bp_diag_error(d, b->loc, "a second %s block; a file holds one", what);
            bp_diag_hint(d, "the first is at %d:%d", (*seen)->loc.first_line,
                         (*seen)->loc.first_column);
            continue;
        }
        *seen = b;
        if (b->kind == BP_BLOCK_TRAIN) {
            bp_check_train(b, d, &t, &data_loc);
            continue;
        }
        li = read_layers(d, b, &n);
        if (!partial && check_order(d, b, li, n)) {
            resolve_feedback(d, li, n);
            if (infer_shapes(d, b, li, n) == 0) shapes_ok = 1;
        }
    }
    if (!model && !partial && !d->stopped) {
        bp_diag_file_error(d, "no model in this file");
        bp_diag_hint(d, "a model is written 'model NAME { input H x W x C; ... "
                        "output N brainprop; }'");
    }
    if (shapes_ok) check_dataset(d, &t, data_loc, li, n);

    bp_ir *ir = NULL;
    if (d->errors == 0 && shapes_ok) {
        ir = bp_xmalloc(sizeof *ir);
        ir->name = bp_xstrndup(model->name, strlen(model->name));
        ir->path = bp_xstrndup(path ? path : "", path ? strlen(path) : 0);
        ir->layers = bp_xmalloc(sizeof *ir->layers * (size_t)n);
        ir->n = n;
        for (int i = 0; i < n; i++) {
            ir->layers[i] = li[i].l;
            ir->params += li[i].l.params;
            ir->macs += li[i].l.macs;
        }
        ir->train = t;
    }
    free(li);
    return ir;
}
