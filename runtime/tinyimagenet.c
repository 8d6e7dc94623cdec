/* tinyimagenet.c: Tiny ImageNet (tiny-imagenet-200/ or tiny-imagenet-200.zip), its JPEGs
 * decoded with libjpeg-turbo, and the one-file cache of the decoded arrays.
 *
 * Loading goes in three steps:
 *   1. List the source without decoding anything: wnids.txt (the classes, in its
 *      order), train/<wnid>/images/NAME.JPEG, val/val_annotations.txt and the val
 *      images it names. The zip is read with libarchive; its listing pass skips the
 *      JPEG data. The listing (every path, size, mtime, label and place) is hashed
 *      with SHA-256.
 *   2. If a cache file with that hash, the same counts and shape, and an intact CRC-32
 *      exists, read it (seconds for the 1.35 GB of pixels).
 *   3. Otherwise decode the 110,000 JPEGs (grayscale ones replicated to RGB; every one
 *      must be 64x64) into their places, and write the cache atomically: a temp file
 *      in the same folder, fsync, rename, fsync of the folder. A crash leaves either
 *      the old cache or the new one, never half of one.
 *
 * Train images are sorted by name within each class and stored round-robin over the
 * classes, so that holding out the last N (bp_split_holdout) takes N/200 of each. The
 * test split is the official val split in val_annotations.txt's order.
 *
 * Cache file, all integers little-endian:
 *   0   8  magic "BPCTINY\0"          8   4  version (CACHE_VERSION)
 *   12  4  header bytes (128)         16 12  h, w, c (64, 64, 3)
 *   28  4  classes                    32 16  ntrain, ntest (8 bytes each)
 *   48 32  SHA-256 of the listing     80  8  payload bytes
 *   88  4  CRC-32 of the payload      92 32  zero
 *   124 4  CRC-32 of bytes 0..123
 *   payload: train x [ntrain,64,64,3], test x [ntest,64,64,3], train y, test y (int32)
 */
#include "data.h"
#include "data_priv.h"
#include "jit_c.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
/* jpeglib.h needs stdio.h (FILE, size_t) first */
#include <jerror.h>
#include <jpeglib.h>

#define S BP_TIN_SIZE
#define PIX ((size_t)S * S * 3)
#define CACHE_MAGIC "BPCTINY"  /* 7 chars + NUL = the 8 magic bytes */
#define CACHE_VERSION 1
#define HDR 128
#define MAX_IMAGES (1L << 24)

#define FIX "re-extract tiny-imagenet-200.zip, or download it again (`bpc data fetch " \
            "tinyimagenet` says from where)"

/* ---- JPEG -------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int cut;                       /* a warning that means the data ended early */
    char msg[JMSG_LENGTH_MAX];     /* the error */
    char cut_msg[JMSG_LENGTH_MAX]; /* that warning */
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_err *j = (jpeg_err *)c->err;
    (*c->err->format_message)(c, j->msg);
    longjmp(j->jb, 1);
}

/* Warnings are counted, not printed. Running out of data is a damaged file (libjpeg
 * would fill the rest with grey); other warnings are tolerated as other decoders do. */
static void jpeg_on_message(j_common_ptr c, int level) {
    jpeg_err *j = (jpeg_err *)c->err;
    if (level >= 0) return;
    if (c->err->msg_code == JWRN_JPEG_EOF || c->err->msg_code == JWRN_HIT_MARKER) {
        if (!j->cut) (*c->err->format_message)(c, j->cut_msg);
        j->cut = 1;
    }
    c->err->num_warnings++;
}

