/* cli.h: the run options of `bpc train`, shared by bpc and by standalone trainers.
 *
 * `bpc train MODEL.bp ...` (compiler/main.c) and a trainer made by `bpc build`
 * (compiler/trainer.c) take the same options with the same checks and messages, so
 * they are parsed, turned into bp_train_opts and reported here, once.
 */
#ifndef BPC_CLI_H
#define BPC_CLI_H

#include "exec.h"
#include "ir.h"
#include "train.h"

/* The command line, as given (strings point into argv; NULL or 0: not given). */
typedef struct {
    const char *out;        /* -o FILE: what emit, ptx, build and plot write */
    const char *target, *rule, *data, *arch, *metrics;
    const char *precision;  /* --precision ieee|tf32|3xtf32 */
    const char *run_out;    /* --out RUN_DIR: the run folder of train */
    const char *resume;     /* --resume RUN_DIR */
    long batch;             /* --batch, 1 .. 2^20 */
    long ranks;             /* --ranks, 1 .. 4096: emit one rank's data-parallel plan */
    long epochs;            /* --epochs, 1 .. 10^6 */
    long limit, test_limit; /* --limit, --test-limit (images), 1 .. 10^9 */
    bp_val_spec val;        /* --val; mode BP_VAL_MODEL when not given */
    int json, progress;     /* progress: -1 auto, 0 off, 1 on */
    int has_seed;
    unsigned long long seed;
    double lr;              /* --lr, 1e-30 .. 10^6 */
    const char *pos[4];     /* the positional arguments (model, checkpoint, ...) */
    int npos;
    const char *given[32];  /* the options given, for the check that each applies */
    int ngiven;
} bp_cli_args;

/* The options `bpc train` takes, as bp_cli_options_apply wants them. */
#define BP_CLI_TRAIN_OPTIONS " --data --target --epochs --seed --lr --rule --limit --test-limit " \
                             "--val --out --resume --metrics --progress --no-progress --precision "

/* The program name in messages ("bpc", or the trainer's name) and the usage text printed
 * after a usage error. Set once by main(). */
extern const char *bp_cli_prog;
extern const char *bp_cli_usage;

/* Prints "PROG: error: " fmt (with one string) and the usage; returns 1. */
int bp_cli_bad_usage(const char *fmt, const char *what);

/* Parses argv[start..argc) into *a (which the caller zeroes, progress = -1): -o,
 * --target, --rule, --data, --arch, --metrics, --out, --resume, --val, --batch,
 * --ranks, --epochs, --limit, --test-limit, --lr, --seed (each with a value, at most once),
 * --json, --progress, --no-progress, and up to 4 positional arguments; after "--"
 * every argument is positional (a model file named -x.bp). The options are also
 * listed in given[] (for bp_cli_options_apply).
 * Returns 0, or 1 after printing what is wrong. */
int bp_cli_parse(int argc, char **argv, int start, bp_cli_args *a);

/* 0 when every option given is a word of `allowed` (" --a --b "); else 1 after
 * "PROG: error: OPT does not apply to `PROG CMD`" (`PROG` alone when cmd is NULL). */
int bp_cli_options_apply(const bp_cli_args *a, const char *cmd, const char *allowed);

/* The rule: --rule, else the output layer's. 0, or 1 after a usage error. */
int bp_cli_rule(const bp_cli_args *a, const bp_ir *ir, bp_rule *r);

/* Joins the MPI job when started by mpirun with several ranks (runtime/dist.h), and
 * names the rank in messages of ranks other than 0 ("bpc (rank 1)"). Returns 0, or the
 * exit status 2 after printing why it could not join. */
int bp_cli_dist_init(int *argc, char ***argv);

/* --precision: *p gets it (ieee, tf32, 3xtf32) and *given 1; not given: *given 0
 * (given may be NULL).
 * Returns 0, or 1 after a usage message for another word. */
int bp_cli_precision(const bp_cli_args *a, bp_precision *p, int *given);

/* --target cpu|c|cuda|auto (NULL: auto) to a target. 0, or 1 after a usage error. */
int bp_cli_target(const char *t, bp_target *out);

/* Writes buf to path atomically (files.h: never half a file; /dev/stdout and the like
 * in place). Returns 0, or 2 after "PROG: error: PATH: write failed: REASON". */
int bp_cli_write(const char *path, const void *buf, size_t len);

/* Makes a failed write to standard output an error: registers an exit handler that
 * flushes and closes stdout and, if that or an earlier write failed (a full disk,
 * /dev/full), prints "PROG: error: cannot write the standard output: REASON" and
 * exits with status 2 instead. Call once, first thing in main. */
void bp_cli_check_stdout_at_exit(void);

/* The command line as a shell would need it (malloc'd), or NULL. */
char *bp_cli_command_line(int argc, char **argv);

/* Prints a runtime error: "PROG: error: MSG", MSG alone when it is located
 * ("file:line:col: error: ..."), or "PROG: MSG" for an interruption (rc >= 128). */
void bp_cli_report(int rc, const bp_err *e);

/* Trains ir with the options in a (everything but the model path, and --resume/--out
 * consistency, which the caller checks); target is the chosen target. Prints errors.
 * Returns bp_train's status (0, 1, 2, 130, 143). */
int bp_cli_train(const bp_cli_args *a, bp_ir *ir, bp_target target, int argc, char **argv);

#endif
