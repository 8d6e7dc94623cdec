/* bench_step.c (build/bench_step): times bpc's CPU training step for `make bench`.
 *
 *   bench_step MODEL.bp brainprop|ebp [--steps N] [--warmup N] [--batch B] [--seed S]
 *              [--target cpu|cuda] [--precision ieee|tf32|3xtf32] [--no-sgemm] [--no-cold]
 *              [--layers-json PATH] [--serve]
 *
 * Compiles the model (front end, plan, C source: timed as "bpc compile"), JIT-compiles
 * it twice (cold, in a fresh empty $XDG_CACHE_HOME, then warm from that cache), opens
 * the target (CPU by default; --target cuda: NVRTC and cuBLAS, each timed step then
 * waits for the GPU, and there is no sgemm figure), initialises the parameters, feeds one synthetic uint8 batch of the
 * model's shape (Philox pixels and cycling labels, exactly as oracle_dump's "synthetic"
 * mode: no data set is read, so the figures need none) and runs full-batch `train`
 * programs, the step counter advancing so that dropout masks and actions change.
 *
 * Without --serve: warm-up, N timed steps, then one JSON object on stdout. With
 * --serve (used by bench/run.py to interleave bpc and PyTorch): after set-up and
 * warm-up it prints the set-up object as one line, then reads commands from stdin,
 * "N" (run N timed steps, answer {"times_ms": [...]}) or "quit"/EOF (answer with the
 * final object: peak memory, sgemm, loss), one JSON line each.
 *
 * Conventions, so that figures can be compared:
 *  - gflops = 3 x 2 x macs x batch / (median seconds per step) / 1e9: `macs` is the
 *    forward multiply-adds per sample that `bpc check` counts; the backward pass costs
 *    two more GEMMs of the same size (input gradient and weight gradient), and a
 *    multiply-add is 2 flops. Elementwise work is not counted.
 *  - sgemm_gflops: OpenBLAS cblas_sgemm on square N=2048 matrices (2 N^3 flops), best of
 *    5 after one warm-up call, with the same threads, in this process, after the steps.
 *  - peak_rss_mb: getrusage's ru_maxrss, read before the sgemm test allocates its
 *    matrices (the JIT's compiler runs in a child process and is not counted).
 * Exit status: 0, 1 on bad arguments or a model that does not compile, 2 on a runtime
 * error.
 */
#include <cblas.h>
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "exec.h"
#include "frontend.h"
#include "philox.h"
#include "ir_json.h"
#include "plan.h"
#include "tune.h"

#define SGEMM_N 2048

