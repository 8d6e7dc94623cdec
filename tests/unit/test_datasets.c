/* test_datasets.c: the CIFAR-10, CIFAR-100 and Tiny ImageNet readers, the data root
 * search, the Tiny ImageNet cache, the validation hold-out and `bpc data`, on fixtures
 * this test writes itself in the publishers' exact layouts, with known content:
 *   - CIFAR .bin records (label bytes + 3072 channel-planar pixels), as the extracted
 *     folders and packed into the .tar.gz with libarchive's writer;
 *   - a tiny-imagenet-200/ tree of small real JPEGs encoded here with libjpeg
 *     (grayscale ones included), and its .zip.
 * Each way a file can be wrong has its own fixture, and the test pins the exact message
 * (names the file, says what to do). Messages that quote libarchive are pinned by their
 * fixed beginning and end. Real Fashion-MNIST (Debian's dataset-fashion-mnist) is
 * checked when installed, skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jpeglib.h>

#include "data.h"

static char g_dir[512];
static char *g_env_save[3];
static const char *const g_env_names[3] = {"BPC_DATA", "XDG_CACHE_HOME", "HOME"};

#define FIX10 "re-download cifar-10-binary.tar.gz (`bpc data fetch cifar10` says from where)"
#define FIX100 "re-download cifar-100-binary.tar.gz (`bpc data fetch cifar100` says from where)"
#define TFIX "re-extract tiny-imagenet-200.zip, or download it again (`bpc data fetch " \
             "tinyimagenet` says from where)"

/* ---- helpers ------------------------------------------------------------------------- */

/* g_dir/ + printf(fmt); four rotating buffers */
static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...) {
    static char buf[6][4200];
    static int k;
    k = (k + 1) % 6;
    int n = snprintf(buf[k], sizeof buf[k], "%s/", g_dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k] + n, sizeof buf[k] - (size_t)n, fmt, ap);
    va_end(ap);
    return buf[k];
}

static void mkdirs_for(const char *path) {
    char p[4200];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0777);
            *s = '/';
        }
}

static void put(const char *path, const void *p, size_t n) {
    mkdirs_for(path);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void put_s(const char *path, const char *s) { put(path, s, strlen(s)); }

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
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

static int rm_entry(const char *p, const struct stat *st, int fl, struct FTW *ftw) {
    (void)st; (void)fl; (void)ftw;
    remove(p);
    return 0;
}

static void rm_rf(const char *p) { nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

typedef struct { const char *name; const void *data; size_t n; } member;

/* format: "tar.gz" or "zip" */
static void write_archive(const char *path, int zip, const member *m, int nm) {
    mkdirs_for(path);
    struct archive *a = archive_write_new();
    assert_non_null(a);
    if (zip) {
        assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
    } else {
        assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    }
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (int i = 0; i < nm; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        archive_entry_set_size(e, (la_int64_t)m[i].n);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_mtime(e, 1600000000 + i, 0);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (m[i].n) assert_int_equal(archive_write_data(a, m[i].data, m[i].n), (la_ssize_t)m[i].n);
        archive_entry_free(e);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* Expects rc == -1 and e.msg == want exactly. */
#define EXPECT_MSG(call, want)                                                   \
    do {                                                                         \
        bp_err e_ = {{0}};                                                       \
        int rc_ = (call);                                                        \
        if (rc_ != -1) fail_msg("expected failure, got %d", rc_);                \
        assert_string_equal(e_.msg, (want));                                     \
    } while (0)

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    static char buf[4][4096];
    static int k;
    k = (k + 1) % 4;
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf[k], sizeof buf[k], f, ap);
    va_end(ap);
    return buf[k];
}

static void assert_prefix_suffix(const char *s, const char *pre, const char *suf) {
    if (strncmp(s, pre, strlen(pre)) || strlen(s) < strlen(suf) ||
        strcmp(s + strlen(s) - strlen(suf), suf))
        fail_msg("message\n  %s\ndoes not start with\n  %s\nand end with\n  %s", s, pre, suf);
}

static int setup(void **state) {
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/bpc-test-datasets-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(g_env_names[i]);
        g_env_save[i] = v ? strdup(v) : NULL;
    }
    setenv("XDG_CACHE_HOME", P("xdg"), 1);  /* the fallback cache stays in the fixture */
    unsetenv("BPC_DATA");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        if (g_env_save[i]) setenv(g_env_names[i], g_env_save[i], 1);
        else unsetenv(g_env_names[i]);
        free(g_env_save[i]);
        g_env_save[i] = NULL;
    }
    rm_rf(g_dir);
    return 0;
}

/* ---- CIFAR fixtures -------------------------------------------------------------------- */

/* Record `id`'s bytes: labels, then pixel byte (ch, p) = ((id*31 + ch*89 + p*7) & 255)
 * >> ch (so the channels differ in mean), except that record 0's green (row 0, col 1) is 0xAB. */
static int c10_label(int id) { return (id * 3) % 10; }
static int c100_coarse(int id) { return id % 20; }
static int c100_fine(int id) { return (id * 7 + 5) % 100; }

static void make_record(int cifar100, int id, uint8_t *r) {
    int lb = cifar100 ? 2 : 1;
    if (cifar100) {
        r[0] = (uint8_t)c100_coarse(id);
        r[1] = (uint8_t)c100_fine(id);
    } else {
        r[0] = (uint8_t)c10_label(id);
    }
    for (int ch = 0; ch < 3; ch++)
        for (int p = 0; p < 1024; p++)
            r[lb + ch * 1024 + p] = (uint8_t)(((id * 31 + ch * 89 + p * 7) & 255) >> ch);
    if (id == 0) r[1 + 1024 + 1 + (lb - 1)] = 0xAB;
}

/* n records with ids first..first+n-1; malloc'ed; *len set. */
static uint8_t *make_records(int cifar100, int first, int n, size_t *len) {
    size_t rec = cifar100 ? 3074 : 3073;
    uint8_t *b = malloc(rec * (size_t)(n ? n : 1));
    assert_non_null(b);
    for (int i = 0; i < n; i++) make_record(cifar100, first + i, b + rec * (size_t)i);
    *len = rec * (size_t)n;
    return b;
}

#define C10_PER 2     /* records per training batch in the fixture */
#define C10_TEST 3
#define C100_TRAIN 5
#define C100_TEST 2

static const char *const C10_FILES[6] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                         "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
static const char *const C10_NAMES = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\n"
                                     "truck\n\n";

/* ids: batch b record r -> b*C10_PER + r; test record r -> 100 + r */
static int c10_id(int split_test, int i) { return split_test ? 100 + i : i; }

/* The fixture as members (folder-relative names); frees nothing: data is static-ish. */
static int cifar10_members(member *m, uint8_t **bufs, const char *prefix) {
    static char names[7][128];
    int k = 0;
    for (int f = 0; f < 6; f++) {
        size_t len;
        bufs[f] = f < 5 ? make_records(0, f * C10_PER, C10_PER, &len)
                        : make_records(0, 100, C10_TEST, &len);
        snprintf(names[f], sizeof names[f], "%s%s", prefix, C10_FILES[f]);
        m[k++] = (member){names[f], bufs[f], len};
    }
    snprintf(names[6], sizeof names[6], "%sbatches.meta.txt", prefix);
    m[k++] = (member){names[6], C10_NAMES, strlen(C10_NAMES)};
    return k;
}

static void write_cifar10_folder(const char *dir) {
    member m[7];
    uint8_t *bufs[6];
    int n = cifar10_members(m, bufs, "");
    for (int i = 0; i < n; i++) put(fmt("%s/%s", dir, m[i].name), m[i].data, m[i].n);
    for (int i = 0; i < 6; i++) free(bufs[i]);
}

static void write_cifar10_targz(const char *path) {
    member m[8];
    uint8_t *bufs[6];
    int n = cifar10_members(m, bufs, "cifar-10-batches-bin/");
    m[n++] = (member){"cifar-10-batches-bin/readme.html", "<html></html>", 13};
    write_archive(path, 0, m, n);
    for (int i = 0; i < 6; i++) free(bufs[i]);
}

/* 100 fine names f00..f99, 20 coarse c00..c19 */
static char *label_names(int n, char c) {
    char *s = malloc((size_t)n * 8 + 1);
    assert_non_null(s);
    s[0] = 0;
    for (int i = 0; i < n; i++) sprintf(s + strlen(s), "%c%02d\n", c, i);
    return s;
}

