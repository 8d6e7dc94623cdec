/* cifar.c: CIFAR-10 and CIFAR-100, binary version, from the extracted folder or the
 * distributed .tar.gz.
 *
 * The publisher's .bin files are fixed-size records: one label byte (CIFAR-10) or a
 * coarse and a fine label byte (CIFAR-100), then 3072 channel-planar pixel bytes:
 * 1024 red, 1024 green, 1024 blue, each plane 32x32 row-major. bpc keeps images NHWC,
 * so byte LB + ch*1024 + row*32 + col of a record goes to [row][col][ch].
 *
 * Each file is taken into memory whole (at most 154 MB), from the folder or from the
 * archive member through libarchive (in-process; no tar reader by hand), and parsed by
 * bp_cifar_parse, which both paths and the fuzz target share. Nothing in a file is
 * trusted: the size must be a whole, non-zero number of records and every label must
 * be in range (CIFAR-100: both labels), or the load fails naming the file.
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

#define PIX 3072  /* 32 * 32 * 3 */
#define MAX_FILES 6

typedef struct {
    const char *title;         /* in messages */
    const char *folder;        /* the extracted folder's standard name */
    const char *archive;       /* the distributed file's name */
    const char *fetch;         /* the `bpc data fetch` name */
    int nfiles;
    const char *files[MAX_FILES];
    int is_test[MAX_FILES];
    const char *names_file;    /* one class name per line */
    int classes;
} cifar_desc;

static const cifar_desc C10 = {
    "CIFAR-10", "cifar-10-batches-bin", "cifar-10-binary.tar.gz", "cifar10", 6,
    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
     "data_batch_5.bin", "test_batch.bin"},
    {0, 0, 0, 0, 0, 1}, "batches.meta.txt", 10,
};
static const cifar_desc C100 = {
    "CIFAR-100", "cifar-100-binary", "cifar-100-binary.tar.gz", "cifar100", 2,
    {"train.bin", "test.bin"}, {0, 1}, "fine_label_names.txt", 100,
};
static const cifar_desc C100C = {
    "CIFAR-100", "cifar-100-binary", "cifar-100-binary.tar.gz", "cifar100", 2,
    {"train.bin", "test.bin"}, {0, 1}, "coarse_label_names.txt", 20,
};

static const cifar_desc *desc_of(bp_cifar_kind k) {
    return k == BP_CIFAR10 ? &C10 : k == BP_CIFAR100 ? &C100 : &C100C;
}

/* What to do about a damaged file: get the archive again. */
#define FIX_FMT "re-download %s (`bpc data fetch %s` says from where)"

int bp_cifar_parse(const uint8_t *buf, size_t n, bp_cifar_kind kind, const char *what,
                   bp_split *s, bp_err *e) {
    const cifar_desc *D = desc_of(kind);
    const size_t lb = kind == BP_CIFAR10 ? 1 : 2, rec = lb + PIX;
    memset(s, 0, sizeof *s);
    if (n == 0)
        return bp_fail(e, "%s: empty file; it should hold %zu-byte %s records: " FIX_FMT, what,
                       rec, D->title, D->archive, D->fetch);
    if (n % rec)
        return bp_fail(e, "%s: %zu bytes is not a whole number of %zu-byte %s records (%zu "
                       "records and %zu bytes of a cut-off one); the file is truncated or not "
                       "the binary version: " FIX_FMT, what, n, rec, D->title, n / rec, n % rec,
                       D->archive, D->fetch);
    size_t count = n / rec;
    if (count > (size_t)1 << 20)  /* 20x the largest published file; keeps int indexing */
        return bp_fail(e, "%s: %zu records, more than any %s file holds; is this the right "
                       "file?", what, count, D->title);
    s->x = malloc(count * PIX);
    s->y = malloc(count * sizeof *s->y);
    if (!s->x || !s->y) {
        bp_split_free(s);
        return bp_fail(e, "%s: out of memory for %zu images", what, count);
    }
    for (size_t i = 0; i < count; i++) {
        const uint8_t *r = buf + i * rec;
        if (kind == BP_CIFAR10) {
            if (r[0] >= 10) {
                bp_fail(e, "%s: record %zu has label %d, out of range (CIFAR-10 has 10 classes, "
                        "0-9); the file is damaged: " FIX_FMT, what, i, r[0], D->archive, D->fetch);
                bp_split_free(s);
                return -1;
            }
        } else if (r[0] >= 20 || r[1] >= 100) {
            int coarse = r[0] >= 20;
            bp_fail(e, "%s: record %zu has %s label %d, out of range (CIFAR-100 has %s); the file "
                    "is damaged: " FIX_FMT, what, i, coarse ? "coarse" : "fine", r[coarse ? 0 : 1],
                    coarse ? "20 coarse classes, 0-19" : "100 fine classes, 0-99", D->archive,
                    D->fetch);
            bp_split_free(s);
            return -1;
        }
        s->y[i] = kind == BP_CIFAR100 ? r[1] : r[0];
        const uint8_t *R = r + lb, *G = R + 1024, *B = G + 1024;
        uint8_t *x = s->x + i * PIX;
        for (int p = 0; p < 1024; p++) {
            x[3 * p] = R[p];
            x[3 * p + 1] = G[p];
            x[3 * p + 2] = B[p];
        }
    }
    s->n = (int)count;
    s->h = s->w = 32;
    s->c = 3;
    return 0;
}

