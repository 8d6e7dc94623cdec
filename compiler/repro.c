/* repro.c: `bpc repro`: runs a grid of models x rules x seeds, one resumable run folder
 * per cell, and writes GRID_DIR/results.md, a table like the paper's (test accuracy
 * mean (std), epochs to the best validation accuracy, seconds per epoch) with the
 * machine, the date and the command beside it, so that the paper's experiments are
 * one command that can be stopped and continued. See repro.h.
 */
#include "repro.h"
#include "dist.h"
#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "checkpoint.h"
#include "cli.h"
#include "frontend.h"
#include "jit_cuda.h"
#include "plot.h"
#include "files.h"
#include "safetensors.h"
#include "train.h"

static const char *repro_usage =
    "usage: bpc repro --models M1,M2 [--rules brainprop,ebp] [--seeds 1,2,3] --out GRID_DIR\n"
    "                 [--data DIR] [--epochs N] [--lr X] [--limit N] [--test-limit N]\n"
    "                 [--val N|F|test] [--target cpu|cuda|auto] [--precision P]\n"
    "                 [--progress|--no-progress]\n"
    "  a model is a .bp file or a name of the shipped models (mnist_conv); each (model, rule, seed) is\n"
    "  the run folder GRID_DIR/MODEL-RULE-seedS; run the same command again to continue;\n"
    "  several copies of the command share the grid (a run in training is skipped)\n";

#define MAXL 64 /* models, rules, seeds: at most this many each */

/* One cell's outcome, from its summary.json. */
typedef struct {
    char dir[4200];
    int state;             /* 0 pending, 1 done, 2 failed */
    double test_acc, spe, wall;
    int best_epoch, epochs_run;
    char stopped[32], val[32], dataset[64];
    long train_images, val_images, test_images;
} cell;

static int usage_error(const char *fmt, const char *what) {
    fprintf(stderr, "bpc: error: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n%s", repro_usage);
    return 1;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Splits a comma-separated list into items (pointers into a copy); returns the count,
 * or -1 after a message (empty item, too many, repeated). */
static int split_list(const char *flag, char *s, char **items) {
    int n = 0;
    for (char *p = s;;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (!*p) return usage_error("%s has an empty item", flag), -1;
        if (n == MAXL) return usage_error("%s takes at most 64 items", flag), -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(items[i], p)) {
                fprintf(stderr, "bpc: error: %s names '%s' twice\n", flag, p);
                return -1;
            }
        items[n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

/* What a model argument needs appended to be a file name: "" when it ends in .bp. */
static const char *bp_ext(const char *m) {
    size_t n = strlen(m);
    return n > 3 && !strcmp(m + n - 3, ".bp") ? "" : ".bp";
}

/* A model argument: a .bp file, else models/NAME.bp here, else beside bpc (the source
 * tree's models/ above build/bpc or build/san/bpc, or an installed bpc's
 * PREFIX/share/bpc/models). */
static int find_model(const char *m, char *out, size_t n) {
    struct stat st;
    if (!stat(m, &st) && S_ISREG(st.st_mode)) { snprintf(out, n, "%s", m); return 0; }
    if (strchr(m, '/')) return -1;
    const char *ext = bp_ext(m);
    snprintf(out, n, "models/%s%s", m, ext);
    if (!stat(out, &st) && S_ISREG(st.st_mode)) return 0;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return -1;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    static const char *const UP[] = {"..", "../..", "../share/bpc"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, n, "%s/%s/models/%s%s", exe, UP[i], m, ext);
        if (!stat(out, &st) && S_ISREG(st.st_mode)) return 0;
    }
    return -1;
}

static const char *jstr(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *j, const char *k, int *ok) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(v)) { *ok = 0; return 0; }
    return v->valuedouble;
}

/* Reads CELL/summary.json (and the seconds in metrics.jsonl) into c. Returns 0; -1
 * when there is none; -2 when it is unreadable (message printed). */