static int cifar100_members(member *m, uint8_t **bufs, char **txt, const char *prefix) {
    static char names[4][128];
    size_t l0, l1;
    bufs[0] = make_records(1, 0, C100_TRAIN, &l0);
    bufs[1] = make_records(1, 100, C100_TEST, &l1);
    txt[0] = label_names(100, 'f');
    txt[1] = label_names(20, 'c');
    const char *base[4] = {"train.bin", "test.bin", "fine_label_names.txt", "coarse_label_names.txt"};
    for (int i = 0; i < 4; i++) snprintf(names[i], sizeof names[i], "%s%s", prefix, base[i]);
    m[0] = (member){names[0], bufs[0], l0};
    m[1] = (member){names[1], bufs[1], l1};
    m[2] = (member){names[2], txt[0], strlen(txt[0])};
    m[3] = (member){names[3], txt[1], strlen(txt[1])};
    return 4;
}

static void write_cifar100(const char *where, int targz) {
    member m[4];
    uint8_t *bufs[2];
    char *txt[2];
    cifar100_members(m, bufs, txt, targz ? "cifar-100-binary/" : "");
    if (targz) write_archive(where, 0, m, 4);
    else
        for (int i = 0; i < 4; i++) put(fmt("%s/%s", where, m[i].name), m[i].data, m[i].n);
    free(bufs[0]);
    free(bufs[1]);
    free(txt[0]);
    free(txt[1]);
}

/* Checks every pixel of a loaded CIFAR split against the records it came from. */
static void check_cifar_split(const bp_split *s, int cifar100, int test, int want_n, int coarse) {
    assert_int_equal(s->n, want_n);
    assert_int_equal(s->h, 32);
    assert_int_equal(s->w, 32);
    assert_int_equal(s->c, 3);
    int lb = cifar100 ? 2 : 1;
    uint8_t r[3074];
    for (int i = 0; i < s->n; i++) {
        int id = cifar100 ? (test ? 100 + i : i) : c10_id(test, i);
        make_record(cifar100, id, r);
        int want_y = !cifar100 ? c10_label(id) : coarse ? c100_coarse(id) : c100_fine(id);
        assert_int_equal(s->y[i], want_y);
        for (int row = 0; row < 32; row++)
            for (int col = 0; col < 32; col++)
                for (int ch = 0; ch < 3; ch++)
                    if (s->x[(((size_t)i * 32 + row) * 32 + col) * 3 + ch] !=
                        r[lb + ch * 1024 + row * 32 + col])
                        fail_msg("image %d [%d][%d][%d] differs from its record", i, row, col, ch);
    }
}

/* ---- CIFAR: good fixtures ---------------------------------------------------------------- */

static void test_cifar10_folder(void **state) {
    (void)state;
    write_cifar10_folder(P("root/cifar-10-batches-bin"));
    bp_dataset d;
    bp_err e = {{0}};
    if (bp_dataset_load("cifar10", P("root"), &d, &e)) fail_msg("%s", e.msg);
    assert_string_equal(d.name, "cifar10");
    assert_int_equal(d.classes, 10);
    assert_string_equal(d.source, P("root/cifar-10-batches-bin"));
    /* The layout, spelled out: green (row 0, col 1) of record 0 is byte 1 + 1024 + 1 of
     * the file, and lands at NHWC [0][1][1]. */
    size_t n;
    uint8_t *raw = slurp(P("root/cifar-10-batches-bin/data_batch_1.bin"), &n);
    assert_int_equal(raw[1 + 1024 + 1], 0xAB);
    assert_int_equal(d.train.x[(0 * 32 + 1) * 3 + 1], 0xAB);
    assert_int_equal(d.train.y[0], raw[0]);
    free(raw);
    check_cifar_split(&d.train, 0, 0, 5 * C10_PER, 0);
    check_cifar_split(&d.test, 0, 1, C10_TEST, 0);
    assert_non_null(d.class_names);
    assert_string_equal(d.class_names[0], "airplane");
    assert_string_equal(d.class_names[9], "truck");
    bp_dataset_free(&d);
    assert_null(d.train.x);
}

