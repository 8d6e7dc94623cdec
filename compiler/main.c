/* main.c: the bpc command line.
 *
 *   bpc MODEL.bp -o net.cu|net.c [--target cuda|c] [--rule brainprop|ebp] [--batch N]
 *   bpc check MODEL.bp
 *   bpc ptx MODEL.bp -o net.ptx [--arch compute_90] [--rule R] [--batch N]
 *   bpc train MODEL.bp [--data DIR] [--target cpu|cuda|auto] [--epochs N] [--seed S]
 *             [--lr X] [--rule R] [--limit N] [--test-limit N] [--val N|F|test]
 *             [--out RUN_DIR] [--resume RUN_DIR] [--metrics FILE] [--progress|--no-progress]
 *   bpc eval MODEL.bp CHECKPOINT|RUN_DIR [--data DIR] [--json] [--target T] [--test-limit N]
 *   bpc data fetch|verify|info NAME [--data DIR]
 *
 * Exit status: 0 success; 1 an error in the user's input (the .bp file, the command
 * line, a model that does not fit its data, a checkpoint that does not fit the model);
 * 2 an I/O, target or internal error; 130 / 143 training interrupted by SIGINT /
 * SIGTERM (last.safetensors written).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "checkpoint.h"
#include "data.h"
#include "eval.h"
#include "frontend.h"
#include "jit_cuda.h"
#include "plan.h"
#include "plot.h"
#include "repro.h"
#include "report.h"
#include "train.h"
#include "tune.h"

static const char *usage =
    "usage: bpc MODEL.bp -o OUT.cu|OUT.c [--target cuda|c] [--rule brainprop|ebp] [--batch N]\n"
    "       bpc check MODEL.bp\n"
    "       bpc ptx MODEL.bp -o OUT.ptx [--arch compute_90] [--rule R] [--batch N]\n"
    "       bpc train MODEL.bp [--data DIR] [--target cpu|cuda|auto] [--epochs N] [--seed S]\n"
    "                 [--lr X] [--rule brainprop|ebp] [--limit N] [--test-limit N] [--val N|F|test]\n"
    "                 [--out RUN_DIR] [--resume RUN_DIR] [--metrics FILE] [--progress|--no-progress]\n"
    "       bpc eval MODEL.bp CHECKPOINT|RUN_DIR [--data DIR] [--json] [--target cpu|cuda|auto]\n"
    "                 [--test-limit N]\n"
    "       bpc data fetch|verify|info NAME [--data DIR]\n"
    "       bpc plot RUN_DIR... [-o FILE.svg|FILE.png] [--metric test_acc|val_acc|train_acc|train_loss]\n"
    "       bpc repro --models M,... [--rules brainprop,ebp] [--seeds 1,2,3] --out GRID_DIR [train options]\n"
    "       bpc --version | --help\n"
    "exit status: 0 ok, 1 error in the input, 2 I/O or internal error, 130/143 interrupted\n";

typedef struct {
    const char *model, *out, *target, *rule, *data, *arch, *metrics, *run_out, *resume;
    long batch, epochs, limit, test_limit;
    bp_val_spec val;
    int json, progress; /* progress: -1 auto, 0 off, 1 on */
    int has_seed;
    unsigned long long seed;
    double lr;
    const char *pos[4];
    int npos;
    const char *given[32];  /* the options given, for the check that each applies */
    int ngiven;
} args;

static int bad_usage(const char *fmt, const char *what) {
    fprintf(stderr, "bpc: error: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n%s", usage);
    return 1;
}

