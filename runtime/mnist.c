/* mnist.c: loads MNIST-format data sets (MNIST, Fashion-MNIST) into a bp_dataset,
 * and decides where the data folder is (bp_data_root).
 *
 * The four IDX files are read with bp_idx_read (raw or .gz, whichever is there, raw
 * first), then checked against each other: image and label counts must agree, images
 * must be 28x28, labels < 10. A pair of files from different downloads, or a damaged
 * label byte, fails here with the file named, instead of training on garbage.
 */
#include "data.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the user can do when files are missing: MNIST can be fetched, Fashion-MNIST
 * comes from a Debian package. */
static const char *get_hint(const char *name) {
    if (strstr(name, "fashion"))
        return "install the Debian package dataset-fashion-mnist and use "
               "--data /usr/share/datasets/fashion-mnist, or put the four IDX files there";
    return "run `bpc data fetch mnist --data DIR`, or put the four IDX files there";
}

/* Finds dir/base, else dir/base.gz, and writes the one found into path. */
static int find_file(const char *dir, const char *base, const char *name, char *path,
                     size_t len, bp_err *e) {
    struct stat st;
    int n = snprintf(path, len, "%s/%s", dir, base);
    if (n < 0 || (size_t)n + 3 >= len)
        return bp_fail(e, "%s: path too long (%d bytes)", dir, n);
    if (stat(path, &st) == 0) return 0;
    strcat(path, ".gz");
    if (stat(path, &st) == 0) return 0;
    /* Spell the hint with the real folder in place of DIR. */
    char hint[512];
    const char *h = get_hint(name);
    const char *at = strstr(h, "DIR");
    if (at)
        snprintf(hint, sizeof hint, "%.*s%s%s", (int)(at - h), h, dir, at + 3);
    else
        snprintf(hint, sizeof hint, "%s", h);
    return bp_fail(e, "%s: neither %s nor %s.gz found; %s", dir, base, base, hint);
}

/* Reads one split (images + labels) and checks the two files against each other. */
static int load_split(const char *dir, const char *name, const char *img_base,
                      const char *lbl_base, bp_split *s, bp_err *e) {
    char ip[4096], lp[4096];
    int idims[3], ldims[3];
    uint8_t *img = NULL, *lbl = NULL;
    memset(s, 0, sizeof *s);
    if (find_file(dir, img_base, name, ip, sizeof ip, e)) return -1;
    if (find_file(dir, lbl_base, name, lp, sizeof lp, e)) return -1;
    if (bp_idx_read(ip, 3, &img, idims, e)) return -1;
    if (idims[1] != 28 || idims[2] != 28) {
        bp_fail(e, "%s: images are %dx%d, expected 28x28 for %s; is this the right file?",
                ip, idims[1], idims[2], name);
        goto fail;
    }
    if (bp_idx_read(lp, 1, &lbl, ldims, e)) goto fail;
    if (ldims[0] != idims[0]) {
        bp_fail(e, "%s: %d labels, but %s has %d images; the two files do not belong "
                "together, re-fetch them", lp, ldims[0], ip, idims[0]);
        goto fail;
    }
    s->y = malloc((size_t)ldims[0] * sizeof *s->y);
    if (!s->y) {
        bp_fail(e, "%s: out of memory for %d labels", lp, ldims[0]);
        goto fail;
    }
    for (int i = 0; i < ldims[0]; i++) {
        if (lbl[i] >= 10) {
            bp_fail(e, "%s: label %d at index %d is out of range (%s has 10 classes, 0-9); the "
                    "file is damaged, re-fetch it", lp, lbl[i], i, name);
            goto fail;
        }
        s->y[i] = lbl[i];
    }
    free(lbl);
    s->n = idims[0];
    s->h = idims[1];
    s->w = idims[2];
    s->c = 1;
    s->x = img;
    return 0;
fail:
    free(img);
    free(lbl);
    free(s->y);
    memset(s, 0, sizeof *s);
    return -1;
}

int bp_mnist_load(const char *dir, const char *name, bp_dataset *d, bp_err *e) {
    memset(d, 0, sizeof *d);
    if (!name || !*name) name = "mnist";
    snprintf(d->name, sizeof d->name, "%s", name);
    d->classes = 10;
    if (load_split(dir, name, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", &d->train, e) ||
        load_split(dir, name, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", &d->test, e)) {
        bp_dataset_free(d);
        return -1;
    }
    return 0;
}

/* Returns buf, or NULL when the folder name does not fit in len bytes (never a
 * silently cut path). Empty environment variables count as unset, as XDG says. */
const char *bp_data_root(const char *flag, char *buf, size_t len) {
    const char *v;
    int n;
    if (flag)
        n = snprintf(buf, len, "%s", flag);
    else if ((v = getenv("BPC_DATA")) && *v)
        n = snprintf(buf, len, "%s", v);
    else if ((v = getenv("XDG_CACHE_HOME")) && *v == '/') /* XDG: a relative one is ignored */
        n = snprintf(buf, len, "%s/bpc/data", v);
    else {
        v = getenv("HOME");
        if (!v || !*v) {
            struct passwd *pw = getpwuid(getuid());
            v = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : ".";
        }
        n = snprintf(buf, len, "%s/.cache/bpc/data", v);
    }
    if (n < 0 || (size_t)n >= len) return NULL;
    return buf;
}
