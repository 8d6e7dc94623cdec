/* files.c: see files.h. */
#include "files.h"
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

int bp_read_file(const char *path, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *nb = realloc(b, cap * 2 + 65536 + 1);
            if (!nb) { free(b); fclose(f); errno = ENOMEM; return -1; }
            b = nb;
            cap = cap * 2 + 65536;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); errno = EIO; return -1; }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

int bp_mkdirs(const char *path) {
    char b[4096];
    if ((size_t)snprintf(b, sizeof b, "%s", path) >= sizeof b) { errno = ENAMETOOLONG; return -1; }
    for (char *s = b + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(b, 0777) && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(b, 0777) && errno != EEXIST) return -1;
    struct stat st;
    if (stat(b, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}

int bp_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int bp_write_atomic(const char *path, const void *data, size_t n) {
    struct stat st;
    int in_place = lstat(path, &st) == 0 && !S_ISREG(st.st_mode);
    char tmp[4200];
    int fd;
    if (in_place) {
        fd = open(path, O_WRONLY | O_TRUNC);
    } else {
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX.tmp", path) >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
        fd = mkstemps(tmp, 4);
        if (fd >= 0) { /* mkstemp makes it 0600: give it what a new file gets */
            mode_t um = umask(0);
            umask(um);
            (void)fchmod(fd, 0666 & ~um);
        }
    }
    if (fd < 0) return -1;
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (w == 0) errno = EIO; break; }
        p += w;
        left -= (size_t)w;
    }
    int err = left ? errno : 0;
    if (!err && !in_place && fsync(fd)) err = errno;
    if (close(fd) && !err) err = errno;
    if (!err && !in_place && rename(tmp, path)) err = errno;
    if (err) {
        if (!in_place) unlink(tmp);
        errno = err;
        return -1;
    }
    return 0;
}

int bp_sha256_file(const char *path, char hex[65], bp_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return bp_fail(e, "%s: cannot read: %s", path, strerror(errno));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    unsigned char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) ok = EVP_DigestUpdate(c, buf, n);
    ok = ok && !ferror(f);
    fclose(f);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ok = ok && EVP_DigestFinal_ex(c, d, &len) && len == 32;
    EVP_MD_CTX_free(c);
    if (!ok) return bp_fail(e, "%s: cannot hash the file", path);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return 0;
}
