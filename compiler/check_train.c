/* check_train.c: the train block -> bp_train_cfg, with defaults, range checks and a
 * located message for each problem. Every setting is optional and may be given once.
 * The defaults are the paper's reference hyperparameters (docs/language.md). */
#include <float.h>
#include <math.h>
#include <string.h>
#include "args.h"
#include "check.h"
#include "suggest.h"

enum { S_DATA, S_BATCH, S_SGD, S_LR_STEP, S_EPOCHS, S_EARLY_STOP, S_INIT, S_L2, S_SEED, S_VAL,
       S_PRECISION, NSET };

static const char *const SETTINGS[NSET + 1] = {
    "data", "batch", "sgd", "lr_step", "epochs", "early_stop", "init", "l2", "seed", "val",
    "precision", NULL,
};

static const char *const USAGE[NSET] = {
    "data mnist|fashion-mnist|cifar10|cifar100|tinyimagenet",
    "batch N",
    "sgd lr X",
    "lr_step every N factor F",
    "epochs N",
    "early_stop patience N min_delta X",
    "init normal STD",
    "l2 LAMBDA",
    "seed N",
    "val test|N|FRACTION",
    "precision ieee|tf32|3xtf32",
};

static const struct {
    const char *name;
    int h, w, c, classes;
} DATASETS[] = {
    { "mnist", 28, 28, 1, 10 },    { "fashion-mnist", 28, 28, 1, 10 },
    { "cifar10", 32, 32, 3, 10 },  { "cifar100", 32, 32, 3, 100 },
    { "cifar100-coarse", 32, 32, 3, 20 }, { "tinyimagenet", 64, 64, 3, 200 },
};
#define NDATA ((int)(sizeof DATASETS / sizeof DATASETS[0]))

void bp_train_defaults(bp_train_cfg *t) {
    memset(t, 0, sizeof *t);
    t->batch = 128;
    t->lr = 0.1f;
    t->lr_every = 100;
    t->lr_factor = 0.5f;
    t->epochs = 500;
    t->patience = 45;
    t->min_delta = 0.001f;
    t->init_std = 0.005f;
    t->l2 = 0;
    t->seed = 1;
    t->val_fraction = 0.1f;
}

int bp_is_train_setting(const char *w) {
    for (int i = 0; i < NSET; i++)
        if (!strcmp(w, SETTINGS[i])) return 1;
    return 0;
}

int bp_dataset_info(const char *name, bp_shape *shape, int *classes) {
    for (int i = 0; i < NDATA; i++) {
        if (strcmp(name, DATASETS[i].name)) continue;
        if (shape) *shape = (bp_shape){ DATASETS[i].h, DATASETS[i].w, DATASETS[i].c };
        if (classes) *classes = DATASETS[i].classes;
        return 1;
    }
    return 0;
}

/* The one value of a setting like `batch N`: reports a missing or extra one. */
static const bp_arg *one_value(bp_diag *d, const bp_stmt *s, const char *usage) {
    if (!s->args) {
        bp_diag_error(d, s->loc, "%s needs a value", s->head);
        bp_diag_hint(d, "usage: %s", usage);
        return NULL;
    }
    if (s->args->next) {
        bp_optseen none[1];
        bp_read_opts(d, s, s->args->next, usage, NULL, 0, none, SETTINGS);
        return NULL;
    }
    return s->args;
}

static int read_data(bp_diag *d, const bp_stmt *s, bp_train_cfg *t, bp_span *data_loc) {
    char c[BP_CLIP], list[128];
    const bp_arg *a = one_value(d, s, USAGE[S_DATA]);
    if (!a) return -1;
    if (a->kind != BP_ARG_WORD) {
        bp_diag_error(d, a->loc, "data needs a data set name, as in 'data mnist'");
        return -1;
    }
    if (!bp_dataset_info(a->text, NULL, NULL)) {
        const char *names[NDATA];
        for (int i = 0; i < NDATA; i++) names[i] = DATASETS[i].name;
        bp_join(list, sizeof list, names, NDATA, " and ");
        bp_diag_error(d, a->loc, "unknown data set '%s'", bp_clip(a->text, c));
        const char *near = bp_suggest(a->text, names, NDATA);
        if (near) bp_diag_hint(d, "did you mean '%s'? the known data sets are %s", near, list);
        else bp_diag_hint(d, "the known data sets are %s", list);
        return -1;
    }
    snprintf(t->dataset, sizeof t->dataset, "%s", a->text);
    *data_loc = a->loc;
    return 0;
}

