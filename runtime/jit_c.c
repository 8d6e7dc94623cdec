/* jit_c.c: the CPU target's JIT. The generated C is compiled once by the system
 * compiler and cached by content hash, the way NVRTC output is cached for CUDA.
 * Objects are loaded RTLD_NODELETE: unloading one could unload the libgomp it
 * brought in while OpenMP threads still run there. */
#include "jit_c.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int mkdir_p(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

const char *bp_cache_dir(char *buf, size_t len, bp_err *e) {
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && *x) snprintf(buf, len, "%s/bpc", x);
    else if (h && *h) snprintf(buf, len, "%s/.cache/bpc", h);
    else snprintf(buf, len, "/tmp/bpc-cache-%d", (int)getuid());
    if (mkdir_p(buf)) {
        bp_fail(e, "%s: cannot create the cache folder: %s; set XDG_CACHE_HOME to a writable folder",
                buf, strerror(errno));
        return NULL;
    }
    return buf;
}

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

static int write_file(const char *path, const char *s, bp_err *e) {
    FILE *f = fopen(path, "w");
    if (!f) return bp_fail(e, "%s: cannot write: %s", path, strerror(errno));
    size_t n = strlen(s);
    int bad = fwrite(s, 1, n, f) != n;
    bad |= fclose(f) != 0;
    if (bad) { unlink(path); return bp_fail(e, "%s: write failed (disk full?)", path); }
    return 0;
}

void *bp_jit_c(const char *source, bp_err *e) {
    char dir[4096];
    if (!bp_cache_dir(dir, sizeof dir, e)) return NULL;
    const char *cc = getenv("CC");
    if (!cc || !*cc) cc = "cc";
    const char *extra = getenv("BPC_CFLAGS");
    if (!extra) extra = "";
    const char *flags = "-O3 -march=native -fopenmp -shared -fPIC -std=c11";
    const char *parts[] = {source, cc, flags, extra};
    char hash[65];
    sha256_hex(parts, 4, hash);
    char so[4200], src[4200], tmp[4300], log[4300];
    snprintf(so, sizeof so, "%s/%s.so", dir, hash);
    snprintf(src, sizeof src, "%s/%s.c", dir, hash);
    if (access(so, R_OK) == 0) {
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (h) return h;
        unlink(so); /* a stale or damaged entry: rebuild it */
    }
    if (write_file(src, source, e)) return NULL;
    snprintf(tmp, sizeof tmp, "%s/%s.so.%d.tmp", dir, hash, (int)getpid());
    snprintf(log, sizeof log, "%s/%s.log", dir, hash);
    /* argv: cc FLAGS... [BPC_CFLAGS words] -o tmp src */
    char *fl = strdup(flags), *ex = strdup(extra);
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)cc;
    for (char *t = strtok(fl, " "); t && argc < 40; t = strtok(NULL, " ")) argv[argc++] = t;
    for (char *t = strtok(ex, " "); t && argc < 56; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc++] = "-o";
    argv[argc++] = tmp;
    argv[argc++] = src;
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
        execvp(cc, argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0) status = -1;
    free(fl);
    free(ex);
    if (status != 0) {
        unlink(tmp);
        char out[600] = "";
        FILE *f = fopen(log, "r");
        if (f) { size_t n = fread(out, 1, sizeof out - 1, f); out[n] = 0; fclose(f); }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !out[0])
            bp_fail(e, "cannot run the C compiler '%s': install gcc (or set CC)", cc);
        else
            bp_fail(e, "the C compiler failed on the generated source %s (log %s):\n%s", src, log, out);
        return NULL;
    }
    if (rename(tmp, so)) {
        unlink(tmp);
        bp_fail(e, "%s: cannot rename into the cache: %s", so, strerror(errno));
        return NULL;
    }
    unlink(log);
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) bp_fail(e, "%s: cannot load the compiled model: %s", so, dlerror());
    return h;
}
