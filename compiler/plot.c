/* plot.c: `bpc plot`: several runs' per-epoch curves overlaid in one SVG or PNG chart,
 * drawn by gnuplot when it is installed and by the small SVG writer below otherwise,
 * so that a comparison such as EBP against BrainProp needs nothing beyond bpc.
 * See plot.h for the command and its exit statuses.
 */
#include "plot.h"
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cli.h"
#include "files.h"
#include "safetensors.h"

#define MAX_TICKS 50 /* per axis */

static const char *plot_usage =
    "usage: bpc plot RUN_DIR... [-o FILE.svg|FILE.png] "
    "[--metric test_acc|val_acc|train_acc|train_loss|train_reward|align]\n";

/* align: the feedback alignment angles (runtime/align.h), two curves per weight layer:
 * the update angle and the matrix angle of each row of the epoch's "align" member. */
static const char *const METRICS[] = {"test_acc", "val_acc", "train_acc", "train_loss", "train_reward",
                                      "align"};
static const char *const METRIC_NAMES[] = {"test accuracy", "validation accuracy",
                                           "training accuracy", "training loss",
                                           "training reward", "feedback angle (degrees)"};
#define NMETRICS 6
#define ALIGN_METRIC 5

/* One run: its label and the (epoch, value) points of one metric. */
typedef struct {
    const char *dir;
    char label[512];
    char model[128], rule[64], seed[64];
    double *x, *y;
    int n;
    int best_epoch; /* the tested epoch (last line's best_epoch), 0 if unknown */
    int layer;      /* align: the weight layer of the curve; -1 for a plain metric */
    const char *angle; /* align: "update_angle" or "weight_angle" */
} series;

static void copy(char *dst, size_t n, const char *s) { snprintf(dst, n, "%s", s ? s : ""); }

static const char *rule_label(const char *r) {
    if (!strcmp(r, "brainprop")) return "BrainProp";
    if (!strcmp(r, "ebp")) return "EBP";
    return r;
}

/* Model, rule and seed of a run: summary.json, else the metadata of last or best. */
static void run_identity(series *s) {
    char path[4200], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/summary.json", s->dir);
    if (!bp_read_file(path, &buf, &len)) {
        cJSON *j = cJSON_ParseWithLength(buf, len);
        free(buf);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "rule");
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "seed");
        if (cJSON_IsString(m) && cJSON_IsString(r)) {
            copy(s->model, sizeof s->model, m->valuestring);
            copy(s->rule, sizeof s->rule, r->valuestring);
            if (cJSON_IsNumber(sd)) snprintf(s->seed, sizeof s->seed, "%.0f", sd->valuedouble);
        }
        cJSON_Delete(j);
        if (s->model[0]) return;
    }
    static const char *const ck[] = {"last.safetensors", "best.safetensors"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, ck[k]);
        if (access(path, R_OK)) continue;
        bp_st_file f;
        bp_err e;
        if (bp_st_read(path, &f, &e)) continue;
        const char *m = bp_st_meta_get(&f, "model"), *r = bp_st_meta_get(&f, "rule");
        if (m && r) {
            copy(s->model, sizeof s->model, m);
            copy(s->rule, sizeof s->rule, r);
            copy(s->seed, sizeof s->seed, bp_st_meta_get(&f, "seed"));
        }
        bp_st_free(&f);
        if (s->model[0]) return;
    }
}

/* The folder's last path component, without trailing slashes. */
static void base_name(const char *dir, char *out, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && dir[b - 1] != '/') b--;
    snprintf(out, n, "%.*s", (int)(len - b), dir + b);
}

/* The angle `which` of layer `layer` in an epoch line's "align" rows, or NULL. */
static const cJSON *align_value(const cJSON *line, int layer, const char *which) {
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(line, "align")) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(row, "layer");
        if (cJSON_IsNumber(k) && k->valueint == layer) return cJSON_GetObjectItemCaseSensitive(row, which);
    }
    return NULL;
}

/* Reads RUN/metrics.jsonl into s (for align: the curve s->layer, s->angle; epochs
 * without that angle are left out). Returns 0, or the exit status after a message. */
