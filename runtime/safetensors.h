/* safetensors.h: read and write tensors in the safetensors format.
 *
 * Why: bpc stores checkpoints and its test dumps (the PyTorch oracle) in the format
 * that PyTorch, NumPy and the `safetensors` package load directly.
 *
 * The format (https://github.com/huggingface/safetensors):
 *   8 bytes   N, the header length, unsigned little-endian 64-bit
 *   N bytes   a JSON object, UTF-8, padded with spaces:
 *               {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]},
 *                ...,
 *                "__metadata__": {"key": "value", ...}}       (optional, strings only)
 *             BEGIN/END are byte offsets into the data section, END exclusive.
 *   the rest  the data section: each tensor's elements, row-major, little-endian.
 * Supported dtypes: F32, F64, I32, U8 (bp_st_dtype below). A scalar has ndim 0 (shape []).
 *
 * Writing is atomic: the file is written to PATH.tmp, flushed, fsync'ed and renamed
 * over PATH, so a crash or a full disk never leaves a half-written PATH behind; on any
 * failure the temporary file is removed and PATH is untouched.
 *
 * Reading validates everything before a tensor is handed out: the header length
 * against the file size, the JSON (parsed with cJSON), each dtype and shape, that
 * data_offsets match shape x element size, lie inside the data section, do not
 * overlap, and together cover the data section with no gap (as the reference
 * implementation requires), and that names are unique. Every error message names the
 * file and the tensor.
 *
 * All functions report failure the runtime way (err.h): return -1 and a one-line
 * message in e->msg; 0 on success.
 */
#ifndef BPC_SAFETENSORS_H
#define BPC_SAFETENSORS_H

#include <stddef.h>
#include "err.h"

#define BP_ST_MAX_DIMS 8

typedef enum { BP_ST_F32, BP_ST_F64, BP_ST_I32, BP_ST_U8 } bp_st_dtype;

/* One tensor. For bp_st_write the caller fills it and keeps `name` and `data` alive
 * during the call; nbytes must equal prod(shape) * bp_st_dtype_size(dtype). Data are
 * in host byte order (converted to little-endian when the host is big-endian).
 * From bp_st_read, every pointer points into the bp_st_file that owns it. */
typedef struct {
    const char *name;
    bp_st_dtype dtype;
    int ndim;                      /* 0 .. BP_ST_MAX_DIMS; 0 is a scalar */
    long shape[BP_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} bp_st_tensor;

/* One "__metadata__" entry: a string key and a string value. */
typedef struct {
    const char *key;
    const char *value;
} bp_st_meta;

/* A file read into memory; owns all its strings and data. Free with bp_st_free. */
typedef struct {
    bp_st_tensor *tensors;         /* in the order of the JSON header */
    int n;
    bp_st_meta *meta;
    int nmeta;
    void *store_;                  /* private: the file bytes and the parsed names */
} bp_st_file;

/* "F32", "F64", "I32", "U8" and their element sizes in bytes ("?" and 0 for a value
 * outside the enum). */
const char *bp_st_dtype_name(bp_st_dtype t);
size_t bp_st_dtype_size(bp_st_dtype t);
/* The dtype named s; returns -1 for an unknown name. */
int bp_st_dtype_parse(const char *s, bp_st_dtype *t);

/* Writes n tensors and nmeta metadata entries (meta may be NULL) to `path`,
 * atomically. The JSON header lists the tensors in the given order; their data is laid
 * out by element size, largest first (so that every tensor is aligned to its own
 * element size), each group in the given order. Errors: invalid tensor (empty or duplicate name, name
 * "__metadata__", ndim out of range, negative dimension, nbytes not matching the
 * shape, NULL data with nbytes > 0), out of memory, or an I/O failure (the message
 * names the file and the system error, e.g. "disk full?"). */
int bp_st_write(const char *path, const bp_st_tensor *t, int n, const bp_st_meta *meta,
                int nmeta, bp_err *e);

/* Reads and validates `path`. On success *f owns the result; on failure *f is empty
 * (safe to pass to bp_st_free). */
int bp_st_read(const char *path, bp_st_file *f, bp_err *e);

/* The tensor called `name`, or NULL. */
const bp_st_tensor *bp_st_find(const bp_st_file *f, const char *name);

/* The metadata value for `key`, or NULL. */
const char *bp_st_meta_get(const bp_st_file *f, const char *key);

/* Number of elements of a tensor: the product of its shape (1 for a scalar). */
long bp_st_numel(const bp_st_tensor *t);

void bp_st_free(bp_st_file *f);

#endif
