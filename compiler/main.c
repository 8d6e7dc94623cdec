/* main.c: the bpc command line.
 *
 *   bpc MODEL.bp -o net.cu|net.c [--target cuda|c] [--rule brainprop|ebp] [--batch N] [--ranks N]
 *   bpc check MODEL.bp
 *   bpc ptx MODEL.bp -o net.ptx [--arch compute_90] [--rule R] [--batch N] [--ranks N]
 *   bpc train MODEL.bp [--data DIR] [--target cpu|cuda|auto] [--epochs N] [--seed S]
 *             [--lr X] [--rule R] [--limit N] [--test-limit N] [--val N|F|test]
 *             [--out RUN_DIR] [--resume RUN_DIR] [--metrics FILE] [--progress|--no-progress]
 *   bpc eval MODEL.bp CHECKPOINT|RUN_DIR [--data DIR] [--json] [--target T] [--test-limit N]
 *   bpc data fetch|verify|info NAME [--data DIR]
 *   bpc build MODEL.bp -o TRAINER [--target cpu|cuda] [--arch LIST]   (compiler/build.c)
 *   bpc plot RUN_DIR... / bpc repro ...            (compiler/plot.c, compiler/repro.c)
 *   bpc help [VERB]                                (compiler/help.c)
 * The options of `bpc train` are parsed in compiler/cli.c, shared with the trainers.
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
#include "build.h"
#include "checkpoint.h"
#include "cli.h"
#include "data.h"
#include "eval.h"
#include "files.h"
#include "frontend.h"
#include "help.h"
#include "jit_cuda.h"
#include "plan.h"
#include "plot.h"
#include "repro.h"
#include "report.h"
#include "train.h"
#include "tune.h"

static const char *usage =
    "usage: bpc MODEL.bp -o OUT.cu|OUT.c [--target cuda|c] [--rule brainprop|ebp] [--batch N]\n"
    "                                    [--ranks N]\n"
    "       bpc check MODEL.bp\n"
    "       bpc ptx MODEL.bp -o OUT.ptx [--arch compute_90] [--rule R] [--batch N] [--ranks N]\n"
    "       bpc train MODEL.bp [--data DIR] [--target cpu|cuda|auto] [--epochs N] [--seed S]\n"
    "                 [--lr X] [--rule brainprop|ebp] [--limit N] [--test-limit N] [--val N|F|test]\n"
    "                 [--out RUN_DIR] [--resume RUN_DIR] [--metrics FILE] [--progress|--no-progress]\n"
    "       bpc eval MODEL.bp CHECKPOINT|RUN_DIR [--data DIR] [--json] [--target cpu|cuda|auto]\n"
    "                 [--test-limit N]\n"
    "       bpc data fetch|verify|info NAME [--data DIR]\n"
    "       bpc build MODEL.bp -o TRAINER [--target cpu|cuda] [--arch sm_90,compute_75]\n"
    "       bpc plot RUN_DIR... [-o FILE.svg|FILE.png] [--metric test_acc|val_acc|train_acc|train_loss|align]\n"
    "       bpc repro --models M,... [--rules brainprop,ebp] [--seeds 1,2,3] --out GRID_DIR [train options]\n"
    "       bpc help [VERB] | --version | --help\n"
    "exit status: 0 ok, 1 error in the input, 2 I/O or internal error, 130/143 interrupted\n";

typedef bp_cli_args args;
#define bad_usage bp_cli_bad_usage

/* Parses and checks the model; 0 with *ir set, or the exit status. */
static int load_model(const char *path, bp_ir **ir) {
    int nerr = 0, io = 0;
    *ir = bp_frontend_file(path, stderr, &nerr, &io);
    if (*ir) return 0;
    if (nerr) fprintf(stderr, "%d error%s\n", nerr, nerr == 1 ? "" : "s");
    return io ? 2 : 1;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

static int cmd_emit(args *a, int ptx) {
    if (a->npos != 1) return bad_usage("%s", "expected one MODEL.bp");
    if (!a->out) return bad_usage("%s", "missing -o OUT");
    const char *target = a->target ? a->target : ends_with(a->out, ".c") ? "c" : "cuda";
    if (ptx) target = "cuda";
    /* PTX is for one virtual architecture */
    if (ptx && a->arch && (strncmp(a->arch, "compute_", 8) || strchr(a->arch, ',') || !bp_cuda_archs_ok(a->arch)))
        return bad_usage("--arch for ptx is one virtual architecture, compute_XY (compute_90), not '%s'", a->arch);
    bp_err ae;
    if (a->arch && bp_cuda_archs_supported(a->arch, &ae) == 0) {
        fprintf(stderr, "bpc: error: --arch %s\n", ae.msg);
        return 1;
    }
    if (bp_same_file(a->pos[0], a->out)) {
        fprintf(stderr, "bpc: error: -o %s is the model file itself; choose another name for the output\n", a->out);
        return 1;
    }
    if (strcmp(target, "c") && strcmp(target, "cuda"))
        return bad_usage("--target for emitting is c or cuda, not '%s'", target);
    if (a->ranks && a->batch)
        return bad_usage("%s", "--ranks takes the batch from the train block (each rank 1/N of it), "
                               "so --batch does not apply with it");
    bp_ir *ir;
    int rc = load_model(a->pos[0], &ir);
    if (rc) return rc;
    bp_rule rule;
    if ((rc = bp_cli_rule(a, ir, &rule))) { bp_ir_free(ir); return rc; }
    /* --ranks N: the plan each of N ranks runs under mpirun (plan.h) */
    if (a->ranks > ir->train.batch) {
        fprintf(stderr, "bpc: error: --ranks %ld is more than the train block's batch of %d: every rank "
                        "needs a sample of each batch; give at most %d\n", a->ranks, ir->train.batch,
                ir->train.batch);
        bp_ir_free(ir);
        return 1;
    }
    bp_plan *p = a->ranks ? bp_plan_build_rank(ir, rule, (int)a->ranks) : bp_plan_build(ir, rule, (int)a->batch);
    char *src = NULL;
    size_t len = 0;
    FILE *f = p ? open_memstream(&src, &len) : NULL;
    if (!f || bp_emit(f, p, target) || fclose(f)) {
        fprintf(stderr, "bpc: error: out of memory\n");
        bp_plan_free(p); bp_ir_free(ir); free(src);
        return 2;
    }
    if (!ptx) {
        rc = bp_cli_write(a->out, src, len);
    } else {
        char *code = NULL, *log = NULL;
        size_t n = 0;
        bp_err e = {{0}};
        if (bp_nvrtc_compile(src, ir->name, a->arch ? a->arch : "compute_90", &code, &n, &log, &e)) {
            fprintf(stderr, "bpc: error: %s\n", e.msg);
            if (log && *log) fprintf(stderr, "%s\n", log);
            rc = 2;
        } else {
            rc = bp_cli_write(a->out, code, n);
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

static int cmd_train(args *a, int argc, char **argv) {
    char model[4200];
    if (a->npos == 0 && a->resume) {
        /* bpc train --resume RUN: the run's own copy of the source */
        snprintf(model, sizeof model, "%s/model.bp", a->resume);
        struct stat st;
        if (stat(a->resume, &st) == 0 && S_ISDIR(st.st_mode) && stat(model, &st) != 0) {
            fprintf(stderr, "bpc: error: cannot resume %s: it has no model.bp (the run stopped "
                            "before it began to train); start it again without --resume: bpc "
                            "train MODEL.bp --out %s\n", a->resume, a->resume);
            return 1;
        }
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
    bp_target target;
    if ((rc = bp_cli_target(a->target, &target))) { bp_ir_free(ir); return rc; }
    rc = bp_cli_train(a, ir, target, argc, argv);
    bp_ir_free(ir);
    return rc;
}

static int cmd_eval(args *a) {
    if (a->npos != 2) return bad_usage("%s", "eval takes a MODEL.bp and a CHECKPOINT (a .safetensors file or a run folder)");
    bp_ir *ir;
    int rc = load_model(a->pos[0], &ir);
    if (rc) return rc;
    bp_eval_opts o = {.data_dir = a->data, .test_limit = a->test_limit, .json = a->json, .out = stdout};
    if ((rc = bp_cli_target(a->target, &o.target)) ||
        (rc = bp_cli_precision(a, &ir->train.precision, NULL))) { bp_ir_free(ir); return rc; }
    bp_err e = {{0}};
    rc = bp_eval_checkpoint(ir, a->pos[1], &o, &e);
    if (rc) bp_cli_report(rc, &e);
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

/* bpc build: a standalone trainer (compiler/build.h) */
static int cmd_build(args *a) {
    if (a->npos != 1) return bad_usage("%s", "build takes one MODEL.bp");
    if (!a->out) return bad_usage("%s", "missing -o TRAINER");
    bp_err e = {{0}};
    int rc = bp_cmd_build(a->pos[0], a->out, a->target, a->arch, &e);
    if (rc && e.msg[0]) fprintf(stderr, "bpc: error: %s\n", e.msg);
    return rc;
}

int main(int argc, char **argv) {
    bp_tune_process(argv); /* may re-execute: before MPI starts */
    if (bp_cli_dist_init(&argc, &argv)) return 2;
    bp_cli_check_stdout_at_exit();
    if (argc < 2) { fputs(usage, stderr); return 1; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) { fputs(usage, stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("bpc %s\n", BPC_VERSION); return 0; }
    if (!strcmp(cmd, "help")) {
        if (argc > 3) { fputs("bpc: error: help takes at most one VERB\n", stderr); return 1; }
        return bp_cmd_help(argc == 3 ? argv[2] : NULL, usage);
    }
    /* these two read their own options */
    if (!strcmp(cmd, "plot")) return bp_cmd_plot(argc - 2, argv + 2);
    if (!strcmp(cmd, "repro")) return bp_cmd_repro(argc - 2, argv + 2);
    args a = {0};
    a.progress = -1;
    int sub = !strcmp(cmd, "check") || !strcmp(cmd, "train") || !strcmp(cmd, "data") ||
              !strcmp(cmd, "ptx") || !strcmp(cmd, "eval") || !strcmp(cmd, "build");
    bp_cli_usage = usage;
    if (bp_cli_parse(argc, argv, sub ? 2 : 1, &a)) return 1;
    static const struct { const char *cmd, *allowed; } APPLY[] = {
        {"check", " "},
        {"train", BP_CLI_TRAIN_OPTIONS},
        {"build", " -o --target --arch "},
        {"eval", " --data --json --target --test-limit --precision "},
        {"data", " --data "},
        {"ptx", " -o --arch --rule --batch --ranks "},
        {"emit", " -o --target --rule --batch --ranks "},
    };
    const char *name = sub ? cmd : "emit";
    if (a.ranks && !strcmp(cmd, "train"))
        return bad_usage("%s", "--ranks is for emit and ptx; to train on N ranks, start `mpirun -np N bpc "
                               "train ...`");
    for (size_t i = 0; i < sizeof APPLY / sizeof APPLY[0]; i++)
        if (!strcmp(APPLY[i].cmd, name) && bp_cli_options_apply(&a, sub ? cmd : "MODEL.bp -o", APPLY[i].allowed))
            return 1;
    if (!strcmp(cmd, "check")) return cmd_check(&a);
    if (!strcmp(cmd, "train")) return cmd_train(&a, argc, argv);
    if (!strcmp(cmd, "eval")) return cmd_eval(&a);
    if (!strcmp(cmd, "data")) return cmd_data(&a);
    if (!strcmp(cmd, "build")) return cmd_build(&a);
    if (!strcmp(cmd, "ptx")) return cmd_emit(&a, 1);
    return cmd_emit(&a, 0);
}