static int load_series(series *s, const char *metric) {
    struct stat st;
    if (stat(s->dir, &st)) {
        fprintf(stderr, "bpc: error: %s: no such run folder\n", s->dir);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bpc: error: %s is not a run folder (bpc plot takes the folders given "
                        "to `bpc train --out`)\n", s->dir);
        return 1;
    }
    char path[4200], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/metrics.jsonl", s->dir);
    if (bp_read_file(path, &buf, &len)) {
        int err = errno;
        if (err == ENOENT)
            fprintf(stderr, "bpc: error: %s has no metrics.jsonl: is it a run folder of `bpc "
                            "train --out`?\n", s->dir);
        else
            fprintf(stderr, "bpc: error: %s: %s\n", path, strerror(err));
        return err == ENOENT ? 1 : 2;
    }
    int cap = 0, lineno = 0, rc = 0;
    for (char *l = buf; l < buf + len && !rc;) {
        char *nl = memchr(l, '\n', (size_t)(buf + len - l));
        size_t ll = nl ? (size_t)(nl - l) : (size_t)(buf + len - l);
        lineno++;
        char *next = nl ? nl + 1 : buf + len;
        size_t k = 0;
        while (k < ll && strchr(" \t\r", l[k])) k++;
        if (k == ll) { l = next; continue; }
        cJSON *j = cJSON_ParseWithLength(l, ll);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            /* a last line cut short by a kill: the epochs before it stand */
            if (!nl && l[k] == '{') break;
            fprintf(stderr, "bpc: error: %s:%d: not a JSON object\n", path, lineno);
            rc = 2;
            break;
        }
        const cJSON *ep = cJSON_GetObjectItemCaseSensitive(j, "epoch");
        const cJSON *v = s->layer >= 0 ? align_value(j, s->layer, s->angle)
                                       : cJSON_GetObjectItemCaseSensitive(j, metric);
        const cJSON *be = cJSON_GetObjectItemCaseSensitive(j, "best_epoch");
        if (s->layer >= 0 && cJSON_IsNumber(ep) && !cJSON_IsNumber(v)) { /* null: no angle */
            cJSON_Delete(j);
            l = next;
            continue;
        }
        if (!cJSON_IsNumber(ep) || !cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            fprintf(stderr, "bpc: error: %s:%d: expected numbers \"epoch\" and \"%s\"\n", path,
                    lineno, metric);
            cJSON_Delete(j);
            rc = 2;
            break;
        }
        if (s->n == cap) {
            cap = cap ? cap * 2 : 64;
            double *nx = realloc(s->x, sizeof *nx * (size_t)cap);
            if (nx) s->x = nx;
            double *ny = realloc(s->y, sizeof *ny * (size_t)cap);
            if (ny) s->y = ny;
            if (!nx || !ny) { fprintf(stderr, "bpc: error: out of memory\n"); cJSON_Delete(j); rc = 2; break; }
        }
        s->x[s->n] = ep->valuedouble;
        s->y[s->n] = v->valuedouble;
        s->n++;
        s->best_epoch = cJSON_IsNumber(be) ? be->valueint : 0;
        cJSON_Delete(j);
        l = next;
    }
    free(buf);
    if (rc) return rc;
    if (s->n == 0) {
        fprintf(stderr, "bpc: error: %s is empty: the run has not finished an epoch yet\n", path);
        return 1;
    }
    run_identity(s);
    return 0;
}

/* "MODEL RULE", made unique with the seed, then the folder name (the curves of one run
 * folder, align's, share theirs). */
