/* build.c: `bpc build`, a standalone trainer for one model (build.h).
 *
 * In a temporary folder it writes, for each rule, the emitted source (and, for a model
 * with untied feedback, that of its tied twin, which the alignment metrics run); for the CPU
 * target it compiles that C with the C JIT's flags into an object whose kernels are
 * renamed (a macro per kernel) so that both rules link side by side, plus a function
 * that registers them (linked.h); for CUDA it compiles the source with NVRTC into
 * images. A generated main holds the model source and the images, registers the
 * kernels and calls bp_trainer_main (trainer.h). Everything is linked with libbprt.a.
 */
#include "build.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include "bprt_link.h"
#include "frontend.h"
#include "files.h"
#include "jit_c.h"
#include "jit_cuda.h"
#include "linked.h"
#include "plan.h"


typedef struct {
    char dir[4200];     /* the temporary folder */
    const char *cc;
    const char *archs;  /* --arch, or NULL */
    FILE *main_c;       /* the generated main */
    int nreg;           /* kernel sets registered: bp_trainer_kernels_N */
    int nimg;           /* CUDA images */
} job;

/* libbprt.a: $BPC_LIB, else next to this executable, else ../lib/bpc/ from it. */
static int find_lib(char *buf, size_t n, bp_err *e) {
    const char *env = getenv("BPC_LIB");
    if (env && *env) {
        if (access(env, R_OK)) return bp_fail(e, "BPC_LIB=%s: %s", env, strerror(errno));
        snprintf(buf, n, "%s", env);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(buf, n, "%s/libbprt.a", exe);
        if (!access(buf, R_OK)) return 0;
        snprintf(buf, n, "%s/../lib/bpc/libbprt.a", exe);
        if (!access(buf, R_OK)) return 0;
        return bp_fail(e, "cannot find libbprt.a (the runtime a trainer is linked with) next to %s/bpc "
                          "or in %s/../lib/bpc/: run `make` in the bpc source tree, or set BPC_LIB to its path",
                       exe, exe);
    }
    return bp_fail(e, "cannot find libbprt.a: set BPC_LIB to its path");
}

/* SIGINT or SIGTERM during the build: the compiler running is killed at once (with its
 * helpers), the temporary folder removed, and bpc exits 130 or 143. */
static volatile sig_atomic_t g_signal;
static void on_signal(int sig) {
    g_signal = sig;
    bp_run_logged_kill();
}

/* Runs argv with stdout and stderr into dir/log; 0, or -1 with e holding the tail. */
static int run(job *j, char **argv, const char *what, bp_err *e) {
    char log[4300];
    snprintf(log, sizeof log, "%s/log", j->dir);
    int status = g_signal ? -1 : bp_run_logged(argv, log);
    if (g_signal) return bp_fail(e, "interrupted");
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    char out[700] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, sz > (long)sizeof out - 1 ? sz - (long)sizeof out + 1 : 0, SEEK_SET);
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = 0;
        fclose(f);
    }
    if (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !out[0]))
        return bp_fail(e, "cannot run '%s' to %s: install gcc (or set CC)", argv[0], what);
    bp_fail(e, "'%s' failed to %s:\n%s", argv[0], what, out);
    bp_note_low_disk(j->dir, "set TMPDIR to another folder", e);
    return -1;
}

/* $CC FLAGS... -c src -o obj */
static int compile(job *j, const char *flags, const char *src, const char *obj, bp_err *e) {
    char *argv[128];
    int argc = 0;
    char *a = bp_split_words(j->cc, argv, &argc, 32), *b = bp_split_words(flags, argv, &argc, 80);
    char *c = bp_split_words(getenv("BPC_CFLAGS"), argv, &argc, 120);
    argv[argc++] = "-c";
    argv[argc++] = (char *)src;
    argv[argc++] = "-o";
    argv[argc++] = (char *)obj;
    argv[argc] = NULL;
    int rc = a && b && c ? run(j, argv, "compile the trainer", e) : bp_fail(e, "out of memory");
    free(a); free(b); free(c);
    return rc;
}

/* Writes bytes as a C string literal (fast to compile, unlike a list of numbers): the
 * printable ones as they are, the rest as three-digit octal escapes; '?' escaped too,
 * against trigraphs. A line break after each newline and every 120 bytes. */