static void die(int status, const char *msg) {
    fprintf(stderr, "bench_step: %s\n", msg);
    exit(status);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double peak_rss_mb(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n sorted values, linear interpolation (numpy's default). */
static double quantile(const double *s, int n, double q) {
    if (n == 0) return NAN;
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i + 1 >= n) return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}

/* Best-of-5 GFLOP/s of cblas_sgemm on N x N x N, after one warm-up call. */
static double sgemm_gflops(int n) {
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    if (!a || !b || !c) die(2, "out of memory for the sgemm test");
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7 % 13) - 6) / 16.0f;
        b[i] = (float)((i * 5 % 11) - 5) / 16.0f;
        c[i] = 0;
    }
    double best = 1e300;
    for (int r = 0; r < 6; r++) {
        double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = now_ms() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / (best * 1e-3) / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Milliseconds of bp_exec_open (emit, cc, dlopen) in a forked child; the child hands
 * its time back through a pipe. Exits on failure with the child's message. */
static double cold_open_ms(const bp_plan *p, bp_target target) {
    int fd[2];
    if (pipe(fd)) die(2, "pipe failed");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) die(2, "fork failed");
    if (pid == 0) {
        close(fd[0]);
        bp_exec x;
        bp_err e;
        double t0 = now_ms();
        if (bp_exec_open(&x, p, target, &e)) { fprintf(stderr, "bench_step: %s\n", e.msg); _exit(2); }
        double t = now_ms() - t0;
        _exit(write(fd[1], &t, sizeof t) == (ssize_t)sizeof t ? 0 : 2);
    }
    close(fd[1]);
    double t = NAN;
    ssize_t got = read(fd[0], &t, sizeof t);
    close(fd[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || got != (ssize_t)sizeof t)
        die(2, "the cold JIT compile failed");
    return t;
}

/* The IR's layer list, in the schema of tests/oracle/dump.c's model.json, for the
 * PyTorch twin (bench/torch_step.py). */
static void write_layers_json(const char *path, const bp_ir *ir, const char *rule, int nb) {
    cJSON *root = cJSON_CreateObject();
    cJSON *layers = root ? bp_ir_layers_json(ir) : NULL;
    if (!layers || !cJSON_AddItemToObject(root, "layers", layers)) die(2, "out of memory");
    cJSON_AddStringToObject(root, "model", ir->name);
    cJSON_AddStringToObject(root, "path", ir->path);
    cJSON_AddStringToObject(root, "rule", rule);
    cJSON_AddNumberToObject(root, "lr", (double)ir->train.lr);
    cJSON_AddNumberToObject(root, "nb", nb);
    cJSON_AddNumberToObject(root, "l2", (double)ir->train.l2);
    cJSON_AddNumberToObject(root, "init_std", (double)ir->train.init_std);
    cJSON_AddNumberToObject(root, "macs", (double)ir->macs);
    bp_err e;
    int bad = bp_json_write(path, root, &e);
    cJSON_Delete(root);
    if (bad) die(2, e.msg);
}

/* Prints a JSON object as one line and frees it. */
static void emit(cJSON *o) {
    char *txt = cJSON_PrintUnformatted(o);
    if (!txt) die(2, "out of memory");
    puts(txt);
    fflush(stdout);
    free(txt);
    cJSON_Delete(o);
}

typedef struct {
    bp_exec x;
    bp_dyn d;
    int steps_run;
} runner;

/* Runs n steps; stores each one's milliseconds in t (when non-NULL). On the GPU a run
 * only queues the step, so each step ends with a read of one value, which waits for it
 * (what the training loop does when it reads the step's statistics). */
static void run_steps(runner *r, int n, double *t) {
    bp_err e;
    for (int i = 0; i < n; i++) {
        r->d.step++;
        double t0 = now_ms();
        if (bp_exec_run(&r->x, &r->x.plan->train, &r->d, &e)) die(2, e.msg);
        float one;
        if (r->x.target == BP_TARGET_CUDA && bp_exec_get_f32(&r->x, r->x.plan->stats, &one, 1, &e))
            die(2, e.msg);
        if (t) t[i] = now_ms() - t0;
        r->steps_run++;
    }
}

/* Adds median, quartiles, min and the raw times; returns the median. */
static double add_times(cJSON *o, double *t, int n) {
    cJSON_AddItemToObject(o, "times_ms", cJSON_CreateDoubleArray(t, n));
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double med = quantile(t, n, 0.5);
    cJSON_AddNumberToObject(o, "ms_per_step_median", med);
    cJSON_AddNumberToObject(o, "ms_per_step_q1", quantile(t, n, 0.25));
    cJSON_AddNumberToObject(o, "ms_per_step_q3", quantile(t, n, 0.75));
    cJSON_AddNumberToObject(o, "ms_per_step_min", n ? t[0] : NAN);
    return med;
}

/* Runs one more step and returns its batch-mean loss, from the statistics (zeroed
 * before it): a NaN here means the timed steps were not real training. */
static double last_loss(runner *r) {
    bp_err e;
    const bp_plan *p = r->x.plan;
    float zero[BP_NSTATS] = {0}, st[BP_NSTATS];
    if (bp_exec_put_f32(&r->x, p->stats, zero, BP_NSTATS, &e)) die(2, e.msg);
    run_steps(r, 1, NULL);
    if (bp_exec_get_f32(&r->x, p->stats, st, BP_NSTATS, &e)) die(2, e.msg);
    return st[BP_STAT_LOSS] / r->d.nb;
}

/* A whole number from lo to hi, or exit 1 saying which option is wrong. */
static long number(const char *flag, const char *v, long lo, long hi) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "bench_step: %s takes a whole number from %ld to %ld, not '%s'\n", flag, lo, hi, v);
        exit(1);
    }
    return n;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_step MODEL.bp brainprop|ebp [--steps N] [--warmup N] [--batch B] "
                    "[--seed S] [--target cpu|cuda] [--precision ieee|tf32|3xtf32] [--no-sgemm] [--no-cold] "
                    "[--layers-json PATH] [--serve]\n");
    exit(1);
}