/* The options that take a value, what kind of value, and where it goes. */
typedef enum { OPT_STR, OPT_COUNT, OPT_REAL, OPT_SEED, OPT_VAL } opt_kind;
static const struct {
    const char *flag;
    opt_kind kind;
    size_t off;
    double lo, hi;
} OPTS[] = {
    {"-o", OPT_STR, offsetof(args, out), 0, 0},
    {"--target", OPT_STR, offsetof(args, target), 0, 0},
    {"--rule", OPT_STR, offsetof(args, rule), 0, 0},
    {"--data", OPT_STR, offsetof(args, data), 0, 0},
    {"--arch", OPT_STR, offsetof(args, arch), 0, 0},
    {"--metrics", OPT_STR, offsetof(args, metrics), 0, 0},
    {"--out", OPT_STR, offsetof(args, run_out), 0, 0},
    {"--resume", OPT_STR, offsetof(args, resume), 0, 0},
    {"--val", OPT_VAL, offsetof(args, val), 0, 0},
    {"--batch", OPT_COUNT, offsetof(args, batch), 1, 1 << 20},
    {"--epochs", OPT_COUNT, offsetof(args, epochs), 1, 1000000},
    {"--limit", OPT_COUNT, offsetof(args, limit), 1, 1000000000},
    {"--test-limit", OPT_COUNT, offsetof(args, test_limit), 1, 1000000000},
    {"--lr", OPT_REAL, offsetof(args, lr), 1e-30, 1e6},
    {"--seed", OPT_SEED, offsetof(args, seed), 0, 0},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

/* Stores one option's value; 0, or 1 after printing what is wrong with it. */
static int set_opt(args *a, int k, const char *v) {
    void *dst = (char *)a + OPTS[k].off;
    const char *flag = OPTS[k].flag;
    char *end;
    errno = 0;
    switch (OPTS[k].kind) {
    case OPT_STR:
        *(const char **)dst = v;
        return 0;
    case OPT_VAL:
        if (bp_val_parse(v, dst))
            return bad_usage("--val takes 'test', a number of images (5000) or a fraction (0.1), not '%s'", v);
        return 0;
    case OPT_COUNT: {
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < (long)OPTS[k].lo || n > (long)OPTS[k].hi) {
            fprintf(stderr, "bpc: error: %s takes a whole number from %ld to %ld, not '%s'\n", flag,
                    (long)OPTS[k].lo, (long)OPTS[k].hi, v);
            return 1;
        }
        *(long *)dst = n;
        return 0;
    }
    case OPT_REAL: {
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= OPTS[k].lo && d <= OPTS[k].hi)) {
            fprintf(stderr, "bpc: error: %s takes a number from %g to %g, not '%s'\n", flag,
                    OPTS[k].lo, OPTS[k].hi, v);
            return 1;
        }
        *(double *)dst = d;
        return 0;
    }
    case OPT_SEED: {
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || !(*v >= '0' && *v <= '9') || *end)
            return bad_usage("--seed takes an unsigned integer below 2^64, not '%s'", v);
        *(unsigned long long *)dst = n;
        a->has_seed = 1;
        return 0;
    }
    }
    return 1;
}

static int parse_args(int argc, char **argv, int start, args *a) {
    int seen[NOPTS] = {0};
    for (int i = start; i < argc; i++) {
        const char *s = argv[i];
        int k = 0;
        while (k < NOPTS && strcmp(s, OPTS[k].flag)) k++;
        if (k < NOPTS) {
            if (i + 1 >= argc) return bad_usage("%s needs a value", s);
            if (seen[k]++) return bad_usage("%s is given twice", s);
            if (set_opt(a, k, argv[++i])) return 1;
        } else if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "--progress")) a->progress = 1;
        else if (!strcmp(s, "--no-progress")) a->progress = 0;
        else if (s[0] == '-' && s[1]) return bad_usage("unknown option '%s'", s);
        if (s[0] == '-' && s[1]) { if (a->ngiven < 32) a->given[a->ngiven++] = s; }
        else if (a->npos < 4) a->pos[a->npos++] = s;
        else return bad_usage("too many arguments at '%s'", s);
    }
    return 0;
}

/* Parses and checks the model; 0 with *ir set, or the exit status. */
static int load_model(const char *path, bp_ir **ir) {
    int nerr = 0, io = 0;
    *ir = bp_frontend_file(path, stderr, &nerr, &io);
    if (*ir) return 0;
    if (nerr) fprintf(stderr, "%d error%s\n", nerr, nerr == 1 ? "" : "s");
    return io ? 2 : 1;
}