static void test_cifar10_targz(void **state) {
    (void)state;
    write_cifar10_targz(P("root/cifar-10-binary.tar.gz"));
    bp_dataset d;
    bp_err e = {{0}};
    if (bp_dataset_load("cifar10", P("root"), &d, &e)) fail_msg("%s", e.msg);
    assert_string_equal(d.source, P("root/cifar-10-binary.tar.gz"));
    assert_int_equal(d.train.x[(0 * 32 + 1) * 3 + 1], 0xAB);
    check_cifar_split(&d.train, 0, 0, 5 * C10_PER, 0);
    check_cifar_split(&d.test, 0, 1, C10_TEST, 0);
    assert_string_equal(d.class_names[3], "cat");
    bp_dataset_free(&d);
    /* --data may name the archive itself */
    if (bp_dataset_load("cifar10", P("root/cifar-10-binary.tar.gz"), &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.train.n, 5 * C10_PER);
    bp_dataset_free(&d);
    /* and the files may sit in the root directly */
    write_cifar10_folder(P("flat"));
    if (bp_dataset_load("cifar10", P("flat"), &d, &e)) fail_msg("%s", e.msg);
    assert_string_equal(d.source, P("flat"));
    bp_dataset_free(&d);
}

static void test_cifar100_fine_coarse(void **state) {
    (void)state;
    write_cifar100(P("root/cifar-100-binary"), 0);
    write_cifar100(P("tgz/cifar-100-binary.tar.gz"), 1);
    const char *roots[2] = {P("root"), P("tgz")};
    for (int r = 0; r < 2; r++) {
        bp_dataset d;
        bp_err e = {{0}};
        if (bp_dataset_load("cifar100", roots[r], &d, &e)) fail_msg("%s", e.msg);
        assert_int_equal(d.classes, 100);
        /* CIFAR-100: green (row 0, col 1) is byte 2 + 1024 + 1 */
        assert_int_equal(d.train.x[(0 * 32 + 1) * 3 + 1], 0xAB);
        check_cifar_split(&d.train, 1, 0, C100_TRAIN, 0);
        check_cifar_split(&d.test, 1, 1, C100_TEST, 0);
        assert_string_equal(d.class_names[0], "f00");
        assert_string_equal(d.class_names[99], "f99");
        bp_dataset_free(&d);
        if (bp_dataset_load("cifar100-coarse", roots[r], &d, &e)) fail_msg("%s", e.msg);
        assert_string_equal(d.name, "cifar100-coarse");
        assert_int_equal(d.classes, 20);
        check_cifar_split(&d.train, 1, 0, C100_TRAIN, 1);
        check_cifar_split(&d.test, 1, 1, C100_TEST, 1);
        assert_string_equal(d.class_names[19], "c19");
        bp_dataset_free(&d);
    }
    size_t n;
    uint8_t *raw = slurp(P("root/cifar-100-binary/train.bin"), &n);
    assert_int_equal(raw[2 + 1024 + 1], 0xAB);
    free(raw);
}

/* Without the label-name files the data still loads, with no names. */
static void test_cifar_no_names(void **state) {
    (void)state;
    write_cifar10_folder(P("c"));
    unlink(P("c/batches.meta.txt"));
    bp_dataset d;
    bp_err e = {{0}};
    if (bp_cifar_load(P("c"), BP_CIFAR10, &d, &e)) fail_msg("%s", e.msg);
    assert_null(d.class_names);
    bp_dataset_free(&d);
}

/* ---- CIFAR: each way a file can be wrong ------------------------------------------- */

static void test_cifar_truncated_record(void **state) {
    (void)state;
    write_cifar10_folder(P("c"));
    assert_int_equal(truncate(P("c/data_batch_3.bin"), 3073 + 1000), 0);
    EXPECT_MSG(bp_cifar_load(P("c"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: 4073 bytes is not a whole number of 3073-byte CIFAR-10 records (1 records "
                   "and 1000 bytes of a cut-off one); the file is truncated or not the binary "
                   "version: " FIX10, P("c/data_batch_3.bin")));
    write_cifar100(P("h"), 0);
    assert_int_equal(truncate(P("h/test.bin"), 3074 + 3073), 0);
    EXPECT_MSG(bp_cifar_load(P("h"), BP_CIFAR100, &(bp_dataset){0}, &e_),
               fmt("%s: 6147 bytes is not a whole number of 3074-byte CIFAR-100 records (1 records "
                   "and 3073 bytes of a cut-off one); the file is truncated or not the binary "
                   "version: " FIX100, P("h/test.bin")));
}

static void test_cifar_label_out_of_range(void **state) {
    (void)state;
    size_t n;
    uint8_t *b = make_records(0, 0, 3, &n);
    b[2 * 3073] = 10;
    bp_split s;
    EXPECT_MSG(bp_cifar_parse(b, n, BP_CIFAR10, "x.bin", &s, &e_),
               "x.bin: record 2 has label 10, out of range (CIFAR-10 has 10 classes, 0-9); the "
               "file is damaged: " FIX10);
    assert_null(s.x);
    free(b);
    b = make_records(1, 0, 3, &n);
    b[3074 + 1] = 100;
    EXPECT_MSG(bp_cifar_parse(b, n, BP_CIFAR100, "y.bin", &s, &e_),
               "y.bin: record 1 has fine label 100, out of range (CIFAR-100 has 100 fine classes, "
               "0-99); the file is damaged: " FIX100);
    b[3074 + 1] = 7;
    b[0] = 20;  /* a bad coarse label fails the fine load too: the record is damaged */
    EXPECT_MSG(bp_cifar_parse(b, n, BP_CIFAR100, "y.bin", &s, &e_),
               "y.bin: record 0 has coarse label 20, out of range (CIFAR-100 has 20 coarse "
               "classes, 0-19); the file is damaged: " FIX100);
    free(b);
    /* through the loader: the message names the file on disk, or the archive member */
    write_cifar10_folder(P("c"));
    uint8_t bad = 200;
    int fd = open(P("c/test_batch.bin"), O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &bad, 1, 3073), 1);
    close(fd);
    EXPECT_MSG(bp_cifar_load(P("c"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: record 1 has label 200, out of range (CIFAR-10 has 10 classes, 0-9); the "
                   "file is damaged: " FIX10, P("c/test_batch.bin")));
}

static void test_cifar_wrong_size(void **state) {
    (void)state;
    write_cifar10_folder(P("c"));
    put(P("c/data_batch_2.bin"), "", 0);
    EXPECT_MSG(bp_cifar_load(P("c"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: empty file; it should hold 3073-byte CIFAR-10 records: " FIX10,
                   P("c/data_batch_2.bin")));
    /* a CIFAR-10 file read as CIFAR-100: 2 x 3073 is no multiple of 3074 */
    write_cifar10_folder(P("d"));
    EXPECT_MSG(bp_cifar_load(P("d/../d"), BP_CIFAR100, &(bp_dataset){0}, &e_),
               fmt("%s/train.bin: not found; the CIFAR-100 folder is incomplete: extract "
                   "cifar-100-binary.tar.gz again (`bpc data fetch cifar100` says where to get it)",
                   P("d/../d")));
    size_t n;
    uint8_t *b = make_records(0, 0, 2, &n);
    bp_split s;
    EXPECT_MSG(bp_cifar_parse(b, n, BP_CIFAR100, "z.bin", &s, &e_),
               "z.bin: 6146 bytes is not a whole number of 3074-byte CIFAR-100 records (1 records "
               "and 3072 bytes of a cut-off one); the file is truncated or not the binary version: "
               FIX100);
    free(b);
    /* `bpc data verify` holds the folder to the published record counts */
    FILE *out = fopen("/dev/null", "w");
    bp_err e = {{0}};
    write_cifar10_folder(P("v/cifar-10-batches-bin"));
    assert_int_equal(bp_data_command("verify", "cifar10", P("v"), out, &e), 2);
    assert_string_equal(e.msg, fmt("%s/data_batch_1.bin: 6146 bytes (2 records and 0 bytes), "
                                   "expected 10000 records (30730000 bytes); the file is truncated "
                                   "or not from the binary version: extract cifar-10-binary.tar.gz "
                                   "again", P("v/cifar-10-batches-bin")));
    /* and the archive to the published size */
    write_cifar10_targz(P("t/cifar-10-binary.tar.gz"));
    assert_int_equal(bp_data_command("verify", "cifar10", P("t"), out, &e), 2);
    struct stat st;
    assert_int_equal(stat(P("t/cifar-10-binary.tar.gz"), &st), 0);
    assert_string_equal(e.msg, fmt("%s: %lld bytes, expected 170052171; the download is incomplete "
                                   "or not the right file: download it again from "
                                   "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                                   P("t/cifar-10-binary.tar.gz"), (long long)st.st_size));
    fclose(out);
}

static void test_cifar_missing_and_bad_names(void **state) {
    (void)state;
    write_cifar10_folder(P("c"));
    unlink(P("c/data_batch_4.bin"));
    EXPECT_MSG(bp_cifar_load(P("c"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: not found; the CIFAR-10 folder is incomplete: extract "
                   "cifar-10-binary.tar.gz again (`bpc data fetch cifar10` says where to get it)",
                   P("c/data_batch_4.bin")));
    write_cifar10_folder(P("c"));
    put_s(P("c/batches.meta.txt"), "airplane\nautomobile\n");
    EXPECT_MSG(bp_cifar_load(P("c"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: 2 class names, expected 10 (one per line); the file is damaged: " FIX10,
                   P("c/batches.meta.txt")));
    EXPECT_MSG(bp_cifar_load(P("nowhere"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: No such file or directory; give the cifar-10-batches-bin/ folder or "
                   "cifar-10-binary.tar.gz (`bpc data fetch cifar10` says where to get it)",
                   P("nowhere")));
}

static void test_cifar_bad_archives(void **state) {
    (void)state;
    /* a member missing */
    member m[2];
    size_t n;
    uint8_t *b = make_records(0, 0, 1, &n);
    m[0] = (member){"cifar-10-batches-bin/data_batch_1.bin", b, n};
    write_archive(P("a.tar.gz"), 0, m, 1);
    EXPECT_MSG(bp_cifar_load(P("a.tar.gz"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s: has no cifar-10-batches-bin/data_batch_2.bin; the archive is incomplete or "
                   "not the CIFAR-10 binary version: " FIX10, P("a.tar.gz")));
    /* a bad member: the message names archive:member */
    b[0] = 11;
    write_archive(P("b.tar.gz"), 0, m, 1);
    EXPECT_MSG(bp_cifar_load(P("b.tar.gz"), BP_CIFAR10, &(bp_dataset){0}, &e_),
               fmt("%s:cifar-10-batches-bin/data_batch_1.bin: record 0 has label 11, out of range "
                   "(CIFAR-10 has 10 classes, 0-9); the file is damaged: " FIX10, P("b.tar.gz")));
    free(b);
    /* cut short: libarchive notices; the message quotes it. Cut in the gzip header, the
     * archive does not open; cut in the data (a big incompressible member first, as a
     * partial download is), a member cannot be read. */
    write_cifar10_targz(P("c.tar.gz"));
    assert_int_equal(truncate(P("c.tar.gz"), 100), 0);
    bp_dataset d;
    bp_err e = {{0}};
    assert_int_equal(bp_cifar_load(P("c.tar.gz"), BP_CIFAR10, &d, &e), -1);
    assert_prefix_suffix(e.msg, fmt("%s: cannot read the archive (libarchive: ", P("c.tar.gz")),
                         "); " FIX10);
    {
        member mm[8];
        uint8_t *bufs[6];
        size_t big = 1 << 18;
        uint8_t *noise = malloc(big);
        assert_non_null(noise);
        uint32_t x = 12345;
        for (size_t i = 0; i < big; i++) noise[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
        mm[0] = (member){"cifar-10-batches-bin/readme.html", noise, big};
        int nm = 1 + cifar10_members(mm + 1, bufs, "cifar-10-batches-bin/");
        write_archive(P("e.tar.gz"), 0, mm, nm);
        for (int i = 0; i < 6; i++) free(bufs[i]);
        free(noise);
    }
    struct stat st;
    assert_int_equal(stat(P("e.tar.gz"), &st), 0);
    assert_int_equal(truncate(P("e.tar.gz"), st.st_size / 2), 0);
    assert_int_equal(bp_cifar_load(P("e.tar.gz"), BP_CIFAR10, &d, &e), -1);
    assert_prefix_suffix(e.msg, fmt("%s: damaged archive (libarchive: ", P("e.tar.gz")),
                         "); " FIX10);
    /* not an archive at all */
    put_s(P("d.tar.gz"), "this is not a tarball");
    assert_int_equal(bp_cifar_load(P("d.tar.gz"), BP_CIFAR10, &d, &e), -1);
    assert_prefix_suffix(e.msg, fmt("%s: ", P("d.tar.gz")), "; " FIX10);
}

/* ---- the data root --------------------------------------------------------------------- */

static void test_locate(void **state) {
    (void)state;
    bp_err e = {{0}};
    EXPECT_MSG(bp_dataset_load("cifar10", P("empty"), &(bp_dataset){0}, &e_),
               fmt("%s: no such folder; give the data folder with --data DIR or $BPC_DATA, or "
                   "download cifar-10-binary.tar.gz into %s (`bpc data fetch cifar10` says from "
                   "where)", P("empty"), P("empty")));
    mkdir(P("empty"), 0777);
    EXPECT_MSG(bp_dataset_load("cifar10", P("empty"), &(bp_dataset){0}, &e_),
               fmt("%s: no cifar10 data here (looked for data_batch_1.bin in it and in "
                   "cifar-10-batches-bin/, and for cifar-10-binary.tar.gz); download "
                   "cifar-10-binary.tar.gz into %s (`bpc data fetch cifar10` says from where)",
                   P("empty"), P("empty")));
    EXPECT_MSG(bp_dataset_load("mnist", P("empty"), &(bp_dataset){0}, &e_),
               fmt("%s: no mnist data here (looked for train-images-idx3-ubyte[.gz] in it and in "
                   "mnist/); run `bpc data fetch mnist --data %s`", P("empty"), P("empty")));
    EXPECT_MSG(bp_dataset_load("tinyimagenet", P("empty"), &(bp_dataset){0}, &e_),
               fmt("%s: no tinyimagenet data here (looked for wnids.txt in it and in "
                   "tiny-imagenet-200/, and for tiny-imagenet-200.zip); download "
                   "tiny-imagenet-200.zip into %s (`bpc data fetch tinyimagenet` says from where)",
                   P("empty"), P("empty")));
    EXPECT_MSG(bp_dataset_load("cifar-10", P("empty"), &(bp_dataset){0}, &e_),
               "unknown data set 'cifar-10'; bpc reads mnist, fashion-mnist, cifar10, cifar100, "
               "cifar100-coarse and tinyimagenet");
    put_s(P("file"), "x");
    EXPECT_MSG(bp_dataset_load("mnist", P("file"), &(bp_dataset){0}, &e_),
               fmt("%s: is a file, but mnist is read from a folder; give the folder that holds "
                   "train-images-idx3-ubyte[.gz]", P("file")));
    /* a folder wins over an archive beside it */
    write_cifar10_folder(P("both/cifar-10-batches-bin"));
    write_cifar10_targz(P("both/cifar-10-binary.tar.gz"));
    char at[4200];
    int arch = -1;
    if (bp_dataset_locate("cifar10", P("both"), at, sizeof at, &arch, &e)) fail_msg("%s", e.msg);
    assert_string_equal(at, P("both/cifar-10-batches-bin"));
    assert_int_equal(arch, 0);
    rm_rf(P("both/cifar-10-batches-bin"));
    if (bp_dataset_locate("cifar10", P("both"), at, sizeof at, &arch, &e)) fail_msg("%s", e.msg);
    assert_string_equal(at, P("both/cifar-10-binary.tar.gz"));
    assert_int_equal(arch, 1);
    /* $BPC_DATA when no root is given */
    setenv("BPC_DATA", P("both"), 1);
    bp_dataset d;
    if (bp_dataset_load("cifar10", NULL, &d, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.test.n, C10_TEST);
    bp_dataset_free(&d);
}

/* MNIST through bp_dataset_load: ROOT/mnist/ with tiny IDX files. */
static void put_idx(const char *path, int nd, const unsigned *dims, const uint8_t *p, size_t n) {
    uint8_t h[16] = {0, 0, 8, (uint8_t)nd};
    for (int i = 0; i < nd; i++) {
        h[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        h[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        h[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        h[7 + 4 * i] = (uint8_t)dims[i];
    }
    uint8_t *b = malloc(4 + 4 * (size_t)nd + n);
    assert_non_null(b);
    memcpy(b, h, 4 + 4 * (size_t)nd);
    memcpy(b + 4 + 4 * nd, p, n);
    put(path, b, 4 + 4 * (size_t)nd + n);
    free(b);
}

static void test_mnist_via_root(void **state) {
    (void)state;
    uint8_t img[3 * 784] = {0}, lab[3] = {5, 0, 4};
    img[784] = 77;
    const unsigned id[3] = {3, 28, 28}, ld[1] = {3};
    put_idx(P("r/mnist/train-images-idx3-ubyte"), 3, id, img, sizeof img);
    put_idx(P("r/mnist/train-labels-idx1-ubyte"), 1, ld, lab, 3);
    put_idx(P("r/mnist/t10k-images-idx3-ubyte"), 3, id, img, sizeof img);
    put_idx(P("r/mnist/t10k-labels-idx1-ubyte"), 1, ld, lab, 3);
    bp_dataset d;
    bp_err e = {{0}};
    if (bp_dataset_load("mnist", P("r"), &d, &e)) fail_msg("%s", e.msg);
    assert_string_equal(d.source, P("r/mnist"));
    assert_int_equal(d.train.n, 3);
    assert_int_equal(d.train.c, 1);
    assert_int_equal(d.train.y[0], 5);
    assert_int_equal(d.train.x[784], 77);
    assert_null(d.class_names);
    bp_dataset_free(&d);
}

/* ---- the validation hold-out ------------------------------------------------------------- */

static void test_holdout(void **state) {
    (void)state;
    write_cifar10_folder(P("c"));
    bp_dataset d;
    bp_err e = {{0}};
    if (bp_cifar_load(P("c"), BP_CIFAR10, &d, &e)) fail_msg("%s", e.msg);
    int n = d.train.n;
    uint8_t *last = malloc(3 * 3072);
    assert_non_null(last);
    memcpy(last, d.train.x + (size_t)(n - 3) * 3072, 3 * 3072);
    int y_last[3] = {d.train.y[n - 3], d.train.y[n - 2], d.train.y[n - 1]};
    bp_split v;
    if (bp_split_holdout(&d, 3, &v, &e)) fail_msg("%s", e.msg);
    assert_int_equal(d.train.n, n - 3);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.h, 32);
    assert_int_equal(v.c, 3);
    assert_memory_equal(v.x, last, 3 * 3072);
    assert_int_equal(v.y[0], y_last[0]);
    assert_int_equal(v.y[2], y_last[2]);
    check_cifar_split(&d.train, 0, 0, n - 3, 0);  /* the first n-3 are untouched */
    bp_split_free(&v);
    free(last);
    EXPECT_MSG(bp_split_holdout(&d, 0, &v, &e_),
               "cifar10: cannot hold out 0 of the 7 training images for validation; give a number "
               "from 1 to 6");
    EXPECT_MSG(bp_split_holdout(&d, 7, &v, &e_),
               "cifar10: cannot hold out 7 of the 7 training images for validation; give a number "
               "from 1 to 6");
    assert_null(v.x);
    assert_int_equal(d.train.n, 7);
    bp_dataset_free(&d);
}

/* ---- Tiny ImageNet fixtures ------------------------------------------------------------ */

/* A 64x64 JPEG: four flat quadrants q[0..3] (TL, TR, BL, BR), each an RGB triple, or
 * gray (one component, q[i][0]). No chroma subsampling, quality 98: flat 8x8 blocks come
 * back within a few levels. */
static uint8_t *encode_jpeg(const uint8_t q[4][3], int gray, int w, int h, size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = gray ? 1 : 3;
    c.in_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 98, TRUE);
    if (!gray)
        for (int i = 0; i < 3; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3 * 4];
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w; x++) {
            int qi = (y >= h / 2) * 2 + (x >= w / 2);
            for (int k = 0; k < (gray ? 1 : 3); k++) row[x * (gray ? 1 : 3) + k] = q[qi][k];
        }
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    uint8_t *b = malloc(outlen);
    assert_non_null(b);
    memcpy(b, out, outlen);
    free(out);
    *len = outlen;
    return b;
}

/* The fixture's images: t-th image (train then val, in writing order) has quadrant
 * colours from t; images listed in GRAY are grayscale. */
static void quads(int t, uint8_t q[4][3]) {
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) q[i][k] = (uint8_t)(16 + ((t * 37 + i * 61 + k * 83) % 224));
}

/* wnids in file order: class 0 = n02, 1 = n01, 2 = n03 (not sorted, on purpose) */
static const char *const WNIDS[3] = {"n02", "n01", "n03"};
static const int NTRAIN_OF[3] = {3, 2, 3};
/* val: file -> class, in annotation order */
static const int VAL_CLASS[4] = {2, 0, 1, 0};

static int is_gray(int t) { return t == 4 || t == 10; }  /* n01_1 (train) and val_2 */

/* Train image j of class k has t = (sum of NTRAIN_OF before k) + j; val image v has
 * t = 8 + v. */
static int t_train(int k, int j) {
    int t = 0;
    for (int i = 0; i < k; i++) t += NTRAIN_OF[i];
    return t + j;
}

typedef struct { char name[128]; uint8_t *data; size_t n; } tin_file;

/* The whole tree as files relative to tiny-imagenet-200/ (returns the count). */
static int tin_files(tin_file *f) {
    int n = 0;
    uint8_t q[4][3];
    snprintf(f[n].name, sizeof f[n].name, "wnids.txt");
    f[n].data = (uint8_t *)strdup("n02\nn01\nn03\n");
    f[n].n = strlen((char *)f[n].data);
    n++;
    snprintf(f[n].name, sizeof f[n].name, "words.txt");
    f[n].data = (uint8_t *)strdup("n00\tentity\nn01\tgoldfish, Carassius auratus\nn02\tcat\n"
                                  "n03\tdog, domestic dog\r\nn04\tnot ours\n");
    f[n].n = strlen((char *)f[n].data);
    n++;
    for (int k = 0; k < 3; k++)
        for (int j = 0; j < NTRAIN_OF[k]; j++) {
            int t = t_train(k, j);
            quads(t, q);
            snprintf(f[n].name, sizeof f[n].name, "train/%s/images/%s_%d.JPEG", WNIDS[k], WNIDS[k], j);
            f[n].data = encode_jpeg(q, is_gray(t), 64, 64, &f[n].n);
            n++;
            if (j == 0) {  /* the boxes file the real data set has beside images/ */
                snprintf(f[n].name, sizeof f[n].name, "train/%s/%s_boxes.txt", WNIDS[k], WNIDS[k]);
                f[n].data = (uint8_t *)strdup("box\n");
                f[n].n = 4;
                n++;
            }
        }
    char ann[512] = "";
    for (int v = 0; v < 4; v++) {
        quads(8 + v, q);
        snprintf(f[n].name, sizeof f[n].name, "val/images/val_%d.JPEG", v);
        f[n].data = encode_jpeg(q, is_gray(8 + v), 64, 64, &f[n].n);
        n++;
        sprintf(ann + strlen(ann), "val_%d.JPEG\t%s\t0\t0\t63\t63\n", v, WNIDS[VAL_CLASS[v]]);
    }
    quads(99, q);  /* an image val_annotations.txt does not name: ignored */
    snprintf(f[n].name, sizeof f[n].name, "val/images/val_9.JPEG");
    f[n].data = encode_jpeg(q, 0, 64, 64, &f[n].n);
    n++;
    snprintf(f[n].name, sizeof f[n].name, "val/val_annotations.txt");
    f[n].data = (uint8_t *)strdup(ann);
    f[n].n = strlen(ann);
    n++;
    snprintf(f[n].name, sizeof f[n].name, "test/images/test_0.JPEG");  /* unlabelled: ignored */
    f[n].data = encode_jpeg(q, 0, 64, 64, &f[n].n);
    n++;
    return n;
}

static void tin_files_free(tin_file *f, int n) {
    for (int i = 0; i < n; i++) free(f[i].data);
}

static void write_tin_folder(const char *dir) {
    tin_file f[40];
    int n = tin_files(f);
    for (int i = 0; i < n; i++) put(fmt("%s/%s", dir, f[i].name), f[i].data, f[i].n);
    tin_files_free(f, n);
}

static void write_tin_zip(const char *path) {
    tin_file f[40];
    int n = tin_files(f);
    member m[40] = {{0}};
    char names[40][160];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "tiny-imagenet-200/%.128s", f[i].name);
        m[i] = (member){names[i], f[i].data, f[i].n};
    }
    write_archive(path, 1, m, n);
    tin_files_free(f, n);
}

/* Expected train order: round-robin over classes, by name within each. */
static void train_order(int *label, int *t) {
    int at = 0;
    for (int j = 0; j < 3; j++)
        for (int k = 0; k < 3; k++)
            if (j < NTRAIN_OF[k]) {
                label[at] = k;
                t[at] = t_train(k, j);
                at++;
            }
}

static void check_image(const uint8_t *x, int t) {
    uint8_t q[4][3];
    quads(t, q);
    static const int at[4][2] = {{8, 8}, {8, 56}, {56, 8}, {56, 56}};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 3; k++) {
            int want = is_gray(t) ? q[i][0] : q[i][k];
            int got = x[((size_t)at[i][0] * 64 + (size_t)at[i][1]) * 3 + (size_t)k];
            if (abs(got - want) > 3)
                fail_msg("image t=%d quadrant %d channel %d: %d, expected %d", t, i, k, got, want);
        }
    if (is_gray(t))
        for (int p = 0; p < 64 * 64; p++)
            if (x[3 * p] != x[3 * p + 1] || x[3 * p] != x[3 * p + 2])
                fail_msg("grayscale image t=%d: pixel %d is not R = G = B", t, p);
}

static void check_tin(const bp_dataset *d) {
    assert_string_equal(d->name, "tinyimagenet");
    assert_int_equal(d->classes, 3);
    assert_string_equal(d->class_names[0], "cat");
    assert_string_equal(d->class_names[1], "goldfish, Carassius auratus");
    assert_string_equal(d->class_names[2], "dog, domestic dog");
    assert_int_equal(d->train.n, 8);
    assert_int_equal(d->train.h, 64);
    assert_int_equal(d->train.w, 64);
    assert_int_equal(d->train.c, 3);
    assert_int_equal(d->test.n, 4);
    int label[8], t[8];
    train_order(label, t);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(d->train.y[i], label[i]);
        check_image(d->train.x + (size_t)i * 64 * 64 * 3, t[i]);
    }
    for (int v = 0; v < 4; v++) {
        assert_int_equal(d->test.y[v], VAL_CLASS[v]);
        check_image(d->test.x + (size_t)v * 64 * 64 * 3, 8 + v);
    }
}

/* Loads with messages captured; returns them (malloc'ed). */
static char *tin_load(const char *src, bp_dataset *d, int expect_ok, bp_err *e) {
    char *buf = NULL;
    size_t len = 0;
    FILE *msg = open_memstream(&buf, &len);
    assert_non_null(msg);
    int rc = bp_tinyimagenet_load(src, d, msg, e);
    fclose(msg);
    if (expect_ok && rc) fail_msg("%s", e->msg);
    if (!expect_ok) assert_int_equal(rc, -1);
    return buf;
}

static const char *first_line(char *s) {
    char *nl = strchr(s, '\n');
    if (nl) *nl = 0;
    return s;
}

static void test_tin_folder_and_cache(void **state) {
    (void)state;
    const char *src = P("r/tiny-imagenet-200");
    const char *cache = P("r/tiny-imagenet-200/tinyimagenet.bpc-cache");
    write_tin_folder(src);
    bp_dataset d;
    bp_err e = {{0}};
    char *m = tin_load(src, &d, 1, &e);
    check_tin(&d);
    assert_true(exists(cache));
    /* the messages: what is decoded and where it is cached, then how long it took */
    char *second = strchr(m, '\n') + 1;
    assert_string_equal(first_line(m), fmt("bpc: decoding the 12 Tiny ImageNet JPEGs in %s (once: "
                                           "they are cached, beside the data or else in bpc's "
                                           "cache folder)", src));
    assert_prefix_suffix(second, "bpc: decoded 12 JPEGs in ", fmt(" s; cached in %s\n", cache));
    free(m);
    uint8_t *x0 = malloc(8 * 12288);
    memcpy(x0, d.train.x, 8 * 12288);
    bp_dataset_free(&d);

    /* the second load reads the cache: nothing decoded, nothing said, the same arrays */
    m = tin_load(src, &d, 1, &e);
    assert_string_equal(m, "");
    free(m);
    check_tin(&d);
    assert_memory_equal(d.train.x, x0, 8 * 12288);
    bp_dataset_free(&d);

    /* through the data root, the same */
    if (bp_dataset_load("tinyimagenet", P("r"), &d, &e)) fail_msg("%s", e.msg);
    check_tin(&d);
    bp_dataset_free(&d);
    free(x0);
    assert_int_equal(count_entries(P("r")), 1);  /* tiny-imagenet-200 only: no temp files */
}

/* Each way a cache can be wrong is noticed, said, and mended. */
static void test_tin_cache_rebuilt(void **state) {
    (void)state;
    const char *src = P("tiny-imagenet-200");
    const char *cache = P("tiny-imagenet-200/tinyimagenet.bpc-cache");
    write_tin_folder(src);
    bp_dataset d;
    bp_err e = {{0}};
    free(tin_load(src, &d, 1, &e));
    bp_dataset_free(&d);
    struct stat st;
    assert_int_equal(stat(cache, &st), 0);
    long long full = (long long)st.st_size;
    assert_int_equal(full, 128 + 12 * (12288 + 4));
    size_t n;
    uint8_t *good = slurp(cache, &n);

    struct { const char *what; long long cut; int off; uint8_t byte; const char *why; } cases[] = {
        {"foreign", -1, 0, 'X', "not a bpc Tiny ImageNet cache (wrong magic bytes)"},
        {"older version", -1, 8, 0, "Tiny ImageNet cache of format version 0; this bpc uses "
                                    "version 1"},
        {"damaged header", -1, 40, 9, "damaged Tiny ImageNet cache header (checksum mismatch)"},
        {"damaged data", -1, 128 + 5000, 0x5A, "damaged Tiny ImageNet cache (data checksum "
                                               "mismatch)"},
        {"truncated", 1000, 0, 0, "truncated Tiny ImageNet cache (1000 bytes, expected 147632)"},
        {"shorter than header", 50, 0, 0, "truncated Tiny ImageNet cache (50 bytes, shorter than "
                                          "its 128-byte header)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t *b = malloc(n);
        memcpy(b, good, n);
        size_t len = n;
        if (cases[c].cut >= 0) {
            len = (size_t)cases[c].cut;
        } else {
            size_t off = (size_t)cases[c].off;
            b[off] = cases[c].byte ? (uint8_t)(b[off] ^ cases[c].byte) : 0;
        }
        put(cache, b, len);
        free(b);
        char *m = tin_load(src, &d, 1, &e);
        if (strncmp(m, fmt("bpc: %s: %s; rebuilding it\nbpc: decoding the 12", cache, cases[c].why),
                    strlen(fmt("bpc: %s: %s; rebuilding it\nbpc: decoding the 12", cache,
                               cases[c].why))))
            fail_msg("%s: messages were\n%s", cases[c].what, m);
        free(m);
        check_tin(&d);
        bp_dataset_free(&d);
        uint8_t *now = slurp(cache, &len);  /* mended: the same bytes as the first one */
        assert_int_equal(len, n);
        assert_memory_equal(now, good, n);
        free(now);
    }
    free(good);

    /* stale: a JPEG changed after the cache was built (same size, new mtime) */
    struct timespec ts[2] = {{1700000000, 0}, {1700000000, 0}};
    assert_int_equal(utimensat(AT_FDCWD, P("tiny-imagenet-200/train/n03/images/n03_1.JPEG"), ts, 0), 0);
    char *m = tin_load(src, &d, 1, &e);
    assert_string_equal(first_line(m), fmt("bpc: %s: stale Tiny ImageNet cache: it was built from "
                                           "a different listing of the data (files added, removed, "
                                           "renamed or changed); rebuilding it", cache));
    free(m);
    bp_dataset_free(&d);
    /* a file added: stale as well, and the new image is in */
    size_t jl;
    uint8_t q[4][3];
    quads(50, q);
    uint8_t *j = encode_jpeg(q, 0, 64, 64, &jl);
    put(P("tiny-imagenet-200/train/n01/images/n01_7.JPEG"), j, jl);
    free(j);
    m = tin_load(src, &d, 1, &e);
    assert_non_null(strstr(m, "stale Tiny ImageNet cache"));
    free(m);
    assert_int_equal(d.train.n, 9);
    bp_dataset_free(&d);
    m = tin_load(src, &d, 1, &e);
    assert_string_equal(m, "");
    free(m);
    bp_dataset_free(&d);
}

static void test_tin_zip(void **state) {
    (void)state;
    write_tin_zip(P("z/tiny-imagenet-200.zip"));
    bp_dataset d;
    bp_err e = {{0}};
    if (bp_dataset_load("tinyimagenet", P("z"), &d, &e)) fail_msg("%s", e.msg);
    check_tin(&d);
    assert_string_equal(d.source, P("z/tiny-imagenet-200.zip"));
    bp_dataset_free(&d);
    assert_true(exists(P("z/tiny-imagenet-200.zip.bpc-cache")));
    char *m = tin_load(P("z/tiny-imagenet-200.zip"), &d, 1, &e);
    assert_string_equal(m, "");
    free(m);
    check_tin(&d);
    /* the zip and the folder give the same arrays */
    write_tin_folder(P("f/tiny-imagenet-200"));
    bp_dataset f;
    free(tin_load(P("f/tiny-imagenet-200"), &f, 1, &e));
    assert_memory_equal(d.train.x, f.train.x, 8 * 12288);
    assert_memory_equal(d.test.x, f.test.x, 4 * 12288);
    assert_memory_equal(d.train.y, f.train.y, 8 * sizeof(int));
    bp_dataset_free(&d);
    bp_dataset_free(&f);
    int classes;
    long ntr, nte;
    if (bp_tinyimagenet_count(P("z/tiny-imagenet-200.zip"), &classes, &ntr, &nte, &e))
        fail_msg("%s", e.msg);
    assert_int_equal(classes, 3);
    assert_int_equal(ntr, 8);
    assert_int_equal(nte, 4);
}

/* Rewrites one file of the folder fixture (NULL data: deletes it). */
static void tin_replace(const char *dir, const char *rel, const void *data, size_t n) {
    if (data) put(fmt("%s/%s", dir, rel), data, n);
    else assert_int_equal(unlink(fmt("%s/%s", dir, rel)), 0);
}

static void tin_replace_s(const char *dir, const char *rel, const char *text) {
    tin_replace(dir, rel, text, strlen(text));
}

static void expect_tin_error(const char *src, const char *want) {
    bp_dataset d;
    bp_err e = {{0}};
    char *m = tin_load(src, &d, 0, &e);
    free(m);
    assert_string_equal(e.msg, want);
    assert_null(d.train.x);
    /* a failed load leaves no cache and no temp file behind */
    assert_false(exists(fmt("%s/tinyimagenet.bpc-cache", src)));
    DIR *dd = opendir(src);
    if (dd) {
        struct dirent *de;
        while ((de = readdir(dd))) assert_null(strstr(de->d_name, ".tmp."));
        closedir(dd);
    }
}

static void test_tin_bad_jpegs(void **state) {
    (void)state;
    const char *src = P("t");
    write_tin_folder(src);
    tin_replace_s(src, "train/n01/images/n01_1.JPEG", "not a jpeg at all");
    expect_tin_error(src, fmt("%s/train/n01/images/n01_1.JPEG: cannot decode the JPEG (libjpeg: "
                              "Not a JPEG file: starts with 0x6e 0x6f); " TFIX, src));
    /* cut short */
    write_tin_folder(src);
    size_t n;
    uint8_t *b = slurp(fmt("%s/val/images/val_1.JPEG", src), &n);
    size_t sos = 0;  /* cut in the entropy-coded data, after the start-of-scan marker */
    for (size_t i = 0; i + 1 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xDA) sos = i;
    assert_true(sos > 0);
    tin_replace(src, "val/images/val_1.JPEG", b, sos + (n - sos) / 2);
    free(b);
    expect_tin_error(src, fmt("%s/val/images/val_1.JPEG: the JPEG is cut short (libjpeg: Premature "
                              "end of JPEG file); " TFIX, src));
    /* empty */
    write_tin_folder(src);
    tin_replace_s(src, "val/images/val_3.JPEG", "");
    expect_tin_error(src, fmt("%s/val/images/val_3.JPEG: empty file (0 bytes), not a JPEG; " TFIX,
                              src));
    /* the wrong size */
    write_tin_folder(src);
    uint8_t q[4][3];
    quads(1, q);
    b = encode_jpeg(q, 0, 32, 48, &n);
    tin_replace(src, "train/n03/images/n03_2.JPEG", b, n);
    free(b);
    expect_tin_error(src, fmt("%s/train/n03/images/n03_2.JPEG: the image is 32x48, expected 64x64 "
                              "(Tiny ImageNet's size); is this file from tiny-imagenet-200?", src));
    /* from the zip, the message names archive:member */
    {
        tin_file f[40];
        int nf = tin_files(f);
        member m[40] = {{0}};
        char names[40][160];
        for (int i = 0; i < nf; i++) {
            snprintf(names[i], sizeof names[i], "tiny-imagenet-200/%.128s", f[i].name);
            m[i] = (member){names[i], f[i].data, f[i].n};
            if (strstr(f[i].name, "n01_1.JPEG")) m[i] = (member){names[i], "GIF89a", 6};
        }
        write_archive(P("z.zip"), 1, m, nf);
        tin_files_free(f, nf);
    }
    bp_dataset d;
    bp_err e = {{0}};
    free(tin_load(P("z.zip"), &d, 0, &e));
    assert_string_equal(e.msg, fmt("%s:tiny-imagenet-200/train/n01/images/n01_1.JPEG: cannot decode "
                                   "the JPEG (libjpeg: Not a JPEG file: starts with 0x47 0x49); " TFIX,
                                   P("z.zip")));
    assert_false(exists(P("z.zip.bpc-cache")));
    b = malloc(12288);
    EXPECT_MSG(bp_jpeg_decode_rgb((const uint8_t *)"\xff\xd8\xff", 3, "m.JPEG", 64, 64, b, &e_),
               "m.JPEG: the JPEG is cut short (libjpeg: Premature end of JPEG file); " TFIX);
    free(b);
}

static void test_tin_bad_listing(void **state) {
    (void)state;
    const char *src = P("t");
    write_tin_folder(src);
    tin_replace(src, "val/val_annotations.txt", NULL, 0);
    expect_tin_error(src, fmt("%s/val/val_annotations.txt: not found; it labels the val split, "
                              "which bpc uses as the test split: " TFIX, src));
    write_tin_folder(src);
    tin_replace_s(src, "val/val_annotations.txt",
                  "val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn09\t0\n");
    expect_tin_error(src, fmt("%s/val/val_annotations.txt:2: class n09 is not in wnids.txt; the "
                              "files do not belong together: " TFIX, src));
    tin_replace_s(src, "val/val_annotations.txt", "val_0.JPEG n02 0 0 1 1\n");
    expect_tin_error(src, fmt("%s/val/val_annotations.txt:1: expected FILE<TAB>CLASS-ID<TAB>box, "
                              "found 'val_0.JPEG n02 0 0 1 1'; the file is damaged: " TFIX, src));
    tin_replace_s(src, "val/val_annotations.txt", "\nval_7.JPEG\tn02\t0\t0\t1\t1\n");
    expect_tin_error(src, fmt("%s/val/images/val_7.JPEG: No such file or directory, but line 2 of "
                              "val_annotations.txt names it: " TFIX, src));
    write_tin_folder(src);
    rm_rf(fmt("%s/train/n01", src));
    expect_tin_error(src, fmt("%s/train/n01/images: No such file or directory; every class in "
                              "wnids.txt (here n01, line 2) needs its training images there: " TFIX,
                              src));
    write_tin_folder(src);
    tin_replace_s(src, "wnids.txt", "n02\nn01\nn02\n");
    expect_tin_error(src, fmt("%s/wnids.txt: class id n02 is listed twice; the file is damaged: "
                              TFIX, src));
    tin_replace_s(src, "wnids.txt", "n02\n../n01\n");
    expect_tin_error(src, fmt("%s/wnids.txt: class 2: '../n01' is not a class id (a WordNet id "
                              "such as n01443537); the file is damaged: " TFIX, src));
    tin_replace(src, "wnids.txt", NULL, 0);
    expect_tin_error(src, fmt("%s/wnids.txt: not found; it lists Tiny ImageNet's classes: " TFIX,
                              src));
    /* the zip without val_annotations.txt, and without wnids.txt */
    tin_file f[40];
    int n = tin_files(f);
    member m[40] = {{0}};
    char names[40][160];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (strstr(f[i].name, "val_annotations")) continue;
        snprintf(names[k], sizeof names[k], "tiny-imagenet-200/%.128s", f[i].name);
        m[k] = (member){names[k], f[i].data, f[i].n};
        k++;
    }
    write_archive(P("a.zip"), 1, m, k);
    write_archive(P("b.zip"), 1, m + 1, k - 1);  /* m[0] is wnids.txt */
    tin_files_free(f, n);
    bp_dataset d;
    bp_err e = {{0}};
    free(tin_load(P("a.zip"), &d, 0, &e));
    assert_string_equal(e.msg, fmt("%s: has no tiny-imagenet-200/val/val_annotations.txt; it labels "
                                   "the val split, which bpc uses as the test split: " TFIX,
                                   P("a.zip")));
    free(tin_load(P("b.zip"), &d, 0, &e));
    assert_string_equal(e.msg, fmt("%s: has no wnids.txt; this is not tiny-imagenet-200.zip: " TFIX,
                                   P("b.zip")));
    /* a zip cut short */
    write_tin_zip(P("c.zip"));
    struct stat st;
    assert_int_equal(stat(P("c.zip"), &st), 0);
    assert_int_equal(truncate(P("c.zip"), st.st_size / 2), 0);
    free(tin_load(P("c.zip"), &d, 0, &e));
    assert_prefix_suffix(e.msg, fmt("%s", P("c.zip")), "; " TFIX);
    assert_false(exists(P("c.zip.bpc-cache")));
}

/* When the cache cannot be written beside the data, it goes to the user's cache folder.
 * Root writes anywhere, so a read-only folder is tried only for other users; a folder
 * where the cache file should be blocks the rename for anyone. */
static void test_tin_cache_fallback(void **state) {
    (void)state;
    const char *src = P("ro/tiny-imagenet-200");
    const char *primary = P("ro/tiny-imagenet-200/tinyimagenet.bpc-cache");
    write_tin_folder(src);
    int readonly = geteuid() != 0;
    if (readonly) assert_int_equal(chmod(src, 0555), 0);
    else assert_int_equal(mkdir(primary, 0777), 0);
    bp_dataset d;
    bp_err e = {{0}};
    char *m = tin_load(src, &d, 1, &e);
    char *fb = strstr(m, "; cached in ");
    assert_non_null(fb);
    assert_non_null(strstr(fb, P("xdg/bpc/data/tinyimagenet-")));
    free(m);
    check_tin(&d);
    bp_dataset_free(&d);
    m = tin_load(src, &d, 1, &e);  /* found there the second time */
    if (readonly) assert_string_equal(m, "");
    else assert_string_equal(m, fmt("bpc: %s: not a regular file, so not a Tiny ImageNet cache; "
                                    "rebuilding it\n", primary));
    free(m);
    check_tin(&d);
    bp_dataset_free(&d);
    if (readonly) chmod(src, 0755);
    /* wnids.txt, words.txt, train/, val/, test/ (and the blocking folder): no temp file */
    assert_int_equal(count_entries(src), readonly ? 5 : 6);
}

/* ---- `bpc data` --------------------------------------------------------------------- */

static char *run_cmd(const char *action, const char *name, const char *root, int want_rc,
                     bp_err *e) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    int rc = bp_data_command(action, name, root, out, e);
    fclose(out);
    if (rc != want_rc) fail_msg("%s %s: exit %d, expected %d (%s)", action, name, rc, want_rc, e->msg);
    return buf;
}

static void test_data_info(void **state) {
    (void)state;
    write_cifar10_folder(P("r/cifar-10-batches-bin"));
    bp_err e = {{0}};
    char *out = run_cmd("info", "cifar10", P("r"), 0, &e);
    /* the expected statistics, from the records the fixture wrote */
    unsigned long long sum[3] = {0}, sq[3] = {0};
    int cnt[10][2] = {{0}};
    uint8_t r[3073];
    for (int i = 0; i < 5 * C10_PER + C10_TEST; i++) {
        int test = i >= 5 * C10_PER, id = test ? 100 + i - 5 * C10_PER : i;
        make_record(0, id, r);
        cnt[r[0]][test]++;
        if (test) continue;
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 1024; p++) {
                sum[ch] += r[1 + ch * 1024 + p];
                sq[ch] += (unsigned long long)r[1 + ch * 1024 + p] * r[1 + ch * 1024 + p];
            }
    }
    double N = 5.0 * C10_PER * 1024, m[3], s[3];
    for (int c = 0; c < 3; c++) {
        m[c] = (double)sum[c] / N / 255.0;
        s[c] = sqrt((double)sq[c] / N / (255.0 * 255.0) - m[c] * m[c]);
    }
    char want[4096];
    int n = snprintf(want, sizeof want,
                     "cifar10: 10 classes, from %s\n"
                     "  train      10 images, 32x32x3 uint8 (NHWC)\n"
                     "  test        3 images, 32x32x3 uint8 (NHWC)\n"
                     "  train pixels / 255: mean R %.4f G %.4f B %.4f, std R %.4f G %.4f B %.4f\n"
                     "  class balance (train: 1 to 1 per class)\n"
                     "    class  name                           train    test\n",
                     P("r/cifar-10-batches-bin"), m[0], m[1], m[2], s[0], s[1], s[2]);
    static const char *const names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                          "dog", "frog", "horse", "ship", "truck"};
    for (int k = 0; k < 10; k++)
        n += snprintf(want + n, sizeof want - (size_t)n, "    %5d  %-28s %7d %7d\n", k, names[k],
                      cnt[k][0], cnt[k][1]);
    assert_string_equal(out, want);
    free(out);

    /* Tiny ImageNet: the class names from words.txt, the counts */
    write_tin_folder(P("r/tiny-imagenet-200"));
    out = run_cmd("info", "tinyimagenet", P("r"), 0, &e);
    assert_non_null(strstr(out, "tinyimagenet: 3 classes, from "));
    assert_non_null(strstr(out, "  train       8 images, 64x64x3 uint8 (NHWC)\n"));
    assert_non_null(strstr(out, "        1  goldfish, Carassius auratus        2       1\n"));
    free(out);
}

static void test_data_command(void **state) {
    (void)state;
    bp_err e = {{0}};
    char *out = run_cmd("fetch", "cifar10", P("r"), 1, &e);
    assert_string_equal(e.msg, "CIFAR-10 must be downloaded by hand (see above); bpc fetches only "
                               "mnist and fashion-mnist");
    assert_string_equal(out, fmt("cifar10: bpc does not download CIFAR-10; get it from its "
                                 "publisher:\n"
                                 "  https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz\n"
                                 "  (170052171 bytes, md5 c32a1d4ab5d03f1284b67883e8d87530)\n"
                                 "and put it in the data folder, as it is or extracted:\n"
                                 "  %s/cifar-10-binary.tar.gz\n"
                                 "  %s/cifar-10-batches-bin/\n"
                                 "then run `bpc data verify cifar10 --data %s`.\n",
                                 P("r"), P("r"), P("r")));
    free(out);
    out = run_cmd("fetch", "cifar100-coarse", P("r"), 1, &e);
    assert_non_null(strstr(out, "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz\n"
                                "  (168513733 bytes, md5 03b5dce01913d631647c71ecec9e9cb8)"));
    free(out);
    out = run_cmd("fetch", "tinyimagenet", P("r"), 1, &e);
    assert_non_null(strstr(out, "http://cs231n.stanford.edu/tiny-imagenet-200.zip\n"
                                "  (248100043 bytes, md5 90528d7ca1a48142e341f4ef8d21d0de)"));
    free(out);
    /* already there: fetch says so and succeeds */
    write_cifar10_targz(P("r/cifar-10-binary.tar.gz"));
    out = run_cmd("fetch", "cifar10", P("r"), 0, &e);
    assert_string_equal(out, fmt("cifar10: already in %s/cifar-10-binary.tar.gz; `bpc data verify "
                                 "cifar10 --data %s` checks it\n", P("r"), P("r")));
    free(out);
    /* user errors */
    free(run_cmd("fetch", "imagenet", P("r"), 1, &e));
    assert_string_equal(e.msg, "unknown data set 'imagenet'; bpc reads mnist, fashion-mnist, "
                               "cifar10, cifar100, cifar100-coarse and tinyimagenet");
    free(run_cmd("show", "mnist", P("r"), 1, &e));
    assert_string_equal(e.msg, "unknown data action 'show'; the actions are fetch, verify and info");
    /* missing data is an I/O error */
    free(run_cmd("info", "cifar100", P("r"), 2, &e));
    free(run_cmd("verify", "tinyimagenet", P("r"), 2, &e));
    /* verify a Tiny ImageNet folder against the published counts */
    write_tin_folder(P("r/tiny-imagenet-200"));
    free(run_cmd("verify", "tinyimagenet", P("r"), 2, &e));
    assert_string_equal(e.msg, fmt("%s/tiny-imagenet-200: 3 classes, 8 train and 4 val images; "
                                   "the published Tiny ImageNet has 200, 100000 and 10000: extract "
                                   "tiny-imagenet-200.zip again", P("r")));
}

/* ---- real Fashion-MNIST (Debian's dataset-fashion-mnist) ---------------------------- */

static void test_real_fashion_mnist(void **state) {
    (void)state;
    if (!exists(BP_FASHION_DEBIAN_DIR "/train-images-idx3-ubyte.gz")) skip();
    mkdir(P("empty"), 0777);
    bp_dataset d;
    bp_err e = {{0}};
    /* an empty root falls back to the Debian package's folder */
    if (bp_dataset_load("fashion-mnist", P("empty"), &d, &e)) fail_msg("%s", e.msg);
    assert_string_equal(d.source, BP_FASHION_DEBIAN_DIR);
    assert_int_equal(d.train.n, 60000);
    assert_int_equal(d.test.n, 10000);
    assert_int_equal(d.train.h, 28);
    assert_int_equal(d.train.c, 1);
    assert_int_equal(d.train.y[0], 9);
    assert_int_equal(d.test.y[0], 9);
    assert_string_equal(d.class_names[9], "Ankle boot");
    unsigned long long sum = 0;
    size_t n = (size_t)d.train.n * 784;
    for (size_t i = 0; i < n; i++) sum += d.train.x[i];
    double mean = (double)sum / (double)n / 255.0;
    if (fabs(mean - 0.2860) > 0.0002) fail_msg("train pixel mean %.5f, expected 0.2860", mean);
    bp_dataset_free(&d);
    /* fetch copies and checks the package's files; verify agrees */
    char *out = run_cmd("fetch", "fashion-mnist", P("root"), 0, &e);
    assert_string_equal(out, fmt("fashion-mnist: ready in %s/fashion-mnist\n", P("root")));
    free(out);
    assert_int_equal(count_entries(P("root/fashion-mnist")), 4);
    out = run_cmd("verify", "fashion-mnist", P("root"), 0, &e);
    assert_string_equal(out, fmt("fashion-mnist: %s/fashion-mnist: 4 files, md5 ok\n", P("root")));
    free(out);
    out = run_cmd("info", "fashion-mnist", P("root"), 0, &e);
    assert_non_null(strstr(out, "  train pixels / 255: mean 0.2860, std 0.3530\n"));
    assert_non_null(strstr(out, "        9  Ankle boot                      6000    1000\n"));
    free(out);
    /* a damaged copy is caught by verify */
    put(P("root/fashion-mnist/t10k-labels-idx1-ubyte"), "\0\0\x08\x01\0\0\0\0", 8);
    unlink(P("root/fashion-mnist/t10k-labels-idx1-ubyte.gz"));
    free(run_cmd("verify", "fashion-mnist", P("root"), 2, &e));
    assert_string_equal(e.msg, fmt("%s/fashion-mnist/t10k-labels-idx1-ubyte: md5 "
                                   "f3bc5f8a2bf83eeff93cab9c79206411, expected "
                                   "15d484375f8d13e6eb1aabb0c3f46965; the file is damaged or not "
                                   "Fashion-MNIST: delete it and run `bpc data fetch fashion-mnist` "
                                   "(it copies the files of the Debian package "
                                   "dataset-fashion-mnist)", P("root")));
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_cifar10_folder),
        T(test_cifar10_targz),
        T(test_cifar100_fine_coarse),
        T(test_cifar_no_names),
        T(test_cifar_truncated_record),
        T(test_cifar_label_out_of_range),
        T(test_cifar_wrong_size),
        T(test_cifar_missing_and_bad_names),
        T(test_cifar_bad_archives),
        T(test_locate),
        T(test_mnist_via_root),
        T(test_holdout),
        T(test_tin_folder_and_cache),
        T(test_tin_cache_rebuilt),
        T(test_tin_zip),
        T(test_tin_bad_jpegs),
        T(test_tin_bad_listing),
        T(test_tin_cache_fallback),
        T(test_data_info),
        T(test_data_command),
        T(test_real_fashion_mnist),
    };
    return cmocka_run_group_tests_name("datasets", tests, NULL, NULL);
}