int main(int argc, char **argv) {
    bp_tune_process(argv); /* the same OpenBLAS kernels and OpenMP settings as bpc */
    if (argc < 3) usage();
    const char *model = argv[1], *rule_s = argv[2], *layers_json = NULL;
    int steps = 20, warmup = 3, batch = 0, do_sgemm = 1, do_cold = 1, serve = 0;
    unsigned long long seed = 1;
    bp_target target = BP_TARGET_CPU;
    const char *precision = NULL;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--steps") && more) steps = (int)number(a, argv[++i], 1, 1000000);
        else if (!strcmp(a, "--warmup") && more) warmup = (int)number(a, argv[++i], 0, 1000000);
        else if (!strcmp(a, "--batch") && more) batch = (int)number(a, argv[++i], 1, 65536);
        else if (!strcmp(a, "--seed") && more) seed = (unsigned long long)number(a, argv[++i], 0, LONG_MAX);
        else if (!strcmp(a, "--layers-json") && more) layers_json = argv[++i];
        else if (!strcmp(a, "--target") && more) {
            const char *t = argv[++i];
            if (!strcmp(t, "cpu")) target = BP_TARGET_CPU;
            else if (!strcmp(t, "cuda")) target = BP_TARGET_CUDA;
            else die(1, "--target is cpu or cuda");
        }
        else if (!strcmp(a, "--precision") && more) precision = argv[++i];
        else if (!strcmp(a, "--no-sgemm")) do_sgemm = 0;
        else if (!strcmp(a, "--no-cold")) do_cold = 0;
        else if (!strcmp(a, "--serve")) serve = 1;
        else usage();
    }
    if (steps < 1 || warmup < 0) die(1, "--steps must be >= 1 and --warmup >= 0");
    bp_rule rule;
    if (!strcmp(rule_s, "brainprop")) rule = BP_RULE_BRAINPROP;
    else if (!strcmp(rule_s, "ebp")) rule = BP_RULE_EBP;
    else die(1, "RULE must be brainprop or ebp");

    /* bpc compile: front end (parse, checks, shapes), then plan and C source */
    double t0 = now_ms();
    int nerr = 0, ioerr = 0;
    bp_ir *ir = bp_frontend_file(model, stderr, &nerr, &ioerr);
    if (!ir) die(1, "the model did not compile");
    if (precision && bp_precision_parse(precision, &ir->train.precision))
        die(1, "--precision is ieee, tf32 or 3xtf32");
    double frontend_ms = now_ms() - t0;
    t0 = now_ms();
    bp_plan *p = bp_plan_build(ir, rule, batch);
    if (!p) die(2, "out of memory building the plan");
    char *src = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&src, &len);
    if (!mf || bp_emit(mf, p, target == BP_TARGET_CUDA ? "cuda" : "c") != 0 || fclose(mf) != 0)
        die(2, "out of memory emitting the source");
    double codegen_ms = now_ms() - t0;
    free(src);
    int nb = p->batch;
    if (layers_json) write_layers_json(layers_json, ir, rule_s, nb);

    /* JIT, cold: in a child process (fork; no OpenMP region has run yet), with a fresh
     * empty cache folder; warm: this process loads the object the child left in that
     * cache, as a second run of bpc would. The JIT loads objects RTLD_NODELETE, so
     * timing both in one process would measure a dlopen of an already loaded object. */
    bp_err e;
    runner r = {0};
    double jit_cold_ms = NAN, jit_warm_ms;
    char cache[] = "/tmp/bpc-bench-cache.XXXXXX";
    if (do_cold) {
        if (!mkdtemp(cache)) die(2, "cannot create a temporary cache folder");
        setenv("XDG_CACHE_HOME", cache, 1);
        jit_cold_ms = cold_open_ms(p, target);
    }
    t0 = now_ms();
    if (bp_exec_open(&r.x, p, target, &e)) die(2, e.msg);
    jit_warm_ms = now_ms() - t0;
    if (do_cold) nftw(cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* the object stays mapped */

    if (bp_exec_init_params(&r.x, seed, &e)) die(2, e.msg);
    long xb = (long)nb * p->x_bytes;
    unsigned char *xs = malloc((size_t)xb);
    int *labels = malloc(sizeof *labels * (size_t)nb);
    if (!xs || !labels) die(2, "out of memory");
    for (long i = 0; i < xb; i++) xs[i] = (unsigned char)bp_rand_u32(seed, 0, 0, 99u, (unsigned)i);
    for (int b = 0; b < nb; b++) labels[b] = (b * 7) % p->classes;
    if (r.x.be->put(&r.x, BP_ARENA_X, 0, xs, xb, &e)) die(2, e.msg);
    if (r.x.be->put(&r.x, BP_ARENA_I, p->labels, labels, nb, &e)) die(2, e.msg);
    free(xs);
    free(labels);
    r.d = (bp_dyn){.lr = ir->train.lr, .nb = nb, .step = 0, .fix_actions = 0, .seed = seed};
    run_steps(&r, warmup, NULL);

    cJSON *o = cJSON_CreateObject();
    if (!o) die(2, "out of memory");
    cJSON_AddStringToObject(o, "model", ir->name);
    cJSON_AddStringToObject(o, "rule", rule_s);
    cJSON_AddStringToObject(o, "target", target == BP_TARGET_CUDA ? "cuda" : "cpu");
    cJSON_AddStringToObject(o, "inputs", "synthetic");
    cJSON_AddNumberToObject(o, "batch", nb);
    cJSON_AddNumberToObject(o, "threads", omp_get_max_threads());
    const char *core = openblas_get_corename();
    cJSON_AddStringToObject(o, "openblas_core", core ? core : "?");
    /* what bp_tune_process set (or the user did): bench/run.py gives PyTorch the same */
    cJSON *env = cJSON_AddObjectToObject(o, "env");
    const char *names[] = {"OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "OMP_NUM_THREADS"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v) cJSON_AddStringToObject(env, names[i], v);
    }
    cJSON_AddNumberToObject(o, "macs_per_sample", (double)ir->macs);
    cJSON_AddNumberToObject(o, "params", (double)ir->params);
    cJSON_AddNumberToObject(o, "frontend_ms", frontend_ms);
    cJSON_AddNumberToObject(o, "codegen_ms", codegen_ms);
    cJSON_AddNumberToObject(o, "bpc_compile_ms", frontend_ms + codegen_ms);
    if (do_cold) cJSON_AddNumberToObject(o, "jit_cold_ms", jit_cold_ms);
    else cJSON_AddNullToObject(o, "jit_cold_ms");
    cJSON_AddNumberToObject(o, "jit_warm_ms", jit_warm_ms);
    cJSON_AddNumberToObject(o, "warmup_steps", warmup);
    double flop_per_step = 3.0 * 2.0 * (double)ir->macs * nb;

    if (serve) {
        emit(o);
        char line[64];
        while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4)) {
            int n = atoi(line);
            if (n < 1) die(1, "--serve: expected a number of steps or 'quit'");
            double *t = malloc(sizeof *t * (size_t)n);
            if (!t) die(2, "out of memory");
            run_steps(&r, n, t);
            cJSON *a = cJSON_CreateObject();
            cJSON_AddItemToObject(a, "times_ms", cJSON_CreateDoubleArray(t, n));
            emit(a);
            free(t);
        }
        o = cJSON_CreateObject();
    } else {
        double *t = malloc(sizeof *t * (size_t)steps);
        if (!t) die(2, "out of memory");
        run_steps(&r, steps, t);
        double med = add_times(o, t, steps);
        cJSON_AddNumberToObject(o, "gflops", flop_per_step / (med * 1e-3) / 1e9);
        free(t);
    }
    cJSON_AddNumberToObject(o, "flop_per_step", flop_per_step);
    cJSON_AddNumberToObject(o, "peak_rss_mb", peak_rss_mb());
    cJSON_AddNumberToObject(o, "loss", last_loss(&r));
    cJSON_AddNumberToObject(o, "steps_run", r.steps_run);
    if (do_sgemm && target == BP_TARGET_CPU) {
        cJSON_AddNumberToObject(o, "sgemm_n", SGEMM_N);
        cJSON_AddNumberToObject(o, "sgemm_gflops", sgemm_gflops(SGEMM_N));
    } else {
        cJSON_AddNullToObject(o, "sgemm_gflops");
    }
    emit(o);

    bp_exec_close(&r.x);
    bp_plan_free(p);
    bp_ir_free(ir);
    return 0;
}