static int rule_of(const args *a, const bp_ir *ir, bp_rule *r) {
    *r = ir->layers[ir->n - 1].rule;
    if (!a->rule) return 0;
    if (!strcmp(a->rule, "brainprop")) *r = BP_RULE_BRAINPROP;
    else if (!strcmp(a->rule, "ebp")) *r = BP_RULE_EBP;
    else return bad_usage("--rule is brainprop or ebp, not '%s'", a->rule);
    return 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* Writes `len` bytes to path via a temp file and rename, so a failed write never
 * leaves a truncated output behind. A path that exists and is not a regular file (a
 * device such as /dev/stdout, a FIFO, a symbolic link) is written in place instead:
 * renaming over it would replace the device or the link. */
static int write_atomic(const char *path, const char *buf, size_t len) {
    struct stat st;
    int in_place = lstat(path, &st) == 0 && !S_ISREG(st.st_mode);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(in_place ? path : tmp, "wb");
    if (!f) { fprintf(stderr, "bpc: error: %s: %s\n", in_place ? path : tmp, strerror(errno)); return 2; }
    int bad = fwrite(buf, 1, len, f) != len;
    bad |= fflush(f) != 0;
    int err = errno;
    bad |= fclose(f) != 0;
    if (!bad && !in_place && rename(tmp, path)) { bad = 1; err = errno; }
    if (bad) {
        fprintf(stderr, "bpc: error: %s: write failed: %s\n", path, strerror(err ? err : EIO));
        if (!in_place) remove(tmp);
        return 2;
    }
    return 0;
}

static int cmd_emit(args *a, int ptx) {
    if (a->npos != 1) return bad_usage("%s", "expected one MODEL.bp");
    if (!a->out) return bad_usage("%s", "missing -o OUT");
    const char *target = a->target ? a->target : ends_with(a->out, ".c") ? "c" : "cuda";
    if (ptx) target = "cuda";
    if (strcmp(target, "c") && strcmp(target, "cuda"))
        return bad_usage("--target for emitting is c or cuda, not '%s'", target);
    bp_ir *ir;
    int rc = load_model(a->pos[0], &ir);
    if (rc) return rc;
    bp_rule rule;
    if ((rc = rule_of(a, ir, &rule))) { bp_ir_free(ir); return rc; }
    bp_plan *p = bp_plan_build(ir, rule, (int)a->batch);
    char *src = NULL;
    size_t len = 0;
    FILE *f = p ? open_memstream(&src, &len) : NULL;
    if (!f || bp_emit(f, p, target) || fclose(f)) {
        fprintf(stderr, "bpc: error: out of memory\n");
        bp_plan_free(p); bp_ir_free(ir); free(src);
        return 2;
    }
    if (!ptx) {
        rc = write_atomic(a->out, src, len);
    } else {
        char *code = NULL, *log = NULL;
        size_t n = 0;
        bp_err e = {{0}};
        if (bp_nvrtc_compile(src, ir->name, a->arch ? a->arch : "compute_90", &code, &n, &log, &e)) {
            fprintf(stderr, "bpc: error: %s\n", e.msg);
            if (log && *log) fprintf(stderr, "%s\n", log);
            rc = 2;
        } else {
            rc = write_atomic(a->out, code, n);
        }
        free(code);
        free(log);
    }
    free(src);
    bp_plan_free(p);
    bp_ir_free(ir);
    return rc;
}

static int cmd_check(args *a) {
    if (a->npos != 1) return bad_usage("%s", "check takes one MODEL.bp");
    bp_ir *ir;
    int rc = load_model(a->pos[0], &ir);
    if (rc) return rc;
    bp_print_check(stdout, ir);
    bp_ir_free(ir);
    return 0;
}

/* The command line as a shell would need it: each argument quoted where needed. */
static char *command_line(int argc, char **argv) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        int plain = *s != 0;
        for (const char *c = s; *c; c++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-", *c)) plain = 0;
        if (i) fputc(' ', f);
        if (plain) { fputs(s, f); continue; }
        fputc('\'', f);
        for (const char *c = s; *c; c++) {
            if (*c == '\'') fputs("'\\''", f);
            else fputc(*c, f);
        }
        fputc('\'', f);
    }
    if (fclose(f)) { free(buf); return NULL; }
    return buf;
}

static int target_of(const char *t, bp_target *out) {
    if (!t) t = "auto";
    if (!strcmp(t, "cpu") || !strcmp(t, "c")) *out = BP_TARGET_CPU;
    else if (!strcmp(t, "cuda")) *out = BP_TARGET_CUDA;
    else if (!strcmp(t, "auto")) *out = bp_cuda_available() ? BP_TARGET_CUDA : BP_TARGET_CPU;
    else return bad_usage("--target is cpu, cuda or auto, not '%s'", t);
    return 0;
}

/* Prints a runtime error: "bpc: error: MSG", or MSG alone when it is located
 * ("file:line:col: error: ..."), or "bpc: MSG" for an interruption. */
static void report(int rc, const bp_err *e) {
    /* located: "PATH:LINE:COL: error: " right at the start, not somewhere in a log */
    const char *s = e->msg, *colon = strchr(s, ':');
    int line = 0, col = 0, n = 0;
    int located = colon && sscanf(colon, ":%d:%d: error: %n", &line, &col, &n) == 2 && n > 0;
    if (rc >= 128) fprintf(stderr, "bpc: %s\n", s);
    else fprintf(stderr, "%s%s\n", located ? "" : "bpc: error: ", s);
}