/* The class names from the text of D->names_file; exactly D->classes non-empty lines. */
static int parse_names(const cifar_desc *D, const char *what, const uint8_t *text, size_t n,
                       bp_dataset *d, bp_err *e) {
    int count = 0;
    char **names = bp_text_lines((const char *)text, n, &count);
    if (!names) return bp_fail(e, "%s: out of memory", what);
    if (count != D->classes) {
        bp_strings_free(names, count);
        return bp_fail(e, "%s: %d class names, expected %d (one per line); the file is damaged: "
                       FIX_FMT, what, count, D->classes, D->archive, D->fetch);
    }
    d->class_names = names;
    return 0;
}

/* Joins the parts of one split (in file order) into s. The parts are freed. */
static int join(bp_split parts[], const int take[], int np, bp_split *s, bp_err *e) {
    long total = 0;
    int first = -1, many = 0;
    for (int i = 0; i < np; i++)
        if (take[i]) {
            total += parts[i].n;
            if (first >= 0) many = 1;
            else first = i;
        }
    if (!many) {  /* one file (CIFAR-100, every test split): hand it over */
        *s = parts[first];
        memset(&parts[first], 0, sizeof parts[first]);
        return 0;
    }
    memset(s, 0, sizeof *s);
    s->x = malloc((size_t)total * PIX);
    s->y = malloc((size_t)total * sizeof *s->y);
    if (!s->x || !s->y) {
        bp_split_free(s);
        return bp_fail(e, "out of memory for %ld CIFAR images", total);
    }
    long at = 0;
    for (int i = 0; i < np; i++) {
        if (!take[i]) continue;
        memcpy(s->x + (size_t)at * PIX, parts[i].x, (size_t)parts[i].n * PIX);
        memcpy(s->y + at, parts[i].y, (size_t)parts[i].n * sizeof *s->y);
        at += parts[i].n;
        bp_split_free(&parts[i]);
    }
    s->n = (int)total;
    s->h = s->w = 32;
    s->c = 3;
    return 0;
}

static int load_folder(const cifar_desc *D, bp_cifar_kind kind, const char *src,
                       bp_split parts[], bp_dataset *d, bp_err *e) {
    char path[4200], hint[512];
    snprintf(hint, sizeof hint, "the %s folder is incomplete: extract %s again (`bpc data "
             "fetch %s` says where to get it)", D->title, D->archive, D->fetch);
    for (int i = 0; i < D->nfiles; i++) {
        uint8_t *buf;
        size_t n;
        snprintf(path, sizeof path, "%s/%s", src, D->files[i]);
        if (bp_read_whole(path, hint, &buf, &n, e)) return -1;
        int rc = bp_cifar_parse(buf, n, kind, path, &parts[i], e);
        free(buf);
        if (rc) return -1;
    }
    snprintf(path, sizeof path, "%s/%s", src, D->names_file);
    struct stat st;
    if (stat(path, &st) != 0) return 0;  /* no names: the data is complete without them */
    uint8_t *buf;
    size_t n;
    if (bp_read_whole(path, hint, &buf, &n, e)) return -1;
    int rc = parse_names(D, path, buf, n, d, e);
    free(buf);
    return rc;
}