int bp_jpeg_decode_rgb(const uint8_t *buf, size_t n, const char *what, int h, int w,
                       uint8_t *out, bp_err *e) {
    if (n == 0) return bp_fail(e, "%s: empty file (0 bytes), not a JPEG; " FIX, what);
    if (n > ULONG_MAX) return bp_fail(e, "%s: too large for a JPEG", what);
    struct jpeg_decompress_struct cinfo;
    jpeg_err je;
    memset(&je, 0, sizeof je);
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.emit_message = jpeg_on_message;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&cinfo);
        if (je.cut)  /* the error follows from running out of data: say that */
            return bp_fail(e, "%s: the JPEG is cut short (libjpeg: %s); " FIX, what, je.cut_msg);
        return bp_fail(e, "%s: cannot decode the JPEG (libjpeg: %s); " FIX, what, je.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    const char *bad = NULL;
    if (cinfo.image_width != (JDIMENSION)w || cinfo.image_height != (JDIMENSION)h) {
        bp_fail(e, "%s: the image is %ux%u, expected %dx%d (Tiny ImageNet's size); is this file "
                "from tiny-imagenet-200?", what, (unsigned)cinfo.image_width,
                (unsigned)cinfo.image_height, w, h);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: case JCS_YCbCr: case JCS_RGB: break;
    case JCS_CMYK: bad = "CMYK"; break;
    case JCS_YCCK: bad = "YCCK"; break;
    default: bad = "unknown"; break;
    }
    if (bad) {
        bp_fail(e, "%s: the JPEG's colour space is %s; bpc reads grayscale and RGB JPEGs, as "
                "Tiny ImageNet has; " FIX, what, bad);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    cinfo.out_color_space = JCS_RGB;  /* libjpeg-turbo replicates gray to R = G = B */
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3 || cinfo.output_width != (JDIMENSION)w ||
        cinfo.output_height != (JDIMENSION)h) {
        bp_fail(e, "%s: libjpeg gives %d components at %ux%u, expected RGB %dx%d", what,
                cinfo.output_components, (unsigned)cinfo.output_width,
                (unsigned)cinfo.output_height, w, h);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = out + (size_t)cinfo.output_scanline * (size_t)w * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    if (je.cut)
        return bp_fail(e, "%s: the JPEG is cut short (libjpeg: %s); " FIX, what, je.cut_msg);
    return 0;
}

/* ---- the listing ----------------------------------------------------------------------- */

typedef struct {
    char *rel;             /* path under the data set's folder: train/W/images/F, val/images/F */
    long long size, mtime;
    int label, test;
} tin_img;

typedef struct {
    const char *src;
    int zip;
    char *prefix;          /* zip: what precedes wnids.txt in the member names ("" or "x/") */
    int classes;
    char **wnids, **names; /* [classes] */
    int *order;            /* wnid indices sorted by wnid, for bsearch */
    tin_img *img;          /* train in their final (round-robin) order, then test */
    long n, cap, ntrain, ntest;
    uint8_t hash[32];
} tin_list;

static void list_free(tin_list *L) {
    bp_strings_free(L->wnids, L->classes);
    bp_strings_free(L->names, L->classes);
    free(L->order);
    free(L->prefix);
    for (long i = 0; i < L->n; i++) free(L->img[i].rel);
    free(L->img);
    memset(L, 0, sizeof *L);
}

static int push(tin_list *L, const char *rel, long long size, long long mtime, int label,
                int test, bp_err *e) {
    if (L->n >= MAX_IMAGES) return bp_fail(e, "%s: more than %ld images", L->src, MAX_IMAGES);
    if (L->n == L->cap) {
        long cap = L->cap ? 2 * L->cap : 1024;
        tin_img *v = realloc(L->img, sizeof *v * (size_t)cap);
        if (!v) return bp_fail(e, "%s: out of memory", L->src);
        L->img = v;
        L->cap = cap;
    }
    char *r = strdup(rel);
    if (!r) return bp_fail(e, "%s: out of memory", L->src);
    L->img[L->n++] = (tin_img){r, size, mtime, label, test};
    return 0;
}

static const tin_list *g_sort_list;  /* qsort has no context argument in C11 */
static int cmp_wnid(const void *a, const void *b) {
    return strcmp(g_sort_list->wnids[*(const int *)a], g_sort_list->wnids[*(const int *)b]);
}

/* The class of a wnid, or -1. */
static int find_wnid(const tin_list *L, const char *w, size_t len) {
    int lo = 0, hi = L->classes - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const char *m = L->wnids[L->order[mid]];
        int c = strncmp(w, m, len);
        if (c == 0 && m[len]) c = -1;
        if (c == 0) return L->order[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

static int ok_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* wnids.txt -> classes (validated: plain names, no duplicates); words.txt (optional)
 * -> names. `where` names the files in messages. */
static int read_classes(tin_list *L, const uint8_t *wn, size_t wn_n, const char *wn_what,
                        const uint8_t *words, size_t words_n, bp_err *e) {
    L->wnids = bp_text_lines((const char *)wn, wn_n, &L->classes);
    if (!L->wnids) return bp_fail(e, "%s: out of memory", wn_what);
    if (L->classes <= 0)
        return bp_fail(e, "%s: no class ids in it; the file is damaged: " FIX, wn_what);
    for (int k = 0; k < L->classes; k++) {
        const char *w = L->wnids[k];
        int ok = strcmp(w, ".") && strcmp(w, "..");
        for (const char *p = w; *p && ok; p++) ok = ok_name_char(*p);
        if (!ok)
            return bp_fail(e, "%s: class %d: '%.60s' is not a class id (a WordNet id such as "
                           "n01443537); the file is damaged: " FIX, wn_what, k + 1, w);
    }
    L->order = malloc(sizeof *L->order * (size_t)L->classes);
    L->names = calloc((size_t)L->classes, sizeof *L->names);
    if (!L->order || !L->names) return bp_fail(e, "%s: out of memory", wn_what);
    for (int k = 0; k < L->classes; k++) L->order[k] = k;
    g_sort_list = L;
    qsort(L->order, (size_t)L->classes, sizeof *L->order, cmp_wnid);
    for (int k = 1; k < L->classes; k++)
        if (!strcmp(L->wnids[L->order[k]], L->wnids[L->order[k - 1]]))
            return bp_fail(e, "%s: class id %s is listed twice; the file is damaged: " FIX,
                           wn_what, L->wnids[L->order[k]]);
    /* words.txt: "wnid<TAB>words" for all of ImageNet; keep the lines of our classes */
    const char *t = (const char *)words, *end = t + words_n;
    while (t && t < end) {
        const char *nl = memchr(t, '\n', (size_t)(end - t));
        const char *le = nl ? nl : end;
        const char *tab = memchr(t, '\t', (size_t)(le - t));
        if (tab) {
            int k = find_wnid(L, t, (size_t)(tab - t));
            const char *we = le;
            while (we > tab + 1 && (we[-1] == '\r' || we[-1] == ' ')) we--;
            if (k >= 0 && !L->names[k] && we > tab + 1 &&
                !(L->names[k] = strndup(tab + 1, (size_t)(we - tab - 1))))
                return bp_fail(e, "%s: out of memory", wn_what);
        }
        t = nl ? nl + 1 : NULL;
    }
    for (int k = 0; k < L->classes; k++)
        if (!L->names[k] && !(L->names[k] = strdup(L->wnids[k])))
            return bp_fail(e, "%s: out of memory", wn_what);
    return 0;
}

/* Is `name` a JPEG file name (.JPEG, .jpeg, .jpg, any case)? */
static int is_jpeg_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && dot != name && (!strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".jpg"));
}

static int cmp_train(const void *a, const void *b) {
    const tin_img *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

/* Reorders L->img[0..ntrain) from class order to round-robin over classes. */
static int round_robin(tin_list *L, bp_err *e) {
    long nt = L->ntrain;
    qsort(L->img, (size_t)nt, sizeof *L->img, cmp_train);
    long *start = calloc((size_t)L->classes + 1, sizeof *start);
    tin_img *v = malloc(sizeof *v * (size_t)(nt ? nt : 1));
    if (!start || !v) {
        free(start);
        free(v);
        return bp_fail(e, "%s: out of memory", L->src);
    }
    for (long i = 0; i < nt; i++) start[L->img[i].label + 1]++;
    long most = 0;
    for (int k = 0; k < L->classes; k++) {
        if (start[k + 1] > most) most = start[k + 1];
        start[k + 1] += start[k];
    }
    long at = 0;
    for (long j = 0; j < most; j++)
        for (int k = 0; k < L->classes; k++)
            if (start[k] + j < start[k + 1]) v[at++] = L->img[start[k] + j];
    memcpy(L->img, v, sizeof *v * (size_t)nt);
    free(v);
    free(start);
    return 0;
}

/* Parses val_annotations.txt ("FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1" per line) and
 * calls found(ctx, line, file, label) for each; that looks the image up and pushes it. */
typedef int (*val_fn)(tin_list *L, void *ctx, int line, const char *file, int label, bp_err *e);
static int read_val(tin_list *L, const char *what, const uint8_t *txt, size_t n, val_fn found,
                    void *ctx, bp_err *e) {
    const char *t = (const char *)txt, *end = t + n;
    char file[256];
    for (int line = 1; t < end; line++) {
        const char *nl = memchr(t, '\n', (size_t)(end - t));
        const char *le = nl ? nl : end;
        while (le > t && (le[-1] == '\r' || le[-1] == ' ')) le--;
        if (le > t) {
            const char *t1 = memchr(t, '\t', (size_t)(le - t));
            const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(le - t1 - 1)) : NULL;
            const char *we = t2 ? t2 : le;
            int bad_file = !t1 || t1 == t || (size_t)(t1 - t) >= sizeof file;
            for (const char *p = t; !bad_file && p < t1; p++) bad_file = !ok_name_char(*p);
            if (bad_file || we == t1 + 1)
                return bp_fail(e, "%s:%d: expected FILE<TAB>CLASS-ID<TAB>box, found '%.*s'; the "
                               "file is damaged: " FIX, what, line,
                               (int)((le - t) > 60 ? 60 : (le - t)), t);
            int k = find_wnid(L, t1 + 1, (size_t)(we - t1 - 1));
            if (k < 0)
                return bp_fail(e, "%s:%d: class %.*s is not in wnids.txt; the files do not belong "
                               "together: " FIX, what, line, (int)((we - t1 - 1) > 60 ? 60 :
                               (we - t1 - 1)), t1 + 1);
            memcpy(file, t, (size_t)(t1 - t));
            file[t1 - t] = 0;
            if (found(L, ctx, line, file, k, e)) return -1;
        }
        t = nl ? nl + 1 : end;
    }
    if (L->n - L->ntrain == 0)
        return bp_fail(e, "%s: no images listed; the file is damaged: " FIX, what);
    return 0;
}

static void hash_listing(tin_list *L) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    char line[600];
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    int n = snprintf(line, sizeof line, "bpc tinyimagenet listing %d\n%d classes\n", CACHE_VERSION,
                     L->classes);
    EVP_DigestUpdate(c, line, (size_t)n);
    for (int k = 0; k < L->classes; k++) {
        EVP_DigestUpdate(c, L->wnids[k], strlen(L->wnids[k]));
        EVP_DigestUpdate(c, "\n", 1);
    }
    for (long i = 0; i < L->n; i++) {
        const tin_img *m = &L->img[i];
        n = snprintf(line, sizeof line, "%s\t%lld\t%lld\t%d\t%d\n", m->rel, m->size, m->mtime,
                     m->label, m->test);
        EVP_DigestUpdate(c, line, (size_t)(n < (int)sizeof line ? n : (int)sizeof line - 1));
    }
    unsigned int len = 0;
    EVP_DigestFinal_ex(c, L->hash, &len);
    EVP_MD_CTX_free(c);
}

