/* trainer.c: main() of a standalone trainer (trainer.h): the run options of
 * `bpc train` (cli.c) applied to the model built into the executable, with the kernels
 * linked into it (linked.h) and never a compiler at run time. */
#include "trainer.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "checkpoint.h"
#include "cli.h"
#include "files.h"
#include "frontend.h"
#include "linked.h"
#include "tune.h"

/* 1 when the file holds exactly buf[0..len), 0 when it differs, -1 when unreadable. */
static int same_bytes(const char *path, const char *buf, size_t len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t off = 0;
    char chunk[65536];
    int same = 1;
    for (size_t n; (n = fread(chunk, 1, sizeof chunk, f)) > 0; off += n)
        if (off + n > len || memcmp(chunk, buf + off, n)) { same = 0; break; }
    int bad = ferror(f);
    fclose(f);
    if (bad) return -1;
    return same && off == len;
}

int bp_trainer_main(int argc, char **argv, const char *file, const char *source, size_t len,
                    int target) {
    bp_tune_process(argv);
    bp_linked_only = 1;
    const char *prog = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
    prog = prog ? prog + 1 : argc > 0 && argv[0] ? argv[0] : "trainer";
    bp_target built = target == 1 ? BP_TARGET_CUDA : BP_TARGET_CPU;
    const char *tname = built == BP_TARGET_CUDA ? "cuda" : "cpu";
    char usage[1400];
    snprintf(usage, sizeof usage,
             "usage: %s [--data DIR] [--target %s|auto] [--epochs N] [--seed S] [--lr X]\n"
             "           [--rule brainprop|ebp] [--limit N] [--test-limit N] [--val N|F|test]\n"
             "           [--out RUN_DIR] [--resume RUN_DIR] [--metrics FILE] [--precision P]\n"
             "           [--progress|--no-progress]\n"
             "       %s --version | --help\n"
             "trains %s (built in, for the %s target) as `bpc train %s` does\n"
             "exit status: 0 ok, 1 error in the input, 2 I/O or internal error, 130/143 interrupted\n",
             prog, tname, prog, file, tname, file);
    bp_cli_prog = prog;
    bp_cli_usage = usage;
    if (bp_cli_dist_init(&argc, &argv)) return 2;
    bp_cli_check_stdout_at_exit();
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { fputs(usage, stdout); return 0; }
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("%s: %s for the %s target, built by bpc %s\n", prog, file, tname, BPC_VERSION);
        return 0;
    }
    bp_cli_args a = {0};
    a.progress = -1;
    if (bp_cli_parse(argc, argv, 1, &a) || bp_cli_options_apply(&a, NULL, BP_CLI_TRAIN_OPTIONS)) return 1;
    if (a.npos)
        return bp_cli_bad_usage("this trainer trains the model built into it; it takes no '%s'", a.pos[0]);
    if (a.target && strcmp(a.target, "auto")) {
        bp_target t;
        if (bp_cli_target(a.target, &t)) return 1;
        if (t != built) {
            fprintf(stderr, "%s: error: this trainer was built for --target %s; for --target %s run "
                            "`bpc build %s --target %s` (or `bpc train`)\n", prog, tname, a.target, file,
                    a.target);
            return 1;
        }
    }
    if (a.resume && a.run_out && strcmp(a.resume, a.run_out))
        return bp_cli_bad_usage("%s", "--resume RUN_DIR continues in RUN_DIR; --out must be the same folder or left out");

    /* the source as a file: the run folder's model.bp, or a temporary one */
    const char *dir = a.resume ? a.resume : a.run_out;
    char path[4400], tmpdir[4200] = "";
    struct stat st;
    int in_run = 0;
    if (dir) {
        snprintf(path, sizeof path, "%s/model.bp", dir);
        if (stat(path, &st) == 0) {
            int same = same_bytes(path, source, len);
            if (same < 0) { fprintf(stderr, "%s: error: %s: cannot read: %s\n", prog, path, strerror(errno)); return 2; }
            if (!same) {
                fprintf(stderr, "%s: error: %s was trained from another source than this trainer's "
                                "(%s, built in): continue it with `bpc train --resume %s`, or choose another "
                                "run folder\n", prog, dir, file, dir);
                return 1;
            }
            in_run = 1;
        } else if (!a.resume) {
            if (bp_mkdirs(dir) || bp_write_atomic(path, source, len)) {
                fprintf(stderr, "%s: error: %s: cannot write: %s\n", prog, path, strerror(errno));
                return 2;
            }
            in_run = 1;
        }
    }
    if (!in_run) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/bpc-trainer.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "%s: error: cannot create a temporary folder in %s: %s\n", prog,
                    t && *t ? t : "/tmp", strerror(errno));
            return 2;
        }
        snprintf(path, sizeof path, "%s/%s", tmpdir, file);
        if (bp_write_atomic(path, source, len)) {
            fprintf(stderr, "%s: error: %s: cannot write: %s\n", prog, path, strerror(errno));
            rmdir(tmpdir);
            return 2;
        }
    }
    int nerr = 0, io = 0, rc;
    bp_ir *ir = bp_frontend_file(path, stderr, &nerr, &io);
    if (!ir) {
        rc = io ? 2 : 1;
    } else {
        rc = bp_cli_train(&a, ir, built, argc, argv);
        bp_ir_free(ir);
    }
    if (tmpdir[0]) {
        unlink(path);
        rmdir(tmpdir);
    }
    return rc;
}
