/* cli.c: the run options of `bpc train`, for bpc and for standalone trainers (cli.h).
 * Moved out of main.c so that a trainer made by `bpc build` takes exactly the same
 * options, with the same checks and messages. */
#include "cli.h"
#include "dist.h"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "files.h"
#include "jit_cuda.h"

const char *bp_cli_prog = "bpc";
const char *bp_cli_usage = "";

int bp_cli_bad_usage(const char *fmt, const char *what) {
    fprintf(stderr, "%s: error: ", bp_cli_prog);
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n%s", bp_cli_usage);
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
    {"-o", OPT_STR, offsetof(bp_cli_args, out), 0, 0},
    {"--target", OPT_STR, offsetof(bp_cli_args, target), 0, 0},
    {"--rule", OPT_STR, offsetof(bp_cli_args, rule), 0, 0},
    {"--data", OPT_STR, offsetof(bp_cli_args, data), 0, 0},
    {"--arch", OPT_STR, offsetof(bp_cli_args, arch), 0, 0},
    {"--precision", OPT_STR, offsetof(bp_cli_args, precision), 0, 0},
    {"--metrics", OPT_STR, offsetof(bp_cli_args, metrics), 0, 0},
    {"--out", OPT_STR, offsetof(bp_cli_args, run_out), 0, 0},
    {"--resume", OPT_STR, offsetof(bp_cli_args, resume), 0, 0},
    {"--val", OPT_VAL, offsetof(bp_cli_args, val), 0, 0},
    {"--batch", OPT_COUNT, offsetof(bp_cli_args, batch), 1, 1 << 20},
    {"--ranks", OPT_COUNT, offsetof(bp_cli_args, ranks), 1, 4096},
    {"--epochs", OPT_COUNT, offsetof(bp_cli_args, epochs), 1, 1000000},
    {"--limit", OPT_COUNT, offsetof(bp_cli_args, limit), 1, 1000000000},
    {"--test-limit", OPT_COUNT, offsetof(bp_cli_args, test_limit), 1, 1000000000},
    {"--lr", OPT_REAL, offsetof(bp_cli_args, lr), 1e-30, 1e6},
    {"--seed", OPT_SEED, offsetof(bp_cli_args, seed), 0, 0},
};
#define NOPTS ((int)(sizeof OPTS / sizeof OPTS[0]))

/* Stores one option's value; 0, or 1 after printing what is wrong with it. */
static int set_opt(bp_cli_args *a, int k, const char *v) {
    void *dst = (char *)a + OPTS[k].off;
    const char *flag = OPTS[k].flag;
    char *end;
    errno = 0;
    switch (OPTS[k].kind) {
    case OPT_STR:
        if (!*v) return bp_cli_bad_usage("%s needs a value, not an empty one", flag);
        *(const char **)dst = v;
        return 0;
    case OPT_VAL:
        if (bp_val_parse(v, dst))
            return bp_cli_bad_usage("--val takes 'test', a number of images (5000) or a fraction (0.1), not '%s'", v);
        return 0;
    case OPT_COUNT: {
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < (long)OPTS[k].lo || n > (long)OPTS[k].hi) {
            fprintf(stderr, "%s: error: %s takes a whole number from %ld to %ld, not '%s'\n", bp_cli_prog,
                    flag, (long)OPTS[k].lo, (long)OPTS[k].hi, v);
            return 1;
        }
        *(long *)dst = n;
        return 0;
    }
    case OPT_REAL: {
        double d = strtod(v, &end);
        /* decimal only: strtod would also take hexadecimal (0x10 = 16) */
        if (errno || end == v || *end || strpbrk(v, "xX") || !(d >= OPTS[k].lo && d <= OPTS[k].hi)) {
            fprintf(stderr, "%s: error: %s takes a number from %g to %g, not '%s'\n", bp_cli_prog, flag,
                    OPTS[k].lo, OPTS[k].hi, v);
            return 1;
        }
        *(double *)dst = d;
        return 0;
    }
    case OPT_SEED: {
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || !(*v >= '0' && *v <= '9') || *end)
            return bp_cli_bad_usage("--seed takes an unsigned integer below 2^64, not '%s'", v);
        *(unsigned long long *)dst = n;
        a->has_seed = 1;
        return 0;
    }
    }
    return 1;
}

int bp_cli_parse(int argc, char **argv, int start, bp_cli_args *a) {
    int seen[NOPTS] = {0};
    int only_args = 0; /* after "--", every argument is a path (a model named -x.bp) */
    for (int i = start; i < argc; i++) {
        const char *s = argv[i];
        if (!only_args && !strcmp(s, "--")) { only_args = 1; continue; }
        if (only_args) {
            if (a->npos < 4) a->pos[a->npos++] = s;
            else return bp_cli_bad_usage("too many arguments at '%s'", s);
            continue;
        }
        int k = 0;
        while (k < NOPTS && strcmp(s, OPTS[k].flag)) k++;
        if (k < NOPTS) {
            if (i + 1 >= argc) return bp_cli_bad_usage("%s needs a value", s);
            if (seen[k]++) return bp_cli_bad_usage("%s is given twice", s);
            if (set_opt(a, k, argv[++i])) return 1;
        } else if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "--progress")) a->progress = 1;
        else if (!strcmp(s, "--no-progress")) a->progress = 0;
        else if (s[0] == '-' && s[1]) return bp_cli_bad_usage("unknown option '%s'", s);
        if (s[0] == '-' && s[1]) { if (a->ngiven < 32) a->given[a->ngiven++] = s; }
        else if (a->npos < 4) a->pos[a->npos++] = s;
        else return bp_cli_bad_usage("too many arguments at '%s'", s);
    }
    return 0;
}

