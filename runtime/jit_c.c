/* jit_c.c: the CPU target's JIT. The generated C is compiled once by the system
 * compiler and cached by content hash, the way NVRTC output is cached for CUDA.
 * Objects are loaded RTLD_NODELETE: unloading one could unload the libgomp it
 * brought in while OpenMP threads still run there. */
#include "jit_c.h"
#include "files.h"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

const char *bp_cache_dir(char *buf, size_t len, bp_err *e) {
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && *x == '/') snprintf(buf, len, "%s/bpc", x); /* XDG: a relative one is ignored */
    else if (h && *h) snprintf(buf, len, "%s/.cache/bpc", h);
    else snprintf(buf, len, "/tmp/bpc-cache-%d", (int)getuid());
    if (bp_mkdirs(buf)) {
        bp_fail(e, "%s: cannot create the cache folder: %s; set XDG_CACHE_HOME to a writable folder",
                buf, strerror(errno));
        return NULL;
    }
    return buf;
}

/* SHA-256 of the strings in parts[] (each with its NUL), as hex. */
static void sha256_hex(const char *parts[], int n, char out[65]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (int i = 0; i < n; i++) EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A cache entry is HASH.so plus HASH.so.sha256, the digest of the object written after
 * it was complete. An object whose digest does not match (truncated, overwritten) is
 * never loaded: dlopen of a damaged object can crash the process. */
static void *load_checked(const char *so) {
    char sum[4300], want[65] = "", got[65];
    snprintf(sum, sizeof sum, "%s.sha256", so);
    FILE *f = fopen(sum, "r");
    if (!f) return NULL;
    int ok = fscanf(f, "%64s", want) == 1;
    fclose(f);
    bp_err ignored;
    if (!ok || bp_sha256_file(so, got, &ignored) || strcmp(want, got)) return NULL;
    return dlopen(so, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
}

char *bp_split_words(const char *words, char **argv, int *argc, int max) {
    char *w = strdup(words ? words : "");
    if (!w) return NULL;
    for (char *t = strtok(w, " \t"); t && *argc < max; t = strtok(NULL, " \t")) argv[(*argc)++] = t;
    return w;
}

/* The supervisor of the command bp_run_logged is running (in bpc), or 0. */
static volatile pid_t g_supervisor;
/* The command's process group (in the supervisor). */
static volatile pid_t g_command;

static void kill_command(int sig) {
    (void)sig;
    if (g_command > 0) kill(-g_command, SIGKILL);
}

void bp_run_logged_kill(void) {
    pid_t s = g_supervisor;
    if (s > 0) kill(s, SIGTERM);
}

/* Removes the files of a flat folder, then the folder. */
static void remove_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[4600]; /* dir is at most 4200 bytes, a name 255 */
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* The child is a supervisor. The command runs under it in a process group of its own,
 * with TMPDIR set to a fresh folder. If bpc dies, by any signal, SIGKILL included, the
 * kernel sends the supervisor SIGTERM (PR_SET_PDEATHSIG); it kills the command's whole
 * group (a compiler driver killed alone would leave its cc1, as and ld running) and
 * removes the folder with their temporary files. It ignores SIGINT: a Ctrl-C reaches
 * bpc, which decides. */
int bp_run_logged(char **argv, const char *log) {
    if (!argv[0]) return -1;
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, kill_command);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        prctl(PR_SET_CHILD_SUBREAPER, 1); /* the group's orphans are ours to reap */
        if (getppid() != parent) _exit(126);
        const char *t = getenv("TMPDIR");
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s/bpc-cc.XXXXXX", t && *t ? t : "/tmp");
        int have_tmp = mkdtemp(tmp) != NULL;
        sigset_t term, old;
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, &old); /* g_command is set before a SIGTERM acts */
        pid_t c = fork();
        if (c == 0) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            setpgid(0, 0);
            if (have_tmp) setenv("TMPDIR", tmp, 1);
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
            execvp(argv[0], argv);
            _exit(127);
        }
        if (c > 0) setpgid(c, c);
        g_command = c;
        sigprocmask(SIG_SETMASK, &old, NULL);
        int st = 0, waited = c > 0;
        while (waited && waitpid(c, &st, 0) < 0)
            if (errno != EINTR) waited = 0;
        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {} /* a killed driver's cc1, as */
        if (have_tmp) remove_flat(tmp);
        if (!waited) _exit(126);
        if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
        signal(WTERMSIG(st), SIG_DFL); /* hand the command's death on as it was */
        raise(WTERMSIG(st));
        _exit(128 + WTERMSIG(st));
    }
    int status = -1;
    if (pid < 0) return -1;
    g_supervisor = pid;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) { g_supervisor = 0; return -1; }
    g_supervisor = 0;
    return status;
}

void bp_note_low_disk(const char *dir, const char *move, bp_err *e) {
    const char *t = getenv("TMPDIR");
    const char *where[2] = {dir, t && *t ? t : "/tmp"};
    for (int w = 0; w < 2; w++) {
        struct statvfs fs;
        if (statvfs(where[w], &fs) != 0) continue;
        double free_b = (double)fs.f_bavail * (double)fs.f_frsize;
        if (free_b >= 16e6) continue;
        size_t k = strlen(e->msg);
        snprintf(e->msg + k, sizeof e->msg - k, "\n(the disk of %s has only %.0f KB free; a "
                 "compile needs a few MB there: free some space, or %s)", where[w], free_b / 1024.0,
                 w ? "set TMPDIR to another folder" : move);
        return;
    }
}