/* ---- listing a folder ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_class_dir(tin_list *L, int k, bp_err *e) {
    char dir[4400], path[4700], rel[600];
    snprintf(dir, sizeof dir, "%s/train/%s/images", L->src, L->wnids[k]);
    DIR *d = opendir(dir);
    if (!d)
        return bp_fail(e, "%s: %s; every class in wnids.txt (here %s, line %d) needs its "
                       "training images there: " FIX, dir, strerror(errno), L->wnids[k], k + 1);
    char **names = NULL;
    int nn = 0, cap = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!is_jpeg_name(de->d_name) || strlen(de->d_name) > 200) continue;
        if (nn == cap) {
            cap = cap ? 2 * cap : 512;
            char **v = realloc(names, sizeof *v * (size_t)cap);
            if (!v) { rc = bp_fail(e, "%s: out of memory", dir); break; }
            names = v;
        }
        if (!(names[nn] = strdup(de->d_name))) { rc = bp_fail(e, "%s: out of memory", dir); break; }
        nn++;
    }
    closedir(d);
    if (!rc && nn == 0)
        rc = bp_fail(e, "%s: no JPEG files; every class needs its training images: " FIX, dir);
    if (!rc) qsort(names, (size_t)nn, sizeof *names, cmp_str);
    for (int i = 0; i < nn && !rc; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0) {
            rc = bp_fail(e, "%s: %s", path, strerror(errno));
            break;
        }
        snprintf(rel, sizeof rel, "train/%s/images/%s", L->wnids[k], names[i]);
        rc = push(L, rel, (long long)st.st_size, (long long)st.st_mtime, k, 0, e);
    }
    bp_strings_free(names, nn);
    return rc;
}

static int val_in_folder(tin_list *L, void *ctx, int line, const char *file, int label,
                         bp_err *e) {
    (void)ctx;
    char path[4600], rel[300];
    struct stat st;
    snprintf(path, sizeof path, "%s/val/images/%s", L->src, file);
    if (stat(path, &st) != 0)
        return bp_fail(e, "%s: %s, but line %d of val_annotations.txt names it: " FIX, path,
                       strerror(errno), line);
    snprintf(rel, sizeof rel, "val/images/%s", file);
    return push(L, rel, (long long)st.st_size, (long long)st.st_mtime, label, 1, e);
}

static int list_folder(tin_list *L, bp_err *e) {
    char path[4400];
    uint8_t *wn = NULL, *words = NULL, *val = NULL;
    size_t wn_n = 0, words_n = 0, val_n = 0;
    int rc;
    snprintf(path, sizeof path, "%s/wnids.txt", L->src);
    if ((rc = bp_read_whole(path, "it lists Tiny ImageNet's classes: " FIX, &wn, &wn_n, e)))
        goto done;
    snprintf(path, sizeof path, "%s/words.txt", L->src);
    struct stat st;
    if (stat(path, &st) == 0 && (rc = bp_read_whole(path, FIX, &words, &words_n, e))) goto done;
    snprintf(path, sizeof path, "%s/wnids.txt", L->src);
    if ((rc = read_classes(L, wn, wn_n, path, words, words_n, e))) goto done;
    for (int k = 0; k < L->classes && !rc; k++) rc = list_class_dir(L, k, e);
    if (rc) goto done;
    L->ntrain = L->n;
    snprintf(path, sizeof path, "%s/val/val_annotations.txt", L->src);
    if ((rc = bp_read_whole(path, "it labels the val split, which bpc uses as the test split: "
                            FIX, &val, &val_n, e)))
        goto done;
    rc = read_val(L, path, val, val_n, val_in_folder, NULL, e);
done:
    free(wn);
    free(words);
    free(val);
    return rc;
}

/* ---- listing a zip ------------------------------------------------------------------ */