int bp_cli_options_apply(const bp_cli_args *a, const char *cmd, const char *allowed) {
    for (int i = 0; i < a->ngiven; i++) {
        char word[64];
        snprintf(word, sizeof word, " %s ", a->given[i]);
        if (!strstr(allowed, word)) {
            fprintf(stderr, "%s: error: %s does not apply to `%s%s%s`\n%s", bp_cli_prog, a->given[i],
                    bp_cli_prog, cmd ? " " : "", cmd ? cmd : "", bp_cli_usage);
            return 1;
        }
    }
    return 0;
}

int bp_cli_rule(const bp_cli_args *a, const bp_ir *ir, bp_rule *r) {
    *r = ir->layers[ir->n - 1].rule;
    if (!a->rule) return 0;
    if (!strcmp(a->rule, "brainprop")) *r = BP_RULE_BRAINPROP;
    else if (!strcmp(a->rule, "ebp")) *r = BP_RULE_EBP;
    else return bp_cli_bad_usage("--rule is brainprop or ebp, not '%s'", a->rule);
    return 0;
}

int bp_cli_dist_init(int *argc, char ***argv) {
    bp_err e = {{0}};
    if (bp_dist_init(argc, argv, &e)) {
        fprintf(stderr, "%s: error: %s\n", bp_cli_prog, e.msg);
        return 2;
    }
    static char name[96];
    if (bp_dist_rank() > 0) {
        snprintf(name, sizeof name, "%s (rank %d)", bp_cli_prog, bp_dist_rank());
        bp_cli_prog = name;
    }
    return 0;
}

int bp_cli_precision(const bp_cli_args *a, bp_precision *p, int *given) {
    if (given) *given = a->precision != NULL;
    if (!a->precision || !bp_precision_parse(a->precision, p)) return 0;
    return bp_cli_bad_usage("--precision is ieee, tf32 or 3xtf32, not '%s'", a->precision);
}

int bp_cli_target(const char *t, bp_target *out) {
    if (!t) t = "auto";
    if (!strcmp(t, "cpu") || !strcmp(t, "c")) *out = BP_TARGET_CPU;
    else if (!strcmp(t, "cuda")) *out = BP_TARGET_CUDA;
    /* several ranks: auto stays on the CPU; NCCL on GPUs needs one GPU per rank, which
     * --target cuda says there is (runtime/dist.h) */
    else if (!strcmp(t, "auto")) *out = bp_dist_size() == 1 && bp_cuda_available() ? BP_TARGET_CUDA : BP_TARGET_CPU;
    else return bp_cli_bad_usage("--target is cpu, cuda or auto, not '%s'", t);
    return 0;
}

int bp_cli_write(const char *path, const void *buf, size_t len) {
    if (!bp_write_atomic(path, buf, len)) return 0;
    fprintf(stderr, "%s: error: %s: write failed: %s\n", bp_cli_prog, path, strerror(errno));
    return 2;
}

/* gnulib's close_stdout, in short: the output may sit in stdio's buffer until exit. */
static void close_stdout(void) {
    int bad = ferror(stdout), err = 0;
    if (fclose(stdout) != 0) { bad = 1; err = errno; }
    if (!bad) return;
    fprintf(stderr, "%s: error: cannot write the standard output%s%s\n", bp_cli_prog, err ? ": " : "",
            err ? strerror(err) : "");
    _exit(2);
}

void bp_cli_check_stdout_at_exit(void) { atexit(close_stdout); }

char *bp_cli_command_line(int argc, char **argv) {
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

void bp_cli_report(int rc, const bp_err *e) {
    /* located: "PATH:LINE:COL: error: " right at the start, not somewhere in a log */
    const char *s = e->msg, *colon = strchr(s, ':');
    int line = 0, col = 0, n = 0;
    int located = colon && sscanf(colon, ":%d:%d: error: %n", &line, &col, &n) == 2 && n > 0;
    if (rc >= 128) fprintf(stderr, "%s: %s\n", bp_cli_prog, s);
    else if (located) fprintf(stderr, "%s\n", s);
    else fprintf(stderr, "%s: error: %s\n", bp_cli_prog, s);
}

int bp_cli_train(const bp_cli_args *a, bp_ir *ir, bp_target target, int argc, char **argv) {
    char *cmd = bp_cli_command_line(argc, argv);
    bp_train_opts o = {.data_dir = a->data, .epochs = (int)a->epochs, .has_seed = a->has_seed,
                       .seed = a->seed, .lr = (float)a->lr, .limit = a->limit,
                       .test_limit = a->test_limit, .metrics = a->metrics, .log = stdout,
                       .val = a->val, .out_dir = a->run_out, .resume = a->resume,
                       .command = cmd, .progress = a->progress, .has_rule = a->rule != NULL,
                       .target = target};
    int rc = bp_cli_rule(a, ir, &o.rule);
    if (!rc) rc = bp_cli_precision(a, &o.precision, &o.has_precision);
    if (rc) { free(cmd); return rc; }
    bp_train_result res;
    bp_err e = {{0}};
    rc = bp_train(ir, &o, &res, &e);
    if (rc) bp_cli_report(rc, &e);
    free(cmd);
    return rc;
}