static void make_labels(series *s, int n) {
    for (int i = 0; i < n; i++) {
        if (s[i].model[0]) snprintf(s[i].label, sizeof s[i].label, "%s %s", s[i].model, rule_label(s[i].rule));
        else base_name(s[i].dir, s[i].label, sizeof s[i].label);
    }
    for (int pass = 0; pass < 2; pass++) {
        int dup[256] = {0};
        for (int i = 0; i < n && i < 256; i++)
            for (int j = 0; j < n && j < 256; j++)
                if (i != j && strcmp(s[i].dir, s[j].dir) && !strcmp(s[i].label, s[j].label)) dup[i] = 1;
        for (int i = 0; i < n && i < 256; i++) {
            if (!dup[i]) continue;
            char extra[300], b[256];
            if (pass == 0 && s[i].seed[0] && s[i].model[0]) snprintf(extra, sizeof extra, " seed %s", s[i].seed);
            else if (pass == 1) { base_name(s[i].dir, b, sizeof b); snprintf(extra, sizeof extra, " (%s)", b); }
            else continue;
            size_t l = strlen(s[i].label);
            snprintf(s[i].label + l, sizeof s[i].label - l, "%s", extra);
        }
    }
}

/* ---- the built-in SVG writer --------------------------------------------------------- */

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

/* A step of 1, 2 or 5 times a power of ten that cuts `range` into about `n` parts. */
static double nice_step(double range, int n) {
    double raw = range / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

static void tick_label(char *b, size_t n, double v, double step) {
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(b, n, "%.*f", dec, v);
}

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                     "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                     "#bcbd22", "#17becf"};

static void write_svg(FILE *f, const series *s, int n, int mi, const char *title) {
    int pct = strstr(METRICS[mi], "_acc") != NULL;
    double scale = pct ? 100 : 1;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < s[i].n; k++) {
            double x = s[i].x[k], y = s[i].y[k] * scale;
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
        }
    if (x1 - x0 < 1) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-9) {
        double d = fabs(y0) * 0.05 + (pct ? 1 : 0.01);
        y0 -= d; y1 += d;
    }
    double xs = nice_step(x1 - x0, 8);
    if (xs < 1) xs = 1;
    double ys = nice_step(y1 - y0, 6);
    y0 = floor(y0 / ys + 1e-9) * ys;
    y1 = ceil(y1 / ys - 1e-9) * ys;
    if (pct && y1 > 100 && y1 - ys < 100) y1 = 100;

    const double W = 800, L = 80, R = 770, T = 50, B = 410;
    const double H = 490 + 20.0 * n;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * (R - L))
#define PY(v) (B - ((v) - y0) / (y1 - y0) * (B - T))
    char ylab[128];
    snprintf(ylab, sizeof ylab, "%s%s", METRIC_NAMES[mi], pct ? " (%)" : "");
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"13\">\n",
            W, H, W, H);
    fprintf(f, "<title>");
    xml_text(f, title);
    fprintf(f, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", (L + R) / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n<g stroke=\"#dddddd\" stroke-width=\"1\">\n");
    /* the grid, then the ticks' labels */
    double xt0 = ceil(x0 / xs - 1e-9) * xs;
    /* ticks by index, at most MAX_TICKS: v += step would stall where the step is below
     * the spacing of doubles (huge losses) */
    for (int k = 0; k <= MAX_TICKS && xt0 + k * xs <= x1 + xs * 1e-6; k++) {
        double v = xt0 + k * xs;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", PX(v), T, PX(v), B);
    }
    for (int k = 0; k <= MAX_TICKS && y0 + k * ys <= y1 + ys * 1e-6; k++) {
        double v = y0 + k * ys;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n", L, PY(v), R, PY(v));
    }
    fprintf(f, "</g>\n<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
               "stroke=\"black\"/>\n", L, T, R - L, B - T);
    char b[64];
    for (int k = 0; k <= MAX_TICKS && xt0 + k * xs <= x1 + xs * 1e-6; k++) {
        double v = xt0 + k * xs;
        tick_label(b, sizeof b, v, xs);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.0f\" x2=\"%.2f\" y2=\"%.0f\" stroke=\"black\"/>"
                   "<text x=\"%.2f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n",
                PX(v), B, PX(v), B + 5, PX(v), B + 20, b);
    }
    for (int k = 0; k <= MAX_TICKS && y0 + k * ys <= y1 + ys * 1e-6; k++) {
        double v = y0 + k * ys;
        tick_label(b, sizeof b, v, ys);
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.2f\" x2=\"%.0f\" y2=\"%.2f\" stroke=\"black\"/>"
                   "<text x=\"%.0f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n",
                L - 5, PY(v), L, PY(v), L - 8, PY(v) + 4, b);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">epoch</text>\n", (L + R) / 2, B + 42);
    fprintf(f, "<text x=\"20\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 20 %.1f)\">%s</text>\n",
            (T + B) / 2, (T + B) / 2, ylab);
    /* the curves, each with its tested epoch circled */
    for (int i = 0; i < n; i++) {
        const char *c = COLORS[i % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (int k = 0; k < s[i].n; k++)
            fprintf(f, "%s%.2f,%.2f", k ? " " : "", PX(s[i].x[k]), PY(s[i].y[k] * scale));
        fprintf(f, "\"/>\n");
        for (int k = 0; k < s[i].n; k++) {
            int best = s[i].best_epoch > 0 && s[i].x[k] == s[i].best_epoch;
            if (s[i].n > 40 && !best) continue;
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%s\" fill=\"%s\" stroke=\"%s\"/>\n",
                    PX(s[i].x[k]), PY(s[i].y[k] * scale), best ? "5" : "2.5",
                    best ? "white" : c, c);
        }
    }
    /* the legend, below the chart */
    for (int i = 0; i < n; i++) {
        double y = B + 70 + 20.0 * i;
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"/>"
                   "<text x=\"%.0f\" y=\"%.0f\">", L, y - 4, L + 30, y - 4, COLORS[i % 10], L + 38, y);
        xml_text(f, s[i].label);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" fill=\"#555555\" font-size=\"11\">open circle: the "
               "tested epoch (best validation accuracy)</text>\n</svg>\n", L, B + 70 + 20.0 * n);