static void put_bytes(FILE *f, const unsigned char *p, size_t n) {
    fputs("\n\"", f);
    for (size_t i = 0, col = 0; i < n; i++, col++) {
        unsigned c = p[i];
        if (c == '"' || c == '\\' || c == '?') fprintf(f, "\\%c", (int)c);
        else if (c >= 32 && c < 127) fputc((int)c, f);
        else fprintf(f, "\\%03o", c);
        if ((c == '\n' || col >= 120) && i + 1 < n) { fputs("\"\n\"", f); col = 0; }
    }
    fputs("\"", f);
}

/* The CPU kernels of one rule: an object whose functions are renamed bp_rN_NAME and a
 * function bp_trainer_kernels_N that registers them under their own names. */
static int cpu_kernels(job *j, const bp_plan *p, const char *src, bp_err *e) {
    int n = j->nreg++;
    char key[65], path[4300], obj[4300];
    bp_linked_key(src, key);
    snprintf(path, sizeof path, "%s/kernels%d.c", j->dir, n);
    snprintf(obj, sizeof obj, "%s/kernels%d.o", j->dir, n);
    FILE *f = fopen(path, "w");
    if (!f) return bp_fail(e, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "/* The kernels of one rule, renamed so that both rules link into one trainer. */\n");
    for (int i = 0; i < p->nkernels; i++)
        fprintf(f, "#define %s bp_r%d_%s\n", p->kernels[i].name, n, p->kernels[i].name);
    fputs(src, f);
    fprintf(f, "\ntypedef void (*bp_trainer_fn)(void);\n"
               "static const char *const bp_trainer_names[] = {\n");
    for (int i = 0; i < p->nkernels; i++) fprintf(f, "    \"%s\",\n", p->kernels[i].name);
    fprintf(f, "    0};\nstatic const bp_trainer_fn bp_trainer_fns[] = {\n");
    for (int i = 0; i < p->nkernels; i++) fprintf(f, "    (bp_trainer_fn)%s,\n", p->kernels[i].name);
    fprintf(f, "    0};\n"
               "void bp_linked_add_c(const char *key, int n, const char *const *names, void (*const *fns)(void));\n"
               "void bp_trainer_kernels_%d(void);\n"
               "void bp_trainer_kernels_%d(void) { bp_linked_add_c(\"%s\", %d, bp_trainer_names, bp_trainer_fns); }\n",
            n, n, key, p->nkernels);
    if (fclose(f)) return bp_fail(e, "%s: write failed", path);
    return compile(j, BP_KERNEL_CFLAGS, path, obj, e);
}

/* The CUDA images of one rule, for each architecture in j->archs (see build.h).
 * 0, 1 when NVRTC is unavailable (warned once), -1 with e set on a compile error. */
