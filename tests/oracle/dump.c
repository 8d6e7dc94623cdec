/* dump.c (build/oracle_dump): one bpc training step, dumped for the PyTorch oracle.
 *
 *   oracle_dump MODEL.bp RULE DATA_ROOT OUTDIR [SEED] [BATCH]
 *
 * RULE is brainprop or ebp. Parses the model, builds the plan for BATCH (default 32),
 * opens the CPU target, initialises the parameters from SEED (default: the model's
 * seed), feeds the first BATCH MNIST training images in file order, and runs ONE
 * `train` program with lr 0.1, a nonzero step number and fix_actions = 0, so that
 * BrainProp draws its own actions (max-Boltzmann) exactly as in training. The actions
 * it drew and the dropout masks it drew are exported, and tests/oracle/torch_step.py
 * replays the same step in PyTorch (float64, autograd) with those actions and masks.
 *
 * Writes to OUTDIR (created if missing):
 *   before.safetensors  every plan tensor (parameters and batch-norm state), F32
 *   after.safetensors   the same after the step, plus every per-step buffer
 *                       ("Lk.act", "Lk.fb", "Lk.mask", each [nb, H, W, C]), "q"
 *                       [nb, classes], "rpe" [nb], "stats" [BP_NSTATS], "preds" I32
 *   batch.safetensors   "x" U8 [nb, H, W, C], "labels" I32 [nb], "actions" I32 [nb],
 *                       every "Lk.mask" F32 [nb, H, W, C], "loss" F32 scalar
 *                       (stats[LOSS] / nb: the batch-mean loss)
 *   model.json          the IR's layer list, the rule, lr (the float32 value), nb,
 *                       seed and step
 * Exit status: 0, or 1 with a message on stderr.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "exec.h"
#include "frontend.h"
#include "ir_json.h"
#include "plan.h"
#include "philox.h"
#include "safetensors.h"
#include "train.h"
#include "tune.h"

#define STEP 5u     /* any nonzero step: the Philox counter of masks and choices */
#define LR 0.1f

static void die(const char *msg) {
    fprintf(stderr, "oracle_dump: %s\n", msg);
    exit(1);
}

/* A growable list of tensors to write, each owning its data. */
typedef struct {
    bp_st_tensor *t;
    int n;
} tlist;

static void add(tlist *l, const char *name, bp_st_dtype dt, int ndim, const long *shape, void *data) {
    bp_st_tensor *v = realloc(l->t, sizeof *v * (size_t)(l->n + 1));
    if (!v) die("out of memory");
    l->t = v;
    bp_st_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) die("out of memory");
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = data;
    t->nbytes = (size_t)bp_st_numel(t) * bp_st_dtype_size(dt);
}

static void tlist_free(tlist *l) {
    for (int i = 0; i < l->n; i++) {
        free((void *)l->t[i].name);
        free((void *)l->t[i].data);
    }
    free(l->t);
    l->t = NULL;
    l->n = 0;
}

static float *get_f(bp_exec *x, long off, long n) {
    bp_err e;
    float *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) die("out of memory");
    if (bp_exec_get_f32(x, off, v, n, &e)) die(e.msg);
    return v;
}

static int *get_i(bp_exec *x, long off, long n) {
    bp_err e;
    int *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) die("out of memory");
    if (x->be->get(x, BP_ARENA_I, off, v, n, &e)) die(e.msg);
    return v;
}

/* Every parameter/state tensor of the plan, in its own shape. */
static void add_params(tlist *l, bp_exec *x, const bp_plan *p) {
    for (int i = 0; i < p->ntensors; i++) {
        const bp_tensor *t = &p->tensors[i];
        add(l, t->name, BP_ST_F32, t->ndim, t->dims, get_f(x, t->off, t->size));
    }
}

/* A per-step buffer of layer k, first nb samples, as [nb, H, W, C]. */
static void add_buffer(tlist *l, bp_exec *x, const bp_plan *p, const bp_tensor *b, int nb) {
    bp_shape s = p->ir->layers[b->layer].out;
    long S = bp_shape_size(s);
    if (b->size != (long)p->batch * S) die("a buffer's size is not batch x layer size");
    long shape[4] = {nb, s.h, s.w, s.c};
    add(l, b->name, BP_ST_F32, 4, shape, get_f(x, b->off, (long)nb * S));
}