#undef PX
#undef PY
}

/* ---- gnuplot ------------------------------------------------------------------------- */

/* The gnuplot to run ($BPC_GNUPLOT, else `gnuplot` on $PATH), or 0 when there is none. */
static int find_gnuplot(char *out, size_t n) {
    const char *env = getenv("BPC_GNUPLOT");
    if (env && (!*env || !strcmp(env, "none"))) return 0;
    const char *name = env ? env : "gnuplot";
    if (strchr(name, '/')) {
        snprintf(out, n, "%s", name);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t k = strcspn(path, ":");
        snprintf(out, n, "%.*s/%s", (int)k, k ? path : ".", name);
        if (access(out, X_OK) == 0) return 1;
        path += k + (path[k] == ':');
    }
    return 0;
}

/* A gnuplot single-quoted string: '' stands for one quote. */
static void gp_str(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('\'', f);
}

/* Runs `gp script`, its output into log; returns its exit status (-1: not run). */
static int run_gnuplot(const char *gp, const char *script, const char *log) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execl(gp, gp, script, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int plot_gnuplot(const char *gp, const series *s, int n, int mi, const char *out, int png,
                        const char *title) {
    char dir[4200], path[4300], log[4300], tmp[4300];
    const char *td = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bpc-plot.XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(dir)) { fprintf(stderr, "bpc: error: %s: %s\n", dir, strerror(errno)); return 2; }
    int pct = strstr(METRICS[mi], "_acc") != NULL, rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        snprintf(path, sizeof path, "%s/run%d.dat", dir, i);
        FILE *f = fopen(path, "w");
        if (!f) { rc = 2; break; }
        for (int k = 0; k < s[i].n; k++) fprintf(f, "%.17g %.17g\n", s[i].x[k], s[i].y[k] * (pct ? 100 : 1));
        if (fclose(f)) rc = 2;
    }
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", out, (int)getpid());
    snprintf(log, sizeof log, "%s/gnuplot.log", dir);
    /* PNG: the cairo terminal where gnuplot has it, else the libgd one */
    static const char *const terms[] = {"svg size 800,500 dynamic background '#ffffff'",
                                        "pngcairo size 1000,625", "png size 1000,625"};
    for (int t = png ? 1 : 0; !rc && t < (png ? 3 : 1); t++) {
        snprintf(path, sizeof path, "%s/plot.gp", dir);
        FILE *f = fopen(path, "w");
        if (!f) { rc = 2; break; }
        fprintf(f, "set terminal %s noenhanced font 'sans,11'\nset output ", terms[t]);
        gp_str(f, tmp);
        fprintf(f, "\nset title ");
        gp_str(f, title);
        fprintf(f, "\nset xlabel 'epoch'\nset ylabel '%s%s'\nset grid\nset key outside right top vertical Left reverse\n",
                METRIC_NAMES[mi], pct ? " (%)" : "");
        fprintf(f, "set xtics nomirror\nset ytics nomirror\nplot ");
        for (int i = 0; i < n; i++) {
            char d[4300];
            snprintf(d, sizeof d, "%s/run%d.dat", dir, i);
            fprintf(f, "%s", i ? ", \\\n     " : "");
            gp_str(f, d);
            fprintf(f, " using 1:2 with linespoints lw 2 pt 7 ps 0.5 title ");
            gp_str(f, s[i].label);
        }
        fprintf(f, "\n");
        if (fclose(f)) { rc = 2; break; }
        int st = run_gnuplot(gp, path, log);
        if (st == 0) {
            if (rename(tmp, out)) {
                fprintf(stderr, "bpc: error: %s: %s\n", out, strerror(errno));
                rc = 2;
            }
            break;
        }
        if (t + 1 >= (png ? 3 : 1)) {
            fprintf(stderr, "bpc: error: gnuplot (%s) failed (exit %d) drawing %s:\n", gp, st, out);
            char *lb;
            size_t ll;
            if (!bp_read_file(log, &lb, &ll)) { fputs(lb, stderr); free(lb); }
            rc = 2;
        }
    }
    remove(tmp); /* a failed run's partial output */
    /* clean the temporary folder */
    for (int i = 0; i < n; i++) { snprintf(path, sizeof path, "%s/run%d.dat", dir, i); remove(path); }
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    remove(path);
    remove(log);
    rmdir(dir);
    return rc;
}