static int cuda_images(job *j, const bp_plan *p, const char *src, bp_err *e) {
    char list[400];
    if (j->archs && *j->archs) {
        snprintf(list, sizeof list, "%s", j->archs);
    } else {
        int archs[64];
        bp_err ne;
        int na = bp_nvrtc_archs(archs, 64, &ne);
        if (na <= 0) {
            static int warned;
            if (!warned++)
                fprintf(stderr, "bpc: warning: NVRTC is unavailable here (%s): the trainer holds no CUDA "
                                "kernels and will compile them with NVRTC when it runs\n",
                        na < 0 ? ne.msg : "it knows no architecture");
            return 1;
        }
        if (na == 1) snprintf(list, sizeof list, "compute_%d", archs[0]);
        else snprintf(list, sizeof list, "compute_%d,compute_%d", archs[0], archs[na - 1]);
    }
    char key[65], name[128];
    bp_linked_key(src, key);
    snprintf(name, sizeof name, "%s.cu", p->ir && p->ir->name ? p->ir->name : "model");
    for (char *save = NULL, *arch = strtok_r(list, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        char *img = NULL, *log = NULL;
        size_t len = 0;
        if (bp_nvrtc_compile(src, name, arch, &img, &len, &log, e)) {
            char m[sizeof e->msg];
            snprintf(m, sizeof m, "NVRTC failed for %s: %.900s", arch, e->msg);
            free(log);
            return bp_fail(e, "%s", m);
        }
        free(log);
        int k = j->nimg++;
        fprintf(j->main_c, "static const char bp_img%d[] =", k);
        put_bytes(j->main_c, (const unsigned char *)img, len);
        fprintf(j->main_c, ";\n#define BP_IMG%d bp_linked_add_image(\"%s\", \"%s\", (const unsigned char *)bp_img%d, %zu)\n",
                k, key, arch, k, len);
        free(img);
    }
    return 0;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[4600];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

int bp_cmd_build(const char *model_path, const char *out, const char *target, const char *arch,
                 bp_err *e) {
    int cuda;
    if (!target || !strcmp(target, "cpu") || !strcmp(target, "c")) cuda = 0;
    else if (!strcmp(target, "cuda")) cuda = 1;
    else return bp_fail(e, "--target for build is cpu or cuda, not '%s'", target), 1;
    if (arch && !cuda) return bp_fail(e, "%s", "--arch is for --target cuda"), 1;
    if (arch && (!bp_cuda_archs_ok(arch) || strlen(arch) > 300))
        return bp_fail(e, "--arch takes sm_XY or compute_XY, or several joined by commas "
                          "(sm_90,compute_75), not '%.200s'", arch), 1;
    bp_err ae;
    if (arch && bp_cuda_archs_supported(arch, &ae) == 0) return bp_fail(e, "--arch %s", ae.msg), 1;
    /* never write the trainer over its own model source, nor rename it over a device,
     * a FIFO or a folder */
    if (bp_same_file(model_path, out))
        return bp_fail(e, "-o %s is the model file itself; choose another name for the trainer", out), 1;
    struct stat so;
    if (stat(out, &so) == 0 && !S_ISREG(so.st_mode))
        return bp_fail(e, "-o %s exists and is not a regular file; a trainer replaces only a file", out), 1;
    char lib[PATH_MAX + 64];
    if (find_lib(lib, sizeof lib, e)) return 2;

    int nerr = 0, io = 0;
    bp_ir *ir = bp_frontend_file(model_path, stderr, &nerr, &io);
    if (!ir) {
        if (io) return bp_fail(e, "%s: cannot read the model", model_path), 2;
        fprintf(stderr, "%d error%s\n", nerr, nerr == 1 ? "" : "s");
        e->msg[0] = 0;
        return 1;
    }
    size_t srclen = 0;
    char *model_src = NULL;
    if (bp_read_file(model_path, &model_src, &srclen)) { bp_ir_free(ir); return bp_fail(e, "%s: cannot read: %s", model_path, strerror(errno)), 2; }

    job J = {.cc = getenv("CC"), .archs = arch}, *j = &J;
    bp_ir tied = {0}; /* the tied twin of the model, for the alignment metrics */
    if (!j->cc || !*j->cc) j->cc = "cc";
    const char *t = getenv("TMPDIR");
    snprintf(j->dir, sizeof j->dir, "%s/bpc-build.XXXXXX", t && *t ? t : "/tmp");
    int rc = 2;
    char mainc[4300], maino[4300], tmpout[4300];
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    if (!mkdtemp(j->dir)) {
        bp_fail(e, "cannot create a temporary folder in %s: %s", t && *t ? t : "/tmp", strerror(errno));
        j->dir[0] = 0;
        goto done;
    }
    snprintf(mainc, sizeof mainc, "%s/main.c", j->dir);
    snprintf(maino, sizeof maino, "%s/main.o", j->dir);
    if (!(j->main_c = fopen(mainc, "w"))) { bp_fail(e, "%s: cannot write: %s", mainc, strerror(errno)); goto done; }
    fprintf(j->main_c, "/* The main of a standalone trainer for %s, made by bpc build (compiler/build.c):\n"
                       " * the model source, the CUDA images, and the call of bp_trainer_main. */\n"
                       "#include <stddef.h>\n"
                       "int bp_trainer_main(int argc, char **argv, const char *file, const char *source, size_t len, int target);\n"
                       "void bp_linked_add_image(const char *key, const char *arch, const unsigned char *image, size_t len);\n",
            ir->name ? ir->name : "a model");

    int no_images = 0;
    /* both rules; and when some feedback is not tied, both rules of the tied twin that
     * the alignment metrics run beside the model (runtime/align.h) */
    int twins = bp_feedback_untied(ir);
    if (twins && bp_ir_tied(ir, &tied)) { bp_fail(e, "out of memory"); goto done; }
    for (int r = 0; r < (twins ? 4 : 2); r++) {
        bp_plan *p = bp_plan_build(r < 2 ? ir : &tied, r % 2 == 0 ? BP_RULE_BRAINPROP : BP_RULE_EBP, 0);
        char *src = NULL;
        size_t len = 0;
        FILE *f = p ? open_memstream(&src, &len) : NULL;
        if (!f || bp_emit(f, p, cuda ? "cuda" : "c") || fclose(f)) {
            bp_plan_free(p);
            free(src);
            bp_fail(e, "out of memory emitting the model");
            goto done;
        }
        int bad = cuda ? cuda_images(j, p, src, e) : cpu_kernels(j, p, src, e);
        bp_plan_free(p);
        free(src);
        if (bad < 0) goto done;
        if (bad > 0) no_images = 1;
    }
    (void)no_images;

    FILE *m = j->main_c;
    fprintf(m, "static const char bp_model_source[] =");
    put_bytes(m, (const unsigned char *)model_src, srclen);
    fprintf(m, ";\n");
    for (int k = 0; k < j->nreg; k++) fprintf(m, "void bp_trainer_kernels_%d(void);\n", k);
    fprintf(m, "int main(int argc, char **argv) {\n");
    for (int k = 0; k < j->nreg; k++) fprintf(m, "    bp_trainer_kernels_%d();\n", k);
    for (int k = 0; k < j->nimg; k++) fprintf(m, "    BP_IMG%d;\n", k);
    const char *base = strrchr(model_path, '/');
    base = base ? base + 1 : model_path;
    fprintf(m, "    return bp_trainer_main(argc, argv, \"");
    for (const unsigned char *c = (const unsigned char *)base; *c; c++) {
        if (*c == '"' || *c == '\\' || *c == '?') fprintf(m, "\\%c", *c);
        else if (*c < 32 || *c > 126) fprintf(m, "\\%03o", *c);
        else fputc(*c, m);
    }
    fprintf(m, "\", bp_model_source, %zu, %d);\n}\n", srclen, cuda);
    int bad = fclose(m) != 0;
    j->main_c = NULL;
    if (bad) { bp_fail(e, "%s: write failed", mainc); goto done; }
    if (compile(j, "-O0 -std=c11", mainc, maino, e)) goto done;

    /* link: CC [-fopenmp] main.o kernels*.o libbprt.a LDLIBS -o OUT.tmp, then rename */
    snprintf(tmpout, sizeof tmpout, "%s.%d.tmp", out, (int)getpid());
    {
        char *argv[200], objs[8][4300];
        int argc = 0;
        char *a = bp_split_words(j->cc, argv, &argc, 32), *b = bp_split_words(BPC_LINK_FLAGS, argv, &argc, 48);
        argv[argc++] = maino;
        for (int k = 0; k < j->nreg && k < 8; k++) {
            snprintf(objs[k], sizeof objs[k], "%s/kernels%d.o", j->dir, k);
            argv[argc++] = objs[k];
        }
        argv[argc++] = lib;
        char *c = bp_split_words(BPC_LINK_LIBS, argv, &argc, 190);
        argv[argc++] = "-o";
        argv[argc++] = tmpout;
        argv[argc] = NULL;
        int lrc = a && b && c ? run(j, argv, "link the trainer", e) : bp_fail(e, "out of memory");
        free(a); free(b); free(c);
        if (lrc) { unlink(tmpout); goto done; }
    }
    if (rename(tmpout, out)) {
        bp_fail(e, "%s: cannot write: %s", out, strerror(errno));
        unlink(tmpout);
        goto done;
    }
    printf("built %s: trains %s (%s) on the %s target, rules brainprop and ebp; run `%s%s --help`\n", out,
           ir->name ? ir->name : "the model", base, cuda ? "cuda" : "cpu", strchr(out, '/') ? "" : "./", out);
    rc = 0;
done:
    free(tied.layers);
    if (j->main_c) fclose(j->main_c);
    if (j->dir[0]) remove_tree(j->dir);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (g_signal) {
        rc = 128 + g_signal;
        bp_fail(e, "interrupted (%s); no trainer was written", g_signal == SIGINT ? "SIGINT" : "SIGTERM");
    }
    free(model_src);
    bp_ir_free(ir);
    return rc;
}