/* Writes a safetensors file, then reads it back with bp_st_read and checks that every
 * tensor and metadata entry came back bit-identical: the reader's round trip is thus
 * exercised on every oracle run. */
static void write_st(const char *dir, const char *file, tlist *l, const bp_st_meta *m, int nm) {
    char path[4200];
    bp_err e;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (bp_st_write(path, l->t, l->n, m, nm, &e)) die(e.msg);
    bp_st_file f;
    if (bp_st_read(path, &f, &e)) die(e.msg);
    if (f.n != l->n || f.nmeta != nm) die("safetensors round trip: wrong number of entries");
    for (int i = 0; i < l->n; i++) {
        const bp_st_tensor *a = &l->t[i], *b = &f.tensors[i];
        int same = !strcmp(a->name, b->name) && a->dtype == b->dtype && a->ndim == b->ndim &&
                   a->nbytes == b->nbytes && (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
        for (int k = 0; same && k < a->ndim; k++) same = a->shape[k] == b->shape[k];
        if (!same) { fprintf(stderr, "oracle_dump: %s: %s did not read back intact\n", path, a->name); exit(1); }
    }
    for (int i = 0; i < nm; i++) {
        const char *v = bp_st_meta_get(&f, m[i].key);
        if (!v || strcmp(v, m[i].value)) die("safetensors round trip: metadata differs");
    }
    bp_st_free(&f);
}

static void write_model_json(const char *dir, const bp_ir *ir, const char *rule, int nb,
                             unsigned long long seed) {
    cJSON *root = cJSON_CreateObject();
    cJSON *layers = root ? bp_ir_layers_json(ir) : NULL;
    if (!layers || !cJSON_AddItemToObject(root, "layers", layers)) die("out of memory");
    cJSON_AddStringToObject(root, "model", ir->name);
    cJSON_AddStringToObject(root, "path", ir->path);
    cJSON_AddStringToObject(root, "rule", rule);
    cJSON_AddNumberToObject(root, "lr", (double)LR);   /* exactly the float32 value used */
    cJSON_AddNumberToObject(root, "nb", nb);
    cJSON_AddNumberToObject(root, "seed", (double)seed);
    cJSON_AddNumberToObject(root, "step", STEP);
    cJSON_AddNumberToObject(root, "l2", (double)ir->train.l2);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.json", dir);
    bp_err e;
    int bad = bp_json_write(path, root, &e);
    cJSON_Delete(root);
    if (bad) die(e.msg);
}

int main(int argc, char **argv) {
    bp_tune_process(argv); /* the same OpenBLAS kernels and OpenMP settings as bpc */
    if (argc < 5 || argc > 7) {
        fprintf(stderr, "usage: oracle_dump MODEL.bp brainprop|ebp DATA_ROOT|synthetic OUTDIR [SEED] [BATCH]\n");
        return 2;
    }
    const char *model = argv[1], *rule_s = argv[2], *root = argv[3], *out = argv[4];
    bp_rule rule;
    if (!strcmp(rule_s, "brainprop")) rule = BP_RULE_BRAINPROP;
    else if (!strcmp(rule_s, "ebp")) rule = BP_RULE_EBP;
    else die("RULE must be brainprop or ebp");
    int nerr = 0, ioerr = 0;
    bp_ir *ir = bp_frontend_file(model, stderr, &nerr, &ioerr);
    if (!ir) die("the model did not compile");
    unsigned long long seed = argc > 5 ? strtoull(argv[5], NULL, 10) : (unsigned long long)ir->train.seed;
    int nb = argc > 6 ? atoi(argv[6]) : 32;
    if (nb < 1) die("BATCH must be at least 1");
    if (mkdir(out, 0777) != 0 && errno != EEXIST) die("cannot create OUTDIR");

    bp_err e;
    bp_dataset ds = {0};
    const bp_layer *in = &ir->layers[0];
    int synthetic = !strcmp(root, "synthetic");
    if (!synthetic) {
        if (bp_dataset_load(ir->train.dataset[0] ? ir->train.dataset : "mnist", root, &ds, &e)) die(e.msg);
        if (ds.train.h != in->out.h || ds.train.w != in->out.w || ds.train.c != in->out.c)
            die("the model's input shape does not match the data set");
        if (nb > ds.train.n) die("BATCH exceeds the training set");
    }

    bp_plan *p = bp_plan_build(ir, rule, nb);
    if (!p) die("out of memory building the plan");
    bp_exec x;
    if (bp_exec_open(&x, p, BP_TARGET_CPU, &e)) die(e.msg);
    if (bp_exec_init_params(&x, seed, &e)) die(e.msg);

    /* the batch: the first nb training images, in file order */
    long xb = (long)nb * p->x_bytes;
    unsigned char *xs = malloc((size_t)xb);
    int *labels = malloc(sizeof *labels * (size_t)nb);
    if (!xs || !labels) die("out of memory");
    if (synthetic) { /* DATA_ROOT "synthetic": Philox pixels, labels cycling over the classes */
        for (long i = 0; i < xb; i++) xs[i] = (unsigned char)bp_rand_u32(seed, 0, 0, 99u, (unsigned)i);
        for (int b = 0; b < nb; b++) labels[b] = (b * 7) % p->classes;
    } else {
        memcpy(xs, ds.train.x, (size_t)xb);
        memcpy(labels, ds.train.y, sizeof *labels * (size_t)nb);
    }
    if (x.be->put(&x, BP_ARENA_X, 0, xs, xb, &e)) die(e.msg);
    if (x.be->put(&x, BP_ARENA_I, p->labels, labels, nb, &e)) die(e.msg);
    float zero[BP_NSTATS] = {0};
    if (bp_exec_put_f32(&x, p->stats, zero, BP_NSTATS, &e)) die(e.msg);

    tlist before = {0}, after = {0}, batch = {0};
    add_params(&before, &x, p);

    bp_dyn d = {.lr = LR, .nb = nb, .step = STEP, .fix_actions = 0, .seed = seed};
    if (bp_exec_run(&x, &p->train, &d, &e)) die(e.msg);

    add_params(&after, &x, p);
    for (int i = 0; i < p->nbuffers; i++) add_buffer(&after, &x, p, &p->buffers[i], nb);
    long qs[2] = {nb, p->classes}, ns[1] = {nb}, ss[1] = {BP_NSTATS};
    add(&after, "q", BP_ST_F32, 2, qs, get_f(&x, p->q, (long)nb * p->classes));
    add(&after, "rpe", BP_ST_F32, 1, ns, get_f(&x, p->rpe, nb));
    float *stats = get_f(&x, p->stats, BP_NSTATS);
    add(&after, "stats", BP_ST_F32, 1, ss, stats);
    add(&after, "preds", BP_ST_I32, 1, ns, get_i(&x, p->preds, nb));

    long xsh[4] = {nb, in->out.h, in->out.w, in->out.c};
    add(&batch, "x", BP_ST_U8, 4, xsh, xs);
    add(&batch, "labels", BP_ST_I32, 1, ns, labels);
    add(&batch, "actions", BP_ST_I32, 1, ns, get_i(&x, p->actions, nb));
    for (int i = 0; i < p->nbuffers; i++)
        if (strstr(p->buffers[i].name, ".mask")) add_buffer(&batch, &x, p, &p->buffers[i], nb);
    float *loss = malloc(sizeof *loss);
    if (!loss) die("out of memory");
    *loss = stats[BP_STAT_LOSS] / (float)nb;
    add(&batch, "loss", BP_ST_F32, 0, NULL, loss);

    char nbs[32], seeds[32], steps[32];
    snprintf(nbs, sizeof nbs, "%d", nb);
    snprintf(seeds, sizeof seeds, "%llu", seed);
    snprintf(steps, sizeof steps, "%u", STEP);
    bp_st_meta meta[] = {{"producer", "bpc tests/oracle/dump.c"}, {"model", model}, {"rule", rule_s},
                         {"nb", nbs}, {"seed", seeds}, {"step", steps}, {"lr", "0.1"}};
    int nm = (int)(sizeof meta / sizeof meta[0]);
    write_st(out, "before.safetensors", &before, meta, nm);
    write_st(out, "after.safetensors", &after, meta, nm);
    write_st(out, "batch.safetensors", &batch, meta, nm);
    write_model_json(out, ir, rule_s, nb, seed);

    tlist_free(&before);
    tlist_free(&after);
    tlist_free(&batch);
    bp_exec_close(&x);
    bp_plan_free(p);
    bp_dataset_free(&ds);
    bp_ir_free(ir);
    return 0;
}