/* ---- the command --------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++) {
        char a = s[n - m + i], b = suf[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != b) return 0;
    }
    return 1;
}

/* The align curves of every run: from its first epoch line, each weight layer's update
 * angle and, where it has one, its matrix angle. *out gets *n curves (calloc'd), each
 * loaded. Returns 0, or the exit status after a message (a run without "align": tied). */
static int align_series(const char *const *runs, int nruns, series **out, int *n) {
    series *s = NULL;
    int cap = 0, rc = 0;
    *n = 0;
    for (int r = 0; r < nruns && !rc; r++) {
        series probe = {.dir = runs[r], .layer = -1};
        if ((rc = load_series(&probe, "epoch"))) break; /* the folder and its file, checked */
        free(probe.x);
        free(probe.y);
        char path[4200], *buf;
        size_t len;
        snprintf(path, sizeof path, "%s/metrics.jsonl", runs[r]);
        if (bp_read_file(path, &buf, &len)) { fprintf(stderr, "bpc: error: %s: %s\n", path, strerror(errno)); rc = 2; break; }
        char *nl = memchr(buf, '\n', len);
        cJSON *j = cJSON_ParseWithLength(buf, nl ? (size_t)(nl - buf) : len);
        free(buf);
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(j, "align"), *row;
        if (!cJSON_IsArray(rows)) {
            fprintf(stderr, "bpc: error: %s has no alignment metrics: every feedback of its "
                            "model is tied (exact)\n", runs[r]);
            rc = 1;
        }
        cJSON_ArrayForEach(row, rows) {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(row, "layer");
            for (int w = 0; w < 2 && cJSON_IsNumber(k) && !rc; w++) {
                const char *which = w ? "weight_angle" : "update_angle";
                if (w && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(row, which))) continue;
                if (*n == cap) {
                    cap = cap ? 2 * cap : 16;
                    series *g = realloc(s, sizeof *s * (size_t)cap);
                    if (!g) { fprintf(stderr, "bpc: error: out of memory\n"); rc = 2; break; }
                    s = g;
                }
                s[*n] = (series){.dir = runs[r], .layer = k->valueint, .angle = which};
                rc = load_series(&s[(*n)++], "align");
            }
        }
        cJSON_Delete(j);
    }
    *out = s ? s : calloc(1, sizeof *s);
    return rc;
}