typedef struct {
    char *path;
    long long size, mtime;
} zip_ent;

typedef struct {
    zip_ent *v;
    long n, cap;
    uint8_t *text[3];      /* wnids.txt, words.txt, val/val_annotations.txt */
    size_t text_n[3];
    char *text_path[3];
    int text_depth[3];
} zip_list;

static const char *const TEXTS[3] = {"wnids.txt", "words.txt", "val_annotations.txt"};

static void zip_list_free(zip_list *z) {
    for (long i = 0; i < z->n; i++) free(z->v[i].path);
    free(z->v);
    for (int i = 0; i < 3; i++) {
        free(z->text[i]);
        free(z->text_path[i]);
    }
    memset(z, 0, sizeof *z);
}

static int cmp_zip_ent(const void *a, const void *b) {
    return strcmp(((const zip_ent *)a)->path, ((const zip_ent *)b)->path);
}

static int depth_of(const char *p) {
    int d = 0;
    for (; *p; p++) d += *p == '/';
    return d;
}

static struct archive *zip_open(const char *src, bp_err *e) {
    struct archive *a = archive_read_new();
    if (!a) {
        bp_fail(e, "libarchive: out of memory");
        return NULL;
    }
    archive_read_support_format_zip(a);
    if (archive_read_open_filename(a, src, 1 << 16) != ARCHIVE_OK) {
        bp_fail(e, "%s: cannot read the zip (libarchive: %s); " FIX, src, archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Pass 1: every regular member's name, size and mtime, and the three text files (the
 * shallowest member of each name). The JPEG data is skipped. */
static int zip_scan(const char *src, zip_list *z, bp_err *e) {
    struct archive *a = zip_open(src, e);
    if (!a) return -1;
    struct archive_entry *ent;
    int ar, rc = 0;
    char what[4400];
    while ((ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
        const char *p = archive_entry_pathname(ent);
        if (!p || archive_entry_filetype(ent) != AE_IFREG) continue;
        if (z->n >= MAX_IMAGES) {
            rc = bp_fail(e, "%s: more than %ld members; is this tiny-imagenet-200.zip?", src,
                         MAX_IMAGES);
            break;
        }
        if (z->n == z->cap) {
            long cap = z->cap ? 2 * z->cap : 1024;
            zip_ent *v = realloc(z->v, sizeof *v * (size_t)cap);
            if (!v) { rc = bp_fail(e, "%s: out of memory", src); break; }
            z->v = v;
            z->cap = cap;
        }
        zip_ent *m = &z->v[z->n];
        if (!(m->path = strdup(p))) { rc = bp_fail(e, "%s: out of memory", src); break; }
        m->size = archive_entry_size_is_set(ent) ? (long long)archive_entry_size(ent) : -1;
        m->mtime = (long long)archive_entry_mtime(ent);
        z->n++;
        for (int t = 0; t < 3; t++) {
            if (strcmp(bp_basename(p), TEXTS[t]) || (z->text[t] && z->text_depth[t] <= depth_of(p)))
                continue;
            free(z->text[t]);
            free(z->text_path[t]);
            z->text[t] = NULL;
            z->text_path[t] = strdup(p);
            z->text_depth[t] = depth_of(p);
            snprintf(what, sizeof what, "%s:%s", src, p);
            if (!z->text_path[t]) rc = bp_fail(e, "%s: out of memory", src);
            else rc = bp_archive_member(a, ent, what, FIX, &z->text[t], &z->text_n[t], e);
            break;
        }
        if (rc) break;
    }
    if (!rc && ar != ARCHIVE_EOF)
        rc = bp_fail(e, "%s: damaged zip (libarchive: %s); " FIX, src, archive_error_string(a));
    archive_read_free(a);
    if (!rc) qsort(z->v, (size_t)z->n, sizeof *z->v, cmp_zip_ent);
    return rc;
}

static const zip_ent *zip_find(const zip_list *z, const char *path) {
    zip_ent key = {(char *)path, 0, 0};
    return bsearch(&key, z->v, (size_t)z->n, sizeof *z->v, cmp_zip_ent);
}

static int val_in_zip(tin_list *L, void *ctx, int line, const char *file, int label, bp_err *e) {
    const zip_list *z = ctx;
    char path[600];
    snprintf(path, sizeof path, "%sval/images/%s", L->prefix, file);
    const zip_ent *m = zip_find(z, path);
    if (!m)
        return bp_fail(e, "%s: has no %s, but line %d of val_annotations.txt names it: " FIX,
                       L->src, path, line);
    return push(L, path + strlen(L->prefix), m->size, m->mtime, label, 1, e);
}

static int list_zip(tin_list *L, bp_err *e) {
    zip_list z;
    memset(&z, 0, sizeof z);
    char what[4400];
    int rc = zip_scan(L->src, &z, e);
    if (rc) goto done;
    if (!z.text[0]) {
        rc = bp_fail(e, "%s: has no wnids.txt; this is not tiny-imagenet-200.zip: " FIX, L->src);
        goto done;
    }
    const char *wp = z.text_path[0];
    L->prefix = strndup(wp, strlen(wp) - strlen("wnids.txt"));
    if (!L->prefix) { rc = bp_fail(e, "%s: out of memory", L->src); goto done; }
    size_t pl = strlen(L->prefix);
    snprintf(what, sizeof what, "%s:%s", L->src, wp);
    /* words.txt counts only beside wnids.txt */
    int words_ok = z.text[1] && !strncmp(z.text_path[1], L->prefix, pl) &&
                   !strcmp(z.text_path[1] + pl, "words.txt");
    if ((rc = read_classes(L, z.text[0], z.text_n[0], what, words_ok ? z.text[1] : NULL,
                           words_ok ? z.text_n[1] : 0, e)))
        goto done;
    /* train/<wnid>/images/<file>.JPEG under the prefix */
    for (long i = 0; i < z.n; i++) {
        const char *p = z.v[i].path;
        if (strncmp(p, L->prefix, pl) || strncmp(p + pl, "train/", 6)) continue;
        const char *w = p + pl + 6, *slash = strchr(w, '/');
        if (!slash || strncmp(slash, "/images/", 8)) continue;
        const char *f = slash + 8;
        if (strchr(f, '/') || !is_jpeg_name(f) || strlen(p + pl) > 500) continue;
        int k = find_wnid(L, w, (size_t)(slash - w));
        if (k < 0) continue;
        if ((rc = push(L, p + pl, z.v[i].size, z.v[i].mtime, k, 0, e))) goto done;
    }
    L->ntrain = L->n;
    {
        int *have = calloc((size_t)L->classes, sizeof *have);
        if (!have) { rc = bp_fail(e, "%s: out of memory", L->src); goto done; }
        for (long i = 0; i < L->n; i++) have[L->img[i].label] = 1;
        for (int k = 0; k < L->classes && !rc; k++)
            if (!have[k])
                rc = bp_fail(e, "%s: has no %strain/%s/images/ JPEGs; every class in wnids.txt "
                             "(here line %d) needs its training images: " FIX, L->src, L->prefix,
                             L->wnids[k], k + 1);
        free(have);
        if (rc) goto done;
    }
    int val_ok = z.text[2] && !strncmp(z.text_path[2], L->prefix, pl) &&
                 !strcmp(z.text_path[2] + pl, "val/val_annotations.txt");
    if (!val_ok) {
        rc = bp_fail(e, "%s: has no %sval/val_annotations.txt; it labels the val split, which "
                     "bpc uses as the test split: " FIX, L->src, L->prefix);
        goto done;
    }
    snprintf(what, sizeof what, "%s:%s", L->src, z.text_path[2]);
    rc = read_val(L, what, z.text[2], z.text_n[2], val_in_zip, &z, e);
done:
    zip_list_free(&z);
    return rc;
}

/* Lists src (a folder or the zip) into L, in final order, with the hash. */
static int list_source(const char *src, tin_list *L, bp_err *e) {
    memset(L, 0, sizeof *L);
    L->src = src;
    struct stat st;
    if (stat(src, &st) != 0)
        return bp_fail(e, "%s: %s; give the tiny-imagenet-200/ folder or tiny-imagenet-200.zip "
                       "(`bpc data fetch tinyimagenet` says where to get it)", src, strerror(errno));
    L->zip = !S_ISDIR(st.st_mode);
    int rc = L->zip ? list_zip(L, e) : list_folder(L, e);
    if (!rc) {
        L->ntest = L->n - L->ntrain;
        rc = round_robin(L, e);
    }
    if (!rc) hash_listing(L);
    if (rc) list_free(L);
    return rc;
}

int bp_tinyimagenet_count(const char *src, int *classes, long *ntrain, long *ntest, bp_err *e) {
    tin_list L;
    if (list_source(src, &L, e)) return -1;
    *classes = L.classes;
    *ntrain = L.ntrain;
    *ntest = L.ntest;
    list_free(&L);
    return 0;
}

/* ---- decoding ----------------------------------------------------------------------- */

static uint8_t *slot_of(const tin_list *L, bp_dataset *d, long i) {
    return i < L->ntrain ? d->train.x + (size_t)i * PIX : d->test.x + (size_t)(i - L->ntrain) * PIX;
}

static int decode_folder(const tin_list *L, bp_dataset *d, bp_err *e) {
    char path[4800];
    for (long i = 0; i < L->n; i++) {
        uint8_t *buf;
        size_t n;
        snprintf(path, sizeof path, "%s/%s", L->src, L->img[i].rel);
        if (bp_read_whole(path, "it was there when the folder was listed", &buf, &n, e)) return -1;
        int rc = bp_jpeg_decode_rgb(buf, n, path, S, S, slot_of(L, d, i), e);
        free(buf);
        if (rc) return -1;
    }
    return 0;
}

static const tin_list *g_rel_list;
static int cmp_rel(const void *a, const void *b) {
    return strcmp(g_rel_list->img[*(const long *)a].rel, g_rel_list->img[*(const long *)b].rel);
}

/* Pass 2 over the zip: decode each listed member into its place. */
static int decode_zip(const tin_list *L, bp_dataset *d, bp_err *e) {
    long *by_rel = malloc(sizeof *by_rel * (size_t)(L->n ? L->n : 1));
    char *done = calloc((size_t)(L->n ? L->n : 1), 1);
    if (!by_rel || !done) {
        free(by_rel);
        free(done);
        return bp_fail(e, "%s: out of memory", L->src);
    }
    for (long i = 0; i < L->n; i++) by_rel[i] = i;
    g_rel_list = L;
    qsort(by_rel, (size_t)L->n, sizeof *by_rel, cmp_rel);
    /* one image named twice would be listed twice and decoded once */
    for (long i = 1; i < L->n; i++)
        if (!strcmp(L->img[by_rel[i - 1]].rel, L->img[by_rel[i]].rel)) {
            bp_fail(e, "%s: holds %s%s twice (a damaged or re-zipped archive): " FIX, L->src,
                    L->prefix, L->img[by_rel[i]].rel);
            free(by_rel);
            free(done);
            return -1;
        }
    int rc = 0, ar = ARCHIVE_EOF;
    long ndone = 0;
    size_t pl = strlen(L->prefix);
    char what[4400];
    struct archive *a = zip_open(L->src, e);
    if (!a) rc = -1;
    struct archive_entry *ent;
    while (!rc && ((ar = archive_read_next_header(a, &ent)) == ARCHIVE_OK || ar == ARCHIVE_WARN)) {
        const char *p = archive_entry_pathname(ent);
        if (!p || archive_entry_filetype(ent) != AE_IFREG || strncmp(p, L->prefix, pl)) continue;
        long lo = 0, hi = L->n - 1, hit = -1;
        while (lo <= hi) {
            long mid = (lo + hi) / 2;
            int c = strcmp(p + pl, L->img[by_rel[mid]].rel);
            if (c == 0) { hit = by_rel[mid]; break; }
            if (c < 0) hi = mid - 1;
            else lo = mid + 1;
        }
        if (hit < 0 || done[hit]) continue;
        uint8_t *buf;
        size_t n;
        snprintf(what, sizeof what, "%s:%s", L->src, p);
        if ((rc = bp_archive_member(a, ent, what, FIX, &buf, &n, e))) break;
        rc = bp_jpeg_decode_rgb(buf, n, what, S, S, slot_of(L, d, hit), e);
        free(buf);
        done[hit] = 1;
        ndone++;
    }
    if (!rc && ar != ARCHIVE_EOF)
        rc = bp_fail(e, "%s: damaged zip (libarchive: %s); " FIX, L->src, archive_error_string(a));
    if (!rc && ndone != L->n)
        rc = bp_fail(e, "%s: changed while it was read (%ld of %ld images found); run again",
                     L->src, ndone, L->n);
    if (a) archive_read_free(a);
    free(by_rel);
    free(done);
    return rc;
}

/* ---- the cache --------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* CRC-32 over a large buffer (crc32_z takes size_t). */
static uint32_t crc_more(uint32_t crc, const void *p, size_t n) {
    return (uint32_t)crc32_z(crc, (const Bytef *)p, n);
}

static int read_exact(FILE *f, void *p, size_t n) {
    return fread(p, 1, n, f) == n ? 0 : -1;
}

/* The labels as stored: int32 little-endian. */
static void labels_to_le(const int *y, long n, uint8_t *out) {
    for (long i = 0; i < n; i++) put32(out + 4 * i, (uint32_t)y[i]);
}

int bp_tin_cache_read(const char *path, const bp_tin_key *key, bp_dataset *d, bp_err *e) {
    uint8_t h[HDR];
    /* O_NONBLOCK: opening a FIFO found there must not wait for a writer */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return (bp_fail(e, "%s: no cache", path), 1);
        return bp_fail(e, "%s: cannot open the Tiny ImageNet cache: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return bp_fail(e, "%s: not a regular file, so not a Tiny ImageNet cache", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return bp_fail(e, "%s: cannot open the Tiny ImageNet cache: %s", path, strerror(errno));
    }
    long long fsize = (long long)st.st_size;
    int rc = -1;
    uint8_t *ly = NULL;
    bp_split tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    if (fsize < HDR || read_exact(f, h, HDR)) {
        bp_fail(e, "%s: truncated Tiny ImageNet cache (%lld bytes, shorter than its %d-byte "
                "header)", path, fsize, HDR);
        goto out;
    }
    if (memcmp(h, CACHE_MAGIC, 8)) {
        bp_fail(e, "%s: not a bpc Tiny ImageNet cache (wrong magic bytes)", path);
        goto out;
    }
    if (get32(h + 8) != CACHE_VERSION) {
        bp_fail(e, "%s: Tiny ImageNet cache of format version %u; this bpc uses version %d", path,
                get32(h + 8), CACHE_VERSION);
        goto out;
    }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    if (get32(h + 124) != crc_more(0, h, 124)) {
        bp_fail(e, "%s: damaged Tiny ImageNet cache header (checksum mismatch)", path);
        goto out;
    }
#endif
    uint32_t hs = get32(h + 12), ch = get32(h + 16), cw = get32(h + 20), cc = get32(h + 24);
    uint32_t classes = get32(h + 28);
    uint64_t ntr = get64(h + 32), nte = get64(h + 40), pay = get64(h + 80);
    if (hs != HDR || ch != S || cw != S || cc != 3 || classes < 1 || classes > 1u << 20 ||
        ntr > (uint64_t)MAX_IMAGES || nte > (uint64_t)MAX_IMAGES) {
        bp_fail(e, "%s: Tiny ImageNet cache with an unexpected header (%ux%ux%u images, %u "
                "classes, %llu + %llu images)", path, ch, cw, cc, classes,
                (unsigned long long)ntr, (unsigned long long)nte);
        goto out;
    }
    if (key && (classes != (uint32_t)key->classes || ntr != (uint64_t)key->ntrain ||
                nte != (uint64_t)key->ntest || memcmp(h + 48, key->hash, 32))) {
        bp_fail(e, "%s: stale Tiny ImageNet cache: it was built from a different listing of the "
                "data (files added, removed, renamed or changed)", path);
        goto out;
    }
    uint64_t want = (ntr + nte) * (PIX + 4);
    if (pay != want || (uint64_t)fsize != HDR + want) {
        bp_fail(e, "%s: truncated Tiny ImageNet cache (%lld bytes, expected %llu)", path, fsize,
                (unsigned long long)(HDR + want));
        goto out;
    }
    tr.n = (int)ntr;
    te.n = (int)nte;
    tr.h = tr.w = te.h = te.w = S;
    tr.c = te.c = 3;
    tr.x = malloc(ntr * PIX + 1);
    te.x = malloc(nte * PIX + 1);
    tr.y = malloc(ntr * sizeof(int) + 1);
    te.y = malloc(nte * sizeof(int) + 1);
    ly = malloc((ntr + nte) * 4 + 1);
    if (!tr.x || !te.x || !tr.y || !te.y || !ly) {
        bp_fail(e, "%s: out of memory for %llu images", path, (unsigned long long)(ntr + nte));
        goto out;
    }
    if (read_exact(f, tr.x, ntr * PIX) || read_exact(f, te.x, nte * PIX) ||
        read_exact(f, ly, (ntr + nte) * 4)) {
        bp_fail(e, "%s: read error in the Tiny ImageNet cache: %s", path,
                ferror(f) ? strerror(errno) : "file shrank");
        goto out;
    }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    uint32_t crc = crc_more(0, tr.x, ntr * PIX);
    crc = crc_more(crc, te.x, nte * PIX);
    crc = crc_more(crc, ly, (ntr + nte) * 4);
    if (crc != get32(h + 88)) {
        bp_fail(e, "%s: damaged Tiny ImageNet cache (data checksum mismatch)", path);
        goto out;
    }
#endif
    for (uint64_t i = 0; i < ntr + nte; i++) {
        uint32_t y = get32(ly + 4 * i);
        if (y >= classes) {
            bp_fail(e, "%s: damaged Tiny ImageNet cache (label %u out of range)", path, y);
            goto out;
        }
        if (i < ntr) tr.y[i] = (int)y;
        else te.y[i - ntr] = (int)y;
    }
    d->train = tr;
    d->test = te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    if (!key) d->classes = (int)classes;
    rc = 0;
out:
    fclose(f);
    free(ly);
    bp_split_free(&tr);
    bp_split_free(&te);
    return rc;
}

/* Writes the cache to path atomically (temp file in the same folder, fsync, rename). */
static int cache_write(const char *path, const tin_list *L, const bp_dataset *d, bp_err *e) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return bp_fail(e, "%s: cannot create: %s", tmp, strerror(errno));
    long nall = L->ntrain + L->ntest;
    uint8_t *ly = malloc((size_t)nall * 4 + 1), h[HDR];
    int rc = 0;
    if (!ly) {
        rc = bp_fail(e, "%s: out of memory", path);
        goto out;
    }
    labels_to_le(d->train.y, L->ntrain, ly);
    labels_to_le(d->test.y, L->ntest, ly + 4 * L->ntrain);
    uint32_t crc = crc_more(0, d->train.x, (size_t)L->ntrain * PIX);
    crc = crc_more(crc, d->test.x, (size_t)L->ntest * PIX);
    crc = crc_more(crc, ly, (size_t)nall * 4);
    memset(h, 0, sizeof h);
    memcpy(h, CACHE_MAGIC, 8);
    put32(h + 8, CACHE_VERSION);
    put32(h + 12, HDR);
    put32(h + 16, S);
    put32(h + 20, S);
    put32(h + 24, 3);
    put32(h + 28, (uint32_t)L->classes);
    put64(h + 32, (uint64_t)L->ntrain);
    put64(h + 40, (uint64_t)L->ntest);
    memcpy(h + 48, L->hash, 32);
    put64(h + 80, (uint64_t)nall * (PIX + 4));
    put32(h + 88, crc);
    put32(h + 124, crc_more(0, h, 124));
    const void *part[4] = {h, d->train.x, d->test.x, ly};
    size_t len[4] = {HDR, (size_t)L->ntrain * PIX, (size_t)L->ntest * PIX, (size_t)nall * 4};
    for (int i = 0; i < 4 && !rc; i++)
        for (size_t off = 0; off < len[i];) {
            size_t want = len[i] - off > (1u << 30) ? 1u << 30 : len[i] - off;
            ssize_t w = write(fd, (const uint8_t *)part[i] + off, want);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                rc = bp_fail(e, "%s: write failed: %s", tmp, w < 0 ? strerror(errno) : "disk full");
                break;
            }
            off += (size_t)w;
        }
    if (!rc && fsync(fd) != 0) rc = bp_fail(e, "%s: fsync failed: %s", tmp, strerror(errno));
out:
    if (close(fd) != 0 && !rc) rc = bp_fail(e, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = bp_fail(e, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    else {
        char dir[4300];
        snprintf(dir, sizeof dir, "%s", path);
        char *sl = strrchr(dir, '/');
        if (sl) *sl = 0;
        int dfd = open(sl ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    free(ly);
    return rc;
}

/* The two places a cache may be: beside the data, and in the user's cache folder
 * (named by a hash of the source's absolute path). */
static void cache_paths(const tin_list *L, char *primary, size_t plen, char *fallback,
                        size_t flen) {
    size_t sl = strlen(L->src);
    while (sl > 1 && L->src[sl - 1] == '/') sl--;
    if (L->zip) snprintf(primary, plen, "%.*s.bpc-cache", (int)sl, L->src);
    else snprintf(primary, plen, "%.*s/tinyimagenet.bpc-cache", (int)sl, L->src);
    fallback[0] = 0;
    char cdir[4096], real[PATH_MAX];
    bp_err ignore;
    if (!bp_cache_dir(cdir, sizeof cdir, &ignore)) return;
    const char *abs = realpath(L->src, real) ? real : L->src;
    unsigned char md[32];
    unsigned int mdn = 0;
    EVP_Digest(abs, strlen(abs), md, &mdn, EVP_sha256(), NULL);
    char hex[17];
    for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    size_t cl = strlen(cdir);
    if (cl + 6 < sizeof cdir) {
        strcat(cdir, "/data");
        if (mkdir(cdir, 0777) != 0 && errno != EEXIST) return;
    }
    snprintf(fallback, flen, "%s/tinyimagenet-%s.bpc-cache", cdir, hex);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int bp_tinyimagenet_load(const char *src, bp_dataset *d, FILE *msg, bp_err *e) {
    memset(d, 0, sizeof *d);
    tin_list L;
    if (list_source(src, &L, e)) return -1;
    snprintf(d->name, sizeof d->name, "tinyimagenet");
    d->classes = L.classes;
    d->class_names = L.names;  /* moved: freed with d from here on */
    L.names = NULL;
    d->source = strdup(src);
    bp_tin_key key = {L.classes, L.ntrain, L.ntest, {0}};
    memcpy(key.hash, L.hash, 32);
    char primary[4300], fallback[4300];
    cache_paths(&L, primary, sizeof primary, fallback, sizeof fallback);
    const char *where[2] = {primary, fallback[0] ? fallback : NULL};
    for (int i = 0; i < 2; i++) {
        if (!where[i]) continue;
        bp_err why;
        int r = bp_tin_cache_read(where[i], &key, d, &why);
        if (r == 0) {
            list_free(&L);
            return 0;
        }
        if (r < 0 && msg) fprintf(msg, "bpc: %s; rebuilding it\n", why.msg);
    }

    int rc = 0;
    d->train = (bp_split){(int)L.ntrain, S, S, 3, malloc((size_t)L.ntrain * PIX + 1),
                          malloc(sizeof(int) * (size_t)L.ntrain + 1)};
    d->test = (bp_split){(int)L.ntest, S, S, 3, malloc((size_t)L.ntest * PIX + 1),
                         malloc(sizeof(int) * (size_t)L.ntest + 1)};
    if (!d->train.x || !d->train.y || !d->test.x || !d->test.y) {
        rc = bp_fail(e, "%s: out of memory for %ld images", src, L.n);
        goto out;
    }
    for (long i = 0; i < L.n; i++) {
        if (i < L.ntrain) d->train.y[i] = L.img[i].label;
        else d->test.y[i - L.ntrain] = L.img[i].label;
    }
    if (msg)
        fprintf(msg, "bpc: decoding the %ld Tiny ImageNet JPEGs in %s (once: they are cached, "
                "beside the data or else in bpc's cache folder)\n", L.n, src);
    double t0 = now_s();
    rc = L.zip ? decode_zip(&L, d, e) : decode_folder(&L, d, e);
    if (rc) goto out;
    bp_err w1, w2;
    const char *wrote = primary;
    if (cache_write(primary, &L, d, &w1)) {
        wrote = fallback[0] && !cache_write(fallback, &L, d, &w2) ? fallback : NULL;
        if (!wrote && msg)
            fprintf(msg, "bpc: cannot write the Tiny ImageNet cache (%s); the next load decodes "
                    "the JPEGs again\n", w1.msg);
    }
    if (wrote && msg)
        fprintf(msg, "bpc: decoded %ld JPEGs in %.1f s; cached in %s\n", L.n, now_s() - t0, wrote);
out:
    list_free(&L);
    if (rc) bp_dataset_free(d);
    return rc;
}
