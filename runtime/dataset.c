/* dataset.c: one entry point for every data set (bp_dataset_load), where in the data
 * root each one lives, freeing, the validation hold-out, and the small file helpers
 * the readers share (data_priv.h).
 *
 * One data root serves every model: it may hold a data set's files directly, or the
 * publisher's standard folder or archive name (cifar-10-batches-bin/, tiny-imagenet-
 * 200.zip, ...), so a researcher points --data at the folder where the downloads
 * already are. The search order is fixed and documented in data.h, and a failed search
 * says every place it looked and how to get the data.
 */
#include "data.h"
#include "data_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- freeing ------------------------------------------------------------------------ */

void bp_split_free(bp_split *s) {
    if (!s) return;
    free(s->x);
    free(s->y);
    memset(s, 0, sizeof *s);
}

void bp_strings_free(char **s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
}

void bp_dataset_free(bp_dataset *d) {
    if (!d) return;
    bp_split_free(&d->train);
    bp_split_free(&d->test);
    bp_strings_free(d->class_names, d->classes);
    free(d->source);
    memset(d, 0, sizeof *d);
}

/* ---- the validation hold-out -------------------------------------------------------- */

int bp_split_holdout(bp_dataset *d, long n_val, bp_split *val, bp_err *e) {
    bp_split *t = &d->train;
    memset(val, 0, sizeof *val);
    if (n_val < 1 || n_val >= t->n)
        return bp_fail(e, "%s: cannot hold out %ld of the %d training images for validation; "
                       "give a number from 1 to %d", d->name, n_val, t->n, t->n - 1);
    size_t img = (size_t)t->h * (size_t)t->w * (size_t)t->c;
    long keep = t->n - n_val;
    val->x = malloc((size_t)n_val * img);
    val->y = malloc((size_t)n_val * sizeof *val->y);
    if (!val->x || !val->y) {
        bp_split_free(val);
        return bp_fail(e, "%s: out of memory for %ld validation images", d->name, n_val);
    }
    memcpy(val->x, t->x + (size_t)keep * img, (size_t)n_val * img);
    memcpy(val->y, t->y + keep, (size_t)n_val * sizeof *val->y);
    val->n = (int)n_val;
    val->h = t->h;
    val->w = t->w;
    val->c = t->c;
    /* Give the tail back; a failed shrink keeps the larger block, which is still right. */
    uint8_t *x = realloc(t->x, (size_t)keep * img);
    if (x) t->x = x;
    int *y = realloc(t->y, (size_t)keep * sizeof *t->y);
    if (y) t->y = y;
    t->n = (int)keep;
    return 0;
}

/* ---- file helpers (data_priv.h) -------------------------------------------------------- */