static int read_setting(int k, const bp_stmt *s, bp_diag *d, bp_train_cfg *t,
                        bp_span *data_loc) {
    const bp_arg *a;
    bp_optseen seen[2];
    int64_t v;
    int rc = 0;
    switch (k) {
    case S_DATA:
        return read_data(d, s, t, data_loc);
    case S_BATCH:
        if (!(a = one_value(d, s, USAGE[k]))) return -1;
        if (bp_get_int(d, a, "batch", 1, BP_MAX_DIM, &v)) return -1;
        t->batch = (int)v;
        return 0;
    case S_EPOCHS:
        if (!(a = one_value(d, s, USAGE[k]))) return -1;
        if (bp_get_int(d, a, "epochs", 1, BP_MAX_DIM, &v)) return -1;
        t->epochs = (int)v;
        return 0;
    case S_L2:
        if (!(a = one_value(d, s, USAGE[k]))) return -1;
        return bp_get_float(d, a, "l2", 0, 0, INFINITY, 0, &t->l2);
    case S_SEED:
        if (!(a = one_value(d, s, USAGE[k]))) return -1;
        return bp_get_u64(d, a, "seed", &t->seed);
    case S_VAL:
        if (!(a = one_value(d, s, USAGE[k]))) return -1;
        if (a->kind == BP_ARG_WORD && !strcmp(a->text, "test")) {
            t->val_test = 1;
            return 0;
        }
        if (a->kind == BP_ARG_NUM && a->is_int) {
            if (bp_get_int(d, a, "val (validation images)", 1, 1000000000, &v)) return -1;
            t->val_count = (long)v;
            return 0;
        }
        if (a->kind == BP_ARG_NUM)
            return bp_get_float(d, a, "val (validation fraction)", 0, 1, 1, 1, &t->val_fraction);
        bp_diag_error(d, a->loc, "val takes 'test', a number of images or a fraction, as in "
                                 "'val 0.1'");
        bp_diag_hint(d, "usage: %s", USAGE[k]);
        return -1;
    case S_PRECISION: {
        if (!(a = one_value(d, s, USAGE[k]))) return -1;
        if (a->kind == BP_ARG_WORD && !bp_precision_parse(a->text, &t->precision)) return 0;
        char c[BP_CLIP];
        if (a->kind == BP_ARG_DIMS) /* dimensions have no text of their own */
            bp_diag_error(d, a->loc, "precision is ieee, tf32 or 3xtf32, not dimensions");
        else
            bp_diag_error(d, a->loc, "precision is ieee, tf32 or 3xtf32, not '%s'", bp_clip(a->text, c));
        const char *near = a->kind == BP_ARG_WORD ? bp_suggest(a->text, BP_PRECISION_NAMES, BP_NPRECISIONS) : NULL;
        if (near) bp_diag_hint(d, "did you mean '%s'?", near);
        else bp_diag_hint(d, "usage: %s", USAGE[k]);
        return -1;
    }
    case S_SGD: {
        static const bp_optspec o[] = { { "lr", BP_OPT_NUM, 1, "lr 0.1" } };
        rc = bp_read_opts(d, s, s->args, USAGE[k], o, 1, seen, SETTINGS);
        if (seen[0].val && bp_get_float(d, seen[0].val, "lr", 0, 1, INFINITY, 0, &t->lr))
            rc = -1;
        return rc;
    }
    case S_LR_STEP: {
        static const bp_optspec o[] = { { "every", BP_OPT_INT, 1, "every 100" },
                                        { "factor", BP_OPT_NUM, 1, "factor 0.5" } };
        rc = bp_read_opts(d, s, s->args, USAGE[k], o, 2, seen, SETTINGS);
        if (seen[0].val) {
            if (bp_get_int(d, seen[0].val, "lr_step every", 1, BP_MAX_DIM, &v)) rc = -1;
            else t->lr_every = (int)v;
        }
        if (seen[1].val &&
            bp_get_float(d, seen[1].val, "lr_step factor", 0, 1, 1, 0, &t->lr_factor))
            rc = -1;
        return rc;
    }
    case S_EARLY_STOP: {
        static const bp_optspec o[] = { { "patience", BP_OPT_INT, 1, "patience 45" },
                                        { "min_delta", BP_OPT_NUM, 1, "min_delta 0.001" } };
        rc = bp_read_opts(d, s, s->args, USAGE[k], o, 2, seen, SETTINGS);
        if (seen[0].val) {
            if (bp_get_int(d, seen[0].val, "patience", 0, BP_MAX_DIM, &v)) rc = -1;
            else t->patience = (int)v;
        }
        if (seen[1].val &&
            bp_get_float(d, seen[1].val, "min_delta", 0, 0, INFINITY, 0, &t->min_delta))
            rc = -1;
        return rc;
    }
    case S_INIT: {
        static const bp_optspec o[] = { { "normal", BP_OPT_NUM, 1, "normal 0.005" } };
        rc = bp_read_opts(d, s, s->args, USAGE[k], o, 1, seen, SETTINGS);
        if (seen[0].val &&
            bp_get_float(d, seen[0].val, "init std", 0, 1, INFINITY, 0, &t->init_std))
            rc = -1;
        /* A normal draw is at most about 6.7 std (Box-Muller from 32-bit uniforms), so
         * up to FLT_MAX / 8 every initial weight is a finite float. */
        else if (seen[0].val && t->init_std > FLT_MAX / 8) {
            char c[BP_CLIP];
            bp_diag_error(d, seen[0].val->loc, "init std %s is too large: a draw of 6.7 std "
                          "would not fit a float", bp_clip(seen[0].val->text, c));
            bp_diag_hint(d, "at most %.3g; the paper uses 0.005", FLT_MAX / 8);
            rc = -1;
        }
        return rc;
    }
    }
    return -1;
}