int bp_plot_runs(const char *const *runs, int n, const char *metric, const char *out,
                 const char *title) {
    int mi = 0;
    while (mi < NMETRICS && strcmp(METRICS[mi], metric)) mi++;
    if (mi == NMETRICS) {
        fprintf(stderr, "bpc: error: --metric is test_acc, val_acc, train_acc, train_loss, "
                        "train_reward or align, not '%s'\n", metric);
        return 1;
    }
    int png = ends_with(out, ".png");
    if (!png && !ends_with(out, ".svg")) {
        fprintf(stderr, "bpc: error: -o %s: the chart is written as .svg or .png\n", out);
        return 1;
    }
    char gp[4200];
    int have_gp = find_gnuplot(gp, sizeof gp);
    if (png && !have_gp) {
        fprintf(stderr, "bpc: error: PNG output needs gnuplot, which is not installed (%s); "
                        "install it (Debian: apt-get install gnuplot-nox), or write SVG with "
                        "-o FILE.svg\n",
                getenv("BPC_GNUPLOT") ? "BPC_GNUPLOT says none" : "no gnuplot on $PATH");
        return 2;
    }
    series *s = NULL;
    int rc = 0;
    if (mi == ALIGN_METRIC) rc = align_series(runs, n, &s, &n); /* n: runs, then curves */
    else s = calloc((size_t)n, sizeof *s);
    if (!s) { fprintf(stderr, "bpc: error: out of memory\n"); return 2; }
    for (int i = 0; i < n && !rc && mi != ALIGN_METRIC; i++) {
        s[i].dir = runs[i];
        s[i].layer = -1;
        rc = load_series(&s[i], metric);
    }
    if (!rc) {
        make_labels(s, n);
        for (int i = 0; i < n && mi == ALIGN_METRIC; i++) { /* which curve of the run */
            size_t l = strlen(s[i].label);
            snprintf(s[i].label + l, sizeof s[i].label - l, " L%d %s", s[i].layer,
                     strcmp(s[i].angle, "update_angle") ? "matrix" : "update");
        }
        char t[256];
        if (!title) {
            snprintf(t, sizeof t, "%s per epoch", METRIC_NAMES[mi]);
            title = t;
        }
        if (have_gp) {
            rc = plot_gnuplot(gp, s, n, mi, out, png, title);
        } else {
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            if (!f) { fprintf(stderr, "bpc: error: out of memory\n"); rc = 2; }
            else {
                write_svg(f, s, n, mi, title);
                if (fclose(f)) { fprintf(stderr, "bpc: error: out of memory\n"); rc = 2; }
                else rc = bp_cli_write(out, buf, len);
            }
            free(buf);
        }
    }
    for (int i = 0; i < n; i++) { free(s[i].x); free(s[i].y); }
    free(s);
    return rc;
}

int bp_cmd_plot(int argc, char **argv) {
    const char *out = NULL, *metric = NULL;
    const char **runs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *runs);
    if (!runs) { fprintf(stderr, "bpc: error: out of memory\n"); return 2; }
    int n = 0, rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--metric")) {
            const char **dst = a[1] == 'o' ? &out : &metric;
            if (i + 1 >= argc) { fprintf(stderr, "bpc: error: %s needs a value\n%s", a, plot_usage); rc = 1; }
            else if (*dst) { fprintf(stderr, "bpc: error: %s is given twice\n%s", a, plot_usage); rc = 1; }
            else *dst = argv[++i];
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(plot_usage, stdout);
            free(runs);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "bpc: error: unknown option '%s'\n%s", a, plot_usage);
            rc = 1;
        } else {
            runs[n++] = a;
        }
    }
    if (!rc && n == 0) { fprintf(stderr, "bpc: error: plot takes at least one RUN_DIR\n%s", plot_usage); rc = 1; }
    if (!rc) {
        if (!out) out = "plot.svg";
        rc = bp_plot_runs(runs, n, metric ? metric : "test_acc", out, NULL);
        if (!rc) printf("wrote %s (%d run%s, %s)\n", out, n, n == 1 ? "" : "s", metric ? metric : "test_acc");
    }
    free(runs);
    return rc;
}