const char *bp_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int bp_read_whole(const char *path, const char *missing_hint, uint8_t **buf, size_t *n,
                  bp_err *e) {
    *buf = NULL;
    *n = 0;
    struct stat pre; /* before opening: opening a FIFO would wait for a writer forever */
    if (stat(path, &pre) == 0 && !S_ISREG(pre.st_mode)) return bp_fail(e, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return bp_fail(e, "%s: not found; %s", path, missing_hint);
        return bp_fail(e, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return bp_fail(e, "%s: not a regular file", path);
    }
    if (st.st_size > BP_MAX_MEMBER) {
        fclose(f);
        return bp_fail(e, "%s: %lld bytes, larger than any file of the data set; is this the "
                       "right file?", path, (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *b = malloc(len + 1);
    if (!b) {
        fclose(f);
        return bp_fail(e, "%s: out of memory for %zu bytes", path, len);
    }
    size_t got = fread(b, 1, len, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != len) {
        free(b);
        return bp_fail(e, "%s: read error: %s", path, err ? strerror(errno) : "file shrank");
    }
    b[len] = 0;
    *buf = b;
    *n = len;
    return 0;
}

int bp_archive_member(struct archive *a, struct archive_entry *ent, const char *what,
                      const char *fix, uint8_t **buf, size_t *n, bp_err *e) {
    *buf = NULL;
    *n = 0;
    long long want = archive_entry_size_is_set(ent) ? (long long)archive_entry_size(ent) : -1;
    if (want > BP_MAX_MEMBER)
        return bp_fail(e, "%s: %lld bytes, larger than any file of the data set; is this the "
                       "right archive?", what, want);
    size_t cap = want >= 0 ? (size_t)want + 1 : 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    if (!b) return bp_fail(e, "%s: out of memory", what);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > (size_t)BP_MAX_MEMBER) {
                free(b);
                return bp_fail(e, "%s: larger than any file of the data set; is this the right "
                               "archive?", what);
            }
            uint8_t *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return bp_fail(e, "%s: out of memory", what);
            }
            b = nb;
            cap *= 2;
        }
        la_ssize_t r = archive_read_data(a, b + len, cap - 1 - len);
        if (r < 0) {
            bp_fail(e, "%s: damaged archive (libarchive: %s); %s", what, archive_error_string(a),
                    fix);
            free(b);
            return -1;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    if (want >= 0 && (long long)len != want) {
        free(b);
        return bp_fail(e, "%s: damaged archive: the member is %lld bytes but %zu could be read; %s",
                       what, want, len, fix);
    }
    b[len] = 0;
    *buf = b;
    *n = len;
    return 0;
}

char **bp_text_lines(const char *text, size_t n, int *count) {
    *count = 0;
    int cap = 16;
    char **v = malloc(sizeof *v * (size_t)cap);
    if (!v) return NULL;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && text[j] != '\n') j++;
        size_t end = j;
        while (end > i && (text[end - 1] == ' ' || text[end - 1] == '\t' ||
                           text[end - 1] == '\r' || text[end - 1] == 0))
            end--;
        if (end > i) {
            if (*count == cap) {
                char **nv = realloc(v, sizeof *v * (size_t)cap * 2);
                if (!nv) {
                    bp_strings_free(v, *count);
                    return NULL;
                }
                v = nv;
                cap *= 2;
            }
            char *s = strndup(text + i, end - i);
            if (!s) {
                bp_strings_free(v, *count);
                return NULL;
            }
            v[(*count)++] = s;
        }
        i = j + 1;
    }
    return v;
}

/* ---- where each data set lives --------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *probe;    /* a file that marks a folder holding the data set directly */
    int probe_gz;         /* the probe may also be PROBE.gz (IDX files) */
    const char *folder;   /* the standard folder name under the root */
    const char *archive;  /* the standard archive name under the root, or NULL */
    const char *extra;    /* one more folder to look in (Debian's), or NULL */
    const char *how;      /* how to get it; %s is the root */
    long ntrain, ntest;   /* the published split sizes */
} where;

static const where WHERE[] = {
    {"mnist", "train-images-idx3-ubyte", 1, "mnist", NULL, NULL,
     "run `bpc data fetch mnist --data %s`", 60000, 10000},
    {"fashion-mnist", "train-images-idx3-ubyte", 1, "fashion-mnist", NULL, BP_FASHION_DEBIAN_DIR,
     "install the Debian package (`apt-get install dataset-fashion-mnist`), or put the four IDX "
     "files in %s/fashion-mnist", 60000, 10000},
    {"cifar10", "data_batch_1.bin", 0, "cifar-10-batches-bin", "cifar-10-binary.tar.gz", NULL,
     "download cifar-10-binary.tar.gz into %s (`bpc data fetch cifar10` says from where)",
     50000, 10000},
    {"cifar100", "train.bin", 0, "cifar-100-binary", "cifar-100-binary.tar.gz", NULL,
     "download cifar-100-binary.tar.gz into %s (`bpc data fetch cifar100` says from where)",
     50000, 10000},
    {"cifar100-coarse", "train.bin", 0, "cifar-100-binary", "cifar-100-binary.tar.gz", NULL,
     "download cifar-100-binary.tar.gz into %s (`bpc data fetch cifar100` says from where)",
     50000, 10000},
    {"tinyimagenet", "wnids.txt", 0, "tiny-imagenet-200", "tiny-imagenet-200.zip", NULL,
     "download tiny-imagenet-200.zip into %s (`bpc data fetch tinyimagenet` says from where)",
     100000, 10000},
};
#define NWHERE ((int)(sizeof WHERE / sizeof WHERE[0]))

int bp_dataset_known(const char *name) {
    return bp_dataset_published(name, NULL, NULL);
}

int bp_dataset_published(const char *name, long *ntrain, long *ntest) {
    for (int i = 0; i < NWHERE; i++) {
        if (strcmp(name, WHERE[i].name)) continue;
        if (ntrain) *ntrain = WHERE[i].ntrain;
        if (ntest) *ntest = WHERE[i].ntest;
        return 1;
    }
    return 0;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir holds the probe (or probe.gz) */
static int holds(const where *w, const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, w->probe);
    if (is_file(p)) return 1;
    if (!w->probe_gz) return 0;
    snprintf(p, sizeof p, "%s/%s.gz", dir, w->probe);
    return is_file(p);
}