/* The host CPU as -march=native sees it: the first processor's "model name" and
 * "flags" lines of /proc/cpuinfo ("" where there is none). Part of the cache key, so
 * a cache shared between machines (an NFS home) never loads an object built for
 * instructions this CPU lacks. */
static void host_cpu(char *buf, size_t n) {
    buf[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192];
    size_t at = 0;
    int seen = 0;
    while (seen < 2 && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) && strncmp(line, "flags", 5)) continue;
        size_t k = strlen(line);
        if (at + k < n) { memcpy(buf + at, line, k + 1); at += k; }
        seen++;
    }
    fclose(f);
}

void *bp_jit_c(const char *source, bp_err *e) {
    char dir[4096];
    if (!bp_cache_dir(dir, sizeof dir, e)) return NULL;
    const char *cc = getenv("CC");
    if (!cc || !*cc) cc = "cc";
    const char *extra = getenv("BPC_CFLAGS");
    if (!extra) extra = "";
    const char *flags = BP_KERNEL_CFLAGS " -shared";
    static char cpu[16384];
    host_cpu(cpu, sizeof cpu);
    const char *parts[] = {source, cc, flags, extra, cpu};
    char hash[65];
    sha256_hex(parts, 5, hash);
    char so[4200], src[4200], tmp[4300], log[4300], sum[4300];
    snprintf(so, sizeof so, "%s/%s.so", dir, hash);
    snprintf(src, sizeof src, "%s/%s.c", dir, hash);
    snprintf(sum, sizeof sum, "%s.sha256", so);
    void *h = load_checked(so);
    if (h) return h;
    unlink(so); /* missing, stale or damaged: rebuild it */
    unlink(sum);
    /* atomically: another process JIT-compiling the same model (two workers on one
     * grid) may be compiling this very file */
    if (bp_write_atomic(src, source, strlen(source)))
        return bp_fail(e, "%s: cannot write: %s", src, strerror(errno)), NULL;
    snprintf(tmp, sizeof tmp, "%s/%s.so.%d.tmp", dir, hash, (int)getpid());
    snprintf(log, sizeof log, "%s/%s.log", dir, hash);
    /* argv: CC words (CC may be "gcc -O1", as make allows), FLAGS, BPC_CFLAGS, -o tmp src */
    char *argv[96];
    int argc = 0;
    char *ccw = bp_split_words(cc, argv, &argc, 32);
    int have_cc = argc > 0; /* CC of blanks only: no compiler to run */
    char *fl = bp_split_words(flags, argv, &argc, 48), *ex = bp_split_words(extra, argv, &argc, 88);
    argv[argc++] = "-o";
    argv[argc++] = tmp;
    argv[argc++] = src;
    argv[argc] = NULL;
    int status = ccw && fl && ex && have_cc ? bp_run_logged(argv, log) : -1;
    free(ccw);
    free(fl);
    free(ex);
    struct stat st;
    int made = stat(tmp, &st) == 0 && st.st_size > 0;
    if (status != 0 || !made) {
        unlink(tmp);
        char out[600] = "";
        FILE *f = fopen(log, "r");
        if (f) { size_t n = fread(out, 1, sizeof out - 1, f); out[n] = 0; fclose(f); }
        if (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !out[0]))
            bp_fail(e, "cannot run the C compiler '%s': install gcc (or set CC)", cc);
        else if (status == 0)
            bp_fail(e, "the C compiler '%s' exited successfully but wrote no object file; "
                       "set CC to a working C compiler", cc);
        else if (!out[0])
            bp_fail(e, "the C compiler '%s' failed (%s %d) on %s and printed nothing; "
                       "set CC to a working C compiler", cc,
                    WIFSIGNALED(status) ? "signal" : "exit status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), src);
        else
            bp_fail(e, "the C compiler failed on the generated source %s (log %s):\n%s", src, log, out);
        bp_note_low_disk(dir, "set XDG_CACHE_HOME to another folder", e);
        return NULL;
    }
    char digest[66];
    if (bp_sha256_file(tmp, digest, e)) { unlink(tmp); return NULL; }
    /* Load our own object before it enters the cache: another process that finds the
     * entry without its digest (written last, below) takes it for a damaged one and
     * deletes it, which must not take our model with it. */
    h = dlopen(tmp, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *why = dlerror();
        bp_fail(e, "%s: cannot load the compiled model: %s", tmp, why ? why : "unknown reason");
        unlink(tmp);
        return NULL;
    }
    /* The model is loaded: from here a failure only costs the next run a compile. The
     * digest goes last: until it is there, the entry does not count. */
    strcat(digest, "\n");
    if (rename(tmp, so) || bp_write_atomic(sum, digest, 65)) {
        fprintf(stderr, "bpc: warning: cannot keep the compiled model in the cache %s: %s; the "
                "next run compiles it again\n", dir, strerror(errno));
        unlink(tmp);
    }
    unlink(log);
    return h;
}