static int read_summary(cell *c) {
    char path[4300], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/summary.json", c->dir);
    if (bp_read_file(path, &buf, &len)) {
        if (errno == ENOENT) return -1;
        fprintf(stderr, "bpc: error: %s: cannot read: %s\n", path, strerror(errno));
        return -2;
    }
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    int ok = cJSON_IsObject(j);
    c->test_acc = jnum(j, "test_acc", &ok);
    c->spe = jnum(j, "seconds_per_epoch", &ok);
    c->best_epoch = (int)jnum(j, "best_epoch", &ok);
    c->epochs_run = (int)jnum(j, "epochs_run", &ok);
    c->train_images = (long)jnum(j, "train_images", &ok);
    c->val_images = (long)jnum(j, "val_images", &ok);
    c->test_images = (long)jnum(j, "test_images", &ok);
    snprintf(c->stopped, sizeof c->stopped, "%s", jstr(j, "stopped"));
    snprintf(c->val, sizeof c->val, "%s", jstr(j, "val"));
    snprintf(c->dataset, sizeof c->dataset, "%s", jstr(j, "dataset"));
    cJSON_Delete(j);
    if (!ok) {
        fprintf(stderr, "bpc: error: %s is not a bpc run summary; that run counts as failed "
                        "(delete the file to train it again)\n", path);
        return -2;
    }
    /* the wall time: the seconds of every epoch (training and evaluation) */
    c->wall = 0;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->dir);
    if (!bp_read_file(path, &buf, &len)) {
        for (char *l = buf; l < buf + len;) {
            char *nl = memchr(l, '\n', (size_t)(buf + len - l));
            size_t ll = nl ? (size_t)(nl - l) : (size_t)(buf + len - l);
            cJSON *m = cJSON_ParseWithLength(l, ll);
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "seconds");
            if (cJSON_IsNumber(s)) c->wall += s->valuedouble;
            cJSON_Delete(m);
            l = nl ? nl + 1 : buf + len;
        }
        free(buf);
    }
    return 0;
}

/* A finished cell must come from the same model source and data options as this
 * command: its last.safetensors metadata says. Returns 0, or 1 after a message. */
static int check_cell(const cell *c, const char *sha, long limit, long test_limit,
                      const bp_val_spec *val, double lr) {
    char path[4300];
    snprintf(path, sizeof path, "%s/last.safetensors", c->dir);
    bp_st_file f;
    bp_err e;
    if (bp_st_read(path, &f, &e)) return 0; /* nothing to compare with */
    const char *s = bp_st_meta_get(&f, "source_sha256"), *l = bp_st_meta_get(&f, "limit"),
               *t = bp_st_meta_get(&f, "test_limit");
    char what[200] = "";
    if (s && strcmp(s, sha)) snprintf(what, sizeof what, "another source of the model");
    else if (l && limit > 0 && atol(l) != limit) snprintf(what, sizeof what, "--limit %s", atol(l) ? l : "(none)");
    else if (l && limit == 0 && atol(l) != 0) snprintf(what, sizeof what, "--limit %s", l);
    else if (t && test_limit > 0 && atol(t) != test_limit) snprintf(what, sizeof what, "--test-limit %s", atol(t) ? t : "(none)");
    else if (t && test_limit == 0 && atol(t) != 0) snprintf(what, sizeof what, "--test-limit %s", t);
    /* an explicit --val: the cell's held-out count, as the training loop resolved it */
    const char *v = bp_st_meta_get(&f, "val"), *ti = bp_st_meta_get(&f, "train_images");
    if (!what[0] && v && val->mode != BP_VAL_MODEL) {
        int same;
        if (val->mode == BP_VAL_TEST) same = !strcmp(v, "test");
        else if (!strcmp(v, "test")) same = 0;
        else if (val->mode == BP_VAL_COUNT) same = atol(v) == (long)val->value;
        else {
            long avail = (ti ? atol(ti) : 0) + atol(v);
            same = atol(v) == (long)floor(val->value * (double)avail + 0.5);
        }
        if (!same) snprintf(what, sizeof what, !strcmp(v, "test") ? "--val test" : "%s held-out validation images", v);
    }
    const char *l0 = bp_st_meta_get(&f, "lr0");
    if (!what[0] && l0 && lr > 0 && (float)lr != strtof(l0, NULL))
        snprintf(what, sizeof what, "--lr %g", (double)strtof(l0, NULL));
    bp_st_free(&f);
    if (!what[0]) return 0;
    fprintf(stderr, "bpc: error: %s was trained with %s, not as this command asks; run the grid "
                    "with the options it was started with, or choose another --out\n", c->dir, what);
    return 1;
}

