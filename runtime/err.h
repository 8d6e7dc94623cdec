/* err.h: how runtime functions report failure.
 * Each fallible function takes a bp_err* and returns 0 on success and non-zero on
 * failure, with a one-line message in e->msg that names the file and says what to do.
 * The usual failure value is -1; functions that tell kinds of failure apart (1: the
 * user's input, 2: I/O, 130/143: a signal, BP_CKPT_MISMATCH...) say so where they are
 * declared. */
#ifndef BPC_ERR_H
#define BPC_ERR_H

/* Room for a message that names two paths of PATH_MAX (4096) bytes and says why. */
typedef struct { char msg[8192 + 512]; } bp_err;

/* printf into e->msg (when e is non-NULL); always returns -1. */
int bp_fail(bp_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