static int load_archive(const cifar_desc *D, bp_cifar_kind kind, const char *src,
                        bp_split parts[], bp_dataset *d, bp_err *e) {
    char fix[512], what[4400];
    snprintf(fix, sizeof fix, FIX_FMT, D->archive, D->fetch);
    struct archive *a = archive_read_new();
    if (!a) return bp_fail(e, "libarchive: out of memory");
    archive_read_support_filter_gzip(a);  /* and plain tar; no external filter programs */
    archive_read_support_format_tar(a);
    int rc = 0, seen[MAX_FILES] = {0}, seen_names = 0;
    char first[MAX_FILES][256]; /* where each file was found, for the message */
    if (archive_read_open_filename(a, src, 1 << 16) != ARCHIVE_OK) {
        rc = bp_fail(e, "%s: cannot read the archive (libarchive: %s); %s", src,
                     archive_error_string(a), fix);
        goto done;
    }
    struct archive_entry *ent;
    int ar;
    while ((ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
        const char *p = archive_entry_pathname(ent);
        if (!p || archive_entry_filetype(ent) != AE_IFREG) continue;
        const char *base = bp_basename(p);
        int k = -1;
        for (int i = 0; i < D->nfiles; i++)
            if (!strcmp(base, D->files[i])) k = i;
        if (k >= 0 && seen[k]) { /* which copy is meant? a tar may append a newer one */
            rc = bp_fail(e, "%s: holds %s twice (%s, then %s); extract the one you mean into a "
                         "%s/ folder, or %s", src, base, first[k], p, D->folder, fix);
            goto done;
        }
        int is_names = k < 0 && !strcmp(base, D->names_file) && !seen_names;
        if (k < 0 && !is_names) continue;
        if (k >= 0) snprintf(first[k], sizeof first[k], "%s", p);
        snprintf(what, sizeof what, "%s:%s", src, p);
        uint8_t *buf;
        size_t n;
        if ((rc = bp_archive_member(a, ent, what, fix, &buf, &n, e))) goto done;
        if (is_names) {
            seen_names = 1;
            rc = parse_names(D, what, buf, n, d, e);
        } else {
            seen[k] = 1;
            rc = bp_cifar_parse(buf, n, kind, what, &parts[k], e);
        }
        free(buf);
        if (rc) goto done;
    }
    if (ar != ARCHIVE_EOF) {
        rc = bp_fail(e, "%s: damaged archive (libarchive: %s); %s", src, archive_error_string(a),
                     fix);
        goto done;
    }
    for (int i = 0; i < D->nfiles; i++)
        if (!seen[i]) {
            rc = bp_fail(e, "%s: has no %s/%s; the archive is incomplete or not the %s binary "
                         "version: %s", src, D->folder, D->files[i], D->title, fix);
            goto done;
        }
done:
    archive_read_free(a);
    return rc;
}

int bp_cifar_load(const char *src, bp_cifar_kind kind, bp_dataset *d, bp_err *e) {
    const cifar_desc *D = desc_of(kind);
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", kind == BP_CIFAR10 ? "cifar10" : kind == BP_CIFAR100
                                                 ? "cifar100" : "cifar100-coarse");
    d->classes = D->classes;  /* first: bp_dataset_free frees that many class names */
    struct stat st;
    if (stat(src, &st) != 0) {
        bp_fail(e, "%s: %s; give the %s/ folder or %s (`bpc data fetch %s` says where to get "
                "it)", src, strerror(errno), D->folder, D->archive, D->fetch);
        memset(d, 0, sizeof *d);  /* on error d is zeroed (data.h) */
        return -1;
    }
    bp_split parts[MAX_FILES];
    memset(parts, 0, sizeof parts);
    int rc = S_ISDIR(st.st_mode) ? load_folder(D, kind, src, parts, d, e)
                                 : load_archive(D, kind, src, parts, d, e);
    int tr[MAX_FILES], te[MAX_FILES];
    for (int i = 0; i < D->nfiles; i++) {
        tr[i] = !D->is_test[i];
        te[i] = D->is_test[i];
    }
    if (!rc) rc = join(parts, tr, D->nfiles, &d->train, e);
    if (!rc) rc = join(parts, te, D->nfiles, &d->test, e);
    for (int i = 0; i < MAX_FILES; i++) bp_split_free(&parts[i]);
    if (rc) {
        bp_dataset_free(d);
        return -1;
    }
    d->source = strdup(src);
    return 0;
}