int bp_check_train(const bp_block *b, bp_diag *d, bp_train_cfg *t, bp_span *data_loc) {
    const bp_stmt *first[NSET] = { 0 };
    char c[BP_CLIP], list[160];
    int rc = 0;
    for (const bp_stmt *s = b->stmts; s && !d->stopped; s = s->next) {
        int k = 0;
        while (k < NSET && strcmp(s->head, SETTINGS[k])) k++;
        if (k == NSET) {
            rc = -1;
            if (bp_is_layer_name(s->head)) {
                bp_diag_error(d, s->loc, "'%s' is a layer; layers belong in the model block",
                              s->head);
                continue;
            }
            bp_diag_error(d, s->loc, "unknown train setting '%s'", bp_clip(s->head, c));
            const char *near = bp_suggest(s->head, SETTINGS, NSET);
            if (near) bp_diag_hint(d, "did you mean '%s'?", near);
            else bp_diag_hint(d, "the settings are %s",
                              bp_join(list, sizeof list, SETTINGS, NSET, " and "));
            continue;
        }
        if (first[k]) {
            rc = -1;
            bp_diag_error(d, s->loc, "setting '%s' given twice", s->head);
            bp_diag_hint(d, "it was first given at %d:%d", first[k]->loc.first_line,
                         first[k]->loc.first_column);
            continue;
        }
        first[k] = s;
        if (read_setting(k, s, d, t, data_loc)) rc = -1;
    }
    return rc;
}