static void mean_std(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : NAN;
}

static void fmt_ms(char *b, size_t n, const double *v, int k, int dec, double scale) {
    double m, s;
    if (!k) { snprintf(b, n, "-"); return; }
    mean_std(v, k, &m, &s);
    if (k < 2) snprintf(b, n, "%.*f (-)", dec, m * scale);
    else snprintf(b, n, "%.*f (%.*f)", dec, m * scale, dec, s * scale);
}

static void fmt_wall(char *b, size_t n, double s) {
    long t = (long)(s + 0.5);
    snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* The machine: CPU model, cores, memory, system. */
static void machine(FILE *f, const char *target) {
    char *buf, model[256] = "unknown CPU";
    size_t len;
    if (!bp_read_file("/proc/cpuinfo", &buf, &len)) {
        char *p = strstr(buf, "model name");
        if (p && (p = strchr(p, ':'))) {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            snprintf(model, sizeof model, "%.*s", (int)strcspn(p, "\n"), p);
        }
        free(buf);
    }
    double gib = 0;
    if (!bp_read_file("/proc/meminfo", &buf, &len)) {
        char *p = strstr(buf, "MemTotal:");
        if (p) gib = atof(p + 9) / (1024.0 * 1024.0);
        free(buf);
    }
    struct utsname u;
    int un = uname(&u) == 0;
    fprintf(f, "- Machine: %s, %ld cores online, %.1f GiB memory; %s %s (%s); target %s",
            model, sysconf(_SC_NPROCESSORS_ONLN), gib, un ? u.sysname : "?", un ? u.release : "?",
            un ? u.machine : "?", target);
    const char *omp = getenv("OMP_NUM_THREADS");
    if (omp) fprintf(f, ", OMP_NUM_THREADS=%s", omp);
    fprintf(f, "\n");
}

static int write_results(const char *grid, cell *cells, char **names, int nm, char **rules,
                         int nr, char **seeds, int ns, const char *cmd, const char *target,
                         int *plotted) {
    char *buf = NULL, path[4300];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return -1;
    int ndone = 0, total = nm * nr * ns;
    for (int i = 0; i < total; i++) ndone += cells[i].state == 1;
    fprintf(f, "# bpc repro: %d model%s x %d rule%s x %d seed%s\n\n", nm, nm == 1 ? "" : "s", nr,
            nr == 1 ? "" : "s", ns, ns == 1 ? "" : "s");
    if (ndone < total)
        fprintf(f, "**Incomplete: %d of %d runs done.** Run the command below again to continue.\n\n",
                ndone, total);
    fprintf(f, "| model | rule | runs | test accuracy (%%) | epochs to best validation | "
               "epochs run | s / epoch | wall time |\n|---|---|---|---|---|---|---|---|\n");
    const cell *any = NULL;
    for (int m = 0; m < nm; m++)
        for (int r = 0; r < nr; r++) {
            double acc[MAXL], be[MAXL], er[MAXL], spe[MAXL], wall = 0;
            int k = 0;
            for (int s = 0; s < ns; s++) {
                cell *c = &cells[(m * nr + r) * ns + s];
                if (c->state != 1) continue;
                any = c;
                acc[k] = c->test_acc;
                be[k] = c->best_epoch;
                er[k] = c->epochs_run;
                spe[k] = c->spe;
                wall += c->wall;
                k++;
            }
            char a[64], b[64], e[64], sp[64], w[32];
            fmt_ms(a, sizeof a, acc, k, 2, 100);
            fmt_ms(b, sizeof b, be, k, 1, 1);
            fmt_ms(e, sizeof e, er, k, 1, 1);
            double ms = 0, sd;
            if (k) mean_std(spe, k, &ms, &sd);
            snprintf(sp, sizeof sp, k ? "%.2f" : "-", ms);
            fmt_wall(w, sizeof w, wall);
            fprintf(f, "| %s | %s | %d of %d | %s | %s | %s | %s | %s |\n", names[m],
                    !strcmp(rules[r], "ebp") ? "EBP" : "BrainProp", k, ns, a, b, e, sp, k ? w : "-");
        }
    fprintf(f, "\nEach entry: mean (sample standard deviation) over the seeds; (-) where only one "
               "run is done. The test accuracy is that of the weights of the epoch with the best "
               "validation accuracy");
    if (any)
        fprintf(f, ", on %ld %s test images; %ld training images, validation on %s (%ld images)",
                any->test_images, any->dataset, any->train_images,
                !strcmp(any->val, "test") ? "the test split (the paper's protocol: optimistic)"
                                          : "images held out from the training images",
                any->val_images);
    fprintf(f, ". s / epoch: training time per epoch, without evaluation; wall time: all epochs of "
               "all seeds, evaluation included.\n\n");
    fprintf(f, "| run | seed | test accuracy (%%) | best epoch | epochs run | stopped | s / epoch | wall time |\n"
               "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < total; i++) {
        const cell *c = &cells[i];
        const char *base = strrchr(c->dir, '/');
        base = base ? base + 1 : c->dir;
        char w[32];
        fmt_wall(w, sizeof w, c->wall);
        if (c->state == 1)
            fprintf(f, "| %s | %s | %.2f | %d | %d | %s | %.2f | %s |\n", base, seeds[i % ns],
                    c->test_acc * 100, c->best_epoch, c->epochs_run,
                    !strcmp(c->stopped, "early_stop") ? "early stop" : "max epochs", c->spe, w);
        else
            fprintf(f, "| %s | %s | %s | | | | | |\n", base, seeds[i % ns], c->state == 2 ? "failed" : "pending");
    }
    int np = 0;
    for (int m = 0; m < nm; m++) np += plotted[m];
    if (np) {
        fprintf(f, "\nTest accuracy per epoch (`bpc plot`; the open circle is the tested epoch):\n\n");
        for (int m = 0; m < nm; m++)
            if (plotted[m]) fprintf(f, "![%s](plot-%s.svg)\n", names[m], names[m]);
    }
    time_t t = time(NULL);
    char when[64], cwd[4096];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
    fprintf(f, "\n");
    machine(f, target);
    fprintf(f, "- Date: %s\n- bpc %s\n- Command (in %s):\n\n```\n%s\n```\n", when, BPC_VERSION,
            getcwd(cwd, sizeof cwd) ? cwd : "?", cmd);
    if (fclose(f)) { free(buf); return -1; }
    snprintf(path, sizeof path, "%s/results.md", grid);
    int bad = bp_cli_write(path, buf, len) != 0; /* workers may race: unique temporaries */
    free(buf);
    return bad ? -1 : 0;
}

int bp_cmd_repro(int argc, char **argv) {
    const char *models = NULL, *rules_s = NULL, *seeds_s = NULL, *grid = NULL, *data = NULL,
               *target_s = NULL, *val_s = NULL, *prec_s = NULL;
    long epochs = 0, limit = 0, test_limit = 0;
    double lr = 0;
    int progress = -1;
    static const char *const strs[] = {"--models", "--rules", "--seeds", "--out", "--data", "--target", "--val",
                                       "--precision"};
    const char **sdst[] = {&models, &rules_s, &seeds_s, &grid, &data, &target_s, &val_s, &prec_s};
    static const char *const nums[] = {"--epochs", "--limit", "--test-limit"};
    long *ndst[] = {&epochs, &limit, &test_limit};
    int lr_seen = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int k;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(repro_usage, stdout); return 0; }
        if (!strcmp(a, "--progress")) { progress = 1; continue; }
        if (!strcmp(a, "--no-progress")) { progress = 0; continue; }
        for (k = 0; k < 8 && strcmp(a, strs[k]); k++) {}
        int isnum = 0, islr = !strcmp(a, "--lr");
        if (k == 8) {
            for (k = 0; k < 3 && strcmp(a, nums[k]); k++) {}
            isnum = k < 3;
            if (!isnum && !islr) {
                if (a[0] == '-') return usage_error("unknown option '%s'", a);
                return usage_error("unexpected argument '%s' (models go in --models)", a);
            }
        }
        if (i + 1 >= argc) return usage_error("%s needs a value", a);
        const char *v = argv[++i];
        if (islr) {
            char *end;
            errno = 0;
            lr = strtod(v, &end);
            if (lr_seen++) return usage_error("%s is given twice", a);
            if (errno || end == v || *end || !(lr > 0 && lr <= 1e6)) return usage_error("--lr takes a number above 0, not '%s'", v);
        } else if (isnum) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (*ndst[k]) return usage_error("%s is given twice", a);
            if (errno || end == v || *end || n < 1 || n > 1000000000) {
                fprintf(stderr, "bpc: error: %s takes a whole number from 1, not '%s'\n", a, v);
                return 1;
            }
            *ndst[k] = n;
        } else {
            if (*sdst[k]) return usage_error("%s is given twice", a);
            *sdst[k] = v;
        }
    }
    if (!models) return usage_error("%s", "--models is required (a list: mnist_dense,mnist_conv)");
    if (!grid) return usage_error("%s", "--out GRID_DIR is required (the folder of the grid's runs)");
    bp_val_spec val = {0};
    if (val_s && bp_val_parse(val_s, &val))
        return usage_error("--val takes 'test', a number of images (5000) or a fraction (0.1), not '%s'", val_s);
    bp_precision prec = BP_PREC_IEEE;
    if (prec_s && bp_precision_parse(prec_s, &prec))
        return usage_error("--precision is ieee, tf32 or 3xtf32, not '%s'", prec_s);
    bp_target target;
    if (!target_s || !strcmp(target_s, "auto")) target = bp_cuda_available() ? BP_TARGET_CUDA : BP_TARGET_CPU;
    else if (!strcmp(target_s, "cpu") || !strcmp(target_s, "c")) target = BP_TARGET_CPU;
    else if (!strcmp(target_s, "cuda")) target = BP_TARGET_CUDA;
    else return usage_error("--target is cpu, cuda or auto, not '%s'", target_s);

    char mcopy[4096], rcopy[1024], scopy[4096];
    char *mlist[MAXL], *rules[MAXL], *seeds[MAXL];
    snprintf(mcopy, sizeof mcopy, "%s", models);
    snprintf(rcopy, sizeof rcopy, "%s", rules_s ? rules_s : "brainprop,ebp");
    snprintf(scopy, sizeof scopy, "%s", seeds_s ? seeds_s : "1");
    int nm = split_list("--models", mcopy, mlist);
    if (nm < 0) return 1;
    int nr = split_list("--rules", rcopy, rules);
    if (nr < 0) return 1;
    int ns = split_list("--seeds", scopy, seeds);
    if (ns < 0) return 1;
    for (int r = 0; r < nr; r++)
        if (strcmp(rules[r], "brainprop") && strcmp(rules[r], "ebp"))
            return usage_error("--rules takes brainprop and ebp, not '%s'", rules[r]);
    unsigned long long seedv[MAXL];
    for (int s = 0; s < ns; s++) {
        char *end;
        errno = 0;
        seedv[s] = strtoull(seeds[s], &end, 10);
        if (errno || !(*seeds[s] >= '0' && *seeds[s] <= '9') || *end)
            return usage_error("--seeds takes unsigned integers below 2^64, not '%s'", seeds[s]);
        for (int k = 0; k < s; k++)
            if (seedv[k] == seedv[s]) return usage_error("--seeds names seed %s twice", seeds[s]);
    }

    /* the models, all checked before anything trains */
    bp_ir *irs[MAXL] = {0};
    char *names[MAXL], shas[MAXL][65];
    int rc = 0;
    for (int m = 0; m < nm && !rc; m++) {
        char path[4200];
        if (find_model(mlist[m], path, sizeof path)) {
            fprintf(stderr, "bpc: error: --models: no model '%s' (neither a .bp file nor "
                            "models/%s%s)\n", mlist[m], mlist[m], bp_ext(mlist[m]));
            rc = 1;
            break;
        }
        int nerr = 0, io = 0;
        irs[m] = bp_frontend_file(path, stderr, &nerr, &io);
        if (!irs[m]) {
            if (nerr) fprintf(stderr, "%d error%s\n", nerr, nerr == 1 ? "" : "s");
            rc = io ? 2 : 1;
            break;
        }
        names[m] = irs[m]->name;
        bp_err e;
        if (bp_sha256_file(irs[m]->path, shas[m], &e)) { bp_cli_report(2, &e); rc = 2; break; }
        for (int j = 0; j < m; j++)
            if (!strcmp(names[j], names[m])) {
                fprintf(stderr, "bpc: error: --models: %s and %s are both model '%s'\n",
                        irs[j]->path, irs[m]->path, names[m]);
                rc = 1;
            }
    }
    int total = nm * nr * ns;
    cell *cells = rc ? NULL : calloc((size_t)total, sizeof *cells);
    /* the command as typed: bpc repro ARGS, quoted for a shell where needed */
    char **full = rc ? NULL : malloc(sizeof *full * (size_t)(argc + 2));
    char *cmd = NULL;
    if (full) {
        full[0] = "bpc";
        full[1] = "repro";
        for (int i = 0; i < argc; i++) full[i + 2] = argv[i];
        cmd = bp_cli_command_line(argc + 2, full);
        free(full);
    }
    if (!rc && (!cells || !cmd)) { fprintf(stderr, "bpc: error: out of memory\n"); rc = 2; }
    if (!rc && bp_mkdirs(grid)) {
        fprintf(stderr, "bpc: error: %s: cannot create the grid folder: %s\n", grid, strerror(errno));
        rc = 2;
    }
    if (rc) goto out;

    /* under mpirun: rank k trains the runs k, k + ranks, ..., each in one process */
    int ranks = bp_dist_size(), me = bp_dist_rank();
    if (me == 0)
        printf("bpc repro: %d run%s (%d model%s x %d rule%s x %d seed%s) in %s, %s target%s\n", total,
               total == 1 ? "" : "s", nm, nm == 1 ? "" : "s", nr, nr == 1 ? "" : "s", ns,
               ns == 1 ? "" : "s", grid, target == BP_TARGET_CUDA ? "cuda" : "cpu",
               ranks > 1 ? ", shared by the ranks" : "");
    fflush(stdout);
    for (int i = 0; i < total; i++)
        snprintf(cells[i].dir, sizeof cells[i].dir, "%s/%s-%s-seed%s", grid, names[i / (nr * ns)],
                 rules[i / ns % nr], seeds[i % ns]);
    int failed = 0, stop = 0, busy = 0;
    for (int m = 0; m < nm && !stop; m++)
        for (int r = 0; r < nr && !stop; r++)
            for (int s = 0; s < ns && !stop; s++) {
                int idx = (m * nr + r) * ns + s;
                cell *c = &cells[idx];
                if (idx % ranks != me) continue;
                int want = epochs > 0 ? (int)epochs : irs[m]->train.epochs;
                int have = read_summary(c);
                if (have == -2) { c->state = 2; failed++; continue; } /* the others still count */
                if (have == 0 && (c->epochs_run >= want || !strcmp(c->stopped, "early_stop"))) {
                    if (check_cell(c, shas[m], limit, test_limit, &val, lr)) { rc = 1; stop = 1; break; }
                    c->state = 1;
                    printf("[%d/%d] %s %s seed %s: done (test accuracy %.4f, epoch %d of %d); skipped\n",
                           idx + 1, total, names[m], rules[r], seeds[s], c->test_acc, c->best_epoch,
                           c->epochs_run);
                    fflush(stdout);
                    continue;
                }
                char last[4300];
                snprintf(last, sizeof last, "%s/last.safetensors", c->dir);
                int resume = exists(last);
                printf("[%d/%d] %s %s seed %s: %s %s\n", idx + 1, total, names[m], rules[r], seeds[s],
                       resume ? "resuming" : "training in", c->dir);
                fflush(stdout);
                bp_train_opts o = {.data_dir = data, .target = target,
                                   .rule = !strcmp(rules[r], "ebp") ? BP_RULE_EBP : BP_RULE_BRAINPROP,
                                   .has_rule = 1, .epochs = (int)epochs, .has_seed = 1,
                                   .seed = seedv[s], .lr = (float)lr, .limit = limit,
                                   .test_limit = test_limit, .val = val,
                                   .out_dir = resume ? NULL : c->dir, .resume = resume ? c->dir : NULL,
                                   .command = cmd, .progress = progress, .log = stdout,
                                   .has_precision = prec_s != NULL, .precision = prec, .single = 1};
                bp_train_result res;
                bp_err e = {{0}};
                int trc = bp_train(irs[m], &o, &res, &e);
                fflush(stdout);
                if (trc == 1 && res.busy) { /* another worker on the same grid has it */
                    printf("[%d/%d] %s %s seed %s: being trained by another process; skipped\n",
                           idx + 1, total, names[m], rules[r], seeds[s]);
                    fflush(stdout);
                    busy++;
                    continue;
                }
                if (trc) bp_cli_report(trc, &e);
                if (trc >= 128 || trc == 1) { rc = trc; stop = 1; break; }
                if (trc) { c->state = 2; failed++; continue; }
                if (read_summary(c)) { c->state = 2; failed++; continue; }
                c->state = 1;
            }
    /* rank 0 writes the table once every rank is done */
    if (ranks > 1) bp_dist_wait_all();
    if (me > 0) goto out;
    /* runs another worker finished meanwhile count as done in the table */
    for (int i = 0; i < total && !stop; i++) {
        cell *c = &cells[i];
        int m = i / (nr * ns), want = epochs > 0 ? (int)epochs : irs[m]->train.epochs;
        if (c->state == 0 && read_summary(c) == 0 &&
            (c->epochs_run >= want || !strcmp(c->stopped, "early_stop")) &&
            check_cell(c, shas[m], limit, test_limit, &val, lr) == 0)
            c->state = 1;
    }
    /* a plot per model of its finished runs, then the table */
    int plotted[MAXL] = {0};
    for (int m = 0; m < nm && rc != 1; m++) {
        const char *runs[MAXL * MAXL];
        int n = 0;
        for (int i = m * nr * ns; i < (m + 1) * nr * ns; i++)
            if (cells[i].state == 1) runs[n++] = cells[i].dir;
        if (!n) continue;
        char out[4300], title[300];
        snprintf(out, sizeof out, "%s/plot-%s.svg", grid, names[m]);
        snprintf(title, sizeof title, "%s: test accuracy per epoch", names[m]);
        if (bp_plot_runs(runs, n, "test_acc", out, title))
            fprintf(stderr, "bpc: warning: no plot for %s (above); the table is written without it\n", names[m]);
        else plotted[m] = 1;
    }
    if (rc != 1 && write_results(grid, cells, names, nm, rules, nr, seeds, ns, cmd,
                                 target == BP_TARGET_CUDA ? "cuda" : "cpu", plotted) && !rc)
        rc = 2;
    if (rc != 1) {
        int done = 0;
        for (int i = 0; i < total; i++) done += cells[i].state == 1;
        printf("bpc repro: %d of %d runs done%s%s; wrote %s/results.md\n", done, total,
               failed ? " (some failed: see above)" : "",
               busy ? " (some are being trained by another process: run the command again "
                      "when it is done)" : "", grid);
    }
    if (rc >= 128) fprintf(stderr, "bpc: the grid is not finished; run the same command again to continue\n");
    if (!rc && failed) rc = 2;
out:
    for (int m = 0; m < nm; m++) bp_ir_free(irs[m]);
    free(cells);
    free(cmd);
    return rc;
}
