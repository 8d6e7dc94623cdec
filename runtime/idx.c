/* idx.c: reads IDX files (the MNIST container format: a 4-byte magic, big-endian
 * dimension sizes, then the uint8 payload).
 *
 * Everything goes through zlib's gzopen/gzread, which reads plain files as they are
 * and .gz files decompressed, so one code path serves both. The header is trusted
 * for nothing: magic, type, dimension count, each size and their product are checked
 * before anything is allocated, and the payload must be exactly prod(dims) bytes,
 * because a short or over-long file is a damaged download, not data to train on.
 */
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* What to do about a damaged file. */
#define REFETCH "re-fetch it (`bpc data fetch mnist` for MNIST)"

/* Largest payload accepted: the product of the dims must fit in an int-indexed array. */
#define IDX_MAX_BYTES 2147483647ull

/* Reads up to n bytes; returns how many came (short only at end of data) or -1 on a
 * read or decompression error. gzread takes an unsigned count, so read in chunks. */
static long long read_full(gzFile f, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30;
        int r = gzread(f, buf + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* After a read that returned r: sets e and returns -1 when the read failed or zlib
 * holds an error (a corrupt or cut-short .gz shows up here), else returns 0. */
static int gz_check(gzFile f, long long r, const char *path, bp_err *e) {
    int zerr = Z_OK;
    const char *msg = gzerror(f, &zerr);
    if (zerr == Z_OK && r >= 0) return 0;
    if (zerr == Z_ERRNO || zerr == Z_OK)
        return bp_fail(e, "%s: read error: %s", path, errno ? strerror(errno) : "unknown");
    size_t pl = strlen(path);  /* zlib prefixes its message with the path: drop that */
    if (strncmp(msg, path, pl) == 0 && msg[pl] == ':' && msg[pl + 1] == ' ') msg += pl + 2;
    return bp_fail(e, "%s: corrupt or cut-short gzip data (zlib: %s); " REFETCH, path, msg);
}

int bp_idx_read(const char *path, int ndims, uint8_t **data, int dims[3], bp_err *e) {
    *data = NULL;
    for (int i = 0; i < 3; i++) dims[i] = 0;
    if (ndims < 1 || ndims > 3)
        return bp_fail(e, "%s: bp_idx_read called with ndims %d; it must be 1, 2 or 3", path, ndims);
    const char *what = ndims == 3 ? "image" : ndims == 1 ? "label" : "data";

    struct stat st; /* before opening: opening a FIFO would wait for a writer forever */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return bp_fail(e, "%s: not a regular file; point --data at the data set's files", path);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return bp_fail(e, "%s: cannot open: %s; check the path, or get the data with "
                       "`bpc data fetch mnist`", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(f, 1u << 17);

    uint8_t *buf = NULL;
    uint8_t hdr[4 + 4 * 3];
    long long got = read_full(f, hdr, 4);
    if (gz_check(f, got, path, e)) goto fail;
    if (got < 4) {
        bp_fail(e, "%s: not an IDX file: %lld bytes, shorter than the 4-byte IDX header; " REFETCH,
                path, got);
        goto fail;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        bp_fail(e, "%s: not an IDX file: magic bytes %02x %02x %02x %02x, expected 00 00 08 %02x; "
                "give the raw IDX file or its .gz", path, hdr[0], hdr[1], hdr[2], hdr[3], ndims);
        goto fail;
    }
    if (hdr[2] != 0x08) {
        bp_fail(e, "%s: IDX element type 0x%02x, expected 0x08 (unsigned byte); bpc reads only "
                "uint8 IDX files", path, hdr[2]);
        goto fail;
    }
    if (hdr[3] != ndims) {
        bp_fail(e, "%s: IDX file has %d dimensions, expected %d (%s); is this the right file?",
                path, hdr[3], ndims,
                ndims == 3 ? "images: count x rows x cols" : ndims == 1 ? "labels: count" : "");
        goto fail;
    }
    got = read_full(f, hdr + 4, 4 * (size_t)ndims);
    if (gz_check(f, got, path, e)) goto fail;
    if (got < 4 * ndims) {
        bp_fail(e, "%s: truncated IDX header: expected %d bytes of dimension sizes, found %lld; "
                REFETCH, path, 4 * ndims, got);
        goto fail;
    }
    unsigned long long total = 1;
    for (int i = 0; i < ndims; i++) {
        const uint8_t *p = hdr + 4 + 4 * i;
        unsigned long long d = (unsigned long long)p[0] << 24 | (unsigned long long)p[1] << 16 |
                               (unsigned long long)p[2] << 8 | p[3];
        if (d == 0) {
            bp_fail(e, "%s: dimension %d of the IDX header is 0; the file is damaged, " REFETCH,
                    path, i);
            goto fail;
        }
        total *= d;  /* at most (2^32-1)^3 < 2^96: check after each step instead */
        if (total > IDX_MAX_BYTES) {
            bp_fail(e, "%s: IDX header declares more than 2^31-1 %s bytes (dimension %d is %llu); "
                    "the file is damaged or not a data set bpc reads", path, what, i, d);
            goto fail;
        }
        dims[i] = (int)d;
    }

    /* The buffer grows with the data that actually arrives (doubling from 1 MB), so a
     * damaged 20-byte file that declares 2 GB costs 1 MB, not 2 GB. */
    size_t cap = total < (1u << 20) ? (size_t)total : 1u << 20;
    got = 0;
    for (;;) {
        uint8_t *nb = realloc(buf, cap ? cap : 1);
        if (!nb) {
            bp_fail(e, "%s: out of memory for %llu %s bytes", path, total, what);
            goto fail;
        }
        buf = nb;
        long long r = read_full(f, buf + got, cap - (size_t)got);
        if (gz_check(f, r, path, e)) goto fail;
        got += r;
        if ((size_t)got < cap || cap == total) break;
        cap = 2 * cap < total ? 2 * cap : (size_t)total;
    }
    if ((unsigned long long)got < total) {
        bp_fail(e, "%s: truncated: expected %llu %s bytes, found %lld; " REFETCH,
                path, total, what, got);
        goto fail;
    }
    /* Count what follows the payload; any of it means the file is not what it claims. */
    unsigned long long extra = 0;
    uint8_t tail[4096];
    for (;;) {
        long long r = read_full(f, tail, sizeof tail);
        if (gz_check(f, r, path, e)) goto fail;
        extra += (unsigned long long)r;
        if (r < (long long)sizeof tail) break;
    }
    if (extra) {
        bp_fail(e, "%s: %llu trailing bytes after the %llu %s bytes the header declares; the file "
                "is damaged, " REFETCH, path, extra, total, what);
        goto fail;
    }
    gzclose_r(f);
    *data = buf;
    return 0;

fail:
    free(buf);
    gzclose_r(f);
    for (int i = 0; i < 3; i++) dims[i] = 0;
    return -1;
}