static int put(char *path, size_t len, const char *a, const char *b, bp_err *e) {
    int n = b ? snprintf(path, len, "%s/%s", a, b) : snprintf(path, len, "%s", a);
    if (n < 0 || (size_t)n >= len) return bp_fail(e, "%s: path too long", a);
    return 0;
}

int bp_dataset_locate(const char *name, const char *root, char *path, size_t len,
                      int *is_archive, bp_err *e) {
    const where *w = NULL;
    for (int i = 0; i < NWHERE; i++)
        if (!strcmp(name, WHERE[i].name)) w = &WHERE[i];
    if (!w) return bp_fail(e, "unknown data set '%s'; bpc reads " BP_DATASETS, name);
    char rbuf[4096];
    if (!root && !(root = bp_data_root(NULL, rbuf, sizeof rbuf)))
        return bp_fail(e, "the data folder's name is too long; give --data DIR");
    if (is_archive) *is_archive = 0;
    char p[4200];
    if (is_file(root)) {  /* the archive itself */
        if (!w->archive)
            return bp_fail(e, "%s: is a file, but %s is read from a folder; give the folder that "
                           "holds %s%s", root, name, w->probe, w->probe_gz ? "[.gz]" : "");
        if (is_archive) *is_archive = 1;
        return put(path, len, root, NULL, e);
    }
    int root_ok = is_dir(root);
    if (root_ok && holds(w, root)) return put(path, len, root, NULL, e);
    snprintf(p, sizeof p, "%s/%s", root, w->folder);
    if (root_ok && holds(w, p)) return put(path, len, p, NULL, e);
    if (root_ok && w->archive) {
        snprintf(p, sizeof p, "%s/%s", root, w->archive);
        if (is_file(p)) {
            if (is_archive) *is_archive = 1;
            return put(path, len, p, NULL, e);
        }
    }
    if (w->extra && holds(w, w->extra)) return put(path, len, w->extra, NULL, e);

    char how[4400], looked[1024];
    snprintf(how, sizeof how, w->how, root);
    if (!root_ok) {
        struct stat st;
        int exists = stat(root, &st) == 0;
        return bp_fail(e, "%s: %s; give the data folder with --data DIR or $BPC_DATA, or %s", root,
                       exists ? "not a folder (nor a data set's archive)" : "no such folder", how);
    }
    int n = snprintf(looked, sizeof looked, "%s%s in it and in %s/", w->probe,
                     w->probe_gz ? "[.gz]" : "", w->folder);
    if (w->archive && n > 0 && (size_t)n < sizeof looked)
        n += snprintf(looked + n, sizeof looked - (size_t)n, ", and for %s", w->archive);
    if (w->extra && n > 0 && (size_t)n < sizeof looked)
        snprintf(looked + n, sizeof looked - (size_t)n, ", and in %s", w->extra);
    return bp_fail(e, "%s: no %s data here (looked for %s); %s", root, name, looked, how);
}

/* ---- loading ------------------------------------------------------------------------- */

static const char *const FASHION_NAMES[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

int bp_dataset_load(const char *name, const char *root, bp_dataset *d, bp_err *e) {
    memset(d, 0, sizeof *d);
    char src[4200];
    if (bp_dataset_locate(name, root, src, sizeof src, NULL, e)) return -1;
    int rc;
    if (!strcmp(name, "mnist") || !strcmp(name, "fashion-mnist")) {
        rc = bp_mnist_load(src, name, d, e);
        if (!rc) d->source = strdup(src);
        if (!rc && !strcmp(name, "fashion-mnist") && (d->class_names = calloc(10, sizeof(char *))))
            for (int i = 0; i < 10; i++) d->class_names[i] = strdup(FASHION_NAMES[i]);
    } else if (!strcmp(name, "cifar10")) {
        rc = bp_cifar_load(src, BP_CIFAR10, d, e);
    } else if (!strcmp(name, "cifar100")) {
        rc = bp_cifar_load(src, BP_CIFAR100, d, e);
    } else if (!strcmp(name, "cifar100-coarse")) {
        rc = bp_cifar_load(src, BP_CIFAR100_COARSE, d, e);
    } else {
        rc = bp_tinyimagenet_load(src, d, stderr, e);
    }
    return rc;
}