static int cmd_train(args *a, int argc, char **argv) {
    char model[4200];
    if (a->npos == 0 && a->resume) {
        /* bpc train --resume RUN: the run's own copy of the source */
        snprintf(model, sizeof model, "%s/model.bp", a->resume);
    } else if (a->npos == 1) {
        snprintf(model, sizeof model, "%s", a->pos[0]);
    } else {
        return bad_usage("%s", "train takes one MODEL.bp");
    }
    if (a->resume && a->run_out && strcmp(a->resume, a->run_out))
        return bad_usage("%s", "--resume RUN_DIR continues in RUN_DIR; --out must be the same folder or left out");
    bp_ir *ir;
    int rc = load_model(model, &ir);
    if (rc) return rc;
    char *cmd = command_line(argc, argv);
    bp_train_opts o = {.data_dir = a->data, .epochs = (int)a->epochs, .has_seed = a->has_seed,
                       .seed = a->seed, .lr = (float)a->lr, .limit = a->limit,
                       .test_limit = a->test_limit, .metrics = a->metrics, .log = stdout,
                       .val = a->val, .out_dir = a->run_out, .resume = a->resume,
                       .command = cmd, .progress = a->progress, .has_rule = a->rule != NULL};
    if ((rc = rule_of(a, ir, &o.rule)) || (rc = target_of(a->target, &o.target))) {
        free(cmd);
        bp_ir_free(ir);
        return rc;
    }
    bp_train_result res;
    bp_err e = {{0}};
    rc = bp_train(ir, &o, &res, &e);
    if (rc) report(rc, &e);
    free(cmd);
    bp_ir_free(ir);
    return rc;
}

static int cmd_eval(args *a) {
    if (a->npos != 2) return bad_usage("%s", "eval takes a MODEL.bp and a CHECKPOINT (a .safetensors file or a run folder)");
    bp_ir *ir;
    int rc = load_model(a->pos[0], &ir);
    if (rc) return rc;
    bp_eval_opts o = {.data_dir = a->data, .test_limit = a->test_limit, .json = a->json, .out = stdout};
    if ((rc = target_of(a->target, &o.target))) { bp_ir_free(ir); return rc; }
    bp_err e = {{0}};
    rc = bp_eval_checkpoint(ir, a->pos[1], &o, &e);
    if (rc) report(rc, &e);
    bp_ir_free(ir);
    return rc;
}

static int cmd_data(args *a) {
    if (a->npos != 2) return bad_usage("%s", "data takes an action (fetch, verify, info) and a data set name");
    char root[4096];
    if (!bp_data_root(a->data, root, sizeof root)) {
        fprintf(stderr, "bpc: error: the data folder path is too long\n");
        return 1;
    }
    bp_err e = {{0}};
    int rc = bp_data_command(a->pos[0], a->pos[1], root, stdout, &e);
    if (rc) fprintf(stderr, "bpc: error: %s\n", e.msg);
    return rc;
}

/* 0 when every option given applies to the command; else 1 after saying which not. */
static int options_apply(const args *a, const char *cmd, const char *allowed) {
    for (int i = 0; i < a->ngiven; i++) {
        char word[64];
        snprintf(word, sizeof word, " %s ", a->given[i]);
        if (!strstr(allowed, word)) {
            fprintf(stderr, "bpc: error: %s does not apply to `bpc %s`\n%s", a->given[i], cmd, usage);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    bp_tune_process(argv);
    if (argc < 2) { fputs(usage, stderr); return 1; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { fputs(usage, stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("bpc %s\n", BPC_VERSION); return 0; }
    /* these two read their own options */
    if (!strcmp(cmd, "plot")) return bp_cmd_plot(argc - 2, argv + 2);
    if (!strcmp(cmd, "repro")) return bp_cmd_repro(argc - 2, argv + 2);
    args a = {0};
    a.progress = -1;
    int sub = !strcmp(cmd, "check") || !strcmp(cmd, "train") || !strcmp(cmd, "data") ||
              !strcmp(cmd, "ptx") || !strcmp(cmd, "eval");
    if (parse_args(argc, argv, sub ? 2 : 1, &a)) return 1;
    static const struct { const char *cmd, *allowed; } APPLY[] = {
        {"check", " "},
        {"train", " --data --target --epochs --seed --lr --rule --limit --test-limit --val --out "
                  "--resume --metrics --progress --no-progress "},
        {"eval", " --data --json --target --test-limit "},
        {"data", " --data "},
        {"ptx", " -o --arch --rule --batch "},
        {"emit", " -o --target --rule --batch "},
    };
    const char *name = sub ? cmd : "emit";
    for (size_t i = 0; i < sizeof APPLY / sizeof APPLY[0]; i++)
        if (!strcmp(APPLY[i].cmd, name) && options_apply(&a, sub ? cmd : "MODEL.bp -o", APPLY[i].allowed))
            return 1;
    if (!strcmp(cmd, "check")) return cmd_check(&a);
    if (!strcmp(cmd, "train")) return cmd_train(&a, argc, argv);
    if (!strcmp(cmd, "eval")) return cmd_eval(&a);
    if (!strcmp(cmd, "data")) return cmd_data(&a);
    if (!strcmp(cmd, "ptx")) return cmd_emit(&a, 1);
    return cmd_emit(&a, 0);
}
